//! Attestations end to end (spec §14) against real counterparts: a real OpenID
//! provider (npm `oidc-provider`, scripts/services/oidc.sh) issues id_tokens
//! through the authorization code flow with PKCE (scripts/services/oidc/flow.mjs),
//! and a `did:web` document is served over loopback HTTP. Bob attests in a space;
//! Alice, another member, verifies offline with the issuer's JWKS fetched once
//! and cached. Bad inputs each give their class.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clientful::attest_fetch::{fetch_did_document, fetch_issuer};
use clientful::{Client, SpaceSession};
use clientful_attest::did::multibase_key;
use clientful_attest::jwt::Jwks;
use clientful_attest::oidc::{OidcContext, TrustedIssuer, peek_issuer, subject_for};
use clientful_attest::{Account, Draft, Kind, VerifierContext};
use clientful_core::ErrorClass;
use clientful_core::keys::SigningKey;
use hmac::{KeyInit as _, Mac as _};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The provider: the one scripts/test-all.sh started (`CLIENTFUL_OIDC_ISSUER`), or
/// one started here with scripts/services/oidc.sh and stopped on drop.
struct Provider {
    issuer: String,
    own_dir: Option<tempfile::TempDir>,
}

impl Provider {
    fn get() -> Provider {
        if let Ok(issuer) = std::env::var("CLIENTFUL_OIDC_ISSUER") {
            return Provider {
                issuer,
                own_dir: None,
            };
        }
        let dir = tempfile::tempdir().expect("tmp");
        let out = Command::new("bash")
            .arg(repo().join("scripts/services/oidc.sh"))
            .arg("start")
            .env("CLIENTFUL_OIDC_DIR", dir.path())
            .output()
            .expect("run oidc.sh");
        assert!(
            out.status.success(),
            "oidc.sh start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8(out.stdout).expect("utf8");
        let issuer = line
            .trim()
            .strip_prefix("CLIENTFUL_OIDC_ISSUER=")
            .expect("issuer line")
            .to_string();
        Provider {
            issuer,
            own_dir: Some(dir),
        }
    }

    /// An id_token for `client` with `nonce`, through the real authorization code
    /// flow (login `login`).
    fn token(&self, client: &str, nonce: &str, login: &str) -> String {
        let out = Command::new("node")
            .arg(repo().join("scripts/services/oidc/flow.mjs"))
            .args([&self.issuer, client, nonce, login])
            .output()
            .expect("run flow.mjs");
        assert!(
            out.status.success(),
            "flow.mjs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        if let Some(dir) = &self.own_dir {
            let _ = Command::new("bash")
                .arg(repo().join("scripts/services/oidc.sh"))
                .arg("stop")
                .env("CLIENTFUL_OIDC_DIR", dir.path())
                .status();
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

/// Alice and Bob in one space over a local-folder storage.
async fn two_members(tmp: &std::path::Path) -> (Client, SpaceSession, Client, SpaceSession) {
    let storage = format!("file://{}", tmp.join("storage").display());
    let alice = Client::init(&tmp.join("alice"), "alice").expect("alice");
    let bob = Client::init(&tmp.join("bob"), "bob").expect("bob");
    let mut a = alice.create_space("team", &storage).await.expect("create");
    let code = a
        .create_invite(clientful_core::membership::Role::Writer, true)
        .expect("invite");
    a.sync().await.expect("sync");
    let mut b = bob
        .accept_invite(&code, "team", &storage)
        .await
        .expect("accept");
    a.sync().await.expect("alice admits bob");
    assert!(b.sync().await.expect("bob syncs").has_access);
    (alice, a, bob, b)
}

fn class_of(r: &Result<Account, clientful_attest::AttestError>) -> Option<ErrorClass> {
    r.as_ref().err().map(|e| e.class())
}

#[test]
fn oidc_token_from_a_real_provider_is_attested_and_verified_offline() {
    let provider = Provider::get();
    let tmp = tempfile::tempdir().expect("tmp");
    rt().block_on(async {
        let (_alice, mut a, bob, mut b) = two_members(tmp.path()).await;
        let bob_key = bob.profile().user_key();

        // Bob asks the provider for a token whose nonce commits to his user key.
        let n = bob.attestation_nonce().expect("nonce");
        let token = provider.token("clientful-test", &n.oidc_nonce, "bob");
        assert_eq!(claims(&token)["nonce"], n.oidc_nonce.as_str());
        let (iss, sub) = peek_issuer(token.as_bytes()).expect("peek");
        assert_eq!(iss, provider.issuer);
        let created = now_ms();
        let signed = bob
            .sign_attestation(&Draft {
                kind: Kind::OidcIdToken,
                evidence: token.as_bytes(),
                subject: &subject_for(&iss, &sub),
                salt: n.salt,
                created_at_ms: created,
            })
            .expect("sign");
        b.attest(&signed).expect("attest");
        b.sync().await.expect("bob uploads");

        // Alice fetches the issuer's keys once, caches the JWKS bytes, and from
        // then on verifies offline: the verifier takes no network.
        let fetched = fetch_issuer(&provider.issuer, true).await.expect("fetch");
        let cached = fetched.jwks_bytes.clone();
        let ctx_at = |now_ms: u64, audiences: &[&str]| {
            let mut ctx = VerifierContext::new(now_ms);
            ctx.oidc = OidcContext {
                issuers: vec![TrustedIssuer {
                    issuer: provider.issuer.clone(),
                    jwks: Jwks::parse(&cached).expect("cached jwks"),
                }],
                audiences: audiences.iter().map(|s| s.to_string()).collect(),
            };
            ctx
        };
        let ctx = ctx_at(now_ms(), &["clientful-test"]);
        a.sync().await.expect("alice reads");
        let seen = a.attestations(&ctx);
        assert_eq!(seen.len(), 1, "{seen:?}");
        let Ok(Account::Oidc(acct)) = &seen[0].verdict else {
            panic!("not verified: {:?}", seen[0].verdict);
        };
        assert_eq!(acct.issuer, provider.issuer);
        assert_eq!(acct.subject, "bob");
        assert_eq!(seen[0].record.as_ref().expect("record").user_key, bob_key);
        assert_eq!(seen[0].signer_user, Some(bob_key));

        // A replayed token: the same token in a second record of the space.
        let replay = bob
            .sign_attestation(&Draft {
                kind: Kind::OidcIdToken,
                evidence: token.as_bytes(),
                subject: &subject_for(&iss, &sub),
                salt: n.salt,
                created_at_ms: created + 1_000,
            })
            .expect("sign");
        b.attest(&replay).expect("attest again");
        b.sync().await.expect("bob uploads");
        a.sync().await.expect("alice reads");
        let seen = a.attestations(&ctx);
        assert_eq!(seen.len(), 2, "{seen:?}");
        let classes: Vec<_> = seen.iter().map(|v| class_of(&v.verdict)).collect();
        assert_eq!(
            classes.iter().filter(|c| c.is_none()).count(),
            1,
            "{classes:?}"
        );
        assert!(classes.contains(&Some(ErrorClass::Replay)), "{classes:?}");
        let standing = seen.iter().find(|v| v.verdict.is_ok()).expect("one stands");
        assert_eq!(standing.record.as_ref().expect("r").created_at_ms, created);

        let verify = |signed: &[u8], ctx: &VerifierContext| {
            clientful_attest::verify(signed, ctx).map(|v| v.account)
        };
        let bob_signs = |evidence: &str, salt, created_at_ms| {
            bob.sign_attestation(&Draft {
                kind: Kind::OidcIdToken,
                evidence: evidence.as_bytes(),
                subject: &subject_for(&iss, &sub),
                salt,
                created_at_ms,
            })
            .expect("sign")
        };

        // An expired token: a fresh token, in a record made after its exp.
        let n2 = bob.attestation_nonce().expect("nonce");
        let t2 = provider.token("clientful-test", &n2.oidc_nonce, "bob");
        let exp_ms = claims(&t2)["exp"].as_u64().expect("exp") * 1000;
        let late = exp_ms + 61_000;
        assert_eq!(
            class_of(&verify(
                &bob_signs(&t2, n2.salt, late),
                &ctx_at(late, &["clientful-test"])
            )),
            Some(ErrorClass::Expired)
        );
        // Within the skew it still holds; a record from the verifier's future does not.
        assert!(
            verify(
                &bob_signs(&t2, n2.salt, exp_ms + 59_000),
                &ctx_at(exp_ms + 59_000, &["clientful-test"])
            )
            .is_ok()
        );
        assert_eq!(
            class_of(&verify(
                &bob_signs(&t2, n2.salt, created + 120_000),
                &ctx_at(created, &["clientful-test"])
            )),
            Some(ErrorClass::Expired)
        );

        // Wrong audience: a real token the provider issued to another client.
        let n3 = bob.attestation_nonce().expect("nonce");
        let t3 = provider.token("other-app", &n3.oidc_nonce, "bob");
        assert_eq!(claims(&t3)["aud"], "other-app");
        assert_eq!(
            class_of(&verify(&bob_signs(&t3, n3.salt, now_ms()), &ctx)),
            Some(ErrorClass::WrongContext)
        );

        // ES256: the provider's EC key signs for `clientful-es`.
        let n4 = bob.attestation_nonce().expect("nonce");
        let t4 = provider.token("clientful-es", &n4.oidc_nonce, "bob");
        assert!(t4.starts_with(&URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256""#)[..10]));
        assert!(
            verify(
                &bob_signs(&t4, n4.salt, now_ms()),
                &ctx_at(now_ms(), &["clientful-es"])
            )
            .is_ok()
        );

        // `alg: none`: Bob's real claims, unsigned.
        let parts: Vec<&str> = token.split('.').collect();
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            parts[1]
        );
        assert_eq!(
            class_of(&verify(&bob_signs(&none, n.salt, now_ms()), &ctx)),
            Some(ErrorClass::UnsupportedVersion)
        );

        // An unknown alg: HS256 keyed with the issuer's public key (the JWKS bytes
        // and the RSA modulus both tried as the secret).
        let rsa_n = {
            let v: serde_json::Value = serde_json::from_slice(&cached).expect("jwks json");
            v["keys"]
                .as_array()
                .expect("keys")
                .iter()
                .find(|k| k["kty"] == "RSA")
                .expect("rsa key")["n"]
                .as_str()
                .expect("n")
                .to_string()
        };
        for secret in [cached.clone(), URL_SAFE_NO_PAD.decode(&rsa_n).expect("n")] {
            let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"rsa-1"}"#);
            let input = format!("{h}.{}", parts[1]);
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&secret).expect("hmac");
            mac.update(input.as_bytes());
            let hs = format!(
                "{input}.{}",
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            );
            assert_eq!(
                class_of(&verify(&bob_signs(&hs, n.salt, now_ms()), &ctx)),
                Some(ErrorClass::UnsupportedVersion)
            );
        }

        // A tampered signature.
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).expect("sig");
        sig[0] ^= 1;
        let tampered = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
        assert_eq!(
            class_of(&verify(&bob_signs(&tampered, n.salt, now_ms()), &ctx)),
            Some(ErrorClass::BadSignature)
        );

        // Someone else's key with Bob's token: the nonce does not commit to it.
        let mallory = SigningKey::from_seed(&[66; 32]);
        let stolen = clientful_attest::sign(
            &mallory,
            &Draft {
                kind: Kind::OidcIdToken,
                evidence: token.as_bytes(),
                subject: &subject_for(&iss, &sub),
                salt: n.salt,
                created_at_ms: now_ms(),
            },
        )
        .expect("sign");
        assert_eq!(
            class_of(&verify(&stolen, &ctx)),
            Some(ErrorClass::WrongContext)
        );
        // And an issuer nobody trusts.
        assert_eq!(
            class_of(&verify(&signed, &VerifierContext::new(now_ms()))),
            Some(ErrorClass::WrongContext)
        );
    });
}

/// A loopback HTTP server on `listener` answering GET `path` with the body mapped
/// to it (404 otherwise), one connection at a time, until the process ends.
fn serve(listener: std::net::TcpListener, routes: Vec<(String, Vec<u8>)>) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let mut req = Vec::new();
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&req);
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let (status, body) = match routes.iter().find(|(p, _)| *p == path) {
                Some((_, b)) => ("200 OK", b.clone()),
                None => ("404 Not Found", Vec::new()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/did+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
}

#[test]
fn did_web_over_loopback_http() {
    let tmp = tempfile::tempdir().expect("tmp");
    rt().block_on(async {
        let (alice, mut a, bob, mut b) = two_members(tmp.path()).await;
        let bob_key = bob.profile().user_key();
        let doc = |did: &str, key: &[u8; 32]| {
            serde_json::to_vec(&serde_json::json!({
                "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
                "id": did,
                "verificationMethod": [{
                    "id": format!("{did}#clientful"),
                    "type": "Multikey",
                    "controller": did,
                    "publicKeyMultibase": multibase_key(key),
                }],
                "assertionMethod": [format!("{did}#clientful")],
            }))
            .expect("json")
        };
        // Bind first: the DIDs name the port.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let did_bob = format!("did:web:127.0.0.1%3A{port}:bob");
        let did_other = format!("did:web:127.0.0.1%3A{port}:other");
        serve(
            listener,
            vec![
                ("/bob/did.json".into(), doc(&did_bob, &bob_key)),
                ("/other/did.json".into(), doc(&did_other, &[5; 32])),
            ],
        );

        // Plain http is refused unless allowed (loopback only).
        assert!(fetch_did_document(&did_bob, false).await.is_err());
        let fetched = fetch_did_document(&did_bob, true).await.expect("fetch");
        let signed = bob
            .sign_attestation(&Draft {
                kind: Kind::DidDocument,
                evidence: &fetched,
                subject: &did_bob,
                salt: [0; 16],
                created_at_ms: now_ms(),
            })
            .expect("sign");
        b.attest(&signed).expect("attest");
        b.sync().await.expect("bob uploads");
        a.sync().await.expect("alice reads");
        let seen = a.attestations(&VerifierContext::new(now_ms()));
        assert_eq!(seen.len(), 1);
        let Ok(Account::Did(acct)) = &seen[0].verdict else {
            panic!("not verified: {:?}", seen[0].verdict);
        };
        assert_eq!(acct.did, did_bob);
        assert_eq!(acct.method_id, format!("{did_bob}#clientful"));

        // A document that does not list Bob's key.
        let other = fetch_did_document(&did_other, true).await.expect("fetch");
        let bad = bob
            .sign_attestation(&Draft {
                kind: Kind::DidDocument,
                evidence: &other,
                subject: &did_other,
                salt: [0; 16],
                created_at_ms: now_ms(),
            })
            .expect("sign");
        let err = clientful_attest::verify(&bad, &VerifierContext::new(now_ms())).unwrap_err();
        assert_eq!(err.class(), ErrorClass::InvalidOperation);
        b.attest(&bad).expect("publishing is not checking");
        b.sync().await.expect("bob uploads");
        a.sync().await.expect("alice reads");
        let classes: Vec<_> = a
            .attestations(&VerifierContext::new(now_ms()))
            .iter()
            .map(|v| class_of(&v.verdict))
            .collect();
        assert_eq!(classes.len(), 2);
        assert!(classes.contains(&None) && classes.contains(&Some(ErrorClass::InvalidOperation)));
        // Kept on the device: the same list after reopening the space.
        drop(a);
        let a = alice.open_space("team").await.expect("reopen");
        assert_eq!(a.attestations(&VerifierContext::new(now_ms())).len(), 2);

        // A document fetched for one DID but claimed for another.
        let swapped = bob
            .sign_attestation(&Draft {
                kind: Kind::DidDocument,
                evidence: &fetched,
                subject: &did_other,
                salt: [0; 16],
                created_at_ms: now_ms(),
            })
            .expect("sign");
        assert_eq!(
            clientful_attest::verify(&swapped, &VerifierContext::new(now_ms()))
                .unwrap_err()
                .class(),
            ErrorClass::WrongContext
        );
    });
}
