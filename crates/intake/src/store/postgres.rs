//! The PostgreSQL store (distributed mode): schema `intake`, batch inserts with
//! `unnest`, so a batch of hundreds of contacts costs a handful of statements
//! and one commit.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};
use switchboard_bus::{BoxError, OutboxRecord, OutboxStore};
use switchboard_domain::ContactId;
use uuid::Uuid;

use super::{
    BatchOutcome, ContactRow, IntakeStore, PendingContact, StoredContact, StoredKey, count, expired_needs,
    parse_reference,
};
use crate::error::{IntakeError, IntakeResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Intake's schema. Every connection of the pool has `search_path` set to it, so
/// the tables (and `_sqlx_migrations`) are intake's own.
const SCHEMA: &str = "intake";

/// Intake's tables in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgIntakeStore {
    pool: PgPool,
}

impl PgIntakeStore {
    /// Connects, creates the `intake` schema if needed and runs the migrations.
    pub async fn connect(url: &str) -> IntakeResult<PgIntakeStore> {
        let options = PgConnectOptions::from_str(url)?
            .options([("search_path", SCHEMA)])
            .application_name("switchboard-intake");
        // Two writers, the relay and readiness checks; more connections would only
        // queue on the same locks.
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        create_schema(&pool).await?;
        MIGRATOR.run(&pool).await?;
        Ok(PgIntakeStore { pool })
    }

    /// The pool, for callers that share it (e.g. a readiness probe).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

async fn create_schema(pool: &PgPool) -> IntakeResult<()> {
    match sqlx::query("CREATE SCHEMA IF NOT EXISTS intake")
        .execute(pool)
        .await
    {
        Ok(_) => Ok(()),
        // Two processes starting together can both miss the schema and race to
        // create it; the loser sees a unique violation, and the schema exists.
        Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("23505") => Ok(()),
        Err(error) => Err(error.into()),
    }
}

#[async_trait]
impl IntakeStore for PgIntakeStore {
    #[tracing::instrument(name = "intake.store.commit_batch", skip_all, fields(batch.size = batch.len()))]
    async fn commit_batch(&self, batch: &[PendingContact]) -> IntakeResult<Vec<BatchOutcome>> {
        let mut outcomes = vec![BatchOutcome::Stored; batch.len()];
        let mut transaction = self.pool.begin().await?;

        // 1. Claim the idempotency keys first, so a submission whose key is taken
        // never writes a contact. Claims go in key order: two writers claiming
        // overlapping keys then lock them in the same order and cannot deadlock.
        // ON CONFLICT DO NOTHING waits for a concurrent claimer to finish, so
        // what it skips is committed (or ours, earlier in this batch) and readable.
        let mut claims: Vec<(usize, &super::IdempotencyClaim)> = batch
            .iter()
            .enumerate()
            .filter_map(|(index, pending)| pending.idempotency.as_ref().map(|claim| (index, claim)))
            .collect();
        claims.sort_by(|left, right| left.1.key.cmp(&right.1.key));
        if !claims.is_empty() {
            let keys: Vec<&str> = claims.iter().map(|(_, claim)| claim.key.as_str()).collect();
            let hashes: Vec<Vec<u8>> = claims
                .iter()
                .map(|(_, claim)| claim.request_hash.to_vec())
                .collect();
            let contact_ids: Vec<Uuid> = claims
                .iter()
                .map(|(index, _)| batch[*index].contact.id.as_uuid())
                .collect();
            let references: Vec<&str> = claims
                .iter()
                .map(|(index, _)| batch[*index].contact.reference.as_str())
                .collect();
            let claimed: HashSet<(String, Uuid)> = sqlx::query(
                "INSERT INTO idempotency_keys (key, request_hash, contact_id, reference) \
                 SELECT * FROM unnest($1::text[], $2::bytea[], $3::uuid[], $4::text[]) \
                 ON CONFLICT (key) DO NOTHING \
                 RETURNING key, contact_id",
            )
            .bind(&keys)
            .bind(&hashes)
            .bind(&contact_ids)
            .bind(&references)
            .fetch_all(&mut *transaction)
            .await?
            .into_iter()
            .map(|row| Ok((row.try_get::<String, _>(0)?, row.try_get::<Uuid, _>(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;

            let lost: Vec<(usize, &str)> = claims
                .iter()
                .filter(|(index, claim)| {
                    !claimed.contains(&(claim.key.clone(), batch[*index].contact.id.as_uuid()))
                })
                .map(|(index, claim)| (*index, claim.key.as_str()))
                .collect();
            if !lost.is_empty() {
                let lost_keys: Vec<&str> = lost.iter().map(|(_, key)| *key).collect();
                let mut holders = HashMap::new();
                for row in sqlx::query(
                    "SELECT key, request_hash, contact_id, reference FROM idempotency_keys WHERE key = ANY($1)",
                )
                .bind(&lost_keys)
                .fetch_all(&mut *transaction)
                .await?
                {
                    let key: String = row.try_get("key")?;
                    let reference: String = row.try_get("reference")?;
                    holders.insert(
                        key,
                        StoredKey {
                            request_hash: row.try_get("request_hash")?,
                            contact_id: ContactId::from_uuid(row.try_get("contact_id")?),
                            reference: parse_reference(&reference)?,
                        },
                    );
                }
                for (index, key) in lost {
                    let holder = holders.get(key).cloned().ok_or_else(|| {
                        IntakeError::StoredData("idempotency key skipped on insert but not found".to_owned())
                    })?;
                    outcomes[index] = BatchOutcome::KeyTaken(holder);
                }
            }
        }

        // 2. The contacts of the submissions that keep their claim (or have none).
        let storing: Vec<&PendingContact> = batch
            .iter()
            .zip(&outcomes)
            .filter(|(_, outcome)| **outcome == BatchOutcome::Stored)
            .map(|(pending, _)| pending)
            .collect();
        if storing.is_empty() {
            transaction.commit().await?;
            return Ok(outcomes);
        }
        let rows = storing
            .iter()
            .map(|pending| ContactRow::new(&pending.contact))
            .collect::<IntakeResult<Vec<_>>>()?;
        let inserted: HashSet<Uuid> = sqlx::query_scalar(
            "INSERT INTO contacts (id, reference, channel, service, received_at, contact) \
             SELECT id, reference, channel, service, received_at, contact::jsonb \
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[]) \
               AS batch (id, reference, channel, service, received_at, contact) \
             ON CONFLICT (reference) DO NOTHING \
             RETURNING id",
        )
        .bind(rows.iter().map(|row| row.id).collect::<Vec<_>>())
        .bind(rows.iter().map(|row| row.reference.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|row| row.channel).collect::<Vec<_>>())
        .bind(rows.iter().map(|row| row.service.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|row| row.received_at).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|row| row.contact_json.as_str())
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *transaction)
        .await?
        .into_iter()
        .collect();
        if inserted.len() != rows.len() {
            // A reference collision (50 random bits: rare, but possible). Roll the
            // whole batch back rather than leave claimed keys pointing at nothing;
            // the writer gives those contacts new references and tries again.
            transaction.rollback().await?;
            let contact_ids = rows
                .iter()
                .filter(|row| !inserted.contains(&row.id))
                .map(|row| ContactId::from_uuid(row.id))
                .collect();
            return Err(IntakeError::ReferenceTaken { contact_ids });
        }

        // 3. Their outbox rows, committed with them: accepted means announced.
        sqlx::query(
            "INSERT INTO outbox (event_id, event_type, body, traceparent) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::text[])",
        )
        .bind(
            storing
                .iter()
                .map(|pending| pending.outbox.event_id)
                .collect::<Vec<_>>(),
        )
        .bind(
            storing
                .iter()
                .map(|pending| pending.outbox.event_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            storing
                .iter()
                .map(|pending| pending.outbox.body.as_slice())
                .collect::<Vec<_>>(),
        )
        .bind(
            storing
                .iter()
                .map(|pending| pending.outbox.traceparent.as_deref())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *transaction)
        .await?;

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
        let Some(row) = sqlx::query(
            "SELECT reference, received_at, contact::text AS contact FROM contacts WHERE id = $1",
        )
        .bind(id.as_uuid())
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
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        let expired = sqlx::query(
            "UPDATE contacts SET expired_at = $2, contact = contact || jsonb_build_object( \
                'customer', '{}'::jsonb, 'summary', '', 'details', '{}'::jsonb, 'needs', $3::jsonb, \
                'origin', (contact -> 'origin') - 'caller_number' - 'call_id' - 'page_url' - 'desk') \
             WHERE received_at < $1 AND expired_at IS NULL",
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
impl OutboxStore for PgIntakeStore {
    async fn fetch_unsent(&self, limit: usize) -> Result<Vec<OutboxRecord>, BoxError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = sqlx::query("SELECT event_id, body, traceparent FROM outbox ORDER BY event_id LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            records.push(OutboxRecord {
                event_id: row.try_get("event_id")?,
                body: row.try_get("body")?,
                traceparent: row.try_get("traceparent")?,
            });
        }
        Ok(records)
    }

    async fn delete_sent(&self, ids: &[Uuid]) -> Result<(), BoxError> {
        sqlx::query("DELETE FROM outbox WHERE event_id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
