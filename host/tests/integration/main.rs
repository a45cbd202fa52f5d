//! The host's integration tests, one binary with one helper kit ([`common`]): each module is a
//! suite, run by `cargo test -p cauldron-host --test integration [SUITE::]`.
//!
//! - [`api`]: the HTTP API on both backends.
//! - [`cli`]: the `cauldron` binary's command line and settings.
//! - [`bundles`]: plugin bundles through the admin API: versions by digest, content-only changes,
//!   rollback with content, kept versions.
//! - [`replay`]: replaying logged actions against candidate versions (the library, the admin API
//!   and `cauldron replay`).
//! - [`pipeline`]: the action pipeline against the real stores and services.
//! - [`store`]: the SQL store, one suite over PostgreSQL and SQLite.
//! - [`redis_services`]: the Redis services and their in-process equivalents.
//! - [`ws`]: the WebSocket session.
//! - [`e2e`]: the game played through the API.
//! - [`cluster`]: several real `cauldron` processes on one database and Redis prefix.
//! - [`nginx`]: the deployment behind a real nginx.
//! - [`browser`]: the web client in headless Chromium.
//! - [`plugin_cli`]: `cauldron plugin new | build | publish | status` from nothing to a served plugin.
//!
//! What each suite needs (PostgreSQL, Redis, the plugins built for wasm32, Chromium, nginx) is in
//! its module's documentation and in `common`.

#[macro_use]
mod common;

mod api;
mod browser;
mod bundles;
mod cli;
mod cluster;
mod e2e;
mod nginx;
mod pipeline;
mod plugin_cli;
mod redis_services;
mod replay;
mod store;
mod ws;
