//! From a bus message to an [`IncomingContact`]: decode the event, open its
//! sealed personal data, and parse every value into its domain type.
//!
//! A message that fails here can never succeed, so the consumer dead-letters
//! it with the reason returned. Reasons name fields and ids, never values:
//! they are stored with the dead letter and read by operators.

use std::collections::BTreeMap;

use switchboard_bus::{Envelope, Sealer};
use switchboard_domain::{
    Channel, ContactId, ContactOrigin, ContactReference, CustomerDetails, EmailAddress, EventId, OfficeId,
    PersonName, PhoneNumber, Postcode, ServiceId, Uprn,
};
use switchboard_proto::{event_types, v1};

use crate::lifecycle::{ContactOutcome, IncomingOutcome};
use crate::model::{IncomingContact, to_micros};
use crate::wire::{channel_from_proto, from_timestamp};
use switchboard_runtime::wire::needs_from_proto;

/// What a message on the cases queue is to this consumer.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A `contact.received` to apply.
    Contact(Box<IncomingContact>),
    /// A `contact.completed`: the contact's wrap-up disposition.
    Outcome(IncomingOutcome),
    /// Another `contact.*` event the case store does not act on.
    Ignored,
}

/// Decodes one message, or says why it can never be applied.
pub(crate) fn decode(envelope: &Envelope, sealer: &Sealer) -> Result<Inbound, String> {
    let event = &envelope.event;
    if event.r#type == event_types::CONTACT_COMPLETED {
        return decode_outcome(envelope).map(Inbound::Outcome);
    }
    if event.r#type != event_types::CONTACT_RECEIVED {
        return Ok(Inbound::Ignored);
    }
    let event_id = EventId::parse(&event.id).map_err(|_| "event id is not a uuid".to_owned())?;
    let Some(v1::event::Payload::ContactReceived(received)) = &event.payload else {
        return Err("contact.received event without a contact_received payload".to_owned());
    };
    let sealed = event
        .sealed_personal_data
        .as_ref()
        .ok_or_else(|| "contact.received event without sealed personal data".to_owned())?;
    let personal = sealer
        .open(&event.id, sealed)
        .map_err(|error| format!("sealed personal data cannot be opened: {error}"))?;

    let contact_id =
        ContactId::parse(&received.contact_id).map_err(|_| "contact_id is not a uuid".to_owned())?;
    let reference =
        ContactReference::parse(&received.reference).map_err(|error| format!("reference: {error}"))?;
    let channel =
        channel_from_proto(received.channel).ok_or_else(|| "channel is unspecified or unknown".to_owned())?;
    let service = ServiceId::parse(&received.service).map_err(|error| format!("service: {error}"))?;
    let received_at = received
        .received_at
        .as_ref()
        .or(event.occurred_at.as_ref())
        .and_then(from_timestamp)
        .ok_or_else(|| "received_at is missing or out of range".to_owned())?;

    let customer = customer_details(personal.customer.as_ref().unwrap_or(&v1::Customer::default()))?;
    let origin = origin(channel, received, &personal)?;
    Ok(Inbound::Contact(Box::new(IncomingContact {
        event_id,
        traceparent: envelope.traceparent.clone(),
        contact_id,
        reference,
        received_at: to_micros(received_at),
        channel,
        service,
        customer,
        summary: personal.summary,
        details: personal.details.into_iter().collect::<BTreeMap<_, _>>(),
        needs: received.needs.as_ref().map(needs_from_proto).unwrap_or_default(),
        origin,
    })))
}

fn decode_outcome(envelope: &Envelope) -> Result<IncomingOutcome, String> {
    let event = &envelope.event;
    let event_id = EventId::parse(&event.id).map_err(|_| "event id is not a uuid".to_owned())?;
    let Some(v1::event::Payload::ContactCompleted(completed)) = &event.payload else {
        return Err("contact.completed event without a contact_completed payload".to_owned());
    };
    let contact_id =
        ContactId::parse(&completed.contact_id).map_err(|_| "contact_id is not a uuid".to_owned())?;
    if completed.disposition.trim().is_empty() {
        return Err("contact.completed event without a disposition".to_owned());
    }
    let completed_at = event
        .occurred_at
        .as_ref()
        .and_then(from_timestamp)
        .ok_or_else(|| "occurred_at is missing or out of range".to_owned())?;
    Ok(IncomingOutcome {
        event_id,
        traceparent: envelope.traceparent.clone(),
        contact_id,
        outcome: ContactOutcome {
            disposition: completed.disposition.clone(),
            partner: non_empty(&completed.partner),
            completed_at: to_micros(completed_at),
        },
    })
}

/// Intake validated these values; parsing them again restores the domain
/// types (and their normalised forms). A value that no longer parses makes
/// the message unusable rather than being silently dropped.
fn customer_details(customer: &v1::Customer) -> Result<CustomerDetails, String> {
    fn optional<T>(
        field: &str,
        input: &str,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        if input.trim().is_empty() {
            return Ok(None);
        }
        parse(input)
            .map(Some)
            .map_err(|error| format!("customer.{field}: {error}"))
    }
    let address_line = customer.address_line.trim();
    Ok(CustomerDetails {
        name: optional("name", &customer.name, PersonName::parse)?,
        phone: optional("phone", &customer.phone, phone_number)?,
        email: optional("email", &customer.email, EmailAddress::parse)?,
        postcode: optional("postcode", &customer.postcode, Postcode::parse)?,
        address_line: (!address_line.is_empty()).then(|| address_line.to_owned()),
        uprn: optional("uprn", &customer.uprn, Uprn::parse)?,
    })
}

/// Intake sends numbers already normalised, which are cheap to check; anything
/// else is parsed in full.
fn phone_number(value: &str) -> Result<PhoneNumber, String> {
    PhoneNumber::from_e164(value).or_else(|_| PhoneNumber::parse(value))
}

fn non_empty(value: &str) -> Option<String> {
    let trimmed = value.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// The channel's facts come in two halves: what identifies nobody travels in
/// the clear payload (office, form, dialled number), what may identify the
/// resident travels sealed (caller number, call id, page URL, desk).
fn origin(
    channel: Channel,
    received: &v1::ContactReceived,
    personal: &v1::PersonalData,
) -> Result<ContactOrigin, String> {
    Ok(match channel {
        Channel::Phone => {
            let phone = personal.phone.clone().unwrap_or_default();
            ContactOrigin::Phone {
                // A withheld or malformed CLI is common on phone networks and
                // says nothing bad about the contact: treat it as absent.
                caller_number: phone_number(&phone.caller_number).ok(),
                dialled_number: non_empty(&received.dialled_number)
                    .or_else(|| non_empty(&phone.dialled_number)),
                call_id: non_empty(&phone.call_id),
            }
        }
        Channel::Web => {
            let web = personal.web.clone().unwrap_or_default();
            ContactOrigin::Web {
                form_id: non_empty(&received.form_id).or_else(|| non_empty(&web.form_id)),
                page_url: non_empty(&web.page_url),
            }
        }
        Channel::FaceToFace => {
            let visit = personal.face_to_face.clone().unwrap_or_default();
            match non_empty(&received.office_id).or_else(|| non_empty(&visit.office_id)) {
                Some(office_id) => ContactOrigin::FaceToFace {
                    office_id: OfficeId::parse(&office_id).map_err(|error| format!("office_id: {error}"))?,
                    desk: non_empty(&visit.desk),
                },
                None => ContactOrigin::None,
            }
        }
        Channel::Email | Channel::Letter => ContactOrigin::None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_bus::EventKey;

    fn sealer() -> Sealer {
        Sealer::new(vec![EventKey::new("key-1", [7; 32])]).expect("sealer")
    }

    fn event(sealer: &Sealer, channel: v1::Channel, personal: &v1::PersonalData) -> Envelope {
        let id = EventId::new().to_string();
        let event = v1::Event {
            id: id.clone(),
            r#type: event_types::CONTACT_RECEIVED.to_owned(),
            occurred_at: Some(pbjson_types::Timestamp {
                seconds: 1_750_000_000,
                nanos: 123_456_789,
            }),
            source: "intake".to_owned(),
            subject: String::new(),
            sealed_personal_data: Some(sealer.seal(&id, personal)),
            payload: Some(v1::event::Payload::ContactReceived(v1::ContactReceived {
                contact_id: ContactId::new().to_string(),
                reference: "sb-7k3mq-9xd10".to_owned(),
                channel: channel as i32,
                service: "council-tax".to_owned(),
                needs: Some(v1::Needs {
                    language: " PT-BR ".to_owned(),
                    vulnerable: true,
                    ..Default::default()
                }),
                received_at: None,
                office_id: "lymington-town-hall".to_owned(),
                form_id: String::new(),
                dialled_number: String::new(),
            })),
        };
        Envelope {
            event,
            traceparent: Some("00-trace-span-01".to_owned()),
        }
    }

    fn decoded(envelope: &Envelope, sealer: &Sealer) -> IncomingContact {
        match decode(envelope, sealer) {
            Ok(Inbound::Contact(contact)) => *contact,
            other => panic!("expected a contact, got {other:?}"),
        }
    }

    #[test]
    fn a_phone_contact_decodes_with_its_caller_number_and_normalised_values() {
        let sealer = sealer();
        let personal = v1::PersonalData {
            customer: Some(v1::Customer {
                name: "  Ada   Lovelace ".to_owned(),
                postcode: "so43 7pn".to_owned(),
                ..Default::default()
            }),
            summary: "council tax bill".to_owned(),
            phone: Some(v1::PhoneOrigin {
                caller_number: "07700 900123".to_owned(),
                dialled_number: "01590 646111".to_owned(),
                call_id: "c-1".to_owned(),
            }),
            ..Default::default()
        };
        let envelope = event(&sealer, v1::Channel::Phone, &personal);
        let contact = decoded(&envelope, &sealer);
        assert_eq!(contact.reference.as_str(), "SB-7K3MQ-9XD10");
        assert_eq!(contact.channel, Channel::Phone);
        assert_eq!(
            contact.customer.name.as_ref().map(PersonName::as_str),
            Some("Ada Lovelace")
        );
        assert_eq!(
            contact.customer.postcode.as_ref().map(Postcode::as_str),
            Some("SO43 7PN")
        );
        assert_eq!(
            contact.identifying_phone().map(PhoneNumber::as_e164),
            Some("+447700900123")
        );
        assert_eq!(contact.needs.language.as_deref(), Some("pt-br"));
        assert!(!contact.needs.vulnerable, "never recorded without consent");
        assert_eq!(
            contact.received_at.timestamp_subsec_nanos(),
            123_456_000,
            "kept to the microsecond"
        );
        assert_eq!(contact.traceparent.as_deref(), Some("00-trace-span-01"));
        assert!(
            matches!(contact.origin, ContactOrigin::Phone { ref call_id, .. } if call_id.as_deref() == Some("c-1"))
        );
    }

    #[test]
    fn a_withheld_caller_number_is_absent_not_an_error() {
        let sealer = sealer();
        let personal = v1::PersonalData {
            phone: Some(v1::PhoneOrigin {
                caller_number: "withheld".to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let contact = decoded(&event(&sealer, v1::Channel::Phone, &personal), &sealer);
        assert!(contact.identifying_phone().is_none());
    }

    #[test]
    fn a_face_to_face_visit_takes_its_office_from_the_clear_payload() {
        let sealer = sealer();
        let personal = v1::PersonalData {
            face_to_face: Some(v1::FaceToFaceOrigin {
                office_id: String::new(),
                desk: "desk 3".to_owned(),
            }),
            ..Default::default()
        };
        let contact = decoded(&event(&sealer, v1::Channel::FaceToFace, &personal), &sealer);
        assert!(matches!(
            contact.origin,
            ContactOrigin::FaceToFace { ref office_id, ref desk }
                if office_id.as_str() == "lymington-town-hall" && desk.as_deref() == Some("desk 3")
        ));
        assert_eq!(contact.customer, CustomerDetails::default());
    }

    #[test]
    fn other_contact_events_are_ignored() {
        let sealer = sealer();
        let mut envelope = event(&sealer, v1::Channel::Web, &v1::PersonalData::default());
        envelope.event.r#type = "contact.queued".to_owned();
        assert!(matches!(decode(&envelope, &sealer), Ok(Inbound::Ignored)));
    }

    #[test]
    fn unusable_messages_are_refused_with_a_reason_free_of_personal_data() {
        let sealer = sealer();
        let personal = v1::PersonalData {
            customer: Some(v1::Customer {
                email: "ada-at-example".to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let bad_email = event(&sealer, v1::Channel::Web, &personal);
        let reason = decode(&bad_email, &sealer).expect_err("bad email");
        assert!(
            reason.starts_with("customer.email:") && !reason.contains("ada"),
            "{reason}"
        );

        let other_key = Sealer::new(vec![EventKey::new("key-2", [9; 32])]).expect("sealer");
        let foreign = event(&other_key, v1::Channel::Web, &v1::PersonalData::default());
        let reason = decode(&foreign, &sealer).expect_err("unknown key");
        assert!(
            reason.contains("sealed personal data cannot be opened"),
            "{reason}"
        );

        let mut moved = event(&sealer, v1::Channel::Web, &v1::PersonalData::default());
        moved.event.id = EventId::new().to_string();
        assert!(
            decode(&moved, &sealer)
                .expect_err("moved seal")
                .contains("cannot be opened")
        );

        let mut unspecified = event(&sealer, v1::Channel::Web, &v1::PersonalData::default());
        if let Some(v1::event::Payload::ContactReceived(received)) = &mut unspecified.event.payload {
            received.channel = v1::Channel::Unspecified as i32;
        }
        assert!(
            decode(&unspecified, &sealer)
                .expect_err("no channel")
                .contains("channel")
        );

        let mut unsealed = event(&sealer, v1::Channel::Web, &v1::PersonalData::default());
        unsealed.event.sealed_personal_data = None;
        assert!(
            decode(&unsealed, &sealer)
                .expect_err("unsealed")
                .contains("without sealed personal data")
        );
    }
}
