//! The bus contract: one suite, run against `InProcessBus` and `RabbitBus`, so
//! the embedded and distributed modes cannot drift apart.
//!
//! Each test gets its own random topology prefix; on RabbitMQ the harness
//! deletes the test's queues and exchanges afterwards (even on failure). A
//! missing broker fails the RabbitMQ half with instructions, never skips.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use switchboard_bus::{
    BatchHandler, BusError, ConsumeStats, DeadLetterReason, Delivery, OutboxRelay, Outcome, QueueSpec,
    StreamOffset, Topology, ack_all, consume, consume_concurrently,
};
use tokio::sync::Notify;

/// Generates `in_process::<test>` and `rabbitmq::<test>` for every test fn.
/// `topology` picks the topology each test needs (some leave out the analytics
/// stream, which routes every key and so hides unroutable messages).
macro_rules! contract_suite {
    ($($test:ident => $topology:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test]
                async fn $test() {
                    let topology: switchboard_bus::Topology = super::$topology();
                    super::Harness::memory(topology).run(super::$test).await;
                }
            )*
        }
        mod rabbitmq {
            $(
                #[tokio::test]
                async fn $test() {
                    let topology: switchboard_bus::Topology = super::$topology();
                    super::Harness::rabbit(topology).await.run(super::$test).await;
                }
            )*
        }
    };
}

fn standard() -> Topology {
    Topology::random_for_test()
}

fn without_stream() -> Topology {
    Topology::random_for_test().without_analytics_stream()
}

contract_suite! {
    publish_is_confirmed_and_delivered_intact => standard,
    topic_patterns_route_to_the_right_queues => standard,
    retry_redelivers_and_counts => standard,
    delivery_limit_dead_letters => standard,
    reject_dead_letters_with_reason => standard,
    dropped_delivery_is_retried => standard,
    batches_respect_max_linger_and_prefetch => standard,
    ack_all_settles_interleaved_batches => standard,
    unroutable_publish_is_an_error => without_stream,
    order_is_kept_within_a_queue => standard,
    concurrent_publishers_are_all_confirmed => standard,
    queues_declare_idempotently_and_refuse_mismatches => standard,
    analytics_stream_replays_from_an_offset => standard,
    outbox_relay_publishes_each_row_exactly_once => standard,
    outbox_relay_survives_bus_outage => standard,
    consume_applies_outcomes_until_shutdown => standard,
    consume_concurrently_handles_batches_side_by_side => standard,
    check_reports_ready => standard,
    send_to_queue_reaches_only_that_queue => standard,
    send_to_an_unknown_queue_is_an_error => standard,
    single_active_consumer_delivers_to_the_first_subscription_only => standard,
    single_active_consumer_hands_over_when_the_active_one_goes => standard,
    competing_consumers_share_a_queue_without_single_active_consumer => standard,
    single_active_consumer_is_part_of_a_queue_declaration => standard,
}

async fn publish_is_confirmed_and_delivered_intact(harness: Arc<Harness>) {
    let spec = QueueSpec::quorum(&harness.topology, "intact", &["contact.#"]);
    let mut subscription = harness.bus.subscribe(&spec, 10).await.expect("subscribe");
    let mut sent = events("contact.received", 3);
    sent[2].traceparent = None;
    harness.bus.publish(&sent).await.expect("publish");
    harness.bus.publish(&[]).await.expect("empty publish");

    let received = receive(&mut subscription, 3).await;
    for (delivery, envelope) in received.iter().zip(&sent) {
        assert_eq!(&delivery.envelope, envelope, "event and traceparent round-trip");
        assert!(!delivery.redelivered);
        assert_eq!(delivery.delivery_count, 0);
        assert_eq!(delivery.dead_letter, None);
        assert_eq!(delivery.stream_offset, None);
    }
    ack_all(received).await.expect("ack");
    assert_quiet(&mut subscription).await;
}

async fn topic_patterns_route_to_the_right_queues(harness: Arc<Harness>) {
    let bus = &harness.bus;
    let contacts = QueueSpec::quorum(&harness.topology, "contacts", &["contact.#"]);
    let cases = QueueSpec::quorum(&harness.topology, "cases", &["case.*"]);
    let routing = QueueSpec::routing(&harness.topology);
    let mut contacts_sub = bus.subscribe(&contacts, 20).await.expect("subscribe");
    let mut cases_sub = bus.subscribe(&cases, 20).await.expect("subscribe");
    let mut routing_sub = bus.subscribe(&routing, 20).await.expect("subscribe");

    let received = event("contact.received");
    let queued = event("contact.queued");
    let opened = event("case.opened");
    let deep = event("contact.agent.offered");
    bus.publish(&[received.clone(), queued.clone(), opened.clone(), deep.clone()])
        .await
        .expect("publish");

    let got = |deliveries: &[Delivery]| -> HashSet<String> { ids(deliveries).into_iter().collect() };
    let want = |envelopes: &[&switchboard_bus::Envelope]| -> HashSet<String> {
        envelopes
            .iter()
            .map(|envelope| envelope.event_id().to_owned())
            .collect()
    };

    let contact_deliveries = receive(&mut contacts_sub, 3).await;
    assert_eq!(got(&contact_deliveries), want(&[&received, &queued, &deep]));
    let case_deliveries = receive(&mut cases_sub, 1).await;
    assert_eq!(got(&case_deliveries), want(&[&opened]));
    let routing_deliveries = receive(&mut routing_sub, 2).await;
    assert_eq!(got(&routing_deliveries), want(&[&received, &opened]));
    for batch in [contact_deliveries, case_deliveries, routing_deliveries] {
        ack_all(batch).await.expect("ack");
    }
    assert_quiet(&mut contacts_sub).await;
    assert_quiet(&mut cases_sub).await;
    assert_quiet(&mut routing_sub).await;
}

async fn retry_redelivers_and_counts(harness: Arc<Harness>) {
    let spec = QueueSpec::quorum(&harness.topology, "retry", &["case.*"]);
    let mut subscription = harness.bus.subscribe(&spec, 5).await.expect("subscribe");
    let sent = event("case.opened");
    harness
        .bus
        .publish(std::slice::from_ref(&sent))
        .await
        .expect("publish");

    let mut first = receive(&mut subscription, 1).await;
    let first = first.remove(0);
    assert!(!first.redelivered);
    assert_eq!(first.delivery_count, 0);
    first.retry().await.expect("retry");

    let mut second = receive(&mut subscription, 1).await;
    let second = second.remove(0);
    assert_eq!(second.event_id(), sent.event_id());
    assert!(second.redelivered);
    assert_eq!(second.delivery_count, 1);
    second.ack().await.expect("ack");
    assert_quiet(&mut subscription).await;
}

async fn delivery_limit_dead_letters(harness: Arc<Harness>) {
    let limit = 2;
    let spec = QueueSpec::quorum(&harness.topology, "limited", &["case.*"]).with_delivery_limit(limit);
    let mut subscription = harness.bus.subscribe(&spec, 5).await.expect("subscribe");
    let mut dead_letters = harness
        .bus
        .subscribe(&QueueSpec::dead_letter(&harness.topology), 5)
        .await
        .expect("subscribe dead letters");
    let sent = event("case.updated");
    harness
        .bus
        .publish(std::slice::from_ref(&sent))
        .await
        .expect("publish");

    // Delivered once, then once per allowed return: limit + 1 deliveries.
    for attempt in 0..=limit {
        let mut batch = receive(&mut subscription, 1).await;
        let delivery = batch.remove(0);
        assert_eq!(delivery.event_id(), sent.event_id());
        assert_eq!(delivery.delivery_count, attempt);
        delivery.retry().await.expect("retry");
    }
    assert_quiet(&mut subscription).await;

    let mut dead = receive(&mut dead_letters, 1).await;
    let dead = dead.remove(0);
    assert_eq!(dead.envelope, sent);
    let dead_letter = dead.dead_letter.clone().expect("dead-letter details");
    assert_eq!(dead_letter.queue, spec.name);
    assert_eq!(dead_letter.reason, DeadLetterReason::DeliveryLimit);
    dead.ack().await.expect("ack");
}

async fn reject_dead_letters_with_reason(harness: Arc<Harness>) {
    let spec = QueueSpec::quorum(&harness.topology, "rejecting", &["contact.#"]);
    let mut subscription = harness.bus.subscribe(&spec, 5).await.expect("subscribe");
    let mut dead_letters = harness
        .bus
        .subscribe(&QueueSpec::dead_letter(&harness.topology), 5)
        .await
        .expect("subscribe dead letters");
    let sent = event("contact.received");
    harness
        .bus
        .publish(std::slice::from_ref(&sent))
        .await
        .expect("publish");

    let mut batch = receive(&mut subscription, 1).await;
    batch
        .remove(0)
        .reject("service not in catalogue")
        .await
        .expect("reject");
    assert_quiet(&mut subscription).await;

    let mut dead = receive(&mut dead_letters, 1).await;
    let dead = dead.remove(0);
    assert_eq!(dead.envelope, sent, "the dead letter is the event as published");
    let dead_letter = dead.dead_letter.clone().expect("dead-letter details");
    assert_eq!(dead_letter.queue, spec.name);
    assert_eq!(
        dead_letter.reason,
        DeadLetterReason::Rejected("service not in catalogue".to_owned())
    );
    dead.ack().await.expect("ack");
    assert_quiet(&mut dead_letters).await;
}

async fn dropped_delivery_is_retried(harness: Arc<Harness>) {
    let spec = QueueSpec::quorum(&harness.topology, "dropped", &["contact.#"]);
    let mut subscription = harness.bus.subscribe(&spec, 5).await.expect("subscribe");
    let sent = event("contact.received");
    harness
        .bus
        .publish(std::slice::from_ref(&sent))
        .await
        .expect("publish");

    drop(receive(&mut subscription, 1).await);
    let mut again = receive(&mut subscription, 1).await;
    let again = again.remove(0);
    assert_eq!(again.event_id(), sent.event_id());
    assert!(again.redelivered);
    again.ack().await.expect("ack");
}

async fn batches_respect_max_linger_and_prefetch(harness: Arc<Harness>) {
    let spec = QueueSpec::quorum(&harness.topology, "batches", &["contact.#"]);
    let mut subscription = harness.bus.subscribe(&spec, 10).await.expect("subscribe");
    let sent = events("contact.received", 25);
    harness.bus.publish(&sent).await.expect("publish");

    let mut received = Vec::new();
    // `max` caps a batch (gather them all within the linger).
    let first = subscription
        .next_batch(4, Duration::from_secs(2))
        .await
        .expect("next_batch");
    assert_eq!(first.len(), 4);
    // Prefetch (10) caps what is in flight: 4 held, so at most 6 more.
    let second = subscription
        .next_batch(100, Duration::from_millis(500))
        .await
        .expect("next_batch");
    assert_eq!(second.len(), 6, "prefetch 10 with 4 unsettled allows 6");
    received.extend(ids(&first));
    received.extend(ids(&second));
    ack_all(first).await.expect("ack");
    ack_all(second).await.expect("ack");
    // The rest arrive once credit is back, at most 10 at a time.
    for expected in [10, 5] {
        let rest = receive(&mut subscription, expected).await;
        received.extend(ids(&rest));
        ack_all(rest).await.expect("ack");
    }
    assert_eq!(received, envelope_ids(&sent));
    assert_quiet(&mut subscription).await;
}

async fn ack_all_settles_interleaved_batches(harness: Arc<Harness>) {
    // Acking a later batch while an earlier one is still held must not ack the
    // earlier one (RabbitMQ's `multiple` flag would, if used carelessly).
    let spec = QueueSpec::quorum(&harness.topology, "interleaved", &["contact.#"]);
    let mut subscription = harness.bus.subscribe(&spec, 20).await.expect("subscribe");
    let sent = events("contact.received", 6);
    harness.bus.publish(&sent).await.expect("publish");
    let mut all = receive(&mut subscription, 6).await;
    let later = all.split_off(3);
    let mut earlier = all;
    let held = earlier.remove(1);
    ack_all(later).await.expect("ack later");
    ack_all(earlier).await.expect("ack earlier");
    held.retry().await.expect("retry held");
    let mut again = receive(&mut subscription, 1).await;
    let again = again.remove(0);
    assert_eq!(again.event_id(), sent[1].event_id(), "the held one came back");
    again.ack().await.expect("ack");
    assert_quiet(&mut subscription).await;
}

async fn unroutable_publish_is_an_error(harness: Arc<Harness>) {
    let spec = QueueSpec::quorum(&harness.topology, "only-contacts", &["contact.#"]);
    let mut subscription = harness.bus.subscribe(&spec, 10).await.expect("subscribe");
    let routable = event("contact.received");
    let unroutable = event("case.opened");

    let error = harness
        .bus
        .publish(std::slice::from_ref(&unroutable))
        .await
        .expect_err("nothing is bound to case.opened");
    match error {
        BusError::Unroutable {
            event_id,
            routing_key,
        } => {
            assert_eq!(event_id, unroutable.event_id());
            assert_eq!(routing_key, "case.opened");
        }
        other => panic!("expected Unroutable, got {other:?}"),
    }

    // In a batch, the error names the unroutable event; the others still go.
    let error = harness
        .bus
        .publish(&[routable.clone(), unroutable.clone()])
        .await
        .expect_err("batch with an unroutable event");
    assert!(
        matches!(&error, BusError::Unroutable { event_id, .. } if event_id == unroutable.event_id()),
        "{error:?}"
    );
    let delivered = receive(&mut subscription, 1).await;
    assert_eq!(ids(&delivered), [routable.event_id()]);
    ack_all(delivered).await.expect("ack");

    // Invalid events are refused before anything is sent.
    let mut nameless = event("contact.received");
    nameless.event.r#type.clear();
    assert!(matches!(
        harness.bus.publish(&[nameless]).await,
        Err(BusError::InvalidEvent(_))
    ));
    let mut wildcard = event("contact.*");
    wildcard.event.r#type = "contact.*".to_owned();
    assert!(matches!(
        harness.bus.publish(&[wildcard]).await,
        Err(BusError::InvalidEvent(_))
    ));
    assert_quiet(&mut subscription).await;
}

async fn order_is_kept_within_a_queue(harness: Arc<Harness>) {
    let spec = QueueSpec::quorum(&harness.topology, "ordered", &["contact.#", "case.*"]);
    let mut subscription = harness.bus.subscribe(&spec, 50).await.expect("subscribe");
    let mut sent = Vec::new();
    for round in 0..4 {
        let kind = if round % 2 == 0 {
            "contact.received"
        } else {
            "case.updated"
        };
        let batch = events(kind, 60);
        harness.bus.publish(&batch).await.expect("publish");
        sent.extend(batch);
    }
    let mut received = Vec::new();
    while received.len() < sent.len() {
        let batch = receive(&mut subscription, 1).await;
        let more = subscription
            .next_batch(37, Duration::from_millis(10))
            .await
            .expect("next_batch");
        received.extend(ids(&batch));
        received.extend(ids(&more));
        ack_all(batch).await.expect("ack");
        ack_all(more).await.expect("ack");
    }
    assert_eq!(received, envelope_ids(&sent));
}

async fn concurrent_publishers_are_all_confirmed(harness: Arc<Harness>) {
    let spec = QueueSpec::quorum(&harness.topology, "concurrent", &["contact.#"]);
    let mut subscription = harness.bus.subscribe(&spec, 200).await.expect("subscribe");
    let publishers: Vec<Vec<switchboard_bus::Envelope>> =
        (0..8).map(|_| events("contact.received", 200)).collect();
    let tasks: Vec<_> = publishers
        .iter()
        .cloned()
        .map(|mine| {
            let bus = harness.bus.clone();
            tokio::spawn(async move {
                for batch in mine.chunks(20) {
                    bus.publish(batch).await.expect("publish");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("publisher task");
    }
    let mut received = Vec::new();
    while received.len() < 1_600 {
        let batch = receive(&mut subscription, 1).await;
        let more = subscription
            .next_batch(199, Duration::from_millis(10))
            .await
            .expect("next_batch");
        received.extend(ids(&batch));
        received.extend(ids(&more));
        ack_all(batch).await.expect("ack");
        ack_all(more).await.expect("ack");
    }
    assert_quiet(&mut subscription).await;
    let unique: HashSet<&String> = received.iter().collect();
    assert_eq!(unique.len(), 1_600, "each event exactly once");
    // Each publisher's events keep their order in the queue.
    for mine in &publishers {
        let mine: HashSet<String> = envelope_ids(mine).into_iter().collect();
        let order: Vec<&String> = received.iter().filter(|id| mine.contains(*id)).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "UUIDv7 ids were published in order");
    }
}

async fn queues_declare_idempotently_and_refuse_mismatches(harness: Arc<Harness>) {
    let spec = QueueSpec::quorum(&harness.topology, "declared", &["contact.#"]);
    harness.bus.ensure_queue(&spec).await.expect("declare");
    harness.bus.ensure_queue(&spec).await.expect("declare again");
    harness
        .bus
        .ensure_queue(&QueueSpec::cases(&harness.topology))
        .await
        .expect("cases");
    harness
        .bus
        .ensure_queue(&QueueSpec::analytics(&harness.topology))
        .await
        .expect("analytics (declared at start) again");

    let mut as_stream = QueueSpec::analytics(&harness.topology);
    as_stream.name = spec.name.clone();
    let error = harness
        .bus
        .ensure_queue(&as_stream)
        .await
        .expect_err("same name, other kind");
    assert!(
        matches!(&error, BusError::Queue { queue, .. } if *queue == spec.name),
        "{error:?}"
    );
    // The bus is still usable after a refused declaration.
    let mut subscription = harness.bus.subscribe(&spec, 5).await.expect("subscribe");
    harness
        .bus
        .publish(&[event("contact.received")])
        .await
        .expect("publish");
    ack_all(receive(&mut subscription, 1).await).await.expect("ack");
}

async fn analytics_stream_replays_from_an_offset(harness: Arc<Harness>) {
    let stream = QueueSpec::analytics(&harness.topology);
    let sent = vec![
        event("contact.received"),
        event("case.opened"),
        event("contact.completed"),
    ];
    harness.bus.publish(&sent).await.expect("publish");

    let mut from_first = harness.bus.subscribe(&stream, 10).await.expect("subscribe");
    let replay = receive(&mut from_first, 3).await;
    assert_eq!(ids(&replay), envelope_ids(&sent), "every event, in order");
    let offsets: Vec<u64> = replay
        .iter()
        .map(|delivery| delivery.stream_offset.expect("stream offset"))
        .collect();
    assert!(offsets.windows(2).all(|pair| pair[0] < pair[1]), "{offsets:?}");
    ack_all(replay).await.expect("ack");

    // A second reader from a stored offset gets the rest, independently.
    let mut from_second = harness
        .bus
        .subscribe(&stream.clone().from_offset(StreamOffset::Offset(offsets[1])), 10)
        .await
        .expect("subscribe from offset");
    let rest = receive(&mut from_second, 2).await;
    assert_eq!(ids(&rest), envelope_ids(&sent[1..]));
    ack_all(rest).await.expect("ack");

    // `Next` sees only what comes after subscribing.
    let mut from_next = harness
        .bus
        .subscribe(&stream.from_offset(StreamOffset::Next), 10)
        .await
        .expect("subscribe next");
    let later = event("case.resolved");
    harness
        .bus
        .publish(std::slice::from_ref(&later))
        .await
        .expect("publish");
    let next = receive(&mut from_next, 1).await;
    assert_eq!(ids(&next), [later.event_id()]);
    ack_all(next).await.expect("ack");
    assert_quiet(&mut from_next).await;
    // The first reader keeps reading too.
    let tail = receive(&mut from_first, 1).await;
    assert_eq!(ids(&tail), [later.event_id()]);
    ack_all(tail).await.expect("ack");
}

async fn outbox_relay_publishes_each_row_exactly_once(harness: Arc<Harness>) {
    relay_exactly_once(harness.clone(), harness.bus.clone()).await;
}

async fn outbox_relay_survives_bus_outage(harness: Arc<Harness>) {
    let flaky = Arc::new(FlakyBus {
        inner: harness.bus.clone(),
        failures: Mutex::new(3),
    });
    relay_exactly_once(harness.clone(), flaky.clone()).await;
    assert_eq!(*flaky.failures.lock().expect("lock"), 0, "the outage happened");
}

async fn relay_exactly_once(harness: Arc<Harness>, bus: Arc<dyn switchboard_bus::Bus>) {
    let spec = QueueSpec::quorum(&harness.topology, "relayed", &["contact.#"]);
    let mut subscription = harness.bus.subscribe(&spec, 500).await.expect("subscribe");
    let outbox = Arc::new(MemoryOutbox::default());
    let sent = events("contact.received", 1_100);
    for envelope in &sent[..700] {
        outbox.insert(envelope);
    }
    let wake = Arc::new(Notify::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = OutboxRelay::new(outbox.clone(), bus, wake.clone());
    let relay = tokio::spawn(relay.run(async {
        let _stop = stopped.await;
    }));

    let first = receive(&mut subscription, 300).await;
    let mut received = ids(&first);
    ack_all(first).await.expect("ack");
    // Rows written while the relay runs go out too, woken by the writer.
    for envelope in &sent[700..] {
        outbox.insert(envelope);
    }
    wake.notify_one();
    while received.len() < sent.len() {
        let batch = receive(&mut subscription, 1).await;
        let more = subscription
            .next_batch(500, Duration::from_millis(20))
            .await
            .expect("next_batch");
        received.extend(ids(&batch));
        received.extend(ids(&more));
        ack_all(batch).await.expect("ack");
        ack_all(more).await.expect("ack");
    }
    assert_quiet(&mut subscription).await;
    stop.send(()).expect("relay running");
    tokio::time::timeout(PATIENCE, relay)
        .await
        .expect("relay stops on shutdown")
        .expect("relay task");

    assert_eq!(received, envelope_ids(&sent), "each row once, in order");
    assert_eq!(outbox.len(), 0, "every confirmed row deleted");
    let deleted = outbox.deleted.lock().expect("lock").len();
    assert_eq!(deleted, sent.len(), "each row deleted once");
}

struct Judge {
    seen: Mutex<Vec<String>>,
}

#[async_trait]
impl BatchHandler for Judge {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut seen = self.seen.lock().expect("lock");
        batch
            .iter()
            .map(|delivery| {
                seen.push(delivery.event_id().to_owned());
                match delivery.envelope.event_type() {
                    "contact.received" => Outcome::Ack,
                    "contact.flaky" if delivery.delivery_count == 0 => Outcome::Retry,
                    "contact.flaky" => Outcome::Ack,
                    _ => Outcome::Reject("unexpected event type".to_owned()),
                }
            })
            .collect()
    }
}

/// Signals `consume` to stop and waits for its counts.
async fn shut_down(
    stop: tokio::sync::oneshot::Sender<()>,
    consumer: tokio::task::JoinHandle<switchboard_bus::BusResult<ConsumeStats>>,
) -> ConsumeStats {
    stop.send(()).expect("consumer running");
    tokio::time::timeout(PATIENCE, consumer)
        .await
        .expect("consume stops on shutdown")
        .expect("consume task")
        .expect("consume result")
}

async fn consume_applies_outcomes_until_shutdown(harness: Arc<Harness>) {
    let spec = QueueSpec::quorum(&harness.topology, "consumed", &["contact.#"]);
    let subscription = harness.bus.subscribe(&spec, 20).await.expect("subscribe");
    let mut dead_letters = harness
        .bus
        .subscribe(&QueueSpec::dead_letter(&harness.topology), 5)
        .await
        .expect("subscribe dead letters");
    let judge = Arc::new(Judge {
        seen: Mutex::new(Vec::new()),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer = tokio::spawn(consume(
        subscription,
        8,
        Duration::from_millis(20),
        judge.clone(),
        async {
            let _stop = stopped.await;
        },
    ));

    let mut sent = events("contact.received", 10);
    let flaky = event("contact.flaky");
    let odd = event("contact.odd");
    sent.push(flaky.clone());
    sent.push(odd.clone());
    harness.bus.publish(&sent).await.expect("publish");

    let mut dead = receive(&mut dead_letters, 1).await;
    let dead = dead.remove(0);
    assert_eq!(dead.event_id(), odd.event_id());
    assert_eq!(
        dead.dead_letter.as_ref().map(|letter| &letter.reason),
        Some(&DeadLetterReason::Rejected("unexpected event type".to_owned()))
    );
    dead.ack().await.expect("ack");

    // Wait until the flaky one has been seen twice (retried, then acked).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let seen = judge.seen.lock().expect("lock").clone();
        if seen.iter().filter(|id| *id == flaky.event_id()).count() == 2 && seen.len() == 13 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "seen so far: {}",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = shut_down(stop, consumer).await;
    assert_eq!(stats.acked, 11);
    assert_eq!(stats.retried, 1);
    assert_eq!(stats.rejected, 1);

    // Nothing left behind: a fresh subscriber finds the queue empty.
    let mut after = harness.bus.subscribe(&spec, 5).await.expect("subscribe");
    assert_quiet(&mut after).await;
}

/// Holds each batch until a second one is in hand too (or a while has
/// passed), counting the most batches it ever held at once.
struct SideBySide {
    in_hand: Mutex<usize>,
    most_in_hand: Mutex<usize>,
    both_in_hand: Notify,
    seen: Mutex<Vec<String>>,
}

#[async_trait]
impl BatchHandler for SideBySide {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        // Registered before the count is taken, so a partner arriving at
        // once still wakes this batch.
        let partner = self.both_in_hand.notified();
        tokio::pin!(partner);
        partner.as_mut().enable();
        let waiting = {
            let mut in_hand = self.in_hand.lock().expect("lock");
            *in_hand += 1;
            let mut most = self.most_in_hand.lock().expect("lock");
            *most = (*most).max(*in_hand);
            *in_hand < 2
        };
        if waiting {
            // The last batch may have no partner: wait a little, not for ever.
            let _ = tokio::time::timeout(Duration::from_secs(2), partner).await;
        } else {
            self.both_in_hand.notify_waiters();
        }
        *self.in_hand.lock().expect("lock") -= 1;
        self.seen
            .lock()
            .expect("lock")
            .extend(batch.iter().map(|delivery| delivery.event_id().to_owned()));
        vec![Outcome::Ack; batch.len()]
    }
}

async fn consume_concurrently_handles_batches_side_by_side(harness: Arc<Harness>) {
    let spec = QueueSpec::quorum(&harness.topology, "side-by-side", &["contact.#"]);
    let subscription = harness.bus.subscribe(&spec, 30).await.expect("subscribe");
    let handler = Arc::new(SideBySide {
        in_hand: Mutex::new(0),
        most_in_hand: Mutex::new(0),
        both_in_hand: Notify::new(),
        seen: Mutex::new(Vec::new()),
    });
    let sent = events("contact.received", 40);
    harness.bus.publish(&sent).await.expect("publish");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer = tokio::spawn(consume_concurrently(
        subscription,
        10,
        Duration::from_millis(20),
        2,
        handler.clone(),
        async {
            let _stop = stopped.await;
        },
    ));

    let deadline = tokio::time::Instant::now() + PATIENCE;
    while handler.seen.lock().expect("lock").len() < sent.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every event was handled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = shut_down(stop, consumer).await;
    assert_eq!(
        *handler.most_in_hand.lock().expect("lock"),
        2,
        "two batches at once, never more"
    );
    assert_eq!(stats.acked, 40);
    let seen: HashSet<String> = handler.seen.lock().expect("lock").iter().cloned().collect();
    let expected: HashSet<String> = sent.iter().map(|event| event.event_id().to_owned()).collect();
    assert_eq!(seen, expected, "each event handled once");

    // Every batch was settled, whichever finished first.
    let mut after = harness.bus.subscribe(&spec, 5).await.expect("subscribe");
    assert_quiet(&mut after).await;
}

async fn check_reports_ready(harness: Arc<Harness>) {
    harness.bus.check().await.expect("ready");
}

async fn send_to_queue_reaches_only_that_queue(harness: Arc<Harness>) {
    let bus = &harness.bus;
    let target = QueueSpec::quorum(&harness.topology, "target", &["contact.#"]);
    let everything = QueueSpec::quorum(&harness.topology, "everything", &["#"]);
    let mut target_sub = bus.subscribe(&target, 10).await.expect("subscribe");
    let mut everything_sub = bus.subscribe(&everything, 10).await.expect("subscribe");
    let mut stream_sub = bus
        .subscribe(
            &QueueSpec::analytics(&harness.topology).from_offset(StreamOffset::Next),
            10,
        )
        .await
        .expect("subscribe stream");

    // The target's bindings do not matter: a type it is not bound to arrives too.
    let mut sent = events("contact.received", 2);
    sent.push(event("router.heartbeat"));
    sent[1].traceparent = None;
    bus.send_to_queue(&target.name, &sent).await.expect("send");
    bus.send_to_queue(&target.name, &[]).await.expect("empty send");

    let received = receive(&mut target_sub, 3).await;
    for (delivery, envelope) in received.iter().zip(&sent) {
        assert_eq!(&delivery.envelope, envelope, "event and traceparent round-trip");
        assert!(!delivery.redelivered);
        assert_eq!(delivery.delivery_count, 0);
        assert_eq!(delivery.dead_letter, None);
    }
    ack_all(received).await.expect("ack");

    // A marker published through the exchange reaches every bound queue and
    // the stream. Queues and streams are FIFO, so the marker coming first
    // proves the sent messages never reached them.
    let marker = event("contact.received");
    bus.publish(std::slice::from_ref(&marker))
        .await
        .expect("publish marker");
    for subscription in [&mut everything_sub, &mut stream_sub, &mut target_sub] {
        let first = receive(subscription, 1).await;
        assert_eq!(
            ids(&first),
            [marker.event_id()],
            "{}: the marker comes first",
            subscription.queue()
        );
        ack_all(first).await.expect("ack");
    }
    // Bounded waits for deliveries that must not come (nothing else was sent).
    assert_quiet(&mut everything_sub).await;
    assert_quiet(&mut stream_sub).await;
    assert_quiet(&mut target_sub).await;
}

async fn send_to_an_unknown_queue_is_an_error(harness: Arc<Harness>) {
    let bus = &harness.bus;
    let missing = harness.topology.name("nowhere");
    let sent = event("router.heartbeat");
    let error = bus
        .send_to_queue(&missing, std::slice::from_ref(&sent))
        .await
        .expect_err("no such queue");
    assert!(
        matches!(&error, BusError::Queue { queue, .. } if *queue == missing),
        "{error:?}"
    );
    assert!(error.to_string().contains(&missing), "{error}");
    assert!(!error.is_transient(), "retrying cannot create the queue");

    // Invalid events are refused before anything is sent, as by `publish`.
    let mut nameless = event("router.heartbeat");
    nameless.event.r#type.clear();
    let spec = QueueSpec::quorum(&harness.topology, "known", &["contact.#"]);
    let mut subscription = bus.subscribe(&spec, 10).await.expect("subscribe");
    assert!(matches!(
        bus.send_to_queue(&spec.name, &[nameless]).await,
        Err(BusError::InvalidEvent(_))
    ));

    // The bus is still usable, for sending and publishing.
    bus.send_to_queue(&spec.name, std::slice::from_ref(&sent))
        .await
        .expect("send to a queue that exists");
    let published = event("contact.received");
    bus.publish(std::slice::from_ref(&published))
        .await
        .expect("publish");
    let received = receive(&mut subscription, 2).await;
    assert_eq!(ids(&received), [sent.event_id(), published.event_id()]);
    ack_all(received).await.expect("ack");
    assert_quiet(&mut subscription).await;
}

async fn single_active_consumer_delivers_to_the_first_subscription_only(harness: Arc<Harness>) {
    let bus = &harness.bus;
    let spec = QueueSpec::routing_partition(&harness.topology, "north").expect("valid partition");
    assert!(spec.single_active_consumer);
    // The first has room for one unsettled delivery; the second for plenty.
    let mut first = bus.subscribe(&spec, 1).await.expect("subscribe first");
    let mut second = bus.subscribe(&spec, 10).await.expect("subscribe second");

    let mut sent = events("contact.received", 2);
    sent.push(event("case.opened"));
    bus.publish(&sent[..2]).await.expect("publish");
    bus.send_to_queue(&spec.name, &sent[2..]).await.expect("send");

    let mut received = Vec::new();
    for _ in 0..sent.len() {
        let batch = receive(&mut first, 1).await;
        received.extend(ids(&batch));
        // While the first holds its only credit, the second still gets
        // nothing: a bounded wait for a delivery that must not come.
        assert_quiet(&mut second).await;
        ack_all(batch).await.expect("ack");
    }
    assert_eq!(
        received,
        envelope_ids(&sent),
        "all of them, in order, to the first"
    );
    assert_quiet(&mut first).await;
    assert_quiet(&mut second).await;
}

async fn single_active_consumer_hands_over_when_the_active_one_goes(harness: Arc<Harness>) {
    let bus = &harness.bus;
    let spec = QueueSpec::routing_partition(&harness.topology, "south").expect("valid partition");
    let mut first = bus.subscribe(&spec, 10).await.expect("subscribe first");
    let mut second = bus.subscribe(&spec, 10).await.expect("subscribe second");
    let mut third = bus.subscribe(&spec, 10).await.expect("subscribe third");

    let sent = events("contact.received", 3);
    bus.publish(&sent).await.expect("publish");
    let mut at_first = receive(&mut first, 3).await;
    assert_eq!(ids(&at_first), envelope_ids(&sent));
    // The first acks one and leaves two unsettled when it goes.
    let held = at_first.split_off(1);
    ack_all(at_first).await.expect("ack");
    drop(first);

    // The next in line takes over, unsettled deliveries first, in order.
    let at_second = receive(&mut second, 2).await;
    assert_eq!(ids(&at_second), envelope_ids(&sent[1..]));
    for delivery in &at_second {
        assert!(delivery.redelivered, "{delivery:?}");
    }
    // The old deliveries can no longer be settled: their subscription is gone.
    for delivery in held {
        assert!(delivery.ack().await.is_err(), "acked after the hand-over");
    }
    ack_all(at_second).await.expect("ack");

    // And everything after.
    let later = event("case.updated");
    bus.publish(std::slice::from_ref(&later)).await.expect("publish");
    let batch = receive(&mut second, 1).await;
    assert_eq!(ids(&batch), [later.event_id()]);
    ack_all(batch).await.expect("ack");
    // Bounded waits for deliveries that must not come: nothing is left, and
    // the third waits its turn.
    assert_quiet(&mut second).await;
    assert_quiet(&mut third).await;
}

async fn competing_consumers_share_a_queue_without_single_active_consumer(harness: Arc<Harness>) {
    let bus = &harness.bus;
    let spec = QueueSpec::quorum(&harness.topology, "shared", &["contact.#"]);
    assert!(!spec.single_active_consumer);
    // One unsettled delivery each: two messages need both subscriptions.
    let mut one = bus.subscribe(&spec, 1).await.expect("subscribe one");
    let mut two = bus.subscribe(&spec, 1).await.expect("subscribe two");
    let sent = events("contact.received", 2);
    bus.publish(&sent).await.expect("publish");

    let at_one = receive(&mut one, 1).await;
    let at_two = receive(&mut two, 1).await;
    let mut received: Vec<String> = ids(&at_one).into_iter().chain(ids(&at_two)).collect();
    received.sort();
    let mut expected = envelope_ids(&sent);
    expected.sort();
    assert_eq!(received, expected, "each to one of them");
    ack_all(at_one).await.expect("ack");
    ack_all(at_two).await.expect("ack");
    assert_quiet(&mut one).await;
    assert_quiet(&mut two).await;
}

async fn single_active_consumer_is_part_of_a_queue_declaration(harness: Arc<Harness>) {
    let bus = &harness.bus;
    let partition = QueueSpec::routing_partition(&harness.topology, "east").expect("valid partition");
    bus.ensure_queue(&partition).await.expect("declare");
    bus.ensure_queue(&partition).await.expect("declare again");
    bus.ensure_queue(&QueueSpec::routing(&harness.topology))
        .await
        .expect("default partition");

    let mut without = partition.clone();
    without.single_active_consumer = false;
    let error = bus.ensure_queue(&without).await.expect_err("declared with it");
    assert!(
        matches!(&error, BusError::Queue { queue, .. } if *queue == partition.name),
        "{error:?}"
    );

    let plain = QueueSpec::quorum(&harness.topology, "plain", &["contact.#"]);
    bus.ensure_queue(&plain).await.expect("declare plain");
    let mut with = plain.clone();
    with.single_active_consumer = true;
    let error = bus.ensure_queue(&with).await.expect_err("declared without it");
    assert!(
        matches!(&error, BusError::Queue { queue, .. } if *queue == plain.name),
        "{error:?}"
    );

    // The refused declarations changed nothing: the partition still takes turns.
    let mut first = bus.subscribe(&partition, 10).await.expect("subscribe");
    let mut second = bus.subscribe(&partition, 10).await.expect("subscribe");
    let sent = events("contact.received", 2);
    bus.send_to_queue(&partition.name, &sent).await.expect("send");
    let received = receive(&mut first, 2).await;
    assert_eq!(ids(&received), envelope_ids(&sent));
    ack_all(received).await.expect("ack");
    // A bounded wait for a delivery that must not come.
    assert_quiet(&mut second).await;
}
