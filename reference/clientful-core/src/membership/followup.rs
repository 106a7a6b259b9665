//! What a device does after its membership changed (spec MEM-14, MEM-15,
//! MEM-22, MEM-25, KEY-8, KEY-12): the one copy of the follow-up policy that
//! the SDK, the conformance reference adapter and the simulator all run.
//!
//! In order: an admin revokes open invites whose advisory expiry passed on the
//! caller's clock (MEM-22), admits the redemptions its policy allows (MEM-25),
//! acknowledges additions waiting for it (MEM-15); the designated healer
//! rotates (KEY-12); and any member welcomes settled devices that lack an
//! epoch (KEY-8). The clock is an input: the policy reads none.

use alloc::vec::Vec;

use rand_core::CryptoRng;

use crate::error::Error;

use super::ops::Role;
use super::space::{PendingAdmission, SpaceReplica};
use super::state::OpId;

/// Which redemptions an admin device admits (MEM-25).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admission {
    /// Every admissible redemption, except rivals for one single-use invite
    /// (those need a person to choose: [`Admission::Confirmed`]).
    #[default]
    Automatic,
    /// Only the listed redemptions (an application asked a person first).
    Confirmed(Vec<OpId>),
    /// None.
    Never,
}

/// The inputs of [`SpaceReplica::follow_up`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowUpPolicy {
    /// Which redemptions to admit.
    pub admission: Admission,
    /// The caller's clock (Unix ms), to revoke expired invites (MEM-22);
    /// `None`: revoke nothing.
    pub now_ms: Option<u64>,
}

/// What [`SpaceReplica::follow_up`] did; the operations are in the outbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowUps {
    /// Invites revoked because their expiry passed.
    pub revoked_invites: Vec<[u8; 32]>,
    /// Redemptions admitted.
    pub admitted: Vec<OpId>,
    /// Redemptions still waiting (not admissible, or not allowed by the policy).
    pub waiting: Vec<PendingAdmission>,
    /// Whether an `ACK` was written.
    pub acked: bool,
    /// Whether a healing `ROTATE_KEYS` was written.
    pub healed: bool,
    /// Welcomes queued.
    pub welcomes: usize,
}

impl FollowUps {
    /// Whether anything was written.
    pub fn wrote(&self) -> bool {
        !self.revoked_invites.is_empty()
            || !self.admitted.is_empty()
            || self.acked
            || self.healed
            || self.welcomes > 0
    }
}

impl SpaceReplica {
    /// Runs the follow-up policy once (see the module documentation).
    pub fn follow_up<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        policy: &FollowUpPolicy,
    ) -> Result<FollowUps, Error> {
        let mut out = FollowUps::default();
        let admin = self
            .state()
            .members
            .get(&self.identity().user)
            .is_some_and(|m| m.role == Role::Admin && m.scope.is_whole());
        let writable = self.current_epoch().is_some();
        if admin && writable {
            if let Some(now) = policy.now_ms {
                for k in self.expired_invites(now) {
                    self.revoke_invite(rng, &k)?;
                    out.revoked_invites.push(k);
                }
            }
            for p in self.pending_admissions() {
                let allowed = match &policy.admission {
                    Admission::Automatic => p.rivals == 0,
                    Admission::Confirmed(ids) => ids.contains(&p.redemption),
                    Admission::Never => false,
                };
                // Re-check: an admission just written may have used the invite.
                let still = self
                    .pending_admissions()
                    .into_iter()
                    .any(|q| q.redemption == p.redemption && q.admissible);
                if allowed && still {
                    self.admit(rng, &p.redemption)?;
                    out.admitted.push(p.redemption);
                } else {
                    out.waiting.push(p);
                }
            }
        }
        if writable && self.needs_my_ack() {
            self.ack(rng)?;
            out.acked = true;
        }
        if self.should_heal() {
            self.rotate(rng)?;
            out.healed = true;
        }
        if self.current_epoch().is_some() {
            out.welcomes = self.welcomes(rng)?;
        }
        Ok(out)
    }
}
