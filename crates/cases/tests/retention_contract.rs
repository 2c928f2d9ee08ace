//! The retention schedule applied to the case store, run against PostgreSQL
//! and SQLite: each category removes what is due and nothing else, once, and
//! the statistics stay the same.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use chrono::{DateTime, Duration, Utc};
use switchboard_cases::{
    CaseKey, CaseStatus, CasesError, CasesStore, CustomerSearch, DataRead, ErasureRequest, StatusChange,
    apply_retention,
};
use switchboard_domain::{
    Channel, ContactOrigin, CustomerId, PhoneNumber, RetentionCategory, RetentionSchedule,
};
use uuid::Uuid;

use common::{ContactBuilder, now};

/// Contact content, case notes and reads after 5 days; residents after 20.
fn schedule() -> RetentionSchedule {
    let entry = |id: &str, days: u32| {
        format!("[[categories]]\nid = \"{id}\"\nkeep_days = {days}\nbasis = \"test\"\n")
    };
    let text = [
        entry("contact-content", 5),
        entry("case-notes", 5),
        entry("inactive-customers", 20),
        entry("read-log", 5),
        entry("intake-contacts", 5),
    ]
    .concat();
    RetentionSchedule::from_toml(&text).unwrap()
}

async fn resident(store: &dyn CasesStore, phone: &str) -> (CustomerId, switchboard_domain::CaseId) {
    let contact = ContactBuilder::new(Channel::Phone, "council-tax")
        .phone(phone)
        .caller(phone)
        .build();
    let applied = common::apply_one(store, contact).await;
    (applied.customer_id, applied.case_id)
}

fn affected(runs: &[switchboard_cases::RetentionRun], category: RetentionCategory) -> u64 {
    runs.iter()
        .find(|run| run.category == category)
        .map(|run| run.affected)
        .unwrap()
}

async fn the_schedule_removes_what_is_due_and_keeps_the_statistics(store: &dyn CasesStore) {
    let schedule = schedule();
    // A resident whose matter is resolved, and one whose case is still open.
    let (done, done_case) = resident(store, "07700 900111").await;
    let (waiting, waiting_case) = resident(store, "07700 900222").await;
    for case_id in [done_case, waiting_case] {
        store
            .add_case_note(case_id, "agent-ada", "said her husband died in May")
            .await
            .unwrap()
            .unwrap();
    }
    store
        .change_case_status(&StatusChange {
            case_id: done_case,
            to: CaseStatus::Resolved,
            reason: "explained the single person discount to Mrs Example".to_owned(),
            actor: "agent-ada".to_owned(),
        })
        .await
        .unwrap()
        .unwrap();
    store
        .record_reads(&[DataRead {
            id: Uuid::now_v7(),
            at: now(),
            actor: "agent-ada".to_owned(),
            action: "GetCase".to_owned(),
            customer_id: done,
            record_id: done_case.as_uuid(),
            purpose: "call about Mrs Example's bill".to_owned(),
        }])
        .await
        .unwrap();
    let statistics = store.statistics().await.unwrap();

    // Today nothing is due.
    let runs = apply_retention(store, &schedule, now()).await.unwrap();
    assert!(runs.iter().all(|run| run.affected == 0), "{runs:?}");

    // Ten days on: the resolved case's contact content, notes and history
    // reasons go, and the read log; the open case keeps everything.
    let later: DateTime<Utc> = now() + Duration::days(10);
    let runs = apply_retention(store, &schedule, later).await.unwrap();
    assert_eq!(affected(&runs, RetentionCategory::ContactContent), 1);
    assert_eq!(affected(&runs, RetentionCategory::CaseNotes), 1);
    assert_eq!(affected(&runs, RetentionCategory::ReadLog), 1);
    assert_eq!(affected(&runs, RetentionCategory::InactiveCustomers), 0);
    let detail = store.case_detail(&CaseKey::Id(done_case)).await.unwrap().unwrap();
    assert!(detail.notes.is_empty());
    assert!(detail.history.iter().all(|record| record.reason == "expired"));
    let contact = store
        .get_contact(detail.case.contact_ids[0])
        .await
        .unwrap()
        .unwrap();
    assert!(contact.summary.is_empty() && contact.details.is_empty());
    assert!(contact.needs.language.is_none() && !contact.needs.large_print);
    match &contact.origin {
        ContactOrigin::Phone {
            caller_number,
            dialled_number,
            call_id,
        } => {
            assert!(caller_number.is_none() && call_id.is_none());
            // The council's own number is not the resident's.
            assert!(dialled_number.is_some());
        }
        other => panic!("expected a phone origin, got {other:?}"),
    }
    let open = store
        .case_detail(&CaseKey::Id(waiting_case))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(open.notes.len(), 1);
    let open_contact = store
        .get_contact(open.case.contact_ids[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(open_contact.summary, "moving house next month");
    assert!(store.reads_of(done, 50).await.unwrap().is_empty());
    // The resolved resident can still be found: their record is not yet due.
    let by_phone = CustomerSearch {
        phone: Some(PhoneNumber::parse("07700 900111").unwrap()),
        ..CustomerSearch::default()
    };
    assert_eq!(store.search_customers(&by_phone, 10).await.unwrap().len(), 1);

    // Run again the same day: nothing more is due.
    let again = apply_retention(store, &schedule, later).await.unwrap();
    assert!(again.iter().all(|run| run.affected == 0), "{again:?}");

    // Thirty days on: the resident with nothing open is erased by the
    // schedule; the one with an open case is kept.
    let runs = apply_retention(store, &schedule, now() + Duration::days(30))
        .await
        .unwrap();
    assert_eq!(affected(&runs, RetentionCategory::InactiveCustomers), 1);
    let erasure = store.erasure_of(done).await.unwrap().unwrap();
    assert_eq!(erasure.erased_by, "retention-schedule");
    assert!(erasure.reason.contains("20 days"), "{}", erasure.reason);
    assert!(store.search_customers(&by_phone, 10).await.unwrap().is_empty());
    assert!(store.erasure_of(waiting).await.unwrap().is_none());

    assert_eq!(store.statistics().await.unwrap(), statistics);
    let recorded = store.retention_runs(100).await.unwrap();
    assert_eq!(recorded.len(), 4 * 4);
    assert_eq!(
        recorded[0].ran_at.date_naive(),
        (now() + Duration::days(30)).date_naive()
    );
}

async fn a_resident_back_in_touch_is_not_erased_by_the_schedule(store: &dyn CasesStore) {
    // Found inactive, then in touch again before the erasure reaches them:
    // the erasure checks again under the customer's lock.
    let (customer_id, case_id) = resident(store, "07700 900333").await;
    let request = |since: DateTime<Utc>| ErasureRequest {
        customer_id,
        reason: "retention schedule: test".to_owned(),
        actor: "retention-schedule".to_owned(),
        only_if_inactive_since: Some(since),
    };
    // A contact since the cutoff, and the case it opened still open.
    let refused = store.erase_customer(&request(now() - Duration::days(1))).await;
    assert!(
        matches!(refused, Err(CasesError::ErasureRefused(_))),
        "{refused:?}"
    );
    store
        .change_case_status(&StatusChange {
            case_id,
            to: CaseStatus::Resolved,
            reason: "answered".to_owned(),
            actor: "agent-ada".to_owned(),
        })
        .await
        .unwrap()
        .unwrap();
    // The case resolved, but the contact is still within the period.
    let refused = store.erase_customer(&request(now() - Duration::days(1))).await;
    assert!(
        matches!(refused, Err(CasesError::ErasureRefused(_))),
        "{refused:?}"
    );
    assert!(store.erasure_of(customer_id).await.unwrap().is_none());
    // Nothing since the cutoff and nothing open: erased.
    let erased = store
        .erase_customer(&request(now() + Duration::seconds(1)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(erased.customer_id, customer_id);
}

async fn resolve(store: &dyn CasesStore, case_id: switchboard_domain::CaseId) {
    store
        .change_case_status(&StatusChange {
            case_id,
            to: CaseStatus::Resolved,
            reason: "explained the discount to Mrs Example".to_owned(),
            actor: "agent-ada".to_owned(),
        })
        .await
        .unwrap()
        .unwrap();
}

async fn a_note_written_after_a_run_goes_at_the_next(store: &dyn CasesStore) {
    let schedule = schedule();
    let (_, case_id) = resident(store, "07700 900444").await;
    resolve(store, case_id).await;
    let later = now() + Duration::days(10);
    let runs = apply_retention(store, &schedule, later).await.unwrap();
    assert_eq!(affected(&runs, RetentionCategory::CaseNotes), 1);

    // An agent notes something on the resolved case afterwards.
    store
        .add_case_note(case_id, "agent-ada", "Mrs Example rang back about her son")
        .await
        .unwrap()
        .unwrap();
    let runs = apply_retention(store, &schedule, later).await.unwrap();
    assert_eq!(affected(&runs, RetentionCategory::CaseNotes), 1);
    let detail = store.case_detail(&CaseKey::Id(case_id)).await.unwrap().unwrap();
    assert!(detail.notes.is_empty(), "{:?}", detail.notes.len());

    // Nothing is left: the case is not counted again.
    let runs = apply_retention(store, &schedule, later).await.unwrap();
    assert_eq!(affected(&runs, RetentionCategory::CaseNotes), 0);
}

async fn what_an_erasure_removed_is_not_counted_again(store: &dyn CasesStore) {
    let schedule = schedule();
    let (customer_id, case_id) = resident(store, "07700 900555").await;
    store
        .add_case_note(case_id, "agent-ada", "said her husband died in May")
        .await
        .unwrap()
        .unwrap();
    resolve(store, case_id).await;
    store
        .erase_customer(&ErasureRequest {
            customer_id,
            reason: "the resident asked".to_owned(),
            actor: "admin-ada".to_owned(),
            only_if_inactive_since: None,
        })
        .await
        .unwrap()
        .unwrap();

    // The erasure already removed the contact's content, the note and the
    // history's reasons: the schedule finds nothing of theirs to remove.
    let runs = apply_retention(store, &schedule, now() + Duration::days(10))
        .await
        .unwrap();
    assert_eq!(affected(&runs, RetentionCategory::ContactContent), 0);
    assert_eq!(affected(&runs, RetentionCategory::CaseNotes), 0);
}

contract_suite!(
    the_schedule_removes_what_is_due_and_keeps_the_statistics,
    a_resident_back_in_touch_is_not_erased_by_the_schedule,
    a_note_written_after_a_run_goes_at_the_next,
    what_an_erasure_removed_is_not_counted_again,
);
