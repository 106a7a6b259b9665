//! The broker's timers as data: when each connection's HELLO and idle timeouts
//! (BRK-17) and each empty room's TTL (BRK-LIM-6) fall due. The state machine
//! keeps one entry per armed timer in a min-heap, so [`crate::state::Broker`] can
//! say when it next needs to be woken (`poll_timeout`) instead of being ticked.
//!
//! Entries are re-checked when they fall due: an idle timer whose connection was
//! heard from meanwhile is re-armed at its new deadline, entries of closed
//! connections or re-joined rooms are dropped. Entries left behind by closed
//! connections are compacted away once they outnumber the live ones.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A connection handle chosen by the shell.
pub type ConnId = u64;
/// A 32-byte room id.
pub type RoomId = [u8; 32];

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Due {
    /// A connection's HELLO timeout (only matters while it has not said HELLO).
    Hello(ConnId),
    /// A connection's idle timeout, counted from when it was last heard.
    Idle(ConnId),
    /// An empty room's TTL.
    Room(RoomId),
}

/// The armed deadlines, earliest first.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    heap: BinaryHeap<Reverse<(u64, Due)>>,
}

impl Deadlines {
    /// Arms `what` at `at_ms`.
    pub(crate) fn push(&mut self, at_ms: u64, what: Due) {
        self.heap.push(Reverse((at_ms, what)));
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes every entry due at `now_ms` (deadline at or before it).
    pub(crate) fn take_due(&mut self, now_ms: u64) -> Vec<Due> {
        let mut due = Vec::new();
        while let Some(Reverse((at, _))) = self.heap.peek()
            && *at <= now_ms
        {
            if let Some(Reverse((_, what))) = self.heap.pop() {
                due.push(what);
            }
        }
        due
    }

    /// Entries held (live and stale).
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Forgets every entry (before re-arming the live ones).
    pub(crate) fn clear(&mut self) {
        self.heap.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_and_only_what_is_due() {
        let mut d = Deadlines::default();
        assert_eq!(d.next(), None);
        d.push(30, Due::Idle(1));
        d.push(10, Due::Hello(2));
        d.push(20, Due::Room([0; 32]));
        assert_eq!(d.next(), Some(10));
        assert_eq!(d.take_due(9), Vec::new());
        assert_eq!(d.take_due(20), vec![Due::Hello(2), Due::Room([0; 32])]);
        assert_eq!(d.next(), Some(30));
        assert_eq!(d.len(), 1);
        d.clear();
        assert_eq!(d.next(), None);
    }
}
