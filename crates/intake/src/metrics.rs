//! Intake's Prometheus metrics, for the binary to register on its registry.
//!
//! Labels are fixed, low-cardinality names (channel, reason): never anything a
//! resident typed.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use switchboard_domain::Channel;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    channel: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Counters and the batch-size histogram. Clones share the same series, so
/// the service, the writer and the routers each hold one.
#[derive(Debug, Clone)]
pub struct IntakeMetrics {
    accepted: Family<ChannelLabels, Counter>,
    replayed: Counter,
    rejected: Family<ReasonLabels, Counter>,
    batch_size: Histogram,
}

impl Default for IntakeMetrics {
    fn default() -> Self {
        IntakeMetrics {
            accepted: Family::default(),
            replayed: Counter::default(),
            rejected: Family::default(),
            // 1, 2, 4 … 512: group commit batches up to 500.
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
        }
    }
}

impl IntakeMetrics {
    pub fn new() -> IntakeMetrics {
        IntakeMetrics::default()
    }

    /// Registers every series under `intake_…`.
    pub fn register(&self, registry: &mut Registry) {
        let intake = registry.sub_registry_with_prefix("intake");
        intake.register(
            "contacts_accepted",
            "Contacts stored, by channel",
            self.accepted.clone(),
        );
        intake.register(
            "contacts_replayed",
            "Submissions answered from an earlier one with the same idempotency key",
            self.replayed.clone(),
        );
        intake.register(
            "contacts_rejected",
            "Submissions refused, by reason (invalid, malformed, too_large, idempotency_key_reused, rate_limited, unavailable, internal)",
            self.rejected.clone(),
        );
        intake.register(
            "commit_batch_size",
            "Contacts per group-commit transaction",
            self.batch_size.clone(),
        );
    }

    pub(crate) fn accepted(&self, channel: Channel) {
        self.accepted
            .get_or_create(&ChannelLabels {
                channel: channel.as_str(),
            })
            .inc();
    }

    pub(crate) fn replayed(&self) {
        self.replayed.inc();
    }

    /// `reason` is one of the fixed names above, e.g. from `IntakeError::reason`.
    pub(crate) fn rejected(&self, reason: &'static str) {
        self.rejected.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub(crate) fn observe_batch(&self, size: usize) {
        self.batch_size.observe(size as f64);
    }
}
