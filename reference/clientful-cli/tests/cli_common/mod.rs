//! Shared helpers of the CLI integration tests: a user is a `--home` folder on
//! which the real `clientful` binary runs, with the environment cleared of the
//! variables that would point it elsewhere; the attestation tests' set-up (a space
//! alice made and bob joined, the loopback services of scripts/services/ and the
//! Node scripts that drive them).
#![allow(dead_code, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One user (one device): the `clientful` binary run with `--home`.
pub struct User {
    pub home: PathBuf,
}

/// What one command did: exit code, stdout and stderr.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl User {
    /// A user at `root/name`, without an identity yet.
    pub fn at(root: &Path, name: &str) -> User {
        User {
            home: root.join(name),
        }
    }

    /// A user at `root/name` with a fresh identity named `name`.
    pub fn new(root: &Path, name: &str) -> User {
        let u = User::at(root, name);
        u.run(&["identity", "create", "--name", name]);
        u
    }

    /// Joins `admin`'s space (named "team" here) with an invite `admin` creates,
    /// and checks that this user can read and write after both synced.
    pub fn join(&self, admin: &User, storage: &str) {
        let code = last_line(&admin.run(&["invite", "create"]));
        self.run(&[
            "invite",
            "accept",
            &code,
            "--name",
            "team",
            "--storage",
            storage,
        ]);
        admin.run(&["sync"]);
        assert!(self.run(&["sync"]).contains("access: yes"));
    }

    /// `identity attest nonce`: its output as `(label, value)` lines
    /// (`salt`, `oidc-nonce`, `siwe-nonce`, `siwe-resource`); `field` panics on a
    /// missing label.
    pub fn attest_nonce(&self) -> impl Fn(&str) -> String {
        let out = self.run(&["identity", "attest", "nonce"]);
        move |label: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(label)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("no {label} in {out}"))
                .trim()
                .to_string()
        }
    }

    /// The command, not yet run. The S3 credentials are the test server's
    /// (scripts/services/s3.sh).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_clientful"));
        c.arg("--home")
            .arg(&self.home)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "clientful")
            .env("AWS_SECRET_ACCESS_KEY", "clientful-secret")
            .env_remove("CLIENTFUL_HOME")
            .env_remove("CLIENTFUL_SPACE")
            .env_remove("CLIENTFUL_STORAGE")
            .env_remove("CLIENTFUL_CONFIG")
            .env_remove("CLIENTFUL_BROKER")
            .env_remove("CLIENTFUL_BACKUP_PASSPHRASE");
        c
    }

    /// Runs a command that may succeed or end with an alert (exit 3), but is not
    /// a failure (exit 2).
    pub fn exec(&self, args: &[&str]) -> Ran {
        let out = self.cmd(args).output().expect("run clientful");
        let r = ran(&out);
        assert_ne!(
            r.code, 2,
            "clientful {args:?} failed:\n{}\n{}",
            r.stdout, r.stderr
        );
        r
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().expect("run clientful");
        let r = ran(&out);
        assert_eq!(
            r.code, 0,
            "clientful {args:?} failed:\n{}\n{}",
            r.stdout, r.stderr
        );
        r.stdout
    }

    /// Runs a command that must fail: exit code 2 (not 0, not a panic's 101),
    /// one `error:` line on stderr, no panic text. Returns that line.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().expect("run clientful");
        one_line_failure(&out, args)
    }

    /// The user key, from `identity show`.
    pub fn user_key(&self) -> String {
        self.run(&["identity", "show"])
            .lines()
            .find_map(|l| l.strip_prefix("user key:").map(|k| k.trim().to_owned()))
            .expect("user key")
    }

    /// A document's text.
    pub fn text(&self, doc: &str) -> String {
        last_line(&self.run(&["doc", "print", doc, "--text"]))
    }

    /// The state digests of every document, from `doctor report`.
    pub fn digests(&self) -> Vec<String> {
        self.run(&["doctor", "report"])
            .lines()
            .filter(|l| l.starts_with("document "))
            .map(str::to_owned)
            .collect()
    }

    /// The key-epoch authenticator line of `doctor report`.
    pub fn authenticator(&self) -> String {
        self.run(&["doctor", "report"])
            .lines()
            .find(|l| l.starts_with("key-epoch authenticator"))
            .expect("authenticator line")
            .to_owned()
    }
}

fn ran(out: &Output) -> Ran {
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// Checks a failed command's output: exit 2, one `error:` line, no panic.
pub fn one_line_failure(out: &Output, args: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(2),
        "clientful {args:?}: want exit 2, got {:?}\n{stderr}",
        out.status.code()
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line for {args:?}, got:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    lines[0].to_string()
}

/// The last line of a command's output, trimmed.
pub fn last_line(s: &str) -> String {
    s.lines().last().unwrap_or_default().trim().to_owned()
}

/// A `file://` storage URL in `root/storage`.
pub fn folder_storage(root: &Path) -> String {
    let dir = root.join("storage");
    std::fs::create_dir_all(&dir).expect("storage dir");
    format!("file://{}", dir.display())
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The arguments as `&str`.
pub fn as_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The arguments as owned strings, `--allow-http-loopback` appended when `loopback`.
pub fn with_loopback(args: &[&str], loopback: bool) -> Vec<String> {
    let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    if loopback {
        v.push("--allow-http-loopback".to_string());
    }
    v
}

/// alice creates the space "team" on folder storage under `root`, bob (a fresh
/// identity) joins it: `(alice, bob)`.
pub fn alice_and_bob(root: &Path) -> (User, User) {
    let storage = folder_storage(root);
    let alice = User::new(root, "alice");
    alice.run(&["space", "create", "team", "--storage", &storage]);
    let bob = User::new(root, "bob");
    bob.join(&alice, &storage);
    (alice, bob)
}

/// A loopback service of scripts/services/ that prints `VAR=URL` on `start`: the one
/// scripts/test-all.sh started (its URL in that variable), or one started here with
/// its state in a temporary folder and stopped on drop. If it does not start, the
/// test fails (never skips).
pub struct Service {
    /// The service's base URL.
    pub url: String,
    script: &'static str,
    dir_var: &'static str,
    own_dir: Option<tempfile::TempDir>,
}

impl Service {
    /// The OpenID provider (scripts/services/oidc.sh, `CLIENTFUL_OIDC_ISSUER`).
    pub fn oidc() -> Service {
        Service::get("oidc.sh", "CLIENTFUL_OIDC_ISSUER", "CLIENTFUL_OIDC_DIR")
    }

    /// The PLC directory (scripts/services/plc.sh, `CLIENTFUL_PLC_URL`).
    pub fn plc() -> Service {
        Service::get("plc.sh", "CLIENTFUL_PLC_URL", "CLIENTFUL_PLC_DIR")
    }

    fn get(script: &'static str, url_var: &str, dir_var: &'static str) -> Service {
        if let Ok(url) = std::env::var(url_var) {
            return Service {
                url,
                script,
                dir_var,
                own_dir: None,
            };
        }
        let dir = tempfile::tempdir().expect("temporary folder");
        let out = run_ok(
            &mut service_script(script, "start", dir_var, dir.path()),
            &format!("scripts/services/{script} start"),
        );
        let url = out
            .trim()
            .strip_prefix(&format!("{url_var}="))
            .unwrap_or_else(|| panic!("no {url_var}= line from {script}"))
            .to_string();
        Service {
            url,
            script,
            dir_var,
            own_dir: Some(dir),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(dir) = &self.own_dir {
            let _ = service_script(self.script, "stop", self.dir_var, dir.path()).status();
        }
    }
}

/// `bash scripts/services/SCRIPT ACTION` with its state folder `dir` in `dir_var`.
fn service_script(script: &str, action: &str, dir_var: &str, dir: &Path) -> Command {
    let mut c = Command::new("bash");
    c.arg(repo().join("scripts/services").join(script))
        .arg(action)
        .env(dir_var, dir);
    c
}

/// Runs `node SCRIPT ARGS` (SCRIPT relative to the repository root), which must
/// succeed; returns its stdout.
pub fn node(script: &str, args: &[&str]) -> String {
    run_ok(
        Command::new("node").arg(repo().join(script)).args(args),
        &format!("{script} {args:?}"),
    )
}

/// Runs a command (`what` names it in the failure) that must succeed; returns its
/// stdout.
fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}
