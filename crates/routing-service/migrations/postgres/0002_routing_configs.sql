-- Routing configurations supervisors made through the API, newest last. Every
-- routing process follows the newest, so a change made through one process
-- reaches the partitions that others route; each partition journals the
-- version it applied, so a take-over never goes back to an older one.
CREATE TABLE routing_configs (
    version   bigserial   PRIMARY KEY,
    toml      text        NOT NULL,
    stored_at timestamptz NOT NULL
);
