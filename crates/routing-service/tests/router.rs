//! The router over a real store (SQLite, as in the embedded mode): what a
//! standby rebuilds from the journal is what the active router had, a
//! previous owner is fenced off, redelivered events are not applied twice,
//! and configuration changes are validated, applied and survive a take-over.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use switchboard_domain::{Channel, Needs};
use switchboard_routing::{ContactId, ContactStage, Presence, RoutingConfig};
use switchboard_routing_service::router::{AgentAction, Applied, ContactView, Inbound, LiveView};
use switchboard_routing_service::{
    ContactInfo, Router, RouterError, RouterSettings, RoutingStore, SqliteRoutingStore, StoredProfile,
};
use tokio::sync::Notify;
use uuid::Uuid;

/// The built-in configuration with every queue open at all hours.
fn always_open() -> String {
    RoutingConfig::embedded_toml()
        .replace("hours = \"contact-centre\"", "hours = \"always\"")
        .replace("hours = \"reception\"", "hours = \"always\"")
}

fn router(store: &Arc<dyn RoutingStore>, owner: &str) -> Arc<Router> {
    Router::new(
        RouterSettings {
            partition: "default".to_owned(),
            owner: owner.to_owned(),
            config_toml: always_open(),
            config_check: Arc::new(|_| Ok(())),
        },
        Arc::clone(store),
        Arc::new(Notify::new()),
    )
}

async fn store() -> (Arc<dyn RoutingStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("data dir");
    let store = SqliteRoutingStore::open(dir.path()).await.expect("store");
    (Arc::new(store), dir)
}

fn profile(skills: &[(&str, u8)]) -> StoredProfile {
    StoredProfile {
        skills: skills
            .iter()
            .map(|(skill, level)| ((*skill).to_owned(), *level))
            .collect::<BTreeMap<_, _>>(),
        team: "revenues".to_owned(),
        office: None,
        channels: vec![Channel::Phone],
        web_capacity: 0,
        partition: None,
    }
}

fn call(number: u128, bsl: bool) -> Inbound {
    let contact = ContactId(number);
    Inbound::Contact {
        event_id: Uuid::now_v7(),
        info: ContactInfo {
            contact,
            reference: format!("SB-TEST-{number:05}"),
            service: "council-tax".to_owned(),
            channel: Channel::Phone,
            needs: Needs {
                british_sign_language: bsl,
                ..Needs::default()
            },
            received_at: Utc::now(),
            case_reference: None,
            case_contact_count: 0,
            callback_queue: None,
            queue: None,
        },
        office: None,
    }
}

/// A contact's stage, queue, position and agent.
type ContactEssentials = (ContactId, Option<ContactStage>, String, u32, Option<String>);
/// An agent's presence and contacts.
type AgentEssentials = (String, Presence, Vec<ContactId>);

/// What must survive a take-over: each contact's stage, queue, position
/// and agent, and each agent's presence and contacts.
fn essentials(live: &LiveView) -> (Vec<ContactEssentials>, Vec<AgentEssentials>) {
    let contacts = live
        .contacts
        .iter()
        .map(|view: &ContactView| {
            (
                view.info.contact,
                view.stage,
                view.queue.clone(),
                view.position,
                view.agent.clone(),
            )
        })
        .collect();
    let agents = live
        .agents
        .iter()
        .map(|agent| (agent.subject.clone(), agent.presence, agent.contacts.clone()))
        .collect();
    (contacts, agents)
}

#[tokio::test]
async fn a_standby_rebuilds_exactly_what_the_active_router_had_and_fences_it_off() {
    let (store, _dir) = store().await;
    let first = router(&store, "first");
    first.take_over().await.expect("first takes over");
    first
        .put_profile("ann", &profile(&[("council-tax", 4)]))
        .await
        .expect("profile");
    first
        .put_profile("bea", &profile(&[("council-tax", 3), ("bsl", 4)]))
        .await
        .expect("profile");
    for agent in ["ann", "bea"] {
        first
            .agent_action(agent, AgentAction::SignIn)
            .await
            .expect("sign in");
    }
    // Five calls for two agents: two offered, then one accepted; three wait.
    let calls: Vec<Inbound> = (1..=5).map(|n| call(n, n == 5)).collect();
    let applied = first.apply_events(calls.clone()).await.expect("applied");
    assert!(
        applied.iter().all(|outcome| *outcome == Applied::Applied),
        "{applied:?}"
    );
    let offered: Vec<ContactView> = first
        .live()
        .await
        .expect("live")
        .contacts
        .into_iter()
        .filter(|view| view.stage == Some(ContactStage::Offered))
        .collect();
    assert_eq!(offered.len(), 2, "one offer per available agent");
    let accepted = &offered[0];
    let holder = accepted.agent.clone().expect("offered to someone");
    first
        .agent_action(&holder, AgentAction::Accept(accepted.info.contact))
        .await
        .expect("accept");
    let before = first.live().await.expect("live");

    // The same events delivered again change nothing.
    let again = first.apply_events(calls).await.expect("redelivered");
    assert!(
        again.iter().all(|outcome| *outcome == Applied::Duplicate),
        "{again:?}"
    );
    assert_eq!(
        essentials(&first.live().await.expect("live")),
        essentials(&before)
    );

    let second = router(&store, "second");
    assert!(matches!(second.live().await, Err(RouterError::NotActive { .. })));
    second.take_over().await.expect("second takes over");
    let after = second.live().await.expect("live");
    assert_eq!(essentials(&after), essentials(&before));
    assert_eq!(after.contacts.len(), 5);

    // The first router, still running, is refused its next write and stands by.
    let error = first
        .agent_action("ann", AgentAction::SetPresence(Presence::Break))
        .await
        .expect_err("fenced");
    assert!(matches!(error, RouterError::Fenced { .. }), "{error:?}");
    assert!(!first.is_active());
    // And the new owner carries on where the old one stopped.
    second
        .agent_action(&holder, AgentAction::End(accepted.info.contact))
        .await
        .expect("end on the new owner");
}

#[tokio::test]
async fn configuration_changes_are_validated_applied_and_kept_across_a_take_over() {
    let (store, _dir) = store().await;
    let first = router(&store, "first");
    first.take_over().await.expect("take over");

    let error = first
        .reconfigure("[engine]\nnamed_agent_wait_seconds = \"soon\"\n")
        .await
        .expect_err("invalid");
    assert!(error.to_string().contains("named_agent_wait_seconds"), "{error}");
    assert_eq!(
        first.config_toml().await,
        always_open(),
        "the configuration in force stays"
    );

    let changed = always_open().replace("offer_timeout_seconds = 20", "offer_timeout_seconds = 25");
    assert_ne!(changed, always_open());
    first.reconfigure(&changed).await.expect("valid change");
    assert_eq!(first.config_toml().await, changed);

    // While a contact is being routed, the queues may not change...
    first
        .put_profile("ann", &profile(&[("council-tax", 4)]))
        .await
        .expect("profile");
    first
        .apply_events(vec![call(9, false)])
        .await
        .expect("a call waits");
    let with_another_queue = format!(
        "{changed}\n[queues.extra-web]\nname = \"Extra\"\nservices = []\nchannel = \"web\"\n\
         skills = [{{ skill = \"council-tax\", min_proficiency = 1 }}]\npriority = 1\nhours = \"always\"\n\
         sla = {{ answered_percent = 80, within_working_days = 5 }}\nexpected_handle_seconds = 600\n\
         offer_timeout_seconds = 60\nout_of_hours = {{ action = \"message\", message = \"form-received\" }}\n"
    );
    RoutingConfig::parse(&with_another_queue).expect("a valid configuration with one more queue");
    let error = first
        .reconfigure(&with_another_queue)
        .await
        .expect_err("queues differ");
    assert!(error.to_string().contains("queues"), "{error}");
    assert_eq!(first.config_toml().await, changed);

    // ...and a standby replays the change.
    let second = router(&store, "second");
    second.take_over().await.expect("take over");
    assert_eq!(second.config_toml().await, changed);
    assert_eq!(second.live().await.expect("live").contacts.len(), 1);
}

#[tokio::test]
async fn agents_need_a_profile_and_act_only_on_their_own_contacts() {
    let (store, _dir) = store().await;
    let router = router(&store, "only");
    router.take_over().await.expect("take over");

    let error = router
        .agent_action("nobody", AgentAction::SignIn)
        .await
        .expect_err("no profile");
    assert!(matches!(error, RouterError::FailedPrecondition(_)), "{error:?}");
    assert!(error.to_string().contains("PutAgentProfile"), "{error}");

    let mut bad = profile(&[("council-tax", 6)]);
    let error = router.put_profile("ann", &bad).await.expect_err("proficiency 6");
    assert!(
        matches!(
            error,
            RouterError::InvalidArgument {
                field: "profile.skills",
                ..
            }
        ),
        "{error:?}"
    );
    bad = profile(&[("council-tax", 4)]);
    bad.channels = vec![Channel::Web];
    let error = router
        .put_profile("ann", &bad)
        .await
        .expect_err("web without capacity");
    assert!(
        matches!(
            error,
            RouterError::InvalidArgument {
                field: "profile.web_capacity",
                ..
            }
        ),
        "{error:?}"
    );

    for agent in ["ann", "bob"] {
        router
            .put_profile(agent, &profile(&[("council-tax", 4)]))
            .await
            .expect("profile");
    }
    router
        .agent_action("ann", AgentAction::SignIn)
        .await
        .expect("ann signs in");
    router.apply_events(vec![call(1, false)]).await.expect("a call");
    router
        .agent_action("bob", AgentAction::SignIn)
        .await
        .expect("bob signs in");
    let contact = ContactId(1);
    assert_eq!(
        router.contact(contact).await.expect("known").agent.as_deref(),
        Some("ann")
    );
    let error = router
        .agent_action("bob", AgentAction::Accept(contact))
        .await
        .expect_err("not bob's offer");
    assert!(matches!(error, RouterError::Routing(_)), "{error:?}");
    router
        .agent_action("ann", AgentAction::Accept(contact))
        .await
        .expect("ann accepts");
    let error = router
        .agent_action("bob", AgentAction::End(contact))
        .await
        .expect_err("not bob's contact");
    assert!(matches!(error, RouterError::FailedPrecondition(_)), "{error:?}");
}

#[tokio::test]
async fn a_long_journal_is_rebased_at_a_quiet_moment_and_still_replays() {
    let (store, _dir) = store().await;
    let first = router(&store, "first");
    first.take_over().await.expect("take over");
    first
        .put_profile("ann", &profile(&[("council-tax", 4)]))
        .await
        .expect("profile");
    first
        .put_profile("bob", &profile(&[("council-tax", 2)]))
        .await
        .expect("profile");
    first
        .agent_action("ann", AgentAction::SignIn)
        .await
        .expect("sign in");
    first
        .agent_action("bob", AgentAction::SignIn)
        .await
        .expect("sign in");
    // Enough journal entries to call for a base; the partition routes no
    // contact meanwhile, so it may rebase at any of them.
    let entries = switchboard_routing_service::router::COMPACT_AFTER_ENTRIES as usize;
    for turn in 0..entries {
        let presence = if turn % 2 == 0 {
            Presence::Break
        } else {
            Presence::Available
        };
        first
            .agent_action("bob", AgentAction::SetPresence(presence))
            .await
            .expect("presence");
    }
    let journal = store.journal("default").await.expect("journal");
    assert!(
        journal.len() < entries / 2,
        "the journal was rebased: {} entries left",
        journal.len()
    );
    assert!(journal[0].is_base, "a replay starts at the base");
    let before = first.live().await.expect("live");

    let second = router(&store, "second");
    second.take_over().await.expect("take over");
    let after = second.live().await.expect("live");
    assert_eq!(essentials(&after), essentials(&before));
    // Both are still signed in and available (the last turn set bob
    // available), and a new call goes to the more proficient.
    second.apply_events(vec![call(1, false)]).await.expect("a call");
    let view = second.contact(ContactId(1)).await.expect("routed");
    assert_eq!(view.stage, Some(ContactStage::Offered));
    assert_eq!(view.agent.as_deref(), Some("ann"), "{view:?}");
}

#[tokio::test]
async fn a_partition_routes_only_its_own_contacts_and_agents() {
    let (store, _dir) = store().await;
    let partitioned = always_open().replacen(
        "[queues.council-tax-web]\n",
        "[queues.council-tax-web]\npartition = \"revenues\"\n",
        1,
    );
    let partition_router = |partition: &str| {
        Router::new(
            RouterSettings {
                partition: partition.to_owned(),
                owner: "only".to_owned(),
                config_toml: partitioned.clone(),
                config_check: Arc::new(|_| Ok(())),
            },
            Arc::clone(&store),
            Arc::new(Notify::new()),
        )
    };
    let default = partition_router("default");
    let revenues = partition_router("revenues");
    default.take_over().await.expect("take over");
    revenues.take_over().await.expect("take over");

    let mut web = profile(&[("council-tax", 4)]);
    web.channels = vec![Channel::Web];
    web.web_capacity = 2;
    web.partition = Some("revenues".to_owned());
    revenues.put_profile("wendy", &web).await.expect("profile");
    let error = default
        .agent_action("wendy", AgentAction::SignIn)
        .await
        .expect_err("another partition's agent");
    assert!(error.to_string().contains("partition revenues"), "{error}");
    revenues
        .agent_action("wendy", AgentAction::SignIn)
        .await
        .expect("signs in");

    // A web form about council tax is the revenues partition's; a call is
    // the default partition's. Each router takes its own and acks the other.
    let Inbound::Contact {
        event_id,
        mut info,
        office,
    } = call(7, false)
    else {
        unreachable!("call() makes a contact");
    };
    info.channel = Channel::Web;
    let form = Inbound::Contact {
        event_id,
        info,
        office,
    };
    let phone = call(8, false);
    for router in [&default, &revenues] {
        let applied = router
            .apply_events(vec![form.clone(), phone.clone()])
            .await
            .expect("applied");
        assert_eq!(applied, vec![Applied::Applied, Applied::Applied]);
    }
    assert!(
        default.contact(ContactId(7)).await.is_err(),
        "not the default partition's"
    );
    assert!(default.contact(ContactId(8)).await.is_ok());
    let view = revenues
        .contact(ContactId(7))
        .await
        .expect("the revenues partition's");
    assert_eq!(view.agent.as_deref(), Some("wendy"));
    assert!(
        revenues.contact(ContactId(8)).await.is_err(),
        "not the revenues partition's"
    );

    // The set of partitions is fixed while running: a change to it is refused.
    let error = default
        .reconfigure(&always_open())
        .await
        .expect_err("partitions change");
    assert!(error.to_string().contains("restart"), "{error}");
}

#[tokio::test]
async fn a_configuration_stored_through_one_process_reaches_partitions_routed_by_another() {
    use switchboard_routing_service::Routers;

    let (store, _dir) = store().await;
    let partitioned = always_open().replacen(
        "[queues.council-tax-web]\n",
        "[queues.council-tax-web]\npartition = \"revenues\"\n",
        1,
    );
    let partition_router = |partition: &str, owner: &str| {
        Router::new(
            RouterSettings {
                partition: partition.to_owned(),
                owner: owner.to_owned(),
                config_toml: partitioned.clone(),
                config_check: Arc::new(|_| Ok(())),
            },
            Arc::clone(&store),
            Arc::new(Notify::new()),
        )
    };
    // Process A routes the default partition; process B the revenues one.
    let a_default = partition_router("default", "a");
    let a_revenues = partition_router("revenues", "a");
    let b_revenues = partition_router("revenues", "b");
    a_default.take_over().await.expect("a routes default");
    b_revenues.take_over().await.expect("b routes revenues");
    let process_a = Routers::new(vec![a_default.clone(), a_revenues.clone()], Arc::clone(&store));

    // B's partition is routing a contact when the edit comes.
    b_revenues
        .put_profile("wendy", &{
            let mut web = profile(&[("council-tax", 4)]);
            web.channels = vec![Channel::Web];
            web.web_capacity = 1;
            web.partition = Some("revenues".to_owned());
            web
        })
        .await
        .expect("profile");
    let Inbound::Contact {
        event_id,
        mut info,
        office,
    } = call(3, false)
    else {
        unreachable!("call() makes a contact");
    };
    info.channel = Channel::Web;
    b_revenues
        .apply_events(vec![Inbound::Contact {
            event_id,
            info,
            office,
        }])
        .await
        .expect("a form waits");

    let timeout_changed = partitioned.replace("offer_timeout_seconds = 120", "offer_timeout_seconds = 90");
    assert_ne!(timeout_changed, partitioned);
    process_a
        .reconfigure(&timeout_changed)
        .await
        .expect("stored and applied here");
    assert_eq!(
        a_default.config_toml().await,
        timeout_changed,
        "applied where A routes"
    );
    assert_eq!(
        b_revenues.config_toml().await,
        partitioned,
        "not yet where B routes"
    );
    b_revenues.follow_stored_config().await.expect("b follows");
    assert_eq!(
        b_revenues.config_toml().await,
        timeout_changed,
        "B follows the stored edit"
    );

    // An edit that adds a queue waits while B routes a contact, and
    // applies at B's first quiet moment.
    let with_another_queue = format!(
        "{timeout_changed}\n[queues.extra-web]\nname = \"Extra\"\nservices = []\nchannel = \"web\"\n\
         skills = [{{ skill = \"council-tax\", min_proficiency = 1 }}]\npriority = 1\nhours = \"always\"\n\
         sla = {{ answered_percent = 80, within_working_days = 5 }}\nexpected_handle_seconds = 600\n\
         offer_timeout_seconds = 60\nout_of_hours = {{ action = \"message\", message = \"form-received\" }}\n"
    );
    process_a.reconfigure(&with_another_queue).await.expect("stored");
    assert_eq!(
        a_default.config_toml().await,
        with_another_queue,
        "A is quiet: applied"
    );
    b_revenues.follow_stored_config().await.expect("b follows");
    assert_eq!(
        b_revenues.config_toml().await,
        timeout_changed,
        "B is busy: it waits"
    );
    b_revenues
        .resident_action(
            ContactId(3),
            switchboard_routing_service::router::ResidentAction::Abandoned,
        )
        .await
        .expect("the resident leaves");
    b_revenues.follow_stored_config().await.expect("b follows");
    assert_eq!(
        b_revenues.config_toml().await,
        with_another_queue,
        "B is quiet: applied"
    );

    // A router taking B's partition over keeps the edit, and does not apply
    // it again.
    let c_revenues = partition_router("revenues", "c");
    c_revenues.take_over().await.expect("c takes over");
    assert_eq!(c_revenues.config_toml().await, with_another_queue);
    let journal_before = store.journal("revenues").await.expect("journal").len();
    c_revenues.follow_stored_config().await.expect("c follows");
    assert_eq!(
        store.journal("revenues").await.expect("journal").len(),
        journal_before
    );
}
