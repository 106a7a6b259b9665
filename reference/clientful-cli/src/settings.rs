//! Where the CLI's settings come from, strongest first: flags, environment
//! (`CLIENTFUL_HOME`, `CLIENTFUL_STORAGE`, `CLIENTFUL_BROKER`, `CLIENTFUL_SPACE`,
//! `CLIENTFUL_CONFIG`), the config file (`<home>/config.toml` unless
//! `--config` says otherwise), built-in defaults.
//!
//! ```toml
//! storage = "s3://bucket/team?endpoint=http://127.0.0.1:8333"
//! broker = "ws://127.0.0.1:7400/v1/ws"
//! space = "team"
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The config file's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// Default storage URL for new spaces.
    pub storage: Option<String>,
    /// Default broker URL for `watch`.
    pub broker: Option<String>,
    /// Default space (local name or id prefix).
    pub space: Option<String>,
}

/// The resolved settings.
#[derive(Debug)]
pub struct Settings {
    /// The client's home folder.
    pub home: PathBuf,
    file: FileSettings,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Largest config file read (it holds three short settings).
const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// Reads a config file of at most [`MAX_CONFIG_BYTES`] (so `--config /dev/zero`
/// fails at once instead of reading until memory runs out).
fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    f.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_CONFIG_BYTES} bytes: not a config file"),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// The default home folder: `$HOME/.clientful`.
fn default_home() -> PathBuf {
    env("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".clientful")
}

impl Settings {
    /// Resolves the home folder and reads the config file.
    pub fn load(home: Option<PathBuf>, config: Option<PathBuf>) -> Result<Settings> {
        let home = home
            .or_else(|| env("CLIENTFUL_HOME").map(PathBuf::from))
            .unwrap_or_else(default_home);
        let explicit = config.or_else(|| env("CLIENTFUL_CONFIG").map(PathBuf::from));
        let path = explicit.clone().unwrap_or_else(|| home.join("config.toml"));
        let file = match read_bounded(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e: toml::de::Error| {
                let line = e
                    .span()
                    .map(|r| text[..r.start.min(text.len())].matches('\n').count() + 1)
                    .unwrap_or(0);
                anyhow::anyhow!(
                    "config file {} line {line}: {}",
                    path.display(),
                    e.message().trim()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
                FileSettings::default()
            }
            Err(e) => bail!("config file {}: {e}", path.display()),
        };
        Ok(Settings { home, file })
    }

    /// The home folder.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The storage URL: the flag, `CLIENTFUL_STORAGE`, the config file.
    pub fn storage(&self, flag: Option<String>) -> Result<String> {
        flag.or_else(|| env("CLIENTFUL_STORAGE"))
            .or_else(|| self.file.storage.clone())
            .context("no storage given: pass --storage URL, set CLIENTFUL_STORAGE, or put `storage = \"...\"` in the config file")
    }

    /// The broker URL.
    pub fn broker(&self, flag: Option<String>) -> Result<String> {
        flag.or_else(|| env("CLIENTFUL_BROKER"))
            .or_else(|| self.file.broker.clone())
            .context("no broker given: pass --broker URL, set CLIENTFUL_BROKER, or put `broker = \"...\"` in the config file")
    }

    /// The space selector, if any was given.
    pub fn space(&self, flag: Option<String>) -> Option<String> {
        flag.or_else(|| env("CLIENTFUL_SPACE"))
            .or_else(|| self.file.space.clone())
    }
}
