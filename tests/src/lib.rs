//! The end-to-end harness: whole systems on port 0, clients holding the right
//! credentials, and generated residents and contacts.
//!
//! - [`TestSystem`]: the embedded mode (SQLite, in-process bus) or the
//!   distributed one (intake and cases as separate services over a fresh
//!   PostgreSQL database and RabbitMQ with a random queue prefix), started with
//!   [`switchboard::app::start`] exactly as the binary starts them.
//! - [`Workload`]: residents who contact the council several times, over
//!   several channels and services, and what the case store must make of them.
//! - [`proxy::TcpProxy`]: a cuttable TCP proxy, to take RabbitMQ away from one
//!   system without stopping the broker other tests share.
//! - [`process`]: the `switchboard` binary as a child process, for tests that
//!   kill a service outright.
//! - [`routing`]: an always-open routing configuration, agent desktops over
//!   the gRPC stream, and an observer of the events routing publishes.

pub mod process;
pub mod proxy;
pub mod routing;
pub mod workload;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use futures::{StreamExt, stream};
use secrecy::ExposeSecret;
use switchboard::app::{self, Launch, Running, Services};
use switchboard_bus::Topology;
use switchboard_proto::v1::{
    Channel as ContactChannel, ContactRecord, GetContactRequest, GetCustomerTimelineRequest,
    SubmitContactRequest, SubmitContactResponse, case_service_client::CaseServiceClient,
    intake_service_client::IntakeServiceClient, timeline_entry::Entry,
};
use switchboard_runtime::{DevCredentials, Role, Settings, Shutdown, config::Options, testing};
use tokio::net::TcpListener;
use tonic::{
    Code, Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

pub use workload::{Resident, Workload};

/// Adds `authorization: Bearer …` to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Bearer {
    pub fn new(token: &str) -> Bearer {
        Bearer(
            format!("Bearer {token}")
                .parse()
                .expect("a token is a valid header value"),
        )
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

pub type IntakeClient = IntakeServiceClient<InterceptedService<Channel, Bearer>>;
pub type CasesClient = CaseServiceClient<InterceptedService<Channel, Bearer>>;

/// An intake client for the gRPC server at `address`, sending `key`.
pub async fn intake_client_at(address: SocketAddr, key: &str) -> anyhow::Result<IntakeClient> {
    let channel = Channel::from_shared(format!("http://{address}"))?
        .connect()
        .await?;
    Ok(IntakeServiceClient::with_interceptor(channel, Bearer::new(key)))
}

/// A case store client for the gRPC server at `address`, sending `token`.
pub async fn cases_client_at(address: SocketAddr, token: &str) -> anyhow::Result<CasesClient> {
    let channel = Channel::from_shared(format!("http://{address}"))?
        .connect()
        .await?;
    Ok(CaseServiceClient::with_interceptor(channel, Bearer::new(token)))
}

/// The development credentials' token for `role`, as sent.
pub fn dev_token(credentials: &DevCredentials, role: Role) -> String {
    credentials
        .token(role)
        .map(|token| token.expose_secret().to_owned())
        .unwrap_or_default()
}

/// Which mode a [`TestSystem`] runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Embedded,
    Distributed,
}

/// A running system and what a test needs to talk to it.
pub struct TestSystem {
    pub mode: Mode,
    /// One entry in the embedded mode; intake then cases in the distributed one.
    pub services: Vec<Running>,
    pub intake_grpc: SocketAddr,
    pub intake_http: SocketAddr,
    pub cases_grpc: SocketAddr,
    pub credentials: DevCredentials,
    pub settings: Settings,
    pub topology: Topology,
    pub data_dir: tempfile::TempDir,
    pub database: Option<testing::TestDatabase>,
}

/// Settings for a test system: every address on port 0, the given stores and
/// broker, and the data dir's development credentials.
pub fn test_settings(
    data_dir: &std::path::Path,
    database_url: Option<String>,
    amqp_url: Option<String>,
) -> anyhow::Result<(Settings, DevCredentials)> {
    let flags = Options {
        grpc_addr: Some("127.0.0.1:0".to_owned()),
        http_addr: Some("127.0.0.1:0".to_owned()),
        data_dir: Some(data_dir.to_path_buf()),
        database_url,
        amqp_url,
        ..Options::default()
    };
    let mut settings = Settings::load(None, flags)?;
    let credentials = DevCredentials::apply_if_unconfigured(&mut settings)?
        .context("test settings configure no credentials")?;
    Ok((settings, credentials))
}

async fn start_services(
    settings: &Settings,
    services: Services,
    topology: &Topology,
) -> anyhow::Result<Running> {
    start_services_with(settings, services, topology, None).await
}

/// Starts `services` as the binary would, with `routing` as the routing
/// configuration (`None`: no routing).
pub async fn start_services_with(
    settings: &Settings,
    services: Services,
    topology: &Topology,
    routing: Option<app::RoutingSource>,
) -> anyhow::Result<Running> {
    let catalogue = app::load_catalogue(None)?;
    let launch = Launch {
        settings: settings.clone(),
        services,
        topology: topology.clone(),
        partners: app::load_partners(None, &catalogue)?,
        catalogue: Arc::new(catalogue),
        bus: None,
        demo: Vec::new(),
        demo_agents: Vec::new(),
        demo_handle_time: switchboard::simulate::DEFAULT_HANDLE_TIME,
        routing,
        retention: app::load_retention(None)?,
    };
    let grpc = TcpListener::bind("127.0.0.1:0").await?;
    let http = TcpListener::bind("127.0.0.1:0").await?;
    app::start(launch, grpc, http, Shutdown::new()).await
}

impl TestSystem {
    /// `switchboard up` with no servers: SQLite files and the in-process bus.
    pub async fn embedded() -> anyhow::Result<TestSystem> {
        let data_dir = tempfile::tempdir()?;
        let (settings, credentials) = test_settings(data_dir.path(), None, None)?;
        let topology = Topology::new("");
        let running = start_services(&settings, Services::All, &topology).await?;
        Ok(TestSystem {
            mode: Mode::Embedded,
            intake_grpc: running.grpc_addr,
            intake_http: running.http_addr,
            cases_grpc: running.grpc_addr,
            services: vec![running],
            credentials,
            settings,
            topology,
            data_dir,
            database: None,
        })
    }

    /// Intake and cases as separate services (each with its own connections,
    /// as `switchboard serve intake` and `switchboard serve cases` run them)
    /// over a fresh PostgreSQL database and RabbitMQ under a random prefix.
    pub async fn distributed() -> anyhow::Result<TestSystem> {
        TestSystem::distributed_via(testing::amqp_url()).await
    }

    /// As [`TestSystem::distributed`], reaching RabbitMQ at `amqp_url` (a
    /// [`proxy::TcpProxy`] in the outage tests).
    pub async fn distributed_via(amqp_url: String) -> anyhow::Result<TestSystem> {
        let database = testing::TestDatabase::create().await;
        let data_dir = tempfile::tempdir()?;
        let (settings, credentials) =
            test_settings(data_dir.path(), Some(database.url.clone()), Some(amqp_url))?;
        let topology = Topology::random_for_test();
        let intake = start_services(&settings, Services::Intake, &topology).await?;
        let cases = start_services(&settings, Services::Cases, &topology).await?;
        Ok(TestSystem {
            mode: Mode::Distributed,
            intake_grpc: intake.grpc_addr,
            intake_http: intake.http_addr,
            cases_grpc: cases.grpc_addr,
            services: vec![intake, cases],
            credentials,
            settings,
            topology,
            data_dir,
            database: Some(database),
        })
    }

    pub fn intake_key(&self) -> String {
        self.credentials.intake_key.expose_secret().to_owned()
    }

    pub fn token(&self, role: Role) -> String {
        dev_token(&self.credentials, role)
    }

    pub async fn intake_client(&self) -> anyhow::Result<IntakeClient> {
        intake_client_at(self.intake_grpc, &self.intake_key()).await
    }

    pub async fn cases_client(&self) -> anyhow::Result<CasesClient> {
        cases_client_at(self.cases_grpc, &self.token(Role::Agent)).await
    }

    /// Intake's HTTP API with the intake key.
    pub fn http_intake(&self) -> HttpIntake {
        HttpIntake {
            client: reqwest::Client::new(),
            address: self.intake_http,
            key: self.intake_key(),
        }
    }

    /// `POST /v1/contacts`, as a web-form back end sends it.
    pub async fn submit_http(&self, request: &SubmitContactRequest) -> anyhow::Result<SubmitContactResponse> {
        self.http_intake().submit(request).await
    }

    /// Every contact of `workload`, over gRPC and HTTP (see [`submit_workload`]).
    pub async fn submit_workload(&self, workload: &Workload) -> anyhow::Result<Vec<(String, String)>> {
        submit_workload(&self.intake_client().await?, Some(&self.http_intake()), workload).await
    }

    /// Stops every service, intake first so its relay has published what it
    /// can, then removes this system's queues and exchanges from RabbitMQ.
    pub async fn stop(self) -> anyhow::Result<()> {
        for running in self.services {
            running.stop().await?;
        }
        if self.mode == Mode::Distributed {
            delete_topology(&self.topology).await;
        }
        Ok(())
    }
}

/// Intake's HTTP API, holding an intake client's key.
#[derive(Debug, Clone)]
pub struct HttpIntake {
    pub client: reqwest::Client,
    pub address: SocketAddr,
    pub key: String,
}

impl HttpIntake {
    /// `POST /v1/contacts` with the proto3 JSON form of `request`.
    pub async fn submit(&self, request: &SubmitContactRequest) -> anyhow::Result<SubmitContactResponse> {
        let response = self
            .client
            .post(format!("http://{}/v1/contacts", self.address))
            .bearer_auth(&self.key)
            .json(request)
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        // 201 for a new contact; a replayed idempotency key may answer 200.
        if !status.is_success() {
            bail!("POST /v1/contacts answered {status}: {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }
}

/// Submits every contact of `workload`: phone and face-to-face over gRPC (as
/// the CTI adapter and reception desks do), web over HTTP JSON (as a web-form
/// back end does) when `http` is given, 16 at a time. Returns (contact id,
/// reference) in order.
pub async fn submit_workload(
    intake: &IntakeClient,
    http: Option<&HttpIntake>,
    workload: &Workload,
) -> anyhow::Result<Vec<(String, String)>> {
    // Owned arguments per call keep the futures free of borrowed lifetimes, so
    // a submitter can run on its own task.
    let calls: Vec<_> = workload
        .contacts
        .iter()
        .map(|planned| {
            submit_one(
                intake.clone(),
                http.cloned(),
                planned.channel,
                planned.request.clone(),
            )
        })
        .collect();
    let answers: Vec<anyhow::Result<(String, String)>> = stream::iter(calls).buffered(16).collect().await;
    answers.into_iter().collect()
}

async fn submit_one(
    mut intake: IntakeClient,
    http: Option<HttpIntake>,
    channel: ContactChannel,
    request: SubmitContactRequest,
) -> anyhow::Result<(String, String)> {
    let answer = match (channel, http) {
        (ContactChannel::Web, Some(http)) => http.submit(&request).await?,
        _ => intake.submit_contact(request).await?.into_inner(),
    };
    Ok((answer.contact_id, answer.reference))
}

/// Every contact is in the case store once, each resident is one customer,
/// each resident and service one case.
/// Panics, naming the contact, on the first mismatch.
pub async fn verify_case_store(cases: &mut CasesClient, workload: &Workload, submitted: &[(String, String)]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut customer_of_resident: BTreeMap<usize, String> = BTreeMap::new();
    let mut case_of_matter: BTreeMap<(usize, &str), String> = BTreeMap::new();
    for (planned, (contact_id, reference)) in workload.contacts.iter().zip(submitted) {
        let record = wait_for_contact(cases, contact_id, deadline)
            .await
            .expect("contact in the case store");
        assert_eq!(
            &record.reference, reference,
            "contact {contact_id} keeps its reference"
        );
        assert_eq!(record.service, planned.service);
        assert_eq!(record.channel, planned.channel as i32);
        let customer = customer_of_resident
            .entry(planned.resident)
            .or_insert_with(|| record.customer_id.clone());
        assert_eq!(
            &record.customer_id, customer,
            "resident {} is one customer",
            planned.resident
        );
        let case = case_of_matter
            .entry((planned.resident, planned.service))
            .or_insert_with(|| record.case_id.clone());
        assert_eq!(
            &record.case_id, case,
            "resident {} has one {} case",
            planned.resident, planned.service
        );
    }
    let distinct_customers: BTreeSet<&String> = customer_of_resident.values().collect();
    assert_eq!(
        distinct_customers.len(),
        workload.residents.len(),
        "no two residents share a customer"
    );
    let distinct_cases: BTreeSet<&String> = case_of_matter.values().collect();
    assert_eq!(distinct_cases.len(), workload.expected_cases());

    // Exactly once: each customer's timeline holds each of their contacts once.
    for (resident, expected) in workload.contacts_per_resident() {
        let timeline = cases
            .get_customer_timeline(GetCustomerTimelineRequest {
                customer_id: customer_of_resident[&resident].clone(),
                page_size: 500,
                page_token: String::new(),
            })
            .await
            .expect("timeline")
            .into_inner();
        let contact_ids: Vec<&str> = timeline
            .entries
            .iter()
            .filter_map(|entry| match &entry.entry {
                Some(Entry::Contact(contact)) => Some(contact.contact_id.as_str()),
                _ => None,
            })
            .collect();
        let unique: BTreeSet<&str> = contact_ids.iter().copied().collect();
        assert_eq!(
            contact_ids.len(),
            expected,
            "resident {resident}: every contact once on the timeline"
        );
        assert_eq!(unique.len(), expected, "resident {resident}: no contact twice");
    }
}

/// Removes a test's queues and exchanges (they live on the shared broker).
pub async fn delete_topology(topology: &Topology) {
    if let Ok(bus) = switchboard_bus::RabbitBus::connect(&testing::amqp_url(), topology.clone()).await {
        let _ = bus.delete_topology().await;
        bus.close().await;
    }
}

/// The contact as the case store holds it, once it does; polls until
/// `deadline` passes.
pub async fn wait_for_contact(
    cases: &mut CasesClient,
    contact_id: &str,
    deadline: tokio::time::Instant,
) -> anyhow::Result<ContactRecord> {
    loop {
        match cases
            .get_contact(GetContactRequest {
                contact_id: contact_id.to_owned(),
            })
            .await
        {
            Ok(response) => return Ok(response.into_inner()),
            Err(status) if status.code() == Code::NotFound => {}
            Err(status) => bail!("GetContact({contact_id}) answered {status}"),
        }
        if tokio::time::Instant::now() > deadline {
            bail!("contact {contact_id} did not reach the case store in time");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
