//! Fresh cases (spec CONF-53): the committed generators, run from another seed,
//! give cases with the committed names and new inputs, the same for the same
//! seed, and the reference agrees with every one it keeps.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::path::Path;

use clientful_vectors::fresh::{FRESH_FAMILIES, generate_family};
use clientful_vectors::schema::VectorFile;
use clientful_vectors::verify;

fn committed(family: &str) -> VectorFile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../test-vectors")
        .join(format!("{family}.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn inputs(f: &VectorFile) -> BTreeSet<String> {
    f.cases().map(|(_, c)| c.input.to_string()).collect()
}

#[test]
fn fresh_cases_are_new_reproducible_and_agree_with_the_reference() {
    for family in ["primitives", "identity", "wire-codec", "envelope-open"] {
        let a = generate_family(family, 0x1234).unwrap();
        let again = generate_family(family, 0x1234).unwrap();
        let other = generate_family(family, 0x5678).unwrap();
        assert_eq!(a, again, "{family}: not reproducible");
        let fixed = committed(family);
        // Same names as the committed file.
        let names = |f: &VectorFile| f.cases().map(|(_, c)| c.id.clone()).collect::<Vec<_>>();
        assert_eq!(names(&a), names(&fixed), "{family}");
        // Inputs are new (wire-codec's invalid cases are mostly fixed byte
        // strings; its valid messages and the cases built on them change), and
        // another seed gives other inputs.
        let new = inputs(&a).difference(&inputs(&fixed)).count();
        assert!(new >= 10, "{family}: only {new} new inputs");
        assert_ne!(inputs(&a), inputs(&other), "{family}");
        // The reference agrees with every intended verdict.
        let report = verify::verify_file(&a);
        assert_eq!(report.failed, 0, "{family}: {:?}", report.failures);
        assert!(a.generator.seed.contains("/run/0000000000001234"));
    }
    assert_eq!(FRESH_FAMILIES.len(), clientful_vectors::FAMILIES.len());
}
