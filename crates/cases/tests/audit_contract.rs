//! The read log of personal data, run against PostgreSQL and SQLite.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use chrono::Duration;
use switchboard_cases::{CasesStore, DataRead};
use switchboard_domain::CustomerId;
use uuid::Uuid;

use common::now;

fn read(customer_id: CustomerId, action: &str, minutes_ago: i64) -> DataRead {
    DataRead {
        id: Uuid::now_v7(),
        at: now() - Duration::minutes(minutes_ago),
        actor: "agent-ada".to_owned(),
        action: action.to_owned(),
        customer_id,
        record_id: customer_id.as_uuid(),
        purpose: "handling call SB-7K3MQ-9XD2H".to_owned(),
    }
}

async fn reads_are_kept_per_customer_newest_first(store: &dyn CasesStore) {
    let (resident, someone_else) = (CustomerId::new(), CustomerId::new());
    let older = read(resident, "GetCase", 10);
    let newer = read(resident, "GetCustomerTimeline", 1);
    let other = read(someone_else, "SearchCustomers", 5);
    store
        .record_reads(&[older.clone(), other.clone(), newer.clone()])
        .await
        .unwrap();
    store.record_reads(&[]).await.unwrap();
    assert_eq!(
        store.reads_of(resident, 50).await.unwrap(),
        [newer.clone(), older]
    );
    assert_eq!(store.reads_of(someone_else, 50).await.unwrap(), [other]);
    assert_eq!(store.reads_of(resident, 1).await.unwrap(), [newer]);
    assert!(store.reads_of(CustomerId::new(), 50).await.unwrap().is_empty());
}

contract_suite!(reads_are_kept_per_customer_newest_first);
