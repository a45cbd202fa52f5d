//! The glue behind [`crate::export!`]. Hidden from docs: authors only call the macro.
//!
//! `describe_bytes`, `init_bytes` and `handle_bytes` are the whole protocol minus memory; the wasm
//! exports wrap them with allocation, and the native test harness calls them directly, so both paths
//! share one decode, dispatch and encode.

use std::cell::RefCell;
use std::rc::Rc;

use crate::abi::{self, LogLevel, fault_codes};
use crate::codec;
use crate::content::Content;
use crate::plugin::{Ctx, Error, Plugin};
use crate::wire::{Call, CallKind, HOOK_MODIFIERS, Init, Outcome};

thread_local! {
    /// The tables `cauldron_init` prepared. In wasm this lives in linear memory, so the host's
    /// snapshot after init carries it into every call.
    static PREPARED: RefCell<Option<Rc<Content>>> = const { RefCell::new(None) };
}

/// Encode the plugin's manifest, with the ABI version filled in.
pub fn describe_bytes<P: Plugin>() -> Vec<u8> {
    let mut manifest = P::manifest();
    manifest.abi = abi::ABI_VERSION;
    codec::encode(&manifest).unwrap_or_else(|e| {
        crate::sys::log(LogLevel::Error, &format!("cannot encode manifest: {e}"));
        Vec::new()
    })
}

/// Decode an `Init`, prepare its content tables through [`Plugin::prepare`], and encode the
/// `Outcome` (`ok`, or the fault that refuses the load). Never panics on bad input.
pub fn init_bytes<P: Plugin>(input: &[u8]) -> Vec<u8> {
    let outcome = match prepare::<P>(input) {
        Ok(content) => {
            PREPARED.with(|p| *p.borrow_mut() = Some(content));
            crate::after_init();
            Outcome::Ok {
                effects: Vec::new(),
                reply: crate::Doc::nil(),
                modifiers: Vec::new(),
            }
        }
        Err(Error::Reject { code, message } | Error::Fault { code, message }) => {
            Outcome::Fault { code, message }
        }
    };
    encode_outcome(&outcome)
}

/// Decode an `Init` and run [`Plugin::prepare`] on its tables.
pub fn prepare<P: Plugin>(input: &[u8]) -> Result<Rc<Content>, Error> {
    let init: Init = codec::decode(input)
        .map_err(|e| Error::fault(fault_codes::BAD_CALL, format!("cannot decode init: {e}")))?;
    let content = Rc::new(Content::new(init.content));
    P::prepare(&content)?;
    Ok(content)
}

/// Decode a `Call`, run it, and encode the `Outcome`. Never panics on bad input.
///
/// Content tables come from the call when it carries any, else from what `cauldron_init` prepared.
pub fn handle_bytes<P: Plugin>(input: &[u8]) -> Vec<u8> {
    let prepared = PREPARED.with(|p| p.borrow().clone());
    handle_bytes_with::<P>(input, prepared.as_ref())
}

/// [`handle_bytes`] with the prepared content given (the native harness keeps its own).
pub fn handle_bytes_with<P: Plugin>(input: &[u8], prepared: Option<&Rc<Content>>) -> Vec<u8> {
    let outcome = match codec::decode::<Call>(input) {
        Ok(call) => run::<P>(call, prepared),
        Err(e) => Outcome::Fault {
            code: fault_codes::BAD_CALL.into(),
            message: format!("cannot decode call: {e}"),
        },
    };
    let out = encode_outcome(&outcome);
    crate::discard(outcome);
    out
}

fn encode_outcome(outcome: &Outcome) -> Vec<u8> {
    codec::encode(outcome).unwrap_or_else(|e| {
        let fault = Outcome::Fault {
            code: fault_codes::ENCODE.into(),
            message: format!("cannot encode outcome: {e}"),
        };
        // A fault of two short strings always encodes; an empty output is the host's `bad output`.
        codec::encode(&fault).unwrap_or_default()
    })
}

/// Run a decoded call against the plugin.
pub fn run<P: Plugin>(call: Call, prepared: Option<&Rc<Content>>) -> Outcome {
    let kind = call.kind;
    let mut ctx = match prepared {
        Some(content) if call.content.is_empty() => Ctx::with_content(call, Rc::clone(content)),
        _ => Ctx::new(call),
    };
    let result = match kind {
        CallKind::Action => P::handle(&mut ctx).map(|()| Vec::new()),
        CallKind::Hook if ctx.action() == HOOK_MODIFIERS => P::modifiers(&mut ctx),
        CallKind::Hook => Err(Error::unknown_action(ctx.action())),
    };
    match result {
        Ok(modifiers) => {
            let (effects, reply) = ctx.finish();
            Outcome::Ok {
                effects,
                reply,
                modifiers,
            }
        }
        Err(Error::Reject { code, message }) => Outcome::Rejected { code, message },
        Err(Error::Fault { code, message }) => Outcome::Fault { code, message },
    }
}

#[cfg(target_arch = "wasm32")]
#[allow(
    unsafe_code,
    reason = "the one audited module that owns guest memory handed across the ABI"
)]
mod wasm {
    use std::alloc::{Layout, alloc as raw_alloc, dealloc};

    use crate::abi::{self, LogLevel};

    fn layout(len: u32) -> Option<Layout> {
        // Zero-length requests still get one byte so every pointer handed out is real.
        Layout::from_size_align((len as usize).max(1), 1).ok()
    }

    fn install_panic_hook() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                crate::sys::log(LogLevel::Error, &format!("panic: {info}"))
            }));
        });
    }

    /// `cauldron_alloc`: a buffer the host writes the call into. Returns 0 when out of memory.
    pub fn alloc(len: u32) -> u32 {
        match layout(len) {
            // SAFETY: the layout has a non-zero size.
            Some(l) => unsafe { raw_alloc(l) as u32 },
            None => 0,
        }
    }

    /// `cauldron_free`: release a buffer from `alloc` or an output.
    ///
    /// # Safety
    /// `ptr` must come from `alloc(len)` or be an output of `len` bytes, not freed before.
    pub unsafe fn free(ptr: u32, len: u32) {
        if ptr == 0 {
            return;
        }
        if let Some(l) = layout(len) {
            // SAFETY: guaranteed by the caller (the ABI's ownership rules).
            unsafe { dealloc(ptr as *mut u8, l) }
        }
    }

    fn leak(out: Vec<u8>) -> u64 {
        if out.is_empty() {
            return 0;
        }
        let boxed = out.into_boxed_slice();
        let len = boxed.len() as u32;
        let ptr = Box::into_raw(boxed) as *mut u8 as u32;
        abi::pack(ptr, len)
    }

    /// `cauldron_describe`.
    pub fn describe<P: crate::Plugin>() -> u64 {
        install_panic_hook();
        leak(super::describe_bytes::<P>())
    }

    /// `cauldron_init`: takes ownership of the input buffer.
    ///
    /// # Safety
    /// `ptr..ptr+len` must be a buffer from `alloc(len)` that the host filled.
    pub unsafe fn init<P: crate::Plugin>(ptr: u32, len: u32) -> u64 {
        install_panic_hook();
        let out = {
            // SAFETY: the host wrote `len` bytes at `ptr`, inside a buffer from `alloc`.
            let input = unsafe { std::slice::from_raw_parts(ptr as *const u8, len as usize) };
            super::init_bytes::<P>(input)
        };
        // SAFETY: the input buffer came from `alloc(len)` and is not used after this point.
        unsafe { free(ptr, len) };
        leak(out)
    }

    /// `cauldron_handle`: takes ownership of the input buffer.
    ///
    /// # Safety
    /// `ptr..ptr+len` must be a buffer from `alloc(len)` that the host filled.
    pub unsafe fn handle<P: crate::Plugin>(ptr: u32, len: u32) -> u64 {
        install_panic_hook();
        let out = {
            // SAFETY: the host wrote `len` bytes at `ptr`, inside a buffer from `alloc`.
            let input = unsafe { std::slice::from_raw_parts(ptr as *const u8, len as usize) };
            super::handle_bytes::<P>(input)
        };
        // SAFETY: the input buffer came from `alloc(len)` and is not used after this point.
        unsafe { free(ptr, len) };
        leak(out)
    }
}

#[cfg(target_arch = "wasm32")]
pub use wasm::{alloc, describe, free, handle, init};

/// Export a [`Plugin`] as a Cauldron wasm module: generates the ABI v1 exports, `cauldron_init`
/// (pre-initialisation) included.
///
/// ```ignore
/// struct Fortune;
/// impl cauldron_sdk::Plugin for Fortune { /* ... */ }
/// cauldron_sdk::export!(Fortune);
/// ```
///
/// On native targets it expands to nothing, so the crate builds and unit-tests as a normal library.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        // The marker's name below spells the major version; this ties it to the SDK's constant.
        const _: () = assert!($crate::abi::ABI_VERSION == 1, "export! emits the v1 marker");

        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code, reason = "ABI exports are unmangled extern functions")]
        const _: () = {
            #[unsafe(no_mangle)]
            extern "C" fn cauldron_abi_v1() {}

            #[unsafe(no_mangle)]
            extern "C" fn cauldron_alloc(len: u32) -> u32 {
                $crate::__export::alloc(len)
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn cauldron_free(ptr: u32, len: u32) {
                // SAFETY: the host follows the ownership rules of ABI.md.
                unsafe { $crate::__export::free(ptr, len) }
            }

            #[unsafe(no_mangle)]
            extern "C" fn cauldron_describe() -> u64 {
                $crate::__export::describe::<$plugin>()
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn cauldron_init(ptr: u32, len: u32) -> u64 {
                // SAFETY: the host passes a buffer it got from `cauldron_alloc(len)`.
                unsafe { $crate::__export::init::<$plugin>(ptr, len) }
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn cauldron_handle(ptr: u32, len: u32) -> u64 {
                // SAFETY: the host passes a buffer it got from `cauldron_alloc(len)`.
                unsafe { $crate::__export::handle::<$plugin>(ptr, len) }
            }
        };
    };
}
