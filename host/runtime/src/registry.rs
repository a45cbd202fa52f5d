//! Plugin name → current version (and, in memory only, the version it replaced), with a status per
//! plugin and a broadcast of changes for long-lived consumers such as WebSocket sessions.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::broadcast;

use crate::PluginError;
use crate::module::PluginVersion;

/// How a plugin stands in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginStatus {
    /// Plugin name.
    pub name: String,
    /// Version serving now, if any.
    pub version: Option<String>,
    /// Digest of the serving version (its bundle: module and content tables).
    pub sha256: Option<String>,
    /// sha256 of the serving module alone.
    pub wasm_sha256: Option<String>,
    /// When the serving version was loaded, ms since the epoch.
    pub loaded_at_ms: Option<i64>,
    /// The most recent refused load, if it came after the serving version.
    pub last_error: Option<String>,
    /// The version the serving one replaced in this registry (in memory, since start), which
    /// [`Registry::restore_replaced`] would serve again.
    pub replaced_version: Option<String>,
    /// Refused loads since start.
    pub refused: u64,
}

/// A change to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryEvent {
    /// A version was published (loaded, reloaded, restored or activated by a rollout).
    Published {
        /// Plugin name.
        name: String,
        /// Version now serving.
        version: String,
        /// Its digest ([`PluginVersion::sha256`]).
        sha256: String,
    },
    /// A load was refused; the old version (if any) keeps serving.
    Refused {
        /// Plugin name.
        name: String,
        /// Why.
        error: String,
    },
    /// The plugin was unloaded.
    Unloaded {
        /// Plugin name.
        name: String,
    },
}

#[derive(Default)]
struct Entry {
    current: Option<Arc<PluginVersion>>,
    replaced: Option<Arc<PluginVersion>>,
    last_error: Option<String>,
    refused: u64,
}

/// The registry. Reads take a short read lock and clone an `Arc`; a call in flight keeps its version
/// alive whatever happens to the registry meanwhile.
pub struct Registry {
    entries: RwLock<BTreeMap<String, Entry>>,
    events: broadcast::Sender<RegistryEvent>,
    /// Bumped, under the write lock, whenever the set of serving versions changes.
    generation: AtomicU64,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            entries: RwLock::new(BTreeMap::new()),
            events: broadcast::channel(256).0,
            generation: AtomicU64::new(0),
        }
    }

    /// A number that changes whenever a plugin is published (loaded, reloaded, restored) or
    /// unloaded, and only then: what is computed from every serving plugin (such as the modifiers
    /// hooks' answers) stays valid while it is unchanged. See [`Registry::current_with_generation`]
    /// for the versions and their generation read together.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The version serving `name` now.
    pub fn get(&self, name: &str) -> Option<Arc<PluginVersion>> {
        self.read().get(name)?.current.clone()
    }

    /// Every serving version, by name.
    pub fn current(&self) -> Vec<Arc<PluginVersion>> {
        self.read().values().filter_map(|e| e.current.clone()).collect()
    }

    /// Every serving version with the [`Registry::generation`] they belong to, read together.
    pub fn current_with_generation(&self) -> (u64, Vec<Arc<PluginVersion>>) {
        let entries = self.read();
        let generation = self.generation.load(Ordering::Acquire);
        (
            generation,
            entries.values().filter_map(|e| e.current.clone()).collect(),
        )
    }

    /// Subscribe to changes.
    pub fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.events.subscribe()
    }

    /// Make `version` the serving one; the one it replaces is kept as the replaced version. Publishing the
    /// bytes already serving changes nothing.
    pub fn publish(&self, version: Arc<PluginVersion>) {
        let name = version.name().to_owned();
        {
            let mut entries = self.write();
            let entry = entries.entry(name.clone()).or_default();
            if entry.current.as_ref().is_some_and(|c| c.sha256 == version.sha256) {
                entry.last_error = None;
                return;
            }
            entry.replaced = entry.current.replace(version.clone());
            entry.last_error = None;
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        tracing::info!(plugin = %name, version = %version.version(), sha256 = %version.sha256, "plugin published");
        let _ = self.events.send(RegistryEvent::Published {
            name,
            version: version.version().to_owned(),
            sha256: version.sha256.clone(),
        });
    }

    /// Record a refused load of `name`; whatever serves keeps serving.
    pub fn refuse(&self, name: &str, error: &PluginError) {
        let text = error.to_string();
        {
            let mut entries = self.write();
            let entry = entries.entry(name.to_owned()).or_default();
            entry.last_error = Some(text.clone());
            entry.refused += 1;
        }
        tracing::warn!(plugin = %name, error = %text, "plugin load refused; the previous version keeps serving");
        let _ = self.events.send(RegistryEvent::Refused {
            name: name.to_owned(),
            error: text,
        });
    }

    /// Stop serving `name`. Calls already holding its version finish on it.
    pub fn unload(&self, name: &str) -> bool {
        let removed = {
            let mut entries = self.write();
            let removed = entries.remove(name).is_some_and(|e| e.current.is_some());
            if removed {
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            removed
        };
        if removed {
            tracing::info!(plugin = %name, "plugin unloaded");
            let _ = self.events.send(RegistryEvent::Unloaded {
                name: name.to_owned(),
            });
        }
        removed
    }

    /// Serve again the version of `name` that the serving one replaced, and keep the serving one as
    /// the replaced version (a swap).
    pub fn restore_replaced(&self, name: &str) -> Option<Arc<PluginVersion>> {
        let restored = {
            let mut entries = self.write();
            let entry = entries.get_mut(name)?;
            let previous = entry.replaced.take()?;
            entry.replaced = entry.current.replace(previous.clone());
            self.generation.fetch_add(1, Ordering::AcqRel);
            previous
        };
        let _ = self.events.send(RegistryEvent::Published {
            name: name.to_owned(),
            version: restored.version().to_owned(),
            sha256: restored.sha256.clone(),
        });
        Some(restored)
    }

    /// The status of every plugin the registry has seen.
    pub fn statuses(&self) -> Vec<PluginStatus> {
        self.read()
            .iter()
            .map(|(name, e)| PluginStatus {
                name: name.clone(),
                version: e.current.as_ref().map(|v| v.version().to_owned()),
                sha256: e.current.as_ref().map(|v| v.sha256.clone()),
                wasm_sha256: e.current.as_ref().map(|v| v.wasm_sha256.clone()),
                loaded_at_ms: e.current.as_ref().map(|v| v.loaded_at_ms),
                last_error: e.last_error.clone(),
                replaced_version: e.replaced.as_ref().map(|v| v.version().to_owned()),
                refused: e.refused,
            })
            .collect()
    }

    /// The status of one plugin.
    pub fn status(&self, name: &str) -> Option<PluginStatus> {
        self.statuses().into_iter().find(|s| s.name == name)
    }
}
