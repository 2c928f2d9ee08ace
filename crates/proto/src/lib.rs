//! The `switchboard.v1` wire contract.
//!
//! Generated from `proto/switchboard/v1/` by `build.rs`: prost messages, tonic
//! clients and servers, and serde impls that follow the proto3 JSON mapping (so
//! the HTTP API accepts exactly what `SubmitContactRequest` means in JSON).
//! [`FILE_DESCRIPTOR_SET`] feeds gRPC server reflection.
//!
//! Nothing else lives here: conversions between wire and domain types belong to
//! the service crates, at their edge.

#![allow(clippy::all, missing_docs)]

pub mod v1 {
    tonic::include_proto!("switchboard.v1");
    include!(concat!(env!("OUT_DIR"), "/switchboard.v1.serde.rs"));
}

/// The encoded `FileDescriptorSet` of every switchboard proto, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("switchboard_descriptor");

/// Event type names, which are also the AMQP routing keys.
pub mod event_types {
    pub const CONTACT_RECEIVED: &str = "contact.received";
    pub const CASE_OPENED: &str = "case.opened";
    pub const CASE_UPDATED: &str = "case.updated";
    pub const CASE_RESOLVED: &str = "case.resolved";
    pub const CASE_REFERRED: &str = "case.referred";
    pub const CASE_REFERRAL_OUTCOME: &str = "case.referral_outcome";
    pub const CONTACT_QUEUED: &str = "contact.queued";
    pub const CONTACT_OFFERED: &str = "contact.offered";
    pub const CONTACT_REQUEUED: &str = "contact.requeued";
    pub const CONTACT_ASSIGNED: &str = "contact.assigned";
    pub const CONTACT_ABANDONED: &str = "contact.abandoned";
    pub const CONTACT_TRANSFERRED: &str = "contact.transferred";
    pub const CONTACT_COMPLETED: &str = "contact.completed";
    pub const CONTACT_REDIRECTED: &str = "contact.redirected";
    pub const AGENT_SIGNED_IN: &str = "agent.signed_in";
    pub const AGENT_SIGNED_OUT: &str = "agent.signed_out";
    pub const AGENT_PRESENCE_CHANGED: &str = "agent.presence_changed";
    pub const AGENT_MISSED_OFFER: &str = "agent.missed_offer";
    /// Sent by each router straight to its partition queue (never through
    /// the exchange): whoever receives it is the queue's active consumer.
    pub const ROUTING_HEARTBEAT: &str = "routing.heartbeat";
}
