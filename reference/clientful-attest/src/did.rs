//! `did:web` DID document evidence (spec §14.6, ATT-10): the DID's form and the
//! URL its document is fetched from, the user key's `publicKeyMultibase`
//! (`"z" + base58btc(0xed 0x01 || key)`), and the offline check of a document as
//! fetched: a JSON object whose `id` is the DID and that lists the user key as a
//! verification method of type `Multikey` or `Ed25519VerificationKey2020`
//! controlled by the DID. A `did:plc` subject is handed to [`crate::plc`]. The
//! fetch itself is the shell's.

use serde::Deserialize;

use crate::error::AttestError;
use crate::record::Record;

/// Largest DID document accepted (ATT-LIM-5): 64 KiB.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// Largest DID accepted (ATT-LIM-5): 256 bytes.
pub const MAX_DID_BYTES: usize = 256;
/// Most verification methods looked at in one document (ATT-LIM-5).
pub const MAX_METHODS: usize = 64;

/// The verification-method types that may carry the user key (ATT-10).
pub const METHOD_TYPES: &[&str] = &["Multikey", "Ed25519VerificationKey2020"];

/// A parsed `did:web` DID (ATT-10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DidWeb {
    /// The DID as given.
    pub did: String,
    /// The host, with `:port` if the DID had `%3A`.
    pub host: String,
    /// The path segments after the host (empty: `/.well-known/did.json`).
    pub path: Vec<String>,
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':')
        && !h.starts_with(['.', '-', ':'])
        && h.matches(':').count() <= 1
        && h.rsplit_once(':')
            .is_none_or(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~'))
        && s != "."
        && s != ".."
}

impl DidWeb {
    /// Parses `did:web:<host>[%3A<port>][:<segment>]*` (the did:web method
    /// specification). Other methods are `UNSUPPORTED_VERSION`; a bad form is
    /// `MALFORMED`.
    pub fn parse(did: &str) -> Result<DidWeb, AttestError> {
        if did.len() > MAX_DID_BYTES {
            return Err(AttestError::limit("DID", MAX_DID_BYTES, did.len()));
        }
        let Some(rest) = did.strip_prefix("did:") else {
            return Err(AttestError::malformed("DID", "does not start with did:"));
        };
        let Some(id) = rest.strip_prefix("web:") else {
            let method = rest.split(':').next().unwrap_or_default();
            return Err(AttestError::unsupported("DID method", method));
        };
        let mut parts = id.split(':');
        let host = parts
            .next()
            .unwrap_or_default()
            .replace("%3A", ":")
            .replace("%3a", ":")
            .to_ascii_lowercase();
        if !valid_host(&host) {
            return Err(AttestError::malformed("did:web", "bad host"));
        }
        let path: Vec<String> = parts.map(str::to_string).collect();
        if !path.iter().all(|s| valid_segment(s)) {
            return Err(AttestError::malformed("did:web", "bad path segment"));
        }
        Ok(DidWeb {
            did: did.to_string(),
            host,
            path,
        })
    }

    /// Whether the host is the loopback name or address (`localhost`,
    /// `127.0.0.1`), where a shell may fetch over plain http when told to.
    pub fn is_loopback(&self) -> bool {
        let name = self.host.split(':').next().unwrap_or_default();
        name == "localhost" || name == "127.0.0.1"
    }

    /// The document's URL: `https://<host>/.well-known/did.json`, or
    /// `https://<host>/<path>/did.json`. With `plain_http` (loopback only, the
    /// caller checks) the scheme is `http`.
    pub fn document_url(&self, plain_http: bool) -> String {
        let scheme = if plain_http { "http" } else { "https" };
        if self.path.is_empty() {
            format!("{scheme}://{}/.well-known/did.json", self.host)
        } else {
            format!("{scheme}://{}/{}/did.json", self.host, self.path.join("/"))
        }
    }
}

const B58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

pub(crate) fn base58btc(input: &[u8]) -> String {
    let mut digits: Vec<u8> = Vec::new();
    for &byte in input {
        let mut carry = u32::from(byte);
        for d in digits.iter_mut() {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let zeros = input.iter().take_while(|&&b| b == 0).count();
    let mut out = String::with_capacity(zeros + digits.len());
    out.extend(std::iter::repeat_n('1', zeros));
    out.extend(
        digits
            .iter()
            .rev()
            .map(|&d| char::from(*B58.get(usize::from(d)).unwrap_or(&b'1'))),
    );
    out
}

/// The user key as a `publicKeyMultibase` (ATT-10): `"z"` followed by base58btc of
/// the multicodec prefix `0xed 0x01` and the 32 key bytes.
pub fn multibase_key(user_key: &[u8; 32]) -> String {
    let mut b = Vec::with_capacity(34);
    b.extend_from_slice(&[0xed, 0x01]);
    b.extend_from_slice(user_key);
    format!("z{}", base58btc(&b))
}

#[derive(Deserialize)]
struct Method {
    id: Option<String>,
    #[serde(rename = "type")]
    type_: Option<String>,
    controller: Option<String>,
    #[serde(rename = "publicKeyMultibase")]
    public_key_multibase: Option<String>,
}

#[derive(Deserialize)]
struct Document {
    id: String,
    #[serde(rename = "verificationMethod", default)]
    verification_method: Vec<serde_json::Value>,
    #[serde(rename = "assertionMethod", default)]
    assertion_method: Vec<serde_json::Value>,
    #[serde(default)]
    authentication: Vec<serde_json::Value>,
}

/// What a verified DID record shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DidAccount {
    /// The DID.
    pub did: String,
    /// The id of the verification method that lists the user key.
    pub method_id: String,
}

/// Checks a `DID_DOCUMENT` record's evidence (ATT-10, in order): a `did:plc`
/// subject goes to [`crate::plc::verify`] (ATT-15..ATT-18); otherwise the
/// record's subject is a `did:web` DID; the document fits ATT-LIM-5 and is a JSON object
/// with a string `id` and arrays of verification methods (at most 64 entries);
/// `id` equals the DID
/// (`WRONG_CONTEXT`); some method (in `verificationMethod`, or embedded in
/// `assertionMethod` or `authentication`) has an allowed type, `controller` equal
/// to the DID and `publicKeyMultibase` equal to the user key's
/// (`INVALID_OPERATION` if none).
pub fn verify(record: &Record) -> Result<DidAccount, AttestError> {
    if record.subject.len() <= MAX_DID_BYTES && record.subject.starts_with("did:plc:") {
        return crate::plc::verify(record);
    }
    let did = DidWeb::parse(&record.subject)?;
    verify_document(&did.did, &record.evidence, &record.user_key)
}

/// The document check of [`verify`], for a shell that wants to tell the user
/// before it makes a record.
pub fn verify_document(
    did: &str,
    document: &[u8],
    user_key: &[u8; 32],
) -> Result<DidAccount, AttestError> {
    if document.len() > MAX_DOCUMENT_BYTES {
        return Err(AttestError::limit(
            "DID document",
            MAX_DOCUMENT_BYTES,
            document.len(),
        ));
    }
    let doc: Document = serde_json::from_slice(document).map_err(|_| {
        AttestError::malformed(
            "DID document",
            "not a JSON object with a string id and arrays of methods",
        )
    })?;
    let count =
        doc.verification_method.len() + doc.assertion_method.len() + doc.authentication.len();
    if count > MAX_METHODS {
        return Err(AttestError::limit(
            "DID document methods",
            MAX_METHODS,
            count,
        ));
    }
    if doc.id != did {
        return Err(AttestError::WrongContext {
            what: "DID document id",
        });
    }
    let want = multibase_key(user_key);
    let methods = doc
        .verification_method
        .into_iter()
        .chain(doc.assertion_method)
        .chain(doc.authentication)
        .filter(|v| v.is_object())
        .filter_map(|v| serde_json::from_value::<Method>(v).ok());
    for m in methods {
        let typed = m
            .type_
            .as_deref()
            .is_some_and(|t| METHOD_TYPES.contains(&t));
        if typed
            && m.controller.as_deref() == Some(did)
            && m.public_key_multibase.as_deref() == Some(want.as_str())
        {
            return Ok(DidAccount {
                did: did.to_string(),
                method_id: m.id.unwrap_or_default(),
            });
        }
    }
    Err(AttestError::InvalidOperation {
        reason: "the DID document does not list the user key",
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use clientful_core::ErrorClass;

    #[test]
    fn did_web_urls() {
        let d = DidWeb::parse("did:web:example.com").unwrap();
        assert_eq!(
            d.document_url(false),
            "https://example.com/.well-known/did.json"
        );
        let d = DidWeb::parse("did:web:localhost%3A8443:users:bob").unwrap();
        assert_eq!(
            d.document_url(true),
            "http://localhost:8443/users/bob/did.json"
        );
        assert!(d.is_loopback());
        assert_eq!(
            DidWeb::parse("did:key:abc").unwrap_err().class(),
            ErrorClass::UnsupportedVersion
        );
        for bad in [
            "did:web:",
            "did:web:exa mple.com",
            "did:web:a.com:..",
            "web:a",
        ] {
            assert_eq!(
                DidWeb::parse(bad).unwrap_err().class(),
                ErrorClass::Malformed,
                "{bad}"
            );
        }
    }

    #[test]
    fn multibase_matches_a_known_did_key() {
        // The Ed25519 test key of the did:key specification's examples.
        let key: [u8; 32] = [
            0x2e, 0x6f, 0xcc, 0xe3, 0x67, 0x01, 0xdc, 0x79, 0x14, 0x88, 0xe0, 0xd0, 0xb1, 0x74,
            0x5c, 0xc1, 0xe3, 0x3a, 0x4c, 0x1c, 0x9f, 0xcc, 0x41, 0xc6, 0x3b, 0xd3, 0x43, 0xdb,
            0xbe, 0x09, 0x70, 0xe6,
        ];
        assert_eq!(
            multibase_key(&key),
            "z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
        );
    }

    #[test]
    fn documents_with_and_without_the_key() {
        let key = [9u8; 32];
        let did = "did:web:example.com";
        let ok = format!(
            r#"{{"id":"{did}","verificationMethod":[{{"id":"{did}#k","type":"Multikey","controller":"{did}","publicKeyMultibase":"{}"}}]}}"#,
            multibase_key(&key)
        );
        assert_eq!(
            verify_document(did, ok.as_bytes(), &key).unwrap().method_id,
            "did:web:example.com#k"
        );
        assert_eq!(
            verify_document(did, ok.as_bytes(), &[8; 32])
                .unwrap_err()
                .class(),
            ErrorClass::InvalidOperation
        );
        assert_eq!(
            verify_document("did:web:other.com", ok.as_bytes(), &key)
                .unwrap_err()
                .class(),
            ErrorClass::WrongContext
        );
        assert_eq!(
            verify_document(did, b"[]", &key).unwrap_err().class(),
            ErrorClass::Malformed
        );
    }
}
