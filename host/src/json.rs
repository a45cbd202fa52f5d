//! Plugin documents are MessagePack ([`Doc`]); the database and clients see JSON. These two functions
//! are the only conversion between them.

use cauldron_sdk::Doc;
use cauldron_sdk::codec;

/// Convert a plugin document to JSON. Fails for MessagePack that has no JSON form (binary values,
/// non-string map keys, NaN), so such data is refused rather than silently changed.
pub fn doc_to_json(doc: &Doc) -> Result<serde_json::Value, String> {
    if doc.is_nil() {
        return Ok(serde_json::Value::Null);
    }
    let value: serde_json::Value = codec::decode(doc.as_bytes()).map_err(|e| e.to_string())?;
    Ok(value)
}

/// Convert JSON to a plugin document.
pub fn json_to_doc(value: &serde_json::Value) -> Doc {
    // Every JSON value has a MessagePack form, so encoding cannot fail.
    Doc::from_bytes(codec::encode(value).unwrap_or_else(|_| vec![0xc0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_ints_floats_strings_and_nesting() {
        let v = serde_json::json!({"a": 1, "b": -2.5, "c": ["x", true, null], "d": {"e": u64::MAX}});
        assert_eq!(doc_to_json(&json_to_doc(&v)).unwrap(), v);
    }

    #[test]
    fn binary_values_are_refused() {
        let doc = Doc::from_bytes(vec![0xc4, 0x01, 0xff]);
        assert!(doc_to_json(&doc).is_err());
        assert!(doc_to_json(&Doc::from_bytes(vec![0xc1])).is_err());
    }
}
