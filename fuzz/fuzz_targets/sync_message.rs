//! Sync messages (length-prefixed) handled by a sync session never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clientful_doc::fuzzing::sync_message(data));
