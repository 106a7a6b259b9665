//! Compact JWS (RFC 7515) and JWK (RFC 7517) as OpenID id_tokens use them (spec
//! §14.5, ATT-9): parsing with limits checked before any decoding, the algorithm
//! allow-list (RS256, ES256, EdDSA; `none`, HMAC and everything else are
//! `UNSUPPORTED_VERSION`), key selection in a JWKS, and signature verification.
//! Pure: the JWKS is passed in as the shell fetched it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::error::AttestError;

/// Largest compact JWS accepted (ATT-LIM-3): 16 KiB.
pub const MAX_JWS_BYTES: usize = 16 * 1024;
/// Largest JWKS document accepted (ATT-LIM-4): 64 KiB.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Most keys in one JWKS (ATT-LIM-4).
pub const MAX_JWKS_KEYS: usize = 32;
/// Smallest RSA modulus accepted, in bits (ATT-9).
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (ATT-9).
pub const MAX_RSA_BITS: usize = 8192;

/// A JWS algorithm of the allow-list (ATT-9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3).
    Rs256,
    /// ECDSA P-256 with SHA-256, signature `r || s` (RFC 7518 §3.4).
    Es256,
    /// Ed25519 (RFC 8037).
    EdDsa,
}

impl Alg {
    /// The allow-listed algorithm named `name`; any other name (`none`, `HS256`,
    /// `RS512`, ...) is `UNSUPPORTED_VERSION`.
    pub fn parse(name: &str) -> Result<Alg, AttestError> {
        match name {
            "RS256" => Ok(Alg::Rs256),
            "ES256" => Ok(Alg::Es256),
            "EdDSA" => Ok(Alg::EdDsa),
            other => Err(AttestError::unsupported("JWS alg", other)),
        }
    }

    /// Its JOSE name.
    pub const fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
    crit: Option<serde_json::Value>,
}

/// A parsed compact JWS whose algorithm is allow-listed. The signature is not
/// verified yet: see [`Jws::verify`].
#[derive(Debug, Clone)]
pub struct Jws {
    /// The header's algorithm.
    pub alg: Alg,
    /// The header's key id, if any.
    pub kid: Option<String>,
    /// The decoded payload bytes.
    pub payload: Vec<u8>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

fn b64(what: &'static str, s: &str) -> Result<Vec<u8>, AttestError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| AttestError::malformed(what, "not unpadded base64url"))
}

impl Jws {
    /// Parses a compact JWS (ATT-9 steps 1–3): size; three dot-separated parts;
    /// the header as a JSON object with a string `alg`; the algorithm allow-list
    /// (before the payload and signature are decoded, so `alg: none` with an empty
    /// signature is `UNSUPPORTED_VERSION`); no `crit`; payload and signature
    /// base64url.
    pub fn parse(compact: &[u8]) -> Result<Jws, AttestError> {
        if compact.len() > MAX_JWS_BYTES {
            return Err(AttestError::limit("JWS", MAX_JWS_BYTES, compact.len()));
        }
        let text =
            std::str::from_utf8(compact).map_err(|_| AttestError::malformed("JWS", "not ASCII"))?;
        let mut parts = text.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AttestError::malformed("JWS", "not three parts"));
        };
        let header_bytes = b64("JWS header", h)?;
        let header: RawHeader = serde_json::from_slice(&header_bytes)
            .map_err(|_| AttestError::malformed("JWS header", "not a JSON object with alg"))?;
        let alg = Alg::parse(&header.alg)?;
        if header.crit.is_some() {
            return Err(AttestError::unsupported("JWS crit", "crit"));
        }
        let payload = b64("JWS payload", p)?;
        let signature = b64("JWS signature", s)?;
        let mut signing_input = Vec::with_capacity(h.len() + 1 + p.len());
        signing_input.extend_from_slice(h.as_bytes());
        signing_input.push(b'.');
        signing_input.extend_from_slice(p.as_bytes());
        Ok(Jws {
            alg,
            kid: header.kid,
            payload,
            signing_input,
            signature,
        })
    }

    /// Verifies the signature with the first key of `jwks` that fits (ATT-9 step
    /// 5): a key fits if its `kid` equals the header's (when the header has one),
    /// its type and curve suit the algorithm, its `alg` (if present) is the
    /// header's and its `use` (if present) is `sig`. No fitting key is
    /// `UNKNOWN_SIGNER`; a fitting key whose signature check fails is
    /// `BAD_SIGNATURE`.
    pub fn verify(&self, jwks: &Jwks) -> Result<(), AttestError> {
        let mut found = false;
        for key in &jwks.keys {
            if !key.fits(self.alg, self.kid.as_deref()) {
                continue;
            }
            found = true;
            if key.verify(self.alg, &self.signing_input, &self.signature)? {
                return Ok(());
            }
        }
        if found {
            Err(AttestError::BadSignature { what: "JWS" })
        } else {
            Err(AttestError::UnknownSigner {
                what: "no JWKS key fits the token's kid and alg",
            })
        }
    }
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Debug, Clone)]
enum KeyMaterial {
    Rsa(Box<rsa::PublicKey>),
    P256(Box<p256::ecdsa::VerifyingKey>),
    Ed25519([u8; 32]),
    /// A key type this crate does not verify with (`oct`, other curves): kept so
    /// that a token naming its kid is `UNKNOWN_SIGNER`, not an error of the JWKS.
    Other,
}

/// One public key of a JWKS.
#[derive(Debug, Clone)]
pub struct Jwk {
    kid: Option<String>,
    alg: Option<String>,
    use_: Option<String>,
    material: KeyMaterial,
}

/// An issuer's JSON Web Key Set, parsed (ATT-LIM-4).
#[derive(Debug, Clone)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

impl Jwks {
    /// Parses a JWKS document (`{"keys": [...]}`) as the shell fetched it: size,
    /// key count, each key's members. Keys of types other than RSA, EC P-256 and
    /// OKP Ed25519 are kept and never fit.
    pub fn parse(bytes: &[u8]) -> Result<Jwks, AttestError> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(AttestError::limit("JWKS", MAX_JWKS_BYTES, bytes.len()));
        }
        let raw: RawJwks = serde_json::from_slice(bytes)
            .map_err(|_| AttestError::malformed("JWKS", "not a JSON object with keys"))?;
        if raw.keys.len() > MAX_JWKS_KEYS {
            return Err(AttestError::limit(
                "JWKS keys",
                MAX_JWKS_KEYS,
                raw.keys.len(),
            ));
        }
        let keys = raw
            .keys
            .into_iter()
            .map(Jwk::from_value)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Jwks { keys })
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn member(what: &'static str, v: Option<&String>) -> Result<Vec<u8>, AttestError> {
    let s = v.ok_or(AttestError::InvalidKey {
        what,
        reason: "member missing",
    })?;
    b64(what, s)
}

impl Jwk {
    fn from_value(v: serde_json::Value) -> Result<Jwk, AttestError> {
        let raw: RawJwk = serde_json::from_value(v)
            .map_err(|_| AttestError::malformed("JWK", "not a JSON object with kty"))?;
        let material = match (raw.kty.as_str(), raw.crv.as_deref()) {
            ("RSA", _) => {
                let n = member("JWK n", raw.n.as_ref())?;
                let e = member("JWK e", raw.e.as_ref())?;
                let n = strip_zeros(&n);
                let bits = n.len() * 8;
                if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) || e.len() > 8 {
                    return Err(AttestError::InvalidKey {
                        what: "JWK RSA",
                        reason: "modulus not 2048 to 8192 bits, or exponent too long",
                    });
                }
                let precision = (n.len() * 8) as u32;
                let n = rsa::BoxedUint::from_be_slice(n, precision).map_err(|_| {
                    AttestError::InvalidKey {
                        what: "JWK RSA",
                        reason: "modulus",
                    }
                })?;
                let e =
                    rsa::BoxedUint::from_be_slice(&e, 64).map_err(|_| AttestError::InvalidKey {
                        what: "JWK RSA",
                        reason: "exponent",
                    })?;
                let key = rsa::PublicKey::new_with_size_limits(n, e, MIN_RSA_BITS..=MAX_RSA_BITS)
                    .map_err(|_| AttestError::InvalidKey {
                    what: "JWK RSA",
                    reason: "not a valid RSA public key",
                })?;
                KeyMaterial::Rsa(Box::new(key))
            }
            ("EC", Some("P-256")) => {
                let x = member("JWK x", raw.x.as_ref())?;
                let y = member("JWK y", raw.y.as_ref())?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(AttestError::InvalidKey {
                        what: "JWK P-256",
                        reason: "coordinates not 32 bytes",
                    });
                }
                let mut sec1 = Vec::with_capacity(65);
                sec1.push(0x04);
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| {
                    AttestError::InvalidKey {
                        what: "JWK P-256",
                        reason: "not a point on the curve",
                    }
                })?;
                KeyMaterial::P256(Box::new(key))
            }
            ("OKP", Some("Ed25519")) => {
                let x = member("JWK x", raw.x.as_ref())?;
                let x: [u8; 32] = x
                    .as_slice()
                    .try_into()
                    .map_err(|_| AttestError::InvalidKey {
                        what: "JWK Ed25519",
                        reason: "not 32 bytes",
                    })?;
                KeyMaterial::Ed25519(x)
            }
            _ => KeyMaterial::Other,
        };
        Ok(Jwk {
            kid: raw.kid,
            alg: raw.alg,
            use_: raw.use_,
            material,
        })
    }

    fn fits(&self, alg: Alg, kid: Option<&str>) -> bool {
        if let Some(kid) = kid
            && self.kid.as_deref() != Some(kid)
        {
            return false;
        }
        if self.alg.as_deref().is_some_and(|a| a != alg.name()) {
            return false;
        }
        if self.use_.as_deref().is_some_and(|u| u != "sig") {
            return false;
        }
        matches!(
            (&self.material, alg),
            (KeyMaterial::Rsa(_), Alg::Rs256)
                | (KeyMaterial::P256(_), Alg::Es256)
                | (KeyMaterial::Ed25519(_), Alg::EdDsa)
        )
    }

    /// `Ok(true)` if `signature` verifies; `Ok(false)` if it does not; an error
    /// only for a key that turns out unusable.
    fn verify(&self, alg: Alg, input: &[u8], signature: &[u8]) -> Result<bool, AttestError> {
        use rsa::signature::Verifier as _;
        Ok(match (&self.material, alg) {
            (KeyMaterial::Rsa(key), Alg::Rs256) => {
                let vk = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new((**key).clone());
                match rsa::pkcs1v15::Signature::try_from(signature) {
                    Ok(sig) => vk.verify(input, &sig).is_ok(),
                    Err(_) => false,
                }
            }
            (KeyMaterial::P256(key), Alg::Es256) => {
                match p256::ecdsa::Signature::from_slice(signature) {
                    Ok(sig) => key.verify(input, &sig).is_ok(),
                    Err(_) => false,
                }
            }
            (KeyMaterial::Ed25519(key), Alg::EdDsa) => {
                match clientful_core::keys::verify_raw(key, input, signature) {
                    Ok(()) => true,
                    Err(e) if e.class() == clientful_core::ErrorClass::BadSignature => false,
                    Err(_) => {
                        return Err(AttestError::InvalidKey {
                            what: "JWK Ed25519",
                            reason: "not a valid Ed25519 public key",
                        });
                    }
                }
            }
            _ => false,
        })
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b.get(start..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use clientful_core::ErrorClass;

    fn enc(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn none_and_hmac_are_unsupported_before_anything_else() {
        for alg in ["none", "HS256", "RS512", "PS256", ""] {
            let t = format!("{}.{}.", enc(&format!(r#"{{"alg":"{alg}"}}"#)), enc("{}"));
            assert_eq!(
                Jws::parse(t.as_bytes()).unwrap_err().class(),
                ErrorClass::UnsupportedVersion,
                "{alg}"
            );
        }
    }

    #[test]
    fn shape_errors_are_malformed_and_size_is_a_limit() {
        for t in ["", "a.b", "a.b.c.d", "!!.e30.", "e30.e30.x"] {
            assert_eq!(
                Jws::parse(t.as_bytes()).unwrap_err().class(),
                ErrorClass::Malformed,
                "{t}"
            );
        }
        let big = vec![b'a'; MAX_JWS_BYTES + 1];
        assert_eq!(
            Jws::parse(&big).unwrap_err().class(),
            ErrorClass::LimitExceeded
        );
    }

    #[test]
    fn crit_is_unsupported() {
        let t = format!(
            "{}.{}.",
            enc(r#"{"alg":"ES256","crit":["b64"]}"#),
            enc("{}")
        );
        assert_eq!(
            Jws::parse(t.as_bytes()).unwrap_err().class(),
            ErrorClass::UnsupportedVersion
        );
    }

    #[test]
    fn odd_rsa_moduli_and_exponents_never_panic() {
        for len in [256usize, 257, 263, 300, 1024, 1025] {
            for e in [
                &[1u8, 0, 1][..],
                &[3],
                &[0],
                &[1],
                &[0xff; 8],
                &[0x80, 0, 0, 0, 0],
            ] {
                let mut n = vec![0xa5u8; len];
                n[len - 1] |= 1;
                let doc = format!(
                    r#"{{"keys":[{{"kty":"RSA","kid":"k","n":"{}","e":"{}"}}]}}"#,
                    URL_SAFE_NO_PAD.encode(&n),
                    URL_SAFE_NO_PAD.encode(e)
                );
                if let Ok(jwks) = Jwks::parse(doc.as_bytes()) {
                    let t = format!(
                        "{}.{}.{}",
                        enc(r#"{"alg":"RS256","kid":"k"}"#),
                        enc("{}"),
                        URL_SAFE_NO_PAD.encode(&n)
                    );
                    let jws = Jws::parse(t.as_bytes()).unwrap();
                    assert_eq!(
                        jws.verify(&jwks).unwrap_err().class(),
                        ErrorClass::BadSignature
                    );
                }
            }
        }
    }

    #[test]
    fn small_rsa_keys_are_invalid() {
        let n = URL_SAFE_NO_PAD.encode([0xffu8; 128]);
        let doc = format!(r#"{{"keys":[{{"kty":"RSA","n":"{n}","e":"AQAB"}}]}}"#);
        assert_eq!(
            Jwks::parse(doc.as_bytes()).unwrap_err().class(),
            ErrorClass::InvalidKey
        );
    }
}
