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
use switchboard_domain::{CaseId, ContactId, CustomerId, EventId};
use uuid::Uuid;

use crate::error::{CasesError, CasesResult};
use crate::lifecycle::{
    ACTOR_ROUTING, CaseNote, CaseRules, ContactOutcome, CurrentCase, IncomingOutcome, StatusChange,
    StatusRecord, StatusUpdate, check_transition, is_reopen, plan_status_change, status_after,
};
use crate::model::{
    ApplyOutcome, Case, CaseDetail, CaseKey, CaseStatus, Contact, Customer, CustomerSearch, EntryKind,
    IncomingContact, PageToken, QuotedReference, SEARCH_PAGE_MAX, TIMELINE_PAGE_MAX, Timeline, fold_name,
    to_micros,
};
use crate::plan::{
    self, BatchPlan, CustomerRow, LookupKeys, OpenCaseRow, OutboxRow, REFERENCE_ATTEMPTS, Snapshot,
};
use crate::store::{CasesStore, StoredCase, StoredContact, assemble_timeline, clamp_page};

// Column lists as macros so `concat!` builds each statement as one literal:
// SQL here is never formatted at run time.
macro_rules! customer_columns {
    () => {
        "id, name, phone_e164, email, postcode, address_line, uprn, created_at"
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

    async fn snapshot(
        tx: &mut Transaction<'static, Postgres>,
        keys: &LookupKeys,
        resolved_since: DateTime<Utc>,
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

        if keys.phones.is_empty() && keys.emails.is_empty() {
            return Ok(snapshot);
        }
        snapshot.customers = sqlx::query(concat!(
            "SELECT ",
            customer_columns!(),
            " FROM customers WHERE phone_e164 = ANY($1) OR email = ANY($2)"
        ))
        .bind(&keys.phones)
        .bind(&keys.emails)
        .fetch_all(&mut **tx)
        .await
        .map_err(CasesError::database("look up customers"))?
        .iter()
        .map(customer_row)
        .collect::<CasesResult<_>>()?;
        if snapshot.customers.is_empty() {
            return Ok(snapshot);
        }

        let customer_ids: Vec<Uuid> = snapshot.customers.iter().map(|row| row.id.as_uuid()).collect();
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
            sqlx::query(
                "INSERT INTO customers (id, name, name_folded, phone_e164, email, postcode, address_line, uprn, created_at) \
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[])",
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
    })
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
        let lock_keys = keys.lock_keys();
        if !lock_keys.is_empty() {
            // Transaction-scoped advisory locks, one per phone or email in the
            // batch, taken in sorted order: another consumer applying a contact
            // of the same resident waits here, then sees this batch's customer.
            sqlx::query(
                "SELECT count(pg_advisory_xact_lock(hashtextextended(key, 0))) \
                 FROM (SELECT key FROM unnest($1::text[]) AS t(key) ORDER BY key) AS keys",
            )
            .bind(&lock_keys)
            .execute(&mut *tx)
            .await
            .map_err(CasesError::database("lock identities"))?;
        }
        let now = Utc::now();
        let snapshot = Self::snapshot(&mut tx, &keys, now - self.rules.follow_up_window()).await?;
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
            " FROM customers WHERE true"
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
                .push(" AND strpos(name_folded, ")
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
        Ok(Some(CaseDetail { case, notes, history }))
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
