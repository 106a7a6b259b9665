//! Canonical scan of every v1 schema agrees with prost decode/re-encode.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clientful_core::fuzzing::canonical_codec(data));
