//! Errors: [`ConfigError`] for a routing config that does not load, and
//! [`RoutingError`] for a command the engine refuses. A refused command
//! changes nothing, so the caller can report it and carry on.

use thiserror::Error;

use crate::model::{AgentId, ContactId, Presence};

/// A routing config mistake, with the key at fault, e.g.
/// `queues.council-tax-phone.overflow[1].after_seconds: must be greater than
/// the previous step`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{key}: {problem}")]
pub struct ConfigError {
    /// Dotted path of the key, `[i]` for list entries.
    pub key: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// Why the engine refused a command.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RoutingError {
    #[error("unknown agent {0}")]
    UnknownAgent(AgentId),
    #[error("agent {0} is already signed in")]
    AlreadySignedIn(AgentId),
    #[error("agent {0} is not signed in")]
    NotSignedIn(AgentId),
    #[error("agent {agent} still has {contacts} contact(s) and cannot sign out")]
    AgentHasWork { agent: AgentId, contacts: usize },
    #[error("presence {0:?} is set by the engine, not by the agent")]
    PresenceSetByEngine(Presence),
    #[error("agent profile: {0}")]
    InvalidProfile(String),
    #[error("unknown contact {0}")]
    UnknownContact(ContactId),
    #[error("contact {0} is already being routed")]
    DuplicateContact(ContactId),
    #[error("no queue for service `{service}` on {channel}, and no fallback queue for the channel")]
    NoQueue { service: String, channel: String },
    #[error("unknown queue `{0}`")]
    UnknownQueue(String),
    #[error("unknown partner `{0}`")]
    UnknownPartner(String),
    #[error("a face-to-face contact must name the office it is at")]
    MissingOffice,
    #[error("contact {contact} is not offered to agent {agent}")]
    NotOffered { contact: ContactId, agent: AgentId },
    #[error("contact {contact} is not {expected}")]
    WrongState {
        contact: ContactId,
        expected: &'static str,
    },
    #[error("queue `{0}` offers no callbacks")]
    NoCallback(String),
    #[error(
        "contact {contact} cannot go to queue `{queue}`: it takes {queue_channel}, the contact is {channel}"
    )]
    ChannelMismatch {
        contact: ContactId,
        queue: String,
        queue_channel: String,
        channel: String,
    },
}

pub type RoutingResult<T> = Result<T, RoutingError>;
