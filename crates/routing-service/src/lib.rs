//! The routing service: owns a partition of the contact centre's routing
//! state, feeds it to the pure engine of `switchboard-routing`, and tells
//! agents, supervisors and the event stream what it decided.
//!
//! How data flows through the modules:
//!
//! ```text
//!  switchboard.routing queue ──► consumer ──► inbound ──► router ──► engine (switchboard-routing)
//!  (contact.received, case.*,    (single      (decode)    (one partition:     │
//!   heartbeats; single active     active:                  journal, inbox,    ▼
//!   consumer per partition)       take over)               outbox, in one   decisions ──► events ──► outbox
//!                                                          transaction)          └──► agent desktop streams
//!  agent desktops, supervisors, channels ──► grpc ──► router
//! ```
//!
//! - [`router`]: [`Router`], one partition's engine and what it keeps
//!   beside it; active or standing by; take-over by journal replay, with
//!   fencing of a previous owner.
//! - [`routers`]: [`Routers`], every partition's router in one process, and
//!   which one answers a request (the agent's partition; whoever holds the
//!   contact).
//! - [`journal`]: what the journal holds (inputs, not state) and the facts
//!   about contacts routing shows beside the engine's own.
//! - [`events`]: decisions as `switchboard.v1.Event`s, free of personal data.
//! - [`consumer`]: [`RoutingConsumer`], the single-active-consumer loop:
//!   heartbeats to its own partition queue tell it when it has become the
//!   active consumer; it then takes over, applies events, ticks the engine
//!   and relays the outbox.
//! - `inbound` (private): bus messages to router inputs.
//! - [`grpc`]: `AgentService`, `SupervisorService` and `QueueService`.
//! - [`store`]: the [`RoutingStore`] trait with its PostgreSQL and SQLite
//!   implementations; SQL lives there and in `migrations/`.
//! - [`error`]: [`RouterError`] and [`RouterResult`].

pub mod consumer;
pub mod error;
pub mod events;
pub mod grpc;
mod inbound;
pub mod journal;
pub mod router;
pub mod routers;
pub mod store;

pub use consumer::RoutingConsumer;
pub use error::{RouterError, RouterResult};
pub use grpc::RoutingGrpc;
pub use journal::{ContactInfo, StoredProfile};
pub use router::{AgentAction, AgentUpdate, Router, RouterSettings, TransferTo};
pub use routers::Routers;
pub use store::{JournalRow, PgRoutingStore, Record, RoutingStore, SqliteRoutingStore, StoredAgent};
