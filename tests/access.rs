//! Who may call what, and what bad input gets, through the whole system as a
//! client meets it: the binary's servers with their auth layer in front.

use std::collections::BTreeMap;

use switchboard_proto::v1::{
    Channel, Customer, GetContactRequest, SearchCustomersRequest, SubmitContactRequest,
    case_service_client::CaseServiceClient, intake_service_client::IntakeServiceClient,
};
use switchboard_runtime::Role;
use switchboard_tests::{Bearer, TestSystem, Workload, workload::request_for};
use tonic::{Code, transport::Channel as GrpcChannel};
use tonic_types::StatusExt;

fn valid_request() -> SubmitContactRequest {
    let workload = Workload::new(1_000, 1, 1);
    workload.contacts[0].request.clone()
}

async fn grpc_channel(system: &TestSystem) -> GrpcChannel {
    GrpcChannel::from_shared(format!("http://{}", system.intake_grpc))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_need_credentials_and_the_right_role() {
    let system = TestSystem::embedded().await.expect("system");
    let channel = grpc_channel(&system).await;

    let anonymous = IntakeServiceClient::new(channel.clone())
        .submit_contact(valid_request())
        .await;
    assert_eq!(
        anonymous.expect_err("no credentials").code(),
        Code::Unauthenticated
    );

    let forged = IntakeServiceClient::with_interceptor(channel.clone(), Bearer::new("sbk_not-a-real-key"))
        .submit_contact(valid_request())
        .await;
    assert_eq!(forged.expect_err("unknown key").code(), Code::Unauthenticated);

    let analyst =
        IntakeServiceClient::with_interceptor(channel.clone(), Bearer::new(&system.token(Role::Analyst)))
            .submit_contact(valid_request())
            .await;
    assert_eq!(
        analyst.expect_err("analysts do not take contacts").code(),
        Code::PermissionDenied
    );

    let accepted = IntakeServiceClient::with_interceptor(channel.clone(), Bearer::new(&system.intake_key()))
        .submit_contact(valid_request())
        .await
        .expect("the intake key may submit")
        .into_inner();

    let as_intake = CaseServiceClient::with_interceptor(channel.clone(), Bearer::new(&system.intake_key()))
        .get_contact(GetContactRequest {
            contact_id: accepted.contact_id.clone(),
        })
        .await;
    assert_eq!(
        as_intake.expect_err("intake clients cannot read cases").code(),
        Code::PermissionDenied
    );

    let mut cases = system.cases_client().await.expect("agent client");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let record = switchboard_tests::wait_for_contact(&mut cases, &accepted.contact_id, deadline)
        .await
        .expect("an agent reads the contact");
    assert_eq!(record.reference, accepted.reference);
    system.stop().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_bad_input_names_the_fields_and_oversized_requests_are_refused() {
    let system = TestSystem::embedded().await.expect("system");
    let mut intake = system.intake_client().await.expect("intake client");

    let mut bad = valid_request();
    bad.service = "no-such-service".to_owned();
    if let Some(customer) = bad.customer.as_mut() {
        customer.phone = "12".to_owned();
        customer.email = "not an email".to_owned();
    }
    let status = intake.submit_contact(bad).await.expect_err("invalid request");
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = status
        .get_details_bad_request()
        .expect("google.rpc.BadRequest details")
        .field_violations
        .into_iter()
        .map(|violation| violation.field)
        .collect();
    for field in ["service", "customer.phone", "customer.email"] {
        assert!(
            fields.iter().any(|named| named == field),
            "{field} named in {fields:?}"
        );
    }

    let mut unspecified = valid_request();
    unspecified.channel = Channel::Unspecified as i32;
    unspecified.origin = None;
    let status = intake.submit_contact(unspecified).await.expect_err("no channel");
    let bad_request = status.get_details_bad_request().expect("details");
    assert!(
        bad_request
            .field_violations
            .iter()
            .any(|violation| violation.field == "channel")
    );

    let mut huge = valid_request();
    huge.details = (0..40)
        .map(|index| (format!("field{index}"), "x".repeat(50_000)))
        .collect::<BTreeMap<_, _>>();
    let status = intake.submit_contact(huge).await.expect_err("oversized");
    assert_eq!(status.code(), Code::ResourceExhausted);
    system.stop().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_answers_problems_with_the_right_status() {
    let system = TestSystem::embedded().await.expect("system");
    // No connection reuse: the server closes the connection it refused an
    // oversized body on, and a request sent on it meanwhile would fail.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client");
    let url = format!("http://{}/v1/contacts", system.intake_http);

    let anonymous = http
        .post(&url)
        .json(&valid_request())
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["content-type"], "application/problem+json");

    let analyst = http
        .post(&url)
        .bearer_auth(system.token(Role::Analyst))
        .json(&valid_request())
        .send()
        .await
        .expect("request");
    assert_eq!(analyst.status(), 403);

    let mut bad = serde_json::to_value(valid_request()).expect("json");
    bad["customer"]["postcode"] = "not a postcode".into();
    let response = http
        .post(&url)
        .bearer_auth(system.intake_key())
        .json(&bad)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 422);
    let problem: serde_json::Value = response.json().await.expect("problem body");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|error| error["field"].as_str())
        .collect();
    assert!(fields.contains(&"customer.postcode"), "{problem}");

    let oversized = http
        .post(&url)
        .bearer_auth(system.intake_key())
        .header("content-type", "application/json")
        // Over the 64 KiB limit, yet small enough for the socket buffers to
        // take whole: the server answers 413 without reading it and closes,
        // and a body still being written then would fail with a broken pipe
        // before the answer could be read.
        .body(vec![b' '; 96 * 1024])
        .send()
        .await
        .expect("request");
    assert_eq!(oversized.status(), 413);

    // Liveness and the residents' form need no credentials.
    let healthz = http
        .get(format!("http://{}/healthz", system.intake_http))
        .send()
        .await
        .expect("healthz");
    assert_eq!(healthz.status(), 200);
    let form = http
        .get(format!("http://{}/forms/contact", system.intake_http))
        .send()
        .await
        .expect("form");
    assert_eq!(form.status(), 200);
    assert!(
        form.text().await.expect("html").contains("<form"),
        "the form page has a form"
    );
    system.stop().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_posting_the_web_form_gets_a_reference_and_the_contact_reaches_their_case() {
    let system = TestSystem::embedded().await.expect("system");
    // The browser does not follow the redirect itself here, so the test can see it.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let form = [
        ("service", "council-tax"),
        ("name", "Alex Resident"),
        ("phone", "07700 900998"),
        ("email", ""),
        ("postcode", "so41 9zg"),
        ("summary", "I have moved house"),
    ];
    let response = browser
        .post(format!("http://{}/forms/contact", system.intake_http))
        .form(&form)
        .send()
        .await
        .expect("form post");
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        status,
        303,
        "post/redirect/get: {}",
        response.text().await.unwrap_or_default()
    );
    let confirmation = browser
        .get(format!("http://{}{location}", system.intake_http))
        .send()
        .await
        .expect("confirmation")
        .text()
        .await
        .expect("html");
    assert!(
        confirmation.contains("SB-"),
        "the confirmation page shows the reference"
    );

    // The same resident then phones: one customer, one case, both contacts.
    let caller = switchboard_tests::Resident::new(1_001);
    let mut call = request_for(&caller, "council-tax", Channel::Phone, 1);
    if let Some(customer) = call.customer.as_mut() {
        *customer = Customer {
            phone: "+447700900998".to_owned(),
            ..Customer::default()
        };
    }
    if let Some(switchboard_proto::v1::submit_contact_request::Origin::Phone(phone)) = call.origin.as_mut() {
        phone.caller_number = "+447700900998".to_owned();
    }
    let mut intake = system.intake_client().await.expect("intake");
    let accepted = intake
        .submit_contact(call)
        .await
        .expect("call accepted")
        .into_inner();
    let mut cases = system.cases_client().await.expect("cases");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let record = switchboard_tests::wait_for_contact(&mut cases, &accepted.contact_id, deadline)
        .await
        .expect("stored");
    let found = cases
        .search_customers(SearchCustomersRequest {
            phone: "07700 900998".to_owned(),
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner();
    assert_eq!(found.customers.len(), 1, "one customer for the form and the call");
    assert_eq!(found.customers[0].customer_id, record.customer_id);
    let timeline = cases
        .get_customer_timeline(switchboard_proto::v1::GetCustomerTimelineRequest {
            customer_id: record.customer_id.clone(),
            page_size: 50,
            page_token: String::new(),
        })
        .await
        .expect("timeline")
        .into_inner();
    let contacts = timeline
        .entries
        .iter()
        .filter(|entry| {
            matches!(
                entry.entry,
                Some(switchboard_proto::v1::timeline_entry::Entry::Contact(_))
            )
        })
        .count();
    assert_eq!(contacts, 2, "the web form and the call");
    system.stop().await.expect("shutdown");
}
