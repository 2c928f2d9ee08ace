//! The one error type of this crate.

use std::path::PathBuf;

/// `Result` with a [`CasesError`].
pub type CasesResult<T> = Result<T, CasesError>;

/// Everything that can go wrong in the case store and its consumer.
///
/// Messages name operations, ids and columns, never stored values: the store
/// holds residents' personal data, and errors end up in logs.
#[derive(Debug, thiserror::Error)]
pub enum CasesError {
    /// A statement or connection failed; `operation` names what we were doing.
    #[error("database {operation} failed")]
    Database {
        operation: &'static str,
        #[source]
        source: sqlx::Error,
    },

    /// Applying the schema migrations failed.
    #[error("case store migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),

    /// The embedded store's data directory could not be created.
    #[error("could not create data directory {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A stored value does not parse back into its domain type: the row was
    /// written by something other than this store, or a rule got stricter.
    /// `reason` is the domain parser's message, which never echoes the value.
    #[error("stored {column} is invalid: {reason}")]
    Corrupt { column: &'static str, reason: String },

    /// A timeline page token that this store did not issue.
    #[error("invalid page token")]
    InvalidPageToken,

    /// Newly generated case references kept colliding with existing ones
    /// (50 random bits each: this means something is badly wrong).
    #[error("case references kept colliding after {attempts} attempts")]
    ReferenceCollisions { attempts: u32 },

    /// A status change the case's current status does not allow.
    #[error("status change refused: {0}")]
    Transition(#[from] crate::lifecycle::TransitionError),

    /// Re-opening would give the resident two open cases for one service.
    #[error("the resident already has an open case for this service: {reference}")]
    AnotherOpenCase { reference: String },

    /// A merge, un-merge or suggestion decision the current state does not
    /// allow; the message says why (ids only).
    #[error("{0}")]
    MergeRefused(String),
    /// A signpost or referral, or its outcome, that the referral rules refuse.
    #[error("referral refused: {0}")]
    Referral(#[from] crate::referrals::ReferralError),

    /// An erasure the customer's state does not allow (already erased, or
    /// merged into another customer).
    #[error("{0}")]
    ErasureRefused(String),

    /// A needs or consent change the customer's state does not allow
    /// (erased, merged, vulnerability without consent, withdrawn already);
    /// the message says why (ids only).
    #[error("{0}")]
    NeedsRefused(String),

    /// The bus failed in a way the consumer cannot wait out.
    #[error("bus failed")]
    Bus(#[from] switchboard_bus::BusError),
}

impl CasesError {
    pub(crate) fn database(operation: &'static str) -> impl FnOnce(sqlx::Error) -> CasesError {
        move |source| CasesError::Database { operation, source }
    }

    pub(crate) fn corrupt(column: &'static str) -> impl FnOnce(String) -> CasesError {
        move |reason| CasesError::Corrupt { column, reason }
    }

    /// True when doing the same thing again may succeed: the database is away,
    /// busy, or another writer won a race (a unique violation from two
    /// consumers opening the same case at once; the retry joins the winner's).
    /// False for errors that retrying cannot fix, such as a row that breaks a
    /// check constraint.
    pub fn is_transient(&self) -> bool {
        match self {
            CasesError::Database { source, .. } => switchboard_runtime::database::is_transient(source),
            CasesError::Bus(error) => error.is_transient(),
            CasesError::ReferenceCollisions { .. } => true,
            CasesError::Migrate(_)
            | CasesError::DataDir { .. }
            | CasesError::Corrupt { .. }
            | CasesError::InvalidPageToken
            | CasesError::Transition(_)
            | CasesError::AnotherOpenCase { .. }
            | CasesError::NeedsRefused(_)
            | CasesError::MergeRefused(_)
            | CasesError::ErasureRefused(_)
            | CasesError::Referral(_) => false,
        }
    }
}
