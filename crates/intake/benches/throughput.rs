//! Accepted contacts per second through group commit, against the baseline it
//! must beat: PostgreSQL committing one contact row per transaction, from many
//! concurrent clients (PostgreSQL's own best case for single-row commits).
//!
//! `cargo bench -p switchboard-intake --bench throughput` (needs the test
//! PostgreSQL, like the tests). Prints both figures from the same run, on the
//! same machine, against the same server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use switchboard_bus::{EventKey, Sealer};
use switchboard_domain::Catalogue;
use switchboard_intake::{Intake, IntakeMetrics, IntakeStore, PgIntakeStore, WriterConfig};
use switchboard_proto::v1::{self, submit_contact_request::Origin};
use switchboard_runtime::testing::TestDatabase;

const RUN_FOR: Duration = Duration::from_secs(5);
/// Connections committing single rows; `BENCH_BASELINE_CLIENTS` overrides it
/// (PostgreSQL's own group commit rewards more of them, up to a point).
fn baseline_clients() -> usize {
    std::env::var("BENCH_BASELINE_CLIENTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(32)
}
const SUBMITTERS: usize = 1024;

fn request() -> v1::SubmitContactRequest {
    v1::SubmitContactRequest {
        channel: v1::Channel::Phone as i32,
        service: "council-tax".to_owned(),
        customer: Some(v1::Customer {
            name: "Ada Lovelace".to_owned(),
            phone: "023 8028 5000".to_owned(),
            email: "ada@example.org".to_owned(),
            postcode: "SO43 7PN".to_owned(),
            ..Default::default()
        }),
        summary: "Question about my council tax bill".to_owned(),
        origin: Some(Origin::Phone(v1::PhoneOrigin {
            caller_number: "07700 900123".to_owned(),
            dialled_number: "01234 567890".to_owned(),
            call_id: String::new(),
        })),
        ..Default::default()
    }
}

/// Single-row commits from `clients` connections, into a table shaped like
/// `contacts`.
async fn baseline(url: &str, clients: usize) -> f64 {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(u32::try_from(clients).unwrap_or(u32::MAX))
        .connect(url)
        .await
        .expect("baseline pool");
    sqlx::query(
        "CREATE TABLE baseline (id uuid PRIMARY KEY, reference text UNIQUE NOT NULL, channel text NOT NULL, \
         service text NOT NULL, received_at timestamptz NOT NULL, contact jsonb NOT NULL)",
    )
    .execute(&pool)
    .await
    .expect("baseline table");
    let contact =
        serde_json::json!({"summary": "Question about my council tax bill", "phone": "+442380285000"});
    let committed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + RUN_FOR;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (pool, committed, contact) = (pool.clone(), committed.clone(), contact.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let id = uuid::Uuid::now_v7();
                    sqlx::query("INSERT INTO baseline VALUES ($1, $2, 'phone', 'council-tax', now(), $3)")
                        .bind(id)
                        .bind(id.simple().to_string())
                        .bind(sqlx::types::Json(&contact))
                        .execute(&pool)
                        .await
                        .expect("insert");
                    committed.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    futures::future::join_all(tasks).await;
    committed.load(Ordering::Relaxed) as f64 / RUN_FOR.as_secs_f64()
}

async fn group_commit(url: &str) -> (f64, u64) {
    let store = Arc::new(PgIntakeStore::connect(url).await.expect("store"));
    let sealer = Arc::new(Sealer::new(vec![EventKey::generate("bench")]).expect("sealer"));
    let catalogue = Arc::new(Catalogue::embedded().expect("catalogue"));
    let (intake, _writer) = Intake::start(
        store.clone(),
        catalogue,
        sealer,
        Arc::new(tokio::sync::Notify::new()),
        WriterConfig::default(),
        IntakeMetrics::new(),
    );
    let accepted = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + RUN_FOR;
    let tasks: Vec<_> = (0..SUBMITTERS)
        .map(|_| {
            let (intake, accepted): (Intake, _) = (intake.clone(), accepted.clone());
            tokio::spawn(async move {
                let request = request();
                while Instant::now() < deadline {
                    intake.submit(request.clone()).await.expect("accepted");
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    futures::future::join_all(tasks).await;
    let stored = store.contact_count().await.expect("count");
    (
        accepted.load(Ordering::Relaxed) as f64 / RUN_FOR.as_secs_f64(),
        stored,
    )
}

/// The writer and store alone, fed contacts prepared beforehand: what the
/// database side can take, without validation and sealing.
async fn writer_only(url: &str) -> f64 {
    let store = Arc::new(PgIntakeStore::connect(url).await.expect("store"));
    let sealer = Sealer::new(vec![EventKey::generate("bench")]).expect("sealer");
    let catalogue = Catalogue::embedded().expect("catalogue");
    let (writer, _task) = switchboard_intake::spawn_writer(
        store,
        Arc::new(tokio::sync::Notify::new()),
        WriterConfig::default(),
        IntakeMetrics::new(),
    );
    let prepared: Vec<_> = (0..40_000)
        .map(|_| {
            let valid = switchboard_intake::convert::contact_draft(request())
                .validate(&catalogue)
                .expect("valid");
            let contact = switchboard_domain::NewContact::new(valid);
            let outbox = switchboard_intake::events::contact_received_entry(&contact, &sealer);
            switchboard_intake::store::PendingContact {
                contact,
                idempotency: None,
                outbox,
            }
        })
        .collect();
    let started = Instant::now();
    let per_task = prepared.len() / SUBMITTERS;
    let mut prepared = prepared.into_iter();
    let tasks: Vec<_> = (0..SUBMITTERS)
        .map(|_| {
            let mine: Vec<_> = prepared.by_ref().take(per_task).collect();
            let writer = writer.clone();
            tokio::spawn(async move {
                for pending in mine {
                    writer.write(pending).await.expect("written");
                }
            })
        })
        .collect();
    futures::future::join_all(tasks).await;
    (per_task * SUBMITTERS) as f64 / started.elapsed().as_secs_f64()
}

/// Validation, hashing and sealing alone, on one thread: the CPU cost per contact.
fn prepare_only() -> f64 {
    let sealer = Sealer::new(vec![EventKey::generate("bench")]).expect("sealer");
    let catalogue = Catalogue::embedded().expect("catalogue");
    let started = Instant::now();
    let count = 20_000;
    for _ in 0..count {
        let valid = switchboard_intake::convert::contact_draft(request())
            .validate(&catalogue)
            .expect("valid");
        let contact = switchboard_domain::NewContact::new(valid);
        let entry = switchboard_intake::events::contact_received_entry(&contact, &sealer);
        std::hint::black_box((entry, serde_json::to_string(&contact.contact).expect("json")));
    }
    let total = count as f64 / started.elapsed().as_secs_f64();
    if std::env::var_os("BENCH_BREAKDOWN").is_some() {
        let time = |name: &str, work: &dyn Fn()| {
            let started = Instant::now();
            for _ in 0..2000 {
                work();
            }
            println!(
                "  {name}: {:.1} us",
                started.elapsed().as_secs_f64() * 1e6 / 2000.0
            );
        };
        let valid = switchboard_intake::convert::contact_draft(request())
            .validate(&catalogue)
            .expect("valid");
        let contact = switchboard_domain::NewContact::new(valid.clone());
        time("validate", &|| {
            std::hint::black_box(
                switchboard_intake::convert::contact_draft(request())
                    .validate(&catalogue)
                    .expect("valid"),
            );
        });
        time("new contact", &|| {
            std::hint::black_box(switchboard_domain::NewContact::new(valid.clone()));
        });
        time("event + seal", &|| {
            std::hint::black_box(switchboard_intake::events::contact_received_entry(
                &contact, &sealer,
            ));
        });
        time("json", &|| {
            std::hint::black_box(serde_json::to_string(&contact.contact).expect("json"));
        });
        time("phone parse", &|| {
            std::hint::black_box(switchboard_domain::PhoneNumber::parse("023 8028 5000").expect("phone"));
        });
    }
    total
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let baseline_database = TestDatabase::create().await;
        let clients = baseline_clients();
        let baseline = baseline(&baseline_database.url, clients).await;
        let intake_database = TestDatabase::create().await;
        let (accepted, stored) = group_commit(&intake_database.url).await;
        let writer_database = TestDatabase::create().await;
        let writer = writer_only(&writer_database.url).await;
        let prepare = prepare_only();
        println!("baseline: single-row commits, {clients} clients:   {baseline:>9.0} rows/s");
        println!("writer:   prepared contacts, {SUBMITTERS} submitters: {writer:>9.0} contacts/s");
        println!("prepare:  validate + seal + encode, one thread: {prepare:>9.0} contacts/s");
        println!("intake:   group commit, {SUBMITTERS} submitters:      {accepted:>9.0} contacts/s ({stored} stored)");
        println!("ratio:    {:.2}x", accepted / baseline);
    });
}
