//! The HTTP API for intake clients: `POST /v1/contacts`, the proto3 JSON
//! mapping of `SubmitContactRequest`, and `GET /v1/contacts/{contactId}`, the
//! receipt its `Location` points at.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use switchboard_domain::ContactId;
use switchboard_proto::v1::{SubmitContactRequest, SubmitContactResponse};
use switchboard_runtime::problem::{Problem, ProblemField};

use crate::error::IntakeError;
use crate::service::{Accepted, Intake, Receipt, check_idempotency_key};

/// The largest request body accepted on intake's HTTP routes (API and forms);
/// a larger one is answered 413.
pub const MAX_HTTP_BODY_BYTES: usize = 64 * 1024;

/// The header carrying the idempotency key (IETF httpapi Idempotency-Key draft).
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// Set to `true` on a 201 that repeats an earlier answer for the same key.
pub const IDEMPOTENT_REPLAYED_HEADER: &str = "idempotent-replayed";

/// `POST /v1/contacts`. Authentication is the binary's layer around it.
///
/// Answers `201 Created` with `{"contactId","reference"}` and a `Location`; a
/// replay (same `Idempotency-Key`, same body) answers the same `201` again, with
/// the same body and `Idempotent-Replayed: true`, so a client retrying after a
/// lost response sees exactly what it would have seen. Errors are
/// `application/problem+json`: 400 for a body that is not a
/// `SubmitContactRequest` (the offending field named, unknown fields included)
/// or a malformed `Idempotency-Key`, 413 for a body over
/// [`MAX_HTTP_BODY_BYTES`], 415 for a body that is not JSON, 422 for invalid
/// fields or a reused idempotency key.
///
/// `GET /v1/contacts/{contactId}` answers the contact's receipt (id,
/// reference, channel, service, when it was received; no personal data), 404
/// for an id intake does not hold, 400 for one that is not a UUID.
pub fn api_router(intake: Intake) -> Router {
    Router::new()
        .route("/v1/contacts", post(submit_contact))
        .route("/v1/contacts/{contact_id}", get(contact_receipt))
        .layer(DefaultBodyLimit::max(MAX_HTTP_BODY_BYTES))
        .with_state(intake)
}

#[tracing::instrument(name = "intake.http.submit_contact", skip_all)]
async fn submit_contact(
    State(intake): State<Intake>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match read_request(&headers, body) {
        Ok(request) => match intake.submit(request).await {
            Ok(accepted) => created(&accepted),
            Err(error) => error.to_problem().into_response(),
        },
        Err(rejection) => {
            intake.metrics().rejected(rejection.reason);
            rejection.problem.into_response()
        }
    }
}

/// The JSON body of a receipt.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReceiptBody {
    contact_id: String,
    reference: String,
    /// The proto3 JSON name, as submitted (`CHANNEL_PHONE`, …).
    channel: &'static str,
    service: String,
    /// RFC 3339, UTC.
    received_at: String,
}

impl From<Receipt> for ReceiptBody {
    fn from(receipt: Receipt) -> Self {
        ReceiptBody {
            contact_id: receipt.contact_id.as_uuid().to_string(),
            reference: receipt.reference.as_str().to_owned(),
            channel: switchboard_runtime::wire::channel_to_proto(receipt.channel).as_str_name(),
            service: receipt.service.as_str().to_owned(),
            received_at: receipt
                .received_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        }
    }
}

#[tracing::instrument(name = "intake.http.contact_receipt", skip_all)]
async fn contact_receipt(State(intake): State<Intake>, Path(contact_id): Path<String>) -> Response {
    let Ok(id) = ContactId::parse(&contact_id) else {
        let mut problem = Problem::new(
            StatusCode::BAD_REQUEST,
            "not a contact id",
            "contactId: must be the UUID a submission was answered with".to_owned(),
        );
        problem.errors.push(ProblemField {
            field: "contactId".to_owned(),
            detail: "must be a UUID".to_owned(),
        });
        return problem.into_response();
    };
    match intake.receipt(id).await {
        Ok(Some(receipt)) => axum::Json(ReceiptBody::from(receipt)).into_response(),
        Ok(None) => Problem::new(
            StatusCode::NOT_FOUND,
            "no such contact",
            format!("intake holds no contact {contact_id}"),
        )
        .into_response(),
        Err(error) => error.to_problem().into_response(),
    }
}

/// A request refused before it reached the service.
struct Rejection {
    reason: &'static str,
    problem: Problem,
}

fn read_request(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<SubmitContactRequest, Rejection> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let reason = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "malformed"
        };
        let detail = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("the body is larger than {MAX_HTTP_BODY_BYTES} bytes")
        } else {
            "the body could not be read".to_owned()
        };
        Rejection {
            reason,
            problem: Problem::new(status, "request body refused", detail),
        }
    })?;
    if !is_json(headers) {
        return Err(Rejection {
            reason: "malformed",
            problem: Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported media type",
                "send the proto3 JSON form of SubmitContactRequest as application/json".to_owned(),
            ),
        });
    }
    let mut request = decode_json(&body)?;

    let invalid = |error: IntakeError| Rejection {
        reason: "invalid",
        problem: error.to_problem(),
    };
    if !request.idempotency_key.is_empty() {
        check_idempotency_key(&request.idempotency_key, "idempotencyKey").map_err(invalid)?;
    }
    if let Some(value) = headers.get(IDEMPOTENCY_KEY_HEADER) {
        // The draft standard sends the key as a structured-field string
        // (`"8e03978e-…"`); a bare token is accepted too.
        let raw = value.to_str().unwrap_or_default();
        let key = raw
            .strip_prefix('"')
            .and_then(|inner| inner.strip_suffix('"'))
            .unwrap_or(raw);
        check_idempotency_key(key, "Idempotency-Key").map_err(invalid)?;
        if !request.idempotency_key.is_empty() && request.idempotency_key != key {
            return Err(invalid(IntakeError::InvalidField {
                field: "Idempotency-Key".to_owned(),
                description: "differs from idempotencyKey in the body; send one of them".to_owned(),
            }));
        }
        request.idempotency_key = key.to_owned();
    }
    Ok(request)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case("application/json"))
}

/// Decodes with the pbjson (proto3 JSON mapping) deserialisers, which refuse
/// unknown fields, and names the field that failed.
fn decode_json(body: &[u8]) -> Result<SubmitContactRequest, Rejection> {
    let malformed = |field: String, detail: String| {
        let mut problem = Problem::new(
            StatusCode::BAD_REQUEST,
            "the body is not a valid SubmitContactRequest",
            format!("{field}: {detail}"),
        );
        problem.problem_type = "https://switchboard.dev/problems/malformed-request".to_owned();
        problem.errors.push(ProblemField { field, detail });
        Rejection {
            reason: "malformed",
            problem,
        }
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let request = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|error| malformed(failing_field(&error), error.inner().to_string()))?;
    deserializer
        .end()
        .map_err(|error| malformed("body".to_owned(), error.to_string()))?;
    Ok(request)
}

/// The JSON path of the failing value (for an unknown field, the field itself),
/// or `body` when the body as a whole is not a JSON object.
fn failing_field(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = error.path().to_string();
    if path == "." { "body".to_owned() } else { path }
}

fn created(accepted: &Accepted) -> Response {
    let body = SubmitContactResponse {
        contact_id: accepted.contact_id.as_uuid().to_string(),
        reference: accepted.reference.as_str().to_owned(),
    };
    let location = format!("/v1/contacts/{}", accepted.contact_id.as_uuid());
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if accepted.replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
}
