//! Sign-In with Ethereum attestations (kind 3, spec §14.10, ATT-30..ATT-39).
//!
//! Evidence is the EIP-4361 message bytes followed by the 65-byte EIP-191
//! personal-sign signature `r (32) || s (32) || v (1)`, `v` = 27 or 28 (ATT-30).
//! [`verify`] checks, in this order (ATT-32): the size limit; the message
//! ([`message::SiweMessage::parse`]); the signature (secp256k1 recovery over the
//! EIP-191 Keccak-256 hash, low `s` per EIP-2, the recovered address equal to the
//! message's); the binding (`Nonce` = lowercase hex of [`crate::binding`], a
//! `Resources` item `clientful:user-key:<base64url(user key)>`); the domain and
//! the chain against the verifier's policy; the validity times against the
//! record's `created_at_ms` with [`SKEW_MS`] of tolerance. Each failure has one
//! class ([`SiweError::class`]).

pub mod message;
pub mod time;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clientful_core::ErrorClass;
use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use sha3::{Digest, Keccak256};

use crate::binding::{SALT_LEN, USER_KEY_LEN, binding};
pub use message::{MAX_MESSAGE_LEN, MAX_RESOURCES, SiweMessage};

/// Length of the signature at the end of the evidence.
pub const SIGNATURE_LEN: usize = 65;
/// Largest evidence: the largest message and the signature.
pub const MAX_EVIDENCE_LEN: usize = MAX_MESSAGE_LEN + SIGNATURE_LEN;
/// Tolerance of the validity times against `created_at_ms`, in milliseconds.
pub const SKEW_MS: i64 = 60_000;
/// The prefix of the resource that names the user key.
pub const USER_KEY_RESOURCE_PREFIX: &str = "clientful:user-key:";

/// Why SIWE evidence is refused. Each variant has one class ([`SiweError::class`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SiweError {
    /// Not a well-formed EIP-4361 message or signature encoding.
    #[error("malformed SIWE {what}: {reason}")]
    Malformed {
        /// The part concerned.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A size or count limit.
    #[error("SIWE {what} is {actual}, over the limit {max}")]
    LimitExceeded {
        /// What was counted.
        what: &'static str,
        /// The limit.
        max: u64,
        /// What the input has.
        actual: u64,
    },
    /// The signature is not valid for the message's address.
    #[error("SIWE signature: {0}")]
    BadSignature(&'static str),
    /// The nonce is not the binding of this user key and salt.
    #[error("SIWE nonce is not the binding of this user key and salt")]
    WrongNonce,
    /// No `Resources` item names this user key.
    #[error("SIWE resources do not name this user key")]
    UserKeyNotNamed,
    /// The domain is not one the verifier expects.
    #[error("SIWE domain {0:?} is not an expected domain")]
    WrongDomain(String),
    /// The chain is not one the verifier expects.
    #[error("SIWE chain id {0} is not an expected chain")]
    WrongChain(u64),
    /// The record's time is outside the message's validity window.
    #[error("SIWE message not valid at the attestation's time: {0}")]
    Expired(&'static str),
}

impl SiweError {
    /// The error class (spec §4) of this error, as the table of §14.10 gives it.
    pub fn class(&self) -> ErrorClass {
        match self {
            SiweError::Malformed { .. } => ErrorClass::Malformed,
            SiweError::LimitExceeded { .. } => ErrorClass::LimitExceeded,
            SiweError::BadSignature(_) => ErrorClass::BadSignature,
            SiweError::WrongNonce
            | SiweError::UserKeyNotNamed
            | SiweError::WrongDomain(_)
            | SiweError::WrongChain(_) => ErrorClass::WrongContext,
            SiweError::Expired(_) => ErrorClass::Expired,
        }
    }
}

/// What the verifier accepts: the domains (RFC 3986 authorities, compared
/// exactly) and the EIP-155 chain ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiwePolicy {
    /// Expected domains.
    pub domains: Vec<String>,
    /// Expected chain ids.
    pub chain_ids: Vec<u64>,
}

/// A verified SIWE attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiweVerified {
    /// `eip155:<chain id>:<EIP-55 address>` (CAIP-10): the record's subject.
    pub subject: String,
    /// The account.
    pub address: [u8; 20],
    /// The parsed message.
    pub message: SiweMessage,
}

/// The EIP-191 personal-sign hash:
/// `Keccak-256("\x19Ethereum Signed Message:\n" || decimal(len(m)) || m)`.
pub fn eip191_hash(message: &[u8]) -> [u8; 32] {
    let mut h = Keccak256::new();
    h.update(b"\x19Ethereum Signed Message:\n");
    h.update(message.len().to_string().as_bytes());
    h.update(message);
    h.finalize().into()
}

/// The Ethereum address of a secp256k1 key: the last 20 bytes of the Keccak-256
/// of its uncompressed point without the `0x04` prefix.
pub fn address_of(key: &VerifyingKey) -> [u8; 20] {
    let point = key.to_sec1_point(false);
    let xy = point.as_bytes().get(1..).unwrap_or(&[]);
    let hash = Keccak256::digest(xy);
    let mut out = [0u8; 20];
    out.copy_from_slice(hash.get(12..).unwrap_or(&[0u8; 20]));
    out
}

/// The resource that names `user_key`: `clientful:user-key:<base64url, no padding>`.
pub fn user_key_resource(user_key: &[u8; USER_KEY_LEN]) -> String {
    format!(
        "{USER_KEY_RESOURCE_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(user_key)
    )
}

/// The nonce a message for (`user_key`, `salt`) carries: lowercase hex of the binding.
pub fn nonce_for(user_key: &[u8; USER_KEY_LEN], salt: &[u8; SALT_LEN]) -> String {
    hex::encode(binding(user_key, salt))
}

/// Splits evidence into the message bytes and the signature (ATT-30).
pub fn split_evidence(evidence: &[u8]) -> Result<(&[u8], [u8; SIGNATURE_LEN]), SiweError> {
    if evidence.len() > MAX_EVIDENCE_LEN {
        return Err(SiweError::LimitExceeded {
            what: "evidence length",
            max: MAX_EVIDENCE_LEN as u64,
            actual: evidence.len() as u64,
        });
    }
    let cut = evidence
        .len()
        .checked_sub(SIGNATURE_LEN)
        .ok_or(SiweError::Malformed {
            what: "evidence",
            reason: "shorter than a signature",
        })?;
    let (message, sig) = evidence.split_at(cut);
    let mut out = [0u8; SIGNATURE_LEN];
    out.copy_from_slice(sig);
    Ok((message, out))
}

/// The evidence bytes: `message || signature`.
pub fn evidence(message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + SIGNATURE_LEN);
    out.extend_from_slice(message);
    out.extend_from_slice(signature);
    out
}

/// Recovers the signer's address of an EIP-191 signature over `message`.
pub fn recover_address(
    message: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> Result<[u8; 20], SiweError> {
    let (rs, v) = signature.split_at(64);
    let v = v.first().copied().unwrap_or(0);
    let y_odd = match v {
        27 => false,
        28 => true,
        _ => return Err(SiweError::BadSignature("v is not 27 or 28")),
    };
    let sig =
        Signature::from_slice(rs).map_err(|_| SiweError::BadSignature("r or s out of range"))?;
    if sig.normalize_s() != sig {
        return Err(SiweError::BadSignature("s is in the upper half (EIP-2)"));
    }
    let key = VerifyingKey::recover_from_prehash(
        &eip191_hash(message),
        &sig,
        RecoveryId::new(y_odd, false),
    )
    .map_err(|_| SiweError::BadSignature("no key recovers from it"))?;
    Ok(address_of(&key))
}

/// Signs `message` per EIP-191 (for tests and vector generation; wallets sign in
/// practice). RFC 6979 deterministic, low `s`.
pub fn sign(key: &SigningKey, message: &[u8]) -> [u8; SIGNATURE_LEN] {
    let (sig, rid) = key.sign_prehash_recoverable(&eip191_hash(message));
    // sign_prehash_recoverable normalizes s and adjusts the recovery id.
    let mut out = [0u8; SIGNATURE_LEN];
    for (o, b) in out.iter_mut().zip(sig.to_bytes().iter()) {
        *o = *b;
    }
    if let Some(last) = out.last_mut() {
        *last = 27 + (rid.to_byte() & 1);
    }
    out
}

/// Verifies SIWE evidence for (`user_key`, `salt`) at `created_at_ms` under
/// `policy` (see the module documentation for the order of the checks).
pub fn verify(
    evidence: &[u8],
    user_key: &[u8; USER_KEY_LEN],
    salt: &[u8; SALT_LEN],
    created_at_ms: u64,
    policy: &SiwePolicy,
) -> Result<SiweVerified, SiweError> {
    let (message_bytes, signature) = split_evidence(evidence)?;
    let message = SiweMessage::parse(message_bytes)?;
    let address = message.address_bytes().ok_or(SiweError::Malformed {
        what: "address",
        reason: "not an EIP-55 checksummed address",
    })?;
    if recover_address(message_bytes, &signature)? != address {
        return Err(SiweError::BadSignature(
            "the recovered address is not the message's",
        ));
    }
    if message.nonce != nonce_for(user_key, salt) {
        return Err(SiweError::WrongNonce);
    }
    let resource = user_key_resource(user_key);
    if !message
        .resources
        .as_ref()
        .is_some_and(|r| r.contains(&resource))
    {
        return Err(SiweError::UserKeyNotNamed);
    }
    if !policy.domains.contains(&message.domain) {
        return Err(SiweError::WrongDomain(message.domain.clone()));
    }
    if !policy.chain_ids.contains(&message.chain_id) {
        return Err(SiweError::WrongChain(message.chain_id));
    }
    check_times(&message, created_at_ms)?;
    Ok(SiweVerified {
        subject: format!("eip155:{}:{}", message.chain_id, message.address),
        address,
        message,
    })
}

/// ATT-33: `Issued At` ≤ t + skew; t < `Expiration Time` + skew; `Not Before` ≤ t + skew.
fn check_times(message: &SiweMessage, created_at_ms: u64) -> Result<(), SiweError> {
    let t = i64::try_from(created_at_ms).map_err(|_| SiweError::Expired("time out of range"))?;
    let bad = SiweError::Malformed {
        what: "time",
        reason: "not an RFC 3339 date-time",
    };
    let issued = message.issued_at_ms().ok_or(bad.clone())?;
    if issued > t.saturating_add(SKEW_MS) {
        return Err(SiweError::Expired("issued after the attestation"));
    }
    if message.expiration_time.is_some() {
        let exp = message.expiration_ms().ok_or(bad.clone())?;
        if t >= exp.saturating_add(SKEW_MS) {
            return Err(SiweError::Expired("expired before the attestation"));
        }
    }
    if message.not_before.is_some() {
        let nb = message.not_before_ms().ok_or(bad)?;
        if nb > t.saturating_add(SKEW_MS) {
            return Err(SiweError::Expired("not yet valid at the attestation"));
        }
    }
    Ok(())
}

/// Builds the message a wallet is asked to sign for (`user_key`, `salt`), with no
/// statement, no expiry and no other resource (tests, vectors, the CLI's prompt).
pub fn message_for(
    domain: &str,
    address: &[u8; 20],
    uri: &str,
    chain_id: u64,
    user_key: &[u8; USER_KEY_LEN],
    salt: &[u8; SALT_LEN],
    issued_at_ms: i64,
) -> SiweMessage {
    SiweMessage {
        scheme: None,
        domain: domain.to_owned(),
        address: message::checksum_address(address),
        statement: None,
        uri: uri.to_owned(),
        version: "1".to_owned(),
        chain_id,
        nonce: nonce_for(user_key, salt),
        issued_at: time::format_rfc3339(issued_at_ms),
        expiration_time: None,
        not_before: None,
        request_id: None,
        resources: Some(vec![user_key_resource(user_key)]),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const USER: [u8; 32] = [7; 32];
    const SALT: [u8; 16] = [9; 16];
    const T: i64 = 1_796_000_000_000;

    fn key() -> SigningKey {
        SigningKey::from_slice(&[0x11; 32]).unwrap()
    }

    fn policy() -> SiwePolicy {
        SiwePolicy {
            domains: vec!["example.com".into()],
            chain_ids: vec![1],
        }
    }

    fn signed(m: &SiweMessage) -> Vec<u8> {
        let text = m.render();
        evidence(text.as_bytes(), &sign(&key(), text.as_bytes()))
    }

    fn good() -> SiweMessage {
        let addr = address_of(key().verifying_key());
        let mut m = message_for(
            "example.com",
            &addr,
            "https://example.com",
            1,
            &USER,
            &SALT,
            T,
        );
        m.expiration_time = Some(time::format_rfc3339(T + 600_000));
        m
    }

    #[test]
    fn known_address() {
        // The secp256k1 key 1 has the well-known address 0x7E5F...Bdf.
        let mut one = [0u8; 32];
        one[31] = 1;
        let k = SigningKey::from_slice(&one).unwrap();
        assert_eq!(
            message::checksum_address(&address_of(k.verifying_key())),
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        );
    }

    #[test]
    fn valid_and_each_class() {
        let ok = verify(&signed(&good()), &USER, &SALT, T as u64, &policy()).unwrap();
        assert!(ok.subject.starts_with("eip155:1:0x"));

        let class = |m: &SiweMessage, t: i64| {
            verify(&signed(m), &USER, &SALT, t as u64, &policy())
                .unwrap_err()
                .class()
        };
        let mut m = good();
        m.domain = "evil.example".into();
        assert_eq!(class(&m, T), ErrorClass::WrongContext);
        let mut m = good();
        m.chain_id = 5;
        assert_eq!(class(&m, T), ErrorClass::WrongContext);
        let mut m = good();
        m.nonce = nonce_for(&USER, &[0; 16]);
        assert_eq!(class(&m, T), ErrorClass::WrongContext);
        let mut m = good();
        m.resources = Some(vec![user_key_resource(&[8; 32])]);
        assert_eq!(class(&m, T), ErrorClass::WrongContext);
        assert_eq!(class(&good(), T + 661_000), ErrorClass::Expired);
        assert_eq!(class(&good(), T - 61_000), ErrorClass::Expired);
        let mut m = good();
        m.not_before = Some(time::format_rfc3339(T + 120_000));
        assert_eq!(class(&m, T), ErrorClass::Expired);
        // Within the skew.
        assert!(
            verify(
                &signed(&good()),
                &USER,
                &SALT,
                (T - 59_000) as u64,
                &policy()
            )
            .is_ok()
        );

        // Another user key or salt: the nonce no longer matches.
        let e = verify(&signed(&good()), &[1; 32], &SALT, T as u64, &policy()).unwrap_err();
        assert_eq!(e, SiweError::WrongNonce);
    }

    #[test]
    fn signature_failures() {
        let ev = signed(&good());
        let n = ev.len();
        let mut t = ev.clone();
        t[n - 40] ^= 1;
        assert_eq!(
            verify(&t, &USER, &SALT, T as u64, &policy())
                .unwrap_err()
                .class(),
            ErrorClass::BadSignature
        );
        let mut t = ev.clone();
        t[n - 1] = 29;
        assert_eq!(
            verify(&t, &USER, &SALT, T as u64, &policy()).unwrap_err(),
            SiweError::BadSignature("v is not 27 or 28")
        );
        // The message signed by another key.
        let other = SigningKey::from_slice(&[0x22; 32]).unwrap();
        let text = good().render();
        let forged = evidence(text.as_bytes(), &sign(&other, text.as_bytes()));
        assert_eq!(
            verify(&forged, &USER, &SALT, T as u64, &policy())
                .unwrap_err()
                .class(),
            ErrorClass::BadSignature
        );
        // High s: the same signature with s' = n - s and v flipped recovers the same
        // key, and is refused (EIP-2).
        let sig = Signature::from_slice(&ev[n - 65..n - 1]).unwrap();
        let (r, s) = sig.split_scalars();
        let high = Signature::from_scalars(r, -*s).unwrap();
        let mut t = ev.clone();
        t[n - 65..n - 1].copy_from_slice(&high.to_bytes());
        t[n - 1] ^= 0x1b ^ 0x1c;
        assert_eq!(
            verify(&t, &USER, &SALT, T as u64, &policy()).unwrap_err(),
            SiweError::BadSignature("s is in the upper half (EIP-2)")
        );
        assert_eq!(
            verify(&ev[..10], &USER, &SALT, T as u64, &policy())
                .unwrap_err()
                .class(),
            ErrorClass::Malformed
        );
    }
}
