//! Deciding what a batch of incoming contacts does to the store, in memory.
//!
//! Both stores apply a batch the same way, in one transaction:
//!
//! 1. look up what the batch can touch ([`lookup_keys`]): the events and
//!    contacts already applied, the customers holding any phone number or
//!    email address in the batch, and those customers' open cases;
//! 2. [`plan_batch`] walks the contacts in delivery order against that
//!    snapshot, which it updates as it goes, so a later contact sees the
//!    customer and case an earlier one in the same batch created;
//! 3. the store writes the plan with a few set-based statements.
//!
//! Keeping the decisions here, free of SQL, means the two stores cannot
//! disagree about matching, and the rules are unit-tested without a database.
//!
//! The matching rules:
//! - the candidates are the customers holding the contact's phone number
//!   (the one given, or else the caller's), email address, UPRN or postcode,
//!   in that order, earliest created first within each;
//! - each is scored with [`switchboard_domain::identity`]: the contact joins
//!   the best candidate when the match is automatic (an email or mobile, or
//!   a landline or property with an agreeing name, and no conflicting name),
//!   and gets a new customer otherwise, so two people are never merged
//!   silently; on a tie the earlier candidate wins (so a phone beats an
//!   email, and the original beats a duplicate);
//! - every other candidate that reaches the suggestion threshold (up to
//!   three) is recorded as a possible match of the contact's customer, for
//!   an agent to confirm by merging the two ([`crate::merges`]) or dismiss;
//! - identifiers and details the matched customer lacks are filled in, never
//!   overwritten, and an identifier another customer already holds is not
//!   copied (so one phone or email keeps naming one customer);
//! - with nothing to match on (an anonymous visit), a new customer;
//! - customers merged into another are never candidates.
//!
//! Needs ([`crate::needs`]): what a contact states is added to its
//! customer's record, a vulnerability with consent records the consent, and
//! each `case.opened` / `case.updated` carries the record's needs for routing.
//!
//! The case rules ([`crate::lifecycle`]): a contact joins the customer's open
//! case for its service; failing that, it re-opens their case resolved within
//! the follow-up window; failing that, it opens a new case, due by the
//! service's target. A contact joining a case within the window of the
//! case's previous contact is a repeat contact.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use prost::Message as _;
use switchboard_domain::identity::{
    self, IdentityEvidence, MatchAssessment, MatchDecision, MatchSignal, MatchThresholds,
};
use switchboard_domain::{
    CaseId, CaseReference, Channel, ContactId, CustomerId, EmailAddress, EventId, Needs, PersonName,
    PhoneNumber, Postcode, Uprn,
};
use switchboard_proto::{event_types, v1};

use crate::error::{CasesError, CasesResult};
use crate::lifecycle::{ACTOR_CONTACT, CaseRules, StatusRecord};
use crate::model::{AppliedContact, ApplyOutcome, CaseStatus, IncomingContact, fold_name, to_micros};
use crate::needs::{ConsentPurpose, CustomerConsent, CustomerNeeds, consented_vulnerability};
use crate::wire::needs_to_proto;

/// The `source` of every event this service publishes.
pub const EVENT_SOURCE: &str = "cases";

/// A customer row in its stored form (normalised strings).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct CustomerRow {
    pub(crate) id: CustomerId,
    pub(crate) name: Option<String>,
    pub(crate) phone_e164: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) postcode: Option<String>,
    pub(crate) address_line: Option<String>,
    pub(crate) uprn: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) needs: CustomerNeeds,
}

impl CustomerRow {
    pub(crate) fn name_folded(&self) -> Option<String> {
        self.name.as_deref().map(fold_name)
    }

    /// The row's identifiers as matching compares them. A stored value that
    /// no longer parses is left out rather than failing the batch: it can
    /// only make a match less likely.
    fn evidence(&self) -> IdentityEvidence {
        IdentityEvidence {
            name: self.name.as_deref().and_then(|name| PersonName::parse(name).ok()),
            phone: self
                .phone_e164
                .as_deref()
                .and_then(|phone| PhoneNumber::from_e164(phone).ok()),
            email: self
                .email
                .as_deref()
                .and_then(|email| EmailAddress::parse(email).ok()),
            postcode: self
                .postcode
                .as_deref()
                .and_then(|postcode| Postcode::parse(postcode).ok()),
            uprn: self.uprn.as_deref().and_then(|uprn| Uprn::parse(uprn).ok()),
        }
    }
}

impl std::fmt::Debug for CustomerRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Which parts are present, never their values.
        f.debug_struct("CustomerRow")
            .field("id", &self.id)
            .field("name", &self.name.is_some())
            .field("phone_e164", &self.phone_e164.is_some())
            .field("email", &self.email.is_some())
            .field("postcode", &self.postcode.is_some())
            .field("address_line", &self.address_line.is_some())
            .field("uprn", &self.uprn.is_some())
            .field("created_at", &self.created_at)
            .field("needs", &self.needs)
            .finish()
    }
}

/// A case a new contact may join (open, or resolved within the follow-up
/// window) as the planner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpenCaseRow {
    pub(crate) id: CaseId,
    pub(crate) reference: String,
    pub(crate) customer_id: CustomerId,
    pub(crate) service: String,
    pub(crate) status: CaseStatus,
    pub(crate) opened_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) resolved_at: Option<DateTime<Utc>>,
    pub(crate) contact_count: u32,
}

/// A contact row in its stored form (JSON columns already serialised).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ContactRow {
    pub(crate) id: ContactId,
    pub(crate) reference: String,
    pub(crate) customer_id: CustomerId,
    pub(crate) case_id: CaseId,
    pub(crate) channel: &'static str,
    pub(crate) service: String,
    pub(crate) summary: String,
    pub(crate) details: String,
    pub(crate) needs: String,
    pub(crate) origin: String,
    pub(crate) received_at: DateTime<Utc>,
    pub(crate) stored_at: DateTime<Utc>,
    pub(crate) repeat_contact: bool,
}

impl std::fmt::Debug for ContactRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContactRow")
            .field("id", &self.id)
            .field("customer_id", &self.customer_id)
            .field("case_id", &self.case_id)
            .finish_non_exhaustive()
    }
}

/// An outbox row ready to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutboxRow {
    pub(crate) event_id: EventId,
    pub(crate) event_type: &'static str,
    pub(crate) body: Vec<u8>,
    pub(crate) traceparent: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
}

/// What a batch needs looked up before it can be planned.
#[derive(Debug, Default)]
pub(crate) struct LookupKeys {
    pub(crate) event_ids: Vec<EventId>,
    pub(crate) contact_ids: Vec<ContactId>,
    pub(crate) phones: Vec<String>,
    pub(crate) emails: Vec<String>,
    pub(crate) uprns: Vec<String>,
    pub(crate) postcodes: Vec<String>,
}

impl LookupKeys {
    pub(crate) fn has_identifiers(&self) -> bool {
        !(self.phones.is_empty()
            && self.emails.is_empty()
            && self.uprns.is_empty()
            && self.postcodes.is_empty())
    }
}

impl LookupKeys {
    /// Advisory lock keys (PostgreSQL): one per identity, so two transactions
    /// that could match or create the same customer take turns, while
    /// unrelated batches run side by side; and one per contact (see
    /// [`contact_lock_key`]). Sorted, so every transaction takes its locks in
    /// the same order and none can deadlock on them.
    pub(crate) fn lock_keys(&self) -> Vec<String> {
        let mut keys = identity_lock_keys(
            self.phones.iter().map(String::as_str),
            self.emails.iter().map(String::as_str),
            self.uprns.iter().map(String::as_str),
        );
        keys.extend(self.contact_ids.iter().map(|id| contact_lock_key(*id)));
        keys.sort();
        keys.dedup();
        keys
    }
}

/// The advisory lock keys (PostgreSQL) of normalised phone numbers, emails
/// and UPRNs: the identifiers a contact can be matched to a customer by
/// automatically. A batch takes them before it looks customers up, and an
/// erasure before it takes a customer's identifiers away, so a batch either
/// commits before the erasure (and its contact is erased with the rest) or
/// looks up after it and no longer finds the resident.
pub(crate) fn identity_lock_keys<'a>(
    phones: impl IntoIterator<Item = &'a str>,
    emails: impl IntoIterator<Item = &'a str>,
    uprns: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let phones = phones
        .into_iter()
        .map(|phone| format!("cases.customer.phone:{phone}"));
    let emails = emails
        .into_iter()
        .map(|email| format!("cases.customer.email:{email}"));
    let uprns = uprns
        .into_iter()
        .map(|uprn| format!("cases.customer.uprn:{uprn}"));
    phones.chain(emails).chain(uprns).collect()
}

/// The lock a contact's transaction and its wrap-up outcome's both take, so
/// that whichever commits second sees the other: an outcome applied beside
/// its contact's batch is never left waiting for a contact already stored.
pub(crate) fn contact_lock_key(id: ContactId) -> String {
    format!("cases.contact:{id}")
}

impl LookupKeys {
    /// Of the customers found for a batch, those whose cases the plan may
    /// need: the ones a contact can be attached to automatically. A customer
    /// sharing only a postcode with the batch can only become a suggestion
    /// under the usual thresholds, so their cases are not looked up; busy
    /// postcodes would otherwise multiply the lookup several times over.
    pub(crate) fn customers_that_may_match(
        &self,
        customers: &[CustomerRow],
        thresholds: MatchThresholds,
    ) -> Vec<CustomerId> {
        if thresholds.postcode_alone_may_match() {
            return customers.iter().map(|row| row.id).collect();
        }
        let phones: HashSet<&str> = self.phones.iter().map(String::as_str).collect();
        let emails: HashSet<&str> = self.emails.iter().map(String::as_str).collect();
        let uprns: HashSet<&str> = self.uprns.iter().map(String::as_str).collect();
        let holds = |value: &Option<String>, set: &HashSet<&str>| {
            value.as_deref().is_some_and(|value| set.contains(value))
        };
        customers
            .iter()
            .filter(|row| {
                holds(&row.phone_e164, &phones) || holds(&row.email, &emails) || holds(&row.uprn, &uprns)
            })
            .map(|row| row.id)
            .collect()
    }
}

pub(crate) fn lookup_keys(batch: &[IncomingContact]) -> LookupKeys {
    let mut keys = LookupKeys::default();
    let mut phones = HashSet::new();
    let mut emails = HashSet::new();
    let mut uprns = HashSet::new();
    let mut postcodes = HashSet::new();
    for contact in batch {
        keys.event_ids.push(contact.event_id);
        keys.contact_ids.push(contact.contact_id);
        if let Some(uprn) = &contact.customer.uprn
            && uprns.insert(uprn.as_str())
        {
            keys.uprns.push(uprn.as_str().to_owned());
        }
        if let Some(postcode) = &contact.customer.postcode
            && postcodes.insert(postcode.as_str())
        {
            keys.postcodes.push(postcode.as_str().to_owned());
        }
        if let Some(phone) = contact.identifying_phone()
            && phones.insert(phone.as_e164())
        {
            keys.phones.push(phone.as_e164().to_owned());
        }
        if let Some(email) = &contact.customer.email
            && emails.insert(email.as_str())
        {
            keys.emails.push(email.as_str().to_owned());
        }
    }
    keys
}

/// What the store already holds that the batch may touch.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// Event ids of the batch already in the inbox.
    pub(crate) applied_events: HashSet<EventId>,
    /// Contact ids of the batch already stored (under another event id).
    pub(crate) stored_contacts: HashSet<ContactId>,
    /// Customers (not merged into another) holding a phone, email, UPRN
    /// or postcode of the batch, in any order.
    pub(crate) customers: Vec<CustomerRow>,
    /// Open cases of those customers a contact may be attached to
    /// ([`LookupKeys::customers_that_may_match`]), and those resolved within
    /// the follow-up window.
    pub(crate) open_cases: Vec<OpenCaseRow>,
}

struct CustomerState {
    row: CustomerRow,
    new: bool,
    filled: bool,
}

/// Needs a contact stated that added to an existing customer's record: the
/// store adds them again to the record as it reads it under a row lock, so a
/// change staff made meanwhile is kept ([`BatchPlan::relearn`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LearnedNeeds {
    pub(crate) customer_id: CustomerId,
    pub(crate) stated: Needs,
}

struct CaseState {
    id: CaseId,
    reference: CaseReference,
    customer_id: CustomerId,
    service: String,
    status: CaseStatus,
    opened_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    due_at: Option<DateTime<Utc>>,
    contact_count: u32,
    new: bool,
    touched: bool,
    /// A contact of this batch re-opened it (it was resolved).
    reopened: bool,
}

enum CaseChange {
    Opened,
    Updated {
        contact_count: u32,
        reopened: bool,
        repeat_contact: bool,
    },
}

struct PlannedEvent {
    case: usize,
    change: CaseChange,
    contact_id: ContactId,
    channel: Channel,
    /// The customer's needs with the contact's added, for routing.
    needs: Needs,
    traceparent: Option<String>,
}

/// Everything one batch writes.
pub(crate) struct BatchPlan {
    pub(crate) new_customers: Vec<CustomerRow>,
    /// Existing customers with details filled in (their full row after it;
    /// stores write it with `COALESCE`, so nothing is ever overwritten).
    pub(crate) filled_customers: Vec<CustomerRow>,
    cases: Vec<CaseState>,
    pub(crate) contacts: Vec<ContactRow>,
    pub(crate) inbox: Vec<EventId>,
    /// Possible matches for an agent to confirm.
    pub(crate) suggestions: Vec<SuggestionRow>,
    /// Re-opens by contacts, for the case history.
    pub(crate) history: Vec<(CaseId, StatusRecord)>,
    /// Stated needs that added to existing customers' records, in order.
    pub(crate) learned: Vec<LearnedNeeds>,
    /// Consents residents gave on contacts (to their vulnerability being recorded).
    pub(crate) consents: Vec<CustomerConsent>,
    events: Vec<PlannedEvent>,
    pub(crate) outcomes: Vec<ApplyOutcome>,
    pub(crate) now: DateTime<Utc>,
}

/// A case the plan opens, as the store inserts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewCaseRow {
    pub(crate) id: CaseId,
    pub(crate) reference: String,
    pub(crate) customer_id: CustomerId,
    pub(crate) service: String,
    pub(crate) status: CaseStatus,
    pub(crate) opened_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) due_at: Option<DateTime<Utc>>,
}

/// A possible match the plan records: `customer_id` (the contact's new
/// customer) may be the same person as `candidate_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SuggestionRow {
    pub(crate) id: uuid::Uuid,
    pub(crate) customer_id: CustomerId,
    pub(crate) candidate_id: CustomerId,
    pub(crate) contact_id: ContactId,
    pub(crate) confidence: u8,
    pub(crate) signals: Vec<String>,
}

/// Most possible matches one contact puts to agents: enough for a household,
/// few enough to read.
const MAX_SUGGESTIONS_PER_CONTACT: usize = 3;

/// A signal's stable name, as stored and shown to agents.
pub(crate) fn signal_name(signal: &MatchSignal) -> &'static str {
    match signal {
        MatchSignal::SameEmail => "same_email",
        MatchSignal::SamePhone { mobile: true } => "same_mobile",
        MatchSignal::SamePhone { mobile: false } => "same_landline",
        MatchSignal::SameUprn => "same_uprn",
        MatchSignal::UprnConflicts => "uprn_conflicts",
        MatchSignal::SamePostcode => "same_postcode",
        MatchSignal::NameAgrees { partial: false, .. } => "name_agrees",
        MatchSignal::NameAgrees { partial: true, .. } => "name_agrees_partly",
        MatchSignal::NameUncertain { .. } => "name_uncertain",
        MatchSignal::NameConflicts { .. } => "name_conflicts",
    }
}

/// An existing case a batch added contacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TouchedCase {
    pub(crate) id: CaseId,
    /// The latest contact's receipt.
    pub(crate) updated_at: DateTime<Utc>,
    /// It was resolved and a contact re-opened it.
    pub(crate) reopened: bool,
}

/// How many times a store regenerates colliding case references before
/// giving up on the batch.
pub(crate) const REFERENCE_ATTEMPTS: u32 = 5;

impl BatchPlan {
    pub(crate) fn new_cases(&self) -> Vec<NewCaseRow> {
        self.cases
            .iter()
            .filter(|case| case.new)
            .map(|case| NewCaseRow {
                id: case.id,
                reference: case.reference.as_str().to_owned(),
                customer_id: case.customer_id,
                service: case.service.clone(),
                status: CaseStatus::Open,
                opened_at: case.opened_at,
                updated_at: case.updated_at,
                due_at: case.due_at,
            })
            .collect()
    }

    /// Existing cases that got contacts, sorted by id so concurrent writers
    /// lock rows in the same order.
    pub(crate) fn touched_cases(&self) -> Vec<TouchedCase> {
        let mut touched: Vec<_> = self
            .cases
            .iter()
            .filter(|case| !case.new && case.touched)
            .map(|case| TouchedCase {
                id: case.id,
                updated_at: case.updated_at,
                reopened: case.reopened,
            })
            .collect();
        touched.sort_by_key(|case| case.id);
        touched
    }

    /// Gives a new case a fresh reference after its first one collided.
    pub(crate) fn regenerate_reference(&mut self, case_id: CaseId) {
        if let Some(case) = self.cases.iter_mut().find(|case| case.new && case.id == case_id) {
            case.reference = CaseReference::generate();
        }
    }

    /// Existing customers whose needs records the batch added to, sorted
    /// by id: the order every writer locks customer rows in.
    pub(crate) fn learned_customers(&self) -> Vec<CustomerId> {
        let mut ids: Vec<CustomerId> = self.learned.iter().map(|learned| learned.customer_id).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The needs records of [`Self::learned_customers`] as the store holds
    /// them now (read under a row lock), with the batch's stated needs added
    /// again, in their stored form.
    pub(crate) fn relearn(
        &self,
        current: Vec<(CustomerId, CustomerNeeds)>,
    ) -> CasesResult<Vec<(CustomerId, String)>> {
        current
            .into_iter()
            .map(|(customer_id, mut needs)| {
                for learned in self
                    .learned
                    .iter()
                    .filter(|learned| learned.customer_id == customer_id)
                {
                    needs.learn(&learned.stated, self.now);
                }
                Ok((customer_id, needs.to_json()?))
            })
            .collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.contacts.is_empty() && self.inbox.is_empty()
    }

    /// The suggestions, dropping any whose pair another suggestion of the
    /// batch already names (either way round).
    pub(crate) fn distinct_suggestions(&self) -> Vec<&SuggestionRow> {
        let mut pairs = HashSet::new();
        self.suggestions
            .iter()
            .filter(|row| {
                let pair = if row.customer_id < row.candidate_id {
                    (row.customer_id, row.candidate_id)
                } else {
                    (row.candidate_id, row.customer_id)
                };
                pairs.insert(pair)
            })
            .collect()
    }

    /// The `case.opened` / `case.updated` events, in the order they happened.
    /// Built after the cases are inserted, because a reference may have been
    /// regenerated. The payloads carry ids, service and channel only: no
    /// personal data, so they need no sealing.
    pub(crate) fn outbox(&self) -> Vec<OutboxRow> {
        self.events
            .iter()
            .filter_map(|planned| {
                let case = self.cases.get(planned.case)?;
                let payload = match planned.change {
                    CaseChange::Opened => v1::event::Payload::CaseOpened(v1::CaseOpened {
                        case_id: case.id.to_string(),
                        reference: case.reference.as_str().to_owned(),
                        service: case.service.clone(),
                        customer_id: case.customer_id.to_string(),
                        contact_id: planned.contact_id.to_string(),
                        channel: crate::wire::channel_to_proto(planned.channel) as i32,
                        due_at: case.due_at.map(crate::wire::timestamp),
                        needs: Some(needs_to_proto(&planned.needs)),
                    }),
                    CaseChange::Updated {
                        contact_count,
                        reopened,
                        repeat_contact,
                    } => v1::event::Payload::CaseUpdated(v1::CaseUpdated {
                        case_id: case.id.to_string(),
                        reference: case.reference.as_str().to_owned(),
                        service: case.service.clone(),
                        customer_id: case.customer_id.to_string(),
                        contact_id: planned.contact_id.to_string(),
                        channel: crate::wire::channel_to_proto(planned.channel) as i32,
                        contact_count,
                        status: v1::CaseStatus::from(case.status) as i32,
                        reopened,
                        repeat_contact,
                        needs: Some(needs_to_proto(&planned.needs)),
                    }),
                };
                Some(case_event(
                    case.id,
                    payload,
                    planned.traceparent.clone(),
                    self.now,
                ))
            })
            .collect()
    }
}

/// A `case.*` event about `case_id`, ready for the outbox. Case events carry
/// ids, service, channel and status only: no personal data, so they need no
/// sealing.
pub(crate) fn case_event(
    case_id: CaseId,
    payload: v1::event::Payload,
    traceparent: Option<String>,
    now: DateTime<Utc>,
) -> OutboxRow {
    let event_type = match &payload {
        v1::event::Payload::CaseOpened(_) => event_types::CASE_OPENED,
        v1::event::Payload::CaseResolved(_) => event_types::CASE_RESOLVED,
        v1::event::Payload::CaseReferred(_) => event_types::CASE_REFERRED,
        v1::event::Payload::CaseReferralOutcome(_) => event_types::CASE_REFERRAL_OUTCOME,
        _ => event_types::CASE_UPDATED,
    };
    let event_id = EventId::new();
    let event = v1::Event {
        id: event_id.to_string(),
        r#type: event_type.to_owned(),
        occurred_at: Some(crate::wire::timestamp(now)),
        source: EVENT_SOURCE.to_owned(),
        subject: case_id.to_string(),
        sealed_personal_data: None,
        payload: Some(payload),
    };
    OutboxRow {
        event_id,
        event_type,
        body: event.encode_to_vec(),
        traceparent,
        created_at: now,
    }
}

/// Plans `batch` against `snapshot` (see the module docs for the rules).
pub(crate) fn plan_batch(
    batch: &[IncomingContact],
    snapshot: Snapshot,
    rules: &CaseRules,
    now: DateTime<Utc>,
) -> CasesResult<BatchPlan> {
    let now = to_micros(now);
    let mut customers: Vec<CustomerState> = snapshot
        .customers
        .into_iter()
        .map(|row| CustomerState {
            row,
            new: false,
            filled: false,
        })
        .collect();
    // Earliest first, so the index below lists holders of a value in
    // creation order.
    customers.sort_by_key(|customer| (customer.row.created_at, customer.row.id));
    let mut index = IdentityIndex::default();
    for (position, customer) in customers.iter().enumerate() {
        index.add(position, &customer.row);
    }
    // Each candidate's evidence, parsed when first needed.
    let mut evidence: Vec<Option<IdentityEvidence>> = vec![None; customers.len()];
    let thresholds = rules.match_thresholds();

    let mut cases: Vec<CaseState> = Vec::new();
    let mut open_case: HashMap<(CustomerId, String), usize> = HashMap::new();
    // The latest resolved case per customer and service, with when it was
    // resolved: what a contact re-opens when there is no open case.
    let mut resolved_case: HashMap<(CustomerId, String), (usize, DateTime<Utc>)> = HashMap::new();
    let mut open_cases = snapshot.open_cases;
    // Latest first, so a customer with several open cases for one service
    // (which the unique index prevents, but older data might hold) joins the
    // most recently active one.
    open_cases.sort_by_key(|case| std::cmp::Reverse((case.resolved_at, case.updated_at, case.id)));
    for row in open_cases {
        let key = (row.customer_id, row.service.clone());
        let resolved_at = match (row.status, row.resolved_at) {
            (status, _) if status.is_open() => None,
            (CaseStatus::Resolved, Some(resolved_at)) => Some(resolved_at),
            _ => continue,
        };
        let taken = match resolved_at {
            None => open_case.contains_key(&key),
            Some(_) => resolved_case.contains_key(&key),
        };
        if taken {
            continue;
        }
        let reference = CaseReference::parse(&row.reference).map_err(|error| CasesError::Corrupt {
            column: "cases.reference",
            reason: error.to_string(),
        })?;
        match resolved_at {
            None => open_case.insert(key, cases.len()),
            Some(at) => resolved_case
                .insert(key, (cases.len(), at))
                .map(|(index, _)| index),
        };
        cases.push(CaseState {
            id: row.id,
            reference,
            customer_id: row.customer_id,
            service: row.service,
            status: row.status,
            opened_at: row.opened_at,
            updated_at: row.updated_at,
            due_at: None,
            contact_count: row.contact_count,
            new: false,
            touched: false,
            reopened: false,
        });
    }

    let mut plan = BatchPlan {
        new_customers: Vec::new(),
        filled_customers: Vec::new(),
        cases: Vec::new(),
        contacts: Vec::with_capacity(batch.len()),
        inbox: Vec::with_capacity(batch.len()),
        suggestions: Vec::new(),
        history: Vec::new(),
        learned: Vec::new(),
        consents: Vec::new(),
        events: Vec::with_capacity(batch.len()),
        outcomes: Vec::with_capacity(batch.len()),
        now,
    };
    let mut seen_events: HashSet<EventId> = HashSet::new();
    let mut seen_contacts: HashSet<ContactId> = HashSet::new();

    for contact in batch {
        if snapshot.applied_events.contains(&contact.event_id) || !seen_events.insert(contact.event_id) {
            plan.outcomes.push(ApplyOutcome::Duplicate {
                event_id: contact.event_id,
            });
            continue;
        }
        // The event is new; record it either way so it is never looked at again.
        plan.inbox.push(contact.event_id);
        if snapshot.stored_contacts.contains(&contact.contact_id) || !seen_contacts.insert(contact.contact_id)
        {
            plan.outcomes.push(ApplyOutcome::Duplicate {
                event_id: contact.event_id,
            });
            continue;
        }

        let phone = contact
            .identifying_phone()
            .map(|phone| phone.as_e164().to_owned());
        let email = contact
            .customer
            .email
            .as_ref()
            .map(|email| email.as_str().to_owned());
        let contact_evidence = IdentityEvidence {
            phone: contact.identifying_phone().cloned(),
            ..IdentityEvidence::from(&contact.customer)
        };
        let candidates = index.candidates(&contact_evidence);
        for &candidate in &candidates {
            if evidence[candidate].is_none() {
                evidence[candidate] = Some(customers[candidate].row.evidence());
            }
        }
        let mut possible: Vec<(usize, MatchAssessment)> = candidates
            .iter()
            .filter_map(|&candidate| {
                let assessment =
                    identity::assess(&contact_evidence, evidence[candidate].as_ref()?, thresholds);
                (assessment.decision != MatchDecision::NoMatch).then_some((candidate, assessment))
            })
            .collect();
        // Highest confidence first; the sort is stable, so on a tie the
        // earlier candidate (phone before email, original before duplicate)
        // stays first.
        possible.sort_by_key(|(_, assessment)| std::cmp::Reverse(assessment.confidence));
        let matched = possible
            .first()
            .filter(|(_, assessment)| assessment.decision == MatchDecision::Automatic)
            .map(|(candidate, _)| *candidate);
        // Every other possible match is put to an agent: the contact's
        // customer may be the same person as each of them.
        let suggested: Vec<(usize, MatchAssessment)> = possible
            .into_iter()
            .filter(|(candidate, _)| Some(*candidate) != matched)
            .take(MAX_SUGGESTIONS_PER_CONTACT)
            .collect();
        let (customer_index, new_customer) = match matched {
            Some(matched) => {
                fill_in(
                    &mut customers[matched],
                    contact,
                    phone.as_deref(),
                    email.as_deref(),
                    &index,
                );
                // An identifier just filled in now names this customer for the
                // rest of the batch.
                index.add(matched, &customers[matched].row);
                evidence[matched] = None;
                (matched, false)
            }
            None => {
                let position = customers.len();
                let details = &contact.customer;
                customers.push(CustomerState {
                    row: CustomerRow {
                        id: CustomerId::new(),
                        name: details.name.as_ref().map(|name| name.as_str().to_owned()),
                        phone_e164: phone.clone(),
                        email: email.clone(),
                        postcode: details
                            .postcode
                            .as_ref()
                            .map(|postcode| postcode.as_str().to_owned()),
                        address_line: details.address_line.clone(),
                        uprn: details.uprn.as_ref().map(|uprn| uprn.as_str().to_owned()),
                        created_at: now,
                        needs: CustomerNeeds::default(),
                    },
                    new: true,
                    filled: false,
                });
                index.add(position, &customers[position].row);
                evidence.push(None);
                (position, true)
            }
        };
        for (candidate, assessment) in suggested {
            plan.suggestions.push(SuggestionRow {
                id: uuid::Uuid::now_v7(),
                customer_id: customers[customer_index].row.id,
                candidate_id: customers[candidate].row.id,
                contact_id: contact.contact_id,
                confidence: assessment.confidence,
                signals: assessment
                    .signals
                    .iter()
                    .map(|signal| signal_name(signal).to_owned())
                    .collect(),
            });
        }
        let customer_id = customers[customer_index].row.id;
        let received_at = to_micros(contact.received_at);

        let customer = &mut customers[customer_index];
        if customer.row.needs.learn(&contact.needs, now) && !customer.new {
            plan.learned.push(LearnedNeeds {
                customer_id,
                stated: contact.needs.clone(),
            });
        }
        if consented_vulnerability(&contact.needs) {
            plan.consents.push(CustomerConsent {
                id: uuid::Uuid::now_v7(),
                customer_id,
                purpose: ConsentPurpose::Vulnerability,
                statement: format!(
                    "said on contact {} that they are vulnerable, and agreed to it being recorded",
                    contact.reference.as_str()
                ),
                channel: Some(contact.channel),
                recorded_by: ACTOR_CONTACT.to_owned(),
                given_at: received_at,
                contact_id: Some(contact.contact_id),
                withdrawal: None,
            });
        }
        let needs = customer.row.needs.for_routing();

        let key = (customer_id, contact.service.as_str().to_owned());
        let reopen = match open_case.get(&key) {
            Some(_) => None,
            None => resolved_case
                .get(&key)
                .filter(|(_, resolved_at)| rules.within_follow_up(*resolved_at, received_at))
                .map(|(index, _)| *index),
        };
        if let Some(index) = reopen {
            resolved_case.remove(&key);
            open_case.insert(key.clone(), index);
            let case = &mut cases[index];
            plan.history.push((
                case.id,
                StatusRecord {
                    from: case.status,
                    to: CaseStatus::Open,
                    reason: format!("re-opened by contact {}", contact.reference.as_str()),
                    actor: ACTOR_CONTACT.to_owned(),
                    at: now,
                },
            ));
            case.status = CaseStatus::Open;
            case.reopened = true;
        }
        let (case_index, change) = match open_case.get(&key) {
            Some(&index) => {
                let case = &mut cases[index];
                let repeat_contact = rules.within_follow_up(case.updated_at, received_at);
                case.contact_count += 1;
                case.updated_at = case.updated_at.max(received_at);
                case.touched = true;
                (
                    index,
                    CaseChange::Updated {
                        contact_count: case.contact_count,
                        reopened: reopen.is_some(),
                        repeat_contact,
                    },
                )
            }
            None => {
                let index = cases.len();
                cases.push(CaseState {
                    id: CaseId::new(),
                    reference: CaseReference::generate(),
                    customer_id,
                    service: key.1.clone(),
                    status: CaseStatus::Open,
                    opened_at: received_at,
                    updated_at: received_at,
                    due_at: rules.due_at(&key.1, received_at),
                    contact_count: 1,
                    new: true,
                    touched: true,
                    reopened: false,
                });
                open_case.insert(key, index);
                (index, CaseChange::Opened)
            }
        };
        let repeat_contact = matches!(
            change,
            CaseChange::Updated {
                repeat_contact: true,
                ..
            }
        );
        let case_id = cases[case_index].id;

        plan.contacts.push(ContactRow {
            id: contact.contact_id,
            reference: contact.reference.as_str().to_owned(),
            customer_id,
            case_id,
            channel: contact.channel.as_str(),
            service: contact.service.as_str().to_owned(),
            summary: contact.summary.clone(),
            details: to_json("contacts.details", &contact.details)?,
            needs: to_json("contacts.needs", &contact.needs)?,
            origin: to_json("contacts.origin", &contact.origin)?,
            received_at,
            stored_at: now,
            repeat_contact,
        });
        plan.outcomes.push(ApplyOutcome::Applied(AppliedContact {
            event_id: contact.event_id,
            contact_id: contact.contact_id,
            customer_id,
            case_id,
            new_customer,
            new_case: matches!(change, CaseChange::Opened),
        }));
        plan.events.push(PlannedEvent {
            case: case_index,
            change,
            contact_id: contact.contact_id,
            channel: contact.channel,
            needs,
            traceparent: contact.traceparent.clone(),
        });
    }

    for customer in customers {
        if customer.new {
            plan.new_customers.push(customer.row);
        } else if customer.filled {
            plan.filled_customers.push(customer.row);
        }
    }
    // Sorted by id so concurrent writers lock customer rows in the same order.
    plan.filled_customers.sort_by_key(|row| row.id);
    plan.cases = cases;
    Ok(plan)
}

/// Who holds each identifier, in creation order: where matching finds its
/// candidates.
#[derive(Default)]
struct IdentityIndex {
    phone: HashMap<String, Vec<usize>>,
    email: HashMap<String, Vec<usize>>,
    uprn: HashMap<String, Vec<usize>>,
    postcode: HashMap<String, Vec<usize>>,
}

impl IdentityIndex {
    /// Records that customer `position` holds the identifiers of `row`.
    fn add(&mut self, position: usize, row: &CustomerRow) {
        for (map, value) in [
            (&mut self.phone, &row.phone_e164),
            (&mut self.email, &row.email),
            (&mut self.uprn, &row.uprn),
            (&mut self.postcode, &row.postcode),
        ] {
            if let Some(value) = value {
                let holders = map.entry(value.clone()).or_default();
                if !holders.contains(&position) {
                    holders.push(position);
                }
            }
        }
    }

    /// Customers sharing an identifier with `evidence`: phone holders first,
    /// then email, UPRN and postcode, each in creation order, no repeats.
    fn candidates(&self, evidence: &IdentityEvidence) -> Vec<usize> {
        let mut found = Vec::new();
        let keys = [
            (&self.phone, evidence.phone.as_ref().map(PhoneNumber::as_e164)),
            (&self.email, evidence.email.as_ref().map(EmailAddress::as_str)),
            (&self.uprn, evidence.uprn.as_ref().map(Uprn::as_str)),
            (&self.postcode, evidence.postcode.as_ref().map(Postcode::as_str)),
        ];
        for (map, value) in keys {
            for &position in value.and_then(|value| map.get(value)).into_iter().flatten() {
                if !found.contains(&position) {
                    found.push(position);
                }
            }
        }
        found
    }
}

/// Fills in what `customer` lacks from `contact`; never overwrites. An
/// identifier held by another customer is not copied, so that matching by it
/// stays unambiguous and the two customers are not silently merged.
fn fill_in(
    customer: &mut CustomerState,
    contact: &IncomingContact,
    phone: Option<&str>,
    email: Option<&str>,
    index: &IdentityIndex,
) {
    let details = &contact.customer;
    let row = &mut customer.row;
    let mut filled = false;
    let mut fill = |slot: &mut Option<String>, value: Option<&str>| {
        if slot.is_none()
            && let Some(value) = value
        {
            *slot = Some(value.to_owned());
            filled = true;
        }
    };
    fill(
        &mut row.phone_e164,
        phone.filter(|phone| !index.phone.contains_key(*phone)),
    );
    fill(
        &mut row.email,
        email.filter(|email| !index.email.contains_key(*email)),
    );
    fill(&mut row.name, details.name.as_ref().map(|name| name.as_str()));
    fill(
        &mut row.postcode,
        details.postcode.as_ref().map(|postcode| postcode.as_str()),
    );
    fill(&mut row.address_line, details.address_line.as_deref());
    fill(&mut row.uprn, details.uprn.as_ref().map(|uprn| uprn.as_str()));
    customer.filled |= filled;
}

pub(crate) fn to_json<T: serde::Serialize>(column: &'static str, value: &T) -> CasesResult<String> {
    serde_json::to_string(value).map_err(|error| CasesError::Corrupt {
        column,
        reason: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use switchboard_domain::{
        ContactOrigin, ContactReference, CustomerDetails, EmailAddress, Needs, PhoneNumber, ServiceId,
    };

    fn contact(service: &str, phone: Option<&str>, email: Option<&str>) -> IncomingContact {
        IncomingContact {
            event_id: EventId::new(),
            traceparent: None,
            contact_id: ContactId::new(),
            reference: ContactReference::generate(),
            received_at: to_micros(Utc::now()),
            channel: Channel::Web,
            service: ServiceId::parse(service).expect("service"),
            customer: CustomerDetails {
                phone: phone.map(|phone| PhoneNumber::parse(phone).expect("phone")),
                email: email.map(|email| EmailAddress::parse(email).expect("email")),
                ..CustomerDetails::default()
            },
            summary: "summary".to_owned(),
            details: Default::default(),
            needs: Needs::default(),
            origin: ContactOrigin::None,
        }
    }

    fn customer(phone: Option<&str>, email: Option<&str>, created_at: DateTime<Utc>) -> CustomerRow {
        CustomerRow {
            id: CustomerId::new(),
            name: None,
            phone_e164: phone.map(str::to_owned),
            email: email.map(str::to_owned),
            postcode: None,
            address_line: None,
            uprn: None,
            created_at,
            needs: CustomerNeeds::default(),
        }
    }

    fn applied(outcome: &ApplyOutcome) -> &AppliedContact {
        outcome.applied().expect("applied")
    }

    #[test]
    fn the_earliest_customer_holding_a_phone_wins() {
        let now = Utc::now();
        let later = customer(Some("+447700900123"), None, now);
        let earlier = customer(Some("+447700900123"), None, now - Duration::days(1));
        let earlier_id = earlier.id;
        let snapshot = Snapshot {
            customers: vec![later, earlier],
            ..Snapshot::default()
        };
        let plan = plan_batch(
            &[contact("waste", Some("07700900123"), None)],
            snapshot,
            &CaseRules::embedded(),
            now,
        )
        .expect("plan");
        assert_eq!(applied(&plan.outcomes[0]).customer_id, earlier_id);
    }

    #[test]
    fn an_identifier_held_by_another_customer_is_not_copied() {
        let now = Utc::now();
        let by_phone = customer(Some("+447700900123"), None, now);
        let by_email = customer(None, Some("ada@example.org"), now);
        let phone_id = by_phone.id;
        let email_id = by_email.id;
        let snapshot = Snapshot {
            customers: vec![by_phone, by_email],
            ..Snapshot::default()
        };
        let plan = plan_batch(
            &[contact("waste", Some("07700900123"), Some("ada@example.org"))],
            snapshot,
            &CaseRules::embedded(),
            now,
        )
        .expect("plan");
        assert_eq!(applied(&plan.outcomes[0]).customer_id, phone_id);
        assert!(
            plan.filled_customers.is_empty(),
            "nothing to fill in: the email belongs to someone else"
        );
        assert!(plan.new_customers.is_empty());
        // The email's holder may be the same resident: put to an agent.
        let suggestions: Vec<(CustomerId, CustomerId, &[String])> = plan
            .suggestions
            .iter()
            .map(|row| (row.customer_id, row.candidate_id, row.signals.as_slice()))
            .collect();
        assert_eq!(
            suggestions,
            [(phone_id, email_id, &["same_email".to_owned()][..])]
        );
    }

    #[test]
    fn a_contact_joins_the_most_recently_active_open_case() {
        let now = Utc::now();
        let resident = customer(Some("+447700900123"), None, now);
        let open_case = |updated_at| OpenCaseRow {
            id: CaseId::new(),
            reference: CaseReference::generate().as_str().to_owned(),
            customer_id: resident.id,
            service: "waste".to_owned(),
            status: CaseStatus::Open,
            resolved_at: None,
            opened_at: now - Duration::days(30),
            updated_at,
            contact_count: 3,
        };
        let stale = open_case(now - Duration::days(20));
        let active = open_case(now - Duration::days(1));
        let active_id = active.id;
        let snapshot = Snapshot {
            customers: vec![resident],
            open_cases: vec![stale, active],
            ..Snapshot::default()
        };
        let plan = plan_batch(
            &[contact("waste", Some("07700900123"), None)],
            snapshot,
            &CaseRules::embedded(),
            now,
        )
        .expect("plan");
        assert_eq!(applied(&plan.outcomes[0]).case_id, active_id);
        assert_eq!(plan.touched_cases().len(), 1);
        assert!(plan.new_cases().is_empty());
        let outbox = plan.outbox();
        let event = v1::Event::decode(outbox[0].body.as_slice()).expect("event");
        assert!(
            matches!(event.payload, Some(v1::event::Payload::CaseUpdated(ref updated)) if updated.contact_count == 4)
        );
    }

    #[test]
    fn applied_events_and_stored_contacts_are_duplicates() {
        let now = Utc::now();
        let seen = contact("waste", Some("07700900123"), None);
        let republished = contact("waste", Some("07700900123"), None);
        let snapshot = Snapshot {
            applied_events: HashSet::from([seen.event_id]),
            stored_contacts: HashSet::from([republished.contact_id]),
            ..Snapshot::default()
        };
        let plan = plan_batch(
            &[seen.clone(), republished.clone(), seen.clone()],
            snapshot,
            &CaseRules::embedded(),
            now,
        )
        .expect("plan");
        assert!(plan.outcomes.iter().all(|outcome| outcome.applied().is_none()));
        assert!(plan.contacts.is_empty() && plan.outbox().is_empty());
        // The new event id of a known contact is recorded, so it is skipped cheaply next time.
        assert_eq!(plan.inbox, vec![republished.event_id]);
    }

    #[test]
    fn events_use_the_regenerated_reference() {
        let now = Utc::now();
        let mut plan = plan_batch(
            &[contact("waste", None, Some("ada@example.org"))],
            Snapshot::default(),
            &CaseRules::embedded(),
            now,
        )
        .expect("plan");
        let case = plan.new_cases().remove(0);
        plan.regenerate_reference(case.id);
        let regenerated = plan.new_cases().remove(0).reference;
        assert_ne!(regenerated, case.reference);
        let event = v1::Event::decode(plan.outbox()[0].body.as_slice()).expect("event");
        assert!(
            matches!(event.payload, Some(v1::event::Payload::CaseOpened(ref opened)) if opened.reference == regenerated)
        );
    }

    #[test]
    fn lock_keys_are_sorted_and_distinct() {
        let batch = [
            contact("waste", Some("07700900123"), Some("b@example.org")),
            contact("housing", Some("07700900123"), Some("a@example.org")),
        ];
        let keys = lookup_keys(&batch);
        assert_eq!(keys.phones.len(), 1);
        let mut contacts: Vec<String> = batch
            .iter()
            .map(|contact| format!("cases.contact:{}", contact.contact_id))
            .collect();
        contacts.sort();
        let mut expected = contacts;
        expected.extend(
            [
                "cases.customer.email:a@example.org",
                "cases.customer.email:b@example.org",
                "cases.customer.phone:+447700900123",
            ]
            .map(str::to_owned),
        );
        assert_eq!(keys.lock_keys(), expected);
    }
}
