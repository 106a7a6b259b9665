//! `did:web` DIDs and DID document checks (spec §14.6) never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clientful_attest::fuzzing::did_document(data));
