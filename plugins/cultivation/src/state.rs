//! The plugin's private per-player state (`ctx.state()` / `ctx.set_state()`).

use serde::{Deserialize, Serialize};

/// What the cultivation plugin remembers about a player between calls.
///
/// Every field has a default so that older saved states keep decoding when fields are added.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// Set by `start`; every other action (except `info`) is rejected until then.
    pub started: bool,
    /// When spirit income was last added, ms since the epoch.
    pub last_accrual_ms: i64,
    /// The fraction of a spirit point earned but not yet paid (the currency is whole numbers).
    pub spirit_fraction: f64,
    /// The game day (see `calendar.toml`) that `formation_uses` counts.
    pub formation_day: i64,
    /// Formation uses on `formation_day`.
    pub formation_uses: i64,
    /// The game day of the last check-in, if any.
    pub checkin_day: Option<i64>,
    /// The streak day paid at the last check-in (1-based).
    pub checkin_streak: i64,
}
