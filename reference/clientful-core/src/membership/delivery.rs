//! Key delivery (spec §11.10, KEY-14 to KEY-17): key messages and welcomes
//! carried as envelopes of the space's delivery document, so that storage
//! segments and broker rooms, which carry only envelopes, carry them too.
//!
//! A carrier is an ordinary sealed envelope (seq 1, no predecessors) whose body
//! is the `KeyMessage` or `SealedKey` bytes, unchanged. It is sealed under an
//! epoch its recipients already hold: a rotation's key message under each epoch
//! the rotation replaces, a welcome under the invite epoch of the redemption (or
//! the link epoch of a device link, MEM-24). The carrier adds reachability, not
//! secrecy: what it carries is already sealed to each device.

use alloc::vec::Vec;

use rand_core::CryptoRng;

use crate::content::ContentType;
use crate::envelope::{self, SealRequest};
use crate::error::Error;
use crate::keys::{EpochKey, SigningKey};
use crate::{labels, suite};

/// Content type of a carrier whose body is a `KeyMessage` (KEY-15).
pub const CT_KEY_MESSAGE: u32 = ContentType::KeyMessage.value();
/// Content type of a carrier whose body is a welcome `SealedKey` (KEY-15).
pub const CT_WELCOME: u32 = ContentType::Welcome.value();
/// Content type of a carrier whose body is a `RecoverySet` (REC-4).
pub const CT_RECOVERY_SET: u32 = ContentType::RecoverySet.value();
/// Content type of a carrier whose body is a `SignedAttestation` (ATT-12).
pub const CT_ATTESTATION: u32 = ContentType::Attestation.value();

/// The document id of a space's delivery document (KEY-14).
pub fn delivery_doc_id(space_id: &[u8; 32]) -> Result<[u8; 32], Error> {
    suite::hash_with_label(labels::ID_DELIVERY_DOC, space_id)
}

/// Seals `body` (a key message, a welcome, a recovery set or an attestation) in a carrier envelope under `epoch`
/// (KEY-15). Returns the envelope bytes.
pub fn seal_carrier<R: CryptoRng + ?Sized>(
    rng: &mut R,
    device: &SigningKey,
    space_id: &[u8; 32],
    epoch: &EpochKey,
    content_type: u32,
    body: &[u8],
) -> Result<Vec<u8>, Error> {
    if ![CT_KEY_MESSAGE, CT_WELCOME, CT_RECOVERY_SET, CT_ATTESTATION].contains(&content_type) {
        return Err(Error::InvalidOperation {
            reason: "not a key-delivery content type",
        });
    }
    Ok(envelope::seal(
        device,
        epoch,
        &SealRequest {
            space_id: *space_id,
            doc_id: delivery_doc_id(space_id)?,
            seq: 1,
            prev: None,
            preds: Vec::new(),
            content_type,
            body,
        },
        rng,
    )?
    .bytes)
}
