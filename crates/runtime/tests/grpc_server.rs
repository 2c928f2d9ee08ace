//! The gRPC server as a binary builds it, on a real port, called with real
//! tonic clients: health and reflection answer anyone, a protected method
//! refuses missing and wrong-role credentials, admits the right ones with
//! their principal, and an oversized message is `RESOURCE_EXHAUSTED`.

use std::{sync::Arc, time::Duration};

use switchboard_proto::v1::{
    GetCaseRequest, SubmitContactRequest, SubmitContactResponse,
    case_service_client::CaseServiceClient,
    intake_service_client::IntakeServiceClient,
    intake_service_server::{IntakeService, IntakeServiceServer},
};
use switchboard_runtime::{
    GrpcServer, Health, Metrics, Principal, Role, ServerLayers, Shutdown, auth::Policy,
    testing::TestCredentials,
};
use tokio::{net::TcpListener, task::JoinHandle};
use tonic::{Code, Request, Status, metadata::MetadataValue, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Answers with the caller's subject, so the test sees the principal arrive.
struct EchoIntake;

#[tonic::async_trait]
impl IntakeService for EchoIntake {
    async fn submit_contact(
        &self,
        request: Request<SubmitContactRequest>,
    ) -> Result<tonic::Response<SubmitContactResponse>, Status> {
        let principal = Principal::require(&request)?;
        Ok(tonic::Response::new(SubmitContactResponse {
            contact_id: String::new(),
            reference: principal.subject.clone(),
        }))
    }
}

struct TestServer {
    channel: Channel,
    credentials: TestCredentials,
    metrics: Metrics,
    shutdown: Shutdown,
    server: JoinHandle<()>,
}

async fn start() -> TestServer {
    let credentials = TestCredentials::new();
    let metrics = Metrics::new();
    let health = Health::new(metrics.clone());
    let layers = ServerLayers::new(
        credentials.authenticator(),
        Arc::new(Policy::standard()),
        &metrics,
    );
    let grpc = GrpcServer::new(&health, &layers, MAX_MESSAGE_BYTES)
        .expect("grpc server")
        .add_service(IntakeServiceServer::new(EchoIntake));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let address = listener.local_addr().expect("address");
    let shutdown = Shutdown::new();
    let server = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { grpc.serve(listener, shutdown.wait_owned()).await.expect("serves") }
    });
    let channel = Channel::from_shared(format!("http://{address}"))
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    TestServer {
        channel,
        credentials,
        metrics,
        shutdown,
        server,
    }
}

impl TestServer {
    async fn stop(self) {
        drop(self.channel);
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("server stops on shutdown")
            .expect("server task");
    }
}

fn with_bearer<T>(message: T, bearer: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(bearer).expect("ascii header"),
    );
    request
}

fn contact(summary: String) -> SubmitContactRequest {
    SubmitContactRequest {
        summary,
        ..SubmitContactRequest::default()
    }
}

#[tokio::test]
async fn health_and_reflection_answer_without_credentials() {
    let server = start().await;

    let mut health = HealthClient::new(server.channel.clone());
    let response = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health needs no credentials");
    assert_eq!(response.into_inner().status, ServingStatus::Serving as i32);

    let mut reflection = ServerReflectionClient::new(server.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection needs no credentials")
        .into_inner();
    let response = responses.message().await.expect("stream").expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a list of services, got {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|service| service.name).collect();
    for expected in [
        "switchboard.v1.IntakeService",
        "switchboard.v1.CaseService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} missing from {names:?}"
        );
    }

    server.stop().await;
}

#[tokio::test]
async fn protected_methods_refuse_missing_invalid_and_wrong_role_credentials() {
    let server = start().await;
    let mut intake = IntakeServiceClient::new(server.channel.clone());

    let status = intake
        .submit_contact(contact("a".into()))
        .await
        .expect_err("no credentials");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    let status = intake
        .submit_contact(with_bearer(contact("a".into()), "Bearer sbk_not-a-real-key"))
        .await
        .expect_err("unknown key");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    let analyst = server.credentials.bearer(Role::Analyst);
    let status = intake
        .submit_contact(with_bearer(contact("a".into()), &analyst))
        .await
        .expect_err("analysts do not submit");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // An intake client may submit but not read cases, even of a service this
    // server does not host: the policy answers before routing does.
    let intake_key = server.credentials.intake_bearer();
    let mut cases = CaseServiceClient::new(server.channel.clone());
    let status = cases
        .get_case(with_bearer(GetCaseRequest::default(), &intake_key))
        .await
        .expect_err("intake reads no cases");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let agent = server.credentials.bearer(Role::Agent);
    let status = cases
        .get_case(with_bearer(GetCaseRequest::default(), &agent))
        .await
        .expect_err("not hosted here");
    assert_eq!(
        status.code(),
        Code::Unimplemented,
        "an agent gets past auth: {status:?}"
    );

    server.stop().await;
}

#[tokio::test]
async fn admitted_calls_carry_their_principal_and_are_counted() {
    let server = start().await;
    let mut intake = IntakeServiceClient::new(server.channel.clone());

    let response = intake
        .submit_contact(with_bearer(
            contact("a".into()),
            &server.credentials.intake_bearer(),
        ))
        .await
        .expect("intake clients submit");
    assert_eq!(response.into_inner().reference, "api-key:test-intake");
    let agent = server.credentials.bearer(Role::Agent);
    let response = intake
        .submit_contact(with_bearer(contact("a".into()), &agent))
        .await
        .expect("agents submit");
    assert_eq!(response.into_inner().reference, "test-agent");

    let text = server.metrics.encode();
    assert!(
        text.contains(
            r#"switchboard_requests_total{protocol="grpc",route="/switchboard.v1.IntakeService/SubmitContact",status="0"} 2"#
        ),
        "{text}"
    );

    server.stop().await;
}

#[tokio::test]
async fn oversized_messages_are_resource_exhausted() {
    let server = start().await;
    let mut intake = IntakeServiceClient::new(server.channel.clone());
    let bearer = server.credentials.intake_bearer();

    let status = intake
        .submit_contact(with_bearer(contact("x".repeat(MAX_MESSAGE_BYTES + 1)), &bearer))
        .await
        .expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    intake
        .submit_contact(with_bearer(contact("x".repeat(MAX_MESSAGE_BYTES - 100)), &bearer))
        .await
        .expect("just under the limit is fine");

    server.stop().await;
}
