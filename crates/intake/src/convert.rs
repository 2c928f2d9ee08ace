//! Wire types to domain types and back, at the edge.
//!
//! Both sides are foreign to this crate (`switchboard_proto`, `switchboard_domain`),
//! so the orphan rule rules out `From` impls between them: these are plain
//! functions instead. The conversion into a draft cannot fail: every rule
//! (including "channel must be given") is checked by `ContactDraft::validate`,
//! which names every failing field at once.

use switchboard_domain::contact::{RawCustomer, RawNeeds, RawOrigin};
use switchboard_domain::{Channel, ContactDraft, CustomerDetails, Needs};
use switchboard_proto::v1::{self, submit_contact_request::Origin};

/// A raw draft from a submission. The idempotency key is not part of the
/// contact; the caller takes it out first.
pub fn contact_draft(request: v1::SubmitContactRequest) -> ContactDraft {
    let customer = request.customer.unwrap_or_default();
    let needs = request.needs.unwrap_or_default();
    ContactDraft {
        channel: domain_channel(request.channel),
        service: request.service,
        customer: RawCustomer {
            name: customer.name,
            phone: customer.phone,
            email: customer.email,
            postcode: customer.postcode,
            address_line: customer.address_line,
            uprn: customer.uprn,
        },
        summary: request.summary,
        details: request.details,
        needs: RawNeeds {
            language: needs.language,
            british_sign_language: needs.british_sign_language,
            interpreter: needs.interpreter,
            large_print: needs.large_print,
            hearing_loop: needs.hearing_loop,
            assisted_digital: needs.assisted_digital,
            wheelchair_access: needs.wheelchair_access,
            vulnerable: needs.vulnerable,
            vulnerability_consent: needs.vulnerability_consent,
        },
        origin: match request.origin {
            None => RawOrigin::None,
            Some(Origin::Phone(phone)) => RawOrigin::Phone {
                caller_number: phone.caller_number,
                dialled_number: phone.dialled_number,
                call_id: phone.call_id,
            },
            Some(Origin::Web(web)) => RawOrigin::Web {
                form_id: web.form_id,
                page_url: web.page_url,
            },
            Some(Origin::FaceToFace(visit)) => RawOrigin::FaceToFace {
                office_id: visit.office_id,
                desk: visit.desk,
            },
        },
    }
}

/// `None` for `CHANNEL_UNSPECIFIED` and for numbers this build does not know:
/// validation then names the field `channel`.
pub fn domain_channel(wire: i32) -> Option<Channel> {
    match v1::Channel::try_from(wire).ok()? {
        v1::Channel::Unspecified => None,
        v1::Channel::Phone => Some(Channel::Phone),
        v1::Channel::Web => Some(Channel::Web),
        v1::Channel::FaceToFace => Some(Channel::FaceToFace),
        v1::Channel::Email => Some(Channel::Email),
        v1::Channel::Letter => Some(Channel::Letter),
    }
}

pub fn wire_channel(channel: Channel) -> v1::Channel {
    match channel {
        Channel::Phone => v1::Channel::Phone,
        Channel::Web => v1::Channel::Web,
        Channel::FaceToFace => v1::Channel::FaceToFace,
        Channel::Email => v1::Channel::Email,
        Channel::Letter => v1::Channel::Letter,
    }
}

pub fn wire_needs(needs: &Needs) -> v1::Needs {
    v1::Needs {
        language: needs.language.clone().unwrap_or_default(),
        british_sign_language: needs.british_sign_language,
        interpreter: needs.interpreter,
        large_print: needs.large_print,
        hearing_loop: needs.hearing_loop,
        assisted_digital: needs.assisted_digital,
        wheelchair_access: needs.wheelchair_access,
        vulnerable: needs.vulnerable,
        vulnerability_consent: needs.vulnerability_consent,
    }
}

/// The normalised customer details (E.164 phone, lowercase email, formatted
/// postcode), as consumers should see them.
pub fn wire_customer(customer: &CustomerDetails) -> v1::Customer {
    v1::Customer {
        name: customer
            .name
            .as_ref()
            .map(|name| name.as_str().to_owned())
            .unwrap_or_default(),
        phone: customer
            .phone
            .as_ref()
            .map(|phone| phone.as_e164().to_owned())
            .unwrap_or_default(),
        email: customer
            .email
            .as_ref()
            .map(|email| email.as_str().to_owned())
            .unwrap_or_default(),
        postcode: customer
            .postcode
            .as_ref()
            .map(|postcode| postcode.as_str().to_owned())
            .unwrap_or_default(),
        address_line: customer.address_line.clone().unwrap_or_default(),
        uprn: customer
            .uprn
            .as_ref()
            .map(|uprn| uprn.as_str().to_owned())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_and_unknown_channels_become_none() {
        assert_eq!(domain_channel(v1::Channel::Unspecified as i32), None);
        assert_eq!(domain_channel(99), None);
        for channel in Channel::ALL {
            assert_eq!(domain_channel(wire_channel(channel) as i32), Some(channel));
        }
    }

    #[test]
    fn origin_follows_the_oneof() {
        let request = v1::SubmitContactRequest {
            origin: Some(Origin::FaceToFace(v1::FaceToFaceOrigin {
                office_id: "lymington-town-hall".to_owned(),
                desk: "2".to_owned(),
            })),
            ..Default::default()
        };
        match contact_draft(request).origin {
            RawOrigin::FaceToFace { office_id, desk } => {
                assert_eq!(office_id, "lymington-town-hall");
                assert_eq!(desk, "2");
            }
            other => panic!("unexpected origin {other:?}"),
        }
    }
}
