//! The routing store: one trait, [`RoutingStore`], and its two
//! implementations, [`PgRoutingStore`] (distributed mode, schema `routing`)
//! and [`SqliteRoutingStore`] (embedded mode, `routing.db` in the data dir).
//!
//! What it keeps, per partition:
//!
//! - the **journal**: every input the partition's router accepted, in order,
//!   with the time it was handled, from the latest *base* entry (the routing
//!   configuration the engine started from). Replaying it rebuilds the
//!   engine exactly, which is how a standby takes over. Sequence numbers are
//!   the primary key with the partition, so two routers that both think they
//!   own a partition cannot both write: the second write collides and that
//!   router learns it was fenced off.
//! - the **inbox**: ids of the events already applied, so a redelivered
//!   event is not applied twice.
//! - the **outbox** of the events the router publishes, and the explanation
//!   of each offer, written in the same transaction as the journal entry
//!   that caused them.
//!
//! And, shared by every partition: **agents**, the profile a supervisor gave
//! each staff subject, with the opaque number routing knows them by; and the
//! **routing configurations** supervisors made through the API, which every
//! process follows.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use switchboard_bus::{OutboxRecord, OutboxStore};
use uuid::Uuid;

use crate::error::RouterResult;

mod postgres;
mod sqlite;

pub use postgres::PgRoutingStore;
pub use sqlite::SqliteRoutingStore;

/// One journal entry as stored. `entry` is the router's own JSON; the store
/// does not look inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalRow {
    /// 1, 2, 3, … within the partition, without gaps.
    pub seq: u64,
    pub recorded_at: DateTime<Utc>,
    /// A base entry starts a replay: entries before the latest base are no
    /// longer needed.
    pub is_base: bool,
    pub entry: String,
}

/// What one accepted input leaves behind, written in one transaction.
#[derive(Clone, Debug, Default)]
pub struct Record {
    /// Appended to the journal; their `seq` must follow the partition's last.
    pub entries: Vec<JournalRow>,
    /// Event ids applied by these entries, for the inbox.
    pub inbox: Vec<Uuid>,
    /// Events to publish.
    pub outbox: Vec<OutboxRecord>,
    /// Why each offer went where it went: (contact id, explanation JSON). A
    /// later offer of the same contact replaces the earlier explanation.
    pub explanations: Vec<(Uuid, String)>,
}

/// An agent as stored: the staff subject (`sub` of their token), the number
/// routing knows them by, and the profile as JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAgent {
    pub agent_id: u64,
    pub subject: String,
    pub profile: String,
}

/// The routing service's store. Also the outbox the
/// [`switchboard_bus::OutboxRelay`] publishes from.
#[async_trait]
pub trait RoutingStore: OutboxStore {
    /// Writes `record` in one transaction. When one of its journal entries
    /// collides with an existing one (another router wrote that sequence
    /// number first), nothing is written and the error is
    /// [`crate::RouterError::Fenced`].
    async fn record(&self, partition: &str, record: &Record) -> RouterResult<()>;

    /// The partition's journal from its latest base entry, in sequence
    /// order; empty when the partition has never been written.
    async fn journal(&self, partition: &str) -> RouterResult<Vec<JournalRow>>;

    /// Deletes the partition's journal entries before `seq`, which must be a
    /// base entry's; returns how many went.
    async fn compact(&self, partition: &str, before_seq: u64) -> RouterResult<u64>;

    /// Which of `event_ids` the partition has applied already.
    async fn seen(&self, partition: &str, event_ids: &[Uuid]) -> RouterResult<HashSet<Uuid>>;

    /// Stores the profile of `subject`, numbering the agent on first sight;
    /// returns the stored agent.
    async fn put_agent(&self, subject: &str, profile: &str) -> RouterResult<StoredAgent>;

    async fn agent_by_subject(&self, subject: &str) -> RouterResult<Option<StoredAgent>>;

    async fn agent_by_id(&self, agent_id: u64) -> RouterResult<Option<StoredAgent>>;

    /// Every agent, by subject.
    async fn agents(&self) -> RouterResult<Vec<StoredAgent>>;

    /// The explanation of the contact's latest offer.
    async fn explanation(&self, contact_id: Uuid) -> RouterResult<Option<String>>;

    /// Stores a routing configuration (TOML) as the newest; returns its
    /// version, which grows with each one stored.
    async fn put_config(&self, toml: &str) -> RouterResult<u64>;

    /// The newest stored configuration and its version; `None` until one is
    /// stored.
    async fn latest_config(&self) -> RouterResult<Option<(u64, String)>>;

    /// Readiness: Ok when the database answers.
    async fn check(&self) -> RouterResult<()>;
}
