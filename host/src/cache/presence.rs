//! Who is online: a heartbeat marks a player online until its TTL runs out.
//!
//! Presence is one sorted set: member = player id, score = when the heartbeat expires (by the Redis
//! clock, so nodes with skewed clocks agree), and one hash from player id to when the player came
//! online (the first heartbeat after being offline). Counting and listing first drop expired members
//! from both, so nothing ever scans the keyspace (a `KEYS`-style scan would cost in proportion to every
//! key held).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use tokio::time::Instant;

use super::millis;
use super::{RedisLink, ServiceError};

/// Online presence with heartbeat expiry.
#[async_trait]
pub trait Presence: Send + Sync + std::fmt::Debug {
    /// Marks `player` online until `ttl` from now; each heartbeat pushes the expiry forward.
    async fn heartbeat(&self, player: i64, ttl: Duration) -> Result<(), ServiceError>;

    /// Marks `player` offline now (logout, socket closed).
    async fn mark_offline(&self, player: i64) -> Result<(), ServiceError>;

    /// Whether `player`'s last heartbeat has not expired.
    async fn is_online(&self, player: i64) -> Result<bool, ServiceError>;

    /// How many players are online.
    async fn count_online(&self) -> Result<u64, ServiceError>;

    /// The ids of the players online, ascending.
    async fn list_online(&self) -> Result<Vec<i64>, ServiceError>;

    /// The players online with when each came online (ms since the epoch), by ascending id.
    async fn list_online_since(&self) -> Result<Vec<(i64, i64)>, ServiceError>;
}

/// Presence for a single node.
#[derive(Debug, Default)]
pub struct InProcessPresence {
    /// Player → (heartbeat expiry, came online in ms since the epoch).
    expiries: Mutex<HashMap<i64, (Instant, i64)>>,
}

impl InProcessPresence {
    /// Nobody online.
    pub fn new() -> Self {
        Self::default()
    }

    /// The live map after dropping expired players; the closure runs under the lock.
    fn with_live<T>(&self, f: impl FnOnce(&mut HashMap<i64, (Instant, i64)>) -> T) -> T {
        let now = Instant::now();
        let mut map = self
            .expiries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, (expires, _)| *expires > now);
        f(&mut map)
    }
}

#[async_trait]
impl Presence for InProcessPresence {
    async fn heartbeat(&self, player: i64, ttl: Duration) -> Result<(), ServiceError> {
        let expires = Instant::now() + ttl;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.with_live(|map| {
            map.entry(player)
                .and_modify(|(e, _)| *e = expires)
                .or_insert((expires, now_ms));
        });
        Ok(())
    }

    async fn mark_offline(&self, player: i64) -> Result<(), ServiceError> {
        self.with_live(|map| map.remove(&player));
        Ok(())
    }

    async fn is_online(&self, player: i64) -> Result<bool, ServiceError> {
        Ok(self.with_live(|map| map.contains_key(&player)))
    }

    async fn count_online(&self) -> Result<u64, ServiceError> {
        Ok(self.with_live(|map| map.len() as u64))
    }

    async fn list_online(&self) -> Result<Vec<i64>, ServiceError> {
        let mut ids = self.with_live(|map| map.keys().copied().collect::<Vec<_>>());
        ids.sort_unstable();
        Ok(ids)
    }

    async fn list_online_since(&self) -> Result<Vec<(i64, i64)>, ServiceError> {
        let mut rows =
            self.with_live(|map| map.iter().map(|(&p, &(_, since))| (p, since)).collect::<Vec<_>>());
        rows.sort_unstable();
        Ok(rows)
    }
}

/// KEYS: the expiry set, the came-online hash. ARGV: player, ttl ms. A player who was offline (or
/// whose heartbeat had expired) comes online now.
static HEARTBEAT_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not old) or tonumber(old) <= now then redis.call('HSET', KEYS[2], ARGV[1], now) end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
",
    )
});

/// KEYS: the expiry set, the came-online hash. Drops expired members from both, then answers ARGV[1]:
/// `count`, `list`, `since` (player, came-online pairs, flattened) or `is` (for player ARGV[2]).
static QUERY_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for i = 1, #gone, 500 do
  redis.call('HDEL', KEYS[2], unpack(gone, i, math.min(i + 499, #gone)))
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[1] == 'count' then return redis.call('ZCARD', KEYS[1]) end
if ARGV[1] == 'list' then return redis.call('ZRANGE', KEYS[1], 0, -1) end
if ARGV[1] == 'since' then
  local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
  local out = {}
  for _, id in ipairs(ids) do
    out[#out + 1] = tonumber(id)
    out[#out + 1] = tonumber(redis.call('HGET', KEYS[2], id) or now)
  end
  return out
end
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 1 end
return 0
",
    )
});

/// Presence shared by every node: one sorted set, `{prefix}presence`, and one hash,
/// `{prefix}presence:since`.
#[derive(Debug)]
pub struct RedisPresence {
    link: Arc<RedisLink>,
    key: String,
    since_key: String,
}

impl RedisPresence {
    pub(crate) fn new(link: Arc<RedisLink>) -> Self {
        let key = link.key("presence");
        let since_key = link.key("presence:since");
        Self { link, key, since_key }
    }
}

#[async_trait]
impl Presence for RedisPresence {
    async fn heartbeat(&self, player: i64, ttl: Duration) -> Result<(), ServiceError> {
        let ttl_ms = millis(ttl);
        self.link
            .run(|mut conn| async move {
                HEARTBEAT_SCRIPT
                    .key(&self.key)
                    .key(&self.since_key)
                    .arg(player)
                    .arg(ttl_ms)
                    .invoke_async::<i64>(&mut conn)
                    .await
            })
            .await
            .map(|_| ())
    }

    async fn mark_offline(&self, player: i64) -> Result<(), ServiceError> {
        self.link
            .run(|mut conn| async move {
                redis::pipe()
                    .atomic()
                    .cmd("ZREM")
                    .arg(&self.key)
                    .arg(player)
                    .cmd("HDEL")
                    .arg(&self.since_key)
                    .arg(player)
                    .query_async::<(i64, i64)>(&mut conn)
                    .await
            })
            .await
            .map(|_| ())
    }

    async fn is_online(&self, player: i64) -> Result<bool, ServiceError> {
        self.link
            .run(|mut conn| async move {
                QUERY_SCRIPT
                    .key(&self.key)
                    .key(&self.since_key)
                    .arg("is")
                    .arg(player)
                    .invoke_async::<i64>(&mut conn)
                    .await
            })
            .await
            .map(|n| n == 1)
    }

    async fn count_online(&self) -> Result<u64, ServiceError> {
        self.link
            .run(|mut conn| async move {
                QUERY_SCRIPT
                    .key(&self.key)
                    .key(&self.since_key)
                    .arg("count")
                    .invoke_async::<u64>(&mut conn)
                    .await
            })
            .await
    }

    async fn list_online(&self) -> Result<Vec<i64>, ServiceError> {
        let mut ids = self
            .link
            .run(|mut conn| async move {
                QUERY_SCRIPT
                    .key(&self.key)
                    .key(&self.since_key)
                    .arg("list")
                    .invoke_async::<Vec<i64>>(&mut conn)
                    .await
            })
            .await?;
        ids.sort_unstable();
        Ok(ids)
    }

    async fn list_online_since(&self) -> Result<Vec<(i64, i64)>, ServiceError> {
        let flat = self
            .link
            .run(|mut conn| async move {
                QUERY_SCRIPT
                    .key(&self.key)
                    .key(&self.since_key)
                    .arg("since")
                    .invoke_async::<Vec<i64>>(&mut conn)
                    .await
            })
            .await?;
        let mut rows: Vec<(i64, i64)> = flat.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        rows.sort_unstable();
        Ok(rows)
    }
}
