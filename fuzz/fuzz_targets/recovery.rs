//! Recovery message parsing and restoring (spec §5.6) never panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clientful_core::fuzzing::recovery(data));
