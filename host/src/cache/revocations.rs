//! [`Revocations`]: the tokens revoked by a logout, held in memory so checking a request's token
//! costs no database round trip.
//!
//! The database holds the truth. Each host loads the unexpired revocations at start-up, adds the
//! ones its own logouts make, hears the other hosts' over the bus (`revocations` channel), and
//! reloads the whole list now and then (see `api::auth::follow_revocations`), so a message missed
//! while Redis was away is caught up. Reloads only add: a revocation is never undone, and a logout
//! recorded here while a reload's query was in flight must survive it. Entries go once their token
//! has expired, since the signature check refuses such a token anyway.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use crate::store::Revocation;

/// The revoked, unexpired tokens: `jti` → the token's expiry (ms since the epoch).
#[derive(Debug, Default)]
pub struct Revocations {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Whether the list was read from the database at least once; until then it cannot answer.
    loaded: bool,
    tokens: HashMap<String, i64>,
}

impl Revocations {
    /// An empty set that has not been loaded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `jti` is revoked; `None` while the set has never been loaded from the database, when
    /// only the database can answer.
    pub fn contains(&self, jti: &str) -> Option<bool> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner.loaded.then(|| inner.tokens.contains_key(jti))
    }

    /// Records that `jti`, which expires at `expires_ms`, is revoked.
    pub fn insert(&self, jti: &str, expires_ms: i64) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let entry = inner.tokens.entry(jti.to_owned()).or_insert(expires_ms);
        *entry = (*entry).max(expires_ms);
    }

    /// Adds a full list read from the database at `now_ms`, drops what has expired, and marks the
    /// set loaded.
    pub fn load(&self, list: Vec<Revocation>, now_ms: i64) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        for r in list {
            let entry = inner.tokens.entry(r.jti).or_insert(r.expires_ms);
            *entry = (*entry).max(r.expires_ms);
        }
        inner.tokens.retain(|_, expires| *expires >= now_ms);
        inner.loaded = true;
    }

    /// Drops the revocations of tokens expired before `now_ms`.
    pub fn prune(&self, now_ms: i64) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.tokens.retain(|_, expires| *expires >= now_ms);
    }

    /// How many revocations are held.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .tokens
            .len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revocation(jti: &str, expires_ms: i64) -> Revocation {
        Revocation {
            jti: jti.to_owned(),
            expires_ms,
        }
    }

    #[test]
    fn answers_only_once_loaded() {
        let set = Revocations::new();
        set.insert("a", 100);
        assert_eq!(
            set.contains("a"),
            None,
            "a set never loaded defers to the database"
        );
        set.load(Vec::new(), 0);
        assert_eq!(set.contains("a"), Some(true));
        assert_eq!(set.contains("b"), Some(false));
    }

    #[test]
    fn a_load_adds_and_never_forgets_an_unexpired_revocation() {
        let set = Revocations::new();
        set.load(vec![revocation("a", 100)], 0);
        // A logout recorded while the next load's query was in flight is kept.
        set.insert("b", 200);
        set.load(vec![revocation("a", 100)], 10);
        assert_eq!(set.contains("a"), Some(true));
        assert_eq!(set.contains("b"), Some(true));
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn expired_revocations_are_pruned() {
        let set = Revocations::new();
        set.load(vec![revocation("a", 100), revocation("b", 300)], 0);
        set.insert("c", 200);
        set.prune(150);
        assert_eq!(set.contains("a"), Some(false));
        assert_eq!(set.contains("b"), Some(true));
        assert_eq!(set.contains("c"), Some(true));
        set.load(Vec::new(), 250);
        assert_eq!(set.contains("c"), Some(false));
        assert_eq!(set.len(), 1);
        set.prune(i64::MAX);
        assert!(set.is_empty());
    }
}
