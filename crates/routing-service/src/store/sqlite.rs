//! The routing store on SQLite (embedded mode): `routing.db` in the data dir,
//! WAL journal with `synchronous = FULL`, so a recorded input survives a power
//! cut before the router acts on it.
//!
//! SQLite runs in-process, so a statement costs microseconds rather than a
//! network round trip: a record is written row by row with cached prepared
//! statements, and only look-ups are set-based (ids passed as one JSON array
//! and expanded with `json_each`). Every write transaction starts with
//! `BEGIN IMMEDIATE`, taking the write lock up front, so two writers never
//! both read and then deadlock upgrading to write.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use switchboard_bus::{BoxError, OutboxRecord, OutboxStore};
use uuid::Uuid;

use super::{JournalRow, Record, RoutingStore, StoredAgent};
use crate::error::{RouterError, RouterResult};

/// The store's file in the data dir.
pub const FILE_NAME: &str = "routing.db";

/// The routing store on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteRoutingStore {
    pool: SqlitePool,
}

impl SqliteRoutingStore {
    /// Opens (creating if needed) `routing.db` in `data_dir` and brings its
    /// schema up to date.
    pub async fn open(data_dir: &Path) -> RouterResult<Self> {
        tokio::fs::create_dir_all(data_dir)
            .await
            .map_err(|source| RouterError::DataDir {
                path: data_dir.to_path_buf(),
                source,
            })?;
        Self::open_file(&data_dir.join(FILE_NAME)).await
    }

    /// Opens (creating if needed) the database at `path`.
    pub async fn open_file(path: &Path) -> RouterResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            // WAL lets gRPC reads and the outbox relay run while the router writes.
            .journal_mode(SqliteJournalMode::Wal)
            // FULL syncs the WAL at every commit: the router acts on an input
            // only after its commit, so the commit must survive a power cut.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // A writer waits this long for another (the relay deleting sent
            // rows, or a second process on the same data dir) before failing.
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            // One writer at a time anyway; the rest serve concurrent reads.
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(RouterError::database("open"))?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(RouterError::Migrate)?;
        Ok(SqliteRoutingStore { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Appends the record's journal entries; a collision on the primary key
    /// means another router wrote first and this one is fenced off.
    async fn insert_journal(
        tx: &mut Transaction<'static, Sqlite>,
        partition: &str,
        entries: &[JournalRow],
    ) -> RouterResult<()> {
        for row in entries {
            let inserted = sqlx::query(
                "INSERT INTO journal (partition, seq, recorded_at, is_base, entry) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .bind(partition)
            .bind(seq_value(row.seq)?)
            .bind(micros(row.recorded_at))
            .bind(row.is_base)
            .bind(row.entry.as_str())
            .execute(&mut **tx)
            .await;
            match inserted {
                Ok(_) => {}
                Err(error) if switchboard_runtime::database::is_unique_violation(&error) => {
                    return Err(RouterError::Fenced {
                        partition: partition.to_owned(),
                    });
                }
                Err(error) => return Err(RouterError::database("insert journal")(error)),
            }
        }
        Ok(())
    }

    /// Everything but the journal entries: inbox, outbox and explanations.
    async fn insert_effects(
        tx: &mut Transaction<'static, Sqlite>,
        partition: &str,
        record: &Record,
        now: DateTime<Utc>,
    ) -> RouterResult<()> {
        for event_id in &record.inbox {
            sqlx::query("INSERT INTO inbox (partition, event_id, processed_at) VALUES (?1, ?2, ?3)")
                .bind(partition)
                .bind(text_id(*event_id))
                .bind(micros(now))
                .execute(&mut **tx)
                .await
                .map_err(RouterError::database("insert inbox"))?;
        }

        for outbox in &record.outbox {
            let envelope = outbox.to_envelope()?;
            sqlx::query(
                "INSERT INTO outbox (event_id, event_type, body, traceparent, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .bind(text_id(outbox.event_id))
            .bind(envelope.event_type())
            .bind(outbox.body.as_slice())
            .bind(outbox.traceparent.as_deref())
            .bind(micros(now))
            .execute(&mut **tx)
            .await
            .map_err(RouterError::database("insert outbox"))?;
        }

        // Row by row in record order: a later explanation of the same contact
        // replaces the earlier one, even within one record.
        for (contact_id, explanation) in &record.explanations {
            sqlx::query(
                "INSERT INTO offer_explanations (contact_id, explanation, recorded_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (contact_id) DO UPDATE \
                    SET explanation = excluded.explanation, recorded_at = excluded.recorded_at",
            )
            .bind(text_id(*contact_id))
            .bind(explanation.as_str())
            .bind(micros(now))
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

/// A sequence number as SQLite stores it.
fn seq_value(seq: u64) -> RouterResult<i64> {
    i64::try_from(seq).map_err(|_| RouterError::InvalidArgument {
        field: "seq",
        reason: format!("{seq} is out of range"),
    })
}

/// Ids are stored as hyphenated lowercase text.
fn text_id(id: Uuid) -> String {
    id.hyphenated().to_string()
}

/// A JSON array of ids, for `json_each`.
fn json_ids(ids: &[Uuid]) -> String {
    let texts: Vec<String> = ids.iter().copied().map(text_id).collect();
    // Serialising strings cannot fail; an empty array matches nothing.
    serde_json::to_string(&texts).unwrap_or_else(|_| "[]".to_owned())
}

/// Times are stored as microseconds since the Unix epoch (see the migration).
fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn uuid_column(row: &SqliteRow, column: &'static str) -> RouterResult<Uuid> {
    let text: String = row.try_get(column).map_err(RouterError::database("read row"))?;
    Uuid::parse_str(&text).map_err(|error| RouterError::corrupt(column)(error.to_string()))
}

fn time_column(row: &SqliteRow, column: &'static str) -> RouterResult<DateTime<Utc>> {
    let value: i64 = row.try_get(column).map_err(RouterError::database("read row"))?;
    DateTime::from_timestamp_micros(value)
        .ok_or_else(|| RouterError::corrupt(column)("time out of range".to_owned()))
}

fn journal_row(row: &SqliteRow) -> RouterResult<JournalRow> {
    let error = || RouterError::database("read journal");
    let seq: i64 = row.try_get("seq").map_err(error())?;
    Ok(JournalRow {
        seq: u64::try_from(seq).map_err(|_| RouterError::corrupt("seq")(format!("{seq} is negative")))?,
        recorded_at: time_column(row, "recorded_at")?,
        is_base: row.try_get("is_base").map_err(error())?,
        entry: row.try_get("entry").map_err(error())?,
    })
}

fn stored_agent(row: &SqliteRow) -> RouterResult<StoredAgent> {
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
impl RoutingStore for SqliteRoutingStore {
    #[tracing::instrument(name = "routing.record", skip_all, fields(partition = %partition, entries = record.entries.len()))]
    async fn record(&self, partition: &str, record: &Record) -> RouterResult<()> {
        check_sequence(&record.entries)?;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(RouterError::database("begin"))?;
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
            "SELECT seq, recorded_at, is_base, entry FROM journal \
             WHERE partition = ?1 \
               AND seq >= COALESCE((SELECT max(seq) FROM journal WHERE partition = ?1 AND is_base = 1), 0) \
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
        let deleted = sqlx::query("DELETE FROM journal WHERE partition = ?1 AND seq < ?2")
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
        sqlx::query(
            "SELECT event_id FROM inbox \
             WHERE partition = ?1 AND event_id IN (SELECT value FROM json_each(?2))",
        )
        .bind(partition)
        .bind(json_ids(event_ids))
        .fetch_all(&self.pool)
        .await
        .map_err(RouterError::database("look up applied events"))?
        .iter()
        .map(|row| uuid_column(row, "event_id"))
        .collect()
    }

    async fn put_agent(&self, subject: &str, profile: &str) -> RouterResult<StoredAgent> {
        // The conflict target keeps the row, and so its agent_id; only the
        // profile changes.
        let row = sqlx::query(
            "INSERT INTO agents (subject, profile, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (subject) DO UPDATE \
                SET profile = excluded.profile, updated_at = excluded.updated_at \
             RETURNING agent_id, subject, profile",
        )
        .bind(subject)
        .bind(profile)
        .bind(micros(Utc::now()))
        .fetch_one(&self.pool)
        .await
        .map_err(RouterError::database("put agent"))?;
        stored_agent(&row)
    }

    async fn agent_by_subject(&self, subject: &str) -> RouterResult<Option<StoredAgent>> {
        let row = sqlx::query("SELECT agent_id, subject, profile FROM agents WHERE subject = ?1")
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
        let row = sqlx::query("SELECT agent_id, subject, profile FROM agents WHERE agent_id = ?1")
            .bind(agent_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(RouterError::database("get agent"))?;
        row.as_ref().map(stored_agent).transpose()
    }

    async fn agents(&self) -> RouterResult<Vec<StoredAgent>> {
        sqlx::query("SELECT agent_id, subject, profile FROM agents ORDER BY subject")
            .fetch_all(&self.pool)
            .await
            .map_err(RouterError::database("list agents"))?
            .iter()
            .map(stored_agent)
            .collect()
    }

    async fn explanation(&self, contact_id: Uuid) -> RouterResult<Option<String>> {
        sqlx::query_scalar("SELECT explanation FROM offer_explanations WHERE contact_id = ?1")
            .bind(text_id(contact_id))
            .fetch_optional(&self.pool)
            .await
            .map_err(RouterError::database("get explanation"))
    }

    async fn put_config(&self, toml: &str) -> RouterResult<u64> {
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO routing_configs (toml, stored_at) VALUES (?1, ?2) RETURNING version",
        )
        .bind(toml)
        .bind(micros(chrono::Utc::now()))
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
impl OutboxStore for SqliteRoutingStore {
    async fn fetch_unsent(&self, limit: usize) -> Result<Vec<OutboxRecord>, BoxError> {
        let rows = sqlx::query("SELECT event_id, body, traceparent FROM outbox ORDER BY position LIMIT ?1")
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(RouterError::database("fetch outbox"))?;
        rows.iter()
            .map(|row| {
                let error = || RouterError::database("read outbox");
                Ok(OutboxRecord {
                    event_id: uuid_column(row, "event_id")?,
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
        sqlx::query("DELETE FROM outbox WHERE event_id IN (SELECT value FROM json_each(?1))")
            .bind(json_ids(ids))
            .execute(&self.pool)
            .await
            .map_err(RouterError::database("delete outbox"))?;
        Ok(())
    }
}
