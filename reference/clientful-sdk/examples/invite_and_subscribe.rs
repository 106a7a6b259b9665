//! Two users share a space through a folder: Alice invites Bob, Bob subscribes
//! to changes, Alice edits, Bob syncs and is told which document changed.
//!
//! ```sh
//! cargo run -p clientful --example invite_and_subscribe
//! ```

use clientful::{Change, Client, CrdtKind};
use clientful_core::membership::Role;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let storage = format!("file://{}", dir.path().join("storage").display());
    let alice = Client::init(&dir.path().join("alice"), "alice")?;
    let bob = Client::init(&dir.path().join("bob"), "bob")?;

    let mut a = alice.create_space("team", &storage).await?;
    let doc = a.new_document(CrdtKind::Yjs, "Plan")?;
    // The invite code is a secret: send it privately.
    let code = a.create_invite(Role::Writer, true)?;
    a.sync().await?;

    // Bob redeems the invite; Alice's device admits and welcomes him when it syncs.
    let mut b = bob.accept_invite(&code, "team", &storage).await?;
    a.sync().await?;
    b.sync().await?;
    println!("bob can read and write: {}", b.has_access());

    let mut changes = b.subscribe();
    a.edit(&doc, |d| d.append_text("Ship on Friday."))?;
    a.sync().await?;
    b.sync().await?;
    while let Ok(change) = changes.try_recv() {
        if change == Change::Document(doc) {
            println!("bob sees: {}", b.document(&doc)?.text());
        }
    }
    Ok(())
}
