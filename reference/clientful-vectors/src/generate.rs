//! Deterministic generation of every vector file.
//!
//! Each family builds its groups with [`FileBuilder`]; every case carries its
//! intended verdict. [`generate_all`] then runs the verifier over the result and
//! refuses to emit a file in which the reference implementation disagrees with any
//! intended verdict.

use std::collections::BTreeMap;

use clientful_core::ErrorClass;
use clientful_core::error::class_name;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::schema::{Case, Generator, Group, Note, SCHEMA_ID, VectorFile};
use crate::{SPEC_VERSION, families, verify};

/// The RNG of a family: ChaCha20 seeded with `SHA-256(seed string)`.
pub fn family_rng(seed: &str) -> ChaCha20Rng {
    ChaCha20Rng::from_seed(Sha256::digest(seed.as_bytes()).into())
}

/// The seed string of a family's fresh cases for one conformance run (spec CONF-53):
/// the family's fixed seed, then `/run/` and the run seed in hex.
pub fn run_seed(family_seed: &str, run: u64) -> String {
    format!("{family_seed}/run/{run:016x}")
}

/// What varies when a family is generated from another seed than its fixed one
/// (the fresh cases of a conformance run, CONF-53). With the fixed seed every
/// method returns the value it is given, so the committed files do not change.
#[derive(Debug, Clone)]
pub struct Variation {
    rng: Option<ChaCha20Rng>,
    seed: String,
}

impl Variation {
    /// The variation of `seed` for a family whose fixed seed is `family_seed`.
    pub fn new(seed: &str, family_seed: &str) -> Self {
        Variation {
            rng: (seed != family_seed).then(|| family_rng(&format!("{seed}/variation"))),
            seed: seed.to_string(),
        }
    }

    /// Whether this is a fresh generation (not the fixed seed).
    pub fn is_fresh(&self) -> bool {
        self.rng.is_some()
    }

    /// A world seed: `fixed`, or one derived from the fresh seed and `fixed`.
    pub fn world(&self, fixed: u64) -> u64 {
        if self.rng.is_none() {
            return fixed;
        }
        let d = Sha256::digest(format!("{}/world/{fixed}", self.seed).as_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(d.get(..8).unwrap_or(&[0; 8]));
        u64::from_be_bytes(b)
    }

    /// A fill byte: `fixed`, or a random non-zero byte.
    pub fn byte(&mut self, fixed: u8) -> u8 {
        match self.rng.as_mut() {
            None => fixed,
            Some(r) => (r.next_u32() % 255) as u8 + 1,
        }
    }

    /// A number: `fixed`, or a random one in `1..=max`.
    pub fn number(&mut self, fixed: u64, max: u64) -> u64 {
        match self.rng.as_mut() {
            None => fixed,
            Some(r) => r.next_u64() % max.max(1) + 1,
        }
    }

    /// Content bytes: `fixed`, or as many random bytes.
    pub fn bytes(&mut self, fixed: &[u8]) -> Vec<u8> {
        match self.rng.as_mut() {
            None => fixed.to_vec(),
            Some(r) => {
                let mut b = vec![0u8; fixed.len()];
                r.fill_bytes(&mut b);
                b
            }
        }
    }
}

/// Builds one vector file.
#[derive(Debug)]
pub struct FileBuilder {
    file: VectorFile,
}

impl FileBuilder {
    /// A new, empty file for `family`.
    pub fn new(family: &str, seed: &str, description: &str) -> Self {
        FileBuilder {
            file: VectorFile {
                schema: SCHEMA_ID.into(),
                family: family.into(),
                spec_version: SPEC_VERSION.into(),
                generator: Generator {
                    name: "clientful-vectors".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    seed: seed.into(),
                },
                description: description.into(),
                notes: BTreeMap::new(),
                number_of_cases: 0,
                groups: Vec::new(),
            },
        }
    }

    /// Documents a flag.
    pub fn note(&mut self, flag: &str, bug_type: &str, description: &str) {
        self.file.notes.insert(
            flag.into(),
            Note {
                bug_type: bug_type.into(),
                description: description.into(),
            },
        );
    }

    /// Starts a group; cases are added with [`FileBuilder::valid`] and
    /// [`FileBuilder::invalid`].
    pub fn group(&mut self, operation: &str, description: &str, params: Value) {
        self.file.groups.push(Group {
            operation: operation.into(),
            description: description.into(),
            params,
            cases: Vec::new(),
        });
    }

    fn push(&mut self, case: Case) {
        if let Some(g) = self.file.groups.last_mut() {
            g.cases.push(case);
        }
    }

    fn id(&self, name: &str) -> String {
        let op = self
            .file
            .groups
            .last()
            .map(|g| g.operation.as_str())
            .unwrap_or("none");
        format!("{}/{}/{}", self.file.family, op, name)
    }

    /// Adds a valid case.
    pub fn valid(
        &mut self,
        name: &str,
        description: &str,
        spec_refs: &[&str],
        flags: &[&str],
        input: Value,
        expected: Value,
    ) {
        let case = Case {
            id: self.id(name),
            description: description.into(),
            requirement: "MUST".into(),
            spec_refs: spec_refs.iter().map(|s| s.to_string()).collect(),
            result: "valid".into(),
            error: None,
            flags: flags.iter().map(|s| s.to_string()).collect(),
            input,
            expected,
        };
        self.push(case);
    }

    /// Adds an invalid case that must be rejected with `error`.
    pub fn invalid(
        &mut self,
        name: &str,
        description: &str,
        spec_refs: &[&str],
        error: ErrorClass,
        flags: &[&str],
        input: Value,
    ) {
        let case = Case {
            id: self.id(name),
            description: description.into(),
            requirement: "MUST".into(),
            spec_refs: spec_refs.iter().map(|s| s.to_string()).collect(),
            result: "invalid".into(),
            error: Some(class_name(error).into()),
            flags: flags.iter().map(|s| s.to_string()).collect(),
            input,
            expected: Value::Null,
        };
        self.push(case);
    }

    /// The finished file.
    pub fn finish(mut self) -> VectorFile {
        self.file.number_of_cases = self.file.groups.iter().map(|g| g.cases.len()).sum();
        self.file
    }
}

/// Serializes a file the one canonical way: 2-space pretty JSON, trailing newline.
pub fn to_bytes(file: &VectorFile) -> Result<Vec<u8>, String> {
    let mut out = serde_json::to_vec_pretty(file).map_err(|e| e.to_string())?;
    out.push(b'\n');
    Ok(out)
}

/// Generates every family: file name -> bytes. Fails if any case's intended
/// verdict disagrees with the reference implementation. The checksum file is
/// written separately ([`checksums`]) because it also covers `ids.lock`.
pub fn generate_all() -> Result<BTreeMap<String, Vec<u8>>, String> {
    let files = [
        families::primitives::generate()?,
        families::identity::generate()?,
        families::wire_codec::generate()?,
        families::envelope_open::generate()?,
        families::crdt_merge::generate()?,
        families::passive_replica::generate()?,
        families::membership::generate()?,
        families::storage::generate()?,
        families::room::generate()?,
        families::backup::generate()?,
        families::recovery::generate()?,
        families::attestation::generate()?,
    ];
    let mut out = BTreeMap::new();
    for file in &files {
        let check = verify::verify_file(file);
        if check.failed > 0 {
            return Err(format!(
                "family {}: the reference disagrees with {} intended verdict(s):\n  {}",
                file.family,
                check.failed,
                check.failures.join("\n  ")
            ));
        }
        out.insert(format!("{}.json", file.family), to_bytes(file)?);
    }
    Ok(out)
}

/// The files `SHA256SUMS` covers: every family file and the id registry.
pub fn checksummed_files() -> Vec<String> {
    let mut names: Vec<String> = crate::FAMILIES
        .iter()
        .map(|f| format!("{f}.json"))
        .collect();
    names.push(crate::IDS_LOCK_FILE.to_string());
    names.sort();
    names
}

/// `sha256sum`-compatible checksum lines for `files`, sorted by name.
pub fn checksums(files: &BTreeMap<String, Vec<u8>>) -> String {
    files
        .iter()
        .map(|(name, bytes)| format!("{}  {}\n", hex::encode(Sha256::digest(bytes)), name))
        .collect()
}

/// Every case id in `files` (vector JSON files only), in file order.
pub fn case_ids(files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<String>, String> {
    let mut ids = Vec::new();
    for family in crate::FAMILIES {
        let bytes = files
            .get(&format!("{family}.json"))
            .ok_or_else(|| format!("missing {family}.json"))?;
        let file: VectorFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        ids.extend(file.cases().map(|(_, c)| c.id.clone()));
    }
    Ok(ids)
}
