//! Why a contact went to an agent: every offer carries an [`Explanation`]
//! for audit and for supervisors ("why did this call go to Sam?"). It names
//! the overflow step in force, each skill required with the agent's
//! proficiency and where the requirement came from, the contact's priority,
//! the agent's idle time, and the candidates the engine looked at.

use std::fmt;

use crate::config::QueueId;
use crate::model::{AgentId, ContactId};

/// What made the engine look for a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A contact became ready (arrived, returned, relaxed, transferred): the
    /// engine chose among the agents who could take it.
    ContactReady,
    /// An agent became able to take more: the engine chose among the contacts
    /// waiting for them.
    AgentReady,
}

/// Where a required skill came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RequirementSource {
    /// The queue's skills at the overflow step in force.
    Queue,
    /// A need of the resident (language, BSL, accessibility, vulnerability).
    Need,
    /// A face-to-face visit: the agent must be at the visit's office.
    Office,
}

/// One skill the agent needed, and what they have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillMatch {
    pub skill: String,
    pub required: u8,
    pub agent_has: u8,
    pub source: RequirementSource,
}

/// Why a candidate was not chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Chosen,
    /// Qualified, but ranked below the one chosen.
    RankedLower,
    /// Lacks a required skill or its proficiency.
    LacksSkill {
        skill: String,
        required: u8,
        has: u8,
    },
    /// Rejected this contact before.
    DeclinedBefore,
    /// A contact transferred to another named agent, or not waiting.
    ForAnotherAgent,
    /// Not available, not on the channel, or no room for it now.
    Unavailable,
}

/// One candidate the engine examined: an agent (for a contact) or a contact
/// (for an agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidate {
    Agent {
        agent: AgentId,
        primary_proficiency: u8,
        idle_seconds: i64,
        verdict: Verdict,
    },
    Contact {
        contact: ContactId,
        queue: QueueId,
        /// Priority in thousandths of a point at the time of the decision.
        priority_millipoints: i64,
        waited_seconds: i64,
        verdict: Verdict,
    },
}

/// The contact's priority when it was offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorityExplained {
    /// The queue's priority.
    pub queue_priority: i64,
    /// Added for needs such as vulnerability.
    pub needs_boost: i64,
    /// Including ageing, at the time of the offer, in thousandths of a point
    /// (points are exact rationals inside the engine).
    pub millipoints: i64,
    /// Returned to the front of its queue after a rejection or timeout.
    pub at_front: bool,
}

/// Why this contact went to this agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub trigger: Trigger,
    pub queue: QueueId,
    /// The overflow step in force: 0 is the queue's own requirement, `n` is
    /// `overflow[n-1]`.
    pub step: usize,
    /// Seconds the contact had been in this queue.
    pub seconds_in_queue: i64,
    /// Seconds since the contact first arrived.
    pub waited_seconds: i64,
    pub priority: PriorityExplained,
    /// Every skill required, with the agent's proficiency.
    pub skills: Vec<SkillMatch>,
    /// Offered to a named agent after a transfer, skills not considered.
    pub named_agent: bool,
    pub agent_idle_seconds: i64,
    /// How many candidates (agents or contacts) the engine examined.
    pub candidates_examined: usize,
    /// The first few of them, with why each was or was not chosen.
    pub candidates: Vec<Candidate>,
}

/// How many examined candidates an explanation keeps.
pub const MAX_CANDIDATES_KEPT: usize = 8;

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.trigger {
            Trigger::ContactReady => write!(
                f,
                "highest primary proficiency then longest idle among agents for queue {}",
                self.queue
            )?,
            Trigger::AgentReady => write!(
                f,
                "highest priority contact the agent qualifies for, from queue {}",
                self.queue
            )?,
        }
        write!(
            f,
            "; step {} after {} s in queue",
            self.step, self.seconds_in_queue
        )?;
        if self.named_agent {
            f.write_str("; named agent of a transfer")?;
        }
        for skill in &self.skills {
            let source = match skill.source {
                RequirementSource::Queue => "queue",
                RequirementSource::Need => "need",
                RequirementSource::Office => "office",
            };
            write!(
                f,
                "; {} >= {} ({source}), agent has {}",
                skill.skill, skill.required, skill.agent_has
            )?;
        }
        write!(
            f,
            "; priority {}.{:03}{}; agent idle {} s; {} candidate(s) examined",
            self.priority.millipoints.div_euclid(1000),
            self.priority.millipoints.rem_euclid(1000),
            if self.priority.at_front { " at front" } else { "" },
            self.agent_idle_seconds,
            self.candidates_examined
        )
    }
}
