//! What each action replies, for clients (and the tests) to decode.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::content::RealmView;

/// Spirit income added at the start of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accrual {
    /// Whole spirit points added.
    pub gained: i64,
    /// Time since the previous accrual.
    pub elapsed_ms: i64,
    /// The part of it that earned (at most the offline cap).
    pub counted_ms: i64,
    /// The spirit rate used (per second).
    pub spirit_rate: f64,
    /// The fraction of a point carried to the next accrual.
    pub carried_fraction: f64,
}

/// `start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartReply {
    /// False when the character already existed (nothing changed).
    pub created: bool,
    /// The current realm.
    pub realm: RealmView,
    /// The stats set (empty when nothing changed).
    pub stats: BTreeMap<String, f64>,
}

/// A breakthrough that happened during an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakthroughInfo {
    /// The level left.
    pub from_level: i64,
    /// The new level.
    pub level: i64,
    /// The new realm.
    pub realm: RealmView,
    /// The new breakthrough threshold.
    pub max_cultivation: f64,
    /// Spirit granted.
    pub spirit_reward: i64,
    /// Base stats after the rebuild.
    pub stats: BTreeMap<String, f64>,
}

/// The roll of the luck table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LuckRoll {
    /// The multiplier.
    pub multiplier: f64,
    /// Tier name.
    pub name: String,
    /// English gloss.
    pub gloss: String,
}

/// `meditate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeditateReply {
    /// Spirit income added first.
    pub accrual: Accrual,
    /// Spirit spent.
    pub spirit_cost: i64,
    /// The luck roll.
    pub luck: LuckRoll,
    /// Cultivation gained.
    pub cultivation_gain: f64,
    /// Cultivation now (0 after a breakthrough).
    pub cultivation: f64,
    /// Threshold now.
    pub max_cultivation: f64,
    /// Spirit now.
    pub spirit: i64,
    /// The breakthrough, if one happened.
    pub breakthrough: Option<BreakthroughInfo>,
}

/// `formation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormationReply {
    /// Spirit income added first.
    pub accrual: Accrual,
    /// Spirit stones spent.
    pub stone_cost: i64,
    /// Whether the daily discount applied.
    pub discounted: bool,
    /// Formation uses today, this one included.
    pub uses_today: i64,
    /// Discounted uses left today.
    pub discounted_left: i64,
    /// The luck roll (levels up to the tribulation level).
    pub luck: Option<LuckRoll>,
    /// The high-level roll's fraction of max_cultivation (levels above the tribulation level).
    pub high_pct: Option<f64>,
    /// Cultivation gained.
    pub cultivation_gain: f64,
    /// max_cultivation gained (only with `high_target = "max_cultivation"`).
    pub max_cultivation_gain: f64,
    /// Cultivation now.
    pub cultivation: f64,
    /// Threshold now.
    pub max_cultivation: f64,
    /// Spirit stones now.
    pub spirit_stones: i64,
    /// The breakthrough, if one happened.
    pub breakthrough: Option<BreakthroughInfo>,
}

/// An entity destroyed by the tribulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consumed {
    /// Entity id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Its name, if its data has one.
    pub name: Option<String>,
    /// Its quality.
    pub quality: String,
}

/// `tribulation` (also the payload of the `tribulation` event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TribulationReply {
    /// Spirit income added first.
    pub accrual: Accrual,
    /// Whether the player crossed.
    pub success: bool,
    /// The chance it had.
    pub chance: f64,
    /// The equipment destroyed, if the player had any.
    pub consumed_equipment: Option<Consumed>,
    /// The pet destroyed, if the player had any.
    pub consumed_pet: Option<Consumed>,
    /// Level now.
    pub level: i64,
    /// Cultivation now.
    pub cultivation: f64,
    /// Base du_jie_rate now.
    pub du_jie_rate: f64,
    /// The breakthrough on success.
    pub breakthrough: Option<BreakthroughInfo>,
    /// Words for the player.
    pub message: String,
}

/// An item found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemFound {
    /// Item id (`herb:<id>` or `fragment:<recipe_id>`).
    pub item: String,
    /// Display name.
    pub name: String,
    /// English gloss.
    pub gloss: String,
    /// Quantity.
    pub qty: i64,
}

/// One exploration event as it happened (also the payload of the `exploration` event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExploreEvent {
    /// Event id from the table.
    pub id: String,
    /// Event kind (`cultivation_boost`, `herb_found`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Chinese name.
    pub name: String,
    /// English gloss.
    pub gloss: String,
    /// Chinese description.
    pub description: String,
    /// English description.
    pub description_en: String,
    /// Change to cultivation.
    pub cultivation_delta: f64,
    /// Change to spirit.
    pub spirit_delta: i64,
    /// Item found.
    pub item: Option<ItemFound>,
    /// Currency found.
    pub currency: Option<String>,
    /// How much of it.
    pub amount: i64,
}

/// `explore`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExploreReply {
    /// Spirit income added first.
    pub accrual: Accrual,
    /// Spirit spent.
    pub spirit_cost: i64,
    /// The chance that something happened.
    pub event_chance: f64,
    /// What happened, for the event log (empty: a quiet trip).
    pub events: Vec<ExploreEvent>,
    /// Cultivation now.
    pub cultivation: f64,
    /// Spirit now.
    pub spirit: i64,
    /// Explorations so far.
    pub explorations: i64,
}

/// `checkin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckinReply {
    /// Spirit income added first.
    pub accrual: Accrual,
    /// The game date checked in (`YYYY-MM-DD`).
    pub date: String,
    /// The streak day paid (1-based).
    pub streak_day: i64,
    /// The reward paid.
    pub reward: i64,
    /// Its currency.
    pub currency: String,
    /// That currency's balance now.
    pub balance: i64,
    /// Tomorrow's reward if the streak continues.
    pub next_reward: i64,
}

/// The check-in part of the status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckinStatus {
    /// Whether the player checked in today.
    pub checked_in_today: bool,
    /// The streak day of the last check-in (0: no streak running).
    pub streak_day: i64,
    /// The reward of the next check-in (today's if not yet done, else tomorrow's).
    pub next_reward: i64,
    /// All rewards by streak day.
    pub rewards: Vec<i64>,
}

/// `gather`: the accrual, and everything a cultivation screen shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Spirit income just added.
    pub accrual: Accrual,
    /// Level.
    pub level: i64,
    /// Realm.
    pub realm: RealmView,
    /// Cultivation.
    pub cultivation: f64,
    /// Threshold.
    pub max_cultivation: f64,
    /// Spirit.
    pub spirit: i64,
    /// Spirit per second.
    pub spirit_rate: f64,
    /// Spirit a meditation costs.
    pub meditate_cost: i64,
    /// Cultivation a meditation gives before the luck roll.
    pub meditate_gain: f64,
    /// Spirit stones the next formation costs.
    pub formation_cost: i64,
    /// Discounted formation uses left today.
    pub formation_discounted_left: i64,
    /// Spirit an exploration costs.
    pub explore_cost: i64,
    /// Cultivation needed to explore.
    pub explore_min_cultivation: f64,
    /// Whether the player must cross the tribulation to progress.
    pub tribulation_ready: bool,
    /// Check-in state.
    pub checkin: CheckinStatus,
}

/// One line of a table of odds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Odds {
    /// Id (or the multiplier / amount as text).
    pub id: String,
    /// Chinese name.
    pub name: String,
    /// English gloss.
    pub gloss: String,
    /// The true probability.
    pub probability: f64,
}

/// `info`: display tables with true odds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    /// Every level.
    pub realms: Vec<RealmView>,
    /// The level needing a tribulation.
    pub tribulation_level: i64,
    /// Luck multipliers of meditation and formation, with their odds.
    pub luck: Vec<Odds>,
    /// Expected luck multiplier.
    pub luck_expected: f64,
    /// High-level formation: fraction of max_cultivation and its odds.
    pub formation_high: Vec<Odds>,
    /// Exploration: the chance of any event at luck 1.
    pub explore_event_chance: f64,
    /// Exploration events with their probability per exploration at luck 1.
    pub explore_events: Vec<Odds>,
    /// Herb odds given a herb find.
    pub herbs: Vec<Odds>,
    /// Fragment odds given a fragment find.
    pub fragments: Vec<Odds>,
    /// Check-in rewards by streak day.
    pub checkin_rewards: Vec<i64>,
    /// The zone of the game day.
    pub day_zone: String,
}
