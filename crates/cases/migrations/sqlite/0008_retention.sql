-- The retention schedule (see the PostgreSQL migration).
ALTER TABLE contacts ADD COLUMN expired_at INTEGER;
ALTER TABLE cases ADD COLUMN notes_expired_at INTEGER;

CREATE TABLE retention_runs (
    id       TEXT PRIMARY KEY NOT NULL,
    category TEXT NOT NULL,
    ran_at   INTEGER NOT NULL,
    cutoff   INTEGER NOT NULL,
    affected INTEGER NOT NULL CHECK (affected >= 0)
) STRICT;

CREATE INDEX retention_runs_ran_at_idx ON retention_runs (ran_at, id);
