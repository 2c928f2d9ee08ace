//! Linking identities: possible matches suggested to agents, and merging two
//! customers into one (and undoing it).
//!
//! A contact whose best match is only a suggestion (see [`crate::plan`])
//! gets a customer of its own and a [`MatchSuggestion`] naming the customer
//! it may be. An agent confirms it by merging the two, or dismisses it.
//!
//! A merge moves every contact and case of the merged customer to the
//! survivor. Where both have an open case for the same service, the merged
//! customer's contacts join the survivor's case and its own case is closed,
//! so the resident has one open case per service. Identifiers the survivor
//! lacks are filled in from the merged customer. Every row moved, every case
//! closed and every identifier filled in is recorded, so an un-merge puts
//! each back exactly; contacts that arrived after the merge stay with the
//! survivor. The merged customer stays, marked as merged, and is no longer
//! matched or found by search.

use std::fmt;

use chrono::{DateTime, Utc};
use switchboard_domain::{ContactId, CustomerId};
use uuid::Uuid;

/// Longest reason accepted for a merge or un-merge.
pub const MAX_MERGE_REASON_CHARS: usize = 1_000;

/// Whether a suggestion still waits for an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuggestionStatus {
    Open,
    /// The two customers were merged.
    Merged,
    /// An agent decided they are different people.
    Dismissed,
}

impl SuggestionStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            SuggestionStatus::Open => "open",
            SuggestionStatus::Merged => "merged",
            SuggestionStatus::Dismissed => "dismissed",
        }
    }

    pub fn parse(input: &str) -> Result<Self, String> {
        [
            SuggestionStatus::Open,
            SuggestionStatus::Merged,
            SuggestionStatus::Dismissed,
        ]
        .into_iter()
        .find(|status| status.as_str() == input)
        .ok_or_else(|| "unknown suggestion status".to_owned())
    }
}

/// A possible match: `customer_id` (made for `contact_id`) may be the same
/// person as `candidate_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchSuggestion {
    pub id: Uuid,
    pub customer_id: CustomerId,
    pub candidate_id: CustomerId,
    pub contact_id: ContactId,
    /// 0 to 100.
    pub confidence: u8,
    /// The evidence, by name (`same_landline`, `name_agrees`, …): no values.
    pub signals: Vec<String>,
    pub status: SuggestionStatus,
    pub created_at: DateTime<Utc>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

/// A merge a member of staff asks for.
#[derive(Clone, PartialEq, Eq)]
pub struct MergeRequest {
    /// The customer who remains.
    pub survivor_id: CustomerId,
    /// The customer whose contacts and cases move to the survivor.
    pub merged_id: CustomerId,
    /// Staff's free text; may name the resident, so never logged.
    pub reason: String,
    pub actor: String,
}

impl fmt::Debug for MergeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MergeRequest")
            .field("survivor_id", &self.survivor_id)
            .field("merged_id", &self.merged_id)
            .finish_non_exhaustive()
    }
}

/// A merge as recorded: the audit trail of who linked two identities, when
/// and why, and of its undoing.
#[derive(Clone, PartialEq, Eq)]
pub struct CustomerMerge {
    pub id: Uuid,
    pub survivor_id: CustomerId,
    pub merged_id: CustomerId,
    pub reason: String,
    pub merged_by: String,
    pub merged_at: DateTime<Utc>,
    /// Identifier columns of the survivor filled in from the merged customer.
    pub filled_columns: Vec<String>,
    pub moved_contacts: u32,
    pub moved_cases: u32,
    pub unmerged_by: Option<String>,
    pub unmerged_at: Option<DateTime<Utc>>,
    pub unmerge_reason: Option<String>,
}

impl fmt::Debug for CustomerMerge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomerMerge")
            .field("id", &self.id)
            .field("survivor_id", &self.survivor_id)
            .field("merged_id", &self.merged_id)
            .field("merged_at", &self.merged_at)
            .field("moved_contacts", &self.moved_contacts)
            .field("moved_cases", &self.moved_cases)
            .field("unmerged_at", &self.unmerged_at)
            .finish_non_exhaustive()
    }
}

/// The survivor's identifier columns a merge may fill in, in the order they
/// are recorded. `name_folded` follows `name`.
pub(crate) const FILLABLE_COLUMNS: [&str; 6] =
    ["name", "phone_e164", "email", "postcode", "address_line", "uprn"];

/// Which of the survivor's empty identifier columns the merged customer can
/// fill.
pub(crate) fn columns_to_fill(
    survivor: &crate::plan::CustomerRow,
    merged: &crate::plan::CustomerRow,
) -> Vec<&'static str> {
    let slots: [(&Option<String>, &Option<String>); 6] = [
        (&survivor.name, &merged.name),
        (&survivor.phone_e164, &merged.phone_e164),
        (&survivor.email, &merged.email),
        (&survivor.postcode, &merged.postcode),
        (&survivor.address_line, &merged.address_line),
        (&survivor.uprn, &merged.uprn),
    ];
    FILLABLE_COLUMNS
        .into_iter()
        .zip(slots)
        .filter(|(_, (survivor, merged))| survivor.is_none() && merged.is_some())
        .map(|(column, _)| column)
        .collect()
}
