//! Simulated agent desktops for `switchboard up --demo`, so the demo contact
//! centre routes contacts to someone out of the box.
//!
//! [`run`] gives each demo agent (`[[agents]]` in `seeds/demo.toml`) its
//! routing profile, then runs one desktop per simulated agent. A desktop is a
//! real gRPC client of this process's own `AgentService`, holding a token
//! minted for the agent, so it goes through authentication, the router and
//! the event stream exactly as a real desktop would: it signs in, streams
//! updates, accepts each offer after a short think, holds the contact for a
//! handle time, ends it, and completes it with a disposition (mostly
//! resolved, some signposted to a partner, some with a callback booked).
//! When its stream ends (the router handed over, or was not ready yet) it
//! reconnects with backoff; at shutdown it stops, leaving what it holds to
//! the router's journal, so the next start picks it up again.
//!
//! Logs name agents (staff subjects) and contacts by id only.

use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use switchboard_proto::v1::{
    AgentState, CompleteContactRequest, ContactRequest, Disposition, OfferRequest, Presence,
    SetPresenceRequest, SignInRequest, StreamUpdatesRequest, agent_service_client::AgentServiceClient,
    agent_update::Update,
};
use switchboard_routing_service::Routers;
use switchboard_runtime::{
    Role, Shutdown,
    auth::{TokenClaims, mint_hs256_token},
    config::JwtSettings,
};
use tokio::task::JoinSet;
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

use crate::demo::DemoAgent;

/// How long a simulated agent holds a contact, on average, unless the launch
/// says otherwise: long enough to watch a contact sit with an agent on the
/// live state, short enough that the demo contacts clear in a few minutes.
pub const DEFAULT_HANDLE_TIME: Duration = Duration::from_secs(30);

/// Handle times vary from two thirds to four thirds of the average, so the
/// floor does not move in lock step.
const HANDLE_SPREAD: (f64, f64) = (2.0 / 3.0, 4.0 / 3.0);

/// Thinking before accepting an offer, and wrapping up, take this share of
/// the handle time...
const THINK_SHARE: (f64, f64) = (0.05, 0.1);

/// ...but never so long that an offer times out (the shortest offer timeout
/// in the seeds is 15 s).
const MAX_THINK: Duration = Duration::from_secs(5);

/// Shares of completed contacts signposted to a partner and with a callback
/// booked; the rest are resolved.
const SIGNPOSTED_SHARE: f64 = 0.15;
const CALLBACK_SHARE: f64 = 0.1;

/// Reconnecting after a stream ends or a call fails: from the first delay,
/// doubling up to the last.
const RECONNECT_BACKOFF: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(10));

/// Failed connection attempts in a row before a desktop says so at warn:
/// the first few are expected while the router takes its partition over.
const QUIET_ATTEMPTS: u32 = 8;

/// How long a minted desktop token lasts; each connection mints a new one.
const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// What [`run`] needs.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// This process's gRPC server: the desktops are its clients.
    pub grpc_addr: SocketAddr,
    /// Every demo agent; profiles are put for all, desktops run for the
    /// simulated ones.
    pub agents: Vec<DemoAgent>,
    /// The average handle time ([`DEFAULT_HANDLE_TIME`] unless a test wants
    /// the floor to move faster).
    pub handle_time: Duration,
    /// Partner ids from the routing configuration's `[partners]`, to
    /// signpost to.
    pub partners: Vec<String>,
    /// How this process checks staff tokens; desktops need its HS256 secret
    /// to mint theirs.
    pub jwt: Option<JwtSettings>,
}

/// Puts every demo agent's profile, then runs the simulated desktops until
/// `shutdown`. Never fails: an agent whose profile is refused is logged and
/// left out, and the rest of the demo goes on.
pub async fn run(routers: Arc<Routers>, simulation: Simulation, shutdown: Shutdown) {
    let mut profiled = Vec::with_capacity(simulation.agents.len());
    for agent in &simulation.agents {
        match routers.put_profile(&agent.subject, &agent.profile).await {
            Ok(()) => profiled.push(agent),
            Err(error) => tracing::warn!(
                agent = %agent.subject,
                error.message = %error,
                "demo agent profile refused; this agent is left out of the demo"
            ),
        }
    }
    let simulated: Vec<&DemoAgent> = profiled.iter().copied().filter(|agent| agent.simulated).collect();
    tracing::info!(
        profiles = profiled.len(),
        refused = simulation.agents.len() - profiled.len(),
        simulated = simulated.len(),
        "demo agent profiles put"
    );
    if simulated.is_empty() {
        return;
    }
    let Some(minter) = simulation.jwt.as_ref().and_then(TokenMinter::new) else {
        tracing::warn!(
            "simulated demo agents need the HS256 secret staff tokens are checked with (the development credentials have one); none is configured, so no agent is simulated"
        );
        return;
    };
    let shared = Arc::new(Shared {
        endpoint: format!("http://{}", dialable(simulation.grpc_addr)),
        minter,
        timing: Timing {
            handle: simulation.handle_time,
        },
        partners: simulation.partners,
        shutdown,
    });
    let mut desktops = JoinSet::new();
    for agent in simulated {
        desktops.spawn(desktop(agent.subject.clone(), Arc::clone(&shared)));
    }
    while let Some(joined) = desktops.join_next().await {
        if let Err(error) = joined {
            tracing::error!(error.message = %error, "simulated desktop panicked");
        }
    }
}

/// What every desktop shares.
struct Shared {
    endpoint: String,
    minter: TokenMinter,
    timing: Timing,
    partners: Vec<String>,
    shutdown: Shutdown,
}

/// A server listening on every interface is dialled on loopback.
fn dialable(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), address.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), address.port()),
        _ => address,
    }
}

/// Mints agent tokens the way this process checks them.
struct TokenMinter {
    secret: SecretString,
    issuer: String,
    audience: String,
}

impl TokenMinter {
    fn new(jwt: &JwtSettings) -> Option<TokenMinter> {
        Some(TokenMinter {
            secret: jwt.hs256_secret.clone()?,
            issuer: jwt.issuer.clone(),
            audience: jwt.audience.clone(),
        })
    }

    fn agent_token(&self, subject: &str) -> anyhow::Result<SecretString> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let claims = TokenClaims {
            sub: subject.to_owned(),
            roles: vec![Role::Agent],
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(TOKEN_LIFETIME.as_secs()),
        };
        Ok(SecretString::from(mint_hs256_token(&self.secret, &claims)?))
    }
}

/// Adds the desktop's `authorization: Bearer …` to every call.
#[derive(Clone)]
struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

type AgentClient = AgentServiceClient<InterceptedService<Channel, Bearer>>;

/// How long things take at a simulated desk.
#[derive(Debug, Clone, Copy)]
struct Timing {
    handle: Duration,
}

impl Timing {
    fn hold(&self, rng: &mut impl Rng) -> Duration {
        self.handle
            .mul_f64(rng.random_range(HANDLE_SPREAD.0..=HANDLE_SPREAD.1))
    }

    fn think(&self, rng: &mut impl Rng) -> Duration {
        self.handle
            .mul_f64(rng.random_range(THINK_SHARE.0..=THINK_SHARE.1))
            .min(MAX_THINK)
    }
}

/// The outcome an agent records, with the partner for a signposting.
fn choose_disposition(rng: &mut impl Rng, partners: &[String]) -> (Disposition, String) {
    let roll: f64 = rng.random();
    if roll < SIGNPOSTED_SHARE && !partners.is_empty() {
        let partner = partners[rng.random_range(0..partners.len())].clone();
        (Disposition::Signposted, partner)
    } else if roll < SIGNPOSTED_SHARE + CALLBACK_SHARE {
        (Disposition::CallbackBooked, String::new())
    } else {
        (Disposition::Resolved, String::new())
    }
}

/// A disposition as routing's events name it.
fn disposition_name(disposition: Disposition) -> &'static str {
    match disposition {
        Disposition::Unspecified => "unspecified",
        Disposition::Resolved => "resolved",
        Disposition::Signposted => "signposted",
        Disposition::CallbackBooked => "callback-booked",
        Disposition::FollowUpNeeded => "follow-up-needed",
        Disposition::Referred => "referred",
    }
}

/// Sleeps for `duration`; `false` when shutdown came first.
async fn pause(duration: Duration, shutdown: &Shutdown) -> bool {
    tokio::select! {
        () = shutdown.wait() => false,
        () = tokio::time::sleep(duration) => true,
    }
}

/// One simulated agent: connects, works the stream until it ends, and
/// connects again, until shutdown.
async fn desktop(subject: String, shared: Arc<Shared>) {
    // Contacts this agent is handling, across connections: a new stream
    // opens with what the agent holds, which must not be handled twice. A
    // std mutex: held only to insert or remove, never across an await.
    let handling: Arc<Mutex<HashSet<String>>> = Arc::new(Mutex::new(HashSet::new()));
    let mut work = JoinSet::new();
    let mut backoff = RECONNECT_BACKOFF.0;
    let mut failures = 0u32;
    while !shared.shutdown.is_triggered() {
        match connection(&subject, &shared, &handling, &mut work).await {
            Ok(()) => {
                // A stream that ran means the router is there: start over.
                backoff = RECONNECT_BACKOFF.0;
                failures = 0;
                if !shared.shutdown.is_triggered() {
                    tracing::debug!(agent = %subject, "simulated agent stream ended; reconnecting");
                }
            }
            Err(error) => {
                failures += 1;
                if failures == QUIET_ATTEMPTS {
                    tracing::warn!(agent = %subject, attempts = failures, error.message = %format!("{error:#}"), "simulated agent cannot sign in; still trying");
                } else {
                    tracing::debug!(agent = %subject, attempts = failures, error.message = %format!("{error:#}"), "simulated agent cannot sign in yet");
                }
            }
        }
        if !pause(backoff, &shared.shutdown).await {
            break;
        }
        backoff = (backoff * 2).min(RECONNECT_BACKOFF.1);
    }
    // Each piece of work stops at the shutdown signal too.
    while work.join_next().await.is_some() {}
    tracing::debug!(agent = %subject, "simulated agent stopped");
}

/// One connection: sign in, then act on the stream until it ends (`Ok`) or
/// shutdown. `Err` when it could not get as far as streaming.
async fn connection(
    subject: &str,
    shared: &Arc<Shared>,
    handling: &Arc<Mutex<HashSet<String>>>,
    work: &mut JoinSet<()>,
) -> anyhow::Result<()> {
    let token = shared.minter.agent_token(subject).context("mint agent token")?;
    let mut header: MetadataValue<Ascii> = format!("Bearer {}", token.expose_secret())
        .parse()
        .context("a token is a valid header value")?;
    header.set_sensitive(true);
    let channel = Endpoint::from_shared(shared.endpoint.clone())?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .context("connect")?;
    let mut client = AgentServiceClient::with_interceptor(channel, Bearer(header));
    client.sign_in(SignInRequest {}).await.context("sign in")?;
    let mut stream = client
        .stream_updates(StreamUpdatesRequest {})
        .await
        .context("stream updates")?
        .into_inner();
    tracing::info!(agent = %subject, "simulated agent signed in");
    loop {
        let message = tokio::select! {
            () = shared.shutdown.wait() => return Ok(()),
            message = stream.message() => message,
        };
        // Finished work is reaped as updates come, so the set stays small.
        while work.try_join_next().is_some() {}
        let update = match message {
            Ok(Some(update)) => update,
            Ok(None) => return Ok(()),
            Err(status) => {
                tracing::debug!(agent = %subject, error.code = ?status.code(), "simulated agent stream failed");
                return Ok(());
            }
        };
        match update.update {
            Some(Update::Offer(offer)) => {
                let contact_id = offer
                    .contact
                    .map(|contact| contact.contact_id)
                    .unwrap_or_default();
                tracing::debug!(agent = %subject, contact_id = %contact_id, "simulated agent offered a contact");
                work.spawn(accept(
                    client.clone(),
                    subject.to_owned(),
                    contact_id,
                    Arc::clone(shared),
                ));
            }
            Some(Update::Assigned(contact)) => {
                let fresh = handling
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner())
                    .insert(contact.contact_id.clone());
                if fresh {
                    tracing::info!(agent = %subject, contact_id = %contact.contact_id, "simulated agent took a contact");
                    work.spawn(handle(
                        client.clone(),
                        subject.to_owned(),
                        contact.contact_id,
                        contact.stage == "wrap-up",
                        Arc::clone(shared),
                        Arc::clone(handling),
                    ));
                }
            }
            Some(Update::State(state)) => {
                if missed(&state) {
                    work.spawn(back_to_available(client.clone(), subject.to_owned()));
                }
            }
            Some(Update::OfferWithdrawn(contact)) => {
                tracing::debug!(agent = %subject, contact_id = %contact.contact_id, "offer withdrawn from simulated agent");
            }
            Some(Update::Released(_)) | None => {}
        }
    }
}

/// An agent who let an offer time out gets no more until they say they are
/// available again; a simulated one says so at once.
fn missed(state: &AgentState) -> bool {
    state.presence == Presence::Missed as i32
}

async fn back_to_available(mut client: AgentClient, subject: String) {
    let request = SetPresenceRequest {
        presence: Presence::Available as i32,
    };
    match client.set_presence(request).await {
        Ok(_) => tracing::debug!(agent = %subject, "simulated agent available again after a missed offer"),
        Err(status) => {
            tracing::debug!(agent = %subject, error.code = ?status.code(), "simulated agent could not become available")
        }
    }
}

/// Thinks, then accepts; the contact then arrives on the stream as assigned.
async fn accept(mut client: AgentClient, subject: String, contact_id: String, shared: Arc<Shared>) {
    let think = shared.timing.think(&mut rand::rng());
    if !pause(think, &shared.shutdown).await {
        return;
    }
    let request = OfferRequest {
        contact_id: contact_id.clone(),
    };
    // An offer that lapsed or was withdrawn meanwhile is refused; the next
    // one comes on the stream.
    if let Err(status) = client.accept_offer(request).await {
        tracing::debug!(agent = %subject, contact_id = %contact_id, error.code = ?status.code(), "simulated agent could not accept the offer");
    }
}

/// Holds the contact for a handle time, ends it, wraps up and completes it.
/// A call that fails leaves the contact with the agent; the next stream
/// opens with it, and it is handled again from there.
async fn handle(
    mut client: AgentClient,
    subject: String,
    contact_id: String,
    in_wrap_up: bool,
    shared: Arc<Shared>,
    handling: Arc<Mutex<HashSet<String>>>,
) {
    let (hold, wrap_up, (disposition, partner)) = {
        let mut rng = rand::rng();
        (
            shared.timing.hold(&mut rng),
            shared.timing.think(&mut rng),
            choose_disposition(&mut rng, &shared.partners),
        )
    };
    let outcome = async {
        if !in_wrap_up {
            if !pause(hold, &shared.shutdown).await {
                return Ok(false);
            }
            client
                .end_contact(ContactRequest {
                    contact_id: contact_id.clone(),
                })
                .await?;
        }
        if !pause(wrap_up, &shared.shutdown).await {
            return Ok(false);
        }
        let completed = client
            .complete_contact(CompleteContactRequest {
                contact_id: contact_id.clone(),
                disposition: disposition as i32,
                partner: partner.clone(),
            })
            .await;
        match completed {
            // The configuration may have dropped the partner since start-up.
            Err(status)
                if disposition == Disposition::Signposted
                    && status.code() == tonic::Code::InvalidArgument =>
            {
                client
                    .complete_contact(CompleteContactRequest {
                        contact_id: contact_id.clone(),
                        disposition: Disposition::Resolved as i32,
                        partner: String::new(),
                    })
                    .await?;
                Ok::<_, Status>(true)
            }
            other => other.map(|_| true),
        }
    }
    .await;
    match outcome {
        Ok(true) => tracing::info!(
            agent = %subject,
            contact_id = %contact_id,
            disposition = disposition_name(disposition),
            "simulated agent completed a contact"
        ),
        Ok(false) => {}
        Err(status) => tracing::debug!(
            agent = %subject,
            contact_id = %contact_id,
            error.code = ?status.code(),
            "simulated agent could not finish the contact; it stays with the agent"
        ),
    }
    handling
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .remove(&contact_id);
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    #[test]
    fn handle_and_think_times_stay_in_their_ranges() {
        let mut rng = StdRng::seed_from_u64(7);
        let timing = Timing {
            handle: Duration::from_secs(30),
        };
        for _ in 0..1000 {
            let hold = timing.hold(&mut rng);
            assert!(
                (Duration::from_secs(20)..=Duration::from_secs(40)).contains(&hold),
                "{hold:?}"
            );
            let think = timing.think(&mut rng);
            assert!(
                (Duration::from_millis(1500)..=Duration::from_secs(3)).contains(&think),
                "{think:?}"
            );
        }
        let slow = Timing {
            handle: Duration::from_secs(600),
        };
        assert_eq!(
            slow.think(&mut rng),
            MAX_THINK,
            "never long enough to miss an offer"
        );
    }

    #[test]
    fn most_contacts_are_resolved_and_signposting_names_a_partner() {
        let mut rng = StdRng::seed_from_u64(11);
        let partners = vec!["citizens-advice".to_owned(), "shelter".to_owned()];
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..10_000 {
            let (disposition, partner) = choose_disposition(&mut rng, &partners);
            assert_eq!(
                disposition == Disposition::Signposted,
                partners.contains(&partner),
                "{disposition:?} with partner {partner:?}"
            );
            *counts.entry(disposition.as_str_name()).or_insert(0) += 1;
        }
        let share = |name: &str| f64::from(counts.get(name).copied().unwrap_or(0)) / 10_000.0;
        assert!((0.7..0.8).contains(&share("DISPOSITION_RESOLVED")), "{counts:?}");
        assert!(
            (0.12..0.18).contains(&share("DISPOSITION_SIGNPOSTED")),
            "{counts:?}"
        );
        assert!(
            (0.08..0.12).contains(&share("DISPOSITION_CALLBACK_BOOKED")),
            "{counts:?}"
        );

        let (disposition, _) = (0..100)
            .map(|_| choose_disposition(&mut rng, &[]))
            .find(|(disposition, _)| *disposition == Disposition::Signposted)
            .unwrap_or((Disposition::Resolved, String::new()));
        assert_eq!(disposition, Disposition::Resolved, "no partners, no signposting");
    }

    #[test]
    fn a_server_on_every_interface_is_dialled_on_loopback() {
        let any: SocketAddr = "0.0.0.0:50051".parse().expect("address");
        assert_eq!(dialable(any), "127.0.0.1:50051".parse().expect("address"));
        let any6: SocketAddr = "[::]:50051".parse().expect("address");
        assert_eq!(dialable(any6), "[::1]:50051".parse().expect("address"));
        let given: SocketAddr = "192.0.2.7:50051".parse().expect("address");
        assert_eq!(dialable(given), given);
    }

    #[test]
    fn a_minted_token_is_accepted_by_the_settings_it_was_minted_for() {
        let data_dir = tempfile::tempdir().expect("data dir");
        let credentials =
            switchboard_runtime::DevCredentials::load_or_create(data_dir.path()).expect("credentials");
        let auth = credentials.auth_settings();
        let jwt = auth.jwt.clone().expect("development credentials sign tokens");
        let minter = TokenMinter::new(&jwt).expect("an HS256 secret");
        let token = minter.agent_token("demo-agent-owen").expect("token");
        let authenticator = switchboard_runtime::auth::Authenticator::new(&auth).expect("authenticator");
        let principal = authenticator
            .authenticate(token.expose_secret())
            .expect("accepted");
        assert_eq!(principal.subject, "demo-agent-owen");
        assert!(principal.roles.contains(&Role::Agent));
    }
}
