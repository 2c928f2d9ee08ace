//! What goes into the engine and what comes out: opaque ids, agent profiles,
//! residents' needs, [`Command`]s in and [`Decision`]s out.
//!
//! No personal data crosses this boundary: contacts and agents are opaque
//! numbers, and needs are flags, so decisions can be logged and published as
//! they are.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_domain::Channel;

use crate::config::{QueueId, Redirect};
use crate::explain::Explanation;

/// A contact, as the engine knows it. Wide enough to carry a UUID, so the
/// routing service can use its contact ids as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContactId(pub u128);

impl From<switchboard_domain::ContactId> for ContactId {
    fn from(id: switchboard_domain::ContactId) -> Self {
        ContactId(id.as_uuid().as_u128())
    }
}

/// Written as 32 hex digits: JSON numbers do not carry 128 bits everywhere.
impl Serialize for ContactId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{:032x}", self.0))
    }
}

impl<'de> Deserialize<'de> for ContactId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let hex = String::deserialize(deserializer)?;
        u128::from_str_radix(&hex, 16)
            .map(ContactId)
            .map_err(|_| serde::de::Error::custom("contact id: expected 32 hex digits"))
    }
}

impl fmt::Display for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{:x}", self.0)
    }
}

/// An agent, as the engine knows it: the routing service numbers staff
/// accounts, so no name or login reaches a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AgentId(pub u64);

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a{}", self.0)
    }
}

/// Where an agent stands. Agents choose `Available`, `Break`, `Busy` (not
/// ready, e.g. in a meeting) and `Offline`; the engine reports `WrapUp`
/// after a contact ends and `Missed` after an offer times out (the agent is
/// not offered more until they choose `Available` again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Offline,
    Available,
    Break,
    Busy,
    WrapUp,
    Missed,
}

/// What an agent can do, given at sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentProfile {
    /// Skill name and proficiency 1 to 5: services (`council-tax`), languages
    /// (`language-pl`), `bsl`, specialist skills (`safeguarding`).
    pub skills: Vec<(String, u8)>,
    pub team: String,
    /// The office whose desks the agent sits at today, if any. Face-to-face
    /// visits only go to agents at the visit's office.
    pub office: Option<String>,
    /// The channels the agent works.
    pub channels: Vec<Channel>,
    /// Written contacts (web, email, letter) the agent can hold at once. A
    /// call or a visit is exclusive.
    pub web_capacity: u8,
}

/// What the resident needs from us: the domain's own record of it. Routing
/// reads a vulnerability only when it came with the resident's consent.
pub use switchboard_domain::Needs;

/// Where a contact should go on arrival.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    /// The queue for this service on the contact's channel (or the channel's
    /// fallback queue).
    Service(String),
    /// A named queue.
    Queue(QueueId),
}

/// Where a transfer sends a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferTarget {
    Queue(QueueId),
    /// A named agent, who is offered it as soon as they can take it; after
    /// `engine.named_agent_wait_seconds` it goes back to its queue.
    Agent(AgentId),
}

/// The outcome an agent records at wrap-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    Resolved,
    /// Referred to a partner organisation from the config's `[partners]`.
    SignpostedTo(String),
    CallbackBooked,
    /// More work is needed on the case (a visit, an assessment, a letter).
    FollowUpNeeded,
    /// Passed to another service or organisation to act on.
    Referred,
}

/// One input to the engine. Time is not part of a command: it is passed
/// beside it, so the engine never reads a clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    ContactArrived {
        contact: ContactId,
        channel: Channel,
        destination: Destination,
        needs: Needs,
        /// The office a face-to-face visit is at.
        office: Option<String>,
    },
    /// More is known of the resident's needs than the contact arrived with
    /// (the case store's record of them). A contact still waiting in its
    /// queue is matched by them from now on, keeping its place; one already
    /// offered, connected or waiting for a named agent is left as it is.
    NeedsKnown {
        contact: ContactId,
        needs: Needs,
    },
    /// The resident hung up, closed the chat or left the office.
    ContactAbandoned {
        contact: ContactId,
    },
    /// The resident accepted the callback they were offered.
    CallbackAccepted {
        contact: ContactId,
    },
    AgentSignedIn {
        agent: AgentId,
        profile: AgentProfile,
    },
    AgentSignedOut {
        agent: AgentId,
    },
    PresenceChanged {
        agent: AgentId,
        presence: Presence,
    },
    OfferAccepted {
        contact: ContactId,
        agent: AgentId,
    },
    OfferRejected {
        contact: ContactId,
        agent: AgentId,
    },
    /// The conversation is over; the agent wraps up.
    ContactEnded {
        contact: ContactId,
    },
    WrapUpDone {
        contact: ContactId,
        disposition: Disposition,
    },
    /// An agent (or supervisor) transfers a connected or waiting contact.
    Transfer {
        contact: ContactId,
        to: TransferTarget,
    },
    /// Time has passed: offers time out, overflow steps fire.
    Tick,
}

/// Why an offer came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnReason {
    Rejected,
    TimedOut,
}

/// Why a contact moved from one queue to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveReason {
    /// An overflow step `move_to`.
    Overflow,
    /// The queue was closed and its out-of-hours outcome names a queue.
    OutOfHours,
    /// The queue was full and its `when_full` names a queue.
    QueueFull,
    /// The resident accepted a callback.
    CallbackAccepted,
    Transfer,
    /// A transfer to a named agent who did not take it in time.
    NamedAgentTimeout,
}

/// How the routing of a contact ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handled by an agent, who recorded the disposition at wrap-up.
    Completed {
        agent: AgentId,
        disposition: Disposition,
    },
    /// The resident left before being connected.
    Abandoned { waited_seconds: i64 },
    /// The queue was closed: the out-of-hours message or signposting.
    Closed { queue: QueueId, redirect: Redirect },
    /// The queue was full: a message or signposting instead of waiting.
    Overflowed { queue: QueueId, redirect: Redirect },
}

/// One output of the engine. A command yields zero or more, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The contact waits, at this position (1 = next) in its queue.
    Queued {
        contact: ContactId,
        queue: QueueId,
        position: usize,
        /// `None` while nobody who could take it is signed in.
        estimated_wait_seconds: Option<u64>,
    },
    /// The resident may take a callback instead of waiting.
    CallbackOffered {
        contact: ContactId,
        queue: QueueId,
        estimated_wait_seconds: Option<u64>,
        callback_queue: QueueId,
    },
    /// A transfer to a named agent: the contact waits for them until `until`,
    /// then goes back to its queue.
    HeldForAgent {
        contact: ContactId,
        agent: AgentId,
        until: DateTime<Utc>,
    },
    /// An overflow step widened who may take the contact.
    Relaxed {
        contact: ContactId,
        queue: QueueId,
        step: usize,
    },
    Moved {
        contact: ContactId,
        from: QueueId,
        to: QueueId,
        reason: MoveReason,
    },
    /// Proposed to an agent, who must accept before `expires_at`.
    Offered {
        contact: ContactId,
        agent: AgentId,
        expires_at: DateTime<Utc>,
        explanation: Box<Explanation>,
    },
    /// The offer was rejected or timed out; the contact is back at the front
    /// of its queue.
    OfferReturned {
        contact: ContactId,
        agent: AgentId,
        reason: ReturnReason,
    },
    /// The agent did not answer an offer and is not offered more until they
    /// choose `Available`.
    AgentMissed {
        agent: AgentId,
        missed_offers: u32,
    },
    /// The agent accepted; the resident is connected.
    Assigned {
        contact: ContactId,
        agent: AgentId,
        waited_seconds: i64,
        /// Whether the queue's service-level target was met.
        within_target: bool,
    },
    WrapUpStarted {
        contact: ContactId,
        agent: AgentId,
    },
    /// Routing of the contact is over.
    Finished {
        contact: ContactId,
        outcome: Outcome,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The routing service journals commands as JSON and replays them after
    /// a failover: every command must come back as it went in.
    #[test]
    fn commands_round_trip_through_json() {
        let contact = ContactId(u128::MAX - 7);
        let commands = vec![
            Command::ContactArrived {
                contact,
                channel: Channel::FaceToFace,
                destination: Destination::Service("council-tax".to_owned()),
                needs: Needs {
                    language: Some("pl".to_owned()),
                    british_sign_language: true,
                    ..Needs::default()
                },
                office: Some("lymington-town-hall".to_owned()),
            },
            Command::AgentSignedIn {
                agent: AgentId(42),
                profile: AgentProfile {
                    skills: vec![("council-tax".to_owned(), 4), ("bsl".to_owned(), 3)],
                    team: "revenues".to_owned(),
                    office: None,
                    channels: vec![Channel::Phone, Channel::Web],
                    web_capacity: 3,
                },
            },
            Command::PresenceChanged {
                agent: AgentId(42),
                presence: Presence::WrapUp,
            },
            Command::Transfer {
                contact,
                to: TransferTarget::Queue(QueueId::from("benefits-phone")),
            },
            Command::WrapUpDone {
                contact,
                disposition: Disposition::SignpostedTo("citizens-advice".to_owned()),
            },
            Command::Tick,
        ];
        for command in commands {
            let json = serde_json::to_string(&command).expect("serialises");
            let back: Command = serde_json::from_str(&json).expect("deserialises");
            assert_eq!(back, command, "{json}");
        }
    }

    #[test]
    fn a_contact_id_that_is_not_hex_is_refused_by_name() {
        let error = serde_json::from_str::<ContactId>("\"not-hex\"").expect_err("refused");
        assert!(error.to_string().contains("contact id"), "{error}");
    }
}
