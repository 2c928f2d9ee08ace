//! Finding the match: the best agent for a contact that became ready, and
//! the best contact for an agent that became free.
//!
//! Two implementations of one contract, chosen when the engine is built:
//!
//! - [`Matcher::Indexed`] (the default) keeps, per channel, skill and
//!   proficiency level, the agents who could take a contact now, ordered by
//!   idle time. A contact looks only at agents under its rarest required
//!   skill; when that is the primary skill, the first qualified agent met
//!   (highest level, longest idle) is the answer. An agent looks only at the
//!   heads of the lanes under its own skills.
//! - [`Matcher::Naive`] scans every agent or every waiting contact. It is the
//!   baseline the benchmark measures against, and the reference the property
//!   tests hold the indexed matcher to: both must make the same choices.
//!
//! Both decide eligibility and rank with the same functions in
//! [`crate::state`], so they can only differ in what they look at.

use std::collections::BTreeSet;

use crate::explain::{Candidate, MAX_CANDIDATES_KEPT, Verdict};
use crate::state::{
    AgentIdx, AgentRank, CHANNELS, ContactIdx, ContactRank, ContactState, State, channel_slot,
};

/// The outcome of a search, with what it examined for the explanation.
#[derive(Debug, Default)]
pub(crate) struct Search<T> {
    pub chosen: Option<T>,
    pub examined: usize,
    pub candidates: Vec<Candidate>,
}

impl<T> Search<T> {
    fn note(&mut self, candidate: impl FnOnce() -> Candidate) {
        self.examined += 1;
        if self.candidates.len() < MAX_CANDIDATES_KEPT {
            self.candidates.push(candidate());
        }
    }
}

/// Proficiency levels 1 to 5, stored at `level - 1`.
const LEVELS: usize = 5;

/// Available agents per (channel, skill, level), by idle time.
type AgentSets = Vec<[BTreeSet<(i64, AgentIdx)>; LEVELS]>;

#[derive(Debug, Default, Clone)]
pub(crate) struct AgentIndex {
    sets: [AgentSets; CHANNELS],
    /// Per agent: the channel mask and idle time it is indexed under.
    entries: Vec<(u8, i64)>,
}

#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    Indexed(AgentIndex),
    Naive,
}

impl Matcher {
    /// Keeps the index in step after anything about an agent changed:
    /// presence, load, idle time, sign-in.
    pub(crate) fn agent_changed(&mut self, state: &State, agent_index: AgentIdx) {
        if let Matcher::Indexed(index) = self {
            index.agent_changed(state, agent_index);
        }
    }

    pub(crate) fn best_agent(&self, state: &State, contact: ContactIdx, now: i64) -> Search<AgentIdx> {
        match self {
            Matcher::Indexed(index) => index.best_agent(state, contact, now),
            Matcher::Naive => naive_best_agent(state, contact, now),
        }
    }

    pub(crate) fn best_contact(&self, state: &State, agent: AgentIdx, now: i64) -> Search<ContactIdx> {
        match self {
            Matcher::Indexed(_) => indexed_best_contact(state, agent, now),
            Matcher::Naive => naive_best_contact(state, agent, now),
        }
    }

    /// Index consistency problems, for the audit.
    pub(crate) fn check(&self, state: &State) -> Vec<String> {
        match self {
            Matcher::Indexed(index) => index.check(state),
            Matcher::Naive => Vec::new(),
        }
    }
}

fn agent_candidate(
    state: &State,
    agent: AgentIdx,
    primary_skill: Option<u32>,
    now: i64,
    verdict: Verdict,
) -> Candidate {
    let (id, proficiency, idle_since) = state
        .agent(agent)
        .map_or((crate::model::AgentId(0), 0, now), |a| {
            (a.id, primary_skill.map_or(0, |s| a.proficiency(s)), a.idle_since)
        });
    Candidate::Agent {
        agent: id,
        primary_proficiency: proficiency,
        idle_seconds: (now - idle_since) / 1000,
        verdict,
    }
}

fn contact_candidate(state: &State, contact: ContactIdx, now: i64, verdict: Verdict) -> Candidate {
    match state.contact(contact) {
        Some(c) => Candidate::Contact {
            contact: c.id,
            queue: state
                .queues
                .get(c.queue as usize)
                .map(|q| q.id.clone())
                .unwrap_or_else(|| "?".into()),
            priority_millipoints: state.rank(c, now).millipoints(),
            waited_seconds: (now - c.arrived) / 1000,
            verdict,
        },
        None => Candidate::Contact {
            contact: crate::model::ContactId(0),
            queue: "?".into(),
            priority_millipoints: 0,
            waited_seconds: 0,
            verdict,
        },
    }
}

/// Marks the chosen candidate in the kept list.
fn mark_chosen_agent(search: &mut Search<AgentIdx>, state: &State) {
    let Some(id) = search.chosen.and_then(|a| state.agent(a)).map(|a| a.id) else {
        return;
    };
    for candidate in &mut search.candidates {
        if let Candidate::Agent { agent, verdict, .. } = candidate
            && *agent == id
        {
            *verdict = Verdict::Chosen;
        }
    }
}

fn mark_chosen_contact(search: &mut Search<ContactIdx>, state: &State) {
    let Some(id) = search.chosen.and_then(|c| state.contact(c)).map(|c| c.id) else {
        return;
    };
    for candidate in &mut search.candidates {
        if let Candidate::Contact { contact, verdict, .. } = candidate
            && *contact == id
        {
            *verdict = Verdict::Chosen;
        }
    }
}

impl AgentIndex {
    fn set_mut(&mut self, channel: usize, skill: u32, level: u8) -> Option<&mut BTreeSet<(i64, AgentIdx)>> {
        let sets = self.sets.get_mut(channel)?;
        if sets.len() <= skill as usize {
            sets.resize_with(skill as usize + 1, Default::default);
        }
        sets.get_mut(skill as usize)?
            .get_mut(usize::from(level).checked_sub(1)?)
    }

    fn set(&self, channel: usize, skill: u32, level: u8) -> Option<&BTreeSet<(i64, AgentIdx)>> {
        self.sets
            .get(channel)?
            .get(skill as usize)?
            .get(usize::from(level).checked_sub(1)?)
    }

    fn wanted(state: &State, agent_index: AgentIdx) -> (u8, i64) {
        let Some(agent) = state.agent(agent_index) else {
            return (0, 0);
        };
        let mask = switchboard_domain::Channel::ALL
            .into_iter()
            .filter(|&channel| agent.can_take(channel))
            .fold(0u8, |mask, channel| mask | (1 << channel_slot(channel)));
        (mask, agent.idle_since)
    }

    fn agent_changed(&mut self, state: &State, agent_index: AgentIdx) {
        let slot = agent_index as usize;
        if self.entries.len() <= slot {
            self.entries.resize(slot + 1, (0, 0));
        }
        let old = self.entries.get(slot).copied().unwrap_or((0, 0));
        let new = Self::wanted(state, agent_index);
        if old == new {
            return;
        }
        let Some(agent) = state.agent(agent_index) else {
            return;
        };
        for channel in 0..CHANNELS {
            let was = old.0 & (1 << channel) != 0;
            let is = new.0 & (1 << channel) != 0;
            if !was && !is || (was && is && old.1 == new.1) {
                continue;
            }
            for &(skill, level) in &agent.skills {
                if let Some(set) = self.set_mut(channel, skill, level) {
                    if was {
                        set.remove(&(old.1, agent_index));
                    }
                    if is {
                        set.insert((new.1, agent_index));
                    }
                }
            }
        }
        if let Some(entry) = self.entries.get_mut(slot) {
            *entry = new;
        }
    }

    fn best_agent(&self, state: &State, contact_index: ContactIdx, now: i64) -> Search<AgentIdx> {
        let mut search = Search::default();
        let Some(contact) = state.contact(contact_index) else {
            return search;
        };
        let lane = match contact.state {
            ContactState::WaitingFor(target) => {
                let verdict = state.eligible(target, contact);
                search.note(|| {
                    agent_candidate(
                        state,
                        target,
                        None,
                        now,
                        verdict.clone().err().unwrap_or(Verdict::Chosen),
                    )
                });
                search.chosen = verdict.is_ok().then_some(target);
                return search;
            }
            ContactState::Waiting(lane) => lane,
            _ => return search,
        };
        let Some(lane) = state.lane(lane) else {
            return search;
        };
        let channel = channel_slot(contact.channel);
        let count = |skill: u32, min: u8| -> usize {
            (min.max(1)..=LEVELS as u8)
                .filter_map(|level| self.set(channel, skill, level))
                .map(BTreeSet::len)
                .sum()
        };
        // Drive the search from the requirement with the fewest candidates.
        let Some((driver, driver_count)) = lane
            .reqs
            .iter()
            .enumerate()
            .map(|(position, req)| (position, count(req.skill, req.min)))
            .min_by_key(|&(position, count)| (count, position))
        else {
            return search;
        };
        if driver_count == 0 {
            return search;
        }
        let Some(driver_req) = lane.reqs.get(driver).copied() else {
            return search;
        };
        let primary = lane.reqs.first().copied();
        let primary_skill = primary.map(|req| req.skill);
        let mut best: Option<(AgentRank, AgentIdx)> = None;
        'levels: for level in (driver_req.min.max(1)..=LEVELS as u8).rev() {
            let Some(set) = self.set(channel, driver_req.skill, level) else {
                continue;
            };
            for &(_, agent_index) in set {
                match state.eligible(agent_index, contact) {
                    Ok(()) => {
                        search.note(|| {
                            agent_candidate(state, agent_index, primary_skill, now, Verdict::RankedLower)
                        });
                        if driver == 0 {
                            // Walking the primary skill from the top level in
                            // idle order: the first qualified agent ranks first.
                            best = Some((
                                (level, std::cmp::Reverse(0), std::cmp::Reverse(agent_index)),
                                agent_index,
                            ));
                            break 'levels;
                        }
                        let Some(agent) = state.agent(agent_index) else {
                            continue;
                        };
                        let rank = state.agent_rank(agent_index, agent, primary);
                        if best.as_ref().is_none_or(|(best_rank, _)| rank > *best_rank) {
                            best = Some((rank, agent_index));
                        }
                    }
                    Err(verdict) => {
                        search.note(|| agent_candidate(state, agent_index, primary_skill, now, verdict));
                    }
                }
            }
        }
        search.chosen = best.map(|(_, agent_index)| agent_index);
        mark_chosen_agent(&mut search, state);
        search
    }

    fn check(&self, state: &State) -> Vec<String> {
        let mut problems = Vec::new();
        let mut expected_entries = 0usize;
        for (slot, agent) in state.agents.iter().enumerate() {
            let agent_index = slot as AgentIdx;
            let wanted = Self::wanted(state, agent_index);
            let entry = self.entries.get(slot).copied().unwrap_or((0, 0));
            if wanted != entry {
                problems.push(format!(
                    "agent {} indexed as {entry:?}, should be {wanted:?}",
                    agent.id
                ));
            }
            for channel in 0..CHANNELS {
                if wanted.0 & (1 << channel) == 0 {
                    continue;
                }
                for &(skill, level) in &agent.skills {
                    expected_entries += 1;
                    if !self
                        .set(channel, skill, level)
                        .is_some_and(|set| set.contains(&(wanted.1, agent_index)))
                    {
                        problems.push(format!("agent {} missing from index", agent.id));
                    }
                }
            }
        }
        let actual: usize = self
            .sets
            .iter()
            .flat_map(|per_skill| per_skill.iter())
            .flat_map(|levels| levels.iter())
            .map(BTreeSet::len)
            .sum();
        if actual != expected_entries {
            problems.push(format!(
                "index holds {actual} entries, expected {expected_entries}"
            ));
        }
        problems
    }
}

fn indexed_best_contact(state: &State, agent_index: AgentIdx, now: i64) -> Search<ContactIdx> {
    let mut search = Search::default();
    let Some(agent) = state.agent(agent_index) else {
        return search;
    };
    let mut best: Option<(ContactRank, ContactIdx)> = None;
    let mut consider = |search: &mut Search<ContactIdx>, contact_index: ContactIdx| {
        let Some(contact) = state.contact(contact_index) else {
            return;
        };
        match state.eligible(agent_index, contact) {
            Ok(()) => {
                search.note(|| contact_candidate(state, contact_index, now, Verdict::RankedLower));
                let rank = state.rank(contact, now);
                if best.as_ref().is_none_or(|(best_rank, _)| rank > *best_rank) {
                    best = Some((rank, contact_index));
                }
            }
            Err(verdict) => search.note(|| contact_candidate(state, contact_index, now, verdict)),
        }
    };
    if let Some(head) = state
        .personal
        .get(&agent_index)
        .and_then(|set| state.head_for(set.iter(), agent_index))
    {
        consider(&mut search, head);
    }
    for &(skill, _) in &agent.skills {
        let Some(lanes) = state.lanes_by_skill.get(skill as usize) else {
            continue;
        };
        for &lane_index in lanes {
            let Some(lane) = state.lane(lane_index) else {
                continue;
            };
            if lane.members.is_empty()
                || !agent.can_take(lane.channel)
                || agent.shortfall(&lane.reqs).is_some()
            {
                continue;
            }
            if let Some(head) = state.head_for(lane.members.iter(), agent_index) {
                consider(&mut search, head);
            }
        }
    }
    search.chosen = best.map(|(_, contact_index)| contact_index);
    mark_chosen_contact(&mut search, state);
    search
}

fn naive_best_agent(state: &State, contact_index: ContactIdx, now: i64) -> Search<AgentIdx> {
    let mut search = Search::default();
    let Some(contact) = state.contact(contact_index) else {
        return search;
    };
    let primary = state.reqs_of(contact).first().copied();
    let primary_skill = primary.map(|req| req.skill);
    let mut best: Option<(AgentRank, AgentIdx)> = None;
    for (slot, agent) in state.agents.iter().enumerate() {
        let agent_index = slot as AgentIdx;
        if !agent.signed_in {
            continue;
        }
        match state.eligible(agent_index, contact) {
            Ok(()) => {
                search.note(|| agent_candidate(state, agent_index, primary_skill, now, Verdict::RankedLower));
                let rank = state.agent_rank(agent_index, agent, primary);
                if best.as_ref().is_none_or(|(best_rank, _)| rank > *best_rank) {
                    best = Some((rank, agent_index));
                }
            }
            Err(_) => search.examined += 1,
        }
    }
    search.chosen = best.map(|(_, agent_index)| agent_index);
    mark_chosen_agent(&mut search, state);
    search
}

fn naive_best_contact(state: &State, agent_index: AgentIdx, now: i64) -> Search<ContactIdx> {
    let mut search = Search::default();
    let mut best: Option<(ContactRank, ContactIdx)> = None;
    for (slot, contact) in state.contacts.iter().enumerate() {
        let Some(contact) = contact else {
            continue;
        };
        if !matches!(
            contact.state,
            ContactState::Waiting(_) | ContactState::WaitingFor(_)
        ) {
            continue;
        }
        let contact_index = slot as ContactIdx;
        match state.eligible(agent_index, contact) {
            Ok(()) => {
                search.note(|| contact_candidate(state, contact_index, now, Verdict::RankedLower));
                let rank = state.rank(contact, now);
                if best.as_ref().is_none_or(|(best_rank, _)| rank > *best_rank) {
                    best = Some((rank, contact_index));
                }
            }
            Err(_) => search.examined += 1,
        }
    }
    search.chosen = best.map(|(_, contact_index)| contact_index);
    mark_chosen_contact(&mut search, state);
    search
}
