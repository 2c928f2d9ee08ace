//! Shared test helpers: stores on real PostgreSQL and SQLite, a running intake,
//! requests, and a plain HTTP client.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use switchboard_bus::{EventKey, Sealer};
use switchboard_domain::{Catalogue, NewContact};
use switchboard_intake::convert::contact_draft;
use switchboard_intake::events::contact_received_entry;
use switchboard_intake::store::{IdempotencyClaim, PendingContact};
use switchboard_intake::{
    Intake, IntakeMetrics, IntakeStore, PgIntakeStore, SqliteIntakeStore, WriterConfig,
};
use switchboard_proto::v1::{self, submit_contact_request::Origin};
use switchboard_runtime::testing::TestDatabase;
use tokio::sync::Notify;

pub fn catalogue() -> Arc<Catalogue> {
    Arc::new(Catalogue::embedded().expect("the embedded catalogue is valid"))
}

pub fn sealer() -> Arc<Sealer> {
    Arc::new(Sealer::new(vec![EventKey::generate("test-key")]).expect("one key is enough"))
}

/// A store and whatever keeps its database alive for the test.
pub struct TestStore<S> {
    pub store: Arc<S>,
    pub guard: StoreGuard,
}

pub enum StoreGuard {
    Postgres(TestDatabase),
    Sqlite(tempfile::TempDir),
}

impl StoreGuard {
    /// A second, independent store on the same database: another process, as far
    /// as the database can tell.
    pub async fn second_postgres(&self) -> PgIntakeStore {
        match self {
            StoreGuard::Postgres(database) => PgIntakeStore::connect(&database.url)
                .await
                .expect("second connection"),
            StoreGuard::Sqlite(_) => panic!("not a PostgreSQL store"),
        }
    }

    pub async fn second_sqlite(&self) -> SqliteIntakeStore {
        match self {
            StoreGuard::Sqlite(directory) => SqliteIntakeStore::open(directory.path())
                .await
                .expect("second open"),
            StoreGuard::Postgres(_) => panic!("not a SQLite store"),
        }
    }
}

/// A PostgreSQL store on a fresh database.
pub async fn postgres_store() -> TestStore<PgIntakeStore> {
    let database = TestDatabase::create().await;
    let store = PgIntakeStore::connect(&database.url)
        .await
        .expect("connect and migrate");
    TestStore {
        store: Arc::new(store),
        guard: StoreGuard::Postgres(database),
    }
}

/// A SQLite store in a fresh temporary directory.
pub async fn sqlite_store() -> TestStore<SqliteIntakeStore> {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = SqliteIntakeStore::open(directory.path())
        .await
        .expect("open and migrate");
    TestStore {
        store: Arc::new(store),
        guard: StoreGuard::Sqlite(directory),
    }
}

/// A valid phone contact, as a client would send it.
pub fn phone_request() -> v1::SubmitContactRequest {
    v1::SubmitContactRequest {
        channel: v1::Channel::Phone as i32,
        service: "council-tax".to_owned(),
        customer: Some(v1::Customer {
            name: "Ada Lovelace".to_owned(),
            phone: "023 8028 5000".to_owned(),
            email: "Ada@Example.org".to_owned(),
            postcode: "so43 7pn".to_owned(),
            address_line: "1 Appletree Court".to_owned(),
            uprn: "100060".to_owned(),
        }),
        summary: "Question about my council tax bill".to_owned(),
        details: BTreeMap::from([("account".to_owned(), "12345678".to_owned())]),
        needs: Some(v1::Needs {
            language: "cy".to_owned(),
            large_print: true,
            ..Default::default()
        }),
        idempotency_key: String::new(),
        origin: Some(Origin::Phone(v1::PhoneOrigin {
            caller_number: "07700 900123".to_owned(),
            dialled_number: "01234 567890".to_owned(),
            call_id: "call-1".to_owned(),
        })),
    }
}

/// A validated contact with a fresh id and reference.
pub fn new_contact() -> NewContact {
    let valid = contact_draft(phone_request())
        .validate(&catalogue())
        .expect("the phone request is valid");
    NewContact::new(valid)
}

/// A contact ready for the store, with its sealed event.
pub fn pending(idempotency: Option<(&str, u8)>) -> PendingContact {
    let contact = new_contact();
    let outbox = contact_received_entry(&contact, &sealer());
    PendingContact {
        contact,
        idempotency: idempotency.map(|(key, hash_byte)| IdempotencyClaim {
            key: key.to_owned(),
            request_hash: [hash_byte; 32],
        }),
        outbox,
    }
}

/// A running intake over `store`, with its writer.
pub fn start_intake<S: IntakeStore>(store: Arc<S>, config: WriterConfig) -> (Intake, Arc<Notify>) {
    let wake = Arc::new(Notify::new());
    let (intake, _writer) = Intake::start(
        store,
        catalogue(),
        sealer(),
        wake.clone(),
        config,
        IntakeMetrics::new(),
    );
    (intake, wake)
}

/// Serves `router` on 127.0.0.1:0 with the peer address available to handlers
/// (as the binary serves it), and answers the address.
pub async fn serve_http(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });
    address
}

/// A plain HTTP/1.1 client (no redirects followed, nothing added).
pub struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

pub struct HttpAnswer {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl HttpAnswer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The `field`s of a problem's `errors`.
    pub fn problem_fields(&self) -> Vec<String> {
        self.json()["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|error| error["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl HttpClient {
    pub fn new(address: SocketAddr) -> HttpClient {
        HttpClient {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{address}"),
        }
    }

    pub async fn send(
        &self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> HttpAnswer {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.into())).expect("request");
        let response = self.client.request(request).await.expect("HTTP request");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("response body").to_bytes();
        HttpAnswer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> HttpAnswer {
        self.send(http::Method::GET, path, &[], Bytes::new()).await
    }

    pub async fn post_json(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> HttpAnswer {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.send(
            http::Method::POST,
            path,
            &all,
            serde_json::to_vec(body).expect("json"),
        )
        .await
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> HttpAnswer {
        let body = fields
            .iter()
            .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        self.send(
            http::Method::POST,
            path,
            &[("content-type", "application/x-www-form-urlencoded")],
            body,
        )
        .await
    }
}

/// application/x-www-form-urlencoded encoding of one name or value.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => out.push(byte as char),
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}
