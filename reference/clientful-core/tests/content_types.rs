//! The content-type registry ([`clientful_core::content`]) against the spec: every
//! value the spec's tables assign (ENV-22 in §6.7, DOC-2 in §8.2, the operation
//! table of §11.3 with MEM-3 and KEY-14, the attestation carrier of ATT-12) is in the registry under the same name,
//! and every registry entry is in the spec; values are unique.
//! spec: ENV-22, DOC-2, MEM-3, KEY-14, ATT-12.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use clientful_core::content::ContentType;
use clientful_core::membership::{delivery, ops};

const ENVELOPE: &str = include_str!("../../../spec/06-envelope.md");
const DOCUMENTS: &str = include_str!("../../../spec/08-documents-and-sync.md");
const MEMBERSHIP: &str = include_str!("../../../spec/11-membership-and-keys.md");

/// Table rows `| <value> | \`NAME\`...` of `text` whose first cell is one number.
fn rows(text: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(value), Some(second)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let Ok(v) = value.parse::<u32>() else {
            continue;
        };
        let Some(name) = second
            .strip_prefix('`')
            .and_then(|s| s.split('`').next())
            .filter(|n| !n.is_empty())
        else {
            continue;
        };
        out.push((v, name.to_string()));
    }
    out
}

#[test]
fn registry_matches_the_spec_tables() {
    let mut spec: BTreeMap<u32, String> = BTreeMap::new();
    // ENV-22 names 1..=25 (its rows for 32.. are ranges); DOC-2 the document
    // types; §11.3's operation table 32..=45, where 43 and 44 are the carriers.
    let env22 = ENVELOPE
        .split("**ENV-22.**")
        .nth(1)
        .and_then(|s| s.split("## ").next())
        .expect("ENV-22 table");
    let doc2 = DOCUMENTS
        .split("**DOC-2.**")
        .nth(1)
        .and_then(|s| s.split("**DOC-").next())
        .expect("DOC-2 table");
    for (v, name) in rows(env22).into_iter().chain(rows(doc2)).chain(
        rows(MEMBERSHIP)
            .into_iter()
            .filter(|(v, _)| (32..=47).contains(v)),
    ) {
        if let Some(prev) = spec.insert(v, name.clone()) {
            assert_eq!(prev, name, "the spec names {v} twice differently");
        }
    }
    assert!(spec.len() >= 20, "spec tables not found: {spec:?}");
    let registry: BTreeMap<u32, String> = ContentType::ALL
        .iter()
        .map(|t| (t.value(), t.name().to_string()))
        .collect();
    assert_eq!(
        registry.len(),
        ContentType::ALL.len(),
        "registry values are not unique"
    );
    assert_eq!(registry, spec, "registry and spec tables differ");
}

#[test]
fn layer_constants_come_from_the_registry() {
    let pairs = [
        (ops::CT_CREATE_SPACE, ContentType::CreateSpace),
        (ops::CT_ADD_MEMBER, ContentType::AddMember),
        (ops::CT_CHANGE_ROLE, ContentType::ChangeRole),
        (ops::CT_REMOVE_MEMBER, ContentType::RemoveMember),
        (ops::CT_ADD_DEVICE, ContentType::AddDevice),
        (ops::CT_REVOKE_DEVICE, ContentType::RevokeDevice),
        (ops::CT_ROTATE_KEYS, ContentType::RotateKeys),
        (ops::CT_ROTATE_USER, ContentType::RotateUser),
        (ops::CT_CREATE_INVITE, ContentType::CreateInvite),
        (ops::CT_REVOKE_INVITE, ContentType::RevokeInvite),
        (ops::CT_REDEEM_INVITE, ContentType::RedeemInvite),
        (ops::CT_ACK, ContentType::Ack),
        (ops::CT_ADMIT, ContentType::Admit),
        (delivery::CT_KEY_MESSAGE, ContentType::KeyMessage),
        (delivery::CT_WELCOME, ContentType::Welcome),
        (delivery::CT_RECOVERY_SET, ContentType::RecoverySet),
        (delivery::CT_ATTESTATION, ContentType::Attestation),
    ];
    for (c, t) in pairs {
        assert_eq!(c, t.value(), "{t:?}");
    }
}
