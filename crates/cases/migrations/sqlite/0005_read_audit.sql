-- Every read of a resident's personal data (see the PostgreSQL migration).
CREATE TABLE personal_data_reads (
    id          TEXT PRIMARY KEY NOT NULL,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    record_id   TEXT NOT NULL,
    purpose     TEXT NOT NULL
) STRICT;

CREATE INDEX personal_data_reads_customer_idx ON personal_data_reads (customer_id, at DESC, id DESC);
