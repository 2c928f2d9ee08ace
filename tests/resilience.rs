//! Nothing accepted is lost, nothing is stored twice: the case store killed
//! mid-stream, the whole embedded system killed mid-stream, and RabbitMQ gone
//! for a while.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use secrecy::ExposeSecret;
use switchboard_bus::Topology;
use switchboard_runtime::{DevCredentials, Role, testing};
use switchboard_tests::{
    CasesClient, IntakeClient, cases_client_at, dev_token, intake_client_at, process::ServiceProcess,
    proxy::TcpProxy, submit_workload, verify_case_store, workload::Workload,
};

async fn intake_client(address: SocketAddr, key: &str) -> IntakeClient {
    intake_client_at(address, key).await.expect("intake")
}

async fn cases_client(address: SocketAddr, token: &str) -> CasesClient {
    cases_client_at(address, token).await.expect("cases")
}

type Submitter = tokio::task::JoinHandle<anyhow::Result<Vec<(String, String)>>>;

/// Submits the whole workload over gRPC on a task of its own.
async fn start_submitting(intake: SocketAddr, key: &str, workload: &Arc<Workload>) -> Submitter {
    let client = intake_client(intake, key).await;
    let workload = workload.clone();
    tokio::spawn(async move { submit_workload(&client, None, &workload).await })
}

/// Gives the submitter time to get going, and makes sure it has not finished:
/// a kill after the last contact would prove nothing.
async fn wait_until_mid_stream(submitter: &Submitter) {
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !submitter.is_finished(),
        "the kill must land mid-stream; submit more contacts"
    );
}

/// Messages waiting in a RabbitMQ queue, asked passively (the queue must exist).
async fn queue_depth(queue: &str) -> u32 {
    let connection = lapin::Connection::connect(&testing::amqp_url(), lapin::ConnectionProperties::default())
        .await
        .expect("cannot reach RabbitMQ: start it with `rabbitmq-server -detached`");
    let channel = connection.create_channel().await.expect("channel");
    let options = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let queue = channel
        .queue_declare(queue.into(), options, lapin::types::FieldTable::default())
        .await
        .expect("the queue exists");
    let depth = queue.message_count();
    let _ = connection.close(200, "done".into()).await;
    depth
}

/// Polls an outbox until it is empty.
async fn wait_until_drained<F, Fut>(what: &str, mut unsent: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = u64>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let count = unsent().await;
        if count == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {count} events never left the outbox"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn assert_outboxes_drained(database_url: &str) {
    use switchboard_bus::OutboxStore;
    async fn unsent(store: &dyn OutboxStore) -> u64 {
        store.fetch_unsent(1_000).await.expect("outbox readable").len() as u64
    }
    let intake = switchboard_intake::PgIntakeStore::connect(database_url)
        .await
        .expect("intake store");
    let cases = switchboard_cases::PgCasesStore::connect(database_url)
        .await
        .expect("case store");
    wait_until_drained("intake", || unsent(&intake)).await;
    wait_until_drained("cases", || unsent(&cases)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn case_store_killed_mid_stream_stores_every_contact_exactly_once() {
    let database = testing::TestDatabase::create().await;
    let data_dir = tempfile::tempdir().expect("data dir");
    let topology = Topology::random_for_test();
    let environment = [
        ("SWITCHBOARD_DATABASE_URL", database.url.clone()),
        ("SWITCHBOARD_AMQP_URL", testing::amqp_url()),
        ("SWITCHBOARD_AMQP_PREFIX", topology.prefix().to_owned()),
        ("SWITCHBOARD_DATA_DIR", data_dir.path().display().to_string()),
    ];
    let intake = ServiceProcess::start("intake", &environment)
        .await
        .expect("intake starts");
    let cases = ServiceProcess::start("cases", &environment)
        .await
        .expect("cases starts");
    // The processes share the data dir, and so its development credentials.
    let credentials = DevCredentials::load_or_create(data_dir.path()).expect("credentials");
    let key = credentials.intake_key.expose_secret().to_owned();
    let agent = dev_token(&credentials, Role::Agent);

    let workload = Arc::new(Workload::new(0, 400, 2_000));
    let submitter = start_submitting(intake.grpc_addr, &key, &workload).await;

    // Kill the case store while contacts are flowing, keep it down a moment,
    // then start a new one.
    wait_until_mid_stream(&submitter).await;
    cases.kill().await.expect("SIGKILL");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cases = ServiceProcess::start("cases", &environment)
        .await
        .expect("cases restarts");

    let submitted = submitter
        .await
        .expect("submitter")
        .expect("every contact accepted");
    assert_eq!(submitted.len(), workload.contacts.len());
    verify_case_store(
        &mut cases_client(cases.grpc_addr, &agent).await,
        &workload,
        &submitted,
    )
    .await;
    assert_outboxes_drained(&database.url).await;
    assert_eq!(
        queue_depth(&topology.dead_letter_queue()).await,
        0,
        "nothing dead-lettered"
    );

    assert!(
        intake.terminate().await.expect("SIGTERM").success(),
        "intake exits cleanly"
    );
    assert!(
        cases.terminate().await.expect("SIGTERM").success(),
        "cases exits cleanly"
    );
    switchboard_tests::delete_topology(&topology).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_system_killed_mid_stream_loses_no_accepted_contact() {
    let data_dir = tempfile::tempdir().expect("data dir");
    let environment = [("SWITCHBOARD_DATA_DIR", data_dir.path().display().to_string())];
    let system = ServiceProcess::up(&environment).await.expect("up starts");
    let credentials = DevCredentials::load_or_create(data_dir.path()).expect("credentials");
    let key = credentials.intake_key.expose_secret().to_owned();
    let agent = dev_token(&credentials, Role::Agent);

    let workload = Arc::new(Workload::new(400, 400, 3_000));
    let submitter = start_submitting(system.grpc_addr, &key, &workload).await;
    // Everything in one process goes at once: contacts accepted (committed
    // in intake's SQLite file) whose events were still in memory die with it.
    wait_until_mid_stream(&submitter).await;
    system.kill().await.expect("SIGKILL");
    let cut_short = submitter.await.expect("submitter");
    assert!(cut_short.is_err(), "submissions fail while the system is down");

    // Restarted, the system gets every submission again, as clients retry
    // with the same idempotency keys: contacts accepted before the kill are
    // answered from intake (nothing new is stored or published for them), so
    // they reach the case store only if their events survived the kill.
    let system = ServiceProcess::up(&environment).await.expect("up restarts");
    let intake_grpc = intake_client(system.grpc_addr, &key).await;
    let submitted = submit_workload(&intake_grpc, None, &workload)
        .await
        .expect("every contact accepted");
    verify_case_store(
        &mut cases_client(system.grpc_addr, &agent).await,
        &workload,
        &submitted,
    )
    .await;
    assert!(
        system.terminate().await.expect("SIGTERM").success(),
        "up exits cleanly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn intake_keeps_accepting_while_rabbitmq_is_away_and_delivers_when_it_is_back() {
    let broker: SocketAddr = "127.0.0.1:5672".parse().expect("address");
    let proxy = TcpProxy::start(broker).await.expect("proxy");
    let system = switchboard_tests::TestSystem::distributed_via(proxy.amqp_url())
        .await
        .expect("system");
    let workload = Workload::new(1_000, 100, 600);
    let (before, during) = workload.contacts.split_at(200);
    let intake = system.intake_client().await.expect("intake client");

    let mut submitted = submit_workload(
        &intake,
        None,
        &Workload {
            residents: workload.residents.clone(),
            contacts: before.to_vec(),
        },
    )
    .await
    .expect("accepted while the broker is up");

    proxy.cut();
    let during = Workload {
        residents: workload.residents.clone(),
        contacts: during.to_vec(),
    };
    submitted.extend(
        submit_workload(&intake, None, &during)
            .await
            .expect("accepted while the broker is away"),
    );
    // Readiness says the broker is missing, while intake still accepts.
    let readiness = reqwest::get(format!("http://{}/readyz", system.intake_http))
        .await
        .expect("readyz");
    let probe_deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut ready = readiness.status().is_success();
    while ready && tokio::time::Instant::now() < probe_deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        ready = reqwest::get(format!("http://{}/readyz", system.intake_http))
            .await
            .expect("readyz")
            .status()
            .is_success();
    }
    assert!(!ready, "readyz reports the broker as unavailable");
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore();

    verify_case_store(
        &mut system.cases_client().await.expect("cases client"),
        &workload,
        &submitted,
    )
    .await;
    assert_outboxes_drained(&system.database.as_ref().expect("database").url).await;
    system.stop().await.expect("clean shutdown");
}
