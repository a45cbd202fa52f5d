//! [`PluginError`]: everything that can go wrong loading or calling a plugin.

use thiserror::Error;

/// A plugin failed to load, or a call into it did not produce an outcome.
///
/// [`PluginError::is_fault`] is the one place that decides whether an error is the plugin's fault
/// (counted, HTTP 500), a rule rejection (the player's problem, HTTP 4xx), or the host's own trouble
/// ([`PluginError::Unavailable`], HTTP 503, counted apart).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum PluginError {
    /// The bytes are not a valid wasm module.
    #[error("compile error: {0}")]
    Compile(String),
    /// The module speaks another ABI major version (`None`: it carries no Cauldron version at all).
    #[error("ABI mismatch: module has version {got:?}, host supports {supported}")]
    AbiMismatch {
        /// Version found in the module's imports or marker export.
        got: Option<u32>,
        /// What this host implements.
        supported: u32,
    },
    /// A required export is missing or has the wrong type.
    #[error("missing or malformed export `{0}`")]
    MissingExport(String),
    /// The module imports something the host does not provide (ambient I/O, clocks, entropy).
    #[error("unsupported import `{0}`")]
    BadImport(String),
    /// The manifest is invalid or does not fit the file it came from.
    #[error("bad manifest: {0}")]
    BadManifest(String),
    /// A content table could not be read or parsed.
    #[error("bad content: {0}")]
    BadContent(String),
    /// The guest trapped (a panic, `unreachable`, an out-of-bounds access).
    #[error("trap: {0}")]
    Trap(String),
    /// The call used up its fuel budget.
    #[error("out of fuel")]
    OutOfFuel,
    /// The call ran past its wall-clock deadline.
    #[error("deadline exceeded")]
    Deadline,
    /// The guest tried to grow its memory past the cap.
    #[error("memory limit exceeded")]
    MemoryLimit,
    /// The guest's output was out of bounds, too large, or did not decode.
    #[error("bad output: {0}")]
    BadOutput(String),
    /// The plugin reported an internal failure (`Outcome::Fault`).
    #[error("plugin fault ({code}): {message}")]
    GuestFault {
        /// Fault code from the guest.
        code: String,
        /// Detail from the guest.
        message: String,
    },
    /// The rules said no (`Outcome::Rejected`): not a fault.
    #[error("rejected ({code}): {message}")]
    Rejected {
        /// Rejection code.
        code: String,
        /// Message for the player.
        message: String,
    },
    /// The host could not run the call at all (shutting down, the call over the size cap, the
    /// instance pool exhausted): not the plugin's fault.
    #[error("unavailable ({}): {message}", reason.as_str())]
    Unavailable {
        /// Why, as a stable label for metrics.
        reason: HostFailure,
        /// Detail for operators.
        message: String,
    },
}

/// Why the host could not run a call or a load; none of these is the plugin's doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostFailure {
    /// The runtime is shutting down.
    ShuttingDown,
    /// The encoded call is over the ABI's size cap (the player's state is too large to send).
    CallTooLarge,
    /// Every instance slot of the pooling allocator is in use.
    PoolExhausted,
    /// Anything else on the host's side (engine set-up, a blocking task that died, the file watcher).
    Internal,
}

impl HostFailure {
    /// A short stable name for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ShuttingDown => "shutting_down",
            Self::CallTooLarge => "call_too_large",
            Self::PoolExhausted => "pool_exhausted",
            Self::Internal => "internal",
        }
    }
}

impl PluginError {
    /// A host-side failure with this reason.
    pub fn host(reason: HostFailure, message: impl Into<String>) -> Self {
        Self::Unavailable {
            reason,
            message: message.into(),
        }
    }

    /// Whether this is the plugin's failure: neither a rule rejection nor the host's own trouble.
    pub fn is_fault(&self) -> bool {
        !matches!(self, Self::Rejected { .. } | Self::Unavailable { .. })
    }

    /// The host's reason, when the host (not the plugin) could not run the call.
    pub fn host_failure(&self) -> Option<HostFailure> {
        match self {
            Self::Unavailable { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    /// A short stable name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Compile(_) => "compile",
            Self::AbiMismatch { .. } => "abi_mismatch",
            Self::MissingExport(_) => "missing_export",
            Self::BadImport(_) => "bad_import",
            Self::BadManifest(_) => "bad_manifest",
            Self::BadContent(_) => "bad_content",
            Self::Trap(_) => "trap",
            Self::OutOfFuel => "out_of_fuel",
            Self::Deadline => "deadline",
            Self::MemoryLimit => "memory_limit",
            Self::BadOutput(_) => "bad_output",
            Self::GuestFault { .. } => "guest_fault",
            Self::Rejected { .. } => "rejected",
            Self::Unavailable { .. } => "unavailable",
        }
    }
}
