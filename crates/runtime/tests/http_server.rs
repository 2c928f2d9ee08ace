//! The HTTP side as a binary builds it: the health router behind the auth
//! and trace layers, served on a real port until shutdown.

use std::{sync::Arc, time::Duration};

use switchboard_runtime::{
    Health, Metrics, Role, ServerLayers, Shutdown, auth::Policy, http, testing::TestCredentials,
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

/// One HTTP/1.1 request on its own connection; returns the status code and
/// the whole response text. Small enough not to need an HTTP client crate.
async fn get(address: std::net::SocketAddr, path: &str, authorization: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.expect("connects");
    let mut request = format!("GET {path} HTTP/1.1\r\nhost: switchboard\r\nconnection: close\r\n");
    if let Some(authorization) = authorization {
        request.push_str(&format!("authorization: {authorization}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("sends");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("reads");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status line");
    (status, response)
}

#[tokio::test]
async fn probes_are_public_metrics_need_an_operator_and_shutdown_stops_the_server() {
    let credentials = TestCredentials::new();
    let metrics = Metrics::new();
    let health = Health::new(metrics.clone());
    let layers = ServerLayers::new(
        credentials.authenticator(),
        Arc::new(Policy::standard()),
        &metrics,
    );
    let app = http::protect(health.router(), &layers);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let address = listener.local_addr().expect("address");
    let shutdown = Shutdown::new();
    let server = tokio::spawn(http::serve(listener, app, shutdown.wait_owned()));

    assert_eq!(get(address, "/healthz", None).await.0, 200);
    assert_eq!(get(address, "/readyz", None).await.0, 200);

    let (status, response) = get(address, "/metrics", None).await;
    assert_eq!(status, 401);
    assert!(
        response
            .to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{response}"
    );
    assert_eq!(
        get(address, "/metrics", Some(&credentials.bearer(Role::Agent)))
            .await
            .0,
        403
    );
    let (status, response) = get(address, "/metrics", Some(&credentials.bearer(Role::Admin))).await;
    assert_eq!(status, 200);
    // The requests above were counted, by route and status.
    assert!(
        response.contains(r#"switchboard_requests_total{protocol="http",route="/metrics",status="401"} 1"#),
        "{response}"
    );

    // Not in the policy: refused, not 404, whoever asks.
    assert_eq!(
        get(address, "/nowhere", Some(&credentials.bearer(Role::Admin)))
            .await
            .0,
        403
    );

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops on shutdown")
        .expect("server task")
        .expect("served without error");
    assert!(TcpStream::connect(address).await.is_err(), "listener closed");
}
