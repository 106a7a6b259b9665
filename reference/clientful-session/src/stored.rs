//! What the session asks its shell to store in the device-local store
//! (spec STO-20), and the stored forms of its keys. The session never writes
//! itself: it queues [`Persist`] outputs ([`crate::Session::poll_persist`]),
//! which the shell applies in order before it sends anything (DOC-15).

use clientful_core::keys::EpochKey;

/// The key under which the epoch keys held are stored: `id || secret` pairs.
pub const KEY_EPOCHS: &str = "epochs";
/// The key under which the welcomes sent are stored: `device id || epoch id`.
pub const KEY_WELCOMED: &str = "welcomed";
/// The key under which the pinned genesis is stored (MEM-26): a reopened store
/// pins it before feeding its envelopes, among which a rival `CREATE_SPACE`
/// received earlier may sort first.
pub const KEY_GENESIS: &str = "genesis";
/// The key under which the pending deliveries are stored
/// ([`crate::Deliveries::encode`]).
pub const KEY_PENDING: &str = "pending-deliveries";

/// One write to the device-local store.
/// Exhaustive on purpose: a store shell must perform every write; a new one must fail to compile in every shell.
#[derive(Clone, PartialEq, Eq)]
pub enum Persist {
    /// Store an envelope; `outbox`: also queue it for upload into the current
    /// epoch's directory (an envelope bound for another directory is carried
    /// by the pending deliveries instead).
    Envelope {
        /// The sealed envelope.
        bytes: Vec<u8>,
        /// Whether it goes to the outbox.
        outbox: bool,
    },
    /// Replace the value stored under a key name.
    Key {
        /// One of [`KEY_EPOCHS`], [`KEY_WELCOMED`], [`KEY_GENESIS`], [`KEY_PENDING`].
        name: &'static str,
        /// The value.
        value: Vec<u8>,
    },
}

impl core::fmt::Debug for Persist {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Persist::Envelope { bytes, outbox } => f
                .debug_struct("Envelope")
                .field("bytes", &bytes.len())
                .field("outbox", outbox)
                .finish(),
            // Values hold epoch secrets: never printed.
            Persist::Key { name, value } => f
                .debug_struct("Key")
                .field("name", name)
                .field("len", &value.len())
                .finish(),
        }
    }
}

/// What a shell read back from the device-local store when it reopens a space.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// The value under [`KEY_EPOCHS`].
    pub epochs: Option<Vec<u8>>,
    /// The value under [`KEY_WELCOMED`].
    pub welcomed: Option<Vec<u8>>,
    /// The value under [`KEY_PENDING`].
    pub pending: Option<Vec<u8>>,
    /// The value under [`KEY_GENESIS`].
    pub genesis: Option<Vec<u8>>,
}

pub(crate) fn encode_keys(keys: &[EpochKey]) -> Vec<u8> {
    let mut out = Vec::with_capacity(keys.len() * 64);
    for k in keys {
        out.extend_from_slice(k.id());
        out.extend_from_slice(k.secret());
    }
    out
}

pub(crate) fn decode_keys(b: &[u8]) -> Vec<EpochKey> {
    b.chunks_exact(64)
        .filter_map(|c| {
            let id: [u8; 32] = c.get(..32)?.try_into().ok()?;
            let secret: [u8; 32] = c.get(32..)?.try_into().ok()?;
            Some(EpochKey::new(id, secret))
        })
        .collect()
}

pub(crate) fn encode_pairs(pairs: &[([u8; 32], [u8; 32])]) -> Vec<u8> {
    let mut out = Vec::with_capacity(pairs.len() * 64);
    for (a, b) in pairs {
        out.extend_from_slice(a);
        out.extend_from_slice(b);
    }
    out
}

pub(crate) fn decode_pairs(b: &[u8]) -> Vec<([u8; 32], [u8; 32])> {
    b.chunks_exact(64)
        .filter_map(|c| Some((c.get(..32)?.try_into().ok()?, c.get(32..)?.try_into().ok()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_pair_forms_round_trip() {
        let keys = vec![
            EpochKey::new([1; 32], [2; 32]),
            EpochKey::new([3; 32], [4; 32]),
        ];
        let b = encode_keys(&keys);
        let back = decode_keys(&b);
        assert_eq!(encode_keys(&back), b);
        assert_eq!(back.len(), 2);
        let pairs = vec![([5; 32], [6; 32])];
        assert_eq!(decode_pairs(&encode_pairs(&pairs)), pairs);
        assert!(decode_keys(&b[..63]).is_empty());
    }
}
