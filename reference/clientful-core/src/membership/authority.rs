//! Document write authority (spec MEM-18) as plain data: a [`WriteView`] is
//! computed from a space's resolved membership and handed to document replicas,
//! which check every envelope against it. A removed or revoked device writes
//! up to its removal cut and never after; a role change keeps the epoch grace.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::error::Error;

use super::ops::{Role, Scope};
use super::state::EpochId;

/// What ended a device's capability, and what it had before (MEM-18 step 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The role and scope the device's user had in the causal past of the
    /// ending operation (`None`: not a member then).
    pub before: Option<(Role, Scope)>,
    /// The epochs created in the causal past of the ending operation.
    pub grace: BTreeSet<EpochId>,
    /// For a removal or revocation, the removal cut for this device: document
    /// id -> the last seq accepted (absent: 0). `None` for a role change, which
    /// keeps the epoch grace of MEM-18 step 2.
    pub cut: Option<BTreeMap<[u8; 32], u64>>,
}

/// One device's write authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceWrite {
    /// The role and scope now, if the device is active.
    pub current: Option<(Role, Scope)>,
    /// The standing operation that last set or ended its user's capability.
    pub ended: Option<Ended>,
}

/// The write authority of every device ever added to a space.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriteView {
    /// Every epoch created in the space.
    pub epochs: BTreeSet<EpochId>,
    /// By device signing key.
    pub devices: BTreeMap<[u8; 32], DeviceWrite>,
    /// The device indices each device claims (MEM-30), by signing key, in the
    /// position order of the claiming operations (the first is the primary).
    /// A document replica's Yjs client ids are built from them (DOC-19); a
    /// claim never changes once made, whatever arrives later.
    pub claims: BTreeMap<[u8; 32], Vec<u64>>,
    /// Indices claimed for more than one device (MEM-31, an adder's
    /// equivocation): an envelope that inserted under one is withdrawn (DOC-23).
    pub contested: BTreeSet<u64>,
}

fn writes(rs: &Option<(Role, Scope)>, doc_id: &[u8; 32], folders: &[[u8; 32]]) -> bool {
    rs.as_ref()
        .is_some_and(|(r, s)| *r >= Role::Writer && s.covers(doc_id, folders))
}

impl WriteView {
    /// The known signers of the space's documents (ENV-15): every device ever
    /// added, by key. (Their device indices are [`WriteView::claims`], not
    /// positions in this list.)
    pub fn signers(&self) -> Vec<[u8; 32]> {
        self.devices.keys().copied().collect()
    }

    /// MEM-18: may `author` write its envelope `seq` of `doc_id` (in
    /// `folders`) under `epoch_id`, with `seen` the epochs of the envelopes in
    /// its causal past?
    pub fn verdict(
        &self,
        author: &[u8; 32],
        doc_id: &[u8; 32],
        folders: &[[u8; 32]],
        epoch_id: &EpochId,
        seen: &[EpochId],
        seq: u64,
    ) -> Result<(), Error> {
        let not_member = Error::NotAMember {
            what: "no write capability for this document",
        };
        let d = self.devices.get(author).ok_or(Error::NotAMember {
            what: "device was never added",
        })?;
        if writes(&d.current, doc_id, folders) {
            return Ok(());
        }
        let Some(e) = &d.ended else {
            return Err(not_member);
        };
        if !writes(&e.before, doc_id, folders) {
            return Err(not_member);
        }
        if let Some(cut) = &e.cut {
            // A removal or revocation: writes up to the cut stand, whatever
            // epoch; later ones never do.
            return if seq <= cut.get(doc_id).copied().unwrap_or(0) {
                Ok(())
            } else {
                Err(Error::RemovedMember {
                    what: "written after the removal cut",
                })
            };
        }
        if e.grace.contains(epoch_id) && seen.iter().all(|s| e.grace.contains(s)) {
            Ok(())
        } else {
            Err(Error::RemovedMember {
                what: "written after the author's capability ended",
            })
        }
    }
}
