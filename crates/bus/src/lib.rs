//! The Switchboard event bus.
//!
//! Events leave a service through its outbox and reach the other services
//! through one topic exchange (see DESIGN.md, reliability model and messaging
//! topology). The modules, in the order data flows through them:
//!
//! - [`envelope`]: an [`Envelope`] is one `switchboard.v1.Event` plus the W3C
//!   `traceparent` it was produced under.
//! - [`outbox`]: services write envelopes to their outbox table in the same
//!   transaction as their change ([`OutboxStore`]); the [`OutboxRelay`]
//!   publishes them and deletes them once confirmed.
//! - [`bus`]: the [`Bus`] trait (publish with confirms, send to one queue,
//!   declare, subscribe, readiness) and what subscribers get: a
//!   [`Subscription`] yielding batches of [`Delivery`], each acked, retried or
//!   rejected to the dead-letter queue.
//! - [`topology`]: exchange and queue names under a prefix ([`Topology`]) and
//!   the queues to declare ([`QueueSpec`]), routing partitions with a single
//!   active consumer; topic matching.
//! - [`rabbit`]: [`RabbitBus`], RabbitMQ via lapin with a supervised,
//!   reconnecting connection. [`memory`]: [`InProcessBus`], the same semantics
//!   in memory for the embedded mode. One contract test suite runs against both.
//! - [`mod@consume`]: the consumer loop ([`consume()`](consume::consume)): batch in,
//!   per-delivery [`Outcome`] out, settled, until shutdown.
//! - [`seal`]: personal data travels sealed in the event ([`Sealer`],
//!   XChaCha20-Poly1305, rotating [`EventKey`]s).
//! - [`trace`]: `traceparent` to and from tracing spans.
//! - [`error`]: [`BusError`] and [`BusResult`].

pub mod bus;
pub mod consume;
pub mod envelope;
pub mod error;
pub mod memory;
pub mod outbox;
pub mod rabbit;
pub mod seal;
pub mod topology;
pub mod trace;

pub use bus::{Bus, DeadLetter, DeadLetterReason, Delivery, Subscription, ack_all};
pub use consume::{BatchHandler, ConsumeStats, Outcome, consume, consume_concurrently};
pub use envelope::{CONTENT_TYPE, Envelope};
pub use error::{BoxError, BusError, BusResult};
pub use memory::InProcessBus;
pub use outbox::{OutboxRecord, OutboxRelay, OutboxStore};
pub use rabbit::RabbitBus;
pub use seal::{EventKey, Sealer};
pub use topology::{QueueKind, QueueSpec, StreamOffset, Topology};
