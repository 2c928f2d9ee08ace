//! Routing in end-to-end tests: a routing configuration that is open at any
//! hour, agent desktops driven over the gRPC stream, and an observer of the
//! events routing publishes.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use switchboard::app::RoutingSource;
use switchboard_bus::{Bus, QueueSpec, RabbitBus, Topology};
use switchboard_proto::v1::{
    self, AgentProfile, Channel as ContactChannel, CompleteContactRequest, ContactRequest, Disposition,
    OfferRequest, PutAgentProfileRequest, SignInRequest, StreamUpdatesRequest,
    agent_service_client::AgentServiceClient, agent_update::Update,
    supervisor_service_client::SupervisorServiceClient,
};
use switchboard_routing::RoutingConfig;
use switchboard_runtime::{DevCredentials, Role, testing};
use tokio::task::JoinHandle;
use tonic::{service::interceptor::InterceptedService, transport::Channel};

use crate::Bearer;

pub type AgentClient = AgentServiceClient<InterceptedService<Channel, Bearer>>;
pub type SupervisorClient = SupervisorServiceClient<InterceptedService<Channel, Bearer>>;

/// The built-in routing configuration with every queue open at all hours,
/// so tests route the same at 3 a.m. and on bank holidays.
pub fn always_open_routing() -> String {
    let text = RoutingConfig::embedded_toml()
        .replace("hours = \"contact-centre\"", "hours = \"always\"")
        .replace("hours = \"reception\"", "hours = \"always\"");
    debug_assert!(
        RoutingConfig::parse(&text).is_ok(),
        "always-open routing validates"
    );
    text
}

pub fn routing_source(toml: String) -> RoutingSource {
    RoutingSource { toml, path: None }
}

/// A seeds dir with the repository's services and offices and `routing` as
/// its routing.toml, for `switchboard` child processes.
pub fn seeds_dir_with(routing: &str) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds");
    for name in ["services.toml", "offices.toml", "partners.toml"] {
        std::fs::copy(seeds.join(name), dir.path().join(name)).with_context(|| format!("copy {name}"))?;
    }
    std::fs::write(dir.path().join("routing.toml"), routing)?;
    Ok(dir)
}

async fn channel(address: SocketAddr) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(format!("http://{address}"))?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await?)
}

pub async fn supervisor_client(
    address: SocketAddr,
    credentials: &DevCredentials,
) -> anyhow::Result<SupervisorClient> {
    let token = crate::dev_token(credentials, Role::Supervisor);
    Ok(SupervisorServiceClient::with_interceptor(
        channel(address).await?,
        Bearer::new(&token),
    ))
}

pub async fn agent_client(
    address: SocketAddr,
    credentials: &DevCredentials,
    subject: &str,
) -> anyhow::Result<AgentClient> {
    use secrecy::ExposeSecret;
    let token = credentials.staff_token(subject, Role::Agent)?;
    Ok(AgentServiceClient::with_interceptor(
        channel(address).await?,
        Bearer::new(token.expose_secret()),
    ))
}

/// A phone agent for council tax at proficiency 4, plus `extra` skills.
pub fn phone_agent(subject: &str, extra: &[(&str, u32)]) -> AgentProfile {
    let mut skills: BTreeMap<String, u32> = BTreeMap::from([("council-tax".to_owned(), 4)]);
    for (skill, level) in extra {
        skills.insert((*skill).to_owned(), *level);
    }
    AgentProfile {
        agent: subject.to_owned(),
        skills,
        team: "revenues".to_owned(),
        office: String::new(),
        channels: vec![ContactChannel::Phone as i32, ContactChannel::Web as i32],
        web_capacity: 2,
        partition: String::new(),
    }
}

pub async fn put_profiles(
    supervisor: &mut SupervisorClient,
    profiles: &[AgentProfile],
) -> anyhow::Result<()> {
    for profile in profiles {
        supervisor
            .put_agent_profile(PutAgentProfileRequest {
                profile: Some(profile.clone()),
            })
            .await
            .with_context(|| format!("put profile of {}", profile.agent))?;
    }
    Ok(())
}

/// What the simulated desktops did, by contact id.
#[derive(Debug, Default)]
pub struct DesktopLog {
    /// Contact → the agents who completed it (exactly one is right).
    pub completed: HashMap<String, Vec<String>>,
    /// Offers seen, by agent.
    pub offers: HashMap<String, usize>,
}

/// Agent desktops that accept every offer and complete every contact as
/// resolved. Each keeps going across the routing processes at `addresses`:
/// when its stream ends or a call finds a router standing by, it tries the
/// next address and signs in again (which keeps what it held).
pub struct Desktops {
    pub log: Arc<Mutex<DesktopLog>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Desktops {
    pub fn start(addresses: Vec<SocketAddr>, credentials: &DevCredentials, subjects: &[&str]) -> Desktops {
        let log = Arc::new(Mutex::new(DesktopLog::default()));
        let tasks = subjects
            .iter()
            .map(|subject| {
                tokio::spawn(desktop(
                    addresses.clone(),
                    credentials.clone(),
                    (*subject).to_owned(),
                    Arc::clone(&log),
                ))
            })
            .collect();
        Desktops { log, tasks }
    }

    pub fn completed(&self) -> HashMap<String, Vec<String>> {
        self.log.lock().expect("log").completed.clone()
    }

    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

async fn desktop(
    addresses: Vec<SocketAddr>,
    credentials: DevCredentials,
    subject: String,
    log: Arc<Mutex<DesktopLog>>,
) {
    let mut next = 0usize;
    loop {
        let address = addresses[next % addresses.len()];
        next += 1;
        // A session ends when its router goes (killed, or standing by);
        // the desktop moves on to the next address.
        let _ended = desktop_session(address, &credentials, &subject, &log).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One connection to one router: sign in, stream, accept, end, complete.
async fn desktop_session(
    address: SocketAddr,
    credentials: &DevCredentials,
    subject: &str,
    log: &Arc<Mutex<DesktopLog>>,
) -> anyhow::Result<()> {
    let mut client = agent_client(address, credentials, subject).await?;
    client.sign_in(SignInRequest {}).await?;
    let mut stream = client.stream_updates(StreamUpdatesRequest {}).await?.into_inner();
    while let Some(update) = stream.message().await? {
        match update.update {
            Some(Update::Offer(offer)) => {
                let contact_id = offer.contact.map(|c| c.contact_id).unwrap_or_default();
                *log.lock()
                    .expect("log")
                    .offers
                    .entry(subject.to_owned())
                    .or_default() += 1;
                // An offer that lapsed meanwhile is refused; the next one comes.
                let _ = client.accept_offer(OfferRequest { contact_id }).await;
            }
            Some(Update::Assigned(contact)) => {
                finish(&mut client, &contact.contact_id, contact.stage == "wrap-up").await?;
                log.lock()
                    .expect("log")
                    .completed
                    .entry(contact.contact_id)
                    .or_default()
                    .push(subject.to_owned());
            }
            _ => {}
        }
    }
    Ok(())
}

async fn finish(
    client: &mut crate::routing::AgentClient,
    contact_id: &str,
    in_wrap_up: bool,
) -> anyhow::Result<()> {
    if !in_wrap_up {
        client
            .end_contact(ContactRequest {
                contact_id: contact_id.to_owned(),
            })
            .await?;
    }
    client
        .complete_contact(CompleteContactRequest {
            contact_id: contact_id.to_owned(),
            disposition: Disposition::Resolved as i32,
            partner: String::new(),
        })
        .await?;
    Ok(())
}

/// Every routing event published on a test topology, by contact id.
pub struct EventObserver {
    bus: RabbitBus,
    events: Arc<Mutex<Vec<v1::Event>>>,
    task: JoinHandle<()>,
}

impl EventObserver {
    /// Declares its own queue (bound to `contact.*` and `agent.*`) before
    /// anything is published, and collects from it.
    pub async fn start(topology: &Topology) -> anyhow::Result<EventObserver> {
        let bus = RabbitBus::connect(&testing::amqp_url(), topology.clone())
            .await
            .context("cannot reach RabbitMQ: start it with `rabbitmq-server -detached`")?;
        let spec = QueueSpec::quorum(topology, "test.routing-observer", &["contact.*", "agent.*"]);
        let mut subscription = bus.subscribe(&spec, 500).await?;
        let events = Arc::new(Mutex::new(Vec::new()));
        let collected = Arc::clone(&events);
        let task = tokio::spawn(async move {
            loop {
                let Ok(batch) = subscription.next_batch(200, Duration::from_millis(20)).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let mut seen = Vec::with_capacity(batch.len());
                for delivery in &batch {
                    seen.push(delivery.envelope.event.clone());
                }
                collected.lock().expect("events").extend(seen);
                let _ = switchboard_bus::ack_all(batch).await;
            }
        });
        Ok(EventObserver { bus, events, task })
    }

    /// Events of `event_type`, each event id once (a relay may publish an
    /// event twice after a crash; consumers deduplicate by id).
    pub fn of_type(&self, event_type: &str) -> Vec<v1::Event> {
        let events = self.events.lock().expect("events");
        let mut seen = std::collections::HashSet::new();
        events
            .iter()
            .filter(|event| event.r#type == event_type && seen.insert(event.id.clone()))
            .cloned()
            .collect()
    }

    /// Waits until `count` distinct contacts have a `contact.completed`.
    pub async fn until_completed(&self, count: usize, within: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let completed: std::collections::HashSet<String> = self
                .of_type("contact.completed")
                .into_iter()
                .map(|event| event.subject)
                .collect();
            if completed.len() >= count {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "only {} of {count} contacts completed in {within:?}",
                completed.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(self) {
        self.task.abort();
        let _ = self.bus.delete_topology().await;
        self.bus.close().await;
    }
}

/// The credentials a test system's data dir holds.
pub fn credentials_of(data_dir: &Path) -> anyhow::Result<DevCredentials> {
    Ok(DevCredentials::load_or_create(data_dir)?)
}
