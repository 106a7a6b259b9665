//! Compiles the conformance harness protocol with protox (no protoc needed).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest.join("../../proto");
    let file = "clientful/conformance/v1/harness.proto";
    let fds = protox::compile([file], [&root])?;
    let mut config = prost_build::Config::new();
    // The ErrorClass enum comes from clientful-proto.
    config.extern_path(".clientful.v1", "::clientful_core::error");
    // Messages and the gRPC service (tonic) from the same descriptors.
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(false)
        .compile_fds_with_config(fds, config)?;
    // Relative to this package, so a build cache stays valid when the checkout
    // moves (CI clones into a new directory each run).
    println!("cargo:rerun-if-changed=../../proto/{file}");
    println!("cargo:rerun-if-changed=../../proto/clientful/v1/errors.proto");
    Ok(())
}
