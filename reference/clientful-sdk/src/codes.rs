//! Text forms of the codes people pass around out of band: invite codes
//! (MEM-20), device link codes (MEM-24) and device requests (a device
//! certificate, ID-3). Each is a prefix and the hex of the canonical bytes, so
//! a truncated or mistyped code is refused with a clear message.

use crate::error::ClientError;

/// Prefix of an invite code.
pub const INVITE: &str = "cfinvite1-";
/// Prefix of a device link code.
pub const LINK: &str = "cflink1-";
/// Prefix of a device request (the new device's certificate).
pub const DEVICE: &str = "cfdevice1-";

/// `prefix` + hex of `bytes`.
pub fn encode(prefix: &str, bytes: &[u8]) -> String {
    format!("{prefix}{}", hex::encode(bytes))
}

/// The bytes of a code with `prefix`.
pub fn decode(prefix: &str, what: &str, code: &str) -> Result<Vec<u8>, ClientError> {
    let code = code.trim();
    let rest = code.strip_prefix(prefix).ok_or_else(|| {
        ClientError::Invalid(format!("not {what}: it must start with `{prefix}`"))
    })?;
    hex::decode(rest)
        .map_err(|_| ClientError::Invalid(format!("{what} is damaged (not hexadecimal)")))
}

/// A 32-byte id from (a prefix of) its hex form, among `candidates`.
pub fn pick<'a, T>(
    what: &str,
    prefix: &str,
    candidates: impl IntoIterator<Item = (&'a [u8; 32], T)>,
) -> Result<([u8; 32], T), ClientError> {
    let p = prefix.trim().to_ascii_lowercase();
    if p.is_empty() {
        return Err(ClientError::Invalid(format!("empty {what} id")));
    }
    let mut found: Vec<([u8; 32], T)> = candidates
        .into_iter()
        .filter(|(id, _)| hex::encode(id).starts_with(&p))
        .map(|(id, t)| (*id, t))
        .collect();
    match found.len() {
        0 => Err(ClientError::NotFound(format!(
            "no {what} matches `{prefix}`"
        ))),
        1 => found
            .pop()
            .ok_or_else(|| ClientError::NotFound(format!("no {what} matches `{prefix}`"))),
        n => Err(ClientError::Invalid(format!(
            "`{prefix}` matches {n} {what}s; give more characters"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_refuse_damage() {
        let c = encode(INVITE, &[1, 2, 3]);
        assert_eq!(
            decode(INVITE, "an invite code", &c).ok(),
            Some(vec![1, 2, 3])
        );
        assert!(decode(LINK, "a device link code", &c).is_err());
        assert!(decode(INVITE, "an invite code", "cfinvite1-zz").is_err());
    }

    #[test]
    fn pick_needs_a_unique_prefix() {
        let a = [0xabu8; 32];
        let b = [0xacu8; 32];
        let all = [(&a, 1), (&b, 2)];
        assert_eq!(pick("document", "ab", all).ok().map(|x| x.1), Some(1));
        assert!(pick("document", "a", all).is_err());
        assert!(pick("document", "ff", all).is_err());
    }
}
