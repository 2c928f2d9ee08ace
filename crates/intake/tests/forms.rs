//! The residents' web form over a real server (with peer addresses, as the
//! binary serves it): accessible markup, errors that keep what was typed, a
//! stored web contact and a confirmation page, rate limiting.

mod common;

use std::sync::Arc;
use std::time::Duration;

use switchboard_domain::{Catalogue, Channel, ContactOrigin, ContactReference};
use switchboard_intake::{
    FormRateLimit, Intake, IntakeMetrics, IntakeStore, SqliteIntakeStore, WriterConfig, public_router,
};
use tokio::sync::Notify;

use common::{HttpClient, TestStore, sealer, serve_http, sqlite_store, start_intake};

async fn start(limit: FormRateLimit) -> (HttpClient, TestStore<SqliteIntakeStore>) {
    let test = sqlite_store().await;
    let (intake, _wake) = start_intake(test.store.clone(), WriterConfig::for_sqlite());
    let address = serve_http(public_router(intake, limit)).await;
    (HttpClient::new(address), test)
}

/// The hidden idempotency key the form was rendered with.
fn form_key(html: &str) -> String {
    let marker = "name=\"idempotency_key\" value=\"";
    let start = html.find(marker).expect("hidden idempotency key") + marker.len();
    html[start..].split('"').next().expect("key value").to_owned()
}

fn valid_form(key: &str) -> Vec<(&'static str, String)> {
    vec![
        ("idempotency_key", key.to_owned()),
        ("service", "missed-bins".to_owned()),
        ("summary", "Bin not collected on Tuesday".to_owned()),
        ("message", "The green bin was out by 7am.".to_owned()),
        ("name", "Grace Hopper".to_owned()),
        ("email", "grace@example.org".to_owned()),
        ("phone", String::new()),
        ("address_line", "2 High Street".to_owned()),
        ("postcode", "so41 9zg".to_owned()),
        ("language", "cy".to_owned()),
        ("needs", "large_print".to_owned()),
        ("needs", "hearing_loop".to_owned()),
    ]
}

fn borrowed<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    fields
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_is_labelled_and_offers_web_services_only() {
    let test = sqlite_store().await;
    let services = r#"
[[services]]
id = "missed-bins"
name = "Missed bin collections"
description = "Report a missed collection."
channels = ["phone", "web"]
case_target_working_days = 5

[[services]]
id = "counter-only"
name = "Counter only service"
description = "Only at the counter."
channels = ["face_to_face"]
case_target_working_days = 5
"#;
    let offices = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../seeds/offices.toml"))
        .expect("seeds/offices.toml");
    let catalogue = Arc::new(Catalogue::from_toml(services, &offices).expect("test catalogue"));
    let (writer, _task) = switchboard_intake::spawn_writer(
        test.store.clone(),
        Arc::new(Notify::new()),
        WriterConfig::for_sqlite(),
        IntakeMetrics::new(),
    );
    let intake = Intake::new(
        test.store.clone(),
        catalogue,
        sealer(),
        writer,
        IntakeMetrics::new(),
    );
    let client = HttpClient::new(serve_http(public_router(intake, FormRateLimit::default())).await);

    let page = client.get("/forms/contact?service=missed-bins").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(
        page.header("content-security-policy")
            .is_some_and(|policy| policy.contains("default-src 'none'"))
    );
    let html = page.text();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<html lang=\"en\">"));
    assert!(html.contains("<title>Send us a message – Contact the council</title>"));
    for (id, autocomplete) in [
        ("name", "name"),
        ("email", "email"),
        ("phone", "tel"),
        ("postcode", "postal-code"),
    ] {
        assert!(html.contains(&format!("<label for=\"{id}\">")), "label for {id}");
        assert!(html.contains(&format!("id=\"{id}\"")), "input {id}");
        assert!(
            html.contains(&format!("autocomplete=\"{autocomplete}\"")),
            "autocomplete {autocomplete}"
        );
    }
    assert!(
        html.contains("<option value=\"missed-bins\" selected>Missed bin collections</option>"),
        "{html}"
    );
    assert!(
        !html.contains("counter-only"),
        "a service not offered on the web is not offered"
    );
    assert!(!html.contains("<script"), "no JavaScript");
    assert!(!form_key(&html).is_empty());

    let css = client.get("/forms/assets/forms.css").await;
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sent_form_is_a_web_contact_with_a_reference_once() {
    let (client, test) = start(FormRateLimit::default()).await;
    let key = form_key(&client.get("/forms/contact").await.text());
    let fields = valid_form(&key);

    let sent = client.post_form("/forms/contact", &borrowed(&fields)).await;
    assert_eq!(sent.status, 303, "{}", sent.text());
    let location = sent.header("location").expect("redirect").to_owned();
    let reference = location
        .strip_prefix("/forms/contact/sent/")
        .expect("confirmation page");
    let reference = ContactReference::parse(reference).expect("a reference");

    let confirmation = client.get(&location).await;
    assert_eq!(confirmation.status, 200);
    assert!(confirmation.text().contains(reference.as_str()));

    // A double submission (same hidden key, same answers) is the same contact.
    let again = client.post_form("/forms/contact", &borrowed(&fields)).await;
    assert_eq!(again.status, 303);
    assert_eq!(again.header("location"), Some(location.as_str()));
    assert_eq!(test.store.contact_count().await.expect("count"), 1);

    let record = switchboard_bus::OutboxStore::fetch_unsent(test.store.as_ref(), 1)
        .await
        .expect("outbox");
    let event =
        <switchboard_proto::v1::Event as prost::Message>::decode(record[0].body.as_slice()).expect("event");
    let id = switchboard_domain::ContactId::parse(&event.subject).expect("subject is the contact id");
    let stored = test.store.contact(id).await.expect("read").expect("stored");
    assert_eq!(stored.reference, reference);
    assert_eq!(stored.contact.channel, Channel::Web);
    assert!(
        matches!(&stored.contact.origin, ContactOrigin::Web { form_id: Some(form), .. } if form == "contact")
    );
    assert_eq!(
        stored.contact.details.get("message").map(String::as_str),
        Some("The green bin was out by 7am.")
    );
    assert!(stored.contact.needs.large_print && stored.contact.needs.hearing_loop);
    assert!(!stored.contact.needs.interpreter);
    assert_eq!(stored.contact.needs.language.as_deref(), Some("cy"));

    let unknown = client.get("/forms/contact/sent/not-a-reference").await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_summarised_linked_and_keep_what_was_typed() {
    let (client, test) = start(FormRateLimit::default()).await;
    let key = form_key(&client.get("/forms/contact").await.text());
    let mut fields = valid_form(&key);
    for (name, value) in fields.iter_mut() {
        match *name {
            "summary" => value.clear(),
            "email" => *value = "grace-at-example".to_owned(),
            "name" => *value = "<b>Grace</b>".to_owned(),
            _ => {}
        }
    }
    fields.push(("vulnerable", "yes".to_owned()));

    let page = client.post_form("/forms/contact", &borrowed(&fields)).await;
    assert_eq!(page.status, 422);
    let html = page.text();
    assert!(
        html.contains("<title>Error: Send us a message"),
        "title says there is an error"
    );
    assert!(html.contains("There is a problem"));
    let summary_at = html.find("There is a problem").expect("summary");
    let form_at = html.find("<form").expect("form");
    assert!(summary_at < form_at, "the error summary comes before the form");
    for (anchor, message) in [
        ("#summary", "Enter what your message is about"),
        ("#email", "Enter an email address in the correct format"),
        ("#vulnerability_consent", "Tick the box to agree"),
    ] {
        assert!(
            html.contains(&format!("<a href=\"{anchor}\">{message}")),
            "summary links {anchor}: {html}"
        );
    }
    assert!(
        html.contains("aria-describedby=\"email-error\""),
        "the error is tied to its input"
    );
    assert!(
        html.contains("value=\"grace-at-example\""),
        "what was typed is kept"
    );
    assert!(html.contains("value=\"&lt;b&gt;Grace&lt;/b&gt;\""), "and escaped");
    assert!(
        html.contains("value=\"large_print\" checked"),
        "ticked needs stay ticked"
    );
    assert!(
        html.contains(&format!("value=\"{key}\"")),
        "the same key, so a fixed form is one contact"
    );
    assert_eq!(test.store.contact_count().await.expect("count"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_from_one_address_get_a_friendly_page() {
    let limit = FormRateLimit {
        burst: 2,
        replenish_every: Duration::from_secs(60),
    };
    let (client, test) = start(limit).await;
    assert_eq!(client.get("/forms/contact").await.status, 200);
    assert_eq!(client.get("/forms/contact").await.status, 200);

    let limited = client
        .post_form("/forms/contact", &borrowed(&valid_form("form-key-1")))
        .await;
    assert_eq!(limited.status, 429);
    assert!(limited.header("retry-after").is_some());
    assert_eq!(limited.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(limited.text().contains("Too many attempts"));
    assert_eq!(test.store.contact_count().await.expect("count"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_form_is_413() {
    let (client, test) = start(FormRateLimit::default()).await;
    let mut fields = valid_form("form-key-2");
    fields.push(("message", "x".repeat(switchboard_intake::MAX_HTTP_BODY_BYTES)));
    let answer = client.post_form("/forms/contact", &borrowed(&fields)).await;
    assert_eq!(answer.status, 413);
    assert_eq!(answer.header("content-type"), Some("application/problem+json"));
    assert_eq!(test.store.contact_count().await.expect("count"), 0);
}
