//! Sealing the resident's personal data that travels with an event.
//!
//! Event payloads carry no personal data, so the analytics stream can be read
//! as it is. What a consumer needs of the resident travels in
//! `Event.sealed_personal_data`: a `PersonalData` message encrypted with
//! XChaCha20-Poly1305 (random 192-bit nonce, so nonces never need coordinating
//! between processes) under a named key, with the event id as associated data
//! so a sealed blob cannot be moved to another event.
//!
//! Keys rotate: the [`Sealer`] seals with its first key and opens with any key
//! it holds, named by `key_id`. Retiring a key makes everything sealed under it
//! unreadable (erasure by key destruction). Key bytes live in [`SecretBox`] and
//! in ciphers that zeroise themselves on drop.

use std::collections::HashMap;
use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use prost::Message as _;
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretBox};
use switchboard_proto::v1::{PersonalData, SealedPersonalData};

use crate::error::{BusError, BusResult};

const NONCE_LEN: usize = 24;

/// One named 256-bit event key.
pub struct EventKey {
    /// Stored in every sealed blob, so it is not secret; keep it short and
    /// stable (e.g. `2025-01`).
    pub id: String,
    key: SecretBox<[u8; 32]>,
}

impl fmt::Debug for EventKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("EventKey")
            .field("id", &self.id)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

impl EventKey {
    /// Takes ownership of the key bytes (the caller's copy should be zeroised;
    /// [`EventKey::from_slice`] avoids the copy).
    pub fn new(id: impl Into<String>, key: [u8; 32]) -> Self {
        EventKey {
            id: id.into(),
            key: SecretBox::new(Box::new(key)),
        }
    }

    /// From configuration bytes (e.g. decoded base64), which must be 32 long.
    pub fn from_slice(id: impl Into<String>, key: &[u8]) -> BusResult<Self> {
        let id = id.into();
        if key.len() != 32 {
            return Err(BusError::Keys(format!(
                "event key {id} must be 32 bytes, not {}",
                key.len()
            )));
        }
        let secret = SecretBox::init_with_mut(|bytes: &mut [u8; 32]| bytes.copy_from_slice(key));
        Ok(EventKey { id, key: secret })
    }

    /// A fresh random key (development credentials, tests).
    pub fn generate(id: impl Into<String>) -> Self {
        let secret = SecretBox::init_with_mut(|bytes: &mut [u8; 32]| rand::rng().fill_bytes(bytes));
        EventKey {
            id: id.into(),
            key: secret,
        }
    }

    /// The key bytes, e.g. to write development credentials.
    pub fn expose_key(&self) -> &[u8; 32] {
        self.key.expose_secret()
    }
}

/// Seals and opens `PersonalData` under a set of event keys.
pub struct Sealer {
    /// The key new seals use (the first one given).
    current: String,
    /// Every key held, by id. The ciphers hold copies of the key bytes and
    /// zeroise them on drop.
    ciphers: HashMap<String, XChaCha20Poly1305>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key_ids: Vec<&String> = self.ciphers.keys().collect();
        key_ids.sort();
        formatter
            .debug_struct("Sealer")
            .field("current", &self.current)
            .field("key_ids", &key_ids)
            .finish()
    }
}

impl Sealer {
    /// `keys[0]` seals; all of them open. Fails on no keys, an empty key id or
    /// a duplicate key id.
    pub fn new(keys: Vec<EventKey>) -> BusResult<Self> {
        let Some(current) = keys.first().map(|key| key.id.clone()) else {
            return Err(BusError::Keys("at least one event key is needed".to_owned()));
        };
        let mut ciphers = HashMap::with_capacity(keys.len());
        for key in keys {
            if key.id.is_empty() {
                return Err(BusError::Keys("an event key has an empty id".to_owned()));
            }
            let cipher = XChaCha20Poly1305::new(key.key.expose_secret().into());
            if ciphers.insert(key.id.clone(), cipher).is_some() {
                return Err(BusError::Keys(format!("event key id {} appears twice", key.id)));
            }
        }
        Ok(Sealer { current, ciphers })
    }

    /// The id of the key new seals use.
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    /// Encrypts `data` for the event `event_id` under the current key.
    pub fn seal(&self, event_id: &str, data: &PersonalData) -> SealedPersonalData {
        let mut nonce = [0_u8; NONCE_LEN];
        // A 192-bit random nonce from the thread-local CSPRNG: collisions are
        // negligible even across many processes sharing a key.
        rand::rng().fill_bytes(&mut nonce);
        let plaintext = data.encode_to_vec();
        let cipher = self
            .ciphers
            .get(&self.current)
            .expect("Sealer::new inserts the current key");
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: event_id.as_bytes(),
                },
            )
            // XChaCha20-Poly1305 fails only for plaintexts beyond 256 GiB; an
            // encoded PersonalData is bounded far below that by validation.
            .expect("personal data is far below the XChaCha20-Poly1305 length limit");
        SealedPersonalData {
            key_id: self.current.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    /// Decrypts personal data sealed for the event `event_id`.
    pub fn open(&self, event_id: &str, sealed: &SealedPersonalData) -> BusResult<PersonalData> {
        let cipher = self
            .ciphers
            .get(&sealed.key_id)
            .ok_or_else(|| BusError::UnknownKey {
                key_id: sealed.key_id.clone(),
            })?;
        let open_error = || BusError::Open {
            event_id: event_id.to_owned(),
        };
        if sealed.nonce.len() != NONCE_LEN {
            return Err(open_error());
        }
        let plaintext = cipher
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: event_id.as_bytes(),
                },
            )
            .map_err(|_| open_error())?;
        PersonalData::decode(plaintext.as_slice()).map_err(|_| open_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap as Map;
    use switchboard_proto::v1::Customer;

    fn personal_data() -> PersonalData {
        PersonalData {
            customer: Some(Customer {
                name: "Ada Lovelace".to_owned(),
                ..Default::default()
            }),
            summary: "missed bin collection".to_owned(),
            details: Map::from([("street".to_owned(), "1 High St".to_owned())]),
            ..Default::default()
        }
    }

    #[test]
    fn sealed_data_opens_for_its_event_only() {
        let sealer = Sealer::new(vec![EventKey::generate("k1")]).expect("one key");
        let sealed = sealer.seal("event-1", &personal_data());
        assert_eq!(sealed.key_id, "k1");
        assert_eq!(sealed.nonce.len(), NONCE_LEN);
        assert!(
            !sealed
                .ciphertext
                .windows(12)
                .any(|window| window == b"Ada Lovelace")
        );
        let opened = sealer.open("event-1", &sealed).expect("opens");
        assert_eq!(opened, personal_data());
        assert!(matches!(
            sealer.open("event-2", &sealed),
            Err(BusError::Open { .. })
        ));
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert!(matches!(
            sealer.open("event-1", &tampered),
            Err(BusError::Open { .. })
        ));
        let mut short_nonce = sealed;
        short_nonce.nonce.pop();
        assert!(matches!(
            sealer.open("event-1", &short_nonce),
            Err(BusError::Open { .. })
        ));
    }

    #[test]
    fn keys_rotate_and_retire() {
        let old_key = [7_u8; 32];
        let old = Sealer::new(vec![EventKey::new("2024", old_key)]).expect("one key");
        let sealed_under_old = old.seal("e", &personal_data());

        let rotated = Sealer::new(vec![
            EventKey::generate("2025"),
            EventKey::from_slice("2024", &old_key).expect("32 bytes"),
        ])
        .expect("two keys");
        assert_eq!(rotated.current_key_id(), "2025");
        assert_eq!(rotated.seal("e", &personal_data()).key_id, "2025");
        assert_eq!(
            rotated.open("e", &sealed_under_old).expect("old key still held"),
            personal_data()
        );

        let retired = Sealer::new(vec![EventKey::generate("2025")]).expect("one key");
        assert!(matches!(
            retired.open("e", &sealed_under_old),
            Err(BusError::UnknownKey { key_id }) if key_id == "2024"
        ));
    }

    #[test]
    fn bad_key_sets_are_refused() {
        assert!(Sealer::new(vec![]).is_err());
        assert!(Sealer::new(vec![EventKey::generate("a"), EventKey::generate("a")]).is_err());
        assert!(Sealer::new(vec![EventKey::generate("")]).is_err());
        assert!(EventKey::from_slice("a", &[0; 31]).is_err());
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = EventKey::new("k", [0xAB; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains("171") && !shown.to_lowercase().contains("ab, "));
        let sealer = Sealer::new(vec![key]).expect("one key");
        assert_eq!(
            format!("{sealer:?}"),
            r#"Sealer { current: "k", key_ids: ["k"] }"#
        );
    }
}
