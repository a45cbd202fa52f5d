//! Loading a plugin version: compile (with caches), check the ABI from imports and exports, link,
//! read and validate the manifest through `describe`. Nothing is published before all of it passes.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cauldron_sdk::Doc;
use cauldron_sdk::abi::{self, version_suffix};
use cauldron_sdk::codec;
use cauldron_sdk::wire::{Call, Init, Manifest, Outcome};
use sha2::{Digest, Sha256};
use wasmtime::{Engine, ExternType, InstancePre, Module, ModuleExport, ValType};

use crate::bundle::{Bundle, parse_table, read_table_texts};
use crate::engine::{CallState, Runtime};
use crate::{HostFailure, PluginError};

/// What to load: the wasm bytes and the plugin's content tables.
#[derive(Debug, Clone, Default)]
pub struct PluginSource {
    /// The module.
    pub wasm: Vec<u8>,
    /// Content tables by name.
    pub content: BTreeMap<String, Doc>,
    /// When set, the manifest's name must equal it (the file stem of `NAME.wasm`).
    pub expected_name: Option<String>,
    /// The bundle the module and tables came from, if they came from one: its digest then
    /// identifies the loaded version ([`PluginVersion::sha256`]). Without one, the module's own
    /// digest does.
    pub bundle: Option<Arc<Bundle>>,
}

impl PluginSource {
    /// Read `dir/NAME.wasm` and the content tables in `dir/NAME/*.toml`, as a bundle.
    pub fn from_dir(dir: &Path, name: &str) -> Result<Self, PluginError> {
        Self::from_bundle(Bundle::from_dir(dir, name)?, Some(name))
    }

    /// The module and parsed tables of `bundle`; with `expected_name`, the manifest must carry it.
    pub fn from_bundle(bundle: Bundle, expected_name: Option<&str>) -> Result<Self, PluginError> {
        Ok(Self {
            wasm: bundle.wasm.clone(),
            content: bundle.tables()?,
            expected_name: expected_name.map(str::to_owned),
            bundle: Some(Arc::new(bundle)),
        })
    }
}

/// Read every `*.toml` in `dir` as a content table named by its file stem. A missing folder means no
/// tables; an unreadable or invalid file is an error naming it.
pub fn read_content_dir(dir: &Path) -> Result<BTreeMap<String, Doc>, PluginError> {
    read_table_texts(dir)?
        .iter()
        .map(|(name, text)| Ok((name.clone(), parse_table(name, text)?)))
        .collect()
}

/// Resolved export locations, so a call never looks exports up by name.
#[derive(Clone, Copy)]
pub(crate) struct Exports {
    pub(crate) memory: ModuleExport,
    pub(crate) alloc: CheckedFunc<u32, u32>,
    pub(crate) describe: CheckedFunc<(), u64>,
    pub(crate) handle: CheckedFunc<(u32, u32), u64>,
}

/// An exported function of one module whose signature [`check_abi`] verified as `P -> R`. Only
/// `check_abi` makes one, so a call on an instance of that module can skip wasmtime's type checks:
/// [`CheckedFunc::call`] loads no type at all, where `Func::typed` takes a lock on the engine's
/// type registry and clones the function's type, and `TypedFunc` loads it again, per export per
/// call.
pub(crate) struct CheckedFunc<P, R> {
    export: ModuleExport,
    signature: PhantomData<fn(P) -> R>,
}

impl<P, R> Clone for CheckedFunc<P, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P, R> Copy for CheckedFunc<P, R> {}

impl<P: wasmtime::WasmParams, R: wasmtime::WasmResults> CheckedFunc<P, R> {
    /// The function in `instance`; an error if `instance` is not of the module this was checked
    /// on. This is the function `check_abi` checked: `get_module_export` returns nothing for an
    /// instance of any other module (it compares the module's id), so a `CheckedFunc` can never
    /// name a function it did not check.
    fn func(
        &self,
        instance: &wasmtime::Instance,
        store: &mut wasmtime::Store<CallState>,
    ) -> Result<wasmtime::Func, wasmtime::Error> {
        let func = instance
            .get_module_export(&mut *store, &self.export)
            .and_then(|e| e.into_func())
            .ok_or_else(|| wasmtime::format_err!("export vanished"))?;
        // Tests run debug builds: every call there also passes wasmtime's own check.
        debug_assert!(func.typed::<P, R>(&*store).is_ok(), "export signature");
        Ok(func)
    }

    /// The function in `instance` as a `TypedFunc`, for async calls; errors as
    /// [`CheckedFunc::func`].
    #[allow(
        unsafe_code,
        reason = "the signature was checked once at load, not on every call; see SAFETY"
    )]
    pub(crate) fn get(
        &self,
        instance: &wasmtime::Instance,
        store: &mut wasmtime::Store<CallState>,
    ) -> Result<wasmtime::TypedFunc<P, R>, wasmtime::Error> {
        let func = self.func(instance, store)?;
        // SAFETY: `check_abi` compared this export's parameter and result types with those of
        // `P` and `R` (`checked` takes both side by side), and `func` is that very export (see
        // `CheckedFunc::func`).
        Ok(unsafe { wasmtime::TypedFunc::new_unchecked(&*store, func) })
    }
}

impl<P: RawParams, R: RawResult> CheckedFunc<P, R> {
    /// Call the function in `instance` synchronously, passing the values raw, so that no type is
    /// loaded per call. Errors as [`CheckedFunc::func`] and as the call itself.
    #[allow(
        unsafe_code,
        reason = "the signature was checked once at load, not on every call; see SAFETY"
    )]
    pub(crate) fn call(
        &self,
        instance: &wasmtime::Instance,
        store: &mut wasmtime::Store<CallState>,
        params: P,
    ) -> Result<R, wasmtime::Error> {
        let func = self.func(instance, store)?;
        // Room for the longest parameter list (two) and for the one result.
        let mut slots = [wasmtime::ValRaw::i32(0); 2];
        params.write(&mut slots);
        // SAFETY: `func` is the export `check_abi` checked as `P -> R` (see `CheckedFunc::func`),
        // `P::write` stores each parameter in its slot as the wasm type `P` maps to, two slots
        // hold any parameter list and the one result the ABI has, and none of these types is a
        // reference, so nothing in the slots needs rooting.
        unsafe { func.call_unchecked(&mut *store, &mut slots[..])? };
        Ok(R::read(slots[0]))
    }
}

/// The parameter lists the runtime calls exports with, written as raw wasm values. Each impl
/// writes exactly the wasm types its `WasmParams` impl declares (`u32` is an `i32`), which is
/// what the SAFETY argument of [`CheckedFunc::call`] rests on.
pub(crate) trait RawParams: wasmtime::WasmParams {
    /// Store the parameters in `slots`, first parameter first.
    fn write(self, slots: &mut [wasmtime::ValRaw; 2]);
}

impl RawParams for () {
    fn write(self, _: &mut [wasmtime::ValRaw; 2]) {}
}

impl RawParams for u32 {
    fn write(self, slots: &mut [wasmtime::ValRaw; 2]) {
        slots[0] = wasmtime::ValRaw::u32(self);
    }
}

impl RawParams for (u32, u32) {
    fn write(self, slots: &mut [wasmtime::ValRaw; 2]) {
        slots[0] = wasmtime::ValRaw::u32(self.0);
        slots[1] = wasmtime::ValRaw::u32(self.1);
    }
}

/// The single results the runtime's exports return, read back from a raw wasm value of the type
/// their `WasmResults` impl declares (`u32` from an `i32`, `u64` from an `i64`).
pub(crate) trait RawResult: wasmtime::WasmResults {
    /// The result a call left in its first slot.
    fn read(slot: wasmtime::ValRaw) -> Self;
}

impl RawResult for u32 {
    fn read(slot: wasmtime::ValRaw) -> Self {
        slot.get_u32()
    }
}

impl RawResult for u64 {
    fn read(slot: wasmtime::ValRaw) -> Self {
        slot.get_u64()
    }
}

/// One loaded, validated version of a plugin. Held in an `Arc`: a call keeps its version alive even
/// if a reload replaces it mid-call.
pub struct PluginVersion {
    /// The manifest from `describe`.
    pub manifest: Manifest,
    /// What identifies this version: the digest of its bundle ([`Bundle::digest`], module and
    /// content tables together), or, for a source built without a bundle, of its module.
    pub sha256: String,
    /// Hex sha256 of the wasm module alone.
    pub wasm_sha256: String,
    /// The bundle this version was loaded from, if any (to store, replay or compare it).
    pub bundle: Option<Arc<Bundle>>,
    /// When this version was loaded, ms since the epoch.
    pub loaded_at_ms: i64,
    /// Content tables.
    pub content: BTreeMap<String, Doc>,
    /// Size of the wasm module in bytes.
    pub wasm_bytes: usize,
    /// Whether calls run from a snapshot taken after `cauldron_init` (and so carry no content).
    pub preinitialised: bool,
    pub(crate) pre: InstancePre<CallState>,
    pub(crate) exports: Exports,
    name: Arc<str>,
}

impl std::fmt::Debug for PluginVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginVersion")
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

impl PluginVersion {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// The plugin's semver version.
    pub fn version(&self) -> &str {
        &self.manifest.version
    }

    pub(crate) fn name_arc(&self) -> Arc<str> {
        self.name.clone()
    }

    /// The content tables a call must carry for `tables`: none when the plugin was pre-initialised
    /// (it holds every table already), else the named ones (missing ones are left out; the plugin
    /// reports them).
    pub fn content_for(&self, tables: &[String]) -> BTreeMap<String, Doc> {
        if self.preinitialised {
            return BTreeMap::new();
        }
        tables
            .iter()
            .filter_map(|t| Some((t.clone(), self.content.get(t)?.clone())))
            .collect()
    }
}

/// Compiled modules by sha256: in memory, and on disk under the engine's compatibility hash so a
/// restart, or a reload of bytes seen before, does not recompile.
pub(crate) struct ModuleCache {
    dir: Option<PathBuf>,
    engine_key: String,
    memory: Mutex<HashMap<String, Module>>,
    /// Pre-initialisation key (wasm and content digest) → sha256 of the snapshot module.
    snapshots: Mutex<HashMap<String, String>>,
    stats: Mutex<CacheStats>,
}

/// How modules were obtained since the runtime started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Compiled from wasm.
    pub compiled: u64,
    /// Loaded from the on-disk cache.
    pub disk_hits: u64,
    /// Found in memory.
    pub memory_hits: u64,
}

impl ModuleCache {
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Self {
            dir,
            engine_key: format!("{:016x}", h.finish()),
            memory: Mutex::new(HashMap::new()),
            snapshots: Mutex::new(HashMap::new()),
            stats: Mutex::new(CacheStats::default()),
        }
    }

    fn path(&self, sha256: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{sha256}-{}.cwasm", self.engine_key)))
    }

    fn count(&self, f: impl FnOnce(&mut CacheStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    pub(crate) fn stats(&self) -> CacheStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn clear_memory(&self) {
        self.memory.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The module cached under `sha256` in memory or on disk, if any; never compiles. An unusable
    /// disk file is removed.
    fn lookup(&self, engine: &Engine, sha256: &str) -> Option<Module> {
        if let Some(m) = self.memory.lock().unwrap_or_else(|p| p.into_inner()).get(sha256) {
            self.count(|s| s.memory_hits += 1);
            return Some(m.clone());
        }
        let path = self.path(sha256).filter(|p| p.exists())?;
        match load_precompiled(engine, &path) {
            Ok(m) => {
                self.count(|s| s.disk_hits += 1);
                Some(m)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "discarding unusable cached module: {e}");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// A module from memory, the disk cache, or the compiler, without keeping it in memory: for
    /// modules used once per load (the instrumented module of pre-initialisation).
    pub(crate) fn get_or_compile_transient(
        &self,
        engine: &Engine,
        sha256: &str,
        wasm: &[u8],
    ) -> Result<Module, PluginError> {
        match self.lookup(engine, sha256) {
            Some(m) => Ok(m),
            None => self.compile_and_store(engine, sha256, wasm),
        }
    }

    fn snapshot_index_path(&self, key: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{key}-{}.snapshot", self.engine_key)))
    }

    /// The compiled snapshot module pre-initialisation made before for `key` (a digest of the wasm
    /// and its content tables), if it is still cached: a restart or a reload of the same plugin and
    /// content then skips instrumenting, init and the snapshot altogether.
    pub(crate) fn snapshot(&self, engine: &Engine, key: &str) -> Option<Module> {
        let known = self
            .snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned();
        let sha = known.or_else(|| {
            let text = std::fs::read_to_string(self.snapshot_index_path(key)?).ok()?;
            let sha = text.trim().to_owned();
            (sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit())).then_some(sha)
        })?;
        let module = self.lookup(engine, &sha)?;
        self.memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sha.clone(), module.clone());
        self.snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned(), sha);
        Some(module)
    }

    /// Record that `key` pre-initialises to the module cached under `image_sha256`.
    pub(crate) fn remember_snapshot(&self, key: &str, image_sha256: &str) {
        self.snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned(), image_sha256.to_owned());
        if let Some(path) = self.snapshot_index_path(key)
            && let Err(e) = replace_file(&path, image_sha256.as_bytes())
        {
            tracing::warn!(path = %path.display(), "cannot record the snapshot: {e}");
        }
    }

    pub(crate) fn get_or_compile(
        &self,
        engine: &Engine,
        sha256: &str,
        wasm: &[u8],
    ) -> Result<Module, PluginError> {
        let module = self.get_or_compile_transient(engine, sha256, wasm)?;
        self.memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sha256.to_owned(), module.clone());
        Ok(module)
    }

    fn compile_and_store(&self, engine: &Engine, sha256: &str, wasm: &[u8]) -> Result<Module, PluginError> {
        let module = Module::new(engine, wasm).map_err(|e| PluginError::Compile(format!("{e:#}")))?;
        self.count(|s| s.compiled += 1);
        if let Some(path) = self.path(sha256)
            && let Err(e) = write_atomically(&path, &module)
        {
            tracing::warn!(path = %path.display(), "cannot cache compiled module: {e}");
        }
        Ok(module)
    }
}

#[allow(
    unsafe_code,
    reason = "deserialising precompiled code trusts the file; see SAFETY"
)]
fn load_precompiled(engine: &Engine, path: &Path) -> Result<Module, wasmtime::Error> {
    // SAFETY: the cache folder is written only by `write_atomically` below with bytes from
    // `Module::serialize` of this engine configuration (the file name carries its compatibility
    // hash, and wasmtime re-checks the header). Operators must not let others write to it.
    unsafe { Module::deserialize_file(engine, path) }
}

/// Write the compiled module next to its final name and rename it into place. Loaded modules are
/// memory-mapped from these files, so a cache file is only ever replaced, never rewritten in place.
fn write_atomically(path: &Path, module: &Module) -> Result<(), Box<dyn std::error::Error>> {
    replace_file(path, &module.serialize()?)?;
    Ok(())
}

/// Write `bytes` beside `path` and rename them into place, so readers see the old or the new file.
/// Each write has a temporary file of its own: two threads caching the same module at once must
/// not truncate each other's file, nor rename it away from under the other.
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let write = WRITES.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{write}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Hex sha256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Check imports and exports against ABI v1 before anything is instantiated.
pub(crate) fn check_abi(module: &Module) -> Result<Exports, PluginError> {
    let mut versions: Vec<u32> = Vec::new();
    let mut bad_import = None;
    for import in module.imports() {
        match version_suffix(import.module(), abi::IMPORT_MODULE_PREFIX) {
            Some(v) => {
                versions.push(v);
                if v == abi::ABI_VERSION && import.name() != abi::IMPORT_LOG {
                    bad_import.get_or_insert_with(|| format!("{}.{}", import.module(), import.name()));
                }
            }
            None => {
                bad_import.get_or_insert_with(|| format!("{}.{}", import.module(), import.name()));
            }
        }
    }
    for export in module.exports() {
        if let Some(v) = version_suffix(export.name(), abi::EXPORT_MARKER_PREFIX) {
            versions.push(v);
        }
    }
    // The version decides first: a v2 module should hear "wrong version", not "missing export".
    if let Some(&other) = versions.iter().find(|&&v| v != abi::ABI_VERSION) {
        return Err(PluginError::AbiMismatch {
            got: Some(other),
            supported: abi::ABI_VERSION,
        });
    }
    if versions.is_empty() {
        return Err(PluginError::AbiMismatch {
            got: None,
            supported: abi::ABI_VERSION,
        });
    }
    if let Some(import) = bad_import {
        return Err(PluginError::BadImport(import));
    }

    use ValType::{I32, I64};
    let func = |name: &str, params: &[ValType], results: &[ValType]| -> Result<ModuleExport, PluginError> {
        let ty = module
            .get_export(name)
            .ok_or_else(|| PluginError::MissingExport(name.to_owned()))?;
        let ExternType::Func(f) = ty else {
            return Err(PluginError::MissingExport(format!("{name} (not a function)")));
        };
        let same = |got: &mut dyn ExactSizeIterator<Item = ValType>, want: &[ValType]| {
            got.len() == want.len() && got.zip(want).all(|(g, w)| ValType::eq(&g, w))
        };
        if !same(&mut f.params(), params) || !same(&mut f.results(), results) {
            return Err(PluginError::MissingExport(format!(
                "{name} (wrong signature {f})"
            )));
        }
        module
            .get_export_index(name)
            .ok_or_else(|| PluginError::MissingExport(name.to_owned()))
    };
    // The wasm types sit next to the Rust types they must match (u32 is i32, u64 is i64): calls
    // rely on this check instead of repeating it.
    fn checked<P, R>(export: ModuleExport) -> CheckedFunc<P, R> {
        CheckedFunc {
            export,
            signature: PhantomData,
        }
    }
    func(abi::EXPORT_MARKER, &[], &[])?;
    let alloc = checked::<u32, u32>(func(abi::EXPORT_ALLOC, &[I32], &[I32])?);
    func(abi::EXPORT_FREE, &[I32, I32], &[])?;
    let describe = checked::<(), u64>(func(abi::EXPORT_DESCRIBE, &[], &[I64])?);
    let handle = checked::<(u32, u32), u64>(func(abi::EXPORT_HANDLE, &[I32, I32], &[I64])?);
    let memory = match module.get_export(abi::EXPORT_MEMORY) {
        Some(ExternType::Memory(m)) if !m.is_64() && !m.is_shared() => {
            module.get_export_index(abi::EXPORT_MEMORY)
        }
        _ => None,
    }
    .ok_or_else(|| {
        PluginError::MissingExport(format!("{} (a 32-bit, unshared memory)", abi::EXPORT_MEMORY))
    })?;
    Ok(Exports {
        memory,
        alloc,
        describe,
        handle,
    })
}

/// The `Init` that hands a plugin its content tables, encoded.
fn encode_init(content: &BTreeMap<String, Doc>) -> Result<Vec<u8>, PluginError> {
    codec::encode(&Init {
        content: content.clone(),
    })
    .map_err(|e| PluginError::BadContent(format!("encoding the content tables: {e}")))
}

/// What pre-initialising a module (named by the sha256 of its wasm) with these encoded content
/// tables is cached under.
fn snapshot_key(wasm_sha256: &str, init: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"cauldron-preinit\0");
    h.update(wasm_sha256.as_bytes());
    h.update(init);
    hex::encode(h.finalize())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Runtime {
    /// Compile, check and describe a plugin synchronously. See [`Runtime::load`].
    pub fn load_blocking(&self, source: PluginSource) -> Result<PluginVersion, PluginError> {
        let inner = &self.inner;
        let sha256 = sha256_hex(&source.wasm);
        let digest = source
            .bundle
            .as_ref()
            .map_or_else(|| sha256.clone(), |b| b.digest());
        // Modules may come as WebAssembly text (wasmtime reads both); pre-initialisation needs binary.
        let binary = wat::parse_bytes(&source.wasm).map_err(|e| PluginError::Compile(format!("{e}")))?;
        let preinitialised = inner.limits.preinitialise && crate::preinit::exports_init(&binary);
        let module = if preinitialised {
            let init = encode_init(&source.content)?;
            let key = snapshot_key(&sha256, &init);
            match inner.cache.snapshot(&inner.engine, &key) {
                Some(module) => module,
                None => {
                    let plugin = source.expected_name.as_deref().unwrap_or("?");
                    let image = crate::preinit::preinitialise(self, plugin, &binary, &init)?;
                    let image_sha = sha256_hex(&image);
                    let module = inner.cache.get_or_compile(&inner.engine, &image_sha, &image)?;
                    inner.cache.remember_snapshot(&key, &image_sha);
                    module
                }
            }
        } else {
            inner.cache.get_or_compile(&inner.engine, &sha256, &source.wasm)?
        };
        let (exports, pre) = self.link(&module)?;
        let mut version = PluginVersion {
            manifest: Manifest {
                name: String::new(),
                version: String::new(),
                abi: 0,
                title: String::new(),
                description: String::new(),
                entity_kinds: vec![],
                actions: vec![],
                hooks: vec![],
            },
            sha256: digest,
            wasm_sha256: sha256,
            bundle: source.bundle,
            loaded_at_ms: now_ms(),
            content: source.content,
            wasm_bytes: source.wasm.len(),
            preinitialised,
            pre,
            exports,
            name: Arc::from(source.expected_name.as_deref().unwrap_or("?")),
        };
        let raw = self.run_guest(&version, None)?;
        let manifest: Manifest = codec::decode(&raw)
            .map_err(|e| PluginError::BadOutput(format!("manifest does not decode: {e}")))?;
        if manifest.abi != abi::ABI_VERSION {
            return Err(PluginError::AbiMismatch {
                got: Some(manifest.abi),
                supported: abi::ABI_VERSION,
            });
        }
        manifest.validate().map_err(PluginError::BadManifest)?;
        if let Some(expected) = &source.expected_name
            && &manifest.name != expected
        {
            return Err(PluginError::BadManifest(format!(
                "file `{expected}.wasm` holds plugin `{}`; name the file after the plugin",
                manifest.name
            )));
        }
        for action in &manifest.actions {
            for table in &action.content {
                if !version.content.contains_key(table) {
                    return Err(PluginError::BadContent(format!(
                        "action `{}` needs content table `{table}`, which is missing",
                        action.name
                    )));
                }
            }
        }
        version.name = Arc::from(manifest.name.as_str());
        version.manifest = manifest;
        Ok(version)
    }

    /// Compile (off the async workers), check the ABI, link, and read and validate the manifest.
    /// The result is ready to publish; nothing has been published.
    pub async fn load(&self, source: PluginSource) -> Result<Arc<PluginVersion>, PluginError> {
        let this = self.clone();
        let permit = self.inner.permits.clone().acquire_owned().await;
        let _permit =
            permit.map_err(|_| PluginError::host(HostFailure::ShuttingDown, "runtime is shutting down"))?;
        tokio::task::spawn_blocking(move || this.load_blocking(source).map(Arc::new))
            .await
            .map_err(|e| PluginError::host(HostFailure::Internal, format!("load task failed: {e}")))?
    }

    /// Run one call in a fresh sandbox synchronously and decode its outcome.
    pub fn call_blocking(&self, plugin: &PluginVersion, call: &Call) -> Result<Outcome, PluginError> {
        let input = codec::encode(call)
            .map_err(|e| PluginError::host(HostFailure::Internal, format!("encoding call: {e}")))?;
        self.call_bytes(plugin, &input)
    }

    /// Run one already-encoded call in a fresh sandbox synchronously and decode its outcome.
    pub fn call_bytes(&self, plugin: &PluginVersion, input: &[u8]) -> Result<Outcome, PluginError> {
        if input.len() > abi::MAX_CALL_BYTES {
            return Err(PluginError::host(
                HostFailure::CallTooLarge,
                format!("call of {} bytes exceeds the call cap", input.len()),
            ));
        }
        let raw = self.run_guest(plugin, Some(input))?;
        codec::decode::<Outcome>(&raw)
            .map_err(|e| PluginError::BadOutput(format!("outcome does not decode: {e}")))
    }

    /// Like [`Runtime::call`], also reporting the fuel the call used, whatever its result.
    pub async fn call_metered(
        &self,
        plugin: Arc<PluginVersion>,
        call: &Call,
    ) -> (Result<Outcome, PluginError>, u64) {
        let (result, fuel) = self.call_metered_raw(plugin, call).await;
        (result.map(|(outcome, _)| outcome), fuel)
    }

    /// Like [`Runtime::call_metered`], also returning the bytes the plugin wrote, exactly as the
    /// outcome was decoded from (to digest or log without encoding the outcome again).
    pub async fn call_metered_raw(
        &self,
        plugin: Arc<PluginVersion>,
        call: &Call,
    ) -> (Result<(Outcome, Vec<u8>), PluginError>, u64) {
        let input = match codec::encode(call) {
            Ok(i) => i,
            Err(e) => {
                return (
                    Err(PluginError::host(
                        HostFailure::Internal,
                        format!("encoding call: {e}"),
                    )),
                    0,
                );
            }
        };
        self.call_encoded_metered(&plugin, &input).await
    }

    /// Run one already-encoded `Call` (`input`, the MessagePack exactly as a plugin receives it) the
    /// way [`Runtime::call_metered_raw`] runs a call: bounded by the call semaphore, inline while
    /// short and then on a yielding fiber, under the same limits. Rejections and guest faults come
    /// back as errors; a successful outcome with the bytes it was decoded from. Also reports the fuel
    /// used. Replaying a logged call bit for bit is this with the logged bytes.
    pub async fn call_encoded_metered(
        &self,
        plugin: &PluginVersion,
        input: &[u8],
    ) -> (Result<(Outcome, Vec<u8>), PluginError>, u64) {
        if input.len() > abi::MAX_CALL_BYTES {
            let msg = format!("call of {} bytes exceeds the call cap", input.len());
            return (Err(PluginError::host(HostFailure::CallTooLarge, msg)), 0);
        }
        let Ok(_permit) = self.inner.permits.acquire().await else {
            return (
                Err(PluginError::host(
                    HostFailure::ShuttingDown,
                    "runtime is shutting down",
                )),
                0,
            );
        };
        // On this task: inline while the call is short (nearly all are), then on a fiber that
        // yields at every epoch tick, so a long call shares the worker instead of stalling it.
        let (raw, fuel) = self.run_guest_metered(plugin, input).await;
        let outcome = raw.and_then(|raw| match codec::decode::<Outcome>(&raw) {
            Ok(Outcome::Rejected { code, message }) => Err(PluginError::Rejected { code, message }),
            Ok(Outcome::Fault { code, message }) => Err(PluginError::GuestFault { code, message }),
            Ok(outcome) => Ok((outcome, raw)),
            Err(e) => Err(PluginError::BadOutput(format!("outcome does not decode: {e}"))),
        });
        (outcome, fuel)
    }

    /// Run one call in a fresh sandbox, bounded by the call semaphore, yielding to the executor
    /// at every epoch tick. Rejections and guest faults come back as errors; a successful outcome
    /// as `Ok`.
    pub async fn call(&self, plugin: Arc<PluginVersion>, call: &Call) -> Result<Outcome, PluginError> {
        self.call_metered(plugin, call).await.0
    }

    /// Create and tear down one sandbox without calling into it (for benchmarks).
    pub fn instantiate_only(&self, plugin: &PluginVersion) -> Result<(), PluginError> {
        let mut store = wasmtime::Store::new(&self.inner.engine, CallState::for_bench(plugin));
        plugin
            .pre
            .instantiate(&mut store)
            .map(|_| ())
            .map_err(|e| PluginError::Trap(format!("{e:#}")))
    }

    /// The part of [`Runtime::load_blocking`] that reads a known plugin's compiled snapshot module
    /// from the disk cache, checks its ABI and links it, without hashing the wasm or calling
    /// `describe` (for benchmarks). Fails if the module is not in the disk cache.
    pub fn load_cached_module_only(&self, plugin: &PluginVersion) -> Result<(), PluginError> {
        let inner = &self.inner;
        let key = snapshot_key(&plugin.wasm_sha256, &encode_init(&plugin.content)?);
        inner.cache.clear_memory();
        let module = inner
            .cache
            .snapshot(&inner.engine, &key)
            .ok_or_else(|| PluginError::host(HostFailure::Internal, "not in the disk cache"))?;
        self.link(&module).map(|_| ())
    }

    /// Check a compiled module's ABI and link it against the host's imports.
    pub(crate) fn link(&self, module: &Module) -> Result<(Exports, InstancePre<CallState>), PluginError> {
        let exports = check_abi(module)?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(module)
            .map_err(|e| PluginError::BadImport(format!("{e:#}")))?;
        Ok((exports, pre))
    }

    /// Compile wasm bytes with no cache, returning how large the compiled artifact is (for
    /// benchmarks and for checking a module before upload).
    pub fn compile_uncached(&self, wasm: &[u8]) -> Result<usize, PluginError> {
        let module =
            Module::new(&self.inner.engine, wasm).map_err(|e| PluginError::Compile(format!("{e:#}")))?;
        module
            .serialize()
            .map(|b| b.len())
            .map_err(|e| PluginError::Compile(format!("{e:#}")))
    }

    /// How modules were obtained so far (compiled, disk cache, memory).
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    /// Forget compiled modules held in memory (the disk cache stays).
    pub fn clear_memory_cache(&self) {
        self.inner.cache.clear_memory();
    }
}

#[cfg(test)]
mod tests {
    use super::replace_file;

    #[test]
    fn threads_replacing_the_same_file_all_succeed_and_leave_one_whole_copy() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("cache").join("module.cwasm");
        let bytes: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        replace_file(&path, &bytes).expect("replaced");
                    }
                });
            }
        });
        assert_eq!(std::fs::read(&path).expect("cached file"), bytes);
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("listing")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["module.cwasm"], "no temporary file is left behind");
    }
}
