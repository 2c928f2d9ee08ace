//! One scenario per routing feature, against the small config in
//! `common/mod.rs`. Each checks the decisions the engine returns and that its
//! invariants hold afterwards.

mod common;

use chrono::{Duration, TimeZone, Utc};
use common::*;
use switchboard_domain::Channel;
use switchboard_routing::explain::{Candidate, RequirementSource, Verdict};
use switchboard_routing::{
    AgentId, Command, ContactId, Decision, Destination, Disposition, MoveReason, Needs, Outcome, Presence,
    QueueId, Redirect, ReturnReason, RoutingError, TransferTarget, Trigger,
};

fn contact(id: u128) -> ContactId {
    ContactId(id)
}

fn agent(id: u64) -> AgentId {
    AgentId(id)
}

fn accept(engine: &mut switchboard_routing::Engine, time: i64, c: u128, a: u64) -> Vec<Decision> {
    run(
        engine,
        at(time),
        Command::OfferAccepted {
            contact: contact(c),
            agent: agent(a),
        },
    )
}

/// Accept, end and wrap up: the agent is free again.
fn complete(engine: &mut switchboard_routing::Engine, time: i64, c: u128, a: u64) -> Vec<Decision> {
    accept(engine, time, c, a);
    end_and_wrap_up(engine, time, c)
}

/// End a connected contact and wrap it up.
fn end_and_wrap_up(engine: &mut switchboard_routing::Engine, time: i64, c: u128) -> Vec<Decision> {
    run(engine, at(time), Command::ContactEnded { contact: contact(c) });
    run(
        engine,
        at(time),
        Command::WrapUpDone {
            contact: contact(c),
            disposition: Disposition::Resolved,
        },
    )
}

#[test]
fn bullseye_widens_after_sixty_seconds() {
    let mut engine = engine();
    // Only a learner is on: council tax at 1, below the queue's minimum of 3.
    sign_in(&mut engine, at(0), 1, profile(&[("council-tax", 1)]));
    let decisions = phone(&mut engine, at(0), 10, "council-tax");
    assert!(offers(&decisions).is_empty(), "{decisions:?}");
    // Nobody qualified is signed in, so there is no wait estimate and a
    // callback is offered straight away.
    assert!(
        matches!(
            decisions.as_slice(),
            [
                Decision::Queued {
                    position: 1,
                    estimated_wait_seconds: None,
                    ..
                },
                Decision::CallbackOffered { .. }
            ]
        ),
        "{decisions:?}"
    );

    assert!(tick(&mut engine, at(59)).is_empty());
    // The tick comes late; the step still fires at 60 s.
    let decisions = tick(&mut engine, at(75));
    assert!(
        matches!(&decisions[0], Decision::Relaxed { step: 1, queue, .. } if queue.as_str() == "ct-phone"),
        "{decisions:?}"
    );
    assert_eq!(offers(&decisions), vec![(10, 1)]);
    let explanation = explanation_of(&decisions, 10);
    assert_eq!(explanation.step, 1);
    assert_eq!(explanation.seconds_in_queue, 60);
    assert_eq!(explanation.skills[0].skill, "council-tax");
    assert_eq!(explanation.skills[0].required, 1);
    assert_eq!(explanation.skills[0].agent_has, 1);
    match &decisions[1] {
        Decision::Offered { expires_at, .. } => assert_eq!(*expires_at, at(80)),
        other => panic!("expected an offer, got {other:?}"),
    }
    assert_sound(&engine);
}

#[test]
fn later_steps_replace_the_skills_and_finally_move_the_contact() {
    let mut engine = engine();
    sign_in(&mut engine, at(0), 1, profile(&[("customer-services", 2)]));
    phone(&mut engine, at(0), 10, "council-tax");
    let decisions = tick(&mut engine, at(179));
    assert!(offers(&decisions).is_empty(), "{decisions:?}");
    let decisions = tick(&mut engine, at(180));
    assert_eq!(offers(&decisions), vec![(10, 1)]);
    assert_eq!(explanation_of(&decisions, 10).step, 2);
    assert_eq!(
        explanation_of(&decisions, 10).skills[0].skill,
        "customer-services"
    );

    // Nobody at all: after ten minutes the contact moves to general enquiries.
    let mut engine = common::engine();
    phone(&mut engine, at(0), 11, "council-tax");
    let decisions = tick(&mut engine, at(601));
    let moved = decisions.iter().find_map(|d| match d {
        Decision::Moved { from, to, reason, .. } => Some((from.as_str(), to.as_str(), *reason)),
        _ => None,
    });
    assert_eq!(moved, Some(("ct-phone", "general-phone", MoveReason::Overflow)));
    assert_eq!(
        engine.waiting_status(contact(11)).map(|s| s.queue.to_string()),
        Some("general-phone".into())
    );
    assert_sound(&engine);
}

#[test]
fn a_bsl_user_is_only_offered_to_bsl_agents() {
    let mut engine = engine();
    // The expert without BSL has been idle longer.
    sign_in(&mut engine, at(0), 1, profile(&[("council-tax", 5)]));
    sign_in(&mut engine, at(5), 2, profile(&[("council-tax", 3), ("bsl", 4)]));
    let needs = Needs {
        british_sign_language: true,
        ..Needs::default()
    };
    let decisions = arrive(
        &mut engine,
        at(10),
        10,
        Channel::Phone,
        "council-tax",
        needs.clone(),
    );
    assert_eq!(offers(&decisions), vec![(10, 2)]);
    let explanation = explanation_of(&decisions, 10);
    let bsl = explanation
        .skills
        .iter()
        .find(|s| s.skill == "bsl")
        .expect("bsl named");
    assert_eq!(
        (bsl.required, bsl.agent_has, bsl.source),
        (3, 4, RequirementSource::Need)
    );
    assert!(
        explanation.to_string().contains("bsl >= 3 (need), agent has 4"),
        "{explanation}"
    );

    // With only non-BSL agents free, a BSL user waits, however long: needs
    // are never relaxed.
    let decisions = arrive(&mut engine, at(20), 11, Channel::Phone, "council-tax", needs);
    assert!(offers(&decisions).is_empty());
    let decisions = tick(&mut engine, at(20 + 599));
    assert!(offers(&decisions).is_empty(), "{decisions:?}");
    assert_sound(&engine);
}

#[test]
fn needs_known_from_the_residents_record_apply_while_the_contact_waits() {
    let mut engine = engine();
    sign_in(&mut engine, at(0), 1, profile(&[("council-tax", 5)]));
    sign_in(&mut engine, at(1), 2, profile(&[("council-tax", 3), ("bsl", 4)]));
    // Both agents are on calls.
    assert_eq!(
        offers(&phone(&mut engine, at(2), 20, "council-tax")),
        vec![(20, 1)]
    );
    accept(&mut engine, 2, 20, 1);
    assert_eq!(
        offers(&phone(&mut engine, at(3), 21, "council-tax")),
        vec![(21, 2)]
    );
    accept(&mut engine, 3, 21, 2);
    // A resident who needs BSL rings without saying so; the case store then
    // tells routing what their record says.
    assert!(offers(&phone(&mut engine, at(10), 10, "council-tax")).is_empty());
    let bsl = Needs {
        british_sign_language: true,
        ..Needs::default()
    };
    let decisions = run(
        &mut engine,
        at(11),
        Command::NeedsKnown {
            contact: contact(10),
            needs: bsl.clone(),
        },
    );
    assert!(offers(&decisions).is_empty(), "{decisions:?}");
    assert_sound(&engine);
    // The agent without BSL comes free first, and is not offered the call.
    let decisions = end_and_wrap_up(&mut engine, 20, 20);
    assert!(offers(&decisions).is_empty(), "{decisions:?}");
    // The BSL agent is.
    let decisions = end_and_wrap_up(&mut engine, 30, 21);
    assert_eq!(offers(&decisions), vec![(10, 2)]);
    assert!(
        explanation_of(&decisions, 10)
            .skills
            .iter()
            .any(|s| s.skill == "bsl" && s.source == RequirementSource::Need)
    );
    // Once offered, what the record says changes nothing.
    let decisions = run(
        &mut engine,
        at(31),
        Command::NeedsKnown {
            contact: contact(10),
            needs: Needs::default(),
        },
    );
    assert!(decisions.is_empty(), "{decisions:?}");
    let error = engine
        .handle(
            at(32),
            Command::NeedsKnown {
                contact: contact(99),
                needs: bsl,
            },
        )
        .expect_err("unknown contact");
    assert_eq!(error, RoutingError::UnknownContact(contact(99)));
    assert_sound(&engine);
}

#[test]
fn a_visit_goes_only_to_agents_at_that_office() {
    let mut engine = engine();
    let at_office = |office: &str, channels: Vec<Channel>| {
        let mut p = profile(&[("council-tax", 4)]);
        p.office = Some(office.to_owned());
        p.channels = channels;
        p
    };
    sign_in(
        &mut engine,
        at(0),
        1,
        at_office("lymington-town-hall", vec![Channel::FaceToFace]),
    );
    // At the right office, but not working reception today.
    sign_in(
        &mut engine,
        at(1),
        2,
        at_office("appletree-court", vec![Channel::Phone]),
    );
    sign_in(
        &mut engine,
        at(2),
        3,
        at_office("appletree-court", vec![Channel::FaceToFace, Channel::Phone]),
    );
    let visit = |id: u128, office: &str| Command::ContactArrived {
        contact: contact(id),
        channel: Channel::FaceToFace,
        destination: Destination::Service("council-tax".to_owned()),
        needs: Needs::default(),
        office: Some(office.to_owned()),
    };
    let decisions = run(&mut engine, at(10), visit(10, "appletree-court"));
    assert_eq!(offers(&decisions), vec![(10, 3)]);
    let explanation = explanation_of(&decisions, 10);
    assert!(
        explanation
            .skills
            .iter()
            .any(|s| s.skill == "office:appletree-court" && s.source == RequirementSource::Office)
    );
    // A second visit there waits: the one desk agent is busy, agent 1 is elsewhere.
    let decisions = run(&mut engine, at(11), visit(11, "appletree-court"));
    assert!(offers(&decisions).is_empty(), "{decisions:?}");
    // A visit without an office is refused.
    let error = engine
        .handle(
            at(12),
            Command::ContactArrived {
                contact: contact(12),
                channel: Channel::FaceToFace,
                destination: Destination::Service("council-tax".to_owned()),
                needs: Needs::default(),
                office: None,
            },
        )
        .expect_err("no office");
    assert_eq!(error, RoutingError::MissingOffice);
    assert_sound(&engine);
}

#[test]
fn a_bank_holiday_closes_the_queue_with_its_out_of_hours_outcome() {
    let mut engine = engine();
    let good_friday = Utc.with_ymd_and_hms(2026, 4, 3, 10, 0, 0).single().expect("time");
    sign_in(
        &mut engine,
        good_friday,
        1,
        profile(&[("council-tax", 5), ("homelessness", 5)]),
    );
    let decisions = phone(&mut engine, good_friday, 10, "council-tax");
    assert_eq!(
        decisions,
        vec![Decision::Finished {
            contact: contact(10),
            outcome: Outcome::Closed {
                queue: QueueId::from("ct-phone"),
                redirect: Redirect::Message {
                    message: "ct-closed".to_owned()
                },
            },
        }]
    );
    assert!(!engine.is_open("ct-phone", good_friday));
    assert!(engine.is_open("ct-phone", good_friday + Duration::days(4)));
    let decisions = phone(&mut engine, good_friday, 11, "homelessness");
    assert!(
        matches!(&decisions[0], Decision::Finished { outcome: Outcome::Closed { redirect: Redirect::Signpost { partner }, .. }, .. } if partner == "emergency-duty-team"),
        "{decisions:?}"
    );
    // Repairs out of hours go on to the emergency line, which is open.
    sign_in(&mut engine, good_friday, 2, profile(&[("housing-repairs", 2)]));
    let decisions = phone(&mut engine, good_friday, 12, "housing-repairs");
    assert!(
        matches!(&decisions[0], Decision::Moved { to, reason: MoveReason::OutOfHours, .. } if to.as_str() == "repairs-emergency"),
        "{decisions:?}"
    );
    assert_eq!(offers(&decisions), vec![(12, 2)]);
    // Evenings close it too (18:30 UK time in summer is 17:30 UTC).
    let evening = Utc
        .with_ymd_and_hms(2026, 7, 1, 17, 30, 0)
        .single()
        .expect("time");
    assert!(!engine.is_open("ct-phone", evening));
    assert!(engine.is_open("ct-phone", evening - Duration::hours(1)));
    assert_sound(&engine);
}

#[test]
fn an_offer_that_times_out_returns_to_the_front_and_marks_the_agent_missed() {
    let mut engine = engine();
    sign_in(&mut engine, at(0), 1, profile(&[("council-tax", 4)]));
    assert_eq!(
        offers(&phone(&mut engine, at(1), 10, "council-tax")),
        vec![(10, 1)]
    );
    phone(&mut engine, at(2), 11, "council-tax");
    assert_eq!(engine.waiting_status(contact(11)).map(|s| s.position), Some(1));

    let decisions = tick(&mut engine, at(30));
    assert!(decisions.contains(&Decision::OfferReturned {
        contact: contact(10),
        agent: agent(1),
        reason: ReturnReason::TimedOut,
    }));
    assert!(decisions.contains(&Decision::AgentMissed {
        agent: agent(1),
        missed_offers: 1
    }));
    assert_eq!(engine.waiting_status(contact(10)).map(|s| s.position), Some(1));
    assert_eq!(engine.waiting_status(contact(11)).map(|s| s.position), Some(2));
    assert_eq!(
        engine.agent_status(agent(1)).map(|s| s.presence),
        Some(Presence::Missed)
    );

    // The next agent gets the returned contact first, though it arrived first anyway
    // and 11 is otherwise equal: front beats everything.
    let decisions = sign_in(&mut engine, at(31), 2, profile(&[("council-tax", 4)]));
    assert_eq!(offers(&decisions), vec![(10, 2)]);
    assert!(explanation_of(&decisions, 10).priority.at_front);
    // The missed agent takes work again once available.
    let decisions = run(
        &mut engine,
        at(40),
        Command::PresenceChanged {
            agent: agent(1),
            presence: Presence::Available,
        },
    );
    assert_eq!(offers(&decisions), vec![(11, 1)]);
    assert_sound(&engine);
}

#[test]
fn a_rejected_offer_goes_back_to_the_front_and_not_to_the_same_agent() {
    let mut engine = engine();
    sign_in(&mut engine, at(0), 1, profile(&[("council-tax", 4)]));
    phone(&mut engine, at(1), 10, "council-tax");
    // A higher-priority contact arrives later (vulnerable).
    let vulnerable = Needs {
        vulnerable: true,
        vulnerability_consent: true,
        ..Needs::default()
    };
    arrive(&mut engine, at(2), 11, Channel::Phone, "council-tax", vulnerable);
    let decisions = run(
        &mut engine,
        at(3),
        Command::OfferRejected {
            contact: contact(10),
            agent: agent(1),
        },
    );
    assert_eq!(
        decisions[0],
        Decision::OfferReturned {
            contact: contact(10),
            agent: agent(1),
            reason: ReturnReason::Rejected
        }
    );
    // Back at the front, ahead of the vulnerable contact...
    assert!(
        decisions
            .iter()
            .any(|d| matches!(d, Decision::Queued { contact: c, position: 1, .. } if *c == contact(10)))
    );
    // ...but the agent who rejected it is offered the next one instead.
    assert_eq!(offers(&decisions), vec![(11, 1)]);
    let decisions = sign_in(&mut engine, at(4), 2, profile(&[("council-tax", 3)]));
    assert_eq!(offers(&decisions), vec![(10, 2)]);
    // Rejecting what is not offered to you is refused, and changes nothing.
    let error = engine
        .handle(
            at(5),
            Command::OfferRejected {
                contact: contact(10),
                agent: agent(1),
            },
        )
        .expect_err("not offered to agent 1");
    assert!(matches!(error, RoutingError::NotOffered { .. }));
    assert_sound(&engine);
}

#[test]
fn transfer_to_a_queue() {
    let mut engine = engine();
    sign_in(&mut engine, at(0), 1, profile(&[("council-tax", 4)]));
    sign_in(&mut engine, at(0), 2, profile(&[("housing-repairs", 3)]));
    phone(&mut engine, at(1), 10, "council-tax");
    accept(&mut engine, 2, 10, 1);
    let decisions = run(
        &mut engine,
        at(60),
        Command::Transfer {
            contact: contact(10),
            to: TransferTarget::Queue(QueueId::from("repairs-phone")),
        },
    );
    assert!(
        matches!(&decisions[0], Decision::Moved { from, to, reason: MoveReason::Transfer, .. } if from.as_str() == "ct-phone" && to.as_str() == "repairs-phone"),
        "{decisions:?}"
    );
    assert_eq!(offers(&decisions), vec![(10, 2)]);
    assert_eq!(
        engine.agent_status(agent(1)).map(|s| s.presence),
        Some(Presence::Available)
    );
    // A queue on another channel is refused.
    let error = engine
        .handle(
            at(61),
            Command::Transfer {
                contact: contact(10),
                to: TransferTarget::Queue(QueueId::from("ct-web")),
            },
        )
        .expect_err("wrong state and channel");
    assert!(matches!(error, RoutingError::WrongState { .. }), "{error}");
    assert_sound(&engine);
}

#[test]
fn transfer_to_a_named_agent_waits_for_them_then_falls_back() {
    let mut engine = engine();
    sign_in(&mut engine, at(0), 1, profile(&[("council-tax", 4)]));
    sign_in(&mut engine, at(0), 2, profile(&[("council-tax", 5)]));
    phone(&mut engine, at(1), 10, "council-tax");
    phone(&mut engine, at(1), 11, "council-tax");
    accept(&mut engine, 2, 10, 2);
    accept(&mut engine, 2, 11, 1);
    // Agent 2 passes contact 10 to agent 1, who is on another call.
    let decisions = run(
        &mut engine,
        at(30),
        Command::Transfer {
            contact: contact(10),
            to: TransferTarget::Agent(agent(1)),
        },
    );
    assert!(offers(&decisions).is_empty(), "{decisions:?}");
    let status = engine.waiting_status(contact(10)).expect("waiting");
    assert_eq!(status.for_agent, Some(agent(1)));
    // Agent 2 is free but the contact waits for agent 1.
    assert_eq!(
        engine.agent_status(agent(2)).map(|s| s.presence),
        Some(Presence::Available)
    );
    let decisions = end_and_wrap_up(&mut engine, 40, 11);
    assert_eq!(offers(&decisions), vec![(10, 1)]);
    assert!(explanation_of(&decisions, 10).named_agent);

    // If the named agent never frees up, the contact returns to its queue.
    let decisions = run(
        &mut engine,
        at(45),
        Command::OfferRejected {
            contact: contact(10),
            agent: agent(1),
        },
    );
    assert!(
        decisions.iter().any(|d| matches!(
            d,
            Decision::Moved {
                reason: MoveReason::NamedAgentTimeout,
                ..
            }
        )),
        "{decisions:?}"
    );
    assert_eq!(offers(&decisions), vec![(10, 2)]);
    assert_sound(&engine);

    let mut engine = common::engine();
    sign_in(&mut engine, at(0), 1, profile(&[("council-tax", 4)]));
    phone(&mut engine, at(1), 10, "council-tax");
    accept(&mut engine, 2, 10, 1);
    sign_in(&mut engine, at(3), 3, profile(&[("customer-services", 4)]));
    run(
        &mut engine,
        at(3),
        Command::PresenceChanged {
            agent: agent(3),
            presence: Presence::Break,
        },
    );
    run(
        &mut engine,
        at(5),
        Command::Transfer {
            contact: contact(10),
            to: TransferTarget::Agent(agent(3)),
        },
    );
    assert!(tick(&mut engine, at(64)).is_empty());
    let decisions = tick(&mut engine, at(66));
    assert!(
        matches!(&decisions[0], Decision::Moved { reason: MoveReason::NamedAgentTimeout, to, .. } if to.as_str() == "ct-phone"),
        "{decisions:?}"
    );
    assert_eq!(offers(&decisions), vec![(10, 1)]);
    assert_sound(&engine);
}

#[test]
fn a_callback_is_offered_when_the_wait_is_too_long() {
    let mut engine = engine();
    // One agent, 300 s handle time: the third in line waits about 900 s.
    sign_in(&mut engine, at(0), 1, profile(&[("council-tax", 4)]));
    phone(&mut engine, at(1), 10, "council-tax");
    let decisions = phone(&mut engine, at(2), 11, "council-tax");
    assert!(matches!(
        decisions.as_slice(),
        [Decision::Queued {
            position: 1,
            estimated_wait_seconds: Some(300),
            ..
        }]
    ));
    phone(&mut engine, at(3), 12, "council-tax");
    let decisions = phone(&mut engine, at(4), 13, "council-tax");
    assert!(
        matches!(
            decisions.as_slice(),
            [
                Decision::Queued { position: 3, estimated_wait_seconds: Some(900), .. },
                Decision::CallbackOffered { callback_queue, .. },
            ] if callback_queue.as_str() == "ct-callbacks"
        ),
        "{decisions:?}"
    );
    let decisions = run(
        &mut engine,
        at(20),
        Command::CallbackAccepted { contact: contact(13) },
    );
    assert!(
        matches!(&decisions[0], Decision::Moved { to, reason: MoveReason::CallbackAccepted, .. } if to.as_str() == "ct-callbacks")
    );
    // Callbacks not offered cannot be accepted.
    let error = engine
        .handle(at(21), Command::CallbackAccepted { contact: contact(11) })
        .expect_err("no callback offered");
    assert!(matches!(error, RoutingError::WrongState { .. }));
    assert_sound(&engine);
}

#[test]
fn a_full_queue_offers_a_callback_or_signposts() {
    let mut engine = engine();
    for id in 0..6 {
        phone(&mut engine, at(id), 10 + id as u128, "council-tax");
    }
    let decisions = phone(&mut engine, at(7), 20, "council-tax");
    assert!(
        matches!(&decisions[0], Decision::Moved { to, reason: MoveReason::QueueFull, .. } if to.as_str() == "ct-callbacks"),
        "{decisions:?}"
    );
    for id in 0..3 {
        phone(&mut engine, at(10 + id), 30 + id as u128, "homelessness");
    }
    let decisions = phone(&mut engine, at(14), 40, "homelessness");
    assert_eq!(
        decisions,
        vec![Decision::Finished {
            contact: contact(40),
            outcome: Outcome::Overflowed {
                queue: QueueId::from("homeless-phone"),
                redirect: Redirect::Signpost {
                    partner: "shelter".to_owned()
                },
            },
        }]
    );
    assert_sound(&engine);
}

#[test]
fn equally_good_agents_take_turns_longest_idle_first() {
    let mut engine = engine();
    sign_in(&mut engine, at(0), 1, profile(&[("council-tax", 3)]));
    sign_in(&mut engine, at(1), 2, profile(&[("council-tax", 3)]));
    sign_in(&mut engine, at(2), 3, profile(&[("council-tax", 3)]));
    let decisions = phone(&mut engine, at(10), 10, "council-tax");
    assert_eq!(offers(&decisions), vec![(10, 1)]);
    let explanation = explanation_of(&decisions, 10);
    assert_eq!(explanation.agent_idle_seconds, 10);
    assert_eq!(explanation.trigger, Trigger::ContactReady);
    complete(&mut engine, 20, 10, 1);
    // Agent 1 just finished; 2 has been idle longest.
    assert_eq!(
        offers(&phone(&mut engine, at(30), 11, "council-tax")),
        vec![(11, 2)]
    );
    assert_eq!(
        offers(&phone(&mut engine, at(31), 12, "council-tax")),
        vec![(12, 3)]
    );
    assert_eq!(
        offers(&phone(&mut engine, at(32), 13, "council-tax")),
        vec![(13, 1)]
    );

    // Proficiency in the primary skill comes before idle time.
    let mut engine = common::engine();
    sign_in(&mut engine, at(0), 1, profile(&[("council-tax", 3)]));
    sign_in(&mut engine, at(50), 2, profile(&[("council-tax", 5)]));
    assert_eq!(
        offers(&phone(&mut engine, at(60), 10, "council-tax")),
        vec![(10, 2)]
    );
    assert_sound(&engine);
}

#[test]
fn web_contacts_share_capacity_and_calls_are_exclusive() {
    let mut engine = engine();
    sign_in(&mut engine, at(0), 1, profile(&[("council-tax", 3)]));
    let web = |engine: &mut switchboard_routing::Engine, id: u128| {
        arrive(
            engine,
            at(id as i64),
            id,
            Channel::Web,
            "council-tax",
            Needs::default(),
        )
    };
    assert_eq!(offers(&web(&mut engine, 10)), vec![(10, 1)]);
    assert_eq!(offers(&web(&mut engine, 11)), vec![(11, 1)]);
    assert_eq!(offers(&web(&mut engine, 12)), vec![(12, 1)]);
    // Capacity 3: the fourth waits.
    assert!(offers(&web(&mut engine, 13)).is_empty());
    // A call never goes to an agent holding written work.
    assert!(offers(&phone(&mut engine, at(20), 20, "council-tax")).is_empty());
    assert_eq!(engine.agent_status(agent(1)).map(|s| s.contacts.len()), Some(3));
    // Finishing one web contact frees one slot: the waiting form, not the
    // call, which still needs the agent's whole attention.
    let decisions = complete(&mut engine, 30, 10, 1);
    assert_eq!(offers(&decisions), vec![(13, 1)]);
    assert_sound(&engine);

    // And an agent on a call takes no web contacts.
    let mut engine = common::engine();
    sign_in(&mut engine, at(0), 1, profile(&[("council-tax", 3)]));
    assert_eq!(
        offers(&phone(&mut engine, at(1), 10, "council-tax")),
        vec![(10, 1)]
    );
    assert!(offers(&web(&mut engine, 11)).is_empty());
    let decisions = complete(&mut engine, 30, 10, 1);
    assert_eq!(offers(&decisions), vec![(11, 1)]);
    assert_sound(&engine);
}

#[test]
fn vulnerability_raises_priority_and_can_require_a_skill() {
    let mut engine = engine();
    sign_in(&mut engine, at(0), 1, profile(&[("council-tax", 4)]));
    phone(&mut engine, at(1), 10, "council-tax");
    phone(&mut engine, at(2), 11, "council-tax");
    let vulnerable = Needs {
        vulnerable: true,
        vulnerability_consent: true,
        ..Needs::default()
    };
    arrive(
        &mut engine,
        at(3),
        12,
        Channel::Phone,
        "council-tax",
        vulnerable.clone(),
    );
    assert_eq!(engine.waiting_status(contact(12)).map(|s| s.position), Some(1));
    let decisions = complete(&mut engine, 60, 10, 1);
    assert_eq!(offers(&decisions), vec![(12, 1)]);
    let explanation = explanation_of(&decisions, 12);
    assert_eq!(explanation.trigger, Trigger::AgentReady);
    assert_eq!(explanation.priority.needs_boost, 3);
    assert_eq!(explanation.priority.queue_priority, 5);

    // In homelessness a vulnerable resident also needs safeguarding.
    let mut engine = common::engine();
    sign_in(&mut engine, at(0), 1, profile(&[("homelessness", 5)]));
    let decisions = arrive(&mut engine, at(1), 20, Channel::Phone, "homelessness", vulnerable);
    assert!(offers(&decisions).is_empty());
    let decisions = sign_in(
        &mut engine,
        at(2),
        2,
        profile(&[("homelessness", 3), ("safeguarding", 3)]),
    );
    assert_eq!(offers(&decisions), vec![(20, 2)]);
    assert!(
        explanation_of(&decisions, 20)
            .skills
            .iter()
            .any(|s| s.skill == "safeguarding")
    );
    assert_sound(&engine);
}

#[test]
fn ageing_lets_a_long_wait_overtake_a_higher_priority() {
    let mut engine = engine();
    sign_in(
        &mut engine,
        at(0),
        1,
        profile(&[("council-tax", 4), ("waste", 4)]),
    );
    phone(&mut engine, at(0), 1, "council-tax");
    // Waste has priority 1 but gains a point every 10 s; council tax has 5
    // and gains one every 120 s.
    phone(&mut engine, at(1), 10, "waste-collections");
    phone(&mut engine, at(40), 11, "council-tax");
    // At 41 s: waste 1 + 4.0 = 5.0, council tax 5 + ~0.008: council tax first.
    let decisions = complete(&mut engine, 41, 1, 1);
    assert_eq!(offers(&decisions), vec![(11, 1)]);
    phone(&mut engine, at(42), 12, "council-tax");
    // At 100 s: waste 1 + 9.9 = 10.9 beats council tax 5 + 0.48.
    let decisions = complete(&mut engine, 100, 11, 1);
    assert_eq!(offers(&decisions), vec![(10, 1)]);
    assert_sound(&engine);
}

#[test]
fn explanations_name_the_reason_and_the_candidates() {
    let mut engine = engine();
    sign_in(&mut engine, at(0), 1, profile(&[("council-tax", 4)]));
    sign_in(&mut engine, at(0), 4, profile(&[("council-tax", 5)]));
    sign_in(
        &mut engine,
        at(1),
        2,
        profile(&[("council-tax", 2), ("language-pl", 5)]),
    );
    sign_in(
        &mut engine,
        at(2),
        3,
        profile(&[("council-tax", 3), ("language-pl", 4)]),
    );
    let needs = Needs {
        language: Some("pl".to_owned()),
        ..Needs::default()
    };
    let decisions = arrive(&mut engine, at(10), 10, Channel::Phone, "council-tax", needs);
    assert_eq!(offers(&decisions), vec![(10, 3)]);
    let explanation = explanation_of(&decisions, 10);
    assert_eq!(explanation.step, 0);
    assert_eq!(explanation.agent_idle_seconds, 8);
    let polish = explanation
        .skills
        .iter()
        .find(|s| s.skill == "language-pl")
        .expect("language");
    assert_eq!((polish.required, polish.agent_has), (3, 4));
    // Polish speakers are fewer than council tax agents, so the engine
    // looked only at them; agent 2 was passed over for council tax.
    assert_eq!(explanation.candidates_examined, 2);
    assert!(
        explanation.candidates.iter().any(|c| matches!(
            c,
            Candidate::Agent { agent, verdict: Verdict::LacksSkill { skill, required: 3, has: 2 }, .. }
                if *agent == AgentId(2) && skill == "council-tax"
        )),
        "{:?}",
        explanation.candidates
    );
    assert!(explanation.candidates.iter().any(|c| matches!(
        c,
        Candidate::Agent { agent, verdict: Verdict::Chosen, .. } if *agent == AgentId(3)
    )));
    let text = explanation.to_string();
    for part in [
        "council-tax >= 3 (queue), agent has 3",
        "language-pl >= 3 (need), agent has 4",
        "idle 8 s",
    ] {
        assert!(text.contains(part), "{text}");
    }
}

#[test]
fn wrap_up_records_the_disposition() {
    let mut engine = engine();
    sign_in(&mut engine, at(0), 1, profile(&[("homelessness", 4)]));
    phone(&mut engine, at(1), 10, "homelessness");
    let decisions = accept(&mut engine, 5, 10, 1);
    assert_eq!(
        decisions,
        vec![Decision::Assigned {
            contact: contact(10),
            agent: agent(1),
            waited_seconds: 4,
            within_target: true,
        }]
    );
    let decisions = run(
        &mut engine,
        at(300),
        Command::ContactEnded { contact: contact(10) },
    );
    assert_eq!(
        decisions,
        vec![Decision::WrapUpStarted {
            contact: contact(10),
            agent: agent(1)
        }]
    );
    assert_eq!(
        engine.agent_status(agent(1)).map(|s| s.presence),
        Some(Presence::WrapUp)
    );
    let error = engine
        .handle(
            at(320),
            Command::WrapUpDone {
                contact: contact(10),
                disposition: Disposition::SignpostedTo("nobody".to_owned()),
            },
        )
        .expect_err("unknown partner");
    assert_eq!(error, RoutingError::UnknownPartner("nobody".to_owned()));
    let decisions = run(
        &mut engine,
        at(330),
        Command::WrapUpDone {
            contact: contact(10),
            disposition: Disposition::SignpostedTo("shelter".to_owned()),
        },
    );
    assert_eq!(
        decisions,
        vec![Decision::Finished {
            contact: contact(10),
            outcome: Outcome::Completed {
                agent: agent(1),
                disposition: Disposition::SignpostedTo("shelter".to_owned()),
            },
        }]
    );
    assert_eq!(engine.contact_count(), 0);
    assert_eq!(
        engine.agent_status(agent(1)).map(|s| s.presence),
        Some(Presence::Available)
    );
}

#[test]
fn abandoning_frees_the_offer_and_positions_close_up() {
    let mut engine = engine();
    sign_in(&mut engine, at(0), 1, profile(&[("council-tax", 4)]));
    phone(&mut engine, at(1), 10, "council-tax");
    phone(&mut engine, at(2), 11, "council-tax");
    phone(&mut engine, at(3), 12, "council-tax");
    assert_eq!(engine.waiting_status(contact(12)).map(|s| s.position), Some(2));
    let decisions = run(
        &mut engine,
        at(10),
        Command::ContactAbandoned { contact: contact(11) },
    );
    assert_eq!(
        decisions,
        vec![Decision::Finished {
            contact: contact(11),
            outcome: Outcome::Abandoned { waited_seconds: 8 },
        }]
    );
    assert_eq!(engine.waiting_status(contact(12)).map(|s| s.position), Some(1));
    // The caller on offer hangs up: the agent gets the next one.
    let decisions = run(
        &mut engine,
        at(11),
        Command::ContactAbandoned { contact: contact(10) },
    );
    assert_eq!(offers(&decisions), vec![(12, 1)]);
    let listed: Vec<_> = engine.queue_waiting("ct-phone");
    assert!(listed.is_empty());
    assert_sound(&engine);
}

#[test]
fn refused_commands_change_nothing() {
    let mut engine = engine();
    sign_in(&mut engine, at(0), 1, profile(&[("council-tax", 4)]));
    phone(&mut engine, at(1), 10, "council-tax");
    let before = format!("{:?}", engine.agent_status(agent(1)));
    let cases = [
        Command::ContactArrived {
            contact: contact(10),
            channel: Channel::Phone,
            destination: Destination::Service("council-tax".to_owned()),
            needs: Needs::default(),
            office: None,
        },
        Command::OfferAccepted {
            contact: contact(10),
            agent: agent(9),
        },
        Command::AgentSignedOut { agent: agent(1) },
        Command::PresenceChanged {
            agent: agent(1),
            presence: Presence::WrapUp,
        },
        Command::ContactEnded { contact: contact(10) },
        Command::ContactArrived {
            contact: contact(11),
            channel: Channel::Phone,
            destination: Destination::Queue(QueueId::from("nowhere")),
            needs: Needs::default(),
            office: None,
        },
    ];
    for command in cases {
        let debug = format!("{command:?}");
        assert!(
            engine.handle(at(2), command).is_err(),
            "{debug} should be refused"
        );
    }
    assert_eq!(format!("{:?}", engine.agent_status(agent(1))), before);
    assert_eq!(engine.contact_count(), 1);
    assert_sound(&engine);
}
