-- The case store: residents, their cases and contacts, and the inbox and
-- outbox that make consuming and publishing exactly-once in effect.
-- Runs with search_path = cases (the schema is created by the migrator first).

-- One row per resident. Identifiers are stored in their normalised form
-- (E.164 phone, lowercase email, canonical postcode) so matching is an exact,
-- indexed comparison. Identifiers are only ever filled in, never overwritten.
CREATE TABLE customers (
    id           uuid PRIMARY KEY,
    name         text,
    -- Lowercased name for case-insensitive "contains" search, folded by the
    -- application (Unicode rules) so PostgreSQL and SQLite agree.
    name_folded  text,
    phone_e164   text,
    email        text,
    postcode     text,
    address_line text,
    uprn         text,
    created_at   timestamptz NOT NULL
);

-- Not unique: two residents may share a landline, and a future matching rule
-- may tell them apart; today the earliest customer holding a value wins.
CREATE INDEX customers_phone_e164_idx ON customers (phone_e164) WHERE phone_e164 IS NOT NULL;
CREATE INDEX customers_email_idx ON customers (email) WHERE email IS NOT NULL;
CREATE INDEX customers_postcode_idx ON customers (postcode) WHERE postcode IS NOT NULL;

CREATE TABLE cases (
    id          uuid PRIMARY KEY,
    reference   text NOT NULL UNIQUE CHECK (reference LIKE 'CS-%'),
    customer_id uuid NOT NULL REFERENCES customers (id),
    service     text NOT NULL,
    status      text NOT NULL CHECK (status IN ('open', 'waiting_on_resident', 'waiting_on_council', 'resolved', 'closed')),
    opened_at   timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE INDEX cases_customer_idx ON cases (customer_id, opened_at DESC, id DESC);

-- At most one open case per resident and service: a follow-up on any channel
-- joins it. Two writers racing to open the same case make one of them fail
-- here, and its batch is retried (and then joins the winner's case).
CREATE UNIQUE INDEX cases_one_open_per_service_idx ON cases (customer_id, service)
    WHERE status IN ('open', 'waiting_on_resident', 'waiting_on_council');

CREATE TABLE contacts (
    id          uuid PRIMARY KEY,
    reference   text NOT NULL,
    customer_id uuid NOT NULL REFERENCES customers (id),
    case_id     uuid NOT NULL REFERENCES cases (id),
    channel     text NOT NULL CHECK (channel IN ('phone', 'web', 'face_to_face', 'email', 'letter')),
    service     text NOT NULL,
    summary     text NOT NULL,
    details     jsonb NOT NULL,
    needs       jsonb NOT NULL,
    origin      jsonb NOT NULL,
    received_at timestamptz NOT NULL,
    stored_at   timestamptz NOT NULL
);

-- Intake guarantees uniqueness of contact references in its own store; here a
-- plain index serves look-ups without letting a bad upstream row block a batch.
CREATE INDEX contacts_reference_idx ON contacts (reference);
CREATE INDEX contacts_customer_idx ON contacts (customer_id, received_at DESC, id DESC);
CREATE INDEX contacts_case_idx ON contacts (case_id, received_at, id);

-- Events already applied, written in the same transaction as their effect.
CREATE TABLE inbox (
    event_id     uuid PRIMARY KEY,
    processed_at timestamptz NOT NULL
);

-- Events to publish, written in the same transaction as the change they
-- announce and deleted once the broker has confirmed them.
CREATE TABLE outbox (
    event_id    uuid PRIMARY KEY,
    event_type  text NOT NULL,
    body        bytea NOT NULL,
    traceparent text,
    created_at  timestamptz NOT NULL
);
