//! A contact submission, from raw input to a validated, storable value.
//!
//! [`ContactDraft`] holds the request as received (strings, empty meaning
//! absent, as proto3 delivers them). [`ContactDraft::validate`] checks every
//! rule against the catalogue and reports all violations at once, each named
//! by its proto field path, so a form can mark every wrong field in one round
//! trip. Only a [`ValidContact`] can become a [`NewContact`].

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalogue::{Catalogue, OfficeId, ServiceId};
use crate::channel::Channel;
use crate::customer::{
    CustomerDetails, EmailAddress, PersonName, PhoneNumber, Postcode, Redacted, Uprn, is_forbidden_in_text,
};
use crate::error::ValidationErrors;
use crate::ids::{ContactId, ContactReference};

/// Summary length in characters: one line an agent can read at a glance.
pub const SUMMARY_MAX_CHARS: usize = 500;
/// Details per contact: a long form, but not a document store.
pub const DETAILS_MAX_ENTRIES: usize = 50;
pub const DETAIL_KEY_MAX_CHARS: usize = 64;
pub const DETAIL_VALUE_MAX_CHARS: usize = 4000;
/// Free-text address line and the channels' own short facts (ids, desk names).
pub const ADDRESS_LINE_MAX_CHARS: usize = 500;
pub const ORIGIN_FIELD_MAX_CHARS: usize = 200;
/// Long enough for any real page URL with its query string.
pub const PAGE_URL_MAX_CHARS: usize = 2000;
/// Longest BCP 47 tag worth storing (RFC 5646 suggests 35 for language ranges).
const LANGUAGE_MAX_CHARS: usize = 35;

/// What the resident needs from us. Travels with every contact and shapes
/// routing (e.g. to a BSL-capable agent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Needs {
    /// BCP 47 tag, lowercased, e.g. `en`, `cy`, `pl`, `pt-br`.
    pub language: Option<String>,
    pub british_sign_language: bool,
    pub interpreter: bool,
    pub large_print: bool,
    pub hearing_loop: bool,
    pub assisted_digital: bool,
    pub wheelchair_access: bool,
    /// Only ever true together with `vulnerability_consent`.
    pub vulnerable: bool,
    pub vulnerability_consent: bool,
}

/// The channel's own facts about a validated contact; always matches the channel.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ContactOrigin {
    #[default]
    None,
    Phone {
        /// The caller's number (CLI); absent when withheld.
        caller_number: Option<PhoneNumber>,
        /// The council number dialled (DDI), as the telephony platform gave it.
        dialled_number: Option<String>,
        call_id: Option<String>,
    },
    Web {
        form_id: Option<String>,
        page_url: Option<String>,
    },
    FaceToFace {
        office_id: OfficeId,
        desk: Option<String>,
    },
}

impl fmt::Debug for ContactOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContactOrigin::None => f.write_str("None"),
            ContactOrigin::Phone {
                caller_number,
                dialled_number,
                call_id,
            } => f
                .debug_struct("Phone")
                .field("caller_number", caller_number)
                .field("dialled_number", dialled_number)
                .field("call_id", call_id)
                .finish(),
            ContactOrigin::Web { form_id, page_url } => f
                .debug_struct("Web")
                .field("form_id", form_id)
                // Query strings of form pages can carry what the resident typed.
                .field("page_url", &page_url.as_ref().map(|_| Redacted))
                .finish(),
            ContactOrigin::FaceToFace { office_id, desk } => f
                .debug_struct("FaceToFace")
                .field("office_id", office_id)
                .field("desk", desk)
                .finish(),
        }
    }
}

/// The resident's details as received; empty strings mean absent.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RawCustomer {
    pub name: String,
    pub phone: String,
    pub email: String,
    pub postcode: String,
    pub address_line: String,
    pub uprn: String,
}

impl fmt::Debug for RawCustomer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let present = |value: &String| (!value.is_empty()).then_some(Redacted);
        f.debug_struct("RawCustomer")
            .field("name", &present(&self.name))
            .field("phone", &present(&self.phone))
            .field("email", &present(&self.email))
            .field("postcode", &present(&self.postcode))
            .field("address_line", &present(&self.address_line))
            .field("uprn", &present(&self.uprn))
            .finish()
    }
}

/// Needs as received; an empty language means none given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawNeeds {
    pub language: String,
    pub british_sign_language: bool,
    pub interpreter: bool,
    pub large_print: bool,
    pub hearing_loop: bool,
    pub assisted_digital: bool,
    pub wheelchair_access: bool,
    pub vulnerable: bool,
    pub vulnerability_consent: bool,
}

/// The `oneof origin` as received; empty strings mean absent.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum RawOrigin {
    #[default]
    None,
    Phone {
        caller_number: String,
        dialled_number: String,
        call_id: String,
    },
    Web {
        form_id: String,
        page_url: String,
    },
    FaceToFace {
        office_id: String,
        desk: String,
    },
}

impl fmt::Debug for RawOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawOrigin::None => f.write_str("None"),
            RawOrigin::Phone {
                caller_number,
                dialled_number,
                call_id,
            } => f
                .debug_struct("Phone")
                .field("caller_number", &(!caller_number.is_empty()).then_some(Redacted))
                .field("dialled_number", dialled_number)
                .field("call_id", call_id)
                .finish(),
            RawOrigin::Web { form_id, page_url } => f
                .debug_struct("Web")
                .field("form_id", form_id)
                // Query strings of form pages can carry what the resident typed.
                .field("page_url", &(!page_url.is_empty()).then_some(Redacted))
                .finish(),
            RawOrigin::FaceToFace { office_id, desk } => f
                .debug_struct("FaceToFace")
                .field("office_id", office_id)
                .field("desk", desk)
                .finish(),
        }
    }
}

/// A contact as received from any channel, before validation.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ContactDraft {
    /// `None` when the request left the channel unspecified.
    pub channel: Option<Channel>,
    pub service: String,
    pub customer: RawCustomer,
    pub summary: String,
    pub details: BTreeMap<String, String>,
    pub needs: RawNeeds,
    pub origin: RawOrigin,
}

impl fmt::Debug for ContactDraft {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContactDraft")
            .field("channel", &self.channel)
            .field("service", &self.service)
            .field("customer", &self.customer)
            .field("summary", &Redacted)
            .field("details", &RedactedDetails(&self.details))
            .field("needs", &self.needs)
            .field("origin", &self.origin)
            .finish()
    }
}

/// Shows detail keys (form field names) but never the values residents typed.
struct RedactedDetails<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for RedactedDetails<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|key| (key, Redacted)))
            .finish()
    }
}

/// A contact that passed every rule; the only input to [`NewContact::new`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidContact {
    pub channel: Channel,
    pub service: ServiceId,
    pub customer: CustomerDetails,
    /// Trimmed, 1 to 500 characters.
    pub summary: String,
    pub details: BTreeMap<String, String>,
    pub needs: Needs,
    pub origin: ContactOrigin,
}

impl fmt::Debug for ValidContact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidContact")
            .field("channel", &self.channel)
            .field("service", &self.service)
            .field("customer", &self.customer)
            .field("summary", &Redacted)
            .field("details", &RedactedDetails(&self.details))
            .field("needs", &self.needs)
            .field("origin", &self.origin)
            .finish()
    }
}

/// A validated contact with its identity, ready to store and announce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewContact {
    pub id: ContactId,
    /// For the resident to quote; the store regenerates it on a collision.
    pub reference: ContactReference,
    pub received_at: DateTime<Utc>,
    pub contact: ValidContact,
}

impl NewContact {
    /// Gives the contact a fresh id and reference, received now.
    pub fn new(contact: ValidContact) -> Self {
        Self {
            id: ContactId::new(),
            reference: ContactReference::generate(),
            received_at: Utc::now(),
            contact,
        }
    }
}

impl ContactDraft {
    /// Checks every rule and returns either the validated contact or every
    /// violation found, each with its proto field path.
    pub fn validate(self, catalogue: &Catalogue) -> Result<ValidContact, ValidationErrors> {
        let mut errors = ValidationErrors::new();

        if self.channel.is_none() {
            errors.push(
                "channel",
                "a channel is required: phone, web, face to face, email or letter",
            );
        }
        let service = validate_service(&self.service, self.channel, catalogue, &mut errors);
        let customer = validate_customer(&self.customer, &mut errors);
        // Callers usually give the caller's number as the customer's phone too:
        // parse it once (parsing is the costliest step of validation).
        let known_phone = customer
            .as_ref()
            .and_then(|customer| customer.phone.as_ref())
            .map(|phone| (self.customer.phone.trim(), phone));
        let origin = validate_origin(&self.origin, self.channel, catalogue, known_phone, &mut errors);

        // Someone has to be able to reach the resident again, unless they are
        // standing at the counter. Present-but-invalid values count: their own
        // violation already says what to fix.
        let reachable = !self.customer.phone.trim().is_empty()
            || !self.customer.email.trim().is_empty()
            || matches!(
                &self.origin,
                RawOrigin::Phone { caller_number, .. } if !caller_number.trim().is_empty()
            );
        if self.channel != Some(Channel::FaceToFace) && !reachable {
            errors.push(
                "customer",
                "a way to reach the resident is required: a phone number or an email address",
            );
        }

        let summary = validate_summary(&self.summary, &mut errors);
        let details = validate_details(self.details, &mut errors);
        let needs = validate_needs(&self.needs, &mut errors);

        match (self.channel, service, customer, origin, summary, needs) {
            (Some(channel), Some(service), Some(customer), Some(origin), Some(summary), Some(needs))
                if errors.is_empty() =>
            {
                Ok(ValidContact {
                    channel,
                    service,
                    customer,
                    summary,
                    details,
                    needs,
                    origin,
                })
            }
            _ => {
                debug_assert!(!errors.is_empty(), "a missing part must have a violation");
                Err(errors)
            }
        }
    }
}

fn validate_service(
    raw: &str,
    channel: Option<Channel>,
    catalogue: &Catalogue,
    errors: &mut ValidationErrors,
) -> Option<ServiceId> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        errors.push("service", "a service is required, e.g. council-tax");
        return None;
    }
    let Some(definition) = catalogue.service(trimmed) else {
        errors.push(
            "service",
            "unknown service: expected an id from the service catalogue",
        );
        return None;
    };
    if let Some(channel) = channel
        && !definition.is_offered_on(channel)
    {
        errors.push(
            "service",
            format!(
                "this service is not offered on the {} channel",
                channel_words(channel)
            ),
        );
        return None;
    }
    Some(definition.id.clone())
}

fn channel_words(channel: Channel) -> &'static str {
    match channel {
        Channel::Phone => "phone",
        Channel::Web => "web",
        Channel::FaceToFace => "face-to-face",
        Channel::Email => "email",
        Channel::Letter => "letter",
    }
}

/// Parses an optional value: empty (after trimming) is absent, anything else
/// must parse, and a failure is recorded against `field`.
fn optional<T>(
    raw: &str,
    field: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
    errors: &mut ValidationErrors,
) -> Result<Option<T>, ()> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    parse(raw).map(Some).map_err(|description| {
        errors.push(field, description);
    })
}

/// Checks free text that is stored as is: length, and no control characters
/// (NUL in particular, which PostgreSQL text columns refuse).
fn optional_text(
    raw: &str,
    field: &str,
    max_chars: usize,
    errors: &mut ValidationErrors,
) -> Result<Option<String>, ()> {
    optional(
        raw,
        field,
        |text| {
            let trimmed = text.trim();
            if trimmed.chars().count() > max_chars {
                Err(format!("at most {max_chars} characters"))
            } else if trimmed.chars().any(is_forbidden_in_text) {
                Err("must not contain control characters".to_owned())
            } else {
                Ok(trimmed.to_owned())
            }
        },
        errors,
    )
}

fn validate_customer(raw: &RawCustomer, errors: &mut ValidationErrors) -> Option<CustomerDetails> {
    let name = optional(&raw.name, "customer.name", PersonName::parse, errors);
    let phone = optional(&raw.phone, "customer.phone", PhoneNumber::parse, errors);
    let email = optional(&raw.email, "customer.email", EmailAddress::parse, errors);
    let postcode = optional(&raw.postcode, "customer.postcode", Postcode::parse, errors);
    let address_line = optional_text(
        &raw.address_line,
        "customer.address_line",
        ADDRESS_LINE_MAX_CHARS,
        errors,
    );
    let uprn = optional(&raw.uprn, "customer.uprn", Uprn::parse, errors);
    Some(CustomerDetails {
        name: name.ok()?,
        phone: phone.ok()?,
        email: email.ok()?,
        postcode: postcode.ok()?,
        address_line: address_line.ok()?,
        uprn: uprn.ok()?,
    })
}

fn validate_origin(
    raw: &RawOrigin,
    channel: Option<Channel>,
    catalogue: &Catalogue,
    known_phone: Option<(&str, &PhoneNumber)>,
    errors: &mut ValidationErrors,
) -> Option<ContactOrigin> {
    // The oneof member must belong to the channel; with no channel the
    // channel violation already explains the problem.
    let expected = match raw {
        RawOrigin::None => None,
        RawOrigin::Phone { .. } => Some(("phone", Channel::Phone)),
        RawOrigin::Web { .. } => Some(("web", Channel::Web)),
        RawOrigin::FaceToFace { .. } => Some(("face_to_face", Channel::FaceToFace)),
    };
    let mut mismatch = false;
    if let (Some((field, origin_channel)), Some(channel)) = (expected, channel)
        && origin_channel != channel
    {
        let words = channel_words(origin_channel);
        errors.push(
            field,
            format!("{words} details are only allowed on {words} contacts"),
        );
        mismatch = true;
    }

    let origin = match raw {
        RawOrigin::None => {
            if channel == Some(Channel::FaceToFace) {
                errors.push(
                    "face_to_face.office_id",
                    "an office is required for face-to-face contacts",
                );
                return None;
            }
            ContactOrigin::None
        }
        RawOrigin::Phone {
            caller_number,
            dialled_number,
            call_id,
        } => {
            let caller_number = match known_phone {
                Some((raw, parsed)) if raw == caller_number.trim() => Ok(Some(parsed.clone())),
                _ => optional(caller_number, "phone.caller_number", PhoneNumber::parse, errors),
            };
            let dialled_number = optional_text(
                dialled_number,
                "phone.dialled_number",
                ORIGIN_FIELD_MAX_CHARS,
                errors,
            );
            let call_id = optional_text(call_id, "phone.call_id", ORIGIN_FIELD_MAX_CHARS, errors);
            ContactOrigin::Phone {
                caller_number: caller_number.ok()?,
                dialled_number: dialled_number.ok()?,
                call_id: call_id.ok()?,
            }
        }
        RawOrigin::Web { form_id, page_url } => {
            let form_id = optional_text(form_id, "web.form_id", ORIGIN_FIELD_MAX_CHARS, errors);
            let page_url = optional_text(page_url, "web.page_url", PAGE_URL_MAX_CHARS, errors);
            ContactOrigin::Web {
                form_id: form_id.ok()?,
                page_url: page_url.ok()?,
            }
        }
        RawOrigin::FaceToFace { office_id, desk } => {
            let office_id = office_id.trim();
            let office = if office_id.is_empty() {
                errors.push(
                    "face_to_face.office_id",
                    "an office is required for face-to-face contacts",
                );
                None
            } else if let Some(office) = catalogue.office(office_id) {
                Some(office.id.clone())
            } else {
                errors.push(
                    "face_to_face.office_id",
                    "unknown office: expected an id from the office list",
                );
                None
            };
            let desk = optional_text(desk, "face_to_face.desk", ORIGIN_FIELD_MAX_CHARS, errors);
            ContactOrigin::FaceToFace {
                office_id: office?,
                desk: desk.ok()?,
            }
        }
    };
    (!mismatch).then_some(origin)
}

fn validate_summary(raw: &str, errors: &mut ValidationErrors) -> Option<String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        errors.push(
            "summary",
            "a summary is required: one line saying what the contact is about",
        );
        return None;
    }
    if trimmed.chars().count() > SUMMARY_MAX_CHARS {
        errors.push(
            "summary",
            format!("a summary is at most {SUMMARY_MAX_CHARS} characters"),
        );
        return None;
    }
    // Stored text cannot hold NUL (PostgreSQL) and other controls only garble
    // an agent's screen; line breaks and tabs are fine in pasted text.
    if trimmed
        .chars()
        .any(|c| is_forbidden_in_text(c) && !matches!(c, '\n' | '\r' | '\t'))
    {
        errors.push("summary", "a summary must not contain control characters");
        return None;
    }
    Some(trimmed.to_owned())
}

fn is_valid_detail_key(key: &str) -> bool {
    (1..=DETAIL_KEY_MAX_CHARS).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'))
}

fn validate_details(
    raw: BTreeMap<String, String>,
    errors: &mut ValidationErrors,
) -> BTreeMap<String, String> {
    if raw.len() > DETAILS_MAX_ENTRIES {
        errors.push(
            "details",
            format!("at most {DETAILS_MAX_ENTRIES} details are allowed"),
        );
    }
    let mut details = BTreeMap::new();
    for (key, value) in raw {
        if !is_valid_detail_key(&key) {
            // Name the key when it is printable and short, so the form author
            // can find it; otherwise the path alone would be unreadable.
            let field = if key.chars().count() <= DETAIL_KEY_MAX_CHARS
                && !key.is_empty()
                && !key.chars().any(is_forbidden_in_text)
            {
                format!("details.{key}")
            } else {
                "details".to_owned()
            };
            errors.push(
                field,
                format!("a detail key is 1 to {DETAIL_KEY_MAX_CHARS} characters of a-z, 0-9, _, . and -"),
            );
            continue;
        }
        if value.chars().count() > DETAIL_VALUE_MAX_CHARS {
            errors.push(
                format!("details.{key}"),
                format!("at most {DETAIL_VALUE_MAX_CHARS} characters"),
            );
            continue;
        }
        if value.contains('\0') {
            errors.push(format!("details.{key}"), "must not contain null characters");
            continue;
        }
        details.insert(key, value);
    }
    details
}

/// A light BCP 47 check: a 2–3 letter primary language (or 4–8 for
/// registered ones), then subtags of 1–8 letters or digits. Full registry
/// validation is not worth a dependency; routing matches on the primary tag.
pub fn parse_language(raw: &str) -> Result<String, String> {
    let tag = raw.trim().to_ascii_lowercase().replace('_', "-");
    let invalid = || "not a valid language tag: expected bcp 47, e.g. en, cy, pl or pt-br".to_owned();
    if tag.len() > LANGUAGE_MAX_CHARS {
        return Err(invalid());
    }
    let mut subtags = tag.split('-');
    let primary = subtags.next().unwrap_or_default();
    let primary_ok = (2..=8).contains(&primary.len())
        && primary.len() != 4
        && primary.bytes().all(|b| b.is_ascii_lowercase());
    let rest_ok = subtags
        .all(|subtag| (1..=8).contains(&subtag.len()) && subtag.bytes().all(|b| b.is_ascii_alphanumeric()));
    if primary_ok && rest_ok {
        Ok(tag)
    } else {
        Err(invalid())
    }
}

fn validate_needs(raw: &RawNeeds, errors: &mut ValidationErrors) -> Option<Needs> {
    let language = optional(&raw.language, "needs.language", parse_language, errors);
    // UK GDPR: vulnerability is special-category data, recorded only with
    // the resident's explicit consent.
    if raw.vulnerable && !raw.vulnerability_consent {
        errors.push(
            "needs.vulnerable",
            "vulnerability can only be recorded with the resident's consent (needs.vulnerability_consent)",
        );
        return None;
    }
    Some(Needs {
        language: language.ok()?,
        british_sign_language: raw.british_sign_language,
        interpreter: raw.interpreter,
        large_print: raw.large_print,
        hearing_loop: raw.hearing_loop,
        assisted_digital: raw.assisted_digital,
        wheelchair_access: raw.wheelchair_access,
        vulnerable: raw.vulnerable,
        vulnerability_consent: raw.vulnerability_consent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::LazyLock;

    static CATALOGUE: LazyLock<Catalogue> =
        LazyLock::new(|| Catalogue::embedded().unwrap_or_else(|e| panic!("seeds/ are invalid: {e}")));

    fn phone_draft() -> ContactDraft {
        ContactDraft {
            channel: Some(Channel::Phone),
            service: "council-tax".to_owned(),
            customer: RawCustomer {
                name: "  Alex   Example ".to_owned(),
                phone: "07700 900123".to_owned(),
                email: "Alex@Example.ORG".to_owned(),
                postcode: "so43 7pn".to_owned(),
                address_line: " 1 Example Street ".to_owned(),
                uprn: "010012345678".to_owned(),
            },
            summary: "  Moving home next month  ".to_owned(),
            details: BTreeMap::from([("move_date".to_owned(), "2025-01-31".to_owned())]),
            needs: RawNeeds {
                language: "PL".to_owned(),
                interpreter: true,
                ..RawNeeds::default()
            },
            origin: RawOrigin::Phone {
                caller_number: "+44 7700 900123".to_owned(),
                dialled_number: "02380 285000".to_owned(),
                call_id: "call-42".to_owned(),
            },
        }
    }

    fn face_to_face_draft() -> ContactDraft {
        ContactDraft {
            channel: Some(Channel::FaceToFace),
            service: "housing-register".to_owned(),
            customer: RawCustomer::default(),
            summary: "Wants to join the housing register".to_owned(),
            origin: RawOrigin::FaceToFace {
                office_id: "lymington-town-hall".to_owned(),
                desk: "reception-1".to_owned(),
            },
            ..ContactDraft::default()
        }
    }

    fn violations(draft: ContactDraft) -> ValidationErrors {
        draft.validate(&CATALOGUE).expect_err("should be invalid")
    }

    fn fields(errors: &ValidationErrors) -> Vec<&str> {
        errors.violations.iter().map(|v| v.field.as_str()).collect()
    }

    #[track_caller]
    fn assert_only(draft: ContactDraft, field: &str) {
        let errors = violations(draft);
        assert_eq!(fields(&errors), vec![field], "{:?}", errors.violations);
    }

    #[test]
    fn a_valid_phone_contact_is_normalised() {
        let valid = phone_draft().validate(&CATALOGUE).expect("valid");
        assert_eq!(valid.channel, Channel::Phone);
        assert_eq!(valid.service.as_str(), "council-tax");
        let customer = &valid.customer;
        assert_eq!(
            customer.name.as_ref().map(PersonName::as_str),
            Some("Alex Example")
        );
        assert_eq!(
            customer.phone.as_ref().map(PhoneNumber::as_e164),
            Some("+447700900123")
        );
        assert_eq!(
            customer.email.as_ref().map(EmailAddress::as_str),
            Some("alex@example.org")
        );
        assert_eq!(customer.postcode.as_ref().map(Postcode::as_str), Some("SO43 7PN"));
        assert_eq!(customer.address_line.as_deref(), Some("1 Example Street"));
        assert_eq!(customer.uprn.as_ref().map(Uprn::as_str), Some("10012345678"));
        assert_eq!(valid.summary, "Moving home next month");
        assert_eq!(valid.details["move_date"], "2025-01-31");
        assert_eq!(valid.needs.language.as_deref(), Some("pl"));
        assert!(valid.needs.interpreter);
        let ContactOrigin::Phone {
            caller_number,
            dialled_number,
            call_id,
        } = &valid.origin
        else {
            panic!("phone origin expected, got {:?}", valid.origin);
        };
        assert_eq!(
            caller_number.as_ref().map(PhoneNumber::as_e164),
            Some("+447700900123")
        );
        assert_eq!(dialled_number.as_deref(), Some("02380 285000"));
        assert_eq!(call_id.as_deref(), Some("call-42"));
    }

    #[test]
    fn a_minimal_face_to_face_contact_needs_no_way_to_reach_the_resident() {
        let valid = face_to_face_draft().validate(&CATALOGUE).expect("valid");
        assert_eq!(valid.customer, CustomerDetails::default());
        assert_eq!(
            valid.origin,
            ContactOrigin::FaceToFace {
                office_id: OfficeId::parse("lymington-town-hall").expect("slug"),
                desk: Some("reception-1".to_owned()),
            }
        );
    }

    #[test]
    fn empty_optional_fields_are_absent() {
        let mut draft = phone_draft();
        draft.customer = RawCustomer {
            phone: "07700 900123".to_owned(),
            ..RawCustomer::default()
        };
        draft.customer.name = "   ".to_owned();
        draft.needs = RawNeeds::default();
        draft.details.clear();
        draft.origin = RawOrigin::Phone {
            caller_number: String::new(),
            dialled_number: String::new(),
            call_id: String::new(),
        };
        let valid = draft.validate(&CATALOGUE).expect("valid");
        assert_eq!(valid.customer.name, None);
        assert_eq!(valid.customer.email, None);
        assert_eq!(valid.needs, Needs::default());
        assert_eq!(
            valid.origin,
            ContactOrigin::Phone {
                caller_number: None,
                dialled_number: None,
                call_id: None
            }
        );
    }

    #[test]
    fn channel_is_required() {
        let mut draft = phone_draft();
        draft.channel = None;
        // With no channel the origin cannot mismatch: only the channel is reported.
        assert_only(draft, "channel");
    }

    #[test]
    fn service_must_exist_and_be_offered_on_the_channel() {
        for service in ["", "  ", "no-such-service", "Council Tax"] {
            let mut draft = phone_draft();
            draft.service = service.to_owned();
            assert_only(draft, "service");
        }
        // Missed bins are reported by phone or web, not at the counter.
        let mut draft = face_to_face_draft();
        draft.service = "missed-bins".to_owned();
        let errors = violations(draft);
        assert_eq!(fields(&errors), vec!["service"]);
        assert!(errors.violations[0].description.contains("face-to-face"));
        let mut draft = phone_draft();
        draft.service = " council-tax ".to_owned();
        assert!(draft.validate(&CATALOGUE).is_ok());
    }

    #[test]
    fn each_customer_field_is_validated_under_its_own_path() {
        type Spoil = fn(&mut RawCustomer);
        let cases: [(&str, Spoil); 6] = [
            ("customer.name", |c| c.name = "Alex\u{0}".to_owned()),
            ("customer.phone", |c| c.phone = "12345".to_owned()),
            ("customer.email", |c| c.email = "alex at example".to_owned()),
            ("customer.postcode", |c| c.postcode = "SO43 7PO".to_owned()),
            ("customer.address_line", |c| c.address_line = "x".repeat(501)),
            ("customer.uprn", |c| c.uprn = "12-34".to_owned()),
        ];
        for (field, spoil) in cases {
            let mut draft = phone_draft();
            spoil(&mut draft.customer);
            assert_only(draft, field);
        }
    }

    #[test]
    fn a_way_to_reach_the_resident_is_required_except_face_to_face() {
        let mut draft = phone_draft();
        draft.customer.phone.clear();
        draft.customer.email.clear();
        draft.origin = RawOrigin::None;
        assert_only(draft.clone(), "customer");

        for channel in [Channel::Web, Channel::Email, Channel::Letter] {
            let mut other = draft.clone();
            other.channel = Some(channel);
            assert_only(other, "customer");
        }

        // Each of the three ways is enough on its own.
        let mut with_email = draft.clone();
        with_email.customer.email = "alex@example.org".to_owned();
        assert!(with_email.validate(&CATALOGUE).is_ok());
        let mut with_phone = draft.clone();
        with_phone.customer.phone = "01590 646111".to_owned();
        assert!(with_phone.validate(&CATALOGUE).is_ok());
        let mut with_caller = draft.clone();
        with_caller.origin = RawOrigin::Phone {
            caller_number: "01590 646111".to_owned(),
            dialled_number: String::new(),
            call_id: String::new(),
        };
        assert!(with_caller.validate(&CATALOGUE).is_ok());

        // An invalid phone is reported as such, not also as "no way to reach".
        let mut invalid_phone = draft;
        invalid_phone.customer.phone = "123".to_owned();
        assert_only(invalid_phone, "customer.phone");
    }

    #[test]
    fn summary_is_one_to_five_hundred_characters() {
        for (summary, ok) in [
            ("", false),
            ("   ", false),
            ("a", true),
            (&"é".repeat(500), true),
            (&"é".repeat(501), false),
            ("line one\nline two", true),
            ("bell\u{7}", false),
            ("nul\u{0}", false),
        ] {
            let mut draft = phone_draft();
            draft.summary = summary.to_owned();
            match draft.validate(&CATALOGUE) {
                Ok(_) => assert!(ok, "{summary:?} should be refused"),
                Err(errors) => {
                    assert!(!ok, "{summary:?} should pass: {:?}", errors.violations);
                    assert_eq!(fields(&errors), vec!["summary"]);
                }
            }
        }
    }

    #[test]
    fn details_are_bounded_in_number_key_and_value() {
        let mut draft = phone_draft();
        draft.details = (0..50)
            .map(|i| (format!("field_{i}"), "v".repeat(4000)))
            .collect();
        assert!(draft.clone().validate(&CATALOGUE).is_ok());
        draft.details.insert("one.too-many".to_owned(), String::new());
        assert_only(draft, "details");

        let mut draft = phone_draft();
        draft.details.insert("Reason".to_owned(), "x".to_owned());
        draft.details.insert("k".repeat(65), "x".to_owned());
        draft.details.insert(String::new(), "x".to_owned());
        draft.details.insert("long_value".to_owned(), "v".repeat(4001));
        draft.details.insert("nul".to_owned(), "a\u{0}b".to_owned());
        let errors = violations(draft);
        let mut found = fields(&errors);
        found.sort_unstable();
        assert_eq!(
            found,
            vec![
                "details",
                "details",
                "details.Reason",
                "details.long_value",
                "details.nul"
            ]
        );
        assert!(is_valid_detail_key("a.b-c_9"));
    }

    #[test]
    fn origin_must_match_the_channel() {
        let web_origin = RawOrigin::Web {
            form_id: "council-tax-move".to_owned(),
            page_url: String::new(),
        };
        let office_origin = RawOrigin::FaceToFace {
            office_id: "appletree-court".to_owned(),
            desk: String::new(),
        };
        let phone_origin = phone_draft().origin;
        for (channel, origin, field) in [
            (Channel::Phone, web_origin.clone(), "web"),
            (Channel::Phone, office_origin.clone(), "face_to_face"),
            (Channel::Web, phone_origin.clone(), "phone"),
            (Channel::Web, office_origin.clone(), "face_to_face"),
            (Channel::Email, phone_origin.clone(), "phone"),
            (Channel::Letter, web_origin.clone(), "web"),
        ] {
            let mut draft = phone_draft();
            draft.channel = Some(channel);
            draft.origin = origin;
            assert_only(draft, field);
        }
        for (channel, origin) in [
            (Channel::Phone, RawOrigin::None),
            (Channel::Web, RawOrigin::None),
            (Channel::Web, web_origin),
            (Channel::Email, RawOrigin::None),
            (Channel::Letter, RawOrigin::None),
        ] {
            let mut draft = phone_draft();
            draft.channel = Some(channel);
            draft.origin = origin;
            assert!(draft.validate(&CATALOGUE).is_ok(), "{channel}");
        }
    }

    #[test]
    fn face_to_face_needs_a_known_office() {
        let mut draft = face_to_face_draft();
        draft.origin = RawOrigin::None;
        assert_only(draft, "face_to_face.office_id");
        for office_id in ["", "  ", "buckingham-palace"] {
            let mut draft = face_to_face_draft();
            draft.origin = RawOrigin::FaceToFace {
                office_id: office_id.to_owned(),
                desk: String::new(),
            };
            assert_only(draft, "face_to_face.office_id");
        }
        let mut draft = face_to_face_draft();
        draft.origin = RawOrigin::FaceToFace {
            office_id: "appletree-court".to_owned(),
            desk: "d".repeat(201),
        };
        assert_only(draft, "face_to_face.desk");
    }

    #[test]
    fn origin_fields_are_validated() {
        let mut draft = phone_draft();
        draft.origin = RawOrigin::Phone {
            caller_number: "withheld".to_owned(),
            dialled_number: "\u{0}".to_owned(),
            call_id: "c".repeat(201),
        };
        let errors = violations(draft);
        assert_eq!(
            fields(&errors),
            vec!["phone.caller_number", "phone.dialled_number", "phone.call_id"]
        );

        let mut draft = phone_draft();
        draft.channel = Some(Channel::Web);
        draft.origin = RawOrigin::Web {
            form_id: "f".repeat(201),
            page_url: "u".repeat(2001),
        };
        let errors = violations(draft);
        assert_eq!(fields(&errors), vec!["web.form_id", "web.page_url"]);
    }

    #[test]
    fn needs_language_is_a_bcp47_tag() {
        for (language, expected) in [
            ("en", Some("en")),
            ("CY", Some("cy")),
            ("pt-BR", Some("pt-br")),
            ("zh_Hant", Some("zh-hant")),
            ("sgn-gb", Some("sgn-gb")),
            ("", None),
        ] {
            let mut draft = phone_draft();
            draft.needs.language = language.to_owned();
            let valid = draft.validate(&CATALOGUE).expect(language);
            assert_eq!(valid.needs.language.as_deref(), expected);
        }
        for language in [
            "e",
            "english language",
            "en--gb",
            "en-",
            "1a",
            "en-toolongsubtag",
            "abcd",
        ] {
            let mut draft = phone_draft();
            draft.needs.language = language.to_owned();
            assert_only(draft, "needs.language");
        }
    }

    #[test]
    fn vulnerability_requires_consent() {
        let mut draft = phone_draft();
        draft.needs.vulnerable = true;
        assert_only(draft.clone(), "needs.vulnerable");
        draft.needs.vulnerability_consent = true;
        let valid = draft.validate(&CATALOGUE).expect("consented");
        assert!(valid.needs.vulnerable && valid.needs.vulnerability_consent);
        // Consent without a vulnerability is fine (recorded ahead of time).
        let mut draft = phone_draft();
        draft.needs.vulnerability_consent = true;
        assert!(draft.validate(&CATALOGUE).is_ok());
    }

    #[test]
    fn every_violation_is_reported_at_once() {
        let draft = ContactDraft {
            channel: Some(Channel::Web),
            service: "nope".to_owned(),
            customer: RawCustomer {
                name: "\u{7}".to_owned(),
                email: "not an email".to_owned(),
                postcode: "nowhere".to_owned(),
                uprn: "x".to_owned(),
                ..RawCustomer::default()
            },
            summary: String::new(),
            details: BTreeMap::from([("Bad Key".to_owned(), String::new())]),
            needs: RawNeeds {
                language: "!".to_owned(),
                vulnerable: true,
                ..RawNeeds::default()
            },
            origin: RawOrigin::FaceToFace {
                office_id: "nowhere".to_owned(),
                desk: String::new(),
            },
        };
        let errors = violations(draft);
        let mut found = fields(&errors);
        found.sort_unstable();
        assert_eq!(
            found,
            vec![
                "customer.email",
                "customer.name",
                "customer.postcode",
                "customer.uprn",
                "details.Bad Key",
                "face_to_face",
                "face_to_face.office_id",
                "needs.language",
                "needs.vulnerable",
                "service",
                "summary",
            ]
        );
        assert!(errors.to_string().starts_with("invalid fields: "));
    }

    #[test]
    fn descriptions_never_echo_personal_data() {
        let secret = "Zq9secret";
        let draft = ContactDraft {
            channel: Some(Channel::Phone),
            service: "council-tax".to_owned(),
            customer: RawCustomer {
                name: format!("{secret}\u{0}"),
                phone: format!("0{secret}"),
                email: format!("{secret}@"),
                postcode: secret.to_owned(),
                address_line: format!("{secret}\u{0}"),
                uprn: secret.to_owned(),
            },
            summary: format!("{secret}{}", "x".repeat(600)),
            details: BTreeMap::from([("reason".to_owned(), format!("{secret}{}", "x".repeat(5000)))]),
            needs: RawNeeds {
                language: secret.to_owned(),
                ..RawNeeds::default()
            },
            origin: RawOrigin::Phone {
                caller_number: secret.to_owned(),
                dialled_number: String::new(),
                call_id: String::new(),
            },
        };
        let errors = violations(draft);
        assert!(errors.violations.len() >= 9, "{:?}", errors.violations);
        for violation in &errors.violations {
            assert!(!violation.description.contains(secret), "{violation:?}");
            assert!(!violation.field.contains(secret), "{violation:?}");
            assert!(
                violation
                    .description
                    .starts_with(|c: char| c.is_ascii_lowercase()),
                "{violation:?}"
            );
            assert!(!violation.description.ends_with('.'), "{violation:?}");
        }
    }

    #[test]
    fn debug_output_redacts_personal_values() {
        let draft = phone_draft();
        let valid = draft.clone().validate(&CATALOGUE).expect("valid");
        let contact = NewContact::new(valid.clone());
        for debug in [format!("{draft:?}"), format!("{valid:?}"), format!("{contact:?}")] {
            for personal in [
                "Alex",
                "7700",
                "xample",
                "SO43",
                "so43",
                "Example Street",
                "Moving",
                "2025-01-31",
                "1001234",
            ] {
                assert!(!debug.contains(personal), "{personal} leaked: {debug}");
            }
            assert!(debug.contains("move_date"), "detail keys stay visible: {debug}");
            assert!(debug.contains("council-tax"), "{debug}");
        }
        let url = "https://x.test/?name=Alex";
        let web = RawOrigin::Web {
            form_id: "f".to_owned(),
            page_url: url.to_owned(),
        };
        assert!(!format!("{web:?}").contains("Alex"));
        let web = ContactOrigin::Web {
            form_id: None,
            page_url: Some(url.to_owned()),
        };
        assert!(!format!("{web:?}").contains("Alex"));
    }

    #[test]
    fn new_contact_gets_identity_and_round_trips_through_serde() {
        let valid = phone_draft().validate(&CATALOGUE).expect("valid");
        let first = NewContact::new(valid.clone());
        let second = NewContact::new(valid);
        assert_ne!(first.id, second.id);
        assert!(first.reference.as_str().starts_with("SB-"));
        assert_eq!(first.id.as_uuid().get_version_num(), 7);
        assert!(first.received_at <= chrono::Utc::now());
        let json = serde_json::to_string(&first).expect("serialise");
        let back: NewContact = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, first);
        let value = serde_json::to_value(&first).expect("serialise");
        assert_eq!(value["contact"]["channel"], "phone");
        assert_eq!(value["contact"]["origin"]["kind"], "phone");
        assert_eq!(value["contact"]["customer"]["phone"], "+447700900123");
    }

    fn arbitrary_text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            ".{0,12}",
            "[0-9 +()-]{0,16}",
            "[a-z0-9@.]{0,20}",
            "\\PC{0,600}",
        ]
    }

    /// Mostly absent or plausible values, sometimes anything at all, so both
    /// the accepting and the refusing paths are exercised.
    fn field(plausible: &'static [&'static str]) -> impl Strategy<Value = String> {
        prop_oneof![
            3 => Just(String::new()),
            3 => proptest::sample::select(plausible).prop_map(str::to_owned),
            1 => arbitrary_text(),
        ]
    }

    fn arbitrary_draft() -> impl Strategy<Value = ContactDraft> {
        let channel = prop_oneof![
            1 => Just(None),
            9 => proptest::sample::select(Channel::ALL.to_vec()).prop_map(Some),
        ];
        let service_ids: Vec<String> = CATALOGUE.services().iter().map(|s| s.id.to_string()).collect();
        let service = prop_oneof![
            4 => proptest::sample::select(service_ids),
            1 => arbitrary_text(),
        ];
        let customer = (
            field(&["Alex Example", "  Sam   O'Neill "]),
            field(&["07700 900123", "+33 1 23 45 67 89", "(01590) 646111"]),
            field(&["a@example.org", "Sam@Example.ORG"]),
            field(&["so43 7pn", "SW1A2AA"]),
            field(&["1 Example Street", " Flat 2, The Parade "]),
            field(&["100062188425", "0042"]),
        )
            .prop_map(|(name, phone, email, postcode, address_line, uprn)| RawCustomer {
                name,
                phone,
                email,
                postcode,
                address_line,
                uprn,
            });
        let summary = prop_oneof![3 => "[a-zA-Z ]{1,40}", 1 => arbitrary_text()];
        let details = proptest::collection::btree_map(
            prop_oneof![4 => "[a-z_.-]{1,8}", 1 => "[a-zA-Z_ .]{0,8}"],
            ".{0,8}",
            0..4,
        );
        let needs =
            (field(&["en", "CY", "pt_BR"]), any::<[bool; 8]>()).prop_map(|(language, flags)| RawNeeds {
                language,
                british_sign_language: flags[0],
                interpreter: flags[1],
                large_print: flags[2],
                hearing_loop: flags[3],
                assisted_digital: flags[4],
                wheelchair_access: flags[5],
                vulnerable: flags[6],
                vulnerability_consent: flags[7],
            });
        let origin = prop_oneof![
            Just(RawOrigin::None),
            (
                field(&["07700 900123"]),
                field(&["02380 285000"]),
                field(&["call-1"])
            )
                .prop_map(|(caller_number, dialled_number, call_id)| RawOrigin::Phone {
                    caller_number,
                    dialled_number,
                    call_id
                }),
            (
                field(&["council-tax-move"]),
                field(&["https://example.org/forms/move"])
            )
                .prop_map(|(form_id, page_url)| RawOrigin::Web { form_id, page_url }),
            (
                prop_oneof![
                    3 => Just("appletree-court".to_owned()),
                    3 => Just("lymington-town-hall".to_owned()),
                    1 => arbitrary_text(),
                ],
                field(&["reception-1"])
            )
                .prop_map(|(office_id, desk)| RawOrigin::FaceToFace { office_id, desk }),
        ];
        // Mostly a coherent draft (origin of the draft's own channel, a
        // service offered on it), sometimes whatever was drawn, so both the
        // matching rules and everything behind them get exercised.
        let coherent = proptest::bool::weighted(0.8);
        (
            channel, service, customer, summary, details, needs, origin, coherent,
        )
            .prop_map(
                |(channel, service, customer, summary, details, needs, origin, coherent)| {
                    let mut draft = ContactDraft {
                        channel,
                        service,
                        customer,
                        summary,
                        details,
                        needs,
                        origin,
                    };
                    if coherent {
                        make_coherent(&mut draft);
                    }
                    draft
                },
            )
    }

    fn make_coherent(draft: &mut ContactDraft) {
        let Some(channel) = draft.channel else { return };
        let offered = CATALOGUE
            .service(draft.service.trim())
            .is_some_and(|s| s.is_offered_on(channel));
        if !offered && let Some(service) = CATALOGUE.services().iter().find(|s| s.is_offered_on(channel)) {
            draft.service = service.id.to_string();
        }
        let matches = matches!(
            (channel, &draft.origin),
            (Channel::Phone, RawOrigin::Phone { .. } | RawOrigin::None)
                | (Channel::Web, RawOrigin::Web { .. } | RawOrigin::None)
                | (Channel::FaceToFace, RawOrigin::FaceToFace { .. })
                | (Channel::Email | Channel::Letter, RawOrigin::None)
        );
        if !matches {
            draft.origin = match channel {
                Channel::FaceToFace => RawOrigin::FaceToFace {
                    office_id: "appletree-court".to_owned(),
                    desk: String::new(),
                },
                _ => RawOrigin::None,
            };
        }
        draft.needs.vulnerability_consent |= draft.needs.vulnerable;
    }

    #[test]
    fn the_draft_generator_yields_valid_and_invalid_drafts() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = arbitrary_draft();
        let valid = (0..2000)
            .filter(|_| {
                let draft = strategy.new_tree(&mut runner).expect("generate").current();
                draft.validate(&CATALOGUE).is_ok()
            })
            .count();
        // Both paths must be well covered for the properties below to mean much.
        assert!((200..1800).contains(&valid), "{valid} of 2000 valid");
    }

    const KNOWN_FIELDS: &[&str] = &[
        "channel",
        "service",
        "customer",
        "customer.name",
        "customer.phone",
        "customer.email",
        "customer.postcode",
        "customer.address_line",
        "customer.uprn",
        "summary",
        "details",
        "needs.language",
        "needs.vulnerable",
        "phone",
        "phone.caller_number",
        "phone.dialled_number",
        "phone.call_id",
        "web",
        "web.form_id",
        "web.page_url",
        "face_to_face",
        "face_to_face.office_id",
        "face_to_face.desk",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn validate_never_panics_and_names_known_fields(draft in arbitrary_draft()) {
            let channel = draft.channel;
            match draft.validate(&CATALOGUE) {
                Ok(valid) => {
                    prop_assert_eq!(Some(valid.channel), channel);
                    prop_assert!(!valid.summary.is_empty());
                    prop_assert!(!valid.needs.vulnerable || valid.needs.vulnerability_consent);
                }
                Err(errors) => {
                    prop_assert!(!errors.violations.is_empty());
                    for violation in &errors.violations {
                        prop_assert!(
                            KNOWN_FIELDS.contains(&violation.field.as_str())
                                || violation.field.starts_with("details."),
                            "unexpected field {}", violation.field
                        );
                        prop_assert!(!violation.description.is_empty());
                    }
                }
            }
        }

        #[test]
        fn a_valid_contact_validates_again_to_itself(draft in arbitrary_draft()) {
            if let Ok(valid) = draft.validate(&CATALOGUE) {
                let again = redraft(&valid).validate(&CATALOGUE);
                prop_assert_eq!(again, Ok(valid));
            }
        }
    }

    /// Turns a validated contact back into a draft, as a store round trip or a
    /// resubmission would.
    fn redraft(valid: &ValidContact) -> ContactDraft {
        let text = |value: Option<&str>| value.unwrap_or_default().to_owned();
        let customer = &valid.customer;
        ContactDraft {
            channel: Some(valid.channel),
            service: valid.service.to_string(),
            customer: RawCustomer {
                name: text(customer.name.as_ref().map(PersonName::as_str)),
                phone: text(customer.phone.as_ref().map(PhoneNumber::as_e164)),
                email: text(customer.email.as_ref().map(EmailAddress::as_str)),
                postcode: text(customer.postcode.as_ref().map(Postcode::as_str)),
                address_line: text(customer.address_line.as_deref()),
                uprn: text(customer.uprn.as_ref().map(Uprn::as_str)),
            },
            summary: valid.summary.clone(),
            details: valid.details.clone(),
            needs: RawNeeds {
                language: text(valid.needs.language.as_deref()),
                british_sign_language: valid.needs.british_sign_language,
                interpreter: valid.needs.interpreter,
                large_print: valid.needs.large_print,
                hearing_loop: valid.needs.hearing_loop,
                assisted_digital: valid.needs.assisted_digital,
                wheelchair_access: valid.needs.wheelchair_access,
                vulnerable: valid.needs.vulnerable,
                vulnerability_consent: valid.needs.vulnerability_consent,
            },
            origin: match &valid.origin {
                ContactOrigin::None => RawOrigin::None,
                ContactOrigin::Phone {
                    caller_number,
                    dialled_number,
                    call_id,
                } => RawOrigin::Phone {
                    caller_number: text(caller_number.as_ref().map(PhoneNumber::as_e164)),
                    dialled_number: text(dialled_number.as_deref()),
                    call_id: text(call_id.as_deref()),
                },
                ContactOrigin::Web { form_id, page_url } => RawOrigin::Web {
                    form_id: text(form_id.as_deref()),
                    page_url: text(page_url.as_deref()),
                },
                ContactOrigin::FaceToFace { office_id, desk } => RawOrigin::FaceToFace {
                    office_id: office_id.to_string(),
                    desk: text(desk.as_deref()),
                },
            },
        }
    }
}
