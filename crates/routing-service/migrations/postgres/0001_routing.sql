-- The routing store: each partition's journal, inbox and outbox, the
-- explanation of each offer, and the agents every partition shares.
-- Runs with search_path = routing (the schema is created by the migrator first).

-- Every input a partition's router accepted, replayed by a standby to rebuild
-- the engine. The primary key is the fence: two routers that both believe they
-- own a partition write the same next sequence number, and the second insert
-- fails instead of forking the journal.
CREATE TABLE journal (
    partition   text        NOT NULL,
    seq         bigint      NOT NULL CHECK (seq > 0),
    recorded_at timestamptz NOT NULL,
    -- A base entry holds the configuration a replay starts from, so nothing
    -- before the latest one is needed and compaction may drop it.
    is_base     boolean     NOT NULL,
    -- jsonb so a malformed entry is refused at write time, not at the replay
    -- that needs it; the router reads it back as text.
    entry       jsonb       NOT NULL,
    PRIMARY KEY (partition, seq)
);

-- Finding where a replay starts reads only base entries, which are few.
CREATE INDEX journal_base_idx ON journal (partition, seq) WHERE is_base;

-- Events a partition has already applied, written in the same transaction as
-- the journal entries that applied them, so a redelivery is recognised. Keyed
-- by partition too: one event may concern several partitions.
CREATE TABLE inbox (
    partition    text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL,
    PRIMARY KEY (partition, event_id)
);

-- Events to publish, written in the same transaction as the journal entries
-- that caused them and deleted once the broker has confirmed them.
CREATE TABLE outbox (
    event_id    uuid PRIMARY KEY,
    -- The relay publishes in this order. A partition's router writes one
    -- transaction at a time, so its events go out in the order it made them
    -- whatever their ids.
    position    bigserial   NOT NULL UNIQUE,
    event_type  text        NOT NULL,
    body        bytea       NOT NULL,
    traceparent text,
    created_at  timestamptz NOT NULL
);

-- Why the latest offer of each contact went where it went, kept for
-- supervisors asking afterwards; a later offer replaces the earlier answer.
CREATE TABLE offer_explanations (
    contact_id  uuid PRIMARY KEY,
    explanation text        NOT NULL,
    recorded_at timestamptz NOT NULL
);

-- Staff as routing knows them. Routing refers to an agent by agent_id, a
-- small number that says nothing about the person; the subject of their token
-- is looked up here. The number never changes once given, even when the
-- profile does, so journal entries that name it stay valid.
CREATE TABLE agents (
    agent_id   bigserial PRIMARY KEY,
    subject    text        NOT NULL UNIQUE,
    profile    text        NOT NULL,
    updated_at timestamptz NOT NULL
);
