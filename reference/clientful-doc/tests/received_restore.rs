//! The decode-once path (an envelope decoded once on its way in, kept with its
//! bytes as a `ReceivedEnvelope`, then opened from that decoding:
//! `Replica::receive_received`, `Replica::restore_received`,
//! `Replica::restore_opened_received`) against the path that decodes the bytes
//! again (`Replica::receive`, `Replica::restore`). Every disposition, verdict,
//! the state and history digests and the heads must be the same on every
//! input: honest histories, bad signatures, envelopes of another document,
//! space, epoch or signer set, bytes that are not an envelope, and random
//! tampering (proptest). The verdict of each envelope stays what
//! `envelope::open` gives its bytes.
//! spec: ENV-5, ENV-14 .. ENV-17, SIG-3, DOC-7.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use clientful_core::envelope::{self, ReceivedEnvelope};
use clientful_core::keys::EpochKey;
use clientful_doc::replica::{Disposition, Opener, PreOpened, ReplicaConfig};
use clientful_doc::testkit::World;
use clientful_doc::{CrdtKind, Replica};
use proptest::prelude::*;

mod common;
use common::{Outcome, apply, history, outcome, tamper};

/// The envelopes that decode, decoded once (what a storage pull keeps).
fn received(envs: &[Vec<u8>]) -> Vec<ReceivedEnvelope> {
    envs.iter()
        .filter_map(|e| ReceivedEnvelope::decode(e.clone()).ok())
        .collect()
}

fn threaded(chunk: usize) -> impl FnOnce(&Opener, &[ReceivedEnvelope]) -> Vec<PreOpened> {
    move |o, envs| {
        std::thread::scope(|s| {
            let hs: Vec<_> = envs
                .chunks(chunk.max(1))
                .map(|c| s.spawn(move || c.iter().map(|e| o.open_received(e)).collect::<Vec<_>>()))
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        })
    }
}

/// One envelope after the other on two replicas of `cfg`: `receive` of the
/// bytes and `receive_received` of their decoding (or, for bytes that do not
/// decode, the decode error) give the same disposition, reason included.
fn same_dispositions(cfg: &dyn Fn() -> ReplicaConfig, envs: &[Vec<u8>]) -> Vec<Disposition> {
    let mut bytes_path = Replica::new(cfg());
    let mut decoded_path = Replica::new(cfg());
    let mut out = Vec::new();
    for e in envs {
        let a = bytes_path.receive(e);
        let b = match ReceivedEnvelope::decode(e.clone()) {
            Ok(r) => decoded_path.receive_received(r),
            Err(err) => Disposition::Rejected {
                id: None,
                class: err.class(),
                reason: err.to_string(),
            },
        };
        assert_eq!(a, b, "disposition");
        out.push(a);
    }
    out
}

/// The strict path on the bytes against both decode-once restores (one thread,
/// and pre-opened in chunks on threads); the dispositions step by step.
fn assert_same(cfg: &dyn Fn() -> ReplicaConfig, envs: &[Vec<u8>]) -> Outcome {
    let strict = outcome(&mut Replica::restore(cfg(), envs), envs);
    let once = outcome(
        &mut Replica::restore_received(cfg(), None, received(envs)),
        envs,
    );
    assert_eq!(strict, once, "restore_received");
    let decoded = received(envs);
    for chunk in [1, 3, 64] {
        let par = outcome(
            &mut Replica::restore_opened_received(cfg(), None, &decoded, threaded(chunk)),
            envs,
        );
        assert_eq!(strict, par, "restore_opened_received, threads of {chunk}");
    }
    same_dispositions(cfg, envs);
    strict
}

/// The verdict classes of `envelope::open` on the bytes, under the replica's
/// context, and of opening each envelope's decoding: the same, envelope by
/// envelope.
fn assert_open_same(cfg: &ReplicaConfig, envs: &[Vec<u8>]) -> Vec<Result<(), String>> {
    let mut epochs = vec![cfg.epoch.clone()];
    epochs.extend(cfg.old_epochs.iter().cloned());
    let ctx = envelope::StaticContext {
        space_id: cfg.space_id,
        doc_id: Some(cfg.doc_id),
        signers: cfg.signers.clone(),
        epochs,
        accepted: Vec::new(),
    };
    envs.iter()
        .map(|e| {
            let plain = envelope::open(e, &ctx).map(|_| ()).map_err(|e| e.class());
            let once = ReceivedEnvelope::decode(e.clone())
                .and_then(|r| envelope::open_decoded(r.into_parts().1, &ctx))
                .map(|_| ())
                .map_err(|e| e.class());
            assert_eq!(plain, once, "open");
            plain.map_err(|c| format!("{c:?}"))
        })
        .collect()
}

#[test]
fn honest_histories_restore_the_same() {
    for crdt in [CrdtKind::Yjs, CrdtKind::Automerge] {
        let (w, envs) = history(1, crdt, 6);
        let cfg = || w.config(1, 1);
        let o = assert_same(&cfg, &envs);
        assert!(o.verdicts.iter().all(|v| v == "Applied"), "{o:?}");
        assert!(assert_open_same(&cfg(), &envs).iter().all(Result::is_ok));
        let mut rev = envs.clone();
        rev.reverse();
        assert_same(&cfg, &rev);
    }
}

/// Bad signatures (a flipped bit, `S + L`, a non-canonical `R`), a damaged
/// ciphertext, bytes that are not an envelope and a duplicate: rejected (or
/// dropped) alike on both paths, and the bad envelope's successor never
/// applied.
#[test]
fn bad_envelopes_get_the_same_verdicts() {
    for crdt in [CrdtKind::Yjs, CrdtKind::Automerge] {
        let (w, envs) = history(3, crdt, 4);
        let cfg = || w.config(1, 1);
        let n = envs[0].len();
        let mut kinds: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut flipped = envs[0].clone();
        flipped[n - 60] ^= 0x10;
        kinds.push(("flipped signature bit", flipped));
        // S + L: S is the signature's last 32 bytes (the last field); adding L
        // to a reduced S with no overflow past 2^253 (its top byte is small).
        let mut s_plus_l = envs[0].clone();
        let mut carry = 0u16;
        let l: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        for (i, li) in l.iter().enumerate() {
            let v = u16::from(s_plus_l[n - 32 + i]) + u16::from(*li) + carry;
            s_plus_l[n - 32 + i] = (v & 0xff) as u8;
            carry = v >> 8;
        }
        kinds.push(("S + L", s_plus_l));
        let mut noncanon = envs[0].clone();
        let mut p_plus_1 = [0xffu8; 32];
        p_plus_1[0] = 0xee;
        p_plus_1[31] = 0x7f;
        noncanon[n - 64..n - 32].copy_from_slice(&p_plus_1);
        kinds.push(("non-canonical R", noncanon));
        let mut ciphertext = envs[0].clone();
        ciphertext[n / 2] ^= 1;
        kinds.push(("damaged payload", ciphertext));
        kinds.push(("truncated", envs[0][..n - 1].to_vec()));
        kinds.push(("not an envelope", b"not an envelope".to_vec()));
        for (name, bad) in kinds {
            let mut tampered = envs.clone();
            tampered[0] = bad;
            let o = assert_same(&cfg, &tampered);
            assert_ne!(o.verdicts[0], "Applied", "{name}");
            assert_ne!(o.verdicts[3], "Applied", "{name}: successor");
            assert!(assert_open_same(&cfg(), &tampered)[0].is_err(), "{name}");
        }
        let mut dup = envs.clone();
        dup.insert(2, envs[0].clone());
        let d = same_dispositions(&cfg, &dup);
        assert!(matches!(d[2], Disposition::Duplicate { .. }), "{d:?}");
        assert_same(&cfg, &dup);
    }
}

/// A change to a replica's configuration.
type Tweak = fn(&mut ReplicaConfig, &World);

/// Envelopes opened under another document, space, epoch or signer set: every
/// one rejected, with the same class on both paths.
#[test]
fn other_contexts_reject_alike() {
    let (w, envs) = history(4, CrdtKind::Yjs, 3);
    let dropped = w.signers()[0];
    let tweaks: Vec<(&str, Tweak)> = vec![
        ("another document", |c, _| c.doc_id = [0xd0; 32]),
        ("another space", |c, _| c.space_id = [0x5a; 32]),
        ("unknown epoch", |c, _| {
            c.epoch = EpochKey::new([0xe0; 32], [0xe1; 32]);
        }),
        ("wrong epoch secret", |c, w| {
            c.epoch = EpochKey::new(w.epoch.0, [0xe2; 32]);
        }),
        ("unknown signer", |c, _| {
            c.signers.remove(0);
        }),
    ];
    for (name, tweak) in tweaks {
        let cfg = || {
            let mut c = w.config(1, 1);
            tweak(&mut c, &w);
            c
        };
        let o = assert_same(&cfg, &envs);
        let opened = assert_open_same(&cfg(), &envs);
        if name == "unknown signer" {
            // Only the dropped device's envelopes fail to open.
            for (e, r) in envs.iter().zip(&opened) {
                let author = envelope::decode(e).unwrap().header.author;
                assert_eq!(r.is_err(), author == dropped, "{name}");
            }
        } else {
            assert!(opened.iter().all(Result::is_err), "{name}: {opened:?}");
            assert!(o.verdicts.iter().all(|v| v != "Applied"), "{name}: {o:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random tampering, any order, any chunking: decoding once changes no
    /// disposition, verdict or state.
    #[test]
    fn decode_once_equals_decoding_again(
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
        let cfg = || w.config(1, 1);
        let strict = outcome(&mut Replica::restore(cfg(), &envs), &envs);
        let once = outcome(
            &mut Replica::restore_received(cfg(), None, received(&envs)),
            &envs,
        );
        prop_assert_eq!(&strict, &once);
        let decoded = received(&envs);
        let par = outcome(
            &mut Replica::restore_opened_received(cfg(), None, &decoded, threaded(chunk)),
            &envs,
        );
        prop_assert_eq!(&strict, &par);
        same_dispositions(&cfg, &envs);
    }
}
