//! Names and shapes of the exchanges and queues (DESIGN.md, messaging topology).
//!
//! A [`Topology`] is a name prefix: empty in production, random per test so tests
//! sharing one broker never consume each other's messages. A [`QueueSpec`] is
//! everything needed to declare a queue, bind it and consume from it; both bus
//! implementations read the same spec, so they cannot disagree about routing.

use std::time::Duration;

use crate::error::{BusError, BusResult};

/// Base names; the prefix goes in front of each.
const EVENTS_EXCHANGE: &str = "switchboard.events";
const DEAD_LETTER: &str = "switchboard.dead-letter";
const CASES_QUEUE: &str = "switchboard.cases";
const ROUTING_QUEUE: &str = "switchboard.routing";
const ANALYTICS_STREAM: &str = "switchboard.analytics";

/// How many times a quorum queue hands a message out before dead-lettering it.
/// Five attempts ride out a short database outage without letting a poison
/// message block a consumer for long.
pub const DEFAULT_DELIVERY_LIMIT: u32 = 5;

/// The routing partition whose queue is `switchboard.routing` itself.
pub const DEFAULT_ROUTING_PARTITION: &str = "default";

/// The longest routing partition name. Short enough that the queue name stays
/// readable in the management UI and far below AMQP's 255-byte limit, whatever
/// the prefix.
pub const MAX_PARTITION_LEN: usize = 40;

/// The exchange and dead-letter names for one deployment (or one test).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
    /// Whether the bus declares the analytics stream at start (it does unless
    /// told otherwise).
    analytics_stream: bool,
}

impl Topology {
    /// `prefix` is empty in production; tests use a random one such as `t-4f9a.`.
    pub fn new(prefix: &str) -> Self {
        Topology {
            prefix: prefix.to_owned(),
            analytics_stream: true,
        }
    }

    /// The same topology without the analytics stream. The stream is bound to
    /// `#`, so while it exists every event is routable; tests of `mandatory`
    /// publishing (and deployments without analytics) leave it out.
    pub fn without_analytics_stream(mut self) -> Self {
        self.analytics_stream = false;
        self
    }

    /// Whether the bus declares the analytics stream at start.
    pub fn has_analytics_stream(&self) -> bool {
        self.analytics_stream
    }

    /// A random prefix for one test, e.g. `t-4f9a1c.`.
    pub fn random_for_test() -> Self {
        let suffix: u32 = rand::random();
        Topology::new(&format!("t-{suffix:08x}."))
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A name under this topology's prefix.
    pub fn name(&self, base: &str) -> String {
        format!("{}{}", self.prefix, base)
    }

    /// `<prefix>switchboard.events`: the topic exchange every event goes to,
    /// routing key = event type.
    pub fn exchange(&self) -> String {
        self.name(EVENTS_EXCHANGE)
    }

    /// `<prefix>switchboard.dead-letter`: the exchange quorum queues dead-letter to.
    pub fn dead_letter_exchange(&self) -> String {
        self.name(DEAD_LETTER)
    }

    /// `<prefix>switchboard.dead-letter`: the queue holding every dead letter
    /// (exchange and queue share the name; AMQP keeps them apart).
    pub fn dead_letter_queue(&self) -> String {
        self.name(DEAD_LETTER)
    }
}

/// Where a new stream consumer starts reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamOffset {
    /// The oldest retained message: replay everything still kept.
    First,
    /// The last chunk written (RabbitMQ semantics; in memory: the last message).
    Last,
    /// Only messages published after subscribing.
    Next,
    /// A stored offset, e.g. the one after the last event an analyst processed.
    Offset(u64),
}

/// What kind of queue, with its kind-specific settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueKind {
    /// A replicated quorum queue: at-least-once work queue with a delivery limit,
    /// dead-lettering to the topology's dead-letter exchange.
    Quorum {
        /// Deliveries returned more often than this are dead-lettered.
        /// `None` means no limit (only for the dead-letter queue itself).
        delivery_limit: Option<u32>,
        /// Where rejected and over-limit messages go; `None` only for the
        /// dead-letter queue itself (a dead letter must not loop).
        dead_letter_exchange: Option<String>,
    },
    /// An append-only stream: every consumer reads every message from an offset.
    Stream {
        /// Segments older than this are discarded (RabbitMQ `x-max-age`).
        max_age: Duration,
        /// The stream is kept below this size (RabbitMQ `x-max-length-bytes`).
        max_length_bytes: u64,
    },
}

/// A queue to declare, bind and consume from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSpec {
    /// Full name, prefix included.
    pub name: String,
    pub kind: QueueKind,
    /// The exchange the bindings are on.
    pub exchange: String,
    /// Topic patterns (`*` one word, `#` zero or more words).
    pub bindings: Vec<String>,
    /// Where a stream consumer starts; ignored for quorum queues.
    pub stream_offset: StreamOffset,
    /// Of the consumers subscribed, only one (the earliest still subscribed)
    /// receives messages; when it goes, its unsettled messages and everything
    /// after go to the next. Gives one process exclusive, ordered ownership of
    /// the queue (routing partitions) instead of competing consumers. Quorum
    /// queues only; streams ignore it. Part of the queue's identity: declaring
    /// an existing queue with the other setting is an error.
    pub single_active_consumer: bool,
}

impl QueueSpec {
    /// A quorum queue on the topology's events exchange, with the default
    /// delivery limit and the topology's dead-letter exchange. For new
    /// consumers and tests; the named constructors below are the deployed ones.
    pub fn quorum(topology: &Topology, base_name: &str, bindings: &[&str]) -> Self {
        QueueSpec {
            name: topology.name(base_name),
            kind: QueueKind::Quorum {
                delivery_limit: Some(DEFAULT_DELIVERY_LIMIT),
                dead_letter_exchange: Some(topology.dead_letter_exchange()),
            },
            exchange: topology.exchange(),
            bindings: bindings.iter().map(|binding| (*binding).to_owned()).collect(),
            stream_offset: StreamOffset::Next,
            single_active_consumer: false,
        }
    }

    /// `switchboard.cases`: every contact event.
    pub fn cases(topology: &Topology) -> Self {
        QueueSpec::quorum(topology, CASES_QUEUE, &["contact.#"])
    }

    /// `switchboard.routing`: new contacts and the case context routing needs,
    /// for the default routing partition. Single active consumer: routing state
    /// is partitioned, and each partition is owned by one router process at a
    /// time (the others wait on the queue, ready to take over).
    pub fn routing(topology: &Topology) -> Self {
        QueueSpec {
            single_active_consumer: true,
            ..QueueSpec::quorum(topology, ROUTING_QUEUE, &["contact.received", "case.*"])
        }
    }

    /// The routing queue of one partition: [`QueueSpec::routing`] for
    /// `"default"`, otherwise `switchboard.routing.<partition>` with the same
    /// bindings and a single active consumer.
    ///
    /// A partition name is 1 to 40 lowercase ASCII letters, digits and `-`
    /// (it becomes part of a queue name); any other name is a
    /// [`BusError::Queue`] naming it.
    pub fn routing_partition(topology: &Topology, partition: &str) -> BusResult<Self> {
        if partition == DEFAULT_ROUTING_PARTITION {
            return Ok(QueueSpec::routing(topology));
        }
        if !is_partition_name(partition) {
            // An invalid name may be long (or hostile): a shortened one still
            // identifies it in the log.
            let shown: String = partition.chars().take(MAX_PARTITION_LEN + 20).collect();
            return Err(BusError::Queue {
                queue: topology.name(&format!("{ROUTING_QUEUE}.{shown}")),
                reason: format!(
                    "invalid routing partition {shown:?}: use 1 to {MAX_PARTITION_LEN} \
                     lowercase letters, digits and '-'"
                ),
            });
        }
        let name = topology.name(&format!("{ROUTING_QUEUE}.{partition}"));
        Ok(QueueSpec {
            name,
            ..QueueSpec::routing(topology)
        })
    }

    /// `switchboard.analytics`: the replayable stream of every event. Retention:
    /// 400 days (a full reporting year plus a quarter for year-on-year scrutiny)
    /// or 20 GiB, whichever comes first. Consumers start from the first
    /// retained message unless told otherwise with [`QueueSpec::from_offset`].
    pub fn analytics(topology: &Topology) -> Self {
        QueueSpec {
            name: topology.name(ANALYTICS_STREAM),
            kind: QueueKind::Stream {
                max_age: Duration::from_secs(400 * 24 * 60 * 60),
                max_length_bytes: 20 * 1024 * 1024 * 1024,
            },
            exchange: topology.exchange(),
            bindings: vec!["#".to_owned()],
            stream_offset: StreamOffset::First,
            single_active_consumer: false,
        }
    }

    /// `switchboard.dead-letter`: every message a consumer gave up on, with the
    /// reason. No delivery limit and no dead-letter exchange of its own.
    pub fn dead_letter(topology: &Topology) -> Self {
        QueueSpec {
            name: topology.dead_letter_queue(),
            kind: QueueKind::Quorum {
                delivery_limit: None,
                dead_letter_exchange: None,
            },
            exchange: topology.dead_letter_exchange(),
            // The dead-letter exchange is fanout: the binding key is ignored by
            // RabbitMQ and matches everything in memory.
            bindings: vec!["#".to_owned()],
            stream_offset: StreamOffset::Next,
            single_active_consumer: false,
        }
    }

    /// The same queue with another delivery limit (quorum queues only).
    pub fn with_delivery_limit(mut self, limit: u32) -> Self {
        if let QueueKind::Quorum { delivery_limit, .. } = &mut self.kind {
            *delivery_limit = Some(limit);
        }
        self
    }

    /// The same stream, consumed from `offset` (streams only).
    pub fn from_offset(mut self, offset: StreamOffset) -> Self {
        self.stream_offset = offset;
        self
    }

    pub fn is_stream(&self) -> bool {
        matches!(self.kind, QueueKind::Stream { .. })
    }

    /// Whether consumers take turns (one active at a time) rather than compete:
    /// the flag is set and the queue is a quorum queue.
    pub fn has_single_active_consumer(&self) -> bool {
        self.single_active_consumer && !self.is_stream()
    }
}

/// 1 to [`MAX_PARTITION_LEN`] of `a-z`, `0-9` and `-`.
fn is_partition_name(partition: &str) -> bool {
    (1..=MAX_PARTITION_LEN).contains(&partition.len())
        && partition
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
}

/// AMQP topic matching: words separated by `.`, `*` matches exactly one word,
/// `#` matches zero or more words.
pub fn topic_matches(pattern: &str, routing_key: &str) -> bool {
    let pattern_words: Vec<&str> = pattern.split('.').collect();
    let key_words: Vec<&str> = routing_key.split('.').collect();
    words_match(&pattern_words, &key_words)
}

fn words_match(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| words_match(rest, &key[skip..])),
        Some((&word, rest)) => match key.split_first() {
            Some((&key_word, key_rest)) => (word == "*" || word == key_word) && words_match(rest, key_rest),
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_patterns_follow_amqp_rules() {
        assert!(topic_matches("#", "contact.received"));
        assert!(topic_matches("#", ""));
        assert!(topic_matches("contact.#", "contact.received"));
        assert!(topic_matches("contact.#", "contact"));
        assert!(topic_matches("contact.#", "contact.a.b"));
        assert!(!topic_matches("contact.#", "case.opened"));
        assert!(topic_matches("case.*", "case.opened"));
        assert!(!topic_matches("case.*", "case"));
        assert!(!topic_matches("case.*", "case.opened.late"));
        assert!(topic_matches("*.opened", "case.opened"));
        assert!(topic_matches("a.#.z", "a.z"));
        assert!(topic_matches("a.#.z", "a.b.c.z"));
        assert!(!topic_matches("a.#.z", "a.b.c"));
        assert!(topic_matches("contact.received", "contact.received"));
        assert!(!topic_matches("contact.received", "contact.receive"));
    }

    #[test]
    fn names_carry_the_prefix() {
        let topology = Topology::new("t-1.");
        assert_eq!(topology.exchange(), "t-1.switchboard.events");
        assert_eq!(topology.dead_letter_exchange(), "t-1.switchboard.dead-letter");
        assert_eq!(QueueSpec::cases(&topology).name, "t-1.switchboard.cases");
        assert_eq!(
            QueueSpec::routing(&topology).bindings,
            ["contact.received", "case.*"]
        );
        assert!(QueueSpec::analytics(&topology).is_stream());
        assert_eq!(Topology::new("").exchange(), "switchboard.events");
    }

    #[test]
    fn only_routing_queues_have_a_single_active_consumer() {
        let topology = Topology::new("t-1.");
        assert!(QueueSpec::routing(&topology).single_active_consumer);
        assert!(QueueSpec::routing(&topology).has_single_active_consumer());
        for spec in [
            QueueSpec::cases(&topology),
            QueueSpec::analytics(&topology),
            QueueSpec::dead_letter(&topology),
            QueueSpec::quorum(&topology, "other", &["#"]),
        ] {
            assert!(!spec.single_active_consumer, "{}", spec.name);
            assert!(!spec.has_single_active_consumer(), "{}", spec.name);
        }
        // A stream cannot take turns, whatever the flag says.
        let mut stream = QueueSpec::analytics(&topology);
        stream.single_active_consumer = true;
        assert!(!stream.has_single_active_consumer());
    }

    #[test]
    fn routing_partitions_share_bindings_and_take_turns() {
        let topology = Topology::new("t-1.");
        let default = QueueSpec::routing_partition(&topology, "default").expect("default");
        assert_eq!(default, QueueSpec::routing(&topology));
        assert_eq!(default.name, "t-1.switchboard.routing");

        for partition in ["north", "ward-7", "0", &"a".repeat(MAX_PARTITION_LEN)] {
            let spec = QueueSpec::routing_partition(&topology, partition).expect(partition);
            assert_eq!(spec.name, format!("t-1.switchboard.routing.{partition}"));
            assert_eq!(spec.bindings, ["contact.received", "case.*"]);
            assert_eq!(spec.kind, QueueSpec::routing(&topology).kind);
            assert_eq!(spec.exchange, topology.exchange());
            assert!(spec.single_active_consumer);
        }
    }

    #[test]
    fn routing_partition_names_are_checked() {
        let topology = Topology::new("t-1.");
        let too_long = "a".repeat(MAX_PARTITION_LEN + 1);
        for partition in [
            "", "North", "ward_7", "ward.7", "ward 7", "café", "a/b", &too_long,
        ] {
            let error = QueueSpec::routing_partition(&topology, partition).expect_err(partition);
            let BusError::Queue { queue, reason } = &error else {
                panic!("{partition:?}: expected a queue error, got {error:?}");
            };
            assert_eq!(queue, &format!("t-1.switchboard.routing.{partition}"));
            assert!(
                reason.contains(&format!("{partition:?}")),
                "{reason} names the partition"
            );
        }
        // A huge name is shortened in the error, not copied whole.
        let huge = "X".repeat(10_000);
        let error = QueueSpec::routing_partition(&topology, &huge).expect_err("huge");
        assert!(error.to_string().len() < 400, "{error}");
    }
}
