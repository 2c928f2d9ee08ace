//! What every Switchboard service starts with.
//!
//! A binary starts a service in this order, each step one module:
//!
//! 1. [`config`]: [`Settings`] from defaults < TOML file (`--config`,
//!    `SWITCHBOARD_CONFIG`) < `SWITCHBOARD_*` environment < flags, validated
//!    with the failing key named.
//! 2. [`dev_credentials`]: when no credentials are configured, the data dir's
//!    development secrets stand in ([`DevCredentials::apply_if_unconfigured`])
//!    and `dev-credentials.env` is written for shells and tests.
//! 3. [`telemetry`]: logs, trace ids and (only with an endpoint) OTLP export;
//!    [`telemetry::TraceLayer`] continues each caller's trace, and
//!    [`telemetry::TraceContextInterceptor`] passes it on.
//! 4. [`shutdown`]: one [`Shutdown`], fired by SIGTERM/SIGINT, that every
//!    server and worker waits on.
//! 5. [`auth`]: API keys and JWTs become a [`Principal`]; the [`auth::Policy`]
//!    table says which roles may call each gRPC method and HTTP route, deny
//!    by default; [`auth::AuthLayer`] enforces it in front of tonic and axum.
//! 6. [`health`] and [`metrics`]: readiness checks feeding gRPC health and
//!    `/healthz`, `/readyz`; Prometheus `/metrics` from one shared registry.
//! 7. [`grpc`] and [`http`]: servers with health, reflection, the shared
//!    [`ServerLayers`] and message limits, to which the binary adds its
//!    services.
//!
//! Alongside: [`status`] and [`problem`], the one place errors become gRPC
//! statuses and HTTP problem responses; [`error`], this crate's error type;
//! [`wire`], the domain ⇄ proto conversions every service shares; [`database`],
//! which database errors are worth retrying; [`schedule`], jobs run on a
//! timer;
//! [`testing`], fresh PostgreSQL databases, broker addresses and credentials
//! for tests.

pub mod auth;
pub mod config;
pub mod database;
pub mod dev_credentials;
pub mod error;
pub mod grpc;
pub mod health;
pub mod http;
pub mod metrics;
pub mod problem;
pub mod schedule;
pub mod shutdown;
pub mod status;
pub mod telemetry;
pub mod testing;
pub mod wire;

pub use auth::{Principal, Role};
pub use config::Settings;
pub use dev_credentials::DevCredentials;
pub use error::{RuntimeError, RuntimeResult};
pub use grpc::{GrpcServer, ServerLayers};
pub use health::Health;
pub use metrics::Metrics;
pub use shutdown::Shutdown;
