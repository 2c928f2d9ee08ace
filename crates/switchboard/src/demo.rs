//! Demo data: fictional residents' contacts from `seeds/demo.toml`, submitted
//! through intake by `switchboard up --demo`.
//!
//! Each `[[contacts]]` entry is the TOML form of one `SubmitContactRequest`
//! (the file's header documents every key). [`parse`] reads the file and
//! validates every contact against the catalogue with the rules intake applies
//! (`ContactDraft::validate`), so a mistake stops start-up with the file, the
//! contact id and the field named, instead of surfacing as refused contacts
//! later. [`submit_all`] then hands each contact to [`Intake::submit`], so
//! validation, idempotency and the outbox apply exactly as for real contacts:
//! the contact's id is its idempotency key, and loading twice stores nothing
//! twice.

use std::{collections::BTreeMap, collections::BTreeSet, fmt, path::Path};

use serde::Deserialize;
use switchboard_domain::{Catalogue, Channel, ValidationErrors};
use switchboard_intake::{Intake, IntakeError, convert::contact_draft};
use switchboard_proto::v1::{self, SubmitContactRequest, submit_contact_request::Origin};
use switchboard_runtime::{Shutdown, wire::channel_to_proto};

/// The demo file's name in a seeds dir.
pub const FILE_NAME: &str = "demo.toml";

/// How the built-in file is named in errors.
pub const EMBEDDED_FILE: &str = "seeds/demo.toml";

/// The repo's demo data, compiled in like the catalogue, so `up --demo` works
/// with no files beside the binary.
const EMBEDDED: &str = include_str!("../../../seeds/demo.toml");

/// Ids become idempotency keys and appear in logs: short, stable slugs.
const ID_MAX_CHARS: usize = 64;

/// A demo file that cannot be loaded. Names the file, the contact (by id when
/// it has one, else by its position) and each failing field, so whoever edits
/// the file can go straight to the line.
///
/// Displays as `seeds/demo.toml: contact demo-007: customer.phone: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {}", describe(.contact, .problems))]
pub struct DemoError {
    pub file: String,
    /// `contact demo-007`, or `contacts[6]` when the entry has no usable id;
    /// `None` for whole-file problems.
    pub contact: Option<String>,
    /// At least one.
    pub problems: Vec<DemoProblem>,
}

/// One thing wrong with a contact (or the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoProblem {
    /// The field path in the request's terms, e.g. `customer.phone`; `None`
    /// when the entry as a whole is wrong.
    pub field: Option<String>,
    pub description: String,
}

impl fmt::Display for DemoProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.description),
            None => f.write_str(&self.description),
        }
    }
}

fn describe(contact: &Option<String>, problems: &[DemoProblem]) -> String {
    let problems = problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    match contact {
        Some(contact) => format!("{contact}: {problems}"),
        None => problems,
    }
}

impl DemoError {
    fn new(file: &str, contact: Option<String>, field: Option<&str>, description: impl Into<String>) -> Self {
        DemoError {
            file: file.to_owned(),
            contact,
            problems: vec![DemoProblem {
                field: field.map(str::to_owned),
                description: description.into(),
            }],
        }
    }

    fn invalid(file: &str, id: &str, errors: ValidationErrors) -> Self {
        DemoError {
            file: file.to_owned(),
            contact: Some(format!("contact {id}")),
            problems: errors
                .violations
                .into_iter()
                .map(|violation| DemoProblem {
                    field: Some(violation.field),
                    description: violation.description,
                })
                .collect(),
        }
    }
}

/// One `[[contacts]]` entry. Field names follow the proto, so a contact reads
/// the same here as in `POST /v1/contacts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoContact {
    id: String,
    channel: Channel,
    service: String,
    summary: String,
    /// The proto's own messages: their (pbjson) deserialisers take the proto
    /// field names and refuse unknown ones.
    #[serde(default)]
    customer: v1::Customer,
    #[serde(default)]
    details: BTreeMap<String, String>,
    #[serde(default)]
    needs: v1::Needs,
    phone: Option<v1::PhoneOrigin>,
    web: Option<v1::WebOrigin>,
    face_to_face: Option<v1::FaceToFaceOrigin>,
}

impl DemoContact {
    /// How many origin tables are given; the proto's `oneof` holds one.
    fn origin_count(&self) -> usize {
        [
            self.phone.is_some(),
            self.web.is_some(),
            self.face_to_face.is_some(),
        ]
        .into_iter()
        .filter(|given| *given)
        .count()
    }

    /// The request, with the id as its idempotency key. Call only with at
    /// most one origin ([`DemoContact::origin_count`]): the first one wins.
    fn into_request(self) -> SubmitContactRequest {
        debug_assert!(self.origin_count() <= 1);
        let origin = self
            .phone
            .map(Origin::Phone)
            .or(self.web.map(Origin::Web))
            .or(self.face_to_face.map(Origin::FaceToFace));
        SubmitContactRequest {
            channel: channel_to_proto(self.channel) as i32,
            service: self.service,
            customer: Some(self.customer),
            summary: self.summary,
            details: self.details,
            needs: Some(self.needs),
            idempotency_key: self.id,
            origin,
        }
    }
}

fn is_valid_id(id: &str) -> bool {
    (1..=ID_MAX_CHARS).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Parses a demo file and validates every contact against `catalogue`.
/// `file` names it in errors. The requests come back in file order, each with
/// its id as the idempotency key.
pub fn parse(file: &str, text: &str, catalogue: &Catalogue) -> Result<Vec<SubmitContactRequest>, DemoError> {
    let table = text.parse::<toml::Table>().map_err(|error| {
        let line = error
            .span()
            .and_then(|span| text.get(..span.start))
            .map(|before| before.matches('\n').count() + 1);
        let at = line.map(|line| format!(" at line {line}")).unwrap_or_default();
        DemoError::new(
            file,
            None,
            None,
            format!("not valid toml{at}: {}", error.message().trim_end()),
        )
    })?;
    if let Some(unknown) = table.keys().find(|key| *key != "contacts") {
        return Err(DemoError::new(
            file,
            None,
            Some(unknown),
            "unknown top-level key; expected only [[contacts]] entries",
        ));
    }
    let Some(entries) = table.get("contacts").and_then(toml::Value::as_array) else {
        return Err(DemoError::new(
            file,
            None,
            Some("contacts"),
            "missing: expected [[contacts]] entries",
        ));
    };

    let mut seen = BTreeSet::new();
    let mut requests = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        // Name the entry by its id once it has a usable one, by position before.
        let label = match entry.get("id").and_then(toml::Value::as_str) {
            Some(id) if is_valid_id(id) => format!("contact {id}"),
            _ => format!("contacts[{index}]"),
        };
        let contact: DemoContact = serde_path_to_error::deserialize(entry.clone()).map_err(|error| {
            let path = error.path().to_string();
            let field = (path != ".").then_some(path);
            // toml appends the key's place on a second line; the path says it.
            let message = error.into_inner().to_string();
            let description = message.lines().next().unwrap_or_default().to_owned();
            DemoError::new(file, Some(label.clone()), field.as_deref(), description)
        })?;
        if !is_valid_id(&contact.id) {
            return Err(DemoError::new(
                file,
                Some(label),
                Some("id"),
                format!("an id is 1 to {ID_MAX_CHARS} characters of a-z, 0-9 and -, e.g. demo-001"),
            ));
        }
        if !seen.insert(contact.id.clone()) {
            return Err(DemoError::new(
                file,
                Some(label),
                Some("id"),
                "used by an earlier contact: ids are idempotency keys and must be unique",
            ));
        }
        if contact.origin_count() > 1 {
            return Err(DemoError::new(
                file,
                Some(label),
                None,
                "at most one of phone, web and face_to_face, the one that matches the channel",
            ));
        }
        let id = contact.id.clone();
        let request = contact.into_request();
        contact_draft(request.clone())
            .validate(catalogue)
            .map_err(|errors| DemoError::invalid(file, &id, errors))?;
        requests.push(request);
    }
    Ok(requests)
}

/// The demo data built into the binary.
pub fn embedded(catalogue: &Catalogue) -> Result<Vec<SubmitContactRequest>, DemoError> {
    parse(EMBEDDED_FILE, EMBEDDED, catalogue)
}

/// The demo data from `seeds_dir` (none when it holds no `demo.toml`: a
/// council's own seeds need not ship demo residents), or the built-in data.
pub fn load(seeds_dir: Option<&Path>, catalogue: &Catalogue) -> anyhow::Result<Vec<SubmitContactRequest>> {
    let Some(dir) = seeds_dir else {
        return Ok(embedded(catalogue)?);
    };
    let path = dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(parse(&path.display().to_string(), &text, catalogue)?),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(seeds_dir = %dir.display(), "no demo.toml in the seeds dir; no demo data");
            Ok(Vec::new())
        }
        Err(error) => Err(anyhow::Error::new(error).context(format!("cannot read {}", path.display()))),
    }
}

/// What loading the demo data did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DemoLoaded {
    /// Stored now.
    pub stored: usize,
    /// Already stored by an earlier load (same id, same contact).
    pub replayed: usize,
    /// Refused by intake: an id reused for a changed contact, or a store error.
    pub refused: usize,
}

/// Submits `contacts` through `intake` one at a time, in order, so a
/// resident's later contacts find the customer and case their first one
/// created. Stops early when `shutdown` fires. Logs one line with the counts.
pub async fn submit_all(
    intake: Intake,
    contacts: Vec<SubmitContactRequest>,
    shutdown: Shutdown,
) -> DemoLoaded {
    let mut loaded = DemoLoaded::default();
    for request in contacts {
        if shutdown.is_triggered() {
            break;
        }
        let demo_id = request.idempotency_key.clone();
        match intake.submit(request).await {
            Ok(accepted) if accepted.replayed => loaded.replayed += 1,
            Ok(_) => loaded.stored += 1,
            Err(IntakeError::IdempotencyKeyReused) => {
                loaded.refused += 1;
                tracing::warn!(
                    demo_contact = %demo_id,
                    "demo contact changed since it was first loaded; the stored one stays (give a changed contact a new id)"
                );
            }
            Err(error) => {
                loaded.refused += 1;
                tracing::warn!(demo_contact = %demo_id, error.message = %error, "demo contact refused");
            }
        }
    }
    tracing::info!(
        stored = loaded.stored,
        replayed = loaded.replayed,
        refused = loaded.refused,
        "demo data loaded"
    );
    loaded
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use anyhow::Context as _;
    use switchboard_domain::PhoneNumber;

    use super::*;

    static CATALOGUE: LazyLock<Catalogue> =
        LazyLock::new(|| Catalogue::embedded().unwrap_or_else(|error| panic!("seeds/ are invalid: {error}")));

    fn parse_text(text: &str) -> Result<Vec<SubmitContactRequest>, DemoError> {
        parse("demo.toml", text, &CATALOGUE)
    }

    fn error_text(text: &str) -> String {
        match parse_text(text) {
            Ok(requests) => panic!("expected an error, parsed {} contacts", requests.len()),
            Err(error) => error.to_string(),
        }
    }

    const GOOD: &str = r#"
[[contacts]]
id = "demo-001"
channel = "phone"
service = "council-tax"
summary = "a question about my bill"
customer = { name = "Sam Example", phone = "07700 900001" }
phone = { caller_number = "07700 900001" }

[[contacts]]
id = "demo-002"
channel = "face_to_face"
service = "housing-repairs"
summary = "a leak"
face_to_face = { office_id = "hythe-help-point", desk = "reception-1" }
"#;

    #[test]
    fn the_built_in_demo_data_parses_and_every_contact_validates() {
        let requests = embedded(&CATALOGUE).unwrap_or_else(|error| panic!("{error}"));
        assert!(requests.len() >= 25, "about 30 contacts, got {}", requests.len());
        for request in &requests {
            assert!(request.idempotency_key.starts_with("demo-"));
            let valid = contact_draft(request.clone())
                .validate(&CATALOGUE)
                .unwrap_or_else(|errors| panic!("{}: {errors}", request.idempotency_key));
            assert_eq!(channel_to_proto(valid.channel) as i32, request.channel);
        }
        let channels: BTreeSet<i32> = requests.iter().map(|request| request.channel).collect();
        for channel in [v1::Channel::Phone, v1::Channel::Web, v1::Channel::FaceToFace] {
            assert!(channels.contains(&(channel as i32)), "no {channel:?} contact");
        }
        let services: BTreeSet<&str> = requests.iter().map(|request| request.service.as_str()).collect();
        assert!(services.len() >= 8, "several services, got {services:?}");
    }

    #[test]
    fn the_built_in_demo_data_uses_only_drama_numbers_and_example_domains() {
        let requests = embedded(&CATALOGUE).unwrap_or_else(|error| panic!("{error}"));
        let mut numbers = 0;
        for request in &requests {
            let customer = request.customer.clone().unwrap_or_default();
            let mut phones = vec![customer.phone];
            if let Some(Origin::Phone(origin)) = &request.origin {
                phones.push(origin.caller_number.clone());
                phones.push(origin.dialled_number.clone());
            }
            for raw in phones.iter().filter(|raw| !raw.is_empty()) {
                let e164 = PhoneNumber::parse(raw)
                    .unwrap_or_else(|error| panic!("{}: {error}", request.idempotency_key))
                    .as_str()
                    .to_owned();
                assert!(
                    ["+447700900", "+441632960"]
                        .iter()
                        .any(|prefix| e164.starts_with(prefix)),
                    "{}: {raw} is not in an Ofcom drama range",
                    request.idempotency_key
                );
                numbers += 1;
            }
            if !customer.email.is_empty() {
                assert!(
                    customer.email.ends_with("@example.org") || customer.email.ends_with("@example.com"),
                    "{}: email outside example.org and example.com",
                    request.idempotency_key
                );
            }
        }
        assert!(numbers > 0);
    }

    #[test]
    fn some_residents_contact_several_times_about_one_matter() {
        let requests = embedded(&CATALOGUE).unwrap_or_else(|error| panic!("{error}"));
        let mut channels_per_matter: BTreeMap<(String, String), BTreeSet<i32>> = BTreeMap::new();
        for request in &requests {
            let phone = request.customer.clone().unwrap_or_default().phone;
            if phone.is_empty() {
                continue;
            }
            channels_per_matter
                .entry((phone, request.service.clone()))
                .or_default()
                .insert(request.channel);
        }
        let across_channels = channels_per_matter
            .values()
            .filter(|channels| channels.len() > 1)
            .count();
        assert!(
            across_channels >= 3,
            "residents coming back on another channel: {across_channels}"
        );
    }

    #[test]
    fn a_contact_maps_onto_the_request() {
        let requests = parse_text(GOOD).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(requests.len(), 2);
        let first = &requests[0];
        assert_eq!(first.idempotency_key, "demo-001");
        assert_eq!(first.channel, v1::Channel::Phone as i32);
        assert_eq!(first.service, "council-tax");
        assert!(matches!(&first.origin, Some(Origin::Phone(phone)) if phone.caller_number == "07700 900001"));
        assert!(
            matches!(&requests[1].origin, Some(Origin::FaceToFace(visit)) if visit.office_id == "hythe-help-point")
        );
    }

    #[test]
    fn an_invalid_contact_is_named_by_id_and_field() {
        let text = GOOD.replace(r#"phone = "07700 900001""#, r#"phone = "not a number""#);
        let error = error_text(&text);
        assert!(
            error.starts_with("demo.toml: contact demo-001: customer.phone: a phone number may contain only"),
            "{error}"
        );

        let text = GOOD.replace("hythe-help-point", "no-such-office");
        let error = error_text(&text);
        assert!(
            error.contains("contact demo-002: face_to_face.office_id: unknown office"),
            "{error}"
        );

        let text = GOOD.replace(
            r#"service = "council-tax""#,
            r#"service = "missed-bins"
details = { "Bad Key" = "x" }"#,
        );
        let error = error_text(&text);
        assert!(
            error.contains("contact demo-001: details.Bad Key: a detail key"),
            "{error}"
        );
    }

    #[test]
    fn a_service_not_offered_on_the_channel_is_refused() {
        let text = GOOD.replace(r#"service = "housing-repairs""#, r#"service = "missed-bins""#);
        let error = error_text(&text);
        assert!(
            error.contains(
                "contact demo-002: service: this service is not offered on the face-to-face channel"
            ),
            "{error}"
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_their_place() {
        let error = error_text(&GOOD.replace("customer = { name", "customer = { nmae"));
        assert!(
            error.starts_with("demo.toml: contact demo-001: customer.nmae: unknown field `nmae`"),
            "{error}"
        );

        let error = error_text(&format!("{GOOD}\nsummery = \"typo\"\n"));
        assert!(
            error.starts_with("demo.toml: contact demo-002: summery: unknown field `summery`"),
            "{error}"
        );

        let error = error_text(&format!("residents = []\n{GOOD}"));
        assert!(
            error.starts_with("demo.toml: residents: unknown top-level key"),
            "{error}"
        );
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let error = error_text(&GOOD.replace("demo-002", "demo-001"));
        assert!(
            error.starts_with("demo.toml: contact demo-001: id: used by an earlier contact"),
            "{error}"
        );
    }

    #[test]
    fn ids_must_be_slugs_and_entries_complete() {
        let error = error_text(&GOOD.replace("demo-002", "Demo 2"));
        assert!(
            error.starts_with("demo.toml: contacts[1]: id: an id is"),
            "{error}"
        );

        let error = error_text(&GOOD.replace("summary = \"a leak\"\n", ""));
        assert!(
            error.starts_with("demo.toml: contact demo-002: missing field `summary`"),
            "{error}"
        );

        let error = error_text(&GOOD.replace(r#"channel = "phone""#, r#"channel = "fax""#));
        assert!(
            error.starts_with("demo.toml: contact demo-001: channel: unknown variant `fax`"),
            "{error}"
        );
    }

    #[test]
    fn one_origin_only() {
        let text = GOOD.replace(
            r#"phone = { caller_number = "07700 900001" }"#,
            "phone = {}\nweb = { form_id = \"x\" }",
        );
        let error = error_text(&text);
        assert!(
            error.contains("contact demo-001: at most one of phone, web and face_to_face"),
            "{error}"
        );
    }

    #[test]
    fn bad_toml_names_the_line() {
        let error = error_text("[[contacts]]\nid = \"demo-001\nchannel = \"phone\"\n");
        assert!(
            error.starts_with("demo.toml: not valid toml at line 2"),
            "{error}"
        );
    }

    #[test]
    fn a_seeds_dir_without_demo_toml_has_no_demo_data() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        assert!(load(Some(dir.path()), &CATALOGUE)?.is_empty());

        std::fs::write(dir.path().join(FILE_NAME), GOOD)?;
        assert_eq!(load(Some(dir.path()), &CATALOGUE)?.len(), 2);

        std::fs::write(
            dir.path().join(FILE_NAME),
            GOOD.replace("hythe-help-point", "nowhere"),
        )?;
        let error = format!(
            "{:#}",
            load(Some(dir.path()), &CATALOGUE).err().context("an error")?
        );
        let path = dir.path().join(FILE_NAME);
        assert!(
            error.starts_with(&format!("{}: contact demo-002", path.display())),
            "{error}"
        );
        Ok(())
    }
}
