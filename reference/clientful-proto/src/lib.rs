//! Protobuf message types of the Clientful protocol, generated from `proto/` at build
//! time with protox and prost.
//!
//! These are plain data types. Decoding them with prost alone is *not* enough to accept
//! input: the canonical-encoding rule, limits and signatures are enforced by
//! `clientful-core`, which is the only place untrusted bytes should be decoded.
//!
//! [`schema`] holds the tables that canonical scan runs against, generated from the
//! same descriptor set as the types: a `.proto` change reaches the types and the
//! scan in one build.
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

/// The canonical-scan schema of every v1 message (spec §3.4): its fully qualified
/// name and its fields with number, name and type, generated at build time from
/// [`FILE_DESCRIPTOR_SET`] (see `build.rs`); `clientful_core::wire` runs the scan
/// against them and re-exports them. Nothing here is written by hand.
pub mod schema {
    /// The type of one field, which fixes its wire type (the v1 subset, ENC-1).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum FieldKind {
        /// `uint32`, wire type 0; values above 2^32 - 1 are malformed.
        Uint32,
        /// `uint64`, wire type 0.
        Uint64,
        /// `bytes`, wire type 2.
        Bytes,
        /// `repeated bytes`, wire type 2, one record per element.
        RepeatedBytes,
    }

    impl FieldKind {
        /// The protobuf wire type of the field's records.
        pub const fn wire_type(self) -> u64 {
            match self {
                FieldKind::Uint32 | FieldKind::Uint64 => 0,
                FieldKind::Bytes | FieldKind::RepeatedBytes => 2,
            }
        }
    }

    /// One field of a schema.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Field {
        /// Field number.
        pub number: u32,
        /// Field name as in the `.proto` file.
        pub name: &'static str,
        /// Field type.
        pub kind: FieldKind,
    }

    /// A message schema: its fully qualified protobuf name and fields in ascending
    /// field-number order.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Schema {
        /// Fully qualified name, e.g. `clientful.v1.SignedEnvelope`.
        pub name: &'static str,
        /// Fields, ascending by number.
        pub fields: &'static [Field],
    }

    impl Schema {
        /// The field with number `number`, if the message has one.
        pub fn field(&self, number: u64) -> Option<&Field> {
            self.fields.iter().find(|f| u64::from(f.number) == number)
        }
    }

    include!(concat!(env!("OUT_DIR"), "/canonical_schemas.rs"));
}
