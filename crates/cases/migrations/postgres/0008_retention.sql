-- The retention schedule (crates/cases/src/retention.rs).
--
-- contacts.expired_at / cases.notes_expired_at: when the schedule removed the
--   contact's content or the case's notes, so each is done once.
-- retention_runs: each category applied, with how many records it changed.
ALTER TABLE contacts ADD COLUMN expired_at timestamptz;
ALTER TABLE cases ADD COLUMN notes_expired_at timestamptz;

CREATE TABLE retention_runs (
    id       uuid PRIMARY KEY,
    category text NOT NULL,
    ran_at   timestamptz NOT NULL,
    cutoff   timestamptz NOT NULL,
    affected bigint NOT NULL CHECK (affected >= 0)
);

CREATE INDEX retention_runs_ran_at_idx ON retention_runs (ran_at, id);
