//! Untrusted checkpoint states (spec STO-26) loaded into both CRDTs.
#![no_main]
// clientful-doc runs the CRDT libraries under `catch_unwind` (a panic in yrs or
// automerge on hostile input is MALFORMED, not a crash); libfuzzer-sys's panic
// hook would abort on those contained panics too. A silent hook leaves them to
// `catch_unwind`; a panic that escapes still aborts (libfuzzer-sys catches it
// around the target and aborts), so it is still reported.
static QUIET: std::sync::Once = std::sync::Once::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    clientful_doc::fuzzing::checkpoint_state(data)
});
