//! The canonical-scan schemas (`wire::ALL_SCHEMAS`) against the compiled `.proto`
//! files: every v1 message has a schema, and every schema lists exactly the
//! message's fields with the same numbers, names and types. A proto change that
//! is not made in the code too fails here (one change, four places).
//! spec: ENC-1, CAN-9.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use clientful_core::wire::{ALL_SCHEMAS, FieldKind};
use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};

fn v1_messages() -> Vec<(String, DescriptorProto)> {
    let fds = FileDescriptorSet::decode(clientful_proto::FILE_DESCRIPTOR_SET).expect("descriptor");
    fds.file
        .iter()
        .filter(|f| f.package() == "clientful.v1")
        .flat_map(|f| {
            f.message_type
                .iter()
                .map(|m| (format!("clientful.v1.{}", m.name()), m.clone()))
        })
        .collect()
}

#[test]
fn every_message_has_a_schema_and_they_match() {
    let messages = v1_messages();
    assert_eq!(
        messages.len(),
        ALL_SCHEMAS.len(),
        "a message lacks a schema or vice versa"
    );
    for (name, msg) in &messages {
        let schema = ALL_SCHEMAS
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no schema for {name}"));
        assert!(
            msg.oneof_decl.is_empty(),
            "{name}: oneofs are not allowed (ENC-1)"
        );
        assert!(
            msg.nested_type.is_empty(),
            "{name}: nested messages are not allowed"
        );
        assert_eq!(msg.field.len(), schema.fields.len(), "{name}: field count");
        let mut numbers: Vec<i32> = msg.field.iter().map(|f| f.number()).collect();
        numbers.sort_unstable();
        let schema_numbers: Vec<i32> = schema.fields.iter().map(|f| f.number as i32).collect();
        assert_eq!(
            numbers, schema_numbers,
            "{name}: schema fields must be ascending and complete"
        );
        for field in &msg.field {
            let spec = schema
                .fields
                .iter()
                .find(|f| f.number as i32 == field.number())
                .unwrap_or_else(|| panic!("{name}: field {} missing", field.number()));
            assert_eq!(
                spec.name,
                field.name(),
                "{name}: field {} name",
                field.number()
            );
            assert!(
                !field.proto3_optional(),
                "{name}.{}: explicit presence is not used",
                field.name()
            );
            let want = match (field.r#type(), field.label()) {
                (Type::Uint32, Label::Optional) => FieldKind::Uint32,
                (Type::Uint64, Label::Optional) => FieldKind::Uint64,
                (Type::Bytes, Label::Optional) => FieldKind::Bytes,
                (Type::Bytes, Label::Repeated) => FieldKind::RepeatedBytes,
                other => panic!(
                    "{name}.{}: type {other:?} is outside the v1 subset",
                    field.name()
                ),
            };
            assert_eq!(spec.kind, want, "{name}.{}", field.name());
        }
    }
}
