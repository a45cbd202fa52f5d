//! The sandbox's limits, each shown held and hit, for the Rust probe plugin and for the hand-written
//! WAT plugin; ABI checks at load; isolation between calls; the module cache.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cauldron_runtime::{HostFailure, Limits, PluginError, PluginVersion, Runtime};
use cauldron_sdk::wire::Outcome;
use common::{bare, call, handmade, probe, runtime, runtime_with, source};

fn reply<T: serde::de::DeserializeOwned>(outcome: Outcome) -> T {
    match outcome {
        Outcome::Ok { reply, .. } => reply.decode().expect("reply decodes"),
        other => panic!("expected ok, got {other:?}"),
    }
}

fn load(rt: &Runtime, wasm: &[u8]) -> PluginVersion {
    rt.load_blocking(source(wasm)).expect("plugin loads")
}

/// Both fixtures: the Rust probe and the WAT plugin written from the spec.
fn both(rt: &Runtime) -> [(&'static str, PluginVersion); 2] {
    [
        ("probe", load(rt, &probe().0)),
        ("handmade", load(rt, &handmade())),
    ]
}

/// After any failure the same runtime still serves a normal call.
fn still_serves(rt: &Runtime, plugin: &PluginVersion) {
    let n: u32 = reply(
        rt.call_blocking(plugin, &bare("count"))
            .expect("a normal call after a failure"),
    );
    assert_eq!(n, 1);
}

#[test]
fn manifests_are_read_at_load() {
    let rt = runtime();
    let [(_, p), (_, h)] = both(&rt);
    assert_eq!(p.name(), "probe");
    assert_eq!(p.version(), "0.1.0");
    assert!(p.manifest.action("spend").is_some());
    assert_eq!(h.name(), "handmade");
    assert_eq!(h.version(), "1.0.0");
    assert_eq!(h.manifest.actions.len(), 7);
    assert_eq!(p.sha256.len(), 64);
}

#[test]
fn another_players_view_crosses_the_sandbox_only_for_the_declared_read() {
    use cauldron_sdk::wire::{Entity, OtherPlayer, ParamType};
    let rt = runtime();
    let p = load(&rt, &probe().0);
    let rival = p.manifest.action("rival").expect("rival");
    assert_eq!(rival.reads_player, "opponent");
    assert_eq!(rival.params[0].ty, ParamType::Player);
    assert!(!p.manifest.action("rival_blind").unwrap().reads_other_player());

    let mut c = call("rival", &BTreeMap::from([("opponent", 9)]));
    c.other_player = Some(OtherPlayer {
        id: 9,
        name: "rival".into(),
        stats: BTreeMap::from([("attack".to_owned(), 3.0)]),
        effective_stats: BTreeMap::from([("attack".to_owned(), 4.5)]),
        entities: vec![Entity {
            id: "t1".into(),
            kind: "trinket".into(),
            data: cauldron_sdk::Doc::encode(&"x").unwrap(),
        }],
    });
    // The probe's reply: the view it received, entities as (id, kind).
    #[derive(serde::Deserialize)]
    struct View {
        id: i64,
        name: String,
        effective_stats: BTreeMap<String, f64>,
        entities: Vec<(String, String)>,
    }
    #[derive(serde::Deserialize)]
    struct Reply {
        other: Option<View>,
    }
    let seen: Reply = reply(rt.call_blocking(&p, &c).expect("rival runs"));
    let view = seen.other.expect("the view reached the guest");
    assert_eq!((view.id, view.name.as_str()), (9, "rival"));
    assert_eq!(view.effective_stats["attack"], 4.5);
    assert_eq!(view.entities, [("t1".to_owned(), "trinket".to_owned())]);
    // A call that names nobody: the guest sees nobody.
    let seen: Reply = reply(
        rt.call_blocking(&p, &call("rival", &BTreeMap::<String, i64>::new()))
            .unwrap(),
    );
    assert!(seen.other.is_none());
}

#[test]
fn no_state_carries_from_one_call_to_the_next() {
    let rt = runtime();
    // Many calls in a row, as the pooling allocator hands the same slots out again and again.
    for (name, plugin) in both(&rt) {
        for i in 0..40 {
            let n: u32 = reply(rt.call_blocking(&plugin, &bare("count")).unwrap());
            assert_eq!(
                n, 1,
                "{name}, call {i}: a static counter must start fresh on every call"
            );
        }
    }
}

#[tokio::test]
async fn every_call_gets_the_whole_fuel_budget() {
    // A budget only a quarter larger than one call needs: were any of it carried from one call
    // to the next, the second call would run out.
    let churn = call("churn", &BTreeMap::from([("n", 100_000)]));
    let rt = runtime();
    let (outcome, one_call) = rt.call_metered(Arc::new(load(&rt, &probe().0)), &churn).await;
    outcome.expect("churn under the default budget");
    let tight = runtime_with(Limits {
        fuel: one_call + one_call / 4,
        ..test_limits()
    });
    let plugin = Arc::new(load(&tight, &probe().0));
    for i in 0..40 {
        let (outcome, used) = tight.call_metered(plugin.clone(), &churn).await;
        assert!(outcome.is_ok(), "call {i}: {outcome:?}");
        assert_eq!(used, one_call, "call {i} used what the first call used");
    }
    let more = call("churn", &BTreeMap::from([("n", 200_000)]));
    let (outcome, _) = tight.call_metered(plugin, &more).await;
    assert_eq!(
        outcome.unwrap_err(),
        PluginError::OutOfFuel,
        "twice the work is over budget"
    );
}

#[test]
fn same_call_same_outcome() {
    let rt = runtime();
    let plugin = load(&rt, &probe().0);
    let c = call("echo", &BTreeMap::from([("k", 1)]));
    assert_eq!(
        rt.call_blocking(&plugin, &c).unwrap(),
        rt.call_blocking(&plugin, &c).unwrap()
    );
}

#[test]
fn a_trap_is_a_typed_error_and_the_host_carries_on() {
    let rt = runtime();
    for (name, plugin) in both(&rt) {
        let action = if name == "probe" { "panic" } else { "trap" };
        let err = rt.call_blocking(&plugin, &bare(action)).unwrap_err();
        assert!(matches!(err, PluginError::Trap(_)), "{name}: {err:?}");
        if name == "probe" {
            assert!(
                err.to_string().contains("probe was asked to panic"),
                "panic message reaches the host: {err}"
            );
        }
        still_serves(&rt, &plugin);
    }
}

#[test]
fn fuel_is_held_by_normal_calls_and_hit_by_a_loop() {
    let rt = runtime_with(Limits {
        fuel: 2_000_000,
        deadline: Duration::from_secs(30),
        ..test_limits()
    });
    for (name, plugin) in both(&rt) {
        still_serves(&rt, &plugin);
        let err = rt.call_blocking(&plugin, &bare("spin")).unwrap_err();
        assert_eq!(err, PluginError::OutOfFuel, "{name}");
        still_serves(&rt, &plugin);
    }
}

#[test]
fn the_deadline_is_held_by_normal_calls_and_hit_by_a_loop() {
    let rt = runtime_with(Limits {
        fuel: u64::MAX,
        deadline: Duration::from_millis(50),
        ..test_limits()
    });
    for (name, plugin) in both(&rt) {
        still_serves(&rt, &plugin);
        let err = rt.call_blocking(&plugin, &bare("spin")).unwrap_err();
        assert_eq!(err, PluginError::Deadline, "{name}");
        still_serves(&rt, &plugin);
    }
}

#[test]
fn memory_under_the_cap_is_granted_and_past_it_refused() {
    let rt = runtime_with(Limits {
        memory_bytes: 32 << 20,
        ..test_limits()
    });
    let probe = load(&rt, &probe().0);
    let held: usize = reply(
        rt.call_blocking(&probe, &call("hog", &BTreeMap::from([("mb", 8)])))
            .unwrap(),
    );
    assert_eq!(held, 8);
    let err = rt
        .call_blocking(&probe, &call("hog", &BTreeMap::from([("mb", 64)])))
        .unwrap_err();
    assert_eq!(err, PluginError::MemoryLimit);
    still_serves(&rt, &probe);

    let hand = load(&rt, &handmade());
    assert_eq!(
        rt.call_blocking(&hand, &bare("hog")).unwrap_err(),
        PluginError::MemoryLimit
    );
    still_serves(&rt, &hand);
}

#[test]
fn output_under_the_cap_is_read_and_over_it_refused() {
    let rt = runtime_with(Limits {
        max_output_bytes: 64 << 10,
        ..test_limits()
    });
    let probe = load(&rt, &probe().0);
    let small: String = reply(
        rt.call_blocking(&probe, &call("big", &BTreeMap::from([("bytes", 1000)])))
            .unwrap(),
    );
    assert_eq!(small.len(), 1000);
    let err = rt
        .call_blocking(&probe, &call("big", &BTreeMap::from([("bytes", 100_000)])))
        .unwrap_err();
    assert!(
        matches!(&err, PluginError::BadOutput(m) if m.contains("cap")),
        "{err:?}"
    );
    still_serves(&rt, &probe);

    let hand = load(&rt, &handmade());
    let err = rt.call_blocking(&hand, &bare("big")).unwrap_err();
    assert!(
        matches!(&err, PluginError::BadOutput(m) if m.contains("cap")),
        "{err:?}"
    );
    still_serves(&rt, &hand);
}

#[test]
fn garbage_output_is_bad_output() {
    let rt = runtime();
    let hand = load(&rt, &handmade());
    let err = rt.call_blocking(&hand, &bare("garbage")).unwrap_err();
    assert!(
        matches!(&err, PluginError::BadOutput(m) if m.contains("decode")),
        "{err:?}"
    );
    still_serves(&rt, &hand);
}

#[test]
fn unknown_actions_are_rejected_by_both_fixtures() {
    let rt = runtime();
    for (name, plugin) in both(&rt) {
        match rt.call_blocking(&plugin, &bare("xyzzy")).unwrap() {
            Outcome::Rejected { code, .. } => assert_eq!(code, "unknown_action", "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn a_malformed_call_is_a_guest_fault_not_a_crash() {
    let rt = runtime();
    let probe = load(&rt, &probe().0);
    match rt.call_bytes(&probe, &[0xc1, 0x00, 0xff]).unwrap() {
        Outcome::Fault { code, .. } => assert_eq!(code, "bad_call"),
        other => panic!("{other:?}"),
    }
    still_serves(&rt, &probe);
}

const GOOD_EXPORTS: &str = r#"
  (memory (export "memory") 1)
  (func (export "cauldron_alloc") (param i32) (result i32) i32.const 8)
  (func (export "cauldron_free") (param i32 i32))
  (func (export "cauldron_describe") (result i64) i64.const 0)
"#;

fn load_wat(rt: &Runtime, wat: &str) -> PluginError {
    rt.load_blocking(source(wat.as_bytes()))
        .expect_err("must be refused")
}

#[test]
fn the_wrong_abi_version_is_refused_at_load() {
    let rt = runtime();
    let v2 = format!(
        r#"(module (import "cauldron_v2" "log" (func (param i32 i32 i32))) (func (export "cauldron_abi_v2")) {GOOD_EXPORTS}
           (func (export "cauldron_handle") (param i32 i32) (result i64) i64.const 0))"#
    );
    assert_eq!(
        load_wat(&rt, &v2),
        PluginError::AbiMismatch {
            got: Some(2),
            supported: 1
        }
    );
    let unversioned = format!(
        r#"(module {GOOD_EXPORTS} (func (export "cauldron_handle") (param i32 i32) (result i64) i64.const 0))"#
    );
    assert_eq!(
        load_wat(&rt, &unversioned),
        PluginError::AbiMismatch {
            got: None,
            supported: 1
        }
    );
}

#[test]
fn a_missing_or_mistyped_export_is_refused_at_load() {
    let rt = runtime();
    let missing = format!(r#"(module (func (export "cauldron_abi_v1")) {GOOD_EXPORTS})"#);
    assert_eq!(
        load_wat(&rt, &missing),
        PluginError::MissingExport("cauldron_handle".into())
    );
    let mistyped = format!(
        r#"(module (func (export "cauldron_abi_v1")) {GOOD_EXPORTS} (func (export "cauldron_handle") (param i32) (result i64) i64.const 0))"#
    );
    assert!(matches!(load_wat(&rt, &mistyped), PluginError::MissingExport(m) if m.contains("signature")));
}

#[test]
fn ambient_imports_are_refused_at_load() {
    let rt = runtime();
    let wasi = format!(
        r#"(module (import "wasi_snapshot_preview1" "random_get" (func (param i32 i32) (result i32)))
           (func (export "cauldron_abi_v1")) {GOOD_EXPORTS}
           (func (export "cauldron_handle") (param i32 i32) (result i64) i64.const 0))"#
    );
    assert!(matches!(load_wat(&rt, &wasi), PluginError::BadImport(m) if m.contains("random_get")));
}

#[test]
fn not_wasm_is_a_compile_error() {
    let rt = runtime();
    assert!(matches!(
        rt.load_blocking(source(b"\0asm garbage")).unwrap_err(),
        PluginError::Compile(_)
    ));
}

#[test]
fn a_bad_describe_is_refused_at_load() {
    let rt = runtime();
    // describe returns a null pointer.
    let wat = format!(
        r#"(module (func (export "cauldron_abi_v1")) {GOOD_EXPORTS} (func (export "cauldron_handle") (param i32 i32) (result i64) i64.const 0))"#
    );
    assert!(matches!(load_wat(&rt, &wat), PluginError::BadOutput(_)));
}

#[test]
fn a_file_must_be_named_after_its_plugin() {
    let rt = runtime();
    let mut src = source(&probe().0);
    src.expected_name = Some("other".into());
    assert!(matches!(rt.load_blocking(src).unwrap_err(), PluginError::BadManifest(m) if m.contains("probe")));
}

#[test]
fn compiled_modules_are_cached_on_disk_and_reused_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        cache_dir: Some(dir.path().to_path_buf()),
        ..test_limits()
    };
    // This test counts compilations, so it uses a cache folder of its own. The probe is
    // pre-initialised, so one version is two modules: the instrumented one `cauldron_init` runs in,
    // and the snapshot every call starts from.
    let first = runtime_with(limits.clone());
    let plugin = load(&first, &probe().0);
    assert!(plugin.preinitialised);
    assert_eq!(first.cache_stats().compiled, 2);
    load(&first, &probe().0);
    assert_eq!(first.cache_stats().compiled, 2, "a second load compiles nothing");
    assert_eq!(
        first.cache_stats().memory_hits,
        1,
        "the snapshot module is kept in memory"
    );
    // Two compiled modules, and the note of which snapshot this wasm and content make.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);

    // A "restart": a new runtime over the same folder loads the snapshot module straight from the
    // disk cache, without compiling or running init again.
    let second = runtime_with(limits);
    let plugin = load(&second, &probe().0);
    assert_eq!(second.cache_stats().compiled, 0);
    assert_eq!(second.cache_stats().disk_hits, 1);
    still_serves(&second, &plugin);

    // A corrupt cache file is discarded and recompiled, not trusted. (Cached modules are mapped from
    // their files, so the file is replaced, never rewritten in place, just as the cache itself does.)
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"not a module").unwrap();
    }
    let third = runtime_with(Limits {
        cache_dir: Some(dir.path().to_path_buf()),
        ..test_limits()
    });
    let plugin = load(&third, &probe().0);
    assert_eq!(third.cache_stats().compiled, 2);
    still_serves(&third, &plugin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_plugin_does_not_stall_other_calls() {
    let rt = runtime_with(Limits {
        fuel: u64::MAX,
        deadline: Duration::from_secs(20),
        ..test_limits()
    });
    let plugin = Arc::new(load(&rt, &probe().0));
    let spinner = {
        let (rt, plugin) = (rt.clone(), plugin.clone());
        tokio::spawn(async move { rt.call(plugin, &bare("spin")).await })
    };
    for _ in 0..50 {
        let outcome = rt
            .call(plugin.clone(), &bare("count"))
            .await
            .expect("served while another call spins");
        assert_eq!(reply::<u32>(outcome), 1);
    }
    assert!(
        !spinner.is_finished(),
        "the spinning call is still running while others were served"
    );
    assert_eq!(spinner.await.unwrap().unwrap_err(), PluginError::Deadline);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_the_inline_budget_finishes_on_a_fiber_with_the_same_answer() {
    let rt = runtime_with(Limits {
        fuel: u64::MAX,
        deadline: Duration::from_secs(30),
        ..test_limits()
    });
    let plugin = Arc::new(load(&rt, &probe().0));
    // Tens of milliseconds of guest work: well past the few milliseconds an async call may run
    // inline, so it is interrupted there and run again from the start on a yielding fiber.
    let n = 40_000_000u32;
    let churn = call("churn", &BTreeMap::from([("n", n)]));
    let (outcome, fuel) = rt.call_metered(plugin.clone(), &churn).await;
    let expected = (0..n).fold(1u64, |x, _| {
        x.wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407)
    });
    assert_eq!(reply::<u64>(outcome.expect("finished on the fiber")), expected);
    // The blocking path runs it once, start to end: the same answer for the same fuel.
    let blocking = rt.call_blocking(&plugin, &churn).expect("finishes");
    assert_eq!(reply::<u64>(blocking), expected);
    let (_, short_fuel) = rt
        .call_metered(plugin, &call("churn", &BTreeMap::from([("n", 1)])))
        .await;
    assert!(fuel > short_fuel * 1000, "fuel {fuel} counts the whole long run");
}

/// Everything written to the log while the guard lives on this thread, as text.
struct LogCapture {
    text: Arc<std::sync::Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl LogCapture {
    fn start() -> Self {
        let text = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = text.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        Self {
            text,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().expect("log capture")).into_owned()
    }
}

struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log capture").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// A current-thread runtime: the inline run, the fiber and the log capture share this thread.
#[tokio::test]
async fn a_call_run_again_on_a_fiber_logs_its_lines_once() {
    let log = LogCapture::start();
    let rt = runtime_with(Limits {
        fuel: u64::MAX,
        deadline: Duration::from_secs(30),
        ..test_limits()
    });
    let plugin = Arc::new(load(&rt, &probe().0));
    // Three lines, then tens of milliseconds of work: past the inline budget, so the call is
    // interrupted after logging and runs again from the start on a fiber, logging again.
    let chatty = call("log", &BTreeMap::from([("n", 3), ("work", 40_000_000)]));
    let (outcome, _) = rt.call_metered(plugin, &chatty).await;
    assert_eq!(reply::<u32>(outcome.expect("answers")), 3);
    let text = log.text();
    for i in 0..3 {
        assert_eq!(
            text.matches(&format!("line {i}")).count(),
            1,
            "line {i} once in:\n{text}"
        );
    }
}

#[test]
fn log_lines_past_the_limit_are_counted() {
    let log = LogCapture::start();
    let rt = runtime();
    let plugin = load(&rt, &probe().0);
    let n: u32 = reply(
        rt.call_blocking(&plugin, &call("log", &BTreeMap::from([("n", 70)])))
            .expect("answers"),
    );
    assert_eq!(n, 70);
    let text = log.text();
    assert_eq!(text.matches("line 63 ").count(), 1, "{text}");
    assert!(!text.contains("line 64"), "{text}");
    assert!(text.contains("dropped=6"), "{text}");
}

#[tokio::test]
async fn async_calls_type_rejections_separately_from_faults() {
    let rt = runtime();
    let plugin = Arc::new(load(&rt, &probe().0));
    let err = rt.call(plugin.clone(), &bare("spend")).await.unwrap_err();
    assert!(matches!(&err, PluginError::Rejected { code, .. } if code == "insufficient"));
    assert!(!err.is_fault());
    let err = rt.call(plugin, &bare("panic")).await.unwrap_err();
    assert!(err.is_fault());
}

#[tokio::test]
async fn a_call_over_the_size_cap_is_the_hosts_failure_not_a_fault() {
    let rt = runtime();
    let plugin = Arc::new(load(&rt, &probe().0));
    let big = "x".repeat(cauldron_sdk::abi::MAX_CALL_BYTES);
    let call = call("echo", &BTreeMap::from([("pad", big)]));
    for err in [
        rt.call(plugin.clone(), &call).await.unwrap_err(),
        rt.call_blocking(&plugin, &call).unwrap_err(),
    ] {
        assert_eq!(err.host_failure(), Some(HostFailure::CallTooLarge), "{err}");
        assert!(!err.is_fault(), "{err}");
    }
    // The plugin itself is fine.
    assert!(rt.call(plugin, &bare("whoami")).await.is_ok());
}

fn test_limits() -> Limits {
    common::test_limits()
}

/// The probe with content tables given as TOML text.
fn probe_with_tables(tables: &[(&str, &str)]) -> cauldron_runtime::PluginSource {
    let mut src = source(&probe().0);
    for (name, text) in tables {
        let value: toml::Value = toml::from_str(text).expect("test TOML parses");
        src.content.insert(
            (*name).to_owned(),
            cauldron_sdk::Doc::encode(&value).expect("encodes"),
        );
    }
    src
}

#[test]
fn content_prepared_at_load_reaches_every_call_without_being_sent() {
    let rt = runtime();
    let plugin = rt
        .load_blocking(probe_with_tables(&[("motto", "text = \"steady hands\"")]))
        .expect("loads");
    assert!(plugin.preinitialised, "the SDK's plugins export cauldron_init");
    assert!(
        plugin.content_for(&["motto".to_owned()]).is_empty(),
        "a pre-initialised plugin's calls carry no content"
    );
    for _ in 0..3 {
        let motto: String = reply(rt.call_blocking(&plugin, &bare("motto")).expect("motto"));
        assert_eq!(motto, "steady hands");
        // `prepare` ran once, before the snapshot; calls start from its result and never re-run it.
        let prepared: u32 = reply(rt.call_blocking(&plugin, &bare("prepared")).expect("prepared"));
        assert_eq!(prepared, 1);
        still_serves(&rt, &plugin);
    }
}

/// The probe's `heap` reply: `__heap_base`, a fresh allocation, the memory size.
#[derive(serde::Deserialize, Debug)]
struct HeapLayout {
    heap_base: u64,
    fresh: u64,
    memory_bytes: u64,
}

/// The SDK's allocator starts the heap at `__heap_base`, right after the stack and the statics, and
/// not at the end of the module's initial memory, which left most of a page unused in every
/// instance and in every snapshot. Nor does it start any lower, where the statics are.
#[test]
fn the_heap_starts_right_after_the_statics() {
    for preinitialise in [false, true] {
        let rt = runtime_with(Limits {
            preinitialise,
            ..test_limits()
        });
        let plugin = load(&rt, &probe().0);
        assert_eq!(plugin.preinitialised, preinitialise);
        let layout: HeapLayout = reply(rt.call_blocking(&plugin, &bare("heap")).expect("heap"));
        assert!(layout.heap_base > 0, "{layout:?}");
        assert!(
            layout.fresh >= layout.heap_base,
            "an allocation overlaps the statics: {layout:?}"
        );
        // Before it: the call's input and its decoding (and, snapshotted, the little `prepare`
        // kept), a few KiB at most.
        assert!(
            layout.fresh - layout.heap_base < 16 << 10,
            "unused memory below the heap: {layout:?}"
        );
        assert!(layout.fresh < layout.memory_bytes, "{layout:?}");
    }
}

#[test]
fn the_hand_written_plugin_is_pre_initialised_from_the_spec_alone() {
    let tables = |n: usize| -> BTreeMap<String, cauldron_sdk::Doc> {
        (0..n)
            .map(|i| (format!("t{i}"), cauldron_sdk::Doc::encode(&i).expect("encodes")))
            .collect()
    };
    let rt = runtime();
    let plugin = rt
        .load_blocking(cauldron_runtime::PluginSource {
            content: tables(3),
            ..source(&handmade())
        })
        .expect("loads");
    assert!(plugin.preinitialised);
    for _ in 0..3 {
        // Its init counted the tables into a global; the snapshot carries it into every call.
        let inited: u8 = reply(rt.call_blocking(&plugin, &bare("inited")).expect("inited"));
        assert_eq!(inited, 3);
        let calls: u8 = reply(rt.call_blocking(&plugin, &bare("count")).expect("count"));
        assert_eq!(calls, 1, "each call still starts from the snapshot");
    }

    // With pre-initialisation off, init never runs and the same module still serves.
    let plain = runtime_with(Limits {
        preinitialise: false,
        ..test_limits()
    });
    let plugin = plain
        .load_blocking(cauldron_runtime::PluginSource {
            content: tables(3),
            ..source(&handmade())
        })
        .expect("loads");
    assert!(!plugin.preinitialised);
    let inited: u8 = reply(plain.call_blocking(&plugin, &bare("inited")).expect("inited"));
    assert_eq!(inited, 0);
}

#[test]
fn content_that_fails_its_check_is_refused_at_load() {
    let rt = runtime();
    let err = rt
        .load_blocking(probe_with_tables(&[("motto", "text = \"  \"")]))
        .expect_err("an empty motto fails the table's check");
    assert!(
        matches!(&err, PluginError::BadContent(m) if m.contains("motto: text is empty")),
        "{err:?}"
    );
    let err = rt
        .load_blocking(probe_with_tables(&[("motto", "words = 3")]))
        .expect_err("a motto without text does not decode");
    assert!(
        matches!(&err, PluginError::BadContent(m) if m.contains("motto")),
        "{err:?}"
    );
    // The runtime carries on: the same plugin with good content loads and serves.
    let plugin = rt
        .load_blocking(probe_with_tables(&[("motto", "text = \"again\"")]))
        .expect("loads");
    still_serves(&rt, &plugin);
}

#[test]
fn a_panicking_init_is_refused_at_load_with_its_message() {
    let rt = runtime();
    let err = rt
        .load_blocking(probe_with_tables(&[("panic_in_prepare", "yes = true")]))
        .expect_err("a trapping init refuses the load");
    assert!(
        matches!(&err, PluginError::Trap(m) if m.contains("asked to panic in prepare")),
        "{err:?}"
    );
    still_serves(&rt, &load(&rt, &probe().0));
}
