//! The broker protocol in the harness (spec §10, §12.13, CONF-71..CONF-75): the
//! reference's answers to `broker_server_run` and `broker_client_run`, and the
//! broker saboteurs at the boundary where their bug would show (CONF-83).
//!
//! Both answers drive `clientful_broker_proto`'s sans-IO state machines with
//! the request's events and times, and nothing else: the broker
//! ([`Broker`], alone, its own numbering) for `broker_server_run`, and the
//! client's [`ClientConnection`] (a new one per `connect`, resuming where the
//! last one stopped) for `broker_client_run`. No socket, file or clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use clientful_broker_proto::client::{ClientSession, Resume};
use clientful_broker_proto::frame;
use clientful_broker_proto::{Action, Broker, ClientConnection, Frame, Limits, Output};
use clientful_core::keys::{EpochKey, SigningKey};
use clientful_core::room::{RoomCredentials, room_id_of};
use clientful_core::{labels, suite};

use crate::pb::{self, broker_client_event::Event as CE, broker_server_event::Event as SE};
use crate::saboteur::Saboteur;

fn arr32(b: &[u8], what: &str) -> Result<[u8; 32], String> {
    b.try_into().map_err(|_| format!("{what} must be 32 bytes"))
}

/// The broker limits of a request: the given ones, the reference's defaults for
/// the rest (and for a field left 0).
pub fn limits_of(l: Option<&pb::BrokerLimits>) -> Limits {
    let d = Limits::default();
    let Some(l) = l else { return d };
    let or = |v: u32, dflt: usize| if v == 0 { dflt } else { v as usize };
    let or64 = |v: u64, dflt: u64| if v == 0 { dflt } else { v };
    Limits {
        max_frame: or(l.max_frame, d.max_frame),
        max_rooms: or(l.max_rooms, d.max_rooms),
        rate_per_sec: if l.rate_per_sec == 0 {
            d.rate_per_sec
        } else {
            l.rate_per_sec
        },
        burst: if l.burst == 0 { d.burst } else { l.burst },
        max_strikes: if l.max_strikes == 0 {
            d.max_strikes
        } else {
            l.max_strikes
        },
        backlog: or(l.backlog, d.backlog),
        idle_timeout_ms: or64(l.idle_timeout_ms, d.idle_timeout_ms),
        hello_timeout_ms: or64(l.hello_timeout_ms, d.hello_timeout_ms),
        max_ephemeral: or(l.max_ephemeral, d.max_ephemeral),
        ..d
    }
}

/// The `broker-skips-join-proof` saboteur's disguise: every room id is swapped
/// for the id of an alias room whose key the saboteur holds, so that it can
/// sign every JOIN itself and the real broker accepts it (the proof the client
/// sent is never looked at), while clients see only their own room ids.
#[derive(Default)]
struct Aliases {
    /// Alias room id -> the client's room id.
    back: BTreeMap<[u8; 32], [u8; 32]>,
    /// Connection -> its challenge.
    challenges: BTreeMap<u64, [u8; 32]>,
}

impl Aliases {
    fn key(room: &[u8; 32]) -> SigningKey {
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&suite::sha256(&[b"alias".as_slice(), room].concat()));
        SigningKey::from_seed(&seed)
    }

    fn alias(&mut self, room: &[u8; 32]) -> Result<([u8; 32], SigningKey), String> {
        let key = Self::key(room);
        let id = room_id_of(&key.public_bytes()).map_err(|e| e.to_string())?;
        self.back.insert(id, *room);
        Ok((id, key))
    }

    /// The frame the real broker is fed instead of `bytes` from `conn`.
    fn inbound(&mut self, conn: u64, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let Ok(f) = frame::decode(bytes, usize::MAX) else {
            return Ok(bytes.to_vec());
        };
        let swap =
            |this: &mut Self, room: &[u8]| -> Result<Option<([u8; 32], SigningKey)>, String> {
                match <[u8; 32]>::try_from(room) {
                    Ok(r) => this.alias(&r).map(Some),
                    Err(_) => Ok(None),
                }
            };
        let f = match f {
            Frame::Join {
                request,
                room_id,
                cursor,
                room_key,
                proof,
            } => match (swap(self, &room_id)?, self.challenges.get(&conn)) {
                (Some((id, key)), Some(ch)) => {
                    let content = [ch.as_slice(), &id].concat();
                    let proof = key
                        .sign_with_label(labels::SIG_ROOM_JOIN, &content)
                        .map_err(|e| e.to_string())?;
                    Frame::Join {
                        request,
                        room_id: id.to_vec(),
                        room_key: key.public_bytes().to_vec(),
                        proof: proof.to_vec(),
                        cursor,
                    }
                }
                _ => Frame::Join {
                    request,
                    room_id,
                    room_key,
                    proof,
                    cursor,
                },
            },
            Frame::Publish {
                request,
                room_id,
                payload,
            } => Frame::Publish {
                request,
                room_id: swap(self, &room_id)?.map_or(room_id, |(id, _)| id.to_vec()),
                payload,
            },
            Frame::Ephemeral { room_id, payload } => Frame::Ephemeral {
                room_id: swap(self, &room_id)?.map_or(room_id, |(id, _)| id.to_vec()),
                payload,
            },
            Frame::Leave { room_id } => Frame::Leave {
                room_id: swap(self, &room_id)?.map_or(room_id, |(id, _)| id.to_vec()),
            },
            _ => return Ok(bytes.to_vec()),
        };
        Ok(f.encode().to_vec())
    }

    /// The frame a client sees instead of `bytes` from the real broker.
    fn outbound(&self, bytes: &[u8]) -> Vec<u8> {
        let Ok(mut raw) = frame::decode_raw(bytes, usize::MAX) else {
            return bytes.to_vec();
        };
        if let Ok(id) = <[u8; 32]>::try_from(raw.room_id.as_slice())
            && let Some(orig) = self.back.get(&id)
        {
            raw.room_id = orig.to_vec();
            return frame::encode(&raw).to_vec();
        }
        bytes.to_vec()
    }
}

/// What the broker saboteurs remember across events.
#[derive(Default)]
struct ServerSabotage {
    aliases: Aliases,
    /// Connections that received a JOINED and are still open.
    joined: BTreeSet<u64>,
}

/// `broker_server_run` (CONF-72): the reference broker alone, fed the events.
pub fn server_run(
    req: &pb::BrokerServerRun,
    sab: Option<Saboteur>,
) -> Result<pb::BrokerServerRan, String> {
    let stream: [u8; 16] = req
        .stream
        .as_slice()
        .try_into()
        .map_err(|_| "stream must be 16 bytes".to_string())?;
    let mut broker = Broker::new(limits_of(req.limits.as_ref()), stream);
    let mut sabotage = ServerSabotage::default();
    let mut steps = Vec::with_capacity(req.events.len());
    for ev in &req.events {
        let now = ev.at_ms;
        let mut actions = Vec::new();
        broker.handle_timeout(now, &mut actions);
        match &ev.event {
            Some(SE::Open(ch)) => {
                let ch = arr32(ch, "challenge")?;
                sabotage.aliases.challenges.insert(ev.conn, ch);
                broker.open(ev.conn, ch, now);
            }
            Some(SE::Frame(bytes)) => {
                let mut bytes = bytes.clone();
                if sab == Some(Saboteur::BrokerSkipsJoinProof) {
                    bytes = sabotage.aliases.inbound(ev.conn, &bytes)?;
                }
                if sab == Some(Saboteur::BrokerStoresEphemeral)
                    && let Ok(Frame::Ephemeral { room_id, payload }) =
                        frame::decode(&bytes, usize::MAX)
                {
                    // The bug: an ephemeral payload is numbered, kept in the
                    // backlog and replayed like a PUBLISH (BRK-16 ignored).
                    bytes = Frame::Publish {
                        request: 0,
                        room_id,
                        payload,
                    }
                    .encode()
                    .to_vec();
                }
                broker.frame(ev.conn, &bytes, false, now, &mut actions);
            }
            Some(SE::Close(_)) => broker.close(ev.conn, &mut actions),
            Some(SE::Tick(_)) => {}
            None => return Err("a broker server event without an event".into()),
        }
        let mut step = pb::BrokerServerStep::default();
        for a in actions {
            match a {
                Action::Send { conn, frame, .. } => {
                    let mut bytes = frame.to_vec();
                    if sab == Some(Saboteur::BrokerSkipsJoinProof) {
                        bytes = sabotage.aliases.outbound(&bytes);
                    }
                    if let Ok(Frame::Joined { .. }) = frame::decode(&bytes, usize::MAX) {
                        sabotage.joined.insert(conn);
                    }
                    step.sends.push(pb::BrokerSend { conn, frame: bytes });
                }
                Action::Close { conn, code } => {
                    sabotage.joined.remove(&conn);
                    step.closes.push(pb::BrokerClose {
                        conn,
                        code: code.code(),
                    });
                }
                // Alone, the broker has no bus: nothing to subscribe to, publish
                // on or replay from.
                Action::Subscribe { .. }
                | Action::Unsubscribe(_)
                | Action::BusPublish { .. }
                | Action::Replay { .. } => {}
            }
        }
        if matches!(ev.event, Some(SE::Close(_))) {
            sabotage.joined.remove(&ev.conn);
        }
        if sab == Some(Saboteur::BrokerLeaksAcrossRooms)
            && let Some(SE::Frame(b)) = &ev.event
            && let Ok(Frame::Publish { .. }) = frame::decode(b, usize::MAX)
        {
            leak(&mut step, ev.conn, &sabotage.joined);
        }
        steps.push(step);
    }
    Ok(pb::BrokerServerRan { steps })
}

/// The `broker-leaks-across-rooms` saboteur: fans a DELIVER out to every joined
/// connection but the publisher, whatever room it joined (BRK-9 ignored).
fn leak(step: &mut pb::BrokerServerStep, publisher: u64, joined: &BTreeSet<u64>) {
    let delivers: Vec<Vec<u8>> = step
        .sends
        .iter()
        .filter(|s| {
            matches!(
                frame::decode(&s.frame, usize::MAX),
                Ok(Frame::Deliver { .. })
            )
        })
        .map(|s| s.frame.clone())
        .collect();
    for d in delivers {
        for c in joined {
            let has = step.sends.iter().any(|s| s.conn == *c && s.frame == d);
            if *c != publisher && !has {
                step.sends.push(pb::BrokerSend {
                    conn: *c,
                    frame: d.clone(),
                });
            }
        }
    }
}

/// Moves the session's outputs into the step: frames to `sent`, the rest to
/// `outputs`, in order.
fn flush(outs: &mut Vec<Output>, step: &mut pb::BrokerClientStep) {
    use pb::BrokerClientOutputKind as K;
    for o in outs.drain(..) {
        let mut out = pb::BrokerClientOutput::default();
        match o {
            Output::Send(b) => {
                step.sent.push(b);
                continue;
            }
            Output::Joined { resumed } => {
                out.kind = K::Joined as i32;
                out.resumed = resumed;
            }
            Output::Deliver { seq, payload } => {
                out.kind = K::Delivered as i32;
                out.seq = seq;
                out.payload = payload;
            }
            Output::Ephemeral(payload) => {
                out.kind = K::Ephemeral as i32;
                out.payload = payload;
            }
            Output::Acked(request) => {
                out.kind = K::Acked as i32;
                out.request = request;
            }
            Output::Error { code, request } => {
                out.kind = K::Error as i32;
                out.code = code.code();
                out.request = request;
            }
            Output::Refused { version } => {
                out.kind = K::Refused as i32;
                out.code = version;
            }
        }
        step.outputs.push(out);
    }
}

fn kind_only(k: pb::BrokerClientOutputKind) -> pb::BrokerClientOutput {
    pb::BrokerClientOutput {
        kind: k as i32,
        ..Default::default()
    }
}

/// `broker_client_run` (CONF-73): the reference client, one
/// [`ClientConnection`] per `connect`, each resuming from the last.
pub fn client_run(
    req: &pb::BrokerClientRun,
    sab: Option<Saboteur>,
) -> Result<pb::BrokerClientRan, String> {
    let space = arr32(&req.space_id, "space_id")?;
    let epoch = EpochKey::new(
        arr32(&req.epoch_id, "epoch_id")?,
        arr32(&req.epoch_secret, "epoch_secret")?,
    );
    let room = Arc::new(RoomCredentials::derive(&space, &epoch).map_err(|e| e.to_string())?);
    let mut resume = Resume::default();
    let mut conn: Option<ClientConnection> = None;
    let mut steps = Vec::with_capacity(req.events.len());
    for ev in &req.events {
        let now = ev.at_ms;
        let mut outs = Vec::new();
        let mut step = pb::BrokerClientStep::default();
        if let Some(c) = conn.as_mut()
            && c.poll_timeout() <= now
            && c.handle_timeout(now, &mut outs).is_err()
        {
            resume = c.session().resume().clone();
            conn = None;
            step.outputs
                .push(kind_only(pb::BrokerClientOutputKind::Lost));
        }
        flush(&mut outs, &mut step);
        match &ev.event {
            Some(CE::Connect(_)) => {
                if let Some(c) = conn.take() {
                    resume = c.session().resume().clone();
                }
                let from = if sab == Some(Saboteur::ClientResumesFromZero) {
                    // The bug: every session starts from nothing (BRK-19 ignored).
                    Resume::default()
                } else {
                    resume.clone()
                };
                let mut c = ClientConnection::new(
                    ClientSession::new(room.clone(), from),
                    req.keepalive_ms,
                    now,
                );
                step.sent.push(c.start());
                conn = Some(c);
            }
            Some(CE::Frame(bytes)) => {
                if let Some(c) = conn.as_mut() {
                    let bytes = sabotage_inbound(sab, bytes, room.room_id());
                    if c.handle(&bytes, now, &mut outs).is_err() {
                        resume = c.session().resume().clone();
                        conn = None;
                        outs.clear();
                        step.outputs
                            .push(kind_only(pb::BrokerClientOutputKind::Failed));
                    }
                }
            }
            Some(CE::Tick(_)) => {}
            Some(CE::Publish(p)) => {
                if let Some(c) = conn.as_ref() {
                    step.sent.push(c.session().publish(p.request, &p.payload));
                }
            }
            Some(CE::Ephemeral(p)) => {
                if let Some(c) = conn.as_ref() {
                    step.sent.push(c.session().ephemeral(p));
                }
            }
            None => return Err("a broker client event without an event".into()),
        }
        flush(&mut outs, &mut step);
        steps.push(step);
    }
    Ok(pb::BrokerClientRan { steps })
}

/// The client saboteurs, applied to a frame from the broker before the
/// reference client sees it.
fn sabotage_inbound(sab: Option<Saboteur>, bytes: &[u8], own: &[u8; 32]) -> Vec<u8> {
    let Ok(mut raw) = frame::decode_raw(bytes, usize::MAX) else {
        return bytes.to_vec();
    };
    match sab {
        Some(Saboteur::ClientSignsWrongChallenge) if raw.kind == frame::kind::WELCOME => {
            // The bug: the proof is signed over a challenge of its own making,
            // not the broker's (BRK-6).
            raw.nonce = suite::sha256(&raw.nonce).to_vec();
        }
        Some(Saboteur::ClientAcceptsOtherRoom) if raw.room_id.len() == 32 => {
            // The bug: the room id of a frame from the broker is not looked at.
            raw.room_id = own.to_vec();
        }
        _ => return bytes.to_vec(),
    }
    frame::encode(&raw).to_vec()
}
