//! Protobuf message types of the Clientful protocol, generated from `proto/` at build
//! time with protox and prost.
//!
//! These are plain data types. Decoding them with prost alone is *not* enough to accept
//! input: the canonical-encoding rule, limits and signatures are enforced by
//! `clientful-core`, which is the only place untrusted bytes should be decoded.
#![no_std]
#![forbid(unsafe_code)]
#![allow(missing_docs)]

extern crate alloc;

/// Messages of `package clientful.v1`.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/clientful.v1.rs"));
}

/// The compiled `FileDescriptorSet` of every `.proto` file in `proto/clientful/`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/clientful_descriptor.bin"));
