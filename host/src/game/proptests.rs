//! Property tests: random MessagePack outcomes through the outcome decoder, the effect validator and
//! the document conversions. Whatever a plugin returns, the host answers with a typed error or a
//! checked outcome, never a panic.

#![allow(clippy::unwrap_used, reason = "an unwrap is an assertion in a test")]

use cauldron_sdk::Doc;
use cauldron_sdk::codec;
use cauldron_sdk::wire::{Entity, Outcome, PlayerState};
use proptest::prelude::*;

use super::effects;
use crate::json::doc_to_json;
use crate::store::Sections;

/// A MessagePack value of any shape, including the ones JSON has no form for.
#[derive(Debug, Clone)]
enum Mp {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Ext(i8, Vec<u8>),
    Array(Vec<Mp>),
    Map(Vec<(Mp, Mp)>),
}

impl Mp {
    fn encode(&self, out: &mut Vec<u8>) {
        fn len_header(out: &mut Vec<u8>, len: usize, fix: Option<(u8, usize)>, wide: [u8; 3]) {
            match fix {
                Some((base, max)) if len <= max => out.push(base | len as u8),
                _ if len <= 0xff && wide[0] != 0 => out.extend_from_slice(&[wide[0], len as u8]),
                _ if len <= 0xffff => {
                    out.push(wide[1]);
                    out.extend_from_slice(&(len as u16).to_be_bytes());
                }
                _ => {
                    out.push(wide[2]);
                    out.extend_from_slice(&(len as u32).to_be_bytes());
                }
            }
        }
        match self {
            Mp::Nil => out.push(0xc0),
            Mp::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
            Mp::Int(i) => {
                out.push(0xd3);
                out.extend_from_slice(&i.to_be_bytes());
            }
            Mp::UInt(u) => {
                out.push(0xcf);
                out.extend_from_slice(&u.to_be_bytes());
            }
            Mp::Float(f) => {
                out.push(0xcb);
                out.extend_from_slice(&f.to_be_bytes());
            }
            Mp::Str(s) => {
                len_header(out, s.len(), Some((0xa0, 31)), [0xd9, 0xda, 0xdb]);
                out.extend_from_slice(s.as_bytes());
            }
            Mp::Bin(b) => {
                len_header(out, b.len(), None, [0xc4, 0xc5, 0xc6]);
                out.extend_from_slice(b);
            }
            Mp::Ext(t, b) => {
                len_header(out, b.len(), None, [0xc7, 0xc8, 0xc9]);
                out.push(*t as u8);
                out.extend_from_slice(b);
            }
            Mp::Array(items) => {
                len_header(out, items.len(), Some((0x90, 15)), [0, 0xdc, 0xdd]);
                items.iter().for_each(|i| i.encode(out));
            }
            Mp::Map(pairs) => {
                len_header(out, pairs.len(), Some((0x80, 15)), [0, 0xde, 0xdf]);
                for (k, v) in pairs {
                    k.encode(out);
                    v.encode(out);
                }
            }
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

fn s(text: &str) -> Mp {
    Mp::Str(text.to_owned())
}

/// Names the host knows, so random maps often hit real fields and tags.
const WORDS: &[&str] = &[
    "status",
    "ok",
    "rejected",
    "fault",
    "effects",
    "reply",
    "modifiers",
    "code",
    "message",
    "op",
    "add_currency",
    "add_counter",
    "add_item",
    "remove_item",
    "set_stat",
    "create_entity",
    "update_entity",
    "delete_entity",
    "add_buff",
    "remove_buff",
    "set_state",
    "emit",
    "set_score",
    "name",
    "delta",
    "item",
    "qty",
    "value",
    "id",
    "kind",
    "data",
    "buff",
    "expires_ms",
    "stat",
    "add",
    "mul",
    "source",
    "event",
    "topic",
    "scope",
    "player",
    "global",
    "board",
    "score",
    "gold",
    "gem",
    "e1",
    "pet",
    "a\u{0}b",
    "",
];

fn word() -> impl Strategy<Value = Mp> {
    prop_oneof![
        4 => proptest::sample::select(WORDS).prop_map(s),
        1 => "\\PC{0,12}".prop_map(Mp::Str),
    ]
}

fn scalar() -> impl Strategy<Value = Mp> {
    prop_oneof![
        Just(Mp::Nil),
        any::<bool>().prop_map(Mp::Bool),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(1),
            Just(i64::MIN),
            Just(i64::MAX),
            any::<i64>()
        ]
        .prop_map(Mp::Int),
        prop_oneof![Just(u64::MAX), any::<u64>()].prop_map(Mp::UInt),
        prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(-0.0), any::<f64>()].prop_map(Mp::Float),
        word(),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Mp::Bin),
        (any::<i8>(), proptest::collection::vec(any::<u8>(), 0..4)).prop_map(|(t, b)| Mp::Ext(t, b)),
    ]
}

/// Any value; `Bin` leaves sometimes hold an encoded value, as a `Doc` does.
fn value() -> impl Strategy<Value = Mp> {
    scalar().prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Mp::Array),
            proptest::collection::vec(
                (prop_oneof![4 => word(), 1 => inner.clone()], inner.clone()),
                0..6
            )
            .prop_map(Mp::Map),
            inner.prop_map(|v| Mp::Bin(v.bytes())),
        ]
    })
}

/// An effect-shaped map: a known `op` and a few known fields with any values.
fn effect() -> impl Strategy<Value = Mp> {
    (
        proptest::sample::select(&WORDS[10..23]),
        proptest::collection::vec((proptest::sample::select(&WORDS[23..]), value()), 0..5),
    )
        .prop_map(|(op, fields)| {
            let mut pairs = vec![(s("op"), s(op))];
            pairs.extend(fields.into_iter().map(|(k, v)| (s(k), v)));
            Mp::Map(pairs)
        })
}

/// An outcome-shaped map, or now and then anything at all.
fn outcome() -> impl Strategy<Value = Vec<u8>> {
    let shaped = (
        proptest::sample::select(&["ok", "ok", "ok", "rejected", "fault", "maybe"][..]),
        proptest::collection::vec(effect(), 0..6),
        value(),
        proptest::collection::vec((word(), value()), 0..3),
    )
        .prop_map(|(status, effects, reply, extra)| {
            let mut pairs = vec![
                (s("status"), s(status)),
                (s("effects"), Mp::Array(effects)),
                (s("reply"), Mp::Bin(reply.bytes())),
            ];
            pairs.extend(extra);
            Mp::Map(pairs).bytes()
        });
    prop_oneof![
        8 => shaped,
        1 => value().prop_map(|v| v.bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

fn state() -> PlayerState {
    let mut s = PlayerState::default();
    s.items.insert("gem".into(), 3);
    s.currencies.insert("gold".into(), 10);
    s.entities.push(Entity {
        id: "e1".into(),
        kind: "pet".into(),
        data: Doc::nil(),
    });
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn any_outcome_bytes_decode_and_validate_without_panicking(bytes in outcome()) {
        let Ok(outcome) = codec::decode::<Outcome>(&bytes) else {
            return Ok(());
        };
        if let Outcome::Ok { effects: list, reply, .. } = &outcome {
            let checked = effects::validate(&state(), &Sections::all(), &["pet".into()], &[], list, 0);
            let reply = effects::validate_reply(reply);
            // Whatever passed is storable: its documents convert and read back as JSON.
            if checked.is_ok() && let Ok(json) = reply {
                let text = serde_json::to_string(&json).unwrap();
                prop_assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
            }
        }
        // Every document inside converts or fails with a message.
        if let Outcome::Ok { effects: list, .. } = outcome {
            for e in &list {
                if let cauldron_sdk::wire::Effect::SetState { data } = e {
                    let _ = doc_to_json("state", data);
                }
            }
        }
    }
}
