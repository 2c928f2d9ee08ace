-- Identity resolution: matches too uncertain to make automatically are
-- suggested to agents; confirmed ones merge two customers, recording every
-- row the merge moved so that it can be undone exactly.

-- A customer merged into another stays, emptied of contacts and cases, so an
-- un-merge can restore it; it is no longer matched or found by search.
ALTER TABLE customers ADD COLUMN merged_into uuid REFERENCES customers (id);

CREATE INDEX customers_uprn_idx ON customers (uprn) WHERE uprn IS NOT NULL;

-- A possible match found when a contact arrived: the customer the contact
-- went to, and an existing customer who may be the same person.
CREATE TABLE match_suggestions (
    id           uuid PRIMARY KEY,
    customer_id  uuid NOT NULL REFERENCES customers (id),
    candidate_id uuid NOT NULL REFERENCES customers (id),
    contact_id   uuid NOT NULL,
    confidence   smallint NOT NULL CHECK (confidence BETWEEN 0 AND 100),
    -- The signals behind the confidence, e.g. {same_postcode,name_agrees}.
    signals      text[] NOT NULL,
    status       text NOT NULL CHECK (status IN ('open', 'merged', 'dismissed')),
    created_at   timestamptz NOT NULL,
    decided_by   text,
    decided_at   timestamptz,
    CHECK (customer_id <> candidate_id)
);

-- One open suggestion per pair, whichever way round it was found.
CREATE UNIQUE INDEX match_suggestions_open_pair_idx
    ON match_suggestions (LEAST(customer_id, candidate_id), GREATEST(customer_id, candidate_id))
    WHERE status = 'open';
CREATE INDEX match_suggestions_open_idx ON match_suggestions (created_at DESC, id DESC) WHERE status = 'open';

-- Each merge, with who made it and why, and its undoing.
CREATE TABLE customer_merges (
    id              uuid PRIMARY KEY,
    survivor_id     uuid NOT NULL REFERENCES customers (id),
    merged_id       uuid NOT NULL REFERENCES customers (id),
    reason          text NOT NULL,
    merged_by       text NOT NULL,
    merged_at       timestamptz NOT NULL,
    -- Identifier columns of the survivor filled in from the merged customer.
    filled_columns  text[] NOT NULL,
    unmerged_by     text,
    unmerged_at     timestamptz,
    unmerge_reason  text
);

CREATE INDEX customer_merges_survivor_idx ON customer_merges (survivor_id, merged_at);
CREATE INDEX customer_merges_merged_idx ON customer_merges (merged_id, merged_at);

-- What a merge moved: contacts (with their case) and cases (with their
-- status, for a duplicate case closed into the survivor's).
CREATE TABLE customer_merge_moves (
    merge_id      uuid NOT NULL REFERENCES customer_merges (id),
    kind          text NOT NULL CHECK (kind IN ('contact', 'case')),
    item_id       uuid NOT NULL,
    from_customer uuid NOT NULL,
    from_case     uuid,
    from_status   text,
    PRIMARY KEY (merge_id, kind, item_id)
);
