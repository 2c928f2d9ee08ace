//! Routing end to end, over real RabbitMQ and PostgreSQL: contacts submitted
//! at intake are offered to agents connected over the gRPC stream, accepted
//! and completed, every step appears on the events exchange, and the case
//! store resolves each case by the agent's wrap-up disposition. And
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
    AgentProfile, CaseRecord, CaseStatus, Channel as ContactChannel, ContactRecord, ContactRequest, Customer,
    CustomerNeeds, GetCaseRequest, GetContactRequest, GetLiveStateRequest, Needs, SubmitContactRequest,
    UpdateCustomerNeedsRequest, get_case_request, submit_contact_request::Origin,
};
use switchboard_runtime::{Role, testing};
use switchboard_tests::{
    CasesClient, cases_client_at, dev_token, intake_client_at,
    process::ServiceProcess,
    routing::{
        Desktops, EventObserver, SupervisorClient, always_open_routing, phone_agent, put_profiles,
        routing_source, seeds_dir_with, supervisor_client,
    },
    start_services_with, test_settings, wait_for_contact,
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

/// Intake, cases and one routing process as services over real RabbitMQ
/// (a random queue prefix) and a fresh PostgreSQL database, with an
/// observer of the events they publish.
struct Distributed {
    intake: switchboard::app::Running,
    cases: switchboard::app::Running,
    router: switchboard::app::Running,
    credentials: switchboard_runtime::DevCredentials,
    observer: EventObserver,
    _database: testing::TestDatabase,
    _data_dir: tempfile::TempDir,
}

impl Distributed {
    async fn start(routing_toml: String) -> Distributed {
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
        let routing = Some(routing_source(routing_toml));
        let intake = start_services_with(&settings, Services::Intake, &topology, routing.clone())
            .await
            .expect("intake starts");
        let cases = start_services_with(&settings, Services::Cases, &topology, routing.clone())
            .await
            .expect("cases starts");
        let router = start_services_with(&settings, Services::Routing, &topology, routing)
            .await
            .expect("routing starts");
        Distributed {
            intake,
            cases,
            router,
            credentials,
            observer,
            _database: database,
            _data_dir: data_dir,
        }
    }

    /// A supervisor's client on the router, with `profiles` put for the
    /// agents who will sign in.
    async fn supervisor(&self, profiles: &[AgentProfile]) -> SupervisorClient {
        let mut supervisor = supervisor_client(self.router.grpc_addr, &self.credentials)
            .await
            .expect("supervisor client");
        put_profiles(&mut supervisor, profiles).await.expect("profiles");
        supervisor
    }

    async fn stop(self) {
        self.router.stop().await.expect("routing stops");
        self.cases.stop().await.expect("cases stops");
        self.intake.stop().await.expect("intake stops");
        self.observer.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contacts_are_offered_accepted_and_completed_over_the_agent_stream() {
    let system = Distributed::start(always_open_routing()).await;
    let (intake, router, credentials, observer) = (
        &system.intake,
        &system.router,
        &system.credentials,
        &system.observer,
    );

    let mut supervisor = system
        .supervisor(&[
            phone_agent("agent-ann", &[]),
            phone_agent("agent-bob", &[]),
            phone_agent("agent-bsl", &[("bsl", 4)]),
        ])
        .await;
    let desktops = Desktops::start(
        vec![router.grpc_addr],
        credentials,
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

    // The agents' wrap-up reached the case store: every contact shows its
    // disposition, and each resident's case is resolved by it.
    let token = dev_token(credentials, Role::Agent);
    let mut cases = cases_client_at(system.cases.grpc_addr, &token)
        .await
        .expect("cases client");
    for contact in &contacts {
        let (record, case) = resolved_case(&mut cases, contact)
            .await
            .unwrap_or_else(|error| panic!("contact {contact}: {error:#}"));
        assert_eq!(
            record.outcome.map(|outcome| outcome.disposition).as_deref(),
            Some("resolved")
        );
        assert_eq!(case.outcome, "resolved");
        assert_eq!(case.history.len(), 1);
        assert_eq!(case.history[0].actor, "routing");
    }

    desktops.stop();
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_residents_recorded_needs_route_a_call_that_does_not_repeat_them() {
    let system = Distributed::start(always_open_routing()).await;
    let (intake, router, credentials, observer) = (
        &system.intake,
        &system.router,
        &system.credentials,
        &system.observer,
    );
    let mut supervisor = system
        .supervisor(&[
            phone_agent("agent-ann", &[]),
            phone_agent("agent-bsl", &[("bsl", 4)]),
        ])
        .await;
    let key = credentials.intake_key.expose_secret().to_owned();
    let mut intake_client = intake_client_at(intake.grpc_addr, &key)
        .await
        .expect("intake client");
    let mut cases = cases_client_at(system.cases.grpc_addr, &dev_token(credentials, Role::Agent))
        .await
        .expect("cases client");

    // A first call, before any agent is on; the agent who later takes it
    // records with the resident that they use BSL.
    let first = intake_client
        .submit_contact(council_tax_call(7, false))
        .await
        .expect("first call accepted")
        .into_inner();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let customer_id = wait_for_contact(&mut cases, &first.contact_id, deadline)
        .await
        .expect("the case store stores the first call")
        .customer_id;
    let record = cases
        .update_customer_needs(UpdateCustomerNeedsRequest {
            customer_id: customer_id.clone(),
            needs: Some(CustomerNeeds {
                british_sign_language: true,
                ..CustomerNeeds::default()
            }),
        })
        .await
        .expect("needs recorded")
        .into_inner();
    assert!(record.needs.expect("needs").british_sign_language);

    // They ring again and say nothing of it: the case store tells routing.
    let mut again = council_tax_call(7, false);
    again.idempotency_key = "routing-test-7-again".to_owned();
    let second = intake_client
        .submit_contact(again)
        .await
        .expect("second call accepted")
        .into_inner();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let live = supervisor
            .get_live_state(GetLiveStateRequest {})
            .await
            .expect("live state")
            .into_inner();
        let waiting = live.contacts.iter().find(|c| c.contact_id == second.contact_id);
        if waiting.is_some_and(|c| c.needs.as_ref().is_some_and(|needs| needs.british_sign_language)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "routing never learned the recorded need: {waiting:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Now both agents sign in: only the BSL agent may take the second call.
    let desktops = Desktops::start(vec![router.grpc_addr], credentials, &["agent-ann", "agent-bsl"]);
    observer
        .until_completed(2, Duration::from_secs(60))
        .await
        .expect("both calls completed");
    assert_eq!(
        desktops.completed()[&second.contact_id],
        vec!["agent-bsl".to_owned()]
    );
    let explanation = supervisor
        .explain_contact(ContactRequest {
            contact_id: second.contact_id.clone(),
        })
        .await
        .expect("explanation")
        .into_inner();
    assert!(
        explanation.reasons.iter().any(|reason| reason.contains("bsl")),
        "{:?}",
        explanation.reasons
    );
    desktops.stop();
    system.stop().await;
}

/// The contact and its case once the case store has applied the contact's
/// wrap-up and resolved the case (it follows routing by a moment).
async fn resolved_case(
    cases: &mut CasesClient,
    contact_id: &str,
) -> anyhow::Result<(ContactRecord, CaseRecord)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let record = cases
            .get_contact(GetContactRequest {
                contact_id: contact_id.to_owned(),
            })
            .await;
        if let Ok(record) = record {
            let record = record.into_inner();
            let case = cases
                .get_case(GetCaseRequest {
                    key: Some(get_case_request::Key::CaseId(record.case_id.clone())),
                })
                .await?
                .into_inner();
            if case.status == CaseStatus::Resolved as i32 {
                return Ok((record, case));
            }
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the case was not resolved within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

/// The whole system embedded (SQLite, in-process bus), routing with `routing`.
async fn embedded_with_routing(
    data_dir: &std::path::Path,
    routing: switchboard::app::RoutingSource,
) -> (switchboard::app::Running, switchboard_runtime::DevCredentials) {
    let (settings, credentials) = test_settings(data_dir, None, None).expect("settings");
    let running = start_services_with(&settings, Services::All, &Topology::new(""), Some(routing))
        .await
        .expect("system starts");
    (running, credentials)
}

/// The field a `google.rpc.BadRequest` names.
fn violated_field(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .and_then(|details| {
            details
                .field_violations
                .first()
                .map(|violation| violation.field.clone())
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_requests_with_bad_input_are_refused_naming_what_is_wrong() {
    use switchboard_proto::v1::{
        AgentProfile, CompleteContactRequest, Disposition, OfferRequest, Presence, PutAgentProfileRequest,
        RoutingConfigDocument, SetPresenceRequest, SignInRequest, TransferContactRequest,
        queue_service_client::QueueServiceClient,
    };
    use switchboard_tests::{Bearer, routing::agent_client};
    use tonic::Code;

    let data_dir = tempfile::tempdir().expect("data dir");
    let (running, credentials) =
        embedded_with_routing(data_dir.path(), routing_source(always_open_routing())).await;
    let mut supervisor = supervisor_client(running.grpc_addr, &credentials)
        .await
        .expect("supervisor");
    let mut agent = agent_client(running.grpc_addr, &credentials, "agent-new")
        .await
        .expect("agent");
    let a_contact = uuid::Uuid::now_v7().to_string();

    // An agent nobody has given a profile cannot sign in.
    let status = agent.sign_in(SignInRequest {}).await.expect_err("no profile");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("PutAgentProfile"), "{status:?}");

    let mut refused: Vec<(&str, tonic::Status, &str)> = Vec::new();
    let mut push = |what, result: Result<(), tonic::Status>, field| {
        refused.push((what, result.expect_err(what), field));
    };
    push(
        "accept with a malformed id",
        agent
            .accept_offer(OfferRequest {
                contact_id: "not-a-uuid".to_owned(),
            })
            .await
            .map(drop),
        "contact_id",
    );
    push(
        "presence only routing sets",
        agent
            .set_presence(SetPresenceRequest {
                presence: Presence::WrapUp as i32,
            })
            .await
            .map(drop),
        "presence",
    );
    push(
        "signposted without a partner",
        agent
            .complete_contact(CompleteContactRequest {
                contact_id: a_contact.clone(),
                disposition: Disposition::Signposted as i32,
                partner: String::new(),
            })
            .await
            .map(drop),
        "partner",
    );
    push(
        "no disposition",
        agent
            .complete_contact(CompleteContactRequest {
                contact_id: a_contact.clone(),
                disposition: Disposition::Unspecified as i32,
                partner: String::new(),
            })
            .await
            .map(drop),
        "disposition",
    );
    push(
        "a transfer to nowhere",
        agent
            .transfer_contact(TransferContactRequest {
                contact_id: a_contact.clone(),
                to: None,
            })
            .await
            .map(drop),
        "to",
    );
    push(
        "no profile",
        supervisor
            .put_agent_profile(PutAgentProfileRequest { profile: None })
            .await
            .map(drop),
        "profile",
    );
    let mut over_skilled = AgentProfile {
        agent: "agent-new".to_owned(),
        skills: [("council-tax".to_owned(), 9)].into(),
        team: "revenues".to_owned(),
        channels: vec![ContactChannel::Phone as i32],
        ..AgentProfile::default()
    };
    push(
        "proficiency 9",
        supervisor
            .put_agent_profile(PutAgentProfileRequest {
                profile: Some(over_skilled.clone()),
            })
            .await
            .map(drop),
        "profile.skills",
    );
    over_skilled.skills = [("council-tax".to_owned(), 3)].into();
    over_skilled.channels.clear();
    push(
        "no channel",
        supervisor
            .put_agent_profile(PutAgentProfileRequest {
                profile: Some(over_skilled),
            })
            .await
            .map(drop),
        "profile.channels",
    );
    push(
        "a broken routing configuration",
        supervisor
            .update_routing_config(RoutingConfigDocument {
                toml: "[engine]\nnamed_agent_wait_seconds = \"soon\"\n".to_owned(),
            })
            .await
            .map(drop),
        "toml",
    );
    for (what, status, field) in &refused {
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert_eq!(violated_field(status), *field, "{what}: {status:?}");
    }
    let config_refusal = {
        use tonic_types::StatusExt;
        refused
            .last()
            .and_then(|(_, status, _)| status.get_details_bad_request())
            .and_then(|details| {
                details
                    .field_violations
                    .first()
                    .map(|violation| violation.description.clone())
            })
            .unwrap_or_default()
    };
    assert!(
        config_refusal.contains("named_agent_wait_seconds"),
        "the failing key is named: {config_refusal}"
    );

    // A contact routing does not hold is not found, for the channel asking.
    let mut queue = QueueServiceClient::with_interceptor(
        tonic::transport::Channel::from_shared(format!("http://{}", running.grpc_addr))
            .expect("address")
            .connect()
            .await
            .expect("connect"),
        Bearer::new(credentials.intake_key.expose_secret()),
    );
    let status = queue
        .get_position(ContactRequest {
            contact_id: a_contact.clone(),
        })
        .await
        .expect_err("unknown contact");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    running.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_routing_file_is_applied_and_a_broken_one_is_not() {
    use switchboard_proto::v1::GetRoutingConfigRequest;

    let data_dir = tempfile::tempdir().expect("data dir");
    let file = data_dir.path().join("routing.toml");
    let original = always_open_routing();
    std::fs::write(&file, &original).expect("write routing.toml");
    let (running, credentials) = embedded_with_routing(
        data_dir.path(),
        switchboard::app::RoutingSource {
            toml: original.clone(),
            path: Some(file.clone()),
        },
    )
    .await;
    let mut supervisor = supervisor_client(running.grpc_addr, &credentials)
        .await
        .expect("supervisor");
    let in_force = |supervisor: &mut switchboard_tests::routing::SupervisorClient| {
        let mut supervisor = supervisor.clone();
        async move {
            supervisor
                .get_routing_config(GetRoutingConfigRequest {})
                .await
                .expect("config")
                .into_inner()
                .toml
        }
    };
    assert_eq!(in_force(&mut supervisor).await, original);

    let wait_for = |expected: String, supervisor: switchboard_tests::routing::SupervisorClient| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut supervisor = supervisor;
        loop {
            let toml = supervisor
                .get_routing_config(GetRoutingConfigRequest {})
                .await
                .expect("config")
                .into_inner()
                .toml;
            if toml == expected {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the file change was not applied"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let first_change = original.replace("offer_timeout_seconds = 20", "offer_timeout_seconds = 30");
    assert_ne!(first_change, original);
    std::fs::write(&file, &first_change).expect("edit routing.toml");
    wait_for(first_change.clone(), supervisor.clone()).await;

    // A broken file is refused; the watcher goes on, and the next valid
    // change is applied: the broken text was never in force.
    std::fs::write(&file, "[engine]\nnamed_agent_wait_seconds = \"soon\"\n").expect("break routing.toml");
    let second_change = first_change.replace("offer_timeout_seconds = 30", "offer_timeout_seconds = 35");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        in_force(&mut supervisor).await,
        first_change,
        "the broken file is not applied"
    );
    std::fs::write(&file, &second_change).expect("fix routing.toml");
    wait_for(second_change, supervisor.clone()).await;

    running.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_partition_routes_its_own_contacts_with_its_own_agents() {
    use switchboard_proto::v1::{PutAgentProfileRequest, WebOrigin};
    use tonic::Code;

    // Council tax web forms get a partition of their own.
    let partitioned = always_open_routing().replacen(
        "[queues.council-tax-web]\n",
        "[queues.council-tax-web]\npartition = \"revenues\"\n",
        1,
    );
    let system = Distributed::start(partitioned).await;
    let (intake, router, credentials, observer) = (
        &system.intake,
        &system.router,
        &system.credentials,
        &system.observer,
    );

    let mut supervisor = supervisor_client(router.grpc_addr, credentials)
        .await
        .expect("supervisor client");
    let mut phone = phone_agent("agent-phone", &[]);
    phone.channels = vec![ContactChannel::Phone as i32];
    let mut web = phone_agent("agent-web", &[]);
    web.channels = vec![ContactChannel::Web as i32];
    let mut nowhere = web.clone();
    nowhere.partition = "north".to_owned();
    let status = supervisor
        .put_agent_profile(PutAgentProfileRequest {
            profile: Some(nowhere),
        })
        .await
        .expect_err("no such partition");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    web.partition = "revenues".to_owned();
    put_profiles(&mut supervisor, &[phone, web])
        .await
        .expect("profiles");
    let desktops = Desktops::start(vec![router.grpc_addr], credentials, &["agent-phone", "agent-web"]);

    let key = credentials.intake_key.expose_secret().to_owned();
    let mut client = intake_client_at(intake.grpc_addr, &key)
        .await
        .expect("intake client");
    let mut calls = Vec::new();
    let mut forms = Vec::new();
    for index in 0..10 {
        let mut call = council_tax_call(100 + index, false);
        call.idempotency_key = format!("partition-call-{index}");
        calls.push(
            client
                .submit_contact(call)
                .await
                .expect("call")
                .into_inner()
                .contact_id,
        );
        let form = SubmitContactRequest {
            channel: ContactChannel::Web as i32,
            service: "council-tax".to_owned(),
            customer: Some(Customer {
                name: format!("Form Resident {index}"),
                email: format!("resident{index}@example.org"),
                ..Customer::default()
            }),
            summary: "a question about my bill".to_owned(),
            idempotency_key: format!("partition-form-{index}"),
            origin: Some(Origin::Web(WebOrigin {
                form_id: "council-tax-enquiry".to_owned(),
                page_url: String::new(),
            })),
            ..SubmitContactRequest::default()
        };
        forms.push(
            client
                .submit_contact(form)
                .await
                .expect("form")
                .into_inner()
                .contact_id,
        );
    }
    observer
        .until_completed(calls.len() + forms.len(), Duration::from_secs(120))
        .await
        .expect("every contact completed");
    let completed = desktops.completed();
    for call in &calls {
        assert_eq!(completed[call], vec!["agent-phone".to_owned()], "call {call}");
    }
    for form in &forms {
        assert_eq!(completed[form], vec!["agent-web".to_owned()], "form {form}");
    }
    let live = supervisor
        .get_live_state(GetLiveStateRequest {})
        .await
        .expect("live state")
        .into_inner();
    assert_eq!(live.partitions, vec!["default".to_owned(), "revenues".to_owned()]);
    assert!(live.queues.iter().any(|queue| queue.queue == "council-tax-web"));
    assert!(live.queues.iter().any(|queue| queue.queue == "council-tax-phone"));

    desktops.stop();
    system.stop().await;
}
