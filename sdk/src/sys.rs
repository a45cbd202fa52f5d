//! The host imports, and their native stand-ins so plugins unit-test without wasm.
//!
//! This is one of the two modules allowed `unsafe` (the other is the export glue).

use crate::abi::LogLevel;

#[cfg(target_arch = "wasm32")]
mod raw {
    #[allow(unsafe_code, reason = "declaring the host import is an FFI boundary")]
    #[link(wasm_import_module = "cauldron_v1")]
    unsafe extern "C" {
        /// `cauldron_v1.log(level, ptr, len)`.
        ///
        /// # Safety
        /// `ptr..ptr+len` must be readable guest memory; the host copies it before returning.
        ///
        /// # Traps
        /// Never: an out-of-bounds range or invalid UTF-8 is dropped by the host.
        pub(super) fn log(level: u32, ptr: *const u8, len: usize);
    }
}

/// Send a message to the host's log (natively: to the harness's capture buffer).
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    #[allow(unsafe_code, reason = "the pointer and length come from a live &str")]
    // SAFETY: `message` is a valid UTF-8 slice for the duration of the call.
    unsafe {
        raw::log(level as u32, message.as_ptr(), message.len());
    }
    #[cfg(not(target_arch = "wasm32"))]
    native::push(level, message);
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod native {
    use std::cell::RefCell;

    use crate::abi::LogLevel;

    thread_local! {
        static LINES: RefCell<Vec<(LogLevel, String)>> = const { RefCell::new(Vec::new()) };
    }

    pub(crate) fn push(level: LogLevel, message: &str) {
        LINES.with(|l| l.borrow_mut().push((level, message.to_owned())));
    }

    /// Take every line logged on this thread so far.
    #[cfg_attr(
        not(feature = "testing"),
        allow(dead_code, reason = "read by the testing harness")
    )]
    pub(crate) fn take() -> Vec<(LogLevel, String)> {
        LINES.with(|l| std::mem::take(&mut *l.borrow_mut()))
    }
}
