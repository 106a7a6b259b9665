//! Helper of the crash test (`tests/crash.rs`): writes real envelopes to a redb
//! local store as fast as it can and prints `ack <id hex>` after each write is
//! acknowledged (the transaction committed), until it is killed.
//!
//! Usage: `crash-writer DB_PATH INCARNATION`

use std::io::Write;

use clientful_core::keys::{EpochKey, SigningKey};
use clientful_doc::CrdtKind;
use clientful_doc::crdt::YjsSchema;
use clientful_doc::replica::{Replica, ReplicaConfig};
use clientful_doc::text::insert_text;
use clientful_storage::LocalStore;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let db = args.next().ok_or("missing DB_PATH")?;
    let incarnation: u64 = args.next().ok_or("missing INCARNATION")?.parse()?;
    let store = LocalStore::open(std::path::Path::new(&db))?;
    // One device of a two-device space, with fixed keys (a test helper: no secret
    // is at stake); the incarnation varies the nonce seed across restarts.
    let device = SigningKey::from_seed(&[7; 32]);
    let signers = vec![
        device.public_bytes(),
        SigningKey::from_seed(&[8; 32]).public_bytes(),
    ];
    let mut rng_seed = [7u8; 32];
    rng_seed[..8].copy_from_slice(&incarnation.to_be_bytes());
    let mut replica = Replica::new(ReplicaConfig {
        space_id: [1; 32],
        doc_id: [2; 32],
        device,
        epoch: EpochKey::new([3; 32], [4; 32]),
        old_epochs: Vec::new(),
        signers,
        crdt: CrdtKind::Yjs,
        yjs_schema: YjsSchema::default(),
        rng_seed,
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    for n in 0u64.. {
        // One to three envelopes per transaction, with a cursor written alongside.
        let mut batch = Vec::new();
        for k in 0..(1 + n % 3) {
            insert_text(&mut replica, 0, &format!("{incarnation}.{n}.{k} "))?;
            replica.commit()?;
            batch.extend(replica.drain_outbox());
        }
        let bytes: Vec<Vec<u8>> = batch.iter().map(|(_, b)| b.clone()).collect();
        let cursor = ("writer/count".to_owned(), Some(n.to_be_bytes().to_vec()));
        store.put_envelopes(&bytes, true, &[cursor])?;
        if n % 5 == 4 {
            // Simulate a flush: part of the outbox is done.
            let outbox = store.outbox()?;
            let upto = outbox.get(outbox.len() / 2).map(|(k, _)| *k);
            store.complete_outbox(upto, &[])?;
        }
        for (id, _) in &batch {
            writeln!(out, "ack {}", hex::encode(id))?;
        }
        out.flush()?;
    }
    Ok(())
}
