//! Erasure, run against PostgreSQL and SQLite: an erased resident is gone from
//! every table of the case store, from search and from later exports, while
//! the statistics kept about them (contacts and cases by service, channel and
//! outcome) stay exactly the same.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use chrono::Duration;
use switchboard_cases::{
    CaseKey, CaseStatus, CasesError, CasesStore, Consent, ContactOutcome, CustomerSearch, DataRead,
    ErasureRequest, IncomingOutcome, NewReferral, StatusChange, TimelineEntry,
};
use switchboard_domain::{
    Channel, CustomerId, EmailAddress, EventId, Needs, PartnerId, PersonName, PhoneNumber,
};
use uuid::Uuid;

use common::{ContactBuilder, now};

async fn search(store: &dyn CasesStore, search: CustomerSearch) -> Vec<CustomerId> {
    store
        .search_customers(&search, 20)
        .await
        .unwrap()
        .into_iter()
        .map(|customer| customer.id)
        .collect()
}

async fn an_erased_resident_is_gone_and_the_statistics_stay(store: &dyn CasesStore) {
    // Everything the case store can hold about a resident: two contacts on
    // two channels, a status change with a reason, a note, a referral with
    // consent, a wrap-up outcome, a suggested match and a logged read.
    let call = ContactBuilder::new(Channel::Phone, "council-tax")
        .caller("07700 900411")
        .name("Grace Hopper")
        .postcode("SO41 9AH")
        .at(now() - Duration::hours(1))
        .build();
    let form = ContactBuilder::new(Channel::Web, "council-tax")
        .phone("07700 900411")
        .email("grace.hopper@example.org")
        .build();
    let applied = store.apply_contacts(&[call.clone(), form.clone()]).await.unwrap();
    let resident = applied[0].applied().unwrap().clone();
    let neighbour = ContactBuilder::new(Channel::FaceToFace, "missed-bins")
        .name("Grace Hoppen")
        .postcode("SO41 9AH")
        .build();
    let neighbour_id = store.apply_contacts(&[neighbour]).await.unwrap()[0]
        .applied()
        .unwrap()
        .customer_id;
    assert!(
        !store
            .match_suggestions(Some(resident.customer_id), 20)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .change_case_status(&StatusChange {
            case_id: resident.case_id,
            to: CaseStatus::WaitingOnResident,
            reason: "Grace to send her tenancy agreement".to_owned(),
            actor: "agent-ada".to_owned(),
        })
        .await
        .unwrap();
    store
        .add_case_note(resident.case_id, "agent-ada", "Grace was upset about the bill")
        .await
        .unwrap();
    store
        .make_referral(&NewReferral {
            case_id: resident.case_id,
            partner_id: PartnerId::parse("citizens-advice").unwrap(),
            consent: Some(Consent {
                statement: "Grace agreed to share her name and number".to_owned(),
                given_at: now(),
            }),
            note: "debt advice for Grace".to_owned(),
            made_by: "agent-ada".to_owned(),
        })
        .await
        .unwrap()
        .unwrap();
    store
        .apply_outcomes(&[IncomingOutcome {
            event_id: EventId::new(),
            traceparent: None,
            contact_id: call.contact_id,
            outcome: ContactOutcome {
                disposition: "referred".to_owned(),
                partner: Some("citizens-advice".to_owned()),
                completed_at: now(),
            },
        }])
        .await
        .unwrap();
    store
        .record_reads(&[DataRead {
            id: Uuid::now_v7(),
            at: now(),
            actor: "agent-ada".to_owned(),
            action: "GetCustomerTimeline".to_owned(),
            customer_id: resident.customer_id,
            record_id: resident.customer_id.as_uuid(),
            purpose: "Grace called about her bill".to_owned(),
        }])
        .await
        .unwrap();
    let before = store.statistics().await.unwrap();
    assert!(!before.contacts.is_empty() && !before.cases.is_empty());

    let erasure = store
        .erase_customer(&ErasureRequest {
            customer_id: resident.customer_id,
            reason: "erasure request ER-2026-0117".to_owned(),
            actor: "admin-ali".to_owned(),
            only_if_inactive_since: None,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(erasure.erased_by, "admin-ali");
    assert_eq!(
        store.erasure_of(resident.customer_id).await.unwrap(),
        Some(erasure)
    );
    assert_eq!(
        store.statistics().await.unwrap(),
        before,
        "the statistics stay the same"
    );

    // Not found by anything that named them.
    for criteria in [
        CustomerSearch {
            phone: Some(PhoneNumber::parse("07700 900411").unwrap()),
            ..CustomerSearch::default()
        },
        CustomerSearch {
            email: Some(EmailAddress::parse("grace.hopper@example.org").unwrap()),
            ..CustomerSearch::default()
        },
        CustomerSearch {
            name: Some(PersonName::parse("Grace").unwrap()),
            ..CustomerSearch::default()
        },
    ] {
        let found = search(store, criteria).await;
        assert!(!found.contains(&resident.customer_id), "{found:?}");
    }
    // What stays carries nothing about them.
    let timeline = store
        .customer_timeline(resident.customer_id, 500, None)
        .await
        .unwrap()
        .unwrap();
    let details = &timeline.customer.details;
    assert!(
        details.name.is_none()
            && details.phone.is_none()
            && details.email.is_none()
            && details.postcode.is_none()
            && details.address_line.is_none()
            && details.uprn.is_none()
    );
    for entry in &timeline.entries {
        if let TimelineEntry::Contact(contact) = entry {
            assert!(contact.summary.is_empty() && contact.details.is_empty());
            assert_eq!(contact.needs, Needs::default());
            assert!(!format!("{:?}", contact.origin).contains("caller_number: Some"));
        }
    }
    let contact = store.get_contact(call.contact_id).await.unwrap().unwrap();
    assert_eq!(
        contact.channel,
        Channel::Phone,
        "the channel stays for the statistics"
    );
    assert_eq!(
        contact.outcome.map(|outcome| outcome.disposition).as_deref(),
        Some("referred")
    );
    let case = store
        .case_detail(&CaseKey::Id(resident.case_id))
        .await
        .unwrap()
        .unwrap();
    assert!(case.notes.is_empty());
    assert!(case.history.iter().all(|record| record.reason == "erased"));
    assert_eq!(case.referrals.len(), 1);
    assert!(case.referrals[0].note.is_empty());
    assert_eq!(
        case.referrals[0]
            .consent
            .as_ref()
            .map(|consent| consent.statement.as_str()),
        Some("erased"),
        "the referral keeps that consent was given, not what was said"
    );
    let text = format!("{case:?}");
    assert!(!text.contains("Grace"), "{text}");
    assert!(
        store
            .match_suggestions(Some(resident.customer_id), 20)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .reads_of(resident.customer_id, 50)
            .await
            .unwrap()
            .iter()
            .all(|read| read.purpose == "erased")
    );
    // A new contact from the same number is a new resident as far as the
    // store knows: nothing links it to the erased record.
    let again = ContactBuilder::new(Channel::Phone, "council-tax")
        .caller("07700 900411")
        .build();
    let new_customer = store.apply_contacts(&[again]).await.unwrap()[0]
        .applied()
        .unwrap()
        .customer_id;
    assert_ne!(new_customer, resident.customer_id);

    // The neighbour is untouched.
    let found = search(
        store,
        CustomerSearch {
            name: Some(PersonName::parse("Hoppen").unwrap()),
            ..CustomerSearch::default()
        },
    )
    .await;
    assert_eq!(found, [neighbour_id]);
    assert!(matches!(
        store
            .erase_customer(&ErasureRequest {
                customer_id: resident.customer_id,
                reason: "again".to_owned(),
                actor: "admin-ali".to_owned(),
                only_if_inactive_since: None,
            })
            .await,
        Err(CasesError::ErasureRefused(_))
    ));
    assert!(
        store
            .erase_customer(&ErasureRequest {
                customer_id: CustomerId::new(),
                reason: "x".to_owned(),
                actor: "admin-ali".to_owned(),
                only_if_inactive_since: None,
            })
            .await
            .unwrap()
            .is_none()
    );
}

contract_suite!(an_erased_resident_is_gone_and_the_statistics_stay);

/// On PostgreSQL batches run side by side with an erasure: the erasure takes
/// the resident's identity locks first, so a batch that may be attaching a
/// contact to them is waited for (and its contact erased with the rest), and
/// a batch after the erasure finds no one to attach to.
#[tokio::test]
async fn an_erasure_waits_for_a_batch_matching_the_resident() {
    use sqlx::Connection as _;

    let (store, guard) = common::postgres_store().await;
    let common::StoreGuard::Postgres(database) = &guard else {
        unreachable!("postgres_store keeps a PostgreSQL database")
    };
    let phone = "07700 900466";
    // A new call from the number each time.
    let call = || {
        ContactBuilder::new(Channel::Phone, "council-tax")
            .phone(phone)
            .caller(phone)
            .build()
    };
    let first = common::apply_one(&*store, call()).await;

    // A batch holding the identity lock of the resident's number, as
    // `apply_contacts` takes it before looking customers up.
    let mut batch = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let mut batch_tx = batch.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!(
            "cases.customer.phone:{}",
            PhoneNumber::parse(phone).unwrap().as_e164()
        ))
        .execute(&mut *batch_tx)
        .await
        .unwrap();

    let erasing = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .erase_customer(&ErasureRequest {
                    customer_id: first.customer_id,
                    reason: "the resident asked".to_owned(),
                    actor: "admin-ada".to_owned(),
                    only_if_inactive_since: None,
                })
                .await
        }
    });
    // The erasure waits on that lock.
    let mut observer = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(&mut observer)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the erasure never waited for the batch's identity lock"
        );
        assert!(!erasing.is_finished(), "the erasure went ahead of the batch");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!erasing.is_finished());

    batch_tx.commit().await.unwrap();
    let erased = erasing.await.unwrap().unwrap().unwrap();
    assert_eq!(erased.customer_id, first.customer_id);

    // Afterwards the same number starts a new customer.
    let after = common::apply_one(&*store, call()).await;
    assert_ne!(after.customer_id, first.customer_id);
}
