//! The contact channels. Defined once and shared by the wire conversion,
//! storage, events and routing, so the names cannot drift apart.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a contact reached the council. Every channel is first-class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Phone,
    Web,
    FaceToFace,
    Email,
    Letter,
}

impl Channel {
    /// Every channel, in the order of the proto enum.
    pub const ALL: [Channel; 5] = [
        Channel::Phone,
        Channel::Web,
        Channel::FaceToFace,
        Channel::Email,
        Channel::Letter,
    ];

    /// The storage and event form: `phone`, `web`, `face_to_face`, `email`, `letter`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Phone => "phone",
            Channel::Web => "web",
            Channel::FaceToFace => "face_to_face",
            Channel::Email => "email",
            Channel::Letter => "letter",
        }
    }

    /// Parses the storage form exactly (it is machine-written, so no leniency
    /// that could let two spellings of one channel into the data).
    pub fn parse(input: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|channel| channel.as_str() == input)
            .ok_or_else(|| {
                "unknown channel: expected one of phone, web, face_to_face, email, letter".to_owned()
            })
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_and_parse_round_trip_for_every_channel() {
        for channel in Channel::ALL {
            assert_eq!(Channel::parse(channel.as_str()), Ok(channel));
            assert_eq!(channel.to_string(), channel.as_str());
            let json = serde_json::to_string(&channel).expect("serialise");
            assert_eq!(json, format!("\"{}\"", channel.as_str()));
            assert_eq!(
                serde_json::from_str::<Channel>(&json).expect("deserialise"),
                channel
            );
        }
        assert_eq!(Channel::FaceToFace.as_str(), "face_to_face");
    }

    #[test]
    fn parse_rejects_unknown_names() {
        for bad in ["", "PHONE", "fax", "face-to-face", " phone"] {
            let error = Channel::parse(bad).expect_err(bad);
            assert!(error.starts_with("unknown channel"), "{error}");
        }
    }
}
