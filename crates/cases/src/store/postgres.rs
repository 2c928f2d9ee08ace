//! The case store on PostgreSQL (distributed mode).
//!
//! Tables live in the `cases` schema; the pool sets `search_path` to it, so
//! the SQL names tables unqualified and `_sqlx_migrations` is this service's
//! own. A batch is applied with a fixed number of set-based statements
//! (arrays bound as parameters and `unnest`ed), whatever its size, so the
//! round trips per contact fall as batches grow.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row, Transaction};
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
    identity_lock_keys,
};
use crate::referrals::{
    NewReferral, Referral, ReferralId, ReferralOutcome, check_referral, plan_outcome, plan_referral,
};
use crate::retention::{EXPIRED, RetentionRun};
use crate::store::{
    CASE_STATISTICS, CONTACT_STATISTICS, CasesStore, StoredCase, StoredConsent, StoredContact,
    StoredReferral, add_counts, assemble_timeline, clamp_page, erased_needs, retention_run,
};

// Column lists as macros so `concat!` builds each statement as one literal:
// SQL here is never formatted at run time.
macro_rules! customer_columns {
    () => {
        "id, name, phone_e164, email, postcode, address_line, uprn, created_at, needs::text AS needs"
    };
}
/// Whether customer `c` has been in touch since the time bound first
/// (`$1`): a contact since then, or a case still open. What keeps a
/// resident from the retention schedule's erasure.
macro_rules! in_touch_since {
    () => {
        "(EXISTS (SELECT 1 FROM cases k WHERE k.customer_id = c.id \
                  AND k.status IN ('open', 'waiting_on_resident', 'waiting_on_council')) \
          OR EXISTS (SELECT 1 FROM contacts k WHERE k.customer_id = c.id AND k.received_at >= $1))"
    };
}
/// What a contact keeps of what the resident said once it is erased or
/// expired: nothing (the erased needs bound as $2), and of its origin only the
/// council's own facts (office, number dialled, form).
macro_rules! clear_contact_content {
    () => {
        "summary = '', details = '{}'::jsonb, needs = $2::jsonb, \
         origin = origin - 'caller_number' - 'call_id' - 'page_url' - 'desk'"
    };
}
/// A case `c` still holding text the `case-notes` category removes: a
/// note, or a history reason or referral text that is neither empty nor
/// already replaced by [`EXPIRED`] ($2) or [`ERASED`] ($3). Written
/// after an earlier run (a note on a resolved case, a partner's late
/// report), it is removed in its turn.
macro_rules! notes_left_to_expire {
    () => {
        "(EXISTS (SELECT 1 FROM case_notes n WHERE n.case_id = c.id) \
          OR EXISTS (SELECT 1 FROM case_history h WHERE h.case_id = c.id AND h.reason NOT IN ('', $2, $3)) \
          OR EXISTS (SELECT 1 FROM referrals r WHERE r.case_id = c.id \
                     AND (r.note NOT IN ('', $2, $3) OR r.consent_statement NOT IN ($2, $3) \
                          OR r.outcome_note NOT IN ($2, $3))))"
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
                k.details::text AS details, k.needs::text AS needs, k.origin::text AS origin, \
                k.received_at, k.stored_at, k.repeat_contact, \
                o.disposition, o.partner, o.completed_at \
         FROM contacts k LEFT JOIN contact_outcomes o ON o.contact_id = k.id"
    };
}

/// The schema that holds this service's tables.
pub const SCHEMA: &str = "cases";

/// How often an erasure starts again when batches keep adding identifiers to
/// the resident between its read and its locks; each round holds more.
const ERASURE_LOCK_ATTEMPTS: u32 = 5;

/// The case store on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgCasesStore {
    pool: PgPool,
    rules: Arc<CaseRules>,
}

impl PgCasesStore {
    /// Connects to `database_url` with `search_path` set to [`SCHEMA`] and
    /// brings the schema up to date (creating it first if needed).
    pub async fn connect(database_url: &str) -> CasesResult<Self> {
        let options = PgConnectOptions::from_str(database_url)
            .map_err(CasesError::database("parse url"))?
            .options([("search_path", SCHEMA)]);
        let pool = PgPoolOptions::new()
            // The consumer holds one connection per batch and gRPC reads a few
            // more; PostgreSQL is shared with the other services.
            .max_connections(10)
            // Fail fast when the database is away, so the consumer backs off
            // and the gRPC caller gets UNAVAILABLE instead of hanging.
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(CasesError::database("connect"))?;
        let store = PgCasesStore {
            pool,
            rules: Arc::new(CaseRules::embedded()),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The same store following `rules` (the council's catalogue, calendar
    /// and follow-up window) instead of the shipped ones.
    pub fn with_rules(mut self, rules: CaseRules) -> Self {
        self.rules = Arc::new(rules);
        self
    }

    /// Applies pending migrations. Safe to run from several processes at once:
    /// the migrator holds an advisory lock while it works, and creates the
    /// schema under that lock.
    pub async fn migrate(&self) -> CasesResult<()> {
        let mut migrator = sqlx::migrate!("migrations/postgres");
        migrator.create_schema(SCHEMA);
        migrator.run(&self.pool).await.map_err(CasesError::Migrate)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Begins an erasure of customer `id`: takes the advisory locks of its
    /// identifiers, as a batch that could match it does, then its row lock.
    /// Returns the row (`merged_into`, `erased`), or `None` when there is no
    /// such customer. A batch that filled in another identifier between the
    /// first read and the locks means starting again, holding that one too.
    async fn lock_for_erasure(
        &self,
        id: Uuid,
    ) -> CasesResult<Option<(Transaction<'static, Postgres>, PgRow)>> {
        const IDENTIFIERS: &str = "SELECT phone_e164, email, uprn FROM customers WHERE id = $1";
        let keys_of = |row: &PgRow| -> CasesResult<Vec<String>> {
            let error = || CasesError::database("read customer identifiers");
            let phone: Option<String> = row.try_get("phone_e164").map_err(error())?;
            let email: Option<String> = row.try_get("email").map_err(error())?;
            let uprn: Option<String> = row.try_get("uprn").map_err(error())?;
            let mut keys = identity_lock_keys(phone.as_deref(), email.as_deref(), uprn.as_deref());
            keys.sort();
            Ok(keys)
        };
        for _attempt in 0..ERASURE_LOCK_ATTEMPTS {
            let mut tx = self.pool.begin().await.map_err(CasesError::database("begin"))?;
            let Some(row) = sqlx::query(IDENTIFIERS)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(CasesError::database("read customer identifiers"))?
            else {
                return Ok(None);
            };
            let keys = keys_of(&row)?;
            lock_keys(&mut tx, &keys).await?;
            let row = sqlx::query(
                "SELECT merged_into, EXISTS (SELECT 1 FROM erasures WHERE customer_id = $1) AS erased, \
                        phone_e164, email, uprn \
                 FROM customers WHERE id = $1 FOR UPDATE",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(CasesError::database("lock customer"))?;
            let Some(row) = row else {
                return Ok(None);
            };
            if keys_of(&row)? == keys {
                return Ok(Some((tx, row)));
            }
            tx.rollback().await.map_err(CasesError::database("rollback"))?;
        }
        Err(CasesError::ErasureRefused(
            "the resident's record kept changing while it was being erased: try again".to_owned(),
        ))
    }

    async fn snapshot(
        tx: &mut Transaction<'static, Postgres>,
        keys: &LookupKeys,
        resolved_since: DateTime<Utc>,
        thresholds: MatchThresholds,
    ) -> CasesResult<Snapshot> {
        let mut snapshot = Snapshot::default();
        let event_ids: Vec<Uuid> = keys.event_ids.iter().map(EventId::as_uuid).collect();
        let contact_ids: Vec<Uuid> = keys.contact_ids.iter().map(ContactId::as_uuid).collect();
        let seen = sqlx::query(
            "SELECT true AS is_event, event_id AS id FROM inbox WHERE event_id = ANY($1) \
             UNION ALL \
             SELECT false, id FROM contacts WHERE id = ANY($2)",
        )
        .bind(&event_ids)
        .bind(&contact_ids)
        .fetch_all(&mut **tx)
        .await
        .map_err(CasesError::database("look up applied events"))?;
        for row in seen {
            let id: Uuid = row
                .try_get("id")
                .map_err(CasesError::database("read applied events"))?;
            if row
                .try_get("is_event")
                .map_err(CasesError::database("read applied events"))?
            {
                snapshot.applied_events.insert(EventId::from_uuid(id));
            } else {
                snapshot.stored_contacts.insert(ContactId::from_uuid(id));
            }
        }

        if !keys.has_identifiers() {
            return Ok(snapshot);
        }
        snapshot.customers = sqlx::query(concat!(
            "SELECT ",
            customer_columns!(),
            " FROM customers WHERE merged_into IS NULL \
               AND (phone_e164 = ANY($1) OR email = ANY($2) OR uprn = ANY($3) OR postcode = ANY($4))"
        ))
        .bind(&keys.phones)
        .bind(&keys.emails)
        .bind(&keys.uprns)
        .bind(&keys.postcodes)
        .fetch_all(&mut **tx)
        .await
        .map_err(CasesError::database("look up customers"))?
        .iter()
        .map(customer_row)
        .collect::<CasesResult<_>>()?;
        if snapshot.customers.is_empty() {
            return Ok(snapshot);
        }

        let customer_ids: Vec<Uuid> = keys
            .customers_that_may_match(&snapshot.customers, thresholds)
            .iter()
            .map(CustomerId::as_uuid)
            .collect();
        if customer_ids.is_empty() {
            return Ok(snapshot);
        }
        let rows = sqlx::query(
            "SELECT c.id, c.reference, c.customer_id, c.service, c.status, c.opened_at, c.updated_at, \
                    c.resolved_at, (SELECT count(*) FROM contacts k WHERE k.case_id = c.id) AS contact_count \
             FROM cases c \
             WHERE c.customer_id = ANY($1) \
               AND (c.status IN ('open', 'waiting_on_resident', 'waiting_on_council') \
                    OR (c.status = 'resolved' AND c.resolved_at >= $2))",
        )
        .bind(&customer_ids)
        .bind(resolved_since)
        .fetch_all(&mut **tx)
        .await
        .map_err(CasesError::database("look up open cases"))?;
        for row in rows {
            let error = || CasesError::database("read open cases");
            let contact_count: i64 = row.try_get("contact_count").map_err(error())?;
            let status: String = row.try_get("status").map_err(error())?;
            snapshot.open_cases.push(OpenCaseRow {
                id: CaseId::from_uuid(row.try_get("id").map_err(error())?),
                reference: row.try_get("reference").map_err(error())?,
                customer_id: CustomerId::from_uuid(row.try_get("customer_id").map_err(error())?),
                service: row.try_get("service").map_err(error())?,
                status: CaseStatus::parse(&status).map_err(CasesError::corrupt("cases.status"))?,
                opened_at: row.try_get("opened_at").map_err(error())?,
                updated_at: row.try_get("updated_at").map_err(error())?,
                resolved_at: row.try_get("resolved_at").map_err(error())?,
                contact_count: u32::try_from(contact_count).unwrap_or(u32::MAX),
            });
        }
        Ok(snapshot)
    }

    async fn write(tx: &mut Transaction<'static, Postgres>, plan: &mut BatchPlan) -> CasesResult<()> {
        if !plan.new_customers.is_empty() {
            let columns = CustomerColumns::from_rows(&plan.new_customers);
            let needs = plan
                .new_customers
                .iter()
                .map(|row| row.needs.to_json())
                .collect::<CasesResult<Vec<String>>>()?;
            sqlx::query(
                "INSERT INTO customers (id, name, name_folded, phone_e164, email, postcode, address_line, uprn, created_at, needs) \
                 SELECT u.id, u.name, u.name_folded, u.phone_e164, u.email, u.postcode, u.address_line, u.uprn, u.created_at, u.needs::jsonb \
                 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::text[]) \
                    AS u(id, name, name_folded, phone_e164, email, postcode, address_line, uprn, created_at, needs)",
            )
            .bind(&columns.ids)
            .bind(&columns.names)
            .bind(&columns.names_folded)
            .bind(&columns.phones)
            .bind(&columns.emails)
            .bind(&columns.postcodes)
            .bind(&columns.address_lines)
            .bind(&columns.uprns)
            .bind(&columns.created_at)
            .bind(&needs)
            .execute(&mut **tx)
            .await
            .map_err(CasesError::database("insert customers"))?;
        }

        if !plan.filled_customers.is_empty() {
            let columns = CustomerColumns::from_rows(&plan.filled_customers);
            // COALESCE keeps whatever the row already has: details are filled
            // in, never overwritten, even if another writer got there first.
            sqlx::query(
                "UPDATE customers AS c SET \
                    name = COALESCE(c.name, u.name), \
                    name_folded = COALESCE(c.name_folded, u.name_folded), \
                    phone_e164 = COALESCE(c.phone_e164, u.phone_e164), \
                    email = COALESCE(c.email, u.email), \
                    postcode = COALESCE(c.postcode, u.postcode), \
                    address_line = COALESCE(c.address_line, u.address_line), \
                    uprn = COALESCE(c.uprn, u.uprn) \
                 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) \
                    AS u(id, name, name_folded, phone_e164, email, postcode, address_line, uprn) \
                 WHERE c.id = u.id",
            )
            .bind(&columns.ids)
            .bind(&columns.names)
            .bind(&columns.names_folded)
            .bind(&columns.phones)
            .bind(&columns.emails)
            .bind(&columns.postcodes)
            .bind(&columns.address_lines)
            .bind(&columns.uprns)
            .execute(&mut **tx)
            .await
            .map_err(CasesError::database("fill in customers"))?;
        }

        Self::write_learned_needs(tx, plan).await?;
        if !plan.consents.is_empty() {
            insert_consents(tx, &plan.consents).await?;
        }

        Self::insert_cases(tx, plan).await?;

        let touched = plan.touched_cases();
        if !touched.is_empty() {
            let ids: Vec<Uuid> = touched.iter().map(|case| case.id.as_uuid()).collect();
            let updated_at: Vec<DateTime<Utc>> = touched.iter().map(|case| case.updated_at).collect();
            let reopened: Vec<bool> = touched.iter().map(|case| case.reopened).collect();
            sqlx::query(
                "UPDATE cases AS c SET updated_at = GREATEST(c.updated_at, u.updated_at), \
                    status = CASE WHEN u.reopened THEN 'open' ELSE c.status END, \
                    resolved_at = CASE WHEN u.reopened THEN NULL ELSE c.resolved_at END, \
                    outcome = CASE WHEN u.reopened THEN NULL ELSE c.outcome END, \
                    reopened_count = c.reopened_count + u.reopened::int \
                 FROM unnest($1::uuid[], $2::timestamptz[], $3::bool[]) AS u(id, updated_at, reopened) \
                 WHERE c.id = u.id",
            )
            .bind(&ids)
            .bind(&updated_at)
            .bind(&reopened)
            .execute(&mut **tx)
            .await
            .map_err(CasesError::database("update cases"))?;
        }
        if !plan.history.is_empty() {
            insert_history(tx, &plan.history).await?;
        }

        if !plan.contacts.is_empty() {
            let contacts = &plan.contacts;
            let ids: Vec<Uuid> = contacts.iter().map(|row| row.id.as_uuid()).collect();
            let references: Vec<&str> = contacts.iter().map(|row| row.reference.as_str()).collect();
            let customer_ids: Vec<Uuid> = contacts.iter().map(|row| row.customer_id.as_uuid()).collect();
            let case_ids: Vec<Uuid> = contacts.iter().map(|row| row.case_id.as_uuid()).collect();
            let channels: Vec<&str> = contacts.iter().map(|row| row.channel).collect();
            let services: Vec<&str> = contacts.iter().map(|row| row.service.as_str()).collect();
            let summaries: Vec<&str> = contacts.iter().map(|row| row.summary.as_str()).collect();
            let details: Vec<&str> = contacts.iter().map(|row| row.details.as_str()).collect();
            let needs: Vec<&str> = contacts.iter().map(|row| row.needs.as_str()).collect();
            let origins: Vec<&str> = contacts.iter().map(|row| row.origin.as_str()).collect();
            let received_at: Vec<DateTime<Utc>> = contacts.iter().map(|row| row.received_at).collect();
            let repeat: Vec<bool> = contacts.iter().map(|row| row.repeat_contact).collect();
            sqlx::query(
                "INSERT INTO contacts (id, reference, customer_id, case_id, channel, service, summary, details, needs, origin, received_at, stored_at, repeat_contact) \
                 SELECT u.id, u.reference, u.customer_id, u.case_id, u.channel, u.service, u.summary, \
                        u.details::jsonb, u.needs::jsonb, u.origin::jsonb, u.received_at, $12, u.repeat_contact \
                 FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], \
                             $8::text[], $9::text[], $10::text[], $11::timestamptz[], $13::bool[]) \
                    AS u(id, reference, customer_id, case_id, channel, service, summary, details, needs, origin, received_at, repeat_contact)",
            )
            .bind(&ids)
            .bind(&references)
            .bind(&customer_ids)
            .bind(&case_ids)
            .bind(&channels)
            .bind(&services)
            .bind(&summaries)
            .bind(&details)
            .bind(&needs)
            .bind(&origins)
            .bind(&received_at)
            .bind(plan.now)
            .bind(&repeat)
            .execute(&mut **tx)
            .await
            .map_err(CasesError::database("insert contacts"))?;
        }

        let suggestions = plan.distinct_suggestions();
        if !suggestions.is_empty() {
            let ids: Vec<Uuid> = suggestions.iter().map(|row| row.id).collect();
            let customer_ids: Vec<Uuid> = suggestions.iter().map(|row| row.customer_id.as_uuid()).collect();
            let candidate_ids: Vec<Uuid> = suggestions.iter().map(|row| row.candidate_id.as_uuid()).collect();
            let contact_ids: Vec<Uuid> = suggestions.iter().map(|row| row.contact_id.as_uuid()).collect();
            let confidence: Vec<i16> = suggestions.iter().map(|row| i16::from(row.confidence)).collect();
            // Arrays of arrays must be rectangular in PostgreSQL: signals go
            // as one comma-separated text per row and are split back.
            let signals: Vec<String> = suggestions.iter().map(|row| row.signals.join(",")).collect();
            sqlx::query(
                "INSERT INTO match_suggestions (id, customer_id, candidate_id, contact_id, confidence, signals, status, created_at) \
                 SELECT u.id, u.customer_id, u.candidate_id, u.contact_id, u.confidence, \
                        string_to_array(u.signals, ','), 'open', $7 \
                 FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::int2[], $6::text[]) \
                    AS u(id, customer_id, candidate_id, contact_id, confidence, signals) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&ids)
            .bind(&customer_ids)
            .bind(&candidate_ids)
            .bind(&contact_ids)
            .bind(&confidence)
            .bind(&signals)
            .bind(plan.now)
            .execute(&mut **tx)
            .await
            .map_err(CasesError::database("insert match suggestions"))?;
        }

        if !plan.inbox.is_empty() {
            let event_ids: Vec<Uuid> = plan.inbox.iter().map(EventId::as_uuid).collect();
            sqlx::query("INSERT INTO inbox (event_id, processed_at) SELECT unnest($1::uuid[]), $2")
                .bind(&event_ids)
                .bind(plan.now)
                .execute(&mut **tx)
                .await
                .map_err(CasesError::database("insert inbox"))?;
        }

        insert_outbox(tx, &plan.outbox()).await
    }

    /// Adds the needs contacts stated to existing customers' records, read
    /// again under a row lock so a change staff made meanwhile is kept.
    async fn write_learned_needs(
        tx: &mut Transaction<'static, Postgres>,
        plan: &BatchPlan,
    ) -> CasesResult<()> {
        let ids: Vec<Uuid> = plan.learned_customers().iter().map(CustomerId::as_uuid).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let current = sqlx::query_as::<_, (Uuid, String)>(
            "SELECT id, needs::text FROM customers WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        )
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await
        .map_err(CasesError::database("lock customers' needs"))?
        .into_iter()
        .map(|(id, needs)| Ok((CustomerId::from_uuid(id), CustomerNeeds::from_json(&needs)?)))
        .collect::<CasesResult<Vec<_>>>()?;
        let (ids, needs): (Vec<Uuid>, Vec<String>) = plan
            .relearn(current)?
            .into_iter()
            .map(|(id, needs)| (id.as_uuid(), needs))
            .unzip();
        sqlx::query(
            "UPDATE customers AS c SET needs = u.needs::jsonb \
             FROM unnest($1::uuid[], $2::text[]) AS u(id, needs) WHERE c.id = u.id",
        )
        .bind(&ids)
        .bind(&needs)
        .execute(&mut **tx)
        .await
        .map_err(CasesError::database("update customers' needs"))?;
        Ok(())
    }

    /// Inserts the plan's new cases. A reference that collides with an
    /// existing one is skipped by `ON CONFLICT`, regenerated, and inserted
    /// again; any other conflict (two writers opening the same case) fails the
    /// batch, to be retried.
    async fn insert_cases(tx: &mut Transaction<'static, Postgres>, plan: &mut BatchPlan) -> CasesResult<()> {
        let mut pending = plan.new_cases();
        for _attempt in 0..REFERENCE_ATTEMPTS {
            if pending.is_empty() {
                return Ok(());
            }
            let ids: Vec<Uuid> = pending.iter().map(|row| row.id.as_uuid()).collect();
            let references: Vec<&str> = pending.iter().map(|row| row.reference.as_str()).collect();
            let customer_ids: Vec<Uuid> = pending.iter().map(|row| row.customer_id.as_uuid()).collect();
            let services: Vec<&str> = pending.iter().map(|row| row.service.as_str()).collect();
            let statuses: Vec<&str> = pending.iter().map(|row| row.status.as_str()).collect();
            let opened_at: Vec<DateTime<Utc>> = pending.iter().map(|row| row.opened_at).collect();
            let updated_at: Vec<DateTime<Utc>> = pending.iter().map(|row| row.updated_at).collect();
            let due_at: Vec<Option<DateTime<Utc>>> = pending.iter().map(|row| row.due_at).collect();
            let inserted: HashSet<Uuid> = sqlx::query_scalar::<_, Uuid>(
                "INSERT INTO cases (id, reference, customer_id, service, status, opened_at, updated_at, due_at) \
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[], $8::timestamptz[]) \
                 ON CONFLICT (reference) DO NOTHING \
                 RETURNING id",
            )
            .bind(&ids)
            .bind(&references)
            .bind(&customer_ids)
            .bind(&services)
            .bind(&statuses)
            .bind(&opened_at)
            .bind(&updated_at)
            .bind(&due_at)
            .fetch_all(&mut **tx)
            .await
            .map_err(CasesError::database("insert cases"))?
            .into_iter()
            .collect();
            let collided: Vec<CaseId> = pending
                .iter()
                .map(|row| row.id)
                .filter(|id| !inserted.contains(&id.as_uuid()))
                .collect();
            for id in &collided {
                tracing::info!(case_id = %id, "case reference collided, regenerating");
                plan.regenerate_reference(*id);
            }
            pending = plan
                .new_cases()
                .into_iter()
                .filter(|row| collided.contains(&row.id))
                .collect();
        }
        if pending.is_empty() {
            Ok(())
        } else {
            Err(CasesError::ReferenceCollisions {
                attempts: REFERENCE_ATTEMPTS,
            })
        }
    }

    async fn case_contact_ids(&self, case_ids: &[Uuid]) -> CasesResult<HashMap<Uuid, Vec<ContactId>>> {
        let mut by_case: HashMap<Uuid, Vec<ContactId>> = HashMap::new();
        if case_ids.is_empty() {
            return Ok(by_case);
        }
        let rows = sqlx::query(
            "SELECT case_id, id FROM contacts WHERE case_id = ANY($1) ORDER BY case_id, received_at, id",
        )
        .bind(case_ids)
        .fetch_all(&self.pool)
        .await
        .map_err(CasesError::database("read case contacts"))?;
        for row in rows {
            let case_id: Uuid = row
                .try_get("case_id")
                .map_err(CasesError::database("read case contacts"))?;
            let id: Uuid = row
                .try_get("id")
                .map_err(CasesError::database("read case contacts"))?;
            by_case.entry(case_id).or_default().push(ContactId::from_uuid(id));
        }
        Ok(by_case)
    }

    async fn cases_with_contacts(&self, rows: Vec<PgRow>) -> CasesResult<Vec<Case>> {
        let stored: Vec<StoredCase> = rows.iter().map(stored_case).collect::<CasesResult<_>>()?;
        let ids: Vec<Uuid> = stored.iter().map(|case| case.id.as_uuid()).collect();
        let mut contact_ids = self.case_contact_ids(&ids).await?;
        stored
            .into_iter()
            .map(|case| {
                let contacts = contact_ids.remove(&case.id.as_uuid()).unwrap_or_default();
                case.into_case(contacts)
            })
            .collect()
    }
}

/// Columns of customer rows, for binding as arrays.
struct CustomerColumns<'a> {
    ids: Vec<Uuid>,
    names: Vec<Option<&'a str>>,
    names_folded: Vec<Option<String>>,
    phones: Vec<Option<&'a str>>,
    emails: Vec<Option<&'a str>>,
    postcodes: Vec<Option<&'a str>>,
    address_lines: Vec<Option<&'a str>>,
    uprns: Vec<Option<&'a str>>,
    created_at: Vec<DateTime<Utc>>,
}

impl<'a> CustomerColumns<'a> {
    fn from_rows(rows: &'a [CustomerRow]) -> Self {
        CustomerColumns {
            ids: rows.iter().map(|row| row.id.as_uuid()).collect(),
            names: rows.iter().map(|row| row.name.as_deref()).collect(),
            names_folded: rows.iter().map(CustomerRow::name_folded).collect(),
            phones: rows.iter().map(|row| row.phone_e164.as_deref()).collect(),
            emails: rows.iter().map(|row| row.email.as_deref()).collect(),
            postcodes: rows.iter().map(|row| row.postcode.as_deref()).collect(),
            address_lines: rows.iter().map(|row| row.address_line.as_deref()).collect(),
            uprns: rows.iter().map(|row| row.uprn.as_deref()).collect(),
            created_at: rows.iter().map(|row| row.created_at).collect(),
        }
    }
}

fn customer_row(row: &PgRow) -> CasesResult<CustomerRow> {
    let read = |column: &str| -> CasesResult<Option<String>> {
        row.try_get(column).map_err(CasesError::database("read customer"))
    };
    Ok(CustomerRow {
        id: CustomerId::from_uuid(row.try_get("id").map_err(CasesError::database("read customer"))?),
        name: read("name")?,
        phone_e164: read("phone_e164")?,
        email: read("email")?,
        postcode: read("postcode")?,
        address_line: read("address_line")?,
        uprn: read("uprn")?,
        created_at: row
            .try_get("created_at")
            .map_err(CasesError::database("read customer"))?,
        needs: CustomerNeeds::from_json(
            row.try_get("needs")
                .map_err(CasesError::database("read customer"))?,
        )?,
    })
}

/// Locks the customer row and reads what decides a needs or consent
/// change; `None` when there is no such customer.
async fn lock_standing(
    tx: &mut Transaction<'static, Postgres>,
    customer_id: CustomerId,
) -> CasesResult<Option<Standing>> {
    let row = sqlx::query(
        "SELECT merged_into, needs::text AS needs, \
            EXISTS (SELECT 1 FROM erasures WHERE customer_id = $1) AS erased, \
            EXISTS (SELECT 1 FROM customer_consents \
                    WHERE customer_id = $1 AND purpose = 'vulnerability' AND withdrawn_at IS NULL) AS consented \
         FROM customers WHERE id = $1 FOR UPDATE",
    )
    .bind(customer_id.as_uuid())
    .fetch_optional(&mut **tx)
    .await
    .map_err(CasesError::database("lock customer"))?;
    row.map(|row| {
        let error = || CasesError::database("read customer");
        let merged_into: Option<Uuid> = row.try_get("merged_into").map_err(error())?;
        let needs: String = row.try_get("needs").map_err(error())?;
        Ok(Standing {
            merged_into: merged_into.map(|id| id.to_string()),
            erased: row.try_get("erased").map_err(error())?,
            vulnerability_consent: row.try_get("consented").map_err(error())?,
            needs: CustomerNeeds::from_json(&needs)?,
        })
    })
    .transpose()
}

async fn set_needs(
    tx: &mut Transaction<'static, Postgres>,
    customer_id: CustomerId,
    needs: &CustomerNeeds,
) -> CasesResult<()> {
    sqlx::query("UPDATE customers SET needs = $2::jsonb WHERE id = $1")
        .bind(customer_id.as_uuid())
        .bind(needs.to_json()?)
        .execute(&mut **tx)
        .await
        .map_err(CasesError::database("update customer's needs"))?;
    Ok(())
}

async fn read_consent(tx: &mut Transaction<'static, Postgres>, id: Uuid) -> CasesResult<CustomerConsent> {
    let row = sqlx::query(concat!(
        "SELECT ",
        consent_columns!(),
        " FROM customer_consents WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(&mut **tx)
    .await
    .map_err(CasesError::database("read consent"))?;
    consent_row(&row)
}

fn consent_row(row: &PgRow) -> CasesResult<CustomerConsent> {
    let error = || CasesError::database("read consent");
    StoredConsent {
        id: row.try_get("id").map_err(error())?,
        customer_id: row.try_get("customer_id").map_err(error())?,
        purpose: row.try_get("purpose").map_err(error())?,
        statement: row.try_get("statement").map_err(error())?,
        channel: row.try_get("channel").map_err(error())?,
        recorded_by: row.try_get("recorded_by").map_err(error())?,
        given_at: row.try_get("given_at").map_err(error())?,
        contact_id: row.try_get("contact_id").map_err(error())?,
        withdrawn_at: row.try_get("withdrawn_at").map_err(error())?,
        withdrawn_by: row.try_get("withdrawn_by").map_err(error())?,
        withdrawal_reason: row.try_get("withdrawal_reason").map_err(error())?,
    }
    .into_consent()
}

async fn insert_consents(
    tx: &mut Transaction<'static, Postgres>,
    consents: &[CustomerConsent],
) -> CasesResult<()> {
    let ids: Vec<Uuid> = consents.iter().map(|consent| consent.id).collect();
    let customer_ids: Vec<Uuid> = consents
        .iter()
        .map(|consent| consent.customer_id.as_uuid())
        .collect();
    let purposes: Vec<&str> = consents.iter().map(|consent| consent.purpose.as_str()).collect();
    let statements: Vec<&str> = consents
        .iter()
        .map(|consent| consent.statement.as_str())
        .collect();
    let channels: Vec<Option<&str>> = consents
        .iter()
        .map(|consent| consent.channel.map(Channel::as_str))
        .collect();
    let recorded_by: Vec<&str> = consents
        .iter()
        .map(|consent| consent.recorded_by.as_str())
        .collect();
    let given_at: Vec<DateTime<Utc>> = consents.iter().map(|consent| consent.given_at).collect();
    let contact_ids: Vec<Option<Uuid>> = consents
        .iter()
        .map(|consent| consent.contact_id.map(|id| id.as_uuid()))
        .collect();
    sqlx::query(
        "INSERT INTO customer_consents (id, customer_id, purpose, statement, channel, recorded_by, given_at, contact_id) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::uuid[])",
    )
    .bind(&ids)
    .bind(&customer_ids)
    .bind(&purposes)
    .bind(&statements)
    .bind(&channels)
    .bind(&recorded_by)
    .bind(&given_at)
    .bind(&contact_ids)
    .execute(&mut **tx)
    .await
    .map_err(CasesError::database("insert consents"))?;
    Ok(())
}

async fn insert_outbox(tx: &mut Transaction<'static, Postgres>, outbox: &[OutboxRow]) -> CasesResult<()> {
    if outbox.is_empty() {
        return Ok(());
    }
    let event_ids: Vec<Uuid> = outbox.iter().map(|row| row.event_id.as_uuid()).collect();
    let event_types: Vec<&str> = outbox.iter().map(|row| row.event_type).collect();
    let bodies: Vec<&[u8]> = outbox.iter().map(|row| row.body.as_slice()).collect();
    let traceparents: Vec<Option<&str>> = outbox.iter().map(|row| row.traceparent.as_deref()).collect();
    let created_at: Vec<DateTime<Utc>> = outbox.iter().map(|row| row.created_at).collect();
    sqlx::query(
        "INSERT INTO outbox (event_id, event_type, body, traceparent, created_at) \
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::text[], $5::timestamptz[])",
    )
    .bind(&event_ids)
    .bind(&event_types)
    .bind(&bodies)
    .bind(&traceparents)
    .bind(&created_at)
    .execute(&mut **tx)
    .await
    .map_err(CasesError::database("insert outbox"))?;
    Ok(())
}

async fn insert_history(
    tx: &mut Transaction<'static, Postgres>,
    history: &[(CaseId, StatusRecord)],
) -> CasesResult<()> {
    let ids: Vec<Uuid> = history.iter().map(|_| Uuid::now_v7()).collect();
    let case_ids: Vec<Uuid> = history.iter().map(|(id, _)| id.as_uuid()).collect();
    let from: Vec<&str> = history.iter().map(|(_, record)| record.from.as_str()).collect();
    let to: Vec<&str> = history.iter().map(|(_, record)| record.to.as_str()).collect();
    let reasons: Vec<&str> = history.iter().map(|(_, record)| record.reason.as_str()).collect();
    let actors: Vec<&str> = history.iter().map(|(_, record)| record.actor.as_str()).collect();
    let at: Vec<DateTime<Utc>> = history.iter().map(|(_, record)| record.at).collect();
    sqlx::query(
        "INSERT INTO case_history (id, case_id, from_status, to_status, reason, actor, at) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[])",
    )
    .bind(&ids)
    .bind(&case_ids)
    .bind(&from)
    .bind(&to)
    .bind(&reasons)
    .bind(&actors)
    .bind(&at)
    .execute(&mut **tx)
    .await
    .map_err(CasesError::database("insert case history"))?;
    Ok(())
}

/// The case as it stands, locked until the transaction ends.
async fn current_case(
    tx: &mut Transaction<'static, Postgres>,
    id: CaseId,
) -> CasesResult<Option<CurrentCase>> {
    let row = sqlx::query(
        "SELECT c.id, c.reference, c.customer_id, c.service, c.status, c.due_at, c.resolved_at, c.outcome, \
                c.reopened_count, (SELECT count(*) FROM contacts k WHERE k.case_id = c.id) AS contact_count \
         FROM cases c WHERE c.id = $1 FOR UPDATE OF c",
    )
    .bind(id.as_uuid())
    .fetch_optional(&mut **tx)
    .await
    .map_err(CasesError::database("read case for update"))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let error = || CasesError::database("read case for update");
    let status: String = row.try_get("status").map_err(error())?;
    let reopened_count: i32 = row.try_get("reopened_count").map_err(error())?;
    let contact_count: i64 = row.try_get("contact_count").map_err(error())?;
    Ok(Some(CurrentCase {
        id,
        reference: row.try_get("reference").map_err(error())?,
        customer_id: CustomerId::from_uuid(row.try_get("customer_id").map_err(error())?),
        service: row.try_get("service").map_err(error())?,
        status: CaseStatus::parse(&status).map_err(CasesError::corrupt("cases.status"))?,
        due_at: row.try_get("due_at").map_err(error())?,
        resolved_at: row.try_get("resolved_at").map_err(error())?,
        outcome: row.try_get("outcome").map_err(error())?,
        reopened_count: u32::try_from(reopened_count).unwrap_or_default(),
        contact_count: u32::try_from(contact_count).unwrap_or(u32::MAX),
    }))
}

async fn write_status_update(
    tx: &mut Transaction<'static, Postgres>,
    id: CaseId,
    update: StatusUpdate,
) -> CasesResult<()> {
    sqlx::query(
        "UPDATE cases SET status = $2, resolved_at = $3, outcome = $4, reopened_count = $5 WHERE id = $1",
    )
    .bind(id.as_uuid())
    .bind(update.status.as_str())
    .bind(update.resolved_at)
    .bind(update.outcome.as_deref())
    .bind(i32::try_from(update.reopened_count).unwrap_or(i32::MAX))
    .execute(&mut **tx)
    .await
    .map_err(CasesError::database("update case status"))?;
    insert_history(tx, &[(id, update.record)]).await?;
    insert_outbox(tx, &[update.event]).await
}

/// `text` matched literally inside a `LIKE` pattern (whose escape character
/// is the backslash by default).
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Takes transaction-scoped advisory locks on `keys`, in the order the
/// statement sorts them: every transaction takes its locks in the same
/// order, so none can deadlock on them (a key given twice is harmless).
async fn lock_keys(tx: &mut Transaction<'static, Postgres>, keys: &[String]) -> CasesResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT count(pg_advisory_xact_lock(hashtextextended(key, 0))) \
         FROM (SELECT key FROM unnest($1::text[]) AS t(key) ORDER BY key) AS keys",
    )
    .bind(keys)
    .execute(&mut **tx)
    .await
    .map_err(CasesError::database("take advisory locks"))?;
    Ok(())
}

/// Applies the waiting outcomes of `contact_ids` that are stored: each moves
/// its case as its disposition says, then is marked applied.
async fn apply_pending_outcomes(
    tx: &mut Transaction<'static, Postgres>,
    contact_ids: &[Uuid],
    now: DateTime<Utc>,
) -> CasesResult<()> {
    if contact_ids.is_empty() {
        return Ok(());
    }
    let pending = sqlx::query(
        "SELECT o.contact_id, o.disposition, k.case_id \
         FROM contact_outcomes o JOIN contacts k ON k.id = o.contact_id \
         WHERE o.contact_id = ANY($1) AND NOT o.applied \
         ORDER BY k.case_id, o.completed_at",
    )
    .bind(contact_ids)
    .fetch_all(&mut **tx)
    .await
    .map_err(CasesError::database("look up waiting outcomes"))?;
    if pending.is_empty() {
        return Ok(());
    }
    let mut applied = Vec::with_capacity(pending.len());
    for row in pending {
        let error = || CasesError::database("read waiting outcomes");
        let contact_id: Uuid = row.try_get("contact_id").map_err(error())?;
        let disposition: String = row.try_get("disposition").map_err(error())?;
        let case_id = CaseId::from_uuid(row.try_get("case_id").map_err(error())?);
        applied.push(contact_id);
        let Some(current) = current_case(tx, case_id).await? else {
            continue;
        };
        if let Some(to) = status_after(current.status, &disposition) {
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
    }
    sqlx::query("UPDATE contact_outcomes SET applied = true WHERE contact_id = ANY($1)")
        .bind(&applied)
        .execute(&mut **tx)
        .await
        .map_err(CasesError::database("mark outcomes applied"))?;
    Ok(())
}

/// A merge with the counts of what it moved; `for_update` locks its row.
async fn read_merge(
    tx: &mut Transaction<'static, Postgres>,
    id: Uuid,
    for_update: bool,
) -> CasesResult<Option<CustomerMerge>> {
    let query = if for_update {
        "SELECT m.*,                 (SELECT count(*) FROM customer_merge_moves v WHERE v.merge_id = m.id AND v.kind = 'contact') AS moved_contacts,                 (SELECT count(*) FROM customer_merge_moves v WHERE v.merge_id = m.id AND v.kind = 'case') AS moved_cases          FROM customer_merges m WHERE m.id = $1 FOR UPDATE OF m"
    } else {
        "SELECT m.*,                 (SELECT count(*) FROM customer_merge_moves v WHERE v.merge_id = m.id AND v.kind = 'contact') AS moved_contacts,                 (SELECT count(*) FROM customer_merge_moves v WHERE v.merge_id = m.id AND v.kind = 'case') AS moved_cases          FROM customer_merges m WHERE m.id = $1"
    };
    let row = sqlx::query(query)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(CasesError::database("read merge"))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let error = || CasesError::database("read merge");
    let moved_contacts: i64 = row.try_get("moved_contacts").map_err(error())?;
    let moved_cases: i64 = row.try_get("moved_cases").map_err(error())?;
    Ok(Some(CustomerMerge {
        id,
        survivor_id: CustomerId::from_uuid(row.try_get("survivor_id").map_err(error())?),
        merged_id: CustomerId::from_uuid(row.try_get("merged_id").map_err(error())?),
        reason: row.try_get("reason").map_err(error())?,
        merged_by: row.try_get("merged_by").map_err(error())?,
        merged_at: row.try_get("merged_at").map_err(error())?,
        filled_columns: row.try_get("filled_columns").map_err(error())?,
        moved_contacts: u32::try_from(moved_contacts).unwrap_or(u32::MAX),
        moved_cases: u32::try_from(moved_cases).unwrap_or(u32::MAX),
        unmerged_by: row.try_get("unmerged_by").map_err(error())?,
        unmerged_at: row.try_get("unmerged_at").map_err(error())?,
        unmerge_reason: row.try_get("unmerge_reason").map_err(error())?,
    }))
}

fn suggestion(row: &PgRow) -> CasesResult<MatchSuggestion> {
    let error = || CasesError::database("read match suggestion");
    let status: String = row.try_get("status").map_err(error())?;
    let confidence: i16 = row.try_get("confidence").map_err(error())?;
    Ok(MatchSuggestion {
        id: row.try_get("id").map_err(error())?,
        customer_id: CustomerId::from_uuid(row.try_get("customer_id").map_err(error())?),
        candidate_id: CustomerId::from_uuid(row.try_get("candidate_id").map_err(error())?),
        contact_id: ContactId::from_uuid(row.try_get("contact_id").map_err(error())?),
        confidence: u8::try_from(confidence).unwrap_or_default(),
        signals: row.try_get("signals").map_err(error())?,
        status: SuggestionStatus::parse(&status).map_err(CasesError::corrupt("match_suggestions.status"))?,
        created_at: row.try_get("created_at").map_err(error())?,
        decided_by: row.try_get("decided_by").map_err(error())?,
        decided_at: row.try_get("decided_at").map_err(error())?,
    })
}

fn stored_case(row: &PgRow) -> CasesResult<StoredCase> {
    let error = || CasesError::database("read case");
    Ok(StoredCase {
        id: CaseId::from_uuid(row.try_get("id").map_err(error())?),
        reference: row.try_get("reference").map_err(error())?,
        customer_id: CustomerId::from_uuid(row.try_get("customer_id").map_err(error())?),
        service: row.try_get("service").map_err(error())?,
        status: row.try_get("status").map_err(error())?,
        opened_at: row.try_get("opened_at").map_err(error())?,
        updated_at: row.try_get("updated_at").map_err(error())?,
        due_at: row.try_get("due_at").map_err(error())?,
        resolved_at: row.try_get("resolved_at").map_err(error())?,
        outcome: row.try_get("outcome").map_err(error())?,
        reopened_count: i64::from(row.try_get::<i32, _>("reopened_count").map_err(error())?),
    })
}

fn contact(row: &PgRow) -> CasesResult<Contact> {
    let error = || CasesError::database("read contact");
    StoredContact {
        id: ContactId::from_uuid(row.try_get("id").map_err(error())?),
        reference: row.try_get("reference").map_err(error())?,
        customer_id: CustomerId::from_uuid(row.try_get("customer_id").map_err(error())?),
        case_id: CaseId::from_uuid(row.try_get("case_id").map_err(error())?),
        channel: row.try_get("channel").map_err(error())?,
        service: row.try_get("service").map_err(error())?,
        summary: row.try_get("summary").map_err(error())?,
        details: row.try_get("details").map_err(error())?,
        needs: row.try_get("needs").map_err(error())?,
        origin: row.try_get("origin").map_err(error())?,
        received_at: row.try_get("received_at").map_err(error())?,
        stored_at: row.try_get("stored_at").map_err(error())?,
        repeat_contact: row.try_get("repeat_contact").map_err(error())?,
        outcome: match row.try_get::<Option<String>, _>("disposition").map_err(error())? {
            Some(disposition) => Some(ContactOutcome {
                disposition,
                partner: row.try_get("partner").map_err(error())?,
                completed_at: row.try_get("completed_at").map_err(error())?,
            }),
            None => None,
        },
    }
    .into_contact()
}

#[async_trait]
impl CasesStore for PgCasesStore {
    #[tracing::instrument(name = "cases.apply_contacts", skip_all, fields(batch = batch.len()))]
    async fn apply_contacts(&self, batch: &[IncomingContact]) -> CasesResult<Vec<ApplyOutcome>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let keys = plan::lookup_keys(batch);
        let mut tx = self.pool.begin().await.map_err(CasesError::database("begin"))?;
        // Another consumer applying a contact of the same resident waits
        // here, then sees this batch's customer.
        lock_keys(&mut tx, &keys.lock_keys()).await?;
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
            // Every event was applied before: nothing to write.
            tx.rollback().await.map_err(CasesError::database("rollback"))?;
            return Ok(plan.outcomes);
        }
        Self::write(&mut tx, &mut plan).await?;
        let stored: Vec<Uuid> = plan.contacts.iter().map(|row| row.id.as_uuid()).collect();
        apply_pending_outcomes(&mut tx, &stored, plan.now).await?;
        tx.commit().await.map_err(CasesError::database("commit"))?;
        Ok(plan.outcomes)
    }

    async fn get_contact(&self, id: ContactId) -> CasesResult<Option<Contact>> {
        let row = sqlx::query(concat!(contact_select!(), " WHERE k.id = $1"))
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(CasesError::database("get contact"))?;
        row.as_ref().map(contact).transpose()
    }

    async fn get_case(&self, key: &CaseKey) -> CasesResult<Option<Case>> {
        let query = match key {
            CaseKey::Id(id) => sqlx::query(concat!("SELECT ", case_columns!(), " FROM cases WHERE id = $1"))
                .bind(id.as_uuid()),
            CaseKey::Reference(reference) => sqlx::query(concat!(
                "SELECT ",
                case_columns!(),
                " FROM cases WHERE reference = $1"
            ))
            .bind(reference.as_str()),
        };
        let rows: Vec<PgRow> = query
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
            " FROM customers WHERE id = $1"
        ))
        .bind(customer_id.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(CasesError::database("get customer"))?;
        let Some(customer) = customer else {
            return Ok(None);
        };
        let customer = customer_row(&customer)?.into_customer()?;

        // Keyset pagination over both kinds of entry, one more than the page
        // to learn whether another page follows.
        let ordered = sqlx::query(
            "SELECT kind, id FROM ( \
                 SELECT 1::int2 AS kind, id, opened_at AS at FROM cases WHERE customer_id = $1 \
                 UNION ALL \
                 SELECT 0::int2, id, received_at FROM contacts WHERE customer_id = $1 \
             ) AS entries \
             WHERE $2::timestamptz IS NULL OR (at, kind, id) < ($2, $3::int2, $4::uuid) \
             ORDER BY at DESC, kind DESC, id DESC \
             LIMIT $5",
        )
        .bind(customer_id.as_uuid())
        .bind(cursor.map(|cursor| cursor.at))
        .bind(cursor.map(|cursor| cursor.kind.rank()))
        .bind(cursor.map(|cursor| cursor.id))
        .bind(i64::try_from(page_size + 1).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(CasesError::database("read timeline"))?
        .iter()
        .map(|row| {
            let error = || CasesError::database("read timeline");
            let rank: i16 = row.try_get("kind").map_err(error())?;
            let id: Uuid = row.try_get("id").map_err(error())?;
            let kind = EntryKind::from_rank(rank).ok_or(CasesError::Corrupt {
                column: "timeline.kind",
                reason: "unknown entry kind".to_owned(),
            })?;
            Ok((kind, id))
        })
        .collect::<CasesResult<Vec<_>>>()?;

        let visible = &ordered[..ordered.len().min(page_size)];
        let contact_ids: Vec<Uuid> = visible
            .iter()
            .filter(|(kind, _)| *kind == EntryKind::Contact)
            .map(|(_, id)| *id)
            .collect();
        let case_ids: Vec<Uuid> = visible
            .iter()
            .filter(|(kind, _)| *kind == EntryKind::Case)
            .map(|(_, id)| *id)
            .collect();
        let mut contacts = HashMap::new();
        if !contact_ids.is_empty() {
            let rows = sqlx::query(concat!(contact_select!(), " WHERE k.id = ANY($1)"))
                .bind(&contact_ids)
                .fetch_all(&self.pool)
                .await
                .map_err(CasesError::database("read timeline contacts"))?;
            for row in &rows {
                let contact = contact(row)?;
                contacts.insert(contact.id.as_uuid(), contact);
            }
        }
        let mut cases = HashMap::new();
        if !case_ids.is_empty() {
            let rows = sqlx::query(concat!(
                "SELECT ",
                case_columns!(),
                " FROM cases WHERE id = ANY($1)"
            ))
            .bind(&case_ids)
            .fetch_all(&self.pool)
            .await
            .map_err(CasesError::database("read timeline cases"))?;
            for case in self.cases_with_contacts(rows).await? {
                cases.insert(case.id.as_uuid(), case);
            }
        }
        assemble_timeline(customer, ordered, page_size, contacts, cases).map(Some)
    }

    async fn search_customers(&self, search: &CustomerSearch, limit: usize) -> CasesResult<Vec<Customer>> {
        if search.is_empty() {
            return Ok(Vec::new());
        }
        let limit = clamp_page(limit, SEARCH_PAGE_MAX);
        // Only the criteria given become conditions, so each query can use the
        // index of the identifier it names. Values are always bound.
        let mut query = QueryBuilder::<Postgres>::new(concat!(
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
            // A pattern rather than strpos, so the trigram index can serve it.
            query
                .push(" AND name_folded LIKE ")
                .push_bind(format!("%{}%", escape_like(&fold_name(name.as_str()))));
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
        let notes = sqlx::query(
            "SELECT id, case_id, author, body, created_at FROM case_notes WHERE case_id = $1 ORDER BY created_at, id",
        )
        .bind(case.id.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(CasesError::database("read case notes"))?
        .iter()
        .map(|row| {
            let error = || CasesError::database("read case notes");
            Ok(CaseNote {
                id: row.try_get("id").map_err(error())?,
                case_id: CaseId::from_uuid(row.try_get("case_id").map_err(error())?),
                author: row.try_get("author").map_err(error())?,
                text: row.try_get("body").map_err(error())?,
                created_at: row.try_get("created_at").map_err(error())?,
            })
        })
        .collect::<CasesResult<Vec<_>>>()?;
        let history = sqlx::query(
            "SELECT from_status, to_status, reason, actor, at FROM case_history WHERE case_id = $1 ORDER BY at, id",
        )
        .bind(case.id.as_uuid())
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
                at: row.try_get("at").map_err(error())?,
            })
        })
        .collect::<CasesResult<Vec<_>>>()?;
        let referrals = case_referrals(&self.pool, case.id).await?;
        Ok(Some(CaseDetail {
            case,
            notes,
            history,
            referrals,
        }))
    }

    #[tracing::instrument(name = "cases.change_case_status", skip_all, fields(case_id = %change.case_id))]
    async fn change_case_status(&self, change: &StatusChange) -> CasesResult<Option<CaseDetail>> {
        let mut tx = self.pool.begin().await.map_err(CasesError::database("begin"))?;
        let Some(current) = current_case(&mut tx, change.case_id).await? else {
            return Ok(None);
        };
        check_transition(current.status, change.to)?;
        if is_reopen(current.status, change.to) {
            let other: Option<String> = sqlx::query_scalar(
                "SELECT reference FROM cases WHERE customer_id = $1 AND service = $2 AND id <> $3 \
                   AND status IN ('open', 'waiting_on_resident', 'waiting_on_council')",
            )
            .bind(current.customer_id.as_uuid())
            .bind(&current.service)
            .bind(current.id.as_uuid())
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
             SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM cases WHERE id = $2)",
        )
        .bind(note.id)
        .bind(case_id.as_uuid())
        .bind(&note.author)
        .bind(&note.text)
        .bind(note.created_at)
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
        let mut tx = self.pool.begin().await.map_err(CasesError::database("begin"))?;
        let contact_keys: Vec<String> = batch
            .iter()
            .map(|outcome| plan::contact_lock_key(outcome.contact_id))
            .collect();
        lock_keys(&mut tx, &contact_keys).await?;
        let event_ids: Vec<Uuid> = batch.iter().map(|outcome| outcome.event_id.as_uuid()).collect();
        let seen: HashSet<Uuid> =
            sqlx::query_scalar::<_, Uuid>("SELECT event_id FROM inbox WHERE event_id = ANY($1)")
                .bind(&event_ids)
                .fetch_all(&mut *tx)
                .await
                .map_err(CasesError::database("look up applied events"))?
                .into_iter()
                .collect();
        let mut new_events = HashSet::new();
        let fresh: Vec<&IncomingOutcome> = batch
            .iter()
            .filter(|outcome| {
                !seen.contains(&outcome.event_id.as_uuid()) && new_events.insert(outcome.event_id.as_uuid())
            })
            .collect();
        if fresh.is_empty() {
            tx.rollback().await.map_err(CasesError::database("rollback"))?;
            return Ok(());
        }
        let contact_ids: Vec<Uuid> = fresh.iter().map(|outcome| outcome.contact_id.as_uuid()).collect();
        let dispositions: Vec<&str> = fresh
            .iter()
            .map(|outcome| outcome.outcome.disposition.as_str())
            .collect();
        let partners: Vec<Option<&str>> = fresh
            .iter()
            .map(|outcome| outcome.outcome.partner.as_deref())
            .collect();
        let completed_at: Vec<DateTime<Utc>> = fresh
            .iter()
            .map(|outcome| to_micros(outcome.outcome.completed_at))
            .collect();
        sqlx::query(
            "INSERT INTO contact_outcomes (contact_id, disposition, partner, completed_at, applied) \
             SELECT u.contact_id, u.disposition, u.partner, u.completed_at, false \
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[]) \
                AS u(contact_id, disposition, partner, completed_at) \
             ON CONFLICT (contact_id) DO NOTHING",
        )
        .bind(&contact_ids)
        .bind(&dispositions)
        .bind(&partners)
        .bind(&completed_at)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("insert contact outcomes"))?;
        let fresh_ids: Vec<Uuid> = fresh.iter().map(|outcome| outcome.event_id.as_uuid()).collect();
        sqlx::query("INSERT INTO inbox (event_id, processed_at) SELECT unnest($1::uuid[]), $2")
            .bind(&fresh_ids)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(CasesError::database("insert inbox"))?;
        apply_pending_outcomes(&mut tx, &contact_ids, now).await?;
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
               AND ($1::uuid IS NULL OR customer_id = $1 OR candidate_id = $1) \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(customer_id.map(|id| id.as_uuid()))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(CasesError::database("list match suggestions"))?
        .iter()
        .map(suggestion)
        .collect()
    }

    async fn dismiss_suggestion(&self, id: Uuid, actor: &str) -> CasesResult<Option<MatchSuggestion>> {
        let mut tx = self.pool.begin().await.map_err(CasesError::database("begin"))?;
        let current = sqlx::query(concat!(
            "SELECT ",
            suggestion_columns!(),
            " FROM match_suggestions WHERE id = $1 FOR UPDATE"
        ))
        .bind(id)
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
            "UPDATE match_suggestions SET status = 'dismissed', decided_by = $2, decided_at = $3 WHERE id = $1 RETURNING ",
            suggestion_columns!()
        ))
        .bind(id)
        .bind(actor)
        .bind(to_micros(Utc::now()))
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
        let (survivor, merged) = (request.survivor_id.as_uuid(), request.merged_id.as_uuid());
        let mut tx = self.pool.begin().await.map_err(CasesError::database("begin"))?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            customer_columns!(),
            ", merged_into FROM customers WHERE id = ANY($1) ORDER BY id FOR UPDATE"
        ))
        .bind([survivor, merged].as_slice())
        .fetch_all(&mut *tx)
        .await
        .map_err(CasesError::database("lock customers"))?;
        let mut survivor_row = None;
        let mut merged_row = None;
        for row in &rows {
            let merged_into: Option<Uuid> = row
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
        let filled: Vec<&str> = columns_to_fill(&survivor_row, &merged_row);
        let merge_id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO customer_merges (id, survivor_id, merged_id, reason, merged_by, merged_at, filled_columns) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(merge_id)
        .bind(survivor)
        .bind(merged)
        .bind(&request.reason)
        .bind(&request.actor)
        .bind(now)
        .bind(&filled)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("insert merge"))?;

        // Open cases of both for one service: the merged customer's contacts
        // join the survivor's case and its own case closes.
        let duplicates = sqlx::query(
            "SELECT m.id AS merged_case, s.id AS survivor_case, s.reference AS survivor_reference \
             FROM cases m JOIN cases s ON s.customer_id = $2 AND s.service = m.service \
                 AND s.status IN ('open', 'waiting_on_resident', 'waiting_on_council') \
             WHERE m.customer_id = $1 AND m.status IN ('open', 'waiting_on_resident', 'waiting_on_council') \
             ORDER BY m.id",
        )
        .bind(merged)
        .bind(survivor)
        .fetch_all(&mut *tx)
        .await
        .map_err(CasesError::database("find duplicate cases"))?;
        for row in duplicates {
            let error = || CasesError::database("read duplicate cases");
            let merged_case: Uuid = row.try_get("merged_case").map_err(error())?;
            let survivor_case: Uuid = row.try_get("survivor_case").map_err(error())?;
            let survivor_reference: String = row.try_get("survivor_reference").map_err(error())?;
            sqlx::query(
                "INSERT INTO customer_merge_moves (merge_id, kind, item_id, from_customer, from_case) \
                 SELECT $1, 'contact', id, customer_id, case_id FROM contacts WHERE case_id = $2",
            )
            .bind(merge_id)
            .bind(merged_case)
            .execute(&mut *tx)
            .await
            .map_err(CasesError::database("record moved contacts"))?;
            sqlx::query("UPDATE contacts SET case_id = $2, customer_id = $3 WHERE case_id = $1")
                .bind(merged_case)
                .bind(survivor_case)
                .bind(survivor)
                .execute(&mut *tx)
                .await
                .map_err(CasesError::database("move contacts"))?;
            let Some(current) = current_case(&mut tx, CaseId::from_uuid(merged_case)).await? else {
                continue;
            };
            sqlx::query(
                "INSERT INTO customer_merge_moves (merge_id, kind, item_id, from_customer, from_status) \
                 VALUES ($1, 'case', $2, $3, $4)",
            )
            .bind(merge_id)
            .bind(merged_case)
            .bind(merged)
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
             SELECT $1, 'contact', id, customer_id, case_id FROM contacts WHERE customer_id = $2 \
             ON CONFLICT DO NOTHING",
        )
        .bind(merge_id)
        .bind(merged)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("record moved contacts"))?;
        sqlx::query(
            "INSERT INTO customer_merge_moves (merge_id, kind, item_id, from_customer) \
             SELECT $1, 'case', id, customer_id FROM cases WHERE customer_id = $2 \
             ON CONFLICT DO NOTHING",
        )
        .bind(merge_id)
        .bind(merged)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("record moved cases"))?;
        sqlx::query("UPDATE contacts SET customer_id = $2 WHERE customer_id = $1")
            .bind(merged)
            .bind(survivor)
            .execute(&mut *tx)
            .await
            .map_err(CasesError::database("move contacts"))?;
        sqlx::query("UPDATE cases SET customer_id = $2 WHERE customer_id = $1")
            .bind(merged)
            .bind(survivor)
            .execute(&mut *tx)
            .await
            .map_err(CasesError::database("move cases"))?;
        sqlx::query(
            "UPDATE customers s SET \
                name = CASE WHEN 'name' = ANY($3) THEN m.name ELSE s.name END, \
                name_folded = CASE WHEN 'name' = ANY($3) THEN m.name_folded ELSE s.name_folded END, \
                phone_e164 = CASE WHEN 'phone_e164' = ANY($3) THEN m.phone_e164 ELSE s.phone_e164 END, \
                email = CASE WHEN 'email' = ANY($3) THEN m.email ELSE s.email END, \
                postcode = CASE WHEN 'postcode' = ANY($3) THEN m.postcode ELSE s.postcode END, \
                address_line = CASE WHEN 'address_line' = ANY($3) THEN m.address_line ELSE s.address_line END, \
                uprn = CASE WHEN 'uprn' = ANY($3) THEN m.uprn ELSE s.uprn END \
             FROM customers m WHERE s.id = $1 AND m.id = $2",
        )
        .bind(survivor)
        .bind(merged)
        .bind(&filled)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("fill in survivor"))?;
        if let Some(needs) = needs::after_merge(&survivor_row.needs, &merged_row.needs, &request.actor, now) {
            sqlx::query("UPDATE customer_merges SET survivor_needs_before = $2::jsonb WHERE id = $1")
                .bind(merge_id)
                .bind(survivor_row.needs.to_json()?)
                .execute(&mut *tx)
                .await
                .map_err(CasesError::database("record survivor's needs"))?;
            set_needs(&mut tx, request.survivor_id, &needs).await?;
        }
        sqlx::query("UPDATE customers SET merged_into = $2 WHERE id = $1")
            .bind(merged)
            .bind(survivor)
            .execute(&mut *tx)
            .await
            .map_err(CasesError::database("mark customer merged"))?;
        sqlx::query(
            "UPDATE match_suggestions SET status = 'merged', decided_by = $3, decided_at = $4 \
             WHERE status = 'open' AND ((customer_id = $1 AND candidate_id = $2) OR (customer_id = $2 AND candidate_id = $1))",
        )
        .bind(survivor)
        .bind(merged)
        .bind(&request.actor)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("close match suggestions"))?;
        let merge = read_merge(&mut tx, merge_id, false).await?;
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
        let mut tx = self.pool.begin().await.map_err(CasesError::database("begin"))?;
        let Some(merge) = read_merge(&mut tx, merge_id, true).await? else {
            return Ok(None);
        };
        if merge.unmerged_at.is_some() {
            return Err(CasesError::MergeRefused(
                "the merge was already undone".to_owned(),
            ));
        }
        let (survivor, merged) = (merge.survivor_id.as_uuid(), merge.merged_id.as_uuid());
        sqlx::query("SELECT id FROM customers WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind([survivor, merged].as_slice())
            .execute(&mut *tx)
            .await
            .map_err(CasesError::database("lock customers"))?;
        sqlx::query(
            "UPDATE contacts c SET customer_id = m.from_customer, case_id = m.from_case \
             FROM customer_merge_moves m WHERE m.merge_id = $1 AND m.kind = 'contact' AND c.id = m.item_id",
        )
        .bind(merge_id)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("move contacts back"))?;
        let closed = sqlx::query(
            "SELECT item_id, from_status FROM customer_merge_moves \
             WHERE merge_id = $1 AND kind = 'case' AND from_status IS NOT NULL ORDER BY item_id",
        )
        .bind(merge_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(CasesError::database("read closed cases"))?;
        sqlx::query(
            "UPDATE cases c SET customer_id = m.from_customer \
             FROM customer_merge_moves m WHERE m.merge_id = $1 AND m.kind = 'case' AND c.id = m.item_id",
        )
        .bind(merge_id)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("move cases back"))?;
        for row in closed {
            let error = || CasesError::database("read closed cases");
            let case_id = CaseId::from_uuid(row.try_get("item_id").map_err(error())?);
            let from_status: String = row.try_get("from_status").map_err(error())?;
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
            "UPDATE customers s SET \
                name = CASE WHEN 'name' = ANY($3) AND s.name IS NOT DISTINCT FROM m.name THEN NULL ELSE s.name END, \
                name_folded = CASE WHEN 'name' = ANY($3) AND s.name IS NOT DISTINCT FROM m.name THEN NULL ELSE s.name_folded END, \
                phone_e164 = CASE WHEN 'phone_e164' = ANY($3) AND s.phone_e164 IS NOT DISTINCT FROM m.phone_e164 THEN NULL ELSE s.phone_e164 END, \
                email = CASE WHEN 'email' = ANY($3) AND s.email IS NOT DISTINCT FROM m.email THEN NULL ELSE s.email END, \
                postcode = CASE WHEN 'postcode' = ANY($3) AND s.postcode IS NOT DISTINCT FROM m.postcode THEN NULL ELSE s.postcode END, \
                address_line = CASE WHEN 'address_line' = ANY($3) AND s.address_line IS NOT DISTINCT FROM m.address_line THEN NULL ELSE s.address_line END, \
                uprn = CASE WHEN 'uprn' = ANY($3) AND s.uprn IS NOT DISTINCT FROM m.uprn THEN NULL ELSE s.uprn END \
             FROM customers m WHERE s.id = $1 AND m.id = $2",
        )
        .bind(survivor)
        .bind(merged)
        .bind(&merge.filled_columns)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("clear filled-in identifiers"))?;
        let before: Option<String> =
            sqlx::query_scalar("SELECT survivor_needs_before::text FROM customer_merges WHERE id = $1")
                .bind(merge_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(CasesError::database("read survivor's needs before the merge"))?;
        if let Some(before) = before
            && let Some(standing) = lock_standing(&mut tx, merge.survivor_id).await?
        {
            let restored = needs::after_unmerge(&CustomerNeeds::from_json(&before)?, &standing.needs);
            set_needs(&mut tx, merge.survivor_id, &restored).await?;
        }
        sqlx::query("UPDATE customers SET merged_into = NULL WHERE id = $1")
            .bind(merged)
            .execute(&mut *tx)
            .await
            .map_err(CasesError::database("unmark customer merged"))?;
        sqlx::query(
            "UPDATE customer_merges SET unmerged_by = $2, unmerged_at = $3, unmerge_reason = $4 WHERE id = $1",
        )
        .bind(merge_id)
        .bind(actor)
        .bind(now)
        .bind(reason)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("record un-merge"))?;
        let merge = read_merge(&mut tx, merge_id, false).await?;
        tx.commit().await.map_err(CasesError::database("commit"))?;
        Ok(merge)
    }

    async fn customer_merges(&self, customer_id: CustomerId) -> CasesResult<Vec<CustomerMerge>> {
        let mut tx = self.pool.begin().await.map_err(CasesError::database("begin"))?;
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM customer_merges WHERE survivor_id = $1 OR merged_id = $1 ORDER BY merged_at, id",
        )
        .bind(customer_id.as_uuid())
        .fetch_all(&mut *tx)
        .await
        .map_err(CasesError::database("list merges"))?;
        let mut merges = Vec::with_capacity(ids.len());
        for id in ids {
            merges.extend(read_merge(&mut tx, id, false).await?);
        }
        tx.commit().await.map_err(CasesError::database("commit"))?;
        Ok(merges)
    }

    async fn record_reads(&self, reads: &[DataRead]) -> CasesResult<()> {
        if reads.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = reads.iter().map(|read| read.id).collect();
        let at: Vec<DateTime<Utc>> = reads.iter().map(|read| to_micros(read.at)).collect();
        let actors: Vec<&str> = reads.iter().map(|read| read.actor.as_str()).collect();
        let actions: Vec<&str> = reads.iter().map(|read| read.action.as_str()).collect();
        let customers: Vec<Uuid> = reads.iter().map(|read| read.customer_id.as_uuid()).collect();
        let records: Vec<Uuid> = reads.iter().map(|read| read.record_id).collect();
        let purposes: Vec<&str> = reads.iter().map(|read| read.purpose.as_str()).collect();
        sqlx::query(
            "INSERT INTO personal_data_reads (id, at, actor, action, customer_id, record_id, purpose) \
             SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::uuid[], $6::uuid[], $7::text[])",
        )
        .bind(&ids)
        .bind(&at)
        .bind(&actors)
        .bind(&actions)
        .bind(&customers)
        .bind(&records)
        .bind(&purposes)
        .execute(&self.pool)
        .await
        .map_err(CasesError::database("record reads"))?;
        Ok(())
    }

    async fn reads_of(&self, customer_id: CustomerId, limit: usize) -> CasesResult<Vec<DataRead>> {
        let limit = clamp_page(limit, TIMELINE_PAGE_MAX);
        sqlx::query(
            "SELECT id, at, actor, action, customer_id, record_id, purpose FROM personal_data_reads \
             WHERE customer_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
        )
        .bind(customer_id.as_uuid())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(CasesError::database("read the read log"))?
        .iter()
        .map(|row| {
            let error = || CasesError::database("read the read log");
            Ok(DataRead {
                id: row.try_get("id").map_err(error())?,
                at: row.try_get("at").map_err(error())?,
                actor: row.try_get("actor").map_err(error())?,
                action: row.try_get("action").map_err(error())?,
                customer_id: CustomerId::from_uuid(row.try_get("customer_id").map_err(error())?),
                record_id: row.try_get("record_id").map_err(error())?,
                purpose: row.try_get("purpose").map_err(error())?,
            })
        })
        .collect()
    }

    #[tracing::instrument(name = "cases.erase_customer", skip_all, fields(customer_id = %request.customer_id))]
    async fn erase_customer(&self, request: &ErasureRequest) -> CasesResult<Option<Erasure>> {
        let now = to_micros(Utc::now());
        let id = request.customer_id.as_uuid();
        let Some((mut tx, row)) = self.lock_for_erasure(id).await? else {
            return Ok(None);
        };
        let merged_into: Option<Uuid> = row
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
        // Under the identity and row locks: a batch matching the resident
        // waits for them (and a contact's foreign key shares the row), or
        // committed before and is seen here.
        if let Some(cutoff) = request.only_if_inactive_since {
            let in_touch: bool = sqlx::query_scalar(concat!(
                "SELECT ",
                in_touch_since!(),
                " FROM customers c WHERE c.id = $2"
            ))
            .bind(cutoff)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(CasesError::database("check the customer is inactive"))?;
            if in_touch {
                return Err(CasesError::ErasureRefused(
                    "the resident has been in touch since the retention period began".to_owned(),
                ));
            }
        }
        // Each statement takes the customer id ($1); those that write erased
        // text or needs take them as $2.
        let with_id_only: [(&str, &'static str); 3] = [
            // The customer, and any customer merged into them (who still
            // holds the identifiers they had).
            (
                "UPDATE customers SET name = NULL, name_folded = NULL, phone_e164 = NULL, email = NULL, \
                    postcode = NULL, address_line = NULL, uprn = NULL, needs = '{}'::jsonb \
                 WHERE id = $1 OR merged_into = $1",
                "erase customer",
            ),
            (
                "DELETE FROM case_notes WHERE case_id IN (SELECT id FROM cases WHERE customer_id = $1)",
                "delete case notes",
            ),
            (
                "DELETE FROM match_suggestions WHERE customer_id = $1 OR candidate_id = $1 \
                    OR customer_id IN (SELECT id FROM customers WHERE merged_into = $1) \
                    OR candidate_id IN (SELECT id FROM customers WHERE merged_into = $1)",
                "delete match suggestions",
            ),
        ];
        for (statement, operation) in with_id_only {
            sqlx::query(statement)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(CasesError::database(operation))?;
        }
        let with_text: [(&str, &'static str); 5] = [
            (
                "UPDATE customer_consents SET statement = $2, \
                    withdrawal_reason = CASE WHEN withdrawal_reason IS NULL THEN NULL ELSE $2 END \
                 WHERE customer_id = $1 OR customer_id IN (SELECT id FROM customers WHERE merged_into = $1)",
                "erase consents",
            ),
            (
                "UPDATE case_history SET reason = $2 WHERE case_id IN (SELECT id FROM cases WHERE customer_id = $1)",
                "erase case history",
            ),
            (
                "UPDATE referrals SET note = '', \
                    consent_statement = CASE WHEN consent_statement IS NULL THEN NULL ELSE $2 END, \
                    outcome_note = CASE WHEN outcome_note IS NULL THEN NULL ELSE $2 END \
                 WHERE case_id IN (SELECT id FROM cases WHERE customer_id = $1)",
                "erase referrals",
            ),
            (
                "UPDATE customer_merges SET reason = $2, survivor_needs_before = NULL, \
                    unmerge_reason = CASE WHEN unmerge_reason IS NULL THEN NULL ELSE $2 END \
                 WHERE survivor_id = $1 OR merged_id = $1",
                "erase merges",
            ),
            (
                "UPDATE personal_data_reads SET purpose = $2 WHERE customer_id = $1",
                "erase read log",
            ),
        ];
        for (statement, operation) in with_text {
            sqlx::query(statement)
                .bind(id)
                .bind(ERASED)
                .execute(&mut *tx)
                .await
                .map_err(CasesError::database(operation))?;
        }
        // Marked expired too: the schedule finds nothing left in them to remove.
        sqlx::query(concat!(
            "UPDATE contacts SET ",
            clear_contact_content!(),
            ", expired_at = COALESCE(expired_at, $3) WHERE customer_id = $1"
        ))
        .bind(id)
        .bind(erased_needs()?)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("erase contacts"))?;
        sqlx::query(
            "INSERT INTO erasures (customer_id, erased_by, erased_at, reason) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(&request.actor)
        .bind(now)
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
        let row = sqlx::query("SELECT erased_by, erased_at, reason FROM erasures WHERE customer_id = $1")
            .bind(customer_id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(CasesError::database("read erasure"))?;
        row.map(|row| {
            let error = || CasesError::database("read erasure");
            Ok(Erasure {
                customer_id,
                erased_by: row.try_get("erased_by").map_err(error())?,
                erased_at: row.try_get("erased_at").map_err(error())?,
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
        let mut tx = self.pool.begin().await.map_err(CasesError::database("begin"))?;
        let Some(standing) = lock_standing(&mut tx, update.customer_id).await? else {
            return Ok(None);
        };
        let needs = standing.updated(update, now)?;
        set_needs(&mut tx, update.customer_id, &needs).await?;
        let customer = sqlx::query(concat!(
            "SELECT ",
            customer_columns!(),
            " FROM customers WHERE id = $1"
        ))
        .bind(update.customer_id.as_uuid())
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
        let mut tx = self.pool.begin().await.map_err(CasesError::database("begin"))?;
        let Some(standing) = lock_standing(&mut tx, consent.customer_id).await? else {
            return Ok(None);
        };
        standing.check_open()?;
        let recorded = consent.recorded_at(now);
        insert_consents(&mut tx, std::slice::from_ref(&recorded)).await?;
        tx.commit().await.map_err(CasesError::database("commit"))?;
        Ok(Some(recorded))
    }

    #[tracing::instrument(name = "cases.withdraw_consent", skip_all, fields(consent_id = %withdrawal.consent_id))]
    async fn withdraw_consent(&self, withdrawal: &WithdrawConsent) -> CasesResult<Option<CustomerConsent>> {
        let now = to_micros(Utc::now());
        let mut tx = self.pool.begin().await.map_err(CasesError::database("begin"))?;
        let customer_id: Option<Uuid> =
            sqlx::query_scalar("SELECT customer_id FROM customer_consents WHERE id = $1")
                .bind(withdrawal.consent_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(CasesError::database("find consent"))?;
        let Some(customer_id) = customer_id.map(CustomerId::from_uuid) else {
            return Ok(None);
        };
        // The customer row is the lock every needs change takes.
        let Some(standing) = lock_standing(&mut tx, customer_id).await? else {
            return Ok(None);
        };
        let consent = read_consent(&mut tx, withdrawal.consent_id).await?;
        needs::check_withdrawable(&consent)?;
        sqlx::query(
            "UPDATE customer_consents SET withdrawn_at = $3, withdrawn_by = $4, withdrawal_reason = $5 \
             WHERE customer_id = $1 AND purpose = $2 AND withdrawn_at IS NULL",
        )
        .bind(customer_id.as_uuid())
        .bind(consent.purpose.as_str())
        .bind(now)
        .bind(&withdrawal.actor)
        .bind(&withdrawal.reason)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("withdraw consents"))?;
        if let Some(needs) = standing.after_withdrawal(consent.purpose, &withdrawal.actor, now) {
            set_needs(&mut tx, customer_id, &needs).await?;
        }
        let withdrawn = read_consent(&mut tx, withdrawal.consent_id).await?;
        tx.commit().await.map_err(CasesError::database("commit"))?;
        Ok(Some(withdrawn))
    }

    async fn consents_of(&self, customer_id: CustomerId) -> CasesResult<Vec<CustomerConsent>> {
        sqlx::query(concat!(
            "SELECT ",
            consent_columns!(),
            " FROM customer_consents WHERE customer_id = $1 ORDER BY given_at DESC, id DESC"
        ))
        .bind(customer_id.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(CasesError::database("read consents"))?
        .iter()
        .map(consent_row)
        .collect()
    }

    async fn inactive_customers(&self, cutoff: DateTime<Utc>, limit: usize) -> CasesResult<Vec<CustomerId>> {
        let ids: Vec<Uuid> = sqlx::query_scalar(concat!(
            "SELECT c.id FROM customers c \
             WHERE c.merged_into IS NULL AND c.created_at < $1 \
               AND NOT EXISTS (SELECT 1 FROM erasures e WHERE e.customer_id = c.id) \
               AND NOT ",
            in_touch_since!(),
            " ORDER BY c.id LIMIT $2"
        ))
        .bind(cutoff)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(CasesError::database("find inactive customers"))?;
        Ok(ids.into_iter().map(CustomerId::from_uuid).collect())
    }

    #[tracing::instrument(name = "cases.expire", skip_all, fields(category = %category))]
    async fn expire(
        &self,
        category: RetentionCategory,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> CasesResult<u64> {
        let mut tx = self.pool.begin().await.map_err(CasesError::database("begin"))?;
        let affected = match category {
            RetentionCategory::ContactContent => sqlx::query(concat!(
                "UPDATE contacts k SET ",
                clear_contact_content!(),
                ", expired_at = $3 \
                 FROM cases c \
                 WHERE c.id = k.case_id AND k.expired_at IS NULL AND k.received_at < $1 \
                   AND c.status IN ('resolved', 'closed')"
            ))
            .bind(cutoff)
            .bind(erased_needs()?)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(CasesError::database("expire contact content"))?
            .rows_affected(),
            RetentionCategory::CaseNotes => {
                let due: Vec<Uuid> = sqlx::query_scalar(concat!(
                    "SELECT c.id FROM cases c WHERE c.status IN ('resolved', 'closed') \
                       AND GREATEST(c.updated_at, COALESCE(c.resolved_at, c.updated_at)) < $1 AND ",
                    notes_left_to_expire!(),
                    " ORDER BY c.id FOR UPDATE"
                ))
                .bind(cutoff)
                .bind(EXPIRED)
                .bind(ERASED)
                .fetch_all(&mut *tx)
                .await
                .map_err(CasesError::database("find cases due"))?;
                let steps: [(&str, &'static str); 4] = [
                    (
                        "DELETE FROM case_notes WHERE case_id = ANY($1)",
                        "expire case notes",
                    ),
                    (
                        "UPDATE case_history SET reason = $3 WHERE case_id = ANY($1)",
                        "expire case history",
                    ),
                    (
                        "UPDATE referrals SET note = CASE WHEN note = '' THEN '' ELSE $3 END, \
                            consent_statement = CASE WHEN consent_statement IS NULL THEN NULL ELSE $3 END, \
                            outcome_note = CASE WHEN outcome_note IS NULL THEN NULL ELSE $3 END \
                         WHERE case_id = ANY($1)",
                        "expire referrals",
                    ),
                    (
                        "UPDATE cases SET notes_expired_at = $2 WHERE id = ANY($1)",
                        "mark cases expired",
                    ),
                ];
                for (statement, operation) in steps {
                    sqlx::query(statement)
                        .bind(&due)
                        .bind(now)
                        .bind(EXPIRED)
                        .execute(&mut *tx)
                        .await
                        .map_err(CasesError::database(operation))?;
                }
                due.len() as u64
            }
            RetentionCategory::ReadLog => sqlx::query("DELETE FROM personal_data_reads WHERE at < $1")
                .bind(cutoff)
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
            "INSERT INTO retention_runs (id, category, ran_at, cutoff, affected) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(Uuid::now_v7())
        .bind(run.category.as_str())
        .bind(run.ran_at)
        .bind(run.cutoff)
        .bind(i64::try_from(run.affected).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(CasesError::database("record retention run"))?;
        Ok(())
    }

    async fn retention_runs(&self, limit: usize) -> CasesResult<Vec<RetentionRun>> {
        sqlx::query_as::<_, (String, DateTime<Utc>, DateTime<Utc>, i64)>(
            "SELECT category, ran_at, cutoff, affected FROM retention_runs ORDER BY ran_at DESC, id DESC LIMIT $1",
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(CasesError::database("read retention runs"))?
        .into_iter()
        .map(|(category, ran_at, cutoff, affected)| retention_run(&category, ran_at, cutoff, affected))
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
        let mut tx = self.pool.begin().await.map_err(CasesError::database("begin"))?;
        // Locked, so the case cannot be closed between the check and the insert.
        let Some(case) = current_case(&mut tx, referral.case_id).await? else {
            return Ok(None);
        };
        let planned = plan_referral(&case, referral, partner, Utc::now())?;
        insert_referral(&mut tx, &planned.referral).await?;
        insert_outbox(&mut tx, &[planned.event]).await?;
        tx.commit().await.map_err(CasesError::database("commit"))?;
        Ok(Some(planned.referral))
    }

    #[tracing::instrument(name = "cases.record_referral_outcome", skip_all, fields(referral_id = %outcome.referral_id))]
    async fn record_referral_outcome(&self, outcome: &ReferralOutcome) -> CasesResult<Option<Referral>> {
        let mut tx = self.pool.begin().await.map_err(CasesError::database("begin"))?;
        // Locked, so two reports of the same referral are checked one after the other.
        let row = sqlx::query(
            "SELECT id, case_id, partner_id, kind, consent_statement, consent_given_at, note, made_by, made_at, \
                    status, outcome_note, outcome_reported_by, outcome_reported_at \
             FROM referrals WHERE id = $1 FOR UPDATE",
        )
        .bind(outcome.referral_id.as_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(CasesError::database("read referral for update"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let planned = plan_outcome(&referral(&row)?, outcome, Utc::now())?;
        let updated = &planned.referral;
        sqlx::query(
            "UPDATE referrals SET status = $2, outcome_note = $3, outcome_reported_by = $4, outcome_reported_at = $5 \
             WHERE id = $1",
        )
        .bind(updated.id.as_uuid())
        .bind(updated.status.as_str())
        .bind(updated.outcome_note.as_deref())
        .bind(updated.outcome_reported_by.as_deref())
        .bind(updated.outcome_reported_at)
        .execute(&mut *tx)
        .await
        .map_err(CasesError::database("update referral outcome"))?;
        insert_outbox(&mut tx, &[planned.event]).await?;
        tx.commit().await.map_err(CasesError::database("commit"))?;
        Ok(Some(planned.referral))
    }
}

#[async_trait]
impl OutboxStore for PgCasesStore {
    async fn fetch_unsent(&self, limit: usize) -> Result<Vec<OutboxRecord>, BoxError> {
        let rows = sqlx::query("SELECT event_id, body, traceparent FROM outbox ORDER BY event_id LIMIT $1")
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(CasesError::database("fetch outbox"))?;
        rows.iter()
            .map(|row| {
                let error = || CasesError::database("read outbox");
                Ok(OutboxRecord {
                    event_id: row.try_get("event_id").map_err(error())?,
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
        sqlx::query("DELETE FROM outbox WHERE event_id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await
            .map_err(CasesError::database("delete outbox"))?;
        Ok(())
    }
}

async fn insert_referral(tx: &mut Transaction<'static, Postgres>, referral: &Referral) -> CasesResult<()> {
    sqlx::query(
        "INSERT INTO referrals (id, case_id, partner_id, kind, consent_statement, consent_given_at, note, \
                                made_by, made_at, status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(referral.id.as_uuid())
    .bind(referral.case_id.as_uuid())
    .bind(referral.partner_id.as_str())
    .bind(referral.kind.as_str())
    .bind(
        referral
            .consent
            .as_ref()
            .map(|consent| consent.statement.as_str()),
    )
    .bind(referral.consent.as_ref().map(|consent| consent.given_at))
    .bind(&referral.note)
    .bind(&referral.made_by)
    .bind(referral.made_at)
    .bind(referral.status.as_str())
    .execute(&mut **tx)
    .await
    .map_err(CasesError::database("insert referral"))?;
    Ok(())
}

/// The referrals of a case, oldest first.
async fn case_referrals(pool: &PgPool, case_id: CaseId) -> CasesResult<Vec<Referral>> {
    sqlx::query(
        "SELECT id, case_id, partner_id, kind, consent_statement, consent_given_at, note, made_by, made_at, \
                status, outcome_note, outcome_reported_by, outcome_reported_at \
         FROM referrals WHERE case_id = $1 ORDER BY made_at, id",
    )
    .bind(case_id.as_uuid())
    .fetch_all(pool)
    .await
    .map_err(CasesError::database("read referrals"))?
    .iter()
    .map(referral)
    .collect()
}

fn referral(row: &PgRow) -> CasesResult<Referral> {
    let error = || CasesError::database("read referral");
    StoredReferral {
        id: ReferralId::from_uuid(row.try_get("id").map_err(error())?),
        case_id: CaseId::from_uuid(row.try_get("case_id").map_err(error())?),
        partner_id: row.try_get("partner_id").map_err(error())?,
        kind: row.try_get("kind").map_err(error())?,
        consent_statement: row.try_get("consent_statement").map_err(error())?,
        consent_given_at: row.try_get("consent_given_at").map_err(error())?,
        note: row.try_get("note").map_err(error())?,
        made_by: row.try_get("made_by").map_err(error())?,
        made_at: row.try_get("made_at").map_err(error())?,
        status: row.try_get("status").map_err(error())?,
        outcome_note: row.try_get("outcome_note").map_err(error())?,
        outcome_reported_by: row.try_get("outcome_reported_by").map_err(error())?,
        outcome_reported_at: row.try_get("outcome_reported_at").map_err(error())?,
    }
    .into_referral()
}
