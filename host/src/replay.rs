//! Replay: re-run logged actions of a plugin against a candidate version and say what would have
//! changed. Used by `cauldron replay` (the [`cli`] module) and `POST /api/v1/admin/plugins/{name}/replay`.
//!
//! Every logged action keeps the exact `Call` its plugin received (`action_log.call`, see
//! `game::call_log`) and the digest of the outcome bytes the plugin wrote. A replay reads those rows
//! a page at a time ([`Store::logged_calls`], with the filters of [`ReplayFilter`]), and worker
//! tasks run each call's bytes on the candidate ([`Runtime::call_encoded_metered`]: the same
//! sandbox, limits and call semaphore as live calls). Nothing is written: no effect is applied, no
//! player state is read beyond the logged call. The outcome is compared with the logged digest:
//!
//! - the same bytes: **identical**;
//! - other bytes, a rejection, or a fault: the logged action is run once more on its **original**
//!   version (found by the logged bundle digest: the version serving, a stored version, or the
//!   plugin's folder), to show old against new, and counted as **diverged** by what differs
//!   (`effects`, only the `reply`, `rejected` where the original accepted, `other`), or as
//!   **faulted** when the candidate failed (trap, fuel, deadline, memory, bad output, guest fault).
//!
//! The first [`ReplayOptions::diffs`] divergences (by log id) come with a readable diff: action,
//! player, params, old and new effects and replies.
//!
//! A logged call carries no content tables when the logging version was pre-initialised (the
//! plugin holds its tables since `cauldron_init`): the candidate's own tables then answer, which is
//! what makes a content-only candidate comparable. A candidate that is not pre-initialised (no
//! `cauldron_init` export) gets the call with its own tables for the action put in.

pub mod cli;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cauldron_runtime::{BUNDLE_MAGIC, Bundle, PluginError, PluginSource, PluginVersion, Registry, Runtime};
use cauldron_sdk::codec;
use cauldron_sdk::wire::{Call, CallKind, Effect, Outcome};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::game::call_log;
use crate::json::doc_to_json;
use crate::store::{LogQuery, LoggedCall, Store, StoreError};

/// Rows read per page.
pub const PAGE: u32 = 1_000;
/// Rows of the first page: small, so the workers start while the next page is read.
pub const FIRST_PAGE: u32 = 64;
/// Rows a worker takes from the reader at a time.
const BATCH: usize = 16;
/// Divergences shown with a diff unless asked otherwise.
pub const DEFAULT_DIFFS: usize = 10;
/// Faults listed in a report, at most.
pub const MAX_FAULT_SAMPLES: usize = 20;
/// Calls kept to measure the runtime's own call rate ([`ReplayOptions::measure`]): a uniform
/// sample of the replayed calls.
pub const MEASURE_CALLS: usize = 10_000;

/// Which logged actions to replay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayFilter {
    /// Only actions logged at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only actions logged before this time (ms since the epoch).
    pub until_ms: Option<i64>,
    /// Only these players' actions (empty: everyone's).
    pub players: Vec<i64>,
    /// Only this action.
    pub action: Option<String>,
    /// At most this many actions, oldest first (`None`: all).
    pub limit: Option<u64>,
}

/// How to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Which actions.
    pub filter: ReplayFilter,
    /// How many divergences get a readable diff.
    pub diffs: usize,
    /// Worker tasks running calls at once.
    pub workers: usize,
    /// Also run up to [`MEASURE_CALLS`] of the same calls straight on the runtime, with the same
    /// workers, and report both rates ([`ReplayReport::throughput`]).
    pub measure: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            filter: ReplayFilter::default(),
            diffs: DEFAULT_DIFFS,
            workers: std::thread::available_parallelism().map_or(4, |n| n.get() * 2),
            measure: false,
        }
    }
}

/// Why a replay could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The candidate could not be read or does not load.
    #[error("candidate: {0}")]
    Candidate(String),
    /// The store failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// A task of the replay failed (a bug: it panicked).
    #[error("internal: {0}")]
    Internal(String),
}

/// A version as the report names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VersionRef {
    /// Semver from the manifest.
    pub version: String,
    /// The bundle digest.
    pub sha256: String,
    /// The module's digest.
    pub wasm_sha256: String,
}

impl VersionRef {
    fn of(v: &PluginVersion) -> Self {
        Self {
            version: v.version().to_owned(),
            sha256: v.sha256.clone(),
            wasm_sha256: v.wasm_sha256.clone(),
        }
    }
}

/// Divergences by what differs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Diverged {
    /// Every divergence.
    pub total: u64,
    /// Different effects.
    pub effects: u64,
    /// The same effects, a different reply.
    pub reply: u64,
    /// Rejected by the candidate, accepted when logged.
    pub rejected: u64,
    /// Different outcome bytes with the same effects and reply (modifiers, encoding), or the
    /// original version could not be run to tell.
    pub other: u64,
}

/// What differs in a divergence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DivergenceKind {
    /// Different effects.
    Effects,
    /// The same effects, a different reply.
    Reply,
    /// Rejected by the candidate, accepted when logged.
    Rejected,
    /// Anything else.
    Other,
}

/// An outcome as a report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum OutcomeView {
    /// Accepted, with its effects and reply.
    Accepted {
        /// The effects, each as JSON (`op` names the kind).
        #[schema(value_type = Vec<Object>)]
        effects: Vec<serde_json::Value>,
        /// The reply as JSON.
        #[schema(value_type = Object)]
        reply: serde_json::Value,
    },
    /// The rules said no.
    Rejected {
        /// Rejection code.
        code: String,
        /// Message.
        message: String,
    },
    /// The call failed.
    Faulted {
        /// Fault kind (`trap`, `out_of_fuel`, ...).
        kind: String,
        /// Detail.
        message: String,
    },
}

/// One logged action whose replay differs, as a readable diff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Divergence {
    /// The action-log id.
    pub log_id: i64,
    /// The acting player.
    pub player_id: i64,
    /// Action name.
    pub action: String,
    /// The params as logged.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// What differs.
    pub kind: DivergenceKind,
    /// The bundle digest that ran it when it was logged.
    pub logged_sha256: String,
    /// Its outcome run again on that version; `None` when that version could not be found or run.
    pub old: Option<OutcomeView>,
    /// Whether running it again on that version gave exactly the logged outcome.
    pub old_reproduced: bool,
    /// The candidate's outcome.
    pub new: OutcomeView,
    /// Effects only the old outcome has.
    #[schema(value_type = Vec<Object>)]
    pub effects_removed: Vec<serde_json::Value>,
    /// Effects only the new outcome has.
    #[schema(value_type = Vec<Object>)]
    pub effects_added: Vec<serde_json::Value>,
}

/// A logged action the candidate failed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FaultSample {
    /// The action-log id.
    pub log_id: i64,
    /// The acting player.
    pub player_id: i64,
    /// Action name.
    pub action: String,
    /// Fault kind (`trap`, `out_of_fuel`, `deadline`, `memory_limit`, `bad_output`, `guest_fault`).
    pub kind: String,
    /// Detail.
    pub message: String,
}

/// Replay rate against the runtime's own rate on the same calls, workers and machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Throughput {
    /// Calls in the direct measurement.
    pub calls: u64,
    /// Direct sandboxed calls per second (the calls' bytes on the runtime, nothing else).
    pub runtime_calls_per_sec: f64,
    /// Replayed actions per second (reading the log included).
    pub replay_calls_per_sec: f64,
    /// `replay / runtime`.
    pub ratio: f64,
}

/// What a replay found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplayReport {
    /// The plugin.
    pub plugin: String,
    /// The candidate replayed against.
    pub candidate: VersionRef,
    /// Logged actions run on the candidate.
    pub replayed: u64,
    /// Of those, the same outcome bytes as logged.
    pub identical: u64,
    /// Of those, a different outcome.
    pub diverged: Diverged,
    /// Of those, the candidate failed.
    pub faulted: u64,
    /// Logged actions not run: the stored call did not inflate or decode, or the host could not
    /// run the call (busy, shutting down).
    pub skipped: u64,
    /// The first divergences by log id, with diffs.
    pub divergences: Vec<Divergence>,
    /// The first faults by log id.
    pub faults: Vec<FaultSample>,
    /// Wall-clock time of the replay, ms.
    pub elapsed_ms: u64,
    /// Replayed actions per second.
    pub calls_per_sec: f64,
    /// With [`ReplayOptions::measure`]: the replay rate against the runtime's own.
    pub throughput: Option<Throughput>,
}

impl ReplayReport {
    /// Whether a CI gate should fail: any fault or skipped action, or (with `strict`) any divergence.
    pub fn failed(&self, strict: bool) -> bool {
        self.faulted > 0 || self.skipped > 0 || (strict && self.diverged.total > 0)
    }
}

/// Where the original versions of logged actions are found, by bundle digest: a version serving in
/// a registry, a stored version, or the plugin's folder (`DIR/NAME.wasm` + `DIR/NAME/`). Each is
/// loaded at most once per replay.
pub struct Originals {
    runtime: Runtime,
    store: Arc<dyn Store>,
    plugin: String,
    registry: Option<Arc<Registry>>,
    plugins_dir: Option<PathBuf>,
    loaded: tokio::sync::Mutex<HashMap<String, Option<Arc<PluginVersion>>>>,
}

impl Originals {
    /// Look originals of `plugin` up in the store, and in `registry` and `plugins_dir` when given.
    pub fn new(
        runtime: Runtime,
        store: Arc<dyn Store>,
        plugin: &str,
        registry: Option<Arc<Registry>>,
        plugins_dir: Option<PathBuf>,
    ) -> Self {
        Self {
            runtime,
            store,
            plugin: plugin.to_owned(),
            registry,
            plugins_dir,
            loaded: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The version whose bundle digest is `sha256`, if it can be found and loaded.
    pub async fn get(&self, sha256: &str) -> Option<Arc<PluginVersion>> {
        let mut loaded = self.loaded.lock().await;
        if let Some(found) = loaded.get(sha256) {
            return found.clone();
        }
        let found = self.find(sha256).await;
        if found.is_none() {
            tracing::warn!(plugin = %self.plugin, sha256, "the original version of logged actions was not found");
        }
        loaded.insert(sha256.to_owned(), found.clone());
        found
    }

    async fn find(&self, sha256: &str) -> Option<Arc<PluginVersion>> {
        if let Some(serving) = self.registry.as_ref().and_then(|r| r.get(&self.plugin))
            && serving.sha256 == sha256
        {
            return Some(serving);
        }
        let bundle = match self.store.artifact(&self.plugin, sha256).await {
            Ok(Some(stored)) if stored.info.bundle => Bundle::decode(&stored.bytes)
                .ok()
                .filter(|b| b.digest() == sha256),
            _ => None,
        };
        let bundle = match bundle {
            Some(b) => Some(b),
            None => {
                let dir = self.plugins_dir.clone()?;
                let plugin = self.plugin.clone();
                tokio::task::spawn_blocking(move || Bundle::from_dir(&dir, &plugin).ok())
                    .await
                    .ok()
                    .flatten()
                    .filter(|b| b.digest() == sha256)
            }
        }?;
        let source = PluginSource::from_bundle(bundle, Some(&self.plugin)).ok()?;
        self.runtime.load(source).await.ok()
    }
}

/// Read a candidate bundle named by `spec`: a plugin folder holding `NAME.wasm` (and `NAME/*.toml`),
/// a `NAME.wasm` file (its tables from the folder `NAME/` beside it), an encoded bundle file, or
/// the 64-hex-digit digest of a stored version (when no such path exists).
///
/// # Errors
/// [`ReplayError::Candidate`] naming what could not be read.
pub async fn candidate_bundle(store: &dyn Store, plugin: &str, spec: &str) -> Result<Bundle, ReplayError> {
    let path = Path::new(spec);
    let bad = |e: String| ReplayError::Candidate(format!("{spec}: {e}"));
    if path.is_dir() {
        return Bundle::from_dir(path, plugin).map_err(|e| bad(e.to_string()));
    }
    if path.is_file() {
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        if bytes.starts_with(BUNDLE_MAGIC) {
            return Bundle::decode(&bytes).map_err(|e| bad(e.to_string()));
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or(plugin);
        let tables = path.parent().unwrap_or(Path::new(".")).join(stem);
        return Bundle::with_content_dir(bytes, &tables).map_err(|e| bad(e.to_string()));
    }
    let is_digest = spec.len() == 64 && spec.bytes().all(|b| b.is_ascii_hexdigit());
    if !is_digest {
        return Err(bad(
            "no such file or folder, and not a stored version's digest (64 hex digits)".into(),
        ));
    }
    let digest = spec.to_ascii_lowercase();
    let stored = store
        .artifact(plugin, &digest)
        .await?
        .ok_or_else(|| bad(format!("no stored version of `{plugin}` has this digest")))?;
    if !stored.info.bundle {
        return Err(bad(
            "this stored version holds a module without its content tables; replay a bundle".into(),
        ));
    }
    Bundle::decode(&stored.bytes).map_err(|e| bad(e.to_string()))
}

/// Load a candidate bundle for `plugin` without publishing it.
///
/// # Errors
/// [`ReplayError::Candidate`]: a table that does not parse, or the module does not load.
pub async fn load_candidate(
    runtime: &Runtime,
    plugin: &str,
    bundle: Bundle,
) -> Result<Arc<PluginVersion>, ReplayError> {
    let source =
        PluginSource::from_bundle(bundle, Some(plugin)).map_err(|e| ReplayError::Candidate(e.to_string()))?;
    runtime
        .load(source)
        .await
        .map_err(|e| ReplayError::Candidate(e.to_string()))
}

/// What one replayed action came to.
enum Verdict {
    Identical,
    Diverged(Box<Divergence>),
    Faulted(FaultSample),
    Skipped,
}

/// Counts and samples, merged from the workers.
#[derive(Default)]
struct Tally {
    replayed: u64,
    identical: u64,
    diverged: Diverged,
    faulted: u64,
    skipped: u64,
    divergences: BTreeMap<i64, Divergence>,
    faults: BTreeMap<i64, FaultSample>,
    /// Calls kept for the direct measurement: a uniform sample of those this worker ran.
    kept: Vec<Vec<u8>>,
    /// Calls offered to the sample.
    offered: u64,
}

impl Tally {
    /// Reservoir sampling: every call run has the same chance to be among the `cap` kept, so the
    /// direct measurement runs calls from the whole log (later calls carry bigger states than the
    /// first ones), not only its start. `salt` (the log id) stirs the pseudo-random draw.
    fn sample(&mut self, input: Vec<u8>, cap: usize, salt: i64) {
        self.offered += 1;
        if self.kept.len() < cap {
            self.kept.push(input);
            return;
        }
        // SplitMix64 of the count and the id: a fixed, well-spread draw, no random source needed.
        let mut z = self.offered ^ salt.unsigned_abs().rotate_left(32);
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        if let Ok(slot) = usize::try_from(z % self.offered)
            && let Some(kept) = self.kept.get_mut(slot)
        {
            *kept = input;
        }
    }

    fn add(&mut self, id: i64, verdict: Verdict, diffs: usize) {
        match verdict {
            Verdict::Skipped => {
                self.skipped += 1;
                return;
            }
            Verdict::Identical => self.identical += 1,
            Verdict::Diverged(d) => {
                let counts = &mut self.diverged;
                counts.total += 1;
                match d.kind {
                    DivergenceKind::Effects => counts.effects += 1,
                    DivergenceKind::Reply => counts.reply += 1,
                    DivergenceKind::Rejected => counts.rejected += 1,
                    DivergenceKind::Other => counts.other += 1,
                }
                keep_first(&mut self.divergences, id, *d, diffs);
            }
            Verdict::Faulted(f) => {
                self.faulted += 1;
                keep_first(&mut self.faults, id, f, MAX_FAULT_SAMPLES);
            }
        }
        self.replayed += 1;
    }
}

/// Keep the `n` entries with the smallest ids.
fn keep_first<T>(map: &mut BTreeMap<i64, T>, id: i64, value: T, n: usize) {
    if n == 0 {
        return;
    }
    map.insert(id, value);
    while map.len() > n {
        map.pop_last();
    }
}

/// Replay the logged actions of `plugin` that `options.filter` picks against `candidate`. See the
/// module documentation.
///
/// # Errors
/// The store failed while reading the log.
pub async fn replay(
    runtime: &Runtime,
    store: Arc<dyn Store>,
    plugin: &str,
    candidate: Arc<PluginVersion>,
    originals: Arc<Originals>,
    options: &ReplayOptions,
) -> Result<ReplayReport, ReplayError> {
    let started = Instant::now();
    let workers = options.workers.max(1);
    // Room for two pages: the reader fetches the next page while the workers run the last one.
    // Rows travel in batches: one hand-over (and at most one wake-up) per batch, not per row.
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<LoggedCall>>(2 * (PAGE as usize).div_ceil(BATCH));
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (rx, tally) = (Arc::clone(&rx), Arc::clone(&tally));
        let (runtime, candidate, originals) =
            (runtime.clone(), Arc::clone(&candidate), Arc::clone(&originals));
        let (diffs, measure) = (options.diffs, options.measure);
        tasks.push(tokio::spawn(async move {
            let mut local = Tally::default();
            let mut unpacker = call_log::Unpacker::default();
            loop {
                let batch = { rx.lock().await.recv().await };
                let Some(batch) = batch else { break };
                for row in batch {
                    let id = row.id;
                    let (verdict, input) =
                        replay_one(&runtime, &candidate, &originals, &mut unpacker, row).await;
                    if measure && let Some(input) = input {
                        local.sample(input, MEASURE_CALLS / workers.max(1) + 1, id);
                    }
                    local.add(id, verdict, diffs);
                }
            }
            let mut all = tally.lock().unwrap_or_else(|p| p.into_inner());
            merge(&mut all, local, diffs);
        }));
    }

    // The readers: pages of the log into the workers' queue, so reading overlaps running. Two
    // readers, one from each end of the log, meet in the middle, so two queries (on PostgreSQL, two
    // backends) are in flight at once; with a limit ("the oldest N") one reader reads oldest first.
    let filter = &options.filter;
    let query = LogQuery {
        plugin: plugin.to_owned(),
        after_id: 0,
        before_id: None,
        newest_first: false,
        limit: PAGE,
        since_ms: filter.since_ms,
        until_ms: filter.until_ms,
        players: filter.players.clone(),
        action: filter.action.clone(),
    };
    let frontier = Arc::new(Mutex::new(Frontier {
        oldest_taken: 0,
        newest_taken: i64::MAX,
    }));
    let mut readers = Vec::new();
    let ends: &[bool] = if filter.limit.is_some() {
        &[false]
    } else {
        &[false, true]
    };
    for &newest_first in ends {
        let (store, tx, frontier) = (Arc::clone(&store), tx.clone(), Arc::clone(&frontier));
        let query = LogQuery {
            newest_first,
            ..query.clone()
        };
        // Tasks of their own, on the runtime's workers like the calls: run inline on the caller
        // (the CLI's main thread), every page handed over woke that thread across cores.
        readers.push(tokio::spawn(read_log(
            store,
            query,
            filter.limit.unwrap_or(u64::MAX),
            frontier,
            tx,
        )));
    }
    drop(tx);
    let mut read = Ok(());
    for reader in readers {
        match reader.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => read = Err(ReplayError::from(e)),
            Err(e) => read = Err(ReplayError::Internal(format!("a log reader failed: {e}"))),
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    read?;
    let tally = std::mem::take(&mut *tally.lock().unwrap_or_else(|p| p.into_inner()));
    let elapsed = started.elapsed();
    let rate = |n: u64, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let calls_per_sec = rate(tally.replayed + tally.skipped, elapsed.as_secs_f64());
    let throughput = if options.measure && !tally.kept.is_empty() {
        Some(measure_runtime(runtime, &candidate, tally.kept, workers, calls_per_sec).await)
    } else {
        None
    };
    Ok(ReplayReport {
        plugin: plugin.to_owned(),
        candidate: VersionRef::of(&candidate),
        replayed: tally.replayed,
        identical: tally.identical,
        diverged: tally.diverged,
        faulted: tally.faulted,
        skipped: tally.skipped,
        divergences: tally.divergences.into_values().collect(),
        faults: tally.faults.into_values().collect(),
        elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        calls_per_sec,
        throughput,
    })
}

/// Where the two readers of a replay are: every row up to `oldest_taken` was taken by the reader
/// of the oldest rows, every row from `newest_taken` up by the reader of the newest. A reader takes
/// only rows on its side of the other's mark, under the lock, and stops at the first it leaves, so
/// each row is run exactly once.
struct Frontier {
    oldest_taken: i64,
    newest_taken: i64,
}

/// One reader: pages of `query` (at most `limit` rows) into `tx`, in batches, until the log ends
/// or it meets the other reader's side.
async fn read_log(
    store: Arc<dyn Store>,
    mut query: LogQuery,
    limit: u64,
    frontier: Arc<Mutex<Frontier>>,
    tx: tokio::sync::mpsc::Sender<Vec<LoggedCall>>,
) -> Result<(), StoreError> {
    let mut left = limit;
    let mut page_size = FIRST_PAGE;
    while left > 0 {
        query.limit = u32::try_from(left.min(u64::from(page_size))).unwrap_or(page_size);
        page_size = PAGE;
        let mut page = store.logged_calls(&query).await?;
        let Some(last) = page.last() else { break };
        let full = page.len() == query.limit as usize;
        if query.newest_first {
            query.before_id = Some(last.id);
        } else {
            query.after_id = last.id;
        }
        let met = {
            let mut f = frontier.lock().unwrap_or_else(|p| p.into_inner());
            let (oldest, newest) = (f.oldest_taken, f.newest_taken);
            let before = page.len();
            if query.newest_first {
                page.retain(|r| r.id > oldest);
                if let Some(r) = page.last() {
                    f.newest_taken = r.id;
                }
            } else {
                page.retain(|r| r.id < newest);
                if let Some(r) = page.last() {
                    f.oldest_taken = r.id;
                }
            }
            page.len() < before
        };
        left = left.saturating_sub(page.len() as u64);
        let mut rows = page.into_iter().peekable();
        while rows.peek().is_some() {
            if tx.send(rows.by_ref().take(BATCH).collect()).await.is_err() {
                return Ok(());
            }
        }
        if met || !full {
            break;
        }
    }
    Ok(())
}

fn merge(all: &mut Tally, local: Tally, diffs: usize) {
    all.replayed += local.replayed;
    all.identical += local.identical;
    all.faulted += local.faulted;
    all.skipped += local.skipped;
    let (a, b) = (&mut all.diverged, local.diverged);
    a.total += b.total;
    a.effects += b.effects;
    a.reply += b.reply;
    a.rejected += b.rejected;
    a.other += b.other;
    for (id, d) in local.divergences {
        keep_first(&mut all.divergences, id, d, diffs);
    }
    for (id, f) in local.faults {
        keep_first(&mut all.faults, id, f, MAX_FAULT_SAMPLES);
    }
    all.kept.extend(local.kept);
}

/// Run `calls` straight on the runtime with `workers` tasks: the runtime's own rate on this machine
/// for these calls, to set the replay's rate against.
async fn measure_runtime(
    runtime: &Runtime,
    candidate: &Arc<PluginVersion>,
    mut calls: Vec<Vec<u8>>,
    workers: usize,
    replay_rate: f64,
) -> Throughput {
    calls.truncate(MEASURE_CALLS);
    let n = calls.len();
    let calls = Arc::new(calls);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (runtime, candidate, calls, next) = (
            runtime.clone(),
            Arc::clone(candidate),
            Arc::clone(&calls),
            Arc::clone(&next),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(input) = calls.get(i) else { break };
                let _ = runtime.call_encoded_metered(&candidate, input).await;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let runtime_rate = if secs > 0.0 { n as f64 / secs } else { 0.0 };
    Throughput {
        calls: n as u64,
        runtime_calls_per_sec: runtime_rate,
        replay_calls_per_sec: replay_rate,
        ratio: if runtime_rate > 0.0 {
            replay_rate / runtime_rate
        } else {
            0.0
        },
    }
}

/// The call bytes to send `version` for a logged call: as logged, unless `version` is not
/// pre-initialised, which needs its own content tables in the call.
fn input_for<'a>(version: &PluginVersion, logged: &'a [u8]) -> Result<Cow<'a, [u8]>, String> {
    if version.preinitialised {
        return Ok(Cow::Borrowed(logged));
    }
    let mut call: Call =
        codec::decode(logged).map_err(|e| format!("the stored call does not decode: {e}"))?;
    let tables = match call.kind {
        CallKind::Action => version.manifest.action(&call.action).map(|a| a.content.clone()),
        CallKind::Hook => version.manifest.hook(&call.action).map(|h| h.content.clone()),
    }
    .unwrap_or_default();
    call.content = version.content_for(&tables);
    codec::encode(&call)
        .map(Cow::Owned)
        .map_err(|e| format!("re-encoding the call: {e}"))
}

/// One call's result as run, before any of it is turned into JSON (most replays only compare
/// digests, so the readable view is built only for a divergence).
enum Ran {
    /// Accepted: the effects, the reply and the digest of the outcome bytes.
    Accepted {
        effects: Vec<Effect>,
        reply: cauldron_sdk::Doc,
        digest: [u8; 32],
    },
    /// The rules said no.
    Rejected { code: String, message: String },
    /// The call failed (`kind` as [`PluginError::kind`]).
    Faulted { kind: String, message: String },
}

impl Ran {
    /// Whether the outcome bytes hash to `logged` (a hex digest).
    fn matches(&self, logged: &str) -> bool {
        let Ran::Accepted { digest, .. } = self else {
            return false;
        };
        let mut hex = [0u8; 64];
        hex::encode_to_slice(digest, &mut hex).is_ok() && hex.as_slice() == logged.as_bytes()
    }

    fn effects(&self) -> &[Effect] {
        match self {
            Ran::Accepted { effects, .. } => effects,
            _ => &[],
        }
    }

    fn view(&self) -> OutcomeView {
        match self {
            Ran::Accepted { effects, reply, .. } => OutcomeView::Accepted {
                effects: effects.iter().map(effect_json).collect(),
                reply: doc_to_json("reply", reply).unwrap_or(serde_json::Value::Null),
            },
            Ran::Rejected { code, message } => OutcomeView::Rejected {
                code: code.clone(),
                message: message.clone(),
            },
            Ran::Faulted { kind, message } => OutcomeView::Faulted {
                kind: kind.clone(),
                message: message.clone(),
            },
        }
    }
}

/// Run `logged` on `version`. `None` when the host could not run it at all (busy, shutting down).
async fn run(runtime: &Runtime, version: &PluginVersion, logged: &[u8]) -> Option<Ran> {
    let input = match input_for(version, logged) {
        Ok(i) => i,
        Err(message) => {
            return Some(Ran::Faulted {
                kind: "bad_call".into(),
                message,
            });
        }
    };
    let (result, _fuel) = runtime.call_encoded_metered(version, &input).await;
    Some(match result {
        Ok((Outcome::Ok { effects, reply, .. }, raw)) => Ran::Accepted {
            effects,
            reply,
            digest: Sha256::digest(&raw).into(),
        },
        Ok((other, _)) => Ran::Faulted {
            kind: "bad_output".into(),
            message: format!("unexpected outcome {other:?}"),
        },
        Err(PluginError::Rejected { code, message }) => Ran::Rejected { code, message },
        Err(e) if e.host_failure().is_some() => return None,
        Err(e) => Ran::Faulted {
            kind: e.kind().to_owned(),
            message: e.to_string(),
        },
    })
}

/// Replay one logged action on the candidate (and, when it differs, on its original). Also gives
/// the call's bytes back, for the direct measurement.
async fn replay_one(
    runtime: &Runtime,
    candidate: &PluginVersion,
    originals: &Originals,
    unpacker: &mut call_log::Unpacker,
    row: LoggedCall,
) -> (Verdict, Option<Vec<u8>>) {
    let Ok(input) = unpacker.unpack(&row.call) else {
        return (Verdict::Skipped, None);
    };
    let Some(new) = run(runtime, candidate, &input).await else {
        return (Verdict::Skipped, Some(input));
    };
    if new.matches(&row.outcome_digest) {
        return (Verdict::Identical, Some(input));
    }
    if let Ran::Faulted { kind, message } = new {
        let fault = FaultSample {
            log_id: row.id,
            player_id: row.player_id,
            action: row.action.clone(),
            kind,
            message,
        };
        return (Verdict::Faulted(fault), Some(input));
    }
    let original = originals.get(&row.plugin_sha256).await;
    let old = match &original {
        Some(version) => run(runtime, version, &input).await,
        None => None,
    };
    let kind = match (&old, &new) {
        (_, Ran::Rejected { .. }) => DivergenceKind::Rejected,
        (
            Some(Ran::Accepted {
                effects: old_effects,
                reply: old_reply,
                ..
            }),
            Ran::Accepted {
                effects: new_effects,
                reply: new_reply,
                ..
            },
        ) => {
            if old_effects != new_effects {
                DivergenceKind::Effects
            } else if old_reply != new_reply {
                DivergenceKind::Reply
            } else {
                DivergenceKind::Other
            }
        }
        _ => DivergenceKind::Other,
    };
    let old_effects = old.as_ref().map_or(&[][..], Ran::effects);
    let (removed, added) = effect_diff(old_effects, new.effects());
    let divergence = Divergence {
        log_id: row.id,
        player_id: row.player_id,
        action: row.action,
        params: serde_json::from_str(&row.params).unwrap_or(serde_json::Value::String(row.params)),
        kind,
        old_reproduced: old.as_ref().is_some_and(|o| o.matches(&row.outcome_digest)),
        logged_sha256: row.plugin_sha256,
        old: old.as_ref().map(Ran::view),
        new: new.view(),
        effects_removed: removed,
        effects_added: added,
    };
    (Verdict::Diverged(Box::new(divergence)), Some(input))
}

/// The effects only `old` has and those only `new` has (as multisets, in their order).
fn effect_diff(old: &[Effect], new: &[Effect]) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let mut unmatched_new: Vec<Option<&Effect>> = new.iter().map(Some).collect();
    let mut removed = Vec::new();
    for effect in old {
        match unmatched_new.iter_mut().find(|n| n.is_some_and(|n| n == effect)) {
            Some(slot) => *slot = None,
            None => removed.push(effect_json(effect)),
        }
    }
    let added = unmatched_new.into_iter().flatten().map(effect_json).collect();
    (removed, added)
}

/// An effect as JSON, its documents (entity data, plugin state, event data) as JSON too.
pub fn effect_json(effect: &Effect) -> serde_json::Value {
    let doc = |what: &str, d: &cauldron_sdk::Doc| doc_to_json(what, d).unwrap_or(serde_json::Value::Null);
    match effect {
        Effect::CreateEntity { id, kind, data } => {
            serde_json::json!({"op": "create_entity", "id": id, "kind": kind, "data": doc("entity", data)})
        }
        Effect::UpdateEntity { id, data } => {
            serde_json::json!({"op": "update_entity", "id": id, "data": doc("entity", data)})
        }
        Effect::SetState { data } => serde_json::json!({"op": "set_state", "data": doc("state", data)}),
        Effect::Emit { event } => serde_json::json!({
            "op": "emit",
            "event": {"topic": event.topic, "scope": event.scope, "data": doc("event", &event.data)},
        }),
        other => serde_json::to_value(other).unwrap_or(serde_json::Value::Null),
    }
}

/// The report as text for a terminal: the counts, then each divergence and fault.
pub fn render(report: &ReplayReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let c = &report.candidate;
    let _ = writeln!(
        out,
        "replayed {} logged `{}` actions against {} {} ({} actions/s)",
        report.replayed, report.plugin, c.version, c.sha256, report.calls_per_sec as u64
    );
    let d = &report.diverged;
    let _ = writeln!(
        out,
        "  identical {}  diverged {} (effects {}, reply {}, rejected {}, other {})  faulted {}  skipped {}",
        report.identical, d.total, d.effects, d.reply, d.rejected, d.other, report.faulted, report.skipped
    );
    if let Some(t) = &report.throughput {
        let _ = writeln!(
            out,
            "  throughput: replay {:.0}/s, runtime alone {:.0}/s on {} calls: ratio {:.2}",
            t.replay_calls_per_sec, t.runtime_calls_per_sec, t.calls, t.ratio
        );
    }
    let json = |v: &serde_json::Value| serde_json::to_string(v).unwrap_or_default();
    let view = |v: &OutcomeView| match v {
        OutcomeView::Accepted { effects, reply } => format!(
            "accepted, effects {}, reply {}",
            json(&serde_json::Value::Array(effects.clone())),
            json(reply)
        ),
        OutcomeView::Rejected { code, message } => format!("rejected ({code}): {message}"),
        OutcomeView::Faulted { kind, message } => format!("faulted ({kind}): {message}"),
    };
    for div in &report.divergences {
        let kind = serde_json::to_value(div.kind).ok();
        let kind = kind.as_ref().and_then(|k| k.as_str()).unwrap_or("other");
        let _ = writeln!(
            out,
            "\n#{} player {} {} {} — {kind}",
            div.log_id,
            div.player_id,
            div.action,
            json(&div.params)
        );
        match &div.old {
            Some(old) => {
                let note = if div.old_reproduced {
                    ""
                } else {
                    " (not the logged outcome)"
                };
                let _ = writeln!(out, "  old{note}: {}", view(old));
            }
            None => {
                let _ = writeln!(out, "  old: version {} not found", div.logged_sha256);
            }
        }
        let _ = writeln!(out, "  new: {}", view(&div.new));
        for e in &div.effects_removed {
            let _ = writeln!(out, "  - {}", json(e));
        }
        for e in &div.effects_added {
            let _ = writeln!(out, "  + {}", json(e));
        }
    }
    for f in &report.faults {
        let _ = writeln!(
            out,
            "\n#{} player {} {}: FAULT {}: {}",
            f.log_id, f.player_id, f.action, f.kind, f.message
        );
    }
    out
}
