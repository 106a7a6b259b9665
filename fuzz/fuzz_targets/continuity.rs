//! User-key continuity statements and ROTATE_USER bodies (spec §5.7, MEM-32) never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clientful_core::fuzzing::continuity(data));
