//! Hot reload under load: 16 callers hammer a plugin while its file is replaced 100 times,
//! alternating two valid versions with broken files in between.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cauldron_runtime::{Registry, RegistryEvent, watcher};
use cauldron_sdk::wire::Outcome;
use common::{bare, probe, runtime};
use tokio::sync::broadcast::Receiver;

#[derive(serde::Deserialize)]
struct WhoAmI {
    version: String,
    pad: String,
}

const CALLERS: usize = 16;
const REPLACEMENTS: usize = 100;

/// Wait (bounded) for the event `pred` accepts.
async fn wait_for(rx: &mut Receiver<RegistryEvent>, what: &str, pred: impl Fn(&RegistryEvent) -> bool) {
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match rx.recv().await {
                Ok(ev) if pred(&ev) => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("registry events closed: {e}"),
            }
        }
    })
    .await;
    assert!(found.is_ok(), "timed out waiting for {what}");
}

fn put(dir: &Path, bytes: &[u8]) {
    // A plain overwrite, as an operator's `cp` would do: the watcher may see a half-written file,
    // which must be refused while the old version keeps serving.
    std::fs::write(dir.join("probe.wasm"), bytes).expect("write plugin file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replacing_the_file_100_times_under_16_callers_fails_no_call() {
    let (v1, v2) = probe().clone();
    // A folder without content tables: each version is the bundle of its module alone.
    let sha = |b: &[u8]| {
        cauldron_runtime::Bundle {
            wasm: b.to_vec(),
            content: Default::default(),
        }
        .digest()
    };
    let (sha1, sha2) = (sha(&v1), sha(&v2));
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), &v1);

    let rt = runtime();
    let registry = Arc::new(Registry::new());
    assert_eq!(watcher::load_all(&rt, &registry, dir.path()).await, 1);
    let mut events = registry.subscribe();
    let _watcher = watcher::watch(rt.clone(), registry.clone(), dir.path().to_path_buf()).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let mut callers = Vec::new();
    for _ in 0..CALLERS {
        let (rt, registry, stop, calls) = (rt.clone(), registry.clone(), stop.clone(), calls.clone());
        callers.push(tokio::spawn(async move {
            let mut seen = std::collections::BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                let plugin = registry.get("probe").expect("probe stays loaded throughout");
                let expected = plugin.version().to_owned();
                let outcome = rt
                    .call(plugin, &bare("whoami"))
                    .await
                    .expect("no call fails during reloads");
                let Outcome::Ok { reply, .. } = outcome else {
                    panic!("not ok: {outcome:?}")
                };
                let who: WhoAmI = reply.decode().expect("a complete reply");
                // Exactly one complete version answered: the one the caller picked, with its own padding.
                assert_eq!(who.version, expected);
                let pad_ok = match who.version.as_str() {
                    "0.1.0" => who.pad == "x".repeat(16),
                    "0.2.0" => who.pad == "y".repeat(64),
                    other => panic!("unknown version {other}"),
                };
                assert!(
                    pad_ok,
                    "reply mixes versions: {} with pad {:?}",
                    who.version, who.pad
                );
                seen.insert(who.version);
                calls.fetch_add(1, Ordering::Relaxed);
            }
            seen
        }));
    }

    let mut broken = 0;
    for i in 0..REPLACEMENTS {
        if i % 10 == 5 {
            // A broken file: truncated wasm. It must be refused and reported.
            let bad = if i % 20 == 5 {
                &v2[..v2.len() / 2]
            } else {
                &b"\0asm\x01\0\0\0junk"[..]
            };
            put(dir.path(), bad);
            broken += 1;
            wait_for(&mut events, "refusal of a broken file", |e| {
                matches!(e, RegistryEvent::Refused { .. })
            })
            .await;
            assert!(
                registry.status("probe").unwrap().last_error.is_some(),
                "the refusal is reported"
            );
            assert!(registry.get("probe").is_some(), "the old version keeps serving");
        }
        let (bytes, want) = if i % 2 == 0 { (&v2, &sha2) } else { (&v1, &sha1) };
        put(dir.path(), bytes);
        let want = want.clone();
        wait_for(
            &mut events,
            "publication of the new version",
            move |e| matches!(e, RegistryEvent::Published { sha256, .. } if *sha256 == want),
        )
        .await;
    }

    stop.store(true, Ordering::Relaxed);
    let mut versions = std::collections::BTreeSet::new();
    for c in callers {
        versions.extend(c.await.expect("caller task"));
    }
    let status = registry.status("probe").unwrap();
    assert!(
        status.refused >= broken,
        "{} refusals recorded for {broken} broken files",
        status.refused
    );
    assert_eq!(status.last_error, None, "the last publish cleared the error");
    assert_eq!(
        status.sha256.as_deref(),
        Some(sha1.as_str()),
        "the last file written (v1) serves"
    );
    assert_eq!(
        versions.len(),
        2,
        "callers were answered by both versions: {versions:?}"
    );
    assert!(calls.load(Ordering::Relaxed) > REPLACEMENTS as u64);

    // Deleting the file unloads the plugin; a caller holding the old Arc still finishes its call.
    let held = registry.get("probe").unwrap();
    std::fs::remove_file(dir.path().join("probe.wasm")).unwrap();
    wait_for(&mut events, "unload", |e| {
        matches!(e, RegistryEvent::Unloaded { .. })
    })
    .await;
    assert!(registry.get("probe").is_none());
    assert!(
        rt.call(held, &bare("whoami")).await.is_ok(),
        "a call on a held version completes after unload"
    );
}

#[tokio::test]
async fn rollback_restores_the_replaced_version() {
    let (v1, v2) = probe().clone();
    let rt = runtime();
    let registry = Registry::new();
    registry.publish(rt.load(common::source(&v1)).await.unwrap());
    registry.publish(rt.load(common::source(&v2)).await.unwrap());
    assert_eq!(registry.get("probe").unwrap().version(), "0.2.0");
    assert_eq!(
        registry.status("probe").unwrap().replaced_version.as_deref(),
        Some("0.1.0")
    );
    registry.restore_replaced("probe").unwrap();
    assert_eq!(registry.get("probe").unwrap().version(), "0.1.0");
}
