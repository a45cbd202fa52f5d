//! Plugin name → current version (and, in memory only, the version it replaced), with a status per
//! plugin and a broadcast of changes for long-lived consumers such as WebSocket sessions.
//!
//! A plugin may also have two **companions**, versions beside the current one ([`Companion`]): a
//! *canary* serves a share of the players, chosen by [`canary_bucket`] (a hash of the plugin name
//! and the player id, so the same players get the canary on every host and at every call, and
//! widening the share keeps the players who already had it); a *shadow* serves nobody, it re-runs a
//! share of the live calls so its answers can be compared with the current version's.

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
    /// The canary version and the share of players it serves, if any.
    pub canary: Option<CompanionStatus>,
    /// The shadow version and the share of live calls it re-runs, if any.
    pub shadow: Option<CompanionStatus>,
}

/// A version beside a plugin's current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Companion {
    /// Serves a share of the players instead of the current version.
    Canary,
    /// Serves nobody; re-runs a share of the live calls, for comparison.
    Shadow,
}

impl Companion {
    /// `canary` or `shadow`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Canary => "canary",
            Self::Shadow => "shadow",
        }
    }

    /// The companion labelled `label`.
    pub fn from_label(label: &str) -> Option<Self> {
        match label {
            "canary" => Some(Self::Canary),
            "shadow" => Some(Self::Shadow),
            _ => None,
        }
    }
}

/// A companion version as the registry reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanionStatus {
    /// Its version.
    pub version: String,
    /// Its digest.
    pub sha256: String,
    /// Its share (of players for a canary, of live calls for a shadow) in basis points (1/100 of a
    /// percent): 0 to 10 000.
    pub share_bp: u32,
}

/// The whole of the players, in basis points.
pub const ALL_BP: u32 = 10_000;

/// The bucket of `player_id` for plugin `name`, 0 to 9 999: a player is served the canary when
/// their bucket is below the canary's share in basis points. A sha256 of the name, a zero byte and
/// the id in little-endian bytes, first 8 bytes as a little-endian integer, modulo 10 000: stable
/// across hosts, restarts and versions, and different per plugin.
pub fn canary_bucket(name: &str, player_id: i64) -> u32 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0]);
    h.update(player_id.to_le_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_le_bytes(first) % u64::from(ALL_BP)) as u32
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
    /// A second version for the players whose bucket is below the share (basis points).
    canary: Option<(Arc<PluginVersion>, u32)>,
    /// A version that re-runs the share (basis points) of live calls.
    shadow: Option<(Arc<PluginVersion>, u32)>,
    last_error: Option<String>,
    refused: u64,
}

impl Entry {
    fn companion(&mut self, kind: Companion) -> &mut Option<(Arc<PluginVersion>, u32)> {
        match kind {
            Companion::Canary => &mut self.canary,
            Companion::Shadow => &mut self.shadow,
        }
    }

    /// The version serving `player_id` (the canary when the player's bucket is in its share).
    fn for_player(&self, name: &str, player_id: i64) -> Option<Arc<PluginVersion>> {
        match &self.canary {
            Some((canary, share)) if canary_bucket(name, player_id) < *share => Some(canary.clone()),
            _ => self.current.clone(),
        }
    }
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

    /// The version serving `name` for `player_id`: the canary when the player is in its share,
    /// else the current one.
    pub fn get_for(&self, name: &str, player_id: i64) -> Option<Arc<PluginVersion>> {
        self.read().get(name)?.for_player(name, player_id)
    }

    /// Every version serving `player_id` (one per plugin, canaries chosen per player) with the
    /// [`Registry::generation`] they belong to, read together.
    pub fn current_for_with_generation(&self, player_id: i64) -> (u64, Vec<Arc<PluginVersion>>) {
        let entries = self.read();
        let generation = self.generation.load(Ordering::Acquire);
        (
            generation,
            entries
                .iter()
                .filter_map(|(name, e)| e.for_player(name, player_id))
                .collect(),
        )
    }

    /// Make `version` the `kind` companion of its plugin with a share of `share_bp` basis points
    /// (clamped to 10 000). The plugin must have a current version; returns false (and changes
    /// nothing) when it has none. Setting the same version again changes only the share.
    pub fn set_companion(&self, kind: Companion, version: Arc<PluginVersion>, share_bp: u32) -> bool {
        let name = version.name().to_owned();
        let share = share_bp.min(ALL_BP);
        {
            let mut entries = self.write();
            let Some(entry) = entries.get_mut(&name).filter(|e| e.current.is_some()) else {
                return false;
            };
            let slot = entry.companion(kind);
            if slot
                .as_ref()
                .is_some_and(|(c, s)| c.sha256 == version.sha256 && *s == share)
            {
                return true;
            }
            *slot = Some((version.clone(), share));
            // A shadow serves nobody: what the players are served is unchanged.
            if kind == Companion::Canary {
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
        }
        tracing::info!(plugin = %name, version = %version.version(), sha256 = %version.sha256, share_bp = share, "plugin {} set", kind.label());
        if kind == Companion::Canary {
            let _ = self.events.send(RegistryEvent::Published {
                name,
                version: version.version().to_owned(),
                sha256: version.sha256.clone(),
            });
        }
        true
    }

    /// The `kind` companion of `name` and its share in basis points, if it has one.
    pub fn companion(&self, kind: Companion, name: &str) -> Option<(Arc<PluginVersion>, u32)> {
        let entries = self.read();
        let entry = entries.get(name)?;
        match kind {
            Companion::Canary => entry.canary.clone(),
            Companion::Shadow => entry.shadow.clone(),
        }
    }

    /// Remove the `kind` companion of `name` (for a canary: every player is served the current
    /// version again). Returns the companion there was.
    pub fn clear_companion(&self, kind: Companion, name: &str) -> Option<Arc<PluginVersion>> {
        let cleared = {
            let mut entries = self.write();
            let cleared = entries.get_mut(name)?.companion(kind).take()?.0;
            if kind == Companion::Canary {
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            cleared
        };
        tracing::info!(plugin = %name, version = %cleared.version(), "plugin {} ended", kind.label());
        Some(cleared)
    }

    /// Every version serving anyone: the current ones and the canaries.
    pub fn serving(&self) -> Vec<Arc<PluginVersion>> {
        self.read()
            .values()
            .flat_map(|e| e.current.iter().chain(e.canary.iter().map(|(c, _)| c)))
            .cloned()
            .collect()
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
            // A canary of the version now current is promoted: nothing is left to split.
            if entry
                .canary
                .as_ref()
                .is_some_and(|(c, _)| c.sha256 == version.sha256)
            {
                entry.canary = None;
            }
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
                canary: e.canary.as_ref().map(companion_status),
                shadow: e.shadow.as_ref().map(companion_status),
            })
            .collect()
    }

    /// The status of one plugin.
    pub fn status(&self, name: &str) -> Option<PluginStatus> {
        self.statuses().into_iter().find(|s| s.name == name)
    }
}

fn companion_status((version, share): &(Arc<PluginVersion>, u32)) -> CompanionStatus {
    CompanionStatus {
        version: version.version().to_owned(),
        sha256: version.sha256.clone(),
        share_bp: *share,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_buckets_are_stable_spread_and_per_plugin() {
        let in_share =
            |name: &str, share: u32| (0..10_000).filter(|&p| canary_bucket(name, p) < share).count();
        // About a fifth of 10 000 players for a 20 % share; a tenth for 10 %.
        let fifth = in_share("cultivation", 2_000);
        assert!((1_800..=2_200).contains(&fifth), "{fifth}");
        let tenth = in_share("cultivation", 1_000);
        assert!((900..=1_100).contains(&tenth), "{tenth}");
        // The same answer every time, and widening keeps everyone who was in.
        for p in 0..1_000 {
            let b = canary_bucket("cultivation", p);
            assert_eq!(b, canary_bucket("cultivation", p));
            assert!(b < ALL_BP);
        }
        // Another plugin splits the players differently.
        let same = (0..1_000)
            .filter(|&p| canary_bucket("cultivation", p) == canary_bucket("alchemy", p))
            .count();
        assert!(same < 10, "{same}");
    }
}
