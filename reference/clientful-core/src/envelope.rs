//! Signed, encrypted envelopes (spec §6): sealing, structural decoding and opening.
//!
//! ```text
//! SignedEnvelope  { payload: bytes(EnvelopePayload), signature: SignWithLabel("sig/envelope", space_id || payload) }
//! EnvelopePayload { header: bytes(EnvelopeHeader), ciphertext: AEAD(enc_key, nonce, plaintext, aad) }
//! id        = HashWithLabel("id/envelope", payload)                       (ENV-4)
//! doc_key   = DeriveWithLabel(epoch_secret, space_id, "kdf/doc-key", epoch_id || doc_id, 32)
//! enc_key || key_commitment = DeriveWithLabel(doc_key, nonce, "kdf/envelope-keys", "", 64)
//! aad       = M("aad/envelope", header bytes)                             (ENV-13)
//! plaintext = u32be(len(content)) || EnvelopeContent bytes || zero padding
//! ```
//!
//! The header does not name the space: every carrier of an envelope (a room, a
//! space's storage, a sync session) already belongs to one space, so the space id
//! travels as context and is bound by the signature, which covers
//! `space_id || payload` (ENV-5), and by the document key (ENV-11).
//!
//! [`open`] runs the checks of spec §6.8 in their normative order, so the error class
//! of any input is the same on every implementation. Nothing is re-encoded to
//! verify: the signature and id are over the payload bytes as received.

use alloc::vec::Vec;

use clientful_proto::v1 as pb;
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::keys::{EpochKey, PublicKey, SigningKey};
use crate::limits::{
    ID_LEN, MAX_ENVELOPE_BYTES, MAX_PREDECESSORS, MAX_SEQ, NONCE_LEN, SIGNATURE_LEN, TAG_LEN,
};
use crate::{CIPHER_SUITE_V1, PROTOCOL_VERSION, labels, padding, suite, wire};

/// A 32-byte envelope id.
pub type EnvelopeId = [u8; 32];

/// The validated header of an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Document id.
    pub doc_id: [u8; 32],
    /// Author device key bytes.
    pub author: [u8; 32],
    /// Per-(author, doc) sequence number.
    pub seq: u64,
    /// The author's previous envelope in this document (`None` iff `seq == 1`).
    pub prev: Option<EnvelopeId>,
    /// Causal predecessors, strictly ascending.
    pub preds: Vec<EnvelopeId>,
    /// Key epoch id.
    pub epoch_id: [u8; 32],
    /// Key commitment.
    pub key_commitment: [u8; 32],
    /// AEAD nonce.
    pub nonce: [u8; 24],
}

/// An envelope whose structure is valid (steps 1 to 6 of spec §6.8); nothing about
/// its signature or content is known yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedEnvelope {
    /// Envelope id (over the payload bytes).
    pub id: EnvelopeId,
    /// The validated header.
    pub header: Header,
    /// Exact payload bytes (what the signature covers).
    pub payload: Vec<u8>,
    /// Exact header bytes (what the AAD binds).
    pub header_bytes: Vec<u8>,
    /// AEAD ciphertext and tag.
    pub ciphertext: Vec<u8>,
    /// Ed25519 signature.
    pub signature: [u8; 64],
}

/// What an opened envelope holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedEnvelope {
    /// Envelope id.
    pub id: EnvelopeId,
    /// The validated header.
    pub header: Header,
    /// Content type (never 0).
    pub content_type: u32,
    /// Content body.
    pub body: Vec<u8>,
}

/// An envelope's bytes as received, with what [`decode`] made of them (steps 1
/// to 6 of spec §6.8), for a path that decodes once and carries the result
/// (storage pulls, then the replica's opening): [`open_decoded`] on
/// [`ReceivedEnvelope::decoded`] is [`open`] on [`ReceivedEnvelope::bytes`].
/// Built only by [`ReceivedEnvelope::decode`], so the two always agree; nothing
/// is re-encoded, the bytes are the ones that arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedEnvelope {
    bytes: Vec<u8>,
    decoded: DecodedEnvelope,
}

impl ReceivedEnvelope {
    /// Decodes `bytes` ([`decode`]) and keeps them beside the result.
    pub fn decode(bytes: Vec<u8>) -> Result<Self, Error> {
        let decoded = decode(&bytes)?;
        Ok(ReceivedEnvelope { bytes, decoded })
    }

    /// The envelope id.
    pub fn id(&self) -> &EnvelopeId {
        &self.decoded.id
    }

    /// The bytes as received.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// What [`decode`] made of them.
    pub fn decoded(&self) -> &DecodedEnvelope {
        &self.decoded
    }

    /// The bytes and their decoding.
    pub fn into_parts(self) -> (Vec<u8>, DecodedEnvelope) {
        (self.bytes, self.decoded)
    }
}

/// What the receiver knows when it opens an envelope (spec §6.8). Implemented by the
/// document and membership layers; [`StaticContext`] is a plain implementation.
pub trait OpenContext {
    /// The space the envelope was delivered for.
    fn space_id(&self) -> &[u8; 32];
    /// The document it was delivered for, or `None` to accept any document of the
    /// space (a storage scan).
    fn doc_id(&self) -> Option<&[u8; 32]>;
    /// Whether `author` is a device the receiver accepts as a signer.
    fn is_known_signer(&self, author: &[u8; 32]) -> bool;
    /// The epoch key named `epoch_id`, if known.
    fn epoch_key(&self, epoch_id: &[u8; 32]) -> Option<&EpochKey>;
    /// The id of the envelope already accepted for `(author, doc, seq)`, if any.
    fn accepted_id(&self, author: &[u8; 32], doc_id: &[u8; 32], seq: u64) -> Option<EnvelopeId> {
        let _ = (author, doc_id, seq);
        None
    }
    /// `author`'s key, validated once by the context (a [`PublicKey`] exists only
    /// once validated), so that opening many envelopes of one author does not
    /// validate it again each time; `None` (the default): validated here. A key
    /// for other bytes than `author` is ignored.
    fn signer_key(&self, author: &[u8; 32]) -> Option<PublicKey> {
        let _ = author;
        None
    }
}

/// A context given as plain data: for tests, vectors and simple tools.
#[derive(Debug, Clone, Default)]
pub struct StaticContext {
    /// Expected space.
    pub space_id: [u8; 32],
    /// Expected document (`None`: any).
    pub doc_id: Option<[u8; 32]>,
    /// Accepted signer keys.
    pub signers: Vec<[u8; 32]>,
    /// Known epochs.
    pub epochs: Vec<EpochKey>,
    /// Already accepted `(author, doc, seq, id)`.
    pub accepted: Vec<([u8; 32], [u8; 32], u64, EnvelopeId)>,
}

impl OpenContext for StaticContext {
    fn space_id(&self) -> &[u8; 32] {
        &self.space_id
    }
    fn doc_id(&self) -> Option<&[u8; 32]> {
        self.doc_id.as_ref()
    }
    fn is_known_signer(&self, author: &[u8; 32]) -> bool {
        self.signers.iter().any(|s| s == author)
    }
    fn epoch_key(&self, epoch_id: &[u8; 32]) -> Option<&EpochKey> {
        self.epochs.iter().find(|e| e.id() == epoch_id)
    }
    fn accepted_id(&self, author: &[u8; 32], doc_id: &[u8; 32], seq: u64) -> Option<EnvelopeId> {
        self.accepted
            .iter()
            .find(|(a, d, s, _)| a == author && d == doc_id && *s == seq)
            .map(|(_, _, _, id)| *id)
    }
}

fn fixed<const N: usize>(bytes: &[u8], what: &'static str) -> Result<[u8; N], Error> {
    bytes
        .try_into()
        .map_err(|_| Error::malformed(what, "wrong length"))
}

/// Steps 1 to 6 of spec §6.8: size, the three canonical decodes, versions, field
/// shapes and limits. No key is needed.
pub fn decode(bytes: &[u8]) -> Result<DecodedEnvelope, Error> {
    // 1. Size (ENV-LIM-1).
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(Error::LimitExceeded {
            what: "envelope size",
            max: MAX_ENVELOPE_BYTES as u64,
            actual: bytes.len() as u64,
        });
    }
    // 2. SignedEnvelope.
    let signed: pb::SignedEnvelope = wire::decode(bytes, &wire::SIGNED_ENVELOPE)?;
    if signed.payload.is_empty() {
        return Err(Error::malformed("SignedEnvelope", "missing payload"));
    }
    let signature: [u8; SIGNATURE_LEN] = fixed(&signed.signature, "SignedEnvelope.signature")?;
    // 3. EnvelopePayload.
    let payload: pb::EnvelopePayload = wire::decode(&signed.payload, &wire::ENVELOPE_PAYLOAD)?;
    if payload.header.is_empty() {
        return Err(Error::malformed("EnvelopePayload", "missing header"));
    }
    if payload.ciphertext.len() < TAG_LEN {
        return Err(Error::malformed(
            "EnvelopePayload.ciphertext",
            "shorter than the AEAD tag",
        ));
    }
    // 4. EnvelopeHeader.
    let h: pb::EnvelopeHeader = wire::decode(&payload.header, &wire::ENVELOPE_HEADER)?;
    // 5. Versions (ENV-6).
    if h.protocol_version != PROTOCOL_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "protocol version",
            value: u64::from(h.protocol_version),
        });
    }
    if h.cipher_suite != CIPHER_SUITE_V1 {
        return Err(Error::UnsupportedVersion {
            what: "cipher suite",
            value: u64::from(h.cipher_suite),
        });
    }
    // 6. Field shapes and limits (ENV-7 .. ENV-10), in field order.
    let doc_id = fixed::<ID_LEN>(&h.doc_id, "EnvelopeHeader.doc_id")?;
    let author = fixed::<ID_LEN>(&h.author, "EnvelopeHeader.author")?;
    if h.seq == 0 {
        return Err(Error::malformed(
            "EnvelopeHeader.seq",
            "missing (must be >= 1)",
        ));
    }
    if h.seq > MAX_SEQ {
        return Err(Error::LimitExceeded {
            what: "sequence number",
            max: MAX_SEQ,
            actual: h.seq,
        });
    }
    let prev = match (h.seq, h.prev.is_empty()) {
        (1, true) => None,
        (1, false) => {
            return Err(Error::malformed(
                "EnvelopeHeader.prev",
                "present although seq is 1",
            ));
        }
        (_, true) => {
            return Err(Error::malformed(
                "EnvelopeHeader.prev",
                "missing although seq is above 1",
            ));
        }
        (_, false) => Some(fixed::<ID_LEN>(&h.prev, "EnvelopeHeader.prev")?),
    };
    if h.preds.len() > MAX_PREDECESSORS {
        return Err(Error::LimitExceeded {
            what: "predecessor count",
            max: MAX_PREDECESSORS as u64,
            actual: h.preds.len() as u64,
        });
    }
    let mut preds: Vec<EnvelopeId> = Vec::with_capacity(h.preds.len());
    for p in &h.preds {
        preds.push(fixed::<ID_LEN>(p, "EnvelopeHeader.preds")?);
    }
    if preds.windows(2).any(|w| matches!(w, [a, b] if a >= b)) {
        return Err(Error::non_canonical(
            "EnvelopeHeader.preds",
            "not strictly ascending",
        ));
    }
    let epoch_id = fixed::<ID_LEN>(&h.epoch_id, "EnvelopeHeader.epoch_id")?;
    let key_commitment = fixed::<ID_LEN>(&h.key_commitment, "EnvelopeHeader.key_commitment")?;
    let nonce = fixed::<NONCE_LEN>(&h.nonce, "EnvelopeHeader.nonce")?;

    let id = raw::envelope_id(&signed.payload)?;
    Ok(DecodedEnvelope {
        id,
        header: Header {
            doc_id,
            author,
            seq: h.seq,
            prev,
            preds,
            epoch_id,
            key_commitment,
            nonce,
        },
        payload: signed.payload,
        header_bytes: payload.header,
        ciphertext: payload.ciphertext,
        signature,
    })
}

/// Opens an envelope: every check of spec §6.8, in order. On success the envelope
/// is authentic, addressed to this context, and its content is decrypted.
///
/// An envelope whose id the context already accepted for the same
/// `(author, doc, seq)` opens normally: duplicates are idempotent, and the caller
/// decides what to do with them.
pub fn open(bytes: &[u8], ctx: &impl OpenContext) -> Result<OpenedEnvelope, Error> {
    open_decoded(decode(bytes)?, ctx)
}

/// Steps 7 to 15 of spec §6.8 on an envelope [`decode`] already accepted, for
/// callers that decode first (to deduplicate by id) and must not decode twice.
pub fn open_decoded(d: DecodedEnvelope, ctx: &impl OpenContext) -> Result<OpenedEnvelope, Error> {
    let h = &d.header;
    // 7. Context (ENV-14): the document; the space is bound by the signature.
    if let Some(doc) = ctx.doc_id()
        && &h.doc_id != doc
    {
        return Err(Error::WrongContext {
            what: "document id",
        });
    }
    // 8. Signer (ENV-15).
    if !ctx.is_known_signer(&h.author) {
        return Err(Error::UnknownSigner);
    }
    let author = match ctx.signer_key(&h.author) {
        Some(k) if k.as_bytes() == &h.author => k,
        _ => PublicKey::from_bytes(&h.author)?,
    };
    // 9. Signature over the context's space and the payload bytes as received (ENV-5).
    author.verify_with_label(
        labels::SIG_ENVELOPE,
        &raw::signature_input(ctx.space_id(), &d.payload),
        &d.signature,
        "envelope",
    )?;
    // 10. Equivocation (ENV-16).
    if let Some(other) = ctx.accepted_id(&h.author, &h.doc_id, h.seq)
        && other != d.id
    {
        return Err(Error::Equivocation { seq: h.seq });
    }
    // 11. Epoch (ENV-17).
    let epoch = ctx.epoch_key(&h.epoch_id).ok_or(Error::UnknownEpoch)?;
    // 12. Key commitment (ENV-12), before any decryption.
    let doc_key = raw::doc_key(epoch, ctx.space_id(), &h.doc_id)?;
    let (enc_key, commitment) = raw::envelope_keys(&doc_key, &h.nonce)?;
    if !bool::from(commitment.ct_eq(&h.key_commitment)) {
        return Err(Error::DecryptFailed {
            reason: "key commitment mismatch",
        });
    }
    // 13. AEAD with the header bound as associated data (ENV-13).
    let aad = raw::aad(&d.header_bytes)?;
    let plaintext = Zeroizing::new(suite::aead_open(&enc_key, &h.nonce, &aad, &d.ciphertext)?);
    // 14. Framing and padding (ENV-18).
    let content_bytes = padding::unframe(&plaintext)?;
    // 15. Content (ENV-19).
    let content: pb::EnvelopeContent = wire::decode(content_bytes, &wire::ENVELOPE_CONTENT)?;
    if content.content_type == 0 {
        return Err(Error::malformed(
            "EnvelopeContent.content_type",
            "missing (0 is invalid)",
        ));
    }
    Ok(OpenedEnvelope {
        id: d.id,
        header: d.header,
        content_type: content.content_type,
        body: content.body,
    })
}

/// The `preds` a sealer writes for `preds` and `prev` (ENV-21 step 2): sorted
/// ascending, without duplicates, and without `prev`, which is a DAG edge of its
/// own (§6.4), so listing it again would only cost 34 bytes of header.
pub fn predecessors(preds: &[EnvelopeId], prev: Option<EnvelopeId>) -> Vec<EnvelopeId> {
    let mut out: Vec<EnvelopeId> = preds
        .iter()
        .filter(|p| Some(**p) != prev)
        .copied()
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The predecessors a writer names for its next envelope (DOC-14): its current
/// DAG heads other than `prev`, at most 64, the smallest first (`heads` in
/// ascending order, as a `BTreeSet` iterates).
pub fn heads_as_predecessors<'a>(
    heads: impl IntoIterator<Item = &'a EnvelopeId>,
    prev: Option<EnvelopeId>,
) -> Vec<EnvelopeId> {
    heads
        .into_iter()
        .filter(|h| Some(**h) != prev)
        .take(MAX_PREDECESSORS)
        .copied()
        .collect()
}

/// What to seal.
#[derive(Debug, Clone)]
pub struct SealRequest<'a> {
    /// Space id.
    pub space_id: [u8; 32],
    /// Document id.
    pub doc_id: [u8; 32],
    /// Sequence number (>= 1).
    pub seq: u64,
    /// The author's previous envelope in this document; required iff `seq > 1`.
    pub prev: Option<EnvelopeId>,
    /// Causal predecessors, in any order; the sealer sorts and de-duplicates them
    /// and leaves `prev` out ([`predecessors`]).
    pub preds: Vec<EnvelopeId>,
    /// Content type (non-zero).
    pub content_type: u32,
    /// Content body.
    pub body: &'a [u8],
}

/// A sealed envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEnvelope {
    /// Envelope id.
    pub id: EnvelopeId,
    /// Encoded `SignedEnvelope`.
    pub bytes: Vec<u8>,
}

/// Seals `req` as `author` under `epoch`, with a fresh random nonce from `rng` and
/// the recommended padding.
pub fn seal<R: CryptoRng + ?Sized>(
    author: &SigningKey,
    epoch: &EpochKey,
    req: &SealRequest<'_>,
    rng: &mut R,
) -> Result<SealedEnvelope, Error> {
    if req.seq == 0 {
        return Err(Error::malformed("seal request", "seq must be >= 1"));
    }
    if req.seq > MAX_SEQ {
        return Err(Error::LimitExceeded {
            what: "sequence number",
            max: MAX_SEQ,
            actual: req.seq,
        });
    }
    if (req.seq == 1) != req.prev.is_none() {
        return Err(Error::malformed(
            "seal request",
            "prev must be given iff seq > 1",
        ));
    }
    if req.content_type == 0 {
        return Err(Error::malformed(
            "seal request",
            "content type 0 is invalid",
        ));
    }
    let preds = predecessors(&req.preds, req.prev);
    if preds.len() > MAX_PREDECESSORS {
        return Err(Error::LimitExceeded {
            what: "predecessor count",
            max: MAX_PREDECESSORS as u64,
            actual: preds.len() as u64,
        });
    }
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);

    let doc_key = raw::doc_key(epoch, &req.space_id, &req.doc_id)?;
    let (enc_key, commitment) = raw::envelope_keys(&doc_key, &nonce)?;
    let header = pb::EnvelopeHeader {
        protocol_version: PROTOCOL_VERSION,
        cipher_suite: CIPHER_SUITE_V1,
        doc_id: req.doc_id.to_vec(),
        author: author.public_bytes().to_vec(),
        seq: req.seq,
        prev: req.prev.map(|p| p.to_vec()).unwrap_or_default(),
        preds: preds.iter().map(|p| p.to_vec()).collect(),
        epoch_id: epoch.id().to_vec(),
        key_commitment: commitment.to_vec(),
        nonce: nonce.to_vec(),
    };
    let header_bytes = wire::encode(&header);
    let content = wire::encode(&pb::EnvelopeContent {
        content_type: req.content_type,
        body: req.body.to_vec(),
    });
    let plaintext = Zeroizing::new(padding::frame(&content, padding::bucket(content.len()))?);
    let aad = raw::aad(&header_bytes)?;
    let ciphertext = suite::aead_seal(&enc_key, &nonce, &aad, &plaintext)?;
    let payload = wire::encode(&pb::EnvelopePayload {
        header: header_bytes,
        ciphertext,
    });
    let bytes = raw::sign_payload(author, &req.space_id, payload.clone())?;
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(Error::LimitExceeded {
            what: "envelope size",
            max: MAX_ENVELOPE_BYTES as u64,
            actual: bytes.len() as u64,
        });
    }
    Ok(SealedEnvelope {
        id: raw::envelope_id(&payload)?,
        bytes,
    })
}

/// The individual steps of sealing, for the vector generator, the conformance
/// saboteurs and other implementers' debugging. Protocol code uses [`seal`].
pub mod raw {
    use super::*;

    /// `HashWithLabel("id/envelope", payload)`.
    pub fn envelope_id(payload: &[u8]) -> Result<EnvelopeId, Error> {
        suite::hash_with_label(labels::ID_ENVELOPE, payload)
    }

    /// The document key of `doc_id` in `epoch` (ENV-11).
    pub fn doc_key(
        epoch: &EpochKey,
        space_id: &[u8; 32],
        doc_id: &[u8; 32],
    ) -> Result<Zeroizing<[u8; 32]>, Error> {
        let mut context = [0u8; 64];
        context[..32].copy_from_slice(epoch.id());
        context[32..].copy_from_slice(doc_id);
        let mut out = Zeroizing::new([0u8; 32]);
        suite::derive_with_label(
            epoch.secret(),
            space_id,
            labels::KDF_DOC_KEY,
            &context,
            out.as_mut(),
        )?;
        Ok(out)
    }

    /// The per-envelope encryption key and key commitment (ENV-12).
    pub fn envelope_keys(
        doc_key: &[u8; 32],
        nonce: &[u8; 24],
    ) -> Result<(Zeroizing<[u8; 32]>, [u8; 32]), Error> {
        let mut okm = Zeroizing::new([0u8; 64]);
        suite::derive_with_label(doc_key, nonce, labels::KDF_ENVELOPE_KEYS, &[], okm.as_mut())?;
        let mut enc = Zeroizing::new([0u8; 32]);
        let mut commitment = [0u8; 32];
        let (enc_part, commitment_part) = okm.split_at(32);
        enc.copy_from_slice(enc_part);
        commitment.copy_from_slice(commitment_part);
        Ok((enc, commitment))
    }

    /// `M("aad/envelope", header_bytes)` (ENV-13).
    pub fn aad(header_bytes: &[u8]) -> Result<Vec<u8>, Error> {
        labels::labeled(labels::AAD_ENVELOPE, header_bytes)
            .ok_or(Error::malformed("EnvelopeHeader", "too long"))
    }

    /// What the envelope signature covers (ENV-5): `space_id || payload`. The
    /// space is not in the header; signing it binds the envelope to its space.
    pub fn signature_input(space_id: &[u8; 32], payload: &[u8]) -> Vec<u8> {
        let mut input = Vec::with_capacity(space_id.len() + payload.len());
        input.extend_from_slice(space_id);
        input.extend_from_slice(payload);
        input
    }

    /// Signs `payload` (any bytes) for `space_id` as `author` and encodes the
    /// `SignedEnvelope`.
    pub fn sign_payload(
        author: &SigningKey,
        space_id: &[u8; 32],
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, Error> {
        let signature =
            author.sign_with_label(labels::SIG_ENVELOPE, &signature_input(space_id, &payload))?;
        Ok(wire::encode(&pb::SignedEnvelope {
            payload,
            signature: signature.to_vec(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    struct Fixture {
        author: SigningKey,
        epoch: EpochKey,
        ctx: StaticContext,
    }

    fn fixture() -> Fixture {
        let author = SigningKey::from_seed(&[1u8; 32]);
        let epoch = EpochKey::new([2u8; 32], [3u8; 32]);
        let ctx = StaticContext {
            space_id: [4u8; 32],
            doc_id: Some([5u8; 32]),
            signers: alloc::vec![author.public_bytes()],
            epochs: alloc::vec![epoch.clone()],
            accepted: Vec::new(),
        };
        Fixture { author, epoch, ctx }
    }

    fn request(body: &[u8]) -> SealRequest<'_> {
        SealRequest {
            space_id: [4u8; 32],
            doc_id: [5u8; 32],
            seq: 1,
            prev: None,
            preds: alloc::vec![[9u8; 32], [8u8; 32], [9u8; 32]],
            content_type: 1,
            body,
        }
    }

    #[test]
    fn seal_open_round_trip() {
        let fx = fixture();
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let sealed = seal(&fx.author, &fx.epoch, &request(b"hello"), &mut rng).expect("seal");
        let opened = open(&sealed.bytes, &fx.ctx).expect("open");
        assert_eq!(opened.body, b"hello");
        assert_eq!(opened.content_type, 1);
        assert_eq!(opened.id, sealed.id);
        assert_eq!(opened.header.preds, alloc::vec![[8u8; 32], [9u8; 32]]);
    }

    /// A context that hands out a signer key (validated once) gives the same
    /// verdicts as one that does not; a key for other bytes than the author's
    /// is ignored, never used to verify.
    #[test]
    fn signer_key_from_the_context_changes_no_verdict() {
        struct WithKey<'a>(&'a StaticContext, Option<PublicKey>);
        impl OpenContext for WithKey<'_> {
            fn space_id(&self) -> &[u8; 32] {
                self.0.space_id()
            }
            fn doc_id(&self) -> Option<&[u8; 32]> {
                self.0.doc_id()
            }
            fn is_known_signer(&self, author: &[u8; 32]) -> bool {
                self.0.is_known_signer(author)
            }
            fn epoch_key(&self, epoch_id: &[u8; 32]) -> Option<&EpochKey> {
                self.0.epoch_key(epoch_id)
            }
            fn signer_key(&self, _author: &[u8; 32]) -> Option<PublicKey> {
                self.1
            }
        }
        let fx = fixture();
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let sealed = seal(&fx.author, &fx.epoch, &request(b"k"), &mut rng).expect("seal");
        let mut forged = sealed.bytes.clone();
        let n = forged.len();
        if let Some(b) = forged.get_mut(n - 1) {
            *b ^= 1;
        }
        let own = PublicKey::from_bytes(&fx.author.public_bytes()).expect("key");
        let other =
            PublicKey::from_bytes(&SigningKey::from_seed(&[9u8; 32]).public_bytes()).expect("key");
        for bytes in [&sealed.bytes, &forged] {
            let plain = open(bytes, &fx.ctx).map_err(|e| e.class());
            for key in [None, Some(own), Some(other)] {
                let keyed = open(bytes, &WithKey(&fx.ctx, key)).map_err(|e| e.class());
                assert_eq!(plain, keyed, "key {key:?}");
            }
        }
        assert!(open(&sealed.bytes, &fx.ctx).is_ok());
        assert_eq!(
            open(&forged, &fx.ctx).unwrap_err().class(),
            ErrorClass::BadSignature
        );
    }

    #[test]
    fn wrong_doc_and_unknown_epoch() {
        let fx = fixture();
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let sealed = seal(&fx.author, &fx.epoch, &request(b"x"), &mut rng).expect("seal");
        let mut ctx = fx.ctx.clone();
        ctx.doc_id = Some([6u8; 32]);
        assert_eq!(
            open(&sealed.bytes, &ctx).unwrap_err().class(),
            ErrorClass::WrongContext
        );
        let mut ctx = fx.ctx.clone();
        ctx.epochs.clear();
        assert_eq!(
            open(&sealed.bytes, &ctx).unwrap_err().class(),
            ErrorClass::UnknownEpoch
        );
        let mut ctx = fx.ctx.clone();
        ctx.epochs = alloc::vec![EpochKey::new([2u8; 32], [0u8; 32])];
        assert_eq!(
            open(&sealed.bytes, &ctx).unwrap_err().class(),
            ErrorClass::DecryptFailed
        );
        let mut ctx = fx.ctx.clone();
        ctx.signers.clear();
        assert_eq!(
            open(&sealed.bytes, &ctx).unwrap_err().class(),
            ErrorClass::UnknownSigner
        );
    }

    #[test]
    fn another_space_fails_the_signature() {
        // The header does not name the space; the signature covers it (ENV-5), so an
        // envelope delivered in another space's context is BAD_SIGNATURE even when
        // that space knows the author and the epoch.
        let fx = fixture();
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let sealed = seal(&fx.author, &fx.epoch, &request(b"x"), &mut rng).expect("seal");
        let mut ctx = fx.ctx.clone();
        ctx.space_id = [6u8; 32];
        assert_eq!(
            open(&sealed.bytes, &ctx).unwrap_err().class(),
            ErrorClass::BadSignature
        );
        // Signed for another space by the right author: still refused, by the
        // signature before any key is derived.
        let d = decode(&sealed.bytes).expect("decode");
        let resigned = raw::sign_payload(&fx.author, &[6u8; 32], d.payload).expect("sign");
        assert_eq!(
            open(&resigned, &fx.ctx).unwrap_err().class(),
            ErrorClass::BadSignature
        );
        // And in that other space the key commitment (derived with the space as
        // salt) does not match: the ciphertext cannot be lifted either.
        assert_eq!(
            open(&resigned, &ctx).unwrap_err().class(),
            ErrorClass::DecryptFailed
        );
    }

    #[test]
    fn equivocation_and_duplicate() {
        let fx = fixture();
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let a = seal(&fx.author, &fx.epoch, &request(b"a"), &mut rng).expect("seal");
        let b = seal(&fx.author, &fx.epoch, &request(b"b"), &mut rng).expect("seal");
        let mut ctx = fx.ctx.clone();
        ctx.accepted
            .push((fx.author.public_bytes(), [5u8; 32], 1, a.id));
        open(&a.bytes, &ctx).expect("duplicate opens");
        assert_eq!(
            open(&b.bytes, &ctx).unwrap_err().class(),
            ErrorClass::Equivocation
        );
    }

    /// The sealer refuses bad requests and canonicalizes predecessors.
    /// spec: ENV-21, ENV-9.
    #[test]
    fn seal_request_checks() {
        let fx = fixture();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut req = request(b"x");
        req.seq = 0;
        assert_eq!(
            seal(&fx.author, &fx.epoch, &req, &mut rng)
                .unwrap_err()
                .class(),
            ErrorClass::Malformed
        );
        let mut req = request(b"x");
        req.seq = 2;
        assert_eq!(
            seal(&fx.author, &fx.epoch, &req, &mut rng)
                .unwrap_err()
                .class(),
            ErrorClass::Malformed
        );
        let mut req = request(b"x");
        req.content_type = 0;
        assert_eq!(
            seal(&fx.author, &fx.epoch, &req, &mut rng)
                .unwrap_err()
                .class(),
            ErrorClass::Malformed
        );
        let mut req = request(b"x");
        req.preds = (0..=MAX_PREDECESSORS as u8).map(|i| [i; 32]).collect();
        assert_eq!(
            seal(&fx.author, &fx.epoch, &req, &mut rng)
                .unwrap_err()
                .class(),
            ErrorClass::LimitExceeded
        );
        let big = alloc::vec![0u8; MAX_ENVELOPE_BYTES];
        assert_eq!(
            seal(&fx.author, &fx.epoch, &request(&big), &mut rng)
                .unwrap_err()
                .class(),
            ErrorClass::LimitExceeded
        );
        // Duplicates collapse, order is canonical, and the result opens.
        let mut req = request(b"x");
        req.preds = alloc::vec![[3u8; 32], [1u8; 32], [3u8; 32], [2u8; 32]];
        let sealed = seal(&fx.author, &fx.epoch, &req, &mut rng).expect("seal");
        let opened = open(&sealed.bytes, &fx.ctx).expect("open");
        assert_eq!(
            opened.header.preds,
            alloc::vec![[1u8; 32], [2u8; 32], [3u8; 32]]
        );
        // Two seals of the same request differ (fresh nonce) but both open.
        let again = seal(&fx.author, &fx.epoch, &req, &mut rng).expect("seal");
        assert_ne!(again.bytes, sealed.bytes);
        assert_ne!(again.id, sealed.id);
    }

    /// Steps 1 to 6 alone succeed on an envelope whose opening fails: decoding
    /// makes no claim about authenticity, and a failed open yields nothing.
    /// spec: ENV-23, ENV-20.
    #[test]
    fn decode_alone_is_not_acceptance() {
        let fx = fixture();
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let sealed = seal(&fx.author, &fx.epoch, &request(b"x"), &mut rng).expect("seal");
        let mut forged = sealed.bytes.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1; // inside the signature
        let decoded = decode(&forged).expect("structure is fine");
        assert_eq!(decoded.id, sealed.id);
        assert_eq!(
            open(&forged, &fx.ctx).unwrap_err().class(),
            ErrorClass::BadSignature
        );
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let fx = fixture();
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let sealed = seal(&fx.author, &fx.epoch, &request(b"bits"), &mut rng).expect("seal");
        for i in 0..sealed.bytes.len() * 8 {
            let mut b = sealed.bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(open(&b, &fx.ctx).is_err(), "bit {i} flip accepted");
        }
    }

    /// Opening what [`ReceivedEnvelope::decode`] kept gives exactly what [`open`]
    /// gives on the bytes, for good and bad envelopes in every context: the same
    /// opened envelope or the same error class, and a decode failure the same
    /// class as [`open`]'s. spec: ENV-5, ENV-14 .. ENV-17.
    #[test]
    fn received_envelopes_open_as_their_bytes() {
        let fx = fixture();
        let mut rng = ChaCha20Rng::seed_from_u64(13);
        let sealed = seal(&fx.author, &fx.epoch, &request(b"once"), &mut rng).expect("seal");
        let other = seal(&fx.author, &fx.epoch, &request(b"twice"), &mut rng).expect("seal");
        let mut contexts = alloc::vec![fx.ctx.clone()];
        let mut ctx = fx.ctx.clone();
        ctx.doc_id = Some([6u8; 32]);
        contexts.push(ctx);
        let mut ctx = fx.ctx.clone();
        ctx.signers.clear();
        contexts.push(ctx);
        let mut ctx = fx.ctx.clone();
        ctx.epochs.clear();
        contexts.push(ctx);
        let mut ctx = fx.ctx.clone();
        ctx.epochs = alloc::vec![EpochKey::new([2u8; 32], [0u8; 32])];
        contexts.push(ctx);
        let mut ctx = fx.ctx.clone();
        ctx.accepted
            .push((fx.author.public_bytes(), [5u8; 32], 1, other.id));
        contexts.push(ctx);
        let mut inputs = alloc::vec![sealed.bytes.clone(), other.bytes.clone()];
        for i in (0..sealed.bytes.len() * 8).step_by(7) {
            let mut b = sealed.bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            inputs.push(b);
        }
        inputs.push(sealed.bytes[..sealed.bytes.len() - 1].to_vec());
        let mut classes = alloc::collections::BTreeSet::new();
        for ctx in &contexts {
            for bytes in &inputs {
                let plain = open(bytes, ctx);
                let received = ReceivedEnvelope::decode(bytes.clone());
                if let Ok(r) = &received {
                    assert_eq!(r.bytes(), bytes.as_slice());
                    assert_eq!(r.decoded(), &decode(bytes).expect("decodes"));
                    assert_eq!(r.id(), &r.decoded().id);
                }
                let via = received.and_then(|r| open_decoded(r.into_parts().1, ctx));
                match (&plain, &via) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b),
                    (Err(a), Err(b)) => assert_eq!(a.class(), b.class()),
                    _ => panic!("paths disagree: {plain:?} / {via:?}"),
                }
                classes.insert(plain.map(|o| o.body).map_err(|e| e.class()));
            }
        }
        // Successes and every class the contexts and the tampering reach.
        for class in [
            ErrorClass::Malformed,
            ErrorClass::BadSignature,
            ErrorClass::WrongContext,
            ErrorClass::UnknownSigner,
            ErrorClass::UnknownEpoch,
            ErrorClass::DecryptFailed,
            ErrorClass::Equivocation,
        ] {
            assert!(classes.contains(&Err(class)), "{class:?} not reached");
        }
        assert!(classes.contains(&Ok(b"once".to_vec())));
    }
}
