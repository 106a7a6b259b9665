//! `clientful demo --web`: everything the web demo app (`packages/web/demo/`) needs, in
//! one process on loopback, with nothing fetched from the internet:
//!
//! * the embedded broker (the same one `clientful demo` uses), WebSocket on a free
//!   loopback port;
//! * storage the browser reaches over `fetch`: a WebDAV server (the `dav-server` crate
//!   over hyper, see the crate README for why) on a local folder, with the CORS
//!   headers a page of another origin needs (preflights answered, `ETag` and the
//!   other headers OpenDAL reads exposed);
//! * a static file server for the demo app and the built package (`demo/`, `dist/`,
//!   `pkg/` and the npm modules it imports from `node_modules/`), and `demo/config.json`
//!   telling the page where the broker and the storage are.
//!
//! It prints the URL to open in two tabs and runs until Ctrl-C (or SIGTERM).
//! Everything the browser stores on the WebDAV folder is ciphertext (spec §9); the
//! servers here see nothing else.

use std::convert::Infallible;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use dav_server::DavHandler;
use dav_server::fakels::FakeLs;
use dav_server::localfs::LocalFs;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The folders of the web root the static server serves; nothing else is reachable.
const SERVED: [&str; 4] = ["demo", "dist", "pkg", "node_modules"];

/// Methods a WebDAV client sends (the CORS preflight's allow list).
const DAV_METHODS: &str =
    "GET, HEAD, PUT, DELETE, OPTIONS, PROPFIND, PROPPATCH, MKCOL, COPY, MOVE, LOCK, UNLOCK";
/// Response headers the page may read (OpenDAL reads ETag, lengths and dates).
const DAV_EXPOSED: &str = "ETag, Content-Length, Content-Type, Last-Modified, DAV, Lock-Token";

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

fn status(code: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(full(text));
    *r.status_mut() = code;
    r
}

/// Where the demo's servers listen, as the page sees them.
#[derive(Debug, Clone)]
pub(crate) struct Addresses {
    /// `ws://127.0.0.1:PORT/v1/ws`.
    pub broker: String,
    /// `webdav://127.0.0.1:PORT/spaces` (the SDK's storage URL form).
    pub storage: String,
    /// `http://localhost:PORT/demo/`.
    pub app: String,
}

impl Addresses {
    fn config_json(&self) -> String {
        serde_json::json!({ "broker": self.broker, "storage": self.storage }).to_string()
    }
}

/// `clientful demo --web`.
pub fn run(dir: Option<PathBuf>, web_root: PathBuf, port: u16) -> Result<ExitCode> {
    for needed in [
        "demo/index.html",
        "dist/index.js",
        "pkg/clientful_web_bg.wasm",
    ] {
        if !web_root.join(needed).is_file() {
            bail!(
                "{} has no {needed}: build the web package first (bash scripts/web/demo.sh does both)",
                web_root.display()
            );
        }
    }
    let (_tmp, root) = crate::demo::workdir(dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(root, web_root, port))
}

async fn serve(root: PathBuf, web_root: PathBuf, port: u16) -> Result<ExitCode> {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let broker = tokio::spawn(clientful_broker::server::run_until(
        crate::demo::loopback_broker(None)?,
        async move {
            let _ = stop_rx.await;
        },
        move |b| {
            let _ = ready_tx.send(b);
        },
    ));
    let bound = ready_rx.await.context("the broker did not start")?;

    let storage_dir = root.join("storage");
    std::fs::create_dir_all(&storage_dir)?;
    let dav_listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let dav_addr = dav_listener.local_addr()?;
    let app_listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("port {port} is taken; pass --port with another one"))?;
    let app_addr = app_listener.local_addr()?;
    let addresses = Addresses {
        broker: format!("ws://{}/v1/ws", bound.ws),
        storage: format!("webdav://{dav_addr}/spaces"),
        app: format!("http://localhost:{}/demo/", app_addr.port()),
    };

    let dav = DavHandler::builder()
        .filesystem(LocalFs::new(&storage_dir, false, false, false))
        .locksystem(FakeLs::new())
        .build_handler();
    tokio::spawn(serve_dav(dav_listener, dav));
    tokio::spawn(serve_static(
        app_listener,
        web_root,
        addresses.config_json(),
    ));

    println!("Clientful web demo: a broker, WebDAV storage and the demo app on loopback.");
    println!("broker:  {}", addresses.broker);
    println!(
        "storage: {} (folder {})",
        addresses.storage,
        storage_dir.display()
    );
    println!("open:    {}", addresses.app);
    println!(
        "Open the URL in a tab and create a space; open its invite link in a second tab (or \
         another browser profile) to join. Ctrl-C stops."
    );

    wait_for_stop().await;
    let _ = stop_tx.send(());
    let _ = broker.await;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Accepts connections and serves each with `handle` (HTTP/1.1).
async fn accept<F, Fut>(listener: TcpListener, handle: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let handle = handle.clone();
                async move { Ok::<_, Infallible>(handle(req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn serve_dav(listener: TcpListener, dav: DavHandler) {
    accept(listener, move |req| {
        let dav = dav.clone();
        async move { dav_with_cors(&dav, req).await }
    })
    .await;
}

/// The WebDAV server behind CORS: a preflight (an `OPTIONS` with
/// `Access-Control-Request-Method`) is answered here; every other request goes to
/// the WebDAV handler and its response gets `Access-Control-Allow-Origin` (the
/// request's origin: the server listens on loopback only) and the exposed headers.
pub(crate) async fn dav_with_cors(dav: &DavHandler, req: Request<Incoming>) -> Response<Body> {
    let origin = req.headers().get(header::ORIGIN).cloned();
    if req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::NO_CONTENT;
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(DAV_METHODS),
        );
        if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        allow_origin(h, origin);
        return r;
    }
    let resp = dav.handle(req).await;
    let (mut parts, body) = resp.into_parts();
    allow_origin(&mut parts.headers, origin);
    parts.headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(DAV_EXPOSED),
    );
    let body = body.map_err(std::io::Error::other).boxed_unsync();
    Response::from_parts(parts, body)
}

fn allow_origin(h: &mut hyper::HeaderMap, origin: Option<HeaderValue>) {
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        origin.unwrap_or(HeaderValue::from_static("*")),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
}

async fn serve_static(listener: TcpListener, web_root: PathBuf, config: String) {
    let config = Bytes::from(config);
    accept(listener, move |req| {
        let web_root = web_root.clone();
        let config = config.clone();
        async move { static_file(&web_root, &config, &req).await }
    })
    .await;
}

/// One GET of the static server: `/` redirects to `/demo/`, `/demo/config.json` is
/// the servers' addresses, and paths under [`SERVED`] are files of `web_root`
/// (a folder's `index.html` for a path ending in `/`; a name without an extension
/// also as `.js`). `..` and anything outside those folders is 404.
async fn static_file(web_root: &Path, config: &Bytes, req: &Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return status(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    let path = req.uri().path();
    if path == "/" || path == "/demo" {
        let mut r = status(StatusCode::FOUND, "");
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/demo/"));
        return r;
    }
    if path == "/demo/config.json" {
        return file_response(config.clone(), "application/json");
    }
    let Some(file) = resolve(web_root, path) else {
        return status(StatusCode::NOT_FOUND, "not found\n");
    };
    // lib0's modules import each other without an extension (`lib0/array`), as Node
    // resolves them: a name without one is also looked up as `.js`.
    let candidates = match file.extension() {
        Some(_) => vec![file],
        None => vec![file.clone(), file.with_extension("js")],
    };
    for f in candidates {
        if let Ok(bytes) = tokio::fs::read(&f).await {
            return file_response(Bytes::from(bytes), content_type(&f));
        }
    }
    status(StatusCode::NOT_FOUND, "not found\n")
}

fn file_response(bytes: Bytes, kind: &'static str) -> Response<Body> {
    let mut r = Response::new(full(bytes));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The file of `web_root` a URL path names, if it is under one of [`SERVED`] and
/// has no `..`, `.` or root component after the leading slash.
pub(crate) fn resolve(web_root: &Path, url_path: &str) -> Option<PathBuf> {
    let rel = url_path.strip_prefix('/')?;
    let decoded = percent_decode(rel)?;
    let mut parts = Path::new(&decoded).components();
    let first = match parts.next()? {
        Component::Normal(f) => f.to_str()?,
        _ => return None,
    };
    if !SERVED.contains(&first) {
        return None;
    }
    let mut out = web_root.join(first);
    for c in parts {
        match c {
            Component::Normal(p) => out.push(p),
            _ => return None,
        }
    }
    if decoded.ends_with('/') || out.is_dir() {
        out.push("index.html");
    }
    Some(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            let hex = std::str::from_utf8(&hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("wasm") => "application/wasm",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_serves_only_the_listed_folders() {
        let root = Path::new("/w");
        assert_eq!(
            resolve(root, "/demo/app.js"),
            Some(PathBuf::from("/w/demo/app.js"))
        );
        assert_eq!(
            resolve(root, "/demo/"),
            Some(PathBuf::from("/w/demo/index.html"))
        );
        assert_eq!(
            resolve(root, "/node_modules/yjs/dist/yjs.mjs"),
            Some(PathBuf::from("/w/node_modules/yjs/dist/yjs.mjs"))
        );
        for bad in [
            "/src/index.ts",
            "/demo/../src/index.ts",
            "/demo/%2e%2e/package.json",
            "/../etc/passwd",
            "//etc/passwd",
            "/demo/%zz",
            "demo/app.js",
        ] {
            assert_eq!(resolve(root, bad), None, "{bad}");
        }
    }
}
