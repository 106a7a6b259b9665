//! Sealed backup parsing (header and secret, spec §5.5) never panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clientful_core::fuzzing::backup(data));
