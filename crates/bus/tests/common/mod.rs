//! Test harness shared by the contract suite and the RabbitMQ-only tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt as _;
use switchboard_bus::{
    BoxError, Bus, BusResult, Delivery, Envelope, InProcessBus, OutboxRecord, OutboxStore, RabbitBus,
    Subscription, Topology,
};
use switchboard_proto::v1;
use uuid::Uuid;

pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// How long to wait for something that should happen.
pub const PATIENCE: Duration = Duration::from_secs(10);
/// How long to watch for something that should not happen.
pub const QUIET: Duration = Duration::from_millis(400);

pub fn amqp_url() -> String {
    std::env::var("SWITCHBOARD_TEST_AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.to_owned())
}

/// Test logs (shown for failing tests; `RUST_LOG` picks the level).
pub fn init_logs() {
    let _already = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "switchboard_bus=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// One bus under test, with what it takes to clean up after it.
pub struct Harness {
    pub bus: Arc<dyn Bus>,
    pub topology: Topology,
    pub rabbit: Option<RabbitBus>,
}

impl Harness {
    pub fn memory(topology: Topology) -> Harness {
        Harness {
            bus: Arc::new(InProcessBus::new(topology.clone())),
            topology,
            rabbit: None,
        }
    }

    /// Connects to the test broker under `topology`'s random prefix. Fails (never
    /// skips) when RabbitMQ is not there, saying how to start it.
    pub async fn rabbit(topology: Topology) -> Harness {
        init_logs();
        let url = amqp_url();
        let name = format!("switchboard-test-{}", topology.prefix().trim_end_matches('.'));
        let bus = match RabbitBus::connect_named(&url, topology.clone(), &name).await {
            Ok(bus) => bus,
            Err(error) => panic!(
                "RabbitMQ is not reachable at {} ({error}; {:?}). Start it with \
                 `rabbitmq-server -detached` (or `make services`), or point \
                 SWITCHBOARD_TEST_AMQP_URL at a broker",
                url.split('@').next_back().unwrap_or(&url),
                std::error::Error::source(&error).map(ToString::to_string),
            ),
        };
        Harness {
            bus: Arc::new(bus.clone()),
            topology,
            rabbit: Some(bus),
        }
    }

    /// Runs `test`, then deletes what the test declared on the broker, even if
    /// the test panicked.
    pub async fn run<F, Fut>(self, test: F)
    where
        F: FnOnce(Arc<Harness>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let harness = Arc::new(self);
        let outcome = std::panic::AssertUnwindSafe(test(harness.clone()))
            .catch_unwind()
            .await;
        if let Some(rabbit) = &harness.rabbit {
            // Subscriptions dropped by the test close their channels in the
            // background; give them a moment before deleting their queues.
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Err(error) = rabbit.delete_topology().await {
                eprintln!(
                    "could not delete test topology {}: {error}",
                    harness.topology.prefix()
                );
            }
            rabbit.close().await;
        }
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

/// A new event of `event_type` with a fresh UUIDv7 id.
pub fn event(event_type: &str) -> Envelope {
    let mut event = v1::Event {
        id: Uuid::now_v7().to_string(),
        r#type: event_type.to_owned(),
        source: "test".to_owned(),
        subject: Uuid::now_v7().to_string(),
        occurred_at: Some(Default::default()),
        ..Default::default()
    };
    if let Some(occurred_at) = event.occurred_at.as_mut() {
        let now = chrono::Utc::now();
        occurred_at.seconds = now.timestamp();
        occurred_at.nanos = i32::try_from(now.timestamp_subsec_nanos()).unwrap_or(0);
    }
    Envelope {
        event,
        traceparent: Some(PARENT.to_owned()),
    }
}

pub fn events(event_type: &str, count: usize) -> Vec<Envelope> {
    (0..count).map(|_| event(event_type)).collect()
}

pub fn ids(deliveries: &[Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|delivery| delivery.event_id().to_owned())
        .collect()
}

pub fn envelope_ids(envelopes: &[Envelope]) -> Vec<String> {
    envelopes
        .iter()
        .map(|envelope| envelope.event_id().to_owned())
        .collect()
}

/// Receives until `count` deliveries arrived (failing after [`PATIENCE`]).
pub async fn receive(subscription: &mut Subscription, count: usize) -> Vec<Delivery> {
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while received.len() < count {
        let batch = tokio::time::timeout_at(
            deadline,
            subscription.next_batch(count - received.len(), Duration::from_millis(20)),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{}: expected {count} deliveries, got {} within {PATIENCE:?}",
                subscription.queue(),
                received.len()
            )
        })
        .expect("next_batch");
        received.extend(batch);
    }
    received
}

/// Asserts nothing is delivered for a while.
pub async fn assert_quiet(subscription: &mut Subscription) {
    if let Ok(batch) = tokio::time::timeout(QUIET, subscription.next_batch(100, Duration::ZERO)).await {
        let batch = batch.expect("next_batch");
        panic!(
            "{}: expected nothing, got {} deliveries, first {:?}",
            subscription.queue(),
            batch.len(),
            batch.first()
        );
    }
}

/// An outbox table in memory, ordered by event id (UUIDv7 = creation order).
#[derive(Default)]
pub struct MemoryOutbox {
    pub rows: Mutex<BTreeMap<Uuid, OutboxRecord>>,
    pub deleted: Mutex<Vec<Uuid>>,
}

impl MemoryOutbox {
    pub fn insert(&self, envelope: &Envelope) {
        let record = OutboxRecord::from_envelope(envelope).expect("uuid event id");
        self.rows
            .lock()
            .expect("outbox lock")
            .insert(record.event_id, record);
    }

    pub fn len(&self) -> usize {
        self.rows.lock().expect("outbox lock").len()
    }
}

#[async_trait]
impl OutboxStore for MemoryOutbox {
    async fn fetch_unsent(&self, limit: usize) -> Result<Vec<OutboxRecord>, BoxError> {
        Ok(self
            .rows
            .lock()
            .expect("outbox lock")
            .values()
            .take(limit)
            .cloned()
            .collect())
    }

    async fn delete_sent(&self, ids: &[Uuid]) -> Result<(), BoxError> {
        let mut rows = self.rows.lock().expect("outbox lock");
        for id in ids {
            rows.remove(id);
        }
        self.deleted.lock().expect("outbox lock").extend_from_slice(ids);
        Ok(())
    }
}

/// A bus that fails its first `failures` publishes, as a broker outage would.
pub struct FlakyBus {
    pub inner: Arc<dyn Bus>,
    pub failures: Mutex<u32>,
}

#[async_trait]
impl Bus for FlakyBus {
    async fn publish(&self, batch: &[Envelope]) -> BusResult<()> {
        {
            let mut failures = self.failures.lock().expect("flaky lock");
            if *failures > 0 {
                *failures -= 1;
                return Err(switchboard_bus::BusError::Unavailable(
                    "simulated outage".to_owned(),
                ));
            }
        }
        self.inner.publish(batch).await
    }

    async fn send_to_queue(&self, queue: &str, batch: &[Envelope]) -> BusResult<()> {
        self.inner.send_to_queue(queue, batch).await
    }

    async fn ensure_queue(&self, spec: &switchboard_bus::QueueSpec) -> BusResult<()> {
        self.inner.ensure_queue(spec).await
    }

    async fn subscribe(&self, queue: &switchboard_bus::QueueSpec, prefetch: u16) -> BusResult<Subscription> {
        self.inner.subscribe(queue, prefetch).await
    }

    async fn check(&self) -> BusResult<()> {
        self.inner.check().await
    }
}

/// A TCP proxy in front of the broker that a test can cut and restore: a
/// network outage on demand, affecting only the bus under test.
pub struct Proxy {
    pub port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start() -> Proxy {
        let uri: lapin::uri::AMQPUri = amqp_url().parse().expect("amqp url");
        let target = format!("{}:{}", uri.authority.host, uri.authority.port);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let acceptor = {
            let up = up.clone();
            let connections = connections.clone();
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !up.load(std::sync::atomic::Ordering::SeqCst) {
                        // Down: accept and hang up at once, like a refused connection.
                        drop(inbound);
                        continue;
                    }
                    let target = target.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                            let _copied = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    connections.lock().expect("proxy lock").push(task);
                }
            })
        };
        Proxy {
            port,
            up,
            connections,
            acceptor,
        }
    }

    /// The broker URL through this proxy.
    pub fn url(&self) -> String {
        let uri: lapin::uri::AMQPUri = amqp_url().parse().expect("amqp url");
        format!(
            "amqp://{}:{}@127.0.0.1:{}/{}",
            uri.authority.userinfo.username,
            uri.authority.userinfo.password,
            self.port,
            uri.vhost.replace('/', "%2f")
        )
    }

    /// Drops every proxied connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for connection in self.connections.lock().expect("proxy lock").drain(..) {
            connection.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.cut();
    }
}
