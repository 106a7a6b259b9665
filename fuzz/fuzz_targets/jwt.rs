//! Compact JWS, JWKS and OIDC id_token evidence parsing (spec §14.5) never panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clientful_attest::fuzzing::jwt(data));
