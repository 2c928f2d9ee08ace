//! Intake's one error type, and the one place it becomes a gRPC status or an
//! HTTP problem.

use axum::http::StatusCode;
use switchboard_domain::{ContactId, ValidationErrors};
use switchboard_runtime::problem::{Problem, ProblemField};
use switchboard_runtime::status;
use tonic::Status;

pub type IntakeResult<T> = Result<T, IntakeError>;

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The submission breaks the contact rules; every failing field is named.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),

    /// A field outside the domain's rules (the idempotency key itself) is malformed.
    #[error("invalid field {field}: {description}")]
    InvalidField { field: String, description: String },

    /// The idempotency key was first used with a different request.
    #[error("idempotency key already used with a different request")]
    IdempotencyKeyReused,

    /// Only seen inside the writer, which regenerates the references and
    /// retries; reaches a caller only if that keeps failing.
    #[error("contact reference already taken by {} contact(s)", .contact_ids.len())]
    ReferenceTaken { contact_ids: Vec<ContactId> },

    /// The batch this submission was committed in failed; nothing of it was stored.
    #[error("the batch holding this contact failed")]
    BatchFailed(#[source] std::sync::Arc<IntakeError>),

    /// The writer task is gone (shutting down): the caller may retry elsewhere.
    #[error("intake writer is not running")]
    WriterStopped,

    #[error("database error")]
    Database(#[from] sqlx::Error),

    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    #[error("cannot prepare the data directory {path}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A stored row that does not read back (a bug or a hand-edited database).
    #[error("stored data is unreadable: {0}")]
    StoredData(String),
}

impl IntakeError {
    /// A short, label-safe name for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            IntakeError::Invalid(_) | IntakeError::InvalidField { .. } => "invalid",
            IntakeError::IdempotencyKeyReused => "idempotency_key_reused",
            IntakeError::BatchFailed(error) => error.reason(),
            IntakeError::WriterStopped => "unavailable",
            IntakeError::Database(error) if is_unavailable(error) => "unavailable",
            _ => "internal",
        }
    }

    /// A failure of the database connection rather than of the statement: the
    /// caller may retry.
    fn is_unavailable(&self) -> bool {
        match self {
            IntakeError::WriterStopped => true,
            IntakeError::BatchFailed(error) => error.is_unavailable(),
            IntakeError::Database(error) => is_unavailable(error),
            _ => false,
        }
    }

    /// The HTTP answer. Internal errors are logged with their cause chain and
    /// answered opaquely.
    pub fn to_problem(&self) -> Problem {
        match self {
            IntakeError::Invalid(errors) => Problem::validation(errors),
            IntakeError::InvalidField { field, description } => {
                let mut problem = Problem::new(
                    StatusCode::BAD_REQUEST,
                    "the request has invalid fields",
                    format!("invalid fields: {field}"),
                );
                problem.errors.push(ProblemField {
                    field: field.clone(),
                    detail: description.clone(),
                });
                problem
            }
            // 422, as the IETF Idempotency-Key draft (draft-ietf-httpapi-idempotency-key-header,
            // "idempotency key is already used for a different request payload") asks:
            // the request is well formed but cannot be processed with this key. 409 is
            // kept for "the same key is still in flight", which cannot happen here because
            // concurrent uses of one key wait for the first and then replay its answer.
            IntakeError::IdempotencyKeyReused => {
                let mut problem = Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency key reused",
                    "this Idempotency-Key was already used with a different request; \
                     use a new key for a new contact"
                        .to_owned(),
                );
                problem.problem_type = "https://switchboard.dev/problems/idempotency-key-reused".to_owned();
                problem.errors.push(ProblemField {
                    field: "Idempotency-Key".to_owned(),
                    detail: "already used with a different request".to_owned(),
                });
                problem
            }
            error if error.is_unavailable() => {
                tracing::warn!(error.message = %error, error.chain = %status::cause_chain(error), "intake unavailable");
                let mut problem = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily unavailable",
                    "retry later".to_owned(),
                );
                problem.problem_type = "about:blank".to_owned();
                problem
            }
            error => Problem::internal(error),
        }
    }
}

impl From<IntakeError> for Status {
    fn from(error: IntakeError) -> Status {
        match &error {
            IntakeError::Invalid(errors) => status::invalid_argument(errors),
            IntakeError::InvalidField { field, description } => status::invalid_field(field, description),
            // ALREADY_EXISTS rather than FAILED_PRECONDITION: the key names a contact
            // that already exists, and retrying the same call can never succeed, which
            // is what ALREADY_EXISTS tells a client (FAILED_PRECONDITION suggests the
            // system state might change).
            IntakeError::IdempotencyKeyReused => {
                Status::already_exists("idempotency key already used with a different request")
            }
            error if error.is_unavailable() => status::unavailable(error),
            error => status::internal(error),
        }
    }
}

fn is_unavailable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed
    )
}
