//! The resident's details. Each value is a newtype whose only constructor is a
//! `parse` that validates and normalises, so a stored value is always in its
//! canonical form and two spellings of one number or postcode compare equal.
//!
//! These are personal data: `Debug` prints `***` instead of the value, and a
//! parse error describes what is expected without echoing the input, so
//! neither can leak through logs or error responses.

use std::fmt;

use phonenumber::country;
use serde::{Deserialize, Serialize};

/// Writes `Name(***)`: personal values never reach logs through `{:?}`.
macro_rules! redacted_debug {
    ($name:ident) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(***)"))
            }
        }
    };
}

/// Serialises as the canonical string and deserialises through `parse`, so
/// a value read back from a store or a message keeps its invariants.
macro_rules! string_serde {
    ($name:ident) => {
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
    };
}

/// Longest phone input we try to parse. Real numbers with punctuation are far
/// shorter; the cap keeps the parser away from pathological input.
const PHONE_INPUT_MAX: usize = 64;

/// A phone number in E.164 (`+447700900123`). UK formats are read with the UK
/// as the default region; international numbers (`+33 …`, `0033 …`) too.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(input: &str) -> Result<Self, String> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err("a phone number is required".to_owned());
        }
        if trimmed.chars().count() > PHONE_INPUT_MAX {
            return Err(format!("a phone number is at most {PHONE_INPUT_MAX} characters"));
        }
        let invalid = || {
            "not a valid phone number: give a uk number such as 01590 646111 or 07700 900123, \
             or an international number starting with +"
                .to_owned()
        };
        // libphonenumber digs numbers out of surrounding text and maps letters
        // to keypad digits, so an email typed into the phone box could become
        // someone else's number. Only what people write in a number is allowed.
        // That also refuses extensions (`x234`, `ext. 234`): E.164 has no room
        // for one, and dropping it silently would lose the part that reaches
        // the resident.
        if !trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || matches!(c, '+' | '(' | ')' | '-' | '.' | '/'))
        {
            return Err("a phone number may contain only digits, spaces, +, -, ., / and brackets".to_owned());
        }
        let parsed = phonenumber::parse(Some(country::Id::GB), trimmed).map_err(|_| invalid())?;
        let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
        if !parsed.is_valid() && !is_ofcom_drama_number(&e164) {
            return Err(invalid());
        }
        Ok(Self(e164))
    }

    /// A number already normalised by [`PhoneNumber::parse`] and read back from
    /// a trusted record (a stored row, an authenticated event): checks only
    /// that it is in E.164 form, `+` and 4 to 15 digits, which is far cheaper
    /// than parsing it again. Numbers in service can be short: small
    /// territories have seven digits with the country code (Niue, +683 4002;
    /// some New Zealand numbers too), so the lower bound leaves room below
    /// anything [`PhoneNumber::parse`] accepts.
    pub fn from_e164(normalised: &str) -> Result<Self, String> {
        let digits = normalised.strip_prefix('+').unwrap_or_default();
        let well_formed = (4..=15).contains(&digits.len())
            && digits.bytes().all(|byte| byte.is_ascii_digit())
            && !digits.starts_with('0');
        if well_formed {
            Ok(Self(normalised.to_owned()))
        } else {
            Err("not a normalised (E.164) phone number".to_owned())
        }
    }

    /// E.164, e.g. `+447700900123`.
    pub fn as_e164(&self) -> &str {
        &self.0
    }

    /// Same as [`PhoneNumber::as_e164`], for uniformity with the other values.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

redacted_debug!(PhoneNumber);
string_serde!(PhoneNumber);

/// Ofcom reserves these UK ranges for drama, documentation and training, so
/// they never reach a real person: 07700 900000–900999 (mobile) and
/// 01632 960000–960999 (geographic, no area). libphonenumber leaves them out
/// as unallocated, but they are exactly what demos, training data and tests
/// should use, so they are accepted. (The other drama ranges, such as
/// 020 7946 0xxx, sit inside allocated ranges and are valid already.)
fn is_ofcom_drama_number(e164: &str) -> bool {
    const DRAMA_PREFIXES: [&str; 2] = ["+447700900", "+441632960"];
    e164.len() == 13
        && e164[1..].bytes().all(|b| b.is_ascii_digit())
        && DRAMA_PREFIXES.iter().any(|prefix| e164.starts_with(prefix))
}

/// The longest address SMTP can carry (RFC 5321 path limit minus the brackets).
const EMAIL_MAX: usize = 254;

/// An email address, lower-cased. The local part is technically case-sensitive,
/// but no real mail system treats it so, and lower-casing lets one resident's
/// contacts be matched whatever they typed.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, String> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err("an email address is required".to_owned());
        }
        if trimmed.len() > EMAIL_MAX {
            return Err(format!("an email address is at most {EMAIL_MAX} characters"));
        }
        let lowered = trimmed.to_lowercase();
        // A bare address only: no `Name <address>`, no `user@[192.0.2.1]`, and a
        // domain with a dot, because those are what councils can actually write to.
        let options = email_address::Options::default()
            .without_display_text()
            .without_domain_literal()
            .with_required_tld();
        let parsed = email_address::EmailAddress::parse_with_options(&lowered, options)
            .map_err(|_| "not a valid email address: expected e.g. name@example.org".to_owned())?;
        Ok(Self(parsed.as_str().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

redacted_debug!(EmailAddress);
string_serde!(EmailAddress);

/// A UK postcode in the Royal Mail form: upper case, one space before the
/// inward code (`SO43 7PN`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Postcode(String);

impl Postcode {
    /// Accepts any case and spacing. Checks the full UK format, including the
    /// letters each position may hold, and the special `GIR 0AA`.
    pub fn parse(input: &str) -> Result<Self, String> {
        let compact: String = input
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if compact.is_empty() {
            return Err("a postcode is required".to_owned());
        }
        let invalid = || "not a valid uk postcode: expected e.g. SO43 7PN".to_owned();
        if !compact.is_ascii() || !(5..=7).contains(&compact.len()) {
            return Err(invalid());
        }
        let (outward, inward) = compact.split_at(compact.len() - 3);
        let valid = (outward == "GIR" && inward == "0AA")
            || (is_valid_outward(outward.as_bytes()) && is_valid_inward(inward.as_bytes()));
        if !valid {
            return Err(invalid());
        }
        Ok(Self(format!("{outward} {inward}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The outward code (`SO43`), the part that names the district; enough for
    /// area statistics without identifying a household.
    pub fn outward(&self) -> &str {
        self.0.split(' ').next().unwrap_or_default()
    }
}

redacted_debug!(Postcode);
string_serde!(Postcode);

/// Royal Mail's position rules (the UK Government Data Standards postcode
/// pattern): letters that never appear in a position are refused, so typos
/// such as `SO43 7PO` are caught rather than stored.
fn is_valid_outward(outward: &[u8]) -> bool {
    const FIRST: &[u8] = b"ABCDEFGHIJKLMNOPRSTUWYZ"; // not Q, V, X
    const SECOND: &[u8] = b"ABCDEFGHKLMNOPQRSTUVWXY"; // not I, J, Z
    const THIRD_A9A: &[u8] = b"ABCDEFGHJKPSTUW";
    const FOURTH_AA9A: &[u8] = b"ABEHMNPRVWXY";
    let digit = |b: u8| b.is_ascii_digit();
    match *outward {
        // A9, A99
        [a, n] => FIRST.contains(&a) && digit(n),
        [a, n, m] if digit(n) && digit(m) => FIRST.contains(&a),
        // A9A
        [a, n, l] if digit(n) => FIRST.contains(&a) && THIRD_A9A.contains(&l),
        // AA9
        [a, b, n] => FIRST.contains(&a) && SECOND.contains(&b) && digit(n),
        // AA99
        [a, b, n, m] if digit(m) => FIRST.contains(&a) && SECOND.contains(&b) && digit(n),
        // AA9A
        [a, b, n, l] => FIRST.contains(&a) && SECOND.contains(&b) && digit(n) && FOURTH_AA9A.contains(&l),
        _ => false,
    }
}

fn is_valid_inward(inward: &[u8]) -> bool {
    const UNIT: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ"; // not C, I, K, M, O, V
    matches!(*inward, [n, a, b] if n.is_ascii_digit() && UNIT.contains(&a) && UNIT.contains(&b))
}

const NAME_MAX: usize = 200;

/// A person's name as they gave it: trimmed, inner whitespace collapsed to
/// single spaces, 1 to 200 characters, no control characters. Nothing else is
/// assumed about names (no case changes, no split into given and family names).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(input: &str) -> Result<Self, String> {
        let collapsed = input.split_whitespace().collect::<Vec<_>>().join(" ");
        if collapsed.is_empty() {
            return Err("a name is required".to_owned());
        }
        if collapsed.chars().count() > NAME_MAX {
            return Err(format!("a name is at most {NAME_MAX} characters"));
        }
        if collapsed.chars().any(is_forbidden_in_text) {
            return Err("a name must not contain control characters".to_owned());
        }
        Ok(Self(collapsed))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

redacted_debug!(PersonName);
string_serde!(PersonName);

/// Control characters, and the bidirectional overrides that make text display
/// in a different order from how it is stored (a spoofing trick in agent UIs).
pub(crate) fn is_forbidden_in_text(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Unique Property Reference Number: the national identifier of an
/// addressable place, 1 to 12 digits. Stored without leading zeros, because
/// some systems pad UPRNs to 12 digits and both forms name the same property.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uprn(String);

impl Uprn {
    pub fn parse(input: &str) -> Result<Self, String> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err("a uprn is required".to_owned());
        }
        if trimmed.len() > 12 || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return Err("a uprn is 1 to 12 digits".to_owned());
        }
        let significant = trimmed.trim_start_matches('0');
        if significant.is_empty() {
            return Err("a uprn is a positive number".to_owned());
        }
        Ok(Self(significant.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn as_u64(&self) -> u64 {
        // At most 12 digits, checked in `parse`, so this always fits.
        self.0.parse().unwrap_or_default()
    }
}

redacted_debug!(Uprn);
string_serde!(Uprn);

/// What the resident told us about themselves; each part optional. Debug
/// shows only which parts are present.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerDetails {
    pub name: Option<PersonName>,
    pub phone: Option<PhoneNumber>,
    pub email: Option<EmailAddress>,
    pub postcode: Option<Postcode>,
    /// First line of the address, free text (trimmed, bounded).
    pub address_line: Option<String>,
    pub uprn: Option<Uprn>,
}

impl fmt::Debug for CustomerDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomerDetails")
            .field("name", &self.name)
            .field("phone", &self.phone)
            .field("email", &self.email)
            .field("postcode", &self.postcode)
            .field("address_line", &self.address_line.as_ref().map(|_| Redacted))
            .field("uprn", &self.uprn)
            .finish()
    }
}

/// Stands in for a personal value in `Debug` output.
pub(crate) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Found by `phone_output_always_reparses`: a short number in service
    /// that `parse` accepts must read back through `from_e164`.
    #[test]
    fn a_short_number_in_service_reads_back() {
        let phone = PhoneNumber::parse("+6483000").expect("a New Zealand number in service");
        assert_eq!(PhoneNumber::from_e164(phone.as_e164()), Ok(phone.clone()));
    }

    #[test]
    fn from_e164_takes_only_the_normalised_form() {
        for normalised in ["+447700900123", "+33123456789", "+12025550123"] {
            assert_eq!(
                PhoneNumber::from_e164(normalised).map(|phone| phone.as_e164().to_owned()),
                Ok(normalised.to_owned())
            );
        }
        for other in [
            "07700 900123",
            "447700900123",
            "+44 7700 900123",
            "+0447700900",
            "+123",
            "+1234567890123456",
            "",
        ] {
            assert!(PhoneNumber::from_e164(other).is_err(), "{other:?}");
        }
    }

    #[test]
    fn phone_accepts_uk_and_international_formats() {
        for (input, e164) in [
            ("07700 900123", "+447700900123"),
            ("07700900000", "+447700900000"),
            ("01632 960999", "+441632960999"),
            ("07911 123456", "+447911123456"),
            ("020 7946 0123", "+442079460123"),
            ("+44 7700 900123", "+447700900123"),
            ("0044 7700 900123", "+447700900123"),
            ("00447700900123", "+447700900123"),
            ("(01590) 646111", "+441590646111"),
            ("01590 646 111", "+441590646111"),
            ("023 8028 5000", "+442380285000"),
            ("+33 1 23 45 67 89", "+33123456789"),
            ("0033 1 23 45 67 89", "+33123456789"),
            (" +1 (202) 555-0123 ", "+12025550123"),
        ] {
            let phone = PhoneNumber::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(phone.as_e164(), e164, "{input}");
        }
    }

    #[test]
    fn phone_rejects_invalid_numbers_without_echoing_them() {
        for input in [
            "",
            "   ",
            "12",
            "07700",
            "0770090012345",
            "07700 901123", // next to the drama range, unallocated
            "01632 961000",
            "hello",
            "+44 1234",
            "999",
            "+999 123456789",
        ] {
            let error = PhoneNumber::parse(input).expect_err(input);
            assert!(
                error.starts_with("not a valid") || error.starts_with("a phone number"),
                "{error}"
            );
        }
        let error = PhoneNumber::parse("0123 SECRET 456").expect_err("letters");
        assert!(!error.contains("SECRET"), "{error}");
        assert!(PhoneNumber::parse(&"1".repeat(100)).is_err());
        assert!(PhoneNumber::parse("01590 646111 ext. 234").is_err());
        assert!(PhoneNumber::parse("01590 646111;ext=234").is_err());
        // Text around a number, or letters for digits, is not a number.
        for text in [
            "07700 900123 (mobile)",
            "07700900123@example.org",
            "0800 FLOWERS",
            "tel:+441590646111",
        ] {
            assert!(PhoneNumber::parse(text).is_err(), "{text}");
        }
        // Inputs that made earlier phonenumber releases panic.
        for tricky in [
            "  2 22#:",
            "003-836-4618x3001",
            "5;phone-context=+1;tel:x",
            "+",
            "++44",
            "()",
            "+0",
            "00",
            "0044",
        ] {
            assert!(PhoneNumber::parse(tricky).is_err(), "{tricky}");
        }
    }

    #[test]
    fn phone_debug_is_redacted_and_serde_is_e164() {
        let phone = PhoneNumber::parse("07700 900123").expect("valid");
        assert_eq!(format!("{phone:?}"), "PhoneNumber(***)");
        let json = serde_json::to_string(&phone).expect("serialise");
        assert_eq!(json, "\"+447700900123\"");
        assert_eq!(
            serde_json::from_str::<PhoneNumber>(&json).expect("deserialise"),
            phone
        );
        assert!(serde_json::from_str::<PhoneNumber>("\"12\"").is_err());
    }

    #[test]
    fn email_is_lowercased_and_validated() {
        let email = EmailAddress::parse("  Resident.Name@Example.ORG ").expect("valid");
        assert_eq!(email.as_str(), "resident.name@example.org");
        assert_eq!(format!("{email:?}"), "EmailAddress(***)");
        for bad in [
            "",
            "plainaddress",
            "@secret.test",
            "secret@",
            "secret@localhost",
            "Secret <secret@secret.test>",
            "secret@[192.0.2.1]",
            "se cret@secret.test",
        ] {
            let error = EmailAddress::parse(bad).expect_err(bad);
            assert!(!error.contains("secret"), "{error}");
        }
        assert!(EmailAddress::parse(&format!("{}@example.org", "a".repeat(250))).is_err());
    }

    #[test]
    fn postcode_normalises_case_and_spacing() {
        for (input, canonical) in [
            ("so43 7pn", "SO43 7PN"),
            ("SO437PN", "SO43 7PN"),
            ("  so 43  7pn ", "SO43 7PN"),
            ("so41 9zg", "SO41 9ZG"),
            ("m1 1ae", "M1 1AE"),
            ("b33 8th", "B33 8TH"),
            ("cr2 6xh", "CR2 6XH"),
            ("dn55 1pt", "DN55 1PT"),
            ("w1a 0ax", "W1A 0AX"),
            ("ec1a 1bb", "EC1A 1BB"),
            ("sw1a2aa", "SW1A 2AA"),
            ("gir0aa", "GIR 0AA"),
            ("bf1 3ax", "BF1 3AX"),
        ] {
            let postcode = Postcode::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(postcode.as_str(), canonical);
        }
        assert_eq!(Postcode::parse("so43 7pn").expect("valid").outward(), "SO43");
    }

    #[test]
    fn postcode_rejects_invalid_formats() {
        for bad in [
            "",
            "SO43",
            "SO43 7P",
            "SO43 7PNN",
            "SO43 PN7",
            "QO43 7PN", // Q never first
            "SI43 7PN", // I never second
            "SO43 7PO", // O never in the inward unit
            "SO43 7CN", // C never in the inward unit
            "W1I 0AX",  // I never third in A9A
            "EC1C 1BB", // C never fourth in AA9A
            "123 4AB",
            "SO43 7PN!",
            "ŠO43 7PN",
            "GIR 0AB",
        ] {
            let error = Postcode::parse(bad).expect_err(bad);
            assert!(error.starts_with("not a valid uk postcode") || error.contains("required"));
        }
        assert_eq!(
            format!("{:?}", Postcode::parse("SO43 7PN").expect("valid")),
            "Postcode(***)"
        );
    }

    #[test]
    fn person_name_is_trimmed_and_collapsed() {
        let name = PersonName::parse("  Alex \t  Example-Resident ").expect("valid");
        assert_eq!(name.as_str(), "Alex Example-Resident");
        assert_eq!(format!("{name:?}"), "PersonName(***)");
        assert!(PersonName::parse("Siân Ó Dálaigh").is_ok());
        assert!(PersonName::parse(&"a".repeat(200)).is_ok());
        assert!(PersonName::parse(&"a".repeat(201)).is_err());
        assert!(PersonName::parse("   ").is_err());
        assert!(PersonName::parse("Alex\u{0}Example").is_err());
        assert!(PersonName::parse("Alex\u{202e}Example").is_err());
        let error = PersonName::parse("Secret\u{7}Name").expect_err("control");
        assert!(!error.contains("Secret"));
    }

    #[test]
    fn uprn_is_digits_without_leading_zeros() {
        let uprn = Uprn::parse(" 000100062188425 ".trim_start_matches(' ')).expect_err("too long");
        assert!(uprn.contains("12 digits"));
        let uprn = Uprn::parse("010012345678").expect("valid");
        assert_eq!(uprn.as_str(), "10012345678");
        assert_eq!(uprn.as_u64(), 10_012_345_678);
        assert_eq!(Uprn::parse("1").expect("valid").as_str(), "1");
        assert_eq!(
            Uprn::parse("999999999999").expect("valid").as_u64(),
            999_999_999_999
        );
        for bad in ["", "0", "000", "12a", "-1", "1 2", "1234567890123"] {
            assert!(Uprn::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(format!("{:?}", Uprn::parse("42").expect("valid")), "Uprn(***)");
    }

    #[test]
    fn customer_details_debug_reveals_nothing_personal() {
        let details = CustomerDetails {
            name: Some(PersonName::parse("Alex Example").expect("valid")),
            phone: Some(PhoneNumber::parse("07700 900123").expect("valid")),
            email: Some(EmailAddress::parse("alex@example.org").expect("valid")),
            postcode: Some(Postcode::parse("SO43 7PN").expect("valid")),
            address_line: Some("1 Example Street".to_owned()),
            uprn: Some(Uprn::parse("100062188425").expect("valid")),
        };
        let debug = format!("{details:?}");
        for secret in ["Alex", "7700", "example.org", "SO43", "Example Street", "1000621"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        let json = serde_json::to_value(&details).expect("serialise");
        assert_eq!(json["phone"], "+447700900123");
        assert_eq!(json["postcode"], "SO43 7PN");
        let back: CustomerDetails = serde_json::from_value(json).expect("deserialise");
        assert_eq!(back, details);
    }

    fn valid_postcode() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-PR-UWYZ][0-9]",
            "[A-PR-UWYZ][0-9][0-9]",
            "[A-PR-UWYZ][0-9][ABCDEFGHJKPSTUW]",
            "[A-PR-UWYZ][A-HK-Y][0-9]",
            "[A-PR-UWYZ][A-HK-Y][0-9][0-9]",
            "[A-PR-UWYZ][A-HK-Y][0-9][ABEHMNPRVWXY]",
        ]
        .prop_flat_map(|outward| (Just(outward), "[0-9][ABD-HJLNP-UW-Z]{2}"))
        .prop_map(|(outward, inward)| format!("{outward} {inward}"))
    }

    /// Mixes case and sprinkles spaces through a string.
    fn messy(canonical: String) -> impl Strategy<Value = String> {
        let n = canonical.len();
        (
            proptest::collection::vec(any::<bool>(), n),
            proptest::collection::vec(0usize..3, n + 1),
        )
            .prop_map(move |(lower, spaces)| {
                let mut out = " ".repeat(spaces[0]);
                for ((c, lower), spaces) in canonical.chars().zip(lower).zip(&spaces[1..]) {
                    out.push(if lower { c.to_ascii_lowercase() } else { c });
                    out.push_str(&" ".repeat(*spaces));
                }
                out
            })
    }

    proptest! {
        #[test]
        fn postcode_normalisation_is_idempotent(input in "[A-Za-z0-9 ]{0,10}") {
            if let Ok(postcode) = Postcode::parse(&input) {
                prop_assert_eq!(Postcode::parse(postcode.as_str()), Ok(postcode.clone()));
            }
        }

        #[test]
        fn valid_postcodes_parse_whatever_the_case_and_spacing(
            (canonical, typed) in valid_postcode().prop_flat_map(|c| (Just(c.clone()), messy(c)))
        ) {
            let parsed = Postcode::parse(&typed);
            prop_assert_eq!(parsed.as_ref().map(Postcode::as_str), Ok(canonical.as_str()));
        }

        #[test]
        fn e164_output_reparses_to_itself(
            national in "7[0-9]{9}",
            prefix in prop_oneof![Just("0"), Just("+44 "), Just("0044")],
        ) {
            if let Ok(phone) = PhoneNumber::parse(&format!("{prefix}{national}")) {
                prop_assert_eq!(PhoneNumber::parse(phone.as_e164()), Ok(phone.clone()));
                prop_assert_eq!(PhoneNumber::from_e164(phone.as_e164()), Ok(phone.clone()));
            }
        }

        #[test]
        fn customer_parsers_never_panic(input in ".{0,80}") {
            for result in [
                PhoneNumber::parse(&input).map(|v| v.as_str().to_owned()),
                EmailAddress::parse(&input).map(|v| v.as_str().to_owned()),
                Postcode::parse(&input).map(|v| v.as_str().to_owned()),
                PersonName::parse(&input).map(|v| v.as_str().to_owned()),
                Uprn::parse(&input).map(|v| v.as_str().to_owned()),
            ] {
                if let Err(description) = result {
                    prop_assert!(!description.is_empty());
                    prop_assert!(description.starts_with(|c: char| c.is_ascii_lowercase()));
                }
            }
        }

        #[test]
        fn phone_output_always_reparses(input in "[+0-9() -]{0,20}") {
            if let Ok(phone) = PhoneNumber::parse(&input) {
                prop_assert!(phone.as_e164().starts_with('+'));
                prop_assert_eq!(PhoneNumber::parse(phone.as_e164()), Ok(phone.clone()));
                prop_assert_eq!(PhoneNumber::from_e164(phone.as_e164()), Ok(phone.clone()));
            }
        }

        #[test]
        fn person_name_is_idempotent(input in "\\PC{0,60}") {
            if let Ok(name) = PersonName::parse(&input) {
                prop_assert_eq!(PersonName::parse(name.as_str()), Ok(name.clone()));
            }
        }
    }
}
