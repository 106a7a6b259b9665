//! The reference implementation as a harness adapter: in-process
//! ([`ReferenceAdapter`]) and over stdio ([`serve_stdio`], what
//! `clientful-conformance serve-reference` runs).

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use clientful_core::ErrorClass;
use clientful_doc::testkit;
use clientful_doc::{Disposition as DocDisposition, Replica, ReplicaConfig};
use clientful_vectors::families::docworld;
use clientful_vectors::verify::Outcome;
use prost::Message;
use serde_json::Value;

use crate::adapter::{Adapter, HarnessError};
use crate::framing::{read_frame, write_frame};
use crate::pb::{self, request::Command, response::Result as R};
use crate::saboteur::Saboteur;

struct Slot {
    replica: Replica,
    world_json: String,
    device_seed: [u8; 32],
    rng_seed: [u8; 32],
    restarts: u8,
    /// The space replica this document replica is bound to
    /// (`create_space_document`, CONF-104): its membership gates every write.
    space: Option<u32>,
}

/// The reference implementation behind the harness protocol.
#[derive(Default)]
pub struct ReferenceAdapter {
    replicas: BTreeMap<u32, Slot>,
    next: u32,
    spaces: BTreeMap<u32, crate::space::SpaceSlot>,
    next_space: u32,
    saboteur: Option<Saboteur>,
    configured: Option<(u64, u64)>,
    /// Where the `answers-from-vectors` saboteur reads the committed vectors.
    vectors_dir: Option<PathBuf>,
    /// Its lookup table: (family, operation, params, input) -> the file's answer.
    echo: Option<EchoTable>,
}

/// (family, operation, params, input) -> the vector file's answer.
type EchoTable = BTreeMap<(String, String, String, String), R>;

/// The answer a vector file gives for each case: `expected` of a valid case, the
/// class of an invalid one, an empty object for an acceptable one.
fn echo_table(dir: &Path) -> Result<EchoTable, String> {
    let mut table = BTreeMap::new();
    for family in clientful_vectors::FAMILIES {
        let path = dir.join(format!("{family}.json"));
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file: clientful_vectors::schema::VectorFile =
            serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        for (g, c) in file.cases() {
            let outcome = match c.result.as_str() {
                "invalid" => pb::vector_result::Outcome::Rejected(
                    c.error
                        .as_deref()
                        .and_then(clientful_core::error::class_from_name)
                        .map(|k| k as i32)
                        .unwrap_or(0),
                ),
                "valid" => pb::vector_result::Outcome::OutputJson(c.expected.to_string()),
                _ => pb::vector_result::Outcome::OutputJson("{}".into()),
            };
            table.insert(
                (
                    family.to_string(),
                    g.operation.clone(),
                    g.params.to_string(),
                    c.input.to_string(),
                ),
                R::Vector(pb::VectorResult {
                    outcome: Some(outcome),
                }),
            );
        }
    }
    Ok(table)
}

/// A replica configuration from the world JSON of the document vector families.
pub fn config_from_world(
    world_json: &str,
    device_seed: [u8; 32],
    rng_seed: [u8; 32],
) -> Result<ReplicaConfig, String> {
    let w: Value = serde_json::from_str(world_json).map_err(|e| e.to_string())?;
    docworld::replica_config(&w, device_seed, rng_seed)
}

fn seed32(b: &[u8]) -> Result<[u8; 32], String> {
    b.try_into()
        .map_err(|_| "seed must be 32 bytes".to_string())
}

fn edit(r: &mut Replica, e: &pb::local_edit::Edit) -> Result<(), String> {
    match e {
        pb::local_edit::Edit::Insert(i) => testkit::insert_text(r, i.index, &i.text),
        pb::local_edit::Edit::Delete(d) => testkit::delete_text(r, d.index, d.length),
        pb::local_edit::Edit::MapSet(m) => testkit::set_value(r, &m.key, &m.value),
        pb::local_edit::Edit::MapDelete(m) => crate::app::map_delete(r, &m.key),
    }
}

fn encode_state(envs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in envs {
        out.extend_from_slice(&(e.len() as u32).to_le_bytes());
        out.extend_from_slice(e);
    }
    out
}

fn decode_state(mut b: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    while let Some((len, rest)) = b.split_first_chunk::<4>() {
        let n = u32::from_le_bytes(*len) as usize;
        if n > rest.len() {
            return Err("truncated state".into());
        }
        let (e, tail) = rest.split_at(n);
        out.push(e.to_vec());
        b = tail;
    }
    Ok(out)
}

fn capabilities() -> Vec<String> {
    let mut caps: Vec<String> = clientful_vectors::FAMILIES
        .iter()
        .map(|f| format!("vectors/{f}"))
        .collect();
    caps.extend(
        [
            "replica/yjs",
            "replica/automerge",
            "replica/restart",
            "space/membership",
            "storage/layout",
            "broker/server",
            "broker/client",
            "app/lifecycle",
            "app/invariants",
            "space/documents",
        ]
        .map(String::from),
    );
    caps
}

fn run_vector(v: &pb::RunVector) -> Result<Outcome, String> {
    let params: Value = serde_json::from_str(&v.params_json).map_err(|e| e.to_string())?;
    let input: Value = serde_json::from_str(&v.input_json).map_err(|e| e.to_string())?;
    clientful_vectors::verify::run_operation(&v.family, &v.operation, &params, &input)
}

impl ReferenceAdapter {
    /// A fresh adapter.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh adapter with a saboteur switched on (§12.11): a deliberately
    /// broken reference, for the kill matrix.
    pub fn with_saboteur(saboteur: Option<Saboteur>) -> Self {
        ReferenceAdapter {
            saboteur,
            ..Self::default()
        }
    }

    /// Where the `answers-from-vectors` saboteur finds the committed vector
    /// files (default `test-vectors`).
    pub fn with_vectors_dir(mut self, dir: &Path) -> Self {
        self.vectors_dir = Some(dir.to_path_buf());
        self
    }

    /// The `answers-from-vectors` saboteur: the committed file's answer to this
    /// request, or `unsupported`.
    fn echo(&mut self, v: &pb::RunVector) -> Result<R, String> {
        if self.echo.is_none() {
            let dir = self
                .vectors_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("test-vectors"));
            self.echo = Some(echo_table(&dir)?);
        }
        let norm = |t: &str| {
            serde_json::from_str::<Value>(t)
                .map(|v| v.to_string())
                .unwrap_or_default()
        };
        let key = (
            v.family.clone(),
            v.operation.clone(),
            norm(&v.params_json),
            norm(&v.input_json),
        );
        Ok(self
            .echo
            .as_ref()
            .and_then(|t| t.get(&key).cloned())
            .unwrap_or(R::Unsupported(pb::Unsupported {
                command: "run_vector (not in test-vectors/)".into(),
            })))
    }

    fn sabotaged(&self, s: Saboteur) -> bool {
        self.saboteur == Some(s)
    }

    fn slot(&mut self, h: u32) -> Result<&mut Slot, String> {
        self.replicas.get_mut(&h).ok_or(format!("no replica {h}"))
    }

    fn space(&mut self, h: u32) -> Result<&mut crate::space::SpaceSlot, String> {
        self.spaces
            .get_mut(&h)
            .ok_or(format!("no space replica {h}"))
    }

    fn add_space(&mut self, slot: crate::space::SpaceSlot) -> R {
        self.next_space += 1;
        let handle = slot.handle(self.next_space);
        self.spaces.insert(self.next_space, slot);
        R::Space(handle)
    }

    /// Feeds the current membership of space replica `space` to every
    /// document replica bound to it (MEM-18: verdicts follow the membership).
    fn refresh_bound(&mut self, space: u32) -> Result<(), String> {
        let sab = self.saboteur;
        let Some(sp) = self.spaces.get(&space) else {
            return Ok(());
        };
        let bound: Vec<&mut Slot> = self
            .replicas
            .values_mut()
            .filter(|s| s.space == Some(space))
            .collect();
        if bound.is_empty() {
            return Ok(());
        }
        let m = crate::app::membership(sp.replica(), sab)?;
        for slot in bound {
            slot.replica.set_membership(m.clone());
        }
        Ok(())
    }

    /// The envelopes of the document replicas bound to `space`, by document
    /// id: the removal cut's source (MEM-18).
    fn bound_docs(&self, space: u32) -> BTreeMap<[u8; 32], Vec<Vec<u8>>> {
        let mut docs: BTreeMap<[u8; 32], Vec<Vec<u8>>> = BTreeMap::new();
        for slot in self.replicas.values().filter(|s| s.space == Some(space)) {
            docs.entry(*slot.replica.doc_id())
                .or_default()
                .extend(slot.replica.persisted_envelopes());
        }
        docs
    }

    fn add(&mut self, slot: Slot) -> R {
        self.next += 1;
        self.replicas.insert(self.next, slot);
        R::Replica(pb::ReplicaHandle { replica: self.next })
    }

    /// Handles one request.
    pub fn handle(&mut self, req: pb::Request) -> pb::Response {
        let id = req.id;
        let result = match req.command {
            None if self.sabotaged(Saboteur::AnswersUnknownCommands) => Ok(R::Done(pb::Done {})),
            None => Ok(R::Unsupported(pb::Unsupported {
                command: "unknown".into(),
            })),
            Some(cmd) => self.command(cmd),
        };
        pb::Response {
            id,
            result: Some(result.unwrap_or_else(|message| R::Error(pb::InternalError { message }))),
        }
    }

    fn command(&mut self, cmd: Command) -> Result<R, String> {
        Ok(match cmd {
            Command::Hello(_) => R::Hello(pb::HelloResult {
                harness_version: crate::HARNESS_VERSION,
                implementation: "clientful-reference".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                capabilities: if self.sabotaged(Saboteur::AnswersFromVectors) {
                    capabilities()
                        .into_iter()
                        .filter(|c| c.starts_with("vectors/"))
                        .collect()
                } else {
                    capabilities()
                },
            }),
            Command::RunVector(v) if self.sabotaged(Saboteur::AnswersFromVectors) => {
                self.echo(&v)?
            }
            Command::RunVector(v) => match run_vector(&v)? {
                Outcome::Accepted(out) => R::Vector(pb::VectorResult {
                    outcome: Some(pb::vector_result::Outcome::OutputJson(out.to_string())),
                }),
                Outcome::Rejected(class) => {
                    match self.saboteur.and_then(|s| s.on_rejection(class)) {
                        Some(None) => R::Vector(pb::VectorResult {
                            outcome: Some(pb::vector_result::Outcome::OutputJson("{}".into())),
                        }),
                        Some(Some(other)) => R::Vector(pb::VectorResult {
                            outcome: Some(pb::vector_result::Outcome::Rejected(other as i32)),
                        }),
                        None => R::Vector(pb::VectorResult {
                            outcome: Some(pb::vector_result::Outcome::Rejected(class as i32)),
                        }),
                    }
                }
            },
            Command::CreateReplica(c) => {
                let device_seed = seed32(&c.device_seed)?;
                let rng_seed = seed32(&c.rng_seed)?;
                let cfg = config_from_world(&c.world_json, device_seed, rng_seed)?;
                self.add(Slot {
                    replica: Replica::new(cfg),
                    world_json: c.world_json,
                    device_seed,
                    rng_seed,
                    restarts: 0,
                    space: None,
                })
            }
            Command::LocalEdit(e) => {
                let bytes_for_utf16 = self.sabotaged(Saboteur::ByteOffsetPositions);
                let s = self.slot(e.replica)?;
                let mut ed = e.edit.ok_or("no edit")?;
                if bytes_for_utf16 {
                    byte_offsets(&mut s.replica, &mut ed);
                }
                edit(&mut s.replica, &ed)?;
                R::Done(pb::Done {})
            }
            Command::Commit(c) => {
                let id = self
                    .slot(c.replica)?
                    .replica
                    .commit()
                    .map_err(|e| e.to_string())?;
                let mut envelope_id = id.map(|i| i.to_vec()).unwrap_or_default();
                if self.sabotaged(Saboteur::CommitIdMismatch)
                    && let Some(b) = envelope_id.last_mut()
                {
                    *b ^= 1;
                }
                R::Commit(pb::CommitResult { envelope_id })
            }
            Command::TakeOutbox(t) => R::Outbox(pb::Outbox {
                envelopes: self
                    .slot(t.replica)?
                    .replica
                    .drain_outbox()
                    .into_iter()
                    .map(|(_, e)| e)
                    .collect(),
            }),
            Command::Deliver(d) => {
                let sab = self.saboteur;
                let slot = self.slot(d.replica)?;
                let mut disp = slot.replica.receive(&d.envelope);
                if sab == Some(Saboteur::SharedClientIds) {
                    disp = share_client_ids(slot, &d.envelope, disp)?;
                }
                let disp = sabotage_disposition(sab, disp);
                let (disposition, error) = match disp {
                    DocDisposition::Applied { .. } => {
                        (pb::Disposition::Applied, ErrorClass::Unspecified)
                    }
                    DocDisposition::Buffered { .. } => {
                        (pb::Disposition::Buffered, ErrorClass::Unspecified)
                    }
                    DocDisposition::Duplicate { .. } => {
                        (pb::Disposition::Duplicate, ErrorClass::Unspecified)
                    }
                    DocDisposition::Rejected { class, .. } => (pb::Disposition::Rejected, class),
                    other => {
                        return Err(format!("disposition the adapter does not know: {other:?}"));
                    }
                };
                R::Deliver(pb::DeliverResult {
                    disposition: disposition as i32,
                    error: error as i32,
                })
            }
            Command::Observe(o) => {
                let sab = self.saboteur;
                let slot = self.slot(o.replica)?;
                let mut obs = if sab == Some(Saboteur::EraseEquivocatorChain) {
                    erased_observation(slot)?
                } else {
                    let r = &mut slot.replica;
                    pb::Observation {
                        state_digest: r.state_digest().to_vec(),
                        history_digest: r.history_digest().to_vec(),
                        materialized_json: r.materialize().to_canonical_string(),
                    }
                };
                match sab {
                    Some(Saboteur::NonCanonicalJson) => {
                        let v: Value = serde_json::from_str(&obs.materialized_json)
                            .map_err(|e| e.to_string())?;
                        // The digest stays that of the canonical JSON (DOC-12): only
                        // the text is written with white space.
                        obs.materialized_json =
                            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?;
                    }
                    Some(Saboteur::WrongStateDigest) => {
                        use sha2::Digest;
                        obs.state_digest =
                            sha2::Sha256::digest(obs.materialized_json.as_bytes()).to_vec();
                    }
                    Some(Saboteur::ConstantHistoryDigest) => {
                        obs.history_digest = clientful_core::suite::hash_with_label(
                            clientful_core::labels::DIGEST_HISTORY,
                            &[],
                        )
                        .map_err(|e| e.to_string())?
                        .to_vec();
                    }
                    _ => {}
                }
                R::Observation(obs)
            }
            Command::Persist(p) => {
                let lose = self.sabotaged(Saboteur::LoseStateOnRestart);
                let mut envs = self.slot(p.replica)?.replica.persisted_envelopes();
                if lose {
                    envs.pop();
                }
                R::Persisted(pb::PersistedState {
                    state: encode_state(&envs),
                })
            }
            Command::Restart(r) if self.slot(r.replica)?.space.is_some() => {
                R::Unsupported(pb::Unsupported {
                    command: "restart (of a document bound to a space)".into(),
                })
            }
            Command::Restart(r) => {
                let old = self
                    .replicas
                    .remove(&r.replica)
                    .ok_or(format!("no replica {}", r.replica))?;
                let restarts = old.restarts.wrapping_add(1);
                let mut rng_seed = old.rng_seed;
                if !self.sabotaged(Saboteur::ReuseNonceAfterRestart) {
                    rng_seed[31] ^= restarts;
                }
                let cfg = config_from_world(&old.world_json, old.device_seed, rng_seed)?;
                let replica = Replica::restore(cfg, &decode_state(&r.state)?);
                self.add(Slot {
                    replica,
                    world_json: old.world_json,
                    device_seed: old.device_seed,
                    rng_seed: old.rng_seed,
                    restarts,
                    space: None,
                })
            }
            Command::CreateSpace(c) => self.add_space(crate::space::SpaceSlot::create(&c)?),
            Command::JoinSpace(j) => self.add_space(crate::space::SpaceSlot::join(&j)?),
            Command::RedeemInvite(r) => self.add_space(crate::space::SpaceSlot::redeem(&r)?),
            Command::SpaceIntent(i) => {
                let intent = i.intent.ok_or("no intent")?;
                let docs = self.bound_docs(i.space);
                let out = self.space(i.space)?.intent(&intent, &docs)?;
                self.refresh_bound(i.space)?;
                R::SpaceIntent(out)
            }
            Command::TakeSpaceOutbox(t) => R::SpaceOutbox(self.space(t.space)?.outbox()?),
            Command::DeliverSpace(d) => {
                let sab = self.saboteur;
                let item = d.item.ok_or("no item")?;
                let (mut disposition, mut error) = self.space(d.space)?.deliver(&item)?;
                self.refresh_bound(d.space)?;
                if sab == Some(Saboteur::LowestGenesisWins)
                    && self.space(d.space)?.lowest_genesis_wins()?
                {
                    disposition = pb::Disposition::Applied;
                    error = ErrorClass::Unspecified;
                }
                if disposition == pb::Disposition::Rejected
                    && let Some(s) = sab
                {
                    match s.on_rejection(error) {
                        Some(None) => {
                            disposition = pb::Disposition::Applied;
                            error = ErrorClass::Unspecified;
                        }
                        Some(Some(other)) => error = other,
                        None => {}
                    }
                }
                R::Deliver(pb::DeliverResult {
                    disposition: disposition as i32,
                    error: error as i32,
                })
            }
            Command::ObserveSpace(o) => {
                let sab = self.saboteur;
                R::SpaceObservation(self.space(o.space)?.observe(sab)?)
            }
            Command::Configure(c) => {
                // The reference draws every nonce from the per-replica seeds the
                // runner gives and reads no clock in the harness; it records the
                // configuration for its own diagnostics.
                self.configured = Some((c.seed, c.clock_ms));
                R::Done(pb::Done {})
            }
            Command::ExportSecrets(e) => {
                let sab = self.saboteur;
                R::Secrets(self.space(e.space)?.secrets(sab))
            }
            Command::StorageWrite(w) => {
                R::StorageWritten(crate::storage::write(&w, self.saboteur)?)
            }
            Command::StorageLoad(l) => R::StorageLoaded(crate::storage::load(&l, self.saboteur)?),
            Command::BrokerServerRun(b) => {
                R::BrokerServerRan(crate::broker::server_run(&b, self.saboteur)?)
            }
            Command::BrokerClientRun(b) => {
                R::BrokerClientRan(crate::broker::client_run(&b, self.saboteur)?)
            }
            Command::AppLifecycle(a) => R::Commit(pb::CommitResult {
                envelope_id: crate::app::lifecycle_action(
                    &mut self.slot(a.replica)?.replica,
                    a.action,
                )?,
            }),
            Command::AppAfterMerge(a) => {
                let sab = self.saboteur;
                R::AppAfterMerge(crate::app::after_merge(
                    &mut self.slot(a.replica)?.replica,
                    a.compensation,
                    sab,
                )?)
            }
            Command::ObserveApp(o) => {
                let sab = self.saboteur;
                R::AppObservation(crate::app::observe(&mut self.slot(o.replica)?.replica, sab))
            }
            Command::CreateSpaceDocument(c) => {
                let sab = self.saboteur;
                let sp = self.space(c.space)?;
                let replica = crate::app::space_document(sp.replica(), &c, sab)?;
                let rng_seed = seed32(&c.rng_seed)?;
                self.add(Slot {
                    replica,
                    world_json: String::new(),
                    device_seed: [0; 32],
                    rng_seed,
                    restarts: 0,
                    space: Some(c.space),
                })
            }
            Command::Shutdown(_) => R::Done(pb::Done {}),
        })
    }
}

impl Adapter for ReferenceAdapter {
    fn call(&mut self, req: pb::Request) -> Result<pb::Response, HarnessError> {
        Ok(self.handle(req))
    }

    fn call_raw(&mut self, id: u64, bytes: Vec<u8>) -> Result<pb::Response, HarnessError> {
        match pb::Request::decode(bytes.as_slice()) {
            Ok(req) => Ok(self.handle(req)),
            Err(e) => Ok(pb::Response {
                id,
                result: Some(R::Error(pb::InternalError {
                    message: e.to_string(),
                })),
            }),
        }
    }
}

/// The `shared-client-ids` saboteur: a Yjs update the reference rejected as
/// INVALID_OPERATION because it inserts under a client id assigned to another
/// known device is applied to the document as it is, and reported applied, as
/// an implementation that tracks progress per author without owning client ids
/// would (two authors with one client id both pass; Yjs keeps whichever struct
/// it saw first).
fn share_client_ids(
    slot: &mut Slot,
    bytes: &[u8],
    disp: DocDisposition,
) -> Result<DocDisposition, String> {
    use yrs::Transact;
    use yrs::updates::decoder::Decode;
    let DocDisposition::Rejected {
        id: Some(id),
        class: ErrorClass::InvalidOperation,
        ..
    } = disp
    else {
        return Ok(disp);
    };
    let cfg = config_from_world(&slot.world_json, slot.device_seed, slot.rng_seed)?;
    let mut epochs = vec![cfg.epoch.clone()];
    epochs.extend(cfg.old_epochs.iter().cloned());
    let ctx = clientful_core::envelope::StaticContext {
        space_id: cfg.space_id,
        doc_id: Some(cfg.doc_id),
        signers: cfg.signers.clone(),
        epochs,
        accepted: Vec::new(),
    };
    let Ok(opened) = clientful_core::envelope::open(bytes, &ctx) else {
        return Ok(disp);
    };
    if opened.content_type != clientful_doc::content::YJS_UPDATE_V1 {
        return Ok(disp);
    }
    let Ok(update) = yrs::Update::decode_v1(&opened.body) else {
        return Ok(disp);
    };
    let indices = clientful_doc::binding::device_indices(&cfg.signers);
    let author = indices.primary(&opened.header.author);
    let foreign = update.insertions(true).iter().any(|(client, _)| {
        indices.claims.values().flatten().any(|d| {
            Some(*d) != author
                && (0..=clientful_doc::binding::MAX_INCARNATION_STEP)
                    .any(|k| clientful_doc::binding::yjs_client_id(*d, k) == client.get())
        })
    });
    let Some(y) = slot.replica.yjs().filter(|_| foreign) else {
        return Ok(disp);
    };
    let applied = y.doc().transact_mut().apply_update(update).is_ok();
    Ok(if applied {
        DocDisposition::Applied {
            id,
            unblocked: vec![],
        }
    } else {
        disp
    })
}

/// The `erase-equivocator-chain` saboteur's observation: the document
/// materialized without any envelope of an equivocating author at or above its
/// fork seq, whoever built on it (the rule before DOC-20); the history is the
/// real one.
fn erased_observation(slot: &mut Slot) -> Result<pb::Observation, String> {
    let forks = slot.replica.equivocators();
    let kept: Vec<Vec<u8>> = slot
        .replica
        .persisted_envelopes()
        .into_iter()
        .filter(|e| {
            clientful_core::envelope::decode(e).is_ok_and(|d| {
                !forks
                    .iter()
                    .any(|(a, s)| *a == d.header.author && d.header.seq >= *s)
            })
        })
        .collect();
    let cfg = config_from_world(&slot.world_json, slot.device_seed, slot.rng_seed)?;
    let mut shadow = Replica::restore(cfg, &kept);
    Ok(pb::Observation {
        state_digest: shadow.state_digest().to_vec(),
        history_digest: slot.replica.history_digest().to_vec(),
        materialized_json: shadow.materialize().to_canonical_string(),
    })
}

/// The disposition a saboteur reports instead of the reference's.
fn sabotage_disposition(sab: Option<Saboteur>, d: DocDisposition) -> DocDisposition {
    let Some(s) = sab else { return d };
    match d {
        DocDisposition::Rejected {
            id: Some(id),
            class,
            reason,
        } => match s.on_rejection(class) {
            Some(None) => DocDisposition::Applied {
                id,
                unblocked: vec![],
            },
            Some(Some(other)) => DocDisposition::Rejected {
                id: Some(id),
                class: other,
                reason,
            },
            None => DocDisposition::Rejected {
                id: Some(id),
                class,
                reason,
            },
        },
        DocDisposition::Rejected {
            id: None,
            class,
            reason,
        } => match s.on_rejection(class) {
            Some(None) => DocDisposition::Applied {
                id: [0; 32],
                unblocked: vec![],
            },
            Some(Some(other)) => DocDisposition::Rejected {
                id: None,
                class: other,
                reason,
            },
            None => DocDisposition::Rejected {
                id: None,
                class,
                reason,
            },
        },
        DocDisposition::Buffered { id, .. } if s == Saboteur::ApplyOutOfCausalOrder => {
            DocDisposition::Applied {
                id,
                unblocked: vec![],
            }
        }
        DocDisposition::Duplicate { id } if s == Saboteur::DuplicateAsNew => {
            DocDisposition::Applied {
                id,
                unblocked: vec![],
            }
        }
        other => other,
    }
}

/// The `byte-offset-positions` saboteur: reads the index of an edit as a UTF-8
/// byte offset into the current text and hands the library the UTF-16 offset of
/// the character boundary it lands on.
fn byte_offsets(r: &mut Replica, e: &mut pb::local_edit::Edit) {
    let text = match r.materialize() {
        clientful_doc::canonical_json::Json::Object(members) => members
            .into_iter()
            .find(|(k, _)| k == "text")
            .and_then(|(_, v)| match v {
                clientful_doc::canonical_json::Json::String(s) => Some(s),
                _ => None,
            })
            .unwrap_or_default(),
        _ => String::new(),
    };
    let to_utf16 = |byte: u32| -> u32 {
        let mut b = (byte as usize).min(text.len());
        while !text.is_char_boundary(b) {
            b -= 1;
        }
        text.get(..b).map(|p| p.encode_utf16().count()).unwrap_or(0) as u32
    };
    match e {
        pb::local_edit::Edit::Insert(i) => i.index = to_utf16(i.index),
        pb::local_edit::Edit::Delete(d) => d.index = to_utf16(d.index),
        pb::local_edit::Edit::MapSet(_) | pb::local_edit::Edit::MapDelete(_) => {}
    }
}

/// Serves the reference over stdio until end of input or `shutdown`.
pub fn serve_stdio(input: impl Read, output: impl Write) -> std::io::Result<()> {
    serve_stdio_with(input, output, None)
}

/// Serves the reference, or one of its saboteurs, over stdio.
pub fn serve_stdio_with(
    input: impl Read,
    output: impl Write,
    saboteur: Option<Saboteur>,
) -> std::io::Result<()> {
    serve_adapter(input, output, ReferenceAdapter::with_saboteur(saboteur))
}

/// Serves a configured reference adapter over stdio.
pub fn serve_adapter(
    input: impl Read,
    output: impl Write,
    mut adapter: ReferenceAdapter,
) -> std::io::Result<()> {
    let mut r = BufReader::new(input);
    let mut w = BufWriter::new(output);
    while let Some(frame) = read_frame(&mut r)? {
        let resp = match pb::Request::decode(frame.as_slice()) {
            Ok(req) => {
                let stop = matches!(req.command, Some(Command::Shutdown(_)));
                let resp = adapter.handle(req);
                write_frame(&mut w, &resp.encode_to_vec())?;
                if stop {
                    return Ok(());
                }
                continue;
            }
            Err(e) => pb::Response {
                id: 0,
                result: Some(R::Error(pb::InternalError {
                    message: e.to_string(),
                })),
            },
        };
        write_frame(&mut w, &resp.encode_to_vec())?;
    }
    Ok(())
}
