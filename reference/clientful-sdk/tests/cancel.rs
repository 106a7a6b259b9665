//! A `sync` future dropped mid-flight leaves the session usable: the
//! device-local store is lent to the storage layer through a guard, never
//! moved out of the session across an await. Over a local-folder storage, as
//! the other SDK tests: each sync is polled a growing number of times (with
//! real file IO going on in between) and dropped while still pending; then
//! the same session edits, syncs and reads back, and another member reads
//! what it wrote.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use clientful::{Client, CrdtKind};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_dropped_sync_future_leaves_the_session_usable() {
    let tmp = tempfile::tempdir().expect("tmp");
    let storage = format!("file://{}", tmp.path().join("storage").display());
    rt().block_on(async {
        let alice = Client::init(&tmp.path().join("alice"), "alice").expect("alice");
        let bob = Client::init(&tmp.path().join("bob"), "bob").expect("bob");
        let mut a = alice.create_space("team", &storage).await.expect("create");
        let notes = a.new_document(CrdtKind::Yjs, "Notes").expect("doc");
        a.edit(&notes, |d| d.insert_text(0, "hello")).expect("edit");
        let code = a
            .create_invite(clientful_core::membership::Role::Writer, true)
            .expect("invite");
        a.sync().await.expect("sync");
        let mut b = bob
            .accept_invite(&code, "team", &storage)
            .await
            .expect("accept");

        // Alice has work to do in every sync below: an edit to upload, bob's
        // redemption to admit and welcome.
        a.edit(&notes, |d| d.append_text(",")).expect("edit");
        let mut dropped = 0;
        let mut completed = 0;
        // Deeper and deeper: between polls, either only yield (the sync stays
        // early in its first storage calls) or let the file IO run for a
        // millisecond (it gets further, into pulls, deliveries and flushes).
        for (polls, pause) in (1..=20)
            .map(|n| (n, false))
            .chain((1..=40).map(|n| (n, true)))
        {
            let mut sync = std::pin::pin!(a.sync());
            let mut done = false;
            for _ in 0..polls {
                match sync.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                    Poll::Ready(r) => {
                        r.expect("a sync that completes succeeds");
                        done = true;
                        break;
                    }
                    Poll::Pending if pause => tokio::time::sleep(Duration::from_millis(1)).await,
                    Poll::Pending => tokio::task::yield_now().await,
                }
            }
            if done {
                completed += 1;
            } else {
                dropped += 1;
            }
            // `sync` is dropped here, possibly in the middle of a storage call.
        }
        assert!(dropped >= 20, "dropped {dropped} syncs mid-flight");
        // A timeout drops it too, after its first await.
        for _ in 0..5 {
            let _ = tokio::time::timeout(Duration::from_micros(10), a.sync()).await;
        }
        eprintln!("{dropped} syncs dropped mid-flight, {completed} completed");

        // The session is usable: it edits, syncs, reads back.
        a.edit(&notes, |d| d.append_text(" world"))
            .expect("edit after drops");
        let r = a.sync().await.expect("sync after drops");
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert!(r.has_access);
        assert_eq!(a.document(&notes).expect("notes").text(), "hello, world");
        assert_eq!(a.members().len(), 2, "bob was admitted: {r:?}");
        assert!(
            a.local_store()
                .expect("local")
                .outbox()
                .expect("outbox")
                .is_empty(),
            "everything written was uploaded"
        );

        // What alice wrote reached the storage: bob is welcomed and reads it.
        let r = b.sync().await.expect("bob syncs");
        assert!(r.has_access, "bob was welcomed: {r:?}");
        assert_eq!(b.document(&notes).expect("notes").text(), "hello, world");

        // Reopened from disk, alice's device store is the real one (not the
        // placeholder a lease keeps while it lends the store).
        drop(a);
        let mut again = alice.open_space("team").await.expect("reopen");
        assert_eq!(
            again.document(&notes).expect("notes").text(),
            "hello, world"
        );
        again.sync().await.expect("sync after reopening");
    });
}
