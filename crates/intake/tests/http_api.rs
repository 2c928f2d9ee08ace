//! `POST /v1/contacts` over a real server on 127.0.0.1:0: malformed and invalid
//! bodies are refused as problems naming the field, nothing of them stored;
//! idempotent replays answer the same 201; the `Location` it answers serves
//! the contact's receipt.

mod common;

use serde_json::{Value, json};
use switchboard_intake::{
    IntakeGrpc, IntakeStore, MAX_HTTP_BODY_BYTES, SqliteIntakeStore, WriterConfig, api_router,
};
use switchboard_proto::v1::intake_service_client::IntakeServiceClient;
use tokio_stream::wrappers::TcpListenerStream;

use common::{HttpClient, TestStore, phone_request, serve_http, sqlite_store, start_intake};

async fn start() -> (
    HttpClient,
    TestStore<SqliteIntakeStore>,
    switchboard_intake::Intake,
) {
    let test = sqlite_store().await;
    let (intake, _wake) = start_intake(test.store.clone(), WriterConfig::for_sqlite());
    let address = serve_http(api_router(intake.clone())).await;
    (HttpClient::new(address), test, intake)
}

/// The phone request in its proto3 JSON form.
fn valid_body() -> Value {
    serde_json::to_value(phone_request()).expect("proto3 JSON")
}

fn with(change: impl FnOnce(&mut Value)) -> Value {
    let mut body = valid_body();
    change(&mut body);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_fields_are_422_naming_the_json_field() {
    let (client, test, _) = start().await;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "unspecified channel",
            with(|b| b["channel"] = json!("CHANNEL_UNSPECIFIED")),
            "channel",
        ),
        (
            "no channel",
            with(|b| {
                b.as_object_mut()
                    .expect("object")
                    .remove("channel")
                    .map(drop)
                    .unwrap_or(())
            }),
            "channel",
        ),
        (
            "unknown service",
            with(|b| b["service"] = json!("dragon-control")),
            "service",
        ),
        (
            "phone number",
            with(|b| b["customer"]["phone"] = json!("12")),
            "customer.phone",
        ),
        (
            "email",
            with(|b| b["customer"]["email"] = json!("nobody")),
            "customer.email",
        ),
        (
            "postcode",
            with(|b| b["customer"]["postcode"] = json!("ZZ")),
            "customer.postcode",
        ),
        ("summary", with(|b| b["summary"] = json!("")), "summary"),
        (
            "vulnerable without consent",
            with(|b| b["needs"]["vulnerable"] = json!(true)),
            "needs.vulnerable",
        ),
        (
            "unknown office",
            with(|b| {
                b["channel"] = json!("CHANNEL_FACE_TO_FACE");
                b.as_object_mut().expect("object").remove("phone");
                b["faceToFace"] = json!({"officeId": "atlantis"});
            }),
            "faceToFace.officeId",
        ),
    ];
    for (case, body, field) in cases {
        let answer = client.post_json("/v1/contacts", &[], &body).await;
        assert_eq!(answer.status, 422, "{case}: {}", answer.text());
        assert_eq!(
            answer.header("content-type"),
            Some("application/problem+json"),
            "{case}"
        );
        let fields = answer.problem_fields();
        assert!(
            fields.iter().any(|named| named == field),
            "{case}: expected {field}, got {fields:?}"
        );
    }
    assert_eq!(test.store.contact_count().await.expect("count"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_400_naming_the_field() {
    let (client, test, _) = start().await;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "unknown top-level field",
            with(|b| b["shoeSize"] = json!(9)).to_string().into_bytes(),
            "shoeSize",
        ),
        (
            "unknown nested field",
            with(|b| b["customer"]["shoeSize"] = json!("9"))
                .to_string()
                .into_bytes(),
            "customer.shoeSize",
        ),
        (
            "wrong type",
            with(|b| b["summary"] = json!(5)).to_string().into_bytes(),
            "summary",
        ),
        (
            "unknown enum value",
            with(|b| b["channel"] = json!("CHANNEL_TELEPATHY"))
                .to_string()
                .into_bytes(),
            "channel",
        ),
        (
            "map value not a string",
            with(|b| b["details"]["account"] = json!([1]))
                .to_string()
                .into_bytes(),
            "details.account",
        ),
        ("not JSON", b"channel=phone".to_vec(), "body"),
        (
            "trailing data",
            format!("{} {{}}", valid_body()).into_bytes(),
            "body",
        ),
    ];
    for (case, body, field) in cases {
        let answer = client
            .send(
                http::Method::POST,
                "/v1/contacts",
                &[("content-type", "application/json")],
                body,
            )
            .await;
        assert_eq!(answer.status, 400, "{case}: {}", answer.text());
        assert_eq!(
            answer.header("content-type"),
            Some("application/problem+json"),
            "{case}"
        );
        let fields = answer.problem_fields();
        assert_eq!(fields, vec![field.to_owned()], "{case}: {}", answer.text());
    }
    assert_eq!(test.store.contact_count().await.expect("count"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_media_type_bad_keys_and_oversize_are_refused() {
    let (client, test, _) = start().await;
    let body = valid_body().to_string();

    let answer = client
        .send(
            http::Method::POST,
            "/v1/contacts",
            &[("content-type", "text/plain")],
            body.clone(),
        )
        .await;
    assert_eq!(answer.status, 415, "{}", answer.text());

    let long_key = "k".repeat(300);
    let answer = client
        .post_json("/v1/contacts", &[("idempotency-key", &long_key)], &valid_body())
        .await;
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert_eq!(answer.problem_fields(), vec!["Idempotency-Key"]);

    let answer = client
        .post_json(
            "/v1/contacts",
            &[("idempotency-key", "header-key")],
            &with(|b| b["idempotencyKey"] = json!("body-key")),
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert_eq!(answer.problem_fields(), vec!["Idempotency-Key"]);

    let huge = with(|b| b["details"]["notes"] = json!("x".repeat(MAX_HTTP_BODY_BYTES)));
    let answer = client.post_json("/v1/contacts", &[], &huge).await;
    assert_eq!(answer.status, 413, "{}", answer.text());
    assert_eq!(answer.header("content-type"), Some("application/problem+json"));

    assert_eq!(test.store.contact_count().await.expect("count"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_then_replayed_then_refused_for_another_body() {
    let (client, test, _) = start().await;
    let key = [("idempotency-key", "\"web-2024-0001\"")];

    let created = client.post_json("/v1/contacts", &key, &valid_body()).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let body = created.json();
    let contact_id = body["contactId"].as_str().expect("contactId").to_owned();
    assert!(body["reference"].as_str().expect("reference").starts_with("SB-"));
    assert_eq!(
        created.header("location"),
        Some(format!("/v1/contacts/{contact_id}").as_str())
    );
    assert_eq!(created.header("idempotent-replayed"), None);

    let replayed = client.post_json("/v1/contacts", &key, &valid_body()).await;
    assert_eq!(replayed.status, 201, "a replay answers as the original did");
    assert_eq!(replayed.json(), body);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(replayed.header("location"), created.header("location"));

    let refused = client
        .post_json(
            "/v1/contacts",
            &key,
            &with(|b| b["summary"] = json!("Another matter")),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text());
    assert_eq!(refused.problem_fields(), vec!["Idempotency-Key"]);

    assert_eq!(test.store.contact_count().await.expect("count"), 1);
    assert_eq!(test.store.unsent_outbox_count().await.expect("count"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_location_of_a_created_contact_serves_its_receipt() {
    let (client, _test, _) = start().await;
    let created = client.post_json("/v1/contacts", &[], &valid_body()).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let location = created.header("location").expect("location").to_owned();

    let receipt = client.get(&location).await;
    assert_eq!(receipt.status, 200, "{}", receipt.text());
    let body = receipt.json();
    assert_eq!(body["contactId"], created.json()["contactId"]);
    assert_eq!(body["reference"], created.json()["reference"]);
    assert_eq!(body["channel"], "CHANNEL_PHONE");
    assert_eq!(body["service"], valid_body()["service"]);
    assert!(
        chrono::DateTime::parse_from_rfc3339(body["receivedAt"].as_str().expect("receivedAt")).is_ok(),
        "{body}"
    );
    let text = receipt.text();
    let customer = valid_body()["customer"].clone();
    for personal in [&customer["name"], &customer["phone"]] {
        let personal = personal
            .as_str()
            .expect("the test request names and phones its resident");
        assert!(
            !text.contains(personal),
            "the receipt holds no personal data: {text}"
        );
    }

    let unknown = client
        .get("/v1/contacts/0190f0e2-5a3b-7c4d-8e9f-0a1b2c3d4e5f")
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    assert_eq!(unknown.header("content-type"), Some("application/problem+json"));
    let malformed = client.get("/v1/contacts/SB-not-an-id").await;
    assert_eq!(malformed.status, 400, "{}", malformed.text());
    assert_eq!(malformed.problem_fields(), vec!["contactId"]);
}

/// A key hashes alike over gRPC and JSON: a client may retry on either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_replays_across_grpc_and_http() {
    let (client, test, intake) = start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(IntakeGrpc::new(intake).into_server())
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let mut grpc = IntakeServiceClient::connect(format!("http://{address}"))
        .await
        .expect("connect");
    let mut request = phone_request();
    request.idempotency_key = "either-way".to_owned();
    let over_grpc = grpc
        .submit_contact(request.clone())
        .await
        .expect("stored")
        .into_inner();

    let over_http = client
        .post_json(
            "/v1/contacts",
            &[],
            &serde_json::to_value(&request).expect("json"),
        )
        .await;
    assert_eq!(over_http.status, 201, "{}", over_http.text());
    assert_eq!(over_http.json()["contactId"], json!(over_grpc.contact_id));
    assert_eq!(over_http.header("idempotent-replayed"), Some("true"));
    assert_eq!(test.store.contact_count().await.expect("count"), 1);
}
