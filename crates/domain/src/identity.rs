//! How likely a contact's identifiers name an existing customer: a pure
//! score from 0 to 100, the signals behind it, and a decision against
//! thresholds (attach automatically, suggest to an agent, or treat as new).
//!
//! Wrongly merging two residents is far worse than a duplicate record: it
//! shows one person's case history to another and sends letters to the
//! wrong person. Duplicates are cheap to merge later. So the rules lean
//! towards asking an agent, and a clear disagreement about who the person is
//! always stops an automatic match.
//!
//! # Weights, and why
//!
//! Identifiers are of two kinds. *Personal* ones reach one person: an email
//! address and a mobile number. *Household* ones reach a place or everyone in
//! it: a landline, the property (UPRN) and the postcode. Household identifiers
//! say the same thing twice when they agree (the landline of a property is
//! the property), so together they are capped; the name is what tells the
//! people in a household apart.
//!
//! | signal | points | why |
//! | --- | --- | --- |
//! | same email | 90 | one mailbox, normally one person: enough alone |
//! | same mobile | 90 | likewise one handset, one person |
//! | same landline | 60 | shared by a household: a suggestion alone, a match with the name |
//! | same UPRN | 60 | one property: a match only with an agreeing name |
//! | same postcode | 25 | ~15 households; counted only when the UPRN is not known on both sides |
//! | household identifiers together | at most 70 | correlated, so never a match without a name |
//! | all identifiers together | at most 100 | |
//! | name agrees | +30 | tells members of a household apart |
//! | name agrees on an initial or one name only | +15 | "J Smith" could be John or Jane |
//! | name uncertain | −10 | similar but not the same: worth a human look |
//! | name conflicts | −40, and never automatic | two people sharing a phone or email are never merged silently |
//! | UPRNs differ | −20 | a different property: moved house, or a different person |
//!
//! A differing phone, email or postcode counts for nothing: people have
//! several numbers and addresses and move house, so a difference is not
//! evidence of a different person. Names alone never reach a suggestion.
//!
//! With the default thresholds (automatic 90, suggest 50): an email or a
//! mobile alone is automatic; a landline or UPRN with an agreeing name is
//! automatic; a landline alone, or postcode with an agreeing name, is a
//! suggestion; an email or mobile with a conflicting name is a suggestion at
//! best, for an agent to decide.
//!
//! # Names
//!
//! Names are compared after folding case and accents (`Siân` ~ `SIAN`),
//! dropping titles (Mr, Mrs, Ms, Miss, Dr, Mx) and punctuation, and putting
//! `Surname, Forename` back in order. The first given names and the surnames
//! are compared separately with Jaro-Winkler and the weaker of the two
//! counts, so `Jane Smith` and `John Smith` conflict although they share most
//! letters. An initial agrees with any name starting with it, and a name
//! written surname first is tolerated. Middle names are ignored, because
//! people give them inconsistently.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::customer::{CustomerDetails, EmailAddress, PersonName, PhoneNumber, Postcode, Uprn};
use crate::error::ValidationErrors;

/// See the table in the module docs for why each weight is what it is.
const EMAIL_POINTS: i32 = 90;
const MOBILE_POINTS: i32 = 90;
const LANDLINE_POINTS: i32 = 60;
const UPRN_POINTS: i32 = 60;
const POSTCODE_POINTS: i32 = 25;
const HOUSEHOLD_CAP: i32 = 70;
const NAME_AGREES_POINTS: i32 = 30;
const NAME_AGREES_PARTLY_POINTS: i32 = 15;
const NAME_UNCERTAIN_POINTS: i32 = -10;
const NAME_CONFLICTS_POINTS: i32 = -40;
const UPRN_CONFLICT_POINTS: i32 = -20;

/// Name similarity (0 to 1) at and above which names agree: tolerates a
/// typo or spelling variant (Jhon/John 0.93, Catherine/Katherine 0.93).
const NAME_AGREES_FROM: f64 = 0.90;
/// Below this names conflict (John/Jane 0.67, Smith/Jones 0); between the
/// two they are uncertain (Anna/Anne 0.88, Mohammed/Muhammad 0.85).
const NAME_CONFLICTS_BELOW: f64 = 0.75;

/// Courtesy titles: not part of who someone is, and given inconsistently.
const TITLES: &[&str] = &["mr", "mrs", "ms", "miss", "dr", "mx"];

/// The identifiers of one party, a contact or a stored customer, each
/// optional. The values are the domain's normalised types, so `07700 900123`
/// and `+44 7700 900123` are already equal here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityEvidence {
    pub name: Option<PersonName>,
    pub phone: Option<PhoneNumber>,
    pub email: Option<EmailAddress>,
    pub postcode: Option<Postcode>,
    pub uprn: Option<Uprn>,
}

impl IdentityEvidence {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.phone.is_none()
            && self.email.is_none()
            && self.postcode.is_none()
            && self.uprn.is_none()
    }
}

impl From<&CustomerDetails> for IdentityEvidence {
    fn from(details: &CustomerDetails) -> Self {
        // The free-text address line is left out: it is typed too many ways
        // to compare, and the UPRN and postcode carry what it would add.
        IdentityEvidence {
            name: details.name.clone(),
            phone: details.phone.clone(),
            email: details.email.clone(),
            postcode: details.postcode.clone(),
            uprn: details.uprn.clone(),
        }
    }
}

/// What the assessment concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchDecision {
    /// Not the same person as far as the evidence goes: treat as new.
    NoMatch,
    /// Possibly the same person: an agent should confirm.
    Suggested,
    /// Attach to the customer without asking.
    Automatic,
}

/// One piece of evidence behind an assessment. Carries no identifier
/// values, so signals can be logged and shown to anyone who sees the
/// decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "signal", rename_all = "snake_case")]
pub enum MatchSignal {
    SameEmail,
    /// `mobile`: a mobile number (personal) rather than a landline or another
    /// kind that a household may share.
    SamePhone {
        mobile: bool,
    },
    SameUprn,
    /// Both give a property and they differ.
    UprnConflicts,
    SamePostcode,
    /// `similarity` 0 to 100. `partial`: the agreement rests on an initial
    /// or on one name alone ("J Smith", "Smith").
    NameAgrees {
        similarity: u8,
        partial: bool,
    },
    /// Similar names that may or may not be the same person.
    NameUncertain {
        similarity: u8,
    },
    /// Clearly different names: rules out an automatic match.
    NameConflicts {
        similarity: u8,
    },
}

/// The result of comparing two parties' evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchAssessment {
    /// 0 to 100.
    pub confidence: u8,
    pub decision: MatchDecision,
    /// In a fixed order: identifiers first, then the name.
    pub signals: Vec<MatchSignal>,
}

/// Confidence levels at which a match is made automatically or suggested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchThresholds {
    /// At or above this (and with no conflicting name) a contact is attached
    /// without asking. Default 90: an email or mobile alone, or a household
    /// identifier with an agreeing name.
    pub automatic: u8,
    /// At or above this an agent is asked. Default 50: a landline alone, or a
    /// postcode with an agreeing name.
    pub suggest: u8,
}

impl Default for MatchThresholds {
    fn default() -> Self {
        MatchThresholds {
            automatic: 90,
            suggest: 50,
        }
    }
}

impl MatchThresholds {
    /// Whether a customer who shares only a postcode with a contact (no
    /// phone, email or UPRN) can reach the automatic threshold: at best the
    /// postcode and an agreeing name, 55 points, so not with the defaults.
    /// Such customers then only ever become suggestions, and a store need
    /// not look up their cases.
    pub fn postcode_alone_may_match(&self) -> bool {
        i32::from(self.automatic) <= POSTCODE_POINTS + NAME_AGREES_POINTS
    }

    /// Requires `1 <= suggest < automatic <= 100`. A `suggest` of 0 would put
    /// every customer in front of agents as a possible match.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if self.automatic > 100 {
            errors.push("automatic", "must be at most 100");
        }
        if self.suggest == 0 {
            errors.push("suggest", "must be at least 1");
        } else if self.suggest >= self.automatic {
            errors.push("suggest", "must be less than automatic");
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    fn decide(&self, confidence: u8, automatic_allowed: bool) -> MatchDecision {
        if automatic_allowed && confidence >= self.automatic {
            MatchDecision::Automatic
        } else if confidence >= self.suggest {
            MatchDecision::Suggested
        } else {
            MatchDecision::NoMatch
        }
    }
}

impl PhoneNumber {
    /// Whether this is a mobile number, which normally reaches one person,
    /// unlike a landline or a number a household or business shares. Where
    /// the numbering plan cannot tell (North America) it is not taken as a
    /// mobile, which only makes matching more careful. Kept beside the
    /// matching rules, its only user.
    pub fn is_mobile(&self) -> bool {
        // Ofcom's drama range (07700 900xxx) is unallocated, so the numbering
        // metadata does not know it as mobile; demos and tests use it as one.
        if self.as_e164().starts_with("+447700900") {
            return true;
        }
        phonenumber::parse(None, self.as_e164()).is_ok_and(|number| {
            number.number_type(&phonenumber::metadata::DATABASE) == phonenumber::Type::Mobile
        })
    }
}

/// How likely `contact` and `customer` are the same person. Symmetric: the
/// order of the two parties changes nothing. `thresholds` should have passed
/// [`MatchThresholds::validate`].
pub fn assess(
    contact: &IdentityEvidence,
    customer: &IdentityEvidence,
    thresholds: MatchThresholds,
) -> MatchAssessment {
    debug_assert!(thresholds.validate().is_ok(), "unvalidated match thresholds");
    let mut signals = Vec::new();
    let mut personal = 0;
    let mut household = 0;
    let mut penalty = 0;

    if let (Some(a), Some(b)) = (&contact.email, &customer.email)
        && a == b
    {
        signals.push(MatchSignal::SameEmail);
        personal += EMAIL_POINTS;
    }
    if let (Some(a), Some(b)) = (&contact.phone, &customer.phone)
        && a == b
    {
        let mobile = a.is_mobile();
        signals.push(MatchSignal::SamePhone { mobile });
        if mobile {
            personal += MOBILE_POINTS;
        } else {
            household += LANDLINE_POINTS;
        }
    }
    let uprns_known = match (&contact.uprn, &customer.uprn) {
        (Some(a), Some(b)) if a == b => {
            signals.push(MatchSignal::SameUprn);
            household += UPRN_POINTS;
            true
        }
        (Some(_), Some(_)) => {
            signals.push(MatchSignal::UprnConflicts);
            penalty += UPRN_CONFLICT_POINTS;
            true
        }
        _ => false,
    };
    if let (Some(a), Some(b)) = (&contact.postcode, &customer.postcode)
        && a == b
    {
        signals.push(MatchSignal::SamePostcode);
        // The UPRN, when both have one, already says whether this is the
        // same property; the postcode would count the street twice.
        if !uprns_known {
            household += POSTCODE_POINTS;
        }
    }
    let identifiers = (personal + household.min(HOUSEHOLD_CAP)).min(100);

    let mut automatic_allowed = true;
    let name_points = match name_signal(contact.name.as_ref(), customer.name.as_ref()) {
        Some(signal) => {
            signals.push(signal);
            match signal {
                MatchSignal::NameAgrees { partial: false, .. } => NAME_AGREES_POINTS,
                MatchSignal::NameAgrees { partial: true, .. } => NAME_AGREES_PARTLY_POINTS,
                MatchSignal::NameUncertain { .. } => NAME_UNCERTAIN_POINTS,
                MatchSignal::NameConflicts { .. } => {
                    automatic_allowed = false;
                    NAME_CONFLICTS_POINTS
                }
                _ => 0,
            }
        }
        None => 0,
    };

    let mut confidence = u8::try_from((identifiers + name_points + penalty).clamp(0, 100)).unwrap_or(0);
    if !automatic_allowed {
        // Kept below the automatic threshold too, so no reader of the
        // confidence alone takes it for a match.
        confidence = confidence.min(thresholds.automatic.saturating_sub(1));
    }
    MatchAssessment {
        confidence,
        decision: thresholds.decide(confidence, automatic_allowed),
        signals,
    }
}

/// The name signal, or `None` when either side gave no usable name.
fn name_signal(a: Option<&PersonName>, b: Option<&PersonName>) -> Option<MatchSignal> {
    let a = name_tokens(a?.as_str());
    let b = name_tokens(b?.as_str());
    let comparison = compare_names(&a, &b)?;
    let similarity = percent(comparison.similarity);
    Some(if comparison.similarity >= NAME_AGREES_FROM {
        MatchSignal::NameAgrees {
            similarity,
            partial: comparison.partial,
        }
    } else if comparison.similarity >= NAME_CONFLICTS_BELOW {
        MatchSignal::NameUncertain { similarity }
    } else {
        MatchSignal::NameConflicts { similarity }
    })
}

fn percent(similarity: f64) -> u8 {
    // In 0..=1, so the cast cannot truncate.
    (similarity.clamp(0.0, 1.0) * 100.0).round() as u8
}

/// A name folded for comparison: lower case, no accents, no titles, no
/// punctuation, `Surname, Forename` turned round, split into words.
fn name_tokens(name: &str) -> Vec<String> {
    let reordered = match name.split_once(',') {
        Some((surname, forenames)) => format!("{forenames} {surname}"),
        None => name.to_owned(),
    };
    let mut folded = String::with_capacity(reordered.len());
    for c in reordered.to_lowercase().nfkd().filter(|c| !is_combining_mark(*c)) {
        match c {
            // Letters with no decomposition into a base letter and a mark.
            'ø' => folded.push('o'),
            'đ' | 'ð' => folded.push('d'),
            'ł' => folded.push('l'),
            'ı' => folded.push('i'),
            'ß' => folded.push_str("ss"),
            'æ' => folded.push_str("ae"),
            'œ' => folded.push_str("oe"),
            'þ' => folded.push_str("th"),
            // O'Brien and OBrien are one name; a hyphen or full stop
            // separates words (Smith-Jones, J.P.).
            '\'' | '\u{2019}' | '\u{2018}' | '`' => {}
            c if c.is_alphanumeric() => folded.push(c),
            _ => folded.push(' '),
        }
    }
    folded
        .split_whitespace()
        .filter(|word| !TITLES.contains(word))
        .map(str::to_owned)
        .collect()
}

struct NameComparison {
    /// 0 to 1.
    similarity: f64,
    /// The agreement rests on an initial or on a one-word name.
    partial: bool,
}

/// Compares folded names. `None` when either is empty (only a title, say).
/// Symmetric by construction: the pair is put in a fixed order first.
fn compare_names(a: &[String], b: &[String]) -> Option<NameComparison> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (a, b) = if a <= b { (a, b) } else { (b, a) };
    let reversed: Vec<String> = b.iter().rev().cloned().collect();
    let mut best = aligned(a, b).max(aligned(a, &reversed));
    // Spacing and hyphens vary (Mary-Ann, Maryann): the same letters in the
    // same order are the same name.
    // Complete only when both give a forename that is more than an initial:
    // two records of "J Smith" may still be John and Jane.
    if a.concat() == b.concat() {
        let complete = [a, b]
            .iter()
            .all(|name| name.len() > 1 && name[0].chars().count() > 1);
        best = best.max(Ranked(1.0, complete));
    }
    Some(NameComparison {
        similarity: best.0,
        partial: !best.1,
    })
}

/// A similarity and whether it is complete (not resting on an initial or a
/// single word), ordered so that among equal similarities a complete
/// comparison wins.
#[derive(Clone, Copy, PartialEq, PartialOrd)]
struct Ranked(f64, bool);

impl Ranked {
    fn max(self, other: Ranked) -> Ranked {
        if other > self { other } else { self }
    }
}

/// First given name against first given name, surname against surname; the
/// weaker of the two is the name's similarity, so a different forename is
/// not outweighed by a shared surname.
fn aligned(a: &[String], b: &[String]) -> Ranked {
    let (Some(a_first), Some(b_first), Some(a_last), Some(b_last)) =
        (a.first(), b.first(), a.last(), b.last())
    else {
        return Ranked(0.0, false);
    };
    if a.len() == 1 || b.len() == 1 {
        // One side gave a single word, which may be either name: the best
        // fit against the other's words, never complete.
        let (single, other) = if a.len() == 1 { (a_first, b) } else { (b_first, a) };
        let best = other
            .iter()
            .map(|word| word_similarity(single, word).0)
            .fold(0.0, f64::max);
        return Ranked(best, false);
    }
    let (forename, forename_initial) = word_similarity(a_first, b_first);
    let (surname, surname_initial) = word_similarity(a_last, b_last);
    Ranked(forename.min(surname), !(forename_initial || surname_initial))
}

/// Similarity of two words, and whether an initial was involved. An initial
/// agrees with any word starting with it and with nothing else.
fn word_similarity(a: &str, b: &str) -> (f64, bool) {
    let a_initial = a.chars().count() == 1;
    let b_initial = b.chars().count() == 1;
    if a_initial || b_initial {
        let agrees = match (a_initial, b_initial) {
            (true, true) => a == b,
            (true, false) => b.starts_with(a),
            _ => a.starts_with(b),
        };
        return (if agrees { 1.0 } else { 0.0 }, true);
    }
    // strsim's matching is greedy, so the order is fixed for symmetry.
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    (strsim::jaro_winkler(first, second), false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(text: &str) -> Option<PersonName> {
        Some(PersonName::parse(text).expect("valid name"))
    }

    fn phone(text: &str) -> Option<PhoneNumber> {
        Some(PhoneNumber::parse(text).expect("valid phone"))
    }

    fn email(text: &str) -> Option<EmailAddress> {
        Some(EmailAddress::parse(text).expect("valid email"))
    }

    fn postcode(text: &str) -> Option<Postcode> {
        Some(Postcode::parse(text).expect("valid postcode"))
    }

    fn uprn(text: &str) -> Option<Uprn> {
        Some(Uprn::parse(text).expect("valid uprn"))
    }

    const MOBILE: &str = "07700 900123";
    const LANDLINE: &str = "01632 960123";

    fn assess_default(a: &IdentityEvidence, b: &IdentityEvidence) -> MatchAssessment {
        assess(a, b, MatchThresholds::default())
    }

    fn name_of(a: &str, b: &str) -> Option<MatchSignal> {
        name_signal(name(a).as_ref(), name(b).as_ref())
    }

    #[test]
    fn mobiles_are_told_from_landlines() {
        for mobile in ["07700 900123", "07911 123456", "+33 6 12 34 56 78"] {
            assert!(PhoneNumber::parse(mobile).expect("valid").is_mobile(), "{mobile}");
        }
        for other in [
            "01632 960123",
            "01590 646111",
            "020 7946 0123",
            "0800 138 1111",
            "+33 1 23 45 67 89",
            "+1 202 555 0123",
        ] {
            assert!(!PhoneNumber::parse(other).expect("valid").is_mobile(), "{other}");
        }
    }

    #[test]
    fn an_email_or_mobile_alone_is_automatic() {
        let contact = IdentityEvidence {
            email: email("resident@example.org"),
            ..Default::default()
        };
        let customer = IdentityEvidence {
            email: email("Resident@Example.org"),
            name: name("Alex Example"),
            ..Default::default()
        };
        let assessment = assess_default(&contact, &customer);
        assert_eq!(assessment.confidence, 90);
        assert_eq!(assessment.decision, MatchDecision::Automatic);
        assert_eq!(assessment.signals, [MatchSignal::SameEmail]);

        let contact = IdentityEvidence {
            phone: phone(MOBILE),
            ..Default::default()
        };
        let customer = IdentityEvidence {
            phone: phone("+447700900123"),
            ..Default::default()
        };
        let assessment = assess_default(&contact, &customer);
        assert_eq!(assessment.decision, MatchDecision::Automatic);
        assert_eq!(assessment.signals, [MatchSignal::SamePhone { mobile: true }]);
    }

    #[test]
    fn a_landline_needs_the_name_to_match() {
        let alone = IdentityEvidence {
            phone: phone(LANDLINE),
            ..Default::default()
        };
        let assessment = assess_default(&alone, &alone);
        assert_eq!(assessment.confidence, 60);
        assert_eq!(assessment.decision, MatchDecision::Suggested);
        assert_eq!(assessment.signals, [MatchSignal::SamePhone { mobile: false }]);

        let named = IdentityEvidence {
            name: name("Alex Example"),
            ..alone.clone()
        };
        assert_eq!(assess_default(&named, &named).decision, MatchDecision::Automatic);
        let initial = IdentityEvidence {
            name: name("A Example"),
            ..alone.clone()
        };
        // "A Example" might be Alex or Ann: same household, not the same person.
        let assessment = assess_default(&initial, &named);
        assert_eq!(assessment.confidence, 75);
        assert_eq!(assessment.decision, MatchDecision::Suggested);
    }

    #[test]
    fn uprn_with_an_agreeing_name_is_strong() {
        let contact = IdentityEvidence {
            name: name("Mr John Smith"),
            uprn: uprn("10012345678"),
            postcode: postcode("SO43 7PN"),
            ..Default::default()
        };
        let customer = IdentityEvidence {
            name: name("SMITH, John"),
            uprn: uprn("010012345678"),
            postcode: postcode("so437pn"),
            ..Default::default()
        };
        let assessment = assess_default(&contact, &customer);
        assert_eq!(assessment.confidence, 90);
        assert_eq!(assessment.decision, MatchDecision::Automatic);
        assert_eq!(
            assessment.signals,
            [
                MatchSignal::SameUprn,
                MatchSignal::SamePostcode,
                MatchSignal::NameAgrees {
                    similarity: 100,
                    partial: false
                },
            ]
        );
        // The property alone could be anyone living there.
        let nameless = IdentityEvidence {
            name: None,
            ..contact.clone()
        };
        assert_eq!(
            assess_default(&nameless, &customer).decision,
            MatchDecision::Suggested
        );
    }

    #[test]
    fn postcode_and_name_are_only_ever_a_suggestion() {
        let contact = IdentityEvidence {
            name: name("Siân Ó Dálaigh"),
            postcode: postcode("SO41 9ZG"),
            ..Default::default()
        };
        let customer = IdentityEvidence {
            name: name("Sian O'Dalaigh"),
            postcode: postcode("SO41 9ZG"),
            ..Default::default()
        };
        let assessment = assess_default(&contact, &customer);
        assert_eq!(assessment.confidence, 55);
        assert_eq!(assessment.decision, MatchDecision::Suggested);
        // Even with a lax automatic threshold the household cap holds it back.
        let lax = MatchThresholds {
            automatic: 60,
            suggest: 50,
        };
        assert_eq!(
            assess(&contact, &customer, lax).decision,
            MatchDecision::Suggested
        );
        // Which the stores rely on to skip such customers' cases.
        assert!(!MatchThresholds::default().postcode_alone_may_match());
        assert!(!lax.postcode_alone_may_match());
        let laxer = MatchThresholds {
            automatic: 55,
            suggest: 50,
        };
        assert!(laxer.postcode_alone_may_match());
        assert_eq!(
            assess(&contact, &customer, laxer).decision,
            MatchDecision::Automatic
        );
        let no_name = IdentityEvidence {
            name: None,
            ..contact
        };
        assert_eq!(
            assess_default(&no_name, &customer).decision,
            MatchDecision::NoMatch
        );
    }

    #[test]
    fn a_conflicting_name_is_never_merged_silently() {
        let contact = IdentityEvidence {
            name: name("Jane Smith"),
            email: email("smiths@example.org"),
            phone: phone(MOBILE),
            uprn: uprn("42"),
            ..Default::default()
        };
        let customer = IdentityEvidence {
            name: name("John Smith"),
            ..contact.clone()
        };
        let assessment = assess_default(&contact, &customer);
        assert_eq!(assessment.decision, MatchDecision::Suggested);
        assert!(assessment.confidence < 90);
        assert!(matches!(
            assessment.signals.last(),
            Some(MatchSignal::NameConflicts { .. })
        ));
        // Whatever the thresholds.
        let lax = MatchThresholds {
            automatic: 20,
            suggest: 10,
        };
        let assessment = assess(&contact, &customer, lax);
        assert_eq!(assessment.decision, MatchDecision::Suggested);
        assert_eq!(assessment.confidence, 19);
    }

    #[test]
    fn conflicting_uprns_lower_confidence() {
        let contact = IdentityEvidence {
            email: email("resident@example.org"),
            uprn: uprn("42"),
            postcode: postcode("SO43 7PN"),
            ..Default::default()
        };
        let moved = IdentityEvidence {
            uprn: uprn("43"),
            ..contact.clone()
        };
        let assessment = assess_default(&contact, &moved);
        assert_eq!(assessment.confidence, 70);
        assert_eq!(assessment.decision, MatchDecision::Suggested);
        assert!(assessment.signals.contains(&MatchSignal::UprnConflicts));
        // Same email and name after a move: still the same person.
        let named = |evidence: &IdentityEvidence| IdentityEvidence {
            name: name("Alex Example"),
            ..evidence.clone()
        };
        assert_eq!(
            assess_default(&named(&contact), &named(&moved)).decision,
            MatchDecision::Automatic
        );
    }

    #[test]
    fn nothing_in_common_is_no_match() {
        let contact = IdentityEvidence {
            name: name("Alex Example"),
            phone: phone(MOBILE),
            ..Default::default()
        };
        let customer = IdentityEvidence {
            name: name("Alex Example"),
            phone: phone("07700 900456"),
            email: email("alex@example.org"),
            ..Default::default()
        };
        let assessment = assess_default(&contact, &customer);
        // A name alone is never enough, and a different number is no evidence.
        assert_eq!(assessment.confidence, 30);
        assert_eq!(assessment.decision, MatchDecision::NoMatch);
        let empty = IdentityEvidence::default();
        assert!(empty.is_empty());
        let assessment = assess_default(&empty, &empty);
        assert_eq!((assessment.confidence, assessment.signals.len()), (0, 0));
    }

    #[test]
    fn names_fold_case_accents_titles_and_order() {
        let agrees = |a: &str, b: &str| {
            matches!(
                name_of(a, b),
                Some(MatchSignal::NameAgrees { partial: false, .. })
            )
        };
        for (a, b) in [
            ("John Smith", "john smith"),
            ("Mr John Smith", "John Smith"),
            ("Dr. John Smith", "JOHN SMITH"),
            ("Smith, John", "John Smith"),
            ("Smith, Mrs Jane", "Jane Smith"),
            ("Smith John", "John Smith"),
            ("John Paul Smith", "John Smith"),
            ("Zoë Brontë", "Zoe Bronte"),
            ("Bjørn Ødegård", "Bjorn Odegard"),
            ("Jürgen Großmann", "Jurgen Grossmann"),
            ("Siobhán O'Brien", "Siobhan OBrien"),
            ("Mary-Ann Smith-Jones", "Mary Ann Smith Jones"),
            ("Maryann Smith", "Mary-Ann Smith"),
            ("Jhon Smith", "John Smith"),
            ("Catherine Smith", "Katherine Smith"),
        ] {
            assert!(agrees(a, b), "{a} ~ {b}: {:?}", name_of(a, b));
        }
        assert_eq!(
            name_of("J Smith", "John Smith"),
            Some(MatchSignal::NameAgrees {
                similarity: 100,
                partial: true
            })
        );
        assert!(matches!(
            name_of("J. P. Smith", "John Paul Smith"),
            Some(MatchSignal::NameAgrees { partial: true, .. })
        ));
        assert!(matches!(
            name_of("Smith", "John Smith"),
            Some(MatchSignal::NameAgrees { partial: true, .. })
        ));
        // Only a title: no usable name, so no signal at all.
        assert_eq!(name_of("Mr", "John Smith"), None);
    }

    #[test]
    fn different_people_conflict_and_near_names_are_uncertain() {
        for (a, b) in [
            ("Jane Smith", "John Smith"),
            ("John Smith", "John Jones"),
            ("J Smith", "Alex Smith"),
            ("Alex Example", "Sam Sample"),
            ("Smith", "Jones"),
        ] {
            assert!(
                matches!(name_of(a, b), Some(MatchSignal::NameConflicts { .. })),
                "{a} / {b}: {:?}",
                name_of(a, b)
            );
        }
        for (a, b) in [("Anna Smith", "Anne Smith"), ("Mohammed Khan", "Muhammad Khan")] {
            assert!(
                matches!(name_of(a, b), Some(MatchSignal::NameUncertain { .. })),
                "{a} / {b}: {:?}",
                name_of(a, b)
            );
        }
    }

    #[test]
    fn thresholds_are_validated() {
        assert_eq!(MatchThresholds::default().validate(), Ok(()));
        let check = |automatic, suggest| MatchThresholds { automatic, suggest }.validate();
        assert_eq!(check(100, 99), Ok(()));
        let error = check(101, 50).expect_err("too high");
        assert!(error.field("automatic").is_some());
        let error = check(50, 50).expect_err("not below");
        assert_eq!(
            error.field("suggest").map(|v| v.description.as_str()),
            Some("must be less than automatic")
        );
        assert!(check(90, 0).expect_err("zero").field("suggest").is_some());
        let parsed: MatchThresholds = serde_json::from_str(r#"{"automatic": 95}"#).expect("deserialise");
        assert_eq!(
            parsed,
            MatchThresholds {
                automatic: 95,
                suggest: 50
            }
        );
        assert!(serde_json::from_str::<MatchThresholds>(r#"{"auto": 95}"#).is_err());
    }

    #[test]
    fn evidence_and_assessments_reveal_nothing_personal() {
        let details = CustomerDetails {
            name: name("Alex Example"),
            phone: phone(MOBILE),
            email: email("alex@example.org"),
            postcode: postcode("SO43 7PN"),
            address_line: Some("1 Example Street".to_owned()),
            uprn: uprn("100062188425"),
        };
        let evidence = IdentityEvidence::from(&details);
        assert_eq!(evidence.phone, details.phone);
        let assessment = assess_default(&evidence, &evidence);
        let debug = format!("{evidence:?} {assessment:?}");
        let json = serde_json::to_string(&assessment).expect("serialise");
        for secret in ["Alex", "7700", "example.org", "SO43", "Example Street", "1000621"] {
            assert!(!debug.contains(secret), "{debug}");
            assert!(!json.contains(secret), "{json}");
        }
        assert!(
            json.contains(r#"{"signal":"same_phone","mobile":true}"#),
            "{json}"
        );
    }

    fn evidence_strategy() -> impl Strategy<Value = IdentityEvidence> {
        // Small pools so that two random parties often share identifiers.
        let names = prop::option::of(prop::sample::select(vec![
            "Alex Example",
            "A Example",
            "Example, Alex",
            "Sam Example",
            "Alex Sample",
            "Mr Sam Sample",
            "Zoë Brontë",
            "Zoe Bronte",
            "Jo",
        ]));
        let phones = prop::option::of(prop::sample::select(vec![
            "07700 900001",
            "07700 900002",
            "01632 960001",
            "01632 960002",
        ]));
        let emails = prop::option::of(prop::sample::select(vec!["a@example.org", "b@example.org"]));
        let postcodes = prop::option::of(prop::sample::select(vec!["SO43 7PN", "SO41 9ZG"]));
        let uprns = prop::option::of(prop::sample::select(vec!["1", "2"]));
        (names, phones, emails, postcodes, uprns).prop_map(|(n, p, e, pc, u)| IdentityEvidence {
            name: n.and_then(name),
            phone: p.and_then(phone),
            email: e.and_then(email),
            postcode: pc.and_then(postcode),
            uprn: u.and_then(uprn),
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn assess_is_symmetric_and_bounded(a in evidence_strategy(), b in evidence_strategy()) {
            let forward = assess_default(&a, &b);
            let backward = assess_default(&b, &a);
            prop_assert_eq!(forward.confidence, backward.confidence);
            prop_assert_eq!(forward.decision, backward.decision);
            prop_assert!(forward.confidence <= 100);
        }

        #[test]
        fn a_conflicting_name_never_helps(
            a in evidence_strategy(),
            b in evidence_strategy(),
            first in "[A-Za-z]{1,8}( [A-Za-z]{1,10}){0,2}",
            second in "[A-Za-z]{1,8}( [A-Za-z]{1,10}){0,2}",
        ) {
            let unnamed = |e: &IdentityEvidence| IdentityEvidence { name: None, ..e.clone() };
            let base = assess_default(&unnamed(&a), &unnamed(&b));
            let named_a = IdentityEvidence { name: name(&first), ..unnamed(&a) };
            let named_b = IdentityEvidence { name: name(&second), ..unnamed(&b) };
            let named = assess_default(&named_a, &named_b);
            if named.signals.iter().any(|s| matches!(s, MatchSignal::NameConflicts { .. })) {
                prop_assert!(named.confidence <= base.confidence);
                prop_assert_ne!(named.decision, MatchDecision::Automatic);
            }
        }

        #[test]
        fn confidence_stays_in_range_for_any_names(
            a in evidence_strategy(),
            first in "\\PC{1,40}",
            second in "\\PC{1,40}",
        ) {
            let named_a = IdentityEvidence { name: PersonName::parse(&first).ok(), ..a.clone() };
            let named_b = IdentityEvidence { name: PersonName::parse(&second).ok(), ..a };
            let assessment = assess_default(&named_a, &named_b);
            prop_assert!(assessment.confidence <= 100);
            let backward = assess_default(&named_b, &named_a);
            prop_assert_eq!(assessment.confidence, backward.confidence);
        }

        #[test]
        fn evidence_with_an_email_or_mobile_matches_itself(a in evidence_strategy()) {
            let personal = a.email.is_some() || a.phone.as_ref().is_some_and(PhoneNumber::is_mobile);
            prop_assume!(personal);
            let assessment = assess_default(&a, &a);
            prop_assert_eq!(assessment.decision, MatchDecision::Automatic);
        }
    }
}
