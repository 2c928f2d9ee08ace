//! Routing's decisions as `switchboard.v1.Event`s for the outbox.
//!
//! Agents appear by their opaque routing number only, and contacts by id,
//! queue, service and channel: nothing here identifies a resident or names
//! a member of staff, so the analytics stream can carry it as it is.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use switchboard_bus::{Envelope, OutboxRecord};
use switchboard_proto::{event_types, v1};
use switchboard_routing::config::Redirect;
use switchboard_routing::{
    AgentId, Command, ContactId, Decision, Disposition, MoveReason, Outcome, Presence, ReturnReason,
};
use switchboard_runtime::wire::{channel_to_proto, timestamp};
use uuid::Uuid;

use crate::error::{RouterError, RouterResult};
use crate::journal::ContactInfo;

/// The `source` of every event routing publishes.
pub const EVENT_SOURCE: &str = "routing";

/// The events one input produces, in order.
#[derive(Default)]
pub(crate) struct EventBatch {
    events: Vec<v1::Event>,
    /// The `contact.queued` event of each contact in this batch, so a move,
    /// its new position and a callback offer make one event.
    queued: HashMap<ContactId, usize>,
    /// The contact of the latest returned offer, for `agent.missed_offer`.
    last_returned: Option<ContactId>,
}

fn contact_uuid(contact: ContactId) -> String {
    Uuid::from_u128(contact.0).to_string()
}

pub(crate) fn presence_name(presence: Presence) -> &'static str {
    match presence {
        Presence::Offline => "offline",
        Presence::Available => "available",
        Presence::Break => "break",
        Presence::Busy => "busy",
        Presence::WrapUp => "wrap-up",
        Presence::Missed => "missed",
    }
}

fn move_reason(reason: MoveReason) -> &'static str {
    match reason {
        MoveReason::Overflow => "overflow",
        MoveReason::OutOfHours => "out-of-hours",
        MoveReason::QueueFull => "queue-full",
        MoveReason::CallbackAccepted => "callback-accepted",
        MoveReason::Transfer => "transfer",
        MoveReason::NamedAgentTimeout => "named-agent-timeout",
    }
}

/// The disposition's name in events, and the partner when signposted.
pub(crate) fn disposition_name(disposition: &Disposition) -> (&'static str, String) {
    match disposition {
        Disposition::Resolved => ("resolved", String::new()),
        Disposition::SignpostedTo(partner) => ("signposted", partner.clone()),
        Disposition::CallbackBooked => ("callback-booked", String::new()),
        Disposition::FollowUpNeeded => ("follow-up-needed", String::new()),
        Disposition::Referred => ("referred", String::new()),
    }
}

fn seconds(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

impl EventBatch {
    fn push(&mut self, at: DateTime<Utc>, subject: String, payload: v1::event::Payload) -> usize {
        let event_type = match &payload {
            v1::event::Payload::ContactQueued(_) => event_types::CONTACT_QUEUED,
            v1::event::Payload::ContactOffered(_) => event_types::CONTACT_OFFERED,
            v1::event::Payload::ContactRequeued(_) => event_types::CONTACT_REQUEUED,
            v1::event::Payload::ContactAssigned(_) => event_types::CONTACT_ASSIGNED,
            v1::event::Payload::ContactAbandoned(_) => event_types::CONTACT_ABANDONED,
            v1::event::Payload::ContactTransferred(_) => event_types::CONTACT_TRANSFERRED,
            v1::event::Payload::ContactCompleted(_) => event_types::CONTACT_COMPLETED,
            v1::event::Payload::ContactRedirected(_) => event_types::CONTACT_REDIRECTED,
            v1::event::Payload::AgentSignedIn(_) => event_types::AGENT_SIGNED_IN,
            v1::event::Payload::AgentSignedOut(_) => event_types::AGENT_SIGNED_OUT,
            v1::event::Payload::AgentPresenceChanged(_) => event_types::AGENT_PRESENCE_CHANGED,
            v1::event::Payload::AgentMissedOffer(_) => event_types::AGENT_MISSED_OFFER,
            v1::event::Payload::ContactReceived(_) => event_types::CONTACT_RECEIVED,
            v1::event::Payload::CaseOpened(_) => event_types::CASE_OPENED,
            v1::event::Payload::CaseUpdated(_) => event_types::CASE_UPDATED,
            v1::event::Payload::CaseResolved(_) => event_types::CASE_RESOLVED,
            v1::event::Payload::CaseReferred(_) => event_types::CASE_REFERRED,
            v1::event::Payload::CaseReferralOutcome(_) => event_types::CASE_REFERRAL_OUTCOME,
        };
        self.events.push(v1::Event {
            id: Uuid::now_v7().to_string(),
            r#type: event_type.to_owned(),
            occurred_at: Some(timestamp(at)),
            source: EVENT_SOURCE.to_owned(),
            subject,
            sealed_personal_data: None,
            payload: Some(payload),
        });
        self.events.len() - 1
    }

    fn agent_event(&mut self, at: DateTime<Utc>, agent: AgentId, payload: v1::event::Payload) {
        self.push(at, format!("agent/{}", agent.0), payload);
    }

    /// Events for a command itself (agents signing in and out, presence).
    pub(crate) fn command(&mut self, command: &Command, at: DateTime<Utc>) {
        match command {
            Command::AgentSignedIn { agent, profile } => self.agent_event(
                at,
                *agent,
                v1::event::Payload::AgentSignedIn(v1::AgentSignedIn {
                    agent_id: agent.0,
                    team: profile.team.clone(),
                    channels: profile
                        .channels
                        .iter()
                        .map(|channel| channel_to_proto(*channel) as i32)
                        .collect(),
                }),
            ),
            Command::AgentSignedOut { agent } => self.agent_event(
                at,
                *agent,
                v1::event::Payload::AgentSignedOut(v1::AgentSignedOut { agent_id: agent.0 }),
            ),
            Command::PresenceChanged { agent, presence } => self.agent_event(
                at,
                *agent,
                v1::event::Payload::AgentPresenceChanged(v1::AgentPresenceChanged {
                    agent_id: agent.0,
                    presence: presence_name(*presence).to_owned(),
                }),
            ),
            _ => {}
        }
    }

    /// A `contact.queued` for the contact in `queue`, with what routing
    /// knows of its service and channel; callers fill in the rest.
    fn queued(contact: ContactId, queue: &str, info: Option<&ContactInfo>) -> v1::ContactQueued {
        v1::ContactQueued {
            contact_id: contact_uuid(contact),
            queue: queue.to_owned(),
            service: info.map(|i| i.service.clone()).unwrap_or_default(),
            channel: info.map_or(0, |i| channel_to_proto(i.channel) as i32),
            ..v1::ContactQueued::default()
        }
    }

    /// Adds a `contact.queued` and remembers it as the contact's in this batch.
    fn push_queued(&mut self, at: DateTime<Utc>, contact: ContactId, queued: v1::ContactQueued) {
        let index = self.push(
            at,
            contact_uuid(contact),
            v1::event::Payload::ContactQueued(queued),
        );
        self.queued.insert(contact, index);
    }

    /// Events for one decision. `contacts` holds what routing knows of each
    /// contact, with the queue it was last in.
    pub(crate) fn decision(
        &mut self,
        decision: &Decision,
        at: DateTime<Utc>,
        contacts: &HashMap<ContactId, ContactInfo>,
    ) {
        let info = |contact: &ContactId| contacts.get(contact);
        let last_queue = |contact: &ContactId| {
            info(contact)
                .and_then(|info| info.queue.clone())
                .unwrap_or_default()
        };
        match decision {
            Decision::Queued {
                contact,
                queue,
                position,
                estimated_wait_seconds,
            } => {
                let position = u32::try_from(*position).unwrap_or(u32::MAX);
                let estimate = estimated_wait_seconds.map(|s| u32::try_from(s).unwrap_or(u32::MAX));
                if let Some(queued) = self.open_queued(contact, queue.as_str()) {
                    queued.position = position;
                    queued.estimated_wait_seconds = estimate;
                    return;
                }
                let queued = v1::ContactQueued {
                    position,
                    estimated_wait_seconds: estimate,
                    ..Self::queued(*contact, queue.as_str(), info(contact))
                };
                self.push_queued(at, *contact, queued);
            }
            Decision::CallbackOffered {
                contact,
                queue,
                estimated_wait_seconds,
                callback_queue,
            } => {
                if let Some(queued) = self.open_queued(contact, queue.as_str()) {
                    queued.callback_queue = callback_queue.to_string();
                    return;
                }
                let queued = v1::ContactQueued {
                    estimated_wait_seconds: estimated_wait_seconds
                        .map(|s| u32::try_from(s).unwrap_or(u32::MAX)),
                    callback_queue: callback_queue.to_string(),
                    ..Self::queued(*contact, queue.as_str(), info(contact))
                };
                self.push_queued(at, *contact, queued);
            }
            Decision::Moved {
                contact,
                from,
                to,
                reason,
            } => {
                if *reason == MoveReason::Transfer {
                    self.push(
                        at,
                        contact_uuid(*contact),
                        v1::event::Payload::ContactTransferred(v1::ContactTransferred {
                            contact_id: contact_uuid(*contact),
                            from_queue: from.to_string(),
                            to: Some(v1::contact_transferred::To::Queue(to.to_string())),
                        }),
                    );
                }
                let queued = v1::ContactQueued {
                    moved_from: from.to_string(),
                    move_reason: move_reason(*reason).to_owned(),
                    ..Self::queued(*contact, to.as_str(), info(contact))
                };
                self.push_queued(at, *contact, queued);
            }
            Decision::HeldForAgent { contact, agent, .. } => {
                self.push(
                    at,
                    contact_uuid(*contact),
                    v1::event::Payload::ContactTransferred(v1::ContactTransferred {
                        contact_id: contact_uuid(*contact),
                        from_queue: last_queue(contact),
                        to: Some(v1::contact_transferred::To::AgentId(agent.0)),
                    }),
                );
            }
            Decision::Relaxed { .. } => {}
            Decision::Offered {
                contact,
                agent,
                expires_at,
                explanation,
            } => {
                self.push(
                    at,
                    contact_uuid(*contact),
                    v1::event::Payload::ContactOffered(v1::ContactOffered {
                        contact_id: contact_uuid(*contact),
                        queue: explanation.queue.to_string(),
                        agent_id: agent.0,
                        expires_at: Some(timestamp(*expires_at)),
                        explanation: explanation.to_string(),
                    }),
                );
            }
            Decision::OfferReturned {
                contact,
                agent,
                reason,
            } => {
                self.last_returned = Some(*contact);
                self.push(
                    at,
                    contact_uuid(*contact),
                    v1::event::Payload::ContactRequeued(v1::ContactRequeued {
                        contact_id: contact_uuid(*contact),
                        agent_id: agent.0,
                        reason: match reason {
                            ReturnReason::Rejected => "rejected",
                            ReturnReason::TimedOut => "timed-out",
                        }
                        .to_owned(),
                    }),
                );
            }
            Decision::AgentMissed { agent, missed_offers } => {
                let contact_id = self.last_returned.map(contact_uuid).unwrap_or_default();
                self.agent_event(
                    at,
                    *agent,
                    v1::event::Payload::AgentMissedOffer(v1::AgentMissedOffer {
                        agent_id: agent.0,
                        contact_id,
                        missed_offers: *missed_offers,
                    }),
                );
            }
            Decision::Assigned {
                contact,
                agent,
                waited_seconds,
                within_target,
            } => {
                self.push(
                    at,
                    contact_uuid(*contact),
                    v1::event::Payload::ContactAssigned(v1::ContactAssigned {
                        contact_id: contact_uuid(*contact),
                        queue: last_queue(contact),
                        agent_id: agent.0,
                        waited_seconds: seconds(*waited_seconds),
                        within_target: *within_target,
                    }),
                );
            }
            Decision::WrapUpStarted { agent, .. } => self.agent_event(
                at,
                *agent,
                v1::event::Payload::AgentPresenceChanged(v1::AgentPresenceChanged {
                    agent_id: agent.0,
                    presence: presence_name(Presence::WrapUp).to_owned(),
                }),
            ),
            Decision::Finished { contact, outcome } => {
                let payload = match outcome {
                    Outcome::Completed { agent, disposition } => {
                        let (disposition, partner) = disposition_name(disposition);
                        v1::event::Payload::ContactCompleted(v1::ContactCompleted {
                            contact_id: contact_uuid(*contact),
                            queue: last_queue(contact),
                            agent_id: agent.0,
                            disposition: disposition.to_owned(),
                            partner,
                        })
                    }
                    Outcome::Abandoned { waited_seconds } => {
                        v1::event::Payload::ContactAbandoned(v1::ContactAbandoned {
                            contact_id: contact_uuid(*contact),
                            queue: last_queue(contact),
                            waited_seconds: seconds(*waited_seconds),
                        })
                    }
                    Outcome::Closed { queue, redirect } | Outcome::Overflowed { queue, redirect } => {
                        let why = if matches!(outcome, Outcome::Closed { .. }) {
                            "closed"
                        } else {
                            "full"
                        };
                        let (redirect, partner) = match redirect {
                            Redirect::Message { .. } => ("message", String::new()),
                            Redirect::Signpost { partner } => ("signpost", partner.clone()),
                            Redirect::Queue { .. } => ("queue", String::new()),
                            Redirect::Callback { .. } => ("callback", String::new()),
                        };
                        v1::event::Payload::ContactRedirected(v1::ContactRedirected {
                            contact_id: contact_uuid(*contact),
                            queue: queue.to_string(),
                            why: why.to_owned(),
                            redirect: redirect.to_owned(),
                            partner,
                        })
                    }
                };
                self.push(at, contact_uuid(*contact), payload);
            }
        }
    }

    /// This batch's `contact.queued` event for the contact, if it is for `queue`.
    fn open_queued(&mut self, contact: &ContactId, queue: &str) -> Option<&mut v1::ContactQueued> {
        let index = *self.queued.get(contact)?;
        match self.events.get_mut(index)?.payload.as_mut()? {
            v1::event::Payload::ContactQueued(queued) if queued.queue == queue => Some(queued),
            _ => None,
        }
    }

    /// The outbox rows, carrying the current trace context.
    pub(crate) fn into_records(self) -> RouterResult<Vec<OutboxRecord>> {
        self.events
            .into_iter()
            .map(|event| OutboxRecord::from_envelope(&Envelope::new(event)).map_err(RouterError::from))
            .collect()
    }
}
