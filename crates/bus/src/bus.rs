//! The [`Bus`] trait and what a subscriber receives: [`Subscription`] and
//! [`Delivery`].
//!
//! Both implementations hand out the same concrete `Subscription` and
//! `Delivery` types (an enum inside picks the implementation), so service code
//! is written once against `Arc<dyn Bus>`.

use std::time::Duration;

use async_trait::async_trait;

use crate::envelope::Envelope;
use crate::error::{BusError, BusResult};
use crate::memory;
use crate::rabbit;
use crate::topology::QueueSpec;

/// A topic-routed, at-least-once event bus with dead letters.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes every envelope (routing key = event type) and returns only once
    /// each is confirmed. A message no queue takes, or the broker refuses, is an
    /// error naming its event id; messages before it in the batch may have been
    /// delivered (consumers are idempotent, so publishing the batch again is safe).
    async fn publish(&self, batch: &[Envelope]) -> BusResult<()>;

    /// Puts every envelope straight into the queue named `queue` (full name,
    /// prefix included), bypassing the events exchange: no binding sees it, so
    /// neither other queues nor the analytics stream get a copy. Otherwise as
    /// [`Bus::publish`]: persistent, the same properties and headers, and
    /// returns only once each is confirmed.
    ///
    /// For messages meant for whoever consumes one queue, such as a router's
    /// heartbeat to its own partition queue: on a queue with a single active
    /// consumer, the process that receives it is the active one.
    ///
    /// A queue that does not exist is a [`BusError::Queue`] naming it (on
    /// RabbitMQ, messages before the refused one may have been delivered, as
    /// with `publish`). An empty batch does nothing, not even check the queue.
    /// On an [`InProcessBus`](crate::InProcessBus) built to confirm only when
    /// settled, this waits for the queue's consumer to settle the messages:
    /// never await it on the task that consumes that queue.
    async fn send_to_queue(&self, queue: &str, batch: &[Envelope]) -> BusResult<()>;

    /// Declares `spec` and its bindings. Idempotent; an existing queue with other
    /// arguments is an error.
    async fn ensure_queue(&self, spec: &QueueSpec) -> BusResult<()>;

    /// Starts consuming `queue` (declaring it first), with at most `prefetch`
    /// unsettled deliveries in flight.
    async fn subscribe(&self, queue: &QueueSpec, prefetch: u16) -> BusResult<Subscription>;

    /// Readiness: Ok when the bus can publish now.
    async fn check(&self) -> BusResult<()>;
}

/// Why a message ended up in the dead-letter queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// A consumer rejected it, giving this reason.
    Rejected(String),
    /// It was delivered more often than the queue's delivery limit allows.
    DeliveryLimit,
    /// Any other broker reason (`x-death` reason: `expired`, `maxlen`, or
    /// `rejected` when the reason text could not be attached).
    Other(String),
}

/// Where a dead letter came from and why. Present only on deliveries from the
/// dead-letter queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The queue that gave up on the message.
    pub queue: String,
    pub reason: DeadLetterReason,
}

/// One message handed to a subscriber. Settle it with [`Delivery::ack`],
/// [`Delivery::retry`] or [`Delivery::reject`] (or [`ack_all`] for a batch); a
/// delivery dropped unsettled is retried, so a panic or a cancelled handler
/// never loses a message.
pub struct Delivery {
    pub envelope: Envelope,
    /// The broker delivered this message before (to this or another consumer).
    pub redelivered: bool,
    /// How many times it was returned before this delivery (0 the first time);
    /// the queue dead-letters it once this exceeds the delivery limit.
    pub delivery_count: u32,
    /// Present on deliveries from the dead-letter queue.
    pub dead_letter: Option<DeadLetter>,
    /// The message's offset, on deliveries from a stream; store it to resume.
    pub stream_offset: Option<u64>,
    /// `None` once settled, so `Drop` knows whether to retry.
    settler: Option<Settler>,
}

/// The implementation-specific handle that settles a delivery.
pub(crate) enum Settler {
    Memory(memory::MemorySettler),
    Rabbit(rabbit::RabbitSettler),
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Delivery")
            .field("event_id", &self.envelope.event_id())
            .field("event_type", &self.envelope.event_type())
            .field("redelivered", &self.redelivered)
            .field("delivery_count", &self.delivery_count)
            .field("dead_letter", &self.dead_letter)
            .field("stream_offset", &self.stream_offset)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    pub(crate) fn new(
        envelope: Envelope,
        redelivered: bool,
        delivery_count: u32,
        dead_letter: Option<DeadLetter>,
        stream_offset: Option<u64>,
        settler: Settler,
    ) -> Self {
        Delivery {
            envelope,
            redelivered,
            delivery_count,
            dead_letter,
            stream_offset,
            settler: Some(settler),
        }
    }

    pub fn event_id(&self) -> &str {
        self.envelope.event_id()
    }

    /// A span for handling this delivery, continuing the publisher's trace
    /// (a root span when the event was not traced or no OpenTelemetry layer
    /// is installed).
    pub fn span(&self) -> tracing::Span {
        let span = tracing::info_span!(
            "handle event",
            event_id = %self.event_id(),
            event_type = %self.envelope.event_type(),
            redelivered = self.redelivered,
        );
        crate::trace::set_parent_from(&span, self.envelope.traceparent.as_deref());
        span
    }

    /// Done with it: the queue forgets the message.
    pub async fn ack(mut self) -> BusResult<()> {
        let settler = self.take_settler();
        let result = match &settler {
            Some(Settler::Memory(settler)) => settler.ack(),
            Some(Settler::Rabbit(settler)) => settler.ack().await,
            None => Ok(()),
        };
        self.settle_error(result)
    }

    /// Not now: the message goes back to the queue to be delivered again (after
    /// the messages ahead of it). Each retry counts towards the delivery limit,
    /// after which the message is dead-lettered.
    pub async fn retry(mut self) -> BusResult<()> {
        let settler = self.take_settler();
        let result = match &settler {
            Some(Settler::Memory(settler)) => settler.retry(),
            Some(Settler::Rabbit(settler)) => settler.retry().await,
            None => Ok(()),
        };
        self.settle_error(result)
    }

    /// Never: the message goes to the dead-letter queue with `reason`. The reason
    /// is stored with the message and read by operators: no personal data.
    pub async fn reject(mut self, reason: &str) -> BusResult<()> {
        let settler = self.take_settler();
        let result = match &settler {
            Some(Settler::Memory(settler)) => settler.reject(&self.envelope, reason),
            Some(Settler::Rabbit(settler)) => settler.reject(&self.envelope, reason).await,
            None => Ok(()),
        };
        self.settle_error(result)
    }

    fn take_settler(&mut self) -> Option<Settler> {
        self.settler.take()
    }

    fn settle_error(&self, result: BusResult<()>) -> BusResult<()> {
        result.map_err(|source| BusError::Settle {
            event_id: self.event_id().to_owned(),
            source: Box::new(source),
        })
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        match self.settler.take() {
            None => {}
            Some(Settler::Memory(settler)) => {
                tracing::debug!(event_id = %self.envelope.event_id(), "unsettled delivery dropped, retrying");
                // Dropping is not a decision to give up, so it counts like a
                // retry (as a consumer crash does on a quorum queue).
                let _ignored = settler.retry();
            }
            Some(Settler::Rabbit(settler)) => {
                tracing::debug!(event_id = %self.envelope.event_id(), "unsettled delivery dropped, retrying");
                settler.retry_in_background();
            }
        }
    }
}

/// Acks a batch. On RabbitMQ, one `basic.ack` with `multiple = true` covers
/// every delivery of the batch that is the oldest outstanding on its channel,
/// so a batch usually costs one frame; the rest are acked one by one. Every
/// delivery is attempted; the first error is returned.
pub async fn ack_all(deliveries: Vec<Delivery>) -> BusResult<()> {
    let mut first_error = None;
    let mut rabbit_batch = Vec::new();
    for mut delivery in deliveries {
        match delivery.take_settler() {
            None => {}
            Some(Settler::Memory(settler)) => {
                if let Err(error) = delivery.settle_error(settler.ack()) {
                    first_error.get_or_insert(error);
                }
            }
            Some(Settler::Rabbit(settler)) => {
                rabbit_batch.push((delivery.event_id().to_owned(), settler));
            }
        }
    }
    if let Err(error) = rabbit::ack_many(rabbit_batch).await {
        first_error.get_or_insert(error);
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// A consumer on one queue. Dropping it stops consuming; unsettled deliveries
/// go back to the queue.
pub struct Subscription {
    queue: String,
    source: Source,
}

pub(crate) enum Source {
    Memory(memory::MemorySubscription),
    Rabbit(Box<rabbit::RabbitSubscription>),
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Subscription")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    pub(crate) fn new(queue: String, source: Source) -> Self {
        Subscription { queue, source }
    }

    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Waits for at least one delivery, then up to `linger` for more, returning
    /// at most `max` (never more than the prefetch allows in flight).
    ///
    /// Cancel-safe: deliveries gathered by a cancelled call are dropped, which
    /// retries them. On RabbitMQ a lost connection is waited out and the
    /// consumer re-established; errors are returned only when that fails.
    pub async fn next_batch(&mut self, max: usize, linger: Duration) -> BusResult<Vec<Delivery>> {
        let max = max.max(1);
        match &mut self.source {
            Source::Memory(subscription) => subscription.next_batch(max, linger).await,
            Source::Rabbit(subscription) => subscription.next_batch(max, linger).await,
        }
    }
}
