//! `switchboard bench`: throughput of the spine beside the raw rates of the
//! servers it stands on, measured in the same run on the same machine.
//!
//! | figure | baseline |
//! | --- | --- |
//! | intake: contacts accepted per second (durably committed before the answer), over gRPC | PostgreSQL: single-row commits per second over 8 connections |
//! | end to end: contacts per second from submission to stored on a case | RabbitMQ: persistent messages per second, published with confirms into a quorum queue and consumed by one consumer |
//! | end to end's broker work alone: RabbitMQ doing for each contact what end to end has it do, with no service running | the same |
//!
//! The last row is not a target but a ceiling: end to end does that broker
//! work and everything else on the same cores, so it cannot be faster.
//!
//! It runs against PostgreSQL and RabbitMQ (`--database-url`, `--amqp-url`,
//! else the local servers), in a database and under a queue prefix of its
//! own, both removed afterwards. The baselines' SQL and AMQP calls live here
//! because they measure the servers themselves, not any service.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures::{StreamExt, stream};
use lapin::{
    BasicProperties, Channel as AmqpChannel, Connection, ConnectionProperties, ExchangeKind,
    PublisherConfirm,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
        ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
        QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable},
};
use secrecy::ExposeSecret;
use sqlx::{Connection as _, Executor, PgConnection, postgres::PgPoolOptions};
use switchboard_bus::Topology;
use switchboard_cases::{CasesStore, PgCasesStore};
use switchboard_proto::v1::{
    Channel, Customer, Needs, PhoneOrigin, SubmitContactRequest, intake_service_client::IntakeServiceClient,
    submit_contact_request::Origin,
};
use switchboard_runtime::{DevCredentials, Shutdown, testing};
use tokio::net::TcpListener;
use tonic::{metadata::MetadataValue, transport::Channel as GrpcChannel};

use crate::{
    app::{self, Launch, Running, Services},
    cli::{BenchArgs, GlobalOptions},
};

/// A body about the size of a `contact.received` event with its sealed data.
const MESSAGE_BYTES: usize = 700;
/// Messages a publisher has awaiting confirmation at most.
const CONFIRM_WINDOW: usize = 512;
/// Connections the raw PostgreSQL baseline commits over.
const RAW_CONNECTIONS: usize = 8;

pub async fn run(global: &GlobalOptions, args: BenchArgs) -> anyhow::Result<()> {
    let server_url = global
        .database_url
        .clone()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let amqp_url = global
        .amqp_url
        .clone()
        .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let contacts = args.contacts.max(1);
    eprintln!(
        "switchboard bench: {contacts} contacts per figure, {} concurrent submitters, {} cores",
        args.concurrency,
        std::thread::available_parallelism().map(usize::from).unwrap_or(1)
    );

    let database = BenchDatabase::create(&server_url).await?;
    let outcome = measure(&database.url, &amqp_url, contacts, args.concurrency.max(1)).await;
    database.drop_database().await;
    let report = outcome?;
    println!("{report}");
    Ok(())
}

struct Report {
    raw_commits: Figure,
    intake: Figure,
    raw_broker: Figure,
    broker_alone: Figure,
    end_to_end: Figure,
}

/// A rate, and the busy CPU time of the whole machine (every process on
/// every core: services, servers and the bench's own clients) for each item
/// over the step that measured it.
#[derive(Clone, Copy)]
struct Figure {
    per_second: f64,
    cpu_per_item: Option<Duration>,
}

impl std::fmt::Display for Figure {
    /// `rate | CPU µs`, two cells of the report's table.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.0} | ", self.per_second)?;
        match self.cpu_per_item {
            Some(cpu) => write!(f, "{:.0}", cpu.as_secs_f64() * 1e6),
            None => write!(f, "n/a"),
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ratio = |figure: &Figure, baseline: &Figure| figure.per_second / baseline.per_second;
        let intake_ratio = ratio(&self.intake, &self.raw_commits);
        let end_to_end_ratio = ratio(&self.end_to_end, &self.raw_broker);
        writeln!(
            f,
            "| figure | per second | CPU µs each | baseline (same run) | per second | CPU µs each | ratio | target |"
        )?;
        writeln!(f, "| --- | ---: | ---: | --- | ---: | ---: | ---: | --- |")?;
        writeln!(
            f,
            "| intake: contacts accepted (durable) | {} | PostgreSQL single-row commits, {RAW_CONNECTIONS} connections | {} | {intake_ratio:.2} | ≥ 1.00 {} |",
            self.intake,
            self.raw_commits,
            verdict(intake_ratio >= 1.0)
        )?;
        writeln!(
            f,
            "| end to end: submitted → stored on a case | {} | RabbitMQ publish (confirmed) → consume, quorum queue | {} | {end_to_end_ratio:.2} | ≥ 0.33 {} |",
            self.end_to_end,
            self.raw_broker,
            verdict(end_to_end_ratio >= 1.0 / 3.0)
        )?;
        write!(
            f,
            "| end to end's broker work alone (its ceiling here) | {} | the same | {} | {:.2} | |",
            self.broker_alone,
            self.raw_broker,
            ratio(&self.broker_alone, &self.raw_broker),
        )
    }
}

/// Runs one step of the bench: `step` returns the rate it measured.
async fn figure(items: usize, step: impl Future<Output = anyhow::Result<f64>>) -> anyhow::Result<Figure> {
    let (per_second, cpu_per_item) = testing::with_cpu_per_item(items, step).await;
    Ok(Figure {
        per_second: per_second?,
        cpu_per_item,
    })
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

async fn measure(
    database_url: &str,
    amqp_url: &str,
    contacts: usize,
    concurrency: usize,
) -> anyhow::Result<Report> {
    eprintln!("raw PostgreSQL commits ...");
    let raw_commits = figure(contacts, raw_postgres_commits(database_url, contacts)).await?;
    eprintln!("  {raw_commits} µs");

    eprintln!("raw RabbitMQ publish-confirm-consume ...");
    let raw_broker = figure(contacts, raw_rabbitmq(amqp_url, contacts)).await?;
    eprintln!("  {raw_broker} µs");

    eprintln!("RabbitMQ alone, end to end's messages ...");
    let broker_alone = figure(contacts, broker_alone(amqp_url, contacts)).await?;
    eprintln!("  {broker_alone} µs");

    let data_dir = tempfile_dir()?;
    let mut settings = crate::commands::settings(&GlobalOptions {
        data_dir: Some(data_dir.clone()),
        database_url: Some(database_url.to_owned()),
        amqp_url: Some(amqp_url.to_owned()),
        ..GlobalOptions::default()
    })?;
    settings.grpc_addr = "127.0.0.1:0".parse()?;
    settings.http_addr = "127.0.0.1:0".parse()?;
    let credentials = DevCredentials::apply_if_unconfigured(&mut settings)?
        .context("the bench runs with its own development credentials")?;
    let topology = Topology::random_for_test();
    let catalogue = Arc::new(app::load_catalogue(None)?);
    let partners = app::load_partners(None, &catalogue)?;
    let retention = app::load_retention(None)?;
    let start = |services| {
        let launch = Launch {
            settings: settings.clone(),
            services,
            topology: topology.clone(),
            catalogue: catalogue.clone(),
            bus: None,
            demo: Vec::new(),
            demo_agents: Vec::new(),
            demo_handle_time: crate::simulate::DEFAULT_HANDLE_TIME,
            // The spine's figures: intake to the case store.
            routing: None,
            partners: partners.clone(),
            retention: retention.clone(),
        };
        async move {
            let grpc = TcpListener::bind("127.0.0.1:0").await?;
            let http = TcpListener::bind("127.0.0.1:0").await?;
            app::start(launch, grpc, http, Shutdown::new()).await
        }
    };
    let intake = start(Services::Intake).await?;
    let key = credentials.intake_key.expose_secret().to_owned();

    eprintln!("intake: accepted contacts ...");
    let intake_figure = figure(contacts, submit(&intake, &key, contacts, concurrency, 0)).await?;
    eprintln!("  {intake_figure} µs");

    eprintln!("end to end: submitted → stored on a case ...");
    let cases = start(Services::Cases).await?;
    let store = PgCasesStore::connect(database_url).await?;
    // Let the case store catch up with the intake run before timing afresh.
    wait_for_contacts(&store, contacts as u64, Duration::from_secs(300)).await?;
    let end_to_end = figure(contacts, async {
        let started = Instant::now();
        submit(&intake, &key, contacts, concurrency, contacts).await?;
        wait_for_contacts(&store, 2 * contacts as u64, Duration::from_secs(600)).await?;
        Ok(contacts as f64 / started.elapsed().as_secs_f64())
    })
    .await?;
    eprintln!("  {end_to_end} µs");

    intake.stop().await?;
    cases.stop().await?;
    delete_topology(amqp_url, &topology).await;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(Report {
        raw_commits,
        intake: intake_figure,
        raw_broker,
        broker_alone,
        end_to_end,
    })
}

/// Submits `count` contacts over gRPC, `concurrency` at a time over a few
/// HTTP/2 connections; returns contacts accepted per second.
async fn submit(
    running: &Running,
    key: &str,
    count: usize,
    concurrency: usize,
    first: usize,
) -> anyhow::Result<f64> {
    let endpoint = format!("http://{}", running.grpc_addr);
    let mut clients = Vec::new();
    for _ in 0..4 {
        let channel = GrpcChannel::from_shared(endpoint.clone())?.connect().await?;
        clients.push(IntakeServiceClient::new(channel));
    }
    let bearer: MetadataValue<_> = format!("Bearer {key}").parse()?;
    let started = Instant::now();
    let results: Vec<Result<(), tonic::Status>> = stream::iter(first..first + count)
        .map(|number| {
            let mut client = clients[number % clients.len()].clone();
            let mut request = tonic::Request::new(bench_contact(number));
            request.metadata_mut().insert("authorization", bearer.clone());
            async move { client.submit_contact(request).await.map(|_| ()) }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    if let Some(Err(status)) = results.into_iter().find(Result::is_err) {
        bail!("a contact was refused: {status}");
    }
    Ok(count as f64 / elapsed.as_secs_f64())
}

/// Residents in Ofcom's drama range, several contacts each.
fn bench_contact(number: usize) -> SubmitContactRequest {
    let phone = format!("07700 900{:03}", number % 1_000);
    SubmitContactRequest {
        channel: Channel::Phone as i32,
        service: ["council-tax", "waste-collections", "housing-repairs"][number % 3].to_owned(),
        customer: Some(Customer {
            name: format!("Bench Resident {}", number % 1_000),
            phone: phone.clone(),
            ..Customer::default()
        }),
        summary: format!("benchmark contact {number}"),
        details: [("reason".to_owned(), "a question about a bill".to_owned())].into(),
        needs: Some(Needs {
            language: "en".to_owned(),
            ..Needs::default()
        }),
        idempotency_key: format!("bench-{number}"),
        origin: Some(Origin::Phone(PhoneOrigin {
            caller_number: phone,
            dialled_number: "01590 646111".to_owned(),
            call_id: String::new(),
        })),
    }
}

async fn wait_for_contacts(store: &PgCasesStore, expected: u64, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let stored = store.contact_count().await?;
        if stored >= expected {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {stored} of {expected} contacts reached the case store in {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Single-row INSERT commits from `RAW_CONNECTIONS` connections at once.
async fn raw_postgres_commits(database_url: &str, rows: usize) -> anyhow::Result<f64> {
    let pool = PgPoolOptions::new()
        .max_connections(RAW_CONNECTIONS as u32)
        .connect(database_url)
        .await?;
    pool.execute("CREATE TABLE bench_raw (id bigint PRIMARY KEY, body bytea NOT NULL)")
        .await?;
    let body = vec![b'x'; MESSAGE_BYTES];
    let started = Instant::now();
    let results: Vec<Result<_, sqlx::Error>> = stream::iter(0..rows as i64)
        .map(|id| {
            let pool = pool.clone();
            let body = body.clone();
            async move {
                sqlx::query("INSERT INTO bench_raw (id, body) VALUES ($1, $2)")
                    .bind(id)
                    .bind(body)
                    .execute(&pool)
                    .await
            }
        })
        .buffer_unordered(RAW_CONNECTIONS)
        .collect()
        .await;
    let elapsed = started.elapsed();
    for result in results {
        result?;
    }
    pool.close().await;
    Ok(rows as f64 / elapsed.as_secs_f64())
}

/// One publisher with confirms (persistent, mandatory, a window of messages
/// awaiting confirmation), one consumer acking, a quorum queue.
async fn raw_rabbitmq(amqp_url: &str, messages: usize) -> anyhow::Result<f64> {
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let publisher = connection.create_channel().await?;
    let consumer_channel = connection.create_channel().await?;
    publisher.confirm_select(ConfirmSelectOptions::default()).await?;
    let queue = format!("bench-raw-{:08x}", rand_suffix());
    declare_queue(&publisher, &queue, "quorum").await?;
    let mut consumer = consume(&consumer_channel, &queue).await?;
    let body = vec![b'x'; MESSAGE_BYTES];
    let started = Instant::now();
    let consuming = tokio::spawn(async move {
        let mut received = 0usize;
        while received < messages {
            let Some(delivery) = consumer.next().await else {
                break;
            };
            delivery?.ack(BasicAckOptions::default()).await?;
            received += 1;
        }
        anyhow::Ok(received)
    });
    let mut confirms = ConfirmWindow::default();
    for _ in 0..messages {
        confirms
            .push(publish(&publisher, "", &queue, &body).await?)
            .await?;
    }
    confirms.drain().await?;
    let received = consuming.await??;
    let elapsed = started.elapsed();
    if received != messages {
        bail!("the raw consumer received {received} of {messages} messages");
    }
    // The consumer goes first: deleting a queue under a live consumer makes
    // the broker cancel it, which the client does not expect mid-close.
    consumer_channel.close(200, "bench done".into()).await?;
    publisher
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await?;
    let _ = connection.close(200, "bench done".into()).await;
    Ok(messages as f64 / elapsed.as_secs_f64())
}

/// What RabbitMQ does for each contact of the end-to-end figure, with the
/// same client as the raw baseline and none of the services: a topic
/// exchange with the queues the bench's topology binds (the cases quorum
/// queue on `contact.#`, the analytics stream on `#`); each contact is
/// published with confirms as `contact.received` (into both), consumed and
/// acked from the quorum queue, and answered by a confirmed `case.opened`
/// (into the stream only). End to end does all of this and more on the same
/// cores, so this rate is its ceiling on the machine.
async fn broker_alone(amqp_url: &str, contacts: usize) -> anyhow::Result<f64> {
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let intake = connection.create_channel().await?;
    let cases = connection.create_channel().await?;
    let consumer_channel = connection.create_channel().await?;
    intake.confirm_select(ConfirmSelectOptions::default()).await?;
    cases.confirm_select(ConfirmSelectOptions::default()).await?;
    let suffix = format!("{:08x}", rand_suffix());
    let exchange = format!("bench-spine-{suffix}");
    let cases_queue = format!("bench-spine-cases-{suffix}");
    let analytics = format!("bench-spine-analytics-{suffix}");
    intake
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    for (queue, kind, pattern) in [(&cases_queue, "quorum", "contact.#"), (&analytics, "stream", "#")] {
        declare_queue(&intake, queue, kind).await?;
        intake
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                pattern.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    let mut consumer = consume(&consumer_channel, &cases_queue).await?;
    let body = vec![b'x'; MESSAGE_BYTES];
    let started = Instant::now();
    let consuming = tokio::spawn({
        let (exchange, body) = (exchange.clone(), body.clone());
        async move {
            let mut confirms = ConfirmWindow::default();
            let mut received = 0usize;
            while received < contacts {
                let Some(delivery) = consumer.next().await else {
                    break;
                };
                confirms
                    .push(publish(&cases, &exchange, "case.opened", &body).await?)
                    .await?;
                delivery?.ack(BasicAckOptions::default()).await?;
                received += 1;
            }
            confirms.drain().await?;
            anyhow::Ok(received)
        }
    });
    let mut confirms = ConfirmWindow::default();
    for _ in 0..contacts {
        confirms
            .push(publish(&intake, &exchange, "contact.received", &body).await?)
            .await?;
    }
    confirms.drain().await?;
    let received = consuming.await??;
    let elapsed = started.elapsed();
    if received != contacts {
        bail!("the cases side received {received} of {contacts} contacts");
    }
    consumer_channel.close(200, "bench done".into()).await?;
    for queue in [&cases_queue, &analytics] {
        intake
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await?;
    }
    intake
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await?;
    let _ = connection.close(200, "bench done".into()).await;
    Ok(contacts as f64 / elapsed.as_secs_f64())
}

/// A durable queue of `kind` (`quorum` or `stream`).
async fn declare_queue(channel: &AmqpChannel, queue: &str, kind: &str) -> anyhow::Result<()> {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), AMQPValue::LongString(kind.into()));
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        )
        .await?;
    Ok(())
}

async fn consume(channel: &AmqpChannel, queue: &str) -> anyhow::Result<lapin::Consumer> {
    channel.basic_qos(1_000, Default::default()).await?;
    Ok(channel
        .basic_consume(
            queue.into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?)
}

/// A persistent, mandatory publish; the confirm is the caller's to await.
async fn publish(
    channel: &AmqpChannel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
) -> anyhow::Result<PublisherConfirm> {
    Ok(channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await?)
}

/// Publisher confirms awaited a window at a time.
#[derive(Default)]
struct ConfirmWindow(Vec<PublisherConfirm>);

impl ConfirmWindow {
    async fn push(&mut self, confirm: PublisherConfirm) -> anyhow::Result<()> {
        self.0.push(confirm);
        if self.0.len() >= CONFIRM_WINDOW {
            self.drain().await?;
        }
        Ok(())
    }

    async fn drain(&mut self) -> anyhow::Result<()> {
        for confirm in self.0.drain(..) {
            confirm.await?;
        }
        Ok(())
    }
}

async fn delete_topology(amqp_url: &str, topology: &Topology) {
    if let Ok(bus) = switchboard_bus::RabbitBus::connect(amqp_url, topology.clone()).await {
        let _ = bus.delete_topology().await;
        bus.close().await;
    }
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id()
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("switchboard-bench-{:08x}", rand_suffix()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A database of the bench's own on the server, dropped at the end.
struct BenchDatabase {
    server: String,
    name: String,
    url: String,
}

impl BenchDatabase {
    async fn create(database_url: &str) -> anyhow::Result<BenchDatabase> {
        let server = database_url
            .rsplit_once('/')
            .map(|(server, _)| server.to_owned())
            .unwrap_or_default();
        let name = format!("switchboard_bench_{:08x}", rand_suffix());
        let mut admin = PgConnection::connect(&format!("{server}/postgres"))
            .await
            .with_context(|| format!("cannot reach PostgreSQL at {server}"))?;
        admin
            .execute(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .await?;
        Ok(BenchDatabase {
            url: format!("{server}/{name}"),
            server,
            name,
        })
    }

    async fn drop_database(&self) {
        if let Ok(mut admin) = PgConnection::connect(&format!("{}/postgres", self.server)).await {
            let _ = admin
                .execute(sqlx::AssertSqlSafe(format!(
                    r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#,
                    self.name
                )))
                .await;
        }
    }
}
