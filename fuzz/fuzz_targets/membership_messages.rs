//! Membership decoders (operation bodies, key messages, sealed keys, welcomes,
//! invite codes) never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clientful_core::fuzzing::membership_messages(data));
