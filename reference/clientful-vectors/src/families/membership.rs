//! `membership`: verdict fixtures for the membership log (spec chapter 11). Each
//! case is a set of signed operations, delivered to an observer that holds every
//! epoch key, in a given order; the output is the verdict of each operation
//! (accepted, void or rejected, with its class) and the resulting members, roles,
//! scopes, removed users, frontier and membership digest. Most scenarios appear
//! twice, in causal order and shuffled: the outputs are equal (MEM-17).

use clientful_core::ErrorClass;
use clientful_core::envelope;
use clientful_core::error::class_name;
use clientful_core::identity::DeviceKeys;
use clientful_core::keys::{EpochKey, SigningKey};
use clientful_core::membership::ops::{self, BodyBuilder};
use clientful_core::membership::space::{Alarm, Identity, Outgoing};
use clientful_core::membership::{Received, Role, Scope, SpaceReplica, Verdict};
use clientful_proto::v1 as pb;
use clientful_session::{Session, SessionConfig, Transport};
use rand_chacha::ChaCha20Rng;
use serde_json::{Value, json};

use crate::generate::{FileBuilder, family_rng};
use crate::hexutil::{get_arr, get_hex_list, hex};
use crate::schema::VectorFile;
use crate::verify::Outcome;

const SEED: &str = "clientful/v1/vectors/membership";

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A device of a [`Group`]: a session core that hands its items out as they
/// are ([`Transport::Direct`]); every random draw comes from the group's stream.
fn session(replica: SpaceReplica) -> Result<Session, String> {
    let device_key = replica.identity().device.signing.public_bytes();
    let cfg = SessionConfig {
        replica,
        device_key,
        lobbies: Vec::new(),
        links: Vec::new(),
        confirm_admissions: false,
        rng_seed: [0; 32],
    };
    Session::with_transport(cfg, Transport::Direct).map_err(err)
}

/// A few devices exchanging operations reliably, in order.
struct Group {
    rng: ChaCha20Rng,
    reps: Vec<Session>,
    users: Vec<SigningKey>,
    log: Vec<Vec<u8>>,
}

impl Group {
    fn new(rng: ChaCha20Rng) -> Result<Group, String> {
        let mut g = Group {
            rng,
            reps: Vec::new(),
            users: Vec::new(),
            log: Vec::new(),
        };
        let user = SigningKey::generate(&mut g.rng);
        let me = Identity::new(&user, DeviceKeys::generate(&mut g.rng)).map_err(err)?;
        let r = SpaceReplica::create(&mut g.rng, me).map_err(err)?;
        g.reps.push(session(r)?);
        g.users.push(user);
        g.flush(0);
        Ok(g)
    }

    fn space_id(&self) -> [u8; 32] {
        self.reps.first().map(|r| *r.space_id()).unwrap_or_default()
    }

    /// A new user's device (not yet a member); returns its index and certificate.
    fn newcomer(&mut self) -> Result<(usize, Vec<u8>), String> {
        let user = SigningKey::generate(&mut self.rng);
        let me = Identity::new(&user, DeviceKeys::generate(&mut self.rng)).map_err(err)?;
        let cert = me.certificate.clone();
        let r = SpaceReplica::new(self.space_id(), me).map_err(err)?;
        self.reps.push(session(r)?);
        self.users.push(user);
        Ok((self.reps.len() - 1, cert))
    }

    fn user(&self, i: usize) -> [u8; 32] {
        self.users
            .get(i)
            .map(SigningKey::public_bytes)
            .unwrap_or_default()
    }

    /// Takes `from`'s outbox; records envelopes in the log; delivers nothing.
    fn take(&mut self, from: usize) -> Vec<Outgoing> {
        let out = self
            .reps
            .get_mut(from)
            .map(|s| {
                // A direct session never fails to flush; no local store here.
                let _ = s.flush();
                while s.poll_persist().is_some() {}
                std::iter::from_fn(|| s.poll_direct()).collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for o in &out {
            if let Outgoing::Envelope(e) = o {
                self.log.push(e.clone());
            }
        }
        out
    }

    fn deliver(&mut self, to: usize, out: &[Outgoing]) {
        let Some(r) = self.reps.get_mut(to) else {
            return;
        };
        let device = r.replica().identity().device_id();
        for o in out {
            match o {
                Outgoing::KeyMessage(k) => {
                    let _ = r.handle_key_message(k);
                }
                Outgoing::Envelope(e) => {
                    r.handle_envelope(e);
                }
                Outgoing::Welcome { device_id, bytes } if *device_id == device => {
                    let _ = r.handle_welcome(bytes);
                }
                Outgoing::Welcome { .. } => {}
            }
        }
    }

    /// Sends `from`'s outbox to `to` only (a partition).
    fn flush_to(&mut self, from: usize, to: &[usize]) {
        let out = self.take(from);
        for &t in to {
            if t != from {
                self.deliver(t, &out);
            }
        }
    }

    fn flush(&mut self, from: usize) {
        let all: Vec<usize> = (0..self.reps.len()).collect();
        self.flush_to(from, &all);
    }

    /// Reliable exchange among `who` until quiet, with acks and welcomes.
    fn settle(&mut self, who: &[usize]) -> Result<(), String> {
        for _ in 0..8 {
            for &i in who {
                self.flush_to(i, who);
            }
            // Full sync: every envelope and key message to everyone in `who`.
            for &i in who {
                let Some(r) = self.reps.get(i).map(Session::replica) else {
                    continue;
                };
                let mut out: Vec<Outgoing> = r
                    .key_messages()
                    .into_iter()
                    .map(Outgoing::KeyMessage)
                    .collect();
                out.extend(r.envelopes().into_iter().map(Outgoing::Envelope));
                for &t in who {
                    if t != i {
                        self.deliver(t, &out);
                    }
                }
            }
            let mut progress = false;
            for &i in who {
                let Some(r) = self.reps.get_mut(i) else {
                    continue;
                };
                // The session's follow-ups (admissions, acks, healing, welcomes).
                if r.follow_up_with(&mut self.rng, None).map_err(err)?.wrote() {
                    progress = true;
                }
            }
            if !progress {
                return Ok(());
            }
        }
        Ok(())
    }

    fn rep(&mut self, i: usize) -> Result<&mut SpaceReplica, String> {
        self.reps
            .get_mut(i)
            .map(Session::replica_mut)
            .ok_or_else(|| "no such device".to_string())
    }

    fn add(&mut self, by: usize, role: Role, scope: &Scope) -> Result<usize, String> {
        let (n, cert) = self.newcomer()?;
        let user = self.user(n);
        let mut rng = self.rng.clone();
        self.rep(by)?
            .add_member(&mut rng, &user, role, scope, &[cert])
            .map_err(err)?;
        self.rng = rng;
        Ok(n)
    }

    fn all_keys(&self) -> Vec<EpochKey> {
        let mut keys: Vec<EpochKey> = Vec::new();
        for r in &self.reps {
            for k in r.replica().keys().all() {
                if !keys.iter().any(|x| x.id() == k.id()) {
                    keys.push(k);
                }
            }
        }
        keys.sort_by_key(|k| *k.id());
        keys
    }

    /// The case input: the log in the given order and every epoch key.
    fn input(&self, order: &[usize]) -> Value {
        json!({
            "spaceId": hex(self.space_id()),
            "genesis": self.reps.first().and_then(|s| s.replica().genesis()).map(hex),
            "epochSecrets": self.all_keys().iter().map(|k| hex(k.secret())).collect::<Vec<_>>(),
            "log": order.iter().filter_map(|i| self.log.get(*i)).map(hex).collect::<Vec<_>>(),
        })
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Reader => "reader",
        Role::Writer => "writer",
        Role::Admin => "admin",
    }
}

/// Replays a case: the observer's output.
fn replay(input: &Value) -> Result<Value, String> {
    let space_id: [u8; 32] = get_arr(input, "spaceId")?;
    let secrets = get_hex_list(input, "epochSecrets")?;
    let log = get_hex_list(input, "log")?;
    let mut keys = Vec::new();
    for s in &secrets {
        let s: [u8; 32] = s.as_slice().try_into().map_err(|_| "secret length")?;
        keys.push(clientful_core::membership::epoch::epoch_key(&space_id, &s).map_err(err)?);
    }
    // The observer: a device of nobody, holding every key.
    let user = SigningKey::from_seed(&[0x0b; 32]);
    let me = Identity::new(
        &user,
        DeviceKeys {
            signing: SigningKey::from_seed(&[0x0d; 32]),
            x25519: clientful_core::keys::X25519Secret::from_bytes(&[0x0e; 32]),
        },
    )
    .map_err(err)?;
    // Pinned to the genesis the input names (MEM-26), as a device that joined
    // with a code; without one, to the first CREATE_SPACE it accepts.
    let mut obs = match input.get("genesis").and_then(Value::as_str) {
        Some(_) => SpaceReplica::join(space_id, get_arr(input, "genesis")?, me).map_err(err)?,
        None => SpaceReplica::new(space_id, me).map_err(err)?,
    };
    obs.import_keys(&keys);
    let mut received = Vec::new();
    for e in &log {
        received.push(obs.receive(e));
    }
    let mut verdicts = Vec::new();
    for (e, rcv) in log.iter().zip(&received) {
        let id = envelope::decode(e).map(|d| d.id).ok();
        let v = id.map(|id| obs.verdict(&id)).unwrap_or(Verdict::Unknown);
        let (name, class) = match (v, rcv) {
            (Verdict::Accepted, _) => ("accepted", None),
            (Verdict::Void(c), _) => ("void", Some(c)),
            (Verdict::Rejected(c), _) => ("rejected", Some(c)),
            (Verdict::Unknown, Received::Rejected { class, .. }) => ("rejected", Some(*class)),
            (Verdict::Unknown, _) => ("pending", None),
            (other, _) => return Err(format!("verdict this generator does not know: {other:?}")),
        };
        let mut j = json!({"id": id.map(hex), "verdict": name});
        if let Some(c) = class
            && let Some(o) = j.as_object_mut()
        {
            o.insert("error".into(), json!(class_name(c)));
        }
        verdicts.push(j);
    }
    let s = obs.state();
    let rival_rotations: Vec<Value> = obs
        .alarms()
        .iter()
        .filter_map(|a| match a {
            Alarm::RivalRotation { user, ops } => {
                let mut ops: Vec<String> = ops.iter().map(hex).collect();
                ops.sort();
                Some(json!({"user": hex(user), "ops": ops}))
            }
            _ => None,
        })
        .collect();
    let members: Vec<Value> = s
        .members
        .iter()
        .map(|(u, m)| {
            json!({
                "user": hex(u),
                "role": role_name(m.role),
                "scope": m.scope.0.iter().map(hex).collect::<Vec<_>>(),
                "devices": s.user_devices(u).iter().map(hex).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut out = json!({
        "verdicts": verdicts,
        "members": members,
        "removed": s.removed.keys().map(hex).collect::<Vec<_>>(),
        "frontier": s.frontier.iter().map(hex).collect::<Vec<_>>(),
        "currentEpoch": s.current_epoch().map(hex),
        "digest": hex(s.digest().map_err(err)?),
        "rivalGenesis": obs.rival_genesis().iter().map(hex).collect::<Vec<_>>(),
        "deviceIndices": obs
            .write_view()
            .claims
            .iter()
            .map(|(d, idx)| json!({"device": hex(d), "indices": idx}))
            .collect::<Vec<_>>(),
    });
    // User-key rotation (MEM-32): present only when there is something to say,
    // so the outputs of the other cases are unchanged.
    if let Some(o) = out.as_object_mut() {
        if !s.retired.is_empty() {
            o.insert(
                "retired".into(),
                json!(s.retired.keys().map(hex).collect::<Vec<_>>()),
            );
        }
        if !rival_rotations.is_empty() {
            o.insert("rivalRotations".into(), json!(rival_rotations));
        }
    }
    Ok(out)
}

/// Replays a key-delivery case (KEY-14 to KEY-17): a device given by its seeds,
/// holding some epochs, receives the membership log and then the carriers, in
/// order. The output is each carrier's disposition on arrival, the epochs the
/// device holds at the end, the epochs announced without a box for it, and the
/// current epoch of its resolved state.
fn deliver(input: &Value) -> Result<Value, String> {
    let space_id: [u8; 32] = get_arr(input, "spaceId")?;
    let dev = input.get("device").ok_or("no device")?;
    let user: [u8; 32] = get_arr(dev, "userSeed")?;
    let signing: [u8; 32] = get_arr(dev, "signingSeed")?;
    let x: [u8; 32] = get_arr(dev, "x25519")?;
    let me = Identity::new(
        &SigningKey::from_seed(&user),
        DeviceKeys {
            signing: SigningKey::from_seed(&signing),
            x25519: clientful_core::keys::X25519Secret::from_bytes(&x),
        },
    )
    .map_err(err)?;
    let mut obs = SpaceReplica::new(space_id, me).map_err(err)?;
    let mut keys = Vec::new();
    for s in get_hex_list(input, "epochSecrets")? {
        let s: [u8; 32] = s.as_slice().try_into().map_err(|_| "secret length")?;
        keys.push(clientful_core::membership::epoch::epoch_key(&space_id, &s).map_err(err)?);
    }
    obs.import_keys(&keys);
    for e in get_hex_list(input, "log")? {
        obs.receive(&e);
    }
    let mut dispositions = Vec::new();
    for c in get_hex_list(input, "carriers")? {
        let id = envelope::decode(&c).map(|d| hex(d.id)).ok();
        let (name, class) = match obs.receive(&c) {
            Received::Delivered => ("delivered", None),
            Received::Held => ("held", None),
            Received::Duplicate => ("duplicate", None),
            Received::Rejected { class, .. } => ("rejected", Some(class)),
            Received::Accepted(_) | Received::Buffered => ("operation", None),
            other => {
                return Err(format!(
                    "disposition this generator does not know: {other:?}"
                ));
            }
        };
        let mut j = json!({"id": id, "disposition": name});
        if let Some(c) = class
            && let Some(o) = j.as_object_mut()
        {
            o.insert("error".into(), json!(class_name(c)));
        }
        dispositions.push(j);
    }
    let mut held: Vec<String> = obs.keys().all().iter().map(|k| hex(k.id())).collect();
    held.sort();
    let alarms: Vec<Value> = obs
        .alarms()
        .iter()
        .filter_map(|a| match a {
            Alarm::ForeignWelcome {
                device_id, class, ..
            } => Some(json!({
                "alarm": "foreignWelcome",
                "signer": hex(device_id),
                "error": class_name(*class),
            })),
            _ => None,
        })
        .collect();
    Ok(json!({
        "carriers": dispositions,
        "epochsHeld": held,
        "welcomeAlarms": alarms,
        "lockedOut": obs.locked_out_epochs().iter().map(hex).collect::<Vec<_>>(),
        "currentEpoch": obs.state().current_epoch().map(hex),
    }))
}

/// Runs one case.
pub fn run(operation: &str, _params: &Value, input: &Value) -> Result<Outcome, String> {
    match operation {
        "resolve" => Ok(Outcome::Accepted(replay(input)?)),
        "deliver" => Ok(Outcome::Accepted(deliver(input)?)),
        other => Err(format!("unknown operation {other}")),
    }
}

/// Checks the reference against the intended verdict classes, in log order.
fn intend(out: &Value, intended: &[&str]) -> Result<(), String> {
    let vs = out
        .get("verdicts")
        .and_then(Value::as_array)
        .ok_or("no verdicts")?;
    let got: Vec<String> = vs
        .iter()
        .map(|v| {
            let verdict = v.get("verdict").and_then(Value::as_str).unwrap_or("?");
            match v.get("error").and_then(Value::as_str) {
                Some(e) => format!("{verdict}:{e}"),
                None => verdict.to_string(),
            }
        })
        .collect();
    let want: Vec<String> = intended.iter().map(|s| s.to_string()).collect();
    if got != want {
        return Err(format!("intended {want:?}, reference says {got:?}"));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn case(
    f: &mut FileBuilder,
    g: &Group,
    name: &str,
    desc: &str,
    refs: &[&str],
    flags: &[&str],
    order: &[usize],
    intended: &[&str],
) -> Result<(), String> {
    let input = g.input(order);
    let out = replay(&input)?;
    intend(&out, intended).map_err(|e| format!("{name}: {e}"))?;
    f.valid(name, desc, refs, flags, input, out);
    Ok(())
}

/// Both orders of one scenario: causal, and reversed (the observer buffers).
#[allow(clippy::too_many_arguments)]
fn both(
    f: &mut FileBuilder,
    g: &Group,
    name: &str,
    desc: &str,
    refs: &[&str],
    flags: &[&str],
    intended: &[&str],
) -> Result<(), String> {
    let n = g.log.len();
    let fwd: Vec<usize> = (0..n).collect();
    case(f, g, name, desc, refs, flags, &fwd, intended)?;
    let rev: Vec<usize> = (0..n).rev().collect();
    let rev_intended: Vec<&str> = intended.iter().rev().copied().collect();
    let mut flags2: Vec<&str> = flags.to_vec();
    flags2.push("Reordered");
    case(
        f,
        g,
        &format!("{name}-reversed"),
        &format!("{desc} Delivered in reverse order: same verdicts and state."),
        refs,
        &flags2,
        &rev,
        &rev_intended,
    )
}

const A: &str = "accepted";

/// Sets the intended verdict of the `back`-th operation from the end (1: last).
fn mark<'a>(intended: &mut [&'a str], back: usize, verdict: &'a str) {
    let i = intended.len().checked_sub(back);
    if let Some(slot) = i.and_then(|i| intended.get_mut(i)) {
        *slot = verdict;
    }
}

/// Builds the file from the family's fixed seed.
pub fn generate() -> Result<VectorFile, String> {
    generate_seeded(SEED)
}

/// Builds the file from `seed`: the fixed seed gives the committed file, any
/// other seed fresh cases of the same shape (CONF-53).
#[allow(clippy::too_many_lines)]
pub fn generate_seeded(seed: &str) -> Result<VectorFile, String> {
    let mut f = FileBuilder::new(
        "membership",
        seed,
        "Membership logs: signed operations in (with every epoch secret), the verdict of each \
         (accepted, void or rejected, with its class) and the resulting members, roles, scopes, \
         removed users, frontier, current epoch and membership digest out.",
    );
    for (flag, bug, desc) in [
        (
            "Basic",
            "BASIC",
            "Ordinary operations by authorised members.",
        ),
        (
            "Reordered",
            "DEFINED",
            "The log delivered out of causal order.",
        ),
        (
            "Unauthorized",
            "AUTH_BYPASS",
            "An operation by someone without the capability.",
        ),
        (
            "PostRemoval",
            "AUTH_BYPASS",
            "An operation whose causal past holds its author's removal.",
        ),
        (
            "StrongRemoval",
            "DEFINED",
            "Operations concurrent with their author's removal are void.",
        ),
        (
            "MutualRemoval",
            "DEFINED",
            "Two admins remove each other: seniority decides.",
        ),
        (
            "SingleUse",
            "DEFINED",
            "A single-use invite redeemed twice concurrently.",
        ),
        (
            "Escalation",
            "AUTH_BYPASS",
            "A redemption asking for more than the invite grants.",
        ),
        (
            "ConcurrentRotation",
            "DEFINED",
            "Two rotations at once: a forked frontier.",
        ),
        (
            "Malformed",
            "MALFORMED",
            "An operation body that breaks the shape rules.",
        ),
        (
            "DeviceIndex",
            "DEFINED",
            "Device index claims under concurrent, late and crafted additions (MEM-30).",
        ),
    ] {
        f.note(flag, bug, desc);
    }
    f.group(
        "resolve",
        "Deliver `log` (hex envelopes) in order to an observer holding the epochs of \
         `epochSecrets`; report each operation's verdict and the resolved state (MEM-17).",
        json!({}),
    );

    // 0. A rival genesis (issue 22 finding 1, MEM-26, MEM-27).
    rival_genesis_cases(&mut f, seed)?;
    // 0b. User-key rotation (issue 18 item 3, MEM-32, §5.7).
    rotation_cases(&mut f, seed)?;

    // 1. Basic: create, add a writer, a reader, change a role, rotate.
    let mut g = Group::new(family_rng(&format!("{seed}/basic")))?;
    let b = g.add(0, Role::Writer, &Scope::whole())?;
    g.settle(&[0, b])?;
    let c = g.add(0, Role::Reader, &Scope(vec![[0x11; 32]]))?;
    g.settle(&[0, b, c])?;
    let bu = g.user(b);
    let mut rng = g.rng.clone();
    g.rep(0)?
        .change_role(&mut rng, &bu, Role::Admin, &Scope::whole())
        .map_err(err)?;
    g.rep(0)?.rotate(&mut rng).map_err(err)?;
    g.rng = rng;
    g.settle(&[0, b, c])?;
    let intended: Vec<&str> = vec![A; g.log.len()];
    both(
        &mut f,
        &g,
        "create-add-change-rotate",
        "A space is created, a writer and a scoped reader are added, the writer is made admin and \
         keys rotate; acknowledgements settle the additions.",
        &[
            "MEM-6", "MEM-8", "MEM-9", "MEM-13", "MEM-14", "MEM-15", "MEM-17", "KEY-4",
        ],
        &["Basic"],
        &intended,
    )?;

    // 2. Unauthorized: a reader adds a member; a removed member writes after its removal.
    let mut g = Group::new(family_rng(&format!("{seed}/unauthorized")))?;
    let r = g.add(0, Role::Reader, &Scope::whole())?;
    let w = g.add(0, Role::Writer, &Scope::whole())?;
    g.settle(&[0, r, w])?;
    let (x, xcert) = g.newcomer()?;
    let xu = g.user(x);
    let body = BodyBuilder(pb::MembershipOp {
        user_key: xu.to_vec(),
        role: 2,
        certificates: vec![xcert],
        ..Default::default()
    })
    .encode();
    let key = g.rep(r)?.current_epoch().ok_or("no epoch")?;
    let mut rng = g.rng.clone();
    let forged = g
        .rep(r)?
        .seal_unchecked(&mut rng, ops::CT_ADD_MEMBER, &body, &key)
        .map_err(err)?;
    g.log.push(forged);
    let wu = g.user(w);
    g.rep(0)?.remove_member(&mut rng, &wu, &[]).map_err(err)?;
    g.rng = rng;
    g.flush(0);
    // The removed writer, given the new key by a colluder, acknowledges after it.
    let keys = g.all_keys();
    g.rep(w)?.import_keys(&keys);
    let log_now: Vec<Outgoing> = g
        .reps
        .first()
        .map(|r0| {
            r0.replica()
                .envelopes()
                .into_iter()
                .map(Outgoing::Envelope)
                .collect()
        })
        .unwrap_or_default();
    g.deliver(w, &log_now);
    let cur = g.rep(0)?.current_epoch().ok_or("no epoch")?;
    let mut rng = g.rng.clone();
    let late = g
        .rep(w)?
        .seal_unchecked(&mut rng, ops::CT_ACK, &[], &cur)
        .map_err(err)?;
    g.rng = rng;
    g.log.push(late);
    let n = g.log.len();
    let mut intended = vec![A; n];
    mark(&mut intended, 3, "rejected:NOT_A_MEMBER");
    mark(&mut intended, 1, "rejected:REMOVED_MEMBER");
    let fwd: Vec<usize> = (0..n).collect();
    case(
        &mut f,
        &g,
        "reader-adds-and-removed-writes",
        "A reader's ADD_MEMBER is NOT_A_MEMBER; an ACK by a removed member whose causal past holds \
         its removal is REMOVED_MEMBER.",
        &["MEM-17", "MEM-10", "MEM-8"],
        &["Unauthorized", "PostRemoval"],
        &fwd,
        &intended,
    )?;

    // 3. Mutual removal: the senior admin's removal stands.
    let mut g = Group::new(family_rng(&format!("{seed}/mutual")))?;
    let b = g.add(0, Role::Admin, &Scope::whole())?;
    g.settle(&[0, b])?;
    let c = g.add(0, Role::Admin, &Scope::whole())?;
    g.settle(&[0, b, c])?;
    let (bu, cu) = (g.user(b), g.user(c));
    let mut rng = g.rng.clone();
    g.rep(b)?.remove_member(&mut rng, &cu, &[]).map_err(err)?;
    g.rep(c)?.remove_member(&mut rng, &bu, &[]).map_err(err)?;
    g.rng = rng;
    g.flush(b);
    g.flush(c);
    let n = g.log.len();
    let mut intended = vec![A; n];
    mark(&mut intended, 1, "void:REMOVED_MEMBER");
    both(
        &mut f,
        &g,
        "mutual-removal-seniority",
        "Two admins remove each other concurrently; the one made admin first stands, the other's \
         removal is void.",
        &["MEM-17", "MEM-10", "KEY-11"],
        &["MutualRemoval"],
        &intended,
    )?;

    // 4. An admin adds someone while being removed: the addition is void.
    let mut g = Group::new(family_rng(&format!("{seed}/add-while-removed")))?;
    let b = g.add(0, Role::Admin, &Scope::whole())?;
    g.settle(&[0, b])?;
    let (c, ccert) = g.newcomer()?;
    let (bu, cu) = (g.user(b), g.user(c));
    let mut rng = g.rng.clone();
    g.rep(0)?.remove_member(&mut rng, &bu, &[]).map_err(err)?;
    g.rep(b)?
        .add_member(&mut rng, &cu, Role::Writer, &Scope::whole(), &[ccert])
        .map_err(err)?;
    g.rng = rng;
    g.flush(0);
    g.flush(b);
    let n = g.log.len();
    let mut intended = vec![A; n];
    mark(&mut intended, 1, "void:REMOVED_MEMBER");
    both(
        &mut f,
        &g,
        "add-by-concurrently-removed-admin",
        "An admin adds a user concurrently with its own removal: strong removal voids the addition.",
        &["MEM-17", "MEM-8", "MEM-15"],
        &["StrongRemoval"],
        &intended,
    )?;

    // 5. Single-use invite redeemed twice; and an escalating redemption.
    invite_cases(&mut f, seed)?;

    // 6. Concurrent rotations: the frontier forks.
    let mut g = Group::new(family_rng(&format!("{seed}/rotations")))?;
    let b = g.add(0, Role::Admin, &Scope::whole())?;
    g.settle(&[0, b])?;
    let mut rng = g.rng.clone();
    g.rep(0)?.rotate(&mut rng).map_err(err)?;
    g.rep(b)?.rotate(&mut rng).map_err(err)?;
    g.rng = rng;
    g.flush(0);
    g.flush(b);
    let intended: Vec<&str> = vec![A; g.log.len()];
    both(
        &mut f,
        &g,
        "concurrent-rotations",
        "Two admins rotate concurrently: both epochs are in the frontier and the current epoch is \
         the lower id.",
        &["MEM-13", "KEY-4", "KEY-11", "KEY-12"],
        &["ConcurrentRotation"],
        &intended,
    )?;

    // 7. Malformed: an ACK with a field it does not use.
    let mut g = Group::new(family_rng(&format!("{seed}/malformed")))?;
    let body = BodyBuilder(pb::MembershipOp {
        role: 1,
        ..Default::default()
    })
    .encode();
    let key = g.rep(0)?.current_epoch().ok_or("no epoch")?;
    let mut rng = g.rng.clone();
    let bad = g
        .rep(0)?
        .seal_unchecked(&mut rng, ops::CT_ACK, &body, &key)
        .map_err(err)?;
    g.rng = rng;
    g.log.push(bad);
    let n = g.log.len();
    let mut intended = vec![A; n];
    mark(&mut intended, 1, "rejected:MALFORMED");
    let fwd: Vec<usize> = (0..n).collect();
    case(
        &mut f,
        &g,
        "unused-field",
        "An ACK that carries a role: MALFORMED.",
        &["MEM-4", "MEM-23"],
        &["Malformed"],
        &fwd,
        &intended,
    )?;
    let _ = ErrorClass::Malformed;
    error_class_cases(&mut f, seed)?;
    device_index_cases(&mut f, seed)?;
    delivery_cases(&mut f, seed)?;
    Ok(f.finish())
}

#[allow(clippy::too_many_arguments)]
/// One operation the creator seals with `body` under content type `ct`, after
/// the genesis: the case isolates the class of that operation alone.
fn one_bad_op(
    f: &mut FileBuilder,
    seed: &str,
    name: &str,
    desc: &str,
    refs: &[&str],
    ct: u32,
    body: pb::MembershipOp,
    tamper: bool,
    verdict: &str,
) -> Result<(), String> {
    let mut g = Group::new(family_rng(&format!("{seed}/{name}")))?;
    let body = BodyBuilder(body).encode();
    let key = g.rep(0)?.current_epoch().ok_or("no epoch")?;
    let mut rng = g.rng.clone();
    let mut bad = g
        .rep(0)?
        .seal_unchecked(&mut rng, ct, &body, &key)
        .map_err(err)?;
    g.rng = rng;
    if tamper {
        // The last byte of the signature: the envelope no longer opens.
        if let Some(b) = bad.last_mut() {
            *b ^= 1;
        }
    }
    g.log.push(bad);
    let n = g.log.len();
    let mut intended = vec![A; n];
    mark(&mut intended, 1, verdict);
    let fwd: Vec<usize> = (0..n).collect();
    case(f, &g, name, desc, refs, &["Malformed"], &fwd, &intended)
}

/// Cases that give the class of the membership checks the text names one by one
/// (issue 17): an admin role with a scope, ADD_DEVICE without exactly one
/// certificate, and an operation whose envelope does not open.
fn error_class_cases(f: &mut FileBuilder, seed: &str) -> Result<(), String> {
    let creator = {
        let g = Group::new(family_rng(&format!("{seed}/admin-with-scope")))?;
        g.user(0)
    };
    one_bad_op(
        f,
        seed,
        "admin-with-scope",
        "The creator makes itself admin with a one-document scope (CHANGE_ROLE): an admin's \
         scope is the whole space (MEM-7), so INVALID_OPERATION at MEM-17 step 1.4.",
        &["MEM-7", "MEM-9", "MEM-17"],
        ops::CT_CHANGE_ROLE,
        pb::MembershipOp {
            user_key: creator.to_vec(),
            role: 3,
            scope: vec![[0x42; 32].to_vec()],
            ..Default::default()
        },
        false,
        "rejected:INVALID_OPERATION",
    )?;
    one_bad_op(
        f,
        seed,
        "add-device-no-certificate",
        "ADD_DEVICE with no certificate (it takes exactly one): MALFORMED when the body is \
         decoded (MEM-3, MEM-5; MEM-23 step 2).",
        &["MEM-3", "MEM-5", "MEM-23"],
        ops::CT_ADD_DEVICE,
        pb::MembershipOp::default(),
        false,
        "rejected:MALFORMED",
    )?;
    one_bad_op(
        f,
        seed,
        "envelope-does-not-open",
        "An ACK whose envelope signature was changed: opening fails (ENV-5) at MEM-23 step 1, so \
         the operation is not recorded; `resolve` reports it rejected with the opening's class \
         (BAD_SIGNATURE) under the envelope id.",
        &["MEM-23", "ENV-23"],
        ops::CT_ACK,
        pb::MembershipOp::default(),
        true,
        "rejected:BAD_SIGNATURE",
    )
}

/// Device index claims (MEM-30): two admins on two partitions each add a
/// device, and a member adds a device of its own with crafted predecessors (only
/// the operation that added it), so that addition has the lowest depth. Under
/// the earlier admission order the late, low-depth addition renumbered the
/// others; the claims are the same whatever the delivery order.
fn device_index_cases(f: &mut FileBuilder, seed: &str) -> Result<(), String> {
    let mut g = Group::new(family_rng(&format!("{seed}/device-indices")))?;
    let b = g.add(0, Role::Admin, &Scope::whole())?;
    g.settle(&[0, b])?;
    let m = g.add(0, Role::Writer, &Scope::whole())?;
    g.settle(&[0, b, m])?;
    // Partitions: A adds X, B adds Y, neither sees the other's.
    let (x, xcert) = g.newcomer()?;
    let (y, ycert) = g.newcomer()?;
    let (xu, yu) = (g.user(x), g.user(y));
    let mut rng = g.rng.clone();
    g.rep(0)?
        .add_member(&mut rng, &xu, Role::Writer, &Scope::whole(), &[xcert])
        .map_err(err)?;
    g.rep(b)?
        .add_member(&mut rng, &yu, Role::Writer, &Scope::whole(), &[ycert])
        .map_err(err)?;
    g.rng = rng;
    g.flush_to(0, &[0]);
    g.flush_to(b, &[b]);
    // M's own new device, added with crafted predecessors.
    let user = g.users.get(m).ok_or("no such user")?;
    let z = DeviceKeys::generate(&mut g.rng);
    let zcert = clientful_core::identity::issue_certificate(user, &z).map_err(err)?;
    let r = g
        .reps
        .get(m)
        .map(Session::replica)
        .ok_or("no such device")?;
    let crafted =
        clientful_core::testkit::forge::crafted_add_device(&mut g.rng, r, &zcert).map_err(err)?;
    g.log.push(crafted);
    let intended = vec![A; g.log.len()];
    both(
        f,
        &g,
        "late-concurrent-device-additions",
        "Two admins on two partitions each add a user's device, and a writer adds a device of its \
         own whose only predecessor is the operation that added the writer (the lowest depth). \
         Every addition stands, and each device's index is the one its adding operation claims \
         (MEM-30): the adder's path, then the count of devices the adder listed before plus the \
         position; the same in causal and reversed delivery, none shared.",
        &["MEM-30", "MEM-31", "DOC-19"],
        &["DeviceIndex"],
        &intended,
    )
}

/// The `deliver` group (KEY-14 to KEY-17): carriers of key messages and welcomes.
/// A new user's redemption of `code` asking for `role`: the redeemer's replica
/// index; its envelope is in the log.
fn redeem(g: &mut Group, code: &[u8], role: Role) -> Result<usize, String> {
    let user = SigningKey::generate(&mut g.rng);
    let me = Identity::new(&user, DeviceKeys::generate(&mut g.rng)).map_err(err)?;
    let mut rng = g.rng.clone();
    let r = SpaceReplica::redeem(&mut rng, code, me, role).map_err(err)?;
    g.rng = rng;
    g.reps.push(session(r)?);
    g.users.push(user);
    let i = g.reps.len() - 1;
    let _ = g.take(i);
    Ok(i)
}

/// The id of the `back`-th logged envelope from the end.
fn logged_id(g: &Group, back: usize) -> Result<[u8; 32], String> {
    g.log
        .len()
        .checked_sub(back)
        .and_then(|i| g.log.get(i))
        .and_then(|e| envelope::decode(e).ok())
        .map(|d| d.id)
        .ok_or_else(|| "no such logged envelope".to_string())
}

/// An `ADMIT` of `redemption` sealed by `by` without checks (a Byzantine or
/// mistaken admin), logged.
fn admit_unchecked(g: &mut Group, by: usize, redemption: &[u8; 32]) -> Result<(), String> {
    let body = BodyBuilder(pb::MembershipOp {
        redemption: redemption.to_vec(),
        ..Default::default()
    })
    .encode();
    let mut rng = g.rng.clone();
    let r = g.rep(by)?;
    let k = r.current_epoch().ok_or("no current epoch")?;
    let bytes = r
        .seal_unchecked(&mut rng, ops::CT_ADMIT, &body, &k)
        .map_err(err)?;
    g.rng = rng;
    g.log.push(bytes);
    Ok(())
}

/// Invites and admissions (MEM-21, MEM-22, MEM-25, MEM-17 (b)-(d)).
#[allow(clippy::too_many_lines)]
fn invite_cases(f: &mut FileBuilder, seed: &str) -> Result<(), String> {
    // Two redemptions of one single-use invite and an escalating one; the
    // admin admits the second: the first admitted is the only one.
    let mut g = Group::new(family_rng(&format!("{seed}/invites")))?;
    let mut rng = g.rng.clone();
    let code = g
        .rep(0)?
        .create_invite(&mut rng, Role::Writer, &Scope::whole(), true, 0)
        .map_err(err)?;
    g.rng = rng;
    g.flush(0);
    let mut reds = Vec::new();
    for role in [Role::Writer, Role::Writer, Role::Admin] {
        redeem(&mut g, &code, role)?;
        reds.push(logged_id(&g, 1)?);
    }
    let all: Vec<Vec<u8>> = g.log.clone();
    for e in &all {
        g.rep(0)?.receive(e);
    }
    let second = *reds.get(1).ok_or("no redemption")?;
    let mut rng = g.rng.clone();
    g.rep(0)?.admit(&mut rng, &second).map_err(err)?;
    g.rng = rng;
    let _ = g.take(0);
    let mut intended = vec![A; g.log.len()];
    mark(&mut intended, 4, "void:INVALID_OPERATION");
    mark(&mut intended, 2, "rejected:INVALID_OPERATION");
    both(
        f,
        &g,
        "single-use-twice-and-escalation",
        "Two users redeem one single-use invite and a third asks for admin with a writer invite          (rejected). The admin admits the second redemption: it stands whatever the ids, and the          other redemption is void.",
        &["MEM-17", "MEM-19", "MEM-21", "MEM-25"],
        &["SingleUse", "Escalation"],
        &intended,
    )?;

    // A used single-use invite: a stranger redeems it after the admission; an
    // ADMIT of the stranger that saw the first admission is rejected.
    let (stranger, stranger_id) = {
        let i = redeem(&mut g, &code, Role::Writer)?;
        (i, logged_id(&g, 1)?)
    };
    let last = g.log.last().cloned().ok_or("empty log")?;
    g.rep(0)?.receive(&last);
    admit_unchecked(&mut g, 0, &stranger_id)?;
    let _ = stranger;
    let mut intended = vec![A; g.log.len()];
    mark(&mut intended, 6, "void:INVALID_OPERATION");
    mark(&mut intended, 4, "rejected:INVALID_OPERATION");
    mark(&mut intended, 2, "void:INVALID_OPERATION");
    mark(&mut intended, 1, "rejected:INVALID_OPERATION");
    both(
        f,
        &g,
        "used-single-use-invite",
        "After a single-use invite's redemption was admitted, a stranger holding the used code          redeems it: the redemption is void, and an ADMIT of it that saw the first admission is          rejected. The member who used the code stays.",
        &["MEM-17", "MEM-21", "MEM-25"],
        &["SingleUse"],
        &intended,
    )?;

    // Two admins on two partitions admit two redemptions of one single-use
    // invite concurrently: the admission with the lower position wins.
    let mut g = Group::new(family_rng(&format!("{seed}/concurrent-admissions")))?;
    let b = g.add(0, Role::Admin, &Scope::whole())?;
    g.settle(&[0, b])?;
    let mut rng = g.rng.clone();
    let code = g
        .rep(0)?
        .create_invite(&mut rng, Role::Writer, &Scope::whole(), true, 0)
        .map_err(err)?;
    g.rng = rng;
    g.flush_to(0, &[0, b]);
    let r1 = {
        redeem(&mut g, &code, Role::Writer)?;
        logged_id(&g, 1)?
    };
    let r2 = {
        redeem(&mut g, &code, Role::Writer)?;
        logged_id(&g, 1)?
    };
    let (e1, e2) = (
        g.log
            .len()
            .checked_sub(2)
            .and_then(|i| g.log.get(i))
            .cloned()
            .ok_or("log")?,
        g.log.last().cloned().ok_or("log")?,
    );
    g.rep(0)?.receive(&e1);
    g.rep(b)?.receive(&e2);
    let mut rng = g.rng.clone();
    g.rep(0)?.admit(&mut rng, &r1).map_err(err)?;
    g.rep(b)?.admit(&mut rng, &r2).map_err(err)?;
    g.rng = rng;
    let _ = g.take(0);
    let _ = g.take(b);
    let n = g.log.len();
    let adm: Vec<[u8; 32]> = [2usize, 1]
        .iter()
        .map(|back| logged_id(&g, *back))
        .collect::<Result<_, _>>()?;
    // Equal depth: the lower id has the lower position.
    let first_wins = adm.first() < adm.get(1);
    let mut intended = vec![A; n];
    let lose = "void:INVALID_OPERATION";
    if first_wins {
        mark(&mut intended, 3, lose);
        mark(&mut intended, 1, lose);
    } else {
        mark(&mut intended, 4, lose);
        mark(&mut intended, 2, lose);
    }
    both(
        f,
        &g,
        "concurrent-admissions",
        "Two admins on two partitions admit two redemptions of one single-use invite: the          admission with the lower position (depth, then id) stands; the other redemption and          its admission are void.",
        &["MEM-17", "MEM-25"],
        &["SingleUse"],
        &intended,
    )?;

    // Seniority follows admission: an old admin invite redeemed late makes its
    // redeemer junior to a member admitted earlier; mutual removal.
    let mut g = Group::new(family_rng(&format!("{seed}/seniority")))?;
    let mut rng = g.rng.clone();
    let old = g
        .rep(0)?
        .create_invite(&mut rng, Role::Admin, &Scope::whole(), true, 0)
        .map_err(err)?;
    let newer = g
        .rep(0)?
        .create_invite(&mut rng, Role::Admin, &Scope::whole(), true, 0)
        .map_err(err)?;
    g.rng = rng;
    g.flush(0);
    let dave = redeem(&mut g, &newer, Role::Admin)?;
    let last = g.log.last().cloned().ok_or("log")?;
    g.rep(0)?.receive(&last);
    g.settle(&[0, dave])?;
    let eve = redeem(&mut g, &old, Role::Admin)?;
    let last = g.log.last().cloned().ok_or("log")?;
    g.rep(0)?.receive(&last);
    g.settle(&[0, dave, eve])?;
    let (du, eu) = (g.user(dave), g.user(eve));
    let mut rng = g.rng.clone();
    g.rep(dave)?
        .remove_member(&mut rng, &eu, &[])
        .map_err(err)?;
    g.rep(eve)?.remove_member(&mut rng, &du, &[]).map_err(err)?;
    g.rng = rng;
    let _ = g.take(dave);
    let _ = g.take(eve);
    let mut intended = vec![A; g.log.len()];
    mark(&mut intended, 1, "void:REMOVED_MEMBER");
    both(
        f,
        &g,
        "seniority-follows-admission",
        "An admin invite created first but redeemed last: its redeemer is junior to the admin          admitted before, whose removal of it stands when they remove each other.",
        &["MEM-17", "MEM-25"],
        &["MutualRemoval"],
        &intended,
    )?;

    // A demoted admin's invite admits nobody: the redemption concurrent with
    // the demotion is void, and an ADMIT after it is rejected.
    let mut g = Group::new(family_rng(&format!("{seed}/closed-invite")))?;
    let c = g.add(0, Role::Admin, &Scope::whole())?;
    g.settle(&[0, c])?;
    let mut rng = g.rng.clone();
    let code = g
        .rep(c)?
        .create_invite(&mut rng, Role::Writer, &Scope::whole(), false, 0)
        .map_err(err)?;
    g.rng = rng;
    g.settle(&[0, c])?;
    let cu = g.user(c);
    let mut rng = g.rng.clone();
    g.rep(0)?
        .change_role(&mut rng, &cu, Role::Writer, &Scope::whole())
        .map_err(err)?;
    g.rng = rng;
    g.flush(0);
    let red = {
        redeem(&mut g, &code, Role::Writer)?;
        logged_id(&g, 1)?
    };
    let last = g.log.last().cloned().ok_or("log")?;
    g.rep(0)?.receive(&last);
    admit_unchecked(&mut g, 0, &red)?;
    let mut intended = vec![A; g.log.len()];
    mark(&mut intended, 2, "void:INVALID_OPERATION");
    mark(&mut intended, 1, "rejected:INVALID_OPERATION");
    both(
        f,
        &g,
        "demoted-admins-invite",
        "An admin creates a reusable invite and is demoted: a redemption of it is void (the          demotion closed the invite) and an ADMIT of it is rejected.",
        &["MEM-17", "MEM-22", "MEM-25"],
        &["Unauthorized"],
        &intended,
    )?;
    Ok(())
}

/// A device key certified by the creator's user key signs a second
/// `CREATE_SPACE` (same user key and nonce, so the same space id) whose
/// envelope id is below the real genesis. The observer is pinned to the real
/// genesis: the rival is rejected and reported, whatever the order.
fn rival_genesis_cases(f: &mut FileBuilder, seed: &str) -> Result<(), String> {
    use clientful_core::membership::ops::OpBody;
    use clientful_core::testkit::forge::{self, RivalGenesis};
    f.note(
        "RivalGenesis",
        "AUTH_BYPASS",
        "A second CREATE_SPACE of the space, signed by a device of the creator's user.",
    );
    let mut g = Group::new(family_rng(&format!("{seed}/rival-genesis")))?;
    let b = g.add(0, Role::Admin, &Scope::whole())?;
    g.settle(&[0, b])?;
    let real = g.rep(0)?.genesis().ok_or("no genesis")?;
    let nonce = match g.rep(0)?.op(&real).map(|o| &o.body) {
        Some(OpBody::CreateSpace { nonce, .. }) => *nonce,
        _ => return Err("genesis is not CREATE_SPACE".into()),
    };
    let space_id = g.space_id();
    let creator = SigningKey::from_seed(&g.users.first().ok_or("no creator")?.seed());
    let mut rng = g.rng.clone();
    let forged = forge::rival_genesis(&mut rng, &creator, space_id, nonce, Some(&real));
    g.rng = rng;
    let RivalGenesis {
        envelope: rival,
        epoch: e,
        ..
    } = forged.map_err(err)?;
    let n = g.log.len();
    for (name, reversed) in [
        ("rival-genesis-is-evidence", false),
        ("rival-genesis-is-evidence-reversed", true),
    ] {
        let order: Vec<usize> = if reversed {
            (0..n).rev().collect()
        } else {
            (0..n).collect()
        };
        let mut input = g.input(&order);
        let obj = input.as_object_mut().ok_or("input")?;
        if let Some(Value::Array(log)) = obj.get_mut("log") {
            if reversed {
                log.push(json!(hex(&rival)));
            } else {
                log.insert(0, json!(hex(&rival)));
            }
        }
        if let Some(Value::Array(ks)) = obj.get_mut("epochSecrets") {
            ks.push(json!(hex(e.secret())));
        }
        let out = replay(&input)?;
        let mut intended: Vec<&str> = vec![A; n];
        if reversed {
            intended.push("rejected:INVALID_OPERATION");
        } else {
            intended.insert(0, "rejected:INVALID_OPERATION");
        }
        intend(&out, &intended).map_err(|e| format!("{name}: {e}"))?;
        let rival_id = hex(envelope::decode(&rival).map_err(err)?.id);
        if out.get("rivalGenesis") != Some(&json!([rival_id])) {
            return Err(format!("{name}: the rival is not reported: {out}"));
        }
        let mut flags = vec!["RivalGenesis"];
        if reversed {
            flags.push("Reordered");
        }
        f.valid(
            name,
            "A device key certified by the creator's user key signs a second CREATE_SPACE with \
             the creator's user key and the genesis nonce (the same space id) and an envelope id \
             below the real one. The observer, pinned to the genesis it was given, rejects it \
             (INVALID_OPERATION) and reports it as rival-genesis evidence; the real genesis and \
             everything after it stand.",
            &["MEM-6", "MEM-17", "MEM-26", "MEM-27"],
            &flags,
            input,
            out,
        );
    }
    Ok(())
}

fn delivery_cases(f: &mut FileBuilder, seed: &str) -> Result<(), String> {
    use clientful_core::membership::delivery;
    use clientful_core::membership::epoch::{self, Recipient};
    f.note(
        "KeyDelivery",
        "DEFINED",
        "Key messages and welcomes carried as envelopes of the delivery document.",
    );
    f.group(
        "deliver",
        "A device (its seeds given) holding some epochs receives the membership log, then \
         key-delivery carriers in order: each carrier's disposition, the epochs held at the end, \
         the epochs announced without a box for it, and its current epoch.",
        json!({}),
    );
    let mut g = Group::new(family_rng(&format!("{seed}/deliver")))?;
    let b = g.add(0, Role::Writer, &Scope::whole())?;
    let c = g.add(0, Role::Writer, &Scope::whole())?;
    g.settle(&[0, b, c])?;
    let old = g.rep(0)?.current_epoch().ok_or("no epoch")?;
    let user_c = g.user(c);
    let mut rng = g.rng.clone();
    g.rep(0)?
        .remove_member(&mut rng, &user_c, &[])
        .map_err(err)?;
    let out = g.take(0);
    let km = out
        .iter()
        .find_map(|o| match o {
            Outgoing::KeyMessage(k) => Some(k.clone()),
            _ => None,
        })
        .ok_or("no key message")?;
    let carriers = g.rep(0)?.key_message_carriers(&mut rng, &km).map_err(err)?;
    let (_, km_carrier) = carriers.first().cloned().ok_or("no carrier")?;
    let new = g.rep(0)?.current_epoch().ok_or("no new epoch")?;
    let me0 = g.reps.first().map(Session::replica).ok_or("no creator")?;
    let device0 = SigningKey::from_seed(&me0.identity().device.signing.seed());
    // A welcome sealed to c, carried under the new epoch (b opens the carrier, not the box).
    let to_c = {
        let r = g.reps.get(c).map(Session::replica).ok_or("no c")?;
        Recipient {
            device_id: r.identity().device_id(),
            x25519: r.identity().verified.device_x25519,
        }
    };
    // Who signs welcomes (KEY-20): a device key, its certificate, and the
    // operation that added it (KEY-21).
    let added_by = |g: &mut Group, i: usize| -> Result<[u8; 32], String> {
        let me = g
            .reps
            .get(i)
            .ok_or("no device")?
            .replica()
            .identity()
            .device_id();
        g.rep(0)?
            .state()
            .devices
            .get(&me)
            .map(|d| d.added_by)
            .ok_or_else(|| "device not in the log".to_string())
    };
    let cert_of = |g: &Group, i: usize| -> Result<Vec<u8>, String> {
        Ok(g.reps
            .get(i)
            .ok_or("no device")?
            .replica()
            .identity()
            .certificate
            .clone())
    };
    let (cert0, added0) = (cert_of(&g, 0)?, added_by(&mut g, 0)?);
    let signer0 = epoch::WelcomeSigner {
        signing: &device0,
        certificate: &cert0,
        added_by: added0,
    };
    let w = epoch::welcome(
        &mut rng,
        &g.space_id(),
        &signer0,
        &to_c,
        std::slice::from_ref(&old),
    )
    .map_err(err)?;
    let welcome_new = delivery::seal_carrier(
        &mut rng,
        &device0,
        &g.space_id(),
        &new,
        delivery::CT_WELCOME,
        &w,
    )
    .map_err(err)?;
    // A carrier with a content type the delivery document does not define.
    let bad = envelope::seal(
        &device0,
        &old,
        &envelope::SealRequest {
            space_id: g.space_id(),
            doc_id: delivery::delivery_doc_id(&g.space_id()).map_err(err)?,
            seq: 1,
            prev: None,
            preds: Vec::new(),
            content_type: 45,
            body: &km,
        },
        &mut rng,
    )
    .map_err(err)?
    .bytes;
    // Writer c's private epoch, in no operation of the log: handed to b in a
    // welcome, and in a key message no rotation commits to (KEY-18).
    let private = epoch::new_epoch(&mut rng, &g.space_id()).map_err(err)?;
    let device_c = {
        let r = g.reps.get(c).map(Session::replica).ok_or("no c")?;
        SigningKey::from_seed(&r.identity().device.signing.seed())
    };
    let to_b = {
        let r = g.reps.get(b).map(Session::replica).ok_or("no b")?;
        Recipient {
            device_id: r.identity().device_id(),
            x25519: r.identity().verified.device_x25519,
        }
    };
    let (cert_c, added_c) = (cert_of(&g, c)?, added_by(&mut g, c)?);
    let signer_c = epoch::WelcomeSigner {
        signing: &device_c,
        certificate: &cert_c,
        added_by: added_c,
    };
    let w_private = epoch::welcome(
        &mut rng,
        &g.space_id(),
        &signer_c,
        &to_b,
        std::slice::from_ref(&private),
    )
    .map_err(err)?;
    // Welcomes to b with the replaced and the new epoch (KEY-20..KEY-22): from
    // the creator (valid), from the creator's certificate signed with another
    // key (bad signature), from a device of a user never added (naming the
    // genesis as what added it), and from removed member c (holding the epoch
    // its removal created, a stolen secret).
    let genesis = g.rep(0)?.state().genesis.ok_or("no genesis")?;
    let both = [old.clone(), new.clone()];
    let welcome_to_b = |rng: &mut ChaCha20Rng,
                        signer: &epoch::WelcomeSigner<'_>,
                        carrier_by: &SigningKey|
     -> Result<Vec<u8>, String> {
        let w = epoch::welcome(rng, &g.space_id(), signer, &to_b, &both).map_err(err)?;
        delivery::seal_carrier(
            rng,
            carrier_by,
            &g.space_id(),
            &old,
            delivery::CT_WELCOME,
            &w,
        )
        .map_err(err)
    };
    let welcome_signed = welcome_to_b(&mut rng, &signer0, &device0)?;
    let forger = SigningKey::generate(&mut rng);
    let welcome_bad_sig = welcome_to_b(
        &mut rng,
        &epoch::WelcomeSigner {
            signing: &forger,
            ..signer0
        },
        &device0,
    )?;
    let outsider_user = SigningKey::generate(&mut rng);
    let outsider = Identity::new(&outsider_user, DeviceKeys::generate(&mut rng)).map_err(err)?;
    let outsider_device = outsider.device_id();
    let welcome_outsider = welcome_to_b(
        &mut rng,
        &epoch::WelcomeSigner {
            signing: &outsider.device.signing,
            certificate: &outsider.certificate,
            added_by: genesis,
        },
        &outsider.device.signing,
    )?;
    let welcome_removed = welcome_to_b(&mut rng, &signer_c, &device_c)?;
    let device_c_id = g
        .reps
        .get(c)
        .ok_or("no c")?
        .replica()
        .identity()
        .device_id();
    let welcome_private = delivery::seal_carrier(
        &mut rng,
        &device_c,
        &g.space_id(),
        &old,
        delivery::CT_WELCOME,
        &w_private,
    )
    .map_err(err)?;
    let (km_private, _) =
        epoch::key_message(&mut rng, &g.space_id(), &private, &[to_b]).map_err(err)?;
    let km_private_carrier = delivery::seal_carrier(
        &mut rng,
        &device_c,
        &g.space_id(),
        &old,
        delivery::CT_KEY_MESSAGE,
        &km_private,
    )
    .map_err(err)?;
    g.rng = rng;
    let device_of = |i: usize| -> Result<Value, String> {
        let r = g.reps.get(i).map(Session::replica).ok_or("no device")?;
        let u = g.users.get(i).ok_or("no user")?;
        Ok(json!({
            "userSeed": hex(u.seed().as_ref()),
            "signingSeed": hex(r.identity().device.signing.seed().as_ref()),
            "x25519": hex(r.identity().device.x25519.to_bytes().as_ref()),
        }))
    };
    let log: Vec<String> = g.log.iter().map(hex).collect();
    let mk = |device: Value, carriers: &[&Vec<u8>]| {
        json!({
            "spaceId": hex(g.space_id()),
            "device": device,
            "epochSecrets": [hex(old.secret())],
            "log": log,
            "carriers": carriers.iter().map(hex).collect::<Vec<_>>(),
        })
    };
    let cases: Vec<(&str, &str, &[&str], Value)> = vec![
        (
            "key-message-carrier-remaining-member",
            "A remaining member holding the replaced epoch opens the carrier of the rotation's \
             key message, learns the new epoch, and the removal held for it is integrated: the \
             current epoch is the new one.",
            &["KEY-14", "KEY-15", "KEY-16"],
            mk(device_of(b)?, &[&km_carrier]),
        ),
        (
            "key-message-carrier-removed-member",
            "The removed member opens the same carrier (it holds the replaced epoch) but finds no \
             box for itself: it learns no key, reports the new epoch as locked out, and keeps the \
             old view.",
            &["KEY-4", "KEY-16", "KEY-17"],
            mk(device_of(c)?, &[&km_carrier]),
        ),
        (
            "carrier-held-until-key",
            "A welcome carrier under the new epoch arrives before the key message: held, then \
             opened once the key message's carrier gives the epoch; a welcome sealed to another \
             device is not an error.",
            &["KEY-16", "ERR-7"],
            mk(device_of(b)?, &[&welcome_new, &km_carrier]),
        ),
        (
            "private-epoch-welcome-not-usable",
            "A writer hands another member the secret of an epoch no operation of the log \
             created, in a welcome: the carrier is delivered, but the epoch is not usable (not \
             among the epochs held), so nothing sealed under it is opened on any replica.",
            &["KEY-8", "KEY-16", "KEY-18", "KEY-19"],
            mk(device_of(b)?, &[&welcome_private]),
        ),
        (
            "private-epoch-key-message-not-usable",
            "The same private epoch in a key message no rotation commits to: delivered, not \
             usable.",
            &["KEY-5", "KEY-16", "KEY-18", "KEY-19"],
            mk(device_of(b)?, &[&km_private_carrier]),
        ),
        (
            "welcome-signed-by-member",
            "The creator's device signs a welcome to b with the replaced and the new epoch, naming \
             the CREATE_SPACE that added it: the signature verifies, the signer is active where \
             the log places it, b learns the new epoch and integrates the removal held for it; \
             no alarm.",
            &["KEY-8", "KEY-20", "KEY-21"],
            mk(device_of(b)?, &[&welcome_signed]),
        ),
        (
            "welcome-bad-signature",
            "The same welcome signed with a key other than the certificate's device key: \
             BAD_SIGNATURE before anything in it is used; no epoch learned, nothing stored.",
            &["KEY-20"],
            mk(device_of(b)?, &[&welcome_bad_sig]),
        ),
        (
            "welcome-signer-not-a-member",
            "A device of a user the log never added signs a valid welcome naming the genesis as \
             what added it: delivered, then reported (NOT_A_MEMBER) once the genesis shows it \
             lists no such device; the new epoch is kept only because the log created it (the \
             id commits to the secret).",
            &["KEY-20", "KEY-21", "KEY-22"],
            mk(device_of(b)?, &[&welcome_outsider]),
        ),
        (
            "welcome-signer-removed",
            "Removed member c signs a welcome carrying the epoch its own removal created: \
             reported (REMOVED_MEMBER), since the operation that created that epoch removed c; \
             the epoch is kept only because the log created it.",
            &["KEY-20", "KEY-21", "KEY-22"],
            mk(device_of(b)?, &[&welcome_removed]),
        ),
        (
            "carrier-unknown-content-type",
            "A delivery-document envelope with content type 45: INVALID_OPERATION.",
            &["KEY-16"],
            mk(device_of(b)?, &[&bad]),
        ),
    ];
    let (old_id, new_id) = (hex(old.id()), hex(new.id()));
    let both_held = {
        let mut v = vec![old_id.clone(), new_id.clone()];
        v.sort();
        json!(v)
    };
    let foreign = |device: &[u8; 32], class: &str| json!([{"alarm": "foreignWelcome", "signer": hex(device), "error": class}]);
    for (name, desc, refs, input) in cases {
        let out = deliver(&input)?;
        let disp: Vec<String> = out
            .get("carriers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|c| {
                        let d = c.get("disposition").and_then(Value::as_str).unwrap_or("?");
                        match c.get("error").and_then(Value::as_str) {
                            Some(e) => format!("{d}:{e}"),
                            None => d.to_owned(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let current = out
            .get("currentEpoch")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let locked = out.get("lockedOut").cloned().unwrap_or_default();
        let alarms = out.get("welcomeAlarms").cloned().unwrap_or_default();
        let quiet = alarms == json!([]);
        let ok = match name {
            "welcome-signed-by-member" => {
                disp == ["delivered"]
                    && current == new_id
                    && out.get("epochsHeld") == Some(&both_held)
                    && quiet
            }
            "welcome-bad-signature" => {
                disp == ["rejected:BAD_SIGNATURE"]
                    && current == old_id
                    && out.get("epochsHeld") == Some(&json!([old_id]))
                    && quiet
            }
            "welcome-signer-not-a-member" => {
                disp == ["delivered"]
                    && current == new_id
                    && alarms == foreign(&outsider_device, "NOT_A_MEMBER")
            }
            "welcome-signer-removed" => {
                disp == ["delivered"]
                    && current == new_id
                    && alarms == foreign(&device_c_id, "REMOVED_MEMBER")
            }
            "key-message-carrier-remaining-member" => {
                disp == ["delivered"] && current == new_id && locked == json!([]) && quiet
            }
            "key-message-carrier-removed-member" => {
                disp == ["delivered"] && current == old_id && locked == json!([new_id])
            }
            "carrier-held-until-key" => disp == ["held", "delivered"] && current == new_id,
            "private-epoch-welcome-not-usable" | "private-epoch-key-message-not-usable" => {
                disp == ["delivered"]
                    && current == old_id
                    && out.get("epochsHeld") == Some(&json!([old_id]))
            }
            _ => disp == ["rejected:INVALID_OPERATION"] && current == old_id,
        };
        if !ok {
            return Err(format!(
                "{name}: the reference gives an unintended result: {out}"
            ));
        }
        f.valid(name, desc, refs, &["KeyDelivery"], input, out);
    }
    Ok(())
}

/// User-key rotation (MEM-32, §5.7): a member rotates its key (both orders); a
/// forged continuity statement (BAD_SIGNATURE); a statement of another user's
/// key (WRONG_CONTEXT); two concurrent rotations of one key (both void, with the
/// rival-rotation alarm).
fn rotation_cases(f: &mut FileBuilder, seed: &str) -> Result<(), String> {
    use clientful_core::continuity;
    use clientful_core::testkit::forge;
    f.note(
        "UserKeyRotation",
        "DEFINED",
        "A member's user key followed by a new one (ROTATE_USER, MEM-32).",
    );
    f.note(
        "ForgedContinuity",
        "AUTH_BYPASS",
        "A ROTATE_USER whose continuity statement does not verify or names another user.",
    );
    f.note(
        "RivalRotation",
        "AUTH_BYPASS",
        "Two concurrent ROTATE_USER of one user key (a leaked key used by its thief).",
    );
    // The rotating member's device, re-certified by a new key (same device keys).
    let next = |g: &Group, who: usize, new: &SigningKey| -> Result<Identity, String> {
        let r = g.reps.get(who).ok_or("no such device")?.replica();
        let d = &r.identity().device;
        Identity::new(
            new,
            DeviceKeys {
                signing: SigningKey::from_seed(&d.signing.seed()),
                x25519: clientful_core::keys::X25519Secret::from_bytes(&d.x25519.to_bytes()),
            },
        )
        .map_err(err)
    };

    // 1. A writer rotates its key; the admin and the writer's new key go on.
    let mut g = Group::new(family_rng(&format!("{seed}/rotate-user")))?;
    let b = g.add(0, Role::Writer, &Scope::whole())?;
    g.settle(&[0, b])?;
    let old = SigningKey::from_seed(&g.users.get(b).ok_or("no user")?.seed());
    let new = SigningKey::generate(&mut g.rng);
    let statement = continuity::sign_continuity(&old, &new).map_err(err)?;
    let id = next(&g, b, &new)?;
    let mut rng = g.rng.clone();
    g.rep(b)?
        .rotate_user(&mut rng, &statement, id, &[])
        .map_err(err)?;
    g.rng = rng;
    g.settle(&[0, b])?;
    let mut rng = g.rng.clone();
    g.rep(b)?.ack(&mut rng).map_err(err)?;
    g.rng = rng;
    g.settle(&[0, b])?;
    let intended: Vec<&str> = vec![A; g.log.len()];
    both(
        f,
        &g,
        "rotate-user",
        "A writer's device publishes ROTATE_USER with a signed continuity statement from its          user key to a new one and its certificate under the new key: the old key is retired          (removed, listed in `retired`), the new key is a writer with the same scope, the device          continues under its new certificate (it acknowledges afterwards), and the keys rotate.",
        &[
            "MEM-32", "ROT-1", "ROT-2", "ROT-4", "ROT-5", "MEM-17", "KEY-4",
        ],
        &["UserKeyRotation"],
        &intended,
    )?;

    // 2, 3. Forged statements, one class each.
    let mut g = Group::new(family_rng(&format!("{seed}/rotate-user-forged")))?;
    let b = g.add(0, Role::Writer, &Scope::whole())?;
    g.settle(&[0, b])?;
    let old = SigningKey::from_seed(&g.users.get(b).ok_or("no user")?.seed());
    let admin = SigningKey::from_seed(&g.users.first().ok_or("no creator")?.seed());
    let new = SigningKey::generate(&mut g.rng);
    let thief = SigningKey::generate(&mut g.rng);
    let forged = continuity::sign_statement(
        &thief,
        &new,
        continuity::statement(&old.public_bytes(), &new.public_bytes()),
    )
    .map_err(err)?;
    let foreign = continuity::sign_continuity(&admin, &new).map_err(err)?;
    let cert = next(&g, b, &new)?.certificate;
    let n = g.log.len();
    for (name, statement, class, desc) in [
        (
            "rotate-user-forged-continuity",
            &forged,
            "rejected:BAD_SIGNATURE",
            "A ROTATE_USER whose continuity statement names the member's key as old but is signed              by another key (a thief without the old key): BAD_SIGNATURE when the body is decoded              (ROT-V5, MEM-5); nothing changes.",
        ),
        (
            "rotate-user-foreign-continuity",
            &foreign,
            "rejected:WRONG_CONTEXT",
            "A ROTATE_USER by the writer's device carrying a valid statement of another user's key              (the admin's): WRONG_CONTEXT at MEM-17 step 1.4 (MEM-32); nothing changes.",
        ),
    ] {
        let mut rng = g.rng.clone();
        let u = forge::rotate_user_unchecked(&mut rng, g.rep(b)?, statement, &cert).map_err(err)?;
        g.rng = rng;
        let mut input = g.input(&(0..n).collect::<Vec<_>>());
        let obj = input.as_object_mut().ok_or("input")?;
        if let Some(Value::Array(log)) = obj.get_mut("log") {
            log.push(json!(hex(&u.envelope)));
        }
        if let Some(Value::Array(ks)) = obj.get_mut("epochSecrets") {
            ks.push(json!(hex(u.epoch.secret())));
        }
        let out = replay(&input)?;
        let mut intended: Vec<&str> = vec![A; n];
        intended.push(class);
        intend(&out, &intended).map_err(|e| format!("{name}: {e}"))?;
        f.valid(
            name,
            desc,
            &["MEM-32", "ROT-4", "MEM-5", "MEM-23"],
            &["ForgedContinuity"],
            input,
            out,
        );
    }

    // 4. Two rotations of one key, concurrent (the user and a thief with a copy
    // of the old key and the device): both void, reported.
    let mut g = Group::new(family_rng(&format!("{seed}/rival-rotations")))?;
    let b = g.add(0, Role::Writer, &Scope::whole())?;
    g.settle(&[0, b])?;
    let old = SigningKey::from_seed(&g.users.get(b).ok_or("no user")?.seed());
    let mut extra = Vec::new();
    let mut rivals = Vec::new();
    for _ in 0..2 {
        let new = SigningKey::generate(&mut g.rng);
        let statement = continuity::sign_continuity(&old, &new).map_err(err)?;
        let cert = next(&g, b, &new)?.certificate;
        let mut rng = g.rng.clone();
        let u =
            forge::rotate_user_unchecked(&mut rng, g.rep(b)?, &statement, &cert).map_err(err)?;
        g.rng = rng;
        rivals.push(hex(envelope::decode(&u.envelope).map_err(err)?.id));
        extra.push(u);
    }
    rivals.sort();
    let n = g.log.len();
    for (name, swap) in [
        ("rival-rotations-void", false),
        ("rival-rotations-void-swapped", true),
    ] {
        let mut input = g.input(&(0..n).collect::<Vec<_>>());
        let obj = input.as_object_mut().ok_or("input")?;
        let mut pair: Vec<&forge::UncheckedRotation> = extra.iter().collect();
        if swap {
            pair.reverse();
        }
        if let Some(Value::Array(log)) = obj.get_mut("log") {
            for u in &pair {
                log.push(json!(hex(&u.envelope)));
            }
        }
        if let Some(Value::Array(ks)) = obj.get_mut("epochSecrets") {
            for u in &pair {
                ks.push(json!(hex(u.epoch.secret())));
            }
        }
        let out = replay(&input)?;
        let mut intended: Vec<&str> = vec![A; n];
        intended.push("void:INVALID_OPERATION");
        intended.push("void:INVALID_OPERATION");
        intend(&out, &intended).map_err(|e| format!("{name}: {e}"))?;
        let reported = out
            .get("rivalRotations")
            .and_then(|r| r.get(0))
            .and_then(|r| r.get("ops"))
            .cloned();
        if reported != Some(json!(rivals)) {
            return Err(format!("{name}: the rivals are not reported: {out}"));
        }
        let mut flags = vec!["RivalRotation"];
        if swap {
            flags.push("Reordered");
        }
        f.valid(
            name,
            "The writer's device (or a thief holding its keys and the old user key) publishes two              ROTATE_USER of the writer's key to two different new keys, concurrently (same seq,              same predecessors). Both are accepted from their causal past and both are void in              the resolved state (MEM-17 (a'), INVALID_OPERATION): no winner by id. The writer              stays a member under the old key, the epoch before them stays current, and the              observer reports the rival rotations (`rivalRotations`).",
            &["MEM-32", "MEM-17"],
            &flags,
            input,
            out,
        );
    }
    Ok(())
}
