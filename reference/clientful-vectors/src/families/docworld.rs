//! Shared by the document families: the world (space, document, epoch, devices)
//! as vector parameters, the observer replica built from them, and helpers that
//! produce honest and Byzantine envelopes with the reference replica.

use automerge::transaction::Transactable;
use clientful_core::envelope::{self, EnvelopeId, SealRequest};
use clientful_core::keys::{EpochKey, SigningKey};
use clientful_doc::crdt::YjsSchema;
use clientful_doc::testkit::{self, World};
use clientful_doc::{CrdtKind, Disposition, Replica, ReplicaConfig};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{Value, json};
use yrs::{ReadTxn, Text, Transact};

use crate::hexutil::{get_arr, get_hex_list, get_str, hex};

/// Seed of the observer device (a passive replica that never writes).
pub const OBSERVER_SEED: [u8; 32] = [0x0b; 32];

/// The world as vector parameters.
pub fn world_params(w: &World) -> Value {
    json!({
        "crdt": match w.crdt { CrdtKind::Yjs => "yjs", CrdtKind::Automerge => "automerge" },
        "spaceId": hex(w.space_id),
        "docId": hex(w.doc_id),
        "epoch": {"epochId": hex(w.epoch.0), "secret": hex(w.epoch.1)},
        "signers": w.signers().iter().map(hex).collect::<Vec<_>>(),
        "observerSeed": hex(OBSERVER_SEED),
        "yjsRoots": [{"name": "text", "kind": "text"}, {"name": "data", "kind": "map"}],
    })
}

/// The observer replica the parameters describe.
pub fn observer(params: &Value) -> Result<Replica, String> {
    let seed = get_arr(params, "observerSeed")?;
    Ok(Replica::new(replica_config(params, seed, [0; 32])?))
}

/// The configuration of a replica of device `device_seed` in the world the
/// parameters describe (also what the conformance harness's `create_replica`
/// carries).
pub fn replica_config(
    params: &Value,
    device_seed: [u8; 32],
    rng_seed: [u8; 32],
) -> Result<ReplicaConfig, String> {
    let crdt = match get_str(params, "crdt")? {
        "yjs" => CrdtKind::Yjs,
        "automerge" => CrdtKind::Automerge,
        other => return Err(format!("unknown crdt {other}")),
    };
    let epoch = params.get("epoch").ok_or("missing epoch")?;
    let signers = get_hex_list(params, "signers")?
        .into_iter()
        .map(|s| {
            s.try_into()
                .map_err(|_| "signer must be 32 bytes".to_string())
        })
        .collect::<Result<Vec<[u8; 32]>, String>>()?;
    // The reference declares the default roots; a file declaring others would need
    // a schema this verifier does not build, so it must match.
    let roots = params.get("yjsRoots").cloned().unwrap_or(Value::Null);
    if crdt == CrdtKind::Yjs
        && roots != json!([{"name": "text", "kind": "text"}, {"name": "data", "kind": "map"}])
    {
        return Err("unsupported yjsRoots".into());
    }
    Ok(ReplicaConfig {
        space_id: get_arr(params, "spaceId")?,
        doc_id: get_arr(params, "docId")?,
        device: SigningKey::from_seed(&device_seed),
        epoch: EpochKey::new(get_arr(epoch, "epochId")?, get_arr(epoch, "secret")?),
        old_epochs: Vec::new(),
        signers,
        crdt,
        yjs_schema: YjsSchema::default(),
        rng_seed,
    })
}

/// A disposition as JSON.
pub fn disposition_json(d: &Disposition) -> Value {
    match d {
        Disposition::Applied { unblocked, .. } => {
            json!({"disposition": "applied", "unblocked": unblocked.len()})
        }
        Disposition::Buffered { missing, .. } => {
            json!({"disposition": "buffered", "missing": missing.len()})
        }
        Disposition::Duplicate { .. } => json!({"disposition": "duplicate"}),
        Disposition::Rejected { class, .. } => json!({
            "disposition": "rejected",
            "error": clientful_core::error::class_name(*class),
        }),
        other => json!({"disposition": format!("{other:?}")}),
    }
}

/// Inserts text (UTF-16 offset); see [`testkit::insert_text`].
pub fn yjs_insert(r: &mut Replica, pos: u32, s: &str) {
    let _ = testkit::insert_text(r, pos, s);
}

/// Deletes text (UTF-16 offsets); see [`testkit::delete_text`].
pub fn yjs_delete(r: &mut Replica, pos: u32, len: u32) {
    let _ = testkit::delete_text(r, pos, len);
}

/// Sets a string in the Yjs `data` map; see [`testkit::set_value`].
pub fn yjs_set(r: &mut Replica, key: &str, value: &str) {
    let _ = testkit::set_value(r, key, value);
}

/// Splices the Automerge text (UTF-16 code units): a deletion, then an insertion.
pub fn am_splice(r: &mut Replica, pos: u32, del: u32, s: &str) {
    if del > 0 {
        let _ = testkit::delete_text(r, pos, del);
    }
    if !s.is_empty() {
        let _ = testkit::insert_text(r, pos, s);
    }
}

/// Puts a string at a root key of an Automerge replica.
pub fn am_put(r: &mut Replica, key: &str, value: &str) {
    let _ = testkit::set_value(r, key, value);
}

/// Commits and returns the sealed envelope.
pub fn commit(r: &mut Replica) -> Result<(EnvelopeId, Vec<u8>), String> {
    r.commit().map_err(|e| e.to_string())?;
    r.drain_outbox()
        .pop()
        .ok_or_else(|| "no edits to commit".to_string())
}

/// Delivers envelopes to a replica, requiring each to apply.
pub fn deliver(r: &mut Replica, envs: &[&Vec<u8>]) -> Result<(), String> {
    for e in envs {
        match r.receive(e) {
            Disposition::Applied { .. } | Disposition::Duplicate { .. } => {}
            other => return Err(format!("setup delivery failed: {other:?}")),
        }
    }
    Ok(())
}

/// Seals an arbitrary payload as device `signer` of the world (a Byzantine
/// member can do exactly this).
#[allow(clippy::too_many_arguments)]
pub fn seal_raw(
    w: &World,
    signer: usize,
    seq: u64,
    prev: Option<EnvelopeId>,
    preds: Vec<EnvelopeId>,
    content_type: u32,
    body: &[u8],
    nonce_seed: u64,
) -> Result<(EnvelopeId, Vec<u8>), String> {
    let mut rng = ChaCha20Rng::seed_from_u64(nonce_seed);
    let sealed = envelope::seal(
        &w.device(signer),
        &w.epoch_key(),
        &SealRequest {
            space_id: w.space_id,
            doc_id: w.doc_id,
            seq,
            prev,
            preds,
            content_type,
            body,
        },
        &mut rng,
    )
    .map_err(|e| e.to_string())?;
    Ok((sealed.id, sealed.bytes))
}

/// A Yjs update inserting `text` under an arbitrary client id, starting at
/// clock `skip` (the first `skip` characters are inserted but left out).
pub fn yjs_update_as(client_id: u64, text: &str, skip: u32) -> Vec<u8> {
    let doc = yrs::Doc::with_client_id(client_id);
    let t = doc.get_or_insert_text("text");
    let sv = {
        let mut txn = doc.transact_mut();
        if skip > 0 {
            t.insert(&mut txn, 0, &"_".repeat(skip as usize));
        }
        txn.state_vector()
    };
    let mut txn = doc.transact_mut();
    t.insert(&mut txn, skip, text);
    drop(txn);
    let txn = doc.transact();
    txn.encode_diff_v1(&sv)
}

/// Automerge change chunks written under an arbitrary actor: `count` changes,
/// of which the first `skip` are left out.
pub fn automerge_changes_as(actor: [u8; 16], count: usize, skip: usize) -> Vec<u8> {
    let mut doc = automerge::AutoCommit::new_with_encoding(automerge::TextEncoding::Utf16CodeUnit)
        .with_actor(automerge::ActorId::from(actor.to_vec()));
    for i in 0..count {
        let _ = doc.put(automerge::ROOT, format!("k{i}"), i as i64);
        doc.commit();
    }
    let mut body = Vec::new();
    for c in doc.get_changes(&[]).iter().skip(skip) {
        body.extend_from_slice(c.raw_bytes());
    }
    body
}
