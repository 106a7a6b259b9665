//! Verification of a vectors directory: checksums, id registry, schema rules, and
//! every case against the reference implementation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use clientful_core::error::{class_from_name, class_name};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::schema::{Case, Group, SCHEMA_ID, VectorFile};
use crate::{CHECKSUM_FILE, FAMILIES, IDS_LOCK_FILE, families};

/// What running one case produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Accepted, with this output.
    Accepted(Value),
    /// Rejected with this error class.
    Rejected(clientful_core::ErrorClass),
}

/// Counts and failure messages.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Checks that passed (one per case).
    pub passed: usize,
    /// Checks that failed (cases and file-level checks).
    pub failed: usize,
    /// One line per failure.
    pub failures: Vec<String>,
    /// Cases per family: (passed, failed).
    pub per_family: BTreeMap<String, (usize, usize)>,
}

impl Report {
    fn fail(&mut self, msg: String) {
        self.failed += 1;
        self.failures.push(msg);
    }

    fn merge(&mut self, other: Report) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.failures.extend(other.failures);
        for (k, (p, f)) in other.per_family {
            let e = self.per_family.entry(k).or_default();
            e.0 += p;
            e.1 += f;
        }
    }
}

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A requirement id: uppercase letters, digits and hyphens, at least one hyphen,
/// ending in a digit (`ENV-7`, `ENV-LIM-1`, `ID-V4`).
pub fn is_spec_ref(s: &str) -> bool {
    s.contains('-')
        && s.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && s.bytes().last().is_some_and(|b| b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

/// Schema rules of one case that serde cannot express.
fn check_case_shape(file: &VectorFile, group: &Group, case: &Case) -> Result<(), String> {
    let mut parts = case.id.split('/');
    let (fam, op, name) = (parts.next(), parts.next(), parts.next());
    if fam != Some(file.family.as_str())
        || op != Some(group.operation.as_str())
        || !name.is_some_and(is_slug)
        || parts.next().is_some()
    {
        return Err("id must be <family>/<operation>/<lowercase-slug>".into());
    }
    if !["MUST", "SHOULD", "MAY"].contains(&case.requirement.as_str()) {
        return Err("requirement must be MUST, SHOULD or MAY".into());
    }
    if case.spec_refs.is_empty() || !case.spec_refs.iter().all(|r| is_spec_ref(r)) {
        return Err("specRefs must list requirement ids like ENV-7".into());
    }
    for flag in &case.flags {
        if !file.notes.contains_key(flag) {
            return Err(format!("flag `{flag}` is not documented in notes"));
        }
    }
    match (case.result.as_str(), &case.error) {
        ("valid", None) => Ok(()),
        ("invalid", Some(e)) if class_from_name(e).is_some() && !case.flags.is_empty() => Ok(()),
        ("invalid", _) => Err("an invalid case needs a known error class and a flag".into()),
        ("acceptable", _) if !case.flags.is_empty() => Ok(()),
        _ => Err("result must be valid (no error), invalid or acceptable".into()),
    }
}

/// Verifies one parsed file (schema rules and every case).
pub fn verify_file(file: &VectorFile) -> Report {
    let mut r = Report::default();
    let fam = file.family.clone();
    let mut fam_pass = 0;
    let mut fam_fail = 0;
    if file.schema != SCHEMA_ID {
        r.fail(format!("{fam}: schema is not {SCHEMA_ID}"));
    }
    let count: usize = file.groups.iter().map(|g| g.cases.len()).sum();
    if count != file.number_of_cases {
        r.fail(format!(
            "{fam}: numberOfCases is {} but the file has {count}",
            file.number_of_cases
        ));
    }
    let mut seen = BTreeSet::new();
    for (group, case) in file.cases() {
        let verdict = if !seen.insert(case.id.clone()) {
            Err("duplicate id".to_string())
        } else {
            check_case_shape(file, group, case).and_then(|()| run_case(file, group, case))
        };
        match verdict {
            Ok(()) => {
                r.passed += 1;
                fam_pass += 1;
            }
            Err(e) => {
                fam_fail += 1;
                r.fail(format!("{}: {e}", case.id));
            }
        }
    }
    r.per_family.insert(fam, (fam_pass, fam_fail));
    r
}

fn run_case(file: &VectorFile, group: &Group, case: &Case) -> Result<(), String> {
    check_case(&file.family, &group.operation, &group.params, case)
}

/// Runs one case of `family` against the reference and checks its intended
/// verdict: `Ok` when the reference agrees.
pub fn check_case(
    family: &str,
    operation: &str,
    params: &Value,
    case: &Case,
) -> Result<(), String> {
    let outcome = run_operation(family, operation, params, &case.input)?;
    judge(case, outcome)
}

/// Runs one operation of `family` against the reference.
pub fn run_operation(
    family: &str,
    operation: &str,
    params: &Value,
    input: &Value,
) -> Result<Outcome, String> {
    match family {
        "primitives" => families::primitives::run(operation, params, input),
        "identity" => families::identity::run(operation, params, input),
        "wire-codec" => families::wire_codec::run(operation, params, input),
        "envelope-open" => families::envelope_open::run(operation, params, input),
        "crdt-merge" => families::crdt_merge::run(operation, params, input),
        "passive-replica" => families::passive_replica::run(operation, params, input),
        "membership" => families::membership::run(operation, params, input),
        "storage" => families::storage::run(operation, params, input),
        "room" => families::room::run(operation, params, input),
        "backup" => families::backup::run(operation, params, input),
        "recovery" => families::recovery::run(operation, params, input),
        "attestation" => families::attestation::run(operation, params, input),
        other => Err(format!("unknown family {other}")),
    }
}

fn judge(case: &Case, outcome: Outcome) -> Result<(), String> {
    match (case.result.as_str(), outcome) {
        ("valid", Outcome::Accepted(out)) if out == case.expected => Ok(()),
        ("valid", Outcome::Accepted(out)) => Err(format!(
            "output differs: expected {}, got {}",
            case.expected, out
        )),
        ("valid", Outcome::Rejected(c)) => Err(format!("rejected with {}", class_name(c))),
        ("invalid", Outcome::Rejected(c)) if Some(class_name(c)) == case.error.as_deref() => Ok(()),
        ("invalid", Outcome::Rejected(c)) => Err(format!(
            "rejected with {} instead of {}",
            class_name(c),
            case.error.as_deref().unwrap_or("?")
        )),
        ("invalid", Outcome::Accepted(_)) => Err(format!(
            "accepted, expected {}",
            case.error.as_deref().unwrap_or("?")
        )),
        // An acceptable case may go either way.
        ("acceptable", _) => Ok(()),
        (other, _) => Err(format!("unknown result {other}")),
    }
}

/// Parses `SHA256SUMS`: file name -> hex digest.
fn parse_checksums(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (digest, name) = line
            .split_once("  ")
            .ok_or_else(|| format!("bad checksum line: {line}"))?;
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("bad digest in line: {line}"));
        }
        out.insert(name.to_string(), digest.to_ascii_lowercase());
    }
    Ok(out)
}

/// The id registry: active ids and tombstoned ids.
#[derive(Debug, Default)]
pub struct IdsLock {
    /// Ids in use.
    pub active: BTreeSet<String>,
    /// Ids retired for ever.
    pub tombstoned: BTreeSet<String>,
}

/// Parses `ids.lock`: one id per line, `# comments`, and retired ids as
/// `<id> tombstoned`.
pub fn parse_ids_lock(text: &str) -> IdsLock {
    let mut lock = IdsLock::default();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(' ') {
            Some((id, "tombstoned")) => {
                lock.tombstoned.insert(id.to_string());
            }
            _ => {
                lock.active.insert(line.to_string());
            }
        }
    }
    lock
}

/// Checks case ids against the registry: every id registered and not retired,
/// every registered id still present.
pub fn check_ids(ids: &[String], lock: &IdsLock) -> Vec<String> {
    let mut problems = Vec::new();
    let present: BTreeSet<&String> = ids.iter().collect();
    for id in ids {
        if lock.tombstoned.contains(id) {
            problems.push(format!("{id}: id was tombstoned and must never be reused"));
        } else if !lock.active.contains(id) {
            problems.push(format!("{id}: id is not registered in {IDS_LOCK_FILE}"));
        }
    }
    for id in &lock.active {
        if !present.contains(id) {
            problems.push(format!(
                "{id}: registered id missing from the vectors (tombstone it instead of deleting)"
            ));
        }
    }
    problems
}

/// The integrity check of a vectors directory: every family file and `ids.lock`
/// against `SHA256SUMS`, which lists exactly those files. Any edit of a covered
/// file fails it; [`verify_dir`] runs it first.
pub fn verify_checksums(dir: &Path) -> Report {
    let mut report = Report::default();
    let sums = match std::fs::read_to_string(dir.join(CHECKSUM_FILE))
        .map_err(|e| e.to_string())
        .and_then(|t| parse_checksums(&t))
    {
        Ok(s) => s,
        Err(e) => {
            report.fail(format!("{CHECKSUM_FILE}: {e}"));
            BTreeMap::new()
        }
    };
    let covered = crate::generate::checksummed_files();
    for name in &covered {
        let digest = match std::fs::read(dir.join(name)) {
            Ok(bytes) => hex::encode(Sha256::digest(&bytes)),
            Err(e) => {
                report.fail(format!("{name}: {e}"));
                continue;
            }
        };
        match sums.get(name) {
            Some(d) if *d == digest => {}
            Some(_) => report.fail(format!(
                "{name}: checksum mismatch (file corrupted or edited by hand)"
            )),
            None => report.fail(format!("{name}: not listed in {CHECKSUM_FILE}")),
        }
    }
    for name in sums.keys() {
        if !covered.contains(name) {
            report.fail(format!("{CHECKSUM_FILE}: lists unknown file {name}"));
        }
    }
    report
}

/// Verifies a vectors directory.
pub fn verify_dir(dir: &Path) -> Report {
    let mut report = verify_checksums(dir);
    let mut ids = Vec::new();
    for family in FAMILIES {
        let name = format!("{family}.json");
        let Ok(bytes) = std::fs::read(dir.join(&name)) else {
            continue; // already reported above
        };
        match serde_json::from_slice::<VectorFile>(&bytes) {
            Ok(file) if file.family == *family => {
                ids.extend(file.cases().map(|(_, c)| c.id.clone()));
                report.merge(verify_file(&file));
            }
            Ok(file) => report.fail(format!("{name}: family is {}", file.family)),
            Err(e) => report.fail(format!("{name}: does not match the schema: {e}")),
        }
    }
    match std::fs::read_to_string(dir.join(IDS_LOCK_FILE)) {
        Ok(text) => {
            for p in check_ids(&ids, &parse_ids_lock(&text)) {
                report.fail(p);
            }
        }
        Err(e) => report.fail(format!("{IDS_LOCK_FILE}: {e}")),
    }
    report
}
