//! The Switchboard domain: validated values and the rules about them. No I/O.
//!
//! - [`ids`]: UUIDv7 identifiers (`ContactId`, `CustomerId`, `CaseId`, `EventId`)
//!   and the short references residents are given (`ContactReference`,
//!   `CaseReference`).
//! - [`channel`]: the contact channels, shared by the wire, storage and routing.
//! - [`customer`]: the resident's details, each a newtype with a `parse`
//!   constructor that normalises (`PhoneNumber` to E.164, `EmailAddress`,
//!   `Postcode`, `PersonName`).
//! - [`catalogue`]: the council service catalogue and offices, loaded from
//!   `seeds/` and validated with the failing key named.
//! - [`partners`]: the directory of organisations residents are signposted or
//!   referred to, loaded from `seeds/partners.toml` and checked against the
//!   catalogue.
//! - [`retention`]: how long each category of personal data is kept, loaded
//!   from `seeds/retention.toml`.
//! - [`identity`]: how likely a contact's identifiers name an existing
//!   customer, as a confidence, the signals behind it and a decision.
//! - [`calendar`]: working days and bank holidays, for case due dates in UK
//!   local time.
//! - [`contact`]: a validated contact submission (`NewContact`), built from raw
//!   input by [`contact::ContactDraft::validate`], which reports every invalid
//!   field at once as [`ValidationErrors`].
//! - [`error`]: [`ValidationErrors`] (field violations), [`InvalidId`],
//!   [`CatalogueError`], and [`DomainError`] which wraps them all.
//!
//! Data flows one way: the service crates convert wire types into drafts, the
//! domain validates them into these types, and only validated values reach the
//! stores and the bus.

pub mod calendar;
pub mod catalogue;
pub mod channel;
pub mod contact;
pub mod customer;
pub mod error;
pub mod identity;
pub mod ids;
pub mod partners;
pub mod retention;
mod seed_file;

pub use calendar::{BankHolidayEntry, CalendarError, CalendarTable, WorkingCalendar};
pub use catalogue::{Catalogue, Office, OfficeId, ServiceDefinition, ServiceId};
pub use channel::Channel;
pub use contact::{
    ContactDraft, ContactOrigin, Needs, NewContact, RawCustomer, RawNeeds, RawOrigin, ValidContact,
    parse_language,
};
pub use customer::{CustomerDetails, EmailAddress, PersonName, PhoneNumber, Postcode, Uprn};
pub use error::{CatalogueError, DomainError, DomainResult, FieldViolation, InvalidId, ValidationErrors};
pub use identity::{IdentityEvidence, MatchAssessment, MatchDecision, MatchSignal, MatchThresholds};
pub use ids::{CaseId, CaseReference, ContactId, ContactReference, CustomerId, EventId};
pub use partners::{Partner, PartnerDirectory, PartnerId, ReferralKind};
pub use retention::{RETENTION_INTERVAL, RetentionCategory, RetentionRule, RetentionSchedule};
