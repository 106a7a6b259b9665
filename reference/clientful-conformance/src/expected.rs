//! The expected-failures file (spec CONF-43, CONF-44): a list, owned by the
//! implementation under test, of tests it knows it fails, each with a reason. A
//! listed test that fails is reported as an expected failure and does not fail
//! the run; a listed test that passes, or that the run never executed, is a
//! **stale** entry, and a stale entry fails the run, so the list can only shrink
//! towards zero and never hides a fixed bug or a renamed test.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::report::{Kind, Level, Outcome, Report, TestResult};

/// The parsed file: test id to reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpectedFailures {
    entries: BTreeMap<String, String>,
}

/// Why an expected-failures file was refused (a harness error: exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ExpectedFailuresError {
    /// Not JSON, or not the documented shape.
    #[error("expected-failures file: {0}")]
    Invalid(String),
}

impl ExpectedFailures {
    /// Parses `{"expectedFailures": [{"id": "...", "reason": "..."}, ...]}`. Every
    /// entry needs a non-empty reason; an id listed twice is refused.
    pub fn parse(bytes: &[u8]) -> Result<Self, ExpectedFailuresError> {
        let bad = |m: &str| ExpectedFailuresError::Invalid(m.to_string());
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| ExpectedFailuresError::Invalid(e.to_string()))?;
        let list = v
            .get("expectedFailures")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("needs an `expectedFailures` array"))?;
        let mut entries = BTreeMap::new();
        for e in list {
            let id = e
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| bad("every entry needs a non-empty `id`"))?;
            let reason = e
                .get("reason")
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| bad("every entry needs a non-empty `reason`"))?;
            if entries.insert(id.to_string(), reason.to_string()).is_some() {
                return Err(ExpectedFailuresError::Invalid(format!(
                    "{id} is listed twice"
                )));
            }
        }
        Ok(ExpectedFailures { entries })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file lists nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Applies the file to a finished run: listed failures become expected
    /// failures; each stale entry adds a failed test `expected-failures/<id>`.
    pub fn apply(&self, report: &mut Report) {
        let mut seen = BTreeMap::new();
        for r in report.results.iter_mut() {
            let Some(reason) = self.entries.get(&r.id) else {
                continue;
            };
            seen.insert(r.id.clone(), r.outcome.clone());
            if r.outcome.is_failure() {
                let detail = r.outcome.detail().unwrap_or_default().to_string();
                r.outcome = Outcome::ExpectedFailure(format!("{reason} (got: {detail})"));
            }
        }
        if report.harness_error.is_some() {
            // A run cut short says nothing about the entries it did not reach.
            return;
        }
        for (id, reason) in &self.entries {
            let stale = match seen.get(id) {
                None => Some("the run has no such executed test".to_string()),
                Some(Outcome::Pass) => Some("the test now passes".to_string()),
                Some(Outcome::Skipped(_)) => Some("the test was not executed".to_string()),
                Some(_) => None,
            };
            if let Some(why) = stale {
                report.push(TestResult {
                    id: format!("expected-failures/{id}"),
                    kind: Kind::ExpectedFailures,
                    level: Level::Required,
                    profiles: Vec::new(),
                    outcome: Outcome::Fail(format!(
                        "stale expected-failure entry ({reason}): {why}; remove it"
                    )),
                    millis: 0,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(outcomes: &[(&str, Outcome)]) -> Report {
        let mut r = Report::new(Level::Required, None);
        for (id, o) in outcomes {
            r.push(TestResult {
                id: (*id).into(),
                kind: Kind::Scenario,
                level: Level::Required,
                profiles: vec![],
                outcome: o.clone(),
                millis: 0,
            });
        }
        r
    }

    #[test]
    fn listed_failure_is_expected_and_the_run_passes() {
        let xf = ExpectedFailures::parse(
            br#"{"expectedFailures":[{"id":"a","reason":"known bug #12"}]}"#,
        )
        .unwrap_or_default();
        let mut r = run_with(&[("a", Outcome::Fail("x".into())), ("b", Outcome::Pass)]);
        xf.apply(&mut r);
        assert_eq!((r.passed(), r.failed(), r.expected_failures()), (1, 0, 1));
        assert_eq!(r.exit_code(), 0);
    }

    #[test]
    fn stale_entries_fail_the_run() {
        let xf = ExpectedFailures::parse(
            br#"{"expectedFailures":[{"id":"a","reason":"r"},{"id":"gone","reason":"r"}]}"#,
        )
        .unwrap_or_default();
        assert_eq!(xf.len(), 2);
        let mut r = run_with(&[("a", Outcome::Pass)]);
        xf.apply(&mut r);
        assert_eq!(r.failed(), 2);
        assert_eq!(r.exit_code(), 1);
        assert!(r.results.iter().any(|t| t.id == "expected-failures/gone"));
    }

    #[test]
    fn malformed_files_are_refused() {
        for bad in [
            &b"[]"[..],
            br#"{"expectedFailures":[{"id":"a"}]}"#,
            br#"{"expectedFailures":[{"id":"a","reason":"r"},{"id":"a","reason":"r"}]}"#,
            b"not json",
        ] {
            assert!(ExpectedFailures::parse(bad).is_err());
        }
    }
}
