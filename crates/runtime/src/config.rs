//! Typed, layered settings, validated once at start.
//!
//! Layers, each overriding the one before:
//!
//! 1. defaults ([`Options::defaults`]);
//! 2. the TOML file named by `--config` or `SWITCHBOARD_CONFIG`
//!    (`deploy/switchboard.example.toml` documents every key);
//! 3. `SWITCHBOARD_*` environment variables, `__` separating nested keys
//!    (`SWITCHBOARD_AUTH__JWT__ISSUER`);
//! 4. the flags the binary parsed, passed in as [`Options`] or any figment
//!    [`Provider`].
//!
//! Values are first read as written ([`RawSettings`]: strings where a parse
//! can fail) and then validated into [`Settings`], so every error names the
//! failing key the way the TOML file spells it (`grpc_addr: invalid socket
//! address`, `event_keys[0].key: must be 32 bytes`) and never echoes the
//! value, which may be a secret.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use base64::Engine as _;
use figment::{
    Figment, Metadata, Profile, Provider,
    providers::{Env, Format, Serialized, Toml},
    value::{Dict, Map},
};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::{Deserialize, Serialize};

use crate::{
    auth::Role,
    error::{RuntimeError, RuntimeResult},
    telemetry::TelemetryConfig,
};

/// Prefix of every environment variable read as a setting.
pub const ENV_PREFIX: &str = "SWITCHBOARD_";
/// Environment variable naming the TOML config file when `--config` is not given.
pub const CONFIG_FILE_ENV: &str = "SWITCHBOARD_CONFIG";

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50051";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./var";
/// tonic's own per-service decoding limit; [`Settings::grpc_max_message_bytes`]
/// may lower it but not raise it, since generated servers would still refuse
/// anything larger.
pub const MAX_GRPC_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
pub const DEFAULT_GRPC_MAX_MESSAGE_BYTES: usize = MAX_GRPC_MESSAGE_BYTES;
const MIN_GRPC_MESSAGE_BYTES: usize = 1024;
/// RFC 7518 §3.2: an HMAC key must be at least as long as the hash output.
const MIN_HS256_SECRET_BYTES: usize = 32;
/// Four weeks: the span councils commonly use for counting repeat contact.
pub const DEFAULT_CASE_FOLLOW_UP_DAYS: u32 = 28;
/// A year: beyond that a "follow-up" is a new matter.
const MAX_CASE_FOLLOW_UP_DAYS: u32 = 365;
const DEFAULT_JWT_LEEWAY_SECONDS: u64 = 60;

/// Top-level keys read from `SWITCHBOARD_*` variables. Anything else with the
/// prefix (`SWITCHBOARD_CONFIG`, `SWITCHBOARD_LOG`, the `SWITCHBOARD_*_TOKEN`
/// lines of `dev-credentials.env`, test variables) is not a setting, and must
/// not trip the unknown-key check that catches typos in the TOML file.
const ENV_KEYS: &[&str] = &[
    "grpc_addr",
    "http_addr",
    "data_dir",
    "database_url",
    "amqp_url",
    "seeds_dir",
    "otlp_endpoint",
    "log_format",
    "grpc_max_message_bytes",
    "case_follow_up_days",
    "auth",
    "event_keys",
];

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    #[default]
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

impl LogFormat {
    pub fn parse(value: &str) -> Option<LogFormat> {
        match value.trim().to_ascii_lowercase().as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// The validated settings every service starts from.
#[derive(Debug, Clone)]
pub struct Settings {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// SQLite files, development secrets and other local state.
    pub data_dir: PathBuf,
    /// `postgres://…`; `None` means SQLite files in `data_dir`. A secret: it
    /// may carry a password.
    pub database_url: Option<SecretString>,
    /// `amqp://…`; `None` means the in-process bus.
    pub amqp_url: Option<SecretString>,
    /// Folder with `services.toml` and `offices.toml`; `None` means the
    /// catalogue embedded in the binary.
    pub seeds_dir: Option<PathBuf>,
    /// OTLP/gRPC collector, e.g. `http://127.0.0.1:4317`; traces are exported
    /// only when this is set.
    pub otlp_endpoint: Option<String>,
    pub log_format: LogFormat,
    /// Largest gRPC request message accepted; larger ones are answered
    /// `RESOURCE_EXHAUSTED`.
    pub grpc_max_message_bytes: usize,
    /// The case store's follow-up window in days: a contact within it of a
    /// case's previous contact is a repeat contact, and a contact about the
    /// same service re-opens a case resolved within it.
    pub case_follow_up_days: u32,
    pub auth: AuthSettings,
    /// Keys sealing personal data inside events; the first seals, all open.
    pub event_keys: Vec<EventKeySettings>,
}

/// Who may call: API keys and token verification.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    pub api_keys: Vec<ApiKeySettings>,
    pub jwt: Option<JwtSettings>,
}

impl AuthSettings {
    /// Whether any credential source is configured; when none is, the binary
    /// falls back to development credentials.
    pub fn is_configured(&self) -> bool {
        !self.api_keys.is_empty() || self.jwt.is_some()
    }
}

/// One API key, stored only as the SHA-256 of the key so the config file is
/// not itself a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeySettings {
    /// Who holds the key (`web-forms`, `cti-adapter`); the principal's subject
    /// becomes `api-key:<name>`.
    pub name: String,
    pub role: Role,
    pub sha256: [u8; 32],
}

/// Verification of staff tokens (JWT).
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// Shared secret for HS256 tokens (its UTF-8 bytes are the key).
    pub hs256_secret: Option<SecretString>,
    /// JWKS file with the identity provider's RS256/ES256 public keys, as
    /// published at its `jwks_uri` (Entra ID, Keycloak, …). Re-read when a
    /// token names a key id it does not hold, so a refreshed file is picked up.
    pub jwks_file: Option<PathBuf>,
    /// Required `iss` claim.
    pub issuer: String,
    /// Required `aud` claim.
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway_seconds: u64,
}

/// A key sealing personal data in events.
pub struct EventKeySettings {
    pub id: String,
    pub key: SecretBox<[u8; 32]>,
}

impl EventKeySettings {
    pub fn new(id: impl Into<String>, key: [u8; 32]) -> EventKeySettings {
        EventKeySettings {
            id: id.into(),
            key: SecretBox::new(Box::new(key)),
        }
    }
}

// Written by hand because secrecy only clones secrets it knows are safe to
// copy; a key array is, and the copy lives in another `SecretBox`.
impl Clone for EventKeySettings {
    fn clone(&self) -> Self {
        EventKeySettings::new(self.id.clone(), *self.key.expose_secret())
    }
}

impl std::fmt::Debug for EventKeySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventKeySettings")
            .field("id", &self.id)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

/// Settings given on the command line (or anywhere else the binary likes).
/// `None` leaves the lower layers' value; the binary fills this from its flags.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Options {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amqp_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seeds_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_max_message_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case_follow_up_days: Option<u32>,
}

impl Options {
    /// The bottom layer.
    pub fn defaults() -> Options {
        Options {
            grpc_addr: Some(DEFAULT_GRPC_ADDR.to_owned()),
            http_addr: Some(DEFAULT_HTTP_ADDR.to_owned()),
            data_dir: Some(PathBuf::from(DEFAULT_DATA_DIR)),
            log_format: Some(LogFormat::Text.as_str().to_owned()),
            grpc_max_message_bytes: Some(DEFAULT_GRPC_MAX_MESSAGE_BYTES),
            case_follow_up_days: Some(DEFAULT_CASE_FOLLOW_UP_DAYS),
            ..Options::default()
        }
    }
}

impl Provider for Options {
    fn metadata(&self) -> Metadata {
        Metadata::named("command-line flags")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::defaults(self).data()
    }
}

/// The defaults layer, named so errors say where a value came from.
struct Defaults;

impl Provider for Defaults {
    fn metadata(&self) -> Metadata {
        Metadata::named("defaults")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::defaults(Options::defaults()).data()
    }
}

impl Settings {
    /// Loads and validates every layer. `config_file` is the `--config` flag;
    /// when `None`, `SWITCHBOARD_CONFIG` is used if set, else there is no file.
    pub fn load(config_file: Option<&Path>, flags: impl Provider) -> RuntimeResult<Settings> {
        let figment = Settings::figment(config_file, flags)?;
        Settings::from_figment(&figment)
    }

    /// The layered sources, for a binary that wants to read a section of its
    /// own from the same file and environment.
    pub fn figment(config_file: Option<&Path>, flags: impl Provider) -> RuntimeResult<Figment> {
        let mut figment = Figment::from(Defaults);
        let file = config_file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(CONFIG_FILE_ENV).map(PathBuf::from));
        if let Some(file) = file {
            // figment quietly skips a missing file; a file the operator named
            // and that is not there is a mistake worth stopping for.
            if !file.is_file() {
                return Err(RuntimeError::config(
                    "config",
                    format!("no such file: {}", file.display()),
                ));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        Ok(figment
            .merge(opentelemetry_environment())
            .merge(environment())
            .merge(flags))
    }

    /// Extracts and validates settings from already layered sources.
    pub fn from_figment(figment: &Figment) -> RuntimeResult<Settings> {
        let raw: RawSettings = figment.extract().map_err(|error| figment_error(&error))?;
        raw.validate().map_err(|error| with_origin(figment, error))
    }

    /// What [`crate::telemetry::init`] needs, for the named service.
    pub fn telemetry(&self, service_name: &str) -> TelemetryConfig {
        TelemetryConfig {
            service_name: service_name.to_owned(),
            log_format: self.log_format,
            otlp_endpoint: self.otlp_endpoint.clone(),
        }
    }
}

fn environment() -> Env {
    Env::prefixed(ENV_PREFIX).split("__").filter(|key| {
        // Keys keep the variable's case here; figment lowercases them later.
        let top_level = key
            .as_str()
            .split('.')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        ENV_KEYS.contains(&top_level.as_str())
    })
}

/// OpenTelemetry's standard `OTEL_EXPORTER_OTLP_ENDPOINT`, as `otlp_endpoint`
/// (it wins over the config file; `SWITCHBOARD_OTLP_ENDPOINT` wins over it).
fn opentelemetry_environment() -> Env {
    Env::raw()
        .only(&[OTEL_ENDPOINT_ENV])
        .map(|_| "otlp_endpoint".into())
}

/// OpenTelemetry's own variable for the collector's address.
pub const OTEL_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Settings as the layers hold them, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    grpc_addr: String,
    http_addr: String,
    data_dir: PathBuf,
    database_url: Option<SecretString>,
    amqp_url: Option<SecretString>,
    seeds_dir: Option<PathBuf>,
    otlp_endpoint: Option<String>,
    log_format: String,
    grpc_max_message_bytes: usize,
    case_follow_up_days: u32,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    event_keys: Vec<RawEventKey>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(default)]
    api_keys: Vec<RawApiKey>,
    jwt: Option<RawJwt>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiKey {
    name: String,
    role: String,
    sha256: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwt {
    hs256_secret: Option<SecretString>,
    jwks_file: Option<PathBuf>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEventKey {
    id: String,
    key: SecretString,
}

impl RawSettings {
    fn validate(self) -> RuntimeResult<Settings> {
        let grpc_addr = socket_addr("grpc_addr", &self.grpc_addr)?;
        let http_addr = socket_addr("http_addr", &self.http_addr)?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(RuntimeError::config("data_dir", "must not be empty"));
        }
        if let Some(url) = &self.database_url {
            require_scheme(
                "database_url",
                url.expose_secret(),
                &["postgres://", "postgresql://"],
            )?;
        }
        if let Some(url) = &self.amqp_url {
            require_scheme("amqp_url", url.expose_secret(), &["amqp://", "amqps://"])?;
        }
        if let Some(seeds_dir) = &self.seeds_dir
            && !seeds_dir.is_dir()
        {
            return Err(RuntimeError::config("seeds_dir", "not a directory"));
        }
        let otlp_endpoint = self.otlp_endpoint.filter(|endpoint| !endpoint.trim().is_empty());
        if let Some(endpoint) = &otlp_endpoint {
            require_scheme("otlp_endpoint", endpoint, &["http://", "https://"])?;
        }
        let log_format = LogFormat::parse(&self.log_format)
            .ok_or_else(|| RuntimeError::config("log_format", "must be text or json"))?;
        if !(MIN_GRPC_MESSAGE_BYTES..=MAX_GRPC_MESSAGE_BYTES).contains(&self.grpc_max_message_bytes) {
            return Err(RuntimeError::config(
                "grpc_max_message_bytes",
                format!("must be between {MIN_GRPC_MESSAGE_BYTES} and {MAX_GRPC_MESSAGE_BYTES}"),
            ));
        }
        if !(1..=MAX_CASE_FOLLOW_UP_DAYS).contains(&self.case_follow_up_days) {
            return Err(RuntimeError::config(
                "case_follow_up_days",
                format!("must be 1 to {MAX_CASE_FOLLOW_UP_DAYS} days"),
            ));
        }
        let auth = self.auth.validate()?;
        let event_keys = validate_event_keys(self.event_keys)?;
        // Development credentials stand in for both or for neither: a
        // production auth set-up quietly sealing events with a development key
        // from the data dir (or the reverse) would be worse than refusing to start.
        match (auth.is_configured(), event_keys.is_empty()) {
            (true, true) => {
                return Err(RuntimeError::config(
                    "event_keys",
                    "required when auth is configured (development credentials are used only when \
                     neither auth nor event_keys is set)",
                ));
            }
            (false, false) => {
                return Err(RuntimeError::config(
                    "auth",
                    "required when event_keys are configured (development credentials are used only \
                     when neither auth nor event_keys is set)",
                ));
            }
            _ => {}
        }
        Ok(Settings {
            grpc_addr,
            http_addr,
            data_dir: self.data_dir,
            database_url: self.database_url,
            amqp_url: self.amqp_url,
            seeds_dir: self.seeds_dir,
            otlp_endpoint,
            log_format,
            grpc_max_message_bytes: self.grpc_max_message_bytes,
            case_follow_up_days: self.case_follow_up_days,
            auth,
            event_keys,
        })
    }
}

impl RawAuth {
    fn validate(self) -> RuntimeResult<AuthSettings> {
        let mut names = BTreeSet::new();
        let mut api_keys = Vec::with_capacity(self.api_keys.len());
        for (index, key) in self.api_keys.into_iter().enumerate() {
            let path = format!("auth.api_keys[{index}]");
            let name = key.name.trim().to_owned();
            if name.is_empty() {
                return Err(RuntimeError::config(format!("{path}.name"), "must not be empty"));
            }
            if !names.insert(name.clone()) {
                return Err(RuntimeError::config(
                    format!("{path}.name"),
                    "is used by another key",
                ));
            }
            let role = Role::parse(&key.role).ok_or_else(|| {
                RuntimeError::config(
                    format!("{path}.role"),
                    "must be one of agent, supervisor, analyst, admin, intake_client",
                )
            })?;
            let sha256 = parse_sha256(&key.sha256).ok_or_else(|| {
                RuntimeError::config(
                    format!("{path}.sha256"),
                    "must be 64 hex digits (the SHA-256 of the key, not the key)",
                )
            })?;
            api_keys.push(ApiKeySettings { name, role, sha256 });
        }
        let jwt = self.jwt.map(RawJwt::validate).transpose()?;
        Ok(AuthSettings { api_keys, jwt })
    }
}

impl RawJwt {
    fn validate(self) -> RuntimeResult<JwtSettings> {
        if self.hs256_secret.is_none() && self.jwks_file.is_none() {
            return Err(RuntimeError::config(
                "auth.jwt",
                "set hs256_secret, jwks_file or both",
            ));
        }
        if let Some(secret) = &self.hs256_secret
            && secret.expose_secret().len() < MIN_HS256_SECRET_BYTES
        {
            return Err(RuntimeError::config(
                "auth.jwt.hs256_secret",
                format!("must be at least {MIN_HS256_SECRET_BYTES} bytes"),
            ));
        }
        if let Some(file) = &self.jwks_file
            && !file.is_file()
        {
            return Err(RuntimeError::config("auth.jwt.jwks_file", "no such file"));
        }
        let issuer = required_text("auth.jwt.issuer", self.issuer)?;
        let audience = required_text("auth.jwt.audience", self.audience)?;
        Ok(JwtSettings {
            hs256_secret: self.hs256_secret,
            jwks_file: self.jwks_file,
            issuer,
            audience,
            leeway_seconds: self.leeway_seconds.unwrap_or(DEFAULT_JWT_LEEWAY_SECONDS),
        })
    }
}

fn validate_event_keys(raw: Vec<RawEventKey>) -> RuntimeResult<Vec<EventKeySettings>> {
    let mut ids = BTreeSet::new();
    let mut keys = Vec::with_capacity(raw.len());
    for (index, key) in raw.into_iter().enumerate() {
        let path = format!("event_keys[{index}]");
        let id = key.id.trim().to_owned();
        let id_is_valid = (1..=64).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !id_is_valid {
            return Err(RuntimeError::config(
                format!("{path}.id"),
                "must be 1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        if !ids.insert(id.clone()) {
            return Err(RuntimeError::config(
                format!("{path}.id"),
                "is used by another key",
            ));
        }
        let bytes = decode_key(key.key.expose_secret())
            .ok_or_else(|| RuntimeError::config(format!("{path}.key"), "must be base64 of 32 bytes"))?;
        keys.push(EventKeySettings::new(id, bytes));
    }
    Ok(keys)
}

/// Standard or URL-safe base64, padded or not: whatever `openssl rand
/// -base64 32` or a secrets manager produced.
pub(crate) fn decode_key(encoded: &str) -> Option<[u8; 32]> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let encoded = encoded.trim();
    let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(encoded).ok())?;
    // The Vec is short-lived; the array moves into a SecretBox straight away.
    <[u8; 32]>::try_from(decoded.as_slice()).ok()
}

fn parse_sha256(hex_digest: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(hex_digest.trim()).ok()?;
    <[u8; 32]>::try_from(bytes.as_slice()).ok()
}

fn socket_addr(key: &str, value: &str) -> RuntimeResult<SocketAddr> {
    value.trim().parse().map_err(|_| {
        RuntimeError::config(
            key,
            "invalid socket address (expected ip:port, e.g. 127.0.0.1:50051)",
        )
    })
}

fn require_scheme(key: &str, value: &str, schemes: &[&str]) -> RuntimeResult<()> {
    let lower = value.trim().to_ascii_lowercase();
    if schemes
        .iter()
        .any(|scheme| lower.starts_with(scheme) && lower.len() > scheme.len())
    {
        Ok(())
    } else {
        Err(RuntimeError::config(
            key,
            format!("must be a {} url", schemes.join(" or ")),
        ))
    }
}

fn required_text(key: &str, value: Option<String>) -> RuntimeResult<String> {
    match value.map(|text| text.trim().to_owned()) {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(RuntimeError::config(key, "required when auth.jwt is set")),
    }
}

/// A figment error as `key: what is wrong (from where)`, without the value.
fn figment_error(error: &figment::Error) -> RuntimeError {
    use figment::error::Kind;
    let mut path = error.path.clone();
    let message = match &error.kind {
        Kind::MissingField(field) => {
            if path.last().map(String::as_str) != Some(field.as_ref()) {
                path.push(field.to_string());
            }
            "missing".to_owned()
        }
        Kind::UnknownField(field, _) => {
            if path.last() != Some(field) {
                path.push(field.clone());
            }
            "unknown key".to_owned()
        }
        Kind::InvalidType(_, expected) => format!("invalid type, expected {expected}"),
        Kind::InvalidValue(_, expected) => format!("invalid value, expected {expected}"),
        Kind::UnknownVariant(_, expected) => format!("must be one of {}", expected.join(", ")),
        other => other.to_string(),
    };
    let key = if path.is_empty() {
        "config".to_owned()
    } else {
        dotted_key(&path)
    };
    let origin = error.metadata.as_ref().map(describe_origin).unwrap_or_default();
    RuntimeError::config(key, format!("{message}{origin}"))
}

/// Adds where the failing key was set, when figment knows.
fn with_origin(figment: &Figment, error: RuntimeError) -> RuntimeError {
    match error {
        RuntimeError::Config { key, message } => {
            let lookup = key.split('[').next().unwrap_or(&key).to_owned();
            let origin = figment
                .find_metadata(&lookup)
                .map(describe_origin)
                .unwrap_or_default();
            RuntimeError::Config {
                key,
                message: format!("{message}{origin}"),
            }
        }
        other => other,
    }
}

fn describe_origin(metadata: &Metadata) -> String {
    match &metadata.source {
        Some(source) => format!(" (from {} {source})", metadata.name),
        None => format!(" (from {})", metadata.name),
    }
}

/// `["event_keys", "0", "key"]` → `event_keys[0].key`.
fn dotted_key(path: &[String]) -> String {
    let mut key = String::new();
    for segment in path {
        if segment.chars().all(|c| c.is_ascii_digit()) && !key.is_empty() {
            key.push_str(&format!("[{segment}]"));
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(segment);
        }
    }
    key
}

#[cfg(test)]
// figment::Jail fixes its closures' error type; its size is not ours to choose.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    // Each test clears the environment inside its jail, so a developer's
    // exported SWITCHBOARD_* variables cannot change what it sees.

    fn error_text(result: RuntimeResult<Settings>) -> String {
        match result {
            Ok(_) => panic!("expected a config error"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            let settings = Settings::load(None, Options::default()).expect("defaults are valid");
            assert_eq!(settings.grpc_addr.to_string(), DEFAULT_GRPC_ADDR);
            assert_eq!(settings.http_addr.to_string(), DEFAULT_HTTP_ADDR);
            assert_eq!(settings.data_dir, PathBuf::from("./var"));
            assert!(settings.database_url.is_none());
            assert!(settings.amqp_url.is_none());
            assert!(settings.seeds_dir.is_none());
            assert!(settings.otlp_endpoint.is_none());
            assert_eq!(settings.log_format, LogFormat::Text);
            assert_eq!(settings.grpc_max_message_bytes, DEFAULT_GRPC_MAX_MESSAGE_BYTES);
            assert!(!settings.auth.is_configured());
            assert!(settings.event_keys.is_empty());
            Ok(())
        });
    }

    #[test]
    fn the_standard_otlp_variable_is_read_and_ours_wins_over_it() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env(OTEL_ENDPOINT_ENV, "http://collector:4317");
            let settings = Settings::load(None, Options::default()).expect("valid");
            assert_eq!(settings.otlp_endpoint.as_deref(), Some("http://collector:4317"));
            jail.set_env("SWITCHBOARD_OTLP_ENDPOINT", "http://ours:4317");
            let settings = Settings::load(None, Options::default()).expect("valid");
            assert_eq!(settings.otlp_endpoint.as_deref(), Some("http://ours:4317"));
            jail.clear_env();
            jail.set_env(OTEL_ENDPOINT_ENV, "collector:4317");
            let error = Settings::load(None, Options::default()).expect_err("no scheme");
            assert!(error.to_string().contains("otlp_endpoint"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn layers_override_in_order_defaults_file_environment_flags() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file(
                "switchboard.toml",
                r#"
                grpc_addr = "0.0.0.0:1000"
                http_addr = "0.0.0.0:2000"
                data_dir = "/srv/file"
                log_format = "json"
                "#,
            )?;
            jail.set_env("SWITCHBOARD_HTTP_ADDR", "0.0.0.0:3000");
            jail.set_env("SWITCHBOARD_DATA_DIR", "/srv/env");
            // Not settings: must neither apply nor trip the unknown-key check.
            jail.set_env("SWITCHBOARD_AGENT_TOKEN", "eyJ...");
            jail.set_env("SWITCHBOARD_LOG", "debug");
            let flags = Options {
                data_dir: Some(PathBuf::from("/srv/flag")),
                ..Options::default()
            };
            let settings =
                Settings::load(Some(Path::new("switchboard.toml")), flags).expect("valid layered settings");
            assert_eq!(
                settings.grpc_addr.to_string(),
                "0.0.0.0:1000",
                "file beats defaults"
            );
            assert_eq!(
                settings.http_addr.to_string(),
                "0.0.0.0:3000",
                "environment beats file"
            );
            assert_eq!(
                settings.data_dir,
                PathBuf::from("/srv/flag"),
                "flags beat environment"
            );
            assert_eq!(settings.log_format, LogFormat::Json);
            Ok(())
        });
    }

    #[test]
    fn config_file_can_come_from_the_environment() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file("other.toml", r#"grpc_addr = "127.0.0.1:7000""#)?;
            jail.set_env(CONFIG_FILE_ENV, "other.toml");
            let settings = Settings::load(None, Options::default()).expect("valid");
            assert_eq!(settings.grpc_addr.to_string(), "127.0.0.1:7000");
            Ok(())
        });
    }

    #[test]
    fn a_named_config_file_that_is_missing_is_an_error() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            let text = error_text(Settings::load(
                Some(Path::new("nowhere.toml")),
                Options::default(),
            ));
            assert!(text.starts_with("config: no such file"), "{text}");
            Ok(())
        });
    }

    #[test]
    fn invalid_address_names_the_key_and_its_origin_without_the_value() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("SWITCHBOARD_GRPC_ADDR", "not-an-address");
            let text = error_text(Settings::load(None, Options::default()));
            assert!(text.starts_with("grpc_addr: invalid socket address"), "{text}");
            assert!(text.contains("environment"), "{text}");
            assert!(!text.contains("not-an-address"), "{text}");
            Ok(())
        });
    }

    #[test]
    fn each_invalid_key_is_named() {
        let cases: &[(&str, &str)] = &[
            (r#"http_addr = "localhost""#, "http_addr: invalid socket address"),
            (r#"log_format = "xml""#, "log_format: must be text or json"),
            (
                r#"database_url = "mysql://db""#,
                "database_url: must be a postgres:// or postgresql:// url",
            ),
            (
                r#"amqp_url = "http://broker""#,
                "amqp_url: must be a amqp:// or amqps:// url",
            ),
            (
                r#"otlp_endpoint = "collector:4317""#,
                "otlp_endpoint: must be a http:// or https:// url",
            ),
            (r#"seeds_dir = "/no/such/dir""#, "seeds_dir: not a directory"),
            (
                "grpc_max_message_bytes = 10",
                "grpc_max_message_bytes: must be between",
            ),
            (
                "case_follow_up_days = 0",
                "case_follow_up_days: must be 1 to 365 days",
            ),
            (r#"grpc_adr = "127.0.0.1:1""#, "grpc_adr: unknown key"),
            (r#"grpc_addr = 5"#, "grpc_addr: invalid type"),
            (
                "[[auth.api_keys]]\nname = \"forms\"\nrole = \"intake_client\"\nsha256 = \"abc\"\n\
                 [[event_keys]]\nid = \"k1\"\nkey = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"",
                "auth.api_keys[0].sha256: must be 64 hex digits",
            ),
            (
                "[[auth.api_keys]]\nname = \"forms\"\nrole = \"clerk\"\nsha256 = \"abc\"",
                "auth.api_keys[0].role: must be one of",
            ),
            (
                "[auth.jwt]\nissuer = \"i\"\naudience = \"a\"",
                "auth.jwt: set hs256_secret, jwks_file or both",
            ),
            (
                "[auth.jwt]\nhs256_secret = \"short\"\nissuer = \"i\"\naudience = \"a\"",
                "auth.jwt.hs256_secret: must be at least 32 bytes",
            ),
            (
                "[auth.jwt]\nhs256_secret = \"0123456789abcdef0123456789abcdef\"\naudience = \"a\"",
                "auth.jwt.issuer: required",
            ),
            (
                "[auth.jwt]\njwks_file = \"/no/jwks.json\"\nissuer = \"i\"\naudience = \"a\"",
                "auth.jwt.jwks_file: no such file",
            ),
            (
                "[[event_keys]]\nid = \"k1\"\nkey = \"c2hvcnQ=\"",
                "event_keys[0].key: must be base64 of 32 bytes",
            ),
            ("[[event_keys]]\nid = \"k1\"", "event_keys[0].key: missing"),
            (
                "[auth.jwt]\nhs256_secret = \"0123456789abcdef0123456789abcdef\"\nissuer = \"i\"\naudience = \"a\"",
                "event_keys: required when auth is configured",
            ),
            (
                "[[event_keys]]\nid = \"k1\"\nkey = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"",
                "auth: required when event_keys are configured",
            ),
        ];
        for (toml, expected) in cases {
            Jail::expect_with(|jail| {
                jail.clear_env();
                jail.create_file("switchboard.toml", toml)?;
                let text = error_text(Settings::load(
                    Some(Path::new("switchboard.toml")),
                    Options::default(),
                ));
                assert!(
                    text.starts_with(expected),
                    "for {toml:?}: expected {expected:?}, got {text:?}"
                );
                Ok(())
            });
        }
    }

    #[test]
    fn full_auth_and_event_keys_are_typed_and_secret() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file("jwks.json", r#"{"keys": []}"#)?;
            jail.create_file(
                "switchboard.toml",
                &format!(
                    r#"
                    database_url = "postgres://switchboard:pw@db/switchboard"
                    amqp_url = "amqp://guest:guest@broker:5672/%2f"
                    otlp_endpoint = "http://collector:4317"

                    [[auth.api_keys]]
                    name = "web-forms"
                    role = "intake_client"
                    sha256 = "{}"

                    [auth.jwt]
                    hs256_secret = "0123456789abcdef0123456789abcdef"
                    jwks_file = "jwks.json"
                    issuer = "https://login.example/tenant/v2.0"
                    audience = "api://switchboard"

                    [[event_keys]]
                    id = "2026-01"
                    key = "{KEY_A}"

                    [[event_keys]]
                    id = "2025-07"
                    key = "{KEY_A}"
                    "#,
                    "ab".repeat(32)
                ),
            )?;
            let settings =
                Settings::load(Some(Path::new("switchboard.toml")), Options::default()).expect("valid");
            assert_eq!(settings.auth.api_keys[0].role, Role::IntakeClient);
            assert_eq!(settings.auth.api_keys[0].sha256, [0xab; 32]);
            let jwt = settings.auth.jwt.as_ref().expect("jwt settings");
            assert_eq!(jwt.audience, "api://switchboard");
            assert_eq!(jwt.leeway_seconds, 60);
            assert_eq!(settings.event_keys.len(), 2);
            assert_eq!(settings.event_keys[0].id, "2026-01");
            assert_eq!(settings.event_keys[0].key.expose_secret()[31], 31);
            let debug = format!("{settings:?}");
            assert!(
                !debug.contains("pw@"),
                "database password leaked into Debug: {debug}"
            );
            assert!(
                !debug.contains("0123456789abcdef"),
                "hs256 secret leaked into Debug"
            );
            Ok(())
        });
    }

    #[test]
    fn nested_keys_come_from_the_environment_with_double_underscores() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env(
                "SWITCHBOARD_AUTH__JWT__HS256_SECRET",
                "0123456789abcdef0123456789abcdef",
            );
            jail.set_env("SWITCHBOARD_AUTH__JWT__ISSUER", "issuer-from-env");
            jail.set_env("SWITCHBOARD_AUTH__JWT__AUDIENCE", "switchboard");
            jail.set_env(
                "SWITCHBOARD_EVENT_KEYS",
                format!(r#"[{{id="k1",key="{KEY_A}"}}]"#),
            );
            let settings = Settings::load(None, Options::default()).expect("valid");
            assert_eq!(
                settings.auth.jwt.as_ref().map(|jwt| jwt.issuer.as_str()),
                Some("issuer-from-env")
            );
            assert_eq!(settings.event_keys[0].id, "k1");
            Ok(())
        });
    }

    const EXAMPLE: &str = include_str!("../../../deploy/switchboard.example.toml");

    #[test]
    fn the_example_config_loads_as_it_is() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file("switchboard.toml", EXAMPLE)?;
            let settings = Settings::load(Some(Path::new("switchboard.toml")), Options::default())
                .expect("example is valid");
            assert_eq!(settings.grpc_addr.to_string(), DEFAULT_GRPC_ADDR);
            assert_eq!(settings.grpc_max_message_bytes, DEFAULT_GRPC_MAX_MESSAGE_BYTES);
            Ok(())
        });
    }

    #[test]
    fn every_key_the_example_documents_exists_with_its_type() {
        // The commented-out keys too: uncomment `# key = …` and `# [table]`
        // lines (not `# # prose`) and read the result with unknown keys refused.
        let uncommented: String = EXAMPLE
            .lines()
            .filter_map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if rest.starts_with('[')
                        || rest.split_once(" = ").is_some_and(|(key, _)| {
                            !key.is_empty()
                                && key
                                    .chars()
                                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                        }) =>
                {
                    Some(rest)
                }
                Some(_) => None,
                None => Some(line),
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let raw: RawSettings =
            toml::from_str(&uncommented).unwrap_or_else(|error| panic!("{error}\n{uncommented}"));
        assert_eq!(raw.auth.api_keys.len(), 2);
        let jwt = raw.auth.jwt.expect("jwt section");
        assert!(jwt.hs256_secret.is_some() && jwt.jwks_file.is_some() && jwt.leeway_seconds.is_some());
        assert_eq!(raw.event_keys.len(), 2);
        assert!(raw.database_url.is_some() && raw.amqp_url.is_some() && raw.seeds_dir.is_some());
        assert!(raw.otlp_endpoint.is_some());
    }

    #[test]
    fn dotted_keys_render_array_indexes() {
        let path = ["event_keys".to_owned(), "0".to_owned(), "key".to_owned()];
        assert_eq!(dotted_key(&path), "event_keys[0].key");
    }
}
