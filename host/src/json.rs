//! Documents and text on their way into or out of the store.
//!
//! Plugin documents are MessagePack ([`Doc`]); the database and clients see JSON. [`doc_to_json`] and
//! [`json_to_doc`] are the only conversions between them. Every document that is stored (params,
//! entity data, plugin state, replies, event data) passes [`check_json`] first, so whatever is
//! written can be read back by both backends: nesting at most [`MAX_DOC_DEPTH`] levels (the JSON
//! readers stop at 128), and no NUL character in any string or key (PostgreSQL refuses U+0000 in
//! `text` and `jsonb`; SQLite would store it, so the rule keeps the backends alike). [`check_text`]
//! applies the same text rule to single fields (login names, board names).

use cauldron_sdk::Doc;
use cauldron_sdk::codec;

/// Deepest nesting of arrays and maps in a stored document (the ABI's limit).
pub const MAX_DOC_DEPTH: usize = cauldron_sdk::abi::MAX_DOC_DEPTH;

/// Convert a plugin document to JSON and check it with [`check_json`] under the name `what`. Fails for
/// MessagePack that has no JSON form (binary values, non-string map keys, NaN) or that breaks the
/// document rules, so such data is refused rather than silently changed.
pub fn doc_to_json(what: &str, doc: &Doc) -> Result<serde_json::Value, String> {
    if doc.is_nil() {
        return Ok(serde_json::Value::Null);
    }
    let value: serde_json::Value = codec::decode(doc.as_bytes()).map_err(|e| {
        if e.to_string().contains("depth limit") {
            format!("{what} nests deeper than {MAX_DOC_DEPTH} levels")
        } else {
            format!("{what} is not JSON-shaped: {e}")
        }
    })?;
    check_json(what, &value)?;
    Ok(value)
}

/// Convert JSON to a plugin document.
pub fn json_to_doc(value: &serde_json::Value) -> Doc {
    // Every JSON value has a MessagePack form, so encoding cannot fail.
    Doc::from_bytes(codec::encode(value).unwrap_or_else(|_| vec![0xc0]))
}

/// Check a document against the storage rules: at most [`MAX_DOC_DEPTH`] levels of arrays and maps,
/// no NUL in any string or key. The error names the offending place as a path under `what`, e.g.
/// `params.hero.name` or `entity data[3]`.
pub fn check_json(what: &str, value: &serde_json::Value) -> Result<(), String> {
    let mut path = Vec::new();
    match walk(value, 0, &mut path) {
        Ok(()) => Ok(()),
        Err(problem) => {
            let mut at = what.to_owned();
            for segment in path.iter().rev() {
                match segment {
                    Segment::Key(k) => {
                        at.push('.');
                        at.push_str(&k.escape_default().to_string());
                    }
                    Segment::Index(i) => at.push_str(&format!("[{i}]")),
                }
            }
            Err(match problem {
                Problem::TooDeep => {
                    format!("`{at}` nests deeper than {MAX_DOC_DEPTH} levels of arrays and maps")
                }
                Problem::Nul => format!("`{at}` contains a NUL character (U+0000), which text may not hold"),
            })
        }
    }
}

/// Check one text field (a login name, a board name): no NUL character.
///
/// # Errors
/// A message naming `field`.
pub fn check_text(field: &str, text: &str) -> Result<(), String> {
    if text.contains('\0') {
        return Err(format!(
            "`{field}` contains a NUL character (U+0000), which text may not hold"
        ));
    }
    Ok(())
}

enum Problem {
    TooDeep,
    Nul,
}

/// One step of the path to a problem; collected innermost first while the walk unwinds.
enum Segment {
    Key(String),
    Index(usize),
}

/// Depth-first check; recursion is bounded by the depth limit, whatever the value's real depth.
fn walk(value: &serde_json::Value, depth: usize, path: &mut Vec<Segment>) -> Result<(), Problem> {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => Err(Problem::Nul),
        Value::Array(items) => {
            if depth >= MAX_DOC_DEPTH {
                return Err(Problem::TooDeep);
            }
            for (i, item) in items.iter().enumerate() {
                walk(item, depth + 1, path).inspect_err(|_| path.push(Segment::Index(i)))?;
            }
            Ok(())
        }
        Value::Object(map) => {
            if depth >= MAX_DOC_DEPTH {
                return Err(Problem::TooDeep);
            }
            for (key, item) in map {
                if key.contains('\0') {
                    path.push(Segment::Key(key.clone()));
                    return Err(Problem::Nul);
                }
                walk(item, depth + 1, path).inspect_err(|_| path.push(Segment::Key(key.clone())))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(levels: usize) -> serde_json::Value {
        let mut v = json!(1);
        for _ in 0..levels {
            v = json!({ "a": v });
        }
        v
    }

    #[test]
    fn round_trip_keeps_ints_floats_strings_and_nesting() {
        let v = json!({"a": 1, "b": -2.5, "c": ["x", true, null], "d": {"e": u64::MAX}});
        assert_eq!(doc_to_json("doc", &json_to_doc(&v)).unwrap(), v);
    }

    #[test]
    fn binary_values_are_refused() {
        let doc = Doc::from_bytes(vec![0xc4, 0x01, 0xff]);
        assert!(doc_to_json("doc", &doc).is_err());
        assert!(doc_to_json("doc", &Doc::from_bytes(vec![0xc1])).is_err());
    }

    #[test]
    fn depth_limit_is_exact_and_names_the_path() {
        assert!(check_json("state", &nested(MAX_DOC_DEPTH)).is_ok());
        let err = check_json("state", &nested(MAX_DOC_DEPTH + 1)).unwrap_err();
        assert!(err.contains("deeper than 64"), "{err}");
        assert!(err.starts_with("`state.a.a."), "{err}");
        // Far deeper than the JSON readers accept: refused, not a crash.
        let deep = json_to_doc(&nested(1_000));
        assert!(doc_to_json("entity data", &deep).unwrap_err().contains("deeper"));
        // A document at the limit is read back by the same JSON reader the stores use.
        let text = serde_json::to_string(&nested(MAX_DOC_DEPTH)).unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
    }

    #[test]
    fn nul_in_values_and_keys_is_refused_with_its_path() {
        let err = check_json("params", &json!({"hero": {"name": "a\u{0}b"}})).unwrap_err();
        assert!(err.contains("`params.hero.name`"), "{err}");
        let err = check_json("params", &json!({"list": [1, {"k\u{0}": 2}]})).unwrap_err();
        assert!(err.contains("`params.list[1].k\\u{0}`"), "{err}");
        assert!(check_json("params", &json!({"ok": "no nul here: \\u0000 is six characters"})).is_ok());
        assert!(check_text("username", "a\u{0}").is_err());
        assert!(check_text("username", "plain").is_ok());
    }

    #[test]
    fn lone_surrogate_escapes_do_not_parse() {
        assert!(serde_json::from_str::<serde_json::Value>(r#"{"a":"\ud800"}"#).is_err());
        assert!(serde_json::from_str::<serde_json::Value>(r#"{"\udc00":1}"#).is_err());
        assert!(serde_json::from_str::<serde_json::Value>(r#"{"a":"\ud83d\ude00"}"#).is_ok());
    }
}
