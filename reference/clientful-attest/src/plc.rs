//! `did:plc` evidence (spec §14.6, ATT-15..ATT-19, ATT-LIM-6): the DID's signed
//! operation log as a PLC directory serves it (`GET /<did>/log`), checked offline.
//! This module owns the DID's form, the log's JSON shapes (`plc_operation`,
//! `plc_tombstone`, the legacy genesis `create`), their DAG-CBOR encoding (the
//! bytes the DID, the `prev` CIDs and the signatures are computed over), `did:key`
//! parsing for secp256k1 and P-256, the chain check (genesis hash, `prev` links,
//! each operation signed by a rotation key of the one before, low-S ECDSA, no
//! tombstone) and the statement the latest operation's verification key signs to
//! name the record's binding. The fetch is the shell's.
//!
//! Why a signed statement and not the user key in `verificationMethods`: a PLC
//! directory refuses any operation whose `verificationMethods` hold a key that is
//! not a secp256k1 or P-256 `did:key` (`@did-plc/lib` `assureValidOp`), so the
//! Ed25519 user key cannot be listed; a key the DID lists signs a statement that
//! names the binding instead (ATT-18).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ecdsa::signature::Verifier as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::did::{DidAccount, MAX_DID_BYTES};
use crate::error::AttestError;
use crate::record::{Record, binding};

/// Largest `did:plc` evidence accepted (ATT-LIM-6): 60 KiB.
pub const MAX_EVIDENCE_BYTES: usize = 60 * 1024;
/// Most operations in a log (ATT-LIM-6).
pub const MAX_OPS: usize = 64;
/// Most rotation keys in one operation (the PLC rule, ATT-LIM-6).
pub const MAX_ROTATION_KEYS: usize = 5;
/// Most entries in one operation's `verificationMethods`, `alsoKnownAs` and
/// `services`, each (ATT-LIM-6).
pub const MAX_ENTRIES: usize = 16;
/// Longest string in an operation (ATT-LIM-6): 1024 bytes.
pub const MAX_STRING_BYTES: usize = 1024;
/// Length of the identifier after `did:plc:` (ATT-15).
pub const ID_LEN: usize = 24;
/// The statement's first line (ATT-18).
pub const STATEMENT_PREFIX: &str = "Clientful attestation v1";
/// The default PLC directory a shell fetches logs from.
pub const DEFAULT_DIRECTORY: &str = "https://plc.directory";

const B32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// RFC 4648 base32, lowercase, unpadded (the multibase `b` alphabet).
pub fn base32_lower(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(5) * 8);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in input {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            let i = ((acc >> bits) & 31) as usize;
            out.push(char::from(*B32.get(i).unwrap_or(&b'a')));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        let i = ((acc << (5 - bits)) & 31) as usize;
        out.push(char::from(*B32.get(i).unwrap_or(&b'a')));
    }
    out
}

/// Checks the form `did:plc:` + 24 characters of `[a-z2-7]` (ATT-15).
pub fn parse_did(did: &str) -> Result<&str, AttestError> {
    if did.len() > MAX_DID_BYTES {
        return Err(AttestError::limit("DID", MAX_DID_BYTES, did.len()));
    }
    let Some(id) = did.strip_prefix("did:plc:") else {
        return Err(AttestError::malformed(
            "did:plc",
            "does not start with did:plc:",
        ));
    };
    if id.len() != ID_LEN || !id.bytes().all(|b| B32.contains(&b)) {
        return Err(AttestError::malformed(
            "did:plc",
            "the identifier is not 24 characters of base32 [a-z2-7]",
        ));
    }
    Ok(did)
}

/// The URL of a DID's log at a PLC directory: `<directory>/<did>/log`.
pub fn log_url(directory: &str, did: &str) -> String {
    format!("{}/{did}/log", directory.trim_end_matches('/'))
}

// ---------------------------------------------------------------------------
// DAG-CBOR (the subset PLC operations use: text strings, null, arrays, maps
// with text keys; keys sorted by length, then bytewise).

enum Cbor<'a> {
    Text(&'a str),
    Null,
    Array(Vec<Cbor<'a>>),
    Map(Vec<(&'a str, Cbor<'a>)>),
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= 0xff {
        out.push(m | 24);
        out.push(n as u8);
    } else if n <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_into(out: &mut Vec<u8>, v: &Cbor<'_>) {
    match v {
        Cbor::Text(s) => {
            head(out, 3, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Cbor::Null => out.push(0xf6),
        Cbor::Array(items) => {
            head(out, 4, items.len() as u64);
            for i in items {
                encode_into(out, i);
            }
        }
        Cbor::Map(entries) => {
            let mut sorted: Vec<&(&str, Cbor<'_>)> = entries.iter().collect();
            sorted.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then(a.0.cmp(b.0)));
            head(out, 5, sorted.len() as u64);
            for (k, val) in sorted {
                encode_into(out, &Cbor::Text(k));
                encode_into(out, val);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Operations.

/// A service entry of a `plc_operation`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// `type`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `endpoint`.
    pub endpoint: String,
}

/// The state an operation sets (a `plc_operation`, or a legacy `create`
/// normalized: rotation keys `[recoveryKey, signingKey]`, method `atproto`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Rotation keys, most powerful first (`did:key`).
    pub rotation_keys: Vec<String>,
    /// Verification methods: id (without `#`) to `did:key`.
    pub verification_methods: BTreeMap<String, String>,
}

/// One operation of a log (ATT-16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `plc_operation`.
    Operation {
        /// `rotationKeys`.
        rotation_keys: Vec<String>,
        /// `verificationMethods`.
        verification_methods: BTreeMap<String, String>,
        /// `alsoKnownAs`.
        also_known_as: Vec<String>,
        /// `services`.
        services: BTreeMap<String, Service>,
        /// `prev`: the previous operation's CID, `None` for a genesis.
        prev: Option<String>,
        /// `sig`: unpadded base64url of the 64-byte signature (`None`: unsigned).
        sig: Option<String>,
    },
    /// `plc_tombstone`: the DID is deactivated.
    Tombstone {
        /// `prev`.
        prev: String,
        /// `sig`.
        sig: Option<String>,
    },
    /// The legacy genesis `create` (genesis only).
    Create {
        /// `signingKey`.
        signing_key: String,
        /// `recoveryKey`.
        recovery_key: String,
        /// `handle`.
        handle: String,
        /// `service`.
        service: String,
        /// `sig`.
        sig: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OperationJson {
    #[serde(rename = "type")]
    _type: String,
    #[serde(rename = "rotationKeys")]
    rotation_keys: Vec<String>,
    #[serde(rename = "verificationMethods")]
    verification_methods: BTreeMap<String, String>,
    #[serde(rename = "alsoKnownAs")]
    also_known_as: Vec<String>,
    services: BTreeMap<String, Service>,
    prev: Option<String>,
    sig: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TombstoneJson {
    #[serde(rename = "type")]
    _type: String,
    prev: String,
    sig: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateJson {
    #[serde(rename = "type")]
    _type: String,
    #[serde(rename = "signingKey")]
    signing_key: String,
    #[serde(rename = "recoveryKey")]
    recovery_key: String,
    handle: String,
    service: String,
    prev: Option<String>,
    sig: String,
}

fn check_strings<'a>(mut it: impl Iterator<Item = &'a String>) -> Result<(), AttestError> {
    if let Some(s) = it.find(|s| s.len() > MAX_STRING_BYTES) {
        return Err(AttestError::limit(
            "PLC operation string",
            MAX_STRING_BYTES,
            s.len(),
        ));
    }
    Ok(())
}

fn count(what: &'static str, n: usize, max: usize) -> Result<(), AttestError> {
    if n > max {
        Err(AttestError::limit(what, max, n))
    } else {
        Ok(())
    }
}

impl Op {
    /// Parses one operation from its JSON value (ATT-16 step 3): its `type`
    /// selects the shape (`UNSUPPORTED_VERSION` for another type); the members are
    /// exactly the type's (`MALFORMED`); counts and strings within ATT-LIM-6.
    pub fn from_json(v: serde_json::Value) -> Result<Op, AttestError> {
        let ty = match v.get("type") {
            Some(serde_json::Value::String(t)) => t.clone(),
            _ => {
                return Err(AttestError::malformed(
                    "PLC operation",
                    "not an object with a string type",
                ));
            }
        };
        let bad = |_| AttestError::malformed("PLC operation", "members do not fit its type");
        if v.get("prev").is_none() {
            // serde reads a missing Option member as None; `prev` must be present.
            return match ty.as_str() {
                "plc_operation" | "plc_tombstone" | "create" => Err(AttestError::malformed(
                    "PLC operation",
                    "members do not fit its type",
                )),
                other => Err(AttestError::unsupported("PLC operation type", other)),
            };
        }
        match ty.as_str() {
            "plc_operation" => {
                let o: OperationJson = serde_json::from_value(v).map_err(bad)?;
                count("PLC rotationKeys", o.rotation_keys.len(), MAX_ROTATION_KEYS)?;
                count(
                    "PLC verificationMethods",
                    o.verification_methods.len(),
                    MAX_ENTRIES,
                )?;
                count("PLC alsoKnownAs", o.also_known_as.len(), MAX_ENTRIES)?;
                count("PLC services", o.services.len(), MAX_ENTRIES)?;
                check_strings(
                    o.rotation_keys
                        .iter()
                        .chain(o.verification_methods.keys())
                        .chain(o.verification_methods.values())
                        .chain(o.also_known_as.iter())
                        .chain(o.services.keys())
                        .chain(o.services.values().flat_map(|s| [&s.type_, &s.endpoint]))
                        .chain(o.prev.iter())
                        .chain([&o.sig]),
                )?;
                if o.rotation_keys.is_empty() {
                    return Err(AttestError::InvalidOperation {
                        reason: "a PLC operation without rotation keys",
                    });
                }
                Ok(Op::Operation {
                    rotation_keys: o.rotation_keys,
                    verification_methods: o.verification_methods,
                    also_known_as: o.also_known_as,
                    services: o.services,
                    prev: o.prev,
                    sig: Some(o.sig),
                })
            }
            "plc_tombstone" => {
                let o: TombstoneJson = serde_json::from_value(v).map_err(bad)?;
                check_strings([&o.prev, &o.sig].into_iter())?;
                Ok(Op::Tombstone {
                    prev: o.prev,
                    sig: Some(o.sig),
                })
            }
            "create" => {
                let o: CreateJson = serde_json::from_value(v).map_err(bad)?;
                check_strings(
                    [
                        &o.signing_key,
                        &o.recovery_key,
                        &o.handle,
                        &o.service,
                        &o.sig,
                    ]
                    .into_iter()
                    .chain(o.prev.iter()),
                )?;
                if o.prev.is_some() {
                    return Err(AttestError::InvalidOperation {
                        reason: "a legacy create operation with a prev",
                    });
                }
                Ok(Op::Create {
                    signing_key: o.signing_key,
                    recovery_key: o.recovery_key,
                    handle: o.handle,
                    service: o.service,
                    sig: Some(o.sig),
                })
            }
            other => Err(AttestError::unsupported("PLC operation type", other)),
        }
    }

    /// The operation as JSON, as a directory serves it.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        let s = |v: &str| serde_json::Value::String(v.to_string());
        let sig = |m: &mut serde_json::Map<String, serde_json::Value>, sig: &Option<String>| {
            if let Some(sig) = sig {
                m.insert("sig".into(), s(sig));
            }
        };
        match self {
            Op::Operation {
                rotation_keys,
                verification_methods,
                also_known_as,
                services,
                prev,
                sig: g,
            } => {
                m.insert("type".into(), s("plc_operation"));
                m.insert("rotationKeys".into(), serde_json::json!(rotation_keys));
                m.insert(
                    "verificationMethods".into(),
                    serde_json::json!(verification_methods),
                );
                m.insert("alsoKnownAs".into(), serde_json::json!(also_known_as));
                let svc: serde_json::Map<String, serde_json::Value> = services
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            serde_json::json!({"type": v.type_, "endpoint": v.endpoint}),
                        )
                    })
                    .collect();
                m.insert("services".into(), serde_json::Value::Object(svc));
                m.insert(
                    "prev".into(),
                    prev.as_deref().map_or(serde_json::Value::Null, s),
                );
                sig(&mut m, g);
            }
            Op::Tombstone { prev, sig: g } => {
                m.insert("type".into(), s("plc_tombstone"));
                m.insert("prev".into(), s(prev));
                sig(&mut m, g);
            }
            Op::Create {
                signing_key,
                recovery_key,
                handle,
                service,
                sig: g,
            } => {
                m.insert("type".into(), s("create"));
                m.insert("signingKey".into(), s(signing_key));
                m.insert("recoveryKey".into(), s(recovery_key));
                m.insert("handle".into(), s(handle));
                m.insert("service".into(), s(service));
                m.insert("prev".into(), serde_json::Value::Null);
                sig(&mut m, g);
            }
        }
        serde_json::Value::Object(m)
    }

    fn sig(&self) -> Option<&str> {
        match self {
            Op::Operation { sig, .. } | Op::Tombstone { sig, .. } | Op::Create { sig, .. } => {
                sig.as_deref()
            }
        }
    }

    /// Sets `sig` (unpadded base64url of the 64-byte signature).
    pub fn set_sig(&mut self, signature: &[u8]) {
        let v = Some(URL_SAFE_NO_PAD.encode(signature));
        match self {
            Op::Operation { sig, .. } | Op::Tombstone { sig, .. } | Op::Create { sig, .. } => {
                *sig = v;
            }
        }
    }

    /// `prev` (`None` for a genesis).
    pub fn prev(&self) -> Option<&str> {
        match self {
            Op::Operation { prev, .. } => prev.as_deref(),
            Op::Tombstone { prev, .. } => Some(prev),
            Op::Create { .. } => None,
        }
    }

    /// The state this operation sets; `None` for a tombstone.
    pub fn state(&self) -> Option<State> {
        match self {
            Op::Operation {
                rotation_keys,
                verification_methods,
                ..
            } => Some(State {
                rotation_keys: rotation_keys.clone(),
                verification_methods: verification_methods.clone(),
            }),
            Op::Create {
                signing_key,
                recovery_key,
                ..
            } => Some(State {
                rotation_keys: vec![recovery_key.clone(), signing_key.clone()],
                verification_methods: BTreeMap::from([(
                    "atproto".to_string(),
                    signing_key.clone(),
                )]),
            }),
            Op::Tombstone { .. } => None,
        }
    }

    /// The DAG-CBOR encoding (ATT-16): with `sig` for the DID and CIDs, without it
    /// for the bytes signed.
    pub fn dag_cbor(&self, with_sig: bool) -> Vec<u8> {
        let mut e: Vec<(&str, Cbor<'_>)> = Vec::new();
        let text = Cbor::Text;
        fn texts(v: &[String]) -> Cbor<'_> {
            Cbor::Array(v.iter().map(|s| Cbor::Text(s)).collect())
        }
        fn prev(p: Option<&str>) -> Cbor<'_> {
            p.map_or(Cbor::Null, Cbor::Text)
        }
        match self {
            Op::Operation {
                rotation_keys,
                verification_methods,
                also_known_as,
                services,
                prev: p,
                ..
            } => {
                e.push(("type", text("plc_operation")));
                e.push(("rotationKeys", texts(rotation_keys)));
                e.push((
                    "verificationMethods",
                    Cbor::Map(
                        verification_methods
                            .iter()
                            .map(|(k, v)| (k.as_str(), Cbor::Text(v)))
                            .collect(),
                    ),
                ));
                e.push(("alsoKnownAs", texts(also_known_as)));
                e.push((
                    "services",
                    Cbor::Map(
                        services
                            .iter()
                            .map(|(k, v)| {
                                (
                                    k.as_str(),
                                    Cbor::Map(vec![
                                        ("type", Cbor::Text(&v.type_)),
                                        ("endpoint", Cbor::Text(&v.endpoint)),
                                    ]),
                                )
                            })
                            .collect(),
                    ),
                ));
                e.push(("prev", prev(p.as_deref())));
            }
            Op::Tombstone { prev: p, .. } => {
                e.push(("type", text("plc_tombstone")));
                e.push(("prev", Cbor::Text(p)));
            }
            Op::Create {
                signing_key,
                recovery_key,
                handle,
                service,
                ..
            } => {
                e.push(("type", text("create")));
                e.push(("signingKey", Cbor::Text(signing_key)));
                e.push(("recoveryKey", Cbor::Text(recovery_key)));
                e.push(("handle", Cbor::Text(handle)));
                e.push(("service", Cbor::Text(service)));
                e.push(("prev", Cbor::Null));
            }
        }
        if with_sig && let Some(s) = self.sig() {
            e.push(("sig", Cbor::Text(s)));
        }
        let mut out = Vec::new();
        encode_into(&mut out, &Cbor::Map(e));
        out
    }

    /// The operation's CID as `prev` names it: `"b"` + base32 of
    /// `0x01 0x71 0x12 0x20 || SHA-256(DAG-CBOR with sig)` (CIDv1, dag-cbor,
    /// sha2-256).
    pub fn cid(&self) -> String {
        let mut b = vec![0x01, 0x71, 0x12, 0x20];
        b.extend_from_slice(&Sha256::digest(self.dag_cbor(true)));
        format!("b{}", base32_lower(&b))
    }

    /// The DID a genesis operation makes: `did:plc:` + the first 24 characters
    /// of base32 of `SHA-256(DAG-CBOR with sig)`.
    pub fn did(&self) -> String {
        let full = base32_lower(&Sha256::digest(self.dag_cbor(true)));
        format!("did:plc:{}", full.get(..ID_LEN).unwrap_or_default())
    }
}

// ---------------------------------------------------------------------------
// did:key (secp256k1 and P-256) and signatures.

/// A PLC key: secp256k1 or P-256 (ATT-17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlcKey {
    /// secp256k1 (multicodec `0xe7 0x01`).
    K256(k256::ecdsa::VerifyingKey),
    /// P-256 (multicodec `0x80 0x24`).
    P256(p256::ecdsa::VerifyingKey),
}

fn base58_decode(s: &str) -> Option<Vec<u8>> {
    const B58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut bytes: Vec<u8> = Vec::new();
    for c in s.bytes() {
        let mut carry = B58.iter().position(|&x| x == c)? as u32;
        for b in bytes.iter_mut() {
            carry += u32::from(*b) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let zeros = s.bytes().take_while(|&c| c == b'1').count();
    bytes.extend(std::iter::repeat_n(0, zeros));
    bytes.reverse();
    Some(bytes)
}

impl PlcKey {
    /// Parses `did:key:z<base58btc(multicodec || compressed point)>` (ATT-17):
    /// a bad form or point is `INVALID_KEY`, another key type
    /// `UNSUPPORTED_VERSION`.
    pub fn parse(did_key: &str) -> Result<PlcKey, AttestError> {
        let bad = |reason| AttestError::InvalidKey {
            what: "PLC did:key",
            reason,
        };
        let b58 = did_key
            .strip_prefix("did:key:z")
            .ok_or(bad("not did:key:z…"))?;
        if b58.len() > 128 {
            return Err(bad("too long"));
        }
        let bytes = base58_decode(b58).ok_or(bad("not base58btc"))?;
        if let Some(point) = bytes.strip_prefix(&[0xe7, 0x01]) {
            if point.len() != 33 {
                return Err(bad("not a 33-byte compressed point"));
            }
            k256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map(PlcKey::K256)
                .map_err(|_| bad("not a secp256k1 point"))
        } else if let Some(point) = bytes.strip_prefix(&[0x80, 0x24]) {
            if point.len() != 33 {
                return Err(bad("not a 33-byte compressed point"));
            }
            p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map(PlcKey::P256)
                .map_err(|_| bad("not a P-256 point"))
        } else {
            Err(AttestError::unsupported("PLC key type", did_key))
        }
    }

    /// Verifies a 64-byte `r || s` ECDSA signature with SHA-256 over `message`;
    /// `s` in the upper half is refused (low-S, ATT-17).
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            PlcKey::K256(k) => k256::ecdsa::Signature::from_slice(sig)
                .ok()
                .filter(|s| s.normalize_s() == *s)
                .is_some_and(|s| k.verify(message, &s).is_ok()),
            PlcKey::P256(k) => p256::ecdsa::Signature::from_slice(sig)
                .ok()
                .filter(|s| s.normalize_s() == *s)
                .is_some_and(|s| k.verify(message, &s).is_ok()),
        }
    }
}

/// `did:key` of a secp256k1 key (for makers of logs: the vectors, tests).
pub fn did_key_k256(key: &k256::ecdsa::VerifyingKey) -> String {
    let point = key.to_sec1_point(true);
    let mut b = vec![0xe7, 0x01];
    b.extend_from_slice(point.as_bytes());
    format!("did:key:z{}", crate::did::base58btc(&b))
}

/// `did:key` of a P-256 key.
pub fn did_key_p256(key: &p256::ecdsa::VerifyingKey) -> String {
    let point = key.to_sec1_point(true);
    let mut b = vec![0x80, 0x24];
    b.extend_from_slice(point.as_bytes());
    format!("did:key:z{}", crate::did::base58btc(&b))
}

fn decode_sig(sig: &str) -> Result<Vec<u8>, AttestError> {
    let b = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| AttestError::malformed("PLC signature", "not unpadded base64url"))?;
    if b.len() != 64 {
        return Err(AttestError::malformed("PLC signature", "not 64 bytes"));
    }
    Ok(b)
}

fn parse_keys(keys: &[String]) -> Result<Vec<PlcKey>, AttestError> {
    keys.iter().map(|k| PlcKey::parse(k)).collect()
}

// ---------------------------------------------------------------------------
// The evidence.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceJson {
    log: Vec<serde_json::Value>,
    method: String,
    sig: String,
}

/// The statement the verification key signs (ATT-18): the ASCII lines
/// `Clientful attestation v1`, `DID: <did>`, `Key: <method>`,
/// `Binding: <unpadded base64url of the binding>`, each ended by LF.
pub fn statement(did: &str, method: &str, binding: &[u8; 32]) -> String {
    format!(
        "{STATEMENT_PREFIX}\nDID: {did}\nKey: {method}\nBinding: {}\n",
        URL_SAFE_NO_PAD.encode(binding)
    )
}

/// The evidence bytes (ATT-16): `{"log": [...], "method": ..., "sig": ...}` with
/// the log as the directory served it (a JSON array of operations).
pub fn evidence(log: &[u8], method: &str, sig: &str) -> Result<Vec<u8>, AttestError> {
    let log: serde_json::Value =
        serde_json::from_slice(log).map_err(|_| AttestError::malformed("PLC log", "not JSON"))?;
    serde_json::to_vec(&serde_json::json!({"log": log, "method": method, "sig": sig}))
        .map_err(|_| AttestError::malformed("PLC evidence", "does not serialize"))
}

/// Checks a log alone (ATT-16, ATT-17): the operations parse within the
/// limits, the genesis makes `did`, each later operation names the one before
/// as `prev` and is signed by a rotation key of it, and the last is not a
/// tombstone. Returns the latest state.
pub fn verify_log(did: &str, log: Vec<serde_json::Value>) -> Result<State, AttestError> {
    if log.is_empty() {
        return Err(AttestError::malformed("PLC log", "empty"));
    }
    count("PLC log operations", log.len(), MAX_OPS)?;
    let ops: Vec<Op> = log
        .into_iter()
        .map(Op::from_json)
        .collect::<Result<_, _>>()?;
    let mut sigs = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        if i > 0 && matches!(op, Op::Create { .. }) {
            return Err(AttestError::InvalidOperation {
                reason: "a legacy create operation after the genesis",
            });
        }
        sigs.push(decode_sig(op.sig().unwrap_or_default())?);
        if let Some(state) = op.state() {
            parse_keys(&state.rotation_keys)?;
        }
    }
    let (Some(genesis), Some(genesis_sig)) = (ops.first(), sigs.first()) else {
        return Err(AttestError::malformed("PLC log", "empty"));
    };
    let Some(mut state) = genesis.state() else {
        return Err(AttestError::InvalidOperation {
            reason: "the PLC genesis is a tombstone",
        });
    };
    if genesis.prev().is_some() {
        return Err(AttestError::InvalidOperation {
            reason: "the PLC genesis has a prev",
        });
    }
    if genesis.did() != did {
        return Err(AttestError::WrongContext {
            what: "the DID (the hash of the PLC genesis operation)",
        });
    }
    let signed_by = |keys: &[String], op: &Op, sig: &[u8]| -> Result<(), AttestError> {
        let msg = op.dag_cbor(false);
        if parse_keys(keys)?.iter().any(|k| k.verify(&msg, sig)) {
            Ok(())
        } else {
            Err(AttestError::BadSignature {
                what: "PLC operation (no rotation key of the previous operation signed it)",
            })
        }
    };
    signed_by(&state.rotation_keys, genesis, genesis_sig)?;
    let mut prev = genesis;
    let mut tombstoned = false;
    for (op, sig) in ops.iter().zip(&sigs).skip(1) {
        if tombstoned {
            return Err(AttestError::InvalidOperation {
                reason: "a PLC operation after a tombstone",
            });
        }
        if op.prev() != Some(prev.cid().as_str()) {
            return Err(AttestError::InvalidOperation {
                reason: "a PLC operation's prev is not the CID of the operation before it",
            });
        }
        signed_by(&state.rotation_keys, op, sig)?;
        match op.state() {
            Some(s) => state = s,
            None => tombstoned = true,
        }
        prev = op;
    }
    if tombstoned {
        return Err(AttestError::InvalidOperation {
            reason: "the DID is deactivated (its PLC log ends with a tombstone)",
        });
    }
    Ok(state)
}

/// Checks a `DID_DOCUMENT` record whose subject is a `did:plc` DID (ATT-15..ATT-18).
pub fn verify(record: &Record) -> Result<DidAccount, AttestError> {
    let b = binding(&record.user_key, &record.salt)?;
    verify_evidence(&record.subject, &record.evidence, &b)
}

/// The evidence check of [`verify`] for a DID and a binding, for a shell that
/// wants to tell the user before it makes a record.
pub fn verify_evidence(
    did: &str,
    evidence: &[u8],
    binding: &[u8; 32],
) -> Result<DidAccount, AttestError> {
    let did = parse_did(did)?;
    if evidence.len() > MAX_EVIDENCE_BYTES {
        return Err(AttestError::limit(
            "did:plc evidence",
            MAX_EVIDENCE_BYTES,
            evidence.len(),
        ));
    }
    let ev: EvidenceJson = serde_json::from_slice(evidence).map_err(|_| {
        AttestError::malformed(
            "did:plc evidence",
            "not a JSON object with exactly log, method and sig",
        )
    })?;
    let sig = decode_sig(&ev.sig)?;
    let state = verify_log(did, ev.log)?;
    let Some(key) = state.verification_methods.get(&ev.method) else {
        return Err(AttestError::InvalidOperation {
            reason: "the latest PLC operation does not list the statement's key",
        });
    };
    let key = PlcKey::parse(key)?;
    if !key.verify(statement(did, &ev.method, binding).as_bytes(), &sig) {
        return Err(AttestError::BadSignature {
            what: "the statement (not signed by the listed key)",
        });
    }
    Ok(DidAccount {
        did: did.to_string(),
        method_id: format!("{did}#{}", ev.method),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use clientful_core::ErrorClass;
    use k256::ecdsa::SigningKey;

    fn k(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 32]).unwrap()
    }

    fn sign(op: &mut Op, key: &SigningKey) {
        let s: k256::ecdsa::Signature = ecdsa::signature::Signer::sign(key, &op.dag_cbor(false));
        op.set_sig(&s.to_bytes());
    }

    fn genesis(rot: &SigningKey, method: &SigningKey) -> Op {
        let mut op = Op::Operation {
            rotation_keys: vec![did_key_k256(rot.verifying_key())],
            verification_methods: BTreeMap::from([(
                "clientful".into(),
                did_key_k256(method.verifying_key()),
            )]),
            also_known_as: vec!["at://bob.test".into()],
            services: BTreeMap::new(),
            prev: None,
            sig: None,
        };
        sign(&mut op, rot);
        op
    }

    fn ev(did: &str, ops: &[Op], method: &SigningKey, b: &[u8; 32]) -> Vec<u8> {
        let log: Vec<_> = ops.iter().map(Op::to_json).collect();
        let s: k256::ecdsa::Signature =
            ecdsa::signature::Signer::sign(method, statement(did, "clientful", b).as_bytes());
        serde_json::to_vec(&serde_json::json!({"log": log, "method": "clientful", "sig": URL_SAFE_NO_PAD.encode(s.to_bytes())})).unwrap()
    }

    #[test]
    fn base32_and_dag_cbor_key_order() {
        assert_eq!(base32_lower(b"foobar"), "mzxw6ytboi");
        let op = Op::Tombstone {
            prev: "x".into(),
            sig: Some("y".into()),
        };
        // {"sig":"y","prev":"x","type":"plc_tombstone"}: length-first order.
        let b = op.dag_cbor(true);
        assert_eq!(&b[..6], &[0xa3, 0x63, b's', b'i', b'g', 0x61]);
    }

    #[test]
    fn did_key_round_trip() {
        let key = k(3);
        let dk = did_key_k256(key.verifying_key());
        assert!(dk.starts_with("did:key:zQ3s"));
        assert_eq!(
            PlcKey::parse(&dk).unwrap(),
            PlcKey::K256(*key.verifying_key())
        );
        let p = p256::ecdsa::SigningKey::from_slice(&[4; 32]).unwrap();
        assert!(did_key_p256(p.verifying_key()).starts_with("did:key:zDn"));
        assert_eq!(
            PlcKey::parse("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK")
                .unwrap_err()
                .class(),
            ErrorClass::UnsupportedVersion
        );
    }

    #[test]
    fn a_log_verifies_and_each_break_has_its_class() {
        let (rot, m) = (k(1), k(2));
        let g = genesis(&rot, &m);
        let did = g.did();
        let b = [7u8; 32];
        let mut upd = g.clone();
        if let Op::Operation { prev, .. } = &mut upd {
            *prev = Some(g.cid());
        }
        sign(&mut upd, &rot);
        let ok = ev(&did, &[g.clone(), upd.clone()], &m, &b);
        let acct = verify_evidence(&did, &ok, &b).unwrap();
        assert_eq!(acct.method_id, format!("{did}#clientful"));
        let class = |d: &str, e: &[u8]| verify_evidence(d, e, &b).unwrap_err().class();
        // Another binding: the statement's signature fails.
        assert_eq!(
            verify_evidence(&did, &ok, &[8; 32]).unwrap_err().class(),
            ErrorClass::BadSignature
        );
        // Wrong DID.
        let other = genesis(&k(5), &m).did();
        assert_eq!(
            class(&other, &ev(&other, std::slice::from_ref(&g), &m, &b)),
            ErrorClass::WrongContext
        );
        // Broken chain.
        let mut broken = upd.clone();
        if let Op::Operation { prev, .. } = &mut broken {
            *prev = Some(upd.cid());
        }
        sign(&mut broken, &rot);
        assert_eq!(
            class(&did, &ev(&did, &[g.clone(), broken], &m, &b)),
            ErrorClass::InvalidOperation
        );
        // Signed by a key that is not a rotation key.
        let mut forged = upd.clone();
        sign(&mut forged, &k(9));
        assert_eq!(
            class(&did, &ev(&did, &[g.clone(), forged], &m, &b)),
            ErrorClass::BadSignature
        );
        // Tombstone.
        let mut t = Op::Tombstone {
            prev: g.cid(),
            sig: None,
        };
        sign(&mut t, &rot);
        assert_eq!(
            class(&did, &ev(&did, &[g.clone(), t], &m, &b)),
            ErrorClass::InvalidOperation
        );
        // Method dropped.
        let mut drop = g.clone();
        if let Op::Operation {
            prev,
            verification_methods,
            ..
        } = &mut drop
        {
            *prev = Some(g.cid());
            verification_methods.clear();
        }
        sign(&mut drop, &rot);
        assert_eq!(
            class(&did, &ev(&did, &[g.clone(), drop], &m, &b)),
            ErrorClass::InvalidOperation
        );
        // Unknown type, malformed, limits.
        let unk = serde_json::to_vec(&serde_json::json!({"log": [{"type": "plc_future"}], "method": "clientful", "sig": URL_SAFE_NO_PAD.encode([0u8; 64])})).unwrap();
        assert_eq!(class(&did, &unk), ErrorClass::UnsupportedVersion);
        assert_eq!(class(&did, b"[]"), ErrorClass::Malformed);
        assert_eq!(class("did:plc:short", &ok), ErrorClass::Malformed);
        let many: Vec<_> = std::iter::repeat_n(g.to_json(), MAX_OPS + 1).collect();
        let over = serde_json::to_vec(&serde_json::json!({"log": many, "method": "clientful", "sig": URL_SAFE_NO_PAD.encode([0u8; 64])})).unwrap();
        assert_eq!(class(&did, &over), ErrorClass::LimitExceeded);
    }

    #[test]
    fn a_high_s_signature_is_refused() {
        let key = k(1);
        let msg = b"m";
        let s: k256::ecdsa::Signature = ecdsa::signature::Signer::sign(&key, msg);
        let pk = PlcKey::K256(*key.verifying_key());
        assert!(pk.verify(msg, &s.to_bytes()));
        let (r, sv) = s.split_scalars();
        let high = k256::ecdsa::Signature::from_scalars(r, -*sv).unwrap();
        assert!(!pk.verify(msg, &high.to_bytes()));
    }
}
