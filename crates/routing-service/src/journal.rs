//! What a router writes to its partition's journal, and what it keeps beside
//! the engine about each contact.
//!
//! The engine is deterministic: the same commands at the same times give the
//! same decisions. So the journal holds inputs, not state: each command with
//! the time it was handled, plus the facts about a contact that routing shows
//! but the engine does not hold. Replaying a journal from its base rebuilds
//! the router exactly as it was.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_domain::{Channel, Needs};
use switchboard_routing::{AgentId, AgentProfile, Command, ContactId, Presence};

/// One journal entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Entry {
    /// Where a replay starts: the configuration, and the agents signed in at
    /// that moment, longest idle first (a partition is only rebased when no
    /// contact is being routed, so agents are all it holds).
    Base {
        config: String,
        #[serde(default)]
        agents: Vec<BaseAgent>,
    },
    /// A contact arrived; `contact` is what routing shows of it.
    Arrived {
        at: DateTime<Utc>,
        contact: ContactInfo,
        command: Command,
    },
    /// Any other engine command.
    Command { at: DateTime<Utc>, command: Command },
    /// The case store placed a contact on a case, and told what it knows
    /// of the resident's needs when that was more than the contact said
    /// (a `NeedsKnown` command entry follows while the engine still holds
    /// the contact; it leaves an offered or connected contact as it is).
    CaseContext {
        contact: ContactId,
        case_reference: String,
        case_contact_count: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        needs: Option<Needs>,
    },
    /// The routing configuration changed: the file was reloaded, or a
    /// supervisor's edit was applied (then `version` is the stored one, so a
    /// take-over never goes back to an older edit).
    Reconfigured {
        at: DateTime<Utc>,
        config: String,
        #[serde(default)]
        version: Option<u64>,
    },
    /// A router took the partition over; entries after this are its own.
    TookOver { at: DateTime<Utc>, owner: String },
}

/// An agent signed in when a base was written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct BaseAgent {
    pub(crate) agent: AgentId,
    pub(crate) profile: AgentProfile,
    pub(crate) presence: Presence,
    pub(crate) idle_since: DateTime<Utc>,
}

/// What routing shows of a contact beside the engine's own state. No
/// personal data: the reference, service, channel and needs only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactInfo {
    pub contact: ContactId,
    pub reference: String,
    pub service: String,
    pub channel: Channel,
    pub needs: Needs,
    pub received_at: DateTime<Utc>,
    /// Set once the case store has placed the contact on a case.
    pub case_reference: Option<String>,
    pub case_contact_count: u32,
    /// Set while the resident may take a callback instead of waiting.
    pub callback_queue: Option<String>,
    /// The queue it was last in, which events name after it has left.
    #[serde(default)]
    pub queue: Option<String>,
}

/// An agent's profile as supervisors set it and the store keeps it (JSON):
/// skills by name with proficiency 1 to 5, team, office, channels, and how
/// many written contacts at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredProfile {
    pub skills: BTreeMap<String, u8>,
    pub team: String,
    #[serde(default)]
    pub office: Option<String>,
    pub channels: Vec<Channel>,
    #[serde(default)]
    pub web_capacity: u8,
    /// The routing partition the agent works in; `None` for the default.
    #[serde(default)]
    pub partition: Option<String>,
}

impl StoredProfile {
    /// The partition the agent works in.
    pub fn partition(&self) -> &str {
        self.partition
            .as_deref()
            .unwrap_or(switchboard_routing::config::DEFAULT_PARTITION)
    }

    pub fn to_engine(&self) -> AgentProfile {
        AgentProfile {
            skills: self
                .skills
                .iter()
                .map(|(skill, level)| (skill.clone(), *level))
                .collect(),
            team: self.team.clone(),
            office: self.office.clone(),
            channels: self.channels.clone(),
            web_capacity: self.web_capacity,
        }
    }
}

#[cfg(test)]
mod tests {
    use switchboard_routing::Destination;

    use super::*;

    #[test]
    fn entries_read_back_as_written() {
        let contact = ContactId(7);
        let at = DateTime::from_timestamp_millis(1_764_000_000_123).expect("valid time");
        let entries = vec![
            Entry::Base {
                config: "[engine]\n".to_owned(),
                agents: vec![BaseAgent {
                    agent: AgentId(3),
                    profile: StoredProfile {
                        skills: BTreeMap::from([("council-tax".to_owned(), 3)]),
                        team: "revenues".to_owned(),
                        office: None,
                        channels: vec![Channel::Phone],
                        web_capacity: 0,
                        partition: None,
                    }
                    .to_engine(),
                    presence: Presence::Available,
                    idle_since: at,
                }],
            },
            Entry::Arrived {
                at,
                contact: ContactInfo {
                    contact,
                    reference: "SB-ABCDE-FGHJK".to_owned(),
                    service: "council-tax".to_owned(),
                    channel: Channel::Phone,
                    needs: Needs::default(),
                    received_at: at,
                    case_reference: None,
                    case_contact_count: 0,
                    callback_queue: None,
                    queue: None,
                },
                command: Command::ContactArrived {
                    contact,
                    channel: Channel::Phone,
                    destination: Destination::Service("council-tax".to_owned()),
                    needs: Needs::default(),
                    office: None,
                },
            },
            Entry::CaseContext {
                contact,
                case_reference: "CS-ABCDE-FGHJK".to_owned(),
                case_contact_count: 2,
                needs: None,
            },
            Entry::CaseContext {
                contact,
                case_reference: "CS-ABCDE-FGHJK".to_owned(),
                case_contact_count: 3,
                needs: Some(Needs {
                    british_sign_language: true,
                    ..Needs::default()
                }),
            },
            Entry::TookOver {
                at,
                owner: "router-b".to_owned(),
            },
        ];
        for entry in entries {
            let json = serde_json::to_string(&entry).expect("serialises");
            let back: Entry = serde_json::from_str(&json).expect("deserialises");
            assert_eq!(back, entry, "{json}");
        }
    }
}
