//! The pending-delivery outbox: envelopes this device must write into a
//! directory other than the current epoch's (spec KEY-15, MEM-21): the
//! carriers of a key message go to the epoch they are sealed under (the one a
//! rotation replaced), a welcome and the membership log it points to go to the
//! newcomer's lobby, a redemption goes to its invite's lobby. The list survives
//! restarts: the shell stores [`Deliveries::encode`] under
//! [`crate::stored::KEY_PENDING`] whenever the session asks it to.
//!
//! Stored form (unchanged since the first SDK): a concatenation of
//! `epoch_id (32) || epoch_secret (32) || len (u32 big-endian) || bytes`.
//! Decoding is total: a truncated tail is dropped.

use std::collections::BTreeMap;

use clientful_core::keys::EpochKey;

/// One envelope waiting to be written into the directory of `epoch`.
#[derive(Clone)]
pub struct Pending {
    /// The epoch (a replaced epoch or a lobby) whose directory takes it.
    pub epoch: EpochKey,
    /// The sealed envelope.
    pub bytes: Vec<u8>,
}

impl core::fmt::Debug for Pending {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pending")
            .field("epoch", self.epoch.id())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Envelopes for one directory, as one upload (a segment) of the sync.
#[derive(Clone)]
pub struct Delivery {
    /// The directory's epoch.
    pub epoch: EpochKey,
    /// The envelopes, in the order they were queued.
    pub envelopes: Vec<Vec<u8>>,
}

impl core::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Delivery")
            .field("epoch", self.epoch.id())
            .field("envelopes", &self.envelopes.len())
            .finish()
    }
}

/// The outbox of pending deliveries.
#[derive(Debug, Clone, Default)]
pub struct Deliveries {
    items: Vec<Pending>,
}

impl Deliveries {
    /// Decodes the stored form (see the module documentation).
    pub fn decode(mut b: &[u8]) -> Deliveries {
        let mut items = Vec::new();
        while b.len() >= 68 {
            let (id, rest) = b.split_at(32);
            let (secret, rest) = rest.split_at(32);
            let (len, rest) = rest.split_at(4);
            let Ok(len) = <[u8; 4]>::try_from(len) else {
                break;
            };
            let n = u32::from_be_bytes(len) as usize;
            if rest.len() < n {
                break;
            }
            let (bytes, rest) = rest.split_at(n);
            if let (Ok(id), Ok(secret)) = (<[u8; 32]>::try_from(id), <[u8; 32]>::try_from(secret)) {
                items.push(Pending {
                    epoch: EpochKey::new(id, secret),
                    bytes: bytes.to_vec(),
                });
            }
            b = rest;
        }
        Deliveries { items }
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.items {
            out.extend_from_slice(e.epoch.id());
            out.extend_from_slice(e.epoch.secret());
            // Envelopes are bounded far below 4 GiB (ENV limits).
            out.extend_from_slice(
                &u32::try_from(e.bytes.len())
                    .unwrap_or(u32::MAX)
                    .to_be_bytes(),
            );
            out.extend_from_slice(&e.bytes);
        }
        out
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many envelopes wait.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Queues `add`, skipping envelopes already queued for the same epoch.
    /// Returns whether anything was added.
    pub fn add(&mut self, add: Vec<Pending>) -> bool {
        let mut added = false;
        for a in add {
            if !self
                .items
                .iter()
                .any(|x| x.bytes == a.bytes && x.epoch.id() == a.epoch.id())
            {
                self.items.push(a);
                added = true;
            }
        }
        added
    }

    /// The uploads to make: one per directory, in epoch id order.
    pub fn uploads(&self) -> Vec<Delivery> {
        let mut by_epoch: BTreeMap<[u8; 32], Delivery> = BTreeMap::new();
        for p in &self.items {
            by_epoch
                .entry(*p.epoch.id())
                .or_insert_with(|| Delivery {
                    epoch: p.epoch.clone(),
                    envelopes: Vec::new(),
                })
                .envelopes
                .push(p.bytes.clone());
        }
        by_epoch.into_values().collect()
    }

    /// Forgets what was written into the directory of `epoch_id`.
    pub fn delivered(&mut self, epoch_id: &[u8; 32], envelopes: &[Vec<u8>]) {
        self.items
            .retain(|p| !(p.epoch.id() == epoch_id && envelopes.contains(&p.bytes)));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]
    use super::*;

    fn key(n: u8) -> EpochKey {
        EpochKey::new([n; 32], [n.wrapping_add(1); 32])
    }

    #[test]
    fn round_trips_and_drops_a_truncated_tail() {
        let mut d = Deliveries::default();
        assert!(d.add(vec![
            Pending {
                epoch: key(1),
                bytes: vec![1, 2, 3]
            },
            Pending {
                epoch: key(2),
                bytes: vec![]
            },
        ]));
        let b = d.encode();
        let back = Deliveries::decode(&b);
        assert_eq!(back.encode(), b);
        assert_eq!(back.len(), 2);
        let cut = Deliveries::decode(&b[..b.len() - 1]);
        assert_eq!(cut.len(), 1);
        assert_eq!(cut.items[0].bytes, vec![1, 2, 3]);
        assert!(Deliveries::decode(&[0u8; 67]).is_empty());
    }

    #[test]
    fn dedups_groups_and_forgets_what_was_delivered() {
        let mut d = Deliveries::default();
        d.add(vec![
            Pending {
                epoch: key(2),
                bytes: vec![9],
            },
            Pending {
                epoch: key(1),
                bytes: vec![7],
            },
            Pending {
                epoch: key(2),
                bytes: vec![8],
            },
        ]);
        assert!(!d.add(vec![Pending {
            epoch: key(2),
            bytes: vec![9]
        }]));
        assert!(d.add(vec![Pending {
            epoch: key(1),
            bytes: vec![9]
        }]));
        let ups = d.uploads();
        assert_eq!(ups.len(), 2);
        assert_eq!(ups[0].epoch.id(), key(1).id());
        assert_eq!(ups[0].envelopes, vec![vec![7], vec![9]]);
        assert_eq!(ups[1].envelopes, vec![vec![9], vec![8]]);
        d.delivered(key(2).id(), &ups[1].envelopes);
        assert_eq!(d.len(), 2);
        assert_eq!(d.uploads().len(), 1);
    }
}
