//! The broker's TLS identity for QUIC: a certificate and key loaded from PEM files,
//! or a self-signed one generated (and written there, so a restart keeps the pin).
//! Clients pin the SHA-256 of the certificate's DER bytes (BRK-20).

use std::path::Path;

use anyhow::{Context, Result};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// A certificate chain, its key and the pin of the end-entity certificate.
pub struct Identity {
    /// Chain, end-entity first.
    pub certs: Vec<CertificateDer<'static>>,
    /// Private key.
    pub key: PrivateKeyDer<'static>,
    /// SHA-256 of the end-entity certificate DER.
    pub pin: [u8; 32],
}

/// Loads `cert`/`key` if both exist; otherwise generates a self-signed certificate
/// for `localhost` and, when paths are given, writes it there.
pub fn load_or_generate(cert: Option<&Path>, key: Option<&Path>) -> Result<Identity> {
    if let (Some(c), Some(k)) = (cert, key)
        && c.exists()
        && k.exists()
    {
        let certs: Vec<CertificateDer<'static>> =
            rustls_pemfile::certs(&mut std::io::BufReader::new(std::fs::File::open(c)?))
                .collect::<Result<_, _>>()
                .context("reading certificate PEM")?;
        let key =
            rustls_pemfile::private_key(&mut std::io::BufReader::new(std::fs::File::open(k)?))
                .context("reading key PEM")?
                .context("no private key in PEM")?;
        let first = certs.first().context("no certificate in PEM")?;
        let pin = Sha256::digest(first.as_ref()).into();
        return Ok(Identity { certs, key, pin });
    }
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    if let (Some(c), Some(k)) = (cert, key) {
        write_atomic(c, ck.cert.pem().as_bytes(), 0o644)?;
        write_atomic(k, ck.signing_key.serialize_pem().as_bytes(), 0o600)?;
    }
    let der = ck.cert.der().to_vec();
    let pin = Sha256::digest(&der).into();
    Ok(Identity {
        certs: vec![CertificateDer::from(der)],
        key: PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into()),
        pin,
    })
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
