//! The broker's TLS identities: for QUIC, a certificate and key loaded from PEM
//! files, or generated and written there, so a restart keeps the pin; for
//! `wss://` ([`load_pem`]), an operator's certificate and key, both required. Clients pin the
//! SHA-256 of the certificate's SubjectPublicKeyInfo (BRK-20, [`crate::pin`]), so
//! a certificate re-issued over the same key keeps the pin: with a key file and no
//! certificate file, a new self-signed certificate is made for the existing key.

use std::path::Path;

use anyhow::{Context, Result};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::pin;

/// A certificate chain, its key and the key pin of the end-entity certificate.
pub struct Identity {
    /// Chain, end-entity first.
    pub certs: Vec<CertificateDer<'static>>,
    /// Private key.
    pub key: PrivateKeyDer<'static>,
    /// SHA-256 of the end-entity certificate's SubjectPublicKeyInfo DER.
    pub pin: [u8; 32],
}

/// What [`load_or_generate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// Both files were read.
    Loaded,
    /// The key was read and a new self-signed certificate made for it.
    Reissued,
    /// A new key and certificate were made.
    Generated,
}

/// Loads `cert`/`key` if both exist. If only `key` exists, makes a new
/// self-signed certificate for `localhost` over that key (same pin) and writes it
/// to `cert`. Otherwise generates a key and certificate and, when paths are
/// given, writes them there.
pub fn load_or_generate(cert: Option<&Path>, key: Option<&Path>) -> Result<(Identity, Source)> {
    if let (Some(c), Some(k)) = (cert, key)
        && k.exists()
    {
        let key_pem = std::fs::read_to_string(k)
            .with_context(|| format!("reading key PEM {}", k.display()))?;
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .context("reading key PEM")?
            .context("no private key in PEM")?;
        if c.exists() {
            let certs: Vec<CertificateDer<'static>> =
                rustls_pemfile::certs(&mut std::io::BufReader::new(std::fs::File::open(c)?))
                    .collect::<Result<_, _>>()
                    .context("reading certificate PEM")?;
            let first = certs.first().context("no certificate in PEM")?;
            let pin = pin::spki_sha256(first.as_ref())
                .with_context(|| format!("certificate {}", c.display()))?;
            return Ok((Identity { certs, key, pin }, Source::Loaded));
        }
        let pair = rcgen::KeyPair::from_pem(&key_pem)
            .with_context(|| format!("key {} cannot sign a certificate", k.display()))?;
        let issued = self_signed(&pair)?;
        write_atomic(c, issued.pem().as_bytes(), 0o644)?;
        let cert_der = issued.der().to_vec();
        let pin = pin::spki_sha256(&cert_der)?;
        return Ok((
            Identity {
                certs: vec![CertificateDer::from(cert_der)],
                key,
                pin,
            },
            Source::Reissued,
        ));
    }
    let pair = rcgen::KeyPair::generate()?;
    let issued = self_signed(&pair)?;
    if let (Some(c), Some(k)) = (cert, key) {
        write_atomic(k, pair.serialize_pem().as_bytes(), 0o600)?;
        write_atomic(c, issued.pem().as_bytes(), 0o644)?;
    }
    let cert_der = issued.der().to_vec();
    let pin = pin::spki_sha256(&cert_der)?;
    Ok((
        Identity {
            certs: vec![CertificateDer::from(cert_der)],
            key: PrivateKeyDer::Pkcs8(pair.serialize_der().into()),
            pin,
        },
        Source::Generated,
    ))
}

/// Loads a certificate chain and its key from PEM files that must both exist
/// (the `wss://` identity: an operator's certificate, never generated here).
pub fn load_pem(cert: &Path, key: &Path) -> Result<Identity> {
    let key_pem =
        std::fs::read(key).with_context(|| format!("reading key PEM {}", key.display()))?;
    let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .with_context(|| format!("reading key PEM {}", key.display()))?
        .with_context(|| format!("no private key in {}", key.display()))?;
    let cert_pem = std::fs::read(cert)
        .with_context(|| format!("reading certificate PEM {}", cert.display()))?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading certificate PEM {}", cert.display()))?;
    let first = certs
        .first()
        .with_context(|| format!("no certificate in {}", cert.display()))?;
    let pin = pin::spki_sha256(first.as_ref())
        .with_context(|| format!("certificate {}", cert.display()))?;
    Ok(Identity {
        certs,
        key: key_der,
        pin,
    })
}

/// A self-signed certificate for `localhost` over `pair`.
fn self_signed(pair: &rcgen::KeyPair) -> Result<rcgen::Certificate> {
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
    Ok(params.self_signed(pair)?)
}

/// Writes `bytes` to a temporary file with `mode` (Unix permissions), syncs it and
/// renames it over `path`.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = options.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
