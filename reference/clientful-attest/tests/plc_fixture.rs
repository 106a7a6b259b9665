//! A `did:plc` log made by `@did-plc/lib` (real secp256k1 keys) and served by a real PLC
//! directory (`@did-plc/server`, `scripts/services/plc`), kept as a fixture: the DID
//! hashes from its genesis, the chain and signatures verify, and the statement the DID's
//! `clientful` key signed over the binding (07 × 32) verifies (spec §14.6, ATT-15..ATT-18).
//! The live flow through the directory is `reference/clientful-cli/tests/attest_plc.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use clientful_attest::plc::{self, Op};
use clientful_core::ErrorClass;

fn fixture() -> serde_json::Value {
    serde_json::from_str(include_str!("fixtures/plc/directory-log.json")).unwrap()
}

#[test]
fn a_directory_log_verifies_offline() {
    let f = fixture();
    let did = f["did"].as_str().unwrap();
    let evidence = serde_json::to_vec(&f["evidence"]).unwrap();
    let acct = plc::verify_evidence(did, &evidence, &[7; 32]).unwrap();
    assert_eq!(acct.method_id, format!("{did}#clientful"));
    // The CIDs computed here are the ones the directory's library wrote as `prev`.
    let ops = f["evidence"]["log"].as_array().unwrap();
    let genesis = Op::from_json(ops[0].clone()).unwrap();
    assert_eq!(genesis.did(), did);
    assert_eq!(ops[1]["prev"].as_str().unwrap(), genesis.cid());
    // Another binding: the statement no longer verifies.
    assert_eq!(
        plc::verify_evidence(did, &evidence, &[8; 32])
            .unwrap_err()
            .class(),
        ErrorClass::BadSignature
    );
}

#[test]
fn a_re_encoded_log_keeps_its_bytes() {
    let f = fixture();
    for op in f["evidence"]["log"].as_array().unwrap() {
        assert_eq!(&Op::from_json(op.clone()).unwrap().to_json(), op);
    }
}
