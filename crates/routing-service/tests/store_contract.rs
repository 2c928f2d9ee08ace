//! The one contract suite of `RoutingStore`, run against PostgreSQL (a fresh
//! database per test) and SQLite (a fresh file per test), so the two
//! implementations cannot drift apart.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use prost::Message as _;
use serde_json::{Value, json};
use switchboard_bus::OutboxRecord;
use switchboard_proto::v1;
use switchboard_routing_service::{
    JournalRow, PgRoutingStore, Record, RouterError, RoutingStore, SqliteRoutingStore,
};
use switchboard_runtime::testing::TestDatabase;
use uuid::Uuid;

/// Keeps a test's database alive for as long as the test holds it.
#[allow(dead_code)]
enum StoreGuard {
    Postgres(TestDatabase),
    Sqlite(tempfile::TempDir),
}

/// A fresh database on the test PostgreSQL server, migrated.
async fn postgres_store() -> (Arc<dyn RoutingStore>, StoreGuard) {
    let database = switchboard_runtime::testing::fresh_postgres().await;
    let store = PgRoutingStore::connect(&database.url)
        .await
        .unwrap_or_else(|error| panic!("cannot open the routing store on {}: {error:?}", database.url));
    (Arc::new(store), StoreGuard::Postgres(database))
}

/// A fresh `routing.db` in a temporary data dir, migrated.
async fn sqlite_store() -> (Arc<dyn RoutingStore>, StoreGuard) {
    let data_dir = tempfile::tempdir().expect("temporary data dir");
    let store = SqliteRoutingStore::open(data_dir.path())
        .await
        .expect("open the sqlite routing store");
    assert!(
        data_dir.path().join("routing.db").exists(),
        "the store lives in routing.db"
    );
    (Arc::new(store), StoreGuard::Sqlite(data_dir))
}

/// A time with every microsecond digit set, so a store that kept only
/// milliseconds (or seconds) would not read it back equal.
fn at(offset_seconds: i64) -> DateTime<Utc> {
    let base = Utc
        .with_ymd_and_hms(2025, 3, 14, 9, 26, 53)
        .single()
        .expect("valid time");
    base + Duration::microseconds(589_793) + Duration::seconds(offset_seconds)
}

fn entry(seq: u64, is_base: bool) -> JournalRow {
    let entry = if is_base {
        json!({"base": {"config": {"queues": ["council-tax", "housing"]}, "seq": seq}})
    } else {
        json!({"input": {"kind": "offer_accepted", "seq": seq, "note": "naïve café £"}})
    };
    JournalRow {
        seq,
        recorded_at: at(i64::try_from(seq).expect("small seq")),
        is_base,
        entry: entry.to_string(),
    }
}

/// A record holding only journal entries.
fn entries(rows: Vec<JournalRow>) -> Record {
    Record {
        entries: rows,
        ..Record::default()
    }
}

/// An outbox record whose body is a real encoded event.
fn event(event_type: &str) -> OutboxRecord {
    let event_id = Uuid::now_v7();
    let event = v1::Event {
        id: event_id.to_string(),
        r#type: event_type.to_owned(),
        source: "routing".to_owned(),
        subject: Uuid::now_v7().to_string(),
        ..v1::Event::default()
    };
    OutboxRecord {
        event_id,
        body: event.encode_to_vec(),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()),
    }
}

/// The journal's entries compared as JSON values: the store keeps the JSON,
/// not necessarily its spacing or key order.
fn assert_same_journal(actual: &[JournalRow], expected: &[JournalRow]) {
    let seqs = |rows: &[JournalRow]| rows.iter().map(|row| row.seq).collect::<Vec<_>>();
    assert_eq!(seqs(actual), seqs(expected), "sequence numbers in order");
    for (actual, expected) in actual.iter().zip(expected) {
        assert_eq!(
            actual.recorded_at, expected.recorded_at,
            "time of entry {}",
            expected.seq
        );
        assert_eq!(
            actual.is_base, expected.is_base,
            "base flag of entry {}",
            expected.seq
        );
        let actual_entry: Value = serde_json::from_str(&actual.entry).expect("stored entry is json");
        let expected_entry: Value = serde_json::from_str(&expected.entry).expect("test entry is json");
        assert_eq!(actual_entry, expected_entry, "entry {}", expected.seq);
    }
}

async fn unsent_ids(store: &dyn RoutingStore) -> Vec<Uuid> {
    store
        .fetch_unsent(10_000)
        .await
        .expect("fetch unsent")
        .iter()
        .map(|record| record.event_id)
        .collect()
}

async fn a_record_reads_back_from_the_journal_in_order(store: &dyn RoutingStore) {
    assert!(
        store.journal("p0").await.expect("journal").is_empty(),
        "a partition never written has an empty journal"
    );
    let first = vec![entry(1, true), entry(2, false)];
    let second = vec![entry(3, false), entry(4, false), entry(5, false)];
    store.record("p0", &entries(first.clone())).await.expect("record");
    store
        .record("p0", &entries(second.clone()))
        .await
        .expect("record");

    let journal = store.journal("p0").await.expect("journal");
    let expected: Vec<JournalRow> = first.into_iter().chain(second).collect();
    assert_same_journal(&journal, &expected);
    assert_eq!(
        journal[0].recorded_at.timestamp_subsec_micros(),
        589_793,
        "times keep their microseconds"
    );
    assert!(
        journal[1].entry.contains("naïve café £"),
        "text survives as written"
    );
}

async fn the_journal_starts_at_the_latest_base(store: &dyn RoutingStore) {
    store
        .record(
            "p0",
            &entries(vec![entry(1, true), entry(2, false), entry(3, false)]),
        )
        .await
        .expect("record");
    store
        .record("p0", &entries(vec![entry(4, true), entry(5, false)]))
        .await
        .expect("record");
    let journal = store.journal("p0").await.expect("journal");
    assert_same_journal(&journal, &[entry(4, true), entry(5, false)]);

    store
        .record("p0", &entries(vec![entry(6, true)]))
        .await
        .expect("record");
    let journal = store.journal("p0").await.expect("journal");
    assert_same_journal(&journal, &[entry(6, true)]);
}

async fn without_a_base_the_journal_is_every_entry(store: &dyn RoutingStore) {
    let rows = vec![entry(1, false), entry(2, false), entry(3, false)];
    store.record("p0", &entries(rows.clone())).await.expect("record");
    assert_same_journal(&store.journal("p0").await.expect("journal"), &rows);
}

async fn a_colliding_sequence_number_is_fenced_and_writes_nothing(store: &dyn RoutingStore) {
    let applied_event = Uuid::now_v7();
    let first_event = event("contact.offered");
    let first_contact = Uuid::now_v7();
    store
        .record(
            "p0",
            &Record {
                entries: vec![entry(1, true), entry(2, false)],
                inbox: vec![applied_event],
                outbox: vec![first_event.clone()],
                explanations: vec![(first_contact, r#"{"agent":1}"#.to_owned())],
            },
        )
        .await
        .expect("first router records");

    // A second router, unaware of entry 2, writes its own entries 2 and 3.
    let stale_event = Uuid::now_v7();
    let stale_outbox = event("contact.offered");
    let stale_contact = Uuid::now_v7();
    let error = store
        .record(
            "p0",
            &Record {
                entries: vec![entry(2, false), entry(3, false)],
                inbox: vec![stale_event],
                outbox: vec![stale_outbox],
                explanations: vec![
                    (first_contact, r#"{"agent":2}"#.to_owned()),
                    (stale_contact, r#"{"agent":3}"#.to_owned()),
                ],
            },
        )
        .await
        .expect_err("the second write collides");
    match error {
        RouterError::Fenced { partition } => assert_eq!(partition, "p0"),
        other => panic!("expected fenced, got {other:?}"),
    }

    assert_same_journal(
        &store.journal("p0").await.expect("journal"),
        &[entry(1, true), entry(2, false)],
    );
    let seen = store
        .seen("p0", &[applied_event, stale_event])
        .await
        .expect("seen");
    assert_eq!(
        seen,
        HashSet::from([applied_event]),
        "no inbox row of the fenced record"
    );
    assert_eq!(
        unsent_ids(store).await,
        vec![first_event.event_id],
        "no outbox row of the fenced record"
    );
    assert_eq!(
        store
            .explanation(first_contact)
            .await
            .expect("explanation")
            .as_deref(),
        Some(r#"{"agent":1}"#),
        "the fenced record did not replace an explanation"
    );
    assert_eq!(
        store.explanation(stale_contact).await.expect("explanation"),
        None,
        "the fenced record did not add an explanation"
    );

    // Once caught up, the router writes after the last entry.
    store
        .record("p0", &entries(vec![entry(3, false)]))
        .await
        .expect("the next number is free");
    assert_eq!(store.journal("p0").await.expect("journal").len(), 3);
}

async fn a_malformed_record_is_refused_and_writes_nothing(store: &dyn RoutingStore) {
    let event_id = Uuid::now_v7();
    let error = store
        .record(
            "p0",
            &Record {
                entries: vec![entry(1, true), entry(3, false)],
                inbox: vec![event_id],
                ..Record::default()
            },
        )
        .await
        .expect_err("entries with a gap");
    assert!(
        matches!(error, RouterError::InvalidArgument { field: "entries", .. }),
        "a gap is the caller's bug, not a fence: got {error:?}"
    );

    let mut undecodable = event("contact.queued");
    undecodable.body = b"not an event".to_vec();
    let error = store
        .record(
            "p0",
            &Record {
                entries: vec![entry(1, true)],
                inbox: vec![event_id],
                outbox: vec![undecodable],
                ..Record::default()
            },
        )
        .await
        .expect_err("an outbox body that does not decode");
    assert!(!matches!(error, RouterError::Fenced { .. }), "got {error:?}");

    assert!(
        store.journal("p0").await.expect("journal").is_empty(),
        "no journal entry"
    );
    assert!(
        store.seen("p0", &[event_id]).await.expect("seen").is_empty(),
        "no inbox row"
    );
    assert!(unsent_ids(store).await.is_empty(), "no outbox row");
}

async fn partitions_are_independent(store: &dyn RoutingStore) {
    let event_id = Uuid::now_v7();
    store
        .record(
            "p0",
            &Record {
                entries: vec![entry(1, true), entry(2, false)],
                inbox: vec![event_id],
                ..Record::default()
            },
        )
        .await
        .expect("record p0");
    store
        .record("p1", &entries(vec![entry(1, true)]))
        .await
        .expect("the same number in another partition is no collision");

    assert_eq!(store.journal("p0").await.expect("journal").len(), 2);
    assert_same_journal(&store.journal("p1").await.expect("journal"), &[entry(1, true)]);
    assert_eq!(
        store.seen("p0", &[event_id]).await.expect("seen"),
        HashSet::from([event_id])
    );
    assert!(
        store.seen("p1", &[event_id]).await.expect("seen").is_empty(),
        "the inbox is per partition"
    );

    // The same event applied by the other partition too.
    store
        .record(
            "p1",
            &Record {
                entries: vec![entry(2, false)],
                inbox: vec![event_id],
                ..Record::default()
            },
        )
        .await
        .expect("record p1");
    assert_eq!(
        store.seen("p1", &[event_id]).await.expect("seen"),
        HashSet::from([event_id])
    );

    assert_eq!(store.compact("p1", 2).await.expect("compact"), 1);
    assert_eq!(
        store.journal("p0").await.expect("journal").len(),
        2,
        "compacting one partition leaves the other alone"
    );
}

async fn compact_deletes_only_entries_before_the_given_one(store: &dyn RoutingStore) {
    store
        .record(
            "p0",
            &entries(vec![
                entry(1, true),
                entry(2, false),
                entry(3, false),
                entry(4, true),
            ]),
        )
        .await
        .expect("record");
    store
        .record("p0", &entries(vec![entry(5, false)]))
        .await
        .expect("record");

    assert_eq!(
        store.compact("p0", 1).await.expect("compact"),
        0,
        "nothing before the first"
    );
    assert_eq!(store.compact("p0", 4).await.expect("compact"), 3);
    assert_same_journal(
        &store.journal("p0").await.expect("journal"),
        &[entry(4, true), entry(5, false)],
    );
    assert_eq!(
        store.compact("p0", 4).await.expect("compact"),
        0,
        "compacting again is a no-op"
    );

    // Entries kept still fence: 4 and 5 cannot be written again.
    let error = store
        .record("p0", &entries(vec![entry(5, false)]))
        .await
        .expect_err("entry 5 exists");
    assert!(matches!(error, RouterError::Fenced { .. }), "got {error:?}");
}

async fn seen_returns_only_applied_events(store: &dyn RoutingStore) {
    let applied = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
    let unknown = Uuid::now_v7();
    store
        .record(
            "p0",
            &Record {
                entries: vec![entry(1, true)],
                inbox: applied[..2].to_vec(),
                ..Record::default()
            },
        )
        .await
        .expect("record");
    store
        .record(
            "p0",
            &Record {
                entries: vec![entry(2, false)],
                inbox: vec![applied[2]],
                ..Record::default()
            },
        )
        .await
        .expect("record");

    assert!(store.seen("p0", &[]).await.expect("seen").is_empty());
    assert_eq!(
        store
            .seen("p0", &[unknown, applied[0], applied[2]])
            .await
            .expect("seen"),
        HashSet::from([applied[0], applied[2]])
    );
    assert!(store.seen("p0", &[unknown]).await.expect("seen").is_empty());
}

async fn agents_are_numbered_once_and_keep_their_number(store: &dyn RoutingStore) {
    assert!(store.agents().await.expect("agents").is_empty());
    assert_eq!(
        store.agent_by_subject("staff-ada").await.expect("by subject"),
        None
    );

    let ada = store
        .put_agent("staff-ada", r#"{"skills":["council-tax"]}"#)
        .await
        .expect("put ada");
    let bob = store
        .put_agent("staff-bob", r#"{"skills":["housing"]}"#)
        .await
        .expect("put bob");
    assert_eq!(ada.subject, "staff-ada");
    assert_eq!(ada.profile, r#"{"skills":["council-tax"]}"#);
    assert_ne!(ada.agent_id, bob.agent_id, "each agent gets its own number");

    let updated = store
        .put_agent("staff-ada", r#"{"skills":["council-tax","housing"]}"#)
        .await
        .expect("update ada");
    assert_eq!(updated.agent_id, ada.agent_id, "the number survives an update");
    assert_eq!(updated.profile, r#"{"skills":["council-tax","housing"]}"#);

    assert_eq!(
        store.agent_by_subject("staff-ada").await.expect("by subject"),
        Some(updated.clone())
    );
    assert_eq!(
        store.agent_by_id(bob.agent_id).await.expect("by id"),
        Some(bob.clone())
    );
    assert_eq!(store.agent_by_id(bob.agent_id + 1000).await.expect("by id"), None);
    assert_eq!(store.agent_by_id(u64::MAX).await.expect("by id"), None);

    let cy = store.put_agent("staff-cy", "{}").await.expect("put cy");
    assert!(
        cy.agent_id != ada.agent_id && cy.agent_id != bob.agent_id,
        "a new agent gets a new number"
    );
    // Put last, listed first: subjects sort by their bytes, whatever the
    // database's collation, so both stores list agents alike.
    let zed = store.put_agent("staff-Zed", "{}").await.expect("put zed");
    let subjects: Vec<String> = store
        .agents()
        .await
        .expect("agents")
        .into_iter()
        .map(|agent| agent.subject)
        .collect();
    assert_eq!(
        subjects,
        ["staff-Zed", "staff-ada", "staff-bob", "staff-cy"],
        "by subject"
    );
    assert_eq!(store.agents().await.expect("agents"), vec![zed, updated, bob, cy]);
}

async fn a_later_explanation_replaces_the_earlier(store: &dyn RoutingStore) {
    let contact = Uuid::now_v7();
    let other = Uuid::now_v7();
    assert_eq!(store.explanation(contact).await.expect("explanation"), None);

    store
        .record(
            "p0",
            &Record {
                entries: vec![entry(1, true)],
                explanations: vec![
                    (contact, r#"{"offered_to":1}"#.to_owned()),
                    (other, r#"{"offered_to":7}"#.to_owned()),
                ],
                ..Record::default()
            },
        )
        .await
        .expect("record");
    assert_eq!(
        store.explanation(contact).await.expect("explanation").as_deref(),
        Some(r#"{"offered_to":1}"#)
    );

    store
        .record(
            "p0",
            &Record {
                entries: vec![entry(2, false)],
                explanations: vec![(contact, r#"{"offered_to":2}"#.to_owned())],
                ..Record::default()
            },
        )
        .await
        .expect("record");
    assert_eq!(
        store.explanation(contact).await.expect("explanation").as_deref(),
        Some(r#"{"offered_to":2}"#),
        "a later offer replaces the explanation"
    );

    // Two offers of one contact in one record: the later one stays.
    store
        .record(
            "p0",
            &Record {
                entries: vec![entry(3, false)],
                explanations: vec![
                    (contact, r#"{"offered_to":3}"#.to_owned()),
                    (contact, r#"{"offered_to":4}"#.to_owned()),
                ],
                ..Record::default()
            },
        )
        .await
        .expect("record");
    assert_eq!(
        store.explanation(contact).await.expect("explanation").as_deref(),
        Some(r#"{"offered_to":4}"#)
    );
    assert_eq!(
        store.explanation(other).await.expect("explanation").as_deref(),
        Some(r#"{"offered_to":7}"#),
        "other contacts keep theirs"
    );
}

async fn the_outbox_is_fetched_in_insertion_order_and_deleted_when_sent(store: &dyn RoutingStore) {
    // Ids that sort against the order of writing: the outbox must follow the
    // order of writing, not the ids.
    let mut events: Vec<OutboxRecord> = (0..5).map(|_| event("contact.queued")).collect();
    events.reverse();
    let mut untraced = event("agent.signed_in");
    untraced.traceparent = None;
    store
        .record(
            "p0",
            &Record {
                entries: vec![entry(1, true)],
                outbox: events[..3].to_vec(),
                ..Record::default()
            },
        )
        .await
        .expect("record");
    store
        .record(
            "p1",
            &Record {
                entries: vec![entry(1, true)],
                outbox: vec![events[3].clone(), untraced.clone()],
                ..Record::default()
            },
        )
        .await
        .expect("record");
    store
        .record(
            "p0",
            &Record {
                entries: vec![entry(2, false)],
                outbox: vec![events[4].clone()],
                ..Record::default()
            },
        )
        .await
        .expect("record");

    let expected = vec![
        events[0].clone(),
        events[1].clone(),
        events[2].clone(),
        events[3].clone(),
        untraced.clone(),
        events[4].clone(),
    ];
    assert_eq!(
        store.fetch_unsent(10).await.expect("fetch"),
        expected,
        "every field, in order of writing"
    );
    assert_eq!(
        store.fetch_unsent(2).await.expect("fetch"),
        expected[..2].to_vec(),
        "limit"
    );
    let decoded = v1::Event::decode(expected[4].body.as_slice()).expect("body decodes");
    assert_eq!(decoded.r#type, "agent.signed_in");

    let already_gone = Uuid::now_v7();
    store
        .delete_sent(&[expected[0].event_id, expected[3].event_id, already_gone])
        .await
        .expect("ids already gone are fine");
    assert_eq!(
        unsent_ids(store).await,
        vec![
            expected[1].event_id,
            expected[2].event_id,
            expected[4].event_id,
            expected[5].event_id
        ]
    );
    store
        .delete_sent(&[expected[0].event_id])
        .await
        .expect("deleting again is fine");
    store.delete_sent(&[]).await.expect("nothing to delete");
    assert_eq!(unsent_ids(store).await.len(), 4);
}

async fn the_store_answers_its_check(store: &dyn RoutingStore) {
    store.check().await.expect("check");
    // And still answers after writing.
    store
        .record("p0", &entries(vec![entry(1, true)]))
        .await
        .expect("record");
    store.check().await.expect("check after a write");
    assert_eq!(store.journal("p0").await.expect("journal").len(), 1);
}

async fn the_newest_stored_configuration_is_the_latest(store: &dyn RoutingStore) {
    assert_eq!(
        store.latest_config().await.expect("latest"),
        None,
        "none stored yet"
    );
    let first = store.put_config("[engine]\nfirst = true\n").await.expect("store");
    let second = store
        .put_config("[engine]\nsecond = true\n")
        .await
        .expect("store");
    assert!(second > first, "versions grow: {first} then {second}");
    assert_eq!(
        store.latest_config().await.expect("latest"),
        Some((second, "[engine]\nsecond = true\n".to_owned()))
    );
}

macro_rules! contract_suite {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let (store, _database) = crate::postgres_store().await;
                    super::$test(&*store).await;
                }
            )*
        }

        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let (store, _data_dir) = crate::sqlite_store().await;
                    super::$test(&*store).await;
                }
            )*
        }
    };
}

contract_suite!(
    a_record_reads_back_from_the_journal_in_order,
    the_journal_starts_at_the_latest_base,
    without_a_base_the_journal_is_every_entry,
    a_colliding_sequence_number_is_fenced_and_writes_nothing,
    a_malformed_record_is_refused_and_writes_nothing,
    partitions_are_independent,
    compact_deletes_only_entries_before_the_given_one,
    seen_returns_only_applied_events,
    agents_are_numbered_once_and_keep_their_number,
    a_later_explanation_replaces_the_earlier,
    the_outbox_is_fetched_in_insertion_order_and_deleted_when_sent,
    the_store_answers_its_check,
    the_newest_stored_configuration_is_the_latest,
);
