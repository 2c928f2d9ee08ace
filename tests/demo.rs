//! Demo data end to end: `switchboard up --demo` puts every demo contact in
//! the case store, a resident who came back about one matter has one case
//! holding all their contacts, and starting again over the same data stores
//! nothing twice.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, ensure};
use secrecy::ExposeSecret;
use switchboard::{
    app::{self, Launch, Running, Services},
    demo::{self, DemoLoaded},
};
use switchboard_bus::Topology;
use switchboard_domain::Catalogue;
use switchboard_proto::v1::{
    ContactRecord, GetCaseRequest, GetCustomerTimelineRequest, SubmitContactRequest, SubmitContactResponse,
    get_case_request::Key, timeline_entry::Entry,
};
use switchboard_runtime::{DevCredentials, Role, Settings, Shutdown};
use switchboard_tests::{CasesClient, cases_client_at, dev_token, test_settings, wait_for_contact};
use tokio::net::TcpListener;

/// `switchboard up --demo` on port 0: every service, embedded.
async fn start_with_demo(
    settings: &Settings,
    catalogue: &Arc<Catalogue>,
    demo: Vec<SubmitContactRequest>,
) -> anyhow::Result<Running> {
    let launch = Launch {
        settings: settings.clone(),
        services: Services::All,
        topology: Topology::new(""),
        catalogue: catalogue.clone(),
        bus: None,
        demo,
        routing: None,
    };
    let grpc = TcpListener::bind("127.0.0.1:0").await?;
    let http = TcpListener::bind("127.0.0.1:0").await?;
    app::start(launch, grpc, http, Shutdown::new()).await
}

async fn cases_client(running: &Running, credentials: &DevCredentials) -> anyhow::Result<CasesClient> {
    cases_client_at(running.grpc_addr, &dev_token(credentials, Role::Agent)).await
}

/// Resubmits a demo contact over `POST /v1/contacts`, as a client retrying
/// would; answers the contact's id and whether intake replayed it.
async fn resubmit(
    running: &Running,
    credentials: &DevCredentials,
    request: &SubmitContactRequest,
) -> anyhow::Result<(String, bool)> {
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/contacts", running.http_addr))
        .bearer_auth(credentials.intake_key.expose_secret())
        .json(request)
        .send()
        .await?;
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|value| value == "true");
    let status = response.status();
    let body = response.text().await?;
    ensure!(
        status.is_success(),
        "{}: answered {status}: {body}",
        request.idempotency_key
    );
    let answer: SubmitContactResponse = serde_json::from_str(&body)?;
    Ok((answer.contact_id, replayed))
}

/// The resident a demo contact is from: names are unique in the demo file.
fn resident(request: &SubmitContactRequest) -> String {
    request.customer.clone().unwrap_or_default().name
}

/// Contact ids on a customer's timeline, newest first.
async fn timeline_contacts(cases: &mut CasesClient, customer_id: &str) -> anyhow::Result<Vec<String>> {
    let timeline = cases
        .get_customer_timeline(GetCustomerTimelineRequest {
            customer_id: customer_id.to_owned(),
            page_size: 500,
            page_token: String::new(),
        })
        .await?
        .into_inner();
    Ok(timeline
        .entries
        .into_iter()
        .filter_map(|entry| match entry.entry {
            Some(Entry::Contact(contact)) => Some(contact.contact_id),
            _ => None,
        })
        .collect())
}

/// Each resident's timeline holds each of their contacts once.
async fn check_timelines(
    cases: &mut CasesClient,
    customer_of: &BTreeMap<String, String>,
    contacts_of: &BTreeMap<String, usize>,
    label: &str,
) -> anyhow::Result<()> {
    for (name, customer_id) in customer_of {
        let on_timeline = timeline_contacts(cases, customer_id).await?;
        let unique: BTreeSet<&String> = on_timeline.iter().collect();
        assert_eq!(
            on_timeline.len(),
            contacts_of[name],
            "{label}: {name}'s contacts on the timeline"
        );
        assert_eq!(
            unique.len(),
            on_timeline.len(),
            "{label}: {name}: no contact twice"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_data_lands_in_the_case_store_once() -> anyhow::Result<()> {
    let catalogue = Arc::new(app::load_catalogue(None)?);
    let demo_contacts = demo::load(None, &catalogue)?;
    let total = demo_contacts.len();
    ensure!(total > 0, "the built-in demo data is empty");
    let data_dir = tempfile::tempdir()?;
    let (settings, credentials) = test_settings(data_dir.path(), None, None)?;

    let mut running = start_with_demo(&settings, &catalogue, demo_contacts.clone()).await?;
    let loaded = running
        .demo_loaded()
        .await?
        .context("intake loads the demo data")?;
    assert_eq!(
        loaded,
        DemoLoaded {
            stored: total,
            replayed: 0,
            refused: 0
        }
    );

    // Every demo contact is stored under its id as the idempotency key: sending
    // it again replays the stored contact and gives its id.
    let mut contact_ids = Vec::with_capacity(total);
    for request in &demo_contacts {
        let (contact_id, replayed) = resubmit(&running, &credentials, request).await?;
        assert!(replayed, "{} is already stored", request.idempotency_key);
        contact_ids.push(contact_id);
    }

    let mut cases = cases_client(&running, &credentials).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut records: Vec<ContactRecord> = Vec::with_capacity(total);
    for (request, contact_id) in demo_contacts.iter().zip(&contact_ids) {
        let record = wait_for_contact(&mut cases, contact_id, deadline).await?;
        assert_eq!(record.service, request.service, "{}", request.idempotency_key);
        assert_eq!(record.channel, request.channel, "{}", request.idempotency_key);
        assert_eq!(
            record.summary,
            request.summary.trim(),
            "{}",
            request.idempotency_key
        );
        records.push(record);
    }

    // One customer per resident, one case per resident and service.
    let mut customer_of: BTreeMap<String, String> = BTreeMap::new();
    let mut matters: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (index, (request, record)) in demo_contacts.iter().zip(&records).enumerate() {
        let name = resident(request);
        let customer = customer_of
            .entry(name.clone())
            .or_insert_with(|| record.customer_id.clone());
        assert_eq!(&record.customer_id, customer, "{name} is one customer");
        matters
            .entry((name, request.service.clone()))
            .or_default()
            .push(index);
    }
    let distinct_customers: BTreeSet<&String> = customer_of.values().collect();
    assert_eq!(
        distinct_customers.len(),
        customer_of.len(),
        "no two residents share a customer"
    );

    let mut across_channels = 0;
    for ((name, service), indexes) in &matters {
        let case_ids: BTreeSet<&str> = indexes.iter().map(|&i| records[i].case_id.as_str()).collect();
        assert_eq!(case_ids.len(), 1, "{name} has one {service} case");
        let case = cases
            .get_case(GetCaseRequest {
                key: Some(Key::CaseId(records[indexes[0]].case_id.clone())),
            })
            .await?
            .into_inner();
        let expected: Vec<&str> = indexes.iter().map(|&i| contact_ids[i].as_str()).collect();
        assert_eq!(
            case.contact_ids, expected,
            "{name}'s {service} case holds every contact, in order"
        );
        let channels: BTreeSet<i32> = indexes.iter().map(|&i| records[i].channel).collect();
        if channels.len() > 1 {
            across_channels += 1;
        }
    }
    assert!(
        across_channels >= 3,
        "residents who came back on another channel about one matter: {across_channels}"
    );

    let mut contacts_of: BTreeMap<String, usize> = BTreeMap::new();
    for request in &demo_contacts {
        *contacts_of.entry(resident(request)).or_default() += 1;
    }
    check_timelines(&mut cases, &customer_of, &contacts_of, "first start").await?;
    running.stop().await?;

    // Again over the same data dir: every contact is replayed, none stored.
    let mut running = start_with_demo(&settings, &catalogue, demo_contacts.clone()).await?;
    let loaded = running
        .demo_loaded()
        .await?
        .context("intake loads the demo data")?;
    assert_eq!(
        loaded,
        DemoLoaded {
            stored: 0,
            replayed: total,
            refused: 0
        }
    );
    let mut cases = cases_client(&running, &credentials).await?;
    for (contact_id, before) in contact_ids.iter().zip(&records) {
        let after = wait_for_contact(&mut cases, contact_id, deadline).await?;
        assert_eq!(after.case_id, before.case_id);
    }
    check_timelines(&mut cases, &customer_of, &contacts_of, "second start").await?;
    running.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_demo_contact_is_refused_and_the_system_keeps_running() -> anyhow::Result<()> {
    let catalogue = Arc::new(app::load_catalogue(None)?);
    let demo_contacts = demo::load(None, &catalogue)?;
    let first_two: Vec<SubmitContactRequest> = demo_contacts.iter().take(2).cloned().collect();
    let data_dir = tempfile::tempdir()?;
    let (settings, credentials) = test_settings(data_dir.path(), None, None)?;

    let mut running = start_with_demo(&settings, &catalogue, first_two.clone()).await?;
    let loaded = running
        .demo_loaded()
        .await?
        .context("intake loads the demo data")?;
    assert_eq!(loaded.stored, 2);
    running.stop().await?;

    // The same id with another summary: intake keeps the stored contact.
    let mut changed = first_two.clone();
    changed[0].summary = "a different question".to_owned();
    let mut running = start_with_demo(&settings, &catalogue, changed).await?;
    let loaded = running
        .demo_loaded()
        .await?
        .context("intake loads the demo data")?;
    assert_eq!(
        loaded,
        DemoLoaded {
            stored: 0,
            replayed: 1,
            refused: 1
        }
    );
    let (_, replayed) = resubmit(&running, &credentials, &first_two[0]).await?;
    assert!(replayed, "the first version is the one stored");
    running.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn without_demo_data_nothing_is_loaded() -> anyhow::Result<()> {
    let catalogue = Arc::new(app::load_catalogue(None)?);
    let data_dir = tempfile::tempdir()?;
    let (settings, _credentials) = test_settings(data_dir.path(), None, None)?;
    let mut running = start_with_demo(&settings, &catalogue, Vec::new()).await?;
    assert_eq!(running.demo_loaded().await?, None);
    running.stop().await?;
    Ok(())
}
