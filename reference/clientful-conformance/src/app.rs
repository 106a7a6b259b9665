//! The reference adapter's application level (spec §13, CONF-96..CONF-110):
//! the chapter-13 interpretation of a replica (`observe_app`: lifecycle state
//! per APP-2, the test invariant's violations per APP-6), its actions
//! (`app_lifecycle`: a lifecycle record per APP-1; `app_after_merge`: the
//! compensations of APP-6/APP-7), and document replicas bound to a space
//! replica (`create_space_document`, MEM-18), all answered with `clientful-app`
//! and `clientful-doc`.
//!
//! The saboteurs of this level change the answers only at the boundary where
//! their bug would show: `trash-by-arrival-order` reports the lifecycle record
//! that arrived last, `orphans-left-unrepaired` reports repairs it never
//! writes, `accepts-non-writers` binds the document to a membership in which
//! every known device writes.

use clientful_app::data::{self, MapOp};
use clientful_app::invariants::{self, CommentsNeedPost, RepairRule, Strategy};
use clientful_app::lifecycle::{self, DeletePolicy, Lifecycle, Status};
use clientful_core::keys::SigningKey;
use clientful_core::membership::{Role, Scope, SpaceReplica};
use clientful_doc::authority::Membership;
use clientful_doc::crdt::YjsSchema;
use clientful_doc::{CrdtKind, Replica, ReplicaConfig, Verdict};
use serde_json::Value;

use crate::pb;
use crate::saboteur::Saboteur;

/// `local_edit` with `map_delete`.
pub fn map_delete(r: &mut Replica, key: &str) -> Result<(), String> {
    data::apply(r, &[MapOp::Delete(key.to_string())])
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `app_lifecycle`: commits pending edits, then this device's record alone
/// (APP-1); the record's envelope id, if one was sealed.
pub fn lifecycle_action(r: &mut Replica, action: i32) -> Result<Vec<u8>, String> {
    let me = r.device_key();
    let key = format!("{}{}", lifecycle::PREFIX, hex::encode(me));
    let before = data::read(r).get(&key).cloned();
    let mut lc = Lifecycle::new(DeletePolicy::TrashWithUndo);
    match pb::LifecycleAction::try_from(action) {
        Ok(pb::LifecycleAction::Trash) => lc
            .request_delete(r, true)
            .map(|_| ())
            .map_err(|e| e.to_string())?,
        Ok(pb::LifecycleAction::Restore) => lc.restore(r).map_err(|e| e.to_string())?,
        _ => return Err(format!("invalid lifecycle action {action}")),
    }
    if data::read(r).get(&key) == before.as_ref() {
        return Ok(Vec::new());
    }
    // The record is this device's newest envelope (APP-1).
    let seq = r.dag().version_vector().get(&me).copied().unwrap_or(0);
    Ok(r.dag()
        .nodes
        .values()
        .find(|n| n.author == me && n.seq == seq)
        .map(|n| n.id.to_vec())
        .unwrap_or_default())
}

fn strategy(c: i32) -> Result<Strategy, String> {
    Ok(match pb::Compensation::try_from(c) {
        Ok(pb::Compensation::RemoveOrphans) => Strategy::Repair(RepairRule::RemoveOrphans),
        Ok(pb::Compensation::Reparent) => Strategy::Repair(RepairRule::Reparent),
        Ok(pb::Compensation::Recreate) => Strategy::Recreate,
        Ok(pb::Compensation::Surface) => Strategy::Surface,
        _ => return Err(format!("invalid compensation {c}")),
    })
}

fn violation(v: &invariants::Violation) -> pb::Violation {
    pb::Violation {
        invariant: v.invariant.to_string(),
        subject: v.subject.clone(),
        needs: v.needs.clone(),
    }
}

fn sorted(mut v: Vec<pb::Violation>) -> Vec<pb::Violation> {
    v.sort_by(|a, b| {
        (&a.invariant, &a.subject, &a.needs).cmp(&(&b.invariant, &b.subject, &b.needs))
    });
    v
}

/// `app_after_merge` (APP-6, APP-7).
pub fn after_merge(
    r: &mut Replica,
    compensation: i32,
    sab: Option<Saboteur>,
) -> Result<pb::AppAfterMergeResult, String> {
    let s = strategy(compensation)?;
    if sab == Some(Saboteur::OrphansLeftUnrepaired) && s != Strategy::Surface {
        // The bug: the violations are reported as handled, nothing is written.
        let d = data::read(r);
        let repaired = invariants::Invariant::check(&CommentsNeedPost, &d)
            .iter()
            .map(violation)
            .collect();
        return Ok(pb::AppAfterMergeResult {
            repaired: sorted(repaired),
            conflicts: Vec::new(),
            writes: 0,
        });
    }
    let out = invariants::after_merge(r, &[(&CommentsNeedPost, s)]).map_err(|e| e.to_string())?;
    Ok(pb::AppAfterMergeResult {
        repaired: sorted(out.repaired.iter().map(violation).collect()),
        conflicts: sorted(out.conflicts.iter().map(violation).collect()),
        writes: u32::try_from(out.writes).unwrap_or(u32::MAX),
    })
}

/// `observe_app`: APP-2 status and the test invariant's violations.
pub fn observe(r: &mut Replica, sab: Option<Saboteur>) -> pb::AppObservation {
    let status = if sab == Some(Saboteur::TrashByArrivalOrder) {
        arrival_order_status(r)
    } else {
        lifecycle::status(r)
    };
    let (state, trashed_by) = match status {
        Status::Active => (pb::LifecycleState::Active, Vec::new()),
        Status::Trashed { by } => (
            pb::LifecycleState::Trashed,
            by.iter().map(|d| d.to_vec()).collect(),
        ),
    };
    let d = data::read(r);
    let violations = invariants::Invariant::check(&CommentsNeedPost, &d)
        .iter()
        .map(violation)
        .collect();
    pb::AppObservation {
        state: state as i32,
        trashed_by,
        violations: sorted(violations),
    }
}

/// The `trash-by-arrival-order` bug: the lifecycle record whose envelope this
/// replica integrated last decides, whatever it had seen (last writer wins
/// by arrival, against APP-2 and APP-16).
fn arrival_order_status(r: &mut Replica) -> Status {
    let d = data::read(r);
    let mut last: Option<(usize, [u8; 32], bool)> = None;
    for (k, v) in d.range(lifecycle::PREFIX.to_string()..) {
        let Some(hex_dev) = k.strip_prefix(lifecycle::PREFIX) else {
            break;
        };
        let Some(dev) = hex::decode(hex_dev)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
        else {
            continue;
        };
        let Ok(rec) = serde_json::from_str::<Value>(v) else {
            continue;
        };
        let trashed = match rec.get("state").and_then(Value::as_str) {
            Some("trashed") => true,
            Some("active") => false,
            _ => continue,
        };
        // Records that do not parse are still ignored (APP-3): only the
        // arrival-order rule is broken.
        let Some(seen) = rec.get("seen").and_then(Value::as_object) else {
            continue;
        };
        let own = seen.get(hex_dev).and_then(Value::as_u64).unwrap_or(0) + 1;
        let pos = r.dag().order.iter().position(|id| {
            r.dag()
                .nodes
                .get(id)
                .is_some_and(|n| n.author == dev && n.seq == own)
                && r.verdict(id) == Verdict::Applied
        });
        if let Some(p) = pos
            && last.is_none_or(|(q, _, _)| p > q)
        {
            last = Some((p, dev, trashed));
        }
    }
    match last {
        Some((_, dev, true)) => Status::Trashed { by: vec![dev] },
        _ => Status::Active,
    }
}

/// The membership a bound document replica is checked against (MEM-18): the
/// space replica's write view, epoch keys and current epoch. With the
/// `accepts-non-writers` saboteur, every known device writes.
pub fn membership(sp: &SpaceReplica, sab: Option<Saboteur>) -> Result<Membership, String> {
    let mut view = sp.write_view();
    if sab == Some(Saboteur::AcceptsNonWriters) {
        for d in view.devices.values_mut() {
            d.current = Some((Role::Writer, Scope::whole()));
            d.ended = None;
        }
    }
    Ok(Membership {
        view,
        keys: sp.epoch_chain(),
        current: sp
            .current_epoch()
            .ok_or("the space replica holds no current epoch key")?,
        folders: Vec::new(),
    })
}

/// `create_space_document`: a replica of document `doc_id` as the space
/// replica's device, under its membership.
pub fn space_document(
    sp: &SpaceReplica,
    c: &pb::CreateSpaceDocument,
    sab: Option<Saboteur>,
) -> Result<Replica, String> {
    let doc_id: [u8; 32] = c
        .doc_id
        .as_slice()
        .try_into()
        .map_err(|_| "doc_id must be 32 bytes")?;
    let rng_seed: [u8; 32] = c
        .rng_seed
        .as_slice()
        .try_into()
        .map_err(|_| "rng_seed must be 32 bytes")?;
    let crdt = match c.crdt.as_str() {
        "yjs" => CrdtKind::Yjs,
        "automerge" => CrdtKind::Automerge,
        other => return Err(format!("crdt must be yjs or automerge, not {other:?}")),
    };
    let m = membership(sp, sab)?;
    let mut r = Replica::new(ReplicaConfig {
        space_id: *sp.space_id(),
        doc_id,
        device: SigningKey::from_seed(&sp.identity().device.signing.seed()),
        epoch: m.current.clone(),
        old_epochs: Vec::new(),
        signers: Vec::new(),
        crdt,
        yjs_schema: YjsSchema::default(),
        rng_seed,
    });
    r.set_membership(m);
    Ok(r)
}
