//! `up`, `serve` and `migrate`: from flags to a running (or migrated) system.

use std::{net::SocketAddr, sync::Arc};

use anyhow::{Context, bail};
use secrecy::ExposeSecret;
use switchboard_bus::Topology;
use switchboard_cases::{PgCasesStore, SqliteCasesStore};
use switchboard_intake::{PgIntakeStore, SqliteIntakeStore};
use switchboard_routing::RoutingConfig;
use switchboard_runtime::{DevCredentials, Settings, Shutdown, config::Options, telemetry};
use tokio::net::TcpListener;

use crate::{
    app::{self, Launch, Services},
    cli::{GlobalOptions, ServiceName},
    demo::{self, DemoData},
    simulate,
};

/// Settings from every layer, the flags on top.
pub fn settings(global: &GlobalOptions) -> anyhow::Result<Settings> {
    let flags = Options {
        grpc_addr: global.grpc_addr.map(|address| address.to_string()),
        http_addr: global.http_addr.map(|address| address.to_string()),
        data_dir: global.data_dir.clone(),
        database_url: global.database_url.clone(),
        amqp_url: global.amqp_url.clone(),
        seeds_dir: global.seeds_dir.clone(),
        ..Options::default()
    };
    Ok(Settings::load(global.config.as_deref(), flags)?)
}

/// `switchboard up`: every service in one process.
pub async fn up(global: &GlobalOptions) -> anyhow::Result<()> {
    run(global, Services::All).await
}

/// `switchboard serve <service>`: one service against PostgreSQL and RabbitMQ.
pub async fn serve(global: &GlobalOptions, service: ServiceName) -> anyhow::Result<()> {
    let services = match service {
        ServiceName::Intake => Services::Intake,
        ServiceName::Routing => Services::Routing,
        ServiceName::Cases => Services::Cases,
    };
    run(global, services).await
}

async fn run(global: &GlobalOptions, services: Services) -> anyhow::Result<()> {
    let mut settings = settings(global)?;
    let _telemetry = telemetry::init(&settings.telemetry(services.telemetry_name()))?;
    if global.demo && services != Services::All {
        bail!(
            "demo: demo data is loaded by `switchboard up` only; unset --demo (SWITCHBOARD_DEMO) for `serve`"
        );
    }
    if services != Services::All && (settings.database_url.is_none() || settings.amqp_url.is_none()) {
        bail!(
            "`serve` runs one service per process against PostgreSQL and RabbitMQ: set --database-url \
             (SWITCHBOARD_DATABASE_URL) and --amqp-url (SWITCHBOARD_AMQP_URL), or use `switchboard up`"
        );
    }
    let dev_credentials = DevCredentials::apply_if_unconfigured(&mut settings)?;
    let catalogue = Arc::new(app::load_catalogue(settings.seeds_dir.as_deref())?);
    let partners = app::load_partners(settings.seeds_dir.as_deref(), &catalogue)?;
    let retention = app::load_retention(settings.seeds_dir.as_deref())?;
    let routing = app::load_routing(settings.seeds_dir.as_deref(), &catalogue, &partners)?;
    if routing.is_none() {
        tracing::info!("no routing.toml in the seeds dir: routing is not running");
    }
    // Read and validated before anything starts, so a mistake in demo.toml
    // stops start-up with the contact or agent and the field named.
    let demo = if global.demo {
        let routing_config = routing
            .as_ref()
            .map(|source| RoutingConfig::parse(&source.toml))
            .transpose()
            .context("the routing configuration no longer parses")?;
        demo::load(settings.seeds_dir.as_deref(), &catalogue, routing_config.as_ref())?
    } else {
        DemoData::default()
    };
    let welcome = Welcome::new(&demo, routing.is_some());
    let grpc_listener = bind(settings.grpc_addr, "grpc_addr").await?;
    let http_listener = bind(settings.http_addr, "http_addr").await?;
    let shutdown = Shutdown::on_signals();
    let launch = Launch {
        settings: settings.clone(),
        services,
        topology: Topology::new(&global.amqp_prefix),
        catalogue,
        bus: None,
        demo: demo.contacts,
        demo_agents: demo.agents,
        demo_handle_time: simulate::DEFAULT_HANDLE_TIME,
        routing,
        partners,
        retention,
    };
    let running = app::start(launch, grpc_listener, http_listener, shutdown).await?;
    print_welcome(&settings, &running, dev_credentials.as_ref(), &welcome);
    running.wait().await
}

async fn bind(address: SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("{key}: cannot listen on {address}"))
}

/// What the welcome banner says about the demo.
struct Welcome {
    demo_contacts: usize,
    /// Zero when routing is not running: nobody is simulated then.
    simulated_agents: usize,
    /// Whether the demo gives the development agent token's subject a
    /// profile (and routing runs), so a developer can take contacts.
    dev_agent: bool,
}

impl Welcome {
    fn new(demo: &DemoData, routing: bool) -> Welcome {
        Welcome {
            demo_contacts: demo.contacts.len(),
            simulated_agents: if routing {
                demo.agents.iter().filter(|agent| agent.simulated).count()
            } else {
                0
            },
            dev_agent: routing
                && demo
                    .agents
                    .iter()
                    .any(|agent| !agent.simulated && agent.subject == DEV_AGENT_SUBJECT),
        }
    }
}

/// The subject of the development credentials' agent token.
const DEV_AGENT_SUBJECT: &str = "dev-agent";

fn print_welcome(
    settings: &Settings,
    running: &app::Running,
    dev: Option<&DevCredentials>,
    welcome: &Welcome,
) {
    let mode = match (&settings.database_url, &settings.amqp_url) {
        (None, None) => format!(
            "embedded (SQLite and in-process bus in {})",
            settings.data_dir.display()
        ),
        (Some(_), Some(_)) => "distributed (PostgreSQL and RabbitMQ)".to_owned(),
        (Some(_), None) => "PostgreSQL with the in-process bus".to_owned(),
        (None, Some(_)) => "SQLite with RabbitMQ".to_owned(),
    };
    eprintln!("switchboard is up, {mode}");
    eprintln!(
        "  gRPC  {}  (reflection and grpc.health.v1 enabled)",
        running.grpc_addr
    );
    eprintln!(
        "  HTTP  http://{}  (POST /v1/contacts, /forms/contact, /healthz, /readyz, /metrics)",
        running.http_addr
    );
    let demo_contacts = welcome.demo_contacts;
    if demo_contacts > 0 {
        eprintln!(
            "demo data: {demo_contacts} contacts from fictional residents, submitted through intake now \
             (already stored ones are not stored again)"
        );
    }
    if welcome.simulated_agents > 0 {
        eprintln!(
            "demo agents: {} simulated agents sign in and take contacts (about {} s each); \
             queues keep their opening hours, web forms are taken at any hour",
            welcome.simulated_agents,
            simulate::DEFAULT_HANDLE_TIME.as_secs()
        );
    }
    if let Some(dev) = dev {
        eprintln!("development credentials: {}", dev.env_path.display());
        eprintln!(
            "  load them into a shell with:  set -a; . {}; set +a",
            dev.env_path.display()
        );
        eprintln!(
            "  then try:  switchboard submit --channel phone --service council-tax --phone '07700 900123' --summary 'a question about my bill'"
        );
        if welcome.dev_agent {
            eprintln!(
                "  take contacts yourself as {DEV_AGENT_SUBJECT} (SWITCHBOARD_AGENT_TOKEN), beside the simulated agents:"
            );
            eprintln!(
                "    grpcurl -plaintext -H \"authorization: Bearer $SWITCHBOARD_AGENT_TOKEN\" {} switchboard.v1.AgentService/SignIn",
                running.grpc_addr
            );
            eprintln!(
                "    then StreamUpdates for offers, AcceptOffer, EndContact and CompleteContact (proto/switchboard/v1/routing.proto)"
            );
        }
    }
    eprintln!("stop with Ctrl-C (finishes what is in flight first)");
}

/// `switchboard migrate`: every service's tables, created or upgraded.
pub async fn migrate(global: &GlobalOptions) -> anyhow::Result<()> {
    let settings = settings(global)?;
    let _telemetry = telemetry::init(&settings.telemetry("switchboard"))?;
    match &settings.database_url {
        Some(url) => {
            PgIntakeStore::connect(url.expose_secret())
                .await
                .context("intake")?;
            PgCasesStore::connect(url.expose_secret())
                .await
                .context("cases")?;
            eprintln!("migrated intake and cases in PostgreSQL");
        }
        None => {
            SqliteIntakeStore::open(&settings.data_dir)
                .await
                .context("intake")?;
            SqliteCasesStore::open(&settings.data_dir)
                .await
                .context("cases")?;
            eprintln!("migrated intake and cases in {}", settings.data_dir.display());
        }
    }
    Ok(())
}
