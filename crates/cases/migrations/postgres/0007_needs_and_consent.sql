-- What a resident told the council about how to serve them, and the consents
-- they gave (crates/cases/src/needs.rs has the rules).
--
-- customers.needs: the needs record as JSON (preferred channel and language,
--   accessibility needs, vulnerabilities, who updated it and when); '{}' when
--   nothing is known. Vulnerabilities are only ever in it while a
--   vulnerability consent is on record.
-- customer_merges.survivor_needs_before: the survivor's needs before a merge
--   added the merged customer's, restored by un-merging; NULL when the merge
--   changed nothing.
-- customer_consents: each consent given, kept after it is withdrawn.
--   statement: what the resident agreed to (may name them; stays here).
--   channel: the channel it was given on, NULL when not known.
--   recorded_by: a staff subject, or 'contact' when given on a contact
--   (contact_id then names it).
--   withdrawn_*: set together when the resident withdraws it.
ALTER TABLE customers ADD COLUMN needs jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE customer_merges ADD COLUMN survivor_needs_before jsonb;

CREATE TABLE customer_consents (
    id                uuid PRIMARY KEY,
    customer_id       uuid NOT NULL REFERENCES customers (id),
    purpose           text NOT NULL CHECK (purpose IN ('vulnerability')),
    statement         text NOT NULL,
    channel           text CHECK (channel IN ('phone', 'web', 'face_to_face', 'email', 'letter')),
    recorded_by       text NOT NULL,
    given_at          timestamptz NOT NULL,
    contact_id        uuid,
    withdrawn_at      timestamptz,
    withdrawn_by      text,
    withdrawal_reason text,
    CHECK ((withdrawn_at IS NULL) = (withdrawn_by IS NULL)),
    CHECK ((withdrawn_at IS NULL) = (withdrawal_reason IS NULL))
);

CREATE INDEX customer_consents_customer_idx ON customer_consents (customer_id, given_at, id);
