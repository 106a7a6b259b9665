//! `clientful-broker`: the realtime broker on its own, with the same flags as
//! `clientful broker` (spec §10). Its integration tests (tests/) run it as a real
//! process over loopback.

use std::process::ExitCode;

use clap::Parser;

/// Run the realtime broker: WebSocket and QUIC in one process (spec §10).
#[derive(Parser)]
#[command(name = "clientful-broker", version)]
struct Cli {
    #[command(flatten)]
    args: clientful_broker::cli::BrokerArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match clientful_broker::cli::run(cli.args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the cause chain holds (as `clientful` prints it).
            let msg = format!("{e:#}");
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
