//! One action of the cultivation plugin through the runtime (fresh sandbox per call, MessagePack in
//! and out) against the same logic called natively through the SDK's export glue; instantiation
//! alone; compile; cached load. Figures go to docs/benchmarks.md.
//!
//! The cultivation plugin is a dev-dependency here only so the native side runs the identical code;
//! the runtime itself never names a plugin.

#![allow(
    clippy::unwrap_used,
    clippy::disallowed_macros,
    missing_docs,
    reason = "a benchmark binary (criterion generates undocumented items): failing loudly and printing its figures are its job"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cauldron_plugin_cultivation::Cultivation;
use cauldron_runtime::{Limits, PluginSource, PluginVersion, Runtime, read_content_dir, sha256_hex};
use cauldron_sdk::Doc;
use cauldron_sdk::codec;
use cauldron_sdk::wire::{Call, CallKind, Init, Outcome, PlayerState};
use criterion::{Criterion, criterion_group, criterion_main};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cultivation_wasm() -> Vec<u8> {
    if let Ok(dir) = std::env::var("CAULDRON_PLUGINS_OUT")
        && let Ok(bytes) = std::fs::read(Path::new(&dir).join("cultivation.wasm"))
    {
        return bytes;
    }
    let target = root().join("target/bench-plugins");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root())
        .args([
            "build",
            "--quiet",
            "--profile",
            "plugin",
            "--target",
            "wasm32-unknown-unknown",
            "-p",
            "cauldron-plugin-cultivation",
        ])
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("cargo");
    assert!(status.success());
    std::fs::read(target.join("wasm32-unknown-unknown/plugin/cauldron_plugin_cultivation.wasm"))
        .expect("wasm")
}

fn call(action: &str, player: PlayerState, plugin: &PluginVersion) -> Call {
    let spec = plugin.manifest.action(action).expect("action");
    Call {
        action: action.into(),
        kind: CallKind::Action,
        params: Doc::nil(),
        player,
        effective_stats: Default::default(),
        now_ms: 1_700_000_000_000,
        seed: 7,
        content: plugin.content_for(&spec.content),
        other_player: None,
    }
}

/// A started level-1 character with plenty of spirit, built by running `start` for real.
fn meditate_call(rt: &Runtime, plugin: &PluginVersion) -> Call {
    let start = rt
        .call_blocking(
            plugin,
            &call(
                "start",
                PlayerState {
                    id: 1,
                    ..Default::default()
                },
                plugin,
            ),
        )
        .unwrap();
    let Outcome::Ok { effects, .. } = start else {
        panic!("start: {start:?}")
    };
    let mut player = PlayerState {
        id: 1,
        ..Default::default()
    };
    for e in &effects {
        player.apply(e);
    }
    player.currencies.insert("spirit".into(), 1_000_000_000);
    let c = call("meditate", player, plugin);
    match rt.call_blocking(plugin, &c).unwrap() {
        Outcome::Ok { .. } => c,
        other => panic!("meditate: {other:?}"),
    }
}

/// CPU time of the whole process (every thread, the epoch ticker included), in nanoseconds.
fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        t.tv_sec.try_into().unwrap_or(0),
        t.tv_nsec.try_into().unwrap_or(0),
    )
}

/// Process CPU time of `n` runs of `f`.
fn cpu_of(n: u32, mut f: impl FnMut()) -> Duration {
    let t0 = process_cpu();
    for _ in 0..n {
        f();
    }
    process_cpu() - t0
}

fn bench(c: &mut Criterion) {
    let cache = tempfile::tempdir().unwrap();
    let rt = Runtime::new(Limits {
        cache_dir: Some(cache.path().to_path_buf()),
        ..Limits::default()
    })
    .unwrap();
    let wasm = cultivation_wasm();
    let content = read_content_dir(&root().join("plugins/cultivation/content")).unwrap();
    let source = PluginSource {
        wasm: wasm.clone(),
        content,
        expected_name: None,
        bundle: None,
    };
    let plugin = rt.load_blocking(source.clone()).unwrap();
    assert!(plugin.preinitialised);
    let the_call = meditate_call(&rt, &plugin);
    let input = codec::encode(&the_call).unwrap();
    eprintln!(
        "meditate call: {} bytes encoded; wasm {} bytes",
        input.len(),
        wasm.len()
    );
    // The native side is prepared once too, as `cauldron_init` prepares the wasm one.
    let init = codec::encode(&Init {
        content: source.content.clone(),
    })
    .unwrap();
    let ready = codec::decode::<Outcome>(&cauldron_sdk::export::init_bytes::<Cultivation>(&init)).unwrap();
    assert!(matches!(ready, Outcome::Ok { .. }), "{ready:?}");

    // The same plugin without pre-initialisation: every call carries and decodes its tables.
    let rt_plain = Runtime::new(Limits {
        cache_dir: Some(cache.path().to_path_buf()),
        preinitialise: false,
        ..Limits::default()
    })
    .unwrap();
    let plain = rt_plain.load_blocking(source.clone()).unwrap();
    let plain_call = meditate_call(&rt_plain, &plain);
    let plain_input = codec::encode(&plain_call).unwrap();
    eprintln!(
        "without pre-initialisation the call is {} bytes",
        plain_input.len()
    );

    let mut g = c.benchmark_group("meditate");
    g.bench_function("native (decode + rule + encode, same glue)", |b| {
        b.iter(|| {
            let out = cauldron_sdk::export::handle_bytes::<Cultivation>(&input);
            codec::decode::<Outcome>(&out).unwrap()
        })
    });
    g.bench_function("sandboxed (fresh instance per call)", |b| {
        b.iter(|| rt.call_bytes(&plugin, &input).unwrap())
    });
    g.bench_function("sandboxed, not pre-initialised (tables in every call)", |b| {
        b.iter(|| rt_plain.call_bytes(&plain, &plain_input).unwrap())
    });
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let shared = std::sync::Arc::new(rt.load_blocking(source.clone()).unwrap());
    let (_, fuel) = tokio.block_on(rt.call_metered(shared.clone(), &the_call));
    let plain_shared = std::sync::Arc::new(rt_plain.load_blocking(source.clone()).unwrap());
    let (_, plain_fuel) = tokio.block_on(rt_plain.call_metered(plain_shared, &plain_call));
    eprintln!("fuel per meditate call: {fuel} pre-initialised, {plain_fuel} with tables in the call");
    // The request path as the host runs it: an async task on a worker thread encodes the call,
    // takes a permit, runs the guest inline and decodes the outcome. Each iteration is one
    // task on the runtime's workers, as a request handler is.
    g.bench_function(
        "sandboxed, async request path (encode + permit + call + decode, on a worker)",
        |b| {
            b.iter_custom(|iters| {
                let (rt, shared, the_call) = (rt.clone(), shared.clone(), the_call.clone());
                tokio.block_on(async move {
                    tokio::spawn(async move {
                        let t0 = Instant::now();
                        for _ in 0..iters {
                            std::hint::black_box(rt.call(shared.clone(), &the_call).await.unwrap());
                        }
                        t0.elapsed()
                    })
                    .await
                    .unwrap()
                })
            })
        },
    );
    g.finish();

    c.bench_function("instantiate only", |b| {
        b.iter(|| rt.instantiate_only(&plugin).unwrap())
    });
    c.bench_function("instantiate only, not pre-initialised", |b| {
        b.iter(|| rt_plain.instantiate_only(&plain).unwrap())
    });
    c.bench_function(
        "cached load (snapshot module from the disk cache, describe, validate)",
        |b| {
            b.iter(|| {
                rt.clear_memory_cache();
                rt.load_blocking(source.clone()).unwrap()
            })
        },
    );
    c.bench_function(
        "cached module only (snapshot module from the disk cache, ABI check, link)",
        |b| b.iter(|| rt.load_cached_module_only(&plugin).unwrap()),
    );
    c.bench_function("sha256 of the wasm (the cache key; part of every load)", |b| {
        b.iter(|| sha256_hex(&wasm))
    });
    let mut slow = c.benchmark_group("compile");
    slow.sample_size(10);
    slow.bench_function("cranelift compile (no cache)", |b| {
        b.iter(|| rt.compile_uncached(&wasm).unwrap())
    });
    slow.finish();

    // Whole-process CPU per call, background threads included (the epoch ticker, the allocator).
    // Sandboxed and native runs alternate in rounds, so a neighbour slowing this shared machine
    // down for a while weighs on both sides alike; the figure is the median of the rounds' ratios.
    let (rounds, n) = (15, 20_000u32);
    let mut ratios = Vec::new();
    let (mut sandboxed, mut native) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let s = cpu_of(n, || {
            rt.call_bytes(&plugin, &input).unwrap();
        });
        let d = cpu_of(n, || {
            let out = cauldron_sdk::export::handle_bytes::<Cultivation>(&input);
            codec::decode::<Outcome>(&out).unwrap();
        });
        ratios.push(s.as_secs_f64() / d.as_secs_f64().max(1e-9));
        sandboxed += s;
        native += d;
    }
    ratios.sort_by(f64::total_cmp);
    let per_call = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(n * rounds);
    eprintln!(
        "process CPU per call over {rounds} alternating rounds of {n} calls: sandboxed {:.2} µs, native {:.2} µs; ratio median {:.2} (rounds {:.2} to {:.2})",
        per_call(sandboxed),
        per_call(native),
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
