//! Signposting and referrals to partner organisations, recorded on a case
//! (DESIGN.md: "signposting is a tracked outcome").
//!
//! The rules, decided here free of SQL so both stores follow them:
//! - **The partner** must be in the directory the store was given
//!   ([`crate::CaseRules::with_partners`]); its kind then is kept on the
//!   referral, since a council may change the directory later.
//! - **Consent**: a partner whose kind is `referral` receives the resident's
//!   details, so the resident's consent (what they agreed to be shared) must
//!   be recorded; a signpost needs none but may record it.
//! - **The case** may be open or resolved (agents often signpost at wrap-up),
//!   not closed.
//! - **Outcomes**: a referral that was made is accepted, declined, completed
//!   or ended with no contact, once; an accepted one may still be completed or
//!   end with no contact. The referral keeps the latest report; each one is
//!   an event on the stream.
//!
//! Consent statements and notes are staff's free text and may name the
//! resident: they stay in the case store and never go into events or logs.

use std::fmt;

use chrono::{DateTime, Utc};
use switchboard_domain::{CaseId, Partner, PartnerDirectory, PartnerId, ReferralKind};
use switchboard_proto::v1;
use uuid::Uuid;

use crate::lifecycle::CurrentCase;
use crate::model::CaseStatus;
use crate::plan::{OutboxRow, case_event};

/// Longest consent statement accepted.
pub const MAX_CONSENT_CHARS: usize = 2_000;
/// Longest note accepted on a referral or its outcome.
pub const MAX_REFERRAL_NOTE_CHARS: usize = 2_000;

/// Id of a referral: a UUIDv7, so referrals sort by when they were made.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReferralId(Uuid);

impl ReferralId {
    // No `Default`, as with the domain's ids: an id is made where a referral is.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        ReferralId(Uuid::now_v7())
    }

    pub const fn from_uuid(uuid: Uuid) -> Self {
        ReferralId(uuid)
    }

    pub const fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// The message does not echo the input, like the domain's id parsers.
    pub fn parse(input: &str) -> Result<Self, String> {
        Uuid::parse_str(input.trim()).map(ReferralId).map_err(|_| {
            "invalid referral id: expected a uuid such as 0192f0c1-7d3e-7a2b-9c4d-5e6f7a8b9c0d".to_owned()
        })
    }
}

impl fmt::Display for ReferralId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for ReferralId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReferralId({})", self.0.hyphenated())
    }
}

/// Where a referral stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReferralStatus {
    /// Made, no outcome reported yet.
    Made,
    /// The partner took the resident on.
    Accepted,
    /// The partner could not help.
    Declined,
    /// The partner helped the resident.
    Completed,
    /// The partner could not reach the resident.
    NoContact,
}

impl ReferralStatus {
    pub const ALL: [ReferralStatus; 5] = [
        ReferralStatus::Made,
        ReferralStatus::Accepted,
        ReferralStatus::Declined,
        ReferralStatus::Completed,
        ReferralStatus::NoContact,
    ];

    /// The storage form, also used in the migrations' check constraints.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReferralStatus::Made => "made",
            ReferralStatus::Accepted => "accepted",
            ReferralStatus::Declined => "declined",
            ReferralStatus::Completed => "completed",
            ReferralStatus::NoContact => "no_contact",
        }
    }

    pub fn parse(input: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == input)
            .ok_or_else(|| "unknown referral status".to_owned())
    }

    /// Whether a partner may report this: every status but `Made`.
    pub const fn is_outcome(self) -> bool {
        !matches!(self, ReferralStatus::Made)
    }
}

/// The resident's consent to their details being shared with a partner.
#[derive(Clone, PartialEq, Eq)]
pub struct Consent {
    /// What the resident agreed to be shared, in their words or the agent's.
    pub statement: String,
    pub given_at: DateTime<Utc>,
}

impl fmt::Debug for Consent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consent")
            .field("given_at", &self.given_at)
            .finish_non_exhaustive()
    }
}

/// A signpost or referral a member of staff makes.
#[derive(Clone, PartialEq, Eq)]
pub struct NewReferral {
    pub case_id: CaseId,
    pub partner_id: PartnerId,
    pub consent: Option<Consent>,
    /// Free text from staff; may be empty.
    pub note: String,
    /// The staff member's subject.
    pub made_by: String,
}

impl fmt::Debug for NewReferral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewReferral")
            .field("case_id", &self.case_id)
            .field("partner_id", &self.partner_id)
            .field("consent", &self.consent)
            .finish_non_exhaustive()
    }
}

/// A signpost or referral as the case store holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct Referral {
    pub id: ReferralId,
    pub case_id: CaseId,
    pub partner_id: PartnerId,
    /// The partner's kind when the referral was made.
    pub kind: ReferralKind,
    pub consent: Option<Consent>,
    pub note: String,
    pub made_by: String,
    pub made_at: DateTime<Utc>,
    pub status: ReferralStatus,
    /// The latest outcome reported, by whom and when; `None` while `Made`.
    pub outcome_note: Option<String>,
    pub outcome_reported_by: Option<String>,
    pub outcome_reported_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for Referral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Referral")
            .field("id", &self.id)
            .field("case_id", &self.case_id)
            .field("partner_id", &self.partner_id)
            .field("kind", &self.kind)
            .field("consent", &self.consent)
            .field("made_at", &self.made_at)
            .field("status", &self.status)
            .field("outcome_reported_at", &self.outcome_reported_at)
            .finish_non_exhaustive()
    }
}

/// An outcome a member of staff records for a partner.
#[derive(Clone, PartialEq, Eq)]
pub struct ReferralOutcome {
    pub referral_id: ReferralId,
    pub status: ReferralStatus,
    /// Free text from staff; may be empty.
    pub note: String,
    /// The staff member's subject.
    pub reported_by: String,
}

impl fmt::Debug for ReferralOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReferralOutcome")
            .field("referral_id", &self.referral_id)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Why a referral or its outcome is refused. Partners are organisations, so
/// their ids and names may appear in messages; residents' data never does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferralError {
    #[error("{0} is not in the partner directory")]
    UnknownPartner(PartnerId),
    #[error(
        "a referral to {partner} shares the resident's details with them, so the resident's consent must be recorded"
    )]
    ConsentRequired { partner_id: PartnerId, partner: String },
    #[error("the case is closed; a referral is made on an open or resolved case")]
    CaseClosed,
    #[error("{} is not an outcome; report accepted, declined, completed or no contact", .0.as_str())]
    NotAnOutcome(ReferralStatus),
    #[error("the referral is already {}; {}", .current.as_str(), outcome_rule(*.current))]
    OutcomeAlreadyReported { current: ReferralStatus },
}

fn outcome_rule(current: ReferralStatus) -> &'static str {
    match current {
        ReferralStatus::Accepted => "only completed or no contact may follow",
        _ => "its outcome is reported once",
    }
}

/// Checks a new referral against the directory, before anything is read:
/// answers the partner it goes to.
pub fn check_referral<'a>(
    partners: &'a PartnerDirectory,
    referral: &NewReferral,
) -> Result<&'a Partner, ReferralError> {
    let partner = partners
        .get(referral.partner_id.as_str())
        .ok_or_else(|| ReferralError::UnknownPartner(referral.partner_id.clone()))?;
    if partner.referral.shares_details() && referral.consent.is_none() {
        return Err(ReferralError::ConsentRequired {
            partner_id: partner.id.clone(),
            partner: partner.name.clone(),
        });
    }
    Ok(partner)
}

/// Checks an outcome a partner reports against where the referral stands.
pub fn check_outcome(current: ReferralStatus, to: ReferralStatus) -> Result<(), ReferralError> {
    if !to.is_outcome() {
        return Err(ReferralError::NotAnOutcome(to));
    }
    let allowed = match current {
        ReferralStatus::Made => true,
        ReferralStatus::Accepted => matches!(to, ReferralStatus::Completed | ReferralStatus::NoContact),
        ReferralStatus::Declined | ReferralStatus::Completed | ReferralStatus::NoContact => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(ReferralError::OutcomeAlreadyReported { current })
    }
}

/// A referral ready to store, and its `case.referred` event.
#[derive(Debug)]
pub(crate) struct PlannedReferral {
    pub(crate) referral: Referral,
    pub(crate) event: OutboxRow,
}

/// Makes the referral `new` to `partner` on `case` (locked by the caller).
pub(crate) fn plan_referral(
    case: &CurrentCase,
    new: &NewReferral,
    partner: &Partner,
    now: DateTime<Utc>,
) -> Result<PlannedReferral, ReferralError> {
    if case.status == CaseStatus::Closed {
        return Err(ReferralError::CaseClosed);
    }
    let now = crate::model::to_micros(now);
    let referral = Referral {
        id: ReferralId::new(),
        case_id: case.id,
        partner_id: partner.id.clone(),
        kind: partner.referral,
        consent: new.consent.as_ref().map(|consent| Consent {
            statement: consent.statement.clone(),
            given_at: crate::model::to_micros(consent.given_at),
        }),
        note: new.note.clone(),
        made_by: new.made_by.clone(),
        made_at: now,
        status: ReferralStatus::Made,
        outcome_note: None,
        outcome_reported_by: None,
        outcome_reported_at: None,
    };
    let payload = v1::event::Payload::CaseReferred(v1::CaseReferred {
        case_id: case.id.to_string(),
        reference: case.reference.clone(),
        service: case.service.clone(),
        referral_id: referral.id.to_string(),
        partner_id: referral.partner_id.to_string(),
        kind: referral.kind.as_str().to_owned(),
        consent_recorded: referral.consent.is_some(),
    });
    Ok(PlannedReferral {
        event: case_event(case.id, payload, None, now),
        referral,
    })
}

/// Applies `outcome` to `current` (locked by the caller): the referral as it
/// will be stored, and its `case.referral_outcome` event.
pub(crate) fn plan_outcome(
    current: &Referral,
    outcome: &ReferralOutcome,
    now: DateTime<Utc>,
) -> Result<PlannedReferral, ReferralError> {
    check_outcome(current.status, outcome.status)?;
    let now = crate::model::to_micros(now);
    let referral = Referral {
        status: outcome.status,
        outcome_note: Some(outcome.note.clone()),
        outcome_reported_by: Some(outcome.reported_by.clone()),
        outcome_reported_at: Some(now),
        ..current.clone()
    };
    let payload = v1::event::Payload::CaseReferralOutcome(v1::CaseReferralOutcome {
        case_id: referral.case_id.to_string(),
        referral_id: referral.id.to_string(),
        partner_id: referral.partner_id.to_string(),
        status: v1::ReferralStatus::from(referral.status) as i32,
    });
    Ok(PlannedReferral {
        event: case_event(referral.case_id, payload, None, now),
        referral,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_domain::Catalogue;

    fn directory() -> PartnerDirectory {
        let catalogue = Catalogue::embedded().unwrap_or_else(|error| panic!("catalogue: {error}"));
        PartnerDirectory::embedded(&catalogue).unwrap_or_else(|error| panic!("partners: {error}"))
    }

    fn referral(partner: &str, consent: bool) -> NewReferral {
        NewReferral {
            case_id: CaseId::new(),
            partner_id: PartnerId::parse(partner).unwrap_or_else(|error| panic!("{error}")),
            consent: consent.then(|| Consent {
                statement: "name and phone number".to_owned(),
                given_at: Utc::now(),
            }),
            note: String::new(),
            made_by: "agent-ada".to_owned(),
        }
    }

    #[test]
    fn a_referral_that_shares_details_needs_consent_and_a_signpost_does_not() {
        let partners = directory();
        assert!(check_referral(&partners, &referral("shelter", false)).is_ok());
        assert!(check_referral(&partners, &referral("shelter", true)).is_ok());
        assert!(check_referral(&partners, &referral("citizens-advice", true)).is_ok());
        let refused = check_referral(&partners, &referral("citizens-advice", false));
        assert!(
            matches!(refused, Err(ReferralError::ConsentRequired { ref partner_id, .. }) if partner_id.as_str() == "citizens-advice"),
            "{refused:?}"
        );
        assert!(matches!(
            check_referral(&partners, &referral("nowhere-at-all", true)),
            Err(ReferralError::UnknownPartner(_))
        ));
        assert!(matches!(
            check_referral(&PartnerDirectory::empty(), &referral("shelter", false)),
            Err(ReferralError::UnknownPartner(_))
        ));
    }

    #[test]
    fn an_outcome_is_reported_once_and_an_accepted_referral_may_still_end() {
        use ReferralStatus::*;
        for to in [Accepted, Declined, Completed, NoContact] {
            assert_eq!(check_outcome(Made, to), Ok(()));
        }
        assert_eq!(check_outcome(Accepted, Completed), Ok(()));
        assert_eq!(check_outcome(Accepted, NoContact), Ok(()));
        for (from, to) in [
            (Accepted, Accepted),
            (Accepted, Declined),
            (Declined, Completed),
            (Completed, NoContact),
            (NoContact, Accepted),
        ] {
            assert_eq!(
                check_outcome(from, to),
                Err(ReferralError::OutcomeAlreadyReported { current: from })
            );
        }
        assert_eq!(check_outcome(Made, Made), Err(ReferralError::NotAnOutcome(Made)));
    }

    #[test]
    fn referral_status_round_trips() {
        for status in ReferralStatus::ALL {
            assert_eq!(ReferralStatus::parse(status.as_str()), Ok(status));
        }
        assert!(ReferralStatus::parse("Made").is_err());
        assert!(
            ReferralError::OutcomeAlreadyReported {
                current: ReferralStatus::Accepted
            }
            .to_string()
            .contains("accepted")
        );
    }
}
