//! WebAuthn passkey attestations (kind 4, spec §14.11, ATT-40..ATT-49).
//!
//! Evidence is six length-prefixed fields (ATT-40), each `u16be(len) || bytes`:
//!
//! ```text
//! rpId || credentialId || credentialPublicKey (COSE_Key) || authenticatorData
//!      || clientDataJSON || signature
//! ```
//!
//! The COSE key is the one the authenticator returned at registration (the
//! attested credential data, [`authdata::attested_credential`]); the other three
//! are an assertion (`navigator.credentials.get`) whose challenge is the 32-byte
//! [`crate::binding`]. [`verify`] checks, in this order (ATT-41): the encoding and
//! limits; the key ([`cose::CoseKey::parse`]); the authenticator data and the
//! client data; the signature over `authenticatorData || SHA-256(clientDataJSON)`
//! (ES256 in DER, or Ed25519); `type` = `webauthn.get`; the challenge; the origin
//! (and no `crossOrigin: true`); the RP id against the policy and `rpIdHash`; the
//! UP flag and, if the policy asks, UV. The subject is `<rpId>|<base64url(credentialId)>`.

pub mod authdata;
pub mod client_data;
pub mod cose;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clientful_core::ErrorClass;
use p256::ecdsa::signature::Verifier;
use sha2::{Digest, Sha256};

use crate::binding::{SALT_LEN, USER_KEY_LEN, binding};
use authdata::{AuthData, FLAG_UP, FLAG_UV};
use client_data::ClientData;
use cose::CoseKey;

/// Longest RP id (a DNS name).
pub const MAX_RP_ID_LEN: usize = 253;
/// Longest credential id (WebAuthn Level 3 §5.8.3).
pub const MAX_CREDENTIAL_ID_LEN: usize = 1023;
/// Longest signature (an ES256 DER signature is at most 72 bytes).
pub const MAX_SIGNATURE_LEN: usize = 128;
/// Largest evidence: every field at its limit and the six length prefixes.
pub const MAX_EVIDENCE_LEN: usize = 12
    + MAX_RP_ID_LEN
    + MAX_CREDENTIAL_ID_LEN
    + cose::MAX_COSE_KEY_LEN
    + authdata::MAX_AUTH_DATA_LEN
    + client_data::MAX_CLIENT_DATA_LEN
    + MAX_SIGNATURE_LEN;

/// Why WebAuthn evidence is refused. Each variant has one class
/// ([`WebAuthnError::class`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebAuthnError {
    /// Not a well-formed encoding.
    #[error("malformed WebAuthn {what}: {reason}")]
    Malformed {
        /// The part concerned.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A size limit.
    #[error("WebAuthn {what} is {actual}, over the limit {max}")]
    LimitExceeded {
        /// What was measured.
        what: &'static str,
        /// The limit.
        max: u64,
        /// What the input has.
        actual: u64,
    },
    /// A COSE algorithm other than ES256 (-7) and EdDSA (-8).
    #[error("COSE algorithm {0} is not supported")]
    UnsupportedAlgorithm(i64),
    /// The credential key is not a valid point.
    #[error("credential key: {0}")]
    InvalidKey(&'static str),
    /// The signature does not verify.
    #[error("WebAuthn signature: {0}")]
    BadSignature(&'static str),
    /// The assertion is for another purpose, challenge, origin or relying party.
    #[error("WebAuthn {0} is not the expected one")]
    WrongContext(&'static str),
    /// A flag the verifier requires is not set.
    #[error("WebAuthn flag {0} is not set")]
    MissingFlag(&'static str),
}

impl WebAuthnError {
    /// The error class (spec §4) of this error, as the table of §14.11 gives it.
    pub fn class(&self) -> ErrorClass {
        match self {
            WebAuthnError::Malformed { .. } => ErrorClass::Malformed,
            WebAuthnError::LimitExceeded { .. } => ErrorClass::LimitExceeded,
            WebAuthnError::UnsupportedAlgorithm(_) => ErrorClass::UnsupportedVersion,
            WebAuthnError::InvalidKey(_) => ErrorClass::InvalidKey,
            WebAuthnError::BadSignature(_) => ErrorClass::BadSignature,
            WebAuthnError::WrongContext(_) => ErrorClass::WrongContext,
            WebAuthnError::MissingFlag(_) => ErrorClass::InvalidOperation,
        }
    }
}

/// What the verifier accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebAuthnPolicy {
    /// Expected origins (`https://app.example`, `http://localhost:5173`), compared exactly.
    pub origins: Vec<String>,
    /// Expected RP ids.
    pub rp_ids: Vec<String>,
    /// Whether the UV flag (user verified) is required.
    pub require_user_verification: bool,
}

/// The six fields of WebAuthn evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAuthnEvidence {
    /// The relying party id the credential is scoped to.
    pub rp_id: String,
    /// The credential id.
    pub credential_id: Vec<u8>,
    /// The credential public key, COSE_Key bytes from the registration.
    pub cose_key: Vec<u8>,
    /// The assertion's authenticator data.
    pub authenticator_data: Vec<u8>,
    /// The assertion's `clientDataJSON`.
    pub client_data_json: Vec<u8>,
    /// The assertion's signature.
    pub signature: Vec<u8>,
}

/// A verified WebAuthn attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAuthnVerified {
    /// `<rpId>|<base64url(credentialId)>`: the record's subject.
    pub subject: String,
    /// The flags byte of the assertion.
    pub flags: u8,
}

fn take_field<'a>(
    rest: &mut &'a [u8],
    what: &'static str,
    max: usize,
) -> Result<&'a [u8], WebAuthnError> {
    let cut = |reason| WebAuthnError::Malformed {
        what: "evidence",
        reason,
    };
    let (len, tail) = rest
        .split_first_chunk::<2>()
        .ok_or(cut("a length prefix is cut short"))?;
    let len = usize::from(u16::from_be_bytes(*len));
    if len > max {
        return Err(WebAuthnError::LimitExceeded {
            what,
            max: max as u64,
            actual: len as u64,
        });
    }
    let (field, tail) = tail
        .split_at_checked(len)
        .ok_or(cut("a field is cut short"))?;
    *rest = tail;
    Ok(field)
}

fn put_field(out: &mut Vec<u8>, field: &[u8]) {
    let len = u16::try_from(field.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(field.get(..usize::from(len)).unwrap_or(field));
}

impl WebAuthnEvidence {
    /// Decodes evidence bytes (ATT-40).
    pub fn decode(bytes: &[u8]) -> Result<Self, WebAuthnError> {
        if bytes.len() > MAX_EVIDENCE_LEN {
            return Err(WebAuthnError::LimitExceeded {
                what: "evidence length",
                max: MAX_EVIDENCE_LEN as u64,
                actual: bytes.len() as u64,
            });
        }
        let mut rest = bytes;
        let rp_id = take_field(&mut rest, "RP id length", MAX_RP_ID_LEN)?;
        let credential_id = take_field(&mut rest, "credential id length", MAX_CREDENTIAL_ID_LEN)?;
        let cose_key = take_field(&mut rest, "COSE key length", cose::MAX_COSE_KEY_LEN)?;
        let authenticator_data = take_field(
            &mut rest,
            "authenticator data length",
            authdata::MAX_AUTH_DATA_LEN,
        )?;
        let client_data_json = take_field(
            &mut rest,
            "clientDataJSON length",
            client_data::MAX_CLIENT_DATA_LEN,
        )?;
        let signature = take_field(&mut rest, "signature length", MAX_SIGNATURE_LEN)?;
        if !rest.is_empty() {
            return Err(WebAuthnError::Malformed {
                what: "evidence",
                reason: "trailing bytes",
            });
        }
        let rp_id = std::str::from_utf8(rp_id)
            .ok()
            .filter(|s| !s.is_empty() && s.is_ascii() && !s.contains('|'))
            .ok_or(WebAuthnError::Malformed {
                what: "RP id",
                reason: "not a non-empty ASCII name without '|'",
            })?;
        if credential_id.is_empty() {
            return Err(WebAuthnError::Malformed {
                what: "credential id",
                reason: "empty",
            });
        }
        Ok(WebAuthnEvidence {
            rp_id: rp_id.to_owned(),
            credential_id: credential_id.to_vec(),
            cose_key: cose_key.to_vec(),
            authenticator_data: authenticator_data.to_vec(),
            client_data_json: client_data_json.to_vec(),
            signature: signature.to_vec(),
        })
    }

    /// Encodes the evidence (ATT-40). Fields over their limits are cut to 65535
    /// bytes here and refused by [`WebAuthnEvidence::decode`].
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_field(&mut out, self.rp_id.as_bytes());
        put_field(&mut out, &self.credential_id);
        put_field(&mut out, &self.cose_key);
        put_field(&mut out, &self.authenticator_data);
        put_field(&mut out, &self.client_data_json);
        put_field(&mut out, &self.signature);
        out
    }

    /// `<rpId>|<base64url(credentialId)>`.
    pub fn subject(&self) -> String {
        format!(
            "{}|{}",
            self.rp_id,
            URL_SAFE_NO_PAD.encode(&self.credential_id)
        )
    }
}

/// The challenge an assertion for (`user_key`, `salt`) must be made over.
pub fn challenge_for(user_key: &[u8; USER_KEY_LEN], salt: &[u8; SALT_LEN]) -> [u8; 32] {
    binding(user_key, salt)
}

/// The message a passkey signs: `authenticatorData || SHA-256(clientDataJSON)`.
pub fn signed_bytes(authenticator_data: &[u8], client_data_json: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(authenticator_data.len() + 32);
    m.extend_from_slice(authenticator_data);
    m.extend_from_slice(&Sha256::digest(client_data_json));
    m
}

fn check_signature(key: &CoseKey, message: &[u8], signature: &[u8]) -> Result<(), WebAuthnError> {
    match key {
        CoseKey::Es256(k) => {
            let sig = p256::ecdsa::Signature::from_der(signature)
                .map_err(|_| WebAuthnError::BadSignature("not a DER ECDSA signature"))?;
            k.verify(message, &sig)
                .map_err(|_| WebAuthnError::BadSignature("does not verify"))
        }
        CoseKey::Ed25519(k) => {
            let bytes = <[u8; 64]>::try_from(signature)
                .map_err(|_| WebAuthnError::BadSignature("not 64 bytes"))?;
            k.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&bytes))
                .map_err(|_| WebAuthnError::BadSignature("does not verify"))
        }
    }
}

/// Verifies WebAuthn evidence for (`user_key`, `salt`) under `policy` (see the
/// module documentation for the order of the checks).
pub fn verify(
    evidence: &[u8],
    user_key: &[u8; USER_KEY_LEN],
    salt: &[u8; SALT_LEN],
    policy: &WebAuthnPolicy,
) -> Result<WebAuthnVerified, WebAuthnError> {
    let e = WebAuthnEvidence::decode(evidence)?;
    let key = CoseKey::parse(&e.cose_key)?;
    let auth = AuthData::parse_assertion(&e.authenticator_data)?;
    let client = ClientData::parse(&e.client_data_json)?;
    check_signature(
        &key,
        &signed_bytes(&e.authenticator_data, &e.client_data_json),
        &e.signature,
    )?;
    if client.kind != "webauthn.get" {
        return Err(WebAuthnError::WrongContext("clientDataJSON type"));
    }
    if client.challenge != URL_SAFE_NO_PAD.encode(challenge_for(user_key, salt)) {
        return Err(WebAuthnError::WrongContext("challenge"));
    }
    if !policy.origins.contains(&client.origin) || client.cross_origin == Some(true) {
        return Err(WebAuthnError::WrongContext("origin"));
    }
    if !policy.rp_ids.contains(&e.rp_id) {
        return Err(WebAuthnError::WrongContext("RP id"));
    }
    if <[u8; 32]>::from(Sha256::digest(e.rp_id.as_bytes())) != auth.rp_id_hash {
        return Err(WebAuthnError::WrongContext("rpIdHash"));
    }
    if auth.flags & FLAG_UP == 0 {
        return Err(WebAuthnError::MissingFlag("UP (user present)"));
    }
    if policy.require_user_verification && auth.flags & FLAG_UV == 0 {
        return Err(WebAuthnError::MissingFlag("UV (user verified)"));
    }
    Ok(WebAuthnVerified {
        subject: e.subject(),
        flags: auth.flags,
    })
}

/// A software authenticator for tests and vectors: what a passkey with an ES256
/// key returns for `navigator.credentials.get` on `origin`.
pub fn assert_es256(
    key: &p256::ecdsa::SigningKey,
    rp_id: &str,
    origin: &str,
    credential_id: &[u8],
    challenge: &[u8],
    flags: u8,
) -> WebAuthnEvidence {
    use p256::ecdsa::signature::Signer;
    let mut authenticator_data = Sha256::digest(rp_id.as_bytes()).to_vec();
    authenticator_data.push(flags);
    authenticator_data.extend_from_slice(&1u32.to_be_bytes());
    let client_data_json = format!(
        r#"{{"type":"webauthn.get","challenge":"{}","origin":"{origin}","crossOrigin":false}}"#,
        URL_SAFE_NO_PAD.encode(challenge)
    )
    .into_bytes();
    let sig: p256::ecdsa::Signature =
        key.sign(&signed_bytes(&authenticator_data, &client_data_json));
    WebAuthnEvidence {
        rp_id: rp_id.to_owned(),
        credential_id: credential_id.to_vec(),
        cose_key: CoseKey::encode_es256(key.verifying_key()),
        authenticator_data,
        client_data_json,
        signature: sig.to_der().as_bytes().to_vec(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests;
