//! Routing decisions per second and decision latency, for the indexed engine
//! and, on the same workload in the same run, the naive engine that scans
//! every agent and every waiting contact.
//!
//! `cargo bench -p switchboard-routing --bench engine`. The workload: 1,000 or
//! 10,000 agents signed in, each with a few of 20 service skills at random
//! proficiency (some with BSL, Polish or the generalist skill), working phone
//! and web; 100,000 contacts waiting across 40 queues with overflow steps
//! (2% BSL, 3% Polish, 5% vulnerable). Then, repeatedly: a busy agent wraps
//! up (the engine picks the contact they get next), the offer is accepted, a
//! new contact arrives (the engine looks for an agent, then queues it), and
//! time moves on 5 ms (a tick: overflow steps falling due). Every arrival,
//! wrap-up and tick is timed on its own; that is a decision.
//!
//! Prints the figures, the baselines and whether each target is met; it
//! asserts nothing about timings.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use switchboard_domain::Channel;
use switchboard_routing::{
    AgentId, AgentProfile, Command, ContactId, Decision, Destination, Disposition, Engine, Needs,
    RoutingConfig,
};

const SERVICES: usize = 20;
const WAITING: usize = 100_000;
/// Timed iterations for the indexed engine (each is three timed decisions).
const INDEXED_ITERATIONS: usize = 30_000;
/// The naive engine is measured for this long, or this many iterations.
const NAIVE_BUDGET: Duration = Duration::from_secs(4);
const NAIVE_MAX_ITERATIONS: usize = 3_000;
const STEP_MS: i64 = 5;

/// A small deterministic generator (xorshift64*), so both engines see the
/// same workload and runs are repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn config() -> RoutingConfig {
    let mut text = String::from(
        r#"
[engine]
named_agent_wait_seconds = 60

[calendar]
time_zone = "Europe/London"
bank_holidays = []

[needs.language]
skill_prefix = "language-"
min_proficiency = 3
not_required_for = ["en"]

[needs.british_sign_language]
skill = "bsl"
min_proficiency = 3

[needs.vulnerable]
priority_boost = 3

[hours.always]
every_day = "00:00-24:00"
bank_holidays = "00:00-24:00"

[skills]
generalist = "any service, first line"
bsl = "British Sign Language"
"#,
    );
    for service in 0..SERVICES {
        let _ = writeln!(text, "svc-{service:02} = \"service {service}\"");
    }
    for service in 0..SERVICES {
        for (channel, step_two) in [("phone", 240), ("web", 3600)] {
            let _ = write!(
                text,
                r#"
[queues.q{service:02}-{channel}]
name = "service {service} ({channel})"
services = ["svc-{service:02}"]
channel = "{channel}"
skills = [{{ skill = "svc-{service:02}", min_proficiency = 3 }}]
priority = {priority}
ageing_seconds_per_point = 120
hours = "always"
sla = {{ answered_percent = 80, within_seconds = 60 }}
expected_handle_seconds = 300
offer_timeout_seconds = 20
out_of_hours = {{ action = "message", message = "closed" }}

[[queues.q{service:02}-{channel}.overflow]]
after_seconds = 60
min_proficiency = 1

[[queues.q{service:02}-{channel}.overflow]]
after_seconds = {step_two}
skills = [{{ skill = "generalist", min_proficiency = 2 }}]
"#,
                priority = 3 + service % 4,
            );
        }
    }
    RoutingConfig::parse(&text).expect("bench config is valid")
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("valid time")
}

fn profile(rng: &mut Rng) -> AgentProfile {
    let mut skills = Vec::new();
    for _ in 0..(2 + rng.below(3)) {
        skills.push((
            format!("svc-{:02}", rng.below(SERVICES as u64)),
            1 + rng.below(5) as u8,
        ));
    }
    if rng.chance(20) {
        skills.push(("generalist".to_owned(), 1 + rng.below(5) as u8));
    }
    if rng.chance(5) {
        skills.push(("bsl".to_owned(), 3 + rng.below(3) as u8));
    }
    if rng.chance(8) {
        skills.push(("language-pl".to_owned(), 3 + rng.below(3) as u8));
    }
    AgentProfile {
        skills,
        team: "bench".to_owned(),
        office: None,
        channels: vec![Channel::Phone, Channel::Web],
        web_capacity: 2,
    }
}

fn arrival(rng: &mut Rng, id: u128) -> Command {
    let service = rng.below(SERVICES as u64);
    let channel = if rng.chance(80) {
        Channel::Phone
    } else {
        Channel::Web
    };
    Command::ContactArrived {
        contact: ContactId(id),
        channel,
        destination: Destination::Service(format!("svc-{service:02}")),
        needs: {
            let british_sign_language = rng.chance(2);
            let language = rng.chance(3).then(|| "pl".to_owned());
            let vulnerable = rng.chance(5);
            Needs {
                british_sign_language,
                language,
                vulnerable,
                vulnerability_consent: vulnerable,
                ..Needs::default()
            }
        },
        office: None,
    }
}

/// Drives one engine through the workload.
struct Run {
    engine: Engine,
    rng: Rng,
    now: DateTime<Utc>,
    next_contact: u128,
    /// Contacts connected to an agent: the wrap-ups to come.
    connected: Vec<(ContactId, AgentId)>,
    latencies: Vec<Duration>,
    decisions: usize,
}

impl Run {
    fn new(engine: Engine, agents: usize) -> Run {
        let mut run = Run {
            engine,
            rng: Rng(0x5eed_1234_abcd_0001),
            now: start(),
            next_contact: 0,
            connected: Vec::new(),
            latencies: Vec::new(),
            decisions: 0,
        };
        for agent in 0..agents {
            let profile = profile(&mut run.rng);
            let decisions = run.command(Command::AgentSignedIn {
                agent: AgentId(agent as u64),
                profile,
            });
            run.accept_offers(&decisions);
        }
        // Fill the queues: arrivals 5 ms apart, offers accepted as they come.
        for _ in 0..(WAITING + agents * 2) {
            run.now += chrono::Duration::milliseconds(STEP_MS);
            run.arrive();
        }
        let decisions = run.command(Command::Tick);
        run.accept_offers(&decisions);
        run
    }

    fn command(&mut self, command: Command) -> Vec<Decision> {
        self.engine.handle(self.now, command).expect("command accepted")
    }

    fn timed(&mut self, command: Command) -> Vec<Decision> {
        let started = Instant::now();
        let decisions = self.engine.handle(self.now, command).expect("command accepted");
        self.latencies.push(started.elapsed());
        self.decisions += 1;
        decisions
    }

    fn accept_offers(&mut self, decisions: &[Decision]) {
        for decision in decisions {
            if let Decision::Offered { contact, agent, .. } = decision {
                self.command(Command::OfferAccepted {
                    contact: *contact,
                    agent: *agent,
                });
                self.connected.push((*contact, *agent));
            }
        }
    }

    fn arrive(&mut self) -> Vec<Decision> {
        self.next_contact += 1;
        let command = arrival(&mut self.rng, self.next_contact);
        let decisions = self.engine.handle(self.now, command).expect("arrival accepted");
        self.accept_offers(&decisions);
        decisions
    }

    /// One iteration: a wrap-up, an arrival and a tick, each timed.
    fn iterate(&mut self) {
        self.now += chrono::Duration::milliseconds(STEP_MS);
        if !self.connected.is_empty() {
            let pick = self.rng.below(self.connected.len() as u64) as usize;
            let (contact, _) = self.connected.swap_remove(pick);
            self.command(Command::ContactEnded { contact });
            let decisions = self.timed(Command::WrapUpDone {
                contact,
                disposition: Disposition::Resolved,
            });
            self.accept_offers(&decisions);
        }
        self.next_contact += 1;
        let command = arrival(&mut self.rng, self.next_contact);
        let decisions = self.timed(command);
        self.accept_offers(&decisions);
        let decisions = self.timed(Command::Tick);
        self.accept_offers(&decisions);
    }
}

struct Figures {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    decisions: usize,
    waiting: usize,
}

fn measure(mut run: Run, iterations: usize, budget: Option<Duration>) -> Figures {
    let started = Instant::now();
    for _ in 0..iterations {
        run.iterate();
        if budget.is_some_and(|budget| started.elapsed() > budget) {
            break;
        }
    }
    let mut latencies = run.latencies.clone();
    latencies.sort_unstable();
    let total: Duration = latencies.iter().sum();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Figures {
        per_second: run.decisions as f64 / total.as_secs_f64().max(1e-9),
        p50: at(0.50),
        p99: at(0.99),
        decisions: run.decisions,
        waiting: run.engine.waiting_count(),
    }
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

fn main() {
    let config = config();
    println!(
        "routing engine: {WAITING} waiting contacts, {} queues",
        config.queues.len()
    );
    println!(
        "{:<8} {:>7} {:>10} {:>14} {:>10} {:>10} {:>9}",
        "engine", "agents", "decisions", "decisions/s", "p50 µs", "p99 µs", "waiting"
    );
    let mut results = Vec::new();
    for agents in [1_000usize, 10_000] {
        let setup = Instant::now();
        let indexed = measure(
            Run::new(Engine::new(config.clone()), agents),
            INDEXED_ITERATIONS,
            None,
        );
        let indexed_setup = setup.elapsed();
        let setup = Instant::now();
        let naive = measure(
            Run::new(Engine::naive(config.clone()), agents),
            NAIVE_MAX_ITERATIONS,
            Some(NAIVE_BUDGET),
        );
        let naive_setup = setup.elapsed();
        for (name, figures) in [("indexed", &indexed), ("naive", &naive)] {
            println!(
                "{name:<8} {agents:>7} {:>10} {:>14.0} {:>10.2} {:>10.2} {:>9}",
                figures.decisions,
                figures.per_second,
                micros(figures.p50),
                micros(figures.p99),
                figures.waiting
            );
        }
        println!(
            "         (set-up and run: indexed {:.1} s, naive {:.1} s)",
            indexed_setup.as_secs_f64(),
            naive_setup.as_secs_f64()
        );
        results.push((agents, indexed, naive));
    }
    let (Some((_, small, _)), Some((_, large, large_naive))) = (results.first(), results.get(1)) else {
        return;
    };
    println!();
    println!("targets:");
    let p99 = micros(large.p99);
    println!(
        "  p99 at 10,000 agents <= 100 µs:            {p99:>8.2} µs          {}",
        verdict(p99 <= 100.0)
    );
    let growth = large.p99.as_secs_f64() / small.p99.as_secs_f64().max(1e-12);
    println!(
        "  p99 10,000 / p99 1,000 agents <= 2:        {growth:>8.2}x (baseline {:.2} µs) {}",
        micros(small.p99),
        verdict(growth <= 2.0)
    );
    let speedup = large.per_second / large_naive.per_second.max(1e-9);
    println!(
        "  throughput vs naive at 10,000 >= 100x:     {speedup:>8.0}x (baseline {:.0}/s) {}",
        large_naive.per_second,
        verdict(speedup >= 100.0)
    );
}
