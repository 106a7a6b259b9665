//! The CLI's cache of OpenID issuers' keys (spec §14.5: "a verifier MAY cache
//! it and verify offline from the cache"). Every time the CLI fetches an
//! issuer's discovery document and JWKS it keeps the JWKS under the home folder
//! (`attest/issuers/<id>.json`, one file per issuer, written atomically), so that
//! `space attestations --offline` verifies OpenID attestations without the
//! network, and an issuer that cannot be reached falls back to its cached keys
//! with a notice. A cached JWKS is checked exactly like a fetched one
//! (`Jwks::parse`: its limits, ATT-LIM-4, and key rules) each time it is read;
//! a cache file that does not parse is an error naming the file, never a silent
//! miss.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clientful::ClientError;
use clientful::attest_fetch::FetchedIssuer;
use clientful_attest::jwt::{Jwks, MAX_JWKS_BYTES};
use clientful_attest::oidc::TrustedIssuer;
use serde::{Deserialize, Serialize};

/// One cached issuer, as stored.
#[derive(Serialize, Deserialize)]
struct Entry {
    /// The issuer URL (the file name is a hash of it; this is checked on read).
    issuer: String,
    /// When the JWKS was fetched, Unix milliseconds.
    fetched_at_ms: u64,
    /// The JWKS document as fetched (UTF-8 JSON).
    jwks: String,
}

/// The issuer's keys in use, and where they came from.
pub struct Keys {
    /// Ready for a `VerifierContext`.
    pub trusted: TrustedIssuer,
    /// `None` if fetched now; the fetch time of the cached copy otherwise.
    pub cached_at_ms: Option<u64>,
}

/// The issuers' key cache of one CLI home.
pub struct JwksCache {
    dir: PathBuf,
}

impl JwksCache {
    /// The cache under `home`.
    pub fn new(home: &Path) -> Self {
        JwksCache {
            dir: home.join("attest").join("issuers"),
        }
    }

    fn path(&self, issuer: &str) -> PathBuf {
        let id = clientful_core::suite::sha256(issuer.as_bytes());
        self.dir.join(format!(
            "{}.json",
            hex::encode(id.get(..16).unwrap_or_default())
        ))
    }

    /// Keeps what was just fetched.
    pub fn store(&self, fetched: &FetchedIssuer, now_ms: u64) -> Result<()> {
        let jwks = String::from_utf8(fetched.jwks_bytes.clone())
            .context("the issuer's JWKS is not UTF-8")?;
        let entry = Entry {
            issuer: fetched.trusted.issuer.clone(),
            fetched_at_ms: now_ms,
            jwks,
        };
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let path = self.path(&entry.issuer);
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)
            .with_context(|| format!("writing in {}", self.dir.display()))?;
        serde_json::to_writer_pretty(&mut tmp, &entry)?;
        tmp.persist(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// The cached keys of `issuer`, if any.
    pub fn load(&self, issuer: &str) -> Result<Option<Keys>> {
        let path = self.path(issuer);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        // The entry holds the JWKS and a few short fields.
        if bytes.len() > MAX_JWKS_BYTES * 2 + 4096 {
            bail!("cached issuer keys {} are too large", path.display());
        }
        let entry: Entry = serde_json::from_slice(&bytes)
            .with_context(|| format!("cached issuer keys {} do not parse", path.display()))?;
        if entry.issuer != issuer {
            bail!(
                "cached issuer keys {} are for {:?}, not {issuer:?}",
                path.display(),
                entry.issuer
            );
        }
        let jwks = Jwks::parse(entry.jwks.as_bytes())
            .map_err(ClientError::from)
            .with_context(|| format!("cached issuer keys {}", path.display()))?;
        Ok(Some(Keys {
            trusted: TrustedIssuer {
                issuer: entry.issuer,
                jwks,
            },
            cached_at_ms: Some(entry.fetched_at_ms),
        }))
    }

    /// The keys to verify with: `fetched` (kept in the cache) when the fetch
    /// worked; otherwise the cached copy, if there is one, else the fetch error.
    /// With `offline`, the cache only (no fetch is attempted by the caller).
    pub fn resolve(
        &self,
        issuer: &str,
        fetched: Option<Result<FetchedIssuer, ClientError>>,
        now_ms: u64,
    ) -> Result<Keys> {
        match fetched {
            Some(Ok(f)) => {
                self.store(&f, now_ms)?;
                Ok(Keys {
                    trusted: f.trusted,
                    cached_at_ms: None,
                })
            }
            Some(Err(fetch_error)) => match self.load(issuer)? {
                Some(keys) => Ok(keys),
                None => Err(anyhow::Error::from(fetch_error).context(format!(
                    "fetching the keys of issuer {issuer} (none cached)"
                ))),
            },
            None => self.load(issuer)?.with_context(|| {
                format!("no cached keys for issuer {issuer}: run once without --offline")
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","alg":"EdDSA","use":"sig","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    fn fetched(issuer: &str) -> FetchedIssuer {
        FetchedIssuer {
            trusted: TrustedIssuer {
                issuer: issuer.into(),
                jwks: Jwks::parse(JWKS.as_bytes()).expect("test JWKS"),
            },
            jwks_bytes: JWKS.as_bytes().to_vec(),
        }
    }

    fn unreachable(issuer: &str) -> ClientError {
        ClientError::Fetch {
            url: format!("{issuer}/.well-known/openid-configuration"),
            reason: "connection refused".into(),
        }
    }

    #[test]
    fn a_fetch_is_kept_and_used_offline_and_when_the_issuer_is_unreachable() {
        let home = tempfile::tempdir().expect("tempdir");
        let cache = JwksCache::new(home.path());
        let iss = "https://issuer.example";
        // Offline with nothing cached: a clear error, no keys.
        let err = cache.resolve(iss, None, 1).err().expect("nothing cached");
        assert!(err.to_string().contains("no cached keys"), "{err}");
        // Unreachable with nothing cached: the fetch error.
        let err = cache
            .resolve(iss, Some(Err(unreachable(iss))), 1)
            .err()
            .expect("nothing cached");
        assert!(format!("{err:#}").contains("connection refused"), "{err:#}");
        // Fetched: used as is, and kept.
        let k = cache
            .resolve(iss, Some(Ok(fetched(iss))), 1_000)
            .expect("fetched");
        assert_eq!(k.cached_at_ms, None);
        // Offline: the cached copy, with its time.
        let k = cache.resolve(iss, None, 2_000).expect("cached");
        assert_eq!(k.cached_at_ms, Some(1_000));
        assert_eq!(k.trusted.issuer, iss);
        assert_eq!(
            format!("{:?}", k.trusted.jwks),
            format!("{:?}", fetched(iss).trusted.jwks)
        );
        // Unreachable: falls back to the cache.
        let k = cache
            .resolve(iss, Some(Err(unreachable(iss))), 3_000)
            .expect("fallback");
        assert_eq!(k.cached_at_ms, Some(1_000));
        // Another issuer shares nothing.
        assert!(cache.resolve("https://other.example", None, 1).is_err());
    }

    #[test]
    fn a_damaged_or_misplaced_cache_file_is_an_error_not_a_miss() {
        let home = tempfile::tempdir().expect("tempdir");
        let cache = JwksCache::new(home.path());
        let iss = "https://issuer.example";
        cache.store(&fetched(iss), 5).expect("store");
        let path = cache.path(iss);
        // A JWKS that breaks the JWKS rules is refused on read, like a fetched one.
        let bad = Entry {
            issuer: iss.into(),
            fetched_at_ms: 5,
            jwks: r#"{"keys":"none"}"#.into(),
        };
        std::fs::write(&path, serde_json::to_vec(&bad).expect("json")).expect("write");
        assert!(cache.load(iss).is_err());
        // A file naming another issuer (moved by hand) is refused.
        let moved = Entry {
            issuer: "https://evil.example".into(),
            fetched_at_ms: 5,
            jwks: JWKS.into(),
        };
        std::fs::write(&path, serde_json::to_vec(&moved).expect("json")).expect("write");
        let err = cache.load(iss).err().expect("misplaced");
        assert!(err.to_string().contains("evil.example"), "{err}");
        // Not JSON.
        std::fs::write(&path, b"{").expect("write");
        assert!(cache.load(iss).is_err());
    }
}
