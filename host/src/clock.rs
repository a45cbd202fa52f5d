//! The game clock: where the action pipeline reads the time it hands to plugins (`now_ms`), checks
//! buff expiry with and writes into the action log. Production runs on [`SystemClock`]; tests run on
//! a [`ShiftedClock`] and move game time forward instead of waiting for it.
//!
//! Only game time goes through here. Bookkeeping times (when an account was created, when a token
//! expires, when a plugin was uploaded) stay on the wall clock.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of game time, in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + Debug {
    /// The current game time.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        wall_ms()
    }
}

/// The wall clock moved by an offset that only grows: time passes as usual, and [`advance`] jumps
/// ahead at once (what a test does instead of sleeping for game time). It never goes back, so game
/// time stays monotonic for the plugins as it is in production.
///
/// [`advance`]: ShiftedClock::advance
#[derive(Debug, Default)]
pub struct ShiftedClock {
    offset_ms: AtomicI64,
}

impl ShiftedClock {
    /// The wall clock, not moved yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Move game time `by` ahead of where it would be.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |o| Some(o.saturating_add(ms)))
            .ok();
    }

    /// How far ahead of the wall clock game time is.
    pub fn offset(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.offset_ms.load(Ordering::SeqCst)).unwrap_or(0))
    }
}

impl Clock for ShiftedClock {
    fn now_ms(&self) -> i64 {
        wall_ms().saturating_add(self.offset_ms.load(Ordering::SeqCst))
    }
}

/// The system clock as a shared [`Clock`].
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shifted_clock_jumps_ahead_by_what_it_is_advanced() {
        let clock = ShiftedClock::new();
        let before = clock.now_ms();
        clock.advance(Duration::from_secs(3600));
        let after = clock.now_ms();
        assert!(after - before >= 3_600_000, "{before} → {after}");
        assert_eq!(clock.offset(), Duration::from_secs(3600));
        assert!(SystemClock.now_ms() < after);
    }
}
