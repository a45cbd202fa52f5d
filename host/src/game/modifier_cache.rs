//! The `modifiers` hooks' answers per player, so reads and actions at an unchanged state do not call
//! every plugin's hook again.
//!
//! An answer depends on the player's state (named by its version), on which plugins serve (named by
//! the registry's generation) and on nothing else: ABI.md requires the hook to be a pure function of
//! the state it reads, not of `now_ms` (the plugins' hooks read equipped items and the deployed pet).
//! The one part of a state that changes without a new version is its buffs, which expire with time:
//! an answer is kept only until the earliest expiry among the buffs its state held, in case a hook
//! reads them. Buffs' own modifiers are not cached; the pipeline adds the active ones on every use.
//!
//! The map holds one entry per player, at most [`CAPACITY`] of them; when full, stale entries go first,
//! then arbitrary ones (a miss only costs the hook calls again).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cauldron_sdk::wire::Modifier;

/// Most players whose answers are kept.
pub(crate) const CAPACITY: usize = 10_000;

#[derive(Debug)]
struct Entry {
    version: i64,
    generation: u64,
    /// The answer is good while `now_ms < valid_until_ms`.
    valid_until_ms: i64,
    modifiers: Arc<Vec<Modifier>>,
}

impl Entry {
    fn usable(&self, version: i64, generation: u64, now_ms: i64) -> bool {
        self.version == version && self.generation == generation && now_ms < self.valid_until_ms
    }
}

/// The cache. Cheap to share; every method takes a short lock.
#[derive(Debug)]
pub(crate) struct ModifierCache {
    capacity: usize,
    entries: Mutex<HashMap<i64, Entry>>,
}

impl ModifierCache {
    /// An empty cache holding at most `capacity` players.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The hooks' answer for `player` at state `version` under plugin `generation`, if it is held and
    /// still good at `now_ms`.
    pub(crate) fn get(
        &self,
        player: i64,
        version: i64,
        generation: u64,
        now_ms: i64,
    ) -> Option<Arc<Vec<Modifier>>> {
        let entries = self.lock();
        let entry = entries.get(&player)?;
        entry
            .usable(version, generation, now_ms)
            .then(|| Arc::clone(&entry.modifiers))
    }

    /// The answer held for `player` at version `from` now also stands for version `to`: the action
    /// between them changed nothing the hooks read.
    pub(crate) fn carry(&self, player: i64, from: i64, to: i64) {
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(&player)
            && entry.version == from
        {
            entry.version = to;
        }
    }

    /// Keep `modifiers`, the hooks' answer for `player` at `version` under `generation`, until
    /// `valid_until_ms`. An answer for an older state under the same plugins never replaces a newer
    /// one (a slow reader finishing after an action).
    pub(crate) fn put(
        &self,
        player: i64,
        version: i64,
        generation: u64,
        valid_until_ms: i64,
        modifiers: Arc<Vec<Modifier>>,
        now_ms: i64,
    ) {
        let mut entries = self.lock();
        if let Some(held) = entries.get(&player)
            && held.generation == generation
            && held.version > version
        {
            return;
        }
        if !entries.contains_key(&player) && entries.len() >= self.capacity {
            entries.retain(|_, e| e.generation == generation && now_ms < e.valid_until_ms);
            if entries.len() >= self.capacity {
                // Still full of good answers: drop a quarter, so this scan is not repeated on every
                // insert.
                let drop: Vec<i64> = entries.keys().take(self.capacity.div_ceil(4)).copied().collect();
                for key in drop {
                    entries.remove(&key);
                }
            }
        }
        entries.insert(
            player,
            Entry {
                version,
                generation,
                valid_until_ms,
                modifiers,
            },
        );
    }

    /// How many players' answers are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(stat: &str) -> Arc<Vec<Modifier>> {
        Arc::new(vec![Modifier {
            stat: stat.into(),
            add: 1.0,
            mul: 0.0,
            source: "test".into(),
        }])
    }

    #[test]
    fn an_answer_serves_only_its_version_generation_and_time() {
        let cache = ModifierCache::new(10);
        cache.put(1, 5, 2, 1_000, answer("attack"), 0);
        assert_eq!(cache.get(1, 5, 2, 999).unwrap()[0].stat, "attack");
        assert!(cache.get(1, 6, 2, 0).is_none(), "another version");
        assert!(cache.get(1, 5, 3, 0).is_none(), "plugins changed");
        assert!(cache.get(1, 5, 2, 1_000).is_none(), "a buff it saw has expired");
        assert!(cache.get(2, 5, 2, 0).is_none(), "another player");
    }

    #[test]
    fn an_older_state_never_replaces_a_newer_one_under_the_same_plugins() {
        let cache = ModifierCache::new(10);
        cache.put(1, 6, 1, i64::MAX, answer("new"), 0);
        cache.put(1, 5, 1, i64::MAX, answer("old"), 0);
        assert_eq!(cache.get(1, 6, 1, 0).unwrap()[0].stat, "new");
        // After a reload the newer generation wins whatever the version.
        cache.put(1, 5, 2, i64::MAX, answer("reloaded"), 0);
        assert_eq!(cache.get(1, 5, 2, 0).unwrap()[0].stat, "reloaded");
    }

    #[test]
    fn the_map_stays_within_its_capacity() {
        let cache = ModifierCache::new(8);
        for player in 0..100 {
            cache.put(player, 1, 1, i64::MAX, answer("x"), 0);
            assert!(cache.len() <= 8);
        }
        assert!(cache.get(99, 1, 1, 0).is_some(), "the newest is kept");
        // Stale entries are the first to go.
        let cache = ModifierCache::new(2);
        cache.put(1, 1, 1, 10, answer("expires"), 0);
        cache.put(2, 1, 1, i64::MAX, answer("stays"), 0);
        cache.put(3, 1, 1, i64::MAX, answer("new"), 20);
        assert!(cache.get(2, 1, 1, 20).is_some());
        assert!(cache.get(3, 1, 1, 20).is_some());
        assert_eq!(cache.len(), 2);
    }
}
