//! The decode-once pull (`Space::pull_received`: each envelope decoded once on
//! its way in, for the coverage check, the local store and the reader) against
//! the pull that hands nothing over and the read-back (`Space::pull`,
//! `Space::documents`): the same report, the same local store, the same
//! envelopes in the same order, and replicas rebuilt from either with the same
//! verdicts, state and history. Storage holding entries that are not envelopes
//! gets the same verdict on both.
//! spec: STO-13, STO-14, STO-31, DOC-7.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use clientful_core::envelope::ReceivedEnvelope;
use clientful_doc::Replica;
use clientful_doc::testkit::World;
use clientful_storage::OpendalStore;
use clientful_storage::space::PullReport;
use common::{block_on, device, world};

/// What two pulls must agree on.
fn summary(r: &PullReport) -> (usize, usize, Vec<[u8; 32]>, Vec<String>, usize) {
    (
        r.new_envelopes,
        r.segments,
        r.snapshots.clone(),
        r.errors.iter().map(ToString::to_string).collect(),
        r.alarms.len(),
    )
}

fn bytes(envs: &[ReceivedEnvelope]) -> Vec<Vec<u8>> {
    envs.iter().map(|e| e.bytes().to_vec()).collect()
}

/// State, history and heads of a replica, and the verdict of every envelope.
fn outcome(r: &mut Replica, envs: &[Vec<u8>]) -> ([u8; 32], [u8; 32], Vec<[u8; 32]>, String) {
    let verdicts = envs
        .iter()
        .map(|e| {
            let id = clientful_core::envelope::decode(e).unwrap().id;
            format!("{:?}", r.verdict(&id))
        })
        .collect::<Vec<_>>()
        .join(",");
    (r.state_digest(), r.history_digest(), r.heads(), verdicts)
}

/// A space with a snapshot, segments after it from two devices, and a segment
/// holding bytes that are not an envelope.
async fn storage(w: &World, store: &OpendalStore) {
    let mut a = device(w, store, 0).await;
    let mut b = device(w, store, 1).await;
    a.edit("hello ");
    a.space.flush().await.unwrap();
    b.pull().await;
    b.edit("world ");
    b.space.flush().await.unwrap();
    a.pull().await;
    a.edit("again ");
    a.space.flush().await.unwrap();
    a.space.compact().await.unwrap();
    b.edit("concurrent ");
    b.space.flush().await.unwrap();
    a.edit("after ");
    a.space.flush().await.unwrap();
    let mut c = device(w, store, 2).await;
    c.pull().await;
    c.edit("third ");
    c.space.flush().await.unwrap();
    c.space
        .publish(vec![b"not an envelope".to_vec()])
        .await
        .unwrap();
}

#[test]
fn pull_received_hands_over_what_documents_reads_back() {
    block_on(async {
        let w = world();
        let store = OpendalStore::memory().unwrap();
        storage(&w, &store).await;

        let mut old = device(&w, &store, 3).await;
        let old_report = old.space.pull().await.unwrap();
        let docs = old.space.documents().unwrap();

        let mut new = device(&w, &store, 3).await;
        let (report, received) = new.space.pull_received().await.unwrap();
        assert_eq!(summary(&report), summary(&old_report));
        assert_eq!(report.snapshots.len(), 1, "a snapshot was loaded");
        assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
        assert!(
            report.errors[0].to_string().contains("not envelopes"),
            "{:?}",
            report.errors
        );
        // The same envelopes, by document, in stored order; the same local store.
        assert_eq!(
            received.keys().collect::<Vec<_>>(),
            docs.keys().collect::<Vec<_>>()
        );
        for (doc, envs) in &docs {
            assert_eq!(&bytes(&received[doc]), envs);
        }
        assert_eq!(new.space.documents().unwrap(), docs);
        assert_eq!(
            new.space.local().all_envelopes().unwrap(),
            old.space.local().all_envelopes().unwrap()
        );
        let read_back = new.space.documents_received().unwrap();
        assert_eq!(read_back, received);
        assert_eq!(
            new.space.local().check().unwrap(),
            old.space.local().check().unwrap()
        );

        // Replicas rebuilt from either: the same verdicts, state and history.
        let envs = &docs[&w.doc_id];
        let strict = outcome(&mut Replica::restore(w.config(3, 1), envs), envs);
        let mut once = Replica::restore_received(w.config(3, 1), None, received[&w.doc_id].clone());
        assert_eq!(outcome(&mut once, envs), strict);
        let mut par =
            Replica::restore_opened_received(w.config(3, 1), None, &received[&w.doc_id], |o, e| {
                e.iter().map(|e| o.open_received(e)).collect()
            });
        assert_eq!(outcome(&mut par, envs), strict);
        assert!(strict.3.split(',').all(|v| v == "Applied"), "{}", strict.3);
        let text = once.materialize().to_canonical_string();
        for word in ["hello", "world", "again", "concurrent", "after", "third"] {
            assert!(text.contains(word), "{word}: {text}");
        }

        // A device that is not cold: only the new envelopes, and the same again.
        let mut d = device(&w, &store, 0).await;
        d.pull().await;
        d.edit("later ");
        d.space.flush().await.unwrap();
        let old_report = old.space.pull().await.unwrap();
        let (report, received) = new.space.pull_received().await.unwrap();
        assert_eq!(summary(&report), summary(&old_report));
        assert_eq!(report.new_envelopes, 1);
        let later: Vec<Vec<u8>> = received.values().flat_map(|v| bytes(v)).collect();
        let all = new.space.local().all_envelopes().unwrap();
        assert_eq!(later.as_slice(), &all[all.len() - 1..]);
        assert_eq!(
            new.space.documents().unwrap(),
            old.space.documents().unwrap()
        );
        // Nothing new: nothing handed over.
        let (report, received) = new.space.pull_received().await.unwrap();
        assert_eq!(report.new_envelopes, 0);
        assert!(received.is_empty());
    });
}
