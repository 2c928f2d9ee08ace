-- Every read of a resident's personal data through CaseService: who read it,
-- when, what (the method and the record), and why (the purpose the caller
-- stated). Written before the answer leaves the service, so no read goes
-- unrecorded.
CREATE TABLE personal_data_reads (
    id          uuid PRIMARY KEY,
    at          timestamptz NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    customer_id uuid NOT NULL,
    -- The contact, case or customer read.
    record_id   uuid NOT NULL,
    purpose     text NOT NULL
);

CREATE INDEX personal_data_reads_customer_idx ON personal_data_reads (customer_id, at DESC, id DESC);
