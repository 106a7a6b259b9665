//! `crdt-merge`: a set of envelopes delivered in any order (and each twice) gives
//! the same `StateDigest`, `HistoryDigest` and canonical JSON (spec §8.5, §8.6).

use clientful_doc::CrdtKind;
use clientful_doc::testkit::World;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::docworld::{
    am_put, am_splice, commit, deliver, observer, world_params, yjs_delete, yjs_insert, yjs_set,
};
use crate::generate::{FileBuilder, Variation};
use crate::hexutil::{get_hex_list, hex};
use crate::schema::VectorFile;
use crate::verify::Outcome;

const SEED: &str = "clientful/v1/vectors/crdt-merge";

/// Orders checked: every permutation up to this many envelopes, else samples.
const ALL_PERMUTATIONS_UP_TO: usize = 5;
/// Sampled orders (besides identity and reverse) above that.
const SAMPLED_ORDERS: usize = 12;

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

/// The delivery orders the generator lists for a case (deterministic from
/// `order_seed`).
pub fn orders(n: usize, order_seed: u64) -> Vec<Vec<usize>> {
    if n <= ALL_PERMUTATIONS_UP_TO {
        return permutations(n);
    }
    let mut rng = ChaCha20Rng::seed_from_u64(order_seed);
    let mut out = vec![(0..n).collect::<Vec<_>>(), (0..n).rev().collect()];
    for _ in 0..SAMPLED_ORDERS {
        let mut o: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            o.swap(i, j);
        }
        out.push(o);
    }
    out
}

/// The case input: the envelopes and the delivery orders, as `"all-permutations"`
/// or an explicit list of index arrays (language-neutral: no RNG to reproduce).
fn case_input(envs: &[&Vec<u8>], order_seed: u64) -> Value {
    let orders_json = if envs.len() <= ALL_PERMUTATIONS_UP_TO {
        json!("all-permutations")
    } else {
        json!(orders(envs.len(), order_seed))
    };
    json!({"envelopes": envs.iter().map(hex).collect::<Vec<_>>(), "orders": orders_json})
}

/// Builds the file from the family's fixed seed.
pub fn generate() -> Result<VectorFile, String> {
    generate_seeded(SEED)
}

/// Builds the file from `seed`: the fixed seed gives the committed file, any
/// other seed fresh cases of the same shape (CONF-53).
// The generator indexes values it built itself; it reads no outside input.
#[allow(clippy::indexing_slicing, clippy::too_many_lines)]
pub fn generate_seeded(seed: &str) -> Result<VectorFile, String> {
    let var = Variation::new(seed, SEED);
    let mut f = FileBuilder::new(
        "crdt-merge",
        seed,
        "Sets of document envelopes that must give the same StateDigest, HistoryDigest and \
         canonical JSON whatever order they are delivered in (every permutation up to 5 \
         envelopes, sampled orders above), each also delivered twice.",
    );
    f.note(
        "Ktv",
        "BASIC",
        "Expected digests and canonical JSON computed by the reference.",
    );
    f.note(
        "ConcurrentInsert",
        "DEFINED",
        "Concurrent insertions at the same position.",
    );
    f.note(
        "ConcurrentDelete",
        "DEFINED",
        "A deletion concurrent with insertions around it.",
    );
    f.note(
        "ConflictingWrites",
        "DEFINED",
        "Concurrent writes of one map key: the CRDT's rule picks one.",
    );
    f.note(
        "Utf16",
        "EDGE_CASE",
        "Non-ASCII text and emoji: positions are UTF-16 code units.",
    );
    f.note(
        "LongChain",
        "BASIC",
        "More envelopes than all permutations allow: sampled orders.",
    );

    // ---- Yjs ----
    let w = World::new(var.world(0x6d65726765), 3, CrdtKind::Yjs);
    f.group(
        "merge",
        "Yjs document; three member devices; orders from orderSeed.",
        world_params(&w),
    );
    let refs = &["DOC-6", "DOC-11", "DOC-12", "DOC-13"];
    {
        let (mut a, mut b, mut c) = (w.replica(0), w.replica(1), w.replica(2));
        yjs_insert(&mut a, 0, "abc");
        yjs_insert(&mut b, 0, "xyz");
        yjs_insert(&mut c, 0, "123");
        let (ea, eb, ec) = (commit(&mut a)?.1, commit(&mut b)?.1, commit(&mut c)?.1);
        let envs = [&ea, &eb, &ec];
        f.valid(
            "yjs-concurrent-inserts-same-position",
            "Three devices insert at position 0 concurrently.",
            refs,
            &["ConcurrentInsert"],
            case_input(&envs, 1),
            expected(&w, &envs, 1)?,
        );
    }
    {
        let (mut a, mut b, mut c) = (w.replica(0), w.replica(1), w.replica(2));
        yjs_insert(&mut a, 0, "hello world");
        let a1 = commit(&mut a)?.1;
        deliver(&mut b, &[&a1])?;
        deliver(&mut c, &[&a1])?;
        yjs_delete(&mut b, 6, 5);
        let b1 = commit(&mut b)?.1;
        yjs_insert(&mut a, 11, "!");
        let a2 = commit(&mut a)?.1;
        yjs_insert(&mut c, 6, "big ");
        let c1 = commit(&mut c)?.1;
        let envs = [&a1, &a2, &b1, &c1];
        f.valid(
            "yjs-delete-concurrent-with-inserts",
            "A deletion of \"world\" concurrent with an insertion inside and after it.",
            refs,
            &["ConcurrentDelete", "ConcurrentInsert"],
            case_input(&envs, 2),
            expected(&w, &envs, 2)?,
        );
    }
    {
        let (mut a, mut b, mut c) = (w.replica(0), w.replica(1), w.replica(2));
        yjs_set(&mut a, "title", "from A");
        yjs_set(&mut b, "title", "from B");
        yjs_set(&mut c, "other", "from C");
        let (ea, eb, ec) = (commit(&mut a)?.1, commit(&mut b)?.1, commit(&mut c)?.1);
        let envs = [&ea, &eb, &ec];
        f.valid(
            "yjs-map-conflicting-writes",
            "Two devices set data.title concurrently; a third sets another key.",
            refs,
            &["ConflictingWrites"],
            case_input(&envs, 3),
            expected(&w, &envs, 3)?,
        );
    }
    {
        let (mut a, mut b) = (w.replica(0), w.replica(1));
        yjs_insert(&mut a, 0, "🌍é");
        let a1 = commit(&mut a)?.1;
        deliver(&mut b, &[&a1])?;
        yjs_insert(&mut b, 2, "x"); // after the emoji (2 UTF-16 units)
        let b1 = commit(&mut b)?.1;
        yjs_insert(&mut a, 3, "→"); // after é
        let a2 = commit(&mut a)?.1;
        let envs = [&a1, &b1, &a2];
        f.valid(
            "yjs-utf16-positions",
            "Insertions between an emoji (two UTF-16 units) and an accented letter.",
            &["DOC-6", "DOC-11", "DOC-12"],
            &["Utf16"],
            case_input(&envs, 4),
            expected(&w, &envs, 4)?,
        );
    }
    {
        let mut rs = [w.replica(0), w.replica(1), w.replica(2)];
        let mut all = Vec::new();
        for round in 0..3u32 {
            let mut fresh = Vec::new();
            for (i, r) in rs.iter_mut().enumerate() {
                yjs_insert(r, 0, &format!("{round}{i} "));
                fresh.push(commit(r)?.1);
            }
            for r in rs.iter_mut() {
                for e in &fresh {
                    let _ = r.receive(e);
                }
            }
            all.extend(fresh);
        }
        let envs: Vec<&Vec<u8>> = all.iter().collect();
        f.valid(
            "yjs-three-rounds",
            "Nine envelopes: three rounds of concurrent edits, each round merged.",
            refs,
            &["LongChain", "ConcurrentInsert"],
            case_input(&envs, 5),
            expected(&w, &envs, 5)?,
        );
    }

    // ---- Automerge ----
    let w = World::new(var.world(0x6d65726766), 3, CrdtKind::Automerge);
    f.group(
        "merge",
        "Automerge document; three member devices; orders from orderSeed.",
        world_params(&w),
    );
    {
        let (mut a, mut b, mut c) = (w.replica(0), w.replica(1), w.replica(2));
        am_splice(&mut a, 0, 0, "hello");
        let a1 = commit(&mut a)?.1;
        deliver(&mut b, &[&a1])?;
        deliver(&mut c, &[&a1])?;
        am_splice(&mut b, 5, 0, " from B");
        let b1 = commit(&mut b)?.1;
        am_splice(&mut c, 0, 0, "C says ");
        let c1 = commit(&mut c)?.1;
        am_put(&mut a, "title", "A");
        let a2 = commit(&mut a)?.1;
        am_put(&mut b, "title", "B");
        let b2 = commit(&mut b)?.1;
        let envs = [&a1, &b1, &c1, &a2, &b2];
        f.valid(
            "automerge-text-and-conflicting-title",
            "Concurrent text splices and a conflicting root key.",
            refs,
            &["ConcurrentInsert", "ConflictingWrites"],
            case_input(&envs, 6),
            expected(&w, &envs, 6)?,
        );
    }
    {
        let (mut a, mut b) = (w.replica(0), w.replica(1));
        am_splice(&mut a, 0, 0, "naïve 🌍 text");
        let a1 = commit(&mut a)?.1;
        deliver(&mut b, &[&a1])?;
        am_splice(&mut b, 8, 0, "!"); // after the emoji: n a ï v e ' ' 🌍(2) = 8 units
        let b1 = commit(&mut b)?.1;
        am_splice(&mut a, 6, 3, "");
        let a2 = commit(&mut a)?.1;
        let envs = [&a1, &b1, &a2];
        f.valid(
            "automerge-utf16-positions",
            "A splice after an emoji concurrent with deleting the emoji.",
            &["DOC-6", "DOC-11", "DOC-12"],
            &["Utf16", "ConcurrentDelete"],
            case_input(&envs, 7),
            expected(&w, &envs, 7)?,
        );
    }
    Ok(f.finish())
}

fn expected(w: &World, envs: &[&Vec<u8>], order_seed: u64) -> Result<Value, String> {
    let params = world_params(w);
    match run("merge", &params, &case_input(envs, order_seed))? {
        Outcome::Accepted(v) => Ok(v),
        Outcome::Rejected(c) => Err(format!("merge rejected: {c:?}")),
    }
}

/// Runs one case: every order must give the same result.
pub fn run(operation: &str, params: &Value, input: &Value) -> Result<Outcome, String> {
    if operation != "merge" {
        return Err(format!("unknown operation {operation}"));
    }
    let envs = get_hex_list(input, "envelopes")?;
    let all_orders: Vec<Vec<usize>> = match input.get("orders") {
        Some(Value::String(s)) if s == "all-permutations" => {
            if envs.len() > 8 {
                return Err("all-permutations is for at most 8 envelopes".into());
            }
            permutations(envs.len())
        }
        Some(Value::Array(list)) => list
            .iter()
            .map(|o| {
                let order: Vec<usize> = o
                    .as_array()
                    .ok_or("an order is not an array")?
                    .iter()
                    .map(|i| i.as_u64().map(|i| i as usize).ok_or("bad index"))
                    .collect::<Result<_, _>>()?;
                let mut sorted = order.clone();
                sorted.sort_unstable();
                if sorted != (0..envs.len()).collect::<Vec<_>>() {
                    return Err("an order is not a permutation of the envelopes");
                }
                Ok(order)
            })
            .collect::<Result<_, &str>>()?,
        _ => return Err("missing orders".into()),
    };
    let mut first: Option<Value> = None;
    for order in &all_orders {
        let mut r = observer(params)?;
        for &i in order.iter().chain(order.iter()) {
            let _ = r.receive(envs.get(i).ok_or("order index out of range")?);
        }
        let result = json!({
            "stateDigest": hex(r.state_digest()),
            "historyDigest": hex(r.history_digest()),
            "materialized": r.materialize().to_canonical_string(),
        });
        match &first {
            None => first = Some(result),
            Some(f) if *f != result => {
                return Ok(Outcome::Accepted(json!({
                    "divergentOrder": order,
                    "got": result,
                    "first": f,
                })));
            }
            Some(_) => {}
        }
    }
    let mut out = first.unwrap_or(Value::Null);
    if let Some(o) = out.as_object_mut() {
        o.insert("orders".into(), json!(all_orders.len()));
    }
    Ok(Outcome::Accepted(out))
}
