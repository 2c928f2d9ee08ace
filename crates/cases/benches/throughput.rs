//! Contacts per second through the case store, and end to end through the
//! consumer, with the raw RabbitMQ rate measured in the same run as the
//! baseline (the target: end to end at least a third of raw).
//!
//! `cargo bench -p switchboard-cases --bench throughput` (needs PostgreSQL and
//! RabbitMQ, as the tests do). `SWITCHBOARD_BENCH_CONTACTS` sets the count
//! (default 20000).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_bus::{
    Bus, Envelope, EventKey, InProcessBus, QueueSpec, RabbitBus, Sealer, Topology, ack_all,
};
use switchboard_cases::{CasesConsumer, CasesStore, IncomingContact, PgCasesStore, SqliteCasesStore};
use switchboard_domain::{
    Channel, ContactId, ContactOrigin, ContactReference, CustomerDetails, EmailAddress, EventId, Needs,
    PhoneNumber, ServiceId,
};
use switchboard_proto::{event_types, v1};
use switchboard_runtime::testing::{TestDatabase, amqp_url};

const SERVICES: [&str; 4] = ["council-tax", "waste", "housing", "parking"];

/// Half the contacts come from residents seen before in the run (a call,
/// then a form with the same phone and an email), half from new ones.
fn resident(index: usize) -> (String, String) {
    let resident = index / 2;
    (
        format!("+447400{:06}", resident % 1_000_000),
        format!("resident{resident}@example.org"),
    )
}

fn incoming(count: usize) -> Vec<IncomingContact> {
    (0..count)
        .map(|index| {
            let (phone, email) = resident(index);
            let by_phone = index % 2 == 0;
            IncomingContact {
                event_id: EventId::new(),
                traceparent: None,
                contact_id: ContactId::new(),
                reference: ContactReference::generate(),
                received_at: chrono::Utc::now(),
                channel: if by_phone { Channel::Phone } else { Channel::Web },
                service: ServiceId::parse(SERVICES[index % 3]).unwrap(),
                customer: CustomerDetails {
                    email: (!by_phone).then(|| EmailAddress::parse(&email).unwrap()),
                    phone: (!by_phone).then(|| PhoneNumber::parse(&phone).unwrap()),
                    ..CustomerDetails::default()
                },
                summary: "missed bin collection".to_owned(),
                details: [("street".to_owned(), "High Street".to_owned())].into(),
                needs: Needs::default(),
                origin: if by_phone {
                    ContactOrigin::Phone {
                        caller_number: Some(PhoneNumber::parse(&phone).unwrap()),
                        dialled_number: None,
                        call_id: None,
                    }
                } else {
                    ContactOrigin::Web {
                        form_id: Some("missed-bin".to_owned()),
                        page_url: None,
                    }
                },
            }
        })
        .collect()
}

/// What intake publishes for the same contacts.
fn envelopes(sealer: &Sealer, count: usize) -> Vec<Envelope> {
    (0..count)
        .map(|index| {
            let (phone, email) = resident(index);
            let by_phone = index % 2 == 0;
            let id = EventId::new().to_string();
            let now = chrono::Utc::now();
            let personal = v1::PersonalData {
                customer: Some(v1::Customer {
                    phone: if by_phone { String::new() } else { phone.clone() },
                    email: if by_phone { String::new() } else { email },
                    ..Default::default()
                }),
                summary: "missed bin collection".to_owned(),
                details: [("street".to_owned(), "High Street".to_owned())].into(),
                phone: by_phone.then(|| v1::PhoneOrigin {
                    caller_number: phone,
                    ..Default::default()
                }),
                web: None,
                face_to_face: None,
            };
            let event = v1::Event {
                id: id.clone(),
                r#type: event_types::CONTACT_RECEIVED.to_owned(),
                occurred_at: Some(pbjson_types::Timestamp {
                    seconds: now.timestamp(),
                    nanos: 0,
                }),
                source: "intake".to_owned(),
                subject: String::new(),
                sealed_personal_data: Some(sealer.seal(&id, &personal)),
                payload: Some(v1::event::Payload::ContactReceived(v1::ContactReceived {
                    contact_id: ContactId::new().to_string(),
                    reference: ContactReference::generate().as_str().to_owned(),
                    channel: if by_phone {
                        v1::Channel::Phone
                    } else {
                        v1::Channel::Web
                    } as i32,
                    service: SERVICES[index % 3].to_owned(),
                    received_at: Some(pbjson_types::Timestamp {
                        seconds: now.timestamp(),
                        nanos: 0,
                    }),
                    ..Default::default()
                })),
            };
            Envelope {
                event,
                traceparent: None,
            }
        })
        .collect()
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

async fn store_apply(name: &str, store: &dyn CasesStore, count: usize) -> f64 {
    let contacts = incoming(count);
    let started = Instant::now();
    for batch in contacts.chunks(switchboard_cases::MAX_APPLY_BATCH) {
        store.apply_contacts(batch).await.unwrap();
    }
    let per_second = rate(count, started.elapsed());
    println!("store apply, {name:<10} {per_second:>9.0} contacts/s  ({count} in batches of 500)");
    per_second
}

/// Publish and consume (ack in batches) with no work: the broker's own rate.
async fn raw_bus(bus: Arc<dyn Bus>, topology: &Topology, envelopes: &[Envelope]) -> f64 {
    let queue = QueueSpec::quorum(topology, "bench.raw", &[event_types::CONTACT_RECEIVED]);
    let mut subscription = bus.subscribe(&queue, 1000).await.unwrap();
    let count = envelopes.len();
    let started = Instant::now();
    let consuming = tokio::spawn(async move {
        let mut received = 0;
        while received < count {
            let batch = subscription
                .next_batch(500, Duration::from_millis(20))
                .await
                .unwrap();
            received += batch.len();
            ack_all(batch).await.unwrap();
        }
    });
    for chunk in envelopes.chunks(500) {
        bus.publish(chunk).await.unwrap();
    }
    consuming.await.unwrap();
    rate(count, started.elapsed())
}

/// Publish contact.received and wait until the case store holds every contact.
async fn end_to_end(
    bus: Arc<dyn Bus>,
    topology: &Topology,
    store: Arc<dyn CasesStore>,
    envelopes: &[Envelope],
    sealer: Arc<Sealer>,
    count_contacts: impl Fn() -> futures::future::BoxFuture<'static, i64>,
) -> f64 {
    bus.ensure_queue(&QueueSpec::cases(topology)).await.unwrap();
    // Somewhere for the case events to go, as routing's queue would be.
    bus.ensure_queue(&QueueSpec::quorum(topology, "bench.case-events", &["case.*"]))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer = CasesConsumer::new(store, sealer, Arc::clone(&bus), topology);
    let running = tokio::spawn(consumer.run(async {
        let _ = stopped.await;
    }));
    let count = envelopes.len();
    let started = Instant::now();
    for chunk in envelopes.chunks(500) {
        bus.publish(chunk).await.unwrap();
    }
    while usize::try_from(count_contacts().await).unwrap() < count {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let per_second = rate(count, started.elapsed());
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    per_second
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let count: usize = std::env::var("SWITCHBOARD_BENCH_CONTACTS")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(20_000);
        let sealer = Arc::new(Sealer::new(vec![EventKey::generate("bench")]).unwrap());

        let data_dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteCasesStore::open(data_dir.path()).await.unwrap();
        store_apply("sqlite", &sqlite, count).await;
        let database = TestDatabase::create().await;
        let postgres = PgCasesStore::connect(&database.url).await.unwrap();
        store_apply("postgres", &postgres, count).await;
        drop(postgres);
        drop(database);

        // Embedded mode: in-process bus and SQLite.
        let topology = Topology::random_for_test();
        let memory: Arc<dyn Bus> = Arc::new(InProcessBus::new(topology.clone()));
        let raw = raw_bus(Arc::clone(&memory), &topology, &envelopes(&sealer, count)).await;
        let data_dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteCasesStore::open(data_dir.path()).await.unwrap();
        let pool = sqlite.pool().clone();
        let e2e = end_to_end(
            memory,
            &topology,
            Arc::new(sqlite),
            &envelopes(&sealer, count),
            Arc::clone(&sealer),
            move || {
                let pool = pool.clone();
                Box::pin(async move {
                    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM contacts")
                        .fetch_one(&pool)
                        .await
                        .unwrap()
                })
            },
        )
        .await;
        println!("in-process bus raw   {raw:>9.0} msgs/s");
        println!(
            "end to end, embedded {e2e:>9.0} contacts/s  ({:.2} of raw)",
            e2e / raw
        );

        // Distributed mode: RabbitMQ and PostgreSQL.
        let topology = Topology::random_for_test();
        let rabbit = Arc::new(RabbitBus::connect(&amqp_url(), topology.clone()).await.unwrap());
        let bus: Arc<dyn Bus> = rabbit.clone();
        let raw = raw_bus(Arc::clone(&bus), &topology, &envelopes(&sealer, count)).await;
        let database = TestDatabase::create().await;
        let postgres = PgCasesStore::connect(&database.url).await.unwrap();
        let pool = postgres.pool().clone();
        let e2e = end_to_end(
            bus,
            &topology,
            Arc::new(postgres),
            &envelopes(&sealer, count),
            Arc::clone(&sealer),
            move || {
                let pool = pool.clone();
                Box::pin(async move {
                    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM contacts")
                        .fetch_one(&pool)
                        .await
                        .unwrap()
                })
            },
        )
        .await;
        println!("rabbitmq raw         {raw:>9.0} msgs/s");
        println!(
            "end to end, rabbitmq {e2e:>9.0} contacts/s  ({:.2} of raw; target 0.33)",
            e2e / raw
        );
        rabbit.delete_topology().await.unwrap();
    });
}
