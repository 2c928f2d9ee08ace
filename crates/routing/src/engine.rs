//! The routing engine: a deterministic state machine. [`Engine::handle`]
//! takes the time and one [`Command`] and returns the [`Decision`]s it led
//! to. It reads no clock, does no I/O and never waits, so the same commands
//! at the same times always give the same decisions, and a day can be
//! replayed from the event stream.
//!
//! The engine keeps one invariant after every command: no waiting contact
//! could be offered to an agent who has room for it. Anything that could
//! create a match (a contact arriving or coming back, an overflow step, an
//! agent freeing up) is followed at once by the search for it, so a contact
//! that waits is one nobody available may take. Offers time out and overflow
//! steps fire on [`Command::Tick`], which the routing service sends every
//! second or so; each timer fires at its own due time, not at the tick's.
//!
//! A refused command changes nothing: every check happens before the first
//! change.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, Utc};
use switchboard_domain::Channel;

use crate::config::{QueueConfig, QueueId, Redirect, RoutingConfig, ServiceLevelTarget, StepAction};
use crate::error::{RoutingError, RoutingResult};
use crate::explain::{Explanation, PriorityExplained, RequirementSource, SkillMatch, Trigger};
use crate::matcher::{AgentIndex, Matcher, Search};
use crate::model::{
    AgentId, AgentProfile, Command, ContactId, Decision, Destination, Disposition, MoveReason, Needs,
    Outcome, Presence, ReturnReason, TransferTarget,
};
use crate::state::{
    Agent, AgentIdx, Contact, ContactIdx, ContactState, QueueIdx, QueueRank, Req, SigIdx, State, Status,
    channel_slot, is_exclusive,
};

/// Weight of the newest handle time in the running average behind wait
/// estimates: about the last twenty contacts count.
const HANDLE_TIME_WEIGHT: f64 = 0.05;

#[derive(Debug, Clone)]
enum CompiledStep {
    Requirement { after_ms: i64, reqs: Vec<Req> },
    MoveTo { after_ms: i64, queue: QueueIdx },
}

impl CompiledStep {
    fn after_ms(&self) -> i64 {
        match self {
            CompiledStep::Requirement { after_ms, .. } | CompiledStep::MoveTo { after_ms, .. } => *after_ms,
        }
    }
}

#[derive(Debug, Clone)]
struct QueueRuntime {
    channel: Channel,
    /// Step 0 is the queue's own requirement.
    steps: Vec<CompiledStep>,
    vulnerable_req: Option<Req>,
    offer_timeout_ms: i64,
    /// Running average handle time.
    handle_ms: f64,
    /// Contacts the signed-in agents who qualify at step 0 can hold at once.
    staffed_slots: u32,
}

impl QueueRuntime {
    fn base_reqs(&self) -> &[Req] {
        match self.steps.first() {
            Some(CompiledStep::Requirement { reqs, .. }) => reqs,
            _ => &[],
        }
    }
}

/// Where a waiting contact stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingStatus {
    pub contact: ContactId,
    pub queue: QueueId,
    /// 1 is next.
    pub position: usize,
    pub estimated_wait_seconds: Option<u64>,
    /// Waiting for the named agent of a transfer rather than the queue.
    pub for_agent: Option<AgentId>,
}

/// What a supervisor sees of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    pub agent: AgentId,
    pub presence: Presence,
    pub team: String,
    /// Offered, connected or in wrap-up.
    pub contacts: Vec<ContactId>,
    pub missed_offers: u32,
    pub idle_since: DateTime<Utc>,
}

/// Where a contact is in its routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactStage {
    /// In a queue, or held for a named agent.
    Waiting,
    Offered,
    Connected,
    WrapUp,
}

impl ContactStage {
    pub fn as_str(self) -> &'static str {
        match self {
            ContactStage::Waiting => "waiting",
            ContactStage::Offered => "offered",
            ContactStage::Connected => "connected",
            ContactStage::WrapUp => "wrap-up",
        }
    }
}

/// A contact the engine is routing, as [`Engine::contact_status`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactStatus {
    pub contact: ContactId,
    pub queue: QueueId,
    pub stage: ContactStage,
    /// The agent it is offered to, connected with, or held for.
    pub agent: Option<AgentId>,
    /// Position and wait estimate while it waits.
    pub waiting: Option<WaitingStatus>,
}

/// The routing engine. See the module documentation.
#[derive(Debug, Clone)]
pub struct Engine {
    config: RoutingConfig,
    queues: Vec<QueueRuntime>,
    state: State,
    matcher: Matcher,
    /// Min-heap of (due ms, token, contact). A timer is live only while its
    /// token is the contact's current one, so superseded timers need no
    /// removal.
    timers: BinaryHeap<Reverse<(i64, u64, ContactIdx)>>,
    next_token: u64,
    next_seq: u64,
    now: i64,
    out: Vec<Decision>,
}

/// A vulnerability counts only when recorded with the resident's consent.
fn consented_vulnerability(needs: &Needs) -> bool {
    needs.vulnerable && needs.vulnerability_consent
}

fn to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Compiles each queue's overflow steps and settings against the engine's
/// skill table: the runtime part and the ranking part, in config order.
fn compile_queues(config: &RoutingConfig, state: &mut State) -> (Vec<QueueRuntime>, Vec<QueueRank>) {
    let index_of = |id: &QueueId| -> QueueIdx {
        config
            .queues
            .binary_search_by(|queue| queue.id.cmp(id))
            .map_or(0, |index| index as QueueIdx)
    };
    let mut queues = Vec::with_capacity(config.queues.len());
    let mut ranks = Vec::with_capacity(config.queues.len());
    for queue in &config.queues {
        let compile = |state: &mut State, reqs: &[crate::config::SkillRequirement]| -> Vec<Req> {
            reqs.iter()
                .map(|req| Req {
                    skill: state.skills.intern(&req.skill),
                    min: req.min_proficiency,
                    source: RequirementSource::Queue,
                })
                .collect()
        };
        let base = compile(state, &queue.skills);
        let mut steps = vec![CompiledStep::Requirement {
            after_ms: 0,
            reqs: base.clone(),
        }];
        let mut previous = base;
        for step in &queue.overflow {
            let after_ms = i64::from(step.after_seconds) * 1000;
            match &step.action {
                StepAction::Relax {
                    skills,
                    min_proficiency,
                } => {
                    let mut reqs = match skills {
                        Some(skills) => compile(state, skills),
                        None => previous.clone(),
                    };
                    if let Some(min) = min_proficiency {
                        // A step only ever widens: it lowers minimums, never raises them.
                        for req in &mut reqs {
                            req.min = req.min.min(*min);
                        }
                    }
                    previous = reqs.clone();
                    steps.push(CompiledStep::Requirement { after_ms, reqs });
                }
                StepAction::MoveTo(target) => steps.push(CompiledStep::MoveTo {
                    after_ms,
                    queue: index_of(target),
                }),
            }
        }
        let vulnerable_req = queue.vulnerable_requires.as_ref().map(|req| Req {
            skill: state.skills.intern(&req.skill),
            min: req.min_proficiency,
            source: RequirementSource::Need,
        });
        ranks.push(QueueRank {
            id: queue.id.clone(),
            priority: queue.priority,
            ageing_ms: queue.ageing_seconds_per_point.map(|s| i64::from(s) * 1000),
            waiting: Default::default(),
        });
        queues.push(QueueRuntime {
            channel: queue.channel,
            steps,
            vulnerable_req,
            offer_timeout_ms: i64::from(queue.offer_timeout_seconds) * 1000,
            handle_ms: f64::from(queue.expected_handle_seconds) * 1000.0,
            staffed_slots: 0,
        });
    }
    (queues, ranks)
}

impl Engine {
    /// An engine with the indexed matcher.
    pub fn new(config: RoutingConfig) -> Engine {
        Self::build(config, Matcher::Indexed(AgentIndex::default()))
    }

    /// An engine that scans every agent and every waiting contact for each
    /// decision: the baseline for benchmarks and the reference for tests.
    /// It makes exactly the same decisions as [`Engine::new`], slowly.
    pub fn naive(config: RoutingConfig) -> Engine {
        Self::build(config, Matcher::Naive)
    }

    fn build(config: RoutingConfig, matcher: Matcher) -> Engine {
        let mut state = State::default();
        let (queues, ranks) = compile_queues(&config, &mut state);
        state.queues = ranks;
        Engine {
            config,
            queues,
            state,
            matcher,
            timers: BinaryHeap::new(),
            next_token: 1,
            next_seq: 0,
            now: i64::MIN,
            out: Vec::new(),
        }
    }

    pub fn config(&self) -> &RoutingConfig {
        &self.config
    }

    /// Takes a new configuration while contacts are being routed. The queues
    /// must stay the same (same ids and channels): their settings, skills,
    /// overflow steps, hours, limits and the calendar change in place.
    /// Contacts already waiting keep their place and their current
    /// requirement; the new steps apply from each one's next overflow check,
    /// and wait estimates count the signed-in agents against the new skills.
    /// Adding or removing queues needs an engine without contacts; the
    /// error says so.
    pub fn reconfigure(&mut self, config: RoutingConfig) -> Result<(), String> {
        let same_queues = config.queues.len() == self.config.queues.len()
            && config.queues.iter().zip(&self.config.queues).all(|(new, old)| {
                new.id == old.id && new.channel == old.channel && new.partition == old.partition
            });
        if !same_queues {
            return Err(
                "queues were added, removed, or moved to another channel or partition: that applies once no contact is being routed"
                    .to_owned(),
            );
        }
        let (mut queues, ranks) = compile_queues(&config, &mut self.state);
        for (rank, new) in self.state.queues.iter_mut().zip(ranks) {
            rank.priority = new.priority;
            rank.ageing_ms = new.ageing_ms;
        }
        for agent in &mut self.state.agents {
            agent.staffs.clear();
            if !agent.signed_in {
                continue;
            }
            for (queue_index, queue) in queues.iter_mut().enumerate() {
                if agent.works(queue.channel) && agent.shortfall(queue.base_reqs()).is_none() {
                    queue.staffed_slots += slots(agent, queue.channel);
                    agent.staffs.push(queue_index as QueueIdx);
                }
            }
        }
        self.queues = queues;
        self.config = config;
        Ok(())
    }

    /// The latest time the engine has been given.
    pub fn now(&self) -> DateTime<Utc> {
        to_time(self.now)
    }

    /// Handles one command at `now` and returns the decisions it led to, in
    /// order. Time never runs backwards: an earlier `now` than one already
    /// seen is taken as the latest seen. On error nothing has changed.
    pub fn handle(&mut self, now: DateTime<Utc>, command: Command) -> RoutingResult<Vec<Decision>> {
        let now = self.now.max(now.timestamp_millis());
        self.out.clear();
        let result = match command {
            Command::Tick => {
                self.run_timers(now);
                self.now = now;
                Ok(())
            }
            command => {
                self.now = now;
                self.apply(command)
            }
        };
        match result {
            Ok(()) => Ok(std::mem::take(&mut self.out)),
            Err(error) => {
                debug_assert!(self.out.is_empty(), "a refused command produced decisions");
                self.out.clear();
                Err(error)
            }
        }
    }

    fn apply(&mut self, command: Command) -> RoutingResult<()> {
        match command {
            Command::ContactArrived {
                contact,
                channel,
                destination,
                needs,
                office,
            } => self.contact_arrived(contact, channel, destination, &needs, office),
            Command::NeedsKnown { contact, needs } => self.needs_known(contact, &needs),
            Command::ContactAbandoned { contact } => self.contact_abandoned(contact),
            Command::CallbackAccepted { contact } => self.callback_accepted(contact),
            Command::AgentSignedIn { agent, profile } => self.agent_signed_in(agent, profile),
            Command::AgentSignedOut { agent } => self.agent_signed_out(agent),
            Command::PresenceChanged { agent, presence } => self.presence_changed(agent, presence),
            Command::OfferAccepted { contact, agent } => self.offer_accepted(contact, agent),
            Command::OfferRejected { contact, agent } => {
                let (contact_index, agent_index) = self.offered_pair(contact, agent)?;
                self.return_offer(contact_index, agent_index, ReturnReason::Rejected);
                Ok(())
            }
            Command::ContactEnded { contact } => self.contact_ended(contact),
            Command::WrapUpDone { contact, disposition } => self.wrap_up_done(contact, disposition),
            Command::Transfer { contact, to } => self.transfer(contact, to),
            Command::Tick => Ok(()),
        }
    }

    // -----------------------------------------------------------------------
    // Lookups.

    fn contact_index(&self, contact: ContactId) -> RoutingResult<ContactIdx> {
        self.state
            .contact_ids
            .get(&contact)
            .copied()
            .ok_or(RoutingError::UnknownContact(contact))
    }

    fn agent_index(&self, agent: AgentId) -> RoutingResult<AgentIdx> {
        self.state
            .agent_ids
            .get(&agent)
            .copied()
            .ok_or(RoutingError::UnknownAgent(agent))
    }

    fn queue_index(&self, id: &str) -> RoutingResult<QueueIdx> {
        self.config
            .queues
            .binary_search_by(|queue| queue.id.as_str().cmp(id))
            .map(|index| index as QueueIdx)
            .map_err(|_| RoutingError::UnknownQueue(id.to_owned()))
    }

    fn queue_config(&self, queue: QueueIdx) -> Option<&QueueConfig> {
        self.config.queues.get(queue as usize)
    }

    fn queue_id(&self, queue: QueueIdx) -> QueueId {
        self.queue_config(queue)
            .map(|q| q.id.clone())
            .unwrap_or_else(|| QueueId::from("?"))
    }

    fn contact_state(&self, contact: ContactIdx) -> Option<ContactState> {
        self.state.contact(contact).map(|c| c.state)
    }

    // -----------------------------------------------------------------------
    // Contacts.

    fn contact_arrived(
        &mut self,
        id: ContactId,
        channel: Channel,
        destination: Destination,
        needs: &Needs,
        office: Option<String>,
    ) -> RoutingResult<()> {
        if self.state.contact_ids.contains_key(&id) {
            return Err(RoutingError::DuplicateContact(id));
        }
        let queue = match &destination {
            Destination::Service(service) => self
                .config
                .queue_for(service, channel)
                .map(|queue| queue.id.clone())
                .ok_or_else(|| RoutingError::NoQueue {
                    service: service.clone(),
                    channel: channel.to_string(),
                })?,
            Destination::Queue(queue) => queue.clone(),
        };
        let queue_index = self.queue_index(queue.as_str())?;
        self.check_channel(id, queue_index, channel)?;
        let office = if channel == Channel::FaceToFace {
            Some(office.ok_or(RoutingError::MissingOffice)?)
        } else {
            None
        };
        let (needs_reqs, needs_boost) = self.needs_requirements(needs, office.as_deref());
        let seq = self.next_seq;
        self.next_seq += 1;
        let contact = Contact {
            id,
            channel,
            queue: queue_index,
            needs_reqs,
            vulnerable: consented_vulnerability(needs),
            needs_boost,
            sig: 0,
            arrived: self.now,
            queued: self.now,
            seq,
            step: 0,
            front: false,
            declined: Vec::new(),
            target: None,
            state: ContactState::Detached,
            timer: 0,
            callback_offered: false,
            accepted_at: 0,
        };
        let index = match self.state.free_slots.pop() {
            Some(slot) => {
                if let Some(entry) = self.state.contacts.get_mut(slot as usize) {
                    *entry = Some(contact);
                }
                slot
            }
            None => {
                self.state.contacts.push(Some(contact));
                (self.state.contacts.len() - 1) as ContactIdx
            }
        };
        self.state.contact_ids.insert(id, index);
        self.enter_queue(index, queue_index, None);
        Ok(())
    }

    fn needs_known(&mut self, id: ContactId, needs: &Needs) -> RoutingResult<()> {
        let index = self.contact_index(id)?;
        if !matches!(self.contact_state(index), Some(ContactState::Waiting(_))) {
            return Ok(());
        }
        let (mut needs_reqs, needs_boost) = self.needs_requirements(needs, None);
        let Some(contact) = self.state.contact(index) else {
            return Ok(());
        };
        // The office a visit is at is the contact's, not the resident's.
        needs_reqs.extend(
            contact
                .needs_reqs
                .iter()
                .filter(|req| req.source == RequirementSource::Office)
                .copied(),
        );
        let vulnerable = consented_vulnerability(needs);
        let queue = contact.queue;
        if contact.needs_reqs == needs_reqs
            && contact.needs_boost == needs_boost
            && contact.vulnerable == vulnerable
        {
            return Ok(());
        }
        // Out of its lane under the old priority, back in under the new one,
        // at the same arrival and step, so it keeps its place among equals.
        self.detach(index);
        let sig = self.contact_sig(needs_reqs.clone(), vulnerable, queue);
        if let Some(contact) = self.state.contact_mut(index) {
            contact.needs_reqs = needs_reqs;
            contact.needs_boost = needs_boost;
            contact.vulnerable = vulnerable;
            contact.sig = sig;
        }
        self.settle(index, false);
        Ok(())
    }

    fn check_channel(&self, contact: ContactId, queue: QueueIdx, channel: Channel) -> RoutingResult<()> {
        let queue_channel = self.queues.get(queue as usize).map(|q| q.channel);
        if queue_channel == Some(channel) {
            Ok(())
        } else {
            Err(RoutingError::ChannelMismatch {
                contact,
                queue: self.queue_id(queue).to_string(),
                queue_channel: queue_channel.map(|c| c.to_string()).unwrap_or_default(),
                channel: channel.to_string(),
            })
        }
    }

    /// The skills a resident's needs require, and the priority they add.
    fn needs_requirements(&mut self, needs: &Needs, office: Option<&str>) -> (Vec<Req>, i64) {
        let policy = &self.config.needs;
        let mut wanted: Vec<(String, u8, RequirementSource)> = Vec::new();
        let mut boost = 0;
        let flags = [
            (needs.british_sign_language, &policy.british_sign_language),
            (needs.interpreter, &policy.interpreter),
            (needs.large_print, &policy.large_print),
            (needs.hearing_loop, &policy.hearing_loop),
            (needs.assisted_digital, &policy.assisted_digital),
            (needs.wheelchair_access, &policy.wheelchair_access),
            (consented_vulnerability(needs), &policy.vulnerable),
        ];
        for (flag, rule) in flags {
            if !flag {
                continue;
            }
            boost += rule.priority_boost;
            if let Some(requirement) = &rule.requires {
                wanted.push((
                    requirement.skill.clone(),
                    requirement.min_proficiency,
                    RequirementSource::Need,
                ));
            }
        }
        if let (Some(language), Some(rule)) = (&needs.language, &policy.language) {
            let language = language.to_lowercase();
            if !rule.not_required_for.contains(&language) {
                wanted.push((
                    format!("{}{language}", rule.skill_prefix),
                    rule.min_proficiency,
                    RequirementSource::Need,
                ));
            }
        }
        if let Some(office) = office {
            wanted.push((office_skill(office), 1, RequirementSource::Office));
        }
        let reqs = wanted
            .into_iter()
            .map(|(skill, min, source)| Req {
                skill: self.state.skills.intern(&skill),
                min,
                source,
            })
            .collect();
        (reqs, boost)
    }

    fn contact_abandoned(&mut self, id: ContactId) -> RoutingResult<()> {
        let index = self.contact_index(id)?;
        let agent = match self.contact_state(index) {
            Some(ContactState::Waiting(_) | ContactState::WaitingFor(_)) => None,
            Some(ContactState::Offered(agent)) => Some(agent),
            _ => {
                return Err(RoutingError::WrongState {
                    contact: id,
                    expected: "waiting or offered",
                });
            }
        };
        self.detach(index);
        if let Some(agent) = agent {
            self.unload(agent, index);
        }
        let waited_seconds = self
            .state
            .contact(index)
            .map_or(0, |c| (self.now - c.arrived) / 1000);
        self.finish(index, Outcome::Abandoned { waited_seconds });
        if let Some(agent) = agent {
            self.fill_agent(agent);
        }
        Ok(())
    }

    fn callback_accepted(&mut self, id: ContactId) -> RoutingResult<()> {
        let index = self.contact_index(id)?;
        let contact = self
            .state
            .contact(index)
            .ok_or(RoutingError::UnknownContact(id))?;
        let queue = contact.queue;
        if !matches!(contact.state, ContactState::Waiting(_)) || !contact.callback_offered {
            return Err(RoutingError::WrongState {
                contact: id,
                expected: "waiting with a callback offered",
            });
        }
        let target = self
            .queue_config(queue)
            .and_then(|q| q.callback.as_ref())
            .map(|callback| callback.queue.clone())
            .ok_or_else(|| RoutingError::NoCallback(self.queue_id(queue).to_string()))?;
        let target = self.queue_index(target.as_str())?;
        self.detach(index);
        self.enter_queue(index, target, Some((queue, MoveReason::CallbackAccepted)));
        Ok(())
    }

    fn offered_pair(&self, contact: ContactId, agent: AgentId) -> RoutingResult<(ContactIdx, AgentIdx)> {
        let contact_index = self.contact_index(contact)?;
        let agent_index = self.agent_index(agent)?;
        match self.contact_state(contact_index) {
            Some(ContactState::Offered(offered_to)) if offered_to == agent_index => {
                Ok((contact_index, agent_index))
            }
            _ => Err(RoutingError::NotOffered { contact, agent }),
        }
    }

    fn offer_accepted(&mut self, contact: ContactId, agent: AgentId) -> RoutingResult<()> {
        let (contact_index, agent_index) = self.offered_pair(contact, agent)?;
        let now = self.now;
        let Some(c) = self.state.contact_mut(contact_index) else {
            return Err(RoutingError::UnknownContact(contact));
        };
        c.state = ContactState::Connected(agent_index);
        c.accepted_at = now;
        c.timer = 0;
        let (queue, queued, arrived) = (c.queue, c.queued, c.arrived);
        let within_target = match self.queue_config(queue).map(|q| q.service_level.target) {
            Some(ServiceLevelTarget::Seconds(seconds)) => now - queued <= i64::from(seconds) * 1000,
            Some(ServiceLevelTarget::WorkingDays(days)) => {
                self.config
                    .calendar
                    .working_days_between(to_time(queued), to_time(now))
                    <= days
            }
            None => false,
        };
        self.out.push(Decision::Assigned {
            contact,
            agent,
            waited_seconds: (now - arrived) / 1000,
            within_target,
        });
        Ok(())
    }

    fn contact_ended(&mut self, id: ContactId) -> RoutingResult<()> {
        let index = self.contact_index(id)?;
        let Some(ContactState::Connected(agent)) = self.contact_state(index) else {
            return Err(RoutingError::WrongState {
                contact: id,
                expected: "connected",
            });
        };
        if let Some(contact) = self.state.contact_mut(index) {
            contact.state = ContactState::WrapUp(agent);
        }
        let agent_id = self.state.agent(agent).map_or(AgentId(0), |a| a.id);
        self.out.push(Decision::WrapUpStarted {
            contact: id,
            agent: agent_id,
        });
        Ok(())
    }

    fn wrap_up_done(&mut self, id: ContactId, disposition: Disposition) -> RoutingResult<()> {
        let index = self.contact_index(id)?;
        let Some(ContactState::WrapUp(agent)) = self.contact_state(index) else {
            return Err(RoutingError::WrongState {
                contact: id,
                expected: "in wrap-up",
            });
        };
        if let Disposition::SignpostedTo(partner) = &disposition
            && !self.config.partners.contains_key(partner)
        {
            return Err(RoutingError::UnknownPartner(partner.clone()));
        }
        if let Some(contact) = self.state.contact(index) {
            let handled = (self.now - contact.accepted_at) as f64;
            if let Some(queue) = self.queues.get_mut(contact.queue as usize) {
                queue.handle_ms = queue.handle_ms * (1.0 - HANDLE_TIME_WEIGHT) + handled * HANDLE_TIME_WEIGHT;
            }
        }
        self.unload(agent, index);
        let agent_id = self.state.agent(agent).map_or(AgentId(0), |a| a.id);
        self.finish(
            index,
            Outcome::Completed {
                agent: agent_id,
                disposition,
            },
        );
        self.fill_agent(agent);
        Ok(())
    }

    fn transfer(&mut self, id: ContactId, to: TransferTarget) -> RoutingResult<()> {
        let index = self.contact_index(id)?;
        let (state, queue, channel) = self
            .state
            .contact(index)
            .map(|c| (c.state, c.queue, c.channel))
            .ok_or(RoutingError::UnknownContact(id))?;
        let from_agent = match state {
            ContactState::Connected(agent) => Some(agent),
            ContactState::Waiting(_) | ContactState::WaitingFor(_) => None,
            _ => {
                return Err(RoutingError::WrongState {
                    contact: id,
                    expected: "connected or waiting",
                });
            }
        };
        enum Target {
            Queue(QueueIdx),
            Agent(AgentIdx),
        }
        let target = match &to {
            TransferTarget::Queue(target) => {
                let target = self.queue_index(target.as_str())?;
                self.check_channel(id, target, channel)?;
                Target::Queue(target)
            }
            TransferTarget::Agent(agent) => {
                let agent_index = self.agent_index(*agent)?;
                if !self.state.agent(agent_index).is_some_and(|a| a.signed_in) {
                    return Err(RoutingError::NotSignedIn(*agent));
                }
                Target::Agent(agent_index)
            }
        };
        self.detach(index);
        if let Some(agent) = from_agent {
            self.unload(agent, index);
        }
        match target {
            Target::Queue(target) => self.enter_queue(index, target, Some((queue, MoveReason::Transfer))),
            Target::Agent(agent) => {
                let deadline = self.now + i64::from(self.config.engine.named_agent_wait_seconds) * 1000;
                if let Some(contact) = self.state.contact_mut(index) {
                    contact.target = Some((agent, deadline));
                    contact.front = false;
                    contact.declined.clear();
                }
                let agent_id = self.state.agent(agent).map_or(AgentId(0), |a| a.id);
                self.out.push(Decision::HeldForAgent {
                    contact: id,
                    agent: agent_id,
                    until: to_time(deadline),
                });
                self.settle(index, true);
            }
        }
        if let Some(agent) = from_agent {
            self.fill_agent(agent);
        }
        Ok(())
    }

    /// Puts a detached contact into a queue, following out-of-hours and
    /// queue-full redirects (which config validation keeps free of loops).
    fn enter_queue(&mut self, index: ContactIdx, queue: QueueIdx, from: Option<(QueueIdx, MoveReason)>) {
        let contact_id = self.state.contact(index).map_or(ContactId(0), |c| c.id);
        let mut target = queue;
        let mut from = from;
        let mut hops = 0;
        loop {
            if let Some((from_queue, reason)) = from {
                self.out.push(Decision::Moved {
                    contact: contact_id,
                    from: self.queue_id(from_queue),
                    to: self.queue_id(target),
                    reason,
                });
            }
            hops += 1;
            let Some(config) = self.config.queues.get(target as usize) else {
                return;
            };
            let redirect = if !self.config.calendar.is_open(&config.hours, to_time(self.now)) {
                Some((config.out_of_hours.clone(), MoveReason::OutOfHours))
            } else {
                match (config.max_waiting, &config.when_full) {
                    (Some(max), Some(when_full))
                        if self
                            .state
                            .queues
                            .get(target as usize)
                            .map_or(0, |q| q.waiting.len())
                            >= max as usize =>
                    {
                        Some((when_full.clone(), MoveReason::QueueFull))
                    }
                    _ => None,
                }
            };
            let Some((redirect, reason)) = redirect else {
                break;
            };
            match redirect {
                Redirect::Queue { queue: next } | Redirect::Callback { queue: next }
                    if hops <= self.queues.len() =>
                {
                    from = Some((target, reason));
                    target = self
                        .config
                        .queues
                        .binary_search_by(|q| q.id.cmp(&next))
                        .map_or(target, |i| i as QueueIdx);
                }
                redirect => {
                    let queue = self.queue_id(target);
                    let outcome = if reason == MoveReason::OutOfHours {
                        Outcome::Closed { queue, redirect }
                    } else {
                        Outcome::Overflowed { queue, redirect }
                    };
                    self.finish(index, outcome);
                    return;
                }
            }
        }
        let now = self.now;
        let Some(contact) = self.state.contact_mut(index) else {
            return;
        };
        contact.queue = target;
        contact.queued = now;
        contact.step = 0;
        contact.front = false;
        contact.target = None;
        contact.declined.clear();
        let (needs_reqs, vulnerable) = (contact.needs_reqs.clone(), contact.vulnerable);
        let sig = self.contact_sig(needs_reqs, vulnerable, target);
        if let Some(contact) = self.state.contact_mut(index) {
            contact.sig = sig;
        }
        self.settle(index, true);
    }

    /// What a contact is matched by: its needs' requirements, and its
    /// queue's vulnerability requirement while it is vulnerable.
    fn contact_sig(&mut self, mut reqs: Vec<Req>, vulnerable: bool, queue: QueueIdx) -> SigIdx {
        if vulnerable && let Some(req) = self.queues.get(queue as usize).and_then(|q| q.vulnerable_req) {
            reqs.push(req);
        }
        self.state.intern_sig(reqs)
    }

    /// Places a detached contact where it belongs in its queue at the step in
    /// force, offers it if anyone may take it, and otherwise announces its
    /// place (when `announce`) and sets its next timer.
    fn settle(&mut self, index: ContactIdx, announce: bool) {
        let now = self.now;
        let Some(contact) = self.state.contact(index) else {
            return;
        };
        let (queue, channel, sig, queued, old_step, id) = (
            contact.queue,
            contact.channel,
            contact.sig,
            contact.queued,
            contact.step,
            contact.id,
        );

        if let Some((agent, deadline)) = contact.target {
            let agent_gone = !self.state.agent(agent).is_some_and(|a| a.signed_in);
            if contact.declined.contains(&agent) || now >= deadline || agent_gone {
                if let Some(contact) = self.state.contact_mut(index) {
                    contact.target = None;
                }
                self.enter_queue(index, queue, Some((queue, MoveReason::NamedAgentTimeout)));
                return;
            }
            let key = self.state.lane_key(index, contact);
            self.state.personal.entry(agent).or_default().insert(key);
            if let Some(contact) = self.state.contact_mut(index) {
                contact.state = ContactState::WaitingFor(agent);
            }
            let search = self.matcher.best_agent(&self.state, index, now);
            if let Some(chosen) = search.chosen {
                self.offer(index, chosen, search, Trigger::ContactReady);
                return;
            }
            if announce {
                let position = self
                    .state
                    .personal
                    .get(&agent)
                    .map_or(1, |set| set.range(..key).count() + 1);
                self.out.push(Decision::Queued {
                    contact: id,
                    queue: self.queue_id(queue),
                    position,
                    estimated_wait_seconds: None,
                });
            }
            self.schedule(index, deadline);
            return;
        }

        let Some(runtime) = self.queues.get(queue as usize) else {
            return;
        };
        let elapsed = now - queued;
        let step = runtime
            .steps
            .iter()
            .rposition(|step| step.after_ms() <= elapsed)
            .unwrap_or(0)
            .max(old_step);
        let reqs = match runtime.steps.get(step) {
            Some(CompiledStep::MoveTo { queue: target, .. }) => {
                let target = *target;
                self.enter_queue(index, target, Some((queue, MoveReason::Overflow)));
                return;
            }
            Some(CompiledStep::Requirement { reqs, .. }) => reqs.clone(),
            None => Vec::new(),
        };
        let next_due = runtime.steps.get(step + 1).map(|next| queued + next.after_ms());
        let lane = self.state.lane_for(queue, step, sig, channel, &reqs);
        if step > old_step {
            self.out.push(Decision::Relaxed {
                contact: id,
                queue: self.queue_id(queue),
                step,
            });
        }
        let Some(contact) = self.state.contact_mut(index) else {
            return;
        };
        contact.step = step;
        contact.state = ContactState::Waiting(lane);
        let key = match self.state.contact(index) {
            Some(contact) => self.state.lane_key(index, contact),
            None => return,
        };
        if let Some(lane) = self.state.lanes.get_mut(lane as usize) {
            lane.members.insert(key);
        }
        if let Some(queue) = self.state.queues.get_mut(queue as usize) {
            queue.waiting.insert(key);
        }

        let search = self.matcher.best_agent(&self.state, index, now);
        if let Some(chosen) = search.chosen {
            self.offer(index, chosen, search, Trigger::ContactReady);
            return;
        }
        if announce {
            let position = self
                .state
                .queues
                .get(queue as usize)
                .and_then(|q| q.waiting.rank(&key))
                .map_or(1, |rank| rank + 1);
            let estimated_wait_seconds = self.estimate_wait(queue, position);
            let queue_id = self.queue_id(queue);
            self.out.push(Decision::Queued {
                contact: id,
                queue: queue_id.clone(),
                position,
                estimated_wait_seconds,
            });
            let callback = self.queue_config(queue).and_then(|q| q.callback.clone());
            let already_offered = self.state.contact(index).is_some_and(|c| c.callback_offered);
            if let Some(callback) = callback
                && !already_offered
                && estimated_wait_seconds
                    .is_none_or(|w| w > u64::from(callback.offer_when_wait_exceeds_seconds))
            {
                if let Some(contact) = self.state.contact_mut(index) {
                    contact.callback_offered = true;
                }
                self.out.push(Decision::CallbackOffered {
                    contact: id,
                    queue: queue_id,
                    estimated_wait_seconds,
                    callback_queue: callback.queue,
                });
            }
        }
        if let Some(due) = next_due {
            self.schedule(index, due);
        } else if let Some(contact) = self.state.contact_mut(index) {
            contact.timer = 0;
        }
    }

    /// Position times the average handle time, shared over the contacts the
    /// qualified agents can hold at once. `None` while nobody qualified is
    /// signed in.
    fn estimate_wait(&self, queue: QueueIdx, position: usize) -> Option<u64> {
        let runtime = self.queues.get(queue as usize)?;
        if runtime.staffed_slots == 0 {
            return None;
        }
        let seconds = position as f64 * runtime.handle_ms / 1000.0 / f64::from(runtime.staffed_slots);
        Some(seconds.ceil() as u64)
    }

    fn schedule(&mut self, index: ContactIdx, due: i64) {
        let token = self.next_token;
        self.next_token += 1;
        if let Some(contact) = self.state.contact_mut(index) {
            contact.timer = token;
            self.timers.push(Reverse((due, token, index)));
        }
    }

    /// Takes a contact out of whatever lane or personal queue holds it.
    fn detach(&mut self, index: ContactIdx) {
        let Some(contact) = self.state.contact(index) else {
            return;
        };
        let key = self.state.lane_key(index, contact);
        let queue = contact.queue;
        match contact.state {
            ContactState::Waiting(lane) => {
                if let Some(lane) = self.state.lanes.get_mut(lane as usize) {
                    lane.members.remove(&key);
                }
                if let Some(queue) = self.state.queues.get_mut(queue as usize) {
                    queue.waiting.remove(&key);
                }
            }
            ContactState::WaitingFor(agent) => {
                if let Some(set) = self.state.personal.get_mut(&agent) {
                    set.remove(&key);
                    if set.is_empty() {
                        self.state.personal.remove(&agent);
                    }
                }
            }
            _ => {}
        }
        if let Some(contact) = self.state.contact_mut(index) {
            contact.state = ContactState::Detached;
            contact.timer = 0;
        }
    }

    /// Ends the routing of a contact and forgets it.
    fn finish(&mut self, index: ContactIdx, outcome: Outcome) {
        let Some(contact) = self.state.contacts.get_mut(index as usize).and_then(Option::take) else {
            return;
        };
        self.state.contact_ids.remove(&contact.id);
        self.state.free_slots.push(index);
        self.out.push(Decision::Finished {
            contact: contact.id,
            outcome,
        });
    }

    // -----------------------------------------------------------------------
    // Offers.

    fn offer(
        &mut self,
        index: ContactIdx,
        agent_index: AgentIdx,
        search: Search<AgentIdx>,
        trigger: Trigger,
    ) {
        self.offer_with(index, agent_index, search.examined, search.candidates, trigger);
    }

    fn offer_with(
        &mut self,
        index: ContactIdx,
        agent_index: AgentIdx,
        examined: usize,
        candidates: Vec<crate::explain::Candidate>,
        trigger: Trigger,
    ) {
        let now = self.now;
        let Some(contact) = self.state.contact(index) else {
            return;
        };
        let Some(agent) = self.state.agent(agent_index) else {
            return;
        };
        let named_agent = matches!(contact.state, ContactState::WaitingFor(_));
        let skills = self
            .state
            .reqs_of(contact)
            .iter()
            .map(|req| SkillMatch {
                skill: self.state.skills.name(req.skill).to_owned(),
                required: req.min,
                agent_has: agent.proficiency(req.skill),
                source: req.source,
            })
            .collect();
        let queue_priority = self
            .state
            .queues
            .get(contact.queue as usize)
            .map_or(0, |q| q.priority);
        let explanation = Explanation {
            trigger,
            queue: self.queue_id(contact.queue),
            step: contact.step,
            seconds_in_queue: (now - contact.queued) / 1000,
            waited_seconds: (now - contact.arrived) / 1000,
            priority: PriorityExplained {
                queue_priority,
                needs_boost: contact.needs_boost,
                millipoints: self.state.rank(contact, now).millipoints(),
                at_front: contact.front,
            },
            skills,
            named_agent,
            agent_idle_seconds: (now - agent.idle_since) / 1000,
            candidates_examined: examined,
            candidates,
        };
        let (contact_id, agent_id, channel, queue) = (contact.id, agent.id, contact.channel, contact.queue);
        self.detach(index);
        if let Some(contact) = self.state.contact_mut(index) {
            contact.state = ContactState::Offered(agent_index);
        }
        if let Some(agent) = self.state.agents.get_mut(agent_index as usize) {
            agent.contacts.push(index);
            if is_exclusive(channel) {
                agent.exclusive += 1;
            } else {
                agent.written += 1;
            }
            // Fairness among equals: the agent just given work goes to the
            // back of the idle order.
            agent.idle_since = now;
        }
        self.matcher.agent_changed(&self.state, agent_index);
        let expires = now
            + self
                .queues
                .get(queue as usize)
                .map_or(30_000, |q| q.offer_timeout_ms);
        self.schedule(index, expires);
        self.out.push(Decision::Offered {
            contact: contact_id,
            agent: agent_id,
            expires_at: to_time(expires),
            explanation: Box::new(explanation),
        });
    }

    /// An offer came back: the contact returns to the front of its queue.
    fn return_offer(&mut self, index: ContactIdx, agent_index: AgentIdx, reason: ReturnReason) {
        self.unload(agent_index, index);
        let contact_id = match self.state.contact_mut(index) {
            Some(contact) => {
                contact.state = ContactState::Detached;
                contact.front = true;
                contact.timer = 0;
                if reason == ReturnReason::Rejected {
                    contact.declined.push(agent_index);
                }
                contact.id
            }
            None => return,
        };
        let mut missed = None;
        if let Some(agent) = self.state.agents.get_mut(agent_index as usize) {
            if reason == ReturnReason::TimedOut {
                agent.status = Status::Missed;
                agent.missed_offers += 1;
                missed = Some(agent.missed_offers);
            }
            let agent_id = agent.id;
            self.out.push(Decision::OfferReturned {
                contact: contact_id,
                agent: agent_id,
                reason,
            });
            if let Some(missed_offers) = missed {
                self.out.push(Decision::AgentMissed {
                    agent: agent_id,
                    missed_offers,
                });
            }
        }
        self.matcher.agent_changed(&self.state, agent_index);
        self.settle(index, true);
        self.fill_agent(agent_index);
    }

    /// Releases the capacity a contact held with an agent.
    fn unload(&mut self, agent_index: AgentIdx, index: ContactIdx) {
        let channel = self.state.contact(index).map(|c| c.channel);
        let now = self.now;
        if let Some(agent) = self.state.agents.get_mut(agent_index as usize)
            && let Some(position) = agent.contacts.iter().position(|&c| c == index)
        {
            agent.contacts.swap_remove(position);
            match channel {
                Some(channel) if is_exclusive(channel) => agent.exclusive = agent.exclusive.saturating_sub(1),
                _ => agent.written = agent.written.saturating_sub(1),
            }
            if agent.contacts.is_empty() {
                agent.idle_since = now;
            }
        }
        self.matcher.agent_changed(&self.state, agent_index);
    }

    /// Offers an agent who has room the best contacts waiting for them, until
    /// they are full or nothing waits that they may take.
    fn fill_agent(&mut self, agent_index: AgentIdx) {
        let capacity = self
            .state
            .agent(agent_index)
            .map_or(0, |a| usize::from(a.web_capacity) + 1);
        for _ in 0..capacity {
            let search = self.matcher.best_contact(&self.state, agent_index, self.now);
            let Some(chosen) = search.chosen else {
                return;
            };
            self.offer_with(
                chosen,
                agent_index,
                search.examined,
                search.candidates,
                Trigger::AgentReady,
            );
        }
    }

    fn run_timers(&mut self, now: i64) {
        while let Some(Reverse((due, token, index))) = self.timers.peek().copied() {
            if due > now {
                break;
            }
            self.timers.pop();
            let live = self.state.contact(index).is_some_and(|c| c.timer == token);
            if !live {
                continue;
            }
            // Each timer fires at its own time, so an overflow step due at
            // 60 s is taken at 60 s whatever the tick interval.
            self.now = self.now.max(due);
            match self.contact_state(index) {
                Some(ContactState::Offered(agent)) => self.return_offer(index, agent, ReturnReason::TimedOut),
                Some(ContactState::Waiting(_)) => {
                    self.detach(index);
                    self.settle(index, false);
                }
                Some(ContactState::WaitingFor(_)) => {
                    self.detach(index);
                    self.settle(index, true);
                }
                _ => {}
            }
        }
    }

    // -----------------------------------------------------------------------
    // Agents.

    fn agent_signed_in(&mut self, id: AgentId, profile: AgentProfile) -> RoutingResult<()> {
        let existing = self.state.agent_ids.get(&id).copied();
        if existing.is_some_and(|index| self.state.agent(index).is_some_and(|a| a.signed_in)) {
            return Err(RoutingError::AlreadySignedIn(id));
        }
        for (skill, level) in &profile.skills {
            if skill.trim().is_empty() {
                return Err(RoutingError::InvalidProfile("a skill name is empty".to_owned()));
            }
            if !(crate::config::MIN_PROFICIENCY..=crate::config::MAX_PROFICIENCY).contains(level) {
                return Err(RoutingError::InvalidProfile(format!(
                    "proficiency of `{skill}` must be from 1 to 5, not {level}"
                )));
            }
        }
        let mut skills: Vec<(u32, u8)> = profile
            .skills
            .iter()
            .map(|(skill, level)| (self.state.skills.intern(skill), *level))
            .collect();
        if let Some(office) = &profile.office {
            skills.push((
                self.state.skills.intern(&office_skill(office)),
                crate::config::MAX_PROFICIENCY,
            ));
        }
        skills.sort_by_key(|&(skill, level)| (skill, Reverse(level)));
        skills.dedup_by_key(|(skill, _)| *skill);
        let channels = profile
            .channels
            .iter()
            .fold(0u8, |mask, &channel| mask | (1 << channel_slot(channel)));
        let agent = Agent {
            id,
            signed_in: true,
            status: Status::Available,
            skills,
            team: profile.team,
            channels,
            web_capacity: profile.web_capacity,
            exclusive: 0,
            written: 0,
            idle_since: self.now,
            missed_offers: 0,
            contacts: Vec::new(),
            staffs: Vec::new(),
        };
        let index = match existing {
            Some(index) => {
                if let Some(slot) = self.state.agents.get_mut(index as usize) {
                    let missed_offers = slot.missed_offers;
                    *slot = agent;
                    slot.missed_offers = missed_offers;
                }
                index
            }
            None => {
                self.state.agents.push(agent);
                let index = (self.state.agents.len() - 1) as AgentIdx;
                self.state.agent_ids.insert(id, index);
                index
            }
        };
        let mut staffs = Vec::new();
        if let Some(agent) = self.state.agent(index) {
            for (queue_index, queue) in self.queues.iter_mut().enumerate() {
                if agent.works(queue.channel) && agent.shortfall(queue.base_reqs()).is_none() {
                    queue.staffed_slots += slots(agent, queue.channel);
                    staffs.push(queue_index as QueueIdx);
                }
            }
        }
        if let Some(agent) = self.state.agents.get_mut(index as usize) {
            agent.staffs = staffs;
        }
        self.matcher.agent_changed(&self.state, index);
        self.fill_agent(index);
        Ok(())
    }

    fn agent_signed_out(&mut self, id: AgentId) -> RoutingResult<()> {
        let index = self.agent_index(id)?;
        let agent = self.state.agent(index).ok_or(RoutingError::UnknownAgent(id))?;
        if !agent.signed_in {
            return Err(RoutingError::NotSignedIn(id));
        }
        if !agent.contacts.is_empty() {
            return Err(RoutingError::AgentHasWork {
                agent: id,
                contacts: agent.contacts.len(),
            });
        }
        for &queue in &agent.staffs {
            if let Some(runtime) = self.queues.get_mut(queue as usize) {
                runtime.staffed_slots = runtime
                    .staffed_slots
                    .saturating_sub(slots(agent, runtime.channel));
            }
        }
        if let Some(agent) = self.state.agents.get_mut(index as usize) {
            agent.signed_in = false;
            agent.staffs.clear();
        }
        self.matcher.agent_changed(&self.state, index);
        // Contacts transferred to this agent go back to their queues.
        let waiting: Vec<ContactIdx> = self
            .state
            .personal
            .get(&index)
            .map(|set| set.iter().map(|key| key.3).collect())
            .unwrap_or_default();
        for contact in waiting {
            self.detach(contact);
            self.settle(contact, true);
        }
        Ok(())
    }

    fn presence_changed(&mut self, id: AgentId, presence: Presence) -> RoutingResult<()> {
        let status = match presence {
            Presence::Offline => return self.agent_signed_out(id),
            Presence::Available => Status::Available,
            Presence::Break => Status::Break,
            Presence::Busy => Status::Busy,
            Presence::WrapUp | Presence::Missed => return Err(RoutingError::PresenceSetByEngine(presence)),
        };
        let index = self.agent_index(id)?;
        let now = self.now;
        let agent = self
            .state
            .agents
            .get_mut(index as usize)
            .ok_or(RoutingError::UnknownAgent(id))?;
        if !agent.signed_in {
            return Err(RoutingError::NotSignedIn(id));
        }
        if agent.status != status {
            if status == Status::Available && agent.contacts.is_empty() {
                agent.idle_since = now;
            }
            agent.status = status;
        }
        self.matcher.agent_changed(&self.state, index);
        if status == Status::Available {
            self.fill_agent(index);
        }
        Ok(())
    }

    // -----------------------------------------------------------------------
    // Queries.

    /// Whether a queue takes contacts at this instant.
    pub fn is_open(&self, queue: &str, at: DateTime<Utc>) -> bool {
        self.config
            .queue(queue)
            .is_some_and(|q| self.config.calendar.is_open(&q.hours, at))
    }

    /// Position and estimated wait of a waiting contact.
    pub fn waiting_status(&self, contact: ContactId) -> Option<WaitingStatus> {
        let index = *self.state.contact_ids.get(&contact)?;
        let c = self.state.contact(index)?;
        let key = self.state.lane_key(index, c);
        match c.state {
            ContactState::Waiting(_) => {
                let position = self.state.queues.get(c.queue as usize)?.waiting.rank(&key)? + 1;
                Some(WaitingStatus {
                    contact,
                    queue: self.queue_id(c.queue),
                    position,
                    estimated_wait_seconds: self.estimate_wait(c.queue, position),
                    for_agent: None,
                })
            }
            ContactState::WaitingFor(agent) => Some(WaitingStatus {
                contact,
                queue: self.queue_id(c.queue),
                position: self.state.personal.get(&agent)?.range(..key).count() + 1,
                estimated_wait_seconds: None,
                for_agent: self.state.agent(agent).map(|a| a.id),
            }),
            _ => None,
        }
    }

    /// Where a contact stands in routing: its queue, its stage and the agent
    /// involved; `None` once its routing is over (or for an unknown contact).
    pub fn contact_status(&self, contact: ContactId) -> Option<ContactStatus> {
        let index = *self.state.contact_ids.get(&contact)?;
        let c = self.state.contact(index)?;
        let agent_id = |agent: AgentIdx| self.state.agent(agent).map(|a| a.id);
        let (stage, agent) = match c.state {
            ContactState::Waiting(_) | ContactState::Detached => (ContactStage::Waiting, None),
            ContactState::WaitingFor(agent) => (ContactStage::Waiting, agent_id(agent)),
            ContactState::Offered(agent) => (ContactStage::Offered, agent_id(agent)),
            ContactState::Connected(agent) => (ContactStage::Connected, agent_id(agent)),
            ContactState::WrapUp(agent) => (ContactStage::WrapUp, agent_id(agent)),
        };
        Some(ContactStatus {
            contact,
            queue: self.queue_id(c.queue),
            stage,
            agent,
            waiting: self.waiting_status(contact),
        })
    }

    /// Every agent signed in, in the order they signed in first.
    pub fn signed_in_agents(&self) -> Vec<AgentId> {
        self.state
            .agents
            .iter()
            .filter(|agent| agent.signed_in)
            .map(|agent| agent.id)
            .collect()
    }

    /// Every contact waiting in a queue, in the order they will be served.
    pub fn queue_waiting(&self, queue: &str) -> Vec<WaitingStatus> {
        let Ok(queue_index) = self.queue_index(queue) else {
            return Vec::new();
        };
        let Some(rank) = self.state.queues.get(queue_index as usize) else {
            return Vec::new();
        };
        rank.waiting
            .iter()
            .enumerate()
            .filter_map(|(position, key)| {
                let contact = self.state.contact(key.3)?;
                Some(WaitingStatus {
                    contact: contact.id,
                    queue: rank.id.clone(),
                    position: position + 1,
                    estimated_wait_seconds: self.estimate_wait(queue_index, position + 1),
                    for_agent: None,
                })
            })
            .collect()
    }

    /// Contacts waiting in queues or for named agents.
    pub fn waiting_count(&self) -> usize {
        self.state.queues.iter().map(|q| q.waiting.len()).sum::<usize>()
            + self.state.personal.values().map(|set| set.len()).sum::<usize>()
    }

    /// Contacts the engine is routing (waiting, offered, connected or in
    /// wrap-up).
    pub fn contact_count(&self) -> usize {
        self.state.contact_ids.len()
    }

    pub fn agent_status(&self, agent: AgentId) -> Option<AgentStatus> {
        let index = *self.state.agent_ids.get(&agent)?;
        let a = self.state.agent(index)?;
        let wrapping = a
            .contacts
            .iter()
            .any(|&c| matches!(self.contact_state(c), Some(ContactState::WrapUp(_))));
        let presence = if !a.signed_in {
            Presence::Offline
        } else {
            match a.status {
                Status::Break => Presence::Break,
                Status::Busy => Presence::Busy,
                Status::Missed => Presence::Missed,
                Status::Available if wrapping => Presence::WrapUp,
                Status::Available if !a.contacts.is_empty() => Presence::Busy,
                Status::Available => Presence::Available,
            }
        };
        Some(AgentStatus {
            agent,
            presence,
            team: a.team.clone(),
            contacts: a
                .contacts
                .iter()
                .filter_map(|&c| self.state.contact(c).map(|c| c.id))
                .collect(),
            missed_offers: a.missed_offers,
            idle_since: to_time(a.idle_since),
        })
    }

    /// Checks every invariant the engine promises and lists what is broken
    /// (empty when all is well). Walks every agent against every waiting
    /// contact, so it is for tests and audits, not for the hot path.
    pub fn check_invariants(&self) -> Vec<String> {
        let mut problems = self.matcher.check(&self.state);
        let mut holder: std::collections::HashMap<ContactIdx, AgentIdx> = Default::default();
        for (slot, agent) in self.state.agents.iter().enumerate() {
            let agent_index = slot as AgentIdx;
            let mut exclusive = 0;
            let mut written = 0;
            for &contact_index in &agent.contacts {
                let Some(contact) = self.state.contact(contact_index) else {
                    problems.push(format!("agent {} holds a finished contact", agent.id));
                    continue;
                };
                match contact.state {
                    ContactState::Offered(a) | ContactState::Connected(a) | ContactState::WrapUp(a)
                        if a == agent_index => {}
                    state => problems.push(format!(
                        "agent {} holds contact {} which is {state:?}",
                        agent.id, contact.id
                    )),
                }
                if holder.insert(contact_index, agent_index).is_some() {
                    problems.push(format!("contact {} is held by two agents", contact.id));
                }
                if is_exclusive(contact.channel) {
                    exclusive += 1;
                } else {
                    written += 1;
                }
            }
            if exclusive != agent.exclusive || written != agent.written {
                problems.push(format!("agent {} load counters are wrong", agent.id));
            }
            if exclusive > 1 || (exclusive == 1 && written > 0) || written > agent.web_capacity {
                problems.push(format!(
                    "agent {} is over capacity: {exclusive} exclusive, {written} written of {}",
                    agent.id, agent.web_capacity
                ));
            }
        }
        for (slot, contact) in self.state.contacts.iter().enumerate() {
            let Some(contact) = contact else {
                continue;
            };
            let index = slot as ContactIdx;
            let key = self.state.lane_key(index, contact);
            match contact.state {
                ContactState::Offered(_) | ContactState::Connected(_) | ContactState::WrapUp(_) => {
                    if !holder.contains_key(&index) {
                        problems.push(format!(
                            "contact {} is {:?} but no agent holds it",
                            contact.id, contact.state
                        ));
                    }
                }
                ContactState::Waiting(lane) => {
                    let in_lane = self.state.lane(lane).is_some_and(|l| {
                        l.members.contains(&key) && l.queue == contact.queue && l.step == contact.step
                    });
                    let in_queue = self
                        .state
                        .queues
                        .get(contact.queue as usize)
                        .and_then(|q| q.waiting.rank(&key))
                        .is_some();
                    if !in_lane || !in_queue {
                        problems.push(format!("contact {} is not where it waits", contact.id));
                    }
                    if let Some(runtime) = self.queues.get(contact.queue as usize) {
                        let allowed = runtime
                            .steps
                            .iter()
                            .rposition(|step| step.after_ms() <= self.now - contact.queued)
                            .unwrap_or(0);
                        if contact.step > allowed {
                            problems.push(format!(
                                "contact {} is at step {} before its time (allowed {allowed})",
                                contact.id, contact.step
                            ));
                        }
                    }
                }
                ContactState::WaitingFor(agent) => {
                    if !self
                        .state
                        .personal
                        .get(&agent)
                        .is_some_and(|set| set.contains(&key))
                    {
                        problems.push(format!("contact {} is not with its named agent", contact.id));
                    }
                }
                ContactState::Detached => problems.push(format!("contact {} is detached", contact.id)),
            }
            if matches!(
                contact.state,
                ContactState::Waiting(_) | ContactState::WaitingFor(_)
            ) {
                for (agent_slot, agent) in self.state.agents.iter().enumerate() {
                    if self.state.eligible(agent_slot as AgentIdx, contact).is_ok() {
                        problems.push(format!(
                            "contact {} waits although agent {} could take it",
                            contact.id, agent.id
                        ));
                    }
                }
            }
        }
        let lane_total: usize = self.state.lanes.iter().map(|l| l.members.len()).sum();
        let queue_total: usize = self.state.queues.iter().map(|q| q.waiting.len()).sum();
        if lane_total != queue_total {
            problems.push(format!(
                "{lane_total} contacts in lanes but {queue_total} in queues"
            ));
        }
        problems
    }
}

/// The pseudo-skill of sitting at an office's desks. The colon keeps it apart
/// from declared skills, which are slugs.
fn office_skill(office: &str) -> String {
    format!("office:{office}")
}

/// Contacts on a channel an agent can hold at once.
fn slots(agent: &Agent, channel: Channel) -> u32 {
    if is_exclusive(channel) {
        1
    } else {
        u32::from(agent.web_capacity)
    }
}
