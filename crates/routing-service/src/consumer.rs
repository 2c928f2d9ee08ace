//! [`RoutingConsumer`]: consumes one partition's queue and keeps its router
//! active exactly while this process is the queue's single active consumer.
//!
//! RabbitMQ hands a single-active-consumer queue to one consumer at a time
//! and says nothing to the others. So every router sends a heartbeat into
//! its partition queue each [`HEARTBEAT_EVERY`]: the active consumer
//! receives all of them, and the others none. Whoever receives any message
//! takes the partition over before applying it; a router that has received
//! nothing for [`STANDBY_AFTER`] stands by. When the active process dies,
//! RabbitMQ gives the queue (with the deliveries the dead one left
//! unsettled) to the next consumer, whose first delivery makes it take over.
//!
//! While active, the consumer also ticks the engine (offer timeouts,
//! overflow steps) every [`TICK_EVERY`], and relays the outbox. A standby
//! does neither: two relays on one outbox would only publish duplicates.

use std::future::Future;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use switchboard_bus::{
    BatchHandler, Bus, Delivery, Envelope, OutboxRelay, OutboxStore, Outcome, QueueSpec, consume,
};
use switchboard_proto::{event_types, v1};
use switchboard_runtime::wire::timestamp;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::{RouterError, RouterResult};
use crate::events::EVENT_SOURCE;
use crate::inbound::{Message, decode};
use crate::router::{Applied, Inbound, Router};
use crate::store::RoutingStore;

/// How often each router sends a heartbeat to its partition queue.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// Silence after which an active router concludes another consumer has the
/// queue, and stands by. Several heartbeats long, so a slow moment does not
/// hand the partition back and forth.
pub const STANDBY_AFTER: Duration = Duration::from_secs(5);
/// How often an active router lets the engine's clock move on.
pub const TICK_EVERY: Duration = Duration::from_millis(250);
/// How often an active router looks for a routing configuration stored by a
/// supervisor's edit through any process.
pub const CONFIG_CHECK_EVERY: Duration = Duration::from_secs(2);

/// Deliveries per batch (one store write each).
const BATCH_SIZE: usize = 200;
const LINGER: Duration = Duration::from_millis(10);
const PREFETCH: u16 = 400;
/// How long a batch is retried in process while the store reports
/// transient errors, before its deliveries go back to the queue.
const STORE_RETRY_BUDGET: Duration = Duration::from_secs(60);
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(100);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Consumes a routing partition queue for its [`Router`].
pub struct RoutingConsumer {
    router: Arc<Router>,
    store: Arc<dyn RoutingStore>,
    bus: Arc<dyn Bus>,
    queue: QueueSpec,
    /// The router's outbox wake-up: the relay publishes at once after a write.
    wake: Arc<Notify>,
}

impl RoutingConsumer {
    /// `wake` must be the one given to [`Router::new`].
    pub fn new(
        router: Arc<Router>,
        store: Arc<dyn RoutingStore>,
        bus: Arc<dyn Bus>,
        queue: QueueSpec,
        wake: Arc<Notify>,
    ) -> Self {
        RoutingConsumer {
            router,
            store,
            bus,
            queue,
            wake,
        }
    }

    /// Runs until `shutdown` resolves; then finishes the batch in hand and
    /// returns. Errors only when the subscription fails for good.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> RouterResult<()> {
        let subscription = self.bus.subscribe(&self.queue, PREFETCH).await?;
        tracing::info!(queue = %self.queue.name, partition = %self.router.partition(), "routing consumer started, standing by until the queue is ours");
        let stop = CancellationToken::new();
        // Counted from the start, so a router that took over before its
        // first delivery (the embedded mode) stays active while it waits.
        let last_delivery = Arc::new(StdMutex::new(Instant::now()));
        let handler = PartitionHandler {
            router: Arc::clone(&self.router),
            stop: stop.clone(),
            last_delivery: Arc::clone(&last_delivery),
        };
        let consuming = async {
            let result = consume(
                subscription,
                BATCH_SIZE,
                LINGER,
                handler,
                stop.clone().cancelled_owned(),
            )
            .await;
            stop.cancel();
            result
        };
        let heartbeats = heartbeat(Arc::clone(&self.bus), self.queue.name.clone(), stop.clone());
        let ticking = tick(Arc::clone(&self.router), Arc::clone(&last_delivery), stop.clone());
        let relaying = relay_while_active(
            Arc::clone(&self.router),
            self.store.clone(),
            Arc::clone(&self.bus),
            Arc::clone(&self.wake),
            stop.clone(),
        );
        let stopping = async {
            tokio::select! {
                () = shutdown => stop.cancel(),
                () = stop.cancelled() => {}
            }
        };
        let (consumed, (), (), (), ()) = tokio::join!(consuming, heartbeats, ticking, relaying, stopping);
        self.router.stand_by().await;
        let stats = consumed?;
        tracing::info!(
            acked = stats.acked,
            retried = stats.retried,
            rejected = stats.rejected,
            "routing consumer stopped"
        );
        Ok(())
    }
}

/// Sends a heartbeat to the partition queue every [`HEARTBEAT_EVERY`].
async fn heartbeat(bus: Arc<dyn Bus>, queue: String, stop: CancellationToken) {
    loop {
        let beat = Envelope::new(v1::Event {
            id: Uuid::now_v7().to_string(),
            r#type: event_types::ROUTING_HEARTBEAT.to_owned(),
            occurred_at: Some(timestamp(Utc::now())),
            source: EVENT_SOURCE.to_owned(),
            subject: String::new(),
            sealed_personal_data: None,
            payload: None,
        });
        // A send can wait for the queue's consumer to settle the beat (the
        // in-process bus confirms so); at shutdown that consumer has stopped,
        // so stopping must not wait for the send.
        tokio::select! {
            () = stop.cancelled() => return,
            sent = bus.send_to_queue(&queue, std::slice::from_ref(&beat)) => {
                if let Err(error) = sent {
                    tracing::debug!(queue = %queue, error.message = %error, "heartbeat not sent");
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(HEARTBEAT_EVERY) => {}
        }
    }
}

/// Ticks the engine while active, and follows the stored configuration;
/// stands by after [`STANDBY_AFTER`] without a delivery.
async fn tick(router: Arc<Router>, last_delivery: Arc<StdMutex<Instant>>, stop: CancellationToken) {
    let mut interval = tokio::time::interval(TICK_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_config_check = Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = interval.tick() => {}
        }
        if !router.is_active() {
            continue;
        }
        let silent = last_delivery
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .elapsed()
            > STANDBY_AFTER;
        if silent {
            tracing::warn!(
                partition = %router.partition(),
                silent_for_seconds = STANDBY_AFTER.as_secs(),
                "no delivery, not even a heartbeat: another consumer holds the partition queue; standing by"
            );
            router.stand_by().await;
            continue;
        }
        if let Err(error) = router.tick().await {
            tracing::warn!(partition = %router.partition(), error.message = %error, "routing tick failed");
        }
        if last_config_check.elapsed() >= CONFIG_CHECK_EVERY {
            last_config_check = Instant::now();
            if let Err(error) = router.follow_stored_config().await {
                tracing::warn!(partition = %router.partition(), error.message = %error, "could not follow the stored routing configuration");
            }
        }
    }
}

/// Runs the outbox relay while the router is active.
async fn relay_while_active(
    router: Arc<Router>,
    store: Arc<dyn RoutingStore>,
    bus: Arc<dyn Bus>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        while !router.is_active() {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(TICK_EVERY) => {}
            }
        }
        let outbox: Arc<dyn OutboxStore> = store.clone();
        let relay = OutboxRelay::new(outbox, Arc::clone(&bus), Arc::clone(&wake));
        let relay_stop = stop.child_token();
        let watching = async {
            loop {
                tokio::select! {
                    () = relay_stop.cancelled() => return,
                    () = tokio::time::sleep(TICK_EVERY) => {}
                }
                if !router.is_active() {
                    relay_stop.cancel();
                    return;
                }
            }
        };
        tokio::join!(relay.run(relay_stop.clone().cancelled_owned()), watching);
        if stop.is_cancelled() {
            return;
        }
    }
}

/// Decides the outcome of each delivery of a batch.
struct PartitionHandler {
    router: Arc<Router>,
    /// Cancelled at shutdown: cuts in-process retries short.
    stop: CancellationToken,
    /// When the latest delivery came (or the consumer started): a std
    /// mutex, held only to read or set.
    last_delivery: Arc<StdMutex<Instant>>,
}

#[async_trait]
impl BatchHandler for PartitionHandler {
    #[tracing::instrument(name = "routing.handle_batch", skip_all, fields(deliveries = batch.len()))]
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        *self
            .last_delivery
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Instant::now();
        let mut outcomes = vec![Outcome::Ack; batch.len()];
        let mut inputs = Vec::with_capacity(batch.len());
        let mut positions = Vec::with_capacity(batch.len());
        for (position, delivery) in batch.iter().enumerate() {
            match delivery.span().in_scope(|| decode(&delivery.envelope)) {
                Ok(Message::Heartbeat) => {}
                Ok(Message::Event(inbound)) => {
                    inputs.push(*inbound);
                    positions.push(position);
                }
                Err(reason) => {
                    tracing::warn!(event_id = %delivery.event_id(), reason = %reason, "undecodable routing event");
                    outcomes[position] = Outcome::Reject(reason);
                }
            }
        }
        // Any delivery means RabbitMQ made this consumer the active one.
        if let Err(error) = self.take_over_with_retry().await {
            tracing::warn!(partition = %self.router.partition(), error.message = %error, "could not take the partition over");
            for position in positions {
                outcomes[position] = Outcome::Retry;
            }
            return outcomes;
        }
        if inputs.is_empty() {
            return outcomes;
        }
        match self.apply_with_retry(inputs).await {
            Ok(applied) => {
                for (position, applied) in positions.into_iter().zip(applied) {
                    if let Applied::Refused(reason) = applied {
                        outcomes[position] = Outcome::Reject(reason);
                    }
                }
            }
            Err(error) => {
                tracing::warn!(
                    partition = %self.router.partition(),
                    error.message = %error,
                    error.chain = %switchboard_runtime::status::cause_chain(&error),
                    "applying routing events failed, returning them to the queue"
                );
                for position in positions {
                    outcomes[position] = Outcome::Retry;
                }
            }
        }
        outcomes
    }
}

impl PartitionHandler {
    async fn take_over_with_retry(&self) -> RouterResult<()> {
        self.retrying(|| self.router.take_over()).await
    }

    async fn apply_with_retry(&self, inputs: Vec<Inbound>) -> RouterResult<Vec<Applied>> {
        self.retrying(|| async {
            match self.router.apply_events(inputs.clone()).await {
                // Fenced or dropped after a failed write: take over again
                // (this consumer holds the queue) and apply.
                Err(RouterError::NotActive { .. } | RouterError::Fenced { .. }) => {
                    self.router.take_over().await?;
                    self.router.apply_events(inputs.clone()).await
                }
                other => other,
            }
        })
        .await
    }

    /// Runs `attempt` until it succeeds, fails for good, the retry budget is
    /// spent, or shutdown begins.
    async fn retrying<T, F, Fut>(&self, attempt: F) -> RouterResult<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = RouterResult<T>>,
    {
        let started = Instant::now();
        let mut backoff = RETRY_BACKOFF_MIN;
        loop {
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if !error.is_transient()
                || started.elapsed() + backoff > STORE_RETRY_BUDGET
                || self.stop.is_cancelled()
            {
                return Err(error);
            }
            tracing::warn!(partition = %self.router.partition(), error.message = %error, retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX), "routing store failed, retrying");
            tokio::select! {
                () = self.stop.cancelled() => return Err(error),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        }
    }
}
