//! Assembling services into a running system.
//!
//! [`start`] is what `switchboard up` and `switchboard serve` run, and what the
//! end-to-end tests run with listeners on port 0. It picks the stores and the
//! bus from the settings (PostgreSQL and RabbitMQ when their URLs are given,
//! else SQLite files and the in-process bus), starts the chosen services on one
//! gRPC and one HTTP server, and returns a [`Running`] handle.
//!
//! With demo contacts in the [`Launch`], a process that runs intake submits
//! them through it once everything is started ([`crate::demo::submit_all`]);
//! with demo agents, a process that runs routing gives them their profiles
//! and simulates the desktops of the simulated ones ([`crate::simulate`]).
//!
//! Shutdown runs in the order that loses nothing: the servers stop taking new
//! calls and finish those in flight; intake's writer commits what it had
//! queued; the outbox relays and the consumer finish their round. What is still
//! in an outbox then is published at the next start.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use secrecy::ExposeSecret;
use switchboard_bus::{
    Bus, EventKey, InProcessBus, OutboxRelay, OutboxStore, QueueSpec, RabbitBus, Sealer, Topology,
};
use switchboard_cases::{CaseRules, CasesConsumer, CasesGrpc, CasesStore, PgCasesStore, SqliteCasesStore};
use switchboard_domain::{Catalogue, PartnerDirectory, RetentionSchedule, WorkingCalendar};
use switchboard_intake::{
    FormRateLimit, Intake, IntakeGrpc, IntakeMetrics, IntakeStore, PgIntakeStore, SqliteIntakeStore,
    WriterConfig, api_router, public_router,
};
use switchboard_proto::v1::SubmitContactRequest;
use switchboard_routing::RoutingConfig;
use switchboard_routing_service::{
    PgRoutingStore, Router, RouterSettings, Routers, RoutingConsumer, RoutingGrpc, RoutingStore,
    SqliteRoutingStore,
};
use switchboard_runtime::{GrpcServer, Health, Metrics, ServerLayers, Settings, Shutdown, http};
use tokio::{
    net::TcpListener,
    sync::Notify,
    task::{JoinHandle, JoinSet},
};

use crate::{
    demo::{self, DemoAgent, DemoLoaded},
    simulate::{self, Simulation},
};

/// Which services one process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Services {
    All,
    Intake,
    Routing,
    Cases,
}

impl Services {
    fn intake(self) -> bool {
        matches!(self, Services::All | Services::Intake)
    }

    fn routing(self) -> bool {
        matches!(self, Services::All | Services::Routing)
    }

    fn cases(self) -> bool {
        matches!(self, Services::All | Services::Cases)
    }

    /// `service.name` on the spans this process exports.
    pub fn telemetry_name(self) -> &'static str {
        match self {
            Services::All => "switchboard",
            Services::Intake => "switchboard-intake",
            Services::Routing => "switchboard-routing",
            Services::Cases => "switchboard-cases",
        }
    }
}

/// Everything [`start`] needs besides its listeners.
#[derive(Clone)]
pub struct Launch {
    /// Validated settings, with credentials and event keys already filled in
    /// (configured, or the data dir's development ones).
    pub settings: Settings,
    pub services: Services,
    /// Exchange and queue names; tests use a random prefix.
    pub topology: Topology,
    pub catalogue: Arc<Catalogue>,
    /// Shared by every service in the process, so the embedded mode has one
    /// bus. `None`: built from the settings.
    pub bus: Option<Arc<dyn Bus>>,
    /// Demo contacts (`switchboard up --demo`), already validated, submitted
    /// through intake after start-up. Empty for none; ignored by a process
    /// that does not run intake.
    pub demo: Vec<SubmitContactRequest>,
    /// The demo contact centre's agents (`switchboard up --demo`), already
    /// validated: each gets its profile after start-up, and each simulated
    /// one a desktop that takes contacts. Empty for none; ignored by a
    /// process that does not run routing.
    pub demo_agents: Vec<DemoAgent>,
    /// How long simulated agents hold a contact, on average.
    pub demo_handle_time: Duration,
    /// The routing configuration, already validated against the catalogue;
    /// `None` when the seeds dir has no `routing.toml`, which runs no routing.
    pub routing: Option<RoutingSource>,
    /// The partners residents may be signposted or referred to, already
    /// validated against the catalogue ([`load_partners`]).
    pub partners: PartnerDirectory,
    /// How long each category of personal data is kept ([`load_retention`]).
    pub retention: RetentionSchedule,
}

/// A validated routing configuration and where it came from.
#[derive(Debug, Clone)]
pub struct RoutingSource {
    pub toml: String,
    /// The file, re-read for changes while running; `None` for the built-in one.
    pub path: Option<PathBuf>,
}

/// A started system.
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub shutdown: Shutdown,
    pub bus: Arc<dyn Bus>,
    tasks: JoinSet<anyhow::Result<()>>,
    /// Intake's group-commit writer, awaited after the servers have stopped.
    intake_writer: Option<JoinHandle<()>>,
    /// Submitting the demo contacts. Not in `tasks`: a demo contact intake
    /// refuses is logged, it does not stop the system. It holds an `Intake`,
    /// so it must end before the writer can.
    demo_loading: Option<JoinHandle<DemoLoaded>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("grpc_addr", &self.grpc_addr)
            .field("http_addr", &self.http_addr)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Waits until the system stops (a signal, or [`Shutdown::trigger`]).
    /// The first task to fail stops the rest, and its error is returned.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            let outcome = joined
                .context("a service task panicked")
                .and_then(|result| result);
            if let Err(error) = outcome {
                tracing::error!(error.message = %format!("{error:#}"), "service task failed; stopping");
                self.shutdown.trigger();
                first_error.get_or_insert(error);
            }
        }
        // It stops at the shutdown signal; its last submission is committed
        // by the writer below.
        if let Some(loading) = self.demo_loading.take() {
            loading.await.context("demo loading panicked")?;
        }
        if let Some(writer) = self.intake_writer.take() {
            writer.await.context("intake writer panicked")?;
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Waits until the demo contacts have been submitted and says what that
    /// did; `None` when this process loads none (no demo data, or no intake),
    /// or when it has already been asked.
    pub async fn demo_loaded(&mut self) -> anyhow::Result<Option<DemoLoaded>> {
        match self.demo_loading.take() {
            Some(loading) => Ok(Some(loading.await.context("demo loading panicked")?)),
            None => Ok(None),
        }
    }

    /// Stops the system and waits until it has.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        self.wait().await
    }
}

/// The catalogue from `seeds_dir`, or the one built into the binary.
pub fn load_catalogue(seeds_dir: Option<&Path>) -> anyhow::Result<Catalogue> {
    let Some(dir) = seeds_dir else {
        return Catalogue::embedded().context("the built-in service catalogue is invalid");
    };
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    Catalogue::from_toml(&read("services.toml")?, &read("offices.toml")?)
        .with_context(|| format!("invalid seeds in {}", dir.display()))
}

/// The routing configuration from `seeds_dir` (its `routing.toml`; `None`
/// when it has none) or the one built into the binary, validated and checked
/// against `catalogue`: every queue's services exist and are offered on its
/// channel; and against `partners` (from [`load_partners`] on the same
/// `seeds_dir`): every partner it names is in the directory. Checked at every
/// start, so a mistake in a council's routing is named (file and key) the
/// first time it is deployed.
pub fn load_routing(
    seeds_dir: Option<&Path>,
    catalogue: &Catalogue,
    partners: &PartnerDirectory,
) -> anyhow::Result<Option<RoutingSource>> {
    let (file, source) = match seeds_dir {
        None => (
            "seeds/routing.toml (built in)".to_owned(),
            RoutingSource {
                toml: RoutingConfig::embedded_toml().to_owned(),
                path: None,
            },
        ),
        Some(dir) => {
            let path = dir.join("routing.toml");
            if !path.is_file() {
                return Ok(None);
            }
            let toml =
                std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            (
                path.display().to_string(),
                RoutingSource {
                    toml,
                    path: Some(path),
                },
            )
        }
    };
    check_routing(&source.toml, catalogue, partners, &partners_file(seeds_dir))
        .with_context(|| format!("invalid routing configuration in {file}"))?;
    Ok(Some(source))
}

/// The council's working days for case due dates: the bank holidays of the
/// routing configuration's `[calendar]`, or the built-in ones when this
/// installation routes nothing.
fn case_calendar(routing: Option<&RoutingSource>) -> anyhow::Result<WorkingCalendar> {
    match routing {
        Some(source) => WorkingCalendar::from_toml(&source.toml).context("the routing calendar is invalid"),
        None => WorkingCalendar::embedded().context("the built-in calendar is invalid"),
    }
}

/// Validates routing configuration text by its own rules, against the
/// catalogue, and against the partner directory read from `partners_file`.
fn check_routing(
    toml: &str,
    catalogue: &Catalogue,
    partners: &PartnerDirectory,
    partners_file: &str,
) -> anyhow::Result<RoutingConfig> {
    let config = RoutingConfig::parse(toml)?;
    config
        .check_catalogue(catalogue)
        .context("it does not match the service catalogue")?;
    check_routing_partners(&config, partners, partners_file)?;
    Ok(config)
}

/// The bus the settings ask for.
pub async fn connect_bus(settings: &Settings, topology: Topology) -> anyhow::Result<Arc<dyn Bus>> {
    Ok(match &settings.amqp_url {
        Some(url) => Arc::new(
            RabbitBus::connect(url.expose_secret(), topology)
                .await
                .context("cannot connect to RabbitMQ")?,
        ),
        None => Arc::new(InProcessBus::confirming_when_settled(topology)),
    })
}

fn sealer(settings: &Settings) -> anyhow::Result<Arc<Sealer>> {
    let keys = settings
        .event_keys
        .iter()
        .map(|key| EventKey::new(key.id.clone(), *key.key.expose_secret()))
        .collect();
    Ok(Arc::new(Sealer::new(keys).context("event_keys")?))
}

/// Starts the chosen services on the given listeners.
pub async fn start(
    launch: Launch,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<Running> {
    let Launch {
        settings,
        services,
        topology,
        catalogue,
        bus,
        demo,
        demo_agents,
        demo_handle_time,
        routing,
        partners,
        retention,
    } = launch;
    let grpc_addr = grpc_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    let bus = match bus {
        Some(bus) => bus,
        None => connect_bus(&settings, topology.clone()).await?,
    };
    // Every queue of this version's topology, whichever services this process
    // runs: an event published before its consumer ever started must still
    // wait in that consumer's queue, not only in the analytics stream.
    bus.ensure_queue(&QueueSpec::cases(&topology))
        .await
        .context("cannot declare the cases queue")?;
    if let Some(source) = &routing {
        // One queue per routing partition, declared by every process, so a
        // contact published before its router started waits for it.
        let config = RoutingConfig::parse(&source.toml).context("routing configuration")?;
        for partition in config.partitions() {
            let queue = QueueSpec::routing_partition(&topology, partition).context("routing partition")?;
            bus.ensure_queue(&queue)
                .await
                .with_context(|| format!("cannot declare the routing queue of partition {partition}"))?;
        }
    }
    let sealer = sealer(&settings)?;
    let metrics = Metrics::new();
    let layers = ServerLayers::from_settings(&settings, &metrics).context("auth")?;
    let health = Health::new(metrics.clone());
    {
        let bus = bus.clone();
        health.add_check_fn("broker", move || {
            let bus = bus.clone();
            async move { bus.check().await }
        });
    }

    let mut tasks = JoinSet::new();
    let mut grpc = GrpcServer::new(&health, &layers, settings.grpc_max_message_bytes)?;
    let mut http_routes = axum::Router::new();
    let mut intake_writer = None;
    let mut demo_intake = None;
    let mut routers = None;

    if services.intake() {
        let wake = Arc::new(Notify::new());
        let intake_metrics = IntakeMetrics::new();
        metrics.with_registry(|registry| intake_metrics.register(registry));
        // The store behind both traits: intake writes through one, its relay
        // reads the outbox through the other.
        let (intake_store, outbox, writer_config): (Arc<dyn IntakeStore>, Arc<dyn OutboxStore>, _) =
            match &settings.database_url {
                Some(url) => {
                    let store = Arc::new(
                        PgIntakeStore::connect(url.expose_secret())
                            .await
                            .context("intake store")?,
                    );
                    (store.clone(), store, WriterConfig::default())
                }
                None => {
                    let store = Arc::new(
                        SqliteIntakeStore::open(&settings.data_dir)
                            .await
                            .context("intake store")?,
                    );
                    (store.clone(), store, WriterConfig::for_sqlite())
                }
            };
        add_store_check(&health, "intake-store", intake_store.clone());
        let (intake, writer) = Intake::start(
            intake_store.clone(),
            catalogue.clone(),
            sealer.clone(),
            wake.clone(),
            writer_config,
            intake_metrics,
        );
        intake_writer = Some(writer);
        let relay = OutboxRelay::new(outbox, bus.clone(), wake);
        let relay_shutdown = shutdown.clone();
        tasks.spawn(async move {
            relay.run(relay_shutdown.wait_owned()).await;
            Ok(())
        });
        {
            let (retention, retention_shutdown) = (retention.clone(), shutdown.clone());
            tasks.spawn(async move {
                switchboard_intake::run_retention(intake_store, retention, retention_shutdown.wait_owned())
                    .await;
                Ok(())
            });
        }
        health.track_grpc_service("switchboard.v1.IntakeService").await;
        if !demo.is_empty() {
            demo_intake = Some(intake.clone());
        }
        grpc = grpc.add_service(IntakeGrpc::new(intake.clone()).into_server());
        http_routes = http_routes
            .merge(api_router(intake.clone()))
            .merge(public_router(intake, FormRateLimit::default()));
    }

    if services.cases() {
        let rules = CaseRules::new(
            &catalogue,
            case_calendar(routing.as_ref())?,
            settings.case_follow_up_days,
        )
        .with_partners(partners.clone());
        let store: Arc<dyn CasesStore> = match &settings.database_url {
            Some(url) => Arc::new(
                PgCasesStore::connect(url.expose_secret())
                    .await
                    .context("case store")?
                    .with_rules(rules),
            ),
            None => Arc::new(
                SqliteCasesStore::open(&settings.data_dir)
                    .await
                    .context("case store")?
                    .with_rules(rules),
            ),
        };
        {
            let store = store.clone();
            health.add_check_fn("case-store", move || {
                let store = store.clone();
                async move { store.check().await }
            });
        }
        let consumer = CasesConsumer::new(store.clone(), sealer.clone(), bus.clone(), &topology);
        let consumer_shutdown = shutdown.clone();
        tasks.spawn(async move {
            consumer
                .run(consumer_shutdown.wait_owned())
                .await
                .context("cases consumer")
        });
        {
            let (store, retention, retention_shutdown) = (store.clone(), retention.clone(), shutdown.clone());
            tasks.spawn(async move {
                switchboard_cases::run_retention(store, retention, retention_shutdown.wait_owned()).await;
                Ok(())
            });
        }
        health.track_grpc_service("switchboard.v1.CaseService").await;
        grpc = grpc.add_service(CasesGrpc::new(store).into_server());
    }

    if services.routing() {
        match &routing {
            Some(source) => {
                let (with_routing, started) = start_routing(
                    source.clone(),
                    services,
                    &settings,
                    &catalogue,
                    &partners,
                    &topology,
                    &bus,
                    &health,
                    &shutdown,
                    &mut tasks,
                    grpc,
                )
                .await?;
                grpc = with_routing;
                routers = Some(started);
            }
            None => tracing::warn!(
                "no routing configuration (routing.toml) in the seeds dir: routing is not running"
            ),
        }
    }

    {
        let health = health.clone();
        let health_shutdown = shutdown.clone();
        tasks.spawn(async move {
            health.run(health_shutdown).await;
            Ok(())
        });
    }
    let http_router = http::protect(http_routes.merge(health.router()), &layers);
    let http_shutdown = shutdown.clone();
    tasks.spawn(async move {
        http::serve(http_listener, http_router, http_shutdown.wait_owned())
            .await
            .context("http server")
    });
    let grpc_shutdown = shutdown.clone();
    tasks.spawn(async move {
        grpc.serve(grpc_listener, grpc_shutdown.wait_owned())
            .await
            .context("grpc server")
    });
    // Last, once everything above is running; on its own task so start-up
    // does not wait for it.
    let demo_loading =
        demo_intake.map(|intake| tokio::spawn(demo::submit_all(intake, demo, shutdown.clone())));
    if !demo_agents.is_empty() {
        match (routers, &routing) {
            (Some(routers), Some(source)) => {
                // Already validated at load, so only a broken build fails here.
                let partners = RoutingConfig::parse(&source.toml)
                    .map(|config| config.partners.into_keys().collect())
                    .unwrap_or_default();
                let simulation = Simulation {
                    grpc_addr,
                    agents: demo_agents,
                    handle_time: demo_handle_time,
                    partners,
                    jwt: settings.auth.jwt.clone(),
                };
                let simulation_shutdown = shutdown.clone();
                tasks.spawn(async move {
                    simulate::run(routers, simulation, simulation_shutdown).await;
                    Ok(())
                });
            }
            _ => tracing::warn!(
                agents = demo_agents.len(),
                "demo agents need routing, which this process does not run; they are left out"
            ),
        }
    }

    Ok(Running {
        grpc_addr,
        http_addr,
        shutdown,
        bus,
        tasks,
        intake_writer,
        demo_loading,
    })
}

/// Starts the routing service: its store, a router and a single-active-consumer
/// loop for each partition of the configuration, the configuration file watch
/// and the three gRPC services. Answers the server with those services, and
/// the routers.
#[allow(clippy::too_many_arguments)]
async fn start_routing(
    source: RoutingSource,
    services: Services,
    settings: &Settings,
    catalogue: &Arc<Catalogue>,
    partners: &PartnerDirectory,
    topology: &Topology,
    bus: &Arc<dyn Bus>,
    health: &Health,
    shutdown: &Shutdown,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    grpc: GrpcServer,
) -> anyhow::Result<(GrpcServer, Arc<Routers>)> {
    let store: Arc<dyn RoutingStore> = match &settings.database_url {
        Some(url) => Arc::new(
            PgRoutingStore::connect(url.expose_secret())
                .await
                .context("routing store")?,
        ),
        None => Arc::new(
            SqliteRoutingStore::open(&settings.data_dir)
                .await
                .context("routing store")?,
        ),
    };
    {
        let store = store.clone();
        health.add_check_fn("routing-store", move || {
            let store = store.clone();
            async move { store.check().await }
        });
    }
    let config = RoutingConfig::parse(&source.toml).context("routing configuration")?;
    let owner = format!(
        "{}:{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_owned()),
        std::process::id()
    );
    let mut routers = Vec::new();
    let partners_file = partners_file(settings.seeds_dir.as_deref());
    for partition in config.partitions() {
        let check_catalogue = catalogue.clone();
        let check_partners = partners.clone();
        let check_partners_file = partners_file.clone();
        let wake = Arc::new(Notify::new());
        let router = Router::new(
            RouterSettings {
                partition: partition.to_owned(),
                owner: owner.clone(),
                config_toml: source.toml.clone(),
                config_check: Arc::new(move |config: &RoutingConfig| {
                    config
                        .check_catalogue(&check_catalogue)
                        .map_err(|error| error.to_string())?;
                    check_routing_partners(config, &check_partners, &check_partners_file)
                        .map_err(|error| error.to_string())
                }),
            },
            store.clone(),
            wake.clone(),
        );
        if settings.amqp_url.is_none() {
            // The in-process bus has one consumer per queue, this process's:
            // it owns the partition from the start, so agents and channels
            // are served from the first call rather than after the first
            // heartbeat.
            router.take_over().await.context("routing take-over")?;
        }
        let queue = QueueSpec::routing_partition(topology, partition).context("routing partition")?;
        let consumer = RoutingConsumer::new(router.clone(), store.clone(), bus.clone(), queue, wake);
        let consumer_shutdown = shutdown.clone();
        tasks.spawn(async move {
            consumer
                .run(consumer_shutdown.wait_owned())
                .await
                .context("routing consumer")
        });
        routers.push(router);
    }
    let routers = Arc::new(Routers::new(routers, store));
    if services == Services::Routing {
        // A router process that routes no partition now is not ready, so load
        // balancers send agent desktops and supervisors to one that does.
        // (In `up`, the process also runs intake and cases, which a standby
        // serves.)
        let routers = routers.clone();
        health.add_check_fn("routing-partition", move || {
            let active = routers.any_active();
            async move {
                if active {
                    Ok(())
                } else {
                    Err("standing by: other processes route every partition")
                }
            }
        });
    }
    if let Some(path) = source.path {
        let watch_routers = routers.clone();
        let watch_shutdown = shutdown.clone();
        let catalogue = catalogue.clone();
        let partners = partners.clone();
        tasks.spawn(async move {
            watch_routing_file(
                path,
                source.toml,
                catalogue,
                partners,
                watch_routers,
                watch_shutdown,
            )
            .await;
            Ok(())
        });
    }
    for service in [
        "switchboard.v1.AgentService",
        "switchboard.v1.SupervisorService",
        "switchboard.v1.QueueService",
    ] {
        health.track_grpc_service(service).await;
    }
    let routing = RoutingGrpc::new(routers.clone());
    let grpc = grpc
        .add_service(routing.agent_server())
        .add_service(routing.supervisor_server())
        .add_service(routing.queue_server());
    Ok((grpc, routers))
}

/// How often a running router looks at its routing.toml for changes.
const ROUTING_FILE_CHECK: Duration = Duration::from_secs(2);

/// Re-reads the routing configuration file while running and applies each
/// change that validates; one that does not is logged with the key named,
/// and the configuration in force stays.
async fn watch_routing_file(
    path: PathBuf,
    mut applied: String,
    catalogue: Arc<Catalogue>,
    partners: PartnerDirectory,
    routers: Arc<Routers>,
    shutdown: Shutdown,
) {
    // The directory was read from the routing file's seeds dir at start.
    let partners_file = partners_file(path.parent());
    let mut refused: Option<String> = None;
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(ROUTING_FILE_CHECK) => {}
        }
        let Ok(text) = tokio::fs::read_to_string(&path).await else {
            continue;
        };
        if text == applied || refused.as_deref() == Some(text.as_str()) {
            continue;
        }
        if let Err(error) = check_routing(&text, &catalogue, &partners, &partners_file) {
            tracing::warn!(file = %path.display(), error.message = %format!("{error:#}"), "routing configuration not reloaded: it does not validate");
            refused = Some(text);
            continue;
        }
        match routers.reconfigure(&text).await {
            Ok(_) => {
                tracing::info!(file = %path.display(), "routing configuration reloaded");
                applied = text;
                refused = None;
            }
            // Queues added or removed while contacts are routed: tried again
            // at the next check, so it applies once the partition is quiet.
            Err(error) => {
                tracing::info!(file = %path.display(), error.message = %error, "routing configuration change waits");
            }
        }
    }
}

fn add_store_check<S: IntakeStore + ?Sized>(health: &Health, name: &str, store: Arc<S>) {
    health.add_check_fn(name, move || {
        let store = store.clone();
        async move { store.ping().await }
    });
}

/// The partner directory's file in a seeds dir.
const PARTNERS_FILE: &str = "partners.toml";

/// The partner directory from `seeds_dir` (its `partners.toml`; an empty
/// directory when it has none) or the one built into the binary, checked
/// against `catalogue`: every service a partner names exists.
pub fn load_partners(seeds_dir: Option<&Path>, catalogue: &Catalogue) -> anyhow::Result<PartnerDirectory> {
    let Some(dir) = seeds_dir else {
        return PartnerDirectory::embedded(catalogue).context("the built-in partner directory is invalid");
    };
    let path = dir.join(PARTNERS_FILE);
    if !path.is_file() {
        tracing::info!(
            seeds_dir = %dir.display(),
            "no partners.toml in the seeds dir: the partner directory is empty, so no signposts or referrals can be recorded"
        );
        return Ok(PartnerDirectory::empty());
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    PartnerDirectory::from_toml(&text, catalogue)
        .with_context(|| format!("invalid partner directory in {}", path.display()))
}

/// The retention schedule's file in a seeds dir.
const RETENTION_FILE: &str = "retention.toml";

/// The retention schedule from `seeds_dir` (its `retention.toml`; the one
/// built into the binary when it has none, so a schedule always applies).
pub fn load_retention(seeds_dir: Option<&Path>) -> anyhow::Result<RetentionSchedule> {
    let embedded = || RetentionSchedule::embedded().context("the built-in retention schedule is invalid");
    let Some(dir) = seeds_dir else {
        return embedded();
    };
    let path = dir.join(RETENTION_FILE);
    if !path.is_file() {
        // The schedule removes data: say which one applies.
        tracing::info!(
            seeds_dir = %dir.display(),
            "no retention.toml in the seeds dir: the built-in retention schedule applies"
        );
        return embedded();
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    RetentionSchedule::from_toml(&text)
        .with_context(|| format!("invalid retention schedule in {}", path.display()))
}

/// Where the partner directory of `seeds_dir` is read from, for messages.
fn partners_file(seeds_dir: Option<&Path>) -> String {
    match seeds_dir {
        Some(dir) => dir.join(PARTNERS_FILE).display().to_string(),
        None => format!("seeds/{PARTNERS_FILE} (built in)"),
    }
}

/// Every partner the routing configuration signposts to must be in the
/// directory, so what routing tells a resident and what a case records name
/// the same organisations. An empty directory (a seeds dir without
/// partners.toml) checks nothing: routing's `[partners]` then stand alone, as
/// they did before the directory existed.
fn check_routing_partners(
    config: &RoutingConfig,
    partners: &PartnerDirectory,
    partners_file: &str,
) -> anyhow::Result<()> {
    if partners.is_empty() {
        return Ok(());
    }
    match config.partners.keys().find(|id| partners.get(id).is_none()) {
        Some(id) => {
            anyhow::bail!("partners.{id}: \"{id}\" is not in the partner directory ({partners_file})")
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeds dir holding the repo's services and offices, and `routing`
    /// as its routing.toml when given.
    fn seeds_dir(routing: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../seeds");
        for name in ["services.toml", "offices.toml"] {
            std::fs::copy(seeds.join(name), dir.path().join(name)).expect("copy seed");
        }
        if let Some(routing) = routing {
            std::fs::write(dir.path().join("routing.toml"), routing).expect("write routing.toml");
        }
        dir
    }

    #[test]
    fn the_built_in_routing_matches_the_built_in_catalogue() {
        let catalogue = load_catalogue(None).expect("catalogue");
        let partners = load_partners(None, &catalogue).expect("partners");
        assert!(!partners.is_empty());
        let routing = load_routing(None, &catalogue, &partners)
            .expect("valid")
            .expect("built in");
        let config = RoutingConfig::parse(&routing.toml).expect("parses");
        assert!(config.queue("council-tax-phone").is_some());
        assert!(routing.path.is_none());
    }

    #[test]
    fn a_seeds_dir_without_routing_has_none_and_a_broken_one_is_named() {
        let dir = seeds_dir(None);
        let catalogue = load_catalogue(Some(dir.path())).expect("catalogue");
        assert!(
            load_routing(Some(dir.path()), &catalogue, &PartnerDirectory::empty())
                .expect("no file is fine")
                .is_none()
        );

        let built_in =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../seeds/routing.toml"))
                .expect("seeds/routing.toml");
        let unknown_service = built_in.replacen("\"council-tax\"", "\"dog-grooming\"", 1);
        assert_ne!(unknown_service, built_in, "the seeds route council-tax");
        let dir = seeds_dir(Some(&unknown_service));
        let error = load_routing(Some(dir.path()), &catalogue, &PartnerDirectory::empty())
            .expect_err("unknown service");
        let message = format!("{error:#}");
        assert!(message.contains("routing.toml"), "{message}");
        assert!(message.contains("dog-grooming"), "{message}");

        let dir = seeds_dir(Some("[engine]\nnamed_agent_wait_seconds = \"soon\"\n"));
        let error =
            load_routing(Some(dir.path()), &catalogue, &PartnerDirectory::empty()).expect_err("bad value");
        let message = format!("{error:#}");
        assert!(message.contains("routing.toml"), "{message}");
        assert!(message.contains("named_agent_wait_seconds"), "{message}");
    }

    fn built_in_routing() -> String {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../seeds/routing.toml"))
            .expect("seeds/routing.toml")
    }

    #[test]
    fn a_partner_routing_names_must_be_in_the_seeds_dir_directory() {
        let routing = format!(
            "{}\n[partners.nowhere-food-bank]\nname = \"Nowhere food bank\"\n",
            built_in_routing()
        );
        let dir = seeds_dir(Some(&routing));
        let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../seeds");
        std::fs::copy(seeds.join("partners.toml"), dir.path().join("partners.toml")).expect("copy partners");
        let catalogue = load_catalogue(Some(dir.path())).expect("catalogue");
        let partners = load_partners(Some(dir.path()), &catalogue).expect("partners");
        assert!(partners.get("shelter").is_some());
        let error = load_routing(Some(dir.path()), &catalogue, &partners).expect_err("unknown partner");
        let message = format!("{error:#}");
        assert!(message.contains("partners.nowhere-food-bank"), "{message}");
        assert!(message.contains("routing.toml"), "{message}");
        assert!(
            message.contains(&dir.path().join("partners.toml").display().to_string()),
            "{message}"
        );
        // A changed routing file is checked the same way.
        let partners_file = dir.path().join("partners.toml").display().to_string();
        assert!(check_routing(&routing, &catalogue, &partners, &partners_file).is_err());
        assert!(check_routing(&built_in_routing(), &catalogue, &partners, &partners_file).is_ok());
    }

    #[test]
    fn a_seeds_dir_without_partners_has_an_empty_directory_and_a_broken_one_is_named() {
        let dir = seeds_dir(Some(&built_in_routing()));
        let catalogue = load_catalogue(Some(dir.path())).expect("catalogue");
        let partners = load_partners(Some(dir.path()), &catalogue).expect("no file is fine");
        assert!(partners.is_empty());
        // Routing's own partners stand when there is no directory to check them against.
        assert!(
            load_routing(Some(dir.path()), &catalogue, &partners)
                .expect("valid")
                .is_some()
        );

        std::fs::write(
            dir.path().join("partners.toml"),
            "[[partners]]\nid = \"Not A Slug\"\n",
        )
        .expect("write partners.toml");
        let error = load_partners(Some(dir.path()), &catalogue).expect_err("invalid");
        let message = format!("{error:#}");
        assert!(message.contains("partners.toml"), "{message}");
    }
}
