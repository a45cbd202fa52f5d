//! Redis-backed and in-process services: presence, rate limits, leaderboards, and the [`Services`]
//! bundle that also carries the pub/sub [`crate::bus`]. Player state is not cached here: a load is one
//! statement that reads only the sections a call declared, which costs no more than a cache read and
//! the version check it would need (docs/benchmarks.md).
//!
//! # Layout
//! - [`presence`]: who is online, kept alive by heartbeats with an expiry.
//! - [`rate_limit`]: token buckets keyed by string.
//! - [`leaderboard`]: sorted scores per board.
//! - [`revocations`]: the tokens revoked by a logout, kept in memory and current over the bus.
//! - [`services`]: [`Services`], built once at start-up by [`Services::connect`], and [`Health`].
//! - `link` (private): the one Redis command connection per process, its circuit breaker and the
//!   supervisor task that reconnects it.
//!
//! Every service is a trait with a Redis implementation and an in-process one. `REDIS_URL` unset means
//! one node and the in-process implementations; set means Redis, so N hosts share the same view.
//!
//! # When Redis is down
//! The host keeps serving (docs/architecture.md: Redis carries fan-out and shared counters, PostgreSQL
//! holds the truth). The bus delivers to this node's sockets only, rate limits fall back to this
//! node's buckets, and presence and leaderboards return [`ServiceError`] for the caller to map.
//! [`Services::health`] says `Degraded` with the reason until Redis answers again; nothing needs
//! rebuilding.

pub mod leaderboard;
pub(crate) mod link;
pub mod presence;
pub mod rate_limit;
pub mod revocations;
pub mod services;

pub use leaderboard::{InProcessLeaderboard, Leaderboard, Ranked, RedisLeaderboard};
pub use presence::{InProcessPresence, Presence, RedisPresence};
pub use rate_limit::{Decision, InProcessRateLimiter, RateLimit, RateLimiter, RedisRateLimiter};
pub use revocations::Revocations;
pub use services::{
    DEFAULT_KEY_PREFIX, DEFAULT_STARTUP_ATTEMPTS, Health, InvalidRedisUrl, Services, ServicesConfig,
};

pub(crate) use link::RedisLink;

use std::time::Duration;

/// Why a Redis-backed service could not answer. Services that have a safe answer without Redis (bus,
/// rate limits) never return it; presence and leaderboards do, since inventing an answer there
/// would mislead players.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Redis is known to be unreachable; the supervisor is reconnecting in the background.
    #[error("redis is unreachable (reconnecting in the background)")]
    Unavailable,
    /// Redis did not answer within the time limit.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error, or the connection failed mid-command.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The caller passed a value the service refuses (for example a NaN score).
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
}

/// A TTL in whole milliseconds, at least 1 (Redis refuses 0).
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
