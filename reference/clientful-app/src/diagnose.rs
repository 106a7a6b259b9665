//! Remote diagnosis (spec §13.5, APP-13 to APP-15): a **diagnostic bundle** that
//! a user can send to support, holding digests, the DAG's shape, epochs and
//! errors but no plaintext, and the comparison of two devices' bundles that says
//! where they diverge.
//!
//! Nothing in a bundle is content: envelope ids are hashes of ciphertext, digests
//! are hashes, and the document and its authors appear only as **pseudonyms**,
//! `HashWithLabel("diag/pseudonym", doc_id || author)` truncated to 8 bytes, which
//! two devices of the same document compute alike but which do not link the same
//! device across documents.

use std::collections::{BTreeMap, BTreeSet};

use clientful_core::{envelope, labels, suite};
use clientful_doc::{CrdtKind, Replica};
use serde_json::{Value, json};

/// Version of the bundle format.
pub const BUNDLE_VERSION: u64 = 1;

fn pseudonym(doc_id: &[u8; 32], subject: &[u8]) -> String {
    let mut content = doc_id.to_vec();
    content.extend_from_slice(subject);
    suite::hash_with_label(labels::DIAG_PSEUDONYM, &content)
        .map(|h| hex::encode(h.get(..8).unwrap_or_default()))
        .unwrap_or_default()
}

/// A diagnostic bundle (APP-13): everything support needs, nothing it must not see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The document's pseudonym.
    pub document: String,
    /// This device's pseudonym.
    pub device: String,
    /// `yjs` or `automerge`.
    pub crdt: &'static str,
    /// StateDigest, hex.
    pub state_digest: String,
    /// HistoryDigest, hex.
    pub history_digest: String,
    /// Integrated envelopes.
    pub integrated: usize,
    /// DAG heads, hex ids.
    pub heads: Vec<String>,
    /// Per author pseudonym: the highest integrated seq.
    pub version_vector: BTreeMap<String, u64>,
    /// Buffered envelopes.
    pub buffered: usize,
    /// Ids the buffer waits for, hex.
    pub missing: Vec<String>,
    /// Rejected envelope ids by error class.
    pub rejected: BTreeMap<String, Vec<String>>,
    /// Equivocating author pseudonyms with the seq they forked at.
    pub equivocators: BTreeMap<String, u64>,
    /// Epoch ids of the integrated envelopes, hex.
    pub epochs: Vec<String>,
    /// CRDT apply errors counted by the replica.
    pub apply_errors: u64,
    /// Error classes the app saw recently (class names only, never messages).
    pub recent_errors: Vec<String>,
}

impl Bundle {
    /// Captures the bundle of `r`. `recent_errors` are error class names the app
    /// kept (e.g. from rejected dispositions); anything else is refused by the
    /// format.
    pub fn capture(r: &mut Replica, recent_errors: &[clientful_core::ErrorClass]) -> Bundle {
        let doc = *r.doc_id();
        let me = r.device_key();
        let state = r.state_digest();
        let dag = r.dag();
        let mut rejected: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, class) in &dag.rejected {
            rejected
                .entry(clientful_core::error::class_name(*class).to_string())
                .or_default()
                .push(hex::encode(id));
        }
        for ids in rejected.values_mut() {
            ids.sort();
        }
        let epochs: BTreeSet<String> = dag
            .nodes
            .values()
            .filter_map(|n| envelope::decode(&n.bytes).ok())
            .map(|d| hex::encode(d.header.epoch_id))
            .collect();
        Bundle {
            document: pseudonym(&doc, &[]),
            device: pseudonym(&doc, &me),
            crdt: if r.yjs().is_some() {
                "yjs"
            } else {
                "automerge"
            },
            state_digest: hex::encode(state),
            history_digest: hex::encode(r.history_digest()),
            integrated: r.dag().nodes.len(),
            heads: r.heads().iter().map(hex::encode).collect(),
            version_vector: r
                .dag()
                .version_vector()
                .iter()
                .map(|(a, s)| (pseudonym(&doc, a), *s))
                .collect(),
            buffered: r.dag().pending.len(),
            missing: r.dag().missing().iter().map(hex::encode).collect(),
            rejected,
            equivocators: r
                .equivocators()
                .iter()
                .map(|(a, s)| (pseudonym(&doc, a), *s))
                .collect(),
            epochs: epochs.into_iter().collect(),
            apply_errors: r.apply_errors(),
            recent_errors: recent_errors
                .iter()
                .map(|c| clientful_core::error::class_name(*c).to_string())
                .collect(),
        }
    }

    /// The bundle as JSON (what `clientful doctor` writes).
    pub fn to_json(&self) -> Value {
        json!({
            "bundleVersion": BUNDLE_VERSION,
            "document": self.document,
            "device": self.device,
            "crdt": self.crdt,
            "stateDigest": self.state_digest,
            "historyDigest": self.history_digest,
            "integrated": self.integrated,
            "heads": self.heads,
            "versionVector": self.version_vector,
            "buffered": self.buffered,
            "missing": self.missing,
            "rejected": self.rejected,
            "equivocators": self.equivocators,
            "epochs": self.epochs,
            "applyErrors": self.apply_errors,
            "recentErrors": self.recent_errors,
        })
    }

    /// Reads a bundle back from its JSON (bounded: at most 1 MiB of text is
    /// accepted by the caller; unknown members are ignored).
    pub fn from_json(v: &Value) -> Result<Bundle, String> {
        let s = |k: &str| -> Result<String, String> {
            v.get(k)
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or(format!("bundle needs string `{k}`"))
        };
        let n = |k: &str| -> Result<u64, String> {
            v.get(k)
                .and_then(Value::as_u64)
                .ok_or(format!("bundle needs integer `{k}`"))
        };
        let list = |k: &str| -> Vec<String> {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let map_u64 = |k: &str| -> BTreeMap<String, u64> {
            v.get(k)
                .and_then(Value::as_object)
                .map(|o| {
                    o.iter()
                        .filter_map(|(a, s)| s.as_u64().map(|s| (a.clone(), s)))
                        .collect()
                })
                .unwrap_or_default()
        };
        if n("bundleVersion")? != BUNDLE_VERSION {
            return Err("unsupported bundle version".into());
        }
        Ok(Bundle {
            document: s("document")?,
            device: s("device")?,
            crdt: match s("crdt")?.as_str() {
                "yjs" => "yjs",
                "automerge" => "automerge",
                _ => return Err("crdt must be yjs or automerge".into()),
            },
            state_digest: s("stateDigest")?,
            history_digest: s("historyDigest")?,
            integrated: n("integrated")? as usize,
            heads: list("heads"),
            version_vector: map_u64("versionVector"),
            buffered: n("buffered")? as usize,
            missing: list("missing"),
            rejected: v
                .get("rejected")
                .and_then(Value::as_object)
                .map(|o| {
                    o.iter()
                        .map(|(c, ids)| {
                            (
                                c.clone(),
                                ids.as_array()
                                    .map(|a| {
                                        a.iter()
                                            .filter_map(|x| x.as_str().map(String::from))
                                            .collect()
                                    })
                                    .unwrap_or_default(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            equivocators: map_u64("equivocators"),
            epochs: list("epochs"),
            apply_errors: n("applyErrors")?,
            recent_errors: list("recentErrors"),
        })
    }
}

/// The overall verdict of a comparison (APP-14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Same envelopes, same state.
    InSync,
    /// Different envelopes: one or both devices lack some (a delivery problem,
    /// fixed by syncing).
    Behind,
    /// Same envelopes, different state: a bug in a CRDT or an implementation.
    StateDiverged,
    /// The bundles are of different documents or formats.
    NotComparable,
}

/// Where two devices' bundles diverge (APP-14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// The verdict.
    pub verdict: Verdict,
    /// Findings, one sentence each, most important first.
    pub findings: Vec<String>,
}

/// Compares bundle `a` with bundle `b` (APP-14).
pub fn compare(a: &Bundle, b: &Bundle) -> Diagnosis {
    let mut findings = Vec::new();
    if a.document != b.document || a.crdt != b.crdt {
        return Diagnosis {
            verdict: Verdict::NotComparable,
            findings: vec!["the bundles are of different documents".into()],
        };
    }
    let (da, db) = (&a.device, &b.device);
    let verdict = if a.history_digest == b.history_digest {
        if a.state_digest == b.state_digest {
            findings.push(format!(
                "{da} and {db} hold the same {} envelopes and the same state",
                a.integrated
            ));
            Verdict::InSync
        } else {
            findings.push(format!(
                "{da} and {db} hold the same envelopes but different states: a CRDT or implementation bug; compare their apply errors ({} vs {})",
                a.apply_errors, b.apply_errors
            ));
            Verdict::StateDiverged
        }
    } else {
        let authors: BTreeSet<&String> = a
            .version_vector
            .keys()
            .chain(b.version_vector.keys())
            .collect();
        for author in authors {
            let sa = a.version_vector.get(author).copied().unwrap_or(0);
            let sb = b.version_vector.get(author).copied().unwrap_or(0);
            if sa < sb {
                findings.push(format!(
                    "{da} lacks envelopes {}..={sb} of author {author} that {db} has",
                    sa + 1
                ));
            } else if sb < sa {
                findings.push(format!(
                    "{db} lacks envelopes {}..={sa} of author {author} that {da} has",
                    sb + 1
                ));
            }
        }
        if findings.is_empty() {
            findings.push(format!(
                "{da} and {db} have the same chain lengths but different envelopes: an author equivocated or evidence is missing"
            ));
        }
        Verdict::Behind
    };
    for (x, y, dx) in [(a, b, da), (b, a, db)] {
        if !x.missing.is_empty() {
            findings.push(format!(
                "{dx} buffers {} envelopes waiting for {} predecessors it never received",
                x.buffered,
                x.missing.len()
            ));
        }
        for (class, ids) in &x.rejected {
            let theirs = y.rejected.get(class);
            let only: Vec<&String> = ids
                .iter()
                .filter(|i| theirs.is_none_or(|t| !t.contains(i)))
                .collect();
            if !only.is_empty() {
                findings.push(format!(
                    "{dx} rejected {} envelopes as {class} that the other did not",
                    only.len()
                ));
            }
        }
        for (author, seq) in &x.equivocators {
            if !y.equivocators.contains_key(author) {
                findings.push(format!(
                    "{dx} excludes author {author} for equivocating at seq {seq}; the other has not seen the fork"
                ));
            }
        }
        let missing_epochs: Vec<&String> =
            x.epochs.iter().filter(|e| !y.epochs.contains(e)).collect();
        if !missing_epochs.is_empty() && verdict != Verdict::InSync {
            findings.push(format!(
                "{dx} has envelopes of {} epochs the other has none of",
                missing_epochs.len()
            ));
        }
    }
    Diagnosis { verdict, findings }
}

/// The CRDT name of a kind (for bundles built by hand).
pub fn crdt_name(kind: CrdtKind) -> &'static str {
    match kind {
        CrdtKind::Yjs => "yjs",
        CrdtKind::Automerge => "automerge",
    }
}
