//! `clientful`: the command-line tool of the Clientful reference suite.
//!
//! `demo` plays the whole story on embedded defaults (`demo --web` serves the web
//! demo app with its broker and storage instead); identity, space, invite,
//! devices, doc, files, sync, watch, export, inspect and doctor work on a device's
//! home folder ([`settings`]); `broker` runs the realtime broker; `vectors`
//! verifies and regenerates the test vectors (only with the `vectors` cargo
//! feature: the generator builds fixed-seed worlds from the `test-utils` helpers
//! of clientful-core and clientful-doc, which a normal build never enables).

mod app;
mod demo;
mod demo_web;
mod inspect;
mod passphrase;
mod settings;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
#[cfg(feature = "vectors")]
use clientful_vectors::{CHECKSUM_FILE, IDS_LOCK_FILE, generate, verify};

#[derive(Parser)]
#[command(
    name = "clientful",
    version,
    about = "Clientful protocol reference tools"
)]
struct Cli {
    /// The device's home folder (identity and spaces). Default: $CLIENTFUL_HOME, else ~/.clientful.
    #[arg(long, global = true)]
    home: Option<PathBuf>,
    /// Config file. Default: $CLIENTFUL_CONFIG, else <home>/config.toml.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The space (local name or id prefix). Default: $CLIENTFUL_SPACE, the config
    /// file, or the only space.
    #[arg(long, global = true)]
    space: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Play the whole story on embedded defaults: in-process broker, local-folder
    /// storage, 2 users, 3 devices, invite, concurrent edits, a photo, removal.
    Demo {
        /// Keep everything in this (empty or new) folder instead of a temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The web demo instead: start the broker, WebDAV storage (with CORS) and
        /// the demo app's static server on loopback, print the URL to open in two
        /// tabs, and run until Ctrl-C. Needs the built web package
        /// (`bash scripts/web/demo.sh` builds it and runs this).
        #[arg(long)]
        web: bool,
        /// With --web: the web package folder (demo/, dist/, pkg/, node_modules/).
        #[arg(long, default_value = "packages/web", requires = "web")]
        web_root: PathBuf,
        /// With --web: the app's port on loopback (0: a free one).
        #[arg(long, default_value_t = 0, requires = "web")]
        port: u16,
    },
    /// Your identity: create, show, back up, restore, rotate.
    Identity {
        #[command(subcommand)]
        action: app::IdentityAction,
    },
    /// Spaces: create, list, members, remove a member.
    Space {
        #[command(subcommand)]
        action: app::SpaceAction,
    },
    /// Invites: create one, accept one.
    Invite {
        #[command(subcommand)]
        action: app::InviteAction,
    },
    /// Recovery shares: set up, list held, request, release, restore.
    Recovery {
        #[command(subcommand)]
        action: app::recovery::RecoveryAction,
    },
    /// Devices: request, add, join, list, revoke.
    Devices {
        #[command(subcommand)]
        action: app::DevicesAction,
    },
    /// Documents: new, list, edit, print, history.
    Doc {
        #[command(subcommand)]
        action: app::DocAction,
    },
    /// Files: put, get.
    Files {
        #[command(subcommand)]
        action: app::FilesAction,
    },
    /// Synchronise with storage once. Exit: 0 done; 3 done, but storage withheld,
    /// rolled back or forked files (an `ALERT:` line says whose; this device's
    /// own were uploaded again); 2 error.
    Sync,
    /// Stay in sync live over a broker (and with storage every --interval seconds).
    Watch {
        /// Broker URL: ws://host:port/v1/ws, wss://host:port/v1/ws (trusted by the
        /// system roots, or ?pin=<hex>: the key pin the broker printed as
        /// wss-spki-sha256=) or quic://host:port?pin=<hex>.
        #[arg(long)]
        broker: Option<String>,
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long = "for")]
        seconds: Option<u64>,
        /// Seconds between storage syncs.
        #[arg(long, default_value_t = 10)]
        interval: u64,
    },
    /// Export every readable document as plain JSON files.
    Export {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Decode this device's store: membership, epochs, documents (signatures
    /// checked again), storage objects by epoch directory.
    Inspect,
    /// Test vectors: verify them against this implementation, or regenerate them.
    #[cfg(feature = "vectors")]
    Vectors {
        #[command(subcommand)]
        action: VectorsAction,
    },
    /// Run the realtime broker: WebSocket and QUIC in one process (spec §10).
    Broker(Box<clientful_broker::cli::BrokerArgs>),
    /// Remote diagnosis (spec §13.5): compare two devices' diagnostic bundles.
    Doctor {
        #[command(subcommand)]
        action: DoctorAction,
    },
}

#[derive(Subcommand)]
enum DoctorAction {
    /// Digests to compare with another device (no content).
    Report,
    /// Write a document's diagnostic bundle.
    Capture {
        /// Document id (hex prefix).
        doc: String,
        /// Where to write the bundle.
        #[arg(long)]
        out: PathBuf,
    },
    /// Compare two diagnostic bundles (JSON, as `Bundle::to_json` writes them) and
    /// say where the devices diverge. Exit: 0 in sync, 1 diverged, 2 error.
    Compare {
        /// The first device's bundle.
        a: PathBuf,
        /// The second device's bundle.
        b: PathBuf,
    },
}

#[cfg(feature = "vectors")]
#[derive(Subcommand)]
enum VectorsAction {
    /// Check checksums, schema, id registry and every case; prints `N passed, N failed`.
    Verify {
        /// The vectors directory.
        #[arg(default_value = "test-vectors")]
        dir: PathBuf,
        /// Print every failure, not only the first 20.
        #[arg(long)]
        all_failures: bool,
    },
    /// Regenerate every vector file and the checksum file (deterministic), and
    /// register new case ids in `ids.lock`.
    Generate {
        /// The vectors directory.
        #[arg(default_value = "test-vectors")]
        dir: PathBuf,
        /// Only report whether the files on disk are up to date; write nothing.
        #[arg(long)]
        check: bool,
    },
}

/// The message of the last panic, for the one-line report (the hook prints
/// nothing itself).
static PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The broker is a server: its panics (in connection tasks) stay in its log.
    if matches!(cli.command, Command::Broker(_)) {
        return report(run(cli));
    }
    // No panic may reach the user as a backtrace and exit 101: a panic (a bug, or
    // a library failing on damaged input) becomes one error line and exit 2.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut p) = PANIC.lock() {
            *p = Some(format!("{msg}{at}"));
        }
    }));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(cli)))
        .unwrap_or_else(|_| {
            let msg = PANIC
                .lock()
                .ok()
                .and_then(|mut p| p.take())
                .unwrap_or_default();
            Err(anyhow::anyhow!(
                "internal failure ({msg}); nothing more was written. Please report it"
            ))
        });
    report(result)
}

/// The way out of an SDK error, in this CLI's commands (the SDK says what
/// went wrong, never which command to run).
fn hint(e: &anyhow::Error) -> Option<&'static str> {
    use clientful::{AccessError, ClientError, SessionError};
    match e.downcast_ref::<ClientError>()? {
        ClientError::NoIdentity(_) => Some("run `clientful identity create --name NAME` first"),
        ClientError::FirstSync(_) => {
            Some("run `clientful sync` again when the storage is reachable")
        }
        ClientError::Access(AccessError::NoCurrentKey)
        | ClientError::Session(SessionError::NoCurrentKey { .. }) => Some("run `clientful sync`"),
        _ => None,
    }
}

/// The exit code of a result; an error is printed as one line.
fn report(result: Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line, whatever the cause chain holds.
            let mut msg = format!("{e:#}");
            if let Some(h) = hint(&e) {
                msg = format!("{msg}; {h}");
            }
            let one: Vec<&str> = msg
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            eprintln!("error: {}", one.join(" "));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let settings = || settings::Settings::load(cli.home.clone(), cli.config.clone());
    let sel = cli.space.clone();
    match cli.command {
        Command::Demo {
            dir, web: false, ..
        } => demo::run(dir),
        Command::Demo {
            dir,
            web: true,
            web_root,
            port,
        } => demo_web::run(dir, web_root, port),
        Command::Identity { action } => app::identity(&settings()?, action, sel),
        Command::Space { action } => app::space(&settings()?, action, sel),
        Command::Invite { action } => app::invite(&settings()?, action, sel),
        Command::Devices { action } => app::devices(&settings()?, action, sel),
        Command::Recovery { action } => app::recovery::recovery(&settings()?, action, sel),
        Command::Doc { action } => app::doc(&settings()?, action, sel),
        Command::Files { action } => app::files(&settings()?, action, sel),
        Command::Sync => app::sync(&settings()?, sel),
        Command::Watch {
            broker,
            seconds,
            interval,
        } => app::watch(&settings()?, sel, broker, seconds, interval),
        Command::Export { out } => app::export(&settings()?, sel, &out),
        Command::Inspect => app::inspect(&settings()?, sel),
        Command::Doctor {
            action: DoctorAction::Report,
        } => app::doctor(&settings()?, sel, app::DoctorCapture::Report),
        Command::Doctor {
            action: DoctorAction::Capture { doc, out },
        } => app::doctor(&settings()?, sel, app::DoctorCapture::Capture { doc, out }),
        #[cfg(feature = "vectors")]
        Command::Vectors { action } => match action {
            VectorsAction::Verify { dir, all_failures } => verify_cmd(&dir, all_failures),
            VectorsAction::Generate { dir, check } => generate_cmd(&dir, check),
        },
        Command::Broker(args) => {
            clientful_broker::cli::run(*args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor {
            action: DoctorAction::Compare { a, b },
        } => doctor_compare(&a, &b),
    }
}

/// Largest bundle file read (a bundle holds ids and counts, never content).
const MAX_BUNDLE_BYTES: u64 = 4 * 1024 * 1024;

fn read_bundle(path: &Path) -> Result<clientful_app::diagnose::Bundle> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("{}", path.display()))?
        .len();
    if len > MAX_BUNDLE_BYTES {
        bail!("{}: {len} bytes, more than a bundle can be", path.display());
    }
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    clientful_app::diagnose::Bundle::from_json(&v)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn doctor_compare(a: &Path, b: &Path) -> Result<ExitCode> {
    use clientful_app::diagnose::{Verdict, compare};
    let d = compare(&read_bundle(a)?, &read_bundle(b)?);
    let verdict = match d.verdict {
        Verdict::InSync => "in sync",
        Verdict::Behind => "missing envelopes (sync will fix it)",
        Verdict::StateDiverged => "same envelopes, different states (a bug: report it)",
        Verdict::NotComparable => "not comparable",
    };
    println!("verdict: {verdict}");
    for f in &d.findings {
        println!("- {f}");
    }
    Ok(if d.verdict == Verdict::InSync {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(feature = "vectors")]
fn verify_cmd(dir: &Path, all_failures: bool) -> Result<ExitCode> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let report = verify::verify_dir(dir);
    for (family, (passed, failed)) in &report.per_family {
        println!("{family:>14}: {passed} passed, {failed} failed");
    }
    let shown = if all_failures { usize::MAX } else { 20 };
    for f in report.failures.iter().take(shown) {
        println!("FAIL {f}");
    }
    if report.failures.len() > shown {
        println!(
            "... and {} more (use --all-failures)",
            report.failures.len() - shown
        );
    }
    println!("{} passed, {} failed", report.passed, report.failed);
    Ok(if report.failed == 0 && report.passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(feature = "vectors")]
fn generate_cmd(dir: &Path, check: bool) -> Result<ExitCode> {
    let files = generate::generate_all().map_err(anyhow::Error::msg)?;
    let mut stale = Vec::new();
    for (name, bytes) in &files {
        let path = dir.join(name);
        if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            stale.push(name.clone());
        }
    }
    let ids = generate::case_ids(&files).map_err(anyhow::Error::msg)?;
    let lock_path = dir.join(IDS_LOCK_FILE);
    let lock_text = std::fs::read_to_string(&lock_path).unwrap_or_default();
    let lock = verify::parse_ids_lock(&lock_text);
    let new_ids: Vec<&String> = ids.iter().filter(|id| !lock.active.contains(*id)).collect();
    if check {
        for name in &stale {
            println!("stale: {name}");
        }
        for id in &new_ids {
            println!("unregistered id: {id}");
        }
        let problems = verify::check_ids(&ids, &lock);
        for p in &problems {
            println!("{p}");
        }
        return Ok(if stale.is_empty() && problems.is_empty() {
            println!("test vectors are up to date");
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, bytes) in files.iter().filter(|(name, _)| stale.contains(name)) {
        write_atomic(&dir.join(name), bytes)?;
        println!("wrote {name} ({} bytes)", bytes.len());
    }
    if !new_ids.is_empty() {
        let mut text = if lock_text.is_empty() {
            "# Registry of test-vector case ids. Append-only: an id is never reused.\n\
             # Retire an id by writing `<id> tombstoned`; never delete a line.\n"
                .to_string()
        } else {
            lock_text.clone()
        };
        for id in &new_ids {
            text.push_str(id);
            text.push('\n');
        }
        write_atomic(&lock_path, text.as_bytes())?;
        println!("registered {} new id(s) in {IDS_LOCK_FILE}", new_ids.len());
    }
    // The checksum file covers the family files and the id registry, as on disk.
    let mut covered = std::collections::BTreeMap::new();
    for name in generate::checksummed_files() {
        let bytes = std::fs::read(dir.join(&name)).with_context(|| format!("reading {name}"))?;
        covered.insert(name, bytes);
    }
    let sums = generate::checksums(&covered);
    let sums_path = dir.join(CHECKSUM_FILE);
    if std::fs::read_to_string(&sums_path).ok().as_deref() != Some(sums.as_str()) {
        write_atomic(&sums_path, sums.as_bytes())?;
        println!("wrote {CHECKSUM_FILE}");
    }
    let problems = verify::check_ids(
        &ids,
        &verify::parse_ids_lock(&std::fs::read_to_string(&lock_path).unwrap_or_default()),
    );
    for p in &problems {
        println!("{p}");
    }
    println!(
        "{} files up to date, {} rewritten, {} ids",
        files.len() - stale.len(),
        stale.len(),
        ids.len()
    );
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Writes through a temporary file and a rename, so a crash never leaves a
/// half-written vector file.
#[cfg(feature = "vectors")]
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A base64url value may start with `-` (one signature in 64): it is still the
    /// option's value, not a flag (found by a CI run of tests/attest_plc.rs).
    #[test]
    fn a_plc_signature_starting_with_a_dash_is_a_value() {
        let sig = "-RvW2ms7JViVvtay4dlR7n8q6YSe9HZLCRACIk7nuxNrZ9NDjZpYOE2hupq6TxEcCKV_2vT0HstvJnDlJfUZTQ";
        let parsed = Cli::try_parse_from([
            "clientful",
            "identity",
            "attest",
            "did",
            "--did",
            "did:plc:exkqdmkfhws4mbfcn4vsm7wb",
            "--plc-sig",
            sig,
        ]);
        assert!(parsed.is_ok(), "{:?}", parsed.err().map(|e| e.to_string()));
    }
}
