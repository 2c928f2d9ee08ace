//! The engine's working state: interned skills, agents, contacts, and the
//! lanes contacts wait in. Everything is addressed by small integer indexes
//! so the matchers can keep compact indexes over it.
//!
//! A *lane* is the set of waiting contacts of one queue that share one exact
//! requirement: the queue's overflow step in force plus the same needs (say
//! "council tax >= 1, BSL >= 3"). An agent either qualifies for a whole lane
//! or for none of it, and inside a lane contacts are in priority order, so an
//! agent who becomes free only looks at the head of each lane it qualifies
//! for, never down a queue. The rules that decide who may take what
//! ([`State::eligible`]) and who ranks first ([`ContactRank`],
//! [`AgentRank`]) live here, once, and both matchers use them.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, HashMap};

use switchboard_domain::Channel;

use crate::config::QueueId;
use crate::explain::{RequirementSource, Verdict};
use crate::model::{AgentId, ContactId};
use crate::ranked::RankedSet;

pub(crate) type SkillIdx = u32;
pub(crate) type AgentIdx = u32;
pub(crate) type ContactIdx = u32;
pub(crate) type LaneIdx = u32;
pub(crate) type QueueIdx = u32;
pub(crate) type SigIdx = u32;

/// Where a channel sits in per-channel arrays.
pub(crate) fn channel_slot(channel: Channel) -> usize {
    match channel {
        Channel::Phone => 0,
        Channel::Web => 1,
        Channel::FaceToFace => 2,
        Channel::Email => 3,
        Channel::Letter => 4,
    }
}

pub(crate) const CHANNELS: usize = 5;

/// A call or a visit takes the agent's whole attention; written contacts
/// share the agent's `web_capacity`.
pub(crate) fn is_exclusive(channel: Channel) -> bool {
    matches!(channel, Channel::Phone | Channel::FaceToFace)
}

/// One required skill, interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Req {
    pub skill: SkillIdx,
    pub min: u8,
    pub source: RequirementSource,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct SkillTable {
    names: Vec<String>,
    ids: HashMap<String, SkillIdx>,
}

impl SkillTable {
    pub(crate) fn intern(&mut self, name: &str) -> SkillIdx {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as SkillIdx;
        self.names.push(name.to_owned());
        self.ids.insert(name.to_owned(), id);
        id
    }

    pub(crate) fn name(&self, id: SkillIdx) -> &str {
        self.names.get(id as usize).map(String::as_str).unwrap_or("?")
    }
}

/// The agent's own choice of status (presence adds what the engine knows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Available,
    Break,
    Busy,
    Missed,
}

#[derive(Debug, Clone)]
pub(crate) struct Agent {
    pub id: AgentId,
    pub signed_in: bool,
    pub status: Status,
    /// Sorted by skill, so lookups are binary searches.
    pub skills: Vec<(SkillIdx, u8)>,
    pub team: String,
    /// Bit per channel slot.
    pub channels: u8,
    pub web_capacity: u8,
    /// Calls and visits held (offered, connected or in wrap-up): 0 or 1.
    pub exclusive: u8,
    /// Written contacts held.
    pub written: u8,
    /// When the agent last became free or was last given a contact: the
    /// longest idle agent is the one with the earliest value.
    pub idle_since: i64,
    pub missed_offers: u32,
    /// Contacts offered to, connected to or wrapping up with this agent.
    pub contacts: Vec<ContactIdx>,
    /// Queues whose staffing this agent counts towards (for wait estimates).
    pub staffs: Vec<QueueIdx>,
}

impl Agent {
    pub(crate) fn proficiency(&self, skill: SkillIdx) -> u8 {
        self.skills
            .binary_search_by_key(&skill, |(s, _)| *s)
            .ok()
            .and_then(|index| self.skills.get(index))
            .map_or(0, |(_, level)| *level)
    }

    pub(crate) fn works(&self, channel: Channel) -> bool {
        self.channels & (1 << channel_slot(channel)) != 0
    }

    /// Whether the agent's load leaves room for a contact on this channel.
    pub(crate) fn has_room(&self, channel: Channel) -> bool {
        if is_exclusive(channel) {
            self.exclusive == 0 && self.written == 0
        } else {
            self.exclusive == 0 && self.written < self.web_capacity
        }
    }

    /// Signed in, available, works the channel and has room for it.
    pub(crate) fn can_take(&self, channel: Channel) -> bool {
        self.signed_in && self.status == Status::Available && self.works(channel) && self.has_room(channel)
    }

    /// The first requirement the agent falls short of.
    pub(crate) fn shortfall(&self, reqs: &[Req]) -> Option<(Req, u8)> {
        reqs.iter().find_map(|req| {
            let has = self.proficiency(req.skill);
            (has < req.min).then_some((*req, has))
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContactState {
    /// Between homes, inside one engine operation.
    Detached,
    /// Waiting in a lane of its queue.
    Waiting(LaneIdx),
    /// Waiting for the named agent of a transfer.
    WaitingFor(AgentIdx),
    Offered(AgentIdx),
    Connected(AgentIdx),
    WrapUp(AgentIdx),
}

#[derive(Debug, Clone)]
pub(crate) struct Contact {
    pub id: ContactId,
    pub channel: Channel,
    pub queue: QueueIdx,
    /// Requirements from the resident's needs (and the visit's office).
    pub needs_reqs: Vec<Req>,
    pub vulnerable: bool,
    pub needs_boost: i64,
    /// The needs requirements plus this queue's vulnerability skill, interned.
    pub sig: SigIdx,
    /// First arrival, in ms; priority ageing counts from here.
    pub arrived: i64,
    /// Entry into the current queue, in ms; overflow steps count from here.
    pub queued: i64,
    /// Arrival order, the last tie-break.
    pub seq: u64,
    pub step: usize,
    /// Returned to the front of its queue after a rejection or timeout.
    pub front: bool,
    /// Agents who rejected it in this queue.
    pub declined: Vec<AgentIdx>,
    /// A transfer to a named agent, and when it falls back to the queue.
    pub target: Option<(AgentIdx, i64)>,
    pub state: ContactState,
    /// The token of the contact's live timer; older timers are ignored.
    pub timer: u64,
    pub callback_offered: bool,
    pub accepted_at: i64,
}

/// Priority of a contact at an instant. Greater is served first: front of
/// queue, then more points, then earlier arrival, then arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContactRank {
    pub front: bool,
    /// Points as the exact fraction `num / den`.
    pub num: i128,
    pub den: i128,
    pub arrived: i64,
    pub seq: u64,
}

impl ContactRank {
    pub(crate) fn millipoints(&self) -> i64 {
        i64::try_from(self.num * 1000 / self.den.max(1)).unwrap_or(i64::MAX)
    }
}

impl PartialOrd for ContactRank {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ContactRank {
    fn cmp(&self, other: &Self) -> Ordering {
        self.front
            .cmp(&other.front)
            .then_with(|| (self.num * other.den).cmp(&(other.num * self.den)))
            .then_with(|| other.arrived.cmp(&self.arrived))
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Order inside a lane or a queue: ascending is served first. Consistent with
/// [`ContactRank`] because every member shares one queue's ageing rate.
pub(crate) type LaneKey = (bool, Reverse<i64>, u64, ContactIdx);

/// Rank of an agent for a contact. Greater is chosen: higher proficiency in
/// the primary skill, then longest idle, then the lower index.
pub(crate) type AgentRank = (u8, Reverse<i64>, Reverse<AgentIdx>);

#[derive(Debug, Clone)]
pub(crate) struct Lane {
    pub queue: QueueIdx,
    pub step: usize,
    pub channel: Channel,
    /// The primary skill first, then the rest.
    pub reqs: Vec<Req>,
    pub members: BTreeSet<LaneKey>,
}

/// What the matchers need to know about each queue.
#[derive(Debug, Clone)]
pub(crate) struct QueueRank {
    pub id: QueueId,
    pub priority: i64,
    /// Milliseconds per point of ageing; `None` for no ageing.
    pub ageing_ms: Option<i64>,
    /// Waiting contacts in order, for positions.
    pub waiting: RankedSet<LaneKey>,
}

/// Without ageing, priority dominates arrival time in the lane key: ms since
/// 1970 stay below 2^42 until the year 2109.
const NO_AGEING_WEIGHT: i64 = 1 << 42;

#[derive(Debug, Default, Clone)]
pub(crate) struct State {
    pub skills: SkillTable,
    pub agents: Vec<Agent>,
    pub agent_ids: HashMap<AgentId, AgentIdx>,
    pub contacts: Vec<Option<Contact>>,
    pub free_slots: Vec<ContactIdx>,
    pub contact_ids: HashMap<ContactId, ContactIdx>,
    pub queues: Vec<QueueRank>,
    pub lanes: Vec<Lane>,
    pub lane_ids: HashMap<(QueueIdx, usize, SigIdx), LaneIdx>,
    /// Lanes by their primary skill: an agent only looks at lanes under the
    /// skills it has.
    pub lanes_by_skill: Vec<Vec<LaneIdx>>,
    pub sigs: Vec<Vec<Req>>,
    pub sig_ids: HashMap<Vec<Req>, SigIdx>,
    /// Contacts waiting for a named agent.
    pub personal: HashMap<AgentIdx, BTreeSet<LaneKey>>,
}

impl State {
    pub(crate) fn agent(&self, index: AgentIdx) -> Option<&Agent> {
        self.agents.get(index as usize)
    }

    pub(crate) fn contact(&self, index: ContactIdx) -> Option<&Contact> {
        self.contacts.get(index as usize).and_then(Option::as_ref)
    }

    pub(crate) fn contact_mut(&mut self, index: ContactIdx) -> Option<&mut Contact> {
        self.contacts.get_mut(index as usize).and_then(Option::as_mut)
    }

    pub(crate) fn lane(&self, index: LaneIdx) -> Option<&Lane> {
        self.lanes.get(index as usize)
    }

    /// The requirements a waiting or offered contact is matched against.
    pub(crate) fn reqs_of(&self, contact: &Contact) -> &[Req] {
        match contact.state {
            ContactState::Waiting(lane) => self.lane(lane).map(|l| l.reqs.as_slice()).unwrap_or_default(),
            _ => &[],
        }
    }

    /// The key that orders a contact inside its lane and queue.
    pub(crate) fn lane_key(&self, index: ContactIdx, contact: &Contact) -> LaneKey {
        let base = self.base_priority(contact);
        let score = match self.queues.get(contact.queue as usize).and_then(|q| q.ageing_ms) {
            Some(ms_per_point) => base * ms_per_point - contact.arrived,
            None => base * NO_AGEING_WEIGHT - contact.arrived,
        };
        (!contact.front, Reverse(score), contact.seq, index)
    }

    pub(crate) fn base_priority(&self, contact: &Contact) -> i64 {
        self.queues.get(contact.queue as usize).map_or(0, |q| q.priority) + contact.needs_boost
    }

    pub(crate) fn rank(&self, contact: &Contact, now: i64) -> ContactRank {
        let base = i128::from(self.base_priority(contact));
        let (num, den) = match self.queues.get(contact.queue as usize).and_then(|q| q.ageing_ms) {
            Some(ms_per_point) => {
                let per = i128::from(ms_per_point);
                (base * per + i128::from(now - contact.arrived), per)
            }
            None => (base, 1),
        };
        ContactRank {
            front: contact.front,
            num,
            den,
            arrived: contact.arrived,
            seq: contact.seq,
        }
    }

    pub(crate) fn agent_rank(&self, agent_index: AgentIdx, agent: &Agent, primary: Option<Req>) -> AgentRank {
        let proficiency = primary.map_or(0, |req| agent.proficiency(req.skill));
        (proficiency, Reverse(agent.idle_since), Reverse(agent_index))
    }

    /// Whether `agent` may be offered the waiting `contact` now, or why not.
    /// The one definition of "may", used by both matchers and the audit.
    pub(crate) fn eligible(&self, agent_index: AgentIdx, contact: &Contact) -> Result<(), Verdict> {
        let Some(agent) = self.agent(agent_index) else {
            return Err(Verdict::Unavailable);
        };
        let reqs = match contact.state {
            ContactState::Waiting(lane) => self.lane(lane).map(|l| l.reqs.as_slice()).unwrap_or_default(),
            ContactState::WaitingFor(target) => {
                if target != agent_index {
                    return Err(Verdict::ForAnotherAgent);
                }
                &[]
            }
            _ => return Err(Verdict::ForAnotherAgent),
        };
        if !agent.can_take(contact.channel) {
            return Err(Verdict::Unavailable);
        }
        if contact.declined.contains(&agent_index) {
            return Err(Verdict::DeclinedBefore);
        }
        match agent.shortfall(reqs) {
            Some((req, has)) => Err(Verdict::LacksSkill {
                skill: self.skills.name(req.skill).to_owned(),
                required: req.min,
                has,
            }),
            None => Ok(()),
        }
    }

    /// The first contact in a lane's order that this agent did not decline.
    pub(crate) fn head_for<'a>(
        &self,
        members: impl Iterator<Item = &'a LaneKey>,
        agent_index: AgentIdx,
    ) -> Option<ContactIdx> {
        members.map(|key| key.3).find(|&index| {
            self.contact(index)
                .is_some_and(|c| !c.declined.contains(&agent_index))
        })
    }

    /// Requirements interned into a signature (sorted, one entry per skill
    /// with the highest minimum).
    pub(crate) fn intern_sig(&mut self, mut reqs: Vec<Req>) -> SigIdx {
        reqs.sort_by_key(|req| (req.skill, Reverse(req.min)));
        reqs.dedup_by_key(|req| req.skill);
        if let Some(&id) = self.sig_ids.get(&reqs) {
            return id;
        }
        let id = self.sigs.len() as SigIdx;
        self.sigs.push(reqs.clone());
        self.sig_ids.insert(reqs, id);
        id
    }

    /// The lane for a queue, step and signature, made on first use.
    pub(crate) fn lane_for(
        &mut self,
        queue: QueueIdx,
        step: usize,
        sig: SigIdx,
        channel: Channel,
        step_reqs: &[Req],
    ) -> LaneIdx {
        if let Some(&lane) = self.lane_ids.get(&(queue, step, sig)) {
            return lane;
        }
        let mut reqs: Vec<Req> = step_reqs.to_vec();
        for extra in self.sigs.get(sig as usize).cloned().unwrap_or_default() {
            match reqs.iter_mut().find(|req| req.skill == extra.skill) {
                Some(existing) if existing.min < extra.min => *existing = extra,
                Some(_) => {}
                None => reqs.push(extra),
            }
        }
        let lane = self.lanes.len() as LaneIdx;
        if let Some(primary) = reqs.first() {
            let slot = primary.skill as usize;
            if self.lanes_by_skill.len() <= slot {
                self.lanes_by_skill.resize_with(slot + 1, Vec::new);
            }
            if let Some(list) = self.lanes_by_skill.get_mut(slot) {
                list.push(lane);
            }
        }
        self.lanes.push(Lane {
            queue,
            step,
            channel,
            reqs,
            members: BTreeSet::new(),
        });
        self.lane_ids.insert((queue, step, sig), lane);
        lane
    }
}
