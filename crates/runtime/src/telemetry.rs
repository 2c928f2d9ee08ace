//! Logs and traces.
//!
//! [`init`] installs one `tracing` subscriber: text or JSON log lines,
//! filtered by `SWITCHBOARD_LOG` (else `RUST_LOG`, else `info`), and an
//! OpenTelemetry layer that takes every span at `info` and above whatever the
//! log filter says. The OpenTelemetry layer is always there, so every
//! span has a trace id and the W3C `traceparent` flows through gRPC metadata
//! and AMQP headers in every mode; spans are *exported* (OTLP over gRPC) only
//! when an endpoint is configured.
//!
//! [`TraceLayer`] opens a span per incoming request, continuing the caller's
//! trace from its `traceparent`; [`TraceContextInterceptor`] sends the current
//! trace on outgoing tonic calls.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use http::{HeaderMap, Request, Response};
use opentelemetry::{
    propagation::{Extractor, Injector},
    trace::TracerProvider as _,
};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tower::{Layer, Service};
use tracing::{Instrument as _, Subscriber, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::{
    EnvFilter, Layer as _, filter::LevelFilter, layer::SubscriberExt as _, util::SubscriberInitExt as _,
};

use crate::{
    auth::{Policy, is_grpc},
    config::LogFormat,
    error::{RuntimeError, RuntimeResult},
    metrics::RequestMetrics,
};

/// Environment variable with the log filter (`info,switchboard_intake=debug`).
pub const LOG_FILTER_ENV: &str = "SWITCHBOARD_LOG";
// OpenTelemetry announces its own set-up at info; that is noise in our logs.
const DEFAULT_LOG_FILTER: &str = "info,opentelemetry=warn,opentelemetry_sdk=warn";

/// What [`init`] needs; [`crate::config::Settings::telemetry`] makes one.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `service.name` on exported spans (`switchboard-intake`).
    pub service_name: String,
    pub log_format: LogFormat,
    /// OTLP/gRPC collector; `None` exports nothing.
    pub otlp_endpoint: Option<String>,
}

impl TelemetryConfig {
    /// Text logs, no export.
    pub fn new(service_name: &str) -> TelemetryConfig {
        TelemetryConfig {
            service_name: service_name.to_owned(),
            log_format: LogFormat::Text,
            otlp_endpoint: None,
        }
    }
}

/// Keeps trace export running; dropping it flushes the spans still queued.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("installed", &self.provider.is_some())
            .finish()
    }
}

impl TelemetryGuard {
    /// False when another subscriber was already installed (a second call in
    /// one test binary): that call changed nothing.
    pub fn is_installed(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(error.message = %error, "cannot flush traces");
        }
    }
}

/// Installs logging and tracing for the process. Idempotent: a second call
/// (several tests in one binary) leaves the first subscriber in place and
/// returns an inert guard. With an OTLP endpoint it must run inside a Tokio
/// runtime, which the gRPC exporter uses.
pub fn init(config: &TelemetryConfig) -> RuntimeResult<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = tracer_provider(config)?;
    let subscriber = subscriber(config, &provider)?;
    match subscriber.try_init() {
        Ok(()) => {
            opentelemetry::global::set_tracer_provider(provider.clone());
            match &config.otlp_endpoint {
                Some(endpoint) => tracing::info!(endpoint = %endpoint, "exporting traces"),
                None => tracing::debug!("no otlp endpoint: traces are not exported"),
            }
            Ok(TelemetryGuard {
                provider: Some(provider),
            })
        }
        Err(_) => {
            let _ = provider.shutdown();
            tracing::debug!("telemetry already initialised; keeping the existing subscriber");
            Ok(TelemetryGuard { provider: None })
        }
    }
}

/// The tracer provider: with a batch OTLP exporter when an endpoint is set,
/// else recording ids only.
pub fn tracer_provider(config: &TelemetryConfig) -> RuntimeResult<SdkTracerProvider> {
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if let Some(endpoint) = &config.otlp_endpoint {
        use opentelemetry_otlp::WithExportConfig as _;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
            .map_err(|error| RuntimeError::Telemetry {
                message: format!("otlp exporter: {error}"),
            })?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// The subscriber [`init`] installs, for tests that want it for one scope
/// only (`tracing::subscriber::with_default`).
pub fn subscriber(
    config: &TelemetryConfig,
    provider: &SdkTracerProvider,
) -> RuntimeResult<Box<dyn Subscriber + Send + Sync>> {
    // The log filter applies to the logs only: turning logs down to `warn`
    // must not turn tracing off, or traces would lose their spans and
    // `traceparent` would stop flowing between services.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(config.service_name.clone()))
        .with_filter(LevelFilter::INFO);
    let logs = match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .boxed(),
    };
    Ok(Box::new(
        tracing_subscriber::registry()
            .with(otel)
            .with(logs.with_filter(env_filter()?)),
    ))
}

fn env_filter() -> RuntimeResult<EnvFilter> {
    let configured = [LOG_FILTER_ENV, "RUST_LOG"].into_iter().find_map(|variable| {
        std::env::var(variable)
            .ok()
            .filter(|value| !value.trim().is_empty())
            .map(|value| (variable, value))
    });
    match configured {
        Some((variable, directives)) => EnvFilter::try_new(&directives)
            .map_err(|error| RuntimeError::config(variable, format!("invalid log filter: {error}"))),
        None => Ok(EnvFilter::new(DEFAULT_LOG_FILTER)),
    }
}

/// Reads `traceparent`/`tracestate` from HTTP headers (gRPC metadata is HTTP/2
/// headers too).
struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// The trace context of an incoming request's headers.
pub fn extract_context(headers: &HeaderMap) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)))
}

/// Writes the current span's trace context into outgoing gRPC metadata.
pub fn inject_context(metadata: &mut MetadataMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut MetadataInjector(metadata));
    });
}

/// A tonic client interceptor sending the caller's trace:
/// `CaseServiceClient::with_interceptor(channel, TraceContextInterceptor)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContextInterceptor;

impl tonic::service::Interceptor for TraceContextInterceptor {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        inject_context(request.metadata_mut());
        Ok(request)
    }
}

/// Opens a `request` span per incoming call, child of the caller's trace.
/// The span names the route only: the gRPC method path, or for HTTP the
/// policy pattern the path matched, since a raw path or query may carry a
/// reference, a postcode or an email address.
#[derive(Clone)]
pub struct TraceLayer {
    policy: Arc<Policy>,
    metrics: Option<RequestMetrics>,
}

impl std::fmt::Debug for TraceLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceLayer")
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

impl TraceLayer {
    pub fn new(policy: Arc<Policy>) -> TraceLayer {
        TraceLayer {
            policy,
            metrics: None,
        }
    }

    /// Also counts and times requests per route and status.
    pub fn with_metrics(self, metrics: RequestMetrics) -> TraceLayer {
        TraceLayer {
            metrics: Some(metrics),
            ..self
        }
    }

    fn route(&self, path: &str, grpc: bool) -> String {
        if grpc {
            // A method path is a fully-qualified name; anything else shaped
            // differently is not logged verbatim.
            let is_method_path = path.starts_with('/')
                && path.matches('/').count() == 2
                && path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_'));
            return if is_method_path {
                path.to_owned()
            } else {
                "unknown".to_owned()
            };
        }
        self.policy
            .rule_for(path)
            .map_or_else(|| "unmatched".to_owned(), |rule| rule.pattern.clone())
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`TraceLayer`] makes.
#[derive(Clone)]
pub struct TraceService<S> {
    inner: S,
    layer: TraceLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for TraceService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let grpc = is_grpc(request.headers());
        let protocol = if grpc { "grpc" } else { "http" };
        let route = self.layer.route(request.uri().path(), grpc);
        let span = tracing::info_span!(
            "request",
            otel.name = %route,
            otel.kind = "server",
            otel.status_code = Empty,
            rpc.system = Empty,
            http.request.method = %request.method(),
            http.route = %route,
            http.response.status_code = Empty,
            rpc.grpc.status_code = Empty,
        );
        if grpc {
            span.record("rpc.system", "grpc");
        }
        // Without the OpenTelemetry layer (a test subscriber) there is no
        // trace to join; the span still works for logs.
        let _ = span.set_parent(extract_context(request.headers()));
        let future = span.in_scope(|| self.inner.call(request));
        let metrics = self.layer.metrics.clone();
        let started = Instant::now();
        Box::pin(
            async move {
                let result = future.await;
                let span = tracing::Span::current();
                let status = match &result {
                    Ok(response) => {
                        let status = response_status(response, grpc);
                        if grpc {
                            span.record("rpc.grpc.status_code", status.as_str());
                        } else {
                            span.record("http.response.status_code", status.as_str());
                        }
                        if is_server_error(&status, grpc) {
                            span.record("otel.status_code", "ERROR");
                        }
                        status
                    }
                    Err(error) => {
                        span.record("otel.status_code", "ERROR");
                        tracing::warn!(error.message = %error, "request failed");
                        "error".to_owned()
                    }
                };
                let elapsed = started.elapsed().as_secs_f64();
                tracing::debug!(status = %status, elapsed_ms = elapsed * 1000.0, "request answered");
                if let Some(metrics) = metrics {
                    metrics.record(protocol, &route, &status, elapsed);
                }
                result
            }
            .instrument(span),
        )
    }
}

/// The status to record. For gRPC, a `grpc-status` header means a
/// trailers-only answer (how tonic answers every unary error); without it the
/// call succeeded as far as the response head can tell, and a later error of
/// a stream arrives in trailers this layer does not wait for.
fn response_status<B>(response: &Response<B>, grpc: bool) -> String {
    if grpc {
        response
            .headers()
            .get("grpc-status")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("0")
            .to_owned()
    } else {
        response.status().as_u16().to_string()
    }
}

fn is_server_error(status: &str, grpc: bool) -> bool {
    if grpc {
        // UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE,
        // DATA_LOSS: the server's fault, not the caller's.
        matches!(status, "2" | "4" | "12" | "13" | "14" | "15")
    } else {
        status.starts_with('5')
    }
}

#[cfg(test)]
// figment::Jail fixes its closures' error type; its size is not ours to choose.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt as _;
    use std::convert::Infallible;
    use tower::ServiceExt as _;

    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    #[test]
    fn init_is_safe_to_call_twice() {
        figment::Jail::expect_with(|jail| {
            // The global subscriber outlives this test; keep it quiet.
            jail.set_env(LOG_FILTER_ENV, "off");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let first = init(&TelemetryConfig::new("switchboard-test")).expect("first init");
                let second = init(&TelemetryConfig::new("switchboard-test")).expect("second init");
                assert!(first.is_installed(), "the first call in this binary installs");
                assert!(!second.is_installed(), "the second leaves the first in place");
            });
            Ok(())
        });
    }

    #[test]
    fn an_invalid_log_filter_names_its_variable() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(LOG_FILTER_ENV, "info,[[[");
            let error = subscriber(&TelemetryConfig::new("t"), &SdkTracerProvider::builder().build())
                .err()
                .expect("invalid filter");
            assert!(
                error
                    .to_string()
                    .starts_with("SWITCHBOARD_LOG: invalid log filter"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn request_span_continues_the_incoming_trace_and_the_interceptor_sends_it_on() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let config = TelemetryConfig::new("switchboard-test");
        let provider = tracer_provider(&config).expect("provider");
        let subscriber = subscriber(&config, &provider).expect("subscriber");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        tracing::subscriber::with_default(subscriber, || {
            runtime.block_on(async {
                let service = TraceLayer::new(Arc::new(Policy::standard())).layer(tower::service_fn(
                    |_request: Request<()>| async {
                        // Inside the handler: the current span belongs to the caller's trace,
                        // and an outgoing call carries it on.
                        let trace_id = tracing::Span::current()
                            .context()
                            .span()
                            .span_context()
                            .trace_id();
                        let mut outgoing = tonic::Request::new(());
                        let mut interceptor = TraceContextInterceptor;
                        outgoing =
                            tonic::service::Interceptor::call(&mut interceptor, outgoing).expect("inject");
                        let traceparent = outgoing
                            .metadata()
                            .get("traceparent")
                            .and_then(|value| value.to_str().ok())
                            .map(str::to_owned);
                        Ok::<_, Infallible>(Response::new((trace_id.to_string(), traceparent)))
                    },
                ));
                let request = Request::builder()
                    .uri("/switchboard.v1.CaseService/GetCase")
                    .header("content-type", "application/grpc")
                    .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
                    .body(())
                    .expect("request");
                let response = service.oneshot(request).await.expect("infallible");
                let (trace_id, traceparent) = response.into_body();
                assert_eq!(trace_id, TRACE_ID);
                let traceparent = traceparent.expect("traceparent sent on");
                assert!(
                    traceparent.starts_with(&format!("00-{TRACE_ID}-")),
                    "{traceparent}"
                );
                assert!(
                    !traceparent.contains("00f067aa0ba902b7"),
                    "a new span id for this hop"
                );
            });
        });
        let _ = provider.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_otlp_endpoint_adds_an_exporter_that_fails_quietly_without_a_collector() {
        // Port 9 (discard) on loopback: nothing listens, so export fails fast.
        let config = TelemetryConfig {
            otlp_endpoint: Some("http://127.0.0.1:9".to_owned()),
            ..TelemetryConfig::new("switchboard-test")
        };
        let provider = tracer_provider(&config).expect("exporter builds without connecting");
        let subscriber = subscriber(&config, &provider).expect("subscriber");
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("exported").in_scope(|| tracing::info!("inside a span"));
        });
        let started = Instant::now();
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown())
            .await
            .expect("join");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "shutdown does not hang"
        );
        // Whether the flush reports the failed export is the SDK's business;
        // what matters is that it returns.
        let _ = flushed;
    }

    #[test]
    fn routes_never_carry_raw_http_paths() {
        let layer = TraceLayer::new(Arc::new(Policy::standard()));
        assert_eq!(
            layer.route("/switchboard.v1.CaseService/GetCase", true),
            "/switchboard.v1.CaseService/GetCase"
        );
        assert_eq!(layer.route("/a/b/c?email=x@y", true), "unknown");
        assert_eq!(layer.route("/forms/report-a-missed-bin", false), "/forms/*");
        assert_eq!(layer.route("/customers/SO43 7PN", false), "unmatched");
    }
}
