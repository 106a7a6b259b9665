//! Reading a backup passphrase: from a file (`--passphrase-file`, its first line),
//! from `CLIENTFUL_BACKUP_PASSPHRASE`, or typed on the terminal without echo
//! (twice when sealing, so a typo does not lock the user out of their backup).

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};
use zeroize::Zeroizing;

/// The environment variable a script can give the passphrase in.
pub const ENV: &str = "CLIENTFUL_BACKUP_PASSPHRASE";

/// The passphrase, from `file`, the environment or the terminal. `confirm` asks
/// twice on a terminal.
pub fn read(file: Option<&Path>, confirm: bool) -> Result<Zeroizing<String>> {
    let p = if let Some(path) = file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?,
        );
        Zeroizing::new(text.lines().next().unwrap_or_default().to_owned())
    } else if let Ok(v) = std::env::var(ENV) {
        Zeroizing::new(v)
    } else if std::io::stdin().is_terminal() {
        let first = Zeroizing::new(rpassword::prompt_password("backup passphrase: ")?);
        if confirm {
            let again = Zeroizing::new(rpassword::prompt_password("again: ")?);
            if *again != *first {
                bail!("the two passphrases differ");
            }
        }
        first
    } else {
        bail!("no passphrase: give --passphrase-file FILE, set {ENV}, or run on a terminal");
    };
    if p.is_empty() {
        bail!("the passphrase is empty");
    }
    Ok(p)
}
