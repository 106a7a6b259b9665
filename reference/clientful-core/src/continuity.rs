//! User-key continuity statements (spec §5.7, ROT-1..ROT-5, ROT-LIM-1).
//!
//! A user who rotates its identity key signs a canonical `UserKeyContinuity
//! { version: 1, old_user_key, new_user_key }` with both keys: the old key
//! (`sig/user-continuity`) says who follows it, and the new key
//! (`sig/user-continuity-accept`) proves that its holder accepts. The statement
//! is the old key's last valid statement. It travels as exact bytes inside a
//! `SignedContinuity`; a verifier checks the signatures over those bytes and
//! never re-encodes them. The membership operation that publishes it in a space
//! is `ROTATE_USER` (MEM-32, `crate::membership`).

use alloc::vec::Vec;

use clientful_proto::v1 as pb;

use crate::error::Error;
use crate::keys::{PublicKey, SigningKey};
use crate::limits::{ID_LEN, SIGNATURE_LEN};
use crate::{labels, wire};

/// Statement format version (ROT-1).
pub const CONTINUITY_VERSION: u32 = 1;

/// Largest encoded `SignedContinuity` accepted (ROT-LIM-1).
pub const MAX_CONTINUITY_BYTES: usize = 512;

/// A verified continuity statement: `old_user_key` is followed by
/// `new_user_key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Continuity {
    /// The retired user key.
    pub old_user_key: [u8; 32],
    /// The user key that follows it.
    pub new_user_key: [u8; 32],
}

/// The canonical statement bytes (ROT-1).
pub fn statement(old_user_key: &[u8; 32], new_user_key: &[u8; 32]) -> Vec<u8> {
    wire::encode(&pb::UserKeyContinuity {
        version: CONTINUITY_VERSION,
        old_user_key: old_user_key.to_vec(),
        new_user_key: new_user_key.to_vec(),
    })
}

/// Signs the statement "`old` is followed by `new`" with both keys (ROT-2).
/// Returns the encoded `SignedContinuity`.
pub fn sign_continuity(old: &SigningKey, new: &SigningKey) -> Result<Vec<u8>, Error> {
    sign_statement(
        old,
        new,
        statement(&old.public_bytes(), &new.public_bytes()),
    )
}

/// Signs arbitrary statement bytes with both keys (vector generation and
/// saboteurs; [`sign_continuity`] otherwise).
pub fn sign_statement(
    old: &SigningKey,
    new: &SigningKey,
    statement: Vec<u8>,
) -> Result<Vec<u8>, Error> {
    let old_signature = old.sign_with_label(labels::SIG_USER_CONTINUITY, &statement)?;
    let new_signature = new.sign_with_label(labels::SIG_USER_CONTINUITY_ACCEPT, &statement)?;
    Ok(wire::encode(&pb::SignedContinuity {
        statement,
        old_signature: old_signature.to_vec(),
        new_signature: new_signature.to_vec(),
    }))
}

/// Verifies a `SignedContinuity` (checks ROT-V1..ROT-V5, in order, spec §5.7).
pub fn verify_continuity(bytes: &[u8]) -> Result<Continuity, Error> {
    // ROT-V1: size.
    if bytes.len() > MAX_CONTINUITY_BYTES {
        return Err(Error::LimitExceeded {
            what: "continuity statement size",
            max: MAX_CONTINUITY_BYTES as u64,
            actual: bytes.len() as u64,
        });
    }
    // ROT-V2: outer message.
    let signed: pb::SignedContinuity = wire::decode(bytes, &wire::SIGNED_CONTINUITY)?;
    if signed.statement.is_empty() {
        return Err(Error::malformed("SignedContinuity", "missing statement"));
    }
    if signed.old_signature.len() != SIGNATURE_LEN {
        return Err(Error::malformed(
            "SignedContinuity.old_signature",
            "length is not 64",
        ));
    }
    if signed.new_signature.len() != SIGNATURE_LEN {
        return Err(Error::malformed(
            "SignedContinuity.new_signature",
            "length is not 64",
        ));
    }
    // ROT-V3: the statement.
    let s: pb::UserKeyContinuity = wire::decode(&signed.statement, &wire::USER_KEY_CONTINUITY)?;
    if s.version != CONTINUITY_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "continuity statement version",
            value: u64::from(s.version),
        });
    }
    let key = |v: &[u8], what: &'static str| -> Result<[u8; 32], Error> {
        if v.len() != ID_LEN {
            return Err(Error::malformed(what, "length is not 32"));
        }
        v.try_into()
            .map_err(|_| Error::malformed(what, "length is not 32"))
    };
    let old_user_key = key(&s.old_user_key, "UserKeyContinuity.old_user_key")?;
    let new_user_key = key(&s.new_user_key, "UserKeyContinuity.new_user_key")?;
    // ROT-V4: keys.
    let old = PublicKey::from_bytes(&old_user_key)?;
    let new = PublicKey::from_bytes(&new_user_key)?;
    if old == new {
        return Err(Error::InvalidKey {
            what: "new user key",
            reason: "equal to the old user key",
        });
    }
    // ROT-V5: the old key's statement, then the new key's acceptance.
    old.verify_with_label(
        labels::SIG_USER_CONTINUITY,
        &signed.statement,
        &signed.old_signature,
        "continuity (old key)",
    )?;
    new.verify_with_label(
        labels::SIG_USER_CONTINUITY_ACCEPT,
        &signed.statement,
        &signed.new_signature,
        "continuity acceptance (new key)",
    )?;
    Ok(Continuity {
        old_user_key,
        new_user_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn keys(seed: u64) -> (SigningKey, SigningKey) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        (
            SigningKey::generate(&mut rng),
            SigningKey::generate(&mut rng),
        )
    }

    #[test]
    fn sign_and_verify() {
        let (old, new) = keys(1);
        let bytes = sign_continuity(&old, &new).expect("sign");
        let c = verify_continuity(&bytes).expect("valid");
        assert_eq!(c.old_user_key, old.public_bytes());
        assert_eq!(c.new_user_key, new.public_bytes());
    }

    #[test]
    fn forged_continuity_is_bad_signature() {
        // A thief who does not hold the old key names its own key as successor:
        // it signs the statement with another key in place of the old one.
        let (old, new) = keys(2);
        let (thief, _) = keys(3);
        let forged = sign_statement(
            &thief,
            &new,
            statement(&old.public_bytes(), &new.public_bytes()),
        )
        .expect("sign");
        assert_eq!(
            verify_continuity(&forged).unwrap_err().class(),
            ErrorClass::BadSignature
        );
        // Without the new key's acceptance.
        let unaccepted = sign_statement(
            &old,
            &thief,
            statement(&old.public_bytes(), &new.public_bytes()),
        )
        .expect("sign");
        assert_eq!(
            verify_continuity(&unaccepted).unwrap_err().class(),
            ErrorClass::BadSignature
        );
    }

    #[test]
    fn same_key_is_invalid_key() {
        let (old, _) = keys(4);
        let same = sign_statement(
            &old,
            &old,
            statement(&old.public_bytes(), &old.public_bytes()),
        )
        .expect("sign");
        assert_eq!(
            verify_continuity(&same).unwrap_err().class(),
            ErrorClass::InvalidKey
        );
    }

    #[test]
    fn shapes_and_limits() {
        let (old, new) = keys(5);
        assert_eq!(
            verify_continuity(&[0u8; 513]).unwrap_err().class(),
            ErrorClass::LimitExceeded
        );
        let short = sign_statement(
            &old,
            &new,
            wire::encode(&pb::UserKeyContinuity {
                version: 1,
                old_user_key: old.public_bytes()[..31].to_vec(),
                new_user_key: new.public_bytes().to_vec(),
            }),
        )
        .expect("sign");
        assert_eq!(
            verify_continuity(&short).unwrap_err().class(),
            ErrorClass::Malformed
        );
        let v2 = sign_statement(
            &old,
            &new,
            wire::encode(&pb::UserKeyContinuity {
                version: 2,
                old_user_key: old.public_bytes().to_vec(),
                new_user_key: new.public_bytes().to_vec(),
            }),
        )
        .expect("sign");
        assert_eq!(
            verify_continuity(&v2).unwrap_err().class(),
            ErrorClass::UnsupportedVersion
        );
        // Non-canonical: fields out of order.
        let mut swapped = Vec::new();
        swapped.extend_from_slice(&[0x12, 0]);
        swapped.extend_from_slice(&[0x0a, 1, 1]);
        assert_eq!(
            verify_continuity(&swapped).unwrap_err().class(),
            ErrorClass::NonCanonical
        );
        assert_eq!(
            verify_continuity(&[]).unwrap_err().class(),
            ErrorClass::Malformed
        );
    }
}
