//! Attestations with the real `clientful` binary (spec §14): bob attests an OIDC
//! id_token from a real OpenID provider (npm `oidc-provider`, scripts/services/oidc.sh,
//! authorization code flow with PKCE through scripts/services/oidc/flow.mjs) and a
//! did:web DID served over loopback HTTP; alice lists both as verified. A document
//! without bob's key is refused in one line with its class, and plain http needs
//! the explicit flag.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cli_common;

use std::io::{Read as _, Write as _};
use std::sync::{Arc, Mutex};

use cli_common::{Service, alice_and_bob, as_refs, node, with_loopback};

/// An id_token for `client` with `nonce`, for the provider's user "bob" (authorization
/// code flow with PKCE, scripts/services/oidc/flow.mjs).
fn id_token(provider: &Service, client: &str, nonce: &str) -> String {
    node(
        "scripts/services/oidc/flow.mjs",
        &[&provider.url, client, nonce, "bob"],
    )
}

type Routes = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A loopback HTTP server answering GET with the body of the matching route.
fn serve(listener: std::net::TcpListener, routes: Routes) {
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
            let line = String::from_utf8_lossy(&req).to_string();
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let body = routes
                .lock()
                .unwrap()
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, b)| b.clone());
            let (status, body) = match body {
                Some(b) => ("200 OK", b),
                None => ("404 Not Found", Vec::new()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
}

#[test]
fn oidc_and_did_web_attestations_from_the_cli() {
    let provider = Service::oidc();
    let tmp = tempfile::tempdir().unwrap();
    let (alice, bob) = alice_and_bob(tmp.path());
    let bob_key = bob.user_key();

    // OIDC: nonce, token from the provider, attest.
    let field = bob.attest_nonce();
    let (salt, nonce) = (field("salt"), field("oidc-nonce"));
    let token = id_token(&provider, "clientful-test", &nonce);
    let token_file = tmp.path().join("token.jwt");
    std::fs::write(&token_file, &token).unwrap();
    let token_path = token_file.to_str().unwrap();
    let attest = |salt: &str, loopback: bool| {
        with_loopback(
            &[
                "identity",
                "attest",
                "oidc",
                "--id-token",
                token_path,
                "--issuer",
                &provider.url,
                "--salt",
                salt,
            ],
            loopback,
        )
    };
    // Plain http to the loopback issuer needs the flag.
    let e = bob.fails(&as_refs(&attest(&salt, false)));
    assert!(e.contains("https"), "{e}");
    // Another salt: the nonce does not commit to it.
    let e = bob.fails(&as_refs(&attest("00000000000000000000000000000000", true)));
    assert!(e.contains("WrongContext"), "{e}");
    let out = bob.run(&as_refs(&attest(&salt, true)));
    assert!(out.contains("attested"), "{out}");

    // did:web over loopback HTTP.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let routes: Routes = Arc::new(Mutex::new(Vec::new()));
    serve(listener, routes.clone());
    let did = format!("did:web:127.0.0.1%3A{port}:bob");
    let method = bob.run(&["identity", "attest", "did", "--did", &did, "--show-key"]);
    let method: serde_json::Value = serde_json::from_str(method.trim()).unwrap();
    let doc = serde_json::json!({"id": did, "verificationMethod": [method]});
    routes
        .lock()
        .unwrap()
        .push(("/bob/did.json".into(), doc.to_string().into_bytes()));
    let e = bob.fails(&["identity", "attest", "did", "--did", &did]);
    assert!(e.contains("https"), "{e}");
    let out = bob.run(&[
        "identity",
        "attest",
        "did",
        "--did",
        &did,
        "--allow-http-loopback",
    ]);
    assert!(out.contains("attested"), "{out}");
    // A document without bob's key: one line, its class.
    let other = format!("did:web:127.0.0.1%3A{port}:other");
    routes.lock().unwrap().push((
        "/other/did.json".into(),
        serde_json::json!({"id": other, "verificationMethod": []})
            .to_string()
            .into_bytes(),
    ));
    let e = bob.fails(&[
        "identity",
        "attest",
        "did",
        "--did",
        &other,
        "--allow-http-loopback",
    ]);
    assert!(e.contains("InvalidOperation"), "{e}");

    // Alice lists both, verified offline against the issuer's keys she fetched.
    let listing = |flag: &str| {
        alice.run(&[
            "space",
            "attestations",
            "--issuer",
            &provider.url,
            "--audience",
            "clientful-test",
            flag,
        ])
    };
    let short = &bob_key[..12];
    let oidc_verified = |list: &str| {
        list.lines().any(|l| {
            l.contains(short) && l.contains(&format!("OIDC  {}|bob  verified", provider.url))
        })
    };
    let list = listing("--allow-http-loopback");
    assert!(oidc_verified(&list), "{list}");
    assert!(
        list.lines()
            .any(|l| l.contains(short) && l.contains(&format!("DID  {did}  verified"))),
        "{list}"
    );
    // Offline: the issuer's keys alice's listing kept in her home (spec §14.5
    // allows the cache) verify the same record without fetching anything.
    let offline = listing("--offline");
    assert!(oidc_verified(&offline), "{offline}");
    // An issuer never fetched has no cached keys: one clear error.
    let e = alice.fails(&[
        "space",
        "attestations",
        "--issuer",
        "https://issuer.invalid",
        "--offline",
    ]);
    assert!(
        e.contains("no cached keys for issuer https://issuer.invalid"),
        "{e}"
    );
    // Unreachable (a closed loopback port) with nothing cached: the fetch error.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = alice.fails(&[
        "space",
        "attestations",
        "--issuer",
        &format!("http://127.0.0.1:{closed}"),
        "--allow-http-loopback",
    ]);
    assert!(e.contains("none cached"), "{e}");
    // Without trusting the issuer, the OIDC one is refused with its class.
    let list = alice.run(&["space", "attestations"]);
    assert!(list.contains("REFUSED WRONG_CONTEXT"), "{list}");
}
