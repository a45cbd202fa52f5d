//! The action pipeline against the real stores and services: double spend, atomicity, idempotency,
//! events, and a Redis outage in the middle of play. PostgreSQL + Redis and SQLite + in-process.

#![allow(clippy::unwrap_used, reason = "an unwrap is an assertion in a test")]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::common::TestApp;
use cauldron_host::bus::Channel;
use cauldron_host::cache::{Health, Services, ServicesConfig};
use cauldron_host::game::{ActionRequest, Game, GameError};
use cauldron_host::metrics::Metrics;
use cauldron_host::store::{self, Role, Store};
use cauldron_runtime::{Limits, PluginSource, Registry, Runtime};
use serde_json::json;

/// A fresh account with a character; returns the player id.
async fn new_player(store: &dyn Store, game: &Game, name: &str) -> i64 {
    let account = store
        .create_account(name, "not-a-real-hash", Role::Player)
        .await
        .unwrap();
    game.create_character(account.id, name).await.unwrap().id
}

fn req(player_id: i64, action: &str, params: serde_json::Value) -> ActionRequest {
    ActionRequest {
        player_id,
        plugin: "probe".into(),
        action: action.into(),
        params,
        idempotency_key: None,
    }
}

async fn gems(game: &Game, player_id: i64) -> i64 {
    game.state(player_id)
        .await
        .unwrap()
        .items
        .get("gem")
        .copied()
        .unwrap_or(0)
}

both_backends!(
    crate::common::TestApp::start;
    double_spend,
    atomicity,
    idempotency,
    events_reach_subscribers,
    a_new_character_is_started_by_plugins
);

/// 100 gems, 200 concurrent attempts to spend one: exactly 100 succeed, 100 are rule rejections.
async fn double_spend(app: TestApp) {
    let game = app.state.game.clone();
    let player = new_player(app.state.store.as_ref(), &game, "spender").await;
    game.execute(req(player, "grant", json!({"n": 100})))
        .await
        .unwrap();
    assert_eq!(gems(&game, player).await, 100);

    let mut tasks = Vec::new();
    for _ in 0..200 {
        let game = game.clone();
        tasks.push(tokio::spawn(async move {
            game.execute(req(player, "spend", json!({}))).await
        }));
    }
    let (mut ok, mut rejected) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(GameError::Rejected { code, .. }) if code == "insufficient" => rejected += 1,
            Err(other) => panic!("no other error may reach a caller: {other:?}"),
        }
    }
    assert_eq!((ok, rejected), (100, 100));
    assert_eq!(gems(&game, player).await, 0);
    let log = app.state.store.action_log("probe", 0, 1000).await.unwrap();
    assert_eq!(log.iter().filter(|a| a.entry.action == "spend").count(), 100);
}

/// A valid effect followed by an invalid one: the action is a plugin fault and nothing changes.
async fn atomicity(app: TestApp) {
    let game = app.state.game.clone();
    let player = new_player(app.state.store.as_ref(), &game, "atomic").await;
    game.execute(req(player, "grant", json!({"n": 3}))).await.unwrap();
    let before = game.state(player).await.unwrap();
    match game.execute(req(player, "half", json!({}))).await {
        Err(GameError::Fault { plugin, kind, .. }) => {
            assert_eq!((plugin.as_str(), kind), ("probe", "bad_effect"))
        }
        other => panic!("expected a plugin fault, got {other:?}"),
    }
    assert_eq!(
        game.state(player).await.unwrap(),
        before,
        "state exactly as before"
    );
    // A trapping plugin changes nothing either, and the host serves the next action.
    assert!(matches!(
        game.execute(req(player, "panic", json!({}))).await,
        Err(GameError::Fault { kind: "trap", .. })
    ));
    assert_eq!(game.state(player).await.unwrap(), before);
    game.execute(req(player, "spend", json!({}))).await.unwrap();
    assert_eq!(gems(&game, player).await, 2);
}

/// The same idempotency key twice applies once and returns the same reply.
async fn idempotency(app: TestApp) {
    let game = app.state.game.clone();
    let player = new_player(app.state.store.as_ref(), &game, "careful").await;
    game.execute(req(player, "grant", json!({"n": 5}))).await.unwrap();
    let keyed = |key: &str| ActionRequest {
        idempotency_key: Some(key.into()),
        ..req(player, "spend", json!({}))
    };
    let first = game.execute(keyed("k-1")).await.unwrap();
    let second = game.execute(keyed("k-1")).await.unwrap();
    assert!(!first.replayed && second.replayed);
    assert_eq!(first.reply, second.reply);
    assert_eq!(first.player_version, second.player_version);
    assert_eq!(gems(&game, player).await, 4, "applied once");
    game.execute(keyed("k-2")).await.unwrap();
    assert_eq!(gems(&game, player).await, 3);
}

/// Events go to the player's channel and the global one after the commit.
async fn events_reach_subscribers(app: TestApp) {
    let game = app.state.game.clone();
    let player = new_player(app.state.store.as_ref(), &game, "loud").await;
    let mut mine = app.state.services.bus.subscribe(&Channel::Player(player)).await;
    let mut all = app.state.services.bus.subscribe(&Channel::Global).await;
    let reply = game.execute(req(player, "shout", json!({"n": 7}))).await.unwrap();
    assert_eq!(reply.events.len(), 2);
    async fn recv(s: &mut cauldron_host::bus::Subscription) -> bytes::Bytes {
        tokio::time::timeout(Duration::from_secs(10), s.recv())
            .await
            .unwrap()
            .unwrap()
    }
    let ev: serde_json::Value = serde_json::from_slice(&recv(&mut mine).await).unwrap();
    assert_eq!(
        (
            ev["topic"].as_str(),
            ev["data"].as_i64(),
            ev["player_id"].as_i64()
        ),
        (Some("shout"), Some(7), Some(player))
    );
    let ev: serde_json::Value = serde_json::from_slice(&recv(&mut all).await).unwrap();
    assert_eq!(ev["topic"], "shout_all");
}

/// Creating a character runs each plugin's `start`; the real cultivation rules then apply.
async fn a_new_character_is_started_by_plugins(app: TestApp) {
    let game = app.state.game.clone();
    let player = new_player(app.state.store.as_ref(), &game, "novice").await;
    let stats = game.effective_stats(player).await.unwrap();
    assert_eq!(
        stats.base.get("level"),
        Some(&1.0),
        "cultivation's start set level 1: {:?}",
        stats.base
    );
    assert!(stats.effective.get("attack").copied().unwrap_or(0.0) > 0.0);
    // A fresh character has no spirit: meditation is a rule rejection and changes nothing.
    let before = game.state(player).await.unwrap();
    let err = game
        .execute(ActionRequest {
            plugin: "cultivation".into(),
            ..req(player, "meditate", json!({}))
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, GameError::Rejected { code, .. } if code == "insufficient"),
        "{err:?}"
    );
    assert_eq!(game.state(player).await.unwrap(), before);
}

/// A redis-server of our own, killed on drop.
struct OwnRedis(Option<Child>);

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        Self(Some(child))
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Actions keep succeeding while Redis refuses connections, and the host reconnects by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn actions_survive_a_redis_outage() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = OwnRedis::start(port);
    let url = format!("redis://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let store = store::connect(
        &format!("sqlite://{}", dir.path().join("outage.db").display()),
        store::GroupCommit::default(),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let services = Services::connect_with(ServicesConfig {
        redis_url: Some(url),
        key_prefix: "outage:".into(),
        startup_attempts: 20,
    })
    .await
    .unwrap();
    until("redis up", async || services.health().await == Health::Ok).await;

    let fixtures = std::env::var("CAULDRON_FIXTURES_DIR").expect("run through cargo xtask test");
    let runtime = Runtime::new(Limits::default()).unwrap();
    let registry = Arc::new(Registry::new());
    registry.publish(
        runtime
            .load(PluginSource::from_dir(fixtures.as_ref(), "probe").unwrap())
            .await
            .unwrap(),
    );
    let game = Game::new(
        runtime,
        registry,
        Arc::clone(&store),
        services.clone(),
        Arc::new(Metrics::new()),
    );
    let player = new_player(store.as_ref(), &game, "stubborn").await;
    game.execute(req(player, "grant", json!({"n": 30})))
        .await
        .unwrap();

    for _ in 0..5 {
        game.execute(req(player, "spend", json!({}))).await.unwrap();
    }
    redis.kill();
    until("degraded health", async || services.health().await != Health::Ok).await;
    for _ in 0..5 {
        game.execute(req(player, "spend", json!({})))
            .await
            .expect("actions succeed while Redis is down");
    }
    let _redis = OwnRedis::start(port);
    until("reconnection", async || services.health().await == Health::Ok).await;
    for _ in 0..5 {
        game.execute(req(player, "spend", json!({}))).await.unwrap();
    }
    assert_eq!(
        gems(&game, player).await,
        15,
        "every applied action kept, none lost or doubled"
    );
}
