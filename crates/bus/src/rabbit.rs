//! [`RabbitBus`]: the bus on RabbitMQ, over lapin.
//!
//! One AMQP connection per bus, supervised by a background task: when it is
//! lost, the task reconnects with capped exponential back-off (with jitter, so a
//! fleet does not reconnect in lockstep), declares the topology again and
//! publishes the new connection; subscriptions notice and open their consumers
//! again. While disconnected, `publish` fails at once with
//! [`BusError::Unavailable`]: the outbox relay keeps the events and retries, so
//! no request ever waits on the broker.
//!
//! lapin's own auto-recovery is not used: it retries a fixed number of times
//! and then gives up, and it would replay consumers behind our back while
//! deliveries of the old channel are still held. Owning the loop keeps the
//! rules in one place.
//!
//! Every message is persistent, published `mandatory` with publisher confirms:
//! `publish` returns once the broker has taken responsibility for each one, and
//! an unroutable message is an error, not a silent loss.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bus::{Bus, DeadLetter, DeadLetterReason, Delivery, Settler, Source, Subscription};
use crate::envelope::{CONTENT_TYPE, Envelope};
use crate::error::{BusError, BusResult};
use crate::topology::{QueueKind, QueueSpec, StreamOffset, Topology};
use crate::trace::TRACEPARENT;

/// The AMQP default exchange: every queue is bound to it under its own name,
/// and nothing else is.
const DEFAULT_EXCHANGE: &str = "";
/// AMQP delivery mode 2: the broker writes the message to disk (quorum queues
/// and streams always do; this also tells any classic queue to).
const PERSISTENT: u8 = 2;
/// Giving up on a TCP/AMQP handshake after this long lets the back-off loop
/// try again instead of hanging on a black-holed address.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `publish` waits for the broker's confirms before reporting the bus
/// unavailable (a half-open connection, or a broker blocked on a resource
/// alarm). The relay retries, so erring early only costs a duplicate at worst.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(15);
/// Reconnect back-off: first retry after about this long…
const RECONNECT_MIN: Duration = Duration::from_millis(200);
/// …doubling up to this cap, so a long outage costs one attempt per 30 s.
const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// How often the supervisor looks at the connection state, in case the loss
/// was not reported as an event.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Header naming why a consumer rejected a message, on the dead-letter copy
/// (RabbitMQ's `x-death` only says "rejected").
pub const DEAD_LETTER_REASON_HEADER: &str = "x-switchboard-dead-letter-reason";
/// Header naming the queue a consumer rejected the message from.
pub const DEAD_LETTER_QUEUE_HEADER: &str = "x-switchboard-dead-letter-queue";

/// The RabbitMQ bus. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct RabbitBus {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RabbitBus {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RabbitBus")
            .field("topology", &self.shared.topology)
            .field("connection_name", &self.shared.connection_name)
            .finish_non_exhaustive()
    }
}

struct Shared {
    topology: Topology,
    /// Holds the broker credentials: never logged.
    url: String,
    /// Shown by `rabbitmqctl list_connections user_provided_name` and the
    /// management UI, so an operator can tell services apart.
    connection_name: String,
    /// The current connection; `None` while reconnecting. A watch channel so
    /// subscriptions can wait for the next connection without polling.
    live: watch::Sender<Option<Arc<Live>>>,
    /// Queues declared through `ensure_queue`, declared again on every new
    /// connection (a broker restarted from scratch has none of them). A std
    /// mutex: held only to clone or push, never across an `.await`.
    declared: Mutex<Vec<QueueSpec>>,
    /// The supervisor task, aborted when the last handle goes.
    supervisor: Mutex<Option<JoinHandle<()>>>,
    /// Connections re-established after a loss (a metric, and how tests see a
    /// reconnect that was too quick to observe otherwise).
    reconnects: AtomicU64,
    /// Set by `close`: no more connections, and waiting subscriptions give up.
    closed: AtomicBool,
}

/// One established connection and its publishing channel.
struct Live {
    /// Counts connections, so a subscription can wait for a newer one than
    /// the one it saw fail.
    generation: u64,
    connection: Connection,
    /// The confirm-mode channel every publish goes through (the broker confirms
    /// per channel, and one channel keeps each publisher's batch in order). A
    /// tokio mutex because it is held while a broken channel is replaced.
    publisher: tokio::sync::Mutex<Option<Channel>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(supervisor) = lock(&self.supervisor).take() {
            supervisor.abort();
        }
        let live = self.live.borrow().clone();
        if let (Some(live), Ok(runtime)) = (live, tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move {
                let _closed = live.connection.close(200, "bus dropped".into()).await;
            });
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these mutexes stays consistent across a panic (whole
    // values are swapped in), so a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn short(value: &str) -> BusResult<ShortString> {
    ShortString::try_new(value)
        .map_err(|_| BusError::InvalidEvent(format!("{value:.40}… is longer than 255 bytes")))
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

impl RabbitBus {
    /// Connects to `url` (e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`), declares
    /// the topology and starts supervising the connection. Fails if the first
    /// connection cannot be made, so a misconfigured service stops at start.
    pub async fn connect(url: &str, topology: Topology) -> BusResult<RabbitBus> {
        RabbitBus::connect_named(url, topology, "switchboard").await
    }

    /// As [`RabbitBus::connect`], with the connection name shown to operators
    /// (e.g. `switchboard-intake`).
    pub async fn connect_named(url: &str, topology: Topology, connection_name: &str) -> BusResult<RabbitBus> {
        let (live, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            topology,
            url: url.to_owned(),
            connection_name: connection_name.to_owned(),
            live,
            declared: Mutex::new(Vec::new()),
            supervisor: Mutex::new(None),
            reconnects: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let first = shared.establish(1).await?;
        shared.live.send_replace(Some(first.clone()));
        let supervisor = tokio::spawn(supervise(Arc::downgrade(&shared), first));
        *lock(&shared.supervisor) = Some(supervisor);
        tracing::info!(connection_name = %connection_name, "connected to rabbitmq");
        Ok(RabbitBus { shared })
    }

    pub fn topology(&self) -> &Topology {
        &self.shared.topology
    }

    pub fn connection_name(&self) -> &str {
        &self.shared.connection_name
    }

    /// How many times the connection was lost and re-established.
    pub fn reconnects(&self) -> u64 {
        self.shared.reconnects.load(Ordering::Relaxed)
    }

    /// Messages ready in `queue` (not counting those delivered and unacked),
    /// `None` if it does not exist. For tests and health pages.
    pub async fn queue_depth(&self, queue: &str) -> BusResult<Option<u32>> {
        let live = self.shared.current()?;
        let channel = live
            .connection
            .create_channel()
            .await
            .map_err(BusError::amqp("channel.open"))?;
        let declared = channel
            .queue_declare(
                short(queue)?,
                // Passive: only look, never create.
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        match declared {
            Ok(found) => {
                let _closed = channel.close(200, "done".into()).await;
                Ok(Some(found.message_count()))
            }
            // A passive declare of a missing queue closes the channel: nothing to close.
            Err(error) if is_soft(&error, AMQPSoftError::NOTFOUND) => Ok(None),
            Err(error) => Err(BusError::amqp("queue.declare")(error)),
        }
    }

    /// Deletes every queue and exchange this bus declared (the topology's and
    /// those passed to `ensure_queue`). For tests, which each use a random
    /// prefix and must leave the broker as they found it.
    pub async fn delete_topology(&self) -> BusResult<()> {
        let live = self.shared.current()?;
        let topology = &self.shared.topology;
        let mut queues: Vec<String> = lock(&self.shared.declared)
            .iter()
            .map(|spec| spec.name.clone())
            .collect();
        // The queues every process declares at start, even when this bus
        // declared none of them.
        queues.push(QueueSpec::cases(topology).name);
        queues.push(QueueSpec::routing(topology).name);
        queues.push(QueueSpec::dead_letter(topology).name);
        queues.push(QueueSpec::analytics(topology).name);
        queues.sort();
        queues.dedup();
        // Delete everything possible even if one deletion fails; a failed
        // deletion closes the channel, so each gets its own.
        let mut first_error = None;
        let exchanges = [topology.exchange(), topology.dead_letter_exchange()];
        for queue in &queues {
            if let Err(error) = delete_one(&live, queue, true).await {
                first_error.get_or_insert(error);
            }
        }
        for exchange in &exchanges {
            if let Err(error) = delete_one(&live, exchange, false).await {
                first_error.get_or_insert(error);
            }
        }
        lock(&self.shared.declared).clear();
        match first_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Closes the connection and stops reconnecting. Unsettled deliveries go
    /// back to their queues. Other clones of this bus stop working too.
    pub async fn close(&self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        if let Some(supervisor) = lock(&self.shared.supervisor).take() {
            supervisor.abort();
        }
        if let Some(live) = self.shared.live.send_replace(None) {
            let _closed = live.connection.close(200, "closing".into()).await;
        }
    }
}

/// Deletes one queue or exchange on a channel of its own.
async fn delete_one(live: &Live, name: &str, queue: bool) -> BusResult<()> {
    let channel = live
        .connection
        .create_channel()
        .await
        .map_err(BusError::amqp("channel.open"))?;
    if queue {
        channel
            .queue_delete(short(name)?, QueueDeleteOptions::default())
            .await
            .map_err(BusError::amqp("queue.delete"))?;
    } else {
        channel
            .exchange_delete(short(name)?, ExchangeDeleteOptions::default())
            .await
            .map_err(BusError::amqp("exchange.delete"))?;
    }
    let _closed = channel.close(200, "deleted".into()).await;
    Ok(())
}

impl Shared {
    /// The current connection, or `Unavailable` at once while reconnecting.
    fn current(&self) -> BusResult<Arc<Live>> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(BusError::Closed);
        }
        match self.live.borrow().as_ref() {
            Some(live) if live.connection.status().connected() => Ok(live.clone()),
            Some(_) => Err(BusError::Unavailable(
                "rabbitmq connection lost, reconnecting".to_owned(),
            )),
            None => Err(BusError::Unavailable("not connected to rabbitmq".to_owned())),
        }
    }

    /// Opens a connection and declares everything on it.
    async fn establish(&self, generation: u64) -> BusResult<Arc<Live>> {
        // Our own supervision instead of `enable_auto_recover` (see the module
        // documentation); the name makes the connection findable by operators.
        let properties = ConnectionProperties::default()
            .with_connection_name(LongString::from(self.connection_name.as_str()));
        let connection =
            match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(&self.url, properties)).await {
                Ok(Ok(connection)) => connection,
                Ok(Err(error)) => return Err(BusError::amqp("connect")(error)),
                Err(_) => {
                    return Err(BusError::Unavailable(format!(
                        "no rabbitmq connection within {}s",
                        CONNECT_TIMEOUT.as_secs()
                    )));
                }
            };
        match self.declare_all(&connection).await {
            Ok(publisher) => Ok(Arc::new(Live {
                generation,
                connection,
                publisher: tokio::sync::Mutex::new(Some(publisher)),
            })),
            Err(error) => {
                let _closed = connection.close(200, "topology failed".into()).await;
                Err(error)
            }
        }
    }

    /// Declares the topology, then turns the channel into the publisher.
    async fn declare_all(&self, connection: &Connection) -> BusResult<Channel> {
        let channel = connection
            .create_channel()
            .await
            .map_err(BusError::amqp("channel.open"))?;
        declare_topology(&channel, &self.topology).await?;
        let declared = lock(&self.declared).clone();
        for spec in &declared {
            declare_queue(&channel, spec).await?;
        }
        enable_confirms(&channel).await?;
        Ok(channel)
    }

    /// The publishing channel of `live`, reopened if the broker closed it (a
    /// channel error, such as publishing to a deleted exchange, closes only
    /// the channel).
    async fn publisher(&self, live: &Live) -> BusResult<Channel> {
        let mut publisher = live.publisher.lock().await;
        if let Some(channel) = publisher.as_ref()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        let channel = live
            .connection
            .create_channel()
            .await
            .map_err(BusError::amqp("channel.open"))?;
        enable_confirms(&channel).await?;
        *publisher = Some(channel.clone());
        Ok(channel)
    }

    /// Publishes `envelopes` to `exchange` and waits for every confirm. The
    /// routing key is `routing_key`, or each event's type when `None`.
    /// `extra_headers` go on every message (dead-letter reasons).
    async fn publish_to(
        &self,
        exchange: &str,
        routing_key: Option<&str>,
        envelopes: &[Envelope],
        extra_headers: &[(&str, &str)],
    ) -> BusResult<()> {
        for envelope in envelopes {
            envelope.validate()?;
        }
        let live = self.current()?;
        let channel = self.publisher(&live).await?;
        let exchange = short(exchange)?;
        let fixed_key = routing_key.map(short).transpose()?;
        // Pipelined: send the whole batch, then collect the confirms, so a
        // batch costs one round trip rather than one per message.
        let mut pending = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            let confirm = channel
                .basic_publish(
                    exchange.clone(),
                    match &fixed_key {
                        Some(key) => key.clone(),
                        None => short(envelope.event_type())?,
                    },
                    BasicPublishOptions {
                        // Unroutable messages come back (basic.return) instead
                        // of being dropped: a missing binding is an error.
                        mandatory: true,
                        // Not supported by RabbitMQ, and not wanted: queues
                        // hold messages until a consumer comes.
                        immediate: false,
                    },
                    &envelope.encode_body(),
                    properties(envelope, extra_headers),
                )
                .await
                .map_err(BusError::amqp("basic.publish"))?;
            pending.push((envelope.event_id(), confirm));
        }
        let confirms = async {
            let mut first_error = None;
            for (event_id, confirm) in pending {
                let outcome = match confirm.await {
                    Ok(Confirmation::Ack(None)) => Ok(()),
                    Ok(Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned))) => {
                        Err(BusError::Unroutable {
                            event_id: event_id.to_owned(),
                            routing_key: returned.delivery.routing_key.to_string(),
                        })
                    }
                    Ok(Confirmation::Nack(None)) => Err(BusError::Nacked {
                        event_id: event_id.to_owned(),
                    }),
                    Ok(Confirmation::NotRequested) => Err(BusError::Unavailable(
                        "publisher channel is not in confirm mode".to_owned(),
                    )),
                    Err(error) => Err(BusError::amqp("publisher confirm")(error)),
                };
                if let Err(error) = outcome {
                    first_error.get_or_insert(error);
                }
            }
            first_error
        };
        match tokio::time::timeout(CONFIRM_TIMEOUT, confirms).await {
            Ok(None) => Ok(()),
            Ok(Some(error)) => Err(error),
            Err(_) => Err(BusError::Unavailable(format!(
                "no publisher confirms within {}s",
                CONFIRM_TIMEOUT.as_secs()
            ))),
        }
    }
}

/// Watches the connection; on loss, reconnects with back-off and re-declares,
/// forever (until every handle to the bus is dropped).
async fn supervise(shared: Weak<Shared>, mut live: Arc<Live>) {
    loop {
        wait_for_loss(&live.connection).await;
        let lost_generation = live.generation;
        {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            shared.live.send_replace(None);
            tracing::warn!(
                connection_name = %shared.connection_name,
                generation = lost_generation,
                "rabbitmq connection lost, reconnecting"
            );
        }
        let mut delay = RECONNECT_MIN;
        let mut attempt: u32 = 0;
        live = loop {
            attempt += 1;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            match shared.establish(lost_generation + 1).await {
                Ok(new_live) => {
                    shared.live.send_replace(Some(new_live.clone()));
                    shared.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        connection_name = %shared.connection_name,
                        generation = new_live.generation,
                        attempt,
                        "rabbitmq connection re-established, topology declared"
                    );
                    break new_live;
                }
                Err(error) => {
                    tracing::warn!(
                        connection_name = %shared.connection_name,
                        attempt,
                        retry_in_ms = delay.as_millis() as u64,
                        error.message = %error,
                        "rabbitmq reconnect failed"
                    );
                }
            }
            drop(shared);
            tokio::time::sleep(jitter(delay)).await;
            delay = (delay * 2).min(RECONNECT_MAX);
        };
    }
}

/// Between 50% and 100% of `delay`, so many services do not retry in step.
fn jitter(delay: Duration) -> Duration {
    let factor = 0.5 + rand::random::<f64>() * 0.5;
    delay.mul_f64(factor)
}

/// Returns once `connection` is no longer usable.
async fn wait_for_loss(connection: &Connection) {
    let events = connection.events_listener();
    tokio::pin!(events);
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    loop {
        if !connection.status().connected() {
            return;
        }
        tokio::select! {
            event = events.next() => match event {
                // Channel errors arrive here too; the status check decides.
                Some(lapin::Event::Error(error)) => {
                    tracing::debug!(error.message = %error, "rabbitmq connection event: error");
                }
                Some(lapin::Event::ConnectionBlocked(reason)) => {
                    tracing::warn!(reason = %reason, "rabbitmq blocked publishing (resource alarm)");
                }
                Some(_) => {}
                None => return,
            },
            _ = tick.tick() => {}
        }
    }
}

fn is_soft(error: &lapin::Error, soft: AMQPSoftError) -> bool {
    matches!(error.kind(), lapin::ErrorKind::ProtocolError(amqp) if *amqp.kind() == AMQPErrorKind::Soft(soft))
}

async fn enable_confirms(channel: &Channel) -> BusResult<()> {
    // Publisher confirms: the broker acks each message once it has been
    // written to every queue it routes to (on quorum queues: to a majority).
    channel
        .confirm_select(ConfirmSelectOptions { nowait: false })
        .await
        .map_err(BusError::amqp("confirm.select"))
}

/// Durable exchanges, the dead-letter queue and the analytics stream.
async fn declare_topology(channel: &Channel, topology: &Topology) -> BusResult<()> {
    let durable_exchange = ExchangeDeclareOptions {
        // Declare, do not just check.
        passive: false,
        // Survives a broker restart.
        durable: true,
        // Stays when no queue is bound (queues come and go with services).
        auto_delete: false,
        // Publishers send to it directly.
        internal: false,
        // Wait for declare-ok, so a mismatch is an error here.
        nowait: false,
    };
    channel
        .exchange_declare(
            short(&topology.exchange())?,
            // Routing key = event type; queues bind patterns such as `contact.#`.
            ExchangeKind::Topic,
            durable_exchange,
            FieldTable::default(),
        )
        .await
        .map_err(BusError::amqp("exchange.declare"))?;
    channel
        .exchange_declare(
            short(&topology.dead_letter_exchange())?,
            // Fanout: every dead letter lands in the dead-letter queue
            // whatever its routing key (the original event type is kept).
            ExchangeKind::Fanout,
            durable_exchange,
            FieldTable::default(),
        )
        .await
        .map_err(BusError::amqp("exchange.declare"))?;
    declare_queue(channel, &QueueSpec::dead_letter(topology)).await?;
    if topology.has_analytics_stream() {
        declare_queue(channel, &QueueSpec::analytics(topology)).await?;
    }
    Ok(())
}

/// Declares `spec` with its arguments and binds it.
async fn declare_queue(channel: &Channel, spec: &QueueSpec) -> BusResult<()> {
    let mut arguments = FieldTable::default();
    match &spec.kind {
        QueueKind::Quorum {
            delivery_limit,
            dead_letter_exchange,
        } => {
            // Quorum: replicated with Raft, survives the loss of a minority of
            // nodes, and counts deliveries (which classic queues do not).
            arguments.insert("x-queue-type".into(), text("quorum"));
            if let Some(dead_letter_exchange) = dead_letter_exchange {
                // Rejected and over-limit messages go here, never away.
                arguments.insert("x-dead-letter-exchange".into(), text(dead_letter_exchange));
                // At-least-once dead-lettering (RabbitMQ 3.10+): the queue keeps
                // a dead letter until the dead-letter queue has confirmed it,
                // instead of fire-and-forget.
                arguments.insert("x-dead-letter-strategy".into(), text("at-least-once"));
                // Required by at-least-once dead-lettering: when full, refuse
                // new publishes (the publisher gets a nack and retries) rather
                // than drop the oldest messages.
                arguments.insert("x-overflow".into(), text("reject-publish"));
            }
            if let Some(limit) = delivery_limit {
                // A poison message is dead-lettered after this many returns
                // instead of being redelivered forever.
                arguments.insert(
                    "x-delivery-limit".into(),
                    AMQPValue::LongLongInt(i64::from(*limit)),
                );
            }
            if spec.single_active_consumer {
                // One consumer at a time gets messages, the others wait in line
                // and the next takes over (with the unacked messages) when it
                // goes: a routing partition is owned by one router process, in
                // order, with a standby ready. Fixed at declaration.
                arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
            }
        }
        QueueKind::Stream {
            max_age,
            max_length_bytes,
        } => {
            // Stream: an append-only log every consumer reads from its own
            // offset, so analysts can replay history.
            arguments.insert("x-queue-type".into(), text("stream"));
            // Retention by age: whole segments older than this are discarded.
            arguments.insert(
                "x-max-age".into(),
                text(&format!("{}s", max_age.as_secs().max(1))),
            );
            // Retention by size, whichever limit is reached first.
            arguments.insert(
                "x-max-length-bytes".into(),
                AMQPValue::LongLongInt(i64::try_from(*max_length_bytes).unwrap_or(i64::MAX)),
            );
        }
    }
    channel
        .queue_declare(
            short(&spec.name)?,
            QueueDeclareOptions {
                // Declare, do not just check.
                passive: false,
                // Quorum queues and streams must be durable; survives restarts.
                durable: true,
                // Shared by every instance of a service (competing consumers).
                exclusive: false,
                // Messages must wait for a consumer that is restarting.
                auto_delete: false,
                // Wait for declare-ok: an argument mismatch is an error here.
                nowait: false,
            },
            arguments,
        )
        .await
        .map_err(|error| queue_error(spec, "queue.declare", error))?;
    for pattern in &spec.bindings {
        channel
            .queue_bind(
                short(&spec.name)?,
                short(&spec.exchange)?,
                short(pattern)?,
                // Wait for bind-ok.
                QueueBindOptions { nowait: false },
                FieldTable::default(),
            )
            .await
            .map_err(|error| queue_error(spec, "queue.bind", error))?;
    }
    Ok(())
}

fn queue_error(spec: &QueueSpec, operation: &'static str, error: lapin::Error) -> BusError {
    if is_soft(&error, AMQPSoftError::PRECONDITIONFAILED) {
        BusError::Queue {
            queue: spec.name.clone(),
            reason: "already declared with other arguments".to_owned(),
        }
    } else if is_soft(&error, AMQPSoftError::NOTFOUND) {
        BusError::Queue {
            queue: spec.name.clone(),
            reason: format!("{operation}: queue or exchange {} does not exist", spec.exchange),
        }
    } else {
        BusError::Amqp {
            operation,
            source: error,
        }
    }
}

/// AMQP properties and headers for `envelope` (DESIGN.md, messaging topology).
fn properties(envelope: &Envelope, extra_headers: &[(&str, &str)]) -> BasicProperties {
    let event = &envelope.event;
    let mut headers = FieldTable::default();
    // CloudEvents 1.0, AMQP protocol binding (binary content mode): the
    // attributes travel as application properties with the `cloudEvents:`
    // prefix, the event itself as the body.
    headers.insert("cloudEvents:specversion".into(), text("1.0"));
    headers.insert("cloudEvents:id".into(), text(&event.id));
    headers.insert("cloudEvents:type".into(), text(&event.r#type));
    headers.insert("cloudEvents:source".into(), text(&event.source));
    if let Some(time) = event
        .occurred_at
        .as_ref()
        .and_then(|time| rfc3339(time.seconds, time.nanos))
    {
        headers.insert("cloudEvents:time".into(), text(&time));
    }
    if !event.subject.is_empty() {
        headers.insert("cloudEvents:subject".into(), text(&event.subject));
    }
    if let Some(traceparent) = &envelope.traceparent {
        headers.insert(TRACEPARENT.into(), text(traceparent));
    }
    for (name, value) in extra_headers {
        headers.insert((*name).into(), text(value));
    }
    // Envelope::validate bounds id, type and source to 255 bytes, so these
    // conversions cannot panic.
    let mut properties = BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_content_type(CONTENT_TYPE.into())
        // The consumers' inbox key and the broker-side dedup handle.
        .with_message_id(event.id.as_str().into())
        .with_type(event.r#type.as_str().into())
        .with_headers(headers);
    if !event.source.is_empty() {
        properties = properties.with_app_id(event.source.as_str().into());
    }
    let timestamp = event
        .occurred_at
        .as_ref()
        .map_or_else(|| chrono::Utc::now().timestamp(), |time| time.seconds);
    properties.with_timestamp(u64::try_from(timestamp).unwrap_or(0))
}

fn rfc3339(seconds: i64, nanos: i32) -> Option<String> {
    let nanos = u32::try_from(nanos).ok()?;
    chrono::DateTime::from_timestamp(seconds, nanos)
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

#[async_trait]
impl Bus for RabbitBus {
    async fn publish(&self, batch: &[Envelope]) -> BusResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.shared
            .publish_to(&self.shared.topology.exchange(), None, batch, &[])
            .await
    }

    async fn send_to_queue(&self, queue: &str, batch: &[Envelope]) -> BusResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        for envelope in batch {
            envelope.validate()?;
        }
        if queue.is_empty() || queue.len() > 255 {
            return Err(BusError::Queue {
                queue: format!("{queue:.255}"),
                reason: "not a queue name (1 to 255 bytes)".to_owned(),
            });
        }
        // The default exchange routes by queue name to that queue alone; with
        // `mandatory`, a queue that does not exist returns the message.
        self.shared
            .publish_to(DEFAULT_EXCHANGE, Some(queue), batch, &[])
            .await
            .map_err(|error| match error {
                BusError::Unroutable { event_id, .. } => BusError::Queue {
                    queue: queue.to_owned(),
                    reason: format!("does not exist (event {event_id} was returned)"),
                },
                other => other,
            })
    }

    async fn ensure_queue(&self, spec: &QueueSpec) -> BusResult<()> {
        let live = self.shared.current()?;
        // A channel of its own: a declaration that fails closes its channel,
        // which must not be the publisher's.
        let channel = live
            .connection
            .create_channel()
            .await
            .map_err(BusError::amqp("channel.open"))?;
        declare_queue(&channel, spec).await?;
        let _closed = channel.close(200, "declared".into()).await;
        let mut declared = lock(&self.shared.declared);
        declared.retain(|existing| existing.name != spec.name);
        declared.push(spec.clone());
        Ok(())
    }

    async fn subscribe(&self, queue: &QueueSpec, prefetch: u16) -> BusResult<Subscription> {
        self.ensure_queue(queue).await?;
        let mut subscription = RabbitSubscription {
            shared: self.shared.clone(),
            spec: queue.clone(),
            prefetch,
            active: None,
            failed_generation: 0,
            resume_offset: None,
        };
        // Consume now, so messages published after `subscribe` returns reach
        // it (and a stream's `Next` means "after subscribing").
        subscription.establish().await?;
        Ok(Subscription::new(
            queue.name.clone(),
            Source::Rabbit(Box::new(subscription)),
        ))
    }

    async fn check(&self) -> BusResult<()> {
        self.shared.current().map(|_| ())
    }
}

/// Delivery tags delivered on one channel and not yet settled, so a batch ack
/// can use `multiple = true` without acking someone else's delivery.
struct Tracker {
    channel: Channel,
    outstanding: Mutex<BTreeSet<u64>>,
}

struct ActiveConsumer {
    generation: u64,
    consumer: lapin::Consumer,
    tracker: Arc<Tracker>,
}

/// A consumer on a RabbitMQ queue that re-establishes itself after a
/// connection loss.
pub(crate) struct RabbitSubscription {
    shared: Arc<Shared>,
    spec: QueueSpec,
    prefetch: u16,
    active: Option<ActiveConsumer>,
    /// The connection generation last seen failing: wait for a newer one.
    failed_generation: u64,
    /// For streams: the offset after the last delivery, to resume from.
    resume_offset: Option<u64>,
}

impl Drop for RabbitSubscription {
    fn drop(&mut self) {
        // Closing the channel cancels the consumer; the broker requeues what
        // was delivered and not settled.
        if let (Some(active), Ok(runtime)) = (self.active.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move {
                let _closed = active.tracker.channel.close(200, "unsubscribed".into()).await;
            });
        }
    }
}

impl RabbitSubscription {
    /// Opens the channel and consumer, waiting out a reconnect if needed.
    async fn establish(&mut self) -> BusResult<()> {
        let mut live_changes = self.shared.live.subscribe();
        loop {
            let failed_generation = self.failed_generation;
            let shared = &self.shared;
            let live = live_changes
                .wait_for(|live| {
                    shared.closed.load(Ordering::Relaxed)
                        || live.as_ref().is_some_and(|live| {
                            live.generation > failed_generation && live.connection.status().connected()
                        })
                })
                .await
                .map_err(|_| BusError::Closed)?
                .clone();
            if self.shared.closed.load(Ordering::Relaxed) {
                return Err(BusError::Closed);
            }
            let Some(live) = live else {
                continue;
            };
            match self.open_consumer(&live).await {
                Ok(active) => {
                    self.active = Some(active);
                    return Ok(());
                }
                Err(error) if !live.connection.status().connected() => {
                    tracing::debug!(queue = %self.spec.name, error.message = %error, "consumer lost its connection while opening");
                    self.failed_generation = live.generation;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn open_consumer(&self, live: &Live) -> BusResult<ActiveConsumer> {
        let channel = live
            .connection
            .create_channel()
            .await
            .map_err(BusError::amqp("channel.open"))?;
        // Streams refuse consumers without a prefetch limit.
        let prefetch = if self.spec.is_stream() {
            self.prefetch.max(1)
        } else {
            self.prefetch
        };
        channel
            .basic_qos(
                prefetch,
                // Per consumer, not shared across the channel (one consumer
                // per channel here anyway).
                BasicQosOptions { global: false },
            )
            .await
            .map_err(BusError::amqp("basic.qos"))?;
        let mut arguments = FieldTable::default();
        if self.spec.is_stream() {
            let offset = match (self.resume_offset, self.spec.stream_offset) {
                // After a reconnect, carry on where we were.
                (Some(next), _) => AMQPValue::LongLongInt(i64::try_from(next).unwrap_or(i64::MAX)),
                (None, StreamOffset::First) => text("first"),
                (None, StreamOffset::Last) => text("last"),
                (None, StreamOffset::Next) => text("next"),
                (None, StreamOffset::Offset(offset)) => {
                    AMQPValue::LongLongInt(i64::try_from(offset).unwrap_or(i64::MAX))
                }
            };
            // Where a stream consumer starts reading.
            arguments.insert("x-stream-offset".into(), offset);
        }
        let consumer = channel
            .basic_consume(
                short(&self.spec.name)?,
                // Let the broker name the consumer.
                "".into(),
                BasicConsumeOptions {
                    // Deliveries from this connection are fine to receive.
                    no_local: false,
                    // Manual acks: a message is settled only after its handler
                    // committed (the whole point of the inbox).
                    no_ack: false,
                    // Competing consumers: every instance of a service shares
                    // the queue (on a single-active-consumer queue, the
                    // instances take turns, which is the broker's doing).
                    exclusive: false,
                    // Wait for consume-ok, so a missing queue is an error here.
                    nowait: false,
                },
                arguments,
            )
            .await
            .map_err(|error| queue_error(&self.spec, "basic.consume", error))?;
        tracing::debug!(queue = %self.spec.name, generation = live.generation, "consuming");
        Ok(ActiveConsumer {
            generation: live.generation,
            consumer,
            tracker: Arc::new(Tracker {
                channel,
                outstanding: Mutex::new(BTreeSet::new()),
            }),
        })
    }

    pub(crate) async fn next_batch(&mut self, max: usize, linger: Duration) -> BusResult<Vec<Delivery>> {
        let mut batch = Vec::new();
        // At least one: wait as long as it takes, across reconnects.
        while batch.is_empty() {
            if self.active.is_none() {
                self.establish().await?;
            }
            let Some(active) = self.active.as_mut() else {
                continue;
            };
            let next = active.consumer.next().await;
            self.accept(next, &mut batch);
        }
        // Then more, for up to `linger`.
        let deadline = tokio::time::Instant::now() + linger;
        while batch.len() < max {
            let Some(active) = self.active.as_mut() else {
                break;
            };
            match tokio::time::timeout_at(deadline, active.consumer.next()).await {
                Ok(next) => self.accept(next, &mut batch),
                Err(_) => break,
            }
        }
        Ok(batch)
    }

    /// Takes one consumer stream item: a delivery joins `batch`; an error or
    /// the end of the stream drops the consumer so it is opened again.
    fn accept(&mut self, next: Option<lapin::Result<lapin::message::Delivery>>, batch: &mut Vec<Delivery>) {
        let Some(active) = self.active.as_ref() else {
            return;
        };
        match next {
            Some(Ok(delivery)) => {
                if let Some(delivery) = self.convert(active, delivery) {
                    if let Some(offset) = delivery.stream_offset {
                        self.resume_offset = Some(offset + 1);
                    }
                    batch.push(delivery);
                }
            }
            Some(Err(error)) => {
                tracing::warn!(queue = %self.spec.name, error.message = %error, "consumer failed, re-establishing");
                self.failed_generation = active.generation;
                self.active = None;
            }
            None => {
                tracing::warn!(queue = %self.spec.name, "consumer cancelled, re-establishing");
                if !self
                    .shared
                    .current()
                    .is_ok_and(|live| live.generation == active.generation)
                {
                    self.failed_generation = active.generation;
                }
                self.active = None;
            }
        }
    }

    /// Our `Delivery` from lapin's; `None` (after dead-lettering it) if the
    /// body is not an event.
    fn convert(&self, active: &ActiveConsumer, delivery: lapin::message::Delivery) -> Option<Delivery> {
        let headers = delivery.properties.headers().as_ref();
        let header = |name: &str| headers.and_then(|headers| headers.inner().get(name));
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map_or_else(String::new, ToString::to_string);
        let traceparent = header(TRACEPARENT).and_then(value_text);
        let tag = delivery.delivery_tag;
        let envelope = match Envelope::decode_body(&message_id, &delivery.data, traceparent) {
            Ok(envelope) => envelope,
            Err(error) => {
                tracing::error!(queue = %self.spec.name, message_id = %message_id, error.message = %error, "undecodable message, dead-lettering it");
                // Outstanding until the nack is sent, so no batch ack with
                // `multiple` covers it in the meantime.
                lock(&active.tracker.outstanding).insert(tag);
                let tracker = active.tracker.clone();
                tokio::spawn(async move {
                    // requeue = false: the broker dead-letters it (x-death
                    // reason "rejected").
                    let _settled = tracker
                        .channel
                        .basic_nack(
                            tag,
                            BasicNackOptions {
                                multiple: false,
                                requeue: false,
                            },
                        )
                        .await;
                    lock(&tracker.outstanding).remove(&tag);
                });
                return None;
            }
        };
        let delivery_count = header("x-delivery-count")
            .and_then(value_number)
            .map_or(0, |count| u32::try_from(count).unwrap_or(u32::MAX));
        let stream_offset = header("x-stream-offset").and_then(value_number);
        let dead_letter = dead_letter_of(&header);
        lock(&active.tracker.outstanding).insert(tag);
        let dead_letter_exchange = match &self.spec.kind {
            QueueKind::Quorum {
                dead_letter_exchange, ..
            } => dead_letter_exchange.clone(),
            QueueKind::Stream { .. } => Some(self.shared.topology.dead_letter_exchange()),
        };
        Some(Delivery::new(
            envelope,
            delivery.redelivered,
            delivery_count,
            dead_letter,
            stream_offset,
            Settler::Rabbit(RabbitSettler {
                shared: self.shared.clone(),
                tracker: active.tracker.clone(),
                tag,
                queue: self.spec.name.clone(),
                dead_letter_exchange,
                stream: self.spec.is_stream(),
            }),
        ))
    }
}

fn value_text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(text) => Some(String::from_utf8_lossy(text.as_bytes()).into_owned()),
        AMQPValue::ShortString(text) => Some(text.to_string()),
        _ => None,
    }
}

fn value_number(value: &AMQPValue) -> Option<u64> {
    match value {
        AMQPValue::ShortShortInt(number) => u64::try_from(*number).ok(),
        AMQPValue::ShortShortUInt(number) => Some(u64::from(*number)),
        AMQPValue::ShortInt(number) => u64::try_from(*number).ok(),
        AMQPValue::ShortUInt(number) => Some(u64::from(*number)),
        AMQPValue::LongInt(number) => u64::try_from(*number).ok(),
        AMQPValue::LongUInt(number) => Some(u64::from(*number)),
        AMQPValue::LongLongInt(number) => u64::try_from(*number).ok(),
        AMQPValue::Timestamp(number) => Some(*number),
        _ => None,
    }
}

/// Why the message is a dead letter: our reason header if a consumer rejected
/// it, else the most recent `x-death` entry the broker added.
fn dead_letter_of<'a>(header: &impl Fn(&str) -> Option<&'a AMQPValue>) -> Option<DeadLetter> {
    if let Some(reason) = header(DEAD_LETTER_REASON_HEADER).and_then(value_text) {
        return Some(DeadLetter {
            queue: header(DEAD_LETTER_QUEUE_HEADER)
                .and_then(value_text)
                .unwrap_or_default(),
            reason: DeadLetterReason::Rejected(reason),
        });
    }
    let AMQPValue::FieldArray(deaths) = header("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(latest) = deaths.as_slice().first()? else {
        return None;
    };
    let field = |name: &str| latest.inner().get(name).and_then(value_text);
    let reason = match field("reason").as_deref() {
        Some("delivery_limit") => DeadLetterReason::DeliveryLimit,
        Some(other) => DeadLetterReason::Other(other.to_owned()),
        None => DeadLetterReason::Other(String::new()),
    };
    Some(DeadLetter {
        queue: field("queue").unwrap_or_default(),
        reason,
    })
}

/// Settles one RabbitMQ delivery on the channel it came from.
pub(crate) struct RabbitSettler {
    shared: Arc<Shared>,
    tracker: Arc<Tracker>,
    tag: u64,
    queue: String,
    /// Where `reject` sends the message; `None` for the dead-letter queue
    /// itself (rejecting there discards, as RabbitMQ does).
    dead_letter_exchange: Option<String>,
    /// Streams keep every message: settling only returns prefetch credit.
    stream: bool,
}

impl RabbitSettler {
    fn forget(&self) {
        lock(&self.tracker.outstanding).remove(&self.tag);
    }

    pub(crate) async fn ack(&self) -> BusResult<()> {
        self.forget();
        self.tracker
            .channel
            .basic_ack(self.tag, BasicAckOptions { multiple: false })
            .await
            .map_err(BusError::amqp("basic.ack"))
    }

    pub(crate) async fn retry(&self) -> BusResult<()> {
        if self.stream {
            // A stream cannot requeue; the message stays in the log, and a
            // consumer that needs it again re-reads from its offset.
            return self.ack().await;
        }
        self.forget();
        self.tracker
            .channel
            .basic_nack(
                self.tag,
                // requeue = true: back to the queue; the quorum queue counts it
                // towards the delivery limit.
                BasicNackOptions {
                    multiple: false,
                    requeue: true,
                },
            )
            .await
            .map_err(BusError::amqp("basic.nack"))
    }

    pub(crate) async fn reject(&self, envelope: &Envelope, reason: &str) -> BusResult<()> {
        if let Some(dead_letter_exchange) = &self.dead_letter_exchange {
            // Publish the dead letter ourselves so it carries the reason, then
            // ack. If that publish fails, fall back to the broker's own
            // dead-lettering (reason "rejected", no text): never lost.
            let published = self
                .shared
                .publish_to(
                    dead_letter_exchange,
                    None,
                    std::slice::from_ref(envelope),
                    &[
                        (DEAD_LETTER_REASON_HEADER, reason),
                        (DEAD_LETTER_QUEUE_HEADER, &self.queue),
                    ],
                )
                .await;
            match published {
                Ok(()) => return self.ack().await,
                Err(error) => {
                    tracing::warn!(queue = %self.queue, event_id = %envelope.event_id(), error.message = %error, "could not publish dead letter with reason, letting the broker dead-letter it");
                    if self.stream {
                        return Err(error);
                    }
                }
            }
        }
        self.forget();
        self.tracker
            .channel
            .basic_nack(
                self.tag,
                // requeue = false: dead-lettered by the broker (or discarded
                // on a queue without a dead-letter exchange).
                BasicNackOptions {
                    multiple: false,
                    requeue: false,
                },
            )
            .await
            .map_err(BusError::amqp("basic.nack"))
    }

    pub(crate) fn retry_in_background(self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _settled = self.retry().await;
            });
        }
        // Without a runtime the channel is going away too, and the broker
        // requeues everything unsettled on it.
    }
}

/// Acks `batch` with as few frames as possible: per channel, one
/// `multiple = true` ack up to the highest tag below which every outstanding
/// delivery is in the batch, then single acks for the rest.
pub(crate) async fn ack_many(batch: Vec<(String, RabbitSettler)>) -> BusResult<()> {
    let mut by_channel: HashMap<usize, (Arc<Tracker>, Vec<u64>)> = HashMap::new();
    for (_event_id, settler) in batch {
        let key = Arc::as_ptr(&settler.tracker) as usize;
        by_channel
            .entry(key)
            .or_insert_with(|| (settler.tracker.clone(), Vec::new()))
            .1
            .push(settler.tag);
    }
    let mut first_error = None;
    for (tracker, mut tags) in by_channel.into_values() {
        tags.sort_unstable();
        let (multiple_up_to, singles) = {
            let mut outstanding = lock(&tracker.outstanding);
            let in_batch: BTreeSet<u64> = tags.iter().copied().collect();
            let mut covered = None;
            for tag in outstanding.iter() {
                if in_batch.contains(tag) {
                    covered = Some(*tag);
                } else {
                    break;
                }
            }
            for tag in &tags {
                outstanding.remove(tag);
            }
            let singles: Vec<u64> = tags
                .iter()
                .copied()
                .filter(|tag| covered.is_none_or(|covered| *tag > covered))
                .collect();
            (covered, singles)
        };
        if let Some(tag) = multiple_up_to
            && let Err(error) = tracker
                .channel
                .basic_ack(tag, BasicAckOptions { multiple: true })
                .await
        {
            first_error.get_or_insert(BusError::amqp("basic.ack")(error));
        }
        for tag in singles {
            if let Err(error) = tracker
                .channel
                .basic_ack(tag, BasicAckOptions { multiple: false })
                .await
            {
                first_error.get_or_insert(BusError::amqp("basic.ack")(error));
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}
