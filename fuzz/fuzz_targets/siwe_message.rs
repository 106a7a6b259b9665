//! SIWE messages and evidence (spec §14.10) never panic the parser or the verifier.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clientful_attest::fuzzing::siwe_message(data));
