//! WebAuthn authenticator data (ATT-43): the assertion's, and the registration's
//! attested credential data from which the COSE key is taken.
//!
//! ```text
//! rpIdHash (32) || flags (1) || signCount (4, big-endian)
//!   [|| aaguid (16) || u16be(len) || credentialId || COSE_Key]   if AT (0x40)
//!   [|| extensions (one CBOR map)]                               if ED (0x80)
//! ```
//!
//! An assertion's data MUST NOT have AT; with ED its rest is exactly one CBOR map,
//! without ED nothing follows the counter.

use super::WebAuthnError;
use super::cose::cbor_prefix;

/// Largest authenticator data accepted, in bytes.
pub const MAX_AUTH_DATA_LEN: usize = 4096;
/// Flag: user present.
pub const FLAG_UP: u8 = 0x01;
/// Flag: user verified.
pub const FLAG_UV: u8 = 0x04;
/// Flag: attested credential data included.
pub const FLAG_AT: u8 = 0x40;
/// Flag: extension data included.
pub const FLAG_ED: u8 = 0x80;

/// Parsed assertion authenticator data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthData {
    /// SHA-256 of the RP id.
    pub rp_id_hash: [u8; 32],
    /// The flags byte.
    pub flags: u8,
    /// The signature counter (not checked: offline verification keeps no state).
    pub sign_count: u32,
}

fn malformed(reason: &'static str) -> WebAuthnError {
    WebAuthnError::Malformed {
        what: "authenticator data",
        reason,
    }
}

fn limit(len: usize) -> Result<(), WebAuthnError> {
    if len > MAX_AUTH_DATA_LEN {
        return Err(WebAuthnError::LimitExceeded {
            what: "authenticator data length",
            max: MAX_AUTH_DATA_LEN as u64,
            actual: len as u64,
        });
    }
    Ok(())
}

/// The fixed 37-byte head and the rest.
fn head(bytes: &[u8]) -> Result<(AuthData, &[u8]), WebAuthnError> {
    limit(bytes.len())?;
    let (hash, rest) = bytes
        .split_first_chunk::<32>()
        .ok_or(malformed("shorter than 37 bytes"))?;
    let (flags, rest) = rest
        .split_first()
        .ok_or(malformed("shorter than 37 bytes"))?;
    let (count, rest) = rest
        .split_first_chunk::<4>()
        .ok_or(malformed("shorter than 37 bytes"))?;
    Ok((
        AuthData {
            rp_id_hash: *hash,
            flags: *flags,
            sign_count: u32::from_be_bytes(*count),
        },
        rest,
    ))
}

/// `rest` holds exactly one CBOR map (the extensions).
fn extensions(rest: &[u8]) -> Result<(), WebAuthnError> {
    let (v, used) = cbor_prefix(rest).map_err(|_| malformed("extensions are not CBOR"))?;
    if !v.is_map() || used != rest.len() {
        return Err(malformed("extensions are not exactly one CBOR map"));
    }
    Ok(())
}

impl AuthData {
    /// Parses an assertion's authenticator data.
    pub fn parse_assertion(bytes: &[u8]) -> Result<Self, WebAuthnError> {
        let (a, rest) = head(bytes)?;
        if a.flags & FLAG_AT != 0 {
            return Err(malformed("an assertion carries attested credential data"));
        }
        if a.flags & FLAG_ED != 0 {
            extensions(rest)?;
        } else if !rest.is_empty() {
            return Err(malformed("trailing bytes"));
        }
        Ok(a)
    }
}

/// The credential id and COSE key bytes of a registration's authenticator data
/// (the attested credential data, AT set), exactly as the authenticator wrote them.
pub fn attested_credential(bytes: &[u8]) -> Result<(Vec<u8>, Vec<u8>), WebAuthnError> {
    let (a, rest) = head(bytes)?;
    if a.flags & FLAG_AT == 0 {
        return Err(malformed("no attested credential data"));
    }
    let (_aaguid, rest) = rest
        .split_first_chunk::<16>()
        .ok_or(malformed("attested credential data cut short"))?;
    let (len, rest) = rest
        .split_first_chunk::<2>()
        .ok_or(malformed("attested credential data cut short"))?;
    let (cred_id, rest) = rest
        .split_at_checked(usize::from(u16::from_be_bytes(*len)))
        .ok_or(malformed("credential id cut short"))?;
    let (_, used) = cbor_prefix(rest).map_err(|_| malformed("credential key is not CBOR"))?;
    let (key, rest) = rest.split_at(used);
    if a.flags & FLAG_ED != 0 {
        extensions(rest)?;
    } else if !rest.is_empty() {
        return Err(malformed("trailing bytes"));
    }
    Ok((cred_id.to_vec(), key.to_vec()))
}
