//! The embedded mode's bus: `InProcessBus::confirming_when_settled`. Nothing
//! in memory survives a crash, so a confirm must not come before the consumers
//! are done with the message: until then its outbox row is the only copy.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use switchboard_bus::{Bus, InProcessBus, OutboxRelay, QueueSpec, Topology, ack_all};
use tokio::sync::Notify;

fn settled_bus() -> (Arc<InProcessBus>, Topology) {
    let topology = Topology::random_for_test();
    (
        Arc::new(InProcessBus::confirming_when_settled(topology.clone())),
        topology,
    )
}

/// Publishes on a task of its own, so the test can watch it wait.
fn publish_in_background(
    bus: &Arc<InProcessBus>,
    batch: Vec<switchboard_bus::Envelope>,
) -> tokio::task::JoinHandle<switchboard_bus::BusResult<()>> {
    let bus = bus.clone();
    tokio::spawn(async move { bus.publish(&batch).await })
}

async fn assert_still_waiting(publish: &tokio::task::JoinHandle<switchboard_bus::BusResult<()>>) {
    tokio::time::sleep(QUIET).await;
    assert!(
        !publish.is_finished(),
        "the confirm came before the consumers settled"
    );
}

async fn confirmed(publish: tokio::task::JoinHandle<switchboard_bus::BusResult<()>>) {
    tokio::time::timeout(PATIENCE, publish)
        .await
        .expect("the confirm comes once everything is settled")
        .expect("publish task")
        .expect("publish");
}

#[tokio::test]
async fn a_confirm_waits_for_every_quorum_queue_to_settle() {
    let (bus, topology) = settled_bus();
    let cases = QueueSpec::quorum(&topology, "cases", &["contact.#"]);
    let routing = QueueSpec::quorum(&topology, "routing", &["contact.received"]);
    let mut cases_consumer = bus.subscribe(&cases, 10).await.expect("subscribe");
    let mut routing_consumer = bus.subscribe(&routing, 10).await.expect("subscribe");

    let publish = publish_in_background(&bus, events("contact.received", 3));
    let at_cases = receive(&mut cases_consumer, 3).await;
    let at_routing = receive(&mut routing_consumer, 3).await;
    assert_still_waiting(&publish).await;

    ack_all(at_cases).await.expect("ack");
    assert_still_waiting(&publish).await;

    // Dead-lettered is settled too: its fate is decided, and the dead-letter
    // queue holds it.
    let mut routing = at_routing.into_iter();
    routing.next().expect("one").ack().await.expect("ack");
    routing
        .next()
        .expect("two")
        .reject("cannot route this")
        .await
        .expect("reject");
    assert_still_waiting(&publish).await;
    routing.next().expect("three").ack().await.expect("ack");
    confirmed(publish).await;
    assert_eq!(bus.queue_depth(&topology.dead_letter_queue()), Some(1));
}

#[tokio::test]
async fn retries_keep_the_confirm_waiting_until_the_delivery_limit_dead_letters() {
    let (bus, topology) = settled_bus();
    let cases = QueueSpec::quorum(&topology, "cases", &["contact.#"]);
    let mut consumer = bus.subscribe(&cases, 10).await.expect("subscribe");

    let publish = publish_in_background(&bus, events("contact.received", 1));
    let mut rounds = 0;
    while !publish.is_finished() {
        let Ok(batch) =
            tokio::time::timeout(Duration::from_millis(200), consumer.next_batch(1, Duration::ZERO)).await
        else {
            // Nothing more to deliver: it was dead-lettered.
            break;
        };
        let delivery = batch.expect("next_batch").pop().expect("one delivery");
        delivery.retry().await.expect("retry");
        rounds += 1;
        assert!(rounds < 20, "the delivery limit never ended it");
    }
    assert!(rounds > 1, "retried deliveries did not confirm it");
    confirmed(publish).await;
    assert_eq!(bus.queue_depth(&topology.dead_letter_queue()), Some(1));
}

#[tokio::test]
async fn events_only_streams_take_are_confirmed_at_once() {
    let (bus, _topology) = settled_bus();
    // Only the analytics stream (bound to `#`) takes `case.opened` here.
    tokio::time::timeout(PATIENCE, bus.publish(&events("case.opened", 5)))
        .await
        .expect("no quorum queue to wait for")
        .expect("publish");
}

#[tokio::test]
async fn the_relay_deletes_rows_only_once_applied_and_leaves_them_on_shutdown() {
    let (bus, topology) = settled_bus();
    let cases = QueueSpec::quorum(&topology, "cases", &["contact.#"]);
    let mut consumer = bus.subscribe(&cases, 100).await.expect("subscribe");
    let outbox = Arc::new(MemoryOutbox::default());
    let sent = events("contact.received", 10);
    for envelope in &sent {
        outbox.insert(envelope);
    }

    // The consumer takes the events but never settles them: a crash in
    // the middle of applying them.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(
        OutboxRelay::new(outbox.clone(), bus.clone(), Arc::new(Notify::new())).run(async {
            let _stop = stopped.await;
        }),
    );
    let unsettled = receive(&mut consumer, sent.len()).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(outbox.len(), sent.len(), "no row deleted before it was applied");
    stop.send(()).expect("relay running");
    tokio::time::timeout(PATIENCE, relay)
        .await
        .expect("shutdown does not wait for a consumer that may never settle")
        .expect("relay task");
    assert_eq!(outbox.len(), sent.len(), "every row left for the next start");
    assert!(outbox.deleted.lock().expect("lock").is_empty());
    drop(unsettled);
    drop(consumer);

    // The next start: a new bus (memory is gone), the same outbox.
    let (bus, topology) = settled_bus();
    let cases = QueueSpec::quorum(&topology, "cases", &["contact.#"]);
    let mut consumer = bus.subscribe(&cases, 100).await.expect("subscribe");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(
        OutboxRelay::new(outbox.clone(), bus.clone(), Arc::new(Notify::new())).run(async {
            let _stop = stopped.await;
        }),
    );
    let delivered = receive(&mut consumer, sent.len()).await;
    assert_eq!(ids(&delivered), envelope_ids(&sent), "every row again, in order");
    ack_all(delivered).await.expect("ack");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while outbox.len() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "rows never deleted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(()).expect("relay running");
    relay.await.expect("relay task");
    assert_eq!(outbox.deleted.lock().expect("lock").len(), sent.len());
}

#[tokio::test]
async fn send_to_queue_is_confirmed_once_that_queue_settles() {
    let (bus, topology) = settled_bus();
    let target = QueueSpec::quorum(&topology, "target", &["contact.#"]);
    // Bound to everything and never consumed: were it counted, the confirm
    // would never come.
    let bystander = QueueSpec::quorum(&topology, "bystander", &["#"]);
    bus.ensure_queue(&bystander).await.expect("declare");
    let mut consumer = bus.subscribe(&target, 10).await.expect("subscribe");

    let sent = events("router.heartbeat", 2);
    let send = {
        let bus = bus.clone();
        let queue = target.name.clone();
        let sent = sent.clone();
        tokio::spawn(async move { bus.send_to_queue(&queue, &sent).await })
    };
    let delivered = receive(&mut consumer, 2).await;
    assert_eq!(ids(&delivered), envelope_ids(&sent));
    assert_still_waiting(&send).await;
    ack_all(delivered).await.expect("ack");
    confirmed(send).await;
    assert_eq!(bus.queue_depth(&bystander.name), Some(0));
}

#[tokio::test]
async fn a_handed_over_message_is_confirmed_when_the_next_consumer_settles_it() {
    let (bus, topology) = settled_bus();
    let partition = QueueSpec::routing_partition(&topology, "north").expect("valid partition");
    let mut active = bus.subscribe(&partition, 10).await.expect("subscribe");
    let mut standby = bus.subscribe(&partition, 10).await.expect("subscribe");

    let sent = events("contact.received", 1);
    let publish = publish_in_background(&bus, sent.clone());
    let held = receive(&mut active, 1).await;
    // The active subscription goes without settling it (a router stopping).
    drop(active);
    assert_still_waiting(&publish).await;
    let mut handed_over = receive(&mut standby, 1).await;
    assert_eq!(ids(&handed_over), envelope_ids(&sent));
    let handed_over = handed_over.remove(0);
    assert!(handed_over.redelivered);
    assert_eq!(handed_over.delivery_count, 1, "the hand-over counts as a return");

    // The old delivery cannot settle it any more, nor confirm it by mistake.
    for delivery in held {
        let error = delivery.ack().await.expect_err("its subscription is gone");
        assert!(error.to_string().contains(sent[0].event_id()), "{error}");
    }
    assert_still_waiting(&publish).await;
    handed_over.ack().await.expect("ack");
    confirmed(publish).await;
}
