//! WebAuthn evidence, COSE keys, authenticator data and clientDataJSON (spec §14.11)
//! never panic the parsers or the verifier.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clientful_attest::fuzzing::webauthn_data(data));
