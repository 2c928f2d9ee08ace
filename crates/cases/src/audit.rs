//! The audit log of reads of residents' personal data: who read what, when
//! and why. `CaseService` records every read it answers (the contact, case,
//! timeline or search result, by the customer it belongs to) before the
//! answer leaves the service; a read that cannot be recorded is not answered.
//!
//! The purpose is what the caller states in the `x-switchboard-purpose`
//! request header (an agent's desktop sends e.g. "handling call SB-…"); a
//! read without one is recorded as [`PURPOSE_NOT_STATED`], so that unexplained
//! reads stand out when the log is reviewed.

use chrono::{DateTime, Utc};
use switchboard_domain::CustomerId;
use uuid::Uuid;

/// The request header carrying why personal data is read.
pub const PURPOSE_HEADER: &str = "x-switchboard-purpose";
/// The purpose recorded when the caller gave none.
pub const PURPOSE_NOT_STATED: &str = "not stated";
/// Longest purpose kept; a longer one is cut at a character boundary.
pub const MAX_PURPOSE_CHARS: usize = 200;

/// One read of one customer's personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRead {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    /// The caller's subject (staff or a system, never a resident).
    pub actor: String,
    /// The method, e.g. `GetCustomerTimeline`.
    pub action: String,
    pub customer_id: CustomerId,
    /// The contact, case or customer read.
    pub record_id: Uuid,
    pub purpose: String,
}

/// A purpose as recorded: trimmed, bounded, and never empty.
pub fn purpose(stated: Option<&str>) -> String {
    match stated.map(str::trim).filter(|text| !text.is_empty()) {
        Some(text) => text.chars().take(MAX_PURPOSE_CHARS).collect(),
        None => PURPOSE_NOT_STATED.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purpose_is_trimmed_bounded_and_never_empty() {
        assert_eq!(
            purpose(Some("  handling call SB-7K3MQ-9XD2H ")),
            "handling call SB-7K3MQ-9XD2H"
        );
        assert_eq!(purpose(Some("   ")), PURPOSE_NOT_STATED);
        assert_eq!(purpose(None), PURPOSE_NOT_STATED);
        assert_eq!(purpose(Some(&"é".repeat(500))).chars().count(), MAX_PURPOSE_CHARS);
    }
}
