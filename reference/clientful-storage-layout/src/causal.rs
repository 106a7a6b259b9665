//! Causal ordering of a set of envelopes, pure (spec §9.7, STO-12): the order in which a
//! snapshot lists its envelopes (every envelope after the envelopes it names in
//! `prev` and `preds`, ties broken by id) and the DAG heads it covers.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use clientful_core::envelope::{self, EnvelopeId};

/// A DAG head: `(doc_id, envelope id)`.
pub type Head = ([u8; 32], EnvelopeId);

type NodeInfo = ([u8; 32], Vec<EnvelopeId>, Vec<u8>);

/// Envelopes in causal order, plus the heads `(doc_id, id)` ascending. Bytes that
/// do not decode are dropped; envelopes whose predecessors are absent come last.
pub fn order(envelopes: Vec<Vec<u8>>) -> (Vec<Vec<u8>>, Vec<Head>) {
    let mut nodes: BTreeMap<EnvelopeId, NodeInfo> = BTreeMap::new();
    for bytes in envelopes {
        if let Ok(d) = envelope::decode(&bytes) {
            let mut deps = d.header.preds.clone();
            deps.extend(d.header.prev);
            nodes.entry(d.id).or_insert((d.header.doc_id, deps, bytes));
        }
    }
    let mut waiting: HashMap<EnvelopeId, usize> = HashMap::new();
    let mut children: HashMap<EnvelopeId, Vec<EnvelopeId>> = HashMap::new();
    let mut referenced: BTreeSet<EnvelopeId> = BTreeSet::new();
    let mut ready: BTreeSet<EnvelopeId> = BTreeSet::new();
    for (id, (_, deps, _)) in &nodes {
        let mut n = 0;
        let mut uniq: BTreeSet<&EnvelopeId> = BTreeSet::new();
        for d in deps {
            referenced.insert(*d);
            if nodes.contains_key(d) && uniq.insert(d) {
                n += 1;
                children.entry(*d).or_default().push(*id);
            }
        }
        if n == 0 {
            ready.insert(*id);
        } else {
            waiting.insert(*id, n);
        }
    }
    let mut out_ids = Vec::with_capacity(nodes.len());
    while let Some(id) = ready.pop_first() {
        out_ids.push(id);
        for c in children.get(&id).into_iter().flatten() {
            if let Some(n) = waiting.get_mut(c) {
                *n -= 1;
                if *n == 0 {
                    waiting.remove(c);
                    ready.insert(*c);
                }
            }
        }
    }
    // A cycle cannot occur among valid envelopes (ids are hashes); keep any rest.
    let mut rest: Vec<EnvelopeId> = waiting.into_keys().collect();
    rest.sort_unstable();
    out_ids.extend(rest);
    let mut heads: Vec<Head> = nodes
        .iter()
        .filter(|(id, _)| !referenced.contains(*id))
        .map(|(id, (doc, _, _))| (*doc, *id))
        .collect();
    heads.sort_unstable();
    let ordered = out_ids
        .into_iter()
        .filter_map(|id| nodes.remove(&id).map(|(_, _, b)| b))
        .collect();
    (ordered, heads)
}
