//! Test fixtures: the probe plugin built from source for wasm32 (both versions), the hand-written
//! WAT plugin, and call builders.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cauldron_runtime::{Limits, PluginSource, Runtime};
use cauldron_sdk::Doc;
use cauldron_sdk::wire::{Call, CallKind, PlayerState};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Build the probe fixture for wasm32 (once per test binary) and return `(v1, v2)` bytes.
///
/// `cargo xtask build-plugins` leaves them in `CAULDRON_FIXTURES_DIR`; without that, they are built
/// here into a private target folder so `cargo test -p cauldron-runtime` works on its own.
pub(crate) fn probe() -> &'static (Vec<u8>, Vec<u8>) {
    static PROBE: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    PROBE.get_or_init(|| {
        if let Ok(dir) = std::env::var("CAULDRON_FIXTURES_DIR") {
            let v1 = std::fs::read(Path::new(&dir).join("probe.wasm"));
            let v2 = std::fs::read(Path::new(&dir).join("probe_v2.wasm"));
            if let (Ok(v1), Ok(v2)) = (v1, v2) {
                return (v1, v2);
            }
        }
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixture-target");
        let build = |features: &[&str]| -> Vec<u8> {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .current_dir(workspace_root())
                .args([
                    "build",
                    "--quiet",
                    "--release",
                    "--target",
                    "wasm32-unknown-unknown",
                    "-p",
                    "cauldron-probe",
                ])
                .args(features)
                .arg("--target-dir")
                .arg(&target)
                .status()
                .expect("run cargo");
            assert!(status.success(), "building the probe fixture failed");
            std::fs::read(target.join("wasm32-unknown-unknown/release/cauldron_probe.wasm"))
                .expect("probe wasm")
        };
        let v1 = build(&[]);
        let v2 = build(&["--features", "v2"]);
        (v1, v2)
    })
}

/// The hand-written WAT plugin's source text (wasmtime compiles text directly).
pub(crate) fn handmade() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/handmade.wat"))
        .expect("handmade.wat")
}

/// Small, test-friendly limits, with a module cache shared by the tests of this binary so each
/// fixture compiles once per run.
pub(crate) fn test_limits() -> Limits {
    Limits {
        fuel: 50_000_000,
        deadline: std::time::Duration::from_secs(2),
        memory_bytes: 32 << 20,
        max_output_bytes: 1 << 20,
        max_concurrent_calls: 16,
        cache_dir: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("module-cache")),
        preinitialise: true,
        profiler: cauldron_runtime::Profiler::None,
    }
}

/// A runtime with [`test_limits`].
pub(crate) fn runtime() -> Runtime {
    runtime_with(test_limits())
}

/// A runtime with these limits.
pub(crate) fn runtime_with(limits: Limits) -> Runtime {
    Runtime::new(limits).expect("runtime")
}

/// Source for wasm bytes with no content tables.
pub(crate) fn source(wasm: &[u8]) -> PluginSource {
    PluginSource {
        wasm: wasm.to_vec(),
        content: BTreeMap::new(),
        expected_name: None,
        bundle: None,
    }
}

/// An action call with params encoded from `params`.
pub(crate) fn call<T: serde::Serialize>(action: &str, params: &T) -> Call {
    Call {
        action: action.into(),
        kind: CallKind::Action,
        params: Doc::encode(params).expect("params"),
        player: PlayerState {
            id: 7,
            ..PlayerState::default()
        },
        effective_stats: BTreeMap::new(),
        now_ms: 1_700_000_000_000,
        seed: 42,
        content: BTreeMap::new(),
        other_player: None,
    }
}

/// An action call with no params.
pub(crate) fn bare(action: &str) -> Call {
    call(action, &())
}
