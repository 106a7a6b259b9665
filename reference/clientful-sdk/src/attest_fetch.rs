//! The IO attestations need (spec §14.5, §14.6), kept out of the pure
//! `clientful-attest`: an OpenID issuer's discovery document and JWKS, and a
//! `did:web` document, a `did:plc` DID's operation log from a PLC directory
//! (default `https://plc.directory`, spec §14.6 ATT-19). HTTPS only, except plain http to a loopback host
//! (`localhost`, `127.0.0.1`) when the caller allows it (tests, local setups).
//! Sizes are bounded by the limits the verifier applies.

use clientful_attest::did::{DidWeb, MAX_DOCUMENT_BYTES};
use clientful_attest::jwt::{Jwks, MAX_JWKS_BYTES};
use clientful_attest::oidc::TrustedIssuer;
use serde::Deserialize;

use crate::error::ClientError;

/// Largest discovery document read: 64 KiB.
const MAX_DISCOVERY_BYTES: usize = 64 * 1024;

fn fail(url: &str, reason: impl std::fmt::Display) -> ClientError {
    ClientError::Fetch {
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    name == "localhost" || name == "127.0.0.1"
}

fn check_scheme(url: &str, allow_loopback_http: bool) -> Result<(), ClientError> {
    if url.starts_with("https://") || (allow_loopback_http && is_loopback_url(url)) {
        Ok(())
    } else {
        Err(fail(
            url,
            "only https (or plain http to localhost/127.0.0.1 when allowed)",
        ))
    }
}

async fn get(url: &str, max: usize, allow_loopback_http: bool) -> Result<Vec<u8>, ClientError> {
    check_scheme(url, allow_loopback_http)?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .map_err(|e| fail(url, e))?;
    let mut res = client.get(url).send().await.map_err(|e| fail(url, e))?;
    if !res.status().is_success() {
        return Err(fail(url, format!("HTTP {}", res.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| fail(url, e))? {
        body.extend_from_slice(&chunk);
        if body.len() > max {
            return Err(fail(url, format!("larger than {max} bytes")));
        }
    }
    Ok(body)
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// An issuer's keys as fetched: what [`TrustedIssuer`] holds, and the JWKS bytes
/// to cache.
#[derive(Debug, Clone)]
pub struct FetchedIssuer {
    /// The issuer, ready for a `VerifierContext`.
    pub trusted: TrustedIssuer,
    /// The JWKS document as fetched.
    pub jwks_bytes: Vec<u8>,
}

/// Fetches `issuer`'s discovery document (`/.well-known/openid-configuration`,
/// whose `issuer` must equal `issuer`) and its JWKS.
pub async fn fetch_issuer(
    issuer: &str,
    allow_loopback_http: bool,
) -> Result<FetchedIssuer, ClientError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let body = get(&url, MAX_DISCOVERY_BYTES, allow_loopback_http).await?;
    let d: Discovery = serde_json::from_slice(&body)
        .map_err(|e| fail(&url, format!("not a discovery document: {e}")))?;
    if d.issuer != issuer {
        return Err(fail(&url, format!("names issuer {:?}", d.issuer)));
    }
    let jwks_bytes = get(&d.jwks_uri, MAX_JWKS_BYTES, allow_loopback_http).await?;
    let jwks = Jwks::parse(&jwks_bytes)?;
    Ok(FetchedIssuer {
        trusted: TrustedIssuer {
            issuer: d.issuer,
            jwks,
        },
        jwks_bytes,
    })
}

/// Fetches the DID document of a `did:web` DID, as bytes (kept verbatim as the
/// evidence). Plain http only to a loopback host and only if allowed.
pub async fn fetch_did_document(
    did: &str,
    allow_loopback_http: bool,
) -> Result<Vec<u8>, ClientError> {
    let parsed = DidWeb::parse(did)?;
    let url = parsed.document_url(allow_loopback_http && parsed.is_loopback());
    get(&url, MAX_DOCUMENT_BYTES, allow_loopback_http).await
}

/// Fetches a `did:plc` DID's operation log from a PLC directory
/// (`<directory>/<did>/log`, ATT-19), as bytes, to be kept in the evidence
/// ([`clientful_attest::plc::evidence`]). `directory` is `None` for
/// [`clientful_attest::plc::DEFAULT_DIRECTORY`]; plain http only to a loopback
/// directory and only if allowed.
pub async fn fetch_plc_log(
    did: &str,
    directory: Option<&str>,
    allow_loopback_http: bool,
) -> Result<Vec<u8>, ClientError> {
    let did = clientful_attest::plc::parse_did(did)?;
    let url = clientful_attest::plc::log_url(
        directory.unwrap_or(clientful_attest::plc::DEFAULT_DIRECTORY),
        did,
    );
    get(
        &url,
        clientful_attest::plc::MAX_EVIDENCE_BYTES,
        allow_loopback_http,
    )
    .await
}
