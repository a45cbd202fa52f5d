//! Plugin rollout across the cluster: uploads, rollbacks and unloads of stored plugin artifacts, the
//! announcements that carry them to every host, the start-up load of the active artifacts, and the
//! follower that applies announcements. Knows the runtime, the store and the bus, never HTTP (the
//! admin API in `api::admin` is a thin layer over [`Rollout`]).
//!
//! # Words
//! - **Artifact**: a plugin module stored in the database (`plugin_artifacts`), by name and version.
//!   One version per name is *active* (serving on every host).
//! - **Rollback** ([`Rollout::rollback`]): re-activate the stored artifact that was active before the
//!   current one, on every host. It is the only rollback here.
//! - The registry also remembers, in this process's memory only, the version the serving one
//!   *replaced* (`PluginStatus::replaced_version`, `Registry::restore_replaced`); that is per host and
//!   lost at restart, and no rollout step uses it.
//!
//! # Rollout
//! An upload is validated exactly like a hot reload (`runtime.load`: compile, ABI check, `describe`,
//! manifest checks) with the content tables of `PLUGINS_DIR/NAME/*.toml`; a refused module is
//! recorded in the registry (`last_error`) like a refused file and nothing else changes. An accepted
//! one is stored, activated, published in this host's registry, and announced on the bus's `plugins`
//! channel. Every host (this one included; it finds nothing to do) applies an [`Announcement`] by
//! loading the same bytes from the database and publishing them, so all hosts run the same sha256.
//! Rollback and unload travel the same way. The first upload of a plugin that serves from its file
//! first stores that file's version, so a rollback has a stored target.
//!
//! # Canary and shadow
//! A plugin may have two **companions**, stored versions beside the active one
//! (`cauldron_runtime::Companion`). A **canary** serves a share of the players
//! ([`Rollout::start_canary`]: validated and stored like an upload, not activated). Which players is
//! `cauldron_runtime::canary_bucket`, a hash of the plugin name and the player id, so every host
//! serves each player the same version without asking anyone, and widening the share
//! ([`Rollout::set_canary_share`]) keeps the players who had it. [`Rollout::promote_canary`] makes it
//! the active version (the one it replaces becomes the rollback target). A **shadow**
//! ([`Rollout::attach_shadow`]) serves nobody: a share of the live calls is run on it as well, off the
//! request path, and compared (`crate::game::shadow`). [`Rollout::end_companion`] removes either. Both
//! are stored (`plugin_companions`), announced like the rest, and loaded at start-up after the
//! active artifacts.
//!
//! At start-up the active artifacts are loaded after the plugin files ([`Rollout::load_active`]), so
//! **a stored artifact wins over a file of the same name**: an upload is a deliberate, cluster-wide
//! decision, a file is a host's default. A later change to that file still hot-reloads it on its host
//! (a local override until the next announcement or restart); an unload stops the artifact, and the
//! file, if any, serves again after a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cauldron_runtime::{
    Companion, HostFailure, PluginError, PluginSource, Registry, Runtime, read_content_dir, sha256_hex,
};
use serde::{Deserialize, Serialize};

use crate::bus::{Channel, Subscription};
use crate::cache::Services;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store::{ArtifactInfo, CompanionInfo, Store, StoreError};

/// What one rollout step sends to the other hosts over the `plugins` channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Announcement {
    /// Serve the stored artifact `name` `version` (after an upload or a rollback).
    Activate {
        /// Plugin name.
        name: String,
        /// Version to serve.
        version: String,
        /// Its sha256, checked against the stored bytes.
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
    /// This version of the plugin is stored with other bytes.
    #[error("{0}; bump the plugin's version")]
    VersionExists(String),
    /// No stored version was active before the current one.
    #[error("plugin `{0}` has no stored version to roll back to")]
    NoRollbackTarget(String),
    /// Neither loaded here nor stored as active.
    #[error("no plugin `{0}` is loaded")]
    NotLoaded(String),
    /// The plugin has no such companion to change, promote or end.
    #[error("plugin `{name}` has no {kind}")]
    NoCompanion {
        /// Plugin name.
        name: String,
        /// `canary` or `shadow`.
        kind: &'static str,
    },
    /// An announcement names a companion kind this host does not know.
    #[error("unknown companion kind `{0}`")]
    UnknownCompanion(String),
    /// An announcement names an artifact the database does not hold.
    #[error("{name} {version} is not stored")]
    MissingArtifact {
        /// Plugin name.
        name: String,
        /// Version.
        version: String,
    },
    /// The stored bytes are not the announced ones.
    #[error("stored {name} {version} does not match the announced sha256 {sha256}")]
    ShaMismatch {
        /// Plugin name.
        name: String,
        /// Version.
        version: String,
        /// The announced sha256.
        sha256: String,
    },
    /// The store failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
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
            }),
        }
    }

    /// Validate `wasm` as plugin `name`, store and activate it, serve it here and announce it to every
    /// host. Returns the stored artifact.
    ///
    /// # Errors
    /// [`RolloutError::Refused`] (recorded in the registry), [`RolloutError::VersionExists`], or a
    /// store failure.
    pub async fn upload(&self, name: &str, wasm: Vec<u8>) -> Result<ArtifactInfo, RolloutError> {
        let source = self.source_for(name, wasm.clone()).await?;
        let version = self
            .inner
            .runtime
            .load(source)
            .await
            .map_err(|e| self.refused(name, e))?;
        self.store_baseline(name).await?;
        let store = &self.inner.store;
        let stored = store
            .put_artifact(name, version.version(), &wasm)
            .await
            .map_err(|e| match e {
                StoreError::Invalid(msg) => RolloutError::VersionExists(msg),
                other => other.into(),
            })?;
        store.activate_artifact(name, &stored.version).await?;
        self.inner.registry.publish(version);
        self.announce(&Announcement::activate(&stored)).await;
        Ok(stored)
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
            Announcement::Activate {
                name,
                version,
                sha256,
            } => {
                if registry.get(name).is_some_and(|v| &v.sha256 == sha256) {
                    return Ok(Applied::Unchanged);
                }
                let loaded = self.load_stored(name, version, sha256).await?;
                registry.publish(loaded);
                Ok(Applied::Loaded)
            }
            Announcement::Companion {
                kind,
                name,
                version,
                sha256,
                share_bp,
            } => {
                let kind = companion_kind(kind)?;
                let loaded = match registry.companion(kind, name) {
                    Some((companion, share)) if &companion.sha256 == sha256 => {
                        if share == *share_bp {
                            return Ok(Applied::Unchanged);
                        }
                        companion
                    }
                    _ => self.load_stored(name, version, sha256).await?,
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

    /// Load the stored artifact `name` `version`, checking its bytes against `sha256`.
    async fn load_stored(
        &self,
        name: &str,
        version: &str,
        sha256: &str,
    ) -> Result<Arc<cauldron_runtime::PluginVersion>, RolloutError> {
        let bytes = self
            .inner
            .store
            .artifact_bytes(name, version)
            .await?
            .ok_or_else(|| RolloutError::MissingArtifact {
                name: name.to_owned(),
                version: version.to_owned(),
            })?;
        if sha256_hex(&bytes) != sha256 {
            return Err(RolloutError::ShaMismatch {
                name: name.to_owned(),
                version: version.to_owned(),
                sha256: sha256.to_owned(),
            });
        }
        let source = self.source_for(name, bytes).await?;
        self.inner
            .runtime
            .load(source)
            .await
            .map_err(|e| self.refused(name, e))
    }

    /// Validate `wasm` as a new version of `name`, store it (not active) and serve it as the
    /// plugin's canary to `share_bp` basis points of the players, here and on every host. The
    /// active version keeps serving everyone else.
    ///
    /// # Errors
    /// [`RolloutError::NotLoaded`] when the plugin serves no version to split with,
    /// [`RolloutError::Refused`], [`RolloutError::VersionExists`], or a store failure.
    pub async fn start_canary(
        &self,
        name: &str,
        wasm: Vec<u8>,
        share_bp: u32,
    ) -> Result<CompanionInfo, RolloutError> {
        if self.inner.registry.get(name).is_none() {
            return Err(RolloutError::NotLoaded(name.to_owned()));
        }
        let source = self.source_for(name, wasm.clone()).await?;
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
            .put_artifact(name, version.version(), &wasm)
            .await
            .map_err(|e| match e {
                StoreError::Invalid(msg) => RolloutError::VersionExists(msg),
                other => other.into(),
            })?;
        self.set_companion(Companion::Canary, name, &stored.version, share_bp)
            .await
    }

    /// Attach the stored version `version` of `name` as its shadow: `share_bp` basis points of the
    /// live calls of `name` are run on it too, on every host, and compared (nothing it does is
    /// applied).
    ///
    /// # Errors
    /// [`RolloutError::MissingArtifact`] when that version is not stored, [`RolloutError::NotLoaded`]
    /// when the plugin serves no version, or a store failure.
    pub async fn attach_shadow(
        &self,
        name: &str,
        version: &str,
        share_bp: u32,
    ) -> Result<CompanionInfo, RolloutError> {
        if self.inner.registry.get(name).is_none() {
            return Err(RolloutError::NotLoaded(name.to_owned()));
        }
        self.set_companion(Companion::Shadow, name, version, share_bp)
            .await
            .map_err(|e| match e {
                RolloutError::Store(StoreError::NotFound) => RolloutError::MissingArtifact {
                    name: name.to_owned(),
                    version: version.to_owned(),
                },
                other => other,
            })
    }

    /// Change the share of the canary of `name` (widen or narrow it), here and on every host. The
    /// players who had it keep it when it widens.
    ///
    /// # Errors
    /// [`RolloutError::NoCompanion`], or a store failure.
    pub async fn set_canary_share(&self, name: &str, share_bp: u32) -> Result<CompanionInfo, RolloutError> {
        let current = self.stored_companion(Companion::Canary, name).await?;
        self.set_companion(Companion::Canary, name, &current.version, share_bp)
            .await
    }

    /// Make the canary of `name` its active version for every player, here and on every host; the
    /// version it replaces becomes the rollback target.
    ///
    /// # Errors
    /// [`RolloutError::NoCompanion`], the artifact no longer loads, or a store failure.
    pub async fn promote_canary(&self, name: &str) -> Result<ArtifactInfo, RolloutError> {
        let canary = self.stored_companion(Companion::Canary, name).await?;
        let store = &self.inner.store;
        let info = store.activate_artifact(name, &canary.version).await?;
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
                    kind: kind.label(),
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

    /// Store `version` as the `kind` companion of `name` with `share_bp`, serve it here and
    /// announce it.
    async fn set_companion(
        &self,
        kind: Companion,
        name: &str,
        version: &str,
        share_bp: u32,
    ) -> Result<CompanionInfo, RolloutError> {
        let info = self
            .inner
            .store
            .set_companion(kind.label(), name, version, share_bp)
            .await?;
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
                kind: kind.label(),
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

    /// Before the first upload of `name`, store the version serving now from its file (when the file
    /// still holds exactly those bytes) and activate it, so the upload's rollback target is in the
    /// database and a rollback reaches every host.
    async fn store_baseline(&self, name: &str) -> Result<(), RolloutError> {
        let Some(current) = self.inner.registry.get(name) else {
            return Ok(());
        };
        let store = &self.inner.store;
        if store.active_artifacts().await?.iter().any(|a| a.name == name) {
            return Ok(());
        }
        let path = self.inner.plugins_dir.join(format!("{name}.wasm"));
        let Ok(bytes) = tokio::fs::read(&path).await else {
            return Ok(());
        };
        if sha256_hex(&bytes) != current.sha256 {
            return Ok(());
        }
        match store.put_artifact(name, current.version(), &bytes).await {
            Ok(_) => {}
            // Stored earlier with other bytes under the same version: that one stays the record.
            Err(StoreError::Invalid(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        store.activate_artifact(name, current.version()).await?;
        tracing::info!(plugin = %name, version = %current.version(), "stored the file version as the rollback target");
        Ok(())
    }

    /// `wasm` with the content tables of `plugins_dir/name/*.toml`, as a hot reload would read them.
    async fn source_for(&self, name: &str, wasm: Vec<u8>) -> Result<PluginSource, RolloutError> {
        let content = read_content(&self.inner.plugins_dir, name)
            .await
            .map_err(|e| self.refused(name, e))?;
        Ok(PluginSource {
            wasm,
            content,
            expected_name: Some(name.to_owned()),
        })
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

/// The content tables of `plugins_dir/name/`.
async fn read_content(
    plugins_dir: &Path,
    name: &str,
) -> Result<std::collections::BTreeMap<String, cauldron_sdk::Doc>, PluginError> {
    let dir = plugins_dir.join(name);
    tokio::task::spawn_blocking(move || read_content_dir(&dir))
        .await
        .map_err(|e| PluginError::host(HostFailure::Internal, format!("reading content: {e}")))?
}
