//! A small routing config and helpers shared by the engine tests.

#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use switchboard_domain::Channel;
use switchboard_routing::{
    AgentId, AgentProfile, Command, ContactId, Decision, Destination, Engine, Needs, RoutingConfig,
};

/// Queues chosen to exercise one feature each; see the scenario tests.
pub const CONFIG: &str = r#"
[engine]
named_agent_wait_seconds = 60

[calendar]
time_zone = "Europe/London"
bank_holidays = [
    { date = "2026-04-03", name = "Good Friday" },
    { date = "2026-04-06", name = "Easter Monday" },
]

[skills]
council-tax = "Council Tax"
customer-services = "General enquiries"
homelessness = "Homelessness"
housing-repairs = "Repairs"
waste = "Waste"
safeguarding = "Safeguarding"
bsl = "British Sign Language"

[partners.shelter]
name = "Shelter"

[partners.emergency-duty-team]
name = "Emergency Duty Team"

[needs.language]
skill_prefix = "language-"
min_proficiency = 3
not_required_for = ["en"]

[needs.british_sign_language]
skill = "bsl"
min_proficiency = 3

[needs.vulnerable]
priority_boost = 3

[hours.office]
weekdays = "08:00-18:00"
bank_holidays = "closed"

[hours.always]
every_day = "00:00-24:00"
bank_holidays = "00:00-24:00"

[queues.ct-phone]
name = "Council Tax"
services = ["council-tax"]
channel = "phone"
skills = [{ skill = "council-tax", min_proficiency = 3 }]
priority = 5
ageing_seconds_per_point = 120
hours = "office"
sla = { answered_percent = 80, within_seconds = 60 }
expected_handle_seconds = 300
offer_timeout_seconds = 20
max_waiting = 6
when_full = { action = "callback", queue = "ct-callbacks" }
callback = { offer_when_wait_exceeds_seconds = 600, queue = "ct-callbacks" }
out_of_hours = { action = "message", message = "ct-closed" }

[[queues.ct-phone.overflow]]
after_seconds = 60
min_proficiency = 1

[[queues.ct-phone.overflow]]
after_seconds = 180
skills = [{ skill = "customer-services", min_proficiency = 2 }]

[[queues.ct-phone.overflow]]
after_seconds = 600
move_to = "general-phone"

[queues.ct-callbacks]
name = "Council Tax callbacks"
services = []
channel = "phone"
skills = [{ skill = "council-tax", min_proficiency = 1 }]
priority = 2
hours = "office"
sla = { answered_percent = 90, within_seconds = 14400 }
expected_handle_seconds = 300
offer_timeout_seconds = 30
out_of_hours = { action = "message", message = "callback-tomorrow" }

[queues.general-phone]
name = "General enquiries"
services = ["general-enquiry"]
channel = "phone"
skills = [{ skill = "customer-services", min_proficiency = 1 }]
priority = 4
ageing_seconds_per_point = 120
hours = "office"
sla = { answered_percent = 80, within_seconds = 60 }
expected_handle_seconds = 300
offer_timeout_seconds = 20
out_of_hours = { action = "message", message = "closed" }

[queues.homeless-phone]
name = "Homelessness"
services = ["homelessness"]
channel = "phone"
skills = [{ skill = "homelessness", min_proficiency = 3 }]
priority = 8
ageing_seconds_per_point = 60
hours = "office"
sla = { answered_percent = 90, within_seconds = 30 }
expected_handle_seconds = 900
offer_timeout_seconds = 20
vulnerable_requires = { skill = "safeguarding", min_proficiency = 3 }
max_waiting = 3
when_full = { action = "signpost", partner = "shelter" }
out_of_hours = { action = "signpost", partner = "emergency-duty-team" }

[queues.repairs-phone]
name = "Repairs"
services = ["housing-repairs"]
channel = "phone"
skills = [{ skill = "housing-repairs", min_proficiency = 2 }]
priority = 6
hours = "office"
sla = { answered_percent = 80, within_seconds = 60 }
expected_handle_seconds = 300
offer_timeout_seconds = 20
out_of_hours = { action = "queue", queue = "repairs-emergency" }

[queues.repairs-emergency]
name = "Emergency repairs"
services = []
channel = "phone"
skills = [{ skill = "housing-repairs", min_proficiency = 1 }]
priority = 9
hours = "always"
sla = { answered_percent = 90, within_seconds = 30 }
expected_handle_seconds = 300
offer_timeout_seconds = 20
out_of_hours = { action = "message", message = "never" }

[queues.waste-phone]
name = "Waste"
services = ["waste-collections"]
channel = "phone"
skills = [{ skill = "waste", min_proficiency = 1 }]
priority = 1
ageing_seconds_per_point = 10
hours = "office"
sla = { answered_percent = 80, within_seconds = 90 }
expected_handle_seconds = 200
offer_timeout_seconds = 20
out_of_hours = { action = "message", message = "report-online" }

[queues.ct-web]
name = "Council Tax forms"
services = ["council-tax"]
channel = "web"
skills = [{ skill = "council-tax", min_proficiency = 1 }]
priority = 2
hours = "always"
sla = { answered_percent = 95, within_working_days = 5 }
expected_handle_seconds = 600
offer_timeout_seconds = 120
out_of_hours = { action = "message", message = "form-received" }

[queues.ct-visit]
name = "Council Tax reception"
services = ["council-tax"]
channel = "face_to_face"
skills = [{ skill = "council-tax", min_proficiency = 2 }]
priority = 5
hours = "office"
sla = { answered_percent = 80, within_seconds = 900 }
expected_handle_seconds = 600
offer_timeout_seconds = 60
out_of_hours = { action = "message", message = "reception-closed" }
"#;

pub fn config() -> RoutingConfig {
    RoutingConfig::parse(CONFIG).expect("test config is valid")
}

pub fn engine() -> Engine {
    Engine::new(config())
}

/// Monday 2 March 2026, 09:00 UK time (GMT), plus `seconds`.
pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("valid time")
        + Duration::seconds(seconds)
}

pub fn profile(skills: &[(&str, u8)]) -> AgentProfile {
    AgentProfile {
        skills: skills.iter().map(|(s, l)| ((*s).to_owned(), *l)).collect(),
        team: "contact-centre".to_owned(),
        office: None,
        channels: vec![Channel::Phone, Channel::Web],
        web_capacity: 3,
    }
}

pub fn sign_in(engine: &mut Engine, time: DateTime<Utc>, agent: u64, profile: AgentProfile) -> Vec<Decision> {
    engine
        .handle(
            time,
            Command::AgentSignedIn {
                agent: AgentId(agent),
                profile,
            },
        )
        .expect("sign in")
}

pub fn arrive(
    engine: &mut Engine,
    time: DateTime<Utc>,
    contact: u128,
    channel: Channel,
    service: &str,
    needs: Needs,
) -> Vec<Decision> {
    engine
        .handle(
            time,
            Command::ContactArrived {
                contact: ContactId(contact),
                channel,
                destination: Destination::Service(service.to_owned()),
                needs,
                office: None,
            },
        )
        .expect("arrive")
}

pub fn phone(engine: &mut Engine, time: DateTime<Utc>, contact: u128, service: &str) -> Vec<Decision> {
    arrive(engine, time, contact, Channel::Phone, service, Needs::default())
}

pub fn tick(engine: &mut Engine, time: DateTime<Utc>) -> Vec<Decision> {
    engine.handle(time, Command::Tick).expect("tick")
}

pub fn run(engine: &mut Engine, time: DateTime<Utc>, command: Command) -> Vec<Decision> {
    engine.handle(time, command).expect("command accepted")
}

/// The (contact, agent) pairs offered, in order.
pub fn offers(decisions: &[Decision]) -> Vec<(u128, u64)> {
    decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Offered { contact, agent, .. } => Some((contact.0, agent.0)),
            _ => None,
        })
        .collect()
}

pub fn explanation_of(decisions: &[Decision], contact: u128) -> &switchboard_routing::Explanation {
    decisions
        .iter()
        .find_map(|d| match d {
            Decision::Offered {
                contact: c,
                explanation,
                ..
            } if c.0 == contact => Some(explanation.as_ref()),
            _ => None,
        })
        .expect("an offer with an explanation")
}

#[track_caller]
pub fn assert_sound(engine: &Engine) {
    let problems = engine.check_invariants();
    assert!(problems.is_empty(), "invariants broken: {problems:#?}");
}
