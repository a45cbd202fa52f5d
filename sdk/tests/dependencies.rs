//! The SDK's dependency tree is pinned: a plugin that depends on it pulls in serde and MessagePack and
//! nothing else — nothing async, no runtime, no wasmtime. A new dependency fails this test until the
//! list below is changed on purpose.

#![allow(clippy::unwrap_used, reason = "an unwrap is an assertion in a test")]

use std::collections::BTreeSet;
use std::process::Command;

/// The crates in the SDK's normal dependency tree with `features` (the crate names `cargo tree`
/// prints).
fn tree(features: &[&str]) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "tree",
        "-p",
        "cauldron-sdk",
        "-e",
        "normal",
        "--prefix",
        "none",
        "-f",
        "{p}",
    ]);
    for feature in features {
        command.args(["--features", feature]);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// serde (with its derive macros and their parsing crates) and rmp-serde.
const PLUGIN_BUILD: &[&str] = &[
    "cauldron-sdk",
    "num-traits",
    "proc-macro2",
    "quote",
    "rmp",
    "rmp-serde",
    "serde",
    "serde_core",
    "serde_derive",
    "syn",
    "unicode-ident",
];

#[test]
fn a_plugin_build_pulls_in_serde_and_messagepack_only() {
    assert_eq!(tree(&[]), set(PLUGIN_BUILD));
}

#[test]
fn the_test_harness_adds_only_toml() {
    let mut expected = set(PLUGIN_BUILD);
    expected.extend(set(&[
        "serde_spanned",
        "toml",
        "toml_datetime",
        "toml_parser",
        "toml_writer",
        "winnow",
    ]));
    let harness = tree(&["testing"]);
    assert_eq!(harness, expected);
    for forbidden in ["tokio", "futures", "async-trait", "wasmtime", "mio"] {
        assert!(!harness.iter().any(|c| c.starts_with(forbidden)), "{forbidden}");
    }
}
