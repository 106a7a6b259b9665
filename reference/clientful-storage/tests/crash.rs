//! The crash test: a writer process (`src/bin/crash-writer.rs`) stores envelopes in
//! the redb local store and prints each acknowledged write; the test SIGKILLs it at
//! random points, reopens the store, and checks that every acknowledged envelope
//! is present and the store is consistent. Repeated many times on the same store.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clientful_storage::LocalStore;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

fn parse_ack(line: &str) -> Option<[u8; 32]> {
    let hex_id = line.strip_prefix("ack ")?;
    let mut id = [0u8; 32];
    hex::decode_to_slice(hex_id, &mut id).ok()?;
    Some(id)
}

#[test]
fn killed_writer_loses_nothing_acknowledged_and_corrupts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("local.redb");
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    eprintln!("crash test seed {}", hex::encode(seed));
    let mut rng = ChaCha20Rng::from_seed(seed);
    let mut acked: Vec<[u8; 32]> = Vec::new();
    let started = Instant::now();
    let mut rounds = 0u32;
    while rounds < 150 && started.elapsed() < Duration::from_secs(20) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
            .arg(&db)
            .arg(rounds.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        // Kill after a random number of acknowledgements, then after a random
        // extra delay, so the kill lands anywhere in a write.
        let target = rng.next_u32() % 80;
        let mut seen = 0;
        while seen < target {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(id) = parse_ack(&line) {
                        acked.push(id);
                        seen += 1;
                    }
                }
                _ => panic!("writer exited early"),
            }
        }
        std::thread::sleep(Duration::from_micros(u64::from(rng.next_u32() % 3000)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Lines printed before the kill were acknowledged too; a torn last line is not.
        for line in lines.map_while(Result::ok) {
            if let Some(id) = parse_ack(&line) {
                acked.push(id);
            }
        }
        let store = LocalStore::open(&db).expect("reopens after SIGKILL");
        let stats = store.check().expect("consistent after SIGKILL");
        for id in &acked {
            assert!(
                store.envelope(id).unwrap().is_some(),
                "acknowledged envelope {} lost in round {rounds}",
                hex::encode(id)
            );
        }
        assert!(stats.envelopes >= acked.len() as u64);
        assert!(store.cursor("writer/count").unwrap().is_some() || acked.is_empty());
        drop(store);
        rounds += 1;
    }
    assert!(rounds >= 10, "only {rounds} rounds ran");
    assert!(
        acked.len() >= 200,
        "only {} acknowledged writes",
        acked.len()
    );
    eprintln!(
        "{rounds} kills, {} acknowledged envelopes, all present",
        acked.len()
    );
}
