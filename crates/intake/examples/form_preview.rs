//! Temporary: serves the public form on 127.0.0.1:8099 for a screenshot.
use std::net::SocketAddr;
use std::sync::Arc;

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(
        switchboard_intake::SqliteIntakeStore::open(dir.path())
            .await
            .expect("store"),
    );
    let catalogue = Arc::new(switchboard_domain::Catalogue::embedded().expect("catalogue"));
    let sealer = Arc::new(
        switchboard_bus::Sealer::new(vec![switchboard_bus::EventKey::generate("k")]).expect("sealer"),
    );
    let (intake, _w) = switchboard_intake::Intake::start(
        store,
        catalogue,
        sealer,
        Default::default(),
        switchboard_intake::WriterConfig::for_sqlite(),
        Default::default(),
    );
    let router = switchboard_intake::public_router(intake, Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8099")
        .await
        .expect("bind");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .expect("serve");
}
