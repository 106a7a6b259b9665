//! Document replicas for JavaScript: [`DocReplica`] wraps one `clientful_doc::Replica`
//! (spec §8: a Yjs or Automerge document of one space on one device) and exposes
//! it with `wasm-bindgen`. Every rule stays in clientful-doc: this module only
//! converts arguments and results (DOC-1..DOC-22 are enforced by the replica).
//!
//! What a JS editor binding needs besides local edits:
//! - **local raw updates**: an update a JS `Y.Doc` produced under this replica's
//!   client id ([`DocReplica::yjs_client_id`], DOC-3/DOC-19) is checked with the
//!   same binding and chain rule remote payloads are (DOC-4) before it enters the
//!   replica as a local edit; `commit` then seals it. Automerge changes from a JS
//!   document with this replica's actor ([`DocReplica::automerge_actor`]) the same way.
//! - **remote raw updates**: `receive` hands back the CRDT payloads of every
//!   envelope it brought into the document (the envelope and those it unblocked),
//!   Yjs as v1 updates and Automerge as single changes, for the JS document.
//!
//! Errors reach JS as `Error` objects named `ClientfulError` with a `class`
//! string: a spec error class (`MALFORMED`, `INVALID_OPERATION`, ...) or
//! `INVALID_ARGUMENT` for a bad argument. Nothing here panics on input; a panic
//! inside a CRDT library still traps the instance (see the crate documentation).

use clientful_core::error::class_name;
use clientful_core::keys::{EpochKey, SigningKey};
use clientful_doc::crdt::CrdtDoc;
use clientful_doc::{CrdtKind, DocError, Replica, ReplicaConfig, Verdict, YjsSchema, content};
use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;

/// Why a call failed, before it becomes a JS error.
#[derive(Debug, thiserror::Error)]
pub enum WebDocError {
    /// A configuration field or argument is missing or has the wrong shape.
    #[error("{field}: {reason}")]
    Argument {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The operation needs the other CRDT.
    #[error("this replica is not a {0} document")]
    WrongCrdt(&'static str),
    /// The module was built without this CRDT (cargo feature).
    #[error("this build has no {0} support")]
    NotBuilt(&'static str),
    /// The document layer refused.
    #[error(transparent)]
    Doc(#[from] DocError),
    /// A text edit was out of range.
    #[error(transparent)]
    Text(#[from] clientful_doc::TextEditError),
    /// A data map edit failed.
    #[error(transparent)]
    App(#[from] clientful_app::AppError),
}

impl WebDocError {
    /// The class string JS sees.
    pub fn class(&self) -> &'static str {
        match self {
            WebDocError::Argument { .. } | WebDocError::Text(_) => "INVALID_ARGUMENT",
            WebDocError::WrongCrdt(_) | WebDocError::NotBuilt(_) => "UNSUPPORTED",
            WebDocError::Doc(e) => class_name(e.class()),
            WebDocError::App(_) => "INVALID_OPERATION",
        }
    }
}

impl From<WebDocError> for JsValue {
    fn from(e: WebDocError) -> JsValue {
        let err = js_sys::Error::new(&e.to_string());
        err.set_name("ClientfulError");
        let _ = Reflect::set(&err, &"class".into(), &e.class().into());
        err.into()
    }
}

fn arg(field: &'static str, reason: &'static str) -> WebDocError {
    WebDocError::Argument { field, reason }
}

fn bytes32(v: &[u8], field: &'static str) -> Result<[u8; 32], WebDocError> {
    v.try_into().map_err(|_| arg(field, "must be 32 bytes"))
}

fn field(obj: &JsValue, name: &'static str) -> Result<JsValue, WebDocError> {
    let v = Reflect::get(obj, &name.into()).map_err(|_| arg(name, "cannot be read"))?;
    if v.is_undefined() || v.is_null() {
        return Err(arg(name, "is missing"));
    }
    Ok(v)
}

fn field_bytes32(obj: &JsValue, name: &'static str) -> Result<[u8; 32], WebDocError> {
    let v = field(obj, name)?;
    let a = v
        .dyn_into::<Uint8Array>()
        .map_err(|_| arg(name, "must be a Uint8Array"))?;
    bytes32(&a.to_vec(), name)
}

fn field_bytes32_list(obj: &JsValue, name: &'static str) -> Result<Vec<[u8; 32]>, WebDocError> {
    let v = field(obj, name)?;
    if !Array::is_array(&v) {
        return Err(arg(name, "must be an array of Uint8Array"));
    }
    Array::from(&v)
        .iter()
        .map(|x| {
            x.dyn_into::<Uint8Array>()
                .map_err(|_| arg(name, "must be an array of Uint8Array"))
                .and_then(|a| bytes32(&a.to_vec(), name))
        })
        .collect()
}

fn byte_list(v: &JsValue, name: &'static str) -> Result<Vec<Vec<u8>>, WebDocError> {
    if !Array::is_array(v) {
        return Err(arg(name, "must be an array of Uint8Array"));
    }
    Array::from(v)
        .iter()
        .map(|x| {
            x.dyn_into::<Uint8Array>()
                .map(|a| a.to_vec())
                .map_err(|_| arg(name, "must be an array of Uint8Array"))
        })
        .collect()
}

/// A replica configuration from a JS object: `{crdt: "yjs" | "automerge", spaceId,
/// docId, deviceSeed, epochId, epochSecret, rngSeed}` (each a 32-byte `Uint8Array`)
/// and `signers` (an array of 32-byte device keys, in device-index order, DOC-19).
fn config(obj: &JsValue) -> Result<ReplicaConfig, WebDocError> {
    let crdt = match field(obj, "crdt")?.as_string().as_deref() {
        Some("yjs") if cfg!(feature = "yjs") => CrdtKind::Yjs,
        Some("yjs") => return Err(WebDocError::NotBuilt("yjs")),
        Some("automerge") if cfg!(feature = "automerge") => CrdtKind::Automerge,
        Some("automerge") => return Err(WebDocError::NotBuilt("automerge")),
        _ => return Err(arg("crdt", "must be \"yjs\" or \"automerge\"")),
    };
    Ok(ReplicaConfig {
        space_id: field_bytes32(obj, "spaceId")?,
        doc_id: field_bytes32(obj, "docId")?,
        device: SigningKey::from_seed(&field_bytes32(obj, "deviceSeed")?),
        epoch: EpochKey::new(
            field_bytes32(obj, "epochId")?,
            field_bytes32(obj, "epochSecret")?,
        ),
        old_epochs: Vec::new(),
        signers: field_bytes32_list(obj, "signers")?,
        crdt,
        yjs_schema: YjsSchema::default(),
        rng_seed: field_bytes32(obj, "rngSeed")?,
    })
}

fn set(obj: &Object, key: &str, value: &JsValue) {
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(obj, &key.into(), value);
}

fn bytes(b: &[u8]) -> JsValue {
    Uint8Array::from(b).into()
}

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** What `DocReplica.create` and `DocReplica.restore` take (32-byte arrays). */
export interface DocReplicaConfig {
  crdt: "yjs" | "automerge";
  spaceId: Uint8Array;
  docId: Uint8Array;
  deviceSeed: Uint8Array;
  epochId: Uint8Array;
  epochSecret: Uint8Array;
  /** Nonce generator seed: fresh randomness, new after every restore. */
  rngSeed: Uint8Array;
  /** Device keys accepted as authors, in device-index order. */
  signers: Uint8Array[];
}

/** A sealed envelope waiting to be stored and sent. */
export interface OutboxItem {
  id: Uint8Array;
  envelope: Uint8Array;
}

/** What `DocReplica.receive` did with an envelope. */
export interface ReceiveResult {
  disposition: "applied" | "buffered" | "duplicate" | "rejected" | "unknown";
  id?: Uint8Array;
  /** The spec error class when rejected, e.g. "BAD_SIGNATURE". */
  errorClass?: string;
  reason?: string;
  /** How many predecessors a buffered envelope waits for. */
  missing?: number;
  /** True when an equivocating author was found (DOC-20): reload the JS document (yjsState). */
  resync: boolean;
  /** Raw CRDT payloads now in the document: Yjs v1 updates or single Automerge changes. */
  updates: Uint8Array[];
}
"#;

/// One document replica (see the module documentation).
#[wasm_bindgen]
pub struct DocReplica {
    inner: Replica,
    crdt: CrdtKind,
}

#[wasm_bindgen]
impl DocReplica {
    /// A new, empty replica from a configuration object (see `config`).
    pub fn create(
        #[wasm_bindgen(unchecked_param_type = "DocReplicaConfig")] config_obj: JsValue,
    ) -> Result<DocReplica, WebDocError> {
        let cfg = config(&config_obj)?;
        let crdt = cfg.crdt;
        Ok(DocReplica {
            inner: Replica::new(cfg),
            crdt,
        })
    }

    /// A replica restored from the envelopes `persistedEnvelopes` returned
    /// (an array of `Uint8Array`, any order). Give it a fresh `rngSeed`: nonces
    /// must never repeat across restarts.
    pub fn restore(
        #[wasm_bindgen(unchecked_param_type = "DocReplicaConfig")] config_obj: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array[]")] envelopes: JsValue,
    ) -> Result<DocReplica, WebDocError> {
        let cfg = config(&config_obj)?;
        let crdt = cfg.crdt;
        let envs = byte_list(&envelopes, "envelopes")?;
        Ok(DocReplica {
            inner: Replica::restore(cfg, &envs),
            crdt,
        })
    }

    /// `"yjs"` or `"automerge"`.
    #[wasm_bindgen(getter)]
    pub fn crdt(&self) -> String {
        match self.crdt {
            CrdtKind::Yjs => "yjs".into(),
            CrdtKind::Automerge => "automerge".into(),
        }
    }

    /// The document id.
    #[wasm_bindgen(js_name = docId)]
    pub fn doc_id(&self) -> Vec<u8> {
        self.inner.doc_id().to_vec()
    }

    /// This device's public key.
    #[wasm_bindgen(js_name = deviceKey)]
    pub fn device_key(&self) -> Vec<u8> {
        self.inner.device_key().to_vec()
    }

    /// The Yjs client id a JS `Y.Doc` must use (`ydoc.clientID`) for its updates to
    /// be this device's (DOC-3, DOC-19). At most 2^53 - 1, so exact as a number.
    #[wasm_bindgen(js_name = yjsClientId)]
    pub fn yjs_client_id(&self) -> Result<f64, WebDocError> {
        let y = self.inner.yjs().ok_or(WebDocError::WrongCrdt("yjs"))?;
        // Client ids are below 2^53 (binding::MAX_YJS_CLIENT_ID): exact in an f64.
        #[allow(clippy::cast_precision_loss)]
        Ok(y.client_id() as f64)
    }

    /// Inserts `text` at UTF-16 offset `index` of the document's text.
    #[wasm_bindgen(js_name = insertText)]
    pub fn insert_text(&mut self, index: u32, text: &str) -> Result<(), WebDocError> {
        Ok(clientful_doc::insert_text(&mut self.inner, index, text)?)
    }

    /// Deletes `length` UTF-16 code units at `index` of the document's text.
    #[wasm_bindgen(js_name = deleteText)]
    pub fn delete_text(&mut self, index: u32, length: u32) -> Result<(), WebDocError> {
        Ok(clientful_doc::delete_text(&mut self.inner, index, length)?)
    }

    /// Sets a string in the data map (the Yjs root map `data`, the Automerge root).
    #[wasm_bindgen(js_name = setValue)]
    pub fn set_value(&mut self, key: &str, value: &str) -> Result<(), WebDocError> {
        self.map_set(key, value)
    }

    /// Deletes a key of the data map (nothing if absent).
    #[wasm_bindgen(js_name = deleteValue)]
    pub fn delete_value(&mut self, key: &str) -> Result<(), WebDocError> {
        clientful_app::data::apply(
            &mut self.inner,
            &[clientful_app::data::MapOp::Delete(key.to_owned())],
        )?;
        Ok(())
    }

    /// Applies a Yjs update a JS `Y.Doc` produced locally (v1 encoding, with
    /// `clientID` = `yjsClientId()`) as a local edit, after checking it as every
    /// replica will check the envelope (DOC-3, DOC-4): it may insert only under
    /// this device's client id, continuing its chain. `commit` seals it.
    #[wasm_bindgen(js_name = applyLocalYjsUpdate)]
    pub fn apply_local_yjs_update(&mut self, update: &[u8]) -> Result<(), WebDocError> {
        apply_local_yjs(&mut self.inner, update)
    }

    /// The Automerge actor id a JS Automerge document must use for its changes to
    /// be this device's (DOC-3).
    #[wasm_bindgen(js_name = automergeActor)]
    pub fn automerge_actor(&mut self) -> Result<Vec<u8>, WebDocError> {
        self.own_automerge_actor()
    }

    /// Applies Automerge changes a JS document made locally (concatenated
    /// uncommitted change chunks, actor = `automergeActor()`), checked as every
    /// replica will check them (DOC-3, DOC-4, DOC-5). `commit` seals them.
    #[wasm_bindgen(js_name = applyLocalAutomergeChanges)]
    pub fn apply_local_automerge_changes(&mut self, changes: &[u8]) -> Result<(), WebDocError> {
        self.local_automerge(changes)
    }

    /// Seals the local edits since the last commit into one envelope and returns
    /// its id, or `undefined` if there were none.
    pub fn commit(&mut self) -> Result<Option<Vec<u8>>, WebDocError> {
        Ok(self.inner.commit()?.map(|id| id.to_vec()))
    }

    /// Takes the sealed envelopes waiting to be sent, in commit order:
    /// `[{id, envelope}]`. Store them durably before sending (DOC-15).
    #[wasm_bindgen(js_name = drainOutbox, unchecked_return_type = "OutboxItem[]")]
    pub fn drain_outbox(&mut self) -> Array {
        let out = Array::new();
        for (id, env) in self.inner.drain_outbox() {
            let o = Object::new();
            set(&o, "id", &bytes(&id));
            set(&o, "envelope", &bytes(&env));
            out.push(&o);
        }
        out
    }

    /// Handles one envelope from a peer, the broker or storage. Returns
    /// `{disposition: "applied" | "buffered" | "duplicate" | "rejected", id?,
    /// errorClass?, reason?, missing?, updates}`; `updates` are the raw CRDT
    /// payloads this call brought into the document, in integration order (Yjs v1
    /// updates, or single Automerge changes), for a JS document to apply. `resync`
    /// is true when the call found an equivocating author (DOC-20): the replica's
    /// document dropped that author's forked work, so a JS document must be loaded
    /// again from the replica (`yjsState`) rather than patched with `updates`.
    #[wasm_bindgen(unchecked_return_type = "ReceiveResult")]
    pub fn receive(&mut self, envelope: &[u8]) -> Object {
        let o = Object::new();
        let mut integrated = Vec::new();
        let forks = self.inner.equivocators().len();
        match self.inner.receive(envelope) {
            clientful_doc::Disposition::Applied { id, unblocked } => {
                set(&o, "disposition", &"applied".into());
                set(&o, "id", &bytes(&id));
                integrated.push(id);
                integrated.extend(unblocked);
            }
            clientful_doc::Disposition::Buffered { id, missing } => {
                set(&o, "disposition", &"buffered".into());
                set(&o, "id", &bytes(&id));
                set(&o, "missing", &JsValue::from(missing.len() as u32));
            }
            clientful_doc::Disposition::Duplicate { id } => {
                set(&o, "disposition", &"duplicate".into());
                set(&o, "id", &bytes(&id));
            }
            clientful_doc::Disposition::Rejected { id, class, reason } => {
                set(&o, "disposition", &"rejected".into());
                if let Some(id) = id {
                    set(&o, "id", &bytes(&id));
                }
                set(&o, "errorClass", &class_name(class).into());
                set(&o, "reason", &reason.into());
            }
            other => {
                // A disposition added to clientful-doc later: reported, not guessed.
                set(&o, "disposition", &"unknown".into());
                set(&o, "reason", &format!("{other:?}").into());
            }
        }
        // A new equivocator (DOC-9, DOC-20): the replica rebuilt its document without
        // the author's forked work, which raw updates cannot take out of a JS document.
        let resync = self.inner.equivocators().len() != forks;
        set(&o, "resync", &resync.into());
        set(&o, "updates", &self.payloads(&integrated).into());
        o
    }

    /// The verdict on an envelope id (DOC-7): `"applied"`, `"excluded"`,
    /// `"buffered"`, `"unknown"` or the rejection's error class.
    pub fn verdict(&self, id: &[u8]) -> Result<String, WebDocError> {
        let id = bytes32(id, "id")?;
        Ok(match self.inner.verdict(&id) {
            Verdict::Applied => "applied".into(),
            Verdict::Excluded => "excluded".into(),
            Verdict::Buffered => "buffered".into(),
            Verdict::Rejected(c) => class_name(c).into(),
            _ => "unknown".into(),
        })
    }

    /// The materialized document as canonical JSON text (DOC-11).
    pub fn materialize(&mut self) -> String {
        self.inner.materialize().to_canonical_string()
    }

    /// `StateDigest` (DOC-12), 32 bytes.
    #[wasm_bindgen(js_name = stateDigest)]
    pub fn state_digest(&mut self) -> Vec<u8> {
        self.inner.state_digest().to_vec()
    }

    /// `HistoryDigest` (DOC-13), 32 bytes.
    #[wasm_bindgen(js_name = historyDigest)]
    pub fn history_digest(&self) -> Vec<u8> {
        self.inner.history_digest().to_vec()
    }

    /// The DAG heads (envelope ids).
    #[wasm_bindgen(unchecked_return_type = "Uint8Array[]")]
    pub fn heads(&self) -> Array {
        self.inner.heads().iter().map(|h| bytes(h)).collect()
    }

    /// Every integrated envelope in integration order: what a device persists and
    /// hands to `restore`.
    #[wasm_bindgen(js_name = persistedEnvelopes, unchecked_return_type = "Uint8Array[]")]
    pub fn persisted_envelopes(&self) -> Array {
        self.inner
            .persisted_envelopes()
            .iter()
            .map(|e| bytes(e))
            .collect()
    }

    /// The whole Yjs state as one v1 update (to load a JS `Y.Doc` that starts late).
    #[wasm_bindgen(js_name = yjsState)]
    pub fn yjs_state(&self) -> Result<Vec<u8>, WebDocError> {
        let y = self.inner.yjs().ok_or(WebDocError::WrongCrdt("yjs"))?;
        Ok(y.encode_state())
    }
}

impl DocReplica {
    fn map_set(&mut self, key: &str, value: &str) -> Result<(), WebDocError> {
        if let Some(y) = self.inner.yjs() {
            use yrs::{Map, Transact};
            let data = y.map("data");
            data.insert(&mut y.doc().transact_mut(), key, value);
            return Ok(());
        }
        self.automerge_set(key, value)
    }

    #[cfg(feature = "automerge")]
    fn own_automerge_actor(&mut self) -> Result<Vec<u8>, WebDocError> {
        let a = self
            .inner
            .automerge_mut()
            .ok_or(WebDocError::WrongCrdt("automerge"))?;
        Ok(a.actor().to_vec())
    }

    #[cfg(not(feature = "automerge"))]
    fn own_automerge_actor(&mut self) -> Result<Vec<u8>, WebDocError> {
        Err(WebDocError::NotBuilt("automerge"))
    }

    #[cfg(feature = "automerge")]
    fn automerge_set(&mut self, key: &str, value: &str) -> Result<(), WebDocError> {
        use automerge::transaction::Transactable;
        let doc = self
            .inner
            .automerge_mut()
            .ok_or(WebDocError::WrongCrdt("automerge"))?
            .doc_mut();
        doc.put(automerge::ROOT, key, value)
            .map_err(|e| WebDocError::Doc(DocError::InvalidOperation(format!("automerge: {e}"))))
    }

    #[cfg(not(feature = "automerge"))]
    fn automerge_set(&mut self, _key: &str, _value: &str) -> Result<(), WebDocError> {
        Err(WebDocError::NotBuilt("automerge"))
    }

    fn local_automerge(&mut self, changes: &[u8]) -> Result<(), WebDocError> {
        apply_local_automerge(&mut self.inner, changes)
    }

    /// The CRDT payloads of `ids` that are part of the document now (an envelope
    /// kept only as evidence, DOC-9, is left out), for a JS document.
    fn payloads(&self, ids: &[clientful_core::envelope::EnvelopeId]) -> Array {
        let out = Array::new();
        for id in ids {
            if self.inner.verdict(id) != Verdict::Applied {
                continue;
            }
            let Some(node) = self.inner.dag().nodes.get(id) else {
                continue;
            };
            match node.content_type {
                content::YJS_UPDATE_V1 => {
                    out.push(&bytes(&node.body));
                }
                content::YJS_UPDATE_V2 => {
                    // The JS side applies v1 updates only: convert (the replica
                    // already decoded and validated this body).
                    if let Ok(u) = yrs::Update::decode_v2(&node.body) {
                        out.push(&bytes(&u.encode_v1()));
                    }
                }
                #[cfg(feature = "automerge")]
                content::AUTOMERGE_CHANGES => {
                    if let Ok(chunks) = clientful_doc::crdt::split_change_chunks(&node.body) {
                        for c in chunks {
                            out.push(&bytes(c));
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }
}

/// Applies a raw Yjs v1 update made by a JS `Y.Doc` whose `clientID` is this device's
/// (`yjsClientId`) as a local edit of `replica`: checked by clientful-doc's own rule for
/// this device's updates (DOC-3, DOC-4) before it touches the document, then committed
/// by the caller like any edit. Shared by `DocReplica` and the room's `DocRoom`.
pub(crate) fn apply_local_yjs(inner: &mut Replica, update: &[u8]) -> Result<(), WebDocError> {
    let me = inner.device_key();
    let y = inner.yjs().ok_or(WebDocError::WrongCrdt("yjs"))?;
    let client = y.client_id();
    let (_, incarnation) = clientful_doc::binding::split_client_id(client).ok_or(arg(
        "update",
        "this device holds no Yjs client id (not a signer)",
    ))?;
    let next = {
        use yrs::{ReadTxn, Transact};
        let txn = y.doc().transact();
        u64::from(txn.state_vector().get(&yrs::block::ClientID::new(client)))
    };
    let progress = clientful_doc::crdt::ActorProgress {
        incarnation,
        next,
        client: if next == 0 { 0 } else { client },
    };
    y.validate(&me, content::YJS_UPDATE_V1, update, progress)?;
    let decoded = yrs::Update::decode_v1(update).map_err(|_| {
        WebDocError::Doc(DocError::MalformedPayload {
            crdt: "yjs",
            reason: "update does not decode".into(),
        })
    })?;
    use yrs::Transact;
    let mut txn = y.doc().transact_mut();
    txn.apply_update(decoded).map_err(|e| {
        WebDocError::Doc(DocError::MalformedPayload {
            crdt: "yjs",
            reason: e.to_string(),
        })
    })?;
    Ok(())
}

/// Applies Automerge changes a JS document made locally (concatenated change
/// chunks, actor = this device's) as a local edit of `inner`, checked as every
/// replica will check them (DOC-3, DOC-4, DOC-5); committed by the caller.
/// Shared by `DocReplica` and the session's `Space`.
#[cfg(feature = "automerge")]
pub(crate) fn apply_local_automerge(
    inner: &mut Replica,
    changes: &[u8],
) -> Result<(), WebDocError> {
    let me = inner.device_key();
    let a = inner
        .automerge_mut()
        .ok_or(WebDocError::WrongCrdt("automerge"))?;
    // automerge's own "last local change" only counts changes made in a
    // transaction of this document; changes applied from a JS document with
    // the same actor are found by their actor id.
    let mut progress = a.local_progress();
    let own = automerge::ActorId::from(a.actor().to_vec());
    let applied = a
        .doc_mut()
        .get_changes(&[])
        .iter()
        .filter(|c| *c.actor_id() == own)
        .map(automerge::Change::seq)
        .max()
        .unwrap_or(0);
    progress.next = progress.next.max(applied);
    a.validate(&me, content::AUTOMERGE_CHANGES, changes, progress)?;
    let mut decoded = Vec::new();
    for chunk in clientful_doc::crdt::split_change_chunks(changes)? {
        decoded.push(automerge::Change::from_bytes(chunk.to_vec()).map_err(|e| {
            WebDocError::Doc(DocError::MalformedPayload {
                crdt: "automerge",
                reason: e.to_string(),
            })
        })?);
    }
    a.doc_mut().apply_changes(decoded).map_err(|e| {
        WebDocError::Doc(DocError::MalformedPayload {
            crdt: "automerge",
            reason: e.to_string(),
        })
    })
}

/// Without Automerge in the build: refused.
#[cfg(not(feature = "automerge"))]
pub(crate) fn apply_local_automerge(
    _inner: &mut Replica,
    _changes: &[u8],
) -> Result<(), WebDocError> {
    Err(WebDocError::NotBuilt("automerge"))
}

/// The Automerge changes of `inner` not covered by `heads` (hex change hashes),
/// each as one change chunk for a JS document (`Automerge.applyChanges`).
#[cfg(feature = "automerge")]
// Used by the SDK session (feature `session`) only.
#[cfg_attr(not(feature = "session"), allow(dead_code))]
pub(crate) fn automerge_changes_since(
    inner: &mut Replica,
    heads: &[String],
) -> Result<Vec<Vec<u8>>, WebDocError> {
    let heads = heads
        .iter()
        .map(|h| {
            h.parse::<automerge::ChangeHash>()
                .map_err(|_| arg("heads", "expected hex change hashes"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let a = inner
        .automerge_mut()
        .ok_or(WebDocError::WrongCrdt("automerge"))?;
    Ok(a.doc_mut()
        .get_changes(&heads)
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect())
}

/// Without Automerge in the build: refused.
#[cfg(not(feature = "automerge"))]
// Used by the SDK session (feature `session`) only.
#[cfg_attr(not(feature = "session"), allow(dead_code))]
pub(crate) fn automerge_changes_since(
    _inner: &mut Replica,
    _heads: &[String],
) -> Result<Vec<Vec<u8>>, WebDocError> {
    Err(WebDocError::NotBuilt("automerge"))
}
