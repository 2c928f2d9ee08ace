//! Needs and consent on the customer record, run against PostgreSQL and
//! SQLite: what contacts add, what staff record, vulnerability only with
//! consent, and what `case.opened` / `case.updated` tell routing.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::collections::BTreeSet;

use prost::Message as _;
use switchboard_cases::{
    AppliedContact, CasesError, CasesStore, ConsentPurpose, Customer, CustomerMerge, CustomerNeeds,
    ErasureRequest, MergeRequest, NeedsUpdate, NewConsent, Vulnerability, WithdrawConsent,
};
use switchboard_domain::{Channel, CustomerId, Needs};
use switchboard_proto::v1;
use uuid::Uuid;

use common::ContactBuilder;

const PHONE: &str = "07700 900123";

async fn apply(store: &dyn CasesStore, contact: ContactBuilder) -> AppliedContact {
    common::apply_one(store, contact.build()).await
}

async fn customer(store: &dyn CasesStore, id: CustomerId) -> Customer {
    store
        .customer_timeline(id, 1, None)
        .await
        .unwrap()
        .unwrap()
        .customer
}

/// The needs the latest `case.opened` or `case.updated` event carried.
async fn needs_told_to_routing(store: &dyn CasesStore) -> v1::Needs {
    store
        .fetch_unsent(10_000)
        .await
        .unwrap()
        .iter()
        .rev()
        .filter_map(|record| v1::Event::decode(record.body.as_slice()).unwrap().payload)
        .find_map(|payload| match payload {
            v1::event::Payload::CaseOpened(opened) => opened.needs,
            v1::event::Payload::CaseUpdated(updated) => updated.needs,
            _ => None,
        })
        .expect("a case event with needs")
}

/// Staff merging `merged` into `survivor`.
async fn merge(store: &dyn CasesStore, survivor: CustomerId, merged: CustomerId) -> CustomerMerge {
    store
        .merge_customers(&MergeRequest {
            survivor_id: survivor,
            merged_id: merged,
            reason: "same resident: confirmed on the phone".to_owned(),
            actor: "agent-ada".to_owned(),
        })
        .await
        .unwrap()
        .unwrap()
}

fn update(customer_id: CustomerId, needs: CustomerNeeds) -> NeedsUpdate {
    NeedsUpdate {
        customer_id,
        needs,
        actor: "agent-ada".to_owned(),
    }
}

fn consent(customer_id: CustomerId) -> NewConsent {
    NewConsent {
        customer_id,
        purpose: ConsentPurpose::Vulnerability,
        statement: "agreed on the phone that we note she was recently bereaved".to_owned(),
        channel: Some(Channel::Phone),
        actor: "agent-ada".to_owned(),
    }
}

async fn stated_needs_join_the_record_and_travel_to_routing(store: &dyn CasesStore) {
    // The first call states Welsh and large print (the builder's needs).
    let first = apply(
        store,
        ContactBuilder::new(Channel::Phone, "council-tax").phone(PHONE),
    )
    .await;
    let record = customer(store, first.customer_id).await;
    assert_eq!(record.needs.preferred_language.as_deref(), Some("cy"));
    assert!(record.needs.large_print);
    assert_eq!(record.needs.updated_by.as_deref(), Some("contact"));
    let told = needs_told_to_routing(store).await;
    assert_eq!(told.language, "cy");
    assert!(told.large_print && !told.british_sign_language);

    // Staff record what the resident asked for: BSL, letters, no large print.
    let wanted = CustomerNeeds {
        preferred_channel: Some(Channel::Letter),
        preferred_language: Some("cy".to_owned()),
        british_sign_language: true,
        ..CustomerNeeds::default()
    };
    let updated = store
        .update_customer_needs(&update(first.customer_id, wanted.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.needs.updated_by.as_deref(), Some("agent-ada"));
    assert!(updated.needs.updated_at.is_some());
    assert_eq!(
        CustomerNeeds {
            updated_at: None,
            updated_by: None,
            ..updated.needs.clone()
        },
        wanted
    );
    assert_eq!(customer(store, first.customer_id).await, updated);

    // A web form that says nothing of needs: routing is told the record's,
    // and the record is unchanged.
    let form = apply(
        store,
        ContactBuilder::new(Channel::Web, "waste")
            .phone(PHONE)
            .needs(Needs::default()),
    )
    .await;
    assert_eq!(form.customer_id, first.customer_id);
    let told = needs_told_to_routing(store).await;
    assert!(told.british_sign_language && !told.large_print);
    assert_eq!(told.language, "cy");
    assert_eq!(customer(store, first.customer_id).await.needs, updated.needs);

    // A later call in Polish asking for a hearing loop adds to the record.
    apply(
        store,
        ContactBuilder::new(Channel::Phone, "waste")
            .phone(PHONE)
            .needs(Needs {
                language: Some("pl".to_owned()),
                hearing_loop: true,
                ..Needs::default()
            }),
    )
    .await;
    let needs = customer(store, first.customer_id).await.needs;
    assert_eq!(needs.preferred_language.as_deref(), Some("pl"));
    assert!(needs.hearing_loop && needs.british_sign_language);
    assert_eq!(needs.preferred_channel, Some(Channel::Letter));
    assert_eq!(needs.updated_by.as_deref(), Some("contact"));

    assert!(
        store
            .update_customer_needs(&update(CustomerId::new(), CustomerNeeds::default()))
            .await
            .unwrap()
            .is_none()
    );
}

async fn vulnerability_is_recorded_only_with_consent(store: &dyn CasesStore) {
    let contact = apply(
        store,
        ContactBuilder::new(Channel::Phone, "council-tax")
            .phone(PHONE)
            .needs(Needs::default()),
    )
    .await;
    let resident = contact.customer_id;
    let bereaved = CustomerNeeds {
        large_print: true,
        vulnerabilities: BTreeSet::from([Vulnerability::Bereavement]),
        ..CustomerNeeds::default()
    };
    let refused = store
        .update_customer_needs(&update(resident, bereaved.clone()))
        .await;
    assert!(
        matches!(&refused, Err(CasesError::NeedsRefused(why)) if why.contains("consent")),
        "{refused:?}"
    );
    assert!(customer(store, resident).await.needs.vulnerabilities.is_empty());

    let given = store.record_consent(&consent(resident)).await.unwrap().unwrap();
    assert!(given.is_active());
    assert_eq!(given.recorded_by, "agent-ada");
    let updated = store
        .update_customer_needs(&update(resident, bereaved))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        updated.needs.vulnerabilities,
        BTreeSet::from([Vulnerability::Bereavement])
    );
    apply(
        store,
        ContactBuilder::new(Channel::Phone, "council-tax")
            .phone(PHONE)
            .needs(Needs::default()),
    )
    .await;
    let told = needs_told_to_routing(store).await;
    assert!(told.vulnerable && told.vulnerability_consent && told.large_print);

    // Withdrawn: the vulnerability goes with it, the rest of the record stays.
    let withdrawn = store
        .withdraw_consent(&WithdrawConsent {
            consent_id: given.id,
            reason: "asked us to remove it".to_owned(),
            actor: "agent-bo".to_owned(),
        })
        .await
        .unwrap()
        .unwrap();
    let withdrawal = withdrawn.withdrawal.clone().expect("withdrawn");
    assert_eq!(withdrawal.by, "agent-bo");
    assert_eq!(withdrawal.reason, "asked us to remove it");
    let needs = customer(store, resident).await.needs;
    assert!(needs.vulnerabilities.is_empty() && needs.large_print);
    assert_eq!(needs.updated_by.as_deref(), Some("agent-bo"));
    apply(
        store,
        ContactBuilder::new(Channel::Phone, "council-tax")
            .phone(PHONE)
            .needs(Needs::default()),
    )
    .await;
    assert!(!needs_told_to_routing(store).await.vulnerable);

    let again = store
        .withdraw_consent(&WithdrawConsent {
            consent_id: given.id,
            reason: String::new(),
            actor: "agent-bo".to_owned(),
        })
        .await;
    assert!(matches!(again, Err(CasesError::NeedsRefused(_))), "{again:?}");
    assert_eq!(store.consents_of(resident).await.unwrap(), [withdrawn]);
    assert!(
        store
            .withdraw_consent(&WithdrawConsent {
                consent_id: Uuid::now_v7(),
                reason: String::new(),
                actor: "agent-bo".to_owned(),
            })
            .await
            .unwrap()
            .is_none()
    );
}

async fn consent_given_on_a_contact_is_recorded_with_it(store: &dyn CasesStore) {
    let form = ContactBuilder::new(Channel::Web, "housing")
        .email("sam@example.org")
        .needs(Needs {
            vulnerable: true,
            vulnerability_consent: true,
            ..Needs::default()
        });
    let contact_id = form.clone().build().contact_id;
    let applied = apply(store, form).await;
    let needs = customer(store, applied.customer_id).await.needs;
    assert_eq!(needs.vulnerabilities, BTreeSet::from([Vulnerability::Declared]));
    let consents = store.consents_of(applied.customer_id).await.unwrap();
    assert_eq!(consents.len(), 1);
    assert_eq!(consents[0].recorded_by, "contact");
    assert_eq!(consents[0].contact_id, Some(contact_id));
    assert_eq!(consents[0].channel, Some(Channel::Web));
    assert_eq!(consents[0].purpose, ConsentPurpose::Vulnerability);
    assert!(needs_told_to_routing(store).await.vulnerable);

    // Said to be vulnerable without consenting to it being recorded: nothing is.
    let unconsented = apply(
        store,
        ContactBuilder::new(Channel::Web, "housing")
            .email("kit@example.org")
            .needs(Needs {
                vulnerable: true,
                ..Needs::default()
            }),
    )
    .await;
    assert!(
        customer(store, unconsented.customer_id)
            .await
            .needs
            .vulnerabilities
            .is_empty()
    );
    assert!(
        store
            .consents_of(unconsented.customer_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!needs_told_to_routing(store).await.vulnerable);
}

async fn an_erased_resident_keeps_no_needs_and_takes_none(store: &dyn CasesStore) {
    let applied = apply(
        store,
        ContactBuilder::new(Channel::Phone, "council-tax").phone(PHONE),
    )
    .await;
    let resident = applied.customer_id;
    store.record_consent(&consent(resident)).await.unwrap().unwrap();
    store
        .update_customer_needs(&update(
            resident,
            CustomerNeeds {
                british_sign_language: true,
                vulnerabilities: BTreeSet::from([Vulnerability::Bereavement]),
                ..CustomerNeeds::default()
            },
        ))
        .await
        .unwrap()
        .unwrap();
    store
        .erase_customer(&ErasureRequest {
            customer_id: resident,
            reason: "erasure request ER-2026-0201".to_owned(),
            actor: "admin-ali".to_owned(),
            only_if_inactive_since: None,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(customer(store, resident).await.needs, CustomerNeeds::default());
    let consents = store.consents_of(resident).await.unwrap();
    assert_eq!(consents.len(), 1);
    assert_eq!(consents[0].statement, "erased");
    for refused in [
        store
            .update_customer_needs(&update(resident, CustomerNeeds::default()))
            .await
            .map(|_| ()),
        store.record_consent(&consent(resident)).await.map(|_| ()),
    ] {
        assert!(
            matches!(&refused, Err(CasesError::NeedsRefused(why)) if why.contains("erased")),
            "{refused:?}"
        );
    }
}

async fn a_merge_adds_the_merged_records_needs_and_an_unmerge_takes_them_back(store: &dyn CasesStore) {
    let call = apply(
        store,
        ContactBuilder::new(Channel::Phone, "council-tax").phone(PHONE),
    )
    .await;
    let form = apply(
        store,
        ContactBuilder::new(Channel::Web, "waste")
            .email("sam@example.org")
            .needs(Needs {
                british_sign_language: true,
                ..Needs::default()
            }),
    )
    .await;
    assert_ne!(call.customer_id, form.customer_id);
    let before = customer(store, call.customer_id).await.needs;
    assert!(!before.british_sign_language);

    let merge = merge(store, call.customer_id, form.customer_id).await;
    let merged = customer(store, call.customer_id).await.needs;
    assert!(merged.british_sign_language && merged.large_print);
    assert_eq!(merged.preferred_language.as_deref(), Some("cy"));
    assert_eq!(merged.updated_by.as_deref(), Some("agent-ada"));

    store
        .unmerge_customers(merge.id, "agent-bo", "two different people after all")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(customer(store, call.customer_id).await.needs, before);
    assert!(
        customer(store, form.customer_id)
            .await
            .needs
            .british_sign_language
    );
}

async fn an_unmerge_brings_back_no_vulnerability_whose_consent_was_withdrawn(store: &dyn CasesStore) {
    let call = apply(
        store,
        ContactBuilder::new(Channel::Phone, "council-tax").phone(PHONE),
    )
    .await;
    let form = apply(
        store,
        ContactBuilder::new(Channel::Web, "waste")
            .email("sam@example.org")
            .needs(Needs {
                large_print: true,
                ..Needs::default()
            }),
    )
    .await;
    let given = store
        .record_consent(&consent(call.customer_id))
        .await
        .unwrap()
        .unwrap();
    let bereaved = CustomerNeeds {
        vulnerabilities: BTreeSet::from([Vulnerability::Bereavement]),
        ..CustomerNeeds::default()
    };
    store
        .update_customer_needs(&update(call.customer_id, bereaved))
        .await
        .unwrap()
        .unwrap();
    let merge = merge(store, call.customer_id, form.customer_id).await;
    store
        .withdraw_consent(&WithdrawConsent {
            consent_id: given.id,
            reason: "asked us to remove it".to_owned(),
            actor: "agent-bo".to_owned(),
        })
        .await
        .unwrap()
        .unwrap();

    store
        .unmerge_customers(merge.id, "agent-bo", "two different people after all")
        .await
        .unwrap()
        .unwrap();
    // The record as it was before the merge, but for what the resident withdrew.
    let restored = customer(store, call.customer_id).await.needs;
    assert!(restored.vulnerabilities.is_empty(), "{restored:?}");
    assert!(!restored.large_print, "the merged record's needs go back with it");
}

contract_suite!(
    stated_needs_join_the_record_and_travel_to_routing,
    a_merge_adds_the_merged_records_needs_and_an_unmerge_takes_them_back,
    an_unmerge_brings_back_no_vulnerability_whose_consent_was_withdrawn,
    vulnerability_is_recorded_only_with_consent,
    consent_given_on_a_contact_is_recorded_with_it,
    an_erased_resident_keeps_no_needs_and_takes_none,
);
