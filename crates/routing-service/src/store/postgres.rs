//! The routing store on PostgreSQL (distributed mode).
//!
//! Tables live in the `routing` schema; the pool sets `search_path` to it, so
//! the SQL names tables unqualified and `_sqlx_migrations` is this service's
//! own. A record is written with a fixed number of set-based statements
//! (arrays bound as parameters and `unnest`ed), whatever its size.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};
use switchboard_bus::{BoxError, OutboxRecord, OutboxStore};
use uuid::Uuid;

use super::{JournalRow, Record, RoutingStore, StoredAgent};
use crate::error::{RouterError, RouterResult};

/// The schema that holds this service's tables.
pub const SCHEMA: &str = "routing";

/// The routing store on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgRoutingStore {
    pool: PgPool,
}

impl PgRoutingStore {
    /// Connects to `database_url` with `search_path` set to [`SCHEMA`] and
    /// brings the schema up to date (creating it first if needed).
    pub async fn connect(database_url: &str) -> RouterResult<Self> {
        let options = PgConnectOptions::from_str(database_url)
            .map_err(RouterError::database("parse url"))?
            .options([("search_path", SCHEMA)]);
        let pool = PgPoolOptions::new()
            // One writer per owned partition plus gRPC reads; PostgreSQL is
            // shared with the other services.
            .max_connections(10)
            // Fail fast when the database is away, so the router backs off and
            // the gRPC caller gets UNAVAILABLE instead of hanging.
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(RouterError::database("connect"))?;
        let store = PgRoutingStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations. Safe to run from several processes at once:
    /// the migrator holds an advisory lock while it works, and creates the
    /// schema under that lock.
    pub async fn migrate(&self) -> RouterResult<()> {
        let mut migrator = sqlx::migrate!("migrations/postgres");
        migrator.create_schema(SCHEMA);
        migrator.run(&self.pool).await.map_err(RouterError::Migrate)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Appends the record's journal entries; a collision on the primary key
    /// means another router wrote first and this one is fenced off.
    async fn insert_journal(
        tx: &mut Transaction<'static, Postgres>,
        partition: &str,
        entries: &[JournalRow],
    ) -> RouterResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let seqs = entries
            .iter()
            .map(|row| seq_value(row.seq))
            .collect::<RouterResult<Vec<i64>>>()?;
        let recorded_at: Vec<DateTime<Utc>> = entries.iter().map(|row| row.recorded_at).collect();
        let is_base: Vec<bool> = entries.iter().map(|row| row.is_base).collect();
        let bodies: Vec<&str> = entries.iter().map(|row| row.entry.as_str()).collect();
        let inserted = sqlx::query(
            "INSERT INTO journal (partition, seq, recorded_at, is_base, entry) \
             SELECT $1, u.seq, u.recorded_at, u.is_base, u.entry::jsonb \
             FROM unnest($2::bigint[], $3::timestamptz[], $4::boolean[], $5::text[]) \
                AS u(seq, recorded_at, is_base, entry)",
        )
        .bind(partition)
        .bind(&seqs)
        .bind(&recorded_at)
        .bind(&is_base)
        .bind(&bodies)
        .execute(&mut **tx)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(error) if switchboard_runtime::database::is_unique_violation(&error) => {
                Err(RouterError::Fenced {
                    partition: partition.to_owned(),
                })
            }
            Err(error) => Err(RouterError::database("insert journal")(error)),
        }
    }

    /// Everything but the journal entries: inbox, outbox and explanations.
    async fn insert_effects(
        tx: &mut Transaction<'static, Postgres>,
        partition: &str,
        record: &Record,
        now: DateTime<Utc>,
    ) -> RouterResult<()> {
        if !record.inbox.is_empty() {
            sqlx::query(
                "INSERT INTO inbox (partition, event_id, processed_at) SELECT $1, unnest($2::uuid[]), $3",
            )
            .bind(partition)
            .bind(&record.inbox)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(RouterError::database("insert inbox"))?;
        }

        if !record.outbox.is_empty() {
            let event_types = event_types(&record.outbox)?;
            let event_ids: Vec<Uuid> = record.outbox.iter().map(|row| row.event_id).collect();
            let bodies: Vec<&[u8]> = record.outbox.iter().map(|row| row.body.as_slice()).collect();
            let traceparents: Vec<Option<&str>> = record
                .outbox
                .iter()
                .map(|row| row.traceparent.as_deref())
                .collect();
            // Ordered by position in the record, so `position` numbers the
            // rows in the order the router made them.
            sqlx::query(
                "INSERT INTO outbox (event_id, event_type, body, traceparent, created_at) \
                 SELECT u.event_id, u.event_type, u.body, u.traceparent, $5 \
                 FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::text[]) WITH ORDINALITY \
                    AS u(event_id, event_type, body, traceparent, ordinality) \
                 ORDER BY u.ordinality",
            )
            .bind(&event_ids)
            .bind(&event_types)
            .bind(&bodies)
            .bind(&traceparents)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(RouterError::database("insert outbox"))?;
        }

        let explanations = latest_explanations(&record.explanations);
        if !explanations.is_empty() {
            let contact_ids: Vec<Uuid> = explanations.iter().map(|(contact_id, _)| *contact_id).collect();
            let texts: Vec<&str> = explanations.iter().map(|(_, text)| *text).collect();
            sqlx::query(
                "INSERT INTO offer_explanations (contact_id, explanation, recorded_at) \
                 SELECT u.contact_id, u.explanation, $3 \
                 FROM unnest($1::uuid[], $2::text[]) AS u(contact_id, explanation) \
                 ON CONFLICT (contact_id) DO UPDATE \
                    SET explanation = excluded.explanation, recorded_at = excluded.recorded_at",
            )
            .bind(&contact_ids)
            .bind(&texts)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(RouterError::database("upsert explanations"))?;
        }
        Ok(())
    }
}

/// Refuses entries whose numbers do not follow one another: such a record is
/// a bug of the caller, not a sign of another router.
fn check_sequence(entries: &[JournalRow]) -> RouterResult<()> {
    for pair in entries.windows(2) {
        if pair[0].seq.checked_add(1) != Some(pair[1].seq) {
            return Err(RouterError::InvalidArgument {
                field: "entries",
                reason: format!("entry {} follows entry {}", pair[1].seq, pair[0].seq),
            });
        }
    }
    Ok(())
}

/// The type of each event, for the outbox's `event_type` column. A body that
/// does not decode would never be published, so it is refused here.
fn event_types(outbox: &[OutboxRecord]) -> RouterResult<Vec<String>> {
    outbox
        .iter()
        .map(|record| Ok(record.to_envelope()?.event_type().to_owned()))
        .collect()
}

/// One explanation per contact, the last of the record, so a single upsert
/// never touches a row twice.
fn latest_explanations(explanations: &[(Uuid, String)]) -> Vec<(Uuid, &str)> {
    let mut latest: Vec<(Uuid, &str)> = Vec::with_capacity(explanations.len());
    let mut positions: HashMap<Uuid, usize> = HashMap::with_capacity(explanations.len());
    for (contact_id, explanation) in explanations {
        match positions.entry(*contact_id) {
            Entry::Occupied(position) => latest[*position.get()].1 = explanation,
            Entry::Vacant(position) => {
                position.insert(latest.len());
                latest.push((*contact_id, explanation));
            }
        }
    }
    latest
}

/// A sequence number as PostgreSQL stores it.
fn seq_value(seq: u64) -> RouterResult<i64> {
    i64::try_from(seq).map_err(|_| RouterError::InvalidArgument {
        field: "seq",
        reason: format!("{seq} is out of range"),
    })
}

fn journal_row(row: &PgRow) -> RouterResult<JournalRow> {
    let error = || RouterError::database("read journal");
    let seq: i64 = row.try_get("seq").map_err(error())?;
    Ok(JournalRow {
        seq: u64::try_from(seq).map_err(|_| RouterError::corrupt("seq")(format!("{seq} is negative")))?,
        recorded_at: row.try_get("recorded_at").map_err(error())?,
        is_base: row.try_get("is_base").map_err(error())?,
        entry: row.try_get("entry").map_err(error())?,
    })
}

fn stored_agent(row: &PgRow) -> RouterResult<StoredAgent> {
    let error = || RouterError::database("read agent");
    let agent_id: i64 = row.try_get("agent_id").map_err(error())?;
    Ok(StoredAgent {
        agent_id: u64::try_from(agent_id)
            .map_err(|_| RouterError::corrupt("agent_id")(format!("{agent_id} is negative")))?,
        subject: row.try_get("subject").map_err(error())?,
        profile: row.try_get("profile").map_err(error())?,
    })
}

#[async_trait]
impl RoutingStore for PgRoutingStore {
    #[tracing::instrument(name = "routing.record", skip_all, fields(partition = %partition, entries = record.entries.len()))]
    async fn record(&self, partition: &str, record: &Record) -> RouterResult<()> {
        check_sequence(&record.entries)?;
        let mut tx = self.pool.begin().await.map_err(RouterError::database("begin"))?;
        // The journal goes first: when this router has been fenced off, it
        // learns so before writing anything else.
        if let Err(error) = Self::insert_journal(&mut tx, partition, &record.entries).await {
            tx.rollback().await.map_err(RouterError::database("rollback"))?;
            return Err(error);
        }
        Self::insert_effects(&mut tx, partition, record, Utc::now()).await?;
        tx.commit().await.map_err(RouterError::database("commit"))?;
        Ok(())
    }

    async fn journal(&self, partition: &str) -> RouterResult<Vec<JournalRow>> {
        sqlx::query(
            "SELECT seq, recorded_at, is_base, entry::text AS entry FROM journal \
             WHERE partition = $1 \
               AND seq >= COALESCE((SELECT max(seq) FROM journal WHERE partition = $1 AND is_base), 0) \
             ORDER BY seq",
        )
        .bind(partition)
        .fetch_all(&self.pool)
        .await
        .map_err(RouterError::database("read journal"))?
        .iter()
        .map(journal_row)
        .collect()
    }

    async fn compact(&self, partition: &str, before_seq: u64) -> RouterResult<u64> {
        let deleted = sqlx::query("DELETE FROM journal WHERE partition = $1 AND seq < $2")
            .bind(partition)
            // Every stored number is below i64::MAX, so clamping keeps the meaning.
            .bind(i64::try_from(before_seq).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await
            .map_err(RouterError::database("compact journal"))?;
        Ok(deleted.rows_affected())
    }

    async fn seen(&self, partition: &str, event_ids: &[Uuid]) -> RouterResult<HashSet<Uuid>> {
        if event_ids.is_empty() {
            return Ok(HashSet::new());
        }
        let seen: Vec<Uuid> =
            sqlx::query_scalar("SELECT event_id FROM inbox WHERE partition = $1 AND event_id = ANY($2)")
                .bind(partition)
                .bind(event_ids)
                .fetch_all(&self.pool)
                .await
                .map_err(RouterError::database("look up applied events"))?;
        Ok(seen.into_iter().collect())
    }

    async fn put_agent(&self, subject: &str, profile: &str) -> RouterResult<StoredAgent> {
        // The conflict target keeps the row, and so its agent_id; only the
        // profile changes.
        let row = sqlx::query(
            "INSERT INTO agents (subject, profile, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (subject) DO UPDATE \
                SET profile = excluded.profile, updated_at = excluded.updated_at \
             RETURNING agent_id, subject, profile",
        )
        .bind(subject)
        .bind(profile)
        .bind(Utc::now())
        .fetch_one(&self.pool)
        .await
        .map_err(RouterError::database("put agent"))?;
        stored_agent(&row)
    }

    async fn agent_by_subject(&self, subject: &str) -> RouterResult<Option<StoredAgent>> {
        let row = sqlx::query("SELECT agent_id, subject, profile FROM agents WHERE subject = $1")
            .bind(subject)
            .fetch_optional(&self.pool)
            .await
            .map_err(RouterError::database("get agent"))?;
        row.as_ref().map(stored_agent).transpose()
    }

    async fn agent_by_id(&self, agent_id: u64) -> RouterResult<Option<StoredAgent>> {
        let Ok(agent_id) = i64::try_from(agent_id) else {
            return Ok(None);
        };
        let row = sqlx::query("SELECT agent_id, subject, profile FROM agents WHERE agent_id = $1")
            .bind(agent_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(RouterError::database("get agent"))?;
        row.as_ref().map(stored_agent).transpose()
    }

    async fn agents(&self) -> RouterResult<Vec<StoredAgent>> {
        // Byte order, as SQLite sorts, whatever the database's collation.
        sqlx::query(r#"SELECT agent_id, subject, profile FROM agents ORDER BY subject COLLATE "C""#)
            .fetch_all(&self.pool)
            .await
            .map_err(RouterError::database("list agents"))?
            .iter()
            .map(stored_agent)
            .collect()
    }

    async fn explanation(&self, contact_id: Uuid) -> RouterResult<Option<String>> {
        sqlx::query_scalar("SELECT explanation FROM offer_explanations WHERE contact_id = $1")
            .bind(contact_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(RouterError::database("get explanation"))
    }

    async fn put_config(&self, toml: &str) -> RouterResult<u64> {
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO routing_configs (toml, stored_at) VALUES ($1, $2) RETURNING version",
        )
        .bind(toml)
        .bind(chrono::Utc::now())
        .fetch_one(&self.pool)
        .await
        .map_err(RouterError::database("store routing config"))?;
        u64::try_from(version).map_err(|_| RouterError::Corrupt {
            column: "routing_configs.version",
            reason: format!("{version} is negative"),
        })
    }

    async fn latest_config(&self) -> RouterResult<Option<(u64, String)>> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT version, toml FROM routing_configs ORDER BY version DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(RouterError::database("get routing config"))?;
        row.map(|(version, toml)| {
            u64::try_from(version)
                .map(|version| (version, toml))
                .map_err(|_| RouterError::Corrupt {
                    column: "routing_configs.version",
                    reason: format!("{version} is negative"),
                })
        })
        .transpose()
    }

    async fn check(&self) -> RouterResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(RouterError::database("check"))?;
        Ok(())
    }
}

#[async_trait]
impl OutboxStore for PgRoutingStore {
    async fn fetch_unsent(&self, limit: usize) -> Result<Vec<OutboxRecord>, BoxError> {
        let rows = sqlx::query("SELECT event_id, body, traceparent FROM outbox ORDER BY position LIMIT $1")
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(RouterError::database("fetch outbox"))?;
        rows.iter()
            .map(|row| {
                let error = || RouterError::database("read outbox");
                Ok(OutboxRecord {
                    event_id: row.try_get("event_id").map_err(error())?,
                    body: row.try_get("body").map_err(error())?,
                    traceparent: row.try_get("traceparent").map_err(error())?,
                })
            })
            .collect::<RouterResult<_>>()
            .map_err(Into::into)
    }

    async fn delete_sent(&self, ids: &[Uuid]) -> Result<(), BoxError> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query("DELETE FROM outbox WHERE event_id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await
            .map_err(RouterError::database("delete outbox"))?;
        Ok(())
    }
}
