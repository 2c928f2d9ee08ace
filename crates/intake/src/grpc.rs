//! The gRPC edge: `switchboard.v1.IntakeService`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::HeaderValue;
use switchboard_proto::v1::intake_service_server::{IntakeService, IntakeServiceServer};
use switchboard_proto::v1::{SubmitContactRequest, SubmitContactResponse};
use tonic::server::NamedService;
use tonic::{Code, Request, Response, Status};

use crate::service::Intake;

/// The largest encoded `SubmitContactRequest` accepted. Fifty details of 4,000
/// characters would not fit, but no real contact comes near this; a larger
/// message is refused with `RESOURCE_EXHAUSTED` before it is decoded.
pub const MAX_GRPC_REQUEST_BYTES: usize = 64 * 1024;

/// `IntakeService` over an [`Intake`].
#[derive(Debug, Clone)]
pub struct IntakeGrpc {
    intake: Intake,
}

impl IntakeGrpc {
    pub fn new(intake: Intake) -> IntakeGrpc {
        IntakeGrpc { intake }
    }

    /// The service to add to a tonic server: limited to
    /// [`MAX_GRPC_REQUEST_BYTES`] per message, with too-large requests answered
    /// `RESOURCE_EXHAUSTED` (the design's code for "too large") rather than
    /// tonic's own `OUT_OF_RANGE`. Authentication layers go around it.
    pub fn into_server(self) -> ResourceExhaustedOnOversize<IntakeServiceServer<IntakeGrpc>> {
        ResourceExhaustedOnOversize {
            inner: IntakeServiceServer::new(self).max_decoding_message_size(MAX_GRPC_REQUEST_BYTES),
        }
    }
}

#[tonic::async_trait]
impl IntakeService for IntakeGrpc {
    async fn submit_contact(
        &self,
        request: Request<SubmitContactRequest>,
    ) -> Result<Response<SubmitContactResponse>, Status> {
        let accepted = self.intake.submit(request.into_inner()).await?;
        Ok(Response::new(SubmitContactResponse {
            contact_id: accepted.contact_id.as_uuid().to_string(),
            reference: accepted.reference.as_str().to_owned(),
        }))
    }
}

/// Rewrites tonic's `OUT_OF_RANGE` for an over-limit message into
/// `RESOURCE_EXHAUSTED` (what the design promises for "too large"). tonic decodes (and refuses) the request before the
/// handler runs and answers with a trailers-only response, so the status is in
/// the response headers, where this layer can see it.
#[derive(Debug, Clone)]
pub struct ResourceExhaustedOnOversize<S> {
    inner: S,
}

impl<S: NamedService> NamedService for ResourceExhaustedOnOversize<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<B>> for ResourceExhaustedOnOversize<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            // The handler never answers OUT_OF_RANGE itself, so this one is tonic's
            // size check; its message (sizes found and allowed) is kept.
            if response.headers().get("grpc-status") == Some(&HeaderValue::from(Code::OutOfRange as i32)) {
                response
                    .headers_mut()
                    .insert("grpc-status", HeaderValue::from(Code::ResourceExhausted as i32));
            }
            Ok(response)
        })
    }
}
