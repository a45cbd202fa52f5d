//! `/ws` end to end: the real app on an ephemeral port, real sockets (tokio-tungstenite), the real
//! plugins and the probe fixture. Most cases run on both backends (PostgreSQL + Redis, SQLite +
//! in-process). Waits are bounded by deadlines, never asserted on.

#![allow(clippy::unwrap_used, reason = "an unwrap is an assertion here")]

use std::time::Duration;

use crate::common::{Backend, TestApp};
use bytes::Bytes;
use cauldron_host::bus::Channel;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// How long any one expected message may take.
const DEADLINE: Duration = Duration::from_secs(10);

struct User {
    token: String,
    player_id: i64,
}

async fn register(app: &TestApp) -> User {
    let (token, player_id, _) = crate::common::cluster::register_at(&app.base).await;
    User { token, player_id }
}

fn ws_url(app: &TestApp, query: &str) -> String {
    format!("{}/ws{query}", app.base.replacen("http", "ws", 1))
}

async fn connect(app: &TestApp, user: &User) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(ws_url(app, &format!("?token={}", user.token)))
        .await
        .unwrap();
    socket
}

async fn send(socket: &mut Socket, msg: &Value) {
    socket.send(Message::text(msg.to_string())).await.unwrap();
}

/// The next JSON message whose `type` satisfies `want` (others are skipped).
async fn next_where(socket: &mut Socket, want: impl Fn(&Value) -> bool) -> Value {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let v: Value = serde_json::from_str(&text).unwrap();
                    if want(&v) {
                        return v;
                    }
                }
                Some(Ok(Message::Close(frame))) => panic!("closed: {frame:?}"),
                Some(Ok(_)) => {}
                other => panic!("socket ended: {other:?}"),
            }
        }
    })
    .await
    .expect("message within the deadline")
}

async fn next_of_type(socket: &mut Socket, kind: &str) -> Value {
    next_where(socket, |v| v["type"] == kind).await
}

/// Reads until the server's close frame; returns its code and reason.
async fn close_of(socket: &mut Socket) -> (CloseCode, String) {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(Some(frame)))) => return (frame.code, frame.reason.to_string()),
                Some(Ok(Message::Close(None))) => panic!("close without a reason"),
                Some(Ok(_)) => {}
                other => panic!("socket ended without a close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("close within the deadline")
}

both_backends!(
    crate::common::backend;
    auth_failures_close_with_a_reason,
    actions_run_over_the_socket_like_over_http,
    events_of_other_players_actions_reach_the_socket,
    heartbeat_and_unknown_messages,
    plugin_reload_is_announced,
    a_client_that_never_reads_is_disconnected,
    shutdown_closes_sockets_with_a_reason,
    the_online_list_shows_display_names_and_since_when,
    announcements_carry_the_display_name,
);

async fn auth_failures_close_with_a_reason(backend: Backend) {
    let app = TestApp::start(backend).await;
    let user = register(&app).await;
    for query in ["", "?token=", "?token=forged.token.here"] {
        let (mut socket, _) = tokio_tungstenite::connect_async(ws_url(&app, query))
            .await
            .unwrap();
        let (code, reason) = close_of(&mut socket).await;
        assert_eq!(code, CloseCode::Library(4401), "{query}: {reason}");
        assert!(reason.starts_with("unauthorized"), "{query}: {reason}");
    }
    // A revoked token (logged out) is refused too.
    let resp = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let mut socket = connect(&app, &user).await;
    let (code, reason) = close_of(&mut socket).await;
    assert_eq!(code, CloseCode::Library(4401));
    assert!(reason.contains("revoked"), "{reason}");

    // The header works as well as the query.
    let user = register(&app).await;
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url(&app, ""))
            .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {}", user.token).parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    send(&mut socket, &json!({"type": "ping"})).await;
    next_of_type(&mut socket, "pong").await;
}

async fn actions_run_over_the_socket_like_over_http(backend: Backend) {
    let app = TestApp::start(backend).await;
    let user = register(&app).await;
    let mut socket = connect(&app, &user).await;

    send(
        &mut socket,
        &json!({"type": "action", "id": "a1", "plugin": "probe", "action": "shout", "params": {"n": 7}}),
    )
    .await;
    let result = next_of_type(&mut socket, "action_result").await;
    assert_eq!(result["id"], "a1", "{result}");
    assert_eq!(result["status"], 200, "{result}");
    assert_eq!(result["reply"]["reply"], 7, "{result}");
    let version = result["reply"]["player_version"].as_i64().unwrap();

    // The same errors as HTTP, with the same status and code.
    send(
        &mut socket,
        &json!({"type": "action", "id": 2, "plugin": "nope", "action": "x"}),
    )
    .await;
    let result = next_of_type(&mut socket, "action_result").await;
    assert_eq!(
        (result["id"].clone(), result["status"].clone()),
        (json!(2), json!(404))
    );
    assert_eq!(result["error"]["code"], "unknown_plugin");
    send(
        &mut socket,
        &json!({"type": "action", "id": 3, "plugin": "probe", "action": "half"}),
    )
    .await;
    let result = next_of_type(&mut socket, "action_result").await;
    assert_eq!(result["status"], 500, "{result}");
    assert_eq!(result["error"]["code"], "plugin_fault");

    // Idempotency keys behave as the header does: the repeat is not run again.
    for _ in 0..2 {
        send(
            &mut socket,
            &json!({"type": "action", "id": 4, "plugin": "probe", "action": "shout",
                    "params": {"n": 1}, "idempotency_key": "ws-key-1"}),
        )
        .await;
    }
    let first = next_of_type(&mut socket, "action_result").await;
    let second = next_of_type(&mut socket, "action_result").await;
    assert_eq!(first["reply"]["replayed"], false, "{first}");
    assert_eq!(second["reply"]["replayed"], true, "{second}");
    assert_eq!(
        first["reply"]["player_version"],
        second["reply"]["player_version"]
    );
    assert!(first["reply"]["player_version"].as_i64().unwrap() > version);
    send(
        &mut socket,
        &json!({"type": "action", "id": 5, "plugin": "probe", "action": "shout", "idempotency_key": ""}),
    )
    .await;
    let result = next_of_type(&mut socket, "action_result").await;
    assert_eq!(result["error"]["code"], "bad_idempotency_key", "{result}");

    // A query answers at the version it read and writes nothing; one that returns effects is a
    // plugin fault, as over HTTP.
    let version = first["reply"]["player_version"].as_i64().unwrap();
    for id in [6, 7] {
        send(
            &mut socket,
            &json!({"type": "action", "id": id, "plugin": "probe", "action": "peek",
                    "idempotency_key": "ws-key-1"}),
        )
        .await;
        let result = next_of_type(&mut socket, "action_result").await;
        assert_eq!(result["status"], 200, "{result}");
        assert_eq!(result["reply"]["reply"], 0, "{result}");
        assert_eq!(result["reply"]["player_version"], version, "{result}");
        assert_eq!(result["reply"]["replayed"], false, "{result}");
        assert_eq!(result["reply"]["events"], json!([]), "{result}");
    }
    send(
        &mut socket,
        &json!({"type": "action", "id": 8, "plugin": "probe", "action": "peek_bad"}),
    )
    .await;
    let result = next_of_type(&mut socket, "action_result").await;
    assert_eq!(result["status"], 500, "{result}");
    assert_eq!(result["error"]["code"], "plugin_fault");
    let state = app.state.game.state(user.player_id).await.unwrap();
    assert_eq!(state.player.version, version);
    assert!(!state.items.contains_key("gem"));

    // Still serving after all of that.
    send(&mut socket, &json!({"type": "ping"})).await;
    next_of_type(&mut socket, "pong").await;
}

async fn events_of_other_players_actions_reach_the_socket(backend: Backend) {
    let app = TestApp::start(backend).await;
    let watcher = register(&app).await;
    let actor = register(&app).await;
    let mut socket = connect(&app, &watcher).await;
    // Make sure the subscriptions are in place: a round trip through the session.
    send(&mut socket, &json!({"type": "ping"})).await;
    next_of_type(&mut socket, "pong").await;

    let resp = app
        .http
        .post(app.url("/api/v1/actions/probe/shout"))
        .bearer_auth(&actor.token)
        .json(&json!({"n": 42}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let event = next_of_type(&mut socket, "event").await;
    assert_eq!(event["event"]["topic"], "shout_all", "{event}");
    assert_eq!(event["event"]["scope"], "global");
    assert_eq!(event["event"]["player_id"], actor.player_id);
    assert_eq!(event["event"]["data"], 42);

    // The watcher's own action: its player event and the global one.
    send(
        &mut socket,
        &json!({"type": "action", "id": 1, "plugin": "probe", "action": "shout", "params": {"n": 3}}),
    )
    .await;
    let mut topics = Vec::new();
    while topics.len() < 2 {
        let e = next_of_type(&mut socket, "event").await;
        topics.push(e["event"]["topic"].as_str().unwrap().to_owned());
    }
    topics.sort();
    assert_eq!(topics, ["shout", "shout_all"]);
}

async fn heartbeat_and_unknown_messages(backend: Backend) {
    let app = TestApp::start(backend).await;
    let user = register(&app).await;
    let mut socket = connect(&app, &user).await;
    // The online count comes first, once the host knows it.
    let presence = next_of_type(&mut socket, "presence").await;
    assert!(presence["online"].is_u64(), "{presence}");

    send(&mut socket, &json!({"type": "ping"})).await;
    next_of_type(&mut socket, "pong").await;
    for (text, id) in [
        (r#"{"type":"dance","id":9}"#.to_owned(), json!(9)),
        ("not json".to_owned(), Value::Null),
        (r#"{"type":"action","id":"x"}"#.to_owned(), json!("x")),
    ] {
        socket.send(Message::text(text.clone())).await.unwrap();
        let error = next_of_type(&mut socket, "error").await;
        assert_eq!(error["error"]["code"], "unknown_message", "{text}: {error}");
        assert_eq!(error["id"], id, "{text}: {error}");
    }
    socket.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    let error = next_of_type(&mut socket, "error").await;
    assert_eq!(error["error"]["code"], "unsupported_frame");
    send(&mut socket, &json!({"type": "ping"})).await;
    next_of_type(&mut socket, "pong").await;

    // The connection is counted while open.
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("cauldron_ws_connections 1"), "{metrics}");
}

async fn plugin_reload_is_announced(backend: Backend) {
    let app = TestApp::start_with(backend, &[("ADMIN_TOKEN", "ws-test-admin-token-0123456789")]).await;
    let user = register(&app).await;
    let mut socket = connect(&app, &user).await;
    send(&mut socket, &json!({"type": "ping"})).await;
    next_of_type(&mut socket, "pong").await;

    let wasm = std::fs::read(
        std::path::PathBuf::from(std::env::var_os("CAULDRON_FIXTURES_DIR").unwrap()).join("probe_v2.wasm"),
    )
    .unwrap();
    let resp = app
        .http
        .post(app.url("/api/v1/admin/plugins/probe"))
        .bearer_auth("ws-test-admin-token-0123456789")
        .body(wasm)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let notice = next_of_type(&mut socket, "plugin_reloaded").await;
    assert_eq!(notice["name"], "probe");
    assert_eq!(notice["version"], "0.2.0");

    // Unloading is announced by name too, and the plugin's actions are then unknown.
    let resp = app
        .http
        .delete(app.url("/api/v1/admin/plugins/probe"))
        .bearer_auth("ws-test-admin-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "{}", resp.text().await.unwrap());
    let notice = next_of_type(&mut socket, "plugin_unloaded").await;
    assert_eq!(notice, json!({"type": "plugin_unloaded", "name": "probe"}));
    send(
        &mut socket,
        &json!({"type": "action", "id": "after", "plugin": "probe", "action": "echo"}),
    )
    .await;
    let result = next_of_type(&mut socket, "action_result").await;
    assert_eq!(result["id"], "after");
    assert_eq!(result["status"], 404);
    assert_eq!(result["error"]["code"], "unknown_plugin", "{result}");
}

async fn a_client_that_never_reads_is_disconnected(backend: Backend) {
    let app = TestApp::start(backend).await;
    let user = register(&app).await;
    // A small receive window, so the host's writes stall early.
    let addr = app.base.trim_start_matches("http://").parse().unwrap();
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let stream = tcp.connect(addr).await.unwrap();
    let (mut socket, _) = tokio_tungstenite::client_async(
        ws_url(&app, &format!("?token={}", user.token)),
        MaybeTlsStream::Plain(stream),
    )
    .await
    .unwrap();
    send(&mut socket, &json!({"type": "ping"})).await;
    next_of_type(&mut socket, "pong").await;

    // Push far more than the socket buffers and the bounded queue hold; the client reads nothing.
    let bus = &app.state.services.bus;
    let payload = Bytes::from(format!(
        r#"{{"topic":"flood","data":"{}"}}"#,
        "x".repeat(64 * 1024)
    ));
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut pushed = 0;
    loop {
        let metrics = app.state.metrics.render();
        if metrics.contains(r#"cauldron_ws_disconnects_total{reason="slow_client"} 1"#) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not disconnected after {pushed} events"
        );
        for _ in 0..32 {
            bus.publish(&Channel::Player(user.player_id), payload.clone())
                .await;
            pushed += 1;
        }
        tokio::task::yield_now().await;
    }
    assert!(app.state.metrics.render().contains("cauldron_ws_connections 0"));
    // Now read: whatever was in flight, then the close with its reason (if the host could still
    // get it out) or the end of the stream. Either way it ends, and promptly.
    let ended = tokio::time::timeout(DEADLINE, async {
        let mut close = None;
        while let Some(Ok(msg)) = socket.next().await {
            if let Message::Close(frame) = msg {
                close = frame;
            }
        }
        close
    })
    .await
    .expect("the socket ends");
    if let Some(frame) = ended {
        assert_eq!(frame.code, CloseCode::Policy);
        assert!(frame.reason.contains("slow client"), "{}", frame.reason);
    }
}

async fn shutdown_closes_sockets_with_a_reason(backend: Backend) {
    let mut app = TestApp::start(backend).await;
    let user = register(&app).await;
    let mut socket = connect(&app, &user).await;
    send(&mut socket, &json!({"type": "ping"})).await;
    next_of_type(&mut socket, "pong").await;
    let stopping = tokio::spawn(async move {
        app.stop().await;
        app
    });
    let (code, reason) = close_of(&mut socket).await;
    assert_eq!(code, CloseCode::Away);
    assert_eq!(reason, "server shutting down");
    let app = tokio::time::timeout(DEADLINE, stopping)
        .await
        .expect("the server stops within the deadline")
        .unwrap();
    assert_eq!(app.state.shutdown.active(), 0);
}

/// `GET /api/v1/online/players`, polled until `want` holds for it (bounded by [`DEADLINE`]).
async fn online_players_until(app: &TestApp, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let body: Value = app
            .http
            .get(app.url("/api/v1/online/players"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if want(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "online list never matched: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn the_online_list_shows_display_names_and_since_when(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (token, player_id, username) = crate::common::cluster::register_at(&app.base).await;
    let name = format!("在{:04x}", crate::common::random_u64() as u16);
    let resp = app
        .http
        .post(app.url("/api/v1/player/name"))
        .bearer_auth(&token)
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let before_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let user = User { token, player_id };
    let mut socket = connect(&app, &user).await;
    let listed = |v: &Value| {
        v["players"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["player_id"] == player_id))
    };
    let body = online_players_until(&app, listed).await;
    let me = body["players"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["player_id"] == player_id)
        .unwrap();
    assert_eq!(me["name"], name.as_str(), "{body}");
    let since = me["since_ms"].as_i64().unwrap();
    // Came online when the socket opened (the Redis clock may differ from ours by a little).
    assert!(
        (since - before_ms).abs() < 60_000,
        "since {since}, connected at {before_ms}"
    );
    assert!(body["count"].as_u64().unwrap() >= 1);
    assert!(
        !body.to_string().contains(&username),
        "a login name is shown: {body}"
    );

    // Closing the socket takes the player off the list.
    socket.close(None).await.unwrap();
    online_players_until(&app, |v| !listed(v)).await;
}

/// Pets whose draws are always legendary, so every draw is announced to everyone.
fn only_legendary_pets(plugins: &std::path::Path) {
    crate::common::edit_content(
        plugins,
        "pet/pets.toml",
        &[
            ("odds = 80.0", "odds = 0.0"),
            ("odds = 16.5", "odds = 0.0"),
            ("odds = 3.2", "odds = 0.0"),
            ("odds = 0.26", "odds = 0.0"),
            ("odds = 0.03", "odds = 100.0"),
            ("odds = 0.01", "odds = 0.0"),
        ],
    );
}

async fn announcements_carry_the_display_name(backend: Backend) {
    let app = TestApp::start_prepared(backend, &[], only_legendary_pets).await;
    let watcher = register(&app).await;
    let (token, player_id, username) = crate::common::cluster::register_at(&app.base).await;
    let post = |path: &str, body: Value| {
        app.http
            .post(app.url(path))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let name = format!("宠{:04x}", crate::common::random_u64() as u16);
    assert_eq!(
        post("/api/v1/player/name", json!({"name": name}))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        post("/api/v1/actions/cultivation/checkin", json!({}))
            .await
            .unwrap()
            .status(),
        200
    );
    let mut socket = connect(&app, &watcher).await;
    send(&mut socket, &json!({"type": "ping"})).await;
    next_of_type(&mut socket, "pong").await;

    let resp = post("/api/v1/actions/pet/draw", json!({"count": 1}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let event = next_where(&mut socket, |v| {
        v["type"] == "event" && v["event"]["topic"] == "rare_pet"
    })
    .await;
    assert_eq!(event["event"]["player_id"], player_id, "{event}");
    assert_eq!(event["event"]["data"]["player"], name.as_str(), "{event}");
    assert!(
        !event.to_string().contains(&username),
        "a login name is announced: {event}"
    );
}
