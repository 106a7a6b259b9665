//! The device's home ([`DeviceDir`]): where a [`Client`](crate::Client) keeps its
//! identity, each space's settings and each space's device-local store (spec §9.11,
//! STO-20). The SDK's policies (what is kept, under which name, when it is written)
//! are written once against this trait; only the IO differs per platform:
//!
//! - natively, [`FsDir`]: a folder, files written atomically (temporary file,
//!   fsync, rename) with owner-only permissions, the store a redb file
//!   (`spaces/<space id>/local.redb`), exactly the layout of earlier versions;
//! - in a browser, an implementation over the origin private file system (OPFS),
//!   supplied by the shell (`clientful-web`'s session module), which owns the
//!   browser APIs.
//!
//! Names are relative, `/`-separated paths: `identity.json`,
//! `spaces/<space id>/space.json`; folders are `spaces`, `spaces/<space id>`.

use std::future::Future;
use std::path::Path;
#[cfg(not(target_arch = "wasm32"))]
use std::path::PathBuf;
use std::pin::Pin;

use clientful_storage::LocalStore;
use clientful_storage::backend::{MaybeSend, MaybeSync};

use crate::error::ClientError;

/// The future of [`DeviceDir::open_store`] (`Send` natively, where sessions may
/// move between threads; not on wasm32, where browser futures hold JS values).
#[cfg(not(target_arch = "wasm32"))]
pub type StoreFuture<'a> =
    Pin<Box<dyn Future<Output = Result<LocalStore, ClientError>> + Send + 'a>>;
/// The future of [`DeviceDir::open_store`] (`Send` natively, where sessions may
/// move between threads; not on wasm32, where browser futures hold JS values).
#[cfg(target_arch = "wasm32")]
pub type StoreFuture<'a> = Pin<Box<dyn Future<Output = Result<LocalStore, ClientError>> + 'a>>;

/// A device's home: small files, folders of them, and one device-local store per
/// space folder. See the module documentation.
pub trait DeviceDir: MaybeSend + MaybeSync + std::fmt::Debug {
    /// Where the home is, for messages (the folder; in a browser its OPFS name).
    fn location(&self) -> &Path;

    /// The file `name`, or `None` if there is none.
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, ClientError>;

    /// Replaces the file `name` with `bytes` atomically: after a crash it holds
    /// either the old or the new bytes. Creates its folder if needed.
    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), ClientError>;

    /// The names of the entries directly in `folder` (empty if it does not exist).
    fn list(&self, folder: &str) -> Result<Vec<String>, ClientError>;

    /// Removes `folder` and everything in it (its store included).
    fn remove(&self, folder: &str) -> Result<(), ClientError>;

    /// Opens the device-local store of `folder`. With `existing`, refuses a
    /// missing, empty or damaged store (it is not started afresh behind the
    /// user's back); otherwise creates it.
    fn open_store<'a>(&'a self, folder: &'a str, existing: bool) -> StoreFuture<'a>;
}

/// The native home: a folder on the file system. See the module documentation.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone)]
pub struct FsDir {
    root: PathBuf,
}

#[cfg(not(target_arch = "wasm32"))]
impl FsDir {
    /// The home in folder `root` (created when first written).
    pub fn new(root: &Path) -> Self {
        FsDir {
            root: root.to_owned(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        name.split('/').fold(self.root.clone(), |p, c| p.join(c))
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl DeviceDir for FsDir {
    fn location(&self) -> &Path {
        &self.root
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, ClientError> {
        let path = self.path(name);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ClientError::io(&path, e)),
        }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), ClientError> {
        write_private(&self.path(name), bytes)
    }

    fn list(&self, folder: &str) -> Result<Vec<String>, ClientError> {
        let dir = self.path(folder);
        let rd = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ClientError::io(&dir, e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| ClientError::io(&dir, e))?;
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(out)
    }

    fn remove(&self, folder: &str) -> Result<(), ClientError> {
        let dir = self.path(folder);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ClientError::io(&dir, e)),
            _ => Ok(()),
        }
    }

    fn open_store<'a>(&'a self, folder: &'a str, existing: bool) -> StoreFuture<'a> {
        Box::pin(async move {
            let dir = self.path(folder);
            let file = dir.join("local.redb");
            if existing {
                return Ok(LocalStore::open_existing(&file)?);
            }
            std::fs::create_dir_all(&dir).map_err(|e| ClientError::io(&dir, e))?;
            Ok(LocalStore::open(&file)?)
        })
    }
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename) with
/// owner-only permissions where the platform has them.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| ClientError::io(dir, e))?;
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| ClientError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| ClientError::io(&tmp, e))?;
        f.sync_all().map_err(|e| ClientError::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| ClientError::io(path, e))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn fs_dir_reads_writes_lists_and_removes() -> Result<(), ClientError> {
        let tmp = tempfile::tempdir().map_err(|e| ClientError::io(Path::new("tmp"), e))?;
        let d = FsDir::new(tmp.path());
        assert_eq!(d.read("spaces/a/space.json")?, None);
        assert!(d.list("spaces")?.is_empty());
        d.write("spaces/a/space.json", b"{}")?;
        assert!(
            tmp.path()
                .join("spaces")
                .join("a")
                .join("space.json")
                .is_file()
        );
        assert_eq!(d.read("spaces/a/space.json")?.as_deref(), Some(&b"{}"[..]));
        assert_eq!(d.list("spaces")?, vec!["a".to_owned()]);
        d.remove("spaces/a")?;
        assert!(d.list("spaces")?.is_empty());
        d.remove("spaces/a")?;
        Ok(())
    }
}
