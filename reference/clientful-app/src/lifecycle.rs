//! Deleting a document into a trash, and undoing a deletion that raced with
//! edits it never saw (spec §13.2, APP-1 to APP-5).
//!
//! A deletion is a **lifecycle record** in the document itself: the data key
//! `_lifecycle/<device>` (one key per device, so nobody overwrites anyone else's
//! record) holds `{"state": "trashed" | "active", "seen": {author: seq, ...}}`,
//! where `seen` is the deleting device's version vector when it deleted, which is
//! exactly the causal past of the deletion. The record is committed alone, as the
//! device's next envelope, so the record also names its own envelope:
//! `(device, seen[device] + 1)`.
//!
//! The document's status is a pure function of the DAG and the records (APP-2):
//! it is trashed if and only if some `trashed` record has seen every applied
//! envelope of the document other than the envelopes of `trashed` records. An
//! edit (or a restore) the deleter had not seen undoes the deletion, identically
//! on every replica, with no coordination and no clock.

use std::collections::BTreeMap;

use clientful_doc::{Replica, Verdict};
use serde_json::{Value, json};

use crate::AppError;
use crate::data::{self, Data, MapOp};

/// Prefix of lifecycle record keys.
pub const PREFIX: &str = "_lifecycle/";

/// A document's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// In use.
    Active,
    /// In the trash: the devices whose deletions stand.
    Trashed {
        /// Deleting devices, sorted.
        by: Vec<[u8; 32]>,
    },
}

/// What a device may do about deleting (APP-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeletePolicy {
    /// Delete at once, online or not; concurrent unseen edits undo the deletion.
    #[default]
    TrashWithUndo,
    /// Refuse to delete while the device is offline.
    NoDeletesWhileOffline,
    /// Hold the deletion on this device until it has caught up with its peers
    /// (the runtime reports it), then delete with everything seen.
    HoldUntilSeen,
}

/// What a delete request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The deletion was committed.
    Committed,
    /// The deletion waits until [`Lifecycle::caught_up`].
    Held,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    device: [u8; 32],
    trashed: bool,
    seen: BTreeMap<[u8; 32], u64>,
}

fn parse_key(device_hex: &str) -> Option<[u8; 32]> {
    hex::decode(device_hex).ok()?.try_into().ok()
}

fn parse_record(key: &str, value: &str) -> Result<Record, AppError> {
    let bad = |reason: &str| AppError::Malformed {
        key: key.to_string(),
        reason: reason.to_string(),
    };
    let device = key
        .strip_prefix(PREFIX)
        .and_then(parse_key)
        .ok_or_else(|| bad("key is not _lifecycle/<device hex>"))?;
    let v: Value = serde_json::from_str(value).map_err(|e| bad(&e.to_string()))?;
    let trashed = match v.get("state").and_then(Value::as_str) {
        Some("trashed") => true,
        Some("active") => false,
        _ => return Err(bad("state must be trashed or active")),
    };
    let mut seen = BTreeMap::new();
    for (a, s) in v
        .get("seen")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("seen must be an object"))?
    {
        let author = parse_key(a).ok_or_else(|| bad("seen keys are device hex"))?;
        let seq = s.as_u64().ok_or_else(|| bad("seen values are integers"))?;
        seen.insert(author, seq);
    }
    Ok(Record {
        device,
        trashed,
        seen,
    })
}

fn records(data: &Data) -> Vec<Record> {
    // A record that does not parse is ignored by every replica alike (APP-3).
    data.range(PREFIX.to_string()..)
        .take_while(|(k, _)| k.starts_with(PREFIX))
        .filter_map(|(k, v)| parse_record(k, v).ok())
        .collect()
}

/// The document's status (APP-2): a pure function of the applied envelopes and
/// the lifecycle records.
pub fn status(r: &mut Replica) -> Status {
    let data = data::read(r);
    let recs = records(&data);
    let trash: Vec<&Record> = recs.iter().filter(|r| r.trashed).collect();
    if trash.is_empty() {
        return Status::Active;
    }
    // The envelopes that carry trash records (their own, not edits).
    let trash_envelopes: Vec<([u8; 32], u64)> = trash
        .iter()
        .map(|t| (t.device, t.seen.get(&t.device).copied().unwrap_or(0) + 1))
        .collect();
    let applied: Vec<([u8; 32], u64)> = r
        .dag()
        .nodes
        .values()
        .filter(|n| r.verdict(&n.id) == Verdict::Applied)
        .map(|n| (n.author, n.seq))
        .filter(|k| !trash_envelopes.contains(k))
        .collect();
    let mut by: Vec<[u8; 32]> = trash
        .iter()
        .filter(|t| {
            applied
                .iter()
                .all(|(a, s)| *s <= t.seen.get(a).copied().unwrap_or(0))
        })
        .map(|t| t.device)
        .collect();
    by.sort_unstable();
    by.dedup();
    if by.is_empty() {
        Status::Active
    } else {
        Status::Trashed { by }
    }
}

/// One device's lifecycle actions on one document, under a policy.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    policy: DeletePolicy,
    held: bool,
}

impl Lifecycle {
    /// A lifecycle under `policy`.
    pub fn new(policy: DeletePolicy) -> Self {
        Lifecycle {
            policy,
            held: false,
        }
    }

    /// Whether a deletion is being held (policy [`DeletePolicy::HoldUntilSeen`]).
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Asks to delete the document. `online` is the runtime's view of the
    /// device's connectivity (APP-4).
    pub fn request_delete(
        &mut self,
        r: &mut Replica,
        online: bool,
    ) -> Result<DeleteOutcome, AppError> {
        match self.policy {
            DeletePolicy::NoDeletesWhileOffline if !online => Err(AppError::Offline),
            DeletePolicy::HoldUntilSeen => {
                self.held = true;
                Ok(DeleteOutcome::Held)
            }
            _ => {
                write_record(r, true)?;
                Ok(DeleteOutcome::Committed)
            }
        }
    }

    /// Tells the lifecycle that the device has caught up with its peers (a
    /// sync exchange with each reachable peer completed). A held deletion is
    /// committed now, having seen everything; returns whether it was.
    pub fn caught_up(&mut self, r: &mut Replica) -> Result<bool, AppError> {
        if !self.held {
            return Ok(false);
        }
        self.held = false;
        write_record(r, true)?;
        Ok(true)
    }

    /// Takes the document out of the trash (APP-5); also cancels a held deletion.
    pub fn restore(&mut self, r: &mut Replica) -> Result<(), AppError> {
        self.held = false;
        write_record(r, false)
    }
}

/// Commits this device's lifecycle record as its own next envelope (APP-1).
fn write_record(r: &mut Replica, trashed: bool) -> Result<(), AppError> {
    // Pending edits first, in their own envelope: the record must be alone.
    r.commit()?;
    let me = r.device_key();
    let seen = r.dag().version_vector();
    let expected_seq = seen.get(&me).copied().unwrap_or(0) + 1;
    let value = json!({
        "state": if trashed { "trashed" } else { "active" },
        "seen": seen.iter().map(|(a, s)| (hex::encode(a), json!(s))).collect::<serde_json::Map<_, _>>(),
    });
    let key = format!("{PREFIX}{}", hex::encode(me));
    let n = data::apply(r, &[MapOp::Set(key, value.to_string())])?;
    if n == 0 {
        return Ok(());
    }
    let id = r
        .commit()?
        .ok_or_else(|| AppError::Internal("lifecycle record not committed".into()))?;
    let seq = r.dag().nodes.get(&id).map(|n| n.seq);
    if seq != Some(expected_seq) {
        return Err(AppError::Internal(format!(
            "lifecycle record sealed at seq {seq:?}, expected {expected_seq}"
        )));
    }
    Ok(())
}
