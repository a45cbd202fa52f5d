//! The HTTP API end to end: the real app on an ephemeral port with the real plugins (and the probe
//! fixture), every case run twice by `both_backends!`: PostgreSQL + Redis, and SQLite + in-process
//! services. No mocks; nothing waits on wall-clock time except the cases about timeouts, which wait
//! a second or two for the host's own bounds.

#![allow(clippy::unwrap_used, reason = "an unwrap is an assertion here")]

use std::time::{Duration, Instant};

use crate::common::{Backend, TEST_SECRET, TestApp, json_of, without_read_time};
use cauldron_host::auth::{Claims, TokenKeys};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

// ---- helpers -----------------------------------------------------------------------------------

/// A registered player: their token and ids.
struct User {
    token: String,
    account_id: i64,
    player_id: i64,
    username: String,
}

fn unique_username(tag: &str) -> String {
    format!("{tag}_{:08x}", crate::common::random_u64() as u32)
}

#[track_caller]
fn assert_error(actual: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(actual.0, status, "body: {}", actual.1);
    assert_eq!(actual.1["error"]["code"], code, "body: {}", actual.1);
    assert!(actual.1["error"]["message"].is_string(), "body: {}", actual.1);
}

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let mut req = app.http.post(app.url(path)).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    json_of(req.send().await.unwrap()).await
}

async fn get(app: &TestApp, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = app.http.get(app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let (status, body) = json_of(req.send().await.unwrap()).await;
    if path == "/api/v1/player" && status == StatusCode::OK {
        return (status, without_read_time(body));
    }
    (status, body)
}

async fn register(app: &TestApp, tag: &str) -> User {
    let username = unique_username(tag);
    let (status, body) = post(
        app,
        "/api/v1/auth/register",
        None,
        &json!({"username": username, "password": "hunter2hunter2"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    User {
        token: body["token"].as_str().unwrap().to_owned(),
        account_id: body["account"]["id"].as_i64().unwrap(),
        player_id: body["player"]["id"].as_i64().unwrap(),
        username,
    }
}

async fn act(app: &TestApp, user: &User, plugin: &str, action: &str, params: &Value) -> (StatusCode, Value) {
    post(
        app,
        &format!("/api/v1/actions/{plugin}/{action}"),
        Some(&user.token),
        params,
    )
    .await
}

async fn full_state(app: &TestApp, user: &User) -> Value {
    let (status, body) = get(app, "/api/v1/player", Some(&user.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// A write lock on the app's database held from a connection of its own, as another process would
/// hold it: on PostgreSQL the player's row (which every action of the player updates first), on
/// SQLite the database's write lock (`BEGIN IMMEDIATE`).
enum WriteLock {
    Pg(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl WriteLock {
    async fn hold(app: &TestApp, player_id: i64) -> Self {
        match app.backend {
            Backend::PgRedis => {
                let mut conn = sqlx::PgConnection::connect(&app.database_url).await.unwrap();
                sqlx::query("begin").execute(&mut conn).await.unwrap();
                sqlx::query("select id from players where id = $1 for update")
                    .bind(player_id)
                    .execute(&mut conn)
                    .await
                    .unwrap();
                Self::Pg(conn)
            }
            Backend::SqliteLocal => {
                let mut conn = sqlx::SqliteConnection::connect(&app.database_url).await.unwrap();
                sqlx::query("begin immediate").execute(&mut conn).await.unwrap();
                Self::Sqlite(conn)
            }
        }
    }

    async fn release(self) {
        match self {
            Self::Pg(mut conn) => {
                sqlx::query("rollback").execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            Self::Sqlite(mut conn) => {
                sqlx::query("rollback").execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }
}

/// `probe/grant` (one gem) with an `Idempotency-Key`: the status, the `Retry-After` header if any,
/// the body.
async fn grant(app: &TestApp, user: &User, key: &str) -> (StatusCode, Option<String>, Value) {
    let resp = app
        .http
        .post(app.url("/api/v1/actions/probe/grant"))
        .bearer_auth(&user.token)
        .header("idempotency-key", key)
        .json(&json!({"n": 1}))
        .send()
        .await
        .unwrap();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = json_of(resp).await;
    (status, retry_after, body)
}

both_backends!(
    crate::common::TestApp::start;
    register_login_me_logout,
    a_revocation_the_bus_missed_is_refused_after_a_reload,
    bad_tokens_are_401,
    malformed_oversized_and_unknown_requests,
    actions_apply_reject_and_fault,
    idempotency_key_applies_once,
    player_state_and_stats,
    catalog_leaderboards_online,
    health_metrics_and_openapi,
    login_rate_limit_is_429_with_retry_after,
    registration_and_login_are_limited_per_client_address,
    action_rate_limit_is_429_with_retry_after,
    graceful_shutdown_stops_serving,
    web_client_is_served_with_fallback,
    slow_requests_time_out_in_the_error_format,
    deep_documents_are_refused_and_the_player_keeps_playing,
    nul_text_is_a_client_error_that_logs_nothing_at_error,
    idempotency_key_reused_for_another_request_is_422,
    host_failures_are_503_and_not_plugin_faults,
    query_actions_answer_without_writing,
    modifiers_hooks_are_called_once_per_state,
    display_names_follow_the_rules_and_cost_stones_after_the_first,
    a_race_for_one_name_has_exactly_one_winner,
    boards_show_display_names_and_never_login_names,
    board_rows_say_what_they_are_about,
    extractor_rejections_are_json_errors,
    openapi_states_constraints_and_links,
    stored_plugin_versions_serve_after_a_restart,
    game_time_is_the_clock_the_test_moves,
    another_players_view_is_public_only_and_effects_stay_with_the_actor,
    reading_a_player_needs_the_declaration_and_a_real_player,
    players_around_me_are_paged_nearest_first_and_named_only,
);

/// An app whose duel content lets new characters duel at once (level 1, no spirit cost).
async fn easy_duel_app(backend: Backend) -> TestApp {
    TestApp::start_prepared(backend, &[], easy_duels).await
}

mod easy_duels {
    both_backends!(crate::api::easy_duel_app; two_players_duel_and_only_the_challenger_changes);
    use super::two_players_duel_and_only_the_challenger_changes;
}

/// `POST /api/v1/player/name`.
async fn rename(app: &TestApp, user: &User, name: &str) -> (StatusCode, Value) {
    post(
        app,
        "/api/v1/player/name",
        Some(&user.token),
        &json!({"name": name}),
    )
    .await
}

/// A display name no other test uses: `tag` and five hex digits (at most 6 characters).
fn unique_name(tag: &str) -> String {
    format!("{tag}{:05x}", crate::common::random_u64() as u32 & 0xf_ffff)
}

/// Renames `user` to a fresh name starting with `tag` (one character) and returns it.
async fn rename_to_unique(app: &TestApp, user: &User, tag: &str) -> String {
    let name = unique_name(tag);
    let (status, body) = rename(app, user, &name).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    name
}

/// The default name of every new character.
const NAMELESS: &str = "无名修士";

// ---- cases -------------------------------------------------------------------------------------

/// The test kit builds its host with `state::build_with`, the function `main` runs: a plugin version
/// stored and active in the database (as an upload leaves it) serves after a restart, over the file
/// of the same name.
async fn stored_plugin_versions_serve_after_a_restart(mut first: TestApp) {
    assert_eq!(first.stored_artifacts, 0, "a fresh database has no stored plugin");
    let v2 = cauldron_runtime::Bundle {
        wasm: crate::common::cluster::fixture("probe_v2.wasm"),
        content: Default::default(),
    };
    let store = &first.state.store;
    let stored = store
        .put_artifact("probe", "0.2.0", &v2.wasm_sha256(), &v2.encode())
        .await
        .unwrap();
    assert_eq!(stored.sha256, v2.digest());
    store.activate_artifact("probe", &stored.sha256).await.unwrap();
    first.stop().await;

    let database_url = first.database_url.clone();
    let restarted = TestApp::start_with(first.backend, &[("DATABASE_URL", &database_url)]).await;
    assert_eq!(restarted.stored_artifacts, 1);
    let (status, catalog) = get(&restarted, "/api/v1/catalog", None).await;
    assert_eq!(status, StatusCode::OK, "{catalog}");
    let probe = catalog
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["manifest"]["name"] == "probe")
        .unwrap_or_else(|| panic!("probe is not in the catalog: {catalog}"));
    assert_eq!(probe["version"], "0.2.0", "{probe}");
    assert_eq!(probe["sha256"], stored.sha256.as_str(), "{probe}");
}

/// Game time comes from the host's clock: moving it forward an hour is seen by the plugins at once
/// (cultivation pays the spirit of an hour of meditation), with no waiting.
async fn game_time_is_the_clock_the_test_moves(app: TestApp) {
    let user = register(&app, "clock").await;
    let gather = async || {
        let (status, body) = post(
            &app,
            "/api/v1/actions/cultivation/gather",
            Some(&user.token),
            &json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["reply"]["spirit"].as_i64().unwrap()
    };
    let before = gather().await;
    app.clock.advance(Duration::from_secs(3600));
    let after = gather().await;
    // A new character earns at least 1 spirit a second (cultivation's README).
    assert!(
        after - before >= 3600,
        "{before} → {after} after an hour of game time"
    );
}

async fn display_names_follow_the_rules_and_cost_stones_after_the_first(app: TestApp) {
    let user = register(&app, "rename").await;
    let state = full_state(&app, &user).await;
    assert_eq!(state["player"]["name"], NAMELESS, "a new character is nameless");
    let (_, me) = get(&app, "/api/v1/auth/me", Some(&user.token)).await;
    assert_eq!(me["player"]["name"], NAMELESS, "{me}");

    // The rules: 1 to 6 characters, no spaces, not the default name; nothing is charged.
    for bad in ["", "七个字的名字啊", "a b", "\tab", "a\u{85}b"] {
        assert_error(
            &rename(&app, &user, bad).await,
            StatusCode::BAD_REQUEST,
            "bad_name",
        );
    }
    assert_error(
        &rename(&app, &user, NAMELESS).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reserved_name",
    );
    assert_error(
        &post(
            &app,
            "/api/v1/player/name",
            Some(&user.token),
            &json!({"nom": "x"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "bad_json",
    );
    assert_error(
        &post(&app, "/api/v1/player/name", None, &json!({"name": "x"})).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    // The first change is free, even with no stones at all.
    let stones = |s: &Value| s["currencies"]["spirit_stones"].as_i64().unwrap_or(0);
    assert_eq!(stones(&full_state(&app, &user).await), 0);
    let first = unique_name("甲");
    let (status, body) = rename(&app, &user, &first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], first.as_str());
    assert_eq!(
        (body["cost"].as_i64(), body["name_changes"].as_i64()),
        (Some(0), Some(1))
    );
    let state = full_state(&app, &user).await;
    assert_eq!(state["player"]["name"], first.as_str());
    assert_eq!(state["player"]["version"], body["player_version"]);

    // Later changes cost 100 spirit stones: refused without them, nothing changed.
    assert_error(
        &rename(&app, &user, &unique_name("乙")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient",
    );
    assert_eq!(full_state(&app, &user).await["player"]["name"], first.as_str());
    // Keeping the same name is refused too, and costs nothing.
    assert_error(
        &rename(&app, &user, &first).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "same_name",
    );

    // The day's check-in pays stones; the second change takes 100 of them.
    let (status, body) = act(&app, &user, "cultivation", "checkin", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = stones(&full_state(&app, &user).await);
    assert!(before >= 200, "check-in paid {before}");
    let second = unique_name("乙");
    let (status, body) = rename(&app, &user, &second).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["cost"].as_i64(), body["name_changes"].as_i64()),
        (Some(100), Some(2))
    );
    let state = full_state(&app, &user).await;
    assert_eq!(state["player"]["name"], second.as_str());
    assert_eq!(stones(&state), before - 100);

    // A name another player holds is refused without a charge; the freed old name can be taken.
    let other = register(&app, "rename2").await;
    assert_error(
        &rename(&app, &other, &second).await,
        StatusCode::CONFLICT,
        "name_taken",
    );
    let (status, body) = rename(&app, &other, &first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cost"], 0);
    assert_eq!(stones(&full_state(&app, &user).await), before - 100);
}

async fn a_race_for_one_name_has_exactly_one_winner(app: TestApp) {
    let a = register(&app, "race_a").await;
    let b = register(&app, "race_b").await;
    for _ in 0..5 {
        let name = unique_name("争");
        let (ra, rb) = tokio::join!(rename(&app, &a, &name), rename(&app, &b, &name));
        let statuses = [ra.0, rb.0];
        let wins = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(wins, 1, "exactly one winner: {ra:?} {rb:?}");
        let loser = if ra.0 == StatusCode::OK { &rb } else { &ra };
        assert_error(loser, StatusCode::CONFLICT, "name_taken");
        let names = [
            full_state(&app, &a).await["player"]["name"].clone(),
            full_state(&app, &b).await["player"]["name"].clone(),
        ];
        assert_eq!(
            names.iter().filter(|n| **n == name.as_str()).count(),
            1,
            "{names:?}"
        );
        // Give both stones for the next round's paid changes.
        for u in [&a, &b] {
            act(&app, u, "cultivation", "checkin", &json!({})).await;
        }
    }
}

async fn boards_show_display_names_and_never_login_names(app: TestApp) {
    let named = register(&app, "shown").await;
    let nameless = register(&app, "hidden").await;
    // Both have a realm score from `start`; only the named one is listed.
    let name = rename_to_unique(&app, &named, "名").await;
    let (status, body) = act(&app, &named, "cultivation", "checkin", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for board in ["realm", "spirit_stones"] {
        let (status, rows) = get(&app, &format!("/api/v1/leaderboards/{board}?limit=100"), None).await;
        assert_eq!(status, StatusCode::OK, "{rows}");
        let entries = rows["entries"].as_array().unwrap();
        let row = entries
            .iter()
            .find(|r| r["player_id"] == named.player_id)
            .unwrap_or_else(|| panic!("{board}: named player missing: {rows}"));
        assert_eq!(row["name"], name.as_str(), "{board}");
        assert!(
            entries
                .iter()
                .all(|r| r["player_id"] != nameless.player_id && r["name"] != NAMELESS),
            "{board}: the nameless are left off: {rows}"
        );
        let text = rows.to_string();
        assert!(
            !text.contains(&named.username),
            "{board} shows a login name: {text}"
        );
        assert!(
            !text.contains(&nameless.username),
            "{board} shows a login name: {text}"
        );
        if board == "spirit_stones" {
            let stones = full_state(&app, &named).await["currencies"]["spirit_stones"].as_f64();
            assert_eq!(row["score"].as_f64(), stones);
        }
    }
}

/// A response's status, `Content-Type` and JSON body.
async fn typed_json_of(resp: reqwest::Response) -> (StatusCode, String, Value) {
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let (status, body) = json_of(resp).await;
    (status, content_type, body)
}

/// `resp` is `status` in the JSON error format with `code`.
#[track_caller]
fn assert_json_error(actual: &(StatusCode, String, Value), status: StatusCode, code: &str) {
    assert_eq!(actual.1, "application/json", "{} {}", actual.0, actual.2);
    assert_error(&(actual.0, actual.2.clone()), status, code);
}

async fn extractor_rejections_are_json_errors(app: TestApp) {
    let user = register(&app, "reject").await;
    let send = |req: reqwest::RequestBuilder| async move { typed_json_of(req.send().await.unwrap()).await };

    // Query values that do not parse, or break a documented range.
    for (query, code) in [
        ("limit=-1", "bad_query"),
        ("limit=abc", "bad_query"),
        ("limit=1.5", "bad_query"),
        ("limit=99999999999", "bad_query"),
        ("limit=0", "bad_limit"),
        ("limit=101", "bad_limit"),
    ] {
        let r = send(
            app.http
                .get(app.url(&format!("/api/v1/leaderboards/realm?{query}"))),
        )
        .await;
        assert_json_error(&r, StatusCode::BAD_REQUEST, code);
    }
    // Path segments that are not UTF-8 once decoded, or break the board's rule.
    let r = send(app.http.get(app.url("/api/v1/leaderboards/%FF%FE"))).await;
    assert_json_error(&r, StatusCode::BAD_REQUEST, "bad_path");
    let r = send(app.http.get(app.url("/api/v1/leaderboards/a%01b"))).await;
    assert_json_error(&r, StatusCode::BAD_REQUEST, "bad_board");
    let r = send(
        app.http
            .get(app.url(&format!("/api/v1/leaderboards/{}", "x".repeat(129)))),
    )
    .await;
    assert_json_error(&r, StatusCode::BAD_REQUEST, "bad_board");
    // 128 characters is within the rule even when they take more bytes.
    let r = send(
        app.http
            .get(app.url(&format!("/api/v1/leaderboards/{}", "榜".repeat(128)))),
    )
    .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    let r = send(
        app.http
            .post(app.url("/api/v1/actions/%C3%28/go"))
            .bearer_auth(&user.token)
            .json(&json!({})),
    )
    .await;
    assert_json_error(&r, StatusCode::BAD_REQUEST, "bad_path");

    // Bodies: not JSON by content type, malformed, and of the wrong shape.
    let r = send(
        app.http
            .post(app.url("/api/v1/auth/register"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("username=a&password=b"),
    )
    .await;
    assert_json_error(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let r = send(app.http.post(app.url("/api/v1/auth/login"))).await;
    assert_json_error(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let r = send(
        app.http
            .post(app.url("/api/v1/auth/register"))
            .json(&json!({"username": 5, "password": "12345678"})),
    )
    .await;
    assert_json_error(&r, StatusCode::BAD_REQUEST, "bad_json");

    // An action's body: nothing at all is `{}`, but whitespace alone is not JSON.
    let r = send(
        app.http
            .post(app.url("/api/v1/actions/probe/whoami"))
            .bearer_auth(&user.token)
            .header("content-type", "application/json")
            .body("\t\n"),
    )
    .await;
    assert_json_error(&r, StatusCode::BAD_REQUEST, "bad_json");

    // Headers: an Idempotency-Key that is not visible ASCII.
    for key in ["has space", "\u{e9}t\u{e9}"] {
        let r = send(
            app.http
                .post(app.url("/api/v1/actions/probe/echo"))
                .bearer_auth(&user.token)
                .header(
                    "idempotency-key",
                    reqwest::header::HeaderValue::from_bytes(key.as_bytes()).unwrap(),
                )
                .json(&json!({})),
        )
        .await;
        assert_json_error(&r, StatusCode::BAD_REQUEST, "bad_idempotency_key");
    }

    // A known route with a method it does not answer: 405 with Allow.
    let resp = app.http.put(app.url("/api/v1/player")).send().await.unwrap();
    let allow = resp.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET"), "{allow}");
    assert_json_error(
        &typed_json_of(resp).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    let r = send(app.http.delete(app.url("/api/openapi.json"))).await;
    assert_json_error(&r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let r = send(app.http.post(app.url("/ws"))).await;
    assert_json_error(&r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");

    // The WebSocket route asked for as plain HTTP, with or without a token.
    let r = send(app.http.get(app.url("/ws"))).await;
    assert_json_error(&r, StatusCode::BAD_REQUEST, "bad_upgrade");
    let r = send(app.http.get(app.url(&format!("/ws?token={}", user.token)))).await;
    assert_json_error(&r, StatusCode::BAD_REQUEST, "bad_upgrade");
}

async fn openapi_states_constraints_and_links(app: TestApp) {
    let (status, doc) = get(&app, "/api/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let op = |path: &str, method: &str| doc["paths"][path][method].clone();
    let param = |op: &Value, name: &str| {
        op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no parameter {name}: {op}"))
            .clone()
    };

    let board = op("/api/v1/leaderboards/{board}", "get");
    let limit = &param(&board, "limit")["schema"];
    assert_eq!(
        (limit["minimum"].as_u64(), limit["maximum"].as_u64()),
        (Some(1), Some(100))
    );
    let name = &param(&board, "board")["schema"];
    assert_eq!(
        (name["minLength"].as_u64(), name["maxLength"].as_u64()),
        (Some(1), Some(128))
    );
    assert!(name["pattern"].is_string());

    let act = op("/api/v1/actions/{plugin}/{action}", "post");
    let key = &param(&act, "Idempotency-Key")["schema"];
    assert_eq!(
        (key["minLength"].as_u64(), key["maxLength"].as_u64()),
        (Some(1), Some(128))
    );
    assert_eq!(key["pattern"], "^[!-~]+$");

    let schemas = &doc["components"]["schemas"];
    let username = &schemas["Credentials"]["properties"]["username"];
    assert_eq!(
        (username["minLength"].as_u64(), username["maxLength"].as_u64()),
        (Some(3), Some(24))
    );
    assert!(username["pattern"].as_str().unwrap().starts_with("^[A-Za-z0-9_"));
    let password = &schemas["Credentials"]["properties"]["password"];
    assert_eq!(
        (password["minLength"].as_u64(), password["maxLength"].as_u64()),
        (Some(8), Some(128))
    );
    assert_eq!(schemas["Params"]["type"], "object");

    // The response types are documented under the names the handlers serve.
    for name in [
        "FullState",
        "PlayerRow",
        "Entity",
        "Buff",
        "Modifier",
        "StatsView",
        "ActionReply",
        "Event",
        "CatalogEntry",
        "Manifest",
    ] {
        assert!(schemas[name].is_object(), "schema {name} missing");
    }

    // Links, in the specification's spelling, to operations that exist.
    let ids: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|p| p.as_object().unwrap().values())
        .filter_map(|o| o["operationId"].as_str().map(str::to_owned))
        .collect();
    let links =
        |path: &str, method: &str, status: &str| op(path, method)["responses"][status]["links"].clone();
    let register = links("/api/v1/auth/register", "post", "201");
    assert_eq!(register["player"]["operationId"], "getPlayer");
    assert_eq!(
        register["login"]["requestBody"]["username"],
        "$request.body#/username"
    );
    assert_eq!(
        links("/api/v1/auth/login", "post", "200")["player"]["operationId"],
        "getPlayer"
    );
    let catalog = links("/api/v1/catalog", "get", "200");
    assert_eq!(
        catalog["action"]["parameters"]["plugin"],
        "$response.body#/0/manifest/name"
    );
    let acted = links("/api/v1/actions/{plugin}/{action}", "post", "200");
    assert_eq!(acted["player"]["operationId"], "getPlayer");
    for link in [&register, &catalog, &acted]
        .into_iter()
        .flat_map(|l| l.as_object().unwrap().values())
    {
        assert!(link.get("operation_id").is_none(), "{link}");
        let target = link["operationId"].as_str().unwrap();
        assert!(
            ids.iter().any(|id| id == target),
            "link to unknown operation {target}"
        );
    }
}

async fn register_login_me_logout(app: TestApp) {
    let user = register(&app, "reg").await;

    let (status, me) = get(&app, "/api/v1/auth/me", Some(&user.token)).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["account"]["username"], user.username.as_str());
    assert_eq!(me["account"]["role"], "player");
    assert_eq!(me["player"]["id"], user.player_id);
    // The character's public name is not the login name: everyone starts nameless.
    assert_eq!(me["player"]["name"], NAMELESS);
    assert!(me["account"].get("password_hash").is_none());

    // Chinese names are allowed; the rules speak clearly otherwise.
    let cjk = format!("李逍遥{}", crate::common::random_u64() % 1000);
    let (status, body) = post(
        &app,
        "/api/v1/auth/register",
        None,
        &json!({"username": cjk, "password": "12345678"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let r = post(
        &app,
        "/api/v1/auth/register",
        None,
        &json!({"username": "a b", "password": "12345678"}),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_username");
    let r = post(
        &app,
        "/api/v1/auth/register",
        None,
        &json!({"username": "ok_name", "password": "short"}),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_password");
    assert!(r.1["error"]["message"].as_str().unwrap().contains("at least 8"));
    let r = post(
        &app,
        "/api/v1/auth/register",
        None,
        &json!({"username": user.username, "password": "another-password"}),
    )
    .await;
    assert_error(&r, StatusCode::CONFLICT, "username_taken");

    // Login: right password, wrong password, unknown name (same answer).
    let (status, login) = post(
        &app,
        "/api/v1/auth/login",
        None,
        &json!({"username": user.username, "password": "hunter2hunter2"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["player"]["id"], user.player_id);
    let second_token = login["token"].as_str().unwrap().to_owned();
    assert_ne!(second_token, user.token);
    let r = post(
        &app,
        "/api/v1/auth/login",
        None,
        &json!({"username": user.username, "password": "wrong-password"}),
    )
    .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    let r2 = post(
        &app,
        "/api/v1/auth/login",
        None,
        &json!({"username": "nobody_here", "password": "wrong-password"}),
    )
    .await;
    assert_error(&r2, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(r.1, r2.1, "unknown names and wrong passwords must look the same");

    // Logout revokes this token only.
    let resp = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let r = get(&app, "/api/v1/auth/me", Some(&user.token)).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(r.1["error"]["message"].as_str().unwrap().contains("revoked"));
    let r = post(&app, "/api/v1/actions/probe/echo", Some(&user.token), &json!({})).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, _) = get(&app, "/api/v1/auth/me", Some(&second_token)).await;
    assert_eq!(status, StatusCode::OK);
    // Logging out twice with the same token is refused: it is no longer valid.
    let resp = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

async fn a_revocation_the_bus_missed_is_refused_after_a_reload(app: TestApp) {
    let user = register(&app, "rel").await;
    let who = app.state.auth.keys.verify(&user.token).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.state.auth.revoked.contains(&who.jti).is_none() {
        assert!(Instant::now() < deadline, "the revoked tokens never loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Revoked in the database only, as by a host whose announcement this one missed: requests are
    // answered from memory until the next reload, which picks it up.
    app.state
        .store
        .revoke_token(&who.jti, who.account_id, who.expires_ms)
        .await
        .unwrap();
    let (status, _) = get(&app, "/api/v1/auth/me", Some(&user.token)).await;
    assert_eq!(status, StatusCode::OK);
    cauldron_host::api::auth::reload_revocations(&app.state)
        .await
        .unwrap();
    let r = get(&app, "/api/v1/auth/me", Some(&user.token)).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(r.1["error"]["message"].as_str().unwrap().contains("revoked"));
}

async fn bad_tokens_are_401(app: TestApp) {
    let user = register(&app, "tok").await;
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let claims = |exp: i64| Claims {
        sub: user.account_id.to_string(),
        pid: user.player_id,
        role: "player".into(),
        jti: format!("{:x}", crate::common::random_u64()),
        iat: now - 7200,
        exp,
    };
    let ours = TokenKeys::new(TEST_SECRET.as_bytes(), Duration::from_secs(60));
    let forger = TokenKeys::new(
        b"not the server's key, but long enough to look real",
        Duration::from_secs(60),
    );
    let expired = ours.sign(&claims(now - 3600)).unwrap();
    let forged = forger.sign(&claims(now + 3600)).unwrap();
    // Sanity: the same claims signed with the right key are accepted.
    let valid = ours.sign(&claims(now + 3600)).unwrap();
    let (status, _) = get(&app, "/api/v1/player", Some(&valid)).await;
    assert_eq!(status, StatusCode::OK);

    for path in ["/api/v1/auth/me", "/api/v1/player", "/api/v1/player/stats"] {
        assert_error(
            &get(&app, path, None).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
        for token in ["garbage", forged.as_str(), expired.as_str()] {
            assert_error(
                &get(&app, path, Some(token)).await,
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            );
        }
    }
    let r = get(&app, "/api/v1/player", Some(&expired)).await;
    assert!(
        r.1["error"]["message"].as_str().unwrap().contains("expired"),
        "{}",
        r.1
    );
    let resp = app
        .http
        .get(app.url("/api/v1/player"))
        .header("authorization", format!("Basic {}", user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let r = post(
        &app,
        "/api/v1/actions/cultivation/checkin",
        Some(&forged),
        &json!({}),
    )
    .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
}

async fn malformed_oversized_and_unknown_requests(app: TestApp) {
    let user = register(&app, "bad").await;
    // Malformed JSON: 400 in our format, on a JSON route and on the action route.
    let resp = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .unwrap();
    assert_error(&json_of(resp).await, StatusCode::BAD_REQUEST, "bad_json");
    let resp = app
        .http
        .post(app.url("/api/v1/actions/probe/echo"))
        .bearer_auth(&user.token)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_error(&json_of(resp).await, StatusCode::BAD_REQUEST, "bad_json");
    // A JSON body of the wrong shape.
    let r = post(&app, "/api/v1/auth/login", None, &json!({"user": "x"})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_json");
    // Not JSON at all.
    let resp = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_error(
        &json_of(resp).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    // Params must be an object.
    let r = act(&app, &user, "probe", "whoami", &json!([1, 2, 3])).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_params");
    // Over MAX_BODY_BYTES (4096 in tests): 413, on both kinds of body.
    let big = json!({"pad": "x".repeat(8192)});
    assert_error(
        &act(&app, &user, "probe", "whoami", &big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    let r = post(
        &app,
        "/api/v1/auth/register",
        None,
        &json!({"username": "x".repeat(8192), "password": "12345678"}),
    )
    .await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // Unknown plugin, action and route: 404.
    assert_error(
        &act(&app, &user, "nosuchplugin", "go", &json!({})).await,
        StatusCode::NOT_FOUND,
        "unknown_plugin",
    );
    assert_error(
        &act(&app, &user, "cultivation", "fly", &json!({})).await,
        StatusCode::NOT_FOUND,
        "unknown_action",
    );
    assert_error(
        &get(&app, "/api/v1/nothing/here", None).await,
        StatusCode::NOT_FOUND,
        "no_route",
    );
    assert_error(
        &get(&app, "/nothing/here", None).await,
        StatusCode::NOT_FOUND,
        "no_route",
    );
    // A bad Idempotency-Key.
    let resp = app
        .http
        .post(app.url("/api/v1/actions/probe/echo"))
        .bearer_auth(&user.token)
        .header("idempotency-key", "x".repeat(200))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_error(
        &json_of(resp).await,
        StatusCode::BAD_REQUEST,
        "bad_idempotency_key",
    );
    // An empty body is `{}`.
    let resp = app
        .http
        .post(app.url("/api/v1/actions/probe/whoami"))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reply"]["version"], "0.1.0");
}

async fn actions_apply_reject_and_fault(app: TestApp) {
    let user = register(&app, "act").await;
    let before = full_state(&app, &user).await;
    let stones = |s: &Value| s["currencies"]["spirit_stones"].as_i64().unwrap_or(0);

    // A real rule applied: the daily check-in pays spirit stones.
    let (status, reply) = act(&app, &user, "cultivation", "checkin", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["replayed"], false);
    let after = full_state(&app, &user).await;
    assert_eq!(after["player"]["version"], reply["player_version"]);
    assert!(stones(&after) > stones(&before), "{after}");

    // A rule rejection: 422 with the plugin's code, nothing changed.
    let r = act(&app, &user, "probe", "spend", &json!({})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "insufficient");
    assert_eq!(r.1["error"]["message"], "no gems left");
    assert_eq!(full_state(&app, &user).await, after);

    // A plugin fault: 500 plugin_fault naming plugin and version, nothing changed, host still serving.
    let r = act(&app, &user, "probe", "panic", &json!({})).await;
    assert_error(&r, StatusCode::INTERNAL_SERVER_ERROR, "plugin_fault");
    let message = r.1["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("probe") && message.contains("0.1.0"),
        "{message}"
    );
    assert!(
        !message.contains("asked to panic"),
        "operator detail must not leak: {message}"
    );
    assert_eq!(full_state(&app, &user).await, after);
    let (status, who) = act(&app, &user, "probe", "whoami", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{who}");
    assert_eq!(who["reply"]["version"], "0.1.0");
    let (status, _) = get(&app, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = metrics_text(&app).await;
    assert!(
        metrics.contains("cauldron_plugin_faults_total{plugin=\"probe\""),
        "{metrics}"
    );
}

async fn idempotency_key_applies_once(app: TestApp) {
    let user = register(&app, "idem").await;
    let before = full_state(&app, &user).await;
    let send = || {
        app.http
            .post(app.url("/api/v1/actions/cultivation/checkin"))
            .bearer_auth(&user.token)
            .header("idempotency-key", "checkin-once-1")
            .json(&json!({}))
            .send()
    };
    let (s1, first) = json_of(send().await.unwrap()).await;
    assert_eq!(s1, StatusCode::OK, "{first}");
    let after_first = full_state(&app, &user).await;
    let (s2, second) = json_of(send().await.unwrap()).await;
    assert_eq!(s2, StatusCode::OK, "{second}");
    assert_eq!(first["replayed"], false);
    assert_eq!(second["replayed"], true);
    assert_eq!(first["reply"], second["reply"]);
    assert_eq!(first["player_version"], second["player_version"]);
    // Applied once: the second request changed nothing.
    assert_eq!(full_state(&app, &user).await, after_first);
    assert_eq!(
        after_first["player"]["version"].as_i64().unwrap(),
        before["player"]["version"].as_i64().unwrap() + 1
    );
}

async fn player_state_and_stats(app: TestApp) {
    let user = register(&app, "state").await;
    let state = full_state(&app, &user).await;
    assert_eq!(state["player"]["id"], user.player_id);
    assert_eq!(state["player"]["account_id"], user.account_id);
    for section in [
        "stats",
        "currencies",
        "counters",
        "items",
        "plugin_state",
        "scores",
    ] {
        assert!(state[section].is_object(), "{section}: {state}");
    }
    assert!(state["entities"].is_array() && state["buffs"].is_array());
    // Registration ran the cultivation plugin's `start`: a level-1 character.
    assert_eq!(state["stats"]["level"], 1.0, "{state}");
    let (status, stats) = get(&app, "/api/v1/player/stats", Some(&user.token)).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["base"]["level"], 1.0);
    assert!(stats["effective"]["attack"].as_f64().unwrap() >= stats["base"]["attack"].as_f64().unwrap());
    assert!(stats["modifiers"].is_array());
}

async fn catalog_leaderboards_online(app: TestApp) {
    let user = register(&app, "board").await;
    let (status, catalog) = get(&app, "/api/v1/catalog", None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = catalog
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manifest"]["name"].as_str().unwrap())
        .collect();
    for name in ["cultivation", "probe", "alchemy"] {
        assert!(names.contains(&name), "{names:?}");
    }
    let cultivation = catalog
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manifest"]["name"] == "cultivation")
        .unwrap();
    assert!(
        cultivation["content"]["realms"].is_object(),
        "content tables are served"
    );
    assert_eq!(cultivation["sha256"].as_str().unwrap().len(), 64);

    // `start` set the realm score; once named, the board lists the player with that name.
    let name = rename_to_unique(&app, &user, "榜").await;
    let (status, board) = get(&app, "/api/v1/leaderboards/realm?limit=100", None).await;
    assert_eq!(status, StatusCode::OK, "{board}");
    let row = board["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["player_id"] == user.player_id)
        .unwrap();
    assert_eq!(row["name"], name.as_str());
    assert!(row["rank"].as_u64().unwrap() >= 1);
    let (status, empty) = get(&app, "/api/v1/leaderboards/no_such_board", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(empty["entries"], json!([]));
    assert_error(
        &get(&app, "/api/v1/leaderboards/realm?limit=0", None).await,
        StatusCode::BAD_REQUEST,
        "bad_limit",
    );
    assert_error(
        &get(&app, "/api/v1/leaderboards/realm?limit=1000", None).await,
        StatusCode::BAD_REQUEST,
        "bad_limit",
    );

    let (status, online) = get(&app, "/api/v1/online", None).await;
    assert_eq!(status, StatusCode::OK, "{online}");
    assert!(online["count"].is_u64());
}

async fn health_metrics_and_openapi(app: TestApp) {
    let (status, alive) = get(&app, "/healthz", None).await;
    assert_eq!((status, &alive["status"]), (StatusCode::OK, &json!("ok")));
    let (status, ready) = get(&app, "/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checks"]["database"]["status"], "ok");
    assert_eq!(ready["checks"]["redis"]["status"], "ok");
    assert_eq!(ready["plugins"]["probe"], "0.1.0");

    // Requests are counted by route template and status; compression and request ids apply.
    let _ = get(&app, "/api/v1/catalog", None).await;
    let resp = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(resp.headers().contains_key("x-request-id"));
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("cauldron_http_requests_total{route=\"/api/v1/catalog\",status=\"200\"}"),
        "{text}"
    );
    assert!(text.contains("# TYPE cauldron_http_request_seconds histogram"));
    let resp = app
        .http
        .get(app.url("/api/v1/catalog"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    let resp = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "my-request-7")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "my-request-7");

    // The OpenAPI document is 3.1 and covers every route.
    let (status, doc) = get(&app, "/api/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/auth/register", "post"),
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/auth/me", "get"),
        ("/api/v1/player", "get"),
        ("/api/v1/player/stats", "get"),
        ("/api/v1/actions/{plugin}/{action}", "post"),
        ("/api/v1/catalog", "get"),
        ("/api/v1/leaderboards/{board}", "get"),
        ("/api/v1/online", "get"),
        ("/api/v1/online/players", "get"),
        ("/api/v1/player/name", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from OpenAPI"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    // With the PostgreSQL database gone, readiness says so with a 503 (liveness does not care).
    if app.backend == Backend::PgRedis {
        use sqlx::Connection;
        let name = app.database_url.rsplit('/').next().unwrap().to_owned();
        let admin_url = format!("{}/postgres", app.database_url.rsplit_once('/').unwrap().0);
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        sqlx::query(&format!("drop database \"{name}\" with (force)"))
            .execute(&mut admin)
            .await
            .unwrap();
        let (status, ready) = get(&app, "/readyz", None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
        assert_eq!(ready["status"], "unavailable");
        assert_eq!(ready["checks"]["database"]["status"], "down");
        let (status, _) = get(&app, "/healthz", None).await;
        assert_eq!(status, StatusCode::OK);
        // Reads that need the database are a 503 in our format, not a crash.
        let r = post(
            &app,
            "/api/v1/auth/login",
            None,
            &json!({"username": "someone", "password": "12345678"}),
        )
        .await;
        assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    }
}

async fn login_rate_limit_is_429_with_retry_after(app: TestApp) {
    // Tests run with the default login bucket of 10 attempts; the 11th in a row is refused.
    let user = register(&app, "rate").await;
    let wrong = json!({"username": user.username, "password": "not-the-password"});
    for _ in 0..10 {
        let r = post(&app, "/api/v1/auth/login", None, &wrong).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let resp = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&wrong)
        .send()
        .await
        .unwrap();
    let retry_after: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    assert_error(
        &json_of(resp).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    );
    // Even the right password waits: the bucket is per username.
    let r = post(
        &app,
        "/api/v1/auth/login",
        None,
        &json!({"username": user.username, "password": "hunter2hunter2"}),
    )
    .await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // Other names are not affected.
    let other = register(&app, "rate2").await;
    let (status, _) = post(
        &app,
        "/api/v1/auth/login",
        None,
        &json!({"username": other.username, "password": "hunter2hunter2"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

/// A client bound to its own loopback address, so the host sees a peer of its own.
fn client_from(addr: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some(addr.parse().unwrap()))
        .build()
        .unwrap()
}

/// `POST path` with `body` through `client`, with extra headers.
async fn post_from(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (StatusCode, Value, Option<u64>) {
    let mut req = client.post(app.url(path)).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let (status, body) = json_of(resp).await;
    (status, body, retry_after)
}

async fn registration_and_login_are_limited_per_client_address(app: TestApp) {
    // Small per-address buckets that regain one token an hour; only 127.0.0.1 is a trusted proxy.
    let app = TestApp::start_with(
        app.backend,
        &[
            ("RATE_LIMIT_REGISTER_BURST", "3"),
            ("RATE_LIMIT_REGISTER_PER_MIN", "0.0166"),
            ("RATE_LIMIT_LOGIN_ADDR_BURST", "4"),
            ("RATE_LIMIT_LOGIN_ADDR_PER_MIN", "0.0166"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
        ],
    )
    .await;
    let register = "/api/v1/auth/register";
    let login = "/api/v1/auth/login";
    let new_account = || json!({"username": unique_username("flood"), "password": "hunter2hunter2"});

    // One client (127.0.0.2, not a proxy) floods registration: three pass, then 429 with
    // Retry-After, even when it claims to forward for someone else.
    let flooder = client_from("127.0.0.2");
    for i in 0..3 {
        let (status, body, _) = post_from(&app, &flooder, register, &[], &new_account()).await;
        assert_eq!(status, StatusCode::CREATED, "registration {i}: {body}");
    }
    for headers in [vec![], vec![("x-forwarded-for", "198.51.100.1")]] {
        let (status, body, retry) = post_from(&app, &flooder, register, &headers, &new_account()).await;
        assert_error(&(status, body), StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        assert!(retry.unwrap() >= 1);
    }
    // A bad request is still told what is wrong with it.
    let bad = json!({"username": "a b", "password": "hunter2hunter2"});
    let (status, body, _) = post_from(&app, &flooder, register, &[], &bad).await;
    assert_error(&(status, body), StatusCode::BAD_REQUEST, "invalid_username");

    // Another address registers as usual.
    let neighbour = client_from("127.0.0.3");
    let account = new_account();
    let (status, body, _) = post_from(&app, &neighbour, register, &[], &account).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // One password against many names from one address: four tries, then 429, even for a right
    // password, while the other address logs in.
    for _ in 0..4 {
        let guess = json!({"username": unique_username("victim"), "password": "123456789"});
        let (status, body, _) = post_from(&app, &flooder, login, &[], &guess).await;
        assert_error(&(status, body), StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let (status, body, retry) = post_from(&app, &flooder, login, &[], &account).await;
    assert_error(&(status, body), StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(retry.unwrap() >= 1);
    let (status, body, _) = post_from(&app, &neighbour, login, &[], &account).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Behind a trusted proxy (127.0.0.1), the client is the right-most address it forwards; what a
    // client wrote further left is ignored.
    let proxy = &app.http;
    let via = |xff: &'static str| [("x-forwarded-for", xff)];
    for i in 0..3 {
        let (status, body, _) = post_from(&app, proxy, register, &via("203.0.113.7"), &new_account()).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "registration {i} via the proxy: {body}"
        );
    }
    let spoofed = via("198.51.100.99, 203.0.113.7");
    let (status, body, _) = post_from(&app, proxy, register, &spoofed, &new_account()).await;
    assert_error(&(status, body), StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let other = via("203.0.113.7, 203.0.113.8");
    let (status, body, _) = post_from(&app, proxy, register, &other, &new_account()).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "another client behind the proxy: {body}"
    );
}

async fn action_rate_limit_is_429_with_retry_after(app: TestApp) {
    // This case needs a small bucket: its own app with 3 actions per burst, one regained a minute.
    let app = TestApp::start_with(
        app.backend,
        &[
            ("RATE_LIMIT_ACTION_BURST", "3"),
            ("RATE_LIMIT_ACTION_PER_SEC", "0.0166"),
            ("RATE_LIMIT_QUERY_BURST", "2"),
            ("RATE_LIMIT_QUERY_PER_SEC", "0.0166"),
        ],
    )
    .await;
    let user = register(&app, "spam").await;
    for _ in 0..3 {
        let (status, body) = act(&app, &user, "probe", "whoami", &json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Queries draw on a bucket of their own (burst 2 here): the actions' being empty does not stop
    // them, and they run out on their own.
    for _ in 0..2 {
        let (status, body) = act(&app, &user, "probe", "peek", &json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_error(
        &act(&app, &user, "probe", "peek", &json!({})).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    );
    let resp = app
        .http
        .post(app.url("/api/v1/actions/probe/whoami"))
        .bearer_auth(&user.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_error(
        &json_of(resp).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    );
    // Another player has their own bucket.
    let other = register(&app, "calm").await;
    let (status, _) = act(&app, &other, "probe", "whoami", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
}

async fn graceful_shutdown_stops_serving(mut app: TestApp) {
    let (status, _) = get(&app, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    let base = app.base.clone();
    app.stop().await;
    // The listener is closed: new connections are refused.
    assert!(reqwest::get(format!("{base}/healthz")).await.is_err());
}

async fn web_client_is_served_with_fallback(app: TestApp) {
    let web = tempfile::tempdir().unwrap();
    std::fs::write(
        web.path().join("index.html"),
        "<!doctype html><title>Cauldron</title>",
    )
    .unwrap();
    std::fs::write(web.path().join("app.js"), "console.log('hi')").unwrap();
    let app = TestApp::start_with(app.backend, &[("WEB_DIR", web.path().to_str().unwrap())]).await;
    for path in ["/", "/index.html", "/some/client/route"] {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert!(
            resp.text().await.unwrap().contains("<title>Cauldron</title>"),
            "{path}"
        );
    }
    let resp = app.http.get(app.url("/app.js")).send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "console.log('hi')");
    // API paths never fall back to the page.
    assert_error(
        &get(&app, "/api/v1/no/such/route", None).await,
        StatusCode::NOT_FOUND,
        "no_route",
    );
    let (status, _) = get(&app, "/api/v1/catalog", None).await;
    assert_eq!(status, StatusCode::OK);
}

async fn slow_requests_time_out_in_the_error_format(app: TestApp) {
    // This case needs a short request timeout: its own app, with one second.
    let app = TestApp::start_with(app.backend, &[("REQUEST_TIMEOUT_SECS", "1")]).await;
    let user = register(&app, "slow").await;
    let before = full_state(&app, &user).await;

    // The action waits for a lock held elsewhere for longer than the timeout: a 504 in the JSON error
    // format (never an empty body), soon after the second is up.
    let lock = WriteLock::hold(&app, user.player_id).await;
    let started = Instant::now();
    let (status, _, body) = grant(&app, &user, "slow-1").await;
    assert_error(&(status, body.clone()), StatusCode::GATEWAY_TIMEOUT, "timeout");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    lock.release().await;

    // The stopped action was not applied; its retry is, once.
    assert_eq!(full_state(&app, &user).await, before);
    let (status, _, body) = grant(&app, &user, "slow-1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["replayed"], false);
    assert_eq!(full_state(&app, &user).await["items"]["gem"], 1);

    // The timeout is counted like any other answer.
    let metrics = metrics_text(&app).await;
    assert!(
        metrics.contains(
            "cauldron_http_requests_total{route=\"/api/v1/actions/{plugin}/{action}\",status=\"504\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_by_another_process_is_a_503_until_released() {
    let app = TestApp::start(Backend::SqliteLocal).await;
    let users = [
        register(&app, "lock_a").await,
        register(&app, "lock_b").await,
        register(&app, "lock_c").await,
    ];

    // Another process holds the write lock for longer than a write waits. Three actions at once: each
    // waits its turn and then for the lock, and fails with 503, Retry-After and the JSON error body,
    // within a few seconds rather than one after another.
    let lock = WriteLock::hold(&app, 0).await;
    let started = Instant::now();
    let app_ref = &app;
    let answers = futures_util::future::join_all(users.iter().enumerate().map(|(i, user)| async move {
        let answer = grant(app_ref, user, &format!("locked-{i}")).await;
        (answer, started.elapsed())
    }))
    .await;
    for ((status, retry_after, body), took) in answers {
        assert_error(&(status, body), StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        let retry_after: u64 = retry_after.expect("Retry-After").parse().unwrap();
        assert!(retry_after >= 1);
        assert!(took < Duration::from_secs(10), "answered after {took:?}");
    }
    // Reads do not need the write lock.
    assert_eq!(full_state(&app, &users[0]).await["items"]["gem"], Value::Null);
    lock.release().await;

    // Released: the same requests apply, each once.
    for (i, user) in users.iter().enumerate() {
        let (status, _, body) = grant(&app, user, &format!("locked-{i}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["replayed"], false, "{body}");
        assert_eq!(full_state(&app, user).await["items"]["gem"], 1);
    }
}

// ---- bad input and host trouble ---------------------------------------------------------------

/// `{"a": {"a": ... 1}}`, `levels` objects deep.
fn nested(levels: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..levels {
        v = json!({ "a": v });
    }
    v
}

/// The player's version, from `GET /api/v1/player`.
async fn version_of(app: &TestApp, user: &User) -> i64 {
    full_state(app, user).await["player"]["version"].as_i64().unwrap()
}

/// The host's `/metrics` text.
async fn metrics_text(app: &TestApp) -> String {
    let resp = app.http.get(app.url("/metrics")).send().await.unwrap();
    resp.text().await.unwrap()
}

/// The sum of the metric lines in `/metrics` that start with `prefix` (`name{labels`), 0 when none.
async fn metric(app: &TestApp, prefix: &str) -> f64 {
    let text = metrics_text(app).await;
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn deep_documents_are_refused_and_the_player_keeps_playing(app: TestApp) {
    let user = register(&app, "deep").await;
    let before = version_of(&app, &user).await;
    let bad_effects = r#"cauldron_plugin_faults_total{plugin="probe",version="0.1.0",kind="bad_effect"}"#;
    let counted_before = metric(&app, bad_effects).await;
    // Far past the limit (and past the JSON readers' 128) into every place a plugin can write: a
    // plugin fault naming the limit, and nothing stored.
    for into in ["state", "entity", "event", "reply"] {
        let (status, body) = act(&app, &user, "probe", "deep", &json!({"n": 200, "into": into})).await;
        assert_error(
            &(status, body.clone()),
            StatusCode::INTERNAL_SERVER_ERROR,
            "plugin_fault",
        );
        assert_eq!(version_of(&app, &user).await, before, "{into}: {body}");
    }
    // Each refused outcome counts as a fault of the plugin.
    assert_eq!(metric(&app, bad_effects).await, counted_before + 4.0);
    // One level past the limit is refused too; exactly at the limit is stored and reads back.
    let (status, _) = act(&app, &user, "probe", "deep", &json!({"n": 65, "into": "state"})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    for into in ["state", "entity"] {
        let (status, body) = act(&app, &user, "probe", "deep", &json!({"n": 64, "into": into})).await;
        assert_eq!(status, StatusCode::OK, "{into}: {body}");
    }
    let state = full_state(&app, &user).await;
    assert_eq!(state["plugin_state"]["probe"], nested(64));
    assert!(
        state["entities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["data"] == nested(64))
    );
    // The player still loads and acts, through the cache and without it.
    let (status, body) = act(&app, &user, "cultivation", "info", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = act(&app, &user, "probe", "deep", &json!({"n": 3, "into": "reply"})).await;
    assert_eq!((status, &body["reply"]), (StatusCode::OK, &nested(3)), "{body}");
    // A reply at the limit is logged and answered again for its idempotency key.
    let send = || {
        app.http
            .post(app.url("/api/v1/actions/probe/deep"))
            .bearer_auth(&user.token)
            .header("idempotency-key", "deep-reply-1")
            .json(&json!({"n": 64, "into": "reply"}))
            .send()
    };
    let first = json_of(send().await.unwrap()).await;
    let again = json_of(send().await.unwrap()).await;
    assert_eq!(first.0, StatusCode::OK, "{}", first.1);
    assert_eq!(
        (again.0, &again.1["replayed"]),
        (StatusCode::OK, &json!(true)),
        "{}",
        again.1
    );
    assert_eq!(again.1["reply"], nested(64));
    // Params deeper than the limit are refused before any plugin runs.
    let (status, body) = act(&app, &user, "probe", "echo", &json!({"p": nested(70)})).await;
    assert_error(&(status, body.clone()), StatusCode::BAD_REQUEST, "bad_params");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("64"),
        "{body}"
    );
    let (status, _) = act(&app, &user, "probe", "echo", &json!({"p": nested(300)})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn nul_text_is_a_client_error_that_logs_nothing_at_error(app: TestApp) {
    let user = register(&app, "nul").await;
    let before = full_state(&app, &user).await;
    let rid = format!("nul-{:016x}", crate::common::random_u64());
    let send = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = app
            .http
            .request(method, app.url(path))
            .bearer_auth(&user.token)
            .header("x-request-id", &rid);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send()
    };
    let cases: Vec<(reqwest::Method, &str, Option<Value>, &str, &str)> = vec![
        (
            reqwest::Method::POST,
            "/api/v1/auth/login",
            Some(json!({"username": "ab\u{0}c", "password": "hunter2hunter2"})),
            "bad_text",
            "username",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/auth/register",
            Some(json!({"username": "ab\u{0}cd", "password": "hunter2hunter2"})),
            "invalid_username",
            "username",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/auth/register",
            Some(json!({"username": unique_username("nulpw"), "password": "hunter2\u{0}hunter2"})),
            "invalid_password",
            "password",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/actions/probe/echo",
            Some(json!({"name": "a\u{0}b"})),
            "bad_params",
            "params.name",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/actions/cultivation/meditate",
            Some(json!({"deep": {"k\u{0}": 1}})),
            "bad_params",
            "params.deep.k",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/leaderboards/a%00b",
            None,
            "bad_board",
            "board",
        ),
    ];
    for (method, path, body, code, field) in cases {
        let got = json_of(send(method, path, body).await.unwrap()).await;
        assert_error(&got, StatusCode::BAD_REQUEST, code);
        let message = got.1["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{path}: {message}");
    }
    // A lone surrogate escape is malformed JSON.
    let resp = app
        .http
        .post(app.url("/api/v1/actions/probe/echo"))
        .bearer_auth(&user.token)
        .header("x-request-id", &rid)
        .header("content-type", "application/json")
        .body(r#"{"name":"\ud800"}"#)
        .send()
        .await
        .unwrap();
    assert_error(&json_of(resp).await, StatusCode::BAD_REQUEST, "bad_json");
    assert_eq!(app.error_logs(&rid), Vec::<String>::new());
    assert_eq!(full_state(&app, &user).await, before);
    // A plugin that writes NUL is the plugin's fault, refused before the database sees it.
    for into in ["state", "entity", "event", "reply"] {
        let (status, body) = act(&app, &user, "probe", "nul", &json!({"into": into})).await;
        assert_error(&(status, body), StatusCode::INTERNAL_SERVER_ERROR, "plugin_fault");
    }
    assert_eq!(full_state(&app, &user).await, before);
    let (status, body) = act(&app, &user, "cultivation", "info", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn idempotency_key_reused_for_another_request_is_422(app: TestApp) {
    let user = register(&app, "reuse").await;
    let send = |path: &str, body: Value| {
        app.http
            .post(app.url(path))
            .bearer_auth(&user.token)
            .header("idempotency-key", "reuse-key-1")
            .json(&body)
            .send()
    };
    let first = json_of(
        send("/api/v1/actions/probe/grant", json!({"n": 2, "into": "x"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(first.0, StatusCode::OK, "{}", first.1);
    let after = full_state(&app, &user).await;
    assert_eq!(after["items"]["gem"], 2);
    // The same request again, keys in another order: the stored answer.
    let again = json_of(
        send("/api/v1/actions/probe/grant", json!({"into": "x", "n": 2}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (again.0, &again.1["replayed"]),
        (StatusCode::OK, &json!(true)),
        "{}",
        again.1
    );
    // The same key with other params, another action or another plugin: 422 and nothing runs.
    for (path, body) in [
        ("/api/v1/actions/probe/grant", json!({"n": 5})),
        ("/api/v1/actions/probe/echo", json!({"n": 2, "into": "x"})),
        ("/api/v1/actions/cultivation/checkin", json!({})),
    ] {
        let got = json_of(send(path, body).await.unwrap()).await;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
    }
    assert_eq!(full_state(&app, &user).await, after);
}

async fn host_failures_are_503_and_not_plugin_faults(app: TestApp) {
    let user = register(&app, "host").await;
    let faults = r#"cauldron_plugin_faults_total{plugin="probe""#;
    let host_line = r#"cauldron_host_call_failures_total{plugin="probe",reason="call_too_large"}"#;
    let faults_before = metric(&app, faults).await;
    // Each stash is an entity of 200 KB that every later stash call carries: past 4 MiB the host
    // cannot send the call at all.
    let mut refused = None;
    for i in 0..30 {
        let got = act(&app, &user, "probe", "stash", &json!({"bytes": 200_000})).await;
        if got.0 != StatusCode::OK {
            refused = Some((i, got));
            break;
        }
    }
    let (i, got) = refused.expect("the call never grew past the cap");
    assert!(i > 15, "refused after only {i} stashes");
    assert_error(&got, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(
        metric(&app, faults).await,
        faults_before,
        "counted as a plugin fault"
    );
    assert_eq!(metric(&app, host_line).await, 1.0);
    // Actions that do not carry the entities still run.
    let (status, body) = act(&app, &user, "probe", "echo", &json!({"x": 1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The rows of the player's action log, counted in the database itself.
async fn log_rows(app: &TestApp, player_id: i64) -> i64 {
    let sql = "select count(*) from action_log where player_id = $1";
    match app.backend {
        Backend::PgRedis => {
            let mut conn = sqlx::PgConnection::connect(&app.database_url).await.unwrap();
            let n: i64 = sqlx::query_scalar(sql)
                .bind(player_id)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
            n
        }
        Backend::SqliteLocal => {
            let mut conn = sqlx::SqliteConnection::connect(&app.database_url).await.unwrap();
            let n: i64 = sqlx::query_scalar(sql)
                .bind(player_id)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
            n
        }
    }
}

/// `probe/peek` with an `Idempotency-Key`.
async fn peek_with_key(app: &TestApp, user: &User, key: &str) -> (StatusCode, Value) {
    let resp = app
        .http
        .post(app.url("/api/v1/actions/probe/peek"))
        .bearer_auth(&user.token)
        .header("idempotency-key", key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    json_of(resp).await
}

async fn query_actions_answer_without_writing(app: TestApp) {
    let user = register(&app, "reader").await;
    let (status, body) = act(&app, &user, "probe", "grant", &json!({"n": 3})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let version = version_of(&app, &user).await;
    let rows = log_rows(&app, user.player_id).await;
    assert!(rows >= 1);

    // The catalog says which actions are queries.
    let (_, catalog) = get(&app, "/api/v1/catalog", None).await;
    let flag = |plugin: &str, action: &str| {
        catalog
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["manifest"]["name"] == plugin)
            .and_then(|c| {
                c["manifest"]["actions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|a| a["name"] == action)
            })
            .map(|a| a["query"].clone())
    };
    assert_eq!(flag("probe", "peek"), Some(json!(true)));
    assert_eq!(flag("probe", "grant"), Some(json!(false)));
    for (plugin, action) in [
        ("cultivation", "info"),
        ("dungeon", "status"),
        ("dungeon", "dungeon_buffs"),
        ("equipment", "list"),
        ("pet", "info"),
        ("alchemy", "recipes"),
    ] {
        assert_eq!(flag(plugin, action), Some(json!(true)), "{plugin}/{action}");
    }
    assert_eq!(flag("cultivation", "gather"), Some(json!(false)));

    // A query answers from the current state, at the version it read, and writes nothing.
    let (status, body) = act(&app, &user, "probe", "peek", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"reply": 3, "events": [], "player_version": version, "replayed": false})
    );
    // Every screen of the web client reads through a query now; none of them writes.
    for (plugin, action) in [
        ("cultivation", "info"),
        ("dungeon", "status"),
        ("equipment", "list"),
        ("pet", "info"),
        ("alchemy", "recipes"),
    ] {
        let (status, body) = act(&app, &user, plugin, action, &json!({})).await;
        assert_eq!(status, StatusCode::OK, "{plugin}/{action}: {body}");
        assert_eq!(body["player_version"], version, "{plugin}/{action}");
        assert!(body["reply"].is_object(), "{plugin}/{action}: {body}");
    }
    // A query's rule rejection is answered like an action's.
    assert_error(
        &act(&app, &user, "dungeon", "dungeon_buffs", &json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no_run",
    );
    // An Idempotency-Key is accepted and ignored: each repeat runs, none is a replay, and a key an
    // action used before is no conflict.
    let (status, _, _) = grant(&app, &user, "query-key").await;
    assert_eq!(status, StatusCode::OK);
    let version = version_of(&app, &user).await;
    let rows = log_rows(&app, user.player_id).await;
    for _ in 0..2 {
        let (status, body) = peek_with_key(&app, &user, "query-key").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["reply"], 4);
        assert_eq!(body["replayed"], false);
        assert_eq!(body["player_version"], version);
    }
    assert_eq!(log_rows(&app, user.player_id).await, rows, "no log row");
    assert_eq!(version_of(&app, &user).await, version, "no new version");

    // A query that returns effects is the plugin's fault, counted, and nothing is written.
    let faults = "cauldron_plugin_faults_total{plugin=\"probe\",version=\"0.1.0\",kind=\"query_effects\"";
    assert_eq!(metric(&app, faults).await, 0.0);
    assert_error(
        &act(&app, &user, "probe", "peek_bad", &json!({})).await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "plugin_fault",
    );
    assert_eq!(metric(&app, faults).await, 1.0);
    let state = full_state(&app, &user).await;
    assert_eq!(state["items"]["gem"], 4, "the effect was not applied");
    assert_eq!(state["player"]["version"], version);
    assert_eq!(log_rows(&app, user.player_id).await, rows);
    // The player plays on.
    let (status, body) = act(&app, &user, "probe", "peek", &json!({})).await;
    assert_eq!((status, body["reply"].clone()), (StatusCode::OK, json!(4)));
}

async fn modifiers_hooks_are_called_once_per_state(app: TestApp) {
    let user = register(&app, "mods").await;
    // An entity change (which the hooks see) leaves no cached answer for the new state.
    let (status, body) = act(&app, &user, "probe", "stash", &json!({"bytes": 4})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Equipment has a `modifiers` hook; count its calls from here.
    let hook = "cauldron_plugin_calls_total{plugin=\"equipment\",action=\"modifiers\"";
    let start = metric(&app, hook).await;

    // Two reads at the same state: the hook runs for the first only.
    for (plugin, action) in [("equipment", "list"), ("cultivation", "info")] {
        let (status, body) = act(&app, &user, plugin, action, &json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, _) = get(&app, "/api/v1/player/stats", Some(&user.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((metric(&app, hook).await - start), 1.0);

    // An action at that state uses the same answer. It changes items, which no hook reads, so the
    // answer holds for the version it commits too.
    let (status, body) = act(&app, &user, "probe", "grant", &json!({"n": 1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((metric(&app, hook).await - start), 1.0);
    let (status, _) = act(&app, &user, "equipment", "list", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((metric(&app, hook).await - start), 1.0);

    // An action that changes entities (which the hooks read) makes the next read ask again.
    let (status, body) = act(&app, &user, "probe", "stash", &json!({"bytes": 4})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((metric(&app, hook).await - start), 1.0);
    let (status, _) = act(&app, &user, "equipment", "list", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((metric(&app, hook).await - start), 2.0);
    let (status, _) = act(&app, &user, "equipment", "list", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((metric(&app, hook).await - start), 2.0);

    // Unloading a plugin changes the set of hooks: asked again, at the same version.
    assert!(app.state.registry.unload("dungeon"));
    let (status, _) = act(&app, &user, "equipment", "list", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((metric(&app, hook).await - start), 3.0);

    // Another player's state is another answer.
    let other = register(&app, "mods2").await;
    let (status, body) = act(&app, &other, "probe", "stash", &json!({"bytes": 4})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = metric(&app, hook).await - start;
    let (status, _) = act(&app, &other, "equipment", "list", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((metric(&app, hook).await - start), before + 1.0);
}

async fn board_rows_say_what_they_are_about(app: TestApp) {
    let user = register(&app, "rows").await;
    let name = rename_to_unique(&app, &user, "器").await;
    let (status, body) = act(&app, &user, "cultivation", "checkin", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A drawn and worn piece: the equipment row names it, with its quality and enhance level.
    let (status, drawn) = act(&app, &user, "equipment", "draw", &json!({"count": 1})).await;
    assert_eq!(status, StatusCode::OK, "{drawn}");
    let piece = drawn["reply"]["items"][0].clone();
    let (status, body) = act(&app, &user, "equipment", "equip", &json!({"id": piece["id"]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, board) = get(&app, "/api/v1/leaderboards/equipment?limit=100", None).await;
    assert_eq!(status, StatusCode::OK, "{board}");
    let row = board["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["player_id"] == user.player_id)
        .unwrap_or_else(|| panic!("no row: {board}"));
    assert_eq!(row["name"], name.as_str());
    assert_eq!(row["detail"]["name"], piece["item"]["name"], "{row}");
    assert_eq!(row["detail"]["quality"], piece["item"]["quality"], "{row}");
    assert_eq!(row["detail"]["quality_name"], piece["quality_name"], "{row}");
    assert_eq!(row["detail"]["enhance_level"], 0, "{row}");

    // A drawn and deployed pet: the pets row names it, with quality, stars and level.
    let (status, drawn) = act(&app, &user, "pet", "draw", &json!({"count": 1})).await;
    assert_eq!(status, StatusCode::OK, "{drawn}");
    let pet = drawn["reply"]["pets"][0].clone();
    let (status, body) = act(&app, &user, "pet", "deploy", &json!({"id": pet["id"]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, board) = get(&app, "/api/v1/leaderboards/pets?limit=100", None).await;
    assert_eq!(status, StatusCode::OK, "{board}");
    let row = board["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["player_id"] == user.player_id)
        .unwrap_or_else(|| panic!("no row: {board}"));
    assert_eq!(row["detail"]["name"], pet["pet"]["name"], "{row}");
    assert_eq!(row["detail"]["quality"], pet["pet"]["quality"], "{row}");
    assert_eq!(
        (row["detail"]["star"].as_i64(), row["detail"]["level"].as_i64()),
        (Some(0), Some(1))
    );
    // Boards nobody describes carry no detail.
    let (_, realm) = get(&app, "/api/v1/leaderboards/realm?limit=100", None).await;
    assert!(
        realm["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r.get("detail").is_none()),
        "{realm}"
    );
}

// ---- another player's view and duels -------------------------------------------------------------

/// The duel content with the level gate at 1 and no spirit cost, so two new characters can duel.
fn easy_duels(plugins: &std::path::Path) {
    crate::common::edit_content(
        plugins,
        "duel/duel.toml",
        &[
            ("min_level = 7", "min_level = 1"),
            ("spirit_base = 720.0", "spirit_base = 0.0"),
        ],
    );
}

/// The player's full state without what every action moves (the version).
fn without_version(mut state: Value) -> Value {
    state["player"]["version"] = Value::Null;
    state
}

async fn another_players_view_is_public_only_and_effects_stay_with_the_actor(app: TestApp) {
    let me = register(&app, "seer").await;
    let rival = register(&app, "seen").await;
    // The rival holds private things: items (gems), a plugin state (cultivation's), currencies, and
    // an entity of the probe's kind (a trinket).
    let (status, body) = act(&app, &rival, "probe", "grant", &json!({"n": 3})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = act(&app, &rival, "probe", "stash", &json!({"bytes": 4})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rival_before = without_version(full_state(&app, &rival).await);
    assert!(
        !rival_before["plugin_state"]["cultivation"].is_null(),
        "{rival_before}"
    );
    let (_, rival_stats) = get(&app, "/api/v1/player/stats", Some(&rival.token)).await;

    let (status, body) = act(&app, &me, "probe", "rival", &json!({"opponent": rival.player_id})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // What the plugin received, echoed: exactly the public view.
    let other = &body["reply"]["other"];
    let mut keys: Vec<&str> = other.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["effective_stats", "entities", "id", "name", "stats"],
        "{other}"
    );
    assert_eq!(other["id"], rival.player_id);
    assert_eq!(other["name"], rival_before["player"]["name"]);
    assert_eq!(other["stats"], rival_stats["base"], "base stats");
    assert_eq!(
        other["effective_stats"], rival_stats["effective"],
        "after the modifiers hooks"
    );
    let entities = other["entities"].as_array().unwrap();
    assert_eq!(entities.len(), 1, "{other}");
    assert_eq!(entities[0][1], "trinket");
    let text = other.to_string();
    for private in ["gem", "spirit_stones", "started", "last_accrual_ms"] {
        assert!(!text.contains(private), "`{private}` reached the plugin: {text}");
    }

    // The actor got the gem; the rival is exactly as before.
    let mine = full_state(&app, &me).await;
    assert_eq!(mine["items"]["gem"], 1, "{mine}");
    assert_eq!(without_version(full_state(&app, &rival).await), rival_before);
    // An action that declares the read but is given no player sees nobody.
    let (status, body) = act(&app, &me, "probe", "rival", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["reply"]["other"].is_null(), "{body}");
}

async fn reading_a_player_needs_the_declaration_and_a_real_player(app: TestApp) {
    let me = register(&app, "blind").await;
    let rival = register(&app, "hidden").await;
    // A `player` param the action does not declare reading: refused before any plugin runs.
    let r = act(
        &app,
        &me,
        "probe",
        "rival_blind",
        &json!({"opponent": rival.player_id}),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_params");
    assert!(
        r.1["error"]["message"].as_str().unwrap().contains("opponent"),
        "{}",
        r.1
    );
    // Not a whole number.
    for bad in [json!("x"), json!(1.5), json!([1])] {
        let r = act(&app, &me, "probe", "rival", &json!({"opponent": bad})).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_params");
    }
    // Nobody by that id: a clean 404, and nothing ran.
    let r = act(&app, &me, "probe", "rival", &json!({"opponent": i64::MAX})).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = act(&app, &me, "duel", "challenge", &json!({"opponent": i64::MAX})).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    assert!(full_state(&app, &me).await["items"]["gem"].is_null());
    // The real duel refuses a new character (below realm level 7) and a duel with oneself.
    let r = act(
        &app,
        &me,
        "duel",
        "challenge",
        &json!({"opponent": rival.player_id}),
    )
    .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "level_too_low");
    let (status, catalog) = get(&app, "/api/v1/catalog", None).await;
    assert_eq!(status, StatusCode::OK);
    let duel = catalog
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["manifest"]["name"] == "duel")
        .expect("the duel plugin is loaded");
    let challenge = duel["manifest"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "challenge")
        .unwrap();
    assert_eq!(challenge["reads_player"], "opponent");
    assert_eq!(challenge["params"][0]["type"], "player");
}

async fn two_players_duel_and_only_the_challenger_changes(app: TestApp) {
    let me = register(&app, "duelist").await;
    rename_to_unique(&app, &me, "斗").await;
    let rival = register(&app, "target").await;
    let rival_before = without_version(full_state(&app, &rival).await);
    let me_before = full_state(&app, &me).await;

    let r = act(&app, &me, "duel", "challenge", &json!({"opponent": me.player_id})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "self_duel");

    let (status, body) = act(
        &app,
        &me,
        "duel",
        "challenge",
        &json!({"opponent": rival.player_id}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reply = &body["reply"];
    assert_eq!(reply["opponent"]["id"], rival.player_id);
    assert_eq!(reply["opponent"]["name"], rival_before["player"]["name"]);
    assert_eq!(reply["used_today"], 1);
    let battle = &reply["battle"];
    assert!(!battle["log"].as_array().unwrap().is_empty(), "{battle}");
    let won = reply["won"].as_bool().unwrap();
    assert_eq!(battle["winner"], if won { "player" } else { "enemy" });
    // The fight used both players' effective stats.
    let (_, rival_stats) = get(&app, "/api/v1/player/stats", Some(&rival.token)).await;
    assert_eq!(
        reply["opponent"]["fighter"]["attack"],
        rival_stats["effective"]["attack"]
    );

    let me_after = full_state(&app, &me).await;
    let stones = |s: &Value| s["currencies"]["spirit_stones"].as_i64().unwrap_or(0);
    assert_eq!(
        stones(&me_after) - stones(&me_before),
        reply["spirit_stones"].as_i64().unwrap()
    );
    assert_eq!(me_after["plugin_state"]["duel"]["wins"], u32::from(won));
    assert_eq!(me_after["plugin_state"]["duel"]["losses"], u32::from(!won));
    // The opponent is exactly as before: no record, no currency, no score.
    assert_eq!(without_version(full_state(&app, &rival).await), rival_before);

    let (status, body) = act(&app, &me, "duel", "records", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reply"]["stats"]["total"], 1);
    assert_eq!(body["reply"]["records"][0]["opponent_id"], rival.player_id);
    if won {
        let (status, board) = get(&app, "/api/v1/leaderboards/duel", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(board["entries"][0]["player_id"], me.player_id, "{board}");
    }
}

async fn players_around_me_are_paged_nearest_first_and_named_only(app: TestApp) {
    let me = register(&app, "center").await;
    let mut others = Vec::new();
    for i in 0..5 {
        others.push(register(&app, &format!("near{i}")).await);
    }
    // A board of our own: me at 50; others at 10, 40, 55, 90 and one nameless at 51.
    let scores = [10.0, 40.0, 55.0, 90.0, 51.0];
    let insert = "insert into scores (board, player_id, score) values ('trial', $1, $2)";
    sql(&app, insert, me.player_id, 50.0).await;
    for (user, score) in others.iter().zip(scores) {
        sql(&app, insert, user.player_id, score).await;
    }
    // Every character but the last chooses a name; the last stays 无名修士.
    for user in &others[..4] {
        rename_to_unique(&app, user, "近").await;
    }

    let (status, body) = get(
        &app,
        "/api/v1/leaderboards/trial/around/me?limit=2",
        Some(&me.token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["me"]["player_id"], me.player_id);
    assert_eq!(body["me"]["rank"], 3, "{body}");
    let ids = |b: &Value| -> Vec<i64> {
        b["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["player_id"].as_i64().unwrap())
            .collect()
    };
    // Nearest first (55, then 40), the nameless 51 left out.
    assert_eq!(ids(&body), [others[2].player_id, others[1].player_id]);
    // Ranks count named players only: 90 is first, 55 second, me (50) third.
    assert_eq!(body["entries"][0]["rank"], 2, "{body}");
    let (_, page2) = get(
        &app,
        "/api/v1/leaderboards/trial/around/me?limit=2&offset=2",
        Some(&me.token),
    )
    .await;
    // 90 and 10 are both 40 away: the higher score first.
    assert_eq!(ids(&page2), [others[3].player_id, others[0].player_id]);
    let (_, page3) = get(
        &app,
        "/api/v1/leaderboards/trial/around/me?limit=2&offset=4",
        Some(&me.token),
    )
    .await;
    assert!(ids(&page3).is_empty());
    // The realm board (set by the cultivation plugin's start) lists the other characters too.
    let (status, realm) = get(&app, "/api/v1/leaderboards/realm/around/me", Some(&me.token)).await;
    assert_eq!(status, StatusCode::OK, "{realm}");
    assert!(ids(&realm).contains(&others[0].player_id));
    assert!(!ids(&realm).contains(&me.player_id));
    assert!(!ids(&realm).contains(&others[4].player_id));
    // Errors.
    let r = get(&app, "/api/v1/leaderboards/trial/around/me", None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    for (query, code) in [
        ("limit=0", "bad_limit"),
        ("limit=101", "bad_limit"),
        ("offset=10001", "bad_offset"),
        ("offset=-1", "bad_query"),
    ] {
        let r = get(
            &app,
            &format!("/api/v1/leaderboards/trial/around/me?{query}"),
            Some(&me.token),
        )
        .await;
        assert_error(&r, StatusCode::BAD_REQUEST, code);
    }
    // A board without the caller: no `me`, rows by distance from 0.
    let (status, empty) = get(&app, "/api/v1/leaderboards/nothing/around/me", Some(&me.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(empty["me"].is_null() && ids(&empty).is_empty(), "{empty}");
}

/// Run `statement` with a player id and a number straight on the app's database.
async fn sql(app: &TestApp, statement: &str, player_id: i64, value: f64) {
    match app.backend {
        Backend::PgRedis => {
            let mut c = sqlx::PgConnection::connect(&app.database_url).await.unwrap();
            sqlx::query(statement)
                .bind(player_id)
                .bind(value)
                .execute(&mut c)
                .await
                .unwrap();
        }
        Backend::SqliteLocal => {
            let mut c = sqlx::SqliteConnection::connect(&app.database_url).await.unwrap();
            sqlx::query(statement)
                .bind(player_id)
                .bind(value)
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
}
