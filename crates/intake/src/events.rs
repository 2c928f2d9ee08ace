//! The `contact.received` event a stored contact is announced with.
//!
//! The payload carries no personal data (channel, service, needs, where it came
//! in), so the analytics stream can be read as it is; the resident's details
//! travel sealed for the event's id, readable only with the event key.

use prost::Message;
use switchboard_bus::Sealer;
use switchboard_domain::{ContactOrigin, EventId, NewContact};
use switchboard_proto::event_types::CONTACT_RECEIVED;
use switchboard_proto::v1::{self, event::Payload};

use crate::store::OutboxEntry;
use switchboard_runtime::wire::{channel_to_proto, customer_to_proto, needs_to_proto, timestamp};

/// The publishing service, in every event's `source`.
pub const EVENT_SOURCE: &str = "intake";

/// The outbox row for a new contact, carrying the current span's trace context
/// so the consumers' spans join the submission's trace.
pub fn contact_received_entry(contact: &NewContact, sealer: &Sealer) -> OutboxEntry {
    let event_id = EventId::new();
    let event = contact_received_event(event_id, contact, sealer);
    OutboxEntry {
        event_id: event_id.as_uuid(),
        event_type: CONTACT_RECEIVED.to_owned(),
        body: event.encode_to_vec(),
        traceparent: switchboard_bus::trace::current_traceparent(),
    }
}

pub fn contact_received_event(event_id: EventId, new_contact: &NewContact, sealer: &Sealer) -> v1::Event {
    let contact = &new_contact.contact;
    let (office_id, form_id, dialled_number) = match &contact.origin {
        ContactOrigin::FaceToFace { office_id, .. } => {
            (office_id.as_str().to_owned(), String::new(), String::new())
        }
        ContactOrigin::Web { form_id, .. } => {
            (String::new(), form_id.clone().unwrap_or_default(), String::new())
        }
        // The council's own number: which line the resident chose, not who they are.
        ContactOrigin::Phone { dialled_number, .. } => (
            String::new(),
            String::new(),
            dialled_number.clone().unwrap_or_default(),
        ),
        ContactOrigin::None => (String::new(), String::new(), String::new()),
    };
    let received_at = timestamp(new_contact.received_at);
    let id = event_id.as_uuid().to_string();
    // Sealed for this event id (the AEAD's associated data), so the blob cannot
    // be moved onto another event.
    let sealed_personal_data = sealer.seal(&id, &personal_data(new_contact));
    v1::Event {
        id,
        r#type: CONTACT_RECEIVED.to_owned(),
        occurred_at: Some(received_at),
        source: EVENT_SOURCE.to_owned(),
        subject: new_contact.id.as_uuid().to_string(),
        sealed_personal_data: Some(sealed_personal_data),
        payload: Some(Payload::ContactReceived(v1::ContactReceived {
            contact_id: new_contact.id.as_uuid().to_string(),
            reference: new_contact.reference.as_str().to_owned(),
            channel: channel_to_proto(contact.channel) as i32,
            service: contact.service.as_str().to_owned(),
            needs: Some(needs_to_proto(&contact.needs)),
            received_at: Some(received_at),
            office_id,
            form_id,
            dialled_number,
        })),
    }
}

/// What a consumer may need of the resident: their details, what they said, and
/// the channel facts that identify them (caller number, page, desk).
pub(crate) fn personal_data(new_contact: &NewContact) -> v1::PersonalData {
    let contact = &new_contact.contact;
    let mut data = v1::PersonalData {
        customer: Some(customer_to_proto(&contact.customer)),
        summary: contact.summary.clone(),
        details: contact.details.clone(),
        phone: None,
        web: None,
        face_to_face: None,
    };
    match &contact.origin {
        ContactOrigin::None => {}
        ContactOrigin::Phone {
            caller_number,
            dialled_number,
            call_id,
        } => {
            data.phone = Some(v1::PhoneOrigin {
                caller_number: caller_number
                    .as_ref()
                    .map(|number| number.as_e164().to_owned())
                    .unwrap_or_default(),
                dialled_number: dialled_number.clone().unwrap_or_default(),
                call_id: call_id.clone().unwrap_or_default(),
            });
        }
        ContactOrigin::Web { form_id, page_url } => {
            data.web = Some(v1::WebOrigin {
                form_id: form_id.clone().unwrap_or_default(),
                page_url: page_url.clone().unwrap_or_default(),
            });
        }
        ContactOrigin::FaceToFace { office_id, desk } => {
            data.face_to_face = Some(v1::FaceToFaceOrigin {
                office_id: office_id.as_str().to_owned(),
                desk: desk.clone().unwrap_or_default(),
            });
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use switchboard_bus::EventKey;
    use switchboard_domain::{Catalogue, NewContact};
    use switchboard_proto::v1::submit_contact_request::Origin;

    use super::*;
    use crate::convert::contact_draft;

    fn contact() -> NewContact {
        let request = v1::SubmitContactRequest {
            channel: v1::Channel::Phone as i32,
            service: "council-tax".to_owned(),
            customer: Some(v1::Customer {
                name: "Ada Lovelace".to_owned(),
                phone: "023 8028 5000".to_owned(),
                email: "ada@example.org".to_owned(),
                postcode: "SO43 7PN".to_owned(),
                address_line: "1 Appletree Court".to_owned(),
                uprn: "100060".to_owned(),
            }),
            summary: "Secret summary".to_owned(),
            details: BTreeMap::from([("account".to_owned(), "87654321".to_owned())]),
            needs: Some(v1::Needs {
                british_sign_language: true,
                ..Default::default()
            }),
            idempotency_key: String::new(),
            origin: Some(Origin::Phone(v1::PhoneOrigin {
                caller_number: "07700 900123".to_owned(),
                dialled_number: "01234 567890".to_owned(),
                call_id: "call-9".to_owned(),
            })),
        };
        let catalogue = Catalogue::embedded().expect("catalogue");
        NewContact::new(contact_draft(request).validate(&catalogue).expect("valid"))
    }

    #[test]
    fn the_payload_holds_no_personal_data_and_the_sealed_part_opens() {
        let sealer = Sealer::new(vec![EventKey::generate("k1")]).expect("sealer");
        let contact = contact();
        let event_id = EventId::new();
        let event = contact_received_event(event_id, &contact, &sealer);

        assert_eq!(event.r#type, "contact.received");
        assert_eq!(event.source, "intake");
        assert_eq!(event.subject, contact.id.as_uuid().to_string());
        let Some(Payload::ContactReceived(received)) = &event.payload else {
            panic!("payload")
        };
        assert_eq!(received.reference, contact.reference.as_str());
        assert_eq!(received.service, "council-tax");
        assert_eq!(received.channel, v1::Channel::Phone as i32);
        assert_eq!(received.dialled_number, "01234 567890");
        assert!(
            received
                .needs
                .as_ref()
                .is_some_and(|needs| needs.british_sign_language)
        );

        // Nothing the resident gave appears anywhere in the encoded event.
        let bytes = event.encode_to_vec();
        for personal in [
            "Ada",
            "ada@example.org",
            "+442380285000",
            "+447700900123",
            "SO43",
            "Appletree",
            "Secret",
            "87654321",
            "call-9",
        ] {
            assert!(
                !bytes
                    .windows(personal.len())
                    .any(|window| window == personal.as_bytes()),
                "{personal} leaked"
            );
        }

        let sealed = event.sealed_personal_data.as_ref().expect("sealed");
        let opened = sealer.open(&event.id, sealed).expect("opens with the event id");
        let customer = opened.customer.expect("customer");
        assert_eq!(customer.phone, "+442380285000");
        assert_eq!(customer.email, "ada@example.org");
        assert_eq!(opened.summary, "Secret summary");
        assert_eq!(opened.phone.expect("phone origin").caller_number, "+447700900123");
        assert!(
            sealer
                .open(&EventId::new().as_uuid().to_string(), sealed)
                .is_err(),
            "bound to its event"
        );
    }
}
