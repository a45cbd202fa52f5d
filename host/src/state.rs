//! [`AppState`]: everything a request handler needs, cheap to clone (every field is a handle), and
//! the start-up steps that build it ([`connect_store`], [`runtime_limits`]). Only this file,
//! `config.rs` and `main.rs` name concrete backends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use cauldron_runtime::Limits;

use crate::api::ws::WsHub;
use crate::auth::{HashSlots, TokenKeys};
use crate::cache::Revocations;
use crate::config::Config;
use crate::game::Game;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store::{self, Store};

/// The state shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// The action pipeline (plugins, store, services).
    pub game: Game,
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Process metrics (the game records plugin calls, the API requests).
    pub metrics: Arc<Metrics>,
    /// Token signing and checking.
    pub keys: TokenKeys,
    /// The host-wide ceiling on password hashes computed at once.
    pub hashes: HashSlots,
    /// When the process started serving.
    pub started: Instant,
    /// The shutdown signal for long-lived handlers (WebSocket sessions, background tasks).
    pub shutdown: Shutdown,
    /// What this host's WebSocket sessions share.
    pub ws: Arc<WsHub>,
    /// The tokens revoked by a logout, kept current by `api::auth::follow_revocations`.
    pub revoked: Arc<Revocations>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("listen", &self.config.listen)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// The state for `game` under `config`.
    pub fn new(game: Game, config: Arc<Config>, metrics: Arc<Metrics>) -> Self {
        let keys = TokenKeys::new(config.jwt_secret.as_bytes(), config.jwt_ttl);
        let hashes = HashSlots::new(config.password_hash_concurrency, config.password_hash_wait);
        Self {
            game,
            config,
            metrics,
            keys,
            hashes,
            started: Instant::now(),
            shutdown: Shutdown::new(),
            ws: Arc::new(WsHub::new()),
            revoked: Arc::new(Revocations::new()),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        self.game.store()
    }
}

/// The runtime's limits from the configuration; what is not configured keeps the runtime's default.
pub fn runtime_limits(config: &Config) -> Limits {
    let defaults = Limits::default();
    let l = &config.plugin_limits;
    Limits {
        fuel: l.fuel.unwrap_or(defaults.fuel),
        deadline: l.deadline,
        memory_bytes: l.memory_bytes,
        max_output_bytes: l.max_output_bytes.unwrap_or(defaults.max_output_bytes),
        max_concurrent_calls: defaults.max_concurrent_calls,
        cache_dir: l.cache_dir.clone(),
        preinitialise: defaults.preinitialise,
    }
}

/// Open the database, waiting for it to come up: a PostgreSQL container next to us often starts after
/// the host. Retries with backoff (250 ms doubling to 5 s), logging what it waits for, until
/// `DB_CONNECT_TIMEOUT_SECS`; then fails naming the (password-free) URL. The SQLite file's folder is
/// created first.
///
/// # Errors
/// The last connection error, after the timeout.
pub async fn connect_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(path) = config.sqlite_path()
        && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the database folder {}", dir.display()))?;
    }
    let url = config.database_url_redacted();
    let deadline = Instant::now() + config.db_connect_timeout;
    let mut delay = Duration::from_millis(250);
    let mut attempt = 1u32;
    loop {
        match store::connect(&config.database_url, config.group_commit).await {
            Ok(store) => {
                tracing::info!(database = %url, backend = store.backend(), "database connected");
                return Ok(store);
            }
            Err(err) if Instant::now() + delay < deadline => {
                tracing::warn!(
                    database = %url,
                    attempt,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    error = %error_chain(&err),
                    "waiting for the database"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
            Err(err) => {
                return Err(anyhow::anyhow!(
                    "database init timeout: {url} did not answer within {:?} ({attempt} attempts; last error: {})",
                    config.db_connect_timeout,
                    error_chain(&err)
                ));
            }
        }
    }
}

/// An error and its sources, `a: b: c`.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
