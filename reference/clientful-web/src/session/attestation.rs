//! Attestations from a page (spec §14.3, §14.9; ATT-2, ATT-6, ATT-12, ATT-13):
//! the `Space` methods `attestationNonce`, `attest` and `attestations`, the
//! native SDK's `Client::attestation_nonce`/`sign_attestation` and
//! `SpaceSession::attest`/`attestations` (feature `attest` of the SDK, no IO).
//! The page does the IO the native shell's `attest_fetch` does: it makes the
//! WebAuthn assertion, has the wallet sign the SIWE message, fetches the
//! issuer's JWKS and the `did.json`, and passes the bytes.
//!
//! - `attest(evidence)` makes the record of one kind (`webauthn`, `siwe`,
//!   `oidc`, `did`), signs it with the user key, checks it as members will
//!   (the same context the native CLI checks against before publishing) and
//!   publishes it (stored at once, in storage with the next `sync`). A record
//!   that would not verify is refused with its class (`[BAD_SIGNATURE] ...`).
//! - `attestations(context)` lists every record of the space with its verdict
//!   under the page's verifier context: `{ verified: true, account }` or
//!   `{ verified: false, class, message }`.

use clientful::SpaceSession;
use clientful_attest::oidc::{OidcContext, TrustedIssuer, peek_issuer, subject_for};
use clientful_attest::siwe::{self, SiwePolicy};
use clientful_attest::webauthn::{self, WebAuthnEvidence, WebAuthnPolicy, authdata};
use clientful_attest::{Account, AttestError, Draft, Kind, VerifierContext, jwt};
use clientful_core::error::class_name;
use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use super::{Space, client_err, js_error, set};

fn attest_err(e: AttestError) -> JsValue {
    js_error(class_name(e.class()), &e.to_string())
}

fn bad(message: &str) -> JsValue {
    js_error("INVALID_ARGUMENT", message)
}

/// Milliseconds since the Unix epoch (the browser's clock).
fn now_ms() -> u64 {
    clientful_net::platform::unix_ms()
}

/// `o[key]`, if set (not `undefined` or `null`).
fn field(o: &JsValue, key: &str) -> Option<JsValue> {
    Reflect::get(o, &key.into())
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

fn opt_string(o: &JsValue, key: &str) -> Result<Option<String>, JsValue> {
    match field(o, key) {
        None => Ok(None),
        Some(v) => v
            .as_string()
            .map(Some)
            .ok_or_else(|| bad(&format!("{key} is a string"))),
    }
}

fn string(o: &JsValue, key: &str) -> Result<String, JsValue> {
    opt_string(o, key)?.ok_or_else(|| bad(&format!("{key} is missing")))
}

/// A `Uint8Array` field.
fn bytes(o: &JsValue, key: &str) -> Result<Vec<u8>, JsValue> {
    let v = field(o, key).ok_or_else(|| bad(&format!("{key} is missing")))?;
    v.dyn_into::<Uint8Array>()
        .map(|a| a.to_vec())
        .map_err(|_| bad(&format!("{key} is a Uint8Array")))
}

/// A field given as text (its UTF-8 bytes) or as a `Uint8Array` (the bytes as fetched).
fn text_or_bytes(o: &JsValue, key: &str) -> Result<Vec<u8>, JsValue> {
    match field(o, key).and_then(|v| v.as_string()) {
        Some(s) => Ok(s.into_bytes()),
        None => bytes(o, key),
    }
}

fn salt(o: &JsValue) -> Result<[u8; 16], JsValue> {
    <[u8; 16]>::try_from(bytes(o, "salt")?.as_slice())
        .map_err(|_| bad("salt is the 16 bytes attestationNonce() gave"))
}

fn strings(o: &JsValue, key: &str) -> Result<Vec<String>, JsValue> {
    let Some(v) = field(o, key) else {
        return Ok(Vec::new());
    };
    let a: Array = v
        .dyn_into()
        .map_err(|_| bad(&format!("{key} is an array of strings")))?;
    a.iter()
        .map(|x| {
            x.as_string()
                .ok_or_else(|| bad(&format!("{key} is an array of strings")))
        })
        .collect()
}

/// A whole number below 2^53 (exact in an f64).
fn whole(x: f64) -> Option<u64> {
    (x >= 0.0 && x.fract() == 0.0 && x <= 9_007_199_254_740_991.0).then_some(x as u64)
}

fn number(o: &JsValue, key: &str) -> Result<Option<u64>, JsValue> {
    match field(o, key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .and_then(whole)
            .map(Some)
            .ok_or_else(|| bad(&format!("{key} is a whole number"))),
    }
}

fn numbers(o: &JsValue, key: &str) -> Result<Vec<u64>, JsValue> {
    let Some(v) = field(o, key) else {
        return Ok(Vec::new());
    };
    let a: Array = v
        .dyn_into()
        .map_err(|_| bad(&format!("{key} is an array of whole numbers")))?;
    a.iter()
        .map(|x| {
            x.as_f64()
                .and_then(whole)
                .ok_or_else(|| bad(&format!("{key} is an array of whole numbers")))
        })
        .collect()
}

fn flag(o: &JsValue, key: &str, default: bool) -> Result<bool, JsValue> {
    match field(o, key) {
        None => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| bad(&format!("{key} is a boolean"))),
    }
}

/// The origin of the Worker (a dedicated Worker's is its page's).
fn own_origin() -> Option<String> {
    let location = Reflect::get(&js_sys::global(), &"location".into()).ok()?;
    Reflect::get(&location, &"origin".into()).ok()?.as_string()
}

/// The 65-byte EIP-191 signature: a `Uint8Array`, or hex text (`0x` allowed, as
/// wallets return it).
fn signature65(o: &JsValue) -> Result<[u8; 65], JsValue> {
    let raw = match field(o, "signature").and_then(|v| v.as_string()) {
        Some(h) => hex::decode(h.trim().trim_start_matches("0x"))
            .map_err(|_| bad("signature is hex or a Uint8Array"))?,
        None => bytes(o, "signature")?,
    };
    <[u8; 65]>::try_from(raw.as_slice()).map_err(|_| bad("a SIWE signature is 65 bytes"))
}

/// The single audience of an id_token (`aud` a string or a one-element array).
fn token_audience(token: &[u8]) -> Result<String, JsValue> {
    let jws = jwt::Jws::parse(token).map_err(attest_err)?;
    let v: serde_json::Value = serde_json::from_slice(&jws.payload)
        .map_err(|_| js_error("MALFORMED", "the id_token's payload is not JSON"))?;
    match v.get("aud") {
        Some(serde_json::Value::String(a)) => Ok(a.clone()),
        Some(serde_json::Value::Array(a)) if a.len() == 1 => Ok(a
            .first()
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_owned()),
        _ => Err(bad(
            "the id_token has several audiences: name the one to check as `audience`",
        )),
    }
}

/// A record's parts from the page's evidence, checked as a member will check
/// them, and the context the signed record must verify under.
struct Made {
    kind: Kind,
    evidence: Vec<u8>,
    subject: String,
    salt: [u8; 16],
    ctx: VerifierContext,
}

fn make(e: &JsValue, user_key: &[u8; 32], fresh_salt: [u8; 16], now: u64) -> Result<Made, JsValue> {
    let mut ctx = VerifierContext::new(now);
    let kind = string(e, "kind")?;
    match kind.as_str() {
        "webauthn" => {
            let salt = salt(e)?;
            // The credential from the registration's authenticator data, or as given.
            let (credential_id, cose_key) = match field(e, "registration") {
                Some(_) => authdata::attested_credential(&bytes(e, "registration")?)
                    .map_err(|x| attest_err(x.into()))?,
                None => (bytes(e, "credentialId")?, bytes(e, "coseKey")?),
            };
            let evidence = WebAuthnEvidence {
                rp_id: string(e, "rpId")?,
                credential_id,
                cose_key,
                authenticator_data: bytes(e, "authenticatorData")?,
                client_data_json: bytes(e, "clientDataJSON")?,
                signature: bytes(e, "signature")?,
            };
            let origin = match opt_string(e, "origin")? {
                Some(o) => o,
                None => own_origin().ok_or_else(|| bad("origin is missing"))?,
            };
            ctx.webauthn = WebAuthnPolicy {
                origins: vec![origin],
                rp_ids: vec![evidence.rp_id.clone()],
                require_user_verification: flag(e, "requireUserVerification", true)?,
            };
            let evidence = evidence.encode();
            let shown = webauthn::verify(&evidence, user_key, &salt, &ctx.webauthn)
                .map_err(|x| attest_err(x.into()))?;
            Ok(Made {
                kind: Kind::WebAuthn,
                evidence,
                subject: shown.subject,
                salt,
                ctx,
            })
        }
        "siwe" => {
            let salt = salt(e)?;
            let message = text_or_bytes(e, "message")?;
            let evidence = siwe::evidence(&message, &signature65(e)?);
            ctx.siwe = SiwePolicy {
                domains: vec![string(e, "domain")?],
                chain_ids: vec![number(e, "chainId")?.unwrap_or(1)],
            };
            let shown = siwe::verify(&evidence, user_key, &salt, now, &ctx.siwe)
                .map_err(|x| attest_err(x.into()))?;
            Ok(Made {
                kind: Kind::Siwe,
                evidence,
                subject: shown.subject,
                salt,
                ctx,
            })
        }
        "oidc" => {
            let salt = salt(e)?;
            let token = text_or_bytes(e, "idToken")?;
            let token = token.trim_ascii().to_vec();
            let (iss, sub) = peek_issuer(&token).map_err(attest_err)?;
            if let Some(want) = opt_string(e, "issuer")?
                && want != iss
            {
                return Err(js_error(
                    "WRONG_CONTEXT",
                    &format!("the token's issuer is {iss:?}, not {want:?}"),
                ));
            }
            let jwks = jwt::Jwks::parse(&text_or_bytes(e, "jwks")?).map_err(attest_err)?;
            let audience = match opt_string(e, "audience")? {
                Some(a) => a,
                None => token_audience(&token)?,
            };
            ctx.oidc = OidcContext {
                issuers: vec![TrustedIssuer {
                    issuer: iss.clone(),
                    jwks,
                }],
                audiences: vec![audience],
            };
            Ok(Made {
                kind: Kind::OidcIdToken,
                evidence: token,
                subject: subject_for(&iss, &sub),
                salt,
                ctx,
            })
        }
        "did" => {
            let did = string(e, "did")?;
            let document = text_or_bytes(e, "document")?;
            clientful_attest::did::verify_document(&did, &document, user_key)
                .map_err(attest_err)?;
            Ok(Made {
                kind: Kind::DidDocument,
                evidence: document,
                subject: did,
                salt: fresh_salt,
                ctx,
            })
        }
        other => Err(bad(&format!(
            "evidence kind {other:?}: expected \"webauthn\", \"siwe\", \"oidc\" or \"did\""
        ))),
    }
}

/// The verifier context a page gives `attestations(context)`.
fn verifier_context(c: &JsValue) -> Result<VerifierContext, JsValue> {
    let mut ctx = VerifierContext::new(number(c, "nowMs")?.unwrap_or_else(now_ms));
    if let Some(o) = field(c, "oidc") {
        let mut issuers = Vec::new();
        if let Some(list) = field(&o, "issuers") {
            let list: Array = list
                .dyn_into()
                .map_err(|_| bad("oidc.issuers is an array of { issuer, jwks }"))?;
            for i in list.iter() {
                issuers.push(TrustedIssuer {
                    issuer: string(&i, "issuer")?,
                    jwks: jwt::Jwks::parse(&text_or_bytes(&i, "jwks")?).map_err(attest_err)?,
                });
            }
        }
        ctx.oidc = OidcContext {
            issuers,
            audiences: strings(&o, "audiences")?,
        };
    }
    if let Some(s) = field(c, "siwe") {
        ctx.siwe = SiwePolicy {
            domains: strings(&s, "domains")?,
            chain_ids: numbers(&s, "chainIds")?,
        };
    }
    if let Some(w) = field(c, "webauthn") {
        ctx.webauthn = WebAuthnPolicy {
            origins: strings(&w, "origins")?,
            rp_ids: strings(&w, "rpIds")?,
            require_user_verification: flag(&w, "requireUserVerification", true)?,
        };
    }
    Ok(ctx)
}

fn account_object(a: &Account) -> Object {
    let o = Object::new();
    match a {
        Account::Oidc(x) => {
            set(&o, "kind", "oidc");
            set(&o, "issuer", x.issuer.clone());
            set(&o, "subject", x.subject.clone());
            set(&o, "audience", x.audience.clone());
            #[allow(clippy::cast_precision_loss)]
            set(&o, "expiresAt", x.expires_at as f64);
        }
        Account::Did(x) => {
            set(&o, "kind", "did");
            set(&o, "subject", x.did.clone());
            set(&o, "methodId", x.method_id.clone());
        }
        Account::Siwe(x) => {
            set(&o, "kind", "siwe");
            set(&o, "subject", x.subject.clone());
            set(&o, "address", siwe::message::checksum_address(&x.address));
            #[allow(clippy::cast_precision_loss)]
            set(&o, "chainId", x.message.chain_id as f64);
        }
        Account::WebAuthn(x) => {
            set(&o, "kind", "webauthn");
            set(&o, "subject", x.subject.clone());
            set(&o, "userVerified", x.flags & 0x04 != 0);
        }
        _ => set(&o, "kind", "other"),
    }
    o
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::OidcIdToken => "oidc",
        Kind::DidDocument => "did",
        Kind::Siwe => "siwe",
        Kind::WebAuthn => "webauthn",
        _ => "other",
    }
}

fn list(s: &SpaceSession, ctx: &VerifierContext) -> Array {
    s.attestations(ctx)
        .into_iter()
        .map(|a| {
            let o = Object::new();
            if let Some(r) = &a.record {
                set(&o, "id", hex::encode(r.id));
                set(&o, "user", hex::encode(r.user_key));
                set(&o, "kind", kind_name(r.kind));
                set(&o, "subject", r.subject.clone());
                #[allow(clippy::cast_precision_loss)]
                set(&o, "createdAtMs", r.created_at_ms as f64);
            }
            if let Some(u) = a.signer_user {
                set(&o, "signerUser", hex::encode(u));
            }
            match &a.verdict {
                Ok(account) => {
                    set(&o, "verified", true);
                    set(&o, "account", account_object(account));
                }
                Err(e) => {
                    set(&o, "verified", false);
                    set(&o, "class", class_name(e.class()));
                    set(&o, "message", e.to_string());
                }
            }
            JsValue::from(o)
        })
        .collect()
}

#[wasm_bindgen]
impl Space {
    /// A fresh salt and what evidence must commit to for this user (ATT-6):
    /// `{ salt, binding, userKey, oidcNonce, siweNonce, siweResource, didKey }`.
    /// `binding` is the WebAuthn challenge; `oidcNonce` the id_token `nonce` to
    /// request; `siweNonce`/`siweResource` the SIWE message's nonce and resource;
    /// `didKey` the `publicKeyMultibase` a did:web document lists. Pass `salt` back
    /// with the evidence.
    #[wasm_bindgen(
        js_name = attestationNonce,
        unchecked_return_type = "Promise<{ salt: Uint8Array; binding: Uint8Array; userKey: string; oidcNonce: string; siweNonce: string; siweResource: string; didKey: string }>"
    )]
    pub fn attestation_nonce(&self) -> Promise {
        let client = self.shared.client.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let c = client.read().await;
            let n = c.attestation_nonce().map_err(client_err)?;
            let key = c.profile().user_key();
            let o = Object::new();
            set(&o, "salt", Uint8Array::from(&n.salt[..]));
            set(&o, "binding", Uint8Array::from(&n.binding[..]));
            set(&o, "userKey", hex::encode(key));
            set(&o, "oidcNonce", n.oidc_nonce);
            set(&o, "siweNonce", hex::encode(n.binding));
            set(&o, "siweResource", siwe::user_key_resource(&key));
            set(&o, "didKey", clientful_attest::did::multibase_key(&key));
            Ok(o.into())
        })
    }

    /// Makes, checks and publishes an attestation of this user's key (ATT-2,
    /// ATT-12) from `evidence`, one of
    /// `{ kind: "webauthn", salt, rpId, registration | credentialId + coseKey,
    /// authenticatorData, clientDataJSON, signature, origin?, requireUserVerification? }`
    /// (`registration`: the registration's authenticator data),
    /// `{ kind: "siwe", salt, message, signature, domain, chainId? }`,
    /// `{ kind: "oidc", salt, idToken, jwks, issuer?, audience? }` or
    /// `{ kind: "did", did, document }`. Resolves to `{ id, kind, subject }`;
    /// evidence that does not verify is refused with its class.
    #[wasm_bindgen(
        unchecked_return_type = "Promise<{ id: string; kind: string; subject: string }>"
    )]
    pub fn attest(&self, evidence: JsValue) -> Promise {
        let client = self.shared.client.clone();
        self.run(async move |s| {
            let now = now_ms();
            let signed = {
                let c = client.read().await;
                let user_key = c.profile().user_key();
                let fresh = c.attestation_nonce().map_err(client_err)?.salt;
                let m = make(&evidence, &user_key, fresh, now)?;
                let signed = c
                    .sign_attestation(&Draft {
                        kind: m.kind,
                        evidence: &m.evidence,
                        subject: &m.subject,
                        salt: m.salt,
                        created_at_ms: now,
                    })
                    .map_err(client_err)?;
                clientful_attest::verify(&signed, &m.ctx).map_err(attest_err)?;
                signed
            };
            let record = clientful_attest::record::decode(&signed).map_err(attest_err)?;
            s.attest(&signed).map_err(client_err)?;
            let o = Object::new();
            set(&o, "id", hex::encode(record.id));
            set(&o, "kind", kind_name(record.kind));
            set(&o, "subject", record.subject);
            Ok(o.into())
        })
    }

    /// Every attestation of the space with its verdict under `context` (ATT-13):
    /// `{ oidc?: { issuers: [{ issuer, jwks }], audiences }, siwe?: { domains,
    /// chainIds }, webauthn?: { origins, rpIds, requireUserVerification? }, nowMs? }`
    /// (the JWKS as the page fetched them). Resolves to `[{ id, user, kind, subject,
    /// createdAtMs, signerUser?, verified, account? | class, message }]`.
    #[wasm_bindgen(
        unchecked_return_type = "Promise<Array<{ id?: string; user?: string; kind?: string; subject?: string; createdAtMs?: number; signerUser?: string; verified: boolean; account?: { kind: string; subject: string }; class?: string; message?: string }>>"
    )]
    pub fn attestations(&self, context: JsValue) -> Promise {
        self.run(async move |s| {
            let ctx = verifier_context(&context)?;
            Ok(list(s, &ctx).into())
        })
    }
}
