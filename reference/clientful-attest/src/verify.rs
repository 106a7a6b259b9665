//! Verifying one signed attestation (spec §14.4, ATT-7): the record checks of
//! [`crate::record::decode`], the record's time against the verifier's `now`
//! (ATT-8), then the evidence check of its kind (OIDC §14.5, `did:web` §14.6,
//! SIWE §14.10, WebAuthn §14.11). A pure function of the record bytes and the
//! [`VerifierContext`]; no clock, no network.

use crate::did::{self, DidAccount};
use crate::error::AttestError;
use crate::oidc::{self, OidcAccount, OidcContext};
use crate::record::{self, Kind, Record, SKEW_MS};
use crate::siwe::{self, SiwePolicy, SiweVerified};
use crate::webauthn::{self, WebAuthnPolicy, WebAuthnVerified};

/// Everything a verifier checks records against (ATT-7). The shell fills it:
/// trusted issuers with their JWKS as fetched, expected audiences, the SIWE
/// domains and chains and the WebAuthn origins and relying parties it accepts,
/// and its own `now`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VerifierContext {
    /// OIDC issuers and audiences (ATT-9).
    pub oidc: OidcContext,
    /// SIWE domains and chain ids (ATT-34); empty: no SIWE record verifies.
    pub siwe: SiwePolicy,
    /// WebAuthn origins, relying parties and the UV requirement (ATT-44..ATT-46);
    /// empty: no WebAuthn record verifies.
    pub webauthn: WebAuthnPolicy,
    /// The verifier's clock, ms since the Unix epoch: a record made more than 60 s
    /// after it is `EXPIRED` (ATT-8).
    pub now_ms: u64,
}

impl VerifierContext {
    /// A context with the verifier's `now` and no trusted OIDC issuer.
    pub fn new(now_ms: u64) -> Self {
        VerifierContext {
            oidc: OidcContext::default(),
            siwe: SiwePolicy::default(),
            webauthn: WebAuthnPolicy::default(),
            now_ms,
        }
    }
}

/// The external account a verified attestation shows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Account {
    /// An OIDC account (issuer, subject).
    Oidc(OidcAccount),
    /// A `did:web` DID.
    Did(DidAccount),
    /// An Ethereum account (SIWE, §14.10).
    Siwe(Box<SiweVerified>),
    /// A passkey (WebAuthn, §14.11).
    WebAuthn(WebAuthnVerified),
}

/// A verified attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The record.
    pub record: Record,
    /// The account it binds the user key to.
    pub account: Account,
}

/// Verifies a `SignedAttestation` (ATT-7): record checks, then `created_at_ms` at
/// most 60 s after `ctx.now_ms` (`EXPIRED`), then the evidence of its kind (every
/// kind of ATT-3 is verified; an unknown kind value fails in [`record::decode`]).
pub fn verify(signed: &[u8], ctx: &VerifierContext) -> Result<Verified, AttestError> {
    let record = record::decode(signed)?;
    if record.created_at_ms > ctx.now_ms.saturating_add(SKEW_MS) {
        return Err(AttestError::Expired {
            what: "record created_at is in the verifier's future",
        });
    }
    let account = match record.kind {
        Kind::OidcIdToken => Account::Oidc(oidc::verify(&record, &ctx.oidc)?),
        Kind::DidDocument => Account::Did(did::verify(&record)?),
        Kind::Siwe => {
            let v = siwe::verify(
                &record.evidence,
                &record.user_key,
                &record.salt,
                record.created_at_ms,
                &ctx.siwe,
            )?;
            subject_matches(&record, &v.subject)?;
            Account::Siwe(Box::new(v))
        }
        Kind::WebAuthn => {
            let v = webauthn::verify(
                &record.evidence,
                &record.user_key,
                &record.salt,
                &ctx.webauthn,
            )?;
            subject_matches(&record, &v.subject)?;
            Account::WebAuthn(v)
        }
    };
    Ok(Verified { record, account })
}

/// The record's subject must be the account the evidence shows (ATT-5).
fn subject_matches(record: &Record, shown: &str) -> Result<(), AttestError> {
    if record.subject == shown {
        Ok(())
    } else {
        Err(AttestError::WrongContext {
            what: "record subject (not the account the evidence shows)",
        })
    }
}
