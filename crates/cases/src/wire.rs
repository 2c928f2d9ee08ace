//! Conversions between `switchboard.v1` wire types and this crate's domain
//! types, in one place at the edge: records out (`From`), requests in
//! (`TryFrom`, with errors naming the proto field).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use switchboard_domain::{
    CaseId, CaseReference, Channel, ContactOrigin, CustomerId, EmailAddress, PartnerId, PersonName,
    PhoneNumber, Postcode, ValidationErrors, parse_language,
};
use switchboard_proto::v1;
use uuid::Uuid;

pub(crate) use switchboard_runtime::wire::{
    channel_from_proto, channel_to_proto, customer_to_proto, from_timestamp, needs_to_proto, timestamp,
};

use crate::audit::DataRead;
use crate::erasure::Erasure;
use crate::lifecycle::{CaseNote, MAX_REASON_CHARS};
use crate::merges::{CustomerMerge, MatchSuggestion};
use crate::model::{
    Case, CaseDetail, CaseKey, CaseStatus, Contact, Customer, CustomerSearch, QuotedReference, TimelineEntry,
};
use crate::needs::{
    ConsentPurpose, CustomerConsent, CustomerNeeds, NeedsUpdate, NewConsent, Vulnerability, WithdrawConsent,
};
use crate::referrals::{
    Consent, MAX_CONSENT_CHARS, MAX_REFERRAL_NOTE_CHARS, NewReferral, Referral, ReferralId, ReferralOutcome,
    ReferralStatus,
};
use crate::retention::RetentionRun;

fn origin_to_proto(origin: &ContactOrigin) -> Option<v1::contact_record::Origin> {
    match origin {
        ContactOrigin::None => None,
        ContactOrigin::Phone {
            caller_number,
            dialled_number,
            call_id,
        } => Some(v1::contact_record::Origin::Phone(v1::PhoneOrigin {
            caller_number: caller_number
                .as_ref()
                .map(|number| number.as_e164().to_owned())
                .unwrap_or_default(),
            dialled_number: dialled_number.clone().unwrap_or_default(),
            call_id: call_id.clone().unwrap_or_default(),
        })),
        ContactOrigin::Web { form_id, page_url } => Some(v1::contact_record::Origin::Web(v1::WebOrigin {
            form_id: form_id.clone().unwrap_or_default(),
            page_url: page_url.clone().unwrap_or_default(),
        })),
        ContactOrigin::FaceToFace { office_id, desk } => {
            Some(v1::contact_record::Origin::FaceToFace(v1::FaceToFaceOrigin {
                office_id: office_id.as_str().to_owned(),
                desk: desk.clone().unwrap_or_default(),
            }))
        }
    }
}

impl From<CaseStatus> for v1::CaseStatus {
    fn from(status: CaseStatus) -> Self {
        match status {
            CaseStatus::Open => v1::CaseStatus::Open,
            CaseStatus::WaitingOnResident => v1::CaseStatus::WaitingOnResident,
            CaseStatus::WaitingOnCouncil => v1::CaseStatus::WaitingOnCouncil,
            CaseStatus::Resolved => v1::CaseStatus::Resolved,
            CaseStatus::Closed => v1::CaseStatus::Closed,
        }
    }
}

impl From<Contact> for v1::ContactRecord {
    fn from(contact: Contact) -> Self {
        v1::ContactRecord {
            contact_id: contact.id.to_string(),
            reference: contact.reference.as_str().to_owned(),
            channel: channel_to_proto(contact.channel) as i32,
            service: contact.service.as_str().to_owned(),
            summary: contact.summary,
            details: contact.details,
            needs: Some(needs_to_proto(&contact.needs)),
            customer_id: contact.customer_id.to_string(),
            case_id: contact.case_id.to_string(),
            received_at: Some(timestamp(contact.received_at)),
            origin: origin_to_proto(&contact.origin),
            repeat_contact: contact.repeat_contact,
            outcome: contact.outcome.map(|outcome| v1::ContactOutcome {
                disposition: outcome.disposition,
                partner: outcome.partner.unwrap_or_default(),
                completed_at: Some(timestamp(outcome.completed_at)),
            }),
        }
    }
}

impl From<Case> for v1::CaseRecord {
    fn from(case: Case) -> Self {
        v1::CaseRecord {
            case_id: case.id.to_string(),
            reference: case.reference.as_str().to_owned(),
            customer_id: case.customer_id.to_string(),
            service: case.service.as_str().to_owned(),
            status: v1::CaseStatus::from(case.status) as i32,
            opened_at: Some(timestamp(case.opened_at)),
            updated_at: Some(timestamp(case.updated_at)),
            contact_ids: case.contact_ids.iter().map(ToString::to_string).collect(),
            due_at: case.due_at.map(timestamp),
            resolved_at: case.resolved_at.map(timestamp),
            outcome: case.outcome.unwrap_or_default(),
            reopened_count: case.reopened_count,
            notes: Vec::new(),
            history: Vec::new(),
            referrals: Vec::new(),
        }
    }
}

impl From<CaseDetail> for v1::CaseRecord {
    fn from(detail: CaseDetail) -> Self {
        v1::CaseRecord {
            notes: detail.notes.into_iter().map(Into::into).collect(),
            history: detail
                .history
                .into_iter()
                .map(|record| v1::CaseStatusChange {
                    from_status: v1::CaseStatus::from(record.from) as i32,
                    to_status: v1::CaseStatus::from(record.to) as i32,
                    reason: record.reason,
                    actor: record.actor,
                    at: Some(timestamp(record.at)),
                })
                .collect(),
            referrals: detail.referrals.into_iter().map(Into::into).collect(),
            ..detail.case.into()
        }
    }
}

impl From<CaseNote> for v1::CaseNote {
    fn from(note: CaseNote) -> Self {
        v1::CaseNote {
            note_id: note.id.to_string(),
            case_id: note.case_id.to_string(),
            author: note.author,
            text: note.text,
            created_at: Some(timestamp(note.created_at)),
        }
    }
}

impl TryFrom<v1::CaseStatus> for CaseStatus {
    type Error = &'static str;

    fn try_from(status: v1::CaseStatus) -> Result<Self, Self::Error> {
        match status {
            v1::CaseStatus::Unspecified => Err("give the status to move the case to"),
            v1::CaseStatus::Open => Ok(CaseStatus::Open),
            v1::CaseStatus::WaitingOnResident => Ok(CaseStatus::WaitingOnResident),
            v1::CaseStatus::WaitingOnCouncil => Ok(CaseStatus::WaitingOnCouncil),
            v1::CaseStatus::Resolved => Ok(CaseStatus::Resolved),
            v1::CaseStatus::Closed => Ok(CaseStatus::Closed),
        }
    }
}

impl From<Customer> for v1::CustomerRecord {
    fn from(customer: Customer) -> Self {
        v1::CustomerRecord {
            customer_id: customer.id.to_string(),
            customer: Some(customer_to_proto(&customer.details)),
            created_at: Some(timestamp(customer.created_at)),
            needs: Some((&customer.needs).into()),
        }
    }
}

impl From<&CustomerNeeds> for v1::CustomerNeeds {
    fn from(needs: &CustomerNeeds) -> Self {
        v1::CustomerNeeds {
            preferred_channel: needs
                .preferred_channel
                .map_or(v1::Channel::Unspecified, channel_to_proto) as i32,
            preferred_language: needs.preferred_language.clone().unwrap_or_default(),
            british_sign_language: needs.british_sign_language,
            interpreter: needs.interpreter,
            large_print: needs.large_print,
            hearing_loop: needs.hearing_loop,
            assisted_digital: needs.assisted_digital,
            wheelchair_access: needs.wheelchair_access,
            vulnerabilities: needs
                .vulnerabilities
                .iter()
                .map(|vulnerability| vulnerability.as_str().to_owned())
                .collect(),
            updated_at: needs.updated_at.map(timestamp),
            updated_by: needs.updated_by.clone().unwrap_or_default(),
        }
    }
}

/// An `UpdateCustomerNeedsRequest` in domain terms, by `actor`, or every
/// field that is wrong. Whether the vulnerabilities have consent behind
/// them, the store decides.
pub(crate) fn needs_update(
    request: &v1::UpdateCustomerNeedsRequest,
    actor: String,
) -> Result<NeedsUpdate, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let customer_id = CustomerId::parse(&request.customer_id)
        .map_err(|error| errors.push("customer_id", error.to_string()))
        .ok();
    // The whole record as it is to be: an absent one would wipe it.
    let none = v1::CustomerNeeds::default();
    let wanted = request.needs.as_ref().unwrap_or_else(|| {
        errors.push("needs", "required: the whole needs record as it is to be");
        &none
    });
    let preferred_channel =
        optional_channel(&mut errors, "needs.preferred_channel", wanted.preferred_channel);
    let preferred_language = if wanted.preferred_language.trim().is_empty() {
        None
    } else {
        parse_language(&wanted.preferred_language)
            .map_err(|description| errors.push("needs.preferred_language", description))
            .ok()
    };
    let mut vulnerabilities = BTreeSet::new();
    for (index, vulnerability) in wanted.vulnerabilities.iter().enumerate() {
        match Vulnerability::parse(vulnerability) {
            Ok(vulnerability) => {
                vulnerabilities.insert(vulnerability);
            }
            Err(description) => errors.push(format!("needs.vulnerabilities[{index}]"), description),
        }
    }
    match customer_id {
        Some(customer_id) if errors.is_empty() => Ok(NeedsUpdate {
            customer_id,
            needs: CustomerNeeds {
                preferred_channel,
                preferred_language,
                british_sign_language: wanted.british_sign_language,
                interpreter: wanted.interpreter,
                large_print: wanted.large_print,
                hearing_loop: wanted.hearing_loop,
                assisted_digital: wanted.assisted_digital,
                wheelchair_access: wanted.wheelchair_access,
                vulnerabilities,
                updated_at: None,
                updated_by: None,
            },
            actor,
        }),
        _ => Err(errors),
    }
}

/// A channel a request may leave unspecified (`None`); a value that is no
/// channel at all is named under `field`.
fn optional_channel(errors: &mut ValidationErrors, field: &str, value: i32) -> Option<Channel> {
    match v1::Channel::try_from(value) {
        Ok(v1::Channel::Unspecified) => None,
        Ok(_) => channel_from_proto(value),
        Err(_) => {
            errors.push(field, "not a channel");
            None
        }
    }
}

/// A `RecordConsentRequest` in domain terms, by `actor`, or every field that
/// is wrong.
pub(crate) fn new_consent(
    request: &v1::RecordConsentRequest,
    actor: String,
) -> Result<NewConsent, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let customer_id = CustomerId::parse(&request.customer_id)
        .map_err(|error| errors.push("customer_id", error.to_string()))
        .ok();
    let purpose = match v1::ConsentPurpose::try_from(request.purpose) {
        Ok(v1::ConsentPurpose::Vulnerability) => Some(ConsentPurpose::Vulnerability),
        _ => {
            errors.push("purpose", "a consent purpose: CONSENT_PURPOSE_VULNERABILITY");
            None
        }
    };
    let statement = free_text(&mut errors, "statement", &request.statement, MAX_CONSENT_CHARS);
    if statement.is_empty() {
        errors.push(
            "statement",
            "say what the resident agreed to, in their words or the words read to them",
        );
    }
    let channel = optional_channel(&mut errors, "channel", request.channel);
    match (customer_id, purpose) {
        (Some(customer_id), Some(purpose)) if errors.is_empty() => Ok(NewConsent {
            customer_id,
            purpose,
            statement,
            channel,
            actor,
        }),
        _ => Err(errors),
    }
}

/// A `WithdrawConsentRequest` in domain terms, by `actor`, or every field
/// that is wrong.
pub(crate) fn consent_withdrawal(
    request: &v1::WithdrawConsentRequest,
    actor: String,
) -> Result<WithdrawConsent, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let consent_id = Uuid::parse_str(request.consent_id.trim())
        .map_err(|_| errors.push("consent_id", "not a consent id (a uuid)"))
        .ok();
    let reason = free_text(&mut errors, "reason", &request.reason, MAX_REASON_CHARS);
    match consent_id {
        Some(consent_id) if errors.is_empty() => Ok(WithdrawConsent {
            consent_id,
            reason,
            actor,
        }),
        _ => Err(errors),
    }
}

impl From<RetentionRun> for v1::RetentionRun {
    fn from(run: RetentionRun) -> Self {
        v1::RetentionRun {
            category: run.category.as_str().to_owned(),
            ran_at: Some(timestamp(run.ran_at)),
            cutoff: Some(timestamp(run.cutoff)),
            affected: run.affected,
        }
    }
}

impl From<ConsentPurpose> for v1::ConsentPurpose {
    fn from(purpose: ConsentPurpose) -> Self {
        match purpose {
            ConsentPurpose::Vulnerability => v1::ConsentPurpose::Vulnerability,
        }
    }
}

impl From<CustomerConsent> for v1::Consent {
    fn from(consent: CustomerConsent) -> Self {
        let withdrawal = consent.withdrawal.as_ref();
        v1::Consent {
            consent_id: consent.id.to_string(),
            customer_id: consent.customer_id.to_string(),
            purpose: v1::ConsentPurpose::from(consent.purpose) as i32,
            statement: consent.statement,
            channel: consent.channel.map_or(v1::Channel::Unspecified, channel_to_proto) as i32,
            recorded_by: consent.recorded_by,
            given_at: Some(timestamp(consent.given_at)),
            contact_id: consent.contact_id.map(|id| id.to_string()).unwrap_or_default(),
            withdrawn_at: withdrawal.map(|withdrawal| timestamp(withdrawal.at)),
            withdrawn_by: withdrawal
                .map(|withdrawal| withdrawal.by.clone())
                .unwrap_or_default(),
            withdrawal_reason: withdrawal
                .map(|withdrawal| withdrawal.reason.clone())
                .unwrap_or_default(),
        }
    }
}

impl From<TimelineEntry> for v1::TimelineEntry {
    fn from(entry: TimelineEntry) -> Self {
        let entry = match entry {
            TimelineEntry::Contact(contact) => v1::timeline_entry::Entry::Contact(contact.into()),
            TimelineEntry::Case(case) => v1::timeline_entry::Entry::Case(case.into()),
        };
        v1::TimelineEntry { entry: Some(entry) }
    }
}

impl TryFrom<&v1::GetCaseRequest> for CaseKey {
    type Error = ValidationErrors;

    fn try_from(request: &v1::GetCaseRequest) -> Result<Self, Self::Error> {
        let mut errors = ValidationErrors::new();
        match &request.key {
            Some(v1::get_case_request::Key::CaseId(id)) => match CaseId::parse(id) {
                Ok(id) => return Ok(CaseKey::Id(id)),
                Err(error) => errors.push("case_id", error.to_string()),
            },
            Some(v1::get_case_request::Key::Reference(reference)) => match CaseReference::parse(reference) {
                Ok(reference) => return Ok(CaseKey::Reference(reference)),
                Err(error) => errors.push("reference", error.to_string()),
            },
            None => errors.push("case_id", "give a case_id or a reference"),
        }
        Err(errors)
    }
}

impl TryFrom<&v1::SearchCustomersRequest> for CustomerSearch {
    type Error = ValidationErrors;

    /// Each criterion goes through the same normalisation as stored values
    /// (E.164, lowercase email, canonical postcode, collapsed name), so a
    /// search matches however the agent typed it.
    fn try_from(request: &v1::SearchCustomersRequest) -> Result<Self, Self::Error> {
        let mut errors = ValidationErrors::new();
        fn criterion<T>(
            errors: &mut ValidationErrors,
            field: &str,
            input: &str,
            parse: fn(&str) -> Result<T, String>,
        ) -> Option<T> {
            if input.trim().is_empty() {
                return None;
            }
            parse(input)
                .map_err(|description| errors.push(field, description))
                .ok()
        }
        let search = CustomerSearch {
            phone: criterion(&mut errors, "phone", &request.phone, PhoneNumber::parse),
            email: criterion(&mut errors, "email", &request.email, EmailAddress::parse),
            postcode: criterion(&mut errors, "postcode", &request.postcode, Postcode::parse),
            name: criterion(&mut errors, "name", &request.name, PersonName::parse),
            reference: criterion(
                &mut errors,
                "reference",
                &request.reference,
                QuotedReference::parse,
            ),
        };
        if errors.is_empty() && search.is_empty() {
            for field in ["phone", "email", "postcode", "name", "reference"] {
                errors.push(
                    field,
                    "give at least one of phone, email, postcode, name or reference",
                );
            }
        }
        if errors.is_empty() {
            Ok(search)
        } else {
            Err(errors)
        }
    }
}

impl From<MatchSuggestion> for v1::MatchSuggestion {
    fn from(suggestion: MatchSuggestion) -> Self {
        v1::MatchSuggestion {
            suggestion_id: suggestion.id.to_string(),
            customer_id: suggestion.customer_id.to_string(),
            candidate_id: suggestion.candidate_id.to_string(),
            contact_id: suggestion.contact_id.to_string(),
            confidence: u32::from(suggestion.confidence),
            signals: suggestion.signals,
            status: suggestion.status.as_str().to_owned(),
            created_at: Some(timestamp(suggestion.created_at)),
            decided_by: suggestion.decided_by.unwrap_or_default(),
            decided_at: suggestion.decided_at.map(timestamp),
        }
    }
}

impl From<CustomerMerge> for v1::CustomerMerge {
    fn from(merge: CustomerMerge) -> Self {
        v1::CustomerMerge {
            merge_id: merge.id.to_string(),
            survivor_id: merge.survivor_id.to_string(),
            merged_id: merge.merged_id.to_string(),
            reason: merge.reason,
            merged_by: merge.merged_by,
            merged_at: Some(timestamp(merge.merged_at)),
            filled_columns: merge.filled_columns,
            moved_contacts: merge.moved_contacts,
            moved_cases: merge.moved_cases,
            unmerged_by: merge.unmerged_by.unwrap_or_default(),
            unmerged_at: merge.unmerged_at.map(timestamp),
            unmerge_reason: merge.unmerge_reason.unwrap_or_default(),
        }
    }
}

impl From<ReferralStatus> for v1::ReferralStatus {
    fn from(status: ReferralStatus) -> Self {
        match status {
            ReferralStatus::Made => v1::ReferralStatus::Made,
            ReferralStatus::Accepted => v1::ReferralStatus::Accepted,
            ReferralStatus::Declined => v1::ReferralStatus::Declined,
            ReferralStatus::Completed => v1::ReferralStatus::Completed,
            ReferralStatus::NoContact => v1::ReferralStatus::NoContact,
        }
    }
}

impl TryFrom<v1::ReferralStatus> for ReferralStatus {
    type Error = &'static str;

    fn try_from(status: v1::ReferralStatus) -> Result<Self, Self::Error> {
        match status {
            v1::ReferralStatus::Unspecified => Err("give the outcome the partner reported"),
            v1::ReferralStatus::Made => Ok(ReferralStatus::Made),
            v1::ReferralStatus::Accepted => Ok(ReferralStatus::Accepted),
            v1::ReferralStatus::Declined => Ok(ReferralStatus::Declined),
            v1::ReferralStatus::Completed => Ok(ReferralStatus::Completed),
            v1::ReferralStatus::NoContact => Ok(ReferralStatus::NoContact),
        }
    }
}

impl From<Referral> for v1::Referral {
    fn from(referral: Referral) -> Self {
        let (consent_statement, consent_given_at) = match referral.consent {
            Some(consent) => (consent.statement, Some(timestamp(consent.given_at))),
            None => (String::new(), None),
        };
        v1::Referral {
            referral_id: referral.id.to_string(),
            case_id: referral.case_id.to_string(),
            partner_id: referral.partner_id.to_string(),
            kind: referral.kind.as_str().to_owned(),
            consent_given: consent_given_at.is_some(),
            consent_statement,
            consent_given_at,
            note: referral.note,
            made_by: referral.made_by,
            made_at: Some(timestamp(referral.made_at)),
            status: v1::ReferralStatus::from(referral.status) as i32,
            outcome_note: referral.outcome_note.unwrap_or_default(),
            outcome_reported_by: referral.outcome_reported_by.unwrap_or_default(),
            outcome_reported_at: referral.outcome_reported_at.map(timestamp),
        }
    }
}

/// Checks optional free text: trimmed, at most `max` characters.
fn free_text(errors: &mut ValidationErrors, field: &str, input: &str, max: usize) -> String {
    let text = input.trim();
    if text.chars().count() > max {
        errors.push(field, format!("at most {max} characters"));
    }
    text.to_owned()
}

/// A `MakeReferralRequest` in domain terms, made by `made_by` at `now`, or
/// every field that is wrong. Whether the partner is in the directory, and
/// needs consent, the store decides with the directory it holds.
pub(crate) fn new_referral(
    request: &v1::MakeReferralRequest,
    made_by: String,
    now: DateTime<Utc>,
) -> Result<NewReferral, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let case_id = CaseId::parse(&request.case_id)
        .map_err(|error| errors.push("case_id", error.to_string()))
        .ok();
    let partner_id = if request.partner_id.trim().is_empty() {
        errors.push("partner_id", "give the partner's id from the directory");
        None
    } else {
        PartnerId::parse(request.partner_id.trim())
            .map_err(|description| errors.push("partner_id", description))
            .ok()
    };
    let statement = free_text(
        &mut errors,
        "consent_statement",
        &request.consent_statement,
        MAX_CONSENT_CHARS,
    );
    let consent = match (request.consent_given, statement.is_empty()) {
        (true, false) => Some(Consent {
            statement,
            given_at: now,
        }),
        (true, true) => {
            errors.push(
                "consent_statement",
                "say what the resident agreed to be shared, in their words or yours",
            );
            None
        }
        (false, false) => {
            errors.push(
                "consent_statement",
                "a consent statement is recorded only with consent_given",
            );
            None
        }
        (false, true) => None,
    };
    let note = free_text(&mut errors, "note", &request.note, MAX_REFERRAL_NOTE_CHARS);
    match (case_id, partner_id) {
        (Some(case_id), Some(partner_id)) if errors.is_empty() => Ok(NewReferral {
            case_id,
            partner_id,
            consent,
            note,
            made_by,
        }),
        _ => Err(errors),
    }
}

/// A `RecordReferralOutcomeRequest` in domain terms, reported by
/// `reported_by`, or every field that is wrong.
pub(crate) fn referral_outcome(
    request: &v1::RecordReferralOutcomeRequest,
    reported_by: String,
) -> Result<ReferralOutcome, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let referral_id = ReferralId::parse(&request.referral_id)
        .map_err(|description| errors.push("referral_id", description))
        .ok();
    let status = v1::ReferralStatus::try_from(request.status)
        .map_err(|_| "not a referral status")
        .and_then(ReferralStatus::try_from)
        .and_then(|status| {
            if status.is_outcome() {
                Ok(status)
            } else {
                Err("an outcome: accepted, declined, completed or no contact")
            }
        })
        .map_err(|description| errors.push("status", description))
        .ok();
    let note = free_text(&mut errors, "note", &request.note, MAX_REFERRAL_NOTE_CHARS);
    match (referral_id, status) {
        (Some(referral_id), Some(status)) if errors.is_empty() => Ok(ReferralOutcome {
            referral_id,
            status,
            note,
            reported_by,
        }),
        _ => Err(errors),
    }
}

impl From<DataRead> for v1::PersonalDataRead {
    fn from(read: DataRead) -> Self {
        v1::PersonalDataRead {
            at: Some(timestamp(read.at)),
            actor: read.actor,
            action: read.action,
            customer_id: read.customer_id.to_string(),
            record_id: read.record_id.to_string(),
            purpose: read.purpose,
        }
    }
}

impl From<Erasure> for v1::Erasure {
    fn from(erasure: Erasure) -> Self {
        v1::Erasure {
            customer_id: erasure.customer_id.to_string(),
            erased_by: erasure.erased_by,
            erased_at: Some(timestamp(erasure.erased_at)),
            reason: erasure.reason,
        }
    }
}
