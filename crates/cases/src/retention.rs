//! The retention schedule applied to the case store
//! ([`switchboard_domain::RetentionSchedule`], `seeds/retention.toml`): a job
//! the cases service runs every day removes the personal data that is due.
//!
//! What each category does here (intake applies `intake-contacts` to its own
//! tables):
//! - `contact-content`: contacts older than the period whose case is no
//!   longer open lose their summary, form details, needs and identifying
//!   channel facts, as an erasure would; each is marked expired, once (an
//!   erasure marks the contacts it clears too).
//! - `case-notes`: cases no longer open and inactive for the period lose
//!   their notes; the reasons in their history and the notes and consent
//!   statements of their referrals read [`EXPIRED`]; text written to such a
//!   case later (a note, a partner's report) goes at the next run.
//! - `inactive-customers`: residents with no open case and no contact for the
//!   period are erased ([`crate::CasesStore::erase_customer`]), by
//!   [`ACTOR_RETENTION`], so the erasure is recorded like any other.
//! - `read-log`: reads older than the period are deleted.
//!
//! Every run of a category is recorded with how many records it changed, so
//! the council can show its schedule is applied. What is removed is personal
//! data; the statistics stay the same.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use switchboard_domain::{RETENTION_INTERVAL, RetentionCategory, RetentionSchedule};

use crate::erasure::ErasureRequest;
use crate::error::{CasesError, CasesResult};
use crate::store::CasesStore;

/// What replaces free text removed by the schedule.
pub const EXPIRED: &str = "expired";
/// Who erases residents the schedule says are due.
pub const ACTOR_RETENTION: &str = "retention-schedule";

/// One category applied once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRun {
    pub category: RetentionCategory,
    pub ran_at: DateTime<Utc>,
    /// Data from before this moment was due.
    pub cutoff: DateTime<Utc>,
    /// Records changed: contacts, cases, residents or reads.
    pub affected: u64,
}

/// Most residents one run erases per round; rounds repeat until none is due.
const ERASE_ROUND: usize = 500;

/// Applies the case store's categories of `schedule` as at `now`, in
/// [`CASE_STORE_CATEGORIES`] order, recording each run.
pub async fn apply_retention(
    store: &dyn CasesStore,
    schedule: &RetentionSchedule,
    now: DateTime<Utc>,
) -> CasesResult<Vec<RetentionRun>> {
    let now = crate::model::to_micros(now);
    let mut runs = Vec::with_capacity(CASE_STORE_CATEGORIES.len());
    for category in CASE_STORE_CATEGORIES {
        let cutoff = schedule.cutoff(category, now);
        let affected = match category {
            RetentionCategory::InactiveCustomers => {
                let reason = format!(
                    "retention schedule: no contact and no open case for {} days",
                    schedule.keep_days(category)
                );
                let mut erased = 0;
                loop {
                    let due = store.inactive_customers(cutoff, ERASE_ROUND).await?;
                    let before = erased;
                    for customer_id in &due {
                        let customer_id = *customer_id;
                        let request = ErasureRequest {
                            customer_id,
                            reason: reason.clone(),
                            actor: ACTOR_RETENTION.to_owned(),
                            only_if_inactive_since: Some(cutoff),
                        };
                        match store.erase_customer(&request).await {
                            Ok(Some(_)) => erased += 1,
                            Ok(None) => {}
                            // Merged, erased or back in touch meanwhile: kept.
                            Err(CasesError::ErasureRefused(_)) => {}
                            Err(error) => return Err(error),
                        }
                    }
                    // A round that erased nobody would find the same residents again.
                    if due.len() < ERASE_ROUND || erased == before {
                        break;
                    }
                }
                erased
            }
            category => store.expire(category, cutoff, now).await?,
        };
        let run = RetentionRun {
            category,
            ran_at: now,
            cutoff,
            affected,
        };
        store.record_retention_run(&run).await?;
        runs.push(run);
    }
    Ok(runs)
}

/// Applies `schedule` now and then every [`RETENTION_INTERVAL`] until
/// `shutdown`. A failed run is logged and tried again at the next interval;
/// nothing is lost by waiting, only kept a day longer.
pub async fn run_retention(
    store: Arc<dyn CasesStore>,
    schedule: RetentionSchedule,
    shutdown: impl Future<Output = ()> + Send,
) {
    switchboard_runtime::schedule::every(RETENTION_INTERVAL, shutdown, || {
        let (store, schedule) = (store.clone(), schedule.clone());
        async move { log_run(apply_retention(store.as_ref(), &schedule, Utc::now()).await) }
    })
    .await;
}

fn log_run(result: CasesResult<Vec<RetentionRun>>) {
    match result {
        Ok(runs) => {
            for run in runs {
                tracing::info!(
                    category = %run.category,
                    affected = run.affected,
                    cutoff = %run.cutoff,
                    "retention schedule applied"
                );
            }
        }
        Err(error) => tracing::warn!(
            error.message = %error,
            error.chain = %switchboard_runtime::status::cause_chain(&error),
            "retention schedule not applied this time; trying again at the next interval"
        ),
    }
}

/// The case store's categories, in the order a run applies them: the
/// residents to erase first, so their data is not expired piecemeal first.
pub const CASE_STORE_CATEGORIES: [RetentionCategory; 4] = [
    RetentionCategory::InactiveCustomers,
    RetentionCategory::ContactContent,
    RetentionCategory::CaseNotes,
    RetentionCategory::ReadLog,
];
