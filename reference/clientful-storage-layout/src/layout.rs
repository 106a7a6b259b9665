//! Paths and keys of the storage layout (spec §9.2, §9.3: STO-2, STO-3, STO-4), pure
//! functions.
//!
//! ```text
//! clientful-format                      StorageFormat { version: 1 }        (plaintext)
//! <dir>/h/<head tag>                    head manifest of one device          (overwritten by its owner)
//! <dir>/o/<object id>                   segments, snapshots, file manifests, chunks (immutable)
//!
//! root      = DeriveWithLabel(epoch_secret, space_id, "kdf/storage-key", epoch_id, 32)
//! dir       = hex(DeriveWithLabel(root, "", "kdf/storage-path", "dir", 16))
//! head tag  = hex(DeriveWithLabel(root, "", "kdf/storage-path", "head" || device, 16))
//! seal key  = DeriveWithLabel(root, "", "kdf/storage-seal", "", 32)
//! object id = HashWithLabel("id/storage-object", object file bytes)
//! ```
//!
//! No path component is a plaintext name, user id, device key or document id: every
//! one is a keyed PRF output or a hash of ciphertext.

use clientful_core::keys::EpochKey;
use clientful_core::{labels, suite};
use zeroize::Zeroizing;

use crate::error::StorageError;

/// The format-version file at the root.
pub const FORMAT_PATH: &str = "clientful-format";

/// The layout version this crate implements.
pub const LAYOUT_VERSION: u32 = 1;

/// A 32-byte object id (content address).
pub type ObjectId = [u8; 32];

/// The storage keys of one (space, epoch): everything path- and seal-related.
#[derive(Clone)]
pub struct EpochStorage {
    epoch_id: [u8; 32],
    space_id: [u8; 32],
    root: Zeroizing<[u8; 32]>,
    seal: Zeroizing<[u8; 32]>,
    dir: String,
}

impl std::fmt::Debug for EpochStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochStorage")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl EpochStorage {
    /// Derives the storage keys of `epoch` in space `space_id`.
    pub fn derive(space_id: &[u8; 32], epoch: &EpochKey) -> Result<Self, StorageError> {
        let mut root = Zeroizing::new([0u8; 32]);
        suite::derive_with_label(
            epoch.secret(),
            space_id,
            labels::KDF_STORAGE_KEY,
            epoch.id(),
            root.as_mut(),
        )?;
        let mut seal = Zeroizing::new([0u8; 32]);
        suite::derive_with_label(
            root.as_ref(),
            &[],
            labels::KDF_STORAGE_SEAL,
            &[],
            seal.as_mut(),
        )?;
        let dir = path_tag(&root, b"dir")?;
        Ok(EpochStorage {
            epoch_id: *epoch.id(),
            space_id: *space_id,
            root,
            seal,
            dir,
        })
    }

    /// The epoch id.
    pub fn epoch_id(&self) -> &[u8; 32] {
        &self.epoch_id
    }

    /// The space id.
    pub fn space_id(&self) -> &[u8; 32] {
        &self.space_id
    }

    /// The AEAD key of stored objects.
    pub(crate) fn seal_key(&self) -> &[u8; 32] {
        &self.seal
    }

    /// The epoch's directory (no trailing slash).
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// Path of `device`'s head manifest.
    pub fn head_path(&self, device: &[u8; 32]) -> Result<String, StorageError> {
        let mut ctx = Vec::with_capacity(36);
        ctx.extend_from_slice(b"head");
        ctx.extend_from_slice(device);
        Ok(format!("{}/h/{}", self.dir, path_tag(&self.root, &ctx)?))
    }

    /// Path of an immutable object.
    pub fn object_path(&self, id: &ObjectId) -> String {
        format!("{}/o/{}", self.dir, hex::encode(id))
    }

    /// The prefix under which all objects of this epoch live.
    pub fn objects_prefix(&self) -> String {
        format!("{}/o/", self.dir)
    }
}

fn path_tag(root: &[u8; 32], context: &[u8]) -> Result<String, StorageError> {
    let mut tag = [0u8; 16];
    suite::derive_with_label(root, &[], labels::KDF_STORAGE_PATH, context, &mut tag)?;
    Ok(hex::encode(tag))
}

/// The content address of an object file's bytes:
/// `HashWithLabel("id/storage-object", bytes)`, computed here with SHA-256 directly
/// so that hashing large files runs at this crate's optimisation level.
pub fn object_id(bytes: &[u8]) -> Result<ObjectId, StorageError> {
    use sha2::Digest;
    let prefix = labels::prefix(labels::ID_STORAGE_OBJECT, bytes.len())
        .ok_or_else(|| StorageError::corrupt("object", "too large to hash"))?;
    let mut h = sha2::Sha256::new();
    h.update(&prefix);
    h.update(bytes);
    Ok(h.finalize().into())
}

/// Parses the last path component of an object path back to its id.
pub fn parse_object_name(name: &str) -> Option<ObjectId> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(name, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_hide_identifiers_and_follow_the_epoch() {
        let space = [1u8; 32];
        let device = [7u8; 32];
        let e1 = EpochStorage::derive(&space, &EpochKey::new([2; 32], [3; 32])).expect("derive");
        let e2 = EpochStorage::derive(&space, &EpochKey::new([4; 32], [5; 32])).expect("derive");
        assert_ne!(e1.dir(), e2.dir());
        let h = e1.head_path(&device).expect("path");
        assert!(!h.contains(&hex::encode(device)));
        assert!(!h.contains(&hex::encode(space)));
        assert_ne!(h, e2.head_path(&device).expect("path"));
        assert_eq!(h, e1.head_path(&device).expect("path"));
        let id = object_id(b"x").expect("id");
        assert_eq!(parse_object_name(&hex::encode(id)), Some(id));
        assert_eq!(
            id,
            suite::hash_with_label(labels::ID_STORAGE_OBJECT, b"x").expect("hash")
        );
        assert_eq!(parse_object_name("zz"), None);
    }
}
