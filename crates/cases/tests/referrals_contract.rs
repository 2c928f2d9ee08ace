//! The referrals contract, run against PostgreSQL and SQLite: signposts and
//! referrals to partners in the shipped directory, consent, outcomes the
//! partner reports back, and the events each writes to the outbox.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use prost::Message as _;
use switchboard_cases::{
    CaseKey, CaseStatus, CasesError, CasesStore, Consent, NewReferral, ReferralError, ReferralId,
    ReferralOutcome, ReferralStatus, StatusChange,
};
use switchboard_domain::{CaseId, Channel, PartnerId, ReferralKind};
use switchboard_proto::v1;

use common::{ContactBuilder, now};

/// In the shipped directory: a signpost, and a referral that shares details.
const SIGNPOST_PARTNER: &str = "shelter";
const REFERRAL_PARTNER: &str = "citizens-advice";

async fn open_case(store: &dyn CasesStore, phone: &str) -> CaseId {
    let contact = ContactBuilder::new(Channel::Phone, "homelessness")
        .caller(phone)
        .build();
    store.apply_contacts(&[contact]).await.unwrap()[0]
        .applied()
        .unwrap()
        .case_id
}

fn referral(case_id: CaseId, partner: &str, consent: Option<&str>) -> NewReferral {
    NewReferral {
        case_id,
        partner_id: PartnerId::parse(partner).unwrap(),
        consent: consent.map(|statement| Consent {
            statement: statement.to_owned(),
            given_at: now(),
        }),
        note: "resident at risk of eviction next month".to_owned(),
        made_by: "agent-ada".to_owned(),
    }
}

fn outcome(referral_id: ReferralId, status: ReferralStatus, note: &str) -> ReferralOutcome {
    ReferralOutcome {
        referral_id,
        status,
        note: note.to_owned(),
        reported_by: "agent-bo".to_owned(),
    }
}

/// Referral events in the outbox, in the order written.
async fn referral_events(store: &dyn CasesStore) -> Vec<(String, v1::event::Payload)> {
    store
        .fetch_unsent(10_000)
        .await
        .unwrap()
        .iter()
        .map(|record| v1::Event::decode(record.body.as_slice()).unwrap())
        .filter(|event| event.r#type.starts_with("case.referr"))
        .map(|event| (event.r#type, event.payload.unwrap()))
        .collect()
}

async fn a_signpost_needs_no_consent_and_is_published(store: &dyn CasesStore) {
    let case_id = open_case(store, "07700 900301").await;
    let made = store
        .make_referral(&referral(case_id, SIGNPOST_PARTNER, None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(made.case_id, case_id);
    assert_eq!(made.partner_id.as_str(), SIGNPOST_PARTNER);
    assert_eq!(made.kind, ReferralKind::Signpost);
    assert_eq!(made.consent, None);
    assert_eq!(made.status, ReferralStatus::Made);
    assert_eq!(made.made_by, "agent-ada");
    assert_eq!(made.outcome_reported_at, None);

    let case = store.get_case(&CaseKey::Id(case_id)).await.unwrap().unwrap();
    let events = referral_events(store).await;
    assert_eq!(events.len(), 1);
    let (event_type, payload) = &events[0];
    assert_eq!(event_type, "case.referred");
    let v1::event::Payload::CaseReferred(referred) = payload else {
        panic!("expected case.referred, got {payload:?}");
    };
    assert_eq!(
        referred,
        &v1::CaseReferred {
            case_id: case_id.to_string(),
            reference: case.reference.as_str().to_owned(),
            service: "homelessness".to_owned(),
            referral_id: made.id.to_string(),
            partner_id: SIGNPOST_PARTNER.to_owned(),
            kind: "signpost".to_owned(),
            consent_recorded: false,
        }
    );
}

async fn a_referral_that_shares_details_needs_consent(store: &dyn CasesStore) {
    let case_id = open_case(store, "07700 900302").await;
    let refused = store
        .make_referral(&referral(case_id, REFERRAL_PARTNER, None))
        .await;
    assert!(
        matches!(refused, Err(CasesError::Referral(ReferralError::ConsentRequired { ref partner_id, .. })) if partner_id.as_str() == REFERRAL_PARTNER),
        "{refused:?}"
    );
    let detail = store.case_detail(&CaseKey::Id(case_id)).await.unwrap().unwrap();
    assert!(detail.referrals.is_empty(), "nothing stored");
    assert!(referral_events(store).await.is_empty(), "nothing published");

    let statement = "name, phone number and the council tax arrears";
    let made = store
        .make_referral(&referral(case_id, REFERRAL_PARTNER, Some(statement)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(made.kind, ReferralKind::Referral);
    assert_eq!(
        made.consent.as_ref().map(|consent| consent.statement.as_str()),
        Some(statement)
    );
    let stored = store
        .case_detail(&CaseKey::Id(case_id))
        .await
        .unwrap()
        .unwrap()
        .referrals;
    assert_eq!(
        stored,
        std::slice::from_ref(&made),
        "stored as made, consent and all"
    );

    let events = referral_events(store).await;
    assert!(
        matches!(&events[..], [(_, v1::event::Payload::CaseReferred(referred))]
            if referred.consent_recorded && referred.kind == "referral" && referred.referral_id == made.id.to_string()),
        "{events:?}"
    );
    // The statement is the resident's business: it stays in the store.
    let bodies = store.fetch_unsent(10_000).await.unwrap();
    assert!(
        bodies
            .iter()
            .all(|record| !String::from_utf8_lossy(&record.body).contains("arrears"))
    );
}

async fn a_signpost_may_record_consent(store: &dyn CasesStore) {
    let case_id = open_case(store, "07700 900303").await;
    let made = store
        .make_referral(&referral(
            case_id,
            SIGNPOST_PARTNER,
            Some("happy for Shelter to be told"),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(made.kind, ReferralKind::Signpost);
    assert!(made.consent.is_some());
    assert!(matches!(
        &referral_events(store).await[..],
        [(_, v1::event::Payload::CaseReferred(referred))] if referred.consent_recorded
    ));
}

async fn an_unknown_partner_or_a_closed_case_is_refused(store: &dyn CasesStore) {
    let case_id = open_case(store, "07700 900304").await;
    let unknown = store
        .make_referral(&referral(case_id, "nowhere-food-bank", Some("anything")))
        .await;
    assert!(
        matches!(unknown, Err(CasesError::Referral(ReferralError::UnknownPartner(ref id))) if id.as_str() == "nowhere-food-bank"),
        "{unknown:?}"
    );

    for (to, reason) in [
        (CaseStatus::Resolved, "advice given"),
        (CaseStatus::Closed, "no further action"),
    ] {
        store
            .change_case_status(&StatusChange {
                case_id,
                to,
                reason: reason.to_owned(),
                actor: "agent-ada".to_owned(),
            })
            .await
            .unwrap()
            .unwrap();
    }
    let closed = store
        .make_referral(&referral(case_id, SIGNPOST_PARTNER, None))
        .await;
    assert!(
        matches!(closed, Err(CasesError::Referral(ReferralError::CaseClosed))),
        "{closed:?}"
    );
    let detail = store.case_detail(&CaseKey::Id(case_id)).await.unwrap().unwrap();
    assert!(detail.referrals.is_empty());
    assert!(referral_events(store).await.is_empty());
}

async fn a_referral_on_a_resolved_case_is_recorded(store: &dyn CasesStore) {
    let case_id = open_case(store, "07700 900305").await;
    store
        .change_case_status(&StatusChange {
            case_id,
            to: CaseStatus::Resolved,
            reason: "signposted at wrap-up".to_owned(),
            actor: "agent-ada".to_owned(),
        })
        .await
        .unwrap();
    assert!(
        store
            .make_referral(&referral(case_id, SIGNPOST_PARTNER, None))
            .await
            .unwrap()
            .is_some()
    );
}

async fn outcomes_move_made_to_accepted_to_completed_once(store: &dyn CasesStore) {
    let case_id = open_case(store, "07700 900306").await;
    let made = store
        .make_referral(&referral(case_id, REFERRAL_PARTNER, Some("name and phone")))
        .await
        .unwrap()
        .unwrap();

    let accepted = store
        .record_referral_outcome(&outcome(made.id, ReferralStatus::Accepted, "appointment booked"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(accepted.status, ReferralStatus::Accepted);
    assert_eq!(accepted.outcome_note.as_deref(), Some("appointment booked"));
    assert_eq!(accepted.outcome_reported_by.as_deref(), Some("agent-bo"));
    assert!(accepted.outcome_reported_at.is_some());
    assert_eq!(
        (accepted.made_at, &accepted.consent),
        (made.made_at, &made.consent),
        "what was made stays"
    );

    let declined = store
        .record_referral_outcome(&outcome(made.id, ReferralStatus::Declined, ""))
        .await;
    assert!(
        matches!(
            declined,
            Err(CasesError::Referral(ReferralError::OutcomeAlreadyReported {
                current: ReferralStatus::Accepted
            }))
        ),
        "{declined:?}"
    );
    let completed = store
        .record_referral_outcome(&outcome(made.id, ReferralStatus::Completed, "debt plan agreed"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(completed.status, ReferralStatus::Completed);
    for status in [ReferralStatus::Completed, ReferralStatus::NoContact] {
        let again = store
            .record_referral_outcome(&outcome(made.id, status, "again"))
            .await;
        assert!(
            matches!(
                again,
                Err(CasesError::Referral(ReferralError::OutcomeAlreadyReported {
                    current: ReferralStatus::Completed
                }))
            ),
            "{again:?}"
        );
    }
    let made_again = store
        .record_referral_outcome(&outcome(made.id, ReferralStatus::Made, ""))
        .await;
    assert!(matches!(
        made_again,
        Err(CasesError::Referral(ReferralError::NotAnOutcome(
            ReferralStatus::Made
        )))
    ));

    let stored = store
        .case_detail(&CaseKey::Id(case_id))
        .await
        .unwrap()
        .unwrap()
        .referrals;
    assert_eq!(stored, [completed]);
    let statuses: Vec<(String, i32)> = referral_events(store)
        .await
        .into_iter()
        .filter_map(|(event_type, payload)| match payload {
            v1::event::Payload::CaseReferralOutcome(reported) => {
                assert_eq!(reported.case_id, case_id.to_string());
                assert_eq!(reported.referral_id, made.id.to_string());
                assert_eq!(reported.partner_id, REFERRAL_PARTNER);
                Some((event_type, reported.status))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (
                "case.referral_outcome".to_owned(),
                v1::ReferralStatus::Accepted as i32
            ),
            (
                "case.referral_outcome".to_owned(),
                v1::ReferralStatus::Completed as i32
            ),
        ]
    );
}

async fn case_detail_lists_referrals_oldest_first(store: &dyn CasesStore) {
    let case_id = open_case(store, "07700 900307").await;
    let other_case = open_case(store, "07700 900308").await;
    let mut made = Vec::new();
    for partner in [SIGNPOST_PARTNER, REFERRAL_PARTNER, "streetlink"] {
        made.push(
            store
                .make_referral(&referral(case_id, partner, Some("name and address")))
                .await
                .unwrap()
                .unwrap(),
        );
        // Apart in time, so the order is by when each was made.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    store
        .make_referral(&referral(other_case, SIGNPOST_PARTNER, None))
        .await
        .unwrap()
        .unwrap();
    let detail = store.case_detail(&CaseKey::Id(case_id)).await.unwrap().unwrap();
    assert_eq!(detail.referrals, made);
    assert!(detail.referrals[0].made_at < detail.referrals[2].made_at);
    let other = store
        .case_detail(&CaseKey::Id(other_case))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.referrals.len(), 1);
}

async fn an_unknown_case_or_referral_gives_none(store: &dyn CasesStore) {
    assert!(
        store
            .make_referral(&referral(CaseId::new(), SIGNPOST_PARTNER, None))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .record_referral_outcome(&outcome(ReferralId::new(), ReferralStatus::Accepted, ""))
            .await
            .unwrap()
            .is_none()
    );
    assert!(referral_events(store).await.is_empty());
}

contract_suite!(
    a_signpost_needs_no_consent_and_is_published,
    a_referral_that_shares_details_needs_consent,
    a_signpost_may_record_consent,
    an_unknown_partner_or_a_closed_case_is_refused,
    a_referral_on_a_resolved_case_is_recorded,
    outcomes_move_made_to_accepted_to_completed_once,
    case_detail_lists_referrals_oldest_first,
    an_unknown_case_or_referral_gives_none,
);
