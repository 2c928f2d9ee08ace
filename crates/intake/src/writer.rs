//! Group commit: one writer task turns many concurrent submissions into one
//! transaction.
//!
//! A commit costs a disk flush whether it holds one contact or five hundred, so
//! the writer takes whatever is waiting in its channel (up to `max_batch`, and
//! only what is already there: it never waits to fill a batch, so a lone
//! submission is committed at once) and stores it with one
//! [`IntakeStore::commit_batch`]. While one batch commits, the next one queues
//! up, so batches grow exactly when load does.
//!
//! Each submission gets its answer only after the commit: accepted means
//! durable. A failed batch stored nothing (one transaction), and every caller in
//! it gets the error.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use switchboard_domain::ContactReference;
use switchboard_proto::v1::{Event, event};
use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use tokio::task::JoinSet;

use crate::error::{IntakeError, IntakeResult};
use crate::metrics::IntakeMetrics;
use crate::store::{BatchOutcome, IntakeStore, PendingContact, StoredKey};

/// How the writer batches.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// The most submissions one transaction holds.
    pub max_batch: usize,
    /// Batches committing at once. Two let the next batch be written while the
    /// previous one waits for its flush (PostgreSQL); SQLite serialises writers
    /// anyway, so one is enough there.
    pub concurrent_batches: usize,
    /// Submissions waiting for the writer before `submit` itself waits
    /// (back-pressure instead of unbounded memory).
    pub queue_capacity: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            max_batch: 500,
            concurrent_batches: 2,
            queue_capacity: 8192,
        }
    }
}

impl WriterConfig {
    /// The defaults for an embedded SQLite store: one batch at a time.
    pub fn for_sqlite() -> Self {
        WriterConfig {
            concurrent_batches: 1,
            ..WriterConfig::default()
        }
    }
}

/// How many times a batch is retried after a reference collision or a
/// transient conflict before its callers get the error.
const MAX_ATTEMPTS: usize = 5;

struct Submission {
    pending: PendingContact,
    reply: oneshot::Sender<IntakeResult<Written>>,
}

/// The writer's answer to one submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Committed, under this reference (a new one if the first collided).
    Stored { reference: ContactReference },
    /// Nothing stored: the idempotency key already points at this.
    KeyTaken(StoredKey),
}

/// The handle submissions go through. Cheap to clone; the writer stops once
/// every handle is dropped and what was queued is committed (that is how
/// shutdown drains it).
#[derive(Clone)]
pub struct ContactWriter {
    sender: mpsc::Sender<Submission>,
}

impl std::fmt::Debug for ContactWriter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("ContactWriter").finish_non_exhaustive()
    }
}

impl ContactWriter {
    /// Queues one submission and waits until its batch is committed (or failed).
    pub async fn write(&self, pending: PendingContact) -> IntakeResult<Written> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Submission { pending, reply })
            .await
            .map_err(|_| IntakeError::WriterStopped)?;
        answer.await.map_err(|_| IntakeError::WriterStopped)?
    }
}

/// Starts the writer on the current runtime. `outbox_wake` is notified after
/// every commit that stored something, so the relay publishes at once instead of
/// at its next poll. The returned task ends when every [`ContactWriter`] clone is
/// dropped and the queue is drained.
pub fn spawn_writer<S: IntakeStore + ?Sized>(
    store: Arc<S>,
    outbox_wake: Arc<Notify>,
    config: WriterConfig,
    metrics: IntakeMetrics,
) -> (ContactWriter, tokio::task::JoinHandle<()>) {
    let (sender, receiver) = mpsc::channel(config.queue_capacity.max(1));
    // A tokio Mutex, held across the `recv().await`: while one batch loop waits
    // for work, the others wait for the loop that gathers, so a batch is always
    // taken by one loop in one go.
    let receiver = Arc::new(Mutex::new(receiver));
    let handle = tokio::spawn(async move {
        let mut loops = JoinSet::new();
        for _ in 0..config.concurrent_batches.max(1) {
            loops.spawn(batch_loop(
                store.clone(),
                receiver.clone(),
                outbox_wake.clone(),
                config.max_batch.max(1),
                metrics.clone(),
            ));
        }
        while loops.join_next().await.is_some() {}
        tracing::debug!("intake writer stopped");
    });
    (ContactWriter { sender }, handle)
}

async fn batch_loop<S: IntakeStore + ?Sized>(
    store: Arc<S>,
    receiver: Arc<Mutex<mpsc::Receiver<Submission>>>,
    outbox_wake: Arc<Notify>,
    max_batch: usize,
    metrics: IntakeMetrics,
) {
    loop {
        let mut batch = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            // `recv_many` waits for at least one submission and then takes what is
            // already queued, up to the limit, without waiting for more.
            if receiver.recv_many(&mut batch, max_batch).await == 0 {
                return;
            }
        }
        metrics.observe_batch(batch.len());
        let (pendings, replies): (Vec<PendingContact>, Vec<_>) = batch
            .into_iter()
            .map(|submission| (submission.pending, submission.reply))
            .unzip();
        match commit_with_retries(store.as_ref(), pendings).await {
            Ok((committed, outcomes)) => {
                if outcomes.contains(&BatchOutcome::Stored) {
                    outbox_wake.notify_one();
                }
                for ((reply, pending), outcome) in replies.into_iter().zip(committed).zip(outcomes) {
                    let written = match outcome {
                        BatchOutcome::Stored => Written::Stored {
                            reference: pending.contact.reference,
                        },
                        BatchOutcome::KeyTaken(holder) => Written::KeyTaken(holder),
                    };
                    // A caller that went away (timeout, cancelled request) still has
                    // its contact stored; there is nobody left to tell.
                    let _ = reply.send(Ok(written));
                }
            }
            Err(error) => {
                tracing::error!(
                    error.message = %error,
                    error.chain = %switchboard_runtime::status::cause_chain(&error),
                    batch.size = replies.len(),
                    "intake batch failed, nothing of it was stored"
                );
                // Every caller of the batch gets the same error; the cause chain
                // was logged once, here.
                let error = Arc::new(error);
                for reply in replies {
                    let _ = reply.send(Err(IntakeError::BatchFailed(error.clone())));
                }
            }
        }
    }
}

/// Commits the batch, retrying what is safe to retry; answers the batch as
/// committed (references may have changed) with its outcomes.
async fn commit_with_retries<S: IntakeStore + ?Sized>(
    store: &S,
    mut batch: Vec<PendingContact>,
) -> IntakeResult<(Vec<PendingContact>, Vec<BatchOutcome>)> {
    let mut attempt = 1;
    loop {
        match store.commit_batch(&batch).await {
            Ok(outcomes) => return Ok((batch, outcomes)),
            Err(IntakeError::ReferenceTaken { contact_ids }) if attempt < MAX_ATTEMPTS => {
                tracing::info!(
                    contacts = contact_ids.len(),
                    attempt,
                    "contact reference collision, regenerating"
                );
                for pending in batch
                    .iter_mut()
                    .filter(|pending| contact_ids.contains(&pending.contact.id))
                {
                    give_new_reference(pending)?;
                }
            }
            Err(IntakeError::Database(error)) if attempt < MAX_ATTEMPTS && is_transient_conflict(&error) => {
                tracing::warn!(error.message = %error, attempt, "intake batch conflicted, retrying");
                tokio::time::sleep(Duration::from_millis(5 * attempt as u64)).await;
            }
            Err(error) => return Err(error),
        }
        attempt += 1;
    }
}

/// A new reference for a contact whose reference was taken, in its idempotency
/// claim's answer and in its event alike.
fn give_new_reference(pending: &mut PendingContact) -> IntakeResult<()> {
    let reference = ContactReference::generate();
    let mut event = Event::decode(pending.outbox.body.as_slice())
        .map_err(|error| IntakeError::StoredData(format!("outbox event does not decode: {error}")))?;
    if let Some(event::Payload::ContactReceived(received)) = event.payload.as_mut() {
        received.reference = reference.as_str().to_owned();
    }
    pending.outbox.body = event.encode_to_vec();
    pending.contact.reference = reference;
    Ok(())
}

/// Deadlocks and serialisation failures are safe to retry: the transaction was
/// rolled back whole.
fn is_transient_conflict(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database) => matches!(database.code().as_deref(), Some("40001" | "40P01")),
        _ => false,
    }
}
