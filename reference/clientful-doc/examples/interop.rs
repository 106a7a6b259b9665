//! Interop with the JavaScript Yjs and Automerge libraries (driven by
//! `interop/js/interop.test.mjs`, see `interop/js/README.md`).
//!
//! ```text
//! cargo run -q -p clientful-doc --example interop -- export <dir>
//! cargo run -q -p clientful-doc --example interop -- import <dir>
//! ```
//!
//! `export` edits one Yjs and one Automerge document on two devices with the reference
//! (non-ASCII text and emoji, so UTF-16 offsets matter, and concurrent edits), and writes
//! into `<dir>` every envelope (`*.env`), its CRDT payload (`*.bin`: a Yjs update v1 or
//! concatenated uncompressed Automerge change chunks) and `manifest.json`: the payload
//! files in a causal order, the expected text, the bound Yjs client id / Automerge actor
//! of every device, and the device the JavaScript side writes as.
//!
//! `import` reads `js-manifest.json` written by the JavaScript side: payloads made by a
//! JS Yjs doc whose `clientID` is the JS device's bound client id and a JS Automerge doc
//! whose actor is its bound actor. It seals each payload into an envelope authored by
//! that device (next `seq`, `prev`, the replica's heads as `preds`), delivers it to a
//! fresh replica that first received the exported envelopes, and requires `Applied`;
//! `forged` payloads (written under another device's actor) must be rejected as
//! `INVALID_OPERATION`. It writes `import-result.json` and prints the resulting texts.
//!
//! Devices of the shared [`World`]: 0 and 1 edit in Rust, 2 is the JavaScript device,
//! 3 is the importing replica.

use std::error::Error;
use std::path::{Path, PathBuf};

use automerge::transaction::Transactable;
use automerge::{ObjType, ReadDoc};
use clientful_core::ErrorClass;
use clientful_core::envelope::{self, EnvelopeId, SealRequest};
use clientful_doc::testkit::World;
use clientful_doc::{CrdtKind, Disposition, Replica, binding, content};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{Value, json};
use yrs::{GetString, Text, Transact};

type Res<T> = Result<T, Box<dyn Error>>;

/// Seed of the shared world (export and import must agree).
const SEED: u64 = 0x1a7e_0f05;
/// Devices that edit in Rust.
const RUST_DEVICES: [usize; 2] = [0, 1];
/// The device the JavaScript side writes as.
const JS_DEVICE: usize = 2;
/// The device whose fresh replica imports everything.
const IMPORTER: usize = 3;
const DEVICES: usize = 4;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [cmd, dir] if cmd == "export" => export(Path::new(dir)),
        [cmd, dir] if cmd == "import" => import(Path::new(dir)),
        _ => Err("usage: interop export <dir> | interop import <dir>".into()),
    }
}

fn crdt_name(crdt: CrdtKind) -> &'static str {
    match crdt {
        CrdtKind::Yjs => "yjs",
        CrdtKind::Automerge => "automerge",
    }
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// The UTF-16 offset of `needle` in `text`.
fn utf16_find(text: &str, needle: &str) -> Res<usize> {
    let byte = text
        .find(needle)
        .ok_or_else(|| format!("{needle:?} not in {text:?}"))?;
    Ok(utf16_len(text.get(..byte).unwrap_or_default()))
}

/// Replaces `del` UTF-16 units at UTF-16 offset `pos` with `ins`, with the CRDT's API.
fn splice(r: &mut Replica, pos: usize, del: usize, ins: &str) -> Res<()> {
    if let Some(y) = r.yjs() {
        let t = y.text("text");
        let mut txn = y.doc().transact_mut();
        let p = u32::try_from(pos)?;
        if del > 0 {
            t.remove_range(&mut txn, p, u32::try_from(del)?);
        }
        if !ins.is_empty() {
            t.insert(&mut txn, p, ins);
        }
        return Ok(());
    }
    let doc = r
        .automerge_mut()
        .ok_or("neither Yjs nor Automerge")?
        .doc_mut();
    let id = match doc.get(automerge::ROOT, "text")? {
        Some((_, id)) => id,
        None => doc.put_object(automerge::ROOT, "text", ObjType::Text)?,
    };
    doc.splice_text(&id, pos, isize::try_from(del)?, ins)?;
    Ok(())
}

fn text(r: &mut Replica) -> Res<String> {
    if let Some(y) = r.yjs() {
        return Ok(y.text("text").get_string(&y.doc().transact()));
    }
    let doc = r
        .automerge_mut()
        .ok_or("neither Yjs nor Automerge")?
        .doc_mut();
    Ok(match doc.get(automerge::ROOT, "text")? {
        Some((_, id)) => doc.text(&id)?,
        None => String::new(),
    })
}

/// Commits and returns the one sealed envelope.
fn commit(r: &mut Replica) -> Res<Vec<u8>> {
    r.commit()?.ok_or("nothing to commit")?;
    let out = r.drain_outbox();
    match <[_; 1]>::try_from(out) {
        Ok([(_, bytes)]) => Ok(bytes),
        Err(_) => Err("expected exactly one envelope".into()),
    }
}

fn deliver(to: &mut Replica, envelope: &[u8]) -> Res<EnvelopeId> {
    match to.receive(envelope) {
        Disposition::Applied { id, .. } => Ok(id),
        other => Err(format!("not applied: {other:?}").into()),
    }
}

fn hex_id(id: &EnvelopeId) -> String {
    hex::encode(id)
}

// ------------------------------------------------------------------ export

fn export(dir: &Path) -> Res<()> {
    std::fs::create_dir_all(dir)?;
    let mut manifest = serde_json::Map::new();
    manifest.insert("version".into(), json!(1));
    for crdt in [CrdtKind::Yjs, CrdtKind::Automerge] {
        manifest.insert(crdt_name(crdt).into(), export_doc(dir, crdt)?);
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&Value::Object(manifest))?,
    )?;
    println!("exported to {}", dir.display());
    Ok(())
}

fn devices_json(world: &World) -> Value {
    let devices: Vec<Value> = (0..DEVICES)
        .map(|i| {
            let key = world.device(i).public_bytes();
            json!({
                "device": i,
                "public_key": hex::encode(key),
                "yjs_client_id": world.yjs_client_id(i, 0),
                "automerge_actor": hex::encode(binding::automerge_actor(&key, &world.doc_id)),
            })
        })
        .collect();
    Value::Array(devices)
}

fn export_doc(dir: &Path, crdt: CrdtKind) -> Res<Value> {
    let world = World::new(SEED, DEVICES, crdt);
    let [d0, d1] = RUST_DEVICES;
    let mut a = world.replica(d0);
    let mut b = world.replica(d1);

    // 1. Device 0 writes; device 1 receives.
    let greeting = "Hello, wörld! 👋🏽";
    splice(&mut a, 0, 0, greeting)?;
    let e1 = commit(&mut a)?;
    deliver(&mut b, &e1)?;

    // 2. Concurrent edits on both devices.
    splice(&mut a, utf16_len(greeting), 0, " 🌍 naïve café")?;
    let e2 = commit(&mut a)?;
    let current = text(&mut b)?;
    splice(
        &mut b,
        utf16_find(&current, "wörld")?,
        utf16_len("wörld"),
        "Welt",
    )?;
    splice(&mut b, 0, 0, "¡")?;
    let e3 = commit(&mut b)?;
    deliver(&mut b, &e2)?;
    deliver(&mut a, &e3)?;

    // 3. Device 0 replaces the emoji with skin tone (two surrogate pairs).
    let current = text(&mut a)?;
    splice(
        &mut a,
        utf16_find(&current, "👋🏽")?,
        utf16_len("👋🏽"),
        "🤝 漢字 𝄞",
    )?;
    let e4 = commit(&mut a)?;
    deliver(&mut b, &e4)?;

    let expected = text(&mut a)?;
    if text(&mut b)? != expected || a.state_digest() != b.state_digest() {
        return Err("the two reference replicas did not converge".into());
    }

    // Every envelope in a causal order (device 0's integration order), with its payload.
    let name = crdt_name(crdt);
    let mut payloads = Vec::new();
    for (k, id) in a.dag().order.iter().enumerate() {
        let node = a.dag().nodes.get(id).ok_or("order names an unknown id")?;
        let stem = format!("{name}-{:02}", k + 1);
        std::fs::write(dir.join(format!("{stem}.bin")), &node.body)?;
        std::fs::write(dir.join(format!("{stem}.env")), &node.bytes)?;
        let author = (0..DEVICES)
            .find(|i| world.device(*i).public_bytes() == node.author)
            .ok_or("unknown author")?;
        payloads.push(json!({
            "payload": format!("{stem}.bin"),
            "envelope": format!("{stem}.env"),
            "id": hex_id(id),
            "author": author,
            "seq": node.seq,
            "content_type": node.content_type,
        }));
    }
    let js_key = world.device(JS_DEVICE).public_bytes();
    Ok(json!({
        "crdt": name,
        "text_root": "text",
        "payloads": payloads,
        "text": expected,
        "state_digest": hex::encode(a.state_digest()),
        "devices": devices_json(&world),
        "js_device": JS_DEVICE,
        "js_yjs_client_id": world.yjs_client_id(JS_DEVICE, 0),
        "js_automerge_actor": hex::encode(binding::automerge_actor(&js_key, &world.doc_id)),
    }))
}

// ------------------------------------------------------------------ import

fn read_json(path: &Path) -> Res<Value> {
    let s = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_str(&s)?)
}

fn files(v: &Value, key: &str) -> Res<Vec<String>> {
    let list = v
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("missing list {key:?}"))?;
    list.iter()
        .map(|x| {
            x.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("{key:?}: not a file name").into())
        })
        .collect()
}

fn safe_join(dir: &Path, file: &str) -> Res<PathBuf> {
    if file.contains('/') || file.contains('\\') || file.starts_with('.') {
        return Err(format!("bad file name {file:?}").into());
    }
    Ok(dir.join(file))
}

fn import(dir: &Path) -> Res<()> {
    let manifest = read_json(&dir.join("manifest.json"))?;
    let js = read_json(&dir.join("js-manifest.json"))?;
    let mut result = serde_json::Map::new();
    for crdt in [CrdtKind::Yjs, CrdtKind::Automerge] {
        let name = crdt_name(crdt);
        let exported = manifest.get(name).ok_or("manifest lacks a document")?;
        let from_js = js.get(name).ok_or("js-manifest lacks a document")?;
        let r = import_doc(dir, crdt, exported, from_js)?;
        println!(
            "{name}: imported, text {}",
            serde_json::to_string(r.get("text").unwrap_or(&Value::Null))?
        );
        result.insert(name.into(), r);
    }
    std::fs::write(
        dir.join("import-result.json"),
        serde_json::to_string_pretty(&Value::Object(result))?,
    )?;
    Ok(())
}

fn import_doc(dir: &Path, crdt: CrdtKind, exported: &Value, from_js: &Value) -> Res<Value> {
    let world = World::new(SEED, DEVICES, crdt);
    let mut r = world.replica(IMPORTER);
    // The reference's own envelopes first.
    let entries = exported
        .get("payloads")
        .and_then(Value::as_array)
        .ok_or("manifest lacks payloads")?;
    for e in entries {
        let file = e
            .get("envelope")
            .and_then(Value::as_str)
            .ok_or("no envelope")?;
        deliver(&mut r, &std::fs::read(safe_join(dir, file)?)?)?;
    }

    // Then the JavaScript payloads, sealed as the JS device.
    let content_type = match crdt {
        CrdtKind::Yjs => content::YJS_UPDATE_V1,
        CrdtKind::Automerge => content::AUTOMERGE_CHANGES,
    };
    let author = world.device(JS_DEVICE);
    let epoch = world.epoch_key();
    let mut rng = ChaCha20Rng::from_seed([0x4a; 32]);
    let mut seq = 0u64;
    let mut prev: Option<EnvelopeId> = None;
    let mut seal = |r: &mut Replica, body: &[u8], seq: u64, prev: Option<EnvelopeId>| {
        let req = SealRequest {
            space_id: world.space_id,
            doc_id: world.doc_id,
            seq,
            prev,
            preds: r.heads(),
            content_type,
            body,
        };
        envelope::seal(&author, &epoch, &req, &mut rng)
    };
    let mut applied = Vec::new();
    for file in files(from_js, "payloads")? {
        let body = std::fs::read(safe_join(dir, &file)?)?;
        seq += 1;
        let sealed = seal(&mut r, &body, seq, prev)?;
        let id = deliver(&mut r, &sealed.bytes).map_err(|e| format!("{file}: {e}"))?;
        prev = Some(id);
        applied.push(hex_id(&id));
    }
    let text_now = text(&mut r)?;
    let digest = r.state_digest();

    // Forged payloads (another device's actor) must be rejected; each is tried on
    // its own as the next envelope of the JS device's chain.
    let mut rejected = Vec::new();
    for file in files(from_js, "forged")? {
        let body = std::fs::read(safe_join(dir, &file)?)?;
        let sealed = seal(&mut r, &body, seq + 1, prev)?;
        match r.receive(&sealed.bytes) {
            Disposition::Rejected {
                class: ErrorClass::InvalidOperation,
                reason,
                ..
            } => rejected.push(json!({ "file": file, "reason": reason })),
            other => return Err(format!("{file}: forged payload not rejected: {other:?}").into()),
        }
    }
    if text(&mut r)? != text_now {
        return Err("a rejected payload changed the document".into());
    }
    if r.apply_errors() != 0 {
        return Err(format!("{} CRDT apply errors", r.apply_errors()).into());
    }
    Ok(json!({
        "text": text_now,
        "state_digest": hex::encode(digest),
        "applied": applied,
        "rejected": rejected,
    }))
}
