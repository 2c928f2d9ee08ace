//! The gRPC server every service starts from.
//!
//! [`GrpcServer::new`] gives a tonic router that already serves
//! `grpc.health.v1.Health` and server reflection (v1 and v1alpha, from
//! `switchboard_proto::FILE_DESCRIPTOR_SET`), wrapped in the shared
//! [`ServerLayers`] (trace, then auth) and a message size limit. The binary
//! adds its services and calls [`GrpcServer::serve`] with a listener and a
//! shutdown future:
//!
//! ```text
//! let layers = ServerLayers::new(authenticator, Arc::new(Policy::standard()), &metrics);
//! GrpcServer::new(&health, &layers, settings.grpc_max_message_bytes)?
//!     .add_service(IntakeServiceServer::new(intake))
//!     .serve(listener, shutdown.wait_owned())
//!     .await?;
//! ```

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use tokio::net::TcpListener;
use tonic::{
    body::Body as TonicBody,
    server::NamedService,
    transport::server::{Router, Server, TcpIncoming},
};
use tower::{
    Layer, Service,
    layer::util::{Identity, Stack},
};

use crate::{
    auth::{AuthLayer, Authenticator, Policy},
    config::Settings,
    error::{RuntimeError, RuntimeResult},
    health::Health,
    metrics::Metrics,
    telemetry::TraceLayer,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The layers every server of a process shares, gRPC and HTTP alike.
#[derive(Clone, Debug)]
pub struct ServerLayers {
    pub auth: AuthLayer,
    pub trace: TraceLayer,
}

impl ServerLayers {
    pub fn new(authenticator: Arc<Authenticator>, policy: Arc<Policy>, metrics: &Metrics) -> ServerLayers {
        ServerLayers {
            auth: AuthLayer::new(authenticator, policy.clone()),
            trace: TraceLayer::new(policy).with_metrics(metrics.requests()),
        }
    }

    /// From validated settings (after
    /// [`crate::dev_credentials::DevCredentials::apply_if_unconfigured`]) and
    /// the standard policy.
    pub fn from_settings(settings: &Settings, metrics: &Metrics) -> RuntimeResult<ServerLayers> {
        let authenticator = Arc::new(Authenticator::new(&settings.auth)?);
        Ok(ServerLayers::new(
            authenticator,
            Arc::new(Policy::standard()),
            metrics,
        ))
    }
}

/// Trace outermost (its span covers refusals too), then auth, then the
/// message limit next to the services.
pub type GrpcLayers = Stack<MessageLimitLayer, Stack<AuthLayer, Stack<TraceLayer, Identity>>>;

/// A tonic router with health, reflection and the shared layers.
pub struct GrpcServer {
    router: Router<GrpcLayers>,
}

impl std::fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServer").finish_non_exhaustive()
    }
}

impl GrpcServer {
    /// `max_message_bytes` bounds every request message (see
    /// [`MessageLimitLayer`]); `settings.grpc_max_message_bytes` is the usual value.
    pub fn new(
        health: &Health,
        layers: &ServerLayers,
        max_message_bytes: usize,
    ) -> RuntimeResult<GrpcServer> {
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(switchboard_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(switchboard_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let router = Server::builder()
            .layer(layers.trace.clone())
            .layer(layers.auth.clone())
            .layer(MessageLimitLayer::new(max_message_bytes))
            .add_service(health.grpc_service())
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        Ok(GrpcServer { router })
    }

    /// Adds a generated service (`IntakeServiceServer::new(intake)`).
    pub fn add_service<S>(self, service: S) -> GrpcServer
    where
        S: Service<Request<TonicBody>, Error = std::convert::Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        GrpcServer {
            router: self.router.add_service(service),
        }
    }

    /// The tonic router, for anything this wrapper does not offer.
    pub fn into_router(self) -> Router<GrpcLayers> {
        self.router
    }

    /// Serves on `listener` until `shutdown` completes, then stops accepting
    /// and waits for calls in flight to finish.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> RuntimeResult<()> {
        let address = listener.local_addr().map_err(RuntimeError::Http)?;
        tracing::info!(%address, "grpc server listening");
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        self.router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await?;
        tracing::info!(%address, "grpc server stopped");
        Ok(())
    }
}

/// Refuses any gRPC request message larger than a limit with
/// `RESOURCE_EXHAUSTED` (tonic's own decoder limit answers `OUT_OF_RANGE`),
/// for every service at once. It reads each message's length prefix as the
/// body streams in, so an oversized message is refused before it is buffered.
#[derive(Debug, Clone, Copy)]
pub struct MessageLimitLayer {
    max_message_bytes: usize,
}

impl MessageLimitLayer {
    pub fn new(max_message_bytes: usize) -> MessageLimitLayer {
        MessageLimitLayer { max_message_bytes }
    }
}

impl<S> Layer<S> for MessageLimitLayer {
    type Service = MessageLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MessageLimit {
            inner,
            max_message_bytes: self.max_message_bytes,
        }
    }
}

/// The service [`MessageLimitLayer`] makes.
#[derive(Debug, Clone)]
pub struct MessageLimit<S> {
    inner: S,
    max_message_bytes: usize,
}

impl<S, B> Service<Request<B>> for MessageLimit<S>
where
    S: Service<Request<TonicBody>>,
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // gRPC-Web bodies may be base64 text; only binary gRPC framing is read.
        let framed = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                value.starts_with("application/grpc") && !value.starts_with("application/grpc-web")
            });
        let max_message_bytes = self.max_message_bytes;
        let request = request.map(|body| {
            if framed {
                TonicBody::new(LimitedBody::new(body, max_message_bytes))
            } else {
                TonicBody::new(body)
            }
        });
        self.inner.call(request)
    }
}

/// A request body that fails with `RESOURCE_EXHAUSTED` at the first gRPC
/// message whose length prefix exceeds the limit.
struct LimitedBody<B> {
    inner: B,
    max_message_bytes: usize,
    /// The 5-byte prefix (compression flag, big-endian length) being read; it
    /// may arrive split across data frames.
    prefix: [u8; 5],
    prefix_read: usize,
    /// Bytes of the current message still to pass before the next prefix.
    message_remaining: usize,
}

impl<B> LimitedBody<B> {
    fn new(inner: B, max_message_bytes: usize) -> LimitedBody<B> {
        LimitedBody {
            inner,
            max_message_bytes,
            prefix: [0; 5],
            prefix_read: 0,
            message_remaining: 0,
        }
    }

    fn inspect(&mut self, mut data: &[u8]) -> Result<(), tonic::Status> {
        while !data.is_empty() {
            if self.message_remaining > 0 {
                let skipped = self.message_remaining.min(data.len());
                self.message_remaining -= skipped;
                data = &data[skipped..];
                continue;
            }
            let taken = (self.prefix.len() - self.prefix_read).min(data.len());
            self.prefix[self.prefix_read..self.prefix_read + taken].copy_from_slice(&data[..taken]);
            self.prefix_read += taken;
            data = &data[taken..];
            if self.prefix_read == self.prefix.len() {
                self.prefix_read = 0;
                let length =
                    u32::from_be_bytes([self.prefix[1], self.prefix[2], self.prefix[3], self.prefix[4]]);
                let length = usize::try_from(length).unwrap_or(usize::MAX);
                if length > self.max_message_bytes {
                    tracing::info!(
                        length,
                        limit = self.max_message_bytes,
                        "request message too large"
                    );
                    return Err(tonic::Status::resource_exhausted(format!(
                        "request message of {length} bytes exceeds the limit of {} bytes",
                        self.max_message_bytes
                    )));
                }
                self.message_remaining = length;
            }
        }
        Ok(())
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref()
                    && let Err(status) = this.inspect(data)
                {
                    // tonic finds the Status inside the error and answers with it.
                    return Poll::Ready(Some(Err(Box::new(status))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => Poll::Ready(Some(Err(error.into()))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(length: u32) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend(std::iter::repeat_n(7, length as usize));
        bytes
    }

    #[test]
    fn prefixes_are_read_across_chunk_boundaries() {
        let mut body = LimitedBody::new((), 10);
        let mut stream = frame(10);
        stream.extend(frame(3));
        // Feed one byte at a time: the worst split there is.
        for byte in &stream {
            body.inspect(std::slice::from_ref(byte))
                .expect("within the limit");
        }
        assert_eq!((body.prefix_read, body.message_remaining), (0, 0));
        let mut oversized = frame(3);
        oversized.extend(frame(11));
        let (first, second) = oversized.split_at(9);
        body.inspect(first).expect("first message fits");
        let status = body.inspect(second).expect_err("second message is too large");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    }
}
