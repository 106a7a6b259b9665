//! Live editing over a broker: two devices of one space join the room of its
//! current epoch and see each other's edits within milliseconds.
//!
//! Start a broker first (`cargo run -p clientful-cli -- broker`), then:
//!
//! ```sh
//! cargo run -p clientful --example live -- ws://127.0.0.1:7400/v1/ws
//! ```

use std::time::Duration;

use clientful::live::Live;
use clientful::{Client, CrdtKind};
use clientful_core::membership::Role;
use clientful_net::transport::Endpoint;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:7400/v1/ws".into());
    let dir = tempfile::tempdir()?;
    let storage = format!("file://{}", dir.path().join("storage").display());
    let alice = Client::init(&dir.path().join("alice"), "alice")?;
    let bob = Client::init(&dir.path().join("bob"), "bob")?;
    let mut a = alice.create_space("team", &storage).await?;
    let doc = a.new_document(CrdtKind::Yjs, "Live")?;
    let code = a.create_invite(Role::Writer, true)?;
    a.sync().await?;
    let mut b = bob.accept_invite(&code, "team", &storage).await?;
    a.sync().await?;
    b.sync().await?;

    let mut la = Live::join(&a, Endpoint::WebSocket(url.clone()))?;
    let mut lb = Live::join(&b, Endpoint::WebSocket(url))?;
    a.edit(&doc, |d| d.append_text("typed by alice"))?;
    for _ in 0..100 {
        la.publish(&mut a).await?;
        la.poll(&mut a, Duration::from_millis(20)).await?;
        lb.poll(&mut b, Duration::from_millis(20)).await?;
        if b.document(&doc)?.text() == "typed by alice" {
            println!("bob sees alice's edit live");
            return Ok(());
        }
    }
    Err("no edit arrived: is the broker running?".into())
}
