//! `cauldron`: the game server host.
//!
//! This build loads every plugin in `PLUGINS_DIR`, watches the folder and hot-reloads plugins as
//! their files change, logging each publish and refusal. The HTTP and WebSocket API is not served
//! yet (see the README's status section).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cauldron_runtime::{Limits, Registry, Runtime, watcher};

/// Read a numeric variable, naming it when the value is bad.
fn env_num<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a valid number")),
        Err(_) => Ok(default),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOG_LEVEL")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let plugins_dir = PathBuf::from(std::env::var("PLUGINS_DIR").unwrap_or_else(|_| "target/plugins".into()));
    let defaults = Limits::default();
    let limits = Limits {
        fuel: env_num("PLUGIN_FUEL", defaults.fuel)?,
        deadline: Duration::from_millis(env_num("PLUGIN_DEADLINE_MS", 500u64)?),
        memory_bytes: env_num("PLUGIN_MEMORY_MB", 64usize)? << 20,
        max_output_bytes: env_num("PLUGIN_MAX_OUTPUT_BYTES", defaults.max_output_bytes)?,
        max_concurrent_calls: defaults.max_concurrent_calls,
        cache_dir: Some(PathBuf::from(
            std::env::var("MODULE_CACHE_DIR").unwrap_or_else(|_| "data/module-cache".into()),
        )),
    };
    std::fs::create_dir_all(&plugins_dir)
        .with_context(|| format!("PLUGINS_DIR {} cannot be created", plugins_dir.display()))?;

    let runtime = Runtime::new(limits).context("starting the plugin runtime")?;
    let registry = Arc::new(Registry::new());
    let loaded = watcher::load_all(&runtime, &registry, &plugins_dir).await;
    tracing::info!(dir = %plugins_dir.display(), loaded, "plugins loaded");
    for status in registry.statuses() {
        match (&status.version, &status.last_error) {
            (_, Some(error)) => tracing::warn!(plugin = %status.name, %error, "plugin refused"),
            (Some(version), None) => tracing::info!(plugin = %status.name, %version, "plugin ready"),
            (None, None) => {}
        }
    }
    let _watcher = watcher::watch(runtime, registry, plugins_dir).context("watching PLUGINS_DIR")?;
    tracing::info!("watching for plugin changes; Ctrl-C stops");
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    Ok(())
}
