//! Writes the seed corpora of the cargo-fuzz targets in `fuzz/`.
//!
//! ```text
//! cargo run -p clientful-core --example fuzz_seed -- fuzz/corpus
//! ```
//!
//! Every input is derived from fixed seeds, so the output is deterministic. Each file
//! is named by the SHA-256 hex of its content, so re-running only adds files that
//! are not there yet and never removes any.

use std::collections::BTreeSet;
use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

use clientful_core::envelope::{self, SealRequest};
use clientful_core::fuzzing::{
    FUZZ_AUTHOR_SEED, FUZZ_DOC_ID, FUZZ_EPOCH_ID, FUZZ_EPOCH_SECRET, FUZZ_SPACE_ID, fuzz_context,
};
use clientful_core::identity::{self, DeviceKeys};
use clientful_core::keys::{EpochKey, SigningKey};
use clientful_core::limits::MAX_SEQ;
use clientful_core::{padding, wire};
use clientful_proto::v1 as pb;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::{Digest, Sha256};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The seed inputs of one target, de-duplicated and in a stable order.
#[derive(Default)]
struct Corpus(BTreeSet<Vec<u8>>);

impl Corpus {
    fn add(&mut self, input: impl Into<Vec<u8>>) {
        self.0.insert(input.into());
    }

    fn extend<'a>(&mut self, inputs: impl IntoIterator<Item = &'a Vec<u8>>) {
        for input in inputs {
            self.add(input.clone());
        }
    }

    /// Writes every input to `dir/<sha256 hex>`; returns how many files were new.
    fn write(&self, dir: &Path) -> Result<usize> {
        fs::create_dir_all(dir)?;
        let mut new = 0;
        for input in &self.0 {
            let path = dir.join(hex::encode(Sha256::digest(input)));
            if !path.exists() {
                fs::write(&path, input)?;
                new += 1;
            }
        }
        Ok(new)
    }
}

/// Hand-made edge cases of the canonical scan and the framing.
fn edge_inputs() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x00],
        vec![0x01],
        vec![0x08],
        vec![0x0a],
        vec![0x7f],
        vec![0x80],
        vec![0xff],
        // Field 1 bytes, length 1.
        vec![0x0a, 0x01, 0x00],
        // Explicit empty bytes (default value encoded).
        vec![0x0a, 0x00],
        // Non-minimal length varint.
        vec![0x0a, 0x81, 0x00, 0x07],
        // Non-minimal uint varint (value 1 in two bytes) and explicit zero.
        vec![0x08, 0x81, 0x00],
        vec![0x08, 0x00],
        vec![0x08, 0x01],
        // Truncated varint and truncated length.
        vec![0x08, 0x80],
        vec![0x0a, 0x05, 0x00],
        // Field number 0, wrong wire type, unknown field, out of order, duplicate.
        vec![0x02, 0x01, 0x00],
        vec![0x09, 0, 0, 0, 0, 0, 0, 0, 0],
        vec![0x7a, 0x01, 0x00],
        vec![0x12, 0x01, 0x00, 0x0a, 0x01, 0x00],
        vec![0x0a, 0x01, 0x00, 0x0a, 0x01, 0x00],
        // Repeated preds, contiguous and not.
        vec![0x42, 0x01, 0x01, 0x42, 0x01, 0x02],
        vec![0x42, 0x01, 0x01, 0x4a, 0x01, 0x02, 0x42, 0x01, 0x03],
        // uint32 overflow (2^32).
        vec![0x08, 0x80, 0x80, 0x80, 0x80, 0x10],
        // Tag above 32 bits.
        vec![0x80, 0x80, 0x80, 0x80, 0x10, 0x00],
        // Plaintext framing: short prefix, prefix past the end, non-zero padding,
        // valid with padding, maximal prefix.
        vec![0x00, 0x00],
        vec![0x00, 0x00, 0x00, 0x09, 0x01],
        vec![0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x02],
        vec![0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00],
        vec![0xff, 0xff, 0xff, 0xff],
    ];
    // 10-byte varints as the uint64 `seq` (field 6) and as a length: the largest
    // value, one that overflows 64 bits, and an 11-byte one.
    let mut ten = vec![0xff; 9];
    ten.push(0x01);
    let mut overflow = vec![0xff; 9];
    overflow.push(0x02);
    let mut eleven = vec![0xff; 10];
    eleven.push(0x01);
    for varint in [&ten, &overflow, &eleven] {
        for tag in [0x30u8, 0x08, 0x0a] {
            let mut input = vec![tag];
            input.extend_from_slice(varint);
            v.push(input);
        }
    }
    // A non-minimal 10-byte varint of value 1.
    let mut padded_one = vec![0x81];
    padded_one.extend_from_slice(&[0x80; 8]);
    padded_one.push(0x00);
    let mut input = vec![0x30];
    input.extend_from_slice(&padded_one);
    v.push(input);
    v
}

struct Seeds {
    envelopes: Vec<Vec<u8>>,
    payloads: Vec<Vec<u8>>,
    headers: Vec<Vec<u8>>,
    contents: Vec<Vec<u8>>,
    plaintexts: Vec<Vec<u8>>,
    certificates: Vec<Vec<u8>>,
    bindings: Vec<Vec<u8>>,
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn id(byte: u8) -> [u8; 32] {
    [byte; 32]
}

/// One valid envelope to seal: (body length, seq, prev, preds, content type).
type Case = (usize, u64, Option<[u8; 32]>, Vec<[u8; 32]>, u32);

fn envelopes(seeds: &mut Seeds) -> Result<()> {
    let author = SigningKey::from_seed(&FUZZ_AUTHOR_SEED);
    let epoch = EpochKey::new(FUZZ_EPOCH_ID, FUZZ_EPOCH_SECRET);
    let context = fuzz_context();
    let mut rng = ChaCha20Rng::seed_from_u64(0x00f0_22ed);

    let preds_64: Vec<[u8; 32]> = (0..64u8).map(|i| id(i.wrapping_mul(3))).collect();
    let cases: Vec<Case> = vec![
        (0, 1, None, vec![], 1),
        (1, 1, None, vec![], 1),
        (5, 1, None, vec![id(7)], 2),
        (60, 1, None, vec![], 1),
        (61, 2, Some(id(1)), vec![id(1)], 1),
        (200, 3, Some(id(2)), vec![id(2), id(9)], 7),
        (1000, 1, None, preds_64.clone(), 1),
        (2000, 42, Some(id(0xab)), vec![id(0xab)], u32::MAX),
        (16, MAX_SEQ, Some(id(0xfe)), preds_64, 3),
    ];
    for (len, seq, prev, preds, content_type) in cases {
        let b = body(len);
        let req = SealRequest {
            space_id: FUZZ_SPACE_ID,
            doc_id: FUZZ_DOC_ID,
            seq,
            prev,
            preds,
            content_type,
            body: &b,
        };
        let sealed = envelope::seal(&author, &epoch, &req, &mut rng)?;
        // Every valid seed must get through all the checks of `open`.
        envelope::open(&sealed.bytes, &context)?;
        let decoded = envelope::decode(&sealed.bytes)?;
        seeds.payloads.push(decoded.payload);
        seeds.headers.push(decoded.header_bytes);
        seeds.envelopes.push(sealed.bytes);
        let content = wire::encode(&pb::EnvelopeContent {
            content_type,
            body: b,
        });
        for padded in [padding::bucket(content.len()), 0, content.len() + 7] {
            seeds.plaintexts.push(padding::frame(&content, padded)?);
        }
        seeds.contents.push(content);
    }

    // Near misses that stop at each context check of `open`: another document,
    // another space, an unknown signer, an unknown epoch.
    let small = body(3);
    let base = SealRequest {
        space_id: FUZZ_SPACE_ID,
        doc_id: FUZZ_DOC_ID,
        seq: 1,
        prev: None,
        preds: vec![],
        content_type: 1,
        body: &small,
    };
    let other_doc = SealRequest {
        doc_id: id(0x01),
        ..base.clone()
    };
    let other_space = SealRequest {
        space_id: id(0x02),
        ..base.clone()
    };
    let stranger = SigningKey::from_seed(&id(0x99));
    let other_epoch = EpochKey::new(id(0x03), id(0x04));
    seeds
        .envelopes
        .push(envelope::seal(&author, &epoch, &other_doc, &mut rng)?.bytes);
    seeds
        .envelopes
        .push(envelope::seal(&author, &epoch, &other_space, &mut rng)?.bytes);
    seeds
        .envelopes
        .push(envelope::seal(&stranger, &epoch, &base, &mut rng)?.bytes);
    seeds
        .envelopes
        .push(envelope::seal(&author, &other_epoch, &base, &mut rng)?.bytes);
    Ok(())
}

fn certificates(seeds: &mut Seeds) -> Result<()> {
    let mut rng = ChaCha20Rng::seed_from_u64(0x0ce7);
    let users = [
        SigningKey::from_seed(&FUZZ_AUTHOR_SEED),
        SigningKey::generate(&mut rng),
    ];
    for user in &users {
        for _ in 0..3 {
            let device = DeviceKeys::generate(&mut rng);
            let cert = identity::issue_certificate(user, &device)?;
            let parsed: pb::DeviceCertificate = wire::decode(&cert, &wire::DEVICE_CERTIFICATE)?;
            identity::verify_certificate(&cert, None)?;
            seeds.bindings.push(parsed.binding);
            seeds.certificates.push(cert);
        }
    }
    // Bindings that verify structurally but fail later: version 2, device key equal
    // to the user key, and a wrong-length key.
    let user = SigningKey::from_seed(&FUZZ_AUTHOR_SEED);
    let device = DeviceKeys::generate(&mut rng);
    let x25519 = device.x25519.public().as_bytes().to_vec();
    let odd_bindings = [
        pb::DeviceBinding {
            version: 2,
            user_key: user.public_bytes().to_vec(),
            device_key: device.signing.public_bytes().to_vec(),
            device_x25519: x25519.clone(),
        },
        pb::DeviceBinding {
            version: 1,
            user_key: user.public_bytes().to_vec(),
            device_key: user.public_bytes().to_vec(),
            device_x25519: x25519.clone(),
        },
        pb::DeviceBinding {
            version: 1,
            user_key: user.public_bytes().to_vec(),
            device_key: device.signing.public_bytes().split_at(31).0.to_vec(),
            device_x25519: x25519,
        },
    ];
    for binding in odd_bindings {
        let binding = wire::encode(&binding);
        seeds.bindings.push(binding.clone());
        seeds
            .certificates
            .push(identity::sign_binding(&user, &device.signing, binding)?);
    }
    Ok(())
}

/// Membership inputs (spec §11): operation bodies prefixed with their content
/// type's selector byte, key messages, sealed keys, welcomes to the fuzz device and
/// invite codes, from a small real space.
fn membership_seeds() -> Result<Vec<Vec<u8>>> {
    use clientful_core::fuzzing::{FUZZ_DOC_ID, FUZZ_EPOCH_SECRET, FUZZ_SPACE_ID};
    use clientful_core::keys::X25519Secret;
    use clientful_core::membership::space::{Identity, Outgoing};
    use clientful_core::membership::{Role, Scope, SpaceReplica, epoch};
    let mut rng = ChaCha20Rng::seed_from_u64(0x3e3b);
    let mut out = Vec::new();
    let a = SigningKey::generate(&mut rng);
    let b = SigningKey::generate(&mut rng);
    let ida = Identity::new(&a, DeviceKeys::generate(&mut rng))?;
    let idb = Identity::new(&b, DeviceKeys::generate(&mut rng))?;
    let bcert = idb.certificate.clone();
    let mut ra = SpaceReplica::create(&mut rng, ida)?;
    ra.add_member(
        &mut rng,
        &b.public_bytes(),
        Role::Writer,
        &Scope(vec![[7u8; 32]]),
        &[bcert],
    )?;
    ra.change_role(&mut rng, &b.public_bytes(), Role::Reader, &Scope::whole())?;
    out.push(ra.create_invite(&mut rng, Role::Writer, &Scope::whole(), true, 5)?);
    ra.rotate(&mut rng)?;
    ra.remove_member(&mut rng, &b.public_bytes(), &[])?;
    ra.ack(&mut rng)?;
    let space_id = *ra.space_id();
    for o in ra.drain_outbox() {
        match o {
            Outgoing::Envelope(e) => {
                let opened = envelope::open(
                    &e,
                    &envelope::StaticContext {
                        space_id,
                        doc_id: None,
                        signers: vec![ra.identity().device.signing.public_bytes()],
                        epochs: ra.keys().all(),
                        accepted: vec![],
                    },
                )?;
                let mut body = vec![u8::try_from(opened.content_type - 32).unwrap_or(0)];
                body.extend_from_slice(&opened.body);
                out.push(body);
            }
            Outgoing::KeyMessage(k) => {
                if let Ok(m) = epoch::decode_key_message(&k) {
                    for b in &m.boxes {
                        out.push(wire::encode(&pb::SealedKey {
                            device_id: b.device_id.to_vec(),
                            ephemeral: b.ephemeral.as_bytes().to_vec(),
                            ciphertext: b.ciphertext.clone(),
                        }));
                    }
                }
                out.push(k);
            }
            Outgoing::Welcome { bytes, .. } => out.push(bytes),
        }
    }
    let fuzz_device = epoch::Recipient {
        device_id: FUZZ_DOC_ID,
        x25519: X25519Secret::from_bytes(&FUZZ_EPOCH_SECRET).public(),
    };
    let keys = ra.keys().all();
    let fuzz_space_keys: Vec<_> = keys
        .iter()
        .filter_map(|k| epoch::epoch_key(&FUZZ_SPACE_ID, k.secret()).ok())
        .collect();
    let signer = epoch::WelcomeSigner {
        signing: &ra.identity().device.signing,
        certificate: &ra.identity().certificate,
        added_by: ra.state().genesis.unwrap_or_default(),
    };
    out.push(epoch::welcome(
        &mut rng,
        &FUZZ_SPACE_ID,
        &signer,
        &fuzz_device,
        &fuzz_space_keys,
    )?);
    if let Some(first) = fuzz_space_keys.first() {
        let (km, _) = epoch::key_message(&mut rng, &FUZZ_SPACE_ID, first, &[fuzz_device])?;
        out.push(km);
    }
    Ok(out)
}

/// Sealed backups and decrypted backup secrets (spec §5.5): the fuzz entry point
/// reads each input both as a `SealedBackup` and as a `BackupSecret`.
fn backup_seeds() -> Result<Vec<Vec<u8>>> {
    use clientful_core::backup::{SealRandomness, seal_backup};
    let seed = [7u8; 32];
    let r = SealRandomness {
        salt: [1; 16],
        nonce: [2; 24],
    };
    let mut out = vec![seal_backup("fuzz passphrase", &seed, "fuzz", &r)?];
    for (version, s, name) in [
        (1, seed.to_vec(), b"alice".to_vec()),
        (1, seed.to_vec(), Vec::new()),
        (2, seed.to_vec(), b"v2".to_vec()),
        (1, seed[..31].to_vec(), b"short".to_vec()),
        (1, seed.to_vec(), vec![0xff, 0xfe]),
        (1, seed.to_vec(), vec![b'n'; 257]),
        (1, [8u8; 32].to_vec(), b"other user".to_vec()),
    ] {
        out.push(wire::encode(&pb::BackupSecret {
            version,
            user_seed: s,
            name,
        }));
    }
    Ok(out)
}

/// Recovery messages (spec §5.6): a set, its kit, a request, and release bodies
/// (the fuzz entry point reads each input as all of them).
fn recovery_seeds() -> Result<Vec<Vec<u8>>> {
    use clientful_core::keys::X25519Secret;
    use clientful_core::recovery::{self, Holder, RequestSecret};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    let holders: Vec<Holder> = (1..=3u8)
        .map(|i| Holder {
            device_id: [i; 32],
            x25519: X25519Secret::from_bytes(&[i + 8; 32]).public(),
        })
        .collect();
    let set = recovery::create_set(&mut rng, &[7; 32], "fuzz", &holders, 2)?;
    let decoded = recovery::decode_set(&set)?;
    let mut out = vec![
        set.clone(),
        <pb::RecoverySet as prost::Message>::decode(set.as_slice())?.kit,
    ];
    let request = RequestSecret::generate(&mut rng)?;
    out.push(request.request().to_vec());
    for i in 1..=3u8 {
        let held = decoded.open_share(&[i; 32], &X25519Secret::from_bytes(&[i + 8; 32]))?;
        out.push(wire::encode(&pb::RecoveryRelease {
            version: 1,
            kit: held.kit.clone(),
            share: held.share.to_vec(),
        }));
    }
    Ok(out)
}

/// User-key continuity (spec §5.7) and `ROTATE_USER` bodies (MEM-32): a valid
/// statement, forged and malformed ones, and bodies carrying them.
fn continuity_seeds() -> Result<Vec<Vec<u8>>> {
    use clientful_core::continuity::{sign_continuity, sign_statement, statement};
    use clientful_core::identity::{DeviceKeys, issue_certificate};
    use clientful_core::keys::{SigningKey, X25519Secret};
    use clientful_core::membership::ops::BodyBuilder;
    let old = SigningKey::from_seed(&[7; 32]);
    let new = SigningKey::from_seed(&[8; 32]);
    let good = sign_continuity(&old, &new)?;
    let forged = sign_statement(
        &new,
        &new,
        statement(&old.public_bytes(), &new.public_bytes()),
    )?;
    let mut out = vec![
        good.clone(),
        forged.clone(),
        sign_statement(
            &old,
            &old,
            statement(&old.public_bytes(), &old.public_bytes()),
        )?,
        sign_statement(
            &old,
            &new,
            wire::encode(&pb::UserKeyContinuity {
                version: 2,
                old_user_key: old.public_bytes().to_vec(),
                new_user_key: new.public_bytes().to_vec(),
            }),
        )?,
        statement(&old.public_bytes(), &new.public_bytes()),
    ];
    let device = DeviceKeys {
        signing: SigningKey::from_seed(&[9; 32]),
        x25519: X25519Secret::from_bytes(&[10; 32]),
    };
    let cert = issue_certificate(&new, &device)?;
    for (continuity, certs) in [
        (good.clone(), vec![cert.clone()]),
        (good.clone(), vec![]),
        (good, vec![cert.clone(), cert.clone()]),
        (forged, vec![cert]),
    ] {
        out.push(
            BodyBuilder(pb::MembershipOp {
                continuity,
                certificates: certs,
                epoch_id: [1; 32].to_vec(),
                key_message: [2; 32].to_vec(),
                recipients: vec![[3; 32].to_vec()],
                ..Default::default()
            })
            .encode(),
        );
    }
    Ok(out)
}

fn main() -> Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or("usage: fuzz_seed <corpus dir, e.g. fuzz/corpus>")?;

    let mut seeds = Seeds {
        envelopes: vec![],
        payloads: vec![],
        headers: vec![],
        contents: vec![],
        plaintexts: vec![],
        certificates: vec![],
        bindings: vec![],
    };
    envelopes(&mut seeds)?;
    certificates(&mut seeds)?;
    let edge = edge_inputs();

    let mut canonical_codec = Corpus::default();
    for set in [
        &edge,
        &seeds.envelopes,
        &seeds.payloads,
        &seeds.headers,
        &seeds.contents,
        &seeds.certificates,
        &seeds.bindings,
    ] {
        canonical_codec.extend(set);
    }
    let mut decode_envelope = Corpus::default();
    decode_envelope.extend(&edge);
    decode_envelope.extend(&seeds.envelopes);
    let mut open_envelope = Corpus::default();
    open_envelope.extend(&edge);
    open_envelope.extend(&seeds.envelopes);
    let mut device_certificate = Corpus::default();
    device_certificate.extend(&edge);
    device_certificate.extend(&seeds.certificates);
    device_certificate.extend(&seeds.bindings);
    let mut plaintext_frame = Corpus::default();
    plaintext_frame.extend(&edge);
    plaintext_frame.extend(&seeds.plaintexts);
    plaintext_frame.extend(&seeds.contents);

    let mut membership_messages = Corpus::default();
    membership_messages.extend(&edge);
    membership_messages.extend(&membership_seeds()?);

    let mut backup = Corpus::default();
    backup.extend(&edge);
    backup.extend(&backup_seeds()?);

    let mut recovery = Corpus::default();
    recovery.extend(&edge);
    recovery.extend(&recovery_seeds()?);

    let mut continuity = Corpus::default();
    continuity.extend(&edge);
    continuity.extend(&continuity_seeds()?);

    for (target, corpus) in [
        ("continuity", &continuity),
        ("backup", &backup),
        ("recovery", &recovery),
        ("membership_messages", &membership_messages),
        ("canonical_codec", &canonical_codec),
        ("decode_envelope", &decode_envelope),
        ("open_envelope", &open_envelope),
        ("device_certificate", &device_certificate),
        ("plaintext_frame", &plaintext_frame),
    ] {
        let new = corpus.write(&out.join(target))?;
        println!("{target}: {} seeds ({new} new)", corpus.0.len());
    }
    Ok(())
}
