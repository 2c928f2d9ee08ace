-- Needs and consent (see the PostgreSQL migration). Same representations as
-- 0001: ids as UUID text, times as INTEGER microseconds, JSON as TEXT.
ALTER TABLE customers ADD COLUMN needs TEXT NOT NULL DEFAULT '{}';
ALTER TABLE customer_merges ADD COLUMN survivor_needs_before TEXT;

CREATE TABLE customer_consents (
    id                TEXT PRIMARY KEY NOT NULL,
    customer_id       TEXT NOT NULL REFERENCES customers (id),
    purpose           TEXT NOT NULL CHECK (purpose IN ('vulnerability')),
    statement         TEXT NOT NULL,
    channel           TEXT CHECK (channel IN ('phone', 'web', 'face_to_face', 'email', 'letter')),
    recorded_by       TEXT NOT NULL,
    given_at          INTEGER NOT NULL,
    contact_id        TEXT,
    withdrawn_at      INTEGER,
    withdrawn_by      TEXT,
    withdrawal_reason TEXT,
    CHECK ((withdrawn_at IS NULL) = (withdrawn_by IS NULL)),
    CHECK ((withdrawn_at IS NULL) = (withdrawal_reason IS NULL))
) STRICT;

CREATE INDEX customer_consents_customer_idx ON customer_consents (customer_id, given_at, id);
