//! Merge semantics (spec DOC-6..DOC-9, DOC-12, DOC-13): `arbitrary`-driven
//! schedules of edits, deliveries in any order with duplicates, and restarts
//! over three replicas of one CRDT; oracles: convergence and verdict
//! determinism. The logic lives in `clientful_doc::fuzzing::merge_schedule`
//! (replayed on stable by `reference/clientful-doc/tests/fuzz_corpus.rs`).
#![no_main]
// A silent panic hook, as in `replica_receive`: panics contained by
// clientful-doc's `catch_unwind` stay contained; a failed oracle escapes the
// entry point and still aborts, so it is reported.
static QUIET: std::sync::Once = std::sync::Once::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    clientful_doc::fuzzing::merge_schedule(data)
});
