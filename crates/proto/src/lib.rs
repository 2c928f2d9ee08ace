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
}
