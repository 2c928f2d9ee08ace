-- Identity resolution (see the PostgreSQL migration). Signals and filled
-- columns are JSON arrays of strings.

ALTER TABLE customers ADD COLUMN merged_into TEXT REFERENCES customers (id);

CREATE INDEX customers_uprn_idx ON customers (uprn) WHERE uprn IS NOT NULL;

CREATE TABLE match_suggestions (
    id           TEXT PRIMARY KEY NOT NULL,
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    candidate_id TEXT NOT NULL REFERENCES customers (id),
    contact_id   TEXT NOT NULL,
    confidence   INTEGER NOT NULL CHECK (confidence BETWEEN 0 AND 100),
    signals      TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('open', 'merged', 'dismissed')),
    created_at   INTEGER NOT NULL,
    decided_by   TEXT,
    decided_at   INTEGER,
    CHECK (customer_id <> candidate_id)
) STRICT;

CREATE UNIQUE INDEX match_suggestions_open_pair_idx
    ON match_suggestions (min(customer_id, candidate_id), max(customer_id, candidate_id))
    WHERE status = 'open';
CREATE INDEX match_suggestions_open_idx ON match_suggestions (created_at DESC, id DESC) WHERE status = 'open';

CREATE TABLE customer_merges (
    id              TEXT PRIMARY KEY NOT NULL,
    survivor_id     TEXT NOT NULL REFERENCES customers (id),
    merged_id       TEXT NOT NULL REFERENCES customers (id),
    reason          TEXT NOT NULL,
    merged_by       TEXT NOT NULL,
    merged_at       INTEGER NOT NULL,
    filled_columns  TEXT NOT NULL,
    unmerged_by     TEXT,
    unmerged_at     INTEGER,
    unmerge_reason  TEXT
) STRICT;

CREATE INDEX customer_merges_survivor_idx ON customer_merges (survivor_id, merged_at);
CREATE INDEX customer_merges_merged_idx ON customer_merges (merged_id, merged_at);

CREATE TABLE customer_merge_moves (
    merge_id      TEXT NOT NULL REFERENCES customer_merges (id),
    kind          TEXT NOT NULL CHECK (kind IN ('contact', 'case')),
    item_id       TEXT NOT NULL,
    from_customer TEXT NOT NULL,
    from_case     TEXT,
    from_status   TEXT,
    PRIMARY KEY (merge_id, kind, item_id)
) STRICT;
