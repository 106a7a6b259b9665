//! High-water marks (spec §9.5, STO-9) and the snapshot choice (§9.7, STO-13), pure: what a device remembers of every head
//! manifest it has seen, and the check that detects rollback, fork and withholding
//! of a head manifest against it, typed as [`Withholding`] (also what a device
//! finds of its own files, STO-28).

use crate::error::StorageError;
use crate::layout::ObjectId;
use crate::object::HeadManifest;

/// The last head manifest accepted from one device in one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HighWater {
    /// Its counter.
    pub counter: u64,
    /// Object id (hash) of its file bytes.
    pub digest: ObjectId,
    /// Its segment count.
    pub segment_count: u64,
}

impl HighWater {
    /// Fixed 48-byte encoding for the local store.
    pub fn to_bytes(&self) -> [u8; 48] {
        let mut out = [0u8; 48];
        out[..8].copy_from_slice(&self.counter.to_be_bytes());
        out[8..40].copy_from_slice(&self.digest);
        out[40..].copy_from_slice(&self.segment_count.to_be_bytes());
        out
    }

    /// Parses [`HighWater::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != 48 {
            return None;
        }
        let mut c = [0u8; 8];
        c.copy_from_slice(b.get(..8)?);
        let mut d = [0u8; 32];
        d.copy_from_slice(b.get(8..40)?);
        let mut s = [0u8; 8];
        s.copy_from_slice(b.get(40..)?);
        Some(HighWater {
            counter: u64::from_be_bytes(c),
            digest: d,
            segment_count: u64::from_be_bytes(s),
        })
    }
}

/// What storage did to a device's head manifest or objects, as the reader's
/// high-water mark (STO-9) or the owner's own record (STO-28) shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Withholding {
    /// The head manifest is absent although one was seen before.
    HeadWithheld,
    /// The head manifest has a lower counter than one seen before.
    HeadRolledBack,
    /// Two different head manifests carry the same counter.
    HeadForked,
    /// A higher counter lists fewer segments than seen before.
    HistoryRewritten,
    /// An object listed in the owner's committed head manifest is absent
    /// (found by its owner, STO-28).
    ObjectWithheld,
}

impl Withholding {
    /// A short description, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Withholding::HeadWithheld => "head manifest withheld",
            Withholding::HeadRolledBack => "head manifest rolled back",
            Withholding::HeadForked => "head manifest forked",
            Withholding::HistoryRewritten => "segment history rewritten",
            Withholding::ObjectWithheld => "objects withheld",
        }
    }
}

/// [`check_head`] with the verdict typed: the new mark, or what storage did.
pub fn classify_head(
    previous: Option<&HighWater>,
    current: Option<(&HeadManifest, ObjectId)>,
) -> Result<Option<HighWater>, (Withholding, String)> {
    match (previous, current) {
        (None, None) => Ok(None),
        (Some(p), None) => Err((
            Withholding::HeadWithheld,
            format!(
                "withheld: the head manifest is missing, counter {} was seen before",
                p.counter
            ),
        )),
        (prev, Some((m, digest))) => {
            let new = HighWater {
                counter: m.counter,
                digest,
                segment_count: m.segment_count,
            };
            let Some(p) = prev else { return Ok(Some(new)) };
            if m.counter < p.counter {
                return Err((
                    Withholding::HeadRolledBack,
                    format!(
                        "rolled back: counter {} is below the {} already seen",
                        m.counter, p.counter
                    ),
                ));
            }
            if m.counter == p.counter && digest != p.digest {
                return Err((
                    Withholding::HeadForked,
                    format!("forked: two different manifests with counter {}", m.counter),
                ));
            }
            if m.segment_count < p.segment_count {
                return Err((
                    Withholding::HistoryRewritten,
                    format!(
                        "rolled back: {} segments, {} already seen",
                        m.segment_count, p.segment_count
                    ),
                ));
            }
            Ok(Some(new))
        }
    }
}

/// Checks a freshly read head manifest (`None`: the file is absent) against the
/// high-water mark kept for its device (STO-9). Returns the new mark.
///
/// * absent now, seen before: withheld (`ROLLBACK`);
/// * lower counter: rolled back (`ROLLBACK`);
/// * same counter, other bytes: forked (`ROLLBACK`);
/// * higher counter but fewer segments: history rewritten (`ROLLBACK`).
pub fn check_head(
    what: &str,
    previous: Option<&HighWater>,
    current: Option<(&HeadManifest, ObjectId)>,
) -> Result<Option<HighWater>, StorageError> {
    classify_head(previous, current).map_err(|(_, reason)| StorageError::rollback(what, reason))
}

/// The deterministic snapshot choice (STO-13): the candidate covering the most
/// segments in total; among equals, the smallest object id.
pub fn select_snapshot(candidates: &[(ObjectId, u64)]) -> Option<ObjectId> {
    candidates
        .iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(id, _)| *id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(counter: u64, segs: u64) -> HeadManifest {
        let mut h = HeadManifest::empty([1; 32]);
        h.counter = counter;
        h.segment_count = segs;
        h
    }

    #[test]
    fn detects_rollback_fork_and_withholding() {
        let first = check_head("d", None, Some((&m(2, 1), [1; 32])))
            .expect("ok")
            .expect("mark");
        assert_eq!(HighWater::from_bytes(&first.to_bytes()), Some(first));
        assert!(check_head("d", Some(&first), Some((&m(2, 1), [1; 32]))).is_ok());
        assert!(check_head("d", Some(&first), Some((&m(3, 2), [2; 32]))).is_ok());
        for (cur, why) in [
            (Some((m(1, 1), [3; 32])), "rolled back"),
            (Some((m(2, 1), [3; 32])), "forked"),
            (Some((m(3, 0), [3; 32])), "rolled back"),
            (None, "withheld"),
        ] {
            let err =
                check_head("d", Some(&first), cur.as_ref().map(|(h, d)| (h, *d))).expect_err(why);
            assert!(err.to_string().contains(why), "{err}");
            assert_eq!(err.class(), Some(clientful_core::ErrorClass::Rollback));
        }
        assert_eq!(check_head("d", None, None).expect("ok"), None);
        for (cur, kind) in [
            (Some((m(1, 1), [3; 32])), Withholding::HeadRolledBack),
            (Some((m(2, 1), [3; 32])), Withholding::HeadForked),
            (Some((m(3, 0), [3; 32])), Withholding::HistoryRewritten),
            (None, Withholding::HeadWithheld),
        ] {
            let got = classify_head(Some(&first), cur.as_ref().map(|(h, d)| (h, *d)));
            assert_eq!(got.map_err(|(k, _)| k), Err(kind));
        }
    }

    #[test]
    fn snapshot_choice_is_deterministic() {
        assert_eq!(select_snapshot(&[]), None);
        assert_eq!(
            select_snapshot(&[([2; 32], 5), ([1; 32], 5), ([3; 32], 4)]),
            Some([1; 32])
        );
        assert_eq!(
            select_snapshot(&[([2; 32], 6), ([1; 32], 5)]),
            Some([2; 32])
        );
    }
}
