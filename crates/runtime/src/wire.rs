//! Conversions between domain values and `switchboard.v1` messages that every
//! service needs alike (channel, needs, customer, timestamps). Each service
//! keeps its own, service-specific conversions at its edge; these live once
//! here so the services cannot drift apart on the shared ones.

use chrono::{DateTime, Utc};
use switchboard_domain::{Channel, CustomerDetails, Needs};
use switchboard_proto::v1;

pub fn channel_to_proto(channel: Channel) -> v1::Channel {
    match channel {
        Channel::Phone => v1::Channel::Phone,
        Channel::Web => v1::Channel::Web,
        Channel::FaceToFace => v1::Channel::FaceToFace,
        Channel::Email => v1::Channel::Email,
        Channel::Letter => v1::Channel::Letter,
    }
}

/// `None` for `CHANNEL_UNSPECIFIED` and for numbers this build does not know,
/// so validation can name the field `channel`.
pub fn channel_from_proto(value: i32) -> Option<Channel> {
    match v1::Channel::try_from(value).ok()? {
        v1::Channel::Unspecified => None,
        v1::Channel::Phone => Some(Channel::Phone),
        v1::Channel::Web => Some(Channel::Web),
        v1::Channel::FaceToFace => Some(Channel::FaceToFace),
        v1::Channel::Email => Some(Channel::Email),
        v1::Channel::Letter => Some(Channel::Letter),
    }
}

pub fn timestamp(at: DateTime<Utc>) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: at.timestamp(),
        // Always below 2e9 (a leap second reads as 1e9..2e9), so it fits.
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(999_999_999),
    }
}

pub fn from_timestamp(at: &pbjson_types::Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(at.nanos).ok()?;
    DateTime::from_timestamp(at.seconds, nanos)
}

/// Needs as intake validated them; the language tag is only normalised
/// (trimmed, lowercased), as intake stored it.
pub fn needs_from_proto(needs: &v1::Needs) -> Needs {
    let language = needs.language.trim().to_lowercase();
    Needs {
        language: (!language.is_empty()).then_some(language),
        british_sign_language: needs.british_sign_language,
        interpreter: needs.interpreter,
        large_print: needs.large_print,
        hearing_loop: needs.hearing_loop,
        assisted_digital: needs.assisted_digital,
        wheelchair_access: needs.wheelchair_access,
        // Intake refuses `vulnerable` without consent; holding to the same rule
        // here means a flag recorded without consent is never stored.
        vulnerable: needs.vulnerable && needs.vulnerability_consent,
        vulnerability_consent: needs.vulnerability_consent,
    }
}

pub fn needs_to_proto(needs: &Needs) -> v1::Needs {
    v1::Needs {
        language: needs.language.clone().unwrap_or_default(),
        british_sign_language: needs.british_sign_language,
        interpreter: needs.interpreter,
        large_print: needs.large_print,
        hearing_loop: needs.hearing_loop,
        assisted_digital: needs.assisted_digital,
        wheelchair_access: needs.wheelchair_access,
        vulnerable: needs.vulnerable,
        vulnerability_consent: needs.vulnerability_consent,
    }
}

/// The normalised customer details (E.164 phone, lowercase email, formatted
/// postcode), as consumers should see them.
pub fn customer_to_proto(details: &CustomerDetails) -> v1::Customer {
    fn text<T>(value: &Option<T>, as_str: impl Fn(&T) -> &str) -> String {
        value
            .as_ref()
            .map(|value| as_str(value).to_owned())
            .unwrap_or_default()
    }
    v1::Customer {
        name: text(&details.name, |name| name.as_str()),
        phone: text(&details.phone, |phone| phone.as_e164()),
        email: text(&details.email, |email| email.as_str()),
        postcode: text(&details.postcode, |postcode| postcode.as_str()),
        address_line: details.address_line.clone().unwrap_or_default(),
        uprn: text(&details.uprn, |uprn| uprn.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_channel_round_trips_and_unspecified_is_none() {
        for channel in Channel::ALL {
            assert_eq!(
                channel_from_proto(channel_to_proto(channel) as i32),
                Some(channel)
            );
        }
        assert_eq!(channel_from_proto(v1::Channel::Unspecified as i32), None);
        assert_eq!(channel_from_proto(99), None);
    }

    #[test]
    fn timestamps_round_trip_to_the_nanosecond() {
        let at = DateTime::from_timestamp(1_764_000_000, 123_456_789).expect("valid time");
        assert_eq!(from_timestamp(&timestamp(at)), Some(at));
    }
}
