//! Routing end to end, over real RabbitMQ and PostgreSQL: contacts submitted
//! at intake are offered to agents connected over the gRPC stream, accepted
//! and completed, and every step appears on the events exchange. And
//! failover: the active router is killed (SIGKILL) under load, the standby
//! takes over, and every contact is assigned exactly once.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use secrecy::ExposeSecret;
use switchboard::app::Services;
use switchboard_bus::Topology;
use switchboard_proto::v1::{
    Channel as ContactChannel, ContactRequest, Customer, GetLiveStateRequest, Needs, SubmitContactRequest,
    submit_contact_request::Origin,
};
use switchboard_runtime::testing;
use switchboard_tests::{
    intake_client_at,
    process::ServiceProcess,
    routing::{
        Desktops, EventObserver, always_open_routing, phone_agent, put_profiles, routing_source,
        seeds_dir_with, supervisor_client,
    },
    start_services_with, test_settings,
};

fn council_tax_call(index: usize, bsl: bool) -> SubmitContactRequest {
    SubmitContactRequest {
        channel: ContactChannel::Phone as i32,
        service: "council-tax".to_owned(),
        customer: Some(Customer {
            name: format!("Test Resident {index}"),
            phone: format!("07700 9{:05}", index % 100_000),
            ..Customer::default()
        }),
        summary: "question about my bill".to_owned(),
        needs: Some(Needs {
            british_sign_language: bsl,
            ..Needs::default()
        }),
        idempotency_key: format!("routing-test-{index}"),
        origin: Some(Origin::Phone(switchboard_proto::v1::PhoneOrigin {
            caller_number: String::new(),
            dialled_number: "01590 646000".to_owned(),
            call_id: format!("call-{index}"),
        })),
        ..SubmitContactRequest::default()
    }
}

/// Submits `count` council tax calls (every fifth needing BSL); answers the
/// contact ids, and which of them need BSL.
async fn submit_calls(intake: std::net::SocketAddr, key: &str, count: usize) -> (Vec<String>, Vec<String>) {
    let mut client = intake_client_at(intake, key).await.expect("intake client");
    let mut all = Vec::with_capacity(count);
    let mut bsl = Vec::new();
    for index in 0..count {
        let needs_bsl = index % 5 == 0;
        let response = client
            .submit_contact(council_tax_call(index, needs_bsl))
            .await
            .expect("intake accepts the call")
            .into_inner();
        if needs_bsl {
            bsl.push(response.contact_id.clone());
        }
        all.push(response.contact_id);
    }
    (all, bsl)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contacts_are_offered_accepted_and_completed_over_the_agent_stream() {
    let database = testing::TestDatabase::create().await;
    let data_dir = tempfile::tempdir().expect("data dir");
    let (settings, credentials) = test_settings(
        data_dir.path(),
        Some(database.url.clone()),
        Some(testing::amqp_url()),
    )
    .expect("settings");
    let topology = Topology::random_for_test();
    let observer = EventObserver::start(&topology).await.expect("observer");
    let routing = Some(routing_source(always_open_routing()));
    let intake = start_services_with(&settings, Services::Intake, &topology, routing.clone())
        .await
        .expect("intake starts");
    let cases = start_services_with(&settings, Services::Cases, &topology, routing.clone())
        .await
        .expect("cases starts");
    let router = start_services_with(&settings, Services::Routing, &topology, routing)
        .await
        .expect("routing starts");

    let mut supervisor = supervisor_client(router.grpc_addr, &credentials)
        .await
        .expect("supervisor client");
    put_profiles(
        &mut supervisor,
        &[
            phone_agent("agent-ann", &[]),
            phone_agent("agent-bob", &[]),
            phone_agent("agent-bsl", &[("bsl", 4)]),
        ],
    )
    .await
    .expect("profiles");
    let desktops = Desktops::start(
        vec![router.grpc_addr],
        &credentials,
        &["agent-ann", "agent-bob", "agent-bsl"],
    );

    let key = credentials.intake_key.expose_secret().to_owned();
    let (contacts, bsl_contacts) = submit_calls(intake.grpc_addr, &key, 40).await;
    observer
        .until_completed(contacts.len(), Duration::from_secs(120))
        .await
        .expect("every contact completed");

    // Each contact assigned once, completed once, by one agent.
    let completed = desktops.completed();
    for contact in &contacts {
        let by = completed.get(contact).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(by.len(), 1, "contact {contact} completed by {by:?}");
    }
    let mut assigned: HashMap<String, usize> = HashMap::new();
    for event in observer.of_type("contact.assigned") {
        *assigned.entry(event.subject).or_default() += 1;
    }
    for contact in &contacts {
        assert_eq!(assigned.get(contact), Some(&1), "contact {contact} assigned once");
    }
    for event_type in ["contact.queued", "contact.offered", "agent.signed_in"] {
        assert!(
            !observer.of_type(event_type).is_empty(),
            "{event_type} on the exchange"
        );
    }
    // A BSL need is only ever met by the BSL agent, and the explanation says so.
    for contact in &bsl_contacts {
        assert_eq!(
            completed[contact],
            vec!["agent-bsl".to_owned()],
            "contact {contact}"
        );
        let explanation = supervisor
            .explain_contact(ContactRequest {
                contact_id: contact.clone(),
            })
            .await
            .expect("explanation")
            .into_inner();
        assert_eq!(explanation.agent, "agent-bsl");
        assert!(
            explanation.reasons.iter().any(|reason| reason.contains("bsl")),
            "{:?}",
            explanation.reasons
        );
    }
    // The floor is quiet again, and every agent is still signed in.
    let live = supervisor
        .get_live_state(GetLiveStateRequest {})
        .await
        .expect("live state")
        .into_inner();
    assert!(live.contacts.is_empty(), "{:?}", live.contacts);
    let agents: BTreeMap<String, usize> = live
        .agents
        .iter()
        .map(|agent| (agent.agent.clone(), agent.contact_ids.len()))
        .collect();
    assert_eq!(
        agents.keys().cloned().collect::<Vec<_>>(),
        vec!["agent-ann", "agent-bob", "agent-bsl"]
    );

    desktops.stop();
    router.stop().await.expect("routing stops");
    cases.stop().await.expect("cases stops");
    intake.stop().await.expect("intake stops");
    observer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_standby_router_takes_over_when_the_active_one_is_killed() {
    let database = testing::TestDatabase::create().await;
    let data_dir = tempfile::tempdir().expect("data dir");
    let seeds = seeds_dir_with(&always_open_routing()).expect("seeds dir");
    let topology = Topology::random_for_test();
    let environment = [
        ("SWITCHBOARD_DATABASE_URL", database.url.clone()),
        ("SWITCHBOARD_AMQP_URL", testing::amqp_url()),
        ("SWITCHBOARD_AMQP_PREFIX", topology.prefix().to_owned()),
        ("SWITCHBOARD_DATA_DIR", data_dir.path().display().to_string()),
        ("SWITCHBOARD_SEEDS_DIR", seeds.path().display().to_string()),
    ];
    let observer = EventObserver::start(&topology).await.expect("observer");
    let intake = ServiceProcess::start("intake", &environment)
        .await
        .expect("intake starts");
    let cases = ServiceProcess::start("cases", &environment)
        .await
        .expect("cases starts");
    // The first router becomes ready once it owns the partition; the second
    // is alive but stands by.
    let active = ServiceProcess::start("routing", &environment)
        .await
        .expect("active router starts");
    let standby = ServiceProcess::start_live("routing", &environment)
        .await
        .expect("standby router starts");
    assert!(!standby.is_ready().await, "the second router stands by");

    let credentials = switchboard_tests::routing::credentials_of(data_dir.path()).expect("credentials");
    let mut supervisor = supervisor_client(active.grpc_addr, &credentials)
        .await
        .expect("supervisor client");
    let agents = ["agent-1", "agent-2", "agent-3", "agent-4"];
    let profiles: Vec<_> = agents
        .iter()
        .map(|agent| phone_agent(agent, &[("bsl", 3)]))
        .collect();
    put_profiles(&mut supervisor, &profiles).await.expect("profiles");
    let desktops = Desktops::start(vec![active.grpc_addr, standby.grpc_addr], &credentials, &agents);

    let key = credentials.intake_key.expose_secret().to_owned();
    let intake_addr = intake.grpc_addr;
    let submitting = tokio::spawn(async move { submit_calls(intake_addr, &key, 150).await });
    // Kill the active router while contacts are being routed.
    observer
        .until_completed(20, Duration::from_secs(60))
        .await
        .expect("routing under way");
    active.kill().await.expect("SIGKILL");
    let (contacts, _) = submitting.await.expect("submitter");

    observer
        .until_completed(contacts.len(), Duration::from_secs(180))
        .await
        .expect("every contact completed after the take-over");
    assert!(standby.is_ready().await, "the standby owns the partition now");

    let mut assigned: HashMap<String, usize> = HashMap::new();
    for event in observer.of_type("contact.assigned") {
        *assigned.entry(event.subject).or_default() += 1;
    }
    let mut completed: HashMap<String, usize> = HashMap::new();
    for event in observer.of_type("contact.completed") {
        *completed.entry(event.subject).or_default() += 1;
    }
    for contact in &contacts {
        assert_eq!(
            assigned.get(contact),
            Some(&1),
            "contact {contact} assigned exactly once"
        );
        assert_eq!(
            completed.get(contact),
            Some(&1),
            "contact {contact} completed exactly once"
        );
    }
    let desktop_completions = desktops.completed();
    for contact in &contacts {
        let by = desktop_completions
            .get(contact)
            .map(Vec::as_slice)
            .unwrap_or_default();
        // At most once: a desktop whose router died between committing a
        // completion and answering it never hears that it succeeded.
        assert!(
            by.len() <= 1,
            "contact {contact} handled by one agent, once: {by:?}"
        );
    }

    desktops.stop();
    standby.terminate().await.expect("standby stops");
    cases.terminate().await.expect("cases stops");
    intake.terminate().await.expect("intake stops");
    observer.stop().await;
}
