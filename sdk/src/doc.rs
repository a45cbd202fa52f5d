//! [`Doc`]: a MessagePack document embedded in another one.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::{self, CodecError};

/// A MessagePack document carried as a `bin` value inside a message.
///
/// Params, content tables, entity data, plugin state, event payloads and replies travel as `Doc`s, so
/// each side decodes only what it needs, into its own types, and the host can store them as JSON
/// without knowing their shape.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Doc(Vec<u8>);

impl Doc {
    /// Encode a value into a document.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, CodecError> {
        codec::encode(value).map(Self)
    }

    /// Decode the document into a value.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, CodecError> {
        codec::decode(&self.0)
    }

    /// Wrap bytes that already hold one MessagePack value (not checked here).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The document's MessagePack bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The document's MessagePack bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The document holding `nil` (what an empty reply or param list encodes as).
    pub fn nil() -> Self {
        Self(vec![0xc0])
    }

    /// Whether the document is empty or `nil`.
    pub fn is_nil(&self) -> bool {
        self.0.is_empty() || self.0 == [0xc0]
    }
}

impl std::fmt::Debug for Doc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Doc({} bytes)", self.0.len())
    }
}

impl Serialize for Doc {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Doc;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a MessagePack document as bin")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Doc, E> {
                Ok(Doc(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Doc, E> {
                Ok(Doc(v))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Doc, E> {
                Ok(Doc::nil())
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Doc, E> {
                Ok(Doc::nil())
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn doc_is_bin_on_the_wire_and_round_trips() {
        let inner = Doc::encode(&BTreeMap::from([("k", 3u8)])).unwrap();
        let outer = codec::encode(&inner).unwrap();
        assert_eq!(outer[0], 0xc4, "bin8 marker");
        let back: Doc = codec::decode(&outer).unwrap();
        assert_eq!(back.decode::<BTreeMap<String, u8>>().unwrap()["k"], 3);
    }

    #[test]
    fn nil_reads_as_empty_doc() {
        let d: Doc = codec::decode(&[0xc0]).unwrap();
        assert!(d.is_nil());
        assert_eq!(d.decode::<Option<u8>>().unwrap(), None);
    }
}
