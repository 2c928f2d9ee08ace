//! Liveness, readiness and metrics endpoints.
//!
//! A service registers readiness checks (store ping, broker connected) with
//! [`Health`]. The same checks feed:
//!
//! - gRPC: `grpc.health.v1.Health` (tonic-health), where each service named
//!   with [`Health::track_grpc_service`] (and the whole server, `""`) is
//!   `SERVING` while every check passes, refreshed by [`Health::run`];
//! - HTTP: [`Health::router`] with `GET /healthz` (the process is up: 200),
//!   `GET /readyz` (200 when every check passes, else a 503 problem naming
//!   the failing checks) and `GET /metrics` (Prometheus, [`crate::metrics`]).
//!
//! Once shutdown starts, everything reports not ready, so load balancers move
//! traffic away while in-flight calls finish.

use std::{
    collections::BTreeSet,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tonic_health::{
    ServingStatus,
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
};

use crate::{metrics::Metrics, problem::Problem, shutdown::Shutdown};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How often [`Health::run`] re-checks readiness for gRPC health.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// A check that takes longer than this has failed: a probe must answer
/// before the load balancer's own timeout.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One readiness condition of a dependency.
#[async_trait::async_trait]
pub trait ReadinessCheck: Send + Sync + 'static {
    async fn check(&self) -> Result<(), BoxError>;
}

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;
type CheckFn = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

struct NamedCheck {
    name: String,
    check: CheckFn,
}

/// The outcome of running every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Names of the checks that failed or timed out, in registration order.
    pub failing: Vec<String>,
    /// Shutdown has started.
    pub draining: bool,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.failing.is_empty() && !self.draining
    }
}

/// Readiness checks and the endpoints that report them. Cloning shares them.
#[derive(Clone)]
pub struct Health {
    inner: Arc<HealthInner>,
}

struct HealthInner {
    /// std locks: changed at start, read briefly per probe, never held across
    /// an await (checks are cloned out first).
    checks: RwLock<Vec<NamedCheck>>,
    tracked_services: RwLock<Vec<String>>,
    /// The failing set last seen, so a failure is logged when it starts and
    /// when it ends, not on every probe.
    last_failing: Mutex<BTreeSet<String>>,
    draining: AtomicBool,
    reporter: HealthReporter,
    metrics: Metrics,
    interval: Duration,
    timeout: Duration,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .read_checks()
            .iter()
            .map(|check| check.name.clone())
            .collect();
        f.debug_struct("Health").field("checks", &names).finish()
    }
}

impl Health {
    pub fn new(metrics: Metrics) -> Health {
        Health::with_timing(metrics, DEFAULT_CHECK_INTERVAL, DEFAULT_CHECK_TIMEOUT)
    }

    /// With other timings, for tests.
    pub fn with_timing(metrics: Metrics, interval: Duration, timeout: Duration) -> Health {
        Health {
            inner: Arc::new(HealthInner {
                checks: RwLock::new(Vec::new()),
                tracked_services: RwLock::new(Vec::new()),
                last_failing: Mutex::new(BTreeSet::new()),
                draining: AtomicBool::new(false),
                reporter: HealthReporter::new(),
                metrics,
                interval,
                timeout,
            }),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Adds a check named `name` (`store`, `broker`): the name is what
    /// `/readyz` reports, so it must not contain anything secret.
    pub fn add_check(&self, name: &str, check: impl ReadinessCheck) {
        let check = Arc::new(check);
        self.add_check_fn(name, move || {
            let check = check.clone();
            async move { check.check().await }
        });
    }

    /// Adds a check from an async closure: `health.add_check_fn("store", move || { let pool = pool.clone(); async move { pool.ping().await } })`.
    pub fn add_check_fn<F, Fut, E>(&self, name: &str, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let check: CheckFn = Arc::new(move || {
            let future = check();
            Box::pin(async move { future.await.map_err(Into::into) })
        });
        self.inner
            .checks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(NamedCheck {
                name: name.to_owned(),
                check,
            });
    }

    /// Makes the gRPC health status of `service_name`
    /// (`switchboard.v1.IntakeService`) follow readiness. It starts
    /// `NOT_SERVING` until [`Self::run`] has checked once.
    pub async fn track_grpc_service(&self, service_name: &str) {
        self.inner
            .tracked_services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(service_name.to_owned());
        self.inner
            .reporter
            .set_service_status(service_name, ServingStatus::NotServing)
            .await;
    }

    /// The `grpc.health.v1.Health` service to add to a gRPC server.
    pub fn grpc_service(&self) -> HealthServer<HealthService> {
        HealthServer::new(HealthService::from_health_reporter(self.inner.reporter.clone()))
    }

    fn read_checks(&self) -> std::sync::RwLockReadGuard<'_, Vec<NamedCheck>> {
        self.inner
            .checks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs every check at once, each bounded by the timeout.
    pub async fn check(&self) -> Readiness {
        let checks: Vec<(String, CheckFn)> = self
            .read_checks()
            .iter()
            .map(|check| (check.name.clone(), check.check.clone()))
            .collect();
        let timeout = self.inner.timeout;
        let results = futures::future::join_all(checks.into_iter().map(|(name, check)| async move {
            let outcome = match tokio::time::timeout(timeout, check()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(error.to_string()),
                Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
            };
            (name, outcome)
        }))
        .await;
        self.log_changes(&results);
        Readiness {
            failing: results
                .into_iter()
                .filter(|(_, outcome)| outcome.is_err())
                .map(|(name, _)| name)
                .collect(),
            draining: self.inner.draining.load(Ordering::Relaxed),
        }
    }

    fn log_changes(&self, results: &[(String, Result<(), String>)]) {
        let mut last = self
            .inner
            .last_failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (name, outcome) in results {
            match outcome {
                Err(error) if !last.contains(name) => {
                    // The cause goes to the log only; /readyz is public and
                    // names the check, nothing more.
                    tracing::warn!(check = %name, error.message = %error, "readiness check failing");
                    last.insert(name.clone());
                }
                Ok(()) if last.remove(name) => tracing::info!(check = %name, "readiness check passing again"),
                _ => {}
            }
        }
    }

    /// Keeps gRPC health statuses current until `shutdown` fires, then marks
    /// everything `NOT_SERVING`.
    pub async fn run(&self, shutdown: Shutdown) {
        let mut interval = tokio::time::interval(self.inner.interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.wait() => break,
                _ = interval.tick() => {
                    let readiness = self.check().await;
                    self.report(readiness.is_ready()).await;
                }
            }
        }
        self.inner.draining.store(true, Ordering::Relaxed);
        self.report(false).await;
    }

    async fn report(&self, ready: bool) {
        let status = if ready {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        let services: Vec<String> = self
            .inner
            .tracked_services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for service in services.iter().map(String::as_str).chain([""]) {
            self.inner.reporter.set_service_status(service, status).await;
        }
    }

    /// `GET /healthz`, `GET /readyz` and `GET /metrics`, to merge into a
    /// service's HTTP router (or serve alone) behind the auth layer.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }
}

async fn readyz(State(health): State<Health>) -> Response {
    let readiness = health.check().await;
    if readiness.is_ready() {
        return "ready".into_response();
    }
    let detail = if readiness.draining {
        "shutting down".to_owned()
    } else {
        format!("failing checks: {}", readiness.failing.join(", "))
    };
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not ready", Some(detail)).into_response()
}

async fn metrics(State(health): State<Health>) -> Response {
    let mut response = health.metrics().encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::OPENMETRICS_CONTENT_TYPE),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt as _;
    use std::sync::atomic::AtomicBool;
    use tower::ServiceExt as _;

    struct Flag(Arc<AtomicBool>);

    #[async_trait::async_trait]
    impl ReadinessCheck for Flag {
        async fn check(&self) -> Result<(), BoxError> {
            if self.0.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err("connection refused".into())
            }
        }
    }

    async fn get_text(router: &Router, path: &str) -> (StatusCode, String, Option<String>) {
        let request = http::Request::builder()
            .uri(path)
            .body(Body::empty())
            .expect("request");
        let response = router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned(), content_type)
    }

    #[tokio::test]
    async fn readyz_names_the_failing_check_and_healthz_stays_up() {
        let health = Health::with_timing(
            Metrics::new(),
            Duration::from_millis(20),
            Duration::from_millis(200),
        );
        let store_up = Arc::new(AtomicBool::new(true));
        health.add_check("store", Flag(store_up.clone()));
        health.add_check_fn("broker", || async { Ok::<(), std::io::Error>(()) });
        health.add_check_fn("slow", || async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok::<(), BoxError>(())
        });
        let router = health.router();

        assert_eq!(get_text(&router, "/readyz").await.0, StatusCode::OK);
        store_up.store(false, Ordering::SeqCst);
        let (status, body, content_type) = get_text(&router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(content_type.as_deref(), Some("application/problem+json"));
        assert!(body.contains("failing checks: store"), "{body}");
        assert!(
            !body.contains("connection refused"),
            "causes stay in the log: {body}"
        );
        assert_eq!(get_text(&router, "/healthz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_check_that_hangs_fails_by_timeout() {
        let health = Health::with_timing(
            Metrics::new(),
            Duration::from_millis(20),
            Duration::from_millis(50),
        );
        health.add_check_fn("hangs", || async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<(), BoxError>(())
        });
        assert_eq!(health.check().await.failing, ["hangs"]);
    }

    #[tokio::test]
    async fn metrics_are_served_as_openmetrics() {
        let health = Health::new(Metrics::new());
        health
            .metrics()
            .requests()
            .record("http", "/healthz", "200", 0.001);
        let (status, body, content_type) = get_text(&health.router(), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.is_some_and(|value| value.starts_with("application/openmetrics-text")));
        assert!(body.contains("switchboard_requests_total"), "{body}");
    }

    #[tokio::test]
    async fn grpc_status_follows_readiness_and_shutdown() {
        use tonic_health::pb::{
            HealthCheckRequest, health_check_response::ServingStatus as PbStatus, health_server::Health as _,
        };
        let health = Health::with_timing(
            Metrics::new(),
            Duration::from_millis(10),
            Duration::from_millis(100),
        );
        let up = Arc::new(AtomicBool::new(false));
        health.add_check("store", Flag(up.clone()));
        health.track_grpc_service("switchboard.v1.IntakeService").await;
        let service = HealthService::from_health_reporter(health.inner.reporter.clone());
        let status_of = |name: &'static str| {
            let request = tonic::Request::new(HealthCheckRequest {
                service: name.to_owned(),
            });
            let service = &service;
            async move {
                service
                    .check(request)
                    .await
                    .expect("known service")
                    .into_inner()
                    .status
            }
        };
        let shutdown = Shutdown::new();
        let runner = tokio::spawn({
            let health = health.clone();
            let shutdown = shutdown.clone();
            async move { health.run(shutdown).await }
        });

        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            status_of("switchboard.v1.IntakeService").await,
            PbStatus::NotServing as i32
        );
        up.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            status_of("switchboard.v1.IntakeService").await,
            PbStatus::Serving as i32
        );
        assert_eq!(status_of("").await, PbStatus::Serving as i32);

        shutdown.trigger();
        runner.await.expect("runner stops on shutdown");
        assert_eq!(
            status_of("switchboard.v1.IntakeService").await,
            PbStatus::NotServing as i32
        );
        assert!(!health.check().await.is_ready(), "draining is not ready");
    }
}
