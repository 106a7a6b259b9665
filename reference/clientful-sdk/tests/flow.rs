//! The SDK end to end over a local-folder storage: create, invite, accept,
//! welcome, edit both CRDTs, link a second device, remove a member with a key
//! rotation, and check the removed member reads nothing written afterwards.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

use clientful::{Client, CrdtKind};
use serde_json::json;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn invite_edit_link_remove() {
    let tmp = tempfile::tempdir().expect("tmp");
    let storage = format!("file://{}", tmp.path().join("storage").display());
    rt().block_on(async {
        let alice = Client::init(&tmp.path().join("alice"), "alice").expect("alice");
        let bob = Client::init(&tmp.path().join("bob"), "bob").expect("bob");
        let carol = Client::init(&tmp.path().join("carol"), "carol").expect("carol");

        let mut a = alice.create_space("team", &storage).await.expect("create");
        let notes = a.new_document(CrdtKind::Yjs, "Notes").expect("doc");
        a.edit(&notes, |d| d.insert_text(0, "hello")).expect("edit");
        let plan = a.new_document(CrdtKind::Automerge, "Plan").expect("doc");
        a.edit(&plan, |d| {
            d.set_json("items", &json!(["a", 1, {"b": true}]))
        })
        .expect("edit");
        let code = a
            .create_invite(clientful_core::membership::Role::Writer, true)
            .expect("invite");
        a.sync().await.expect("sync");

        let mut b = bob
            .accept_invite(&code, "team", &storage)
            .await
            .expect("accept");
        assert!(!b.has_access(), "not welcomed yet");
        let r = a.sync().await.expect("alice admits bob");
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        let r = b.sync().await.expect("bob syncs");
        assert!(r.has_access, "bob was welcomed: {r:?}");
        assert_eq!(b.document(&notes).expect("notes").text(), "hello");
        assert_eq!(
            b.document(&plan).expect("plan").json()["items"],
            json!(["a", 1, {"b": true}])
        );
        b.edit(&notes, |d| d.append_text(" world"))
            .expect("bob edits");
        b.sync().await.expect("bob uploads");
        a.sync().await.expect("alice reads");
        assert_eq!(a.document(&notes).expect("notes").text(), "hello world");

        // Bob's second device joins with a link code.
        let bob2 = Client::restore(&tmp.path().join("bob2"), &bob.profile().backup_unsealed())
            .expect("restore");
        let link = b
            .add_device(&bob2.profile().device_request().expect("request"))
            .expect("add device");
        b.sync().await.expect("bob publishes the device");
        let mut b2 = bob2
            .join_device(&link, "team", &storage)
            .await
            .expect("join");
        assert!(b2.has_access(), "linked device was welcomed");
        assert_eq!(b2.document(&notes).expect("notes").text(), "hello world");

        // Carol joins, then is removed.
        let code = a
            .create_invite(clientful_core::membership::Role::Writer, true)
            .expect("invite");
        a.sync().await.expect("sync");
        let mut c = carol
            .accept_invite(&code, "team", &storage)
            .await
            .expect("accept");
        a.sync().await.expect("admit carol");
        assert!(c.sync().await.expect("carol").has_access);
        assert_eq!(c.document(&notes).expect("notes").text(), "hello world");
        let carol_key = c.membership().identity().user;
        a.remove_member(&carol_key).expect("remove");
        a.edit(&notes, |d| d.append_text(" after")).expect("edit");
        a.sync().await.expect("alice uploads");

        let r = c.sync().await.expect("carol syncs");
        assert!(!r.has_access, "removed member lost access");
        assert_eq!(r.locked_out, 1, "{r:?}");
        assert_eq!(c.document(&notes).expect("old notes").text(), "hello world");

        for s in [&mut b, &mut b2] {
            let r = s.sync().await.expect("sync");
            assert!(r.has_access, "{r:?}");
            assert_eq!(
                s.document(&notes).expect("notes").text(),
                "hello world after"
            );
        }
        let da = a.document(&notes).expect("n").state_digest();
        assert_eq!(b.document(&notes).expect("n").state_digest(), da);
        assert_eq!(b2.document(&notes).expect("n").state_digest(), da);

        // Reopening from disk gives the same state.
        drop(a);
        let mut a = alice.open_space("team").await.expect("reopen");
        assert_eq!(a.document(&notes).expect("n").state_digest(), da);
        assert_eq!(a.members().len(), 2);
    });
}

/// Compaction with checkpoints (spec §9.7a): a new member's first sync shows
/// each document from its checkpoint (a `Preview`, unverified) before the
/// verified document replaces it, and the checkpoints check clean.
#[test]
fn compact_then_a_new_member_previews() {
    let tmp = tempfile::tempdir().expect("tmp");
    let storage = format!("file://{}", tmp.path().join("storage").display());
    rt().block_on(async {
        let alice = Client::init(&tmp.path().join("alice"), "alice").expect("alice");
        let bob = Client::init(&tmp.path().join("bob"), "bob").expect("bob");
        let mut a = alice.create_space("team", &storage).await.expect("create");
        let notes = a.new_document(CrdtKind::Yjs, "Notes").expect("doc");
        a.edit(&notes, |d| d.insert_text(0, "checkpointed notes"))
            .expect("edit");
        let plan = a.new_document(CrdtKind::Automerge, "Plan").expect("doc");
        a.edit(&plan, |d| d.set_json("items", &json!(["x", 2])))
            .expect("edit");
        let code = a
            .create_invite(clientful_core::membership::Role::Reader, true)
            .expect("invite");
        a.sync().await.expect("sync");
        let done = a.compact().await.expect("compact");
        assert!(done.snapshot.is_some());
        assert_eq!(done.checkpoints, 2, "one per document");
        // Written after the compaction: in the verified document, not the preview.
        a.edit(&notes, |d| d.append_text(" and more"))
            .expect("edit");
        a.sync().await.expect("sync");

        let mut b = bob
            .accept_invite(&code, "team", &storage)
            .await
            .expect("accept");
        a.sync().await.expect("alice admits bob");
        let mut changes = b.subscribe();
        let r = b.sync().await.expect("bob syncs");
        assert!(r.has_access, "{r:?}");
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        let mut seen = Vec::new();
        while let Ok(c) = changes.try_recv() {
            seen.push(c);
        }
        let preview_of = |doc: [u8; 32]| {
            seen.iter()
                .position(|c| matches!(c, clientful::Change::Preview { doc: d, .. } if *d == doc))
        };
        let verified_of = |doc: [u8; 32]| {
            seen.iter()
                .position(|c| *c == clientful::Change::Document(doc))
        };
        for doc in [notes, plan] {
            let (p, v) = (preview_of(doc), verified_of(doc));
            assert!(p.is_some() && v.is_some() && p < v, "{seen:?}");
        }
        let notes_preview = seen
            .iter()
            .find_map(|c| match c {
                clientful::Change::Preview { doc, json } if *doc == notes => Some(json.clone()),
                _ => None,
            })
            .expect("preview");
        assert!(notes_preview.contains("checkpointed notes"));
        assert!(!notes_preview.contains("and more"), "as of the snapshot");
        assert_eq!(
            b.document(&notes).expect("notes").text(),
            "checkpointed notes and more"
        );
        // A device that holds documents does not preview again.
        let mut again = b.subscribe();
        b.sync().await.expect("sync");
        while let Ok(c) = again.try_recv() {
            assert!(!matches!(c, clientful::Change::Preview { .. }), "{c:?}");
        }
    });
}
