//! The device-local store (spec §9.11, STO-20) over redb: every envelope the device knows,
//! its outbox (own envelopes not yet in an uploaded segment), keys, and sync cursors
//! (high-water marks, segment progress, the device's own head manifest). Every
//! method is one ACID transaction, committed with immediate durability before it
//! returns, so what a method acknowledged survives a crash.
//!
//! A store that already exists is opened with [`LocalStore::open_existing`]: redb's
//! integrity check runs on open, then [`LocalStore::check`]; a damaged file is a
//! [`StorageError::LocalCorrupt`] naming it, and a missing or empty one a
//! [`StorageError::LocalMissing`], never a panic (redb may panic on a file
//! corrupted outside it: every redb call on a file of unknown health runs under
//! `catch_unwind`). [`LocalStore::salvage`] reads what it can from a damaged file.
//!
//! [`LocalStore::open_backend`] opens the same store over any redb
//! [`StorageBackend`](redb::StorageBackend) the caller supplies: in the browser an
//! OPFS file (clientful-web), where the file-path constructors are not compiled
//! (wasm32 has no file system, and `catch_unwind` catches nothing there).

#[cfg(not(target_arch = "wasm32"))]
use std::panic::{AssertUnwindSafe, catch_unwind};
#[cfg(not(target_arch = "wasm32"))]
use std::path::{Path, PathBuf};

use clientful_core::envelope::{self, EnvelopeId, ReceivedEnvelope};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::error::StorageError;

const ENVELOPES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("envelopes");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
const CURSORS: TableDefinition<&str, &[u8]> = TableDefinition::new("cursors");

fn local(e: impl std::fmt::Display) -> StorageError {
    StorageError::Local(e.to_string())
}

/// The redb-backed local store of one device.
#[derive(Debug)]
pub struct LocalStore {
    db: Database,
}

/// What [`LocalStore::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalStats {
    /// Stored envelopes.
    pub envelopes: u64,
    /// Outbox entries.
    pub outbox: u64,
}

/// A cursor write to commit together with other changes.
pub type CursorWrite = (String, Option<Vec<u8>>);

/// What [`LocalStore::salvage`] could read from a damaged store.
#[derive(Debug, Default)]
pub struct Salvage {
    /// Keys (device seed, epoch secrets, ...) by name.
    pub keys: Vec<(String, Vec<u8>)>,
    /// Envelopes still in the outbox (never uploaded).
    pub outbox: Vec<Vec<u8>>,
    /// Every other envelope that could be read, in the order stored (they are
    /// signed: whoever loads them verifies them again).
    pub envelopes: Vec<Vec<u8>>,
}

#[cfg(not(target_arch = "wasm32"))]
fn panic_reason(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "redb panicked".into())
}

#[cfg(not(target_arch = "wasm32"))]
/// Runs `f` on a file of unknown health: a panic inside redb becomes
/// [`StorageError::LocalCorrupt`].
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, StorageError>) -> Result<T, StorageError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(StorageError::LocalCorrupt {
            path: path.to_path_buf(),
            reason: format!("reading it failed inside redb ({})", panic_reason(&*p)),
        }),
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn corrupt(path: &Path) -> impl Fn(StorageError) -> StorageError + '_ {
    move |e| match e {
        StorageError::LocalCorrupt { .. } | StorageError::LocalMissing { .. } => e,
        // In use by another process, or unreadable: not a damage.
        StorageError::LocalBusy { .. } | StorageError::Io(_) => e,
        StorageError::Local(reason) => StorageError::LocalCorrupt {
            path: path.to_path_buf(),
            reason,
        },
        other => StorageError::LocalCorrupt {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

impl LocalStore {
    /// Opens (or creates) the store at `path`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        Self::init(Database::create(path).map_err(local)?)
    }

    /// Opens the store of a space this device already holds. Refuses a missing or
    /// empty file ([`StorageError::LocalMissing`]: it is not started afresh behind
    /// the user's back) and a damaged one ([`StorageError::LocalCorrupt`]): redb's
    /// integrity check runs on open, then [`LocalStore::check`], all under
    /// `catch_unwind`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open_existing(path: &Path) -> Result<Self, StorageError> {
        let path_buf: PathBuf = path.to_path_buf();
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::LocalMissing {
                    path: path_buf,
                    state: "missing",
                });
            }
            Err(e) => return Err(StorageError::Io(e)),
            Ok(m) if m.len() == 0 => {
                return Err(StorageError::LocalMissing {
                    path: path_buf,
                    state: "empty",
                });
            }
            Ok(_) => {}
        }
        guarded(path, || {
            let db = match Database::builder()
                .set_check_integrity_on_open(true)
                .open(path)
            {
                Ok(db) => db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    return Err(StorageError::LocalBusy {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) => return Err(local(e)),
            };
            // A valid redb file without this store's tables is a store started
            // afresh, not the one this space had.
            {
                let tx = db.begin_read().map_err(local)?;
                for found in [tx.open_table(KEYS).err(), tx.open_table(CURSORS).err()] {
                    match found {
                        None => {}
                        Some(redb::TableError::TableDoesNotExist(_)) => {
                            return Err(StorageError::LocalMissing {
                                path: path.to_path_buf(),
                                state: "empty",
                            });
                        }
                        Some(e) => return Err(local(e)),
                    }
                }
            }
            let store = LocalStore { db };
            store.check()?;
            Ok(store)
        })
        .map_err(corrupt(path))
    }

    /// Reads what can still be read from a damaged store at `path` (keys, the
    /// outbox), under `catch_unwind`; parts that fail are skipped. The file is
    /// opened read-only; if redb refuses that, a copy (`<path>.salvage`, removed
    /// afterwards) is opened without the integrity check, so the tables that are
    /// intact can still be read.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn salvage(path: &Path) -> Result<Salvage, StorageError> {
        if let Ok(db) = guarded(path, || redb::ReadOnlyDatabase::open(path).map_err(local)) {
            return Ok(Self::salvage_from(path, &db));
        }
        let copy = path.with_extension("salvage");
        std::fs::copy(path, &copy)?;
        let result = guarded(path, || {
            let db = Database::builder()
                .set_check_integrity_on_open(false)
                .open(&copy)
                .map_err(|e| StorageError::LocalCorrupt {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
            Ok(Self::salvage_from(path, &db))
        });
        let _ = std::fs::remove_file(&copy);
        result
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn salvage_from(path: &Path, db: &impl ReadableDatabase) -> Salvage {
        let mut out = Salvage::default();
        if let Ok(keys) = guarded(path, || {
            let tx = db.begin_read().map_err(local)?;
            let t = tx.open_table(KEYS).map_err(local)?;
            let mut v = Vec::new();
            for row in t.iter().map_err(local)? {
                let (k, val) = row.map_err(local)?;
                v.push((k.value().to_string(), val.value().to_vec()));
            }
            Ok(v)
        }) {
            out.keys = keys;
        }
        if let Ok(outbox) = guarded(path, || {
            let tx = db.begin_read().map_err(local)?;
            let env = tx.open_table(ENVELOPES).map_err(local)?;
            let q = tx.open_table(OUTBOX).map_err(local)?;
            let mut v = Vec::new();
            for row in q.iter().map_err(local)? {
                let (_, id) = row.map_err(local)?;
                if let Some(b) = env.get(id.value()).map_err(local)? {
                    v.push(b.value().to_vec());
                }
            }
            Ok(v)
        }) {
            out.outbox = outbox;
        }
        // Row by row, so a damaged page late in the log keeps what came before.
        let mut envelopes = Vec::new();
        let _ = guarded(path, || {
            let tx = db.begin_read().map_err(local)?;
            let env = tx.open_table(ENVELOPES).map_err(local)?;
            let log = tx.open_table(LOG).map_err(local)?;
            for row in log.iter().map_err(local)? {
                let Ok((_, id)) = row else {
                    continue;
                };
                if let Ok(Some(b)) = env.get(id.value()) {
                    envelopes.push(b.value().to_vec());
                }
            }
            Ok(())
        });
        out.envelopes = envelopes;
        out
    }

    /// Opens (or creates) the store over a redb storage backend the caller supplies
    /// (in the browser, an OPFS file). redb's integrity check runs on open and
    /// recovers a commit cut short; then [`LocalStore::check`]. Every write is
    /// committed with immediate durability, which calls the backend's `sync_data`
    /// before the method returns: what a method acknowledged is as durable as that
    /// call makes it.
    pub fn open_backend(backend: impl redb::StorageBackend) -> Result<Self, StorageError> {
        let db = Database::builder()
            .set_check_integrity_on_open(true)
            .create_with_backend(backend)
            .map_err(local)?;
        let store = Self::init(db)?;
        store.check()?;
        Ok(store)
    }

    /// A store in memory (vectors, tests): same tables and transactions, no file.
    pub fn in_memory() -> Result<Self, StorageError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(local)?;
        Self::init(db)
    }

    fn init(db: Database) -> Result<Self, StorageError> {
        let tx = db.begin_write().map_err(local)?;
        {
            tx.open_table(ENVELOPES).map_err(local)?;
            tx.open_table(LOG).map_err(local)?;
            tx.open_table(OUTBOX).map_err(local)?;
            tx.open_table(KEYS).map_err(local)?;
            tx.open_table(CURSORS).map_err(local)?;
        }
        tx.commit().map_err(local)?;
        Ok(LocalStore { db })
    }

    /// Stores envelopes (deduplicated by id) and cursor changes in one transaction;
    /// with `outbox`, the new ones are also queued for upload. Returns the ids of
    /// envelopes that were new. Bytes that are not an envelope are refused.
    pub fn put_envelopes(
        &self,
        envelopes: &[Vec<u8>],
        outbox: bool,
        cursors: &[CursorWrite],
    ) -> Result<Vec<EnvelopeId>, StorageError> {
        let mut ids = Vec::with_capacity(envelopes.len());
        for e in envelopes {
            let d = envelope::decode(e)?;
            ids.push(d.id);
        }
        let fresh = self.insert(
            ids.iter().zip(envelopes.iter().map(Vec::as_slice)),
            outbox,
            cursors,
        )?;
        Ok(fresh
            .into_iter()
            .filter_map(|i| ids.get(i).copied())
            .collect())
    }

    /// [`LocalStore::put_envelopes`] for envelopes already decoded: their bytes as
    /// received are stored under the ids their decoding gave, with no decoding
    /// here. Returns the envelopes that were new, in the order given.
    pub fn put_received(
        &self,
        envelopes: Vec<ReceivedEnvelope>,
        outbox: bool,
        cursors: &[CursorWrite],
    ) -> Result<Vec<ReceivedEnvelope>, StorageError> {
        let fresh = self.insert(
            envelopes.iter().map(|e| (e.id(), e.bytes())),
            outbox,
            cursors,
        )?;
        let mut fresh = fresh.into_iter().peekable();
        Ok(envelopes
            .into_iter()
            .enumerate()
            .filter_map(|(i, e)| fresh.next_if_eq(&i).map(|_| e))
            .collect())
    }

    /// Stores `(id, bytes)` items and cursor changes in one transaction; returns
    /// the positions of the items that were new, ascending.
    fn insert<'a>(
        &self,
        items: impl Iterator<Item = (&'a EnvelopeId, &'a [u8])>,
        outbox: bool,
        cursors: &[CursorWrite],
    ) -> Result<Vec<usize>, StorageError> {
        let mut fresh = Vec::new();
        let tx = self.db.begin_write().map_err(local)?;
        {
            let mut env = tx.open_table(ENVELOPES).map_err(local)?;
            let mut log = tx.open_table(LOG).map_err(local)?;
            let mut out = tx.open_table(OUTBOX).map_err(local)?;
            let mut next_log = log
                .last()
                .map_err(local)?
                .map(|(k, _)| k.value() + 1)
                .unwrap_or(0);
            let mut next_out = out
                .last()
                .map_err(local)?
                .map(|(k, _)| k.value() + 1)
                .unwrap_or(0);
            for (i, (id, bytes)) in items.enumerate() {
                if env.get(id.as_slice()).map_err(local)?.is_some() {
                    continue;
                }
                env.insert(id.as_slice(), bytes).map_err(local)?;
                log.insert(next_log, id.as_slice()).map_err(local)?;
                next_log += 1;
                if outbox {
                    out.insert(next_out, id.as_slice()).map_err(local)?;
                    next_out += 1;
                }
                fresh.push(i);
            }
            let mut cur = tx.open_table(CURSORS).map_err(local)?;
            for (k, v) in cursors {
                match v {
                    Some(v) => cur.insert(k.as_str(), v.as_slice()).map_err(local)?,
                    None => cur.remove(k.as_str()).map_err(local)?,
                };
            }
        }
        tx.commit().map_err(local)?;
        Ok(fresh)
    }

    /// One envelope by id.
    pub fn envelope(&self, id: &EnvelopeId) -> Result<Option<Vec<u8>>, StorageError> {
        let tx = self.db.begin_read().map_err(local)?;
        let t = tx.open_table(ENVELOPES).map_err(local)?;
        Ok(t.get(id.as_slice())
            .map_err(local)?
            .map(|v| v.value().to_vec()))
    }

    /// Every envelope in the order it was stored.
    pub fn all_envelopes(&self) -> Result<Vec<Vec<u8>>, StorageError> {
        let tx = self.db.begin_read().map_err(local)?;
        let env = tx.open_table(ENVELOPES).map_err(local)?;
        let log = tx.open_table(LOG).map_err(local)?;
        let mut out = Vec::new();
        for row in log.iter().map_err(local)? {
            let (_, id) = row.map_err(local)?;
            let bytes = env
                .get(id.value())
                .map_err(local)?
                .ok_or_else(|| StorageError::Local("log entry without envelope".into()))?;
            out.push(bytes.value().to_vec());
        }
        Ok(out)
    }

    /// The outbox: `(position, envelope bytes)` in order.
    pub fn outbox(&self) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let tx = self.db.begin_read().map_err(local)?;
        let env = tx.open_table(ENVELOPES).map_err(local)?;
        let out = tx.open_table(OUTBOX).map_err(local)?;
        let mut v = Vec::new();
        for row in out.iter().map_err(local)? {
            let (k, id) = row.map_err(local)?;
            let bytes = env
                .get(id.value())
                .map_err(local)?
                .ok_or_else(|| StorageError::Local("outbox entry without envelope".into()))?;
            v.push((k.value(), bytes.value().to_vec()));
        }
        Ok(v)
    }

    /// Removes outbox entries up to and including `upto` and writes cursors, in one
    /// transaction (a segment holding them is durable in storage).
    pub fn complete_outbox(
        &self,
        upto: Option<u64>,
        cursors: &[CursorWrite],
    ) -> Result<(), StorageError> {
        let tx = self.db.begin_write().map_err(local)?;
        {
            if let Some(upto) = upto {
                let mut out = tx.open_table(OUTBOX).map_err(local)?;
                out.retain(|k, _| k > upto).map_err(local)?;
            }
            let mut cur = tx.open_table(CURSORS).map_err(local)?;
            for (k, v) in cursors {
                match v {
                    Some(v) => cur.insert(k.as_str(), v.as_slice()).map_err(local)?,
                    None => cur.remove(k.as_str()).map_err(local)?,
                };
            }
        }
        tx.commit().map_err(local)?;
        Ok(())
    }

    /// Writes cursors in one transaction.
    pub fn set_cursors(&self, cursors: &[CursorWrite]) -> Result<(), StorageError> {
        self.complete_outbox(None, cursors)
    }

    /// One cursor.
    pub fn cursor(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let tx = self.db.begin_read().map_err(local)?;
        let t = tx.open_table(CURSORS).map_err(local)?;
        Ok(t.get(key).map_err(local)?.map(|v| v.value().to_vec()))
    }

    /// Stores a key (device seed, epoch secrets).
    pub fn put_key(&self, name: &str, value: &[u8]) -> Result<(), StorageError> {
        let tx = self.db.begin_write().map_err(local)?;
        {
            let mut t = tx.open_table(KEYS).map_err(local)?;
            t.insert(name, value).map_err(local)?;
        }
        tx.commit().map_err(local)?;
        Ok(())
    }

    /// One key.
    pub fn key(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let tx = self.db.begin_read().map_err(local)?;
        let t = tx.open_table(KEYS).map_err(local)?;
        Ok(t.get(name).map_err(local)?.map(|v| v.value().to_vec()))
    }

    /// Checks internal consistency: every envelope decodes to its key, the log and
    /// the outbox refer only to stored envelopes, and the log lists each once.
    pub fn check(&self) -> Result<LocalStats, StorageError> {
        let tx = self.db.begin_read().map_err(local)?;
        let env = tx.open_table(ENVELOPES).map_err(local)?;
        let log = tx.open_table(LOG).map_err(local)?;
        let out = tx.open_table(OUTBOX).map_err(local)?;
        for row in env.iter().map_err(local)? {
            let (k, v) = row.map_err(local)?;
            let d = envelope::decode(v.value())?;
            if d.id.as_slice() != k.value() {
                return Err(StorageError::Local(
                    "envelope stored under a wrong id".into(),
                ));
            }
        }
        if log.len().map_err(local)? != env.len().map_err(local)? {
            return Err(StorageError::Local(
                "log and envelope table disagree".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for row in log.iter().map_err(local)? {
            let (_, id) = row.map_err(local)?;
            if !seen.insert(id.value().to_vec()) || env.get(id.value()).map_err(local)?.is_none() {
                return Err(StorageError::Local(
                    "log entry duplicated or dangling".into(),
                ));
            }
        }
        for row in out.iter().map_err(local)? {
            let (_, id) = row.map_err(local)?;
            if env.get(id.value()).map_err(local)?.is_none() {
                return Err(StorageError::Local("outbox entry dangling".into()));
            }
        }
        Ok(LocalStats {
            envelopes: env.len().map_err(local)?,
            outbox: out.len().map_err(local)?,
        })
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;

    /// A store over a caller-supplied redb backend (in the browser an OPFS file;
    /// here a plain file through redb's `FileBackend`) keeps every committed write
    /// across a reopen, and runs its checks on open.
    #[test]
    fn open_backend_keeps_commits_across_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("backend.redb");
        let open = || {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .expect("file");
            LocalStore::open_backend(redb::backends::FileBackend::new(file).expect("backend"))
        };
        let envelopes = edits(&["a", "b", "c"]);
        {
            let s = open().expect("create");
            assert_eq!(
                s.put_envelopes(&envelopes, true, &[]).expect("put").len(),
                3
            );
            s.put_key("epochs", &[9; 8]).expect("key");
        }
        let s = open().expect("reopen");
        assert_eq!(s.all_envelopes().expect("all"), envelopes);
        assert_eq!(s.key("epochs").expect("key"), Some(vec![9; 8]));
        assert_eq!(
            s.check().expect("check"),
            LocalStats {
                envelopes: 3,
                outbox: 3
            }
        );
    }

    /// The envelopes of one Yjs device inserting each of `texts` and committing.
    fn edits(texts: &[&str]) -> Vec<Vec<u8>> {
        use clientful_core::keys::{EpochKey, SigningKey};
        use clientful_doc::replica::{Replica, ReplicaConfig};
        let device = SigningKey::from_seed(&[7; 32]);
        let mut replica = Replica::new(ReplicaConfig {
            space_id: [1; 32],
            doc_id: [2; 32],
            signers: vec![device.public_bytes()],
            device,
            epoch: EpochKey::new([3; 32], [4; 32]),
            old_epochs: Vec::new(),
            crdt: clientful_doc::CrdtKind::Yjs,
            yjs_schema: clientful_doc::crdt::YjsSchema::default(),
            rng_seed: [5; 32],
        });
        let mut envelopes = Vec::new();
        for t in texts {
            clientful_doc::text::insert_text(&mut replica, 0, t).expect("edit");
            replica.commit().expect("commit");
            envelopes.extend(replica.drain_outbox().into_iter().map(|(_, b)| b));
        }
        envelopes
    }

    /// Storing envelopes already decoded stores what storing their bytes does:
    /// the same table, log order and cursors, duplicates (in the batch and in
    /// the store) skipped, and the new ones returned in the order given.
    #[test]
    fn put_received_stores_what_put_envelopes_does() {
        let envelopes = edits(&["a", "b", "c", "d"]);
        let received = |e: &[Vec<u8>]| -> Vec<ReceivedEnvelope> {
            e.iter()
                .map(|b| ReceivedEnvelope::decode(b.clone()).expect("decode"))
                .collect()
        };
        let by_bytes = LocalStore::in_memory().expect("store");
        let decoded = LocalStore::in_memory().expect("store");
        let cursor = |v: u8| vec![("c".to_string(), Some(vec![v]))];
        let first = by_bytes
            .put_envelopes(&envelopes[..2], false, &cursor(1))
            .expect("put");
        let fresh = decoded
            .put_received(received(&envelopes[..2]), false, &cursor(1))
            .expect("put");
        assert_eq!(fresh.iter().map(|e| *e.id()).collect::<Vec<_>>(), first);
        let batch = [
            envelopes[3].clone(),
            envelopes[1].clone(),
            envelopes[3].clone(),
            envelopes[2].clone(),
        ];
        let second = by_bytes
            .put_envelopes(&batch, true, &cursor(2))
            .expect("put");
        let fresh = decoded
            .put_received(received(&batch), true, &cursor(2))
            .expect("put");
        assert_eq!(second.len(), 2);
        assert_eq!(fresh.iter().map(|e| *e.id()).collect::<Vec<_>>(), second);
        assert_eq!(
            fresh.iter().map(|e| e.bytes().to_vec()).collect::<Vec<_>>(),
            vec![envelopes[3].clone(), envelopes[2].clone()]
        );
        assert_eq!(
            decoded.all_envelopes().expect("all"),
            by_bytes.all_envelopes().expect("all")
        );
        assert_eq!(
            decoded.outbox().expect("outbox"),
            by_bytes.outbox().expect("outbox")
        );
        assert_eq!(decoded.cursor("c").expect("cursor"), Some(vec![2]));
        assert_eq!(
            decoded.check().expect("check"),
            LocalStats {
                envelopes: 4,
                outbox: 2
            }
        );
    }

    /// An existing store that was emptied or deleted is refused (never started
    /// afresh); every single-byte flip is either harmless or LocalCorrupt naming
    /// the file, never a panic; salvage reads what is left.
    #[test]
    fn open_existing_refuses_damage_without_panicking() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("local.redb");
        assert!(matches!(
            LocalStore::open_existing(&path),
            Err(StorageError::LocalMissing {
                state: "missing",
                ..
            })
        ));
        {
            let s = LocalStore::open(&path).expect("create");
            s.put_key("epochs", &[7; 64]).expect("key");
        }
        let good = std::fs::read(&path).expect("read");
        assert!(LocalStore::open_existing(&path).is_ok());
        std::fs::write(&path, b"").expect("truncate");
        assert!(matches!(
            LocalStore::open_existing(&path),
            Err(StorageError::LocalMissing { state: "empty", .. })
        ));
        let mut corrupt = 0;
        for at in (0..good.len()).step_by(good.len() / 64 + 1) {
            let mut b = good.clone();
            b[at] ^= 0xff;
            std::fs::write(&path, &b).expect("write");
            match LocalStore::open_existing(&path) {
                Ok(_) => {}
                Err(
                    StorageError::LocalCorrupt { path: p, .. }
                    | StorageError::LocalMissing { path: p, .. },
                ) => {
                    assert_eq!(p, path);
                    corrupt += 1;
                    let _ = LocalStore::salvage(&path);
                }
                Err(e) => panic!("flip at {at}: {e}"),
            }
        }
        assert!(corrupt > 0);
        std::fs::write(&path, &good).expect("restore");
        let salvaged = LocalStore::salvage(&path).expect("salvage");
        assert_eq!(salvaged.keys, vec![("epochs".to_string(), vec![7; 64])]);
    }
}
