//! Pub/sub: per-player and global channels for WebSocket fan-out, a `plugins` channel for plugin
//! rollout announcements and a `revocations` channel for logouts; over Redis (every node) or
//! in-process (this node).
//!
//! # Layout
//! - this file: [`Bus`], [`Channel`], [`Subscription`], the local fan-out hub and [`InProcessBus`].
//! - [`redis_bus`]: [`RedisBus`], which bridges the local hub to Redis over one shared connection.
//!
//! Both implementations fan out through the same hub: a map of lazily created tokio `broadcast`
//! senders, one per channel with local subscribers, dropped when its last subscriber goes. A subscriber
//! that falls more than [`CHANNEL_CAPACITY`] messages behind skips the ones it missed (counted in
//! [`Subscription::missed`]) rather than blocking the publisher or the other subscribers: clients
//! re-read state after a gap, events are notifications, not the record.
//!
//! Publishing delivers to this node's subscribers directly, never waiting on Redis; Redis carries the
//! message to the other nodes. So while Redis is down, events still reach this node's sockets.

pub mod redis_bus;

pub use redis_bus::RedisBus;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::sync::{broadcast, mpsc, oneshot};

/// Messages a channel buffers for its slowest local subscriber before that one starts missing some.
pub const CHANNEL_CAPACITY: usize = 256;

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Channel {
    /// One player's sockets, on whichever node they are connected (`player:{id}`).
    Player(i64),
    /// Every connected player (`global`).
    Global,
    /// Plugin rollout announcements between hosts (`plugins`).
    Plugins,
    /// Tokens revoked by a logout, for every host's in-memory list (`revocations`).
    Revocations,
}

impl Channel {
    /// The channel's name on the wire (before the deployment's key prefix).
    pub fn name(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Player(id) => write!(f, "player:{id}"),
            Self::Global => f.write_str("global"),
            Self::Plugins => f.write_str("plugins"),
            Self::Revocations => f.write_str("revocations"),
        }
    }
}

/// What a publish reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Local subscriptions the message was handed to.
    pub local: usize,
    /// Whether Redis accepted it for the other nodes (always `false` in-process).
    pub remote: bool,
}

/// Publish/subscribe. Neither method fails: without Redis a message reaches this node only.
#[async_trait]
pub trait Bus: Send + Sync + fmt::Debug {
    /// Sends `payload` to every subscriber of `channel`: on this node at once, on other nodes through
    /// Redis when it is up.
    async fn publish(&self, channel: &Channel, payload: Bytes) -> Published;

    /// Subscribes to `channel`. With Redis up, messages published on other nodes after this returns
    /// are received; with Redis down, the subscription is registered with Redis on reconnect.
    async fn subscribe(&self, channel: &Channel) -> Subscription;
}

/// A stream of one channel's messages. Dropping it unsubscribes.
pub struct Subscription {
    channel: Channel,
    key: String,
    /// `Some` until drop, which takes it under the hub lock (see `Drop`).
    rx: Option<broadcast::Receiver<Bytes>>,
    hub: Arc<LocalHub>,
    missed: u64,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.channel)
            .field("missed", &self.missed)
            .finish()
    }
}

impl Subscription {
    /// The channel subscribed to.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// The next message. Messages missed through lagging are skipped. `None` would mean the channel
    /// closed, which cannot happen while this subscription holds it; it is kept so callers' loops end
    /// cleanly should that change.
    pub async fn recv(&mut self) -> Option<Bytes> {
        let rx = self.rx.as_mut()?;
        loop {
            match rx.recv().await {
                Ok(payload) => return Some(payload),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    self.missed += n;
                    tracing::debug!(channel = %self.channel, missed = n, "slow subscriber skipped messages");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Messages this subscription skipped because it lagged.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// The messages as a stream, for merging a connection's channels (e.g. in a `StreamMap`).
    pub fn into_stream(self) -> BoxStream<'static, Bytes> {
        stream::unfold(self, |mut sub| async move { sub.recv().await.map(|m| (m, sub)) }).boxed()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.release(&self.key, self.rx.take());
    }
}

/// Told by the hub to the Redis bridge, in the order the hub's lock saw them, so a subscribe that
/// follows an unsubscribe of the same channel is never overtaken by it.
#[derive(Debug)]
pub(crate) enum HubEvent {
    /// A channel got its first local subscriber; `ack` once Redis confirmed (or cannot be asked).
    Subscribe {
        /// The channel's full name.
        key: String,
        /// Answered when done.
        ack: oneshot::Sender<()>,
    },
    /// A channel lost its last local subscriber.
    Emptied(String),
}

/// The local fan-out: one `broadcast` sender per channel that has local subscribers.
#[derive(Debug, Default)]
pub(crate) struct LocalHub {
    senders: Mutex<HashMap<String, broadcast::Sender<Bytes>>>,
    /// Where the Redis bridge listens; `None` in-process.
    events: Option<mpsc::UnboundedSender<HubEvent>>,
}

impl LocalHub {
    pub(crate) fn new(events: Option<mpsc::UnboundedSender<HubEvent>>) -> Self {
        Self {
            senders: Mutex::new(HashMap::new()),
            events,
        }
    }

    /// A subscription to `key`, and the bridge's acknowledgement to wait for if the channel is new.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        channel: &Channel,
        key: String,
    ) -> (Subscription, Option<oneshot::Receiver<()>>) {
        let mut senders = self.senders.lock().unwrap_or_else(PoisonError::into_inner);
        let mut ack = None;
        let rx = match senders.get(&key) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = broadcast::channel(CHANNEL_CAPACITY);
                senders.insert(key.clone(), tx);
                if let Some(events) = &self.events {
                    let (ack_tx, ack_rx) = oneshot::channel();
                    // Sent under the lock: see `HubEvent`. A closed bridge just means no ack.
                    if events
                        .send(HubEvent::Subscribe {
                            key: key.clone(),
                            ack: ack_tx,
                        })
                        .is_ok()
                    {
                        ack = Some(ack_rx);
                    }
                }
                rx
            }
        };
        drop(senders);
        let sub = Subscription {
            channel: channel.clone(),
            key,
            rx: Some(rx),
            hub: Arc::clone(self),
            missed: 0,
        };
        (sub, ack)
    }

    /// Hands `payload` to the local subscribers of `key`; returns how many.
    pub(crate) fn deliver(&self, key: &str, payload: Bytes) -> usize {
        let senders = self.senders.lock().unwrap_or_else(PoisonError::into_inner);
        senders.get(key).and_then(|tx| tx.send(payload).ok()).unwrap_or(0)
    }

    /// Whether `key` has local subscribers.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.senders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(key)
    }

    /// Every channel with local subscribers.
    pub(crate) fn keys(&self) -> Vec<String> {
        self.senders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// Drops a subscription's receiver under the lock, and the channel with it if it was the last, so
    /// the count is exact even when subscriptions of one channel drop on several threads at once.
    fn release(&self, key: &str, rx: Option<broadcast::Receiver<Bytes>>) {
        let mut senders = self.senders.lock().unwrap_or_else(PoisonError::into_inner);
        drop(rx);
        if senders.get(key).is_some_and(|tx| tx.receiver_count() == 0) {
            senders.remove(key);
            if let Some(events) = &self.events {
                // A closed bridge has nothing to unsubscribe.
                let _ = events.send(HubEvent::Emptied(key.to_owned()));
            }
        }
    }
}

/// The bus of a single node.
#[derive(Debug, Clone)]
pub struct InProcessBus {
    hub: Arc<LocalHub>,
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcessBus {
    /// A bus with no channels yet.
    pub fn new() -> Self {
        Self {
            hub: Arc::new(LocalHub::new(None)),
        }
    }
}

#[async_trait]
impl Bus for InProcessBus {
    async fn publish(&self, channel: &Channel, payload: Bytes) -> Published {
        Published {
            local: self.hub.deliver(&channel.name(), payload),
            remote: false,
        }
    }

    async fn subscribe(&self, channel: &Channel) -> Subscription {
        self.hub.subscribe(channel, channel.name()).0
    }
}
