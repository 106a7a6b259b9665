//! Export and copy (spec §9.12, STO-21): the documents of a space as plain JSON files in a
//! folder the user owns, and the whole encrypted store copied object for object
//! between any two backends (the copy is verified by loading it like any storage).

#[cfg(not(target_arch = "wasm32"))]
use std::path::{Path, PathBuf};

#[cfg(not(target_arch = "wasm32"))]
use clientful_doc::Replica;

use crate::backend::BlobStore;
use crate::error::StorageError;

/// Writes each replica's materialized document as canonical JSON to
/// `<dir>/<space id hex>/<doc id hex>.json`; returns the files written (not on
/// wasm32: a browser has no folders).
#[cfg(not(target_arch = "wasm32"))]
pub fn export_json(
    space_id: &[u8; 32],
    replicas: &mut [Replica],
    dir: &Path,
) -> Result<Vec<PathBuf>, StorageError> {
    let folder = dir.join(hex::encode(space_id));
    std::fs::create_dir_all(&folder)?;
    let mut out = Vec::new();
    for r in replicas.iter_mut() {
        let path = folder.join(format!("{}.json", hex::encode(r.doc_id())));
        let json = r.materialize().to_canonical_string();
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json.as_bytes())?;
        std::fs::rename(&tmp, &path)?;
        out.push(path);
    }
    Ok(out)
}

/// Copies every file of `from` to `to` (head manifests overwrite, everything else
/// is immutable); returns the number of files copied.
pub async fn copy_store<A: BlobStore, B: BlobStore>(
    from: &A,
    to: &B,
) -> Result<usize, StorageError> {
    let paths = from.list("").await?;
    let mut n = 0;
    for p in paths {
        let Some(bytes) = from.get(&p).await? else {
            continue;
        };
        if p.contains("/h/") || p == crate::layout::FORMAT_PATH {
            to.put_owned(&p, bytes).await?;
        } else {
            to.put_immutable(&p, bytes).await?;
        }
        n += 1;
    }
    Ok(n)
}
