//! The reliable sync phase: pairs of replicas run [`SyncSession`] exchanges over a
//! perfect link until nothing but the two HELLOs is exchanged.

use std::collections::VecDeque;

use clientful_doc::Replica;
use clientful_doc::sync::SyncSession;

/// Most messages one pair exchange may take before it counts as not quiescent.
pub const MAX_PAIR_MESSAGES: usize = 100_000;

/// What one pair exchange did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PairStats {
    /// Messages exchanged (2 when the pair was already in sync: HELLO, HELLO).
    pub messages: usize,
    /// Envelopes carried.
    pub envelopes: usize,
}

/// Runs one exchange between `a` and `b` with fresh sessions (a new connection),
/// `a` starting, until no message is left. Fails if a session errors or the
/// exchange does not end within [`MAX_PAIR_MESSAGES`].
pub fn sync_pair(a: &mut Replica, b: &mut Replica) -> Result<PairStats, String> {
    let mut sa = SyncSession::new();
    let mut sb = SyncSession::new();
    let mut stats = PairStats::default();
    // (to_b, bytes)
    let mut queue: VecDeque<(bool, Vec<u8>)> = VecDeque::new();
    queue.push_back((true, sa.hello(a)));
    while let Some((to_b, msg)) = queue.pop_front() {
        stats.messages += 1;
        if stats.messages > MAX_PAIR_MESSAGES {
            return Err(format!(
                "sync exchange not quiescent after {MAX_PAIR_MESSAGES} messages"
            ));
        }
        let (replies, dispositions) = if to_b {
            sb.handle(b, &msg)
        } else {
            sa.handle(a, &msg)
        }
        .map_err(|e| format!("honest sync message refused: {e}"))?;
        stats.envelopes += dispositions.len();
        queue.extend(replies.into_iter().map(|r| (!to_b, r)));
    }
    Ok(stats)
}

/// Runs rounds of [`sync_pair`] over every pair `(i, j)`, `i < j`, of `replicas`
/// until a whole round is quiescent (every pair exchanged only its two HELLOs).
/// Returns the number of rounds; fails after `max_rounds` or on a session error.
pub fn sync_all(replicas: &mut [Replica], max_rounds: usize) -> Result<usize, String> {
    let n = replicas.len();
    for round in 1..=max_rounds {
        let mut quiet = true;
        for i in 0..n {
            for j in i + 1..n {
                let (left, right) = replicas.split_at_mut(j);
                let (Some(a), Some(b)) = (left.get_mut(i), right.first_mut()) else {
                    continue;
                };
                let stats = sync_pair(a, b).map_err(|e| format!("pair ({i}, {j}): {e}"))?;
                if stats.messages > 2 {
                    quiet = false;
                }
            }
        }
        if quiet {
            return Ok(round);
        }
    }
    Err(format!("sync not quiescent after {max_rounds} rounds"))
}
