//! Shared helpers of the storage integration tests: backends (folder, memory, and
//! the real S3 and WebDAV servers that `scripts/test-all.sh` starts), devices
//! with a replica, a local store and a space.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clientful_doc::CrdtKind;
use clientful_doc::replica::Replica;
use clientful_doc::testkit::{World, insert_text};
use std::collections::BTreeMap;

use clientful_doc::checkpoint::Provisional;
use clientful_doc::crdt::YjsSchema;
use clientful_storage::StorageError;
use clientful_storage::space::{ChosenCheckpoint, PullReport, Space, SpaceConfig};
use clientful_storage::{LocalStore, OpendalStore, S3Config};

/// Runs a test body on the one runtime all tests share. OpenDAL's HTTP transport
/// is a process-wide reqwest client whose pooled connections belong to the runtime
/// that opened them; a runtime per test would leave dead connections in the pool.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
    .block_on(f)
}

/// A unique name for one test's root folder on a shared server.
pub fn unique(tag: &str) -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("random");
    format!("{tag}-{}", hex::encode(b))
}

fn required() -> bool {
    std::env::var("CLIENTFUL_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

fn missing(var: &str) -> Option<OpendalStore> {
    assert!(
        !required(),
        "{var} is not set but CLIENTFUL_REQUIRE_SERVICES=1: the test command must start the server (scripts/services/)"
    );
    eprintln!(
        "SKIPPED: {var} is not set; run scripts/test-all.sh (or scripts/services/*.sh) to test this backend"
    );
    None
}

/// Builds the backend `kind` with a fresh root; `None` only when a server's env
/// var is absent and services are not required.
pub fn backend(kind: &str, tmp: &std::path::Path) -> Option<OpendalStore> {
    match kind {
        "fs" => {
            let root = tmp.join("storage");
            std::fs::create_dir_all(&root).expect("mkdir");
            Some(OpendalStore::fs(&root).expect("fs"))
        }
        "memory" => Some(OpendalStore::memory().expect("memory")),
        "s3" => {
            let Ok(endpoint) = std::env::var("CLIENTFUL_S3_ENDPOINT") else {
                return missing("CLIENTFUL_S3_ENDPOINT");
            };
            let bucket =
                std::env::var("CLIENTFUL_S3_BUCKET").unwrap_or_else(|_| "clientful-test".into());
            Some(
                OpendalStore::s3(&S3Config {
                    endpoint,
                    bucket,
                    region: "us-east-1".into(),
                    access_key_id: "clientful".into(),
                    secret_access_key: "clientful-secret".into(),
                    root: format!("/{}/", unique("t")),
                })
                .expect("s3"),
            )
        }
        "webdav" => {
            let Ok(endpoint) = std::env::var("CLIENTFUL_WEBDAV_ENDPOINT") else {
                return missing("CLIENTFUL_WEBDAV_ENDPOINT");
            };
            Some(
                OpendalStore::webdav(&endpoint, "", "", &format!("/{}/", unique("t")))
                    .expect("webdav"),
            )
        }
        other => panic!("unknown backend {other}"),
    }
}

/// One device: its replica of the world's document and its space.
pub struct Device {
    pub replica: Replica,
    pub space: Space<OpendalStore>,
    pub index: usize,
    _dir: tempfile::TempDir,
}

pub fn world() -> World {
    World::new(42, 4, CrdtKind::Yjs)
}

pub fn space_config(world: &World, i: usize) -> SpaceConfig {
    SpaceConfig {
        space_id: world.space_id,
        device: world.device(i),
        epoch: world.epoch_key(),
        old_epochs: Vec::new(),
        signers: world.signers(),
        rng_seed: None,
    }
}

pub async fn device(world: &World, store: &OpendalStore, i: usize) -> Device {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = LocalStore::open(&dir.path().join("local.redb")).expect("local");
    let space = Space::new(store.clone(), local, space_config(world, i)).expect("space");
    space.init().await.expect("init");
    Device {
        replica: Replica::new(world.config(i, 0)),
        space,
        index: i,
        _dir: dir,
    }
}

impl Device {
    /// Edits the document, commits, records the envelope locally.
    pub fn edit(&mut self, text: &str) {
        insert_text(&mut self.replica, 0, text).expect("edit");
        self.replica.commit().expect("commit");
        let out: Vec<Vec<u8>> = self
            .replica
            .drain_outbox()
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        self.space.record(&out).expect("record");
    }

    /// Pulls from storage and feeds every local envelope to the replica.
    pub async fn pull(&mut self) -> PullReport {
        let report = self.space.pull().await.expect("pull");
        for envs in self.space.documents().expect("docs").values() {
            for e in envs {
                self.replica.receive(e);
            }
        }
        report
    }

    /// A replica rebuilt from this device's local store only.
    pub fn restored(&self, world: &World) -> Replica {
        let docs = self.space.documents().expect("docs");
        let envs = docs.get(&world.doc_id).cloned().unwrap_or_default();
        Replica::restore(world.config(self.index, 1), &envs)
    }

    /// The checkpoints this device would show (STO-26), each with its state
    /// loaded as a provisional view, and the verdicts on those it fetched.
    pub async fn checkpoints(
        &self,
    ) -> (
        BTreeMap<[u8; 32], (ChosenCheckpoint, Provisional)>,
        Vec<StorageError>,
    ) {
        self.space
            .checkpoints(|_| true, load_yjs)
            .await
            .expect("checkpoints")
    }

    pub fn envelope_count(&self) -> usize {
        self.space.local().all_envelopes().expect("all").len()
    }
}

/// Loads a checkpoint's state as a Yjs provisional view (the test world's CRDT).
pub fn load_yjs(cp: &ChosenCheckpoint) -> Result<Provisional, String> {
    Provisional::load(
        CrdtKind::Yjs,
        &cp.doc_id,
        &YjsSchema::default(),
        &cp.state(),
    )
    .map_err(|e| e.to_string())
}
