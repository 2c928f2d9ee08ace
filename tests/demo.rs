//! Demo data end to end: `switchboard up --demo` puts every demo contact in
//! the case store, a resident who came back about one matter has one case
//! holding all their contacts, and starting again over the same data stores
//! nothing twice. And the demo contact centre: with routing open at all
//! hours, the simulated agents take every demo contact, each by an agent
//! who meets the resident's needs, and complete it once.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, ensure};
use secrecy::ExposeSecret;
use switchboard::{
    app::{self, Launch, Running, Services},
    demo::{self, DemoAgent, DemoLoaded},
};
use switchboard_bus::{Bus, InProcessBus, QueueSpec, Topology, ack_all};
use switchboard_domain::Catalogue;
use switchboard_proto::v1::{
    ContactCompleted, ContactRecord, ContactRequest, GetCaseRequest, GetCustomerTimelineRequest,
    GetLiveStateRequest, Presence, SubmitContactRequest, SubmitContactResponse, event::Payload,
    get_case_request::Key, submit_contact_request::Origin, timeline_entry::Entry,
};
use switchboard_routing::RoutingConfig;
use switchboard_runtime::{DevCredentials, Role, Settings, Shutdown};
use switchboard_tests::{
    CasesClient, cases_client_at, dev_token,
    routing::{always_open_routing, routing_source, supervisor_client},
    test_settings, wait_for_contact,
};
use tokio::net::TcpListener;

/// `switchboard up --demo` as far as intake and the case store go: demo
/// contacts and no routing, so what these tests check does not depend on
/// agents or opening hours (the contact centre has its own test below).
fn demo_launch(settings: &Settings, catalogue: &Arc<Catalogue>, demo: Vec<SubmitContactRequest>) -> Launch {
    Launch {
        settings: settings.clone(),
        services: Services::All,
        topology: Topology::new(""),
        catalogue: catalogue.clone(),
        bus: None,
        demo,
        demo_agents: Vec::new(),
        demo_handle_time: switchboard::simulate::DEFAULT_HANDLE_TIME,
        routing: None,
        partners: app::load_partners(None, catalogue).expect("the built-in partner directory is valid"),
        retention: app::load_retention(None).expect("the built-in retention schedule is valid"),
    }
}

/// Starts `launch` on port 0.
async fn start(launch: Launch) -> anyhow::Result<Running> {
    let grpc = TcpListener::bind("127.0.0.1:0").await?;
    let http = TcpListener::bind("127.0.0.1:0").await?;
    app::start(launch, grpc, http, Shutdown::new()).await
}

/// `switchboard up --demo` on port 0: every service, embedded.
async fn start_with_demo(
    settings: &Settings,
    catalogue: &Arc<Catalogue>,
    demo: Vec<SubmitContactRequest>,
) -> anyhow::Result<Running> {
    start(demo_launch(settings, catalogue, demo)).await
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
    let demo_contacts = demo::load(None, &catalogue, None)?.contacts;
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
    let demo_contacts = demo::load(None, &catalogue, None)?.contacts;
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

/// Every `contact.completed` once per event id, by contact id, until each of
/// `contacts` (demo id, contact id) has one or `within` passes.
async fn completions(
    subscription: &mut switchboard_bus::Subscription,
    contacts: &[(String, String)],
    within: Duration,
) -> anyhow::Result<HashMap<String, Vec<ContactCompleted>>> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen_events = HashSet::new();
    let mut completed: HashMap<String, Vec<ContactCompleted>> = HashMap::new();
    while !contacts
        .iter()
        .all(|(_, contact)| completed.contains_key(contact))
    {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        ensure!(
            !remaining.is_zero(),
            "only {} of {} demo contacts completed in {within:?}; not completed: {:?}",
            completed.len(),
            contacts.len(),
            contacts
                .iter()
                .filter(|(_, contact)| !completed.contains_key(contact))
                .map(|(demo_id, _)| demo_id)
                .collect::<Vec<_>>()
        );
        let Ok(batch) =
            tokio::time::timeout(remaining, subscription.next_batch(200, Duration::from_millis(20))).await
        else {
            continue;
        };
        let batch = batch?;
        for delivery in &batch {
            let event = &delivery.envelope.event;
            if let Some(Payload::ContactCompleted(done)) = &event.payload
                && seen_events.insert(event.id.clone())
            {
                completed
                    .entry(done.contact_id.clone())
                    .or_default()
                    .push(done.clone());
            }
        }
        ack_all(batch).await?;
    }
    Ok(completed)
}

#[tokio::test(flavor = "multi_thread")]
async fn simulated_agents_complete_every_demo_contact() -> anyhow::Result<()> {
    let catalogue = Arc::new(app::load_catalogue(None)?);
    let routing_toml = always_open_routing();
    let routing = RoutingConfig::parse(&routing_toml)?;
    let data = demo::load(None, &catalogue, Some(&routing))?;
    let total = data.contacts.len();
    let agents: BTreeMap<&str, &DemoAgent> = data
        .agents
        .iter()
        .map(|agent| (agent.subject.as_str(), agent))
        .collect();
    let simulated: BTreeSet<&str> = data
        .agents
        .iter()
        .filter(|agent| agent.simulated)
        .map(|agent| agent.subject.as_str())
        .collect();
    ensure!(simulated.len() >= 8, "a contact centre of about ten");

    let data_dir = tempfile::tempdir()?;
    let (settings, credentials) = test_settings(data_dir.path(), None, None)?;
    // The test's own bus, so it can listen for routing's events from before
    // the first contact arrives.
    let topology = Topology::new("");
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::confirming_when_settled(topology.clone()));
    let mut events = bus
        .subscribe(
            &QueueSpec::quorum(&topology, "test.demo-observer", &["contact.*"]),
            500,
        )
        .await?;
    let launch = Launch {
        bus: Some(bus),
        demo_agents: data.agents.clone(),
        demo_handle_time: Duration::from_millis(100),
        routing: Some(routing_source(routing_toml)),
        ..demo_launch(&settings, &catalogue, data.contacts.clone())
    };
    let mut running = start(launch).await?;
    let loaded = running
        .demo_loaded()
        .await?
        .context("intake loads the demo data")?;
    assert_eq!(loaded.stored, total);
    let mut contact_ids = Vec::with_capacity(total);
    for request in &data.contacts {
        contact_ids.push(resubmit(&running, &credentials, request).await?.0);
    }

    // Every demo contact completed, once, by a simulated agent, with a
    // disposition an agent records.
    let labelled: Vec<(String, String)> = data
        .contacts
        .iter()
        .map(|request| request.idempotency_key.clone())
        .zip(contact_ids.iter().cloned())
        .collect();
    let completed = completions(&mut events, &labelled, Duration::from_secs(120)).await?;
    for (request, contact_id) in data.contacts.iter().zip(&contact_ids) {
        let done = &completed[contact_id];
        assert_eq!(
            done.len(),
            1,
            "{}: completed once: {done:?}",
            request.idempotency_key
        );
        let done = &done[0];
        match done.disposition.as_str() {
            "resolved" | "callback-booked" => assert!(done.partner.is_empty()),
            "signposted" => assert!(
                routing.partners.contains_key(&done.partner),
                "{}: signposted to {:?}",
                request.idempotency_key,
                done.partner
            ),
            other => panic!("{}: disposition {other}", request.idempotency_key),
        }
    }

    // Each by an agent who meets the resident's needs: the visit's office,
    // BSL, the language.
    let mut supervisor = supervisor_client(running.grpc_addr, &credentials).await?;
    let mut who: BTreeMap<String, usize> = BTreeMap::new();
    for (request, contact_id) in data.contacts.iter().zip(&contact_ids) {
        let explanation = supervisor
            .explain_contact(ContactRequest {
                contact_id: contact_id.clone(),
            })
            .await?
            .into_inner();
        let key = &request.idempotency_key;
        assert!(
            simulated.contains(explanation.agent.as_str()),
            "{key}: taken by {:?}",
            explanation.agent
        );
        *who.entry(explanation.agent.clone()).or_default() += 1;
        let profile = &agents[explanation.agent.as_str()].profile;
        if let Some(Origin::FaceToFace(visit)) = &request.origin {
            assert_eq!(profile.office.as_deref(), Some(visit.office_id.as_str()), "{key}");
        }
        let needs = request.needs.clone().unwrap_or_default();
        if needs.british_sign_language {
            assert!(
                profile.skills.get("bsl").is_some_and(|level| *level >= 3),
                "{key}"
            );
        }
        if !needs.language.is_empty() {
            let skill = format!("language-{}", needs.language);
            assert!(
                profile.skills.get(&skill).is_some_and(|level| *level >= 3),
                "{key}: {skill}"
            );
        }
    }
    assert!(who.len() >= 5, "the work is shared out: {who:?}");

    // The floor is quiet: no contact left, every simulated agent still
    // signed in, and the developer's profile waits for a real desktop.
    let live = supervisor
        .get_live_state(GetLiveStateRequest {})
        .await?
        .into_inner();
    assert!(live.contacts.is_empty(), "{:?}", live.contacts);
    let signed_in: BTreeSet<&str> = live
        .agents
        .iter()
        .filter(|agent| agent.presence != Presence::Offline as i32)
        .map(|agent| agent.agent.as_str())
        .collect();
    assert_eq!(signed_in, simulated);

    // The desktops stop with the system.
    tokio::time::timeout(Duration::from_secs(30), running.stop())
        .await
        .context("the system stops with simulated desktops running")??;
    Ok(())
}
