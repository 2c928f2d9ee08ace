//! The case store on SQLite (embedded mode): `cases.db` in the data dir,
//! WAL journal with `synchronous = FULL`, so a committed batch survives a
//! power cut before its deliveries are acked.
//!
//! SQLite runs in-process, so a statement costs microseconds rather than a
//! network round trip: batches are written row by row with cached prepared
//! statements, and only the look-ups are set-based (ids and identifiers
//! passed as one JSON array and expanded with `json_each`). Every write
//! transaction starts with `BEGIN IMMEDIATE`, taking the write lock up front,
//! so two writers never both read and then deadlock upgrading to write.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};
use switchboard_bus::{BoxError, OutboxRecord, OutboxStore};
use switchboard_domain::{
    CaseId, Channel, ContactId, CustomerId, EventId, MatchThresholds, RetentionCategory,
};
use uuid::Uuid;

use crate::audit::DataRead;
use crate::erasure::{CaseStatistics, ERASED, Erasure, ErasureRequest};
use crate::error::{CasesError, CasesResult};
use crate::lifecycle::{
    ACTOR_ROUTING, CaseNote, CaseRules, ContactOutcome, CurrentCase, IncomingOutcome, StatusChange,
    StatusRecord, StatusUpdate, check_transition, is_reopen, plan_status_change, status_after,
};
use crate::merges::{CustomerMerge, MatchSuggestion, MergeRequest, SuggestionStatus, columns_to_fill};
use crate::model::{
    ApplyOutcome, Case, CaseDetail, CaseKey, CaseStatus, Contact, Customer, CustomerSearch, EntryKind,
    IncomingContact, PageToken, QuotedReference, SEARCH_PAGE_MAX, TIMELINE_PAGE_MAX, Timeline, fold_name,
    to_micros,
};
use crate::needs::{
    self, CustomerConsent, CustomerNeeds, NeedsUpdate, NewConsent, Standing, WithdrawConsent,
};
use crate::plan::{
    self, BatchPlan, CustomerRow, LookupKeys, OpenCaseRow, OutboxRow, REFERENCE_ATTEMPTS, Snapshot,
};
use crate::referrals::{
    NewReferral, Referral, ReferralId, ReferralOutcome, check_referral, plan_outcome, plan_referral,
};
use crate::retention::{EXPIRED, RetentionRun};
use crate::store::{
    CASE_STATISTICS, CONTACT_STATISTICS, CasesStore, StoredCase, StoredConsent, StoredContact,
    StoredReferral, add_counts, assemble_timeline, clamp_page, erased_needs, retention_run,
};

/// The store's file in the data dir.
pub const FILE_NAME: &str = "cases.db";

// Column lists as macros so `concat!` builds each statement as one literal:
// SQL here is never formatted at run time.
macro_rules! customer_columns {
    () => {
        "id, name, phone_e164, email, postcode, address_line, uprn, created_at, needs"
    };
}
/// Whether customer `c` has been in touch since the time bound first
/// (`?1`): a contact since then, or a case still open. What keeps a
/// resident from the retention schedule's erasure.
macro_rules! in_touch_since {
    () => {
        "(EXISTS (SELECT 1 FROM cases k WHERE k.customer_id = c.id \
                  AND k.status IN ('open', 'waiting_on_resident', 'waiting_on_council')) \
          OR EXISTS (SELECT 1 FROM contacts k WHERE k.customer_id = c.id AND k.received_at >= ?1))"
    };
}
/// What a contact keeps once erased or expired (see the PostgreSQL store);
/// the erased needs bound as ?2.
macro_rules! clear_contact_content {
    () => {
        "summary = '', details = '{}', needs = ?2, \
         origin = json_remove(origin, '$.caller_number', '$.call_id', '$.page_url', '$.desk')"
    };
}
/// A case `c` still holding text the `case-notes` category removes: a
/// note, or a history reason or referral text that is neither empty nor
/// already replaced by [`EXPIRED`] (?2) or [`ERASED`] (?3). Written
/// after an earlier run (a note on a resolved case, a partner's late
/// report), it is removed in its turn.
macro_rules! notes_left_to_expire {
    () => {
        "(EXISTS (SELECT 1 FROM case_notes n WHERE n.case_id = c.id) \
          OR EXISTS (SELECT 1 FROM case_history h WHERE h.case_id = c.id AND h.reason NOT IN ('', ?2, ?3)) \
          OR EXISTS (SELECT 1 FROM referrals r WHERE r.case_id = c.id \
                     AND (r.note NOT IN ('', ?2, ?3) OR r.consent_statement NOT IN (?2, ?3) \
                          OR r.outcome_note NOT IN (?2, ?3))))"
    };
}
macro_rules! consent_columns {
    () => {
        "id, customer_id, purpose, statement, channel, recorded_by, given_at, contact_id, \
         withdrawn_at, withdrawn_by, withdrawal_reason"
    };
}
macro_rules! suggestion_columns {
    () => {
        "id, customer_id, candidate_id, contact_id, confidence, signals, status, created_at, decided_by, decided_at"
    };
}
macro_rules! case_columns {
    () => {
        "id, reference, customer_id, service, status, opened_at, updated_at, \
         due_at, resolved_at, outcome, reopened_count"
    };
}
/// Contacts with their outcome; conditions follow on `k` (the contact).
macro_rules! contact_select {
    () => {
        "SELECT k.id, k.reference, k.customer_id, k.case_id, k.channel, k.service, k.summary, \
                k.details, k.needs, k.origin, k.received_at, k.stored_at, k.repeat_contact, \
                o.disposition, o.partner, o.completed_at \
         FROM contacts k LEFT JOIN contact_outcomes o ON o.contact_id = k.id"
    };
}

/// The case store on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteCasesStore {
    pool: SqlitePool,
    rules: Arc<CaseRules>,
}

impl SqliteCasesStore {
    /// Opens (creating if needed) `cases.db` in `data_dir` and brings its
    /// schema up to date.
    pub async fn open(data_dir: &Path) -> CasesResult<Self> {
        tokio::fs::create_dir_all(data_dir)
            .await
            .map_err(|source| CasesError::DataDir {
                path: data_dir.to_path_buf(),
                source,
            })?;
        Self::open_file(&data_dir.join(FILE_NAME)).await
    }

    /// Opens (creating if needed) the database at `path`.
    pub async fn open_file(path: &Path) -> CasesResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            // WAL lets gRPC reads run while the consumer writes.
            .journal_mode(SqliteJournalMode::Wal)
            // FULL syncs the WAL at every commit: a batch is acked only after
            // its commit, so the commit must survive a power cut.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // A writer waits this long for another (e.g. a second process on
            // the same data dir) before the batch fails and is retried.
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            // One writer at a time anyway; the rest serve concurrent reads.
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(CasesError::database("open"))?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(CasesError::Migrate)?;
        Ok(SqliteCasesStore {
            pool,
            rules: Arc::new(CaseRules::embedded()),
        })
    }

    /// The same store following `rules` (the council's catalogue, calendar
    /// and follow-up window) instead of the shipped ones.
    pub fn with_rules(mut self, rules: CaseRules) -> Self {
        self.rules = Arc::new(rules);
        self
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn snapshot(
        tx: &mut Transaction<'static, Sqlite>,
        keys: &LookupKeys,
        resolved_since: DateTime<Utc>,
        thresholds: MatchThresholds,
    ) -> CasesResult<Snapshot> {
        let mut snapshot = Snapshot::default();
        let event_ids = json_ids(keys.event_ids.iter().map(EventId::as_uuid));
        let applied: Vec<String> = sqlx::query_scalar(
            "SELECT event_id FROM inbox WHERE event_id IN (SELECT value FROM json_each(?1))",
        )
        .bind(event_ids)
        .fetch_all(&mut **tx)
        .await
        .map_err(CasesError::database("look up applied events"))?;
        for id in applied {
            snapshot
                .applied_events
                .insert(EventId::from_uuid(parse_uuid("inbox.event_id", &id)?));
        }
        let contact_ids = json_ids(keys.contact_ids.iter().map(ContactId::as_uuid));
        let stored: Vec<String> =
            sqlx::query_scalar("SELECT id FROM contacts WHERE id IN (SELECT value FROM json_each(?1))")
                .bind(contact_ids)
                .fetch_all(&mut **tx)
                .await
                .map_err(CasesError::database("look up stored contacts"))?;
        for id in stored {
            snapshot
                .stored_contacts
                .insert(ContactId::from_uuid(parse_uuid("contacts.id", &id)?));
        }

        if !keys.has_identifiers() {
            return Ok(snapshot);
        }
        snapshot.customers = sqlx::query(concat!(
            "SELECT ",
            customer_columns!(),
            " FROM customers WHERE merged_into IS NULL \
               AND (phone_e164 IN (SELECT value FROM json_each(?1)) \
                    OR email IN (SELECT value FROM json_each(?2)) \
                    OR uprn IN (SELECT value FROM json_each(?3)) \
                    OR postcode IN (SELECT value FROM json_each(?4)))"
        ))
        .bind(json_strings(&keys.phones))
        .bind(json_strings(&keys.emails))
        .bind(json_strings(&keys.uprns))
        .bind(json_strings(&keys.postcodes))
        .fetch_all(&mut **tx)
        .await
        .map_err(CasesError::database("look up customers"))?
        .iter()
        .map(customer_row)
        .collect::<CasesResult<_>>()?;
        if snapshot.customers.is_empty() {
            return Ok(snapshot);
        }

        let may_match = keys.customers_that_may_match(&snapshot.customers, thresholds);
        if may_match.is_empty() {
            return Ok(snapshot);
        }
        let customer_ids = json_ids(may_match.iter().map(CustomerId::as_uuid));
        let rows = sqlx::query(
            "SELECT c.id, c.reference, c.customer_id, c.service, c.status, c.opened_at, c.updated_at, \
                    c.resolved_at, (SELECT count(*) FROM contacts k WHERE k.case_id = c.id) AS contact_count \
             FROM cases c \
             WHERE c.customer_id IN (SELECT value FROM json_each(?1)) \
               AND (c.status IN ('open', 'waiting_on_resident', 'waiting_on_council') \
                    OR (c.status = 'resolved' AND c.resolved_at >= ?2))",
        )
        .bind(customer_ids)
        .bind(micros(resolved_since))
        .fetch_all(&mut **tx)
        .await
        .map_err(CasesError::database("look up open cases"))?;
        for row in rows {
            let error = || CasesError::database("read open cases");
            let contact_count: i64 = row.try_get("contact_count").map_err(error())?;
            let status: String = row.try_get("status").map_err(error())?;
            snapshot.open_cases.push(OpenCaseRow {
                id: CaseId::from_uuid(uuid_column(&row, "id")?),
                reference: row.try_get("reference").map_err(error())?,
                customer_id: CustomerId::from_uuid(uuid_column(&row, "customer_id")?),
                service: row.try_get("service").map_err(error())?,
                status: CaseStatus::parse(&status).map_err(CasesError::corrupt("cases.status"))?,
                opened_at: time_column(&row, "opened_at")?,
                updated_at: time_column(&row, "updated_at")?,
                resolved_at: optional_time_column(&row, "resolved_at")?,
                contact_count: u32::try_from(contact_count).unwrap_or(u32::MAX),
            });
        }
        Ok(snapshot)
    }

    async fn write(tx: &mut Transaction<'static, Sqlite>, plan: &mut BatchPlan) -> CasesResult<()> {
        for row in &plan.new_customers {
            sqlx::query(
                "INSERT INTO customers (id, name, name_folded, phone_e164, email, postcode, address_line, uprn, created_at, needs) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .bind(text_id(row.id.as_uuid()))
            .bind(row.name.as_deref())
            .bind(row.name_folded())
            .bind(row.phone_e164.as_deref())
            .bind(row.email.as_deref())
            .bind(row.postcode.as_deref())
            .bind(row.address_line.as_deref())
            .bind(row.uprn.as_deref())
            .bind(micros(row.created_at))
            .bind(row.needs.to_json()?)
            .execute(&mut **tx)
            .await
            .map_err(CasesError::database("insert customer"))?;
        }

        for row in &plan.filled_customers {
            // COALESCE keeps whatever the row already has: details are filled
            // in, never overwritten.
            sqlx::query(
                "UPDATE customers SET \
                    name = COALESCE(name, ?2), \
                    name_folded = COALESCE(name_folded, ?3), \
                    phone_e164 = COALESCE(phone_e164, ?4), \
                    email = COALESCE(email, ?5), \
                    postcode = COALESCE(postcode, ?6), \
                    address_line = COALESCE(address_line, ?7), \
                    uprn = COALESCE(uprn, ?8) \
                 WHERE id = ?1",
            )
            .bind(text_id(row.id.as_uuid()))
            .bind(row.name.as_deref())
            .bind(row.name_folded())
            .bind(row.phone_e164.as_deref())
            .bind(row.email.as_deref())
            .bind(row.postcode.as_deref())
            .bind(row.address_line.as_deref())
            .bind(row.uprn.as_deref())
            .execute(&mut **tx)
            .await
            .map_err(CasesError::database("fill in customer"))?;
        }

        // The transaction holds the write lock, so the records read here are
        // the latest: adding the stated needs again keeps staff's changes.
        let learned = plan.learned_customers();
        if !learned.is_empty() {
            let mut current = Vec::with_capacity(learned.len());
            for customer_id in learned {
                let needs: String = sqlx::query_scalar("SELECT needs FROM customers WHERE id = ?1")
                    .bind(text_id(customer_id.as_uuid()))
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(CasesError::database("read customer's needs"))?;
                current.push((customer_id, CustomerNeeds::from_json(&needs)?));
            }
            for (customer_id, needs) in plan.relearn(current)? {
                set_needs(tx, customer_id, &needs).await?;
            }
        }
        for consent in &plan.consents {
            insert_consent(tx, consent).await?;
        }

        Self::insert_cases(tx, plan).await?;

        for case in plan.touched_cases() {
            sqlx::query(
                "UPDATE cases SET updated_at = max(updated_at, ?2), \
                    status = CASE WHEN ?3 THEN 'open' ELSE status END, \
                    resolved_at = CASE WHEN ?3 THEN NULL ELSE resolved_at END, \
                    outcome = CASE WHEN ?3 THEN NULL ELSE outcome END, \
                    reopened_count = reopened_count + ?3 \
                 WHERE id = ?1",
            )
            .bind(text_id(case.id.as_uuid()))
            .bind(micros(case.updated_at))
            .bind(case.reopened)
            .execute(&mut **tx)
            .await
            .map_err(CasesError::database("update case"))?;
        }
        insert_history(tx, &plan.history).await?;

        for row in &plan.contacts {
            sqlx::query(
                "INSERT INTO contacts (id, reference, customer_id, case_id, channel, service, summary, details, needs, origin, received_at, stored_at, repeat_contact) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )
            .bind(text_id(row.id.as_uuid()))
            .bind(row.reference.as_str())
            .bind(text_id(row.customer_id.as_uuid()))
            .bind(text_id(row.case_id.as_uuid()))
            .bind(row.channel)
            .bind(row.service.as_str())
            .bind(row.summary.as_str())
            .bind(row.details.as_str())
            .bind(row.needs.as_str())
            .bind(row.origin.as_str())
            .bind(micros(row.received_at))
            .bind(micros(row.stored_at))
            .bind(row.repeat_contact)
            .execute(&mut **tx)
            .await
            .map_err(CasesError::database("insert contact"))?;
        }

        for row in plan.distinct_suggestions() {
            sqlx::query(
                "INSERT INTO match_suggestions (id, customer_id, candidate_id, contact_id, confidence, signals, status, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'open', ?7) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(text_id(row.id))
            .bind(text_id(row.customer_id.as_uuid()))
            .bind(text_id(row.candidate_id.as_uuid()))
            .bind(text_id(row.contact_id.as_uuid()))
            .bind(i64::from(row.confidence))
            .bind(json_strings(&row.signals))
            .bind(micros(plan.now))
            .execute(&mut **tx)
            .await
            .map_err(CasesError::database("insert match suggestion"))?;
        }

        if !plan.inbox.is_empty() {
            sqlx::query("INSERT INTO inbox (event_id, processed_at) SELECT value, ?2 FROM json_each(?1)")
                .bind(json_ids(plan.inbox.iter().map(EventId::as_uuid)))
                .bind(micros(plan.now))
                .execute(&mut **tx)
                .await
                .map_err(CasesError::database("insert inbox"))?;
        }

        insert_outbox(tx, plan.outbox()).await
    }

    /// Inserts the plan's new cases, regenerating a reference that collides
    /// with an existing one (see the PostgreSQL store).
    async fn insert_cases(tx: &mut Transaction<'static, Sqlite>, plan: &mut BatchPlan) -> CasesResult<()> {
        for case in plan.new_cases() {
            let mut reference = case.reference.clone();
            let mut inserted = false;
            for _attempt in 0..REFERENCE_ATTEMPTS {
                let result = sqlx::query(
                    "INSERT INTO cases (id, reference, customer_id, service, status, opened_at, updated_at, due_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                     ON CONFLICT (reference) DO NOTHING",
                )
                .bind(text_id(case.id.as_uuid()))
                .bind(reference.as_str())
                .bind(text_id(case.customer_id.as_uuid()))
                .bind(case.service.as_str())
                .bind(case.status.as_str())
                .bind(micros(case.opened_at))
                .bind(micros(case.updated_at))
                .bind(case.due_at.map(micros))
                .execute(&mut **tx)
                .await
                .map_err(CasesError::database("insert case"))?;
                if result.rows_affected() == 1 {
                    inserted = true;
                    break;
                }
                tracing::info!(case_id = %case.id, "case reference collided, regenerating");
                plan.regenerate_reference(case.id);
                reference = plan
                    .new_cases()
                    .into_iter()
                    .find(|row| row.id == case.id)
                    .map(|row| row.reference)
                    .unwrap_or_default();
            }
            if !inserted {
                return Err(CasesError::ReferenceCollisions {
                    attempts: REFERENCE_ATTEMPTS,
                });
            }
        }
        Ok(())
    }

    async fn cases_with_contacts(&self, rows: Vec<SqliteRow>) -> CasesResult<Vec<Case>> {
        let stored: Vec<StoredCase> = rows.iter().map(stored_case).collect::<CasesResult<_>>()?;
        let mut by_case: HashMap<Uuid, Vec<ContactId>> = HashMap::new();
        if !stored.is_empty() {
            let ids = json_ids(stored.iter().map(|case| case.id.as_uuid()));
            let contact_rows = sqlx::query(
                "SELECT case_id, id FROM contacts WHERE case_id IN (SELECT value FROM json_each(?1)) \
                 ORDER BY case_id, received_at, id",
            )
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(CasesError::database("read case contacts"))?;
            for row in contact_rows {
                let case_id = uuid_column(&row, "case_id")?;
                let id = uuid_column(&row, "id")?;
                by_case.entry(case_id).or_default().push(ContactId::from_uuid(id));
            }
        }
        stored
            .into_iter()
            .map(|case| {
                let contacts = by_case.remove(&case.id.as_uuid()).unwrap_or_default();
                case.into_case(contacts)
            })
            .collect()
    }
}

/// What decides a needs or consent change (the transaction holds the write
/// lock); `None` when there is no such customer.
async fn read_standing(
    tx: &mut Transaction<'static, Sqlite>,
    customer_id: CustomerId,
) -> CasesResult<Option<Standing>> {
    let row = sqlx::query(
        "SELECT merged_into, needs, \
            EXISTS (SELECT 1 FROM erasures WHERE customer_id = ?1) AS erased, \
            EXISTS (SELECT 1 FROM customer_consents \
                    WHERE customer_id = ?1 AND purpose = 'vulnerability' AND withdrawn_at IS NULL) AS consented \
         FROM customers WHERE id = ?1",
    )
    .bind(text_id(customer_id.as_uuid()))
    .fetch_optional(&mut **tx)
    .await
    .map_err(CasesError::database("read customer"))?;
    row.map(|row| {
        let error = || CasesError::database("read customer");
        let needs: String = row.try_get("needs").map_err(error())?;
        Ok(Standing {
            merged_into: row.try_get("merged_into").map_err(error())?,
            erased: row.try_get("erased").map_err(error())?,
            vulnerability_consent: row.try_get("consented").map_err(error())?,
            needs: CustomerNeeds::from_json(&needs)?,
        })
    })
    .transpose()
}

async fn set_needs(
    tx: &mut Transaction<'static, Sqlite>,
    customer_id: CustomerId,
    needs: &str,
) -> CasesResult<()> {
    sqlx::query("UPDATE customers SET needs = ?2 WHERE id = ?1")
        .bind(text_id(customer_id.as_uuid()))
        .bind(needs)
        .execute(&mut **tx)
        .await
        .map_err(CasesError::database("update customer's needs"))?;
    Ok(())
}

async fn insert_consent(tx: &mut Transaction<'static, Sqlite>, consent: &CustomerConsent) -> CasesResult<()> {
    sqlx::query(
        "INSERT INTO customer_consents (id, customer_id, purpose, statement, channel, recorded_by, given_at, contact_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .bind(text_id(consent.id))
    .bind(text_id(consent.customer_id.as_uuid()))
    .bind(consent.purpose.as_str())
    .bind(&consent.statement)
    .bind(consent.channel.map(Channel::as_str))
    .bind(&consent.recorded_by)
    .bind(micros(consent.given_at))
    .bind(consent.contact_id.map(|id| text_id(id.as_uuid())))
    .execute(&mut **tx)
    .await
    .map_err(CasesError::database("insert consent"))?;
    Ok(())
}

async fn read_consent(
    tx: &mut Transaction<'static, Sqlite>,
    id: Uuid,
) -> CasesResult<Option<CustomerConsent>> {
    sqlx::query(concat!(
        "SELECT ",
        consent_columns!(),
        " FROM customer_consents WHERE id = ?1"
    ))
    .bind(text_id(id))
    .fetch_optional(&mut **tx)
    .await
    .map_err(CasesError::database("read consent"))?
    .as_ref()
    .map(consent_row)
    .transpose()
}

fn consent_row(row: &SqliteRow) -> CasesResult<CustomerConsent> {
    let error = || CasesError::database("read consent");
    let contact_id: Option<String> = row.try_get("contact_id").map_err(error())?;
    StoredConsent {
        id: uuid_column(row, "id")?,
        customer_id: uuid_column(row, "customer_id")?,
        purpose: row.try_get("purpose").map_err(error())?,
        statement: row.try_get("statement").map_err(error())?,
        channel: row.try_get("channel").map_err(error())?,
        recorded_by: row.try_get("recorded_by").map_err(error())?,
        given_at: time_column(row, "given_at")?,
        contact_id: contact_id
            .map(|text| parse_uuid("customer_consents.contact_id", &text))
            .transpose()?,
        withdrawn_at: optional_time_column(row, "withdrawn_at")?,
        withdrawn_by: row.try_get("withdrawn_by").map_err(error())?,
        withdrawal_reason: row.try_get("withdrawal_reason").map_err(error())?,
    }
    .into_consent()
}

/// Ids are stored as hyphenated lowercase text, which sorts like the UUID.
fn text_id(id: Uuid) -> String {
    id.hyphenated().to_string()
}

fn parse_uuid(column: &'static str, text: &str) -> CasesResult<Uuid> {
    Uuid::parse_str(text).map_err(|error| CasesError::Corrupt {
        column,
        reason: error.to_string(),
    })
}

/// A JSON array of ids, for `json_each`.
fn json_ids(ids: impl Iterator<Item = Uuid>) -> String {
    let texts: Vec<String> = ids.map(text_id).collect();
    json_strings(&texts)
}

fn json_strings(values: &[String]) -> String {
    // Serialising strings cannot fail; an empty array matches nothing.
    serde_json::to_string(values).unwrap_or_else(|_| "[]".to_owned())
}

/// Times are stored as microseconds since the Unix epoch (see the migration).
fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn uuid_column(row: &SqliteRow, column: &'static str) -> CasesResult<Uuid> {
    let text: String = row.try_get(column).map_err(CasesError::database("read row"))?;
    parse_uuid(column, &text)
}

fn time_column(row: &SqliteRow, column: &'static str) -> CasesResult<DateTime<Utc>> {
    let value: i64 = row.try_get(column).map_err(CasesError::database("read row"))?;
    DateTime::from_timestamp_micros(value).ok_or(CasesError::Corrupt {
        column,
        reason: "time out of range".to_owned(),
    })
}

fn optional_time_column(row: &SqliteRow, column: &'static str) -> CasesResult<Option<DateTime<Utc>>> {
    let value: Option<i64> = row.try_get(column).map_err(CasesError::database("read row"))?;
    value
        .map(|value| {
            DateTime::from_timestamp_micros(value).ok_or(CasesError::Corrupt {
                column,
                reason: "time out of range".to_owned(),
            })
        })
        .transpose()
}

async fn insert_outbox(tx: &mut Transaction<'static, Sqlite>, outbox: Vec<OutboxRow>) -> CasesResult<()> {
    for row in outbox {
        sqlx::query(
            "INSERT INTO outbox (event_id, event_type, body, traceparent, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(text_id(row.event_id.as_uuid()))
        .bind(row.event_type)
        .bind(row.body)
        .bind(row.traceparent)
        .bind(micros(row.created_at))
        .execute(&mut **tx)
        .await
        .map_err(CasesError::database("insert outbox"))?;
    }
    Ok(())
}

async fn insert_history(
    tx: &mut Transaction<'static, Sqlite>,
    history: &[(CaseId, StatusRecord)],
) -> CasesResult<()> {
    for (case_id, record) in history {
        sqlx::query(
            "INSERT INTO case_history (id, case_id, from_status, to_status, reason, actor, at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(text_id(Uuid::now_v7()))
        .bind(text_id(case_id.as_uuid()))
        .bind(record.from.as_str())
        .bind(record.to.as_str())
        .bind(record.reason.as_str())
        .bind(record.actor.as_str())
        .bind(micros(record.at))
        .execute(&mut **tx)
        .await
        .map_err(CasesError::database("insert case history"))?;
    }
    Ok(())
}

/// The case as it stands. The transaction began with `BEGIN IMMEDIATE`, so
/// nobody else writes until it ends.
async fn current_case(tx: &mut Transaction<'static, Sqlite>, id: CaseId) -> CasesResult<Option<CurrentCase>> {
    let row = sqlx::query(
        "SELECT c.id, c.reference, c.customer_id, c.service, c.status, c.due_at, c.resolved_at, c.outcome, \
                c.reopened_count, (SELECT count(*) FROM contacts k WHERE k.case_id = c.id) AS contact_count \
         FROM cases c WHERE c.id = ?1",
    )
    .bind(text_id(id.as_uuid()))
    .fetch_optional(&mut **tx)
    .await
    .map_err(CasesError::database("read case for update"))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let error = || CasesError::database("read case for update");
    let status: String = row.try_get("status").map_err(error())?;
    let reopened_count: i64 = row.try_get("reopened_count").map_err(error())?;
    let contact_count: i64 = row.try_get("contact_count").map_err(error())?;
    Ok(Some(CurrentCase {
        id,
        reference: row.try_get("reference").map_err(error())?,
        customer_id: CustomerId::from_uuid(uuid_column(&row, "customer_id")?),
        service: row.try_get("service").map_err(error())?,
        status: CaseStatus::parse(&status).map_err(CasesError::corrupt("cases.status"))?,
        due_at: optional_time_column(&row, "due_at")?,
        resolved_at: optional_time_column(&row, "resolved_at")?,
        outcome: row.try_get("outcome").map_err(error())?,
        reopened_count: u32::try_from(reopened_count).unwrap_or_default(),
        contact_count: u32::try_from(contact_count).unwrap_or(u32::MAX),
    }))
}

async fn write_status_update(
    tx: &mut Transaction<'static, Sqlite>,
    id: CaseId,
    update: StatusUpdate,
) -> CasesResult<()> {
    sqlx::query(
        "UPDATE cases SET status = ?2, resolved_at = ?3, outcome = ?4, reopened_count = ?5 WHERE id = ?1",
    )
    .bind(text_id(id.as_uuid()))
    .bind(update.status.as_str())
    .bind(update.resolved_at.map(micros))
    .bind(update.outcome.as_deref())
    .bind(i64::from(update.reopened_count))
    .execute(&mut **tx)
    .await
    .map_err(CasesError::database("update case status"))?;
    insert_history(tx, &[(id, update.record)]).await?;
    insert_outbox(tx, vec![update.event]).await
}

/// Applies the waiting outcomes of `contact_ids` that are stored (see the
/// PostgreSQL store).
async fn apply_pending_outcomes(
    tx: &mut Transaction<'static, Sqlite>,
    contact_ids: String,
    now: DateTime<Utc>,
) -> CasesResult<()> {
    let pending = sqlx::query(
        "SELECT o.contact_id, o.disposition, k.case_id \
         FROM contact_outcomes o JOIN contacts k ON k.id = o.contact_id \
         WHERE o.contact_id IN (SELECT value FROM json_each(?1)) AND o.applied = 0 \
         ORDER BY k.case_id, o.completed_at",
    )
    .bind(contact_ids)
    .fetch_all(&mut **tx)
    .await
    .map_err(CasesError::database("look up waiting outcomes"))?;
    for row in pending {
        let contact_id = uuid_column(&row, "contact_id")?;
        let disposition: String = row
            .try_get("disposition")
            .map_err(CasesError::database("read waiting outcomes"))?;
        let case_id = CaseId::from_uuid(uuid_column(&row, "case_id")?);
        if let Some(current) = current_case(tx, case_id).await?
            && let Some(to) = status_after(current.status, &disposition)
        {
            let update = plan_status_change(
                &current,
                to,
                format!("wrap-up disposition: {disposition}"),
                ACTOR_ROUTING.to_owned(),
                Some(&disposition),
                now,
            );
            write_status_update(tx, case_id, update).await?;
        }
        sqlx::query("UPDATE contact_outcomes SET applied = 1 WHERE contact_id = ?1")
            .bind(text_id(contact_id))
            .execute(&mut **tx)
            .await
            .map_err(CasesError::database("mark outcome applied"))?;
    }
    Ok(())
}

fn customer_row(row: &SqliteRow) -> CasesResult<CustomerRow> {
    let read = |column: &str| -> CasesResult<Option<String>> {
        row.try_get(column).map_err(CasesError::database("read customer"))
    };
    Ok(CustomerRow {
        id: CustomerId::from_uuid(uuid_column(row, "id")?),
        name: read("name")?,
        phone_e164: read("phone_e164")?,
        email: read("email")?,
        postcode: read("postcode")?,
        address_line: read("address_line")?,
        uprn: read("uprn")?,
        created_at: time_column(row, "created_at")?,
        needs: CustomerNeeds::from_json(
            &row.try_get::<String, _>("needs")
                .map_err(CasesError::database("read customer"))?,
        )?,
    })
}

/// A merge with the counts of what it moved. The caller's transaction began
/// with `BEGIN IMMEDIATE` when it goes on to write.
async fn read_merge(tx: &mut Transaction<'static, Sqlite>, id: Uuid) -> CasesResult<Option<CustomerMerge>> {
    let row = sqlx::query(
        "SELECT m.*,                 (SELECT count(*) FROM customer_merge_moves v WHERE v.merge_id = m.id AND v.kind = 'contact') AS moved_contacts,                 (SELECT count(*) FROM customer_merge_moves v WHERE v.merge_id = m.id AND v.kind = 'case') AS moved_cases          FROM customer_merges m WHERE m.id = ?1",
    )
    .bind(text_id(id))
    .fetch_optional(&mut **tx)
    .await
    .map_err(CasesError::database("read merge"))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let error = || CasesError::database("read merge");
    let moved_contacts: i64 = row.try_get("moved_contacts").map_err(error())?;
    let moved_cases: i64 = row.try_get("moved_cases").map_err(error())?;
    let filled: String = row.try_get("filled_columns").map_err(error())?;
    Ok(Some(CustomerMerge {
        id,
        survivor_id: CustomerId::from_uuid(uuid_column(&row, "survivor_id")?),
        merged_id: CustomerId::from_uuid(uuid_column(&row, "merged_id")?),
        reason: row.try_get("reason").map_err(error())?,
        merged_by: row.try_get("merged_by").map_err(error())?,
        merged_at: time_column(&row, "merged_at")?,
        filled_columns: from_json_strings("customer_merges.filled_columns", &filled)?,
        moved_contacts: u32::try_from(moved_contacts).unwrap_or(u32::MAX),
        moved_cases: u32::try_from(moved_cases).unwrap_or(u32::MAX),
        unmerged_by: row.try_get("unmerged_by").map_err(error())?,
        unmerged_at: optional_time_column(&row, "unmerged_at")?,
        unmerge_reason: row.try_get("unmerge_reason").map_err(error())?,
    }))
}

fn from_json_strings(column: &'static str, text: &str) -> CasesResult<Vec<String>> {
    serde_json::from_str(text).map_err(|error| CasesError::Corrupt {
        column,
        reason: error.to_string(),
    })
}

fn suggestion(row: &SqliteRow) -> CasesResult<MatchSuggestion> {
    let error = || CasesError::database("read match suggestion");
    let status: String = row.try_get("status").map_err(error())?;
    let confidence: i64 = row.try_get("confidence").map_err(error())?;
    let signals: String = row.try_get("signals").map_err(error())?;
    Ok(MatchSuggestion {
        id: uuid_column(row, "id")?,
        customer_id: CustomerId::from_uuid(uuid_column(row, "customer_id")?),
        candidate_id: CustomerId::from_uuid(uuid_column(row, "candidate_id")?),
        contact_id: ContactId::from_uuid(uuid_column(row, "contact_id")?),
        confidence: u8::try_from(confidence).unwrap_or_default(),
        signals: from_json_strings("match_suggestions.signals", &signals)?,
        status: SuggestionStatus::parse(&status).map_err(CasesError::corrupt("match_suggestions.status"))?,
        created_at: time_column(row, "created_at")?,
        decided_by: row.try_get("decided_by").map_err(error())?,
        decided_at: optional_time_column(row, "decided_at")?,
    })
}

fn stored_case(row: &SqliteRow) -> CasesResult<StoredCase> {
    let error = || CasesError::database("read case");
    Ok(StoredCase {
        id: CaseId::from_uuid(uuid_column(row, "id")?),
        reference: row.try_get("reference").map_err(error())?,
        customer_id: CustomerId::from_uuid(uuid_column(row, "customer_id")?),
        service: row.try_get("service").map_err(error())?,
        status: row.try_get("status").map_err(error())?,
        opened_at: time_column(row, "opened_at")?,
        updated_at: time_column(row, "updated_at")?,
        due_at: optional_time_column(row, "due_at")?,
        resolved_at: optional_time_column(row, "resolved_at")?,
        outcome: row.try_get("outcome").map_err(error())?,
        reopened_count: row.try_get("reopened_count").map_err(error())?,
    })
}

fn contact(row: &SqliteRow) -> CasesResult<Contact> {
    let error = || CasesError::database("read contact");
    StoredContact {
        id: ContactId::from_uuid(uuid_column(row, "id")?),
        reference: row.try_get("reference").map_err(error())?,
        customer_id: CustomerId::from_uuid(uuid_column(row, "customer_id")?),
        case_id: CaseId::from_uuid(uuid_column(row, "case_id")?),
        channel: row.try_get("channel").map_err(error())?,
        service: row.try_get("service").map_err(error())?,
        summary: row.try_get("summary").map_err(error())?,
        details: row.try_get("details").map_err(error())?,
        needs: row.try_get("needs").map_err(error())?,
        origin: row.try_get("origin").map_err(error())?,
        received_at: time_column(row, "received_at")?,
        stored_at: time_column(row, "stored_at")?,
        repeat_contact: row.try_get("repeat_contact").map_err(error())?,
        outcome: match row.try_get::<Option<String>, _>("disposition").map_err(error())? {
            Some(disposition) => Some(ContactOutcome {
                disposition,
                partner: row.try_get("partner").map_err(error())?,
                completed_at: time_column(row, "completed_at")?,
            }),
            None => None,
        },
    }
    .into_contact()
}

#[async_trait]
impl CasesStore for SqliteCasesStore {
    #[tracing::instrument(name = "cases.apply_contacts", skip_all, fields(batch = batch.len()))]
    async fn apply_contacts(&self, batch: &[IncomingContact]) -> CasesResult<Vec<ApplyOutcome>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let keys = plan::lookup_keys(batch);
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(CasesError::database("begin"))?;
        let now = Utc::now();
        let snapshot = Self::snapshot(
            &mut tx,
            &keys,
            now - self.rules.follow_up_window(),
            self.rules.match_thresholds(),
        )
        .await?;
        let mut plan = plan::plan_batch(batch, snapshot, &self.rules, now)?;
        if plan.is_empty() {
            tx.rollback().await.map_err(CasesError::database("rollback"))?;
            return Ok(plan.outcomes);
        }
        Self::write(&mut tx, &mut plan).await?;
        let stored = json_ids(plan.contacts.iter().map(|row| row.id.as_uuid()));
        apply_pending_outcomes(&mut tx, stored, plan.now).await?;
        tx.commit().await.map_err(CasesError::database("commit"))?;
        Ok(plan.outcomes)
    }

    async fn get_contact(&self, id: ContactId) -> CasesResult<Option<Contact>> {
        let row = sqlx::query(concat!(contact_select!(), " WHERE k.id = ?1"))
            .bind(text_id(id.as_uuid()))
            .fetch_optional(&self.pool)
            .await
            .map_err(CasesError::database("get contact"))?;
        row.as_ref().map(contact).transpose()
    }

    async fn get_case(&self, key: &CaseKey) -> CasesResult<Option<Case>> {
        let query = match key {
            CaseKey::Id(id) => sqlx::query(concat!("SELECT ", case_columns!(), " FROM cases WHERE id = ?1"))
                .bind(text_id(id.as_uuid())),
            CaseKey::Reference(reference) => sqlx::query(concat!(
                "SELECT ",
                case_columns!(),
                " FROM cases WHERE reference = ?1"
            ))
            .bind(reference.as_str().to_owned()),
        };
        let rows: Vec<SqliteRow> = query
            .fetch_optional(&self.pool)
            .await
            .map_err(CasesError::database("get case"))?
            .into_iter()
            .collect();
        Ok(self.cases_with_contacts(rows).await?.into_iter().next())
    }

    async fn customer_timeline(
        &self,
        customer_id: CustomerId,
        page_size: usize,
        page_token: Option<&PageToken>,
    ) -> CasesResult<Option<Timeline>> {
        let page_size = clamp_page(page_size, TIMELINE_PAGE_MAX);
        let cursor = page_token.map(PageToken::cursor).transpose()?;
        let customer = sqlx::query(concat!(
            "SELECT ",
            customer_columns!(),
            " FROM customers WHERE id = ?1"
        ))
        .bind(text_id(customer_id.as_uuid()))
        .fetch_optional(&self.pool)
        .await
        .map_err(CasesError::database("get customer"))?;
        let Some(customer) = customer else {
            return Ok(None);
        };
        let customer = customer_row(&customer)?.into_customer()?;

        let ordered = sqlx::query(
            "SELECT kind, id FROM ( \
                 SELECT 1 AS kind, id, opened_at AS at FROM cases WHERE customer_id = ?1 \
                 UNION ALL \
                 SELECT 0, id, received_at FROM contacts WHERE customer_id = ?1 \
             ) \
             WHERE ?2 IS NULL OR (at, kind, id) < (?2, ?3, ?4) \
             ORDER BY at DESC, kind DESC, id DESC \
             LIMIT ?5",
        )
        .bind(text_id(customer_id.as_uuid()))
        .bind(cursor.map(|cursor| micros(cursor.at)))
        .bind(cursor.map(|cursor| cursor.kind.rank()))
        .bind(cursor.map(|cursor| text_id(cursor.id)))
        .bind(i64::try_from(page_size + 1).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(CasesError::database("read timeline"))?
        .iter()
        .map(|row| {
            let rank: i16 = row
                .try_get("kind")
                .map_err(CasesError::database("read timeline"))?;
            let kind = EntryKind::from_rank(rank).ok_or(CasesError::Corrupt {
                column: "timeline.kind",
                reason: "unknown entry kind".to_owned(),
            })?;
            Ok((kind, uuid_column(row, "id")?))
        })
        .collect::<CasesResult<Vec<_>>>()?;

        let visible = &ordered[..ordered.len().min(page_size)];
        let contact_ids = json_ids(
            visible
                .iter()
                .filter(|(kind, _)| *kind == EntryKind::Contact)
                .map(|(_, id)| *id),
        );
        let case_ids = json_ids(
            visible
                .iter()
                .filter(|(kind, _)| *kind == EntryKind::Case)
                .map(|(_, id)| *id),
        );
        let mut contacts = HashMap::new();
        let rows = sqlx::query(concat!(
            contact_select!(),
            " WHERE k.id IN (SELECT value FROM json_each(?1))"
        ))
        .bind(contact_ids)
        .fetch_all(&self.pool)
        .await
        .map_err(CasesError::database("read timeline contacts"))?;
        for row in &rows {
            let contact = contact(row)?;
            contacts.insert(contact.id.as_uuid(), contact);
        }
        let rows = sqlx::query(concat!(
            "SELECT ",
            case_columns!(),
            " FROM cases WHERE id IN (SELECT value FROM json_each(?1))"
        ))
        .bind(case_ids)
        .fetch_all(&self.pool)
        .await
        .map_err(CasesError::database("read timeline cases"))?;
        let mut cases = HashMap::new();
        for case in self.cases_with_contacts(rows).await? {
            cases.insert(case.id.as_uuid(), case);
        }
        assemble_timeline(customer, ordered, page_size, contacts, cases).map(Some)
    }

    async fn search_customers(&self, search: &CustomerSearch, limit: usize) -> CasesResult<Vec<Customer>> {
        if search.is_empty() {
            return Ok(Vec::new());
        }
        let limit = clamp_page(limit, SEARCH_PAGE_MAX);
        let mut query = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT ",
            customer_columns!(),
            " FROM customers WHERE merged_into IS NULL"
        ));
        if let Some(phone) = &search.phone {
            query
                .push(" AND phone_e164 = ")
                .push_bind(phone.as_e164().to_owned());
        }
        if let Some(email) = &search.email {
            query.push(" AND email = ").push_bind(email.as_str().to_owned());
        }
        if let Some(postcode) = &search.postcode {
            query
                .push(" AND postcode = ")
                .push_bind(postcode.as_str().to_owned());
        }
        if let Some(name) = &search.name {
            query
                .push(" AND instr(name_folded, ")
                .push_bind(fold_name(name.as_str()))
                .push(") > 0");
        }
        match &search.reference {
            Some(QuotedReference::Case(reference)) => {
                query
                    .push(" AND id IN (SELECT customer_id FROM cases WHERE reference = ")
                    .push_bind(reference.as_str().to_owned())
                    .push(")");
            }
            Some(QuotedReference::Contact(reference)) => {
                query
                    .push(" AND id IN (SELECT customer_id FROM contacts WHERE reference = ")
                    .push_bind(reference.as_str().to_owned())
                    .push(")");
            }
            None => {}
        }
        query
            .push(" ORDER BY created_at, id LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        query
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(CasesError::database("search customers"))?
            .iter()
            .map(|row| customer_row(row)?.into_customer())
            .collect()
    }

    async fn case_detail(&self, key: &CaseKey) -> CasesResult<Option<CaseDetail>> {
        let Some(case) = self.get_case(key).await? else {
            return Ok(None);
        };
        let case_id = text_id(case.id.as_uuid());
        let notes = sqlx::query(
            "SELECT id, case_id, author, body, created_at FROM case_notes WHERE case_id = ?1 ORDER BY created_at, id",
        )
        .bind(&case_id)
        .fetch_all(&self.pool)
        .await
        .map_err(CasesError::database("read case notes"))?
        .iter()
        .map(|row| {
            let error = || CasesError::database("read case notes");
            Ok(CaseNote {
                id: uuid_column(row, "id")?,
                case_id: CaseId::from_uuid(uuid_column(row, "case_id")?),
                author: row.try_get("author").map_err(error())?,
                text: row.try_get("body").map_err(error())?,
                created_at: time_column(row, "created_at")?,
            })
        })
        .collect::<CasesResult<Vec<_>>>()?;
        let history = sqlx::query(
            "SELECT from_status, to_status, reason, actor, at FROM case_history WHERE case_id = ?1 ORDER BY at, id",
        )
        .bind(&case_id)
        .fetch_all(&self.pool)
        .await
        .map_err(CasesError::database("read case history"))?
        .iter()
        .map(|row| {
            let error = || CasesError::database("read case history");
            let status = |column: &str| -> CasesResult<CaseStatus> {
                let text: String = row.try_get(column).map_err(error())?;
                CaseStatus::parse(&text).map_err(CasesError::corrupt("case_history.status"))
            };
            Ok(StatusRecord {
                from: status("from_status")?,
                to: status("to_status")?,
                reason: row.try_get("reason").map_err(error())?,
                actor: row.try_get("actor").map_err(error())?,
                at: time_column(row, "at")?,
            })
        })
        .collect::<CasesResult<Vec<_>>>()?;
        let referrals = case_referrals(&self.pool, &case_id).await?;
        Ok(Some(CaseDetail {
            case,
            notes,
            history,
            referrals,
        }))
    }

    #[tracing::instrument(name = "cases.change_case_status", skip_all, fields(case_id = %change.case_id))]
    async fn change_case_status(&self, change: &StatusChange) -> CasesResult<Option<CaseDetail>> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(CasesError::database("begin"))?;
        let Some(current) = current_case(&mut tx, change.case_id).await? else {
            return Ok(None);
        };
        check_transition(current.status, change.to)?;
        if is_reopen(current.status, change.to) {
            let other: Option<String> = sqlx::query_scalar(
                "SELECT reference FROM cases WHERE customer_id = ?1 AND service = ?2 AND id <> ?3 \
                   AND status IN ('open', 'waiting_on_resident', 'waiting_on_council')",
            )
            .bind(text_id(current.customer_id.as_uuid()))
            .bind(&current.service)
            .bind(text_id(current.id.as_uuid()))
            .fetch_optional(&mut *tx)
            .await
            .map_err(CasesError::database("look up other open case"))?;
            if let Some(reference) = other {
                return Err(CasesError::AnotherOpenCase { reference });
            }
        }
        let update = plan_status_change(
            &current,
            change.to,
            change.reason.clone(),
            change.actor.clone(),
            None,
            Utc::now(),
        );
        write_status_update(&mut tx, change.case_id, update).await?;
        tx.commit().await.map_err(CasesError::database("commit"))?;
        self.case_detail(&CaseKey::Id(change.case_id)).await
    }

    async fn add_case_note(
        &self,
        case_id: CaseId,
        author: &str,
        text: &str,
    ) -> CasesResult<Option<CaseNote>> {
        let note = CaseNote {
            id: Uuid::now_v7(),
            case_id,
            author: author.to_owned(),
            text: text.to_owned(),
            created_at: to_micros(Utc::now()),
        };
        let inserted = sqlx::query(
            "INSERT INTO case_notes (id, case_id, author, body, created_at) \
             SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM cases WHERE id = ?2)",
        )
        .bind(text_id(note.id))
        .bind(text_id(case_id.as_uuid()))
        .bind(&note.author)
        .bind(&note.text)
        .bind(micros(note.created_at))
        .execute(&self.pool)
        .await
        .map_err(CasesError::database("insert case note"))?;
        Ok((inserted.rows_affected() == 1).then_some(note))
    }

    #[tracing::instrument(name = "cases.apply_outcomes", skip_all, fields(batch = batch.len()))]
    async fn apply_outcomes(&self, batch: &[IncomingOutcome]) -> CasesResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let now = to_micros(Utc::now());
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(CasesError::database("begin"))?;
        let seen: Vec<String> = sqlx::query_scalar(
            "SELECT event_id FROM inbox WHERE event_id IN (SELECT value FROM json_each(?1))",
        )
        .bind(json_ids(batch.iter().map(|outcome| outcome.event_id.as_uuid())))
        .fetch_all(&mut *tx)
        .await
        .map_err(CasesError::database("look up applied events"))?;
        let mut skip: std::collections::HashSet<String> = seen.into_iter().collect();
        let mut contact_ids = Vec::new();
        for incoming in batch {
            if !skip.insert(text_id(incoming.event_id.as_uuid())) {
                continue;
            }
            sqlx::query(
                "INSERT INTO contact_outcomes (contact_id, disposition, partner, completed_at, applied) \
                 VALUES (?1, ?2, ?3, ?4, 0) ON CONFLICT (contact_id) DO NOTHING",
            )
            .bind(text_id(incoming.contact_id.as_uuid()))
            .bind(&incoming.outcome.disposition)
            .bind(incoming.outcome.partner.as_deref())
            .bind(micros(to_micros(incoming.outcome.completed_at)))
            .execute(&mut *tx)
            .await
            .map_err(CasesError::database("insert contact outcome"))?;
            sqlx::query("INSERT INTO inbox (event_id, processed_at) VALUES (?1, ?2)")
                .bind(text_id(incoming.event_id.as_uuid()))
                .bind(micros(now))
                .execute(&mut *tx)
                .await
                .map_err(CasesError::database("insert inbox"))?;
            contact_ids.push(incoming.contact_id.as_uuid());
        }
        if contact_ids.is_empty() {
            tx.rollback().await.map_err(CasesError::database("rollback"))?;
            return Ok(());
        }
        apply_pending_outcomes(&mut tx, json_ids(contact_ids.into_iter()), now).await?;
        tx.commit().await.map_err(CasesError::database("commit"))?;
        Ok(())
    }

    async fn match_suggestions(
        &self,
        customer_id: Option<CustomerId>,
        limit: usize,
    ) -> CasesResult<Vec<MatchSuggestion>> {
        let limit = clamp_page(limit, SEARCH_PAGE_MAX);
        sqlx::query(concat!(
            "SELECT ",
            suggestion_columns!(),
            " FROM match_suggestions WHERE status = 'open' \
               AND (?1 IS NULL OR customer_id = ?1 OR candidate_id = ?1) \
             ORDER BY created_at DESC, id DESC LIMIT ?2"
        ))
        .bind(customer_id.map(|id| text_id(id.as_uuid())))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(CasesError::database("list match suggestions"))?
        .iter()
        .map(suggestion)
        .collect()
    }

    async fn dismiss_suggestion(&self, id: Uuid, actor: &str) -> CasesResult<Option<MatchSuggestion>> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(CasesError::database("begin"))?;
        let current = sqlx::query(concat!(
            "SELECT ",
            suggestion_columns!(),
            " FROM match_suggestions WHERE id = ?1"
        ))
        .bind(text_id(id))
        .fetch_optional(&mut *tx)
        .await
        .map_err(CasesError::database("read match suggestion"))?;
        let Some(current) = current.as_ref().map(suggestion).transpose()? else {
            return Ok(None);
        };
        if current.status != SuggestionStatus::Open {
            return Err(CasesError::MergeRefused(format!(
                "the suggestion is already {}",
                current.status.as_str()
            )));
        }
        let row = sqlx::query(concat!(
            "UPDATE match_suggestions SET status = 'dismissed', decided_by = ?2, decided_at = ?3 WHERE id = ?1 RETURNING ",
            suggestion_columns!()
        ))
        .bind(text_id(id))
        .bind(actor)
        .bind(micros(Utc::now()))
        .fetch_one(&mut *tx)
        .await
        .map_err(CasesError::database("dismiss match suggestion"))?;
        tx.commit().await.map_err(CasesError::database("commit"))?;
        suggestion(&row).map(Some)
    }

    #[tracing::instrument(name = "cases.merge_customers", skip_all, fields(survivor_id = %request.survivor_id, merged_id = %request.merged_id))]
    async fn merge_customers(&self, request: &MergeRequest) -> CasesResult<Option<CustomerMerge>> {
        if request.survivor_id == request.merged_id {
            return Err(CasesError::MergeRefused(
                "a customer cannot be merged with itself".to_owned(),
            ));
        }
        let now = to_micros(Utc::now());
        let (survivor, merged) = (
            text_id(request.survivor_id.as_uuid()),
            text_id(request.merged_id.as_uuid()),
        );
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(CasesError::database("begin"))?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            customer_columns!(),
            ", merged_into FROM customers WHERE id IN (?1, ?2)"
        ))
        .bind(&survivor)
        .bind(&merged)
        .fetch_all(&mut *tx)
        .await
        .map_err(CasesError::database("read customers"))?;
        let mut survivor_row = None;
        let mut merged_row = None;
        for row in &rows {
            let merged_into: Option<String> = row
                .try_get("merged_into")
                .map_err(CasesError::database("read customer"))?;
            let customer = customer_row(row)?;
            if let Some(into) = merged_into {
                return Err(CasesError::MergeRefused(format!(
                    "customer {} was merged into {into}",
                    customer.id
                )));
            }
            if customer.id == request.survivor_id {
                survivor_row = Some(customer);
            } else {
                merged_row = Some(customer);
            }
        }
        let (Some(survivor_row), Some(merged_row)) = (survivor_row, merged_row) else {
            return Ok(None);
        };
        let filled: Vec<String> = columns_to_fill(&survivor_row, &merged_row)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let filled_json = json_strings(&filled);
        let merge_id = Uuid::now_v7();
        let merge_text = text_id(merge_id);
        sqlx::query(
            "INSERT INTO customer_merges (id, survivor_id, merged_id, reason, merged_by, merged_at, filled_columns) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(&merge_text)
        .bind(&survivor)
        .bind(&merged)
        .bind(&request.reason)
        .bind(&request.actor)
        .bind(micros(now))
        .bind(&filled_json)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("insert merge"))?;

        let duplicates = sqlx::query(
            "SELECT m.id AS merged_case, s.id AS survivor_case, s.reference AS survivor_reference \
             FROM cases m JOIN cases s ON s.customer_id = ?2 AND s.service = m.service \
                 AND s.status IN ('open', 'waiting_on_resident', 'waiting_on_council') \
             WHERE m.customer_id = ?1 AND m.status IN ('open', 'waiting_on_resident', 'waiting_on_council') \
             ORDER BY m.id",
        )
        .bind(&merged)
        .bind(&survivor)
        .fetch_all(&mut *tx)
        .await
        .map_err(CasesError::database("find duplicate cases"))?;
        for row in duplicates {
            let merged_case = uuid_column(&row, "merged_case")?;
            let survivor_case = uuid_column(&row, "survivor_case")?;
            let survivor_reference: String = row
                .try_get("survivor_reference")
                .map_err(CasesError::database("read duplicate cases"))?;
            sqlx::query(
                "INSERT INTO customer_merge_moves (merge_id, kind, item_id, from_customer, from_case) \
                 SELECT ?1, 'contact', id, customer_id, case_id FROM contacts WHERE case_id = ?2",
            )
            .bind(&merge_text)
            .bind(text_id(merged_case))
            .execute(&mut *tx)
            .await
            .map_err(CasesError::database("record moved contacts"))?;
            sqlx::query("UPDATE contacts SET case_id = ?2, customer_id = ?3 WHERE case_id = ?1")
                .bind(text_id(merged_case))
                .bind(text_id(survivor_case))
                .bind(&survivor)
                .execute(&mut *tx)
                .await
                .map_err(CasesError::database("move contacts"))?;
            let Some(current) = current_case(&mut tx, CaseId::from_uuid(merged_case)).await? else {
                continue;
            };
            sqlx::query(
                "INSERT INTO customer_merge_moves (merge_id, kind, item_id, from_customer, from_status) \
                 VALUES (?1, 'case', ?2, ?3, ?4)",
            )
            .bind(&merge_text)
            .bind(text_id(merged_case))
            .bind(&merged)
            .bind(current.status.as_str())
            .execute(&mut *tx)
            .await
            .map_err(CasesError::database("record closed case"))?;
            let update = plan_status_change(
                &current,
                CaseStatus::Closed,
                format!("customers merged: contacts moved to case {survivor_reference}"),
                request.actor.clone(),
                None,
                now,
            );
            write_status_update(&mut tx, current.id, update).await?;
        }
        sqlx::query(
            "INSERT INTO customer_merge_moves (merge_id, kind, item_id, from_customer, from_case) \
             SELECT ?1, 'contact', id, customer_id, case_id FROM contacts WHERE customer_id = ?2 \
             ON CONFLICT DO NOTHING",
        )
        .bind(&merge_text)
        .bind(&merged)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("record moved contacts"))?;
        sqlx::query(
            "INSERT INTO customer_merge_moves (merge_id, kind, item_id, from_customer) \
             SELECT ?1, 'case', id, customer_id FROM cases WHERE customer_id = ?2 \
             ON CONFLICT DO NOTHING",
        )
        .bind(&merge_text)
        .bind(&merged)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("record moved cases"))?;
        sqlx::query("UPDATE contacts SET customer_id = ?2 WHERE customer_id = ?1")
            .bind(&merged)
            .bind(&survivor)
            .execute(&mut *tx)
            .await
            .map_err(CasesError::database("move contacts"))?;
        sqlx::query("UPDATE cases SET customer_id = ?2 WHERE customer_id = ?1")
            .bind(&merged)
            .bind(&survivor)
            .execute(&mut *tx)
            .await
            .map_err(CasesError::database("move cases"))?;
        sqlx::query(
            "UPDATE customers AS s SET \
                name = CASE WHEN 'name' IN (SELECT value FROM json_each(?3)) THEN m.name ELSE s.name END, \
                name_folded = CASE WHEN 'name' IN (SELECT value FROM json_each(?3)) THEN m.name_folded ELSE s.name_folded END, \
                phone_e164 = CASE WHEN 'phone_e164' IN (SELECT value FROM json_each(?3)) THEN m.phone_e164 ELSE s.phone_e164 END, \
                email = CASE WHEN 'email' IN (SELECT value FROM json_each(?3)) THEN m.email ELSE s.email END, \
                postcode = CASE WHEN 'postcode' IN (SELECT value FROM json_each(?3)) THEN m.postcode ELSE s.postcode END, \
                address_line = CASE WHEN 'address_line' IN (SELECT value FROM json_each(?3)) THEN m.address_line ELSE s.address_line END, \
                uprn = CASE WHEN 'uprn' IN (SELECT value FROM json_each(?3)) THEN m.uprn ELSE s.uprn END \
             FROM customers AS m WHERE s.id = ?1 AND m.id = ?2",
        )
        .bind(&survivor)
        .bind(&merged)
        .bind(&filled_json)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("fill in survivor"))?;
        if let Some(needs) = needs::after_merge(&survivor_row.needs, &merged_row.needs, &request.actor, now) {
            sqlx::query("UPDATE customer_merges SET survivor_needs_before = ?2 WHERE id = ?1")
                .bind(text_id(merge_id))
                .bind(survivor_row.needs.to_json()?)
                .execute(&mut *tx)
                .await
                .map_err(CasesError::database("record survivor's needs"))?;
            set_needs(&mut tx, request.survivor_id, &needs.to_json()?).await?;
        }
        sqlx::query("UPDATE customers SET merged_into = ?2 WHERE id = ?1")
            .bind(&merged)
            .bind(&survivor)
            .execute(&mut *tx)
            .await
            .map_err(CasesError::database("mark customer merged"))?;
        sqlx::query(
            "UPDATE match_suggestions SET status = 'merged', decided_by = ?3, decided_at = ?4 \
             WHERE status = 'open' AND ((customer_id = ?1 AND candidate_id = ?2) OR (customer_id = ?2 AND candidate_id = ?1))",
        )
        .bind(&survivor)
        .bind(&merged)
        .bind(&request.actor)
        .bind(micros(now))
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("close match suggestions"))?;
        let merge = read_merge(&mut tx, merge_id).await?;
        tx.commit().await.map_err(CasesError::database("commit"))?;
        Ok(merge)
    }

    #[tracing::instrument(name = "cases.unmerge_customers", skip_all, fields(merge_id = %merge_id))]
    async fn unmerge_customers(
        &self,
        merge_id: Uuid,
        actor: &str,
        reason: &str,
    ) -> CasesResult<Option<CustomerMerge>> {
        let now = to_micros(Utc::now());
        let merge_text = text_id(merge_id);
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(CasesError::database("begin"))?;
        let Some(merge) = read_merge(&mut tx, merge_id).await? else {
            return Ok(None);
        };
        if merge.unmerged_at.is_some() {
            return Err(CasesError::MergeRefused(
                "the merge was already undone".to_owned(),
            ));
        }
        let (survivor, merged) = (
            text_id(merge.survivor_id.as_uuid()),
            text_id(merge.merged_id.as_uuid()),
        );
        sqlx::query(
            "UPDATE contacts AS c SET customer_id = m.from_customer, case_id = m.from_case \
             FROM customer_merge_moves AS m WHERE m.merge_id = ?1 AND m.kind = 'contact' AND c.id = m.item_id",
        )
        .bind(&merge_text)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("move contacts back"))?;
        let closed = sqlx::query(
            "SELECT item_id, from_status FROM customer_merge_moves \
             WHERE merge_id = ?1 AND kind = 'case' AND from_status IS NOT NULL ORDER BY item_id",
        )
        .bind(&merge_text)
        .fetch_all(&mut *tx)
        .await
        .map_err(CasesError::database("read closed cases"))?;
        sqlx::query(
            "UPDATE cases AS c SET customer_id = m.from_customer \
             FROM customer_merge_moves AS m WHERE m.merge_id = ?1 AND m.kind = 'case' AND c.id = m.item_id",
        )
        .bind(&merge_text)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("move cases back"))?;
        for row in closed {
            let case_id = CaseId::from_uuid(uuid_column(&row, "item_id")?);
            let from_status: String = row
                .try_get("from_status")
                .map_err(CasesError::database("read closed cases"))?;
            let from_status = CaseStatus::parse(&from_status)
                .map_err(CasesError::corrupt("customer_merge_moves.from_status"))?;
            let Some(current) = current_case(&mut tx, case_id).await? else {
                continue;
            };
            if current.status == CaseStatus::Closed {
                let update = plan_status_change(
                    &current,
                    from_status,
                    "customers un-merged: case restored".to_owned(),
                    actor.to_owned(),
                    None,
                    now,
                );
                write_status_update(&mut tx, case_id, update).await?;
            }
        }
        sqlx::query(
            "UPDATE customers AS s SET \
                name = CASE WHEN 'name' IN (SELECT value FROM json_each(?3)) AND s.name IS m.name THEN NULL ELSE s.name END, \
                name_folded = CASE WHEN 'name' IN (SELECT value FROM json_each(?3)) AND s.name IS m.name THEN NULL ELSE s.name_folded END, \
                phone_e164 = CASE WHEN 'phone_e164' IN (SELECT value FROM json_each(?3)) AND s.phone_e164 IS m.phone_e164 THEN NULL ELSE s.phone_e164 END, \
                email = CASE WHEN 'email' IN (SELECT value FROM json_each(?3)) AND s.email IS m.email THEN NULL ELSE s.email END, \
                postcode = CASE WHEN 'postcode' IN (SELECT value FROM json_each(?3)) AND s.postcode IS m.postcode THEN NULL ELSE s.postcode END, \
                address_line = CASE WHEN 'address_line' IN (SELECT value FROM json_each(?3)) AND s.address_line IS m.address_line THEN NULL ELSE s.address_line END, \
                uprn = CASE WHEN 'uprn' IN (SELECT value FROM json_each(?3)) AND s.uprn IS m.uprn THEN NULL ELSE s.uprn END \
             FROM customers AS m WHERE s.id = ?1 AND m.id = ?2",
        )
        .bind(&survivor)
        .bind(&merged)
        .bind(json_strings(&merge.filled_columns))
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("clear filled-in identifiers"))?;
        let before: Option<String> =
            sqlx::query_scalar("SELECT survivor_needs_before FROM customer_merges WHERE id = ?1")
                .bind(text_id(merge_id))
                .fetch_one(&mut *tx)
                .await
                .map_err(CasesError::database("read survivor's needs before the merge"))?;
        if let Some(before) = before
            && let Some(standing) = read_standing(&mut tx, merge.survivor_id).await?
        {
            let restored = needs::after_unmerge(&CustomerNeeds::from_json(&before)?, &standing.needs);
            set_needs(&mut tx, merge.survivor_id, &restored.to_json()?).await?;
        }
        sqlx::query("UPDATE customers SET merged_into = NULL WHERE id = ?1")
            .bind(&merged)
            .execute(&mut *tx)
            .await
            .map_err(CasesError::database("unmark customer merged"))?;
        sqlx::query(
            "UPDATE customer_merges SET unmerged_by = ?2, unmerged_at = ?3, unmerge_reason = ?4 WHERE id = ?1",
        )
        .bind(&merge_text)
        .bind(actor)
        .bind(micros(now))
        .bind(reason)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("record un-merge"))?;
        let merge = read_merge(&mut tx, merge_id).await?;
        tx.commit().await.map_err(CasesError::database("commit"))?;
        Ok(merge)
    }

    async fn customer_merges(&self, customer_id: CustomerId) -> CasesResult<Vec<CustomerMerge>> {
        let mut tx = self.pool.begin().await.map_err(CasesError::database("begin"))?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM customer_merges WHERE survivor_id = ?1 OR merged_id = ?1 ORDER BY merged_at, id",
        )
        .bind(text_id(customer_id.as_uuid()))
        .fetch_all(&mut *tx)
        .await
        .map_err(CasesError::database("list merges"))?;
        let mut merges = Vec::with_capacity(ids.len());
        for id in ids {
            merges.extend(read_merge(&mut tx, parse_uuid("customer_merges.id", &id)?).await?);
        }
        tx.commit().await.map_err(CasesError::database("commit"))?;
        Ok(merges)
    }

    async fn record_reads(&self, reads: &[DataRead]) -> CasesResult<()> {
        if reads.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(CasesError::database("begin"))?;
        for read in reads {
            sqlx::query(
                "INSERT INTO personal_data_reads (id, at, actor, action, customer_id, record_id, purpose) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .bind(text_id(read.id))
            .bind(micros(read.at))
            .bind(&read.actor)
            .bind(&read.action)
            .bind(text_id(read.customer_id.as_uuid()))
            .bind(text_id(read.record_id))
            .bind(&read.purpose)
            .execute(&mut *tx)
            .await
            .map_err(CasesError::database("record reads"))?;
        }
        tx.commit().await.map_err(CasesError::database("commit"))?;
        Ok(())
    }

    async fn reads_of(&self, customer_id: CustomerId, limit: usize) -> CasesResult<Vec<DataRead>> {
        let limit = clamp_page(limit, TIMELINE_PAGE_MAX);
        sqlx::query(
            "SELECT id, at, actor, action, customer_id, record_id, purpose FROM personal_data_reads \
             WHERE customer_id = ?1 ORDER BY at DESC, id DESC LIMIT ?2",
        )
        .bind(text_id(customer_id.as_uuid()))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(CasesError::database("read the read log"))?
        .iter()
        .map(|row| {
            let error = || CasesError::database("read the read log");
            Ok(DataRead {
                id: uuid_column(row, "id")?,
                at: time_column(row, "at")?,
                actor: row.try_get("actor").map_err(error())?,
                action: row.try_get("action").map_err(error())?,
                customer_id: CustomerId::from_uuid(uuid_column(row, "customer_id")?),
                record_id: uuid_column(row, "record_id")?,
                purpose: row.try_get("purpose").map_err(error())?,
            })
        })
        .collect()
    }

    #[tracing::instrument(name = "cases.erase_customer", skip_all, fields(customer_id = %request.customer_id))]
    async fn erase_customer(&self, request: &ErasureRequest) -> CasesResult<Option<Erasure>> {
        let now = to_micros(Utc::now());
        let id = text_id(request.customer_id.as_uuid());
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(CasesError::database("begin"))?;
        let row = sqlx::query(
            "SELECT merged_into, EXISTS (SELECT 1 FROM erasures WHERE customer_id = ?1) AS erased \
             FROM customers WHERE id = ?1",
        )
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(CasesError::database("read customer"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let merged_into: Option<String> = row
            .try_get("merged_into")
            .map_err(CasesError::database("read customer"))?;
        let erased: bool = row
            .try_get("erased")
            .map_err(CasesError::database("read customer"))?;
        if let Some(survivor) = merged_into {
            return Err(CasesError::ErasureRefused(format!(
                "the customer was merged into {survivor}: erase that customer"
            )));
        }
        if erased {
            return Err(CasesError::ErasureRefused(
                "the customer was erased already".to_owned(),
            ));
        }
        // In the same write transaction: no contact can be stored meanwhile.
        if let Some(cutoff) = request.only_if_inactive_since {
            let in_touch: bool = sqlx::query_scalar(concat!(
                "SELECT ",
                in_touch_since!(),
                " FROM customers c WHERE c.id = ?2"
            ))
            .bind(micros(cutoff))
            .bind(&id)
            .fetch_one(&mut *tx)
            .await
            .map_err(CasesError::database("check the customer is inactive"))?;
            if in_touch {
                return Err(CasesError::ErasureRefused(
                    "the resident has been in touch since the retention period began".to_owned(),
                ));
            }
        }
        let steps: [(&str, &'static str); 8] = [
            (
                "UPDATE customer_consents SET statement = ?2, \
                    withdrawal_reason = CASE WHEN withdrawal_reason IS NULL THEN NULL ELSE ?2 END \
                 WHERE customer_id = ?1 OR customer_id IN (SELECT id FROM customers WHERE merged_into = ?1)",
                "erase consents",
            ),
            (
                "UPDATE customers SET name = NULL, name_folded = NULL, phone_e164 = NULL, email = NULL, \
                    postcode = NULL, address_line = NULL, uprn = NULL, needs = '{}' \
                 WHERE id = ?1 OR merged_into = ?1",
                "erase customer",
            ),
            (
                "DELETE FROM case_notes WHERE case_id IN (SELECT id FROM cases WHERE customer_id = ?1)",
                "delete case notes",
            ),
            (
                "DELETE FROM match_suggestions WHERE customer_id = ?1 OR candidate_id = ?1 \
                    OR customer_id IN (SELECT id FROM customers WHERE merged_into = ?1) \
                    OR candidate_id IN (SELECT id FROM customers WHERE merged_into = ?1)",
                "delete match suggestions",
            ),
            (
                "UPDATE case_history SET reason = ?2 WHERE case_id IN (SELECT id FROM cases WHERE customer_id = ?1)",
                "erase case history",
            ),
            (
                "UPDATE referrals SET note = '', \
                    consent_statement = CASE WHEN consent_statement IS NULL THEN NULL ELSE ?2 END, \
                    outcome_note = CASE WHEN outcome_note IS NULL THEN NULL ELSE ?2 END \
                 WHERE case_id IN (SELECT id FROM cases WHERE customer_id = ?1)",
                "erase referrals",
            ),
            (
                "UPDATE customer_merges SET reason = ?2, survivor_needs_before = NULL, \
                    unmerge_reason = CASE WHEN unmerge_reason IS NULL THEN NULL ELSE ?2 END \
                 WHERE survivor_id = ?1 OR merged_id = ?1",
                "erase merges",
            ),
            (
                "UPDATE personal_data_reads SET purpose = ?2 WHERE customer_id = ?1",
                "erase read log",
            ),
        ];
        // SQLite ignores bound values a statement does not use.
        for (statement, operation) in steps {
            sqlx::query(statement)
                .bind(&id)
                .bind(ERASED)
                .execute(&mut *tx)
                .await
                .map_err(CasesError::database(operation))?;
        }
        sqlx::query(concat!(
            "UPDATE contacts SET ",
            clear_contact_content!(),
            ", expired_at = coalesce(expired_at, ?3) WHERE customer_id = ?1"
        ))
        .bind(&id)
        .bind(erased_needs()?)
        .bind(micros(now))
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("erase contacts"))?;
        sqlx::query(
            "INSERT INTO erasures (customer_id, erased_by, erased_at, reason) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(&id)
        .bind(&request.actor)
        .bind(micros(now))
        .bind(&request.reason)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("record erasure"))?;
        tx.commit().await.map_err(CasesError::database("commit"))?;
        Ok(Some(Erasure {
            customer_id: request.customer_id,
            erased_by: request.actor.clone(),
            erased_at: now,
            reason: request.reason.clone(),
        }))
    }

    async fn erasure_of(&self, customer_id: CustomerId) -> CasesResult<Option<Erasure>> {
        let row = sqlx::query("SELECT erased_by, erased_at, reason FROM erasures WHERE customer_id = ?1")
            .bind(text_id(customer_id.as_uuid()))
            .fetch_optional(&self.pool)
            .await
            .map_err(CasesError::database("read erasure"))?;
        row.map(|row| {
            let error = || CasesError::database("read erasure");
            Ok(Erasure {
                customer_id,
                erased_by: row.try_get("erased_by").map_err(error())?,
                erased_at: time_column(&row, "erased_at")?,
                reason: row.try_get("reason").map_err(error())?,
            })
        })
        .transpose()
    }

    async fn statistics(&self) -> CasesResult<CaseStatistics> {
        let mut statistics = CaseStatistics::default();
        for (query, counts) in [
            (CONTACT_STATISTICS, &mut statistics.contacts),
            (CASE_STATISTICS, &mut statistics.cases),
        ] {
            let rows: Vec<(String, String, String, i64)> = sqlx::query_as(query)
                .fetch_all(&self.pool)
                .await
                .map_err(CasesError::database("count for statistics"))?;
            add_counts(counts, rows);
        }
        Ok(statistics)
    }

    #[tracing::instrument(name = "cases.update_customer_needs", skip_all, fields(customer_id = %update.customer_id))]
    async fn update_customer_needs(&self, update: &NeedsUpdate) -> CasesResult<Option<Customer>> {
        let now = to_micros(Utc::now());
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(CasesError::database("begin"))?;
        let Some(standing) = read_standing(&mut tx, update.customer_id).await? else {
            return Ok(None);
        };
        let needs = standing.updated(update, now)?;
        set_needs(&mut tx, update.customer_id, &needs.to_json()?).await?;
        let customer = sqlx::query(concat!(
            "SELECT ",
            customer_columns!(),
            " FROM customers WHERE id = ?1"
        ))
        .bind(text_id(update.customer_id.as_uuid()))
        .fetch_one(&mut *tx)
        .await
        .map_err(CasesError::database("read customer"))?;
        let customer = customer_row(&customer)?.into_customer()?;
        tx.commit().await.map_err(CasesError::database("commit"))?;
        Ok(Some(customer))
    }

    #[tracing::instrument(name = "cases.record_consent", skip_all, fields(customer_id = %consent.customer_id))]
    async fn record_consent(&self, consent: &NewConsent) -> CasesResult<Option<CustomerConsent>> {
        let now = to_micros(Utc::now());
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(CasesError::database("begin"))?;
        let Some(standing) = read_standing(&mut tx, consent.customer_id).await? else {
            return Ok(None);
        };
        standing.check_open()?;
        let recorded = consent.recorded_at(now);
        insert_consent(&mut tx, &recorded).await?;
        tx.commit().await.map_err(CasesError::database("commit"))?;
        Ok(Some(recorded))
    }

    #[tracing::instrument(name = "cases.withdraw_consent", skip_all, fields(consent_id = %withdrawal.consent_id))]
    async fn withdraw_consent(&self, withdrawal: &WithdrawConsent) -> CasesResult<Option<CustomerConsent>> {
        let now = to_micros(Utc::now());
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(CasesError::database("begin"))?;
        let Some(consent) = read_consent(&mut tx, withdrawal.consent_id).await? else {
            return Ok(None);
        };
        let Some(standing) = read_standing(&mut tx, consent.customer_id).await? else {
            return Ok(None);
        };
        needs::check_withdrawable(&consent)?;
        sqlx::query(
            "UPDATE customer_consents SET withdrawn_at = ?3, withdrawn_by = ?4, withdrawal_reason = ?5 \
             WHERE customer_id = ?1 AND purpose = ?2 AND withdrawn_at IS NULL",
        )
        .bind(text_id(consent.customer_id.as_uuid()))
        .bind(consent.purpose.as_str())
        .bind(micros(now))
        .bind(&withdrawal.actor)
        .bind(&withdrawal.reason)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("withdraw consents"))?;
        if let Some(needs) = standing.after_withdrawal(consent.purpose, &withdrawal.actor, now) {
            set_needs(&mut tx, consent.customer_id, &needs.to_json()?).await?;
        }
        let withdrawn = read_consent(&mut tx, withdrawal.consent_id).await?;
        tx.commit().await.map_err(CasesError::database("commit"))?;
        Ok(withdrawn)
    }

    async fn consents_of(&self, customer_id: CustomerId) -> CasesResult<Vec<CustomerConsent>> {
        sqlx::query(concat!(
            "SELECT ",
            consent_columns!(),
            " FROM customer_consents WHERE customer_id = ?1 ORDER BY given_at DESC, id DESC"
        ))
        .bind(text_id(customer_id.as_uuid()))
        .fetch_all(&self.pool)
        .await
        .map_err(CasesError::database("read consents"))?
        .iter()
        .map(consent_row)
        .collect()
    }

    async fn inactive_customers(&self, cutoff: DateTime<Utc>, limit: usize) -> CasesResult<Vec<CustomerId>> {
        let ids: Vec<String> = sqlx::query_scalar(concat!(
            "SELECT c.id FROM customers c \
             WHERE c.merged_into IS NULL AND c.created_at < ?1 \
               AND NOT EXISTS (SELECT 1 FROM erasures e WHERE e.customer_id = c.id) \
               AND NOT ",
            in_touch_since!(),
            " ORDER BY c.id LIMIT ?2"
        ))
        .bind(micros(cutoff))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(CasesError::database("find inactive customers"))?;
        ids.iter()
            .map(|id| parse_uuid("customers.id", id).map(CustomerId::from_uuid))
            .collect()
    }

    #[tracing::instrument(name = "cases.expire", skip_all, fields(category = %category))]
    async fn expire(
        &self,
        category: RetentionCategory,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> CasesResult<u64> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(CasesError::database("begin"))?;
        let affected = match category {
            RetentionCategory::ContactContent => sqlx::query(concat!(
                "UPDATE contacts SET ",
                clear_contact_content!(),
                ", expired_at = ?3 \
                 WHERE expired_at IS NULL AND received_at < ?1 \
                   AND case_id IN (SELECT id FROM cases WHERE status IN ('resolved', 'closed'))"
            ))
            .bind(micros(cutoff))
            .bind(erased_needs()?)
            .bind(micros(now))
            .execute(&mut *tx)
            .await
            .map_err(CasesError::database("expire contact content"))?
            .rows_affected(),
            RetentionCategory::CaseNotes => {
                let due: Vec<String> = sqlx::query_scalar(concat!(
                    "SELECT c.id FROM cases c WHERE c.status IN ('resolved', 'closed') \
                       AND max(c.updated_at, coalesce(c.resolved_at, c.updated_at)) < ?1 AND ",
                    notes_left_to_expire!(),
                    " ORDER BY c.id"
                ))
                .bind(micros(cutoff))
                .bind(EXPIRED)
                .bind(ERASED)
                .fetch_all(&mut *tx)
                .await
                .map_err(CasesError::database("find cases due"))?;
                let steps: [(&str, &'static str); 4] = [
                    (
                        "DELETE FROM case_notes WHERE case_id IN (SELECT value FROM json_each(?1))",
                        "expire case notes",
                    ),
                    (
                        "UPDATE case_history SET reason = ?3 WHERE case_id IN (SELECT value FROM json_each(?1))",
                        "expire case history",
                    ),
                    (
                        "UPDATE referrals SET note = CASE WHEN note = '' THEN '' ELSE ?3 END, \
                            consent_statement = CASE WHEN consent_statement IS NULL THEN NULL ELSE ?3 END, \
                            outcome_note = CASE WHEN outcome_note IS NULL THEN NULL ELSE ?3 END \
                         WHERE case_id IN (SELECT value FROM json_each(?1))",
                        "expire referrals",
                    ),
                    (
                        "UPDATE cases SET notes_expired_at = ?2 WHERE id IN (SELECT value FROM json_each(?1))",
                        "mark cases expired",
                    ),
                ];
                let ids = json_strings(&due);
                // SQLite ignores bound values a statement does not use.
                for (statement, operation) in steps {
                    sqlx::query(statement)
                        .bind(&ids)
                        .bind(micros(now))
                        .bind(EXPIRED)
                        .execute(&mut *tx)
                        .await
                        .map_err(CasesError::database(operation))?;
                }
                due.len() as u64
            }
            RetentionCategory::ReadLog => sqlx::query("DELETE FROM personal_data_reads WHERE at < ?1")
                .bind(micros(cutoff))
                .execute(&mut *tx)
                .await
                .map_err(CasesError::database("expire read log"))?
                .rows_affected(),
            RetentionCategory::InactiveCustomers | RetentionCategory::IntakeContacts => 0,
        };
        tx.commit().await.map_err(CasesError::database("commit"))?;
        Ok(affected)
    }

    async fn record_retention_run(&self, run: &RetentionRun) -> CasesResult<()> {
        sqlx::query(
            "INSERT INTO retention_runs (id, category, ran_at, cutoff, affected) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(text_id(Uuid::now_v7()))
        .bind(run.category.as_str())
        .bind(micros(run.ran_at))
        .bind(micros(run.cutoff))
        .bind(i64::try_from(run.affected).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(CasesError::database("record retention run"))?;
        Ok(())
    }

    async fn retention_runs(&self, limit: usize) -> CasesResult<Vec<RetentionRun>> {
        sqlx::query(
            "SELECT category, ran_at, cutoff, affected FROM retention_runs ORDER BY ran_at DESC, id DESC LIMIT ?1",
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(CasesError::database("read retention runs"))?
        .iter()
        .map(|row| {
            let category: String = row
                .try_get("category")
                .map_err(CasesError::database("read retention runs"))?;
            let affected: i64 = row
                .try_get("affected")
                .map_err(CasesError::database("read retention runs"))?;
            retention_run(
                &category,
                time_column(row, "ran_at")?,
                time_column(row, "cutoff")?,
                affected,
            )
        })
        .collect()
    }

    async fn check(&self) -> CasesResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(CasesError::database("check"))?;
        Ok(())
    }

    async fn contact_count(&self) -> CasesResult<u64> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts")
            .fetch_one(&self.pool)
            .await
            .map_err(CasesError::database("count contacts"))?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    #[tracing::instrument(name = "cases.make_referral", skip_all, fields(case_id = %referral.case_id, partner_id = %referral.partner_id))]
    async fn make_referral(&self, referral: &NewReferral) -> CasesResult<Option<Referral>> {
        let partner = check_referral(self.rules.partners(), referral)?;
        // IMMEDIATE, so the case cannot be closed between the check and the insert.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(CasesError::database("begin"))?;
        let Some(case) = current_case(&mut tx, referral.case_id).await? else {
            return Ok(None);
        };
        let planned = plan_referral(&case, referral, partner, Utc::now())?;
        insert_referral(&mut tx, &planned.referral).await?;
        insert_outbox(&mut tx, vec![planned.event]).await?;
        tx.commit().await.map_err(CasesError::database("commit"))?;
        Ok(Some(planned.referral))
    }

    #[tracing::instrument(name = "cases.record_referral_outcome", skip_all, fields(referral_id = %outcome.referral_id))]
    async fn record_referral_outcome(&self, outcome: &ReferralOutcome) -> CasesResult<Option<Referral>> {
        // IMMEDIATE, so two reports of the same referral are checked one after the other.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(CasesError::database("begin"))?;
        let row = sqlx::query(
            "SELECT id, case_id, partner_id, kind, consent_statement, consent_given_at, note, made_by, made_at, \
                    status, outcome_note, outcome_reported_by, outcome_reported_at \
             FROM referrals WHERE id = ?1",
        )
        .bind(text_id(outcome.referral_id.as_uuid()))
        .fetch_optional(&mut *tx)
        .await
        .map_err(CasesError::database("read referral for update"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let planned = plan_outcome(&referral(&row)?, outcome, Utc::now())?;
        let updated = &planned.referral;
        sqlx::query(
            "UPDATE referrals SET status = ?2, outcome_note = ?3, outcome_reported_by = ?4, outcome_reported_at = ?5 \
             WHERE id = ?1",
        )
        .bind(text_id(updated.id.as_uuid()))
        .bind(updated.status.as_str())
        .bind(updated.outcome_note.as_deref())
        .bind(updated.outcome_reported_by.as_deref())
        .bind(updated.outcome_reported_at.map(micros))
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("update referral outcome"))?;
        insert_outbox(&mut tx, vec![planned.event]).await?;
        tx.commit().await.map_err(CasesError::database("commit"))?;
        Ok(Some(planned.referral))
    }
}

#[async_trait]
impl OutboxStore for SqliteCasesStore {
    async fn fetch_unsent(&self, limit: usize) -> Result<Vec<OutboxRecord>, BoxError> {
        let rows = sqlx::query("SELECT event_id, body, traceparent FROM outbox ORDER BY event_id LIMIT ?1")
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(CasesError::database("fetch outbox"))?;
        rows.iter()
            .map(|row| {
                let error = || CasesError::database("read outbox");
                Ok(OutboxRecord {
                    event_id: uuid_column(row, "event_id")?,
                    body: row.try_get("body").map_err(error())?,
                    traceparent: row.try_get("traceparent").map_err(error())?,
                })
            })
            .collect::<CasesResult<_>>()
            .map_err(Into::into)
    }

    async fn delete_sent(&self, ids: &[Uuid]) -> Result<(), BoxError> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query("DELETE FROM outbox WHERE event_id IN (SELECT value FROM json_each(?1))")
            .bind(json_ids(ids.iter().copied()))
            .execute(&self.pool)
            .await
            .map_err(CasesError::database("delete outbox"))?;
        Ok(())
    }
}

async fn insert_referral(tx: &mut Transaction<'static, Sqlite>, referral: &Referral) -> CasesResult<()> {
    sqlx::query(
        "INSERT INTO referrals (id, case_id, partner_id, kind, consent_statement, consent_given_at, note, \
                                made_by, made_at, status) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .bind(text_id(referral.id.as_uuid()))
    .bind(text_id(referral.case_id.as_uuid()))
    .bind(referral.partner_id.as_str())
    .bind(referral.kind.as_str())
    .bind(
        referral
            .consent
            .as_ref()
            .map(|consent| consent.statement.as_str()),
    )
    .bind(referral.consent.as_ref().map(|consent| micros(consent.given_at)))
    .bind(&referral.note)
    .bind(&referral.made_by)
    .bind(micros(referral.made_at))
    .bind(referral.status.as_str())
    .execute(&mut **tx)
    .await
    .map_err(CasesError::database("insert referral"))?;
    Ok(())
}

/// The referrals of a case (`case_id` as stored), oldest first.
async fn case_referrals(pool: &SqlitePool, case_id: &str) -> CasesResult<Vec<Referral>> {
    sqlx::query(
        "SELECT id, case_id, partner_id, kind, consent_statement, consent_given_at, note, made_by, made_at, \
                status, outcome_note, outcome_reported_by, outcome_reported_at \
         FROM referrals WHERE case_id = ?1 ORDER BY made_at, id",
    )
    .bind(case_id)
    .fetch_all(pool)
    .await
    .map_err(CasesError::database("read referrals"))?
    .iter()
    .map(referral)
    .collect()
}

fn referral(row: &SqliteRow) -> CasesResult<Referral> {
    let error = || CasesError::database("read referral");
    StoredReferral {
        id: ReferralId::from_uuid(uuid_column(row, "id")?),
        case_id: CaseId::from_uuid(uuid_column(row, "case_id")?),
        partner_id: row.try_get("partner_id").map_err(error())?,
        kind: row.try_get("kind").map_err(error())?,
        consent_statement: row.try_get("consent_statement").map_err(error())?,
        consent_given_at: optional_time_column(row, "consent_given_at")?,
        note: row.try_get("note").map_err(error())?,
        made_by: row.try_get("made_by").map_err(error())?,
        made_at: time_column(row, "made_at")?,
        status: row.try_get("status").map_err(error())?,
        outcome_note: row.try_get("outcome_note").map_err(error())?,
        outcome_reported_by: row.try_get("outcome_reported_by").map_err(error())?,
        outcome_reported_at: optional_time_column(row, "outcome_reported_at")?,
    }
    .into_referral()
}
