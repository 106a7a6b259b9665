//! The specification's requirement ids stay consistent: the index lists exactly the
//! ids the chapters define, no id is defined twice, and every id a vector or a test
//! cites exists.
//! spec: CONV-4.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clientful_vectors::FAMILIES;
use clientful_vectors::schema::VectorFile;
use clientful_vectors::verify::is_spec_ref as is_id;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Ids defined as `**ID.**` in the chapters, with the file defining each.
fn defined() -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(root().join("spec")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".md") || name == "requirements.md" || name == "README.md" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for part in text.split("**").skip(1).step_by(2) {
            if let Some(id) = part.strip_suffix('.')
                && is_id(id)
            {
                out.entry(id.to_string()).or_default().push(name.clone());
            }
        }
    }
    out
}

fn indexed() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("spec/requirements.md")).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" |").next())
        .filter(|id| is_id(id))
        .map(str::to_string)
        .collect()
}

#[test]
fn index_matches_chapters_and_ids_are_unique() {
    let defined = defined();
    let twice: Vec<_> = defined
        .iter()
        .filter(|(_, files)| files.len() > 1)
        .collect();
    assert!(twice.is_empty(), "defined more than once: {twice:?}");
    let defined: BTreeSet<String> = defined.into_keys().collect();
    let indexed = indexed();
    assert!(
        defined.len() >= 100,
        "only {} requirements found",
        defined.len()
    );
    let missing: Vec<_> = defined.difference(&indexed).collect();
    let stale: Vec<_> = indexed.difference(&defined).collect();
    assert!(
        missing.is_empty(),
        "defined but not in spec/requirements.md: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "in spec/requirements.md but defined nowhere: {stale:?}"
    );
}

#[test]
fn every_cited_id_exists() {
    let defined: BTreeSet<String> = defined().into_keys().collect();
    let mut dangling = BTreeSet::new();
    for family in FAMILIES {
        let bytes = std::fs::read(root().join(format!("test-vectors/{family}.json"))).unwrap();
        let file: VectorFile = serde_json::from_slice(&bytes).unwrap();
        for (_, case) in file.cases() {
            for r in &case.spec_refs {
                if !defined.contains(r) {
                    dangling.insert(format!("{}: {r}", case.id));
                }
            }
        }
    }
    let mut stack = vec![root().join("reference")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                for line in std::fs::read_to_string(&path).unwrap().lines() {
                    if let Some((_, refs)) = line.split_once("spec: ") {
                        for r in refs.split([',', ' ', '.']).filter(|r| is_id(r)) {
                            if !defined.contains(r) {
                                dangling.insert(format!("{}: {r}", path.display()));
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(
        dangling.is_empty(),
        "cited but not defined in spec/: {dangling:#?}"
    );
}
