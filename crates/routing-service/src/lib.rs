//! The routing service: owns a partition of the contact centre's routing
//! state, feeds the pure engine of `switchboard-routing`, and tells agents,
//! supervisors and the event stream what it decided.

pub mod error;
pub mod store;

pub use error::{RouterError, RouterResult};
pub use store::{JournalRow, PgRoutingStore, Record, RoutingStore, SqliteRoutingStore, StoredAgent};
