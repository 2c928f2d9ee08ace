//! Command-line flags. Every flag has a `SWITCHBOARD_*` environment variable;
//! flags win over the environment, which wins over the config file, which wins
//! over the defaults (see `switchboard_runtime::config`).

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Omnichannel customer-contact router for councils"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args, Default)]
pub struct GlobalOptions {
    /// A TOML config file (see deploy/switchboard.example.toml).
    #[arg(long, env = "SWITCHBOARD_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address the gRPC server listens on.
    #[arg(long, env = "SWITCHBOARD_GRPC_ADDR", global = true)]
    pub grpc_addr: Option<SocketAddr>,
    /// Address the HTTP server (JSON API, web forms, health, metrics) listens on.
    #[arg(long, env = "SWITCHBOARD_HTTP_ADDR", global = true)]
    pub http_addr: Option<SocketAddr>,
    /// Folder for embedded databases and development credentials.
    #[arg(long, env = "SWITCHBOARD_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL; without it `up` uses SQLite in the data dir.
    #[arg(long, env = "SWITCHBOARD_DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// RabbitMQ URL; without it `up` uses the in-process bus.
    #[arg(long, env = "SWITCHBOARD_AMQP_URL", global = true, hide_env_values = true)]
    pub amqp_url: Option<String>,
    /// Folder with services.toml, offices.toml and (optionally) demo.toml;
    /// without it the built-in seeds.
    #[arg(long, env = "SWITCHBOARD_SEEDS_DIR", global = true)]
    pub seeds_dir: Option<PathBuf>,
    /// Prefix for exchange and queue names, so several installations (or test
    /// runs) can share one RabbitMQ virtual host.
    #[arg(long, env = "SWITCHBOARD_AMQP_PREFIX", global = true, default_value = "")]
    pub amqp_prefix: String,
    /// `up` only: submit the demo residents' contacts (demo.toml from the
    /// seeds) through intake at start. Each has a fixed idempotency key, so
    /// starting again stores nothing twice.
    // Declared with the global options, as `Command::Up` has no arguments of
    // its own; `serve` refuses it rather than ignoring it.
    // Boolish, so SWITCHBOARD_DEMO=1 (or yes, on) works as people write it.
    #[arg(
        long,
        env = "SWITCHBOARD_DEMO",
        global = true,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub demo: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every service in one process (embedded by default).
    Up,
    /// Run one service against PostgreSQL and RabbitMQ.
    Serve {
        #[arg(value_enum)]
        service: ServiceName,
    },
    /// Create or upgrade every service's tables, then exit.
    Migrate,
    /// Submit a contact to intake over gRPC (credentials from SWITCHBOARD_INTAKE_KEY).
    Submit(Box<SubmitArgs>),
    /// Measure intake and end-to-end throughput beside raw PostgreSQL and RabbitMQ.
    Bench(BenchArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServiceName {
    Intake,
    Routing,
    Cases,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChannelArg {
    Phone,
    Web,
    FaceToFace,
    Email,
    Letter,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Intake's gRPC endpoint.
    #[arg(long, env = "SWITCHBOARD_ENDPOINT", default_value = "http://127.0.0.1:50051")]
    pub endpoint: String,
    /// The intake client's API key.
    #[arg(long, env = "SWITCHBOARD_INTAKE_KEY", hide_env_values = true)]
    pub key: Option<String>,
    #[arg(long, value_enum)]
    pub channel: ChannelArg,
    /// Service id from the catalogue, e.g. council-tax.
    #[arg(long)]
    pub service: String,
    #[arg(long, default_value = "")]
    pub summary: String,
    #[arg(long, default_value = "")]
    pub name: String,
    #[arg(long, default_value = "")]
    pub phone: String,
    #[arg(long, default_value = "")]
    pub email: String,
    #[arg(long, default_value = "")]
    pub postcode: String,
    /// A form field or call note, as key=value; repeatable.
    #[arg(long = "detail", value_parser = parse_key_value)]
    pub details: Vec<(String, String)>,
    /// Preferred language (BCP 47), e.g. cy or pl.
    #[arg(long, default_value = "")]
    pub language: String,
    #[arg(long)]
    pub bsl: bool,
    /// Face-to-face: the office id; phone: the caller's number is --phone.
    #[arg(long, default_value = "")]
    pub office: String,
    #[arg(long, default_value = "")]
    pub desk: String,
    /// Web: the form id.
    #[arg(long, default_value = "")]
    pub form: String,
    /// Phone: the council number dialled.
    #[arg(long, default_value = "")]
    pub dialled: String,
    #[arg(long, default_value = "")]
    pub idempotency_key: String,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Contacts per measurement.
    #[arg(long, default_value_t = 20_000)]
    pub contacts: usize,
    /// Concurrent submitters.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("expected key=value, got `{text}`"))
}
