//! Logs: a `tracing` subscriber writing pretty lines or JSON objects (`LOG_FORMAT`), filtered by
//! `LOG_LEVEL`. Request ids come from the HTTP trace span (see `api`), so every line a request logs
//! carries its id in both formats.

use crate::config::{Config, LogFormat};

/// Install the global subscriber. Call once, first thing; a second call is ignored (tests).
pub fn init(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match config.log_format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    if result.is_err() {
        tracing::debug!("a log subscriber was already installed");
    }
}
