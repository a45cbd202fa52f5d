//! A cache of players' state blobs, so a read need not hit the database.
//!
//! # Versions keep the cache honest
//! Every entry carries the player version (the `players.version` column) its blob was built from, and
//! [`StateCache::invalidate`] names the version the player has just reached. Invalidation does not just
//! delete: it leaves a *tombstone* holding that version for [`TOMBSTONE_TTL`], and [`StateCache::set`]
//! refuses to write anything older than what the cache already holds. So the classic race (a reader
//! loads version 5 from the database, an action commits version 6 and invalidates, the reader then
//! caches version 5) cannot resurrect stale state, on this node or any other.
//!
//! # When an invalidation fails
//! With Redis down or slow, [`RedisStateCache::invalidate`] cannot reach Redis and the stale entry may
//! survive there (Redis may be fine and only our link broken). The cache then remembers the pending
//! invalidation (player and version) and, until it has replayed every pending one successfully, it
//! serves no reads from Redis (`get` misses) and writes nothing (`set` is a no-op). The replay runs on
//! the next cache call once Redis answers. If more than [`MAX_PENDING`] invalidations pile up, it
//! forgets them and instead deletes every state entry under our prefix when Redis is back.
//!
//! What this does not cover, and what bounds it: another node whose own link is fine may serve the
//! stale entry until its TTL runs out, and pending invalidations die with the process. Callers keep
//! state TTLs short, and the action pipeline never trusts cached state for writes: the apply
//! transaction is guarded by the player's version and reloads on a conflict (docs/architecture.md,
//! "One action").

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::Script;
use tokio::time::Instant;

use super::{RedisLink, ServiceError};

/// How long an invalidation's tombstone outlives it, refusing late writes of older state. It only has
/// to cover a reader's load-then-set window, which is one database read.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(60);

/// Pending invalidations remembered one by one before falling back to dropping every entry.
pub const MAX_PENDING: usize = 10_000;

/// A player's cached state and the version it was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedState {
    /// The player version the blob was built from.
    pub version: i64,
    /// The blob, opaque to the cache.
    pub bytes: Bytes,
}

/// A cache of players' state blobs. See the module docs for the version rules.
///
/// No method returns an error: a cache that cannot answer misses, and one that cannot write skips it.
#[async_trait]
pub trait StateCache: Send + Sync + std::fmt::Debug {
    /// The player's cached state, or `None` on a miss (also while the cache cannot be trusted).
    async fn get(&self, player: i64) -> Option<CachedState>;

    /// Caches `bytes`, the player's state at `version`, for `ttl`. Does nothing if the cache already
    /// holds a newer version, or a tombstone newer than `version`.
    async fn set(&self, player: i64, version: i64, bytes: Bytes, ttl: Duration);

    /// Called after every applied action: the player is now at `version`, so anything cached for an
    /// older version must never be served again.
    async fn invalidate(&self, player: i64, version: i64);
}

/// The cache for a single node: a map behind a short-lived lock.
#[derive(Debug, Default)]
pub struct InProcessStateCache {
    inner: Mutex<InProcessEntries>,
}

#[derive(Debug, Default)]
struct InProcessEntries {
    entries: HashMap<i64, Entry>,
    writes_since_sweep: usize,
}

#[derive(Debug)]
struct Entry {
    version: i64,
    /// `None` for a tombstone.
    bytes: Option<Bytes>,
    expires: Instant,
}

/// Writes between sweeps of expired entries, so the map does not grow with every player ever seen.
const SWEEP_EVERY: usize = 1024;

impl InProcessStateCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn write(&self, player: i64, version: i64, bytes: Option<Bytes>, ttl: Duration) {
        let now = Instant::now();
        let Ok(mut inner) = self.inner.lock() else { return };
        inner.writes_since_sweep += 1;
        if inner.writes_since_sweep >= SWEEP_EVERY {
            inner.writes_since_sweep = 0;
            inner.entries.retain(|_, e| e.expires > now);
        }
        if let Some(current) = inner.entries.get(&player)
            && current.expires > now
            && current.version > version
        {
            return;
        }
        inner.entries.insert(
            player,
            Entry {
                version,
                bytes,
                expires: now + ttl,
            },
        );
    }
}

#[async_trait]
impl StateCache for InProcessStateCache {
    async fn get(&self, player: i64) -> Option<CachedState> {
        let inner = self.inner.lock().ok()?;
        let entry = inner.entries.get(&player)?;
        if entry.expires <= Instant::now() {
            return None;
        }
        let bytes = entry.bytes.clone()?;
        Some(CachedState {
            version: entry.version,
            bytes,
        })
    }

    async fn set(&self, player: i64, version: i64, bytes: Bytes, ttl: Duration) {
        self.write(player, version, Some(bytes), ttl);
    }

    async fn invalidate(&self, player: i64, version: i64) {
        self.write(player, version, None, TOMBSTONE_TTL);
    }
}

/// Writes `ARGV[3]` at version `ARGV[1]` for `ARGV[2]` ms unless a newer version is held.
/// An entry is a hash: `v` the version, `d` the blob (absent in a tombstone).
static SET_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('HGET', KEYS[1], 'v')
if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
",
    )
});

/// Replaces the entry by a tombstone at version `ARGV[1]` for `ARGV[2]` ms, unless a newer version is
/// held (then that newer entry is already correct).
static INVALIDATE_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('HGET', KEYS[1], 'v')
if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
",
    )
});

/// The cache shared by every node, in Redis under `{prefix}state:{player}`.
#[derive(Debug)]
pub struct RedisStateCache {
    link: Arc<RedisLink>,
    pending: Mutex<Pending>,
    /// Held while replaying, so concurrent requests do not all replay the same list.
    replaying: tokio::sync::Mutex<()>,
}

/// Invalidations that did not reach Redis (see the module docs).
#[derive(Debug, Default)]
struct Pending {
    /// Player to the highest version an invalidation named.
    players: HashMap<i64, i64>,
    /// Set when `players` overflowed: drop every state entry instead.
    overflowed: bool,
    /// Bumped at each overflow, so a replay clears `overflowed` only if none happened meanwhile.
    overflow_epoch: u64,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.players.is_empty() && !self.overflowed
    }

    fn add(&mut self, player: i64, version: i64) {
        if self.overflowed {
            return;
        }
        if self.players.len() >= MAX_PENDING && !self.players.contains_key(&player) {
            self.players.clear();
            self.overflowed = true;
            self.overflow_epoch += 1;
            return;
        }
        let v = self.players.entry(player).or_insert(version);
        *v = (*v).max(version);
    }
}

impl RedisStateCache {
    pub(crate) fn new(link: Arc<RedisLink>) -> Self {
        Self {
            link,
            pending: Mutex::new(Pending::default()),
            replaying: tokio::sync::Mutex::new(()),
        }
    }

    fn key(&self, player: i64) -> String {
        self.link.key(&format!("state:{player}"))
    }

    /// How many invalidations are waiting to be replayed (`usize::MAX` after an overflow). While
    /// this is not zero the cache serves nothing.
    pub fn pending_invalidations(&self) -> usize {
        match self.pending.lock() {
            Ok(p) if p.overflowed => usize::MAX,
            Ok(p) => p.players.len(),
            Err(_) => usize::MAX,
        }
    }

    fn is_trusted(&self) -> bool {
        self.pending.lock().map(|p| p.is_empty()).unwrap_or(false)
    }

    async fn run_invalidate(&self, player: i64, version: i64) -> Result<(), ServiceError> {
        let key = self.key(player);
        let ttl_ms = millis(TOMBSTONE_TTL);
        self.link
            .run(|mut conn| async move {
                INVALIDATE_SCRIPT
                    .key(&key)
                    .arg(version)
                    .arg(ttl_ms)
                    .invoke_async::<i64>(&mut conn)
                    .await
            })
            .await
            .map(|_| ())
    }

    /// Replays pending invalidations. Returns whether the cache can be trusted afterwards.
    pub(crate) async fn replay_pending(&self) -> bool {
        if self.is_trusted() {
            return true;
        }
        if !self.link.is_up() {
            return false;
        }
        let Ok(_guard) = self.replaying.try_lock() else {
            return false;
        };
        let (players, overflowed, epoch) = match self.pending.lock() {
            Ok(p) => (p.players.clone(), p.overflowed, p.overflow_epoch),
            Err(_) => return false,
        };
        if overflowed && let Err(err) = self.drop_all_entries().await {
            tracing::debug!(error = %err, "state cache: dropping all entries failed; will retry");
            return false;
        }
        for (&player, &version) in &players {
            if let Err(err) = self.run_invalidate(player, version).await {
                tracing::debug!(error = %err, "state cache: replaying invalidations failed; will retry");
                return false;
            }
        }
        let Ok(mut pending) = self.pending.lock() else {
            return false;
        };
        if overflowed && pending.overflow_epoch == epoch {
            pending.overflowed = false;
        }
        for (player, version) in players {
            if pending.players.get(&player).is_some_and(|&v| v <= version) {
                pending.players.remove(&player);
            }
        }
        let trusted = pending.is_empty();
        if trusted {
            tracing::info!("state cache: pending invalidations replayed, serving from Redis again");
        }
        trusted
    }

    /// Deletes every state entry under our prefix (after too many invalidations were lost).
    async fn drop_all_entries(&self) -> Result<(), ServiceError> {
        let pattern = self.link.key("state:*");
        let mut cursor: u64 = 0;
        loop {
            let pattern = pattern.clone();
            let (next, keys): (u64, Vec<String>) = self
                .link
                .run(|mut conn| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            if !keys.is_empty() {
                self.link
                    .run(|mut conn| async move {
                        redis::cmd("UNLINK")
                            .arg(&keys)
                            .query_async::<i64>(&mut conn)
                            .await
                    })
                    .await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

#[async_trait]
impl StateCache for RedisStateCache {
    async fn get(&self, player: i64) -> Option<CachedState> {
        if !self.replay_pending().await {
            return None;
        }
        let key = self.key(player);
        let result = self
            .link
            .run(|mut conn| async move {
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg("v")
                    .arg("d")
                    .query_async::<(Option<i64>, Option<Vec<u8>>)>(&mut conn)
                    .await
            })
            .await;
        match result {
            Ok((Some(version), Some(bytes))) => Some(CachedState {
                version,
                bytes: Bytes::from(bytes),
            }),
            Ok(_) => None,
            Err(err) => {
                tracing::debug!(player, error = %err, "state cache get failed; treating as a miss");
                None
            }
        }
    }

    async fn set(&self, player: i64, version: i64, bytes: Bytes, ttl: Duration) {
        if !self.is_trusted() {
            return;
        }
        let key = self.key(player);
        let ttl_ms = millis(ttl);
        let result = self
            .link
            .run(|mut conn| async move {
                SET_SCRIPT
                    .key(&key)
                    .arg(version)
                    .arg(ttl_ms)
                    .arg(bytes.as_ref())
                    .invoke_async::<i64>(&mut conn)
                    .await
            })
            .await;
        if let Err(err) = result {
            tracing::debug!(player, error = %err, "state cache set failed; skipped");
        }
    }

    async fn invalidate(&self, player: i64, version: i64) {
        if !self.is_trusted() {
            if let Ok(mut pending) = self.pending.lock() {
                pending.add(player, version);
            }
            self.replay_pending().await;
            return;
        }
        if let Err(err) = self.run_invalidate(player, version).await {
            tracing::warn!(
                player, version, error = %err,
                "state cache invalidation failed; serving nothing from the cache until it is replayed"
            );
            if let Ok(mut pending) = self.pending.lock() {
                pending.add(player, version);
            }
        }
    }
}

/// A TTL in whole milliseconds, at least 1 (Redis refuses 0).
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
