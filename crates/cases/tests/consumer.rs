//! The consumer end to end: `contact.received` and `contact.completed`
//! events published on a bus, applied by `CasesConsumer`, `case.*` events
//! relayed back out, poison messages dead-lettered with their reason. Once against the in-process bus
//! with SQLite (embedded mode), once against RabbitMQ with PostgreSQL
//! (distributed mode), each with its own random topology prefix.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use switchboard_bus::{
    Bus, DeadLetterReason, Delivery, Envelope, EventKey, InProcessBus, QueueSpec, RabbitBus, Sealer,
    Subscription, Topology, ack_all,
};
use switchboard_cases::{CaseKey, CaseStatus, CasesConsumer, CasesStore};
use switchboard_domain::{CaseId, ContactId, ContactReference, EventId};
use switchboard_proto::{event_types, v1};
use tokio::sync::oneshot;

/// What intake would publish for one contact.
struct Published {
    contact_id: ContactId,
    envelope: Envelope,
}

fn contact_received(
    sealer: &Sealer,
    channel: v1::Channel,
    service: &str,
    customer: v1::Customer,
    caller: &str,
) -> Published {
    let event_id = EventId::new().to_string();
    let contact_id = ContactId::new();
    let now = chrono::Utc::now();
    let timestamp = pbjson_types::Timestamp {
        seconds: now.timestamp(),
        nanos: 0,
    };
    let personal = v1::PersonalData {
        customer: Some(customer),
        summary: "missed bin collection".to_owned(),
        details: [("street".to_owned(), "1 High Street".to_owned())].into(),
        phone: (channel == v1::Channel::Phone).then(|| v1::PhoneOrigin {
            caller_number: caller.to_owned(),
            dialled_number: String::new(),
            call_id: "call-7".to_owned(),
        }),
        web: None,
        face_to_face: None,
    };
    let event = v1::Event {
        id: event_id.clone(),
        r#type: event_types::CONTACT_RECEIVED.to_owned(),
        occurred_at: Some(timestamp),
        source: "intake".to_owned(),
        subject: contact_id.to_string(),
        sealed_personal_data: Some(sealer.seal(&event_id, &personal)),
        payload: Some(v1::event::Payload::ContactReceived(v1::ContactReceived {
            contact_id: contact_id.to_string(),
            reference: ContactReference::generate().as_str().to_owned(),
            channel: channel as i32,
            service: service.to_owned(),
            needs: Some(v1::Needs {
                language: "EN".to_owned(),
                ..Default::default()
            }),
            received_at: Some(timestamp),
            office_id: String::new(),
            form_id: if channel == v1::Channel::Web {
                "missed-bin".to_owned()
            } else {
                String::new()
            },
            dialled_number: if channel == v1::Channel::Phone {
                "01590 646111".to_owned()
            } else {
                String::new()
            },
        })),
    };
    Published {
        contact_id,
        envelope: Envelope {
            event,
            traceparent: None,
        },
    }
}

/// What routing would publish when an agent wraps `contact_id` up.
fn contact_completed(contact_id: ContactId, disposition: &str) -> Envelope {
    let now = chrono::Utc::now();
    Envelope {
        event: v1::Event {
            id: EventId::new().to_string(),
            r#type: event_types::CONTACT_COMPLETED.to_owned(),
            occurred_at: Some(pbjson_types::Timestamp {
                seconds: now.timestamp(),
                nanos: 0,
            }),
            source: "routing".to_owned(),
            subject: contact_id.to_string(),
            sealed_personal_data: None,
            payload: Some(v1::event::Payload::ContactCompleted(v1::ContactCompleted {
                contact_id: contact_id.to_string(),
                queue: "waste-phone".to_owned(),
                agent_id: 7,
                disposition: disposition.to_owned(),
                partner: String::new(),
            })),
        },
        traceparent: None,
    }
}

/// Waits until `count` deliveries arrived on `subscription` (acking them).
async fn receive(
    subscription: &mut Subscription,
    count: usize,
    what: &str,
) -> Vec<(Envelope, Option<DeadLetterReason>)> {
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while received.len() < count {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let batch: Vec<Delivery> = tokio::time::timeout(
            remaining,
            subscription.next_batch(count, Duration::from_millis(50)),
        )
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}: got {} of {count}", received.len()))
        .unwrap();
        for delivery in &batch {
            received.push((
                delivery.envelope.clone(),
                delivery
                    .dead_letter
                    .as_ref()
                    .map(|dead_letter| dead_letter.reason.clone()),
            ));
        }
        ack_all(batch).await.unwrap();
    }
    received
}

async fn consumer_applies_contacts_and_dead_letters_poison(
    bus: Arc<dyn Bus>,
    topology: Topology,
    store: Arc<dyn CasesStore>,
) {
    let sealer = Arc::new(Sealer::new(vec![EventKey::generate("key-1")]).unwrap());
    let stranger = Sealer::new(vec![EventKey::generate("key-unknown")]).unwrap();

    // The queues exist before anything is published, as `up`/`serve` declare them.
    bus.ensure_queue(&QueueSpec::cases(&topology)).await.unwrap();
    let case_events = QueueSpec::quorum(&topology, "test.case-events", &["case.*"]);
    let mut case_subscription = bus.subscribe(&case_events, 100).await.unwrap();
    let mut dead_letters = bus
        .subscribe(&QueueSpec::dead_letter(&topology), 100)
        .await
        .unwrap();

    let (stop, stopped) = oneshot::channel::<()>();
    let consumer = CasesConsumer::new(
        Arc::clone(&store),
        Arc::clone(&sealer),
        Arc::clone(&bus),
        &topology,
    );
    let running = tokio::spawn(consumer.run(async {
        let _ = stopped.await;
    }));

    let resident = v1::Customer {
        name: "Ada Lovelace".to_owned(),
        ..Default::default()
    };
    let call = contact_received(&sealer, v1::Channel::Phone, "waste", resident, "07700 900123");
    let form = contact_received(
        &sealer,
        v1::Channel::Web,
        "waste",
        v1::Customer {
            phone: "+447700900123".to_owned(),
            email: "ada@example.org".to_owned(),
            ..Default::default()
        },
        "",
    );
    // Sealed under a key cases does not hold, and tampered with: never openable.
    let unknown_key = contact_received(&stranger, v1::Channel::Web, "waste", v1::Customer::default(), "");
    let mut tampered = contact_received(&sealer, v1::Channel::Web, "waste", v1::Customer::default(), "");
    if let Some(sealed) = &mut tampered.envelope.event.sealed_personal_data {
        sealed.ciphertext[0] ^= 0xff;
    }
    let mut no_payload = contact_received(&sealer, v1::Channel::Web, "waste", v1::Customer::default(), "");
    no_payload.envelope.event.payload = None;
    // Another contact event: not for cases to act on, acked without effect.
    let mut assigned = contact_received(&sealer, v1::Channel::Web, "waste", v1::Customer::default(), "");
    assigned.envelope.event.r#type = "contact.assigned".to_owned();
    assigned.envelope.event.payload = None;

    bus.publish(&[
        call.envelope.clone(),
        unknown_key.envelope.clone(),
        form.envelope.clone(),
        tampered.envelope.clone(),
        no_payload.envelope.clone(),
        assigned.envelope.clone(),
    ])
    .await
    .unwrap();

    let events = receive(&mut case_subscription, 2, "case events").await;
    let types: Vec<&str> = events.iter().map(|(envelope, _)| envelope.event_type()).collect();
    assert_eq!(types, ["case.opened", "case.updated"]);
    assert!(
        events
            .iter()
            .all(|(envelope, _)| envelope.event.source == "cases")
    );

    let dead = receive(&mut dead_letters, 3, "dead letters").await;
    let mut dead_ids: Vec<String> = dead
        .iter()
        .map(|(envelope, _)| envelope.event_id().to_owned())
        .collect();
    dead_ids.sort();
    let mut expected = vec![
        unknown_key.envelope.event_id().to_owned(),
        tampered.envelope.event_id().to_owned(),
        no_payload.envelope.event_id().to_owned(),
    ];
    expected.sort();
    assert_eq!(dead_ids, expected);
    for (envelope, reason) in &dead {
        let Some(DeadLetterReason::Rejected(reason)) = reason else {
            panic!(
                "{} dead-lettered without a rejection reason: {reason:?}",
                envelope.event_id()
            );
        };
        if envelope.event_id() == no_payload.envelope.event_id() {
            assert!(reason.contains("payload"), "{reason}");
        } else {
            assert!(reason.contains("sealed personal data"), "{reason}");
        }
    }

    let first = store
        .get_contact(call.contact_id)
        .await
        .unwrap()
        .expect("the call is stored");
    let second = store
        .get_contact(form.contact_id)
        .await
        .unwrap()
        .expect("the form is stored");
    assert_eq!(first.customer_id, second.customer_id, "one resident");
    assert_eq!(first.case_id, second.case_id, "one case");
    assert_eq!(first.needs.language.as_deref(), Some("en"));
    let case = store
        .get_case(&CaseKey::Id(first.case_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(case.contact_ids.len(), 2);

    // A redelivered event changes nothing and publishes nothing.
    bus.publish(std::slice::from_ref(&call.envelope)).await.unwrap();
    let quiet = tokio::time::timeout(
        Duration::from_millis(1500),
        case_subscription.next_batch(10, Duration::from_millis(50)),
    )
    .await;
    assert!(
        quiet.is_err(),
        "no case event for a redelivered contact: {quiet:?}"
    );
    let case = store
        .get_case(&CaseKey::Id(first.case_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(case.contact_ids.len(), 2);
    assert!(
        store
            .get_case(&CaseKey::Id(CaseId::new()))
            .await
            .unwrap()
            .is_none()
    );

    // Routing reports the call wrapped up as resolved: the case resolves.
    // A completion without a disposition can never be applied.
    let resolved = contact_completed(call.contact_id, "resolved");
    let broken = contact_completed(form.contact_id, " ");
    bus.publish(&[resolved.clone(), broken.clone()]).await.unwrap();
    let events = receive(&mut case_subscription, 1, "case.resolved").await;
    assert_eq!(events[0].0.event_type(), "case.resolved");
    let dead = receive(&mut dead_letters, 1, "the completion without a disposition").await;
    assert_eq!(dead[0].0.event_id(), broken.event_id());
    let case = store
        .case_detail(&CaseKey::Id(first.case_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(case.case.status, CaseStatus::Resolved);
    assert_eq!(case.history[0].actor, "routing");
    let contact = store.get_contact(call.contact_id).await.unwrap().unwrap();
    assert_eq!(
        contact.outcome.map(|outcome| outcome.disposition).as_deref(),
        Some("resolved")
    );

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .expect("the consumer stops on shutdown")
        .unwrap()
        .unwrap();
    assert!(
        store.fetch_unsent(10).await.unwrap().is_empty(),
        "the relay published everything"
    );
}

#[tokio::test]
async fn in_process_bus_with_sqlite() {
    let topology = Topology::random_for_test();
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new(topology.clone()));
    let (store, _data_dir) = common::sqlite_store().await;
    consumer_applies_contacts_and_dead_letters_poison(bus, topology, store).await;
}

#[tokio::test]
async fn rabbitmq_with_postgres() {
    let topology = Topology::random_for_test();
    let url = switchboard_runtime::testing::amqp_url();
    let rabbit = RabbitBus::connect(&url, topology.clone())
        .await
        .unwrap_or_else(|error| {
            panic!(
                "cannot reach RabbitMQ at {url} ({error}); start it with `rabbitmq-server -detached` \
             (or `systemctl start rabbitmq-server`), or set SWITCHBOARD_TEST_AMQP_URL"
            )
        });
    let rabbit = Arc::new(rabbit);
    let bus: Arc<dyn Bus> = rabbit.clone();
    let (store, _database) = common::postgres_store().await;
    consumer_applies_contacts_and_dead_letters_poison(bus, topology, store).await;
    rabbit.delete_topology().await.unwrap();
}
