//! `cauldron`: the game server host. The command line and settings (`config::Cli`: `cauldron` alone
//! or `cauldron serve` serves, `cauldron migrate` stops after the migrations, `cauldron plugin`
//! runs the modder's plugin tools, `cauldron replay` replays logged actions against a candidate
//! plugin version, see `cauldron replay --help`) → logs → [`state::build`] (the one composition
//! root, shared with the tests: database and migrations, Redis services, plugins, game, rollout,
//! stored plugin artifacts) → HTTP and WebSocket with graceful shutdown. `cauldron --help` lists
//! every setting with its variable and default.

use std::sync::Arc;

use anyhow::Context;
use cauldron_host::config::{Cli, Command, Config, ServeArgs};
use cauldron_host::{api, state, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cauldron replay` reads the host's settings itself, and its exit status is a report (2 fault,
    // 3 divergence), so a usage error must not leave through clap's status 2.
    if std::env::args().nth(1).as_deref() == Some("replay") {
        let code = cauldron_host::replay::cli::run(std::env::args().skip(1)).await?;
        std::process::exit(i32::from(code));
    }
    let cli = Cli::load().context("invalid configuration")?;
    match cli.into_command() {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(args) => {
            let config = start(args)?;
            state::open_store(&config).await?;
            Ok(())
        }
        Command::Plugin(args) => cauldron_host::plugin_cli::run(args.command)
            .await
            .map_err(|e| anyhow::anyhow!("cauldron plugin: {e}")),
        Command::Replay(args) => {
            let code = cauldron_host::replay::cli::run_args(args).await?;
            std::process::exit(i32::from(code));
        }
    }
}

/// Validate the serving settings and start logging.
fn start(args: ServeArgs) -> anyhow::Result<Config> {
    let config = Config::from_args(args).context("invalid configuration")?;
    telemetry::init(&config);
    if config.jwt_secret.is_generated() {
        tracing::warn!(
            "JWT_SECRET not set: using a random key for this process; tokens end at restart (development only)"
        );
    }
    Ok(config)
}

/// Build the host and serve until a shutdown signal.
async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = Arc::new(start(args)?);
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
