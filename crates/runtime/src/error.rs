//! The one error type of this crate: everything that can stop a service from
//! starting (bad settings, unreadable files, a server that cannot bind).
//! Per-request failures are not errors here: they become statuses and problem
//! responses ([`crate::status`], [`crate::problem`], [`crate::auth::AuthFailure`]).

use std::path::PathBuf;

/// Why the runtime could not do what a service asked at start-up.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A setting is missing or invalid. `key` is its dotted path as written in
    /// the TOML file (`grpc_addr`, `auth.jwt.issuer`, `event_keys[0].key`), so
    /// the operator knows what to fix whichever layer it came from.
    #[error("{key}: {message}")]
    Config { key: String, message: String },

    /// A file the runtime reads or writes (config, JWKS, development secrets).
    #[error("{context} {}: {source}", path.display())]
    File {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The development secrets file exists but cannot be used.
    #[error("development secrets {}: {message}", path.display())]
    DevCredentials { path: PathBuf, message: String },

    /// A token could not be signed.
    #[error("token: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),

    /// Tracing or OpenTelemetry could not be set up.
    #[error("telemetry: {message}")]
    Telemetry { message: String },

    /// The gRPC server failed to serve.
    #[error("grpc server: {0}")]
    Grpc(#[from] tonic::transport::Error),

    /// The reflection service could not read the descriptor set.
    #[error("grpc reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),

    /// The HTTP server failed to serve.
    #[error("http server: {0}")]
    Http(#[source] std::io::Error),
}

/// Result of start-up work in this crate.
pub type RuntimeResult<T> = Result<T, RuntimeError>;

impl RuntimeError {
    pub(crate) fn config(key: impl Into<String>, message: impl Into<String>) -> RuntimeError {
        RuntimeError::Config {
            key: key.into(),
            message: message.into(),
        }
    }

    pub(crate) fn file(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> RuntimeError {
        RuntimeError::File {
            context,
            path: path.into(),
            source,
        }
    }
}
