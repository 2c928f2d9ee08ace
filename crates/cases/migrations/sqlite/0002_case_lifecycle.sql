-- Cases through their life (see the PostgreSQL migration for what each
-- column and table is for). Same representations as 0001: ids as UUID text,
-- times as INTEGER microseconds, booleans as INTEGER 0/1.

ALTER TABLE cases ADD COLUMN due_at INTEGER;
ALTER TABLE cases ADD COLUMN resolved_at INTEGER;
ALTER TABLE cases ADD COLUMN outcome TEXT;
ALTER TABLE cases ADD COLUMN reopened_count INTEGER NOT NULL DEFAULT 0 CHECK (reopened_count >= 0);

CREATE INDEX cases_recently_resolved_idx ON cases (customer_id, service, resolved_at DESC)
    WHERE status = 'resolved';

ALTER TABLE contacts ADD COLUMN repeat_contact INTEGER NOT NULL DEFAULT 0 CHECK (repeat_contact IN (0, 1));

CREATE TABLE case_history (
    id          TEXT PRIMARY KEY NOT NULL,
    case_id     TEXT NOT NULL REFERENCES cases (id),
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at          INTEGER NOT NULL
) STRICT;

CREATE INDEX case_history_case_idx ON case_history (case_id, at, id);

CREATE TABLE case_notes (
    id         TEXT PRIMARY KEY NOT NULL,
    case_id    TEXT NOT NULL REFERENCES cases (id),
    author     TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX case_notes_case_idx ON case_notes (case_id, created_at, id);

CREATE TABLE contact_outcomes (
    contact_id   TEXT PRIMARY KEY NOT NULL,
    disposition  TEXT NOT NULL,
    partner      TEXT,
    completed_at INTEGER NOT NULL,
    applied      INTEGER NOT NULL CHECK (applied IN (0, 1))
) STRICT;

CREATE INDEX contact_outcomes_pending_idx ON contact_outcomes (contact_id) WHERE applied = 0;
