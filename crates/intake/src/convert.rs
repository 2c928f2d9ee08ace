//! Wire types to domain types and back, at the edge.
//!
//! Both sides are foreign to this crate (`switchboard_proto`, `switchboard_domain`),
//! so the orphan rule rules out `From` impls between them: these are plain
//! functions instead. The conversion into a draft cannot fail: every rule
//! (including "channel must be given") is checked by `ContactDraft::validate`,
//! which names every failing field at once.

use switchboard_domain::ContactDraft;
use switchboard_domain::contact::{RawCustomer, RawNeeds, RawOrigin};
use switchboard_proto::v1::{self, submit_contact_request::Origin};
use switchboard_runtime::wire::channel_from_proto;

/// A raw draft from a submission. The idempotency key is not part of the
/// contact; the caller takes it out first.
pub fn contact_draft(request: v1::SubmitContactRequest) -> ContactDraft {
    let customer = request.customer.unwrap_or_default();
    let needs = request.needs.unwrap_or_default();
    ContactDraft {
        channel: channel_from_proto(request.channel),
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

#[cfg(test)]
mod tests {
    use super::*;

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
