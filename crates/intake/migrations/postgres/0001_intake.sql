-- Intake's own tables, in the `intake` schema (the pool's search_path). No
-- other service reads them.

-- Contacts as received. `contact` is the validated contact as JSON: it is
-- personal data and stays in this store (the event carries it only sealed).
CREATE TABLE contacts (
    id          uuid        PRIMARY KEY,
    reference   text        NOT NULL UNIQUE,
    channel     text        NOT NULL,
    service     text        NOT NULL,
    received_at timestamptz NOT NULL,
    contact     jsonb       NOT NULL
);

-- One row per idempotency key: the same key with the same request hash gets the
-- original answer back. The primary key is the final arbiter between writers in
-- different processes. The foreign key is deferred because a batch claims its
-- keys before it inserts the contacts they point to (see store/postgres.rs).
CREATE TABLE idempotency_keys (
    key          text        PRIMARY KEY,
    request_hash bytea       NOT NULL,
    contact_id   uuid        NOT NULL REFERENCES contacts (id) DEFERRABLE INITIALLY DEFERRED,
    reference    text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Events waiting for the relay; a row is deleted once the broker confirmed it.
-- event_id is a UUIDv7, so ordering by it is ordering by creation.
CREATE TABLE outbox (
    event_id    uuid        PRIMARY KEY,
    event_type  text        NOT NULL,
    body        bytea       NOT NULL,
    traceparent text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
