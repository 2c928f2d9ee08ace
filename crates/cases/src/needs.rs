//! What a resident told the council about how to serve them, kept on their
//! customer record, and the consents they gave (DESIGN.md: "needs travel
//! with every contact and shape routing").
//!
//! The rules, decided here free of SQL so both stores follow them:
//! - **Where needs come from.** Staff record them with the resident
//!   (`UpdateCustomerNeeds` replaces the record as a whole), and the needs a
//!   resident states on a contact are added as it arrives
//!   ([`CustomerNeeds::learn`]): an accessibility need once stated stays until
//!   staff remove it, and the language stated last is the preferred one. A
//!   resident should not have to ask for a BSL interpreter on every call.
//! - **Vulnerability needs consent.** It is special category data (UK GDPR
//!   article 9), recorded only while the resident's consent to it is on
//!   record. Withdrawing the consent removes the vulnerability with it. A
//!   contact on which the resident ticked both "vulnerable" and the consent
//!   is itself a consent given, recorded as one, naming the contact.
//! - **Routing sees them.** `case.opened` and `case.updated` carry the
//!   record's needs ([`CustomerNeeds::for_routing`]), so a contact from a
//!   known resident is routed by everything the council knows, not only by
//!   what they said this time.
//!
//! Vulnerabilities and consent statements are personal data: `Debug` shows
//! neither, and neither goes into logs.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_domain::{Channel, ContactId, CustomerId, Needs};
use uuid::Uuid;

use crate::error::{CasesError, CasesResult};
use crate::lifecycle::ACTOR_CONTACT;

/// A kind of vulnerability the council adapts its service for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vulnerability {
    Bereavement,
    Carer,
    CareLeaver,
    Disability,
    DomesticAbuse,
    FinancialHardship,
    LearningDisability,
    MentalHealth,
    OlderPerson,
    PhysicalHealth,
    /// The resident said they are vulnerable on a contact, without saying more.
    Declared,
}

impl Vulnerability {
    pub const ALL: [Vulnerability; 11] = [
        Vulnerability::Bereavement,
        Vulnerability::Carer,
        Vulnerability::CareLeaver,
        Vulnerability::Disability,
        Vulnerability::DomesticAbuse,
        Vulnerability::FinancialHardship,
        Vulnerability::LearningDisability,
        Vulnerability::MentalHealth,
        Vulnerability::OlderPerson,
        Vulnerability::PhysicalHealth,
        Vulnerability::Declared,
    ];

    /// The wire and storage form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Vulnerability::Bereavement => "bereavement",
            Vulnerability::Carer => "carer",
            Vulnerability::CareLeaver => "care-leaver",
            Vulnerability::Disability => "disability",
            Vulnerability::DomesticAbuse => "domestic-abuse",
            Vulnerability::FinancialHardship => "financial-hardship",
            Vulnerability::LearningDisability => "learning-disability",
            Vulnerability::MentalHealth => "mental-health",
            Vulnerability::OlderPerson => "older-person",
            Vulnerability::PhysicalHealth => "physical-health",
            Vulnerability::Declared => "declared",
        }
    }

    /// The message lists what is accepted and does not echo the input.
    pub fn parse(input: &str) -> Result<Self, String> {
        let input = input.trim();
        Self::ALL
            .into_iter()
            .find(|vulnerability| vulnerability.as_str() == input)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                format!("not a known vulnerability: expected one of {}", known.join(", "))
            })
    }
}

/// How to serve a resident well, as they told the council.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CustomerNeeds {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_channel: Option<Channel>,
    /// BCP 47, lowercased, e.g. `cy`, `pl`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_language: Option<String>,
    pub british_sign_language: bool,
    pub interpreter: bool,
    pub large_print: bool,
    pub hearing_loop: bool,
    pub assisted_digital: bool,
    pub wheelchair_access: bool,
    /// Only ever non-empty while a vulnerability consent is on record.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub vulnerabilities: BTreeSet<Vulnerability>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    /// A staff subject, or [`ACTOR_CONTACT`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

impl fmt::Debug for CustomerNeeds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The accessibility flags say little on their own; vulnerabilities
        // are special category data, so only their presence shows.
        f.debug_struct("CustomerNeeds")
            .field("preferred_channel", &self.preferred_channel)
            .field("preferred_language", &self.preferred_language)
            .field("accessibility", &self.accessibility_flags())
            .field("vulnerable", &!self.vulnerabilities.is_empty())
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

impl CustomerNeeds {
    fn accessibility_flags(&self) -> [bool; 6] {
        [
            self.british_sign_language,
            self.interpreter,
            self.large_print,
            self.hearing_loop,
            self.assisted_digital,
            self.wheelchair_access,
        ]
    }

    /// Adds what a resident stated on a contact: accessibility needs they did
    /// not have on record, their language when they gave one, and, when they
    /// said they are vulnerable and consented to it being recorded,
    /// [`Vulnerability::Declared`] unless a more precise one is recorded.
    /// Nothing is removed. Returns whether anything changed.
    pub fn learn(&mut self, stated: &Needs, at: DateTime<Utc>) -> bool {
        let before = self.clone();
        if let Some(language) = &stated.language {
            self.preferred_language = Some(language.clone());
        }
        self.british_sign_language |= stated.british_sign_language;
        self.interpreter |= stated.interpreter;
        self.large_print |= stated.large_print;
        self.hearing_loop |= stated.hearing_loop;
        self.assisted_digital |= stated.assisted_digital;
        self.wheelchair_access |= stated.wheelchair_access;
        if consented_vulnerability(stated) && self.vulnerabilities.is_empty() {
            self.vulnerabilities.insert(Vulnerability::Declared);
        }
        let changed = *self != before;
        if changed {
            self.updated_at = Some(at);
            self.updated_by = Some(ACTOR_CONTACT.to_owned());
        }
        changed
    }

    /// The needs routing matches agents on. Vulnerability counts as
    /// consented: it is only ever on the record with consent.
    pub fn for_routing(&self) -> Needs {
        let vulnerable = !self.vulnerabilities.is_empty();
        Needs {
            language: self.preferred_language.clone(),
            british_sign_language: self.british_sign_language,
            interpreter: self.interpreter,
            large_print: self.large_print,
            hearing_loop: self.hearing_loop,
            assisted_digital: self.assisted_digital,
            wheelchair_access: self.wheelchair_access,
            vulnerable,
            vulnerability_consent: vulnerable,
        }
    }

    /// Without the vulnerabilities: what stays when consent is withdrawn.
    pub fn without_vulnerabilities(mut self) -> Self {
        self.vulnerabilities.clear();
        self
    }

    pub(crate) fn to_json(&self) -> CasesResult<String> {
        crate::plan::to_json("customers.needs", self)
    }

    pub(crate) fn from_json(text: &str) -> CasesResult<Self> {
        crate::store::from_json("customers.needs", text)
    }
}

/// The survivor's record after a merge, when it changes: the merged
/// record's accessibility needs are added, and its language and preferred
/// channel where the survivor has none. Vulnerabilities stay with the
/// consent they were given under, on the merged record: staff record them
/// again on the survivor with the resident's consent.
pub(crate) fn after_merge(
    survivor: &CustomerNeeds,
    merged: &CustomerNeeds,
    actor: &str,
    at: DateTime<Utc>,
) -> Option<CustomerNeeds> {
    let mut combined = survivor.clone();
    combined.preferred_channel = survivor.preferred_channel.or(merged.preferred_channel);
    combined.preferred_language = survivor
        .preferred_language
        .clone()
        .or_else(|| merged.preferred_language.clone());
    combined.british_sign_language |= merged.british_sign_language;
    combined.interpreter |= merged.interpreter;
    combined.large_print |= merged.large_print;
    combined.hearing_loop |= merged.hearing_loop;
    combined.assisted_digital |= merged.assisted_digital;
    combined.wheelchair_access |= merged.wheelchair_access;
    (combined != *survivor).then(|| CustomerNeeds {
        updated_at: Some(at),
        updated_by: Some(actor.to_owned()),
        ..combined
    })
}

/// The survivor's record after an un-merge: as it was before the merge,
/// with the vulnerabilities it holds now. A merge never changes them, so
/// the current ones are those the resident's consent still stands behind:
/// one withdrawn since the merge must not come back with the old record.
pub(crate) fn after_unmerge(before: &CustomerNeeds, current: &CustomerNeeds) -> CustomerNeeds {
    CustomerNeeds {
        vulnerabilities: current.vulnerabilities.clone(),
        ..before.clone()
    }
}

/// Whether a contact's resident said they are vulnerable and consented to it
/// being recorded.
pub(crate) fn consented_vulnerability(needs: &Needs) -> bool {
    needs.vulnerable && needs.vulnerability_consent
}

/// What a consent allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsentPurpose {
    /// Recording the resident's vulnerability.
    Vulnerability,
}

impl ConsentPurpose {
    pub const ALL: [ConsentPurpose; 1] = [ConsentPurpose::Vulnerability];

    /// The storage form, also used in the migrations' check constraints.
    pub const fn as_str(self) -> &'static str {
        match self {
            ConsentPurpose::Vulnerability => "vulnerability",
        }
    }

    pub fn parse(input: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|purpose| purpose.as_str() == input)
            .ok_or_else(|| "unknown consent purpose".to_owned())
    }
}

/// A consent as recorded.
#[derive(Clone, PartialEq, Eq)]
pub struct CustomerConsent {
    pub id: Uuid,
    pub customer_id: CustomerId,
    pub purpose: ConsentPurpose,
    /// What the resident agreed to.
    pub statement: String,
    /// The channel they gave it on, when known.
    pub channel: Option<Channel>,
    /// A staff subject, or [`ACTOR_CONTACT`].
    pub recorded_by: String,
    pub given_at: DateTime<Utc>,
    /// The contact it was given on, when it came with one.
    pub contact_id: Option<ContactId>,
    pub withdrawal: Option<ConsentWithdrawal>,
}

impl CustomerConsent {
    pub fn is_active(&self) -> bool {
        self.withdrawal.is_none()
    }
}

impl fmt::Debug for CustomerConsent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomerConsent")
            .field("id", &self.id)
            .field("customer_id", &self.customer_id)
            .field("purpose", &self.purpose)
            .field("given_at", &self.given_at)
            .field("withdrawn", &self.withdrawal.is_some())
            .finish_non_exhaustive()
    }
}

/// When and why a consent was withdrawn, and who recorded it.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsentWithdrawal {
    pub at: DateTime<Utc>,
    pub by: String,
    /// Empty when none was given.
    pub reason: String,
}

impl fmt::Debug for ConsentWithdrawal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsentWithdrawal")
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

/// Staff replacing a resident's needs record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedsUpdate {
    pub customer_id: CustomerId,
    /// The record as it is to be; the store sets `updated_at` and `updated_by`.
    pub needs: CustomerNeeds,
    pub actor: String,
}

/// Staff recording a resident's consent.
#[derive(Clone, PartialEq, Eq)]
pub struct NewConsent {
    pub customer_id: CustomerId,
    pub purpose: ConsentPurpose,
    pub statement: String,
    pub channel: Option<Channel>,
    pub actor: String,
}

impl NewConsent {
    /// The consent as the store records it, given at `at`.
    pub(crate) fn recorded_at(&self, at: DateTime<Utc>) -> CustomerConsent {
        CustomerConsent {
            id: Uuid::now_v7(),
            customer_id: self.customer_id,
            purpose: self.purpose,
            statement: self.statement.clone(),
            channel: self.channel,
            recorded_by: self.actor.clone(),
            given_at: at,
            contact_id: None,
            withdrawal: None,
        }
    }
}

/// Staff recording that a resident withdrew a consent.
#[derive(Clone, PartialEq, Eq)]
pub struct WithdrawConsent {
    pub consent_id: Uuid,
    pub reason: String,
    pub actor: String,
}

// What the resident said stays out of debug output, as with the records.
impl fmt::Debug for NewConsent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewConsent")
            .field("customer_id", &self.customer_id)
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for WithdrawConsent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithdrawConsent")
            .field("consent_id", &self.consent_id)
            .finish_non_exhaustive()
    }
}

/// A customer as the store finds them before changing their needs or
/// consents: what decides whether the change may be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Standing {
    pub(crate) merged_into: Option<String>,
    pub(crate) erased: bool,
    /// A vulnerability consent is on record and not withdrawn.
    pub(crate) vulnerability_consent: bool,
    pub(crate) needs: CustomerNeeds,
}

impl Standing {
    /// An erased customer gets no new personal data; a merged one's record
    /// is the survivor's. The message names ids only.
    pub(crate) fn check_open(&self) -> CasesResult<()> {
        if self.erased {
            return Err(CasesError::NeedsRefused("the customer was erased".to_owned()));
        }
        if let Some(survivor) = &self.merged_into {
            return Err(CasesError::NeedsRefused(format!(
                "the customer was merged into {survivor}: record it on that customer"
            )));
        }
        Ok(())
    }

    /// The record `update` asks for, stamped with who and when, if it may be made.
    pub(crate) fn updated(&self, update: &NeedsUpdate, at: DateTime<Utc>) -> CasesResult<CustomerNeeds> {
        self.check_open()?;
        if !update.needs.vulnerabilities.is_empty() && !self.vulnerability_consent {
            return Err(CasesError::NeedsRefused(
                "vulnerabilities are recorded only while the resident's consent to it is on record: \
                 record the consent first (RecordConsent, CONSENT_PURPOSE_VULNERABILITY)"
                    .to_owned(),
            ));
        }
        Ok(CustomerNeeds {
            updated_at: Some(at),
            updated_by: Some(update.actor.clone()),
            ..update.needs.clone()
        })
    }

    /// The record after a consent for `purpose` is withdrawn, if it changes.
    pub(crate) fn after_withdrawal(
        &self,
        purpose: ConsentPurpose,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Option<CustomerNeeds> {
        match purpose {
            ConsentPurpose::Vulnerability if !self.needs.vulnerabilities.is_empty() => Some(CustomerNeeds {
                updated_at: Some(at),
                updated_by: Some(actor.to_owned()),
                ..self.needs.clone().without_vulnerabilities()
            }),
            ConsentPurpose::Vulnerability => None,
        }
    }
}

/// A consent already withdrawn cannot be withdrawn again.
pub(crate) fn check_withdrawable(consent: &CustomerConsent) -> CasesResult<()> {
    match consent.withdrawal {
        Some(_) => Err(CasesError::NeedsRefused(format!(
            "consent {} was withdrawn already",
            consent.id
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 5, 10, 0, 0)
            .single()
            .expect("valid time")
    }

    #[test]
    fn stated_needs_are_added_and_never_removed() {
        let mut needs = CustomerNeeds::default();
        let stated = Needs {
            language: Some("cy".to_owned()),
            british_sign_language: true,
            ..Needs::default()
        };
        assert!(needs.learn(&stated, at()));
        assert!(needs.british_sign_language);
        assert_eq!(needs.preferred_language.as_deref(), Some("cy"));
        assert_eq!(needs.updated_by.as_deref(), Some(ACTOR_CONTACT));
        // A later contact that does not mention them removes nothing.
        assert!(!needs.learn(&Needs::default(), at()));
        assert!(needs.british_sign_language);
        assert_eq!(needs.preferred_language.as_deref(), Some("cy"));
        // The language stated last is the preferred one.
        let polish = Needs {
            language: Some("pl".to_owned()),
            ..Needs::default()
        };
        assert!(needs.learn(&polish, at()));
        assert_eq!(needs.preferred_language.as_deref(), Some("pl"));
    }

    #[test]
    fn vulnerability_is_learned_only_with_consent() {
        let mut needs = CustomerNeeds::default();
        let without_consent = Needs {
            vulnerable: true,
            ..Needs::default()
        };
        assert!(!needs.learn(&without_consent, at()));
        assert!(needs.vulnerabilities.is_empty());
        assert!(!needs.for_routing().vulnerable);

        let with_consent = Needs {
            vulnerable: true,
            vulnerability_consent: true,
            ..Needs::default()
        };
        assert!(needs.learn(&with_consent, at()));
        assert_eq!(needs.vulnerabilities, BTreeSet::from([Vulnerability::Declared]));
        let routing = needs.for_routing();
        assert!(routing.vulnerable && routing.vulnerability_consent);

        // A precise vulnerability on record is not diluted by "declared".
        let mut precise = CustomerNeeds {
            vulnerabilities: BTreeSet::from([Vulnerability::Bereavement]),
            ..CustomerNeeds::default()
        };
        assert!(!precise.learn(&with_consent, at()));
        assert_eq!(
            precise.vulnerabilities,
            BTreeSet::from([Vulnerability::Bereavement])
        );
        assert!(precise.without_vulnerabilities().vulnerabilities.is_empty());
    }

    #[test]
    fn needs_round_trip_through_storage_and_hide_vulnerability_in_debug() {
        let needs = CustomerNeeds {
            preferred_channel: Some(Channel::Letter),
            preferred_language: Some("pl".to_owned()),
            large_print: true,
            vulnerabilities: BTreeSet::from([Vulnerability::MentalHealth]),
            updated_at: Some(at()),
            updated_by: Some("agent-ada".to_owned()),
            ..CustomerNeeds::default()
        };
        let json = needs.to_json().expect("serialises");
        assert!(json.contains("\"mental-health\""), "{json}");
        assert_eq!(CustomerNeeds::from_json(&json).expect("parses"), needs);
        assert_eq!(
            CustomerNeeds::from_json("{}").expect("parses"),
            CustomerNeeds::default()
        );
        let debug = format!("{needs:?}");
        assert!(!debug.contains("mental"), "{debug}");
        assert!(debug.contains("vulnerable: true"), "{debug}");
    }

    #[test]
    fn a_merge_adds_the_merged_records_needs_but_not_its_vulnerabilities() {
        let survivor = CustomerNeeds {
            preferred_language: Some("cy".to_owned()),
            large_print: true,
            ..CustomerNeeds::default()
        };
        let merged = CustomerNeeds {
            preferred_channel: Some(Channel::Letter),
            preferred_language: Some("pl".to_owned()),
            british_sign_language: true,
            vulnerabilities: BTreeSet::from([Vulnerability::Carer]),
            ..CustomerNeeds::default()
        };
        let combined = after_merge(&survivor, &merged, "agent-ada", at()).expect("changed");
        assert_eq!(combined.preferred_language.as_deref(), Some("cy"));
        assert_eq!(combined.preferred_channel, Some(Channel::Letter));
        assert!(combined.british_sign_language && combined.large_print);
        assert!(combined.vulnerabilities.is_empty());
        assert_eq!(combined.updated_by.as_deref(), Some("agent-ada"));
        assert_eq!(after_merge(&combined, &merged, "agent-ada", at()), None);
    }

    #[test]
    fn vulnerabilities_parse_from_the_list_only() {
        for vulnerability in Vulnerability::ALL {
            assert_eq!(Vulnerability::parse(vulnerability.as_str()), Ok(vulnerability));
        }
        let error = Vulnerability::parse("sad").expect_err("not on the list");
        assert!(error.contains("bereavement") && !error.contains("sad"), "{error}");
    }
}
