//! Loading the routing config: the shipped seeds are valid, and every kind of
//! mistake is refused with the failing key named.

use switchboard_domain::{Catalogue, Channel};
use switchboard_routing::config::{Redirect, ServiceLevelTarget, StepAction};
use switchboard_routing::{ConfigError, RoutingConfig};

const SEEDS: &str = include_str!("../../../seeds/routing.toml");

#[test]
fn the_seeds_parse_validate_and_match_the_catalogue() {
    let config = RoutingConfig::parse(SEEDS).expect("seeds/routing.toml is valid");
    let catalogue = Catalogue::embedded().expect("catalogue");
    config
        .check_catalogue(&catalogue)
        .expect("seeds match the catalogue");

    let phone = config
        .queue("council-tax-phone")
        .expect("council tax phone queue");
    assert_eq!(phone.channel, Channel::Phone);
    assert_eq!(phone.service_level.target, ServiceLevelTarget::Seconds(60));
    assert_eq!(phone.service_level.answered_percent, 80);
    assert_eq!(phone.overflow.len(), 3);
    assert!(
        matches!(&phone.overflow[2].action, StepAction::MoveTo(q) if q.as_str() == "general-enquiry-phone")
    );
    assert!(matches!(&phone.when_full, Some(Redirect::Callback { .. })));

    let web = config.queue("council-tax-web").expect("web queue");
    assert_eq!(web.service_level.target, ServiceLevelTarget::WorkingDays(5));
    let visit = config.queue("council-tax-face-to-face").expect("reception queue");
    assert_eq!(visit.service_level.target, ServiceLevelTarget::Seconds(900));
    let homelessness = config.queue("homelessness-phone").expect("homelessness");
    assert!(homelessness.vulnerable_requires.is_some());

    // Every service in the catalogue has a queue on every channel it takes.
    for service in catalogue.services() {
        for &channel in &service.channels {
            assert!(
                config.queue_for(service.id.as_str(), channel).is_some(),
                "{} on {channel} has no queue",
                service.id
            );
        }
    }
    assert_eq!(config.calendar.bank_holidays().count(), 16);
    assert_eq!(RoutingConfig::embedded().expect("embedded"), config);
}

/// Replaces the first occurrence of `from` in the seeds and parses.
fn parse_with(from: &str, to: &str) -> ConfigError {
    assert!(SEEDS.contains(from), "the seeds no longer contain {from:?}");
    let text = SEEDS.replacen(from, to, 1);
    RoutingConfig::parse(&text).expect_err("should be refused")
}

#[track_caller]
fn assert_key(error: ConfigError, key: &str, problem_contains: &str) {
    assert_eq!(error.key, key, "{error}");
    assert!(error.problem.contains(problem_contains), "{error}");
    assert!(error.to_string().starts_with(&format!("{key}: ")), "{error}");
}

#[test]
fn overflow_steps_must_come_in_order() {
    let error = parse_with("after_seconds = 180", "after_seconds = 30");
    assert_key(
        error,
        "queues.council-tax-phone.overflow[1].after_seconds",
        "must be greater than the previous step",
    );
    assert_eq!(
        parse_with("after_seconds = 180", "after_seconds = 60").to_string(),
        "queues.council-tax-phone.overflow[1].after_seconds: must be greater than the previous step"
    );
}

#[test]
fn proficiency_must_be_one_to_five() {
    let error = parse_with(
        r#"skills = [{ skill = "council-tax", min_proficiency = 3 }]"#,
        r#"skills = [{ skill = "council-tax", min_proficiency = 7 }]"#,
    );
    assert_key(
        error,
        "queues.council-tax-phone.skills[0].min_proficiency",
        "from 1 to 5",
    );
}

#[test]
fn skills_must_be_declared() {
    let error = parse_with(
        r#"skills = [{ skill = "council-tax", min_proficiency = 3 }]"#,
        r#"skills = [{ skill = "counsil-tax", min_proficiency = 3 }]"#,
    );
    assert_key(error, "queues.council-tax-phone.skills[0].skill", "not declared");
}

#[test]
fn references_must_exist() {
    assert_key(
        parse_with(
            r#"move_to = "general-enquiry-phone""#,
            r#"move_to = "general-enquiry-fone""#,
        ),
        "queues.council-tax-phone.overflow[2].move_to",
        "not a queue",
    );
    assert_key(
        parse_with(
            r#"when_full = { action = "signpost", partner = "citizens-advice" }"#,
            r#"when_full = { action = "signpost", partner = "citizens-advise" }"#,
        ),
        "queues.benefits-phone.when_full.partner",
        "not in [partners]",
    );
    assert_key(
        parse_with(r#"hours = "contact-centre""#, r#"hours = "call-centre""#),
        "queues.council-tax-phone.hours",
        "not a schedule",
    );
}

#[test]
fn redirects_are_checked() {
    assert_key(
        parse_with(
            r#"out_of_hours = { action = "message", message = "council-tax-closed" }"#,
            r#"out_of_hours = { action = "voicemail", message = "council-tax-closed" }"#,
        ),
        "queues.council-tax-phone.out_of_hours.action",
        "not one of",
    );
    assert_key(
        parse_with(
            r#"out_of_hours = { action = "message", message = "council-tax-closed" }"#,
            r#"out_of_hours = { action = "message", partner = "shelter" }"#,
        ),
        "queues.council-tax-phone.out_of_hours.partner",
        "does not apply",
    );
    assert_key(
        parse_with("max_waiting = 60\n", ""),
        "queues.council-tax-phone.when_full",
        "needs max_waiting",
    );
}

#[test]
fn queues_must_not_redirect_in_a_loop() {
    let error = parse_with(
        r#"out_of_hours = { action = "message", message = "council-closed" }"#,
        r#"out_of_hours = { action = "queue", queue = "council-tax-phone" }"#,
    );
    assert!(error.problem.contains("loop"), "{error}");
    assert!(error.key.starts_with("queues."), "{error}");
}

#[test]
fn move_must_be_the_last_step_and_keep_the_channel() {
    let error = parse_with(
        "after_seconds = 600\nmove_to = \"general-enquiry-phone\"",
        "after_seconds = 600\nmove_to = \"general-enquiry-phone\"\n\n[[queues.council-tax-phone.overflow]]\nafter_seconds = 900\nmin_proficiency = 1",
    );
    assert_key(error, "queues.council-tax-phone.overflow[2].move_to", "last step");
    let error = parse_with(
        r#"move_to = "general-enquiry-phone""#,
        r#"move_to = "general-enquiry-web""#,
    );
    assert_key(
        error,
        "queues.council-tax-phone.overflow[2].move_to",
        "another channel",
    );
}

#[test]
fn a_service_has_one_queue_per_channel() {
    let error = parse_with(
        r#"services = ["council-tax-support", "housing-benefit"]"#,
        r#"services = ["council-tax", "housing-benefit"]"#,
    );
    assert_key(error, "queues.council-tax-phone.services[0]", "already routed");
}

#[test]
fn calendar_and_hours_are_checked() {
    assert_key(
        parse_with(r#"{ date = "2026-04-03""#, r#"{ date = "2026-04-31""#),
        "calendar.bank_holidays[1].date",
        "not a date",
    );
    assert_key(
        parse_with(r#"{ date = "2026-04-03""#, r#"{ date = "2026-01-01""#),
        "calendar.bank_holidays[1].date",
        "listed twice",
    );
    assert_key(
        parse_with(r#"weekdays = "08:30-17:00""#, r#"weekdays = "17:00-08:30""#),
        "hours.contact-centre.weekdays",
        "must end after it starts",
    );
    assert_key(
        parse_with(
            "friday = \"08:30-16:30\"\nbank_holidays = \"closed\"",
            "friday = \"08:30-16:30\"",
        ),
        "hours.contact-centre.bank_holidays",
        "is required",
    );
    assert_key(
        parse_with(r#"time_zone = "Europe/London""#, r#"time_zone = "Europe/Paris""#),
        "calendar.time_zone",
        "Europe/London",
    );
}

#[test]
fn unknown_keys_and_wrong_types_name_their_path() {
    let error = parse_with("offer_timeout_seconds = 20", "offer_timeout_secs = 20");
    assert_key(
        error,
        "queues.council-tax-phone.offer_timeout_secs",
        "unknown field",
    );
    let error = parse_with("after_seconds = 180", r#"after_seconds = "three minutes""#);
    assert_key(
        error,
        "queues.council-tax-phone.overflow[1].after_seconds",
        "invalid type",
    );
    let error = RoutingConfig::parse("[engine\n").expect_err("bad toml");
    assert!(error.problem.contains("not valid toml"), "{error}");
    assert_eq!(error.key, "line 1");
}

#[test]
fn offer_timeouts_and_sla_are_in_range() {
    assert_key(
        parse_with("offer_timeout_seconds = 20", "offer_timeout_seconds = 2"),
        "queues.council-tax-phone.offer_timeout_seconds",
        "from 5 to 600",
    );
    assert_key(
        parse_with(
            "sla = { answered_percent = 80, within_seconds = 60 }",
            "sla = { answered_percent = 80, within_seconds = 60, within_working_days = 1 }",
        ),
        "queues.council-tax-phone.sla",
        "exactly one",
    );
}

#[test]
fn queues_are_in_the_default_partition_unless_they_name_one() {
    let config = RoutingConfig::parse(SEEDS).expect("seeds");
    assert_eq!(
        config.partitions().into_iter().collect::<Vec<_>>(),
        vec!["default"]
    );

    // Council tax web forms (a queue that redirects nowhere) get a
    // partition of their own.
    let partitioned = SEEDS.replacen(
        "[queues.council-tax-web]\n",
        "[queues.council-tax-web]\npartition = \"revenues\"\n",
        1,
    );
    let config = RoutingConfig::parse(&partitioned).expect("a valid partitioned configuration");
    assert_eq!(
        config.partitions().into_iter().collect::<Vec<_>>(),
        vec!["default", "revenues"]
    );
    assert_eq!(
        config.partition_for("council-tax", Channel::Web),
        Some("revenues")
    );
    assert_eq!(
        config.partition_for("council-tax", Channel::Phone),
        Some("default")
    );
}

#[test]
fn a_contact_never_leaves_its_partition() {
    // The council tax phone queue overflows to the general enquiry line and
    // calls back from its callback queue: both must share its partition.
    let error = parse_with(
        "[queues.council-tax-phone]\n",
        "[queues.council-tax-phone]\npartition = \"revenues\"\n",
    );
    assert!(
        error.to_string().contains("partition `default`, not `revenues`"),
        "{error}"
    );
    assert!(
        error.to_string().starts_with("queues.council-tax-phone."),
        "{error}"
    );

    let error = parse_with(
        "[queues.council-tax-phone]\n",
        "[queues.council-tax-phone]\npartition = \"Revenues!\"\n",
    );
    assert_key(error, "queues.council-tax-phone.partition", "a-z");
}
