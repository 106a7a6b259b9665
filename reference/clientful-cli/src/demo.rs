//! `clientful demo`: the whole story on embedded defaults, in one process.
//!
//! An in-process broker on loopback and a local-folder storage; two users
//! (alice, bob) and three devices (alice's laptop and phone, bob's laptop): a
//! space, an invite, a device link, concurrent edits of a Yjs and an Automerge
//! document live over the broker while the phone is offline, a photo stored as
//! a file, the phone's reconnection and convergence (digests printed), bob's
//! removal with a key rotation and the proof that he reads nothing written
//! afterwards, and a scan of the storage and of every broker frame for
//! plaintext. Every step goes through the same SDK an app uses.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clientful::live::Live;
use clientful::space::SpaceSession;
use clientful::{Client, CrdtKind};
use clientful_core::membership::Role;
use clientful_net::transport::Endpoint;
use clientful_storage::BlobStore;

struct Printer {
    step: usize,
}

impl Printer {
    fn step(&mut self, title: &str) {
        self.step += 1;
        println!("\n== {}. {title}", self.step);
    }
}

fn say(line: impl AsRef<str>) {
    println!("   {}", line.as_ref());
}

/// The first `n` characters.
fn head(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// The last `n` characters.
fn tail(s: &str, n: usize) -> String {
    let k = s.chars().count().saturating_sub(n);
    s.chars().skip(k).collect()
}

fn short(b: &[u8]) -> String {
    hex::encode(b.get(..6).unwrap_or(b))
}

/// Pumps the live sessions until `done` holds or `timeout` passes.
async fn pump(
    peers: &mut [(&mut Live, &mut SpaceSession)],
    timeout: Duration,
    mut done: impl FnMut(&mut [(&mut Live, &mut SpaceSession)]) -> bool,
) -> Result<bool> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        for (live, sp) in peers.iter_mut() {
            live.publish(sp).await?;
        }
        for (live, sp) in peers.iter_mut() {
            live.poll(sp, Duration::from_millis(30)).await?;
        }
        if done(peers) {
            return Ok(true);
        }
        if tokio::time::Instant::now() > deadline {
            return Ok(false);
        }
    }
}

fn text_of(sp: &mut SpaceSession, doc: &[u8; 32]) -> String {
    sp.document(doc).map(|d| d.text()).unwrap_or_default()
}

/// A deterministic stand-in for a photo: a small binary file with a JPEG header.
fn photo(path: &Path) -> Result<u64> {
    let mut bytes = vec![0xff, 0xd8, 0xff, 0xe0];
    let mut x: u32 = 0x1234_5678;
    for _ in 0..(600 * 1024) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        bytes.push((x >> 24) as u8);
    }
    bytes.extend_from_slice(&[0xff, 0xd9]);
    std::fs::write(path, &bytes)?;
    Ok(bytes.len() as u64)
}

/// The embedded broker's configuration: WebSocket and QUIC on loopback, free
/// ports, no NATS; `capture` records every frame (the plaintext scan).
pub(crate) fn loopback_broker(
    capture: Option<PathBuf>,
) -> Result<clientful_broker::server::Config> {
    Ok(clientful_broker::server::Config {
        ws_listen: "127.0.0.1:0".parse()?,
        quic_listen: "127.0.0.1:0".parse()?,
        cert: None,
        key: None,
        ws_tls: None,
        limits: clientful_broker::state::Limits::default(),
        send_queue: 1024,
        send_queue_bytes: 8 * 1024 * 1024,
        admission: clientful_broker::server::guard::AdmissionLimits::default(),
        nats_url: None,
        nats_storage: clientful_broker::server::bus::BacklogStorage::default(),
        nats_backlog_max_age: Duration::from_secs(86_400),
        capture,
        shutdown_grace: Duration::from_millis(200),
    })
}

/// The demo's folder: `dir` (new or empty), else a temporary one, removed when
/// the returned guard drops.
pub(crate) fn workdir(dir: Option<PathBuf>) -> Result<(Option<tempfile::TempDir>, PathBuf)> {
    Ok(match dir {
        Some(d) => {
            if d.exists() && std::fs::read_dir(&d)?.next().is_some() {
                bail!("{} is not empty; give an empty or new folder", d.display());
            }
            std::fs::create_dir_all(&d)?;
            (None, d)
        }
        None => {
            let t = tempfile::tempdir()?;
            let p = t.path().to_owned();
            (Some(t), p)
        }
    })
}

pub fn run(dir: Option<PathBuf>) -> Result<ExitCode> {
    let (_tmp, root) = workdir(dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(story(&root))
}

async fn story(root: &Path) -> Result<ExitCode> {
    let mut p = Printer { step: 0 };
    let storage_dir = root.join("storage");
    let storage = format!("file://{}", storage_dir.display());
    let capture = root.join("broker-frames.bin");

    p.step("Start an in-process broker on loopback and use a local folder as storage");
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = loopback_broker(Some(capture.clone()))?;
    let broker = tokio::spawn(clientful_broker::server::run_until(
        config,
        async move {
            let _ = stop_rx.await;
        },
        move |b| {
            let _ = ready_tx.send(b);
        },
    ));
    let bound = ready_rx.await.context("the broker did not start")?;
    let ws = Endpoint::WebSocket(format!("ws://{}/v1/ws", bound.ws));
    say(format!(
        "broker: ws://{}/v1/ws and quic://{}",
        bound.ws, bound.quic
    ));
    say(format!("storage: {}", storage_dir.display()));

    p.step("Alice creates her identity and a space; she writes a Yjs and an Automerge document");
    let alice = Client::init(&root.join("alice-laptop"), "alice")?;
    let mut a = alice.create_space("team", &storage).await?;
    say(format!("space {}", hex::encode(a.space_id())));
    let notes = a.new_document(CrdtKind::Yjs, "Meeting notes")?;
    a.edit(&notes, |d| d.insert_text(0, "Agenda: launch plan."))?;
    let tasks = a.new_document(CrdtKind::Automerge, "Tasks")?;
    a.edit(&tasks, |d| {
        d.set_json("todo", &serde_json::json!(["book venue"]))?;
        d.insert_text(0, "Tasks for the launch.")
    })?;
    a.sync().await?;
    say(format!("Yjs document {} \"Meeting notes\"", short(&notes)));
    say(format!("Automerge document {} \"Tasks\"", short(&tasks)));
    let done = a.compact().await?;
    say(format!(
        "compacted: one snapshot and {} checkpoint(s), so new devices show documents at once",
        done.checkpoints
    ));

    p.step("Alice invites Bob; Bob accepts; Alice's device admits and welcomes him");
    let bob = Client::init(&root.join("bob-laptop"), "bob")?;
    let code = a.create_invite(Role::Writer, true)?;
    a.sync().await?;
    say(format!("invite code: {}…", head(&code, 24)));
    let mut b = bob.accept_invite(&code, "team", &storage).await?;
    say(format!(
        "bob redeemed it; access before admission: {}",
        b.has_access()
    ));
    a.sync().await?;
    let mut changes = b.subscribe();
    let r = b.sync().await?;
    say(format!(
        "bob synced: access {}, {} epoch key(s)",
        r.has_access, r.epochs_held
    ));
    if !r.has_access {
        bail!("bob was not welcomed");
    }
    let mut previews = 0;
    while let Ok(c) = changes.try_recv() {
        if let clientful::Change::Preview { doc, json } = c {
            previews += 1;
            say(format!(
                "preview of {} from its checkpoint (unverified): {}",
                short(&doc),
                head(&json, 48)
            ));
        }
    }
    if previews != 2 || !r.warnings.is_empty() {
        bail!(
            "bob did not preview both documents cleanly: {previews}, {:?}",
            r.warnings
        );
    }
    say("both checkpoints then matched the envelopes bob verified");
    say(format!("bob reads: \"{}\"", text_of(&mut b, &notes)));

    p.step(
        "Alice adds her phone (her sealed user backup restored on the phone, then a device link)",
    );
    let passphrase = "tangerine ladder quietly folds the map";
    let sealed = alice.profile().backup_sealed(passphrase)?;
    say(format!(
        "backup sealed under a passphrase (Argon2id, 64 MiB): {}…",
        sealed.get(..24).unwrap_or(&sealed)
    ));
    let phone = Client::restore_sealed(&root.join("alice-phone"), &sealed, passphrase)?;
    let link = a.add_device(&phone.profile().device_request()?)?;
    a.sync().await?;
    let mut ph = phone.join_device(&link, "team", &storage).await?;
    say(format!(
        "phone {} joined; access {}; reads \"{}\"",
        short(&phone.profile().device_key()),
        ph.has_access(),
        text_of(&mut ph, &notes)
    ));

    p.step("The phone goes offline; the two laptops edit concurrently, live over the broker");
    let mut la = Live::join(&a, ws.clone())?;
    let mut lb = Live::join(&b, ws.clone())?;
    a.edit(&notes, |d| d.append_text(" Alice: budget approved."))?;
    b.edit(&notes, |d| d.insert_text(0, "[Bob] "))?;
    b.edit(&tasks, |d| d.set_json("owner", &serde_json::json!("bob")))?;
    ph.edit(&notes, |d| {
        d.append_text(" (phone, offline) Call the printer.")
    })?;
    ph.edit(&tasks, |d| {
        d.set_json("venue", &serde_json::json!({"city": "Lyon", "seats": 120}))
    })?;
    say("alice and bob edit the notes at the same time; the phone edits both documents offline");
    let ok = pump(
        &mut [(&mut la, &mut a), (&mut lb, &mut b)],
        Duration::from_secs(15),
        |peers| {
            let [(_, x), (_, y)] = peers else {
                return false;
            };
            let (tx, ty) = (text_of(x, &notes), text_of(y, &notes));
            tx == ty && tx.contains("[Bob]") && tx.contains("budget")
        },
    )
    .await?;
    if !ok {
        bail!("the laptops did not converge over the broker");
    }
    say(format!(
        "both laptops now read: \"{}\"",
        text_of(&mut a, &notes)
    ));

    p.step("Bob attaches a photo to the tasks: a file, chunked and encrypted in storage");
    let photo_path = root.join("photo.jpg");
    let size = photo(&photo_path)?;
    let file_ref = b.put_file(&photo_path, "image/jpeg", |_| {}).await?;
    b.edit(&tasks, |d| {
        d.set_json(
            "photo",
            &serde_json::json!({"file": file_ref, "type": "image/jpeg"}),
        )
    })?;
    b.sync().await?;
    say(format!(
        "stored {size} bytes as file {}…",
        head(&file_ref, 16)
    ));

    p.step("The phone reconnects; everyone syncs; the digests prove convergence");
    ph.sync().await?;
    let mut lp = Live::join(&ph, ws.clone())?;
    for sp in [&mut a, &mut b] {
        sp.sync().await?;
    }
    pump(
        &mut [(&mut la, &mut a), (&mut lb, &mut b), (&mut lp, &mut ph)],
        Duration::from_secs(3),
        |_| false,
    )
    .await?;
    for sp in [&mut a, &mut b, &mut ph] {
        sp.sync().await?;
    }
    let mut digests = Vec::new();
    for (who, sp) in [
        ("alice-laptop", &mut a),
        ("bob-laptop", &mut b),
        ("alice-phone", &mut ph),
    ] {
        let n = sp.document(&notes)?.state_digest();
        let t = sp.document(&tasks)?.state_digest();
        say(format!(
            "{who:<13} notes {}…  tasks {}…",
            head(&n, 16),
            head(&t, 16)
        ));
        digests.push((n, t));
    }
    if digests.windows(2).any(|w| w.first() != w.get(1)) {
        bail!("the devices did not converge");
    }
    say(format!("notes: \"{}\"", text_of(&mut ph, &notes)));
    say(format!("tasks: {}", ph.document(&tasks)?.json()));
    let back = root.join("photo-from-phone.jpg");
    let media = ph.get_file(&file_ref, &back, |_, _| {}).await?;
    if std::fs::read(&back)? != std::fs::read(&photo_path)? {
        bail!("the photo read back differs");
    }
    say(format!(
        "the phone fetched the photo ({media}), byte for byte equal"
    ));

    p.step("Alice removes Bob: a key rotation that excludes his device");
    let bob_user = b.membership().identity().user;
    a.remove_member(&bob_user)?;
    a.edit(&notes, |d| d.append_text(" Confidential: new supplier."))?;
    let secret_photo = root.join("after.jpg");
    std::fs::write(&secret_photo, b"written after bob's removal")?;
    let after_ref = a.put_file(&secret_photo, "image/jpeg", |_| {}).await?;
    a.sync().await?;
    ph.sync().await?;
    let r = b.sync().await?;
    say(format!(
        "bob synced: access {}, {} newer epoch(s) not shared with him",
        r.has_access, r.locked_out
    ));
    let bob_text = text_of(&mut b, &notes);
    let phone_text = text_of(&mut ph, &notes);
    say(format!("the phone reads: \"…{}\"", tail(&phone_text, 30)));
    say(format!("bob reads:       \"…{}\"", tail(&bob_text, 30)));
    if bob_text.contains("Confidential") || !phone_text.contains("Confidential") {
        bail!("the removal did not cut bob off");
    }
    match b
        .get_file(&after_ref, &root.join("bob-try.jpg"), |_, _| {})
        .await
    {
        Ok(_) => bail!("bob read a file written after his removal"),
        Err(e) => say(format!("bob fetching the new file: {e}")),
    }
    let new_epoch = a
        .membership()
        .current_epoch()
        .context("alice holds the new epoch")?;
    let new_dir = clientful_storage::layout::EpochStorage::derive(a.space_id(), &new_epoch)?
        .dir()
        .to_owned();
    let opened = count_openable(&mut b, &new_dir, &storage_dir).await?;
    say(format!(
        "bob's keys open {} of the {} storage objects written under the new epoch",
        opened.0, opened.1
    ));
    if opened.0 != 0 || opened.1 == 0 {
        bail!("bob could open objects of the new epoch");
    }

    p.step("What the storage and the broker saw: ciphertext only");
    let mut files = 0usize;
    let mut bytes = 0u64;
    let listing = clientful_storage::OpendalStore::fs(&storage_dir)?
        .list("")
        .await?;
    for (i, path) in listing.iter().enumerate() {
        let len = std::fs::metadata(storage_dir.join(path))?.len();
        files += 1;
        bytes += len;
        if i < 6 {
            say(format!("{path}  ({len} bytes)"));
        }
    }
    say(format!("… {files} files, {bytes} bytes in all"));
    let needles: Vec<Vec<u8>> = [
        "Agenda",
        "budget",
        "Meeting notes",
        "Tasks",
        "printer",
        "Confidential",
        "alice",
        "Lyon",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    // Needles of at least 4 bytes: a 3-byte string turns up by chance in
    // half a megabyte of ciphertext. Names live only on the devices anyway.
    .chain([
        alice.profile().user_key().to_vec(),
        bob.profile().user_key().to_vec(),
        hex::encode(alice.profile().user_key()).into_bytes(),
        hex::encode(bob.profile().user_key()).into_bytes(),
    ])
    .collect();
    let mut hits = Vec::new();
    for path in &listing {
        let data = std::fs::read(storage_dir.join(path))?;
        for n in &needles {
            if data.windows(n.len()).any(|w| w == n.as_slice()) {
                hits.push(format!("storage {path}"));
            }
        }
    }
    let _ = stop_tx.send(());
    let _ = broker.await;
    let frames = std::fs::read(&capture).unwrap_or_default();
    for n in &needles {
        if frames.windows(n.len()).any(|w| w == n.as_slice()) {
            hits.push("broker frames".into());
        }
    }
    say(format!(
        "searched every stored file and {} bytes of broker frames for document text, titles, names and user keys: {} found",
        frames.len(),
        hits.len()
    ));
    if !hits.is_empty() {
        bail!("plaintext found: {hits:?}");
    }
    println!("\ndemo complete: 2 users, 3 devices, converged, removal enforced, ciphertext only.");
    Ok(ExitCode::SUCCESS)
}

/// Tries every key `sp` holds on every object stored in `dir` (the directory
/// of an epoch `sp` was not given): `(opened, total)`.
async fn count_openable(
    sp: &mut SpaceSession,
    dir: &str,
    storage_dir: &Path,
) -> Result<(usize, usize)> {
    use clientful_storage::layout::EpochStorage;
    use clientful_storage::object::{Kind, open_lobby_object};
    let store = clientful_storage::OpendalStore::fs(storage_dir)?;
    let mut total = 0;
    let mut opened = 0;
    for path in store.list(&format!("{dir}/")).await? {
        total += 1;
        let data = store.get(&path).await?.unwrap_or_default();
        let mut ok = false;
        for k in sp.membership().epoch_chain() {
            let Ok(es) = EpochStorage::derive(sp.space_id(), &k) else {
                continue;
            };
            for kind in [Kind::Head, Kind::Segment, Kind::Snapshot, Kind::File] {
                ok |= open_lobby_object(&es, kind, &data).is_ok();
            }
        }
        opened += usize::from(ok);
    }
    Ok((opened, total))
}
