//! [`InProcessBus`]: the bus of the embedded mode, in memory.
//!
//! It keeps RabbitMQ's semantics so services cannot tell the difference (the
//! contract tests run the same suite against both): a topic exchange with `*`
//! and `#` patterns; `mandatory` publishing (a message no queue takes is an
//! error); sending straight to one named queue; quorum queues that are FIFO per
//! queue, honour prefetch, put retried messages back in their original place,
//! count deliveries and dead-letter past the limit or on reject; single active
//! consumer queues, where only the earliest open subscription receives and a
//! closed one hands its unsettled messages to the next; streams read from an
//! offset by every consumer.
//!
//! Nothing here is durable. What a confirm means is chosen at construction:
//!
//! - [`InProcessBus::new`]: as RabbitMQ, "taken by every bound queue" (by the
//!   named queue, for `send_to_queue`). Right for tests of RabbitMQ's
//!   semantics, but a crash then loses what sat in memory, because the relay
//!   deleted its outbox row on the confirm.
//! - [`InProcessBus::confirming_when_settled`]: "settled by the consumers of
//!   every bound quorum queue" (acked, or dead-lettered; for `send_to_queue`,
//!   by the consumer of the named queue). The embedded mode runs this way, so
//!   an outbox row lives until the event it carries has been applied, and a
//!   crash at any moment loses nothing: the relay publishes the row again at
//!   the next start and the idempotent consumer absorbs it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::bus::{Bus, DeadLetter, DeadLetterReason, Delivery, Settler, Source, Subscription};
use crate::envelope::Envelope;
use crate::error::{BusError, BusResult};
use crate::topology::{QueueKind, QueueSpec, StreamOffset, Topology, topic_matches};

/// In memory a stream keeps at most this many bytes of bodies, whatever its
/// spec's retention says: the embedded mode must not grow without bound.
pub const DEFAULT_STREAM_MEMORY_CAP: u64 = 64 * 1024 * 1024;

/// The in-memory bus. Cheap to clone; clones share the same queues.
#[derive(Clone)]
pub struct InProcessBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for InProcessBus {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("InProcessBus")
            .field("topology", &self.inner.topology)
            .finish_non_exhaustive()
    }
}

struct Inner {
    topology: Topology,
    stream_memory_cap: u64,
    confirm: Confirm,
    /// A std mutex, not tokio's: it is never held across an `.await`, and every
    /// critical section is a few map operations, so blocking is shorter than a
    /// task switch would be.
    state: Mutex<State>,
}

/// When `publish` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Confirm {
    /// Once every bound queue has taken the message (RabbitMQ's meaning).
    Enqueued,
    /// Once every quorum copy has been acked or dead-lettered.
    Settled,
}

/// Counts a published batch's quorum copies not yet settled; the publisher
/// waits until it reaches zero.
struct ConfirmLatch {
    outstanding: AtomicUsize,
    done: Notify,
}

impl ConfirmLatch {
    fn settle_one(&self) {
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            // One waiter, the publisher: `notify_one` keeps the permit if it
            // has not started waiting yet.
            self.done.notify_one();
        }
    }
}

#[derive(Default)]
struct State {
    /// The topology's dead-letter exchange, where rejected stream messages go.
    stream_dead_letter_exchange: String,
    exchanges: HashMap<String, ExchangeKind>,
    bindings: Vec<Binding>,
    queues: HashMap<String, Queue>,
    consumers: HashMap<u64, ConsumerState>,
    /// Sequence numbers give every enqueued message its FIFO position, and
    /// every delivery and consumer a unique tag.
    next_sequence: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ExchangeKind {
    Topic,
    Fanout,
}

struct Binding {
    exchange: String,
    pattern: String,
    queue: String,
}

struct ConsumerState {
    /// The queue it consumes, to find a single-active-consumer queue's
    /// active subscription.
    queue: String,
    prefetch: usize,
    in_flight: usize,
}

struct Queue {
    spec: QueueSpec,
    /// Woken whenever a message arrives or a consumer gains credit.
    notify: Arc<Notify>,
    body: QueueBody,
}

enum QueueBody {
    Quorum {
        /// Ready messages by FIFO position: a retried message goes back to its
        /// original place, ahead of the ones published after it.
        ready: BTreeMap<u64, Message>,
        /// Delivered, not settled, by delivery tag.
        unacked: HashMap<u64, Unacked>,
    },
    Stream {
        log: VecDeque<StreamEntry>,
        next_offset: u64,
        bytes: u64,
    },
}

#[derive(Clone)]
struct Message {
    envelope: Arc<Envelope>,
    /// The publisher waiting for this copy to be settled, when confirms wait
    /// for settlement.
    latch: Option<Arc<ConfirmLatch>>,
    /// Returns so far (RabbitMQ's `x-delivery-count`).
    delivery_count: u32,
    delivered_before: bool,
    dead_letter: Option<DeadLetter>,
}

/// A quorum message out with a consumer.
struct Unacked {
    /// Its FIFO position, where a return puts it back.
    position: u64,
    /// The subscription it was delivered to.
    consumer: u64,
    message: Message,
}

struct StreamEntry {
    offset: u64,
    appended_at: Instant,
    size: u64,
    envelope: Arc<Envelope>,
}

impl InProcessBus {
    /// A bus with the topology's exchange, dead-letter exchange and queue, and
    /// the analytics stream, as `RabbitBus::connect` declares them.
    ///
    /// A confirm means "enqueued", as on RabbitMQ.
    pub fn new(topology: Topology) -> Self {
        InProcessBus::build(topology, DEFAULT_STREAM_MEMORY_CAP, Confirm::Enqueued)
    }

    /// As [`InProcessBus::new`], but `publish` returns only once the consumers
    /// of every bound quorum queue have acked (or dead-lettered) the batch, and
    /// `send_to_queue` once the consumer of the named quorum queue has. A
    /// queue nobody consumes holds its publisher until somebody does.
    pub fn confirming_when_settled(topology: Topology) -> Self {
        InProcessBus::build(topology, DEFAULT_STREAM_MEMORY_CAP, Confirm::Settled)
    }

    /// As [`InProcessBus::new`], keeping at most `cap` bytes per stream.
    pub fn with_stream_memory_cap(topology: Topology, cap: u64) -> Self {
        InProcessBus::build(topology, cap, Confirm::Enqueued)
    }

    fn build(topology: Topology, cap: u64, confirm: Confirm) -> Self {
        let mut state = State {
            stream_dead_letter_exchange: topology.dead_letter_exchange(),
            ..State::default()
        };
        state.exchanges.insert(topology.exchange(), ExchangeKind::Topic);
        state
            .exchanges
            .insert(topology.dead_letter_exchange(), ExchangeKind::Fanout);
        let bus = InProcessBus {
            inner: Arc::new(Inner {
                topology,
                stream_memory_cap: cap,
                confirm,
                state: Mutex::new(state),
            }),
        };
        let mut base = vec![QueueSpec::dead_letter(&bus.inner.topology)];
        if bus.inner.topology.has_analytics_stream() {
            base.push(QueueSpec::analytics(&bus.inner.topology));
        }
        for spec in base {
            let mut state = bus.inner.lock();
            // Cannot fail: the exchanges were just created and the queues are new.
            let declared = state.declare(&spec);
            debug_assert!(declared.is_ok());
        }
        bus
    }

    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    /// Messages ready (not in flight) in a quorum queue, or retained in a
    /// stream; `None` for an unknown queue. For tests and health pages.
    pub fn queue_depth(&self, queue: &str) -> Option<usize> {
        let state = self.inner.lock();
        state.queues.get(queue).map(|queue| match &queue.body {
            QueueBody::Quorum { ready, .. } => ready.len(),
            QueueBody::Stream { log, .. } => log.len(),
        })
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a
        // way that matters more than losing the whole bus would.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    fn sequence(&mut self) -> u64 {
        self.next_sequence += 1;
        self.next_sequence
    }

    fn declare(&mut self, spec: &QueueSpec) -> BusResult<()> {
        let Some(&exchange_kind) = self.exchanges.get(&spec.exchange) else {
            return Err(BusError::Queue {
                queue: spec.name.clone(),
                reason: format!("exchange {} does not exist", spec.exchange),
            });
        };
        if let QueueKind::Quorum {
            dead_letter_exchange: Some(dead_letter_exchange),
            ..
        } = &spec.kind
            && !self.exchanges.contains_key(dead_letter_exchange)
        {
            return Err(BusError::Queue {
                queue: spec.name.clone(),
                reason: format!("dead-letter exchange {dead_letter_exchange} does not exist"),
            });
        }
        match self.queues.get(&spec.name) {
            Some(existing)
                if existing.spec.kind != spec.kind
                    || existing.spec.single_active_consumer != spec.single_active_consumer =>
            {
                return Err(BusError::Queue {
                    queue: spec.name.clone(),
                    reason: "already declared with other arguments".to_owned(),
                });
            }
            Some(_) => {}
            None => {
                let body = match spec.kind {
                    QueueKind::Quorum { .. } => QueueBody::Quorum {
                        ready: BTreeMap::new(),
                        unacked: HashMap::new(),
                    },
                    QueueKind::Stream { .. } => QueueBody::Stream {
                        log: VecDeque::new(),
                        next_offset: 0,
                        bytes: 0,
                    },
                };
                self.queues.insert(
                    spec.name.clone(),
                    Queue {
                        spec: spec.clone(),
                        notify: Arc::new(Notify::new()),
                        body,
                    },
                );
            }
        }
        for pattern in &spec.bindings {
            // Fanout ignores the key; store one binding whatever it says.
            let pattern = match exchange_kind {
                ExchangeKind::Topic => pattern.clone(),
                ExchangeKind::Fanout => "#".to_owned(),
            };
            let exists = self.bindings.iter().any(|binding| {
                binding.exchange == spec.exchange && binding.queue == spec.name && binding.pattern == pattern
            });
            if !exists {
                self.bindings.push(Binding {
                    exchange: spec.exchange.clone(),
                    pattern,
                    queue: spec.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// Queue names `routing_key` reaches on `exchange`, each once.
    fn route(&self, exchange: &str, routing_key: &str) -> Vec<String> {
        let mut queues: Vec<String> = Vec::new();
        for binding in &self.bindings {
            if binding.exchange == exchange
                && topic_matches(&binding.pattern, routing_key)
                && !queues.contains(&binding.queue)
            {
                queues.push(binding.queue.clone());
            }
        }
        queues
    }

    /// Enqueues `message` on every queue bound to `exchange` for `routing_key`.
    /// Returns how many queues took it. Each quorum copy counts once on the
    /// message's latch, if it has one.
    fn enqueue(
        &mut self,
        exchange: &str,
        routing_key: &str,
        message: &Message,
        stream_memory_cap: u64,
    ) -> usize {
        let targets = self.route(exchange, routing_key);
        for queue_name in &targets {
            self.enqueue_into(queue_name, message, stream_memory_cap);
        }
        targets.len()
    }

    /// Enqueues `message` on the queue `queue_name`, whatever its bindings.
    /// The quorum copy counts once on the message's latch, if it has one.
    fn enqueue_into(&mut self, queue_name: &str, message: &Message, stream_memory_cap: u64) {
        let sequence = self.sequence();
        let Some(queue) = self.queues.get_mut(queue_name) else {
            return;
        };
        match &mut queue.body {
            QueueBody::Quorum { ready, .. } => {
                let mut copy = message.clone();
                // A copy in a new queue starts afresh there.
                copy.delivery_count = 0;
                copy.delivered_before = false;
                if let Some(latch) = &copy.latch {
                    latch.outstanding.fetch_add(1, Ordering::AcqRel);
                }
                ready.insert(sequence, copy);
            }
            QueueBody::Stream {
                log,
                next_offset,
                bytes,
            } => {
                let QueueKind::Stream {
                    max_age,
                    max_length_bytes,
                } = queue.spec.kind
                else {
                    return;
                };
                let size = message.envelope.encode_body().len() as u64;
                log.push_back(StreamEntry {
                    offset: *next_offset,
                    appended_at: Instant::now(),
                    size,
                    envelope: message.envelope.clone(),
                });
                *next_offset += 1;
                *bytes += size;
                apply_retention(log, bytes, max_age, max_length_bytes.min(stream_memory_cap));
            }
        }
        queue.notify.notify_waiters();
    }

    /// Sends `message` from `queue_name` to that queue's dead-letter exchange
    /// (or drops it, as RabbitMQ does, when the queue has none).
    fn dead_letter(
        &mut self,
        queue_name: &str,
        mut message: Message,
        reason: DeadLetterReason,
        stream_memory_cap: u64,
    ) {
        // Dead-lettered is settled: the copy's fate is decided, and the copy in
        // the dead-letter queue answers to nobody's confirm.
        if let Some(latch) = message.latch.take() {
            latch.settle_one();
        }
        let dead_letter_exchange = match self.queues.get(queue_name).map(|queue| &queue.spec.kind) {
            Some(QueueKind::Quorum {
                dead_letter_exchange: Some(exchange),
                ..
            }) => exchange.clone(),
            // Streams have no dead-letter exchange of their own: a message a
            // stream consumer rejects goes to the topology's.
            Some(QueueKind::Stream { .. }) => self.stream_dead_letter_exchange.clone(),
            _ => {
                tracing::warn!(queue = %queue_name, event_id = %message.envelope.event_id(), "dropping dead letter: queue has no dead-letter exchange");
                return;
            }
        };
        let routing_key = message.envelope.event_type().to_owned();
        message.dead_letter = Some(DeadLetter {
            queue: queue_name.to_owned(),
            reason,
        });
        let taken = self.enqueue(&dead_letter_exchange, &routing_key, &message, stream_memory_cap);
        if taken == 0 {
            tracing::warn!(queue = %queue_name, event_id = %message.envelope.event_id(), "dead letter had no queue to go to");
        }
    }

    /// Puts a message delivered from `queue_name` back in its FIFO place,
    /// counting the return; past the queue's delivery limit it is
    /// dead-lettered instead.
    fn return_message(
        &mut self,
        queue_name: &str,
        position: u64,
        mut message: Message,
        stream_memory_cap: u64,
    ) {
        message.delivery_count += 1;
        let limit = match self.queues.get(queue_name).map(|queue| &queue.spec.kind) {
            Some(QueueKind::Quorum { delivery_limit, .. }) => *delivery_limit,
            _ => None,
        };
        if limit.is_some_and(|limit| message.delivery_count > limit) {
            self.dead_letter(
                queue_name,
                message,
                DeadLetterReason::DeliveryLimit,
                stream_memory_cap,
            );
        } else if let Some(QueueBody::Quorum { ready, .. }) =
            self.queues.get_mut(queue_name).map(|queue| &mut queue.body)
        {
            ready.insert(position, message);
        }
    }

    /// The subscription that may receive from `queue_name` when it has a
    /// single active consumer: the earliest still open (consumer ids grow).
    fn active_consumer(&self, queue_name: &str) -> Option<u64> {
        self.consumers
            .iter()
            .filter(|(_, state)| state.queue == queue_name)
            .map(|(consumer, _)| *consumer)
            .min()
    }

    /// Forgets a closed subscription. On a single-active-consumer queue its
    /// unsettled messages go back to the queue at once (counted as returns,
    /// as when RabbitMQ sees the consumer's channel close), so the next
    /// subscription takes over with them; their deliveries can no longer be
    /// settled. Elsewhere they stay with their deliveries until settled or
    /// dropped.
    fn close_consumer(&mut self, consumer: u64, queue_name: &str, stream_memory_cap: u64) {
        self.consumers.remove(&consumer);
        let Some(queue) = self.queues.get_mut(queue_name) else {
            return;
        };
        if !queue.spec.has_single_active_consumer() {
            return;
        }
        let QueueBody::Quorum { unacked, .. } = &mut queue.body else {
            return;
        };
        let mut tags: Vec<u64> = unacked
            .iter()
            .filter(|(_, entry)| entry.consumer == consumer)
            .map(|(tag, _)| *tag)
            .collect();
        tags.sort_unstable();
        let returned: Vec<Unacked> = tags.iter().filter_map(|tag| unacked.remove(tag)).collect();
        let notify = queue.notify.clone();
        for entry in returned {
            self.return_message(queue_name, entry.position, entry.message, stream_memory_cap);
        }
        // The next subscription in line is now the active one.
        notify.notify_waiters();
    }

    fn credit(&self, consumer: u64) -> usize {
        self.consumers.get(&consumer).map_or(0, |state| {
            if state.prefetch == 0 {
                usize::MAX
            } else {
                state.prefetch.saturating_sub(state.in_flight)
            }
        })
    }

    fn release_credit(&mut self, consumer: u64, queue_name: &str) {
        if let Some(state) = self.consumers.get_mut(&consumer) {
            state.in_flight = state.in_flight.saturating_sub(1);
        }
        if let Some(queue) = self.queues.get(queue_name) {
            queue.notify.notify_waiters();
        }
    }
}

fn apply_retention(log: &mut VecDeque<StreamEntry>, bytes: &mut u64, max_age: Duration, max_bytes: u64) {
    let now = Instant::now();
    while let Some(front) = log.front() {
        let too_big = *bytes > max_bytes;
        let too_old = now.duration_since(front.appended_at) > max_age;
        if !too_big && !too_old {
            break;
        }
        *bytes -= front.size;
        log.pop_front();
    }
}

impl InProcessBus {
    /// The latch a publish waits on, when confirms wait for settlement.
    fn new_latch(&self) -> Option<Arc<ConfirmLatch>> {
        (self.inner.confirm == Confirm::Settled).then(|| {
            Arc::new(ConfirmLatch {
                outstanding: AtomicUsize::new(0),
                done: Notify::new(),
            })
        })
    }

    /// Returns once every copy counted on `latch` is settled (at once without one).
    async fn confirmed(latch: Option<Arc<ConfirmLatch>>) {
        if let Some(latch) = latch
            && latch.outstanding.load(Ordering::Acquire) > 0
        {
            latch.done.notified().await;
        }
    }
}

impl Message {
    fn new(envelope: &Envelope, latch: Option<&Arc<ConfirmLatch>>) -> Self {
        Message {
            envelope: Arc::new(envelope.clone()),
            latch: latch.cloned(),
            delivery_count: 0,
            delivered_before: false,
            dead_letter: None,
        }
    }
}

#[async_trait]
impl Bus for InProcessBus {
    async fn publish(&self, batch: &[Envelope]) -> BusResult<()> {
        for envelope in batch {
            envelope.validate()?;
        }
        let latch = self.new_latch();
        let exchange = self.inner.topology.exchange();
        {
            let mut state = self.inner.lock();
            for envelope in batch {
                let message = Message::new(envelope, latch.as_ref());
                let taken = state.enqueue(
                    &exchange,
                    envelope.event_type(),
                    &message,
                    self.inner.stream_memory_cap,
                );
                // As on RabbitMQ, the messages before it are in their queues.
                if taken == 0 {
                    return Err(BusError::Unroutable {
                        event_id: envelope.event_id().to_owned(),
                        routing_key: envelope.event_type().to_owned(),
                    });
                }
            }
        }
        InProcessBus::confirmed(latch).await;
        Ok(())
    }

    async fn send_to_queue(&self, queue: &str, batch: &[Envelope]) -> BusResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        for envelope in batch {
            envelope.validate()?;
        }
        let latch = self.new_latch();
        {
            let mut state = self.inner.lock();
            if !state.queues.contains_key(queue) {
                return Err(BusError::Queue {
                    queue: queue.to_owned(),
                    reason: "does not exist".to_owned(),
                });
            }
            for envelope in batch {
                let message = Message::new(envelope, latch.as_ref());
                state.enqueue_into(queue, &message, self.inner.stream_memory_cap);
            }
        }
        InProcessBus::confirmed(latch).await;
        Ok(())
    }

    async fn ensure_queue(&self, spec: &QueueSpec) -> BusResult<()> {
        self.inner.lock().declare(spec)
    }

    async fn subscribe(&self, queue: &QueueSpec, prefetch: u16) -> BusResult<Subscription> {
        let mut state = self.inner.lock();
        state.declare(queue)?;
        let consumer = state.sequence();
        state.consumers.insert(
            consumer,
            ConsumerState {
                queue: queue.name.clone(),
                prefetch: usize::from(prefetch),
                in_flight: 0,
            },
        );
        let Some(declared) = state.queues.get(&queue.name) else {
            return Err(BusError::Queue {
                queue: queue.name.clone(),
                reason: "vanished while subscribing".to_owned(),
            });
        };
        let notify = declared.notify.clone();
        let cursor = match &declared.body {
            QueueBody::Quorum { .. } => None,
            QueueBody::Stream { log, next_offset, .. } => {
                let first = log.front().map_or(*next_offset, |entry| entry.offset);
                Some(match queue.stream_offset {
                    StreamOffset::First => first,
                    StreamOffset::Last => log.back().map_or(*next_offset, |entry| entry.offset),
                    StreamOffset::Next => *next_offset,
                    StreamOffset::Offset(offset) => offset.max(first),
                })
            }
        };
        drop(state);
        Ok(Subscription::new(
            queue.name.clone(),
            Source::Memory(MemorySubscription {
                inner: self.inner.clone(),
                queue: queue.name.clone(),
                consumer,
                notify,
                cursor,
            }),
        ))
    }

    async fn check(&self) -> BusResult<()> {
        Ok(())
    }
}

/// A consumer on an in-memory queue.
pub(crate) struct MemorySubscription {
    inner: Arc<Inner>,
    queue: String,
    consumer: u64,
    notify: Arc<Notify>,
    /// Next stream offset to read; `None` for quorum queues.
    cursor: Option<u64>,
}

impl Drop for MemorySubscription {
    fn drop(&mut self) {
        self.inner
            .lock()
            .close_consumer(self.consumer, &self.queue, self.inner.stream_memory_cap);
    }
}

impl MemorySubscription {
    pub(crate) async fn next_batch(&mut self, max: usize, linger: Duration) -> BusResult<Vec<Delivery>> {
        let mut batch = Vec::new();
        // A clone so waiting does not borrow `self` while `take` mutates it.
        let notify = self.notify.clone();
        // At least one: wait as long as it takes.
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.take(max, &mut batch)?;
            if !batch.is_empty() {
                break;
            }
            notified.await;
        }
        // Then more, for up to `linger`.
        let deadline = tokio::time::Instant::now() + linger;
        while batch.len() < max {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let before = batch.len();
            self.take(max, &mut batch)?;
            if batch.len() > before {
                continue;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        Ok(batch)
    }

    /// Moves ready messages into `batch`, within `max` and the prefetch credit.
    fn take(&mut self, max: usize, batch: &mut Vec<Delivery>) -> BusResult<()> {
        let mut guard = self.inner.lock();
        // Reborrow once so the fields below can be borrowed separately.
        let state = &mut *guard;
        let wanted = max.saturating_sub(batch.len()).min(state.credit(self.consumer));
        if wanted == 0 {
            return Ok(());
        }
        // On a single-active-consumer queue, a subscription waiting its turn
        // takes nothing (even while the active one has no credit left).
        let waiting_its_turn = state
            .queues
            .get(&self.queue)
            .is_some_and(|queue| queue.spec.has_single_active_consumer())
            && state.active_consumer(&self.queue) != Some(self.consumer);
        if waiting_its_turn {
            return Ok(());
        }
        let Some(queue) = state.queues.get_mut(&self.queue) else {
            return Err(BusError::Queue {
                queue: self.queue.clone(),
                reason: "does not exist".to_owned(),
            });
        };
        let (inner, queue_name, consumer) = (&self.inner, &self.queue, self.consumer);
        let settler = |kind| {
            Settler::Memory(MemorySettler {
                inner: inner.clone(),
                queue: queue_name.clone(),
                consumer,
                kind,
            })
        };
        let before = batch.len();
        match &mut queue.body {
            QueueBody::Quorum { ready, unacked } => {
                while batch.len() - before < wanted {
                    let Some((position, mut message)) = ready.pop_first() else {
                        break;
                    };
                    state.next_sequence += 1;
                    let tag = state.next_sequence;
                    let redelivered = message.delivered_before;
                    message.delivered_before = true;
                    let delivery = Delivery::new(
                        (*message.envelope).clone(),
                        redelivered,
                        message.delivery_count,
                        message.dead_letter.clone(),
                        None,
                        settler(SettleKind::Quorum { tag }),
                    );
                    unacked.insert(
                        tag,
                        Unacked {
                            position,
                            consumer,
                            message,
                        },
                    );
                    batch.push(delivery);
                }
            }
            QueueBody::Stream { log, .. } => {
                let Some(cursor) = self.cursor.as_mut() else {
                    return Ok(());
                };
                let first = log.front().map_or(*cursor, |entry| entry.offset);
                // Retention may have removed what the cursor pointed at.
                *cursor = (*cursor).max(first);
                let start = usize::try_from(*cursor - first).unwrap_or(usize::MAX);
                for entry in log.iter().skip(start).take(wanted) {
                    batch.push(Delivery::new(
                        (*entry.envelope).clone(),
                        false,
                        0,
                        None,
                        Some(entry.offset),
                        settler(SettleKind::Stream),
                    ));
                    *cursor = entry.offset + 1;
                }
            }
        }
        if let Some(consumer) = state.consumers.get_mut(&self.consumer) {
            consumer.in_flight += batch.len() - before;
        }
        Ok(())
    }
}

pub(crate) struct MemorySettler {
    inner: Arc<Inner>,
    queue: String,
    consumer: u64,
    kind: SettleKind,
}

enum SettleKind {
    Quorum {
        tag: u64,
    },
    /// Stream messages stay in the stream whatever the consumer does; settling
    /// only returns the prefetch credit.
    Stream,
}

impl MemorySettler {
    /// Takes the unacked message back out of its queue. `Ok(None)` for
    /// streams; an error when the message is no longer this delivery's: its
    /// subscription closed and the queue took it back (as settling on a closed
    /// RabbitMQ channel fails).
    fn take_unacked(&self, state: &mut State) -> BusResult<Option<Unacked>> {
        let SettleKind::Quorum { tag } = self.kind else {
            return Ok(None);
        };
        let taken = match state.queues.get_mut(&self.queue).map(|queue| &mut queue.body) {
            Some(QueueBody::Quorum { unacked, .. }) => unacked.remove(&tag),
            _ => None,
        };
        match taken {
            Some(entry) => Ok(Some(entry)),
            None => Err(BusError::Queue {
                queue: self.queue.clone(),
                reason: "subscription closed: the message went back to the queue".to_owned(),
            }),
        }
    }

    pub(crate) fn ack(&self) -> BusResult<()> {
        let mut state = self.inner.lock();
        let result = self.take_unacked(&mut state).map(|taken| {
            if let Some(latch) = taken.and_then(|entry| entry.message.latch) {
                latch.settle_one();
            }
        });
        state.release_credit(self.consumer, &self.queue);
        result
    }

    pub(crate) fn retry(&self) -> BusResult<()> {
        let mut state = self.inner.lock();
        let result = self.take_unacked(&mut state).map(|taken| {
            if let Some(entry) = taken {
                state.return_message(
                    &self.queue,
                    entry.position,
                    entry.message,
                    self.inner.stream_memory_cap,
                );
            }
        });
        state.release_credit(self.consumer, &self.queue);
        result
    }

    pub(crate) fn reject(&self, envelope: &Envelope, reason: &str) -> BusResult<()> {
        let mut state = self.inner.lock();
        let message = match self.take_unacked(&mut state) {
            Ok(Some(entry)) => entry.message,
            Ok(None) => Message {
                envelope: Arc::new(envelope.clone()),
                latch: None,
                delivery_count: 0,
                delivered_before: true,
                dead_letter: None,
            },
            Err(error) => {
                state.release_credit(self.consumer, &self.queue);
                return Err(error);
            }
        };
        state.dead_letter(
            &self.queue,
            message,
            DeadLetterReason::Rejected(reason.to_owned()),
            self.inner.stream_memory_cap,
        );
        state.release_credit(self.consumer, &self.queue);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_proto::v1;

    fn envelope(event_type: &str) -> Envelope {
        Envelope {
            event: v1::Event {
                id: uuid::Uuid::now_v7().to_string(),
                r#type: event_type.to_owned(),
                ..Default::default()
            },
            traceparent: None,
        }
    }

    #[tokio::test]
    async fn streams_in_memory_keep_within_the_memory_cap() {
        let sample = envelope("contact.received");
        let size = sample.encode_body().len() as u64;
        let topology = Topology::new("t.");
        // Room for three events.
        let bus = InProcessBus::with_stream_memory_cap(topology.clone(), size * 3);
        let sent: Vec<Envelope> = (0..5).map(|_| envelope("contact.received")).collect();
        bus.publish(&sent).await.expect("publish");
        let stream = QueueSpec::analytics(&topology);
        assert_eq!(bus.queue_depth(&stream.name), Some(3));
        let mut subscription = bus.subscribe(&stream, 10).await.expect("subscribe");
        let batch = subscription
            .next_batch(10, Duration::from_millis(10))
            .await
            .expect("batch");
        let offsets: Vec<Option<u64>> = batch.iter().map(|delivery| delivery.stream_offset).collect();
        assert_eq!(offsets, [Some(2), Some(3), Some(4)]);
        crate::bus::ack_all(batch).await.expect("ack");
    }
}
