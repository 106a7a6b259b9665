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

use std::path::{Path, PathBuf};

use clientful::device_dir::{DeviceDir, StoreFuture};
use clientful::error::ClientError;
use clientful_storage::LocalStore;
use redb::{Database, ReadableDatabase, ReadableTable, StorageBackend, TableDefinition};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{FileSystemDirectoryHandle, WorkerGlobalScope};

use crate::storage::opfs::OpfsBackend;

/// The small files of the home, by relative path.
const FILES: TableDefinition<&str, &[u8]> = TableDefinition::new("files");

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
        Ok(OpfsHome {
            prefix: dir.to_owned(),
            name,
            db,
        })
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
        let path = self.name.join(name);
        let tx = self.db.begin_read().map_err(|e| io(&path, e))?;
        let t = tx.open_table(FILES).map_err(|e| io(&path, e))?;
        Ok(t.get(name)
            .map_err(|e| io(&path, e))?
            .map(|v| v.value().to_vec()))
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), ClientError> {
        let path = self.name.join(name);
        let tx = self.db.begin_write().map_err(|e| io(&path, e))?;
        {
            let mut t = tx.open_table(FILES).map_err(|e| io(&path, e))?;
            t.insert(name, bytes).map_err(|e| io(&path, e))?;
        }
        tx.commit().map_err(|e| io(&path, e))
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
