//! The partner directory: organisations agents signpost or refer residents
//! to (Citizens Advice, Shelter, the county's out-of-hours team, …). Data, not
//! code, like the catalogue: `seeds/partners.toml` (compiled in by
//! [`PartnerDirectory::embedded`]) or a council's own file. Loading checks
//! every entry against the service catalogue and names the file, the entry and
//! the key at fault, with the catalogue's own [`CatalogueError`], so one
//! start-up message covers any mistake in `seeds/`.
//!
//! Partners are organisations, not residents: their names, numbers and
//! websites are public and may be quoted in errors.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::catalogue::{Catalogue, ServiceId};
use crate::customer::PhoneNumber;
use crate::error::CatalogueError;
use crate::seed_file::{EntryReader, check_unique, entries, parse_file};

const PARTNERS_FILE: &str = "partners.toml";

/// The repo's directory, compiled in so the binary runs with no files beside it.
const EMBEDDED_PARTNERS: &str = include_str!("../../../seeds/partners.toml");

const SLUG_RULE: &str = "2 to 64 characters of a-z, 0-9 and -";

/// The same rule as catalogue ids, so partner ids, topics and areas are safe
/// in URLs, event payloads and config keys alike.
fn is_slug(input: &str) -> bool {
    (2..=64).contains(&input.len())
        && input
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Id of a partner, e.g. `citizens-advice`: `[a-z0-9-]{2,64}`. Routing config
/// names partners by it, so it is stable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartnerId(String);

impl PartnerId {
    pub fn parse(input: &str) -> Result<Self, String> {
        if is_slug(input) {
            Ok(Self(input.to_owned()))
        } else {
            Err(format!("a partner id must be {SLUG_RULE}"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PartnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PartnerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for PartnerId {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input)
    }
}

impl Serialize for PartnerId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PartnerId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// How a resident reaches a partner. The difference matters for consent and
/// for case handling: a referral moves the resident's personal data to
/// another organisation and leaves the council waiting for an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferralKind {
    /// The resident is given the partner's details and gets in touch themselves.
    Signpost,
    /// With the resident's consent the council passes their details to the
    /// partner, and the partner reports the outcome back.
    Referral,
}

impl ReferralKind {
    pub const ALL: [ReferralKind; 2] = [ReferralKind::Signpost, ReferralKind::Referral];

    pub fn parse(input: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == input)
            .ok_or_else(|| "must be \"signpost\" or \"referral\"".to_owned())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReferralKind::Signpost => "signpost",
            ReferralKind::Referral => "referral",
        }
    }

    /// Whether the council needs the resident's consent to share their
    /// details, and should expect an outcome back.
    pub fn shares_details(self) -> bool {
        self == ReferralKind::Referral
    }
}

impl fmt::Display for ReferralKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One organisation in the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partner {
    pub id: PartnerId,
    pub name: String,
    /// What they help with and how to reach them, for an agent to read out.
    pub description: String,
    /// Topic slugs such as `debt` or `mental-health`; never empty.
    pub helps_with: Vec<String>,
    /// Catalogue services this partner is a natural signpost for; may be
    /// empty for partners offered whatever the service (crisis lines).
    pub services: Vec<ServiceId>,
    pub referral: ReferralKind,
    /// `None` when the partner publishes no dialable number (a short code
    /// such as 111 is given in the description instead).
    pub phone: Option<PhoneNumber>,
    /// Always `https://`.
    pub website: String,
    /// Where the partner works, a slug such as `national` or `hampshire`.
    pub area: String,
}

impl Partner {
    pub fn helps_with(&self, topic: &str) -> bool {
        self.helps_with.iter().any(|t| t == topic)
    }

    pub fn serves(&self, service_id: &str) -> bool {
        self.services.iter().any(|s| s.as_str() == service_id)
    }
}

/// The validated partner directory, in file order. Only the constructors
/// here make one (no `Deserialize`), so it is always valid and every service
/// it names exists in the catalogue it was checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartnerDirectory {
    partners: Vec<Partner>,
}

impl PartnerDirectory {
    /// Parses and validates `partners.toml`; see `seeds/partners.toml` for the
    /// format. Every entry must have exactly the documented keys.
    pub fn from_toml(text: &str, catalogue: &Catalogue) -> Result<PartnerDirectory, CatalogueError> {
        let table = parse_file(PARTNERS_FILE, text)?;
        let partners = entries(PARTNERS_FILE, &table, "partners")?
            .iter()
            .enumerate()
            .map(|(index, entry)| parse_partner(index, entry, catalogue))
            .collect::<Result<Vec<_>, _>>()?;
        check_unique(PARTNERS_FILE, "partners", partners.iter().map(|p| p.id.as_str()))?;
        Ok(PartnerDirectory { partners })
    }

    /// The directory shipped in the repo's `seeds/`, checked against
    /// `catalogue`. Validated on every call (it is small); a test keeps the
    /// shipped file valid against the shipped catalogue.
    pub fn embedded(catalogue: &Catalogue) -> Result<PartnerDirectory, CatalogueError> {
        Self::from_toml(EMBEDDED_PARTNERS, catalogue)
    }

    /// A directory with no partners: an installation whose seeds name none,
    /// where nothing can be signposted or referred.
    pub fn empty() -> PartnerDirectory {
        PartnerDirectory { partners: Vec::new() }
    }

    pub fn is_empty(&self) -> bool {
        self.partners.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Partner> {
        self.partners.iter().find(|partner| partner.id.as_str() == id)
    }

    pub fn partners(&self) -> &[Partner] {
        &self.partners
    }

    /// Partners that are a natural signpost for a service, in file order
    /// (councils list the partner they prefer first).
    pub fn for_service<'a>(&'a self, service_id: &'a str) -> impl Iterator<Item = &'a Partner> + 'a {
        self.partners
            .iter()
            .filter(move |partner| partner.serves(service_id))
    }

    /// Partners that help with a topic such as `debt`, in file order.
    pub fn helping_with<'a>(&'a self, topic: &'a str) -> impl Iterator<Item = &'a Partner> + 'a {
        self.partners
            .iter()
            .filter(move |partner| partner.helps_with(topic))
    }
}

const PARTNER_KEYS: &[&str] = &[
    "id",
    "name",
    "description",
    "helps_with",
    "services",
    "referral",
    "phone",
    "website",
    "area",
];

fn is_slug_or_error(
    entry: &EntryReader<'_>,
    key: &str,
    text: &str,
    what: &str,
) -> Result<(), CatalogueError> {
    if is_slug(text) {
        Ok(())
    } else {
        Err(entry.key_error(key, format!("\"{text}\": {what} must be {SLUG_RULE}")))
    }
}

fn parse_partner(
    index: usize,
    value: &toml::Value,
    catalogue: &Catalogue,
) -> Result<Partner, CatalogueError> {
    let entry = EntryReader::new(PARTNERS_FILE, "partners", index, value, PARTNER_KEYS)?;
    let id = PartnerId::parse(&entry.text("id")?).map_err(|e| entry.key_error("id", e))?;
    let name = entry.text("name")?;
    let description = entry.text("description")?;
    let helps_with = entry.text_list("helps_with", false)?;
    for topic in &helps_with {
        is_slug_or_error(&entry, "helps_with", topic, "a topic")?;
    }
    let services = entry
        .text_list("services", true)?
        .iter()
        .map(|text| {
            let id = ServiceId::parse(text)
                .map_err(|e| entry.key_error("services", format!("\"{text}\": {e}")))?;
            if catalogue.service(id.as_str()).is_none() {
                return Err(entry.key_error(
                    "services",
                    format!("\"{text}\" is not a service in the catalogue"),
                ));
            }
            Ok(id)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let referral_text = entry.text("referral")?;
    let referral = ReferralKind::parse(&referral_text)
        .map_err(|e| entry.key_error("referral", format!("\"{referral_text}\": {e}")))?;
    // A partner's number is published, so echoing it in the error is fine.
    let phone = entry
        .optional_text("phone")?
        .map(|text| {
            PhoneNumber::parse(&text).map_err(|e| entry.key_error("phone", format!("\"{text}\": {e}")))
        })
        .transpose()?;
    let website = entry.text("website")?;
    check_website(&website).map_err(|e| entry.key_error("website", format!("\"{website}\": {e}")))?;
    let area = entry.text("area")?;
    is_slug_or_error(&entry, "area", &area, "an area")?;
    Ok(Partner {
        id,
        name,
        description,
        helps_with,
        services,
        referral,
        phone,
        website,
        area,
    })
}

/// An `https://` address with a plausible host name. Agents read these out
/// and residents type them, so a plain-http or mistyped address is refused
/// here rather than found by a resident. Not a full URL parser: the host
/// must be letters, digits, hyphens and dots (no user, no port), and the
/// rest must be printable with no spaces.
fn check_website(text: &str) -> Result<(), String> {
    let Some(rest) = text.strip_prefix("https://") else {
        return Err("must be an https:// address".to_owned());
    };
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, path) = rest.split_at(host_end);
    let labels_valid = host.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    if !host.contains('.') || !labels_valid {
        return Err("must name a host such as www.example.org (lower case, no port or user)".to_owned());
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_PARTNER: &str = r#"
[[partners]]
id = "shelter"
name = "Shelter emergency helpline"
description = "Urgent housing advice."
helps_with = ["housing", "homelessness"]
services = ["homelessness"]
referral = "signpost"
phone = "0808 800 4444"
website = "https://england.shelter.org.uk/get_help"
area = "national"
"#;

    fn catalogue() -> Catalogue {
        Catalogue::embedded().unwrap_or_else(|e| panic!("seeds/ are invalid: {e}"))
    }

    fn error(text: &str) -> CatalogueError {
        PartnerDirectory::from_toml(text, &catalogue()).expect_err("invalid partners")
    }

    /// Replaces the first `from` in the one-partner file and expects an error
    /// on `key` of the first entry.
    fn assert_key_error(from: &str, to: &str, key: &str) -> CatalogueError {
        let text = ONE_PARTNER.replacen(from, to, 1);
        assert_ne!(text, ONE_PARTNER, "{from} not found");
        let error = error(&text);
        assert_eq!(error.file, "partners.toml", "{to}");
        assert_eq!(error.key.as_deref(), Some(key), "{to}: {error}");
        assert!(
            error
                .entry
                .as_deref()
                .is_some_and(|e| e.starts_with("partners[0]")),
            "{error}"
        );
        error
    }

    #[test]
    fn embedded_directory_is_valid_and_has_the_partners_routing_names() {
        let catalogue = catalogue();
        let directory =
            PartnerDirectory::embedded(&catalogue).unwrap_or_else(|e| panic!("seeds/partners.toml: {e}"));
        assert!(directory.partners().len() >= 14);
        // seeds/routing.toml signposts to these by id.
        for id in [
            "citizens-advice",
            "shelter",
            "emergency-duty-team",
            "county-highways",
        ] {
            assert!(directory.get(id).is_some(), "missing partner {id}");
        }
        let citizens_advice = directory.get("citizens-advice").expect("citizens advice");
        assert_eq!(citizens_advice.name, "Citizens Advice New Forest");
        assert_eq!(citizens_advice.area, "new-forest");
        let shelter = directory.get("shelter").expect("shelter");
        assert_eq!(shelter.referral, ReferralKind::Signpost);
        assert_eq!(
            shelter.phone.as_ref().map(PhoneNumber::as_e164),
            Some("+448088004444")
        );
        assert!(directory.get("no-such-partner").is_none());
        for topic in [
            "debt",
            "housing",
            "food",
            "mental-health",
            "domestic-abuse",
            "benefits",
            "older-people",
            "social-care",
            "highways",
            "fire-safety",
            "health",
            "children",
        ] {
            assert!(
                directory.helping_with(topic).next().is_some(),
                "no partner for {topic}"
            );
        }
        assert!(
            directory
                .partners()
                .iter()
                .any(|p| p.referral == ReferralKind::Referral)
        );
        // Every partner is reachable on the web even where no number is listed.
        assert!(
            directory
                .partners()
                .iter()
                .all(|p| p.website.starts_with("https://"))
        );
    }

    #[test]
    fn partners_are_found_by_service_in_file_order() {
        let directory = PartnerDirectory::embedded(&catalogue()).expect("valid");
        let homelessness: Vec<&str> = directory
            .for_service("homelessness")
            .map(|p| p.id.as_str())
            .collect();
        assert!(homelessness.contains(&"shelter"), "{homelessness:?}");
        assert_eq!(homelessness.first(), Some(&"citizens-advice"));
        let highways: Vec<&str> = directory
            .for_service("highways-potholes")
            .map(|p| p.id.as_str())
            .collect();
        assert_eq!(highways, ["county-highways"]);
        assert_eq!(directory.for_service("no-such-service").count(), 0);
        assert_eq!(directory.for_service("electoral-registration").count(), 0);
    }

    #[test]
    fn minimal_file_loads_and_normalises() {
        let directory = PartnerDirectory::from_toml(ONE_PARTNER, &catalogue()).expect("valid");
        let shelter = &directory.partners()[0];
        assert_eq!(shelter.id.as_str(), "shelter");
        assert_eq!(shelter.helps_with, ["housing", "homelessness"]);
        assert_eq!(shelter.services.len(), 1);
        assert!(shelter.serves("homelessness") && !shelter.serves("council-tax"));
        assert!(shelter.helps_with("housing") && !shelter.helps_with("debt"));
        assert!(!shelter.referral.shares_details());
        assert!(ReferralKind::Referral.shares_details());
        let without_phone = ONE_PARTNER.replacen("phone = \"0808 800 4444\"\n", "", 1);
        let directory = PartnerDirectory::from_toml(&without_phone, &catalogue()).expect("phone is optional");
        assert!(directory.partners()[0].phone.is_none());
        let no_services = ONE_PARTNER.replacen("[\"homelessness\"]", "[]", 1);
        let directory =
            PartnerDirectory::from_toml(&no_services, &catalogue()).expect("services may be empty");
        assert!(directory.partners()[0].services.is_empty());
    }

    #[test]
    fn error_names_file_entry_and_key() {
        let text = format!(
            "{ONE_PARTNER}\n{}",
            ONE_PARTNER.replacen("\"shelter\"", "\"food-bank\"", 1).replacen(
                "[\"homelessness\"]",
                "[\"food-parcels\"]",
                1
            )
        );
        let error = error(&text);
        assert_eq!(error.entry.as_deref(), Some(r#"partners[1] (id "food-bank")"#));
        assert_eq!(error.key.as_deref(), Some("services"));
        assert_eq!(
            error.to_string(),
            r#"partners.toml: partners[1] (id "food-bank"): key `services`: "food-parcels" is not a service in the catalogue"#
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = assert_key_error(
            "area = \"national\"",
            "area = \"national\"\nemail = \"x@y.org\"",
            "email",
        );
        assert!(
            error.problem.starts_with("unknown key; expected id, name"),
            "{error}"
        );
        let error = self::error(&format!("title = \"x\"\n{ONE_PARTNER}"));
        assert_eq!(
            (error.entry.as_deref(), error.key.as_deref()),
            (None, Some("title"))
        );
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let error = error(&format!("{ONE_PARTNER}{ONE_PARTNER}"));
        assert_eq!(error.entry.as_deref(), Some(r#"partners[1] (id "shelter")"#));
        assert_eq!(error.key.as_deref(), Some("id"));
        assert!(error.problem.contains("partners[0]"), "{error}");
    }

    #[test]
    fn ids_topics_and_areas_must_be_slugs() {
        for bad in ["Shelter", "s", "shelter uk", "shelter_uk"] {
            assert_key_error("id = \"shelter\"", &format!("id = \"{bad}\""), "id");
        }
        assert_key_error("id = \"shelter\"\n", "", "id");
        assert_key_error("[\"housing\", \"homelessness\"]", "[\"Housing\"]", "helps_with");
        assert_key_error("[\"housing\", \"homelessness\"]", "[]", "helps_with");
        assert_key_error(
            "[\"housing\", \"homelessness\"]",
            "[\"housing\", \"housing\"]",
            "helps_with",
        );
        assert_key_error("area = \"national\"", "area = \"New Forest\"", "area");
        assert_key_error("area = \"national\"\n", "", "area");
    }

    #[test]
    fn services_must_be_in_the_catalogue() {
        let error = assert_key_error("[\"homelessness\"]", "[\"homeless\"]", "services");
        assert!(
            error.problem.contains("not a service in the catalogue"),
            "{error}"
        );
        assert_key_error("[\"homelessness\"]", "[\"Homelessness\"]", "services");
        assert_key_error(
            "[\"homelessness\"]",
            "[\"homelessness\", \"homelessness\"]",
            "services",
        );
        assert_key_error("[\"homelessness\"]", "\"homelessness\"", "services");
        assert_key_error("services = [\"homelessness\"]\n", "", "services");
    }

    #[test]
    fn referral_kind_must_be_known() {
        for bad in ["\"refer\"", "\"Signpost\"", "\"\"", "1"] {
            assert_key_error(
                "referral = \"signpost\"",
                &format!("referral = {bad}"),
                "referral",
            );
        }
        let error = assert_key_error("referral = \"signpost\"", "referral = \"refer\"", "referral");
        assert!(error.problem.contains("\"signpost\" or \"referral\""), "{error}");
        assert_eq!(ReferralKind::parse("referral"), Ok(ReferralKind::Referral));
        assert_eq!(
            serde_json::to_string(&ReferralKind::Signpost).expect("serialise"),
            "\"signpost\""
        );
    }

    #[test]
    fn phone_must_parse() {
        for bad in ["\"116 123\"", "\"0808 FREE\"", "\"\"", "8088004444"] {
            assert_key_error("phone = \"0808 800 4444\"", &format!("phone = {bad}"), "phone");
        }
        let error = assert_key_error("phone = \"0808 800 4444\"", "phone = \"116 123\"", "phone");
        assert!(
            error.problem.starts_with("\"116 123\": not a valid phone number"),
            "{error}"
        );
    }

    #[test]
    fn website_must_be_https() {
        let from = "website = \"https://england.shelter.org.uk/get_help\"";
        for bad in [
            "http://england.shelter.org.uk",
            "england.shelter.org.uk",
            "HTTPS://england.shelter.org.uk",
            "https://",
            "https://localhost",
            "https://England.Shelter.org.uk",
            "https://user@shelter.org.uk",
            "https://shelter.org.uk:8443/",
            "https://shelter..org.uk",
            "https://-shelter.org.uk",
            "https://shelter.org.uk/get help",
            "ftp://shelter.org.uk",
        ] {
            let error = assert_key_error(from, &format!("website = \"{bad}\""), "website");
            assert!(error.problem.starts_with(&format!("\"{bad}\"")), "{error}");
        }
        assert_key_error(&format!("{from}\n"), "", "website");
        for good in [
            "https://111.nhs.uk",
            "https://www.gov.uk/contact-pension-service",
            "https://example.org/?q=1#top",
        ] {
            assert_eq!(check_website(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn other_entry_problems_are_named() {
        assert_key_error("name = \"Shelter emergency helpline\"", "name = \" \"", "name");
        assert_key_error("description = \"Urgent housing advice.\"\n", "", "description");
        assert_key_error(
            "description = \"Urgent housing advice.\"",
            "description = 3",
            "description",
        );
        let error = error("partners = [1]");
        assert_eq!(error.entry.as_deref(), Some("partners[0]"));
        assert_eq!(error.key, None);
    }

    #[test]
    fn whole_file_problems_are_named() {
        let error = error("[[partners]\nid = ");
        assert_eq!(
            (error.file.as_str(), error.entry.as_deref()),
            ("partners.toml", None)
        );
        assert!(error.problem.starts_with("not valid toml at line 1:"), "{error}");
        assert_eq!(self::error("").key.as_deref(), Some("partners"));
        assert_eq!(self::error("partners = []").key.as_deref(), Some("partners"));
    }

    #[test]
    fn the_empty_directory_has_no_partners() {
        let directory = PartnerDirectory::empty();
        assert!(directory.is_empty());
        assert!(directory.get("shelter").is_none());
        assert!(
            !PartnerDirectory::embedded(&catalogue())
                .expect("valid")
                .is_empty()
        );
    }

    #[test]
    fn partner_ids_parse_and_serialise() {
        assert!(PartnerId::parse("nhs-111").is_ok());
        for bad in ["", "a", "NHS-111", "nhs 111", &"a".repeat(65)] {
            assert!(PartnerId::parse(bad).is_err(), "{bad}");
        }
        let id = PartnerId::parse("citizens-advice").expect("valid");
        assert_eq!(id.to_string(), "citizens-advice");
        let json = serde_json::to_string(&id).expect("serialise");
        assert_eq!(serde_json::from_str::<PartnerId>(&json).expect("deserialise"), id);
        assert!(serde_json::from_str::<PartnerId>("\"Bad Id\"").is_err());
    }
}
