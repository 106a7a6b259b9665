//! Publishes waiting for the broker's ACK (BRK-19). They survive a disconnect and
//! are published again, in order, after the next JOINED. Bounded by count and bytes.

use std::collections::BTreeMap;

/// Most payloads kept.
pub const MAX_OUTBOX_ITEMS: usize = 65_536;
/// Most payload bytes kept.
pub const MAX_OUTBOX_BYTES: usize = 256 * 1024 * 1024;

/// The outbox.
#[derive(Debug, Default)]
pub struct Outbox {
    next: u32,
    pending: BTreeMap<u32, Vec<u8>>,
    bytes: usize,
}

/// The outbox is full.
#[derive(Debug, thiserror::Error)]
#[error("outbox full")]
pub struct OutboxFull;

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a payload; returns its request id (never 0).
    pub fn push(&mut self, payload: Vec<u8>) -> Result<u32, OutboxFull> {
        if self.pending.len() >= MAX_OUTBOX_ITEMS
            || self.bytes.saturating_add(payload.len()) > MAX_OUTBOX_BYTES
        {
            return Err(OutboxFull);
        }
        self.next = self.next.wrapping_add(1).max(1);
        self.bytes += payload.len();
        self.pending.insert(self.next, payload);
        Ok(self.next)
    }

    /// The broker acknowledged `request`.
    pub fn ack(&mut self, request: u32) {
        if let Some(p) = self.pending.remove(&request) {
            self.bytes -= p.len();
        }
    }

    /// Every pending payload, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = (u32, &[u8])> {
        self.pending.iter().map(|(k, v)| (*k, v.as_slice()))
    }

    /// Number of pending payloads.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_ack_order() {
        let mut o = Outbox::new();
        let a = o.push(b"a".to_vec()).expect("room");
        let b = o.push(b"b".to_vec()).expect("room");
        assert_eq!(
            o.pending().map(|(_, p)| p.to_vec()).collect::<Vec<_>>(),
            [b"a".to_vec(), b"b".to_vec()]
        );
        o.ack(a);
        o.ack(a);
        assert_eq!(o.pending().map(|(r, _)| r).collect::<Vec<_>>(), [b]);
        o.ack(b);
        assert!(o.is_empty());
    }
}
