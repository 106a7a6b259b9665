//! The user-facing commands: identity, spaces, invites, devices, documents,
//! files, sync and watch, export, inspect and doctor. Each command opens the
//! client's home folder, does one thing, and prints what it did; errors are one
//! line and leave the stores as they were (every write is atomic).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use clientful::space::SpaceSession;
use clientful::{Client, CrdtKind};
use clientful_core::membership::Role;
use clientful_net::transport::Endpoint;

use crate::passphrase;
use crate::settings::Settings;

/// Recovery shares (spec §5.6).
pub mod attest;
pub mod jwks_cache;
pub mod recovery;

/// `identity …`
#[derive(Subcommand)]
pub enum IdentityAction {
    /// Create a new user with this device as its first device.
    Create {
        /// Your display name (kept on this device only).
        #[arg(long)]
        name: String,
    },
    /// Show the user key, this device's key and id.
    Show,
    /// Write a backup of the user key, sealed under a passphrase (Argon2id and
    /// XChaCha20-Poly1305, spec §5.5). The passphrase is asked for twice on a
    /// terminal, or read from --passphrase-file or CLIENTFUL_BACKUP_PASSPHRASE.
    Backup {
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
        /// Read the passphrase from the first line of this file.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// Write the user key in the clear instead (whoever copies the file is
        /// you): only if you mean it.
        #[arg(long, conflicts_with = "passphrase_file")]
        unsealed: bool,
    },
    /// Rotate the user key (spec §5.7): a new user key follows the old one in
    /// every space of this device; your other devices are excluded and come
    /// back with `devices add` from this one. Old backups and recovery sets then
    /// restore a key no space accepts: make new ones (`--backup-out` writes the
    /// new key's sealed backup at once).
    Rotate {
        /// Write the new user key's sealed backup here (the passphrase is asked
        /// for, or read from --passphrase-file or CLIENTFUL_BACKUP_PASSPHRASE).
        #[arg(long)]
        backup_out: Option<PathBuf>,
        /// Read the backup passphrase from the first line of this file.
        #[arg(long, requires = "backup_out")]
        passphrase_file: Option<PathBuf>,
    },
    /// Restore a user from a backup as a new device (then add it from an existing
    /// device with `devices add`). A sealed backup asks for its passphrase.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// Read the passphrase from the first line of this file.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Attest that an account you already have (OpenID Connect, did:web, Ethereum) is
    /// yours, in a space (spec §14): members verify it offline. Never required.
    Attest {
        #[command(subcommand)]
        action: attest::AttestAction,
    },
}

/// `space …`
#[derive(Subcommand)]
pub enum SpaceAction {
    /// Create a space on a storage; you are its first admin.
    Create {
        /// Local name of the space.
        name: String,
        /// Storage URL (file://, s3://, webdav://).
        #[arg(long)]
        storage: Option<String>,
    },
    /// List the spaces of this device.
    List,
    /// List the members of a space.
    Members,
    /// Remove a member (by user key prefix); rotates the keys so they read nothing new.
    Remove {
        /// User key (hex prefix).
        user: String,
    },
    /// Sync, then replace this device's segments with one snapshot and write a
    /// checkpoint of each document, so new devices show documents at once.
    Compact,
    /// Rebuild this device's store of the space from storage, when it is damaged,
    /// missing or empty: the old file is moved aside (with any edits not yet
    /// synced), the keys it still holds are carried over, and the space syncs.
    /// This is also how to start over on purpose.
    Rebuild,
    /// List the attestations of the space's members (spec §14), each verified:
    /// OIDC ones against the keys of the --issuer URLs (fetched now and kept in
    /// the home folder; an unreachable issuer's cached keys are used, with a
    /// notice) and --audience, Sign-In with Ethereum ones against --siwe-domain
    /// and --siwe-chain.
    Attestations {
        /// Trusted OpenID issuer URL (repeat for several).
        #[arg(long = "issuer")]
        issuers: Vec<String>,
        /// Accepted audience (client id; repeat for several).
        #[arg(long = "audience")]
        audiences: Vec<String>,
        /// Accepted SIWE domain (repeat for several).
        #[arg(long = "siwe-domain")]
        siwe_domains: Vec<String>,
        /// Accepted SIWE chain id (repeat for several).
        #[arg(long = "siwe-chain")]
        siwe_chains: Vec<u64>,
        /// Accepted WebAuthn (passkey) origin, e.g. `https://app.example.com`
        /// (repeat for several).
        #[arg(long = "webauthn-origin")]
        webauthn_origins: Vec<String>,
        /// Accepted WebAuthn relying-party id, e.g. `app.example.com` (repeat for
        /// several).
        #[arg(long = "webauthn-rp-id")]
        webauthn_rp_ids: Vec<String>,
        /// Allow plain http to a loopback issuer (localhost, 127.0.0.1): tests.
        #[arg(long)]
        allow_http_loopback: bool,
        /// Verify OIDC attestations with the issuers' keys cached by an earlier
        /// run (`attest oidc` or `space attestations`), without fetching them.
        #[arg(long)]
        offline: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Reader,
    Writer,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Reader => Role::Reader,
            RoleArg::Writer => Role::Writer,
            RoleArg::Admin => Role::Admin,
        }
    }
}

/// `invite …`
#[derive(Subcommand)]
pub enum InviteAction {
    /// Create an invite; prints the code to send (a secret).
    Create {
        /// Role granted.
        #[arg(long, value_enum, default_value = "writer")]
        role: RoleArg,
        /// Allow more than one redemption.
        #[arg(long)]
        reusable: bool,
    },
    /// Accept an invite code: join as a writer once an admin's device syncs.
    Accept {
        /// The invite code.
        code: String,
        /// Local name for the space.
        #[arg(long, default_value = "shared")]
        name: String,
        /// Storage URL of the space.
        #[arg(long)]
        storage: Option<String>,
    },
    /// List the space's invites: key, role, use, state, admissions.
    List,
    /// Revoke an invite by (a prefix of) its key: nobody is admitted with it
    /// afterwards.
    Revoke {
        /// Invite key prefix (from `invite list`).
        key: String,
    },
    /// List redemptions waiting for an admin.
    Pending,
    /// Admit a waiting redemption by (a prefix of) its id (from `invite pending`).
    Admit {
        /// Redemption id prefix.
        redemption: String,
    },
    /// Whether redemptions wait for `invite admit` (on) or are admitted on the
    /// next sync of an admin's device (off, the default).
    Confirm {
        /// on or off.
        #[arg(value_parser = ["on", "off"])]
        mode: String,
    },
}

/// `devices …`
#[derive(Subcommand)]
pub enum DevicesAction {
    /// On a new device: print its request code, for `devices add` on a device
    /// that is already a member.
    Request,
    /// Add a device of yours from its request code; prints the link code for it.
    Add {
        /// The new device's request code.
        request: String,
    },
    /// On the new device: join the space with the link code.
    Join {
        /// The link code.
        code: String,
        /// Local name for the space.
        #[arg(long, default_value = "shared")]
        name: String,
        /// Storage URL of the space.
        #[arg(long)]
        storage: Option<String>,
    },
    /// List the active devices.
    List,
    /// Revoke a device (by id prefix); rotates the keys.
    Revoke {
        /// Device id (hex prefix).
        device: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum CrdtArg {
    Yjs,
    Automerge,
}

/// `doc …`
#[derive(Subcommand)]
pub enum DocAction {
    /// Create a document.
    New {
        /// The CRDT.
        #[arg(long, value_enum, default_value = "yjs")]
        crdt: CrdtArg,
        /// Title (stored encrypted in the document).
        #[arg(long, default_value = "Untitled")]
        title: String,
    },
    /// List documents.
    List,
    /// Edit a document's text or values.
    Edit(EditArgs),
    /// Print a document (JSON, or `--text` for its text).
    Print {
        /// Document id (hex prefix).
        doc: String,
        /// Print only the text.
        #[arg(long)]
        text: bool,
    },
    /// Print a document's history: envelopes by author, with verdicts.
    History {
        /// Document id (hex prefix).
        doc: String,
    },
}

/// `doc edit` flags.
#[derive(Args)]
pub struct EditArgs {
    /// Document id (hex prefix).
    pub doc: String,
    /// Append this text.
    #[arg(long)]
    pub append: Option<String>,
    /// Insert this text at `--at`.
    #[arg(long, requires = "at")]
    pub insert: Option<String>,
    /// Delete this many UTF-16 units at `--at`.
    #[arg(long, requires = "at")]
    pub delete: Option<u32>,
    /// Offset (UTF-16 code units).
    #[arg(long)]
    pub at: Option<u32>,
    /// Set a value: `key=<JSON>` (a bare word is taken as a string).
    #[arg(long)]
    pub set: Vec<String>,
}

/// `files …`
#[derive(Subcommand)]
pub enum FilesAction {
    /// Store a file (encrypted, chunked); prints its reference.
    Put {
        /// The file.
        path: PathBuf,
        /// Media type.
        #[arg(long, default_value = "application/octet-stream")]
        media_type: String,
        /// Also record the reference in this document under `--key`.
        #[arg(long, requires = "key")]
        doc: Option<String>,
        /// Key for the reference in the document.
        #[arg(long)]
        key: Option<String>,
    },
    /// Fetch a stored file by reference.
    Get {
        /// The reference `files put` printed.
        reference: String,
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `doctor …` (beyond `compare`).
#[derive(Subcommand)]
pub enum DoctorCapture {
    /// Print digests to compare with another device: per document StateDigest and
    /// HistoryDigest, the membership digest and the key-epoch authenticator.
    Report,
    /// Write a document's diagnostic bundle (ids and counts, no content).
    Capture {
        /// Document id (hex prefix).
        doc: String,
        /// Where to write the bundle.
        #[arg(long)]
        out: PathBuf,
    },
}

fn rt() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn short(b: &[u8]) -> String {
    hex::encode(b.get(..6).unwrap_or(b))
}

/// Progress on stderr when it is a terminal: `label [#####.....] 52% 1.2/2.3 MiB`.
pub struct Progress {
    label: String,
    on: bool,
}

impl Progress {
    pub fn new(label: &str) -> Progress {
        Progress {
            label: label.to_owned(),
            on: std::io::stderr().is_terminal(),
        }
    }

    pub fn update(&self, done: u64, total: u64) {
        if !self.on {
            return;
        }
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let frac = if total == 0 {
            1.0
        } else {
            done as f64 / total as f64
        };
        let filled = (frac * 30.0) as usize;
        eprint!(
            "\r{} [{}{}] {:>3.0}% {:.1}/{:.1} MiB",
            self.label,
            "#".repeat(filled.min(30)),
            ".".repeat(30 - filled.min(30)),
            frac * 100.0,
            mib(done),
            mib(total)
        );
    }

    pub fn done(&self) {
        if self.on {
            eprintln!();
        }
    }
}

/// Parses a broker URL: `ws://host:port/v1/ws`, `wss://host:port/v1/ws` (the
/// system's trusted roots), `wss://host:port/v1/ws?pin=<hex>` (the broker's key
/// pin, as for QUIC: a self-signed certificate works) or
/// `quic://host:port?pin=<hex>`.
pub fn endpoint(url: &str) -> Result<Endpoint> {
    if url.starts_with("ws://") {
        return Ok(Endpoint::WebSocket(url.to_owned()));
    }
    if url.starts_with("wss://") {
        return Ok(match url.split_once("?pin=") {
            Some((base, q)) => Endpoint::SecureWebSocket {
                url: base.to_owned(),
                trust: clientful_net::TlsTrust::Pin(parse_pin(q)?),
            },
            None => Endpoint::WebSocket(url.to_owned()),
        });
    }
    if let Some(rest) = url.strip_prefix("quic://") {
        let (addr, q) = rest
            .split_once("?pin=")
            .context("a QUIC broker URL needs `?pin=<hex>` (the key hash the broker printed)")?;
        let pin = parse_pin(q)?;
        let addr = addr
            .parse()
            .with_context(|| format!("`{addr}` is not host:port"))?;
        return Ok(Endpoint::Quic { addr, pin });
    }
    bail!(
        "broker URL `{url}`: use ws://host:port/v1/ws, wss://host:port/v1/ws[?pin=<hex>] or quic://host:port?pin=<hex>"
    )
}

/// A key pin: 64 hex digits (the `spki-sha256=` the broker printed).
fn parse_pin(q: &str) -> Result<[u8; 32]> {
    hex::decode(q)
        .ok()
        .and_then(|v| v.try_into().ok())
        .context("the pin must be 64 hex digits")
}

fn client(s: &Settings) -> Result<Client> {
    Ok(Client::open(s.home())?)
}

/// The space the selector (or the only space) names.
fn select_space(s: &Settings, c: &Client, flag: Option<String>) -> Result<String> {
    Ok(match s.space(flag) {
        Some(sel) => sel,
        None => {
            let all = c.spaces()?;
            match all.as_slice() {
                [one] => hex::encode(one.space_id),
                [] => bail!(
                    "this device has no space yet: `space create`, `invite accept` or `devices join`"
                ),
                _ => bail!(
                    "this device has {} spaces: say which with --space NAME",
                    all.len()
                ),
            }
        }
    })
}

async fn open_space(s: &Settings, c: &Client, flag: Option<String>) -> Result<SpaceSession> {
    let sel = select_space(s, c, flag)?;
    c.open_space(&sel).await.map_err(|e| store_hint(e, &sel))
}

/// A damaged, missing or empty device store: the error names the file; add the
/// way out.
fn store_hint(e: clientful::ClientError, sel: &str) -> anyhow::Error {
    use clientful_storage::StorageError;
    match &e {
        clientful::ClientError::Storage(
            StorageError::LocalCorrupt { .. } | StorageError::LocalMissing { .. },
        ) => anyhow::anyhow!(
            "{e}; to rebuild it from storage run `clientful --space {sel} space rebuild` (the old file is kept aside, with any edits not yet synced)"
        ),
        clientful::ClientError::Storage(StorageError::LocalBusy { .. }) => anyhow::anyhow!(
            "{e}: another `clientful` command (a `watch`?) holds it; run this once it ends"
        ),
        _ => e.into(),
    }
}

/// `space rebuild`: moves the store aside, salvages its keys, syncs from storage.
async fn rebuild(s: &Settings, c: &Client, sel: Option<String>) -> Result<()> {
    use clientful_storage::{LocalStore, local::Salvage};
    let sel = select_space(s, c, sel)?;
    let info = c.find_space(&sel)?;
    let dir = c.home().join("spaces").join(hex::encode(info.space_id));
    let path = dir.join("local.redb");
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let aside = dir.join(format!("local.redb.damaged-{stamp}"));
    let mut salvaged = Salvage::default();
    let moved = path.exists();
    if moved {
        std::fs::rename(&path, &aside)
            .with_context(|| format!("moving {} aside", path.display()))?;
        salvaged = LocalStore::salvage(&aside).unwrap_or_default();
    }
    let decodes = |e: &&Vec<u8>| clientful_core::envelope::decode(e).is_ok();
    let unsynced: Vec<Vec<u8>> = salvaged.outbox.iter().filter(decodes).cloned().collect();
    let known: Vec<Vec<u8>> = salvaged.envelopes.iter().filter(decodes).cloned().collect();
    {
        let fresh = LocalStore::open(&path)?;
        for (k, v) in &salvaged.keys {
            fresh.put_key(k, v)?;
        }
        // What the old file still held goes back: signed envelopes, verified
        // again as the space loads them; the unsynced ones are queued again.
        fresh.put_envelopes(&unsynced, true, &[])?;
        fresh.put_envelopes(&known, false, &[])?;
    }
    let mut sp = c.open_space(&sel).await?;
    let r = sp.sync().await?;
    if moved {
        println!(
            "rebuilt the device store of space {} from storage; the old file is kept as {} ({} key(s), {} envelope(s) and {} unsynced edit(s) recovered from it)",
            info.name,
            aside.display(),
            salvaged.keys.len(),
            known.len(),
            unsynced.len()
        );
    } else {
        println!(
            "started a new device store for space {} from storage",
            info.name
        );
    }
    print_sync(&r);
    Ok(())
}

pub fn identity(s: &Settings, action: IdentityAction, sel: Option<String>) -> Result<ExitCode> {
    match action {
        IdentityAction::Attest { action } => return attest::attest(s, action, sel),
        IdentityAction::Create { name } => {
            let c = Client::init(s.home(), &name)?;
            println!("created user {name}");
            print_identity(&c)?;
        }
        IdentityAction::Show => print_identity(&client(s)?)?,
        IdentityAction::Rotate {
            backup_out,
            passphrase_file,
        } => {
            let mut c = client(s)?;
            let passphrase = match &backup_out {
                Some(out) => {
                    if out.exists() {
                        bail!("{} exists; refusing to overwrite it", out.display());
                    }
                    Some(passphrase::read(passphrase_file.as_deref(), true)?)
                }
                None => None,
            };
            let report =
                rt()?.block_on(c.rotate_user_key(passphrase.as_ref().map(|p| p.as_str())))?;
            println!(
                "rotated user key {} -> {}",
                hex::encode(report.old_user_key),
                hex::encode(report.new_user_key)
            );
            for sp in &report.spaces {
                match &sp.outcome {
                    clientful::SpaceRotation::Rotated(op) => {
                        println!("  {}: rotated (operation {})", sp.name, hex::encode(op));
                    }
                    clientful::SpaceRotation::AlreadyRotated => {
                        println!("  {}: already under the new key", sp.name);
                    }
                    _ => println!("  {}: not a member, nothing to rotate", sp.name),
                }
            }
            println!(
                "your other devices are out of these spaces: add them again with `devices add` from this device"
            );
            if let (Some(out), Some(code)) = (&backup_out, &report.backup) {
                write_private(out, format!("{code}\n").as_bytes())?;
                println!(
                    "wrote the new user key's backup to {}, sealed under your passphrase",
                    out.display()
                );
            }
            println!(
                "old backups and recovery sets restore the old key, which no space accepts: replace them (`identity backup`, `recovery setup`)"
            );
            print_identity(&c)?;
        }
        IdentityAction::Backup {
            out,
            passphrase_file,
            unsealed,
        } => {
            let c = client(s)?;
            if out.exists() {
                bail!("{} exists; refusing to overwrite it", out.display());
            }
            if unsealed {
                write_private(&out, c.profile().backup_unsealed().as_bytes())?;
                eprintln!(
                    "warning: {} holds your user key in the clear: whoever copies it is you",
                    out.display()
                );
                println!("wrote the unsealed user backup to {}", out.display());
                return Ok(ExitCode::SUCCESS);
            }
            let passphrase = passphrase::read(passphrase_file.as_deref(), true)?;
            let st = clientful::passphrase::strength(&passphrase, &[c.profile().name.as_str()]);
            if st.is_weak() {
                eprintln!(
                    "warning: this passphrase is weak (strength {} of 4): someone who copies the backup could guess it",
                    st.score
                );
                if let Some(w) = &st.warning {
                    eprintln!("  {w}");
                }
                for tip in &st.suggestions {
                    eprintln!("  {tip}");
                }
            }
            let code = c.profile().backup_sealed(&passphrase)?;
            write_private(&out, format!("{code}\n").as_bytes())?;
            println!(
                "wrote the user backup to {}, sealed under your passphrase (keep both: neither alone restores you)",
                out.display()
            );
        }
        IdentityAction::Restore {
            from,
            passphrase_file,
        } => {
            let text =
                std::fs::read_to_string(&from).with_context(|| format!("{}", from.display()))?;
            let c = if clientful::is_sealed_backup(&text) {
                let owner = clientful::backup_owner(&text)?;
                println!("sealed backup of user {}", hex::encode(owner));
                let passphrase = passphrase::read(passphrase_file.as_deref(), false)?;
                Client::restore_sealed(s.home(), &text, &passphrase).map_err(|e| match &e {
                    clientful::ClientError::Protocol {
                        class: clientful_core::ErrorClass::DecryptFailed,
                        ..
                    } => anyhow::anyhow!("wrong passphrase, or the backup is damaged"),
                    _ => anyhow::Error::new(e),
                })?
            } else {
                Client::restore(s.home(), &text)?
            };
            println!("restored user {} as a new device", c.profile().name);
            print_identity(&c)?;
            println!(
                "next: run `clientful devices request` here, then `devices add <request>` on a device that is a member"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("{}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn print_identity(c: &Client) -> Result<()> {
    let p = c.profile();
    println!("name:      {}", p.name);
    println!("user key:  {}", hex::encode(p.user_key()));
    println!("device:    {}", hex::encode(p.device_key()));
    println!("device id: {}", hex::encode(p.device_id()?));
    Ok(())
}

fn print_sync(r: &clientful::SyncReport) {
    println!(
        "synced: {} new envelopes from {} segments, {} segments written; {} epoch keys held; access: {}",
        r.received,
        r.segments,
        r.uploaded,
        r.epochs_held,
        if r.has_access { "yes" } else { "no" }
    );
    if r.locked_out > 0 {
        println!(
            "note: {} newer key epoch(s) were not shared with this device: it was removed or revoked, and reads nothing written under them",
            r.locked_out
        );
    } else if !r.has_access {
        println!("note: not welcomed yet: an admin's device must sync first");
    }
    for u in &r.admitted {
        println!("admitted {}", hex::encode(u));
    }
    for p in &r.awaiting_admission {
        println!(
            "waiting for admission: redemption {} by {} ({:?}{}); run `invite admit {}`",
            short(&p.redemption),
            short(&p.user),
            p.role,
            if p.rivals > 0 {
                format!(", {} rival(s) for one single-use invite", p.rivals)
            } else {
                String::new()
            },
            short(&p.redemption)
        );
    }
    for (u, id) in &r.refused {
        println!(
            "refused: redemption {} by {} (a used single-use invite, or a closed invite)",
            short(id),
            hex::encode(u)
        );
    }
    if r.expired_invites > 0 {
        println!("revoked {} expired invite(s)", r.expired_invites);
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
    for line in alert_lines(r) {
        println!("{line}");
    }
    for line in evidence_lines(&r.membership_alarms) {
        println!("{line}");
    }
}

/// One line per piece of membership evidence (MEM-27, KEY-7, KEY-22), in
/// full hex so it can be quoted to the other members.
pub fn evidence_lines(alarms: &[clientful::MembershipAlarm]) -> Vec<String> {
    use clientful::MembershipAlarm as A;
    alarms
        .iter()
        .filter_map(|a| {
            if let A::RivalGenesis { op, author } = a {
                Some(format!(
                    "EVIDENCE: rival genesis {} (signed by device key {}): a second CREATE_SPACE for this space id, rejected; this device keeps the genesis it pinned. Whoever signed it holds a device key the creator's user key certified (stolen, revoked or never added): the creator should revoke it and tell the members (MEM-26, MEM-27)",
                    hex::encode(op),
                    hex::encode(author)
                ))
            } else if let A::ForeignWelcome {
                device_id, class, ..
            } = a
            {
                Some(format!(
                    "EVIDENCE: welcome from device {} that was not an active member ({}): its key secrets were dropped unless the membership log vouches for them (KEY-21, KEY-22)",
                    hex::encode(device_id),
                    clientful_core::error::class_name(*class)
                ))
            } else if let A::KeyMismatch {
                epoch_id,
                key_message,
            } = a
            {
                Some(format!(
                    "EVIDENCE: key message {} gave this device a secret that does not match epoch {}: not used (KEY-7)",
                    hex::encode(key_message),
                    hex::encode(epoch_id)
                ))
            } else {
                None
            }
        })
        .collect()
}

/// Exit code of `sync` when storage withheld, rolled back or forked files
/// (spec STO-9, STO-28): the sync itself completed.
pub const EXIT_WITHHOLDING: u8 = 3;

fn alarm_list(alarms: &[clientful::Alarm]) -> String {
    alarms
        .iter()
        .map(|a| {
            format!(
                "{} (device {}, epoch {})",
                a.kind.describe(),
                short(&a.device),
                short(&a.epoch_id)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// One line for what storage withheld of this device's files (and put back),
/// one for what it withheld of others', one per member writing under a
/// replaced epoch.
fn alert_lines(r: &clientful::SyncReport) -> Vec<String> {
    let mut out = Vec::new();
    if !r.repaired.is_empty() {
        out.push(format!(
            "ALERT: storage withheld or rolled back this device's files: {}; uploaded {} file(s) again. Other members should sync now and compare `doctor report` authenticators",
            alarm_list(&r.repaired),
            r.reuploaded
        ));
    }
    if !r.withholding.is_empty() {
        out.push(format!(
            "ALERT: storage withholds, rolls back or forks head manifests: {}. Only a device can put back its own files (it does when it syncs); compare `doctor report` authenticators with the other members",
            alarm_list(&r.withholding)
        ));
    }
    for w in &r.stale_writers {
        out.push(format!(
            "notice: device {} still writes under replaced epoch {} ({} envelope(s)): it has not seen the key rotation yet (offline, or storage withholds it from that device)",
            short(&w.device),
            short(&w.epoch),
            w.envelopes
        ));
    }
    out
}

pub fn space(s: &Settings, action: SpaceAction, sel: Option<String>) -> Result<ExitCode> {
    if let SpaceAction::Attestations {
        issuers,
        audiences,
        siwe_domains,
        siwe_chains,
        webauthn_origins,
        webauthn_rp_ids,
        allow_http_loopback,
        offline,
    } = action
    {
        let trust = attest::Trust {
            issuers,
            audiences,
            siwe: clientful_attest::siwe::SiwePolicy {
                domains: siwe_domains,
                chain_ids: siwe_chains,
            },
            webauthn: clientful_attest::webauthn::WebAuthnPolicy {
                origins: webauthn_origins,
                rp_ids: webauthn_rp_ids,
                require_user_verification: true,
            },
            allow_http_loopback,
            offline,
        };
        return attest::list(s, sel, trust);
    }
    let c = client(s)?;
    rt()?.block_on(async {
        match action {
            SpaceAction::Create { name, storage } => {
                let url = s.storage(storage)?;
                let sp = c.create_space(&name, &url).await?;
                println!(
                    "created space {name} ({}) on {url}",
                    hex::encode(sp.space_id())
                );
            }
            SpaceAction::List => {
                for sp in c.spaces()? {
                    println!("{}  {}  {}", hex::encode(sp.space_id), sp.name, sp.storage);
                }
            }
            SpaceAction::Members => {
                let sp = open_space(s, &c, sel).await?;
                for m in sp.members() {
                    let me = m.user == c.profile().user_key();
                    println!(
                        "{}  {:?}{}{}  devices: {}",
                        hex::encode(m.user),
                        m.role,
                        if m.settled {
                            ""
                        } else {
                            " (addition not settled)"
                        },
                        if me { " (you)" } else { "" },
                        m.devices
                            .iter()
                            .map(|d| short(d))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
            SpaceAction::Remove { user } => {
                let mut sp = open_space(s, &c, sel).await?;
                let u = sp.find_member(&user)?;
                if u == c.profile().user_key() {
                    bail!("refusing to remove yourself");
                }
                sp.remove_member(&u)?;
                println!("removed {} and rotated the keys", hex::encode(u));
                print_sync(&sp.sync().await?);
            }
            SpaceAction::Rebuild => rebuild(s, &c, sel).await?,
            SpaceAction::Attestations { .. } => {}
            SpaceAction::Compact => {
                let mut sp = open_space(s, &c, sel).await?;
                print_sync(&sp.sync().await?);
                let done = sp.compact().await?;
                match done.snapshot {
                    Some(id) => println!(
                        "compacted into snapshot {} with {} checkpoint(s)",
                        &hex::encode(id)[..12],
                        done.checkpoints
                    ),
                    None => bail!("this device holds no key of the space yet; run `sync`"),
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn invite(s: &Settings, action: InviteAction, sel: Option<String>) -> Result<ExitCode> {
    let c = client(s)?;
    rt()?.block_on(async {
        match action {
            InviteAction::Create { role, reusable } => {
                let mut sp = open_space(s, &c, sel).await?;
                let code = sp.create_invite(role.into(), !reusable)?;
                let r = sp.sync().await?;
                println!("{code}");
                eprintln!(
                    "invite created ({}); send the code above privately. The invitee runs `clientful invite accept <code> --storage {}`; then sync here to admit them.",
                    if reusable { "reusable" } else { "single use" },
                    sp.storage_url()
                );
                for w in &r.warnings {
                    eprintln!("warning: {w}");
                }
                for line in alert_lines(&r) {
                    eprintln!("{line}");
                }
            }
            InviteAction::Accept {
                code,
                name,
                storage,
            } => {
                let url = s.storage(storage)?;
                let mut sp = c.accept_invite(&code, &name, &url).await?;
                println!(
                    "redeemed the invite for space {} ({name}); waiting for an admin to admit this device",
                    hex::encode(sp.space_id())
                );
                print_sync(&sp.sync().await?);
            }
            InviteAction::List => {
                let mut sp = open_space(s, &c, sel).await?;
                print_sync(&sp.sync().await?);
                for i in sp.invites() {
                    println!(
                        "{}  {:?}  {}  {}  admitted: {}  waiting: {}{}",
                        hex::encode(i.key),
                        i.role,
                        if i.single_use { "single-use" } else { "reusable" },
                        if i.revoked {
                            "revoked"
                        } else if i.open {
                            "open"
                        } else {
                            "closed"
                        },
                        i.admitted,
                        i.waiting,
                        if i.expires_at_ms > 0 {
                            format!("  expires at {} ms", i.expires_at_ms)
                        } else {
                            String::new()
                        }
                    );
                }
            }
            InviteAction::Revoke { key } => {
                let mut sp = open_space(s, &c, sel).await?;
                sp.sync().await?;
                let k = sp.revoke_invite(&key)?;
                println!("revoked invite {}", hex::encode(k));
                print_sync(&sp.sync().await?);
            }
            InviteAction::Pending => {
                let mut sp = open_space(s, &c, sel).await?;
                print_sync(&sp.sync().await?);
                for p in sp.pending_admissions() {
                    println!(
                        "{}  user {}  {:?}  {}{}",
                        hex::encode(p.redemption),
                        hex::encode(p.user),
                        p.role,
                        if p.admissible { "admissible" } else { "not admissible" },
                        if p.rivals > 0 {
                            format!("  ({} rival(s) for one single-use invite)", p.rivals)
                        } else {
                            String::new()
                        }
                    );
                }
            }
            InviteAction::Admit { redemption } => {
                let mut sp = open_space(s, &c, sel).await?;
                sp.sync().await?;
                let u = sp.admit(&redemption)?;
                println!("admitted {}", hex::encode(u));
                print_sync(&sp.sync().await?);
            }
            InviteAction::Confirm { mode } => {
                let mut sp = open_space(s, &c, sel).await?;
                sp.set_confirm_admissions(mode == "on")?;
                println!(
                    "admissions {}",
                    if mode == "on" {
                        "wait for `invite admit`"
                    } else {
                        "are automatic on sync"
                    }
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn devices(s: &Settings, action: DevicesAction, sel: Option<String>) -> Result<ExitCode> {
    let c = client(s)?;
    rt()?.block_on(async {
        match action {
            DevicesAction::Request => println!("{}", c.profile().device_request()?),
            DevicesAction::Add { request } => {
                let mut sp = open_space(s, &c, sel).await?;
                let link = sp.add_device(&request)?;
                print_sync(&sp.sync().await?);
                println!("{link}");
                eprintln!("device added; on the new device run `clientful devices join <code> --storage {}`", sp.storage_url());
            }
            DevicesAction::Join {
                code,
                name,
                storage,
            } => {
                let url = s.storage(storage)?;
                let mut sp = c.join_device(&code, &name, &url).await?;
                println!("joined space {} ({name})", hex::encode(sp.space_id()));
                print_sync(&sp.sync().await?);
            }
            DevicesAction::List => {
                let sp = open_space(s, &c, sel).await?;
                for m in sp.members() {
                    for d in &m.devices {
                        println!("{}  user {}", hex::encode(d), short(&m.user));
                    }
                }
            }
            DevicesAction::Revoke { device } => {
                let mut sp = open_space(s, &c, sel).await?;
                let id = sp.revoke_device(&device)?;
                println!("revoked device {} and rotated the keys", hex::encode(id));
                print_sync(&sp.sync().await?);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn parse_set(kv: &str) -> Result<(String, serde_json::Value)> {
    let (k, v) = kv
        .split_once('=')
        .with_context(|| format!("`--set {kv}`: use key=value"))?;
    if k.is_empty() {
        bail!("`--set {kv}`: empty key");
    }
    let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.into()));
    Ok((k.to_owned(), value))
}

pub fn doc(s: &Settings, action: DocAction, sel: Option<String>) -> Result<ExitCode> {
    let c = client(s)?;
    rt()?.block_on(async {
        let mut sp = open_space(s, &c, sel).await?;
        match action {
            DocAction::New { crdt, title } => {
                let kind = match crdt {
                    CrdtArg::Yjs => CrdtKind::Yjs,
                    CrdtArg::Automerge => CrdtKind::Automerge,
                };
                let id = sp.new_document(kind, &title)?;
                println!("{}", hex::encode(id));
            }
            DocAction::List => {
                for d in sp.documents()? {
                    let title = match sp.document(&d.id) {
                        Ok(doc) => doc.title(),
                        Err(_) => "(sealed: no key)".into(),
                    };
                    let crdt = match d.crdt {
                        Some(CrdtKind::Yjs) => "yjs",
                        Some(CrdtKind::Automerge) => "automerge",
                        None => "?",
                    };
                    println!(
                        "{}  {crdt:<9}  {:>4} envelopes  {title}",
                        hex::encode(d.id),
                        d.envelopes
                    );
                }
            }
            DocAction::Edit(e) => {
                let id = sp.find_document(&e.doc)?;
                let sets = e
                    .set
                    .iter()
                    .map(|kv| parse_set(kv))
                    .collect::<Result<Vec<_>>>()?;
                if e.append.is_none() && e.insert.is_none() && e.delete.is_none() && sets.is_empty()
                {
                    bail!("nothing to do: give --append, --insert, --delete or --set");
                }
                sp.edit(&id, |d| {
                    if let (Some(n), Some(at)) = (e.delete, e.at) {
                        d.delete_text(at, n)?;
                    }
                    if let (Some(t), Some(at)) = (&e.insert, e.at) {
                        d.insert_text(at, t)?;
                    }
                    if let Some(t) = &e.append {
                        d.append_text(t)?;
                    }
                    for (k, v) in &sets {
                        d.set_json(k, v)?;
                    }
                    Ok(())
                })?;
                println!("edited {} (stored locally; `sync` sends it)", short(&id));
            }
            DocAction::Print { doc, text } => {
                let id = sp.find_document(&doc)?;
                let d = sp.document(&id)?;
                if text {
                    println!("{}", d.text());
                } else {
                    println!("{}", serde_json::to_string_pretty(&d.json())?);
                }
            }
            DocAction::History { doc } => {
                let id = sp.find_document(&doc)?;
                let d = sp.document(&id)?;
                for h in d.history() {
                    println!(
                        "{}  author {}  seq {:>4}  {}",
                        short(&h.id),
                        short(&h.author),
                        h.seq,
                        h.verdict
                    );
                }
                println!("state digest:   {}", d.state_digest());
                println!("history digest: {}", d.history_digest());
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn files(s: &Settings, action: FilesAction, sel: Option<String>) -> Result<ExitCode> {
    let c = client(s)?;
    rt()?.block_on(async {
        let mut sp = open_space(s, &c, sel).await?;
        match action {
            FilesAction::Put {
                path,
                media_type,
                doc,
                key,
            } => {
                let total = std::fs::metadata(&path)
                    .with_context(|| format!("{}", path.display()))?
                    .len();
                let bar = Progress::new(&format!("put {}", path.display()));
                let r = sp
                    .put_file(&path, &media_type, |n| bar.update(n, total))
                    .await;
                bar.done();
                let r = r?;
                if let (Some(d), Some(k)) = (doc, key) {
                    let id = sp.find_document(&d)?;
                    sp.edit(&id, |d| {
                        d.set_json(&k, &serde_json::json!({"file": r, "type": media_type}))
                    })?;
                }
                sp.sync().await?;
                println!("{r}");
            }
            FilesAction::Get { reference, out } => {
                let bar = Progress::new(&format!("get {}", out.display()));
                let r = sp.get_file(&reference, &out, |n, t| bar.update(n, t)).await;
                bar.done();
                let media = r?;
                println!("wrote {} ({media})", out.display());
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn sync(s: &Settings, sel: Option<String>) -> Result<ExitCode> {
    let c = client(s)?;
    rt()?.block_on(async {
        let mut sp = open_space(s, &c, sel).await?;
        let r = sp.sync().await?;
        print_sync(&r);
        // Withholding found (this device's files put back, or others' heads
        // rolled back): the ALERT lines above say what; exit 3 (STO-29).
        if !r.repaired.is_empty() || !r.withholding.is_empty() {
            return Ok(ExitCode::from(EXIT_WITHHOLDING));
        }
        // A partial sync is a failure: the warnings name the storage objects that
        // were skipped (corrupt, withheld, rolled back); say so and exit non-zero.
        if !r.warnings.is_empty() {
            let shown: Vec<&str> = r.warnings.iter().take(5).map(String::as_str).collect();
            let more = r.warnings.len().saturating_sub(shown.len());
            bail!(
                "sync incomplete: {} storage object(s) skipped: {}{}",
                r.warnings.len(),
                shown.join("; "),
                if more > 0 {
                    format!("; and {more} more (listed above)")
                } else {
                    String::new()
                }
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn watch(
    s: &Settings,
    sel: Option<String>,
    broker: Option<String>,
    seconds: Option<u64>,
    interval: u64,
) -> Result<ExitCode> {
    let c = client(s)?;
    let url = s.broker(broker)?;
    let ep = endpoint(&url)?;
    rt()?.block_on(async {
        let mut sp = open_space(s, &c, sel).await?;
        // Reach the broker once first: an unreachable broker or a wrong QUIC pin
        // is an error now, not a silent retry loop.
        match tokio::time::timeout(
            Duration::from_secs(10),
            clientful_net::transport::connect(&ep),
        )
        .await
        {
            Ok(Ok(conn)) => drop(conn),
            Ok(Err(e)) => bail!("broker {url}: cannot connect: {e:#}"),
            Err(_) => bail!("broker {url}: no connection within 10 s"),
        }
        let mut joined = false;
        let until = async move {
            match seconds {
                Some(n) => tokio::time::sleep(Duration::from_secs(n)).await,
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        clientful::live::run(
            &mut sp,
            ep,
            Duration::from_secs(interval.max(1)),
            until,
            |ev| {
                use clientful::live::LiveEvent;
                match ev {
                    LiveEvent::Joined { room } => {
                        joined = true;
                        println!("joined room {room}");
                    }
                    LiveEvent::Received(n) => println!("received {n} envelopes"),
                    LiveEvent::Synced(r)
                        if r.received > 0 || r.uploaded > 0 || !alert_lines(r).is_empty() =>
                    {
                        print_sync(r)
                    }
                    LiveEvent::Synced(_) => {}
                    LiveEvent::Disconnected => println!("broker connection lost; reconnecting"),
                    LiveEvent::Warning(w) => println!("warning: {w}"),
                    LiveEvent::Ephemeral { sender, body } => println!(
                        "ephemeral {} bytes from device {}",
                        body.len(),
                        hex::encode(sender.get(..6).unwrap_or_default())
                    ),
                    other => println!("event: {other:?}"),
                }
            },
        )
        .await?;
        if !joined {
            bail!("broker {url}: never joined the space's room while watching");
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn export(s: &Settings, sel: Option<String>, out: &Path) -> Result<ExitCode> {
    let c = client(s)?;
    rt()?.block_on(async {
        let mut sp = open_space(s, &c, sel).await?;
        let n = crate::inspect::export(&mut sp, out)?;
        println!(
            "exported {n} documents to {} (plain JSON: keep it private)",
            out.display()
        );
        Ok(ExitCode::SUCCESS)
    })
}

pub fn inspect(s: &Settings, sel: Option<String>) -> Result<ExitCode> {
    let c = client(s)?;
    rt()?.block_on(async {
        let mut sp = open_space(s, &c, sel).await?;
        crate::inspect::inspect(&mut sp).await?;
        Ok(ExitCode::SUCCESS)
    })
}

pub fn doctor(s: &Settings, sel: Option<String>, action: DoctorCapture) -> Result<ExitCode> {
    let c = client(s)?;
    rt()?.block_on(async {
        let mut sp = open_space(s, &c, sel).await?;
        match action {
            DoctorCapture::Report => crate::inspect::doctor_report(&mut sp)?,
            DoctorCapture::Capture { doc, out } => {
                let id = sp.find_document(&doc)?;
                let d = sp.document(&id)?;
                let b = clientful_app::diagnose::Bundle::capture(d.replica_mut(), &[]);
                if out.exists() {
                    bail!("{} exists; refusing to overwrite it", out.display());
                }
                std::fs::write(&out, serde_json::to_vec_pretty(&b.to_json())?)
                    .with_context(|| format!("{}", out.display()))?;
                println!(
                    "wrote {} (no document content; safe to share)",
                    out.display()
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
