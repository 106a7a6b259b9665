//! Broker scenarios (spec §12.13, CONF-71..CONF-82): the runner plays the
//! clients of a broker implementation (`broker/server`) and the broker of a
//! client implementation (`broker/client`). From keys, challenges and payloads
//! generated afresh from the run's seed it builds each session (join proofs
//! good and bad, rooms, resume cursors, limits, floods, ephemeral payloads,
//! keepalive), asks the implementation to run it, and compares its answer,
//! step by step, with the reference's answer to the same request. A client's
//! JOIN is also checked on its own: its room id is the one of BRK-5 and its
//! proof verifies over the challenge the runner sent (BRK-6, BRK-7), failures
//! named by their error class. Expectations never come from `test-vectors/`.

use std::collections::BTreeMap;

use clientful_broker_proto::frame::{self, BROKER_PROTOCOL_VERSION, ErrorCode, Frame};
use clientful_core::keys::{EpochKey, SigningKey};
use clientful_core::room::{RoomCredentials, room_id_of, verify_join};
use clientful_core::{error::class_name, labels, suite};

use crate::adapter::{Adapter, HarnessError};
use crate::pb::{
    self, broker_client_event::Event as CE, broker_server_event::Event as SE, request::Command,
    response::Result as R,
};

/// Why a scenario did not pass.
#[derive(Debug)]
pub enum BrokerFailure {
    /// The implementation's answer differs from the reference's.
    Failed(String),
    /// The implementation answered `unsupported`.
    Unsupported(String),
    /// The harness itself failed (transport, or the runner's own construction).
    Harness(String),
}

type Res<T> = Result<T, BrokerFailure>;

/// The capability of the broker scenarios that play clients.
pub const SERVER: &str = "broker/server";
/// The capability of the broker scenarios that play the broker.
pub const CLIENT: &str = "broker/client";

fn hx(b: &[u8]) -> String {
    hex::encode(b.get(..4).unwrap_or(b))
}

/// A room of the fixture: its epoch and its credentials.
pub struct Room {
    epoch: EpochKey,
    creds: RoomCredentials,
}

impl Room {
    fn id(&self) -> [u8; 32] {
        *self.creds.room_id()
    }
}

/// Everything the scenarios are built from, generated from the run seed.
pub struct Fixture {
    seed: u64,
    space_id: [u8; 32],
    /// The room of the space's current epoch (the client's room).
    x: Room,
    /// The room of another epoch of the same space.
    y: Room,
    stream: [u8; 16],
    other_stream: [u8; 16],
}

fn seed_bytes(seed: u64, tag: &[u8]) -> [u8; 32] {
    suite::sha256(&[b"broker!".as_slice(), &seed.to_be_bytes(), tag].concat())
}

impl Fixture {
    /// Builds the fixture for the run seed `seed`.
    pub fn new(seed: u64) -> Result<Fixture, String> {
        let space_id = seed_bytes(seed, b"space");
        let room = |i: u8| -> Result<Room, String> {
            let epoch = EpochKey::new(seed_bytes(seed, &[b'e', i]), seed_bytes(seed, &[b's', i]));
            let creds = RoomCredentials::derive(&space_id, &epoch).map_err(|e| e.to_string())?;
            Ok(Room { epoch, creds })
        };
        let s16 = |t: &[u8]| {
            let mut s = [0u8; 16];
            s.copy_from_slice(seed_bytes(seed, t).get(..16).unwrap_or(&[0; 16]));
            s
        };
        Ok(Fixture {
            seed,
            space_id,
            x: room(1)?,
            y: room(2)?,
            stream: s16(b"stream"),
            other_stream: s16(b"other stream"),
        })
    }

    /// The join challenge the runner gives connection `conn`.
    fn challenge(&self, conn: u64) -> [u8; 32] {
        seed_bytes(
            self.seed,
            &[b"challenge".as_slice(), &conn.to_be_bytes()].concat(),
        )
    }

    /// An opaque payload (the broker never looks inside, BRK-10).
    fn payload(&self, i: u8, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut n = 0u32;
        while out.len() < len {
            out.extend_from_slice(&seed_bytes(
                self.seed,
                &[b"payload".as_slice(), &[i], &n.to_be_bytes()].concat(),
            ));
            n += 1;
        }
        out.truncate(len);
        out
    }

    fn client_run(
        &self,
        keepalive_ms: u64,
        events: Vec<pb::BrokerClientEvent>,
    ) -> pb::BrokerClientRun {
        pb::BrokerClientRun {
            space_id: self.space_id.to_vec(),
            epoch_id: self.x.epoch.id().to_vec(),
            epoch_secret: self.x.epoch.secret().to_vec(),
            keepalive_ms,
            events,
        }
    }
}

fn enc(f: Frame) -> Vec<u8> {
    f.encode().to_vec()
}

/// The limits of the server scenarios: small enough to reach.
fn limits() -> pb::BrokerLimits {
    pb::BrokerLimits {
        max_frame: 4096,
        max_rooms: 4,
        rate_per_sec: 100,
        burst: 50,
        max_strikes: 10,
        backlog: 16,
        idle_timeout_ms: 60_000,
        hello_timeout_ms: 10_000,
        max_ephemeral: 512,
    }
}

/// Builds the events of a server session.
struct Script<'a> {
    fx: &'a Fixture,
    events: Vec<pb::BrokerServerEvent>,
}

impl<'a> Script<'a> {
    fn new(fx: &'a Fixture) -> Self {
        Script {
            fx,
            events: Vec::new(),
        }
    }
    fn ev(&mut self, at_ms: u64, conn: u64, e: SE) -> usize {
        self.events.push(pb::BrokerServerEvent {
            at_ms,
            conn,
            event: Some(e),
        });
        self.events.len() - 1
    }
    fn open(&mut self, t: u64, conn: u64) -> usize {
        let ch = self.fx.challenge(conn).to_vec();
        self.ev(t, conn, SE::Open(ch))
    }
    fn frame(&mut self, t: u64, conn: u64, f: Vec<u8>) -> usize {
        self.ev(t, conn, SE::Frame(f))
    }
    fn hello(&mut self, t: u64, conn: u64) -> usize {
        self.frame(
            t,
            conn,
            enc(Frame::Hello {
                version: BROKER_PROTOCOL_VERSION,
            }),
        )
    }
    /// Opens `conn` and says HELLO.
    fn connect(&mut self, t: u64, conn: u64) -> usize {
        self.open(t, conn);
        self.hello(t, conn)
    }
    fn join_with(&mut self, t: u64, conn: u64, room: &Room, cursor: u64, request: u32) -> usize {
        let proof = room
            .creds
            .join_proof(&self.fx.challenge(conn))
            .map(|p| p.to_vec())
            .unwrap_or_default();
        self.frame(
            t,
            conn,
            enc(Frame::Join {
                request,
                room_id: room.id().to_vec(),
                room_key: room.creds.room_public_key().to_vec(),
                proof,
                cursor,
            }),
        )
    }
    fn join(&mut self, t: u64, conn: u64, room: &Room) -> usize {
        self.join_with(t, conn, room, 0, 1)
    }
    fn publish(&mut self, t: u64, conn: u64, room: &Room, request: u32, payload: Vec<u8>) -> usize {
        self.frame(
            t,
            conn,
            enc(Frame::Publish {
                request,
                room_id: room.id().to_vec(),
                payload,
            }),
        )
    }
    fn ephemeral(&mut self, t: u64, conn: u64, room: &Room, payload: Vec<u8>) -> usize {
        self.frame(
            t,
            conn,
            enc(Frame::Ephemeral {
                room_id: room.id().to_vec(),
                payload,
            }),
        )
    }
    fn tick(&mut self, t: u64) -> usize {
        self.ev(t, 0, SE::Tick(true))
    }
    fn run(self) -> pb::BrokerServerRun {
        pb::BrokerServerRun {
            limits: Some(limits()),
            stream: self.fx.stream.to_vec(),
            events: self.events,
        }
    }
}

/// Builds the events of a client session.
#[derive(Default)]
struct ClientScript {
    events: Vec<pb::BrokerClientEvent>,
}

impl ClientScript {
    fn ev(&mut self, at_ms: u64, e: CE) -> usize {
        self.events.push(pb::BrokerClientEvent {
            at_ms,
            event: Some(e),
        });
        self.events.len() - 1
    }
    fn connect(&mut self, t: u64) -> usize {
        self.ev(t, CE::Connect(true))
    }
    fn frame(&mut self, t: u64, f: Frame) -> usize {
        self.ev(t, CE::Frame(enc(f)))
    }
    fn welcome(&mut self, t: u64, nonce: [u8; 32]) -> usize {
        self.frame(
            t,
            Frame::Welcome {
                version: BROKER_PROTOCOL_VERSION,
                nonce: nonce.to_vec(),
                max_frame: 1_049_600,
                max_rooms: 64,
                rate: 200,
            },
        )
    }
    fn joined(&mut self, t: u64, room: &[u8; 32], cursor: u64, stream: &[u8; 16]) -> usize {
        self.frame(
            t,
            Frame::Joined {
                request: 1,
                room_id: room.to_vec(),
                cursor,
                stream: stream.to_vec(),
            },
        )
    }
    fn deliver(&mut self, t: u64, room: &[u8; 32], seq: u64, payload: Vec<u8>) -> usize {
        self.frame(
            t,
            Frame::Deliver {
                room_id: room.to_vec(),
                cursor: seq,
                payload,
            },
        )
    }
    fn tick(&mut self, t: u64) -> usize {
        self.ev(t, CE::Tick(true))
    }
}

/// The reference's answer shows the scenario's point, or says what it lacks.
type ServerIntent = Box<dyn Fn(&pb::BrokerServerRan) -> Result<(), String>>;
type ClientIntent = Box<dyn Fn(&pb::BrokerClientRan) -> Result<(), String>>;

enum Check {
    Server(pb::BrokerServerRun, ServerIntent),
    Client(pb::BrokerClientRun, ClientIntent),
}

/// One broker scenario: its name (test id `scenario/broker/<name>`), the spec
/// rules it checks, and the session it runs.
pub struct Scenario {
    /// Test name, without the `scenario/broker/` prefix.
    pub name: &'static str,
    /// Requirement ids.
    pub refs: &'static str,
    check: Check,
}

impl Scenario {
    /// The capability the scenario needs: `broker/server` or `broker/client`.
    pub fn capability(&self) -> &'static str {
        match self.check {
            Check::Server(..) => SERVER,
            Check::Client(..) => CLIENT,
        }
    }

    /// The request the scenario sends.
    pub fn request(&self) -> Command {
        match &self.check {
            Check::Server(req, _) => Command::BrokerServerRun(req.clone()),
            Check::Client(req, _) => Command::BrokerClientRun(req.clone()),
        }
    }
}

/// The frames step `step` sends to `conn`, decoded.
fn to(ran: &pb::BrokerServerRan, step: usize, conn: u64) -> Vec<Frame> {
    ran.steps
        .get(step)
        .map(|s| {
            s.sends
                .iter()
                .filter(|x| x.conn == conn)
                .filter_map(|x| frame::decode(&x.frame, usize::MAX).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether step `step` closes `conn`, and with which code.
fn closed(ran: &pb::BrokerServerRan, step: usize, conn: u64) -> Option<u32> {
    ran.steps
        .get(step)
        .and_then(|s| s.closes.iter().find(|c| c.conn == conn).map(|c| c.code))
}

fn is_error(f: &Frame, code: ErrorCode) -> bool {
    matches!(f, Frame::Error { code: c, .. } if *c == code)
}

fn has_error(fs: &[Frame], code: ErrorCode) -> bool {
    fs.iter().any(|f| is_error(f, code))
}

fn delivers(fs: &[Frame]) -> Vec<u64> {
    fs.iter()
        .filter_map(|f| match f {
            Frame::Deliver { cursor, .. } => Some(*cursor),
            _ => None,
        })
        .collect()
}

fn ok_if(cond: bool, msg: &str) -> Result<(), String> {
    if cond { Ok(()) } else { Err(msg.to_string()) }
}

/// Every broker scenario of a run, built from its fixture.
#[allow(clippy::too_many_lines)]
pub fn scenarios(fx: &Fixture) -> Result<Vec<Scenario>, String> {
    let mut v = Vec::new();
    let (x, y) = (&fx.x, &fx.y);

    // --- broker/server: the runner plays the clients ---
    let mut s = Script::new(fx);
    s.connect(0, 1);
    s.connect(0, 2);
    let j1 = s.join(1, 1, x);
    s.join(1, 2, x);
    let p = s.publish(2, 1, x, 5, fx.payload(1, 40));
    v.push(Scenario {
        name: "join-valid-fan-out-to-others",
        refs: "BRK-6 BRK-7 BRK-8 BRK-9 CONF-76",
        check: Check::Server(
            s.run(),
            Box::new(move |r| {
                ok_if(
                    matches!(to(r, j1, 1).first(), Some(Frame::Joined { cursor: 1, .. }))
                        && matches!(
                            to(r, p, 1).as_slice(),
                            [Frame::Ack {
                                request: 5,
                                cursor: 1,
                                ..
                            }]
                        )
                        && delivers(&to(r, p, 2)) == vec![1],
                    "JOINED, then ACK to the publisher and one DELIVER to the other member only",
                )
            }),
        ),
    });

    let mut s = Script::new(fx);
    s.connect(0, 1);
    // A proof over another connection's challenge.
    let stolen = x
        .creds
        .join_proof(&fx.challenge(2))
        .map_err(|e| e.to_string())?;
    let j = s.frame(
        1,
        1,
        enc(Frame::Join {
            request: 7,
            room_id: x.id().to_vec(),
            room_key: x.creds.room_public_key().to_vec(),
            proof: stolen.to_vec(),
            cursor: 0,
        }),
    );
    let p = s.publish(2, 1, x, 8, fx.payload(2, 10));
    v.push(Scenario {
        name: "join-proof-bad-signature",
        refs: "BRK-6 BRK-7 BRK-18 CONF-76",
        check: Check::Server(
            s.run(),
            Box::new(move |r| {
                ok_if(
                    matches!(to(r, j, 1).as_slice(), [Frame::Error { code: ErrorCode::BadProof, request: 7, .. }])
                        && closed(r, j, 1).is_none()
                        && has_error(&to(r, p, 1), ErrorCode::NotJoined),
                    "a proof over another challenge is BAD_PROOF (request echoed), the connection stays, and it is not a member",
                )
            }),
        ),
    });

    let mut s = Script::new(fx);
    s.connect(0, 1);
    // Room Y's key and a valid proof by it, presented for room X.
    let content = [fx.challenge(1).as_slice(), &x.id()].concat();
    let wrong = {
        // Sign with room Y's key over (challenge || X): only the key-to-id check fails.
        let seed = y_proof_seed(fx)?;
        SigningKey::from_seed(&seed)
            .sign_with_label(labels::SIG_ROOM_JOIN, &content)
            .map_err(|e| e.to_string())?
    };
    let j = s.frame(
        1,
        1,
        enc(Frame::Join {
            request: 3,
            room_id: x.id().to_vec(),
            room_key: y.creds.room_public_key().to_vec(),
            proof: wrong.to_vec(),
            cursor: 0,
        }),
    );
    let ok = s.join_with(2, 1, x, 0, 4);
    v.push(Scenario {
        name: "join-wrong-room-key",
        refs: "BRK-5 BRK-7 CONF-76",
        check: Check::Server(
            s.run(),
            Box::new(move |r| {
                ok_if(
                    matches!(to(r, j, 1).as_slice(), [Frame::Error { code: ErrorCode::BadProof, request: 3, .. }])
                        && closed(r, j, 1).is_none()
                        && matches!(to(r, ok, 1).first(), Some(Frame::Joined { request: 4, .. })),
                    "a key of another room (WRONG_CONTEXT) is BAD_PROOF and the connection stays open for a valid JOIN",
                )
            }),
        ),
    });

    let mut s = Script::new(fx);
    s.connect(0, 1);
    // A small-order key (INVALID_KEY) under its own room id.
    let weak = [0u8; 32];
    let weak_id = room_id_of(&weak).map_err(|e| e.to_string())?;
    let j = s.frame(
        1,
        1,
        enc(Frame::Join {
            request: 2,
            room_id: weak_id.to_vec(),
            room_key: weak.to_vec(),
            proof: vec![0; 64],
            cursor: 0,
        }),
    );
    let short = s.frame(
        1,
        1,
        enc(Frame::Join {
            request: 9,
            room_id: x.id().get(..31).unwrap_or_default().to_vec(),
            room_key: x.creds.room_public_key().to_vec(),
            proof: vec![1; 64],
            cursor: 0,
        }),
    );
    v.push(Scenario {
        name: "join-invalid-key-and-short-room-id",
        refs: "BRK-4 BRK-7 CONF-76",
        check: Check::Server(
            s.run(),
            Box::new(move |r| {
                ok_if(
                    matches!(to(r, j, 1).as_slice(), [Frame::Error { code: ErrorCode::BadProof, request: 2, .. }])
                        && matches!(to(r, short, 1).as_slice(), [Frame::Error { code: ErrorCode::BadProof, request: 9, .. }])
                        && closed(r, short, 1).is_none(),
                    "a small-order room key and a 31-byte room id are BAD_PROOF, not MALFORMED; the connection stays",
                )
            }),
        ),
    });

    let mut s = Script::new(fx);
    s.open(0, 1);
    let h = s.frame(0, 1, enc(Frame::Hello { version: 2 }));
    s.open(0, 2);
    let early = s.frame(1, 2, enc(Frame::Ping { nonce: vec![1] }));
    v.push(Scenario {
        name: "hello-version-and-order",
        refs: "BRK-2 BRK-18 CONF-76",
        check: Check::Server(
            s.run(),
            Box::new(move |r| {
                ok_if(
                    matches!(to(r, h, 1).as_slice(), [Frame::Refuse { version: 1, code: ErrorCode::UnsupportedVersion }])
                        && closed(r, h, 1).is_some()
                        && has_error(&to(r, early, 2), ErrorCode::NotReady)
                        && closed(r, early, 2).is_some(),
                    "HELLO version 2 is REFUSEd and closed; a frame before HELLO is NOT_READY and closed",
                )
            }),
        ),
    });

    let mut s = Script::new(fx);
    s.connect(0, 1);
    s.connect(0, 2);
    s.connect(0, 3);
    let unknown = s.frame(1, 1, enc(Frame::Unknown { kind: 99 }));
    let wrong_dir = s.frame(
        1,
        2,
        enc(Frame::Deliver {
            room_id: x.id().to_vec(),
            cursor: 1,
            payload: vec![1],
        }),
    );
    let garbage = s.frame(1, 3, vec![0x08, 0x80]);
    v.push(Scenario {
        name: "unknown-kind-and-malformed",
        refs: "BRK-3 BRK-4 BRK-18 CONF-76",
        check: Check::Server(
            s.run(),
            Box::new(move |r| {
                ok_if(
                    [(unknown, 1), (wrong_dir, 2), (garbage, 3)]
                        .iter()
                        .all(|(st, c)| has_error(&to(r, *st, *c), ErrorCode::Malformed) && closed(r, *st, *c).is_some()),
                    "an unknown kind, a kind only a broker sends, and undecodable bytes are MALFORMED and closed",
                )
            }),
        ),
    });

    let max = limits().max_frame as usize;
    let at_limit = sized_publish(x, max)?;
    let over = sized_publish(x, max + 1)?;
    let mut s = Script::new(fx);
    s.connect(0, 1);
    s.join(0, 1, x);
    let a = s.frame(1, 1, at_limit);
    let b = s.frame(2, 1, over);
    v.push(Scenario {
        name: "frame-size-limit",
        refs: "BRK-LIM-1 BRK-18 CONF-77",
        check: Check::Server(
            s.run(),
            Box::new(move |r| {
                ok_if(
                    matches!(to(r, a, 1).as_slice(), [Frame::Ack { .. }])
                        && has_error(&to(r, b, 1), ErrorCode::FrameTooLarge)
                        && closed(r, b, 1).is_some(),
                    "a frame of exactly max_frame bytes is accepted; one byte more is FRAME_TOO_LARGE and closed",
                )
            }),
        ),
    });

    let max_e = limits().max_ephemeral as usize;
    let mut s = Script::new(fx);
    s.connect(0, 1);
    s.connect(0, 2);
    s.join(0, 1, x);
    s.join(0, 2, x);
    let a = s.ephemeral(1, 1, x, fx.payload(3, max_e));
    let b = s.ephemeral(2, 1, x, fx.payload(3, max_e + 1));
    v.push(Scenario {
        name: "ephemeral-size-limit",
        refs: "BRK-LIM-4 BRK-16 CONF-77",
        check: Check::Server(
            s.run(),
            Box::new(move |r| {
                ok_if(
                    matches!(to(r, a, 2).as_slice(), [Frame::Ephemeral { .. }])
                        && has_error(&to(r, b, 1), ErrorCode::FrameTooLarge)
                        && closed(r, b, 1).is_some()
                        && to(r, b, 2).is_empty(),
                    "an ephemeral payload at the limit is relayed; one byte more is FRAME_TOO_LARGE and closed, not relayed",
                )
            }),
        ),
    });

    let mut s = Script::new(fx);
    s.connect(0, 1);
    s.join(0, 1, x);
    let mut flood = Vec::new();
    for i in 0..70u8 {
        flood.push(s.ephemeral(1, 1, x, vec![i]));
    }
    let last = flood.last().copied().unwrap_or_default();
    let flood2 = flood.clone();
    v.push(Scenario {
        name: "flood-rate-limited-then-closed",
        refs: "BRK-LIM-3 BRK-18 CONF-77",
        check: Check::Server(
            s.run(),
            Box::new(move |r| {
                let errors: usize = flood2
                    .iter()
                    .map(|st| to(r, *st, 1).iter().filter(|f| is_error(f, ErrorCode::RateLimited)).count())
                    .sum();
                let closes = flood2.iter().filter(|st| closed(r, **st, 1).is_some()).count();
                ok_if(
                    errors == 2 && closes == 1 && closed(r, last, 1).is_none(),
                    "a burst over the bucket gets one RATE_LIMITED, then past max_strikes RATE_LIMITED and one close",
                )
            }),
        ),
    });

    let mut s = Script::new(fx);
    s.connect(0, 1);
    s.connect(0, 2);
    s.join(0, 1, x);
    for i in 0..4u8 {
        s.publish(1, 1, x, u32::from(i) + 1, fx.payload(10 + i, 30));
    }
    let j2 = s.join_with(2, 2, x, 2, 1);
    let live = s.publish(3, 1, x, 9, fx.payload(20, 30));
    v.push(Scenario {
        name: "resume-from-cursor",
        refs: "BRK-8 BRK-9 BRK-22 CONF-78",
        check: Check::Server(
            s.run(),
            Box::new(move |r| {
                let j = to(r, j2, 2);
                ok_if(
                    matches!(j.first(), Some(Frame::Joined { cursor: 5, .. }))
                        && delivers(&j) == vec![2, 3, 4]
                        && delivers(&to(r, live, 2)) == vec![5],
                    "a JOIN with cursor 2 gets JOINED (cursor 5), the backlog 2, 3, 4, then live 5: no loss, no duplicate",
                )
            }),
        ),
    });

    let mut s = Script::new(fx);
    s.connect(0, 1);
    s.connect(0, 2);
    s.connect(0, 3);
    s.join(0, 1, x);
    s.join(0, 2, x);
    s.publish(1, 1, x, 1, fx.payload(30, 20));
    let e = s.ephemeral(1, 1, x, fx.payload(31, 20));
    let p2 = s.publish(1, 1, x, 2, fx.payload(32, 20));
    let j3 = s.join_with(2, 3, x, 1, 1);
    v.push(Scenario {
        name: "ephemeral-relayed-never-stored",
        refs: "BRK-16 BRK-8 CONF-79",
        check: Check::Server(
            s.run(),
            Box::new(move |r| {
                ok_if(
                    matches!(to(r, e, 2).as_slice(), [Frame::Ephemeral { .. }])
                        && to(r, e, 1).is_empty()
                        && delivers(&to(r, p2, 2)) == vec![2]
                        && delivers(&to(r, j3, 3)) == vec![1, 2]
                        && !to(r, j3, 3).iter().any(|f| matches!(f, Frame::Ephemeral { .. })),
                    "an ephemeral payload reaches the other member, is not numbered (the next PUBLISH is 2) and is not in the backlog",
                )
            }),
        ),
    });

    let mut s = Script::new(fx);
    for c in 1..=3 {
        s.connect(0, c);
    }
    s.join(0, 1, x);
    s.join(0, 2, x);
    s.join(0, 3, y);
    let px = s.publish(1, 1, x, 1, fx.payload(40, 20));
    let ex = s.ephemeral(1, 1, x, fx.payload(41, 20));
    let py = s.publish(1, 3, y, 2, fx.payload(42, 20));
    v.push(Scenario {
        name: "rooms-isolated",
        refs: "BRK-9 BRK-16 CONF-79",
        check: Check::Server(
            s.run(),
            Box::new(move |r| {
                ok_if(
                    to(r, px, 3).is_empty()
                        && to(r, ex, 3).is_empty()
                        && delivers(&to(r, px, 2)) == vec![1]
                        && to(r, py, 1).is_empty()
                        && to(r, py, 2).is_empty(),
                    "payloads of room X reach X's other member only; room Y's reach nobody in X",
                )
            }),
        ),
    });

    let mut s = Script::new(fx);
    s.connect(0, 1);
    s.connect(0, 2);
    let np = s.publish(1, 1, x, 6, fx.payload(50, 10));
    let ne = s.ephemeral(1, 1, x, fx.payload(51, 10));
    s.join(2, 1, x);
    s.join(2, 2, x);
    let l = s.frame(
        3,
        2,
        enc(Frame::Leave {
            room_id: x.id().to_vec(),
        }),
    );
    let after = s.publish(4, 1, x, 7, fx.payload(52, 10));
    let gone = s.publish(5, 2, x, 8, fx.payload(53, 10));
    v.push(Scenario {
        name: "not-joined-and-leave",
        refs: "BRK-9 BRK-11 BRK-18 CONF-79",
        check: Check::Server(
            s.run(),
            Box::new(move |r| {
                ok_if(
                    matches!(to(r, np, 1).as_slice(), [Frame::Error { code: ErrorCode::NotJoined, request: 6, .. }])
                        && has_error(&to(r, ne, 1), ErrorCode::NotJoined)
                        && closed(r, ne, 1).is_none()
                        && to(r, l, 2).is_empty()
                        && to(r, after, 2).is_empty()
                        && has_error(&to(r, gone, 2), ErrorCode::NotJoined),
                    "PUBLISH and EPHEMERAL before JOIN are NOT_JOINED (not fatal); after LEAVE nothing is delivered and publishing is NOT_JOINED",
                )
            }),
        ),
    });

    let mut s = Script::new(fx);
    s.connect(0, 1);
    for i in 0..4u8 {
        let epoch = EpochKey::new(
            seed_bytes(fx.seed, &[b'r', i]),
            seed_bytes(fx.seed, &[b't', i]),
        );
        let creds = RoomCredentials::derive(&fx.space_id, &epoch).map_err(|e| e.to_string())?;
        let room = Room { epoch, creds };
        s.join_with(1, 1, &room, 0, u32::from(i) + 1);
    }
    let fifth = s.join_with(2, 1, x, 0, 10);
    let again = s.join_with(3, 1, y, 0, 11);
    v.push(Scenario {
        name: "too-many-rooms",
        refs: "BRK-LIM-2 BRK-18 CONF-77",
        check: Check::Server(
            s.run(),
            Box::new(move |r| {
                ok_if(
                    matches!(
                        to(r, fifth, 1).as_slice(),
                        [Frame::Error {
                            code: ErrorCode::TooManyRooms,
                            request: 10,
                            ..
                        }]
                    ) && closed(r, fifth, 1).is_none()
                        && has_error(&to(r, again, 1), ErrorCode::TooManyRooms),
                    "a JOIN beyond max_rooms is TOO_MANY_ROOMS and the connection stays",
                )
            }),
        ),
    });

    let hello_ms = limits().hello_timeout_ms;
    let idle_ms = limits().idle_timeout_ms;
    let mut s = Script::new(fx);
    s.open(0, 1);
    s.connect(0, 2);
    let pong = s.frame(5, 2, enc(Frame::Ping { nonce: vec![7, 7] }));
    let at_hello = s.tick(hello_ms);
    let past_hello = s.tick(hello_ms + 1);
    let at_idle = s.tick(5 + idle_ms);
    let past_idle = s.tick(5 + idle_ms + 1);
    v.push(Scenario {
        name: "keepalive-and-timeouts",
        refs: "BRK-17 BRK-18 CONF-80",
        check: Check::Server(
            s.run(),
            Box::new(move |r| {
                ok_if(
                    matches!(to(r, pong, 2).as_slice(), [Frame::Pong { nonce }] if nonce == &vec![7, 7])
                        && closed(r, at_hello, 1).is_none()
                        && has_error(&to(r, past_hello, 1), ErrorCode::Timeout)
                        && closed(r, past_hello, 1).is_some()
                        && closed(r, at_idle, 2).is_none()
                        && has_error(&to(r, past_idle, 2), ErrorCode::Timeout),
                    "PING gets PONG with its nonce; no HELLO for longer than the HELLO timeout, and silence longer than the idle timeout, are TIMEOUT and closed",
                )
            }),
        ),
    });

    // --- broker/client: the runner plays the broker ---
    let xid = x.id();
    let yid = y.id();
    let n1 = seed_bytes(fx.seed, b"welcome 1");
    let n2 = seed_bytes(fx.seed, b"welcome 2");
    let (st, st2) = (fx.stream, fx.other_stream);

    let mut c = ClientScript::default();
    let h = c.connect(0);
    let w = c.welcome(1, n1);
    let jd = c.joined(2, &xid, 1, &st);
    v.push(Scenario {
        name: "client-hello-join-proof",
        refs: "BRK-2 BRK-5 BRK-6 BRK-7 CONF-81",
        check: Check::Client(
            fx.client_run(10_000, c.events),
            Box::new(move |r| {
                let sent = |i: usize| r.steps.get(i).map(|s| s.sent.clone()).unwrap_or_default();
                ok_if(
                    sent(h).len() == 1
                        && sent(w).len() == 1
                        && r.steps.get(jd).is_some_and(|s| {
                            s.outputs
                                .iter()
                                .any(|o| o.kind == pb::BrokerClientOutputKind::Joined as i32)
                        }),
                    "HELLO, then one JOIN answering WELCOME, then joined",
                )
            }),
        ),
    });

    let mut c = ClientScript::default();
    c.connect(0);
    c.welcome(1, n1);
    c.joined(2, &xid, 1, &st);
    let mut ds = Vec::new();
    for (t, seq) in [(3, 1), (4, 2), (5, 2), (6, 1), (7, 3)] {
        ds.push(c.deliver(t, &xid, seq, fx.payload(60 + seq as u8, 16)));
    }
    let ds2 = ds.clone();
    v.push(Scenario {
        name: "client-drops-duplicates",
        refs: "BRK-8 BRK-19 CONF-82",
        check: Check::Client(
            fx.client_run(10_000, c.events),
            Box::new(move |r| {
                ok_if(
                    delivered(r, &ds2) == vec![1, 2, 3],
                    "DELIVER 1, 2, 2, 1, 3 hands 1, 2, 3 to the application",
                )
            }),
        ),
    });

    let mut c = ClientScript::default();
    c.connect(0);
    c.welcome(1, n1);
    c.joined(2, &xid, 1, &st);
    for seq in 1..=3u64 {
        c.deliver(3, &xid, seq, fx.payload(70 + seq as u8, 16));
    }
    let re = c.connect(10);
    let w2 = c.welcome(11, n2);
    let jd2 = c.joined(12, &xid, 6, &st);
    let d45: Vec<usize> = (4..=5u64)
        .map(|seq| c.deliver(13, &xid, seq, fx.payload(70 + seq as u8, 16)))
        .collect();
    v.push(Scenario {
        name: "client-resumes-after-reconnect",
        refs: "BRK-6 BRK-19 CONF-82",
        check: Check::Client(
            fx.client_run(10_000, c.events),
            Box::new(move |r| {
                let join = r
                    .steps
                    .get(w2)
                    .and_then(|s| s.sent.first())
                    .and_then(|b| frame::decode(b, usize::MAX).ok());
                ok_if(
                    r.steps.get(re).is_some_and(|s| s.sent.len() == 1)
                        && matches!(join, Some(Frame::Join { cursor: 4, .. }))
                        && resumed(r, jd2) == Some(true)
                        && delivered(r, &d45) == vec![4, 5],
                    "after a reconnect the JOIN carries cursor 4 (one past the last received), JOINED on the same stream resumes",
                )
            }),
        ),
    });

    let mut c = ClientScript::default();
    c.connect(0);
    c.welcome(1, n1);
    c.joined(2, &xid, 1, &st);
    c.deliver(3, &xid, 1, fx.payload(80, 16));
    c.deliver(3, &xid, 2, fx.payload(81, 16));
    c.connect(10);
    c.welcome(11, n2);
    let jd2 = c.joined(12, &xid, 7, &st2);
    let low = c.deliver(13, &xid, 3, fx.payload(82, 16));
    let high = c.deliver(13, &xid, 7, fx.payload(83, 16));
    v.push(Scenario {
        name: "client-new-stream-takes-joined-cursor",
        refs: "BRK-8 BRK-19 CONF-82",
        check: Check::Client(
            fx.client_run(10_000, c.events),
            Box::new(move |r| {
                ok_if(
                    resumed(r, jd2) == Some(false)
                        && delivered(r, &[low]).is_empty()
                        && delivered(r, &[high]) == vec![7],
                    "JOINED on another stream does not resume: the JOINED cursor 7 is next, DELIVER 3 is dropped",
                )
            }),
        ),
    });

    let mut c = ClientScript::default();
    c.connect(0);
    c.welcome(1, n1);
    c.joined(2, &xid, 1, &st);
    let other = c.deliver(3, &yid, 1, fx.payload(90, 16));
    let after = c.deliver(4, &xid, 1, fx.payload(91, 16));
    let mut c2 = ClientScript::default();
    c2.connect(0);
    c2.welcome(1, n1);
    let wrong_joined = c2.joined(2, &yid, 1, &st);
    let after2 = c2.deliver(3, &xid, 1, fx.payload(92, 16));
    v.push(Scenario {
        name: "client-refuses-other-room",
        refs: "BRK-19 CONF-82",
        check: Check::Client(
            fx.client_run(10_000, c.events),
            Box::new(move |r| {
                ok_if(
                    failed(r, other) && delivered(r, &[other, after]).is_empty(),
                    "a DELIVER naming another room fails the connection; nothing more is delivered on it",
                )
            }),
        ),
    });
    v.push(Scenario {
        name: "client-refuses-joined-for-other-room",
        refs: "BRK-19 CONF-82",
        check: Check::Client(
            fx.client_run(10_000, c2.events),
            Box::new(move |r| {
                ok_if(
                    failed(r, wrong_joined) && delivered(r, &[after2]).is_empty(),
                    "a JOINED naming another room fails the connection",
                )
            }),
        ),
    });

    let mut c = ClientScript::default();
    c.connect(0);
    c.welcome(1, n1);
    c.joined(2, &xid, 1, &st);
    let t1 = c.tick(1_000);
    c.frame(1_500, Frame::Pong { nonce: Vec::new() });
    let ticks: Vec<usize> = [2_000, 3_000, 4_000].iter().map(|t| c.tick(*t)).collect();
    let lost = c.tick(5_000);
    let ping = c.frame(5_001, Frame::Ping { nonce: vec![4, 2] });
    v.push(Scenario {
        name: "client-keepalive-and-lost",
        refs: "BRK-17 CONF-80",
        check: Check::Client(
            fx.client_run(1_000, c.events),
            Box::new(move |r| {
                let pings = |i: usize| {
                    r.steps.get(i).map_or(0, |s| {
                        s.sent
                            .iter()
                            .filter(|b| matches!(frame::decode(b, usize::MAX), Ok(Frame::Ping { .. })))
                            .count()
                    })
                };
                ok_if(
                    pings(t1) == 1
                        && ticks.iter().all(|t| pings(*t) == 1)
                        && r.steps.get(lost).is_some_and(|s| s.outputs.iter().any(|o| o.kind == pb::BrokerClientOutputKind::Lost as i32))
                        && r.steps.get(ping).is_some_and(|s| s.sent.is_empty()),
                    "a PING every interval; silent for more than three intervals, the broker is lost and nothing more is answered",
                )
            }),
        ),
    });

    let mut c = ClientScript::default();
    c.connect(0);
    c.welcome(1, n1);
    c.joined(2, &xid, 1, &st);
    let pp = c.frame(
        3,
        Frame::Ping {
            nonce: vec![9, 9, 9],
        },
    );
    let publ = c.ev(
        4,
        CE::Publish(pb::BrokerPublish {
            request: 12,
            payload: fx.payload(95, 24),
        }),
    );
    let ack = c.frame(
        5,
        Frame::Ack {
            request: 12,
            room_id: xid.to_vec(),
            cursor: 1,
        },
    );
    let eph_in = c.frame(
        6,
        Frame::Ephemeral {
            room_id: xid.to_vec(),
            payload: fx.payload(96, 24),
        },
    );
    let eph_out = c.ev(7, CE::Ephemeral(fx.payload(97, 24)));
    let early = c.frame(
        8,
        Frame::Welcome {
            version: 1,
            nonce: n2.to_vec(),
            max_frame: 0,
            max_rooms: 0,
            rate: 0,
        },
    );
    v.push(Scenario {
        name: "client-frames-in-session",
        refs: "BRK-3 BRK-9 BRK-16 BRK-17 CONF-81",
        check: Check::Client(
            fx.client_run(10_000, c.events),
            Box::new(move |r| {
                let sent = |i: usize| -> Vec<Frame> {
                    r.steps.get(i).map(|s| s.sent.iter().filter_map(|b| frame::decode(b, usize::MAX).ok()).collect()).unwrap_or_default()
                };
                let has = |i: usize, k: pb::BrokerClientOutputKind| r.steps.get(i).is_some_and(|s| s.outputs.iter().any(|o| o.kind == k as i32));
                ok_if(
                    matches!(sent(pp).as_slice(), [Frame::Pong { nonce }] if nonce == &vec![9, 9, 9])
                        && matches!(sent(publ).as_slice(), [Frame::Publish { request: 12, room_id, .. }] if room_id == &xid.to_vec())
                        && has(ack, pb::BrokerClientOutputKind::Acked)
                        && has(eph_in, pb::BrokerClientOutputKind::Ephemeral)
                        && matches!(sent(eph_out).as_slice(), [Frame::Ephemeral { .. }])
                        && has(early, pb::BrokerClientOutputKind::Failed),
                    "PONG echoes PING; PUBLISH and EPHEMERAL name the room; ACK and EPHEMERAL reach the application; a second WELCOME fails the connection",
                )
            }),
        ),
    });

    let mut c = ClientScript::default();
    c.connect(0);
    let refused = c.frame(
        1,
        Frame::Refuse {
            version: 7,
            code: ErrorCode::UnsupportedVersion,
        },
    );
    let mut c3 = ClientScript::default();
    c3.connect(0);
    c3.welcome(1, n1);
    let early_deliver = c3.deliver(2, &xid, 1, fx.payload(98, 8));
    v.push(Scenario {
        name: "client-refused-version",
        refs: "BRK-2 CONF-81",
        check: Check::Client(
            fx.client_run(10_000, c.events),
            Box::new(move |r| {
                ok_if(
                    r.steps.get(refused).is_some_and(|s| {
                        s.outputs.iter().any(|o| {
                            o.kind == pb::BrokerClientOutputKind::Refused as i32 && o.code == 7
                        })
                    }),
                    "REFUSE reports the broker's version",
                )
            }),
        ),
    });
    v.push(Scenario {
        name: "client-unexpected-frame",
        refs: "BRK-3 CONF-81",
        check: Check::Client(
            fx.client_run(10_000, c3.events),
            Box::new(move |r| {
                ok_if(
                    failed(r, early_deliver) && delivered(r, &[early_deliver]).is_empty(),
                    "a DELIVER before JOINED fails the connection",
                )
            }),
        ),
    });
    Ok(v)
}

/// The seed of room Y's key, as BRK-5 derives it (to sign with it).
fn y_proof_seed(fx: &Fixture) -> Result<[u8; 32], String> {
    let mut seed = [0u8; 32];
    suite::derive_with_label(
        fx.y.epoch.secret(),
        &fx.space_id,
        labels::KDF_ROOM_SEED,
        fx.y.epoch.id(),
        &mut seed,
    )
    .map_err(|e| e.to_string())?;
    Ok(seed)
}

/// A PUBLISH to `room` of exactly `len` encoded bytes.
fn sized_publish(room: &Room, len: usize) -> Result<Vec<u8>, String> {
    let mut n = len.saturating_sub(48);
    for _ in 0..64 {
        let f = enc(Frame::Publish {
            request: 1,
            room_id: room.id().to_vec(),
            payload: vec![0x5a; n],
        });
        match f.len().cmp(&len) {
            std::cmp::Ordering::Equal => return Ok(f),
            std::cmp::Ordering::Less => n += 1,
            std::cmp::Ordering::Greater => n = n.saturating_sub(1),
        }
    }
    Err(format!("no PUBLISH of exactly {len} bytes"))
}

fn delivered(r: &pb::BrokerClientRan, steps: &[usize]) -> Vec<u64> {
    steps
        .iter()
        .filter_map(|i| r.steps.get(*i))
        .flat_map(|s| s.outputs.iter())
        .filter(|o| o.kind == pb::BrokerClientOutputKind::Delivered as i32)
        .map(|o| o.seq)
        .collect()
}

fn resumed(r: &pb::BrokerClientRan, step: usize) -> Option<bool> {
    r.steps.get(step).and_then(|s| {
        s.outputs
            .iter()
            .find(|o| o.kind == pb::BrokerClientOutputKind::Joined as i32)
            .map(|o| o.resumed)
    })
}

fn failed(r: &pb::BrokerClientRan, step: usize) -> bool {
    r.steps.get(step).is_some_and(|s| {
        s.outputs
            .iter()
            .any(|o| o.kind == pb::BrokerClientOutputKind::Failed as i32)
    })
}

/// A frame, for messages: kind and the fields that matter.
pub fn describe(bytes: &[u8]) -> String {
    match frame::decode(bytes, usize::MAX) {
        Err(e) => format!("undecodable ({e})"),
        Ok(f) => match f {
            Frame::Hello { version } => format!("HELLO(v{version})"),
            Frame::Welcome { version, nonce, .. } => {
                format!("WELCOME(v{version}, nonce {})", hx(&nonce))
            }
            Frame::Refuse { version, code } => format!("REFUSE(v{version}, {})", code.name()),
            Frame::Join {
                request,
                room_id,
                cursor,
                ..
            } => format!(
                "JOIN(request {request}, room {}, cursor {cursor})",
                hx(&room_id)
            ),
            Frame::Joined {
                request,
                room_id,
                cursor,
                stream,
            } => format!(
                "JOINED(request {request}, room {}, cursor {cursor}, stream {})",
                hx(&room_id),
                hx(&stream)
            ),
            Frame::Leave { room_id } => format!("LEAVE(room {})", hx(&room_id)),
            Frame::Publish {
                request,
                room_id,
                payload,
            } => format!(
                "PUBLISH(request {request}, room {}, {} bytes)",
                hx(&room_id),
                payload.len()
            ),
            Frame::Ack {
                request, cursor, ..
            } => format!("ACK(request {request}, seq {cursor})"),
            Frame::Deliver {
                room_id,
                cursor,
                payload,
            } => format!(
                "DELIVER(room {}, seq {cursor}, {} bytes)",
                hx(&room_id),
                payload.len()
            ),
            Frame::Ephemeral { room_id, payload } => {
                format!("EPHEMERAL(room {}, {} bytes)", hx(&room_id), payload.len())
            }
            Frame::Error { code, request, .. } => {
                format!("ERROR({}, request {request})", code.name())
            }
            Frame::Ping { nonce } => format!("PING({})", hex::encode(nonce)),
            Frame::Pong { nonce } => format!("PONG({})", hex::encode(nonce)),
            other => format!("kind {}", other.kind_number()),
        },
    }
}

/// The difference between the reference's answer `want` and `got`, per step
/// and connection, or `None`.
pub fn diff_server(
    req: &pb::BrokerServerRun,
    want: &pb::BrokerServerRan,
    got: &pb::BrokerServerRan,
) -> Option<String> {
    if want.steps.len() != got.steps.len() {
        return Some(format!(
            "{} steps answered for {} events",
            got.steps.len(),
            want.steps.len()
        ));
    }
    type PerConn = BTreeMap<u64, (Vec<String>, Option<u32>)>;
    let per_conn = |s: &pb::BrokerServerStep| -> PerConn {
        let mut m = PerConn::new();
        for x in &s.sends {
            m.entry(x.conn).or_default().0.push(describe(&x.frame));
        }
        for c in &s.closes {
            m.entry(c.conn).or_default().1 = Some(c.code);
        }
        m
    };
    let raw = |s: &pb::BrokerServerStep| -> BTreeMap<u64, Vec<Vec<u8>>> {
        let mut m: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
        for x in &s.sends {
            m.entry(x.conn).or_default().push(x.frame.clone());
        }
        m
    };
    let mut out = Vec::new();
    for (i, (w, g)) in want.steps.iter().zip(&got.steps).enumerate() {
        let (pw, pg) = (per_conn(w), per_conn(g));
        if pw == pg && raw(w) == raw(g) {
            continue;
        }
        let what = req
            .events
            .get(i)
            .map(|e| match &e.event {
                Some(SE::Open(_)) => format!("conn {} opens", e.conn),
                Some(SE::Frame(b)) => format!("conn {} sends {}", e.conn, describe(b)),
                Some(SE::Close(_)) => format!("conn {} closes", e.conn),
                Some(SE::Tick(_)) => format!("time {} ms", e.at_ms),
                None => "?".into(),
            })
            .unwrap_or_default();
        let show = |m: &PerConn| {
            m.iter()
                .map(|(c, (fs, close))| {
                    let close = close.map_or(String::new(), |code| {
                        format!(" then close ({})", ErrorCode::from_code(code).name())
                    });
                    format!("conn {c}: [{}]{close}", fs.join(", "))
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let (sw, sg) = (show(&pw), show(&pg));
        if sw == sg {
            out.push(format!("step {i} ({what}): frames differ in bytes: {sg}"));
        } else {
            out.push(format!(
                "step {i} ({what}): got {{{sg}}}, expected {{{sw}}}"
            ));
        }
        if out.len() >= 3 {
            break;
        }
    }
    (!out.is_empty()).then(|| out.join("; "))
}

fn describe_output(o: &pb::BrokerClientOutput) -> String {
    use pb::BrokerClientOutputKind as K;
    match K::try_from(o.kind) {
        Ok(K::Joined) => format!("joined(resumed {})", o.resumed),
        Ok(K::Delivered) => format!("delivered(seq {}, {} bytes)", o.seq, o.payload.len()),
        Ok(K::Ephemeral) => format!("ephemeral({} bytes)", o.payload.len()),
        Ok(K::Acked) => format!("acked({})", o.request),
        Ok(K::Error) => format!(
            "error({}, request {})",
            ErrorCode::from_code(o.code).name(),
            o.request
        ),
        Ok(K::Refused) => format!("refused(v{})", o.code),
        Ok(K::Failed) => "failed".into(),
        Ok(K::Lost) => "lost".into(),
        _ => format!("kind {}", o.kind),
    }
}

/// Checks every JOIN the client sent: it names the room of BRK-5 and its proof
/// verifies over the challenge of the last WELCOME the runner sent (BRK-6,
/// BRK-7); failures are named by the class verify-join gives.
pub fn check_joins(
    fx: &Fixture,
    req: &pb::BrokerClientRun,
    got: &pb::BrokerClientRan,
) -> Option<String> {
    let mut nonce: Option<Vec<u8>> = None;
    for (i, (ev, step)) in req.events.iter().zip(&got.steps).enumerate() {
        if let Some(CE::Frame(b)) = &ev.event
            && let Ok(Frame::Welcome { nonce: n, .. }) = frame::decode(b, usize::MAX)
        {
            nonce = Some(n);
        }
        for b in &step.sent {
            let Ok(Frame::Join {
                room_id,
                room_key,
                proof,
                ..
            }) = frame::decode(b, usize::MAX)
            else {
                continue;
            };
            if room_id.as_slice() != fx.x.id().as_slice() {
                return Some(format!(
                    "step {i}: JOIN names room {}, but the room of the space and epoch is {} (BRK-5)",
                    hx(&room_id),
                    hx(&fx.x.id())
                ));
            }
            let Some(n) = nonce.as_ref() else {
                return Some(format!("step {i}: JOIN before any WELCOME (BRK-2)"));
            };
            if let Err(e) = verify_join(&room_id, &room_key, n, &proof) {
                return Some(format!(
                    "step {i}: the JOIN does not pass the broker's check over the WELCOME challenge: {} (BRK-6, BRK-7)",
                    class_name(e.class())
                ));
            }
        }
    }
    None
}

/// The difference between the reference's client answer `want` and `got`.
pub fn diff_client(
    req: &pb::BrokerClientRun,
    want: &pb::BrokerClientRan,
    got: &pb::BrokerClientRan,
) -> Option<String> {
    if want.steps.len() != got.steps.len() {
        return Some(format!(
            "{} steps answered for {} events",
            got.steps.len(),
            want.steps.len()
        ));
    }
    let mut out = Vec::new();
    for (i, (w, g)) in want.steps.iter().zip(&got.steps).enumerate() {
        if w == g {
            continue;
        }
        let what = req
            .events
            .get(i)
            .map(|e| match &e.event {
                Some(CE::Connect(_)) => "connect".to_string(),
                Some(CE::Frame(b)) => format!("broker sends {}", describe(b)),
                Some(CE::Tick(_)) => format!("time {} ms", e.at_ms),
                Some(CE::Publish(p)) => format!("publish request {}", p.request),
                Some(CE::Ephemeral(_)) => "ephemeral".to_string(),
                None => "?".into(),
            })
            .unwrap_or_default();
        let show = |s: &pb::BrokerClientStep| {
            let sent: Vec<String> = s.sent.iter().map(|b| describe(b)).collect();
            let outs: Vec<String> = s.outputs.iter().map(describe_output).collect();
            format!("sent [{}], reported [{}]", sent.join(", "), outs.join(", "))
        };
        let (sw, sg) = (show(w), show(g));
        if sw == sg {
            out.push(format!("step {i} ({what}): frames differ in bytes: {sg}"));
        } else {
            out.push(format!("step {i} ({what}): {sg}; expected {sw}"));
        }
        if out.len() >= 3 {
            break;
        }
    }
    (!out.is_empty()).then(|| out.join("; "))
}

fn call(adapter: &mut dyn Adapter, id: &mut u64, cmd: Command) -> Res<Option<R>> {
    *id += 1;
    let resp = adapter
        .call(pb::Request {
            id: *id,
            command: Some(cmd),
        })
        .map_err(|e| BrokerFailure::Harness(e.to_string()))?;
    match resp.result {
        Some(R::Unsupported(u)) => Err(BrokerFailure::Unsupported(u.command)),
        Some(R::Error(e)) => Err(BrokerFailure::Failed(format!(
            "internal error: {}",
            e.message
        ))),
        other => Ok(other),
    }
}

/// Runs one scenario against the implementation.
pub fn run(sc: &Scenario, fx: &Fixture, adapter: &mut dyn Adapter, id: &mut u64) -> Res<()> {
    let harness = |m: String| {
        BrokerFailure::Harness(format!(
            "scenario/broker/{}: the reference's answer does not show the scenario's point ({m})",
            sc.name
        ))
    };
    match &sc.check {
        Check::Server(req, intent) => {
            let want = crate::broker::server_run(req, None)
                .map_err(|e| BrokerFailure::Harness(format!("the reference broker: {e}")))?;
            intent(&want).map_err(harness)?;
            let got = match call(adapter, id, Command::BrokerServerRun(req.clone()))? {
                Some(R::BrokerServerRan(r)) => r,
                other => {
                    return Err(BrokerFailure::Failed(format!(
                        "broker_server_run answered {other:?}"
                    )));
                }
            };
            match diff_server(req, &want, &got) {
                Some(d) => Err(BrokerFailure::Failed(d)),
                None => Ok(()),
            }
        }
        Check::Client(req, intent) => {
            let want = crate::broker::client_run(req, None)
                .map_err(|e| BrokerFailure::Harness(format!("the reference client: {e}")))?;
            intent(&want).map_err(harness)?;
            if let Some(d) = check_joins(fx, req, &want) {
                return Err(harness(d));
            }
            let got = match call(adapter, id, Command::BrokerClientRun(req.clone()))? {
                Some(R::BrokerClientRan(r)) => r,
                other => {
                    return Err(BrokerFailure::Failed(format!(
                        "broker_client_run answered {other:?}"
                    )));
                }
            };
            if got.steps.len() == req.events.len()
                && let Some(d) = check_joins(fx, req, &got)
            {
                return Err(BrokerFailure::Failed(d));
            }
            match diff_client(req, &want, &got) {
                Some(d) => Err(BrokerFailure::Failed(d)),
                None => Ok(()),
            }
        }
    }
}

/// Probes `broker/server` or `broker/client` (CONF-41, CONF-71): a broker
/// answers HELLO with WELCOME carrying the given challenge; a client's first
/// frame is HELLO version 1.
pub fn probe(
    adapter: &mut dyn Adapter,
    cap: &str,
    id: &mut u64,
) -> Result<crate::report::Outcome, HarnessError> {
    use crate::report::Outcome;
    let ch = [0x42u8; 32];
    let cmd = if cap == SERVER {
        Command::BrokerServerRun(pb::BrokerServerRun {
            limits: Some(limits()),
            stream: vec![1; 16],
            events: vec![
                pb::BrokerServerEvent {
                    at_ms: 0,
                    conn: 1,
                    event: Some(SE::Open(ch.to_vec())),
                },
                pb::BrokerServerEvent {
                    at_ms: 0,
                    conn: 1,
                    event: Some(SE::Frame(enc(Frame::Hello {
                        version: BROKER_PROTOCOL_VERSION,
                    }))),
                },
            ],
        })
    } else {
        Command::BrokerClientRun(pb::BrokerClientRun {
            space_id: vec![1; 32],
            epoch_id: vec![2; 32],
            epoch_secret: vec![3; 32],
            keepalive_ms: 10_000,
            events: vec![pb::BrokerClientEvent {
                at_ms: 0,
                event: Some(CE::Connect(true)),
            }],
        })
    };
    *id += 1;
    let resp = adapter.call(pb::Request {
        id: *id,
        command: Some(cmd),
    })?;
    Ok(match resp.result {
        Some(R::BrokerServerRan(r)) if cap == SERVER => {
            let welcome = r
                .steps
                .get(1)
                .and_then(|s| s.sends.first())
                .map(|s| frame::decode(&s.frame, usize::MAX));
            match welcome {
                Some(Ok(Frame::Welcome { nonce, .. })) if nonce == ch => Outcome::Pass,
                other => Outcome::Fail(format!(
                    "broker_server_run: HELLO was answered {other:?}, expected WELCOME with the given challenge"
                )),
            }
        }
        Some(R::BrokerClientRan(r)) if cap == CLIENT => {
            let first = r
                .steps
                .first()
                .and_then(|s| s.sent.first())
                .map(|b| describe(b));
            if first.as_deref() == Some("HELLO(v1)") {
                Outcome::Pass
            } else {
                Outcome::Fail(format!(
                    "broker_client_run: connect sent {first:?}, expected HELLO version 1"
                ))
            }
        }
        Some(R::Unsupported(u)) => Outcome::Unsupported(u.command),
        other => Outcome::Fail(format!("{cap} probe answered {other:?}")),
    })
}
