//! Results and reports (spec §12.8, §12.10): the outcome of each test, the
//! conformance level it belongs to, the counts and exit status of a run, and the
//! four report formats: the streaming JSON-lines log, `report.json` (schema in
//! `conformance/report.schema.json`), JUnit XML and a Markdown matrix.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Value, json};

/// Version of the `report.json` format (the schema's `reportVersion`).
pub const REPORT_VERSION: u32 = 1;

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
            "exitCode": self.exit_code(),
        });
        self.emit(event);
    }

    /// Whether a test's failure counts at the run's level.
    fn counts(&self, r: &TestResult) -> bool {
        r.level <= self.level
    }

    /// Passed tests.
    pub fn passed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.outcome == Outcome::Pass)
            .count()
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
            "implementations": self.implementations,
            "capabilities": self.capabilities,
            "level": self.level.as_str(),
            "passed": self.passed(),
            "failed": self.failed(),
            "warnings": self.warnings(),
            "expectedFailures": self.expected_failures(),
            "skipped": self.results.len() - self.executed(),
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
            "Implementation: {}  \nLevel: {}  \nResult: {} passed, {} failed ({} warnings, {} expected failures, {} skipped); exit code {}\n\n",
            self.implementations.join(" + "),
            self.level.as_str(),
            self.passed(),
            self.failed(),
            self.warnings(),
            self.expected_failures(),
            self.results.len() - self.executed(),
            self.exit_code()
        ));
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
        m.push_str(&format!(
            "\n{} passed, {} failed\n",
            self.passed(),
            self.failed()
        ));
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
        assert_eq!((r.passed(), r.failed(), r.warnings()), (1, 0, 1));
        assert_eq!(r.exit_code(), 0);
        assert_eq!(r.profiles()["replica/yjs"]["required"], "conformant");
        assert_eq!(r.profiles()["replica/yjs"]["strict"], "failed");
        r.level = Level::Strict;
        assert_eq!((r.failed(), r.warnings()), (1, 0));
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
        assert!(r.to_markdown().ends_with("0 passed, 1 failed\n"));
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
