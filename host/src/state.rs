//! The composition root: [`build`] wires a host from its configuration (database and migrations,
//! Redis services, plugin runtime, registry and watcher, game, rollout, stored plugin artifacts) into
//! an [`App`] that serves it. `main` and the test kit both build their host here, so tests run the
//! host production runs. Only this file, `config.rs` and `main.rs` name concrete backends.
//!
//! [`AppState`] holds every part a handler may need; each part is its own sub-state, which handlers
//! extract on its own through axum's `FromRef` (`State<Game>`, `State<Arc<dyn Store>>`,
//! `State<Services>`, `State<Rollout>`, `State<AuthState>`, ...).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::FromRef;
use cauldron_runtime::{Registry, Runtime, watcher};

use crate::api::ws::WsHub;
use crate::auth::{HashSlots, TokenKeys};
use crate::cache::{Revocations, Services, ServicesConfig};
use crate::clock::Clock;
use crate::config::Config;
use crate::game::Game;
use crate::metrics::Metrics;
use crate::rollout::Rollout;
use crate::shutdown::Shutdown;
use crate::store::{self, Store};

/// The state shared by every handler: the composition root. Cheap to clone (every field is a
/// handle); each field is a sub-state handlers extract by its type.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// The action pipeline: runs actions and queries, reads a player's state.
    pub game: Game,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The Redis (or in-process) services: bus, presence, rate limits, leaderboards.
    pub services: Services,
    /// The plugin registry: what serves, and its status.
    pub registry: Arc<Registry>,
    /// Plugin uploads, rollbacks and unloads across the cluster.
    pub rollout: Rollout,
    /// Token checking and issuing, password hashing slots, revocations.
    pub auth: AuthState,
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Process metrics (the game records plugin calls, the API requests).
    pub metrics: Arc<Metrics>,
    /// When the process started serving.
    pub started: Instant,
    /// The shutdown signal for long-lived handlers (WebSocket sessions, background tasks).
    pub shutdown: Shutdown,
    /// What this host's WebSocket sessions share.
    pub ws: Arc<WsHub>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("listen", &self.config.listen)
            .finish_non_exhaustive()
    }
}

/// What authentication needs: token keys, the password hashing slots, the revoked tokens (with the
/// store to ask while they were never loaded) and the `ADMIN_TOKEN`.
#[derive(Clone)]
pub struct AuthState {
    /// Token signing and checking.
    pub keys: TokenKeys,
    /// The host-wide ceiling on password hashes computed at once.
    pub hashes: HashSlots,
    /// The tokens revoked by a logout, kept current by `api::auth::follow_revocations`.
    pub revoked: Arc<Revocations>,
    /// `ADMIN_TOKEN`, if set.
    pub admin_token: Option<Arc<str>>,
    /// Where revocations are read while the list was never loaded.
    pub(crate) store: Arc<dyn Store>,
}

impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthState").finish_non_exhaustive()
    }
}

/// The parts of a host that [`build_with`] lets a caller choose; [`Overrides::default`] is what
/// `main` runs.
#[derive(Debug, Clone)]
pub struct Overrides {
    /// The game clock (default: the system clock).
    pub clock: Arc<dyn Clock>,
    /// Whether `/ws` is served (default: yes). Off only in tests of what clients do without it.
    pub websocket: bool,
}

impl Default for Overrides {
    fn default() -> Self {
        Self {
            clock: crate::clock::system(),
            websocket: true,
        }
    }
}

/// Which optional routes a host serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Surface {
    /// `/ws`.
    pub websocket: bool,
}

/// A built host, ready to serve.
pub struct App {
    /// The state its handlers share.
    pub state: AppState,
    /// How many plugins loaded from `PLUGINS_DIR` files.
    pub plugin_files: usize,
    /// How many active stored artifacts loaded (they win over files of the same name).
    pub stored_artifacts: usize,
    surface: Surface,
    // Dropping it stops the hot reload.
    _watcher: watcher::Watcher,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("plugin_files", &self.plugin_files)
            .field("stored_artifacts", &self.stored_artifacts)
            .field("surface", &self.surface)
            .finish_non_exhaustive()
    }
}

impl App {
    /// The router with every layer (what [`App::serve`] serves), for driving it without a socket.
    pub fn router(&self) -> axum::Router {
        crate::api::app(self.state.clone(), self.surface)
    }

    /// Serve on `listener` until `shutdown` completes (see [`crate::api::serve`]); the plugin
    /// watcher runs for as long.
    ///
    /// # Errors
    /// An accept-loop I/O error.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self {
            state,
            surface,
            _watcher,
            ..
        } = self;
        crate::api::serve(listener, state, surface, shutdown).await
    }
}

/// [`build_with`] the defaults: the host `main` runs.
///
/// # Errors
/// See [`build_with`].
pub async fn build(config: Arc<Config>) -> anyhow::Result<App> {
    build_with(config, Overrides::default()).await
}

/// Wire a host: open the database (waiting for it) and migrate it → connect the Redis services →
/// start the plugin runtime, load `PLUGINS_DIR` and watch it → the game, rollout and app state →
/// load the active stored plugin artifacts (they win over files of the same name).
///
/// # Errors
/// The database does not answer in time or cannot be migrated, `REDIS_URL` is invalid, `PLUGINS_DIR`
/// cannot be created or watched, or the plugin runtime does not start.
pub async fn build_with(config: Arc<Config>, overrides: Overrides) -> anyhow::Result<App> {
    let store = open_store(&config).await?;
    let services = Services::connect_with(ServicesConfig {
        key_prefix: config.redis_key_prefix.clone(),
        ..ServicesConfig::new(config.redis_url.as_deref())
    })
    .await
    .context("connecting the Redis services")?;

    let plugins_dir = config.plugins_dir.clone();
    std::fs::create_dir_all(&plugins_dir)
        .with_context(|| format!("PLUGINS_DIR {} cannot be created", plugins_dir.display()))?;
    let runtime = Runtime::new(config.plugin_limits.clone()).context("starting the plugin runtime")?;
    let registry = Arc::new(Registry::new());
    let plugin_files = watcher::load_all(&runtime, &registry, &plugins_dir).await;
    tracing::info!(dir = %plugins_dir.display(), loaded = plugin_files, "plugins loaded");
    let watcher = watcher::watch(runtime.clone(), Arc::clone(&registry), plugins_dir.clone())
        .context("watching PLUGINS_DIR")?;

    let metrics = Arc::new(Metrics::new());
    let game = Game::with_clock(
        runtime.clone(),
        Arc::clone(&registry),
        Arc::clone(&store),
        services.clone(),
        Arc::clone(&metrics),
        overrides.clock,
    );
    let rollout = Rollout::new(
        runtime,
        Arc::clone(&registry),
        Arc::clone(&store),
        services.clone(),
        Arc::clone(&metrics),
        plugins_dir,
    )
    .with_keep_versions(config.plugin_keep_versions);
    let auth = AuthState {
        keys: TokenKeys::new(config.jwt_secret.as_bytes(), config.jwt_ttl),
        hashes: HashSlots::new(config.password_hash_concurrency, config.password_hash_wait),
        revoked: Arc::new(Revocations::new()),
        admin_token: config.admin_token.as_deref().map(Arc::from),
        store: Arc::clone(&store),
    };
    let state = AppState {
        game,
        store,
        services,
        registry,
        rollout,
        auth,
        config,
        metrics,
        started: Instant::now(),
        shutdown: Shutdown::new(),
        ws: Arc::new(WsHub::new()),
    };
    let stored_artifacts = state.rollout.load_active().await;
    tracing::info!(stored = stored_artifacts, "stored plugin artifacts loaded");
    Ok(App {
        state,
        plugin_files,
        stored_artifacts,
        surface: Surface {
            websocket: overrides.websocket,
        },
        _watcher: watcher,
    })
}

/// Open the database ([`connect_store`]) and bring its schema up to date.
///
/// # Errors
/// The database does not answer in time, or a migration fails.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store = connect_store(config).await?;
    store.migrate().await.context("migrating the database")?;
    tracing::info!(backend = store.backend(), "database schema up to date");
    Ok(store)
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
