//! Structural envelope decoding never panics and accepted input re-encodes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clientful_core::fuzzing::decode_envelope(data));
