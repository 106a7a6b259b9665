//! The recovery exchange end to end, and each bad input's class (REC-7's order).

use alloc::vec::Vec;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::error::ErrorClass;
use crate::keys::SigningKey;

struct HolderDevice {
    id: [u8; 32],
    secret: X25519Secret,
}

fn holders(n: u8) -> (Vec<HolderDevice>, Vec<Holder>) {
    let devices: Vec<HolderDevice> = (1..=n)
        .map(|i| HolderDevice {
            id: [i; 32],
            secret: X25519Secret::from_bytes(&[i.wrapping_add(100); 32]),
        })
        .collect();
    let public = devices
        .iter()
        .map(|d| Holder {
            device_id: d.id,
            x25519: d.secret.public(),
        })
        .collect();
    (devices, public)
}

fn world(n: u8, k: u32) -> (ChaCha20Rng, Vec<HolderDevice>, Vec<u8>, [u8; 32]) {
    let mut rng = ChaCha20Rng::from_seed([5; 32]);
    let seed = [42u8; 32];
    let (devices, public) = holders(n);
    let set = create_set(&mut rng, &seed, "Alice", &public, k).unwrap();
    (rng, devices, set, seed)
}

fn releases(
    rng: &mut ChaCha20Rng,
    set: &[u8],
    devices: &[HolderDevice],
    which: &[usize],
    request: &RequestSecret,
) -> Vec<Vec<u8>> {
    let decoded = decode_set(set).unwrap();
    let asked = decode_request(request.request()).unwrap();
    which
        .iter()
        .map(|&i| {
            let held = decoded
                .open_share(&devices[i].id, &devices[i].secret)
                .unwrap();
            release(rng, &held, &asked).unwrap()
        })
        .collect()
}

fn refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(Vec::as_slice).collect()
}

#[test]
fn any_k_holders_restore_the_user_and_fewer_cannot() {
    let (mut rng, devices, set, seed) = world(5, 3);
    let request = RequestSecret::generate(&mut rng).unwrap();
    for which in [[0usize, 1, 2], [4, 2, 0], [1, 3, 4]] {
        let r = releases(&mut rng, &set, &devices, &which, &request);
        let restored = restore(&request, &refs(&r)).unwrap();
        assert_eq!(*restored.user_seed, seed);
        assert_eq!(
            restored.user_key,
            SigningKey::from_seed(&seed).public_bytes()
        );
        assert_eq!(restored.name, "Alice");
    }
    // Two of three: INVALID_OPERATION, and the same share twice counts once.
    let r = releases(&mut rng, &set, &devices, &[0, 3], &request);
    let e = restore(&request, &refs(&r)).unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidOperation);
    let r = releases(&mut rng, &set, &devices, &[0, 3, 3], &request);
    let e = restore(&request, &refs(&r)).unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidOperation);
    assert_eq!(
        restore(&request, &[]).unwrap_err().class(),
        ErrorClass::InvalidOperation
    );
}

#[test]
fn a_release_for_another_request_or_holder_is_refused() {
    let (mut rng, devices, set, _) = world(3, 2);
    let mine = RequestSecret::generate(&mut rng).unwrap();
    let theirs = RequestSecret::generate(&mut rng).unwrap();
    let r = releases(&mut rng, &set, &devices, &[0, 1], &theirs);
    // Sealed to another request's id: WRONG_CONTEXT before any decryption.
    let e = restore(&mine, &refs(&r)).unwrap_err();
    assert_eq!(e.class(), ErrorClass::WrongContext);
    // A device that holds no share of the set.
    let decoded = decode_set(&set).unwrap();
    let stranger = X25519Secret::from_bytes(&[9; 32]);
    let e = decoded.open_share(&[77; 32], &stranger).unwrap_err();
    assert_eq!(e.class(), ErrorClass::WrongContext);
    // The right holder id with the wrong key: DECRYPT_FAILED.
    let e = decoded.open_share(&devices[0].id, &stranger).unwrap_err();
    assert_eq!(e.class(), ErrorClass::DecryptFailed);
}

#[test]
fn releases_of_two_sets_do_not_mix_and_a_wrong_share_value_fails_to_decrypt() {
    let (mut rng, devices, set_a, _) = world(3, 2);
    let (_, public) = holders(3);
    let set_b = create_set(&mut rng, &[43; 32], "Alice", &public, 2).unwrap();
    let request = RequestSecret::generate(&mut rng).unwrap();
    let mut r = releases(&mut rng, &set_a, &devices, &[0], &request);
    r.extend(releases(&mut rng, &set_b, &devices, &[1], &request));
    let e = restore(&request, &refs(&r)).unwrap_err();
    assert_eq!(e.class(), ErrorClass::WrongContext);

    // A holder that lies about its value (a share re-made with another value for the
    // same kit and index): combining gives another secret, and the kit does not open.
    let decoded = decode_set(&set_a).unwrap();
    let asked = decode_request(request.request()).unwrap();
    let mut held = decoded
        .open_share(&devices[0].id, &devices[0].secret)
        .unwrap();
    let mut share = pb::RecoveryShare::decode(held.share.as_slice()).unwrap();
    share.value[0] ^= 1;
    held.share = Zeroizing::new(share.encode_to_vec());
    let lie = release(&mut rng, &held, &asked).unwrap();
    let honest = releases(&mut rng, &set_a, &devices, &[1], &request);
    let e = restore(&request, &[lie.as_slice(), honest[0].as_slice()]).unwrap_err();
    assert_eq!(e.class(), ErrorClass::DecryptFailed);
    // The same index twice with different values: INVALID_OPERATION.
    let honest0 = releases(&mut rng, &set_a, &devices, &[0], &request);
    let e = restore(&request, &[honest0[0].as_slice(), lie.as_slice()]).unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidOperation);
}

#[test]
fn parameters_and_shapes_are_checked() {
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    let (_, public) = holders(17);
    let seed = [3u8; 32];
    let e = create_set(&mut rng, &seed, "", &public[..3], 1).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Malformed, "k = 1");
    let e = create_set(&mut rng, &seed, "", &public[..3], 4).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Malformed, "k > n");
    let e = create_set(&mut rng, &seed, "", &public, 2).unwrap_err();
    assert_eq!(e.class(), ErrorClass::LimitExceeded, "n = 17");
    let mut twice = public[..2].to_vec();
    twice.push(public[0].clone());
    let e = create_set(&mut rng, &seed, "", &twice, 2).unwrap_err();
    assert_eq!(
        e.class(),
        ErrorClass::InvalidOperation,
        "one device, two shares"
    );
    // Sixteen holders fit the set limit.
    let set = create_set(&mut rng, &seed, &"n".repeat(256), &public[..16], 16).unwrap();
    assert!(set.len() <= MAX_SET_BYTES, "{} bytes", set.len());
    assert_eq!(decode_set(&set).unwrap().holders().len(), 16);
    // A set with a box missing.
    let mut m = pb::RecoverySet::decode(set.as_slice()).unwrap();
    m.sealed_shares.pop();
    let e = decode_set(&m.encode_to_vec()).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Malformed);
    // A request of another version, and garbage.
    let mut req =
        pb::RecoveryRequest::decode(RequestSecret::generate(&mut rng).unwrap().request()).unwrap();
    req.version = 2;
    let e = decode_request(&req.encode_to_vec()).unwrap_err();
    assert_eq!(e.class(), ErrorClass::UnsupportedVersion);
    assert!(decode_request(&[0xff; 40]).is_err());
    assert_eq!(
        decode_request(&[0; 200]).unwrap_err().class(),
        ErrorClass::LimitExceeded
    );
}

#[test]
fn explicit_randomness_gives_the_same_kit() {
    let (_, public) = holders(3);
    let randomness = || SetRandomness {
        secret: Zeroizing::new([8; 32]),
        nonce: [6; NONCE_LEN],
        coefficients: (0..32).map(|j| alloc::vec![j as u8]).collect(),
    };
    let mut rng1 = ChaCha20Rng::from_seed([1; 32]);
    let mut rng2 = ChaCha20Rng::from_seed([2; 32]);
    let a = create_set_with(&mut rng1, &[1; 32], "A", &public, 2, &randomness()).unwrap();
    let b = create_set_with(&mut rng2, &[1; 32], "A", &public, 2, &randomness()).unwrap();
    let (a, b) = (decode_set(&a).unwrap(), decode_set(&b).unwrap());
    // The kit depends only on the explicit randomness; the boxes differ (ephemeral keys).
    assert_eq!(a.kit(), b.kit());
    let opened = a.kit().open(&[8; 32]).unwrap();
    assert_eq!(*opened.user_seed, [1; 32]);
}
