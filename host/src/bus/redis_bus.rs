//! The bus across nodes: the local hub, bridged to Redis pub/sub.
//!
//! - **One subscriber connection per process.** A bridge task owns a dedicated Redis pub/sub
//!   connection, subscribes to exactly the channels that have local subscribers (one `SUBSCRIBE` when
//!   a channel gets its first, one `UNSUBSCRIBE` when it loses its last) and fans messages out through
//!   the hub. A thousand sockets on `global` cost one Redis subscription.
//! - **Reconnects by itself.** When the connection drops (or stops answering pings), the task
//!   reconnects with backoff and re-subscribes to every channel that has local subscribers.
//! - **Publishing never waits for the echo.** A publish hands the message to local subscribers at
//!   once and sends it to Redis wrapped in an envelope naming this node; the bridge drops its own
//!   node's messages when Redis echoes them. So local delivery does not depend on Redis, and local
//!   subscribers get each message exactly once.
//!
//! Envelope, version 1: byte `0xCA`, byte `1`, 16 bytes of node id, then the payload.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::PubSubSink;
use tokio::sync::mpsc;

use super::{Bus, Channel, HubEvent, LocalHub, Published, Subscription};
use crate::cache::RedisLink;
use crate::cache::link::{BACKOFF_MAX, BACKOFF_MIN, OP_TIMEOUT};

const ENVELOPE_MAGIC: u8 = 0xCA;
const ENVELOPE_VERSION: u8 = 1;
const NODE_ID_LEN: usize = 16;
const HEADER_LEN: usize = 2 + NODE_ID_LEN;
/// How often the bridge pings an idle pub/sub connection, to notice one that died silently.
const PING_EVERY: Duration = Duration::from_secs(5);

/// The bus shared by every node. See the module docs.
#[derive(Debug)]
pub struct RedisBus {
    hub: Arc<LocalHub>,
    link: Arc<RedisLink>,
    node: [u8; NODE_ID_LEN],
    connected: Arc<AtomicBool>,
}

impl RedisBus {
    /// Creates the bus and starts its bridge task, which connects in the background.
    pub(crate) fn start(link: Arc<RedisLink>) -> Self {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let hub = Arc::new(LocalHub::new(Some(events_tx)));
        let node = new_node_id();
        let connected = Arc::new(AtomicBool::new(false));
        let bridge = Bridge {
            hub: Arc::downgrade(&hub),
            link: Arc::clone(&link),
            node,
            connected: Arc::clone(&connected),
            events: events_rx,
        };
        tokio::spawn(bridge.run());
        Self {
            hub,
            link,
            node,
            connected,
        }
    }

    /// Whether the pub/sub connection is up and subscribed to every local channel.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, channel: &Channel, payload: Bytes) -> Published {
        let key = self.link.key(&channel.name());
        let local = self.hub.deliver(&key, payload.clone());
        let mut framed = Vec::with_capacity(HEADER_LEN + payload.len());
        framed.extend_from_slice(&[ENVELOPE_MAGIC, ENVELOPE_VERSION]);
        framed.extend_from_slice(&self.node);
        framed.extend_from_slice(&payload);
        let result = self
            .link
            .run(|mut conn| async move {
                redis::cmd("PUBLISH")
                    .arg(&key)
                    .arg(framed)
                    .query_async::<i64>(&mut conn)
                    .await
            })
            .await;
        if let Err(err) = &result {
            tracing::debug!(%channel, error = %err, "publish reached this node only");
        }
        Published {
            local,
            remote: result.is_ok(),
        }
    }

    async fn subscribe(&self, channel: &Channel) -> Subscription {
        let (sub, ack) = self.hub.subscribe(channel, self.link.key(&channel.name()));
        if let Some(ack) = ack {
            // Bounded: with Redis down the bridge acks at once, and it bounds its own SUBSCRIBE; this
            // is only a backstop. Either way the subscription is live locally and will be on Redis.
            let _ = tokio::time::timeout(OP_TIMEOUT * 2, ack).await;
        }
        sub
    }
}

/// The task that owns the pub/sub connection. It holds the hub weakly, so it ends when the bus and
/// all its subscriptions are gone (the hub then drops the event sender and `events` closes).
struct Bridge {
    hub: Weak<LocalHub>,
    link: Arc<RedisLink>,
    node: [u8; NODE_ID_LEN],
    connected: Arc<AtomicBool>,
    events: mpsc::UnboundedReceiver<HubEvent>,
}

/// Why the bridge left its connected loop.
enum Exit {
    /// The bus is gone.
    Shutdown,
    /// The connection failed; reconnect.
    Lost(String),
}

impl Bridge {
    async fn run(mut self) {
        let target = self.link.target().to_owned();
        let mut delay = BACKOFF_MIN;
        let mut lost_reason: Option<String> = None;
        loop {
            match self.connect().await {
                Ok((sink, stream, count)) => {
                    self.connected.store(true, Ordering::Release);
                    delay = BACKOFF_MIN;
                    match lost_reason.take() {
                        Some(_) => {
                            tracing::info!(redis = %target, channels = count, "pub/sub reconnected and re-subscribed")
                        }
                        None => tracing::debug!(redis = %target, channels = count, "pub/sub connected"),
                    }
                    let exit = self.serve(sink, stream).await;
                    self.connected.store(false, Ordering::Release);
                    match exit {
                        Exit::Shutdown => return,
                        Exit::Lost(reason) => {
                            tracing::warn!(
                                redis = %target, %reason,
                                "pub/sub connection lost: events reach this node's sockets only until it is back"
                            );
                            lost_reason = Some(reason);
                            continue;
                        }
                    }
                }
                Err(reason) => {
                    tracing::debug!(redis = %target, %reason, retry_in = ?delay, "pub/sub connect failed");
                    lost_reason.get_or_insert(reason);
                }
            }
            if !self.idle(delay).await {
                return;
            }
            delay = (delay * 2).min(BACKOFF_MAX);
        }
    }

    /// Opens the connection and subscribes to every channel with local subscribers.
    async fn connect(&self) -> Result<(PubSubSink, redis::aio::PubSubStream, usize), String> {
        let pubsub = match tokio::time::timeout(OP_TIMEOUT, self.link.client().get_async_pubsub()).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("no answer within {OP_TIMEOUT:?}")),
        };
        let (mut sink, stream) = pubsub.split();
        let keys = self.hub.upgrade().map(|h| h.keys()).unwrap_or_default();
        if !keys.is_empty() {
            timed(sink.subscribe(&keys)).await?;
        }
        Ok((sink, stream, keys.len()))
    }

    /// Waits `delay` before reconnecting, answering subscribe requests meanwhile (the reconnect will
    /// subscribe them). Returns `false` if the bus is gone.
    async fn idle(&mut self, delay: Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                event = self.events.recv() => match event {
                    None => return false,
                    Some(HubEvent::Subscribe { ack, .. }) => { let _ = ack.send(()); }
                    Some(HubEvent::Emptied(_)) => {}
                },
            }
        }
    }

    /// The connected loop: hub events, incoming messages, keep-alive pings.
    async fn serve(&mut self, mut sink: PubSubSink, mut stream: redis::aio::PubSubStream) -> Exit {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                event = self.events.recv() => match event {
                    None => return Exit::Shutdown,
                    Some(HubEvent::Subscribe { key, ack }) => {
                        let result = timed(sink.subscribe(&key)).await;
                        let _ = ack.send(());
                        if let Err(reason) = result {
                            return Exit::Lost(reason);
                        }
                    }
                    Some(HubEvent::Emptied(key)) => {
                        let still_empty = self.hub.upgrade().is_some_and(|h| !h.contains(&key));
                        if still_empty && let Err(reason) = timed(sink.unsubscribe(&key)).await {
                            return Exit::Lost(reason);
                        }
                    }
                },
                msg = stream.next() => match msg {
                    Some(msg) => self.deliver(msg.get_channel_name(), msg.get_payload_bytes()),
                    None => return Exit::Lost("connection closed".to_owned()),
                },
                _ = ping.tick() => {
                    if let Err(reason) = timed(sink.ping::<redis::Value>()).await {
                        return Exit::Lost(reason);
                    }
                }
            }
        }
    }

    fn deliver(&self, key: &str, framed: &[u8]) {
        let Some(hub) = self.hub.upgrade() else { return };
        match framed {
            [ENVELOPE_MAGIC, ENVELOPE_VERSION, rest @ ..] if rest.len() >= NODE_ID_LEN => {
                let (node, payload) = rest.split_at(NODE_ID_LEN);
                if node != self.node {
                    hub.deliver(key, Bytes::copy_from_slice(payload));
                }
            }
            _ => tracing::debug!(
                channel = key,
                len = framed.len(),
                "dropped a pub/sub message without our envelope"
            ),
        }
    }
}

/// Runs a pub/sub command within [`OP_TIMEOUT`], flattening both failures into a reason.
async fn timed<T>(fut: impl Future<Output = redis::RedisResult<T>>) -> Result<T, String> {
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {OP_TIMEOUT:?}")),
    }
}

/// A node id unique enough to tell our own echoes apart: two independently seeded std hashers
/// (std seeds them from the OS's randomness), mixed with the process id and the time.
fn new_node_id() -> [u8; NODE_ID_LEN] {
    let mut id = [0u8; NODE_ID_LEN];
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    for (i, half) in id.chunks_mut(8).enumerate() {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.write_usize(i);
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    id
}
