//! `clientful-conformance`: run the conformance suite against an implementation,
//! or serve the reference implementation over stdio.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use clientful_conformance::adapter::{Adapter, StdioAdapter};
use clientful_conformance::reference::{ReferenceAdapter, serve_stdio};
use clientful_conformance::runner::{self, Outcome};

#[derive(Parser)]
#[command(
    name = "clientful-conformance",
    version,
    about = "Clientful conformance runner"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the suite; prints `N passed, N failed`. Exit: 0 pass, 1 failures,
    /// 2 harness error, 3 nothing ran.
    Run {
        /// `reference`: the in-process reference implementation.
        #[arg(long = "impl", conflicts_with = "impl_cmd")]
        implementation: Option<String>,
        /// A command that speaks the harness protocol on stdio.
        #[arg(long)]
        impl_cmd: Option<String>,
        /// Vectors directory.
        #[arg(long, default_value = "test-vectors")]
        vectors: PathBuf,
        /// Scenarios directory.
        #[arg(long, default_value = "conformance/scenarios")]
        scenarios: PathBuf,
        /// Write report.json here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Seconds to wait for each answer.
        #[arg(long, default_value_t = 30)]
        timeout_secs: u64,
    },
    /// Serve the reference implementation over stdio (framed harness protocol).
    ServeReference,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::ServeReference => match serve_stdio(std::io::stdin(), std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("serve-reference: {e}");
                ExitCode::from(2)
            }
        },
        Cmd::Run {
            implementation,
            impl_cmd,
            vectors,
            scenarios,
            report,
            timeout_secs,
        } => {
            let mut adapter: Box<dyn Adapter> = match (implementation.as_deref(), impl_cmd) {
                (Some("reference"), None) => Box::new(ReferenceAdapter::new()),
                (None, Some(cmd)) => {
                    match StdioAdapter::spawn(&cmd, Duration::from_secs(timeout_secs)) {
                        Ok(a) => Box::new(a),
                        Err(e) => {
                            eprintln!("harness error: {e}");
                            println!("0 passed, 0 failed");
                            return ExitCode::from(2);
                        }
                    }
                }
                _ => {
                    eprintln!("give --impl reference or --impl-cmd \"<command>\"");
                    println!("0 passed, 0 failed");
                    return ExitCode::from(2);
                }
            };
            let r = runner::run(adapter.as_mut(), Some(&vectors), Some(&scenarios));
            for (id, o) in &r.results {
                match o {
                    Outcome::Fail(m) => println!("FAIL {id}: {m}"),
                    Outcome::Unsupported(m) => println!("UNSUPPORTED {id}: {m}"),
                    _ => {}
                }
            }
            if let Some(e) = &r.harness_error {
                println!("harness error: {e}");
            }
            if let Some(path) = report
                && let Err(e) = std::fs::write(&path, format!("{:#}\n", r.to_json()))
            {
                eprintln!("cannot write {}: {e}", path.display());
            }
            println!("implementation: {}", r.implementation);
            println!("{} passed, {} failed", r.passed(), r.failed());
            ExitCode::from(r.exit_code())
        }
    }
}
