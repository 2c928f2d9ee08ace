//! The one error type of this crate.

use std::path::PathBuf;

/// `Result` with a [`RouterError`].
pub type RouterResult<T> = Result<T, RouterError>;

/// Everything that can go wrong in the routing service.
///
/// Messages name operations, ids and keys, never residents' data.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// A statement or connection failed; `operation` names what we were doing.
    #[error("database {operation} failed")]
    Database {
        operation: &'static str,
        #[source]
        source: sqlx::Error,
    },

    /// Applying the schema migrations failed.
    #[error("routing store migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),

    /// The embedded store's data directory could not be created.
    #[error("could not create data directory {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Another router wrote to this partition's journal: it has taken the
    /// partition over, and this one must stand by.
    #[error("partition {partition} was taken over by another router")]
    Fenced { partition: String },

    /// This router does not own the partition now (it stands by, or is
    /// taking over); the caller should try the active router.
    #[error("this router is standing by for partition {partition}")]
    NotActive { partition: String },

    /// A stored value does not read back; `column` names it.
    #[error("stored {column} is invalid: {reason}")]
    Corrupt { column: &'static str, reason: String },

    /// The engine refused a command (unknown contact, wrong agent, …).
    #[error(transparent)]
    Routing(#[from] switchboard_routing::RoutingError),

    /// A routing configuration that does not validate.
    #[error(transparent)]
    Config(#[from] switchboard_routing::ConfigError),

    /// A request that names something this router does not know.
    #[error("{what} {id} is not known")]
    NotFound { what: &'static str, id: String },

    /// A request field that is wrong; `field` names it.
    #[error("{field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },

    /// The calling agent has no profile, or is not signed in.
    #[error("{0}")]
    FailedPrecondition(String),

    /// The bus failed in a way the consumer cannot wait out.
    #[error("bus failed")]
    Bus(#[from] switchboard_bus::BusError),
}

impl RouterError {
    pub(crate) fn database(operation: &'static str) -> impl FnOnce(sqlx::Error) -> RouterError {
        move |source| RouterError::Database { operation, source }
    }

    pub(crate) fn corrupt(column: &'static str) -> impl FnOnce(String) -> RouterError {
        move |reason| RouterError::Corrupt { column, reason }
    }

    /// True when doing the same thing again may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            RouterError::Database { source, .. } => switchboard_runtime::database::is_transient(source),
            RouterError::Bus(error) => error.is_transient(),
            _ => false,
        }
    }
}
