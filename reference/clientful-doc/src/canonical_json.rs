//! Canonical JSON (spec §8.6, DOC-11): the serialization `StateDigest` hashes.
//!
//! It follows RFC 8785 (JCS): object members sorted by the UTF-16 code units of
//! their names, no insignificant white space, strings with only `"`, `\` and
//! control characters escaped (`\b \f \n \r \t`, else `\u00xx`), and numbers in the
//! ECMAScript `Number.prototype.toString` form. Non-finite numbers become `null`.

/// A JSON value with a canonical serialization.
/// Exhaustive on purpose: JSON's value types (RFC 8259) are a closed list.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number (IEEE double, as in JavaScript).
    Number(f64),
    /// An exact integer, written in decimal (CRDT integers are 64-bit; they are
    /// not rounded to a double, DOC-11).
    Int(i64),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object (member order is irrelevant; serialization sorts).
    Object(Vec<(String, Json)>),
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn utf16_key(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

impl Json {
    /// The canonical serialization.
    pub fn to_canonical_string(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) if n.is_finite() => {
                let mut buf = ryu_js::Buffer::new();
                out.push_str(buf.format(*n));
            }
            Json::Number(_) => out.push_str("null"),
            Json::Int(i) => out.push_str(&i.to_string()),
            Json::String(s) => write_string(out, s),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                let mut sorted: Vec<&(String, Json)> = members.iter().collect();
                sorted.sort_by_key(|(k, _)| utf16_key(k));
                out.push('{');
                for (i, (k, v)) in sorted.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(out, k);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jcs_examples() {
        let v = Json::Object(vec![
            ("b".into(), Json::Number(1e21)),
            (
                "a".into(),
                Json::Array(vec![Json::Number(0.1), Json::Number(-0.0), Json::Int(7)]),
            ),
            ("\u{e9}".into(), Json::String("x\"y\n\u{1}".into())),
            ("\u{1f600}".into(), Json::Bool(true)),
        ]);
        assert_eq!(
            v.to_canonical_string(),
            "{\"a\":[0.1,0,7],\"b\":1e+21,\"\u{e9}\":\"x\\\"y\\n\\u0001\",\"\u{1f600}\":true}"
        );
        assert_eq!(Json::Number(1.5e-7).to_canonical_string(), "1.5e-7");
        assert_eq!(Json::Number(f64::NAN).to_canonical_string(), "null");
    }
}
