//! TLS of the client carriers: how a broker's certificate is trusted for
//! `wss://` (BRK-1 over TLS) and the key-pin verifier shared with QUIC (BRK-20),
//! so one pin means the same thing on both transports: the SHA-256 of the broker
//! certificate's SubjectPublicKeyInfo, as the broker prints it (`spki-sha256=`).
//!
//! TLS sits below the broker protocol: it protects metadata and keeps an active
//! relay out, while envelopes stay end-to-end sealed and signed whatever it does.
//!
//! Failures of the handshake are classified into [`TlsError`] (unknown issuer,
//! pin mismatch, name mismatch, ...), so callers can tell them apart without
//! parsing messages.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// How a `wss://` client decides to trust the broker's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TlsTrust {
    /// The platform's certificate store (read by `rustls-native-certs`: on Linux
    /// the system bundle, where an operator's private CA is installed too). When
    /// the platform store yields no certificate (a minimal container), the
    /// Mozilla roots bundled in the binary (`webpki-root-certs`) are used.
    #[default]
    System,
    /// Only the Mozilla roots bundled in the binary (`webpki-root-certs`).
    Bundled,
    /// Only these CA certificates (DER): a private CA, or a broker's self-signed
    /// certificate. The chain and the host name are checked as for public roots.
    Roots(Vec<CertificateDer<'static>>),
    /// The SHA-256 of the broker certificate's SubjectPublicKeyInfo DER (BRK-20),
    /// as for QUIC: no CA and no name are checked, only that the broker proves it
    /// holds the pinned key (TLS 1.3).
    Pin([u8; 32]),
}

/// Why a TLS connection to a broker failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate chain does not lead to a trusted root.
    #[error("the broker's certificate is not issued by a trusted authority")]
    UnknownIssuer,
    /// The broker's key is not the pinned one.
    #[error("the broker's key does not match the pin (expected spki-sha256 {expected})")]
    PinMismatch {
        /// The pin, 64 lowercase hex digits.
        expected: String,
    },
    /// The certificate does not name the host connected to.
    #[error("the broker's certificate is not valid for `{host}`")]
    HostnameMismatch {
        /// The host of the URL.
        host: String,
    },
    /// The certificate is expired or not valid yet.
    #[error("the broker's certificate is expired or not yet valid")]
    NotValidNow,
    /// The certificate was rejected for another reason.
    #[error("the broker's certificate was rejected: {0:?}")]
    BadCertificate(CertificateError),
    /// The handshake failed for a reason other than the certificate (no common
    /// protocol version or cipher, an alert from the broker, not TLS at all).
    #[error("TLS handshake failed: {0}")]
    Handshake(rustls::Error),
    /// The connection ended or failed during the handshake.
    #[error("connection lost during the TLS handshake: {0}")]
    Io(std::io::Error),
    /// The broker did not complete the handshake in time.
    #[error("the TLS handshake did not complete within {0:?}")]
    Timeout(std::time::Duration),
    /// The URL's host is not a valid DNS name or IP address.
    #[error("`{host}` is not a valid TLS server name")]
    InvalidServerName {
        /// The host of the URL.
        host: String,
    },
    /// No trusted root certificate could be loaded.
    #[error("no trusted root certificate is available")]
    NoRoots,
    /// The TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
}

/// The crypto provider of every client config here (ring, as quinn's).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The roots of `trust` (not for [`TlsTrust::Pin`]).
fn roots(trust: &TlsTrust) -> Result<rustls::RootCertStore, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    let add_bundled = |store: &mut rustls::RootCertStore| {
        store.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
    };
    match trust {
        TlsTrust::System => {
            // Certificates the platform store holds but that do not parse are
            // skipped, as are unreadable files (`errors`): the others still count.
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                add_bundled(&mut store);
            }
        }
        TlsTrust::Bundled => add_bundled(&mut store),
        TlsTrust::Roots(certs) => {
            store.add_parsable_certificates(certs.iter().cloned());
        }
        TlsTrust::Pin(_) => {}
    }
    if store.is_empty() {
        return Err(TlsError::NoRoots);
    }
    Ok(store)
}

/// A rustls client config for `wss://` that trusts as `trust` says. With a pin
/// it speaks TLS 1.3 only (the pin verifier checks TLS 1.3 signatures); with
/// roots, the safe default versions rustls is built with (TLS 1.3 in this workspace).
pub fn client_config(trust: &TlsTrust) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let config = match trust {
        TlsTrust::Pin(pin) => rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsError::Config)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned::new(*pin, provider)))
            .with_no_client_auth(),
        _ => rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_root_certificates(roots(trust)?)
            .with_no_client_auth(),
    };
    Ok(config)
}

/// The TLS server name of a URL host (`[v6]` brackets removed).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(bare.to_owned()).map_err(|_| TlsError::InvalidServerName {
        host: host.to_owned(),
    })
}

/// Classifies an error of the TLS handshake (tokio-rustls reports rustls errors
/// inside `std::io::Error`).
pub fn classify(err: std::io::Error, trust: &TlsTrust, host: &str) -> TlsError {
    let Some(tls) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned()
    else {
        return TlsError::Io(err);
    };
    match tls {
        rustls::Error::InvalidCertificate(cert) => match (cert, trust) {
            (CertificateError::ApplicationVerificationFailure, TlsTrust::Pin(pin)) => {
                TlsError::PinMismatch {
                    expected: hex::encode(pin),
                }
            }
            (CertificateError::UnknownIssuer, _) => TlsError::UnknownIssuer,
            (
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
                _,
            ) => TlsError::HostnameMismatch {
                host: host.to_owned(),
            },
            (
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. },
                _,
            ) => TlsError::NotValidNow,
            (other, _) => TlsError::BadCertificate(other),
        },
        other => TlsError::Handshake(other),
    }
}

/// Accepts exactly a server whose end-entity certificate's SubjectPublicKeyInfo
/// hashes to the pin (BRK-20), and checks that the server signed the TLS 1.3
/// handshake with that key.
#[derive(Debug)]
pub(crate) struct Pinned {
    pin: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl Pinned {
    pub(crate) fn new(pin: [u8; 32], provider: Arc<rustls::crypto::CryptoProvider>) -> Self {
        Pinned { pin, provider }
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // A certificate that does not parse cannot match; the handshake signature
        // (verify_tls13_signature) then proves the broker holds the pinned key.
        let got = clientful_broker_proto::pin::spki_sha256(end_entity.as_ref())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not used".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rustls_io(e: rustls::Error) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn certificate_failures_are_classified() {
        let pin = TlsTrust::Pin([7; 32]);
        let roots = TlsTrust::Roots(Vec::new());
        let bad = |c| rustls_io(rustls::Error::InvalidCertificate(c));
        assert!(matches!(
            classify(bad(CertificateError::ApplicationVerificationFailure), &pin, "h"),
            TlsError::PinMismatch { expected } if expected == hex::encode([7u8; 32])
        ));
        assert!(matches!(
            classify(bad(CertificateError::UnknownIssuer), &roots, "h"),
            TlsError::UnknownIssuer
        ));
        assert!(matches!(
            classify(bad(CertificateError::NotValidForName), &roots, "example.test"),
            TlsError::HostnameMismatch { host } if host == "example.test"
        ));
        assert!(matches!(
            classify(bad(CertificateError::Expired), &roots, "h"),
            TlsError::NotValidNow
        ));
        assert!(matches!(
            classify(
                rustls_io(rustls::Error::AlertReceived(
                    rustls::AlertDescription::HandshakeFailure
                )),
                &roots,
                "h"
            ),
            TlsError::Handshake(_)
        ));
        assert!(matches!(
            classify(std::io::ErrorKind::UnexpectedEof.into(), &roots, "h"),
            TlsError::Io(_)
        ));
    }

    #[test]
    fn server_names_and_empty_roots() {
        assert!(server_name("[::1]").is_ok());
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("broker.example").is_ok());
        assert!(matches!(
            server_name("bad host"),
            Err(TlsError::InvalidServerName { .. })
        ));
        assert!(matches!(
            client_config(&TlsTrust::Roots(Vec::new())),
            Err(TlsError::NoRoots)
        ));
        assert!(client_config(&TlsTrust::Bundled).is_ok());
        assert!(client_config(&TlsTrust::System).is_ok());
        assert!(client_config(&TlsTrust::Pin([0; 32])).is_ok());
    }
}
