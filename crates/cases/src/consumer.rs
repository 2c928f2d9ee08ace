//! The cases consumer: `contact.received` in from the `switchboard.cases`
//! queue, customers/cases/contacts and `case.*` events out through the outbox.
//!
//! Per batch of deliveries:
//! 1. each message is decoded and unsealed ([`crate::inbound`]); one that
//!    never can be is rejected to the dead-letter queue with the reason, and
//!    `contact.*` events other than `received` and `completed` are acked
//!    without effect;
//! 2. the contacts are applied in one store transaction
//!    ([`CasesStore::apply_contacts`]), then the wrap-up outcomes in another
//!    ([`CasesStore::apply_outcomes`]), both idempotent by event id; an
//!    outcome whose contact failed to apply waits in the store for it;
//! 3. after the commits the batch is acked and the outbox relay woken.
//!
//! Two batches are applied at once by default ([`ConsumerConfig::in_flight`]),
//! each settled when it is done. Contacts of one resident that arrive in two
//! batches side by side may be applied in either order; the store's locks
//! make them one customer and one case either way, and the timeline orders
//! contacts by when they were received. Set `in_flight` to 1 where the order
//! of application must follow the queue's.
//!
//! Store errors that may pass (database away, a lost race) are retried in
//! process with back-off, holding the deliveries, rather than sent back to
//! the queue at once: the quorum queue dead-letters a message after a few
//! deliveries, and a short database outage must not turn contacts into dead
//! letters. Past the retry budget they go back to the queue. A batch that
//! fails for a reason retrying cannot fix is split, so one bad contact does
//! not hold back the others.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use switchboard_bus::{
    BatchHandler, Bus, Delivery, OutboxRelay, OutboxStore, Outcome, QueueSpec, Sealer, Topology,
    consume_concurrently,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::CasesResult;
use crate::inbound::{Inbound, decode};
use crate::lifecycle::IncomingOutcome;
use crate::model::{ApplyOutcome, IncomingContact};
use crate::store::{CasesStore, MAX_APPLY_BATCH};

/// Tuning of the consumer; the defaults suit both modes.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Most deliveries per store transaction (at most [`MAX_APPLY_BATCH`]).
    pub batch_size: usize,
    /// How long to wait for a batch to fill once its first delivery is in:
    /// the most latency batching adds when traffic is light.
    pub linger: Duration,
    /// Batches applied at once, each in its own store transaction. While
    /// one waits on the database the next is decoded and planned, and on
    /// PostgreSQL both can be executing at the same time. The store keeps
    /// them apart where they meet: a resident's identities are locked for
    /// the length of a transaction, so two contacts of one resident in
    /// batches side by side still make one customer and one case.
    pub in_flight: usize,
    /// How long a batch is retried in process while the store reports
    /// transient errors, before its deliveries go back to the queue.
    pub store_retry_budget: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            batch_size: MAX_APPLY_BATCH,
            linger: Duration::from_millis(20),
            in_flight: 2,
            store_retry_budget: Duration::from_secs(60),
        }
    }
}

const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(100);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Consumes `contact.*` events into the case store and relays the case
/// store's outbox. Build it with [`CasesConsumer::new`] and [`CasesConsumer::run`] it.
pub struct CasesConsumer {
    store: Arc<dyn CasesStore>,
    sealer: Arc<Sealer>,
    bus: Arc<dyn Bus>,
    queue: QueueSpec,
    config: ConsumerConfig,
    /// Notified after each commit that wrote outbox rows, so the relay
    /// publishes at once instead of at its next poll.
    wake: Arc<Notify>,
}

impl std::fmt::Debug for CasesConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CasesConsumer")
            .field("queue", &self.queue.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CasesConsumer {
    /// A consumer of `QueueSpec::cases(topology)`.
    pub fn new(
        store: Arc<dyn CasesStore>,
        sealer: Arc<Sealer>,
        bus: Arc<dyn Bus>,
        topology: &Topology,
    ) -> Self {
        CasesConsumer {
            store,
            sealer,
            bus,
            queue: QueueSpec::cases(topology),
            config: ConsumerConfig::default(),
            wake: Arc::new(Notify::new()),
        }
    }

    pub fn with_config(mut self, config: ConsumerConfig) -> Self {
        self.config = config;
        self
    }

    /// Consumes the queue and relays the outbox until `shutdown` resolves;
    /// then finishes the batch in hand (settling every delivery) and the relay
    /// round in progress, and returns. Errors only when the subscription fails
    /// for good (e.g. the queue was declared with other arguments).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> CasesResult<()> {
        let batch_size = self.config.batch_size.clamp(1, MAX_APPLY_BATCH);
        let in_flight = self.config.in_flight.max(1);
        // Unacked deliveries the broker may send ahead: the batches in
        // flight and one more, so the next batch is here when one commits.
        let prefetch = u16::try_from((in_flight + 1) * batch_size).unwrap_or(u16::MAX);
        let subscription = self.bus.subscribe(&self.queue, prefetch).await?;
        tracing::info!(queue = %self.queue.name, batch_size = self.config.batch_size, "cases consumer started");
        let stop = CancellationToken::new();
        let outbox: Arc<dyn OutboxStore> = self.store.clone();
        let relay = OutboxRelay::new(outbox, Arc::clone(&self.bus), Arc::clone(&self.wake));
        let handler = ContactsHandler {
            store: self.store,
            sealer: self.sealer,
            wake: self.wake,
            stop: stop.clone(),
            retry_budget: self.config.store_retry_budget,
        };
        let consuming = async {
            let result = consume_concurrently(
                subscription,
                batch_size,
                self.config.linger,
                in_flight,
                handler,
                stop.clone().cancelled_owned(),
            )
            .await;
            // If consuming ends on its own (a fatal subscription error), the
            // relay stops too, so `run` returns the error instead of hanging.
            stop.cancel();
            result
        };
        let relaying = relay.run(stop.clone().cancelled_owned());
        let stopping = async {
            tokio::select! {
                () = shutdown => stop.cancel(),
                () = stop.cancelled() => {}
            }
        };
        let (consumed, (), ()) = tokio::join!(consuming, relaying, stopping);
        let stats = consumed?;
        tracing::info!(
            batches = stats.batches,
            acked = stats.acked,
            retried = stats.retried,
            rejected = stats.rejected,
            "cases consumer stopped"
        );
        Ok(())
    }
}

/// Decides the outcome of each delivery of a batch.
struct ContactsHandler {
    store: Arc<dyn CasesStore>,
    sealer: Arc<Sealer>,
    wake: Arc<Notify>,
    /// Cancelled at shutdown: cuts in-process retries short so shutdown is not
    /// held up by a database that is away (the deliveries go back to the queue).
    stop: CancellationToken,
    retry_budget: Duration,
}

#[async_trait]
impl BatchHandler for ContactsHandler {
    #[tracing::instrument(name = "cases.handle_batch", skip_all, fields(deliveries = batch.len()))]
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = vec![Outcome::Ack; batch.len()];
        let mut contacts: Vec<IncomingContact> = Vec::with_capacity(batch.len());
        let mut positions: Vec<usize> = Vec::with_capacity(batch.len());
        let mut completions: Vec<IncomingOutcome> = Vec::new();
        let mut completion_positions: Vec<usize> = Vec::new();
        for (position, delivery) in batch.iter().enumerate() {
            // A span per event, parented from the traceparent intake sent it
            // with, so one trace follows a contact from intake to its case.
            let span = delivery.span();
            match span.in_scope(|| decode(&delivery.envelope, &self.sealer)) {
                Ok(Inbound::Contact(contact)) => {
                    contacts.push(*contact);
                    positions.push(position);
                }
                Ok(Inbound::Outcome(outcome)) => {
                    completions.push(outcome);
                    completion_positions.push(position);
                }
                Ok(Inbound::Ignored) => {
                    tracing::debug!(event_id = %delivery.event_id(), event_type = %delivery.envelope.event_type(), "event not applied by cases, acking");
                }
                Err(reason) => {
                    tracing::warn!(event_id = %delivery.event_id(), reason = %reason, "undecodable contact event");
                    outcomes[position] = Outcome::Reject(reason);
                }
            }
        }
        if !contacts.is_empty() {
            self.apply_contacts(&contacts, &positions, &mut outcomes).await;
        }
        if !completions.is_empty() {
            self.apply_completions(&completions, &completion_positions, &mut outcomes)
                .await;
        }
        outcomes
    }
}

impl ContactsHandler {
    async fn apply_contacts(
        &self,
        contacts: &[IncomingContact],
        positions: &[usize],
        outcomes: &mut [Outcome],
    ) {
        match self.apply_with_retry(contacts).await {
            Ok(applied) => self.applied(&applied),
            Err(error) if !error.is_transient() && contacts.len() > 1 => {
                tracing::warn!(error.message = %error, contacts = contacts.len(), "batch failed, applying its contacts one by one");
                self.apply_one_by_one(contacts, positions, outcomes).await;
            }
            Err(error) => {
                tracing::warn!(
                    error.message = %error,
                    error.chain = %switchboard_runtime::status::cause_chain(&error),
                    contacts = contacts.len(),
                    "applying contacts failed, returning them to the queue"
                );
                for &position in positions {
                    outcomes[position] = Outcome::Retry;
                }
            }
        }
    }

    /// Applies wrap-up outcomes. They are small and uniform, so a batch that
    /// keeps failing goes back to the queue whole rather than one by one.
    async fn apply_completions(
        &self,
        completions: &[IncomingOutcome],
        positions: &[usize],
        outcomes: &mut [Outcome],
    ) {
        let result = retrying(self.retry_budget, &self.stop, "applying outcomes", || {
            self.store.apply_outcomes(completions)
        })
        .await;
        match result {
            Ok(()) => self.wake.notify_one(),
            Err(error) => {
                tracing::warn!(
                    error.message = %error,
                    error.chain = %switchboard_runtime::status::cause_chain(&error),
                    outcomes = completions.len(),
                    "applying outcomes failed, returning them to the queue"
                );
                for &position in positions {
                    outcomes[position] = Outcome::Retry;
                }
            }
        }
    }

    /// Applies `contacts`, retrying transient store errors with back-off
    /// until the budget is spent or shutdown begins.
    async fn apply_with_retry(&self, contacts: &[IncomingContact]) -> CasesResult<Vec<ApplyOutcome>> {
        retrying(self.retry_budget, &self.stop, "applying contacts", || {
            self.store.apply_contacts(contacts)
        })
        .await
    }

    /// Isolates the contact that makes a batch fail: each is applied on its
    /// own, in order (so a later one still sees what an earlier one created).
    async fn apply_one_by_one(
        &self,
        contacts: &[IncomingContact],
        positions: &[usize],
        outcomes: &mut [Outcome],
    ) {
        let mut store_unavailable = false;
        for (contact, &position) in contacts.iter().zip(positions) {
            if store_unavailable {
                outcomes[position] = Outcome::Retry;
                continue;
            }
            match self.apply_with_retry(std::slice::from_ref(contact)).await {
                Ok(applied) => self.applied(&applied),
                Err(error) => {
                    tracing::warn!(
                        event_id = %contact.event_id,
                        contact_id = %contact.contact_id,
                        error.message = %error,
                        error.chain = %switchboard_runtime::status::cause_chain(&error),
                        "applying contact failed, returning it to the queue"
                    );
                    // A database that is away fails the rest the same way:
                    // return them without waiting out the budget for each.
                    store_unavailable = error.is_transient();
                    outcomes[position] = Outcome::Retry;
                }
            }
        }
    }

    fn applied(&self, outcomes: &[ApplyOutcome]) {
        let applied = outcomes
            .iter()
            .filter(|outcome| outcome.applied().is_some())
            .count();
        let duplicates = outcomes.len() - applied;
        let new_cases = outcomes
            .iter()
            .filter_map(ApplyOutcome::applied)
            .filter(|applied| applied.new_case)
            .count();
        tracing::debug!(applied, duplicates, new_cases, "contacts applied");
        if applied > 0 {
            self.wake.notify_one();
        }
    }
}

/// Runs `attempt` until it succeeds, fails for good, the budget is spent or
/// shutdown begins, backing off between transient failures.
async fn retrying<T, F, Fut>(
    budget: Duration,
    stop: &CancellationToken,
    what: &str,
    attempt: F,
) -> CasesResult<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = CasesResult<T>>,
{
    let started = Instant::now();
    let mut backoff = RETRY_BACKOFF_MIN;
    let mut tries: u32 = 1;
    loop {
        let error = match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        if !error.is_transient() || started.elapsed() + backoff > budget || stop.is_cancelled() {
            return Err(error);
        }
        tracing::warn!(
            error.message = %error,
            error.chain = %switchboard_runtime::status::cause_chain(&error),
            attempt = tries,
            retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
            "{what} failed, retrying"
        );
        tokio::select! {
            () = stop.cancelled() => return Err(error),
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        tries += 1;
    }
}
