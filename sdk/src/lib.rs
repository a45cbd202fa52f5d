#![doc = include_str!("../README.md")]
//!
//! # Layout
//! - [`abi`]: names, version, limits, packed pointers, reserved error codes.
//! - [`wire`]: the messages (`Call`, `Outcome`, `Manifest`, `Effect`, ...).
//! - [`codec`]: the one MessagePack encoder/decoder.
//! - [`Doc`]: an embedded MessagePack document.
//! - [`Content`], [`Table`]: content tables, decoded once per load.
//! - [`Plugin`], [`Ctx`], [`Error`]: what authors implement and use.
//! - [`Actions`], [`Action`], [`Param`]: the action table, each action declared once.
//! - [`rng`]: the deterministic RNG.
//! - [`export!`]: generates the wasm exports.
//! - `testing` (feature `testing`): the native harness.

pub mod abi;
mod actions;
#[cfg(all(target_arch = "wasm32", feature = "bump-allocator"))]
mod bump;
pub mod codec;
mod content;
mod doc;
#[doc(hidden)]
pub mod export;
mod mem;
pub mod paging;
mod plugin;
pub mod rng;
mod sys;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wire;

pub use actions::{Action, Actions, Handler, Param};
pub use content::{Content, Table};
pub use doc::Doc;
pub use plugin::{Ctx, Error, Plugin};
pub use sys::log;

/// The guest's allocator (see `bump.rs`).
#[cfg(all(target_arch = "wasm32", feature = "bump-allocator"))]
#[global_allocator]
static ALLOCATOR: bump::Bump = bump::Bump::new();

/// Leave free memory behind `cauldron_init` for calls to allocate from without growing.
pub(crate) fn after_init() {
    #[cfg(all(target_arch = "wasm32", feature = "bump-allocator"))]
    bump::headroom(&ALLOCATOR);
}

/// Let go of a value at the end of a call. With the bump allocator in a wasm build, the instance
/// is thrown away after the call (that is the allocator's premise), so walking the value to free
/// it (every map node and string of the call) is wasted work: it is forgotten instead. Everywhere
/// else it is dropped as usual.
pub(crate) fn discard<T>(value: T) {
    #[cfg(all(target_arch = "wasm32", feature = "bump-allocator"))]
    std::mem::forget(value);
    #[cfg(not(all(target_arch = "wasm32", feature = "bump-allocator")))]
    drop(value);
}

/// Glue used by [`export!`]; not part of the public API.
#[doc(hidden)]
pub mod __export {
    pub use crate::export::*;
}

/// Everything a plugin usually needs: `use cauldron_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::abi::{LogLevel, reject_codes};
    pub use crate::rng::Rng;
    pub use crate::wire::{
        ActionSpec, Buff, Effect, Entity, HookSpec, Manifest, Modifier, OtherPlayer, ParamSpec, ParamType,
        PlayerState, Scope, Section,
    };
    pub use crate::{Action, Actions, Content, Ctx, Doc, Error, Param, Plugin, Table, export, log};
}
