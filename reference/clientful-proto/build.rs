//! Compiles `proto/clientful/**.proto` with protox (pure Rust): no `protoc` binary is
//! needed on any machine.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest.join("../../proto");
    let files = [
        "clientful/v1/errors.proto",
        "clientful/v1/envelope.proto",
        "clientful/v1/identity.proto",
        "clientful/v1/sync.proto",
        "clientful/v1/membership.proto",
        "clientful/v1/storage.proto",
        "clientful/v1/broker.proto",
    ];
    let fds = protox::compile(files, [&proto_root])?;
    // Keep the descriptor set: tests check the canonical-scan schemas against it,
    // and the conformance tooling reflects on it.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("clientful_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    let mut config = prost_build::Config::new();
    config.btree_map(["."]);
    config.compile_fds(fds)?;
    // protox emits no rerun-if-changed lines itself.
    println!("cargo:rerun-if-changed={}", proto_root.display());
    for f in files {
        println!("cargo:rerun-if-changed={}", proto_root.join(f).display());
    }
    Ok(())
}
