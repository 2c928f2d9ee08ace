//! Property tests: random sequences of commands against the engine, checking
//! the invariants routing promises, and that the indexed engine decides
//! exactly as the naive scan-all engine does.
//!
//! - no agent over capacity, no contact held by two agents (the engine's own
//!   audit, after every command, plus the test's own record of offers);
//! - no skill mismatch beyond the overflow step in force: every offer's agent
//!   has every skill of the configured step (and of the resident's needs),
//!   and that step's time had come;
//! - work conservation: nothing waits that an available agent could take;
//! - priority order: an agent who frees up gets the highest-priority contact;
//! - every contact ends assigned (completed), abandoned, overflowed or closed.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration;
use common::{CONFIG, at};
use proptest::prelude::*;
use switchboard_domain::Channel;
use switchboard_routing::config::StepAction;
use switchboard_routing::{
    AgentId, AgentProfile, Command, ContactId, Decision, Destination, Disposition, Engine, Needs, Presence,
    QueueId, RoutingConfig, RoutingResult, TransferTarget,
};

const SKILLS: [&str; 8] = [
    "council-tax",
    "customer-services",
    "homelessness",
    "housing-repairs",
    "waste",
    "safeguarding",
    "bsl",
    "language-pl",
];
const SERVICES: [&str; 5] = [
    "council-tax",
    "homelessness",
    "housing-repairs",
    "waste-collections",
    "general-enquiry",
];
const OFFICES: [&str; 2] = ["appletree-court", "hythe-help-point"];
const PHONE_QUEUES: [&str; 5] = [
    "ct-phone",
    "general-phone",
    "homeless-phone",
    "repairs-phone",
    "waste-phone",
];

#[derive(Debug, Clone)]
enum Op {
    SignIn {
        agent: u64,
        skills: Vec<(usize, u8)>,
        office: Option<usize>,
        channels: u8,
        web_capacity: u8,
    },
    SignOut(u64),
    Presence(u64, u8),
    Arrive {
        channel: u8,
        service: usize,
        bsl: bool,
        polish: bool,
        vulnerable: bool,
        office: usize,
    },
    Accept(usize),
    Reject(usize),
    End(usize),
    WrapUp(usize),
    Abandon(usize),
    Transfer(usize, usize),
    TransferToAgent(usize, u64),
    CallbackAccept(usize),
    Wait(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (
            0u64..6,
            proptest::collection::vec((0usize..SKILLS.len(), 1u8..=5), 1..5),
            proptest::option::of(0usize..OFFICES.len()),
            1u8..8,
            1u8..=3
        )
            .prop_map(|(agent, skills, office, channels, web_capacity)| Op::SignIn {
                agent,
                skills,
                office,
                channels,
                web_capacity
            }),
        1 => (0u64..6).prop_map(Op::SignOut),
        1 => (0u64..6, 0u8..3).prop_map(|(agent, presence)| Op::Presence(agent, presence)),
        5 => (0u8..3, 0usize..SERVICES.len(), any::<bool>(), any::<bool>(), any::<bool>(), 0usize..OFFICES.len())
            .prop_map(|(channel, service, bsl, polish, vulnerable, office)| Op::Arrive {
                channel,
                service,
                bsl: bsl && channel != 1,
                polish,
                vulnerable,
                office
            }),
        3 => any::<usize>().prop_map(Op::Accept),
        1 => any::<usize>().prop_map(Op::Reject),
        2 => any::<usize>().prop_map(Op::End),
        2 => any::<usize>().prop_map(Op::WrapUp),
        1 => any::<usize>().prop_map(Op::Abandon),
        1 => (any::<usize>(), 0usize..PHONE_QUEUES.len()).prop_map(|(c, q)| Op::Transfer(c, q)),
        1 => (any::<usize>(), 0u64..6).prop_map(|(c, a)| Op::TransferToAgent(c, a)),
        1 => any::<usize>().prop_map(Op::CallbackAccept),
        3 => (0i64..150).prop_map(Op::Wait),
    ]
}

/// What the test knows from the decisions alone.
#[derive(Default)]
struct Record {
    profiles: BTreeMap<u64, AgentProfile>,
    arrived: BTreeSet<u128>,
    needs: BTreeMap<u128, Needs>,
    offered: BTreeMap<u128, u64>,
    connected: BTreeMap<u128, u64>,
    wrapping: BTreeSet<u128>,
    callback_offered: BTreeSet<u128>,
    finished: BTreeSet<u128>,
}

fn pick<T: Copy>(items: impl Iterator<Item = T>, index: usize) -> Option<T> {
    let items: Vec<T> = items.collect();
    if items.is_empty() {
        None
    } else {
        items.get(index % items.len()).copied()
    }
}

/// The requirement of a queue at a step, from the config alone.
fn step_requirement(config: &RoutingConfig, queue: &QueueId, step: usize) -> (Vec<(String, u8)>, u32) {
    let queue = config.queue(queue.as_str()).expect("queue");
    let mut reqs: Vec<(String, u8)> = queue
        .skills
        .iter()
        .map(|r| (r.skill.clone(), r.min_proficiency))
        .collect();
    let mut after = 0;
    for overflow in queue.overflow.iter().take(step) {
        after = overflow.after_seconds;
        if let StepAction::Relax {
            skills,
            min_proficiency,
        } = &overflow.action
        {
            if let Some(skills) = skills {
                reqs = skills
                    .iter()
                    .map(|r| (r.skill.clone(), r.min_proficiency))
                    .collect();
            }
            if let Some(min) = min_proficiency {
                for req in &mut reqs {
                    req.1 = req.1.min(*min);
                }
            }
        }
    }
    (reqs, after)
}

/// Strips what legitimately differs between the matchers: what they examined.
fn comparable(decisions: &RoutingResult<Vec<Decision>>) -> RoutingResult<Vec<Decision>> {
    decisions.clone().map(|decisions| {
        decisions
            .into_iter()
            .map(|mut decision| {
                if let Decision::Offered { explanation, .. } = &mut decision {
                    explanation.candidates.clear();
                    explanation.candidates_examined = 0;
                }
                decision
            })
            .collect()
    })
}

fn observe(config: &RoutingConfig, record: &mut Record, decisions: &[Decision]) -> Result<(), TestCaseError> {
    for decision in decisions {
        match decision {
            Decision::Offered {
                contact,
                agent,
                explanation,
                ..
            } => {
                let c = contact.0;
                prop_assert!(
                    !record.offered.contains_key(&c),
                    "contact {c} offered twice at once"
                );
                prop_assert!(
                    !record.connected.contains_key(&c),
                    "connected contact {c} offered"
                );
                record.offered.insert(c, agent.0);
                let profile = record.profiles.get(&agent.0).expect("offered agent signed in");
                let has = |skill: &str| -> u8 {
                    profile
                        .skills
                        .iter()
                        .filter(|(s, _)| s == skill)
                        .map(|(_, l)| *l)
                        .max()
                        .unwrap_or(0)
                };
                if explanation.named_agent {
                    continue;
                }
                for skill in &explanation.skills {
                    if let Some(office) = skill.skill.strip_prefix("office:") {
                        prop_assert_eq!(profile.office.as_deref(), Some(office));
                    } else {
                        prop_assert!(
                            has(&skill.skill) >= skill.required,
                            "agent {} lacks {} >= {}",
                            agent.0,
                            skill.skill,
                            skill.required
                        );
                    }
                }
                let (step_reqs, after) = step_requirement(config, &explanation.queue, explanation.step);
                prop_assert!(
                    explanation.seconds_in_queue >= i64::from(after),
                    "step {} used after {} s, before its {} s",
                    explanation.step,
                    explanation.seconds_in_queue,
                    after
                );
                for (skill, min) in step_reqs {
                    prop_assert!(
                        has(&skill) >= min,
                        "agent {} lacks step skill {skill} >= {min}",
                        agent.0
                    );
                }
                let needs = record.needs.get(&c).cloned().unwrap_or_default();
                if needs.british_sign_language {
                    prop_assert!(has("bsl") >= 3, "bsl need offered to agent without bsl");
                }
                if needs.language.is_some() {
                    prop_assert!(
                        has("language-pl") >= 3,
                        "polish need offered to agent without polish"
                    );
                }
            }
            Decision::OfferReturned { contact, .. } => {
                prop_assert!(record.offered.remove(&contact.0).is_some());
            }
            Decision::Assigned { contact, agent, .. } => {
                prop_assert_eq!(record.offered.remove(&contact.0), Some(agent.0));
                record.connected.insert(contact.0, agent.0);
            }
            Decision::WrapUpStarted { contact, .. } => {
                prop_assert!(record.connected.remove(&contact.0).is_some());
                record.wrapping.insert(contact.0);
            }
            Decision::CallbackOffered { contact, .. } => {
                record.callback_offered.insert(contact.0);
            }
            Decision::HeldForAgent { contact, .. } => {
                record.connected.remove(&contact.0);
            }
            Decision::Moved { contact, .. } => {
                record.callback_offered.remove(&contact.0);
                record.connected.remove(&contact.0);
            }
            Decision::Finished { contact, .. } => {
                let c = contact.0;
                prop_assert!(record.arrived.contains(&c), "unknown contact {c} finished");
                prop_assert!(record.finished.insert(c), "contact {c} finished twice");
                record.offered.remove(&c);
                record.connected.remove(&c);
                record.wrapping.remove(&c);
            }
            Decision::Queued { .. } | Decision::Relaxed { .. } | Decision::AgentMissed { .. } => {}
        }
    }
    Ok(())
}

fn command_for(op: &Op, record: &mut Record, next_contact: &mut u128) -> Option<Command> {
    let channels = [Channel::Phone, Channel::Web, Channel::FaceToFace];
    Some(match op {
        Op::SignIn {
            agent,
            skills,
            office,
            channels: mask,
            web_capacity,
        } => Command::AgentSignedIn {
            agent: AgentId(*agent),
            profile: AgentProfile {
                skills: skills.iter().map(|(s, l)| (SKILLS[*s].to_owned(), *l)).collect(),
                team: "t".to_owned(),
                office: office.map(|o| OFFICES[o].to_owned()),
                channels: channels
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, c)| *c)
                    .collect(),
                web_capacity: *web_capacity,
            },
        },
        Op::SignOut(agent) => Command::AgentSignedOut {
            agent: AgentId(*agent),
        },
        Op::Presence(agent, presence) => Command::PresenceChanged {
            agent: AgentId(*agent),
            presence: [Presence::Available, Presence::Break, Presence::Busy][usize::from(*presence)],
        },
        Op::Arrive {
            channel,
            service,
            bsl,
            polish,
            vulnerable,
            office,
        } => {
            let channel = channels[usize::from(*channel)];
            // Only council tax takes web forms and visits in the test config.
            let service = if channel == Channel::Phone {
                SERVICES[*service]
            } else {
                "council-tax"
            };
            *next_contact += 1;
            let needs = Needs {
                british_sign_language: *bsl,
                language: polish.then(|| "pl".to_owned()),
                vulnerable: *vulnerable,
                vulnerability_consent: *vulnerable,
                ..Needs::default()
            };
            Command::ContactArrived {
                contact: ContactId(*next_contact),
                channel,
                destination: Destination::Service(service.to_owned()),
                needs,
                office: (channel == Channel::FaceToFace).then(|| OFFICES[*office].to_owned()),
            }
        }
        Op::Accept(i) => {
            let (c, a) = pick(record.offered.iter().map(|(c, a)| (*c, *a)), *i)?;
            Command::OfferAccepted {
                contact: ContactId(c),
                agent: AgentId(a),
            }
        }
        Op::Reject(i) => {
            let (c, a) = pick(record.offered.iter().map(|(c, a)| (*c, *a)), *i)?;
            Command::OfferRejected {
                contact: ContactId(c),
                agent: AgentId(a),
            }
        }
        Op::End(i) => Command::ContactEnded {
            contact: ContactId(pick(record.connected.keys().copied(), *i)?),
        },
        Op::WrapUp(i) => Command::WrapUpDone {
            contact: ContactId(pick(record.wrapping.iter().copied(), *i)?),
            disposition: if i % 2 == 0 {
                Disposition::Resolved
            } else {
                Disposition::SignpostedTo("shelter".to_owned())
            },
        },
        Op::Abandon(i) => {
            let live: Vec<u128> = record
                .arrived
                .iter()
                .copied()
                .filter(|c| {
                    !record.finished.contains(c)
                        && !record.connected.contains_key(c)
                        && !record.wrapping.contains(c)
                })
                .collect();
            Command::ContactAbandoned {
                contact: ContactId(pick(live.into_iter(), *i)?),
            }
        }
        Op::Transfer(i, queue) => Command::Transfer {
            contact: ContactId(pick(record.connected.keys().copied(), *i)?),
            to: TransferTarget::Queue(QueueId::from(PHONE_QUEUES[*queue])),
        },
        Op::TransferToAgent(i, agent) => Command::Transfer {
            contact: ContactId(pick(record.connected.keys().copied(), *i)?),
            to: TransferTarget::Agent(AgentId(*agent)),
        },
        Op::CallbackAccept(i) => Command::CallbackAccepted {
            contact: ContactId(pick(record.callback_offered.iter().copied(), *i)?),
        },
        Op::Wait(_) => Command::Tick,
    })
}

fn super_agent() -> AgentProfile {
    AgentProfile {
        skills: SKILLS.iter().map(|s| ((*s).to_owned(), 5)).collect(),
        team: "drain".to_owned(),
        office: None,
        channels: vec![Channel::Phone, Channel::Web, Channel::FaceToFace],
        web_capacity: 3,
    }
}

/// Both engines, fed the same commands, and what the test has seen.
struct Harness {
    config: RoutingConfig,
    indexed: Engine,
    naive: Engine,
    record: Record,
}

impl Harness {
    fn step(&mut self, command: Command, now: chrono::DateTime<chrono::Utc>) -> Result<(), TestCaseError> {
        if let Command::AgentSignedIn { agent, profile } = &command
            && self
                .indexed
                .agent_status(*agent)
                .is_none_or(|s| s.presence == Presence::Offline)
        {
            self.record.profiles.insert(agent.0, profile.clone());
        }
        let from_indexed = self.indexed.handle(now, command.clone());
        let from_naive = self.naive.handle(now, command.clone());
        prop_assert_eq!(
            comparable(&from_indexed),
            comparable(&from_naive),
            "after {:?}",
            command
        );
        if let Ok(decisions) = &from_indexed {
            if let Command::ContactArrived { contact, needs, .. } = &command {
                self.record.arrived.insert(contact.0);
                self.record.needs.insert(contact.0, needs.clone());
            }
            observe(&self.config, &mut self.record, decisions)?;
        }
        let problems = self.indexed.check_invariants();
        prop_assert!(problems.is_empty(), "after {:?}: {:?}", command, problems);
        let problems = self.naive.check_invariants();
        prop_assert!(problems.is_empty(), "naive after {:?}: {:?}", command, problems);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_days_keep_every_invariant(start_hour in 0i64..14, ops in proptest::collection::vec(op(), 1..80)) {
        let config = RoutingConfig::parse(CONFIG).expect("config");
        let mut harness = Harness {
            indexed: Engine::new(config.clone()),
            naive: Engine::naive(config.clone()),
            config,
            record: Record::default(),
        };
        let mut next_contact = 0u128;
        // From 01:00 to 14:00, so some days start before the office opens.
        let mut now = at(start_hour * 3600 - 8 * 3600);

        for op in &ops {
            if let Op::Wait(seconds) = op {
                now += Duration::seconds(*seconds);
            }
            if let Some(command) = command_for(op, &mut harness.record, &mut next_contact) {
                harness.step(command, now)?;
            }
        }

        // Drain: generalists at every office, everyone available, everything
        // accepted and wrapped up, until no contact is left.
        for (index, office) in [None, Some(OFFICES[0]), Some(OFFICES[1])].into_iter().enumerate() {
            let mut profile = super_agent();
            profile.office = office.map(str::to_owned);
            harness.step(Command::AgentSignedIn { agent: AgentId(100 + index as u64), profile }, now)?;
        }
        for agent in 0..6 {
            let signed_in = harness
                .indexed
                .agent_status(AgentId(agent))
                .is_some_and(|s| s.presence != Presence::Offline);
            if signed_in {
                harness.step(Command::PresenceChanged { agent: AgentId(agent), presence: Presence::Available }, now)?;
            }
        }
        for _ in 0..200 {
            if harness.indexed.contact_count() == 0 {
                break;
            }
            // Answer every offer before the next tick, so none times out.
            let mut rounds = 0;
            while rounds < 100
                && !(harness.record.offered.is_empty()
                && harness.record.connected.is_empty()
                && harness.record.wrapping.is_empty())
            {
                rounds += 1;
                let offered: Vec<(u128, u64)> = harness.record.offered.iter().map(|(c, a)| (*c, *a)).collect();
                for (c, a) in offered {
                    harness.step(Command::OfferAccepted { contact: ContactId(c), agent: AgentId(a) }, now)?;
                }
                let connected: Vec<u128> = harness.record.connected.keys().copied().collect();
                for c in connected {
                    harness.step(Command::ContactEnded { contact: ContactId(c) }, now)?;
                }
                let wrapping: Vec<u128> = harness.record.wrapping.iter().copied().collect();
                for c in wrapping {
                    harness.step(
                        Command::WrapUpDone { contact: ContactId(c), disposition: Disposition::Resolved },
                        now,
                    )?;
                }
            }
            now += Duration::seconds(10);
            harness.step(Command::Tick, now)?;
        }
        let left: Vec<_> = harness
            .config
            .queues
            .iter()
            .flat_map(|q| harness.indexed.queue_waiting(q.id.as_str()))
            .collect();
        let agents: Vec<_> = (0..6).chain(100..103).filter_map(|a| harness.indexed.agent_status(AgentId(a))).collect();
        prop_assert_eq!(
            harness.indexed.contact_count(),
            0,
            "contacts left after draining: {:?}, offered {:?}, agents {:?}",
            left,
            harness.record.offered,
            agents
        );
        prop_assert_eq!(&harness.record.finished, &harness.record.arrived, "every contact ends");
    }
}

/// Exact priority of a contact at `now_ms`, from the config alone: points as
/// a fraction, then earlier arrival.
fn priority(config: &RoutingConfig, queue: &str, boost: i64, arrived_ms: i64, now_ms: i64) -> (i128, i128) {
    let queue = config.queue(queue).expect("queue");
    let base = i128::from(queue.priority + boost);
    match queue.ageing_seconds_per_point {
        Some(seconds) => {
            let per = i128::from(seconds) * 1000;
            (base * per + i128::from(now_ms - arrived_ms), per)
        }
        None => (base, 1),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// With one agent who can take anything, every contact it is given is
    /// the highest-priority one waiting, counting queue priority, needs and
    /// ageing.
    #[test]
    fn a_freed_agent_always_gets_the_highest_priority_contact(
        arrivals in proptest::collection::vec((0usize..PHONE_QUEUES.len(), any::<bool>(), 0i64..20), 1..40),
        frees in proptest::collection::vec(0i64..20, 1..40),
    ) {
        let config = RoutingConfig::parse(CONFIG).expect("config");
        let mut engine = Engine::new(config.clone());
        let mut now = at(0);
        let mut profile = super_agent();
        profile.channels = vec![Channel::Phone];
        let first = engine.handle(now, Command::AgentSignedIn { agent: AgentId(1), profile }).expect("sign in");
        prop_assert!(first.is_empty());
        // Waiting contacts: id -> (queue, boost, arrived ms).
        let mut waiting: BTreeMap<u128, (String, i64, i64)> = BTreeMap::new();
        let mut current: Option<u128> = None;
        let services = ["council-tax", "general-enquiry", "homelessness", "housing-repairs", "waste-collections"];
        let track = |decisions: &[Decision], waiting: &mut BTreeMap<u128, (String, i64, i64)>, now_ms: i64, current: &mut Option<u128>| -> Result<(), TestCaseError> {
            for decision in decisions {
                match decision {
                    Decision::Queued { contact, queue, .. } => {
                        if let Some(entry) = waiting.get_mut(&contact.0) {
                            entry.0 = queue.to_string();
                        }
                    }
                    Decision::Moved { contact, to, .. } => {
                        if let Some(entry) = waiting.get_mut(&contact.0) {
                            entry.0 = to.to_string();
                        }
                    }
                    Decision::Finished { contact, .. } => {
                        waiting.remove(&contact.0);
                    }
                    Decision::Offered { contact, explanation, .. } => {
                        let (_, boost, arrived) = waiting.remove(&contact.0).expect("offered contact was waiting");
                        let chosen = priority(&config, explanation.queue.as_str(), boost, arrived, now_ms);
                        for (other, (q, b, a)) in waiting.iter() {
                            let rival = priority(&config, q, *b, *a, now_ms);
                            let ahead = rival.0 * chosen.1 > chosen.0 * rival.1
                                || (rival.0 * chosen.1 == chosen.0 * rival.1 && *a < arrived);
                            prop_assert!(!ahead, "contact {} was offered while {} ranked higher", contact.0, other);
                        }
                        *current = Some(contact.0);
                    }
                    _ => {}
                }
            }
            Ok(())
        };
        for (index, (queue, vulnerable, gap)) in arrivals.iter().enumerate() {
            now += Duration::seconds(*gap);
            let id = index as u128 + 1;
            let boost = if *vulnerable { 3 } else { 0 };
            waiting.insert(id, (String::new(), boost, now.timestamp_millis()));
            let decisions = engine.handle(now, Command::ContactArrived {
                contact: ContactId(id),
                channel: Channel::Phone,
                destination: Destination::Service(services[*queue].to_owned()),
                needs: Needs { vulnerable: *vulnerable, vulnerability_consent: *vulnerable, ..Needs::default() },
                office: None,
            }).expect("arrive");
            track(&decisions, &mut waiting, now.timestamp_millis(), &mut current)?;
        }
        for gap in frees {
            let Some(contact) = current.take() else { break };
            now += Duration::seconds(gap);
            let mut decisions = engine.handle(now, Command::OfferAccepted { contact: ContactId(contact), agent: AgentId(1) }).expect("accept");
            decisions.extend(engine.handle(now, Command::ContactEnded { contact: ContactId(contact) }).expect("end"));
            decisions.extend(engine.handle(now, Command::WrapUpDone { contact: ContactId(contact), disposition: Disposition::Resolved }).expect("wrap up"));
            track(&decisions, &mut waiting, now.timestamp_millis(), &mut current)?;
        }
        prop_assert!(engine.check_invariants().is_empty());
    }
}
