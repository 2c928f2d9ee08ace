//! What the case store holds and answers, in domain terms: customers, cases,
//! contacts, the customer timeline, and the contact as it arrives from intake.
//!
//! These types carry personal data (names, summaries, details), so their
//! `Debug` output redacts it, like the domain's own values do.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SubsecRound, Utc};
use switchboard_domain::{
    CaseId, CaseReference, Channel, ContactId, ContactOrigin, ContactReference, CustomerDetails, CustomerId,
    EmailAddress, EventId, Needs, PersonName, PhoneNumber, Postcode, ServiceId,
};
use uuid::Uuid;

use crate::error::{CasesError, CasesResult};
use crate::lifecycle::{CaseNote, ContactOutcome, StatusRecord};
use crate::needs::CustomerNeeds;
use crate::referrals::Referral;

/// Timeline entries per page when the caller does not say.
pub const TIMELINE_PAGE_DEFAULT: usize = 50;
/// Most timeline entries one page may hold.
pub const TIMELINE_PAGE_MAX: usize = 500;
/// Search results when the caller does not say.
pub const SEARCH_PAGE_DEFAULT: usize = 20;
/// Most search results one answer may hold.
pub const SEARCH_PAGE_MAX: usize = 100;

/// Where a case stands. Only the first three count as open: a new contact
/// for the same service joins an open case, and opens a new one otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaseStatus {
    Open,
    WaitingOnResident,
    WaitingOnCouncil,
    Resolved,
    Closed,
}

impl CaseStatus {
    pub const ALL: [CaseStatus; 5] = [
        CaseStatus::Open,
        CaseStatus::WaitingOnResident,
        CaseStatus::WaitingOnCouncil,
        CaseStatus::Resolved,
        CaseStatus::Closed,
    ];

    /// The storage form, also used in the migrations' check constraints.
    pub const fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Open => "open",
            CaseStatus::WaitingOnResident => "waiting_on_resident",
            CaseStatus::WaitingOnCouncil => "waiting_on_council",
            CaseStatus::Resolved => "resolved",
            CaseStatus::Closed => "closed",
        }
    }

    pub fn parse(input: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == input)
            .ok_or_else(|| "unknown case status".to_owned())
    }

    pub const fn is_open(self) -> bool {
        matches!(
            self,
            CaseStatus::Open | CaseStatus::WaitingOnResident | CaseStatus::WaitingOnCouncil
        )
    }
}

/// One resident as the case store knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: CustomerId,
    pub details: CustomerDetails,
    pub created_at: DateTime<Utc>,
    /// How to serve them well ([`crate::needs`]).
    pub needs: CustomerNeeds,
}

/// One matter of a resident about one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub id: CaseId,
    pub reference: CaseReference,
    pub customer_id: CustomerId,
    pub service: ServiceId,
    pub status: CaseStatus,
    /// When the contact that opened the case was received.
    pub opened_at: DateTime<Utc>,
    /// When the latest contact on the case was received.
    pub updated_at: DateTime<Utc>,
    /// Contacts on the case, oldest first.
    pub contact_ids: Vec<ContactId>,
    /// The service's target for resolving it; `None` for a service the
    /// catalogue did not know when the case opened.
    pub due_at: Option<DateTime<Utc>>,
    /// When it was last resolved, while it is resolved or closed after that.
    pub resolved_at: Option<DateTime<Utc>>,
    /// How it was resolved (a disposition such as "signposted").
    pub outcome: Option<String>,
    pub reopened_count: u32,
}

/// A case with its notes, status history and referrals, as `GetCase` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseDetail {
    pub case: Case,
    /// Oldest first.
    pub notes: Vec<CaseNote>,
    /// Oldest first.
    pub history: Vec<StatusRecord>,
    /// Signposts and referrals to partners, oldest first.
    pub referrals: Vec<Referral>,
}

/// One contact as the case store holds it, attached to a customer and a case.
#[derive(Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: ContactId,
    pub reference: ContactReference,
    pub customer_id: CustomerId,
    pub case_id: CaseId,
    pub channel: Channel,
    pub service: ServiceId,
    pub summary: String,
    pub details: BTreeMap<String, String>,
    pub needs: Needs,
    pub origin: ContactOrigin,
    pub received_at: DateTime<Utc>,
    /// When the case store applied it.
    pub stored_at: DateTime<Utc>,
    /// Came within the follow-up window of the case's previous contact.
    pub repeat_contact: bool,
    /// How the agent wrapped it up, once routing reports it.
    pub outcome: Option<ContactOutcome>,
}

impl fmt::Debug for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contact")
            .field("id", &self.id)
            .field("reference", &self.reference)
            .field("customer_id", &self.customer_id)
            .field("case_id", &self.case_id)
            .field("channel", &self.channel)
            .field("service", &self.service)
            .field("summary", &"***")
            .field("details", &self.details.keys().collect::<Vec<_>>())
            .field("needs", &self.needs)
            .field("origin", &self.origin)
            .field("received_at", &self.received_at)
            .field("stored_at", &self.stored_at)
            .field("repeat_contact", &self.repeat_contact)
            .field("outcome", &self.outcome)
            .finish()
    }
}

/// How a caller names a case: by id, or by the reference the resident quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseKey {
    Id(CaseId),
    Reference(CaseReference),
}

/// One line of a customer's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimelineEntry {
    Contact(Contact),
    Case(Case),
}

impl TimelineEntry {
    /// When the entry happened: a contact's receipt, a case's opening.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            TimelineEntry::Contact(contact) => contact.received_at,
            TimelineEntry::Case(case) => case.opened_at,
        }
    }

    pub(crate) fn cursor(&self) -> TimelineCursor {
        match self {
            TimelineEntry::Contact(contact) => TimelineCursor {
                at: contact.received_at,
                kind: EntryKind::Contact,
                id: contact.id.as_uuid(),
            },
            TimelineEntry::Case(case) => TimelineCursor {
                at: case.opened_at,
                kind: EntryKind::Case,
                id: case.id.as_uuid(),
            },
        }
    }
}

/// One page of a customer's history, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    pub customer: Customer,
    pub entries: Vec<TimelineEntry>,
    /// Present when more entries follow.
    pub next_page_token: Option<PageToken>,
}

/// The two kinds of timeline entry. The rank orders entries that happened at
/// the same instant (a case and the contact that opened it): newest first puts
/// the case above its first contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Contact,
    Case,
}

impl EntryKind {
    pub(crate) const fn rank(self) -> i16 {
        match self {
            EntryKind::Contact => 0,
            EntryKind::Case => 1,
        }
    }

    pub(crate) fn from_rank(rank: i16) -> Option<Self> {
        match rank {
            0 => Some(EntryKind::Contact),
            1 => Some(EntryKind::Case),
            _ => None,
        }
    }
}

/// Where a timeline page ends: the sort key of its last entry. Entries are
/// ordered by `(at, kind rank, id)` descending, which is total, so keyset
/// pagination neither skips nor repeats entries when new ones arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimelineCursor {
    pub(crate) at: DateTime<Utc>,
    pub(crate) kind: EntryKind,
    pub(crate) id: Uuid,
}

/// Version tag inside page tokens, so the format can change without old
/// tokens being misread.
const PAGE_TOKEN_VERSION: &str = "t1";

/// An opaque continuation token for [`Timeline`] pages. Clients pass it back
/// as they got it; its contents are not part of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken(String);

impl PageToken {
    /// Accepts only tokens this store issued.
    pub fn parse(input: &str) -> CasesResult<Self> {
        let token = PageToken(input.to_owned());
        token.cursor()?;
        Ok(token)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn from_cursor(cursor: TimelineCursor) -> Self {
        let plain = format!(
            "{PAGE_TOKEN_VERSION}.{}.{}.{}",
            cursor.at.timestamp_micros(),
            cursor.kind.rank(),
            cursor.id.simple()
        );
        PageToken(URL_SAFE_NO_PAD.encode(plain))
    }

    pub(crate) fn cursor(&self) -> CasesResult<TimelineCursor> {
        let bytes = URL_SAFE_NO_PAD
            .decode(self.0.as_bytes())
            .map_err(|_| CasesError::InvalidPageToken)?;
        let plain = String::from_utf8(bytes).map_err(|_| CasesError::InvalidPageToken)?;
        let mut parts = plain.split('.');
        let (Some(PAGE_TOKEN_VERSION), Some(micros), Some(rank), Some(id), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(CasesError::InvalidPageToken);
        };
        let micros: i64 = micros.parse().map_err(|_| CasesError::InvalidPageToken)?;
        let at = DateTime::from_timestamp_micros(micros).ok_or(CasesError::InvalidPageToken)?;
        let kind = rank
            .parse::<i16>()
            .ok()
            .and_then(EntryKind::from_rank)
            .ok_or(CasesError::InvalidPageToken)?;
        let id = Uuid::parse_str(id).map_err(|_| CasesError::InvalidPageToken)?;
        Ok(TimelineCursor { at, kind, id })
    }
}

impl fmt::Display for PageToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What to look for in [`crate::CasesStore::search_customers`]. Every field
/// given must match: identifiers exactly (in their normalised form), the
/// name as a case-insensitive "contains".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerSearch {
    pub phone: Option<PhoneNumber>,
    pub email: Option<EmailAddress>,
    pub postcode: Option<Postcode>,
    pub name: Option<PersonName>,
    /// The customer one of whose cases or contacts has this reference.
    pub reference: Option<QuotedReference>,
}

impl CustomerSearch {
    pub fn is_empty(&self) -> bool {
        self.phone.is_none()
            && self.email.is_none()
            && self.postcode.is_none()
            && self.name.is_none()
            && self.reference.is_none()
    }
}

/// A reference a resident quotes: their case's or one of their contacts'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotedReference {
    Case(CaseReference),
    Contact(ContactReference),
}

impl QuotedReference {
    /// Either kind, told apart by its prefix; as forgiving of case, spaces
    /// and look-alike characters as the domain's parsers, since residents
    /// read references out over the phone.
    pub fn parse(input: &str) -> Result<Self, String> {
        if let Ok(reference) = CaseReference::parse(input) {
            return Ok(QuotedReference::Case(reference));
        }
        ContactReference::parse(input)
            .map(QuotedReference::Contact)
            .map_err(|_| {
                format!(
                    "not a case reference ({}-XXXXX-XXXXX) or contact reference ({}-XXXXX-XXXXX)",
                    CaseReference::PREFIX,
                    ContactReference::PREFIX
                )
            })
    }

    pub fn as_str(&self) -> &str {
        match self {
            QuotedReference::Case(reference) => reference.as_str(),
            QuotedReference::Contact(reference) => reference.as_str(),
        }
    }
}

/// Case-insensitive matching form of a name, folded here (full Unicode rules)
/// rather than in SQL, so PostgreSQL and SQLite agree.
pub(crate) fn fold_name(name: &str) -> String {
    name.to_lowercase()
}

/// Times are kept to the microsecond: PostgreSQL stores no finer, and both
/// stores must give back exactly what they were given.
pub(crate) fn to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// A `contact.received` event, decoded and unsealed: everything the case
/// store needs to attach the contact to a customer and a case.
#[derive(Clone, PartialEq, Eq)]
pub struct IncomingContact {
    /// The event's id: the inbox key that makes applying it idempotent.
    pub event_id: EventId,
    /// Trace context of the event, passed on to the case events it causes.
    pub traceparent: Option<String>,
    pub contact_id: ContactId,
    pub reference: ContactReference,
    pub received_at: DateTime<Utc>,
    pub channel: Channel,
    pub service: ServiceId,
    pub customer: CustomerDetails,
    pub summary: String,
    pub details: BTreeMap<String, String>,
    pub needs: Needs,
    pub origin: ContactOrigin,
}

impl IncomingContact {
    /// The phone number that identifies the resident: the one they gave, or
    /// else the number they called from.
    pub fn identifying_phone(&self) -> Option<&PhoneNumber> {
        self.customer.phone.as_ref().or(match &self.origin {
            ContactOrigin::Phone { caller_number, .. } => caller_number.as_ref(),
            _ => None,
        })
    }
}

impl fmt::Debug for IncomingContact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingContact")
            .field("event_id", &self.event_id)
            .field("contact_id", &self.contact_id)
            .field("reference", &self.reference)
            .field("received_at", &self.received_at)
            .field("channel", &self.channel)
            .field("service", &self.service)
            .field("customer", &self.customer)
            .field("summary", &"***")
            .field("details", &self.details.keys().collect::<Vec<_>>())
            .field("needs", &self.needs)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// What applying one incoming contact did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Stored and attached.
    Applied(AppliedContact),
    /// Already applied before (same event id, or the same contact under
    /// another event id): nothing changed.
    Duplicate { event_id: EventId },
}

impl ApplyOutcome {
    pub fn event_id(&self) -> EventId {
        match self {
            ApplyOutcome::Applied(applied) => applied.event_id,
            ApplyOutcome::Duplicate { event_id } => *event_id,
        }
    }

    pub fn applied(&self) -> Option<&AppliedContact> {
        match self {
            ApplyOutcome::Applied(applied) => Some(applied),
            ApplyOutcome::Duplicate { .. } => None,
        }
    }
}

/// Where an applied contact landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedContact {
    pub event_id: EventId,
    pub contact_id: ContactId,
    pub customer_id: CustomerId,
    pub case_id: CaseId,
    /// The contact created the customer.
    pub new_customer: bool,
    /// The contact opened the case.
    pub new_case: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_token_round_trips_and_refuses_foreign_tokens() {
        let cursor = TimelineCursor {
            at: to_micros(Utc::now()),
            kind: EntryKind::Case,
            id: Uuid::now_v7(),
        };
        let token = PageToken::from_cursor(cursor);
        assert_eq!(
            PageToken::parse(token.as_str())
                .expect("ours")
                .cursor()
                .expect("cursor"),
            cursor
        );
        for foreign in [
            "",
            "abc",
            "dDEuMS4xLnh5eg",
            "!!!",
            &URL_SAFE_NO_PAD.encode("t2.1.1.00000000000000000000000000000000"),
        ] {
            assert!(
                matches!(PageToken::parse(foreign), Err(CasesError::InvalidPageToken)),
                "{foreign}"
            );
        }
    }

    #[test]
    fn case_status_round_trips_and_knows_which_are_open() {
        for status in CaseStatus::ALL {
            assert_eq!(CaseStatus::parse(status.as_str()), Ok(status));
        }
        assert!(CaseStatus::WaitingOnCouncil.is_open());
        assert!(!CaseStatus::Resolved.is_open());
        assert!(CaseStatus::parse("OPEN").is_err());
    }

    #[test]
    fn names_fold_beyond_ascii() {
        assert_eq!(fold_name("ŁUKASZ Ó'Brien"), "łukasz ó'brien");
    }
}
