//! User identities and device certificates (spec §5.4).
//!
//! A user is an Ed25519 identity key. Each device has its own Ed25519 signing key
//! and one X25519 key. A device certificate binds them: the *binding* names
//! `(user_key, device_key, device_x25519)`; the device signs it to prove possession
//! of its key (and to vouch for its X25519 key), and the user key signs it to certify
//! the device. Verifiers check both signatures over the binding bytes as received.

use alloc::vec::Vec;

use clientful_proto::v1 as pb;
use rand_core::CryptoRng;

use crate::error::Error;
use crate::keys::{PublicKey, SigningKey, X25519Public, X25519Secret};
use crate::limits::{ID_LEN, MAX_CERTIFICATE_BYTES, SIGNATURE_LEN};
use crate::{labels, suite, wire};

/// Certificate format version (ID-2).
pub const CERTIFICATE_VERSION: u32 = 1;

/// A device's secret keys.
#[derive(Debug)]
pub struct DeviceKeys {
    /// The device signing key.
    pub signing: SigningKey,
    /// The device key-agreement key.
    pub x25519: X25519Secret,
}

impl DeviceKeys {
    /// Fresh device keys.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        DeviceKeys {
            signing: SigningKey::generate(rng),
            x25519: X25519Secret::generate(rng),
        }
    }
}

/// A verified device certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDevice {
    /// `HashWithLabel("id/device", binding)`.
    pub device_id: [u8; 32],
    /// The certifying user's identity key.
    pub user_key: PublicKey,
    /// The device signing key.
    pub device_key: PublicKey,
    /// The device X25519 key.
    pub device_x25519: X25519Public,
}

/// Issues a certificate for `device`, signed by `user` (ID-3). Returns the encoded
/// `DeviceCertificate`.
pub fn issue_certificate(user: &SigningKey, device: &DeviceKeys) -> Result<Vec<u8>, Error> {
    let binding = wire::encode(&pb::DeviceBinding {
        version: CERTIFICATE_VERSION,
        user_key: user.public_bytes().to_vec(),
        device_key: device.signing.public_bytes().to_vec(),
        device_x25519: device.x25519.public().as_bytes().to_vec(),
    });
    sign_binding(user, &device.signing, binding)
}

/// Signs arbitrary binding bytes with both keys (vector generation and saboteurs).
pub fn sign_binding(
    user: &SigningKey,
    device: &SigningKey,
    binding: Vec<u8>,
) -> Result<Vec<u8>, Error> {
    let device_signature = device.sign_with_label(labels::SIG_DEVICE_POP, &binding)?;
    let user_signature = user.sign_with_label(labels::SIG_DEVICE_CERT, &binding)?;
    Ok(wire::encode(&pb::DeviceCertificate {
        binding,
        device_signature: device_signature.to_vec(),
        user_signature: user_signature.to_vec(),
    }))
}

/// Verifies a device certificate (spec §5.4, checks ID-V1..ID-V7 in order). With
/// `expected_user`, a certificate of another user is `WRONG_CONTEXT`.
pub fn verify_certificate(
    bytes: &[u8],
    expected_user: Option<&[u8; 32]>,
) -> Result<VerifiedDevice, Error> {
    // ID-V1: size.
    if bytes.len() > MAX_CERTIFICATE_BYTES {
        return Err(Error::LimitExceeded {
            what: "certificate size",
            max: MAX_CERTIFICATE_BYTES as u64,
            actual: bytes.len() as u64,
        });
    }
    // ID-V2: outer message.
    let cert: pb::DeviceCertificate = wire::decode(bytes, &wire::DEVICE_CERTIFICATE)?;
    if cert.binding.is_empty() {
        return Err(Error::malformed("DeviceCertificate", "missing binding"));
    }
    if cert.device_signature.len() != SIGNATURE_LEN {
        return Err(Error::malformed(
            "DeviceCertificate.device_signature",
            "length is not 64",
        ));
    }
    if cert.user_signature.len() != SIGNATURE_LEN {
        return Err(Error::malformed(
            "DeviceCertificate.user_signature",
            "length is not 64",
        ));
    }
    // ID-V3: binding.
    let b: pb::DeviceBinding = wire::decode(&cert.binding, &wire::DEVICE_BINDING)?;
    if b.version != CERTIFICATE_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "certificate version",
            value: u64::from(b.version),
        });
    }
    for (field, what) in [
        (&b.user_key, "DeviceBinding.user_key"),
        (&b.device_key, "DeviceBinding.device_key"),
        (&b.device_x25519, "DeviceBinding.device_x25519"),
    ] {
        if field.len() != ID_LEN {
            return Err(Error::malformed(what, "length is not 32"));
        }
    }
    // ID-V4: context.
    if let Some(user) = expected_user
        && b.user_key.as_slice() != user.as_slice()
    {
        return Err(Error::WrongContext { what: "user key" });
    }
    // ID-V5: keys.
    let user_key = PublicKey::from_bytes(&b.user_key)?;
    let device_key = PublicKey::from_bytes(&b.device_key)?;
    let device_x25519 = X25519Public::from_bytes(&b.device_x25519)?;
    if user_key == device_key {
        return Err(Error::InvalidKey {
            what: "device key",
            reason: "equal to the user key",
        });
    }
    // ID-V6: proof of possession, then certification.
    device_key.verify_with_label(
        labels::SIG_DEVICE_POP,
        &cert.binding,
        &cert.device_signature,
        "device proof of possession",
    )?;
    user_key.verify_with_label(
        labels::SIG_DEVICE_CERT,
        &cert.binding,
        &cert.user_signature,
        "user certification",
    )?;
    // ID-V7: id.
    let device_id = suite::hash_with_label(labels::ID_DEVICE, &cert.binding)?;
    Ok(VerifiedDevice {
        device_id,
        user_key,
        device_key,
        device_x25519,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn issue_and_verify() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let user = SigningKey::generate(&mut rng);
        let device = DeviceKeys::generate(&mut rng);
        let cert = issue_certificate(&user, &device).expect("issue");
        let v = verify_certificate(&cert, Some(&user.public_bytes())).expect("valid");
        assert_eq!(v.device_key.as_bytes(), &device.signing.public_bytes());
        let other = SigningKey::generate(&mut rng);
        assert_eq!(
            verify_certificate(&cert, Some(&other.public_bytes()))
                .unwrap_err()
                .class(),
            ErrorClass::WrongContext
        );
    }

    #[test]
    fn certificate_signed_by_another_user_is_rejected() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let user = SigningKey::generate(&mut rng);
        let mallory = SigningKey::generate(&mut rng);
        let device = DeviceKeys::generate(&mut rng);
        let binding = wire::encode(&pb::DeviceBinding {
            version: 1,
            user_key: user.public_bytes().to_vec(),
            device_key: device.signing.public_bytes().to_vec(),
            device_x25519: device.x25519.public().as_bytes().to_vec(),
        });
        let cert = sign_binding(&mallory, &device.signing, binding).expect("sign");
        assert_eq!(
            verify_certificate(&cert, None).unwrap_err().class(),
            ErrorClass::BadSignature
        );
    }
}
