//! `attestation`: attestation records (spec §14): the binding and the OIDC nonce
//! (ATT-6); verifying one `SignedAttestation` against a verifier context with the
//! checks of ATT-7..ATT-10 in order (OIDC id_tokens signed RS256, ES256 and EdDSA
//! by issuer keys made here from the family seed; `did:web` documents); and a
//! space's set with replay (ATT-11). Only kinds 1 and 2 have cases here; SIWE and
//! WebAuthn are in `attestation_evidence.rs`, `did:plc` logs in `attestation_plc.rs`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clientful_attest::jwt::Jwks;
use clientful_attest::oidc::{TrustedIssuer, nonce_for, subject_for};
use clientful_attest::{
    Account, Carried, Draft, Kind, VerifierContext, did, record, sign, verify, verify_set,
};
use clientful_core::ErrorClass;
use clientful_core::keys::SigningKey;
use rand_core::Rng;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};

use crate::generate::{FileBuilder, family_rng};
use crate::hexutil::{get_arr, get_hex, get_str, get_u64, hex, json_u64};
use crate::schema::VectorFile;
use crate::verify::Outcome;

const SEED: &str = "clientful/v1/vectors/attestation";
const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "clientful-app";
/// The instant every valid record is made and checked at: 2026-01-01T00:00:00Z.
const T0_MS: u64 = 1_767_225_600_000;

fn b64(b: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// The issuer's three signing keys, made from the family rng.
struct Issuer {
    rsa: rsa::pkcs1v15::SigningKey<sha2::Sha256>,
    ec: p256::ecdsa::SigningKey,
    ed: ed25519_dalek::SigningKey,
    jwks: String,
}

impl Issuer {
    fn new(rng: &mut rand_chacha::ChaCha20Rng) -> Result<Issuer, String> {
        let rsa_key = rsa::PrivateKey::new(rng, 2048).map_err(|e| e.to_string())?;
        let n = rsa_key.n().to_be_bytes();
        let e = rsa_key.e().to_be_bytes();
        let strip = |b: &[u8]| {
            b.iter()
                .skip_while(|&&x| x == 0)
                .copied()
                .collect::<Vec<u8>>()
        };
        let mut ec_secret = [0u8; 32];
        rng.fill_bytes(&mut ec_secret);
        let ec = p256::ecdsa::SigningKey::from_slice(&ec_secret).map_err(|e| e.to_string())?;
        let point = ec.verifying_key().to_sec1_point(false);
        let point = point.as_bytes();
        let mut ed_seed = [0u8; 32];
        rng.fill_bytes(&mut ed_seed);
        let ed = ed25519_dalek::SigningKey::from_bytes(&ed_seed);
        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig",
             "n": b64(strip(&n)), "e": b64(strip(&e))},
            {"kty": "EC", "kid": "ec-1", "alg": "ES256", "use": "sig", "crv": "P-256",
             "x": b64(point.get(1..33).unwrap_or_default()),
             "y": b64(point.get(33..65).unwrap_or_default())},
            {"kty": "OKP", "kid": "ed-1", "alg": "EdDSA", "crv": "Ed25519",
             "x": b64(ed.verifying_key().as_bytes())},
        ]})
        .to_string();
        Ok(Issuer {
            rsa: rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(rsa_key),
            ec,
            ed,
            jwks,
        })
    }

    /// A compact JWS of `claims` with header `header` (alg chosen by `alg`).
    fn token(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let sig: Vec<u8> = match header["alg"].as_str() {
            Some("RS256") => self.rsa.sign(input.as_bytes()).to_vec(),
            Some("ES256") => {
                let s: p256::ecdsa::Signature = self.ec.sign(input.as_bytes());
                s.to_bytes().to_vec()
            }
            Some("EdDSA") => {
                use ed25519_dalek::Signer as _;
                self.ed.sign(input.as_bytes()).to_bytes().to_vec()
            }
            _ => Vec::new(),
        };
        format!("{input}.{}", b64(sig))
    }
}

/// An invalid OIDC case: name, description, class, flag, token, the record's
/// `created_at_ms`, the verifier's `now`, the key that signs the record.
type BadToken<'a> = (
    &'a str,
    &'a str,
    ErrorClass,
    &'a str,
    String,
    u64,
    u64,
    &'a SigningKey,
);

fn context_json(now_ms: u64, jwks: &str) -> Value {
    json!({
        "nowMs": json_u64(now_ms),
        "issuers": [{"issuer": ISSUER, "jwks": jwks}],
        "audiences": [AUDIENCE],
    })
}

fn context(v: &Value) -> Result<VerifierContext, String> {
    let mut ctx = VerifierContext::new(get_u64(v, "nowMs")?);
    let issuers = v
        .get("issuers")
        .and_then(Value::as_array)
        .ok_or("missing issuers")?;
    for i in issuers {
        ctx.oidc.issuers.push(TrustedIssuer {
            issuer: get_str(i, "issuer")?.to_string(),
            jwks: Jwks::parse(get_str(i, "jwks")?.as_bytes()).map_err(|e| e.to_string())?,
        });
    }
    ctx.oidc.audiences = v
        .get("audiences")
        .and_then(Value::as_array)
        .ok_or("missing audiences")?
        .iter()
        .map(|a| {
            a.as_str()
                .map(str::to_string)
                .ok_or("audience not a string")
        })
        .collect::<Result<_, _>>()?;
    Ok(ctx)
}

fn account_json(a: &Account) -> Value {
    match a {
        Account::Oidc(o) => json!({
            "type": "oidc", "issuer": o.issuer, "subject": o.subject,
            "audience": o.audience, "expiresAt": json_u64(o.expires_at),
        }),
        Account::Did(d) => json!({"type": "did", "did": d.did, "methodId": d.method_id}),
        Account::Siwe(v) => {
            json!({"type": "siwe", "subject": v.subject, "address": hex(v.address)})
        }
        Account::WebAuthn(v) => json!({"type": "webauthn", "subject": v.subject, "flags": v.flags}),
        _ => json!({"type": "other"}),
    }
}

fn verified_json(v: &clientful_attest::Verified) -> Value {
    json!({
        "userKey": hex(v.record.user_key),
        "kind": v.record.kind.name(),
        "subject": v.record.subject,
        "createdAtMs": json_u64(v.record.created_at_ms),
        "recordId": hex(v.record.id),
        "account": account_json(&v.account),
    })
}

/// Builds the file from the family's fixed seed.
pub fn generate() -> Result<VectorFile, String> {
    generate_seeded(SEED)
}

/// Builds the file from `seed`.
#[allow(clippy::too_many_lines)]
pub fn generate_seeded(seed: &str) -> Result<VectorFile, String> {
    let mut rng = family_rng(seed);
    let issuer = Issuer::new(&mut rng)?;
    let mut user_seed = [0u8; 32];
    rng.fill_bytes(&mut user_seed);
    let user = SigningKey::from_seed(&user_seed);
    let user_key = user.public_bytes();
    let mut other_seed = [0u8; 32];
    rng.fill_bytes(&mut other_seed);
    let other = SigningKey::from_seed(&other_seed);
    let salt = record::fresh_salt(&mut rng);
    let binding = record::binding(&user_key, &salt).map_err(|e| e.to_string())?;
    let nonce = nonce_for(&binding);

    let mut f = FileBuilder::new(
        "attestation",
        seed,
        "Attestations binding a user key to an external account: OIDC id_tokens whose \
         nonce commits to the key, did:web documents listing it; the user key signs the \
         record; members verify offline.",
    );
    // The evidence cases' flags first: the frame's notes below give the shared flags
    // (Ktv, WrongContext, Forgery, Expired, Malformed) their chapter-wide meaning.
    super::attestation_evidence::add_notes(&mut f);
    f.note("Ktv", "BASIC", "A correct attestation.");
    f.note(
        "AlgConfusion",
        "AUTH_BYPASS",
        "A JWS algorithm outside the allow-list (none, HMAC keyed with the public key).",
    );
    f.note(
        "WrongContext",
        "AUTH_BYPASS",
        "Evidence for another audience, issuer, user key, subject, DID, domain, chain, \
         origin, relying party or challenge.",
    );
    f.note("Expired", "DEFINED", "Evidence outside its validity at the record's time, or a record from the verifier's future.");
    f.note(
        "Forgery",
        "AUTH_BYPASS",
        "A signature that does not verify: by another key, or over other bytes.",
    );
    f.note(
        "Replay",
        "AUTH_BYPASS",
        "The same evidence backing two records.",
    );
    f.note(
        "MissingKey",
        "DEFINED",
        "A DID document that does not list the user key.",
    );
    f.note("Malformed", "BASIC", "Bytes that do not parse.");
    f.note(
        "UnknownKey",
        "DEFINED",
        "A token signed under a key id the issuer does not publish.",
    );

    f.group(
        "binding",
        "The binding HashWithLabel(\"attest/binding\", user_key || salt), the OIDC nonce \
         (unpadded base64url of it) and the user key's publicKeyMultibase.",
        json!({}),
    );
    f.valid(
        "binding",
        "Binding, nonce and multibase of a user key and salt.",
        &["ATT-6", "ATT-10"],
        &["Ktv"],
        json!({"userKey": hex(user_key), "salt": hex(salt)}),
        json!({"binding": hex(binding), "oidcNonce": nonce, "publicKeyMultibase": did::multibase_key(&user_key)}),
    );

    let exp = T0_MS / 1000 + 3600;
    let iat = T0_MS / 1000 - 10;
    let claims = |aud: &str, nonce: &str, exp: u64, iat: u64| json!({"iss": ISSUER, "sub": "user-42", "aud": aud, "exp": exp, "iat": iat, "nonce": nonce});
    let good = claims(AUDIENCE, &nonce, exp, iat);
    let subject = subject_for(ISSUER, "user-42");
    let rec = |key: &SigningKey, kind: Kind, evidence: &[u8], subject: &str, created: u64| {
        sign(
            key,
            &Draft {
                kind,
                evidence,
                subject,
                salt,
                created_at_ms: created,
            },
        )
        .map_err(|e| e.to_string())
    };
    let input = |signed: &[u8], now: u64| json!({"signed": hex(signed), "context": context_json(now, &issuer.jwks)});

    f.group(
        "verify",
        "Verify one SignedAttestation in a verifier context (trusted issuers with their \
         JWKS, audiences, the verifier's now in ms); the output is the record and the \
         account it shows.",
        json!({}),
    );
    for (name, alg, kid) in [
        ("oidc-rs256", "RS256", "rsa-1"),
        ("oidc-es256", "ES256", "ec-1"),
        ("oidc-eddsa", "EdDSA", "ed-1"),
    ] {
        let t = issuer.token(&json!({"alg": alg, "kid": kid, "typ": "JWT"}), &good);
        let signed = rec(&user, Kind::OidcIdToken, t.as_bytes(), &subject, T0_MS)?;
        let v = verify(&signed, &context(&context_json(T0_MS, &issuer.jwks))?)
            .map_err(|e| e.to_string())?;
        f.valid(
            name,
            &format!("An id_token signed {alg} whose nonce is the binding."),
            &["ATT-2", "ATT-7", "ATT-9"],
            &["Ktv"],
            input(&signed, T0_MS),
            verified_json(&v),
        );
    }
    let t_multi = issuer.token(&json!({"alg": "RS256"}), &json!({"iss": ISSUER, "sub": "user-42", "aud": ["other", AUDIENCE], "exp": exp, "iat": iat, "nonce": nonce}));
    let signed = rec(
        &user,
        Kind::OidcIdToken,
        t_multi.as_bytes(),
        &subject,
        T0_MS,
    )?;
    let v = verify(&signed, &context(&context_json(T0_MS, &issuer.jwks))?)
        .map_err(|e| e.to_string())?;
    f.valid(
        "oidc-aud-array-no-kid",
        "aud as an array holding the expected audience; no kid (every RS256 key is tried).",
        &["ATT-9"],
        &["Ktv"],
        input(&signed, T0_MS),
        verified_json(&v),
    );

    let rs = |c: &Value| issuer.token(&json!({"alg": "RS256", "kid": "rsa-1"}), c);
    let oidc_bad: Vec<BadToken<'_>> = vec![
        (
            "oidc-wrong-audience",
            "A token for another audience.",
            ErrorClass::WrongContext,
            "WrongContext",
            rs(&claims("someone-else", &nonce, exp, iat)),
            T0_MS,
            T0_MS,
            &user,
        ),
        (
            "oidc-wrong-nonce",
            "A token whose nonce is not the record's binding.",
            ErrorClass::WrongContext,
            "WrongContext",
            rs(&claims(AUDIENCE, "not-the-binding", exp, iat)),
            T0_MS,
            T0_MS,
            &user,
        ),
        (
            "oidc-other-user-key",
            "Another user's record around this user's token: the nonce does not commit to its key.",
            ErrorClass::WrongContext,
            "WrongContext",
            rs(&good),
            T0_MS,
            T0_MS,
            &other,
        ),
        (
            "oidc-expired",
            "The record was made more than 60 s after exp.",
            ErrorClass::Expired,
            "Expired",
            rs(&good),
            exp * 1000 + 60_000,
            exp * 1000 + 60_000,
            &user,
        ),
        (
            "oidc-issued-in-the-future",
            "iat more than 60 s after the record's time.",
            ErrorClass::Expired,
            "Expired",
            rs(&claims(AUDIENCE, &nonce, exp, T0_MS / 1000 + 61)),
            T0_MS,
            T0_MS,
            &user,
        ),
        (
            "record-from-the-future",
            "A record made more than 60 s after the verifier's now.",
            ErrorClass::Expired,
            "Expired",
            rs(&good),
            T0_MS,
            T0_MS - 60_001,
            &user,
        ),
        (
            "oidc-alg-none",
            "alg none with an empty signature.",
            ErrorClass::UnsupportedVersion,
            "AlgConfusion",
            format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(good.to_string())),
            T0_MS,
            T0_MS,
            &user,
        ),
        (
            "oidc-alg-rs512",
            "An algorithm outside the allow-list (RS512).",
            ErrorClass::UnsupportedVersion,
            "AlgConfusion",
            format!(
                "{}.{}.AAAA",
                b64(r#"{"alg":"RS512","kid":"rsa-1"}"#),
                b64(good.to_string())
            ),
            T0_MS,
            T0_MS,
            &user,
        ),
        (
            "oidc-unknown-kid",
            "A kid the issuer's JWKS does not hold.",
            ErrorClass::UnknownSigner,
            "UnknownKey",
            issuer.token(&json!({"alg": "RS256", "kid": "rsa-9"}), &good),
            T0_MS,
            T0_MS,
            &user,
        ),
        (
            "oidc-untrusted-issuer",
            "iss is not a trusted issuer.",
            ErrorClass::WrongContext,
            "WrongContext",
            rs(
                &json!({"iss": "https://evil.example", "sub": "user-42", "aud": AUDIENCE, "exp": exp, "iat": iat, "nonce": nonce}),
            ),
            T0_MS,
            T0_MS,
            &user,
        ),
        (
            "oidc-missing-exp",
            "Claims without exp.",
            ErrorClass::Malformed,
            "Malformed",
            rs(
                &json!({"iss": ISSUER, "sub": "user-42", "aud": AUDIENCE, "iat": iat, "nonce": nonce}),
            ),
            T0_MS,
            T0_MS,
            &user,
        ),
        (
            "oidc-not-a-jws",
            "Evidence with two parts.",
            ErrorClass::Malformed,
            "Malformed",
            "e30.e30".to_string(),
            T0_MS,
            T0_MS,
            &user,
        ),
    ];
    for (name, desc, class, flag, token, created, now, key) in oidc_bad {
        let signed = rec(key, Kind::OidcIdToken, token.as_bytes(), &subject, created)?;
        f.invalid(
            name,
            desc,
            &["ATT-7", "ATT-8", "ATT-9"],
            class,
            &[flag],
            input(&signed, now),
        );
    }
    // HS256 keyed with the issuer's JWKS text (the classic RSA/HMAC confusion).
    {
        use hmac::{KeyInit as _, Mac as _};
        let h = b64(r#"{"alg":"HS256","kid":"rsa-1"}"#);
        let msg = format!("{h}.{}", b64(good.to_string()));
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(issuer.jwks.as_bytes())
            .map_err(|e| e.to_string())?;
        mac.update(msg.as_bytes());
        let t = format!("{msg}.{}", b64(mac.finalize().into_bytes()));
        let signed = rec(&user, Kind::OidcIdToken, t.as_bytes(), &subject, T0_MS)?;
        f.invalid(
            "oidc-alg-hs256-public-key",
            "HS256 with the issuer's public keys as the HMAC secret.",
            &["ATT-9"],
            ErrorClass::UnsupportedVersion,
            &["AlgConfusion"],
            input(&signed, T0_MS),
        );
    }
    // A token signed by the issuer's RSA key, one bit of the signature flipped.
    {
        let t = rs(&good);
        let (head, sig) = t.rsplit_once('.').ok_or("token")?;
        let mut sig = URL_SAFE_NO_PAD.decode(sig).map_err(|e| e.to_string())?;
        if let Some(b) = sig.first_mut() {
            *b ^= 1;
        }
        let signed = rec(
            &user,
            Kind::OidcIdToken,
            format!("{head}.{}", b64(sig)).as_bytes(),
            &subject,
            T0_MS,
        )?;
        f.invalid(
            "oidc-bad-signature",
            "The issuer's RS256 signature with one bit flipped.",
            &["ATT-9"],
            ErrorClass::BadSignature,
            &["Forgery"],
            input(&signed, T0_MS),
        );
    }
    // The record itself.
    {
        let t = rs(&good);
        let mut signed = rec(&user, Kind::OidcIdToken, t.as_bytes(), &subject, T0_MS)?;
        if let Some(b) = signed.last_mut() {
            *b ^= 0x80;
        }
        f.invalid(
            "record-bad-signature",
            "The user key's signature over the record, one bit flipped.",
            &["ATT-2", "ATT-7"],
            ErrorClass::BadSignature,
            &["Forgery"],
            input(&signed, T0_MS),
        );
        let signed = rec(
            &user,
            Kind::OidcIdToken,
            t.as_bytes(),
            "https://issuer.example|someone-else",
            T0_MS,
        )?;
        f.invalid(
            "record-wrong-subject",
            "A subject that is not iss|sub of the token.",
            &["ATT-5", "ATT-9"],
            ErrorClass::WrongContext,
            &["WrongContext"],
            input(&signed, T0_MS),
        );
        f.invalid("record-truncated", "A SignedAttestation cut short.", &["ATT-7"], ErrorClass::Malformed, &["Malformed"], json!({"signed": hex(signed.get(..signed.len() / 2).unwrap_or_default()), "context": context_json(T0_MS, &issuer.jwks)}));
    }

    // did:web.
    let did_id = "did:web:example.com:users:alice";
    let doc = |key: &[u8; 32], id: &str| {
        json!({
            "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
            "id": id,
            "verificationMethod": [{"id": format!("{id}#key-1"), "type": "Multikey", "controller": id, "publicKeyMultibase": did::multibase_key(key)}],
            "assertionMethod": [format!("{id}#key-1")],
        })
        .to_string()
    };
    let signed = rec(
        &user,
        Kind::DidDocument,
        doc(&user_key, did_id).as_bytes(),
        did_id,
        T0_MS,
    )?;
    let v = verify(&signed, &context(&context_json(T0_MS, &issuer.jwks))?)
        .map_err(|e| e.to_string())?;
    f.valid(
        "did-web",
        "A did:web document listing the user key as a Multikey method.",
        &["ATT-10"],
        &["Ktv"],
        input(&signed, T0_MS),
        verified_json(&v),
    );
    let signed = rec(
        &user,
        Kind::DidDocument,
        doc(&other.public_bytes(), did_id).as_bytes(),
        did_id,
        T0_MS,
    )?;
    f.invalid(
        "did-without-the-key",
        "A did:web document that lists another key.",
        &["ATT-10"],
        ErrorClass::InvalidOperation,
        &["MissingKey"],
        input(&signed, T0_MS),
    );
    let signed = rec(
        &user,
        Kind::DidDocument,
        doc(&user_key, "did:web:example.org").as_bytes(),
        did_id,
        T0_MS,
    )?;
    f.invalid(
        "did-other-id",
        "A document whose id is another DID.",
        &["ATT-10"],
        ErrorClass::WrongContext,
        &["WrongContext"],
        input(&signed, T0_MS),
    );
    let signed = rec(
        &user,
        Kind::DidDocument,
        doc(&user_key, "did:plc:abc").as_bytes(),
        "did:plc:abc",
        T0_MS,
    )?;
    f.invalid(
        "did-plc",
        "A did:plc DID that is not 24 base32 characters (the did:plc cases are in the \
         second verify group).",
        &["ATT-10", "ATT-15"],
        ErrorClass::Malformed,
        &["Malformed"],
        input(&signed, T0_MS),
    );
    let signed = rec(
        &user,
        Kind::DidDocument,
        doc(&user_key, "did:example:abc").as_bytes(),
        "did:example:abc",
        T0_MS,
    )?;
    f.invalid(
        "did-other-method",
        "A DID of a method other than web and plc (not verified in this version).",
        &["ATT-10"],
        ErrorClass::UnsupportedVersion,
        &["WrongContext"],
        input(&signed, T0_MS),
    );
    let signed = rec(&user, Kind::DidDocument, b"[1,2]", did_id, T0_MS)?;
    f.invalid(
        "did-not-an-object",
        "A document that is a JSON array.",
        &["ATT-10"],
        ErrorClass::Malformed,
        &["Malformed"],
        input(&signed, T0_MS),
    );

    // A set: replay.
    f.group(
        "set",
        "Verify a space's attestation set: each item is a SignedAttestation with the user \
         of the device whose carrier brought it (null if unknown); the output is one verdict \
         per distinct record, OK or its class.",
        json!({}),
    );
    let t = rs(&good);
    let first = rec(&user, Kind::OidcIdToken, t.as_bytes(), &subject, T0_MS)?;
    let second = rec(
        &user,
        Kind::OidcIdToken,
        t.as_bytes(),
        &subject,
        T0_MS + 5_000,
    )?;
    let did_rec = rec(
        &user,
        Kind::DidDocument,
        doc(&user_key, did_id).as_bytes(),
        did_id,
        T0_MS,
    )?;
    let did_rec2 = rec(
        &user,
        Kind::DidDocument,
        doc(&user_key, did_id).as_bytes(),
        did_id,
        T0_MS + 1,
    )?;
    let items = json!([
        {"signed": hex(&second), "signerUser": hex(user_key)},
        {"signed": hex(&first), "signerUser": Value::Null},
        {"signed": hex(&first), "signerUser": hex(user_key)},
        {"signed": hex(&did_rec), "signerUser": hex(other.public_bytes())},
        {"signed": hex(&did_rec2), "signerUser": Value::Null},
    ]);
    let set_input = json!({"items": items, "context": context_json(T0_MS + 10_000, &issuer.jwks)});
    let out = run_set(&set_input)?;
    f.valid(
        "replay-and-signers",
        "The same token in two records: the earlier stands, the later is REPLAY; the same \
         record in two carriers counts once and stands if a device of its user carried it; a \
         record carried only by another user's device is WRONG_CONTEXT, only by unknown \
         devices UNKNOWN_SIGNER.",
        &["ATT-11", "ATT-13"],
        &["Replay", "WrongContext"],
        set_input,
        out,
    );
    // SIWE and WebAuthn evidence (§14.10, §14.11): groups `siwe-verify` and
    // `webauthn-verify`, from the same seed's generator after the frame's cases.
    super::attestation_evidence::add_cases(&mut f, &mut rng)?;
    // did:plc evidence (§14.6, ATT-15..ATT-19): a second `verify` group, last, so
    // the cases above keep their bytes.
    super::attestation_plc::add_cases(
        &mut f,
        &mut rng,
        &user,
        salt,
        T0_MS,
        &context_json(T0_MS, &issuer.jwks),
        &verified_json,
    )?;
    Ok(f.finish())
}

fn run_set(input: &Value) -> Result<Value, String> {
    let ctx = context(input.get("context").ok_or("missing context")?)?;
    let items = input
        .get("items")
        .and_then(Value::as_array)
        .ok_or("missing items")?;
    let mut bodies = Vec::new();
    for i in items {
        let body = get_hex(i, "signed")?;
        let signer = match i.get("signerUser") {
            Some(Value::Null) | None => None,
            Some(_) => Some(get_arr::<32>(i, "signerUser")?),
        };
        bodies.push((body, signer));
    }
    let carried: Vec<Carried<'_>> = bodies
        .iter()
        .map(|(b, s)| Carried {
            body: b,
            signer_user: *s,
        })
        .collect();
    let verdicts: Vec<Value> = verify_set(&carried, &ctx)
        .iter()
        .map(|r| match r {
            Ok(_) => Value::from("OK"),
            Err(e) => Value::from(clientful_core::error::class_name(e.class())),
        })
        .collect();
    Ok(json!({"verdicts": verdicts}))
}

/// Runs one case against the reference.
pub fn run(operation: &str, params: &Value, input: &Value) -> Result<Outcome, String> {
    if let Some(outcome) = super::attestation_evidence::run(operation, params, input)? {
        return Ok(outcome);
    }
    match operation {
        "binding" => {
            let user_key = get_arr::<32>(input, "userKey")?;
            let salt = get_arr::<16>(input, "salt")?;
            Ok(match record::binding(&user_key, &salt) {
                Ok(b) => Outcome::Accepted(json!({
                    "binding": hex(b),
                    "oidcNonce": nonce_for(&b),
                    "publicKeyMultibase": did::multibase_key(&user_key),
                })),
                Err(e) => Outcome::Rejected(e.class()),
            })
        }
        "verify" => {
            let signed = get_hex(input, "signed")?;
            let ctx = context(input.get("context").ok_or("missing context")?)?;
            Ok(match verify(&signed, &ctx) {
                Ok(v) => Outcome::Accepted(verified_json(&v)),
                Err(e) => Outcome::Rejected(e.class()),
            })
        }
        "set" => Ok(Outcome::Accepted(run_set(input)?)),
        other => Err(format!("unknown operation {other}")),
    }
}
