//! Invites (spec §11.6): the invite code an admin shares out of band, and what
//! derives from its 256-bit secret: the invite key (whose public half the
//! `CREATE_INVITE` operation records and whose private half signs the
//! redemption) and the invite epoch (which seals the redemption, KEY-9).
//!
//! ```text
//! invite_seed   = DeriveWithLabel(secret, space_id, "kdf/invite-key", empty, 32)
//! invite_epoch  = DeriveWithLabel(secret, space_id, "kdf/invite-epoch", empty, 32)
//! ```

use alloc::vec::Vec;

use clientful_proto::v1 as pb;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::keys::SigningKey;
use crate::{labels, suite, wire};

/// Length of the invite secret in bytes: 256 bits of entropy (MEM-20).
pub const INVITE_SECRET_LEN: usize = 32;
/// Largest encoded invite code accepted.
pub const MAX_INVITE_CODE_BYTES: usize = 256;

/// A decoded invite code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteCode {
    /// The space.
    pub space_id: [u8; 32],
    /// The invite secret.
    pub secret: Zeroizing<[u8; 32]>,
    /// The `CREATE_INVITE` operation id (for a device link, the `ADD_DEVICE`).
    pub create_op: [u8; 32],
    /// The id of the space's `CREATE_SPACE`: the genesis the joining replica
    /// pins (MEM-26).
    pub genesis: [u8; 32],
}

/// What an invite secret derives.
#[derive(Debug)]
pub struct InviteKeys {
    /// The invite signing key.
    pub signing: SigningKey,
    /// The invite epoch secret.
    pub epoch_secret: Zeroizing<[u8; 32]>,
}

/// Derives the invite key and invite epoch secret from an invite secret.
pub fn derive(space_id: &[u8; 32], secret: &[u8; 32]) -> Result<InviteKeys, Error> {
    let mut seed = Zeroizing::new([0u8; 32]);
    suite::derive_with_label(secret, space_id, labels::KDF_INVITE_KEY, &[], seed.as_mut())?;
    let mut epoch_secret = Zeroizing::new([0u8; 32]);
    suite::derive_with_label(
        secret,
        space_id,
        labels::KDF_INVITE_EPOCH,
        &[],
        epoch_secret.as_mut(),
    )?;
    Ok(InviteKeys {
        signing: SigningKey::from_seed(&seed),
        epoch_secret,
    })
}

/// A fresh invite secret.
pub(crate) fn new_secret<R: CryptoRng + ?Sized>(rng: &mut R) -> Zeroizing<[u8; 32]> {
    let mut s = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(s.as_mut());
    s
}

/// Encodes an invite code.
pub fn encode(code: &InviteCode) -> Vec<u8> {
    wire::encode(&pb::InviteCode {
        space_id: code.space_id.to_vec(),
        secret: code.secret.to_vec(),
        create_op: code.create_op.to_vec(),
        genesis: code.genesis.to_vec(),
    })
}

/// Decodes an invite code. A secret shorter than 32 bytes is `MALFORMED`: codes
/// never carry less entropy (MEM-20); so is a code without its 32-byte genesis
/// id (MEM-26).
pub fn decode(bytes: &[u8]) -> Result<InviteCode, Error> {
    if bytes.len() > MAX_INVITE_CODE_BYTES {
        return Err(Error::LimitExceeded {
            what: "invite code size",
            max: MAX_INVITE_CODE_BYTES as u64,
            actual: bytes.len() as u64,
        });
    }
    let m: pb::InviteCode = wire::decode(bytes, &wire::INVITE_CODE)?;
    let f = |b: &[u8], what: &'static str| -> Result<[u8; 32], Error> {
        b.try_into().map_err(|_| Error::Malformed {
            what,
            reason: "length is not 32",
        })
    };
    Ok(InviteCode {
        space_id: f(&m.space_id, "InviteCode.space_id")?,
        secret: Zeroizing::new(f(&m.secret, "InviteCode.secret")?),
        create_op: f(&m.create_op, "InviteCode.create_op")?,
        genesis: f(&m.genesis, "InviteCode.genesis")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    #[test]
    fn short_secrets_are_refused() {
        let bytes = wire::encode(&pb::InviteCode {
            space_id: [1u8; 32].to_vec(),
            secret: [2u8; 8].to_vec(),
            create_op: [3u8; 32].to_vec(),
            genesis: [4u8; 32].to_vec(),
        });
        assert_eq!(decode(&bytes).unwrap_err().class(), ErrorClass::Malformed);
    }

    #[test]
    fn codes_without_a_genesis_are_refused() {
        // MEM-20, MEM-26: a code names the genesis the joining replica pins.
        let bytes = wire::encode(&pb::InviteCode {
            space_id: [1u8; 32].to_vec(),
            secret: [2u8; 32].to_vec(),
            create_op: [3u8; 32].to_vec(),
            genesis: Vec::new(),
        });
        assert_eq!(decode(&bytes).unwrap_err().class(), ErrorClass::Malformed);
    }

    #[test]
    fn round_trip_and_derivation_is_deterministic() {
        let code = InviteCode {
            space_id: [1u8; 32],
            secret: Zeroizing::new([2u8; 32]),
            create_op: [3u8; 32],
            genesis: [4u8; 32],
        };
        assert_eq!(decode(&encode(&code)).expect("decode"), code);
        let a = derive(&code.space_id, &code.secret).expect("derive");
        let b = derive(&code.space_id, &code.secret).expect("derive");
        assert_eq!(a.signing.public_bytes(), b.signing.public_bytes());
        assert_ne!(&*a.epoch_secret, &a.signing.seed()[..]);
    }
}
