//! `inspect`, `export` and `doctor report`: what a device's store holds,
//! decoded and checked again, printed without secrets.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use clientful::space::SpaceSession;
use clientful_core::envelope::{self, StaticContext};
use clientful_core::membership::Verdict;
use clientful_core::membership::epoch::authenticator_display;
use clientful_storage::BlobStore;
use clientful_storage::layout::EpochStorage;

/// Per document: envelopes that open and verify, that fail, that are sealed
/// under epochs this device does not hold; distinct authors.
#[derive(Default)]
struct Tally {
    verified: usize,
    failed: usize,
    sealed: usize,
    authors: BTreeSet<[u8; 32]>,
}

fn short(b: &[u8]) -> String {
    hex::encode(b.get(..6).unwrap_or(b))
}

/// Writes every readable document as plain JSON, one file per document, plus
/// `members.json`. Returns the number of documents written.
pub fn export(sp: &mut SpaceSession, out: &Path) -> Result<usize> {
    std::fs::create_dir_all(out).with_context(|| format!("{}", out.display()))?;
    let mut n = 0;
    let mut index = Vec::new();
    for d in sp.documents()? {
        let Ok(doc) = sp.document(&d.id) else {
            continue;
        };
        let json = doc.json();
        let title = doc.title();
        let name = format!("{}.json", hex::encode(d.id));
        let tmp = out.join(format!("{name}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("{}", tmp.display()))?;
        std::fs::rename(&tmp, out.join(&name))?;
        index.push(serde_json::json!({"id": hex::encode(d.id), "title": title, "file": name}));
        n += 1;
    }
    let members: Vec<_> = sp
        .members()
        .into_iter()
        .map(|m| {
            serde_json::json!({
                "user": hex::encode(m.user),
                "role": format!("{:?}", m.role),
                "devices": m.devices.iter().map(hex::encode).collect::<Vec<_>>(),
            })
        })
        .collect();
    std::fs::write(
        out.join("index.json"),
        serde_json::to_vec_pretty(&serde_json::json!({
            "space": hex::encode(sp.space_id()),
            "documents": index,
            "members": members,
        }))?,
    )?;
    Ok(n)
}

/// Prints the store: membership, epochs, documents (each envelope opened and
/// its signature checked again), and the storage listing by epoch directory.
pub async fn inspect(sp: &mut SpaceSession) -> Result<()> {
    println!("space {}  \"{}\"", hex::encode(sp.space_id()), sp.name());
    println!("storage {}", sp.storage_url());
    println!(
        "this device {}  access: {}",
        short(&sp.device_key()),
        if sp.has_access() { "yes" } else { "no" }
    );

    let m = sp.membership();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, v) in m.decided() {
        *counts
            .entry(match v {
                Verdict::Accepted => "accepted",
                Verdict::Void(_) => "void",
                Verdict::Rejected(_) => "rejected",
                Verdict::Unknown => "unknown",
                _ => "other",
            })
            .or_default() += 1;
    }
    println!(
        "\nmembership log: {counts:?}, {} held for keys not yet known",
        m.held_count()
    );
    for (user, mem) in &m.state().members {
        println!(
            "  member {}  {:?}{}",
            short(user),
            mem.role,
            if mem.settled { "" } else { " (not settled)" }
        );
    }
    for user in m.state().removed.keys() {
        println!("  removed {}", short(user));
    }
    let held: BTreeSet<[u8; 32]> = m.keys().all().iter().map(|k| *k.id()).collect();
    println!(
        "\nepochs: {} known, {} held",
        m.state().epochs.len().max(held.len()),
        held.len()
    );
    for (id, e) in &m.state().epochs {
        println!(
            "  epoch {}  {}  recipients {}{}",
            short(id),
            if held.contains(id) {
                "held"
            } else {
                "NOT held"
            },
            e.recipients.len(),
            if m.state().current_epoch() == Some(*id) {
                "  (current)"
            } else {
                ""
            }
        );
    }
    for id in m.locked_out_epochs() {
        println!(
            "  epoch {}  announced, not shared with this device (removed or revoked)",
            short(&id)
        );
    }

    let ctx = StaticContext {
        space_id: *sp.space_id(),
        doc_id: None,
        signers: m.write_view().signers(),
        epochs: m.epoch_chain(),
        accepted: Vec::new(),
    };
    println!("\ndocuments:");
    let all = sp.local_store()?.all_envelopes()?;
    let mut per_doc: BTreeMap<[u8; 32], Tally> = BTreeMap::new();
    for e in &all {
        let Ok(d) = envelope::decode(e) else { continue };
        let entry = per_doc.entry(d.header.doc_id).or_default();
        entry.authors.insert(d.header.author);
        match envelope::open(e, &ctx) {
            Ok(_) => entry.verified += 1,
            Err(clientful_core::Error::UnknownEpoch) => entry.sealed += 1,
            Err(_) => entry.failed += 1,
        }
    }
    let docs: BTreeSet<[u8; 32]> = sp.documents()?.iter().map(|d| d.id).collect();
    for (id, t) in &per_doc {
        let what = if docs.contains(id) {
            "document"
        } else {
            "membership/keys"
        };
        println!(
            "  {} {what:<15} {} verified, {} failed, {} under epochs not held; {} authors",
            short(id),
            t.verified,
            t.failed,
            t.sealed,
            t.authors.len()
        );
    }

    println!("\nstorage objects by directory:");
    let mut dirs: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for p in sp.store().list("").await? {
        let (dir, rest) = p.split_once('/').unwrap_or((p.as_str(), ""));
        let e = dirs.entry(dir.to_owned()).or_default();
        if rest.starts_with("h/") {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    let mut mine = BTreeMap::new();
    for k in m.epoch_chain() {
        if let Ok(es) = EpochStorage::derive(sp.space_id(), &k) {
            mine.insert(es.dir().to_owned(), *k.id());
        }
    }
    for (dir, (heads, objects)) in &dirs {
        let note = match mine.get(dir) {
            Some(id) => format!("epoch {} (readable here)", short(id)),
            None if dir == "clientful-format" => "format file".into(),
            None => "no key here: opaque".into(),
        };
        println!("  {dir:<34} {heads:>3} heads {objects:>5} objects  {note}");
    }
    Ok(())
}

/// Prints the digests two devices compare (nothing secret, no content).
pub fn doctor_report(sp: &mut SpaceSession) -> Result<()> {
    let m = sp.membership();
    println!("space {}", hex::encode(sp.space_id()));
    match m.state().digest() {
        Ok(d) => println!("membership digest {}", hex::encode(d)),
        Err(e) => println!("membership digest: unavailable ({e})"),
    }
    match m.authenticator() {
        Some(a) => {
            println!("key-epoch authenticator {}", authenticator_display(&a));
            println!("key-epoch authenticator (whole) {}", hex::encode(a));
        }
        None => println!("key-epoch authenticator: no current key on this device"),
    }
    let evidence = crate::app::evidence_lines(sp.membership_alarms());
    if evidence.is_empty() {
        println!("membership evidence: none");
    }
    for line in evidence {
        println!("{line}");
    }
    for d in sp.documents()? {
        match sp.document(&d.id) {
            Ok(doc) => println!(
                "document {}  state {}  history {}",
                short(&d.id),
                doc.state_digest(),
                doc.history_digest()
            ),
            Err(e) => println!("document {}  unreadable here: {e}", short(&d.id)),
        }
    }
    Ok(())
}
