//! Storage scenarios (spec §12.12, CONF-57..CONF-68): the runner is the dumb
//! storage and the adversary. From a world generated afresh from the run's seed
//! it has the reference write stores (two writers, a compaction, a member's
//! forged snapshot, a removed member's checkpoint, another epoch), damages them
//! as storage or an insider can (rollback, fork, withholding, substitution,
//! listing lies, forged coverage, re-encryption under a new epoch, truncation,
//! oversized objects), asks the implementation to load each state, and compares
//! its answer with the reference's answer to the same request. What the
//! implementation writes is loaded by the reference (cross-load). Expectations
//! never come from `test-vectors/`.

use std::collections::{BTreeMap, BTreeSet};

use clientful_core::keys::{EpochKey, SigningKey};
use clientful_core::{ErrorClass, envelope, limits, suite, wire};
use clientful_doc::CrdtKind;
use clientful_doc::testkit::{World, insert_text};
use clientful_proto::v1 as wpb;
use clientful_storage::causal;
use clientful_storage::layout::{EpochStorage, FORMAT_PATH, object_id};
use clientful_storage::object::{HeadManifest, Kind, Snapshot, open_object, seal_object};
use clientful_storage::plan;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::Value;

use crate::adapter::{Adapter, HarnessError};
use crate::pb::{self, request::Command, response::Result as R};
use crate::storage::{Files, listing};
use clientful_vectors::families::storage::transplant;

/// Why a scenario did not pass.
#[derive(Debug)]
pub enum StorageFailure {
    /// The implementation's answer differs from the reference's, or its files
    /// do not load.
    Failed(String),
    /// The implementation answered `unsupported`.
    Unsupported(String),
    /// The harness itself failed (transport, or the runner's own construction).
    Harness(String),
}

type Res<T> = Result<T, StorageFailure>;

fn harness(e: impl std::fmt::Display) -> StorageFailure {
    StorageFailure::Harness(e.to_string())
}

fn hx(b: &[u8]) -> String {
    hex::encode(b.get(..6).unwrap_or(b))
}

/// The devices of a storage world: writers A and B, member M (writes no
/// document), R (a member that was removed), and the reader E (no signer).
const A: usize = 0;
const B: usize = 1;
const M: usize = 2;
const R_: usize = 3;

/// Everything the scenarios are built from, generated from the run seed.
pub struct Fixture {
    world: World,
    /// Signers A, B, M (R removed): what readers load with.
    wj: String,
    /// Signers A, B, M, R: the world before R's removal.
    wj_before: String,
    /// Another epoch of the same space (same signers as `wj`).
    wj_other: String,
    other_epoch: EpochKey,
    reader: [u8; 32],
    /// Envelopes: A's three batches, B's two, A's in a second document, R's one.
    a: [Vec<Vec<u8>>; 3],
    b: [Vec<Vec<u8>>; 2],
    a_doc2: Vec<Vec<u8>>,
    r: Vec<Vec<u8>>,
    /// Stores the reference wrote.
    s2: Files,
    s3: Files,
    s5: Files,
}

fn seed_bytes(seed: u64, tag: u8) -> [u8; 32] {
    let mut x = [0u8; 32];
    for (d, s) in x
        .iter_mut()
        .zip(seed.to_be_bytes().iter().chain(b"storage!"))
    {
        *d = *s;
    }
    x[31] = tag;
    suite::sha256(&x)
}

fn batch(r: &mut clientful_doc::Replica, text: &str) -> Result<Vec<Vec<u8>>, String> {
    insert_text(r, 0, text)?;
    r.commit().map_err(|e| e.to_string())?;
    Ok(r.drain_outbox().into_iter().map(|(_, b)| b).collect())
}

fn with_signers(w: &World, exclude: Option<usize>) -> Value {
    let mut v = clientful_vectors::families::docworld::world_params(w);
    let signers: Vec<Value> = w
        .signers()
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != exclude)
        .map(|(_, s)| Value::String(hex::encode(s)))
        .collect();
    if let Some(o) = v.as_object_mut() {
        o.insert("signers".into(), Value::Array(signers));
    }
    v
}

impl Fixture {
    /// Builds the fixture for the run seed `seed`.
    pub fn new(seed: u64) -> Result<Fixture, String> {
        let mut world_seed = [0u8; 8];
        world_seed.copy_from_slice(seed_bytes(seed, 0).get(..8).unwrap_or(&[0; 8]));
        let world = World::new(u64::from_be_bytes(world_seed), 4, CrdtKind::Yjs);
        let wj = with_signers(&world, Some(R_)).to_string();
        let wj_before = with_signers(&world, None).to_string();
        let other_epoch = EpochKey::new(seed_bytes(seed, 1), seed_bytes(seed, 2));
        let mut other = with_signers(&world, Some(R_));
        if let Some(o) = other.as_object_mut() {
            o.insert(
                "epoch".into(),
                serde_json::json!({
                    "epochId": hex::encode(other_epoch.id()),
                    "secret": hex::encode(other_epoch.secret()),
                }),
            );
        }
        let mut ra = world.replica(A);
        let mut rb = world.replica(B);
        let a = [
            batch(&mut ra, "alpha ")?,
            batch(&mut ra, "beta ")?,
            batch(&mut ra, "gamma ")?,
        ];
        let b = [batch(&mut rb, "one ")?, batch(&mut rb, "two ")?];
        let mut w2 = world.clone();
        w2.doc_id = seed_bytes(seed, 3);
        let a_doc2 = batch(&mut w2.replica(A), "elsewhere")?;
        let r = batch(&mut world.replica(R_), "removed ")?;
        let mut fx = Fixture {
            reader: seed_bytes(seed, 4),
            world,
            wj,
            wj_before,
            wj_other: other.to_string(),
            other_epoch,
            a,
            b,
            a_doc2,
            r,
            s2: Files::new(),
            s3: Files::new(),
            s5: Files::new(),
        };
        let s1 = fx.ref_write(&Files::new(), &fx.wj, A, &fx.a[0], false, 1)?;
        fx.s2 = fx.ref_write(&s1, &fx.wj, B, &fx.b[0], false, 2)?;
        fx.s3 = fx.ref_write(&fx.s2, &fx.wj, A, &fx.a[1], false, 3)?;
        let s4 = fx.ref_write(&fx.s3, &fx.wj, B, &fx.b[1], true, 4)?;
        fx.s5 = fx.ref_write(&s4, &fx.wj, A, &fx.a[2], false, 5)?;
        Ok(fx)
    }

    /// The stores the reference wrote: after the first round, before B's
    /// compaction, and the full one.
    pub fn stores(&self) -> [&Files; 3] {
        [&self.s2, &self.s3, &self.s5]
    }

    fn seed(&self, i: usize) -> [u8; 32] {
        self.world.device_seeds.get(i).copied().unwrap_or_default()
    }

    fn write_request(
        &self,
        files: &Files,
        wj: &str,
        dev: usize,
        envs: &[Vec<u8>],
        compact: bool,
        rng: u8,
    ) -> pb::StorageWrite {
        pb::StorageWrite {
            world_json: wj.to_string(),
            device_seed: self.seed(dev).to_vec(),
            rng_seed: [rng; 32].to_vec(),
            storage: Some(listing(files)),
            envelopes: envs.to_vec(),
            compact,
        }
    }

    /// The reference writes as `dev` over `files`; the storage afterwards.
    fn ref_write(
        &self,
        files: &Files,
        wj: &str,
        dev: usize,
        envs: &[Vec<u8>],
        compact: bool,
        rng: u8,
    ) -> Result<Files, String> {
        let w = crate::storage::write(
            &self.write_request(files, wj, dev, envs, compact, rng),
            None,
        )?;
        Ok(apply(files, &w))
    }

    fn load_request(
        &self,
        wj: &str,
        loads: &[&Files],
        hw: &[pb::HighWaterMark],
    ) -> pb::StorageLoad {
        pb::StorageLoad {
            world_json: wj.to_string(),
            device_seed: self.reader.to_vec(),
            high_water: hw.to_vec(),
            loads: loads.iter().map(|f| listing(f)).collect(),
        }
    }

    fn es(&self) -> Result<EpochStorage, String> {
        EpochStorage::derive(&self.world.space_id, &self.world.epoch_key())
            .map_err(|e| e.to_string())
    }

    fn head_path(&self, dev: usize) -> Result<String, String> {
        self.es()?
            .head_path(&self.world.device(dev).public_bytes())
            .map_err(|e| e.to_string())
    }

    /// The path of `dev`'s segment `index` as its head manifest in `files` lists it.
    fn segment_path(&self, files: &Files, dev: usize, index: u64) -> Result<String, String> {
        let es = self.es()?;
        let m = self.head(files, dev)?;
        m.segments
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, id)| es.object_path(id))
            .ok_or_else(|| format!("device {dev} lists no segment {index}"))
    }

    fn head(&self, files: &Files, dev: usize) -> Result<HeadManifest, String> {
        let es = self.es()?;
        let d = self.world.device(dev).public_bytes();
        let bytes = files.get(&self.head_path(dev)?).ok_or("no head manifest")?;
        let opened = open_object(&es, Kind::Head, bytes, &[d]).map_err(|e| e.to_string())?;
        HeadManifest::decode(&opened.body, &es, &d).map_err(|e| e.to_string())
    }

    fn ids(envs: &[&[Vec<u8>]]) -> BTreeSet<Vec<u8>> {
        envs.iter()
            .flat_map(|b| b.iter())
            .filter_map(|e| envelope::decode(e).ok().map(|d| d.id.to_vec()))
            .collect()
    }
}

/// `files` after a device wrote `w`.
pub fn apply(files: &Files, w: &pb::StorageWritten) -> Files {
    let mut out = files.clone();
    for p in &w.deleted {
        out.remove(p);
    }
    for f in &w.written {
        out.insert(f.path.clone(), f.bytes.clone());
    }
    out
}

/// Member M signs a snapshot of A's and B's first segments claiming `claim`
/// segments of B (leaving B's envelopes out with `omit`) and lists it in its
/// head manifest (issue 22 finding 2).
fn forged_snapshot(fx: &Fixture, claim: u64, omit: bool) -> Result<Files, String> {
    let es = fx.es()?;
    let key_m = fx.world.device(M);
    let (dev_a, dev_b) = (
        fx.world.device(A).public_bytes(),
        fx.world.device(B).public_bytes(),
    );
    let envs: Vec<Vec<u8>> = fx.a[0]
        .iter()
        .chain(fx.b[0].iter().filter(|_| !omit))
        .cloned()
        .collect();
    let (envelopes, heads) = causal::order(envs);
    let mut covers = vec![(dev_a, 1), (dev_b, claim)];
    covers.sort_unstable();
    let snap = Snapshot {
        device: key_m.public_bytes(),
        covers,
        heads,
        envelopes,
    };
    let mut rng = ChaCha20Rng::from_seed([0x66; 32]);
    let file = seal_object(&es, Kind::Snapshot, &key_m, snap.encode(&es), &mut rng)
        .map_err(|e| e.to_string())?;
    let id = object_id(&file).map_err(|e| e.to_string())?;
    let mut files = fx.s2.clone();
    files.insert(es.object_path(&id), file);
    let mut head = HeadManifest::empty(key_m.public_bytes());
    head.counter = 1;
    head.snapshots = vec![id];
    let file = seal_object(&es, Kind::Head, &key_m, head.encode(&es), &mut rng)
        .map_err(|e| e.to_string())?;
    files.insert(fx.head_path(M)?, file);
    Ok(files)
}

/// A's next segment holding one envelope over the size limit (ENV limits,
/// STO-10), listed by A's next head manifest: what a buggy or malicious writer
/// uploads.
fn oversized_segment(fx: &Fixture) -> Result<Files, String> {
    let es = fx.es()?;
    let key_a: SigningKey = fx.world.device(A);
    let mut own = fx.head(&fx.s5, A)?;
    let seg = plan::next_segment(&own, vec![vec![0x5a; limits::MAX_ENVELOPE_BYTES + 1]]);
    let mut rng = ChaCha20Rng::from_seed([0x77; 32]);
    let file = seal_object(&es, Kind::Segment, &key_a, seg.encode(&es), &mut rng)
        .map_err(|e| e.to_string())?;
    let id = object_id(&file).map_err(|e| e.to_string())?;
    let mut files = fx.s5.clone();
    files.insert(es.object_path(&id), file);
    plan::list_segment(&mut own, &seg, id);
    let head = seal_object(&es, Kind::Head, &key_a, own.encode(&es), &mut rng)
        .map_err(|e| e.to_string())?;
    files.insert(fx.head_path(A)?, head);
    Ok(files)
}

/// What the reference's answer must show for a scenario to test its point.
type Intent = Box<dyn Fn(&pb::StorageLoaded) -> Result<(), String>>;

/// How one scenario checks the implementation.
enum Check {
    /// The implementation loads; its answer must equal the reference's.
    Load {
        wj: String,
        loads: Vec<Files>,
        hw: Vec<pb::HighWaterMark>,
        /// A duplicated listing entry: (load index, path) listed twice.
        duplicate: Option<String>,
        /// What the reference's answer must show, so that the scenario tests
        /// what it says (a runner bug otherwise).
        intent: Intent,
    },
    /// Writes by the implementation, loaded by the reference.
    Write(fn(&mut Session<'_>, &Fixture) -> Res<()>),
}

/// One storage scenario: its name (test id `scenario/storage/<name>`), the spec rules it
/// checks, and what it does.
pub struct Scenario {
    /// Test name, without the `scenario/storage/` prefix.
    pub name: &'static str,
    /// Requirement ids.
    pub refs: &'static str,
    check: Check,
}

fn has_class(l: &pb::StorageLoaded, c: ErrorClass) -> bool {
    l.verdicts.contains(&(c as i32))
}

fn has_alarm(l: &pb::StorageLoaded, k: pb::StorageAlarmKind, dev: &[u8; 32]) -> bool {
    l.alarms
        .iter()
        .any(|a| a.kind == k as i32 && a.device == dev)
}

fn holds(l: &pb::StorageLoaded, ids: &BTreeSet<Vec<u8>>) -> bool {
    let got: BTreeSet<&Vec<u8>> = l
        .documents
        .iter()
        .flat_map(|d| d.envelope_ids.iter())
        .collect();
    ids.iter().all(|i| got.contains(i))
}

fn holds_none(l: &pb::StorageLoaded, ids: &BTreeSet<Vec<u8>>) -> bool {
    !l.documents
        .iter()
        .flat_map(|d| d.envelope_ids.iter())
        .any(|i| ids.contains(i))
}

fn clean(l: &pb::StorageLoaded) -> bool {
    l.verdicts.is_empty() && l.alarms.is_empty()
}

fn intent(msg: &'static str, f: impl Fn(&pb::StorageLoaded) -> bool + 'static) -> Intent {
    Box::new(move |l| if f(l) { Ok(()) } else { Err(msg.to_string()) })
}

fn edit(files: &Files, path: &str, f: impl FnOnce(&mut Vec<u8>)) -> Files {
    let mut out = files.clone();
    if let Some(b) = out.get_mut(path) {
        f(b);
    }
    out
}

/// Every storage scenario of a run, built from its fixture.
#[allow(clippy::too_many_lines)]
pub fn scenarios(fx: &Fixture) -> Result<Vec<Scenario>, String> {
    let mut v = Vec::new();
    let dev = |i: usize| fx.world.device(i).public_bytes();
    let (a_id, b_id) = (dev(A), dev(B));
    let all = Fixture::ids(&[&fx.a[0], &fx.a[1], &fx.a[2], &fx.b[0], &fx.b[1]]);
    let load = |wj: &str, loads: Vec<Files>, intent| Check::Load {
        wj: wj.to_string(),
        loads,
        hw: Vec::new(),
        duplicate: None,
        intent,
    };
    let all2 = all.clone();
    v.push(Scenario {
        name: "cross-load-reference-writes",
        refs: "STO-8 STO-10 STO-12 STO-13 STO-14 STO-15",
        check: load(
            &fx.wj,
            vec![fx.s5.clone()],
            intent("the reference's store loads clean and whole", move |l| {
                clean(l) && holds(l, &all2) && !l.checkpoints.is_empty()
            }),
        ),
    });
    let all2 = all.clone();
    v.push(Scenario {
        name: "reader-early-then-full",
        refs: "STO-9 STO-14",
        check: load(
            &fx.wj,
            vec![fx.s2.clone(), fx.s5.clone()],
            intent(
                "a reader of the early store then loads the full one",
                move |l| clean(l) && holds(l, &all2),
            ),
        ),
    });
    v.push(Scenario {
        name: "cross-load-implementation-writes",
        refs: "STO-2 STO-8 STO-10 STO-11",
        check: Check::Write(impl_writes),
    });
    v.push(Scenario {
        name: "implementation-continues-from-storage",
        refs: "STO-8 STO-28",
        check: Check::Write(impl_continues),
    });
    v.push(Scenario {
        name: "implementation-compacts",
        refs: "STO-12 STO-15 STO-25",
        check: Check::Write(impl_compacts),
    });
    let head_a = fx.head_path(A)?;
    let old_head = fx.s3.get(&head_a).cloned().ok_or("no head of A in s3")?;
    let rolled = edit(&fx.s5, &head_a, |b| *b = old_head.clone());
    v.push(Scenario {
        name: "head-rolled-back",
        refs: "STO-9 STO-29",
        check: load(
            &fx.wj,
            vec![fx.s5.clone(), rolled.clone()],
            intent("ROLLBACK naming A", move |l| {
                has_class(l, ErrorClass::Rollback)
                    && has_alarm(l, pb::StorageAlarmKind::HeadRolledBack, &a_id)
            }),
        ),
    });
    let marks = crate::storage::load(&fx.load_request(&fx.wj, &[&fx.s5], &[]), None)?.high_water;
    v.push(Scenario {
        name: "head-rolled-back-remembered-mark",
        refs: "STO-9 STO-22",
        check: Check::Load {
            wj: fx.wj.clone(),
            loads: vec![rolled],
            hw: marks,
            duplicate: None,
            intent: intent(
                "ROLLBACK against the remembered mark, marks not lowered",
                move |l| has_alarm(l, pb::StorageAlarmKind::HeadRolledBack, &a_id),
            ),
        },
    });
    let mut no_head = fx.s5.clone();
    no_head.remove(&head_a);
    v.push(Scenario {
        name: "head-withheld",
        refs: "STO-9",
        check: load(
            &fx.wj,
            vec![fx.s5.clone(), no_head],
            intent("A's head withheld", move |l| {
                has_alarm(l, pb::StorageAlarmKind::HeadWithheld, &a_id)
            }),
        ),
    });
    // A fork: A's third write made twice from the same store, once into
    // another document, so two head manifests carry one counter.
    let fork = fx.ref_write(&fx.s3, &fx.wj, A, &fx.a_doc2, false, 9)?;
    let doc2 = Fixture::ids(&[&fx.a_doc2]);
    v.push(Scenario {
        name: "head-forked",
        refs: "STO-9 STO-29",
        check: load(
            &fx.wj,
            vec![fx.s5.clone(), fork.clone()],
            intent("two heads of A with one counter: FORK", move |l| {
                has_alarm(l, pb::StorageAlarmKind::HeadForked, &a_id)
            }),
        ),
    });
    // In the store before B's compaction, every segment is needed.
    let seg_a0 = fx.segment_path(&fx.s3, A, 0)?;
    let mut missing = fx.s3.clone();
    missing.remove(&seg_a0);
    let a_first = Fixture::ids(&[&fx.a[0], &fx.a[1]]);
    let b_first = Fixture::ids(&[&fx.b[0]]);
    let (af, bf) = (a_first.clone(), b_first.clone());
    v.push(Scenario {
        name: "listing-missing-segment",
        refs: "STO-5 STO-14 STO-22",
        check: load(
            &fx.wj,
            vec![missing],
            intent(
                "A's withheld first segment is STORAGE_CORRUPT, A's later one waits, B's loads",
                move |l| {
                    has_class(l, ErrorClass::StorageCorrupt) && holds_none(l, &af) && holds(l, &bf)
                },
            ),
        ),
    });
    let b_snap = fx
        .head(&fx.s5, B)?
        .snapshots
        .first()
        .copied()
        .ok_or("B lists no snapshot")?;
    let es = fx.es()?;
    let mut no_snap = fx.s5.clone();
    no_snap.remove(&es.object_path(&b_snap));
    v.push(Scenario {
        name: "snapshot-withheld",
        refs: "STO-5 STO-13 STO-14",
        check: load(
            &fx.wj,
            vec![no_snap],
            intent("B's withheld snapshot is STORAGE_CORRUPT", |l| {
                has_class(l, ErrorClass::StorageCorrupt)
            }),
        ),
    });
    let all2 = all.clone();
    v.push(Scenario {
        name: "listing-duplicated-name",
        refs: "STO-1 STO-19",
        check: Check::Load {
            wj: fx.wj.clone(),
            loads: vec![fx.s5.clone()],
            hw: Vec::new(),
            duplicate: Some(fx.segment_path(&fx.s5, A, 2)?),
            intent: intent("a name listed twice changes nothing", move |l| {
                clean(l) && holds(l, &all2)
            }),
        },
    });
    let seg_a2 = fx.segment_path(&fx.s5, A, 2)?;
    let fork_seg = fx.segment_path(&fork, A, 2)?;
    let fork_bytes = fork.get(&fork_seg).cloned().ok_or("no fork segment")?;
    let doc2b = doc2.clone();
    v.push(Scenario {
        name: "listing-name-other-bytes",
        refs: "STO-5 STO-10",
        check: load(
            &fx.wj,
            vec![edit(&fx.s5, &seg_a2, |b| *b = fork_bytes.clone())],
            intent(
                "a valid segment of A at another segment's name is STORAGE_CORRUPT, not loaded",
                move |l| has_class(l, ErrorClass::StorageCorrupt) && holds_none(l, &doc2b),
            ),
        ),
    });
    let mut extra = fx.s5.clone();
    extra.insert(fork_seg.clone(), fork_bytes.clone());
    let all2 = all.clone();
    let doc2b = doc2.clone();
    v.push(Scenario {
        name: "listing-unlisted-object",
        refs: "STO-10 STO-19",
        check: load(
            &fx.wj,
            vec![extra],
            intent("a valid object no manifest lists is ignored", move |l| {
                clean(l) && holds(l, &all2) && holds_none(l, &doc2b)
            }),
        ),
    });
    let seg_b0 = fx.segment_path(&fx.s3, B, 0)?;
    let b0 = fx.s3.get(&seg_b0).cloned().ok_or("no segment of B")?;
    v.push(Scenario {
        name: "segment-substituted-by-other-device",
        refs: "STO-5 STO-10",
        check: load(
            &fx.wj,
            vec![edit(&fx.s3, &seg_a0, |b| *b = b0.clone())],
            intent("B's segment at A's name is STORAGE_CORRUPT", move |l| {
                has_class(l, ErrorClass::StorageCorrupt) && holds_none(l, &a_first)
            }),
        ),
    });
    let snap_path = es.object_path(&b_snap);
    v.push(Scenario {
        name: "object-truncated",
        refs: "STO-5 STO-7",
        check: load(
            &fx.wj,
            vec![edit(&fx.s5, &snap_path, |b| b.truncate(b.len() / 2))],
            intent("a truncated snapshot is STORAGE_CORRUPT", |l| {
                has_class(l, ErrorClass::StorageCorrupt)
            }),
        ),
    });
    let big = oversized_segment(fx)?;
    let all2 = all.clone();
    v.push(Scenario {
        name: "object-over-size-limit",
        refs: "STO-7 STO-10",
        check: load(
            &fx.wj,
            vec![big],
            intent(
                "a segment with an envelope over the limit is STORAGE_CORRUPT, the rest loads",
                move |l| has_class(l, ErrorClass::StorageCorrupt) && holds(l, &all2),
            ),
        ),
    });
    let v2 = wire::encode(&wpb::StorageFormat { version: 2 });
    v.push(Scenario {
        name: "format-version-2",
        refs: "STO-2",
        check: load(
            &fx.wj,
            vec![edit(&fx.s5, FORMAT_PATH, |b| *b = v2)],
            intent("STORAGE_VERSION", |l| {
                has_class(l, ErrorClass::StorageVersion)
            }),
        ),
    });
    let huge = forged_snapshot(fx, 1 << 40, false)?;
    let after = fx.ref_write(&huge, &fx.wj, B, &fx.b[1], false, 11)?;
    let b_later = Fixture::ids(&[&fx.b[1]]);
    v.push(Scenario {
        name: "snapshot-forged-coverage-clamped",
        refs: "STO-13 STO-14 STO-30 STO-31",
        check: load(
            &fx.wj,
            vec![huge, after],
            intent(
                "M's claim of 2^40 segments of B is clamped: B's later segment loads",
                move |l| holds(l, &b_later),
            ),
        ),
    });
    let omitting = forged_snapshot(fx, 1, true)?;
    v.push(Scenario {
        name: "snapshot-omits-covered-envelopes",
        refs: "STO-30 STO-31",
        check: load(&fx.wj, vec![omitting], intent("M's snapshot claiming B's segment without its envelopes is refuted (STORAGE_CORRUPT)", |l| has_class(l, ErrorClass::StorageCorrupt))),
    });
    // A's head manifest of another epoch, re-sealed under this one by a
    // member holding both (issue 22 finding 6).
    let other = fx.ref_write(&Files::new(), &fx.wj_other, A, &fx.a_doc2, false, 12)?;
    let other_es =
        EpochStorage::derive(&fx.world.space_id, &fx.other_epoch).map_err(|e| e.to_string())?;
    let other_head = other
        .get(&other_es.head_path(&a_id).map_err(|e| e.to_string())?)
        .ok_or("no head in the other epoch")?;
    let moved = transplant(
        other_head,
        &fx.world.space_id,
        &fx.other_epoch,
        &fx.world.epoch_key(),
    )?;
    v.push(Scenario {
        name: "head-reencrypted-under-new-epoch",
        refs: "STO-6 STO-7",
        check: load(
            &fx.wj,
            vec![fx.s5.clone(), edit(&fx.s5, &head_a, |b| *b = moved)],
            intent(
                "the re-sealed head names another epoch: STORAGE_CORRUPT, no rollback alarm",
                move |l| {
                    has_class(l, ErrorClass::StorageCorrupt)
                        && !has_alarm(l, pb::StorageAlarmKind::HeadRolledBack, &a_id)
                },
            ),
        ),
    });
    let with_r = fx.ref_write(&fx.s5, &fx.wj_before, R_, &fx.r, true, 13)?;
    let r_ids = Fixture::ids(&[&fx.r]);
    let before_cp =
        crate::storage::load(&fx.load_request(&fx.wj_before, &[&with_r], &[]), None)?.checkpoints;
    v.push(Scenario {
        name: "checkpoint-from-removed-member",
        refs: "STO-7 STO-26",
        check: load(&fx.wj, vec![with_r], intent("R's snapshot and checkpoint (chosen while R was a member) are ignored once R is removed", move |l| holds_none(l, &r_ids) && l.checkpoints != before_cp && clean(l))),
    });
    let _ = b_id;
    Ok(v)
}

/// An implementation under test, with the request ids.
pub struct Session<'a> {
    adapter: &'a mut dyn Adapter,
    id: &'a mut u64,
}

impl Session<'_> {
    fn call(&mut self, cmd: Command) -> Res<Option<R>> {
        *self.id += 1;
        let resp = self
            .adapter
            .call(pb::Request {
                id: *self.id,
                command: Some(cmd),
            })
            .map_err(|e: HarnessError| StorageFailure::Harness(e.to_string()))?;
        Ok(resp.result)
    }

    fn load(&mut self, req: pb::StorageLoad) -> Res<pb::StorageLoaded> {
        match self.call(Command::StorageLoad(req))? {
            Some(R::StorageLoaded(l)) => Ok(l),
            Some(R::Unsupported(u)) => Err(StorageFailure::Unsupported(u.command)),
            other => Err(StorageFailure::Failed(format!(
                "storage_load answered {other:?}"
            ))),
        }
    }

    fn write(
        &mut self,
        fx: &Fixture,
        files: &Files,
        dev: usize,
        envs: &[Vec<u8>],
        compact: bool,
        rng: u8,
    ) -> Res<(Files, pb::StorageWritten)> {
        match self.call(Command::StorageWrite(
            fx.write_request(files, &fx.wj, dev, envs, compact, rng),
        ))? {
            Some(R::StorageWritten(w)) => Ok((apply(files, &w), w)),
            Some(R::Unsupported(u)) => Err(StorageFailure::Unsupported(u.command)),
            other => Err(StorageFailure::Failed(format!(
                "storage_write answered {other:?}"
            ))),
        }
    }
}

fn ids_hex(ids: &BTreeSet<Vec<u8>>) -> String {
    ids.iter().map(|i| hx(i)).collect::<Vec<_>>().join(",")
}

/// What differs between the reference's answer and the implementation's.
pub fn diff(want: &pb::StorageLoaded, got: &pb::StorageLoaded) -> Option<String> {
    let mut out = Vec::new();
    let docs = |l: &pb::StorageLoaded| -> BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>> {
        l.documents
            .iter()
            .map(|d| (d.doc_id.clone(), d.envelope_ids.iter().cloned().collect()))
            .collect()
    };
    let (w, g) = (docs(want), docs(got));
    for doc in w.keys().chain(g.keys()).collect::<BTreeSet<_>>() {
        let empty = BTreeSet::new();
        let (wi, gi) = (w.get(doc).unwrap_or(&empty), g.get(doc).unwrap_or(&empty));
        let missing: BTreeSet<Vec<u8>> = wi.difference(gi).cloned().collect();
        let extra: BTreeSet<Vec<u8>> = gi.difference(wi).cloned().collect();
        if !missing.is_empty() {
            out.push(format!(
                "document {}: envelopes not loaded: {}",
                hx(doc),
                ids_hex(&missing)
            ));
        }
        if !extra.is_empty() {
            out.push(format!(
                "document {}: envelopes loaded that must not be: {}",
                hx(doc),
                ids_hex(&extra)
            ));
        }
    }
    let classes = |v: &[i32]| -> Vec<String> {
        let mut s: Vec<String> = v
            .iter()
            .map(|c| {
                ErrorClass::try_from(*c)
                    .map(|c| c.as_str_name().to_string())
                    .unwrap_or_else(|_| c.to_string())
            })
            .collect();
        s.sort();
        s.dedup();
        s
    };
    if classes(&want.verdicts) != classes(&got.verdicts) {
        out.push(format!(
            "verdicts {:?}, expected {:?}",
            classes(&got.verdicts),
            classes(&want.verdicts)
        ));
    }
    let alarms = |l: &pb::StorageLoaded| -> BTreeSet<(String, String, String)> {
        l.alarms
            .iter()
            .map(|a| {
                let k = pb::StorageAlarmKind::try_from(a.kind)
                    .map(|k| k.as_str_name().to_string())
                    .unwrap_or_else(|_| a.kind.to_string());
                (k, hx(&a.device), hx(&a.epoch_id))
            })
            .collect()
    };
    if alarms(want) != alarms(got) {
        out.push(format!(
            "alarms (kind, device, epoch) {:?}, expected {:?}",
            alarms(got),
            alarms(want)
        ));
    }
    let marks = |l: &pb::StorageLoaded| -> BTreeSet<(String, String, u64, String, u64)> {
        l.high_water
            .iter()
            .map(|m| {
                (
                    hx(&m.epoch_id),
                    hx(&m.device),
                    m.counter,
                    hx(&m.digest),
                    m.segment_count,
                )
            })
            .collect()
    };
    if marks(want) != marks(got) {
        out.push(format!(
            "high-water marks (epoch, device, counter, digest, segment_count) {:?}, expected {:?}",
            marks(got),
            marks(want)
        ));
    }
    let cps = |l: &pb::StorageLoaded| -> BTreeSet<(String, String)> {
        l.checkpoints
            .iter()
            .map(|c| (hx(&c.doc_id), hx(&c.checkpoint_id)))
            .collect()
    };
    if cps(want) != cps(got) {
        out.push(format!(
            "checkpoints shown (document, checkpoint) {:?}, expected {:?}",
            cps(got),
            cps(want)
        ));
    }
    (!out.is_empty()).then(|| out.join("; "))
}

fn ref_load(req: &pb::StorageLoad) -> Res<pb::StorageLoaded> {
    crate::storage::load(req, None)
        .map_err(|e| StorageFailure::Harness(format!("the reference cannot load: {e}")))
}

/// The reference loads what the implementation wrote: clean, holding exactly `want`.
fn check_written(
    fx: &Fixture,
    files: &Files,
    want: &BTreeSet<Vec<u8>>,
    what: &str,
) -> Res<pb::StorageLoaded> {
    let l = ref_load(&fx.load_request(&fx.wj, &[files], &[]))?;
    if !clean(&l) {
        return Err(StorageFailure::Failed(format!(
            "{what}: the reference loads it with verdicts {:?} and alarms {:?}",
            l.verdicts, l.alarms
        )));
    }
    let got: BTreeSet<Vec<u8>> = l
        .documents
        .iter()
        .flat_map(|d| d.envelope_ids.iter().cloned())
        .collect();
    if &got != want {
        let missing: BTreeSet<Vec<u8>> = want.difference(&got).cloned().collect();
        let extra: BTreeSet<Vec<u8>> = got.difference(want).cloned().collect();
        return Err(StorageFailure::Failed(format!(
            "{what}: the reference loads it without {} and with {}",
            ids_hex(&missing),
            ids_hex(&extra)
        )));
    }
    Ok(l)
}

/// The implementation writes A, B, A from empty storage; the reference loads it,
/// and the implementation loads it as the reference does.
fn impl_writes(s: &mut Session<'_>, fx: &Fixture) -> Res<()> {
    let (f1, _) = s.write(fx, &Files::new(), A, &fx.a[0], false, 21)?;
    if !f1.contains_key(FORMAT_PATH) {
        return Err(StorageFailure::Failed(
            "the first write to empty storage wrote no format file (STO-2)".into(),
        ));
    }
    let (f2, _) = s.write(fx, &f1, B, &fx.b[0], false, 22)?;
    let (f3, _) = s.write(fx, &f2, A, &fx.a[1], false, 23)?;
    let want = Fixture::ids(&[&fx.a[0], &fx.a[1], &fx.b[0]]);
    let l = check_written(fx, &f3, &want, "the implementation's store")?;
    let got = s.load(fx.load_request(&fx.wj, &[&f3], &[]))?;
    match diff(&l, &got) {
        Some(d) => Err(StorageFailure::Failed(format!(
            "loading its own store: {d}"
        ))),
        None => Ok(()),
    }
}

/// The implementation, without a local record, writes A's third batch over the
/// reference's store where A has published two segments: it must continue A's
/// head manifest (STO-8), not restart it.
fn impl_continues(s: &mut Session<'_>, fx: &Fixture) -> Res<()> {
    let (f, _) = s.write(fx, &fx.s3, A, &fx.a[2], false, 24)?;
    let want = Fixture::ids(&[&fx.a[0], &fx.a[1], &fx.a[2], &fx.b[0]]);
    let l = check_written(fx, &f, &want, "after the implementation continued A")?;
    let a = fx.world.device(A).public_bytes();
    let mark = l.high_water.iter().find(|m| m.device == a);
    match mark {
        Some(m) if m.counter > 2 && m.segment_count >= 3 => Ok(()),
        other => Err(StorageFailure::Failed(format!(
            "A's head manifest after the write: {other:?}, expected counter > 2 and 3 segments (STO-8)"
        ))),
    }
}

/// The implementation compacts as A over the reference's store; B then writes;
/// the reference loads everything, and nothing but A's own objects was deleted.
fn impl_compacts(s: &mut Session<'_>, fx: &Fixture) -> Res<()> {
    let (f, w) = s.write(fx, &fx.s3, A, &fx.a[2], true, 25)?;
    let es = fx.es().map_err(harness)?;
    let a_head = fx.head(&fx.s3, A).map_err(harness)?;
    let own: BTreeSet<String> = plan::listed_objects(&a_head)
        .iter()
        .map(|id| es.object_path(id))
        .collect();
    if let Some(p) = w.deleted.iter().find(|p| !own.contains(*p)) {
        return Err(StorageFailure::Failed(format!(
            "compaction deleted {p}, not one of A's own objects (STO-15)"
        )));
    }
    let head_a = fx.head_path(A).map_err(harness)?;
    if let Some(p) = w
        .written
        .iter()
        .find(|f| f.path.contains("/h/") && f.path != head_a)
    {
        return Err(StorageFailure::Failed(format!(
            "compaction wrote another device's head manifest {}",
            p.path
        )));
    }
    let m = fx
        .head(&f, A)
        .map_err(|e| StorageFailure::Failed(format!("A's head manifest after compaction: {e}")))?;
    if m.snapshots.is_empty() {
        return Err(StorageFailure::Failed(
            "A's head manifest lists no snapshot after compaction (STO-15)".into(),
        ));
    }
    let f2 = fx
        .ref_write(&f, &fx.wj, B, &fx.b[1], false, 26)
        .map_err(harness)?;
    let want = Fixture::ids(&[&fx.a[0], &fx.a[1], &fx.a[2], &fx.b[0], &fx.b[1]]);
    check_written(fx, &f2, &want, "the store the implementation compacted")?;
    Ok(())
}

/// Runs one scenario against the implementation.
pub fn run(sc: &Scenario, fx: &Fixture, adapter: &mut dyn Adapter, id: &mut u64) -> Res<()> {
    let mut s = Session { adapter, id };
    match &sc.check {
        Check::Write(f) => f(&mut s, fx),
        Check::Load {
            wj,
            loads,
            hw,
            duplicate,
            intent,
        } => {
            let refs: Vec<&Files> = loads.iter().collect();
            let mut req = fx.load_request(wj, &refs, hw);
            if let (Some(path), Some(last)) = (duplicate, req.loads.last_mut())
                && let Some(f) = last.files.iter().find(|f| &f.path == path).cloned()
            {
                last.files.push(f);
            }
            let want = ref_load(&req)?;
            intent(&want).map_err(|m| StorageFailure::Harness(format!("scenario/storage/{}: the reference's answer does not show the scenario's point ({m})", sc.name)))?;
            let got = s.load(req)?;
            match diff(&want, &got) {
                Some(d) => Err(StorageFailure::Failed(d)),
                None => Ok(()),
            }
        }
    }
}

/// Probes `storage/layout` (CONF-41): a load of empty storage holds nothing and
/// raises nothing.
pub fn probe(
    adapter: &mut dyn Adapter,
    id: &mut u64,
) -> Result<crate::report::Outcome, HarnessError> {
    use crate::report::Outcome;
    let w = World::new(0x5354_4f52, 2, CrdtKind::Yjs);
    *id += 1;
    let resp = adapter.call(pb::Request {
        id: *id,
        command: Some(Command::StorageLoad(pb::StorageLoad {
            world_json: crate::scenario::world_json(&w),
            device_seed: [9; 32].to_vec(),
            high_water: Vec::new(),
            loads: vec![pb::StorageListing::default()],
        })),
    })?;
    Ok(match resp.result {
        Some(R::StorageLoaded(l)) if l == pb::StorageLoaded::default() => Outcome::Pass,
        Some(R::Unsupported(u)) => Outcome::Unsupported(u.command),
        other => Outcome::Fail(format!("storage_load of empty storage answered {other:?}")),
    })
}
