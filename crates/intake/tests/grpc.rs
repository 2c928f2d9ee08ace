//! `IntakeService` over a real in-process tonic server on 127.0.0.1:0: bad input
//! is refused with the field named and nothing stored; good input is stored
//! once per idempotency key.

mod common;

use switchboard_intake::{IntakeGrpc, IntakeStore, MAX_GRPC_REQUEST_BYTES, SqliteIntakeStore, WriterConfig};
use switchboard_proto::v1::intake_service_client::IntakeServiceClient;
use switchboard_proto::v1::{self, submit_contact_request::Origin};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use common::{TestStore, phone_request, sqlite_store, start_intake};

async fn start() -> (IntakeServiceClient<Channel>, TestStore<SqliteIntakeStore>) {
    let test = sqlite_store().await;
    let (intake, _wake) = start_intake(test.store.clone(), WriterConfig::for_sqlite());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(IntakeGrpc::new(intake).into_server())
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let client = IntakeServiceClient::connect(format!("http://{address}"))
        .await
        .expect("connect");
    (client, test)
}

type Change = fn(&mut v1::SubmitContactRequest);

/// Each case: what it breaks, how, and the field the answer must name.
fn bad_requests() -> Vec<(&'static str, Change, &'static str)> {
    fn customer(request: &mut v1::SubmitContactRequest) -> &mut v1::Customer {
        request.customer.get_or_insert_with(Default::default)
    }
    vec![
        (
            "unspecified channel",
            |r| r.channel = v1::Channel::Unspecified as i32,
            "channel",
        ),
        ("unknown channel number", |r| r.channel = 42, "channel"),
        ("no service", |r| r.service.clear(), "service"),
        (
            "unknown service",
            |r| r.service = "dragon-control".to_owned(),
            "service",
        ),
        (
            "service not offered on the channel",
            |r| {
                r.channel = v1::Channel::Letter as i32;
                r.service = "missed-bins".to_owned();
                r.origin = None;
            },
            "service",
        ),
        (
            "no way to reach the resident",
            |r| {
                let customer = customer(r);
                customer.phone.clear();
                customer.email.clear();
                r.origin = None;
            },
            "customer",
        ),
        (
            "phone number",
            |r| customer(r).phone = "not a number".to_owned(),
            "customer.phone",
        ),
        (
            "email address",
            |r| customer(r).email = "ada@".to_owned(),
            "customer.email",
        ),
        (
            "postcode",
            |r| customer(r).postcode = "ZZ".to_owned(),
            "customer.postcode",
        ),
        ("uprn", |r| customer(r).uprn = "12ab".to_owned(), "customer.uprn"),
        ("empty summary", |r| r.summary = "   ".to_owned(), "summary"),
        ("summary too long", |r| r.summary = "x".repeat(501), "summary"),
        (
            "detail key",
            |r| {
                r.details.insert("Not A Key!".to_owned(), "value".to_owned());
            },
            "details.Not A Key!",
        ),
        (
            "language tag",
            |r| r.needs.get_or_insert_with(Default::default).language = "not a language!".to_owned(),
            "needs.language",
        ),
        (
            "vulnerable without consent",
            |r| r.needs.get_or_insert_with(Default::default).vulnerable = true,
            "needs.vulnerable",
        ),
        (
            "origin of another channel",
            |r| r.origin = Some(Origin::Web(v1::WebOrigin::default())),
            "web",
        ),
        (
            "caller number",
            |r| {
                r.origin = Some(Origin::Phone(v1::PhoneOrigin {
                    caller_number: "12".to_owned(),
                    ..Default::default()
                }))
            },
            "phone.caller_number",
        ),
        (
            "unknown office",
            |r| {
                r.channel = v1::Channel::FaceToFace as i32;
                r.origin = Some(Origin::FaceToFace(v1::FaceToFaceOrigin {
                    office_id: "atlantis".to_owned(),
                    desk: String::new(),
                }));
            },
            "face_to_face.office_id",
        ),
        (
            "idempotency key too long",
            |r| r.idempotency_key = "k".repeat(256),
            "idempotency_key",
        ),
        (
            "idempotency key with control characters",
            |r| r.idempotency_key = "key\n1".to_owned(),
            "idempotency_key",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_name_the_field_and_store_nothing() {
    let (mut client, test) = start().await;
    for (case, change, field) in bad_requests() {
        let mut request = phone_request();
        change(&mut request);
        let status = client.submit_contact(request).await.expect_err(case);
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
        let fields: Vec<String> = status
            .get_details_bad_request()
            .unwrap_or_else(|| panic!("{case}: no BadRequest details"))
            .field_violations
            .into_iter()
            .map(|violation| violation.field)
            .collect();
        assert!(
            fields.iter().any(|named| named == field),
            "{case}: expected {field}, got {fields:?}"
        );
    }
    assert_eq!(test.store.contact_count().await.expect("count"), 0);
    assert_eq!(test.store.unsent_outbox_count().await.expect("count"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_is_resource_exhausted() {
    let (mut client, test) = start().await;
    let mut request = phone_request();
    request
        .details
        .insert("notes".to_owned(), "x".repeat(MAX_GRPC_REQUEST_BYTES));
    let status = client.submit_contact(request).await.expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(test.store.contact_count().await.expect("count"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_is_stored_once_per_idempotency_key() {
    let (mut client, test) = start().await;
    let mut request = phone_request();
    request.idempotency_key = "cti-call-1".to_owned();

    let first = client
        .submit_contact(request.clone())
        .await
        .expect("stored")
        .into_inner();
    assert!(uuid::Uuid::parse_str(&first.contact_id).is_ok());
    assert!(first.reference.starts_with("SB-"), "{}", first.reference);

    let again = client
        .submit_contact(request.clone())
        .await
        .expect("replayed")
        .into_inner();
    assert_eq!(again, first);

    request.summary = "Something else entirely".to_owned();
    let status = client.submit_contact(request).await.expect_err("reused key");
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");

    let without_key = client
        .submit_contact(phone_request())
        .await
        .expect("stored")
        .into_inner();
    assert_ne!(without_key.contact_id, first.contact_id);

    assert_eq!(test.store.contact_count().await.expect("count"), 2);
    assert_eq!(test.store.unsent_outbox_count().await.expect("count"), 2);
    let stored = test
        .store
        .contact(switchboard_domain::ContactId::parse(&first.contact_id).expect("id"))
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.reference.as_str(), first.reference);
}
