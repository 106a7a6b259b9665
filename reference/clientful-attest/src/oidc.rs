//! OpenID Connect id_token evidence (spec §14.5, ATT-9): the checks a member runs
//! offline on an `OIDC_ID_TOKEN` record, against the trusted issuers and their
//! JWKS (fetched by the shell and passed in) and the expected audiences. Time is
//! the record's `created_at_ms` (ATT-8); nothing here reads a clock.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::error::AttestError;
use crate::jwt::{Jwks, Jws};
use crate::record::{Record, SKEW_MS};

/// An issuer the verifier trusts, with its JWKS as the shell fetched it.
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    /// The issuer identifier, compared byte for byte with the token's `iss`.
    pub issuer: String,
    /// Its signing keys.
    pub jwks: Jwks,
}

/// What an OIDC record is checked against (ATT-9).
#[derive(Debug, Clone, Default)]
pub struct OidcContext {
    /// The issuers trusted, each with its keys.
    pub issuers: Vec<TrustedIssuer>,
    /// The audiences (client ids) accepted: the token's `aud` must contain one.
    pub audiences: Vec<String>,
}

/// The claims of a verified id_token that a member sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcAccount {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// The audience that matched.
    pub audience: String,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: u64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Aud {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Aud,
    exp: u64,
    iat: u64,
    nbf: Option<u64>,
    nonce: Option<String>,
}

/// The OIDC nonce a token must carry for `binding` (ATT-6): unpadded base64url.
pub fn nonce_for(binding: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(binding)
}

/// The record subject of an OIDC account (ATT-5): `iss|sub`.
pub fn subject_for(issuer: &str, sub: &str) -> String {
    format!("{issuer}|{sub}")
}

/// Parses the unverified claims of an id_token: `iss` and `sub`, for a shell that
/// must know the issuer before it fetches its keys. Nothing is trusted by this.
pub fn peek_issuer(token: &[u8]) -> Result<(String, String), AttestError> {
    let jws = Jws::parse(token)?;
    let c = claims(&jws)?;
    Ok((c.iss, c.sub))
}

fn claims(jws: &Jws) -> Result<Claims, AttestError> {
    serde_json::from_slice(&jws.payload).map_err(|_| {
        AttestError::malformed(
            "id_token claims",
            "not a JSON object with string iss, sub, aud and integer exp, iat",
        )
    })
}

/// Checks an `OIDC_ID_TOKEN` record's evidence (ATT-9 steps, in order): the JWS
/// parses and its algorithm is allowed; the claims parse; `iss` is a trusted
/// issuer; the signature verifies with that issuer's JWKS; `aud` contains an
/// expected audience; `nonce` is the record's binding; `exp`, `nbf`, `iat` hold at
/// `created_at_ms` with 60 s of skew; the record's subject is `iss|sub`.
pub fn verify(record: &Record, ctx: &OidcContext) -> Result<OidcAccount, AttestError> {
    let jws = Jws::parse(&record.evidence)?;
    let c = claims(&jws)?;
    let issuer =
        ctx.issuers
            .iter()
            .find(|i| i.issuer == c.iss)
            .ok_or(AttestError::WrongContext {
                what: "id_token iss (not a trusted issuer)",
            })?;
    jws.verify(&issuer.jwks)?;
    let audiences: Vec<&String> = match &c.aud {
        Aud::One(a) => vec![a],
        Aud::Many(v) => v.iter().collect(),
    };
    let audience = audiences
        .iter()
        .find(|a| ctx.audiences.iter().any(|e| e == **a))
        .ok_or(AttestError::WrongContext {
            what: "id_token aud",
        })?;
    let expected = nonce_for(&record.binding()?);
    if c.nonce.as_deref() != Some(expected.as_str()) {
        return Err(AttestError::WrongContext {
            what: "id_token nonce (not the record's binding)",
        });
    }
    let t = record.created_at_ms;
    let ms = |s: u64| s.saturating_mul(1000);
    if t >= ms(c.exp).saturating_add(SKEW_MS) {
        return Err(AttestError::Expired {
            what: "id_token exp is before the record's created_at",
        });
    }
    if c.nbf.is_some_and(|nbf| ms(nbf) > t.saturating_add(SKEW_MS)) {
        return Err(AttestError::Expired {
            what: "id_token nbf is after the record's created_at",
        });
    }
    if ms(c.iat) > t.saturating_add(SKEW_MS) {
        return Err(AttestError::Expired {
            what: "id_token iat is after the record's created_at",
        });
    }
    if record.subject != subject_for(&c.iss, &c.sub) {
        return Err(AttestError::WrongContext {
            what: "record subject (not iss|sub of the token)",
        });
    }
    Ok(OidcAccount {
        issuer: c.iss,
        subject: c.sub,
        audience: (*audience).clone(),
        expires_at: c.exp,
    })
}
