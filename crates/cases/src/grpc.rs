//! `switchboard.v1.CaseService` over the case store: what agents see of a
//! resident's contacts and cases.
//!
//! Requests are converted to domain types first (an unparsable id or
//! criterion is `INVALID_ARGUMENT` naming the field); store errors become
//! `UNAVAILABLE` when retrying may help and an opaque `INTERNAL` otherwise,
//! with the cause chain logged by `switchboard_runtime::status`.

use std::sync::Arc;

use switchboard_domain::{CaseId, ContactId, CustomerId, ValidationErrors};
use switchboard_proto::v1;
use switchboard_proto::v1::case_service_server::{CaseService, CaseServiceServer};
use switchboard_runtime::{Principal, status};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::audit::{self, DataRead};
use crate::erasure::ErasureRequest;
use crate::error::CasesError;
use crate::lifecycle::{MAX_NOTE_CHARS, MAX_REASON_CHARS, StatusChange};
use crate::merges::{MAX_MERGE_REASON_CHARS, MergeRequest};
use crate::model::{
    CaseKey, CaseStatus, CustomerSearch, PageToken, SEARCH_PAGE_DEFAULT, SEARCH_PAGE_MAX,
    TIMELINE_PAGE_DEFAULT, TIMELINE_PAGE_MAX,
};
use crate::referrals::ReferralError;
use crate::store::CasesStore;
use crate::subject_access;
use crate::wire::{consent_withdrawal, needs_update, new_consent, new_referral, referral_outcome};

/// The `CaseService` implementation.
#[derive(Clone)]
pub struct CasesGrpc {
    store: Arc<dyn CasesStore>,
}

impl std::fmt::Debug for CasesGrpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CasesGrpc").finish_non_exhaustive()
    }
}

impl CasesGrpc {
    pub fn new(store: Arc<dyn CasesStore>) -> Self {
        CasesGrpc { store }
    }

    /// Records the caller's reads of personal data before they are answered
    /// ([`crate::audit`]): a read that cannot be recorded is not answered.
    async fn audit<T>(
        &self,
        request: &Request<T>,
        action: &str,
        read: impl IntoIterator<Item = (CustomerId, Uuid)>,
    ) -> Result<(), Status> {
        let actor = Principal::require(request)?.subject.clone();
        let purpose = audit::purpose(
            request
                .metadata()
                .get(audit::PURPOSE_HEADER)
                .and_then(|value| value.to_str().ok()),
        );
        let at = chrono::Utc::now();
        let reads: Vec<DataRead> = read
            .into_iter()
            .map(|(customer_id, record_id)| DataRead {
                id: Uuid::now_v7(),
                at,
                actor: actor.clone(),
                action: action.to_owned(),
                customer_id,
                record_id,
                purpose: purpose.clone(),
            })
            .collect();
        self.store
            .record_reads(&reads)
            .await
            .map_err(|error| store_status(&error))
    }

    /// The tonic service, for the binary to add to its server (with its
    /// auth layer, health and reflection).
    pub fn into_server(self) -> CaseServiceServer<CasesGrpc> {
        CaseServiceServer::new(self)
    }
}

/// Page size as the proto documents it: 0 means the default, anything above
/// the maximum is lowered to it (AIP-158).
fn page_size(requested: u32, default: usize, max: usize) -> usize {
    match usize::try_from(requested) {
        Ok(0) => default,
        Ok(size) => size.min(max),
        Err(_) => max,
    }
}

fn store_status(error: &CasesError) -> Status {
    match error {
        CasesError::InvalidPageToken => {
            status::invalid_field("page_token", "not a page token from a previous response")
        }
        CasesError::Transition(_)
        | CasesError::AnotherOpenCase { .. }
        | CasesError::MergeRefused(_)
        | CasesError::ErasureRefused(_)
        | CasesError::NeedsRefused(_) => Status::failed_precondition(error.to_string()),
        CasesError::Referral(refused) => referral_status(refused),
        error if error.is_transient() => status::unavailable(error),
        error => status::internal(error),
    }
}

#[async_trait::async_trait]
impl CaseService for CasesGrpc {
    #[tracing::instrument(name = "cases.get_contact", skip_all)]
    async fn get_contact(
        &self,
        request: Request<v1::GetContactRequest>,
    ) -> Result<Response<v1::ContactRecord>, Status> {
        let id = ContactId::parse(&request.get_ref().contact_id)
            .map_err(|error| status::invalid_field("contact_id", &error.to_string()))?;
        match self.store.get_contact(id).await {
            Ok(Some(contact)) => {
                self.audit(
                    &request,
                    "GetContact",
                    [(contact.customer_id, contact.id.as_uuid())],
                )
                .await?;
                Ok(Response::new(contact.into()))
            }
            Ok(None) => Err(Status::not_found(
                "no such contact in the case store (yet: contacts appear shortly after intake accepts them)",
            )),
            Err(error) => Err(store_status(&error)),
        }
    }

    #[tracing::instrument(name = "cases.get_case", skip_all)]
    async fn get_case(
        &self,
        request: Request<v1::GetCaseRequest>,
    ) -> Result<Response<v1::CaseRecord>, Status> {
        let key = CaseKey::try_from(request.get_ref()).map_err(|errors| status::invalid_argument(&errors))?;
        match self.store.case_detail(&key).await {
            Ok(Some(case)) => {
                self.audit(
                    &request,
                    "GetCase",
                    [(case.case.customer_id, case.case.id.as_uuid())],
                )
                .await?;
                Ok(Response::new(case.into()))
            }
            Ok(None) => Err(Status::not_found("no such case")),
            Err(error) => Err(store_status(&error)),
        }
    }

    #[tracing::instrument(name = "cases.get_customer_timeline", skip_all)]
    async fn get_customer_timeline(
        &self,
        request: Request<v1::GetCustomerTimelineRequest>,
    ) -> Result<Response<v1::CustomerTimeline>, Status> {
        let envelope = &request;
        let request = request.get_ref();
        let customer_id = CustomerId::parse(&request.customer_id)
            .map_err(|error| status::invalid_field("customer_id", &error.to_string()))?;
        let page_token = if request.page_token.is_empty() {
            None
        } else {
            Some(PageToken::parse(&request.page_token).map_err(|error| store_status(&error))?)
        };
        let size = page_size(request.page_size, TIMELINE_PAGE_DEFAULT, TIMELINE_PAGE_MAX);
        match self
            .store
            .customer_timeline(customer_id, size, page_token.as_ref())
            .await
        {
            Ok(Some(timeline)) => {
                let customer = timeline.customer.id;
                self.audit(envelope, "GetCustomerTimeline", [(customer, customer.as_uuid())])
                    .await?;
                Ok(Response::new(v1::CustomerTimeline {
                    customer: Some(timeline.customer.into()),
                    entries: timeline.entries.into_iter().map(Into::into).collect(),
                    next_page_token: timeline
                        .next_page_token
                        .map(|token| token.as_str().to_owned())
                        .unwrap_or_default(),
                }))
            }
            Ok(None) => Err(Status::not_found("no such customer")),
            Err(error) => Err(store_status(&error)),
        }
    }

    #[tracing::instrument(name = "cases.search_customers", skip_all)]
    async fn search_customers(
        &self,
        request: Request<v1::SearchCustomersRequest>,
    ) -> Result<Response<v1::SearchCustomersResponse>, Status> {
        let search = CustomerSearch::try_from(request.get_ref())
            .map_err(|errors| status::invalid_argument(&errors))?;
        let limit = page_size(request.get_ref().page_size, SEARCH_PAGE_DEFAULT, SEARCH_PAGE_MAX);
        match self.store.search_customers(&search, limit).await {
            Ok(customers) => {
                self.audit(
                    &request,
                    "SearchCustomers",
                    customers
                        .iter()
                        .map(|customer| (customer.id, customer.id.as_uuid())),
                )
                .await?;
                Ok(Response::new(v1::SearchCustomersResponse {
                    customers: customers.into_iter().map(Into::into).collect(),
                }))
            }
            Err(error) => Err(store_status(&error)),
        }
    }

    #[tracing::instrument(name = "cases.update_case_status", skip_all, fields(case_id))]
    async fn update_case_status(
        &self,
        request: Request<v1::UpdateCaseStatusRequest>,
    ) -> Result<Response<v1::CaseRecord>, Status> {
        let actor = Principal::require(&request)?.subject.clone();
        let change =
            status_change(request.get_ref(), actor).map_err(|errors| status::invalid_argument(&errors))?;
        tracing::Span::current().record("case_id", tracing::field::display(change.case_id));
        match self.store.change_case_status(&change).await {
            Ok(Some(detail)) => Ok(Response::new(detail.into())),
            Ok(None) => Err(Status::not_found("no such case")),
            Err(error) => Err(store_status(&error)),
        }
    }

    #[tracing::instrument(name = "cases.add_case_note", skip_all)]
    async fn add_case_note(
        &self,
        request: Request<v1::AddCaseNoteRequest>,
    ) -> Result<Response<v1::CaseNote>, Status> {
        let author = Principal::require(&request)?.subject.clone();
        let request = request.get_ref();
        let mut errors = ValidationErrors::new();
        let case_id = CaseId::parse(&request.case_id)
            .map_err(|error| errors.push("case_id", error.to_string()))
            .ok();
        let text = request.text.trim();
        if text.is_empty() {
            errors.push("text", "must not be empty");
        } else if text.chars().count() > MAX_NOTE_CHARS {
            errors.push("text", format!("at most {MAX_NOTE_CHARS} characters"));
        }
        let Some(case_id) = case_id.filter(|_| errors.is_empty()) else {
            return Err(status::invalid_argument(&errors));
        };
        match self.store.add_case_note(case_id, &author, text).await {
            Ok(Some(note)) => Ok(Response::new(note.into())),
            Ok(None) => Err(Status::not_found("no such case")),
            Err(error) => Err(store_status(&error)),
        }
    }
    #[tracing::instrument(name = "cases.list_match_suggestions", skip_all)]
    async fn list_match_suggestions(
        &self,
        request: Request<v1::ListMatchSuggestionsRequest>,
    ) -> Result<Response<v1::ListMatchSuggestionsResponse>, Status> {
        let request = request.get_ref();
        let customer_id = if request.customer_id.is_empty() {
            None
        } else {
            Some(
                CustomerId::parse(&request.customer_id)
                    .map_err(|error| status::invalid_field("customer_id", &error.to_string()))?,
            )
        };
        let limit = page_size(request.page_size, SEARCH_PAGE_DEFAULT, SEARCH_PAGE_MAX);
        match self.store.match_suggestions(customer_id, limit).await {
            Ok(suggestions) => Ok(Response::new(v1::ListMatchSuggestionsResponse {
                suggestions: suggestions.into_iter().map(Into::into).collect(),
            })),
            Err(error) => Err(store_status(&error)),
        }
    }

    #[tracing::instrument(name = "cases.dismiss_match_suggestion", skip_all)]
    async fn dismiss_match_suggestion(
        &self,
        request: Request<v1::DismissMatchSuggestionRequest>,
    ) -> Result<Response<v1::MatchSuggestion>, Status> {
        let actor = Principal::require(&request)?.subject.clone();
        let id = Uuid::parse_str(&request.get_ref().suggestion_id)
            .map_err(|_| status::invalid_field("suggestion_id", "not a suggestion id (a uuid)"))?;
        match self.store.dismiss_suggestion(id, &actor).await {
            Ok(Some(suggestion)) => Ok(Response::new(suggestion.into())),
            Ok(None) => Err(Status::not_found("no such suggestion")),
            Err(error) => Err(store_status(&error)),
        }
    }

    #[tracing::instrument(name = "cases.merge_customers", skip_all)]
    async fn merge_customers(
        &self,
        request: Request<v1::MergeCustomersRequest>,
    ) -> Result<Response<v1::CustomerMerge>, Status> {
        let actor = Principal::require(&request)?.subject.clone();
        let request = request.get_ref();
        let mut errors = ValidationErrors::new();
        let survivor_id = CustomerId::parse(&request.survivor_id)
            .map_err(|error| errors.push("survivor_id", error.to_string()))
            .ok();
        let merged_id = CustomerId::parse(&request.merged_id)
            .map_err(|error| errors.push("merged_id", error.to_string()))
            .ok();
        let reason = checked_reason(&mut errors, &request.reason, "say why these are one resident");
        let (Some(survivor_id), Some(merged_id)) = (survivor_id, merged_id) else {
            return Err(status::invalid_argument(&errors));
        };
        if !errors.is_empty() {
            return Err(status::invalid_argument(&errors));
        }
        let merge = MergeRequest {
            survivor_id,
            merged_id,
            reason,
            actor,
        };
        match self.store.merge_customers(&merge).await {
            Ok(Some(merge)) => Ok(Response::new(merge.into())),
            Ok(None) => Err(Status::not_found("no such customer")),
            Err(error) => Err(store_status(&error)),
        }
    }

    #[tracing::instrument(name = "cases.unmerge_customers", skip_all)]
    async fn unmerge_customers(
        &self,
        request: Request<v1::UnmergeCustomersRequest>,
    ) -> Result<Response<v1::CustomerMerge>, Status> {
        let actor = Principal::require(&request)?.subject.clone();
        let request = request.get_ref();
        let mut errors = ValidationErrors::new();
        let merge_id = Uuid::parse_str(&request.merge_id)
            .map_err(|_| errors.push("merge_id", "not a merge id (a uuid)"))
            .ok();
        let reason = checked_reason(&mut errors, &request.reason, "say why the merge was wrong");
        let Some(merge_id) = merge_id.filter(|_| errors.is_empty()) else {
            return Err(status::invalid_argument(&errors));
        };
        match self.store.unmerge_customers(merge_id, &actor, &reason).await {
            Ok(Some(merge)) => Ok(Response::new(merge.into())),
            Ok(None) => Err(Status::not_found("no such merge")),
            Err(error) => Err(store_status(&error)),
        }
    }

    #[tracing::instrument(name = "cases.list_customer_merges", skip_all)]
    async fn list_customer_merges(
        &self,
        request: Request<v1::ListCustomerMergesRequest>,
    ) -> Result<Response<v1::ListCustomerMergesResponse>, Status> {
        let customer_id = CustomerId::parse(&request.get_ref().customer_id)
            .map_err(|error| status::invalid_field("customer_id", &error.to_string()))?;
        match self.store.customer_merges(customer_id).await {
            Ok(merges) => Ok(Response::new(v1::ListCustomerMergesResponse {
                merges: merges.into_iter().map(Into::into).collect(),
            })),
            Err(error) => Err(store_status(&error)),
        }
    }

    #[tracing::instrument(name = "cases.make_referral", skip_all, fields(case_id, partner_id))]
    async fn make_referral(
        &self,
        request: Request<v1::MakeReferralRequest>,
    ) -> Result<Response<v1::Referral>, Status> {
        let made_by = Principal::require(&request)?.subject.clone();
        let referral = new_referral(request.get_ref(), made_by, chrono::Utc::now())
            .map_err(|errors| status::invalid_argument(&errors))?;
        let span = tracing::Span::current();
        span.record("case_id", tracing::field::display(referral.case_id));
        span.record("partner_id", tracing::field::display(&referral.partner_id));
        match self.store.make_referral(&referral).await {
            Ok(Some(made)) => Ok(Response::new(made.into())),
            Ok(None) => Err(Status::not_found("no such case")),
            Err(error) => Err(store_status(&error)),
        }
    }

    #[tracing::instrument(name = "cases.record_referral_outcome", skip_all, fields(referral_id))]
    async fn record_referral_outcome(
        &self,
        request: Request<v1::RecordReferralOutcomeRequest>,
    ) -> Result<Response<v1::Referral>, Status> {
        let reported_by = Principal::require(&request)?.subject.clone();
        let outcome = referral_outcome(request.get_ref(), reported_by)
            .map_err(|errors| status::invalid_argument(&errors))?;
        tracing::Span::current().record("referral_id", tracing::field::display(outcome.referral_id));
        match self.store.record_referral_outcome(&outcome).await {
            Ok(Some(referral)) => Ok(Response::new(referral.into())),
            Ok(None) => Err(Status::not_found("no such referral")),
            Err(error) => Err(store_status(&error)),
        }
    }
    #[tracing::instrument(name = "cases.list_personal_data_reads", skip_all)]
    async fn list_personal_data_reads(
        &self,
        request: Request<v1::ListPersonalDataReadsRequest>,
    ) -> Result<Response<v1::ListPersonalDataReadsResponse>, Status> {
        let request = request.get_ref();
        let customer_id = CustomerId::parse(&request.customer_id)
            .map_err(|error| status::invalid_field("customer_id", &error.to_string()))?;
        let limit = page_size(request.page_size, TIMELINE_PAGE_DEFAULT, TIMELINE_PAGE_MAX);
        match self.store.reads_of(customer_id, limit).await {
            Ok(reads) => Ok(Response::new(v1::ListPersonalDataReadsResponse {
                reads: reads.into_iter().map(Into::into).collect(),
            })),
            Err(error) => Err(store_status(&error)),
        }
    }
    #[tracing::instrument(name = "cases.export_customer_data", skip_all)]
    async fn export_customer_data(
        &self,
        request: Request<v1::ExportCustomerDataRequest>,
    ) -> Result<Response<v1::ExportCustomerDataResponse>, Status> {
        let customer_id = CustomerId::parse(&request.get_ref().customer_id)
            .map_err(|error| status::invalid_field("customer_id", &error.to_string()))?;
        let data = match subject_access::export(self.store.as_ref(), customer_id).await {
            Ok(Some(data)) => data,
            Ok(None) => return Err(Status::not_found("no such customer")),
            Err(error) => return Err(store_status(&error)),
        };
        self.audit(
            &request,
            "ExportCustomerData",
            [(customer_id, customer_id.as_uuid())],
        )
        .await?;
        let json = subject_access::json(&data).map_err(|error| store_status(&error))?;
        let html = subject_access::html(&data);
        Ok(Response::new(v1::ExportCustomerDataResponse {
            data: Some(data),
            json,
            html,
        }))
    }

    #[tracing::instrument(name = "cases.erase_customer", skip_all)]
    async fn erase_customer(
        &self,
        request: Request<v1::EraseCustomerRequest>,
    ) -> Result<Response<v1::Erasure>, Status> {
        let actor = Principal::require(&request)?.subject.clone();
        let request = request.get_ref();
        let mut errors = ValidationErrors::new();
        let customer_id = CustomerId::parse(&request.customer_id)
            .map_err(|error| errors.push("customer_id", error.to_string()))
            .ok();
        let reason = checked_reason(
            &mut errors,
            &request.reason,
            "say why, e.g. the request's reference",
        );
        let Some(customer_id) = customer_id.filter(|_| errors.is_empty()) else {
            return Err(status::invalid_argument(&errors));
        };
        let erasure = ErasureRequest {
            customer_id,
            reason,
            actor,
            // A resident's request is met whatever they did last.
            only_if_inactive_since: None,
        };
        match self.store.erase_customer(&erasure).await {
            Ok(Some(erased)) => {
                tracing::info!(customer_id = %customer_id, "customer erased");
                Ok(Response::new(erased.into()))
            }
            Ok(None) => Err(Status::not_found("no such customer")),
            Err(error) => Err(store_status(&error)),
        }
    }

    #[tracing::instrument(name = "cases.update_customer_needs", skip_all)]
    async fn update_customer_needs(
        &self,
        request: Request<v1::UpdateCustomerNeedsRequest>,
    ) -> Result<Response<v1::CustomerRecord>, Status> {
        let actor = Principal::require(&request)?.subject.clone();
        let update =
            needs_update(request.get_ref(), actor).map_err(|errors| status::invalid_argument(&errors))?;
        match self.store.update_customer_needs(&update).await {
            Ok(Some(customer)) => {
                // The answer shows the resident's record: a read like any other.
                self.audit(
                    &request,
                    "UpdateCustomerNeeds",
                    [(customer.id, customer.id.as_uuid())],
                )
                .await?;
                Ok(Response::new(customer.into()))
            }
            Ok(None) => Err(Status::not_found("no such customer")),
            Err(error) => Err(store_status(&error)),
        }
    }

    #[tracing::instrument(name = "cases.record_consent", skip_all)]
    async fn record_consent(
        &self,
        request: Request<v1::RecordConsentRequest>,
    ) -> Result<Response<v1::Consent>, Status> {
        let actor = Principal::require(&request)?.subject.clone();
        let consent =
            new_consent(request.get_ref(), actor).map_err(|errors| status::invalid_argument(&errors))?;
        match self.store.record_consent(&consent).await {
            Ok(Some(recorded)) => Ok(Response::new(recorded.into())),
            Ok(None) => Err(Status::not_found("no such customer")),
            Err(error) => Err(store_status(&error)),
        }
    }

    #[tracing::instrument(name = "cases.withdraw_consent", skip_all)]
    async fn withdraw_consent(
        &self,
        request: Request<v1::WithdrawConsentRequest>,
    ) -> Result<Response<v1::Consent>, Status> {
        let actor = Principal::require(&request)?.subject.clone();
        let withdrawal = consent_withdrawal(request.get_ref(), actor)
            .map_err(|errors| status::invalid_argument(&errors))?;
        match self.store.withdraw_consent(&withdrawal).await {
            Ok(Some(withdrawn)) => {
                // Found by its id alone, the answer shows whose consent it
                // was and what they agreed to: a read like any other.
                self.audit(
                    &request,
                    "WithdrawConsent",
                    [(withdrawn.customer_id, withdrawn.id)],
                )
                .await?;
                Ok(Response::new(withdrawn.into()))
            }
            Ok(None) => Err(Status::not_found("no such consent")),
            Err(error) => Err(store_status(&error)),
        }
    }

    #[tracing::instrument(name = "cases.list_retention_runs", skip_all)]
    async fn list_retention_runs(
        &self,
        request: Request<v1::ListRetentionRunsRequest>,
    ) -> Result<Response<v1::ListRetentionRunsResponse>, Status> {
        let limit = page_size(
            request.get_ref().page_size,
            TIMELINE_PAGE_DEFAULT,
            TIMELINE_PAGE_MAX,
        );
        match self.store.retention_runs(limit).await {
            Ok(runs) => Ok(Response::new(v1::ListRetentionRunsResponse {
                runs: runs.into_iter().map(Into::into).collect(),
            })),
            Err(error) => Err(store_status(&error)),
        }
    }

    #[tracing::instrument(name = "cases.list_consents", skip_all)]
    async fn list_consents(
        &self,
        request: Request<v1::ListConsentsRequest>,
    ) -> Result<Response<v1::ListConsentsResponse>, Status> {
        let customer_id = CustomerId::parse(&request.get_ref().customer_id)
            .map_err(|error| status::invalid_field("customer_id", &error.to_string()))?;
        let consents = self
            .store
            .consents_of(customer_id)
            .await
            .map_err(|error| store_status(&error))?;
        self.audit(
            &request,
            "ListConsents",
            consents.iter().map(|consent| (customer_id, consent.id)),
        )
        .await?;
        Ok(Response::new(v1::ListConsentsResponse {
            consents: consents.into_iter().map(Into::into).collect(),
        }))
    }
}

/// A refused referral: bad input names its field, the rest is a precondition.
fn referral_status(error: &ReferralError) -> Status {
    match error {
        ReferralError::UnknownPartner(_) => status::invalid_field("partner_id", &error.to_string()),
        ReferralError::ConsentRequired { .. } => status::invalid_field("consent_given", &error.to_string()),
        ReferralError::NotAnOutcome(_) => status::invalid_field("status", &error.to_string()),
        ReferralError::CaseClosed | ReferralError::OutcomeAlreadyReported { .. } => {
            Status::failed_precondition(error.to_string())
        }
    }
}

/// A required free-text reason, trimmed, within the length limit.
fn checked_reason(errors: &mut ValidationErrors, input: &str, missing: &str) -> String {
    let reason = input.trim();
    if reason.is_empty() {
        errors.push("reason", missing);
    } else if reason.chars().count() > MAX_MERGE_REASON_CHARS {
        errors.push("reason", format!("at most {MAX_MERGE_REASON_CHARS} characters"));
    }
    reason.to_owned()
}

/// A status change request in domain terms, or the fields that are wrong.
fn status_change(
    request: &v1::UpdateCaseStatusRequest,
    actor: String,
) -> Result<StatusChange, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let case_id = CaseId::parse(&request.case_id)
        .map_err(|error| errors.push("case_id", error.to_string()))
        .ok();
    let to = v1::CaseStatus::try_from(request.status)
        .map_err(|_| "not a case status")
        .and_then(CaseStatus::try_from)
        .map_err(|description| errors.push("status", description))
        .ok();
    let reason = request.reason.trim();
    if reason.is_empty() {
        errors.push("reason", "say why, for the case history");
    } else if reason.chars().count() > MAX_REASON_CHARS {
        errors.push("reason", format!("at most {MAX_REASON_CHARS} characters"));
    }
    match (case_id, to) {
        (Some(case_id), Some(to)) if errors.is_empty() => Ok(StatusChange {
            case_id,
            to,
            reason: reason.to_owned(),
            actor,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_defaults_and_caps() {
        assert_eq!(page_size(0, 50, 500), 50);
        assert_eq!(page_size(7, 50, 500), 7);
        assert_eq!(page_size(10_000, 50, 500), 500);
    }
}
