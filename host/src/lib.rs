//! The Cauldron host: HTTP, WebSocket, storage, Redis services and the action pipeline around the
//! plugin runtime.
//!
//! # Layout
//! - `store`: persistence behind one coarse trait, PostgreSQL and SQLite implementations.
//! - `cache`, `bus`: Redis services (cache, pub/sub, presence, rate limits, leaderboards) with
//!   in-process fallbacks.
//! - `game`: the action pipeline; `metrics`: Prometheus metrics.
//! - `json`: conversion between plugin documents (MessagePack) and stored/served JSON.
//! - `config`: the command line and settings (flags and environment variables), validated once;
//!   `telemetry`: logs.
//! - `auth`: password and username rules, argon2id hashing, HS256 tokens.
//! - `state`: the composition root: `build` wires a host (used by `main` and the tests alike), and
//!   the app state whose parts handlers extract.
//! - `rollout`: plugin uploads, rollbacks and unloads across hosts, and the start-up load of stored
//!   plugin artifacts.
//! - `replay`: re-running logged actions against a candidate plugin version (`cauldron replay`,
//!   the admin API's replay route).
//! - `clock`: the game clock (system time in production, movable in tests).
//! - `api`: the HTTP API (axum), its error type, extractors and routes; the WebSocket endpoint and
//!   the admin routes over `rollout`.
//! - `shutdown`: the shutdown signal fanned out to sockets and background tasks.
//! - `plugin_cli`: `cauldron plugin new | build | publish | status`, the modder's tools.

pub mod api;
pub mod auth;
pub mod bus;
pub mod cache;
pub mod clock;
pub mod config;
pub mod game;
pub mod json;
pub mod metrics;
pub mod plugin_cli;
pub mod replay;
pub mod rollout;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod telemetry;
