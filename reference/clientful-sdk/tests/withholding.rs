//! The SDK's withholding events (spec STO-28, STO-29) over a local-folder
//! storage: a member restores an old copy of the storage folder to hide a
//! removal; the remover's sync puts its files back and emits
//! `Change::Withholding` for each (and `Change::StaleEpoch` for the member who
//! kept writing under the replaced epoch); that member then learns the new
//! epoch; a reader that saw the newer heads gets `Change::Withholding` naming
//! the remover's device when the copy is restored again.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::Path;

use clientful::{Change, Client, CrdtKind, SpaceSession, Withholding};
use clientful_core::membership::Role;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let p = e.path();
        let dest = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).expect("copy");
        }
    }
}

fn restore(folder: &Path, copy: &Path) {
    std::fs::remove_dir_all(folder).expect("delete storage");
    copy_dir(copy, folder);
}

fn drain(rx: &mut tokio::sync::broadcast::Receiver<Change>) -> Vec<Change> {
    let mut out = Vec::new();
    while let Ok(c) = rx.try_recv() {
        out.push(c);
    }
    out
}

fn withholding_of(changes: &[Change], device: [u8; 32]) -> Vec<Withholding> {
    let mut v: Vec<Withholding> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Withholding {
                device: d, kind, ..
            } if *d == device => Some(*kind),
            _ => None,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

async fn join(admin: &mut SpaceSession, who: &Client, storage: &str) -> SpaceSession {
    let code = admin.create_invite(Role::Writer, true).expect("invite");
    admin.sync().await.expect("sync");
    let mut s = who
        .accept_invite(&code, "team", storage)
        .await
        .expect("accept");
    admin.sync().await.expect("admit");
    s.sync().await.expect("welcome");
    s
}

#[test]
fn repaired_withholding_and_stale_writers_are_events() {
    let tmp = tempfile::tempdir().expect("tmp");
    let folder = tmp.path().join("storage");
    let copy = tmp.path().join("copy");
    let storage = format!("file://{}", folder.display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let alice = Client::init(&tmp.path().join("alice"), "alice").expect("alice");
        let bob = Client::init(&tmp.path().join("bob"), "bob").expect("bob");
        let carol = Client::init(&tmp.path().join("carol"), "carol").expect("carol");
        let mut a = alice.create_space("team", &storage).await.expect("create");
        let notes = a.new_document(CrdtKind::Yjs, "Notes").expect("doc");
        a.edit(&notes, |d| d.insert_text(0, "hello")).expect("edit");
        let mut b = join(&mut a, &bob, &storage).await;
        let mut c = join(&mut a, &carol, &storage).await;
        for _ in 0..2 {
            for s in [&mut a, &mut b, &mut c] {
                s.sync().await.expect("sync");
            }
        }
        assert!(a.members().iter().all(|m| m.settled));

        copy_dir(&folder, &copy);
        a.remove_member(&bob.profile().user_key()).expect("remove");
        let r = a.sync().await.expect("sync");
        assert!(r.repaired.is_empty() && r.withholding.is_empty(), "{r:?}");
        let new_epoch = a.state().current_epoch().expect("epoch");

        restore(&folder, &copy);
        let r = c.sync().await.expect("carol syncs the old copy");
        assert!(r.withholding.is_empty(), "nothing to see for carol: {r:?}");
        assert_ne!(c.state().current_epoch(), Some(new_epoch));
        c.edit(&notes, |d| d.append_text(" carol1")).expect("edit");
        c.sync().await.expect("carol uploads");

        // Alice's sync puts her files back and says so.
        let mut rx = a.subscribe();
        let r = a.sync().await.expect("alice repairs");
        let changes = drain(&mut rx);
        assert_eq!(
            withholding_of(&changes, a.device_key()),
            vec![
                Withholding::HeadWithheld,
                Withholding::HeadRolledBack,
                Withholding::ObjectWithheld
            ],
            "{changes:?}"
        );
        // The old epoch's head rolled back and its key-message carrier gone;
        // the new epoch's head and segments gone.
        assert_eq!(r.repaired.len(), 4, "{r:?}");
        assert!(r.reuploaded >= 3, "{r:?}");
        assert!(
            changes.iter().any(|ch| matches!(ch,
                Change::StaleEpoch { device, envelopes, .. }
                    if *device == c.device_key() && *envelopes >= 1)),
            "{changes:?}"
        );
        assert_eq!(r.stale_writers.len(), 1, "{r:?}");
        let r = a.sync().await.expect("again");
        assert!(
            r.repaired.is_empty() && r.reuploaded == 0,
            "idempotent: {r:?}"
        );

        // Carol learns the new epoch.
        c.sync().await.expect("carol learns the removal");
        assert_eq!(c.state().current_epoch(), Some(new_epoch));

        // Restored again: carol, who saw alice's newer heads, is told.
        restore(&folder, &copy);
        let mut rx = c.subscribe();
        let r = c.sync().await.expect("carol syncs");
        let changes = drain(&mut rx);
        let seen = withholding_of(&changes, a.device_key());
        assert!(
            seen.contains(&Withholding::HeadWithheld)
                && seen.contains(&Withholding::HeadRolledBack),
            "{changes:?}"
        );
        assert!(
            r.withholding.iter().all(|x| x.device == a.device_key()),
            "{r:?}"
        );
        assert_eq!(c.state().current_epoch(), Some(new_epoch));
        assert!(
            !a.sync()
                .await
                .expect("alice repairs again")
                .repaired
                .is_empty()
        );
        let r = c.sync().await.expect("carol");
        assert!(r.withholding.is_empty(), "{r:?}");
    });
}
