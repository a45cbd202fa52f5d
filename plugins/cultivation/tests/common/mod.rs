//! Helpers shared by the integration tests.
#![allow(dead_code, reason = "each test file uses a different subset")]

use cauldron_plugin_cultivation::Cultivation;
use cauldron_plugin_cultivation::state::State;
use cauldron_sdk::testing::{Harness, Run};
use cauldron_sdk::wire::{Effect, PlayerState};

pub(crate) const CONTENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/content");

/// 2023-11-14 22:13:20 UTC = 2023-11-15 06:13:20 in Shanghai.
pub(crate) const T0: i64 = 1_700_000_000_000;
pub(crate) const SECOND: i64 = 1000;
pub(crate) const HOUR: i64 = 3_600_000;
pub(crate) const DAY: i64 = 86_400_000;

pub(crate) fn harness() -> Harness<Cultivation> {
    Harness::<Cultivation>::with_content_dir(CONTENT)
}

/// The content text of a table, for tests that tweak one value.
pub(crate) fn content_text(table: &str) -> String {
    std::fs::read_to_string(format!("{CONTENT}/{table}.toml")).expect("content file")
}

/// A character freshly started at `T0`.
pub(crate) fn started(h: &Harness<Cultivation>) -> PlayerState {
    h.action("start").now_ms(T0).run().player_after()
}

/// The realm table's thresholds for a few levels (from the design document).
pub(crate) fn threshold(level: i64) -> f64 {
    match level {
        1 => 199.0,
        2 => 299.0,
        10 => 5100.0,
        26 => 7100.0,
        27 => 9999.0,
        28 => 10000.0,
        29 => 10500.0,
        135 => 140_000_000.0,
        other => panic!("no threshold in the test table for {other}"),
    }
}

/// A started character moved to `level` with `cultivation`, the table's threshold and `spirit`.
pub(crate) fn at_level(h: &Harness<Cultivation>, level: i64, cultivation: f64, spirit: i64) -> PlayerState {
    started(h)
        .with_stat("level", level as f64)
        .with_stat("max_cultivation", threshold(level))
        .with_stat("cultivation", cultivation)
        .with_stat("spirit_rate", 1.2f64.powi(level as i32 - 1))
        .with_currency("spirit", spirit)
}

pub(crate) fn state_of(p: &PlayerState) -> State {
    p.state.decode().expect("plugin state decodes")
}

pub(crate) fn stat(p: &PlayerState, name: &str) -> f64 {
    p.stats.get(name).copied().unwrap_or(0.0)
}

pub(crate) fn cur(p: &PlayerState, name: &str) -> i64 {
    p.currencies.get(name).copied().unwrap_or(0)
}

pub(crate) fn scores(run: &Run) -> Vec<(String, f64)> {
    run.effects()
        .iter()
        .filter_map(|e| match e {
            Effect::SetScore { board, score } => Some((board.clone(), *score)),
            _ => None,
        })
        .collect()
}

pub(crate) fn topics(run: &Run) -> Vec<String> {
    run.events().iter().map(|(t, _)| (*t).to_owned()).collect()
}
