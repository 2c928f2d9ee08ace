//! One contract for every `IntakeStore`, run against PostgreSQL (a fresh
//! database per test) and SQLite (a fresh directory per test).

mod common;

use std::sync::Arc;

use prost::Message;
use switchboard_bus::OutboxStore;
use switchboard_domain::ContactReference;
use switchboard_intake::store::{BatchOutcome, IntakeStore, PendingContact};
use switchboard_intake::writer::Written;
use switchboard_intake::{IntakeError, IntakeMetrics, WriterConfig, spawn_writer};
use switchboard_proto::v1::{self, event::Payload};
use tokio::sync::Notify;

use common::{StoreGuard, TestStore, pending};

/// Stores a batch: every row of every submission, and reads the contact back.
async fn commit_batch_stores_contacts_keys_and_outbox<S: IntakeStore>(test: TestStore<S>) {
    let store = test.store;
    let batch = vec![pending(None), pending(Some(("key-1", 1))), pending(None)];
    let outcomes = store.commit_batch(&batch).await.expect("commit");
    assert_eq!(outcomes, vec![BatchOutcome::Stored; 3]);
    assert_eq!(store.contact_count().await.expect("count"), 3);
    assert_eq!(store.unsent_outbox_count().await.expect("count"), 3);

    let stored = store
        .contact(batch[1].contact.id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.reference, batch[1].contact.reference);
    assert_eq!(stored.contact, batch[1].contact.contact);
    assert_eq!(
        stored.received_at.timestamp_micros(),
        batch[1].contact.received_at.timestamp_micros()
    );
    assert!(
        store
            .contact(switchboard_domain::ContactId::new())
            .await
            .expect("read")
            .is_none()
    );
    store.ping().await.expect("ping");
}

/// Concurrent submissions through the writer share transactions.
async fn group_commit_of_concurrent_submissions<S: IntakeStore>(test: TestStore<S>) {
    let store = Arc::new(CountingStore {
        inner: test.store.clone(),
        commits: Default::default(),
    });
    let wake = Arc::new(Notify::new());
    let (writer, _task) = spawn_writer(
        store.clone(),
        wake.clone(),
        WriterConfig::default(),
        IntakeMetrics::new(),
    );
    let submissions = 400;
    let written = futures::future::join_all((0..submissions).map(|_| {
        let writer = writer.clone();
        tokio::spawn(async move { writer.write(pending(None)).await })
    }))
    .await;
    for result in written {
        assert!(matches!(
            result.expect("task").expect("written"),
            Written::Stored { .. }
        ));
    }
    assert_eq!(test.store.contact_count().await.expect("count"), submissions);
    assert_eq!(
        test.store.unsent_outbox_count().await.expect("count"),
        submissions
    );
    let commits = store.commits.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        commits < submissions / 4,
        "{submissions} submissions took {commits} commits: not grouped"
    );
    // The relay was told there is something to publish.
    tokio::time::timeout(std::time::Duration::from_secs(1), wake.notified())
        .await
        .expect("relay woken");
}

/// The same key in a later batch: nothing stored, the holder named.
async fn idempotency_key_taken_by_an_earlier_batch<S: IntakeStore>(test: TestStore<S>) {
    let store = test.store;
    let first = pending(Some(("same-key", 7)));
    assert_eq!(
        store
            .commit_batch(std::slice::from_ref(&first))
            .await
            .expect("first"),
        vec![BatchOutcome::Stored]
    );

    for hash_byte in [7, 8] {
        let again = pending(Some(("same-key", hash_byte)));
        let outcomes = store.commit_batch(&[again]).await.expect("again");
        let BatchOutcome::KeyTaken(holder) = &outcomes[0] else {
            panic!("key not taken: {outcomes:?}")
        };
        assert_eq!(holder.contact_id, first.contact.id);
        assert_eq!(holder.reference, first.contact.reference);
        assert_eq!(holder.request_hash, vec![7; 32]);
    }
    assert_eq!(store.contact_count().await.expect("count"), 1);
    assert_eq!(store.unsent_outbox_count().await.expect("count"), 1);
}

/// The same key twice in one batch: the first submission holds it.
async fn idempotency_key_twice_in_one_batch<S: IntakeStore>(test: TestStore<S>) {
    let store = test.store;
    let batch = vec![
        pending(Some(("twice", 1))),
        pending(None),
        pending(Some(("twice", 1))),
    ];
    let outcomes = store.commit_batch(&batch).await.expect("commit");
    assert_eq!(outcomes[0], BatchOutcome::Stored);
    assert_eq!(outcomes[1], BatchOutcome::Stored);
    let BatchOutcome::KeyTaken(holder) = &outcomes[2] else {
        panic!("key not taken: {outcomes:?}")
    };
    assert_eq!(holder.contact_id, batch[0].contact.id);
    assert_eq!(store.contact_count().await.expect("count"), 2);
    assert_eq!(store.unsent_outbox_count().await.expect("count"), 2);
}

/// One key submitted concurrently, through two independent stores (two
/// processes) each with its own writer: one contact, every caller pointed at it.
async fn concurrent_same_key_across_writers<S: IntakeStore>(test: TestStore<S>, second: Arc<S>) {
    let config = WriterConfig {
        max_batch: 8,
        ..WriterConfig::default()
    };
    let (writer_a, _a) = spawn_writer(
        test.store.clone(),
        Arc::new(Notify::new()),
        config.clone(),
        IntakeMetrics::new(),
    );
    let (writer_b, _b) = spawn_writer(second, Arc::new(Notify::new()), config, IntakeMetrics::new());
    let written = futures::future::join_all((0..40).map(|index| {
        let writer = if index % 2 == 0 {
            writer_a.clone()
        } else {
            writer_b.clone()
        };
        tokio::spawn(async move { writer.write(pending(Some(("contended", 3)))).await })
    }))
    .await;
    let mut stored = Vec::new();
    let mut holders = Vec::new();
    for result in written {
        match result.expect("task").expect("written") {
            Written::Stored { reference } => stored.push(reference),
            Written::KeyTaken(holder) => holders.push(holder),
        }
    }
    assert_eq!(stored.len(), 1, "exactly one submission stores");
    assert!(holders.iter().all(|holder| holder.reference == stored[0]));
    assert_eq!(test.store.contact_count().await.expect("count"), 1);
    assert_eq!(test.store.unsent_outbox_count().await.expect("count"), 1);
}

/// The relay's side: oldest first, limited, deleted once sent.
async fn outbox_fetch_and_delete<S: IntakeStore>(test: TestStore<S>) {
    let store = test.store;
    let batch: Vec<PendingContact> = (0..5).map(|_| pending(None)).collect();
    store.commit_batch(&batch).await.expect("commit");

    let first = store.fetch_unsent(3).await.expect("fetch");
    let expected: Vec<_> = batch
        .iter()
        .take(3)
        .map(|pending| pending.outbox.event_id)
        .collect();
    assert_eq!(
        first.iter().map(|record| record.event_id).collect::<Vec<_>>(),
        expected,
        "oldest first"
    );
    assert_eq!(first[0].body, batch[0].outbox.body);
    assert_eq!(first[0].traceparent, batch[0].outbox.traceparent);
    let event = v1::Event::decode(first[0].body.as_slice()).expect("an encoded Event");
    assert_eq!(event.r#type, "contact.received");

    store
        .delete_sent(&first.iter().map(|record| record.event_id).collect::<Vec<_>>())
        .await
        .expect("delete");
    store.delete_sent(&[]).await.expect("deleting nothing is fine");
    let rest = store.fetch_unsent(10).await.expect("fetch");
    assert_eq!(rest.len(), 2);
    assert_eq!(store.unsent_outbox_count().await.expect("count"), 2);
    assert_eq!(store.contact_count().await.expect("count"), 5, "contacts stay");
}

/// A reference collision rolls the whole batch back: no contact, key or
/// outbox row of it remains, and the key is still free.
async fn reference_collision_stores_nothing<S: IntakeStore>(test: TestStore<S>) {
    let store = test.store;
    let first = pending(None);
    store
        .commit_batch(std::slice::from_ref(&first))
        .await
        .expect("first");

    let bystander = pending(Some(("bystander", 1)));
    let mut colliding = pending(None);
    colliding.contact.reference = first.contact.reference.clone();
    let error = store
        .commit_batch(&[bystander.clone(), colliding.clone()])
        .await
        .expect_err("collision");
    match error {
        IntakeError::ReferenceTaken { contact_ids } => assert_eq!(contact_ids, vec![colliding.contact.id]),
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(store.contact_count().await.expect("count"), 1);
    assert_eq!(store.unsent_outbox_count().await.expect("count"), 1);
    assert_eq!(
        store.commit_batch(&[bystander]).await.expect("key is free"),
        vec![BatchOutcome::Stored]
    );
}

/// A batch failing half-way (here a duplicate event id) stores nothing.
async fn failed_batch_stores_nothing<S: IntakeStore>(test: TestStore<S>) {
    let store = test.store;
    let first = pending(Some(("first-key", 1)));
    let mut second = pending(None);
    second.outbox.event_id = first.outbox.event_id;
    let error = store
        .commit_batch(&[first.clone(), second])
        .await
        .expect_err("duplicate event id");
    assert!(
        matches!(error, IntakeError::Database(_)),
        "unexpected error {error:?}"
    );
    assert_eq!(store.contact_count().await.expect("count"), 0);
    assert_eq!(store.unsent_outbox_count().await.expect("count"), 0);
    assert_eq!(
        store.commit_batch(&[first]).await.expect("key is free"),
        vec![BatchOutcome::Stored]
    );
}

/// The writer gives a collided contact a new reference, in its row, its event
/// and its answer alike.
async fn writer_regenerates_a_taken_reference<S: IntakeStore>(test: TestStore<S>) {
    let store = test.store;
    let first = pending(None);
    store
        .commit_batch(std::slice::from_ref(&first))
        .await
        .expect("first");

    let (writer, _task) = spawn_writer(
        store.clone(),
        Arc::new(Notify::new()),
        WriterConfig::default(),
        IntakeMetrics::new(),
    );
    let mut colliding = pending(None);
    colliding.contact.reference = first.contact.reference.clone();
    let id = colliding.contact.id;
    let event_id = colliding.outbox.event_id;
    let Written::Stored { reference } = writer.write(colliding).await.expect("written") else {
        panic!("not stored")
    };
    assert_ne!(reference, first.contact.reference);
    assert_eq!(
        store.contact(id).await.expect("read").expect("stored").reference,
        reference
    );
    let record = store
        .fetch_unsent(10)
        .await
        .expect("fetch")
        .into_iter()
        .find(|record| record.event_id == event_id)
        .expect("its outbox row");
    let event = v1::Event::decode(record.body.as_slice()).expect("event");
    let Some(Payload::ContactReceived(received)) = event.payload else {
        panic!("not contact.received")
    };
    assert_eq!(
        ContactReference::parse(&received.reference).expect("reference"),
        reference
    );
}

/// Counts commits, to see group commit at work.
struct CountingStore<S> {
    inner: Arc<S>,
    commits: std::sync::atomic::AtomicU64,
}

#[async_trait::async_trait]
impl<S: IntakeStore> IntakeStore for CountingStore<S> {
    async fn commit_batch(
        &self,
        batch: &[PendingContact],
    ) -> switchboard_intake::IntakeResult<Vec<BatchOutcome>> {
        self.commits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.commit_batch(batch).await
    }
    async fn ping(&self) -> switchboard_intake::IntakeResult<()> {
        self.inner.ping().await
    }
    async fn unsent_outbox_count(&self) -> switchboard_intake::IntakeResult<u64> {
        self.inner.unsent_outbox_count().await
    }
    async fn contact_count(&self) -> switchboard_intake::IntakeResult<u64> {
        self.inner.contact_count().await
    }
    async fn contact(
        &self,
        id: switchboard_domain::ContactId,
    ) -> switchboard_intake::IntakeResult<Option<switchboard_intake::store::StoredContact>> {
        self.inner.contact(id).await
    }

    async fn expire_contacts(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> switchboard_intake::IntakeResult<u64> {
        self.inner.expire_contacts(cutoff, now).await
    }
}

#[async_trait::async_trait]
impl<S: IntakeStore> OutboxStore for CountingStore<S> {
    async fn fetch_unsent(
        &self,
        limit: usize,
    ) -> Result<Vec<switchboard_bus::OutboxRecord>, switchboard_bus::BoxError> {
        self.inner.fetch_unsent(limit).await
    }
    async fn delete_sent(&self, ids: &[uuid::Uuid]) -> Result<(), switchboard_bus::BoxError> {
        self.inner.delete_sent(ids).await
    }
}

/// The retention schedule: contacts received before the cutoff keep their
/// id, reference, channel and service and lose what identifies the
/// resident, once; their idempotency keys go.
async fn expired_contacts_keep_nothing_that_identifies_the_resident<S: IntakeStore>(test: TestStore<S>) {
    let store = test.store;
    let batch = vec![pending(Some(("old-key", 1))), pending(None)];
    store.commit_batch(&batch).await.expect("commit");
    let now = chrono::Utc::now();
    // Nothing was received a day ago.
    assert_eq!(
        store
            .expire_contacts(now - chrono::Duration::days(1), now)
            .await
            .expect("expire"),
        0
    );
    let later = now + chrono::Duration::days(31);
    assert_eq!(
        store
            .expire_contacts(later - chrono::Duration::days(30), later)
            .await
            .expect("expire"),
        2
    );
    let stored = store
        .contact(batch[0].contact.id)
        .await
        .expect("read")
        .expect("stored");
    let original = &batch[0].contact.contact;
    assert_eq!(stored.reference, batch[0].contact.reference);
    assert_eq!(stored.contact.channel, original.channel);
    assert_eq!(stored.contact.service, original.service);
    assert_eq!(
        stored.contact.customer,
        switchboard_domain::CustomerDetails::default()
    );
    assert!(stored.contact.summary.is_empty() && stored.contact.details.is_empty());
    assert_eq!(stored.contact.needs, switchboard_domain::Needs::default());
    match &stored.contact.origin {
        switchboard_domain::ContactOrigin::Phone {
            caller_number,
            call_id,
            dialled_number,
        } => {
            assert!(caller_number.is_none() && call_id.is_none());
            assert!(dialled_number.is_some(), "the council's own number stays");
        }
        other => panic!("expected a phone origin, got {other:?}"),
    }
    // Once only; the key is free again.
    assert_eq!(
        store
            .expire_contacts(later - chrono::Duration::days(30), later)
            .await
            .expect("expire"),
        0
    );
    let again = pending(Some(("old-key", 1)));
    assert_eq!(
        store.commit_batch(&[again]).await.expect("commit"),
        vec![BatchOutcome::Stored]
    );
}

/// Runs every contract test against one implementation.
macro_rules! store_contract {
    ($module:ident, $open:path, $second:ident) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn commit_batch_stores_contacts_keys_and_outbox() {
                super::commit_batch_stores_contacts_keys_and_outbox($open().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn group_commit_of_concurrent_submissions() {
                super::group_commit_of_concurrent_submissions($open().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn idempotency_key_taken_by_an_earlier_batch() {
                super::idempotency_key_taken_by_an_earlier_batch($open().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn idempotency_key_twice_in_one_batch() {
                super::idempotency_key_twice_in_one_batch($open().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_same_key_across_writers() {
                let test = $open().await;
                let second = Arc::new(StoreGuard::$second(&test.guard).await);
                super::concurrent_same_key_across_writers(test, second).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn outbox_fetch_and_delete() {
                super::outbox_fetch_and_delete($open().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn reference_collision_stores_nothing() {
                super::reference_collision_stores_nothing($open().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn failed_batch_stores_nothing() {
                super::failed_batch_stores_nothing($open().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn expired_contacts_keep_nothing_that_identifies_the_resident() {
                super::expired_contacts_keep_nothing_that_identifies_the_resident($open().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn writer_regenerates_a_taken_reference() {
                super::writer_regenerates_a_taken_reference($open().await).await;
            }
        }
    };
}

store_contract!(postgres, common::postgres_store, second_postgres);
store_contract!(sqlite, common::sqlite_store, second_sqlite);

/// What each implementation promises about where and how it stores.
mod settings {
    use super::*;

    #[tokio::test]
    async fn postgres_tables_live_in_the_intake_schema() {
        let test = common::postgres_store().await;
        for table in ["contacts", "idempotency_keys", "outbox", "_sqlx_migrations"] {
            let found: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
                .bind(format!("intake.{table}"))
                .fetch_one(test.store.pool())
                .await
                .expect("query");
            assert!(found.is_some(), "intake.{table} missing");
        }
        // Connecting again finds the schema and the migrations already there.
        let StoreGuard::Postgres(database) = &test.guard else {
            unreachable!()
        };
        switchboard_intake::PgIntakeStore::connect(&database.url)
            .await
            .expect("second connect");
    }

    #[tokio::test]
    async fn sqlite_is_wal_with_full_synchronous_in_intake_db() {
        let test = common::sqlite_store().await;
        let StoreGuard::Sqlite(directory) = &test.guard else {
            unreachable!()
        };
        assert!(directory.path().join("intake.db").exists());
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(test.store.pool())
            .await
            .expect("pragma");
        assert_eq!(journal, "wal");
        // 2 = FULL: an answered contact survives power loss.
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(test.store.pool())
            .await
            .expect("pragma");
        assert_eq!(synchronous, 2);
    }
}
