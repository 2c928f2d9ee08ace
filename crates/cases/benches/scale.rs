//! The case store at the size of a district council's records: 200,000
//! customers with 1,000,000 contacts (and their cases, outcomes, history and
//! inbox) seeded into PostgreSQL, then
//!
//! - the customer timeline's latency, first page at the gRPC default size,
//!   for random customers and for the busiest ones (target: p99 under 10 ms);
//! - customer search's latency by each criterion agents use;
//! - contacts per second through the consumer (in-process bus, its own batch
//!   size, outbox relay running) and through `apply_contacts` alone, beside
//!   raw batched inserts of as many rows, in batches of the same size, into a
//!   copy of the contacts table (target: the consumer at least half the raw
//!   rate).
//!
//! Each latency is printed beside a single-row primary-key read on the same
//! pool, each rate beside the raw insert rate, all from the same run.
//!
//! `cargo bench -p switchboard-cases --bench scale` (needs PostgreSQL, as the
//! tests do). Sizes: `SWITCHBOARD_BENCH_CUSTOMERS` (200000),
//! `SWITCHBOARD_BENCH_CONTACTS` (seeded contacts, 1000000),
//! `SWITCHBOARD_BENCH_SAMPLES` (timeline calls, and search calls per
//! criterion, 2000) and `SWITCHBOARD_BENCH_INCOMING` (contacts written by
//! each write figure, 20000).
//!
//! The seed is written with bulk SQL straight into the store's tables, in
//! the order the store would have written it (customers by creation, cases
//! by opening, contacts by receipt), so one customer's rows are spread over
//! the heap as they would be after three years of traffic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use sqlx::PgPool;
use switchboard_bus::{Bus, Envelope, EventKey, InProcessBus, QueueSpec, Sealer, Topology};
use switchboard_cases::{
    CasesConsumer, CasesStore, CustomerSearch, IncomingContact, MAX_APPLY_BATCH, PgCasesStore,
    QuotedReference, SEARCH_PAGE_DEFAULT, TIMELINE_PAGE_DEFAULT,
};
use switchboard_domain::{
    CaseReference, Catalogue, Channel, ContactId, ContactOrigin, ContactReference, CustomerDetails,
    CustomerId, EmailAddress, EventId, Needs, OfficeId, PersonName, PhoneNumber, Postcode, ServiceId,
};
use switchboard_proto::{event_types, v1};
use switchboard_runtime::testing::{TestDatabase, with_cpu_per_item};
use uuid::Uuid;

const DAY_MICROS: i64 = 86_400_000_000;
/// How far back the seeded records go.
const HISTORY_DAYS: i64 = 3 * 365;
/// Contacts on one case this close together are a repeat contact (the
/// store's default follow-up window).
const FOLLOW_UP_DAYS: i64 = 28;
/// A contact this long after the previous one on a service opens a new case
/// (longer than a resolution plus the follow-up window, so the seed never
/// holds a case the store would have re-opened instead).
const NEW_CASE_GAP_DAYS: i64 = 35;
/// Cases whose last contact is older than this are resolved.
const OPEN_FOR_DAYS: i64 = 10;
/// Rows per seeding statement, and seeding statements in flight.
const SEED_CHUNK: usize = 10_000;
const SEED_CONCURRENCY: usize = 2;
/// Customers per postcode, as in a district where about one household in a
/// dozen on a street has contacted the council.
const CUSTOMERS_PER_POSTCODE: u64 = 12;

const FIRST_NAMES: &[&str] = &[
    "Olivia",
    "Amelia",
    "Isla",
    "Ava",
    "Mia",
    "Ivy",
    "Lily",
    "Isabella",
    "Rosie",
    "Sophia",
    "Grace",
    "Freya",
    "Emily",
    "Poppy",
    "Ella",
    "Evie",
    "Charlotte",
    "Margaret",
    "Susan",
    "Patricia",
    "Janet",
    "Christine",
    "Sandra",
    "Jean",
    "Barbara",
    "Agnieszka",
    "Zofia",
    "Siobhan",
    "Aoife",
    "Priya",
    "Aisha",
    "Fatima",
    "Noah",
    "Oliver",
    "George",
    "Arthur",
    "Leo",
    "Muhammad",
    "Harry",
    "Oscar",
    "Archie",
    "Henry",
    "Theodore",
    "Jack",
    "Charlie",
    "Freddie",
    "Thomas",
    "James",
    "William",
    "David",
    "John",
    "Michael",
    "Peter",
    "Robert",
    "Paul",
    "Andrew",
    "Stephen",
    "Łukasz",
    "Piotr",
    "Rhys",
    "Dafydd",
    "Gareth",
    "Ravi",
    "Arjun",
    "Kwame",
    "Chidi",
];
const SURNAMES: &[&str] = &[
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Patel",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Thomas",
    "Clarke",
    "Jackson",
    "Wood",
    "Harris",
    "Edwards",
    "Turner",
    "Martin",
    "Cooper",
    "Hill",
    "Ward",
    "Hughes",
    "Moore",
    "Clark",
    "King",
    "Harrison",
    "Lewis",
    "Baker",
    "Lee",
    "Allen",
    "Morris",
    "Khan",
    "Scott",
    "Watson",
    "Davis",
    "Parker",
    "James",
    "Bennett",
    "Young",
    "Phillips",
    "Richardson",
    "Mitchell",
    "Bailey",
    "Carter",
    "Cook",
    "Singh",
    "Shaw",
    "Bell",
    "Collins",
    "Morgan",
    "Kelly",
    "Begum",
    "Miller",
    "Cox",
    "Hussain",
    "Marshall",
    "Simpson",
    "Price",
    "Anderson",
    "Adams",
    "Wilkinson",
    "Ali",
    "Ahmed",
    "Foster",
    "Ellis",
    "Murphy",
    "Chapman",
    "Mason",
    "Gray",
    "Richards",
    "Webb",
    "Griffiths",
    "Hunt",
    "Palmer",
    "Campbell",
    "Holmes",
    "Mills",
    "Rogers",
    "Barnes",
    "Knight",
    "Matthews",
    "Barker",
    "O'Brien",
    "Kowalski",
    "Nowak",
    "MacDonald",
    "Fitzgerald",
    "Nguyen",
    "Okafor",
    "Mensah",
    "Ó Súilleabháin",
    "van der Berg",
];
const STREETS: &[&str] = &[
    "High Street",
    "Station Road",
    "Church Lane",
    "Southampton Road",
    "Christchurch Road",
    "Lymington Road",
    "Milford Road",
    "Ringwood Road",
    "Brookley Road",
    "Queen Street",
    "Priestlands Place",
    "Woodside Lane",
    "Salisbury Road",
    "Sway Road",
    "Marsh Lane",
    "Park Road",
    "Victoria Road",
    "Manor Road",
    "The Avenue",
    "Forest Road",
];
const DISTRICTS: &[&str] = &[
    "SO41", "SO42", "SO43", "SO45", "SO40", "BH23", "BH24", "BH25", "SP6", "SO51", "SO14", "SO15", "SO16",
    "SO17", "SO18", "SO19",
];
/// Letters the last two places of a postcode may hold.
const UNIT_LETTERS: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";
const EMAIL_DOMAINS: &[&str] = &["example.org", "example.com", "example.net", "mail.example"];
const SUMMARIES: &[&str] = &[
    "question about my bill",
    "reporting a problem",
    "follow-up on my earlier call",
    "change of address",
    "asking for an update",
    "making a payment arrangement",
    "complaint about the service",
    "request for a visit",
];
const OFFICES: &[&str] = &[
    "appletree-court",
    "lymington-town-hall",
    "ringwood-gateway",
    "totton-area-office",
];

// ---------------------------------------------------------------------------
// Deterministic values: every seeded customer's details are a function of
// their index, so the search figures can ask for values that exist.

/// splitmix64: a small, fast generator; statistical quality is plenty here.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0, 0)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn mix(value: u64, salt: u64) -> u64 {
    let mut z = value ^ salt.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn pick<'a>(list: &[&'a str], value: u64) -> &'a str {
    list[(value % list.len() as u64) as usize]
}

/// A seeded or arriving resident's details in their stored (normalised) form.
#[derive(Clone, Default)]
struct Resident {
    name: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    postcode: Option<String>,
    address_line: Option<String>,
    uprn: Option<String>,
}

fn full_name(seed: u64) -> String {
    format!(
        "{} {}",
        pick(FIRST_NAMES, mix(seed, 1)),
        pick(SURNAMES, mix(seed, 2))
    )
}

fn email_of(name: &str, number: u64, seed: u64) -> String {
    let words: Vec<String> = name
        .split(' ')
        .map(|word| {
            word.chars()
                .filter(char::is_ascii_alphabetic)
                .map(|c| c.to_ascii_lowercase())
                .collect::<String>()
        })
        .filter(|word| !word.is_empty())
        .collect();
    let local = words.join(".");
    format!("{local}{number}@{}", pick(EMAIL_DOMAINS, mix(seed, 5)))
}

/// The district's postcode number `index`; distinct below 64,000.
fn postcode_of(index: u64) -> String {
    let district = pick(DISTRICTS, index);
    let sector = (index / DISTRICTS.len() as u64) % 10;
    let unit = index / (DISTRICTS.len() as u64 * 10);
    let letters = UNIT_LETTERS.len() as u64;
    let first = char::from(UNIT_LETTERS[((unit / letters) % letters) as usize]);
    let second = char::from(UNIT_LETTERS[(unit % letters) as usize]);
    format!("{district} {sector}{first}{second}")
}

fn postcode_count(customers: u64) -> u64 {
    (customers / CUSTOMERS_PER_POSTCODE).clamp(1, 64_000)
}

/// Seeded customer `index`: most give a name, a phone (mobile or landline)
/// and a postcode, about two thirds an email, some a UPRN.
fn seeded_resident(index: u64, postcodes: u64) -> Resident {
    let name = full_name(index);
    let phone = match mix(index, 4) % 100 {
        0..60 => Some(format!("+4477{}{:07}", 1 + index % 7, (index / 7) % 10_000_000)),
        60..80 => Some(format!("+442380{:06}", index % 1_000_000)),
        _ => None,
    };
    let email = (mix(index, 6) % 100 < 65).then(|| email_of(&name, index, index));
    let postcode = (mix(index, 7) % 100 < 85).then(|| postcode_of(mix(index, 8) % postcodes));
    let address_line = postcode
        .as_ref()
        .map(|_| format!("{} {}", 1 + mix(index, 9) % 180, pick(STREETS, mix(index, 10))));
    let uprn = (mix(index, 11) % 100 < 40).then(|| (10_000_000_000 + index).to_string());
    Resident {
        name: (mix(index, 3) % 100 < 95).then_some(name),
        phone,
        email,
        postcode,
        address_line,
        uprn,
    }
}

/// Checks that generated values are what the domain's parsers keep, so the
/// seed is exactly what the store would have stored.
fn check_generated_values(customers: u64, postcodes: u64) {
    for index in 0..customers.min(2_000) {
        let resident = seeded_resident(index, postcodes);
        if let Some(phone) = &resident.phone {
            assert_eq!(PhoneNumber::parse(phone).expect("seeded phone").as_e164(), phone);
        }
        if let Some(email) = &resident.email {
            assert_eq!(EmailAddress::parse(email).expect("seeded email").as_str(), email);
        }
        if let Some(postcode) = &resident.postcode {
            assert_eq!(
                Postcode::parse(postcode).expect("seeded postcode").as_str(),
                postcode
            );
        }
        if let Some(name) = &resident.name {
            assert_eq!(PersonName::parse(name).expect("seeded name").as_str(), name);
        }
    }
    for index in 0..64_000 {
        let postcode = postcode_of(index);
        assert_eq!(Postcode::parse(&postcode).expect("postcode").as_str(), postcode);
    }
    for index in [0, 1, 999_999, 1 << 40] {
        let reference = case_reference(index);
        assert_eq!(CaseReference::parse(&reference).unwrap().as_str(), reference);
        let reference = contact_reference(index);
        assert_eq!(ContactReference::parse(&reference).unwrap().as_str(), reference);
    }
    assert_eq!(
        PhoneNumber::parse(&arriving_mobile(12_345)).unwrap().as_e164(),
        arriving_mobile(12_345)
    );
}

/// A mobile number no seeded customer holds.
fn arriving_mobile(index: u64) -> String {
    format!("+44792{:07}", index % 10_000_000)
}

/// Crockford's base32, as the domain writes references.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// `PREFIX-XXXXX-XXXXX` from 50 bits. Multiplying by an odd number modulo
/// 2^50 is a bijection, so distinct indexes give distinct references.
fn reference(prefix: &str, index: u64, multiplier: u64) -> String {
    let bits = index.wrapping_mul(multiplier) & ((1 << 50) - 1);
    let mut out = String::with_capacity(prefix.len() + 12);
    out.push_str(prefix);
    for position in 0..10 {
        if position % 5 == 0 {
            out.push('-');
        }
        out.push(char::from(
            CROCKFORD[((bits >> (5 * (9 - position))) & 0x1f) as usize],
        ));
    }
    out
}

fn case_reference(index: u64) -> String {
    reference("CS", index, 0x2545_F491_4F6C_DD1D)
}

fn contact_reference(index: u64) -> String {
    reference("SB", index, 0x9E37_79B9_7F4A_7C15)
}

fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).expect("time in range")
}

/// A version 7 UUID for `micros`, as the store's ids made at that time are.
fn uuid_at(micros: i64) -> Uuid {
    let seconds = u64::try_from(micros.div_euclid(1_000_000)).expect("after 1970");
    let nanos = u32::try_from(micros.rem_euclid(1_000_000) * 1_000).expect("below a second");
    Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, seconds, nanos))
}

// ---------------------------------------------------------------------------
// The seed: generated in memory (compactly), written in bulk.

struct Service {
    id: String,
    channels: Vec<Channel>,
    target_days: i64,
}

fn services() -> Vec<Service> {
    Catalogue::embedded()
        .expect("shipped catalogue")
        .services()
        .iter()
        .map(|service| Service {
            id: service.id.as_str().to_owned(),
            channels: service.channels.clone(),
            // Working days to calendar days, near enough for due dates.
            target_days: i64::from(service.case_target_working_days) * 7 / 5,
        })
        .collect()
}

/// A service, the first few (council tax, waste) far more often than the rest.
fn popular_service(rng: &mut Rng, count: usize) -> usize {
    let skewed = rng.unit().powi(2) * count as f64;
    (skewed as usize).min(count - 1)
}

/// A channel the service takes, phone and web the most.
fn channel_for(rng: &mut Rng, service: &Service) -> Channel {
    const WEIGHTS: [(Channel, u64); 5] = [
        (Channel::Phone, 45),
        (Channel::Web, 35),
        (Channel::Email, 10),
        (Channel::FaceToFace, 6),
        (Channel::Letter, 4),
    ];
    let allowed: Vec<(Channel, u64)> = WEIGHTS
        .into_iter()
        .filter(|(channel, _)| service.channels.contains(channel))
        .collect();
    let mut roll = rng.below(allowed.iter().map(|(_, weight)| weight).sum());
    for (channel, weight) in &allowed {
        if roll < *weight {
            return *channel;
        }
        roll -= weight;
    }
    allowed[0].0
}

struct SeedCase {
    id: Uuid,
    customer: u32,
    service: u16,
    opened: i64,
    updated: i64,
    /// When it was resolved; `None` while open.
    resolved: Option<i64>,
}

struct SeedContact {
    id: Uuid,
    customer: u32,
    case_id: Uuid,
    service: u16,
    channel: Channel,
    received: i64,
    repeat: bool,
    /// The wrap-up routing reported, if any.
    disposition: Option<&'static str>,
}

struct Seed {
    customer_ids: Vec<Uuid>,
    created: Vec<i64>,
    /// Contacts per customer.
    contact_counts: Vec<u32>,
    cases: Vec<SeedCase>,
    contacts: Vec<SeedContact>,
}

/// Contacts per customer: most residents a handful, a few (about one in
/// 500) hundreds, exactly `total` in all.
fn contact_counts(rng: &mut Rng, customers: usize, total: usize) -> Vec<u32> {
    let mut counts: Vec<u32> = (0..customers)
        .map(|_| {
            if rng.below(1000) < 2 {
                100 + rng.below(300) as u32
            } else {
                1 + (-3.5 * (1.0 - rng.unit()).ln()) as u32
            }
        })
        .collect();
    let mut sum: usize = counts.iter().map(|&count| count as usize).sum();
    while sum < total {
        counts[rng.below(customers as u64) as usize] += 1;
        sum += 1;
    }
    while sum > total {
        let index = rng.below(customers as u64) as usize;
        if counts[index] > 1 {
            counts[index] -= 1;
            sum -= 1;
        }
    }
    counts
}

fn generate(customers: usize, total_contacts: usize, services: &[Service], now: i64) -> Seed {
    let mut rng = Rng(0x5EED);
    let start = now - HISTORY_DAYS * DAY_MICROS;
    let span = HISTORY_DAYS * DAY_MICROS;
    let counts = contact_counts(&mut rng, customers, total_contacts);
    let mut seed = Seed {
        customer_ids: Vec::with_capacity(customers),
        created: Vec::with_capacity(customers),
        contact_counts: counts.clone(),
        cases: Vec::new(),
        contacts: Vec::with_capacity(total_contacts),
    };
    for (index, &count) in counts.iter().enumerate() {
        let customer = u32::try_from(index).expect("fewer than 4 billion customers");
        // Customers were created in index order over the whole history,
        // each by their first contact.
        let created =
            start + (span as f64 * index as f64 / customers as f64) as i64 + rng.below(60_000_000) as i64;
        seed.customer_ids.push(uuid_at(created));
        seed.created.push(created);
        let their_services: Vec<usize> = (0..1 + rng.below(3))
            .map(|_| popular_service(&mut rng, services.len()))
            .collect();
        let mut times: Vec<i64> = std::iter::once(created)
            .chain((1..count).map(|_| created + (rng.unit() * (now - created) as f64) as i64))
            .collect();
        times.sort_unstable();
        // Per service: the current case's index in seed.cases, and the
        // previous contact's time.
        let mut current: BTreeMap<usize, (usize, i64)> = BTreeMap::new();
        for (position, received) in times.into_iter().enumerate() {
            let service = if position == 0 {
                their_services[0]
            } else {
                their_services[rng.below(their_services.len() as u64) as usize]
            };
            let channel = channel_for(&mut rng, &services[service]);
            let (case_index, repeat) = match current.get(&service) {
                Some(&(case_index, previous)) if received - previous <= NEW_CASE_GAP_DAYS * DAY_MICROS => {
                    (case_index, received - previous <= FOLLOW_UP_DAYS * DAY_MICROS)
                }
                _ => {
                    seed.cases.push(SeedCase {
                        id: uuid_at(received),
                        customer,
                        service: service as u16,
                        opened: received,
                        updated: received,
                        resolved: None,
                    });
                    (seed.cases.len() - 1, false)
                }
            };
            current.insert(service, (case_index, received));
            seed.cases[case_index].updated = received;
            seed.contacts.push(SeedContact {
                id: uuid_at(received),
                customer,
                case_id: seed.cases[case_index].id,
                service: service as u16,
                channel,
                received,
                repeat,
                disposition: None,
            });
        }
    }
    // Cases quiet for a while were resolved two days after their last
    // contact, which routing reported as "resolved"; every earlier contact
    // was wrapped up with advice.
    let mut last_contact_of_case: std::collections::HashMap<Uuid, usize> = std::collections::HashMap::new();
    for (position, contact) in seed.contacts.iter().enumerate() {
        last_contact_of_case.insert(contact.case_id, position);
    }
    for case in &mut seed.cases {
        if now - case.updated > OPEN_FOR_DAYS * DAY_MICROS {
            case.resolved = Some(case.updated + 2 * DAY_MICROS);
        }
    }
    let resolved: std::collections::HashSet<Uuid> = seed
        .cases
        .iter()
        .filter(|case| case.resolved.is_some())
        .map(|case| case.id)
        .collect();
    for (position, contact) in seed.contacts.iter_mut().enumerate() {
        if now - contact.received < DAY_MICROS / 24 {
            continue;
        }
        let last = last_contact_of_case.get(&contact.case_id) == Some(&position);
        contact.disposition = Some(if last && resolved.contains(&contact.case_id) {
            "resolved"
        } else {
            "advice-given"
        });
    }
    // The store writes in arrival order.
    seed.cases.sort_by_key(|case| case.opened);
    seed.contacts.sort_by_key(|contact| contact.received);
    seed
}

/// The JSON columns as the store writes them (serde of the domain types),
/// with placeholders for the per-contact values.
struct JsonTemplates {
    phone_origin: String,
    withheld_origin: String,
    web_origin: String,
    face_to_face_origins: Vec<String>,
    none_origin: String,
    needs: Vec<String>,
}

const PLACEHOLDER_PHONE: &str = "+447700900123";
const PLACEHOLDER_CALL: &str = "call-placeholder";

impl JsonTemplates {
    fn new() -> Self {
        let json = |origin: &ContactOrigin| serde_json::to_string(origin).unwrap();
        let needs = [
            Needs::default(),
            Needs {
                language: Some("pl".to_owned()),
                interpreter: true,
                ..Needs::default()
            },
            Needs {
                large_print: true,
                ..Needs::default()
            },
            Needs {
                assisted_digital: true,
                ..Needs::default()
            },
        ];
        JsonTemplates {
            phone_origin: json(&ContactOrigin::Phone {
                caller_number: Some(PhoneNumber::parse(PLACEHOLDER_PHONE).unwrap()),
                dialled_number: Some("+441590646111".to_owned()),
                call_id: Some(PLACEHOLDER_CALL.to_owned()),
            }),
            withheld_origin: json(&ContactOrigin::Phone {
                caller_number: None,
                dialled_number: Some("+441590646111".to_owned()),
                call_id: Some(PLACEHOLDER_CALL.to_owned()),
            }),
            web_origin: json(&ContactOrigin::Web {
                form_id: Some("report-it".to_owned()),
                page_url: Some("https://council.example/forms/report-it".to_owned()),
            }),
            face_to_face_origins: OFFICES
                .iter()
                .map(|office| {
                    json(&ContactOrigin::FaceToFace {
                        office_id: OfficeId::parse(office).unwrap(),
                        desk: Some("desk-2".to_owned()),
                    })
                })
                .collect(),
            none_origin: json(&ContactOrigin::None),
            needs: needs
                .iter()
                .map(|needs| serde_json::to_string(needs).unwrap())
                .collect(),
        }
    }

    fn origin(&self, channel: Channel, phone: Option<&str>, call: u64) -> String {
        match channel {
            Channel::Phone => match phone {
                Some(phone) => self
                    .phone_origin
                    .replace(PLACEHOLDER_PHONE, phone)
                    .replace(PLACEHOLDER_CALL, &format!("call-{call}")),
                None => self
                    .withheld_origin
                    .replace(PLACEHOLDER_CALL, &format!("call-{call}")),
            },
            Channel::Web => self.web_origin.clone(),
            Channel::FaceToFace => {
                self.face_to_face_origins[(call % self.face_to_face_origins.len() as u64) as usize].clone()
            }
            Channel::Email | Channel::Letter => self.none_origin.clone(),
        }
    }

    /// Most residents need nothing; about one in ten something.
    fn needs(&self, seed: u64) -> &str {
        let roll = mix(seed, 20) % 100;
        let variant = if roll < 90 {
            0
        } else {
            1 + (roll as usize % (self.needs.len() - 1))
        };
        &self.needs[variant]
    }
}

fn details_json(street_seed: u64) -> String {
    let details: BTreeMap<&str, &str> = [("street", pick(STREETS, street_seed))].into();
    serde_json::to_string(&details).unwrap()
}

/// Runs `insert` over `rows` in chunks, a few at a time.
async fn in_chunks<'a, T, F, Fut>(rows: &'a [T], insert: F)
where
    F: Fn(&'a [T]) -> Fut,
    Fut: std::future::Future<Output = Result<(), sqlx::Error>>,
{
    futures::stream::iter(rows.chunks(SEED_CHUNK))
        .map(insert)
        .buffer_unordered(SEED_CONCURRENCY)
        .try_collect::<()>()
        .await
        .expect("seed insert");
}

async fn seed_database(pool: &PgPool, seed: &Seed, services: &[Service], postcodes: u64) {
    let started = Instant::now();
    let indexes: Vec<u32> = (0..u32::try_from(seed.customer_ids.len()).unwrap()).collect();
    in_chunks(&indexes, |chunk| async move {
        let residents: Vec<Resident> = chunk
            .iter()
            .map(|&index| seeded_resident(u64::from(index), postcodes))
            .collect();
        sqlx::query(
            "INSERT INTO customers (id, name, name_folded, phone_e164, email, postcode, address_line, uprn, created_at) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[])",
        )
        .bind(chunk.iter().map(|&index| seed.customer_ids[index as usize]).collect::<Vec<_>>())
        .bind(residents.iter().map(|r| r.name.clone()).collect::<Vec<_>>())
        // Folded as the store folds names (Unicode lowercase).
        .bind(residents.iter().map(|r| r.name.as_deref().map(str::to_lowercase)).collect::<Vec<_>>())
        .bind(residents.iter().map(|r| r.phone.clone()).collect::<Vec<_>>())
        .bind(residents.iter().map(|r| r.email.clone()).collect::<Vec<_>>())
        .bind(residents.iter().map(|r| r.postcode.clone()).collect::<Vec<_>>())
        .bind(residents.iter().map(|r| r.address_line.clone()).collect::<Vec<_>>())
        .bind(residents.iter().map(|r| r.uprn.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|&index| at(seed.created[index as usize])).collect::<Vec<_>>())
        .execute(pool)
        .await
        .map(drop)
    })
    .await;
    println!(
        "  customers: {} in {:.1} s",
        seed.customer_ids.len(),
        started.elapsed().as_secs_f64()
    );

    let step = Instant::now();
    let positions: Vec<usize> = (0..seed.cases.len()).collect();
    in_chunks(&positions, |chunk| async move {
        let cases: Vec<&SeedCase> = chunk.iter().map(|&position| &seed.cases[position]).collect();
        sqlx::query(
            "INSERT INTO cases (id, reference, customer_id, service, status, opened_at, updated_at, due_at, resolved_at, outcome) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::timestamptz[], \
                                  $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::text[])",
        )
        .bind(cases.iter().map(|case| case.id).collect::<Vec<_>>())
        .bind(chunk.iter().map(|&position| case_reference(position as u64)).collect::<Vec<_>>())
        .bind(cases.iter().map(|case| seed.customer_ids[case.customer as usize]).collect::<Vec<_>>())
        .bind(cases.iter().map(|case| services[case.service as usize].id.as_str()).collect::<Vec<_>>())
        .bind(cases.iter().map(|case| if case.resolved.is_some() { "resolved" } else { "open" }).collect::<Vec<_>>())
        .bind(cases.iter().map(|case| at(case.opened)).collect::<Vec<_>>())
        .bind(cases.iter().map(|case| at(case.updated)).collect::<Vec<_>>())
        .bind(
            cases
                .iter()
                .map(|case| at(case.opened + services[case.service as usize].target_days * DAY_MICROS))
                .collect::<Vec<_>>(),
        )
        .bind(cases.iter().map(|case| case.resolved.map(at)).collect::<Vec<_>>())
        .bind(cases.iter().map(|case| case.resolved.map(|_| "resolved")).collect::<Vec<_>>())
        .execute(pool)
        .await
        .map(drop)
    })
    .await;
    // Resolving a case recorded its status change.
    let resolved: Vec<&SeedCase> = seed.cases.iter().filter(|case| case.resolved.is_some()).collect();
    in_chunks(&resolved, |chunk| async move {
        sqlx::query(
            "INSERT INTO case_history (id, case_id, from_status, to_status, reason, actor, at) \
             SELECT u.id, u.case_id, 'open', 'resolved', 'wrap-up disposition: resolved', 'routing', u.at \
             FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) AS u(id, case_id, at)",
        )
        .bind(
            chunk
                .iter()
                .map(|case| uuid_at(case.resolved.unwrap()))
                .collect::<Vec<_>>(),
        )
        .bind(chunk.iter().map(|case| case.id).collect::<Vec<_>>())
        .bind(
            chunk
                .iter()
                .map(|case| at(case.resolved.unwrap()))
                .collect::<Vec<_>>(),
        )
        .execute(pool)
        .await
        .map(drop)
    })
    .await;
    println!(
        "  cases: {} ({} resolved, with history) in {:.1} s",
        seed.cases.len(),
        resolved.len(),
        step.elapsed().as_secs_f64()
    );

    let step = Instant::now();
    let templates = JsonTemplates::new();
    let templates = &templates;
    let positions: Vec<usize> = (0..seed.contacts.len()).collect();
    in_chunks(&positions, |chunk| async move {
        let contacts: Vec<&SeedContact> = chunk.iter().map(|&position| &seed.contacts[position]).collect();
        let origins: Vec<String> = chunk
            .iter()
            .map(|&position| {
                let contact = &seed.contacts[position];
                let resident = seeded_resident(u64::from(contact.customer), postcodes);
                templates.origin(contact.channel, resident.phone.as_deref(), position as u64)
            })
            .collect();
        sqlx::query(
            "INSERT INTO contacts (id, reference, customer_id, case_id, channel, service, summary, details, needs, origin, received_at, stored_at, repeat_contact) \
             SELECT u.id, u.reference, u.customer_id, u.case_id, u.channel, u.service, u.summary, \
                    u.details::jsonb, u.needs::jsonb, u.origin::jsonb, u.received_at, u.received_at + interval '40 milliseconds', u.repeat_contact \
             FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], \
                         $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::bool[]) \
                AS u(id, reference, customer_id, case_id, channel, service, summary, details, needs, origin, received_at, repeat_contact)",
        )
        .bind(contacts.iter().map(|contact| contact.id).collect::<Vec<_>>())
        .bind(chunk.iter().map(|&position| contact_reference(position as u64)).collect::<Vec<_>>())
        .bind(contacts.iter().map(|contact| seed.customer_ids[contact.customer as usize]).collect::<Vec<_>>())
        .bind(contacts.iter().map(|contact| contact.case_id).collect::<Vec<_>>())
        .bind(contacts.iter().map(|contact| contact.channel.as_str()).collect::<Vec<_>>())
        .bind(contacts.iter().map(|contact| services[contact.service as usize].id.as_str()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|&position| pick(SUMMARIES, mix(position as u64, 21))).collect::<Vec<_>>())
        .bind(chunk.iter().map(|&position| details_json(mix(position as u64, 22))).collect::<Vec<_>>())
        .bind(contacts.iter().map(|contact| templates.needs(u64::from(contact.customer))).collect::<Vec<_>>())
        .bind(origins)
        .bind(contacts.iter().map(|contact| at(contact.received)).collect::<Vec<_>>())
        .bind(contacts.iter().map(|contact| contact.repeat).collect::<Vec<_>>())
        .execute(pool)
        .await
        .map(drop)
    })
    .await;
    println!(
        "  contacts: {} in {:.1} s",
        seed.contacts.len(),
        step.elapsed().as_secs_f64()
    );

    let step = Instant::now();
    let wrapped: Vec<&SeedContact> = seed
        .contacts
        .iter()
        .filter(|contact| contact.disposition.is_some())
        .collect();
    in_chunks(&wrapped, |chunk| async move {
        sqlx::query(
            "INSERT INTO contact_outcomes (contact_id, disposition, partner, completed_at, applied) \
             SELECT u.contact_id, u.disposition, NULL, u.completed_at, true \
             FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS u(contact_id, disposition, completed_at)",
        )
        .bind(chunk.iter().map(|contact| contact.id).collect::<Vec<_>>())
        .bind(chunk.iter().map(|contact| contact.disposition.unwrap()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|contact| at(contact.received + 6 * 60_000_000)).collect::<Vec<_>>())
        .execute(pool)
        .await
        .map(drop)
    })
    .await;
    // The inbox holds every event applied: each contact.received and each
    // contact.completed (the store never prunes it).
    let events: Vec<i64> = seed
        .contacts
        .iter()
        .map(|contact| contact.received)
        .chain(wrapped.iter().map(|contact| contact.received + 6 * 60_000_000))
        .collect();
    in_chunks(&events, |chunk| async move {
        sqlx::query(
            "INSERT INTO inbox (event_id, processed_at) SELECT * FROM unnest($1::uuid[], $2::timestamptz[])",
        )
        .bind(chunk.iter().map(|&micros| uuid_at(micros)).collect::<Vec<_>>())
        .bind(
            chunk
                .iter()
                .map(|&micros| at(micros + 50_000))
                .collect::<Vec<_>>(),
        )
        .execute(pool)
        .await
        .map(drop)
    })
    .await;
    println!(
        "  outcomes: {}, inbox: {} in {:.1} s",
        wrapped.len(),
        events.len(),
        step.elapsed().as_secs_f64()
    );

    // What autovacuum would have done to tables filled over three years:
    // statistics, hint bits and the visibility map.
    let step = Instant::now();
    sqlx::raw_sql("VACUUM (ANALYZE)")
        .execute(pool)
        .await
        .expect("vacuum");
    println!("  vacuum and analyse in {:.1} s", step.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------
// Latency.

struct Latencies(Vec<Duration>);

impl Latencies {
    fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Latencies(samples)
    }

    fn quantile(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1].as_secs_f64() * 1000.0
    }

    fn p50(&self) -> f64 {
        self.quantile(0.50)
    }

    fn p99(&self) -> f64 {
        self.quantile(0.99)
    }

    fn max(&self) -> f64 {
        self.quantile(1.0)
    }
}

/// The floor under every store read: one customer row by primary key.
async fn primary_key_reads(pool: &PgPool, ids: &[Uuid]) -> Latencies {
    let mut samples = Vec::with_capacity(ids.len());
    for id in ids {
        let started = Instant::now();
        sqlx::query(
            "SELECT id, name, phone_e164, email, postcode, address_line, uprn, created_at FROM customers WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await
        .unwrap()
        .expect("seeded customer");
        samples.push(started.elapsed());
    }
    Latencies::new(samples)
}

async fn timelines(store: &PgCasesStore, ids: &[Uuid]) -> (Latencies, f64) {
    let mut samples = Vec::with_capacity(ids.len());
    let mut entries = 0;
    for id in ids {
        let started = Instant::now();
        let timeline = store
            .customer_timeline(CustomerId::from_uuid(*id), TIMELINE_PAGE_DEFAULT, None)
            .await
            .unwrap()
            .expect("seeded customer");
        samples.push(started.elapsed());
        entries += timeline.entries.len();
    }
    (Latencies::new(samples), entries as f64 / ids.len().max(1) as f64)
}

async fn searches(store: &PgCasesStore, searches: &[CustomerSearch]) -> (Latencies, f64) {
    let mut samples = Vec::with_capacity(searches.len());
    let mut found = 0;
    for search in searches {
        let started = Instant::now();
        let customers = store.search_customers(search, SEARCH_PAGE_DEFAULT).await.unwrap();
        samples.push(started.elapsed());
        found += customers.len();
    }
    (
        Latencies::new(samples),
        found as f64 / searches.len().max(1) as f64,
    )
}

/// `count` searches of one kind, for customers or records picked at random.
fn search_set(
    kind: &str,
    count: usize,
    rng: &mut Rng,
    customers: u64,
    postcodes: u64,
    seed: &Seed,
) -> Vec<CustomerSearch> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let index = rng.below(customers);
        let resident = seeded_resident(index, postcodes);
        let search = match kind {
            "phone" => resident.phone.map(|phone| CustomerSearch {
                phone: Some(PhoneNumber::parse(&phone).unwrap()),
                ..CustomerSearch::default()
            }),
            "email" => resident.email.map(|email| CustomerSearch {
                email: Some(EmailAddress::parse(&email).unwrap()),
                ..CustomerSearch::default()
            }),
            "postcode" => resident.postcode.map(|postcode| CustomerSearch {
                postcode: Some(Postcode::parse(&postcode).unwrap()),
                ..CustomerSearch::default()
            }),
            "name" => resident.name.map(|name| CustomerSearch {
                name: Some(PersonName::parse(&name).unwrap()),
                ..CustomerSearch::default()
            }),
            "name and postcode" => {
                resident
                    .name
                    .zip(resident.postcode)
                    .map(|(name, postcode)| CustomerSearch {
                        name: Some(PersonName::parse(&name).unwrap()),
                        postcode: Some(Postcode::parse(&postcode).unwrap()),
                        ..CustomerSearch::default()
                    })
            }
            "case reference" => Some(CustomerSearch {
                reference: Some(QuotedReference::Case(
                    CaseReference::parse(&case_reference(rng.below(seed.cases.len() as u64))).unwrap(),
                )),
                ..CustomerSearch::default()
            }),
            "contact reference" => Some(CustomerSearch {
                reference: Some(QuotedReference::Contact(
                    ContactReference::parse(&contact_reference(rng.below(seed.contacts.len() as u64)))
                        .unwrap(),
                )),
                ..CustomerSearch::default()
            }),
            other => panic!("unknown search kind {other}"),
        };
        out.extend(search);
    }
    out
}

// ---------------------------------------------------------------------------
// Writes: new contacts as intake publishes them.

/// One arriving contact: half from seeded residents (a call from their
/// phone, or a form with their details), half from new ones living in the
/// same postcodes, so matching meets the seeded customers either way.
struct Arrival {
    channel: Channel,
    service: usize,
    resident: Resident,
}

fn arrivals(count: usize, run: u64, customers: u64, postcodes: u64, services: &[Service]) -> Vec<Arrival> {
    let mut rng = Rng(0xA11 + run);
    (0..count as u64)
        .map(|index| {
            let by_phone = rng.below(2) == 0;
            let service = popular_service(&mut rng, services.len());
            let channel = if by_phone { Channel::Phone } else { Channel::Web };
            let channel = if services[service].channels.contains(&channel) {
                channel
            } else {
                Channel::Phone
            };
            let resident = if rng.below(2) == 0 {
                seeded_resident(rng.below(customers), postcodes)
            } else {
                let seed = mix(index, 1000 + run);
                let name = full_name(seed);
                let number = run * 10_000_000 + index;
                Resident {
                    email: Some(email_of(&name, number, seed).replace('@', ".new@")),
                    name: Some(name),
                    phone: Some(arriving_mobile(number)),
                    postcode: Some(postcode_of(mix(seed, 8) % postcodes)),
                    address_line: Some(format!(
                        "{} {}",
                        1 + mix(seed, 9) % 180,
                        pick(STREETS, mix(seed, 10))
                    )),
                    uprn: None,
                }
            };
            Arrival {
                channel,
                service,
                resident,
            }
        })
        .collect()
}

/// What the resident gives on the channel: a caller gives their number
/// (the caller id) and sometimes their name; a form asks for name, email or
/// phone, postcode and address.
fn customer_for(arrival: &Arrival) -> (v1::Customer, String) {
    let resident = &arrival.resident;
    let caller = resident.phone.clone().unwrap_or_default();
    let customer = match arrival.channel {
        Channel::Phone => v1::Customer {
            name: resident.name.clone().unwrap_or_default(),
            ..Default::default()
        },
        _ => v1::Customer {
            name: resident.name.clone().unwrap_or_default(),
            email: resident.email.clone().unwrap_or_default(),
            phone: if resident.email.is_none() {
                caller.clone()
            } else {
                String::new()
            },
            postcode: resident.postcode.clone().unwrap_or_default(),
            address_line: resident.address_line.clone().unwrap_or_default(),
            ..Default::default()
        },
    };
    (customer, caller)
}

fn incoming(arrival: &Arrival, services: &[Service]) -> IncomingContact {
    let (customer, caller) = customer_for(arrival);
    let optional = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    IncomingContact {
        event_id: EventId::new(),
        traceparent: None,
        contact_id: ContactId::new(),
        reference: ContactReference::generate(),
        received_at: Utc::now(),
        channel: arrival.channel,
        service: ServiceId::parse(&services[arrival.service].id).unwrap(),
        customer: CustomerDetails {
            name: optional(&customer.name).map(|name| PersonName::parse(&name).unwrap()),
            phone: optional(&customer.phone).map(|phone| PhoneNumber::parse(&phone).unwrap()),
            email: optional(&customer.email).map(|email| EmailAddress::parse(&email).unwrap()),
            postcode: optional(&customer.postcode).map(|postcode| Postcode::parse(&postcode).unwrap()),
            address_line: optional(&customer.address_line),
            uprn: None,
        },
        summary: "reporting a problem".to_owned(),
        details: [("street".to_owned(), "High Street".to_owned())].into(),
        needs: Needs::default(),
        origin: match arrival.channel {
            Channel::Phone => ContactOrigin::Phone {
                caller_number: optional(&caller).map(|phone| PhoneNumber::parse(&phone).unwrap()),
                dialled_number: Some("+441590646111".to_owned()),
                call_id: None,
            },
            _ => ContactOrigin::Web {
                form_id: Some("report-it".to_owned()),
                page_url: None,
            },
        },
    }
}

/// The `contact.received` intake publishes for the same arrival.
fn envelope(sealer: &Sealer, arrival: &Arrival, services: &[Service]) -> (Envelope, ContactId) {
    let (customer, caller) = customer_for(arrival);
    let id = EventId::new().to_string();
    let contact_id = ContactId::new();
    let now = Utc::now();
    let by_phone = arrival.channel == Channel::Phone;
    let personal = v1::PersonalData {
        customer: Some(customer),
        summary: "reporting a problem".to_owned(),
        details: [("street".to_owned(), "High Street".to_owned())].into(),
        phone: by_phone.then(|| v1::PhoneOrigin {
            caller_number: caller,
            dialled_number: "+441590646111".to_owned(),
            ..Default::default()
        }),
        web: (!by_phone).then(|| v1::WebOrigin {
            form_id: "report-it".to_owned(),
            ..Default::default()
        }),
        face_to_face: None,
    };
    let timestamp = pbjson_types::Timestamp {
        seconds: now.timestamp(),
        nanos: 0,
    };
    let event = v1::Event {
        id: id.clone(),
        r#type: event_types::CONTACT_RECEIVED.to_owned(),
        occurred_at: Some(timestamp),
        source: "intake".to_owned(),
        subject: String::new(),
        sealed_personal_data: Some(sealer.seal(&id, &personal)),
        payload: Some(v1::event::Payload::ContactReceived(v1::ContactReceived {
            contact_id: contact_id.to_string(),
            reference: ContactReference::generate().as_str().to_owned(),
            channel: if by_phone {
                v1::Channel::Phone
            } else {
                v1::Channel::Web
            } as i32,
            service: services[arrival.service].id.clone(),
            received_at: Some(timestamp),
            ..Default::default()
        })),
    };
    (
        Envelope {
            event,
            traceparent: None,
        },
        contact_id,
    )
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// A copy of the contacts table with its rows and indexes, no foreign keys
/// and no other work: where the raw inserts go.
async fn raw_table(pool: &PgPool) {
    sqlx::raw_sql(
        "CREATE TABLE raw_contacts (LIKE contacts INCLUDING DEFAULTS INCLUDING CONSTRAINTS); \
         INSERT INTO raw_contacts SELECT * FROM contacts ORDER BY received_at; \
         ALTER TABLE raw_contacts ADD PRIMARY KEY (id); \
         CREATE INDEX ON raw_contacts (reference); \
         CREATE INDEX ON raw_contacts (customer_id, received_at DESC, id DESC); \
         CREATE INDEX ON raw_contacts (case_id, received_at, id);",
    )
    .execute(pool)
    .await
    .expect("copy the contacts table");
    sqlx::raw_sql("VACUUM (ANALYZE) raw_contacts")
        .execute(pool)
        .await
        .expect("vacuum the copy");
}

/// Plain batched inserts of `count` contact rows, a transaction per batch of
/// the consumer's size; rows are made before the clock starts.
async fn raw_inserts(pool: &PgPool, arrivals: &[Arrival], services: &[Service], seed: &Seed) -> f64 {
    let templates = JsonTemplates::new();
    let mut rng = Rng(0xBA5E);
    let rows: Vec<RawRow> = arrivals
        .iter()
        .enumerate()
        .map(|(index, arrival)| {
            let case = &seed.cases[rng.below(seed.cases.len() as u64) as usize];
            RawRow {
                id: ContactId::new().as_uuid(),
                reference: ContactReference::generate().as_str().to_owned(),
                customer_id: seed.customer_ids[case.customer as usize],
                case_id: case.id,
                channel: arrival.channel.as_str(),
                service: services[arrival.service].id.clone(),
                origin: templates.origin(arrival.channel, arrival.resident.phone.as_deref(), index as u64),
            }
        })
        .collect();
    let details = details_json(0);
    let needs = templates.needs(0).to_owned();
    let started = Instant::now();
    for batch in rows.chunks(MAX_APPLY_BATCH) {
        let now = Utc::now();
        sqlx::query(
            "INSERT INTO raw_contacts (id, reference, customer_id, case_id, channel, service, summary, details, needs, origin, received_at, stored_at, repeat_contact) \
             SELECT u.id, u.reference, u.customer_id, u.case_id, u.channel, u.service, 'reporting a problem', \
                    $7::jsonb, $8::jsonb, u.origin::jsonb, $9, $9, false \
             FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $10::text[]) \
                AS u(id, reference, customer_id, case_id, channel, service, origin)",
        )
        .bind(batch.iter().map(|row| row.id).collect::<Vec<_>>())
        .bind(batch.iter().map(|row| row.reference.as_str()).collect::<Vec<_>>())
        .bind(batch.iter().map(|row| row.customer_id).collect::<Vec<_>>())
        .bind(batch.iter().map(|row| row.case_id).collect::<Vec<_>>())
        .bind(batch.iter().map(|row| row.channel).collect::<Vec<_>>())
        .bind(batch.iter().map(|row| row.service.as_str()).collect::<Vec<_>>())
        .bind(&details)
        .bind(&needs)
        .bind(now)
        .bind(batch.iter().map(|row| row.origin.as_str()).collect::<Vec<_>>())
        .execute(pool)
        .await
        .unwrap();
    }
    rate(rows.len(), started.elapsed())
}

struct RawRow {
    id: Uuid,
    reference: String,
    customer_id: Uuid,
    case_id: Uuid,
    channel: &'static str,
    service: String,
    origin: String,
}

async fn store_apply(store: &PgCasesStore, arrivals: &[Arrival], services: &[Service]) -> f64 {
    let contacts: Vec<IncomingContact> = arrivals
        .iter()
        .map(|arrival| incoming(arrival, services))
        .collect();
    let started = Instant::now();
    for batch in contacts.chunks(MAX_APPLY_BATCH) {
        store.apply_contacts(batch).await.unwrap();
    }
    rate(contacts.len(), started.elapsed())
}

/// Publishes the arrivals' `contact.received` on the in-process bus and
/// waits until the consumer has stored every contact.
async fn consumer(store: PgCasesStore, arrivals: &[Arrival], services: &[Service]) -> f64 {
    let pool = store.pool().clone();
    let sealer = Arc::new(Sealer::new(vec![EventKey::generate("bench")]).unwrap());
    let topology = Topology::random_for_test();
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new(topology.clone()));
    bus.ensure_queue(&QueueSpec::cases(&topology)).await.unwrap();
    // Somewhere for the case events to go, as routing's queue would be.
    bus.ensure_queue(&QueueSpec::quorum(&topology, "bench.case-events", &["case.*"]))
        .await
        .unwrap();
    let (envelopes, contact_ids): (Vec<Envelope>, Vec<ContactId>) = arrivals
        .iter()
        .map(|arrival| envelope(&sealer, arrival, services))
        .unzip();
    // Contact ids are version 7, made after the seed's: the new contacts are
    // those from the first one on, counted through the primary key.
    let first = contact_ids.iter().map(ContactId::as_uuid).min().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(
        CasesConsumer::new(Arc::new(store), sealer, Arc::clone(&bus), &topology).run(async {
            let _ = stopped.await;
        }),
    );
    let started = Instant::now();
    for chunk in envelopes.chunks(MAX_APPLY_BATCH) {
        bus.publish(chunk).await.unwrap();
    }
    let deadline = started + Duration::from_secs(600);
    loop {
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts WHERE id >= $1")
            .bind(first)
            .fetch_one(&pool)
            .await
            .unwrap();
        if usize::try_from(stored).unwrap() >= envelopes.len() {
            break;
        }
        assert!(
            !running.is_finished(),
            "the consumer stopped with {stored} contacts stored"
        );
        assert!(
            Instant::now() < deadline,
            "only {stored} of {} contacts stored in 10 minutes",
            envelopes.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let per_second = rate(envelopes.len(), started.elapsed());
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    per_second
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn met(condition: bool) -> &'static str {
    if condition { "met" } else { "**not met**" }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let customers = env_count("SWITCHBOARD_BENCH_CUSTOMERS", 200_000).max(1);
        let contacts = env_count("SWITCHBOARD_BENCH_CONTACTS", 1_000_000).max(customers);
        let samples = env_count("SWITCHBOARD_BENCH_SAMPLES", 2_000).max(100);
        let incoming_count = env_count("SWITCHBOARD_BENCH_INCOMING", 20_000).max(MAX_APPLY_BATCH);
        let postcodes = postcode_count(customers as u64);
        let services = services();
        check_generated_values(customers as u64, postcodes);

        let database = TestDatabase::create().await;
        let store = PgCasesStore::connect(&database.url).await.unwrap();
        let pool = store.pool().clone();

        println!("seeding {customers} customers and {contacts} contacts");
        let started = Instant::now();
        let now = Utc::now().timestamp_micros() - DAY_MICROS / 24;
        let seed = generate(customers, contacts, &services, now);
        println!("  generated in {:.1} s", started.elapsed().as_secs_f64());
        seed_database(&pool, &seed, &services, postcodes).await;
        let seeding = started.elapsed();
        let size: String = sqlx::query_scalar("SELECT pg_size_pretty(pg_database_size(current_database()))")
            .fetch_one(&pool)
            .await
            .unwrap();
        println!("seeded in {:.0} s; database {size}", seeding.as_secs_f64());

        // Reads, on the seed as it stands.
        let mut rng = Rng(0x7E57);
        let random: Vec<Uuid> = (0..samples)
            .map(|_| seed.customer_ids[rng.below(customers as u64) as usize])
            .collect();
        let mut busiest: Vec<usize> = (0..customers).collect();
        busiest.sort_by_key(|&index| std::cmp::Reverse(seed.contact_counts[index]));
        let busiest: Vec<Uuid> = busiest
            .iter()
            .take(100)
            .cycle()
            .take(300)
            .map(|&index| seed.customer_ids[index])
            .collect();
        let warm_up: Vec<Uuid> = (0..200)
            .map(|_| seed.customer_ids[rng.below(customers as u64) as usize])
            .collect();
        timelines(&store, &warm_up).await;
        primary_key_reads(&pool, &warm_up).await;
        let floor = primary_key_reads(&pool, &random).await;
        let (timeline, entries) = timelines(&store, &random).await;
        let (timeline_busiest, entries_busiest) = timelines(&store, &busiest).await;

        let kinds = [
            "phone",
            "email",
            "postcode",
            "name",
            "name and postcode",
            "case reference",
            "contact reference",
        ];
        let mut search_figures = Vec::new();
        for kind in kinds {
            let set = search_set(kind, samples, &mut rng, customers as u64, postcodes, &seed);
            searches(&store, &set[..set.len().min(50)]).await;
            let (latencies, found) = searches(&store, &set).await;
            search_figures.push((kind, latencies, found));
        }

        // Writes, onto the seed: raw inserts, then the consumer, then the
        // store alone, each with its own new contacts.
        let step = Instant::now();
        raw_table(&pool).await;
        println!(
            "copied the contacts table for raw inserts in {:.0} s",
            step.elapsed().as_secs_f64()
        );
        // Each with the whole machine's CPU time per contact over its step.
        let (raw, raw_cpu) = with_cpu_per_item(
            incoming_count,
            raw_inserts(
                &pool,
                &arrivals(incoming_count, 0, customers as u64, postcodes, &services),
                &services,
                &seed,
            ),
        )
        .await;
        let (consumed, consumed_cpu) = with_cpu_per_item(
            incoming_count,
            consumer(
                store.clone(),
                &arrivals(incoming_count, 1, customers as u64, postcodes, &services),
                &services,
            ),
        )
        .await;
        let (applied, applied_cpu) = with_cpu_per_item(
            incoming_count,
            store_apply(
                &store,
                &arrivals(incoming_count, 2, customers as u64, postcodes, &services),
                &services,
            ),
        )
        .await;

        println!();
        println!(
            "{customers} customers, {contacts} contacts ({} cases), seeded in {:.0} s",
            seed.cases.len(),
            seeding.as_secs_f64()
        );
        println!();
        println!("| read | calls | p50 ms | p99 ms | max ms | results per call |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: |");
        let row = |name: &str, latencies: &Latencies, per_call: Option<f64>| {
            println!(
                "| {name} | {} | {:.2} | {:.2} | {:.2} | {} |",
                latencies.0.len(),
                latencies.p50(),
                latencies.p99(),
                latencies.max(),
                per_call.map_or("".to_owned(), |value| format!("{value:.1}"))
            );
        };
        row("baseline: one customer row by primary key", &floor, Some(1.0));
        row(
            "timeline, first page of 50, random customers",
            &timeline,
            Some(entries),
        );
        row(
            "timeline, first page of 50, 100 busiest customers",
            &timeline_busiest,
            Some(entries_busiest),
        );
        for (kind, latencies, found) in &search_figures {
            row(&format!("search by {kind}"), latencies, Some(*found));
        }
        println!();
        println!(
            "| write ({incoming_count} contacts, batches of {MAX_APPLY_BATCH}) | contacts/s | ratio to raw | machine CPU µs per contact |"
        );
        println!("| --- | ---: | ---: | ---: |");
        let cpu = |per_contact: Option<Duration>| {
            per_contact.map_or("n/a".to_owned(), |cpu| format!("{:.0}", cpu.as_secs_f64() * 1e6))
        };
        println!(
            "| baseline: raw batched inserts into a copy of contacts | {raw:.0} | 1.00 | {} |",
            cpu(raw_cpu)
        );
        println!(
            "| consumer over the in-process bus | {consumed:.0} | {:.2} | {} |",
            consumed / raw,
            cpu(consumed_cpu)
        );
        println!(
            "| apply_contacts alone | {applied:.0} | {:.2} | {} |",
            applied / raw,
            cpu(applied_cpu)
        );
        println!();
        println!(
            "timeline p99 under 10 ms: {:.2} ms, {}",
            timeline.p99(),
            met(timeline.p99() < 10.0)
        );
        println!(
            "consumer at least half the raw insert rate: {:.2}, {}",
            consumed / raw,
            met(consumed / raw >= 0.5)
        );
        drop(pool);
        drop(store);
        drop(database);
    });
}
