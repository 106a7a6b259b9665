//! Key epochs (spec §11.5): epoch ids as commitments to epoch secrets, key
//! messages that seal a new secret to each recipient device, welcomes for new
//! devices, the old-to-new chain links, the key-epoch authenticator, and the
//! device's key ring.
//!
//! ```text
//! epoch_id   = HashWithLabel("id/epoch", space_id || secret)                  (KEY-2)
//! box        = seal(device, info = 0x01 || space_id || epoch_id, secret)      (KEY-4)
//! welcome    = seal(device, info = 0x02 || space_id,
//!                   SignedWelcome{Welcome{secrets, recipient, signer_added_by},
//!                                 certificate, SignWithLabel(device, "sig/welcome", Welcome)})
//!                                                                             (KEY-8, KEY-20)
//! link       = AEAD(k, n, M("aad/epoch-chain", space_id || new_id || prev_id), prev_secret)
//!   k || n   = DeriveWithLabel(new_secret, space_id, "kdf/epoch-chain", new_id || prev_id, 56)
//! auth       = DeriveWithLabel(secret, space_id, "kdf/epoch-authenticator",
//!                              epoch_id || membership_digest, 32)             (KEY-10)
//! ```

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use clientful_proto::v1 as pb;
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::seal;
use crate::error::Error;
use crate::identity::{self, VerifiedDevice};
use crate::keys::{EpochKey, SigningKey, X25519Public, X25519Secret};
use crate::limits::{ID_LEN, NONCE_LEN, SIGNATURE_LEN};
use crate::{labels, suite, wire};

/// Largest encoded `KeyMessage` accepted (KEY-LIM-2).
pub const MAX_KEY_MESSAGE_BYTES: usize = 256 * 1024;
/// Most recipients of one key message (KEY-LIM-3).
pub const MAX_RECIPIENTS: usize = 1024;
/// Most secrets in one welcome (KEY-LIM-4).
pub const MAX_WELCOME_SECRETS: usize = 64;

const INFO_EPOCH: u8 = 1;
const INFO_WELCOME: u8 = 2;

/// `HashWithLabel("id/epoch", space_id || secret)`: the epoch id commits to the
/// secret (KEY-2).
pub fn epoch_id(space_id: &[u8; 32], secret: &[u8; 32]) -> Result<[u8; 32], Error> {
    let mut c = [0u8; 64];
    c[..32].copy_from_slice(space_id);
    c[32..].copy_from_slice(secret);
    suite::hash_with_label(labels::ID_EPOCH, &c)
}

/// The epoch key of `secret` in `space_id`.
pub fn epoch_key(space_id: &[u8; 32], secret: &[u8; 32]) -> Result<EpochKey, Error> {
    Ok(EpochKey::new(epoch_id(space_id, secret)?, *secret))
}

/// A fresh epoch (KEY-1).
pub fn new_epoch<R: CryptoRng + ?Sized>(
    rng: &mut R,
    space_id: &[u8; 32],
) -> Result<EpochKey, Error> {
    let mut secret = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(secret.as_mut());
    epoch_key(space_id, &secret)
}

fn epoch_info(space_id: &[u8; 32], epoch_id: &[u8; 32]) -> [u8; 65] {
    let mut info = [0u8; 65];
    info[0] = INFO_EPOCH;
    info[1..33].copy_from_slice(space_id);
    info[33..].copy_from_slice(epoch_id);
    info
}

fn welcome_info(space_id: &[u8; 32]) -> [u8; 33] {
    let mut info = [0u8; 33];
    info[0] = INFO_WELCOME;
    info[1..].copy_from_slice(space_id);
    info
}

/// A recipient device: id and X25519 key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipient {
    /// Device id (ID-5).
    pub device_id: [u8; 32],
    /// The device's X25519 key.
    pub x25519: X25519Public,
}

/// Builds the `KeyMessage` sealing `epoch` to every recipient (KEY-4). Returns
/// the encoded message and its id `HashWithLabel("id/key-message", bytes)`.
pub fn key_message<R: CryptoRng + ?Sized>(
    rng: &mut R,
    space_id: &[u8; 32],
    epoch: &EpochKey,
    recipients: &[Recipient],
) -> Result<(Vec<u8>, [u8; 32]), Error> {
    let mut sorted: Vec<Recipient> = recipients.to_vec();
    sorted.sort_by_key(|r| r.device_id);
    sorted.dedup_by(|a, b| a.device_id == b.device_id);
    let info = epoch_info(space_id, epoch.id());
    let mut boxes = Vec::with_capacity(sorted.len());
    for r in &sorted {
        boxes.push(seal::seal(
            rng,
            &r.device_id,
            &r.x25519,
            &info,
            epoch.secret(),
        )?);
    }
    let bytes = wire::encode(&pb::KeyMessage {
        space_id: space_id.to_vec(),
        epoch_id: epoch.id().to_vec(),
        boxes,
    });
    let id = suite::hash_with_label(labels::ID_KEY_MESSAGE, &bytes)?;
    Ok((bytes, id))
}

/// A decoded key message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMessage {
    /// `HashWithLabel("id/key-message", bytes)`.
    pub id: [u8; 32],
    /// The space.
    pub space_id: [u8; 32],
    /// The epoch whose secret it carries.
    pub epoch_id: [u8; 32],
    /// One box per recipient, ascending by device id.
    pub boxes: Vec<seal::SealedKey>,
}

impl KeyMessage {
    /// The recipient device ids, ascending.
    pub fn recipients(&self) -> Vec<[u8; 32]> {
        self.boxes.iter().map(|b| b.device_id).collect()
    }
}

fn id32(bytes: &[u8], what: &'static str) -> Result<[u8; 32], Error> {
    bytes
        .try_into()
        .map_err(|_| Error::malformed(what, "length is not 32"))
}

/// Decodes a `KeyMessage` (KEY-5): size, canonical scan, shapes, boxes strictly
/// ascending by device id.
pub fn decode_key_message(bytes: &[u8]) -> Result<KeyMessage, Error> {
    if bytes.len() > MAX_KEY_MESSAGE_BYTES {
        return Err(Error::LimitExceeded {
            what: "key message size",
            max: MAX_KEY_MESSAGE_BYTES as u64,
            actual: bytes.len() as u64,
        });
    }
    let m: pb::KeyMessage = wire::decode(bytes, &wire::KEY_MESSAGE)?;
    let space_id = id32(&m.space_id, "KeyMessage.space_id")?;
    let epoch_id = id32(&m.epoch_id, "KeyMessage.epoch_id")?;
    if m.boxes.len() > MAX_RECIPIENTS {
        return Err(Error::LimitExceeded {
            what: "key message recipients",
            max: MAX_RECIPIENTS as u64,
            actual: m.boxes.len() as u64,
        });
    }
    let mut boxes = Vec::with_capacity(m.boxes.len());
    for b in &m.boxes {
        boxes.push(seal::decode(b)?);
    }
    if boxes
        .windows(2)
        .any(|w| matches!(w, [a, b] if a.device_id >= b.device_id))
    {
        return Err(Error::non_canonical(
            "KeyMessage.boxes",
            "not strictly ascending by device id",
        ));
    }
    let id = suite::hash_with_label(labels::ID_KEY_MESSAGE, bytes)?;
    Ok(KeyMessage {
        id,
        space_id,
        epoch_id,
        boxes,
    })
}

/// What a device gets from a key message addressed to it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Delivery {
    /// The secret opened and matches the epoch id.
    Key(EpochKey),
    /// The message has no box for this device.
    NotAddressed,
    /// The box opened, but the secret does not match the epoch id the message
    /// (and the signed operation) commits to: the sender gave this device a
    /// different key (KEY-7). Evidence to report.
    Mismatch,
}

/// Opens this device's box in `msg` and checks it against the commitment.
pub fn open_key_message(
    msg: &KeyMessage,
    device_id: &[u8; 32],
    device_secret: &X25519Secret,
) -> Result<Delivery, Error> {
    let Some(b) = msg.boxes.iter().find(|b| &b.device_id == device_id) else {
        return Ok(Delivery::NotAddressed);
    };
    let plain = seal::open(
        b,
        device_id,
        device_secret,
        &epoch_info(&msg.space_id, &msg.epoch_id),
    )?;
    let Ok(secret) = <[u8; 32]>::try_from(plain.as_slice()) else {
        return Ok(Delivery::Mismatch);
    };
    let id = epoch_id(&msg.space_id, &secret)?;
    if bool::from(id.ct_eq(&msg.epoch_id)) {
        Ok(Delivery::Key(EpochKey::new(id, secret)))
    } else {
        Ok(Delivery::Mismatch)
    }
}

/// The device that signs a welcome (KEY-20): its signing key, its certificate
/// and the operation of the log that added it (KEY-21).
#[derive(Debug, Clone, Copy)]
pub struct WelcomeSigner<'a> {
    /// The device signing key.
    pub signing: &'a SigningKey,
    /// Exact `DeviceCertificate` bytes of that key.
    pub certificate: &'a [u8],
    /// The id of the operation that added the device (`Welcome.signer_added_by`).
    pub added_by: [u8; 32],
}

/// Seals a welcome to a new device (KEY-8, KEY-20): the secrets of the epochs it
/// starts from, in a `Welcome` signed by `signer`. Returns the encoded
/// `SealedKey`.
pub fn welcome<R: CryptoRng + ?Sized>(
    rng: &mut R,
    space_id: &[u8; 32],
    signer: &WelcomeSigner<'_>,
    to: &Recipient,
    epochs: &[EpochKey],
) -> Result<Vec<u8>, Error> {
    if epochs.len() > MAX_WELCOME_SECRETS {
        return Err(Error::LimitExceeded {
            what: "welcome secrets",
            max: MAX_WELCOME_SECRETS as u64,
            actual: epochs.len() as u64,
        });
    }
    let body = Zeroizing::new(wire::encode(&pb::Welcome {
        space_id: space_id.to_vec(),
        secrets: epochs.iter().map(|e| e.secret().to_vec()).collect(),
        recipient: to.device_id.to_vec(),
        signer_added_by: signer.added_by.to_vec(),
    }));
    let signature = signer.signing.sign_with_label(labels::SIG_WELCOME, &body)?;
    let plain = Zeroizing::new(wire::encode(&pb::SignedWelcome {
        welcome: body.to_vec(),
        certificate: signer.certificate.to_vec(),
        signature: signature.to_vec(),
    }));
    seal::seal(
        rng,
        &to.device_id,
        &to.x25519,
        &welcome_info(space_id),
        &plain,
    )
}

/// A welcome opened and verified (KEY-20): who signed it, from which operation
/// it claims its standing, and the epoch keys it carries (candidates, KEY-18).
#[derive(Debug, Clone)]
pub struct OpenedWelcome {
    /// The signing device, its certificate verified.
    pub signer: VerifiedDevice,
    /// `Welcome.signer_added_by`: the operation that added the signer (KEY-21).
    pub added_by: [u8; 32],
    /// The epoch keys (ids derived, KEY-2).
    pub keys: Vec<EpochKey>,
}

/// Opens a welcome sealed to this device and verifies it before using anything
/// in it (KEY-20), in this order: the box (KEY-3); the `SignedWelcome`
/// (canonical, a 64-byte signature); the signer's certificate (ID-V1..ID-V7);
/// `SignWithLabel(device key, "sig/welcome", welcome)` over the `welcome` bytes
/// as received (`BAD_SIGNATURE`); then the `Welcome` those bytes hold: space and
/// recipient (`WRONG_CONTEXT`), `signer_added_by` (32 bytes), the secrets
/// (KEY-LIM-4, 32 bytes each).
pub fn open_welcome(
    bytes: &[u8],
    space_id: &[u8; 32],
    device_id: &[u8; 32],
    device_secret: &X25519Secret,
) -> Result<OpenedWelcome, Error> {
    let sealed = seal::decode(bytes)?;
    let plain = seal::open(&sealed, device_id, device_secret, &welcome_info(space_id))?;
    let signed: pb::SignedWelcome = wire::decode(&plain, &wire::SIGNED_WELCOME)?;
    if signed.signature.len() != SIGNATURE_LEN {
        return Err(Error::malformed(
            "SignedWelcome.signature",
            "length is not 64",
        ));
    }
    let signer = identity::verify_certificate(&signed.certificate, None)?;
    signer.device_key.verify_with_label(
        labels::SIG_WELCOME,
        &signed.welcome,
        &signed.signature,
        "welcome signature",
    )?;
    let w: pb::Welcome = wire::decode(&signed.welcome, &wire::WELCOME)?;
    if w.space_id.as_slice() != space_id {
        return Err(Error::WrongContext { what: "space id" });
    }
    if w.recipient.as_slice() != device_id {
        return Err(Error::WrongContext {
            what: "welcome recipient",
        });
    }
    let added_by = id32(&w.signer_added_by, "Welcome.signer_added_by")?;
    if w.secrets.len() > MAX_WELCOME_SECRETS {
        return Err(Error::LimitExceeded {
            what: "welcome secrets",
            max: MAX_WELCOME_SECRETS as u64,
            actual: w.secrets.len() as u64,
        });
    }
    let mut keys = Vec::with_capacity(w.secrets.len());
    for s in &w.secrets {
        let secret = Zeroizing::new(id32(s, "Welcome.secrets")?);
        keys.push(epoch_key(space_id, &secret)?);
    }
    Ok(OpenedWelcome {
        signer,
        added_by,
        keys,
    })
}

/// Key, nonce and associated data of one chain link.
type ChainKeys = (Zeroizing<[u8; 32]>, [u8; NONCE_LEN], Vec<u8>);

fn chain_keys(space_id: &[u8; 32], new: &EpochKey, prev_id: &[u8; 32]) -> Result<ChainKeys, Error> {
    let mut ctx = [0u8; 64];
    ctx[..32].copy_from_slice(new.id());
    ctx[32..].copy_from_slice(prev_id);
    let mut out = Zeroizing::new([0u8; 32 + NONCE_LEN]);
    suite::derive_with_label(
        new.secret(),
        space_id,
        labels::KDF_EPOCH_CHAIN,
        &ctx,
        out.as_mut(),
    )?;
    let mut key = Zeroizing::new([0u8; 32]);
    let mut nonce = [0u8; NONCE_LEN];
    let (k, n) = out.split_at(32);
    key.copy_from_slice(k);
    nonce.copy_from_slice(n);
    let mut aad_content = Vec::with_capacity(96);
    aad_content.extend_from_slice(space_id);
    aad_content.extend_from_slice(&ctx);
    let aad = labels::labeled(labels::AAD_EPOCH_CHAIN, &aad_content)
        .ok_or(Error::malformed("labelled input", "too long"))?;
    Ok((key, nonce, aad))
}

/// The chain link from `new` back to `prev` (KEY-6): `prev`'s secret encrypted
/// under a key derived from `new`'s. Each (new, prev) pair has its own key, used
/// once, so the nonce is derived too.
pub(crate) fn chain_link(
    space_id: &[u8; 32],
    new: &EpochKey,
    prev: &EpochKey,
) -> Result<Vec<u8>, Error> {
    let (key, nonce, aad) = chain_keys(space_id, new, prev.id())?;
    suite::aead_seal(&key, &nonce, &aad, prev.secret())
}

/// Opens a chain link: recovers the previous epoch's key and checks it against
/// `prev_id` (the commitment).
pub(crate) fn open_chain_link(
    space_id: &[u8; 32],
    new: &EpochKey,
    prev_id: &[u8; 32],
    link: &[u8],
) -> Result<EpochKey, Error> {
    let (key, nonce, aad) = chain_keys(space_id, new, prev_id)?;
    let plain = Zeroizing::new(suite::aead_open(&key, &nonce, &aad, link)?);
    let secret = Zeroizing::new(id32(&plain, "chain link secret")?);
    let k = epoch_key(space_id, &secret)?;
    if k.id() != prev_id {
        return Err(Error::DecryptFailed {
            reason: "chain link secret does not match the epoch id",
        });
    }
    Ok(k)
}

/// The key-epoch authenticator (KEY-10): a value every member holding `epoch`
/// and the same resolved membership computes identically, compared out of band.
pub fn authenticator(
    space_id: &[u8; 32],
    epoch: &EpochKey,
    membership_digest: &[u8; 32],
) -> Result<[u8; 32], Error> {
    let mut ctx = [0u8; 64];
    ctx[..32].copy_from_slice(epoch.id());
    ctx[32..].copy_from_slice(membership_digest);
    let mut out = [0u8; 32];
    suite::derive_with_label(
        epoch.secret(),
        space_id,
        labels::KDF_EPOCH_AUTHENTICATOR,
        &ctx,
        &mut out,
    )?;
    Ok(out)
}

/// The authenticator as people compare it (KEY-10): 30 decimal digits in six
/// groups of five, group `i` being `u40be(auth[5i..5i+5]) mod 100,000`, so about
/// 100 bits of the first 30 bytes (as Signal's safety numbers).
pub fn authenticator_display(auth: &[u8; 32]) -> String {
    let mut out = String::with_capacity(35);
    for (i, chunk) in auth.chunks_exact(5).take(6).enumerate() {
        let v = chunk.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b));
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&alloc::format!("{:05}", v % 100_000));
    }
    out
}

/// The epoch keys a device holds, by epoch id.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: BTreeMap<[u8; 32], EpochKey>,
}

impl KeyRing {
    /// Adds a key; returns whether it was new.
    pub fn insert(&mut self, key: EpochKey) -> bool {
        if self.keys.contains_key(key.id()) {
            return false;
        }
        self.keys.insert(*key.id(), key);
        true
    }

    /// Removes the key of `epoch_id`; returns whether it was held.
    pub fn remove(&mut self, epoch_id: &[u8; 32]) -> bool {
        self.keys.remove(epoch_id).is_some()
    }

    /// The key of `epoch_id`, if held.
    pub fn get(&self, epoch_id: &[u8; 32]) -> Option<&EpochKey> {
        self.keys.get(epoch_id)
    }

    /// Whether the key of `epoch_id` is held.
    pub fn contains(&self, epoch_id: &[u8; 32]) -> bool {
        self.keys.contains_key(epoch_id)
    }

    /// Every key held, ascending by epoch id.
    pub fn all(&self) -> Vec<EpochKey> {
        self.keys.values().cloned().collect()
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// `32` as used by callers checking id lengths.
pub const EPOCH_ID_LEN: usize = ID_LEN;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn key_message_commitment_and_mismatch() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let space = [5u8; 32];
        let a = X25519Secret::generate(&mut rng);
        let b = X25519Secret::generate(&mut rng);
        let e = new_epoch(&mut rng, &space).expect("epoch");
        let recips = [
            Recipient {
                device_id: [1u8; 32],
                x25519: a.public(),
            },
            Recipient {
                device_id: [2u8; 32],
                x25519: b.public(),
            },
        ];
        let (bytes, id) = key_message(&mut rng, &space, &e, &recips).expect("km");
        let m = decode_key_message(&bytes).expect("decode");
        assert_eq!(m.id, id);
        match open_key_message(&m, &[1u8; 32], &a).expect("open") {
            Delivery::Key(k) => assert_eq!(k.secret(), e.secret()),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            open_key_message(&m, &[3u8; 32], &a).expect("open"),
            Delivery::NotAddressed
        ));
        // A box holding another secret under the same epoch id is detected.
        let wrong = new_epoch(&mut rng, &space).expect("epoch");
        let info = epoch_info(&space, e.id());
        let bad_box =
            seal::seal(&mut rng, &[2u8; 32], &b.public(), &info, wrong.secret()).expect("seal");
        let forged = wire::encode(&pb::KeyMessage {
            space_id: space.to_vec(),
            epoch_id: e.id().to_vec(),
            boxes: alloc::vec![bad_box],
        });
        let fm = decode_key_message(&forged).expect("decode");
        assert!(matches!(
            open_key_message(&fm, &[2u8; 32], &b).expect("open"),
            Delivery::Mismatch
        ));
    }

    #[test]
    fn chain_links_walk_back_and_check_the_commitment() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let space = [6u8; 32];
        let e0 = new_epoch(&mut rng, &space).expect("e0");
        let e1 = new_epoch(&mut rng, &space).expect("e1");
        let link = chain_link(&space, &e1, &e0).expect("link");
        let back = open_chain_link(&space, &e1, e0.id(), &link).expect("open");
        assert_eq!(back.secret(), e0.secret());
        let other = new_epoch(&mut rng, &space).expect("other");
        assert_eq!(
            open_chain_link(&space, &other, e0.id(), &link)
                .unwrap_err()
                .class(),
            ErrorClass::DecryptFailed
        );
    }

    #[test]
    fn largest_welcome_fits_a_sealed_key() {
        use crate::identity::{DeviceKeys, issue_certificate};
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let space = [7u8; 32];
        let dev = X25519Secret::generate(&mut rng);
        let epochs: Vec<EpochKey> = (0..MAX_WELCOME_SECRETS)
            .map(|_| new_epoch(&mut rng, &space).expect("e"))
            .collect();
        let user = SigningKey::generate(&mut rng);
        let sender = DeviceKeys::generate(&mut rng);
        let cert = issue_certificate(&user, &sender).expect("cert");
        let signer = WelcomeSigner {
            signing: &sender.signing,
            certificate: &cert,
            added_by: [3u8; 32],
        };
        let to = Recipient {
            device_id: [9u8; 32],
            x25519: dev.public(),
        };
        let w = welcome(&mut rng, &space, &signer, &to, &epochs).expect("w");
        assert!(
            w.len() + crate::limits::MAX_CERTIFICATE_BYTES - cert.len()
                <= seal::MAX_SEALED_KEY_BYTES
        );
        let opened = open_welcome(&w, &space, &[9u8; 32], &dev).expect("open");
        assert_eq!(opened.keys.len(), MAX_WELCOME_SECRETS);
    }

    #[test]
    fn welcome_round_trip() {
        use crate::identity::{DeviceKeys, issue_certificate};
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let space = [7u8; 32];
        let dev = X25519Secret::generate(&mut rng);
        let e = new_epoch(&mut rng, &space).expect("e");
        let to = Recipient {
            device_id: [9u8; 32],
            x25519: dev.public(),
        };
        let user = SigningKey::generate(&mut rng);
        let sender = DeviceKeys::generate(&mut rng);
        let cert = issue_certificate(&user, &sender).expect("cert");
        let signer = WelcomeSigner {
            signing: &sender.signing,
            certificate: &cert,
            added_by: [3u8; 32],
        };
        let w = welcome(&mut rng, &space, &signer, &to, core::slice::from_ref(&e)).expect("w");
        let opened = open_welcome(&w, &space, &[9u8; 32], &dev).expect("open");
        assert_eq!(opened.keys.len(), 1);
        assert_eq!(opened.keys[0].id(), e.id());
        assert_eq!(opened.added_by, [3u8; 32]);
        assert_eq!(
            opened.signer.device_key.as_bytes(),
            &sender.signing.public_bytes()
        );
        assert!(open_welcome(&w, &[8u8; 32], &[9u8; 32], &dev).is_err());
        // Signed by another key than the certificate's: BAD_SIGNATURE.
        let other = SigningKey::generate(&mut rng);
        let forged = WelcomeSigner {
            signing: &other,
            ..signer
        };
        let w = welcome(&mut rng, &space, &forged, &to, core::slice::from_ref(&e)).expect("w");
        assert_eq!(
            open_welcome(&w, &space, &[9u8; 32], &dev)
                .map(|_| ())
                .map_err(|e| e.class()),
            Err(crate::ErrorClass::BadSignature)
        );
    }

    #[test]
    fn authenticator_depends_on_epoch_and_membership() {
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let space = [7u8; 32];
        let e = new_epoch(&mut rng, &space).expect("e");
        let a = authenticator(&space, &e, &[0u8; 32]).expect("a");
        let b = authenticator(&space, &e, &[1u8; 32]).expect("b");
        assert_ne!(a, b);
        let d = authenticator_display(&a);
        assert_eq!(d.len(), 35);
        // Known answers: each group is u40be(5 bytes) mod 100,000.
        let mut x = [0u8; 32];
        x[4] = 1;
        x[9] = 0xff;
        x[25..30].copy_from_slice(&[0xff; 5]);
        assert_eq!(
            authenticator_display(&x),
            "00001 00255 00000 00000 00000 27775"
        );
        // 20 digits held only 66 bits; the six groups hold about 100.
        let groups = d.split(' ').count();
        assert_eq!(groups, 6);
    }
}
