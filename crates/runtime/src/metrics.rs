//! Prometheus metrics: one shared [`prometheus_client`] registry per process,
//! served as OpenMetrics text on `GET /metrics` (see [`crate::health`]).
//!
//! Services register their own metrics with [`Metrics::register`]; the
//! runtime adds request counts and durations per route ([`RequestMetrics`],
//! recorded by [`crate::telemetry::TraceLayer`]). Labels are routes and
//! status codes, never anything about a resident.

use std::sync::{Arc, OnceLock, RwLock};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Metric, Registry},
};

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The process's metric registry. Cloning shares it.
#[derive(Clone)]
pub struct Metrics {
    /// A std lock: registration happens at start and encoding is a quick
    /// walk with no await inside, so an async lock would only add cost.
    registry: Arc<RwLock<Registry>>,
    requests: Arc<OnceLock<RequestMetrics>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// An empty registry whose metric names all start `switchboard_`.
    pub fn new() -> Metrics {
        Metrics {
            registry: Arc::new(RwLock::new(Registry::with_prefix("switchboard"))),
            requests: Arc::new(OnceLock::new()),
        }
    }

    /// Registers a metric; keep the handle to record into it.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .register(name, help, metric);
    }

    /// Lends the registry to code that registers a whole family of metrics
    /// itself (a service's `register(&mut Registry)`).
    pub fn with_registry(&self, register: impl FnOnce(&mut Registry)) {
        register(
            &mut self
                .registry
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
    }

    /// Everything registered, as OpenMetrics text.
    pub fn encode(&self) -> String {
        let registry = self
            .registry
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut text = String::new();
        if let Err(error) = encode(&mut text, &registry) {
            tracing::warn!(error.message = %error, "cannot encode metrics");
        }
        text
    }

    /// Request metrics, registered on first use so several servers in one
    /// process (gRPC and HTTP, or all four services) share one set.
    pub fn requests(&self) -> RequestMetrics {
        self.requests
            .get_or_init(|| {
                let metrics = RequestMetrics::default();
                self.register(
                    "requests",
                    "requests answered, by route and status",
                    metrics.count.clone(),
                );
                self.register(
                    "request_duration_seconds",
                    "time to the response headers, by route",
                    metrics.duration.clone(),
                );
                metrics
            })
            .clone()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// `grpc` or `http`.
    pub protocol: &'static str,
    /// gRPC method path, or the policy pattern an HTTP path matched.
    pub route: String,
    /// gRPC status code number or HTTP status.
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    pub protocol: &'static str,
    pub route: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// Request count and duration families.
#[derive(Clone, Debug)]
pub struct RequestMetrics {
    count: Family<RequestLabels, Counter>,
    duration: HistogramFamily,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        fn duration_histogram() -> Histogram {
            // 1 ms to about 16 s.
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        }
        RequestMetrics {
            count: Family::default(),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
        }
    }
}

impl RequestMetrics {
    pub fn record(&self, protocol: &'static str, route: &str, status: &str, seconds: f64) {
        self.count
            .get_or_create(&RequestLabels {
                protocol,
                route: route.to_owned(),
                status: status.to_owned(),
            })
            .inc();
        self.duration
            .get_or_create(&RouteLabels {
                protocol,
                route: route.to_owned(),
            })
            .observe(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_and_request_metrics_are_encoded_once() {
        let metrics = Metrics::new();
        let contacts: Counter = Counter::default();
        metrics.register("contacts_accepted", "contacts accepted", contacts.clone());
        contacts.inc();
        metrics
            .requests()
            .record("grpc", "/switchboard.v1.IntakeService/SubmitContact", "0", 0.01);
        // A second server asking for request metrics must not register twice.
        metrics
            .clone()
            .requests()
            .record("http", "/v1/contacts", "201", 0.02);
        let text = metrics.encode();
        assert!(text.contains("switchboard_contacts_accepted_total 1"), "{text}");
        assert!(text.contains(
            r#"switchboard_requests_total{protocol="grpc",route="/switchboard.v1.IntakeService/SubmitContact",status="0"} 1"#
        ), "{text}");
        assert_eq!(
            text.matches("# TYPE switchboard_requests counter").count(),
            1,
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
