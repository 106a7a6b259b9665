//! The broker's QUIC key pin (BRK-20): the SHA-256 of the DER encoding of the
//! end-entity certificate's `SubjectPublicKeyInfo` (RFC 5280 §4.1.2.7), outer
//! `SEQUENCE` tag and length included, as HPKP and Chrome's SPKI pins hash it.
//! A certificate re-issued over the same key keeps the pin; a new key changes it.
//!
//! The certificate is parsed by `rustls-webpki`, the X.509 parser rustls already
//! uses; a malformed certificate is a typed [`PinError`], never a panic.

use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};

/// Length of a pin in bytes.
pub const PIN_LEN: usize = 32;

/// Why a pin could not be computed or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// The bytes are not a DER X.509 v3 certificate.
    #[error("not a valid X.509 certificate: {0}")]
    Certificate(#[from] webpki::Error),
    /// A pin given as text is not 64 hex digits.
    #[error("a key pin is 64 hex digits (SHA-256 of the SubjectPublicKeyInfo)")]
    Format,
}

/// The DER `SubjectPublicKeyInfo` of a DER certificate.
pub fn spki_der(cert_der: &[u8]) -> Result<Vec<u8>, PinError> {
    let der = CertificateDer::from(cert_der);
    let cert = webpki::EndEntityCert::try_from(&der)?;
    Ok(cert.subject_public_key_info().as_ref().to_vec())
}

/// The pin of a DER certificate: SHA-256 of its `SubjectPublicKeyInfo` DER.
pub fn spki_sha256(cert_der: &[u8]) -> Result<[u8; PIN_LEN], PinError> {
    Ok(Sha256::digest(spki_der(cert_der)?).into())
}

/// Reads a pin printed as 64 hex digits (either case).
pub fn parse_pin(text: &str) -> Result<[u8; PIN_LEN], PinError> {
    let bytes = hex::decode(text.trim()).map_err(|_| PinError::Format)?;
    bytes.try_into().map_err(|_| PinError::Format)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData;

    fn cert_for(key: &rcgen::KeyPair, name: &str) -> Vec<u8> {
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
        params.self_signed(key).expect("self-signed").der().to_vec()
    }

    #[test]
    fn same_key_same_pin_new_key_new_pin() {
        let key = rcgen::KeyPair::generate().expect("key");
        let first = cert_for(&key, "localhost");
        let reissued = cert_for(&key, "broker.example");
        assert_ne!(first, reissued, "a different certificate");
        assert_eq!(
            spki_sha256(&first).unwrap(),
            spki_sha256(&reissued).unwrap()
        );
        // The pin is the hash of the key's SPKI DER exactly.
        let spki = spki_der(&first).unwrap();
        assert_eq!(spki[0], 0x30, "outer SEQUENCE included");
        assert_eq!(spki, key.subject_public_key_info());
        let other = rcgen::KeyPair::generate().expect("key");
        assert_ne!(
            spki_sha256(&first).unwrap(),
            spki_sha256(&cert_for(&other, "localhost")).unwrap()
        );
        // Not the whole-certificate hash any more.
        let whole: [u8; 32] = Sha256::digest(&first).into();
        assert_ne!(spki_sha256(&first).unwrap(), whole);
    }

    #[test]
    fn malformed_certificates_are_errors() {
        let key = rcgen::KeyPair::generate().expect("key");
        let good = cert_for(&key, "localhost");
        assert!(spki_sha256(&[]).is_err());
        assert!(spki_sha256(b"not a certificate").is_err());
        assert!(spki_sha256(&good[..good.len() / 2]).is_err());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(spki_sha256(&trailing).is_err());
    }

    #[test]
    fn pins_parse_from_hex() {
        let pin = [0xab; 32];
        assert_eq!(parse_pin(&hex::encode(pin)).unwrap(), pin);
        assert_eq!(parse_pin(&hex::encode_upper(pin)).unwrap(), pin);
        assert!(matches!(parse_pin("abcd"), Err(PinError::Format)));
        assert!(matches!(parse_pin(&"zz".repeat(32)), Err(PinError::Format)));
    }

    proptest::proptest! {
        /// Any bytes, and any corruption of a real certificate: an answer, no panic.
        #[test]
        fn never_panics(
            junk in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            at in 0usize..4096,
            byte in proptest::num::u8::ANY,
        ) {
            let _ = spki_sha256(&junk);
            let key = rcgen::KeyPair::generate().expect("key");
            let mut c = cert_for(&key, "localhost");
            let i = at % c.len();
            c[i] ^= byte | 1;
            let _ = spki_sha256(&c);
        }
    }
}
