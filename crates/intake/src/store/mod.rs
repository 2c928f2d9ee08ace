//! Where accepted contacts live: the `IntakeStore` trait and its PostgreSQL and
//! SQLite implementations, which share one contract test suite
//! (`tests/store_contract.rs`).
//!
//! The store's unit of work is a batch: the group-commit writer hands it every
//! submission it collected, and the store writes all their contact,
//! idempotency-key and outbox rows in one transaction, or none of them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use switchboard_bus::OutboxStore;
use switchboard_domain::contact::ValidContact;
use switchboard_domain::{ContactId, ContactReference, NewContact};
use uuid::Uuid;

use crate::error::{IntakeError, IntakeResult};

mod postgres;
mod sqlite;

pub use postgres::PgIntakeStore;
pub use sqlite::SqliteIntakeStore;

/// SHA-256 of the encoded request with its idempotency key cleared.
pub type RequestHash = [u8; 32];

/// A submission's claim on an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    pub key: String,
    pub request_hash: RequestHash,
}

/// The outbox row that announces a contact (an encoded `switchboard.v1.Event`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub event_id: Uuid,
    pub event_type: String,
    pub body: Vec<u8>,
    pub traceparent: Option<String>,
}

/// One submission ready to be stored.
#[derive(Debug, Clone)]
pub struct PendingContact {
    pub contact: NewContact,
    pub idempotency: Option<IdempotencyClaim>,
    pub outbox: OutboxEntry,
}

/// What an idempotency key already points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub request_hash: Vec<u8>,
    pub contact_id: ContactId,
    pub reference: ContactReference,
}

/// What became of one submission of a committed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Its contact, key and outbox rows are committed.
    Stored,
    /// Its key was already taken (earlier, by another process, or by an earlier
    /// submission of the same batch): nothing of it was stored, and the caller
    /// decides from the hash whether this is a replay or a reused key.
    KeyTaken(StoredKey),
}

/// A contact as stored, read back (tests, support tooling).
#[derive(Debug, Clone)]
pub struct StoredContact {
    pub id: ContactId,
    pub reference: ContactReference,
    pub received_at: DateTime<Utc>,
    pub contact: ValidContact,
}

impl StoredContact {
    /// From a contact row's columns as both stores read them.
    fn from_columns(
        id: ContactId,
        reference: &str,
        received_at: DateTime<Utc>,
        contact_json: &str,
    ) -> IntakeResult<StoredContact> {
        Ok(StoredContact {
            id,
            reference: parse_reference(reference)?,
            received_at,
            contact: parse_contact(contact_json)?,
        })
    }
}

/// Intake's tables. Both implementations are also the relay's [`OutboxStore`].
#[async_trait]
pub trait IntakeStore: OutboxStore + Send + Sync + 'static {
    /// Stores a batch in one transaction and answers one outcome per submission,
    /// in order. Submissions whose key is taken store nothing. If a contact's
    /// reference is already taken the whole batch is rolled back and
    /// [`IntakeError::ReferenceTaken`] names the contacts to give new references.
    async fn commit_batch(&self, batch: &[PendingContact]) -> IntakeResult<Vec<BatchOutcome>>;

    /// Readiness: the database answers.
    async fn ping(&self) -> IntakeResult<()>;

    /// Outbox rows not yet confirmed by the bus (tests, metrics).
    async fn unsent_outbox_count(&self) -> IntakeResult<u64>;

    /// Stored contacts (tests, metrics).
    async fn contact_count(&self) -> IntakeResult<u64>;

    /// One stored contact, or `None`.
    async fn contact(&self, id: ContactId) -> IntakeResult<Option<StoredContact>>;

    /// The retention schedule's `intake-contacts`: contacts received before
    /// `cutoff` lose what identifies the resident (details, summary, form
    /// fields, needs, the caller's number, call id, page address and desk),
    /// once, and idempotency keys made before it are deleted. Answers how
    /// many contacts it changed.
    async fn expire_contacts(&self, cutoff: DateTime<Utc>, now: DateTime<Utc>) -> IntakeResult<u64>;
}

/// What an expired contact's needs become, in their stored form.
pub(crate) fn expired_needs() -> String {
    // Serialising plain booleans and an absent language cannot fail.
    serde_json::to_string(&switchboard_domain::Needs::default()).unwrap_or_else(|_| "{}".to_owned())
}

/// The columns of a contact row, computed once for both stores.
struct ContactRow {
    id: Uuid,
    reference: String,
    channel: &'static str,
    service: String,
    received_at: DateTime<Utc>,
    contact_json: String,
}

impl ContactRow {
    fn new(contact: &NewContact) -> IntakeResult<ContactRow> {
        let contact_json = serde_json::to_string(&contact.contact)
            .map_err(|error| IntakeError::StoredData(format!("cannot encode contact: {error}")))?;
        Ok(ContactRow {
            id: contact.id.as_uuid(),
            reference: contact.reference.as_str().to_owned(),
            channel: contact.contact.channel.as_str(),
            service: contact.contact.service.as_str().to_owned(),
            received_at: contact.received_at,
            contact_json,
        })
    }
}

fn parse_reference(stored: &str) -> IntakeResult<ContactReference> {
    ContactReference::parse(stored)
        .map_err(|_| IntakeError::StoredData("stored contact reference does not parse".to_owned()))
}

fn parse_contact(stored: &str) -> IntakeResult<ValidContact> {
    serde_json::from_str(stored)
        .map_err(|error| IntakeError::StoredData(format!("stored contact does not decode: {error}")))
}

/// A u64 from a SQL `count(*)`, which is never negative.
fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}
