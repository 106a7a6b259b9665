//! The one file schema shared by every vector family (`test-vectors/README.md`).
//!
//! Deserialization denies unknown fields, so a file that drifts from the schema
//! fails to load.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Value of the `schema` field of every file.
pub const SCHEMA_ID: &str = "clientful-test-vectors/v1";

/// A vector file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VectorFile {
    /// Always [`SCHEMA_ID`].
    pub schema: String,
    /// Family name (the file name without `.json`).
    pub family: String,
    /// Spec version the cases check.
    pub spec_version: String,
    /// What produced the file.
    pub generator: Generator,
    /// What the family checks.
    pub description: String,
    /// Meaning of every flag used in the file.
    pub notes: BTreeMap<String, Note>,
    /// Total number of cases (checked).
    pub number_of_cases: usize,
    /// Groups of cases sharing an operation and parameters.
    pub groups: Vec<Group>,
}

/// Generator provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generator {
    /// Tool name.
    pub name: String,
    /// Tool version.
    pub version: String,
    /// Seed all random values derive from.
    pub seed: String,
}

/// A flag's documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Note {
    /// Kind of bug the flag targets (Wycheproof-style).
    pub bug_type: String,
    /// What the flag means.
    pub description: String,
}

/// A group of cases: one operation, shared parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// The operation, which fixes the shape of `params`, `input` and `expected`.
    pub operation: String,
    /// What the group covers.
    pub description: String,
    /// Parameters shared by the cases.
    pub params: Value,
    /// The cases.
    pub cases: Vec<Case>,
}

/// One test case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Case {
    /// Stable id, never reused: `<family>/<group>/<name>`.
    pub id: String,
    /// Human description (not an identifier; may change).
    pub description: String,
    /// `MUST`, `SHOULD` or `MAY`.
    pub requirement: String,
    /// Spec requirement ids the case checks (at least one).
    pub spec_refs: Vec<String>,
    /// `valid`, `invalid` or `acceptable`.
    pub result: String,
    /// Error class (short name) of an invalid case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Flags (documented in the file's `notes`).
    pub flags: Vec<String>,
    /// Operation input.
    pub input: Value,
    /// Expected output of a valid case.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub expected: Value,
}

impl VectorFile {
    /// All cases with their group.
    pub fn cases(&self) -> impl Iterator<Item = (&Group, &Case)> {
        self.groups
            .iter()
            .flat_map(|g| g.cases.iter().map(move |c| (g, c)))
    }
}
