//! The device-local store (spec §9.11, STO-20) over redb: every envelope the device knows,
//! its outbox (own envelopes not yet in an uploaded segment), keys, and sync cursors
//! (high-water marks, segment progress, the device's own head manifest). Every
//! method is one ACID transaction, committed with immediate durability before it
//! returns, so what a method acknowledged survives a crash.

use std::path::Path;

use clientful_core::envelope::{self, EnvelopeId};
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

impl LocalStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        Self::init(Database::create(path).map_err(local)?)
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
            for (id, bytes) in ids.iter().zip(envelopes) {
                if env.get(id.as_slice()).map_err(local)?.is_some() {
                    continue;
                }
                env.insert(id.as_slice(), bytes.as_slice()).map_err(local)?;
                log.insert(next_log, id.as_slice()).map_err(local)?;
                next_log += 1;
                if outbox {
                    out.insert(next_out, id.as_slice()).map_err(local)?;
                    next_out += 1;
                }
                fresh.push(*id);
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
