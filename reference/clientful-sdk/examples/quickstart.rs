//! Quickstart: one device creates a space on a local folder, writes a Yjs
//! document with the yrs API and an Automerge document with the automerge API,
//! syncs, and prints both documents.
//!
//! ```sh
//! cargo run -p clientful --example quickstart
//! ```

use automerge::transaction::Transactable;
use clientful::{Client, CrdtKind, EditError};
use yrs::{Text, Transact};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let storage = format!("file://{}", dir.path().join("storage").display());

    // A user with this device as its first device, kept in a home folder.
    let me = Client::init(&dir.path().join("home"), "ada")?;
    // A space on the storage: only ciphertext ever reaches it.
    let mut space = me.create_space("notebook", &storage).await?;

    // A Yjs document, edited with the yrs API.
    let notes = space.new_document(CrdtKind::Yjs, "Notes")?;
    space.edit(&notes, |d| {
        let y = d.yjs().ok_or(EditError::WrongCrdt(CrdtKind::Yjs))?;
        let text = y.text("text");
        let mut txn = y.doc().transact_mut();
        text.insert(&mut txn, 0, "Hello from yrs");
        Ok(())
    })?;

    // An Automerge document, edited with the automerge API.
    let plan = space.new_document(CrdtKind::Automerge, "Plan")?;
    space.edit(&plan, |d| {
        let doc = d
            .automerge()
            .ok_or(EditError::WrongCrdt(CrdtKind::Automerge))?
            .doc_mut();
        doc.put(automerge::ROOT, "status", "draft")?;
        Ok(())
    })?;

    // Upload (and download whatever other devices wrote).
    let report = space.sync().await?;
    println!("synced: {} segments written", report.uploaded);
    println!("notes: {}", space.document(&notes)?.json());
    println!("plan:  {}", space.document(&plan)?.json());
    Ok(())
}
