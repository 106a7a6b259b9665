//! `passive-replica`: a replica that never writes is fed a delivery log —
//! reordered, duplicated, and with malicious envelopes from a Byzantine member —
//! and after every step reports its disposition, error class and digests
//! (spec §8.5, after MLS's passive-client vectors).

use clientful_doc::testkit::World;
use clientful_doc::{CrdtKind, binding, content};
use serde_json::{Value, json};

use super::docworld::{
    am_splice, automerge_changes_as, commit, deliver, disposition_json, observer, seal_raw,
    world_params, yjs_insert, yjs_update_as,
};
use crate::generate::{FileBuilder, Variation};
use crate::hexutil::{get_bytes_input, hex};
use crate::schema::VectorFile;
use crate::verify::Outcome;

const SEED: &str = "clientful/v1/vectors/passive-replica";

/// Device index of the Byzantine member in every world of this family.
const BYZ: usize = 3;

fn log(steps: &[&Vec<u8>]) -> Value {
    json!({"log": steps.iter().map(|e| json!({"envelope": hex(e)})).collect::<Vec<_>>()})
}

fn expected(params: &Value, input: &Value) -> Result<Value, String> {
    match run("replay", params, input)? {
        Outcome::Accepted(v) => Ok(v),
        Outcome::Rejected(c) => Err(format!("replay rejected: {c:?}")),
    }
}

/// Checks that the reference gives the intended disposition at every step.
fn intend(out: &Value, intended: &[&str]) -> Result<(), String> {
    let steps = out
        .get("steps")
        .and_then(Value::as_array)
        .ok_or("no steps")?;
    if steps.len() != intended.len() {
        return Err("step count".into());
    }
    for (i, (s, want)) in steps.iter().zip(intended).enumerate() {
        let got = match (
            s.get("disposition").and_then(Value::as_str),
            s.get("error").and_then(Value::as_str),
        ) {
            (Some("rejected"), Some(e)) => format!("rejected:{e}"),
            (Some(d), _) => d.to_string(),
            _ => "?".into(),
        };
        if got != *want {
            return Err(format!("step {i}: intended {want}, reference says {got}"));
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn case(
    f: &mut FileBuilder,
    params: &Value,
    name: &str,
    desc: &str,
    refs: &[&str],
    flags: &[&str],
    steps: &[&Vec<u8>],
    intended: &[&str],
) -> Result<(), String> {
    let input = log(steps);
    let out = expected(params, &input)?;
    intend(&out, intended).map_err(|e| format!("{name}: {e}"))?;
    f.valid(name, desc, refs, flags, input, out);
    Ok(())
}

/// Builds the file from the family's fixed seed.
pub fn generate() -> Result<VectorFile, String> {
    generate_seeded(SEED)
}

/// Builds the file from `seed`: the fixed seed gives the committed file, any
/// other seed fresh cases of the same shape (CONF-53).
#[allow(clippy::too_many_lines)]
pub fn generate_seeded(seed: &str) -> Result<VectorFile, String> {
    let var = Variation::new(seed, SEED);
    let mut f = FileBuilder::new(
        "passive-replica",
        seed,
        "A passive replica fed a delivery log with reorders, duplicates and malicious envelopes: \
         per step the disposition (applied, buffered, duplicate, rejected with its class) and the \
         digests after the step.",
    );
    for (flag, bug, desc) in [
        ("InOrder", "BASIC", "Envelopes in causal order."),
        (
            "Reordered",
            "DEFINED",
            "A descendant arrives before its predecessors: buffered, then released.",
        ),
        (
            "Duplicate",
            "DEFINED",
            "An envelope delivered again: nothing changes.",
        ),
        (
            "ActorSpoofing",
            "AUTH_BYPASS",
            "A member writes CRDT content under another device's actor.",
        ),
        (
            "DependsOnRejected",
            "AUTH_BYPASS",
            "An envelope whose causal past holds a rejected envelope.",
        ),
        (
            "ForgedPredecessor",
            "RESOURCE",
            "A predecessor id nobody has: buffered, never applied.",
        ),
        (
            "Equivocation",
            "EQUIVOCATION",
            "Two envelopes with the same author and seq: both kept, author excluded.",
        ),
        (
            "ClockGap",
            "AUTH_BYPASS",
            "CRDT content that does not continue the author's chain.",
        ),
        (
            "BadChainLink",
            "AUTH_BYPASS",
            "prev is not the author's envelope at seq - 1.",
        ),
        ("Garbage", "BASIC", "Bytes that are not an envelope."),
        (
            "UnknownSigner",
            "AUTH_BYPASS",
            "An envelope by a device that is not a member.",
        ),
        (
            "WrongContentType",
            "DEFINED",
            "A content type the document's CRDT does not take in the DAG.",
        ),
        (
            "CompressedChunk",
            "RESOURCE",
            "An Automerge compressed chunk (not allowed in envelopes).",
        ),
    ] {
        f.note(flag, bug, desc);
    }

    // ---- Yjs ----
    let w = World::new(var.world(0x70617373), 4, CrdtKind::Yjs);
    let params = world_params(&w);
    f.group(
        "replay",
        "Yjs document; devices 0-2 honest, device 3 Byzantine; the observer is not a member.",
        params.clone(),
    );
    let (mut a, mut b) = (w.replica(0), w.replica(1));
    yjs_insert(&mut a, 0, "hello");
    let (a1_id, a1) = commit(&mut a)?;
    yjs_insert(&mut a, 5, " world");
    let (_, a2) = commit(&mut a)?;
    deliver(&mut b, &[&a1, &a2])?;
    yjs_insert(&mut b, 0, "B: ");
    let (b1_id, b1) = commit(&mut b)?;
    case(
        &mut f,
        &params,
        "yjs-in-order",
        "Three envelopes in causal order.",
        &["DOC-6", "DOC-12", "DOC-13"],
        &["InOrder"],
        &[&a1, &a2, &b1],
        &["applied", "applied", "applied"],
    )?;
    case(
        &mut f,
        &params,
        "yjs-reordered-and-duplicated",
        "The last envelope first, then the middle one, then the root, then repeats.",
        &["DOC-6", "DOC-8"],
        &["Reordered", "Duplicate"],
        &[&b1, &a2, &a1, &a1, &b1],
        &["buffered", "buffered", "applied", "duplicate", "duplicate"],
    )?;

    // Actor spoofing: the Byzantine member inserts under device 0's client id.
    let victim = w.yjs_client_id(0, 0);
    let (spoof_id, spoof) = seal_raw(
        &w,
        BYZ,
        1,
        None,
        vec![a1_id],
        content::YJS_UPDATE_V1,
        &yjs_update_as(victim, "evil", 0),
        11,
    )?;
    let (_, child) = seal_raw(
        &w,
        BYZ,
        2,
        Some(spoof_id),
        vec![spoof_id],
        content::YJS_UPDATE_V1,
        &yjs_update_as(w.yjs_client_id(BYZ, 0), "x", 0),
        12,
    )?;
    case(
        &mut f,
        &params,
        "yjs-actor-spoofing",
        "A Byzantine member writes under device 0's Yjs client id; then builds on it.",
        &["DOC-3", "DOC-6"],
        &["ActorSpoofing", "DependsOnRejected"],
        &[&a1, &spoof, &child],
        &[
            "applied",
            "rejected:INVALID_OPERATION",
            "rejected:INVALID_OPERATION",
        ],
    )?;

    // Clock gap: the Byzantine member's own client, but starting at clock 5.
    let own = w.yjs_client_id(BYZ, 0);
    let (_, gap) = seal_raw(
        &w,
        BYZ,
        1,
        None,
        vec![],
        content::YJS_UPDATE_V1,
        &yjs_update_as(own, "late", 5),
        13,
    )?;
    case(
        &mut f,
        &params,
        "yjs-clock-gap",
        "The first envelope of a device inserts from clock 5.",
        &["DOC-4"],
        &["ClockGap"],
        &[&gap],
        &["rejected:INVALID_OPERATION"],
    )?;

    // Forged predecessor.
    let (_, forged) = seal_raw(
        &w,
        BYZ,
        1,
        None,
        vec![[0x66; 32]],
        content::YJS_UPDATE_V1,
        &yjs_update_as(own, "f", 0),
        14,
    )?;
    case(
        &mut f,
        &params,
        "yjs-forged-predecessor",
        "A predecessor id nobody has: the envelope waits; honest envelopes still apply.",
        &["DOC-8"],
        &["ForgedPredecessor"],
        &[&forged, &a1, &a2],
        &["buffered", "applied", "applied"],
    )?;

    // Equivocation.
    let (eq1_id, eq1) = seal_raw(
        &w,
        BYZ,
        1,
        None,
        vec![a1_id],
        content::YJS_UPDATE_V1,
        &yjs_update_as(own, "XX", 0),
        15,
    )?;
    let (_, eq2) = seal_raw(
        &w,
        BYZ,
        1,
        None,
        vec![a1_id],
        content::YJS_UPDATE_V1,
        &yjs_update_as(own, "YY", 0),
        16,
    )?;
    case(
        &mut f,
        &params,
        "yjs-equivocation",
        "Two different seq-1 envelopes of one member: the second is rejected as evidence and both leave the document.",
        &["DOC-9", "DOC-13"],
        &["Equivocation"],
        &[&a1, &eq1, &a2, &eq2, &eq1],
        &[
            "applied",
            "applied",
            "applied",
            "rejected:EQUIVOCATION",
            "duplicate",
        ],
    )?;

    // Late equivocation (DOC-20): device 2 builds on eq1 without seeing eq2,
    // so eq1 is witnessed and stays applied whatever the order; eq2 is excluded.
    let (_, witness) = seal_raw(
        &w,
        2,
        1,
        None,
        vec![eq1_id],
        content::YJS_UPDATE_V1,
        &yjs_update_as(w.yjs_client_id(2, 0), "W", 0),
        26,
    )?;
    case(
        &mut f,
        &params,
        "yjs-late-equivocation-keeps-witnessed",
        "Device 2 built on the first seq-1 envelope before the second appeared: the first stays applied (witnessed), the second is excluded.",
        &["DOC-9", "DOC-20"],
        &["Equivocation"],
        &[&a1, &eq1, &witness, &eq2],
        &["applied", "applied", "applied", "rejected:EQUIVOCATION"],
    )?;
    case(
        &mut f,
        &params,
        "yjs-late-equivocation-witness-last",
        "The same envelopes, the witness last: the envelope excluded on arrival is kept once its witness arrives; the final digests equal the previous case's.",
        &["DOC-9", "DOC-20", "DOC-7"],
        &["Equivocation", "Reordered"],
        &[&a1, &eq2, &eq1, &witness],
        &["applied", "applied", "rejected:EQUIVOCATION", "applied"],
    )?;

    // Bad chain link: seq 2 whose prev is someone else's envelope.
    let (_, badlink) = seal_raw(
        &w,
        BYZ,
        2,
        Some(b1_id),
        vec![b1_id],
        content::YJS_UPDATE_V1,
        &yjs_update_as(own, "z", 0),
        17,
    )?;
    case(
        &mut f,
        &params,
        "yjs-bad-chain-link",
        "seq 2 whose prev is another device's envelope.",
        &["DOC-6"],
        &["BadChainLink"],
        &[&a1, &a2, &b1, &badlink],
        &[
            "applied",
            "applied",
            "applied",
            "rejected:INVALID_OPERATION",
        ],
    )?;

    // Garbage, unknown signer, wrong content type.
    let garbage = vec![0x0a, 0x03, 0xde, 0xad];
    let outsider = World::new(var.world(0x6f757473), 1, CrdtKind::Yjs);
    let mut alien_world = w.clone();
    alien_world.device_seeds = outsider.device_seeds.clone();
    let (_, alien) = seal_raw(
        &alien_world,
        0,
        1,
        None,
        vec![],
        content::YJS_UPDATE_V1,
        &yjs_update_as(1, "a", 0),
        18,
    )?;
    let (_, snapshot) = seal_raw(
        &w,
        BYZ,
        1,
        None,
        vec![],
        content::YJS_SNAPSHOT,
        &yjs_update_as(own, "s", 0),
        19,
    )?;
    case(
        &mut f,
        &params,
        "yjs-garbage-outsider-and-snapshot",
        "Garbage bytes, an envelope by a non-member, and a snapshot content type in the DAG.",
        &["DOC-6", "ENV-15"],
        &["Garbage", "UnknownSigner", "WrongContentType"],
        &[&garbage, &alien, &snapshot],
        &[
            "rejected:MALFORMED",
            "rejected:UNKNOWN_SIGNER",
            "rejected:INVALID_OPERATION",
        ],
    )?;

    // ---- Automerge ----
    let w = World::new(var.world(0x70617374), 4, CrdtKind::Automerge);
    let params = world_params(&w);
    f.group(
        "replay",
        "Automerge document; devices 0-2 honest, device 3 Byzantine; the observer is not a member.",
        params.clone(),
    );
    let (mut a, mut b) = (w.replica(0), w.replica(1));
    am_splice(&mut a, 0, 0, "hello");
    let (a1_id, a1) = commit(&mut a)?;
    deliver(&mut b, &[&a1])?;
    am_splice(&mut b, 5, 0, " there");
    let (_, b1) = commit(&mut b)?;
    case(
        &mut f,
        &params,
        "automerge-reordered",
        "A descendant before its predecessor, then a repeat.",
        &["DOC-6", "DOC-12"],
        &["Reordered", "Duplicate"],
        &[&b1, &a1, &b1],
        &["buffered", "applied", "duplicate"],
    )?;
    let victim = binding::automerge_actor(&w.device(0).public_bytes(), &w.doc_id);
    let own = binding::automerge_actor(&w.device(BYZ).public_bytes(), &w.doc_id);
    let (_, spoof) = seal_raw(
        &w,
        BYZ,
        1,
        None,
        vec![a1_id],
        content::AUTOMERGE_CHANGES,
        &automerge_changes_as(victim, 1, 0),
        21,
    )?;
    let (_, gap) = seal_raw(
        &w,
        BYZ,
        1,
        None,
        vec![],
        content::AUTOMERGE_CHANGES,
        &automerge_changes_as(own, 2, 1),
        22,
    )?;
    let mut compressed = automerge_changes_as(own, 1, 0);
    if let Some(t) = compressed.get_mut(8) {
        *t = 2;
    }
    let (_, comp) = seal_raw(
        &w,
        BYZ,
        1,
        None,
        vec![],
        content::AUTOMERGE_CHANGES,
        &compressed,
        23,
    )?;
    case(
        &mut f,
        &params,
        "automerge-spoof-gap-compressed",
        "A change under device 0's actor; a change with seq 2 as the first; a chunk marked compressed.",
        &["DOC-3", "DOC-4", "DOC-5"],
        &["ActorSpoofing", "ClockGap", "CompressedChunk"],
        &[&a1, &spoof, &gap, &comp],
        &[
            "applied",
            "rejected:INVALID_OPERATION",
            "rejected:INVALID_OPERATION",
            "rejected:INVALID_OPERATION",
        ],
    )?;
    let (eq1_id, eq1) = seal_raw(
        &w,
        BYZ,
        1,
        None,
        vec![],
        content::AUTOMERGE_CHANGES,
        &automerge_changes_as(own, 1, 0),
        24,
    )?;
    let (_, eq2) = seal_raw(
        &w,
        BYZ,
        1,
        None,
        vec![],
        content::AUTOMERGE_CHANGES,
        &automerge_changes_as_alt(own),
        25,
    )?;
    case(
        &mut f,
        &params,
        "automerge-equivocation",
        "Two different seq-1 envelopes of one member.",
        &["DOC-9"],
        &["Equivocation"],
        &[&eq1, &a1, &eq2],
        &["applied", "applied", "rejected:EQUIVOCATION"],
    )?;
    let (_, witness) = seal_raw(
        &w,
        2,
        1,
        None,
        vec![eq1_id],
        content::AUTOMERGE_CHANGES,
        &automerge_changes_as(
            binding::automerge_actor(&w.device(2).public_bytes(), &w.doc_id),
            1,
            0,
        ),
        27,
    )?;
    case(
        &mut f,
        &params,
        "automerge-late-equivocation-witness-last",
        "Device 2 built on the first seq-1 envelope before the second appeared; delivered last, it keeps the first (witnessed) and excludes the second.",
        &["DOC-9", "DOC-20", "DOC-7"],
        &["Equivocation", "Reordered"],
        &[&eq2, &eq1, &witness],
        &["applied", "rejected:EQUIVOCATION", "applied"],
    )?;
    Ok(f.finish())
}

/// A different single change under `actor` (for equivocation).
fn automerge_changes_as_alt(actor: [u8; 16]) -> Vec<u8> {
    let mut doc = automerge::AutoCommit::new().with_actor(automerge::ActorId::from(actor.to_vec()));
    let _ = automerge::transaction::Transactable::put(&mut doc, automerge::ROOT, "other", "value");
    doc.get_changes(&[])
        .iter()
        .flat_map(|c| c.raw_bytes().to_vec())
        .collect()
}

/// Runs one case.
pub fn run(operation: &str, params: &Value, input: &Value) -> Result<Outcome, String> {
    if operation != "replay" {
        return Err(format!("unknown operation {operation}"));
    }
    let mut r = observer(params)?;
    let steps = input
        .get("log")
        .and_then(Value::as_array)
        .ok_or("missing log")?;
    let mut out = Vec::new();
    for step in steps {
        let bytes = get_bytes_input(step, "envelope")?;
        let d = r.receive(&bytes);
        let mut s = disposition_json(&d);
        if let Some(o) = s.as_object_mut() {
            o.insert("stateDigest".into(), json!(hex(r.state_digest())));
            o.insert("historyDigest".into(), json!(hex(r.history_digest())));
        }
        out.push(s);
    }
    Ok(Outcome::Accepted(json!({
        "steps": out,
        "materialized": r.materialize().to_canonical_string(),
        "equivocators": r.equivocators().iter().map(|(a, s)| json!({"author": hex(a), "forkSeq": s})).collect::<Vec<_>>(),
    })))
}
