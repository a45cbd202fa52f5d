//! `cauldron`: the game server host. Wiring only: configuration → logs → database (waiting for it)
//! → migrations → Redis services → plugin runtime, registry and watcher → game → stored plugin
//! artifacts (they win over files of the same name; see `api::admin`) → HTTP and WebSocket with
//! graceful shutdown. `cauldron migrate` stops after the migrations. Every variable is listed by `--help`.

use std::sync::Arc;

use anyhow::Context;
use cauldron_host::config::{Command, Config};
use cauldron_host::game::Game;
use cauldron_host::metrics::Metrics;
use cauldron_host::{api, cache, state, telemetry};
use cauldron_runtime::{Registry, Runtime, watcher};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (command, config) = Config::load().context("invalid configuration")?;
    telemetry::init(&config);
    if config.jwt_secret.is_generated() {
        tracing::warn!(
            "JWT_SECRET not set: using a random key for this process; tokens end at restart (development only)"
        );
    }
    let config = Arc::new(config);

    let store = state::connect_store(&config).await?;
    store.migrate().await.context("migrating the database")?;
    tracing::info!(backend = store.backend(), "database schema up to date");
    if command == Command::Migrate {
        return Ok(());
    }

    let services = cache::Services::connect_with(cache::ServicesConfig {
        key_prefix: config.redis_key_prefix.clone(),
        ..cache::ServicesConfig::new(config.redis_url.as_deref())
    })
    .await
    .context("connecting the Redis services")?;

    let plugins_dir = config.plugins_dir.clone();
    std::fs::create_dir_all(&plugins_dir)
        .with_context(|| format!("PLUGINS_DIR {} cannot be created", plugins_dir.display()))?;
    let runtime = Runtime::new(state::runtime_limits(&config)).context("starting the plugin runtime")?;
    let registry = Arc::new(Registry::new());
    let loaded = watcher::load_all(&runtime, &registry, &plugins_dir).await;
    tracing::info!(dir = %plugins_dir.display(), loaded, "plugins loaded");
    let _watcher = watcher::watch(runtime.clone(), Arc::clone(&registry), plugins_dir)
        .context("watching PLUGINS_DIR")?;

    let metrics = Arc::new(Metrics::new());
    let game = Game::new(runtime, registry, store, services, Arc::clone(&metrics));
    let app_state = state::AppState::new(game, Arc::clone(&config), metrics);
    let stored = api::admin::load_active_artifacts(&app_state).await;
    tracing::info!(stored, "stored plugin artifacts loaded");

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {} (PORT, BIND_ADDR)", config.listen))?;
    // The bound address, not the configured one: with `PORT=0` the system picks the port.
    let bound = listener.local_addr().unwrap_or(config.listen);
    tracing::info!(addr = %bound, "serving");
    api::serve(listener, app_state, api::shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("stopped");
    Ok(())
}
