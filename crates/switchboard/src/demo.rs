//! Demo data from `seeds/demo.toml`: fictional residents' contacts, submitted
//! through intake by `switchboard up --demo`, and the small contact centre of
//! agents who take them (run by [`crate::simulate`]).
//!
//! Each `[[contacts]]` entry is the TOML form of one `SubmitContactRequest`
//! and each `[[agents]]` entry one routing profile (the file's header
//! documents every key). [`parse`] reads the file and validates every contact
//! against the catalogue with the rules intake applies
//! (`ContactDraft::validate`), and every agent against the catalogue's
//! offices and the routing configuration's skills, so a mistake stops
//! start-up with the file, the contact or agent and the field named, instead
//! of surfacing as refused contacts or profiles later. [`submit_all`] then
//! hands each contact to [`Intake::submit`], so validation, idempotency and
//! the outbox apply exactly as for real contacts: the contact's id is its
//! idempotency key, and loading twice stores nothing twice.

use std::{collections::BTreeMap, collections::BTreeSet, fmt, path::Path};

use serde::Deserialize;
use switchboard_domain::{Catalogue, Channel, ValidationErrors};
use switchboard_intake::{Intake, IntakeError, convert::contact_draft};
use switchboard_proto::v1::{self, SubmitContactRequest, submit_contact_request::Origin};
use switchboard_routing::{
    RoutingConfig,
    config::{MAX_PROFICIENCY, MIN_PROFICIENCY},
};
use switchboard_routing_service::StoredProfile;
use switchboard_runtime::{Shutdown, wire::channel_to_proto};

/// The demo file's name in a seeds dir.
pub const FILE_NAME: &str = "demo.toml";

/// How the built-in file is named in errors.
pub const EMBEDDED_FILE: &str = "seeds/demo.toml";

/// The repo's demo data, compiled in like the catalogue, so `up --demo` works
/// with no files beside the binary.
const EMBEDDED: &str = include_str!("../../../seeds/demo.toml");

/// Ids become idempotency keys and agents' subjects appear in logs: short,
/// stable slugs.
const ID_MAX_CHARS: usize = 64;

/// A demo file that cannot be loaded. Names the file, the entry (a contact by
/// id or an agent by subject when it has one, else by its position) and each
/// failing field, so whoever edits the file can go straight to the line.
///
/// Displays as `seeds/demo.toml: contact demo-007: customer.phone: …` or
/// `seeds/demo.toml: agent demo-agent-owen: skills.bsl: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {}", describe(.entry, .problems))]
pub struct DemoError {
    pub file: String,
    /// `contact demo-007` or `agent demo-agent-owen`, or `contacts[6]` or
    /// `agents[2]` when the entry has no usable id; `None` for whole-file
    /// problems.
    pub entry: Option<String>,
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

fn describe(entry: &Option<String>, problems: &[DemoProblem]) -> String {
    let problems = problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    match entry {
        Some(entry) => format!("{entry}: {problems}"),
        None => problems,
    }
}

impl DemoError {
    fn new(file: &str, entry: Option<String>, field: Option<&str>, description: impl Into<String>) -> Self {
        DemoError {
            file: file.to_owned(),
            entry,
            problems: vec![DemoProblem {
                field: field.map(str::to_owned),
                description: description.into(),
            }],
        }
    }

    fn invalid(file: &str, id: &str, errors: ValidationErrors) -> Self {
        DemoError {
            file: file.to_owned(),
            entry: Some(format!("contact {id}")),
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

/// Everything a demo file holds, validated.
#[derive(Debug, Clone, Default)]
pub struct DemoData {
    /// In file order, each with its id as the idempotency key.
    pub contacts: Vec<SubmitContactRequest>,
    /// In file order.
    pub agents: Vec<DemoAgent>,
}

/// One member of staff in the demo contact centre.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoAgent {
    /// The staff subject (`sub`) of the agent's token.
    pub subject: String,
    pub profile: StoredProfile,
    /// Whether `up --demo` runs a simulated desktop for this agent; `false`
    /// for a profile a developer signs in as.
    pub simulated: bool,
}

/// One `[[agents]]` entry. Proficiency and capacity are read wider than they
/// are stored, so an out-of-range value gets this module's message rather
/// than serde's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    subject: String,
    skills: BTreeMap<String, i64>,
    team: String,
    office: Option<String>,
    channels: Vec<Channel>,
    #[serde(default)]
    web_capacity: i64,
    #[serde(default = "simulated_by_default")]
    simulated: bool,
}

fn simulated_by_default() -> bool {
    true
}

/// Parses a demo file and validates every contact against `catalogue`, and
/// every agent against the catalogue's offices and, when there is one,
/// `routing` (its skills). `file` names it in errors.
pub fn parse(
    file: &str,
    text: &str,
    catalogue: &Catalogue,
    routing: Option<&RoutingConfig>,
) -> Result<DemoData, DemoError> {
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
    if let Some(unknown) = table
        .keys()
        .find(|key| !matches!(key.as_str(), "contacts" | "agents"))
    {
        return Err(DemoError::new(
            file,
            None,
            Some(unknown),
            "unknown top-level key; expected only [[contacts]] and [[agents]] entries",
        ));
    }
    let Some(contacts) = table.get("contacts").and_then(toml::Value::as_array) else {
        return Err(DemoError::new(
            file,
            None,
            Some("contacts"),
            "missing: expected [[contacts]] entries",
        ));
    };
    let agents = match table.get("agents") {
        None => &Vec::new(),
        Some(agents) => agents
            .as_array()
            .ok_or_else(|| DemoError::new(file, None, Some("agents"), "expected [[agents]] entries"))?,
    };
    Ok(DemoData {
        contacts: parse_contacts(file, contacts, catalogue)?,
        agents: parse_agents(file, agents, catalogue, routing)?,
    })
}

/// Names an entry by its id (or subject) once it has a usable one, by its
/// position before.
fn entry_label(entry: &toml::Value, key: &str, kind: &str, table: &str, index: usize) -> String {
    match entry.get(key).and_then(toml::Value::as_str) {
        Some(id) if is_valid_id(id) => format!("{kind} {id}"),
        _ => format!("{table}[{index}]"),
    }
}

/// Deserialises one entry, naming the failing field by its path.
fn deserialize_entry<T: serde::de::DeserializeOwned>(
    file: &str,
    label: &str,
    entry: &toml::Value,
) -> Result<T, DemoError> {
    serde_path_to_error::deserialize(entry.clone()).map_err(|error| {
        let path = error.path().to_string();
        let field = (path != ".").then_some(path);
        // toml appends the key's place on a second line; the path says it.
        let message = error.into_inner().to_string();
        let description = message.lines().next().unwrap_or_default().to_owned();
        DemoError::new(file, Some(label.to_owned()), field.as_deref(), description)
    })
}

fn parse_contacts(
    file: &str,
    entries: &[toml::Value],
    catalogue: &Catalogue,
) -> Result<Vec<SubmitContactRequest>, DemoError> {
    let mut seen = BTreeSet::new();
    let mut requests = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let label = entry_label(entry, "id", "contact", "contacts", index);
        let contact: DemoContact = deserialize_entry(file, &label, entry)?;
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

fn parse_agents(
    file: &str,
    entries: &[toml::Value],
    catalogue: &Catalogue,
    routing: Option<&RoutingConfig>,
) -> Result<Vec<DemoAgent>, DemoError> {
    let mut seen = BTreeSet::new();
    let mut agents = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let label = entry_label(entry, "subject", "agent", "agents", index);
        let raw: RawAgent = deserialize_entry(file, &label, entry)?;
        if !is_valid_id(&raw.subject) {
            return Err(DemoError::new(
                file,
                Some(label),
                Some("subject"),
                format!(
                    "a subject is 1 to {ID_MAX_CHARS} characters of a-z, 0-9 and -, e.g. demo-agent-owen"
                ),
            ));
        }
        if !seen.insert(raw.subject.clone()) {
            return Err(DemoError::new(
                file,
                Some(label),
                Some("subject"),
                "used by an earlier agent: one profile per member of staff",
            ));
        }
        let agent = validate_agent(raw, catalogue, routing).map_err(|problems| DemoError {
            file: file.to_owned(),
            entry: Some(label),
            problems,
        })?;
        agents.push(agent);
    }
    Ok(agents)
}

fn problem(field: impl Into<String>, description: impl Into<String>) -> DemoProblem {
    DemoProblem {
        field: Some(field.into()),
        description: description.into(),
    }
}

/// The rules the routing service applies to a profile (`validate_profile`),
/// checked here so that every mistake is named at start-up, each with its
/// field. Language skills count as known when the configuration's language
/// rule makes them, as that is the skill it asks of agents for residents who
/// need the language.
fn validate_agent(
    raw: RawAgent,
    catalogue: &Catalogue,
    routing: Option<&RoutingConfig>,
) -> Result<DemoAgent, Vec<DemoProblem>> {
    let mut problems = Vec::new();
    if raw.skills.is_empty() {
        problems.push(problem("skills", "at least one skill, e.g. { council-tax = 3 }"));
    }
    let mut skills = BTreeMap::new();
    for (skill, level) in &raw.skills {
        let field = format!("skills.{skill}");
        match u8::try_from(*level) {
            Ok(level) if (MIN_PROFICIENCY..=MAX_PROFICIENCY).contains(&level) => {
                skills.insert(skill.clone(), level);
            }
            _ => problems.push(problem(
                &field,
                format!(
                    "proficiency runs from {MIN_PROFICIENCY} (learning) to {MAX_PROFICIENCY} (expert), not {level}"
                ),
            )),
        }
        if let Some(config) = routing
            && !is_known_skill(skill, config)
        {
            let languages = config
                .needs
                .language
                .as_ref()
                .map(|rule| {
                    format!(
                        ", or {}<tag> for a language, e.g. {}pl",
                        rule.skill_prefix, rule.skill_prefix
                    )
                })
                .unwrap_or_default();
            problems.push(problem(
                &field,
                format!("not a skill the routing configuration knows: one from its [skills]{languages}"),
            ));
        }
    }
    if raw.team.trim().is_empty() {
        problems.push(problem("team", "must not be empty"));
    }
    match raw.office.as_deref() {
        Some("") => problems.push(problem(
            "office",
            "must not be empty; leave it out for an agent at no office",
        )),
        Some(office) if catalogue.office(office).is_none() => {
            problems.push(problem("office", "unknown office: not in offices.toml"));
        }
        _ => {}
    }
    if raw.channels.is_empty() {
        problems.push(problem("channels", "at least one channel, e.g. [\"phone\"]"));
    }
    let mut channels = Vec::with_capacity(raw.channels.len());
    for channel in &raw.channels {
        if channels.contains(channel) {
            problems.push(problem(
                "channels",
                format!("{} is listed twice", channel.as_str()),
            ));
        } else {
            channels.push(*channel);
        }
    }
    if channels.contains(&Channel::FaceToFace) && raw.office.is_none() {
        problems.push(problem(
            "office",
            "required with face_to_face: visits go only to agents at the office the resident walked into",
        ));
    }
    let web_capacity = match u8::try_from(raw.web_capacity) {
        Ok(capacity) => capacity,
        Err(_) => {
            problems.push(problem(
                "web_capacity",
                format!("must be 0 to {}, not {}", u8::MAX, raw.web_capacity),
            ));
            0
        }
    };
    let written = channels
        .iter()
        .any(|channel| matches!(channel, Channel::Web | Channel::Email | Channel::Letter));
    if written && raw.web_capacity == 0 {
        problems.push(problem(
            "web_capacity",
            "at least 1 for an agent who takes web, email or letter contacts",
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(DemoAgent {
        subject: raw.subject,
        profile: StoredProfile {
            skills,
            team: raw.team.trim().to_owned(),
            office: raw.office,
            channels,
            web_capacity,
            // The demo's queues are all in the default partition.
            partition: None,
        },
        simulated: raw.simulated,
    })
}

/// A skill the routing configuration declares, or a language skill made by
/// its language rule (`language-pl` for residents who need Polish).
fn is_known_skill(skill: &str, config: &RoutingConfig) -> bool {
    config.skills.contains_key(skill)
        || config.needs.language.as_ref().is_some_and(|rule| {
            skill
                .strip_prefix(rule.skill_prefix.as_str())
                .is_some_and(is_language_tag)
        })
}

/// A lowercase BCP 47 tag as the routing engine builds language skills from
/// it: a 2 or 3 letter language, then optional subtags (`pt-br`).
fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let language_ok = parts.next().is_some_and(|language| {
        (2..=3).contains(&language.len()) && language.bytes().all(|b| b.is_ascii_lowercase())
    });
    language_ok
        && parts.all(|part| {
            (1..=8).contains(&part.len())
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// The demo data built into the binary.
pub fn embedded(catalogue: &Catalogue, routing: Option<&RoutingConfig>) -> Result<DemoData, DemoError> {
    parse(EMBEDDED_FILE, EMBEDDED, catalogue, routing)
}

/// The demo data from `seeds_dir` (none when it holds no `demo.toml`: a
/// council's own seeds need not ship demo residents), or the built-in data.
/// Agents are checked against `routing` when there is one.
pub fn load(
    seeds_dir: Option<&Path>,
    catalogue: &Catalogue,
    routing: Option<&RoutingConfig>,
) -> anyhow::Result<DemoData> {
    let Some(dir) = seeds_dir else {
        return Ok(embedded(catalogue, routing)?);
    };
    let path = dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(parse(&path.display().to_string(), &text, catalogue, routing)?),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(seeds_dir = %dir.display(), "no demo.toml in the seeds dir; no demo data");
            Ok(DemoData::default())
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

    static ROUTING: LazyLock<RoutingConfig> = LazyLock::new(|| {
        RoutingConfig::embedded().unwrap_or_else(|error| panic!("seeds/routing.toml is invalid: {error}"))
    });

    fn parse_text(text: &str) -> Result<Vec<SubmitContactRequest>, DemoError> {
        parse("demo.toml", text, &CATALOGUE, Some(&ROUTING)).map(|data| data.contacts)
    }

    fn built_in() -> DemoData {
        embedded(&CATALOGUE, Some(&ROUTING)).unwrap_or_else(|error| panic!("{error}"))
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
        let requests = built_in().contacts;
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
        let requests = built_in().contacts;
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
        let requests = built_in().contacts;
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
            error.starts_with(
                "demo.toml: residents: unknown top-level key; expected only [[contacts]] and [[agents]]"
            ),
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
        let none = load(Some(dir.path()), &CATALOGUE, Some(&ROUTING))?;
        assert!(none.contacts.is_empty() && none.agents.is_empty());

        std::fs::write(dir.path().join(FILE_NAME), GOOD)?;
        let loaded = load(Some(dir.path()), &CATALOGUE, Some(&ROUTING))?;
        assert_eq!(loaded.contacts.len(), 2);
        assert!(loaded.agents.is_empty(), "agents are optional");

        std::fs::write(
            dir.path().join(FILE_NAME),
            GOOD.replace("hythe-help-point", "nowhere"),
        )?;
        let error = format!(
            "{:#}",
            load(Some(dir.path()), &CATALOGUE, Some(&ROUTING))
                .err()
                .context("an error")?
        );
        let path = dir.path().join(FILE_NAME);
        assert!(
            error.starts_with(&format!("{}: contact demo-002", path.display())),
            "{error}"
        );
        Ok(())
    }

    const AGENTS: &str = r#"
[[agents]]
subject = "demo-agent-owen"
skills = { customer-services = 3, bsl = 4 }
team = "customer-services"
channels = ["phone", "web"]
web_capacity = 3

[[agents]]
subject = "demo-agent-sam"
skills = { council-tax = 3, hearing-loop = 2 }
team = "reception"
office = "lymington-town-hall"
channels = ["face_to_face", "phone"]

[[agents]]
subject = "demo-agent-kasia"
skills = { waste = 4, language-pl = 5 }
team = "waste"
channels = ["web"]
web_capacity = 2
simulated = false
"#;

    fn agents_of(text: &str) -> Result<Vec<DemoAgent>, DemoError> {
        parse("demo.toml", &format!("{GOOD}{text}"), &CATALOGUE, Some(&ROUTING)).map(|data| data.agents)
    }

    fn agent_error(text: &str) -> String {
        match agents_of(text) {
            Ok(agents) => panic!("expected an error, parsed {} agents", agents.len()),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn an_agent_maps_onto_a_routing_profile() {
        let agents = agents_of(AGENTS).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(agents.len(), 3);
        let owen = &agents[0];
        assert_eq!(owen.subject, "demo-agent-owen");
        assert!(owen.simulated, "simulated unless it says otherwise");
        assert_eq!(
            owen.profile,
            StoredProfile {
                skills: BTreeMap::from([("bsl".to_owned(), 4), ("customer-services".to_owned(), 3)]),
                team: "customer-services".to_owned(),
                office: None,
                channels: vec![Channel::Phone, Channel::Web],
                web_capacity: 3,
                partition: None,
            }
        );
        assert_eq!(agents[1].profile.office.as_deref(), Some("lymington-town-hall"));
        assert!(!agents[2].simulated);
        assert_eq!(agents[2].profile.skills.get("language-pl"), Some(&5));
    }

    #[test]
    fn an_invalid_skill_is_named_by_agent_and_field() {
        let error = agent_error(&AGENTS.replace("bsl = 4", "bsl = 7"));
        assert!(
            error.starts_with(
                "demo.toml: agent demo-agent-owen: skills.bsl: proficiency runs from 1 (learning) to 5 (expert), not 7"
            ),
            "{error}"
        );

        let error = agent_error(&AGENTS.replace("bsl = 4", "bsl = 0"));
        assert!(
            error.contains("agent demo-agent-owen: skills.bsl: proficiency"),
            "{error}"
        );

        let error = agent_error(&AGENTS.replace("bsl = 4", "sign-language = 4"));
        assert!(
            error.starts_with(
                "demo.toml: agent demo-agent-owen: skills.sign-language: not a skill the routing configuration knows"
            ),
            "{error}"
        );

        let error = agent_error(&AGENTS.replace("language-pl", "language-Polish"));
        assert!(
            error.contains("agent demo-agent-kasia: skills.language-Polish: not a skill the routing configuration knows: one from its [skills], or language-<tag>"),
            "{error}"
        );

        let error = agent_error(&AGENTS.replace("bsl = 4", "bsl = \"good\""));
        assert!(
            error.starts_with("demo.toml: agent demo-agent-owen: skills.bsl: invalid type"),
            "{error}"
        );
    }

    #[test]
    fn without_a_routing_configuration_any_skill_name_is_kept() {
        let text = format!("{GOOD}{}", AGENTS.replace("bsl = 4", "sign-language = 4"));
        let data = parse("demo.toml", &text, &CATALOGUE, None).unwrap_or_else(|error| panic!("{error}"));
        assert!(data.agents[0].profile.skills.contains_key("sign-language"));
    }

    #[test]
    fn offices_channels_and_capacity_follow_the_routing_rules() {
        let error = agent_error(&AGENTS.replace("office = \"lymington-town-hall\"\n", ""));
        assert!(
            error.starts_with("demo.toml: agent demo-agent-sam: office: required with face_to_face"),
            "{error}"
        );

        let error = agent_error(&AGENTS.replace("lymington-town-hall", "brockenhurst-library"));
        assert!(
            error.starts_with("demo.toml: agent demo-agent-sam: office: unknown office"),
            "{error}"
        );

        let error = agent_error(&AGENTS.replace("web_capacity = 3\n", ""));
        assert!(
            error.starts_with(
                "demo.toml: agent demo-agent-owen: web_capacity: at least 1 for an agent who takes web"
            ),
            "{error}"
        );

        let error = agent_error(&AGENTS.replace("channels = [\"web\"]", "channels = []"));
        assert!(
            error.starts_with("demo.toml: agent demo-agent-kasia: channels: at least one channel"),
            "{error}"
        );

        let error = agent_error(&AGENTS.replace("[\"face_to_face\", \"phone\"]", "[\"phone\", \"phone\"]"));
        assert!(
            error.starts_with("demo.toml: agent demo-agent-sam: channels: phone is listed twice"),
            "{error}"
        );

        let error = agent_error(&AGENTS.replace("[\"phone\", \"web\"]", "[\"phone\", \"fax\"]"));
        assert!(
            error.starts_with("demo.toml: agent demo-agent-owen: channels[1]: unknown variant `fax`"),
            "{error}"
        );

        let error = agent_error(&AGENTS.replace("team = \"reception\"", "team = \" \""));
        assert!(
            error.starts_with("demo.toml: agent demo-agent-sam: team: must not be empty"),
            "{error}"
        );
    }

    #[test]
    fn every_problem_of_an_agent_is_named_at_once() {
        let text = AGENTS
            .replace("bsl = 4", "bsl = 9")
            .replace("team = \"customer-services\"", "team = \"\"");
        let error = agent_error(&text);
        assert!(
            error.contains("agent demo-agent-owen: skills.bsl: proficiency runs from 1 (learning) to 5 (expert), not 9; team: must not be empty"),
            "{error}"
        );
    }

    #[test]
    fn subjects_are_slugs_unique_in_the_file_and_entries_complete() {
        let error = agent_error(&AGENTS.replace("demo-agent-sam", "demo-agent-owen"));
        assert!(
            error.starts_with("demo.toml: agent demo-agent-owen: subject: used by an earlier agent"),
            "{error}"
        );

        let error = agent_error(&AGENTS.replace("demo-agent-sam", "Sam Smith"));
        assert!(
            error.starts_with("demo.toml: agents[1]: subject: a subject is 1 to 64 characters"),
            "{error}"
        );

        let error = agent_error(&AGENTS.replace("team = \"waste\"\n", ""));
        assert!(
            error.starts_with("demo.toml: agent demo-agent-kasia: missing field `team`"),
            "{error}"
        );

        let error = agent_error(&AGENTS.replace("simulated = false", "simulated = false\nshift = \"early\""));
        assert!(
            error.starts_with("demo.toml: agent demo-agent-kasia: shift: unknown field `shift`"),
            "{error}"
        );

        let error = error_text(&format!("agents = \"everyone\"\n{GOOD}"));
        assert!(
            error.starts_with("demo.toml: agents: expected [[agents]] entries"),
            "{error}"
        );
    }

    #[test]
    fn the_built_in_contact_centre_is_small_fictional_and_complete() {
        let agents = built_in().agents;
        let simulated: Vec<&DemoAgent> = agents.iter().filter(|agent| agent.simulated).collect();
        assert!(
            (8..=12).contains(&simulated.len()),
            "about ten simulated agents, got {}",
            simulated.len()
        );
        assert!(
            simulated
                .iter()
                .all(|agent| agent.subject.starts_with("demo-agent-"))
        );
        let developers: Vec<&DemoAgent> = agents.iter().filter(|agent| !agent.simulated).collect();
        assert_eq!(developers.len(), 1);
        assert_eq!(
            developers[0].subject, "dev-agent",
            "the development agent token's subject"
        );
        for skill in ["bsl", "safeguarding", "language-pl"] {
            assert!(
                simulated
                    .iter()
                    .any(|agent| agent.profile.skills.contains_key(skill)),
                "nobody simulated has {skill}"
            );
        }
        for channel in [Channel::Phone, Channel::Web, Channel::FaceToFace] {
            assert!(
                simulated
                    .iter()
                    .any(|agent| agent.profile.channels.contains(&channel)),
                "nobody simulated takes {channel:?}"
            );
        }
    }

    /// The skills (with minimum proficiency) a contact needs from whoever
    /// takes it, as the routing engine works them out before any overflow
    /// step: the queue's base skills, the resident's needs, and for a visit
    /// the office.
    fn requirements(
        request: &SubmitContactRequest,
        config: &RoutingConfig,
    ) -> (Channel, Vec<(String, u8)>, Option<String>) {
        let channel = match v1::Channel::try_from(request.channel) {
            Ok(v1::Channel::Phone) => Channel::Phone,
            Ok(v1::Channel::Web) => Channel::Web,
            Ok(v1::Channel::FaceToFace) => Channel::FaceToFace,
            Ok(v1::Channel::Email) => Channel::Email,
            _ => Channel::Letter,
        };
        let queue = config
            .queue_for(&request.service, channel)
            .unwrap_or_else(|| panic!("{}: no queue", request.idempotency_key));
        let mut wanted: Vec<(String, u8)> = queue
            .skills
            .iter()
            .map(|requirement| (requirement.skill.clone(), requirement.min_proficiency))
            .collect();
        let needs = request.needs.clone().unwrap_or_default();
        let policy = &config.needs;
        let vulnerable = needs.vulnerable && needs.vulnerability_consent;
        for (flag, rule) in [
            (needs.british_sign_language, &policy.british_sign_language),
            (needs.interpreter, &policy.interpreter),
            (needs.large_print, &policy.large_print),
            (needs.hearing_loop, &policy.hearing_loop),
            (needs.assisted_digital, &policy.assisted_digital),
            (needs.wheelchair_access, &policy.wheelchair_access),
            (vulnerable, &policy.vulnerable),
        ] {
            if let (true, Some(requirement)) = (flag, &rule.requires) {
                wanted.push((requirement.skill.clone(), requirement.min_proficiency));
            }
        }
        if let (true, Some(requirement)) = (vulnerable, &queue.vulnerable_requires) {
            wanted.push((requirement.skill.clone(), requirement.min_proficiency));
        }
        if let Some(rule) = &policy.language {
            let language = needs.language.to_lowercase();
            if !language.is_empty() && !rule.not_required_for.contains(&language) {
                wanted.push((format!("{}{language}", rule.skill_prefix), rule.min_proficiency));
            }
        }
        let office = match &request.origin {
            Some(Origin::FaceToFace(visit)) => Some(visit.office_id.clone()),
            _ => None,
        };
        (channel, wanted, office)
    }

    #[test]
    fn every_built_in_contact_has_a_simulated_agent_who_can_take_it() {
        let data = built_in();
        for request in &data.contacts {
            let (channel, wanted, office) = requirements(request, &ROUTING);
            let able: Vec<&str> = data
                .agents
                .iter()
                .filter(|agent| agent.simulated)
                .filter(|agent| agent.profile.channels.contains(&channel))
                .filter(|agent| office.is_none() || agent.profile.office == office)
                .filter(|agent| {
                    wanted
                        .iter()
                        .all(|(skill, min)| agent.profile.skills.get(skill).is_some_and(|level| level >= min))
                })
                .map(|agent| agent.subject.as_str())
                .collect();
            assert!(
                !able.is_empty(),
                "{}: nobody can take it on {channel:?} (needs {wanted:?} at {office:?})",
                request.idempotency_key
            );
        }
    }
}
