//! The runner against the reference (in-process and over stdio), and against
//! implementations that must not pass: one that exits at once, one that never
//! answers, and one that echoes requests back (answers "defaults").
//! spec: CONF-24, CONF-27, CONF-33, CONF-35, CONF-36.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::{bin, root};

use std::path::PathBuf;
use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clientful-conformance"))
        .current_dir(root())
        .arg("run")
        .args(args)
        .output()
        .expect("run runner");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The closing line `N passed, M failed, K skipped` (CONF-36) as numbers.
fn closing(stdout: &str) -> (usize, usize, usize) {
    let last = stdout.lines().last().unwrap_or_default();
    let (p, rest) = last.split_once(" passed, ").expect("closing line");
    let (f, k) = rest.split_once(" failed, ").expect("closing line");
    (
        p.parse().unwrap(),
        f.parse().unwrap(),
        k.trim_end_matches(" skipped").parse().unwrap(),
    )
}

fn counts(stdout: &str) -> (usize, usize) {
    let (p, f, _) = closing(stdout);
    (p, f)
}

#[test]
fn reference_in_process_passes_everything() {
    let (code, out) = run(&["--impl", "reference"]);
    assert_eq!(code, Some(0), "{out}");
    let (passed, failed) = counts(&out);
    assert_eq!(failed, 0);
    assert!(passed >= 280, "{out}");
}

#[test]
fn reference_over_stdio_passes_everything() {
    let cmd = format!(
        "{} serve-reference",
        env!("CARGO_BIN_EXE_clientful-conformance")
    );
    let (code, out) = run(&["--impl-cmd", &cmd]);
    assert_eq!(code, Some(0), "{out}");
    let (passed, failed) = counts(&out);
    assert_eq!(failed, 0);
    assert!(passed >= 280, "{out}");
}

#[test]
fn implementation_that_exits_at_once_is_a_harness_error() {
    let (code, out) = run(&["--impl-cmd", "true"]);
    assert!(matches!(code, Some(2) | Some(3)), "{code:?} {out}");
    assert_eq!(counts(&out), (0, 0));
}

#[test]
fn implementation_that_never_answers_is_a_harness_error() {
    let (code, out) = run(&["--impl-cmd", "sleep 30", "--timeout-secs", "2"]);
    assert_eq!(code, Some(2), "{out}");
}

#[test]
fn implementation_that_echoes_requests_fails_the_probe() {
    // `cat` answers every request with its own bytes: hello decodes as a hello
    // result full of defaults, and the probe comes back without `unsupported`.
    let (code, out) = run(&["--impl-cmd", "cat"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("unsupported"), "{out}");
}

#[test]
fn bad_arguments_still_print_the_closing_line() {
    let (code, out) = run(&[]);
    assert_eq!(code, Some(2));
    assert_eq!(counts(&out), (0, 0));
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("clientful-conf-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn reports_are_written_and_report_json_matches_its_schema() {
    // spec: CONF-45, CONF-46, CONF-47
    let dir = tempdir("reports");
    let (code, out) = run(&["--impl", "reference", "--out", dir.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let schema: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root().join("conformance/report.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(report["exitCode"], 0);
    let (passed, failed) = counts(&out);
    assert_eq!(report["passed"], passed);
    assert_eq!(report["failed"], failed);
    // The schema is not a rubber stamp: a result with an unknown outcome fails it.
    let mut bad = report.clone();
    bad["results"][0]["outcome"] = "great".into();
    assert!(!validator.is_valid(&bad));

    // The JSON-lines log: a start event, one line per result, an end event.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.first().unwrap()["event"], "start");
    assert_eq!(lines.last().unwrap()["event"], "end");
    assert_eq!(lines.len() - 2, report["results"].as_array().unwrap().len());
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(junit.starts_with("<?xml"));
    assert_eq!(
        junit.matches("<testcase ").count(),
        report["results"].as_array().unwrap().len()
    );
    assert!(!junit.contains("<failure"));
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("| `replica/yjs` |"), "{md}");
    assert!(
        md.trim_end()
            .ends_with(&format!("{passed} passed, 0 failed, 0 skipped"))
    );
    // The seed is recorded, and `--seed` replays the run: the same tests with
    // the same outcomes, fresh cases included (CONF-3, CONF-53).
    let seed = report["seed"].as_str().unwrap().to_string();
    assert!(md.contains(&format!("--seed {seed}")), "{md}");
    assert!(
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"].as_str().unwrap().starts_with("fresh/")),
        "no fresh cases"
    );
    let again = tempdir("reports-again");
    let (code, out2) = run(&[
        "--impl",
        "reference",
        "--seed",
        &seed,
        "--out",
        again.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out2}");
    let replay: serde_json::Value =
        serde_json::from_slice(&std::fs::read(again.join("report.json")).unwrap()).unwrap();
    let ids = |r: &serde_json::Value| -> Vec<(String, String)> {
        r["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["id"].to_string(), t["outcome"].to_string()))
            .collect()
    };
    assert_eq!(replay["seed"], report["seed"]);
    assert_eq!(ids(&replay), ids(&report));
}

#[test]
fn an_adapter_answering_from_the_vector_files_fails_at_every_level() {
    // spec: CONF-53. It looks every request up in test-vectors/ and echoes the
    // expected answer: the committed cases pass, the fresh ones cannot.
    for level in ["required", "strict"] {
        let (code, out) = run(&[
            "--impl",
            "reference",
            "--saboteur",
            "answers-from-vectors",
            "--level",
            level,
        ]);
        assert_eq!(code, Some(1), "{level}: {out}");
        assert!(out.contains("FAIL fresh/envelope-open/open/"), "{out}");
    }
    let cmd = format!("{} serve-reference --saboteur answers-from-vectors", bin());
    let (code, out) = run(&["--impl-cmd", &cmd]);
    assert_eq!(code, Some(1), "{out}");
    // Without fresh cases (not a claim) the same adapter would pass: the check
    // that catches it is the fresh generation.
    let (code, out) = run(&[
        "--impl",
        "reference",
        "--saboteur",
        "answers-from-vectors",
        "--no-fresh",
    ]);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn a_constant_history_digest_fails_when_run_alone() {
    // spec: DOC-13, CONF-54. Every replica reports the same digest, so they
    // converge; the runner's own recomputation catches it.
    let (code, out) = run(&[
        "--impl",
        "reference",
        "--saboteur",
        "constant-history-digest",
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL scenario/yjs-concurrent-edits [fail]") && out.contains("history_digest"),
        "{out}"
    );
}

#[test]
fn a_stray_line_on_stdout_is_named_as_text() {
    // spec: CONF-8, CONF-33
    let (code, out) = run(&["--impl-cmd", "echo starting my adapter"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("a line of text on stdout"), "{out}");
    assert!(out.contains("starting my adapter"), "{out}");
    assert!(!out.contains("64 MiB"), "{out}");
    assert_eq!(closing(&out), (0, 0, 0));
}

#[test]
fn a_crash_names_the_pending_request_and_test() {
    // spec: CONF-33. The adapter's input is cut after 10000 bytes (dd passes each
    // byte on at once): it answers hello, the probes, configure and the first
    // vector cases, then exits in the middle of a request.
    let cmd = format!(
        "sh -c 'dd bs=1 count=10000 2>/dev/null | {} serve-reference'",
        bin()
    );
    let (code, out) = run(&["--impl-cmd", &cmd]);
    assert_eq!(code, Some(2), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("harness error:"))
        .unwrap_or_default();
    assert!(line.contains("primitives/"), "{line}");
    assert!(line.contains("(run_vector)"), "{line}");
    assert!(line.contains("while answering request"), "{line}");
    assert!(line.contains("it exited with status 2"), "{line}");
}

#[test]
fn a_missing_vector_file_names_the_path_and_the_flag() {
    let (code, out) = run(&["--impl", "reference", "--vectors", "/nonexistent-vectors"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("/nonexistent-vectors/primitives.json"),
        "{out}"
    );
    assert!(out.contains("--vectors"), "{out}");
}

#[test]
fn a_failing_run_reports_its_failures_everywhere() {
    let dir = tempdir("failing");
    let (code, out) = run(&[
        "--impl",
        "reference",
        "--saboteur",
        "byte-offset-positions",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL scenario/yjs-utf16-positions"), "{out}");
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(junit.contains("<failure"), "{junit}");
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("`scenario/yjs-utf16-positions`"), "{md}");
}

#[test]
fn strict_level_counts_should_failures_required_level_warns() {
    // spec: CONF-40. JSON with white space whose digest is that of the canonical
    // JSON converges when every replica writes it the same way, so only the
    // SHOULD-level evidence catches it; and a passed strict test is not counted
    // as a pass of a required run.
    let (code, out) = run(&["--impl", "reference", "--saboteur", "non-canonical-json"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("WARN scenario/"), "{out}");
    let required_passes = counts(&out).0;
    let (code, out) = run(&[
        "--impl",
        "reference",
        "--saboteur",
        "non-canonical-json",
        "--level",
        "strict",
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(counts(&out).1 > 0);
    let (_, strict) = run(&["--impl", "reference", "--level", "strict"]);
    assert!(counts(&strict).0 > required_passes, "{strict}");
    // A wrong StateDigest is recomputed by the runner: a required failure (CONF-54).
    let (code, out) = run(&["--impl", "reference", "--saboteur", "wrong-state-digest"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("state_digest"), "{out}");
}

#[test]
fn expected_failures_hide_known_failures_and_stale_entries_fail() {
    // spec: CONF-43, CONF-44
    let dir = tempdir("xfail");
    let xf = dir.join("xfail.json");
    std::fs::write(
        &xf,
        r#"{"expectedFailures":[
            {"id":"scenario/yjs-utf16-positions","reason":"positions are bytes, issue 12"},
            {"id":"scenario/automerge-utf16-positions","reason":"positions are bytes, issue 12"}]}"#,
    )
    .unwrap();
    let (code, out) = run(&[
        "--impl",
        "reference",
        "--saboteur",
        "byte-offset-positions",
        "--expected-failures",
        xf.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("XFAIL scenario/yjs-utf16-positions"), "{out}");
    // The same file against the working reference: both entries are now stale.
    let (code, out) = run(&[
        "--impl",
        "reference",
        "--expected-failures",
        xf.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("expected-failures/scenario/yjs-utf16-positions"),
        "{out}"
    );
    assert_eq!(counts(&out).1, 2);
    // A malformed file is a harness error.
    std::fs::write(&xf, r#"{"expectedFailures":[{"id":"x"}]}"#).unwrap();
    let (code, _) = run(&[
        "--impl",
        "reference",
        "--expected-failures",
        xf.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
}

#[test]
fn mixed_run_spreads_replicas_over_two_implementations() {
    // spec: CONF-39. The in-process reference and the stdio reference share
    // every scenario: envelopes sealed by one are delivered to the other.
    let cmd = format!("{} serve-reference", bin());
    let (code, out) = run(&[
        "--impl",
        "reference",
        "--impl-cmd",
        &cmd,
        "--level",
        "strict",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("clientful-reference 0.1.0 + clientful-reference 0.1.0"),
        "{out}"
    );
    assert!(counts(&out).0 >= 300, "{out}");
    // A mixed run with a broken partner fails.
    let bad = format!("{} serve-reference --saboteur non-canonical-json", bin());
    let (code, out) = run(&[
        "--impl",
        "reference",
        "--impl-cmd",
        &bad,
        "--level",
        "strict",
    ]);
    assert_eq!(code, Some(1), "{out}");
    // The failure names the implementation hosting each replica and what differs,
    // and the summary gives counts per implementation.
    assert!(
        out.contains("(on impl2: clientful-reference 0.1.0)"),
        "{out}"
    );
    assert!(out.contains("in materialized_json"), "{out}");
    assert!(
        out.contains("  impl1: clientful-reference 0.1.0: "),
        "{out}"
    );
    assert!(
        out.contains("  shared scenarios (every implementation): "),
        "{out}"
    );
}

#[test]
fn every_saboteur_is_caught_in_process() {
    // spec: CONF-48, CONF-49 (the kill matrix; test-all.sh also runs it over stdio).
    let out = Command::new(bin())
        .current_dir(root())
        .arg("saboteurs")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("42 caught, 0 not caught"), "{text}");
}

#[test]
fn a_saboteur_list_naming_a_test_that_passes_fails_the_matrix() {
    let dir = tempdir("matrix");
    let list = dir.join("saboteurs.json");
    std::fs::write(
        &list,
        r#"{"saboteurs":[{"name":"byte-offset-positions","mustFail":["scenario/yjs-concurrent-edits"]}]}"#,
    )
    .unwrap();
    let out = Command::new(bin())
        .current_dir(root())
        .args(["saboteurs", "--list", list.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("listed tests passed: scenario/yjs-concurrent-edits"),
        "{text}"
    );
    assert!(
        text.contains("saboteur missing from saboteurs.json"),
        "{text}"
    );
}

/// A server process that is killed when the test ends, passed or not.
struct Server(std::process::Child);

impl Server {
    /// Waits for the process to exit by itself; whether it exited with status 0.
    fn exits_cleanly(&mut self) -> bool {
        self.0.wait().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `serve-reference --grpc 127.0.0.1:0 [extra]` and returns it with its URL.
fn grpc_server(extra: &[&str]) -> (Server, String) {
    use std::io::BufRead;
    let mut child = Command::new(bin())
        .args(["serve-reference", "--grpc", "127.0.0.1:0"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    (Server(child), url)
}

#[test]
fn reference_over_grpc_passes_everything_and_stops_on_shutdown() {
    // spec: CONF-10, CONF-50
    let (mut server, url) = grpc_server(&[]);
    let (code, out) = run(&["--grpc", &url, "--level", "strict"]);
    assert_eq!(code, Some(0), "{out}");
    let (passed, failed) = counts(&out);
    assert_eq!(failed, 0);
    assert!(passed >= 280, "{out}");
    // The runner ends with `shutdown`, after which the server exits by itself.
    assert!(server.exits_cleanly());
}

#[test]
fn grpc_mixed_with_stdio_and_grpc_saboteur_is_caught() {
    let cmd = format!("{} serve-reference", bin());
    let (mut server, url) = grpc_server(&[]);
    let (code, out) = run(&["--impl-cmd", &cmd, "--grpc", &url]);
    assert_eq!(code, Some(0), "{out}");
    assert!(server.exits_cleanly());
    let (_server, url) = grpc_server(&["--saboteur", "answers-unknown-commands"]);
    let (code, out) = run(&["--grpc", &url]);
    assert_eq!(code, Some(2), "{out}");
}

#[test]
fn grpc_to_nothing_is_a_harness_error() {
    let (code, out) = run(&["--grpc", "http://127.0.0.1:1", "--timeout-secs", "2"]);
    assert_eq!(code, Some(2), "{out}");
    assert_eq!(counts(&out), (0, 0));
}
