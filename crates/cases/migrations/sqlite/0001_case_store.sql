-- The case store for embedded mode (cases.db in the data dir). Same tables
-- and rules as migrations/postgres; the representations differ:
--   ids are hyphenated lowercase UUID text (sorts like the UUID, readable in
--     the sqlite3 shell, and usable with json_each for batched look-ups);
--   times are INTEGER microseconds since the Unix epoch (sqlx writes chrono
--     times as RFC 3339 with a variable number of digits, which does not sort);
--   JSON columns are TEXT.

CREATE TABLE customers (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT,
    -- Lowercased by the application (Unicode rules): SQLite's LIKE and lower()
    -- only fold ASCII.
    name_folded  TEXT,
    phone_e164   TEXT,
    email        TEXT,
    postcode     TEXT,
    address_line TEXT,
    uprn         TEXT,
    created_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX customers_phone_e164_idx ON customers (phone_e164) WHERE phone_e164 IS NOT NULL;
CREATE INDEX customers_email_idx ON customers (email) WHERE email IS NOT NULL;
CREATE INDEX customers_postcode_idx ON customers (postcode) WHERE postcode IS NOT NULL;

CREATE TABLE cases (
    id          TEXT PRIMARY KEY NOT NULL,
    reference   TEXT NOT NULL UNIQUE CHECK (reference LIKE 'CS-%'),
    customer_id TEXT NOT NULL REFERENCES customers (id),
    service     TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('open', 'waiting_on_resident', 'waiting_on_council', 'resolved', 'closed')),
    opened_at   INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX cases_customer_idx ON cases (customer_id, opened_at DESC, id DESC);

-- At most one open case per resident and service (see the PostgreSQL migration).
CREATE UNIQUE INDEX cases_one_open_per_service_idx ON cases (customer_id, service)
    WHERE status IN ('open', 'waiting_on_resident', 'waiting_on_council');

CREATE TABLE contacts (
    id          TEXT PRIMARY KEY NOT NULL,
    reference   TEXT NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    case_id     TEXT NOT NULL REFERENCES cases (id),
    channel     TEXT NOT NULL CHECK (channel IN ('phone', 'web', 'face_to_face', 'email', 'letter')),
    service     TEXT NOT NULL,
    summary     TEXT NOT NULL,
    details     TEXT NOT NULL,
    needs       TEXT NOT NULL,
    origin      TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    stored_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX contacts_reference_idx ON contacts (reference);
CREATE INDEX contacts_customer_idx ON contacts (customer_id, received_at DESC, id DESC);
CREATE INDEX contacts_case_idx ON contacts (case_id, received_at, id);

CREATE TABLE inbox (
    event_id     TEXT PRIMARY KEY NOT NULL,
    processed_at INTEGER NOT NULL
) STRICT;

CREATE TABLE outbox (
    event_id    TEXT PRIMARY KEY NOT NULL,
    event_type  TEXT NOT NULL,
    body        BLOB NOT NULL,
    traceparent TEXT,
    created_at  INTEGER NOT NULL
) STRICT;
