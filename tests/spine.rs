//! The working spine, end to end, in both modes: contacts submitted at intake
//! over gRPC and HTTP on every channel each end up exactly once in the case
//! store, on the right customer and the right case.

use std::{collections::BTreeSet, time::Duration};

use switchboard_proto::v1::{Channel, GetCaseRequest, SubmitContactRequest, get_case_request::Key};
use switchboard_tests::{
    TestSystem, verify_case_store, wait_for_contact,
    workload::{Workload, request_for},
};

const CONTACTS: usize = 1_000;
const RESIDENTS: usize = 300;

/// The resident of the issue: phones, then writes from a web form about the
/// same service with the same number. One customer, one case, both contacts.
async fn assert_phone_then_web_is_one_case(system: &TestSystem) {
    let resident = switchboard_tests::Resident::new(1_999);
    let phone_call = request_for(&resident, "council-tax", Channel::Phone, 1);
    let mut web_form: SubmitContactRequest = request_for(&resident, "council-tax", Channel::Web, 2);
    if let Some(customer) = web_form.customer.as_mut() {
        // Typed differently on the form; the same number once normalised.
        customer.phone = format!("+44 {} {}", &resident.phone_e164[3..7], &resident.phone_e164[7..]);
        customer.email = "resident.1999@example.org".to_owned();
    }
    let mut intake = system.intake_client().await.expect("intake client");
    let first = intake
        .submit_contact(phone_call)
        .await
        .expect("phone call accepted")
        .into_inner();
    let second = system.submit_http(&web_form).await.expect("web form accepted");

    let mut cases = system.cases_client().await.expect("cases client");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let call = wait_for_contact(&mut cases, &first.contact_id, deadline)
        .await
        .expect("call stored");
    let form = wait_for_contact(&mut cases, &second.contact_id, deadline)
        .await
        .expect("form stored");
    assert_eq!(call.customer_id, form.customer_id, "one customer");
    assert_eq!(call.case_id, form.case_id, "one case");
    let case = cases
        .get_case(GetCaseRequest {
            key: Some(Key::CaseId(call.case_id.clone())),
        })
        .await
        .expect("case")
        .into_inner();
    assert_eq!(
        case.contact_ids,
        vec![first.contact_id.clone(), second.contact_id.clone()]
    );
    let by_reference = cases
        .get_case(GetCaseRequest {
            key: Some(Key::Reference(case.reference.to_lowercase())),
        })
        .await
        .expect("case by reference, as a resident might read it out")
        .into_inner();
    assert_eq!(by_reference.case_id, case.case_id);
}

async fn spine(system: TestSystem) {
    let workload = Workload::new(0, RESIDENTS, CONTACTS);
    let submitted = system
        .submit_workload(&workload)
        .await
        .expect("every contact accepted");
    assert_eq!(submitted.len(), CONTACTS);
    let references: BTreeSet<&String> = submitted.iter().map(|(_, reference)| reference).collect();
    assert_eq!(references.len(), CONTACTS, "every contact has its own reference");
    verify_case_store(
        &mut system.cases_client().await.expect("cases client"),
        &workload,
        &submitted,
    )
    .await;
    assert_phone_then_web_is_one_case(&system).await;
    system.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_mode_stores_every_contact_once_on_the_right_case() {
    spine(TestSystem::embedded().await.expect("embedded system")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn distributed_mode_stores_every_contact_once_on_the_right_case() {
    spine(TestSystem::distributed().await.expect("distributed system")).await;
}

/// Submitting the same contacts again with the same idempotency keys answers
/// the same and stores nothing new.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resubmitting_with_the_same_keys_changes_nothing() {
    let system = TestSystem::embedded().await.expect("embedded system");
    let workload = Workload::new(1_500, 20, 60);
    let first = system.submit_workload(&workload).await.expect("first submission");
    let again = system
        .submit_workload(&workload)
        .await
        .expect("second submission");
    assert_eq!(first, again, "same keys, same answers");
    verify_case_store(
        &mut system.cases_client().await.expect("cases client"),
        &workload,
        &first,
    )
    .await;
    system.stop().await.expect("clean shutdown");
}
