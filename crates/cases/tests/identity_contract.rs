//! Identity resolution, run against PostgreSQL and SQLite: automatic matches
//! only above the confidence threshold, possible matches suggested to agents
//! and never merged silently, and merges (and un-merges) that move a
//! resident's contacts and cases with every step recorded.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use chrono::Duration;
use switchboard_cases::{
    ApplyOutcome, CaseKey, CaseStatus, CasesError, CasesStore, CustomerSearch, MergeRequest,
    SuggestionStatus, TimelineEntry,
};
use switchboard_domain::{CaseId, Channel, CustomerId, EmailAddress, PersonName};

use common::{ContactBuilder, now};

fn ids(outcomes: &[ApplyOutcome]) -> (CustomerId, CaseId) {
    let applied = outcomes[0]
        .applied()
        .unwrap_or_else(|| panic!("expected an applied contact, got {outcomes:?}"));
    (applied.customer_id, applied.case_id)
}

fn merge(survivor_id: CustomerId, merged_id: CustomerId) -> MergeRequest {
    MergeRequest {
        survivor_id,
        merged_id,
        reason: "same resident: confirmed date of birth on the phone".to_owned(),
        actor: "agent-ada".to_owned(),
    }
}

fn by_email(email: &str) -> CustomerSearch {
    CustomerSearch {
        email: Some(EmailAddress::parse(email).unwrap()),
        ..CustomerSearch::default()
    }
}

async fn found(store: &dyn CasesStore, search: &CustomerSearch) -> Vec<CustomerId> {
    store
        .search_customers(search, 20)
        .await
        .unwrap()
        .into_iter()
        .map(|customer| customer.id)
        .collect()
}

async fn timeline(store: &dyn CasesStore, customer: CustomerId) -> (usize, Vec<(CaseStatus, usize)>) {
    let timeline = store
        .customer_timeline(customer, 500, None)
        .await
        .unwrap()
        .unwrap();
    let contacts = timeline
        .entries
        .iter()
        .filter(|entry| matches!(entry, TimelineEntry::Contact(_)))
        .count();
    let mut cases: Vec<(CaseStatus, usize)> = timeline
        .entries
        .iter()
        .filter_map(|entry| match entry {
            TimelineEntry::Case(case) => Some((case.status, case.contact_ids.len())),
            TimelineEntry::Contact(_) => None,
        })
        .collect();
    cases.sort_by_key(|(status, _)| status.as_str());
    (contacts, cases)
}

async fn a_resident_on_three_channels_is_one_customer_with_one_case_once_linked(store: &dyn CasesStore) {
    // A call from their mobile, a web form with their email, then a visit
    // to reception giving their name, postcode and mobile.
    let call = ContactBuilder::new(Channel::Phone, "council-tax")
        .caller("07700 900301")
        .at(now() - Duration::hours(2))
        .build();
    let form = ContactBuilder::new(Channel::Web, "council-tax")
        .email("ada.lovelace@example.org")
        .name("Ada Lovelace")
        .postcode("SO41 9AH")
        .at(now() - Duration::hours(1))
        .build();
    let visit = ContactBuilder::new(Channel::FaceToFace, "council-tax")
        .name("Mrs Ada Lovelace")
        .postcode("so41 9ah")
        .phone("07700 900301")
        .build();
    let (caller, case) = ids(&store.apply_contacts(std::slice::from_ref(&call)).await.unwrap());
    let (writer, written_case) = ids(&store.apply_contacts(std::slice::from_ref(&form)).await.unwrap());
    assert_ne!(caller, writer, "nothing links an email to a phone number yet");
    let (visitor, visit_case) = ids(&store.apply_contacts(std::slice::from_ref(&visit)).await.unwrap());
    assert_eq!(visitor, caller, "the mobile number matches automatically");
    assert_eq!(visit_case, case);

    // The name and postcode of the visit make the form's writer a possible
    // match: suggested, not merged.
    let suggestions = store.match_suggestions(Some(caller), 20).await.unwrap();
    assert_eq!(suggestions.len(), 1, "{suggestions:?}");
    let suggestion = &suggestions[0];
    assert_eq!(
        (suggestion.customer_id, suggestion.candidate_id),
        (caller, writer)
    );
    assert_eq!(suggestion.contact_id, visit.contact_id);
    assert_eq!(suggestion.signals, ["same_postcode", "name_agrees"]);
    assert!(
        (50..90).contains(&suggestion.confidence),
        "{}",
        suggestion.confidence
    );
    assert_eq!(timeline(store, caller).await, (2, vec![(CaseStatus::Open, 2)]));
    assert_eq!(timeline(store, writer).await, (1, vec![(CaseStatus::Open, 1)]));

    // An agent confirms: one customer, one open case with all three contacts.
    let merged = store
        .merge_customers(&merge(caller, writer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((merged.moved_contacts, merged.moved_cases), (1, 1));
    assert_eq!(merged.filled_columns, ["email"]);
    assert_eq!(merged.merged_by, "agent-ada");
    let (contacts, cases) = timeline(store, caller).await;
    assert_eq!(contacts, 3);
    assert_eq!(
        cases,
        vec![(CaseStatus::Closed, 0), (CaseStatus::Open, 3)],
        "the form's own case is closed into the open one"
    );
    let closed = store
        .case_detail(&CaseKey::Id(written_case))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(closed.case.customer_id, caller);
    assert!(
        closed.history[0].reason.contains("customers merged"),
        "{:?}",
        closed.history
    );
    assert_eq!(
        found(store, &by_email("ada.lovelace@example.org")).await,
        [caller]
    );
    let by_name = CustomerSearch {
        name: Some(PersonName::parse("lovelace").unwrap()),
        ..CustomerSearch::default()
    };
    assert_eq!(
        found(store, &by_name).await,
        [caller],
        "a merged customer is not found"
    );
    assert!(
        store
            .match_suggestions(Some(caller), 20)
            .await
            .unwrap()
            .is_empty()
    );
    // A later form with the email now reaches the merged resident.
    let later = ContactBuilder::new(Channel::Web, "council-tax")
        .email("ada.lovelace@example.org")
        .build();
    assert_eq!(
        ids(&store.apply_contacts(&[later]).await.unwrap()),
        (caller, case)
    );

    // Undone: each contact and case goes back; the later form stays.
    let undone = store
        .unmerge_customers(merged.id, "supervisor-sam", "two different residents after all")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(undone.unmerged_by.as_deref(), Some("supervisor-sam"));
    assert_eq!(timeline(store, writer).await, (1, vec![(CaseStatus::Open, 1)]));
    assert_eq!(timeline(store, caller).await, (3, vec![(CaseStatus::Open, 3)]));
    assert_eq!(
        found(store, &by_email("ada.lovelace@example.org")).await,
        [writer]
    );
    let merges = store.customer_merges(writer).await.unwrap();
    assert_eq!(merges.len(), 1);
    assert!(merges[0].unmerged_at.is_some());
    assert!(matches!(
        store
            .unmerge_customers(merged.id, "supervisor-sam", "again")
            .await,
        Err(CasesError::MergeRefused(_))
    ));
}

async fn a_near_match_is_suggested_and_never_merged_silently(store: &dyn CasesStore) {
    // A household landline: the caller who gives no name may be anyone there.
    let first = ContactBuilder::new(Channel::Phone, "missed-bins")
        .phone("01632 960111")
        .name("Margaret Sample")
        .build();
    let (margaret, _) = ids(&store.apply_contacts(&[first]).await.unwrap());
    let anonymous = ContactBuilder::new(Channel::Phone, "missed-bins")
        .caller("01632 960111")
        .build();
    let (caller, _) = ids(&store
        .apply_contacts(std::slice::from_ref(&anonymous))
        .await
        .unwrap());
    assert_ne!(caller, margaret, "a landline alone is not enough");
    // The same email under a clearly different name: two people sharing a
    // mailbox are not merged either.
    let email = ContactBuilder::new(Channel::Web, "waste-collections")
        .email("sample.family@example.org")
        .name("Margaret Sample")
        .build();
    let (owner, _) = ids(&store.apply_contacts(&[email]).await.unwrap());
    let other = ContactBuilder::new(Channel::Web, "waste-collections")
        .email("sample.family@example.org")
        .name("Trevor Sample")
        .build();
    let (trevor, _) = ids(&store.apply_contacts(&[other]).await.unwrap());
    assert_ne!(trevor, owner);

    let all = store.match_suggestions(None, 20).await.unwrap();
    let pairs: Vec<(CustomerId, CustomerId, Vec<String>)> = all
        .iter()
        .map(|suggestion| {
            (
                suggestion.customer_id,
                suggestion.candidate_id,
                suggestion.signals.clone(),
            )
        })
        .collect();
    assert!(
        pairs.contains(&(caller, margaret, vec!["same_landline".to_owned()])),
        "{pairs:?}"
    );
    assert!(
        pairs.contains(&(
            trevor,
            owner,
            vec!["same_email".to_owned(), "name_conflicts".to_owned()]
        )),
        "{pairs:?}"
    );

    let landline = all
        .iter()
        .find(|suggestion| suggestion.customer_id == caller)
        .unwrap();
    let dismissed = store
        .dismiss_suggestion(landline.id, "agent-ada")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dismissed.status, SuggestionStatus::Dismissed);
    assert_eq!(dismissed.decided_by.as_deref(), Some("agent-ada"));
    assert!(matches!(
        store.dismiss_suggestion(landline.id, "agent-ada").await,
        Err(CasesError::MergeRefused(_))
    ));
    assert!(
        store
            .dismiss_suggestion(uuid::Uuid::now_v7(), "agent-ada")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.match_suggestions(None, 20).await.unwrap().len(),
        all.len() - 1
    );
}

async fn merges_are_refused_when_they_cannot_be_undone_cleanly(store: &dyn CasesStore) {
    let one = ContactBuilder::new(Channel::Web, "waste-collections")
        .email("one@example.org")
        .build();
    let two = ContactBuilder::new(Channel::Web, "waste-collections")
        .email("two@example.org")
        .build();
    let three = ContactBuilder::new(Channel::Web, "waste-collections")
        .email("three@example.org")
        .build();
    let (one, _) = ids(&store.apply_contacts(&[one]).await.unwrap());
    let (two, _) = ids(&store.apply_contacts(&[two]).await.unwrap());
    let (three, _) = ids(&store.apply_contacts(&[three]).await.unwrap());
    assert!(matches!(
        store.merge_customers(&merge(one, one)).await,
        Err(CasesError::MergeRefused(_))
    ));
    assert!(
        store
            .merge_customers(&merge(one, CustomerId::new()))
            .await
            .unwrap()
            .is_none()
    );
    store.merge_customers(&merge(one, two)).await.unwrap().unwrap();
    for request in [merge(three, two), merge(two, three)] {
        assert!(
            matches!(store.merge_customers(&request).await, Err(CasesError::MergeRefused(ref why)) if why.contains("was merged into")),
            "a merged customer takes part in no further merge"
        );
    }
    assert!(
        store
            .unmerge_customers(uuid::Uuid::now_v7(), "supervisor-sam", "x")
            .await
            .unwrap()
            .is_none()
    );
}

contract_suite!(
    a_resident_on_three_channels_is_one_customer_with_one_case_once_linked,
    a_near_match_is_suggested_and_never_merged_silently,
    merges_are_refused_when_they_cannot_be_undone_cleanly,
);
