//! Key types of suite 1 (spec §5.3): Ed25519 signing keys and validated public keys
//! under the one pinned verification rule, X25519 key-agreement keys, and epoch keys.
//!
//! Secret material is zeroized on drop. A [`PublicKey`] or [`X25519Public`] can only
//! be constructed through validation, so holding one means the key is canonical and
//! not of small order.
//!
//! **The pinned Ed25519 rule (SIG-3).** A signature `(R, S)` on message `M` under
//! public key `A` is valid iff all of: `A` and `R` are canonical encodings (the
//! decoded point re-encodes to the same 32 bytes); neither `A` nor `R` is of small
//! order; `S < L`; and the cofactorless equation `[S]B = R + [k]A` holds with
//! `k = SHA-512(R || A || M) mod L`, checked by comparing encodings. This is the
//! strictest rule in common use (libsodium >= 1.0.16 and ed25519-dalek's
//! `verify_strict`, plus a canonical-`A` check): it admits no malleated signature,
//! no weak key that validates many messages, and its verdict is a pure function of
//! the bytes, so every replica on every platform agrees.

use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::Signer;
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::Error;
use crate::labels;
use crate::limits::SIGNATURE_LEN;

/// An Ed25519 signing key (a user identity key or a device key).
///
/// Signing uses the key's own public half: no API takes a caller-supplied public
/// key (RUSTSEC-2022-0093).
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
}

impl ZeroizeOnDrop for SigningKey {}

impl core::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public_bytes())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key from a cryptographically secure RNG.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    /// The key whose RFC 8032 private key (seed) is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SigningKey {
            inner: ed25519_dalek::SigningKey::from_bytes(seed),
        }
    }

    /// The 32-byte seed, for backup and for test-secret export.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.inner.to_bytes())
    }

    /// The public key bytes.
    pub fn public_bytes(&self) -> [u8; 32] {
        self.inner.verifying_key().to_bytes()
    }

    /// The validated public key. Keys derived from a seed are never weak, but the
    /// check runs anyway so a broken RNG cannot enrol a bad key.
    pub fn public_key(&self) -> Result<PublicKey, Error> {
        PublicKey::from_bytes(&self.public_bytes())
    }

    /// `SignWithLabel(self, label, content)`.
    pub fn sign_with_label(&self, label: &str, content: &[u8]) -> Result<[u8; 64], Error> {
        let msg = labels::labeled(label, content).ok_or(Error::malformed(
            "labelled input",
            "label or content too long",
        ))?;
        Ok(self.inner.sign(&msg).to_bytes())
    }
}

/// A validated Ed25519 public key: canonical encoding, not of small order.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey {
    bytes: [u8; 32],
    key: ed25519_dalek::VerifyingKey,
}

impl core::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PublicKey(")?;
        for b in &self.bytes {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// Why an Ed25519 point encoding is unusable, if it is.
fn check_point(bytes: &[u8; 32]) -> Result<(), &'static str> {
    let compressed = CompressedEdwardsY(*bytes);
    let point = compressed.decompress().ok_or("not a curve point")?;
    if point.compress().to_bytes() != *bytes {
        return Err("non-canonical encoding");
    }
    if point.is_small_order() {
        return Err("small-order point");
    }
    Ok(())
}

impl PublicKey {
    /// Validates `bytes` as an Ed25519 public key under SIG-3.
    ///
    /// Errors: `MALFORMED` for a length other than 32, `INVALID_KEY` otherwise.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::malformed("Ed25519 public key", "length is not 32"))?;
        check_point(&arr).map_err(|reason| Error::InvalidKey {
            what: "Ed25519 public key",
            reason,
        })?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&arr).map_err(|_| Error::InvalidKey {
            what: "Ed25519 public key",
            reason: "not a curve point",
        })?;
        Ok(PublicKey { bytes: arr, key })
    }

    /// The 32 encoded bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Verifies `SignWithLabel(label, content)` under the pinned rule (SIG-3).
    ///
    /// Errors: `MALFORMED` if `signature` is not 64 bytes, `BAD_SIGNATURE` otherwise.
    pub fn verify_with_label(
        &self,
        label: &str,
        content: &[u8],
        signature: &[u8],
        what: &'static str,
    ) -> Result<(), Error> {
        let sig: [u8; SIGNATURE_LEN] = signature
            .try_into()
            .map_err(|_| Error::malformed("signature", "length is not 64"))?;
        let msg = labels::labeled(label, content).ok_or(Error::malformed(
            "labelled input",
            "label or content too long",
        ))?;
        verify_pinned(&self.key, &msg, &sig).map_err(|_| Error::BadSignature { what })
    }
}

/// SIG-3 on an already validated key: `R` a canonical encoding of a point not of
/// small order, `S < L`, cofactorless equation. (`A` was checked when the key was
/// constructed.)
///
/// `verify_strict` (ed25519-dalek 3, without `legacy_compatibility`) enforces each
/// of these on its own: it refuses `S ≥ L` (`check_scalar` is `from_canonical_bytes`),
/// refuses an `R` that does not decompress or decompresses to a small-order point,
/// and accepts only if the *canonical* encoding of `[S]B − [k]A` equals the 32 bytes
/// of `R` as sent, which a non-canonical `R` never does. So `R` is not decompressed
/// and re-compressed a second time here (that was about 15% of a verification, the
/// cost that dominates a verified cold join); the explicit `S` check stays (it is
/// cheap and keeps SIG-3's order of checks readable). The Wycheproof and speccheck
/// suites (`tests/`) pin the verdicts.
fn verify_pinned(key: &ed25519_dalek::VerifyingKey, msg: &[u8], sig: &[u8; 64]) -> Result<(), ()> {
    let mut s = [0u8; 32];
    s.copy_from_slice(sig.get(32..).ok_or(())?);
    if Option::<Scalar>::from(Scalar::from_canonical_bytes(s)).is_none() {
        return Err(());
    }
    // verify_strict: S < L, R a point and not small order (A too), R compared by
    // its encoding with the canonical encoding of the computed point.
    key.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig))
        .map_err(|_| ())
}

/// Verifies a raw (unlabelled) Ed25519 signature under SIG-3, with key validation.
/// Used by the primitive tests against Wycheproof; protocol code always uses
/// [`PublicKey::verify_with_label`].
pub fn verify_raw(public: &[u8], msg: &[u8], signature: &[u8]) -> Result<(), Error> {
    let key = PublicKey::from_bytes(public)?;
    let sig: [u8; 64] = signature
        .try_into()
        .map_err(|_| Error::malformed("signature", "length is not 64"))?;
    verify_pinned(&key.key, msg, &sig).map_err(|_| Error::BadSignature { what: "raw" })
}

/// An X25519 secret key bound to one device.
pub struct X25519Secret {
    inner: x25519_dalek::StaticSecret,
}

impl ZeroizeOnDrop for X25519Secret {}

impl core::fmt::Debug for X25519Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("X25519Secret").finish_non_exhaustive()
    }
}

impl X25519Secret {
    /// A fresh secret from a cryptographically secure RNG.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(bytes.as_mut());
        Self::from_bytes(&bytes)
    }

    /// The secret whose (unclamped) encoding is `bytes`; clamping happens in use.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        X25519Secret {
            inner: x25519_dalek::StaticSecret::from(*bytes),
        }
    }

    /// The secret bytes, for backup and test-secret export.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.inner.to_bytes())
    }

    /// The public key.
    pub fn public(&self) -> X25519Public {
        X25519Public {
            bytes: x25519_dalek::PublicKey::from(&self.inner).to_bytes(),
        }
    }

    /// X25519 with a validated peer key. Rejects an all-zero result (X25519-2).
    pub fn diffie_hellman(&self, peer: &X25519Public) -> Result<Zeroizing<[u8; 32]>, Error> {
        let shared = self
            .inner
            .diffie_hellman(&x25519_dalek::PublicKey::from(peer.bytes));
        if !shared.was_contributory() {
            return Err(Error::InvalidKey {
                what: "X25519 public key",
                reason: "non-contributory shared secret",
            });
        }
        Ok(Zeroizing::new(shared.to_bytes()))
    }
}

/// A validated X25519 public key: canonical (`u < p`, top bit clear) and not of
/// small order (X25519-1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct X25519Public {
    bytes: [u8; 32],
}

/// `p = 2^255 - 19`, little-endian.
const FIELD_P: [u8; 32] = {
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// `bytes` as a little-endian integer is `< p`.
fn below_field_prime(bytes: &[u8; 32]) -> bool {
    // Compare as little-endian integers: most significant byte first.
    for (a, b) in bytes.iter().rev().zip(FIELD_P.iter().rev()) {
        if a != b {
            return a < b;
        }
    }
    false
}

impl X25519Public {
    /// Validates `bytes` as an X25519 public key.
    ///
    /// Errors: `MALFORMED` for a length other than 32, `INVALID_KEY` for a
    /// non-canonical or small-order u-coordinate.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::malformed("X25519 public key", "length is not 32"))?;
        if arr[31] & 0x80 != 0 || !below_field_prime(&arr) {
            return Err(Error::InvalidKey {
                what: "X25519 public key",
                reason: "non-canonical encoding",
            });
        }
        let eight = Scalar::from(8u8);
        if (MontgomeryPoint(arr) * eight).to_bytes() == [0u8; 32] {
            return Err(Error::InvalidKey {
                what: "X25519 public key",
                reason: "small-order point",
            });
        }
        Ok(X25519Public { bytes: arr })
    }

    /// The 32 encoded bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}

/// A key epoch as the envelope layer sees it: an opaque 32-byte id assigned by the
/// membership layer (spec §11) and the 32-byte epoch secret it names.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct EpochKey {
    #[zeroize(skip)]
    epoch_id: [u8; 32],
    secret: [u8; 32],
}

impl core::fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EpochKey")
            .field("epoch_id", &self.epoch_id)
            .finish_non_exhaustive()
    }
}

impl EpochKey {
    /// An epoch key from its id and secret.
    pub fn new(epoch_id: [u8; 32], secret: [u8; 32]) -> Self {
        EpochKey { epoch_id, secret }
    }

    /// The epoch id.
    pub fn id(&self) -> &[u8; 32] {
        &self.epoch_id
    }

    /// The epoch secret.
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use curve25519_dalek::constants::EIGHT_TORSION;

    #[test]
    fn sign_verify_with_label() {
        let sk = SigningKey::from_seed(&[1u8; 32]);
        let pk = sk.public_key().expect("valid");
        let sig = sk
            .sign_with_label("sig/envelope", b"payload")
            .expect("sign");
        pk.verify_with_label("sig/envelope", b"payload", &sig, "t")
            .expect("verifies");
        let err = pk
            .verify_with_label("sig/device-cert", b"payload", &sig, "t")
            .unwrap_err();
        assert_eq!(err.class(), crate::ErrorClass::BadSignature);
    }

    #[test]
    fn small_order_public_keys_are_rejected() {
        for point in EIGHT_TORSION.iter() {
            let err = PublicKey::from_bytes(point.compress().as_bytes()).unwrap_err();
            assert_eq!(err.class(), crate::ErrorClass::InvalidKey);
        }
    }

    #[test]
    fn non_canonical_public_key_is_rejected() {
        // y = p + 1 encodes the identity non-canonically.
        let mut y = FIELD_P;
        y[0] = 0xee;
        let err = PublicKey::from_bytes(&y).unwrap_err();
        assert_eq!(err.class(), crate::ErrorClass::InvalidKey);
    }

    #[test]
    fn s_not_reduced_is_rejected() {
        let sk = SigningKey::from_seed(&[2u8; 32]);
        let pk = sk.public_key().expect("valid");
        let mut sig = sk.sign_with_label("sig/envelope", b"m").expect("sign");
        // Add L to S: same point equation, non-canonical scalar.
        let l: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = u16::from(sig[32 + i]) + u16::from(l[i]) + carry;
            sig[32 + i] = (v & 0xff) as u8;
            carry = v >> 8;
        }
        assert!(
            pk.verify_with_label("sig/envelope", b"m", &sig, "t")
                .is_err()
        );
    }

    #[test]
    fn x25519_small_order_and_non_canonical_are_rejected() {
        let zero = [0u8; 32];
        assert!(X25519Public::from_bytes(&zero).is_err());
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(X25519Public::from_bytes(&one).is_err());
        assert!(X25519Public::from_bytes(&FIELD_P).is_err());
        let mut high = [0u8; 32];
        high[0] = 9;
        high[31] = 0x80;
        assert!(X25519Public::from_bytes(&high).is_err());
        let mut nine = [0u8; 32];
        nine[0] = 9;
        X25519Public::from_bytes(&nine).expect("base point is fine");
    }

    #[test]
    fn x25519_agreement() {
        let a = X25519Secret::from_bytes(&[3u8; 32]);
        let b = X25519Secret::from_bytes(&[4u8; 32]);
        let ab = a.diffie_hellman(&b.public()).expect("dh");
        let ba = b.diffie_hellman(&a.public()).expect("dh");
        assert_eq!(*ab, *ba);
    }

    /// The rule as it was written before `verify_pinned` stopped checking `R` itself:
    /// `R` decompressed, re-compressed and checked for small order, then `S`, then
    /// `verify_strict`.
    fn verify_pinned_with_r_checked(
        key: &ed25519_dalek::VerifyingKey,
        msg: &[u8],
        sig: &[u8; 64],
    ) -> Result<(), ()> {
        let mut r = [0u8; 32];
        r.copy_from_slice(&sig[..32]);
        check_point(&r).map_err(|_| ())?;
        verify_pinned(key, msg, sig)
    }

    /// `R` replacements that reach every branch of the removed check: torsion
    /// points (small order), a valid point plus torsion (mixed order), the
    /// non-canonical encodings `y + p` of the points with `y < 19` that exist, the
    /// identity with the sign bit set, and random bytes.
    fn r_candidates(valid_r: [u8; 32], random: [u8; 32]) -> Vec<[u8; 32]> {
        let mut out = vec![valid_r, random];
        for t in EIGHT_TORSION.iter() {
            out.push(t.compress().to_bytes());
            if let Some(p) = CompressedEdwardsY(valid_r).decompress() {
                out.push((p + t).compress().to_bytes());
            }
        }
        // p = 2^255 - 19, little-endian; y + p for y < 19 stays below 2^255.
        for y in 0u8..19 {
            let mut e = [0xffu8; 32];
            e[0] = 0xed_u8.wrapping_add(y);
            e[31] = 0x7f;
            out.push(e);
            let mut signed = e;
            signed[31] |= 0x80;
            out.push(signed);
        }
        let mut identity_signed = [0u8; 32];
        identity_signed[0] = 1;
        identity_signed[31] = 0x80;
        out.push(identity_signed);
        out
    }

    proptest::proptest! {
        /// Dropping the separate check of `R` changes no verdict: for signatures
        /// whose `R` is replaced by each candidate (and honest ones), both rules
        /// agree, and honest signatures verify.
        #[test]
        fn dropping_the_separate_r_check_changes_no_verdict(
            seed in proptest::prelude::any::<[u8; 32]>(),
            msg in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            random in proptest::prelude::any::<[u8; 32]>(),
            s_flip in 0usize..64,
        ) {
            let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
            let vk = sk.verifying_key();
            let sig = ed25519_dalek::Signer::sign(&sk, &msg).to_bytes();
            proptest::prop_assert!(verify_pinned(&vk, &msg, &sig).is_ok());
            let mut valid_r = [0u8; 32];
            valid_r.copy_from_slice(&sig[..32]);
            for r in r_candidates(valid_r, random) {
                let mut forged = sig;
                forged[..32].copy_from_slice(&r);
                proptest::prop_assert_eq!(
                    verify_pinned(&vk, &msg, &forged),
                    verify_pinned_with_r_checked(&vk, &msg, &forged)
                );
                // And with S changed too (one bit), which must also agree.
                forged[32 + s_flip / 2] ^= 1 << (s_flip % 8);
                proptest::prop_assert_eq!(
                    verify_pinned(&vk, &msg, &forged),
                    verify_pinned_with_r_checked(&vk, &msg, &forged)
                );
            }
        }
    }
}
