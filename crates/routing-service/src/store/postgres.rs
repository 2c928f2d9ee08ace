//! The PostgreSQL routing store (schema `routing`).

/// The routing store in PostgreSQL.
#[derive(Clone)]
pub struct PgRoutingStore {
    _pool: sqlx::PgPool,
}
