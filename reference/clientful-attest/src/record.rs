//! The attestation record (spec §14.2–§14.4, ATT-1 to ATT-7): `Attestation`,
//! `SignedAttestation`, the kinds, the binding `HashWithLabel("attest/binding",
//! user_key || salt)` that evidence commits to, and making and decoding a signed
//! record. Decoding checks the record itself (size, canonical form, version, kind,
//! key, signature, field shapes); the evidence is checked by the kind's module.

use clientful_core::keys::{PublicKey, SigningKey};
use clientful_core::labels;
use clientful_core::suite;
use clientful_core::wire;
use clientful_proto::v1 as pb;
use rand_core::CryptoRng;

use crate::error::AttestError;

/// The record version this crate writes and accepts (ATT-2).
pub const VERSION: u32 = 1;
/// Largest `SignedAttestation` accepted (ATT-LIM-1): 64 KiB.
pub const MAX_SIGNED_BYTES: usize = clientful_core::membership::MAX_ATTESTATION_BYTES;
/// Largest `subject` (ATT-LIM-2): 512 bytes of UTF-8.
pub const MAX_SUBJECT_BYTES: usize = 512;
/// Length of `salt` (ATT-6).
pub const SALT_LEN: usize = 16;
/// Allowed clock skew between evidence, record and verifier (ATT-8): 60 s.
pub const SKEW_MS: u64 = 60_000;

/// What the evidence is (ATT-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// 1: an OpenID Connect id_token (compact JWS) whose nonce commits to the binding.
    OidcIdToken,
    /// 2: a `did:web` DID document listing the user key.
    DidDocument,
    /// 3: an EIP-4361 (Sign-In with Ethereum) message and its signature.
    Siwe,
    /// 4: a WebAuthn assertion whose challenge is the binding.
    WebAuthn,
}

impl Kind {
    /// Its `kind` value.
    pub const fn value(self) -> u32 {
        match self {
            Kind::OidcIdToken => 1,
            Kind::DidDocument => 2,
            Kind::Siwe => 3,
            Kind::WebAuthn => 4,
        }
    }

    /// The kind with value `v`, if defined.
    pub const fn from_value(v: u32) -> Option<Kind> {
        match v {
            1 => Some(Kind::OidcIdToken),
            2 => Some(Kind::DidDocument),
            3 => Some(Kind::Siwe),
            4 => Some(Kind::WebAuthn),
            _ => None,
        }
    }

    /// Its name in the spec's tables.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::OidcIdToken => "OIDC_ID_TOKEN",
            Kind::DidDocument => "DID_DOCUMENT",
            Kind::Siwe => "SIWE",
            Kind::WebAuthn => "WEBAUTHN",
        }
    }
}

/// The binding evidence commits to (ATT-6): `HashWithLabel("attest/binding",
/// user_key || salt)`.
pub fn binding(user_key: &[u8; 32], salt: &[u8; SALT_LEN]) -> Result<[u8; 32], AttestError> {
    let mut input = [0u8; 32 + SALT_LEN];
    input[..32].copy_from_slice(user_key);
    input[32..].copy_from_slice(salt);
    Ok(suite::hash_with_label(labels::ATTEST_BINDING, &input)?)
}

/// A fresh 16-byte salt (ATT-6).
pub fn fresh_salt<R: CryptoRng + ?Sized>(rng: &mut R) -> [u8; SALT_LEN] {
    let mut salt = [0u8; SALT_LEN];
    rng.fill_bytes(&mut salt);
    salt
}

/// A decoded record whose user-key signature verified (ATT-7 steps 1–6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The attested user key.
    pub user_key: [u8; 32],
    /// The evidence kind.
    pub kind: Kind,
    /// The evidence, verbatim.
    pub evidence: Vec<u8>,
    /// The claimed external account.
    pub subject: String,
    /// The salt.
    pub salt: [u8; SALT_LEN],
    /// When the user made the record (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// `sha256` of the `SignedAttestation` bytes: the record's id.
    pub id: [u8; 32],
}

impl Record {
    /// The binding this record's evidence must commit to (ATT-6).
    pub fn binding(&self) -> Result<[u8; 32], AttestError> {
        binding(&self.user_key, &self.salt)
    }
}

/// What to attest (the input of [`sign`]).
#[derive(Debug, Clone)]
pub struct Draft<'a> {
    /// The evidence kind.
    pub kind: Kind,
    /// The evidence bytes, verbatim.
    pub evidence: &'a [u8],
    /// The claimed external account (ATT-5).
    pub subject: &'a str,
    /// The salt the evidence's binding used.
    pub salt: [u8; SALT_LEN],
    /// When the record is made (ms since the Unix epoch), from the caller's clock.
    pub created_at_ms: u64,
}

/// Makes a `SignedAttestation` (ATT-2): the user key signs the canonical
/// `Attestation` with label `sig/attestation`. Checks the limits a verifier checks.
pub fn sign(user: &SigningKey, draft: &Draft<'_>) -> Result<Vec<u8>, AttestError> {
    if draft.subject.len() > MAX_SUBJECT_BYTES {
        return Err(AttestError::limit(
            "Attestation.subject",
            MAX_SUBJECT_BYTES,
            draft.subject.len(),
        ));
    }
    let attestation = wire::encode(&pb::Attestation {
        version: VERSION,
        user_key: user.public_bytes().to_vec(),
        kind: draft.kind.value(),
        evidence: draft.evidence.to_vec(),
        subject: draft.subject.as_bytes().to_vec(),
        salt: draft.salt.to_vec(),
        created_at_ms: draft.created_at_ms,
    });
    let signature = user.sign_with_label(labels::SIG_ATTESTATION, &attestation)?;
    let signed = wire::encode(&pb::SignedAttestation {
        attestation,
        signature: signature.to_vec(),
    });
    if signed.len() > MAX_SIGNED_BYTES {
        return Err(AttestError::limit(
            "SignedAttestation",
            MAX_SIGNED_BYTES,
            signed.len(),
        ));
    }
    Ok(signed)
}

/// Decodes a `SignedAttestation` and verifies the user key's signature (ATT-7
/// steps 1–6, in that order): size; canonical `SignedAttestation`; 64-byte
/// signature; canonical `Attestation`; version; kind; user key; signature; salt
/// and subject shapes. The evidence is not looked at.
pub fn decode(signed: &[u8]) -> Result<Record, AttestError> {
    if signed.len() > MAX_SIGNED_BYTES {
        return Err(AttestError::limit(
            "SignedAttestation",
            MAX_SIGNED_BYTES,
            signed.len(),
        ));
    }
    let outer: pb::SignedAttestation = wire::decode(signed, &wire::SIGNED_ATTESTATION)?;
    if outer.signature.len() != 64 {
        return Err(AttestError::malformed(
            "SignedAttestation.signature",
            "not 64 bytes",
        ));
    }
    let inner: pb::Attestation = wire::decode(&outer.attestation, &wire::ATTESTATION)?;
    if inner.version != VERSION {
        return Err(AttestError::unsupported(
            "Attestation.version",
            &inner.version.to_string(),
        ));
    }
    let kind = Kind::from_value(inner.kind)
        .ok_or_else(|| AttestError::unsupported("Attestation.kind", &inner.kind.to_string()))?;
    let user = PublicKey::from_bytes(&inner.user_key)?;
    user.verify_with_label(
        labels::SIG_ATTESTATION,
        &outer.attestation,
        &outer.signature,
        "SignedAttestation.signature",
    )?;
    let salt: [u8; SALT_LEN] = inner
        .salt
        .as_slice()
        .try_into()
        .map_err(|_| AttestError::malformed("Attestation.salt", "not 16 bytes"))?;
    if inner.subject.len() > MAX_SUBJECT_BYTES {
        return Err(AttestError::limit(
            "Attestation.subject",
            MAX_SUBJECT_BYTES,
            inner.subject.len(),
        ));
    }
    let subject = String::from_utf8(inner.subject)
        .map_err(|_| AttestError::malformed("Attestation.subject", "not UTF-8"))?;
    if inner.evidence.is_empty() {
        return Err(AttestError::malformed("Attestation.evidence", "empty"));
    }
    Ok(Record {
        user_key: *user.as_bytes(),
        kind,
        evidence: inner.evidence,
        subject,
        salt,
        created_at_ms: inner.created_at_ms,
        id: suite::sha256(signed),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use clientful_core::ErrorClass;

    fn key() -> SigningKey {
        SigningKey::from_seed(&[7; 32])
    }

    fn draft() -> Draft<'static> {
        Draft {
            kind: Kind::DidDocument,
            evidence: b"{}",
            subject: "did:web:example.com",
            salt: [1; SALT_LEN],
            created_at_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn sign_then_decode_round_trips() {
        let signed = sign(&key(), &draft()).unwrap();
        let r = decode(&signed).unwrap();
        assert_eq!(r.user_key, key().public_bytes());
        assert_eq!(r.kind, Kind::DidDocument);
        assert_eq!(r.subject, "did:web:example.com");
        assert_eq!(r.evidence, b"{}");
        assert_eq!(r.created_at_ms, 1_700_000_000_000);
    }

    #[test]
    fn a_flipped_bit_is_rejected_with_a_class() {
        let signed = sign(&key(), &draft()).unwrap();
        for i in 0..signed.len() {
            let mut b = signed.clone();
            b[i] ^= 0x01;
            assert!(decode(&b).is_err(), "bit flip at {i} accepted");
        }
        let mut b = signed.clone();
        let last = b.len() - 1;
        b[last] ^= 0x80;
        assert_eq!(decode(&b).unwrap_err().class(), ErrorClass::BadSignature);
    }

    #[test]
    fn unknown_kind_and_version_are_unsupported() {
        let user = key();
        for (version, kind) in [(2u32, 1u32), (1, 9), (1, 0)] {
            let attestation = wire::encode(&pb::Attestation {
                version,
                user_key: user.public_bytes().to_vec(),
                kind,
                evidence: b"x".to_vec(),
                subject: b"s".to_vec(),
                salt: vec![0; 16],
                created_at_ms: 1,
            });
            let signature = user
                .sign_with_label(labels::SIG_ATTESTATION, &attestation)
                .unwrap();
            let signed = wire::encode(&pb::SignedAttestation {
                attestation,
                signature: signature.to_vec(),
            });
            assert_eq!(
                decode(&signed).unwrap_err().class(),
                ErrorClass::UnsupportedVersion
            );
        }
    }

    #[test]
    fn binding_is_labelled_hash_of_key_and_salt() {
        let b = binding(&[1; 32], &[2; 16]).unwrap();
        let mut input = vec![1u8; 32];
        input.extend_from_slice(&[2; 16]);
        assert_eq!(b, suite::hash_with_label("attest/binding", &input).unwrap());
    }
}
