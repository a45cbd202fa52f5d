//! One WebSocket session: a send task draining a bounded queue, a receive task parsing and
//! dispatching, and a supervisor `select!`ing over both, the feeds (bus events, registry changes,
//! presence), a ping interval (which also checks the idle timer and beats presence) and the shutdown
//! signal. Written over any `Sink`/`Stream` of [`Message`]s so tests can drive it with channels.
//!
//! How a session ends, and what the client sees:
//! - **client closed / gone**: nothing more is sent.
//! - **idle** (nothing received for [`SessionConfig::idle_timeout`]): close 1001 `idle timeout`.
//! - **shutdown**: reading stops, an action in flight finishes and its result is sent (bounded by
//!   [`SessionConfig::shutdown_grace`]), then close 1001 `server shutting down`.
//! - **slow client** (the outbound queue is full): the send task stops what it is doing and tries,
//!   for [`SessionConfig::close_timeout`], to send close 1008 `slow client: outbound queue full`.
//!   Memory never grows: the queue holds at most [`SessionConfig::queue`] messages.
//! - **protocol error** (a read error, an oversized frame): close 1002 where it can still be sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use bytes::Bytes;
use cauldron_runtime::RegistryEvent;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use super::protocol::{ActionMsg, ClientMsg, ServerMsg, event_text};
use crate::api::error::ErrorInfo;

/// How often the server pings the client (and checks the idle timer, and renews presence).
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// A session that receives nothing (no message, no pong) for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Messages queued for one client before it counts as too slow and is disconnected.
pub const OUTBOUND_QUEUE: usize = 64;
/// How long the server tries to deliver a close frame.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long presence lasts without a renewal: three missed pings.
pub const PRESENCE_TTL: Duration = Duration::from_secs(60);

/// Close code: normal closure.
pub const CLOSE_NORMAL: u16 = 1000;
/// Close code: going away (idle, shutdown).
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code: protocol error.
pub const CLOSE_PROTOCOL: u16 = 1002;
/// Close code: policy violation (slow client).
pub const CLOSE_POLICY: u16 = 1008;
/// Close code (application range): not authenticated. Like HTTP 401.
pub const CLOSE_UNAUTHORIZED: u16 = 4401;

/// A session's knobs; [`Default`] is the named consts.
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    /// See [`PING_INTERVAL`].
    pub ping_interval: Duration,
    /// See [`IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// See [`OUTBOUND_QUEUE`].
    pub queue: usize,
    /// See [`CLOSE_TIMEOUT`].
    pub close_timeout: Duration,
    /// How long an action in flight may take to finish at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            ping_interval: PING_INTERVAL,
            idle_timeout: IDLE_TIMEOUT,
            queue: OUTBOUND_QUEUE,
            close_timeout: CLOSE_TIMEOUT,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The client sent a close frame.
    ClientClosed,
    /// The connection dropped, or a write failed.
    ClientGone,
    /// Nothing received for the idle timeout.
    Idle,
    /// The server is shutting down.
    Shutdown,
    /// The outbound queue overflowed.
    SlowClient,
    /// A read failed (bad frame, too large).
    Protocol(String),
}

impl End {
    /// The label in `cauldron_ws_disconnects_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::ClientClosed | Self::ClientGone => "client",
            Self::Idle => "idle",
            Self::Shutdown => "shutdown",
            Self::SlowClient => "slow_client",
            Self::Protocol(_) => "error",
        }
    }

    /// The close frame the server sends, if any.
    pub fn close_frame(&self) -> Option<CloseFrame> {
        let (code, reason) = match self {
            Self::ClientClosed => (CLOSE_NORMAL, "bye"),
            Self::ClientGone => return None,
            Self::Idle => (CLOSE_GOING_AWAY, "idle timeout"),
            Self::Shutdown => (CLOSE_GOING_AWAY, "server shutting down"),
            Self::SlowClient => (CLOSE_POLICY, "slow client: outbound queue full"),
            Self::Protocol(_) => (CLOSE_PROTOCOL, "protocol error"),
        };
        Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })
    }
}

/// What a session asks of the application.
pub trait Dispatch: Send + Sync + 'static {
    /// Run an action; the answer is an `action_result`.
    fn action(&self, msg: ActionMsg) -> BoxFuture<'static, ServerMsg>;
    /// Renew this player's presence (called on connect and on every ping tick).
    fn heartbeat(&self) -> BoxFuture<'static, ()>;
}

/// What a session forwards to its client.
pub struct Feeds {
    /// Bus payloads (JSON `EventOut`s) for this player and everyone.
    pub events: BoxStream<'static, Bytes>,
    /// Registry changes (plugin reloaded or unloaded).
    pub registry: broadcast::Receiver<RegistryEvent>,
    /// The online count, `None` until known.
    pub online: watch::Receiver<Option<u64>>,
    /// Completes when the server shuts down.
    pub shutdown: BoxFuture<'static, ()>,
}

impl std::fmt::Debug for Feeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeds").finish_non_exhaustive()
    }
}

/// The queue producers push into; full means the client is too slow. Messages travel boxed: the
/// channel allocates its first block of 32 slots up front, and 32 pointers cost an idle session far
/// less than 32 `Message`s.
#[derive(Clone)]
struct Outbox {
    tx: mpsc::Sender<Box<Message>>,
}

/// The outbound queue is full.
struct Overflow;

impl Outbox {
    fn push(&self, msg: Message) -> Result<(), Overflow> {
        match self.tx.try_send(Box::new(msg)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(Overflow),
            // The send task is gone; the supervisor learns that from its handle.
            Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
        }
    }

    fn push_msg(&self, msg: &ServerMsg) -> Result<(), Overflow> {
        self.push(Message::Text(msg.to_text().into()))
    }
}

/// Milliseconds since `epoch`, for the idle timer.
fn ms_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Run one session to its end, which it returns. `sink` and `stream` are the two halves of the
/// socket.
pub async fn run<W, R, E>(
    sink: W,
    stream: R,
    dispatch: Arc<dyn Dispatch>,
    feeds: Feeds,
    config: SessionConfig,
) -> End
where
    W: Sink<Message> + Unpin + Send + 'static,
    W::Error: std::fmt::Display + Send,
    R: Stream<Item = Result<Message, E>> + Unpin + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let Feeds {
        mut events,
        mut registry,
        mut online,
        shutdown,
    } = feeds;
    let (tx, rx) = mpsc::channel(config.queue.max(1));
    let outbox = Outbox { tx };
    let (kill_tx, kill_rx) = oneshot::channel();
    let mut writer = tokio::spawn(write_loop(sink, rx, kill_rx, config.close_timeout));

    let epoch = Instant::now();
    let last_seen = Arc::new(AtomicU64::new(0));
    let stop_reading = Arc::new(Notify::new());
    let mut reader = tokio::spawn(read_loop(
        stream,
        outbox.clone(),
        Arc::clone(&dispatch),
        epoch,
        Arc::clone(&last_seen),
        Arc::clone(&stop_reading),
    ));

    let mut ping = tokio::time::interval(config.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = shutdown;
    let mut registry_open = true;
    let mut reader_done = false;
    let mut pushed = Ok(());
    if let Some(count) = *online.borrow_and_update() {
        pushed = outbox.push_msg(&ServerMsg::Presence { online: count });
    }

    let end = loop {
        if pushed.is_err() {
            break End::SlowClient;
        }
        tokio::select! {
            biased;
            () = &mut shutdown => break End::Shutdown,
            done = &mut reader => {
                reader_done = true;
                break done.unwrap_or(End::ClientGone);
            }
            _ = &mut writer => break End::ClientGone,
            _ = ping.tick() => {
                let idle_ms = ms_since(epoch).saturating_sub(last_seen.load(Ordering::Acquire));
                if Duration::from_millis(idle_ms) >= config.idle_timeout {
                    break End::Idle;
                }
                // Detached: a slow presence store must not stall this loop.
                tokio::spawn(dispatch.heartbeat());
                pushed = outbox.push(Message::Ping(Bytes::new()));
            }
            Some(payload) = events.next() => {
                if let Some(text) = event_text(&payload) {
                    pushed = outbox.push(Message::Text(text.into()));
                }
            }
            ev = registry.recv(), if registry_open => match ev {
                Ok(RegistryEvent::Published { name, version, .. }) => {
                    pushed = outbox.push_msg(&ServerMsg::PluginReloaded { name, version });
                }
                Ok(RegistryEvent::Unloaded { name }) => {
                    pushed = outbox.push_msg(&ServerMsg::PluginUnloaded { name });
                }
                Ok(RegistryEvent::Refused { .. }) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => registry_open = false,
            },
            Ok(()) = online.changed() => {
                if let Some(count) = *online.borrow_and_update() {
                    pushed = outbox.push_msg(&ServerMsg::Presence { online: count });
                }
            }
        }
    };

    // Wind down: first the reader (letting an action in flight finish at shutdown), then the close.
    if !reader_done {
        if end == End::Shutdown {
            stop_reading.notify_one();
            if tokio::time::timeout(config.shutdown_grace, &mut reader)
                .await
                .is_err()
            {
                reader.abort();
            }
        } else {
            reader.abort();
        }
    }
    if let Some(frame) = end.close_frame() {
        // Behind whatever is queued; a slow client (or one whose queue has no room left for the
        // close) gets it in place of what the send task is stuck on.
        let queued = end != End::SlowClient && outbox.push(Message::Close(Some(frame.clone()))).is_ok();
        if !queued {
            let _ = kill_tx.send(frame);
        }
    }
    drop(outbox);
    if tokio::time::timeout(config.close_timeout + Duration::from_millis(100), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    end
}

/// The receive task: parse, dispatch, answer. Ends on close, error, overflow, or `stop` (checked
/// only between messages, so an action in flight finishes).
async fn read_loop<R, E>(
    mut stream: R,
    outbox: Outbox,
    dispatch: Arc<dyn Dispatch>,
    epoch: Instant,
    last_seen: Arc<AtomicU64>,
    stop: Arc<Notify>,
) -> End
where
    R: Stream<Item = Result<Message, E>> + Unpin + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    loop {
        let frame = tokio::select! {
            biased;
            () = stop.notified() => return End::Shutdown,
            frame = stream.next() => frame,
        };
        last_seen.store(ms_since(epoch), Ordering::Release);
        let reply = match frame {
            None => return End::ClientGone,
            Some(Err(e)) => return End::Protocol(e.to_string()),
            Some(Ok(Message::Close(_))) => return End::ClientClosed,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Binary(_))) => ServerMsg::Error {
                id: None,
                error: ErrorInfo {
                    code: "unsupported_frame".to_owned(),
                    message: "send JSON text frames".to_owned(),
                },
            },
            Some(Ok(Message::Text(text))) => match ClientMsg::parse(text.as_str()) {
                ClientMsg::Ping => ServerMsg::Pong,
                // Boxed by the dispatcher: the pipeline's large future lives on the heap only while
                // an action runs, so an idle session stays small.
                ClientMsg::Action(msg) => dispatch.action(msg).await,
                ClientMsg::Unknown { id, reason } => ServerMsg::Error {
                    id,
                    error: ErrorInfo {
                        code: "unknown_message".to_owned(),
                        message: reason,
                    },
                },
            },
        };
        if outbox.push_msg(&reply).is_err() {
            return End::SlowClient;
        }
    }
}

/// The send task: drain the queue into the sink. On `kill`, stop whatever is being written and try
/// to send that close frame instead.
async fn write_loop<W>(
    mut sink: W,
    mut rx: mpsc::Receiver<Box<Message>>,
    mut kill: oneshot::Receiver<CloseFrame>,
    close_timeout: Duration,
) where
    W: Sink<Message> + Unpin + Send + 'static,
    W::Error: std::fmt::Display + Send,
{
    loop {
        let next = tokio::select! {
            biased;
            frame = &mut kill => {
                if let Ok(frame) = frame {
                    let _ = tokio::time::timeout(close_timeout, sink.send(Message::Close(Some(frame)))).await;
                }
                return;
            }
            msg = rx.recv() => msg,
        };
        let Some(msg) = next.map(|m| *m) else { break };
        let closing = matches!(msg, Message::Close(_));
        tokio::select! {
            biased;
            frame = &mut kill => {
                // The frame being written stays in the socket's buffer; the close goes after it.
                if let Ok(frame) = frame {
                    let _ = tokio::time::timeout(close_timeout, sink.send(Message::Close(Some(frame)))).await;
                }
                return;
            }
            sent = sink.send(msg) => {
                if let Err(e) = sent {
                    tracing::debug!(error = %e, "websocket write failed");
                    return;
                }
            }
        }
        if closing {
            break;
        }
    }
    let _ = tokio::time::timeout(close_timeout, sink.close()).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;

    use futures_util::FutureExt;

    type TestSink = Pin<Box<dyn Sink<Message, Error = String> + Send>>;
    type TestStream = BoxStream<'static, Result<Message, String>>;

    /// A sink into a channel (the "client" reads `rx`).
    fn sink(capacity: usize) -> (TestSink, mpsc::Receiver<Message>) {
        let (tx, rx) = mpsc::channel(capacity);
        let sink = futures_util::sink::unfold(tx, |tx, m: Message| async move {
            tx.send(m).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(tx)
        });
        (Box::pin(sink), rx)
    }

    /// A sink that never accepts anything: a client that never reads.
    fn stuck_sink() -> TestSink {
        Box::pin(futures_util::sink::unfold((), |(), _m: Message| {
            futures_util::future::pending::<Result<(), String>>()
        }))
    }

    /// A stream from a channel (the "client" writes into the sender).
    fn stream() -> (mpsc::Sender<Result<Message, String>>, TestStream) {
        let (tx, rx) = mpsc::channel(16);
        let stream =
            futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
        (tx, stream.boxed())
    }

    async fn close_of(rx: &mut mpsc::Receiver<Message>) -> CloseFrame {
        let mut close = None;
        while let Some(m) = rx.recv().await {
            if let Message::Close(f) = m {
                close = f;
            }
        }
        close.expect("close frame")
    }

    struct Echo;

    impl Dispatch for Echo {
        fn action(&self, msg: ActionMsg) -> BoxFuture<'static, ServerMsg> {
            async move {
                ServerMsg::Error {
                    id: Some(msg.id),
                    error: ErrorInfo {
                        code: "echo".into(),
                        message: msg.action,
                    },
                }
            }
            .boxed()
        }
        fn heartbeat(&self) -> BoxFuture<'static, ()> {
            async {}.boxed()
        }
    }

    fn text(m: &Message) -> serde_json::Value {
        match m {
            Message::Text(t) => serde_json::from_str(t.as_str()).expect("json"),
            other => panic!("not text: {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn answers_pings_and_unknown_messages_then_closes_idle() {
        let (out_tx, mut out_rx) = sink(16);
        let (in_tx, in_rx) = stream();
        let (_online_tx, online_rx) = watch::channel(None);
        let registry = broadcast::channel(4).1;
        let feeds = Feeds {
            events: futures_util::stream::pending().boxed(),
            registry,
            online: online_rx,
            shutdown: futures_util::future::pending().boxed(),
        };
        let session = tokio::spawn(run(
            out_tx,
            in_rx,
            Arc::new(Echo),
            feeds,
            SessionConfig::default(),
        ));
        in_tx
            .send(Ok(Message::Text(r#"{"type":"ping"}"#.into())))
            .await
            .expect("send");
        in_tx
            .send(Ok(Message::Text(r#"{"type":"nope","id":1}"#.into())))
            .await
            .expect("send");
        let mut got = Vec::new();
        while got.len() < 2 {
            let m = out_rx.recv().await.expect("message");
            if matches!(m, Message::Text(_)) {
                got.push(text(&m));
            }
        }
        assert_eq!(got[0]["type"], "pong");
        assert_eq!(got[1]["type"], "error");
        assert_eq!(got[1]["id"], 1);
        assert_eq!(got[1]["error"]["code"], "unknown_message");
        // No more input: after the idle timeout the session closes with a reason.
        let end = session.await.expect("session");
        assert_eq!(end, End::Idle);
        let close = close_of(&mut out_rx).await;
        assert_eq!(
            (close.code, close.reason.as_str()),
            (CLOSE_GOING_AWAY, "idle timeout")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_does_not_read_is_disconnected_when_the_queue_fills() {
        // A sink with room for nothing: every write blocks, as with a client that never reads.
        let out_tx = stuck_sink();
        let (_in_tx, in_rx) = stream();
        let (_online_tx, online_rx) = watch::channel(None);
        let events =
            futures_util::stream::iter((0..1000).map(|i| Bytes::from(format!(r#"{{"topic":"t","n":{i}}}"#))))
                .chain(futures_util::stream::pending())
                .boxed();
        let feeds = Feeds {
            events,
            registry: broadcast::channel(4).1,
            online: online_rx,
            shutdown: futures_util::future::pending().boxed(),
        };
        let config = SessionConfig {
            queue: 8,
            ..SessionConfig::default()
        };
        let end = run(out_tx, in_rx, Arc::new(Echo), feeds, config).await;
        assert_eq!(end, End::SlowClient);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_sends_a_close_frame() {
        let (out_tx, mut out_rx) = sink(16);
        let (_in_tx, in_rx) = stream();
        let (_online_tx, online_rx) = watch::channel(Some(3));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let feeds = Feeds {
            events: futures_util::stream::pending().boxed(),
            registry: broadcast::channel(4).1,
            online: online_rx,
            shutdown: async move {
                let _ = stop_rx.await;
            }
            .boxed(),
        };
        let session = tokio::spawn(run(
            out_tx,
            in_rx,
            Arc::new(Echo),
            feeds,
            SessionConfig::default(),
        ));
        let first = out_rx.recv().await.expect("presence");
        assert_eq!(text(&first), serde_json::json!({"type":"presence","online":3}));
        stop_tx.send(()).expect("stop");
        assert_eq!(session.await.expect("session"), End::Shutdown);
        let close = close_of(&mut out_rx).await;
        assert_eq!(close.code, CLOSE_GOING_AWAY);
        assert_eq!(close.reason.as_str(), "server shutting down");
    }
}
