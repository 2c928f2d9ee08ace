//! The intake service itself, shared by the gRPC and HTTP edges: validate,
//! prepare the rows, hand them to the group-commit writer, answer.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use prost::Message;
use sha2::{Digest, Sha256};
use switchboard_bus::Sealer;
use switchboard_domain::{Catalogue, Channel, ContactId, ContactReference, NewContact, ServiceId};
use switchboard_proto::v1::SubmitContactRequest;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::convert::contact_draft;
use crate::error::{IntakeError, IntakeResult};
use crate::events::contact_received_entry;
use crate::metrics::IntakeMetrics;
use crate::store::{IdempotencyClaim, IntakeStore, PendingContact, RequestHash};
use crate::writer::{ContactWriter, WriterConfig, Written, spawn_writer};

/// The longest idempotency key accepted (a UUID needs 36; room for client
/// prefixes).
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// A stored (or replayed) contact's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub contact_id: ContactId,
    pub reference: ContactReference,
    /// The answer comes from an earlier submission with the same idempotency key
    /// and the same request; nothing new was stored.
    pub replayed: bool,
}

/// What intake can say about a contact it accepted, without personal data:
/// what a client that submitted it (or an agent holding its id) may read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub contact_id: ContactId,
    pub reference: ContactReference,
    pub channel: Channel,
    pub service: ServiceId,
    pub received_at: DateTime<Utc>,
}

/// Takes contacts in. Cheap to clone: the edges (gRPC, HTTP API, web forms)
/// each hold one.
#[derive(Clone)]
pub struct Intake {
    inner: Arc<IntakeInner>,
}

struct IntakeInner {
    store: Arc<dyn IntakeStore>,
    catalogue: Arc<Catalogue>,
    sealer: Arc<Sealer>,
    writer: ContactWriter,
    metrics: IntakeMetrics,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Intake").finish_non_exhaustive()
    }
}

impl Intake {
    /// The service over a writer already started on `store` (see
    /// [`Intake::start`], which does both).
    pub fn new(
        store: Arc<dyn IntakeStore>,
        catalogue: Arc<Catalogue>,
        sealer: Arc<Sealer>,
        writer: ContactWriter,
        metrics: IntakeMetrics,
    ) -> Intake {
        Intake {
            inner: Arc::new(IntakeInner {
                store,
                catalogue,
                sealer,
                writer,
                metrics,
            }),
        }
    }

    /// Starts the group-commit writer over `store` and returns the service and
    /// the writer's task. The writer drains and ends once every clone of the
    /// returned `Intake` (and so every edge holding one) is dropped: await the
    /// handle at shutdown to know accepted contacts are all committed.
    /// `outbox_wake` is the `Notify` given to the `OutboxRelay` over the same store.
    pub fn start(
        store: Arc<dyn IntakeStore>,
        catalogue: Arc<Catalogue>,
        sealer: Arc<Sealer>,
        outbox_wake: Arc<Notify>,
        config: WriterConfig,
        metrics: IntakeMetrics,
    ) -> (Intake, JoinHandle<()>) {
        let (writer, handle) = spawn_writer(store.clone(), outbox_wake, config, metrics.clone());
        (Intake::new(store, catalogue, sealer, writer, metrics), handle)
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.inner.catalogue
    }

    pub fn metrics(&self) -> &IntakeMetrics {
        &self.inner.metrics
    }

    /// The receipt of an accepted contact, or `None` if intake holds no
    /// contact with this id.
    pub async fn receipt(&self, contact_id: ContactId) -> IntakeResult<Option<Receipt>> {
        Ok(self.inner.store.contact(contact_id).await?.map(|stored| Receipt {
            contact_id: stored.id,
            reference: stored.reference,
            channel: stored.contact.channel,
            service: stored.contact.service,
            received_at: stored.received_at,
        }))
    }

    /// Validates and stores one submission, answering once it is durable.
    ///
    /// With an idempotency key: the same key and the same request (compared by a
    /// SHA-256 of the encoded request without its key) give the first answer
    /// again and store nothing; the same key with another request is
    /// [`IntakeError::IdempotencyKeyReused`].
    #[tracing::instrument(
        name = "intake.submit",
        skip_all,
        fields(channel = tracing::field::Empty, contact_id = tracing::field::Empty, replayed = tracing::field::Empty)
    )]
    pub async fn submit(&self, request: SubmitContactRequest) -> IntakeResult<Accepted> {
        let result = self.store_submission(request).await;
        let metrics = &self.inner.metrics;
        match &result {
            Ok(accepted) => {
                tracing::Span::current()
                    .record("contact_id", tracing::field::display(accepted.contact_id))
                    .record("replayed", accepted.replayed);
                if accepted.replayed {
                    metrics.replayed();
                }
            }
            Err(error) => {
                metrics.rejected(error.reason());
                tracing::debug!(reason = error.reason(), error.message = %error, "contact refused");
            }
        }
        result
    }

    async fn store_submission(&self, mut request: SubmitContactRequest) -> IntakeResult<Accepted> {
        let key = std::mem::take(&mut request.idempotency_key);
        let claim = if key.is_empty() {
            None
        } else {
            check_idempotency_key(&key, "idempotency_key")?;
            Some(IdempotencyClaim {
                key,
                request_hash: request_hash(&request),
            })
        };

        let valid = contact_draft(request).validate(&self.inner.catalogue)?;
        let channel = valid.channel;
        tracing::Span::current().record("channel", channel.as_str());
        let contact = NewContact::new(valid);
        let outbox = contact_received_entry(&contact, &self.inner.sealer);
        let contact_id = contact.id;
        let request_hash = claim.as_ref().map(|claim| claim.request_hash);

        match self
            .inner
            .writer
            .write(PendingContact {
                contact,
                idempotency: claim,
                outbox,
            })
            .await?
        {
            // The writer's reference, not ours: it gives a new one after a collision.
            Written::Stored { reference } => {
                self.inner.metrics.accepted(channel);
                Ok(Accepted {
                    contact_id,
                    reference,
                    replayed: false,
                })
            }
            Written::KeyTaken(holder) => {
                if request_hash.is_some_and(|hash| holder.request_hash == hash) {
                    Ok(Accepted {
                        contact_id: holder.contact_id,
                        reference: holder.reference,
                        replayed: true,
                    })
                } else {
                    Err(IntakeError::IdempotencyKeyReused)
                }
            }
        }
    }
}

/// SHA-256 of the encoded request (key already cleared). Maps are `BTreeMap`s,
/// so the same request always encodes, and hashes, the same; the HTTP JSON form
/// of a request decodes into the same message, so a key hashes alike over both.
pub fn request_hash(request_without_key: &SubmitContactRequest) -> RequestHash {
    debug_assert!(request_without_key.idempotency_key.is_empty());
    Sha256::digest(request_without_key.encode_to_vec()).into()
}

/// 1 to 255 printable ASCII characters (a header value must be ASCII anyway,
/// and keys are opaque tokens such as UUIDs). `field` names it for the caller.
pub fn check_idempotency_key(key: &str, field: &str) -> IntakeResult<()> {
    let acceptable = !key.is_empty()
        && key.len() <= MAX_IDEMPOTENCY_KEY_CHARS
        && key.bytes().all(|byte| byte.is_ascii_graphic() || byte == b' ');
    if acceptable {
        Ok(())
    } else {
        Err(IntakeError::InvalidField {
            field: field.to_owned(),
            description: format!("must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ascii characters"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_printable_ascii_up_to_255() {
        assert!(check_idempotency_key("8e03978e-40d5-43e8-bc93-6894a57f9324", "k").is_ok());
        assert!(check_idempotency_key(&"k".repeat(255), "k").is_ok());
        for bad in ["", "tab\there", "ключ"] {
            assert!(check_idempotency_key(bad, "k").is_err(), "{bad:?}");
        }
        assert!(check_idempotency_key(&"k".repeat(256), "k").is_err());
    }

    #[test]
    fn the_hash_ignores_nothing_but_the_key() {
        let mut request = SubmitContactRequest {
            summary: "a".to_owned(),
            ..Default::default()
        };
        let first = request_hash(&request);
        assert_eq!(request_hash(&request.clone()), first);
        request.details.insert("b".to_owned(), "1".to_owned());
        request.details.insert("a".to_owned(), "2".to_owned());
        let with_details = request_hash(&request);
        assert_ne!(with_details, first);
        let mut reordered = SubmitContactRequest {
            summary: "a".to_owned(),
            ..Default::default()
        };
        reordered.details.insert("a".to_owned(), "2".to_owned());
        reordered.details.insert("b".to_owned(), "1".to_owned());
        assert_eq!(
            request_hash(&reordered),
            with_details,
            "map order does not matter"
        );
    }
}
