//! The content-type registry (spec §6.7, ENV-22; DOC-2, MEM-3, KEY-14): every
//! `EnvelopeContent.content_type` value protocol version 1 assigns, in one place.
//! The layers that interpret content types (documents, membership, key delivery,
//! storage checkpoints) take their numbers from here; the envelope layer itself
//! does not interpret them.
//!
//! Adding a content type: a variant here (in its ENV-22 range), its row in the
//! spec's tables, and the layer that reads it; the tests in `tests/content_types.rs`
//! check the numbers are unique and match the spec.

/// A content type assigned by protocol version 1 (ENV-22).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
#[non_exhaustive]
pub enum ContentType {
    /// `OPAQUE`: application bytes with no protocol meaning (ENV-22).
    Opaque = 1,
    /// `YJS_UPDATE_V1`: a Yjs update, lib0 v1 encoding (DOC-2).
    YjsUpdateV1 = 16,
    /// `YJS_UPDATE_V2`: a Yjs update, lib0 v2 encoding (DOC-2).
    YjsUpdateV2 = 17,
    /// `YJS_SNAPSHOT`: a Yjs full-state snapshot; storage only (DOC-2, STO-24).
    YjsSnapshot = 18,
    /// `AUTOMERGE_CHANGES`: concatenated uncompressed Automerge change chunks (DOC-2).
    AutomergeChanges = 24,
    /// `AUTOMERGE_SNAPSHOT`: an Automerge document (`save()`); storage only (DOC-2, STO-24).
    AutomergeSnapshot = 25,
    /// `CREATE_SPACE` (MEM-6).
    CreateSpace = 32,
    /// `ADD_MEMBER` (MEM-8).
    AddMember = 33,
    /// `CHANGE_ROLE` (MEM-9).
    ChangeRole = 34,
    /// `REMOVE_MEMBER` (MEM-10).
    RemoveMember = 35,
    /// `ADD_DEVICE` (MEM-11).
    AddDevice = 36,
    /// `REVOKE_DEVICE` (MEM-12).
    RevokeDevice = 37,
    /// `ROTATE_KEYS` (MEM-13).
    RotateKeys = 38,
    /// `CREATE_INVITE` (MEM-19).
    CreateInvite = 39,
    /// `REVOKE_INVITE` (MEM-19).
    RevokeInvite = 40,
    /// `REDEEM_INVITE` (MEM-21).
    RedeemInvite = 41,
    /// `ACK` (MEM-14).
    Ack = 42,
    /// `KEY_MESSAGE`: key-delivery carrier whose body is a `KeyMessage` (KEY-14, KEY-15).
    KeyMessage = 43,
    /// `WELCOME`: key-delivery carrier whose body is a welcome `SealedKey` (KEY-14, KEY-15).
    Welcome = 44,
    /// `ADMIT`: an admin admits a redemption (MEM-25).
    Admit = 45,
    /// `RECOVERY_SET`: carrier whose body is a `RecoverySet` (KEY-14, REC-4).
    RecoverySet = 46,
    /// `ROTATE_USER`: the author's user key is followed by a new one (MEM-32, §5.7).
    RotateUser = 47,
    /// `ATTESTATION`: carrier whose body is a `SignedAttestation` (ATT-12, spec §14).
    Attestation = 64,
}

impl ContentType {
    /// Every assigned content type, ascending by value.
    pub const ALL: &'static [ContentType] = &[
        ContentType::Opaque,
        ContentType::YjsUpdateV1,
        ContentType::YjsUpdateV2,
        ContentType::YjsSnapshot,
        ContentType::AutomergeChanges,
        ContentType::AutomergeSnapshot,
        ContentType::CreateSpace,
        ContentType::AddMember,
        ContentType::ChangeRole,
        ContentType::RemoveMember,
        ContentType::AddDevice,
        ContentType::RevokeDevice,
        ContentType::RotateKeys,
        ContentType::CreateInvite,
        ContentType::RevokeInvite,
        ContentType::RedeemInvite,
        ContentType::Ack,
        ContentType::KeyMessage,
        ContentType::Welcome,
        ContentType::Admit,
        ContentType::RecoverySet,
        ContentType::RotateUser,
        ContentType::Attestation,
    ];

    /// Its `content_type` value.
    pub const fn value(self) -> u32 {
        self as u32
    }

    /// The content type with value `v`; `None` for 0, reserved and
    /// application-private values.
    pub fn from_value(v: u32) -> Option<ContentType> {
        Self::ALL.iter().copied().find(|t| t.value() == v)
    }

    /// Its name in the spec's tables (`YJS_UPDATE_V1`, `CREATE_SPACE`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            ContentType::Opaque => "OPAQUE",
            ContentType::YjsUpdateV1 => "YJS_UPDATE_V1",
            ContentType::YjsUpdateV2 => "YJS_UPDATE_V2",
            ContentType::YjsSnapshot => "YJS_SNAPSHOT",
            ContentType::AutomergeChanges => "AUTOMERGE_CHANGES",
            ContentType::AutomergeSnapshot => "AUTOMERGE_SNAPSHOT",
            ContentType::CreateSpace => "CREATE_SPACE",
            ContentType::AddMember => "ADD_MEMBER",
            ContentType::ChangeRole => "CHANGE_ROLE",
            ContentType::RemoveMember => "REMOVE_MEMBER",
            ContentType::AddDevice => "ADD_DEVICE",
            ContentType::RevokeDevice => "REVOKE_DEVICE",
            ContentType::RotateKeys => "ROTATE_KEYS",
            ContentType::CreateInvite => "CREATE_INVITE",
            ContentType::RevokeInvite => "REVOKE_INVITE",
            ContentType::RedeemInvite => "REDEEM_INVITE",
            ContentType::Ack => "ACK",
            ContentType::KeyMessage => "KEY_MESSAGE",
            ContentType::Welcome => "WELCOME",
            ContentType::Admit => "ADMIT",
            ContentType::RecoverySet => "RECOVERY_SET",
            ContentType::RotateUser => "ROTATE_USER",
            ContentType::Attestation => "ATTESTATION",
        }
    }

    /// The ENV-22 range it belongs to.
    pub const fn range(self) -> Range {
        range_of(self.value())
    }
}

/// The ranges of the ENV-22 registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Range {
    /// 0: invalid (ENV-19).
    Invalid,
    /// 1–15: the envelope chapter (§6).
    Envelope,
    /// 16–31: documents and sync (§8).
    Documents,
    /// 32–47: membership and keys (§11).
    Membership,
    /// 48–63: storage (§9).
    Storage,
    /// 64–71: attestations (§14).
    Attestations,
    /// 72–1023: reserved for future protocol use.
    Future,
    /// ≥ 1024: application-private.
    Application,
}

/// The ENV-22 range of the value `v`.
pub const fn range_of(v: u32) -> Range {
    match v {
        0 => Range::Invalid,
        1..=15 => Range::Envelope,
        16..=31 => Range::Documents,
        32..=47 => Range::Membership,
        48..=63 => Range::Storage,
        64..=71 => Range::Attestations,
        72..=1023 => Range::Future,
        _ => Range::Application,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_unique_ascending_and_in_their_range() {
        let mut last = 0;
        for t in ContentType::ALL {
            assert!(t.value() > last, "{t:?} not ascending");
            last = t.value();
            assert_eq!(ContentType::from_value(t.value()), Some(*t));
        }
        assert_eq!(ContentType::from_value(0), None);
        assert_eq!(ContentType::from_value(19), None);
        assert_eq!(ContentType::Opaque.range(), Range::Envelope);
        assert_eq!(ContentType::AutomergeSnapshot.range(), Range::Documents);
        assert_eq!(ContentType::Admit.range(), Range::Membership);
        assert_eq!(ContentType::Attestation.range(), Range::Attestations);
        assert_eq!(range_of(72), Range::Future);
        assert_eq!(range_of(1024), Range::Application);
    }
}
