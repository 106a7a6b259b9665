//! Saboteurs (spec §12.11): deliberately broken variants of the reference
//! implementation, switched on at run time (`serve-reference --saboteur NAME`,
//! `run --impl reference --saboteur NAME`). Each one models a real bug that
//! implementations are known to ship: a check skipped, a wrong class, nonce reuse,
//! byte offsets where UTF-16 is required, a digest over the wrong bytes. The suite
//! must catch every one of them: `conformance/saboteurs.json` lists, for each, the
//! tests that must fail, and `clientful-conformance saboteurs` (run by CI) fails
//! if any saboteur survives.
//!
//! A saboteur changes the reference only at the boundary where the bug would show:
//! a verdict it should not give, a byte it should not write. The reference's own
//! code paths are untouched, so a saboteur can never leak into a normal run.

use clientful_core::ErrorClass;

/// One broken variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saboteur {
    /// Accepts envelopes and vectors whose signature does not verify.
    SkipSignatureCheck,
    /// Accepts authors that are not known signers of the space.
    AcceptUnknownSigner,
    /// Accepts small-order and non-canonical public keys.
    AcceptWeakKeys,
    /// Accepts non-canonical encodings (unknown fields, non-minimal varints, ...).
    AcceptNonCanonical,
    /// Accepts envelopes of another space or document.
    AcceptWrongContext,
    /// Accepts envelopes under an epoch it does not know.
    AcceptUnknownEpoch,
    /// Skips the key commitment and ignores AEAD failures.
    IgnoreDecryptFailure,
    /// Accepts inputs over the size, count and depth limits.
    AcceptOversized,
    /// Accepts protocol and cipher-suite versions it does not implement.
    AcceptFutureVersion,
    /// Rejects what it should, but with the wrong error class.
    WrongErrorClass,
    /// Applies both sides of an author's fork instead of excluding the author.
    IgnoreEquivocation,
    /// Applies CRDT operations that claim another device's actor.
    IgnoreActorBinding,
    /// Accepts and applies a Yjs update that inserts under a client id assigned
    /// to another device, tracking progress per author only (DOC-3 before
    /// DOC-19: what a ground key collision achieved; issue 22, finding 4).
    SharedClientIds,
    /// Excludes every envelope of an equivocating author from the fork seq on,
    /// including those other authors built on before the fork appeared (DOC-9
    /// without DOC-20: issue 22, finding 5).
    EraseEquivocatorChain,
    /// Applies envelopes before their predecessors have arrived.
    ApplyOutOfCausalOrder,
    /// Treats a redelivered envelope as new.
    DuplicateAsNew,
    /// Restarts its nonce generator from the same seed after a restart.
    ReuseNonceAfterRestart,
    /// Loses the newest integrated envelope when it persists.
    LoseStateOnRestart,
    /// Reads edit positions as UTF-8 byte offsets instead of UTF-16 code units.
    ByteOffsetPositions,
    /// Serializes the materialized document with insignificant white space.
    NonCanonicalJson,
    /// Hashes the materialized JSON without the digest label.
    WrongStateDigest,
    /// Reports a commit id that is not the id of the envelope it sealed.
    CommitIdMismatch,
    /// Answers commands it does not know with `done` instead of `unsupported`.
    AnswersUnknownCommands,
    /// Keeps treating removed members as members.
    IgnoresRemoval,
    /// Implements nothing: answers each `run_vector` by looking the request up
    /// in the committed `test-vectors/` files and echoing the expected answer
    /// (`unsupported` for a case it cannot find); declares the vector families
    /// only.
    AnswersFromVectors,
    /// Reports the same `HistoryDigest` (that of an empty history) whatever it
    /// has integrated.
    ConstantHistoryDigest,
    /// The genesis rule before MEM-26/MEM-27: the `CREATE_SPACE` with the
    /// lowest id stands, so a rival genesis signed by a device of the creator's
    /// user replaces the real one.
    LowestGenesisWins,
    /// The key rule before KEY-18: any epoch secret that opens is kept and
    /// used, including one no rotation created (a private epoch).
    KeepAnySecret,
    /// Storage (STO-9): accepts whatever head manifest storage serves, so a
    /// rolled-back, withheld or forked head raises no alarm.
    NoRollbackCheck,
    /// Storage (STO-31, before issue 22 finding 2 was fixed): believes a
    /// snapshot's claimed `covers` unclamped, so a member's huge claim hides
    /// another device's later segments.
    UnclampedCoverage,
    /// Storage (STO-6/STO-7, before issue 22 finding 6 was fixed): does not
    /// check that a body's signed `epoch_id` is the epoch it is sealed under,
    /// so an old head manifest re-sealed under the new epoch reads as a
    /// rollback of its device.
    ObjectEpochUnchecked,
    /// Storage (STO-5, STO-10, STO-19): trusts the listing, loading objects by
    /// their names instead of by the ids the signed manifests list.
    TrustsListing,
    /// Storage (STO-8): a device without a local record starts its head
    /// manifest afresh (counter 1) instead of continuing from storage.
    RestartsHeadCounter,
    /// Broker (BRK-7): accepts every JOIN with a 32-byte room id, without
    /// looking at the room key or the proof.
    BrokerSkipsJoinProof,
    /// Broker (BRK-16): numbers, keeps and replays ephemeral payloads like
    /// published ones.
    BrokerStoresEphemeral,
    /// Broker (BRK-9): fans a published payload out to every joined connection,
    /// whatever room it joined.
    BrokerLeaksAcrossRooms,
    /// Client (BRK-19): re-joins after a reconnect with no cursor, as if it had
    /// received nothing.
    ClientResumesFromZero,
    /// Client (BRK-6): signs its join proof over a challenge of its own making
    /// instead of the one in WELCOME.
    ClientSignsWrongChallenge,
    /// Client (BRK-19): accepts frames from the broker that name another room.
    ClientAcceptsOtherRoom,
    /// App (APP-2, APP-16): the lifecycle record that arrived last decides
    /// whether a document is trashed (last writer wins by arrival order), so an
    /// offline deletion is not undone by an edit it never saw.
    TrashByArrivalOrder,
    /// App (APP-6, APP-7): reports the invariant's violations as repaired but
    /// writes nothing, so orphans stay.
    OrphansLeftUnrepaired,
    /// Documents of a space (MEM-18): checks only that the author is a known
    /// device, so readers and removed members keep writing.
    AcceptsNonWriters,
}

/// Every saboteur, with its command-line name.
pub const ALL: &[(&str, Saboteur)] = &[
    ("skip-signature-check", Saboteur::SkipSignatureCheck),
    ("accept-unknown-signer", Saboteur::AcceptUnknownSigner),
    ("accept-weak-keys", Saboteur::AcceptWeakKeys),
    ("accept-non-canonical", Saboteur::AcceptNonCanonical),
    ("accept-wrong-context", Saboteur::AcceptWrongContext),
    ("accept-unknown-epoch", Saboteur::AcceptUnknownEpoch),
    ("ignore-decrypt-failure", Saboteur::IgnoreDecryptFailure),
    ("accept-oversized", Saboteur::AcceptOversized),
    ("accept-future-version", Saboteur::AcceptFutureVersion),
    ("wrong-error-class", Saboteur::WrongErrorClass),
    ("ignore-equivocation", Saboteur::IgnoreEquivocation),
    ("ignore-actor-binding", Saboteur::IgnoreActorBinding),
    ("erase-equivocator-chain", Saboteur::EraseEquivocatorChain),
    ("shared-client-ids", Saboteur::SharedClientIds),
    ("apply-out-of-causal-order", Saboteur::ApplyOutOfCausalOrder),
    ("duplicate-as-new", Saboteur::DuplicateAsNew),
    (
        "reuse-nonce-after-restart",
        Saboteur::ReuseNonceAfterRestart,
    ),
    ("lose-state-on-restart", Saboteur::LoseStateOnRestart),
    ("byte-offset-positions", Saboteur::ByteOffsetPositions),
    ("non-canonical-json", Saboteur::NonCanonicalJson),
    ("wrong-state-digest", Saboteur::WrongStateDigest),
    ("commit-id-mismatch", Saboteur::CommitIdMismatch),
    ("answers-unknown-commands", Saboteur::AnswersUnknownCommands),
    ("ignores-removal", Saboteur::IgnoresRemoval),
    ("answers-from-vectors", Saboteur::AnswersFromVectors),
    ("constant-history-digest", Saboteur::ConstantHistoryDigest),
    ("lowest-genesis-wins", Saboteur::LowestGenesisWins),
    ("keep-any-secret", Saboteur::KeepAnySecret),
    ("no-rollback-check", Saboteur::NoRollbackCheck),
    ("unclamped-coverage", Saboteur::UnclampedCoverage),
    ("object-epoch-unchecked", Saboteur::ObjectEpochUnchecked),
    ("trusts-listing", Saboteur::TrustsListing),
    ("restarts-head-counter", Saboteur::RestartsHeadCounter),
    ("broker-skips-join-proof", Saboteur::BrokerSkipsJoinProof),
    ("broker-stores-ephemeral", Saboteur::BrokerStoresEphemeral),
    (
        "broker-leaks-across-rooms",
        Saboteur::BrokerLeaksAcrossRooms,
    ),
    ("client-resumes-from-zero", Saboteur::ClientResumesFromZero),
    (
        "client-signs-wrong-challenge",
        Saboteur::ClientSignsWrongChallenge,
    ),
    (
        "client-accepts-other-room",
        Saboteur::ClientAcceptsOtherRoom,
    ),
    ("trash-by-arrival-order", Saboteur::TrashByArrivalOrder),
    ("orphans-left-unrepaired", Saboteur::OrphansLeftUnrepaired),
    ("accepts-non-writers", Saboteur::AcceptsNonWriters),
];

impl Saboteur {
    /// The saboteur named `name`.
    pub fn parse(name: &str) -> Option<Saboteur> {
        ALL.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
    }

    /// The saboteur's command-line name.
    pub fn name(self) -> &'static str {
        ALL.iter()
            .find(|(_, s)| *s == self)
            .map(|(n, _)| *n)
            .unwrap_or("unknown")
    }

    /// What this saboteur does to a rejection with `class`: `None` keeps the
    /// rejection, `Some(None)` turns it into acceptance, `Some(Some(c))` reports
    /// class `c` instead.
    pub fn on_rejection(self, class: ErrorClass) -> Option<Option<ErrorClass>> {
        use ErrorClass as E;
        let accepts = match self {
            Saboteur::SkipSignatureCheck => class == E::BadSignature,
            Saboteur::AcceptUnknownSigner => class == E::UnknownSigner,
            Saboteur::AcceptWeakKeys => class == E::InvalidKey,
            Saboteur::AcceptNonCanonical => class == E::NonCanonical,
            Saboteur::AcceptWrongContext => class == E::WrongContext,
            Saboteur::AcceptUnknownEpoch => class == E::UnknownEpoch,
            Saboteur::IgnoreDecryptFailure => class == E::DecryptFailed,
            Saboteur::AcceptOversized => class == E::LimitExceeded,
            Saboteur::AcceptFutureVersion => class == E::UnsupportedVersion,
            Saboteur::IgnoreEquivocation => class == E::Equivocation,
            Saboteur::IgnoreActorBinding => class == E::InvalidOperation,
            Saboteur::WrongErrorClass => {
                return Some(Some(if class == E::Malformed {
                    E::NonCanonical
                } else {
                    E::Malformed
                }));
            }
            _ => false,
        };
        accepts.then_some(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut names: Vec<&str> = ALL.iter().map(|(n, _)| *n).collect();
        for (n, s) in ALL {
            assert_eq!(Saboteur::parse(n), Some(*s));
            assert_eq!(s.name(), *n);
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert!(ALL.len() >= 15);
    }
}
