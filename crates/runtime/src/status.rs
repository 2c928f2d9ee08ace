//! The one place where errors become gRPC statuses.
//!
//! Validation failures carry `google.rpc.BadRequest` field violations so a
//! client can point at the failing field; internal errors are logged with their
//! cause chain and answered opaquely, so nothing about the internals (or a
//! resident's data inside an error message) leaks to the caller.

use switchboard_domain::ValidationErrors;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// `INVALID_ARGUMENT` naming every failing field.
pub fn invalid_argument(errors: &ValidationErrors) -> Status {
    let violations: Vec<FieldViolation> = errors
        .violations
        .iter()
        .map(|violation| FieldViolation::new(&violation.field, &violation.description))
        .collect();
    Status::with_error_details(
        Code::InvalidArgument,
        errors.to_string(),
        ErrorDetails::with_bad_request(violations),
    )
}

/// `INVALID_ARGUMENT` for a single field, for checks made outside the domain
/// (an id that does not parse, a page token that is not ours).
pub fn invalid_field(field: &str, description: &str) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid fields: {field}"),
        ErrorDetails::with_bad_request_violation(field, description),
    )
}

/// `INTERNAL`, answered without detail; the cause chain goes to the log.
pub fn internal(error: &(dyn std::error::Error + 'static)) -> Status {
    tracing::error!(error.message = %error, error.chain = %cause_chain(error), "internal error");
    Status::internal("internal error")
}

/// `UNAVAILABLE`, for a dependency (store, broker) that is down: the caller may retry.
pub fn unavailable(error: &(dyn std::error::Error + 'static)) -> Status {
    tracing::warn!(error.message = %error, error.chain = %cause_chain(error), "dependency unavailable");
    Status::unavailable("temporarily unavailable, retry later")
}

/// `error: cause: cause …`, for logs.
pub fn cause_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_domain::FieldViolation as DomainViolation;

    #[test]
    fn invalid_argument_names_every_field_in_bad_request_details() {
        let errors = ValidationErrors {
            violations: vec![
                DomainViolation {
                    field: "customer.phone".into(),
                    description: "not a phone number".into(),
                },
                DomainViolation {
                    field: "service".into(),
                    description: "unknown service".into(),
                },
            ],
        };
        let status = invalid_argument(&errors);
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad_request = status.get_details_bad_request().expect("bad request details");
        let fields: Vec<&str> = bad_request
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["customer.phone", "service"]);
    }
}
