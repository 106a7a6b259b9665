//! A native member of one broker room, driven line by line: the peer the browser test
//! (`packages/web/test/broker.test.mjs`) talks to. It keeps the room joined with
//! [`RoomClient`] (the same driver the browser runs) and seals everything it sends.
//!
//! ```sh
//! cargo run -p clientful-net --example room_peer -- \
//!   ws://127.0.0.1:7400/v1/ws SPACE_ID EPOCH_ID EPOCH_SECRET DEVICE_SEED [MEMBER_KEY...]
//! ```
//!
//! Arguments are hex: the space id, epoch id and epoch secret (32 bytes each) from which
//! the room credentials are derived (BRK-11), this device's signing-key seed, and the
//! public keys of the other members whose ephemeral messages are accepted (BRK-15).
//!
//! With `--doc` first, it runs a document replica over the room instead ([`DocClient`]):
//!
//! ```sh
//! room_peer --doc URL SPACE_ID DOC_ID EPOCH_ID EPOCH_SECRET DEVICE_SEED yjs|automerge SIGNER...
//! ```
//!
//! where the signers are every member's device key in device-index order (DOC-19); its
//! commands are `ins TEXT` (insert TEXT at the start of the text), `state` (answered
//! `state JOINS DIGEST JSON`) and `quit`.
//!
//! Standard input: `pub TEXT` publishes TEXT as a sealed room message, `eph TEXT`
//! sends it as a sealed, signed ephemeral message, `quit` leaves. Standard output, one
//! line each: `device KEY` first, then `joined resumed=BOOL`, `deliver TEXT`,
//! `ephemeral TEXT`, `disconnected`, `error CODE`, `bad WHY`.

use std::io::Write;
use std::sync::Arc;

use clientful_core::EpochKey;
use clientful_core::SigningKey;
use clientful_core::room::{EphemeralCounter, EphemeralReceiver, RoomCredentials};
use clientful_net::DocClient;
use clientful_net::client::{ClientOptions, Event, RoomClient};
use clientful_net::docsync::DocPeer;
use clientful_net::platform::unix_ms;
use clientful_net::transport::Endpoint;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tokio::io::AsyncBufReadExt;

fn hex32(s: &str) -> anyhow::Result<[u8; 32]> {
    let v = hex::decode(s)?;
    <[u8; 32]>::try_from(v.as_slice()).map_err(|_| anyhow::anyhow!("{s}: not 32 bytes"))
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--doc") {
        return doc(args.get(1..).unwrap_or_default()).await;
    }
    let [url, space, epoch_id, secret, seed, members @ ..] = args.as_slice() else {
        anyhow::bail!(
            "usage: room_peer URL SPACE_ID EPOCH_ID EPOCH_SECRET DEVICE_SEED [MEMBER_KEY...]"
        );
    };
    let epoch = EpochKey::new(hex32(epoch_id)?, hex32(secret)?);
    let room = Arc::new(RoomCredentials::derive(&hex32(space)?, &epoch)?);
    let device = SigningKey::from_seed(&hex32(seed)?);
    let mut members = members
        .iter()
        .map(|m| hex32(m))
        .collect::<anyhow::Result<Vec<_>>>()?;
    members.push(device.public_bytes());
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
    let mut rng = ChaCha20Rng::from_seed(seed);
    say(&format!("device {}", hex::encode(device.public_bytes())));

    let options = ClientOptions {
        backoff_base: std::time::Duration::from_millis(50),
        backoff_max: std::time::Duration::from_millis(500),
        ..ClientOptions::default()
    };
    let (client, mut events) =
        RoomClient::spawn(Endpoint::WebSocket(url.clone()), room.clone(), options);
    let mut counter = EphemeralCounter::new();
    let mut receiver = EphemeralReceiver::new();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                let (cmd, text) = line.split_once(' ').unwrap_or((line.as_str(), ""));
                match cmd {
                    "pub" => client.publish(room.seal_message(&mut rng, text.as_bytes())?).await,
                    "eph" => {
                        let now = unix_ms();
                        let sealed = room.seal_ephemeral(&mut rng, &device, counter.next(now), now, text.as_bytes())?;
                        client.ephemeral(sealed).await;
                    }
                    "quit" => break,
                    _ => say(&format!("bad command {cmd}")),
                }
            }
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                match ev {
                    Event::Joined { resumed } => say(&format!("joined resumed={resumed}")),
                    Event::Deliver(sealed) => match room.open_message(&sealed) {
                        Ok(plain) => say(&format!("deliver {}", String::from_utf8_lossy(&plain))),
                        Err(e) => say(&format!("bad {e}")),
                    },
                    Event::Ephemeral(sealed) => match receiver.open(&room, &members, &sealed, unix_ms()) {
                        Ok(e) => say(&format!("ephemeral {}", String::from_utf8_lossy(&e.body))),
                        Err(e) => say(&format!("bad {e}")),
                    },
                    Event::Disconnected => say("disconnected"),
                    Event::Error(code) => say(&format!("error {code}")),
                    _ => say("refused"),
                }
            }
        }
    }
    client.close().await;
    Ok(())
}

async fn doc(args: &[String]) -> anyhow::Result<()> {
    use clientful_doc::crdt::YjsSchema;
    use clientful_doc::replica::{CrdtKind, Replica, ReplicaConfig};
    let [
        url,
        space,
        doc_id,
        epoch_id,
        secret,
        seed,
        crdt,
        signers @ ..,
    ] = args
    else {
        anyhow::bail!(
            "usage: room_peer --doc URL SPACE_ID DOC_ID EPOCH_ID EPOCH_SECRET DEVICE_SEED CRDT SIGNER..."
        );
    };
    let crdt = match crdt.as_str() {
        "yjs" => CrdtKind::Yjs,
        "automerge" => CrdtKind::Automerge,
        other => anyhow::bail!("unknown CRDT {other}"),
    };
    let space_id = hex32(space)?;
    let epoch = EpochKey::new(hex32(epoch_id)?, hex32(secret)?);
    let room = Arc::new(RoomCredentials::derive(&space_id, &epoch)?);
    let mut seeds = [0u8; 64];
    getrandom::fill(&mut seeds).map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
    let (rng_seed, peer_seed) = seeds.split_at(32);
    let replica = Replica::new(ReplicaConfig {
        space_id,
        doc_id: hex32(doc_id)?,
        device: SigningKey::from_seed(&hex32(seed)?),
        epoch,
        old_epochs: Vec::new(),
        signers: signers
            .iter()
            .map(|s| hex32(s))
            .collect::<anyhow::Result<Vec<_>>>()?,
        crdt,
        yjs_schema: YjsSchema::default(),
        rng_seed: rng_seed.try_into()?,
    });
    let options = ClientOptions {
        backoff_base: std::time::Duration::from_millis(50),
        backoff_max: std::time::Duration::from_millis(500),
        ..ClientOptions::default()
    };
    let client = DocClient::spawn(
        Endpoint::WebSocket(url.clone()),
        DocPeer::new(replica, room, peer_seed.try_into()?),
        options,
    );
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let (cmd, text) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        match cmd {
            "ins" => {
                client
                    .edit(|r| clientful_doc::text::insert_text(r, 0, text))
                    .await?
            }
            "state" => {
                let (digest, json) = client
                    .with(|p| {
                        let json = p.replica().materialize().to_canonical_string();
                        (hex::encode(p.replica().state_digest()), json)
                    })
                    .ok_or_else(|| anyhow::anyhow!("peer lock poisoned"))?;
                say(&format!("state {} {digest} {json}", client.joins()));
            }
            "quit" => break,
            _ => say(&format!("bad command {cmd}")),
        }
    }
    client.close().await;
    Ok(())
}
