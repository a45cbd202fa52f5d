//! Plugin rollout across the cluster: uploads, rollbacks and unloads of stored plugin versions, the
//! announcements that carry them to every host, the start-up load of the active versions, and the
//! follower that applies announcements. Knows the runtime, the store and the bus, never HTTP (the
//! admin API in `api::admin` is a thin layer over [`Rollout`]).
//!
//! # Words
//! - **Bundle** ([`Bundle`]): a plugin version as a unit, its wasm module and its content tables,
//!   identified by one digest over both ([`Bundle::digest`]). A content-only change is a new
//!   version, whatever the manifest's semver says.
//! - **Artifact**: a bundle stored in the database (`plugin_artifacts`), by name and digest. One
//!   version per name is *active* (serving on every host). The last `keep_versions` (setting
//!   `PLUGIN_KEEP_VERSIONS`) are kept; older ones are deleted after each upload, never the active one
//!   nor the rollback target.
//! - **Rollback** ([`Rollout::rollback`]): re-activate the stored version that was active before the
//!   current one, module and content tables together, on every host. It is the only rollback here.
//! - The registry also remembers, in this process's memory only, the version the serving one
//!   *replaced* (`PluginStatus::replaced_version`, `Registry::restore_replaced`); that is per host and
//!   lost at restart, and no rollout step uses it.
//!
//! # Rollout
//! An upload is a bundle ([`Rollout::upload_bundle`]), or a bare module ([`Rollout::upload`]) that
//! is bundled with the content tables of `PLUGINS_DIR/NAME/*.toml` on this host. It is validated
//! exactly like a hot reload (`runtime.load`: compile, ABI check, `describe`, manifest checks); a
//! refused one is recorded in the registry (`last_error`) like a refused file and nothing else
//! changes. An accepted one is stored, activated, published in this host's registry, and announced on
//! the bus's `plugins` channel. Every host (this one included; it finds nothing to do) applies an
//! [`Announcement`] by loading the stored bundle with the announced digest from the database and
//! publishing it, so all hosts run the same module with the same tables. Rollback and unload travel
//! the same way. The first upload of a plugin that serves from its files first stores the bundle
//! serving now, so a rollback has a stored target.
//!
//! Modules stored before bundles existed (`ArtifactInfo::bundle` false) still load, with the
//! host's content tables, as they always did.
//!
//! # Canary and shadow
//! A plugin may have two **companions**, stored versions beside the active one
//! (`cauldron_runtime::Companion`), set with [`Rollout::set_companion`] (typically a version
//! uploaded with `activate=false`). A **canary** serves a share of the players, chosen by
//! `cauldron_runtime::canary_bucket` (a hash of the plugin name and the player id), so every host
//! serves each player the same version without asking anyone, and widening the share keeps the
//! players who had it; [`Rollout::promote_canary`] makes it the active version (the one it
//! replaces becomes the rollback target). A **shadow** serves nobody: a share of the live calls is
//! run on it as well, off the request path, and compared (`crate::game::shadow`).
//! [`Rollout::end_companion`] removes either. Both are stored (`plugin_companions`), announced like
//! the rest, and loaded at start-up after the active artifacts.
//!
//! At start-up the active artifacts are loaded after the plugin files ([`Rollout::load_active`]), so
//! **a stored artifact wins over a file of the same name**: an upload is a deliberate, cluster-wide
//! decision, a file is a host's default. A later change to that file still hot-reloads it on its host
//! (a local override until the next announcement or restart); an unload stops the artifact, and the
//! file, if any, serves again after a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cauldron_runtime::{
    Bundle, Companion, HostFailure, PluginError, PluginSource, PluginVersion, Registry, Runtime,
};
use serde::{Deserialize, Serialize};

use crate::bus::{Channel, Subscription};
use crate::cache::Services;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store::{ArtifactInfo, CompanionInfo, Store, StoreError, StoredArtifact};

/// How many stored versions of a plugin are kept unless configured (`PLUGIN_KEEP_VERSIONS`).
pub const DEFAULT_KEEP_VERSIONS: usize = 10;

/// What one rollout step sends to the other hosts over the `plugins` channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Announcement {
    /// Serve the stored version of `name` with digest `sha256` (after an upload or a rollback).
    Activate {
        /// Plugin name.
        name: String,
        /// Its semver, for logs.
        version: String,
        /// The digest of the version to serve, which the stored bytes are looked up by.
        sha256: String,
    },
    /// Stop serving `name`.
    Unload {
        /// Plugin name.
        name: String,
    },
    /// Make the stored artifact `name` `version` a companion of the active version (a canary
    /// started or widened, a shadow attached or its share changed).
    Companion {
        /// `canary` or `shadow`.
        kind: String,
        /// Plugin name.
        name: String,
        /// The companion's version.
        version: String,
        /// Its sha256, checked against the stored bytes.
        sha256: String,
        /// Its share, in basis points (0 to 10 000).
        share_bp: u32,
    },
    /// Remove the `kind` companion of `name` (a canary rolled back: every player is served the
    /// active version; a shadow detached).
    EndCompanion {
        /// `canary` or `shadow`.
        kind: String,
        /// Plugin name.
        name: String,
    },
}

impl Announcement {
    fn activate(artifact: &ArtifactInfo) -> Self {
        Self::Activate {
            name: artifact.name.clone(),
            version: artifact.version.clone(),
            sha256: artifact.sha256.clone(),
        }
    }

    fn companion(info: &CompanionInfo) -> Self {
        Self::Companion {
            kind: info.kind.clone(),
            name: info.name.clone(),
            version: info.version.clone(),
            sha256: info.sha256.clone(),
            share_bp: u32::try_from(info.share_bp).unwrap_or(0),
        }
    }

    /// `activate`, `unload`, `companion` or `end_companion`, for metrics.
    pub fn op(&self) -> &'static str {
        match self {
            Self::Activate { .. } => "activate",
            Self::Unload { .. } => "unload",
            Self::Companion { .. } => "companion",
            Self::EndCompanion { .. } => "end_companion",
        }
    }
}

/// What applying an announcement changed on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The registry already was as announced.
    Unchanged,
    /// The announced version was loaded and now serves.
    Loaded,
    /// The plugin was unloaded.
    Unloaded,
    /// A companion (canary or shadow) was set, changed or removed.
    Companion,
}

impl Applied {
    /// `unchanged`, `loaded` or `unloaded`, for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unchanged => "unchanged",
            Self::Loaded => "loaded",
            Self::Unloaded => "unloaded",
            Self::Companion => "companion",
        }
    }
}

/// Why a rollout step did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The module did not load (compile, ABI, manifest, name or content); recorded in the registry.
    #[error("plugin `{name}` was refused: {source}")]
    Refused {
        /// Plugin name.
        name: String,
        /// Why.
        source: PluginError,
    },
    /// No stored version was active before the current one.
    #[error("plugin `{0}` has no stored version to roll back to")]
    NoRollbackTarget(String),
    /// Neither loaded here nor stored as active.
    #[error("no plugin `{0}` is loaded")]
    NotLoaded(String),
    /// The plugin has no such companion to change, promote or end.
    #[error("plugin `{name}` has no {}", .kind.label())]
    NoCompanion {
        /// Plugin name.
        name: String,
        /// Which companion.
        kind: Companion,
    },
    /// An announcement names a companion kind this host does not know.
    #[error("unknown companion kind `{0}`")]
    UnknownCompanion(String),
    /// An announcement or a request names a version the database does not hold.
    #[error("no version {sha256} of `{name}` is stored")]
    MissingArtifact {
        /// Plugin name.
        name: String,
        /// The digest asked for.
        sha256: String,
    },
    /// The stored bytes are not the announced ones.
    #[error("stored {name} {sha256} does not decode to that version: {detail}")]
    ShaMismatch {
        /// Plugin name.
        name: String,
        /// The announced digest.
        sha256: String,
        /// What was found instead.
        detail: String,
    },
    /// The store failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

impl RolloutError {
    /// Version `sha256` of `name` is not stored.
    fn missing(name: &str, sha256: &str) -> Self {
        Self::MissingArtifact {
            name: name.to_owned(),
            sha256: sha256.to_owned(),
        }
    }
}

/// The rollout service: cheap to clone.
#[derive(Clone)]
pub struct Rollout {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Runtime,
    registry: Arc<Registry>,
    store: Arc<dyn Store>,
    services: Services,
    metrics: Arc<Metrics>,
    plugins_dir: PathBuf,
    keep_versions: usize,
}

impl std::fmt::Debug for Rollout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rollout")
            .field("plugins_dir", &self.inner.plugins_dir)
            .finish_non_exhaustive()
    }
}

impl Rollout {
    /// Rollouts into `registry` through `runtime`, stored in `store`, announced on `services`' bus;
    /// content tables are read from `plugins_dir/NAME/`.
    pub fn new(
        runtime: Runtime,
        registry: Arc<Registry>,
        store: Arc<dyn Store>,
        services: Services,
        metrics: Arc<Metrics>,
        plugins_dir: PathBuf,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                runtime,
                registry,
                store,
                services,
                metrics,
                plugins_dir,
                keep_versions: DEFAULT_KEEP_VERSIONS,
            }),
        }
    }

    /// Keep the newest `keep` stored versions of each plugin (at least 2: the active one and its
    /// rollback target are always kept).
    #[must_use]
    pub fn with_keep_versions(self, keep: usize) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            runtime: shared.runtime.clone(),
            registry: Arc::clone(&shared.registry),
            store: Arc::clone(&shared.store),
            services: shared.services.clone(),
            metrics: Arc::clone(&shared.metrics),
            plugins_dir: shared.plugins_dir.clone(),
            keep_versions: shared.keep_versions,
        });
        Self {
            inner: Arc::new(Inner {
                keep_versions: keep.max(2),
                ..inner
            }),
        }
    }

    /// The runtime versions are loaded and called on.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The store versions are kept in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The registry of this host's serving versions.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    /// The folder plugin files and content tables are read from.
    pub fn plugins_dir(&self) -> &Path {
        &self.inner.plugins_dir
    }

    /// Bundle `wasm` with this host's content tables for `name` (`PLUGINS_DIR/NAME/*.toml`) and
    /// upload that bundle ([`Rollout::upload_bundle`]).
    ///
    /// # Errors
    /// As [`Rollout::upload_bundle`]; unreadable content tables are a refusal.
    pub async fn upload(&self, name: &str, wasm: Vec<u8>) -> Result<ArtifactInfo, RolloutError> {
        let bundle = self.bundle_with_local_content(name, wasm).await?;
        self.upload_bundle(name, bundle).await
    }

    /// Validate `bundle` as plugin `name`, store and activate it, serve it here and announce it to
    /// every host; then delete the stored versions past the newest `keep_versions`. Uploading the
    /// version already stored activates it again. Returns the stored version.
    ///
    /// # Errors
    /// [`RolloutError::Refused`] (a table that does not parse, or the module does not load; recorded
    /// in the registry), or a store failure.
    pub async fn upload_bundle(&self, name: &str, bundle: Bundle) -> Result<ArtifactInfo, RolloutError> {
        let (version, stored) = self.validate_and_store(name, bundle).await?;
        let stored = self.inner.store.activate_artifact(name, &stored.sha256).await?;
        self.inner.registry.publish(version);
        self.announce(&Announcement::activate(&stored)).await;
        self.prune(name).await;
        Ok(stored)
    }

    /// Validate `bundle` as plugin `name` and store it without serving it anywhere (to replay it
    /// first, or activate it later by digest); then delete the stored versions past the newest
    /// `keep_versions`. Returns the stored version.
    ///
    /// # Errors
    /// As [`Rollout::upload_bundle`].
    pub async fn store_bundle(&self, name: &str, bundle: Bundle) -> Result<ArtifactInfo, RolloutError> {
        let (_, stored) = self.validate_and_store(name, bundle).await?;
        self.prune(name).await;
        Ok(stored)
    }

    /// Load `bundle` as `name` (refusals recorded in the registry) and store it, after the
    /// baseline; nothing is activated.
    async fn validate_and_store(
        &self,
        name: &str,
        bundle: Bundle,
    ) -> Result<(Arc<PluginVersion>, ArtifactInfo), RolloutError> {
        let encoded = bundle.encode();
        let source = PluginSource::from_bundle(bundle, Some(name)).map_err(|e| self.refused(name, e))?;
        let version = self
            .inner
            .runtime
            .load(source)
            .await
            .map_err(|e| self.refused(name, e))?;
        self.store_baseline(name).await?;
        let stored = self
            .inner
            .store
            .put_artifact(name, version.version(), &version.wasm_sha256, &encoded)
            .await?;
        Ok((version, stored))
    }

    /// Delete the stored versions of `name` past the newest `keep_versions` (logged, never fatal).
    async fn prune(&self, name: &str) {
        let keep = self.inner.keep_versions;
        match self.inner.store.prune_artifacts(name, keep).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(plugin = %name, deleted = n, keep, "old plugin versions deleted"),
            Err(e) => tracing::warn!(plugin = %name, error = %e, "old plugin versions not deleted"),
        }
    }

    /// Every stored version of `name`, newest first.
    ///
    /// # Errors
    /// A store failure.
    pub async fn versions(&self, name: &str) -> Result<Vec<ArtifactInfo>, RolloutError> {
        Ok(self.inner.store.artifacts(name).await?)
    }

    /// The stored version `sha256` of `name` as a bundle, without loading it. A module stored
    /// before bundles comes with this host's content tables.
    ///
    /// # Errors
    /// [`RolloutError::MissingArtifact`], bytes that do not decode, or a store failure.
    pub async fn stored_bundle(&self, name: &str, sha256: &str) -> Result<Bundle, RolloutError> {
        let stored = self
            .inner
            .store
            .artifact(name, sha256)
            .await?
            .ok_or_else(|| RolloutError::missing(name, sha256))?;
        self.bundle_of(stored).await
    }

    /// Load the stored version `sha256` of `name` without publishing it (to compare or replay it).
    ///
    /// # Errors
    /// As [`Rollout::stored_bundle`], or the version no longer loads ([`RolloutError::Refused`], not
    /// recorded in the registry: nothing was asked to serve it).
    pub async fn load_stored(&self, name: &str, sha256: &str) -> Result<Arc<PluginVersion>, RolloutError> {
        let bundle = self.stored_bundle(name, sha256).await?;
        let refused = |e| RolloutError::Refused {
            name: name.to_owned(),
            source: e,
        };
        let source = PluginSource::from_bundle(bundle, Some(name)).map_err(refused)?;
        self.inner.runtime.load(source).await.map_err(refused)
    }

    /// Re-activate the stored artifact of `name` that was active before the current one, serve it
    /// here and announce it to every host. Returns the artifact now active.
    ///
    /// # Errors
    /// [`RolloutError::NoRollbackTarget`], the artifact no longer loads, or a store failure.
    pub async fn rollback(&self, name: &str) -> Result<ArtifactInfo, RolloutError> {
        let info = self
            .inner
            .store
            .rollback_artifact(name)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => RolloutError::NoRollbackTarget(name.to_owned()),
                other => other.into(),
            })?;
        let announcement = Announcement::activate(&info);
        self.apply(&announcement).await?;
        self.announce(&announcement).await;
        Ok(info)
    }

    /// Serve the stored version `sha256` of `name` (any version still kept) here and on every host;
    /// the version it replaces becomes the rollback target. Returns the version now active.
    ///
    /// # Errors
    /// [`RolloutError::MissingArtifact`], the version no longer loads, or a store failure.
    pub async fn activate(&self, name: &str, sha256: &str) -> Result<ArtifactInfo, RolloutError> {
        // Load first: a version that no longer loads is refused before anything changes.
        let loaded = self.load_stored(name, sha256).await?;
        let info = self
            .inner
            .store
            .activate_artifact(name, sha256)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => RolloutError::missing(name, sha256),
                other => other.into(),
            })?;
        self.inner.registry.publish(loaded);
        self.announce(&Announcement::activate(&info)).await;
        Ok(info)
    }

    /// Stop serving `name` here and on every host; its stored versions are kept for a rollback.
    ///
    /// # Errors
    /// [`RolloutError::NotLoaded`] when it neither serves here nor is stored as active; a store failure.
    pub async fn unload(&self, name: &str) -> Result<(), RolloutError> {
        let stored = match self.inner.store.deactivate_artifact(name).await {
            Ok(()) => true,
            Err(StoreError::NotFound) => false,
            Err(e) => return Err(e.into()),
        };
        let loaded = self.inner.registry.unload(name);
        if !stored && !loaded {
            return Err(RolloutError::NotLoaded(name.to_owned()));
        }
        self.announce(&Announcement::Unload {
            name: name.to_owned(),
        })
        .await;
        Ok(())
    }

    /// Bring this host's registry in line with `announcement`. Does nothing when it already is.
    ///
    /// # Errors
    /// The artifact is missing, its bytes do not match the announced sha256, or it does not load.
    pub async fn apply(&self, announcement: &Announcement) -> Result<Applied, RolloutError> {
        let registry = &self.inner.registry;
        match announcement {
            Announcement::Unload { name } => Ok(if registry.unload(name) {
                Applied::Unloaded
            } else {
                Applied::Unchanged
            }),
            Announcement::Activate { name, sha256, .. } => {
                if registry.get(name).is_some_and(|v| &v.sha256 == sha256) {
                    return Ok(Applied::Unchanged);
                }
                let bundle = self.stored_bundle(name, sha256).await?;
                let source =
                    PluginSource::from_bundle(bundle, Some(name)).map_err(|e| self.refused(name, e))?;
                let loaded = self
                    .inner
                    .runtime
                    .load(source)
                    .await
                    .map_err(|e| self.refused(name, e))?;
                registry.publish(loaded);
                Ok(Applied::Loaded)
            }
            Announcement::Companion {
                kind,
                name,
                sha256,
                share_bp,
                ..
            } => {
                let kind = companion_kind(kind)?;
                let loaded = match registry.companion(kind, name) {
                    Some((companion, share)) if &companion.sha256 == sha256 => {
                        if share == *share_bp {
                            return Ok(Applied::Unchanged);
                        }
                        companion
                    }
                    _ => self.load_stored(name, sha256).await?,
                };
                if !registry.set_companion(kind, loaded, *share_bp) {
                    return Err(RolloutError::NotLoaded(name.clone()));
                }
                Ok(Applied::Companion)
            }
            Announcement::EndCompanion { kind, name } => {
                let kind = companion_kind(kind)?;
                Ok(if registry.clear_companion(kind, name).is_some() {
                    Applied::Companion
                } else {
                    Applied::Unchanged
                })
            }
        }
    }

    /// Make the canary of `name` its active version for every player, here and on every host; the
    /// version it replaces becomes the rollback target.
    ///
    /// # Errors
    /// [`RolloutError::NoCompanion`], the artifact no longer loads, or a store failure.
    pub async fn promote_canary(&self, name: &str) -> Result<ArtifactInfo, RolloutError> {
        let canary = self.stored_companion(Companion::Canary, name).await?;
        let store = &self.inner.store;
        let info = store.activate_artifact(name, &canary.sha256).await?;
        match store.clear_companion(Companion::Canary.label(), name).await {
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        // Publishing the canary's version as the active one ends the canary in every registry.
        let announcement = Announcement::activate(&info);
        self.apply(&announcement).await?;
        self.announce(&announcement).await;
        Ok(info)
    }

    /// Remove the `kind` companion of `name`, here and on every host: a canary rolled back (every
    /// player is served the active version again), a shadow detached. Its version stays stored.
    ///
    /// # Errors
    /// [`RolloutError::NoCompanion`], or a store failure.
    pub async fn end_companion(&self, kind: Companion, name: &str) -> Result<(), RolloutError> {
        match self.inner.store.clear_companion(kind.label(), name).await {
            Ok(()) => {}
            Err(StoreError::NotFound) if self.inner.registry.companion(kind, name).is_some() => {}
            Err(StoreError::NotFound) => {
                return Err(RolloutError::NoCompanion {
                    name: name.to_owned(),
                    kind,
                });
            }
            Err(e) => return Err(e.into()),
        }
        let announcement = Announcement::EndCompanion {
            kind: kind.label().to_owned(),
            name: name.to_owned(),
        };
        self.apply(&announcement).await?;
        self.announce(&announcement).await;
        Ok(())
    }

    /// Make the stored version `sha256` of `name` its `kind` companion with `share_bp` basis points
    /// (a canary of that share of the players, or a shadow of that share of the live calls), here
    /// and on every host. Setting the companion it already has changes only the share: a canary
    /// widened keeps the players who had it.
    ///
    /// # Errors
    /// [`RolloutError::NotLoaded`] when the plugin serves no version, [`RolloutError::MissingArtifact`]
    /// when that version is not stored, the version does not load, or a store failure.
    pub async fn set_companion(
        &self,
        kind: Companion,
        name: &str,
        sha256: &str,
        share_bp: u32,
    ) -> Result<CompanionInfo, RolloutError> {
        if self.inner.registry.get(name).is_none() {
            return Err(RolloutError::NotLoaded(name.to_owned()));
        }
        let info = self
            .inner
            .store
            .set_companion(kind.label(), name, sha256, share_bp)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => RolloutError::missing(name, sha256),
                other => other.into(),
            })?;
        let announcement = Announcement::companion(&info);
        self.apply(&announcement).await?;
        self.announce(&announcement).await;
        Ok(info)
    }

    /// The stored `kind` companion of `name`.
    async fn stored_companion(&self, kind: Companion, name: &str) -> Result<CompanionInfo, RolloutError> {
        self.inner
            .store
            .companions()
            .await?
            .into_iter()
            .find(|c| c.name == name && c.kind == kind.label())
            .ok_or_else(|| RolloutError::NoCompanion {
                name: name.to_owned(),
                kind,
            })
    }

    /// Load every active stored artifact into the registry (at start-up, after the plugin files: the
    /// database wins). Returns how many now serve; failures are logged and recorded in the registry.
    pub async fn load_active(&self) -> usize {
        let active = match self.inner.store.active_artifacts().await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the stored plugin artifacts; serving the plugin files only");
                return 0;
            }
        };
        let mut loaded = 0;
        for artifact in active {
            match self.apply(&Announcement::activate(&artifact)).await {
                Ok(_) => loaded += 1,
                Err(e) => {
                    tracing::error!(plugin = %artifact.name, version = %artifact.version, error = %e, "stored plugin artifact did not load");
                }
            }
        }
        match self.inner.store.companions().await {
            Ok(companions) => {
                for c in companions {
                    if let Err(e) = self.apply(&Announcement::companion(&c)).await {
                        tracing::error!(plugin = %c.name, kind = %c.kind, version = %c.version, error = %e, "stored plugin companion did not load");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the stored plugin companions"),
        }
        loaded
    }

    /// Subscribe to the `plugins` channel; the returned task applies each announcement in order until
    /// `shutdown`. Subscribing before returning means nothing announced after this call is missed.
    pub async fn follow(&self, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
        let sub = self.inner.services.bus.subscribe(&Channel::Plugins).await;
        tokio::spawn(self.clone().follow_loop(sub, shutdown))
    }

    async fn follow_loop(self, mut sub: Subscription, shutdown: Shutdown) {
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            let payload = tokio::select! {
                () = &mut stop => return,
                p = sub.recv() => match p {
                    Some(p) => p,
                    None => return,
                },
            };
            let announcement: Announcement = match serde_json::from_slice(&payload) {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring a malformed plugin announcement");
                    continue;
                }
            };
            let op = announcement.op();
            let result = match self.apply(&announcement).await {
                Ok(applied) => {
                    if applied != Applied::Unchanged {
                        tracing::info!(
                            ?announcement,
                            result = applied.label(),
                            "plugin announcement applied"
                        );
                    }
                    applied.label()
                }
                Err(e) => {
                    tracing::error!(?announcement, error = %e, "plugin announcement could not be applied");
                    "failed"
                }
            };
            self.inner.metrics.inc(
                "cauldron_plugin_rollouts_total",
                &[("op", op), ("result", result)],
            );
        }
    }

    /// Before the first upload of `name`, store the bundle serving now from its files and activate
    /// it, so the upload's rollback target is in the database and a rollback reaches every host.
    async fn store_baseline(&self, name: &str) -> Result<(), RolloutError> {
        let Some(current) = self.inner.registry.get(name) else {
            return Ok(());
        };
        let Some(bundle) = current.bundle.as_ref() else {
            return Ok(());
        };
        let store = &self.inner.store;
        if store.active_artifacts().await?.iter().any(|a| a.name == name) {
            return Ok(());
        }
        let stored = store
            .put_artifact(name, current.version(), &current.wasm_sha256, &bundle.encode())
            .await?;
        store.activate_artifact(name, &stored.sha256).await?;
        tracing::info!(plugin = %name, version = %current.version(), sha256 = %stored.sha256, "stored the serving files as the rollback target");
        Ok(())
    }

    /// A stored version as a bundle: decoded, or (a module stored before bundles) with this host's
    /// content tables. A decoded bundle must have the digest it is stored under.
    async fn bundle_of(&self, stored: StoredArtifact) -> Result<Bundle, RolloutError> {
        let StoredArtifact { info, bytes } = stored;
        if !info.bundle {
            return self.bundle_with_local_content(&info.name, bytes).await;
        }
        let bundle = Bundle::decode(&bytes).map_err(|e| RolloutError::ShaMismatch {
            name: info.name.clone(),
            sha256: info.sha256.clone(),
            detail: e.to_string(),
        })?;
        let digest = bundle.digest();
        if digest != info.sha256 {
            return Err(RolloutError::ShaMismatch {
                name: info.name,
                sha256: info.sha256,
                detail: format!("its digest is {digest}"),
            });
        }
        Ok(bundle)
    }

    /// `wasm` with the content tables of `plugins_dir/name/`, as a hot reload would read them
    /// (unreadable tables are a refusal, recorded in the registry).
    ///
    /// # Errors
    /// [`RolloutError::Refused`].
    pub async fn bundle_with_local_content(&self, name: &str, wasm: Vec<u8>) -> Result<Bundle, RolloutError> {
        let dir = self.inner.plugins_dir.join(name);
        tokio::task::spawn_blocking(move || Bundle::with_content_dir(wasm, &dir))
            .await
            .map_err(|e| PluginError::host(HostFailure::Internal, format!("reading content: {e}")))
            .and_then(|r| r)
            .map_err(|e| self.refused(name, e))
    }

    /// Record a refused load like the watcher does.
    fn refused(&self, name: &str, err: PluginError) -> RolloutError {
        self.inner.registry.refuse(name, &err);
        RolloutError::Refused {
            name: name.to_owned(),
            source: err,
        }
    }

    /// Tell every host (this one too; it finds nothing to do).
    async fn announce(&self, announcement: &Announcement) {
        let bytes = match serde_json::to_vec(announcement) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a plugin announcement");
                return;
            }
        };
        let services = &self.inner.services;
        let published = services.bus.publish(&Channel::Plugins, bytes.into()).await;
        if services.uses_redis() && !published.remote {
            tracing::warn!(
                ?announcement,
                "plugin announcement not sent: Redis is down; other hosts pick the change up at restart"
            );
        }
    }
}

/// The companion labelled `label`, or an error naming it.
fn companion_kind(label: &str) -> Result<Companion, RolloutError> {
    Companion::from_label(label).ok_or_else(|| RolloutError::UnknownCompanion(label.to_owned()))
}
