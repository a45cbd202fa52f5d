//! The action pipeline: one player action from request to committed effects and published events.
//! Knows the runtime and the store/cache/bus traits, never HTTP.
//!
//! # Layout
//! - this file: [`Game`], [`Game::execute`] (the pipeline), character creation, reads.
//! - `effects`: checking a plugin's effects before they are written.
//! - `stats`: composing effective stats from modifiers.
//! - `modifier_cache`: the `modifiers` hooks' answers per player version.
//! - `call_log`: the exact call of each logged action, compressed, and its retention.
//!
//! One action: look up the plugin version (an `Arc`, so a reload never disturbs it) and the action in
//! its manifest → honour the idempotency key → take this node's lock for the player (so one player's
//! actions run one at a time here; the version guard covers other nodes) → load the player's state
//! (from the cache when its version is current) → compose effective stats from every plugin's
//! `modifiers` hook and active buffs → call the plugin with only its declared sections and tables →
//! validate the effects → apply them and the log row in one transaction guarded by the version (on a
//! conflict, reload and re-run, a bounded number of times) → invalidate the cache, update
//! leaderboards, publish events.
//!
//! An action that declares `reads_player` and names another player in that param also gets that
//! player's public view (`Call::other_player`): their base stats and buffs (and entities of the
//! action's kinds, when it reads entities) are loaded with the same one-statement load, their
//! effective stats come from the same modifiers step, and nothing else of theirs is read into the
//! call or written.
//!
//! A **query** (an action its manifest marks `query`) stops after the call: it reads the player's
//! current state (cached when current), gets the modifiers, calls the plugin and returns the reply with
//! the version it read. No player lock, no transaction, no log row, no new version, no events; its
//! Idempotency-Key is ignored (repeating a query is harmless). A query that returns effects is a
//! plugin fault (`query_effects`) and nothing is written.
//!
//! The `modifiers` hooks' answers are cached per (player, version, registry generation), so reads at an
//! unchanged state call no hook (see `modifier_cache`).

pub mod call_log;
pub mod effects;
mod modifier_cache;
#[cfg(test)]
mod proptests;
pub mod shadow;
pub mod stats;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use cauldron_runtime::HostFailure;
use cauldron_runtime::{ALL_BP, Companion, PluginError, PluginVersion, Registry, Runtime};
use cauldron_sdk::Doc;
use cauldron_sdk::abi::{QUERY_EFFECTS, reject_codes};
use cauldron_sdk::codec;
use cauldron_sdk::wire::{
    ActionSpec, Call, CallKind, Effect, Entity, HOOK_MODIFIERS, Manifest, Modifier, OtherPlayer, Outcome,
    ParamType, PlayerState, Scope, Section,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bus::Channel;
use crate::cache::services::Services;
use crate::clock::Clock;
use crate::json::{check_json, doc_to_json, json_to_doc};
use crate::metrics::Metrics;
use crate::store::{ApplyRequest, FullState, LogEntry, Pick, Player, Sections, Store, StoreError};

/// How many times an action is re-run after a concurrent change before giving up with a conflict.
pub const MAX_ATTEMPTS: usize = 8;
/// The optional action every plugin may offer to set up a new character.
pub const START_ACTION: &str = "start";

/// One action as requested by a client.
#[derive(Debug, Clone)]
pub struct ActionRequest {
    /// The acting player.
    pub player_id: i64,
    /// Plugin name.
    pub plugin: String,
    /// Action name.
    pub action: String,
    /// Params as sent (an object, or null).
    pub params: serde_json::Value,
    /// The client's Idempotency-Key.
    pub idempotency_key: Option<String>,
}

/// An event for clients, as published on the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventOut {
    /// The plugin that emitted it.
    pub plugin: String,
    /// Its topic.
    pub topic: String,
    /// `player` or `global`.
    pub scope: String,
    /// The acting player.
    pub player_id: i64,
    /// Payload.
    pub data: serde_json::Value,
}

/// The answer to an action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionReply {
    /// The plugin's reply.
    pub reply: serde_json::Value,
    /// Events the action emitted (already published).
    pub events: Vec<EventOut>,
    /// The player's version after the action.
    pub player_version: i64,
    /// True when this is the stored answer to an earlier request with the same idempotency key.
    pub replayed: bool,
}

/// A player's stats: base, after modifiers, and the modifiers themselves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsView {
    /// Stats as plugins set them.
    pub base: BTreeMap<String, f64>,
    /// After every plugin's modifiers and active buffs.
    pub effective: BTreeMap<String, f64>,
    /// Every modifier that applied, with its source.
    pub modifiers: Vec<Modifier>,
}

/// One plugin in the catalog: what clients need to render its actions and content.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogEntry {
    /// The manifest.
    pub manifest: Manifest,
    /// Its version.
    pub version: String,
    /// Digest of the serving version (its bundle: module and content tables).
    pub sha256: String,
    /// Its content tables as JSON.
    pub content: BTreeMap<String, serde_json::Value>,
}

/// Why an action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum GameError {
    /// No plugin of that name is loaded.
    #[error("unknown plugin `{0}`")]
    UnknownPlugin(String),
    /// The plugin has no such action.
    #[error("plugin `{plugin}` has no action `{action}`")]
    UnknownAction {
        /// Plugin name.
        plugin: String,
        /// Action name.
        action: String,
    },
    /// The params are malformed.
    #[error("bad params: {0}")]
    BadParams(String),
    /// The rules said no.
    #[error("{message}")]
    Rejected {
        /// Rejection code.
        code: String,
        /// Message for the player.
        message: String,
    },
    /// The player, or a thing the action names, does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The plugin failed; nothing changed.
    #[error("plugin {plugin} {version} failed ({kind}): {message}")]
    Fault {
        /// Plugin name.
        plugin: String,
        /// Plugin version.
        version: String,
        /// Fault kind (`trap`, `out_of_fuel`, `bad_effect`, ...).
        kind: &'static str,
        /// Detail for operators.
        message: String,
    },
    /// The player's state kept changing concurrently; nothing changed.
    #[error("the player's state kept changing; try again")]
    Conflict,
    /// The host cannot serve the action right now.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The idempotency key was used before for a different request (another plugin, action or
    /// params); nothing ran.
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    /// The store failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

/// A player's state as loaded for one attempt: the sections the call (and, when their answers are not
/// cached, the `modifiers` hooks) read, from which each call gets its view.
#[derive(Debug, Clone)]
struct Snapshot {
    version: i64,
    /// The loaded sections; what `loaded` leaves out is empty here, not absent in the store.
    state: PlayerState,
    plugin_states: BTreeMap<String, Doc>,
    loaded: Sections,
}

impl Snapshot {
    fn from_full(full: FullState, loaded: Sections) -> Self {
        let state = PlayerState {
            id: full.player.id,
            name: full.player.name,
            created_ms: full.player.created_ms,
            stats: full.stats,
            currencies: full.currencies,
            counters: full.counters,
            items: full.items,
            entities: full
                .entities
                .iter()
                .map(|e| Entity {
                    id: e.id.clone(),
                    kind: e.kind.clone(),
                    data: json_to_doc(&e.data),
                })
                .collect(),
            buffs: full.buffs,
            state: Doc::nil(),
        };
        let plugin_states = full
            .plugin_state
            .iter()
            .map(|(k, v)| (k.clone(), json_to_doc(v)))
            .collect();
        Self {
            version: full.player.version,
            state,
            plugin_states,
            loaded,
        }
    }

    /// What a call of `plugin` that reads `sections` and entity `kinds` may see.
    fn view(&self, plugin: &str, sections: &[Section], kinds: &[String]) -> PlayerState {
        let mut view = self.state.only(sections, kinds);
        if sections.contains(&Section::State) {
            view.state = self.plugin_states.get(plugin).cloned().unwrap_or_else(Doc::nil);
        }
        view
    }

    /// The loaded state with `plugin`'s private state in place, for effect validation.
    fn full_for(&self, plugin: &str) -> PlayerState {
        let mut s = self.state.clone();
        s.state = self.plugin_states.get(plugin).cloned().unwrap_or_else(Doc::nil);
        s
    }
}

/// What a call of `plugin` reading `reads` (entities of `kinds`) needs loaded: what it declared, and
/// base stats and buffs always, since every call gets the effective stats, composed from them.
fn sections_for(plugin: &str, reads: &[Section], kinds: &[String]) -> Sections {
    Sections {
        stats: true,
        buffs: true,
        ..declared(plugin, reads, kinds)
    }
}

/// The sections a call of `plugin` that declared `reads` (entities of `kinds`) sees.
fn declared(plugin: &str, reads: &[Section], kinds: &[String]) -> Sections {
    let has = |s: Section| reads.contains(&s);
    Sections {
        stats: has(Section::Stats),
        buffs: has(Section::Buffs),
        currencies: has(Section::Currencies),
        counters: has(Section::Counters),
        items: has(Section::Items),
        scores: false,
        entities: if has(Section::Entities) {
            Pick::Only(kinds.to_vec())
        } else {
            Pick::None
        },
        plugin_state: if has(Section::State) {
            Pick::Only(vec![plugin.to_owned()])
        } else {
            Pick::None
        },
    }
}

/// What the `modifiers` hooks of `versions` need loaded (`load`), or what they see (not `load`: the
/// sections whose change can change their answer).
fn hook_sections(versions: &[Arc<PluginVersion>], load: bool) -> Sections {
    let mut all = Sections::default();
    for version in versions {
        if let Some(hook) = version.manifest.hook(HOOK_MODIFIERS) {
            let (name, kinds) = (version.name(), &version.manifest.entity_kinds);
            all.add(&if load {
                sections_for(name, &hook.reads, kinds)
            } else {
                declared(name, &hook.reads, kinds)
            });
        }
    }
    all
}

/// The game: plugins, state and services wired into the action pipeline. Cheap to clone.
#[derive(Clone)]
pub struct Game {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Runtime,
    registry: Arc<Registry>,
    store: Arc<dyn Store>,
    services: Services,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    locks: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    modifier_cache: modifier_cache::ModifierCache,
    /// Re-runs a share of the live calls on plugins' shadow versions.
    shadow: shadow::ShadowRunner,
}

impl Game {
    /// Wire the pipeline on the system clock.
    pub fn new(
        runtime: Runtime,
        registry: Arc<Registry>,
        store: Arc<dyn Store>,
        services: Services,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self::with_clock(
            runtime,
            registry,
            store,
            services,
            metrics,
            crate::clock::system(),
        )
    }

    /// Wire the pipeline on `clock`: every action, query and read takes its `now_ms` from it.
    pub fn with_clock(
        runtime: Runtime,
        registry: Arc<Registry>,
        store: Arc<dyn Store>,
        services: Services,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let shadow = shadow::ShadowRunner::start(runtime.clone(), store.clone(), metrics.clone());
        Self {
            inner: Arc::new(Inner {
                runtime,
                registry,
                store,
                services,
                metrics,
                clock,
                locks: Mutex::new(HashMap::new()),
                modifier_cache: modifier_cache::ModifierCache::new(modifier_cache::CAPACITY),
                shadow,
            }),
        }
    }

    /// What the shadow versions of `plugin` found on this host so far, by version.
    pub fn shadow_counts(&self, plugin: &str) -> BTreeMap<String, shadow::ShadowCounts> {
        self.inner.shadow.counts(plugin)
    }

    /// Game time now (ms since the epoch), from the clock the game was wired with: the time the
    /// plugins see.
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Every loaded plugin's manifest and content, for clients.
    pub fn catalog(&self) -> Vec<CatalogEntry> {
        self.inner
            .registry
            .current()
            .into_iter()
            .map(|v| CatalogEntry {
                manifest: v.manifest.clone(),
                version: v.version().to_owned(),
                sha256: v.sha256.clone(),
                content: v
                    .content
                    .iter()
                    .filter_map(|(k, d)| Some((k.clone(), doc_to_json("content table", d).ok()?)))
                    .collect(),
            })
            .collect()
    }

    /// Whether `action` of `plugin` is a query (read-only) in the serving version; false when either is
    /// unknown. The API picks the query rate limit by this.
    pub fn is_query(&self, plugin: &str, action: &str) -> bool {
        self.inner
            .registry
            .get(plugin)
            .and_then(|v| v.manifest.action(action).map(|a| a.query))
            .unwrap_or(false)
    }

    /// The player's full state.
    pub async fn state(&self, player_id: i64) -> Result<FullState, GameError> {
        self.inner
            .store
            .load_full(player_id, self.now_ms())
            .await
            .map_err(not_found_player)
    }

    /// The player's base and effective stats.
    pub async fn effective_stats(&self, player_id: i64) -> Result<StatsView, GameError> {
        let now = self.now_ms();
        let base = Sections {
            stats: true,
            buffs: true,
            ..Sections::default()
        };
        let (snap, modifiers) = self.prepare(player_id, now, &base).await?;
        Ok(StatsView {
            base: snap.state.stats.clone(),
            effective: stats::compose(&snap.state.stats, &modifiers),
            modifiers,
        })
    }

    /// Create a player for an account and run every plugin's optional `start` action for it.
    pub async fn create_character(&self, account_id: i64, name: &str) -> Result<Player, GameError> {
        let player = self.inner.store.create_player(account_id, name).await?;
        for version in self.inner.registry.current() {
            if version.manifest.action(START_ACTION).is_none() {
                continue;
            }
            let req = ActionRequest {
                player_id: player.id,
                plugin: version.name().to_owned(),
                action: START_ACTION.into(),
                params: serde_json::Value::Null,
                idempotency_key: None,
            };
            match self.execute(req).await {
                Ok(_) | Err(GameError::Rejected { .. }) => {}
                Err(e) => {
                    tracing::warn!(plugin = %version.name(), player = player.id, "start action failed: {e}")
                }
            }
        }
        let player = self.inner.store.player_by_id(player.id).await?.unwrap_or(player);
        Ok(player)
    }

    fn player_lock(&self, player_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.inner.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(player_id).or_default().clone()
    }

    fn release_lock(&self, player_id: i64, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut locks = self.inner.locks.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map and this handle hold it: nobody else is waiting, so forget it.
        if Arc::strong_count(&lock) == 2 {
            locks.remove(&player_id);
        }
    }

    /// Load `sections` of the player's state in one statement.
    async fn load(&self, player_id: i64, now: i64, sections: &Sections) -> Result<Snapshot, GameError> {
        let full = self
            .inner
            .store
            .load(player_id, now, sections)
            .await
            .map_err(not_found_player)?;
        Ok(Snapshot::from_full(full, sections.clone()))
    }

    /// The player's state with `sections` loaded, and the modifiers that apply to it. When the hooks'
    /// answers for this version are not cached and the hooks read more than `sections`, that is
    /// loaded too; if the player changed between the two loads, it starts over.
    async fn prepare(
        &self,
        player_id: i64,
        now: i64,
        sections: &Sections,
    ) -> Result<(Snapshot, Vec<Modifier>), GameError> {
        for _ in 0..MAX_ATTEMPTS {
            let mut snap = self.load(player_id, now, sections).await?;
            if let Some(modifiers) = self.modifiers(&mut snap, now).await? {
                return Ok((snap, modifiers));
            }
        }
        Err(GameError::Conflict)
    }

    /// Load what `snap` lacks of `more` at the same version; false if the player has moved on.
    async fn widen(&self, snap: &mut Snapshot, now: i64, more: &Sections) -> Result<bool, GameError> {
        if snap.loaded.covers(more) {
            return Ok(true);
        }
        let mut sections = snap.loaded.clone();
        sections.add(more);
        let wider = self.load(snap.state.id, now, &sections).await?;
        if wider.version != snap.version {
            return Ok(false);
        }
        *snap = wider;
        Ok(true)
    }

    /// Every plugin's `modifiers` for this state, plus active buffs. `None` when the hooks had to read
    /// more of the state and the player changed meanwhile.
    async fn modifiers(&self, snap: &mut Snapshot, now: i64) -> Result<Option<Vec<Modifier>>, GameError> {
        let Some(hooks) = self.hook_modifiers(snap, now).await? else {
            return Ok(None);
        };
        let mut all: Vec<Modifier> = snap
            .state
            .buffs
            .iter()
            .filter(|b| b.expires_ms > now)
            .flat_map(|b| b.modifiers.iter().cloned())
            .collect();
        all.extend(hooks.iter().cloned());
        Ok(Some(all))
    }

    /// Every plugin's `modifiers` hook answer for this state, from the cache when this state and these
    /// plugins were asked before. The hooks must not depend on `now_ms` (ABI.md §6.1; the plugins'
    /// hooks read entities only), which is what makes the cache sound. A faulting hook is skipped
    /// (and counted, and the answer not cached) so one broken plugin never blocks the others'
    /// actions; when the host itself cannot run a hook, the stats would be wrong, so the whole
    /// request is unavailable.
    async fn hook_modifiers(
        &self,
        snap: &mut Snapshot,
        now: i64,
    ) -> Result<Option<Arc<Vec<Modifier>>>, GameError> {
        let registry = &self.inner.registry;
        let cache = &self.inner.modifier_cache;
        if let Some(hit) = cache.get(snap.state.id, snap.version, registry.generation(), now) {
            return Ok(Some(hit));
        }
        let (generation, versions) = registry.current_for_with_generation(snap.state.id);
        if !self.widen(snap, now, &hook_sections(&versions, true)).await? {
            return Ok(None);
        }
        let mut all = Vec::new();
        let mut complete = true;
        for version in versions {
            let Some(hook) = version.manifest.hook(HOOK_MODIFIERS) else {
                continue;
            };
            let call = Call {
                action: HOOK_MODIFIERS.into(),
                kind: CallKind::Hook,
                params: Doc::nil(),
                player: snap.view(version.name(), &hook.reads, &version.manifest.entity_kinds),
                effective_stats: BTreeMap::new(),
                now_ms: now,
                seed: rand::random(),
                content: version.content_for(&hook.content),
                other_player: None,
            };
            match self.call_plugin(&version, &call).await {
                Ok((Outcome::Ok { modifiers, .. }, _)) => all.extend(modifiers),
                Ok(_) => complete = false,
                Err(e) if e.host_failure().is_some() => return Err(host_unavailable(&e)),
                Err(e) => {
                    complete = false;
                    tracing::warn!(plugin = %version.name(), "modifiers hook skipped: {e}");
                }
            }
        }
        let all = Arc::new(all);
        if complete {
            // Good until the first buff the hooks may have seen expires.
            let valid_until = snap
                .state
                .buffs
                .iter()
                .map(|b| b.expires_ms)
                .min()
                .unwrap_or(i64::MAX);
            cache.put(
                snap.state.id,
                snap.version,
                generation,
                valid_until,
                Arc::clone(&all),
                now,
            );
        }
        Ok(Some(all))
    }

    /// Call a plugin, recording metrics. Returns the outcome and the bytes it was decoded from.
    async fn call_plugin(
        &self,
        version: &Arc<PluginVersion>,
        call: &Call,
    ) -> Result<(Outcome, Vec<u8>), PluginError> {
        let input = codec::encode(call)
            .map_err(|e| PluginError::host(HostFailure::Internal, format!("encoding call: {e}")))?;
        self.call_plugin_encoded(version, &call.action, &input).await
    }

    /// [`Game::call_plugin`] with the call already encoded (`input`, for `action`).
    async fn call_plugin_encoded(
        &self,
        version: &Arc<PluginVersion>,
        action: &str,
        input: &[u8],
    ) -> Result<(Outcome, Vec<u8>), PluginError> {
        let started = Instant::now();
        let (result, fuel) = self.inner.runtime.call_encoded_metered(version, input).await;
        let label = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        self.inner.metrics.plugin_call(
            version.name(),
            action,
            label,
            started.elapsed().as_secs_f64(),
            fuel,
        );
        if let Err(e) = &result {
            if e.is_fault() {
                self.inner
                    .metrics
                    .plugin_fault(version.name(), version.version(), e.kind());
            } else if let Some(reason) = e.host_failure() {
                self.inner.metrics.inc(
                    "cauldron_host_call_failures_total",
                    &[("plugin", version.name()), ("reason", reason.as_str())],
                );
            }
        }
        result
    }

    /// A fault found in an outcome the call returned (bad output, bad effects): the call itself went
    /// fine, so `call_plugin` did not count it; counted here.
    fn outcome_fault(&self, version: &PluginVersion, kind: &'static str, message: String) -> GameError {
        self.inner
            .metrics
            .plugin_fault(version.name(), version.version(), kind);
        self.fault(version, kind, message)
    }

    fn fault(&self, version: &PluginVersion, kind: &'static str, message: String) -> GameError {
        tracing::warn!(plugin = %version.name(), version = %version.version(), kind, "plugin fault: {message}");
        GameError::Fault {
            plugin: version.name().to_owned(),
            version: version.version().to_owned(),
            kind,
            message,
        }
    }

    /// Run one action end to end. See the module docs for the steps.
    pub async fn execute(&self, req: ActionRequest) -> Result<ActionReply, GameError> {
        // The canary when the player is in its share: the same player, the same version, on every host.
        let version = self
            .inner
            .registry
            .get_for(&req.plugin, req.player_id)
            .ok_or_else(|| GameError::UnknownPlugin(req.plugin.clone()))?;
        let spec = version
            .manifest
            .action(&req.action)
            .cloned()
            .ok_or_else(|| GameError::UnknownAction {
                plugin: req.plugin.clone(),
                action: req.action.clone(),
            })?;
        if !(req.params.is_object() || req.params.is_null()) {
            return Err(GameError::BadParams("params must be a JSON object".into()));
        }
        check_json("params", &req.params).map_err(GameError::BadParams)?;
        let other_id = other_player_id(&spec, &req.params)?;
        let params = json_to_doc(&req.params);
        let mut kinds = version.manifest.entity_kinds.clone();
        kinds.extend(spec.kinds.iter().cloned());

        let planned = Planned {
            req: &req,
            version: &version,
            spec: &spec,
            params: &params,
            kinds: &kinds,
            other_id,
        };
        if spec.query {
            return self.query(&planned).await;
        }

        let lock = self.player_lock(req.player_id);
        let result = {
            let _guard = lock.lock().await;
            self.execute_locked(&planned).await
        };
        self.release_lock(req.player_id, lock);
        result
    }

    async fn execute_locked(&self, planned: &Planned<'_>) -> Result<ActionReply, GameError> {
        let Planned {
            req, version, spec, ..
        } = *planned;
        let store = &self.inner.store;
        let fingerprint = request_fingerprint(&req.plugin, &req.action, &req.params);
        for _ in 0..MAX_ATTEMPTS {
            if let Some(key) = &req.idempotency_key
                && let Some(done) = store.idempotent_reply(req.player_id, key).await?
            {
                if done.fingerprint.as_deref().is_some_and(|f| f != fingerprint) {
                    return Err(GameError::IdempotencyKeyReused);
                }
                return Ok(ActionReply {
                    reply: done.reply,
                    events: Vec::new(),
                    player_version: done.version,
                    replayed: true,
                });
            }
            let now = self.now_ms();
            let (mut snap, modifiers) = self.prepare(req.player_id, now, &planned.sections()).await?;
            let other = self.other_player(planned, now).await?;
            let call = planned.call(&snap, &modifiers, now, other);
            // Encoded once: these bytes run the call and go to the log, so a replay runs exactly them.
            let input = codec::encode(&call).map_err(|e| {
                host_unavailable(&PluginError::host(
                    HostFailure::Internal,
                    format!("encoding call: {e}"),
                ))
            })?;
            let (outcome, raw) = match self.call_plugin_encoded(version, &call.action, &input).await {
                Ok(called) => called,
                Err(PluginError::Rejected { code, message }) => {
                    return Err(rejection(req, code, message));
                }
                Err(e) if e.host_failure().is_some() => return Err(host_unavailable(&e)),
                Err(e) => return Err(self.fault(version, e.kind(), e.to_string())),
            };
            let Outcome::Ok { effects, reply, .. } = &outcome else {
                return Err(self.outcome_fault(version, "bad_output", "unexpected outcome".into()));
            };
            // Changing or deleting an entity is checked against the entities the action may touch,
            // loaded now if the action did not read them.
            if effects
                .iter()
                .any(|e| matches!(e, Effect::UpdateEntity { .. } | Effect::DeleteEntity { .. }))
            {
                let entities = Sections {
                    entities: Pick::Only(planned.kinds.to_vec()),
                    ..Sections::default()
                };
                if !self.widen(&mut snap, now, &entities).await? {
                    self.count_conflict(version.name());
                    continue;
                }
            }
            let checked = effects::validate(
                &snap.full_for(version.name()),
                &snap.loaded,
                &version.manifest.entity_kinds,
                &spec.kinds,
                effects,
                now,
            )
            .map_err(|e| self.outcome_fault(version, "bad_effect", e))?;
            let carry_modifiers = !self.hooks_read().overlaps(&checked.touches(version.name()));
            let reply_json =
                effects::validate_reply(reply).map_err(|e| self.outcome_fault(version, "bad_effect", e))?;
            // The outcome exactly as the plugin wrote it: a replay that writes the same bytes matches.
            let digest = hex::encode(Sha256::digest(&raw));
            let live_digest = digest.clone();
            let log = LogEntry {
                plugin_version: version.version().to_owned(),
                plugin_sha256: version.sha256.clone(),
                action: req.action.clone(),
                params: req.params.clone(),
                seed: call.seed,
                now_ms: now,
                outcome_digest: digest,
                call: Some(call_log::pack(&input)),
                reply: reply_json.clone(),
                idempotency_key: req.idempotency_key.clone(),
                fingerprint: req.idempotency_key.as_ref().map(|_| fingerprint.clone()),
            };
            let apply = ApplyRequest {
                player_id: req.player_id,
                expected_version: snap.version,
                plugin: version.name().to_owned(),
                effects: checked,
                log,
            };
            match store.apply(apply).await {
                Ok(new_version) => {
                    // A share of the applied calls is run again on the plugin's shadow, if any.
                    if let Some((shadow, share)) =
                        self.inner.registry.companion(Companion::Shadow, version.name())
                        && rand::random::<u32>() % ALL_BP < share
                    {
                        self.inner.shadow.offer(shadow::Job {
                            shadow,
                            call,
                            live_digest,
                            player_id: req.player_id,
                            player_version: new_version,
                        });
                    }
                    if carry_modifiers {
                        // Nothing the hooks read changed: their answer holds for the new version too.
                        self.inner
                            .modifier_cache
                            .carry(req.player_id, snap.version, new_version);
                    }
                    let events = self.after_commit(req.player_id, version.name(), effects).await;
                    return Ok(ActionReply {
                        reply: reply_json,
                        events,
                        player_version: new_version,
                        replayed: false,
                    });
                }
                Err(StoreError::Conflict) => {
                    self.count_conflict(version.name());
                    continue;
                }
                Err(StoreError::Invalid(e)) => return Err(self.outcome_fault(version, "bad_effect", e)),
                Err(StoreError::NotFound) => {
                    return Err(GameError::NotFound(format!("player {}", req.player_id)));
                }
                Err(e) => return Err(GameError::Store(e)),
            }
        }
        Err(GameError::Conflict)
    }

    fn count_conflict(&self, plugin: &str) {
        self.inner
            .metrics
            .inc("cauldron_action_conflicts_total", &[("plugin", plugin)]);
    }

    /// What the serving plugins' `modifiers` hooks see.
    fn hooks_read(&self) -> Sections {
        hook_sections(&self.inner.registry.serving(), false)
    }

    /// After a commit: mirror scores to the leaderboards, publish events.
    async fn after_commit(&self, player_id: i64, plugin: &str, effects: &[Effect]) -> Vec<EventOut> {
        let services = &self.inner.services;
        let mut events = Vec::new();
        for effect in effects {
            match effect {
                Effect::SetScore { board, score } => {
                    if let Err(e) = services.leaderboard.set_score(board, player_id, *score).await {
                        tracing::warn!(board, "leaderboard not updated (the store has the score): {e}");
                    }
                }
                Effect::Emit { event } => {
                    let scope = match event.scope {
                        Scope::Player => "player",
                        Scope::Global => "global",
                    };
                    let out = EventOut {
                        plugin: plugin.to_owned(),
                        topic: event.topic.clone(),
                        scope: scope.into(),
                        player_id,
                        data: doc_to_json("event data", &event.data).unwrap_or(serde_json::Value::Null),
                    };
                    let channel = match event.scope {
                        Scope::Player => Channel::Player(player_id),
                        Scope::Global => Channel::Global,
                    };
                    if let Ok(bytes) = serde_json::to_vec(&out) {
                        services.bus.publish(&channel, Bytes::from(bytes)).await;
                    }
                    events.push(out);
                }
                _ => {}
            }
        }
        events
    }
}

impl Game {
    /// The public view of the other player the action names (see [`other_player_id`]), or `None`
    /// when it names nobody. Only their base stats, buffs (for the effective stats) and, when the
    /// action reads entities, their entities of the action's kinds are loaded, in one statement
    /// (plus what the `modifiers` hooks read when their answer is not cached); the view keeps the
    /// id, name, base and effective stats and those entities. A player who does not exist is
    /// [`GameError::NotFound`].
    async fn other_player(&self, planned: &Planned<'_>, now: i64) -> Result<Option<OtherPlayer>, GameError> {
        let Some(id) = planned.other_id else {
            return Ok(None);
        };
        let entities = planned.spec.reads.contains(&Section::Entities);
        let sections = Sections {
            stats: true,
            buffs: true,
            entities: if entities {
                Pick::Only(planned.kinds.to_vec())
            } else {
                Pick::None
            },
            ..Sections::default()
        };
        let (snap, modifiers) = self.prepare(id, now, &sections).await.map_err(|e| match e {
            GameError::NotFound(_) => GameError::NotFound(format!("no player with id {id}")),
            other => other,
        })?;
        let kinds: &[String] = if entities { planned.kinds } else { &[] };
        Ok(Some(OtherPlayer::view(
            &snap.state,
            stats::compose(&snap.state.stats, &modifiers),
            kinds,
        )))
    }

    /// Run a query action (see the module docs): the call on the current state, its reply, nothing
    /// written. Rejections and faults are answered as for any action.
    async fn query(&self, planned: &Planned<'_>) -> Result<ActionReply, GameError> {
        let Planned { req, version, .. } = *planned;
        let now = self.now_ms();
        let (snap, modifiers) = self.prepare(req.player_id, now, &planned.sections()).await?;
        let other = self.other_player(planned, now).await?;
        let call = planned.call(&snap, &modifiers, now, other);
        let outcome = match self.call_plugin(version, &call).await {
            Ok((o, _raw)) => o,
            Err(PluginError::Rejected { code, message }) => return Err(rejection(req, code, message)),
            Err(e) if e.host_failure().is_some() => return Err(host_unavailable(&e)),
            Err(e) => return Err(self.fault(version, e.kind(), e.to_string())),
        };
        let Outcome::Ok { effects, reply, .. } = &outcome else {
            return Err(self.outcome_fault(version, "bad_output", "unexpected outcome".into()));
        };
        if !effects.is_empty() {
            return Err(self.outcome_fault(
                version,
                QUERY_EFFECTS,
                format!(
                    "query action `{}` returned {} effect(s); a query must return none, so nothing \
                     was written",
                    req.action,
                    effects.len()
                ),
            ));
        }
        let reply =
            effects::validate_reply(reply).map_err(|e| self.outcome_fault(version, "bad_effect", e))?;
        Ok(ActionReply {
            reply,
            events: Vec::new(),
            player_version: snap.version,
            replayed: false,
        })
    }
}

/// One action as resolved before it runs: the request, the plugin version and action spec it names,
/// its params as a document, and every entity kind it may touch.
#[derive(Clone, Copy)]
struct Planned<'a> {
    req: &'a ActionRequest,
    version: &'a Arc<PluginVersion>,
    spec: &'a ActionSpec,
    params: &'a Doc,
    kinds: &'a [String],
    /// The other player the action reads, by the param its `reads_player` names.
    other_id: Option<i64>,
}

impl Planned<'_> {
    /// What the call reads.
    fn sections(&self) -> Sections {
        sections_for(self.version.name(), &self.spec.reads, self.kinds)
    }

    /// The plugin call for this action on `snap`: only the sections, entity kinds and content tables
    /// the action declared, the effective stats, the time, a fresh seed and the other player's view.
    fn call(&self, snap: &Snapshot, modifiers: &[Modifier], now: i64, other: Option<OtherPlayer>) -> Call {
        Call {
            action: self.req.action.clone(),
            kind: CallKind::Action,
            params: self.params.clone(),
            player: snap.view(self.version.name(), &self.spec.reads, self.kinds),
            effective_stats: stats::compose(&snap.state.stats, modifiers),
            now_ms: now,
            seed: rand::random(),
            content: self.version.content_for(&self.spec.content),
            other_player: other,
        }
    }
}

/// The id of the other player an action reads: the param its `reads_player` names, when present
/// and not null. A `player` param the action does not name there is refused (`bad_params`) before any
/// plugin runs, and so is a named param that is not a whole number: a plugin sees another player
/// only through a read its manifest declares.
fn other_player_id(spec: &ActionSpec, params: &serde_json::Value) -> Result<Option<i64>, GameError> {
    let Some(map) = params.as_object() else {
        return Ok(None);
    };
    if let Some(p) = spec
        .params
        .iter()
        .find(|p| p.ty == ParamType::Player && p.name != spec.reads_player && map.contains_key(&p.name))
    {
        return Err(GameError::BadParams(format!(
            "`{}` names another player, but action `{}` does not declare reading one",
            p.name, spec.name
        )));
    }
    if !spec.reads_other_player() {
        return Ok(None);
    }
    match map.get(&spec.reads_player) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            GameError::BadParams(format!(
                "`{}` must be a player id (a whole number)",
                spec.reads_player
            ))
        }),
    }
}

/// A plugin's rejection as the caller's error: the reserved codes map to their own kinds.
fn rejection(req: &ActionRequest, code: String, message: String) -> GameError {
    match code.as_str() {
        reject_codes::BAD_PARAMS => GameError::BadParams(message),
        reject_codes::UNKNOWN_ACTION => GameError::UnknownAction {
            plugin: req.plugin.clone(),
            action: req.action.clone(),
        },
        reject_codes::NOT_FOUND => GameError::NotFound(message),
        _ => GameError::Rejected { code, message },
    }
}

/// What identifies a request for its idempotency key: sha256 over the plugin, the action and the
/// params as canonical JSON (object keys sorted, no spaces; `null` params read as `{}`).
fn request_fingerprint(plugin: &str, action: &str, params: &serde_json::Value) -> String {
    let mut hash = Sha256::new();
    hash.update(plugin.as_bytes());
    hash.update([0]);
    hash.update(action.as_bytes());
    hash.update([0]);
    if params.is_null() {
        hash.update(b"{}");
    } else {
        // serde_json's map is ordered by key, so this text is canonical.
        hash.update(params.to_string().as_bytes());
    }
    hex::encode(hash.finalize())
}

/// A call the host could not run (shutting down, over the size cap, no free instance): the host's
/// trouble, answered 503, never counted against the plugin.
fn host_unavailable(e: &PluginError) -> GameError {
    tracing::warn!("plugin call not run: {e}");
    GameError::Unavailable("the game server is busy or restarting; try again shortly".into())
}

fn not_found_player(e: StoreError) -> GameError {
    match e {
        StoreError::NotFound => GameError::NotFound("player".into()),
        other => GameError::Store(other),
    }
}

#[cfg(test)]
mod tests {
    use super::request_fingerprint;
    use serde_json::json;

    #[test]
    fn fingerprints_ignore_key_order_and_tell_requests_apart() {
        let fp = |plugin, action, params| request_fingerprint(plugin, action, &params);
        let base = fp("probe", "grant", json!({"n": 2, "into": {"a": 1, "b": [1, 2]}}));
        assert_eq!(
            base,
            fp("probe", "grant", json!({"into": {"b": [1, 2], "a": 1}, "n": 2}))
        );
        assert_ne!(
            base,
            fp("probe", "grant", json!({"n": 3, "into": {"a": 1, "b": [1, 2]}}))
        );
        assert_ne!(
            base,
            fp("probe", "echo", json!({"n": 2, "into": {"a": 1, "b": [1, 2]}}))
        );
        assert_ne!(
            base,
            fp("other", "grant", json!({"n": 2, "into": {"a": 1, "b": [1, 2]}}))
        );
        // The separators keep the names apart: `ab`+`c` is not `a`+`bc`.
        assert_ne!(fp("ab", "c", json!({})), fp("a", "bc", json!({})));
        assert_eq!(fp("p", "a", json!(null)), fp("p", "a", json!({})));
    }
}
