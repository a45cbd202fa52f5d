//! Token-bucket rate limiting keyed by string (an account, an IP, an account and an action...).
//!
//! A bucket holds up to `capacity` tokens and gains `refill_per_sec` per second; each request takes
//! one. A full bucket is the same as no bucket, so idle keys cost nothing: Redis expires them, the
//! in-process limiter sweeps them.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use tokio::time::Instant;

use super::RedisLink;
use super::millis;

/// A bucket's shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    capacity: u32,
    refill_per_sec: f64,
}

impl RateLimit {
    /// A bucket of `capacity` tokens (at least 1) refilled at `refill_per_sec` tokens a second. A
    /// refill rate that is not a positive finite number is raised to one token a day, so a bad
    /// constant limits hard rather than dividing by zero.
    pub fn new(capacity: u32, refill_per_sec: f64) -> Self {
        let min_rate = 1.0 / 86_400.0;
        let refill_per_sec = if refill_per_sec.is_finite() && refill_per_sec > min_rate {
            refill_per_sec
        } else {
            min_rate
        };
        Self {
            capacity: capacity.max(1),
            refill_per_sec,
        }
    }

    /// Most tokens the bucket holds (the burst).
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Tokens gained per second.
    pub fn refill_per_sec(&self) -> f64 {
        self.refill_per_sec
    }

    /// How long a full bucket takes to refill from empty.
    fn full_refill(&self) -> Duration {
        Duration::from_secs_f64((f64::from(self.capacity) / self.refill_per_sec).min(86_400.0 * 365.0))
    }
}

/// The answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead; `remaining` whole tokens are left.
    Allowed {
        /// Whole tokens left in the bucket.
        remaining: u32,
    },
    /// Refused; a token will be available after `retry_after`.
    Limited {
        /// When to try again (for a `Retry-After` header).
        retry_after: Duration,
    },
}

impl Decision {
    /// Whether the request may go ahead.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }
}

/// A token-bucket rate limiter. It always answers: the Redis one falls back to this node's buckets
/// while Redis is down.
#[async_trait]
pub trait RateLimiter: Send + Sync + std::fmt::Debug {
    /// Takes one token from `key`'s bucket if it has one.
    async fn check(&self, key: &str, limit: RateLimit) -> Decision;
}

/// Buckets for a single node.
#[derive(Debug, Default)]
pub struct InProcessRateLimiter {
    inner: Mutex<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    buckets: HashMap<String, Bucket>,
    checks_since_sweep: usize,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    /// When the bucket will be full again, after which it can be forgotten.
    full_at: Instant,
}

/// Checks between sweeps of full buckets.
const SWEEP_EVERY: usize = 4096;

impl InProcessRateLimiter {
    /// No buckets yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The decision, synchronously (the lock is never held across an await).
    fn decide(&self, key: &str, limit: RateLimit) -> Decision {
        let now = Instant::now();
        let capacity = f64::from(limit.capacity);
        let Ok(mut inner) = self.inner.lock() else {
            // A poisoned lock means a panic elsewhere; do not turn it into a denial of service.
            return Decision::Allowed { remaining: 0 };
        };
        inner.checks_since_sweep += 1;
        if inner.checks_since_sweep >= SWEEP_EVERY {
            inner.checks_since_sweep = 0;
            inner.buckets.retain(|_, b| b.full_at > now);
        }
        let bucket = inner.buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
            full_at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        let mut tokens = (bucket.tokens + elapsed * limit.refill_per_sec).min(capacity);
        let decision = if tokens >= 1.0 {
            tokens -= 1.0;
            Decision::Allowed {
                remaining: whole(tokens),
            }
        } else {
            Decision::Limited {
                retry_after: Duration::from_secs_f64((1.0 - tokens) / limit.refill_per_sec),
            }
        };
        bucket.tokens = tokens;
        bucket.updated = now;
        bucket.full_at = now + Duration::from_secs_f64((capacity - tokens) / limit.refill_per_sec);
        decision
    }
}

#[async_trait]
impl RateLimiter for InProcessRateLimiter {
    async fn check(&self, key: &str, limit: RateLimit) -> Decision {
        self.decide(key, limit)
    }
}

/// One atomic bucket update in Redis, timed by the Redis clock so every node agrees.
/// ARGV: capacity, refill per second, expiry in ms. Returns {allowed, retry_after_ms, remaining}.
static BUCKET_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
if now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * rate / 1000)
end
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {allowed, retry, math.floor(tokens)}
",
    )
});

/// Buckets shared by every node, in Redis under `{prefix}rl:{key}`, with this node's buckets as the
/// fallback while Redis is down (each node then limits on its own: looser, never unavailable).
#[derive(Debug)]
pub struct RedisRateLimiter {
    link: Arc<RedisLink>,
    fallback: InProcessRateLimiter,
}

impl RedisRateLimiter {
    pub(crate) fn new(link: Arc<RedisLink>) -> Self {
        Self {
            link,
            fallback: InProcessRateLimiter::new(),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &str, limit: RateLimit) -> Decision {
        let redis_key = self.link.key(&format!("rl:{key}"));
        // Expire once the bucket would be full again, plus a second of slack for clock rounding.
        let expire_ms = millis(limit.full_refill()).saturating_add(1000);
        let result = self
            .link
            .run(|mut conn| async move {
                BUCKET_SCRIPT
                    .key(&redis_key)
                    .arg(limit.capacity)
                    .arg(limit.refill_per_sec)
                    .arg(expire_ms)
                    .invoke_async::<(i64, i64, i64)>(&mut conn)
                    .await
            })
            .await;
        match result {
            Ok((1, _, remaining)) => Decision::Allowed {
                remaining: u32::try_from(remaining).unwrap_or(0),
            },
            Ok((_, retry_ms, _)) => Decision::Limited {
                retry_after: Duration::from_millis(u64::try_from(retry_ms).unwrap_or(0).max(1)),
            },
            Err(err) => {
                tracing::debug!(key, error = %err, "rate limit: Redis unavailable, using this node's bucket");
                self.fallback.check(key, limit).await
            }
        }
    }
}

/// Whole tokens left, for display.
fn whole(tokens: f64) -> u32 {
    // The value is in [0, capacity] and capacity is a u32, so the cast cannot truncate (and `as`
    // saturates anyway).
    tokens.floor().max(0.0) as u32
}
