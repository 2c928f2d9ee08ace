//! RabbitMQ-only behaviour: what the messages look like on the wire, what the
//! broker holds for single-active-consumer queues, and the supervised
//! connection surviving a broker-side close.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use lapin::options::BasicGetOptions;
use lapin::types::{AMQPValue, FieldTable};
use switchboard_bus::{Bus, BusError, QueueSpec, RabbitBus, Topology, ack_all};

fn header_text(headers: &FieldTable, name: &str) -> Option<String> {
    match headers.inner().get(name)? {
        AMQPValue::LongString(text) => Some(String::from_utf8_lossy(text.as_bytes()).into_owned()),
        AMQPValue::ShortString(text) => Some(text.to_string()),
        _ => None,
    }
}

#[tokio::test]
async fn messages_carry_amqp_properties_and_cloudevents_headers() {
    Harness::rabbit(Topology::random_for_test())
        .await
        .run(|harness: Arc<Harness>| async move {
            let spec = QueueSpec::quorum(&harness.topology, "wire", &["contact.#"]);
            harness.bus.ensure_queue(&spec).await.expect("declare");
            let sent = event("contact.received");
            harness
                .bus
                .publish(std::slice::from_ref(&sent))
                .await
                .expect("publish");

            // Read it raw, as an analyst's tool or another language would.
            let connection = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
                .await
                .expect("raw connection");
            let channel = connection.create_channel().await.expect("channel");
            let message = get_raw(&channel, &spec.name).await;
            assert_eq!(message.delivery.exchange.as_str(), harness.topology.exchange());
            assert_eq!(message.delivery.routing_key.as_str(), "contact.received");
            assert_carries(&message.delivery, &sent);
            let _closed = connection.close(200, "done".into()).await;
        })
        .await;
}

/// Takes one message from `queue` with `basic.get`, waiting up to [`PATIENCE`].
async fn get_raw(channel: &lapin::Channel, queue: &str) -> lapin::message::BasicGetMessage {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get");
        if let Some(message) = got {
            return message;
        }
        assert!(Instant::now() < deadline, "message never reached {queue}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts `message` carries `sent` as DESIGN.md says: AMQP properties,
/// CloudEvents headers, `traceparent`, and the event as the body.
fn assert_carries(message: &lapin::message::Delivery, sent: &switchboard_bus::Envelope) {
    let properties = &message.properties;
    assert_eq!(
        properties.message_id().as_ref().map(|id| id.as_str()),
        Some(sent.event_id())
    );
    assert_eq!(
        properties.kind().as_ref().map(|kind| kind.as_str()),
        Some(sent.event_type())
    );
    assert_eq!(
        properties.content_type().as_ref().map(|kind| kind.as_str()),
        Some("application/protobuf")
    );
    assert_eq!(properties.app_id().as_ref().map(|app| app.as_str()), Some("test"));
    assert_eq!(*properties.delivery_mode(), Some(2), "persistent");
    let occurred_at = sent.event.occurred_at.as_ref().expect("occurred_at");
    assert_eq!(
        *properties.timestamp(),
        Some(u64::try_from(occurred_at.seconds).expect("positive"))
    );

    let headers = properties.headers().as_ref().expect("headers");
    assert_eq!(
        header_text(headers, "cloudEvents:specversion").as_deref(),
        Some("1.0")
    );
    assert_eq!(
        header_text(headers, "cloudEvents:id").as_deref(),
        Some(sent.event_id())
    );
    assert_eq!(
        header_text(headers, "cloudEvents:type").as_deref(),
        Some(sent.event_type())
    );
    assert_eq!(
        header_text(headers, "cloudEvents:source").as_deref(),
        Some("test")
    );
    assert_eq!(
        header_text(headers, "cloudEvents:subject").as_deref(),
        Some(sent.event.subject.as_str())
    );
    let time = header_text(headers, "cloudEvents:time").expect("time");
    let parsed = chrono::DateTime::parse_from_rfc3339(&time).expect("RFC 3339 time");
    assert_eq!(parsed.timestamp(), occurred_at.seconds);
    assert_eq!(header_text(headers, "traceparent").as_deref(), Some(PARENT));

    let decoded = switchboard_bus::Envelope::decode_body(sent.event_id(), &message.data, None)
        .expect("body is a switchboard.v1.Event");
    assert_eq!(decoded.event, sent.event);
}

#[tokio::test]
async fn outage_fails_publish_fast_then_everything_resumes() {
    init_logs();
    let proxy = Arc::new(Proxy::start().await);
    let proxy_for_test = proxy.clone();
    let topology = Topology::random_for_test();
    let name = format!("switchboard-test-{}", topology.prefix().trim_end_matches('.'));
    let rabbit = RabbitBus::connect_named(&proxy.url(), topology.clone(), &name)
        .await
        .unwrap_or_else(|error| {
            panic!("RabbitMQ is not reachable ({error}); start it with `rabbitmq-server -detached`")
        });
    let harness = Harness {
        bus: Arc::new(rabbit.clone()),
        topology,
        rabbit: Some(rabbit.clone()),
    };
    harness
        .run(|harness: Arc<Harness>| async move {
            let proxy = proxy_for_test;
            let rabbit = harness.rabbit.clone().expect("rabbit harness");
            let spec = QueueSpec::quorum(&harness.topology, "outage", &["contact.#"]);
            let mut subscription = harness.bus.subscribe(&spec, 10).await.expect("subscribe");
            let stream = QueueSpec::analytics(&harness.topology);
            let mut analytics = harness.bus.subscribe(&stream, 10).await.expect("stream");
            let before = event("contact.received");
            harness
                .bus
                .publish(std::slice::from_ref(&before))
                .await
                .expect("publish");
            ack_all(receive(&mut subscription, 1).await).await.expect("ack");
            ack_all(receive(&mut analytics, 1).await).await.expect("ack");

            proxy.cut();
            let deadline = Instant::now() + PATIENCE;
            while harness.bus.check().await.is_ok() {
                assert!(Instant::now() < deadline, "the loss was never noticed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // Publishing during the outage fails at once; the outbox retries.
            let started = Instant::now();
            let error = harness
                .bus
                .publish(&[event("contact.received")])
                .await
                .expect_err("broker unreachable");
            assert!(matches!(error, BusError::Unavailable(_)), "{error:?}");
            assert!(error.is_transient());
            assert!(started.elapsed() < Duration::from_millis(100), "failed fast");
            // The supervisor keeps trying (and failing) with back-off meanwhile.
            tokio::time::sleep(Duration::from_millis(700)).await;
            assert!(harness.bus.check().await.is_err());

            proxy.restore();
            let deadline = Instant::now() + Duration::from_secs(30);
            while harness.bus.check().await.is_err() {
                assert!(Instant::now() < deadline, "never reconnected");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(rabbit.reconnects(), 1);
            let after = event("contact.received");
            harness
                .bus
                .publish(std::slice::from_ref(&after))
                .await
                .expect("publish after reconnect");
            // Both subscriptions re-established themselves. The ack of `before`
            // may have been in flight when the network went, in which case the
            // queue delivers it again first (at-least-once; the inbox absorbs it).
            let mut batch = receive(&mut subscription, 1).await;
            if batch[0].event_id() == before.event_id() {
                assert!(batch[0].redelivered);
                ack_all(batch).await.expect("ack");
                batch = receive(&mut subscription, 1).await;
            }
            assert_eq!(ids(&batch), [after.event_id()]);
            ack_all(batch).await.expect("ack");
            // The stream resumes after the last offset it delivered (no replay).
            let batch = receive(&mut analytics, 1).await;
            assert_eq!(ids(&batch), [after.event_id()]);
            ack_all(batch).await.expect("ack");
            assert_quiet(&mut subscription).await;
        })
        .await;
    drop(proxy);
    let error = rabbit
        .publish(&[event("contact.received")])
        .await
        .expect_err("closed");
    assert!(matches!(error, BusError::Closed), "{error:?}");
}

#[tokio::test]
async fn connecting_to_nothing_fails_fast() {
    let started = Instant::now();
    let result = RabbitBus::connect("amqp://guest:guest@127.0.0.1:1/%2f", Topology::random_for_test()).await;
    assert!(result.is_err(), "nothing listens on port 1");
    assert!(started.elapsed() < Duration::from_secs(11));
}

/// Runs `rabbitmqctl` with `args`, failing the test with its output if it fails.
async fn rabbitmqctl(args: &[&str]) -> String {
    let output = tokio::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .await
        .expect("rabbitmqctl runs (it ships with rabbitmq-server)");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Closes only the connection named `connection_name`, as a broker restart or
/// a network cut would (other tests' connections are left alone).
async fn close_connection_named(connection_name: &str) {
    let listing = rabbitmqctl(&[
        "list_connections",
        "--quiet",
        "--no-table-headers",
        "pid",
        "client_properties",
    ])
    .await;
    let needle = format!("\"{connection_name}\"");
    let pids: Vec<&str> = listing
        .lines()
        .filter(|line| line.contains(&needle))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(
        pids.len(),
        1,
        "exactly one connection named {connection_name} in:\n{listing}"
    );
    rabbitmqctl(&["close_connection", pids[0], "switchboard-bus reconnect test"]).await;
}

#[tokio::test]
async fn reconnects_after_the_broker_closes_the_connection() {
    Harness::rabbit(Topology::random_for_test())
        .await
        .run(|harness: Arc<Harness>| async move {
            let rabbit = harness.rabbit.clone().expect("rabbit harness");
            let spec = QueueSpec::quorum(&harness.topology, "survivor", &["contact.#"]);
            let mut subscription = harness.bus.subscribe(&spec, 10).await.expect("subscribe");
            let before = event("contact.received");
            harness
                .bus
                .publish(std::slice::from_ref(&before))
                .await
                .expect("publish");
            ack_all(receive(&mut subscription, 1).await).await.expect("ack");

            close_connection_named(rabbit.connection_name()).await;

            // The supervisor notices, reconnects and re-declares. (Usually
            // within milliseconds, too quick to watch `check` fail reliably;
            // fail-fast publishing is covered by `publish_fails_fast_when_disconnected`.)
            let deadline = Instant::now() + Duration::from_secs(30);
            while rabbit.reconnects() == 0 {
                assert!(Instant::now() < deadline, "never reconnected");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            harness.bus.check().await.expect("connected again");
            // Same subscription: it re-establishes its consumer by itself.
            let after = event("contact.received");
            harness
                .bus
                .publish(std::slice::from_ref(&after))
                .await
                .expect("publish after reconnect");
            let batch = receive(&mut subscription, 1).await;
            assert_eq!(ids(&batch), [after.event_id()]);
            ack_all(batch).await.expect("ack");
            assert_eq!(rabbit.reconnects(), 1);
        })
        .await;
}

#[tokio::test]
async fn send_to_queue_uses_the_default_exchange_with_the_same_properties() {
    Harness::rabbit(Topology::random_for_test())
        .await
        .run(|harness: Arc<Harness>| async move {
            let spec = QueueSpec::quorum(&harness.topology, "direct", &["contact.#"]);
            harness.bus.ensure_queue(&spec).await.expect("declare");
            // A type the queue is not bound to: bindings play no part.
            let sent = event("router.heartbeat");
            harness
                .bus
                .send_to_queue(&spec.name, std::slice::from_ref(&sent))
                .await
                .expect("send");

            let connection = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
                .await
                .expect("raw connection");
            let channel = connection.create_channel().await.expect("channel");
            let message = get_raw(&channel, &spec.name).await;
            // The default exchange, keyed by the queue's name: no binding saw it.
            assert_eq!(message.delivery.exchange.as_str(), "");
            assert_eq!(message.delivery.routing_key.as_str(), spec.name);
            assert_carries(&message.delivery, &sent);
            let _closed = connection.close(200, "done".into()).await;
        })
        .await;
}

/// The tab-separated columns of the `rabbitmqctl` listing lines about `queue`
/// (the first column is the queue name).
fn listed<'a>(listing: &'a str, queue: &str) -> Vec<Vec<&'a str>> {
    listing
        .lines()
        .map(|line| line.split('\t').collect::<Vec<_>>())
        .filter(|columns| columns.first() == Some(&queue))
        .collect()
}

#[tokio::test]
async fn routing_partitions_are_declared_with_a_single_active_consumer() {
    Harness::rabbit(Topology::random_for_test())
        .await
        .run(|harness: Arc<Harness>| async move {
            let partition =
                QueueSpec::routing_partition(&harness.topology, "north").expect("valid partition");
            let routing = QueueSpec::routing(&harness.topology);
            let cases = QueueSpec::cases(&harness.topology);
            for spec in [&partition, &routing, &cases] {
                harness.bus.ensure_queue(spec).await.expect("declare");
            }

            // What the broker holds, as an operator sees it.
            let queues = rabbitmqctl(&[
                "list_queues",
                "--quiet",
                "--no-table-headers",
                "name",
                "arguments",
            ])
            .await;
            for (spec, expected) in [(&partition, true), (&routing, true), (&cases, false)] {
                let lines = listed(&queues, &spec.name);
                assert_eq!(lines.len(), 1, "{} once in:\n{queues}", spec.name);
                let arguments = lines[0].get(1).copied().unwrap_or_default();
                assert_eq!(
                    arguments.contains(r#"{"x-single-active-consumer",true}"#),
                    expected,
                    "{}: {arguments}",
                    spec.name
                );
                assert!(arguments.contains(r#"{"x-queue-type","quorum"}"#), "{arguments}");
            }

            // Two subscriptions: the broker makes one active, the other waits.
            let _first = harness.bus.subscribe(&partition, 10).await.expect("subscribe");
            let _second = harness.bus.subscribe(&partition, 10).await.expect("subscribe");
            let consumers = rabbitmqctl(&[
                "list_consumers",
                "--quiet",
                "--no-table-headers",
                "queue_name",
                "active",
                "activity_status",
            ])
            .await;
            let mut states: Vec<(&str, &str)> = listed(&consumers, &partition.name)
                .iter()
                .map(|columns| (columns[1], columns[2]))
                .collect();
            states.sort_unstable();
            assert_eq!(
                states,
                [("false", "waiting"), ("true", "single_active")],
                "in:\n{consumers}"
            );
        })
        .await;
}
