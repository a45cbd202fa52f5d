//! The Cauldron host: HTTP, WebSocket, storage, Redis services and the action pipeline around the
//! plugin runtime.
//!
//! # Layout
//! - `store`: persistence behind one coarse trait, PostgreSQL and SQLite implementations.
//! - `cache`, `bus`: Redis services (cache, pub/sub, presence, rate limits, leaderboards) with
//!   in-process fallbacks.
//! - `json`: conversion between plugin documents (MessagePack) and stored/served JSON.

pub mod bus;
pub mod cache;
pub mod game;
pub mod json;
pub mod metrics;
pub mod store;
