//! `clientful-conformance`: run the conformance suite against an implementation,
//! or serve the reference implementation over stdio.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use clientful_conformance::adapter::{Adapter, StdioAdapter};
use clientful_conformance::expected::ExpectedFailures;
use clientful_conformance::grpc::{GrpcAdapter, serve_reference};
use clientful_conformance::killmatrix::{Mode, run_matrix};
use clientful_conformance::reference::{ReferenceAdapter, serve_adapter};
use clientful_conformance::report::{Level, Outcome, Report};
use clientful_conformance::runner::{self, RunOptions};
use clientful_conformance::saboteur::Saboteur;

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

#[derive(clap::Args)]
struct RunArgs {
    /// `reference`: the in-process reference implementation.
    #[arg(long = "impl")]
    implementation: Option<String>,
    /// A command that speaks the harness protocol on stdio. Given twice, or
    /// with `--impl reference`, the run is mixed: each scenario's replicas are
    /// spread over the implementations.
    #[arg(long)]
    impl_cmd: Vec<String>,
    /// An implementation serving the harness over gRPC (`http://host:port`);
    /// may be repeated and combined with the others for a mixed run.
    #[arg(long)]
    grpc: Vec<String>,
    /// Vectors directory.
    #[arg(long, default_value = "test-vectors")]
    vectors: PathBuf,
    /// Scenarios directory.
    #[arg(long, default_value = "conformance/scenarios")]
    scenarios: PathBuf,
    /// Play this one scenario file only (no vectors, no other scenarios): e.g.
    /// a shrunk schedule written by `fuzz` (CONF-90).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Write report.json here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write every report (results.jsonl, streamed; report.json; junit.xml;
    /// report.md) into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Conformance level: `required` (MUSTs) or `strict` (MUSTs and SHOULDs).
    #[arg(long, default_value = "required")]
    level: String,
    /// The implementation's expected-failures file (a stale entry fails the run).
    #[arg(long)]
    expected_failures: Option<PathBuf>,
    /// Run the reference with a saboteur switched on (`--impl reference` only).
    #[arg(long)]
    saboteur: Option<String>,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// The run's seed (16 hex digits, as the report prints it): the fresh vector
    /// cases and the `configure` seed derive from it. Default: a new seed every
    /// run.
    #[arg(long)]
    seed: Option<String>,
    /// Run the committed vector cases only, without fresh ones (not a claim).
    #[arg(long)]
    no_fresh: bool,
}

#[derive(clap::Args)]
struct FuzzArgs {
    /// A command that speaks the harness protocol on stdio.
    #[arg(long)]
    impl_cmd: Option<String>,
    /// `reference`: the in-process reference (with `--saboteur`).
    #[arg(long = "impl")]
    implementation: Option<String>,
    /// A saboteur for `--impl reference`.
    #[arg(long)]
    saboteur: Option<String>,
    /// The run seed (16 hex digits); default: a new seed every run.
    #[arg(long)]
    seed: Option<String>,
    /// How many schedules at most.
    #[arg(long, default_value_t = 1000)]
    cases: u64,
    /// Stop starting schedules after this many seconds.
    #[arg(long)]
    time: Option<u64>,
    /// Write the shrunk scenario of a failure into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The bound on shrinking attempts.
    #[arg(long, default_value_t = 300)]
    shrink_attempts: usize,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
}

fn fuzz_cmd(args: FuzzArgs) -> ExitCode {
    use clientful_conformance::fuzz::{Options, fuzz, step_count};
    let seed = match parse_seed(args.seed.as_deref()) {
        Ok(s) => s,
        Err(e) => return fail_start(&e),
    };
    let sab = match args.saboteur.as_deref() {
        None => None,
        Some(n) => match Saboteur::parse(n) {
            Some(s) => Some(s),
            None => return fail_start(&format!("unknown saboteur {n}")),
        },
    };
    let mut adapter: Box<dyn Adapter> = match (args.implementation.as_deref(), &args.impl_cmd) {
        (Some("reference"), None) => Box::new(ReferenceAdapter::with_saboteur(sab)),
        (None, Some(cmd)) => match StdioAdapter::spawn(cmd, Duration::from_secs(args.timeout_secs))
        {
            Ok(a) => Box::new(a),
            Err(e) => return fail_start(&format!("harness error: {e}")),
        },
        _ => {
            return fail_start("give exactly one of --impl reference and --impl-cmd \"<command>\"");
        }
    };
    let opts = Options {
        seed,
        cases: args.cases,
        time: args.time.map(Duration::from_secs),
        out: args.out,
        shrink_attempts: args.shrink_attempts,
    };
    println!("seed: {seed:016x} (replay this run with --seed {seed:016x})");
    let summary = match fuzz(&mut *adapter, &opts, &mut |_, _| {}) {
        Ok(s) => s,
        Err(e) => return fail_start(&e.to_string()),
    };
    for (case, why) in &summary.discarded {
        println!("DISCARD case {case}: the reference cannot play it: {why}");
    }
    if let Some(f) = &summary.failure {
        println!("FAIL case {} (seed {seed:016x}): {}", f.case, f.message);
        println!(
            "shrunk from {} to {} steps in {} attempts: {}",
            step_count(&f.original),
            step_count(&f.shrunk),
            f.attempts,
            f.shrunk_message
        );
        match &f.file {
            Some(p) => println!(
                "scenario: {} (replay: clientful-conformance run --impl-cmd CMD --scenario {} --level strict)",
                p.display(),
                p.display()
            ),
            None => println!(
                "shrunk scenario (give --out DIR to write it):\n{:#}",
                f.shrunk
            ),
        }
    }
    if let Some(h) = &summary.harness_error {
        println!("harness error: {h}");
    }
    println!("{} schedules played", summary.cases);
    println!("{}", summary.closing_line());
    ExitCode::from(summary.exit_code())
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the suite; prints `N passed, M failed, K skipped`. Exit: 0 pass,
    /// 1 failures, 2 harness error, 3 nothing ran.
    Run(RunArgs),
    /// Serve the reference implementation over stdio (framed harness protocol).
    ServeReference {
        /// Serve a deliberately broken variant instead (see `conformance/saboteurs.json`).
        #[arg(long)]
        saboteur: Option<String>,
        /// Serve over gRPC on this address (port 0: any free port) instead of stdio;
        /// prints `listening on http://ADDR` once bound, and exits after `shutdown`.
        #[arg(long)]
        grpc: Option<std::net::SocketAddr>,
        /// Vectors directory (read by the `answers-from-vectors` saboteur).
        #[arg(long, default_value = "test-vectors")]
        vectors: PathBuf,
    },
    /// Randomized mode: generated schedules played against the implementation,
    /// the reference as oracle; a failure is shrunk to a scenario file. Prints
    /// `N passed, M failed, K discarded`. Exit: 0 pass, 1 failure, 2 harness
    /// error, 3 nothing ran.
    Fuzz(FuzzArgs),
    /// Run every saboteur through the suite; fails if any survives (the kill matrix).
    Saboteurs {
        /// The list of saboteurs and the tests that must catch each.
        #[arg(long, default_value = "conformance/saboteurs.json")]
        list: PathBuf,
        /// Vectors directory.
        #[arg(long, default_value = "test-vectors")]
        vectors: PathBuf,
        /// Scenarios directory.
        #[arg(long, default_value = "conformance/scenarios")]
        scenarios: PathBuf,
        /// Serve each saboteur through this stdio command (given `--saboteur NAME`)
        /// instead of in-process.
        #[arg(long)]
        impl_cmd: Option<String>,
        /// The seed of the fresh vector cases (16 hex digits); default: a new one.
        #[arg(long)]
        seed: Option<String>,
        /// How many saboteurs run at once (default: the machine's cores); the rows
        /// do not depend on it.
        #[arg(long)]
        jobs: Option<usize>,
    },
}

fn fail_start(msg: &str) -> ExitCode {
    eprintln!("{msg}");
    println!("harness error: {msg}");
    println!("0 passed, 0 failed, 0 skipped");
    ExitCode::from(2)
}

/// `--seed`: up to 16 hex digits (an optional `0x` prefix); none: a new seed.
fn parse_seed(s: Option<&str>) -> Result<u64, String> {
    match s {
        None => Ok(runner::new_seed()),
        Some(t) => {
            let t = t.trim_start_matches("0x");
            if t.is_empty() || t.len() > 16 {
                return Err(format!("--seed takes 1 to 16 hex digits, got {t:?}"));
            }
            u64::from_str_radix(t, 16).map_err(|e| format!("--seed {t}: {e}"))
        }
    }
}

fn write_reports(r: &Report, out: Option<&PathBuf>, report: Option<&PathBuf>) {
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    if let Some(dir) = out {
        files.push((dir.join("report.json"), format!("{:#}\n", r.to_json())));
        files.push((dir.join("junit.xml"), r.to_junit()));
        files.push((dir.join("report.md"), r.to_markdown()));
    }
    if let Some(p) = report {
        files.push((p.clone(), format!("{:#}\n", r.to_json())));
    }
    for (path, text) in files {
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("cannot write {}: {e}", path.display());
        }
    }
}

fn run_cmd(args: RunArgs) -> ExitCode {
    let RunArgs {
        implementation,
        impl_cmd,
        grpc,
        vectors,
        scenarios,
        scenario,
        report,
        out,
        level,
        expected_failures,
        saboteur,
        timeout_secs,
        seed,
        no_fresh,
    } = args;
    let seed = match parse_seed(seed.as_deref()) {
        Ok(s) => s,
        Err(e) => return fail_start(&e),
    };
    let Some(level) = Level::parse(&level) else {
        return fail_start("--level must be `required` or `strict`");
    };
    let sab = match saboteur.as_deref() {
        None => None,
        Some(n) => match Saboteur::parse(n) {
            Some(s) => Some(s),
            None => return fail_start(&format!("unknown saboteur {n}")),
        },
    };
    let expected = match expected_failures {
        None => None,
        Some(p) => match std::fs::read(&p)
            .map_err(|e| e.to_string())
            .and_then(|b| ExpectedFailures::parse(&b).map_err(|e| e.to_string()))
        {
            Ok(x) => Some(x),
            Err(e) => return fail_start(&format!("harness error: {}: {e}", p.display())),
        },
    };
    let fresh = if no_fresh || scenario.is_some() {
        None
    } else {
        match runner::fresh_cases(seed) {
            Ok(f) => {
                for d in &f.dropped {
                    eprintln!("fresh case left out (the reference disagrees with its intent): {d}");
                }
                Some(f)
            }
            Err(e) => return fail_start(&format!("cannot generate fresh cases: {e}")),
        }
    };
    let mut adapters: Vec<Box<dyn Adapter>> = Vec::new();
    match implementation.as_deref() {
        Some("reference") => adapters.push(Box::new(
            ReferenceAdapter::with_saboteur(sab).with_vectors_dir(&vectors),
        )),
        Some(other) => return fail_start(&format!("unknown --impl {other} (only `reference`)")),
        None => {}
    }
    for cmd in &impl_cmd {
        match StdioAdapter::spawn(cmd, Duration::from_secs(timeout_secs)) {
            Ok(a) => adapters.push(Box::new(a)),
            Err(e) => return fail_start(&format!("harness error: {e}")),
        }
    }
    for url in &grpc {
        match GrpcAdapter::connect(url, Duration::from_secs(timeout_secs)) {
            Ok(a) => adapters.push(Box::new(a)),
            Err(e) => return fail_start(&format!("harness error: {e}")),
        }
    }
    if adapters.is_empty() {
        return fail_start("give --impl reference, --impl-cmd \"<command>\" and/or --grpc URL");
    }
    let log = match &out {
        None => None,
        Some(dir) => match std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::File::create(dir.join("results.jsonl")))
        {
            Ok(f) => Some(Box::new(std::io::BufWriter::new(f)) as Box<dyn std::io::Write>),
            Err(e) => return fail_start(&format!("cannot write to {}: {e}", dir.display())),
        },
    };
    let mut refs: Vec<&mut dyn Adapter> = adapters
        .iter_mut()
        .map(clientful_conformance::adapter::borrow)
        .collect();
    let mut r = runner::run_with(
        &mut refs,
        RunOptions {
            seed,
            fresh,
            vectors: if scenario.is_some() {
                None
            } else {
                Some(vectors)
            },
            scenarios: Some(scenario.unwrap_or(scenarios)),
            level,
            expected_failures: expected,
            log,
        },
    );
    for t in &r.results {
        match &t.outcome {
            Outcome::Fail(m) | Outcome::Unsupported(m) => {
                let tag = if t.level <= r.level { "FAIL" } else { "WARN" };
                println!("{tag} {} [{}]: {m}", t.id, t.outcome.as_str());
            }
            Outcome::ExpectedFailure(m) => println!("XFAIL {}: {m}", t.id),
            _ => {}
        }
    }
    if let Some(e) = &r.harness_error {
        println!("harness error: {e}");
    }
    r.log = None;
    write_reports(&r, out.as_ref(), report.as_ref());
    println!("implementation: {}", r.implementations.join(" + "));
    if r.implementations.len() > 1 {
        for (name, p, f, k, status) in r.per_implementation() {
            println!("  {name}: {p} passed, {f} failed, {k} skipped ({status})");
        }
    }
    let not_run = r.profiles_not_run();
    if !not_run.is_empty() {
        println!("profiles not run: {}", not_run.join(", "));
    }
    if let Some(s) = r.seed_hex() {
        println!("seed: {s} (replay this run with --seed {s})");
    }
    println!(
        "level: {}; {} warnings, {} expected failures",
        r.level.as_str(),
        r.warnings(),
        r.expected_failures()
    );
    println!("{}", r.closing_line());
    ExitCode::from(r.exit_code())
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::ServeReference {
            saboteur,
            grpc,
            vectors,
        } => {
            let sab = match saboteur.as_deref() {
                None => None,
                Some(n) => match Saboteur::parse(n) {
                    Some(s) => Some(s),
                    None => {
                        eprintln!("unknown saboteur {n}");
                        return ExitCode::from(2);
                    }
                },
            };
            if let Some(addr) = grpc {
                let served = serve_reference(addr, sab, |bound| {
                    println!("listening on http://{bound}");
                    let _ = std::io::Write::flush(&mut std::io::stdout());
                });
                return match served {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("serve-reference --grpc: {e}");
                        ExitCode::from(2)
                    }
                };
            }
            let adapter = ReferenceAdapter::with_saboteur(sab).with_vectors_dir(&vectors);
            match serve_adapter(std::io::stdin(), std::io::stdout(), adapter) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("serve-reference: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Saboteurs {
            list,
            vectors,
            scenarios,
            impl_cmd,
            seed,
            jobs,
        } => {
            let jobs = jobs.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            });
            let mode = match impl_cmd {
                Some(c) => Mode::Stdio(c),
                None => Mode::InProcess,
            };
            let seed = match parse_seed(seed.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("harness error: {e}");
                    println!("0 caught, 0 not caught");
                    return ExitCode::from(2);
                }
            };
            println!("seed: {seed:016x} (replay with --seed {seed:016x})");
            match run_matrix(&list, &vectors, &scenarios, &mode, seed, jobs) {
                Ok(rows) => {
                    let bad = rows.iter().filter(|r| r.problem.is_some()).count();
                    for r in &rows {
                        println!(
                            "{:<28} exit {}  {:>4} failed  {}",
                            r.name,
                            r.exit_code,
                            r.failed,
                            r.problem.as_deref().unwrap_or("caught")
                        );
                    }
                    println!("{} caught, {} not caught", rows.len() - bad, bad);
                    if bad == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("harness error: {e}");
                    println!("0 caught, 0 not caught");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Run(args) => run_cmd(args),
        Cmd::Fuzz(args) => fuzz_cmd(args),
    }
}
