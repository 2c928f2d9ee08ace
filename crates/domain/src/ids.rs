//! Identifiers: UUIDv7 newtypes (time-ordered, so indexes stay compact) and
//! short references for residents to quote on the phone.
//!
//! Each id type ([`ContactId`], [`CustomerId`], [`CaseId`], [`EventId`]) is its
//! own type so a case id can never be passed where a contact id is expected.
//! They display as hyphenated lowercase UUIDs and serialise as that string.
//!
//! References ([`ContactReference`] `SB-XXXXX-XXXXX`, [`CaseReference`]
//! `CS-XXXXX-XXXXX`) carry 50 random bits in Crockford base32: short enough to
//! read out over the phone, and free of the letters people confuse. Parsing is
//! forgiving about what a resident or agent types (any case, spaces or hyphens
//! anywhere, `I`/`L` for `1`, `O` for `0`) and always yields the canonical form.
//! They are random, not unique by construction: stores hold them under a unique
//! index and regenerate on a collision.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use uuid::Uuid;

use crate::error::InvalidId;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh UUIDv7: ordered by creation time, so new rows land at the
            /// end of a B-tree index instead of all over it.
            // No `Default`: a default id would be a random value nobody asked for;
            // ids are made on purpose, where a new record is created.
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID (e.g. read back from a store). Any version is
            /// accepted so that ids made elsewhere can still be looked up.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Accepts the usual textual UUID forms (hyphenated, simple, braced,
            /// urn) in any case.
            pub fn parse(input: &str) -> Result<Self, InvalidId> {
                Uuid::parse_str(input.trim())
                    .map(Self)
                    .map_err(|_| InvalidId::new($kind, "a uuid such as 0192f0c1-7d3e-7a2b-9c4d-5e6f7a8b9c0d"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(input: &str) -> Result<Self, Self::Err> {
                Self::parse(input)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(&self.0.hyphenated())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

uuid_id!(
    /// One contact: a call, a form, a visit.
    ContactId,
    "contact id"
);
uuid_id!(
    /// One resident, across every channel.
    CustomerId,
    "customer id"
);
uuid_id!(
    /// One matter of a resident, possibly spanning several contacts.
    CaseId,
    "case id"
);
uuid_id!(
    /// One event on the bus; also the AMQP `message_id` and the inbox key.
    EventId,
    "event id"
);

/// Crockford's base32 alphabet: digits and upper-case letters without I, L, O
/// and U, so a reference survives being read aloud and written down.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Symbols per reference body: 10 × 5 bits = 50 random bits, about 10^15
/// values, so collisions stay rare for decades of contacts.
const REFERENCE_SYMBOLS: usize = 10;
const REFERENCE_BITS: u32 = 50;

/// The value of one Crockford symbol, forgiving the look-alikes people type.
fn crockford_value(symbol: char) -> Option<u8> {
    let upper = symbol.to_ascii_uppercase();
    let canonical = match upper {
        'I' | 'L' => '1',
        'O' => '0',
        other => other,
    };
    CROCKFORD
        .iter()
        .position(|&c| char::from(c) == canonical)
        .and_then(|index| u8::try_from(index).ok())
}

/// `PREFIX-XXXXX-XXXXX` for the low 50 bits of `bits`.
fn encode_reference(prefix: &str, bits: u64) -> String {
    let mut out = String::with_capacity(prefix.len() + REFERENCE_SYMBOLS + 2);
    out.push_str(prefix);
    for index in 0..REFERENCE_SYMBOLS {
        if index % 5 == 0 {
            out.push('-');
        }
        let shift = 5 * (REFERENCE_SYMBOLS - 1 - index);
        // The mask keeps the index below 32, so it is always in the alphabet.
        let symbol = CROCKFORD[((bits >> shift) & 0x1f) as usize];
        out.push(char::from(symbol));
    }
    out
}

/// The canonical form of `input` if it is a reference with `prefix`.
fn parse_reference(prefix: &str, input: &str) -> Option<String> {
    // Residents read references out in groups and agents type what they hear,
    // so separators are ignored wherever they fall.
    let mut symbols = input
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace() && *c != '\u{2010}' && *c != '\u{2011}');
    for expected in prefix.chars() {
        if !symbols.next()?.eq_ignore_ascii_case(&expected) {
            return None;
        }
    }
    let mut bits: u64 = 0;
    let mut count = 0;
    for symbol in symbols {
        count += 1;
        if count > REFERENCE_SYMBOLS {
            return None;
        }
        bits = (bits << 5) | u64::from(crockford_value(symbol)?);
    }
    if count != REFERENCE_SYMBOLS {
        return None;
    }
    Some(encode_reference(prefix, bits))
}

fn random_reference_bits() -> u64 {
    rand::rng().random::<u64>() & ((1u64 << REFERENCE_BITS) - 1)
}

macro_rules! reference {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh random reference. Not guaranteed unique: the store's unique
            /// index decides, and the caller regenerates on a collision.
            pub fn generate() -> Self {
                Self(encode_reference($prefix, random_reference_bits()))
            }

            /// Accepts any case, hyphens and spaces anywhere, and Crockford's
            /// look-alikes (`I`/`L` → `1`, `O` → `0`); returns the canonical form.
            pub fn parse(input: &str) -> Result<Self, InvalidId> {
                parse_reference($prefix, input)
                    .map(Self)
                    .ok_or_else(|| {
                        InvalidId::new($kind, concat!("a reference such as ", $prefix, "-7K3MQ-9XD2H"))
                    })
            }

            /// The canonical form, e.g. `SB-7K3MQ-9XD2H`.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            #[cfg(test)]
            fn from_bits(bits: u64) -> Self {
                Self(encode_reference($prefix, bits))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(input: &str) -> Result<Self, Self::Err> {
                Self::parse(input)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

reference!(
    /// The reference a resident is given for one contact, `SB-XXXXX-XXXXX`.
    ContactReference,
    "SB",
    "contact reference"
);
reference!(
    /// The reference of a case, `CS-XXXXX-XXXXX`.
    CaseReference,
    "CS",
    "case reference"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn new_ids_are_v7_and_time_ordered() {
        let first = ContactId::new();
        let second = ContactId::new();
        assert_eq!(first.as_uuid().get_version_num(), 7);
        assert!(first < second, "v7 ids made later sort later");
    }

    #[test]
    fn id_display_parse_and_serde_round_trip() {
        let id = CaseId::new();
        let text = id.to_string();
        assert_eq!(text, text.to_lowercase());
        assert_eq!(text.len(), 36);
        assert_eq!(CaseId::parse(&text), Ok(id));
        assert_eq!(text.parse::<CaseId>(), Ok(id));
        assert_eq!(CaseId::parse(&text.to_uppercase()), Ok(id));
        assert_eq!(CaseId::from_uuid(id.as_uuid()), id);
        let json = serde_json::to_string(&id).expect("serialise");
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<CaseId>(&json).expect("deserialise"), id);
    }

    #[test]
    fn invalid_id_names_the_kind_not_the_input() {
        let error = EventId::parse("not-a-uuid-secret").expect_err("invalid");
        let message = error.to_string();
        assert!(message.contains("event id"), "{message}");
        assert!(!message.contains("secret"), "{message}");
        assert!(serde_json::from_str::<CustomerId>("\"nope\"").is_err());
        assert!(CustomerId::parse("").is_err());
    }

    #[test]
    fn reference_has_the_canonical_shape() {
        let reference = ContactReference::generate();
        let text = reference.as_str();
        assert_eq!(text.len(), 14);
        assert!(text.starts_with("SB-"));
        assert_eq!(text.as_bytes()[8], b'-');
        assert!(
            text.chars()
                .filter(|c| *c != '-')
                .skip(2)
                .all(|c| CROCKFORD.contains(&(c as u8)))
        );
        assert!(CaseReference::generate().as_str().starts_with("CS-"));
    }

    #[test]
    fn reference_parse_forgives_what_people_type() {
        let canonical = ContactReference::parse("SB-7K3MQ-9XD10").expect("canonical");
        assert_eq!(canonical.as_str(), "SB-7K3MQ-9XD10");
        for typed in [
            "sb-7k3mq-9xd10",
            "SB7K3MQ9XD10",
            "sb 7k3mq 9xdio",
            " SB-7K3MQ-9XDlO ",
            "SB-7K3-MQ9-XDL0",
        ] {
            assert_eq!(ContactReference::parse(typed).as_ref(), Ok(&canonical), "{typed}");
        }
    }

    #[test]
    fn reference_parse_rejects_wrong_prefix_length_and_symbols() {
        for bad in [
            "",
            "SB",
            "CS-7K3MQ-9XD10",
            "SB-7K3MQ-9XD1",
            "SB-7K3MQ-9XD100",
            "SB-7K3MQ-9XD1U",
            "SB-7K3MQ-9XD1!",
            "XSB-7K3MQ-9XD10",
        ] {
            assert!(ContactReference::parse(bad).is_err(), "{bad:?}");
        }
        assert!(CaseReference::parse("CS-7K3MQ-9XD10").is_ok());
        assert!(CaseReference::parse("SB-7K3MQ-9XD10").is_err());
    }

    #[test]
    fn reference_serde_is_the_canonical_string() {
        let reference = CaseReference::parse("cs-00000-0000z").expect("valid");
        let json = serde_json::to_string(&reference).expect("serialise");
        assert_eq!(json, "\"CS-00000-0000Z\"");
        assert_eq!(
            serde_json::from_str::<CaseReference>("\"cs0000o0000z\"").expect("deserialise"),
            reference
        );
    }

    fn look_alike(c: char) -> impl Strategy<Value = char> {
        let options: Vec<char> = match c {
            '1' => vec!['1', 'i', 'I', 'l', 'L'],
            '0' => vec!['0', 'o', 'O'],
            other => vec![other, other.to_ascii_lowercase()],
        };
        proptest::sample::select(options)
    }

    proptest! {
        #[test]
        fn generate_then_parse_round_trips(bits in 0u64..(1 << REFERENCE_BITS)) {
            let reference = ContactReference::from_bits(bits);
            prop_assert_eq!(ContactReference::parse(reference.as_str()), Ok(reference.clone()));
            let case = CaseReference::from_bits(bits);
            prop_assert_eq!(CaseReference::parse(case.as_str()), Ok(case.clone()));
        }

        #[test]
        fn distinct_bits_give_distinct_references(
            a in 0u64..(1 << REFERENCE_BITS),
            b in 0u64..(1 << REFERENCE_BITS),
        ) {
            prop_assume!(a != b);
            prop_assert_ne!(ContactReference::from_bits(a), ContactReference::from_bits(b));
        }

        #[test]
        fn look_alikes_case_and_separators_are_tolerated(
            (canonical, typed) in (0u64..(1 << REFERENCE_BITS)).prop_flat_map(|bits| {
                let canonical = ContactReference::from_bits(bits);
                let symbols: Vec<char> = canonical.as_str().chars().filter(|c| *c != '-').collect();
                let typed = symbols
                    .into_iter()
                    .map(|c| (look_alike(c), proptest::sample::select(vec!["", "", "-", " "])))
                    .collect::<Vec<_>>();
                (Just(canonical), typed)
            })
        ) {
            let text: String = typed.iter().map(|(c, sep)| format!("{c}{sep}")).collect();
            prop_assert_eq!(ContactReference::parse(&text), Ok(canonical));
        }

        #[test]
        fn reference_parse_never_panics(input in ".{0,40}") {
            if let Ok(reference) = ContactReference::parse(&input) {
                prop_assert_eq!(ContactReference::parse(reference.as_str()), Ok(reference.clone()));
            }
        }
    }
}
