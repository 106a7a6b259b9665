//! Soak and replay driver for the simulator.
//!
//! ```text
//! cargo run --release -p clientful-sim --example soak -- --seeds 10000
//! cargo run --release -p clientful-sim --example soak -- --seed 42 [--crdt yjs|automerge]
//! ```
//! Options: `--seeds N` (runs seeds `start..start+N` for both CRDTs), `--start S`,
//! `--seed N` (replays one seed and prints its trace), `--crdt yjs|automerge`
//! (restricts to one CRDT), `--small` (the property-test configuration instead of
//! the larger soak configuration), `--equivocate` (lets Byzantine devices
//! equivocate too; see the README's known issue).

#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::time::Instant;

use clientful_doc::CrdtKind;
use clientful_sim::byzantine::ALL_BEHAVIOURS;
use clientful_sim::{SimConfig, run};

fn usage() -> ExitCode {
    eprintln!(
        "usage: soak [--seeds N] [--start S] [--seed N] [--crdt yjs|automerge] [--small] [--equivocate]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut seeds: u64 = 1000;
    let mut start: u64 = 0;
    let mut one: Option<u64> = None;
    let mut crdts = vec![CrdtKind::Yjs, CrdtKind::Automerge];
    let mut small = false;
    let mut equivocate = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let num = |v: Option<String>| v.and_then(|s| s.parse::<u64>().ok());
        match a.as_str() {
            "--seeds" => match num(args.next()) {
                Some(n) => seeds = n,
                None => return usage(),
            },
            "--start" => match num(args.next()) {
                Some(n) => start = n,
                None => return usage(),
            },
            "--seed" => match num(args.next()) {
                Some(n) => one = Some(n),
                None => return usage(),
            },
            "--crdt" => match args.next().as_deref() {
                Some("yjs") => crdts = vec![CrdtKind::Yjs],
                Some("automerge") => crdts = vec![CrdtKind::Automerge],
                _ => return usage(),
            },
            "--small" => small = true,
            "--equivocate" => equivocate = true,
            _ => return usage(),
        }
    }
    let config = |crdt| {
        let mut cfg = if small {
            SimConfig::small(crdt)
        } else {
            SimConfig::soak(crdt)
        };
        if equivocate {
            cfg.behaviours = ALL_BEHAVIOURS.to_vec();
        }
        cfg
    };
    // yrs panics on some garbage payloads; clientful-doc catches them. Keep the
    // output readable by not printing those, and only those.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_yrs = info.location().is_some_and(|l| l.file().contains("/yrs-"));
        if !in_yrs {
            default_hook(info);
        }
    }));

    if let Some(seed) = one {
        let mut failed = false;
        for crdt in &crdts {
            let mut cfg = config(*crdt);
            cfg.trace = true;
            let report = run(seed, &cfg);
            for line in &report.trace {
                println!("{line}");
            }
            println!("--- {}", report.summary());
            println!("texts: {:?}", report.texts);
            println!("stats: {:?}", report.stats);
            for v in &report.violations {
                println!("VIOLATION {v}");
            }
            failed |= !report.ok();
        }
        return if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }

    let began = Instant::now();
    let mut failures: Vec<(u64, CrdtKind, String)> = Vec::new();
    let mut runs = 0u64;
    let (mut envelopes, mut crashes, mut partitions, mut byz) = (0usize, 0u64, 0u64, 0usize);
    for seed in start..start.saturating_add(seeds) {
        for crdt in &crdts {
            let report = run(seed, &config(*crdt));
            runs += 1;
            envelopes += report.stats.integrated;
            crashes += report.stats.crashes;
            partitions += report.stats.net.partitions;
            byz += report.byzantine.len();
            if let Some(v) = report.violations.first() {
                println!("FAIL {}", report.summary());
                println!("     {v}");
                failures.push((seed, *crdt, v.clone()));
            }
        }
        if (seed - start + 1).is_multiple_of(500) {
            println!(
                "{} seeds, {} failures, {:.1}s",
                seed - start + 1,
                failures.len(),
                began.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "{runs} runs ({} seeds x {} CRDTs) in {:.1}s: {} failures; {envelopes} envelopes integrated, {crashes} crashes, {partitions} partitions, {byz} Byzantine devices",
        seeds,
        crdts.len(),
        began.elapsed().as_secs_f64(),
        failures.len()
    );
    for (seed, crdt, v) in failures.iter().take(20) {
        println!(
            "  replay: cargo run --release -p clientful-sim --example soak -- --seed {seed} --crdt {} # {v}",
            if *crdt == CrdtKind::Yjs {
                "yjs"
            } else {
                "automerge"
            }
        );
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
