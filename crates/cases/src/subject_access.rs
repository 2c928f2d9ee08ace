//! Subject access: everything the case store holds about one resident, as a
//! message, as its proto3 JSON and as a readable HTML document, for a
//! council answering a request under UK GDPR article 15.
//!
//! Gathered through the store's own queries (timeline pages, case details,
//! merges, suggestions, the read log, the erasure), so an export shows
//! exactly what agents can see, and after an erasure exactly what is left.

use chrono::Utc;
use maud::{DOCTYPE, Markup, html};
use switchboard_domain::CustomerId;
use switchboard_proto::v1;

use crate::error::{CasesError, CasesResult};
use crate::model::{CaseKey, PageToken, SEARCH_PAGE_MAX, TIMELINE_PAGE_MAX, TimelineEntry};
use crate::store::CasesStore;
use crate::wire::timestamp;

/// Everything held about `customer_id`; `None` when there is no such customer.
pub async fn export(
    store: &dyn CasesStore,
    customer_id: CustomerId,
) -> CasesResult<Option<v1::CustomerDataExport>> {
    let mut export = v1::CustomerDataExport {
        generated_at: Some(timestamp(Utc::now())),
        ..v1::CustomerDataExport::default()
    };
    let mut token: Option<PageToken> = None;
    loop {
        let Some(page) = store
            .customer_timeline(customer_id, TIMELINE_PAGE_MAX, token.as_ref())
            .await?
        else {
            return Ok(None);
        };
        if export.customer.is_none() {
            export.customer = Some(page.customer.into());
        }
        for entry in page.entries {
            match entry {
                TimelineEntry::Contact(contact) => export.contacts.push(contact.into()),
                TimelineEntry::Case(case) => {
                    let detail =
                        store
                            .case_detail(&CaseKey::Id(case.id))
                            .await?
                            .ok_or(CasesError::Corrupt {
                                column: "cases",
                                reason: "a case vanished while exporting".to_owned(),
                            })?;
                    export.cases.push(detail.into());
                }
            }
        }
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    export.merges = store
        .customer_merges(customer_id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    export.match_suggestions = store
        .match_suggestions(Some(customer_id), SEARCH_PAGE_MAX)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    export.reads = store
        .reads_of(customer_id, TIMELINE_PAGE_MAX)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    export.consents = store
        .consents_of(customer_id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    export.erasure = store.erasure_of(customer_id).await?.map(Into::into);
    Ok(Some(export))
}

/// The export in the proto3 JSON mapping, indented.
pub fn json(export: &v1::CustomerDataExport) -> CasesResult<String> {
    serde_json::to_string_pretty(export).map_err(|error| CasesError::Corrupt {
        column: "export",
        reason: error.to_string(),
    })
}

fn when(at: Option<&pbjson_types::Timestamp>) -> String {
    at.and_then(crate::wire::from_timestamp)
        .map(|at| at.format("%-d %B %Y %H:%M UTC").to_string())
        .unwrap_or_default()
}

fn case_status(status: i32) -> &'static str {
    match v1::CaseStatus::try_from(status) {
        Ok(v1::CaseStatus::Open) => "open",
        Ok(v1::CaseStatus::WaitingOnResident) => "waiting for you",
        Ok(v1::CaseStatus::WaitingOnCouncil) => "waiting for the council",
        Ok(v1::CaseStatus::Resolved) => "resolved",
        Ok(v1::CaseStatus::Closed) => "closed",
        _ => "unknown",
    }
}

fn channel(channel: i32) -> &'static str {
    match v1::Channel::try_from(channel) {
        Ok(v1::Channel::Phone) => "phone",
        Ok(v1::Channel::Web) => "web form",
        Ok(v1::Channel::FaceToFace) => "in person",
        Ok(v1::Channel::Email) => "email",
        Ok(v1::Channel::Letter) => "letter",
        _ => "other",
    }
}

/// The needs on the record, in plain words.
fn needs_list(needs: &v1::CustomerNeeds) -> Vec<String> {
    let mut list = Vec::new();
    if needs.preferred_channel != v1::Channel::Unspecified as i32 {
        let how = match v1::Channel::try_from(needs.preferred_channel) {
            Ok(v1::Channel::Phone) => "by phone",
            Ok(v1::Channel::Web) => "through our website",
            Ok(v1::Channel::FaceToFace) => "in person",
            Ok(v1::Channel::Email) => "by email",
            Ok(v1::Channel::Letter) => "by letter",
            _ => "in another way",
        };
        list.push(format!("You prefer to deal with us {how} when you can."));
    }
    if !needs.preferred_language.is_empty() {
        list.push(format!("Your preferred language: {}.", needs.preferred_language));
    }
    for (flag, text) in [
        (needs.british_sign_language, "British Sign Language"),
        (needs.interpreter, "an interpreter"),
        (needs.large_print, "large print"),
        (needs.hearing_loop, "a hearing loop"),
        (needs.assisted_digital, "help using online services"),
        (needs.wheelchair_access, "wheelchair access"),
    ] {
        if flag {
            list.push(format!("You need {text}."));
        }
    }
    if !needs.vulnerabilities.is_empty() {
        list.push(format!(
            "With your consent, we note circumstances where you may need extra support: {}.",
            needs.vulnerabilities.join(", ")
        ));
    }
    list
}

fn consent_purpose(purpose: i32) -> &'static str {
    match v1::ConsentPurpose::try_from(purpose) {
        Ok(v1::ConsentPurpose::Vulnerability) => "recording circumstances where you may need extra support",
        _ => "other",
    }
}

/// The export as a self-contained HTML document a resident can read: plain
/// language, no scripts, no external resources.
pub fn html(export: &v1::CustomerDataExport) -> String {
    let customer = export.customer.clone().unwrap_or_default();
    let details = customer.customer.unwrap_or_default();
    let document: Markup = html! {
        (DOCTYPE)
        html lang="en-GB" {
            head {
                meta charset="utf-8";
                title { "Information we hold about you" }
                style { "body{font-family:sans-serif;max-width:48rem;margin:2rem auto;line-height:1.5}table{border-collapse:collapse}td,th{border:1px solid #999;padding:.25rem .5rem;text-align:left;vertical-align:top}" }
            }
            body {
                h1 { "Information we hold about you" }
                p { "Produced on " (when(export.generated_at.as_ref())) " from the council's contact and case records. Your customer number is " (customer.customer_id) "." }
                @if let Some(erasure) = &export.erasure {
                    p { strong { "Your personal information was erased on " (when(erasure.erased_at.as_ref())) "." } " What remains is kept only to count the council's work, and does not identify you." }
                }
                h2 { "Your details" }
                table {
                    tr { th { "Name" } td { (details.name) } }
                    tr { th { "Phone" } td { (details.phone) } }
                    tr { th { "Email" } td { (details.email) } }
                    tr { th { "Address" } td { (details.address_line) " " (details.postcode) } }
                    tr { th { "Property reference (UPRN)" } td { (details.uprn) } }
                }
                h2 { "How we should serve you" }
                @let needs = customer.needs.as_ref().map(needs_list).unwrap_or_default();
                @if needs.is_empty() { p { "Nothing recorded." } }
                ul { @for line in &needs { li { (line) } } }
                h2 { "Your consents (" (export.consents.len()) ")" }
                @for consent in &export.consents {
                    p { "On " (when(consent.given_at.as_ref())) " you agreed to " (consent_purpose(consent.purpose)) ": " (consent.statement)
                        @if consent.withdrawn_at.is_some() { ". You withdrew it on " (when(consent.withdrawn_at.as_ref())) "." } }
                }
                h2 { "Your contacts with the council (" (export.contacts.len()) ")" }
                @for contact in &export.contacts {
                    h3 { (when(contact.received_at.as_ref())) ", " (channel(contact.channel)) ", " (contact.service) }
                    p { "Reference " (contact.reference) "." @if contact.repeat_contact { " A repeat contact about the same matter." } }
                    @if !contact.summary.is_empty() { p { "What you told us: " (contact.summary) } }
                    @if !contact.details.is_empty() {
                        table { @for (field, value) in &contact.details { tr { th { (field) } td { (value) } } } }
                    }
                    @if let Some(outcome) = &contact.outcome { p { "Outcome: " (outcome.disposition) @if !outcome.partner.is_empty() { " (" (outcome.partner) ")" } } }
                }
                h2 { "Your cases (" (export.cases.len()) ")" }
                @for case in &export.cases {
                    h3 { (case.reference) ", " (case.service) ": " (case_status(case.status)) }
                    p { "Opened " (when(case.opened_at.as_ref())) @if case.due_at.is_some() { ", due by " (when(case.due_at.as_ref())) } "." }
                    @for change in &case.history { p { (when(change.at.as_ref())) ": " (case_status(change.to_status)) " (" (change.reason) ")" } }
                    @for note in &case.notes { p { "Note, " (when(note.created_at.as_ref())) ": " (note.text) } }
                    @for referral in &case.referrals { p { "Referred to " (referral.partner_id) " on " (when(referral.made_at.as_ref())) @if !referral.consent_statement.is_empty() { ". You agreed: " (referral.consent_statement) } } }
                }
                h2 { "Records joined or separated (" (export.merges.len()) ")" }
                @for merge in &export.merges { p { (when(merge.merged_at.as_ref())) ": customer " (merge.merged_id) " joined to " (merge.survivor_id) " (" (merge.reason) ")" @if merge.unmerged_at.is_some() { "; separated again " (when(merge.unmerged_at.as_ref())) } } }
                h2 { "Who has looked at your information (" (export.reads.len()) ")" }
                table {
                    tr { th { "When" } th { "Who" } th { "Why" } }
                    @for read in &export.reads { tr { td { (when(read.at.as_ref())) } td { (read.actor) } td { (read.purpose) } } }
                }
            }
        }
    };
    document.into_string()
}
