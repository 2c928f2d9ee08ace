//! The retention schedule: how long Switchboard keeps each category of
//! personal data before it is removed, as a council publishes it in its
//! records retention schedule. `seeds/retention.toml` holds the shipped one
//! ([`RetentionSchedule::embedded`]); a council's seeds dir may hold its own.
//!
//! Each category is removed by the service that owns the data, in a job it
//! runs every day. What is removed is the personal data; what the council
//! counts (contacts and cases by service, channel and outcome) stays.

use std::fmt;

use crate::error::CatalogueError;
use crate::seed_file::{EntryReader, check_unique, entries, parse_file};

const RETENTION_FILE: &str = "retention.toml";
const EMBEDDED_RETENTION: &str = include_str!("../../../seeds/retention.toml");

/// How often the services apply the schedule.
pub const RETENTION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// Longest period a category may be kept for: fifty years.
pub const MAX_KEEP_DAYS: u32 = 50 * 366;
/// The longest intake may keep its copy of a contact: erasure reaches that
/// copy only through this expiry, and must within a month.
pub const MAX_INTAKE_KEEP_DAYS: u32 = 30;

/// A category of personal data with its own retention period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RetentionCategory {
    /// What residents told the council on a contact (summary, form details,
    /// needs, the caller's number), once its case is no longer open:
    /// counted from the contact.
    ContactContent,
    /// Notes on cases, and the free text of their history and referrals,
    /// once the case is no longer open: counted from its last activity.
    CaseNotes,
    /// Residents with no open case and no contact for the period: their
    /// record is erased as a subject's erasure request would.
    InactiveCustomers,
    /// The log of who read a resident's data: counted from the read.
    ReadLog,
    /// Intake's copy of each contact as received, and its idempotency key:
    /// counted from receipt.
    IntakeContacts,
}

impl RetentionCategory {
    pub const ALL: [RetentionCategory; 5] = [
        RetentionCategory::ContactContent,
        RetentionCategory::CaseNotes,
        RetentionCategory::InactiveCustomers,
        RetentionCategory::ReadLog,
        RetentionCategory::IntakeContacts,
    ];

    /// The id in `retention.toml`, logs and the store's record of runs.
    pub const fn as_str(self) -> &'static str {
        match self {
            RetentionCategory::ContactContent => "contact-content",
            RetentionCategory::CaseNotes => "case-notes",
            RetentionCategory::InactiveCustomers => "inactive-customers",
            RetentionCategory::ReadLog => "read-log",
            RetentionCategory::IntakeContacts => "intake-contacts",
        }
    }

    pub fn parse(input: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|category| category.as_str() == input)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|c| c.as_str()).collect();
                format!("unknown category; expected one of {}", known.join(", "))
            })
    }
}

impl fmt::Display for RetentionCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One category's period, and why the council keeps it that long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRule {
    pub category: RetentionCategory,
    pub keep_days: u32,
    /// The reason, as the council's schedule gives it.
    pub basis: String,
}

/// The validated schedule: one rule for every category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSchedule {
    rules: Vec<RetentionRule>,
}

impl RetentionSchedule {
    /// Parses and validates `retention.toml`: one `[[categories]]` entry
    /// for every category, each with `id`, `keep_days` and `basis`.
    pub fn from_toml(text: &str) -> Result<RetentionSchedule, CatalogueError> {
        let table = parse_file(RETENTION_FILE, text)?;
        let list = entries(RETENTION_FILE, &table, "categories")?;
        let mut rules = Vec::with_capacity(list.len());
        for (index, entry) in list.iter().enumerate() {
            let reader = EntryReader::new(
                RETENTION_FILE,
                "categories",
                index,
                entry,
                &["id", "keep_days", "basis"],
            )?;
            let category = RetentionCategory::parse(&reader.text("id")?)
                .map_err(|problem| reader.key_error("id", problem))?;
            let keep_days = reader
                .value("keep_days")?
                .as_integer()
                .and_then(|days| u32::try_from(days).ok())
                .filter(|days| (1..=MAX_KEEP_DAYS).contains(days))
                .ok_or_else(|| {
                    reader.key_error(
                        "keep_days",
                        format!("must be a whole number of days from 1 to {MAX_KEEP_DAYS}"),
                    )
                })?;
            if category == RetentionCategory::IntakeContacts && keep_days > MAX_INTAKE_KEEP_DAYS {
                return Err(reader.key_error(
                    "keep_days",
                    format!(
                        "at most {MAX_INTAKE_KEEP_DAYS} for intake-contacts: an erasure must reach \
                         intake's copy within the month UK GDPR allows"
                    ),
                ));
            }
            rules.push(RetentionRule {
                category,
                keep_days,
                basis: reader.text("basis")?,
            });
        }
        check_unique(
            RETENTION_FILE,
            "categories",
            rules.iter().map(|rule| rule.category.as_str()),
        )?;
        if let Some(missing) = RetentionCategory::ALL
            .into_iter()
            .find(|category| !rules.iter().any(|rule| rule.category == *category))
        {
            return Err(CatalogueError {
                file: RETENTION_FILE.to_owned(),
                entry: None,
                key: Some("categories".to_owned()),
                problem: format!("no entry for \"{missing}\": every category needs a period"),
            });
        }
        rules.sort_by_key(|rule| rule.category);
        Ok(RetentionSchedule { rules })
    }

    /// The schedule shipped in the repo's `seeds/`.
    pub fn embedded() -> Result<RetentionSchedule, CatalogueError> {
        Self::from_toml(EMBEDDED_RETENTION)
    }

    pub fn rules(&self) -> &[RetentionRule] {
        &self.rules
    }

    /// How long `category` is kept.
    pub fn keep_days(&self, category: RetentionCategory) -> u32 {
        self.rules
            .iter()
            .find(|rule| rule.category == category)
            .map_or(MAX_KEEP_DAYS, |rule| rule.keep_days)
    }

    /// The moment before which data of `category` is due for removal, as at `now`.
    pub fn cutoff(
        &self,
        category: RetentionCategory,
        now: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono::Utc> {
        now - chrono::Duration::days(i64::from(self.keep_days(category)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_entries(entries: &[(&str, &str)]) -> String {
        entries
            .iter()
            .map(|(id, days)| {
                format!("[[categories]]\nid = \"{id}\"\nkeep_days = {days}\nbasis = \"test\"\n")
            })
            .collect()
    }

    #[test]
    fn the_shipped_schedule_covers_every_category() {
        let schedule = RetentionSchedule::embedded().expect("seeds/retention.toml is valid");
        for category in RetentionCategory::ALL {
            assert!(schedule.keep_days(category) < MAX_KEEP_DAYS, "{category}");
        }
        assert_eq!(schedule.rules().len(), RetentionCategory::ALL.len());
    }

    #[test]
    fn mistakes_are_named_by_entry_and_key() {
        let all: Vec<(&str, &str)> = RetentionCategory::ALL
            .iter()
            .map(|c| (c.as_str(), "30"))
            .collect();
        assert!(RetentionSchedule::from_toml(&with_entries(&all)).is_ok());

        let mut missing = all.clone();
        missing.pop();
        let error = RetentionSchedule::from_toml(&with_entries(&missing)).expect_err("missing category");
        assert!(error.to_string().contains("intake-contacts"), "{error}");

        let mut zero = all.clone();
        zero[1].1 = "0";
        let error = RetentionSchedule::from_toml(&with_entries(&zero)).expect_err("zero days");
        let message = error.to_string();
        assert!(
            message.contains("categories[1]") && message.contains("keep_days"),
            "{message}"
        );

        let mut intake_too_long = all.clone();
        let intake = intake_too_long
            .iter()
            .position(|(id, _)| *id == "intake-contacts")
            .expect("intake-contacts listed");
        intake_too_long[intake].1 = "31";
        let error =
            RetentionSchedule::from_toml(&with_entries(&intake_too_long)).expect_err("intake 31 days");
        let message = error.to_string();
        assert!(
            message.contains(&format!("categories[{intake}]")) && message.contains("at most 30"),
            "{message}"
        );

        let mut unknown = all.clone();
        unknown[0].0 = "everything";
        let error = RetentionSchedule::from_toml(&with_entries(&unknown)).expect_err("unknown id");
        assert!(error.to_string().contains("unknown category"), "{error}");

        let mut twice = all;
        twice.push(("read-log", "10"));
        let error = RetentionSchedule::from_toml(&with_entries(&twice)).expect_err("duplicate");
        assert!(error.to_string().contains("duplicate id"), "{error}");
    }
}
