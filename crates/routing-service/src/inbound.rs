//! Messages on a routing partition queue, as router inputs. Routing reads
//! no personal data: the sealed part of `contact.received` stays sealed.

use switchboard_bus::Envelope;
use switchboard_proto::{event_types, v1};
use switchboard_routing::ContactId;
use switchboard_runtime::wire::{channel_from_proto, from_timestamp, needs_from_proto};
use uuid::Uuid;

use crate::journal::ContactInfo;
use crate::router::Inbound;

/// What one message is to the consumer.
#[derive(Debug)]
pub(crate) enum Message {
    /// A router's heartbeat: whoever receives it is the active consumer.
    Heartbeat,
    Event(Box<Inbound>),
}

/// Decodes one message, or says why it can never be applied.
pub(crate) fn decode(envelope: &Envelope) -> Result<Message, String> {
    let event = &envelope.event;
    if event.r#type == event_types::ROUTING_HEARTBEAT {
        return Ok(Message::Heartbeat);
    }
    let event_id = Uuid::parse_str(&event.id).map_err(|_| "event id is not a uuid".to_owned())?;
    let contact_id = |id: &str| {
        Uuid::parse_str(id)
            .map(|uuid| ContactId(uuid.as_u128()))
            .map_err(|_| "contact_id is not a uuid".to_owned())
    };
    let inbound = match &event.payload {
        Some(v1::event::Payload::ContactReceived(received)) => {
            let channel = channel_from_proto(received.channel)
                .ok_or_else(|| "channel is unspecified or unknown".to_owned())?;
            let received_at = received
                .received_at
                .as_ref()
                .or(event.occurred_at.as_ref())
                .and_then(from_timestamp)
                .ok_or_else(|| "received_at is missing or out of range".to_owned())?;
            if received.service.is_empty() {
                return Err("service is empty".to_owned());
            }
            let office = (!received.office_id.is_empty()).then(|| received.office_id.clone());
            Inbound::Contact {
                event_id,
                info: ContactInfo {
                    contact: contact_id(&received.contact_id)?,
                    reference: received.reference.clone(),
                    service: received.service.clone(),
                    channel,
                    needs: received.needs.as_ref().map(needs_from_proto).unwrap_or_default(),
                    received_at,
                    case_reference: None,
                    case_contact_count: 0,
                    callback_queue: None,
                    queue: None,
                },
                office,
            }
        }
        Some(v1::event::Payload::CaseOpened(opened)) => Inbound::CaseContext {
            event_id,
            contact: contact_id(&opened.contact_id)?,
            case_reference: opened.reference.clone(),
            case_contact_count: 1,
            needs: opened.needs.as_ref().map(needs_from_proto),
        },
        // A status change, not a contact joining the case: nothing to route.
        Some(v1::event::Payload::CaseUpdated(updated)) if updated.contact_id.is_empty() => {
            Inbound::Ignored { event_id }
        }
        Some(v1::event::Payload::CaseUpdated(updated)) => Inbound::CaseContext {
            event_id,
            contact: contact_id(&updated.contact_id)?,
            case_reference: updated.reference.clone(),
            case_contact_count: updated.contact_count,
            needs: updated.needs.as_ref().map(needs_from_proto),
        },
        // A referral to a partner is made after the contact was routed, and
        // changes nothing about where the next one goes.
        Some(v1::event::Payload::CaseReferred(_) | v1::event::Payload::CaseReferralOutcome(_)) => {
            Inbound::Ignored { event_id }
        }
        _ => Inbound::Ignored { event_id },
    };
    Ok(Message::Event(Box::new(inbound)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case_updated(contact_id: &str) -> Envelope {
        Envelope {
            event: v1::Event {
                id: Uuid::now_v7().to_string(),
                r#type: event_types::CASE_UPDATED.to_owned(),
                payload: Some(v1::event::Payload::CaseUpdated(v1::CaseUpdated {
                    case_id: Uuid::now_v7().to_string(),
                    reference: "CS-7K3MQ-9XD2H".to_owned(),
                    contact_id: contact_id.to_owned(),
                    contact_count: 3,
                    ..v1::CaseUpdated::default()
                })),
                ..v1::Event::default()
            },
            traceparent: None,
        }
    }

    #[test]
    fn a_contact_joining_a_case_is_context_and_a_status_change_is_ignored() {
        let contact = Uuid::now_v7();
        match decode(&case_updated(&contact.to_string())) {
            Ok(Message::Event(inbound)) => assert!(matches!(
                *inbound,
                Inbound::CaseContext { contact: ContactId(id), case_contact_count: 3, .. } if id == contact.as_u128()
            )),
            other => panic!("expected case context, got {other:?}"),
        }
        assert!(matches!(
            decode(&case_updated("")),
            Ok(Message::Event(inbound)) if matches!(*inbound, Inbound::Ignored { .. })
        ));
    }

    #[test]
    fn the_case_stores_needs_travel_with_the_context() {
        let contact = Uuid::now_v7();
        let needs = v1::Needs {
            language: "CY".to_owned(),
            british_sign_language: true,
            ..v1::Needs::default()
        };
        let mut updated = case_updated(&contact.to_string());
        if let Some(v1::event::Payload::CaseUpdated(payload)) = &mut updated.event.payload {
            payload.needs = Some(needs.clone());
        }
        let mut opened = updated.clone();
        opened.event.r#type = event_types::CASE_OPENED.to_owned();
        opened.event.payload = Some(v1::event::Payload::CaseOpened(v1::CaseOpened {
            reference: "CS-7K3MQ-9XD2H".to_owned(),
            contact_id: contact.to_string(),
            needs: Some(needs),
            ..v1::CaseOpened::default()
        }));
        for envelope in [opened, updated] {
            match decode(&envelope) {
                Ok(Message::Event(inbound)) => match *inbound {
                    Inbound::CaseContext {
                        needs: Some(needs), ..
                    } => {
                        assert!(needs.british_sign_language);
                        assert_eq!(needs.language.as_deref(), Some("cy"));
                    }
                    other => panic!("expected case context with needs, got {other:?}"),
                },
                other => panic!("expected an event, got {other:?}"),
            }
        }
        // An event from before needs travelled says nothing of them.
        assert!(matches!(
            decode(&case_updated(&contact.to_string())),
            Ok(Message::Event(inbound)) if matches!(*inbound, Inbound::CaseContext { needs: None, .. })
        ));
    }

    #[test]
    fn referrals_are_ignored() {
        for (event_type, payload) in [
            (
                event_types::CASE_REFERRED,
                v1::event::Payload::CaseReferred(v1::CaseReferred::default()),
            ),
            (
                event_types::CASE_REFERRAL_OUTCOME,
                v1::event::Payload::CaseReferralOutcome(v1::CaseReferralOutcome::default()),
            ),
        ] {
            let envelope = Envelope {
                event: v1::Event {
                    id: Uuid::now_v7().to_string(),
                    r#type: event_type.to_owned(),
                    payload: Some(payload),
                    ..v1::Event::default()
                },
                traceparent: None,
            };
            assert!(matches!(
                decode(&envelope),
                Ok(Message::Event(inbound)) if matches!(*inbound, Inbound::Ignored { .. })
            ));
        }
    }
}
