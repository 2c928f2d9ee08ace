//! Shared test helpers: stores on real databases, and contacts as the
//! consumer would hand them to the store.
#![allow(dead_code, unused_macros, clippy::unwrap_used)]

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use switchboard_cases::{AppliedContact, CasesStore, IncomingContact, PgCasesStore, SqliteCasesStore};
use switchboard_domain::{
    Channel, ContactId, ContactOrigin, ContactReference, CustomerDetails, EmailAddress, EventId, Needs,
    OfficeId, PersonName, PhoneNumber, Postcode, ServiceId,
};
use switchboard_runtime::testing::TestDatabase;

/// Keeps a test's database alive for as long as the test holds it.
pub enum StoreGuard {
    Postgres(TestDatabase),
    Sqlite(tempfile::TempDir),
}

/// A fresh database on the test PostgreSQL server, migrated.
pub async fn postgres_store() -> (Arc<dyn CasesStore>, StoreGuard) {
    let database = TestDatabase::create().await;
    let store = PgCasesStore::connect(&database.url)
        .await
        .unwrap_or_else(|error| panic!("cannot open the case store on {}: {error:?}", database.url));
    (Arc::new(store), StoreGuard::Postgres(database))
}

/// A fresh `cases.db` in a temporary data dir, migrated.
pub async fn sqlite_store() -> (Arc<dyn CasesStore>, StoreGuard) {
    let data_dir = tempfile::tempdir().expect("temporary data dir");
    let store = SqliteCasesStore::open(data_dir.path())
        .await
        .expect("open the sqlite case store");
    (Arc::new(store), StoreGuard::Sqlite(data_dir))
}

/// Builds an [`IncomingContact`] the way the consumer would produce it.
#[derive(Clone)]
pub struct ContactBuilder(IncomingContact);

/// Applies one contact and returns where it landed; fails the test if the
/// store took it for a duplicate.
pub async fn apply_one(store: &dyn CasesStore, contact: IncomingContact) -> AppliedContact {
    let outcomes = store
        .apply_contacts(std::slice::from_ref(&contact))
        .await
        .unwrap();
    outcomes[0]
        .applied()
        .cloned()
        .unwrap_or_else(|| panic!("expected an applied contact, got {outcomes:?}"))
}

pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

impl ContactBuilder {
    pub fn new(channel: Channel, service: &str) -> Self {
        let origin = match channel {
            Channel::Phone => ContactOrigin::Phone {
                caller_number: None,
                dialled_number: Some("+441590646111".to_owned()),
                call_id: Some("call-1".to_owned()),
            },
            Channel::Web => ContactOrigin::Web {
                form_id: Some("council-tax-moving-home".to_owned()),
                page_url: Some("https://council.example/forms/moving".to_owned()),
            },
            Channel::FaceToFace => ContactOrigin::FaceToFace {
                office_id: OfficeId::parse("lymington-town-hall").unwrap(),
                desk: Some("desk-2".to_owned()),
            },
            Channel::Email | Channel::Letter => ContactOrigin::None,
        };
        ContactBuilder(IncomingContact {
            event_id: EventId::new(),
            traceparent: None,
            contact_id: ContactId::new(),
            reference: ContactReference::generate(),
            received_at: now(),
            channel,
            service: ServiceId::parse(service).unwrap(),
            customer: CustomerDetails::default(),
            summary: "moving house next month".to_owned(),
            details: [("moving_date".to_owned(), "2025-07-01".to_owned())].into(),
            needs: Needs {
                language: Some("cy".to_owned()),
                large_print: true,
                ..Needs::default()
            },
            origin,
        })
    }

    pub fn phone(mut self, phone: &str) -> Self {
        self.0.customer.phone = Some(PhoneNumber::parse(phone).unwrap());
        self
    }

    /// The caller's number, as the telephony adapter presents it.
    pub fn caller(mut self, phone: &str) -> Self {
        if let ContactOrigin::Phone { caller_number, .. } = &mut self.0.origin {
            *caller_number = Some(PhoneNumber::parse(phone).unwrap());
        }
        self
    }

    pub fn email(mut self, email: &str) -> Self {
        self.0.customer.email = Some(EmailAddress::parse(email).unwrap());
        self
    }

    pub fn name(mut self, name: &str) -> Self {
        self.0.customer.name = Some(PersonName::parse(name).unwrap());
        self
    }

    pub fn postcode(mut self, postcode: &str) -> Self {
        self.0.customer.postcode = Some(Postcode::parse(postcode).unwrap());
        self
    }

    pub fn needs(mut self, needs: Needs) -> Self {
        self.0.needs = needs;
        self
    }

    pub fn at(mut self, received_at: DateTime<Utc>) -> Self {
        self.0.received_at = received_at;
        self
    }

    pub fn build(self) -> IncomingContact {
        self.0
    }
}

/// Runs each named scenario (an `async fn(&dyn CasesStore)` in the calling
/// file) against both stores, so the two implementations cannot drift apart.
macro_rules! contract_suite {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let (store, _database) = crate::common::postgres_store().await;
                    super::$test(&*store).await;
                }
            )*
        }

        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let (store, _data_dir) = crate::common::sqlite_store().await;
                    super::$test(&*store).await;
                }
            )*
        }
    };
}
