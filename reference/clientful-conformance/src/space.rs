//! Spaces and membership in the reference adapter (spec §11, CONF-51): space
//! sessions built from the runner's seeds, membership intents, outboxes,
//! deliveries and observations.
//!
//! Each device is a `clientful_session::Session` with [`Transport::Direct`]:
//! the harness carries operation envelopes, key messages and welcomes itself
//! (its space items), and the follow-ups are the session's (the one policy the
//! SDK and the simulator run too), drawing from the slot's seeded randomness.

use clientful_core::ErrorClass;
use clientful_core::identity::DeviceKeys;
use clientful_core::keys::SigningKey;
use clientful_core::membership::space::{Identity, Outgoing};
use clientful_core::membership::{Received, Role, Scope, SpaceReplica, invite};
use clientful_doc::canonical_json::Json;
use clientful_session::{Session, SessionConfig, SessionError, Transport};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::pb;
use crate::saboteur::Saboteur;

/// One device's space session and its randomness.
pub struct SpaceSlot {
    /// The session (its replica: [`SpaceSlot::replica`]).
    session: Session,
    rng: ChaCha20Rng,
    /// The seeds it was built from, and every item delivered to it: what the
    /// `lowest-genesis-wins` saboteur rebuilds the replica from.
    seeds: pb::DeviceSeeds,
    delivered: Vec<pb::SpaceItem>,
}

fn seed32(b: &[u8], what: &str) -> Result<[u8; 32], String> {
    b.try_into().map_err(|_| format!("{what} must be 32 bytes"))
}

fn identity(seeds: &pb::DeviceSeeds) -> Result<(Identity, ChaCha20Rng), String> {
    let user = SigningKey::from_seed(&seed32(&seeds.user_seed, "user_seed")?);
    let device = DeviceKeys::generate(&mut ChaCha20Rng::from_seed(seed32(
        &seeds.device_seed,
        "device_seed",
    )?));
    let me = Identity::new(&user, device).map_err(|e| e.to_string())?;
    Ok((
        me,
        ChaCha20Rng::from_seed(seed32(&seeds.rng_seed, "rng_seed")?),
    ))
}

fn role(r: i32) -> Result<Role, String> {
    u32::try_from(r)
        .ok()
        .and_then(Role::from_u32)
        .ok_or_else(|| format!("invalid role {r}"))
}

fn key32(b: &[u8], what: &str) -> Result<[u8; 32], String> {
    b.try_into().map_err(|_| format!("{what} must be 32 bytes"))
}

impl SpaceSlot {
    /// The membership replica.
    pub fn replica(&self) -> &SpaceReplica {
        self.session.replica()
    }

    /// The handle answer for this replica.
    pub fn handle(&self, space: u32) -> pb::SpaceHandle {
        let me = self.replica().identity();
        pb::SpaceHandle {
            space,
            space_id: self.replica().space_id().to_vec(),
            user_key: me.user.to_vec(),
            device_id: me.device_id().to_vec(),
            certificate: me.certificate.clone(),
            genesis: self
                .replica()
                .genesis()
                .map(|g| g.to_vec())
                .unwrap_or_default(),
        }
    }

    /// `create_space`.
    pub fn create(c: &pb::CreateSpace) -> Result<SpaceSlot, String> {
        let seeds = c.seeds.clone().ok_or("no seeds")?;
        let (me, mut rng) = identity(&seeds)?;
        let replica = SpaceReplica::create(&mut rng, me).map_err(|e| e.to_string())?;
        SpaceSlot::slot(replica, rng, seeds)
    }

    /// `join_space`.
    pub fn join(j: &pb::JoinSpace) -> Result<SpaceSlot, String> {
        let seeds = j.seeds.clone().ok_or("no seeds")?;
        let (me, rng) = identity(&seeds)?;
        let replica = SpaceReplica::join(
            key32(&j.space_id, "space_id")?,
            key32(&j.genesis, "genesis")?,
            me,
        )
        .map_err(|e| e.to_string())?;
        SpaceSlot::slot(replica, rng, seeds)
    }

    /// Wraps `replica` in a session that hands its items to the harness as
    /// they are; every random draw comes from `rng` (the seeded stream).
    fn slot(
        replica: SpaceReplica,
        rng: ChaCha20Rng,
        seeds: pb::DeviceSeeds,
    ) -> Result<SpaceSlot, String> {
        let device_key = replica.identity().device.signing.public_bytes();
        let cfg = SessionConfig {
            replica,
            device_key,
            lobbies: Vec::new(),
            links: Vec::new(),
            confirm_admissions: false,
            // Unused: the adapter hands its own stream to every step, and a
            // direct session seals nothing.
            rng_seed: seed32(&seeds.rng_seed, "rng_seed")?,
        };
        let session = Session::with_transport(cfg, Transport::Direct).map_err(|e| e.to_string())?;
        Ok(SpaceSlot {
            session,
            rng,
            seeds,
            delivered: Vec::new(),
        })
    }

    /// `redeem_invite`.
    pub fn redeem(r: &pb::RedeemInvite) -> Result<SpaceSlot, String> {
        let seeds = r.seeds.clone().ok_or("no seeds")?;
        let (me, mut rng) = identity(&seeds)?;
        let replica = SpaceReplica::redeem(&mut rng, &r.code, me, role(r.role)?)
            .map_err(|e| e.to_string())?;
        SpaceSlot::slot(replica, rng, seeds)
    }

    /// The `lowest-genesis-wins` saboteur (the rule before MEM-26/MEM-27: the
    /// `CREATE_SPACE` with the lowest id stands): when the replica reports a
    /// rival genesis below its pin, rebuild it pinned to the rival and replay
    /// everything it had. Returns whether it did.
    pub fn lowest_genesis_wins(&mut self) -> Result<bool, String> {
        let (Some(pin), Some(low)) = (
            self.replica().genesis(),
            self.replica().rival_genesis().into_iter().min(),
        ) else {
            return Ok(false);
        };
        if low >= pin {
            return Ok(false);
        }
        let (me, _) = identity(&self.seeds)?;
        let mut r =
            SpaceReplica::join(*self.replica().space_id(), low, me).map_err(|e| e.to_string())?;
        r.import_keys(&self.replica().candidate_keys().all());
        for k in self.replica().key_messages() {
            let _ = r.receive_key_message(&k);
        }
        for e in self.replica().envelopes() {
            r.receive(&e);
        }
        for item in &self.delivered {
            match pb::SpaceItemKind::try_from(item.kind) {
                Ok(pb::SpaceItemKind::Envelope) => {
                    r.receive(&item.bytes);
                }
                Ok(pb::SpaceItemKind::KeyMessage) => {
                    let _ = r.receive_key_message(&item.bytes);
                }
                Ok(pb::SpaceItemKind::Welcome) => {
                    let _ = r.receive_welcome(&item.bytes);
                }
                _ => {}
            }
        }
        let _ = r.drain_outbox();
        // What the old replica had not handed out yet is dropped with it.
        while self.session.poll_direct().is_some() {}
        *self.session.replica_mut() = r;
        Ok(true)
    }

    /// `space_intent`. `docs` holds the envelopes of the document replicas
    /// bound to this space replica (`create_space_document`), by document id:
    /// a removal or revocation carries their removal cut (MEM-18, CONF-106).
    pub fn intent(
        &mut self,
        i: &pb::space_intent::Intent,
        docs: &std::collections::BTreeMap<[u8; 32], Vec<Vec<u8>>>,
    ) -> Result<pb::SpaceIntentResult, String> {
        use pb::space_intent::Intent as I;
        let cuts = match i {
            I::RemoveMember(m) => {
                let user = key32(&m.user_key, "user_key")?;
                let devices: Vec<[u8; 32]> = self
                    .replica()
                    .state()
                    .devices
                    .iter()
                    .filter(|(_, d)| d.user == user)
                    .map(|(id, _)| *id)
                    .collect();
                self.session.removal_cuts(&devices, docs)
            }
            I::RevokeDevice(d) => self
                .session
                .removal_cuts(&[key32(&d.device_id, "device_id")?], docs),
            I::RotateUser(_) => {
                let user = self.replica().identity().user;
                let devices: Vec<[u8; 32]> = self
                    .replica()
                    .state()
                    .devices
                    .iter()
                    .filter(|(_, d)| d.user == user)
                    .map(|(id, _)| *id)
                    .collect();
                self.session.removal_cuts(&devices, docs)
            }
            _ => Vec::new(),
        };
        let rng = &mut self.rng;
        let r = self.session.replica_mut();
        let e = |e: clientful_core::Error| e.to_string();
        let mut out = pb::SpaceIntentResult::default();
        match i {
            I::AddMember(a) => {
                r.add_member(
                    rng,
                    &key32(&a.user_key, "user_key")?,
                    role(a.role)?,
                    &Scope::whole(),
                    &a.certificates,
                )
                .map_err(e)?;
                out.written = 1;
            }
            I::ChangeRole(c) => {
                r.change_role(
                    rng,
                    &key32(&c.user_key, "user_key")?,
                    role(c.role)?,
                    &Scope::whole(),
                )
                .map_err(e)?;
                out.written = 1;
            }
            I::RemoveMember(m) => {
                r.remove_member(rng, &key32(&m.user_key, "user_key")?, &cuts)
                    .map_err(e)?;
                out.written = 1;
            }
            I::AddDevice(d) => {
                r.add_device(rng, &d.certificate).map_err(e)?;
                out.written = 1;
            }
            I::RevokeDevice(d) => {
                r.revoke_device(rng, &key32(&d.device_id, "device_id")?, &cuts)
                    .map_err(e)?;
                out.written = 1;
            }
            I::RotateKeys(_) => {
                r.rotate(rng).map_err(e)?;
                out.written = 1;
            }
            I::RotateUser(u) => {
                let seed = key32(&u.new_user_seed, "new_user_seed")?;
                let device = &r.identity().device;
                let keys = clientful_core::identity::DeviceKeys {
                    signing: clientful_core::keys::SigningKey::from_seed(&device.signing.seed()),
                    x25519: clientful_core::keys::X25519Secret::from_bytes(
                        &device.x25519.to_bytes(),
                    ),
                };
                let next = clientful_core::membership::space::Identity::new(
                    &clientful_core::keys::SigningKey::from_seed(&seed),
                    keys,
                )
                .map_err(e)?;
                r.rotate_user(rng, &u.statement, next, &cuts).map_err(e)?;
                out.written = 1;
            }
            I::CreateInvite(c) => {
                out.invite_code = r
                    .create_invite(rng, role(c.role)?, &Scope::whole(), c.single_use, 0)
                    .map_err(e)?;
                out.written = 1;
            }
            I::RevokeInvite(v) => {
                let code = invite::decode(&v.code).map_err(e)?;
                let keys = invite::derive(&code.space_id, &code.secret).map_err(e)?;
                r.revoke_invite(rng, &keys.signing.public_bytes())
                    .map_err(e)?;
                out.written = 1;
            }
            I::FollowUp(_) => {
                // The session's follow-ups (spec MEM-25, MEM-15, KEY-12, KEY-8),
                // admitting automatically, with no clock (no expiry revocations).
                let done = self
                    .session
                    .follow_up_with(rng, None)
                    .map_err(|e| match e {
                        // The core's words, as before the session drove it.
                        SessionError::Protocol { error, .. } => error.to_string(),
                        e => e.to_string(),
                    })?;
                let n = done.admitted.len()
                    + usize::from(done.acked)
                    + usize::from(done.healed)
                    + done.welcomes;
                out.written = u32::try_from(n).unwrap_or(u32::MAX);
            }
        }
        Ok(out)
    }

    /// `take_space_outbox`: what the session hands out, in order.
    pub fn outbox(&mut self) -> Result<pb::SpaceOutbox, String> {
        use pb::SpaceItemKind as K;
        self.session.flush().map_err(|e| e.to_string())?;
        // No device-local store here: the writes are the session's contract
        // with a shell that keeps one.
        while self.session.poll_persist().is_some() {}
        let items = std::iter::from_fn(|| self.session.poll_direct())
            .map(|o| match o {
                Outgoing::Envelope(b) => pb::SpaceItem {
                    kind: K::Envelope as i32,
                    bytes: b,
                    device_id: vec![],
                },
                Outgoing::KeyMessage(b) => pb::SpaceItem {
                    kind: K::KeyMessage as i32,
                    bytes: b,
                    device_id: vec![],
                },
                Outgoing::Welcome { device_id, bytes } => pb::SpaceItem {
                    kind: K::Welcome as i32,
                    bytes,
                    device_id: device_id.to_vec(),
                },
            })
            .collect();
        Ok(pb::SpaceOutbox { items })
    }

    /// `deliver_space`: the disposition and class.
    pub fn deliver(
        &mut self,
        item: &pb::SpaceItem,
    ) -> Result<(pb::Disposition, ErrorClass), String> {
        use pb::Disposition as D;
        self.delivered.push(item.clone());
        let s = &mut self.session;
        Ok(match pb::SpaceItemKind::try_from(item.kind) {
            Ok(pb::SpaceItemKind::Envelope) => match s.handle_envelope(&item.bytes) {
                Received::Accepted(_) => (D::Applied, ErrorClass::Unspecified),
                Received::Buffered | Received::Held => (D::Buffered, ErrorClass::Unspecified),
                Received::Duplicate => (D::Duplicate, ErrorClass::Unspecified),
                Received::Delivered => (D::Applied, ErrorClass::Unspecified),
                Received::Rejected { class, .. } => (D::Rejected, class),
                other => return Err(format!("disposition the adapter does not know: {other:?}")),
            },
            Ok(pb::SpaceItemKind::KeyMessage) => match s.handle_key_message(&item.bytes) {
                Ok(()) => (D::Applied, ErrorClass::Unspecified),
                Err(e) => (D::Rejected, e.class()),
            },
            Ok(pb::SpaceItemKind::Welcome) => match s.handle_welcome(&item.bytes) {
                Ok(()) => (D::Applied, ErrorClass::Unspecified),
                Err(e) => (D::Rejected, e.class()),
            },
            _ => return Err(format!("invalid space item kind {}", item.kind)),
        })
    }

    /// `export_secrets`: every usable epoch key held (KEY-18). The
    /// `keep-any-secret` saboteur (the rule before KEY-18: any secret that
    /// opens is kept and used) exports the candidates too.
    pub fn secrets(&self, sab: Option<Saboteur>) -> pb::Secrets {
        let keys = if sab == Some(Saboteur::KeepAnySecret) {
            self.replica().candidate_keys().all()
        } else {
            self.replica().epoch_chain()
        };
        pb::Secrets {
            epochs: keys
                .iter()
                .map(|k| pb::EpochSecret {
                    epoch_id: k.id().to_vec(),
                    secret: k.secret().to_vec(),
                })
                .collect(),
        }
    }

    /// `observe_space`.
    pub fn observe(&self, sab: Option<Saboteur>) -> Result<pb::SpaceObservation, String> {
        let st = self.replica().state();
        let role_name = |r: Role| match r {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Admin => "admin",
        };
        let mut members: Vec<(String, Json)> = st
            .members
            .iter()
            .map(|(user, m)| {
                let mut devices: Vec<String> = st
                    .devices
                    .iter()
                    .filter(|(_, d)| &d.user == user && d.revoked_by.is_none())
                    .map(|(id, _)| hex::encode(id))
                    .collect();
                devices.sort();
                (
                    hex::encode(user),
                    Json::Object(vec![
                        ("user".into(), Json::String(hex::encode(user))),
                        ("role".into(), Json::String(role_name(m.role).into())),
                        ("settled".into(), Json::Bool(m.settled)),
                        (
                            "devices".into(),
                            Json::Array(devices.into_iter().map(Json::String).collect()),
                        ),
                    ]),
                )
            })
            .collect();
        let mut removed: Vec<String> = st.removed.keys().map(hex::encode).collect();
        if sab == Some(Saboteur::IgnoresRemoval) {
            // Keeps showing removed users as the writers they were.
            for u in std::mem::take(&mut removed) {
                members.push((
                    u.clone(),
                    Json::Object(vec![
                        ("user".into(), Json::String(u)),
                        ("role".into(), Json::String("writer".into())),
                        ("settled".into(), Json::Bool(true)),
                        ("devices".into(), Json::Array(vec![])),
                    ]),
                ));
            }
        }
        members.sort_by(|a, b| a.0.cmp(&b.0));
        removed.sort();
        let json = Json::Object(vec![
            (
                "members".into(),
                Json::Array(members.into_iter().map(|(_, j)| j).collect()),
            ),
            (
                "removed".into(),
                Json::Array(removed.into_iter().map(Json::String).collect()),
            ),
        ]);
        Ok(pb::SpaceObservation {
            state_json: json.to_canonical_string(),
            digest: st.digest().map_err(|e| e.to_string())?.to_vec(),
            current_epoch: self
                .replica()
                .current_epoch()
                .map(|k| k.id().to_vec())
                .unwrap_or_default(),
            held: u32::try_from(self.replica().held_count()).unwrap_or(u32::MAX),
        })
    }
}
