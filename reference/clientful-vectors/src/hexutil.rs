//! Hex helpers and typed accessors for case inputs.

use serde_json::Value;

/// Lowercase hex.
pub fn hex(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(bytes)
}

/// Reads `obj[key]` as a hex string.
pub fn get_hex(obj: &Value, key: &str) -> Result<Vec<u8>, String> {
    let s = obj
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing hex field `{key}`"))?;
    hex::decode(s).map_err(|e| format!("field `{key}` is not hex: {e}"))
}

/// Reads `obj[key]` as a hex string of exactly `N` bytes.
pub fn get_arr<const N: usize>(obj: &Value, key: &str) -> Result<[u8; N], String> {
    let v = get_hex(obj, key)?;
    v.try_into()
        .map_err(|_| format!("field `{key}` must be {N} bytes"))
}

/// Reads `obj[key]` as a string.
pub fn get_str<'a>(obj: &'a Value, key: &str) -> Result<&'a str, String> {
    obj.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing string field `{key}`"))
}

/// Reads `obj[key]` as an unsigned integer (a JSON number, or a decimal string for
/// values above 2^53 - 1).
pub fn get_u64(obj: &Value, key: &str) -> Result<u64, String> {
    match obj.get(key) {
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| format!("`{key}` is not a u64")),
        Some(Value::String(s)) => s.parse().map_err(|_| format!("`{key}` is not a u64")),
        _ => Err(format!("missing integer field `{key}`")),
    }
}

/// An integer as JSON: a number up to 2^53 - 1, a decimal string above.
pub fn json_u64(v: u64) -> Value {
    if v < (1u64 << 53) {
        Value::from(v)
    } else {
        Value::from(v.to_string())
    }
}

/// Reads an array of hex strings.
pub fn get_hex_list(obj: &Value, key: &str) -> Result<Vec<Vec<u8>>, String> {
    obj.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("missing array field `{key}`"))?
        .iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| format!("`{key}` holds a non-string"))
                .and_then(|s| hex::decode(s).map_err(|e| format!("`{key}`: {e}")))
        })
        .collect()
}

/// Reads a byte input that is either a hex string or a compact
/// `{"prefix": hex, "fill": hex-byte, "length": n}` object (for inputs too large
/// to store verbatim, such as the oversize envelope).
pub fn get_bytes_input(obj: &Value, key: &str) -> Result<Vec<u8>, String> {
    match obj.get(key) {
        Some(Value::String(_)) => get_hex(obj, key),
        Some(v @ Value::Object(_)) => {
            let mut out = get_hex(v, "prefix")?;
            let fill = get_arr::<1>(v, "fill")?[0];
            let len = usize::try_from(get_u64(v, "length")?).map_err(|e| e.to_string())?;
            if len > 64 * 1024 * 1024 || len < out.len() {
                return Err("compact input length out of range".into());
            }
            out.resize(len, fill);
            Ok(out)
        }
        _ => Err(format!("missing byte input `{key}`")),
    }
}
