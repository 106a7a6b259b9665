//! The device's home in the browser ([`OpfsHome`], the SDK's `DeviceDir` over the
//! origin private file system), implementing for the browser what `FsDir` does
//! natively (spec §9.11, STO-20):
//!
//! - the small files (`identity.json`, each `spaces/<id>/space.json`) are rows of
//!   one redb database in the OPFS file `<dir>.home.redb`: every write is one
//!   durable transaction, so a tab closed mid-write keeps the old or the new file,
//!   never half of one (what the native rename gives);
//! - each space's device-local store is its own redb database in the OPFS file
//!   `<dir>.<folder with `/` as `.`>.redb` (for example
//!   `alice.spaces.<space id>.redb`), through the OPFS backend of [`crate::storage::opfs`].
//!
//! OPFS sync access handles exist only in a dedicated Worker, and one file has one
//! handle: one `Device` per home per Worker.
//!
//! # Sealed under a passkey (spec §14.12, ATT-50..ATT-53)
//!
//! A home created with [`OpfsHome::seal_new`] holds the row `.sealed` and every
//! small file (`identity.json`, with the user and device secrets, and each
//! `space.json`) sealed: `nonce (24) || XChaCha20-Poly1305(key, nonce,
//! aad = M("aad/device-store-file", name), bytes)`, with
//! `key = DeriveWithLabel(prf, "", "kdf/device-store-passkey", dir, 32)` and
//! `prf` the passkey's 32-byte WebAuthn PRF output for the input
//! [`passkey_prf_salt`]. Until [`OpfsHome::unlock`] is given a PRF output that
//! opens `identity.json`, every read of a small file fails: the identity stays
//! locked. The per-space redb stores are not sealed by this (ATT-52: they hold no
//! user or device secret key, but may hold space data).

use std::path::{Path, PathBuf};

use clientful::device_dir::{DeviceDir, StoreFuture};
use clientful::error::ClientError;
use clientful_storage::LocalStore;
use redb::{Database, ReadableDatabase, ReadableTable, StorageBackend, TableDefinition};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{FileSystemDirectoryHandle, WorkerGlobalScope};
use zeroize::Zeroizing;

use crate::storage::opfs::OpfsBackend;

/// The small files of the home, by relative path.
const FILES: TableDefinition<&str, &[u8]> = TableDefinition::new("files");
/// The row that marks a home sealed under a passkey (value: the format version).
const SEALED_ROW: &str = ".sealed";
/// The seal format version.
const SEAL_VERSION: &[u8] = &[1];
/// The file that must open for a passkey to unlock the home.
const IDENTITY_FILE: &str = "identity.json";
/// Label of the wrapping key derived from a passkey's PRF output.
const KDF_PASSKEY: &str = "kdf/device-store-passkey";
/// Label of a sealed file's associated data.
const AAD_FILE: &str = "aad/device-store-file";
/// Label of the PRF input.
const PRF_INPUT: &str = "prf/device-store";

/// The PRF input (`extensions.prf.eval.first`) a passkey is asked for to unlock a
/// home: `HashWithLabel("prf/device-store", "")`.
pub fn passkey_prf_salt() -> [u8; 32] {
    clientful_core::suite::hash_with_label(PRF_INPUT, &[]).unwrap_or([0; 32])
}

/// The wrapping key of home `dir` from a passkey's PRF output.
fn passkey_key(prf: &[u8], dir: &str) -> Result<Zeroizing<[u8; 32]>, SealError> {
    if prf.len() != 32 {
        return Err(SealError::PrfLength(prf.len()));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    clientful_core::suite::derive_with_label(prf, &[], KDF_PASSKEY, dir.as_bytes(), &mut *key)
        .map_err(|_| SealError::PrfLength(prf.len()))?;
    Ok(key)
}

/// Why a passkey does not seal or unlock a home.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The home is sealed and no passkey was given.
    #[error(
        "the device store is sealed under a passkey: unlock it with the passkey (Device.openWithPasskey)"
    )]
    Locked,
    /// The PRF output does not open the home's identity.
    #[error(
        "this passkey does not unlock the device store (another credential, or not this home's)"
    )]
    WrongPasskey,
    /// The home is not sealed.
    #[error("the device store is not sealed under a passkey")]
    NotSealed,
    /// The home already holds an identity.
    #[error("the home already holds an identity")]
    NotEmpty,
    /// The PRF output is not 32 bytes.
    #[error("a PRF output is 32 bytes, got {0}")]
    PrfLength(usize),
    /// Reading or writing the home failed.
    #[error("{0}")]
    Io(String),
}

impl SealError {
    /// The error kind shown in brackets to JavaScript.
    pub fn kind(&self) -> &'static str {
        match self {
            SealError::Locked | SealError::WrongPasskey => "LOCKED",
            SealError::NotSealed | SealError::PrfLength(_) => "INVALID_ARGUMENT",
            SealError::NotEmpty => "ALREADY_EXISTS",
            SealError::Io(_) => "IO",
        }
    }
}

fn io(path: &Path, e: impl std::fmt::Display) -> ClientError {
    ClientError::Io {
        path: path.to_owned(),
        error: std::io::Error::other(e.to_string()),
    }
}

/// A device's home in OPFS. See the module documentation.
#[derive(Debug)]
pub struct OpfsHome {
    name: PathBuf,
    prefix: String,
    db: Database,
    /// Whether the small files are sealed under a passkey (the `.sealed` row).
    sealed: bool,
    /// The wrapping key, once a passkey unlocked (or sealed) the home.
    key: Option<Zeroizing<[u8; 32]>>,
}

/// Why a home name is refused: it becomes part of OPFS file names.
fn valid(dir: &str) -> bool {
    !dir.is_empty()
        && dir.len() <= 100
        && dir
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl OpfsHome {
    /// Opens (creating) the home `dir` (letters, digits, `-`, `_`). Only in a
    /// dedicated Worker.
    pub async fn open(dir: &str) -> Result<Self, ClientError> {
        let name = PathBuf::from(dir);
        if !valid(dir) {
            return Err(io(
                &name,
                "a home name is 1 to 100 letters, digits, `-` or `_`",
            ));
        }
        let backend = OpfsBackend::open(&format!("{dir}.home.redb"))
            .await
            .map_err(|e| io(&name, e))?;
        let db = Database::builder()
            .set_check_integrity_on_open(true)
            .create_with_backend(backend)
            .map_err(|e| io(&name, e))?;
        let tx = db.begin_write().map_err(|e| io(&name, e))?;
        tx.open_table(FILES).map_err(|e| io(&name, e))?;
        tx.commit().map_err(|e| io(&name, e))?;
        let mut home = OpfsHome {
            prefix: dir.to_owned(),
            name,
            db,
            sealed: false,
            key: None,
        };
        home.sealed = home.raw_read(SEALED_ROW)?.is_some();
        Ok(home)
    }

    /// Whether the home is sealed under a passkey.
    pub fn is_sealed(&self) -> bool {
        self.sealed
    }

    /// Seals a new home (no identity yet) under the passkey whose PRF output is
    /// `prf`: every small file written from now on is sealed.
    pub fn seal_new(&mut self, prf: &[u8]) -> Result<(), SealError> {
        let ioe = |e: ClientError| SealError::Io(e.to_string());
        if self.raw_read(IDENTITY_FILE).map_err(ioe)?.is_some() {
            return Err(SealError::NotEmpty);
        }
        let key = passkey_key(prf, &self.prefix)?;
        self.raw_write(SEALED_ROW, SEAL_VERSION).map_err(ioe)?;
        self.sealed = true;
        self.key = Some(key);
        Ok(())
    }

    /// Unlocks a sealed home with a passkey's PRF output: the key must open
    /// `identity.json` (or the home must hold none yet).
    pub fn unlock(&mut self, prf: &[u8]) -> Result<(), SealError> {
        if !self.sealed {
            return Err(SealError::NotSealed);
        }
        let key = passkey_key(prf, &self.prefix)?;
        if let Some(raw) = self
            .raw_read(IDENTITY_FILE)
            .map_err(|e| SealError::Io(e.to_string()))?
        {
            open_file(&key, IDENTITY_FILE, &raw).ok_or(SealError::WrongPasskey)?;
        }
        self.key = Some(key);
        Ok(())
    }

    fn raw_read(&self, name: &str) -> Result<Option<Vec<u8>>, ClientError> {
        let path = self.name.join(name);
        let tx = self.db.begin_read().map_err(|e| io(&path, e))?;
        let t = tx.open_table(FILES).map_err(|e| io(&path, e))?;
        Ok(t.get(name)
            .map_err(|e| io(&path, e))?
            .map(|v| v.value().to_vec()))
    }

    fn raw_write(&self, name: &str, bytes: &[u8]) -> Result<(), ClientError> {
        let path = self.name.join(name);
        let tx = self.db.begin_write().map_err(|e| io(&path, e))?;
        {
            let mut t = tx.open_table(FILES).map_err(|e| io(&path, e))?;
            t.insert(name, bytes).map_err(|e| io(&path, e))?;
        }
        tx.commit().map_err(|e| io(&path, e))
    }

    /// The key, or the error a read or write of a locked home gives.
    fn key_for(&self, name: &str) -> Result<Option<&[u8; 32]>, ClientError> {
        if !self.sealed {
            return Ok(None);
        }
        self.key
            .as_deref()
            .map(Some)
            .ok_or_else(|| io(&self.name.join(name), SealError::Locked))
    }

    fn store_file(&self, folder: &str) -> String {
        format!("{}.{}.redb", self.prefix, folder.replace('/', "."))
    }
}

/// Removes the OPFS file `file` (best effort: an open one stays).
async fn remove_file(file: String) {
    let Ok(scope) = js_sys::global().dyn_into::<WorkerGlobalScope>() else {
        return;
    };
    let Ok(root) = JsFuture::from(scope.navigator().storage().get_directory()).await else {
        return;
    };
    let root: FileSystemDirectoryHandle = root.unchecked_into();
    let _ = JsFuture::from(root.remove_entry(&file)).await;
}

impl DeviceDir for OpfsHome {
    fn location(&self) -> &Path {
        &self.name
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, ClientError> {
        let key = self.key_for(name)?;
        let Some(raw) = self.raw_read(name)? else {
            return Ok(None);
        };
        match key {
            None => Ok(Some(raw)),
            Some(k) => open_file(k, name, &raw)
                .map(Some)
                .ok_or_else(|| io(&self.name.join(name), SealError::WrongPasskey)),
        }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), ClientError> {
        match self.key_for(name)? {
            None => self.raw_write(name, bytes),
            Some(k) => {
                let sealed = seal_file(k, name, bytes).map_err(|e| io(&self.name.join(name), e))?;
                self.raw_write(name, &sealed)
            }
        }
    }

    fn list(&self, folder: &str) -> Result<Vec<String>, ClientError> {
        let path = self.name.join(folder);
        let prefix = format!("{folder}/");
        let tx = self.db.begin_read().map_err(|e| io(&path, e))?;
        let t = tx.open_table(FILES).map_err(|e| io(&path, e))?;
        let mut out: Vec<String> = Vec::new();
        for row in t.range(prefix.as_str()..).map_err(|e| io(&path, e))? {
            let (k, _) = row.map_err(|e| io(&path, e))?;
            let Some(rest) = k.value().strip_prefix(&prefix) else {
                break;
            };
            let first = rest.split('/').next().unwrap_or(rest).to_owned();
            if out.last() != Some(&first) {
                out.push(first);
            }
        }
        Ok(out)
    }

    fn remove(&self, folder: &str) -> Result<(), ClientError> {
        let path = self.name.join(folder);
        let prefix = format!("{folder}/");
        let tx = self.db.begin_write().map_err(|e| io(&path, e))?;
        {
            let mut t = tx.open_table(FILES).map_err(|e| io(&path, e))?;
            let keys: Vec<String> = t
                .range(prefix.as_str()..)
                .map_err(|e| io(&path, e))?
                .filter_map(Result::ok)
                .map(|(k, _)| k.value().to_owned())
                .take_while(|k| k.starts_with(&prefix))
                .collect();
            for k in keys {
                t.remove(k.as_str()).map_err(|e| io(&path, e))?;
            }
        }
        tx.commit().map_err(|e| io(&path, e))?;
        wasm_bindgen_futures::spawn_local(remove_file(self.store_file(folder)));
        Ok(())
    }

    fn open_store<'a>(&'a self, folder: &'a str, existing: bool) -> StoreFuture<'a> {
        Box::pin(async move {
            let file = self.store_file(folder);
            let path = PathBuf::from(&file);
            let backend = OpfsBackend::open(&file).await.map_err(|e| io(&path, e))?;
            if existing && backend.len().map_err(|e| io(&path, e))? == 0 {
                return Err(ClientError::Io {
                    path,
                    error: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "the space's device store is missing",
                    ),
                });
            }
            Ok(LocalStore::open_backend(backend)?)
        })
    }
}

/// `M("aad/device-store-file", name)`.
fn file_aad(name: &str) -> Vec<u8> {
    clientful_core::labels::labeled(AAD_FILE, name.as_bytes()).unwrap_or_default()
}

/// `nonce || AEAD(key, nonce, aad(name), bytes)` with a fresh random nonce.
fn seal_file(key: &[u8; 32], name: &str, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce).map_err(|e| e.to_string())?;
    let ct = clientful_core::suite::aead_seal(key, &nonce, &file_aad(name), bytes)
        .map_err(|e| e.to_string())?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

/// The plaintext of a sealed file, or `None` if the key does not open it.
fn open_file(key: &[u8; 32], name: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    let (nonce, ct) = sealed.split_first_chunk::<24>()?;
    clientful_core::suite::aead_open(key, nonce, &file_aad(name), ct).ok()
}
