//! Coverage attestations and the check of a snapshot's claimed coverage (spec §9.5,
//! §9.7: STO-30, STO-31), pure.
//!
//! A snapshot's `covers` entry `(D, count)` is a claim by the snapshot's writer
//! that it holds every envelope of device `D`'s segments `[0, count)`. Only `D`
//! knows what its segments hold, so `D` attests it in its own signed head
//! manifest: per document, the range of its own `seq` numbers its segments hold
//! (its "tips", [`Tip`]). A reader believes a cover only as far as `D`'s
//! attestation confirms it: [`check_cover`] clamps the claimed count to `D`'s
//! `segment_count` and then requires the snapshot to hold every one of `D`'s
//! envelopes the attestation names at that count.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use clientful_core::envelope::{self, DecodedEnvelope, EnvelopeId};

use crate::error::StorageError;
use crate::object::{HeadManifest, Snapshot, Tip};

/// Updates a writer's own head manifest for a segment it is about to list at
/// index `segment_count − 1` (STO-30): for each document in which `envelopes`
/// holds envelopes authored by `device`, an entry at `count = segment_count`
/// widening that document's `first..=last` range, when it changes.
pub fn attest_segment(own: &mut HeadManifest, envelopes: &[Vec<u8>]) {
    let count = own.segment_count;
    let mut latest = own.tips_at(count.saturating_sub(1)).unwrap_or_default();
    let mut seen: BTreeMap<[u8; 32], (u64, u64, EnvelopeId)> = BTreeMap::new();
    for bytes in envelopes {
        let Ok(d) = envelope::decode(bytes) else {
            continue;
        };
        if d.header.author != own.device {
            continue;
        }
        let e = seen
            .entry(d.header.doc_id)
            .or_insert((d.header.seq, d.header.seq, d.id));
        e.0 = e.0.min(d.header.seq);
        if d.header.seq > e.1 {
            e.1 = d.header.seq;
            e.2 = d.id;
        }
    }
    for (doc_id, (lo, hi, hi_id)) in seen {
        let (first, last, id) = match latest.remove(&doc_id) {
            Some(t) if hi > t.last => (t.first.min(lo), hi, hi_id),
            Some(t) if lo < t.first => (lo, t.last, t.id),
            Some(_) => continue,
            None => (lo, hi, hi_id),
        };
        own.tips.push(Tip {
            count,
            doc_id,
            first,
            last,
            id,
        });
    }
}

/// After a compaction set `gc_floor = segment_count`: every document's latest
/// entry, restated at `count = gc_floor` (STO-30), so that the attestation stays
/// one entry per document plus one per document and live segment.
pub fn collapse_tips(own: &mut HeadManifest) {
    let floor = own.gc_floor;
    own.tips = own
        .tips_at(floor)
        .unwrap_or_default()
        .into_values()
        .map(|t| Tip { count: floor, ..t })
        .collect();
    if floor == 0 {
        own.tips.clear();
    }
}

impl HeadManifest {
    /// The device's attestation at segment count `count` (STO-30): per document,
    /// the entry with the greatest count at most `count`. `None` when `count` is
    /// outside `[gc_floor, segment_count]` (the manifest no longer, or not yet,
    /// states it).
    pub fn tips_at(&self, count: u64) -> Option<BTreeMap<[u8; 32], Tip>> {
        if count < self.gc_floor || count > self.segment_count {
            return None;
        }
        let mut out = BTreeMap::new();
        for t in self.tips.iter().filter(|t| t.count <= count) {
            out.insert(t.doc_id, *t);
        }
        Some(out)
    }
}

/// The envelopes of one snapshot, indexed for [`check_cover`]: the `seq`s it
/// holds per `(author, doc)` and the ids it holds.
#[derive(Debug, Default)]
pub struct EnvelopeIndex {
    seqs: BTreeMap<([u8; 32], [u8; 32]), BTreeSet<u64>>,
    ids: HashSet<EnvelopeId>,
}

impl EnvelopeIndex {
    /// Indexes `envelopes`; bytes that do not decode are left out.
    pub fn new(envelopes: &[Vec<u8>]) -> Self {
        let mut ix = EnvelopeIndex::default();
        for bytes in envelopes {
            if let Ok(d) = envelope::decode(bytes) {
                ix.insert(&d);
            }
        }
        ix
    }

    /// Indexes envelopes already decoded (a snapshot decoded once, whose
    /// undecodable entries were left out): the same index as [`EnvelopeIndex::new`]
    /// on their bytes.
    pub fn from_decoded<'a>(envelopes: impl IntoIterator<Item = &'a DecodedEnvelope>) -> Self {
        let mut ix = EnvelopeIndex::default();
        for d in envelopes {
            ix.insert(d);
        }
        ix
    }

    fn insert(&mut self, d: &DecodedEnvelope) {
        self.seqs
            .entry((d.header.author, d.header.doc_id))
            .or_default()
            .insert(d.header.seq);
        self.ids.insert(d.id);
    }

    /// Whether it holds `device`'s envelopes of `tip.doc_id` with every `seq` in
    /// `tip.first..=tip.last`, and the one with id `tip.id`.
    fn holds(&self, device: &[u8; 32], tip: &Tip) -> bool {
        let Some(seqs) = self.seqs.get(&(*device, tip.doc_id)) else {
            return false;
        };
        let want = tip.last - tip.first + 1;
        self.ids.contains(&tip.id) && seqs.range(tip.first..=tip.last).count() as u64 == want
    }
}

/// What a reader may believe of one `covers` entry (STO-31).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cover {
    /// The device's attestation confirms the snapshot holds its segments `[0, n)`.
    Verified(u64),
    /// Nothing to check it against (no accepted head manifest of the device, or
    /// the claimed count is below its `gc_floor`): the cover counts 0, and no
    /// verdict.
    Unverifiable,
    /// The snapshot lacks an envelope the device attests for the claimed count:
    /// the claim is false.
    Refuted {
        /// The count checked.
        count: u64,
        /// The document whose envelopes are missing.
        doc_id: [u8; 32],
    },
}

/// Checks the claim "holds every envelope of `device`'s segments `[0, claimed)`"
/// against `device`'s accepted head manifest (STO-31): the count is clamped to
/// its `segment_count`; below its `gc_floor` it cannot be checked; otherwise the
/// snapshot must hold every envelope the manifest's tips name at that count.
pub fn check_cover(
    index: &EnvelopeIndex,
    device: &[u8; 32],
    claimed: u64,
    manifest: Option<&HeadManifest>,
) -> Cover {
    let Some(m) = manifest else {
        return Cover::Unverifiable;
    };
    let count = claimed.min(m.segment_count);
    if count == 0 {
        return Cover::Verified(0);
    }
    let Some(tips) = m.tips_at(count) else {
        return Cover::Unverifiable;
    };
    match tips.values().find(|t| !index.holds(device, t)) {
        None => Cover::Verified(count),
        Some(t) => Cover::Refuted {
            count,
            doc_id: t.doc_id,
        },
    }
}

/// The covers of `snap` a reader may use (STO-31), given the head manifests it
/// accepted in the snapshot's epoch: device → verified count (non-zero entries
/// only). A refuted cover makes the whole snapshot `STORAGE_CORRUPT`: it is
/// evidence that its signer lied, and it is not loaded.
pub fn verified_covers(
    what: &str,
    snap: &Snapshot,
    heads: &[HeadManifest],
) -> Result<BTreeMap<[u8; 32], u64>, StorageError> {
    verified_indexed_covers(
        what,
        &snap.covers,
        &EnvelopeIndex::new(&snap.envelopes),
        heads,
    )
}

/// [`verified_covers`] of a snapshot whose `covers` are `claimed` and whose
/// envelopes `index` holds (indexed once by the caller, from the decoding it
/// keeps).
pub fn verified_indexed_covers(
    what: &str,
    claimed: &[([u8; 32], u64)],
    index: &EnvelopeIndex,
    heads: &[HeadManifest],
) -> Result<BTreeMap<[u8; 32], u64>, StorageError> {
    let mut out = BTreeMap::new();
    for (device, claimed) in claimed {
        let manifest = heads.iter().find(|m| &m.device == device);
        match check_cover(index, device, *claimed, manifest) {
            Cover::Verified(0) | Cover::Unverifiable => {}
            Cover::Verified(n) => {
                out.insert(*device, n);
            }
            Cover::Refuted { count, doc_id } => {
                return Err(StorageError::corrupt(
                    what,
                    format!(
                        "coverage overclaimed: claims segments [0, {count}) of device {}, but lacks \
                         envelopes its head manifest attests in document {}",
                        hex::encode(device.get(..4).unwrap_or_default()),
                        hex::encode(doc_id.get(..4).unwrap_or_default()),
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// The sum of verified counts (the total coverage STO-13 compares).
pub fn total(covers: &BTreeMap<[u8; 32], u64>) -> u64 {
    covers.values().fold(0u64, |a, c| a.saturating_add(*c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tip(count: u64, doc: u8, first: u64, last: u64, id: u8) -> Tip {
        Tip {
            count,
            doc_id: [doc; 32],
            first,
            last,
            id: [id; 32],
        }
    }

    fn manifest(gc_floor: u64, segment_count: u64, tips: Vec<Tip>) -> HeadManifest {
        let mut m = HeadManifest::empty([7; 32]);
        m.counter = 1;
        m.gc_floor = gc_floor;
        m.segment_count = segment_count;
        m.tips = tips;
        m
    }

    fn index(entries: &[(u8, u64, u8)]) -> EnvelopeIndex {
        let mut ix = EnvelopeIndex::default();
        for (doc, seq, id) in entries {
            ix.seqs
                .entry(([7; 32], [*doc; 32]))
                .or_default()
                .insert(*seq);
            ix.ids.insert([*id; 32]);
        }
        ix
    }

    #[test]
    fn tips_at_takes_the_latest_entry_per_document_within_range() {
        let m = manifest(
            0,
            3,
            vec![
                tip(1, 1, 1, 2, 10),
                tip(2, 2, 1, 1, 20),
                tip(3, 1, 1, 4, 11),
            ],
        );
        let at2 = m.tips_at(2).expect("in range");
        assert_eq!(at2.get(&[1; 32]).map(|t| t.last), Some(2));
        assert_eq!(at2.get(&[2; 32]).map(|t| t.last), Some(1));
        assert_eq!(
            m.tips_at(3)
                .expect("in range")
                .get(&[1; 32])
                .map(|t| t.last),
            Some(4)
        );
        assert_eq!(m.tips_at(4), None);
        let compacted = manifest(2, 3, vec![tip(2, 1, 1, 2, 10)]);
        assert_eq!(compacted.tips_at(1), None);
    }

    #[test]
    fn covers_are_clamped_and_checked() {
        let m = manifest(0, 2, vec![tip(1, 1, 1, 2, 10), tip(2, 1, 1, 3, 11)]);
        let full = index(&[(1, 1, 1), (1, 2, 10), (1, 3, 11)]);
        // A huge claim is clamped to what the device attests.
        assert_eq!(
            check_cover(&full, &[7; 32], u64::MAX, Some(&m)),
            Cover::Verified(2)
        );
        assert_eq!(
            check_cover(&full, &[7; 32], 1, Some(&m)),
            Cover::Verified(1)
        );
        // A snapshot that omits seq 2 covers neither count.
        let gap = index(&[(1, 1, 1), (1, 3, 11)]);
        assert!(matches!(
            check_cover(&gap, &[7; 32], 2, Some(&m)),
            Cover::Refuted { count: 2, .. }
        ));
        assert!(matches!(
            check_cover(&gap, &[7; 32], 1, Some(&m)),
            Cover::Refuted { count: 1, .. }
        ));
        // Without the device's manifest, or below its gc_floor, nothing is believed.
        assert_eq!(check_cover(&full, &[7; 32], 2, None), Cover::Unverifiable);
        let compacted = manifest(2, 2, vec![tip(2, 1, 1, 3, 11)]);
        assert_eq!(
            check_cover(&full, &[7; 32], 1, Some(&compacted)),
            Cover::Unverifiable
        );
        assert_eq!(
            check_cover(&full, &[7; 32], 0, Some(&compacted)),
            Cover::Verified(0)
        );
    }
}
