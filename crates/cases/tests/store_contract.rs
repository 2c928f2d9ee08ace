//! The one contract suite of `CasesStore`, run against PostgreSQL (a fresh
//! database per test) and SQLite (a fresh file per test), so the two
//! implementations cannot drift apart.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::collections::HashSet;

use chrono::Duration;
use prost::Message as _;
use switchboard_cases::{
    AppliedContact, ApplyOutcome, CaseKey, CaseStatus, CasesError, CasesStore, CustomerSearch, PageToken,
    TimelineEntry,
};
use switchboard_domain::{
    Channel, ContactId, ContactOrigin, CustomerId, EmailAddress, PersonName, PhoneNumber, Postcode,
};
use switchboard_proto::v1;

use common::{ContactBuilder, now};

fn applied(outcome: &ApplyOutcome) -> &AppliedContact {
    outcome
        .applied()
        .unwrap_or_else(|| panic!("expected an applied contact, got {outcome:?}"))
}

/// Every unsent outbox event, decoded.
async fn outbox_events(store: &dyn CasesStore) -> Vec<v1::Event> {
    store
        .fetch_unsent(10_000)
        .await
        .unwrap()
        .iter()
        .map(|record| v1::Event::decode(record.body.as_slice()).unwrap())
        .collect()
}

async fn timeline_contact_ids(store: &dyn CasesStore, customer: CustomerId) -> Vec<ContactId> {
    let timeline = store
        .customer_timeline(customer, 500, None)
        .await
        .unwrap()
        .unwrap();
    timeline
        .entries
        .iter()
        .filter_map(|entry| match entry {
            TimelineEntry::Contact(contact) => Some(contact.id),
            TimelineEntry::Case(_) => None,
        })
        .collect()
}

async fn phone_then_web_from_the_same_resident_make_one_customer_one_case_two_contacts(
    store: &dyn CasesStore,
) {
    let call = ContactBuilder::new(Channel::Phone, "council-tax")
        .caller("07700 900123")
        .at(now() - Duration::minutes(10))
        .build();
    let form = ContactBuilder::new(Channel::Web, "council-tax")
        .phone("+44 7700 900123")
        .email("Ada@Example.org")
        .name("Ada Lovelace")
        .build();

    let first = store.apply_contacts(std::slice::from_ref(&call)).await.unwrap();
    let second = store.apply_contacts(std::slice::from_ref(&form)).await.unwrap();
    let (first, second) = (applied(&first[0]), applied(&second[0]));
    assert!(first.new_customer && first.new_case);
    assert!(
        !second.new_customer && !second.new_case,
        "the form joins the caller's case"
    );
    assert_eq!(first.customer_id, second.customer_id);
    assert_eq!(first.case_id, second.case_id);

    let case = store
        .get_case(&CaseKey::Id(first.case_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        case.contact_ids,
        vec![call.contact_id, form.contact_id],
        "oldest first"
    );
    assert_eq!(case.status, CaseStatus::Open);
    assert_eq!(case.service.as_str(), "council-tax");
    assert_eq!(case.opened_at, call.received_at);
    assert_eq!(case.updated_at, form.received_at);
    assert!(case.reference.as_str().starts_with("CS-"));

    // The caller's number became the customer's phone; the form filled in the rest.
    let timeline = store
        .customer_timeline(first.customer_id, 50, None)
        .await
        .unwrap()
        .unwrap();
    let details = &timeline.customer.details;
    assert_eq!(
        details.phone.as_ref().map(PhoneNumber::as_e164),
        Some("+447700900123")
    );
    assert_eq!(
        details.email.as_ref().map(EmailAddress::as_str),
        Some("ada@example.org")
    );
    assert_eq!(
        details.name.as_ref().map(PersonName::as_str),
        Some("Ada Lovelace")
    );
    assert_eq!(timeline_contact_ids(store, first.customer_id).await.len(), 2);

    let events = outbox_events(store).await;
    let types: Vec<&str> = events.iter().map(|event| event.r#type.as_str()).collect();
    assert_eq!(types, ["case.opened", "case.updated"]);
    match &events[1].payload {
        Some(v1::event::Payload::CaseUpdated(updated)) => {
            assert_eq!(updated.contact_count, 2);
            assert_eq!(updated.contact_id, form.contact_id.to_string());
            assert_eq!(updated.channel, v1::Channel::Web as i32);
        }
        other => panic!("expected case.updated, got {other:?}"),
    }
}

async fn a_different_service_opens_a_second_case(store: &dyn CasesStore) {
    let tax = ContactBuilder::new(Channel::Phone, "council-tax")
        .caller("07700900123")
        .build();
    let bins = ContactBuilder::new(Channel::Phone, "waste")
        .caller("07700900123")
        .build();
    let outcomes = store.apply_contacts(&[tax, bins]).await.unwrap();
    let (tax, bins) = (applied(&outcomes[0]), applied(&outcomes[1]));
    assert_eq!(tax.customer_id, bins.customer_id);
    assert_ne!(tax.case_id, bins.case_id);
    assert!(tax.new_case && bins.new_case);
    let case = store.get_case(&CaseKey::Id(bins.case_id)).await.unwrap().unwrap();
    assert_eq!(case.service.as_str(), "waste");
    let types: Vec<String> = outbox_events(store)
        .await
        .into_iter()
        .map(|event| event.r#type)
        .collect();
    assert_eq!(types, ["case.opened", "case.opened"]);
}

async fn a_contact_is_matched_by_email(store: &dyn CasesStore) {
    let form = ContactBuilder::new(Channel::Web, "housing")
        .email("grace@example.org")
        .build();
    let letter = ContactBuilder::new(Channel::Email, "housing")
        .email("GRACE@example.org")
        .build();
    let first = store.apply_contacts(&[form]).await.unwrap();
    let second = store.apply_contacts(&[letter]).await.unwrap();
    assert_eq!(applied(&first[0]).customer_id, applied(&second[0]).customer_id);
    assert_eq!(applied(&first[0]).case_id, applied(&second[0]).case_id);
}

async fn phone_wins_over_email_and_customers_are_never_merged(store: &dyn CasesStore) {
    let by_phone = ContactBuilder::new(Channel::Phone, "waste")
        .caller("07700900111")
        .build();
    let by_email = ContactBuilder::new(Channel::Web, "waste")
        .email("lin@example.org")
        .build();
    let first = store.apply_contacts(&[by_phone, by_email]).await.unwrap();
    let (phone_customer, email_customer) = (applied(&first[0]).customer_id, applied(&first[1]).customer_id);
    assert_ne!(phone_customer, email_customer);

    let both = ContactBuilder::new(Channel::Web, "waste")
        .phone("07700900111")
        .email("lin@example.org")
        .build();
    let outcome = store.apply_contacts(&[both]).await.unwrap();
    assert_eq!(
        applied(&outcome[0]).customer_id,
        phone_customer,
        "the phone match wins"
    );

    // The email stays with the customer that had it: not copied, not merged.
    let phone_holder = store
        .customer_timeline(phone_customer, 50, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(phone_holder.customer.details.email, None);
    let email_holder = store
        .customer_timeline(email_customer, 50, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(email_holder.customer.details.phone, None);
    assert_eq!(timeline_contact_ids(store, email_customer).await.len(), 1);
}

async fn details_are_filled_in_never_overwritten(store: &dyn CasesStore) {
    let first = ContactBuilder::new(Channel::Phone, "council-tax")
        .caller("07700900222")
        .name("Mary Somerville")
        .build();
    let second = ContactBuilder::new(Channel::Web, "council-tax")
        .phone("07700900222")
        .name("M. Somerville")
        .postcode("so43 7pn")
        .email("mary@example.org")
        .build();
    let outcomes = store.apply_contacts(&[first]).await.unwrap();
    store.apply_contacts(&[second]).await.unwrap();
    let customer = applied(&outcomes[0]).customer_id;
    let details = store
        .customer_timeline(customer, 1, None)
        .await
        .unwrap()
        .unwrap()
        .customer
        .details;
    assert_eq!(
        details.name.as_ref().map(PersonName::as_str),
        Some("Mary Somerville")
    );
    assert_eq!(details.postcode.as_ref().map(Postcode::as_str), Some("SO43 7PN"));
    assert_eq!(
        details.email.as_ref().map(EmailAddress::as_str),
        Some("mary@example.org")
    );
}

async fn a_redelivered_event_is_applied_once(store: &dyn CasesStore) {
    let call = ContactBuilder::new(Channel::Phone, "waste")
        .caller("07700900333")
        .build();
    let first = store.apply_contacts(std::slice::from_ref(&call)).await.unwrap();
    let customer = applied(&first[0]).customer_id;

    let again = store.apply_contacts(std::slice::from_ref(&call)).await.unwrap();
    assert_eq!(
        again,
        vec![ApplyOutcome::Duplicate {
            event_id: call.event_id
        }]
    );
    // The same event twice in one batch, and the same contact under a new event id.
    let mut republished = call.clone();
    republished.event_id = switchboard_domain::EventId::new();
    let twice = store
        .apply_contacts(&[call.clone(), call.clone(), republished.clone()])
        .await
        .unwrap();
    assert!(
        twice.iter().all(|outcome| outcome.applied().is_none()),
        "{twice:?}"
    );
    // The republished event is recorded too, so it is skipped cheaply next time.
    let thrice = store.apply_contacts(&[republished]).await.unwrap();
    assert!(thrice[0].applied().is_none());

    assert_eq!(timeline_contact_ids(store, customer).await, vec![call.contact_id]);
    assert_eq!(
        outbox_events(store).await.len(),
        1,
        "one case.opened, nothing for the duplicates"
    );
}

async fn a_batch_with_two_contacts_of_one_new_resident(store: &dyn CasesStore) {
    let call = ContactBuilder::new(Channel::Phone, "housing")
        .caller("07700900444")
        .build();
    let form = ContactBuilder::new(Channel::Web, "housing")
        .phone("07700 900444")
        .email("new@example.org")
        .build();
    let by_email = ContactBuilder::new(Channel::Email, "housing")
        .email("new@example.org")
        .build();
    let outcomes = store.apply_contacts(&[call, form, by_email]).await.unwrap();
    let outcomes: Vec<&AppliedContact> = outcomes.iter().map(applied).collect();
    assert!(outcomes[0].new_customer && outcomes[0].new_case);
    for later in &outcomes[1..] {
        assert!(!later.new_customer && !later.new_case);
        assert_eq!(later.customer_id, outcomes[0].customer_id);
        assert_eq!(later.case_id, outcomes[0].case_id);
    }
    let found = store
        .search_customers(
            &CustomerSearch {
                email: Some(EmailAddress::parse("new@example.org").unwrap()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "one customer, email filled in within the batch");
    let counts: Vec<u32> = outbox_events(store)
        .await
        .iter()
        .filter_map(|event| match &event.payload {
            Some(v1::event::Payload::CaseUpdated(updated)) => Some(updated.contact_count),
            _ => None,
        })
        .collect();
    assert_eq!(counts, [2, 3]);
}

async fn anonymous_visits_each_get_a_new_customer(store: &dyn CasesStore) {
    let first = ContactBuilder::new(Channel::FaceToFace, "housing").build();
    let second = ContactBuilder::new(Channel::FaceToFace, "housing").build();
    let outcomes = store.apply_contacts(&[first.clone(), second]).await.unwrap();
    assert_ne!(
        applied(&outcomes[0]).customer_id,
        applied(&outcomes[1]).customer_id
    );
    assert!(
        outcomes
            .iter()
            .all(|outcome| applied(outcome).new_customer && applied(outcome).new_case)
    );

    let contact = store.get_contact(first.contact_id).await.unwrap().unwrap();
    assert_eq!(contact.channel, Channel::FaceToFace);
    assert!(
        matches!(&contact.origin, ContactOrigin::FaceToFace { office_id, .. } if office_id.as_str() == "lymington-town-hall")
    );
}

async fn a_contact_reads_back_as_stored(store: &dyn CasesStore) {
    let call = ContactBuilder::new(Channel::Phone, "council-tax")
        .caller("07700900555")
        .build();
    let outcomes = store.apply_contacts(std::slice::from_ref(&call)).await.unwrap();
    let contact = store.get_contact(call.contact_id).await.unwrap().unwrap();
    assert_eq!(contact.id, call.contact_id);
    assert_eq!(contact.reference, call.reference);
    assert_eq!(contact.customer_id, applied(&outcomes[0]).customer_id);
    assert_eq!(contact.case_id, applied(&outcomes[0]).case_id);
    assert_eq!(contact.channel, call.channel);
    assert_eq!(contact.service, call.service);
    assert_eq!(contact.summary, call.summary);
    assert_eq!(contact.details, call.details);
    assert_eq!(contact.needs, call.needs);
    assert_eq!(contact.origin, call.origin);
    assert_eq!(contact.received_at, call.received_at);

    assert!(store.get_contact(ContactId::new()).await.unwrap().is_none());
    let case = store
        .get_case(&CaseKey::Id(contact.case_id))
        .await
        .unwrap()
        .unwrap();
    let by_reference = store
        .get_case(&CaseKey::Reference(case.reference.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_reference, case);
    assert!(
        store
            .get_case(&CaseKey::Id(switchboard_domain::CaseId::new()))
            .await
            .unwrap()
            .is_none()
    );
}

async fn the_timeline_is_newest_first_and_paginates(store: &dyn CasesStore) {
    let start = now() - Duration::hours(1);
    let mut contacts = Vec::new();
    for (minute, service) in [
        (0, "council-tax"),
        (5, "waste"),
        (10, "council-tax"),
        (15, "housing"),
        (20, "waste"),
    ] {
        contacts.push(
            ContactBuilder::new(Channel::Phone, service)
                .caller("07700900666")
                .at(start + Duration::minutes(minute))
                .build(),
        );
    }
    let outcomes = store.apply_contacts(&contacts).await.unwrap();
    let customer = applied(&outcomes[0]).customer_id;

    let full = store
        .customer_timeline(customer, 500, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(full.entries.len(), 8, "5 contacts and 3 cases");
    assert!(full.next_page_token.is_none());
    let times: Vec<_> = full.entries.iter().map(TimelineEntry::at).collect();
    assert!(times.windows(2).all(|pair| pair[0] >= pair[1]), "newest first");
    // A case sorts above the contact that opened it (same instant).
    assert!(matches!(full.entries[0], TimelineEntry::Contact(_)));
    assert!(matches!(full.entries[1], TimelineEntry::Case(ref case) if case.service.as_str() == "housing"));
    assert!(
        matches!(full.entries[2], TimelineEntry::Contact(ref contact) if contact.service.as_str() == "housing")
    );

    let mut paged = Vec::new();
    let mut token: Option<PageToken> = None;
    let mut pages = 0;
    loop {
        let page = store
            .customer_timeline(customer, 3, token.as_ref())
            .await
            .unwrap()
            .unwrap();
        assert!(page.entries.len() <= 3);
        pages += 1;
        paged.extend(page.entries);
        match page.next_page_token {
            Some(next) => token = Some(PageToken::parse(next.as_str()).unwrap()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(paged, full.entries);

    assert!(
        store
            .customer_timeline(CustomerId::new(), 10, None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        PageToken::parse("not-a-token"),
        Err(CasesError::InvalidPageToken)
    ));
}

async fn customers_are_found_by_normalised_identifiers_and_name(store: &dyn CasesStore) {
    let ada = ContactBuilder::new(Channel::Web, "waste")
        .phone("07700900777")
        .email("ada@example.org")
        .name("Ada Łukasiewicz")
        .postcode("SO43 7PN")
        .build();
    let bob = ContactBuilder::new(Channel::Web, "waste")
        .email("bob@example.org")
        .name("Bob Adams")
        .postcode("SO43 7PN")
        .build();
    store.apply_contacts(&[ada, bob]).await.unwrap();

    let search = |phone: Option<&str>, email: Option<&str>, postcode: Option<&str>, name: Option<&str>| {
        CustomerSearch {
            phone: phone.map(|value| PhoneNumber::parse(value).unwrap()),
            email: email.map(|value| EmailAddress::parse(value).unwrap()),
            postcode: postcode.map(|value| Postcode::parse(value).unwrap()),
            name: name.map(|value| PersonName::parse(value).unwrap()),
            reference: None,
        }
    };
    let names = |customers: Vec<switchboard_cases::Customer>| -> HashSet<String> {
        customers
            .into_iter()
            .filter_map(|customer| customer.details.name.map(|name| name.as_str().to_owned()))
            .collect()
    };
    let found = store
        .search_customers(&search(Some("+44 7700 900777"), None, None, None), 20)
        .await
        .unwrap();
    assert_eq!(names(found), HashSet::from(["Ada Łukasiewicz".to_owned()]));
    let found = store
        .search_customers(&search(None, Some("BOB@example.org"), None, None), 20)
        .await
        .unwrap();
    assert_eq!(names(found), HashSet::from(["Bob Adams".to_owned()]));
    let found = store
        .search_customers(&search(None, None, Some("so437pn"), None), 20)
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    // Name: case-insensitive "contains", beyond ASCII.
    let found = store
        .search_customers(&search(None, None, None, Some("ada")), 20)
        .await
        .unwrap();
    assert_eq!(found.len(), 2, "Ada Łukasiewicz and Bob Adams");
    let found = store
        .search_customers(&search(None, None, None, Some("łUKAS")), 20)
        .await
        .unwrap();
    assert_eq!(names(found), HashSet::from(["Ada Łukasiewicz".to_owned()]));
    // Every criterion given must match.
    let found = store
        .search_customers(&search(None, None, Some("SO43 7PN"), Some("bob")), 20)
        .await
        .unwrap();
    assert_eq!(names(found), HashSet::from(["Bob Adams".to_owned()]));
    let found = store
        .search_customers(&search(Some("07700900777"), None, None, Some("bob")), 20)
        .await
        .unwrap();
    assert!(found.is_empty());
    // The limit holds; wildcard characters are matched literally.
    assert_eq!(
        store
            .search_customers(&search(None, None, Some("SO43 7PN"), None), 1)
            .await
            .unwrap()
            .len(),
        1
    );
    for wildcard in ["%", "_", "\\", "a%s", "b_b"] {
        assert!(
            store
                .search_customers(&search(None, None, None, Some(wildcard)), 20)
                .await
                .unwrap()
                .is_empty(),
            "{wildcard}"
        );
    }
    assert!(
        store
            .search_customers(&CustomerSearch::default(), 20)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn case_events_carry_ids_and_no_personal_data(store: &dyn CasesStore) {
    let mut call = ContactBuilder::new(Channel::Phone, "waste")
        .caller("07700900888")
        .name("Secret Name")
        .build();
    call.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned());
    let outcomes = store.apply_contacts(std::slice::from_ref(&call)).await.unwrap();
    let applied = applied(&outcomes[0]);

    let records = store.fetch_unsent(100).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].traceparent, call.traceparent,
        "the contact's trace continues"
    );
    let event = v1::Event::decode(records[0].body.as_slice()).unwrap();
    assert_eq!(event.id, records[0].event_id.to_string());
    assert_eq!(event.source, "cases");
    assert_eq!(event.subject, applied.case_id.to_string());
    assert!(event.sealed_personal_data.is_none());
    let Some(v1::event::Payload::CaseOpened(opened)) = &event.payload else {
        panic!("expected case.opened, got {:?}", event.payload);
    };
    assert_eq!(opened.customer_id, applied.customer_id.to_string());
    assert_eq!(opened.contact_id, call.contact_id.to_string());
    assert_eq!(opened.service, "waste");
    assert!(opened.reference.starts_with("CS-"));
    let body = String::from_utf8_lossy(&records[0].body);
    assert!(
        !body.contains("Secret") && !body.contains("7700900888"),
        "no personal data in the event"
    );

    store.delete_sent(&[records[0].event_id]).await.unwrap();
    assert!(store.fetch_unsent(100).await.unwrap().is_empty());
    store.delete_sent(&[records[0].event_id]).await.unwrap();
}

async fn a_large_batch_applies_in_one_call(store: &dyn CasesStore) {
    // 500 contacts from 250 residents (each calls, then fills in a form).
    let mut batch = Vec::new();
    for resident in 0..250 {
        let phone = format!("07700 9{resident:05}");
        batch.push(
            ContactBuilder::new(Channel::Phone, "council-tax")
                .caller(&phone)
                .build(),
        );
        batch.push(
            ContactBuilder::new(Channel::Web, "council-tax")
                .phone(&phone)
                .email(&format!("resident{resident}@example.org"))
                .build(),
        );
    }
    let outcomes = store.apply_contacts(&batch).await.unwrap();
    let customers: HashSet<CustomerId> = outcomes
        .iter()
        .map(|outcome| applied(outcome).customer_id)
        .collect();
    assert_eq!(customers.len(), 250);
    let new_cases = outcomes
        .iter()
        .filter(|outcome| applied(outcome).new_case)
        .count();
    assert_eq!(new_cases, 250);
    assert_eq!(outbox_events(store).await.len(), 500);
    assert!(
        store
            .apply_contacts(&batch)
            .await
            .unwrap()
            .iter()
            .all(|outcome| outcome.applied().is_none())
    );
    store.check().await.unwrap();
}

/// Two writers (two consumers) applying contacts of the same resident at the
/// same time: never two customers or two open cases. A writer that loses a
/// race gets a transient error, and trying again joins the winner's case.
async fn concurrent_writers_never_duplicate_a_customer_or_an_open_case(store: &dyn CasesStore) {
    async fn apply_until_done(
        store: &dyn CasesStore,
        contact: &switchboard_cases::IncomingContact,
    ) -> AppliedContact {
        for _attempt in 0..5 {
            match store.apply_contacts(std::slice::from_ref(contact)).await {
                Ok(outcomes) => return applied(&outcomes[0]).clone(),
                Err(error) => assert!(
                    error.is_transient(),
                    "only transient errors from a race: {error:?}"
                ),
            }
        }
        panic!("the race never settled");
    }

    for resident in 0..10 {
        let phone = format!("07700 9001{resident:02}");
        let email = format!("racer{resident}@example.org");
        // Same new resident, by phone, from two writers at once.
        let call = ContactBuilder::new(Channel::Phone, "waste")
            .caller(&phone)
            .build();
        let form = ContactBuilder::new(Channel::Web, "waste")
            .phone(&phone)
            .email(&email)
            .build();
        let (first, second) = tokio::join!(apply_until_done(store, &call), apply_until_done(store, &form));
        assert_eq!(first.customer_id, second.customer_id);
        assert_eq!(first.case_id, second.case_id);

        // The now-known resident by phone and by email at once: different
        // identity locks, so only the one-open-case index keeps them together.
        let by_phone = ContactBuilder::new(Channel::Phone, "housing")
            .caller(&phone)
            .build();
        let by_email = ContactBuilder::new(Channel::Email, "housing")
            .email(&email)
            .build();
        let (first, second) = tokio::join!(
            apply_until_done(store, &by_phone),
            apply_until_done(store, &by_email)
        );
        assert_eq!(first.customer_id, second.customer_id);
        assert_eq!(first.case_id, second.case_id, "one open housing case");
    }
}

contract_suite!(
    phone_then_web_from_the_same_resident_make_one_customer_one_case_two_contacts,
    a_different_service_opens_a_second_case,
    a_contact_is_matched_by_email,
    phone_wins_over_email_and_customers_are_never_merged,
    details_are_filled_in_never_overwritten,
    a_redelivered_event_is_applied_once,
    a_batch_with_two_contacts_of_one_new_resident,
    anonymous_visits_each_get_a_new_customer,
    a_contact_reads_back_as_stored,
    the_timeline_is_newest_first_and_paginates,
    customers_are_found_by_normalised_identifiers_and_name,
    case_events_carry_ids_and_no_personal_data,
    a_large_batch_applies_in_one_call,
    concurrent_writers_never_duplicate_a_customer_or_an_open_case,
);
