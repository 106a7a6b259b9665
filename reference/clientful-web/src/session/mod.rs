//! The SDK (`clientful`, the same code as the native client) in a dedicated
//! Worker: [`Device`] (one device of one user, its home in OPFS, [`home`]) and
//! [`Space`] (one space: members, invites, documents, files, sync through storage,
//! live over a broker), per the contract in `notes/tasks/web-contract.md`.
//!
//! # Differences from the contract (read by the TypeScript Worker and facade)
//!
//! - **Every `Space` method that reads or changes the session returns a Promise**
//!   (`members`, `hasAccess`, `createInvite`, `removeMember`, `documents`,
//!   `newDocument`, `text`, `json`, `stateDigest`, the Yjs/Automerge binding
//!   methods, `insertText`, `files`...): a `sync` or the live loop holds the
//!   session across network waits, and a call made meanwhile waits its turn
//!   instead of failing. `id()`, `name()`, `setOnChange`, `setOnEphemeral` and
//!   `close` stay synchronous. `await` works on both, so a Worker that awaits
//!   every call is unaffected.
//! - **Storage credentials**: a browser has no environment. `Device.setVar(key,
//!   value)` sets what the storage URL's backend reads (`AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `CLIENTFUL_WEBDAV_USER`, `CLIENTFUL_WEBDAV_PASSWORD`),
//!   in memory only; call it before `createSpace`/`acceptInvite`/`openSpace`.
//!   `file://` storage does not exist in a browser (`[INVALID_ARGUMENT]`).
//! - `Device.create(dir, ...)`: `dir` is 1 to 100 of `[A-Za-z0-9_-]` (it names
//!   OPFS files: `<dir>.home.redb`, `<dir>.spaces.<space id>.redb`).
//! - `files()` is omitted: the SDK keeps no list of files (a file's reference
//!   lives in the document that uses it).
//! - `putFile(name, bytes, onProgress?)`: the SDK stores a file's media type, not
//!   its name: `name` is kept as the media type (pass `"image/jpeg"`, say). The
//!   progress callback gets `(bytesStored, total)`.
//! - `members()` items are `{ user, role, devices, settled }`: no `name` (the
//!   membership holds no display names).
//! - `documents()` items are `{ id, kind, title, envelopes }`; `title(docId)`
//!   reads one document's title.
//! - `setOnChange` events: `{ kind: "document", docId }`, `{ kind: "membership" }`,
//!   `{ kind: "preview", docId }`, `{ kind: "withholding" }`, `{ kind: "evidence" }`,
//!   `{ kind: "staleEpoch" }`, and `{ kind: "lagged" }` when events were missed
//!   (re-read everything shown).
//! - `ephemeral(data)` needs `goLive` first (`[NOT_LIVE]` otherwise); it is sent
//!   within 200 ms by the live loop. `setOnEphemeral(cb)` gets `cb(sender, data)`
//!   with `sender` the sending device's key (hex).
//!
//! - Attestations (module `attestation`): `Space.attestationNonce()`,
//!   `attest(evidence)` (passkey, SIWE, OIDC id_token with the JWKS the page
//!   fetched, did:web document) and `attestations(context)` (every record with its
//!   verdict); the user key signing them is the device's, the new one after
//!   `Device.rotateUserKey(backupPassphrase?)` (spec §5.7: close every `Space`
//!   first; resumable, its pending state in the home).
//!
//! Errors are thrown `Error`s named `ClientfulError` whose message starts with
//! the kind in brackets (`[NOT_INITIALIZED] ...`, `[ACCESS] ...`, a spec class
//! such as `[DECRYPT_FAILED] ...`), also in their `class` property
//! (`ClientError::kind`).

mod attestation;
pub mod home;

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use clientful::error::ClientError;
use clientful::live::{Live, LiveEvent};
use clientful::{Change, Client, CrdtKind, SpaceRotation, SpaceSession};
use clientful_core::membership::ops::Role;
use clientful_net::client::Event;
use clientful_net::transport::Endpoint;
use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use home::OpfsHome;

/// A JS error named `ClientfulError`: `[KIND] message`, `class` = kind.
fn js_error(kind: &str, message: &str) -> JsValue {
    let err = js_sys::Error::new(&format!("[{kind}] {message}"));
    err.set_name("ClientfulError");
    let _ = Reflect::set(&err, &"class".into(), &kind.into());
    err.into()
}

fn client_err(e: ClientError) -> JsValue {
    js_error(e.kind(), &e.to_string())
}

fn seal_err(e: home::SealError) -> JsValue {
    js_error(e.kind(), &e.to_string())
}

fn doc_err(e: crate::doc::WebDocError) -> JsValue {
    js_error(e.class(), &e.to_string())
}

fn set(o: &Object, key: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(o, &key.into(), &value.into());
}

fn kind_of(kind: &str) -> Result<CrdtKind, JsValue> {
    match kind {
        "yjs" => Ok(CrdtKind::Yjs),
        "automerge" => Ok(CrdtKind::Automerge),
        other => Err(js_error(
            "INVALID_ARGUMENT",
            &format!("kind {other:?}: expected \"yjs\" or \"automerge\""),
        )),
    }
}

fn kind_name(kind: Option<CrdtKind>) -> &'static str {
    match kind {
        Some(CrdtKind::Yjs) => "yjs",
        Some(CrdtKind::Automerge) => "automerge",
        _ => "unknown",
    }
}

/// One device of one user, its home in OPFS. See the module documentation.
#[wasm_bindgen]
pub struct Device {
    /// Shared by the device's calls in flight; `setVar` waits for none.
    client: Rc<tokio::sync::RwLock<Client>>,
}

impl Device {
    fn wrap(client: Client) -> Device {
        Device {
            client: Rc::new(tokio::sync::RwLock::new(client)),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&Client) -> T) -> Result<T, JsValue> {
        let c = self
            .client
            .try_read()
            .map_err(|_| js_error("BUSY", "the device is being changed"))?;
        Ok(f(&c))
    }

    fn space_promise<F>(&self, open: F) -> Promise
    where
        F: AsyncFnOnce(&Client) -> Result<SpaceSession, ClientError> + 'static,
    {
        let client = self.client.clone();
        future_to_promise(async move {
            let c = client.read().await;
            let s = open(&*c).await.map_err(client_err)?;
            drop(c);
            Ok(Space::start(s, client).into())
        })
    }
}

#[wasm_bindgen]
impl Device {
    /// Creates a new user with its first device in the OPFS home `dir`; fails
    /// with `[ALREADY_EXISTS]` if `dir` holds an identity.
    pub async fn create(dir: String, user_name: String) -> Result<Device, JsValue> {
        let home = OpfsHome::open(&dir).await.map_err(client_err)?;
        let client = Client::init_in(Arc::new(home), &user_name).map_err(client_err)?;
        Ok(Device::wrap(client))
    }

    /// Opens the device in the OPFS home `dir`; `[NOT_INITIALIZED]` if there is none,
    /// `[LOCKED]` if the home is sealed under a passkey (use [`Device::open_with_passkey`]).
    pub async fn open(dir: String) -> Result<Device, JsValue> {
        let home = OpfsHome::open(&dir).await.map_err(client_err)?;
        if home.is_sealed() {
            return Err(seal_err(home::SealError::Locked));
        }
        let client = Client::open_in(Arc::new(home)).map_err(client_err)?;
        Ok(Device::wrap(client))
    }

    /// Creates a new user with its first device in the OPFS home `dir`, the home's
    /// secrets sealed under a passkey (spec §14.12): `prf` is the passkey's 32-byte
    /// PRF output for the input [`passkey_prf_salt`](crate::attest::passkey_prf_salt).
    /// A later [`Device::open`] is `[LOCKED]`; [`Device::open_with_passkey`] with
    /// the same passkey's PRF output opens it.
    #[wasm_bindgen(js_name = createWithPasskey)]
    pub async fn create_with_passkey(
        dir: String,
        user_name: String,
        prf: Vec<u8>,
    ) -> Result<Device, JsValue> {
        let mut home = OpfsHome::open(&dir).await.map_err(client_err)?;
        home.seal_new(&prf).map_err(seal_err)?;
        let client = Client::init_in(Arc::new(home), &user_name).map_err(client_err)?;
        Ok(Device::wrap(client))
    }

    /// Opens a device whose home is sealed under a passkey, with that passkey's PRF
    /// output; `[LOCKED]` if it does not unlock the home (another credential).
    #[wasm_bindgen(js_name = openWithPasskey)]
    pub async fn open_with_passkey(dir: String, prf: Vec<u8>) -> Result<Device, JsValue> {
        let mut home = OpfsHome::open(&dir).await.map_err(client_err)?;
        home.unlock(&prf).map_err(seal_err)?;
        let client = Client::open_in(Arc::new(home)).map_err(client_err)?;
        Ok(Device::wrap(client))
    }

    /// Restores a user from a sealed backup (`cfbackup1-...`) as a new device in `dir`.
    #[wasm_bindgen(js_name = restoreSealed)]
    pub async fn restore_sealed(
        dir: String,
        backup: String,
        passphrase: String,
    ) -> Result<Device, JsValue> {
        let home = OpfsHome::open(&dir).await.map_err(client_err)?;
        let client =
            Client::restore_sealed_in(Arc::new(home), &backup, &passphrase).map_err(client_err)?;
        Ok(Device::wrap(client))
    }

    /// The user's id (public key, hex).
    #[wasm_bindgen(js_name = userId)]
    pub fn user_id(&self) -> Result<String, JsValue> {
        self.with(|c| hex::encode(c.profile().user_key()))
    }

    /// This device's id (hex).
    #[wasm_bindgen(js_name = deviceId)]
    pub fn device_id(&self) -> Result<String, JsValue> {
        self.with(|c| c.profile().device_id().map(hex::encode))?
            .map_err(client_err)
    }

    /// The user's display name.
    #[wasm_bindgen(js_name = userName)]
    pub fn user_name(&self) -> Result<String, JsValue> {
        self.with(|c| c.profile().name.clone())
    }

    /// The user backup sealed under `passphrase` (a `cfbackup1-` code).
    #[wasm_bindgen(js_name = backupSealed)]
    pub fn backup_sealed(&self, passphrase: &str) -> Result<String, JsValue> {
        self.with(|c| c.profile().backup_sealed(passphrase))?
            .map_err(client_err)
    }

    /// This device's request to be added to the user's spaces (a `cfdevice1-`
    /// code: its certificate): show it on a device already in the space, which
    /// answers with a link code for [`Device::join_device`] (MEM-11, MEM-24).
    #[wasm_bindgen(js_name = deviceRequest)]
    pub fn device_request(&self) -> Result<String, JsValue> {
        self.with(|c| c.profile().device_request())?
            .map_err(client_err)
    }

    /// Sets a setting the storage backends read (`AWS_ACCESS_KEY_ID`, ...), in
    /// memory only (a browser has no environment).
    #[wasm_bindgen(js_name = setVar)]
    pub fn set_var(&self, key: &str, value: &str) -> Result<(), JsValue> {
        self.client
            .try_write()
            .map_err(|_| js_error("BUSY", "the device is opening a space"))?
            .set_var(key, value);
        Ok(())
    }

    /// The spaces on this device: `[{ id, name, storageUrl }]`.
    #[wasm_bindgen(
        unchecked_return_type = "Array<{ id: string; name: string; storageUrl: string }>"
    )]
    pub fn spaces(&self) -> Result<Array, JsValue> {
        let all = self.with(Client::spaces)?.map_err(client_err)?;
        Ok(all
            .into_iter()
            .map(|s| {
                let o = Object::new();
                set(&o, "id", hex::encode(s.space_id));
                set(&o, "name", s.name);
                set(&o, "storageUrl", s.storage);
                JsValue::from(o)
            })
            .collect())
    }

    /// Creates a space on the storage at `storage_url` (`s3://...` or
    /// `webdav://...`); this device is its first admin. Resolves to a `Space`.
    #[wasm_bindgen(js_name = createSpace, unchecked_return_type = "Promise<Space>")]
    pub fn create_space(&self, name: String, storage_url: String) -> Promise {
        self.space_promise(async move |c| c.create_space(&name, &storage_url).await)
    }

    /// Redeems an invite code or link; the space can be read once an admin's
    /// device has synced and welcomed this one (`sync` again). Resolves to a `Space`.
    #[wasm_bindgen(js_name = acceptInvite, unchecked_return_type = "Promise<Space>")]
    pub fn accept_invite(&self, code: String, name: String, storage_url: String) -> Promise {
        self.space_promise(async move |c| c.accept_invite(&code, &name, &storage_url).await)
    }

    /// Joins a space with a device link code (`cflink1-`) that a device of this
    /// user (or an admin) made from this device's request (MEM-24); the space can be
    /// read once that device has synced and welcomed this one (`sync` again).
    /// Resolves to a `Space`.
    #[wasm_bindgen(js_name = joinDevice, unchecked_return_type = "Promise<Space>")]
    pub fn join_device(&self, code: String, name: String, storage_url: String) -> Promise {
        self.space_promise(async move |c| c.join_device(&code, &name, &storage_url).await)
    }

    /// Rotates the user key (spec §5.7, MEM-32; the SDK's `Client::rotate_user_key`):
    /// a new user key, the continuity statement signed by the old key and the new
    /// one, and a `ROTATE_USER` in every space of this device (each synced before
    /// and after), then the new key in the home. **Close (`free`) every `Space` of
    /// this device first**: each space's store is reopened here (one OPFS handle
    /// per file). The rotation in progress is kept in the home (`rotation/pending.json`,
    /// sealed like `identity.json` in a passkey-sealed home): if it fails (storage
    /// unreachable, the tab closed), calling it again resumes it with the same new
    /// key. With `backupPassphrase`, the report carries the new key's sealed backup
    /// (`cfbackup1-`) to replace the old one. Resolves to `{ oldUserKey, newUserKey,
    /// spaces: [{ id, name, outcome, operation? }], backup? }`, `outcome` one of
    /// `rotated`, `alreadyRotated`, `notAMember`.
    #[wasm_bindgen(
        js_name = rotateUserKey,
        unchecked_return_type = "Promise<{ oldUserKey: string; newUserKey: string; spaces: Array<{ id: string; name: string; outcome: string; operation?: string }>; backup?: string }>"
    )]
    pub fn rotate_user_key(&self, backup_passphrase: Option<String>) -> Promise {
        let client = self.client.clone();
        future_to_promise(async move {
            let mut c = client.write().await;
            let r = c
                .rotate_user_key(backup_passphrase.as_deref())
                .await
                .map_err(client_err)?;
            drop(c);
            let o = Object::new();
            set(&o, "oldUserKey", hex::encode(r.old_user_key));
            set(&o, "newUserKey", hex::encode(r.new_user_key));
            let spaces = Array::new();
            for sp in r.spaces {
                let x = Object::new();
                set(&x, "id", hex::encode(sp.space_id));
                set(&x, "name", sp.name);
                let outcome = match sp.outcome {
                    SpaceRotation::Rotated(op) => {
                        set(&x, "operation", hex::encode(op));
                        "rotated"
                    }
                    SpaceRotation::AlreadyRotated => "alreadyRotated",
                    SpaceRotation::NotAMember => "notAMember",
                    _ => "other",
                };
                set(&x, "outcome", outcome);
                spaces.push(&x);
            }
            set(&o, "spaces", spaces);
            if let Some(b) = r.backup {
                set(&o, "backup", b);
            }
            Ok(o.into())
        })
    }

    /// Opens a space on this device by id prefix or name. Resolves to a `Space`.
    #[wasm_bindgen(js_name = openSpace, unchecked_return_type = "Promise<Space>")]
    pub fn open_space(&self, selector: String) -> Promise {
        self.space_promise(async move |c| c.open_space(&selector).await)
    }
}

/// Takes an edit made in a bound JS document as this device's own: `apply` checks it
/// against the replica (DOC-3, DOC-4) inside one SDK edit, which seals and stores it;
/// a refusal is the document layer's error.
fn local_edit(
    s: &mut SpaceSession,
    doc: &str,
    apply: impl FnOnce(&mut clientful_doc::replica::Replica) -> Result<(), crate::doc::WebDocError>,
) -> Result<JsValue, JsValue> {
    let id = doc_id(s, doc)?;
    let mut refused = None;
    s.edit(&id, |d| {
        if let Err(e) = apply(d.replica_mut()) {
            refused = Some(doc_err(e));
        }
        Ok(())
    })
    .map_err(client_err)?;
    match refused {
        Some(e) => Err(e),
        None => Ok(JsValue::UNDEFINED),
    }
}

/// What a `Space` shares with its background tasks (change events, live loop).
struct Shared {
    session: tokio::sync::Mutex<SpaceSession>,
    /// The device's client: its user key signs attestations (and is the new one
    /// after `Device.rotateUserKey`).
    client: Rc<tokio::sync::RwLock<Client>>,
    on_change: RefCell<Option<Function>>,
    on_ephemeral: RefCell<Option<Function>>,
    /// Ephemeral messages waiting for the live loop to send them.
    outgoing: RefCell<Vec<Vec<u8>>>,
    /// Set when the live loop should stop (`close`, a new `goLive`).
    live_stop: RefCell<Option<Rc<Cell<bool>>>>,
}

/// One space opened on this device. See the module documentation.
#[wasm_bindgen]
pub struct Space {
    shared: Rc<Shared>,
    id: [u8; 32],
    name: String,
}

impl Drop for Space {
    fn drop(&mut self) {
        if let Some(stop) = self.shared.live_stop.borrow_mut().take() {
            stop.set(true);
        }
    }
}

fn change_object(c: &Change) -> Object {
    let o = Object::new();
    let (kind, doc) = match c {
        Change::Document(d) => ("document", Some(d)),
        Change::Membership => ("membership", None),
        Change::Preview { doc, .. } => ("preview", Some(doc)),
        Change::Withholding { .. } => ("withholding", None),
        Change::Evidence(_) => ("evidence", None),
        Change::StaleEpoch { .. } => ("staleEpoch", None),
        _ => ("other", None),
    };
    set(&o, "kind", kind);
    if let Some(d) = doc {
        set(&o, "docId", hex::encode(d));
    }
    o
}

/// Pushes the session's change events to the JS callback, until the space is gone.
async fn push_changes(shared: Weak<Shared>, mut rx: tokio::sync::broadcast::Receiver<Change>) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let ev = match rx.recv().await {
            Ok(c) => change_object(&c),
            Err(RecvError::Lagged(_)) => {
                let o = Object::new();
                set(&o, "kind", "lagged");
                o
            }
            Err(RecvError::Closed) => return,
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let cb = shared.on_change.borrow().clone();
        if let Some(cb) = cb {
            let _ = cb.call1(&JsValue::NULL, &ev);
        }
    }
}

impl Space {
    fn start(session: SpaceSession, client: Rc<tokio::sync::RwLock<Client>>) -> Space {
        let id = *session.space_id();
        let name = session.name().to_owned();
        let rx = session.subscribe();
        let shared = Rc::new(Shared {
            session: tokio::sync::Mutex::new(session),
            client,
            on_change: RefCell::new(None),
            on_ephemeral: RefCell::new(None),
            outgoing: RefCell::new(Vec::new()),
            live_stop: RefCell::new(None),
        });
        wasm_bindgen_futures::spawn_local(push_changes(Rc::downgrade(&shared), rx));
        Space { shared, id, name }
    }

    /// Runs `f` on the session once it is free; resolves to its result.
    fn run<F>(&self, f: F) -> Promise
    where
        F: AsyncFnOnce(&mut SpaceSession) -> Result<JsValue, JsValue> + 'static,
    {
        let shared = self.shared.clone();
        future_to_promise(async move {
            let mut s = shared.session.lock().await;
            f(&mut *s).await
        })
    }
}

fn doc_id(s: &SpaceSession, id: &str) -> Result<[u8; 32], JsValue> {
    s.find_document(id).map_err(client_err)
}

#[wasm_bindgen]
impl Space {
    /// The space id (hex).
    pub fn id(&self) -> String {
        hex::encode(self.id)
    }

    /// The local name.
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// The current members: `[{ user, role, devices, settled }]`.
    #[wasm_bindgen(
        unchecked_return_type = "Promise<Array<{ user: string; role: string; devices: number; settled: boolean }>>"
    )]
    pub fn members(&self) -> Promise {
        self.run(async |s| {
            Ok(s.members()
                .into_iter()
                .map(|m| {
                    let o = Object::new();
                    set(&o, "user", hex::encode(m.user));
                    set(&o, "settled", m.settled);
                    set(&o, "role", format!("{:?}", m.role).to_lowercase());
                    #[allow(clippy::cast_precision_loss)]
                    set(&o, "devices", m.devices.len() as f64);
                    JsValue::from(o)
                })
                .collect::<Array>()
                .into())
        })
    }

    /// Whether this device holds the current epoch's key (false after this user
    /// was removed).
    #[wasm_bindgen(js_name = hasAccess, unchecked_return_type = "Promise<boolean>")]
    pub fn has_access(&self) -> Promise {
        self.run(async |s| Ok(s.has_access().into()))
    }

    /// An invite code for a new member with `role` (`admin`, `writer`, `reader`).
    #[wasm_bindgen(js_name = createInvite, unchecked_return_type = "Promise<string>")]
    pub fn create_invite(&self, role: String, single_use: bool) -> Promise {
        self.run(async move |s| {
            let role = match role.as_str() {
                "admin" => Role::Admin,
                "writer" => Role::Writer,
                "reader" => Role::Reader,
                other => {
                    return Err(js_error(
                        "INVALID_ARGUMENT",
                        &format!("role {other:?}: expected admin, writer or reader"),
                    ));
                }
            };
            Ok(s.create_invite(role, single_use)
                .map_err(client_err)?
                .into())
        })
    }

    /// Removes the member whose user id starts with `user_prefix` (a key rotation
    /// follows; `sync` publishes it).
    #[wasm_bindgen(js_name = removeMember, unchecked_return_type = "Promise<void>")]
    pub fn remove_member(&self, user_prefix: String) -> Promise {
        self.run(async move |s| {
            let user = s.find_member(&user_prefix).map_err(client_err)?;
            s.remove_member(&user).map_err(client_err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Adds a device from its request (`cfdevice1-`): another device of this user,
    /// or, for an admin, a device a member's user key certified (a user back from a
    /// recovery, MEM-11). Resolves to the link code the new device joins with.
    #[wasm_bindgen(js_name = addDevice, unchecked_return_type = "Promise<string>")]
    pub fn add_device(&self, request: String) -> Promise {
        self.run(async move |s| Ok(s.add_device(&request).map_err(client_err)?.into()))
    }

    /// Everything this device can read, as plain JSON text (what the CLI's `export`
    /// writes): `{ space, documents: [{ id, kind, title, json }], members: [{ user,
    /// role, devices }] }`. Plain text: the app decides where it goes.
    #[wasm_bindgen(js_name = exportJson, unchecked_return_type = "Promise<string>")]
    pub fn export_json(&self) -> Promise {
        self.run(async |s| {
            let mut documents = Vec::new();
            for d in s.documents().map_err(client_err)? {
                let Ok(doc) = s.document(&d.id) else {
                    continue;
                };
                documents.push(serde_json::json!({
                    "id": hex::encode(d.id),
                    "kind": kind_name(d.crdt),
                    "title": doc.title(),
                    "json": doc.json(),
                }));
            }
            let members: Vec<serde_json::Value> = s
                .members()
                .into_iter()
                .map(|m| {
                    serde_json::json!({
                        "user": hex::encode(m.user),
                        "role": format!("{:?}", m.role).to_lowercase(),
                        "devices": m.devices.iter().map(hex::encode).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let out = serde_json::json!({
                "space": hex::encode(s.space_id()),
                "documents": documents,
                "members": members,
            });
            Ok(out.to_string().into())
        })
    }

    /// The documents this device holds: `[{ id, kind, title, envelopes }]` (the
    /// title read from each document; empty for one this device cannot open).
    #[wasm_bindgen(
        unchecked_return_type = "Promise<Array<{ id: string; kind: string; title: string; envelopes: number }>>"
    )]
    pub fn documents(&self) -> Promise {
        self.run(async |s| {
            let out = Array::new();
            for d in s.documents().map_err(client_err)? {
                let title = s.document(&d.id).map(|doc| doc.title()).unwrap_or_default();
                let o = Object::new();
                set(&o, "id", hex::encode(d.id));
                set(&o, "kind", kind_name(d.crdt));
                set(&o, "title", title);
                #[allow(clippy::cast_precision_loss)]
                set(&o, "envelopes", d.envelopes as f64);
                out.push(&o);
            }
            Ok(out.into())
        })
    }

    /// Creates a document (`yjs` or `automerge`) titled `title`; resolves to its id.
    #[wasm_bindgen(js_name = newDocument, unchecked_return_type = "Promise<string>")]
    pub fn new_document(&self, kind: String, title: String) -> Promise {
        self.run(async move |s| {
            let kind = kind_of(&kind)?;
            let id = s.new_document(kind, &title).map_err(client_err)?;
            Ok(hex::encode(id).into())
        })
    }

    /// The document's text (Yjs root `text`, Automerge root key `text`).
    #[wasm_bindgen(unchecked_return_type = "Promise<string>")]
    pub fn text(&self, doc: String) -> Promise {
        self.run(async move |s| {
            let id = doc_id(s, &doc)?;
            Ok(s.document(&id).map_err(client_err)?.text().into())
        })
    }

    /// The document's title.
    #[wasm_bindgen(unchecked_return_type = "Promise<string>")]
    pub fn title(&self, doc: String) -> Promise {
        self.run(async move |s| {
            let id = doc_id(s, &doc)?;
            Ok(s.document(&id).map_err(client_err)?.title().into())
        })
    }

    /// The document as canonical JSON text.
    #[wasm_bindgen(unchecked_return_type = "Promise<string>")]
    pub fn json(&self, doc: String) -> Promise {
        self.run(async move |s| {
            let id = doc_id(s, &doc)?;
            Ok(s.document(&id)
                .map_err(client_err)?
                .json()
                .to_string()
                .into())
        })
    }

    /// The document's `StateDigest` (hex): equal on every replica with the same state.
    #[wasm_bindgen(js_name = stateDigest, unchecked_return_type = "Promise<string>")]
    pub fn state_digest(&self, doc: String) -> Promise {
        self.run(async move |s| {
            let id = doc_id(s, &doc)?;
            Ok(s.document(&id).map_err(client_err)?.state_digest().into())
        })
    }

    /// Inserts `text` at UTF-16 offset `index` of the document's text, as one
    /// stored edit (a `sync` or the live loop sends it).
    #[wasm_bindgen(js_name = insertText, unchecked_return_type = "Promise<void>")]
    pub fn insert_text(&self, doc: String, index: u32, text: String) -> Promise {
        self.run(async move |s| {
            let id = doc_id(s, &doc)?;
            s.edit(&id, |d| d.insert_text(index, &text))
                .map_err(client_err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The Yjs client id a JS `Y.Doc` bound to this document must use.
    #[wasm_bindgen(js_name = yjsClientId, unchecked_return_type = "Promise<number>")]
    pub fn yjs_client_id(&self, doc: String) -> Promise {
        self.run(async move |s| {
            let id = doc_id(s, &doc)?;
            let d = s.document(&id).map_err(client_err)?;
            let y = d
                .yjs()
                .ok_or_else(|| js_error("UNSUPPORTED", "not a Yjs document"))?;
            // Client ids are below 2^53 (binding::MAX_YJS_CLIENT_ID): exact in an f64.
            #[allow(clippy::cast_precision_loss)]
            Ok((y.client_id() as f64).into())
        })
    }

    /// Takes a raw Yjs v1 update made by the bound JS `Y.Doc` as this device's
    /// edit: checked (DOC-3, DOC-4), sealed and stored.
    #[wasm_bindgen(js_name = applyLocalYjsUpdate, unchecked_return_type = "Promise<void>")]
    pub fn apply_local_yjs_update(&self, doc: String, update: Vec<u8>) -> Promise {
        self.run(async move |s| local_edit(s, &doc, |r| crate::doc::apply_local_yjs(r, &update)))
    }

    /// What the document holds beyond `state_vector` (a JS `Y.encodeStateVector`),
    /// as one Yjs v1 update for the bound JS `Y.Doc`.
    #[wasm_bindgen(js_name = yjsDiff, unchecked_return_type = "Promise<Uint8Array>")]
    pub fn yjs_diff(&self, doc: String, state_vector: Vec<u8>) -> Promise {
        self.run(async move |s| {
            use yrs::updates::decoder::Decode;
            use yrs::{ReadTxn, StateVector, Transact};
            let sv = StateVector::decode_v1(&state_vector)
                .map_err(|_| js_error("INVALID_ARGUMENT", "state vector does not decode"))?;
            let id = doc_id(s, &doc)?;
            let d = s.document(&id).map_err(client_err)?;
            let y = d
                .yjs()
                .ok_or_else(|| js_error("UNSUPPORTED", "not a Yjs document"))?;
            let u = y.doc().transact().encode_state_as_update_v1(&sv);
            Ok(Uint8Array::from(u.as_slice()).into())
        })
    }

    /// The Automerge actor id (hex) a JS Automerge document bound to this one
    /// must use (`Automerge.init({ actor })`).
    #[wasm_bindgen(js_name = automergeActor, unchecked_return_type = "Promise<string>")]
    pub fn automerge_actor(&self, doc: String) -> Promise {
        self.run(async move |s| {
            let id = doc_id(s, &doc)?;
            let d = s.document(&id).map_err(client_err)?;
            #[cfg(feature = "automerge")]
            {
                let a = d
                    .automerge()
                    .ok_or_else(|| js_error("UNSUPPORTED", "not an Automerge document"))?;
                Ok(hex::encode(a.actor()).into())
            }
            #[cfg(not(feature = "automerge"))]
            {
                let _ = d;
                Err(js_error("UNSUPPORTED", "this build has no Automerge"))
            }
        })
    }

    /// Takes Automerge changes made by the bound JS document (actor =
    /// `automergeActor`) as this device's edit: checked, sealed, stored.
    #[wasm_bindgen(js_name = applyLocalAutomergeChanges, unchecked_return_type = "Promise<void>")]
    pub fn apply_local_automerge_changes(&self, doc: String, changes: Array) -> Promise {
        self.run(async move |s| {
            let mut joined = Vec::new();
            for c in changes.iter() {
                let c: Uint8Array = c
                    .dyn_into()
                    .map_err(|_| js_error("INVALID_ARGUMENT", "expected Uint8Array changes"))?;
                joined.extend(c.to_vec());
            }
            local_edit(s, &doc, |r| crate::doc::apply_local_automerge(r, &joined))
        })
    }

    /// The Automerge changes of the document not covered by `heads` (hex change
    /// hashes), for the bound JS document (`Automerge.applyChanges`).
    #[wasm_bindgen(js_name = automergeChangesSince, unchecked_return_type = "Promise<Uint8Array[]>")]
    pub fn automerge_changes_since(&self, doc: String, heads: Vec<String>) -> Promise {
        self.run(async move |s| {
            let id = doc_id(s, &doc)?;
            let d = s.document(&id).map_err(client_err)?;
            let changes =
                crate::doc::automerge_changes_since(d.replica_mut(), &heads).map_err(doc_err)?;
            Ok(changes
                .iter()
                .map(|c| JsValue::from(Uint8Array::from(c.as_slice())))
                .collect::<Array>()
                .into())
        })
    }

    /// Stores a file (chunked, encrypted under the current epoch); resolves to
    /// its reference (hex). `on_progress(done, total)` sees the bytes stored.
    #[wasm_bindgen(js_name = putFile, unchecked_return_type = "Promise<string>")]
    pub fn put_file(&self, name: String, bytes: Vec<u8>, on_progress: Option<Function>) -> Promise {
        self.run(async move |s| {
            #[allow(clippy::cast_precision_loss)]
            let total = bytes.len() as f64;
            let r = s
                .put_bytes(&bytes, &name, |done| {
                    if let Some(cb) = &on_progress {
                        #[allow(clippy::cast_precision_loss)]
                        let _ = cb.call2(&JsValue::NULL, &(done as f64).into(), &total.into());
                    }
                })
                .await
                .map_err(client_err)?;
            Ok(r.into())
        })
    }

    /// Fetches the file `reference`; resolves to its bytes.
    #[wasm_bindgen(js_name = getFile, unchecked_return_type = "Promise<Uint8Array>")]
    pub fn get_file(&self, reference: String) -> Promise {
        self.run(async move |s| {
            let (bytes, _) = s
                .get_bytes(&reference, |_, _| {})
                .await
                .map_err(client_err)?;
            Ok(Uint8Array::from(bytes.as_slice()).into())
        })
    }

    /// Syncs through storage: uploads what this device wrote, downloads and
    /// verifies what others wrote. Resolves to `{ uploaded, downloaded }`.
    #[wasm_bindgen(unchecked_return_type = "Promise<{ uploaded: number; downloaded: number }>")]
    pub fn sync(&self) -> Promise {
        self.run(async |s| {
            let r = s.sync().await.map_err(client_err)?;
            let o = Object::new();
            #[allow(clippy::cast_precision_loss)]
            {
                set(&o, "uploaded", r.uploaded as f64);
                set(&o, "downloaded", r.received as f64);
            }
            Ok(o.into())
        })
    }

    /// Keeps the space in sync live over the broker at `broker_url` (`ws://` or
    /// `wss://.../v1/ws`) and with storage every 30 s, in the background, until
    /// `close`. Resolves once the room is being joined.
    #[wasm_bindgen(js_name = goLive, unchecked_return_type = "Promise<void>")]
    pub fn go_live(&self, broker_url: String) -> Promise {
        let shared = self.shared.clone();
        future_to_promise(async move {
            let endpoint = Endpoint::WebSocket(broker_url);
            let live = {
                let s = shared.session.lock().await;
                Live::join(&s, endpoint.clone()).map_err(client_err)?
            };
            let stop = Rc::new(Cell::new(false));
            if let Some(old) = shared.live_stop.replace(Some(stop.clone())) {
                old.set(true);
            }
            wasm_bindgen_futures::spawn_local(live_loop(
                Rc::downgrade(&shared),
                live,
                endpoint,
                stop,
            ));
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Calls `cb({ kind, docId? })` for every change other devices made (pushed as
    /// it arrives through `sync` or live). `null` removes it.
    #[wasm_bindgen(js_name = setOnChange)]
    pub fn set_on_change(&self, cb: Option<Function>) {
        self.shared.on_change.replace(cb);
    }

    /// Sends `data` (presence: a y-protocols awareness update, ...) as an
    /// ephemeral message signed by this device and sealed for the room (BRK-14),
    /// to the members online now; never stored. Needs `goLive`.
    pub fn ephemeral(&self, data: Vec<u8>) -> Result<(), JsValue> {
        if self.shared.live_stop.borrow().is_none() {
            return Err(js_error("NOT_LIVE", "ephemeral messages need goLive first"));
        }
        self.shared.outgoing.borrow_mut().push(data);
        Ok(())
    }

    /// Calls `cb(sender, data)` for every ephemeral message a member's device sent
    /// (opened, signature and freshness checked, BRK-15); `sender` is its device key
    /// (hex). `null` removes it.
    #[wasm_bindgen(js_name = setOnEphemeral)]
    pub fn set_on_ephemeral(&self, cb: Option<Function>) {
        self.shared.on_ephemeral.replace(cb);
    }

    /// Stops the live loop and the change events. The session's store closes
    /// when this object is freed (`free()`).
    pub fn close(&self) {
        if let Some(stop) = self.shared.live_stop.borrow_mut().take() {
            stop.set(true);
        }
        self.shared.on_change.replace(None);
        self.shared.on_ephemeral.replace(None);
    }
}

/// Storage sync interval of the live loop.
const LIVE_SYNC_MS: u64 = 30_000;

/// The live loop: waits for broker events without the session, then takes it to
/// apply them, publish what was written and sync with storage now and then.
async fn live_loop(shared: Weak<Shared>, mut live: Live, endpoint: Endpoint, stop: Rc<Cell<bool>>) {
    let clock = clientful_net::platform::Clock::new();
    let mut next_sync = LIVE_SYNC_MS;
    loop {
        if stop.get() {
            break;
        }
        let Some(sh) = shared.upgrade() else {
            break;
        };
        {
            let mut s = sh.session.lock().await;
            if clock.now_ms() >= next_sync {
                let _ = s.sync().await;
                next_sync = clock.now_ms().saturating_add(LIVE_SYNC_MS);
            }
            if s.poll_timeout()
                .is_some_and(|t| clientful_net::platform::unix_ms() >= t)
            {
                let _ = s.handle_timeout();
            }
            if live.publish(&mut s).await.is_err() {
                break;
            }
            let outgoing = std::mem::take(&mut *sh.outgoing.borrow_mut());
            for data in outgoing {
                // A message the room refuses (too large) is dropped, as offline.
                let _ = live.ephemeral(&s, &data).await;
            }
            if s.membership().current_epoch().map(|k| *k.id()) != Some(*live.epoch()) {
                match Live::join(&s, endpoint.clone()) {
                    Ok(l) => {
                        let old = std::mem::replace(&mut live, l);
                        old.close().await;
                    }
                    Err(_) => break,
                }
            }
        }
        drop(sh);
        let batch: Vec<Event> = match live.next_events(Duration::from_millis(200)).await {
            Ok(b) => b,
            Err(_) => break,
        };
        if batch.is_empty() {
            continue;
        }
        let Some(sh) = shared.upgrade() else {
            break;
        };
        let mut s = sh.session.lock().await;
        let Ok(events) = live.handle(&mut s, batch).await else {
            break;
        };
        drop(s);
        let cb = sh.on_ephemeral.borrow().clone();
        for ev in events {
            if let (LiveEvent::Ephemeral { sender, body }, Some(cb)) = (ev, &cb) {
                let _ = cb.call2(
                    &JsValue::NULL,
                    &hex::encode(sender).into(),
                    &Uint8Array::from(body.as_slice()).into(),
                );
            }
        }
    }
    live.close().await;
}
