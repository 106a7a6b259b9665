//! Results and reports (spec §12.8, §12.10): the outcome of each test, the
//! conformance level it belongs to, the counts and exit status of a run, and the
//! four report formats: the streaming JSON-lines log, `report.json` (schema in
//! `conformance/report.schema.json`), JUnit XML and a Markdown matrix.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Value, json};

/// Version of the `report.json` format (the schema's `reportVersion`).
pub const REPORT_VERSION: u32 = 2;

/// Conformance level (CONF-40): `required` holds the MUST tests, `strict` adds the
/// SHOULD tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Level {
    /// MUST requirements only.
    #[default]
    Required,
    /// MUST and SHOULD requirements.
    Strict,
}

impl Level {
    /// The level's name in reports and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Required => "required",
            Level::Strict => "strict",
        }
    }

    /// Parses `required` or `strict`.
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "required" => Some(Level::Required),
            "strict" => Some(Level::Strict),
            _ => None,
        }
    }
}

/// One test's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Passed.
    Pass,
    /// Failed, with why.
    Fail(String),
    /// Declared capability, answered `unsupported`: counts as a failure.
    Unsupported(String),
    /// Not selected by the declared capabilities: not run (CONF-34).
    Skipped(String),
    /// Failed, and listed in the implementation's expected-failures file (CONF-43).
    ExpectedFailure(String),
}

impl Outcome {
    /// The outcome's name in reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail(_) => "fail",
            Outcome::Unsupported(_) => "unsupported",
            Outcome::Skipped(_) => "skipped",
            Outcome::ExpectedFailure(_) => "expected-failure",
        }
    }

    /// The detail message, if any.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Outcome::Pass => None,
            Outcome::Fail(m)
            | Outcome::Unsupported(m)
            | Outcome::Skipped(m)
            | Outcome::ExpectedFailure(m) => Some(m),
        }
    }

    /// Whether the test was executed and did not pass.
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Fail(_) | Outcome::Unsupported(_))
    }
}

/// What kind of test a result is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A start-up or capability probe.
    Probe,
    /// A vector case.
    Vector,
    /// A scenario.
    Scenario,
    /// The SHOULD-level evidence checks of one scenario (CONF-32).
    Evidence,
    /// An entry of the expected-failures file.
    ExpectedFailures,
}

impl Kind {
    /// The kind's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Probe => "probe",
            Kind::Vector => "vector",
            Kind::Scenario => "scenario",
            Kind::Evidence => "evidence",
            Kind::ExpectedFailures => "expected-failures",
        }
    }
}

/// Selects the results of one row of [`Report::per_implementation`].
type Selector<'a> = Box<dyn Fn(&TestResult) -> bool + 'a>;

/// One test's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// Stable test id (vector case id, `scenario/<name>`, ...).
    pub id: String,
    /// What kind of test.
    pub kind: Kind,
    /// The level the test belongs to.
    pub level: Level,
    /// The capability profiles the test belongs to.
    pub profiles: Vec<String>,
    /// The outcome.
    pub outcome: Outcome,
    /// Wall time of the test in milliseconds (informative only).
    pub millis: u64,
}

impl TestResult {
    /// The result as one JSON object (a `results` item of `report.json`, and one
    /// line of the JSON-lines log).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "kind": self.kind.as_str(),
            "level": self.level.as_str(),
            "profiles": self.profiles,
            "outcome": self.outcome.as_str(),
            "millis": self.millis,
        });
        if let (Some(d), Some(o)) = (self.outcome.detail(), v.as_object_mut()) {
            o.insert("detail".into(), Value::String(d.into()));
        }
        v
    }
}

/// All results of a run, and where they stream to.
#[derive(Default)]
pub struct Report {
    /// Implementations (name and version from hello), one per adapter.
    pub implementations: Vec<String>,
    /// Capabilities declared by every implementation (their intersection).
    pub capabilities: Vec<String>,
    /// Capabilities declared by each implementation, in adapter order.
    pub declared: Vec<Vec<String>>,
    /// The run's seed (CONF-3, CONF-53): `--seed` with this value replays the run.
    pub seed: Option<u64>,
    /// The level the run is judged at.
    pub level: Level,
    /// The results, in the order they ended.
    pub results: Vec<TestResult>,
    /// A harness error that ended the run.
    pub harness_error: Option<String>,
    /// The JSON-lines log, written as results arrive.
    pub log: Option<Box<dyn Write>>,
}

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Report")
            .field("implementations", &self.implementations)
            .field("level", &self.level)
            .field("results", &self.results.len())
            .field("harness_error", &self.harness_error)
            .finish_non_exhaustive()
    }
}

impl Report {
    /// A report judged at `level`, streaming to `log` if given.
    pub fn new(level: Level, log: Option<Box<dyn Write>>) -> Self {
        Report {
            level,
            log,
            ..Report::default()
        }
    }

    fn emit(&mut self, event: Value) {
        if let Some(w) = self.log.as_mut() {
            // The log is best effort: a full disk must not change the verdict.
            let _ = writeln!(w, "{event}");
            let _ = w.flush();
        }
    }

    /// Records the start of the run in the log.
    pub fn started(&mut self) {
        let event = json!({
            "event": "start",
            "implementations": self.implementations,
            "capabilities": self.capabilities,
            "level": self.level.as_str(),
            "seed": self.seed_hex(),
        });
        self.emit(event);
    }

    /// Records a result (and streams it).
    pub fn push(&mut self, r: TestResult) {
        let mut line = r.to_json();
        if let Some(o) = line.as_object_mut() {
            o.insert("event".into(), Value::String("result".into()));
        }
        self.emit(line);
        self.results.push(r);
    }

    /// Records the harness error that ends the run.
    pub fn harness_failed(&mut self, e: String) {
        self.emit(json!({"event": "harness-error", "detail": e}));
        self.harness_error = Some(e);
    }

    /// Records the end of the run in the log.
    pub fn finished(&mut self) {
        let event = json!({
            "event": "end",
            "passed": self.passed(),
            "failed": self.failed(),
            "skipped": self.skipped(),
            "exitCode": self.exit_code(),
        });
        self.emit(event);
    }

    /// Whether a test's failure counts at the run's level.
    fn counts(&self, r: &TestResult) -> bool {
        r.level <= self.level
    }

    /// The seed as the 16 hex digits `--seed` takes.
    pub fn seed_hex(&self) -> Option<String> {
        self.seed.map(|s| format!("{s:016x}"))
    }

    /// Passed tests that count at the run's level: a passed `strict` test is not
    /// a pass of a `required` run (CONF-40).
    pub fn passed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.outcome == Outcome::Pass && self.counts(r))
            .count()
    }

    /// Skipped tests (CONF-34): not selected by the declared capabilities.
    pub fn skipped(&self) -> usize {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Skipped(_)))
            .count()
    }

    /// The closing line (CONF-36): `N passed, M failed, K skipped`.
    pub fn closing_line(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed(),
            self.failed(),
            self.skipped()
        )
    }

    /// Counts and status per implementation (CONF-39): its own tests (probes
    /// and vectors, prefixed `implN/` in a mixed run) and, for every
    /// implementation, the shared scenarios. Each row: name, passed, failed,
    /// skipped, and `pass`, `fail` or `not-run`.
    pub fn per_implementation(&self) -> Vec<(String, usize, usize, usize, &'static str)> {
        let mixed = self.implementations.len() > 1;
        let mut rows = Vec::new();
        let mut groups: Vec<(String, Selector<'_>)> = Vec::new();
        if mixed {
            for (i, name) in self.implementations.iter().enumerate() {
                let prefix = format!("impl{}/", i + 1);
                groups.push((
                    format!("impl{}: {name}", i + 1),
                    Box::new(move |r: &TestResult| r.id.starts_with(&prefix)),
                ));
            }
            groups.push((
                "shared scenarios (every implementation)".into(),
                Box::new(|r: &TestResult| !r.id.starts_with("impl")),
            ));
        } else {
            groups.push((
                self.implementations.join(" + "),
                Box::new(|_: &TestResult| true),
            ));
        }
        for (name, mine) in groups {
            let of: Vec<&TestResult> = self.results.iter().filter(|r| mine(r)).collect();
            let passed = of
                .iter()
                .filter(|r| r.outcome == Outcome::Pass && self.counts(r))
                .count();
            let failed = of
                .iter()
                .filter(|r| r.outcome.is_failure() && self.counts(r))
                .count();
            let skipped = of
                .iter()
                .filter(|r| matches!(r.outcome, Outcome::Skipped(_)))
                .count();
            let status = if failed > 0 || (self.harness_error.is_some() && !mixed) {
                "fail"
            } else if passed == 0 {
                "not-run"
            } else {
                "pass"
            };
            rows.push((name, passed, failed, skipped, status));
        }
        rows
    }

    /// Profiles this runner knows that the run did not execute: not declared
    /// (by every implementation), or declared with no test executed (CONF-47).
    pub fn profiles_not_run(&self) -> Vec<String> {
        let statuses = self.profiles();
        let mut out = Vec::new();
        for p in crate::runner::known_capabilities() {
            // `vectors/<family>/<crdt>` is covered by a declared `vectors/<family>`.
            let parent = p.rsplit_once('/').map(|(a, _)| a.to_string());
            if p.matches('/').count() == 2 && parent.is_some_and(|a| statuses.contains_key(&a)) {
                continue;
            }
            match statuses.get(&p) {
                None => out.push(format!("{p} (not declared)")),
                Some(l) if l.get("required") == Some(&"not-run") => {
                    out.push(format!("{p} (declared, no test executed)"))
                }
                Some(_) => {}
            }
        }
        out
    }

    /// Failed tests that count at the run's level (failures and unsupported
    /// declared capabilities).
    pub fn failed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.outcome.is_failure() && self.counts(r))
            .count()
    }

    /// Failed tests above the run's level (reported, not counted).
    pub fn warnings(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.outcome.is_failure() && !self.counts(r))
            .count()
    }

    /// Expected failures (listed by the implementation, and failing).
    pub fn expected_failures(&self) -> usize {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::ExpectedFailure(_)))
            .count()
    }

    /// Executed tests (CONF-34): everything not skipped.
    pub fn executed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| !matches!(r.outcome, Outcome::Skipped(_)))
            .count()
    }

    /// Exit code (CONF-35): 0 all passed, 1 failures, 2 harness error, 3 nothing ran.
    pub fn exit_code(&self) -> u8 {
        if self.harness_error.is_some() {
            2
        } else if self.executed() == 0 {
            3
        } else if self.failed() > 0 {
            1
        } else {
            0
        }
    }

    /// The status of each declared profile at each level (CONF-41):
    /// `conformant`, `failed` or `not-run`.
    pub fn profiles(&self) -> BTreeMap<String, BTreeMap<&'static str, &'static str>> {
        let mut out = BTreeMap::new();
        for cap in &self.capabilities {
            let mut levels = BTreeMap::new();
            for level in [Level::Required, Level::Strict] {
                let mine: Vec<&TestResult> = self
                    .results
                    .iter()
                    .filter(|r| r.level <= level && r.profiles.contains(cap))
                    .filter(|r| !matches!(r.outcome, Outcome::Skipped(_)))
                    .collect();
                let status = if self.harness_error.is_some() {
                    "failed"
                } else if mine.is_empty() {
                    "not-run"
                } else if mine.iter().all(|r| r.outcome == Outcome::Pass) {
                    "conformant"
                } else {
                    "failed"
                };
                levels.insert(level.as_str(), status);
            }
            out.insert(cap.clone(), levels);
        }
        out
    }

    /// `report.json` (CONF-45), as its schema defines.
    pub fn to_json(&self) -> Value {
        json!({
            "reportVersion": REPORT_VERSION,
            "harnessVersion": crate::HARNESS_VERSION,
            "seed": self.seed_hex(),
            "implementations": self.implementations,
            "perImplementation": self.per_implementation().into_iter().map(|(name, p, f, k, status)| json!({
                "implementation": name, "passed": p, "failed": f, "skipped": k, "status": status,
            })).collect::<Vec<_>>(),
            "profilesNotRun": self.profiles_not_run(),
            "capabilities": self.capabilities,
            "level": self.level.as_str(),
            "passed": self.passed(),
            "failed": self.failed(),
            "warnings": self.warnings(),
            "expectedFailures": self.expected_failures(),
            "skipped": self.skipped(),
            "harnessError": self.harness_error,
            "exitCode": self.exit_code(),
            "profiles": self.profiles(),
            "results": self.results.iter().map(TestResult::to_json).collect::<Vec<_>>(),
        })
    }

    /// JUnit XML (CONF-46): one `testsuite` per test kind.
    pub fn to_junit(&self) -> String {
        let mut suites: BTreeMap<&str, Vec<&TestResult>> = BTreeMap::new();
        for r in &self.results {
            suites.entry(r.kind.as_str()).or_default().push(r);
        }
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        x.push_str(&format!(
            "<testsuites name=\"clientful-conformance\" tests=\"{}\" failures=\"{}\">\n",
            self.results.len(),
            self.failed()
        ));
        if let Some(e) = &self.harness_error {
            x.push_str(&format!(
                "  <testsuite name=\"harness\" tests=\"1\" failures=\"0\" errors=\"1\">\n    <testcase name=\"harness\" classname=\"harness\"><error message=\"{}\"/></testcase>\n  </testsuite>\n",
                xml_escape(e)
            ));
        }
        for (kind, rs) in suites {
            let failures = rs
                .iter()
                .filter(|r| r.outcome.is_failure() && self.counts(r))
                .count();
            let skipped = rs
                .iter()
                .filter(|r| matches!(r.outcome, Outcome::Skipped(_)))
                .count();
            x.push_str(&format!(
                "  <testsuite name=\"{kind}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">\n",
                rs.len()
            ));
            for r in rs {
                let class = r.profiles.first().map(String::as_str).unwrap_or(kind);
                x.push_str(&format!(
                    "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\">",
                    xml_escape(&r.id),
                    xml_escape(class),
                    r.millis as f64 / 1000.0
                ));
                match &r.outcome {
                    Outcome::Pass => {}
                    Outcome::Skipped(m) | Outcome::ExpectedFailure(m) => {
                        x.push_str(&format!("<skipped message=\"{}\"/>", xml_escape(m)))
                    }
                    o @ (Outcome::Fail(m) | Outcome::Unsupported(m)) if self.counts(r) => x
                        .push_str(&format!(
                            "<failure type=\"{}\" message=\"{}\"/>",
                            o.as_str(),
                            xml_escape(m)
                        )),
                    Outcome::Fail(m) | Outcome::Unsupported(m) => x.push_str(&format!(
                        "<system-out>warning ({} level): {}</system-out>",
                        r.level.as_str(),
                        xml_escape(m)
                    )),
                }
                x.push_str("</testcase>\n");
            }
            x.push_str("  </testsuite>\n");
        }
        x.push_str("</testsuites>\n");
        x
    }

    /// The Markdown matrix (CONF-47): profiles by level, then every failure.
    pub fn to_markdown(&self) -> String {
        let mut m = String::from("# Clientful conformance report\n\n");
        m.push_str(&format!(
            "Implementation: {}  \nLevel: {}  \nSeed: {} (replay with `--seed {}`)  \nResult: {} passed, {} failed, {} skipped ({} warnings, {} expected failures); exit code {}\n\n",
            self.implementations.join(" + "),
            self.level.as_str(),
            self.seed_hex().unwrap_or_else(|| "none".into()),
            self.seed_hex().unwrap_or_default(),
            self.passed(),
            self.failed(),
            self.skipped(),
            self.warnings(),
            self.expected_failures(),
            self.exit_code()
        ));
        if self.implementations.len() > 1 {
            m.push_str("| Implementation | Passed | Failed | Skipped | Status |\n|---|---:|---:|---:|---|\n");
            for (name, p, f, k, status) in self.per_implementation() {
                m.push_str(&format!("| {name} | {p} | {f} | {k} | {status} |\n"));
            }
            m.push('\n');
        }
        if let Some(e) = &self.harness_error {
            m.push_str(&format!("**Harness error:** {e}\n\n"));
        }
        m.push_str("| Profile | Tests | Passed | Failed | Required | Strict |\n");
        m.push_str("|---|---:|---:|---:|---|---|\n");
        for (cap, levels) in self.profiles() {
            let mine: Vec<&TestResult> = self
                .results
                .iter()
                .filter(|r| r.profiles.contains(&cap))
                .collect();
            m.push_str(&format!(
                "| `{cap}` | {} | {} | {} | {} | {} |\n",
                mine.len(),
                mine.iter().filter(|r| r.outcome == Outcome::Pass).count(),
                mine.iter().filter(|r| r.outcome.is_failure()).count(),
                levels.get("required").copied().unwrap_or("not-run"),
                levels.get("strict").copied().unwrap_or("not-run"),
            ));
        }
        let not_run = self.profiles_not_run();
        if !not_run.is_empty() {
            m.push_str("\nProfiles not run (no claim can be made for them):\n\n");
            for p in not_run {
                m.push_str(&format!("- `{}\n", p.replacen(' ', "` ", 1)));
            }
        }
        let bad: Vec<&TestResult> = self
            .results
            .iter()
            .filter(|r| r.outcome.is_failure() || matches!(r.outcome, Outcome::ExpectedFailure(_)))
            .collect();
        if !bad.is_empty() {
            m.push_str("\n| Test | Level | Outcome | Detail |\n|---|---|---|---|\n");
            for r in bad {
                m.push_str(&format!(
                    "| `{}` | {} | {} | {} |\n",
                    r.id,
                    r.level.as_str(),
                    r.outcome.as_str(),
                    r.outcome
                        .detail()
                        .unwrap_or_default()
                        .replace('|', "\\|")
                        .replace('\n', " ")
                ));
            }
        }
        m.push_str(&format!("\n{}\n", self.closing_line()));
        m
    }
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters even as references.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str, level: Level, outcome: Outcome) -> TestResult {
        TestResult {
            id: id.into(),
            kind: Kind::Scenario,
            level,
            profiles: vec!["replica/yjs".into()],
            outcome,
            millis: 1,
        }
    }

    #[test]
    fn strict_failures_count_only_at_the_strict_level() {
        let mut r = Report::new(Level::Required, None);
        r.capabilities = vec!["replica/yjs".into()];
        r.push(result("a", Level::Required, Outcome::Pass));
        r.push(result("b", Level::Strict, Outcome::Fail("x".into())));
        r.push(result("c", Level::Strict, Outcome::Pass));
        // A passed strict test is not a pass of a required run.
        assert_eq!((r.passed(), r.failed(), r.warnings()), (1, 0, 1));
        assert_eq!(r.exit_code(), 0);
        assert_eq!(r.profiles()["replica/yjs"]["required"], "conformant");
        assert_eq!(r.profiles()["replica/yjs"]["strict"], "failed");
        r.level = Level::Strict;
        assert_eq!((r.passed(), r.failed(), r.warnings()), (2, 1, 0));
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn nothing_executed_is_exit_3_and_harness_error_wins() {
        let mut r = Report::new(Level::Required, None);
        r.push(result("a", Level::Required, Outcome::Skipped("no".into())));
        assert_eq!(r.exit_code(), 3);
        r.harness_failed("gone".into());
        assert_eq!(r.exit_code(), 2);
    }

    #[test]
    fn junit_escapes_and_marks_failures() {
        let mut r = Report::new(Level::Required, None);
        r.push(result(
            "<a&b>",
            Level::Required,
            Outcome::Fail("\"q\"\u{1}".into()),
        ));
        let x = r.to_junit();
        assert!(x.contains("name=\"&lt;a&amp;b&gt;\""), "{x}");
        assert!(
            x.contains("<failure type=\"fail\" message=\"&quot;q&quot;?\"/>"),
            "{x}"
        );
        assert!(r.to_markdown().ends_with("0 passed, 1 failed, 0 skipped\n"));
    }

    #[test]
    fn the_log_streams_one_json_object_per_line() {
        #[derive(Clone, Default)]
        struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.borrow_mut().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Shared::default();
        let mut r = Report::new(Level::Required, Some(Box::new(buf.clone())));
        r.started();
        r.push(result("a", Level::Required, Outcome::Pass));
        r.finished();
        let text = String::from_utf8(buf.0.borrow().clone()).unwrap_or_default();
        let events: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
            .collect();
        assert_eq!(events.len(), 3);
        assert_eq!(events[1]["id"], "a");
        assert_eq!(events[2]["exitCode"], 0);
    }
}
