//! The names, numbers and limits of ABI v1, shared by the guest glue and the host.
//!
//! `ABI.md` beside the crate is the normative text; this module is its machine-readable half.

/// The major ABI version this SDK implements.
pub const ABI_VERSION: u32 = 1;

/// The module name under which the host provides its imports (`cauldron_v1`).
pub const IMPORT_MODULE: &str = "cauldron_v1";
/// Prefix of [`IMPORT_MODULE`]; the digits after it are the major version.
pub const IMPORT_MODULE_PREFIX: &str = "cauldron_v";

/// The exported marker function whose name carries the major version (`cauldron_abi_v1`).
pub const EXPORT_MARKER: &str = "cauldron_abi_v1";
/// Prefix of [`EXPORT_MARKER`]; the digits after it are the major version.
pub const EXPORT_MARKER_PREFIX: &str = "cauldron_abi_v";

/// Guest export: the linear memory.
pub const EXPORT_MEMORY: &str = "memory";
/// Guest export: `(len: i32) -> i32`, a buffer of `len` bytes the host may write into.
pub const EXPORT_ALLOC: &str = "cauldron_alloc";
/// Guest export: `(ptr: i32, len: i32)`, release a buffer from `cauldron_alloc` or an output.
pub const EXPORT_FREE: &str = "cauldron_free";
/// Guest export: `() -> i64`, a packed pointer to the encoded [`crate::wire::Manifest`].
pub const EXPORT_DESCRIBE: &str = "cauldron_describe";
/// Guest export: `(ptr: i32, len: i32) -> i64`, takes an encoded [`crate::wire::Call`] and returns a
/// packed pointer to the encoded [`crate::wire::Outcome`].
pub const EXPORT_HANDLE: &str = "cauldron_handle";

/// Optional guest export: `(ptr: i32, len: i32) -> i64`, takes an encoded [`crate::wire::Init`]
/// once per load and returns a packed pointer to an encoded [`crate::wire::Outcome`]. A plugin that
/// has it is pre-initialised: the host snapshots it after this call and starts every call from the
/// snapshot, sending no content tables with calls.
pub const EXPORT_INIT: &str = "cauldron_init";

/// Every export a v1 plugin must have, in the order the host checks them.
pub const REQUIRED_EXPORTS: [&str; 6] = [
    EXPORT_MEMORY,
    EXPORT_MARKER,
    EXPORT_ALLOC,
    EXPORT_FREE,
    EXPORT_DESCRIBE,
    EXPORT_HANDLE,
];

/// Host import `log(level: i32, ptr: i32, len: i32)`: a UTF-8 message from the guest.
pub const IMPORT_LOG: &str = "log";

/// Largest encoded `Call` the host sends (4 MiB).
pub const MAX_CALL_BYTES: usize = 4 << 20;
/// Largest encoded `Outcome` or `Manifest` the host accepts (1 MiB); larger output is a fault.
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;
/// Largest single log message the host keeps (longer ones are cut).
pub const MAX_LOG_BYTES: usize = 4096;
/// Deepest nesting of arrays and maps in a document the host stores or shows (params, entity data,
/// plugin state, replies, event data): `{}` and `[]` are one level, `{"a": [1]}` two. Deeper output is
/// a `bad_effect` fault; deeper params are refused with HTTP 400 before any plugin runs.
pub const MAX_DOC_DEPTH: usize = 64;

/// The fault kind of a query action (`ActionSpec::query`) whose outcome carries effects: the host
/// writes nothing and counts a plugin fault, and the SDK's test harness answers such a run with a
/// `Fault` of this code.
pub const QUERY_EFFECTS: &str = "query_effects";

/// Pack a guest pointer and length into the `i64` that `describe` and `handle` return.
///
/// The pointer sits in the high 32 bits and the length in the low 32 bits.
pub const fn pack(ptr: u32, len: u32) -> u64 {
    ((ptr as u64) << 32) | len as u64
}

/// Split a packed `i64` from `describe`/`handle` into `(ptr, len)`.
pub const fn unpack(packed: u64) -> (u32, u32) {
    ((packed >> 32) as u32, packed as u32)
}

/// Parse the major version out of a versioned name such as `cauldron_v7` given its prefix.
pub fn version_suffix(name: &str, prefix: &str) -> Option<u32> {
    name.strip_prefix(prefix)?.parse().ok()
}

/// Log levels of the `log` import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum LogLevel {
    /// Fine-grained detail.
    Trace = 0,
    /// Debugging detail.
    Debug = 1,
    /// Normal operation.
    Info = 2,
    /// Something odd, not fatal.
    Warn = 3,
    /// A failure; the glue logs panics at this level just before the trap.
    Error = 4,
}

impl LogLevel {
    /// The level for a raw `i32` from the guest; unknown values read as `Info`.
    pub fn from_raw(raw: u32) -> Self {
        match raw {
            0 => Self::Trace,
            1 => Self::Debug,
            3 => Self::Warn,
            4 => Self::Error,
            _ => Self::Info,
        }
    }
}

/// Declares the reserved error codes once, with their meaning.
macro_rules! codes {
    ($(#[$m:meta])* $name:ident { $($(#[$doc:meta])* $konst:ident = $text:literal,)* }) => {
        $(#[$m])*
        pub mod $name {
            $($(#[$doc])* pub const $konst: &str = $text;)*
            /// Every code in this list.
            pub const ALL: &[&str] = &[$($konst),*];
        }
    };
}

codes! {
    /// Reserved `Rejected` codes with a fixed meaning for the host (other codes are the plugin's own).
    reject_codes {
        /// The params did not decode into what the action expects (HTTP 400).
        BAD_PARAMS = "bad_params",
        /// The plugin does not know the action (HTTP 404).
        UNKNOWN_ACTION = "unknown_action",
        /// The player lacks a currency or item the action spends.
        INSUFFICIENT = "insufficient",
        /// The target entity does not exist or belongs to someone else.
        NOT_FOUND = "not_found",
    }
}

codes! {
    /// `Fault` codes the glue produces; a fault is the plugin's failure, never the player's.
    fault_codes {
        /// The guest could not decode the `Call` it was given.
        BAD_CALL = "bad_call",
        /// A content table the plugin needs is missing or does not decode.
        BAD_CONTENT = "bad_content",
        /// The guest could not encode its own outcome.
        ENCODE = "encode",
        /// Any other internal error of the plugin.
        INTERNAL = "internal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trips_extremes() {
        for (p, l) in [(0, 0), (1, 2), (u32::MAX, u32::MAX), (0x1000, 0)] {
            assert_eq!(unpack(pack(p, l)), (p, l));
        }
    }

    #[test]
    fn version_suffix_reads_digits_only() {
        assert_eq!(version_suffix("cauldron_v1", IMPORT_MODULE_PREFIX), Some(1));
        assert_eq!(version_suffix("cauldron_abi_v12", EXPORT_MARKER_PREFIX), Some(12));
        assert_eq!(version_suffix("cauldron_vx", IMPORT_MODULE_PREFIX), None);
        assert_eq!(version_suffix("env", IMPORT_MODULE_PREFIX), None);
        assert_eq!(EXPORT_MARKER, format!("{EXPORT_MARKER_PREFIX}{ABI_VERSION}"));
        assert_eq!(IMPORT_MODULE, format!("{IMPORT_MODULE_PREFIX}{ABI_VERSION}"));
    }
}
