//! The sequential editing trace `automerge-paper` (josephg/editing-traces, CC BY
//! 4.0; see `test-data/editing-traces/ATTRIBUTION.md`): 259,778 single-character
//! edits by one writer. Every inserted character is in the Basic Multilingual
//! Plane, so its code-point positions are also UTF-16 positions.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

/// One edit: position and deletion count (UTF-16 units here), inserted text.
#[derive(Debug, Clone, Deserialize)]
pub struct Patch(pub usize, pub usize, pub String);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Trace {
    end_content: String,
    txns: Vec<Txn>,
}

#[derive(Debug, Deserialize)]
struct Txn {
    patches: Vec<Patch>,
}

/// The trace's patches in order, and its final content.
pub fn load(root: &Path) -> anyhow::Result<(Vec<Patch>, String)> {
    let path = root.join("test-data/editing-traces/automerge-paper.json.gz");
    let file = std::fs::File::open(&path).with_context(|| format!("{}", path.display()))?;
    let mut json = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut json)?;
    let t: Trace = serde_json::from_str(&json)?;
    let patches: Vec<Patch> = t.txns.into_iter().flat_map(|t| t.patches).collect();
    anyhow::ensure!(
        patches
            .iter()
            .all(|p| p.2.chars().all(|c| c.len_utf16() == 1)),
        "the trace is expected to stay in the BMP"
    );
    Ok((patches, t.end_content))
}
