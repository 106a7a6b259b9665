//! Text forms of the codes people pass around out of band: invite codes
//! (MEM-20), device link codes (MEM-24) and device requests (a device
//! certificate, ID-3). Each is a prefix and the hex of the canonical bytes, so
//! a truncated or mistyped code is refused with a clear message. An invite
//! code's text also names the role the invite grants
//! (`cfinvite1-writer-<hex>`), which the invitee requests in its redemption: a
//! redemption asking for more than the invite grants is rejected (MEM-21).
//!
//! Every code ends with `-` and an 8-hex-digit check (the first 4 bytes of
//! SHA-256 over a label, the prefix, the role and the bytes), checked before the
//! bytes are used: a code with one character changed anywhere (in an invite's
//! `create_op`, say, which nothing else could check before the invite is
//! redeemed) is refused as damaged instead of being redeemed for nothing.

use clientful_core::membership::Role;

use crate::error::LookupError;

/// Prefix of an invite code.
pub const INVITE: &str = "cfinvite1-";
/// Prefix of a device link code.
pub const LINK: &str = "cflink1-";
/// Prefix of a device request (the new device's certificate).
pub const DEVICE: &str = "cfdevice1-";
/// Prefix of a sealed user backup (a `SealedBackup`, spec §5.5).
pub const BACKUP: &str = "cfbackup1-";
/// Prefix of a recovery request (a `RecoveryRequest`, spec REC-5).
pub const RECOVERY_REQUEST: &str = "cfrecover1-";
/// Prefix of a holder's release of a recovery share (a sealed `RecoveryRelease`, REC-6).
pub const RECOVERY_RELEASE: &str = "cfrelease1-";

/// The check of a code: 4 bytes of SHA-256 over a label, the prefix, the role
/// (empty but for invites) and the bytes, in hex.
fn check(prefix: &str, role: &str, bytes: &[u8]) -> String {
    let mut input = b"clientful code check v1\0".to_vec();
    input.extend_from_slice(prefix.as_bytes());
    input.push(0);
    input.extend_from_slice(role.as_bytes());
    input.push(0);
    input.extend_from_slice(bytes);
    let h = clientful_core::suite::sha256(&input);
    hex::encode(h.iter().take(4).copied().collect::<Vec<u8>>())
}

/// Which kind of code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodeKind {
    /// An invite code ([`INVITE`]).
    Invite,
    /// A device link code ([`LINK`]).
    Link,
    /// A device request ([`DEVICE`]).
    DeviceRequest,
    /// A sealed user backup ([`BACKUP`]).
    Backup,
    /// A recovery request ([`RECOVERY_REQUEST`]).
    RecoveryRequest,
    /// A recovery share's release ([`RECOVERY_RELEASE`]).
    RecoveryRelease,
    /// A code of another prefix.
    Other,
}

impl CodeKind {
    fn of(prefix: &str) -> CodeKind {
        match prefix {
            INVITE => CodeKind::Invite,
            LINK => CodeKind::Link,
            DEVICE => CodeKind::DeviceRequest,
            BACKUP => CodeKind::Backup,
            RECOVERY_REQUEST => CodeKind::RecoveryRequest,
            RECOVERY_RELEASE => CodeKind::RecoveryRelease,
            _ => CodeKind::Other,
        }
    }

    /// The prefix its text starts with.
    pub fn prefix(self) -> &'static str {
        match self {
            CodeKind::Invite => INVITE,
            CodeKind::Link => LINK,
            CodeKind::DeviceRequest => DEVICE,
            CodeKind::Backup => BACKUP,
            CodeKind::RecoveryRequest => RECOVERY_REQUEST,
            CodeKind::RecoveryRelease => RECOVERY_RELEASE,
            CodeKind::Other => "",
        }
    }
}

impl std::fmt::Display for CodeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CodeKind::Invite => "an invite code",
            CodeKind::Link => "a device link code",
            CodeKind::DeviceRequest => "a device request",
            CodeKind::Backup => "a sealed user backup",
            CodeKind::RecoveryRequest => "a recovery request",
            CodeKind::RecoveryRelease => "a recovery share release",
            CodeKind::Other => "a code",
        })
    }
}

/// What is wrong with a code.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodeProblem {
    /// It does not start with the kind's prefix.
    Prefix,
    /// No check digits.
    NoCheck,
    /// Not hexadecimal.
    NotHex,
    /// The check digits do not match: a character was changed or lost.
    Check,
    /// An invite code without its role.
    NoRole,
    /// An invite code naming a role that does not exist.
    UnknownRole {
        /// The role as written in the code.
        role: String,
    },
    /// The bytes are not a valid code of its kind.
    Malformed(clientful_core::Error),
}

/// A code that is not a valid one of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe(.kind, .problem))]
pub struct CodeError {
    /// The kind expected.
    pub kind: CodeKind,
    /// What is wrong.
    pub problem: CodeProblem,
}

impl CodeError {
    pub(crate) fn new(kind: CodeKind, problem: CodeProblem) -> Self {
        CodeError { kind, problem }
    }
}

fn describe(kind: &CodeKind, problem: &CodeProblem) -> String {
    match problem {
        CodeProblem::Prefix => format!("not {kind}: it must start with `{}`", kind.prefix()),
        CodeProblem::NoCheck => format!("{kind} is damaged (no check digits)"),
        CodeProblem::NotHex => format!("{kind} is damaged (not hexadecimal)"),
        CodeProblem::Check => format!(
            "{kind} is damaged (its check digits do not match: a character was changed or lost)"
        ),
        CodeProblem::NoRole => format!("{kind} is damaged (no role)"),
        CodeProblem::UnknownRole { role } => format!("{kind} names an unknown role `{role}`"),
        CodeProblem::Malformed(e) => format!("{kind} is damaged: {e}"),
    }
}

/// Splits `<hex>-<check>` and verifies the check.
fn checked(prefix: &str, role: &str, rest: &str) -> Result<Vec<u8>, CodeError> {
    let kind = CodeKind::of(prefix);
    let (hex_part, sum) = rest
        .rsplit_once('-')
        .ok_or(CodeError::new(kind, CodeProblem::NoCheck))?;
    let bytes = hex::decode(hex_part).map_err(|_| CodeError::new(kind, CodeProblem::NotHex))?;
    if !sum.eq_ignore_ascii_case(&check(prefix, role, &bytes)) {
        return Err(CodeError::new(kind, CodeProblem::Check));
    }
    Ok(bytes)
}

/// `prefix` + hex of `bytes` + `-` + check.
pub fn encode(prefix: &str, bytes: &[u8]) -> String {
    format!(
        "{prefix}{}-{}",
        hex::encode(bytes),
        check(prefix, "", bytes)
    )
}

/// The bytes of a code with `prefix`, its check verified.
pub fn decode(prefix: &str, code: &str) -> Result<Vec<u8>, CodeError> {
    let code = code.trim();
    let rest = code
        .strip_prefix(prefix)
        .ok_or(CodeError::new(CodeKind::of(prefix), CodeProblem::Prefix))?;
    checked(prefix, "", rest)
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Reader => "reader",
        Role::Writer => "writer",
        Role::Admin => "admin",
    }
}

/// The text of an invite code granting `role`.
pub fn encode_invite(role: Role, code: &[u8]) -> String {
    let role = role_name(role);
    format!(
        "{INVITE}{role}-{}-{}",
        hex::encode(code),
        check(INVITE, role, code)
    )
}

/// The role and the canonical `InviteCode` bytes of an invite code's text.
pub fn decode_invite(code: &str) -> Result<(Role, Vec<u8>), CodeError> {
    let bad = |p| CodeError::new(CodeKind::Invite, p);
    let rest = code
        .trim()
        .strip_prefix(INVITE)
        .ok_or(bad(CodeProblem::Prefix))?;
    let (role, hex_part) = rest.split_once('-').ok_or(bad(CodeProblem::NoRole))?;
    let role = [Role::Reader, Role::Writer, Role::Admin]
        .into_iter()
        .find(|r| role_name(*r) == role)
        .ok_or_else(|| {
            bad(CodeProblem::UnknownRole {
                role: role.to_owned(),
            })
        })?;
    let bytes = checked(INVITE, role_name(role), hex_part)?;
    Ok((role, bytes))
}

/// A 32-byte id from (a prefix of) its hex form, among `candidates`.
pub fn pick<'a, T>(
    what: &'static str,
    prefix: &str,
    candidates: impl IntoIterator<Item = (&'a [u8; 32], T)>,
) -> Result<([u8; 32], T), LookupError> {
    let p = prefix.trim().to_ascii_lowercase();
    if p.is_empty() {
        return Err(LookupError::Empty { what });
    }
    let mut found: Vec<([u8; 32], T)> = candidates
        .into_iter()
        .filter(|(id, _)| hex::encode(id).starts_with(&p))
        .map(|(id, t)| (*id, t))
        .collect();
    let none = || LookupError::NoMatch {
        what,
        prefix: prefix.to_owned(),
    };
    match found.len() {
        0 => Err(none()),
        1 => found.pop().ok_or_else(none),
        count => Err(LookupError::Ambiguous {
            what,
            prefix: prefix.to_owned(),
            count,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_refuse_damage() {
        let c = encode(INVITE, &[1, 2, 3]);
        assert_eq!(decode(INVITE, &c).ok(), Some(vec![1, 2, 3]));
        assert_eq!(
            decode(LINK, &c).map_err(|e| e.problem),
            Err(CodeProblem::Prefix)
        );
        assert!(decode(LINK, &c).is_err());
        assert!(decode(INVITE, "cfinvite1-zz").is_err());
        // One hex digit changed, anywhere: refused by the check.
        let l = encode(LINK, &[0xab; 40]);
        for i in LINK.len()..l.len() {
            let mut b = l.clone().into_bytes();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            let changed = String::from_utf8(b).unwrap_or_default();
            if changed != l {
                assert!(decode(LINK, &changed).is_err(), "{changed}");
            }
        }
    }

    #[test]
    fn invite_codes_carry_their_role() {
        let c = encode_invite(Role::Reader, &[9, 8]);
        assert!(c.starts_with("cfinvite1-reader-0908-"), "{c}");
        assert_eq!(decode_invite(&c).ok(), Some((Role::Reader, vec![9, 8])));
        assert_eq!(
            decode_invite("cfinvite1-owner-0908").map_err(|e| e.problem),
            Err(CodeProblem::UnknownRole {
                role: "owner".into()
            })
        );
        assert!(decode_invite("cfinvite1-0908").is_err());
        // The role is covered by the check too: a reader code cannot be edited into
        // a writer code, and a changed byte is refused.
        let as_writer = c.replace("-reader-", "-writer-");
        assert!(decode_invite(&as_writer).is_err());
        let tampered = c.replace("-0908-", "-0909-");
        assert!(decode_invite(&tampered).is_err());
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
