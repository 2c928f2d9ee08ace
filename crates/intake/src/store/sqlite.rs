//! The SQLite store (embedded mode): `intake.db` in the data directory.
//!
//! WAL so readers (the relay, readiness) never block the writer, and
//! `synchronous=FULL`: in WAL mode `NORMAL` may lose the last commits on power
//! loss, and an answered contact must survive that. Group commit pays the fsync
//! once per batch, so FULL costs little.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use switchboard_bus::{BoxError, OutboxRecord, OutboxStore};
use switchboard_domain::ContactId;
use uuid::Uuid;

use super::{
    BatchOutcome, ContactRow, IntakeStore, PendingContact, StoredContact, StoredKey, count, expired_needs,
    parse_reference,
};
use crate::error::{IntakeError, IntakeResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The file name of intake's database inside the data directory.
pub const SQLITE_FILE_NAME: &str = "intake.db";

/// Intake's tables in SQLite.
#[derive(Debug, Clone)]
pub struct SqliteIntakeStore {
    pool: SqlitePool,
}

impl SqliteIntakeStore {
    /// Opens (creating if needed) `<data_dir>/intake.db` and runs the migrations.
    pub async fn open(data_dir: &Path) -> IntakeResult<SqliteIntakeStore> {
        std::fs::create_dir_all(data_dir).map_err(|source| IntakeError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join(SQLITE_FILE_NAME))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // The relay deletes outbox rows while the writer commits: one waits
            // for the other rather than failing with SQLITE_BUSY.
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(SqliteIntakeStore { pool })
    }

    /// The pool, for callers that share it (e.g. a readiness probe).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

#[async_trait]
impl IntakeStore for SqliteIntakeStore {
    #[tracing::instrument(name = "intake.store.commit_batch", skip_all, fields(batch.size = batch.len()))]
    async fn commit_batch(&self, batch: &[PendingContact]) -> IntakeResult<Vec<BatchOutcome>> {
        let created_at = Utc::now();
        // IMMEDIATE takes the write lock up front: a deferred transaction that
        // read first could fail to upgrade (SQLITE_BUSY) without waiting.
        let mut transaction = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut taken_references = Vec::new();
        // Statements run row by row: SQLite is in-process, so there is no round
        // trip to save, and the prepared statements are cached per connection.
        for pending in batch {
            let contact = &pending.contact;
            if let Some(claim) = &pending.idempotency {
                let claimed = sqlx::query(
                    "INSERT INTO idempotency_keys (key, request_hash, contact_id, reference, created_at) \
                     VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                )
                .bind(&claim.key)
                .bind(claim.request_hash.as_slice())
                .bind(contact.id.as_uuid().to_string())
                .bind(contact.reference.as_str())
                .bind(created_at)
                .execute(&mut *transaction)
                .await?
                .rows_affected()
                    == 1;
                if !claimed {
                    let row = sqlx::query(
                        "SELECT request_hash, contact_id, reference FROM idempotency_keys WHERE key = ?",
                    )
                    .bind(&claim.key)
                    .fetch_one(&mut *transaction)
                    .await?;
                    let contact_id: String = row.try_get("contact_id")?;
                    let reference: String = row.try_get("reference")?;
                    outcomes.push(BatchOutcome::KeyTaken(StoredKey {
                        request_hash: row.try_get("request_hash")?,
                        contact_id: parse_contact_id(&contact_id)?,
                        reference: parse_reference(&reference)?,
                    }));
                    continue;
                }
            }

            let row = ContactRow::new(contact)?;
            let inserted = sqlx::query(
                "INSERT INTO contacts (id, reference, channel, service, received_at, contact) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (reference) DO NOTHING",
            )
            .bind(row.id.to_string())
            .bind(&row.reference)
            .bind(row.channel)
            .bind(&row.service)
            .bind(row.received_at)
            .bind(&row.contact_json)
            .execute(&mut *transaction)
            .await?
            .rows_affected()
                == 1;
            if !inserted {
                taken_references.push(contact.id);
                outcomes.push(BatchOutcome::Stored);
                continue;
            }

            sqlx::query(
                "INSERT INTO outbox (event_id, event_type, body, traceparent, created_at) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(pending.outbox.event_id.to_string())
            .bind(&pending.outbox.event_type)
            .bind(pending.outbox.body.as_slice())
            .bind(pending.outbox.traceparent.as_deref())
            .bind(created_at)
            .execute(&mut *transaction)
            .await?;
            outcomes.push(BatchOutcome::Stored);
        }

        if !taken_references.is_empty() {
            // Roll the whole batch back (see the PostgreSQL store): the writer gives
            // those contacts new references and tries again.
            transaction.rollback().await?;
            return Err(IntakeError::ReferenceTaken {
                contact_ids: taken_references,
            });
        }
        transaction.commit().await?;
        Ok(outcomes)
    }

    async fn ping(&self) -> IntakeResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn unsent_outbox_count(&self) -> IntakeResult<u64> {
        let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&self.pool)
            .await?;
        Ok(count(unsent))
    }

    async fn contact_count(&self) -> IntakeResult<u64> {
        let contacts: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts")
            .fetch_one(&self.pool)
            .await?;
        Ok(count(contacts))
    }

    async fn contact(&self, id: ContactId) -> IntakeResult<Option<StoredContact>> {
        let Some(row) = sqlx::query("SELECT reference, received_at, contact FROM contacts WHERE id = ?")
            .bind(id.as_uuid().to_string())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let reference: String = row.try_get("reference")?;
        let contact: String = row.try_get("contact")?;
        StoredContact::from_columns(id, &reference, row.try_get("received_at")?, &contact).map(Some)
    }

    async fn expire_contacts(&self, cutoff: DateTime<Utc>, now: DateTime<Utc>) -> IntakeResult<u64> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // Times are RFC 3339 text; julianday compares them as times.
        sqlx::query("DELETE FROM idempotency_keys WHERE julianday(created_at) < julianday(?1)")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        let expired = sqlx::query(
            "UPDATE contacts SET expired_at = ?2, contact = json_set(contact, \
                '$.customer', json('{}'), '$.summary', '', '$.details', json('{}'), '$.needs', json(?3), \
                '$.origin', json_remove(contact -> '$.origin', '$.caller_number', '$.call_id', '$.page_url', '$.desk')) \
             WHERE julianday(received_at) < julianday(?1) AND expired_at IS NULL",
        )
        .bind(cutoff)
        .bind(now)
        .bind(expired_needs())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(expired)
    }
}

#[async_trait]
impl OutboxStore for SqliteIntakeStore {
    async fn fetch_unsent(&self, limit: usize) -> Result<Vec<OutboxRecord>, BoxError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = sqlx::query("SELECT event_id, body, traceparent FROM outbox ORDER BY event_id LIMIT ?")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            let event_id: String = row.try_get("event_id")?;
            records.push(OutboxRecord {
                event_id: Uuid::parse_str(&event_id)?,
                body: row.try_get("body")?,
                traceparent: row.try_get("traceparent")?,
            });
        }
        Ok(records)
    }

    async fn delete_sent(&self, ids: &[Uuid]) -> Result<(), BoxError> {
        if ids.is_empty() {
            return Ok(());
        }
        // One transaction for the whole confirmed batch: one fsync, not one per row.
        let mut transaction = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for id in ids {
            sqlx::query("DELETE FROM outbox WHERE event_id = ?")
                .bind(id.to_string())
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }
}

fn parse_contact_id(stored: &str) -> IntakeResult<ContactId> {
    Uuid::parse_str(stored)
        .map(ContactId::from_uuid)
        .map_err(|_| IntakeError::StoredData("stored contact id does not parse".to_owned()))
}
