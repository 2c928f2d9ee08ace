//! The `switchboard` binary's library: everything `main.rs` calls, so the
//! end-to-end tests start exactly what the binary starts.
//!
//! - [`cli`]: flags, each with its `SWITCHBOARD_*` environment variable.
//! - [`app`]: picks stores and bus from the settings, starts the services on
//!   one gRPC and one HTTP server, shuts them down in order.
//! - [`commands`]: `up`, `serve`, `migrate`: settings, credentials, telemetry,
//!   listeners, then [`app::start`].
//! - [`demo`]: demo residents' contacts and the demo contact centre's agents
//!   from `seeds/demo.toml`, validated at load; `up --demo` submits the
//!   contacts through intake.
//! - [`simulate`]: simulated agent desktops for `up --demo`, gRPC clients of
//!   the process's own agent service that take the demo contacts.
//! - [`submit`]: the command-line intake client.
//! - [`bench`]: throughput beside raw PostgreSQL and RabbitMQ, in one run.

pub mod app;
pub mod bench;
pub mod cli;
pub mod commands;
pub mod demo;
pub mod simulate;
pub mod submit;
