//! The case store: one trait, [`CasesStore`], and its two implementations,
//! [`PgCasesStore`] (distributed mode, schema `cases`) and
//! [`SqliteCasesStore`] (embedded mode, `cases.db` in the data dir).
//!
//! Both plan batches with [`crate::plan`] and differ only in SQL and in how
//! values are represented (see the migrations). The rows they read back are
//! turned into domain values here, once, through the domain's own parsers.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use switchboard_bus::OutboxStore;
use switchboard_domain::{
    CaseId, CaseReference, Channel, ContactId, ContactOrigin, ContactReference, CustomerDetails, CustomerId,
    EmailAddress, Needs, PartnerId, PersonName, PhoneNumber, Postcode, ReferralKind, RetentionCategory,
    ServiceId, Uprn,
};
use uuid::Uuid;

use crate::audit::DataRead;
use crate::erasure::{CaseStatistics, Erasure, ErasureRequest};
use crate::error::{CasesError, CasesResult};
use crate::lifecycle::{CaseNote, ContactOutcome, IncomingOutcome, StatusChange};
use crate::merges::{CustomerMerge, MatchSuggestion, MergeRequest};
use crate::model::{
    ApplyOutcome, Case, CaseDetail, CaseKey, CaseStatus, Contact, Customer, CustomerSearch, IncomingContact,
    PageToken, Timeline,
};
use crate::needs::{
    ConsentPurpose, ConsentWithdrawal, CustomerConsent, NeedsUpdate, NewConsent, WithdrawConsent,
};
use crate::plan::CustomerRow;
use crate::referrals::{Consent, NewReferral, Referral, ReferralId, ReferralOutcome, ReferralStatus};
use crate::retention::RetentionRun;

mod postgres;
mod sqlite;

pub use postgres::PgCasesStore;
pub use sqlite::SqliteCasesStore;

/// Most contacts applied in one transaction. Larger batches amortise the
/// commit (one fsync) and the round trips per batch; this bound keeps a
/// transaction short enough not to hold locks for long.
pub const MAX_APPLY_BATCH: usize = 500;

/// The case store. Also the outbox of the events it writes, which the
/// [`switchboard_bus::OutboxRelay`] publishes.
#[async_trait]
pub trait CasesStore: OutboxStore {
    /// Applies `contact.received` events in one transaction: skips those
    /// already applied (by event id, or by contact id), matches or creates
    /// each customer, joins or opens a case, stores the contact, records
    /// the events in the inbox, and writes `case.opened` / `case.updated`
    /// to the outbox. Contacts are applied in slice order, so a later one
    /// sees what an earlier one created. Returns one outcome per contact.
    ///
    /// On error nothing is written; [`CasesError::is_transient`] tells
    /// whether trying again may help.
    async fn apply_contacts(&self, batch: &[IncomingContact]) -> CasesResult<Vec<ApplyOutcome>>;

    async fn get_contact(&self, id: ContactId) -> CasesResult<Option<Contact>>;

    async fn get_case(&self, key: &CaseKey) -> CasesResult<Option<Case>>;

    /// Every contact and case of a customer, newest first, `page_size`
    /// (clamped to 1..=[`crate::TIMELINE_PAGE_MAX`]) at a time, continuing
    /// after `page_token`. `None` when the customer is unknown.
    async fn customer_timeline(
        &self,
        customer_id: CustomerId,
        page_size: usize,
        page_token: Option<&PageToken>,
    ) -> CasesResult<Option<Timeline>>;

    /// Customers matching every criterion given, earliest created first,
    /// at most `limit` (clamped to 1..=[`crate::SEARCH_PAGE_MAX`]). An empty
    /// search finds nothing.
    async fn search_customers(&self, search: &CustomerSearch, limit: usize) -> CasesResult<Vec<Customer>>;

    /// A case with its notes and status history.
    async fn case_detail(&self, key: &CaseKey) -> CasesResult<Option<CaseDetail>>;

    /// Moves a case to another status ([`crate::lifecycle`] says which
    /// changes are allowed), recording the change in its history and
    /// writing `case.resolved` or `case.updated` to the outbox. `None` when
    /// there is no such case.
    async fn change_case_status(&self, change: &StatusChange) -> CasesResult<Option<CaseDetail>>;

    /// Adds a note to a case; `None` when there is no such case.
    async fn add_case_note(&self, case_id: CaseId, author: &str, text: &str)
    -> CasesResult<Option<CaseNote>>;

    /// Applies `contact.completed` events in one transaction: records each
    /// contact's outcome (the first one reported wins) and moves its case
    /// as the disposition says. An outcome whose contact is not stored yet
    /// waits and is applied when the contact arrives. Idempotent by event id.
    async fn apply_outcomes(&self, batch: &[IncomingOutcome]) -> CasesResult<()>;

    /// Open match suggestions, newest first: those naming `customer_id` (as
    /// either party), or all when `None`; at most `limit` (clamped to
    /// 1..=[`crate::SEARCH_PAGE_MAX`]).
    async fn match_suggestions(
        &self,
        customer_id: Option<CustomerId>,
        limit: usize,
    ) -> CasesResult<Vec<MatchSuggestion>>;

    /// Records that the two customers of an open suggestion are different
    /// people. `None` when there is no such suggestion.
    async fn dismiss_suggestion(&self, id: Uuid, actor: &str) -> CasesResult<Option<MatchSuggestion>>;

    /// Merges two customers ([`crate::merges`] says what moves), marking
    /// open suggestions about the pair as merged. `None` when either
    /// customer is unknown.
    async fn merge_customers(&self, request: &MergeRequest) -> CasesResult<Option<CustomerMerge>>;

    /// Undoes a merge: what it moved goes back, the cases it closed re-open,
    /// the identifiers it filled in are cleared. `None` when there is no such
    /// merge.
    async fn unmerge_customers(
        &self,
        merge_id: Uuid,
        actor: &str,
        reason: &str,
    ) -> CasesResult<Option<CustomerMerge>>;

    /// The merges a customer took part in (either side), oldest first.
    async fn customer_merges(&self, customer_id: CustomerId) -> CasesResult<Vec<CustomerMerge>>;

    /// Records reads of personal data ([`crate::audit`]).
    async fn record_reads(&self, reads: &[DataRead]) -> CasesResult<()>;

    /// The reads of a customer's personal data, newest first, at most
    /// `limit` (clamped to 1..=[`crate::TIMELINE_PAGE_MAX`]).
    async fn reads_of(&self, customer_id: CustomerId, limit: usize) -> CasesResult<Vec<DataRead>>;

    /// Erases a customer ([`crate::erasure`] says what goes and what stays).
    /// `None` when there is no such customer; an error when they were erased
    /// already or merged into another (erase the survivor instead).
    async fn erase_customer(&self, request: &ErasureRequest) -> CasesResult<Option<Erasure>>;

    /// The erasure of a customer, if they were erased.
    async fn erasure_of(&self, customer_id: CustomerId) -> CasesResult<Option<Erasure>>;

    /// Contacts and cases counted as the council reports them.
    async fn statistics(&self) -> CasesResult<CaseStatistics>;

    /// Replaces a customer's needs record ([`crate::needs`]); `None` when
    /// there is no such customer. Refused for an erased or merged customer,
    /// and for vulnerabilities without a vulnerability consent on record.
    async fn update_customer_needs(&self, update: &NeedsUpdate) -> CasesResult<Option<Customer>>;

    /// Records a consent; `None` when there is no such customer. Refused for
    /// an erased or merged customer.
    async fn record_consent(&self, consent: &NewConsent) -> CasesResult<Option<CustomerConsent>>;

    /// Withdraws a consent and, with it, every other consent of the resident
    /// for the same purpose (they withdraw consent to the purpose, however
    /// often they gave it), and removes what it allowed from their record.
    /// Returns the named consent as withdrawn; `None` when there is no such
    /// consent. Refused when it was withdrawn already.
    async fn withdraw_consent(&self, withdrawal: &WithdrawConsent) -> CasesResult<Option<CustomerConsent>>;

    /// A customer's consents, newest first, withdrawn ones included.
    async fn consents_of(&self, customer_id: CustomerId) -> CasesResult<Vec<CustomerConsent>>;

    /// Up to `limit` residents due for erasure by the retention schedule:
    /// created before `cutoff`, not merged or erased, with no open case and
    /// no contact since `cutoff` ([`crate::retention`]).
    async fn inactive_customers(&self, cutoff: DateTime<Utc>, limit: usize) -> CasesResult<Vec<CustomerId>>;

    /// Removes what `category` says is due before `cutoff`, marking it done
    /// at `now`; answers how many records changed. `contact-content`,
    /// `case-notes` and `read-log` only.
    async fn expire(
        &self,
        category: RetentionCategory,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> CasesResult<u64>;

    async fn record_retention_run(&self, run: &RetentionRun) -> CasesResult<()>;

    /// The latest runs of the retention schedule, newest first.
    async fn retention_runs(&self, limit: usize) -> CasesResult<Vec<RetentionRun>>;

    /// Readiness: Ok when the database answers.
    async fn check(&self) -> CasesResult<()>;

    /// How many contacts the store holds, for benchmarks and operational
    /// checks (counts, never contents).
    async fn contact_count(&self) -> CasesResult<u64>;

    /// Records a signpost or referral on a case ([`crate::referrals`] says
    /// which are allowed) and writes `case.referred` to the outbox, in one
    /// transaction. The partner and consent are checked first; then `None`
    /// when there is no such case.
    async fn make_referral(&self, referral: &NewReferral) -> CasesResult<Option<Referral>>;

    /// Records what the partner reported back about a referral and writes
    /// `case.referral_outcome` to the outbox, in one transaction. `None`
    /// when there is no such referral.
    async fn record_referral_outcome(&self, outcome: &ReferralOutcome) -> CasesResult<Option<Referral>>;
}

/// A case row as read back, before parsing.
pub(crate) struct StoredCase {
    pub(crate) id: CaseId,
    pub(crate) reference: String,
    pub(crate) customer_id: CustomerId,
    pub(crate) service: String,
    pub(crate) status: String,
    pub(crate) opened_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) due_at: Option<DateTime<Utc>>,
    pub(crate) resolved_at: Option<DateTime<Utc>>,
    pub(crate) outcome: Option<String>,
    pub(crate) reopened_count: i64,
}

impl StoredCase {
    pub(crate) fn into_case(self, contact_ids: Vec<ContactId>) -> CasesResult<Case> {
        Ok(Case {
            id: self.id,
            reference: CaseReference::parse(&self.reference).map_err(|error| CasesError::Corrupt {
                column: "cases.reference",
                reason: error.to_string(),
            })?,
            customer_id: self.customer_id,
            service: ServiceId::parse(&self.service).map_err(CasesError::corrupt("cases.service"))?,
            status: CaseStatus::parse(&self.status).map_err(CasesError::corrupt("cases.status"))?,
            opened_at: self.opened_at,
            updated_at: self.updated_at,
            contact_ids,
            due_at: self.due_at,
            resolved_at: self.resolved_at,
            outcome: self.outcome,
            reopened_count: u32::try_from(self.reopened_count)
                .map_err(|_| CasesError::corrupt("cases.reopened_count")("out of range".to_owned()))?,
        })
    }
}

/// A contact row as read back, JSON columns as text, before parsing.
pub(crate) struct StoredContact {
    pub(crate) id: ContactId,
    pub(crate) reference: String,
    pub(crate) customer_id: CustomerId,
    pub(crate) case_id: CaseId,
    pub(crate) channel: String,
    pub(crate) service: String,
    pub(crate) summary: String,
    pub(crate) details: String,
    pub(crate) needs: String,
    pub(crate) origin: String,
    pub(crate) received_at: DateTime<Utc>,
    pub(crate) stored_at: DateTime<Utc>,
    pub(crate) repeat_contact: bool,
    pub(crate) outcome: Option<ContactOutcome>,
}

impl StoredContact {
    pub(crate) fn into_contact(self) -> CasesResult<Contact> {
        Ok(Contact {
            id: self.id,
            reference: ContactReference::parse(&self.reference).map_err(|error| CasesError::Corrupt {
                column: "contacts.reference",
                reason: error.to_string(),
            })?,
            customer_id: self.customer_id,
            case_id: self.case_id,
            channel: Channel::parse(&self.channel).map_err(CasesError::corrupt("contacts.channel"))?,
            service: ServiceId::parse(&self.service).map_err(CasesError::corrupt("contacts.service"))?,
            summary: self.summary,
            details: from_json::<BTreeMap<String, String>>("contacts.details", &self.details)?,
            needs: from_json::<Needs>("contacts.needs", &self.needs)?,
            origin: from_json::<ContactOrigin>("contacts.origin", &self.origin)?,
            received_at: self.received_at,
            stored_at: self.stored_at,
            repeat_contact: self.repeat_contact,
            outcome: self.outcome,
        })
    }
}

/// serde_json's messages name the position and the expected type, not the
/// data, so they are safe to keep in the error.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(column: &'static str, text: &str) -> CasesResult<T> {
    serde_json::from_str(text).map_err(|error| CasesError::Corrupt {
        column,
        reason: error.to_string(),
    })
}

/// A retention run as both stores read it.
pub(crate) fn retention_run(
    category: &str,
    ran_at: DateTime<Utc>,
    cutoff: DateTime<Utc>,
    affected: i64,
) -> CasesResult<RetentionRun> {
    Ok(RetentionRun {
        category: RetentionCategory::parse(category)
            .map_err(CasesError::corrupt("retention_runs.category"))?,
        ran_at,
        cutoff,
        affected: u64::try_from(affected).unwrap_or_default(),
    })
}

/// A consent row as both stores read it, times already converted.
pub(crate) struct StoredConsent {
    pub(crate) id: Uuid,
    pub(crate) customer_id: Uuid,
    pub(crate) purpose: String,
    pub(crate) statement: String,
    pub(crate) channel: Option<String>,
    pub(crate) recorded_by: String,
    pub(crate) given_at: DateTime<Utc>,
    pub(crate) contact_id: Option<Uuid>,
    pub(crate) withdrawn_at: Option<DateTime<Utc>>,
    pub(crate) withdrawn_by: Option<String>,
    pub(crate) withdrawal_reason: Option<String>,
}

impl StoredConsent {
    pub(crate) fn into_consent(self) -> CasesResult<CustomerConsent> {
        let withdrawal = match (self.withdrawn_at, self.withdrawn_by) {
            (Some(at), Some(by)) => Some(ConsentWithdrawal {
                at,
                by,
                reason: self.withdrawal_reason.unwrap_or_default(),
            }),
            _ => None,
        };
        Ok(CustomerConsent {
            id: self.id,
            customer_id: CustomerId::from_uuid(self.customer_id),
            purpose: ConsentPurpose::parse(&self.purpose)
                .map_err(CasesError::corrupt("customer_consents.purpose"))?,
            statement: self.statement,
            channel: self
                .channel
                .map(|channel| Channel::parse(&channel))
                .transpose()
                .map_err(CasesError::corrupt("customer_consents.channel"))?,
            recorded_by: self.recorded_by,
            given_at: self.given_at,
            contact_id: self.contact_id.map(ContactId::from_uuid),
            withdrawal,
        })
    }
}

impl CustomerRow {
    pub(crate) fn into_customer(self) -> CasesResult<Customer> {
        fn parse<T>(
            column: &'static str,
            value: Option<String>,
            parser: fn(&str) -> Result<T, String>,
        ) -> CasesResult<Option<T>> {
            value
                .map(|text| parser(&text))
                .transpose()
                .map_err(CasesError::corrupt(column))
        }
        Ok(Customer {
            id: self.id,
            details: CustomerDetails {
                name: parse("customers.name", self.name, PersonName::parse)?,
                phone: parse("customers.phone_e164", self.phone_e164, PhoneNumber::parse)?,
                email: parse("customers.email", self.email, EmailAddress::parse)?,
                postcode: parse("customers.postcode", self.postcode, Postcode::parse)?,
                address_line: self.address_line,
                uprn: parse("customers.uprn", self.uprn, Uprn::parse)?,
            },
            created_at: self.created_at,
            needs: self.needs,
        })
    }
}

/// Contacts by service, channel and outcome ("" before routing reports one),
/// as both stores count them for [`CaseStatistics`].
pub(crate) const CONTACT_STATISTICS: &str = "SELECT k.service, k.channel, COALESCE(o.disposition, ''), count(*) \
     FROM contacts k LEFT JOIN contact_outcomes o ON o.contact_id = k.id GROUP BY 1, 2, 3";
/// Cases by service, status and outcome ("" until resolved).
pub(crate) const CASE_STATISTICS: &str =
    "SELECT service, status, COALESCE(outcome, ''), count(*) FROM cases GROUP BY 1, 2, 3";

pub(crate) fn add_counts(
    counts: &mut std::collections::BTreeMap<(String, String, String), u64>,
    rows: Vec<(String, String, String, i64)>,
) {
    for (first, second, third, count) in rows {
        counts.insert((first, second, third), u64::try_from(count).unwrap_or_default());
    }
}

/// The needs an erased contact keeps: none (they may reveal a disability or
/// a vulnerability), in their stored form.
pub(crate) fn erased_needs() -> CasesResult<String> {
    serde_json::to_string(&Needs::default()).map_err(|error| CasesError::Corrupt {
        column: "contacts.needs",
        reason: error.to_string(),
    })
}

pub(crate) fn clamp_page(requested: usize, max: usize) -> usize {
    requested.clamp(1, max)
}

/// Puts a timeline page together from its sort order (`ordered`, up to one
/// more entry than the page holds, which only says whether another page
/// follows) and the rows fetched for it.
pub(crate) fn assemble_timeline(
    customer: Customer,
    mut ordered: Vec<(crate::model::EntryKind, uuid::Uuid)>,
    page_size: usize,
    mut contacts: std::collections::HashMap<uuid::Uuid, Contact>,
    mut cases: std::collections::HashMap<uuid::Uuid, Case>,
) -> CasesResult<Timeline> {
    use crate::model::{EntryKind, TimelineEntry};
    let more = ordered.len() > page_size;
    ordered.truncate(page_size);
    let mut entries = Vec::with_capacity(ordered.len());
    for (kind, id) in ordered {
        let entry = match kind {
            EntryKind::Contact => contacts.remove(&id).map(TimelineEntry::Contact),
            EntryKind::Case => cases.remove(&id).map(TimelineEntry::Case),
        };
        // Contacts and cases are never deleted, so a listed entry is there.
        let entry = entry.ok_or(CasesError::Corrupt {
            column: "timeline",
            reason: "an entry vanished while reading".to_owned(),
        })?;
        entries.push(entry);
    }
    let next_page_token = if more {
        entries.last().map(|entry| PageToken::from_cursor(entry.cursor()))
    } else {
        None
    };
    Ok(Timeline {
        customer,
        entries,
        next_page_token,
    })
}

/// A referral row as read back, before parsing.
pub(crate) struct StoredReferral {
    pub(crate) id: ReferralId,
    pub(crate) case_id: CaseId,
    pub(crate) partner_id: String,
    pub(crate) kind: String,
    pub(crate) consent_statement: Option<String>,
    pub(crate) consent_given_at: Option<DateTime<Utc>>,
    pub(crate) note: String,
    pub(crate) made_by: String,
    pub(crate) made_at: DateTime<Utc>,
    pub(crate) status: String,
    pub(crate) outcome_note: Option<String>,
    pub(crate) outcome_reported_by: Option<String>,
    pub(crate) outcome_reported_at: Option<DateTime<Utc>>,
}

impl StoredReferral {
    pub(crate) fn into_referral(self) -> CasesResult<Referral> {
        let consent = match (self.consent_statement, self.consent_given_at) {
            (Some(statement), Some(given_at)) => Some(Consent { statement, given_at }),
            (None, None) => None,
            _ => {
                return Err(CasesError::corrupt("referrals.consent_given_at")(
                    "consent statement and time must be set together".to_owned(),
                ));
            }
        };
        Ok(Referral {
            id: self.id,
            case_id: self.case_id,
            partner_id: PartnerId::parse(&self.partner_id)
                .map_err(CasesError::corrupt("referrals.partner_id"))?,
            kind: ReferralKind::parse(&self.kind).map_err(CasesError::corrupt("referrals.kind"))?,
            consent,
            note: self.note,
            made_by: self.made_by,
            made_at: self.made_at,
            status: ReferralStatus::parse(&self.status).map_err(CasesError::corrupt("referrals.status"))?,
            outcome_note: self.outcome_note,
            outcome_reported_by: self.outcome_reported_by,
            outcome_reported_at: self.outcome_reported_at,
        })
    }
}
