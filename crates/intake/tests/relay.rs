//! The whole path inside intake's process: a submission is committed with its
//! outbox row, the relay (woken by the writer) publishes it, a consumer gets a
//! `contact.received` event it can open, and the row is gone.

mod common;

use std::sync::Arc;
use std::time::Duration;

use switchboard_bus::{Bus, InProcessBus, OutboxRelay, QueueSpec, Topology};
use switchboard_intake::{IntakeStore, WriterConfig};
use switchboard_proto::v1::event::Payload;

use common::{phone_request, postgres_store, sealer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_contact_reaches_the_bus_and_leaves_the_outbox() {
    let test = postgres_store().await;
    let topology = Topology::new(&format!("t-{}.", uuid::Uuid::now_v7().simple()));
    let bus = Arc::new(InProcessBus::new(topology.clone()));
    let cases = QueueSpec::cases(&topology);
    bus.ensure_queue(&cases).await.expect("queue");
    let mut subscription = bus.subscribe(&cases, 10).await.expect("subscribe");

    let sealer = sealer();
    let wake = Arc::new(tokio::sync::Notify::new());
    let (writer, _task) = switchboard_intake::spawn_writer(
        test.store.clone(),
        wake.clone(),
        WriterConfig::default(),
        switchboard_intake::IntakeMetrics::new(),
    );
    let intake = switchboard_intake::Intake::new(
        test.store.clone(),
        common::catalogue(),
        sealer.clone(),
        writer,
        Default::default(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(
        OutboxRelay::new(test.store.clone(), bus.clone(), wake).run(async {
            let _ = stopped.await;
        }),
    );

    let accepted = intake.submit(phone_request()).await.expect("accepted");
    let deliveries = tokio::time::timeout(
        Duration::from_secs(5),
        subscription.next_batch(10, Duration::ZERO),
    )
    .await
    .expect("published promptly")
    .expect("delivery");
    assert_eq!(deliveries.len(), 1);
    let event = &deliveries[0].envelope.event;
    assert_eq!(event.r#type, "contact.received");
    assert_eq!(event.subject, accepted.contact_id.as_uuid().to_string());
    let Some(Payload::ContactReceived(received)) = &event.payload else {
        panic!("payload")
    };
    assert_eq!(received.reference, accepted.reference.as_str());
    let personal = sealer
        .open(&event.id, event.sealed_personal_data.as_ref().expect("sealed"))
        .expect("opens");
    assert_eq!(personal.customer.expect("customer").email, "ada@example.org");
    switchboard_bus::ack_all(deliveries).await.expect("ack");

    let mut unsent = test.store.unsent_outbox_count().await.expect("count");
    for _ in 0..50 {
        if unsent == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        unsent = test.store.unsent_outbox_count().await.expect("count");
    }
    assert_eq!(unsent, 0, "confirmed rows are deleted");
    let _ = stop.send(());
    relay.await.expect("relay stops");
}

/// The binary picks the store at run time: one `Arc<dyn IntakeStore>` serves the
/// writer and, upcast, the relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_chosen_at_run_time_serves_writer_and_relay() {
    let test = common::sqlite_store().await;
    let store: Arc<dyn IntakeStore> = test.store.clone();
    let wake = Arc::new(tokio::sync::Notify::new());
    let (intake, _writer) = switchboard_intake::Intake::start(
        store.clone(),
        common::catalogue(),
        sealer(),
        wake.clone(),
        WriterConfig::for_sqlite(),
        Default::default(),
    );
    let outbox: Arc<dyn switchboard_bus::OutboxStore> = store.clone();
    let bus = Arc::new(InProcessBus::new(Topology::new("t-dyn.")));
    let relay = OutboxRelay::new(outbox, bus, wake);
    intake.submit(phone_request()).await.expect("accepted");
    assert_eq!(relay.relay_once().await.expect("relayed").published, 1);
    assert_eq!(store.unsent_outbox_count().await.expect("count"), 0);
}
