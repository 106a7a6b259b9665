//! `did:plc` evidence, operation logs, operations, DIDs and did:keys (spec §14.6,
//! ATT-15..ATT-18, ATT-LIM-6) never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clientful_attest::fuzzing::plc_log(data));
