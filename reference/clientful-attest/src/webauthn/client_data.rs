//! The assertion's `clientDataJSON` (ATT-44): one JSON object, at most
//! [`MAX_CLIENT_DATA_LEN`] bytes, with string members `type`, `challenge` and
//! `origin` and an optional boolean `crossOrigin` (other members ignored, a
//! duplicate member MALFORMED).

use serde::Deserialize;

use super::WebAuthnError;

/// Largest `clientDataJSON` accepted, in bytes.
pub const MAX_CLIENT_DATA_LEN: usize = 4096;

/// The members of `clientDataJSON` a verifier reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClientData {
    /// `webauthn.get` for an assertion.
    #[serde(rename = "type")]
    pub kind: String,
    /// The challenge, base64url without padding.
    pub challenge: String,
    /// The origin of the page that asked.
    pub origin: String,
    /// Whether the request came from a cross-origin iframe.
    #[serde(rename = "crossOrigin", default)]
    pub cross_origin: Option<bool>,
}

impl ClientData {
    /// Parses `clientDataJSON`.
    pub fn parse(bytes: &[u8]) -> Result<Self, WebAuthnError> {
        if bytes.len() > MAX_CLIENT_DATA_LEN {
            return Err(WebAuthnError::LimitExceeded {
                what: "clientDataJSON length",
                max: MAX_CLIENT_DATA_LEN as u64,
                actual: bytes.len() as u64,
            });
        }
        serde_json::from_slice(bytes).map_err(|_| WebAuthnError::Malformed {
            what: "clientDataJSON",
            reason: "not a JSON object with string type, challenge and origin",
        })
    }
}
