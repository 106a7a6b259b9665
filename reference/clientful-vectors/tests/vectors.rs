//! The committed test vectors: they verify, they are exactly what the generator
//! produces, corrupting any byte of them is detected, and every requirement of the
//! envelope chapter is cited by a vector or a test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clientful_vectors::schema::VectorFile;
use clientful_vectors::{CHECKSUM_FILE, FAMILIES, generate, verify};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn vectors_dir() -> PathBuf {
    repo_root().join("test-vectors")
}

fn load(family: &str) -> VectorFile {
    let bytes = std::fs::read(vectors_dir().join(format!("{family}.json"))).expect("vector file");
    serde_json::from_slice(&bytes).expect("schema")
}

#[test]
fn committed_vectors_verify() {
    let report = verify::verify_dir(&vectors_dir());
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert_eq!(report.failed, 0);
    assert!(report.passed >= 60, "only {} cases", report.passed);
    println!("{} passed, {} failed", report.passed, report.failed);
}

#[test]
fn families_meet_the_minimums() {
    let mut total = 0;
    let mut invalid = 0;
    for family in FAMILIES {
        let file = load(family);
        assert!(file.number_of_cases > 0, "{family} is empty");
        for (_, case) in file.cases() {
            total += 1;
            if case.result == "invalid" {
                invalid += 1;
                assert!(case.error.is_some(), "{} has no error class", case.id);
            }
            assert!(!case.spec_refs.is_empty(), "{} cites nothing", case.id);
        }
    }
    let env_invalid = load("envelope-open")
        .cases()
        .filter(|(_, c)| c.result == "invalid")
        .count();
    assert!(
        total >= 60 && invalid >= 30 && env_invalid >= 30,
        "{total} {invalid} {env_invalid}"
    );
}

#[test]
fn regeneration_is_byte_identical() {
    let files = generate::generate_all().expect("generator agrees with the reference");
    for (name, bytes) in &files {
        let on_disk = std::fs::read(vectors_dir().join(name)).expect("file on disk");
        assert!(
            on_disk == *bytes,
            "{name} differs from the generator output: run `cargo run -p clientful-cli --features vectors -- vectors generate test-vectors`"
        );
    }
    let ids = generate::case_ids(&files).expect("ids");
    let lock = std::fs::read_to_string(vectors_dir().join(clientful_vectors::IDS_LOCK_FILE))
        .expect("ids.lock");
    let problems = verify::check_ids(&ids, &verify::parse_ids_lock(&lock));
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn generation_is_deterministic() {
    assert_eq!(
        generate::generate_all().expect("first"),
        generate::generate_all().expect("second")
    );
}

/// Flips one bit at evenly spread positions (always including the first and the
/// last byte) of every file the checksum file covers, and of the checksum file
/// itself, and checks that verification fails each time.
#[test]
fn corrupting_any_byte_fails() {
    let src = vectors_dir();
    let mut names = generate::checksummed_files();
    names.push(CHECKSUM_FILE.to_string());
    let mut runs = 0;
    for name in &names {
        let original = std::fs::read(src.join(name)).expect("file");
        let len = original.len();
        let mut positions: BTreeSet<usize> = (0..24).map(|i| i * len / 24).collect();
        positions.insert(len - 1);
        for pos in positions {
            let dir = tempfile::tempdir().expect("tempdir");
            for entry in std::fs::read_dir(&src).expect("dir") {
                let entry = entry.expect("entry");
                std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
            }
            let mut bytes = original.clone();
            bytes[pos] ^= 0x01;
            std::fs::write(dir.path().join(name), &bytes).expect("write");
            // The checksums alone notice it (verify_dir runs them first); replaying
            // every case for each of these copies would cost an Argon2id run per
            // `backup` case each time.
            let report = verify::verify_checksums(dir.path());
            assert!(
                report.failed > 0,
                "flipping byte {pos} of {name} went unnoticed"
            );
            runs += 1;
        }
    }
    assert!(runs >= 100);
}

/// Requirement ids defined (as `**ID.**`) in a spec chapter.
fn defined_ids(chapter: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(chapter).expect("spec chapter");
    let mut ids = BTreeSet::new();
    for part in text.split("**").skip(1).step_by(2) {
        if let Some(id) = part.strip_suffix('.')
            && id.contains('-')
            && id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        {
            ids.insert(id.to_string());
        }
    }
    ids
}

/// Every Rust source file below `dir`.
fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = entry.path();
        if path.is_dir() && !path.ends_with("target") {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_envelope_requirement_is_cited() {
    let root = repo_root();
    let mut required = defined_ids(&root.join("spec/06-envelope.md"));
    required.extend(
        defined_ids(&root.join("spec/07-limits.md"))
            .into_iter()
            .filter(|id| id.starts_with("ENV-")),
    );
    assert!(
        required.len() >= 20,
        "envelope chapter defines only {required:?}"
    );
    let mut cited = BTreeSet::new();
    for family in FAMILIES {
        for (_, case) in load(family).cases() {
            cited.extend(case.spec_refs.iter().cloned());
        }
    }
    let mut sources = Vec::new();
    rust_sources(&root.join("reference"), &mut sources);
    // A test cites requirements in its doc comment as `spec: ENV-21, ENV-23.`
    for source in &sources {
        let text = std::fs::read_to_string(source).expect("source");
        for line in text.lines() {
            if let Some((_, refs)) = line.split_once("spec: ") {
                cited.extend(
                    refs.split([',', ' ', '.'])
                        .filter(|r| r.contains('-'))
                        .map(str::to_string),
                );
            }
        }
    }
    let missing: Vec<&String> = required.iter().filter(|id| !cited.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "not cited by any vector or test: {missing:?}"
    );
}

/// The hand-written README documents what the generated files hold: a row of its
/// Operations table for every (family, operation) of the committed files and none
/// for anything else, a file-table row for every family file, and the true number
/// of files `SHA256SUMS` covers.
#[test]
fn readme_documents_every_operation_and_file() {
    let readme = std::fs::read_to_string(vectors_dir().join("README.md")).expect("README");
    let ops_start = readme.find("## Operations").expect("Operations section");
    let ops_end = readme[ops_start..]
        .find("\n## ")
        .map_or(readme.len(), |e| ops_start + 1 + e);
    let documented: BTreeSet<(String, String)> = readme[ops_start..ops_end]
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let op = cells.get(2)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((cells[1].to_string(), op.to_string()))
        })
        .collect();
    let mut generated = BTreeSet::new();
    for family in FAMILIES {
        assert!(
            readme.contains(&format!("| `{family}.json` | {family} |")),
            "README file table lacks {family}.json"
        );
        for g in &load(family).groups {
            generated.insert((family.to_string(), g.operation.clone()));
        }
    }
    assert_eq!(
        documented, generated,
        "README Operations table vs the files"
    );
    let sums = std::fs::read_to_string(vectors_dir().join(CHECKSUM_FILE)).expect("sums");
    let lines = sums.lines().count();
    assert_eq!(lines, FAMILIES.len() + 1, "family files and ids.lock");
    let words = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen",
    ];
    let claim = format!(
        "the {} family JSON files above and `ids.lock`: {} lines",
        words[FAMILIES.len()],
        words[lines]
    );
    assert!(readme.contains(&claim), "README must say: {claim}");
}
