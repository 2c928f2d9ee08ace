//! What every store needs to know about database errors, for PostgreSQL and
//! SQLite alike.

/// True when doing the same thing again may succeed: the database is away,
/// busy, or another writer won a race (a unique violation).
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database_error) => {
            if matches!(database_error.kind(), sqlx::error::ErrorKind::UniqueViolation) {
                return true;
            }
            let Some(code) = database_error.code() else {
                return false;
            };
            // PostgreSQL SQLSTATE classes: 08 connection exception, 40
            // transaction rollback (serialization failure, deadlock), 53
            // insufficient resources, 57 operator intervention (shutdown).
            if ["08", "40", "53", "57"]
                .iter()
                .any(|class| code.starts_with(class))
            {
                return true;
            }
            // SQLite extended result codes: the primary code is the low byte;
            // 5 is SQLITE_BUSY and 6 SQLITE_LOCKED (another writer holds the file).
            code.parse::<i32>()
                .map(|extended| matches!(extended & 0xff, 5 | 6))
                .unwrap_or(false)
        }
        _ => false,
    }
}

/// True when a row collided with a unique key or primary key.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database_error)
        if matches!(database_error.kind(), sqlx::error::ErrorKind::UniqueViolation))
}
