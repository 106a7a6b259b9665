//! Device certificate verification never panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clientful_core::fuzzing::device_certificate(data));
