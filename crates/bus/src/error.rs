//! The one error type of this crate.

/// The error type the outbox store reports through (it lives in another crate).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `Result` with a [`BusError`].
pub type BusResult<T> = Result<T, BusError>;

/// Everything that can go wrong on the bus.
///
/// Messages name event ids, queues and key ids, never message contents: an event
/// may be about a resident, and errors end up in logs.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Not connected to the broker right now; the supervisor is reconnecting.
    /// Publishers should keep the work (the outbox does) and retry later.
    #[error("bus unavailable: {0}")]
    Unavailable(String),

    /// The broker answered an AMQP operation with an error.
    #[error("amqp {operation} failed")]
    Amqp {
        operation: &'static str,
        #[source]
        source: lapin::Error,
    },

    /// A `mandatory` message matched no queue: the broker returned it instead of
    /// dropping it silently.
    #[error("event {event_id} was unroutable (routing key {routing_key}): no queue is bound")]
    Unroutable { event_id: String, routing_key: String },

    /// The broker refused to take responsibility for a message (publisher nack).
    #[error("event {event_id} was not confirmed by the broker")]
    Nacked { event_id: String },

    /// An event cannot be published as it is (for example it has no id or type).
    #[error("invalid event: {0}")]
    InvalidEvent(String),

    /// A message body or outbox record is not a `switchboard.v1.Event`.
    #[error("could not decode event {event_id}")]
    Decode {
        event_id: String,
        #[source]
        source: prost::DecodeError,
    },

    /// A queue was declared again with different arguments, or a subscription
    /// names a queue that was never declared.
    #[error("queue {queue}: {reason}")]
    Queue { queue: String, reason: String },

    /// A delivery could not be settled (acked, retried or rejected), usually
    /// because its channel was lost; the broker will deliver it again.
    #[error("could not settle delivery of event {event_id}")]
    Settle {
        event_id: String,
        #[source]
        source: Box<BusError>,
    },

    /// Sealing configuration is unusable (no key, duplicate key ids).
    #[error("event keys: {0}")]
    Keys(String),

    /// Sealed personal data names a key this process does not hold (retired,
    /// erased, or never configured).
    #[error("event key {key_id} is not held")]
    UnknownKey { key_id: String },

    /// Sealed personal data failed authentication: tampered, truncated, or moved
    /// from another event.
    #[error("sealed personal data of event {event_id} failed to open")]
    Open { event_id: String },

    /// The outbox store failed to fetch or delete rows.
    #[error("outbox {operation} failed")]
    Outbox {
        operation: &'static str,
        #[source]
        source: BoxError,
    },

    /// The bus has been closed.
    #[error("bus closed")]
    Closed,
}

impl BusError {
    pub(crate) fn amqp(operation: &'static str) -> impl FnOnce(lapin::Error) -> BusError {
        move |source| BusError::Amqp { operation, source }
    }

    /// True when retrying later may succeed (the broker is away or a channel
    /// broke), as opposed to a message or configuration that is wrong.
    pub fn is_transient(&self) -> bool {
        match self {
            BusError::Unavailable(_)
            | BusError::Amqp { .. }
            | BusError::Nacked { .. }
            | BusError::Outbox { .. } => true,
            BusError::Settle { source, .. } => source.is_transient(),
            BusError::Unroutable { .. }
            | BusError::InvalidEvent(_)
            | BusError::Decode { .. }
            | BusError::Queue { .. }
            | BusError::Keys(_)
            | BusError::UnknownKey { .. }
            | BusError::Open { .. }
            | BusError::Closed => false,
        }
    }
}
