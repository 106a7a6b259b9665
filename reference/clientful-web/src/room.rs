//! The live room in the browser (`Room`), and a document replica synced over it
//! (`DocRoom`): `clientful-net`'s room driver (the same code the
//! native SDK runs: session, keepalive, reconnection with backoff, the outbox, resume
//! from the last cursor) over the page's `WebSocket`, exported as `Room`.
//!
//! Everything sent is sealed here before it reaches the driver: room messages under the
//! room message key (BRK-12), ephemeral messages signed by the device and sealed under
//! the ephemeral key (BRK-14); received ones are opened and, for ephemeral ones, checked
//! (BRK-15) before JavaScript sees them. The broker sees only ciphertext.
//!
//! Events are plain objects `{ kind, resumed?, data?, sealed?, sender?, error? }` with
//! `kind` one of `joined`, `deliver`, `ephemeral`, `rejected` (a payload that did not
//! open or check), `disconnected`, `error`, `refused`. They are pushed to the callback
//! given to `setOnEvent(cb)` as they happen (no polling); until one is set they are
//! queued, handed to the callback when it is set, and `takeEvents()` still takes them
//! (kept for callers that poll).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use clientful_core::room::{EphemeralCounter, EphemeralReceiver, RoomCredentials};
use clientful_core::{EpochKey, SigningKey};
use clientful_net::client::{ClientOptions, Event, RoomClient};
use clientful_net::platform::unix_ms;
use clientful_net::transport::Endpoint;
use js_sys::{Array, Object, Reflect, Uint8Array};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use wasm_bindgen::prelude::*;

fn hex32(what: &str, s: &str) -> Result<[u8; 32], JsError> {
    let v = hex::decode(s).map_err(|_| JsError::new(&format!("{what}: not hex")))?;
    <[u8; 32]>::try_from(v.as_slice()).map_err(|_| JsError::new(&format!("{what}: not 32 bytes")))
}

/// The public key (hex) of the device signing key with this seed (hex, 32 bytes).
#[wasm_bindgen(js_name = devicePublicKey)]
pub fn device_public_key(seed_hex: &str) -> Result<String, JsError> {
    Ok(hex::encode(
        SigningKey::from_seed(&hex32("seed", seed_hex)?).public_bytes(),
    ))
}

struct State {
    room: Arc<RoomCredentials>,
    members: Vec<[u8; 32]>,
    receiver: EphemeralReceiver,
    events: VecDeque<Object>,
    /// `setOnEvent`'s callback: events go there instead of the queue.
    on_event: Option<js_sys::Function>,
    joins: u32,
}

/// One room kept joined at a broker.
#[wasm_bindgen]
pub struct Room {
    client: RoomClient,
    sealer: Sealer,
    state: Rc<RefCell<State>>,
}

fn set(o: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(o, &JsValue::from_str(key), value);
}

fn event(kind: &str) -> Object {
    let o = Object::new();
    set(&o, "kind", &JsValue::from_str(kind));
    o
}

impl State {
    /// The event as the object JavaScript sees.
    fn event_object(&mut self, ev: Event) -> Object {
        match ev {
            Event::Joined { resumed } => {
                self.joins += 1;
                let o = event("joined");
                set(&o, "resumed", &JsValue::from_bool(resumed));
                o
            }
            Event::Deliver(sealed) => match self.room.open_message(&sealed) {
                Ok(plain) => {
                    let o = event("deliver");
                    set(&o, "data", &Uint8Array::from(plain.as_slice()));
                    set(&o, "sealed", &Uint8Array::from(sealed.as_slice()));
                    o
                }
                Err(e) => rejected(&e.to_string()),
            },
            Event::Ephemeral(sealed) => {
                match self
                    .receiver
                    .open(&self.room, &self.members, &sealed, unix_ms())
                {
                    Ok(e) => {
                        let o = event("ephemeral");
                        set(&o, "data", &Uint8Array::from(e.body.as_slice()));
                        set(&o, "sender", &JsValue::from_str(&hex::encode(e.sender)));
                        o
                    }
                    Err(e) => rejected(&e.to_string()),
                }
            }
            Event::Disconnected => event("disconnected"),
            Event::Error(code) => {
                let o = event("error");
                set(&o, "error", &JsValue::from_str(&code.to_string()));
                o
            }
            _ => event("refused"),
        }
    }
}

/// Hands one event to the callback, or queues it if none is set. The state is not
/// borrowed while the callback runs, so it may call back into the room.
fn dispatch(state: &RefCell<State>, ev: Event) {
    let (o, cb) = {
        let mut s = state.borrow_mut();
        let o = s.event_object(ev);
        match s.on_event.clone() {
            Some(cb) => (o, cb),
            None => {
                s.events.push_back(o);
                return;
            }
        }
    };
    // An exception thrown by the callback is the page's; the room goes on.
    let _ = cb.call1(&JsValue::NULL, &o);
}

/// What this device seals for a room: messages (BRK-12) and ephemeral messages
/// signed by its key with a fresh counter (BRK-14). Shared by `Room` and `DocRoom`.
struct Sealer {
    room: Arc<RoomCredentials>,
    device: SigningKey,
    counter: EphemeralCounter,
    rng: ChaCha20Rng,
}

impl Sealer {
    fn new(room: Arc<RoomCredentials>, device: SigningKey, seed: [u8; 32]) -> Self {
        Sealer {
            room,
            device,
            counter: EphemeralCounter::new(),
            rng: ChaCha20Rng::from_seed(seed),
        }
    }

    /// `data` sealed as a room message.
    fn message(&mut self, data: &[u8]) -> Result<Vec<u8>, JsError> {
        self.room
            .seal_message(&mut self.rng, data)
            .map_err(|e| JsError::new(&e.to_string()))
    }

    /// `data` as an ephemeral message, signed and sealed now.
    fn ephemeral(&mut self, data: &[u8]) -> Result<Vec<u8>, JsError> {
        let now = unix_ms();
        self.room
            .seal_ephemeral(
                &mut self.rng,
                &self.device,
                self.counter.next(now),
                now,
                data,
            )
            .map_err(|e| JsError::new(&e.to_string()))
    }
}

fn rejected(why: &str) -> Object {
    let o = event("rejected");
    set(&o, "error", &JsValue::from_str(why));
    o
}

#[wasm_bindgen]
impl Room {
    /// Joins the room of `(space_id, epoch)` at `url` (`ws://…/v1/ws` or `wss://…`)
    /// as the device with signing-key seed `device_seed`, accepting ephemeral messages
    /// from `members` (public keys) and itself. All hex. Reconnects on its own until
    /// `close()`.
    pub fn connect(
        url: &str,
        space_id: &str,
        epoch_id: &str,
        epoch_secret: &str,
        device_seed: &str,
        members: Vec<String>,
    ) -> Result<Room, JsError> {
        let epoch = EpochKey::new(
            hex32("epoch id", epoch_id)?,
            hex32("epoch secret", epoch_secret)?,
        );
        let room = Arc::new(
            RoomCredentials::derive(&hex32("space id", space_id)?, &epoch)
                .map_err(|e| JsError::new(&e.to_string()))?,
        );
        let device = SigningKey::from_seed(&hex32("device seed", device_seed)?);
        let mut keys = members
            .iter()
            .map(|m| hex32("member key", m))
            .collect::<Result<Vec<_>, _>>()?;
        keys.push(device.public_bytes());
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| JsError::new(&e.to_string()))?;
        let (client, mut events) = RoomClient::spawn(
            Endpoint::WebSocket(url.to_owned()),
            room.clone(),
            ClientOptions::default(),
        );
        let state = Rc::new(RefCell::new(State {
            room: room.clone(),
            members: keys,
            receiver: EphemeralReceiver::new(),
            events: VecDeque::new(),
            on_event: None,
            joins: 0,
        }));
        let pump = state.clone();
        wasm_bindgen_futures::spawn_local(async move {
            while let Some(ev) = events.recv().await {
                dispatch(&pump, ev);
            }
        });
        Ok(Room {
            client,
            sealer: Sealer::new(room, device, seed),
            state,
        })
    }

    /// Publishes `data` sealed as a room message. It waits in the outbox while the
    /// broker is unreachable and is sent again after a re-join until acknowledged.
    pub fn publish(&mut self, data: &[u8]) -> Result<(), JsError> {
        let sealed = self.sealer.message(data)?;
        let client = self.client.clone();
        wasm_bindgen_futures::spawn_local(async move { client.publish(sealed).await });
        Ok(())
    }

    /// Sends `data` as a signed, sealed ephemeral message; dropped if not joined.
    pub fn ephemeral(&mut self, data: &[u8]) -> Result<(), JsError> {
        let sealed = self.sealer.ephemeral(data)?;
        let client = self.client.clone();
        wasm_bindgen_futures::spawn_local(async move { client.ephemeral(sealed).await });
        Ok(())
    }

    /// Pushes every event to `cb(event)` as it happens, starting with those queued
    /// so far; `setOnEvent(undefined)` queues them again for `takeEvents()`.
    #[wasm_bindgen(js_name = setOnEvent)]
    pub fn set_on_event(&self, cb: Option<js_sys::Function>) {
        let queued: Vec<Object> = {
            let mut s = self.state.borrow_mut();
            s.on_event = cb.clone();
            if cb.is_some() {
                s.events.drain(..).collect()
            } else {
                Vec::new()
            }
        };
        if let Some(cb) = cb {
            for o in queued {
                let _ = cb.call1(&JsValue::NULL, &o);
            }
        }
    }

    /// The events queued since the last call, oldest first (none while a
    /// `setOnEvent` callback takes them).
    #[wasm_bindgen(js_name = takeEvents)]
    pub fn take_events(&self) -> Array {
        self.state.borrow_mut().events.drain(..).collect()
    }

    /// Times the room was joined (1 after the first join, +1 per reconnect).
    pub fn joins(&self) -> u32 {
        self.state.borrow().joins
    }

    /// This device's public key (hex).
    #[wasm_bindgen(js_name = devicePublicKey)]
    pub fn device_key(&self) -> String {
        hex::encode(self.sealer.device.public_bytes())
    }

    /// Leaves the room and stops reconnecting.
    pub fn close(&self) {
        let client = self.client.clone();
        wasm_bindgen_futures::spawn_local(async move { client.close().await });
    }
}

/// A document replica kept in sync over a room: `clientful-net`'s `DocClient` (sealed
/// ENVELOPE messages for new edits, the sync exchange of spec §8.7 on every (re)join) in
/// the browser.
#[wasm_bindgen]
pub struct DocRoom {
    client: clientful_net::DocClient,
    /// Presence and cursors: ephemeral messages signed by this device and sealed
    /// for the room (BRK-14), opened with the signers' keys (BRK-15).
    sealer: Sealer,
    members: Vec<[u8; 32]>,
    receiver: EphemeralReceiver,
}

#[wasm_bindgen]
impl DocRoom {
    /// Joins the room of `(space_id, epoch)` at `url` with a replica of document
    /// `doc_id` (`crdt`: `"yjs"` or `"automerge"`) as the device with seed
    /// `device_seed`; `signers` are the member device keys in device-index order
    /// (DOC-19), this device's among them. All hex.
    #[allow(clippy::too_many_arguments)]
    pub fn connect(
        url: &str,
        space_id: &str,
        doc_id: &str,
        epoch_id: &str,
        epoch_secret: &str,
        device_seed: &str,
        signers: Vec<String>,
        crdt: &str,
    ) -> Result<DocRoom, JsError> {
        use clientful_doc::crdt::YjsSchema;
        use clientful_doc::replica::{CrdtKind, Replica, ReplicaConfig};
        let crdt = match crdt {
            "yjs" => CrdtKind::Yjs,
            "automerge" => CrdtKind::Automerge,
            other => return Err(JsError::new(&format!("unknown CRDT {other}"))),
        };
        let space_id = hex32("space id", space_id)?;
        let epoch = EpochKey::new(
            hex32("epoch id", epoch_id)?,
            hex32("epoch secret", epoch_secret)?,
        );
        let room = Arc::new(
            RoomCredentials::derive(&space_id, &epoch).map_err(|e| JsError::new(&e.to_string()))?,
        );
        // Three independent seeds: the replica's nonces, the sync sessions, the
        // ephemeral messages' nonces.
        let mut rng_seed = [0u8; 32];
        let mut peer_seed = [0u8; 32];
        let mut ephemeral_seed = [0u8; 32];
        for seed in [&mut rng_seed, &mut peer_seed, &mut ephemeral_seed] {
            getrandom::fill(seed).map_err(|e| JsError::new(&e.to_string()))?;
        }
        let device_seed = hex32("device seed", device_seed)?;
        let device = SigningKey::from_seed(&device_seed);
        let members = signers
            .iter()
            .map(|s| hex32("signer", s))
            .collect::<Result<Vec<_>, _>>()?;
        // An Automerge document in a Yjs-only build: a typed error, up front.
        let replica = Replica::try_new(ReplicaConfig {
            space_id,
            doc_id: hex32("doc id", doc_id)?,
            device: SigningKey::from_seed(&device_seed),
            epoch,
            old_epochs: Vec::new(),
            signers: members.clone(),
            crdt,
            yjs_schema: YjsSchema::default(),
            rng_seed,
        })
        .map_err(|e| JsError::new(&format!("[UNSUPPORTED] {e}")))?;
        let peer = clientful_net::docsync::DocPeer::new(replica, room.clone(), peer_seed);
        let client = clientful_net::DocClient::spawn(
            Endpoint::WebSocket(url.to_owned()),
            peer,
            ClientOptions::default(),
        );
        Ok(DocRoom {
            client,
            sealer: Sealer::new(room, device, ephemeral_seed),
            members,
            receiver: EphemeralReceiver::new(),
        })
    }

    /// Sends `data` (for example a y-protocols awareness update) as an ephemeral
    /// message signed by this device and sealed for the room (BRK-14): relayed to the
    /// members online now, never stored, dropped while the room is not joined.
    pub fn ephemeral(&mut self, data: &[u8]) -> Result<(), JsError> {
        let sealed = self.sealer.ephemeral(data)?;
        let client = self.client.clone();
        wasm_bindgen_futures::spawn_local(async move { client.send_ephemeral(sealed).await });
        Ok(())
    }

    /// The ephemeral messages received since the last call that open under the
    /// room's key, are signed by one of the signers and are fresh (BRK-15), oldest
    /// first: `[{data, sender}]` (`sender` the device key, hex). Others are dropped.
    #[wasm_bindgen(js_name = takeEphemeral)]
    pub fn take_ephemeral(&mut self) -> Array {
        let now = unix_ms();
        let out = Array::new();
        for sealed in self.client.take_ephemeral() {
            if let Ok(e) = self
                .receiver
                .open(&self.sealer.room, &self.members, &sealed, now)
            {
                let o = Object::new();
                set(&o, "data", &Uint8Array::from(e.body.as_slice()));
                set(&o, "sender", &JsValue::from_str(&hex::encode(e.sender)));
                out.push(&o);
            }
        }
        out
    }

    /// Inserts `text` at UTF-16 offset `index` of the document's text, commits and
    /// publishes the new envelope (kept in the outbox while the broker is away).
    #[wasm_bindgen(js_name = insertText)]
    pub fn insert_text(&self, index: u32, text: String) -> js_sys::Promise {
        let client = self.client.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            client
                .edit(|r| clientful_doc::text::insert_text(r, index, &text))
                .await
                .map_err(|e| JsValue::from(JsError::new(&e.to_string())))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The Yjs client id a JS `Y.Doc` bound to this replica must use (`ydoc.clientID`),
    /// so that its updates are this device's (DOC-3, DOC-19).
    #[wasm_bindgen(js_name = yjsClientId)]
    pub fn yjs_client_id(&self) -> Result<f64, JsValue> {
        let id = self
            .client
            .with(|p| p.replica().yjs().map(|y| y.client_id()))
            .flatten()
            .ok_or_else(|| JsValue::from(crate::doc::WebDocError::WrongCrdt("yjs")))?;
        // Client ids are below 2^53 (binding::MAX_YJS_CLIENT_ID): exact in an f64.
        #[allow(clippy::cast_precision_loss)]
        Ok(id as f64)
    }

    /// Takes a raw Yjs v1 update made by the bound JS `Y.Doc` as this device's edit
    /// (checked as `DocReplica.applyLocalYjsUpdate` checks it), commits it and
    /// publishes the envelope (kept in the outbox while the broker is away). Rejects
    /// with a `ClientfulError` naming the class when the update is refused.
    #[wasm_bindgen(js_name = applyLocalYjsUpdate)]
    pub fn apply_local_yjs_update(&self, update: Vec<u8>) -> js_sys::Promise {
        let client = self.client.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            client
                .with(|p| crate::doc::apply_local_yjs(p.replica(), &update))
                .ok_or_else(|| JsValue::from(JsError::new("the room's replica is gone")))?
                .map_err(JsValue::from)?;
            client
                .edit(|_| Ok::<(), std::convert::Infallible>(()))
                .await
                .map_err(|e| JsValue::from(JsError::new(&e.to_string())))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// What the replica holds beyond `state_vector` (a JS `Y.encodeStateVector`), as
    /// one Yjs v1 update for the bound JS `Y.Doc`; applying it twice changes nothing.
    #[wasm_bindgen(js_name = yjsDiff)]
    pub fn yjs_diff(&self, state_vector: &[u8]) -> Result<Vec<u8>, JsValue> {
        use yrs::updates::decoder::Decode;
        use yrs::{ReadTxn, StateVector, Transact};
        let sv = StateVector::decode_v1(state_vector)
            .map_err(|_| JsValue::from(JsError::new("state vector does not decode")))?;
        self.client
            .with(|p| {
                p.replica()
                    .yjs()
                    .map(|y| y.doc().transact().encode_state_as_update_v1(&sv))
            })
            .flatten()
            .ok_or_else(|| JsValue::from(crate::doc::WebDocError::WrongCrdt("yjs")))
    }

    /// Resolves when the room has delivered something to the replica, an ephemeral
    /// message arrived, or the room was joined, since the last resolution: the moment
    /// to ask for `yjsDiff` and `takeEphemeral` again.
    pub fn changed(&self) -> js_sys::Promise {
        let client = self.client.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            client.changed().await;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The document as canonical JSON.
    pub fn materialize(&self) -> Option<String> {
        self.client
            .with(|p| p.replica().materialize().to_canonical_string())
    }

    /// The state digest (hex), equal on replicas that hold the same state.
    pub fn digest(&self) -> Option<String> {
        self.client
            .with(|p| hex::encode(p.replica().state_digest()))
    }

    /// Times the room was joined.
    pub fn joins(&self) -> u32 {
        u32::try_from(self.client.joins()).unwrap_or(u32::MAX)
    }

    /// Leaves the room.
    pub fn close(&self) {
        let client = self.client.clone();
        wasm_bindgen_futures::spawn_local(async move { client.close().await });
    }
}
