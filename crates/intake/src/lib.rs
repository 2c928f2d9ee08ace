//! Intake: takes contacts in from every channel and answers only once they are
//! durably stored, together with the event that announces them.
//!
//! - [`grpc`]: `switchboard.v1.IntakeService` ([`IntakeGrpc`]), for the CTI
//!   adapter, reception desks and other clients.
//! - [`api`]: `POST /v1/contacts`, the same request in its proto3 JSON form.
//! - [`forms`]: the residents' web form (no credentials, no JavaScript,
//!   rate limited per client address).
//! - [`convert`]: wire types to domain drafts, at the edge.
//! - [`service`]: [`Intake`], shared by the three edges: idempotency key and
//!   request hash, validation (`ContactDraft::validate`), the sealed
//!   `contact.received` event ([`events`]), then the writer.
//! - [`writer`]: group commit. One task collects concurrent submissions and
//!   commits them in one transaction, then answers each.
//! - [`store`]: [`IntakeStore`], with [`PgIntakeStore`] (schema `intake`) and
//!   [`SqliteIntakeStore`] (`intake.db`): contacts, idempotency keys and the
//!   outbox. Both are the relay's `switchboard_bus::OutboxStore`.
//! - [`metrics`]: counters for the binary's Prometheus registry.
//! - [`error`]: [`IntakeError`], and the one mapping to gRPC statuses and HTTP
//!   problems.
//!
//! How a contact flows:
//!
//! ```text
//!  gRPC ─┐                                   ┌─ one transaction per batch ─┐
//!  HTTP ─┼─► Intake::submit ─► ContactWriter ─► contacts + idempotency_keys  │─► answer each caller
//!  form ─┘   validate, hash,   (mpsc queue,  │  + outbox rows (sealed event)│
//!            seal event         ≤500/batch)  └──────────────────────────────┘
//!                                                     │ notify
//!                                                     ▼
//!                              OutboxRelay (switchboard-bus) ─► bus ─► delete rows once confirmed
//! ```
//!
//! Wiring, in the binary:
//!
//! ```text
//! let store = Arc::new(PgIntakeStore::connect(&database_url).await?); // or SqliteIntakeStore::open(&data_dir)
//! let wake = Arc::new(tokio::sync::Notify::new());
//! let metrics = IntakeMetrics::new();
//! metrics.register(&mut registry);
//! let (intake, writer) =
//!     Intake::start(store.clone(), catalogue, sealer, wake.clone(), WriterConfig::default(), metrics);
//! let relay = OutboxRelay::new(store.clone(), bus, wake);        // run(shutdown) on its own task
//! grpc_server.add_service(IntakeGrpc::new(intake.clone()).into_server());
//! let http = api_router(intake.clone()).merge(public_router(intake, FormRateLimit::default()));
//! axum::serve(listener, http.into_make_service_with_connect_info::<SocketAddr>());
//! // at shutdown: stop the servers, drop every `Intake`, then `writer.await` (the
//! // queue is drained and committed), then stop the relay.
//! ```

pub mod api;
pub mod convert;
pub mod error;
pub mod events;
pub mod forms;
pub mod grpc;
pub mod metrics;
pub mod retention;
pub mod service;
pub mod store;
pub mod writer;

pub use api::{MAX_HTTP_BODY_BYTES, api_router};
pub use error::{IntakeError, IntakeResult};
pub use forms::{FormRateLimit, public_router};
pub use grpc::{IntakeGrpc, MAX_GRPC_REQUEST_BYTES};
pub use metrics::IntakeMetrics;
pub use retention::run_retention;
pub use service::{Accepted, Intake};
pub use store::{IntakeStore, PgIntakeStore, SqliteIntakeStore};
pub use writer::{ContactWriter, WriterConfig, spawn_writer};
