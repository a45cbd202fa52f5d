//! The one place MessagePack is encoded and decoded (rmp-serde, structs as maps).
//!
//! Host and guest both go through [`encode`] and [`decode`], so the wire format cannot drift between
//! them. Size limits are checked by the caller *before* [`decode`] runs.

use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a value could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

/// Encode a value as MessagePack with struct fields as map keys.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(256);
    encode_into(&mut out, value)?;
    Ok(out)
}

/// Encode a value onto the end of `out` (lets callers reuse a buffer).
pub fn encode_into<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), CodecError> {
    value
        .serialize(&mut rmp_serde::Serializer::new(out).with_struct_map())
        .map_err(|e| CodecError(e.to_string()))
}

/// Decode a MessagePack value. Trailing bytes after the value are an error.
///
/// Decoding reads straight from the slice: strings and documents are read in place rather than
/// copied through an intermediate buffer.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    let value = T::deserialize(&mut de).map_err(|e| CodecError(e.to_string()))?;
    // The input must end here: reading one more value may only fail for want of bytes.
    match serde::de::IgnoredAny::deserialize(&mut de) {
        Err(rmp_serde::decode::Error::InvalidMarkerRead(e))
            if e.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            Ok(value)
        }
        _ => Err(CodecError("trailing bytes after the value".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Pair {
        a: u32,
        b: String,
    }

    #[test]
    fn structs_are_maps_with_named_keys() {
        let bytes = encode(&Pair { a: 1, b: "x".into() }).unwrap();
        // fixmap with 2 entries, then the key "a".
        assert_eq!(bytes[0], 0x82);
        assert_eq!(&bytes[1..3], &[0xa1, b'a']);
        assert_eq!(decode::<Pair>(&bytes).unwrap(), Pair { a: 1, b: "x".into() });
    }

    #[test]
    fn garbage_and_trailing_bytes_are_errors() {
        assert!(decode::<Pair>(&[0xc1]).is_err());
        assert!(decode::<Pair>(&[]).is_err());
        let mut bytes = encode(&Pair { a: 1, b: "x".into() }).unwrap();
        bytes.push(0);
        assert!(decode::<Pair>(&bytes).unwrap_err().0.contains("trailing"));
    }

    #[test]
    fn any_trailing_bytes_are_refused() {
        let good = encode(&Pair { a: 1, b: "x".into() }).unwrap();
        // Another whole value, a byte that is no value at all, and the start of a cut-off one.
        for tail in [&encode(&7u8).unwrap()[..], &[0xc1], &[0xd9, 0x05, b'a']] {
            let mut bytes = good.clone();
            bytes.extend_from_slice(tail);
            let err = decode::<Pair>(&bytes).unwrap_err();
            assert!(err.0.contains("trailing"), "{tail:?}: {err}");
        }
        // A cut-off value is an error of its own, not a shorter value.
        assert!(decode::<Pair>(&good[..good.len() - 1]).is_err());
        // Every marker family still decodes, nested, with nothing left over.
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct All {
            small: u8,
            big: u64,
            neg: i64,
            float: f64,
            long_text: String,
            list: Vec<i32>,
            map: std::collections::BTreeMap<String, Option<bool>>,
        }
        let all = All {
            small: 7,
            big: u64::MAX,
            neg: -40_000,
            float: 1.5,
            long_text: "x".repeat(70_000),
            list: (0..20).collect(),
            map: [("a".to_owned(), None), ("b".to_owned(), Some(true))].into(),
        };
        assert_eq!(decode::<All>(&encode(&all).unwrap()).unwrap(), all);
    }
}
