//! The case store: one record of each resident and their cases across every
//! channel (DESIGN.md: "cases").
//!
//! How data flows through the modules:
//!
//! ```text
//!  switchboard.cases queue ──► consumer ──► inbound ──► store::apply_contacts ──► plan
//!  (contact.received, sealed)   (batches)   (decode,     (one transaction per      (match customer,
//!                                            unseal)      batch: inbox, customers,   join/re-open/open
//!                                                         cases, contacts, outbox)   case)
//!  (contact.completed)                               ──► store::apply_outcomes ──► lifecycle
//!                                                        (disposition on the contact, case status)
//!  outbox ──► OutboxRelay (bus crate) ──► case.opened / case.updated on switchboard.events
//!  agents ──► grpc (CaseService) ──► store queries (contact, case, timeline, search)
//! ```
//!
//! - [`consumer`]: [`CasesConsumer`] subscribes to `QueueSpec::cases`, takes
//!   batches of up to 500 deliveries, applies them in one transaction, then
//!   acks; rejects undecodable or unopenable messages to the dead-letter
//!   queue; retries store errors. Runs the outbox relay beside it.
//! - `inbound` (private): a bus message to an [`IncomingContact`] (event
//!   decoded, personal data unsealed, values parsed into domain types).
//! - `plan` (private): the matching and case rules, decided in memory for a
//!   whole batch against a snapshot of what the store holds, so both stores
//!   apply exactly the same rules.
//! - [`store`]: the [`CasesStore`] trait (apply, queries, outbox) and its
//!   PostgreSQL ([`PgCasesStore`], schema `cases`) and SQLite
//!   ([`SqliteCasesStore`], `cases.db`) implementations; SQL lives there and
//!   in `migrations/`.
//! - [`grpc`]: [`CasesGrpc`], the `switchboard.v1.CaseService` server.
//! - [`subject_access`]: everything held about a resident, as JSON and as a
//!   readable HTML document.
//! - `wire` (private): proto ⇄ domain conversions used by `grpc` and `inbound`.
//! - [`audit`]: the log of every read of a resident's personal data (who,
//!   when, what, why), written before `CaseService` answers.
//! - [`erasure`]: erasing a resident's personal data while keeping the
//!   statistics whole.
//! - [`lifecycle`]: the case rules (due dates, re-opening, repeat contacts,
//!   status changes, what a wrap-up disposition does) and their types.
//! - [`merges`]: possible matches suggested to agents, and merging two
//!   customers into one and undoing it, each step recorded.
//! - [`model`]: customers, cases, contacts, timeline pages, search criteria.
//! - [`needs`]: a resident's needs (preferred channel and language,
//!   accessibility, vulnerability with consent) and their consents; what
//!   contacts add to them and what routing is told.
//! - [`referrals`]: signposts and referrals to partner organisations on a
//!   case (the partner directory, consent, outcomes) and their types.
//! - [`retention`]: the retention schedule applied to the case store, and
//!   the daily job that applies it.
//! - [`error`]: [`CasesError`] and [`CasesResult`].

pub mod audit;
pub mod consumer;
pub mod erasure;
pub mod error;
pub mod grpc;
mod inbound;
pub mod lifecycle;
pub mod merges;
pub mod model;
pub mod needs;
mod plan;
pub mod referrals;
pub mod retention;
pub mod store;
pub mod subject_access;
mod wire;

pub use audit::DataRead;
pub use consumer::{CasesConsumer, ConsumerConfig};
pub use erasure::{CaseStatistics, Erasure, ErasureRequest};
pub use error::{CasesError, CasesResult};
pub use grpc::CasesGrpc;
pub use lifecycle::{
    CaseNote, CaseRules, ContactOutcome, IncomingOutcome, StatusChange, StatusRecord, TransitionError,
};
pub use merges::{CustomerMerge, MatchSuggestion, MergeRequest, SuggestionStatus};
pub use model::{
    AppliedContact, ApplyOutcome, Case, CaseDetail, CaseKey, CaseStatus, Contact, Customer, CustomerSearch,
    IncomingContact, PageToken, QuotedReference, SEARCH_PAGE_DEFAULT, SEARCH_PAGE_MAX, TIMELINE_PAGE_DEFAULT,
    TIMELINE_PAGE_MAX, Timeline, TimelineEntry,
};
pub use needs::{
    ConsentPurpose, ConsentWithdrawal, CustomerConsent, CustomerNeeds, NeedsUpdate, NewConsent,
    Vulnerability, WithdrawConsent,
};
pub use plan::EVENT_SOURCE;
pub use referrals::{
    Consent, NewReferral, Referral, ReferralError, ReferralId, ReferralOutcome, ReferralStatus,
};
pub use retention::{RetentionRun, apply_retention, run_retention};
pub use store::{CasesStore, MAX_APPLY_BATCH, PgCasesStore, SqliteCasesStore};
