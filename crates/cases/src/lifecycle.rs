//! A case through its life: when it is due, when a new contact re-opens it
//! or counts as a repeat contact, which status changes staff may make, and
//! what a contact's wrap-up disposition does to its case.
//!
//! The rules are decided here, free of SQL, and both stores follow them:
//! - **Due date**: the service's `case_target_working_days` (the catalogue)
//!   counted in working days of the council's calendar from the opening
//!   contact.
//! - **Follow-up window** (default 28 days, configurable): a contact about the
//!   same service joins the resident's open case whenever it comes; failing
//!   an open case, it re-opens their case resolved within the window; and a
//!   contact that joins a case within the window of the case's previous
//!   contact is a repeat contact (failure demand).
//! - **Status changes**: a closed case stays closed (a later contact opens a
//!   new case); any other change is allowed, with a reason for the history;
//!   moving a resolved case back to an open status is a re-open.
//! - **Dispositions** (routing's wrap-up): `resolved`, `signposted` and
//!   `referred` resolve an open case with that outcome; `callback-booked`
//!   and `follow-up-needed` leave it waiting on the council; anything else is
//!   recorded on the contact only.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use switchboard_domain::{
    CaseId, Catalogue, ContactId, CustomerId, EventId, MatchThresholds, PartnerDirectory, WorkingCalendar,
};
use switchboard_proto::v1;

use crate::model::CaseStatus;
use crate::plan::{OutboxRow, case_event};

/// The follow-up window when none is configured: four weeks, the span most
/// councils use for counting avoidable repeat contact.
pub const DEFAULT_FOLLOW_UP_DAYS: u32 = 28;

/// Longest reason accepted for a status change.
pub const MAX_REASON_CHARS: usize = 1_000;
/// Longest note accepted.
pub const MAX_NOTE_CHARS: usize = 10_000;

/// The rules every store applies to cases.
#[derive(Clone)]
pub struct CaseRules {
    follow_up_window: Duration,
    /// Working days to resolve, by service id.
    targets: HashMap<String, u32>,
    calendar: WorkingCalendar,
    thresholds: MatchThresholds,
    /// The partners residents may be signposted or referred to
    /// ([`crate::referrals`]).
    partners: PartnerDirectory,
}

impl fmt::Debug for CaseRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaseRules")
            .field("follow_up_window", &self.follow_up_window)
            .field("services", &self.targets.len())
            .field("partners", &self.partners.partners().len())
            .finish_non_exhaustive()
    }
}

impl CaseRules {
    /// Rules with an empty partner directory (nothing can be referred) until
    /// [`CaseRules::with_partners`] gives them one.
    pub fn new(catalogue: &Catalogue, calendar: WorkingCalendar, follow_up_days: u32) -> Self {
        CaseRules {
            follow_up_window: Duration::days(i64::from(follow_up_days)),
            targets: catalogue
                .services()
                .iter()
                .map(|service| (service.id.as_str().to_owned(), service.case_target_working_days))
                .collect(),
            calendar,
            thresholds: MatchThresholds::default(),
            partners: PartnerDirectory::empty(),
        }
    }

    /// The same rules with `partners` as the directory referrals are checked
    /// against.
    pub fn with_partners(mut self, partners: PartnerDirectory) -> Self {
        self.partners = partners;
        self
    }

    /// Confidence at which a contact joins a customer without asking, and
    /// at which a possible match is suggested to agents.
    pub fn match_thresholds(&self) -> MatchThresholds {
        self.thresholds
    }

    /// The shipped catalogue, calendar and partner directory with the
    /// default window: what stores use unless the binary gives them the
    /// council's own.
    pub fn embedded() -> Self {
        // The shipped seeds are checked by their own tests; failing here
        // would mean the binary was built from broken seeds.
        #[allow(clippy::expect_used)]
        let catalogue = Catalogue::embedded().expect("the shipped catalogue is valid");
        #[allow(clippy::expect_used)]
        let calendar = WorkingCalendar::embedded().expect("the shipped calendar is valid");
        #[allow(clippy::expect_used)]
        let partners =
            PartnerDirectory::embedded(&catalogue).expect("the shipped partner directory is valid");
        CaseRules::new(&catalogue, calendar, DEFAULT_FOLLOW_UP_DAYS).with_partners(partners)
    }

    pub fn follow_up_window(&self) -> Duration {
        self.follow_up_window
    }

    pub fn partners(&self) -> &PartnerDirectory {
        &self.partners
    }

    /// When a case for `service` opened at `opened_at` is due; `None` for a
    /// service the catalogue does not know (contacts are checked against the
    /// catalogue at intake, so only a catalogue changed since can cause it).
    pub fn due_at(&self, service: &str, opened_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let days = *self.targets.get(service)?;
        Some(crate::model::to_micros(self.calendar.due_at(opened_at, days)))
    }

    /// Whether `at` falls within the follow-up window after `earlier`.
    pub fn within_follow_up(&self, earlier: DateTime<Utc>, at: DateTime<Utc>) -> bool {
        at - earlier <= self.follow_up_window
    }
}

/// Why a status change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("the case is closed; a new contact opens a new case")]
    Closed,
    #[error("the case is already {}", .0.as_str())]
    Unchanged(CaseStatus),
}

/// Checks a status change a member of staff asks for.
pub fn check_transition(from: CaseStatus, to: CaseStatus) -> Result<(), TransitionError> {
    if from == CaseStatus::Closed {
        return Err(TransitionError::Closed);
    }
    if from == to {
        return Err(TransitionError::Unchanged(from));
    }
    Ok(())
}

/// Whether moving `from` → `to` re-opens a resolved case.
pub fn is_reopen(from: CaseStatus, to: CaseStatus) -> bool {
    from == CaseStatus::Resolved && to.is_open()
}

/// A status change a member of staff asks for.
#[derive(Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub case_id: CaseId,
    pub to: CaseStatus,
    /// Free text from staff; may name the resident, so never logged.
    pub reason: String,
    /// The staff member's subject.
    pub actor: String,
}

impl fmt::Debug for StatusChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusChange")
            .field("case_id", &self.case_id)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

/// One entry of a case's status history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRecord {
    pub from: CaseStatus,
    pub to: CaseStatus,
    pub reason: String,
    pub actor: String,
    pub at: DateTime<Utc>,
}

/// Who changed a status when it was not a member of staff.
pub const ACTOR_ROUTING: &str = "routing";
pub const ACTOR_CONTACT: &str = "contact";

/// A note on a case.
#[derive(Clone, PartialEq, Eq)]
pub struct CaseNote {
    pub id: uuid::Uuid,
    pub case_id: CaseId,
    pub author: String,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for CaseNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaseNote")
            .field("id", &self.id)
            .field("case_id", &self.case_id)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A `contact.completed` event as the case store applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingOutcome {
    pub event_id: EventId,
    pub traceparent: Option<String>,
    pub contact_id: ContactId,
    pub outcome: ContactOutcome,
}

/// How the agent wrapped a contact up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactOutcome {
    pub disposition: String,
    /// A partner organisation's id from the routing configuration: not
    /// personal data.
    pub partner: Option<String>,
    pub completed_at: DateTime<Utc>,
}

/// What a disposition does to the contact's case, if it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispositionEffect {
    Resolve,
    WaitOnCouncil,
    None,
}

pub fn disposition_effect(disposition: &str) -> DispositionEffect {
    match disposition {
        "resolved" | "signposted" | "referred" => DispositionEffect::Resolve,
        "callback-booked" | "follow-up-needed" => DispositionEffect::WaitOnCouncil,
        _ => DispositionEffect::None,
    }
}

/// The status a disposition moves an open case to, if any.
pub fn status_after(current: CaseStatus, disposition: &str) -> Option<CaseStatus> {
    if !current.is_open() {
        return None;
    }
    let next = match disposition_effect(disposition) {
        DispositionEffect::Resolve => CaseStatus::Resolved,
        DispositionEffect::WaitOnCouncil => CaseStatus::WaitingOnCouncil,
        DispositionEffect::None => return None,
    };
    (next != current).then_some(next)
}

/// A case as it stands, read before changing its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CurrentCase {
    pub(crate) id: CaseId,
    pub(crate) reference: String,
    pub(crate) customer_id: CustomerId,
    pub(crate) service: String,
    pub(crate) status: CaseStatus,
    pub(crate) due_at: Option<DateTime<Utc>>,
    pub(crate) resolved_at: Option<DateTime<Utc>>,
    pub(crate) outcome: Option<String>,
    pub(crate) reopened_count: u32,
    pub(crate) contact_count: u32,
}

/// What a status change writes: the case's new columns, its history entry
/// and its event.
#[derive(Debug)]
pub(crate) struct StatusUpdate {
    pub(crate) status: CaseStatus,
    pub(crate) resolved_at: Option<DateTime<Utc>>,
    pub(crate) outcome: Option<String>,
    pub(crate) reopened_count: u32,
    pub(crate) record: StatusRecord,
    pub(crate) event: OutboxRow,
}

/// Plans moving `current` to `to`. Callers check the change is allowed
/// first ([`check_transition`] for staff, [`status_after`] for routing).
/// `outcome` names how a resolution came about ("resolved" when not given).
pub(crate) fn plan_status_change(
    current: &CurrentCase,
    to: CaseStatus,
    reason: String,
    actor: String,
    outcome: Option<&str>,
    now: DateTime<Utc>,
) -> StatusUpdate {
    let now = crate::model::to_micros(now);
    let reopened = is_reopen(current.status, to);
    let reopened_count = current.reopened_count + u32::from(reopened);
    let (resolved_at, outcome) = match to {
        CaseStatus::Resolved => (Some(now), Some(outcome.unwrap_or("resolved").to_owned())),
        // Closing keeps how a resolved case was resolved.
        CaseStatus::Closed => (current.resolved_at, current.outcome.clone()),
        _ => (None, None),
    };
    let payload = if to == CaseStatus::Resolved {
        v1::event::Payload::CaseResolved(v1::CaseResolved {
            case_id: current.id.to_string(),
            service: current.service.clone(),
            contact_count: current.contact_count,
            reference: current.reference.clone(),
            outcome: outcome.clone().unwrap_or_default(),
            reopened_count,
            overdue: current.due_at.is_some_and(|due_at| due_at < now),
        })
    } else {
        v1::event::Payload::CaseUpdated(v1::CaseUpdated {
            case_id: current.id.to_string(),
            reference: current.reference.clone(),
            service: current.service.clone(),
            customer_id: current.customer_id.to_string(),
            contact_id: String::new(),
            channel: v1::Channel::Unspecified as i32,
            contact_count: current.contact_count,
            status: v1::CaseStatus::from(to) as i32,
            reopened,
            repeat_contact: false,
            // A status change: no contact to route.
            needs: None,
        })
    };
    StatusUpdate {
        status: to,
        resolved_at,
        outcome,
        reopened_count,
        record: StatusRecord {
            from: current.status,
            to,
            reason,
            actor,
            at: now,
        },
        event: case_event(current.id, payload, None, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_case_stays_closed_and_no_change_is_refused() {
        for to in CaseStatus::ALL {
            assert_eq!(
                check_transition(CaseStatus::Closed, to),
                Err(TransitionError::Closed)
            );
        }
        assert_eq!(
            check_transition(CaseStatus::Open, CaseStatus::Open),
            Err(TransitionError::Unchanged(CaseStatus::Open))
        );
        assert_eq!(
            check_transition(CaseStatus::Resolved, CaseStatus::WaitingOnResident),
            Ok(())
        );
        assert!(is_reopen(CaseStatus::Resolved, CaseStatus::WaitingOnResident));
        assert!(!is_reopen(CaseStatus::Resolved, CaseStatus::Closed));
        assert!(!is_reopen(CaseStatus::Open, CaseStatus::WaitingOnCouncil));
    }

    #[test]
    fn dispositions_move_only_open_cases() {
        assert_eq!(
            status_after(CaseStatus::Open, "signposted"),
            Some(CaseStatus::Resolved)
        );
        assert_eq!(
            status_after(CaseStatus::WaitingOnResident, "callback-booked"),
            Some(CaseStatus::WaitingOnCouncil)
        );
        assert_eq!(
            status_after(CaseStatus::WaitingOnCouncil, "follow-up-needed"),
            None
        );
        assert_eq!(status_after(CaseStatus::Resolved, "resolved"), None);
        assert_eq!(status_after(CaseStatus::Closed, "resolved"), None);
        assert_eq!(status_after(CaseStatus::Open, "abandoned-by-resident"), None);
    }

    #[test]
    fn due_dates_count_working_days_of_the_service_target() {
        let rules = CaseRules::embedded();
        // Friday 18 December 2026, evening; council tax's target is 10
        // working days; Christmas Day and the Boxing Day substitute are not
        // working days.
        let opened = DateTime::parse_from_rfc3339("2026-12-18T18:00:00Z")
            .map(|at| at.with_timezone(&Utc))
            .unwrap_or_default();
        let due = rules.due_at("council-tax", opened).unwrap_or_default();
        assert_eq!(due.date_naive().to_string(), "2027-01-06");
        assert_eq!(rules.due_at("no-such-service", opened), None);
    }

    #[test]
    fn the_follow_up_window_is_inclusive() {
        let rules = CaseRules::embedded();
        let earlier = Utc::now();
        assert!(rules.within_follow_up(earlier, earlier + Duration::days(28)));
        assert!(!rules.within_follow_up(earlier, earlier + Duration::days(28) + Duration::seconds(1)));
    }
}
