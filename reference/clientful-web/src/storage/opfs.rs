//! The device store's file in the browser: a redb [`StorageBackend`] over one file of
//! the Origin Private File System, through a `FileSystemSyncAccessHandle` (issue 16,
//! browser IO; the store's durability contract is spec §9.11, STO-20).
//!
//! The handle's `read`, `write`, `truncate`, `flush` and `getSize` are synchronous,
//! which is what redb's backend trait needs; such handles exist only in dedicated
//! Workers, so the device store lives in a Worker. redb commits with immediate
//! durability, which calls [`StorageBackend::sync_data`], here the handle's `flush()`:
//! a write acknowledged after its commit returned is on disk, and survives the worker
//! being terminated or the page reloaded.
//!
//! The handle is a JS object (neither `Send` nor `Sync`) while redb's trait requires
//! both: the handle stays in a thread-local table, and the backend holds only its
//! number. A wasm32 module without threads has one thread, so every call finds it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;

use redb::StorageBackend;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemGetFileOptions,
    FileSystemReadWriteOptions, FileSystemSyncAccessHandle, WorkerGlobalScope,
};

thread_local! {
    static HANDLES: RefCell<HashMap<u64, FileSystemSyncAccessHandle>> = RefCell::new(HashMap::new());
    static NEXT: Cell<u64> = const { Cell::new(0) };
}

/// Why an OPFS file could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpfsError {
    /// Not running in a dedicated Worker: sync access handles exist only there.
    #[error("OPFS sync access handles exist only in dedicated Workers")]
    NotInWorker,
    /// The browser refused a step (no OPFS, the file is open elsewhere, ...).
    #[error("OPFS {step} failed: {reason}")]
    Browser {
        /// What was being done.
        step: &'static str,
        /// The browser's error, as it printed it.
        reason: String,
    },
}

fn js_reason(e: &JsValue) -> String {
    e.as_string()
        .or_else(|| {
            e.dyn_ref::<js_sys::Error>()
                .map(|e| format!("{}: {}", e.name(), e.message()))
        })
        .unwrap_or_else(|| format!("{e:?}"))
}

fn browser(step: &'static str) -> impl Fn(JsValue) -> OpfsError {
    move |e| OpfsError::Browser {
        step,
        reason: js_reason(&e),
    }
}

fn io_err(e: JsValue) -> io::Error {
    io::Error::other(js_reason(&e))
}

/// One OPFS file, open through a sync access handle, as a redb storage backend.
/// Dropping it (or redb closing it) closes the handle and releases the file.
#[derive(Debug)]
pub struct OpfsBackend {
    id: u64,
}

impl OpfsBackend {
    /// Opens (creating if missing) the file `name` at the root of this origin's
    /// private file system. Fails if the file is already open (one handle per file).
    pub async fn open(name: &str) -> Result<Self, OpfsError> {
        let scope: WorkerGlobalScope = js_sys::global()
            .dyn_into()
            .map_err(|_| OpfsError::NotInWorker)?;
        let storage = scope.navigator().storage();
        let root: FileSystemDirectoryHandle = JsFuture::from(storage.get_directory())
            .await
            .map_err(browser("getDirectory"))?
            .unchecked_into();
        let opts = FileSystemGetFileOptions::new();
        opts.set_create(true);
        let file: FileSystemFileHandle =
            JsFuture::from(root.get_file_handle_with_options(name, &opts))
                .await
                .map_err(browser("getFileHandle"))?
                .unchecked_into();
        let handle: FileSystemSyncAccessHandle = JsFuture::from(file.create_sync_access_handle())
            .await
            .map_err(browser("createSyncAccessHandle"))?
            .unchecked_into();
        let id = NEXT.with(|n| {
            let id = n.get();
            n.set(id + 1);
            id
        });
        HANDLES.with(|h| h.borrow_mut().insert(id, handle));
        Ok(OpfsBackend { id })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&FileSystemSyncAccessHandle) -> Result<T, JsValue>,
    ) -> Result<T, io::Error> {
        HANDLES.with(|h| match h.borrow().get(&self.id) {
            Some(handle) => f(handle).map_err(io_err),
            None => Err(io::Error::other("the OPFS file is closed")),
        })
    }

    fn close_handle(&self) {
        if let Some(handle) = HANDLES.with(|h| h.borrow_mut().remove(&self.id)) {
            handle.close();
        }
    }
}

impl Drop for OpfsBackend {
    fn drop(&mut self) {
        self.close_handle();
    }
}

/// Byte offsets go to the browser as doubles: exact up to 2^53.
fn at(offset: u64) -> Result<FileSystemReadWriteOptions, io::Error> {
    if offset > (1u64 << 53) {
        return Err(io::Error::other("offset beyond 2^53"));
    }
    let opts = FileSystemReadWriteOptions::new();
    #[allow(clippy::cast_precision_loss)] // checked above: exact
    opts.set_at(offset as f64);
    Ok(opts)
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // byte counts the browser returned
fn count(n: f64) -> u64 {
    n as u64
}

impl StorageBackend for OpfsBackend {
    fn len(&self) -> Result<u64, io::Error> {
        self.with(|h| h.get_size()).map(count)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let mut done = 0usize;
        while done < out.len() {
            let opts = at(offset + done as u64)?;
            let Some(rest) = out.get_mut(done..) else {
                break;
            };
            let n = self.with(|h| h.read_with_u8_array_and_options(rest, &opts))?;
            let n = usize::try_from(count(n)).map_err(io::Error::other)?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
            done += n;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        if len > (1u64 << 53) {
            return Err(io::Error::other("length beyond 2^53"));
        }
        #[allow(clippy::cast_precision_loss)] // checked above: exact
        self.with(|h| h.truncate_with_f64(len as f64))
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.with(|h| h.flush())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut done = 0usize;
        while done < data.len() {
            let opts = at(offset + done as u64)?;
            let Some(rest) = data.get(done..) else {
                break;
            };
            let n = self.with(|h| h.write_with_u8_array_and_options(rest, &opts))?;
            let n = usize::try_from(count(n)).map_err(io::Error::other)?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero));
            }
            done += n;
        }
        Ok(())
    }

    fn close(&self) -> Result<(), io::Error> {
        self.close_handle();
        Ok(())
    }
}
