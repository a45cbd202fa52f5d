//! The process's one Redis command connection, with a circuit breaker and a supervisor.
//!
//! redis-rs's `ConnectionManager` multiplexes every command of the process over one connection and
//! replaces it when it breaks. It reconnects only when a command finds the connection broken, and a
//! command issued while Redis is down waits for that reconnect attempt. So we keep our own view of
//! the link:
//! - `up` is a circuit breaker. While it is open (Redis down), services skip Redis at once and take
//!   their fallback, instead of each request paying a connect timeout.
//! - A supervisor task pings: every [`PROBE_INTERVAL`] while up, to notice an outage even when idle;
//!   with exponential backoff ([`BACKOFF_MIN`] to [`BACKOFF_MAX`]) while down, each ping driving the
//!   manager's reconnect. The first ping that answers closes the circuit. It holds only a `Weak`, so
//!   it ends once the `Services` that own the link are dropped.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, RedisResult};
use tokio::time::Instant;

use super::ServiceError;

/// Longest wait for one Redis command before it counts as a link failure. Cache reads sit on the
/// action path, so this stays short: a slow Redis must degrade us, not stall every request.
pub(crate) const OP_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the supervisor pings a healthy link.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// First delay between reconnect attempts.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest delay between reconnect attempts: bounds how long after Redis returns we notice.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// While Redis stays down, repeat the warning this often so the logs say we are still waiting.
const STILL_DOWN_WARNING: Duration = Duration::from_secs(30);

/// See the module docs.
pub(crate) struct RedisLink {
    client: Client,
    manager: ConnectionManager,
    up: AtomicBool,
    prefix: String,
    /// `host:port` only: a URL may carry a password, and this goes into logs.
    target: String,
    /// Why the link last failed, for `health()`.
    last_error: Mutex<String>,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("target", &self.target)
            .field("up", &self.is_up())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisLink {
    /// Builds the link without connecting; `wait_until_up` and the supervisor do that.
    pub(crate) fn new(client: Client, prefix: String) -> RedisResult<Arc<Self>> {
        // One connect attempt plus one quick retry per reconnect: our supervisor owns the backoff,
        // so a command never waits out a long retry schedule inside redis-rs.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        let target = client.get_connection_info().addr().to_string();
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Arc::new(Self {
            client,
            manager,
            up: AtomicBool::new(false),
            prefix,
            target,
            last_error: Mutex::new("not connected yet".to_owned()),
        }))
    }

    /// The client, for the bus's dedicated pub/sub connection.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// `host:port` of the server, safe to log.
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// The namespaced name of a key or channel.
    pub(crate) fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// Whether the circuit is closed (Redis answered the last time we asked).
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Why the link last failed.
    pub(crate) fn last_error(&self) -> String {
        self.last_error.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Runs one Redis operation if the circuit is closed, bounded by [`OP_TIMEOUT`]. A link failure
    /// (I/O error, dropped connection, timeout) opens the circuit; a server error (wrong type, script
    /// error) does not.
    pub(crate) async fn run<T, F, Fut>(&self, op: F) -> Result<T, ServiceError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if !self.is_up() {
            return Err(ServiceError::Unavailable);
        }
        self.run_unguarded(op).await
    }

    /// Like `run`, but also when the circuit is open; the supervisor and health checks use it.
    async fn run_unguarded<T, F, Fut>(&self, op: F) -> Result<T, ServiceError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        match tokio::time::timeout(OP_TIMEOUT, op(self.manager.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                if is_link_failure(&err) {
                    self.mark_down(&err.to_string());
                }
                Err(ServiceError::Redis(err))
            }
            Err(_) => {
                self.mark_down(&format!("no answer within {OP_TIMEOUT:?}"));
                Err(ServiceError::Timeout(OP_TIMEOUT))
            }
        }
    }

    /// Pings Redis whatever the circuit says, and updates it from the answer.
    pub(crate) async fn probe(&self) -> Result<(), ServiceError> {
        let result = self
            .run_unguarded(
                |mut conn| async move { redis::cmd("PING").query_async::<String>(&mut conn).await },
            )
            .await;
        if result.is_ok() {
            self.mark_up();
        }
        result.map(|_| ())
    }

    /// Start-up: try up to `attempts` times with backoff, saying what we wait for and why.
    /// Returns whether Redis answered; if not, the host starts degraded and the supervisor goes on.
    pub(crate) async fn wait_until_up(&self, attempts: u32) -> bool {
        let attempts = attempts.max(1);
        let mut delay = BACKOFF_MIN;
        for attempt in 1..=attempts {
            match self.probe().await {
                Ok(()) => return true,
                Err(err) if attempt < attempts => {
                    tracing::info!(
                        redis = %self.target, attempt, attempts, error = %err, retry_in = ?delay,
                        "waiting for Redis: {}", hint(&err)
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(BACKOFF_MAX);
                }
                Err(err) => {
                    tracing::warn!(
                        redis = %self.target, attempts, error = %err,
                        "Redis unreachable at start-up ({}); starting DEGRADED: pub/sub \
                         reaches this node's sockets only, rate limits per node, presence and leaderboards \
                         unavailable. Reconnecting in the background.",
                        hint(&err)
                    );
                }
            }
        }
        false
    }

    /// Starts the supervisor task (see the module docs).
    pub(crate) fn spawn_supervisor(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(supervise(weak));
    }

    fn mark_down(&self, reason: &str) {
        if let Ok(mut last) = self.last_error.lock() {
            reason.clone_into(&mut last);
        }
        if self.up.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                redis = %self.target, reason,
                "lost Redis: pub/sub local only, rate limits per node, until it answers again"
            );
        }
    }

    fn mark_up(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            tracing::info!(redis = %self.target, "connected to Redis");
        }
    }
}

/// The supervisor loop: see the module docs.
async fn supervise(weak: Weak<RedisLink>) {
    let mut delay = BACKOFF_MIN;
    let mut down_since: Option<Instant> = None;
    let mut last_warning = Instant::now();
    loop {
        let Some(link) = weak.upgrade() else { return };
        let was_up = link.is_up();
        let ok = link.probe().await.is_ok();
        if ok {
            if let Some(since) = down_since.take() {
                tracing::info!(redis = %link.target, down_for = ?since.elapsed(), "Redis is back");
            }
            delay = BACKOFF_MIN;
        } else {
            let since = *down_since.get_or_insert_with(Instant::now);
            if was_up || last_warning.elapsed() >= STILL_DOWN_WARNING {
                last_warning = Instant::now();
                tracing::warn!(
                    redis = %link.target, down_for = ?since.elapsed(), error = %link.last_error(),
                    "still waiting for Redis; retrying with backoff"
                );
            }
        }
        drop(link);
        if ok {
            tokio::time::sleep(PROBE_INTERVAL).await;
        } else {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(BACKOFF_MAX);
        }
    }
}

/// Whether an error means the connection is unusable (as opposed to Redis refusing one command).
pub(crate) fn is_link_failure(err: &RedisError) -> bool {
    err.is_io_error() || err.is_connection_dropped() || err.is_unrecoverable_error() || err.is_timeout()
}

/// A line for operators about the likely cause.
fn hint(err: &ServiceError) -> &'static str {
    match err {
        ServiceError::Redis(e) if e.is_connection_refusal() => {
            "connection refused: is redis-server running, and does REDIS_URL name the right host and port?"
        }
        ServiceError::Redis(e) if e.kind() == redis::ErrorKind::AuthenticationFailed => {
            "authentication failed: check the password in REDIS_URL"
        }
        ServiceError::Timeout(_) => "no answer: is a firewall or the wrong host in the way?",
        _ => "Redis did not answer a PING",
    }
}
