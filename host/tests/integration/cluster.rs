//! Several real `cauldron` processes (the binary cargo built for this test) sharing one PostgreSQL
//! database and one Redis key prefix, each with its own plugins folder, sharing a module cache as
//! the replicas of deploy/docker-compose.yml do, as hosts behind nginx would be: events cross hosts over the bus, and plugin uploads, rollbacks and unloads
//! through the admin API of one host reach the others, and a logout on one host revokes the token on
//! the others.
//!
//! One more case stops the database under a loaded host: it runs a PostgreSQL server of its own
//! (`PgServer`), which needs PostgreSQL's server programs besides.
//!
//! Needs what the API tests need (see `common`): PostgreSQL, Redis, and the plugins built.
//! Waits are polls bounded by deadlines. The rollout time and the outage's latencies are measured and
//! printed, not asserted beyond generous bounds (timing belongs in docs/benchmarks.md).

#![allow(clippy::unwrap_used, reason = "an unwrap is an assertion here")]
#![allow(
    clippy::disallowed_macros,
    reason = "a test reports its measurements on stderr"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::{Value, json};
use sqlx::Connection;
use tokio_tungstenite::tungstenite::Message;

use crate::common::cluster::{
    ADMIN_TOKEN, DEADLINE, Host, PgServer, Shared, fixture, next, post, register, shout,
};

/// The probe version `host` serves now, by asking it (`whoami`); `None` if it serves no probe.
async fn probe_version(host: &Host, token: &str) -> Option<String> {
    let (status, body) = post(host, "/api/v1/actions/probe/whoami", token, &json!({})).await;
    match status {
        200 => Some(body["reply"]["version"].as_str().unwrap().to_owned()),
        404 => None,
        other => panic!("whoami: {other} {body}"),
    }
}

/// Polls until `host` serves `want`; returns how long that took from `since`.
async fn until_serving(host: &Host, token: &str, want: Option<&str>, since: Instant) -> Duration {
    loop {
        let serving = probe_version(host, token).await;
        if serving.as_deref() == want {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < DEADLINE,
            "{} never served probe {want:?}; still {serving:?}",
            host.base
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn admin(
    host: &Host,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, host.url(path)).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The probe's entry of `host`'s `GET /api/v1/admin/plugins` (`null` when it serves no probe).
async fn probe_status(host: &Host) -> Value {
    let (status, body) = admin(
        host,
        reqwest::Method::GET,
        "/api/v1/admin/plugins",
        Some(ADMIN_TOKEN),
        vec![],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body.as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "probe")
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_action_on_one_host_reaches_a_socket_on_another() {
    let shared = Shared::new("cluster").await;
    let a = Host::start(&shared).await;
    let b = Host::start(&shared).await;
    let (watcher_token, _, _) = register(&a).await;
    let (actor_token, actor_id, _) = register(&b).await;

    let url = format!("{}/ws?token={watcher_token}", a.base.replacen("http", "ws", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // A round trip, so the session's subscriptions are in place (and confirmed by Redis).
    socket.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
    assert_eq!(next(&mut socket).await["type"], "pong");

    let (status, body) = shout(&b.base, &actor_token, 11).await;
    assert_eq!(status, 200, "{body}");
    let event = next(&mut socket).await;
    assert_eq!(event["type"], "event", "{event}");
    assert_eq!(event["event"]["topic"], "shout_all");
    assert_eq!(event["event"]["player_id"], actor_id);
    assert_eq!(event["event"]["data"], 11);

    // The watcher's own action through host B: its player event reaches its socket on host A.
    let (status, _) = shout(&b.base, &watcher_token, 12).await;
    assert_eq!(status, 200);
    let mut topics = Vec::new();
    while topics.len() < 2 {
        let e = next(&mut socket).await;
        topics.push(e["event"]["topic"].as_str().unwrap().to_owned());
    }
    topics.sort();
    assert_eq!(topics, ["shout", "shout_all"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_rollbacks_and_unloads_reach_every_host() {
    let shared = Shared::new("cluster").await;
    let a = Host::start(&shared).await;
    let b = Host::start(&shared).await;
    let (token, _, _) = register(&a).await;
    assert_eq!(probe_version(&b, &token).await.as_deref(), Some("0.1.0"));

    // Upload 0.2.0 through A; B serves it (its bytes from the database) within the bound.
    let v2 = fixture("probe_v2.wasm");
    let started = Instant::now();
    let (status, body) = admin(
        &a,
        reqwest::Method::POST,
        "/api/v1/admin/plugins/probe",
        Some(ADMIN_TOKEN),
        v2,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], "0.2.0");
    assert_eq!(body["replaced_version"], "0.1.0");
    // The bound runs from the upload's acceptance (A validated, stored and announced it).
    let upload = started.elapsed();
    let accepted = Instant::now();
    let rollout = until_serving(&b, &token, Some("0.2.0"), accepted).await;
    eprintln!("upload on A took {upload:?} (compile, store); B served it {rollout:?} after A's answer");
    assert_eq!(probe_version(&a, &token).await.as_deref(), Some("0.2.0"));

    // A host started now takes the stored artifact over its plugin file.
    let c = Host::start(&shared).await;
    assert_eq!(probe_version(&c, &token).await.as_deref(), Some("0.2.0"));

    // Rollback through B this time: every host returns to 0.1.0.
    let started = Instant::now();
    let (status, body) = admin(
        &b,
        reqwest::Method::POST,
        "/api/v1/admin/plugins/probe/rollback",
        Some(ADMIN_TOKEN),
        vec![],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], "0.1.0");
    let on_a = until_serving(&a, &token, Some("0.1.0"), started).await;
    let on_c = until_serving(&c, &token, Some("0.1.0"), started).await;
    eprintln!("rollback through B reached A after {on_a:?}, C after {on_c:?}");
    // Nothing further back to roll to.
    let (status, body) = admin(
        &a,
        reqwest::Method::POST,
        "/api/v1/admin/plugins/probe/rollback",
        Some(ADMIN_TOKEN),
        vec![],
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("no_previous")),
        "{body}"
    );

    // Unload through A: nobody serves it.
    let (status, _) = admin(
        &a,
        reqwest::Method::DELETE,
        "/api/v1/admin/plugins/probe",
        Some(ADMIN_TOKEN),
        vec![],
    )
    .await;
    assert_eq!(status, 204);
    let started = Instant::now();
    until_serving(&b, &token, None, started).await;
    until_serving(&c, &token, None, started).await;
    assert_eq!(probe_version(&a, &token).await, None);
}

/// Store probe 0.2.0 through `host` without serving it; returns its digest.
async fn store_probe_v2(host: &Host) -> String {
    let (status, body) = admin(
        host,
        reqwest::Method::POST,
        "/api/v1/admin/plugins/probe?activate=false",
        Some(ADMIN_TOKEN),
        fixture("probe_v2.wasm"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], "0.1.0", "still serving 0.1.0: {body}");
    body["stored"]["sha256"].as_str().unwrap().to_owned()
}

/// `PUT /api/v1/admin/plugins/probe/{kind}` with the version `sha256` and `share` percent.
async fn set_companion(host: &Host, kind: &str, sha256: &str, share: f64) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .put(host.url(&format!("/api/v1/admin/plugins/probe/{kind}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"sha256": sha256, "share_percent": share}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `n` players written straight into the database, each with a token signed by the hosts' key:
/// registering a thousand through the API would spend minutes hashing passwords, and the canary
/// test is about which version serves each player, not about sign-up.
async fn players_in_database(database_url: &str, n: i64) -> Vec<(i64, String)> {
    let mut db = sqlx::PgConnection::connect(database_url).await.unwrap();
    let tag = format!("{:08x}", crate::common::random_u64() as u32);
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "with a as (
             insert into accounts (username, password_hash, created_ms)
             select 'cn' || $1 || '_' || g, 'not a hash: these accounts never log in', 0
             from generate_series(1, $2) g
             returning id
         )
         insert into players (account_id, name, created_ms)
         select id, '无名修士', 0 from a
         returning account_id, id",
    )
    .bind(&tag)
    .bind(n)
    .fetch_all(&mut db)
    .await
    .unwrap();
    let keys =
        cauldron_host::auth::TokenKeys::new(crate::common::TEST_SECRET.as_bytes(), Duration::from_secs(3600));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    rows.into_iter()
        .map(|(account_id, player_id)| {
            let claims = cauldron_host::auth::Claims {
                sub: account_id.to_string(),
                pid: player_id,
                role: "player".into(),
                jti: format!("{:016x}", crate::common::random_u64()),
                iat: now,
                exp: now + 3600,
            };
            (player_id, keys.sign(&claims).unwrap())
        })
        .collect()
}

/// The probe version `host` serves each player, by player id (16 requests at a time).
async fn versions_by_player(host: &Host, players: &[(i64, String)]) -> BTreeMap<i64, String> {
    use futures_util::StreamExt;
    futures_util::stream::iter(
        players
            .iter()
            .map(|(id, token)| async move { (*id, probe_version(host, token).await.unwrap()) }),
    )
    .buffer_unordered(16)
    .collect()
    .await
}

/// Polls `host`'s `/admin/plugins` until the probe's canary share is `want` (`None`: no canary).
async fn until_canary(host: &Host, want: Option<f64>) {
    let started = Instant::now();
    loop {
        let probe = probe_status(host).await;
        let share = probe["canary"]["share_percent"].as_f64();
        if share == want {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{} never showed the canary share {want:?}: {probe}",
            host.base
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_canary_serves_a_stable_share_of_players_on_every_host() {
    let shared = Shared::new("cluster").await;
    let a = Host::start(&shared).await;
    let b = Host::start(&shared).await;
    let players = players_in_database(&shared.database_url, 1_000).await;

    // Probe 0.2.0 as a 20 % canary, stored and started through A.
    let v2 = store_probe_v2(&a).await;
    let (status, body) = set_companion(&a, "canary", &v2, 20.0).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], "0.1.0", "{body}");
    assert_eq!(body["canary"]["version"], "0.2.0", "{body}");
    until_canary(&b, Some(20.0)).await;

    // Between 15 % and 25 % of the players get the canary, the same ones on both hosts and on a
    // second asking.
    let on_a = versions_by_player(&a, &players).await;
    let on_b = versions_by_player(&b, &players).await;
    assert_eq!(on_a, on_b, "both hosts serve each player the same version");
    assert_eq!(versions_by_player(&a, &players).await, on_a, "and again");
    let canary: BTreeSet<i64> = on_a
        .iter()
        .filter(|(_, v)| v.as_str() == "0.2.0")
        .map(|(id, _)| *id)
        .collect();
    assert!(
        (150..=250).contains(&canary.len()),
        "{} of 1000 players on the canary",
        canary.len()
    );
    assert!(on_a.values().all(|v| v == "0.1.0" || v == "0.2.0"));

    // Every action's log row records the version that served it.
    let mut db = sqlx::PgConnection::connect(&shared.database_url).await.unwrap();
    for (id, token) in players.iter().take(40) {
        let (status, body) = post(&b, "/api/v1/actions/probe/grant", token, &json!({"n": 1})).await;
        assert_eq!(status, 200, "{body}");
        let logged: String = sqlx::query_scalar(
            "select plugin_version from action_log where player_id = $1 and plugin = 'probe' order by id desc limit 1",
        )
        .bind(id)
        .fetch_one(&mut db)
        .await
        .unwrap();
        assert_eq!(logged, on_a[id], "player {id}");
    }

    // Widened to 50 % through B: everyone who had the canary keeps it.
    let (status, body) = set_companion(&b, "canary", &v2, 50.0).await;
    assert_eq!(status, 200, "{body}");
    until_canary(&a, Some(50.0)).await;
    let wider = versions_by_player(&a, &players).await;
    assert_eq!(versions_by_player(&b, &players).await, wider);
    assert!(canary.iter().all(|id| wider[id] == "0.2.0"));
    let wide = wider.values().filter(|v| v.as_str() == "0.2.0").count();
    assert!((420..=580).contains(&wide), "{wide} of 1000 at 50 %");

    // A host started now takes the canary from the database.
    let c = Host::start(&shared).await;
    assert_eq!(versions_by_player(&c, &players).await, wider);

    // Rolled back through A: every player is served 0.1.0 again, on every host.
    let (status, body) = admin(
        &a,
        reqwest::Method::DELETE,
        "/api/v1/admin/plugins/probe/canary",
        Some(ADMIN_TOKEN),
        vec![],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["canary"].is_null(), "{body}");
    until_canary(&b, None).await;
    until_canary(&c, None).await;
    for host in [&a, &b, &c] {
        let back = versions_by_player(host, &players).await;
        assert!(back.values().all(|v| v == "0.1.0"), "{}", host.base);
    }
    // Nothing left to roll back.
    let (status, body) = admin(
        &b,
        reqwest::Method::DELETE,
        "/api/v1/admin/plugins/probe/canary",
        Some(ADMIN_TOKEN),
        vec![],
    )
    .await;
    assert_eq!((status, body["error"]["code"].clone()), (404, json!("no_canary")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_promoted_canary_serves_everyone_and_rolls_back_like_an_upload() {
    let shared = Shared::new("cluster").await;
    let a = Host::start(&shared).await;
    let b = Host::start(&shared).await;
    let (token, _, _) = register(&a).await;
    let v2 = store_probe_v2(&a).await;
    let (status, body) = set_companion(&a, "canary", &v2, 0.0).await;
    assert_eq!(status, 200, "{body}");
    until_canary(&b, Some(0.0)).await;
    // A 0 % canary serves nobody.
    assert_eq!(probe_version(&b, &token).await.as_deref(), Some("0.1.0"));

    let (status, body) = admin(
        &b,
        reqwest::Method::POST,
        "/api/v1/admin/plugins/probe/canary/promote",
        Some(ADMIN_TOKEN),
        vec![],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], "0.2.0");
    assert!(body["canary"].is_null(), "{body}");
    let started = Instant::now();
    until_serving(&a, &token, Some("0.2.0"), started).await;
    until_canary(&a, None).await;

    // The version it replaced is the rollback target.
    let (status, body) = admin(
        &a,
        reqwest::Method::POST,
        "/api/v1/admin/plugins/probe/rollback",
        Some(ADMIN_TOKEN),
        vec![],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], "0.1.0");
    until_serving(&b, &token, Some("0.1.0"), Instant::now()).await;

    // Bad shares, digests and a missing canary are clean 4xx answers.
    for (sha, share) in [(v2.as_str(), 101.0), (v2.as_str(), -1.0), ("beef", 10.0)] {
        let (status, body) = set_companion(&a, "canary", sha, share).await;
        assert_eq!(status, 400, "{sha} {share}: {body}");
    }
    let (status, body) = set_companion(&a, "canary", &"0".repeat(64), 10.0).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("no_artifact")),
        "{body}"
    );
    let (status, body) = admin(
        &a,
        reqwest::Method::POST,
        "/api/v1/admin/plugins/probe/canary/promote",
        Some(ADMIN_TOKEN),
        vec![],
    )
    .await;
    assert_eq!((status, body["error"]["code"].clone()), (404, json!("no_canary")));
}

/// The shadow runs `host` counted for probe `version`: (identical, diverged, faulted).
async fn shadow_runs(host: &Host, version: &str) -> (u64, u64, u64) {
    let probe = probe_status(host).await;
    let runs = &probe["shadow_runs"][version];
    let n = |k: &str| runs[k].as_u64().unwrap_or(0);
    (n("identical"), n("diverged"), n("faulted"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shadow_on_two_hosts_counts_divergences_and_applies_nothing() {
    let shared = Shared::new("cluster").await;
    let a = Host::start(&shared).await;
    let b = Host::start(&shared).await;
    let (token, player, _) = register(&a).await;

    // Store probe 0.2.0 without serving it, then attach it through A as the shadow of every live
    // call.
    let v2 = store_probe_v2(&a).await;
    let (status, body) = set_companion(&a, "shadow", &v2, 100.0).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["shadow"]["version"], "0.2.0", "{body}");
    assert_eq!(body["version"], "0.1.0", "{body}");
    // B learns of it over the bus.
    let started = Instant::now();
    loop {
        let probe = probe_status(&b).await;
        if probe["shadow"]["version"] == "0.2.0" {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "B never attached the shadow: {probe}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut db = sqlx::PgConnection::connect(&shared.database_url).await.unwrap();
    let log_rows = "select count(*) from action_log where player_id = $1 and plugin = 'probe'";
    let logged_before: i64 = sqlx::query_scalar(log_rows)
        .bind(player)
        .fetch_one(&mut db)
        .await
        .unwrap();

    // On each host: 5 `whoami` (0.2.0 answers another version: diverged) and 5 `grant` of one gem
    // (the same answer: identical). The players are served 0.1.0 throughout.
    for host in [&a, &b] {
        for _ in 0..5 {
            assert_eq!(probe_version(host, &token).await.as_deref(), Some("0.1.0"));
            let (status, body) = post(host, "/api/v1/actions/probe/grant", &token, &json!({"n": 1})).await;
            assert_eq!(status, 200, "{body}");
        }
    }
    for host in [&a, &b] {
        let started = Instant::now();
        loop {
            let (identical, diverged, faulted) = shadow_runs(host, "0.2.0").await;
            if identical + diverged + faulted >= 10 {
                assert_eq!((identical, diverged, faulted), (5, 5, 0), "{}", host.base);
                break;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "{} ran {} shadow calls",
                host.base,
                identical + diverged + faulted
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let metrics = reqwest::get(host.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("cauldron_shadow_calls_total")
                    && l.contains("plugin=\"probe\"")
                    && l.contains("version=\"0.2.0\"")
                    && l.contains("result=\"diverged\"")),
            "no shadow divergence counted in /metrics of {}",
            host.base
        );
    }
    // Nothing of the shadow was applied: ten gems from ten grants, and one log row per live call.
    let gems: i64 = sqlx::query_scalar("select qty from items where player_id = $1 and item = 'gem'")
        .bind(player)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(gems, 10);
    let logged: i64 = sqlx::query_scalar(log_rows)
        .bind(player)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(logged - logged_before, 20);

    // Detached through B: no more shadow runs anywhere.
    let (status, body) = admin(
        &b,
        reqwest::Method::DELETE,
        "/api/v1/admin/plugins/probe/shadow",
        Some(ADMIN_TOKEN),
        vec![],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["shadow"].is_null(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admin_api_needs_an_administrator_and_refuses_bad_modules() {
    let shared = Shared::new("cluster").await;
    let a = Host::start(&shared).await;
    let b = Host::start(&shared).await;
    let (player_token, _, username) = register(&a).await;
    let get = reqwest::Method::GET;

    let (status, body) = admin(&a, get.clone(), "/api/v1/admin/plugins", None, vec![]).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("unauthorized"))
    );
    let (status, _) = admin(
        &a,
        get.clone(),
        "/api/v1/admin/plugins",
        Some("not-the-admin-token"),
        vec![],
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = admin(
        &a,
        get.clone(),
        "/api/v1/admin/plugins",
        Some(&player_token),
        vec![],
    )
    .await;
    assert_eq!((status, body["error"]["code"].clone()), (403, json!("forbidden")));
    for (method, path) in [
        (reqwest::Method::POST, "/api/v1/admin/plugins/probe"),
        (reqwest::Method::POST, "/api/v1/admin/plugins/probe/rollback"),
        (reqwest::Method::DELETE, "/api/v1/admin/plugins/probe"),
    ] {
        let (status, _) = admin(&a, method.clone(), path, Some(&player_token), b"x".to_vec()).await;
        assert_eq!(status, 403, "{method} {path}");
        let (status, _) = admin(&a, method.clone(), path, None, b"x".to_vec()).await;
        assert_eq!(status, 401, "{method} {path}");
    }

    // An account with the admin role is an administrator (after logging in again: the role is in
    // the token).
    let mut db = sqlx::PgConnection::connect(&shared.database_url).await.unwrap();
    sqlx::query("update accounts set role = 'admin' where username = $1")
        .bind(&username)
        .execute(&mut db)
        .await
        .unwrap();
    let login: Value = reqwest::Client::new()
        .post(a.url("/api/v1/auth/login"))
        .json(&json!({"username": username, "password": "hunter2hunter2"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin_account = login["token"].as_str().unwrap().to_owned();
    let (status, body) = admin(
        &a,
        get.clone(),
        "/api/v1/admin/plugins",
        Some(&admin_account),
        vec![],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let probe = body
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "probe")
        .unwrap()
        .clone();
    assert_eq!(probe["version"], "0.1.0");
    assert_eq!(probe["sha256"].as_str().unwrap().len(), 64);
    assert!(probe["loaded_at_ms"].is_i64());

    // A broken module, and a module uploaded under another plugin's name: refused, recorded, and
    // the serving version keeps serving on both hosts.
    for (name, bytes) in [
        ("probe", b"\0asm but not really".to_vec()),
        ("pet", fixture("probe_v2.wasm")),
    ] {
        let path = format!("/api/v1/admin/plugins/{name}");
        let (status, body) = admin(&a, reqwest::Method::POST, &path, Some(ADMIN_TOKEN), bytes).await;
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (422, json!("plugin_refused")),
            "{body}"
        );
    }
    let (_, body) = admin(&a, get, "/api/v1/admin/plugins", Some(ADMIN_TOKEN), vec![]).await;
    let probe = body
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "probe")
        .unwrap()
        .clone();
    assert!(probe["last_error"].is_string(), "{probe}");
    assert_eq!(probe["version"], "0.1.0");
    assert_eq!(probe_version(&a, &player_token).await.as_deref(), Some("0.1.0"));
    assert_eq!(probe_version(&b, &player_token).await.as_deref(), Some("0.1.0"));
    let (status, body) = admin(
        &a,
        reqwest::Method::POST,
        "/api/v1/admin/plugins/Bad.Name",
        Some(ADMIN_TOKEN),
        b"x".to_vec(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("bad_plugin_name"))
    );
}

/// One request of the outage case's load.
struct Sample {
    /// Which client (and so which player) sent it.
    client: usize,
    /// Its Idempotency-Key.
    key: String,
    sent: Instant,
    took: Duration,
    /// The HTTP status, or 0 if no answer came.
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Sample {
    fn answered(&self) -> Instant {
        self.sent + self.took
    }
}

/// `probe/grant` (one gem) with an Idempotency-Key, as the player of `token`.
async fn grant(http: &reqwest::Client, base: &str, token: &str, client: usize, key: String) -> Sample {
    let sent = Instant::now();
    let result = http
        .post(format!("{base}/api/v1/actions/probe/grant"))
        .bearer_auth(token)
        .header("idempotency-key", &key)
        .json(&json!({"n": 1}))
        .send()
        .await;
    let (status, retry_after, body) = match result {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap_or_default().to_owned());
            let text = resp.text().await.unwrap_or_default();
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            (status, retry_after, body)
        }
        Err(e) => (0, None, Value::String(e.to_string())),
    };
    Sample {
        client,
        key,
        sent,
        took: sent.elapsed(),
        status,
        retry_after,
        body,
    }
}

/// One client of the load: a grant after another with a fresh key each, until `stop`.
async fn keep_granting(
    base: String,
    token: String,
    client: usize,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let sample = grant(&http, &base, &token, client, format!("outage-{client}-{n}")).await;
        samples.lock().unwrap().push(sample);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `p`-quantile of sorted `d` (nearest rank).
fn quantile(d: &[Duration], p: f64) -> Duration {
    let rank = ((d.len() as f64 * p).ceil() as usize).clamp(1, d.len());
    d[rank - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_fails_requests_fast_and_the_host_recovers_by_itself() {
    const CLIENTS: usize = 4;
    let pg = tokio::task::spawn_blocking(PgServer::start).await.unwrap();
    let pg = Arc::new(pg);
    let shared = Shared::on_database("outage", pg.url());
    let host = Host::start_with(
        &shared,
        &[
            ("RATE_LIMIT_LOGIN_BURST", "100"),
            ("RATE_LIMIT_ACTION_PER_SEC", "1000"),
        ],
    )
    .await;
    let mut tokens = Vec::new();
    let mut players = Vec::new();
    for _ in 0..=CLIENTS {
        let (token, player_id, _) = register(&host).await;
        tokens.push(token);
        players.push(player_id);
    }
    // The last player acts over a WebSocket.
    let url = format!(
        "{}/ws?token={}",
        host.base.replacen("http", "ws", 1),
        tokens[CLIENTS]
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let ws_action = json!({
        "type": "action", "id": 1, "plugin": "probe", "action": "grant",
        "params": {"n": 1}, "idempotency_key": "outage-ws-1",
    })
    .to_string();

    // Steady load, then PostgreSQL stops for about six seconds and starts again.
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(keep_granting(
                host.base.clone(),
                tokens[i].clone(),
                i,
                Arc::clone(&stop),
                Arc::clone(&samples),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopping = Instant::now();
    let server = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || server.stop()).await.unwrap();
    let down = Instant::now();

    // A WebSocket action meanwhile gets the same error as HTTP, in an `action_result`.
    socket.send(Message::text(ws_action.clone())).await.unwrap();
    let result = next(&mut socket).await;
    assert_eq!(result["type"], "action_result", "{result}");
    assert_eq!(result["status"], 503, "{result}");
    assert_eq!(result["error"]["code"], "unavailable", "{result}");
    assert!(down.elapsed() < Duration::from_secs(5), "{:?}", down.elapsed());

    tokio::time::sleep_until((down + Duration::from_secs(6)).into()).await;
    let server = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || server.start_again(false))
        .await
        .unwrap();
    // Back: the moment it accepts a connection (polled from here, not through the host).
    let deadline = Instant::now() + Duration::from_secs(60);
    let back = loop {
        if let Ok(conn) = sqlx::PgConnection::connect(&pg.url()).await {
            let back = Instant::now();
            conn.close().await.unwrap();
            break back;
        }
        assert!(Instant::now() < deadline, "PostgreSQL did not come back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    // Without a restart, every client's actions succeed again.
    let deadline = back + Duration::from_secs(30);
    loop {
        let recovered: BTreeSet<usize> = samples
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.sent >= back && s.status == 200)
            .map(|s| s.client)
            .collect();
        if recovered.len() == CLIENTS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only clients {recovered:?} succeed again after PostgreSQL came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let samples = std::mem::take(&mut *samples.lock().unwrap());

    // Every request was answered within the bound; every failure was a 503 in the error format,
    // with Retry-After. The outage was seen.
    for s in &samples {
        assert!(
            s.took < Duration::from_secs(5),
            "{} took {:?} ({} {})",
            s.key,
            s.took,
            s.status,
            s.body
        );
        if s.status != 200 {
            assert_eq!(s.status, 503, "{}: {}", s.key, s.body);
            assert_eq!(s.body["error"]["code"], "unavailable", "{}: {}", s.key, s.body);
            assert!(s.body["error"]["message"].is_string(), "{}: {}", s.key, s.body);
            let retry_after: u64 = s.retry_after.as_deref().expect("Retry-After").parse().unwrap();
            assert!(retry_after >= 1);
        }
    }
    let failed: Vec<&Sample> = samples.iter().filter(|s| s.status != 200).collect();
    assert!(!failed.is_empty(), "no request saw the outage");

    // The figures (not asserted): how fast the 503s came, how soon after PostgreSQL was back the
    // host served again.
    let mut unavailable: Vec<Duration> = failed.iter().map(|s| s.took).collect();
    unavailable.sort();
    let first_ok = samples
        .iter()
        .filter(|s| s.status == 200 && s.answered() >= back)
        .map(|s| s.answered() - back)
        .min()
        .unwrap();
    let last_failed = failed.iter().map(|s| s.answered()).max().unwrap();
    eprintln!(
        "outage: {} requests, {} answered 503 (p50 {:?}, max {:?}); PostgreSQL stopped in {:?}, down \
         {:?}; first 2xx {:?} after it was back; last 503 {:?} after it was back",
        samples.len(),
        failed.len(),
        quantile(&unavailable, 0.5),
        unavailable.last().unwrap(),
        down - stopping,
        back - down,
        first_ok,
        last_failed.saturating_duration_since(back),
    );

    // Nothing lost or doubled. Every failed request, sent again with its key, is applied now or
    // answered from the log (it may have committed before its connection was cut).
    let http = reqwest::Client::new();
    let mut keys: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for s in &samples {
        keys.entry(players[s.client]).or_default().insert(s.key.clone());
    }
    for s in &failed {
        let retry = grant(&http, &host.base, &tokens[s.client], s.client, s.key.clone()).await;
        assert_eq!(retry.status, 200, "{}: {}", retry.key, retry.body);
    }
    socket.send(Message::text(ws_action)).await.unwrap();
    let result = next(&mut socket).await;
    assert_eq!(result["status"], 200, "{result}");
    keys.entry(players[CLIENTS])
        .or_default()
        .insert("outage-ws-1".to_owned());
    let mut db = sqlx::PgConnection::connect(&pg.url()).await.unwrap();
    for (&player_id, sent) in &keys {
        // Each key logged exactly once, and no grant without one of them.
        let logged: Vec<(String, i64)> = sqlx::query_as(
            "select idempotency_key, count(*) from action_log
             where player_id = $1 and plugin = 'probe' and action = 'grant'
             group by idempotency_key",
        )
        .bind(player_id)
        .fetch_all(&mut db)
        .await
        .unwrap();
        assert!(logged.iter().all(|(_, n)| *n == 1), "{logged:?}");
        let logged: BTreeSet<String> = logged.into_iter().map(|(key, _)| key).collect();
        assert_eq!(&logged, sent, "player {player_id}");
        // And the state holds exactly one gem for each.
        let gems: i64 = sqlx::query_scalar(
            "select coalesce(sum(qty), 0)::bigint from items where player_id = $1 and item = 'gem'",
        )
        .bind(player_id)
        .fetch_one(&mut db)
        .await
        .unwrap();
        assert_eq!(gems, i64::try_from(sent.len()).unwrap(), "player {player_id}");
    }
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_started_before_its_database_waits_for_it() {
    let pg = Arc::new(tokio::task::spawn_blocking(PgServer::start).await.unwrap());
    let server = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || server.stop()).await.unwrap();
    let shared = Shared::on_database("startwait", pg.url());
    // The database comes up a few seconds after the host starts waiting for it.
    let server = Arc::clone(&pg);
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        tokio::task::spawn_blocking(move || server.start_again(true))
            .await
            .unwrap();
    });
    let host = Host::start(&shared).await;
    later.await.unwrap();
    let (token, _, _) = register(&host).await;
    let (status, body) = post(&host, "/api/v1/actions/probe/grant", &token, &json!({"n": 1})).await;
    assert_eq!(status, 200, "{body}");
}

/// `GET /api/v1/auth/me` at `host` with `token`: the status.
async fn me_status(host: &Host, token: &str) -> u16 {
    reqwest::Client::new()
        .get(host.url("/api/v1/auth/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_logout_on_one_host_revokes_the_token_on_every_host() {
    let shared = Shared::new("cluster").await;
    let a = Host::start(&shared).await;
    let b = Host::start(&shared).await;
    let (token, _, username) = register(&a).await;
    // A second token of the same account, which the logout must leave alone.
    let resp = reqwest::Client::new()
        .post(b.url("/api/v1/auth/login"))
        .json(&json!({"username": username, "password": "hunter2hunter2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let other: Value = resp.json().await.unwrap();
    let other = other["token"].as_str().unwrap().to_owned();
    assert_eq!(me_status(&b, &token).await, 200);

    let resp = reqwest::Client::new()
        .post(a.url("/api/v1/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let logged_out = Instant::now();
    // The host that revoked it refuses it from the next request on.
    assert_eq!(me_status(&a, &token).await, 401);

    loop {
        let status = me_status(&b, &token).await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            logged_out.elapsed() < DEADLINE,
            "host B still accepts the revoked token after {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("revocation reached host B in {:?}", logged_out.elapsed());
    assert_eq!(me_status(&a, &other).await, 200);
    assert_eq!(me_status(&b, &other).await, 200);
}
