//! Switchboard routing: which agent gets which contact, and why. A pure
//! library with no I/O, no clock and no async; the routing service feeds it
//! events and publishes what it decides.
//!
//! - [`config`]: the routing configuration (queues per service and channel,
//!   skills and minimum proficiency, priorities and ageing, SLA targets,
//!   opening hours, overflow steps, queue limits, callbacks, out-of-hours
//!   outcomes), parsed from TOML and validated with the failing key named.
//! - [`calendar`]: opening hours in UK local time and England and Wales bank
//!   holidays, from the config.
//! - [`model`]: the engine's inputs and outputs: opaque [`ContactId`] and
//!   [`AgentId`], [`AgentProfile`], [`Needs`], [`Command`], [`Decision`].
//! - [`engine`]: the state machine. [`Engine::handle`] takes a time and a
//!   command and returns decisions: offers with their explanation, queue
//!   positions and wait estimates, callbacks, overflow, closures.
//! - [`explain`]: why a contact went to an agent, for audit.
//! - `state` and `matcher` (internal): contacts wait in *lanes* (one queue,
//!   one overflow step, one set of needs) and available agents sit in
//!   indexes per channel, skill and proficiency, ordered by idle time, so a
//!   decision looks at a handful of entries rather than every agent or every
//!   contact. A naive scan-all matcher ([`Engine::naive`]) makes the same
//!   decisions and is the baseline the benchmark and the tests compare to.
//! - [`error`]: [`ConfigError`] and [`RoutingError`].
//!
//! Data flows one way: config → [`Engine::new`]; commands (with the time) →
//! [`Engine::handle`] → decisions.

pub mod calendar;
pub mod config;
pub mod engine;
pub mod error;
pub mod explain;
mod matcher;
pub mod model;
mod ranked;
mod state;

pub use config::{QueueConfig, QueueId, Redirect, RoutingConfig};
pub use engine::{AgentStatus, ContactStage, ContactStatus, Engine, WaitingStatus};
pub use error::{ConfigError, RoutingError, RoutingResult};
pub use explain::{Candidate, Explanation, Trigger, Verdict};
pub use model::{
    AgentId, AgentProfile, Command, ContactId, Decision, Destination, Disposition, MoveReason, Needs,
    Outcome, Presence, ReturnReason, TransferTarget,
};
