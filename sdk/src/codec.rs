//! The one place MessagePack is encoded and decoded (rmp-serde, structs as maps).
//!
//! Host and guest both go through [`encode`] and [`decode`], so the wire format cannot drift between
//! them. Size limits are checked by the caller *before* [`decode`] runs.

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
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let mut rest = bytes;
    let value = T::deserialize(&mut rmp_serde::Deserializer::new(&mut rest))
        .map_err(|e| CodecError(e.to_string()))?;
    if !rest.is_empty() {
        let rest = rest.len();
        return Err(CodecError(format!("{rest} trailing bytes after the value")));
    }
    Ok(value)
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
}
