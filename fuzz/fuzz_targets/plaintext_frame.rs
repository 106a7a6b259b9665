//! Plaintext unframing never panics and accepted input re-frames identically.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clientful_core::fuzzing::plaintext_frame(data));
