-- Erasure (see the PostgreSQL migration).
CREATE TABLE erasures (
    customer_id TEXT PRIMARY KEY NOT NULL REFERENCES customers (id),
    erased_by   TEXT NOT NULL,
    erased_at   INTEGER NOT NULL,
    reason      TEXT NOT NULL
) STRICT;
