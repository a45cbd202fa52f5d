//! [`Services`]: the five services as trait objects, chosen once at start-up by whether `REDIS_URL`
//! is set, and their [`Health`].

use std::sync::Arc;

use super::{
    InProcessLeaderboard, InProcessPresence, InProcessRateLimiter, Leaderboard, Presence, RateLimiter,
    RedisLeaderboard, RedisLink, RedisPresence, RedisRateLimiter,
};
use crate::bus::{Bus, InProcessBus, RedisBus};

/// Key prefix used when none is configured: every key and channel lives under it, so Cauldron can
/// share a Redis with other software.
pub const DEFAULT_KEY_PREFIX: &str = "cauldron:";

/// Start-up attempts to reach Redis before starting degraded. With the backoff (100 ms doubling to
/// 2 s) this waits about 3 s: enough for a Redis container starting next to us, short enough that a
/// host without Redis is up quickly and says why.
pub const DEFAULT_STARTUP_ATTEMPTS: u32 = 5;

/// How to build [`Services`].
#[derive(Debug, Clone)]
pub struct ServicesConfig {
    /// `REDIS_URL`; `None` (or empty) means one node and in-process services.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel (tests use a random one per test).
    pub key_prefix: String,
    /// Start-up attempts before starting degraded (at least 1).
    pub startup_attempts: u32,
}

impl ServicesConfig {
    /// The defaults for a given `REDIS_URL`.
    pub fn new(redis_url: Option<&str>) -> Self {
        Self {
            redis_url: redis_url.map(str::to_owned),
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            startup_attempts: DEFAULT_STARTUP_ATTEMPTS,
        }
    }
}

/// A `REDIS_URL` that does not parse: a configuration error, which stops start-up (unlike Redis being
/// down, which only degrades it). The URL itself is not repeated, as it may hold a password.
#[derive(Debug, thiserror::Error)]
#[error("REDIS_URL is not a valid Redis URL ({0})")]
pub struct InvalidRedisUrl(String);

/// Whether the services are fully working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Redis answers (or none is configured).
    Ok,
    /// Serving, with less: the reason says what is missing.
    Degraded(String),
}

/// The Redis services, each behind its trait, cheap to clone into the app state.
#[derive(Debug, Clone)]
pub struct Services {
    /// Pub/sub for sockets and plugin rollout.
    pub bus: Arc<dyn Bus>,
    /// Who is online.
    pub presence: Arc<dyn Presence>,
    /// Token-bucket rate limits.
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// Sorted scores.
    pub leaderboard: Arc<dyn Leaderboard>,
    backend: Backend,
}

/// What `health` inspects.
#[derive(Debug, Clone)]
enum Backend {
    InProcess,
    Redis {
        link: Arc<RedisLink>,
        bus: Arc<RedisBus>,
    },
}

impl Services {
    /// In-process services for one node (`REDIS_URL` unset).
    pub fn in_process() -> Self {
        Self {
            bus: Arc::new(InProcessBus::new()),
            presence: Arc::new(InProcessPresence::new()),
            rate_limiter: Arc::new(InProcessRateLimiter::new()),
            leaderboard: Arc::new(InProcessLeaderboard::new()),
            backend: Backend::InProcess,
        }
    }

    /// Builds the services from `REDIS_URL`: in-process when it is `None` or empty, Redis otherwise.
    ///
    /// With Redis down at start this waits a few seconds, logging each attempt and the likely cause,
    /// then starts degraded (see [`Services::health`]) and keeps reconnecting in the background; it
    /// never fails for that reason.
    ///
    /// # Errors
    /// [`InvalidRedisUrl`] if the URL does not parse.
    pub async fn connect(redis_url: Option<&str>) -> Result<Self, InvalidRedisUrl> {
        Self::connect_with(ServicesConfig::new(redis_url)).await
    }

    /// [`Services::connect`] with every knob.
    ///
    /// # Errors
    /// [`InvalidRedisUrl`] if the URL does not parse.
    pub async fn connect_with(config: ServicesConfig) -> Result<Self, InvalidRedisUrl> {
        let Some(url) = config
            .redis_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        else {
            tracing::info!(
                "REDIS_URL not set: in-process cache, pub/sub, presence, rate limits and leaderboards"
            );
            return Ok(Self::in_process());
        };
        let client = redis::Client::open(url).map_err(|e| InvalidRedisUrl(e.to_string()))?;
        let link = RedisLink::new(client, config.key_prefix).map_err(|e| InvalidRedisUrl(e.to_string()))?;
        link.wait_until_up(config.startup_attempts).await;
        link.spawn_supervisor();
        let bus = Arc::new(RedisBus::start(Arc::clone(&link)));
        Ok(Self {
            bus: bus.clone(),
            presence: Arc::new(RedisPresence::new(Arc::clone(&link))),
            rate_limiter: Arc::new(RedisRateLimiter::new(Arc::clone(&link))),
            leaderboard: Arc::new(RedisLeaderboard::new(Arc::clone(&link))),
            backend: Backend::Redis { link, bus },
        })
    }

    /// Whether these services run over Redis.
    pub fn uses_redis(&self) -> bool {
        matches!(self.backend, Backend::Redis { .. })
    }

    /// Whether the bus reaches the other nodes now: always `true` in-process, where there are none;
    /// over Redis, whether the pub/sub connection is up and subscribed.
    pub fn bus_connected(&self) -> bool {
        match &self.backend {
            Backend::InProcess => true,
            Backend::Redis { bus, .. } => bus.is_connected(),
        }
    }

    /// Pings Redis (bounded by a short timeout) and reports what is degraded, if anything.
    pub async fn health(&self) -> Health {
        let Backend::Redis { link, bus } = &self.backend else {
            return Health::Ok;
        };
        if let Err(err) = link.probe().await {
            return Health::Degraded(format!(
                "redis at {} unreachable ({err}): pub/sub local only, rate limits per node",
                link.target()
            ));
        }
        if !bus.is_connected() {
            return Health::Degraded("redis pub/sub reconnecting: events reach this node only".to_owned());
        }
        Health::Ok
    }
}
