-- Erasure: a resident's right to be forgotten. Their personal data is
-- removed from every table of the case store; what is kept (ids, service,
-- channel, times, statuses, outcomes) carries no personal data and keeps the
-- statistics the council reports whole. Each erasure is recorded here, with
-- who made it and why.
CREATE TABLE erasures (
    customer_id uuid PRIMARY KEY REFERENCES customers (id),
    erased_by   text NOT NULL,
    erased_at   timestamptz NOT NULL,
    -- Staff's reason, e.g. the request's reference; must not name the resident.
    reason      text NOT NULL
);
