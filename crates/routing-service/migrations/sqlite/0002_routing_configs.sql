-- Routing configurations supervisors made through the API, newest last (see
-- the PostgreSQL migration). Times are INTEGER microseconds, as elsewhere.
CREATE TABLE routing_configs (
    version   INTEGER PRIMARY KEY AUTOINCREMENT,
    toml      TEXT    NOT NULL,
    stored_at INTEGER NOT NULL
) STRICT;
