//! `CaseService` over a real tonic server on 127.0.0.1:0 and a real client,
//! backed by a SQLite case store.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use switchboard_cases::{CasesGrpc, CasesStore};
use switchboard_domain::{Channel, ContactId, CustomerId};
use switchboard_proto::v1;
use switchboard_proto::v1::case_service_client::CaseServiceClient;
use switchboard_proto::v1::case_service_server::CaseServiceServer;
use switchboard_runtime::{Principal, Role};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;
use tonic::transport::Channel as TransportChannel;
use tonic_types::StatusExt;

use common::{ContactBuilder, StoreGuard, now};

/// The subject of every call to the test server.
const AGENT: &str = "agent-ada";

struct TestServer {
    client: CaseServiceClient<TransportChannel>,
    store: Arc<dyn CasesStore>,
    _guard: StoreGuard,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn spawn_server() -> TestServer {
    let (store, guard) = common::sqlite_store().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    // The auth layer in front of the real server puts the caller's principal
    // on the request; here an interceptor does, for a fixed agent.
    let service = CaseServiceServer::with_interceptor(
        CasesGrpc::new(Arc::clone(&store)),
        |mut request: tonic::Request<()>| {
            request
                .extensions_mut()
                .insert(Principal::new(AGENT, [Role::Agent]));
            Ok(request)
        },
    );
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    let client = CaseServiceClient::connect(format!("http://{address}"))
        .await
        .unwrap();
    TestServer {
        client,
        store,
        _guard: guard,
        _shutdown: shutdown,
    }
}

impl TestServer {
    /// The logged reads of `customer_id`'s personal data, newest first.
    async fn reads_of(&mut self, customer_id: &str) -> Vec<v1::PersonalDataRead> {
        self.client
            .list_personal_data_reads(v1::ListPersonalDataReadsRequest {
                customer_id: customer_id.to_owned(),
                page_size: 0,
            })
            .await
            .unwrap()
            .into_inner()
            .reads
    }
}

/// The single field a status's `google.rpc.BadRequest` names.
fn bad_fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .expect("bad request details")
        .field_violations
        .into_iter()
        .map(|violation| violation.field)
        .collect()
}

#[tokio::test]
async fn get_contact_answers_the_stored_contact_not_found_and_invalid_ids() {
    let mut server = spawn_server().await;
    let call = ContactBuilder::new(Channel::Phone, "waste")
        .caller("07700900123")
        .build();
    server
        .store
        .apply_contacts(std::slice::from_ref(&call))
        .await
        .unwrap();

    let record = server
        .client
        .get_contact(v1::GetContactRequest {
            contact_id: call.contact_id.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(record.contact_id, call.contact_id.to_string());
    assert_eq!(record.reference, call.reference.as_str());
    assert_eq!(record.channel, v1::Channel::Phone as i32);
    assert_eq!(record.service, "waste");
    assert_eq!(record.summary, call.summary);
    assert_eq!(record.details, call.details);
    assert_eq!(
        record.needs.as_ref().map(|needs| needs.language.as_str()),
        Some("cy")
    );
    assert!(!record.customer_id.is_empty() && !record.case_id.is_empty());
    assert_eq!(
        record.received_at.map(|at| at.seconds),
        Some(call.received_at.timestamp())
    );
    match record.origin {
        Some(v1::contact_record::Origin::Phone(phone)) => assert_eq!(phone.caller_number, "+447700900123"),
        other => panic!("expected a phone origin, got {other:?}"),
    }

    let missing = server
        .client
        .get_contact(v1::GetContactRequest {
            contact_id: ContactId::new().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let invalid = server
        .client
        .get_contact(v1::GetContactRequest {
            contact_id: "SB-123".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&invalid), ["contact_id"]);
}

#[tokio::test]
async fn get_case_by_id_or_by_the_reference_as_typed() {
    let mut server = spawn_server().await;
    let call = ContactBuilder::new(Channel::Phone, "council-tax")
        .caller("07700900123")
        .build();
    let form = ContactBuilder::new(Channel::Web, "council-tax")
        .phone("07700900123")
        .build();
    let outcomes = server
        .store
        .apply_contacts(&[call.clone(), form.clone()])
        .await
        .unwrap();
    let case_id = outcomes[0].applied().unwrap().case_id;

    let by_id = server
        .client
        .get_case(v1::GetCaseRequest {
            key: Some(v1::get_case_request::Key::CaseId(case_id.to_string())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_id.case_id, case_id.to_string());
    assert_eq!(by_id.status, v1::CaseStatus::Open as i32);
    assert_eq!(
        by_id.contact_ids,
        [call.contact_id.to_string(), form.contact_id.to_string()]
    );

    let typed = by_id.reference.to_lowercase().replace('-', " ");
    let by_reference = server
        .client
        .get_case(v1::GetCaseRequest {
            key: Some(v1::get_case_request::Key::Reference(typed)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_reference, by_id);

    let no_key = server
        .client
        .get_case(v1::GetCaseRequest { key: None })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&no_key), ["case_id"]);
    let bad_reference = server
        .client
        .get_case(v1::GetCaseRequest {
            key: Some(v1::get_case_request::Key::Reference("SB-00000-00000".to_owned())),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&bad_reference), ["reference"]);
    let unknown = server
        .client
        .get_case(v1::GetCaseRequest {
            key: Some(v1::get_case_request::Key::Reference("CS-00000-00000".to_owned())),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn the_timeline_pages_through_every_contact_and_case() {
    let mut server = spawn_server().await;
    let start = now() - chrono::Duration::hours(2);
    let mut batch = Vec::new();
    for (minute, service) in [(0, "waste"), (1, "housing"), (2, "waste")] {
        batch.push(
            ContactBuilder::new(Channel::Phone, service)
                .caller("07700900999")
                .at(start + chrono::Duration::minutes(minute))
                .build(),
        );
    }
    let outcomes = server.store.apply_contacts(&batch).await.unwrap();
    let customer_id = outcomes[0].applied().unwrap().customer_id.to_string();

    let mut entries = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = server
            .client
            .get_customer_timeline(v1::GetCustomerTimelineRequest {
                customer_id: customer_id.clone(),
                page_size: 2,
                page_token: page_token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            page.customer.as_ref().map(|record| record.customer_id.as_str()),
            Some(customer_id.as_str())
        );
        assert!(page.entries.len() <= 2);
        entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let kinds: Vec<&str> = entries
        .iter()
        .map(|entry| match &entry.entry {
            Some(v1::timeline_entry::Entry::Contact(_)) => "contact",
            Some(v1::timeline_entry::Entry::Case(_)) => "case",
            None => "none",
        })
        .collect();
    assert_eq!(kinds, ["contact", "case", "contact", "case", "contact"]);

    let bad_token = server
        .client
        .get_customer_timeline(v1::GetCustomerTimelineRequest {
            customer_id: customer_id.clone(),
            page_size: 0,
            page_token: "bogus".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&bad_token), ["page_token"]);
    let unknown = server
        .client
        .get_customer_timeline(v1::GetCustomerTimelineRequest {
            customer_id: CustomerId::new().to_string(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let invalid = server
        .client
        .get_customer_timeline(v1::GetCustomerTimelineRequest {
            customer_id: "nope".to_owned(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&invalid), ["customer_id"]);
}

#[tokio::test]
async fn search_customers_normalises_criteria_and_names_bad_ones() {
    let mut server = spawn_server().await;
    let form = ContactBuilder::new(Channel::Web, "waste")
        .phone("07700900321")
        .email("grace@example.org")
        .name("Grace Hopper")
        .postcode("SO43 7PN")
        .build();
    server.store.apply_contacts(&[form]).await.unwrap();

    let found = server
        .client
        .search_customers(v1::SearchCustomersRequest {
            phone: "+44 (0)7700 900321".replace("(0)", ""),
            postcode: "so43 7pn".to_owned(),
            name: "  HOPPER ".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.customers.len(), 1);
    let customer = found.customers[0].customer.as_ref().unwrap();
    assert_eq!(customer.phone, "+447700900321");
    assert_eq!(customer.email, "grace@example.org");

    let none = server
        .client
        .search_customers(v1::SearchCustomersRequest {
            email: "nobody@example.org".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(none.customers.is_empty());

    let empty = server
        .client
        .search_customers(v1::SearchCustomersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&empty),
        ["phone", "email", "postcode", "name", "reference"]
    );
    let invalid = server
        .client
        .search_customers(v1::SearchCustomersRequest {
            email: "not-an-email".to_owned(),
            postcode: "nowhere".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&invalid), ["email", "postcode"]);
}

#[tokio::test]
async fn a_resident_is_found_by_the_reference_they_quote() {
    let mut server = spawn_server().await;
    let form = ContactBuilder::new(Channel::Web, "waste")
        .email("quoting@example.org")
        .build();
    let applied = server
        .store
        .apply_contacts(std::slice::from_ref(&form))
        .await
        .unwrap();
    let customer_id = applied[0].applied().unwrap().customer_id;
    let found = server
        .client
        .search_customers(v1::SearchCustomersRequest {
            reference: form.reference.as_str().to_lowercase(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.customers.len(), 1);
    assert_eq!(found.customers[0].customer_id, customer_id.to_string());
    let bad = server
        .client
        .search_customers(v1::SearchCustomersRequest {
            reference: "ZZ-1".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&bad), ["reference"]);
}

#[tokio::test]
async fn staff_change_a_case_status_and_add_notes_in_their_own_name() {
    let mut server = spawn_server().await;
    let call = ContactBuilder::new(Channel::Phone, "housing-repairs")
        .caller("07700900456")
        .build();
    let applied = server
        .store
        .apply_contacts(std::slice::from_ref(&call))
        .await
        .unwrap();
    let case_id = applied[0].applied().unwrap().case_id.to_string();

    let note = server
        .client
        .add_case_note(v1::AddCaseNoteRequest {
            case_id: case_id.clone(),
            text: "  boiler engineer booked  ".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(note.author, AGENT);
    assert_eq!(note.text, "boiler engineer booked");

    let resolved = server
        .client
        .update_case_status(v1::UpdateCaseStatusRequest {
            case_id: case_id.clone(),
            status: v1::CaseStatus::Resolved as i32,
            reason: "boiler repaired".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.status, v1::CaseStatus::Resolved as i32);
    assert_eq!(resolved.outcome, "resolved");
    assert!(resolved.resolved_at.is_some() && resolved.due_at.is_some());
    assert_eq!(resolved.history.len(), 1);
    assert_eq!(resolved.history[0].actor, AGENT);
    assert_eq!(resolved.history[0].from_status, v1::CaseStatus::Open as i32);

    let case = server
        .client
        .get_case(v1::GetCaseRequest {
            key: Some(v1::get_case_request::Key::CaseId(case_id.clone())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(case.notes.len(), 1);
    assert_eq!(case.notes[0].note_id, note.note_id);
    assert_eq!(case.history.len(), 1);

    server
        .client
        .update_case_status(v1::UpdateCaseStatusRequest {
            case_id: case_id.clone(),
            status: v1::CaseStatus::Closed as i32,
            reason: "no further action".to_owned(),
        })
        .await
        .unwrap();
    let refused = server
        .client
        .update_case_status(v1::UpdateCaseStatusRequest {
            case_id: case_id.clone(),
            status: v1::CaseStatus::Open as i32,
            reason: "resident called back".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("closed"), "{refused:?}");

    let unknown = server
        .client
        .update_case_status(v1::UpdateCaseStatusRequest {
            case_id: ContactId::new().to_string(),
            status: v1::CaseStatus::Closed as i32,
            reason: "x".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let unknown_note = server
        .client
        .add_case_note(v1::AddCaseNoteRequest {
            case_id: ContactId::new().to_string(),
            text: "x".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown_note.code(), Code::NotFound);

    let bad = server
        .client
        .update_case_status(v1::UpdateCaseStatusRequest {
            case_id: "not-a-case".to_owned(),
            status: 42,
            reason: " ".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&bad), ["case_id", "status", "reason"]);
    let unspecified = server
        .client
        .update_case_status(v1::UpdateCaseStatusRequest {
            case_id: case_id.clone(),
            status: v1::CaseStatus::Unspecified as i32,
            reason: "x".repeat(1_001),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&unspecified), ["status", "reason"]);
    let empty_note = server
        .client
        .add_case_note(v1::AddCaseNoteRequest {
            case_id,
            text: "\n".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&empty_note), ["text"]);
}

#[tokio::test]
async fn agents_confirm_or_dismiss_suggested_matches_and_merges_are_recorded() {
    let mut server = spawn_server().await;
    // Margaret, then an unnamed caller on her landline: a possible match.
    let named = ContactBuilder::new(Channel::Phone, "waste")
        .phone("01632 960222")
        .name("Margaret Sample")
        .build();
    let unnamed = ContactBuilder::new(Channel::Phone, "waste")
        .caller("01632 960222")
        .build();
    server.store.apply_contacts(&[named]).await.unwrap();
    server.store.apply_contacts(&[unnamed]).await.unwrap();
    let suggestions = server
        .client
        .list_match_suggestions(v1::ListMatchSuggestionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .suggestions;
    assert_eq!(suggestions.len(), 1);
    let suggestion = &suggestions[0];
    assert_eq!(suggestion.signals, ["same_landline"]);
    assert_eq!(suggestion.status, "open");

    let merge = server
        .client
        .merge_customers(v1::MergeCustomersRequest {
            survivor_id: suggestion.candidate_id.clone(),
            merged_id: suggestion.customer_id.clone(),
            reason: "caller confirmed her name and address".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(merge.merged_by, AGENT);
    assert_eq!(merge.moved_contacts, 1);
    let merges = server
        .client
        .list_customer_merges(v1::ListCustomerMergesRequest {
            customer_id: suggestion.candidate_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .merges;
    assert_eq!(merges.len(), 1);
    assert_eq!(merges[0].merge_id, merge.merge_id);
    let undone = server
        .client
        .unmerge_customers(v1::UnmergeCustomersRequest {
            merge_id: merge.merge_id.clone(),
            reason: "her husband uses the same phone".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(undone.unmerged_by, AGENT);
    let again = server
        .client
        .unmerge_customers(v1::UnmergeCustomersRequest {
            merge_id: merge.merge_id,
            reason: "again".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);

    let bad_merge = server
        .client
        .merge_customers(v1::MergeCustomersRequest {
            survivor_id: "someone".to_owned(),
            merged_id: String::new(),
            reason: " ".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&bad_merge), ["survivor_id", "merged_id", "reason"]);
    let itself = server
        .client
        .merge_customers(v1::MergeCustomersRequest {
            survivor_id: suggestion.customer_id.clone(),
            merged_id: suggestion.customer_id.clone(),
            reason: "x".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(itself.code(), Code::FailedPrecondition);
    let unknown = server
        .client
        .merge_customers(v1::MergeCustomersRequest {
            survivor_id: suggestion.customer_id.clone(),
            merged_id: CustomerId::new().to_string(),
            reason: "x".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let bad_dismiss = server
        .client
        .dismiss_match_suggestion(v1::DismissMatchSuggestionRequest {
            suggestion_id: "7".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&bad_dismiss), ["suggestion_id"]);
    let bad_list = server
        .client
        .list_match_suggestions(v1::ListMatchSuggestionsRequest {
            customer_id: "nobody".to_owned(),
            page_size: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&bad_list), ["customer_id"]);
    let bad_unmerge = server
        .client
        .unmerge_customers(v1::UnmergeCustomersRequest {
            merge_id: String::new(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&bad_unmerge), ["merge_id", "reason"]);
}

#[tokio::test]
async fn staff_record_referrals_in_their_own_name_and_bad_requests_name_their_fields() {
    let mut server = spawn_server().await;
    let visit = ContactBuilder::new(Channel::FaceToFace, "homelessness")
        .email("referred@example.org")
        .build();
    let applied = server
        .store
        .apply_contacts(std::slice::from_ref(&visit))
        .await
        .unwrap();
    let case_id = applied[0].applied().unwrap().case_id.to_string();

    let referral = server
        .client
        .make_referral(v1::MakeReferralRequest {
            case_id: case_id.clone(),
            partner_id: "citizens-advice".to_owned(),
            consent_given: true,
            consent_statement: "  name, phone and the eviction notice  ".to_owned(),
            note: "appointment wanted this week".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(referral.made_by, AGENT);
    assert_eq!(referral.case_id, case_id);
    assert_eq!(referral.kind, "referral");
    assert!(referral.consent_given && referral.consent_given_at.is_some());
    assert_eq!(referral.consent_statement, "name, phone and the eviction notice");
    assert_eq!(referral.status, v1::ReferralStatus::Made as i32);
    assert!(referral.outcome_reported_at.is_none());

    let accepted = server
        .client
        .record_referral_outcome(v1::RecordReferralOutcomeRequest {
            referral_id: referral.referral_id.clone(),
            status: v1::ReferralStatus::Accepted as i32,
            note: "seen on Tuesday".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.status, v1::ReferralStatus::Accepted as i32);
    assert_eq!(accepted.outcome_reported_by, AGENT);
    assert_eq!(accepted.outcome_note, "seen on Tuesday");

    let case = server
        .client
        .get_case(v1::GetCaseRequest {
            key: Some(v1::get_case_request::Key::CaseId(case_id.clone())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(case.referrals, [accepted]);

    let declined_late = server
        .client
        .record_referral_outcome(v1::RecordReferralOutcomeRequest {
            referral_id: referral.referral_id.clone(),
            status: v1::ReferralStatus::Declined as i32,
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(declined_late.code(), Code::FailedPrecondition);
    assert!(declined_late.message().contains("accepted"), "{declined_late:?}");

    let unknown_case = server
        .client
        .make_referral(v1::MakeReferralRequest {
            case_id: CustomerId::new().to_string(),
            partner_id: "shelter".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown_case.code(), Code::NotFound);
    let unknown_referral = server
        .client
        .record_referral_outcome(v1::RecordReferralOutcomeRequest {
            referral_id: CustomerId::new().to_string(),
            status: v1::ReferralStatus::Completed as i32,
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown_referral.code(), Code::NotFound);

    let make = |partner_id: &str, consent_given: bool, consent_statement: String, note: String| {
        v1::MakeReferralRequest {
            case_id: case_id.clone(),
            partner_id: partner_id.to_owned(),
            consent_given,
            consent_statement,
            note,
        }
    };
    let long = "x".repeat(2_001);
    let bad_referrals: Vec<(v1::MakeReferralRequest, &[&str])> = vec![
        (
            v1::MakeReferralRequest {
                case_id: "not-a-case".to_owned(),
                ..make("Citizens Advice", false, String::new(), String::new())
            },
            &["case_id", "partner_id"],
        ),
        (make("", false, String::new(), String::new()), &["partner_id"]),
        (
            make("citizens-advice", true, " ".to_owned(), long.clone()),
            &["consent_statement", "note"],
        ),
        (
            make("shelter", false, "agreed".to_owned(), String::new()),
            &["consent_statement"],
        ),
        (
            make("shelter", true, long.clone(), String::new()),
            &["consent_statement"],
        ),
        // Known only to the directory the store holds.
        (
            make("nowhere-food-bank", false, String::new(), String::new()),
            &["partner_id"],
        ),
        (
            make("citizens-advice", false, String::new(), String::new()),
            &["consent_given"],
        ),
    ];
    for (request, fields) in bad_referrals {
        let status = server.client.make_referral(request).await.unwrap_err();
        assert_eq!(bad_fields(&status), fields, "{status:?}");
    }
    let consent = server
        .client
        .make_referral(make("citizens-advice", false, String::new(), String::new()))
        .await
        .unwrap_err();
    let violations = consent.get_details_bad_request().unwrap().field_violations;
    assert!(
        violations[0]
            .description
            .contains("Citizens Advice New Forest shares the resident's details")
            && violations[0].description.contains("consent must be recorded"),
        "{consent:?}"
    );

    let outcome = |referral_id: &str, status: i32, note: String| v1::RecordReferralOutcomeRequest {
        referral_id: referral_id.to_owned(),
        status,
        note,
    };
    let bad_outcomes: Vec<(v1::RecordReferralOutcomeRequest, &[&str])> = vec![
        (
            outcome("nope", v1::ReferralStatus::Unspecified as i32, long.clone()),
            &["referral_id", "status", "note"],
        ),
        (
            outcome(
                &referral.referral_id,
                v1::ReferralStatus::Made as i32,
                String::new(),
            ),
            &["status"],
        ),
        (outcome(&referral.referral_id, 42, String::new()), &["status"]),
    ];
    for (request, fields) in bad_outcomes {
        let status = server.client.record_referral_outcome(request).await.unwrap_err();
        assert_eq!(bad_fields(&status), fields, "{status:?}");
    }

    // A closed case takes no more referrals.
    server
        .client
        .update_case_status(v1::UpdateCaseStatusRequest {
            case_id: case_id.clone(),
            status: v1::CaseStatus::Closed as i32,
            reason: "no further action".to_owned(),
        })
        .await
        .unwrap();
    let closed = server
        .client
        .make_referral(make("shelter", false, String::new(), String::new()))
        .await
        .unwrap_err();
    assert_eq!(closed.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn every_read_of_personal_data_is_logged_with_who_what_and_why() {
    let mut server = spawn_server().await;
    let call = ContactBuilder::new(Channel::Phone, "waste")
        .caller("07700900789")
        .email("logged@example.org")
        .build();
    let applied = server
        .store
        .apply_contacts(std::slice::from_ref(&call))
        .await
        .unwrap();
    let applied = applied[0].applied().unwrap().clone();
    server
        .client
        .get_contact(with_purpose(v1::GetContactRequest {
            contact_id: call.contact_id.to_string(),
        }))
        .await
        .unwrap();
    server
        .client
        .get_case(with_purpose(v1::GetCaseRequest {
            key: Some(v1::get_case_request::Key::CaseId(applied.case_id.to_string())),
        }))
        .await
        .unwrap();
    server
        .client
        .get_customer_timeline(with_purpose(v1::GetCustomerTimelineRequest {
            customer_id: applied.customer_id.to_string(),
            ..Default::default()
        }))
        .await
        .unwrap();
    // No purpose stated: logged as such.
    server
        .client
        .search_customers(v1::SearchCustomersRequest {
            email: "logged@example.org".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    // A search that finds nobody reads nobody's data.
    server
        .client
        .search_customers(v1::SearchCustomersRequest {
            email: "nobody@example.org".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();

    let reads = server.reads_of(&applied.customer_id.to_string()).await;
    let logged: Vec<(&str, &str, &str)> = reads
        .iter()
        .map(|read| {
            (
                read.action.as_str(),
                read.record_id.as_str(),
                read.purpose.as_str(),
            )
        })
        .collect();
    let (contact, case, customer) = (
        call.contact_id.to_string(),
        applied.case_id.to_string(),
        applied.customer_id.to_string(),
    );
    assert_eq!(
        logged,
        [
            ("SearchCustomers", customer.as_str(), "not stated"),
            (
                "GetCustomerTimeline",
                customer.as_str(),
                "handling call SB-7K3MQ-9XD2H"
            ),
            ("GetCase", case.as_str(), "handling call SB-7K3MQ-9XD2H"),
            ("GetContact", contact.as_str(), "handling call SB-7K3MQ-9XD2H"),
        ]
    );
    assert!(reads.iter().all(|read| read.actor == AGENT && read.at.is_some()));
    let bad = server
        .client
        .list_personal_data_reads(v1::ListPersonalDataReadsRequest {
            customer_id: "someone".to_owned(),
            page_size: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&bad), ["customer_id"]);
}

/// A request stating why personal data is read, as an agent's desktop sends it.
fn with_purpose<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "x-switchboard-purpose",
        tonic::metadata::MetadataValue::from_static("handling call SB-7K3MQ-9XD2H"),
    );
    request
}

#[tokio::test]
async fn a_resident_gets_everything_held_about_them_and_after_erasure_nothing() {
    let mut server = spawn_server().await;
    let visit = ContactBuilder::new(Channel::FaceToFace, "council-tax")
        .name("Katherine Johnson")
        .email("katherine@example.org")
        .build();
    let applied = server
        .store
        .apply_contacts(std::slice::from_ref(&visit))
        .await
        .unwrap();
    let customer_id = applied[0].applied().unwrap().customer_id.to_string();
    let export = |customer_id: String| v1::ExportCustomerDataRequest { customer_id };

    let response = server
        .client
        .export_customer_data(with_purpose(export(customer_id.clone())))
        .await
        .unwrap()
        .into_inner();
    let data = response.data.unwrap();
    assert_eq!(data.contacts.len(), 1);
    assert_eq!(data.cases.len(), 1);
    assert_eq!(data.customer.unwrap().customer.unwrap().name, "Katherine Johnson");
    let json: serde_json::Value = serde_json::from_str(&response.json).unwrap();
    assert_eq!(json["customer"]["customer"]["email"], "katherine@example.org");
    assert_eq!(json["contacts"][0]["summary"], "moving house next month");
    assert!(response.html.starts_with("<!DOCTYPE html>"));
    for expected in [
        "Information we hold about you",
        "Katherine Johnson",
        "moving house next month",
    ] {
        assert!(response.html.contains(expected), "{expected} in the document");
    }
    // The export is itself a logged read.
    let reads = server.reads_of(&customer_id).await;
    assert_eq!(reads[0].action, "ExportCustomerData");

    let erased = server
        .client
        .erase_customer(v1::EraseCustomerRequest {
            customer_id: customer_id.clone(),
            reason: "erasure request ER-2026-0042".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(erased.erased_by, AGENT);
    let after = server
        .client
        .export_customer_data(export(customer_id.clone()))
        .await
        .unwrap()
        .into_inner();
    for gone in ["Katherine", "katherine@example.org", "moving house next month"] {
        assert!(!after.html.contains(gone), "{gone} is erased from the document");
        assert!(!after.json.contains(gone), "{gone} is erased from the JSON");
    }
    assert!(after.html.contains("was erased on"));
    assert_eq!(
        after.data.unwrap().erasure.unwrap().reason,
        "erasure request ER-2026-0042"
    );

    let again = server
        .client
        .erase_customer(v1::EraseCustomerRequest {
            customer_id: customer_id.clone(),
            reason: "again".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let bad = server
        .client
        .erase_customer(v1::EraseCustomerRequest {
            customer_id: "who".to_owned(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&bad), ["customer_id", "reason"]);
    let unknown = server
        .client
        .export_customer_data(export(CustomerId::new().to_string()))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn staff_record_needs_and_consent_and_bad_requests_name_their_fields() {
    let mut server = spawn_server().await;
    let call = ContactBuilder::new(Channel::Phone, "council-tax")
        .phone("07700900123")
        .build();
    let applied = server
        .store
        .apply_contacts(std::slice::from_ref(&call))
        .await
        .unwrap();
    let customer_id = applied[0].applied().unwrap().customer_id.to_string();
    let needs = |vulnerabilities: &[&str]| v1::CustomerNeeds {
        preferred_channel: v1::Channel::Letter as i32,
        preferred_language: "CY".to_owned(),
        large_print: true,
        vulnerabilities: vulnerabilities.iter().map(|v| (*v).to_owned()).collect(),
        ..v1::CustomerNeeds::default()
    };
    let update = |customer_id: &str, needs: v1::CustomerNeeds| v1::UpdateCustomerNeedsRequest {
        customer_id: customer_id.to_owned(),
        needs: Some(needs),
    };

    // Vulnerability before consent: refused, saying what to do.
    let refused = server
        .client
        .update_customer_needs(update(&customer_id, needs(&["bereavement"])))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("RecordConsent"),
        "{}",
        refused.message()
    );

    let consent = server
        .client
        .record_consent(v1::RecordConsentRequest {
            customer_id: customer_id.clone(),
            purpose: v1::ConsentPurpose::Vulnerability as i32,
            statement: "agreed we note the bereavement".to_owned(),
            channel: v1::Channel::Phone as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(consent.recorded_by, AGENT);
    assert!(consent.withdrawn_at.is_none());
    let record = server
        .client
        .update_customer_needs(update(&customer_id, needs(&["bereavement"])))
        .await
        .unwrap()
        .into_inner();
    let recorded = record.needs.unwrap();
    assert_eq!(recorded.preferred_language, "cy");
    assert_eq!(recorded.preferred_channel, v1::Channel::Letter as i32);
    assert_eq!(recorded.vulnerabilities, ["bereavement"]);
    assert_eq!(recorded.updated_by, AGENT);

    // The timeline shows the record; the consent list is a logged read.
    let timeline = server
        .client
        .get_customer_timeline(v1::GetCustomerTimelineRequest {
            customer_id: customer_id.clone(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(timeline.customer.unwrap().needs.unwrap().large_print);
    let listed = server
        .client
        .list_consents(v1::ListConsentsRequest {
            customer_id: customer_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .consents;
    assert_eq!(listed, std::slice::from_ref(&consent));
    let reads = server.reads_of(&customer_id).await;
    assert_eq!(reads[0].action, "ListConsents");

    let withdrawn = server
        .client
        .withdraw_consent(v1::WithdrawConsentRequest {
            consent_id: consent.consent_id.clone(),
            reason: "changed their mind".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(withdrawn.withdrawn_by, AGENT);
    assert_eq!(withdrawn.withdrawal_reason, "changed their mind");
    let reads = server.reads_of(&customer_id).await;
    assert_eq!(reads[0].action, "WithdrawConsent");
    assert_eq!(reads[0].record_id, consent.consent_id);
    let export = server
        .client
        .export_customer_data(v1::ExportCustomerDataRequest {
            customer_id: customer_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let exported = export.data.unwrap();
    assert!(
        exported
            .customer
            .unwrap()
            .needs
            .unwrap()
            .vulnerabilities
            .is_empty()
    );
    assert_eq!(exported.consents.len(), 1);
    for expected in [
        "You need large print",
        "agreed we note the bereavement",
        "You withdrew it on",
    ] {
        assert!(export.html.contains(expected), "{expected} in the document");
    }
    let again = server
        .client
        .withdraw_consent(v1::WithdrawConsentRequest {
            consent_id: consent.consent_id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);

    // Bad requests name every wrong field; unknown records are NOT_FOUND.
    let bad_needs = v1::CustomerNeeds {
        preferred_channel: 42,
        preferred_language: "not a language".to_owned(),
        vulnerabilities: vec!["carer".to_owned(), "sad".to_owned()],
        ..v1::CustomerNeeds::default()
    };
    let bad = server
        .client
        .update_customer_needs(update("who", bad_needs))
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&bad),
        [
            "customer_id",
            "needs.preferred_channel",
            "needs.preferred_language",
            "needs.vulnerabilities[1]"
        ]
    );
    // A request without the record would wipe it: refused.
    let bad = server
        .client
        .update_customer_needs(v1::UpdateCustomerNeedsRequest {
            customer_id: customer_id.clone(),
            needs: None,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&bad), ["needs"]);
    let bad = server
        .client
        .record_consent(v1::RecordConsentRequest {
            customer_id: customer_id.clone(),
            purpose: 0,
            statement: " ".to_owned(),
            channel: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&bad), ["purpose", "statement"]);
    let bad = server
        .client
        .withdraw_consent(v1::WithdrawConsentRequest {
            consent_id: "which".to_owned(),
            reason: "x".repeat(1_001),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&bad), ["consent_id", "reason"]);
    let unknown = server
        .client
        .update_customer_needs(update(&CustomerId::new().to_string(), needs(&[])))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let unknown = server
        .client
        .withdraw_consent(v1::WithdrawConsentRequest {
            consent_id: uuid::Uuid::now_v7().to_string(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn the_retention_schedules_runs_are_listed_newest_first() {
    let mut server = spawn_server().await;
    let schedule = switchboard_domain::RetentionSchedule::embedded().unwrap();
    let first = now();
    switchboard_cases::apply_retention(server.store.as_ref(), &schedule, first)
        .await
        .unwrap();
    switchboard_cases::apply_retention(
        server.store.as_ref(),
        &schedule,
        first + chrono::Duration::days(1),
    )
    .await
    .unwrap();
    let runs = server
        .client
        .list_retention_runs(v1::ListRetentionRunsRequest { page_size: 0 })
        .await
        .unwrap()
        .into_inner()
        .runs;
    // Four categories a run, two runs.
    assert_eq!(runs.len(), 8);
    let newest = runs[0].ran_at.unwrap().seconds;
    assert_eq!(newest, (first + chrono::Duration::days(1)).timestamp());
    assert!(runs.iter().all(|run| run.affected == 0));
    let categories: std::collections::BTreeSet<&str> = runs.iter().map(|run| run.category.as_str()).collect();
    assert_eq!(
        categories,
        ["case-notes", "contact-content", "inactive-customers", "read-log"].into()
    );
    let page = server
        .client
        .list_retention_runs(v1::ListRetentionRunsRequest { page_size: 3 })
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert_eq!(page.len(), 3);
}
