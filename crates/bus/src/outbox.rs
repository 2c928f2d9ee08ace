//! The transactional outbox relay.
//!
//! A service writes its change and the event describing it in one database
//! transaction (the outbox row); the [`OutboxRelay`] then publishes outbox rows
//! and deletes them only once the bus has confirmed them. A crash between
//! publish and delete publishes the row again, which idempotent consumers
//! absorb: at-least-once, never lost.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::bus::Bus;
use crate::envelope::Envelope;
use crate::error::{BoxError, BusError, BusResult};

/// Rows fetched and published per round: large enough to amortise the confirm
/// round trip, small enough to keep one round well under a second.
pub const RELAY_BATCH: usize = 500;
/// How long an idle relay sleeps when nobody wakes it: the worst-case extra
/// latency when a writer forgets to notify (or lives in another process).
pub const IDLE_POLL: Duration = Duration::from_millis(250);
/// Back-off bounds after a failed round.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// One unsent event as the outbox table stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRecord {
    pub event_id: Uuid,
    /// The encoded `switchboard.v1.Event`.
    pub body: Vec<u8>,
    pub traceparent: Option<String>,
}

impl OutboxRecord {
    /// The row to insert for `envelope`; the event id must be a UUID.
    pub fn from_envelope(envelope: &Envelope) -> BusResult<Self> {
        let event_id = Uuid::parse_str(envelope.event_id()).map_err(|_| {
            BusError::InvalidEvent(format!("event id {:?} is not a uuid", envelope.event_id()))
        })?;
        Ok(OutboxRecord {
            event_id,
            body: envelope.encode_body(),
            traceparent: envelope.traceparent.clone(),
        })
    }

    pub fn to_envelope(&self) -> BusResult<Envelope> {
        Envelope::decode_body(&self.event_id.to_string(), &self.body, self.traceparent.clone())
    }
}

/// A service's outbox table. Implemented by each service's stores.
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Up to `limit` unsent records, oldest first (publication order is the
    /// order events were written).
    async fn fetch_unsent(&self, limit: usize) -> Result<Vec<OutboxRecord>, BoxError>;
    /// Forgets records the bus confirmed. Ids that are already gone are fine.
    async fn delete_sent(&self, ids: &[Uuid]) -> Result<(), BoxError>;
}

/// Publishes outbox rows until shut down. One relay per outbox: two relays on
/// one table would only publish duplicates.
pub struct OutboxRelay {
    store: Arc<dyn OutboxStore>,
    bus: Arc<dyn Bus>,
    /// Writers notify after committing a row, so events go out without waiting
    /// for the poll interval.
    wake: Arc<Notify>,
    batch_size: usize,
}

impl std::fmt::Debug for OutboxRelay {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("OutboxRelay")
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

/// What one round did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayRound {
    /// Rows published and deleted.
    pub published: usize,
    /// Rows left in place because they do not decode (logged each round).
    pub undecodable: usize,
}

impl OutboxRelay {
    pub fn new(store: Arc<dyn OutboxStore>, bus: Arc<dyn Bus>, wake: Arc<Notify>) -> Self {
        OutboxRelay {
            store,
            bus,
            wake,
            batch_size: RELAY_BATCH,
        }
    }

    /// Rows per round (default [`RELAY_BATCH`]).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Relays until `shutdown` resolves. A publish still waiting for its
    /// confirms when shutdown comes is abandoned: its rows stay and go out
    /// again at the next start, which idempotent consumers absorb (on the
    /// embedded bus a confirm waits for the consumer, which is stopping too).
    /// Rows already confirmed are deleted before the relay returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        let mut backoff = BACKOFF_MIN;
        loop {
            let published = tokio::select! {
                biased;
                () = &mut shutdown => return,
                published = self.publish_unsent() => published,
            };
            let round = match published {
                Ok(published) => self.delete_published(published).await,
                Err(error) => Err(error),
            };
            let wait = match round {
                Ok(round) if round.published == 0 => {
                    backoff = BACKOFF_MIN;
                    None
                }
                Ok(round) => {
                    backoff = BACKOFF_MIN;
                    tracing::debug!(published = round.published, "outbox relayed");
                    // More may be waiting: go again at once (but let shutdown in).
                    Some(Duration::ZERO)
                }
                Err(error) => {
                    tracing::warn!(
                        error.message = %error,
                        error.cause_chain = ?std::error::Error::source(&error),
                        retry_in_ms = backoff.as_millis() as u64,
                        "outbox relay round failed, backing off"
                    );
                    let this_wait = backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    Some(this_wait)
                }
            };
            match wait {
                Some(delay) => {
                    tokio::select! {
                        biased;
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                None => {
                    tokio::select! {
                        biased;
                        () = &mut shutdown => return,
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(IDLE_POLL) => {}
                    }
                }
            }
        }
    }

    /// One round: fetch up to a batch, publish, delete what was confirmed.
    /// Public so tests and benchmarks can drive the relay step by step.
    pub async fn relay_once(&self) -> BusResult<RelayRound> {
        let published = self.publish_unsent().await?;
        self.delete_published(published).await
    }

    /// Fetches up to a batch of rows and publishes them; returns once the bus
    /// has confirmed them.
    async fn publish_unsent(&self) -> BusResult<Published> {
        let records = self
            .store
            .fetch_unsent(self.batch_size)
            .await
            .map_err(|source| BusError::Outbox {
                operation: "fetch",
                source,
            })?;
        let mut envelopes = Vec::with_capacity(records.len());
        let mut ids = Vec::with_capacity(records.len());
        let mut undecodable = 0;
        for record in &records {
            match record.to_envelope() {
                Ok(envelope) => {
                    envelopes.push(envelope);
                    ids.push(record.event_id);
                }
                Err(error) => {
                    // Never dropped: the row stays for an operator to look at.
                    undecodable += 1;
                    tracing::error!(event_id = %record.event_id, error.message = %error, "outbox row does not decode, leaving it in place");
                }
            }
        }
        if !envelopes.is_empty() {
            self.bus.publish(&envelopes).await?;
        }
        Ok(Published { ids, undecodable })
    }

    /// Deletes the rows the bus confirmed.
    async fn delete_published(&self, published: Published) -> BusResult<RelayRound> {
        if !published.ids.is_empty() {
            self.store
                .delete_sent(&published.ids)
                .await
                .map_err(|source| BusError::Outbox {
                    operation: "delete",
                    source,
                })?;
        }
        Ok(RelayRound {
            published: published.ids.len(),
            undecodable: published.undecodable,
        })
    }
}

/// Rows the bus confirmed, not yet deleted.
struct Published {
    ids: Vec<Uuid>,
    undecodable: usize,
}
