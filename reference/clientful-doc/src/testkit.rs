//! Helpers to build a shared world of devices and replicas, for tests, the
//! simulator and the benchmarks. Not for production: keys come from fixed seeds.

use clientful_core::keys::{EpochKey, SigningKey};

use crate::crdt::YjsSchema;
use crate::replica::{CrdtKind, Replica, ReplicaConfig};

/// A space with one document, one epoch and `n` member devices.
#[derive(Debug, Clone)]
pub struct World {
    /// Space id.
    pub space_id: [u8; 32],
    /// Document id.
    pub doc_id: [u8; 32],
    /// Epoch id and secret.
    pub epoch: ([u8; 32], [u8; 32]),
    /// Device key seeds, one per member device.
    pub device_seeds: Vec<[u8; 32]>,
    /// The CRDT of the document.
    pub crdt: CrdtKind,
}

impl World {
    /// A world with `devices` member devices; everything derives from `seed`.
    pub fn new(seed: u64, devices: usize, crdt: CrdtKind) -> Self {
        let b = seed.to_be_bytes();
        let mut base = [0u8; 32];
        base[..8].copy_from_slice(&b);
        let derive = |tag: u8, i: u8| {
            let mut x = base;
            x[30] = tag;
            x[31] = i;
            clientful_core::suite::sha256(&x)
        };
        World {
            space_id: derive(1, 0),
            doc_id: derive(2, 0),
            epoch: (derive(3, 0), derive(4, 0)),
            device_seeds: (0..devices).map(|i| derive(5, i as u8)).collect(),
            crdt,
        }
    }

    /// The seed of device `i` (indices wrap around; an empty world uses zeros).
    fn seed(&self, i: usize) -> [u8; 32] {
        let n = self.device_seeds.len().max(1);
        self.device_seeds.get(i % n).copied().unwrap_or_default()
    }

    /// The signing key of device `i`.
    pub fn device(&self, i: usize) -> SigningKey {
        SigningKey::from_seed(&self.seed(i))
    }

    /// Public keys of every member device.
    pub fn signers(&self) -> Vec<[u8; 32]> {
        (0..self.device_seeds.len())
            .map(|i| self.device(i).public_bytes())
            .collect()
    }

    /// The epoch key.
    pub fn epoch_key(&self) -> EpochKey {
        EpochKey::new(self.epoch.0, self.epoch.1)
    }

    /// The configuration of device `i`'s replica; `incarnation` varies the nonce
    /// seed across restarts.
    pub fn config(&self, i: usize, incarnation: u64) -> ReplicaConfig {
        let mut rng_seed = self.seed(i);
        rng_seed[..8].copy_from_slice(&incarnation.to_be_bytes());
        ReplicaConfig {
            space_id: self.space_id,
            doc_id: self.doc_id,
            device: self.device(i),
            epoch: self.epoch_key(),
            old_epochs: Vec::new(),
            signers: self.signers(),
            crdt: self.crdt,
            yjs_schema: YjsSchema::default(),
            rng_seed,
        }
    }

    /// A fresh replica for device `i`.
    pub fn replica(&self, i: usize) -> Replica {
        Replica::new(self.config(i, 0))
    }
}

/// Inserts `text` at UTF-16 offset `index` of the document's text: the Yjs root
/// text `text`, or the Automerge root key `text` (created if absent).
pub fn insert_text(r: &mut Replica, index: u32, text: &str) -> Result<(), String> {
    crate::text::insert_text(r, index, text).map_err(message)
}

/// Deletes `length` UTF-16 code units at `index` of the document's text.
pub fn delete_text(r: &mut Replica, index: u32, length: u32) -> Result<(), String> {
    crate::text::delete_text(r, index, length).map_err(message)
}

/// The words these helpers have always used (adapters report them).
fn message(e: crate::text::TextEditError) -> String {
    use crate::text::TextEditError;
    match e {
        TextEditError::OutOfRange { .. } => "edit position out of range".into(),
        TextEditError::NoDocument => "no document".into(),
        TextEditError::Automerge(e) => e.to_string(),
    }
}

/// Sets a string: in the Yjs root map `data`, or at an Automerge root key.
pub fn set_value(r: &mut Replica, key: &str, value: &str) -> Result<(), String> {
    use automerge::transaction::Transactable;
    use yrs::{Map, Transact};
    if let Some(y) = r.yjs() {
        let data = y.map("data");
        data.insert(&mut y.doc().transact_mut(), key, value);
        return Ok(());
    }
    let doc = r.automerge_mut().ok_or("no document")?.doc_mut();
    doc.put(automerge::ROOT, key, value)
        .map_err(|e| e.to_string())
}
