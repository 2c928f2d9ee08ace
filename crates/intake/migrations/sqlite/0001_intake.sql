-- Intake's own tables in `intake.db` (embedded mode). Same shape as the
-- PostgreSQL schema; ids are hyphenated UUID text and times RFC 3339 text, so
-- the file stays readable with the sqlite3 shell and text order is time order
-- for UUIDv7.

-- Contacts as received. `contact` is the validated contact as JSON: it is
-- personal data and stays in this store (the event carries it only sealed).
CREATE TABLE contacts (
    id          TEXT NOT NULL PRIMARY KEY,
    reference   TEXT NOT NULL UNIQUE,
    channel     TEXT NOT NULL,
    service     TEXT NOT NULL,
    received_at TEXT NOT NULL,
    contact     TEXT NOT NULL
);

-- The primary key is the final arbiter for idempotency keys. The foreign key is
-- deferred because a batch claims its keys before it inserts the contacts.
CREATE TABLE idempotency_keys (
    key          TEXT NOT NULL PRIMARY KEY,
    request_hash BLOB NOT NULL,
    contact_id   TEXT NOT NULL REFERENCES contacts (id) DEFERRABLE INITIALLY DEFERRED,
    reference    TEXT NOT NULL,
    created_at   TEXT NOT NULL
);

-- Events waiting for the relay; a row is deleted once the bus confirmed it.
CREATE TABLE outbox (
    event_id    TEXT NOT NULL PRIMARY KEY,
    event_type  TEXT NOT NULL,
    body        BLOB NOT NULL,
    traceparent TEXT,
    created_at  TEXT NOT NULL
);
