//! Replay of logged actions, on both backends: many players' actions across the plugins replay as
//! identical against the bundles that ran them; a content-only candidate (another meditation gain)
//! diverges on exactly the actions it affects, with the right diff; a faulting candidate is
//! reported, and `cauldron replay` (the built binary) exits non-zero on it; the admin API's replay
//! route answers a report and refuses bad input with JSON errors.
//!
//! The identical-replay case logs 10,000 applied actions across the five game plugins
//! (`CAULDRON_REPLAY_ACTIONS` sets another count) and replays every logged one. The cases print the
//! log's bytes per action and the replay rate against the runtime's own call rate; nothing is
//! asserted about time.

#![allow(clippy::unwrap_used, reason = "an unwrap is an assertion in a test")]
#![allow(
    clippy::disallowed_macros,
    reason = "the cases report their measurements on stderr"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use cauldron_host::game::{ActionRequest, GameError, call_log};
use cauldron_host::replay::{
    DivergenceKind, Originals, OutcomeView, ReplayFilter, ReplayOptions, ReplayReport, load_candidate, replay,
};
use cauldron_host::store::{DEFAULT_PLAYER_NAME, Role};
use cauldron_runtime::{BUNDLE_MEDIA_TYPE, Bundle};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, edit_content, random_u64, shared_module_cache};

const ADMIN: &str = "replay-admin-token-0123456789abcdef";
const DAY: Duration = Duration::from_secs(24 * 3600);
const TEN_MINUTES: Duration = Duration::from_secs(600);

/// A host whose alchemy fragments cost one spirit stone, so players of a few game days unlock and
/// craft a recipe.
async fn start(backend: Backend) -> TestApp {
    TestApp::start_prepared(backend, &[("ADMIN_TOKEN", ADMIN)], |plugins| {
        edit_content(
            plugins,
            "alchemy/recipes.toml",
            &[("fragment_price = 50000\n", "fragment_price = 1\n")],
        );
    })
    .await
}

/// A new player (their plugins' `start` actions run and are logged).
async fn new_player(app: &TestApp) -> i64 {
    let account = app
        .state
        .store
        .create_account(&format!("r{:x}", random_u64()), "not-a-real-hash", Role::Player)
        .await
        .unwrap();
    app.state
        .game
        .create_character(account.id, DEFAULT_PLAYER_NAME)
        .await
        .unwrap()
        .id
}

/// Cheap actions of the five game plugins, each repeatable once a game day: the daily check-in
/// pays the spirit stones the draws and fragments cost, hunts bring the herbs a pill needs.
fn mix() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("cultivation", "checkin", json!({})),
        ("cultivation", "gather", json!({})),
        ("cultivation", "meditate", json!({})),
        ("equipment", "draw", json!({"count": 1})),
        ("pet", "draw", json!({"count": 1})),
        ("dungeon", "hunt", json!({"monster": 1})),
        ("dungeon", "hunt", json!({"monster": 2})),
        (
            "alchemy",
            "buy_fragment",
            json!({"recipe": "spirit_gathering", "quantity": 5}),
        ),
        ("alchemy", "craft", json!({"recipe": "spirit_gathering"})),
        ("alchemy", "eat", json!({"pill": "spirit_gathering"})),
    ]
}

/// Players run `mix` round after round (game time moves `step` between rounds, so resources
/// accrue) until at least `target` actions were applied. Rejections are the rules at work and
/// count for nothing; anything else is a failure. Returns the applied actions by plugin and action.
async fn play(
    app: &TestApp,
    players: &[i64],
    mix: &[(&'static str, &'static str, Value)],
    step: Duration,
    target: usize,
) -> BTreeMap<(String, String), usize> {
    let mut applied: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut total = 0;
    let mut rounds = 0;
    while total < target {
        rounds += 1;
        assert!(
            rounds < 500,
            "only {total} of {target} actions applied: {applied:?}"
        );
        app.clock.advance(step);
        let mut tasks = Vec::new();
        for &player in players {
            let game = app.state.game.clone();
            let mix = mix.to_vec();
            tasks.push(tokio::spawn(async move {
                let mut done = Vec::new();
                for (plugin, action, params) in mix {
                    let req = ActionRequest {
                        player_id: player,
                        plugin: plugin.to_owned(),
                        action: action.to_owned(),
                        params,
                        idempotency_key: None,
                    };
                    match game.execute(req).await {
                        Ok(_) => done.push((plugin.to_owned(), action.to_owned())),
                        Err(GameError::Rejected { .. } | GameError::BadParams(_)) => {}
                        Err(e) => panic!("{plugin}/{action}: {e}"),
                    }
                }
                done
            }));
        }
        for task in tasks {
            for key in task.await.unwrap() {
                *applied.entry(key).or_default() += 1;
                total += 1;
            }
        }
    }
    applied
}

/// Every logged action of `plugin`, oldest first.
async fn logged(app: &TestApp, plugin: &str) -> Vec<cauldron_host::store::LoggedAction> {
    let mut all = Vec::new();
    loop {
        let after = all
            .last()
            .map_or(0, |r: &cauldron_host::store::LoggedAction| r.id);
        let page = app.state.store.action_log(plugin, after, 1000).await.unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// Replay `plugin`'s log against `candidate` on the app's runtime, finding originals in its registry,
/// store and plugins folder.
async fn replay_on(
    app: &TestApp,
    plugin: &str,
    candidate: Arc<cauldron_runtime::PluginVersion>,
    options: &ReplayOptions,
) -> ReplayReport {
    let runtime = app.state.rollout.runtime().clone();
    let originals = Arc::new(Originals::new(
        runtime.clone(),
        Arc::clone(&app.state.store),
        plugin,
        Some(Arc::clone(&app.state.registry)),
        Some(app.state.config.plugins_dir.clone()),
    ));
    replay(
        &runtime,
        Arc::clone(&app.state.store),
        plugin,
        candidate,
        originals,
        options,
    )
    .await
    .unwrap()
}

async fn logged_actions_replay_as_identical_against_the_same_bundles(app: TestApp) {
    let target: usize = std::env::var("CAULDRON_REPLAY_ACTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut players = Vec::new();
    for _ in 0..50 {
        players.push(new_player(&app).await);
    }
    let applied = play(&app, &players, &mix(), DAY, target).await;
    eprintln!("applied: {applied:?}");
    let plugins: BTreeSet<&str> = applied.keys().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        plugins,
        BTreeSet::from(["alchemy", "cultivation", "dungeon", "equipment", "pet"]),
        "the mix reaches the plugins: {applied:?}"
    );

    let mut total = 0u64;
    for plugin in plugins {
        let rows = logged(&app, plugin).await;
        assert!(!rows.is_empty(), "{plugin} logged actions");
        // The log's cost per action: the stored (compressed) call against the call itself.
        let stored: usize = rows.iter().map(|r| r.entry.call.as_ref().unwrap().len()).sum();
        let raw: usize = rows
            .iter()
            .map(|r| call_log::unpack(r.entry.call.as_ref().unwrap()).unwrap().len())
            .sum();
        if !rows.is_empty() {
            eprintln!(
                "{plugin}: {} logged actions, call {} bytes on average, {} stored (compressed)",
                rows.len(),
                raw / rows.len(),
                stored / rows.len()
            );
        }
        let candidate = app.state.registry.get(plugin).unwrap();
        let options = ReplayOptions {
            measure: plugin == "cultivation",
            ..ReplayOptions::default()
        };
        let report = replay_on(&app, plugin, candidate, &options).await;
        assert_eq!(report.replayed, rows.len() as u64, "{plugin}: {report:?}");
        assert_eq!(report.identical, report.replayed, "{plugin}: {report:?}");
        assert_eq!(
            (report.diverged.total, report.faulted, report.skipped),
            (0, 0, 0),
            "{plugin}: {report:?}"
        );
        if let Some(t) = &report.throughput {
            eprintln!(
                "{plugin}: replay {:.0} actions/s, runtime alone {:.0} calls/s: ratio {:.2} ({} workers)",
                t.replay_calls_per_sec, t.runtime_calls_per_sec, t.ratio, options.workers
            );
        }
        total += report.replayed;
    }
    let applied_total: usize = applied.values().sum();
    assert!(
        total as usize >= applied_total,
        "{total} replayed for {applied_total} applied"
    );
    eprintln!("replayed {total} logged actions, all identical");
}

/// The cultivation bundle of the app's plugins folder with the meditation gain base doubled.
fn doubled_gain(app: &TestApp) -> Bundle {
    let mut bundle = Bundle::from_dir(&app.state.config.plugins_dir, "cultivation").unwrap();
    let text = bundle.content.get_mut("cultivation").unwrap();
    let before = text.clone();
    *text = text.replacen("gain_base = 1.0", "gain_base = 2.0", 1);
    assert_ne!(*text, before);
    bundle
}

/// The `set_stat` of the cultivation stat among `effects`.
fn cultivation_set(effects: &[Value]) -> Option<f64> {
    effects
        .iter()
        .find(|e| e["op"] == "set_stat" && e["name"] == "cultivation")
        .and_then(|e| e["value"].as_f64())
}

async fn a_content_only_candidate_diverges_on_exactly_the_affected_actions(app: TestApp) {
    let mut players = Vec::new();
    for _ in 0..10 {
        players.push(new_player(&app).await);
    }
    // From here on only meditation and the other plugins' actions are logged. `since` is a
    // millisecond after the clock's now and the play starts later, so the players' `start` rows
    // logged just before (perhaps in this very millisecond) are left out.
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 1;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mix: Vec<_> = mix()
        .into_iter()
        .filter(|(p, a, _)| *p != "cultivation" || *a == "meditate")
        .collect();
    play(&app, &players, &mix, TEN_MINUTES, 300).await;
    let rows: Vec<_> = logged(&app, "cultivation")
        .await
        .into_iter()
        .filter(|r| r.created_ms >= since)
        .collect();
    assert!(rows.iter().all(|r| r.entry.action == "meditate"));
    // A meditation whose luck roll multiplied by zero gains nothing either way.
    let affected: BTreeSet<i64> = rows
        .iter()
        .filter(|r| r.entry.reply["cultivation_gain"].as_f64().unwrap() > 0.0)
        .map(|r| r.id)
        .collect();
    assert!(!affected.is_empty(), "some meditation gained cultivation");

    let candidate = load_candidate(app.state.rollout.runtime(), "cultivation", doubled_gain(&app))
        .await
        .unwrap();
    let options = ReplayOptions {
        filter: ReplayFilter {
            since_ms: Some(since),
            ..ReplayFilter::default()
        },
        diffs: 100_000,
        ..ReplayOptions::default()
    };
    let report = replay_on(&app, "cultivation", candidate, &options).await;
    assert_eq!(report.replayed, rows.len() as u64, "{report:?}");
    assert_eq!((report.faulted, report.skipped), (0, 0), "{report:?}");
    let diverged: BTreeSet<i64> = report.divergences.iter().map(|d| d.log_id).collect();
    assert_eq!(diverged, affected, "exactly the meditations that gained diverge");
    assert_eq!(report.diverged.total, affected.len() as u64);
    assert_eq!(
        report.diverged.effects,
        affected.len() as u64,
        "{:?}",
        report.diverged
    );
    assert_eq!(report.identical, (rows.len() - affected.len()) as u64);
    for d in &report.divergences {
        assert_eq!(d.kind, DivergenceKind::Effects);
        assert_eq!(d.action, "meditate");
        assert!(
            d.old_reproduced,
            "the original ran again gives the logged outcome: {d:?}"
        );
        let (
            Some(OutcomeView::Accepted {
                effects: old,
                reply: old_reply,
            }),
            OutcomeView::Accepted {
                effects: new,
                reply: new_reply,
            },
        ) = (&d.old, &d.new)
        else {
            panic!("both accepted: {d:?}");
        };
        let row = rows.iter().find(|r| r.id == d.log_id).unwrap();
        for field in ["cultivation_gain", "cultivation", "spirit"] {
            assert_eq!(
                old_reply[field], row.entry.reply[field],
                "the old reply is the logged one"
            );
        }
        // Twice the gain (rounded to a tenth either way).
        let (g_old, g_new) = (
            old_reply["cultivation_gain"].as_f64().unwrap(),
            new_reply["cultivation_gain"].as_f64().unwrap(),
        );
        assert!((g_new - 2.0 * g_old).abs() <= 0.11, "gain {g_old} → {g_new}");
        // The diff names the cultivation the two versions set (a doubled gain may also break
        // through to the next level, which changes more).
        assert!(
            cultivation_set(old).is_some() && cultivation_set(new).is_some(),
            "{d:?}"
        );
        assert!(
            cultivation_set(&d.effects_removed).is_some() && cultivation_set(&d.effects_added).is_some(),
            "{d:?}"
        );
    }

    // The other plugins are not affected by a cultivation candidate: their replays stay identical.
    for plugin in ["alchemy", "pet"] {
        let serving = app.state.registry.get(plugin).unwrap();
        let report = replay_on(&app, plugin, serving, &ReplayOptions::default()).await;
        assert_eq!(report.identical, report.replayed, "{plugin}: {report:?}");
    }
}

/// A module that says it is the probe (the same manifest) and traps on every call.
fn trapping_probe(app: &TestApp) -> String {
    let manifest = app.state.registry.get("probe").unwrap().manifest.clone();
    let bytes = cauldron_sdk::codec::encode(&manifest).unwrap();
    let data: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
    format!(
        r#"(module
  (memory (export "memory") 2)
  (data (i32.const 1024) "{data}")
  (global $heap (mut i32) (i32.const 65536))
  (func (export "cauldron_abi_v1"))
  (func (export "cauldron_alloc") (param $len i32) (result i32)
    (local $ptr i32) (local $end i32)
    (local.set $ptr (global.get $heap))
    (local.set $end (i32.and (i32.add (i32.add (local.get $ptr) (local.get $len)) (i32.const 7)) (i32.const -8)))
    (block $done
      (loop $grow
        (br_if $done (i32.le_u (local.get $end) (i32.mul (memory.size) (i32.const 65536))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then (return (i32.const 0))))
        (br $grow)))
    (global.set $heap (local.get $end))
    (local.get $ptr))
  (func (export "cauldron_free") (param i32 i32))
  (func (export "cauldron_describe") (result i64)
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const {len})))
  (func (export "cauldron_handle") (param i32 i32) (result i64)
    unreachable))
"#,
        len = bytes.len()
    )
}

/// Run the built `cauldron replay` against the app's database; its exit code and its JSON report.
fn replay_binary(app: &TestApp, args: &[&str]) -> (Option<i32>, Value, String) {
    let cwd = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cauldron"))
        .current_dir(cwd.path())
        .arg("replay")
        .args(args)
        .arg("--json")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", &app.database_url)
        .env("PLUGINS_DIR", &app.state.config.plugins_dir)
        .env("MODULE_CACHE_DIR", shared_module_cache())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), report, stderr)
}

async fn a_faulting_candidate_is_reported_and_the_cli_exits_non_zero(app: TestApp) {
    let mut players = Vec::new();
    for _ in 0..4 {
        players.push(new_player(&app).await);
    }
    let grants = vec![("probe", "grant", json!({"n": 2}))];
    play(&app, &players, &grants, TEN_MINUTES, 20).await;
    let logged_grants = logged(&app, "probe").await.len() as u64;
    assert!(logged_grants >= 20);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("probe.wasm"), trapping_probe(&app)).unwrap();
    let bundle = Bundle::from_dir(dir.path(), "probe").unwrap();
    let candidate = load_candidate(app.state.rollout.runtime(), "probe", bundle)
        .await
        .unwrap();
    let report = replay_on(&app, "probe", candidate, &ReplayOptions::default()).await;
    assert_eq!(
        (report.replayed, report.faulted),
        (logged_grants, logged_grants),
        "{report:?}"
    );
    assert!(
        report
            .faults
            .iter()
            .all(|f| f.kind == "trap" && f.action == "grant"),
        "{:?}",
        report.faults
    );
    assert!(report.failed(false));

    // The binary: the same candidate folder fails the run (exit 2), with the faults in its JSON.
    let candidate_dir = dir.path().display().to_string();
    let (code, json, stderr) = replay_binary(&app, &["--plugin", "probe", "--candidate", &candidate_dir]);
    assert_eq!(code, Some(2), "{json} {stderr}");
    assert_eq!(json["faulted"], logged_grants, "{json}");
    assert_eq!(json["faults"][0]["kind"], "trap", "{json}");

    // The serving files as the candidate: every action identical, exit 0 even with --strict.
    let plugins = app.state.config.plugins_dir.display().to_string();
    let (code, json, stderr) = replay_binary(
        &app,
        &[
            "--plugin",
            "probe",
            "--candidate",
            &plugins,
            "--strict",
            "--limit",
            "7",
        ],
    );
    assert_eq!(code, Some(0), "{json} {stderr}");
    assert_eq!(
        (json["replayed"].as_u64(), json["identical"].as_u64()),
        (Some(7), Some(7)),
        "{json}"
    );

    // A candidate that names nothing is an error of its own (exit 1), not a report.
    let (code, _, stderr) = replay_binary(&app, &["--plugin", "probe", "--candidate", "/nowhere/at/all"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("candidate"), "{stderr}");
}

async fn admin_post(app: &TestApp, path: &str, body: &Value) -> (StatusCode, Value) {
    let resp = app
        .http
        .post(app.url(path))
        .bearer_auth(ADMIN)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn the_admin_api_replays_against_a_stored_version(app: TestApp) {
    let mut players = Vec::new();
    for _ in 0..4 {
        players.push(new_player(&app).await);
    }
    let meditate = vec![("cultivation", "meditate", json!({}))];
    play(&app, &players, &meditate, TEN_MINUTES, 20).await;

    // Store the doubled gain as a version, serving nowhere yet.
    let bundle = doubled_gain(&app);
    let serving = app.state.registry.get("cultivation").unwrap().sha256.clone();
    let resp = app
        .http
        .post(app.url("/api/v1/admin/plugins/cultivation?activate=false"))
        .bearer_auth(ADMIN)
        .header("content-type", BUNDLE_MEDIA_TYPE)
        .body(bundle.encode())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let stored: Value = resp.json().await.unwrap();
    assert_eq!(stored["stored"]["sha256"], bundle.digest().as_str(), "{stored}");
    assert_eq!(stored["stored"]["active"], false, "{stored}");
    assert_eq!(
        stored["sha256"],
        serving.as_str(),
        "the serving version did not change"
    );

    let path = "/api/v1/admin/plugins/cultivation/replay";
    let (status, report) = admin_post(
        &app,
        path,
        &json!({"candidate": bundle.digest(), "action": "meditate", "limit": 1000, "diffs": 3}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["candidate"]["sha256"], bundle.digest().as_str());
    let replayed = report["replayed"].as_u64().unwrap();
    assert!(replayed >= 20, "{report}");
    assert!(report["diverged"]["effects"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["faulted"], 0);
    assert!(report["divergences"].as_array().unwrap().len() <= 3);
    assert_eq!(report["divergences"][0]["action"], "meditate");

    // Bad input is a 4xx JSON error.
    let digest = bundle.digest();
    for (body, status, code) in [
        (json!({"candidate": "abc"}), StatusCode::BAD_REQUEST, "bad_digest"),
        (
            json!({"candidate": digest, "limit": 0}),
            StatusCode::BAD_REQUEST,
            "bad_replay",
        ),
        (
            json!({"candidate": digest, "diffs": 1000}),
            StatusCode::BAD_REQUEST,
            "bad_replay",
        ),
        (
            json!({"candidate": digest, "action": ""}),
            StatusCode::BAD_REQUEST,
            "bad_replay",
        ),
        (
            json!({"candidate": "0".repeat(64)}),
            StatusCode::NOT_FOUND,
            "no_artifact",
        ),
    ] {
        let (got, answer) = admin_post(&app, path, &body).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
    }
    let (got, answer) = admin_post(&app, path, &json!({"candidate": digest, "surprise": 1})).await;
    assert_eq!(got, StatusCode::BAD_REQUEST, "{answer}");
    let resp = app
        .http
        .post(app.url(path))
        .json(&json!({"candidate": digest}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

both_backends!(crate::replay::start;
    logged_actions_replay_as_identical_against_the_same_bundles,
    a_content_only_candidate_diverges_on_exactly_the_affected_actions,
    a_faulting_candidate_is_reported_and_the_cli_exits_non_zero,
    the_admin_api_replays_against_a_stored_version,
);
