//! COSE_Key (RFC 9052/9053) of a passkey's credential public key (ATT-42): the
//! two algorithms a verifier accepts, ES256 (-7, P-256) and EdDSA (-8, Ed25519).
//!
//! The key is one CBOR map with integer labels, at most [`MAX_COSE_KEY_LEN`] bytes
//! and nesting depth [`MAX_CBOR_DEPTH`]: `1` kty, `3` alg, `-1` crv, `-2` x,
//! `-3` y. Another alg is UNSUPPORTED_VERSION; a missing or mistyped field, or
//! trailing bytes, MALFORMED; a point not on the curve INVALID_KEY.

use ciborium::Value;

use super::WebAuthnError;

/// Largest COSE key accepted, in bytes.
pub const MAX_COSE_KEY_LEN: usize = 1024;
/// Deepest CBOR nesting accepted in keys and extension maps.
pub const MAX_CBOR_DEPTH: usize = 8;

/// COSE algorithm ES256 (ECDSA P-256 with SHA-256).
pub const ALG_ES256: i64 = -7;
/// COSE algorithm EdDSA (Ed25519 here).
pub const ALG_EDDSA: i64 = -8;

/// A credential public key a verifier can check signatures with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoseKey {
    /// ES256: a P-256 point.
    Es256(p256::ecdsa::VerifyingKey),
    /// EdDSA with Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
}

fn malformed(reason: &'static str) -> WebAuthnError {
    WebAuthnError::Malformed {
        what: "COSE key",
        reason,
    }
}

/// Decodes one CBOR item from the front of `bytes`; returns it and the number of
/// bytes it took.
pub(crate) fn cbor_prefix(bytes: &[u8]) -> Result<(Value, usize), ()> {
    let mut rest = bytes;
    let v: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_CBOR_DEPTH)
        .map_err(|_| ())?;
    Ok((v, bytes.len() - rest.len()))
}

fn int(v: &Value) -> Option<i64> {
    v.as_integer().and_then(|i| i64::try_from(i).ok())
}

fn field(map: &[(Value, Value)], label: i64) -> Result<Option<&Value>, WebAuthnError> {
    let mut found = None;
    for (k, v) in map {
        if int(k) == Some(label) {
            if found.is_some() {
                return Err(malformed("a label appears twice"));
            }
            found = Some(v);
        }
    }
    Ok(found)
}

fn int_field(map: &[(Value, Value)], label: i64) -> Result<i64, WebAuthnError> {
    field(map, label)?
        .and_then(int)
        .ok_or(malformed("a required integer field is missing"))
}

fn bytes32(map: &[(Value, Value)], label: i64) -> Result<[u8; 32], WebAuthnError> {
    let b = field(map, label)?
        .and_then(Value::as_bytes)
        .ok_or(malformed("a coordinate is missing"))?;
    <[u8; 32]>::try_from(b.as_slice()).map_err(|_| malformed("a coordinate is not 32 bytes"))
}

impl CoseKey {
    /// Parses exactly one COSE_Key (no trailing bytes).
    pub fn parse(bytes: &[u8]) -> Result<Self, WebAuthnError> {
        if bytes.len() > MAX_COSE_KEY_LEN {
            return Err(WebAuthnError::LimitExceeded {
                what: "COSE key length",
                max: MAX_COSE_KEY_LEN as u64,
                actual: bytes.len() as u64,
            });
        }
        let (value, used) = cbor_prefix(bytes).map_err(|_| malformed("not one CBOR item"))?;
        if used != bytes.len() {
            return Err(malformed("trailing bytes"));
        }
        let map = value.as_map().ok_or(malformed("not a CBOR map"))?;
        let kty = int_field(map, 1)?;
        let alg = int_field(map, 3)?;
        match alg {
            ALG_ES256 => {
                if kty != 2 || int_field(map, -1)? != 1 {
                    return Err(malformed("ES256 needs kty EC2 and crv P-256"));
                }
                let x = bytes32(map, -2)?;
                let y = bytes32(map, -3)?;
                let mut sec1 = Vec::with_capacity(65);
                sec1.push(4);
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                    .map(CoseKey::Es256)
                    .map_err(|_| WebAuthnError::InvalidKey("not a P-256 point"))
            }
            ALG_EDDSA => {
                if kty != 1 || int_field(map, -1)? != 6 {
                    return Err(malformed("EdDSA needs kty OKP and crv Ed25519"));
                }
                let x = bytes32(map, -2)?;
                ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .map(CoseKey::Ed25519)
                    .map_err(|_| WebAuthnError::InvalidKey("not an Ed25519 point"))
            }
            other => Err(WebAuthnError::UnsupportedAlgorithm(other)),
        }
    }

    /// The COSE encoding of a P-256 key (tests, vectors).
    pub fn encode_es256(key: &p256::ecdsa::VerifyingKey) -> Vec<u8> {
        let point = key.to_sec1_point(false);
        let xy = point.as_bytes().get(1..).unwrap_or(&[]);
        let (x, y) = xy.split_at(xy.len() / 2);
        encode(&Value::Map(vec![
            (Value::from(1), Value::from(2)),
            (Value::from(3), Value::from(ALG_ES256)),
            (Value::from(-1), Value::from(1)),
            (Value::from(-2), Value::Bytes(x.to_vec())),
            (Value::from(-3), Value::Bytes(y.to_vec())),
        ]))
    }

    /// The COSE encoding of an Ed25519 key (tests, vectors).
    pub fn encode_ed25519(key: &ed25519_dalek::VerifyingKey) -> Vec<u8> {
        encode(&Value::Map(vec![
            (Value::from(1), Value::from(1)),
            (Value::from(3), Value::from(ALG_EDDSA)),
            (Value::from(-1), Value::from(6)),
            (Value::from(-2), Value::Bytes(key.to_bytes().to_vec())),
        ]))
    }
}

/// CBOR encoding of a value (into a Vec, which cannot fail for these values).
pub(crate) fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = ciborium::ser::into_writer(v, &mut out);
    out
}
