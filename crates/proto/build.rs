//! Compiles `proto/switchboard/v1/*.proto` with protox (pure Rust, so no `protoc`
//! is needed on the build machine), then generates prost messages, tonic clients
//! and servers, serde impls following the proto3 JSON mapping (pbjson), and a
//! file descriptor set for gRPC server reflection.

use std::path::PathBuf;

use prost::Message;

const PROTO_ROOT: &str = "../../proto";
const PROTO_FILES: &[&str] = &[
    "switchboard/v1/contact.proto",
    "switchboard/v1/intake.proto",
    "switchboard/v1/cases.proto",
    "switchboard/v1/events.proto",
    "switchboard/v1/routing.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={PROTO_ROOT}");

    let file_descriptors = protox::compile(PROTO_FILES, [PROTO_ROOT])?;
    let descriptor_bytes = file_descriptors.encode_to_vec();
    std::fs::write(out_dir.join("switchboard_descriptor.bin"), &descriptor_bytes)?;

    tonic_prost_build::configure()
        // Well-known types come from pbjson-types so that Timestamp has the
        // proto3 JSON form (RFC 3339) like every other message.
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        // Ordered maps encode deterministically, so the same request always
        // hashes the same for idempotency checks.
        .btree_map(".")
        .compile_fds(file_descriptors)?;

    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .extern_path(".google.protobuf", "::pbjson_types")
        .btree_map(["."])
        .build(&[".switchboard"])?;
    Ok(())
}
