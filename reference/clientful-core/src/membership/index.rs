//! Device indices (spec MEM-30, MEM-31; used by DOC-19): the index a device's
//! Yjs client ids are built from.
//!
//! Every accepted operation that adds devices (`CREATE_SPACE`, `ADD_MEMBER`,
//! `ADD_DEVICE`, and `ADMIT` for the devices of its redemption) **claims** one
//! index for each device it lists. The claim is a *path* in the tree of adders:
//! the author device's own path (its claim from the lowest-position operation in
//! the causal past that lists it; empty for `CREATE_SPACE`) followed by one
//! element, `c + pos`, where `c` counts the devices listed by the author's own
//! operations in the causal past and `pos` is the device's position in the
//! operation. A path is encoded as an integer (a 1 bit, then each element `v` as
//! the Elias gamma code of `v + 1`) of at most [`MAX_INDEX_BITS`] bits; a longer
//! path claims nothing.
//!
//! A claim is a function of the operation and its causal past only, so it never
//! changes as operations arrive (late, concurrent, or with crafted
//! predecessors), and claims are never re-assigned. Two claims for different
//! devices are equal only if one device authored two operations that do not see
//! each other, with the same own operations before them: equivocation
//! (MEM-31).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use super::ops::OpBody;
use super::resolve::Entry;
use super::state::OpId;

/// Most bits of an encoded path, its leading 1 included: every index is below
/// `2^36`, within DOC-3's bound on device indices (`2^37 - 2`).
pub const MAX_INDEX_BITS: u32 = 36;

/// Encodes `path` as a device index: a leading 1 bit, then for each element `v`
/// the Elias gamma code of `v + 1` (as many 0 bits as the code has bits after
/// its first, then the binary digits of `v + 1`). `None` if the result would
/// exceed [`MAX_INDEX_BITS`] bits. The code is prefix-free, so distinct paths
/// give distinct indices.
pub fn encode_path(path: &[u64]) -> Option<u64> {
    let mut out: u64 = 1;
    let mut bits: u32 = 1;
    for v in path {
        let n = v.checked_add(1)?;
        let len = 64 - n.leading_zeros();
        let code_len = 2 * len - 1;
        bits = bits.checked_add(code_len)?;
        if bits > MAX_INDEX_BITS {
            return None;
        }
        // (len - 1) zeros, then the len bits of n.
        out = (out << code_len) | n;
    }
    Some(out)
}

/// The path an index encodes (the inverse of [`encode_path`]); `None` if the
/// index is not an encoded path.
pub fn decode_index(index: u64) -> Option<Vec<u64>> {
    if index == 0 {
        return None;
    }
    let top = 63 - index.leading_zeros();
    if top + 1 > MAX_INDEX_BITS {
        return None;
    }
    let mut path = Vec::new();
    // Bits below the leading 1, most significant first.
    let mut remaining = top;
    while remaining > 0 {
        let mut zeros = 0u32;
        while remaining > 0 && (index >> (remaining - 1)) & 1 == 0 {
            zeros += 1;
            remaining -= 1;
        }
        if remaining < zeros + 1 {
            return None;
        }
        let n = (index >> (remaining - zeros - 1)) & ((1u64 << (zeros + 1)) - 1);
        remaining -= zeros + 1;
        path.push(n - 1);
    }
    Some(path)
}

/// The device keys an accepted operation adds if it stands, in order (an
/// `ADMIT` adds its redemption's devices; a redemption adds none).
fn listed(entries: &BTreeMap<OpId, Entry>, e: &Entry) -> Vec<[u8; 32]> {
    let devices = match &e.op.body {
        OpBody::CreateSpace { .. } | OpBody::AddMember { .. } | OpBody::AddDevice { .. } => {
            e.op.body.devices()
        }
        OpBody::Admit { redemption } => match entries.get(redemption) {
            Some(r) if matches!(r.op.body, OpBody::RedeemInvite { .. }) => r.op.body.devices(),
            _ => &[],
        },
        _ => &[],
    };
    devices.iter().map(|d| *d.device_key.as_bytes()).collect()
}

/// One claim: the claiming operation's position, then the path.
type Claim = ((u64, OpId), Vec<u64>);

/// The claims of every device listed by an accepted operation (MEM-30), by
/// device key: the claimed indices, in the position order of the claiming
/// operations (the first is the device's **primary** index). Paths too long to
/// encode claim nothing.
pub fn claims(entries: &BTreeMap<OpId, Entry>) -> BTreeMap<[u8; 32], Vec<u64>> {
    let mut order: Vec<&Entry> = entries.values().collect();
    order.sort_by_key(|e| (e.depth, e.op.id));
    let mut paths: BTreeMap<[u8; 32], Vec<Claim>> = BTreeMap::new();
    for e in order {
        let devices = listed(entries, e);
        if devices.is_empty() {
            continue;
        }
        let root = matches!(e.op.body, OpBody::CreateSpace { .. });
        let prefix: Option<Vec<u64>> = if root {
            Some(Vec::new())
        } else {
            // The author's claim from the lowest-position operation of the
            // causal past that lists it (all of them were handled already:
            // they have a lower depth).
            paths.get(&e.op.author).and_then(|cs| {
                cs.iter()
                    .find(|((_, id), _)| e.past.contains(id))
                    .map(|(_, p)| p.clone())
            })
        };
        let Some(prefix) = prefix else {
            continue;
        };
        let before: u64 = e
            .past
            .iter()
            .filter_map(|id| entries.get(id))
            .filter(|p| p.op.author == e.op.author)
            .map(|p| listed(entries, p).len() as u64)
            .sum();
        for (pos, d) in devices.iter().enumerate() {
            let mut path = prefix.clone();
            path.push(before + pos as u64);
            paths
                .entry(*d)
                .or_default()
                .push(((e.depth, e.op.id), path));
        }
    }
    paths
        .into_iter()
        .map(|(d, cs)| {
            let idx: Vec<u64> = cs.iter().filter_map(|(_, p)| encode_path(p)).collect();
            (d, idx)
        })
        .filter(|(_, idx)| !idx.is_empty())
        .collect()
}

/// The indices claimed for more than one device (MEM-31): only an adder that
/// equivocated produces them. Document replicas withdraw every envelope that
/// inserted under one (DOC-23).
pub fn contested(claims: &BTreeMap<[u8; 32], Vec<u64>>) -> BTreeSet<u64> {
    let mut seen: BTreeMap<u64, [u8; 32]> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for (d, idx) in claims {
        for i in idx {
            match seen.get(i) {
                Some(other) if other != d => {
                    out.insert(*i);
                }
                _ => {
                    seen.insert(*i, *d);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn paths_round_trip_and_are_prefix_free() {
        assert_eq!(encode_path(&[]), Some(1));
        // [0]: "1" + gamma(1) = "1" -> 0b11.
        assert_eq!(encode_path(&[0]), Some(0b11));
        // [0, 1]: "1" + "1" + gamma(2) = "010" -> 0b11010.
        assert_eq!(encode_path(&[0, 1]), Some(0b11010));
        for p in [
            vec![],
            vec![0],
            vec![5, 0, 0, 3],
            vec![65_535],
            vec![0; 35],
            vec![1000, 20, 0],
        ] {
            let i = encode_path(&p).unwrap();
            assert!(i < 1 << MAX_INDEX_BITS);
            assert_eq!(decode_index(i), Some(p));
        }
        assert_eq!(encode_path(&[0; 36]), None);
        assert_eq!(encode_path(&[u64::MAX]), None);
        assert_eq!(encode_path(&[1 << 20, 1 << 20]), None);
    }
}
