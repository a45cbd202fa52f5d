//! Shadow runs: a share of a plugin's live calls is run again on its shadow version (attached by an
//! admin, `crate::rollout`), off the request path, and the two answers compared. Nothing the shadow
//! does is applied. The queue between the game and the runner is bounded: when the runner falls
//! behind, calls are dropped (and counted), never waited for, so a slow or broken shadow cannot slow
//! the game.
//!
//! Each compared call counts in `cauldron_shadow_calls_total{plugin, version, result}` (`result`:
//! `identical`, `diverged`, `faulted`, or `dropped`) and in [`ShadowRunner::counts`] (for the admin
//! API). Divergences and faults are logged at WARN with the action's log id, the first twenty of
//! each version and every hundredth after, so `cauldron replay` can reproduce them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cauldron_runtime::{PluginError, PluginVersion, Runtime};
use cauldron_sdk::wire::Call;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::store::Store;

/// How many calls may wait for the shadow runner before new ones are dropped.
pub const QUEUE: usize = 256;

/// One live call to run again on a shadow.
pub(crate) struct Job {
    /// The shadow version.
    pub(crate) shadow: Arc<PluginVersion>,
    /// The call exactly as the live version got it.
    pub(crate) call: Call,
    /// sha256 (hex) of the live version's outcome bytes.
    pub(crate) live_digest: String,
    /// Who acted, and the player's version the action produced (names its log row).
    pub(crate) player_id: i64,
    pub(crate) player_version: i64,
}

/// What a plugin version's shadow runs found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ShadowCounts {
    /// Calls the shadow answered with exactly the live outcome.
    pub identical: u64,
    /// Calls it answered differently (other effects or reply, or a rejection).
    pub diverged: u64,
    /// Calls it faulted on (trap, fuel, memory, bad output).
    pub faulted: u64,
    /// Calls not run because the queue was full.
    pub dropped: u64,
}

/// The game's side of shadow runs: offers calls to a runner task.
#[derive(Clone)]
pub struct ShadowRunner {
    tx: Option<mpsc::Sender<Job>>,
    counts: Arc<Mutex<BTreeMap<(String, String), ShadowCounts>>>,
    metrics: Arc<Metrics>,
}

impl ShadowRunner {
    /// A runner task on the current Tokio runtime (none outside one: shadows then run nothing).
    pub(crate) fn start(runtime: Runtime, store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        let counts = Arc::new(Mutex::new(BTreeMap::new()));
        let tx = tokio::runtime::Handle::try_current().ok().map(|handle| {
            let (tx, rx) = mpsc::channel(QUEUE);
            handle.spawn(run(rx, runtime, store, metrics.clone(), counts.clone()));
            tx
        });
        Self { tx, counts, metrics }
    }

    /// Queue `job`, or drop it (counted) when the queue is full.
    pub(crate) fn offer(&self, job: Job) {
        let Some(tx) = &self.tx else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(job)) = tx.try_send(job) {
            let (plugin, version) = (job.shadow.name().to_owned(), job.shadow.version().to_owned());
            record(&self.counts, &self.metrics, &plugin, &version, Outcome::Dropped);
        }
    }

    /// The counts of every shadow version of `plugin` run so far on this host, by version.
    pub fn counts(&self, plugin: &str) -> BTreeMap<String, ShadowCounts> {
        lock(&self.counts)
            .iter()
            .filter(|((p, _), _)| p == plugin)
            .map(|((_, v), c)| (v.clone(), *c))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Identical,
    Diverged,
    Faulted,
    Dropped,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Identical => "identical",
            Self::Diverged => "diverged",
            Self::Faulted => "faulted",
            Self::Dropped => "dropped",
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Count `outcome`; returns how many of that outcome the version has now.
fn record(
    counts: &Mutex<BTreeMap<(String, String), ShadowCounts>>,
    metrics: &Metrics,
    plugin: &str,
    version: &str,
    outcome: Outcome,
) -> u64 {
    metrics.inc(
        "cauldron_shadow_calls_total",
        &[
            ("plugin", plugin),
            ("version", version),
            ("result", outcome.label()),
        ],
    );
    let mut counts = lock(counts);
    let c = counts.entry((plugin.to_owned(), version.to_owned())).or_default();
    let n = match outcome {
        Outcome::Identical => &mut c.identical,
        Outcome::Diverged => &mut c.diverged,
        Outcome::Faulted => &mut c.faulted,
        Outcome::Dropped => &mut c.dropped,
    };
    *n += 1;
    *n
}

async fn run(
    mut rx: mpsc::Receiver<Job>,
    runtime: Runtime,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    counts: Arc<Mutex<BTreeMap<(String, String), ShadowCounts>>>,
) {
    while let Some(job) = rx.recv().await {
        let (result, _fuel) = runtime.call_metered_raw(job.shadow.clone(), &job.call).await;
        let (outcome, detail) = match result {
            Ok((_, raw)) => {
                if hex::encode(Sha256::digest(&raw)) == job.live_digest {
                    (Outcome::Identical, String::new())
                } else {
                    (Outcome::Diverged, "other effects or reply".to_owned())
                }
            }
            Err(PluginError::Rejected { code, message }) => (
                Outcome::Diverged,
                format!("rejected what the live version accepted: {code}: {message}"),
            ),
            // The host could not run it (shutting down, overloaded): not the shadow's doing.
            Err(e) if e.host_failure().is_some() => continue,
            Err(e) => (Outcome::Faulted, e.to_string()),
        };
        let plugin = job.shadow.name();
        let version = job.shadow.version();
        let n = record(&counts, &metrics, plugin, version, outcome);
        if outcome != Outcome::Identical && (n <= 20 || n.is_multiple_of(100)) {
            let log_id = store
                .log_id(job.player_id, job.player_version)
                .await
                .ok()
                .flatten();
            tracing::warn!(
                plugin,
                shadow_version = version,
                action = %job.call.action,
                player = job.player_id,
                log_id,
                result = outcome.label(),
                detail = %detail,
                "shadow run differs from the live call; `cauldron replay` reproduces it from the log"
            );
        }
    }
}
