//! Unit tests of the WebAuthn verifier with a software authenticator.

use super::*;

const USER: [u8; 32] = [7; 32];
const SALT: [u8; 16] = [9; 16];
const RP: &str = "localhost";
const ORIGIN: &str = "http://localhost:8080";

fn key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[0x33; 32]).unwrap()
}

fn policy() -> WebAuthnPolicy {
    WebAuthnPolicy {
        origins: vec![ORIGIN.into()],
        rp_ids: vec![RP.into()],
        require_user_verification: false,
    }
}

fn good() -> WebAuthnEvidence {
    assert_es256(
        &key(),
        RP,
        ORIGIN,
        b"cred-1",
        &challenge_for(&USER, &SALT),
        FLAG_UP | FLAG_UV,
    )
}

fn class(e: &WebAuthnEvidence) -> ErrorClass {
    verify(&e.encode(), &USER, &SALT, &policy())
        .unwrap_err()
        .class()
}

#[test]
fn valid_es256() {
    let v = verify(&good().encode(), &USER, &SALT, &policy()).unwrap();
    assert_eq!(v.subject, "localhost|Y3JlZC0x");
    let mut strict = policy();
    strict.require_user_verification = true;
    assert!(verify(&good().encode(), &USER, &SALT, &strict).is_ok());
}

#[test]
fn valid_ed25519() {
    use ed25519_dalek::Signer;
    let sk = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let mut e = good();
    e.cose_key = CoseKey::encode_ed25519(&sk.verifying_key());
    e.signature = sk
        .sign(&signed_bytes(&e.authenticator_data, &e.client_data_json))
        .to_bytes()
        .to_vec();
    assert!(verify(&e.encode(), &USER, &SALT, &policy()).is_ok());
    e.signature[0] ^= 1;
    assert_eq!(class(&e), ErrorClass::BadSignature);
}

#[test]
fn each_class() {
    // Tampered clientDataJSON (still JSON): the signature no longer verifies.
    let mut e = good();
    e.client_data_json = String::from_utf8(e.client_data_json)
        .unwrap()
        .replace("false", "false ")
        .into_bytes();
    assert_eq!(class(&e), ErrorClass::BadSignature);
    // Signed for another origin, another challenge, as a create, on another RP.
    let challenge = challenge_for(&USER, &SALT);
    let other = assert_es256(
        &key(),
        RP,
        "http://evil.localhost",
        b"c",
        &challenge,
        FLAG_UP,
    );
    assert_eq!(class(&other), ErrorClass::WrongContext);
    let other = assert_es256(&key(), RP, ORIGIN, b"c", &[1; 32], FLAG_UP);
    assert_eq!(class(&other), ErrorClass::WrongContext);
    let other = assert_es256(&key(), "example.com", ORIGIN, b"c", &challenge, FLAG_UP);
    assert_eq!(class(&other), ErrorClass::WrongContext);
    // The RP id field says localhost but the hash is of another name.
    let mut other = assert_es256(&key(), "example.com", ORIGIN, b"c", &challenge, FLAG_UP);
    other.rp_id = RP.into();
    assert_eq!(
        verify(&other.encode(), &USER, &SALT, &policy()).unwrap_err(),
        WebAuthnError::WrongContext("rpIdHash")
    );
    // Another user key.
    assert_eq!(
        verify(&good().encode(), &[1; 32], &SALT, &policy()).unwrap_err(),
        WebAuthnError::WrongContext("challenge")
    );
    // No UP; no UV when required.
    let other = assert_es256(&key(), RP, ORIGIN, b"c", &challenge, 0);
    assert_eq!(class(&other), ErrorClass::InvalidOperation);
    let other = assert_es256(&key(), RP, ORIGIN, b"c", &challenge, FLAG_UP);
    let mut strict = policy();
    strict.require_user_verification = true;
    assert_eq!(
        verify(&other.encode(), &USER, &SALT, &strict)
            .unwrap_err()
            .class(),
        ErrorClass::InvalidOperation
    );
    // Another key than the signer's.
    let mut e = good();
    e.cose_key = CoseKey::encode_es256(
        p256::ecdsa::SigningKey::from_slice(&[0x44; 32])
            .unwrap()
            .verifying_key(),
    );
    assert_eq!(class(&e), ErrorClass::BadSignature);
    // Unknown COSE algorithm (RS256).
    let mut e = good();
    e.cose_key = cose::encode(&ciborium::Value::Map(vec![
        (1.into(), 3.into()),
        (3.into(), (-257).into()),
    ]));
    assert_eq!(class(&e), ErrorClass::UnsupportedVersion);
    // Not a point.
    let mut e = good();
    let mut bad = e.cose_key.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    e.cose_key = bad;
    assert_eq!(class(&e), ErrorClass::InvalidKey);
    // Malformed pieces.
    let mut e = good();
    e.client_data_json = b"{\"type\":1}".to_vec();
    assert_eq!(class(&e), ErrorClass::Malformed);
    let mut e = good();
    e.authenticator_data.push(0);
    assert_eq!(class(&e), ErrorClass::Malformed);
    let mut bytes = good().encode();
    bytes.push(0);
    assert_eq!(
        verify(&bytes, &USER, &SALT, &policy()).unwrap_err().class(),
        ErrorClass::Malformed
    );
    let mut e = good();
    e.signature = vec![0; MAX_SIGNATURE_LEN + 1];
    assert_eq!(class(&e), ErrorClass::LimitExceeded);
}

#[test]
fn attested_credential_data() {
    let e = good();
    let mut reg = e.authenticator_data[..32].to_vec();
    reg.push(FLAG_UP | authdata::FLAG_AT);
    reg.extend_from_slice(&0u32.to_be_bytes());
    reg.extend_from_slice(&[0xaa; 16]);
    reg.extend_from_slice(&6u16.to_be_bytes());
    reg.extend_from_slice(b"cred-1");
    reg.extend_from_slice(&e.cose_key);
    let (id, key) = authdata::attested_credential(&reg).unwrap();
    assert_eq!(id, b"cred-1");
    assert_eq!(key, e.cose_key);
    // An assertion must not carry it.
    assert!(AuthData::parse_assertion(&reg).is_err());
    reg.push(0xa0);
    assert!(authdata::attested_credential(&reg).is_err());
    reg[32] |= authdata::FLAG_ED;
    assert_eq!(authdata::attested_credential(&reg).unwrap().1, e.cose_key);
}
