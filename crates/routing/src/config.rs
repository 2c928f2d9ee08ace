//! The routing configuration: queues, skills, opening hours, bank holidays,
//! overflow steps and what happens to contacts nobody can take. Data, not
//! code: a council edits `seeds/routing.toml` (or its own copy) and
//! [`RoutingConfig::parse`] checks every entry at load, naming the key at
//! fault (e.g. `queues.council-tax-phone.overflow[1].after_seconds: must be
//! greater than the previous step`), so a mistake stops start-up instead of
//! surfacing later as odd routing.
//!
//! Parsing is two passes: serde reads the TOML into `Raw*` structs (unknown
//! keys are refused, and `serde_path_to_error` names the path of any type
//! error), then `validate` checks the meaning (ranges, references between
//! queues, partners and skills, step order) and builds the typed
//! [`RoutingConfig`]. Only `parse` makes a `RoutingConfig`, so one in hand is
//! always valid.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;
use switchboard_domain::{CalendarTable, Catalogue, Channel, ServiceId};

use crate::calendar::{Calendar, OpenRanges, Schedule, parse_ranges};
use crate::error::ConfigError;

/// The seeds shipped in the repository, compiled in for demos and tests.
const EMBEDDED: &str = include_str!("../../../seeds/routing.toml");

/// Skill proficiency runs from 1 (learning) to 5 (expert).
pub const MIN_PROFICIENCY: u8 = 1;
pub const MAX_PROFICIENCY: u8 = 5;

/// A queue id, a slug such as `council-tax-phone`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, Deserialize)]
#[serde(transparent)]
pub struct QueueId(String);

impl QueueId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for QueueId {
    fn from(id: &str) -> Self {
        QueueId(id.to_owned())
    }
}

/// A skill an agent must hold, at least at `min_proficiency`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillRequirement {
    pub skill: String,
    pub min_proficiency: u8,
}

/// The answer target of a queue, e.g. 80% within 60 seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceLevel {
    pub answered_percent: u8,
    pub target: ServiceLevelTarget,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceLevelTarget {
    /// Live channels: answered within this many seconds of arriving.
    Seconds(u32),
    /// Written channels: picked up within this many working days.
    WorkingDays(u32),
}

/// What happens to a contact a queue cannot keep: out of hours, or when the
/// queue is full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// Play or show a message (the id of a recording or page) and end.
    Message { message: String },
    /// Refer the resident to a partner organisation and end.
    Signpost { partner: String },
    /// Route to another queue (e.g. an out-of-hours emergency line).
    Queue { queue: QueueId },
    /// Book a callback: the contact moves to a callback queue.
    Callback { queue: QueueId },
}

/// Offering a callback instead of waiting, when the estimated wait is long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackPolicy {
    pub offer_when_wait_exceeds_seconds: u32,
    pub queue: QueueId,
}

/// One overflow step: after `after_seconds` in the queue, the requirement
/// widens or the contact moves on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverflowStep {
    pub after_seconds: u32,
    pub action: StepAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepAction {
    /// Widen who may take the contact: replace the skills, lower the minimum
    /// proficiency of every skill, or both (the skills first).
    Relax {
        skills: Option<Vec<SkillRequirement>>,
        min_proficiency: Option<u8>,
    },
    /// Move the contact to another queue; always the last step.
    MoveTo(QueueId),
}

/// The partition of a queue that names none.
pub const DEFAULT_PARTITION: &str = "default";

/// The longest partition name: it becomes part of a queue name.
pub const MAX_PARTITION_LEN: usize = 40;

/// One queue: where contacts for some services on one channel wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub id: QueueId,
    pub name: String,
    /// The routing partition that routes this queue's contacts: each
    /// partition is routed by one process at a time, with its own agents. A
    /// contact never leaves its partition, so redirects and overflow stay in
    /// it. [`DEFAULT_PARTITION`] unless the file names another.
    pub partition: String,
    /// Services whose contacts on `channel` come here. Empty for a queue
    /// reached only by redirects and transfers (callbacks, out-of-hours lines).
    pub services: Vec<ServiceId>,
    pub channel: Channel,
    /// The base requirement; the first skill is the queue's primary skill,
    /// whose proficiency ranks agents who all qualify.
    pub skills: Vec<SkillRequirement>,
    /// Higher is served first; contacts gain one point per
    /// `ageing_seconds_per_point` waited.
    pub priority: i64,
    pub ageing_seconds_per_point: Option<u32>,
    /// Name of an opening-hours schedule.
    pub hours: String,
    pub service_level: ServiceLevel,
    pub max_waiting: Option<u32>,
    pub when_full: Option<Redirect>,
    pub callback: Option<CallbackPolicy>,
    pub out_of_hours: Redirect,
    /// Seeds the average handle time behind estimated waits.
    pub expected_handle_seconds: u32,
    pub offer_timeout_seconds: u32,
    /// Extra skill a contact flagged vulnerable needs in this queue.
    pub vulnerable_requires: Option<SkillRequirement>,
    pub overflow: Vec<OverflowStep>,
}

/// How one resident need shapes routing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NeedRule {
    pub requires: Option<SkillRequirement>,
    pub priority_boost: i64,
}

/// Languages: a resident's language `xx` requires the skill
/// `<skill_prefix>xx`, except for the languages every agent speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguageRule {
    pub skill_prefix: String,
    pub min_proficiency: u8,
    pub not_required_for: BTreeSet<String>,
}

/// How residents' needs shape routing. Needs are never relaxed by overflow:
/// a BSL user is only ever offered to a BSL agent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NeedsPolicy {
    pub language: Option<LanguageRule>,
    pub british_sign_language: NeedRule,
    pub interpreter: NeedRule,
    pub large_print: NeedRule,
    pub hearing_loop: NeedRule,
    pub assisted_digital: NeedRule,
    pub wheelchair_access: NeedRule,
    pub vulnerable: NeedRule,
}

/// Engine-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSettings {
    /// How long a contact transferred to a named agent waits for that agent
    /// before going back to the queue it came from.
    pub named_agent_wait_seconds: u32,
}

/// A partner organisation residents can be signposted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partner {
    pub name: String,
}

/// The validated routing configuration. Only [`RoutingConfig::parse`] makes
/// one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingConfig {
    pub engine: EngineSettings,
    pub calendar: Calendar,
    /// Declared skills and what each covers; queues may only name these (plus
    /// language skills made from the language rule).
    pub skills: BTreeMap<String, String>,
    pub partners: BTreeMap<String, Partner>,
    pub needs: NeedsPolicy,
    /// Sorted by id.
    pub queues: Vec<QueueConfig>,
    /// The queue for contacts on a channel whose service has no queue of its own.
    pub fallback: BTreeMap<Channel, QueueId>,
}

impl RoutingConfig {
    /// Parses and validates a routing config, naming the key of the first
    /// mistake found.
    pub fn parse(text: &str) -> Result<RoutingConfig, ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .and_then(|span| text.get(..span.start))
                .map(|before| before.matches('\n').count() + 1);
            ConfigError::new(
                line.map(|line| format!("line {line}"))
                    .unwrap_or_else(|| "(file)".to_owned()),
                format!("not valid toml: {}", e.message().trim_end()),
            )
        })?;
        let raw: RawConfig = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let key = e.path().to_string();
            // The message alone: toml appends the path, which is the key already.
            let message = e.into_inner().to_string();
            let problem = message.lines().next().unwrap_or_default().trim_end().to_owned();
            ConfigError::new(key, problem)
        })?;
        validate(raw)
    }

    /// The config in the repository's `seeds/routing.toml`.
    pub fn embedded() -> Result<RoutingConfig, ConfigError> {
        Self::parse(EMBEDDED)
    }

    /// The text of the built-in `seeds/routing.toml`.
    pub fn embedded_toml() -> &'static str {
        EMBEDDED
    }

    pub fn queue(&self, id: &str) -> Option<&QueueConfig> {
        self.queues
            .binary_search_by(|queue| queue.id.as_str().cmp(id))
            .ok()
            .and_then(|index| self.queues.get(index))
    }

    /// Every partition some queue is in.
    pub fn partitions(&self) -> BTreeSet<&str> {
        self.queues.iter().map(|queue| queue.partition.as_str()).collect()
    }

    /// The partition that routes a service's contacts on a channel; `None`
    /// when no queue takes them.
    pub fn partition_for(&self, service: &str, channel: Channel) -> Option<&str> {
        self.queue_for(service, channel)
            .map(|queue| queue.partition.as_str())
    }

    /// The queue for a service on a channel, or the channel's fallback queue.
    pub fn queue_for(&self, service: &str, channel: Channel) -> Option<&QueueConfig> {
        self.queues
            .iter()
            .find(|queue| queue.channel == channel && queue.services.iter().any(|s| s.as_str() == service))
            .or_else(|| self.fallback.get(&channel).and_then(|id| self.queue(id.as_str())))
    }

    /// Checks the config against the service catalogue: every service a queue
    /// names exists and is offered on that queue's channel.
    pub fn check_catalogue(&self, catalogue: &Catalogue) -> Result<(), ConfigError> {
        for queue in &self.queues {
            for (index, service) in queue.services.iter().enumerate() {
                let key = format!("queues.{}.services[{index}]", queue.id);
                let definition = catalogue
                    .service(service.as_str())
                    .ok_or_else(|| ConfigError::new(&key, format!("`{service}` is not in the catalogue")))?;
                if !definition.is_offered_on(queue.channel) {
                    return Err(ConfigError::new(
                        key,
                        format!("`{service}` is not offered on {}", queue.channel),
                    ));
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The file as written.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    engine: RawEngine,
    calendar: CalendarTable,
    skills: BTreeMap<String, String>,
    #[serde(default)]
    partners: BTreeMap<String, RawPartner>,
    #[serde(default)]
    needs: RawNeeds,
    hours: BTreeMap<String, RawHours>,
    queues: BTreeMap<String, RawQueue>,
    #[serde(default)]
    fallback: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    named_agent_wait_seconds: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartner {
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNeeds {
    language: Option<RawLanguageRule>,
    british_sign_language: Option<RawNeedRule>,
    interpreter: Option<RawNeedRule>,
    large_print: Option<RawNeedRule>,
    hearing_loop: Option<RawNeedRule>,
    assisted_digital: Option<RawNeedRule>,
    wheelchair_access: Option<RawNeedRule>,
    vulnerable: Option<RawNeedRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLanguageRule {
    skill_prefix: String,
    min_proficiency: u8,
    #[serde(default)]
    not_required_for: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNeedRule {
    skill: Option<String>,
    min_proficiency: Option<u8>,
    #[serde(default)]
    priority_boost: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHours {
    weekdays: Option<String>,
    every_day: Option<String>,
    monday: Option<String>,
    tuesday: Option<String>,
    wednesday: Option<String>,
    thursday: Option<String>,
    friday: Option<String>,
    saturday: Option<String>,
    sunday: Option<String>,
    bank_holidays: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    name: String,
    partition: Option<String>,
    services: Vec<String>,
    channel: String,
    skills: Vec<SkillRequirement>,
    priority: i64,
    ageing_seconds_per_point: Option<u32>,
    hours: String,
    sla: RawSla,
    max_waiting: Option<u32>,
    when_full: Option<RawRedirect>,
    callback: Option<RawCallback>,
    out_of_hours: RawRedirect,
    expected_handle_seconds: u32,
    offer_timeout_seconds: u32,
    vulnerable_requires: Option<SkillRequirement>,
    #[serde(default)]
    overflow: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSla {
    answered_percent: u8,
    within_seconds: Option<u32>,
    within_working_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedirect {
    action: String,
    message: Option<String>,
    partner: Option<String>,
    queue: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCallback {
    offer_when_wait_exceeds_seconds: u32,
    queue: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    after_seconds: u32,
    min_proficiency: Option<u8>,
    skills: Option<Vec<SkillRequirement>>,
    move_to: Option<String>,
}

// ---------------------------------------------------------------------------
// Validation.

/// Priorities outside this range are almost certainly typos.
const MAX_PRIORITY: i64 = 100;
/// An offer nobody answers for longer than this is not an offer.
const OFFER_TIMEOUT_RANGE: std::ops::RangeInclusive<u32> = 5..=600;

fn is_slug(text: &str) -> bool {
    (2..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn check_slug(key: &str, text: &str) -> Result<(), ConfigError> {
    if is_slug(text) {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            "must be 2 to 64 characters of a-z, 0-9 and -",
        ))
    }
}

fn check_proficiency(key: &str, value: u8) -> Result<(), ConfigError> {
    if (MIN_PROFICIENCY..=MAX_PROFICIENCY).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!("must be from {MIN_PROFICIENCY} to {MAX_PROFICIENCY}, not {value}"),
        ))
    }
}

fn check_skill_list(
    key: &str,
    skills: &[SkillRequirement],
    declared: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    if skills.is_empty() {
        return Err(ConfigError::new(key, "must name at least one skill"));
    }
    let mut seen = BTreeSet::new();
    for (index, requirement) in skills.iter().enumerate() {
        check_skill(&format!("{key}[{index}]"), requirement, declared)?;
        if !seen.insert(requirement.skill.as_str()) {
            return Err(ConfigError::new(
                format!("{key}[{index}].skill"),
                format!("`{}` is listed twice", requirement.skill),
            ));
        }
    }
    Ok(())
}

fn check_skill(
    key: &str,
    requirement: &SkillRequirement,
    declared: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    if !declared.contains_key(&requirement.skill) {
        return Err(ConfigError::new(
            format!("{key}.skill"),
            format!("`{}` is not declared in [skills]", requirement.skill),
        ));
    }
    check_proficiency(&format!("{key}.min_proficiency"), requirement.min_proficiency)
}

fn validate(raw: RawConfig) -> Result<RoutingConfig, ConfigError> {
    if raw.engine.named_agent_wait_seconds == 0 {
        return Err(ConfigError::new(
            "engine.named_agent_wait_seconds",
            "must be at least 1",
        ));
    }
    let engine = EngineSettings {
        named_agent_wait_seconds: raw.engine.named_agent_wait_seconds,
    };

    for name in raw.skills.keys() {
        check_slug(&format!("skills.{name}"), name)?;
    }
    let mut partners = BTreeMap::new();
    for (id, partner) in raw.partners {
        check_slug(&format!("partners.{id}"), &id)?;
        if partner.name.trim().is_empty() {
            return Err(ConfigError::new(
                format!("partners.{id}.name"),
                "must not be empty",
            ));
        }
        partners.insert(id, Partner { name: partner.name });
    }

    let calendar = validate_calendar(raw.calendar, raw.hours)?;
    let needs = validate_needs(raw.needs, &raw.skills)?;

    let queue_ids: BTreeSet<&str> = raw.queues.keys().map(String::as_str).collect();
    let channel_of: BTreeMap<&str, Channel> = raw
        .queues
        .iter()
        .filter_map(|(id, queue)| Channel::parse(&queue.channel).ok().map(|c| (id.as_str(), c)))
        .collect();
    let context = QueueContext {
        skills: &raw.skills,
        partners: &partners,
        calendar: &calendar,
        queue_ids: &queue_ids,
    };
    let mut queues = Vec::with_capacity(raw.queues.len());
    for (id, queue) in &raw.queues {
        queues.push(validate_queue(id, queue, &context)?);
    }
    // Steps may only move a contact to a queue on the same channel, and a
    // callback queue must be a phone queue: the contact keeps its channel.
    for queue in &queues {
        for (index, step) in queue.overflow.iter().enumerate() {
            if let StepAction::MoveTo(target) = &step.action
                && channel_of.get(target.as_str()) != Some(&queue.channel)
            {
                return Err(ConfigError::new(
                    format!("queues.{}.overflow[{index}].move_to", queue.id),
                    format!("`{target}` takes another channel than {}", queue.channel),
                ));
            }
        }
    }
    check_no_cycles(&queues)?;
    check_partitions(&queues)?;

    let mut taken: BTreeMap<(String, Channel), &QueueId> = BTreeMap::new();
    for queue in &queues {
        for (index, service) in queue.services.iter().enumerate() {
            if let Some(other) = taken.insert((service.as_str().to_owned(), queue.channel), &queue.id) {
                return Err(ConfigError::new(
                    format!("queues.{}.services[{index}]", queue.id),
                    format!("`{service}` on {} is already routed to `{other}`", queue.channel),
                ));
            }
        }
    }

    let mut fallback = BTreeMap::new();
    for (channel_name, queue_id) in raw.fallback {
        let key = format!("fallback.{channel_name}");
        let channel = Channel::parse(&channel_name).map_err(|problem| ConfigError::new(&key, problem))?;
        let target = channel_of
            .get(queue_id.as_str())
            .ok_or_else(|| ConfigError::new(&key, format!("`{queue_id}` is not a queue")))?;
        if *target != channel {
            return Err(ConfigError::new(
                key,
                format!("`{queue_id}` does not take {channel}"),
            ));
        }
        fallback.insert(channel, QueueId(queue_id));
    }

    Ok(RoutingConfig {
        engine,
        calendar,
        skills: raw.skills,
        partners,
        needs,
        queues,
        fallback,
    })
}

fn validate_calendar(raw: CalendarTable, hours: BTreeMap<String, RawHours>) -> Result<Calendar, ConfigError> {
    let working = raw.validate().map_err(|error| {
        ConfigError::new(error.key.unwrap_or_else(|| "calendar".to_owned()), error.problem)
    })?;
    let mut schedules = BTreeMap::new();
    for (name, raw_hours) in hours {
        let key = format!("hours.{name}");
        check_slug(&key, &name)?;
        schedules.insert(name, validate_hours(&key, raw_hours)?);
    }
    Ok(Calendar::new(working, schedules))
}

fn validate_hours(key: &str, raw: RawHours) -> Result<Schedule, ConfigError> {
    let parse = |field: &str, text: &Option<String>| -> Result<Option<OpenRanges>, ConfigError> {
        text.as_deref()
            .map(|text| {
                parse_ranges(text).map_err(|problem| ConfigError::new(format!("{key}.{field}"), problem))
            })
            .transpose()
    };
    let every_day = parse("every_day", &raw.every_day)?;
    let weekdays = parse("weekdays", &raw.weekdays)?.or_else(|| every_day.clone());
    let weekend = every_day.clone();
    let days = [
        parse("monday", &raw.monday)?.or_else(|| weekdays.clone()),
        parse("tuesday", &raw.tuesday)?.or_else(|| weekdays.clone()),
        parse("wednesday", &raw.wednesday)?.or_else(|| weekdays.clone()),
        parse("thursday", &raw.thursday)?.or_else(|| weekdays.clone()),
        parse("friday", &raw.friday)?.or_else(|| weekdays.clone()),
        parse("saturday", &raw.saturday)?.or_else(|| weekend.clone()),
        parse("sunday", &raw.sunday)?.or_else(|| weekend.clone()),
    ];
    if days.iter().all(|day| day.as_ref().is_none_or(Vec::is_empty)) {
        return Err(ConfigError::new(
            key,
            "is never open: give weekdays, every_day or a day",
        ));
    }
    let bank_holidays = parse("bank_holidays", &raw.bank_holidays)?.ok_or_else(|| {
        ConfigError::new(
            format!("{key}.bank_holidays"),
            "is required: `closed` or opening hours (bank holidays are never assumed)",
        )
    })?;
    Ok(Schedule {
        days: days.map(Option::unwrap_or_default),
        bank_holidays,
    })
}

fn validate_needs(raw: RawNeeds, skills: &BTreeMap<String, String>) -> Result<NeedsPolicy, ConfigError> {
    let rule = |name: &str, raw: Option<RawNeedRule>| -> Result<NeedRule, ConfigError> {
        let Some(raw) = raw else {
            return Ok(NeedRule::default());
        };
        let key = format!("needs.{name}");
        let requires = match (raw.skill, raw.min_proficiency) {
            (Some(skill), Some(min_proficiency)) => {
                let requirement = SkillRequirement {
                    skill,
                    min_proficiency,
                };
                check_skill(&key, &requirement, skills)?;
                Some(requirement)
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new(
                    format!("{key}.min_proficiency"),
                    "is required with `skill`",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    format!("{key}.skill"),
                    "is required with `min_proficiency`",
                ));
            }
        };
        if !(0..=MAX_PRIORITY).contains(&raw.priority_boost) {
            return Err(ConfigError::new(
                format!("{key}.priority_boost"),
                format!("must be from 0 to {MAX_PRIORITY}"),
            ));
        }
        if requires.is_none() && raw.priority_boost == 0 {
            return Err(ConfigError::new(
                key,
                "does nothing: give a skill or a priority_boost",
            ));
        }
        Ok(NeedRule {
            requires,
            priority_boost: raw.priority_boost,
        })
    };
    let language = match raw.language {
        None => None,
        Some(language) => {
            if language.skill_prefix.is_empty() || !is_slug(&format!("{}xx", language.skill_prefix)) {
                return Err(ConfigError::new(
                    "needs.language.skill_prefix",
                    "must be a slug prefix such as `language-`",
                ));
            }
            check_proficiency("needs.language.min_proficiency", language.min_proficiency)?;
            Some(LanguageRule {
                skill_prefix: language.skill_prefix,
                min_proficiency: language.min_proficiency,
                not_required_for: language
                    .not_required_for
                    .into_iter()
                    .map(|l| l.to_lowercase())
                    .collect(),
            })
        }
    };
    Ok(NeedsPolicy {
        language,
        british_sign_language: rule("british_sign_language", raw.british_sign_language)?,
        interpreter: rule("interpreter", raw.interpreter)?,
        large_print: rule("large_print", raw.large_print)?,
        hearing_loop: rule("hearing_loop", raw.hearing_loop)?,
        assisted_digital: rule("assisted_digital", raw.assisted_digital)?,
        wheelchair_access: rule("wheelchair_access", raw.wheelchair_access)?,
        vulnerable: rule("vulnerable", raw.vulnerable)?,
    })
}

struct QueueContext<'a> {
    skills: &'a BTreeMap<String, String>,
    partners: &'a BTreeMap<String, Partner>,
    calendar: &'a Calendar,
    queue_ids: &'a BTreeSet<&'a str>,
}

impl QueueContext<'_> {
    fn queue_ref(&self, key: &str, id: &str, from: &str) -> Result<QueueId, ConfigError> {
        if id == from {
            return Err(ConfigError::new(key, "must name another queue, not this one"));
        }
        if self.queue_ids.contains(id) {
            Ok(QueueId(id.to_owned()))
        } else {
            Err(ConfigError::new(key, format!("`{id}` is not a queue")))
        }
    }

    fn redirect(&self, key: &str, raw: &RawRedirect, from: &str) -> Result<Redirect, ConfigError> {
        let expect_only = |field: &str| -> Result<(), ConfigError> {
            let extra = [
                ("message", raw.message.is_some()),
                ("partner", raw.partner.is_some()),
                ("queue", raw.queue.is_some()),
            ]
            .into_iter()
            .find(|(name, present)| *present && *name != field);
            match extra {
                Some((name, _)) => Err(ConfigError::new(
                    format!("{key}.{name}"),
                    format!("does not apply to action `{}`", raw.action),
                )),
                None => Ok(()),
            }
        };
        let required = |field: &str, value: &Option<String>| -> Result<String, ConfigError> {
            value
                .clone()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| ConfigError::new(format!("{key}.{field}"), "is required"))
        };
        match raw.action.as_str() {
            "message" => {
                expect_only("message")?;
                Ok(Redirect::Message {
                    message: required("message", &raw.message)?,
                })
            }
            "signpost" => {
                expect_only("partner")?;
                let partner = required("partner", &raw.partner)?;
                if !self.partners.contains_key(&partner) {
                    return Err(ConfigError::new(
                        format!("{key}.partner"),
                        format!("`{partner}` is not in [partners]"),
                    ));
                }
                Ok(Redirect::Signpost { partner })
            }
            "queue" | "callback" => {
                expect_only("queue")?;
                let queue = self.queue_ref(&format!("{key}.queue"), &required("queue", &raw.queue)?, from)?;
                Ok(if raw.action == "queue" {
                    Redirect::Queue { queue }
                } else {
                    Redirect::Callback { queue }
                })
            }
            other => Err(ConfigError::new(
                format!("{key}.action"),
                format!("`{other}` is not one of message, signpost, queue, callback"),
            )),
        }
    }
}

fn validate_queue(id: &str, raw: &RawQueue, context: &QueueContext<'_>) -> Result<QueueConfig, ConfigError> {
    let key = format!("queues.{id}");
    check_slug(&key, id)?;
    if raw.name.trim().is_empty() {
        return Err(ConfigError::new(format!("{key}.name"), "must not be empty"));
    }
    let services = raw
        .services
        .iter()
        .enumerate()
        .map(|(index, service)| {
            ServiceId::parse(service)
                .map_err(|problem| ConfigError::new(format!("{key}.services[{index}]"), problem))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let channel = Channel::parse(&raw.channel)
        .map_err(|problem| ConfigError::new(format!("{key}.channel"), problem))?;
    check_skill_list(&format!("{key}.skills"), &raw.skills, context.skills)?;
    if !(0..=MAX_PRIORITY).contains(&raw.priority) {
        return Err(ConfigError::new(
            format!("{key}.priority"),
            format!("must be from 0 to {MAX_PRIORITY}"),
        ));
    }
    if raw.ageing_seconds_per_point == Some(0) {
        return Err(ConfigError::new(
            format!("{key}.ageing_seconds_per_point"),
            "must be at least 1 (leave it out for no ageing)",
        ));
    }
    if context.calendar.schedule(&raw.hours).is_none() {
        return Err(ConfigError::new(
            format!("{key}.hours"),
            format!("`{}` is not a schedule in [hours]", raw.hours),
        ));
    }
    let service_level = validate_sla(&format!("{key}.sla"), &raw.sla)?;
    if raw.max_waiting == Some(0) {
        return Err(ConfigError::new(
            format!("{key}.max_waiting"),
            "must be at least 1",
        ));
    }
    let when_full = match (&raw.when_full, raw.max_waiting) {
        (Some(redirect), Some(_)) => Some(context.redirect(&format!("{key}.when_full"), redirect, id)?),
        (None, Some(_)) => {
            return Err(ConfigError::new(
                format!("{key}.when_full"),
                "is required with max_waiting",
            ));
        }
        (Some(_), None) => {
            return Err(ConfigError::new(
                format!("{key}.when_full"),
                "needs max_waiting to say when the queue is full",
            ));
        }
        (None, None) => None,
    };
    let callback = match &raw.callback {
        None => None,
        Some(callback) => {
            if callback.offer_when_wait_exceeds_seconds == 0 {
                return Err(ConfigError::new(
                    format!("{key}.callback.offer_when_wait_exceeds_seconds"),
                    "must be at least 1",
                ));
            }
            Some(CallbackPolicy {
                offer_when_wait_exceeds_seconds: callback.offer_when_wait_exceeds_seconds,
                queue: context.queue_ref(&format!("{key}.callback.queue"), &callback.queue, id)?,
            })
        }
    };
    let out_of_hours = context.redirect(&format!("{key}.out_of_hours"), &raw.out_of_hours, id)?;
    if raw.expected_handle_seconds == 0 {
        return Err(ConfigError::new(
            format!("{key}.expected_handle_seconds"),
            "must be at least 1",
        ));
    }
    if !OFFER_TIMEOUT_RANGE.contains(&raw.offer_timeout_seconds) {
        return Err(ConfigError::new(
            format!("{key}.offer_timeout_seconds"),
            format!(
                "must be from {} to {} seconds",
                OFFER_TIMEOUT_RANGE.start(),
                OFFER_TIMEOUT_RANGE.end()
            ),
        ));
    }
    if let Some(requirement) = &raw.vulnerable_requires {
        check_skill(&format!("{key}.vulnerable_requires"), requirement, context.skills)?;
    }
    let mut overflow = Vec::with_capacity(raw.overflow.len());
    let mut previous_after = 0;
    for (index, step) in raw.overflow.iter().enumerate() {
        let step_key = format!("{key}.overflow[{index}]");
        if step.after_seconds <= previous_after {
            return Err(ConfigError::new(
                format!("{step_key}.after_seconds"),
                if index == 0 {
                    "must be greater than 0".to_owned()
                } else {
                    "must be greater than the previous step".to_owned()
                },
            ));
        }
        previous_after = step.after_seconds;
        let action = match (&step.move_to, &step.skills, step.min_proficiency) {
            (Some(target), None, None) => {
                if index + 1 != raw.overflow.len() {
                    return Err(ConfigError::new(
                        format!("{step_key}.move_to"),
                        "must be the last step (the contact leaves this queue)",
                    ));
                }
                StepAction::MoveTo(context.queue_ref(&format!("{step_key}.move_to"), target, id)?)
            }
            (Some(_), _, _) => {
                return Err(ConfigError::new(
                    format!("{step_key}.move_to"),
                    "cannot be combined with skills or min_proficiency",
                ));
            }
            (None, None, None) => {
                return Err(ConfigError::new(
                    step_key,
                    "must give skills, min_proficiency or move_to",
                ));
            }
            (None, skills, min_proficiency) => {
                if let Some(skills) = skills {
                    check_skill_list(&format!("{step_key}.skills"), skills, context.skills)?;
                }
                if let Some(min) = min_proficiency {
                    check_proficiency(&format!("{step_key}.min_proficiency"), min)?;
                }
                StepAction::Relax {
                    skills: skills.clone(),
                    min_proficiency,
                }
            }
        };
        overflow.push(OverflowStep {
            after_seconds: step.after_seconds,
            action,
        });
    }
    let partition = match &raw.partition {
        Some(partition) => {
            check_slug(&format!("{key}.partition"), partition)?;
            if partition.len() > MAX_PARTITION_LEN {
                return Err(ConfigError::new(
                    format!("{key}.partition"),
                    format!("must be at most {MAX_PARTITION_LEN} characters"),
                ));
            }
            partition.clone()
        }
        None => DEFAULT_PARTITION.to_owned(),
    };
    Ok(QueueConfig {
        id: QueueId(id.to_owned()),
        name: raw.name.clone(),
        partition,
        services,
        channel,
        skills: raw.skills.clone(),
        priority: raw.priority,
        ageing_seconds_per_point: raw.ageing_seconds_per_point,
        hours: raw.hours.clone(),
        service_level,
        max_waiting: raw.max_waiting,
        when_full,
        callback,
        out_of_hours,
        expected_handle_seconds: raw.expected_handle_seconds,
        offer_timeout_seconds: raw.offer_timeout_seconds,
        vulnerable_requires: raw.vulnerable_requires.clone(),
        overflow,
    })
}

fn validate_sla(key: &str, raw: &RawSla) -> Result<ServiceLevel, ConfigError> {
    if !(1..=100).contains(&raw.answered_percent) {
        return Err(ConfigError::new(
            format!("{key}.answered_percent"),
            "must be from 1 to 100",
        ));
    }
    let target = match (raw.within_seconds, raw.within_working_days) {
        (Some(0), None) => {
            return Err(ConfigError::new(
                format!("{key}.within_seconds"),
                "must be at least 1",
            ));
        }
        (None, Some(0)) => {
            return Err(ConfigError::new(
                format!("{key}.within_working_days"),
                "must be at least 1",
            ));
        }
        (Some(seconds), None) => ServiceLevelTarget::Seconds(seconds),
        (None, Some(days)) => ServiceLevelTarget::WorkingDays(days),
        _ => {
            return Err(ConfigError::new(
                key,
                "give exactly one of within_seconds and within_working_days",
            ));
        }
    };
    Ok(ServiceLevel {
        answered_percent: raw.answered_percent,
        target,
    })
}

/// Where a queue may send a contact on: (the field, relative to the queue's
/// key, and the target queue).
fn redirect_edges(queue: &QueueConfig) -> Vec<(String, QueueId)> {
    let mut edges = Vec::new();
    let mut redirect = |field: String, redirect: &Option<Redirect>| {
        if let Some(Redirect::Queue { queue: target } | Redirect::Callback { queue: target }) = redirect {
            edges.push((field, target.clone()));
        }
    };
    redirect("out_of_hours.queue".to_owned(), &Some(queue.out_of_hours.clone()));
    redirect("when_full.queue".to_owned(), &queue.when_full);
    if let Some(callback) = &queue.callback {
        edges.push(("callback.queue".to_owned(), callback.queue.clone()));
    }
    for (index, step) in queue.overflow.iter().enumerate() {
        if let StepAction::MoveTo(target) = &step.action {
            edges.push((format!("overflow[{index}].move_to"), target.clone()));
        }
    }
    edges
}

/// A contact never leaves its partition: every queue a queue redirects or
/// overflows to is in the same partition.
fn check_partitions(queues: &[QueueConfig]) -> Result<(), ConfigError> {
    let partition_of: BTreeMap<&str, &str> = queues
        .iter()
        .map(|queue| (queue.id.as_str(), queue.partition.as_str()))
        .collect();
    for queue in queues {
        for (field, target) in redirect_edges(queue) {
            if let Some(other) = partition_of.get(target.as_str())
                && *other != queue.partition
            {
                return Err(ConfigError::new(
                    format!("queues.{}.{field}", queue.id),
                    format!(
                        "`{target}` is in partition `{other}`, not `{}`: a contact stays in its queue's partition",
                        queue.partition
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Refuses loops between queues (a move, callback, full or out-of-hours
/// redirect that leads back to where it started), so a contact can never be
/// passed round for ever.
fn check_no_cycles(queues: &[QueueConfig]) -> Result<(), ConfigError> {
    let graph: BTreeMap<&str, Vec<(String, QueueId)>> = queues
        .iter()
        .map(|queue| (queue.id.as_str(), redirect_edges(queue)))
        .collect();
    // Depth-first search from every queue; a back edge closes a loop.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unvisited,
        OnPath,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = graph.keys().map(|id| (*id, Mark::Unvisited)).collect();
    for start in graph.keys() {
        if marks.get(start) != Some(&Mark::Unvisited) {
            continue;
        }
        // Explicit stack of (queue, next edge index) to avoid recursion.
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        marks.insert(start, Mark::OnPath);
        while let Some((node, edge_index)) = stack.pop() {
            let node_edges = graph.get(node).map(Vec::as_slice).unwrap_or_default();
            let Some((field, target)) = node_edges.get(edge_index) else {
                marks.insert(node, Mark::Done);
                continue;
            };
            stack.push((node, edge_index + 1));
            let target = target.as_str();
            match marks.get(target).copied() {
                Some(Mark::OnPath) => {
                    return Err(ConfigError::new(
                        format!("queues.{node}.{field}"),
                        format!("`{target}` leads back to `{node}`: queues must not redirect in a loop"),
                    ));
                }
                Some(Mark::Unvisited) => {
                    if let Some((name, _)) = graph.get_key_value(target) {
                        marks.insert(name, Mark::OnPath);
                        stack.push((name, 0));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}
