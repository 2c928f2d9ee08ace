//! The one place where errors become HTTP problem responses (RFC 9457).

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use switchboard_domain::ValidationErrors;

/// An `application/problem+json` body.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The failing fields, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProblemField {
    /// Proto field path in its JSON (lowerCamelCase) form, e.g. `customer.phone`.
    pub field: String,
    pub detail: String,
}

impl Problem {
    pub fn new(status: StatusCode, title: &str, detail: impl Into<Option<String>>) -> Self {
        Problem {
            problem_type: "about:blank".to_owned(),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// 422 naming every failing field.
    pub fn validation(errors: &ValidationErrors) -> Self {
        Problem {
            problem_type: "https://switchboard.dev/problems/validation".to_owned(),
            title: "the request has invalid fields".to_owned(),
            status: StatusCode::UNPROCESSABLE_ENTITY.as_u16(),
            detail: Some(errors.to_string()),
            errors: errors
                .violations
                .iter()
                .map(|violation| ProblemField {
                    field: json_field_path(&violation.field),
                    detail: violation.description.clone(),
                })
                .collect(),
        }
    }

    /// 500, answered opaquely; the cause chain goes to the log.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error.message = %error, error.chain = %crate::status::cause_chain(error), "internal error");
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error", None)
    }

    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

/// `face_to_face.office_id` → `faceToFace.officeId`: HTTP clients speak the
/// proto3 JSON names. Map keys (`details.<key>`) are left as they are.
fn json_field_path(proto_path: &str) -> String {
    let mut segments = proto_path.split('.');
    let mut out = Vec::new();
    while let Some(segment) = segments.next() {
        out.push(lower_camel(segment));
        if segment == "details" {
            out.extend(segments.by_ref().map(str::to_owned));
        }
    }
    out.join(".")
}

fn lower_camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper_next = false;
    for character in snake.chars() {
        if character == '_' {
            upper_next = true;
        } else if upper_next {
            out.extend(character.to_uppercase());
            upper_next = false;
        } else {
            out.push(character);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_use_json_names_but_keep_map_keys() {
        assert_eq!(json_field_path("face_to_face.office_id"), "faceToFace.officeId");
        assert_eq!(json_field_path("customer.phone"), "customer.phone");
        assert_eq!(json_field_path("details.bin_type"), "details.bin_type");
    }
}
