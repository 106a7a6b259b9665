//! The session core's one error type: a protocol rule refused a step, or the
//! device lacks the key the step needs. Typed, so that shells add their own
//! words (a CLI hint, a UI message) without parsing text.

use core::fmt;

/// What the session was doing when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// Deriving the key of a lobby (an invite's or a device link's epoch).
    Lobby,
    /// Deriving the space's fixed document ids.
    Space,
    /// Sealing this device's own membership operation into the outbox.
    OwnOperation,
    /// Sealing the carriers of a key message (KEY-15).
    KeyMessage,
    /// Sealing a welcome carrier (KEY-8).
    Welcome,
    /// Running the membership follow-ups (MEM-15, MEM-22, MEM-25, KEY-8, KEY-12).
    FollowUp,
    /// Creating an invite (MEM-19).
    CreateInvite,
    /// Revoking an invite (MEM-22).
    RevokeInvite,
    /// Admitting a redemption (MEM-25).
    Admit,
    /// Removing a member (MEM-12).
    RemoveMember,
    /// Adding a device (MEM-11, MEM-24).
    AddDevice,
    /// Revoking a device (MEM-13).
    RevokeDevice,
    /// Rotating this device's user key (MEM-32).
    RotateUser,
    /// Writing a recovery set's carrier, or releasing a share (REC-4, REC-6).
    Recovery,
    /// Writing an attestation's carrier (ATT-12).
    Attestation,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Lobby => "lobby",
            Step::Space => "space",
            Step::OwnOperation => "own operation",
            Step::KeyMessage => "key message",
            Step::Welcome => "welcome",
            Step::FollowUp => "following up a membership change",
            Step::CreateInvite => "creating an invite",
            Step::RevokeInvite => "revoking the invite",
            Step::Admit => "admitting the redemption",
            Step::RemoveMember => "removing the member",
            Step::AddDevice => "adding the device",
            Step::Recovery => "recovery",
            Step::Attestation => "attestation",
            Step::RevokeDevice => "revoking the device",
            Step::RotateUser => "rotating the user key",
        })
    }
}

/// Why a session step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A protocol rule of the core refused the step.
    #[error("{step}: {class:?}: {error}")]
    Protocol {
        /// What was attempted.
        step: Step,
        /// The spec error class of `error`.
        class: clientful_core::ErrorClass,
        /// The core's error.
        error: clientful_core::Error,
    },
    /// The step writes under the current epoch and this device holds no key
    /// of it (not welcomed yet, or removed).
    #[error("{step}: this device holds no current key of the space (not welcomed yet, or removed)")]
    NoCurrentKey {
        /// What was attempted.
        step: Step,
    },
    /// A device request (ID-3) whose certificate does not verify.
    #[error("device request is not valid: {0}")]
    DeviceRequest(clientful_core::Error),
    /// A link or invite code names the space's genesis (MEM-26), and this
    /// device has not pinned one yet (it has not synced the membership log).
    #[error("the space has no pinned genesis on this device yet (sync first)")]
    NoGenesis,
}

impl SessionError {
    /// `e` from `step`; a missing epoch key becomes [`SessionError::NoCurrentKey`].
    pub(crate) fn at(step: Step) -> impl FnOnce(clientful_core::Error) -> SessionError {
        move |e| match e {
            clientful_core::Error::UnknownEpoch => SessionError::NoCurrentKey { step },
            e => SessionError::Protocol {
                step,
                class: e.class(),
                error: e,
            },
        }
    }

    /// `e` from `step`, kept as the core's error whatever its kind.
    pub(crate) fn core(step: Step) -> impl FnOnce(clientful_core::Error) -> SessionError {
        move |e| SessionError::Protocol {
            step,
            class: e.class(),
            error: e,
        }
    }

    /// The spec error class, when a protocol rule refused the step.
    pub fn class(&self) -> Option<clientful_core::ErrorClass> {
        match self {
            SessionError::Protocol { class, .. } => Some(*class),
            SessionError::DeviceRequest(e) => Some(e.class()),
            SessionError::NoCurrentKey { .. } | SessionError::NoGenesis => None,
        }
    }
}
