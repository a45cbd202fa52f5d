//! `GET /ws`: the live connection of a player's client.
//!
//! # Layout
//! - this file: the upgrade handler (authentication, socket buffer sizes), [`WsHub`] (what every
//!   session on this host shares: the online count), the presence poller, and [`AppDispatch`] (how a
//!   session reaches the game).
//! - [`protocol`]: the messages, one enum each way.
//! - [`session`]: one session's tasks and its end.
//!
//! # Authentication
//! The token comes in `?token=` (browsers cannot set headers on a WebSocket) or an
//! `Authorization: Bearer` header. A missing or bad token still completes the upgrade, then closes
//! at once with code 4401 and the reason, so browser clients can show why (a refused upgrade is an
//! opaque error to them).
//!
//! # Memory
//! An idle session is a socket, three small tasks, a bounded queue and three channel receivers
//! (about 7.5 KiB of host RSS at 15,000 sockets; docs/benchmarks.md). The read buffer is [`READ_BUFFER`] (tungstenite's
//! default is 128 KiB: client messages are small, and a larger one just grows it); writes are flushed
//! at once (write buffer 0), and client messages are capped at [`MAX_MESSAGE`].

pub mod protocol;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::http::HeaderMap;
use axum::http::header;
use axum::response::Response;
use axum::routing::get;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use serde::Deserialize;
use tokio::sync::watch;

use self::protocol::{ActionMsg, ServerMsg};
use self::session::{CLOSE_UNAUTHORIZED, Dispatch, Feeds, PRESENCE_TTL, SessionConfig};
use super::ApiError;
use super::extract::{AppQuery, Upgrade, bearer, check_idempotency_key};
use crate::auth::Identity;
use crate::bus::Channel;
use crate::game::ActionRequest;
use crate::state::AppState;

/// Socket read buffer per connection.
pub const READ_BUFFER: usize = 1024;
/// Largest client message (frame or reassembled message).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Most bytes buffered for writing to one socket before a write waits (tungstenite's limit; the
/// outbound queue bounds what waits behind it).
pub const MAX_WRITE_BUFFER: usize = 256 * 1024;
/// How often this host re-reads the online count for its sessions.
pub const PRESENCE_POLL: Duration = Duration::from_secs(5);

/// What the sessions on one host share.
#[derive(Debug)]
pub struct WsHub {
    online: watch::Sender<Option<u64>>,
}

impl Default for WsHub {
    fn default() -> Self {
        Self::new()
    }
}

impl WsHub {
    /// Nothing known yet.
    pub fn new() -> Self {
        Self {
            online: watch::channel(None).0,
        }
    }

    /// Publish a fresh online count; sessions are told only when it changed.
    pub fn set_online(&self, count: u64) {
        self.online.send_if_modified(|c| {
            let changed = *c != Some(count);
            *c = Some(count);
            changed
        });
    }
}

/// The WebSocket route (not in the OpenAPI document, which describes HTTP only).
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/ws", get(upgrade))
}

/// `?token=`.
#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn upgrade(
    State(state): State<AppState>,
    AppQuery(query): AppQuery<TokenQuery>,
    headers: HeaderMap,
    Upgrade(ws): Upgrade,
) -> Response {
    let token = query.token.filter(|t| !t.is_empty()).or_else(|| {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(bearer)
            .map(str::to_owned)
    });
    let identity = match token {
        None => Err(ApiError::Unauthorized(
            "log in first: pass the token as ?token= or an Authorization header".to_owned(),
        )),
        Some(t) => state.auth.authenticate(&t).await,
    };
    let ws = ws
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE);
    match identity {
        Ok(who) => ws.on_upgrade(move |socket| connected(state, who, socket)),
        Err(err) => {
            let reason = err.to_string();
            let metrics = Arc::clone(&state.metrics);
            ws.on_upgrade(move |mut socket| async move {
                metrics.inc("cauldron_ws_disconnects_total", &[("reason", "unauthorized")]);
                let frame = CloseFrame {
                    code: CLOSE_UNAUTHORIZED,
                    reason: Utf8Bytes::from(close_reason(&format!("unauthorized: {reason}"))),
                };
                let _ =
                    tokio::time::timeout(session::CLOSE_TIMEOUT, socket.send(Message::Close(Some(frame))))
                        .await;
            })
        }
    }
}

/// A close reason fits in 123 bytes; cut at a character boundary.
fn close_reason(text: &str) -> String {
    let mut end = text.len().min(123);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Counts the connection in the gauge while it lives.
struct Connected {
    metrics: Arc<crate::metrics::Metrics>,
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.metrics.gauge_add("cauldron_ws_connections", &[], -1.0);
    }
}

/// One authenticated socket, from upgrade to close.
async fn connected(state: AppState, who: Identity, socket: WebSocket) {
    let _guard = state.shutdown.guard();
    state.metrics.gauge_add("cauldron_ws_connections", &[], 1.0);
    let connected = Connected {
        metrics: Arc::clone(&state.metrics),
    };
    let player_id = who.player_id;
    let bus = &state.services.bus;
    let mine = bus.subscribe(&Channel::Player(player_id)).await;
    let global = bus.subscribe(&Channel::Global).await;
    let feeds = Feeds {
        events: futures_util::stream::select(mine.into_stream(), global.into_stream()).boxed(),
        registry: state.registry.subscribe(),
        online: state.ws.online.subscribe(),
        shutdown: state.shutdown.wait().boxed(),
    };
    let config = SessionConfig {
        shutdown_grace: state.config.shutdown_timeout,
        ..SessionConfig::default()
    };
    let dispatch = Arc::new(AppDispatch {
        state: state.clone(),
        player_id,
    });
    let (sink, stream) = socket.split();
    tracing::debug!(player_id, "websocket connected");
    let end = session::run(sink, stream, dispatch, feeds, config).await;
    // Out of the gauge before the disconnect is counted, so anyone who sees the count also sees
    // the gauge without this socket.
    drop(connected);
    tracing::debug!(player_id, reason = end.label(), detail = ?end, "websocket closed");
    state
        .metrics
        .inc("cauldron_ws_disconnects_total", &[("reason", end.label())]);
    // Another socket of the same player renews presence on its next ping.
    if let Err(e) = state.services.presence.mark_offline(player_id).await {
        tracing::debug!(player_id, error = %e, "presence: could not mark offline");
    }
}

/// How a session reaches the game: the same pipeline and rate limits as `POST /api/v1/actions` (a
/// query action draws on the query bucket and writes nothing, as there).
pub struct AppDispatch {
    state: AppState,
    player_id: i64,
}

impl Dispatch for AppDispatch {
    fn action(&self, msg: ActionMsg) -> BoxFuture<'static, ServerMsg> {
        let state = self.state.clone();
        let player_id = self.player_id;
        async move {
            let ActionMsg {
                id,
                plugin,
                action,
                params,
                idempotency_key,
            } = msg;
            let outcome = async {
                let idempotency_key = idempotency_key
                    .as_deref()
                    .map(check_idempotency_key)
                    .transpose()?;
                super::rate_limit_action(
                    &state.game,
                    &state.services,
                    &state.config,
                    player_id,
                    &plugin,
                    &action,
                )
                .await?;
                let reply = state
                    .game
                    .execute(ActionRequest {
                        player_id,
                        plugin,
                        action,
                        params,
                        idempotency_key,
                    })
                    .await?;
                Ok::<_, ApiError>(reply)
            }
            .await;
            if let Err(err) = &outcome {
                if err.status().is_server_error() {
                    tracing::error!(player_id, code = err.code(), error = %err, "websocket action failed");
                } else {
                    tracing::debug!(player_id, code = err.code(), error = %err, "websocket action refused");
                }
            }
            ServerMsg::action_result(id, outcome)
        }
        .boxed()
    }

    fn heartbeat(&self) -> BoxFuture<'static, ()> {
        let presence = Arc::clone(&self.state.services.presence);
        let player_id = self.player_id;
        async move {
            if let Err(e) = presence.heartbeat(player_id, PRESENCE_TTL).await {
                tracing::debug!(player_id, error = %e, "presence heartbeat failed");
            }
        }
        .boxed()
    }
}

/// Re-read the online count every [`PRESENCE_POLL`] and hand it to this host's sessions (which are
/// told only when it changed). Runs until `state.shutdown` triggers.
pub async fn poll_presence(state: AppState) {
    let mut every = tokio::time::interval(PRESENCE_POLL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = state.shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = every.tick() => {}
        }
        match state.services.presence.count_online().await {
            Ok(n) => state.ws.set_online(n),
            Err(e) => tracing::debug!(error = %e, "presence: cannot count online players"),
        }
    }
}
