//! Erasing a resident: their personal data goes from every table of the case
//! store, and what stays carries none, so the statistics the council reports
//! (contacts and cases by service, channel and outcome) stay the same.
//!
//! What an erasure does, in one transaction:
//! - the customer's identifiers and name are removed; they can no longer be
//!   matched or found;
//! - their contacts keep id, reference, channel, service, times and outcome;
//!   the summary, form details and needs are removed, and from the origin the
//!   caller's number, call id, page address and desk (the office and the
//!   number dialled are the council's own);
//! - notes on their cases are deleted; the reasons in status history, the
//!   consent statements and notes of referrals, the reasons of merges and
//!   the purposes in the read log are replaced by [`ERASED`];
//! - suggested matches naming them are deleted;
//! - the needs on their record are removed, and the statements of their
//!   consents read [`ERASED`];
//! - the erasure itself is recorded (who, when, why).
//!
//! Events already published carry no personal data in the clear. Intake
//! keeps its own copy of each contact as received (its own tables), which
//! the retention schedule's `intake-contacts` removes ([`crate::retention`])
//! within [`switchboard_domain::retention::MAX_INTAKE_KEEP_DAYS`] days at
//! most, as the schedule enforces: inside the month an erasure request allows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use switchboard_domain::CustomerId;

/// What replaces staff's free text about an erased resident.
pub const ERASED: &str = "erased";

/// An erasure a member of staff asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureRequest {
    pub customer_id: CustomerId,
    /// Why, e.g. the request's reference. Kept, so it must not name the resident.
    pub reason: String,
    pub actor: String,
    /// Set by the retention schedule: erase only if the resident has had no
    /// contact since this time and has no open case, checked again under the
    /// customer's lock, so a resident who gets in touch meanwhile is kept.
    pub only_if_inactive_since: Option<DateTime<Utc>>,
}

/// An erasure as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    pub customer_id: CustomerId,
    pub erased_by: String,
    pub erased_at: DateTime<Utc>,
    pub reason: String,
}

/// What the council reports, which erasure must leave as it was: contacts
/// by service, channel and outcome (the wrap-up disposition, "" when none),
/// and cases by service, status and outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseStatistics {
    pub contacts: BTreeMap<(String, String, String), u64>,
    pub cases: BTreeMap<(String, String, String), u64>,
}
