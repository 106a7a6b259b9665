//! Cases of the `attestation` family for `did:plc` evidence (spec §14.6,
//! ATT-15..ATT-19, ATT-LIM-6): a second `verify` group whose records carry a PLC
//! operation log made here (secp256k1 and P-256 rotation and verification keys from
//! the family rng; RFC 6979 signatures, low-S) and a statement naming the binding.
//! Valid logs with each curve, and one case per refusal: another DID, a broken
//! `prev` link, an operation signed by a key that is not a rotation key, a high-S
//! signature, a statement for another binding, a tombstone, the key dropped by the
//! latest operation, an Ed25519 verification key, an unknown operation type, a bad
//! DID form, too many operations and evidence over its limit. Called by
//! `attestation.rs` after the other groups, so earlier cases keep their bytes.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clientful_attest::plc::{self, Op};
use clientful_attest::{Draft, Kind, sign, verify};
use clientful_core::ErrorClass;
use clientful_core::keys::SigningKey;
use rand_chacha::ChaCha20Rng;
use rand_core::Rng as _;
use serde_json::{Value, json};

use crate::generate::FileBuilder;
use crate::hexutil::hex;

/// A PLC key made from the family rng.
enum Key {
    K(k256::ecdsa::SigningKey),
    P(p256::ecdsa::SigningKey),
}

impl Key {
    fn k256(rng: &mut ChaCha20Rng) -> Result<Key, String> {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        k256::ecdsa::SigningKey::from_slice(&b)
            .map(Key::K)
            .map_err(|e| e.to_string())
    }

    fn p256(rng: &mut ChaCha20Rng) -> Result<Key, String> {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        p256::ecdsa::SigningKey::from_slice(&b)
            .map(Key::P)
            .map_err(|e| e.to_string())
    }

    fn did(&self) -> String {
        match self {
            Key::K(k) => plc::did_key_k256(k.verifying_key()),
            Key::P(k) => plc::did_key_p256(k.verifying_key()),
        }
    }

    /// Low-S `r || s` over SHA-256 of `msg` (RFC 6979).
    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        use k256::ecdsa::signature::Signer as _;
        match self {
            Key::K(k) => {
                let s: k256::ecdsa::Signature = k.sign(msg);
                s.normalize_s().to_bytes().to_vec()
            }
            Key::P(k) => {
                let s: p256::ecdsa::Signature = k.sign(msg);
                s.normalize_s().to_bytes().to_vec()
            }
        }
    }

    /// The high-S twin of [`Key::sign`] (secp256k1 only).
    fn sign_high_s(&self, msg: &[u8]) -> Result<Vec<u8>, String> {
        use k256::ecdsa::signature::Signer as _;
        let Key::K(k) = self else {
            return Err("high-S: secp256k1 only".into());
        };
        let s: k256::ecdsa::Signature = k.sign(msg);
        let (r, sv) = s.normalize_s().split_scalars();
        k256::ecdsa::Signature::from_scalars(r, -*sv)
            .map(|h| h.to_bytes().to_vec())
            .map_err(|e| e.to_string())
    }
}

fn signed(mut op: Op, by: &Key) -> Op {
    let sig = by.sign(&op.dag_cbor(false));
    op.set_sig(&sig);
    op
}

fn operation(rotation: &Key, methods: &[(&str, String)], prev: Option<String>) -> Op {
    Op::Operation {
        rotation_keys: vec![rotation.did()],
        verification_methods: methods
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect(),
        also_known_as: vec!["at://alice.example.com".into()],
        services: BTreeMap::from([(
            "atproto_pds".to_string(),
            plc::Service {
                type_: "AtprotoPersonalDataServer".into(),
                endpoint: "https://pds.example.com".into(),
            },
        )]),
        prev,
        sig: None,
    }
}

fn evidence(log: &[Value], method: &str, sig: &[u8]) -> Vec<u8> {
    json!({"log": log, "method": method, "sig": URL_SAFE_NO_PAD.encode(sig)})
        .to_string()
        .into_bytes()
}

/// Adds the group. `context` is the verifier context JSON at `t0`; `verified` renders
/// a verified record as the `verify` operation's output.
pub fn add_cases(
    f: &mut FileBuilder,
    rng: &mut ChaCha20Rng,
    user: &SigningKey,
    salt: [u8; 16],
    t0: u64,
    context: &Value,
    verified: &dyn Fn(&clientful_attest::Verified) -> Value,
) -> Result<(), String> {
    let rotation = Key::k256(rng)?;
    let pds = Key::k256(rng)?;
    let cf = Key::k256(rng)?;
    let stranger = Key::k256(rng)?;
    let p_rotation = Key::p256(rng)?;
    let p_cf = Key::p256(rng)?;
    let user_key = user.public_bytes();
    let binding = clientful_attest::binding(&user_key, &salt).map_err(|e| e.to_string())?;

    let rec = |evidence: &[u8], subject: &str| {
        sign(
            user,
            &Draft {
                kind: Kind::DidDocument,
                evidence,
                subject,
                salt,
                created_at_ms: t0,
            },
        )
        .map_err(|e| e.to_string())
    };
    let input = |signed: &[u8]| json!({"signed": hex(signed), "context": context});

    f.group(
        "verify",
        "Verify one SignedAttestation whose subject is a did:plc DID: the evidence is \
         {log, method, sig}, the DID's operation log as a PLC directory serves it and a \
         statement naming the binding, signed by the key `method` names in the latest \
         operation (ATT-15..ATT-19).",
        json!({}),
    );

    // secp256k1: genesis (rotation R, atproto P) then an update adding `clientful`.
    let genesis = signed(
        operation(&rotation, &[("atproto", pds.did())], None),
        &rotation,
    );
    let did = genesis.did();
    let update = signed(
        operation(
            &rotation,
            &[("atproto", pds.did()), ("clientful", cf.did())],
            Some(genesis.cid()),
        ),
        &rotation,
    );
    let log = [genesis.to_json(), update.to_json()];
    let stmt = plc::statement(&did, "clientful", &binding);
    let good = evidence(&log, "clientful", &cf.sign(stmt.as_bytes()));
    let r = rec(&good, &did)?;
    let v = verify(&r, &clientful_attest::VerifierContext::new(t0)).map_err(|e| e.to_string())?;
    f.valid(
        "plc-k256",
        "A did:plc log (genesis, then an update adding the `clientful` key), secp256k1 \
         rotation and verification keys; the statement signed by the `clientful` key.",
        &["ATT-15", "ATT-16", "ATT-17", "ATT-18"],
        &["Ktv"],
        input(&r),
        verified(&v),
    );

    // P-256: a one-operation log.
    let p_genesis = signed(
        operation(&p_rotation, &[("clientful", p_cf.did())], None),
        &p_rotation,
    );
    let p_did = p_genesis.did();
    let p_stmt = plc::statement(&p_did, "clientful", &binding);
    let r = rec(
        &evidence(
            &[p_genesis.to_json()],
            "clientful",
            &p_cf.sign(p_stmt.as_bytes()),
        ),
        &p_did,
    )?;
    let v = verify(&r, &clientful_attest::VerifierContext::new(t0)).map_err(|e| e.to_string())?;
    f.valid(
        "plc-p256",
        "A one-operation did:plc log with P-256 rotation and verification keys.",
        &["ATT-16", "ATT-17", "ATT-18"],
        &["Ktv"],
        input(&r),
        verified(&v),
    );

    let mut bad = |name: &str,
                   what: &str,
                   refs: &[&str],
                   class: ErrorClass,
                   flag: &str,
                   ev: &[u8],
                   subject: &str|
     -> Result<(), String> {
        let r = rec(ev, subject)?;
        f.invalid(name, what, refs, class, &[flag], input(&r));
        Ok(())
    };

    let other_did = p_did.clone();
    bad(
        "plc-wrong-did",
        "A valid log for another DID: the genesis does not hash to the subject.",
        &["ATT-17"],
        ErrorClass::WrongContext,
        "WrongContext",
        &good,
        &other_did,
    )?;
    let broken = signed(
        operation(
            &rotation,
            &[("atproto", pds.did()), ("clientful", cf.did())],
            Some(update.cid()),
        ),
        &rotation,
    );
    bad(
        "plc-broken-chain",
        "An update whose prev is not the CID of the operation before it.",
        &["ATT-17"],
        ErrorClass::InvalidOperation,
        "Forgery",
        &evidence(
            &[genesis.to_json(), broken.to_json()],
            "clientful",
            &cf.sign(stmt.as_bytes()),
        ),
        &did,
    )?;
    let forged = signed(
        operation(
            &rotation,
            &[("atproto", pds.did()), ("clientful", cf.did())],
            Some(genesis.cid()),
        ),
        &stranger,
    );
    bad(
        "plc-op-not-signed-by-rotation-key",
        "An update signed by a key that is not a rotation key of the genesis.",
        &["ATT-17"],
        ErrorClass::BadSignature,
        "Forgery",
        &evidence(
            &[genesis.to_json(), forged.to_json()],
            "clientful",
            &cf.sign(stmt.as_bytes()),
        ),
        &did,
    )?;
    let mut high = operation(
        &rotation,
        &[("atproto", pds.did()), ("clientful", cf.did())],
        Some(genesis.cid()),
    );
    let hs = rotation.sign_high_s(&high.dag_cbor(false))?;
    high.set_sig(&hs);
    bad(
        "plc-high-s",
        "An update whose signature has s in the upper half (the low-S twin verifies).",
        &["ATT-17"],
        ErrorClass::BadSignature,
        "Forgery",
        &evidence(
            &[genesis.to_json(), high.to_json()],
            "clientful",
            &cf.sign(stmt.as_bytes()),
        ),
        &did,
    )?;
    let other_binding = [0x5a; 32];
    bad(
        "plc-statement-other-binding",
        "The statement names another binding (another user key or salt).",
        &["ATT-18"],
        ErrorClass::BadSignature,
        "WrongContext",
        &evidence(
            &log,
            "clientful",
            &cf.sign(plc::statement(&did, "clientful", &other_binding).as_bytes()),
        ),
        &did,
    )?;
    bad(
        "plc-statement-by-another-key",
        "The statement names `atproto`, but the `clientful` key signed it.",
        &["ATT-18"],
        ErrorClass::BadSignature,
        "Forgery",
        &evidence(
            &log,
            "atproto",
            &cf.sign(plc::statement(&did, "atproto", &binding).as_bytes()),
        ),
        &did,
    )?;
    let tomb = signed(
        Op::Tombstone {
            prev: update.cid(),
            sig: None,
        },
        &rotation,
    );
    bad(
        "plc-tombstone",
        "A log that ends with a tombstone: the DID is deactivated.",
        &["ATT-17"],
        ErrorClass::InvalidOperation,
        "MissingKey",
        &evidence(
            &[genesis.to_json(), update.to_json(), tomb.to_json()],
            "clientful",
            &cf.sign(stmt.as_bytes()),
        ),
        &did,
    )?;
    let dropped = signed(
        operation(&rotation, &[("atproto", pds.did())], Some(update.cid())),
        &rotation,
    );
    bad(
        "plc-key-dropped",
        "The latest operation no longer lists the `clientful` key.",
        &["ATT-18", "ATT-19"],
        ErrorClass::InvalidOperation,
        "MissingKey",
        &evidence(
            &[genesis.to_json(), update.to_json(), dropped.to_json()],
            "clientful",
            &cf.sign(stmt.as_bytes()),
        ),
        &did,
    )?;
    let ed = signed(
        operation(
            &rotation,
            &[(
                "clientful",
                format!(
                    "did:key:{}",
                    clientful_attest::did::multibase_key(&user_key)
                ),
            )],
            None,
        ),
        &rotation,
    );
    let ed_did = ed.did();
    bad(
        "plc-ed25519-method",
        "The method is an Ed25519 did:key (a PLC directory refuses it; so does the verifier).",
        &["ATT-17", "ATT-18"],
        ErrorClass::UnsupportedVersion,
        "Malformed",
        &evidence(&[ed.to_json()], "clientful", &[1u8; 64]),
        &ed_did,
    )?;
    let mut future = update.to_json();
    if let Some(m) = future.as_object_mut() {
        m.insert("type".into(), json!("plc_future"));
    }
    bad(
        "plc-unknown-op-type",
        "An operation of a type this version does not define.",
        &["ATT-16"],
        ErrorClass::UnsupportedVersion,
        "Malformed",
        &evidence(
            &[genesis.to_json(), future],
            "clientful",
            &cf.sign(stmt.as_bytes()),
        ),
        &did,
    )?;
    bad(
        "plc-bad-did-form",
        "A did:plc subject that is not 24 base32 characters.",
        &["ATT-15"],
        ErrorClass::Malformed,
        "Malformed",
        &good,
        "did:plc:ABCDEFGHIJKLMNOPQRSTUVWX",
    )?;
    let many: Vec<Value> = std::iter::repeat_n(genesis.to_json(), plc::MAX_OPS + 1).collect();
    bad(
        "plc-too-many-ops",
        "A log of 65 operations (at most 64).",
        &["ATT-LIM-6"],
        ErrorClass::LimitExceeded,
        "Malformed",
        &evidence(&many, "clientful", &cf.sign(stmt.as_bytes())),
        &did,
    )?;
    let mut big = good.clone();
    big.resize(plc::MAX_EVIDENCE_BYTES + 1, b' ');
    bad(
        "plc-evidence-over-limit",
        "Evidence of 61 441 bytes (at most 61 440).",
        &["ATT-LIM-6"],
        ErrorClass::LimitExceeded,
        "Malformed",
        &big,
        &did,
    )?;
    Ok(())
}
