//! The HTTP side of a service: the same auth and trace layers as gRPC, and
//! serving with graceful shutdown.
//!
//! ```text
//! let app = http::protect(intake_routes.merge(health.router()), &layers);
//! http::serve(listener, app, shutdown.wait_owned()).await?;
//! ```

use tokio::net::TcpListener;

use crate::{
    error::{RuntimeError, RuntimeResult},
    grpc::ServerLayers,
};

/// Puts `router` behind auth (deny by default: a route missing from the
/// policy answers 401/403, not 404) and the request trace. Add every route
/// before calling this: axum applies layers to the routes already there.
pub fn protect(router: axum::Router, layers: &ServerLayers) -> axum::Router {
    router.layer(layers.auth.clone()).layer(layers.trace.clone())
}

/// Serves `router` on `listener` until `shutdown` completes, then lets
/// requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> RuntimeResult<()> {
    let address = listener.local_addr().map_err(RuntimeError::Http)?;
    tracing::info!(%address, "http server listening");
    // With the peer address in each request's extensions, so per-client rate
    // limits (the residents' web form) can key on it.
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(RuntimeError::Http)?;
    tracing::info!(%address, "http server stopped");
    Ok(())
}
