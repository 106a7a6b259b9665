//! The fast cold-join path (`Replica::restore_opened`: every envelope opened
//! ahead under the strict rule SIG-3, possibly on several threads, then received
//! in order; Automerge changes applied in one call) against the strict path
//! (`Replica::restore`: one `receive` after the other). Every verdict, the
//! state and history digests and the heads must be the same on every input:
//! honest histories, the signature edge cases of ed25519-speccheck and
//! Wycheproof applied to envelope signatures (with the bad envelope's honest
//! successor), and random tampering (proptest).
//! spec: SIG-3, ENV-5, DOC-7, DOC-16.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use clientful_core::envelope;
use clientful_core::labels;
use clientful_doc::replica::{Opener, PreOpened};
use clientful_doc::testkit::World;
use clientful_doc::{CrdtKind, Replica};
use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::scalar::Scalar;
use proptest::prelude::*;

mod common;
use common::{Outcome, apply, history, outcome, tamper};
use sha2::{Digest, Sha512};

fn sequential(o: &Opener, envs: &[Vec<u8>]) -> Vec<PreOpened> {
    envs.iter().map(|e| o.open(e)).collect()
}

fn threaded(chunk: usize) -> impl FnOnce(&Opener, &[Vec<u8>]) -> Vec<PreOpened> {
    move |o, envs| {
        std::thread::scope(|s| {
            let hs: Vec<_> = envs
                .chunks(chunk.max(1))
                .map(|c| s.spawn(move || c.iter().map(|e| o.open(e)).collect::<Vec<_>>()))
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        })
    }
}

fn assert_same(w: &World, envs: &[Vec<u8>]) -> Outcome {
    let strict = outcome(&mut Replica::restore(w.config(1, 1), envs), envs);
    let seq = outcome(
        &mut Replica::restore_opened(w.config(1, 1), None, envs, sequential),
        envs,
    );
    assert_eq!(strict, seq, "sequential pre-opening");
    for chunk in [1, 3, 64] {
        let par = outcome(
            &mut Replica::restore_opened(w.config(1, 1), None, envs, threaded(chunk)),
            envs,
        );
        assert_eq!(strict, par, "threads of {chunk}");
    }
    strict
}

#[test]
fn honest_histories_restore_the_same() {
    for crdt in [CrdtKind::Yjs, CrdtKind::Automerge] {
        let (w, envs) = history(1, crdt, 6);
        let o = assert_same(&w, &envs);
        assert!(o.verdicts.iter().all(|v| v == "Applied"), "{o:?}");
        // Any order: the DAG buffers what arrives early.
        let mut rev = envs.clone();
        rev.reverse();
        assert_same(&w, &rev);
    }
}

/// Items opened under another replica's context, missing or out of order are
/// opened again by the replica: the same outcome.
#[test]
fn foreign_missing_or_misordered_items_are_opened_again() {
    let (w, envs) = history(2, CrdtKind::Yjs, 4);
    let strict = outcome(&mut Replica::restore(w.config(1, 1), &envs), &envs);
    let other = Replica::new(w.config(0, 1));
    let foreign = other.opener();
    let r =
        &mut Replica::restore_opened(w.config(1, 1), None, &envs, |_, e| sequential(&foreign, e));
    assert_eq!(strict, outcome(r, &envs));
    let r = &mut Replica::restore_opened(w.config(1, 1), None, &envs, |o, e| {
        sequential(o, e.get(..e.len() / 2).unwrap())
    });
    assert_eq!(strict, outcome(r, &envs));
    let r = &mut Replica::restore_opened(w.config(1, 1), None, &envs, |o, e| {
        let mut v = sequential(o, e);
        v.reverse();
        v
    });
    assert_eq!(strict, outcome(r, &envs));
}

/// The device's secret scalar and nonce prefix from its RFC 8032 seed.
fn expand(seed: &[u8; 32]) -> (Scalar, [u8; 32]) {
    let h: [u8; 64] = Sha512::digest(seed).into();
    let mut a = [0u8; 32];
    a.copy_from_slice(&h[..32]);
    a[0] &= 248;
    a[31] &= 127;
    a[31] |= 64;
    let mut prefix = [0u8; 32];
    prefix.copy_from_slice(&h[32..]);
    (Scalar::from_bytes_mod_order(a), prefix)
}

fn challenge(r: &[u8; 32], a: &[u8; 32], msg: &[u8]) -> Scalar {
    let h: [u8; 64] = Sha512::new()
        .chain_update(r)
        .chain_update(a)
        .chain_update(msg)
        .finalize()
        .into();
    Scalar::from_bytes_mod_order_wide(&h)
}

/// `L`, little-endian.
const L_BYTES: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn add_l(s: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u32;
    for i in 0..32 {
        let v = u32::from(s[i]) + u32::from(L_BYTES[i]) + carry;
        out[i] = (v & 0xff) as u8;
        carry = v >> 8;
    }
    out
}

/// The speccheck / Wycheproof kinds of bad signature, made on one envelope's
/// labelled payload by its author's key: each must be rejected on both paths.
fn bad_signatures(w: &World, author: usize, env: &[u8]) -> Vec<(&'static str, [u8; 64])> {
    let d = envelope::decode(env).unwrap();
    let msg = labels::labeled(
        labels::SIG_ENVELOPE,
        &envelope::raw::signature_input(&w.space_id, &d.payload),
    )
    .unwrap();
    let (a, _) = expand(&w.device_seeds[author]);
    let a_pub = (ED25519_BASEPOINT_POINT * a).compress().to_bytes();
    let good = d.signature;
    let mut out = Vec::new();
    // S + L: the same equation, S not reduced (speccheck case 6/7 kind; Wycheproof
    // "s not reduced").
    let mut s_plus_l = good;
    s_plus_l[32..].copy_from_slice(&add_l(&good[32..]));
    out.push(("S + L", s_plus_l));
    // R of small order (the identity encoding), S = k·a: the cofactored and
    // cofactorless equations both need R small order to pass (speccheck 0-3).
    let identity = [1u8; 1]
        .iter()
        .chain([0u8; 31].iter())
        .copied()
        .collect::<Vec<_>>();
    let mut r_small = [0u8; 64];
    r_small[..32].copy_from_slice(&identity);
    let k = challenge(r_small[..32].try_into().unwrap(), &a_pub, &msg);
    r_small[32..].copy_from_slice((k * a).as_bytes());
    out.push(("small-order R", r_small));
    // R = rB + T (T of order 8), S = r + k·a: only the cofactored equation holds
    // (speccheck case 4/5 kind: accepted by cofactored and batch verifiers).
    let r = Scalar::from_bytes_mod_order(*b"clientful pf test nonce r scalar");
    let big_r = (ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[1])
        .compress()
        .to_bytes();
    let k = challenge(&big_r, &a_pub, &msg);
    let mut cofactored_only = [0u8; 64];
    cofactored_only[..32].copy_from_slice(&big_r);
    cofactored_only[32..].copy_from_slice((r + k * a).as_bytes());
    out.push(("cofactored-only", cofactored_only));
    // The same without the torsion: valid (checks the construction itself).
    let big_r = (ED25519_BASEPOINT_POINT * r).compress().to_bytes();
    let k = challenge(&big_r, &a_pub, &msg);
    let mut valid = [0u8; 64];
    valid[..32].copy_from_slice(&big_r);
    valid[32..].copy_from_slice((r + k * a).as_bytes());
    out.push(("valid (re-signed)", valid));
    // Non-canonical R: y ≥ p (y = p + 1 encodes the point with y = 1).
    let mut noncanon = good;
    let mut p_plus_1 = [0xffu8; 32];
    p_plus_1[0] = 0xee;
    p_plus_1[31] = 0x7f;
    noncanon[..32].copy_from_slice(&p_plus_1);
    out.push(("non-canonical R", noncanon));
    // A flipped bit (Wycheproof "modified signature").
    let mut flipped = good;
    flipped[5] ^= 0x10;
    out.push(("flipped bit", flipped));
    out
}

fn with_signature(env: &[u8], sig: &[u8; 64]) -> Vec<u8> {
    let d = envelope::decode(env).unwrap();
    // SignedEnvelope ends with its 64-byte signature field.
    let n = env.len();
    assert_eq!(&env[n - 64..], &d.signature, "signature is the last field");
    let mut out = env.to_vec();
    out[n - 64..].copy_from_slice(sig);
    out
}

/// An author's envelope with a bad signature and its honest successor: the
/// cold joiner rejects the first and never applies the second, on both paths.
#[test]
fn speccheck_and_wycheproof_kinds_on_envelopes() {
    for crdt in [CrdtKind::Yjs, CrdtKind::Automerge] {
        let (w, envs) = history(3, crdt, 4);
        // Device 0's first envelope is envs[0]; its successor is envs[3].
        let ids: Vec<_> = envs.iter().map(|e| envelope::decode(e).unwrap()).collect();
        assert_eq!(ids[3].header.prev, Some(ids[0].id), "successor");
        for (name, sig) in bad_signatures(&w, 0, &envs[0]) {
            let mut tampered = envs.clone();
            tampered[0] = with_signature(&envs[0], &sig);
            let o = assert_same(&w, &tampered);
            if name == "valid (re-signed)" {
                assert_eq!(o.verdicts[0], "Applied", "{name}");
                continue;
            }
            // Failing to open is not recorded (an unauthenticated input names no
            // verdict), and the successor waits for the real envelope.
            assert_eq!(o.verdicts[0], "Unknown", "{name}");
            assert_eq!(o.verdicts[3], "Buffered", "{name}: successor");
            assert_ne!(o.verdicts[6], "Applied", "{name}: its successor");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random tampering, any order, any chunking: the fast path's outcome is the
    /// strict path's.
    #[test]
    fn fast_path_equals_strict_path(
        seed in 0u64..4,
        automerge in any::<bool>(),
        rounds in 1usize..5,
        tampers in proptest::collection::vec(tamper(), 0..6),
        chunk in 1usize..8,
    ) {
        let crdt = if automerge { CrdtKind::Automerge } else { CrdtKind::Yjs };
        let (w, mut envs) = history(seed, crdt, rounds);
        for t in &tampers {
            apply(&mut envs, t);
        }
        let strict = outcome(&mut Replica::restore(w.config(1, 1), &envs), &envs);
        let fast = outcome(
            &mut Replica::restore_opened(w.config(1, 1), None, &envs, threaded(chunk)),
            &envs,
        );
        prop_assert_eq!(strict, fast);
    }
}
