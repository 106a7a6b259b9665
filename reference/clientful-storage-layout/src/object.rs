//! Stored objects (spec §9.4–§9.9: STO-5 to STO-8, STO-10, STO-12, STO-16, STO-24, STO-30), pure: sealing and opening the `StoredObject`
//! container, and the validated typed bodies (head manifest, segment, snapshot, file
//! manifest, checkpoint). Nothing is re-encoded to verify: signatures cover the body bytes as
//! stored (for a checkpoint, prefixed with the space and epoch ids, STO-6), object ids the
//! file bytes as stored.

use clientful_core::content::ContentType;
use clientful_core::keys::{PublicKey, SigningKey};
use clientful_core::limits::{ID_LEN, MAX_ENVELOPE_BYTES, NONCE_LEN};
use clientful_core::{labels, wire};
use clientful_proto::v1 as pb;
use rand_core::CryptoRng;

use crate::error::StorageError;
use crate::layout::{EpochStorage, LAYOUT_VERSION, ObjectId};

/// Largest stored object (head manifest, segment, snapshot, file manifest) a reader
/// accepts (STO-7).
pub const MAX_OBJECT_BYTES: usize = 64 * 1024 * 1024;
/// Most envelopes in one segment or snapshot.
pub const MAX_ENVELOPES_PER_OBJECT: usize = 1 << 20;
/// Most entries in any one list of a head manifest (`segments`, `snapshots`,
/// `checkpoints`, `tips`) or of a snapshot (`covers`, `heads`). With the 64 MiB
/// object limit (STO-7) it bounds what a reader allocates before the object
/// limit would: 2^20 checkpoint entries of 72 bytes (STO-8) are 72 MiB.
pub const MAX_LISTED: usize = 1 << 20;

/// What a stored object holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// A head manifest.
    Head = 1,
    /// A segment.
    Segment = 2,
    /// A snapshot.
    Snapshot = 3,
    /// A file manifest.
    File = 4,
    /// A checkpoint (CRDT state of one document, §9.7a).
    Checkpoint = 5,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Head => labels::SIG_STORAGE_HEAD,
            Kind::Segment => labels::SIG_STORAGE_SEGMENT,
            Kind::Snapshot => labels::SIG_STORAGE_SNAPSHOT,
            Kind::File => labels::SIG_STORAGE_FILE,
            Kind::Checkpoint => labels::SIG_STORAGE_CHECKPOINT,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Head => "head manifest",
            Kind::Segment => "segment",
            Kind::Snapshot => "snapshot",
            Kind::File => "file manifest",
            Kind::Checkpoint => "checkpoint",
        }
    }
}

/// The bytes a stored object's signature covers (STO-6): the body as shipped,
/// except for a checkpoint, whose body names neither its space nor its epoch:
/// `space_id || epoch_id || body`, so a checkpoint moved into another epoch's or
/// space's directory fails its signature.
fn signature_input<'a>(
    es: &EpochStorage,
    kind: Kind,
    body: &'a [u8],
) -> std::borrow::Cow<'a, [u8]> {
    match kind {
        Kind::Checkpoint => {
            std::borrow::Cow::Owned([es.space_id().as_slice(), es.epoch_id(), body].concat())
        }
        Kind::Head | Kind::Segment | Kind::Snapshot | Kind::File => {
            std::borrow::Cow::Borrowed(body)
        }
    }
}

fn aad(kind: Kind, epoch_id: &[u8; 32]) -> Result<Vec<u8>, StorageError> {
    let mut content = Vec::with_capacity(40);
    content.extend_from_slice(&LAYOUT_VERSION.to_be_bytes());
    content.extend_from_slice(&(kind as u32).to_be_bytes());
    content.extend_from_slice(epoch_id);
    labels::labeled(labels::AAD_STORAGE_OBJECT, &content)
        .ok_or_else(|| StorageError::corrupt("aad", "too long"))
}

/// Signs `body` with `signer` and seals it under the epoch's storage key: the bytes
/// of the object file.
pub fn seal_object<R: CryptoRng + ?Sized>(
    es: &EpochStorage,
    kind: Kind,
    signer: &SigningKey,
    body: Vec<u8>,
    rng: &mut R,
) -> Result<Vec<u8>, StorageError> {
    let signature = signer.sign_with_label(kind.label(), &signature_input(es, kind, &body))?;
    let signed = wire::encode(&pb::SignedObject {
        body,
        signer: signer.public_bytes().to_vec(),
        signature: signature.to_vec(),
    });
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let ciphertext =
        crate::chunk::aead_seal(es.seal_key(), &nonce, &aad(kind, es.epoch_id())?, &signed)?;
    Ok(wire::encode(&pb::StoredObject {
        version: LAYOUT_VERSION,
        kind: kind as u32,
        epoch_id: es.epoch_id().to_vec(),
        nonce: nonce.to_vec(),
        ciphertext,
    }))
}

/// An opened, signature-checked object body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The signing device.
    pub signer: [u8; 32],
    /// The exact body bytes the signature covers.
    pub body: Vec<u8>,
}

/// Opens an object file: canonical decoding, version, kind, epoch, AEAD, signer
/// membership and signature, in that order (STO-7).
pub fn open_object(
    es: &EpochStorage,
    kind: Kind,
    bytes: &[u8],
    signers: &[[u8; 32]],
) -> Result<Opened, StorageError> {
    open_checked(es, kind, bytes, Some(signers))
}

/// Opens an object in a lobby directory (STO-23): every check of STO-7 except
/// signer membership, which a lobby cannot know in advance. The caller checks
/// the path against the signer.
pub fn open_lobby_object(
    es: &EpochStorage,
    kind: Kind,
    bytes: &[u8],
) -> Result<Opened, StorageError> {
    open_checked(es, kind, bytes, None)
}

fn open_checked(
    es: &EpochStorage,
    kind: Kind,
    bytes: &[u8],
    signers: Option<&[[u8; 32]]>,
) -> Result<Opened, StorageError> {
    let what = kind.name();
    if bytes.len() > MAX_OBJECT_BYTES {
        return Err(StorageError::corrupt(
            what,
            "larger than the object size limit",
        ));
    }
    let obj: pb::StoredObject = wire::decode(bytes, &wire::STORED_OBJECT)
        .map_err(|e| StorageError::corrupt(what, e.to_string()))?;
    if obj.version != LAYOUT_VERSION {
        return Err(StorageError::Version {
            found: u64::from(obj.version),
        });
    }
    if obj.kind != kind as u32 {
        return Err(StorageError::corrupt(what, format!("kind is {}", obj.kind)));
    }
    if obj.epoch_id.as_slice() != es.epoch_id() {
        return Err(StorageError::corrupt(what, "sealed under another epoch"));
    }
    let nonce: [u8; NONCE_LEN] = obj
        .nonce
        .as_slice()
        .try_into()
        .map_err(|_| StorageError::corrupt(what, "nonce is not 24 bytes"))?;
    let plain = crate::chunk::aead_open(
        es.seal_key(),
        &nonce,
        &aad(kind, es.epoch_id())?,
        &obj.ciphertext,
    )
    .ok_or_else(|| StorageError::corrupt(what, "AEAD authentication failed"))?;
    let signed: pb::SignedObject = wire::decode(&plain, &wire::SIGNED_OBJECT)
        .map_err(|e| StorageError::corrupt(what, e.to_string()))?;
    let signer: [u8; 32] = signed
        .signer
        .as_slice()
        .try_into()
        .map_err(|_| StorageError::corrupt(what, "signer is not 32 bytes"))?;
    if signers.is_some_and(|s| !s.contains(&signer)) {
        return Err(StorageError::corrupt(
            what,
            "signed by a device that is not a member",
        ));
    }
    let key =
        PublicKey::from_bytes(&signer).map_err(|e| StorageError::corrupt(what, e.to_string()))?;
    key.verify_with_label(
        kind.label(),
        &signature_input(es, kind, &signed.body),
        &signed.signature,
        "stored object",
    )
    .map_err(|_| StorageError::corrupt(what, "bad signature"))?;
    Ok(Opened {
        signer,
        body: signed.body,
    })
}

fn id32(v: &[u8], what: &str, field: &str) -> Result<[u8; 32], StorageError> {
    v.try_into()
        .map_err(|_| StorageError::corrupt(what, format!("{field} is not {ID_LEN} bytes")))
}

fn check_version(v: u32) -> Result<(), StorageError> {
    if v == LAYOUT_VERSION {
        Ok(())
    } else {
        Err(StorageError::Version {
            found: u64::from(v),
        })
    }
}

/// The checks every signed object body shares (STO-7 step 8): the layout version,
/// the space, the epoch the body names against the epoch it was sealed under
/// (STO-6: a body moved into another epoch's directory is refused), and that the
/// device the body names is the one that signed it. Returns that device.
#[allow(clippy::too_many_arguments)]
fn check_signed_by(
    what: &str,
    version: u32,
    body_space: &[u8],
    body_epoch: &[u8],
    body_device: &[u8],
    es: &EpochStorage,
    signer: &[u8; 32],
    role: &str,
) -> Result<[u8; 32], StorageError> {
    check_version(version)?;
    if body_space != es.space_id().as_slice() {
        return Err(StorageError::corrupt(what, "belongs to another space"));
    }
    if body_epoch != es.epoch_id().as_slice() {
        return Err(StorageError::corrupt(
            what,
            "epoch mismatch: signed for another epoch than the one it is sealed under (transplanted)",
        ));
    }
    let device = id32(body_device, what, "device")?;
    if &device != signer {
        return Err(StorageError::corrupt(
            what,
            format!("not signed by its {role}"),
        ));
    }
    Ok(device)
}

fn check_envelopes(envelopes: &[Vec<u8>], what: &str) -> Result<(), StorageError> {
    if envelopes.len() > MAX_ENVELOPES_PER_OBJECT {
        return Err(StorageError::corrupt(what, "too many envelopes"));
    }
    if envelopes
        .iter()
        .any(|e| e.is_empty() || e.len() > MAX_ENVELOPE_BYTES)
    {
        return Err(StorageError::corrupt(what, "envelope of invalid size"));
    }
    Ok(())
}

fn u64be(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b.get(..8).unwrap_or(&[0; 8]));
    u64::from_be_bytes(a)
}

/// A validated head manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadManifest {
    /// Owning device.
    pub device: [u8; 32],
    /// Monotonic counter.
    pub counter: u64,
    /// Segments ever written.
    pub segment_count: u64,
    /// Live segments `(index, object id)`, ascending, contiguous from `gc_floor`.
    pub segments: Vec<(u64, ObjectId)>,
    /// Segments below this index are collected.
    pub gc_floor: u64,
    /// The device's snapshot covering `[0, gc_floor)`.
    pub base_snapshot: Option<ObjectId>,
    /// Live snapshots written by the device, ascending.
    pub snapshots: Vec<ObjectId>,
    /// Live checkpoints written by the device, strictly ascending by document
    /// (STO-8, STO-24).
    pub checkpoints: Vec<CheckpointEntry>,
    /// The device's attestation of its own segments, ascending by `(count,
    /// doc_id)` (STO-30; see [`crate::coverage`]).
    pub tips: Vec<Tip>,
}

/// One entry of a head manifest's coverage attestation (STO-30): the device's
/// segments `[0, count)` in the epoch hold, of its own envelopes in `doc_id`,
/// exactly those with `seq` in `first..=last`, and the one with `seq = last` has
/// id `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tip {
    /// The segment count the entry is stated at.
    pub count: u64,
    /// The document.
    pub doc_id: [u8; 32],
    /// The device's first `seq` in the document in these segments.
    pub first: u64,
    /// Its last `seq` there.
    pub last: u64,
    /// The id of its envelope with `seq = last`.
    pub id: [u8; 32],
}

/// One checkpoint a head manifest lists (STO-8, STO-24): the object `id` holds
/// the state of `doc_id` as the envelopes of a snapshot of total coverage
/// `coverage` produce it. Signed by the manifest, so bound to the object's bytes
/// (STO-5) by its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CheckpointEntry {
    /// The document.
    pub doc_id: [u8; 32],
    /// The total coverage (sum of `count` over `covers`) of the snapshot the
    /// checkpoint names: its writer's claim, checked by STO-27.
    pub coverage: u64,
    /// The checkpoint's object id.
    pub id: ObjectId,
}

/// Bytes of one encoded [`CheckpointEntry`]: `doc_id || u64be(coverage) || object id`.
pub const CHECKPOINT_ENTRY_LEN: usize = 72;

impl CheckpointEntry {
    fn to_bytes(self) -> Vec<u8> {
        [
            self.doc_id.as_slice(),
            &self.coverage.to_be_bytes(),
            &self.id,
        ]
        .concat()
    }
}

/// Bytes of one encoded [`Tip`].
pub const TIP_LEN: usize = 88;

impl Tip {
    fn to_bytes(self) -> Vec<u8> {
        [
            self.count.to_be_bytes().as_slice(),
            &self.doc_id,
            &self.first.to_be_bytes(),
            &self.last.to_be_bytes(),
            &self.id,
        ]
        .concat()
    }
}

impl HeadManifest {
    /// The first manifest of a device.
    pub fn empty(device: [u8; 32]) -> Self {
        HeadManifest {
            device,
            counter: 0,
            segment_count: 0,
            segments: Vec::new(),
            gc_floor: 0,
            base_snapshot: None,
            snapshots: Vec::new(),
            checkpoints: Vec::new(),
            tips: Vec::new(),
        }
    }

    /// Canonical body bytes for the epoch `es` (STO-6).
    pub fn encode(&self, es: &EpochStorage) -> Vec<u8> {
        wire::encode(&pb::HeadManifest {
            version: LAYOUT_VERSION,
            space_id: es.space_id().to_vec(),
            epoch_id: es.epoch_id().to_vec(),
            tips: self.tips.iter().map(|t| t.to_bytes()).collect(),
            device: self.device.to_vec(),
            counter: self.counter,
            segment_count: self.segment_count,
            segments: self
                .segments
                .iter()
                .map(|(i, id)| [i.to_be_bytes().as_slice(), id].concat())
                .collect(),
            gc_floor: self.gc_floor,
            base_snapshot: self.base_snapshot.map(|s| s.to_vec()).unwrap_or_default(),
            snapshots: self.snapshots.iter().map(|s| s.to_vec()).collect(),
            checkpoints: self.checkpoints.iter().map(|c| c.to_bytes()).collect(),
        })
    }

    /// Decodes and validates a body signed by `signer`, read in epoch `es` (STO-8).
    pub fn decode(body: &[u8], es: &EpochStorage, signer: &[u8; 32]) -> Result<Self, StorageError> {
        let w = "head manifest";
        let m: pb::HeadManifest = wire::decode(body, &wire::HEAD_MANIFEST)
            .map_err(|e| StorageError::corrupt(w, e.to_string()))?;
        let device = check_signed_by(
            w,
            m.version,
            &m.space_id,
            &m.epoch_id,
            &m.device,
            es,
            signer,
            "owner",
        )?;
        if m.counter == 0 {
            return Err(StorageError::corrupt(w, "counter is 0"));
        }
        if m.gc_floor > m.segment_count {
            return Err(StorageError::corrupt(w, "gc_floor above segment_count"));
        }
        if m.segments.len() > MAX_LISTED
            || m.snapshots.len() > MAX_LISTED
            || m.checkpoints.len() > MAX_LISTED
            || m.tips.len() > MAX_LISTED
        {
            return Err(StorageError::corrupt(w, "too many entries"));
        }
        if (m.segments.len() as u64) != m.segment_count - m.gc_floor {
            return Err(StorageError::corrupt(
                w,
                "live segments do not span [gc_floor, segment_count)",
            ));
        }
        let mut segments = Vec::with_capacity(m.segments.len());
        for (k, s) in m.segments.iter().enumerate() {
            if s.len() != 40 {
                return Err(StorageError::corrupt(w, "segment entry is not 40 bytes"));
            }
            let index = u64be(s);
            if index != m.gc_floor + k as u64 {
                return Err(StorageError::corrupt(
                    w,
                    "segment indices are not contiguous",
                ));
            }
            segments.push((
                index,
                id32(s.get(8..).unwrap_or_default(), w, "segment id")?,
            ));
        }
        let base_snapshot = match (m.gc_floor, m.base_snapshot.is_empty()) {
            (0, true) => None,
            (0, false) => return Err(StorageError::corrupt(w, "base snapshot without gc_floor")),
            (_, true) => return Err(StorageError::corrupt(w, "gc_floor without base snapshot")),
            (_, false) => Some(id32(&m.base_snapshot, w, "base snapshot")?),
        };
        let snapshots = ascending_ids(&m.snapshots, w, "snapshot")?;
        let checkpoints = decode_checkpoint_entries(&m.checkpoints)?;
        let tips = decode_tips(&m.tips, m.gc_floor, m.segment_count)?;
        Ok(HeadManifest {
            device,
            counter: m.counter,
            segment_count: m.segment_count,
            segments,
            gc_floor: m.gc_floor,
            base_snapshot,
            snapshots,
            checkpoints,
            tips,
        })
    }
}

/// The coverage attestation of a head manifest (STO-30): 88-byte entries,
/// strictly ascending by `(count, doc_id)`, each with `gc_floor ≤ count ≤
/// segment_count`, `count ≥ 1` and `1 ≤ first ≤ last ≤ 2^53 − 1`.
fn decode_tips(
    list: &[Vec<u8>],
    gc_floor: u64,
    segment_count: u64,
) -> Result<Vec<Tip>, StorageError> {
    let w = "head manifest";
    let mut tips: Vec<Tip> = Vec::with_capacity(list.len());
    for t in list {
        if t.len() != TIP_LEN {
            return Err(StorageError::corrupt(w, "tip entry is not 88 bytes"));
        }
        let tip = Tip {
            count: u64be(t),
            doc_id: id32(t.get(8..40).unwrap_or_default(), w, "tip doc")?,
            first: u64be(t.get(40..48).unwrap_or_default()),
            last: u64be(t.get(48..56).unwrap_or_default()),
            id: id32(t.get(56..).unwrap_or_default(), w, "tip id")?,
        };
        if tip.count == 0 || tip.count < gc_floor || tip.count > segment_count {
            return Err(StorageError::corrupt(
                w,
                "tip count outside [max(gc_floor, 1), segment_count]",
            ));
        }
        if tip.first == 0 || tip.first > tip.last || tip.last > MAX_SEQ {
            return Err(StorageError::corrupt(w, "tip seq range invalid"));
        }
        if tips
            .last()
            .is_some_and(|p| (p.count, p.doc_id) >= (tip.count, tip.doc_id))
        {
            return Err(StorageError::corrupt(w, "tips not strictly ascending"));
        }
        tips.push(tip);
    }
    Ok(tips)
}

/// The checkpoint entries of a head manifest (STO-8): 72 bytes each, strictly
/// ascending by `doc_id` (at most one checkpoint per document).
fn decode_checkpoint_entries(list: &[Vec<u8>]) -> Result<Vec<CheckpointEntry>, StorageError> {
    let w = "head manifest";
    let mut out: Vec<CheckpointEntry> = Vec::with_capacity(list.len());
    for c in list {
        if c.len() != CHECKPOINT_ENTRY_LEN {
            return Err(StorageError::corrupt(w, "checkpoint entry is not 72 bytes"));
        }
        let entry = CheckpointEntry {
            doc_id: id32(c.get(..32).unwrap_or_default(), w, "checkpoint doc")?,
            coverage: u64be(c.get(32..40).unwrap_or_default()),
            id: id32(c.get(40..).unwrap_or_default(), w, "checkpoint id")?,
        };
        if out.last().is_some_and(|p| p.doc_id >= entry.doc_id) {
            return Err(StorageError::corrupt(
                w,
                "checkpoint entries not strictly ascending by document",
            ));
        }
        out.push(entry);
    }
    Ok(out)
}

/// Largest envelope `seq` (ENV-8).
const MAX_SEQ: u64 = (1 << 53) - 1;

/// 32-byte object ids in strictly ascending order.
fn ascending_ids(list: &[Vec<u8>], w: &str, what: &str) -> Result<Vec<ObjectId>, StorageError> {
    let mut ids: Vec<ObjectId> = Vec::with_capacity(list.len());
    for s in list {
        let id = id32(s, w, &format!("{what} id"))?;
        if ids.last().is_some_and(|p| *p >= id) {
            return Err(StorageError::corrupt(
                w,
                format!("{what}s not strictly ascending"),
            ));
        }
        ids.push(id);
    }
    Ok(ids)
}

/// A validated segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Writing device.
    pub device: [u8; 32],
    /// Index in the device's sequence.
    pub index: u64,
    /// Envelope bytes.
    pub envelopes: Vec<Vec<u8>>,
}

impl Segment {
    /// Canonical body bytes for the epoch `es` (STO-6).
    pub fn encode(&self, es: &EpochStorage) -> Vec<u8> {
        wire::encode(&pb::Segment {
            version: LAYOUT_VERSION,
            space_id: es.space_id().to_vec(),
            epoch_id: es.epoch_id().to_vec(),
            device: self.device.to_vec(),
            index: self.index,
            envelopes: self.envelopes.clone(),
        })
    }

    /// Decodes and validates a body signed by `signer` (STO-10).
    pub fn decode(body: &[u8], es: &EpochStorage, signer: &[u8; 32]) -> Result<Self, StorageError> {
        let w = "segment";
        let m: pb::Segment = wire::decode(body, &wire::SEGMENT)
            .map_err(|e| StorageError::corrupt(w, e.to_string()))?;
        let device = check_signed_by(
            w,
            m.version,
            &m.space_id,
            &m.epoch_id,
            &m.device,
            es,
            signer,
            "writer",
        )?;
        check_envelopes(&m.envelopes, w)?;
        Ok(Segment {
            device,
            index: m.index,
            envelopes: m.envelopes,
        })
    }
}

/// A validated snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Compacting device.
    pub device: [u8; 32],
    /// Per-device segment coverage, ascending by device.
    pub covers: Vec<([u8; 32], u64)>,
    /// Covered DAG heads `(doc_id, envelope id)`, ascending.
    pub heads: Vec<([u8; 32], [u8; 32])>,
    /// Covered envelopes, predecessors first.
    pub envelopes: Vec<Vec<u8>>,
}

impl Snapshot {
    /// How many segments of `device` it covers.
    pub fn cover(&self, device: &[u8; 32]) -> u64 {
        self.covers
            .iter()
            .find(|(d, _)| d == device)
            .map(|(_, c)| *c)
            .unwrap_or(0)
    }

    /// Total coverage: the sum of `count` over `covers` (STO-13, STO-24).
    pub fn coverage(&self) -> u64 {
        self.covers
            .iter()
            .map(|(_, c)| *c)
            .fold(0u64, u64::saturating_add)
    }

    /// Canonical body bytes for the epoch `es` (STO-6).
    pub fn encode(&self, es: &EpochStorage) -> Vec<u8> {
        wire::encode(&pb::Snapshot {
            version: LAYOUT_VERSION,
            space_id: es.space_id().to_vec(),
            epoch_id: es.epoch_id().to_vec(),
            device: self.device.to_vec(),
            covers: self
                .covers
                .iter()
                .map(|(d, c)| [d.as_slice(), &c.to_be_bytes()].concat())
                .collect(),
            heads: self
                .heads
                .iter()
                .map(|(d, h)| [d.as_slice(), h.as_slice()].concat())
                .collect(),
            envelopes: self.envelopes.clone(),
        })
    }

    /// Decodes and validates a body signed by `signer` (STO-12).
    pub fn decode(body: &[u8], es: &EpochStorage, signer: &[u8; 32]) -> Result<Self, StorageError> {
        let w = "snapshot";
        let m: pb::Snapshot = wire::decode(body, &wire::SNAPSHOT)
            .map_err(|e| StorageError::corrupt(w, e.to_string()))?;
        let device = check_signed_by(
            w,
            m.version,
            &m.space_id,
            &m.epoch_id,
            &m.device,
            es,
            signer,
            "writer",
        )?;
        if m.covers.len() > MAX_LISTED || m.heads.len() > MAX_LISTED {
            return Err(StorageError::corrupt(w, "too many entries"));
        }
        let mut covers: Vec<([u8; 32], u64)> = Vec::with_capacity(m.covers.len());
        for c in &m.covers {
            if c.len() != 40 {
                return Err(StorageError::corrupt(w, "cover entry is not 40 bytes"));
            }
            let d = id32(c.get(..32).unwrap_or_default(), w, "cover device")?;
            if covers.last().is_some_and(|(p, _)| *p >= d) {
                return Err(StorageError::corrupt(w, "covers not strictly ascending"));
            }
            covers.push((d, u64be(c.get(32..).unwrap_or_default())));
        }
        let mut heads: Vec<([u8; 32], [u8; 32])> = Vec::with_capacity(m.heads.len());
        for h in &m.heads {
            if h.len() != 64 {
                return Err(StorageError::corrupt(w, "head entry is not 64 bytes"));
            }
            let e = (
                id32(h.get(..32).unwrap_or_default(), w, "head doc")?,
                id32(h.get(32..).unwrap_or_default(), w, "head id")?,
            );
            if heads.last().is_some_and(|p| *p >= e) {
                return Err(StorageError::corrupt(w, "heads not strictly ascending"));
            }
            heads.push(e);
        }
        check_envelopes(&m.envelopes, w)?;
        Ok(Snapshot {
            device,
            covers,
            heads,
            envelopes: m.envelopes,
        })
    }
}

/// Content type of a Yjs state in a checkpoint (`YJS_SNAPSHOT`, §8.2).
pub const CONTENT_YJS_SNAPSHOT: u32 = ContentType::YjsSnapshot.value();
/// Content type of an Automerge state in a checkpoint (`AUTOMERGE_SNAPSHOT`, §8.2).
pub const CONTENT_AUTOMERGE_SNAPSHOT: u32 = ContentType::AutomergeSnapshot.value();

/// A validated checkpoint body (STO-24): one document's CRDT state as the
/// envelopes of one snapshot produce it, a claim checked later (STO-27). Its
/// space and epoch are signed as a prefix (STO-6); its device is the signer,
/// which must be the device of the head manifest listing it; its document and
/// coverage are that manifest's entry ([`CheckpointEntry`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// 18 (Yjs) or 25 (Automerge).
    pub content_type: u32,
    /// The writer's snapshot whose envelopes produce the state.
    pub snapshot: ObjectId,
    /// The CRDT state.
    pub state: Vec<u8>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("content_type", &self.content_type)
            .field(
                "snapshot",
                &hex::encode(self.snapshot.get(..4).unwrap_or_default()),
            )
            .field("state_bytes", &self.state.len())
            .finish_non_exhaustive()
    }
}

impl Checkpoint {
    /// Canonical body bytes (STO-6); the epoch and space it is sealed under are
    /// bound by the signature ([`seal_object`]), not by a field.
    pub fn encode(&self) -> Vec<u8> {
        wire::encode(&pb::Checkpoint {
            version: LAYOUT_VERSION,
            content_type: self.content_type,
            snapshot: self.snapshot.to_vec(),
            state: self.state.clone(),
        })
    }

    /// Decodes and validates a body (STO-24). That its signer is the device of
    /// the manifest listing it, and that its snapshot is listed next to it, are
    /// the caller's checks (it holds the manifest).
    pub fn decode(body: &[u8]) -> Result<Self, StorageError> {
        let w = "checkpoint";
        let m: pb::Checkpoint = wire::decode(body, &wire::CHECKPOINT)
            .map_err(|e| StorageError::corrupt(w, e.to_string()))?;
        check_version(m.version)?;
        if m.content_type != CONTENT_YJS_SNAPSHOT && m.content_type != CONTENT_AUTOMERGE_SNAPSHOT {
            return Err(StorageError::corrupt(
                w,
                format!("content type {} is not 18 or 25", m.content_type),
            ));
        }
        if m.state.is_empty() {
            return Err(StorageError::corrupt(w, "empty state"));
        }
        Ok(Checkpoint {
            content_type: m.content_type,
            snapshot: id32(&m.snapshot, w, "snapshot")?,
            state: m.state,
        })
    }
}

/// Plaintext chunk size of files written by this implementation.
pub const CHUNK_SIZE: u32 = 1024 * 1024;
/// Largest chunk size a reader accepts.
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Most chunks in one file.
pub const MAX_CHUNKS: u64 = 1 << 22;

/// A validated file manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileManifest {
    /// Writing device.
    pub device: [u8; 32],
    /// Plaintext size.
    pub size: u64,
    /// Plaintext chunk size.
    pub chunk_size: u32,
    /// Chunk object ids in order.
    pub chunks: Vec<ObjectId>,
    /// Chunk key.
    pub file_key: [u8; 32],
    /// SHA-256 of the plaintext.
    pub content_hash: [u8; 32],
    /// Media type.
    pub media_type: String,
}

impl FileManifest {
    /// Canonical body bytes for the epoch `es` (STO-6).
    pub fn encode(&self, es: &EpochStorage) -> Vec<u8> {
        wire::encode(&pb::FileManifest {
            version: LAYOUT_VERSION,
            space_id: es.space_id().to_vec(),
            epoch_id: es.epoch_id().to_vec(),
            device: self.device.to_vec(),
            size: self.size,
            chunk_size: self.chunk_size,
            chunks: self.chunks.iter().map(|c| c.to_vec()).collect(),
            file_key: self.file_key.to_vec(),
            content_hash: self.content_hash.to_vec(),
            media_type: self.media_type.as_bytes().to_vec(),
        })
    }

    /// Decodes and validates a body signed by `signer` (STO-16).
    pub fn decode(body: &[u8], es: &EpochStorage, signer: &[u8; 32]) -> Result<Self, StorageError> {
        let w = "file manifest";
        let m: pb::FileManifest = wire::decode(body, &wire::FILE_MANIFEST)
            .map_err(|e| StorageError::corrupt(w, e.to_string()))?;
        let device = check_signed_by(
            w,
            m.version,
            &m.space_id,
            &m.epoch_id,
            &m.device,
            es,
            signer,
            "writer",
        )?;
        if m.chunk_size == 0 || m.chunk_size > MAX_CHUNK_SIZE {
            return Err(StorageError::corrupt(w, "chunk size out of range"));
        }
        let expected = m.size.div_ceil(u64::from(m.chunk_size));
        if expected > MAX_CHUNKS || m.chunks.len() as u64 != expected {
            return Err(StorageError::corrupt(
                w,
                "chunk count does not match the size",
            ));
        }
        let chunks = m
            .chunks
            .iter()
            .map(|c| id32(c, w, "chunk id"))
            .collect::<Result<Vec<_>, _>>()?;
        if m.media_type.len() > 255 {
            return Err(StorageError::corrupt(w, "media type longer than 255 bytes"));
        }
        let media_type = String::from_utf8(m.media_type)
            .map_err(|_| StorageError::corrupt(w, "media type is not UTF-8"))?;
        Ok(FileManifest {
            device,
            size: m.size,
            chunk_size: m.chunk_size,
            chunks,
            file_key: id32(&m.file_key, w, "file key")?,
            content_hash: id32(&m.content_hash, w, "content hash")?,
            media_type,
        })
    }
}

/// The canonical bytes of the format-version file.
pub fn format_file() -> Vec<u8> {
    wire::encode(&pb::StorageFormat {
        version: LAYOUT_VERSION,
    })
}

/// Checks the format-version file (STO-2).
pub fn check_format_file(bytes: &[u8]) -> Result<(), StorageError> {
    let m: pb::StorageFormat = wire::decode(bytes, &wire::STORAGE_FORMAT)
        .map_err(|e| StorageError::corrupt("format file", e.to_string()))?;
    check_version(m.version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clientful_core::keys::EpochKey;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn setup() -> (EpochStorage, SigningKey, ChaCha20Rng) {
        let es = EpochStorage::derive(&[1; 32], &EpochKey::new([2; 32], [3; 32])).expect("derive");
        (
            es,
            SigningKey::from_seed(&[9; 32]),
            ChaCha20Rng::from_seed([0; 32]),
        )
    }

    #[test]
    fn head_manifest_round_trip_and_tamper() {
        let (es, sk, mut rng) = setup();
        let me = sk.public_bytes();
        let mut m = HeadManifest::empty(me);
        m.counter = 3;
        m.segment_count = 2;
        m.segments = vec![(0, [4; 32]), (1, [5; 32])];
        let bytes = seal_object(&es, Kind::Head, &sk, m.encode(&es), &mut rng).expect("seal");
        let opened = open_object(&es, Kind::Head, &bytes, &[me]).expect("open");
        assert_eq!(
            HeadManifest::decode(&opened.body, &es, &opened.signer).expect("decode"),
            m
        );
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            if let Some(b) = bad.get_mut(i) {
                *b ^= 0x40;
            }
            let err = open_object(&es, Kind::Head, &bad, &[me]).expect_err("tampered");
            assert!(
                matches!(
                    err,
                    StorageError::Corrupt { .. } | StorageError::Version { .. }
                ),
                "{err}"
            );
        }
        assert!(open_object(&es, Kind::Segment, &bytes, &[me]).is_err());
        assert!(open_object(&es, Kind::Head, &bytes, &[[8; 32]]).is_err());
    }

    /// What a member holding two epochs' (or spaces') keys can do: open a
    /// stored object and seal the same signed plaintext under another key.
    fn reseal(bytes: &[u8], kind: Kind, from: &EpochStorage, to: &EpochStorage) -> Vec<u8> {
        let obj: pb::StoredObject = wire::decode(bytes, &wire::STORED_OBJECT).expect("decode");
        let nonce: [u8; NONCE_LEN] = obj.nonce.as_slice().try_into().expect("nonce");
        let plain = crate::chunk::aead_open(
            from.seal_key(),
            &nonce,
            &aad(kind, from.epoch_id()).expect("aad"),
            &obj.ciphertext,
        )
        .expect("open");
        let ciphertext = crate::chunk::aead_seal(
            to.seal_key(),
            &nonce,
            &aad(kind, to.epoch_id()).expect("aad"),
            &plain,
        )
        .expect("seal");
        wire::encode(&pb::StoredObject {
            version: LAYOUT_VERSION,
            kind: kind as u32,
            epoch_id: to.epoch_id().to_vec(),
            nonce: obj.nonce,
            ciphertext,
        })
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            content_type: CONTENT_YJS_SNAPSHOT,
            snapshot: [6; 32],
            state: vec![1, 2, 3],
        }
    }

    #[test]
    fn checkpoint_signature_binds_space_and_epoch() {
        let (es, sk, mut rng) = setup();
        let me = sk.public_bytes();
        let cp = checkpoint();
        let file = seal_object(&es, Kind::Checkpoint, &sk, cp.encode(), &mut rng).expect("seal");
        let opened = open_object(&es, Kind::Checkpoint, &file, &[me]).expect("open");
        assert_eq!(Checkpoint::decode(&opened.body).expect("decode"), cp);
        // The signature input is space_id || epoch_id || body, not the body alone.
        let signed: pb::SignedObject = {
            let obj: pb::StoredObject = wire::decode(&file, &wire::STORED_OBJECT).expect("decode");
            let nonce: [u8; NONCE_LEN] = obj.nonce.as_slice().try_into().expect("nonce");
            let plain = crate::chunk::aead_open(
                es.seal_key(),
                &nonce,
                &aad(Kind::Checkpoint, es.epoch_id()).expect("aad"),
                &obj.ciphertext,
            )
            .expect("open");
            wire::decode(&plain, &wire::SIGNED_OBJECT).expect("signed")
        };
        let key = PublicKey::from_bytes(&me).expect("key");
        let prefixed = [es.space_id().as_slice(), es.epoch_id(), &signed.body].concat();
        key.verify_with_label(
            labels::SIG_STORAGE_CHECKPOINT,
            &prefixed,
            &signed.signature,
            "test",
        )
        .expect("signature over space_id || epoch_id || body");
        assert!(
            key.verify_with_label(
                labels::SIG_STORAGE_CHECKPOINT,
                &signed.body,
                &signed.signature,
                "test"
            )
            .is_err()
        );
        // Moved by a member into another epoch's directory, or another space's:
        // the AEAD opens (re-sealed), the signature does not verify.
        let other_epoch =
            EpochStorage::derive(&[1; 32], &EpochKey::new([4; 32], [5; 32])).expect("derive");
        let other_space =
            EpochStorage::derive(&[7; 32], &EpochKey::new([2; 32], [3; 32])).expect("derive");
        for to in [&other_epoch, &other_space] {
            let moved = reseal(&file, Kind::Checkpoint, &es, to);
            let err = open_object(to, Kind::Checkpoint, &moved, &[me]).expect_err("moved");
            assert!(err.to_string().contains("bad signature"), "{err}");
        }
        // The other kinds still sign the body alone: a head moved the same way
        // verifies and is refused by its body's epoch_id (STO-7 step 8).
        let mut m = HeadManifest::empty(me);
        m.counter = 1;
        let head = seal_object(&es, Kind::Head, &sk, m.encode(&es), &mut rng).expect("seal");
        let moved = reseal(&head, Kind::Head, &es, &other_epoch);
        let o = open_object(&other_epoch, Kind::Head, &moved, &[me]).expect("signature holds");
        let err = HeadManifest::decode(&o.body, &other_epoch, &o.signer).expect_err("epoch");
        assert!(err.to_string().contains("epoch mismatch"), "{err}");
    }

    #[test]
    fn checkpoint_body_rules() {
        let ok = checkpoint();
        for (bad, why) in [
            (
                Checkpoint {
                    content_type: 17,
                    ..ok.clone()
                },
                "content type",
            ),
            (
                Checkpoint {
                    state: Vec::new(),
                    ..ok.clone()
                },
                "empty state",
            ),
        ] {
            let err = Checkpoint::decode(&bad.encode()).expect_err(why);
            assert!(err.to_string().contains(why), "{err}");
        }
        let short = wire::encode(&pb::Checkpoint {
            version: LAYOUT_VERSION,
            content_type: CONTENT_AUTOMERGE_SNAPSHOT,
            snapshot: vec![1; 31],
            state: vec![1],
        });
        assert!(Checkpoint::decode(&short).is_err());
        let v2 = wire::encode(&pb::Checkpoint {
            version: 2,
            content_type: CONTENT_AUTOMERGE_SNAPSHOT,
            snapshot: vec![1; 32],
            state: vec![1],
        });
        assert!(matches!(
            Checkpoint::decode(&v2),
            Err(StorageError::Version { found: 2 })
        ));
    }

    #[test]
    fn head_manifest_checkpoint_entries() {
        let (es, sk, mut rng) = setup();
        let me = sk.public_bytes();
        let entry = |d: u8, c: u64, id: u8| CheckpointEntry {
            doc_id: [d; 32],
            coverage: c,
            id: [id; 32],
        };
        let mut m = HeadManifest::empty(me);
        m.counter = 1;
        m.checkpoints = vec![entry(1, 9, 7), entry(2, 3, 5)];
        let body = m.encode(&es);
        assert_eq!(HeadManifest::decode(&body, &es, &me).expect("decode"), m);
        let file = seal_object(&es, Kind::Head, &sk, body, &mut rng).expect("seal");
        let o = open_object(&es, Kind::Head, &file, &[me]).expect("open");
        assert_eq!(HeadManifest::decode(&o.body, &es, &me).expect("decode"), m);
        assert_eq!(
            entry(1, 9, 7).to_bytes().len(),
            CHECKPOINT_ENTRY_LEN,
            "doc_id || u64be(coverage) || id"
        );
        // Not ascending by document, or two of one document.
        for list in [
            vec![entry(2, 3, 5), entry(1, 9, 7)],
            vec![entry(1, 3, 5), entry(1, 9, 7)],
        ] {
            m.checkpoints = list;
            let err = HeadManifest::decode(&m.encode(&es), &es, &me).expect_err("order");
            assert!(err.to_string().contains("not strictly ascending"), "{err}");
        }
        // An entry of the wrong length (the old 32-byte id, or 73 bytes).
        for len in [32usize, 71, 73] {
            let raw = wire::encode(&pb::HeadManifest {
                version: LAYOUT_VERSION,
                space_id: es.space_id().to_vec(),
                device: me.to_vec(),
                counter: 1,
                checkpoints: vec![vec![1; len]],
                epoch_id: es.epoch_id().to_vec(),
                ..Default::default()
            });
            let err = HeadManifest::decode(&raw, &es, &me).expect_err("length");
            assert!(err.to_string().contains("not 72 bytes"), "{err}");
        }
    }

    #[test]
    fn format_file_versions() {
        check_format_file(&format_file()).expect("v1");
        let v2 = wire::encode(&pb::StorageFormat { version: 2 });
        assert!(matches!(
            check_format_file(&v2),
            Err(StorageError::Version { found: 2 })
        ));
        assert!(matches!(
            check_format_file(&[0xff]),
            Err(StorageError::Corrupt { .. })
        ));
    }
}
