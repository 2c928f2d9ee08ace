//! The council service catalogue and office list: data, not code. Both are
//! TOML files in `seeds/` (compiled in by [`Catalogue::embedded`]) and can be
//! replaced by a council's own. Loading validates every entry and names the
//! file, the entry and the key at fault, so an edit error is found at start-up
//! and fixed in one go rather than surfacing as odd routing later.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::customer::Postcode;
use crate::error::CatalogueError;
use crate::seed_file::{EntryReader, check_unique, entries, parse_file};

/// `[a-z0-9-]{2,64}`: stable in URLs, event payloads and config files.
fn parse_slug(input: &str, what: &str) -> Result<String, String> {
    let valid_length = (2..=64).contains(&input.len());
    let valid_chars = input
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid_length && valid_chars {
        Ok(input.to_owned())
    } else {
        Err(format!("{what} must be 2 to 64 characters of a-z, 0-9 and -"))
    }
}

macro_rules! slug_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(input: &str) -> Result<Self, String> {
                parse_slug(input, $what).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(input: &str) -> Result<Self, Self::Err> {
                Self::parse(input)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

slug_id!(
    /// Catalogue id of a council service, e.g. `council-tax`.
    ServiceId,
    "a service id"
);
slug_id!(
    /// Id of a council office, e.g. `lymington-town-hall`.
    OfficeId,
    "an office id"
);

/// One council service residents can contact the council about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDefinition {
    pub id: ServiceId,
    pub name: String,
    /// One line, shown to agents and on web forms.
    pub description: String,
    /// The channels the service takes contacts on; never empty, no repeats.
    pub channels: Vec<Channel>,
    /// Target for resolving a case, in working days.
    pub case_target_working_days: u32,
}

impl ServiceDefinition {
    pub fn is_offered_on(&self, channel: Channel) -> bool {
        self.channels.contains(&channel)
    }
}

/// A council office with a reception where residents are seen face to face.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Office {
    pub id: OfficeId,
    pub name: String,
    /// Address lines above the postcode, e.g. street and town.
    pub address: Vec<String>,
    pub postcode: Postcode,
    /// The desks (counters, interview rooms) visits are recorded against.
    pub desks: Vec<String>,
}

/// The validated service catalogue and office list, in file order. Only
/// [`Catalogue::from_toml`] makes one (no `Deserialize`), so it is always valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Catalogue {
    services: Vec<ServiceDefinition>,
    offices: Vec<Office>,
}

const SERVICES_FILE: &str = "services.toml";
const OFFICES_FILE: &str = "offices.toml";

/// The repo's seeds, compiled in so the binary runs with no files beside it.
const EMBEDDED_SERVICES: &str = include_str!("../../../seeds/services.toml");
const EMBEDDED_OFFICES: &str = include_str!("../../../seeds/offices.toml");

/// Upper bound for a case target: a year of working days. Anything larger is
/// almost certainly a typo (calendar days, or an extra digit).
const MAX_CASE_TARGET_WORKING_DAYS: i64 = 260;

impl Catalogue {
    /// Parses and validates both files. Every entry must have exactly the
    /// documented keys; ids are unique slugs; see `seeds/*.toml` for the format.
    pub fn from_toml(services_toml: &str, offices_toml: &str) -> Result<Catalogue, CatalogueError> {
        let services_table = parse_file(SERVICES_FILE, services_toml)?;
        let services = entries(SERVICES_FILE, &services_table, "services")?
            .iter()
            .enumerate()
            .map(|(index, entry)| parse_service(index, entry))
            .collect::<Result<Vec<_>, _>>()?;
        check_unique(SERVICES_FILE, "services", services.iter().map(|s| s.id.as_str()))?;

        let offices_table = parse_file(OFFICES_FILE, offices_toml)?;
        let offices = entries(OFFICES_FILE, &offices_table, "offices")?
            .iter()
            .enumerate()
            .map(|(index, entry)| parse_office(index, entry))
            .collect::<Result<Vec<_>, _>>()?;
        check_unique(OFFICES_FILE, "offices", offices.iter().map(|o| o.id.as_str()))?;

        Ok(Catalogue { services, offices })
    }

    /// The catalogue shipped in the repo's `seeds/`. Validated on every call
    /// (it is small); a test keeps the shipped files valid.
    pub fn embedded() -> Result<Catalogue, CatalogueError> {
        Self::from_toml(EMBEDDED_SERVICES, EMBEDDED_OFFICES)
    }

    pub fn service(&self, id: &str) -> Option<&ServiceDefinition> {
        self.services.iter().find(|service| service.id.as_str() == id)
    }

    pub fn office(&self, id: &str) -> Option<&Office> {
        self.offices.iter().find(|office| office.id.as_str() == id)
    }

    pub fn services(&self) -> &[ServiceDefinition] {
        &self.services
    }

    pub fn offices(&self) -> &[Office] {
        &self.offices
    }
}

const SERVICE_KEYS: &[&str] = &[
    "id",
    "name",
    "description",
    "channels",
    "case_target_working_days",
];

fn parse_service(index: usize, value: &toml::Value) -> Result<ServiceDefinition, CatalogueError> {
    let entry = EntryReader::new(SERVICES_FILE, "services", index, value, SERVICE_KEYS)?;
    let id = ServiceId::parse(&entry.text("id")?).map_err(|e| entry.error(Some("id"), e))?;
    let name = entry.text("name")?;
    let description = entry.text("description")?;
    let channels = entry
        .text_list("channels", false)?
        .iter()
        .map(|text| {
            Channel::parse(text).map_err(|e| entry.error(Some("channels"), format!("\"{text}\": {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let days = entry
        .value("case_target_working_days")?
        .as_integer()
        .ok_or_else(|| entry.error(Some("case_target_working_days"), "must be an integer".to_owned()))?;
    if !(1..=MAX_CASE_TARGET_WORKING_DAYS).contains(&days) {
        return Err(entry.error(
            Some("case_target_working_days"),
            format!("must be 1 to {MAX_CASE_TARGET_WORKING_DAYS} working days"),
        ));
    }
    let case_target_working_days = u32::try_from(days)
        .map_err(|_| entry.error(Some("case_target_working_days"), "out of range".to_owned()))?;
    Ok(ServiceDefinition {
        id,
        name,
        description,
        channels,
        case_target_working_days,
    })
}

const OFFICE_KEYS: &[&str] = &["id", "name", "address", "postcode", "desks"];

fn parse_office(index: usize, value: &toml::Value) -> Result<Office, CatalogueError> {
    let entry = EntryReader::new(OFFICES_FILE, "offices", index, value, OFFICE_KEYS)?;
    let id = OfficeId::parse(&entry.text("id")?).map_err(|e| entry.error(Some("id"), e))?;
    let name = entry.text("name")?;
    let address = entry.text_list("address", false)?;
    // An office address is public, so echoing it in the error is fine.
    let postcode_text = entry.text("postcode")?;
    let postcode = Postcode::parse(&postcode_text)
        .map_err(|e| entry.error(Some("postcode"), format!("\"{postcode_text}\": {e}")))?;
    let desks = entry.text_list("desks", false)?;
    Ok(Office {
        id,
        name,
        address,
        postcode,
        desks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_OFFICE: &str = r#"
[[offices]]
id = "appletree-court"
name = "Appletree Court"
address = ["Beaulieu Road", "Lyndhurst"]
postcode = "so43 7pn"
desks = ["reception-1"]
"#;

    const ONE_SERVICE: &str = r#"
[[services]]
id = "council-tax"
name = "Council Tax"
description = "Bills and payments."
channels = ["phone", "web"]
case_target_working_days = 10
"#;

    fn services_error(services: &str) -> CatalogueError {
        Catalogue::from_toml(services, ONE_OFFICE).expect_err("invalid services")
    }

    fn offices_error(offices: &str) -> CatalogueError {
        Catalogue::from_toml(ONE_SERVICE, offices).expect_err("invalid offices")
    }

    #[test]
    fn embedded_catalogue_loads_with_the_core_services_and_offices() {
        let catalogue = Catalogue::embedded().unwrap_or_else(|e| panic!("seeds/ are invalid: {e}"));
        for id in [
            "council-tax",
            "council-tax-support",
            "housing-benefit",
            "business-rates",
            "waste-collections",
            "missed-bins",
            "bulky-waste",
            "fly-tipping",
            "housing-repairs",
            "homelessness",
            "housing-register",
            "planning-applications",
            "building-control",
            "parking-permits",
            "penalty-charge-notices",
            "noise-nuisance",
            "food-safety",
            "pest-control",
            "licensing",
            "registrars",
            "adult-social-care",
            "childrens-services",
            "highways-potholes",
            "street-lighting",
            "electoral-registration",
            "complaints",
        ] {
            assert!(catalogue.service(id).is_some(), "missing service {id}");
        }
        assert!(catalogue.services().len() >= 25);
        let council_tax = catalogue.service("council-tax").expect("council tax");
        assert_eq!(council_tax.name, "Council Tax");
        assert!(Channel::ALL.iter().all(|c| council_tax.is_offered_on(*c)));
        assert!(catalogue.office("lymington-town-hall").is_some());
        let appletree = catalogue.office("appletree-court").expect("appletree court");
        assert_eq!(appletree.postcode.as_str(), "SO43 7PN");
        assert!(!appletree.desks.is_empty());
        assert!((4..=5).contains(&catalogue.offices().len()));
        // Face-to-face contacts need offices and at least one service to take them.
        assert!(
            catalogue
                .services()
                .iter()
                .any(|s| s.is_offered_on(Channel::FaceToFace))
        );
        assert!(catalogue.service("no-such-service").is_none());
        assert!(catalogue.office("no-such-office").is_none());
    }

    #[test]
    fn minimal_files_load_and_normalise() {
        let catalogue = Catalogue::from_toml(ONE_SERVICE, ONE_OFFICE).expect("valid");
        let service = catalogue.service("council-tax").expect("service");
        assert_eq!(service.channels, vec![Channel::Phone, Channel::Web]);
        assert_eq!(service.case_target_working_days, 10);
        assert!(!service.is_offered_on(Channel::Letter));
        assert_eq!(catalogue.offices()[0].postcode.as_str(), "SO43 7PN");
    }

    #[test]
    fn error_names_file_entry_and_key() {
        let error = services_error(&format!(
            "{ONE_SERVICE}\n[[services]]\nid = \"waste\"\nname = \"Waste\"\ndescription = \"Bins.\"\n\
             channels = [\"phone\", \"fax\"]\ncase_target_working_days = 5\n"
        ));
        assert_eq!(error.file, "services.toml");
        assert_eq!(error.entry.as_deref(), Some(r#"services[1] (id "waste")"#));
        assert_eq!(error.key.as_deref(), Some("channels"));
        let message = error.to_string();
        assert!(
            message.starts_with(r#"services.toml: services[1] (id "waste"): key `channels`: "fax""#),
            "{message}"
        );
    }

    #[test]
    fn service_entries_are_checked_key_by_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("id = \"council-tax\"", "id = \"Council Tax\"", "id"),
            ("id = \"council-tax\"", "id = \"x\"", "id"),
            ("id = \"council-tax\"\n", "", "id"),
            ("name = \"Council Tax\"", "name = \"  \"", "name"),
            ("name = \"Council Tax\"", "name = 3", "name"),
            ("description = \"Bills and payments.\"\n", "", "description"),
            ("[\"phone\", \"web\"]", "[]", "channels"),
            ("[\"phone\", \"web\"]", "[\"phone\", \"phone\"]", "channels"),
            ("[\"phone\", \"web\"]", "\"phone\"", "channels"),
            ("[\"phone\", \"web\"]", "[\"Phone\"]", "channels"),
            ("= 10", "= 0", "case_target_working_days"),
            ("= 10", "= 261", "case_target_working_days"),
            ("= 10", "= -1", "case_target_working_days"),
            ("= 10", "= \"10\"", "case_target_working_days"),
            ("= 10", "= 10\ncase_target_days = 3", "case_target_days"),
        ];
        for (from, to, key) in cases {
            let error = services_error(&ONE_SERVICE.replacen(from, to, 1));
            assert_eq!(error.file, "services.toml", "{to}");
            assert_eq!(error.key.as_deref(), Some(*key), "{to}: {error}");
            assert!(
                error
                    .entry
                    .as_deref()
                    .is_some_and(|e| e.starts_with("services[0]")),
                "{error}"
            );
        }
    }

    #[test]
    fn whole_file_problems_are_named() {
        let error = services_error("[[services]\nid = ");
        assert_eq!(
            (error.file.as_str(), error.entry.as_deref()),
            ("services.toml", None)
        );
        assert!(error.problem.starts_with("not valid toml at line 1:"), "{error}");
        let error = services_error(&format!("{ONE_SERVICE}\n[[services]]\nid = \"x"));
        assert!(error.problem.starts_with("not valid toml at line 10:"), "{error}");
        let error = services_error("");
        assert_eq!(error.key.as_deref(), Some("services"));
        let error = services_error("services = []");
        assert_eq!(error.key.as_deref(), Some("services"));
        let error = services_error(&format!("title = \"x\"\n{ONE_SERVICE}"));
        assert_eq!(error.key.as_deref(), Some("title"));
        let error = services_error("services = [1]");
        assert_eq!(error.entry.as_deref(), Some("services[0]"));
        let error = offices_error("[[service]]\nid = \"x\"");
        assert_eq!(error.file, "offices.toml");
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let error = services_error(&format!("{ONE_SERVICE}{ONE_SERVICE}"));
        assert_eq!(error.entry.as_deref(), Some(r#"services[1] (id "council-tax")"#));
        assert_eq!(error.key.as_deref(), Some("id"));
        assert!(error.problem.contains("services[0]"), "{error}");
        let error = offices_error(&format!("{ONE_OFFICE}{ONE_OFFICE}"));
        assert_eq!(error.file, "offices.toml");
        assert_eq!(error.key.as_deref(), Some("id"));
    }

    #[test]
    fn office_entries_are_checked_key_by_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("id = \"appletree-court\"", "id = \"Appletree\"", "id"),
            ("postcode = \"so43 7pn\"", "postcode = \"SO43\"", "postcode"),
            ("postcode = \"so43 7pn\"\n", "", "postcode"),
            ("[\"Beaulieu Road\", \"Lyndhurst\"]", "[]", "address"),
            ("[\"Beaulieu Road\", \"Lyndhurst\"]", "[\"\"]", "address"),
            ("[\"reception-1\"]", "[\"a\", \"a\"]", "desks"),
            ("[\"reception-1\"]", "[\"a\"]\nphone = \"x\"", "phone"),
        ];
        for (from, to, key) in cases {
            let error = offices_error(&ONE_OFFICE.replacen(from, to, 1));
            assert_eq!(error.file, "offices.toml", "{to}");
            assert_eq!(error.key.as_deref(), Some(*key), "{to}: {error}");
            assert!(
                error
                    .entry
                    .as_deref()
                    .is_some_and(|e| e.starts_with("offices[0]")),
                "{error}"
            );
        }
    }

    #[test]
    fn slug_ids_parse_and_serialise() {
        assert!(ServiceId::parse("council-tax").is_ok());
        assert!(ServiceId::parse("a1").is_ok());
        assert!(ServiceId::parse(&"a".repeat(64)).is_ok());
        for bad in [
            "",
            "a",
            "Council-Tax",
            "council tax",
            "council_tax",
            &"a".repeat(65),
        ] {
            assert!(ServiceId::parse(bad).is_err(), "{bad}");
            assert!(OfficeId::parse(bad).is_err(), "{bad}");
        }
        let id = OfficeId::parse("lymington-town-hall").expect("valid");
        assert_eq!(id.to_string(), "lymington-town-hall");
        let json = serde_json::to_string(&id).expect("serialise");
        assert_eq!(serde_json::from_str::<OfficeId>(&json).expect("deserialise"), id);
        assert!(serde_json::from_str::<ServiceId>("\"Bad Id\"").is_err());
    }
}
