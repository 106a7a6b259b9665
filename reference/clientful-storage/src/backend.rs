//! The storage backends (spec §9.10, STO-19): one small [`BlobStore`] trait and its
//! implementation over Apache OpenDAL for a local folder (the default), memory
//! (tests), any S3-compatible service and WebDAV. Google Drive, Dropbox and
//! OneDrive are reachable through [`OpendalStore::from_config`] with the user's own
//! OAuth credentials when the crate features `gdrive`, `dropbox` or `onedrive` are
//! enabled; they are wired, not tested.
//!
//! On wasm32 (the browser) the folder backend is not compiled; S3 and WebDAV go
//! through the browser's `fetch` (OpenDAL's reqwest transport, installed by
//! [`install_http_transport`], which every constructor calls), and the futures of
//! [`BlobStore`] are not `Send` (browser futures hold JS values): the trait bounds
//! them by [`MaybeSend`], which is `Send` on every other target, so the native API
//! is unchanged.
//!
//! The layout never needs compare-and-swap or listing consistency: every object
//! is written once under its content address, and a head manifest is overwritten
//! only by its one owner. `list` is used only by copy, export and GC.

use std::future::Future;
#[cfg(not(target_arch = "wasm32"))]
use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use opendal::layers::RetryLayer;
use opendal::{ErrorKind, Operator, services};

use crate::error::StorageError;

/// `Send` on native targets; nothing on wasm32, where futures hold JS values and
/// there is one thread.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + ?Sized> MaybeSend for T {}
/// `Send` on native targets; nothing on wasm32, where futures hold JS values and
/// there is one thread.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSend for T {}

/// `Sync` on native targets; nothing on wasm32.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSync: Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Sync + ?Sized> MaybeSync for T {}
/// `Sync` on native targets; nothing on wasm32.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSync for T {}

/// Registers OpenDAL's services and installs its default HTTP transport (reqwest:
/// native sockets, or the browser's `fetch` on wasm32), once per process. Without
/// the `auto-register-services` constructor (left out on wasm32) no HTTP service
/// works before this ran; every [`OpendalStore`] constructor calls it.
pub fn install_http_transport() {
    static ONCE: Once = Once::new();
    ONCE.call_once(opendal::install_default);
}

/// Untrusted file storage: it can withhold or serve stale files, never forge.
pub trait BlobStore: MaybeSend + MaybeSync {
    /// Writes an immutable, content-addressed object. Writing the same bytes again
    /// is harmless.
    fn put_immutable(
        &self,
        path: &str,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<(), StorageError>> + MaybeSend;
    /// Overwrites a file owned by this device (its head manifest), atomically where
    /// the backend allows.
    fn put_owned(
        &self,
        path: &str,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<(), StorageError>> + MaybeSend;
    /// Reads a file; `None` if absent.
    fn get(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StorageError>> + MaybeSend;
    /// Every file path under `prefix` (recursive), sorted.
    fn list(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, StorageError>> + MaybeSend;
    /// Deletes a file; absent files are fine.
    fn delete(&self, path: &str) -> impl Future<Output = Result<(), StorageError>> + MaybeSend;
    /// Whether a file exists, without reading it (a device checks that its own
    /// objects are still there, STO-28). The default reads the file.
    fn exists(&self, path: &str) -> impl Future<Output = Result<bool, StorageError>> + MaybeSend {
        async move { Ok(self.get(path).await?.is_some()) }
    }
}

/// A [`BlobStore`] over an OpenDAL operator.
#[derive(Debug, Clone)]
pub struct OpendalStore {
    op: Operator,
    name: &'static str,
}

/// Connection settings of an S3-compatible service.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Endpoint URL, e.g. `http://127.0.0.1:8333`.
    pub endpoint: String,
    /// Bucket.
    pub bucket: String,
    /// Region (`us-east-1` for most S3-compatible servers).
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Root folder inside the bucket.
    pub root: String,
}

fn backend_err(path: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// Every operator retries temporary failures (a dropped connection, a 503) a few
/// times with jittered backoff. Every write of the layout is idempotent: objects are
/// content-addressed and a head manifest is rewritten with the same bytes.
fn with_retry(op: Operator) -> Operator {
    op.layer(
        RetryLayer::new()
            .with_jitter()
            .with_max_times(4)
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(2)),
    )
}

impl OpendalStore {
    /// A local folder (the default backend; not on wasm32). Writes go through a temporary file and
    /// a rename, so a reader never sees a torn head manifest.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn fs(root: &Path) -> Result<Self, StorageError> {
        let root_s = root.to_string_lossy().into_owned();
        let tmp = root.join(".clientful-tmp");
        std::fs::create_dir_all(&tmp)?;
        let op = Operator::new(
            services::Fs::default()
                .root(&root_s)
                .atomic_write_dir(&tmp.to_string_lossy()),
        )
        .map_err(|e| backend_err(&root_s, e))?;
        Ok(OpendalStore {
            op: with_retry(op),
            name: "fs",
        })
    }

    /// In-memory storage, for tests.
    pub fn memory() -> Result<Self, StorageError> {
        let op =
            Operator::new(services::Memory::default()).map_err(|e| backend_err("memory", e))?;
        Ok(OpendalStore { op, name: "memory" })
    }

    /// Any S3-compatible service.
    pub fn s3(cfg: &S3Config) -> Result<Self, StorageError> {
        install_http_transport();
        let op = Operator::new(
            services::S3::default()
                .endpoint(&cfg.endpoint)
                .bucket(&cfg.bucket)
                .region(&cfg.region)
                .access_key_id(&cfg.access_key_id)
                .secret_access_key(&cfg.secret_access_key)
                .root(&cfg.root)
                .disable_config_load()
                .disable_ec2_metadata(),
        )
        .map_err(|e| backend_err(&cfg.endpoint, e))?;
        Ok(OpendalStore {
            op: with_retry(op),
            name: "s3",
        })
    }

    /// A WebDAV server.
    pub fn webdav(
        endpoint: &str,
        username: &str,
        password: &str,
        root: &str,
    ) -> Result<Self, StorageError> {
        install_http_transport();
        let mut b = services::Webdav::default().endpoint(endpoint).root(root);
        if !username.is_empty() {
            b = b.username(username).password(password);
        }
        let op = Operator::new(b).map_err(|e| backend_err(endpoint, e))?;
        Ok(OpendalStore {
            op: with_retry(op),
            name: "webdav",
        })
    }

    /// Any OpenDAL service by scheme and its configuration pairs: `gdrive`,
    /// `dropbox` and `onedrive` (with the crate feature of the same name, and the
    /// user's own OAuth access or refresh token, client id and secret in `config`),
    /// or any scheme compiled in.
    pub fn from_config(
        scheme: &str,
        config: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, StorageError> {
        install_http_transport();
        let op = Operator::via_iter(scheme, config).map_err(|e| backend_err(scheme, e))?;
        Ok(OpendalStore {
            op: with_retry(op),
            name: "configured",
        })
    }

    /// Short backend name, for messages.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl BlobStore for OpendalStore {
    async fn put_immutable(&self, path: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.op
            .write(path, bytes)
            .await
            .map(|_| ())
            .map_err(|e| backend_err(path, e))
    }

    async fn put_owned(&self, path: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.op
            .write(path, bytes)
            .await
            .map(|_| ())
            .map_err(|e| backend_err(path, e))
    }

    async fn get(&self, path: &str) -> Result<Option<Vec<u8>>, StorageError> {
        match self.op.read(path).await {
            Ok(buf) => Ok(Some(buf.to_vec())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(backend_err(path, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let entries = match self.op.list_with(prefix).recursive(true).await {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(backend_err(prefix, e)),
        };
        let mut out: Vec<String> = entries
            .into_iter()
            .filter(|e| e.metadata().mode().is_file())
            .map(|e| e.path().trim_start_matches('/').to_owned())
            .filter(|p| !p.starts_with(".clientful-tmp"))
            .collect();
        out.sort();
        Ok(out)
    }

    async fn exists(&self, path: &str) -> Result<bool, StorageError> {
        self.op.exists(path).await.map_err(|e| backend_err(path, e))
    }

    async fn delete(&self, path: &str) -> Result<(), StorageError> {
        match self.op.delete(path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(backend_err(path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn configured_services_are_reached_by_scheme() {
        let s = OpendalStore::from_config("memory", Vec::new()).expect("memory by scheme");
        s.put_immutable("a/b", b"x".to_vec()).await.expect("put");
        assert_eq!(s.get("a/b").await.expect("get"), Some(b"x".to_vec()));
        assert_eq!(s.list("").await.expect("list"), vec!["a/b".to_owned()]);
        s.delete("a/b").await.expect("delete");
        assert_eq!(s.get("a/b").await.expect("get"), None);
        // Without the crate feature the consumer-cloud services are not compiled in.
        #[cfg(not(feature = "gdrive"))]
        assert!(OpendalStore::from_config("gdrive", Vec::new()).is_err());
    }

    /// With the features on, the consumer-cloud services build from the user's own
    /// credentials (no request is made here; real use needs real OAuth tokens).
    #[cfg(all(feature = "gdrive", feature = "dropbox", feature = "onedrive"))]
    #[test]
    fn consumer_cloud_services_are_wired() {
        for scheme in ["gdrive", "dropbox", "onedrive"] {
            let cfg = vec![
                ("root".to_owned(), "/clientful".to_owned()),
                ("access_token".to_owned(), "user-token".to_owned()),
            ];
            OpendalStore::from_config(scheme, cfg).expect(scheme);
        }
    }
}
