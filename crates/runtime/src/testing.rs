//! Helpers for tests that reach real servers: a fresh PostgreSQL database per
//! test, so tests never see each other's rows and can run in parallel; the
//! broker address; [`TestCredentials`] for servers behind the auth layer; and
//! the machine's busy CPU time, which benchmarks share out among what they
//! measured.

use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// Where tests find PostgreSQL: `SWITCHBOARD_TEST_DATABASE_URL`, or the local
/// server with trust auth.
pub fn postgres_server_url() -> String {
    std::env::var("SWITCHBOARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// Where tests find RabbitMQ: `SWITCHBOARD_TEST_AMQP_URL`, or the local broker.
pub fn amqp_url() -> String {
    std::env::var("SWITCHBOARD_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A database created for one test and dropped when this value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl TestDatabase {
    /// Creates `sb_test_<uuid>` on the test server. Panics, saying how to start
    /// PostgreSQL, when the server cannot be reached: a test that needs it must
    /// not pass without it.
    pub async fn create() -> TestDatabase {
        let server = postgres_server_url();
        let name = format!("sb_test_{}", uuid::Uuid::now_v7().simple());
        let mut admin = PgConnection::connect(&format!("{server}/postgres"))
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "cannot reach PostgreSQL at {server} ({error}); start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
                 or set SWITCHBOARD_TEST_DATABASE_URL"
                )
            });
        // A database name cannot be a bound parameter; this one is made here from
        // a UUID, never from input, so formatting it into the statement is safe.
        sqlx::raw_sql(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|error| panic!("cannot create test database {name}: {error}"));
        TestDatabase {
            url: format!("{server}/{name}"),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs outside any runtime guarantee, so the clean-up uses its own
        // thread and runtime; a failure only leaves a stray test database.
        let server = postgres_server_url();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&format!("{server}/postgres")).await {
                    let _ = sqlx::raw_sql(AssertSqlSafe(format!(
                        r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                    )))
                    .execute(&mut admin)
                    .await;
                }
            });
        })
        .join();
    }
}

/// [`TestDatabase::create`], by the name the crate contract uses.
pub async fn fresh_postgres() -> TestDatabase {
    TestDatabase::create().await
}

/// Credentials for tests of servers behind [`crate::auth::AuthLayer`]: an
/// HS256 secret, one API key (intake client) and a token per role, without
/// touching the disk.
#[derive(Debug, Clone)]
pub struct TestCredentials {
    pub auth: crate::config::AuthSettings,
    pub intake_key: String,
    tokens: Vec<(crate::auth::Role, String)>,
}

impl TestCredentials {
    pub fn new() -> TestCredentials {
        use crate::auth::{Role, TokenClaims, api_key_sha256, generate_api_key, mint_hs256_token};
        use crate::config::{ApiKeySettings, AuthSettings, JwtSettings};
        use secrecy::SecretString;

        let secret = SecretString::from(generate_api_key());
        let intake_key = generate_api_key();
        let now = jsonwebtoken::get_current_timestamp();
        let tokens = Role::ALL
            .into_iter()
            .map(|role| {
                let claims = TokenClaims {
                    sub: format!("test-{role}"),
                    roles: vec![role],
                    iss: "switchboard-test".to_owned(),
                    aud: "switchboard".to_owned(),
                    iat: now,
                    nbf: now,
                    exp: now + 3600,
                };
                let token = mint_hs256_token(&secret, &claims)
                    .unwrap_or_else(|error| panic!("cannot mint a test token: {error}"));
                (role, token)
            })
            .collect();
        let auth = AuthSettings {
            api_keys: vec![ApiKeySettings {
                name: "test-intake".to_owned(),
                role: Role::IntakeClient,
                sha256: api_key_sha256(&intake_key),
            }],
            jwt: Some(JwtSettings {
                hs256_secret: Some(secret),
                jwks_file: None,
                issuer: "switchboard-test".to_owned(),
                audience: "switchboard".to_owned(),
                leeway_seconds: 60,
            }),
        };
        TestCredentials {
            auth,
            intake_key,
            tokens,
        }
    }

    /// An authenticator accepting these credentials.
    pub fn authenticator(&self) -> std::sync::Arc<crate::auth::Authenticator> {
        let authenticator = crate::auth::Authenticator::new(&self.auth)
            .unwrap_or_else(|error| panic!("test credentials are valid: {error}"));
        std::sync::Arc::new(authenticator)
    }

    /// A JWT whose only role is `role` (any role, intake client included).
    pub fn token(&self, role: crate::auth::Role) -> &str {
        self.tokens
            .iter()
            .find(|(token_role, _)| *token_role == role)
            .map(|(_, token)| token.as_str())
            .unwrap_or_default()
    }

    /// `Bearer <token>` for an `authorization` header.
    pub fn bearer(&self, role: crate::auth::Role) -> String {
        format!("Bearer {}", self.token(role))
    }

    /// `Bearer <intake API key>`.
    pub fn intake_bearer(&self) -> String {
        format!("Bearer {}", self.intake_key)
    }
}

impl Default for TestCredentials {
    fn default() -> Self {
        TestCredentials::new()
    }
}

/// Busy CPU time of the whole machine since boot, from the first line of
/// `/proc/stat` (every field but idle and iowait; guest time is counted in
/// user time already), or `None` where there is no such file. The kernel
/// reports it in USER_HZ ticks, a fixed 100 a second.
fn machine_busy() -> Option<std::time::Duration> {
    const USER_HZ: u64 = 100;
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal (guest guest_nice)
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(field, _)| !matches!(field, 3 | 4))
        .map(|(_, ticks)| ticks)
        .sum();
    Some(std::time::Duration::from_millis(busy * 1000 / USER_HZ))
}

/// Runs `step` and shares the machine's busy CPU time over it among the
/// `items` it handled: the whole machine's cost of one item (services,
/// servers and the benchmark's own clients alike), `None` where
/// [`machine_busy`] is not known.
pub async fn with_cpu_per_item<T>(
    items: usize,
    step: impl std::future::Future<Output = T>,
) -> (T, Option<std::time::Duration>) {
    let before = machine_busy();
    let output = step.await;
    let per_item = match (before, machine_busy()) {
        (Some(before), Some(after)) => {
            Some(after.saturating_sub(before) / u32::try_from(items.max(1)).unwrap_or(u32::MAX))
        }
        _ => None,
    };
    (output, per_item)
}
