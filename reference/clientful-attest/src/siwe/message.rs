//! The EIP-4361 message (ATT-31): a strict parser and the renderer.
//!
//! The grammar is EIP-4361's ABNF, read strictly: ASCII only, lines separated by a
//! single LF (no CR), the fields in their fixed order, optional fields only where
//! the ABNF allows them, nothing after the last field, at most
//! [`MAX_MESSAGE_LEN`] bytes and [`MAX_RESOURCES`] resources. The renderer writes
//! exactly what the parser accepts, so `parse(render(m)) == m`.
//!
//! ```text
//! [scheme "://"] domain " wants you to sign in with your Ethereum account:" LF
//! address LF
//! LF
//! [statement LF]
//! LF
//! "URI: " uri LF
//! "Version: 1" LF
//! "Chain ID: " chain-id LF
//! "Nonce: " nonce LF
//! "Issued At: " date-time
//! [LF "Expiration Time: " date-time]
//! [LF "Not Before: " date-time]
//! [LF "Request ID: " request-id]
//! [LF "Resources:" *(LF "- " uri)]
//! ```

use sha3::{Digest, Keccak256};

use super::SiweError;
use super::time::{format_rfc3339, parse_rfc3339};

/// Largest message accepted, in bytes.
pub const MAX_MESSAGE_LEN: usize = 8192;
/// Most resources a message may list.
pub const MAX_RESOURCES: usize = 32;

const PREAMBLE: &str = " wants you to sign in with your Ethereum account:";

/// One parsed EIP-4361 message. Times are kept as written (RFC 3339) and as
/// milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiweMessage {
    /// The URI scheme before the domain, if given.
    pub scheme: Option<String>,
    /// The RFC 3986 authority asking for the signature.
    pub domain: String,
    /// The signing account, `0x` and 40 hex digits in EIP-55 mixed case.
    pub address: String,
    /// The human-readable statement, if any.
    pub statement: Option<String>,
    /// The RFC 3986 URI the sign-in is for.
    pub uri: String,
    /// Always `"1"`.
    pub version: String,
    /// The EIP-155 chain id.
    pub chain_id: u64,
    /// At least 8 ASCII letters and digits.
    pub nonce: String,
    /// `Issued At`, as written.
    pub issued_at: String,
    /// `Expiration Time`, as written.
    pub expiration_time: Option<String>,
    /// `Not Before`, as written.
    pub not_before: Option<String>,
    /// `Request ID`, if any.
    pub request_id: Option<String>,
    /// The resources (URIs), in order; `None` when the message has no `Resources:`
    /// line, `Some(empty)` when it has the line and no item.
    pub resources: Option<Vec<String>>,
}

fn malformed(what: &'static str, reason: &'static str) -> SiweError {
    SiweError::Malformed { what, reason }
}

fn is_unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

fn is_sub_delim(c: char) -> bool {
    matches!(
        c,
        '!' | '$' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | ';' | '='
    )
}

fn is_reserved(c: char) -> bool {
    is_sub_delim(c) || matches!(c, ':' | '/' | '?' | '#' | '[' | ']' | '@')
}

/// An RFC 3986 scheme: a letter, then letters, digits, `+`, `-`, `.`.
fn valid_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// An RFC 3986 authority (userinfo, host, port), by its character set.
fn valid_authority(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            is_unreserved(c) || is_sub_delim(c) || matches!(c, ':' | '@' | '[' | ']' | '%')
        })
}

/// An RFC 3986 URI: a scheme, `:`, and URI characters.
fn valid_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    valid_scheme(scheme)
        && !rest.is_empty()
        && rest
            .chars()
            .all(|c| is_unreserved(c) || is_reserved(c) || c == '%')
}

fn valid_statement(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| is_unreserved(c) || is_reserved(c) || c == ' ')
}

fn valid_request_id(s: &str) -> bool {
    // *pchar
    s.chars()
        .all(|c| is_unreserved(c) || is_sub_delim(c) || matches!(c, ':' | '@' | '%'))
}

/// EIP-55: the mixed-case checksum form of a 20-byte address.
pub fn checksum_address(address: &[u8; 20]) -> String {
    let lower = hex::encode(address);
    let hash = Keccak256::digest(lower.as_bytes());
    let mut out = String::with_capacity(42);
    out.push_str("0x");
    for (i, c) in lower.chars().enumerate() {
        let byte = hash.get(i / 2).copied().unwrap_or(0);
        let nibble = if i % 2 == 0 { byte >> 4 } else { byte & 0x0f };
        if c.is_ascii_alphabetic() && nibble >= 8 {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The 20 bytes of an EIP-55 address; `None` unless it is exactly the checksum form.
pub fn parse_address(s: &str) -> Option<[u8; 20]> {
    let digits = s.strip_prefix("0x")?;
    if digits.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    hex::decode_to_slice(digits, &mut out).ok()?;
    (checksum_address(&out) == s).then_some(out)
}

/// Splits `line` into the value after `tag`, or a MALFORMED naming `what`.
fn tagged<'a>(line: Option<&'a str>, tag: &str, what: &'static str) -> Result<&'a str, SiweError> {
    line.and_then(|l| l.strip_prefix(tag))
        .ok_or(malformed(what, "missing or out of order"))
}

impl SiweMessage {
    /// Parses `bytes` strictly (see the module documentation).
    pub fn parse(bytes: &[u8]) -> Result<Self, SiweError> {
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(SiweError::LimitExceeded {
                what: "message length",
                max: MAX_MESSAGE_LEN as u64,
                actual: bytes.len() as u64,
            });
        }
        if !bytes.is_ascii() {
            return Err(malformed("message", "not ASCII"));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| malformed("message", "not ASCII"))?;
        if text.contains('\r') {
            return Err(malformed("message", "carriage return"));
        }
        let mut lines = text.split('\n').peekable();

        // Preamble: [scheme "://"] domain " wants you to sign in ...".
        let first = lines.next().unwrap_or("");
        let head = first
            .strip_suffix(PREAMBLE)
            .ok_or(malformed("preamble", "not an EIP-4361 first line"))?;
        let (scheme, domain) = match head.split_once("://") {
            Some((s, d)) => {
                if !valid_scheme(s) {
                    return Err(malformed("scheme", "not an RFC 3986 scheme"));
                }
                (Some(s.to_owned()), d)
            }
            None => (None, head),
        };
        if !valid_authority(domain) {
            return Err(malformed("domain", "not an RFC 3986 authority"));
        }

        let address = lines.next().ok_or(malformed("address", "missing"))?;
        if parse_address(address).is_none() {
            return Err(malformed("address", "not an EIP-55 checksummed address"));
        }
        if lines.next() != Some("") {
            return Err(malformed("message", "no empty line after the address"));
        }
        let statement = match lines.next() {
            Some("") => None,
            Some(s) => {
                if !valid_statement(s) {
                    return Err(malformed("statement", "character outside the EIP-4361 set"));
                }
                if lines.next() != Some("") {
                    return Err(malformed("message", "no empty line after the statement"));
                }
                Some(s.to_owned())
            }
            None => return Err(malformed("message", "truncated after the address")),
        };

        let uri = tagged(lines.next(), "URI: ", "URI")?;
        if !valid_uri(uri) {
            return Err(malformed("URI", "not an RFC 3986 URI"));
        }
        let version = tagged(lines.next(), "Version: ", "Version")?;
        if version != "1" {
            return Err(malformed("Version", "not 1"));
        }
        let chain = tagged(lines.next(), "Chain ID: ", "Chain ID")?;
        let chain_id = parse_decimal(chain).ok_or(malformed("Chain ID", "not a decimal u64"))?;
        let nonce = tagged(lines.next(), "Nonce: ", "Nonce")?;
        if nonce.len() < 8 || !nonce.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(malformed("Nonce", "not 8 or more letters and digits"));
        }
        let issued_at = tagged(lines.next(), "Issued At: ", "Issued At")?;
        parse_rfc3339(issued_at).ok_or(malformed("Issued At", "not an RFC 3339 date-time"))?;

        let mut optional = |tag: &str, what: &'static str| -> Result<Option<String>, SiweError> {
            match lines.peek().and_then(|l| l.strip_prefix(tag)) {
                Some(v) => {
                    let v = v.to_owned();
                    lines.next();
                    if what != "Request ID" && parse_rfc3339(&v).is_none() {
                        return Err(malformed(what, "not an RFC 3339 date-time"));
                    }
                    Ok(Some(v))
                }
                None => Ok(None),
            }
        };
        let expiration_time = optional("Expiration Time: ", "Expiration Time")?;
        let not_before = optional("Not Before: ", "Not Before")?;
        let request_id = optional("Request ID: ", "Request ID")?;
        if let Some(r) = &request_id
            && !valid_request_id(r)
        {
            return Err(malformed("Request ID", "not RFC 3986 pchars"));
        }
        let resources = if lines.peek() == Some(&"Resources:") {
            lines.next();
            let mut list = Vec::new();
            for line in lines.by_ref() {
                let r = line
                    .strip_prefix("- ")
                    .ok_or(malformed("Resources", "an item does not start with \"- \""))?;
                if !valid_uri(r) {
                    return Err(malformed("Resources", "an item is not an RFC 3986 URI"));
                }
                if list.len() == MAX_RESOURCES {
                    return Err(SiweError::LimitExceeded {
                        what: "resources",
                        max: MAX_RESOURCES as u64,
                        actual: MAX_RESOURCES as u64 + 1,
                    });
                }
                list.push(r.to_owned());
            }
            Some(list)
        } else {
            None
        };
        if lines.next().is_some() {
            return Err(malformed("message", "unexpected line after the last field"));
        }
        Ok(SiweMessage {
            scheme,
            domain: domain.to_owned(),
            address: address.to_owned(),
            statement,
            uri: uri.to_owned(),
            version: version.to_owned(),
            chain_id,
            nonce: nonce.to_owned(),
            issued_at: issued_at.to_owned(),
            expiration_time,
            not_before,
            request_id,
            resources,
        })
    }

    /// The message text (the bytes a wallet signs).
    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Some(scheme) = &self.scheme {
            s.push_str(scheme);
            s.push_str("://");
        }
        s.push_str(&self.domain);
        s.push_str(PREAMBLE);
        s.push('\n');
        s.push_str(&self.address);
        s.push_str("\n\n");
        if let Some(st) = &self.statement {
            s.push_str(st);
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&format!(
            "URI: {}\nVersion: {}\nChain ID: {}\nNonce: {}\nIssued At: {}",
            self.uri, self.version, self.chain_id, self.nonce, self.issued_at
        ));
        if let Some(t) = &self.expiration_time {
            s.push_str("\nExpiration Time: ");
            s.push_str(t);
        }
        if let Some(t) = &self.not_before {
            s.push_str("\nNot Before: ");
            s.push_str(t);
        }
        if let Some(r) = &self.request_id {
            s.push_str("\nRequest ID: ");
            s.push_str(r);
        }
        if let Some(list) = &self.resources {
            s.push_str("\nResources:");
            for r in list {
                s.push_str("\n- ");
                s.push_str(r);
            }
        }
        s
    }

    /// `Issued At` in milliseconds since the Unix epoch.
    pub fn issued_at_ms(&self) -> Option<i64> {
        parse_rfc3339(&self.issued_at)
    }

    /// `Expiration Time` in milliseconds, if present.
    pub fn expiration_ms(&self) -> Option<i64> {
        self.expiration_time.as_deref().and_then(parse_rfc3339)
    }

    /// `Not Before` in milliseconds, if present.
    pub fn not_before_ms(&self) -> Option<i64> {
        self.not_before.as_deref().and_then(parse_rfc3339)
    }

    /// The 20-byte address.
    pub fn address_bytes(&self) -> Option<[u8; 20]> {
        parse_address(&self.address)
    }
}

/// A decimal u64 without leading zeros (`0` itself allowed).
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// Formats milliseconds since the epoch the way [`SiweMessage`] times are written
/// by wallets (`YYYY-MM-DDTHH:MM:SS.mmmZ`).
pub fn format_time(ms: i64) -> String {
    format_rfc3339(ms)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> SiweMessage {
        SiweMessage {
            scheme: None,
            domain: "example.com".into(),
            address: checksum_address(&[0xab; 20]),
            statement: Some("Link my Clientful key.".into()),
            uri: "https://example.com/login".into(),
            version: "1".into(),
            chain_id: 1,
            nonce: "a".repeat(64),
            issued_at: "2026-12-07T01:00:00.000Z".into(),
            expiration_time: Some("2026-12-07T02:00:00.000Z".into()),
            not_before: None,
            request_id: None,
            resources: Some(vec!["clientful:user-key:AAAA".into()]),
        }
    }

    #[test]
    fn eip55_examples() {
        // The four test addresses of EIP-55.
        for a in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            let bytes = parse_address(a).expect(a);
            assert_eq!(checksum_address(&bytes), a);
        }
        assert!(parse_address("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed").is_none());
    }

    #[test]
    fn round_trip() {
        let m = sample();
        assert_eq!(SiweMessage::parse(m.render().as_bytes()).unwrap(), m);
        let mut bare = sample();
        bare.statement = None;
        bare.expiration_time = None;
        bare.resources = None;
        bare.scheme = Some("https".into());
        bare.request_id = Some("req-1".into());
        bare.not_before = Some("2026-12-07T00:00:00Z".into());
        let text = bare.render();
        assert!(text.contains(" account:\n0x"), "{text}");
        assert!(text.contains("\n\n\nURI: "), "{text}");
        assert_eq!(SiweMessage::parse(text.as_bytes()).unwrap(), bare);
    }

    #[test]
    fn rejects_shapes() {
        let good = sample().render();
        let cases: Vec<String> = vec![
            good.replace("Version: 1", "Version: 2"),
            good.replace('\n', "\r\n"),
            good.replace("Chain ID: 1", "Chain ID: 01"),
            good.replace("Chain ID: 1", "Chain ID: x"),
            good.replace(&"a".repeat(64), "abc"),
            good.replace("2026-12-07T01:00:00.000Z", "yesterday"),
            format!("{good}\n"),
            format!("{good}\nextra"),
            good.replace("URI: ", "Uri: "),
            good.replace("example.com wants", "exa mple.com wants"),
            good.replace("Link my", "Link\u{e9} my"),
            good.replace("- clientful", "clientful"),
            good.to_lowercase(),
        ];
        for c in cases {
            let e = SiweMessage::parse(c.as_bytes()).unwrap_err();
            assert!(matches!(e, SiweError::Malformed { .. }), "{c}: {e:?}");
        }
        let long = format!("{good}{}", "x".repeat(MAX_MESSAGE_LEN));
        assert!(matches!(
            SiweMessage::parse(long.as_bytes()),
            Err(SiweError::LimitExceeded { .. })
        ));
        let mut many = sample();
        many.resources = Some(vec!["urn:x".into(); MAX_RESOURCES + 1]);
        assert!(matches!(
            SiweMessage::parse(many.render().as_bytes()),
            Err(SiweError::LimitExceeded { .. })
        ));
    }
}
