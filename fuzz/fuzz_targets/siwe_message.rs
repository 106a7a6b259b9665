//! SIWE messages and evidence (spec §14.5) never panic the parser or the verifier.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clientful_attest::fuzzing::siwe_message(data));
