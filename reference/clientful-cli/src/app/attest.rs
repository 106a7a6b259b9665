//! `identity attest …` and `space attestations`: attestations (spec §14) binding
//! your user key to an account you already have, kept in a space, verified by
//! every member on read. This shell does the IO (the issuer's discovery and JWKS,
//! the DID document, reading a wallet's signed Sign-In with Ethereum message); the
//! checks are `clientful-attest`'s.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use clientful::ClientError;
use clientful::attest_fetch::{fetch_did_document, fetch_issuer, fetch_plc_log};
use clientful_attest::oidc::{OidcContext, peek_issuer, subject_for};
use clientful_attest::siwe::{self, SiwePolicy};
use clientful_attest::{Account, Draft, Kind, VerifierContext};

use super::jwks_cache::JwksCache;
use super::{client, open_space, print_sync, rt};
use crate::settings::Settings;

/// `identity attest …`
#[derive(Subcommand)]
pub enum AttestAction {
    /// Print a fresh salt and what commits to your user key: the OIDC nonce to
    /// ask your OpenID provider for (then `attest oidc`), and the SIWE nonce and
    /// resource to put in a Sign-In with Ethereum message your wallet signs (then
    /// `attest siwe`), each with the same salt.
    Nonce,
    /// Attest an Ethereum account: a Sign-In with Ethereum message (EIP-4361)
    /// whose nonce and resource come from `attest nonce`, signed by the wallet
    /// (EIP-191 personal_sign); checked before it is published.
    Siwe {
        /// A file holding the message exactly as the wallet signed it.
        #[arg(long)]
        message: PathBuf,
        /// The wallet's 65-byte signature, hex (0x prefix allowed).
        #[arg(long)]
        signature: String,
        /// The salt `attest nonce` printed (32 hex digits).
        #[arg(long)]
        salt: String,
        /// The domain the message must name (your app's).
        #[arg(long)]
        domain: String,
        /// The chain id the message must name.
        #[arg(long, default_value_t = 1)]
        chain: u64,
    },
    /// Attest an OpenID Connect id_token whose nonce commits to your user key
    /// (from `attest nonce`), in the space: the issuer's keys are fetched and the
    /// token checked before it is published.
    Oidc {
        /// A file holding the id_token (compact JWS).
        #[arg(long)]
        id_token: PathBuf,
        /// The issuer URL (must equal the token's `iss`).
        #[arg(long)]
        issuer: String,
        /// The salt `attest nonce` printed (32 hex digits).
        #[arg(long)]
        salt: String,
        /// The audience (client id) to check; default: the token's own.
        #[arg(long)]
        audience: Option<String>,
        /// Allow plain http to a loopback issuer (localhost, 127.0.0.1): tests.
        #[arg(long)]
        allow_http_loopback: bool,
    },
    /// Attest a DID. did:web: its document lists your user key (add the line
    /// `attest did --show-key` prints to its verificationMethod first).
    /// did:plc: a key the DID lists (`--plc-key`, a verificationMethods id)
    /// signs the statement `--show-statement` prints for the salt of
    /// `attest nonce`; the DID's log is fetched from the PLC directory.
    Did {
        /// The DID (did:web:example.com, did:web:example.com:users:you or
        /// did:plc:<24 base32 characters>).
        #[arg(long)]
        did: String,
        /// Print the verification method to add to the DID document, and stop.
        #[arg(long)]
        show_key: bool,
        /// did:plc: the salt `attest nonce` printed (32 hex digits).
        #[arg(long)]
        salt: Option<String>,
        /// did:plc: the id of the verification method whose key signs the
        /// statement (e.g. `atproto`).
        #[arg(long, default_value = "atproto")]
        plc_key: String,
        /// did:plc: print the statement that key signs, and stop.
        #[arg(long)]
        show_statement: bool,
        /// did:plc: the statement's signature (unpadded base64url of the 64-byte
        /// low-S ECDSA r||s, as atproto keys sign). It may start with `-`.
        #[arg(long, allow_hyphen_values = true)]
        plc_sig: Option<String>,
        /// did:plc: the PLC directory (default https://plc.directory).
        #[arg(long)]
        plc_directory: Option<String>,
        /// Allow plain http to a loopback host (localhost, 127.0.0.1): tests.
        #[arg(long)]
        allow_http_loopback: bool,
    },
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn parse_salt(hex_salt: &str) -> Result<[u8; 16]> {
    let b = hex::decode(hex_salt.trim()).context("--salt is not hex")?;
    b.try_into()
        .map_err(|_| anyhow::anyhow!("--salt must be 16 bytes (32 hex digits)"))
}

/// Runs `identity attest …`.
pub fn attest(s: &Settings, action: AttestAction, sel: Option<String>) -> Result<ExitCode> {
    let c = client(s)?;
    if let AttestAction::Nonce = action {
        let n = c.attestation_nonce()?;
        println!("salt {}", hex::encode(n.salt));
        println!("oidc-nonce {}", n.oidc_nonce);
        println!("siwe-nonce {}", hex::encode(n.binding));
        println!(
            "siwe-resource {}",
            siwe::user_key_resource(&c.profile().user_key())
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let AttestAction::Did {
        did,
        show_key: true,
        ..
    } = &action
    {
        println!(
            "{}",
            serde_json::json!({
                "id": format!("{did}#clientful"),
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": clientful_attest::did::multibase_key(&c.profile().user_key()),
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let AttestAction::Did {
        did,
        show_statement: true,
        salt,
        plc_key,
        ..
    } = &action
    {
        let salt = parse_salt(salt.as_deref().context("--show-statement needs --salt")?)?;
        let did = clientful_attest::plc::parse_did(did).map_err(ClientError::from)?;
        let binding =
            clientful_attest::binding(&c.profile().user_key(), &salt).map_err(ClientError::from)?;
        print!(
            "{}",
            clientful_attest::plc::statement(did, plc_key, &binding)
        );
        return Ok(ExitCode::SUCCESS);
    }
    rt()?.block_on(async {
        let signed = match action {
            AttestAction::Oidc {
                id_token,
                issuer,
                salt,
                audience,
                allow_http_loopback,
            } => {
                let token = std::fs::read_to_string(&id_token)
                    .with_context(|| format!("reading {}", id_token.display()))?;
                let token = token.trim().as_bytes().to_vec();
                let (iss, sub) = peek_issuer(&token).map_err(ClientError::from)?;
                if iss != issuer {
                    bail!("the token's issuer is {iss:?}, not {issuer:?}");
                }
                let fetched = fetch_issuer(&issuer, allow_http_loopback).await?;
                // Kept for `space attestations --offline` (spec §14.5: a verifier may cache it).
                JwksCache::new(s.home()).store(&fetched, now_ms())?;
                let audience = match audience {
                    Some(a) => a,
                    None => token_audience(&token)?,
                };
                let signed = c.sign_attestation(&Draft {
                    kind: Kind::OidcIdToken,
                    evidence: &token,
                    subject: &subject_for(&iss, &sub),
                    salt: parse_salt(&salt)?,
                    created_at_ms: now_ms(),
                })?;
                let mut ctx = VerifierContext::new(now_ms());
                ctx.oidc = OidcContext {
                    issuers: vec![fetched.trusted],
                    audiences: vec![audience],
                };
                clientful_attest::verify(&signed, &ctx).map_err(ClientError::from)?;
                signed
            }
            AttestAction::Did {
                did,
                allow_http_loopback,
                salt,
                plc_key,
                plc_sig,
                plc_directory,
                ..
            } if did.starts_with("did:plc:") => {
                let salt = parse_salt(salt.as_deref().context("did:plc needs --salt")?)?;
                let sig = plc_sig.context("did:plc needs --plc-sig")?;
                let log =
                    fetch_plc_log(&did, plc_directory.as_deref(), allow_http_loopback).await?;
                let evidence = clientful_attest::plc::evidence(&log, &plc_key, sig.trim())
                    .map_err(ClientError::from)?;
                let binding = clientful_attest::binding(&c.profile().user_key(), &salt)
                    .map_err(ClientError::from)?;
                clientful_attest::plc::verify_evidence(&did, &evidence, &binding)
                    .map_err(ClientError::from)?;
                let signed = c.sign_attestation(&Draft {
                    kind: Kind::DidDocument,
                    evidence: &evidence,
                    subject: &did,
                    salt,
                    created_at_ms: now_ms(),
                })?;
                clientful_attest::verify(&signed, &VerifierContext::new(now_ms()))
                    .map_err(ClientError::from)?;
                signed
            }
            AttestAction::Did {
                did,
                allow_http_loopback,
                ..
            } => {
                let doc = fetch_did_document(&did, allow_http_loopback).await?;
                clientful_attest::did::verify_document(&did, &doc, &c.profile().user_key())
                    .map_err(ClientError::from)?;
                c.sign_attestation(&Draft {
                    kind: Kind::DidDocument,
                    evidence: &doc,
                    subject: &did,
                    salt: clientful_attest::record::fresh_salt(&mut rand_os()?),
                    created_at_ms: now_ms(),
                })?
            }
            AttestAction::Siwe {
                message,
                signature,
                salt,
                domain,
                chain,
            } => {
                let message = std::fs::read(&message)
                    .with_context(|| format!("reading {}", message.display()))?;
                let sig = hex::decode(signature.trim().trim_start_matches("0x"))
                    .context("--signature is not hex")?;
                let sig: [u8; 65] = sig
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("--signature must be 65 bytes"))?;
                let evidence = siwe::evidence(&message, &sig);
                let salt = parse_salt(&salt)?;
                let created_at_ms = now_ms();
                let policy = SiwePolicy {
                    domains: vec![domain],
                    chain_ids: vec![chain],
                };
                let shown = siwe::verify(
                    &evidence,
                    &c.profile().user_key(),
                    &salt,
                    created_at_ms,
                    &policy,
                )
                .map_err(|e| ClientError::from(clientful_attest::AttestError::from(e)))?;
                let signed = c.sign_attestation(&Draft {
                    kind: Kind::Siwe,
                    evidence: &evidence,
                    subject: &shown.subject,
                    salt,
                    created_at_ms,
                })?;
                let mut ctx = VerifierContext::new(now_ms());
                ctx.siwe = policy;
                clientful_attest::verify(&signed, &ctx).map_err(ClientError::from)?;
                signed
            }
            AttestAction::Nonce => return Ok(ExitCode::SUCCESS),
        };
        let mut sp = open_space(s, &c, sel).await?;
        sp.attest(&signed)?;
        print_sync(&sp.sync().await?);
        println!(
            "attested in space {}",
            hex::encode(sp.space_id().get(..6).unwrap_or_default())
        );
        Ok(ExitCode::SUCCESS)
    })
}

fn rand_os() -> Result<rand_chacha::ChaCha20Rng> {
    use rand_core::SeedableRng as _;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    Ok(rand_chacha::ChaCha20Rng::from_seed(seed))
}

fn token_audience(token: &[u8]) -> Result<String> {
    let jws = clientful_attest::jwt::Jws::parse(token).map_err(ClientError::from)?;
    let v: serde_json::Value = serde_json::from_slice(&jws.payload)?;
    match v.get("aud") {
        Some(serde_json::Value::String(a)) => Ok(a.clone()),
        Some(serde_json::Value::Array(a)) if a.len() == 1 => Ok(a
            .first()
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()),
        _ => bail!("the token has several audiences: name one with --audience"),
    }
}

/// What `space attestations` trusts.
pub struct Trust {
    /// OpenID issuer URLs whose keys are fetched now.
    pub issuers: Vec<String>,
    /// Accepted OIDC audiences.
    pub audiences: Vec<String>,
    /// Accepted SIWE domains and chains.
    pub siwe: SiwePolicy,
    /// Accepted WebAuthn origins and relying parties (user verification required).
    pub webauthn: clientful_attest::webauthn::WebAuthnPolicy,
    /// Allow plain http to a loopback issuer.
    pub allow_http_loopback: bool,
    /// Use the cached issuer keys only.
    pub offline: bool,
}

/// Runs `space attestations`: sync, fetch the keys of each `--issuer` (or take
/// them from the cache: `--offline`, or the issuer unreachable), and list every
/// attestation of the space with its verdict.
pub fn list(s: &Settings, sel: Option<String>, trust: Trust) -> Result<ExitCode> {
    let c = client(s)?;
    rt()?.block_on(async {
        let mut sp = open_space(s, &c, sel).await?;
        print_sync(&sp.sync().await?);
        let mut ctx = VerifierContext::new(now_ms());
        let cache = JwksCache::new(s.home());
        for i in &trust.issuers {
            let fetched = if trust.offline {
                None
            } else {
                Some(fetch_issuer(i, trust.allow_http_loopback).await)
            };
            let unreachable = match &fetched {
                Some(Err(e)) => Some(e.to_string()),
                _ => None,
            };
            let keys = cache.resolve(i, fetched, now_ms())?;
            if let Some(at) = keys.cached_at_ms {
                let age_s = now_ms().saturating_sub(at) / 1000;
                match unreachable {
                    Some(why) => eprintln!(
                        "issuer {i} unreachable ({why}): using its keys cached {age_s} s ago"
                    ),
                    None => eprintln!("issuer {i}: using its keys cached {age_s} s ago"),
                }
            }
            ctx.oidc.issuers.push(keys.trusted);
        }
        ctx.oidc.audiences = trust.audiences;
        ctx.siwe = trust.siwe;
        ctx.webauthn = trust.webauthn;
        let all = sp.attestations(&ctx);
        if all.is_empty() {
            println!("no attestations");
        }
        for a in all {
            let who = a
                .record
                .as_ref()
                .map(|r| hex::encode(r.user_key.get(..6).unwrap_or_default()))
                .unwrap_or_else(|| "?".into());
            let what = a
                .record
                .as_ref()
                .map(|r| format!("{}  {}", r.kind.name(), r.subject))
                .unwrap_or_else(|| "(undecodable record)".into());
            match &a.verdict {
                Ok(Account::Oidc(o)) => {
                    println!("user {who}  OIDC  {}|{}  verified", o.issuer, o.subject);
                }
                Ok(Account::Did(d)) => println!("user {who}  DID  {}  verified", d.did),
                Ok(Account::Siwe(v)) => println!("user {who}  SIWE  {}  verified", v.subject),
                Ok(Account::WebAuthn(v)) => {
                    println!("user {who}  WEBAUTHN  {}  verified", v.subject);
                }
                Ok(_) => println!("user {who}  {what}  verified"),
                Err(e) => println!(
                    "user {who}  {what}  REFUSED {}: {e}",
                    clientful_core::error::class_name(e.class())
                ),
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
