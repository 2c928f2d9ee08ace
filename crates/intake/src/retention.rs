//! Intake's part of the retention schedule: its copy of each contact keeps
//! only what identifies it once `intake-contacts` has passed
//! ([`IntakeStore::expire_contacts`]). It is how an erasure in the case
//! store reaches intake's copy.

use std::future::Future;
use std::sync::Arc;

use chrono::Utc;
use switchboard_domain::{RETENTION_INTERVAL, RetentionCategory, RetentionSchedule};

use crate::store::IntakeStore;

/// Applies the `intake-contacts` category of `schedule` now and then every
/// [`RETENTION_INTERVAL`] until `shutdown`; a failed run is logged and tried
/// again at the next interval.
pub async fn run_retention(
    store: Arc<dyn IntakeStore>,
    schedule: RetentionSchedule,
    shutdown: impl Future<Output = ()> + Send,
) {
    switchboard_runtime::schedule::every(RETENTION_INTERVAL, shutdown, || {
        let (store, now) = (store.clone(), Utc::now());
        let cutoff = schedule.cutoff(RetentionCategory::IntakeContacts, now);
        async move {
            match store.expire_contacts(cutoff, now).await {
                Ok(affected) => tracing::info!(
                    category = %RetentionCategory::IntakeContacts,
                    affected,
                    cutoff = %cutoff,
                    "retention schedule applied"
                ),
                Err(error) => tracing::warn!(
                    error.message = %error,
                    error.chain = %switchboard_runtime::status::cause_chain(&error),
                    "retention schedule not applied this time; trying again at the next interval"
                ),
            }
        }
    })
    .await;
}
