//! Envelopes (length-prefixed) fed to Yjs and Automerge replicas never panic or overflow the buffer.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clientful_doc::fuzzing::replica_receive(data));
