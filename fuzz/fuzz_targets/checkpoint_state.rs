//! Untrusted checkpoint states (spec STO-26) loaded into both CRDTs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clientful_doc::fuzzing::checkpoint_state(data));
