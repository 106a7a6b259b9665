//! `clientful demo --web` as a process: it prints its addresses; its WebDAV storage
//! answers a browser's CORS preflight and exposes the headers OpenDAL reads; a native
//! device (the same CLI) creates a space on that storage, writes a document and syncs
//! through it, and a second device of another user accepts an invite through it (the
//! storage is a real WebDAV server for the SDK, not only for the browser); the static
//! server serves the app, its config, and nothing outside the listed folders.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Demo {
    child: Child,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One raw HTTP/1.1 request (Connection: close); returns the response head and body.
fn http(addr: &str, request: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_ascii_lowercase(), body.to_owned())
}

fn clientful(home: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_clientful"))
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .expect("run clientful");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "clientful {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn last_line(s: &str) -> String {
    s.lines().last().unwrap_or_default().trim().to_owned()
}

#[test]
fn demo_web_serves_storage_with_cors_and_the_app() {
    let tmp = tempfile::tempdir().unwrap();
    // A web root with the files the command checks for (the real one is built by
    // scripts/web/demo.sh), and one file outside the served folders.
    let web = tmp.path().join("web");
    for (f, body) in [
        ("demo/index.html", "<h1>demo</h1>"),
        ("dist/index.js", "export {};"),
        ("pkg/clientful_web_bg.wasm", "\0asm"),
        ("src/secret.ts", "secret"),
    ] {
        let p = web.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    let child = Command::new(env!("CARGO_BIN_EXE_clientful"))
        .args(["demo", "--web", "--web-root"])
        .arg(&web)
        .arg("--dir")
        .arg(tmp.path().join("data"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("start demo --web");
    let mut demo = Demo { child };
    let mut lines = BufReader::new(demo.child.stdout.take().unwrap()).lines();
    let (mut storage, mut app) = (String::new(), String::new());
    while app.is_empty() {
        let line = lines.next().expect("demo output").unwrap();
        if let Some(rest) = line.strip_prefix("storage:") {
            storage = rest.split_whitespace().next().unwrap().to_owned();
        }
        if let Some(rest) = line.strip_prefix("open:") {
            app = rest.trim().to_owned();
        }
    }
    let dav = storage
        .strip_prefix("webdav://")
        .and_then(|r| r.split_once('/'))
        .map(|(host, _)| host.to_owned())
        .expect("a webdav:// storage URL");
    let app_host = app
        .strip_prefix("http://localhost:")
        .and_then(|r| r.strip_suffix("/demo/"))
        .map(|port| format!("127.0.0.1:{port}"))
        .expect("an http://localhost:PORT/demo/ URL");
    let origin = format!("http://localhost:{}", &app_host["127.0.0.1:".len()..]);

    // The preflight of a cross-origin PROPFIND from the app's origin.
    let (head, _) = http(
        &dav,
        &format!(
            "OPTIONS /spaces/ HTTP/1.1\r\nHost: {dav}\r\nOrigin: {origin}\r\n\
             Access-Control-Request-Method: PROPFIND\r\n\
             Access-Control-Request-Headers: depth,content-type\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(head.starts_with("http/1.1 204"), "{head}");
    assert!(
        head.contains(&format!("access-control-allow-origin: {origin}")),
        "{head}"
    );
    assert!(head.contains("propfind"), "{head}");
    assert!(
        head.contains("access-control-allow-headers: depth,content-type"),
        "{head}"
    );

    // A native device uses the same storage: a space, a document, a sync; a second
    // user accepts an invite through it and reads the document after admission.
    let alice = tmp.path().join("alice");
    let bob = tmp.path().join("bob");
    clientful(&alice, &["identity", "create", "--name", "alice"]);
    clientful(&alice, &["space", "create", "team", "--storage", &storage]);
    let doc = last_line(&clientful(
        &alice,
        &["doc", "new", "--crdt", "yjs", "--title", "Notes"],
    ));
    clientful(
        &alice,
        &["doc", "edit", &doc, "--append", "hello over webdav"],
    );
    let code = last_line(&clientful(
        &alice,
        &["invite", "create", "--role", "writer"],
    ));
    clientful(&alice, &["sync"]);
    clientful(&bob, &["identity", "create", "--name", "bob"]);
    clientful(&bob, &["invite", "accept", &code, "--storage", &storage]);
    clientful(&alice, &["sync"]);
    clientful(&bob, &["sync"]);
    let text = last_line(&clientful(&bob, &["doc", "print", &doc, "--text"]));
    assert_eq!(text, "hello over webdav");

    // What the WebDAV folder holds is ciphertext only.
    let mut stack = vec![tmp.path().join("data/storage")];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files += 1;
                let bytes = std::fs::read(&p).unwrap();
                assert!(
                    !bytes.windows(17).any(|w| w == b"hello over webdav"),
                    "{} holds plaintext",
                    p.display()
                );
            }
        }
    }
    assert!(files > 0, "nothing was written to the WebDAV folder");

    // A response of the WebDAV server carries the CORS headers too.
    let (head, _) = http(
        &dav,
        &format!(
            "PROPFIND /spaces/ HTTP/1.1\r\nHost: {dav}\r\nOrigin: {origin}\r\nDepth: 1\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(head.starts_with("http/1.1 207"), "{head}");
    assert!(
        head.contains("access-control-expose-headers: etag"),
        "{head}"
    );

    // The static server: the app, its config, nothing outside the served folders.
    let get = |path: &str| {
        http(
            &app_host,
            &format!("GET {path} HTTP/1.1\r\nHost: {app_host}\r\nConnection: close\r\n\r\n"),
        )
    };
    let (head, body) = get("/demo/");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(body.contains("<h1>demo</h1>"));
    let (_, config) = get("/demo/config.json");
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["storage"], storage.as_str());
    assert!(
        config["broker"]
            .as_str()
            .unwrap()
            .starts_with("ws://127.0.0.1:")
    );
    let (head, _) = get("/pkg/clientful_web_bg.wasm");
    assert!(head.contains("content-type: application/wasm"), "{head}");
    for bad in [
        "/src/secret.ts",
        "/demo/../src/secret.ts",
        "/demo/%2e%2e/src/secret.ts",
    ] {
        let (head, body) = get(bad);
        assert!(head.starts_with("http/1.1 404"), "{bad}: {head}");
        assert!(!body.contains("secret"), "{bad}");
    }
}
