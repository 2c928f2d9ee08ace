//! [`Router`]: one partition's engine, its journal, and what it tells agents.
//!
//! A router is either *active* (it owns the partition: it holds the engine
//! and accepts commands) or *standing by* (it holds nothing and refuses
//! commands with [`RouterError::NotActive`]). The consumer makes it active
//! when RabbitMQ makes this process the partition queue's single active
//! consumer; [`Router::take_over`] then rebuilds the engine from the journal
//! and writes a `TookOver` entry, which fences off a previous owner that is
//! still running: its next journal write collides and it stands by.
//!
//! Every accepted input goes the same way: the engine handles it (a refused
//! command changes nothing), then one store transaction writes the journal
//! entry, the inbox, the events to publish and the offer explanations, and
//! only then are agents told. If that write fails the router drops its
//! state and rebuilds it from the journal before the next input, so memory
//! never runs ahead of what is stored.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use chrono::{DateTime, Utc};
use switchboard_bus::OutboxRecord;
use switchboard_domain::{Channel, Needs};
use switchboard_routing::config::ServiceLevelTarget;
use switchboard_routing::{
    AgentId, Command, ContactId, ContactStage, Decision, Disposition, Engine, Explanation, Presence,
    RoutingConfig,
};
use tokio::sync::{Mutex, Notify, mpsc};
use uuid::Uuid;

use crate::error::{RouterError, RouterResult};
use crate::events::EventBatch;
use crate::journal::{BaseAgent, ContactInfo, Entry, StoredProfile};
use crate::store::{JournalRow, Record, RoutingStore, StoredAgent};

/// Journal entries after which a quiet partition (no contact being routed)
/// writes a new base and forgets the entries before it.
pub const COMPACT_AFTER_ENTRIES: u64 = 1_000;

/// Updates queued for one agent's desktop stream before it is dropped as
/// too slow to read them (the desktop reconnects and starts from its state).
const AGENT_STREAM_BUFFER: usize = 64;

/// Checks a routing configuration (TOML) beyond its own rules, e.g. against
/// the service catalogue; returns the failing key and why.
pub type ConfigCheck = Arc<dyn Fn(&RoutingConfig) -> Result<(), String> + Send + Sync>;

/// What the router needs to be built.
pub struct RouterSettings {
    /// The partition this router owns when active, e.g. `default`.
    pub partition: String,
    /// This process, as `TookOver` entries name it (host and process id).
    pub owner: String,
    /// The routing configuration (TOML) a partition with an empty journal
    /// starts from.
    pub config_toml: String,
    pub config_check: ConfigCheck,
}

/// A contact as routing shows it: the facts it arrived with and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactView {
    pub info: ContactInfo,
    pub queue: String,
    /// `None` once routing of the contact is over.
    pub stage: Option<ContactStage>,
    pub position: u32,
    pub estimated_wait_seconds: Option<u64>,
    /// Staff subject of the agent it is offered to, connected with or held for.
    pub agent: Option<String>,
}

/// An agent as the desktop and supervisors see them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentView {
    pub subject: String,
    pub presence: Presence,
    pub team: String,
    pub contacts: Vec<ContactId>,
    pub missed_offers: u32,
    pub idle_since: Option<DateTime<Utc>>,
}

/// One message on an agent's desktop stream.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentUpdate {
    State(AgentView),
    Offer {
        contact: ContactView,
        expires_at: DateTime<Utc>,
        reasons: Vec<String>,
    },
    OfferWithdrawn(ContactView),
    Assigned(ContactView),
    Released(ContactView),
}

/// A queue as supervisors see it.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueView {
    pub queue: String,
    pub channel: Channel,
    pub open: bool,
    pub waiting: u32,
    pub longest_wait_seconds: u32,
    /// The answer target, and the share of contacts to answer within it.
    pub target: ServiceLevelTarget,
    pub target_share: f64,
}

/// Everything live in the partition.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveView {
    /// The partitions this view covers.
    pub partitions: Vec<String>,
    pub queues: Vec<QueueView>,
    pub agents: Vec<AgentView>,
    pub contacts: Vec<ContactView>,
}

/// Why an offer went where it went, as stored for audit.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredExplanation {
    pub agent: String,
    pub reasons: Vec<String>,
    /// (who, verdict), best first.
    pub candidates: Vec<(String, String)>,
}

/// What an agent (or a supervisor on their behalf) asks of routing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentAction {
    SignIn,
    SignOut,
    SetPresence(Presence),
    Accept(ContactId),
    Reject(ContactId),
    End(ContactId),
    Complete(ContactId, Disposition),
    Transfer(ContactId, TransferTo),
}

/// Where a transfer goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferTo {
    Queue(String),
    /// Staff subject.
    Agent(String),
}

/// What the resident did, reported by the channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResidentAction {
    Abandoned,
    AcceptedCallback,
}

/// A `contact.received` or `case.*` event, decoded, for [`Router::apply_events`].
#[derive(Clone, Debug)]
pub enum Inbound {
    Contact {
        event_id: Uuid,
        info: ContactInfo,
        office: Option<String>,
    },
    CaseContext {
        event_id: Uuid,
        contact: ContactId,
        case_reference: String,
        case_contact_count: u32,
        /// The resident's needs as the case store knows them, when it said.
        needs: Option<Needs>,
    },
    /// An event routing has nothing to do with; recorded so it is not seen again.
    Ignored { event_id: Uuid },
}

impl Inbound {
    fn event_id(&self) -> Uuid {
        match self {
            Inbound::Contact { event_id, .. }
            | Inbound::CaseContext { event_id, .. }
            | Inbound::Ignored { event_id } => *event_id,
        }
    }
}

/// What became of one inbound event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// Applied before (the inbox knew it).
    Duplicate,
    /// Routing cannot take it; the reason names why, with no personal data.
    Refused(String),
}

/// One partition's router. See the module documentation.
pub struct Router {
    partition: String,
    owner: String,
    store: Arc<dyn RoutingStore>,
    config_check: ConfigCheck,
    /// The configuration a new partition starts from; replaced when the
    /// configuration changes, so a later take-over of an empty partition
    /// starts from the latest.
    config_toml: StdMutex<String>,
    /// `None` while standing by. A tokio mutex: it is held across the store
    /// write, so inputs are journaled in the order the engine saw them.
    state: Mutex<Option<Active>>,
    /// Mirrors `state.is_some()` for health checks that must not wait.
    active: AtomicBool,
    /// Desktop streams by agent. A std mutex: held only to push or prune,
    /// never across an await.
    streams: StdMutex<HashMap<AgentId, Vec<mpsc::Sender<AgentUpdate>>>>,
    /// Woken after every write with events, so the outbox relay publishes
    /// at once rather than at its next poll.
    outbox_wake: Arc<Notify>,
}

/// The state of an active router.
struct Active {
    engine: Engine,
    config_toml: String,
    /// The newest stored configuration version applied (0: none).
    config_version: u64,
    next_seq: u64,
    /// Entries written since the latest base.
    since_base: u64,
    contacts: HashMap<ContactId, ContactInfo>,
    /// Profiles of agents signed in, for bases.
    profiles: HashMap<AgentId, switchboard_routing::AgentProfile>,
    subjects: HashMap<AgentId, String>,
    agent_ids: HashMap<String, AgentId>,
}

/// What one input leaves to write and to tell.
#[derive(Default)]
struct Pending {
    entries: Vec<Entry>,
    inbox: Vec<Uuid>,
    events: EventBatch,
    explanations: Vec<(Uuid, String)>,
    updates: Vec<(AgentId, AgentUpdate)>,
}

fn engine_for(config_toml: &str) -> RouterResult<(Engine, RoutingConfig)> {
    let config = RoutingConfig::parse(config_toml)?;
    Ok((Engine::new(config.clone()), config))
}

impl Router {
    pub fn new(
        settings: RouterSettings,
        store: Arc<dyn RoutingStore>,
        outbox_wake: Arc<Notify>,
    ) -> Arc<Router> {
        Arc::new(Router {
            partition: settings.partition,
            owner: settings.owner,
            store,
            config_check: settings.config_check,
            config_toml: StdMutex::new(settings.config_toml),
            state: Mutex::new(None),
            active: AtomicBool::new(false),
            streams: StdMutex::new(HashMap::new()),
            outbox_wake,
        })
    }

    pub fn partition(&self) -> &str {
        &self.partition
    }

    /// Whether this router owns its partition now.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Makes this router the partition's owner: rebuilds the engine from
    /// the journal (or starts it from the configuration when the journal is
    /// empty) and writes a `TookOver` entry. Active already: nothing to do.
    pub async fn take_over(&self) -> RouterResult<()> {
        let mut guard = self.state.lock().await;
        if guard.is_some() {
            return Ok(());
        }
        let mut active = self.replay().await?;
        let mut pending = Pending::default();
        if active.next_seq == 1 {
            pending.entries.push(Entry::Base {
                config: active.config_toml.clone(),
                agents: Vec::new(),
            });
        }
        pending.entries.push(Entry::TookOver {
            at: Utc::now(),
            owner: self.owner.clone(),
        });
        self.write(&mut active, pending).await?;
        tracing::info!(partition = %self.partition, contacts = active.engine.contact_count(), agents = active.engine.signed_in_agents().len(), "took over routing partition");
        *guard = Some(active);
        self.active.store(true, Ordering::Release);
        Ok(())
    }

    /// Drops the partition's state: another router owns it now, or this
    /// process is stopping. Desktop streams end, so desktops reconnect to
    /// the owner.
    pub async fn stand_by(&self) {
        let mut guard = self.state.lock().await;
        if guard.take().is_some() {
            tracing::info!(partition = %self.partition, "no longer routing the partition");
        }
        self.active.store(false, Ordering::Release);
        self.streams
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clear();
    }

    async fn replay(&self) -> RouterResult<Active> {
        let rows = self.store.journal(&self.partition).await?;
        let config_toml = self
            .config_toml
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        let (engine, _) = engine_for(&config_toml)?;
        let mut active = Active {
            engine,
            config_toml,
            config_version: 0,
            next_seq: 1,
            since_base: 0,
            contacts: HashMap::new(),
            profiles: HashMap::new(),
            subjects: HashMap::new(),
            agent_ids: HashMap::new(),
        };
        for agent in self.store.agents().await? {
            active.know_agent(&agent);
        }
        for row in rows {
            let entry: Entry = serde_json::from_str(&row.entry).map_err(|error| RouterError::Corrupt {
                column: "journal.entry",
                reason: format!("seq {}: {error}", row.seq),
            })?;
            active.replay(entry).map_err(|error| RouterError::Corrupt {
                column: "journal.entry",
                reason: format!("seq {} does not replay: {error}", row.seq),
            })?;
            active.next_seq = row.seq + 1;
            active.since_base += 1;
        }
        Ok(active)
    }

    /// Runs `f` on the active state, then writes what it left pending. A
    /// write that fails drops the state (see the module documentation).
    async fn with_active<T>(
        &self,
        f: impl FnOnce(&mut Active, &mut Pending) -> RouterResult<T>,
    ) -> RouterResult<T> {
        let mut guard = self.state.lock().await;
        let Some(active) = guard.as_mut() else {
            return Err(RouterError::NotActive {
                partition: self.partition.clone(),
            });
        };
        let mut pending = Pending::default();
        // Even when `f` fails part-way, what it did to the engine before
        // failing is written, so memory never runs ahead of the journal.
        let result = f(active, &mut pending);
        if pending.entries.is_empty() && pending.inbox.is_empty() {
            return result;
        }
        match self.write(active, pending).await {
            Ok(()) => {
                self.compact_if_quiet(active).await;
                result
            }
            Err(error) => {
                *guard = None;
                self.active.store(false, Ordering::Release);
                if !matches!(error, RouterError::Fenced { .. }) {
                    // Rebuild from what was stored, so the next input sees it.
                    drop(guard);
                    if let Err(reload) = self.take_over().await {
                        tracing::warn!(partition = %self.partition, error.message = %reload, "could not rebuild routing state after a failed write");
                    }
                } else {
                    tracing::warn!(partition = %self.partition, "another router took the partition over; standing by");
                    self.streams
                        .lock()
                        .unwrap_or_else(|poison| poison.into_inner())
                        .clear();
                }
                Err(error)
            }
        }
    }

    async fn write(&self, active: &mut Active, pending: Pending) -> RouterResult<()> {
        let now = Utc::now();
        let mut entries = Vec::with_capacity(pending.entries.len());
        for (offset, entry) in pending.entries.iter().enumerate() {
            let json = serde_json::to_string(entry).map_err(|error| RouterError::Corrupt {
                column: "journal.entry",
                reason: error.to_string(),
            })?;
            entries.push(JournalRow {
                seq: active.next_seq + offset as u64,
                recorded_at: now,
                is_base: matches!(entry, Entry::Base { .. }),
                entry: json,
            });
        }
        let outbox: Vec<OutboxRecord> = pending.events.into_records()?;
        let has_events = !outbox.is_empty();
        let record = Record {
            entries,
            inbox: pending.inbox,
            outbox,
            explanations: pending.explanations,
        };
        self.store.record(&self.partition, &record).await?;
        let written = record.entries.len() as u64;
        active.next_seq += written;
        active.since_base += written;
        if let Some(base) = pending
            .entries
            .iter()
            .rposition(|e| matches!(e, Entry::Base { .. }))
        {
            active.since_base = (pending.entries.len() - base) as u64;
        }
        if has_events {
            self.outbox_wake.notify_one();
        }
        self.send_updates(pending.updates);
        Ok(())
    }

    /// At a quiet point (no contact being routed) after many entries,
    /// writes a base holding the signed-in agents and forgets the entries
    /// before it, so a take-over replays little.
    async fn compact_if_quiet(&self, active: &mut Active) {
        if active.since_base < COMPACT_AFTER_ENTRIES || active.engine.contact_count() > 0 {
            return;
        }
        let base_seq = active.next_seq;
        let base = Entry::Base {
            config: active.config_toml.clone(),
            agents: active.base_agents(),
        };
        let pending = Pending {
            entries: vec![base],
            ..Pending::default()
        };
        if let Err(error) = self.write(active, pending).await {
            tracing::warn!(partition = %self.partition, error.message = %error, "could not write a journal base");
            return;
        }
        match self.store.compact(&self.partition, base_seq).await {
            Ok(removed) => tracing::debug!(partition = %self.partition, removed, "journal compacted"),
            Err(error) => {
                tracing::warn!(partition = %self.partition, error.message = %error, "journal compaction failed")
            }
        }
    }

    fn send_updates(&self, updates: Vec<(AgentId, AgentUpdate)>) {
        if updates.is_empty() {
            return;
        }
        let mut streams = self.streams.lock().unwrap_or_else(|poison| poison.into_inner());
        for (agent, update) in updates {
            if let Some(senders) = streams.get_mut(&agent) {
                // A desktop that does not keep up is dropped; it reconnects
                // and starts again from its state.
                senders.retain(|sender| sender.try_send(update.clone()).is_ok());
            }
        }
        streams.retain(|_, senders| !senders.is_empty());
    }

    // ---------------------------------------------------------------------
    // Inputs.

    /// Applies decoded events in order, skipping those the inbox has seen.
    /// One store write for the whole batch.
    pub async fn apply_events(&self, batch: Vec<Inbound>) -> RouterResult<Vec<Applied>> {
        let ids: Vec<Uuid> = batch.iter().map(Inbound::event_id).collect();
        if !self.is_active() {
            return Err(RouterError::NotActive {
                partition: self.partition.clone(),
            });
        }
        let seen = self.store.seen(&self.partition, &ids).await?;
        let now = Utc::now();
        let partition = self.partition.clone();
        self.with_active(move |active, pending| {
            let mut outcomes = Vec::with_capacity(batch.len());
            for inbound in batch {
                let event_id = inbound.event_id();
                if seen.contains(&event_id) || pending.inbox.contains(&event_id) {
                    outcomes.push(Applied::Duplicate);
                    continue;
                }
                let outcome = match inbound {
                    Inbound::Contact { info, .. } if !active.routes(&partition, &info) => Applied::Applied,
                    Inbound::Contact { info, office, .. } => {
                        if active.contacts.contains_key(&info.contact) {
                            Applied::Duplicate
                        } else {
                            let command = Command::ContactArrived {
                                contact: info.contact,
                                channel: info.channel,
                                destination: switchboard_routing::Destination::Service(info.service.clone()),
                                needs: info.needs.clone(),
                                office,
                            };
                            match active.run(now, command, Some(info), pending) {
                                Ok(()) => Applied::Applied,
                                Err(RouterError::Routing(error)) => Applied::Refused(error.to_string()),
                                Err(error) => return Err(error),
                            }
                        }
                    }
                    Inbound::CaseContext {
                        contact,
                        case_reference,
                        case_contact_count,
                        needs,
                        ..
                    } => {
                        if let Some(info) = active.contacts.get_mut(&contact) {
                            info.case_reference = Some(case_reference.clone());
                            info.case_contact_count = case_contact_count;
                            // Needs the resident did not repeat this time,
                            // from their record: route by them too.
                            let known = needs.filter(|needs| *needs != info.needs);
                            if let Some(needs) = &known {
                                info.needs = needs.clone();
                            }
                            pending.entries.push(Entry::CaseContext {
                                contact,
                                case_reference,
                                case_contact_count,
                                needs: known.clone(),
                            });
                            if let Some(needs) = known
                                && active.engine.contact_status(contact).is_some()
                            {
                                match active.run(now, Command::NeedsKnown { contact, needs }, None, pending) {
                                    Ok(()) => {}
                                    // The contact moved on meanwhile: its record's
                                    // needs no longer route it.
                                    Err(RouterError::Routing(error)) => {
                                        tracing::debug!(contact_id = %contact, error.message = %error, "recorded needs not applied");
                                    }
                                    Err(error) => return Err(error),
                                }
                            }
                        }
                        Applied::Applied
                    }
                    Inbound::Ignored { .. } => Applied::Applied,
                };
                if outcome != Applied::Duplicate || !seen.contains(&event_id) {
                    pending.inbox.push(event_id);
                }
                outcomes.push(outcome);
            }
            Ok(outcomes)
        })
        .await
    }

    /// Lets time pass: offers time out, overflow steps fire. Journaled only
    /// when something happened.
    pub async fn tick(&self) -> RouterResult<()> {
        if !self.is_active() {
            return Ok(());
        }
        self.with_active(|active, pending| active.run(Utc::now(), Command::Tick, None, pending))
            .await
    }

    /// An agent's own action, or a supervisor's on their behalf.
    pub async fn agent_action(&self, subject: &str, action: AgentAction) -> RouterResult<AgentView> {
        let stored = match action {
            AgentAction::SignIn => Some(self.stored_agent(subject).await?),
            _ => None,
        };
        let target = match &action {
            AgentAction::Transfer(_, TransferTo::Agent(target)) => Some(self.stored_agent(target).await?),
            _ => None,
        };
        let subject = subject.to_owned();
        let partition = self.partition.clone();
        self.with_active(move |active, pending| {
            if let Some(stored) = &stored {
                active.know_agent(stored);
            }
            if let Some(target) = &target {
                active.know_agent(target);
            }
            let agent = active.agent_id(&subject)?;
            let now = Utc::now();
            match action {
                AgentAction::SignIn => {
                    let signed_in = active
                        .engine
                        .agent_status(agent)
                        .is_some_and(|status| status.presence != Presence::Offline);
                    if !signed_in {
                        let profile =
                            parse_profile(&stored.as_ref().map(|s| s.profile.clone()).unwrap_or_default())?;
                        if profile.partition() != partition {
                            return Err(RouterError::FailedPrecondition(format!(
                                "agent {subject} works in routing partition {}, not {partition}",
                                profile.partition()
                            )));
                        }
                        active.run(
                            now,
                            Command::AgentSignedIn {
                                agent,
                                profile: profile.to_engine(),
                            },
                            None,
                            pending,
                        )?;
                    }
                }
                AgentAction::SignOut | AgentAction::SetPresence(Presence::Offline) => {
                    active.run(now, Command::AgentSignedOut { agent }, None, pending)?;
                }
                AgentAction::SetPresence(presence) => {
                    active.run(now, Command::PresenceChanged { agent, presence }, None, pending)?;
                }
                AgentAction::Accept(contact) => {
                    active.run(now, Command::OfferAccepted { contact, agent }, None, pending)?;
                }
                AgentAction::Reject(contact) => {
                    active.run(now, Command::OfferRejected { contact, agent }, None, pending)?;
                }
                AgentAction::End(contact) => {
                    active.check_holds(agent, contact)?;
                    active.run(now, Command::ContactEnded { contact }, None, pending)?;
                }
                AgentAction::Complete(contact, disposition) => {
                    active.check_holds(agent, contact)?;
                    active.run(now, Command::WrapUpDone { contact, disposition }, None, pending)?;
                }
                AgentAction::Transfer(contact, to) => {
                    active.check_holds(agent, contact)?;
                    let to = active.transfer_target(to)?;
                    active.run(now, Command::Transfer { contact, to }, None, pending)?;
                }
            }
            active.agent_view(agent)
        })
        .await
    }

    /// A supervisor moves a contact, whoever holds it.
    pub async fn move_contact(&self, contact: ContactId, to: TransferTo) -> RouterResult<ContactView> {
        let target = match &to {
            TransferTo::Agent(target) => Some(self.stored_agent(target).await?),
            TransferTo::Queue(_) => None,
        };
        self.with_active(move |active, pending| {
            if let Some(target) = &target {
                active.know_agent(target);
            }
            let to = active.transfer_target(to)?;
            active.run(Utc::now(), Command::Transfer { contact, to }, None, pending)?;
            active.contact_view(contact)
        })
        .await
    }

    /// The channel reports what the resident did.
    pub async fn resident_action(
        &self,
        contact: ContactId,
        action: ResidentAction,
    ) -> RouterResult<ContactView> {
        self.with_active(move |active, pending| {
            let view = active.contact_view(contact)?;
            let command = match action {
                ResidentAction::Abandoned => Command::ContactAbandoned { contact },
                ResidentAction::AcceptedCallback => Command::CallbackAccepted { contact },
            };
            active.run(Utc::now(), command, None, pending)?;
            Ok(active.contact_view(contact).unwrap_or(ContactView {
                stage: None,
                position: 0,
                estimated_wait_seconds: None,
                agent: None,
                ..view
            }))
        })
        .await
    }

    /// Where a contact stands.
    pub async fn contact(&self, contact: ContactId) -> RouterResult<ContactView> {
        self.with_active(move |active, _| active.contact_view(contact))
            .await
    }

    /// Opens the calling agent's desktop stream: first their state and what
    /// they hold, then every update.
    pub async fn open_stream(&self, subject: &str) -> RouterResult<mpsc::Receiver<AgentUpdate>> {
        let stored = self.stored_agent(subject).await?;
        let subject = subject.to_owned();
        let (agent, opening) = self
            .with_active(move |active, _| {
                active.know_agent(&stored);
                let agent = active.agent_id(&subject)?;
                let mut opening = vec![AgentUpdate::State(active.agent_view(agent)?)];
                if let Some(status) = active.engine.agent_status(agent) {
                    for contact in status.contacts {
                        let view = active.contact_view(contact)?;
                        opening.push(match view.stage {
                            Some(ContactStage::Offered) => AgentUpdate::Offer {
                                contact: view,
                                // The engine times the offer; the desktop sees it
                                // withdrawn if it lapses.
                                expires_at: Utc::now(),
                                reasons: Vec::new(),
                            },
                            _ => AgentUpdate::Assigned(view),
                        });
                    }
                }
                Ok((agent, opening))
            })
            .await?;
        let (sender, receiver) = mpsc::channel(AGENT_STREAM_BUFFER.max(opening.len() + 1));
        for update in opening {
            // Cannot fail: the buffer holds the whole opening.
            let _ = sender.try_send(update);
        }
        self.streams
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .entry(agent)
            .or_default()
            .push(sender);
        Ok(receiver)
    }

    /// Live queues, agents and contacts.
    pub async fn live(&self) -> RouterResult<LiveView> {
        let partition = self.partition.clone();
        self.with_active(move |active, _| Ok(active.live_view(partition)))
            .await
    }

    /// Why the contact's latest offer went where it went.
    pub async fn explain(
        &self,
        contact: ContactId,
    ) -> RouterResult<(Option<ContactView>, Option<StoredExplanation>)> {
        // Routing of the contact may be over, or happen elsewhere: the
        // stored explanation still answers.
        let view = match self.contact(contact).await {
            Ok(view) => Some(view),
            Err(RouterError::NotFound { .. } | RouterError::NotActive { .. }) => None,
            Err(error) => return Err(error),
        };
        let stored = self.store.explanation(Uuid::from_u128(contact.0)).await?;
        let explanation = match stored {
            Some(json) => Some(serde_json::from_str(&json).map_err(|error| RouterError::Corrupt {
                column: "offer_explanations.explanation",
                reason: error.to_string(),
            })?),
            None => None,
        };
        if view.is_none() && explanation.is_none() {
            return Err(RouterError::NotFound {
                what: "contact",
                id: Uuid::from_u128(contact.0).to_string(),
            });
        }
        Ok((view, explanation))
    }

    /// Stores an agent's profile. An agent signed in and holding nothing
    /// gets it at once (signed out and in again, presence kept); otherwise
    /// it applies at their next sign-in.
    pub async fn put_profile(&self, subject: &str, profile: &StoredProfile) -> RouterResult<()> {
        let config = self.current_config().await?;
        validate_profile(profile, &config)?;
        let json = serde_json::to_string(profile).map_err(|error| RouterError::Corrupt {
            column: "agents.profile",
            reason: error.to_string(),
        })?;
        let stored = self.store.put_agent(subject, &json).await?;
        if !self.is_active() {
            return Ok(());
        }
        let profile = profile.to_engine();
        self.with_active(move |active, pending| {
            active.know_agent(&stored);
            let agent = AgentId(stored.agent_id);
            let Some(status) = active.engine.agent_status(agent) else {
                return Ok(());
            };
            if status.presence == Presence::Offline || !status.contacts.is_empty() {
                return Ok(());
            }
            let now = Utc::now();
            active.run(now, Command::AgentSignedOut { agent }, None, pending)?;
            active.run(now, Command::AgentSignedIn { agent, profile }, None, pending)?;
            if status.presence != Presence::Available {
                let presence = match status.presence {
                    Presence::WrapUp | Presence::Missed => Presence::Busy,
                    other => other,
                };
                active.run(now, Command::PresenceChanged { agent, presence }, None, pending)?;
            }
            Ok(())
        })
        .await
        .or_else(|error| match error {
            RouterError::NotActive { .. } => Ok(()),
            other => Err(other),
        })
    }

    pub async fn profiles(&self) -> RouterResult<Vec<(String, StoredProfile)>> {
        self.store
            .agents()
            .await?
            .into_iter()
            .map(|agent| Ok((agent.subject, parse_profile(&agent.profile)?)))
            .collect()
    }

    /// The routing configuration in force (TOML).
    pub async fn config_toml(&self) -> String {
        match self.state.lock().await.as_ref() {
            Some(active) => active.config_toml.clone(),
            None => self
                .config_toml
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .clone(),
        }
    }

    async fn current_config(&self) -> RouterResult<RoutingConfig> {
        Ok(RoutingConfig::parse(&self.config_toml().await)?)
    }

    /// Checks a routing configuration (TOML) by its own rules, the
    /// [`ConfigCheck`], and against the partitions in force (which only
    /// change with a restart of the routing processes).
    pub async fn validate_config(&self, toml: &str) -> RouterResult<RoutingConfig> {
        let config = RoutingConfig::parse(toml)?;
        (self.config_check)(&config).map_err(|reason| RouterError::InvalidArgument {
            field: "toml",
            reason,
        })?;
        let current = self.current_config().await?;
        if config.partitions() != current.partitions() {
            // A partition no process runs a router for would drop its
            // contacts; new routers start with the processes.
            return Err(RouterError::FailedPrecondition(format!(
                "the routing partitions would change from {:?} to {:?}: restart the routing processes with the new configuration",
                current.partitions(),
                config.partitions()
            )));
        }
        Ok(config)
    }

    /// Validates and applies a new routing configuration (TOML), e.g. a
    /// reloaded file. Unchanged text is a no-op. While contacts are being
    /// routed the queues must stay the same (see
    /// `switchboard_routing::Engine::reconfigure`); that is refused with
    /// [`RouterError::FailedPrecondition`].
    pub async fn reconfigure(&self, toml: &str) -> RouterResult<String> {
        self.validate_config(toml).await?;
        self.apply_config(toml, None).await
    }

    /// Applies the newest configuration supervisors stored, if this router
    /// has not yet: called every few seconds, so an edit made through any
    /// process reaches every partition, and one that had to wait for a
    /// quiet moment applies once it comes.
    pub async fn follow_stored_config(&self) -> RouterResult<()> {
        if !self.is_active() {
            return Ok(());
        }
        let Some((version, toml)) = self.store.latest_config().await? else {
            return Ok(());
        };
        let applied = match self.state.lock().await.as_ref() {
            Some(active) => active.config_version,
            None => return Ok(()),
        };
        if version <= applied {
            return Ok(());
        }
        if let Err(error) = self.validate_config(&toml).await {
            // Valid where it was stored, refused here (e.g. another version
            // of the catalogue): said once, then left.
            tracing::warn!(partition = %self.partition, version, error.message = %error, "stored routing configuration refused");
            self.with_active(move |active, _| {
                active.config_version = version;
                Ok(())
            })
            .await?;
            return Ok(());
        }
        match self.apply_config(&toml, Some(version)).await {
            Ok(_) => {
                tracing::info!(partition = %self.partition, version, "routing configuration applied");
                Ok(())
            }
            Err(RouterError::FailedPrecondition(reason)) => {
                tracing::debug!(partition = %self.partition, version, reason = %reason, "routing configuration waits for a quiet moment");
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    async fn apply_config(&self, toml: &str, version: Option<u64>) -> RouterResult<String> {
        *self
            .config_toml
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = toml.to_owned();
        if !self.is_active() {
            return Ok(toml.to_owned());
        }
        let toml = toml.to_owned();
        self.with_active(move |active, pending| {
            if active.config_toml != toml {
                let at = Utc::now();
                active.reconfigure(at, &toml)?;
                pending.entries.push(Entry::Reconfigured {
                    at,
                    config: toml.clone(),
                    version,
                });
            } else if version.is_some_and(|version| version > active.config_version) {
                // The same text as in force: nothing to change, but the
                // version is taken, so it is not applied again.
                pending.entries.push(Entry::Reconfigured {
                    at: Utc::now(),
                    config: toml.clone(),
                    version,
                });
            }
            if let Some(version) = version {
                active.config_version = active.config_version.max(version);
            }
            Ok(toml)
        })
        .await
    }

    async fn stored_agent(&self, subject: &str) -> RouterResult<StoredAgent> {
        self.store.agent_by_subject(subject).await?.ok_or_else(|| {
            RouterError::FailedPrecondition(format!(
                "agent {subject} has no routing profile: a supervisor sets one with PutAgentProfile"
            ))
        })
    }
}

fn parse_profile(json: &str) -> RouterResult<StoredProfile> {
    serde_json::from_str(json).map_err(|error| RouterError::Corrupt {
        column: "agents.profile",
        reason: error.to_string(),
    })
}

/// Checks a profile against the configuration: proficiency 1 to 5, at least
/// one channel, a written-contact capacity when the agent takes web contacts.
pub fn validate_profile(profile: &StoredProfile, config: &RoutingConfig) -> RouterResult<()> {
    for (skill, level) in &profile.skills {
        if !(1..=5).contains(level) {
            return Err(RouterError::InvalidArgument {
                field: "profile.skills",
                reason: format!("{skill}: proficiency must be 1 to 5, not {level}"),
            });
        }
        if !config.skills.is_empty()
            && !config.skills.contains_key(skill)
            // Language skills are made from the language rule's prefix and
            // a language tag, e.g. `language-pl`, and are not listed.
            && !config
                .needs
                .language
                .as_ref()
                .is_some_and(|rule| skill.starts_with(&rule.skill_prefix))
            && config
                .queues
                .iter()
                .all(|q| q.skills.iter().all(|s| &s.skill != skill))
        {
            return Err(RouterError::InvalidArgument {
                field: "profile.skills",
                reason: format!("{skill}: not a skill the routing configuration knows"),
            });
        }
    }
    if !config.partitions().contains(profile.partition()) {
        return Err(RouterError::InvalidArgument {
            field: "profile.partition",
            reason: format!("no queue is in partition {}", profile.partition()),
        });
    }
    if profile.team.trim().is_empty() {
        return Err(RouterError::InvalidArgument {
            field: "profile.team",
            reason: "must not be empty".to_owned(),
        });
    }
    if profile.channels.is_empty() {
        return Err(RouterError::InvalidArgument {
            field: "profile.channels",
            reason: "must name at least one channel".to_owned(),
        });
    }
    let written = profile
        .channels
        .iter()
        .any(|channel| matches!(channel, Channel::Web | Channel::Email | Channel::Letter));
    if written && profile.web_capacity == 0 {
        return Err(RouterError::InvalidArgument {
            field: "profile.web_capacity",
            reason: "must be at least 1 for an agent who takes written contacts".to_owned(),
        });
    }
    if profile.channels.contains(&Channel::FaceToFace) && profile.office.as_deref().unwrap_or("").is_empty() {
        return Err(RouterError::InvalidArgument {
            field: "profile.office",
            reason: "an agent who takes face-to-face visits sits at an office".to_owned(),
        });
    }
    Ok(())
}

impl Active {
    /// Whether this partition routes the contact: the partition of the queue
    /// its service and channel go to. Contacts no queue takes are the
    /// default partition's, which refuses them (once) by name.
    fn routes(&self, partition: &str, info: &ContactInfo) -> bool {
        let owner = self
            .engine
            .config()
            .partition_for(&info.service, info.channel)
            .unwrap_or(switchboard_routing::config::DEFAULT_PARTITION);
        owner == partition
    }

    fn know_agent(&mut self, agent: &StoredAgent) {
        let id = AgentId(agent.agent_id);
        self.subjects.insert(id, agent.subject.clone());
        self.agent_ids.insert(agent.subject.clone(), id);
    }

    fn agent_id(&self, subject: &str) -> RouterResult<AgentId> {
        self.agent_ids
            .get(subject)
            .copied()
            .ok_or_else(|| RouterError::NotFound {
                what: "agent",
                id: subject.to_owned(),
            })
    }

    fn subject(&self, agent: AgentId) -> String {
        self.subjects
            .get(&agent)
            .cloned()
            .unwrap_or_else(|| agent.to_string())
    }

    fn transfer_target(&self, to: TransferTo) -> RouterResult<switchboard_routing::TransferTarget> {
        Ok(match to {
            TransferTo::Queue(queue) => switchboard_routing::TransferTarget::Queue(queue.as_str().into()),
            TransferTo::Agent(subject) => {
                switchboard_routing::TransferTarget::Agent(self.agent_id(&subject)?)
            }
        })
    }

    /// The agent must hold the contact to end, complete or transfer it.
    fn check_holds(&self, agent: AgentId, contact: ContactId) -> RouterResult<()> {
        let holder = self.engine.contact_status(contact).and_then(|status| {
            matches!(status.stage, ContactStage::Connected | ContactStage::WrapUp)
                .then_some(status.agent)
                .flatten()
        });
        if holder == Some(agent) {
            Ok(())
        } else {
            Err(RouterError::FailedPrecondition(format!(
                "contact {} is not connected to agent {}",
                Uuid::from_u128(contact.0),
                self.subject(agent)
            )))
        }
    }

    /// Handles one command: the engine decides, the contact facts follow,
    /// and the entry, events, explanations and desktop updates go pending.
    fn run(
        &mut self,
        at: DateTime<Utc>,
        command: Command,
        arrived: Option<ContactInfo>,
        pending: &mut Pending,
    ) -> RouterResult<()> {
        let concerned = command_contact(&command);
        let holder_before = concerned
            .and_then(|contact| self.engine.contact_status(contact))
            .and_then(|s| s.agent);
        let view_before = concerned.and_then(|contact| self.contact_view(contact).ok());
        if let Some(info) = &arrived {
            self.contacts.insert(info.contact, info.clone());
        }
        let decisions = match self.engine.handle(at, command.clone()) {
            Ok(decisions) => decisions,
            Err(error) => {
                if let Some(info) = &arrived {
                    self.contacts.remove(&info.contact);
                }
                return Err(error.into());
            }
        };
        if matches!(command, Command::Tick) && decisions.is_empty() {
            return Ok(());
        }
        if let Command::AgentSignedIn { agent, profile } = &command {
            self.profiles.insert(*agent, profile.clone());
        }
        pending.events.command(&command, at);
        for decision in &decisions {
            self.follow(decision);
            pending.events.decision(decision, at, &self.contacts);
            self.tell(decision, pending);
        }
        // A contact that left its agent (transferred, abandoned, completed).
        if let (Some(contact), Some(before)) = (concerned, holder_before) {
            let holder_after = self.engine.contact_status(contact).and_then(|s| s.agent);
            if holder_after != Some(before)
                && let Some(view) = self.contact_view(contact).ok().or(view_before)
            {
                let was_offer = !decisions
                    .iter()
                    .any(|d| matches!(d, Decision::Assigned { contact: c, .. } if *c == contact));
                let stage_before = view.stage;
                let update = if stage_before == Some(ContactStage::Offered) && was_offer {
                    AgentUpdate::OfferWithdrawn(view)
                } else {
                    AgentUpdate::Released(view)
                };
                if !pending
                    .updates
                    .iter()
                    .any(|(agent, u)| *agent == before && same_contact(u, contact))
                {
                    pending.updates.push((before, update));
                }
            }
        }
        self.forget_finished(&decisions);
        let mut touched: Vec<AgentId> = decisions.iter().filter_map(decision_agent).collect();
        if let Some(agent) = command_agent(&command) {
            touched.push(agent);
        }
        if let Some(agent) = holder_before {
            touched.push(agent);
        }
        touched.sort_unstable();
        touched.dedup();
        for agent in touched {
            if let Ok(view) = self.agent_view(agent) {
                pending.updates.push((agent, AgentUpdate::State(view)));
            }
        }
        match arrived {
            Some(contact) => pending.entries.push(Entry::Arrived { at, contact, command }),
            None => pending.entries.push(Entry::Command { at, command }),
        }
        Ok(())
    }

    /// Desktop updates for one decision.
    fn tell(&mut self, decision: &Decision, pending: &mut Pending) {
        match decision {
            Decision::Offered {
                contact,
                agent,
                expires_at,
                explanation,
            } => {
                let reasons = reasons(explanation);
                let stored = StoredExplanation {
                    agent: self.subject(*agent),
                    reasons: reasons.clone(),
                    candidates: explanation
                        .candidates
                        .iter()
                        .map(|candidate| self.candidate(candidate))
                        .collect(),
                };
                if let Ok(json) = serde_json::to_string(&stored) {
                    pending
                        .explanations
                        .retain(|(id, _)| *id != Uuid::from_u128(contact.0));
                    pending.explanations.push((Uuid::from_u128(contact.0), json));
                }
                if let Ok(view) = self.contact_view(*contact) {
                    pending.updates.push((
                        *agent,
                        AgentUpdate::Offer {
                            contact: view,
                            expires_at: *expires_at,
                            reasons,
                        },
                    ));
                }
            }
            Decision::OfferReturned { contact, agent, .. } => {
                if let Ok(view) = self.contact_view(*contact) {
                    pending.updates.push((*agent, AgentUpdate::OfferWithdrawn(view)));
                }
            }
            Decision::Assigned { contact, agent, .. } => {
                if let Ok(view) = self.contact_view(*contact) {
                    pending.updates.push((*agent, AgentUpdate::Assigned(view)));
                }
            }
            _ => {}
        }
    }

    fn candidate(&self, candidate: &switchboard_routing::Candidate) -> (String, String) {
        match candidate {
            switchboard_routing::Candidate::Agent { agent, verdict, .. } => {
                (self.subject(*agent), format!("{verdict:?}"))
            }
            switchboard_routing::Candidate::Contact { contact, verdict, .. } => {
                (Uuid::from_u128(contact.0).to_string(), format!("{verdict:?}"))
            }
        }
    }

    /// Keeps the contact facts in step with one decision.
    fn follow(&mut self, decision: &Decision) {
        let (contact, queue, callback) = match decision {
            Decision::Queued { contact, queue, .. } => (contact, Some(queue.to_string()), None),
            Decision::CallbackOffered {
                contact,
                queue,
                callback_queue,
                ..
            } => (
                contact,
                Some(queue.to_string()),
                Some(Some(callback_queue.to_string())),
            ),
            Decision::Moved { contact, to, .. } => (contact, Some(to.to_string()), Some(None)),
            Decision::Offered {
                contact, explanation, ..
            } => (contact, Some(explanation.queue.to_string()), Some(None)),
            _ => return,
        };
        if let Some(info) = self.contacts.get_mut(contact) {
            if queue.is_some() {
                info.queue = queue;
            }
            if let Some(callback) = callback {
                info.callback_queue = callback;
            }
        }
    }

    /// Forgets contacts whose routing is over.
    fn forget_finished(&mut self, decisions: &[Decision]) {
        for decision in decisions {
            if let Decision::Finished { contact, .. } = decision {
                self.contacts.remove(contact);
            }
        }
    }

    /// Replays one journal entry (no events, no desktop updates).
    fn replay(&mut self, entry: Entry) -> RouterResult<()> {
        match entry {
            Entry::Base { config, agents } => {
                let (engine, _) = engine_for(&config)?;
                self.engine = engine;
                self.config_toml = config;
                self.contacts.clear();
                self.profiles.clear();
                self.since_base = 0;
                for agent in agents {
                    self.rebase_agent(agent)?;
                }
            }
            Entry::Arrived { at, contact, command } => {
                self.contacts.insert(contact.contact, contact);
                self.replay_command(at, command)?;
            }
            Entry::Command { at, command } => self.replay_command(at, command)?,
            Entry::CaseContext {
                contact,
                case_reference,
                case_contact_count,
                needs,
            } => {
                if let Some(info) = self.contacts.get_mut(&contact) {
                    info.case_reference = Some(case_reference);
                    info.case_contact_count = case_contact_count;
                    if let Some(needs) = needs {
                        info.needs = needs;
                    }
                }
            }
            Entry::Reconfigured { at, config, version } => {
                if self.config_toml != config {
                    self.reconfigure(at, &config)?;
                }
                if let Some(version) = version {
                    self.config_version = self.config_version.max(version);
                }
            }
            Entry::TookOver { .. } => {}
        }
        Ok(())
    }

    fn replay_command(&mut self, at: DateTime<Utc>, command: Command) -> RouterResult<()> {
        if let Command::AgentSignedIn { agent, profile } = &command {
            self.profiles.insert(*agent, profile.clone());
        }
        let decisions = self.engine.handle(at, command)?;
        for decision in &decisions {
            self.follow(decision);
        }
        self.forget_finished(&decisions);
        Ok(())
    }

    fn rebase_agent(&mut self, agent: BaseAgent) -> RouterResult<()> {
        self.replay_command(
            agent.idle_since,
            Command::AgentSignedIn {
                agent: agent.agent,
                profile: agent.profile,
            },
        )?;
        if agent.presence != Presence::Available {
            self.replay_command(
                agent.idle_since,
                Command::PresenceChanged {
                    agent: agent.agent,
                    presence: agent.presence,
                },
            )?;
        }
        Ok(())
    }

    /// The signed-in agents for a base, longest idle first.
    fn base_agents(&self) -> Vec<BaseAgent> {
        let mut agents: Vec<BaseAgent> = self
            .engine
            .signed_in_agents()
            .into_iter()
            .filter_map(|agent| {
                let status = self.engine.agent_status(agent)?;
                let profile = self.profiles.get(&agent)?.clone();
                let presence = match status.presence {
                    Presence::Available | Presence::Break | Presence::Busy => status.presence,
                    // Nothing is held at a quiet point; a missed agent must
                    // still choose available again.
                    Presence::Missed | Presence::WrapUp => Presence::Busy,
                    Presence::Offline => return None,
                };
                Some(BaseAgent {
                    agent,
                    profile,
                    presence,
                    idle_since: status.idle_since,
                })
            })
            .collect();
        agents.sort_by_key(|agent| (agent.idle_since, agent.agent));
        agents
    }

    /// Applies a new configuration. With no contact being routed the engine
    /// starts afresh from it, with the signed-in agents as they were;
    /// otherwise the engine keeps its contacts and takes the new settings
    /// for the queues it has (adding or removing queues waits for a quiet
    /// moment).
    fn reconfigure(&mut self, at: DateTime<Utc>, toml: &str) -> RouterResult<()> {
        let config = RoutingConfig::parse(toml)?;
        if self.engine.contact_count() == 0 {
            let agents = self.base_agents();
            let (engine, _) = engine_for(toml)?;
            self.engine = engine;
            self.profiles.clear();
            for agent in agents {
                self.rebase_agent(agent)?;
            }
            // Time never runs backwards for the engine.
            self.engine.handle(at, Command::Tick)?;
        } else {
            self.engine
                .reconfigure(config)
                .map_err(RouterError::FailedPrecondition)?;
        }
        self.config_toml = toml.to_owned();
        Ok(())
    }

    fn agent_view(&self, agent: AgentId) -> RouterResult<AgentView> {
        match self.engine.agent_status(agent) {
            Some(status) => Ok(AgentView {
                subject: self.subject(agent),
                presence: status.presence,
                team: status.team,
                contacts: status.contacts,
                missed_offers: status.missed_offers,
                idle_since: Some(status.idle_since),
            }),
            None => Ok(AgentView {
                subject: self.subject(agent),
                presence: Presence::Offline,
                team: String::new(),
                contacts: Vec::new(),
                missed_offers: 0,
                idle_since: None,
            }),
        }
    }

    fn contact_view(&self, contact: ContactId) -> RouterResult<ContactView> {
        let info = self.contacts.get(&contact).ok_or_else(|| RouterError::NotFound {
            what: "contact",
            id: Uuid::from_u128(contact.0).to_string(),
        })?;
        let status = self.engine.contact_status(contact);
        Ok(ContactView {
            info: info.clone(),
            queue: status.as_ref().map(|s| s.queue.to_string()).unwrap_or_default(),
            stage: status.as_ref().map(|s| s.stage),
            position: status
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .map_or(0, |w| u32::try_from(w.position).unwrap_or(u32::MAX)),
            estimated_wait_seconds: status
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.estimated_wait_seconds),
            agent: status
                .as_ref()
                .and_then(|s| s.agent)
                .map(|agent| self.subject(agent)),
        })
    }

    fn live_view(&self, partition: String) -> LiveView {
        let now = self.engine.now().max(Utc::now());
        let mut contacts: Vec<ContactView> = self
            .contacts
            .keys()
            .filter_map(|contact| self.contact_view(*contact).ok())
            .collect();
        contacts.sort_by_key(|view| (view.info.received_at, view.info.contact));
        let config = self.engine.config();
        let queues = config
            .queues
            .iter()
            .filter(|queue| queue.partition == partition)
            .map(|queue| {
                let waiting = self.engine.queue_waiting(queue.id.as_str());
                let longest = waiting
                    .iter()
                    .filter_map(|status| self.contacts.get(&status.contact))
                    .map(|info| (now - info.received_at).num_seconds().max(0))
                    .max()
                    .unwrap_or(0);
                QueueView {
                    queue: queue.id.to_string(),
                    channel: queue.channel,
                    open: self.engine.is_open(queue.id.as_str(), now),
                    waiting: u32::try_from(waiting.len()).unwrap_or(u32::MAX),
                    longest_wait_seconds: u32::try_from(longest).unwrap_or(u32::MAX),
                    target: queue.service_level.target,
                    target_share: f64::from(queue.service_level.answered_percent) / 100.0,
                }
            })
            .collect();
        let mut agents: Vec<AgentView> = self
            .engine
            .signed_in_agents()
            .into_iter()
            .filter_map(|agent| self.agent_view(agent).ok())
            .collect();
        agents.sort_by(|a, b| a.subject.cmp(&b.subject));
        LiveView {
            partitions: vec![partition],
            queues,
            agents,
            contacts,
        }
    }
}

fn same_contact(update: &AgentUpdate, contact: ContactId) -> bool {
    match update {
        AgentUpdate::Offer { contact: view, .. }
        | AgentUpdate::OfferWithdrawn(view)
        | AgentUpdate::Assigned(view)
        | AgentUpdate::Released(view) => view.info.contact == contact,
        AgentUpdate::State(_) => false,
    }
}

fn reasons(explanation: &Explanation) -> Vec<String> {
    explanation.to_string().split("; ").map(str::to_owned).collect()
}

fn command_contact(command: &Command) -> Option<ContactId> {
    match command {
        Command::ContactArrived { contact, .. }
        | Command::NeedsKnown { contact, .. }
        | Command::ContactAbandoned { contact }
        | Command::CallbackAccepted { contact }
        | Command::OfferAccepted { contact, .. }
        | Command::OfferRejected { contact, .. }
        | Command::ContactEnded { contact }
        | Command::WrapUpDone { contact, .. }
        | Command::Transfer { contact, .. } => Some(*contact),
        Command::AgentSignedIn { .. }
        | Command::AgentSignedOut { .. }
        | Command::PresenceChanged { .. }
        | Command::Tick => None,
    }
}

fn command_agent(command: &Command) -> Option<AgentId> {
    match command {
        Command::AgentSignedIn { agent, .. }
        | Command::AgentSignedOut { agent }
        | Command::PresenceChanged { agent, .. }
        | Command::OfferAccepted { agent, .. }
        | Command::OfferRejected { agent, .. } => Some(*agent),
        _ => None,
    }
}

fn decision_agent(decision: &Decision) -> Option<AgentId> {
    match decision {
        Decision::Offered { agent, .. }
        | Decision::OfferReturned { agent, .. }
        | Decision::AgentMissed { agent, .. }
        | Decision::Assigned { agent, .. }
        | Decision::WrapUpStarted { agent, .. }
        | Decision::HeldForAgent { agent, .. } => Some(*agent),
        Decision::Finished {
            outcome: switchboard_routing::Outcome::Completed { agent, .. },
            ..
        } => Some(*agent),
        _ => None,
    }
}
