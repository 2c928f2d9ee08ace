//! Validation errors that name the failing field.

/// One invalid field. `field` is the path in the request's own terms, in the
/// proto field names (snake_case), e.g. `customer.phone` or `details.reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    /// Lowercase, no trailing full stop, says what is wrong and what is expected,
    /// and never echoes personal data back.
    pub description: String,
}

/// Every invalid field of one input, reported together so a form can show them all.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
#[error("invalid fields: {}", .violations.iter().map(|v| v.field.as_str()).collect::<Vec<_>>().join(", "))]
pub struct ValidationErrors {
    pub violations: Vec<FieldViolation>,
}

impl ValidationErrors {
    /// No violations yet; collect them with [`ValidationErrors::push`].
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.violations.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.violations.is_empty()
    }

    /// The violation of `field`, if any (mostly for tests and form rendering).
    pub fn field(&self, field: &str) -> Option<&FieldViolation> {
        self.violations.iter().find(|violation| violation.field == field)
    }
}

/// A string that is not a valid id or reference of the expected kind. The
/// input is not echoed: references are typed by residents and land in logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: expected {expected}")]
pub struct InvalidId {
    kind: &'static str,
    expected: &'static str,
}

impl InvalidId {
    pub(crate) const fn new(kind: &'static str, expected: &'static str) -> Self {
        Self { kind, expected }
    }

    /// What was being parsed, e.g. `contact id` or `case reference`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

/// An invalid service catalogue or office list. Names the file, the entry
/// (index and id when it has one) and the key, so whoever edits `seeds/` can
/// go straight to the line. The catalogue holds no personal data, so values
/// may be quoted.
///
/// Displays as `services.toml: services[3] (id "waste"): key `channels`: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {location}{problem}", location = catalogue_location(.entry, .key))]
pub struct CatalogueError {
    /// e.g. `services.toml`.
    pub file: String,
    /// e.g. `services[3] (id "council-tax")`; `None` for whole-file problems.
    pub entry: Option<String>,
    /// The offending key, e.g. `channels`; `None` when the entry as a whole is wrong.
    pub key: Option<String>,
    pub problem: String,
}

fn catalogue_location(entry: &Option<String>, key: &Option<String>) -> String {
    let mut location = String::new();
    if let Some(entry) = entry {
        location.push_str(entry);
        location.push_str(": ");
    }
    if let Some(key) = key {
        location.push_str(&format!("key `{key}`: "));
    }
    location
}

/// Every error of this crate, for callers that want one type to `?` into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error(transparent)]
    Validation(#[from] ValidationErrors),
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
}

pub type DomainResult<T> = Result<T, DomainError>;
