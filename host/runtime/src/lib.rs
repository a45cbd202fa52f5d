//! Cauldron's plugin runtime: WebAssembly and ABI v1, nothing else. No game rules, SQL or HTTP live
//! here, and no plugin is named.
//!
//! # Layout
//! - `bundle`: [`Bundle`], a plugin version as a unit (module and content tables, one digest), and
//!   its canonical encoding.
//! - `engine`: the one [`Runtime`] (engine, linker, pooling allocator, epoch ticker, [`Limits`]) and
//!   the per-call sandbox.
//! - `module`: loading a [`PluginVersion`]: compile with the sha256-keyed cache, ABI check from
//!   imports/exports, manifest through `describe`.
//! - `preinit`: pre-initialisation: `cauldron_init` once per load, then a snapshot module.
//! - `memory`: the bounds-checked guest-memory view.
//! - `registry`: name → current version (+ previous), statuses, change events.
//! - `watcher`: hot reload from a plugins folder.
//! - `error`: [`PluginError`].

mod bundle;
mod engine;
mod error;
mod memory;
mod module;
mod preinit;
mod registry;
pub mod watcher;

pub use bundle::{
    BUNDLE_FORMAT, BUNDLE_MAGIC, BUNDLE_MEDIA_TYPE, Bundle, MAX_BUNDLE_BYTES, MAX_TABLE_NAME, MAX_TABLES,
};
pub use engine::{EPOCH_TICK, Limits, Profiler, Runtime};
pub use error::{HostFailure, PluginError};
pub use module::{CacheStats, PluginSource, PluginVersion, read_content_dir, sha256_hex};
pub use registry::{
    ALL_BP, Companion, CompanionStatus, PluginStatus, Registry, RegistryEvent, canary_bucket,
};
