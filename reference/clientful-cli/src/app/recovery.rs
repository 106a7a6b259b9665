//! `recovery …`: recovery shares (spec §5.6). A user chooses members who each keep
//! one share; any `--threshold` of them can give the user key back to a new device,
//! fewer learn nothing.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use clientful::Client;

use super::{client, open_space, print_sync, rt};
use crate::settings::Settings;

/// `recovery …`
#[derive(Subcommand)]
pub enum RecoveryAction {
    /// Make a recovery set of your user key: each holder (a member, by user key
    /// prefix) keeps one share, sealed to one of their devices, in the space's
    /// storage; any THRESHOLD of them can restore you.
    Setup {
        /// Holders: members' user key prefixes, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        holders: Vec<String>,
        /// How many holders it takes (at least 2).
        #[arg(long)]
        threshold: u32,
    },
    /// List the recovery shares this device keeps for other members.
    Held,
    /// On a device that lost everything: start a recovery and print the request
    /// to show your holders (in person, by a channel you trust).
    Request,
    /// As a holder: release your share of a member's kit to their request. Only
    /// when that person asked you themselves; compare the request id first.
    Release {
        /// The kit id (hex prefix, from `recovery held`).
        #[arg(long)]
        kit: String,
        /// Their request (`cfrecover1-…`).
        request: String,
    },
    /// On the recovering device: restore your user key from your holders'
    /// releases (`cfrelease1-…`), then ask an admin to add this device.
    Restore {
        /// The releases.
        #[arg(required = true)]
        releases: Vec<String>,
    },
}

fn hex_short(b: &[u8]) -> String {
    hex::encode(b.get(..6).unwrap_or(b))
}

/// Runs `recovery …`.
pub fn recovery(s: &Settings, action: RecoveryAction, sel: Option<String>) -> Result<ExitCode> {
    match action {
        RecoveryAction::Request => {
            let code = Client::recovery_request(s.home())?;
            println!("{code}");
            let id = clientful::space::request_id(&code)?;
            eprintln!(
                "request id {}: tell it to each holder with the code; they check it when releasing",
                id.get(..12).unwrap_or(&id)
            );
            return Ok(ExitCode::SUCCESS);
        }
        RecoveryAction::Restore { releases } => {
            let refs: Vec<&str> = releases.iter().map(String::as_str).collect();
            let c = Client::restore_from_shares(s.home(), &refs)?;
            println!(
                "restored user {} ({}) as a new device",
                c.profile().name,
                hex::encode(c.profile().user_key())
            );
            println!(
                "next: run `clientful devices request` here, and have an admin of each space run `devices add <request>`"
            );
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let c = client(s)?;
    rt()?.block_on(async {
        let mut sp = open_space(s, &c, sel).await?;
        match action {
            RecoveryAction::Setup { holders, threshold } => {
                // The holders must be members this device knows of.
                print_sync(&sp.sync().await?);
                let prefixes: Vec<&str> = holders.iter().map(String::as_str).collect();
                let kit = c.create_recovery(&mut sp, &prefixes, threshold)?;
                println!(
                    "recovery set {}: any {threshold} of {} holders can restore you",
                    hex_short(&kit),
                    holders.len()
                );
                print_sync(&sp.sync().await?);
            }
            RecoveryAction::Held => {
                print_sync(&sp.sync().await?);
                for h in sp.held_recovery_shares() {
                    println!(
                        "kit {}  user {}  share {} (threshold {}){}",
                        hex_short(&h.kit_id),
                        hex::encode(h.user),
                        h.index,
                        h.threshold,
                        if h.confirmed {
                            ""
                        } else {
                            "  NOT signed by that user's device: will not be released"
                        }
                    );
                }
            }
            RecoveryAction::Release { kit, request } => {
                let id = clientful::space::request_id(&request)?;
                let release = sp.release_recovery_share(&kit, &request)?;
                println!("{release}");
                eprintln!(
                    "released to request id {}: it must be the id their device shows",
                    id.get(..12).unwrap_or(&id)
                );
            }
            RecoveryAction::Request | RecoveryAction::Restore { .. } => {}
        }
        Ok(ExitCode::SUCCESS)
    })
}
