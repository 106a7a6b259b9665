//! Full envelope open in the fixed fuzz context never panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clientful_core::fuzzing::open_envelope(data));
