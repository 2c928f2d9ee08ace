//! The consumer loop every service would otherwise write: take a batch, let the
//! handler decide per delivery, settle accordingly, until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::bus::{Delivery, Subscription, ack_all};
use crate::error::BusResult;

/// Back-off bounds when the subscription fails to deliver.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// What to do with one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Processed (or already processed: the inbox said so).
    Ack,
    /// Failed for a reason that may pass (database away): deliver again later.
    /// Counts towards the delivery limit.
    Retry,
    /// Can never succeed (e.g. an event this consumer cannot accept): dead-letter
    /// it with this reason. No personal data in the reason.
    Reject(String),
}

/// Handles a batch of deliveries. Implement it on the service's consumer.
#[async_trait]
pub trait BatchHandler: Send + Sync {
    /// Returns one outcome per delivery, in the same order. Missing outcomes are
    /// treated as [`Outcome::Retry`].
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome>;
}

#[async_trait]
impl<T: BatchHandler + ?Sized> BatchHandler for Arc<T> {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        (**self).handle(batch).await
    }
}

/// Counts of what [`consume`] did, returned at shutdown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsumeStats {
    pub batches: u64,
    pub acked: u64,
    pub retried: u64,
    pub rejected: u64,
}

/// Consumes `subscription` in batches of up to `batch_size` (waiting up to
/// `linger` to fill one) until `shutdown` resolves, one batch at a time. A
/// batch being handled when shutdown comes is finished and settled first;
/// nothing is left unsettled.
///
/// Transient subscription errors are logged and retried with back-off; an error
/// that retrying cannot fix (such as a queue that does not exist) is returned.
pub async fn consume<H: BatchHandler>(
    subscription: Subscription,
    batch_size: usize,
    linger: Duration,
    handler: H,
    shutdown: impl Future<Output = ()> + Send,
) -> BusResult<ConsumeStats> {
    consume_concurrently(subscription, batch_size, linger, 1, handler, shutdown).await
}

/// [`consume`], with up to `in_flight` batches handled at once: the next
/// batch is taken while earlier ones wait on their store, and each is settled
/// as soon as it is handled, in whatever order they finish. Only for handlers
/// whose batches may be applied side by side (their store serialises what
/// must not overlap); the subscription's prefetch should cover `in_flight`
/// batches and one more.
pub async fn consume_concurrently<H: BatchHandler>(
    subscription: Subscription,
    batch_size: usize,
    linger: Duration,
    in_flight: usize,
    handler: H,
    shutdown: impl Future<Output = ()> + Send,
) -> BusResult<ConsumeStats> {
    tokio::pin!(shutdown);
    let in_flight = in_flight.max(1);
    let queue = subscription.queue().to_owned();
    let mut stats = ConsumeStats::default();
    let mut backoff = BACKOFF_MIN;
    let mut handling = FuturesUnordered::new();
    // The subscription is lent to the receive in progress and handed back
    // with its batch. That receive is kept across turns of the loop, not
    // dropped when a handled batch wins the race: a dropped receive would
    // hand back the deliveries it had gathered.
    let mut idle = Some(subscription);
    let mut receiving = None;
    // Set after a transient receive error: the next receive waits this long.
    let mut pause: Option<Duration> = None;
    let result = loop {
        if handling.len() < in_flight
            && let Some(mut subscription) = idle.take()
        {
            let wait = pause.take();
            receiving = Some(Box::pin(async move {
                if let Some(wait) = wait {
                    tokio::time::sleep(wait).await;
                }
                let batch = subscription.next_batch(batch_size, linger).await;
                (subscription, batch)
            }));
        }
        tokio::select! {
            biased;
            () = &mut shutdown => break Ok(()),
            Some((batch, outcomes)) = handling.next() => {
                stats.batches += 1;
                settle(&queue, batch, outcomes, &mut stats).await;
            }
            (subscription, batch) = async { receiving.as_mut().expect("receiving").await }, if receiving.is_some() => {
                receiving = None;
                idle = Some(subscription);
                match batch {
                    Ok(batch) => {
                        backoff = BACKOFF_MIN;
                        let handler = &handler;
                        handling.push(async move {
                            let outcomes = handler.handle(&batch).await;
                            debug_assert_eq!(outcomes.len(), batch.len(), "one outcome per delivery");
                            (batch, outcomes)
                        });
                    }
                    Err(error) if error.is_transient() => {
                        tracing::warn!(queue = %queue, error.message = %error, retry_in_ms = backoff.as_millis() as u64, "receiving failed, backing off");
                        pause = Some(backoff);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                    Err(error) => break Err(error),
                }
            }
        }
    };
    // Batches in hand are finished and settled, whatever ended the loop.
    drop(receiving);
    while let Some((batch, outcomes)) = handling.next().await {
        stats.batches += 1;
        settle(&queue, batch, outcomes, &mut stats).await;
    }
    result.map(|()| stats)
}

async fn settle(queue: &str, batch: Vec<Delivery>, outcomes: Vec<Outcome>, stats: &mut ConsumeStats) {
    let mut to_ack = Vec::with_capacity(batch.len());
    let mut outcomes = outcomes.into_iter();
    for delivery in batch {
        let event_id = delivery.event_id().to_owned();
        let result = match outcomes.next().unwrap_or(Outcome::Retry) {
            Outcome::Ack => {
                to_ack.push(delivery);
                continue;
            }
            Outcome::Retry => {
                stats.retried += 1;
                delivery.retry().await
            }
            Outcome::Reject(reason) => {
                stats.rejected += 1;
                tracing::warn!(queue = %queue, event_id = %event_id, reason = %reason, "rejecting event to the dead-letter queue");
                delivery.reject(&reason).await
            }
        };
        if let Err(error) = result {
            // The broker still holds the message and will deliver it again.
            tracing::warn!(queue = %queue, event_id = %event_id, error.message = %error, "could not settle delivery");
        }
    }
    let acks = to_ack.len() as u64;
    match ack_all(to_ack).await {
        Ok(()) => stats.acked += acks,
        Err(error) => {
            tracing::warn!(queue = %queue, error.message = %error, "could not ack batch; it will be delivered again");
        }
    }
}
