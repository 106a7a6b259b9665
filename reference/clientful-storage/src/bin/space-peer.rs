//! Helper of the browser storage test (`packages/web/test/storage.test.mjs`): one
//! device of a two-device space on S3 or WebDAV, with the fixed test keys that the
//! test's browser Worker uses too (a test helper: no secret is at stake).
//!
//! Usage:
//!   `space-peer write s3|webdav ROOT DEVICE TEXT...`: records one Yjs edit per TEXT
//!   through `Space`, flushes, and prints `env <hex>` for each envelope written;
//!   `space-peer read s3|webdav ROOT DEVICE`: pulls and prints `env <hex>` for every
//!   envelope the device then holds;
//!   `space-peer signers`: prints the two devices' public keys in hex, one a line.
//!
//! The stores come from `CLIENTFUL_S3_ENDPOINT`/`CLIENTFUL_S3_BUCKET` and
//! `CLIENTFUL_WEBDAV_ENDPOINT` (scripts/services/). DEVICE is 0 or 1; the device
//! seed is 32 bytes of `0x60 + DEVICE`.

use std::io::Write;

use clientful_core::keys::{EpochKey, SigningKey};
use clientful_doc::CrdtKind;
use clientful_doc::crdt::YjsSchema;
use clientful_doc::replica::{Replica, ReplicaConfig};
use clientful_doc::text::insert_text;
use clientful_storage::space::SpaceConfig;
use clientful_storage::{LocalStore, OpendalStore, S3Config, Space};

const SPACE_ID: [u8; 32] = [0x51; 32];
const EPOCH_ID: [u8; 32] = [0x52; 32];
const EPOCH_SECRET: [u8; 32] = [0x53; 32];
const DOC_ID: [u8; 32] = [0x70; 32];

fn seed(device: u8) -> [u8; 32] {
    [0x60 + device; 32]
}

fn signers() -> Vec<[u8; 32]> {
    (0..2)
        .map(|d| SigningKey::from_seed(&seed(d)).public_bytes())
        .collect()
}

fn store(kind: &str, root: &str) -> Result<OpendalStore, Box<dyn std::error::Error>> {
    Ok(match kind {
        "s3" => OpendalStore::s3(&S3Config {
            endpoint: std::env::var("CLIENTFUL_S3_ENDPOINT")?,
            bucket: std::env::var("CLIENTFUL_S3_BUCKET")
                .unwrap_or_else(|_| "clientful-test".into()),
            region: "us-east-1".into(),
            access_key_id: "any".into(),
            secret_access_key: "any".into(),
            root: root.into(),
        })?,
        "webdav" => {
            OpendalStore::webdav(&std::env::var("CLIENTFUL_WEBDAV_ENDPOINT")?, "", "", root)?
        }
        other => return Err(format!("unknown backend {other}").into()),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "signers") {
        for s in signers() {
            println!("{}", hex::encode(s));
        }
        return Ok(());
    }
    let [mode, kind, root, device, texts @ ..] = args.as_slice() else {
        return Err("usage: space-peer write|read s3|webdav ROOT DEVICE [TEXT...]".into());
    };
    let device: u8 = device.parse()?;
    if device > 1 {
        return Err("DEVICE is 0 or 1".into());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut space = Space::new(
        store(kind, root)?,
        LocalStore::in_memory()?,
        SpaceConfig {
            space_id: SPACE_ID,
            device: SigningKey::from_seed(&seed(device)),
            epoch: EpochKey::new(EPOCH_ID, EPOCH_SECRET),
            old_epochs: Vec::new(),
            signers: signers(),
            rng_seed: None,
        },
    )?;
    let mut out = std::io::stdout().lock();
    match mode.as_str() {
        "write" => {
            let mut rng_seed = [0u8; 32];
            getrandom::fill(&mut rng_seed)?;
            let mut replica = Replica::new(ReplicaConfig {
                space_id: SPACE_ID,
                doc_id: DOC_ID,
                device: SigningKey::from_seed(&seed(device)),
                epoch: EpochKey::new(EPOCH_ID, EPOCH_SECRET),
                old_epochs: Vec::new(),
                signers: signers(),
                crdt: CrdtKind::Yjs,
                yjs_schema: YjsSchema::default(),
                rng_seed,
            });
            let mut written = Vec::new();
            for t in texts {
                insert_text(&mut replica, 0, t)?;
                replica.commit()?;
                let batch: Vec<Vec<u8>> =
                    replica.drain_outbox().into_iter().map(|(_, b)| b).collect();
                space.record(&batch)?;
                written.extend(batch);
            }
            rt.block_on(async {
                space.init().await?;
                space.flush().await
            })?;
            for e in written {
                writeln!(out, "env {}", hex::encode(e))?;
            }
        }
        "read" => {
            rt.block_on(space.pull())?;
            for e in space.local().all_envelopes()? {
                writeln!(out, "env {}", hex::encode(e))?;
            }
        }
        other => return Err(format!("unknown mode {other}").into()),
    }
    out.flush()?;
    Ok(())
}
