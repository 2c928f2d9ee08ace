//! The case lifecycle contract, run against PostgreSQL and SQLite: due dates,
//! re-opening and repeat contacts, status changes with their history, notes,
//! wrap-up outcomes from routing, and finding a resident by a reference.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use chrono::{DateTime, Duration, Utc};
use prost::Message as _;
use switchboard_cases::{
    AppliedContact, ApplyOutcome, CaseDetail, CaseKey, CaseStatus, CasesError, CasesStore, ContactOutcome,
    CustomerSearch, IncomingOutcome, QuotedReference, StatusChange, TransitionError,
};
use switchboard_domain::{CaseId, Channel, ContactId, EventId};
use switchboard_proto::v1;

use common::{ContactBuilder, now};

fn applied(outcomes: &[ApplyOutcome]) -> &AppliedContact {
    outcomes[0]
        .applied()
        .unwrap_or_else(|| panic!("expected an applied contact, got {outcomes:?}"))
}

async fn detail(store: &dyn CasesStore, case_id: CaseId) -> CaseDetail {
    store.case_detail(&CaseKey::Id(case_id)).await.unwrap().unwrap()
}

async fn outbox_payloads(store: &dyn CasesStore) -> Vec<v1::event::Payload> {
    store
        .fetch_unsent(10_000)
        .await
        .unwrap()
        .iter()
        .filter_map(|record| v1::Event::decode(record.body.as_slice()).unwrap().payload)
        .collect()
}

fn change(case_id: CaseId, to: CaseStatus, reason: &str) -> StatusChange {
    StatusChange {
        case_id,
        to,
        reason: reason.to_owned(),
        actor: "agent-ada".to_owned(),
    }
}

fn completed(contact_id: ContactId, disposition: &str, partner: Option<&str>) -> IncomingOutcome {
    IncomingOutcome {
        event_id: EventId::new(),
        traceparent: None,
        contact_id,
        outcome: ContactOutcome {
            disposition: disposition.to_owned(),
            partner: partner.map(str::to_owned),
            completed_at: now(),
        },
    }
}

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().with_timezone(&Utc)
}

async fn a_new_case_is_due_by_its_service_target_in_working_days(store: &dyn CasesStore) {
    // Friday 18 December 2026, evening. Council tax: 10 working days, with
    // Christmas Day, the Boxing Day substitute and New Year's Day off.
    let contact = ContactBuilder::new(Channel::Phone, "council-tax")
        .caller("07700 900201")
        .at(at("2026-12-18T18:00:00Z"))
        .build();
    let case_id = applied(&store.apply_contacts(&[contact]).await.unwrap()).case_id;
    let case = detail(store, case_id).await.case;
    assert_eq!(case.due_at, Some(at("2027-01-06T23:59:59Z")));
    // In summer the end of the day is 22:59:59 UTC. Missed bins: 2 days.
    let summer = ContactBuilder::new(Channel::Web, "missed-bins")
        .email("summer@example.org")
        .at(at("2026-07-02T09:00:00Z"))
        .build();
    let case_id = applied(&store.apply_contacts(&[summer]).await.unwrap()).case_id;
    let case = detail(store, case_id).await.case;
    // Thursday 2 July: due at the end of Monday 6 July, 23:59:59 BST.
    assert_eq!(case.due_at, Some(at("2026-07-06T22:59:59Z")));
    let opened = outbox_payloads(store)
        .await
        .into_iter()
        .find_map(|payload| match payload {
            v1::event::Payload::CaseOpened(opened) if opened.case_id == case_id.to_string() => Some(opened),
            _ => None,
        });
    assert!(
        opened.and_then(|opened| opened.due_at).is_some(),
        "case.opened carries the due date"
    );
}

async fn a_resolved_case_reopens_when_the_resident_comes_back_within_the_window(store: &dyn CasesStore) {
    let first = ContactBuilder::new(Channel::Phone, "missed-bins")
        .caller("07700 900202")
        .at(now() - Duration::hours(3))
        .build();
    let case_id = applied(&store.apply_contacts(&[first]).await.unwrap()).case_id;
    let resolved = store
        .change_case_status(&change(
            case_id,
            CaseStatus::Resolved,
            "crew sent back the same day",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resolved.case.status, CaseStatus::Resolved);
    assert_eq!(resolved.case.outcome.as_deref(), Some("resolved"));
    assert!(resolved.case.resolved_at.is_some());

    // The bin was still not emptied: the resident writes in.
    let again = ContactBuilder::new(Channel::Web, "missed-bins")
        .phone("07700 900202")
        .build();
    let outcome = store.apply_contacts(std::slice::from_ref(&again)).await.unwrap();
    let rejoined = applied(&outcome);
    assert_eq!(rejoined.case_id, case_id, "the resolved case re-opens");
    assert!(!rejoined.new_case);

    let reopened = detail(store, case_id).await;
    assert_eq!(reopened.case.status, CaseStatus::Open);
    assert_eq!(reopened.case.reopened_count, 1);
    assert_eq!(reopened.case.resolved_at, None);
    assert_eq!(reopened.case.outcome, None);
    let transitions: Vec<(CaseStatus, CaseStatus, &str)> = reopened
        .history
        .iter()
        .map(|record| (record.from, record.to, record.actor.as_str()))
        .collect();
    assert_eq!(
        transitions,
        [
            (CaseStatus::Open, CaseStatus::Resolved, "agent-ada"),
            (CaseStatus::Resolved, CaseStatus::Open, "contact"),
        ]
    );
    let contact = store.get_contact(again.contact_id).await.unwrap().unwrap();
    assert!(
        contact.repeat_contact,
        "a contact within the window is a repeat contact"
    );

    let payloads = outbox_payloads(store).await;
    assert!(
        matches!(payloads[1], v1::event::Payload::CaseResolved(ref resolved)
        if resolved.outcome == "resolved" && resolved.contact_count == 1 && !resolved.overdue)
    );
    assert!(matches!(payloads[2], v1::event::Payload::CaseUpdated(ref updated)
        if updated.reopened && updated.repeat_contact && updated.status == v1::CaseStatus::Open as i32
            && updated.contact_count == 2));
}

async fn outside_the_window_a_contact_opens_a_new_case_and_is_no_repeat(store: &dyn CasesStore) {
    let first = ContactBuilder::new(Channel::Phone, "planning-applications")
        .caller("07700 900203")
        .build();
    let case_id = applied(&store.apply_contacts(&[first]).await.unwrap()).case_id;
    store
        .change_case_status(&change(case_id, CaseStatus::Resolved, "advice given"))
        .await
        .unwrap();
    let much_later = ContactBuilder::new(Channel::Phone, "planning-applications")
        .caller("07700 900203")
        .at(now() + Duration::days(29))
        .build();
    let later = applied(
        &store
            .apply_contacts(std::slice::from_ref(&much_later))
            .await
            .unwrap(),
    )
    .clone();
    assert_ne!(
        later.case_id, case_id,
        "a resolution older than the window stays resolved"
    );
    assert!(later.new_case);
    assert_eq!(detail(store, case_id).await.case.status, CaseStatus::Resolved);
    let contact = store.get_contact(much_later.contact_id).await.unwrap().unwrap();
    assert!(!contact.repeat_contact);

    // On an open case, only a contact within the window of the previous one repeats.
    let follow_up = ContactBuilder::new(Channel::Phone, "planning-applications")
        .caller("07700 900203")
        .at(now() + Duration::days(60))
        .build();
    let joined = applied(
        &store
            .apply_contacts(std::slice::from_ref(&follow_up))
            .await
            .unwrap(),
    )
    .clone();
    assert_eq!(
        joined.case_id, later.case_id,
        "an open case takes a contact whenever it comes"
    );
    let contact = store.get_contact(follow_up.contact_id).await.unwrap().unwrap();
    assert!(
        !contact.repeat_contact,
        "31 days after the previous contact is no repeat"
    );
}

async fn status_changes_are_checked_and_recorded(store: &dyn CasesStore) {
    let contact = ContactBuilder::new(Channel::FaceToFace, "council-tax")
        .email("status@example.org")
        .build();
    let case_id = applied(&store.apply_contacts(&[contact]).await.unwrap()).case_id;

    let waiting = store
        .change_case_status(&change(
            case_id,
            CaseStatus::WaitingOnResident,
            "asked for a tenancy agreement",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(waiting.case.status, CaseStatus::WaitingOnResident);
    assert!(matches!(
        store
            .change_case_status(&change(case_id, CaseStatus::WaitingOnResident, "again"))
            .await,
        Err(CasesError::Transition(TransitionError::Unchanged(
            CaseStatus::WaitingOnResident
        )))
    ));
    store
        .change_case_status(&change(case_id, CaseStatus::Resolved, "discount applied"))
        .await
        .unwrap();
    // Another matter about the same service opens while this one is resolved…
    let other = ContactBuilder::new(Channel::Web, "council-tax")
        .email("status@example.org")
        .at(now() + Duration::days(40))
        .build();
    let other_case = applied(&store.apply_contacts(&[other]).await.unwrap()).case_id;
    assert_ne!(other_case, case_id);
    // …so re-opening the first would give the resident two open cases.
    let refused = store
        .change_case_status(&change(
            case_id,
            CaseStatus::Open,
            "resident disputes the discount",
        ))
        .await;
    let other_reference = detail(store, other_case).await.case.reference;
    assert!(
        matches!(refused, Err(CasesError::AnotherOpenCase { ref reference }) if *reference == other_reference.as_str()),
        "{refused:?}"
    );

    let closed = store
        .change_case_status(&change(case_id, CaseStatus::Closed, "no further action"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(closed.case.status, CaseStatus::Closed);
    assert_eq!(
        closed.case.outcome.as_deref(),
        Some("resolved"),
        "closing keeps the resolution"
    );
    for to in CaseStatus::ALL {
        assert!(matches!(
            store.change_case_status(&change(case_id, to, "try")).await,
            Err(CasesError::Transition(TransitionError::Closed))
        ));
    }
    let history: Vec<(CaseStatus, CaseStatus, &str)> = closed
        .history
        .iter()
        .map(|record| (record.from, record.to, record.reason.as_str()))
        .collect();
    assert_eq!(
        history,
        [
            (
                CaseStatus::Open,
                CaseStatus::WaitingOnResident,
                "asked for a tenancy agreement"
            ),
            (
                CaseStatus::WaitingOnResident,
                CaseStatus::Resolved,
                "discount applied"
            ),
            (CaseStatus::Resolved, CaseStatus::Closed, "no further action"),
        ]
    );
    assert!(
        store
            .change_case_status(&change(CaseId::new(), CaseStatus::Closed, "x"))
            .await
            .unwrap()
            .is_none()
    );
    let statuses: Vec<i32> = outbox_payloads(store)
        .await
        .iter()
        .filter_map(|payload| match payload {
            v1::event::Payload::CaseUpdated(updated) if updated.contact_id.is_empty() => Some(updated.status),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [
            v1::CaseStatus::WaitingOnResident as i32,
            v1::CaseStatus::Closed as i32
        ]
    );
}

async fn notes_are_kept_on_the_case_oldest_first(store: &dyn CasesStore) {
    let contact = ContactBuilder::new(Channel::Phone, "housing-repairs")
        .caller("07700 900204")
        .build();
    let case_id = applied(&store.apply_contacts(&[contact]).await.unwrap()).case_id;
    let first = store
        .add_case_note(case_id, "agent-ada", "damp in the back bedroom")
        .await
        .unwrap()
        .unwrap();
    let second = store
        .add_case_note(case_id, "agent-bo", "surveyor booked for Tuesday")
        .await
        .unwrap()
        .unwrap();
    let notes = detail(store, case_id).await.notes;
    assert_eq!(notes, [first, second]);
    assert_eq!(notes[1].author, "agent-bo");
    assert!(
        store
            .add_case_note(CaseId::new(), "agent-ada", "lost")
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_wrap_up_disposition_moves_the_case_and_shows_on_the_contact(store: &dyn CasesStore) {
    let call = ContactBuilder::new(Channel::Phone, "council-tax")
        .caller("07700 900205")
        .build();
    let case_id = applied(&store.apply_contacts(std::slice::from_ref(&call)).await.unwrap()).case_id;

    let callback = completed(call.contact_id, "callback-booked", None);
    store
        .apply_outcomes(std::slice::from_ref(&callback))
        .await
        .unwrap();
    assert_eq!(
        detail(store, case_id).await.case.status,
        CaseStatus::WaitingOnCouncil
    );
    // The same event again, and a second completion of the same contact,
    // change nothing: a contact is completed once.
    store.apply_outcomes(&[callback]).await.unwrap();
    store
        .apply_outcomes(&[completed(call.contact_id, "resolved", None)])
        .await
        .unwrap();
    let case = detail(store, case_id).await;
    assert_eq!(case.case.status, CaseStatus::WaitingOnCouncil);
    assert_eq!(case.history.len(), 1);
    assert_eq!(case.history[0].actor, "routing");
    let contact = store.get_contact(call.contact_id).await.unwrap().unwrap();
    assert_eq!(
        contact.outcome.map(|outcome| outcome.disposition).as_deref(),
        Some("callback-booked")
    );

    // The callback resolves it.
    let callback_call = ContactBuilder::new(Channel::Phone, "council-tax")
        .caller("07700 900205")
        .build();
    applied(
        &store
            .apply_contacts(std::slice::from_ref(&callback_call))
            .await
            .unwrap(),
    );
    store
        .apply_outcomes(&[completed(callback_call.contact_id, "resolved", None)])
        .await
        .unwrap();
    let case = detail(store, case_id).await.case;
    assert_eq!(case.status, CaseStatus::Resolved);
    assert_eq!(case.outcome.as_deref(), Some("resolved"));
}

async fn an_outcome_that_arrives_before_its_contact_waits_for_it(store: &dyn CasesStore) {
    let visit = ContactBuilder::new(Channel::FaceToFace, "homelessness")
        .email("early@example.org")
        .build();
    store
        .apply_outcomes(&[completed(visit.contact_id, "signposted", Some("shelter"))])
        .await
        .unwrap();
    let case_id = applied(&store.apply_contacts(std::slice::from_ref(&visit)).await.unwrap()).case_id;
    let case = detail(store, case_id).await.case;
    assert_eq!(case.status, CaseStatus::Resolved);
    assert_eq!(case.outcome.as_deref(), Some("signposted"));
    let outcome = store
        .get_contact(visit.contact_id)
        .await
        .unwrap()
        .unwrap()
        .outcome
        .unwrap();
    assert_eq!(outcome.partner.as_deref(), Some("shelter"));
    let resolved = outbox_payloads(store).await.into_iter().any(|payload| {
        matches!(payload, v1::event::Payload::CaseResolved(resolved) if resolved.outcome == "signposted")
    });
    assert!(resolved);
}

async fn an_outcome_applied_beside_its_contact_is_never_left_waiting(store: &dyn CasesStore) {
    // Two consumers, or two batches in flight, may apply a contact and its
    // outcome at the same moment: whichever commits second must see the other.
    for round in 0..20 {
        let call = ContactBuilder::new(Channel::Phone, "council-tax")
            .email(&format!("side-by-side-{round}@example.org"))
            .build();
        let wrap_up = completed(call.contact_id, "resolved", None);
        let (contact, outcome) = tokio::join!(
            store.apply_contacts(std::slice::from_ref(&call)),
            store.apply_outcomes(std::slice::from_ref(&wrap_up)),
        );
        outcome.unwrap();
        let case_id = applied(&contact.unwrap()).case_id;
        let case = detail(store, case_id).await.case;
        assert_eq!(case.status, CaseStatus::Resolved, "round {round}");
        assert_eq!(case.outcome.as_deref(), Some("resolved"), "round {round}");
    }
}

async fn a_resident_is_found_by_a_case_or_contact_reference(store: &dyn CasesStore) {
    let contact = ContactBuilder::new(Channel::Web, "waste-collections")
        .email("quoted@example.org")
        .build();
    let other = ContactBuilder::new(Channel::Web, "waste-collections")
        .email("someone-else@example.org")
        .build();
    let outcome = store.apply_contacts(&[contact.clone(), other]).await.unwrap();
    let (customer_id, case_id) = (applied(&outcome).customer_id, applied(&outcome).case_id);
    let case_reference = detail(store, case_id).await.case.reference;
    let by_reference = |reference: String| CustomerSearch {
        reference: Some(QuotedReference::parse(&reference).unwrap()),
        ..CustomerSearch::default()
    };
    // As a resident reads it out: lower case, spaces.
    let spoken = case_reference.as_str().to_lowercase().replace('-', " ");
    for search in [
        by_reference(spoken),
        by_reference(contact.reference.as_str().to_owned()),
    ] {
        let found = store.search_customers(&search, 20).await.unwrap();
        assert_eq!(
            found.iter().map(|customer| customer.id).collect::<Vec<_>>(),
            [customer_id]
        );
    }
    let unknown = store
        .search_customers(&by_reference("CS-00000-00000".to_owned()), 20)
        .await
        .unwrap();
    assert!(unknown.is_empty());
}

contract_suite!(
    a_new_case_is_due_by_its_service_target_in_working_days,
    a_resolved_case_reopens_when_the_resident_comes_back_within_the_window,
    outside_the_window_a_contact_opens_a_new_case_and_is_no_repeat,
    status_changes_are_checked_and_recorded,
    notes_are_kept_on_the_case_oldest_first,
    a_wrap_up_disposition_moves_the_case_and_shows_on_the_contact,
    an_outcome_that_arrives_before_its_contact_waits_for_it,
    an_outcome_applied_beside_its_contact_is_never_left_waiting,
    a_resident_is_found_by_a_case_or_contact_reference,
);
