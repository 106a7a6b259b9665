//! The browser section (`--section browser`): the envelope pipeline of the wasm module
//! (`reference/clientful-web`, built with the `wasm-release` profile by
//! `scripts/web/build.sh`) against JS Yjs applying raw updates, on the automerge-paper
//! trace, both run in Node by `packages/web/bench/pipeline.mjs` (which alternates them
//! over rounds and reports medians). The candidate is what a Yjs provider does: the
//! sender's `Y.Doc` updates go into its replica, each batch is sealed and signed into
//! one envelope, and the receiving replica opens and applies it and hands the raw
//! updates to the receiving `Y.Doc`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

/// Sizes of the browser figure.
pub struct Sizes {
    /// Alternated rounds.
    pub rounds: usize,
    /// Edits of the trace.
    pub edits: usize,
}

/// One measured run: `(baseline s, candidate s, the script's JSON)`.
pub fn run(root: &Path, sizes: &Sizes, batch: usize) -> anyhow::Result<(f64, f64, Value)> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let pkg = target.join("clientful-bench-web");
    eprintln!("browser: building the wasm module (scripts/web/build.sh --release)");
    let status = Command::new("bash")
        .arg(root.join("scripts/web/build.sh"))
        .args(["--release", "--out"])
        .arg(&pkg)
        .current_dir(root)
        .status()
        .context("running scripts/web/build.sh")?;
    if !status.success() {
        bail!("scripts/web/build.sh --release failed");
    }
    let web = root.join("packages/web");
    if !web.join("node_modules/yjs/package.json").is_file() {
        eprintln!("browser: installing packages/web (npm ci)");
        let status = Command::new("npm")
            .args([
                "ci",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(&web)
            .status()
            .context("running npm ci")?;
        if !status.success() {
            bail!("npm ci in packages/web failed");
        }
    }
    let pkg = std::fs::canonicalize(&pkg)?;
    eprintln!(
        "browser pipeline Yjs batched: {} edits, {} rounds (Node)",
        sizes.edits, sizes.rounds
    );
    let out = Command::new("node")
        .arg(web.join("bench/pipeline.mjs"))
        .arg("--pkg")
        .arg(&pkg)
        .arg("--trace")
        .arg(root.join("test-data/editing-traces/automerge-paper.json.gz"))
        .args(["--edits", &sizes.edits.to_string()])
        .args(["--batch", &batch.to_string()])
        .args(["--rounds", &sizes.rounds.to_string()])
        .output()
        .context("running node packages/web/bench/pipeline.mjs")?;
    if !out.status.success() {
        bail!(
            "packages/web/bench/pipeline.mjs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("the script's JSON line")?;
    let (Some(b), Some(c)) = (
        v.get("baseline").and_then(Value::as_f64),
        v.get("candidate").and_then(Value::as_f64),
    ) else {
        bail!("the script's JSON has no baseline or candidate: {v}");
    };
    Ok((b, c, v))
}
