//! The content tables (`content/*.toml`), decoded and checked.
//!
//! Every number a designer may want to change lives in these tables; the Rust code only holds the
//! shape of the formulas. A table that does not decode or does not make sense is a `bad_content` fault
//! naming the table and the problem.

use cauldron_sdk::abi::fault_codes;
use std::rc::Rc;

use cauldron_sdk::{Ctx, Error, Table};
use serde::{Deserialize, Serialize};

/// Table names, as declared in the manifest.
pub mod tables {
    /// `content/realms.toml`
    pub const REALMS: &str = "realms";
    /// `content/cultivation.toml`
    pub const CULTIVATION: &str = "cultivation";
    /// `content/luck.toml`
    pub const LUCK: &str = "luck";
    /// `content/exploration.toml`
    pub const EXPLORATION: &str = "exploration";
    /// `content/checkin.toml`
    pub const CHECKIN: &str = "checkin";
    /// `content/calendar.toml`
    pub const CALENDAR: &str = "calendar";
}

pub(crate) fn bad(table: &str, message: impl std::fmt::Display) -> Error {
    Error::fault(
        fault_codes::BAD_CONTENT,
        format!("content table `{table}`: {message}"),
    )
}

/// `realms.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Realms {
    /// The level that needs a tribulation to leave.
    pub tribulation_level: i64,
    /// The last level.
    pub max_level: i64,
    /// Chinese name pattern (`{major}`, `{layer}`, `{n}`).
    pub name_format: String,
    /// English gloss pattern (`{major}`, `{layer}`, `{n}`).
    pub gloss_format: String,
    /// Chinese numerals of the layers.
    pub layers: Vec<String>,
    /// The major realms, lowest first.
    pub majors: Vec<Major>,
}

/// One major realm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Major {
    /// Chinese name (练气).
    pub name: String,
    /// English gloss.
    pub gloss: String,
    /// Cultivation needed to break through from each layer.
    pub thresholds: Vec<f64>,
}

/// A level's display names and threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RealmView {
    /// Level, 1-based.
    pub level: i64,
    /// Chinese name (练气期一层).
    pub name: String,
    /// English gloss.
    pub gloss: String,
    /// Major realm index, 1-based (what item requirements use).
    pub major: i64,
    /// Layer within the major realm, 1-based.
    pub layer: i64,
    /// Cultivation needed to leave this level.
    pub threshold: f64,
}

impl Table for Realms {
    const NAME: &'static str = tables::REALMS;

    fn check(&self) -> Result<(), Error> {
        self.validate()
    }
}

impl Realms {
    /// The table, decoded and checked once per load.
    pub fn load(ctx: &Ctx) -> Result<Rc<Self>, Error> {
        ctx.table()
    }

    fn validate(&self) -> Result<(), Error> {
        let t = tables::REALMS;
        if self.layers.is_empty() || self.majors.is_empty() {
            return Err(bad(t, "needs at least one layer and one major realm"));
        }
        for m in &self.majors {
            if m.thresholds.len() != self.layers.len() {
                return Err(bad(
                    t,
                    format!(
                        "major realm {} has {} thresholds for {} layers",
                        m.name,
                        m.thresholds.len(),
                        self.layers.len()
                    ),
                ));
            }
            if m.thresholds.iter().any(|x| !x.is_finite() || *x <= 0.0) {
                return Err(bad(
                    t,
                    format!("major realm {} has a threshold that is not positive", m.name),
                ));
            }
        }
        let levels = (self.majors.len() * self.layers.len()) as i64;
        if self.max_level != levels {
            return Err(bad(
                t,
                format!(
                    "max_level is {} but the table has {levels} levels",
                    self.max_level
                ),
            ));
        }
        if !(1..self.max_level).contains(&self.tribulation_level) {
            return Err(bad(t, "tribulation_level must be below max_level"));
        }
        Ok(())
    }

    /// The level's names and threshold, or a fault when the level is outside the table.
    pub fn view(&self, level: i64) -> Result<RealmView, Error> {
        if !(1..=self.max_level).contains(&level) {
            return Err(bad(
                tables::REALMS,
                format!("level {level} is outside 1..={}", self.max_level),
            ));
        }
        let per = self.layers.len() as i64;
        let major_idx = ((level - 1) / per) as usize;
        let layer_idx = ((level - 1) % per) as usize;
        let (Some(major), Some(layer)) = (self.majors.get(major_idx), self.layers.get(layer_idx)) else {
            return Err(bad(tables::REALMS, format!("level {level} is outside the table")));
        };
        let threshold = major.thresholds.get(layer_idx).copied().unwrap_or(f64::INFINITY);
        let fill = |pattern: &str, major_name: &str| {
            pattern
                .replace("{major}", major_name)
                .replace("{layer}", layer)
                .replace("{n}", &(layer_idx + 1).to_string())
        };
        Ok(RealmView {
            level,
            name: fill(&self.name_format, &major.name),
            gloss: fill(&self.gloss_format, &major.gloss),
            major: major_idx as i64 + 1,
            layer: layer_idx as i64 + 1,
            threshold,
        })
    }
}

/// `cultivation.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rules {
    /// New characters.
    pub start: Start,
    /// Base stats per level.
    pub level_stats: LevelStats,
    /// Spirit income.
    pub spirit: SpiritRules,
    /// Meditation.
    pub meditate: Meditate,
    /// Formation.
    pub formation: Formation,
    /// Breakthrough.
    pub breakthrough: Breakthrough,
    /// Tribulation.
    pub tribulation: Tribulation,
}

/// `[start]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Start {
    /// Starting level.
    pub level: i64,
    /// Starting `cultivation_rate`.
    pub cultivation_rate: f64,
    /// Starting `du_jie_rate`.
    pub du_jie_rate: f64,
    /// Starting `luck`.
    pub luck: f64,
}

/// `[level_stats]`: stat = per_level x L.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LevelStats {
    /// attack per level
    pub attack: f64,
    /// health per level
    pub health: f64,
    /// defense per level
    pub defense: f64,
    /// speed per level
    pub speed: f64,
}

/// `[spirit]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpiritRules {
    /// spirit_rate at level 1.
    pub rate_base: f64,
    /// Growth per level.
    pub rate_growth: f64,
    /// Longest absence that still earns, in hours.
    pub offline_cap_hours: f64,
}

/// `[meditate]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meditate {
    /// Display name.
    pub name: String,
    /// English gloss.
    pub gloss: String,
    /// Cost at level 1.
    pub cost_base: f64,
    /// Cost growth per level.
    pub cost_growth: f64,
    /// Gain at level 1.
    pub gain_base: f64,
    /// Gain growth per level.
    pub gain_growth: f64,
}

/// What a high-level formation raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum HighTarget {
    /// The player's cultivation.
    #[default]
    Cultivation,
    /// The breakthrough threshold itself (which makes the next breakthrough harder).
    MaxCultivation,
}

/// `[formation]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Formation {
    /// Display name.
    pub name: String,
    /// English gloss.
    pub gloss: String,
    /// Cost at level 1.
    pub cost_base: f64,
    /// Cost growth per level.
    pub cost_growth: f64,
    /// Discounted uses per game day.
    pub daily_discounted_uses: i64,
    /// Discounted cost = ceil(cost / this).
    pub discount_divisor: i64,
    /// Gain at level 1.
    pub gain_base: f64,
    /// Gain growth per level.
    pub gain_growth: f64,
    /// Cost above the tribulation level.
    pub high_cost: i64,
    /// What the high-level roll raises.
    #[serde(default)]
    pub high_target: HighTarget,
    /// The high-level roll.
    pub high_tiers: Vec<HighTier>,
}

/// One outcome of the high-level formation roll.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HighTier {
    /// Fraction of the current max_cultivation.
    pub pct: f64,
    /// Relative weight.
    pub chance: f64,
}

/// `[breakthrough]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Breakthrough {
    /// Spirit reward per new level.
    pub spirit_reward_per_level: i64,
}

/// `[tribulation]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tribulation {
    /// Display name.
    pub name: String,
    /// English gloss.
    pub gloss: String,
    /// Chance when `du_jie_rate` was never set.
    pub default_du_jie_rate: f64,
    /// Base `du_jie_rate` after a win.
    pub du_jie_rate_after_win: f64,
    /// Base `du_jie_rate` after a loss.
    pub du_jie_rate_after_loss: f64,
    /// Entity qualities, lowest first.
    pub quality_order: Vec<String>,
}

impl Table for Rules {
    const NAME: &'static str = tables::CULTIVATION;

    fn check(&self) -> Result<(), Error> {
        let t = self;
        let name = tables::CULTIVATION;
        let f = &t.formation;
        if f.discount_divisor <= 0 {
            return Err(bad(name, "formation.discount_divisor must be positive"));
        }
        if f.high_cost < 0 || f.daily_discounted_uses < 0 || t.breakthrough.spirit_reward_per_level < 0 {
            return Err(bad(name, "costs, uses and rewards must not be negative"));
        }
        if !f.high_tiers.iter().any(|x| x.chance > 0.0) {
            return Err(bad(name, "formation.high_tiers needs a positive chance"));
        }
        if t.spirit.offline_cap_hours.is_nan() || t.spirit.offline_cap_hours < 0.0 {
            return Err(bad(name, "spirit.offline_cap_hours must not be negative"));
        }
        Ok(())
    }
}

impl Rules {
    /// The table, decoded and checked once per load.
    pub fn load(ctx: &Ctx) -> Result<Rc<Self>, Error> {
        ctx.table()
    }
}

/// `luck.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Luck {
    /// The tiers.
    pub tiers: Vec<LuckTier>,
}

/// One luck tier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LuckTier {
    /// Gain multiplier.
    pub multiplier: f64,
    /// Relative weight.
    pub chance: f64,
    /// Chinese name.
    pub name: String,
    /// English gloss.
    pub gloss: String,
}

impl Table for Luck {
    const NAME: &'static str = tables::LUCK;

    fn check(&self) -> Result<(), Error> {
        let t = self;
        if !t.tiers.iter().any(|x| x.chance > 0.0) {
            return Err(bad(tables::LUCK, "needs a tier with a positive chance"));
        }
        Ok(())
    }
}

impl Luck {
    /// The table, decoded and checked once per load.
    pub fn load(ctx: &Ctx) -> Result<Rc<Self>, Error> {
        ctx.table()
    }
}

/// `exploration.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exploration {
    /// Needed cultivation as a fraction of max_cultivation.
    pub min_cultivation_fraction: f64,
    /// Cost at level 1.
    pub cost_base: f64,
    /// Cost growth per level.
    pub cost_growth: f64,
    /// Event chance at luck 1.
    pub event_chance: f64,
    /// Luck when the stat is unset.
    pub default_luck: f64,
    /// The events.
    pub events: Vec<EventSpec>,
    /// Herbs found by `pool = "herbs"`.
    pub herbs: Vec<Herb>,
    /// Fragments found by `pool = "fragments"`.
    pub fragments: Vec<Fragment>,
}

/// Where an event's item comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pool {
    /// `[[herbs]]`, item `herb:<id>`.
    Herbs,
    /// `[[fragments]]`, item `fragment:<recipe_id>`.
    Fragments,
}

/// One exploration event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventSpec {
    /// Stable id.
    pub id: String,
    /// Kind shown to clients.
    #[serde(rename = "type")]
    pub kind: String,
    /// Chinese name.
    pub name: String,
    /// English gloss.
    pub gloss: String,
    /// Chinese description.
    #[serde(default)]
    pub description: String,
    /// English description.
    #[serde(default)]
    pub description_en: String,
    /// Relative weight.
    pub weight: f64,
    /// Signed fraction of R added to cultivation.
    #[serde(default)]
    pub cultivation_pct: f64,
    /// Signed fraction of current spirit.
    #[serde(default)]
    pub spirit_pct: f64,
    /// Item pool.
    #[serde(default)]
    pub pool: Option<Pool>,
    /// Currency found.
    #[serde(default)]
    pub currency: Option<String>,
    /// Amounts of the currency, by weight.
    #[serde(default)]
    pub amounts: Vec<Amount>,
    /// Whether to announce it live.
    #[serde(default)]
    pub notable: bool,
}

/// A weighted amount.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Amount {
    /// How much.
    pub amount: i64,
    /// Relative weight.
    pub weight: f64,
}

/// A herb exploration can find.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Herb {
    /// Herb id (item `herb:<id>`).
    pub id: String,
    /// Chinese name.
    pub name: String,
    /// English gloss.
    pub gloss: String,
    /// Relative weight.
    pub weight: f64,
}

/// A recipe fragment exploration can find.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fragment {
    /// Recipe id (item `fragment:<recipe_id>`).
    pub recipe_id: String,
    /// Pill name.
    pub name: String,
    /// English gloss.
    pub gloss: String,
    /// Relative weight.
    pub weight: f64,
}

impl Table for Exploration {
    const NAME: &'static str = tables::EXPLORATION;

    fn check(&self) -> Result<(), Error> {
        let t = self;
        let name = tables::EXPLORATION;
        if !t.events.iter().any(|e| e.weight > 0.0) {
            return Err(bad(name, "needs an event with a positive weight"));
        }
        for e in &t.events {
            if e.currency.is_some() && !e.amounts.iter().any(|a| a.weight > 0.0 && a.amount > 0) {
                return Err(bad(
                    name,
                    format!("event {} has a currency but no positive amount", e.id),
                ));
            }
            let pool_ok = match e.pool {
                Some(Pool::Herbs) => t.herbs.iter().any(|h| h.weight > 0.0),
                Some(Pool::Fragments) => t.fragments.iter().any(|f| f.weight > 0.0),
                None => true,
            };
            if !pool_ok {
                return Err(bad(name, format!("event {} draws from an empty pool", e.id)));
            }
        }
        Ok(())
    }
}

impl Exploration {
    /// The table, decoded and checked once per load.
    pub fn load(ctx: &Ctx) -> Result<Rc<Self>, Error> {
        ctx.table()
    }
}

/// `checkin.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkin {
    /// Currency paid.
    pub currency: String,
    /// Its display name.
    #[serde(default)]
    pub currency_name: String,
    /// Reward by streak day.
    pub rewards: Vec<i64>,
}

impl Table for Checkin {
    const NAME: &'static str = tables::CHECKIN;

    fn check(&self) -> Result<(), Error> {
        let t = self;
        if t.rewards.is_empty() || t.rewards.iter().any(|r| *r < 0) {
            return Err(bad(
                tables::CHECKIN,
                "rewards must be a non-empty list of amounts >= 0",
            ));
        }
        Ok(())
    }
}

impl Checkin {
    /// The table, decoded and checked once per load.
    pub fn load(ctx: &Ctx) -> Result<Rc<Self>, Error> {
        ctx.table()
    }

    /// The reward for streak day `day` (1-based; cycles).
    pub fn reward(&self, day: i64) -> i64 {
        let len = self.rewards.len() as i64;
        let idx = (day - 1).rem_euclid(len.max(1)) as usize;
        self.rewards.get(idx).copied().unwrap_or(0)
    }
}

/// `calendar.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Calendar {
    /// Offset of the game day from UTC, in minutes.
    pub utc_offset_minutes: i64,
    /// Display name of the zone.
    #[serde(default)]
    pub zone: String,
}

impl Table for Calendar {
    const NAME: &'static str = tables::CALENDAR;
}

impl Calendar {
    /// The table, decoded once per load.
    pub fn load(ctx: &Ctx) -> Result<Rc<Self>, Error> {
        ctx.table()
    }

    /// The game day number of a time (days since 1970-01-01 in the game's zone).
    pub fn day(&self, now_ms: i64) -> i64 {
        (now_ms + self.utc_offset_minutes * 60_000).div_euclid(86_400_000)
    }

    /// The day's date as `YYYY-MM-DD`, for display.
    pub fn date(&self, day: i64) -> String {
        let (y, m, d) = civil_from_days(day);
        format!("{y:04}-{m:02}-{d:02}")
    }
}

/// Days since 1970-01-01 to a (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_675), (2023, 11, 14));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn shanghai_day_turns_at_16_utc() {
        let cal = Calendar {
            utc_offset_minutes: 480,
            zone: String::new(),
        };
        // 2023-11-14 15:59:59.999 UTC is 23:59:59.999 in Shanghai; one ms later it is the 15th there.
        let before = 1_699_977_599_999;
        assert_eq!(cal.date(cal.day(before)), "2023-11-14");
        assert_eq!(cal.date(cal.day(before + 1)), "2023-11-15");
    }
}
