//! The test helpers other crates rely on, against the real PostgreSQL.

use sqlx::{Connection as _, PgConnection};
use switchboard_runtime::testing::{fresh_postgres, postgres_server_url};

#[tokio::test]
async fn each_test_database_is_fresh_and_dropped_afterwards() {
    let first = fresh_postgres().await;
    let second = fresh_postgres().await;
    assert_ne!(first.url, second.url);

    let mut connection = PgConnection::connect(&first.url)
        .await
        .expect("test database accepts connections");
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
            .fetch_one(&mut connection)
            .await
            .expect("query");
    assert_eq!(tables, 0, "a fresh database is empty");
    connection.close().await.expect("close");

    let name = first.url.rsplit('/').next().expect("database name").to_owned();
    drop(first);
    let mut admin = PgConnection::connect(&format!("{}/postgres", postgres_server_url()))
        .await
        .expect("admin");
    let remaining: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .expect("query");
    assert_eq!(remaining, 0, "dropped with its guard");
}
