//! One trace follows a contact from the caller through intake, RabbitMQ and
//! the case store. Intake and cases run as separate `switchboard serve`
//! processes, logging at `warn` only, and export their spans over OTLP/gRPC to
//! a collector this test runs.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{KeyValue, any_value},
    trace::v1::Span,
};
use secrecy::ExposeSecret;
use switchboard_bus::Topology;
use switchboard_proto::v1::Channel;
use switchboard_runtime::{DevCredentials, Role, testing};
use switchboard_tests::{
    Resident, cases_client_at, dev_token, intake_client_at, process::ServiceProcess, wait_for_contact,
    workload::request_for,
};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// A span as exported, with the `service.name` of the process that sent it.
#[derive(Clone, Debug)]
struct Exported {
    service: String,
    span: Span,
}

impl Exported {
    fn attribute(&self, key: &str) -> Option<String> {
        string_attribute(&self.span.attributes, key)
    }
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|attribute| attribute.key == key)
        .and_then(|attribute| attribute.value.as_ref())
        .and_then(|value| match &value.value {
            Some(any_value::Value::StringValue(text)) => Some(text.clone()),
            _ => None,
        })
}

/// An OTLP trace collector that keeps everything it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Exported>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().expect("collector lock");
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|resource| string_attribute(&resource.attributes, "service.name"))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                spans.extend(scope.spans.into_iter().map(|span| Exported {
                    service: service.clone(),
                    span,
                }));
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    async fn start(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        address
    }

    fn in_trace(&self, trace_id: &[u8]) -> Vec<Exported> {
        let spans = self.spans.lock().expect("collector lock");
        spans
            .iter()
            .filter(|exported| exported.span.trace_id == trace_id)
            .cloned()
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_trace_covers_a_contact_from_the_caller_to_its_case() {
    let collector = Collector::default();
    let collector_addr = collector.start().await;
    let database = testing::TestDatabase::create().await;
    let data_dir = tempfile::tempdir().expect("data dir");
    let topology = Topology::random_for_test();
    let environment = [
        ("SWITCHBOARD_DATABASE_URL", database.url.clone()),
        ("SWITCHBOARD_AMQP_URL", testing::amqp_url()),
        ("SWITCHBOARD_AMQP_PREFIX", topology.prefix().to_owned()),
        ("SWITCHBOARD_DATA_DIR", data_dir.path().display().to_string()),
        ("SWITCHBOARD_OTLP_ENDPOINT", format!("http://{collector_addr}")),
    ];
    let intake = ServiceProcess::start("intake", &environment)
        .await
        .expect("intake starts");
    let cases = ServiceProcess::start("cases", &environment)
        .await
        .expect("cases starts");
    let credentials = DevCredentials::load_or_create(data_dir.path()).expect("credentials");

    // The caller (a telephony adapter, say) has a trace of its own.
    let trace_id = *uuid::Uuid::now_v7().as_bytes();
    // The random tail of a UUIDv7.
    let caller_span_id: [u8; 8] = uuid::Uuid::now_v7().as_bytes()[8..]
        .try_into()
        .expect("eight bytes");
    let traceparent = format!("00-{}-{}-01", hex(&trace_id), hex(&caller_span_id));
    let mut client = intake_client_at(intake.grpc_addr, credentials.intake_key.expose_secret())
        .await
        .expect("intake");
    let mut request = Request::new(request_for(&Resident::new(42), "council-tax", Channel::Phone, 1));
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().expect("ascii"));
    let accepted = client
        .submit_contact(request)
        .await
        .expect("accepted")
        .into_inner();

    let mut cases_client = cases_client_at(cases.grpc_addr, &dev_token(&credentials, Role::Agent))
        .await
        .expect("cases");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    wait_for_contact(&mut cases_client, &accepted.contact_id, deadline)
        .await
        .expect("the contact reaches the case store");

    // A graceful stop flushes the span exporters.
    assert!(intake.terminate().await.expect("SIGTERM").success());
    assert!(cases.terminate().await.expect("SIGTERM").success());
    switchboard_tests::delete_topology(&topology).await;

    let mut spans = collector.in_trace(&trace_id);
    let flush_deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !spans
        .iter()
        .any(|exported| exported.service == "switchboard-cases")
        && tokio::time::Instant::now() < flush_deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        spans = collector.in_trace(&trace_id);
    }
    let summary: Vec<String> = spans
        .iter()
        .map(|exported| format!("{} {}", exported.service, exported.span.name))
        .collect();

    let submit = spans
        .iter()
        .find(|exported| exported.service == "switchboard-intake" && exported.span.name == "intake.submit")
        .unwrap_or_else(|| panic!("intake's span in the caller's trace; got {summary:?}"));
    assert_eq!(
        submit.attribute("contact_id").as_deref(),
        Some(accepted.contact_id.as_str()),
        "the span names the contact it stored"
    );
    assert!(
        spans
            .iter()
            .any(|exported| exported.service == "switchboard-intake"
                && exported.span.parent_span_id == caller_span_id),
        "intake's request span continues the caller's span; got {summary:?}"
    );
    let handled = spans
        .iter()
        .find(|exported| {
            exported.service == "switchboard-cases"
                && exported.span.name == "handle event"
                && exported.attribute("event_type").as_deref() == Some("contact.received")
        })
        .unwrap_or_else(|| panic!("the case store's span in the same trace; got {summary:?}"));
    let intake_span_ids: Vec<&[u8]> = spans
        .iter()
        .filter(|exported| exported.service == "switchboard-intake")
        .map(|exported| exported.span.span_id.as_slice())
        .collect();
    assert!(
        intake_span_ids.contains(&handled.span.parent_span_id.as_slice()),
        "the case store's span is a child of one of intake's spans, carried over AMQP; got {summary:?}"
    );
}
