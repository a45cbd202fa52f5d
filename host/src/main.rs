//! `cauldron`: the game server host. Configuration → logs → [`state::build`] (the one composition
//! root, shared with the tests: database and migrations, Redis services, plugins, game, rollout,
//! stored plugin artifacts) → HTTP and WebSocket with graceful shutdown. `cauldron migrate` stops
//! after the migrations; `cauldron replay` replays logged actions against a candidate plugin version
//! (`cauldron replay --help`). Every variable is listed by `--help`.

use std::sync::Arc;

use anyhow::Context;
use cauldron_host::config::{Command, Config};
use cauldron_host::{api, state, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("replay") {
        let code = cauldron_host::replay::cli::run(std::env::args().skip(1)).await?;
        std::process::exit(i32::from(code));
    }
    let (command, config) = Config::load().context("invalid configuration")?;
    telemetry::init(&config);
    if config.jwt_secret.is_generated() {
        tracing::warn!(
            "JWT_SECRET not set: using a random key for this process; tokens end at restart (development only)"
        );
    }
    if command == Command::Migrate {
        state::open_store(&config).await?;
        return Ok(());
    }
    let config = Arc::new(config);
    let app = state::build(Arc::clone(&config)).await?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {} (PORT, BIND_ADDR)", config.listen))?;
    // The bound address, not the configured one: with `PORT=0` the system picks the port.
    let bound = listener.local_addr().unwrap_or(config.listen);
    tracing::info!(addr = %bound, "serving");
    app.serve(listener, api::shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("stopped");
    Ok(())
}
