//! The SQLite routing store (`routing.db`).

/// The routing store in SQLite.
#[derive(Clone)]
pub struct SqliteRoutingStore {
    _pool: sqlx::SqlitePool,
}
