//! Membership attacks the runner plays itself (issue 22, findings 1 and 3): it
//! knows every user seed of a scenario, so it can act as a thief holding a
//! device key certified by the creator's user key (a rival `CREATE_SPACE`,
//! MEM-26, MEM-27), or as a writer handing out a private epoch no rotation
//! created (KEY-18, KEY-19). Only public artefacts and exported test secrets
//! (CONF-52) cross the harness; the implementation under test sees ordinary
//! space items.

use clientful_core::envelope;
use clientful_core::identity::{self, DeviceKeys};
use clientful_core::keys::{EpochKey, SigningKey};
use clientful_core::membership::SpaceReplica;
use clientful_core::membership::epoch::{self, Recipient};
use clientful_core::membership::ops::OpBody;
use clientful_core::membership::space::Identity;
use clientful_core::testkit::forge;
use rand_chacha::ChaCha20Rng;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The recipient a device certificate names.
pub fn recipient(certificate: &[u8]) -> Result<Recipient, String> {
    let v = identity::verify_certificate(certificate, None).map_err(err)?;
    Ok(Recipient {
        device_id: v.device_id,
        x25519: v.device_x25519,
    })
}

/// A forging device: its signing key and its certificate.
pub type RivalDevice = (SigningKey, Vec<u8>);

/// A rival genesis: a fresh device certified by the creator's user key signs
/// a `CREATE_SPACE` with the creator's user key and the nonce of the real
/// genesis (read from `genesis_env` with the creator's exported secrets), so
/// the same space id, re-sealed until its envelope id is below the real one
/// (the forgery is `clientful_core::testkit::forge::rival_genesis`).
/// Returns the rival envelope, its first epoch and the rival's signing device
/// (its key and certificate), which signs the welcomes handing that epoch out.
pub fn rival_genesis(
    rng: &mut ChaCha20Rng,
    space_id: [u8; 32],
    genesis_env: &[u8],
    secrets: &[EpochKey],
    creator_user_seed: &[u8; 32],
) -> Result<(Vec<u8>, EpochKey, RivalDevice), String> {
    let real = envelope::decode(genesis_env).map_err(err)?.id;
    // Read the nonce as a member would: open the genesis.
    let creator = SigningKey::from_seed(creator_user_seed);
    let reader = Identity::new(&creator, DeviceKeys::generate(rng)).map_err(err)?;
    let mut obs = SpaceReplica::join(space_id, real, reader).map_err(err)?;
    obs.import_keys(secrets);
    obs.receive(genesis_env);
    let nonce = match obs.op(&real).map(|o| &o.body) {
        Some(OpBody::CreateSpace { nonce, .. }) => *nonce,
        _ => return Err("the genesis did not open with the creator's secrets".into()),
    };
    let forged = forge::rival_genesis(rng, &creator, space_id, nonce, Some(&real)).map_err(err)?;
    Ok((
        forged.envelope,
        forged.epoch,
        (forged.device.signing, forged.device.certificate),
    ))
}

/// A welcome (KEY-20) signed by `signer` (a device key and its certificate),
/// claiming the standing `added_by` gives it (KEY-21), sealed to `to`.
pub fn signed_welcome(
    rng: &mut ChaCha20Rng,
    space_id: &[u8; 32],
    signer: &(SigningKey, Vec<u8>),
    added_by: [u8; 32],
    to: &Recipient,
    epochs: &[EpochKey],
) -> Result<Vec<u8>, String> {
    let s = epoch::WelcomeSigner {
        signing: &signer.0,
        certificate: &signer.1,
        added_by,
    };
    epoch::welcome(rng, space_id, &s, to, epochs).map_err(err)
}

/// A device key of a fresh user, never added to any space, and its
/// certificate: the signer of welcomes handed out by someone outside the log.
pub fn outsider(rng: &mut ChaCha20Rng) -> Result<(SigningKey, Vec<u8>), String> {
    let user = SigningKey::generate(rng);
    let me = Identity::new(&user, DeviceKeys::generate(rng)).map_err(err)?;
    Ok((
        SigningKey::from_seed(&me.device.signing.seed()),
        me.certificate,
    ))
}
