//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and generates
//! tonic code plus the encoded descriptor set that server reflection serves.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest.join("../../proto");
    // googleapis' error details, so that reflection clients (grpcurl, buf
    // curl) can decode the google.rpc details of our errors.
    let vendor = manifest.join("vendor");
    let files = [
        "recovery/tenancy/v1/tenancy.proto",
        "recovery/booking/v1/booking.proto",
        "recovery/protocols/v1/protocols.proto",
        "recovery/fleet/v1/fleet.proto",
        "google/rpc/error_details.proto",
    ];
    let fds = protox::compile(files, [&root, &vendor])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("recovery_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        // Maps as BTreeMap: a message encodes the same way every time, so a
        // retried create with a map field fingerprints alike (HashMap order
        // differs per instance and made such retries REQUEST_ID_REUSED).
        .btree_map(".")
        // Written by hand (`src/encoded.rs`): the same messages, able to
        // carry what the server encoded once.
        .extern_path(
            ".recovery.booking.v1.SearchAvailabilityResponse",
            "crate::encoded::SearchAvailabilityResponse",
        )
        .extern_path(
            ".recovery.booking.v1.ListBookingsResponse",
            "crate::encoded::ListBookingsResponse",
        )
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed={}", root.display());
    println!("cargo:rerun-if-changed={}", vendor.display());
    Ok(())
}
