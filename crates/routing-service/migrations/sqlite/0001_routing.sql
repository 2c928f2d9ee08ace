-- The routing store for embedded mode (routing.db in the data dir). Same
-- tables and rules as migrations/postgres; the representations differ:
--   ids are hyphenated lowercase UUID text (readable in the sqlite3 shell, and
--     usable with json_each for batched look-ups);
--   times are INTEGER microseconds since the Unix epoch (sqlx writes chrono
--     times as RFC 3339 with a variable number of digits, which does not sort);
--   booleans are INTEGER 0 or 1, and JSON columns are TEXT.

-- The primary key is the fence between two routers that both believe they own
-- a partition (see the PostgreSQL migration).
CREATE TABLE journal (
    partition   TEXT    NOT NULL,
    seq         INTEGER NOT NULL CHECK (seq > 0),
    recorded_at INTEGER NOT NULL,
    is_base     INTEGER NOT NULL CHECK (is_base IN (0, 1)),
    entry       TEXT    NOT NULL,
    PRIMARY KEY (partition, seq)
) STRICT;

-- Finding where a replay starts reads only base entries, which are few.
CREATE INDEX journal_base_idx ON journal (partition, seq) WHERE is_base = 1;

CREATE TABLE inbox (
    partition    TEXT    NOT NULL,
    event_id     TEXT    NOT NULL,
    processed_at INTEGER NOT NULL,
    PRIMARY KEY (partition, event_id)
) STRICT;

-- An explicit INTEGER PRIMARY KEY is the rowid and survives VACUUM, so the
-- relay publishes in the order events were written whatever their ids. Reuse
-- of a deleted position is harmless: a new row always sorts after the rows
-- still waiting.
CREATE TABLE outbox (
    position    INTEGER PRIMARY KEY,
    event_id    TEXT    NOT NULL UNIQUE,
    event_type  TEXT    NOT NULL,
    body        BLOB    NOT NULL,
    traceparent TEXT,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE offer_explanations (
    contact_id  TEXT PRIMARY KEY NOT NULL,
    explanation TEXT    NOT NULL,
    recorded_at INTEGER NOT NULL
) STRICT;

-- AUTOINCREMENT so the number of a removed agent is never given to someone
-- else: journal entries may still name it.
CREATE TABLE agents (
    agent_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    subject    TEXT    NOT NULL UNIQUE,
    profile    TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
