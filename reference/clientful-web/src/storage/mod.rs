//! Storage in the browser (issue 16, browser IO), the same code as native: the
//! device store is clientful-storage's [`LocalStore`] (redb) over an OPFS file
//! ([`opfs`]), and a space on remote storage is clientful-storage's [`Space`] over
//! OpenDAL's S3 or WebDAV service, whose HTTP goes through the browser's `fetch`.
//! Implements, in the browser, what the native shells implement for spec §9
//! (STO-11, STO-13, STO-20: the device store's durability).
//!
//! Exported to JavaScript:
//! - `openDeviceStore(name)` → [`DeviceStore`] (in a dedicated Worker only);
//! - `openSpace(options, deviceStore?)` → [`WebSpace`]: `writeText`, `record`,
//!   `flush`, `pull`, `envelopes`.
//!
//! The stores must allow the page's origin by CORS (docs/web-storage.md).

pub mod opfs;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use clientful_core::keys::{EpochKey, SigningKey};
use clientful_doc::CrdtKind;
use clientful_doc::crdt::YjsSchema;
use clientful_doc::replica::{Replica, ReplicaConfig};
use clientful_doc::text::insert_text;
use clientful_storage::space::SpaceConfig;
use clientful_storage::{LocalStore, OpendalStore, S3Config, Space};
use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use opfs::OpfsBackend;

fn err(e: impl std::fmt::Display) -> JsValue {
    JsError::new(&e.to_string()).into()
}

fn to_array(items: &[Vec<u8>]) -> Array {
    items
        .iter()
        .map(|b| JsValue::from(Uint8Array::from(b.as_slice())))
        .collect()
}

fn from_array(items: &Array) -> Result<Vec<Vec<u8>>, JsValue> {
    items
        .iter()
        .map(|v| {
            v.dyn_into::<Uint8Array>()
                .map(|a| a.to_vec())
                .map_err(|_| err("expected an array of Uint8Array"))
        })
        .collect()
}

/// The device-local store of one device in this origin's private file system
/// (clientful-storage's `LocalStore` over redb over OPFS).
#[wasm_bindgen]
pub struct DeviceStore {
    store: LocalStore,
}

/// Opens (or creates) the device store in the OPFS file `name`. Only in a dedicated
/// Worker. redb's integrity check and the store's consistency check run on open.
#[wasm_bindgen(js_name = openDeviceStore)]
pub async fn open_device_store(name: String) -> Result<DeviceStore, JsValue> {
    let backend = OpfsBackend::open(&name).await.map_err(err)?;
    let store = LocalStore::open_backend(backend).map_err(err)?;
    Ok(DeviceStore { store })
}

#[wasm_bindgen]
impl DeviceStore {
    /// Stores envelopes (deduplicated by id; with `outbox`, queued for upload) in
    /// one durable transaction; resolves to the number that were new. When this
    /// returns, they are on disk.
    #[wasm_bindgen(js_name = putEnvelopes)]
    pub fn put_envelopes(&self, envelopes: &Array, outbox: bool) -> Result<u32, JsValue> {
        let bytes = from_array(envelopes)?;
        let fresh = self.store.put_envelopes(&bytes, outbox, &[]).map_err(err)?;
        u32::try_from(fresh.len()).map_err(err)
    }

    /// Every stored envelope, in the order stored.
    pub fn envelopes(&self) -> Result<Array, JsValue> {
        Ok(to_array(&self.store.all_envelopes().map_err(err)?))
    }

    /// Runs the store's consistency check; returns `{ envelopes, outbox }` counts.
    pub fn check(&self) -> Result<Object, JsValue> {
        let stats = self.store.check().map_err(err)?;
        let out = Object::new();
        #[allow(clippy::cast_precision_loss)] // counts far below 2^53
        {
            Reflect::set(&out, &"envelopes".into(), &(stats.envelopes as f64).into())?;
            Reflect::set(&out, &"outbox".into(), &(stats.outbox as f64).into())?;
        }
        Ok(out)
    }
}

fn field(options: &JsValue, name: &str) -> Result<JsValue, JsValue> {
    Reflect::get(options, &name.into())
}

fn text(options: &JsValue, name: &str, default: Option<&str>) -> Result<String, JsValue> {
    match (field(options, name)?.as_string(), default) {
        (Some(s), _) => Ok(s),
        (None, Some(d)) => Ok(d.to_owned()),
        (None, None) => Err(err(format!("options.{name}: expected a string"))),
    }
}

fn id32(options: &JsValue, name: &str) -> Result<[u8; 32], JsValue> {
    field(options, name)?
        .dyn_into::<Uint8Array>()
        .ok()
        .and_then(|a| <[u8; 32]>::try_from(a.to_vec()).ok())
        .ok_or_else(|| err(format!("options.{name}: expected 32 bytes")))
}

/// The remote store named by `options.backend`.
fn remote(options: &JsValue) -> Result<OpendalStore, JsValue> {
    let backend = text(options, "backend", None)?;
    let root = text(options, "root", Some("/"))?;
    match backend.as_str() {
        "s3" => OpendalStore::s3(&S3Config {
            endpoint: text(options, "endpoint", None)?,
            bucket: text(options, "bucket", None)?,
            region: text(options, "region", Some("us-east-1"))?,
            access_key_id: text(options, "accessKeyId", Some("any"))?,
            secret_access_key: text(options, "secretAccessKey", Some("any"))?,
            root,
        }),
        "webdav" => OpendalStore::webdav(
            &text(options, "endpoint", None)?,
            &text(options, "username", Some(""))?,
            &text(options, "password", Some(""))?,
            &root,
        ),
        "memory" => OpendalStore::memory(),
        other => return Err(err(format!("unknown backend {other:?}"))),
    }
    .map_err(err)
}

/// The keys a space is opened with (membership supplies them).
struct Keys {
    space_id: [u8; 32],
    device_seed: [u8; 32],
    epoch_id: [u8; 32],
    epoch_secret: [u8; 32],
    signers: Vec<[u8; 32]>,
}

impl Keys {
    fn from_options(options: &JsValue) -> Result<Self, JsValue> {
        let signers = field(options, "signers")?
            .dyn_into::<Array>()
            .map_err(|_| err("options.signers: expected an array"))?
            .iter()
            .map(|v| {
                v.dyn_into::<Uint8Array>()
                    .ok()
                    .and_then(|a| <[u8; 32]>::try_from(a.to_vec()).ok())
                    .ok_or_else(|| err("options.signers: expected 32-byte keys"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Keys {
            space_id: id32(options, "spaceId")?,
            device_seed: id32(options, "deviceSeed")?,
            epoch_id: id32(options, "epochId")?,
            epoch_secret: id32(options, "epochSecret")?,
            signers,
        })
    }
}

struct Inner {
    space: Option<Space<OpendalStore>>,
    keys: Keys,
    docs: HashMap<[u8; 32], Replica>,
}

/// One space on remote storage, driven by clientful-storage's `Space`.
#[wasm_bindgen]
pub struct WebSpace {
    inner: Rc<RefCell<Inner>>,
}

/// Opens a space. `options`: `backend` (`"s3"`, `"webdav"` or `"memory"`),
/// `endpoint`, `bucket`, `region`, `accessKeyId`, `secretAccessKey` (S3),
/// `username`, `password` (WebDAV), `root`; the keys `spaceId`, `deviceSeed`,
/// `epochId`, `epochSecret` (32 bytes each) and `signers` (the members' device
/// public keys). Without `deviceStore` the device store is kept in memory.
/// Writes the storage format file if the store has none.
#[wasm_bindgen(js_name = openSpace)]
pub async fn open_space(
    options: JsValue,
    device_store: Option<DeviceStore>,
) -> Result<WebSpace, JsValue> {
    let keys = Keys::from_options(&options)?;
    let store = remote(&options)?;
    let local = match device_store {
        Some(d) => d.store,
        None => LocalStore::in_memory().map_err(err)?,
    };
    let space = Space::new(
        store,
        local,
        SpaceConfig {
            space_id: keys.space_id,
            device: SigningKey::from_seed(&keys.device_seed),
            epoch: EpochKey::new(keys.epoch_id, keys.epoch_secret),
            old_epochs: Vec::new(),
            signers: keys.signers.clone(),
            rng_seed: None,
        },
    )
    .map_err(err)?;
    space.init().await.map_err(err)?;
    Ok(WebSpace {
        inner: Rc::new(RefCell::new(Inner {
            space: Some(space),
            keys,
            docs: HashMap::new(),
        })),
    })
}

/// Runs `f` on the space taken out of `inner` (one operation at a time: a second
/// call while one runs is refused) and puts it back.
fn with_space<F, Fut>(inner: &Rc<RefCell<Inner>>, f: F) -> Promise
where
    F: FnOnce(Space<OpendalStore>) -> Fut + 'static,
    Fut: std::future::Future<Output = (Space<OpendalStore>, Result<JsValue, JsValue>)> + 'static,
{
    let inner = inner.clone();
    future_to_promise(async move {
        let space = inner
            .borrow_mut()
            .space
            .take()
            .ok_or_else(|| err("another operation on this space is running"))?;
        let (space, result) = f(space).await;
        inner.borrow_mut().space = Some(space);
        result
    })
}

#[wasm_bindgen]
impl WebSpace {
    /// Inserts `text` at the start of the Yjs text of document `docId` (32 bytes) as this device,
    /// records the resulting signed, sealed envelopes durably in the device store
    /// and returns them.
    #[wasm_bindgen(js_name = writeText)]
    pub fn write_text(&self, doc_id: &[u8], text: &str) -> Result<Array, JsValue> {
        let doc_id = <[u8; 32]>::try_from(doc_id).map_err(|_| err("docId: expected 32 bytes"))?;
        let mut inner = self.inner.borrow_mut();
        let Inner { space, keys, docs } = &mut *inner;
        let space = space
            .as_ref()
            .ok_or_else(|| err("another operation on this space is running"))?;
        let replica = match docs.entry(doc_id) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let mut rng_seed = [0u8; 32];
                getrandom::fill(&mut rng_seed).map_err(err)?;
                v.insert(Replica::new(ReplicaConfig {
                    space_id: keys.space_id,
                    doc_id,
                    device: SigningKey::from_seed(&keys.device_seed),
                    epoch: EpochKey::new(keys.epoch_id, keys.epoch_secret),
                    old_epochs: Vec::new(),
                    signers: keys.signers.clone(),
                    crdt: CrdtKind::Yjs,
                    yjs_schema: YjsSchema::default(),
                    rng_seed,
                }))
            }
        };
        insert_text(replica, 0, text).map_err(err)?;
        replica.commit().map_err(err)?;
        let envelopes: Vec<Vec<u8>> = replica.drain_outbox().into_iter().map(|(_, b)| b).collect();
        space.record(&envelopes).map_err(err)?;
        Ok(to_array(&envelopes))
    }

    /// Records envelopes (signed elsewhere) durably for upload; returns how many were new.
    pub fn record(&self, envelopes: &Array) -> Result<u32, JsValue> {
        let bytes = from_array(envelopes)?;
        let inner = self.inner.borrow();
        let space = inner
            .space
            .as_ref()
            .ok_or_else(|| err("another operation on this space is running"))?;
        u32::try_from(space.record(&bytes).map_err(err)?).map_err(err)
    }

    /// Uploads the outbox as a segment and a new head manifest; resolves to whether
    /// a segment was written.
    pub fn flush(&self) -> Promise {
        with_space(&self.inner, |mut space| async move {
            let r = space.flush().await;
            (space, r.map(|s| JsValue::from(s.is_some())).map_err(err))
        })
    }

    /// Pulls the other devices' manifests and segments; resolves to the number of
    /// new envelopes stored.
    pub fn pull(&self) -> Promise {
        with_space(&self.inner, |mut space| async move {
            let r = space.pull().await;
            #[allow(clippy::cast_precision_loss)] // counts far below 2^53
            let r = r
                .map(|rep| JsValue::from(rep.new_envelopes as f64))
                .map_err(err);
            (space, r)
        })
    }

    /// Every envelope in the device store, in the order stored.
    pub fn envelopes(&self) -> Result<Array, JsValue> {
        let inner = self.inner.borrow();
        let space = inner
            .space
            .as_ref()
            .ok_or_else(|| err("another operation on this space is running"))?;
        Ok(to_array(&space.local().all_envelopes().map_err(err)?))
    }
}
