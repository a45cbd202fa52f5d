//! The process-wide wasmtime [`Engine`] and [`Linker`], narrowed to Cauldron's house rules, and the
//! per-call sandbox ([`Runtime::call_bytes`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cauldron_sdk::abi::{self, LogLevel};
use wasmtime::{
    Caller, Config, Enabled, Engine, InstanceAllocationStrategy, Linker, PoolingAllocationConfig,
    ResourceLimiter, Store, Trap, UpdateDeadline,
};

use crate::memory::GuestSlice;
use crate::module::PluginVersion;
use crate::{HostFailure, PluginError};

/// How often the epoch ticker advances the engine's epoch; deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Epoch ticks a call from an async task may run inline on the worker thread (2 to 4 ms) before
/// it is moved onto a yielding fiber; see [`Runtime::run_guest_metered`].
pub(crate) const INLINE_TICKS: u64 = 2;

/// Most log lines kept per call (the rest are counted, not stored).
const MAX_LOG_LINES: usize = 64;

/// What one run of the guest logged, held until it is known whether that run answers the call
/// (see [`Runtime::run_guest_metered`]), so that each line is written once.
pub(crate) struct GuestLogs {
    plugin: Arc<str>,
    lines: Vec<(LogLevel, String)>,
    /// Lines past [`MAX_LOG_LINES`], counted only.
    dropped: usize,
}

impl GuestLogs {
    /// Write the lines to the host's log, at a level below the guest's own: a plugin's error is
    /// a warning for the host.
    pub(crate) fn emit(self) {
        let plugin = &*self.plugin;
        for (level, message) in &self.lines {
            match level {
                LogLevel::Error => tracing::warn!(plugin, "{message}"),
                LogLevel::Warn => tracing::info!(plugin, "{message}"),
                _ => tracing::debug!(plugin, "{message}"),
            }
        }
        if self.dropped > 0 {
            tracing::info!(
                plugin,
                dropped = self.dropped,
                "plugin log lines over the per-call limit were dropped"
            );
        }
    }
}

/// One finished run of the guest: its checked output or typed error, the fuel it used (whatever
/// its result) and what it logged.
pub(crate) struct Ran {
    result: Result<Vec<u8>, PluginError>,
    fuel: u64,
    logs: GuestLogs,
}

impl Ran {
    /// A run that never reached the guest.
    fn failed(plugin: Arc<str>, error: PluginError) -> Self {
        Self {
            result: Err(error),
            fuel: 0,
            logs: GuestLogs {
                plugin,
                lines: Vec::new(),
                dropped: 0,
            },
        }
    }

    /// This run answers the call: write its log lines and give its result and fuel.
    pub(crate) fn answer(self) -> (Result<Vec<u8>, PluginError>, u64) {
        self.logs.emit();
        (self.result, self.fuel)
    }
}

/// Resource limits for plugin calls. Every field has a safe default.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Fuel per call (about one unit per wasm instruction).
    pub fuel: u64,
    /// Wall-clock budget per call.
    pub deadline: Duration,
    /// Largest linear memory a plugin may grow to.
    pub memory_bytes: usize,
    /// Largest output (`Outcome` or `Manifest`) accepted, checked before decoding.
    pub max_output_bytes: usize,
    /// Calls that may run at once; sizes the instance pool and the call semaphore.
    pub max_concurrent_calls: usize,
    /// Folder for compiled modules; `None` keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Pre-initialise plugins that export `cauldron_init` (ABI.md §4.1). Off, they get their
    /// content tables in every call instead (slower; for comparison and debugging).
    pub preinitialise: bool,
    /// Which profiler, if any, is told the names of compiled plugin functions.
    pub profiler: Profiler,
}

/// A profiler the engine tells about the machine code it compiles, so profiles of the host name the
/// plugins' functions instead of showing anonymous addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Profiler {
    /// None: compiled code is anonymous to profilers.
    #[default]
    None,
    /// `perf`'s map file, `/tmp/perf-PID.map`, which `perf report` reads to name guest functions.
    PerfMap,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 100_000_000,
            deadline: Duration::from_millis(500),
            memory_bytes: 64 << 20,
            max_output_bytes: abi::MAX_OUTPUT_BYTES,
            max_concurrent_calls: std::thread::available_parallelism().map_or(4, |n| n.get() * 2),
            cache_dir: None,
            preinitialise: true,
            profiler: Profiler::None,
        }
    }
}

/// What one call's `Store` carries.
pub(crate) struct CallState {
    limiter: MemoryCap,
    pub(crate) logs: Vec<(LogLevel, String)>,
    /// Log lines past [`MAX_LOG_LINES`].
    dropped_logs: usize,
    plugin: Arc<str>,
    /// On a fiber: epoch ticks the call may still run before it is interrupted.
    ticks_left: u64,
}

impl CallState {
    /// The state of a fresh call of `plugin` whose memory may grow to `memory_cap` bytes.
    fn new(memory_cap: usize, plugin: Arc<str>) -> Self {
        Self {
            limiter: MemoryCap {
                cap: memory_cap,
                hit: false,
            },
            logs: Vec::new(),
            dropped_logs: 0,
            plugin,
            ticks_left: 0,
        }
    }

    pub(crate) fn for_bench(plugin: &PluginVersion) -> Self {
        Self::new(usize::MAX, plugin.name_arc())
    }
}

/// Refuses memory growth past the cap and remembers that it did, so the resulting trap can be
/// reported as [`PluginError::MemoryLimit`] rather than a generic trap.
struct MemoryCap {
    cap: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= TABLE_ELEMENTS)
    }
}

/// Largest table (function pointers) a plugin may have.
const TABLE_ELEMENTS: usize = 20_000;

/// The plugin runtime: one engine, one linker, a bounded number of concurrent sandboxed calls.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<CallState>,
    pub(crate) limits: Limits,
    pub(crate) permits: Arc<tokio::sync::Semaphore>,
    pub(crate) cache: crate::module::ModuleCache,
    deadline_ticks: u64,
}

impl Runtime {
    /// Build the engine and linker and start the epoch ticker.
    pub fn new(limits: Limits) -> Result<Self, PluginError> {
        let slots = u32::try_from(limits.max_concurrent_calls + 8).unwrap_or(u32::MAX);
        let mut pool = PoolingAllocationConfig::default();
        pool
            // One instance, memory and table per concurrent call (plus a few for loads): a plugin
            // is a single core module with one memory and at most one table.
            .total_core_instances(slots)
            .total_memories(slots)
            .total_tables(slots)
            .total_component_instances(0)
            .max_memories_per_module(1)
            .max_tables_per_module(1)
            .table_elements(TABLE_ELEMENTS)
            // Hard ceiling of the slot; the per-call limiter enforces `memory_bytes` below it.
            .max_memory_size(limits.memory_bytes)
            // Keep the first pages of a slot mapped between calls and reset only the pages the
            // last call dirtied (PAGEMAP_SCAN where the kernel has it), instead of madvise-ing the
            // slot away and paying a page fault for every page the next call touches.
            .linear_memory_keep_resident(2 << 20)
            .table_keep_resident(64 << 10)
            .pagemap_scan(Enabled::Auto)
            // Calls that outlast the inline budget run on fibers (`*_async`, see
            // `Runtime::run_guest_metered`): one stack per concurrent call. Stacks are reused
            // without zeroing; each call's guest state lives in its linear memory, which is reset,
            // not on this native stack.
            .total_stacks(slots);

        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .epoch_interruption(true)
            .consume_fuel(true)
            // Bit-identical floats on every machine, so replays match.
            .cranelift_nan_canonicalization(true)
            .parallel_compilation(true);
        match limits.profiler {
            Profiler::None => {}
            Profiler::PerfMap => {
                config.profiler(wasmtime::ProfilingStrategy::PerfMap);
            }
        }
        let engine = Engine::new(&config)
            .map_err(|e| PluginError::host(HostFailure::Internal, format!("engine: {e}")))?;

        let mut linker: Linker<CallState> = Linker::new(&engine);
        register_host_functions(&mut linker)?;

        let ticks = limits
            .deadline
            .as_micros()
            .div_ceil(EPOCH_TICK.as_micros())
            .max(1);
        // The first tick may come at once, so one more than the deadline needs.
        let deadline_ticks = u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1);
        let cache = crate::module::ModuleCache::new(&engine, limits.cache_dir.clone());
        spawn_epoch_ticker(&engine);
        let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_concurrent_calls.max(1)));
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                limits,
                permits,
                cache,
                deadline_ticks,
            }),
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Run one call synchronously in a fresh sandbox: `input` is an encoded `Call` (or nothing, for
    /// `describe`), the result is the guest's raw output bytes after bounds and size checks.
    ///
    /// This holds the thread for the whole call; async callers use [`Runtime::call`].
    pub(crate) fn run_guest(
        &self,
        plugin: &PluginVersion,
        input: Option<&[u8]>,
    ) -> Result<Vec<u8>, PluginError> {
        self.run_guest_sync(plugin, input, self.inner.deadline_ticks)
            .answer()
            .0
    }

    /// Run one call from an async task: first inline on this thread with a budget of
    /// [`INLINE_TICKS`] epoch ticks (a few milliseconds; nearly every call needs microseconds),
    /// and, should it run out, again from the start on a fiber that yields to the executor at
    /// every tick, under the full deadline (counted afresh). Calls are pure (everything comes in
    /// the `Call`), so the second run answers exactly as the first would have. Also reports the
    /// fuel the answering run used. Only the answering run's log lines are written.
    pub(crate) async fn run_guest_metered(
        &self,
        plugin: &PluginVersion,
        input: &[u8],
    ) -> (Result<Vec<u8>, PluginError>, u64) {
        let full = self.inner.deadline_ticks;
        if full <= INLINE_TICKS {
            return self.run_guest_sync(plugin, Some(input), full).answer();
        }
        let inline = self.run_guest_sync(plugin, Some(input), INLINE_TICKS);
        if !matches!(inline.result, Err(PluginError::Deadline)) {
            return inline.answer();
        }
        // The inline run's lines are dropped: the fiber runs the call from the start and logs
        // them again.
        self.run_guest_on_fiber(plugin, input).await.answer()
    }

    /// One call (or `describe`, without input) in a fresh sandbox on this thread, interrupted
    /// after `ticks` epoch ticks.
    pub(crate) fn run_guest_sync(&self, plugin: &PluginVersion, input: Option<&[u8]>, ticks: u64) -> Ran {
        let mut store = match self.new_store(plugin.name_arc()) {
            Ok(s) => s,
            Err(e) => return Ran::failed(plugin.name_arc(), e),
        };
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        let result = (|| -> Result<Vec<u8>, wasmtime::Error> {
            let instance = plugin.pre.instantiate(&mut store)?;
            let ex = &plugin.exports;
            let memory = guest_memory(&instance, &mut store, ex)?;
            let packed = match input {
                None => ex.describe.call(&instance, &mut store, ())?,
                Some(bytes) => {
                    let ptr = ex.alloc.call(&instance, &mut store, input_len(bytes)?)?;
                    write_input(&mut store, memory, ptr, bytes)?;
                    ex.handle.call(&instance, &mut store, (ptr, input_len(bytes)?))?
                }
            };
            Ok(read_output(&store, memory, packed, self.inner.limits.max_output_bytes)?.to_vec())
        })();
        self.settle(&mut store, result)
    }

    /// One call in a fresh sandbox on a fiber (wasmtime's `*_async`), yielding to the executor at
    /// every epoch tick: a long call shares its worker thread instead of holding it, and the
    /// deadline still counts every tick.
    async fn run_guest_on_fiber(&self, plugin: &PluginVersion, input: &[u8]) -> Ran {
        let mut store = match self.new_store(plugin.name_arc()) {
            Ok(s) => s,
            Err(e) => return Ran::failed(plugin.name_arc(), e),
        };
        // At every epoch tick: count it against the deadline, and let the executor run other
        // tasks before going on.
        store.data_mut().ticks_left = self.inner.deadline_ticks;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut cx| {
            let state = cx.data_mut();
            if state.ticks_left <= 1 {
                return Ok(UpdateDeadline::Interrupt);
            }
            state.ticks_left -= 1;
            Ok(UpdateDeadline::Yield(1))
        });
        let result = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            let ex = &plugin.exports;
            let memory = guest_memory(&instance, &mut store, ex)?;
            let alloc = ex.alloc.get(&instance, &mut store)?;
            let handle = ex.handle.get(&instance, &mut store)?;
            let ptr = alloc.call_async(&mut store, input_len(input)?).await?;
            write_input(&mut store, memory, ptr, input)?;
            let packed = handle.call_async(&mut store, (ptr, input_len(input)?)).await?;
            Ok(read_output(&store, memory, packed, self.inner.limits.max_output_bytes)?.to_vec())
        }
        .await;
        self.settle(&mut store, result)
    }

    /// A finished run's typed result, the fuel it used (whatever its result) and its log lines.
    fn settle(&self, store: &mut Store<CallState>, result: Result<Vec<u8>, wasmtime::Error>) -> Ran {
        let fuel = self
            .inner
            .limits
            .fuel
            .saturating_sub(store.get_fuel().unwrap_or(0));
        let result = result.map_err(|err| classify(err, store.data()));
        Ran {
            result,
            fuel,
            logs: take_logs(store.data_mut()),
        }
    }

    /// A store for one call: memory cap and fuel budget from the limits, and the deadline of a
    /// blocking call (callers running on a fiber replace it with a yielding one).
    pub(crate) fn new_store(&self, plugin: Arc<str>) -> Result<Store<CallState>, PluginError> {
        let inner = &self.inner;
        let mut store = Store::new(&inner.engine, CallState::new(inner.limits.memory_bytes, plugin));
        store.limiter(|s| &mut s.limiter);
        store
            .set_fuel(inner.limits.fuel)
            .map_err(|e| PluginError::host(HostFailure::Internal, e.to_string()))?;
        store.set_epoch_deadline(inner.deadline_ticks);
        store.epoch_deadline_trap();
        Ok(store)
    }
}

/// The instance's linear memory, at the export location resolved at load.
fn guest_memory(
    instance: &wasmtime::Instance,
    store: &mut Store<CallState>,
    ex: &crate::module::Exports,
) -> Result<wasmtime::Memory, wasmtime::Error> {
    instance
        .get_module_export(store, &ex.memory)
        .and_then(|e| e.into_memory())
        .ok_or_else(|| wasmtime::format_err!("memory export vanished"))
}

fn input_len(bytes: &[u8]) -> Result<u32, wasmtime::Error> {
    u32::try_from(bytes.len()).map_err(|_| wasmtime::format_err!("input too large"))
}

/// Copy a call's input into the buffer the guest's `cauldron_alloc` returned; `cauldron_handle`
/// (or `cauldron_init`) then takes ownership of it.
pub(crate) fn write_input(
    store: &mut Store<CallState>,
    memory: wasmtime::Memory,
    ptr: u32,
    bytes: &[u8],
) -> Result<(), wasmtime::Error> {
    if ptr == 0 {
        return Err(wasmtime::Error::new(BadOutputMarker(
            "cauldron_alloc returned null".into(),
        )));
    }
    memory.write(&mut *store, ptr as usize, bytes).map_err(|_| {
        wasmtime::Error::new(BadOutputMarker(format!(
            "cauldron_alloc returned {ptr}, out of bounds"
        )))
    })
}

/// The guest's output named by a packed pointer, bounds- and size-checked before anyone decodes it.
pub(crate) fn read_output(
    store: &Store<CallState>,
    memory: wasmtime::Memory,
    packed: u64,
    max_output_bytes: usize,
) -> Result<&[u8], wasmtime::Error> {
    let (ptr, len) = abi::unpack(packed);
    GuestSlice { ptr, len }
        .read(memory.data(store), max_output_bytes)
        .map_err(|e| wasmtime::Error::new(BadOutputMarker(e.to_string())))
}

/// Carries a bad-output reason through wasmtime's error type to [`classify`].
#[derive(Debug)]
pub(crate) struct BadOutputMarker(pub(crate) String);

impl std::fmt::Display for BadOutputMarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadOutputMarker {}

/// Move a store's log lines out, to be written once it is known whether its run answers.
pub(crate) fn take_logs(state: &mut CallState) -> GuestLogs {
    GuestLogs {
        plugin: state.plugin.clone(),
        lines: std::mem::take(&mut state.logs),
        dropped: std::mem::take(&mut state.dropped_logs),
    }
}

/// Turn a wasmtime error from a call into a typed [`PluginError`].
pub(crate) fn classify(err: wasmtime::Error, state: &CallState) -> PluginError {
    if let Some(bad) = err.downcast_ref::<BadOutputMarker>() {
        return PluginError::BadOutput(bad.0.clone());
    }
    if err
        .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return PluginError::host(HostFailure::PoolExhausted, format!("{err:#}"));
    }
    if state.limiter.hit {
        return PluginError::MemoryLimit;
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => PluginError::OutOfFuel,
        Some(Trap::Interrupt) => PluginError::Deadline,
        Some(trap) => {
            // A panicking Rust guest logs its message just before trapping: report that.
            let last_error = state
                .logs
                .iter()
                .rev()
                .find(|(l, _)| *l == LogLevel::Error)
                .map(|(_, m)| m.as_str());
            match last_error {
                Some(message) => PluginError::Trap(format!("{trap}: {message}")),
                None => PluginError::Trap(trap.to_string()),
            }
        }
        None => {
            let text = format!("{err:#}");
            if text.contains("exceeds memory limits") || text.contains("memory minimum size") {
                PluginError::MemoryLimit
            } else {
                PluginError::Trap(text)
            }
        }
    }
}

/// The host functions of ABI v1, registered from one list.
fn register_host_functions(linker: &mut Linker<CallState>) -> Result<(), PluginError> {
    linker
        .func_wrap(abi::IMPORT_MODULE, abi::IMPORT_LOG, host_log)
        .map_err(|e| PluginError::host(HostFailure::Internal, format!("linker: {e}")))?;
    Ok(())
}

/// `cauldron_v1.log(level, ptr, len)`: never traps; bad ranges and invalid UTF-8 are dropped or
/// replaced, long messages cut. Lines are kept with the run and written when it is known to answer
/// the call (see [`GuestLogs`]); past [`MAX_LOG_LINES`] they are only counted.
fn host_log(mut caller: Caller<'_, CallState>, level: u32, ptr: u32, len: u32) {
    if caller.data().logs.len() >= MAX_LOG_LINES {
        caller.data_mut().dropped_logs += 1;
        return;
    }
    let level = LogLevel::from_raw(level);
    let Some(memory) = caller
        .get_export(abi::EXPORT_MEMORY)
        .and_then(|e| e.into_memory())
    else {
        return;
    };
    let data = memory.data(&caller);
    let take = (len as usize).min(abi::MAX_LOG_BYTES);
    let Some(bytes) = (ptr as usize)
        .checked_add(take)
        .and_then(|end| data.get(ptr as usize..end))
    else {
        return;
    };
    let message = String::from_utf8_lossy(bytes).into_owned();
    caller.data_mut().logs.push((level, message));
}

/// Advance the epoch every [`EPOCH_TICK`] for as long as the engine lives.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("cauldron-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the epoch ticker, deadlines will not fire: {e}");
    }
}
