//! The content tables (`content/*.toml`), decoded and checked once per load.
//!
//! Each table is a [`Table`] with its own checks; [`Tables::prepare`] (run by the plugin's
//! `prepare` when the host loads it) decodes all three and checks how they fit together. A table
//! that does not decode or does not make sense refuses the load with a `bad_content` fault naming
//! the table and the problem; every call then shares the decoded tables.

use std::collections::BTreeMap;
use std::rc::Rc;

use cauldron_sdk::abi::fault_codes;
use cauldron_sdk::{Content, Ctx, Error, Table};
use serde::{Deserialize, Serialize};

/// Table names, as declared in the manifest.
pub mod tables {
    /// `content/rules.toml`
    pub const RULES: &str = "rules";
    /// `content/qualities.toml`
    pub const QUALITIES: &str = "qualities";
    /// `content/slots.toml`
    pub const SLOTS: &str = "slots";
    /// Every table, in the order actions declare them.
    pub const ALL: [&str; 3] = [RULES, QUALITIES, SLOTS];
}

fn bad(table: &str, message: impl std::fmt::Display) -> Error {
    Error::fault(
        fault_codes::BAD_CONTENT,
        format!("content table `{table}`: {message}"),
    )
}

/// `rules.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RulesTable {
    /// Prices and limits.
    pub rules: Rules,
    /// Display names of every stat.
    pub stats: Vec<StatInfo>,
}

/// Prices and limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rules {
    /// Price of one draw.
    pub draw_price: i64,
    /// Currency draws cost.
    pub draw_currency: String,
    /// Allowed batch sizes.
    pub draw_counts: Vec<i64>,
    /// Currency enhancing costs.
    pub enhance_currency: String,
    /// Enhancing to n+1 costs this × (n+1).
    pub enhance_cost_per_level: i64,
    /// Stat multiplier per enhancement.
    pub enhance_factor: f64,
    /// Highest enhancement level.
    pub max_enhance_level: i64,
    /// Currency reforging costs.
    pub reforge_currency: String,
    /// Price of one reforge roll.
    pub reforge_cost: i64,
    /// Currency selling pays.
    pub sell_currency: String,
    /// Most pieces a player may hold.
    pub max_items: i64,
    /// The chest item.
    pub chest_item: String,
}

/// A stat's display names and kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatInfo {
    /// Stat key.
    pub key: String,
    /// Chinese name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// `flat` (whole numbers) or `rate` (fractions).
    pub kind: String,
}

/// `qualities.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QualitiesTable {
    /// Lowest first.
    pub qualities: Vec<Quality>,
}

/// One quality tier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Quality {
    /// Key (`common` … `mythic`).
    pub key: String,
    /// 1 (common) to 6 (mythic).
    pub rank: i64,
    /// Chinese name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Display colour.
    pub colour: String,
    /// Drop chance in percent.
    pub odds: f64,
    /// Stones paid when sold.
    pub sell_price: i64,
    /// Whether a drop is announced to everyone.
    #[serde(default)]
    pub announce: bool,
    /// Stat lines per group.
    pub lines: Lines,
    /// Inclusive whole-number range per flat stat.
    pub flat: BTreeMap<String, [i64; 2]>,
    /// Inclusive range of every rate stat.
    pub rate: [f64; 2],
}

/// Stat lines per group.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Lines {
    /// Flat stats.
    #[serde(default)]
    pub base: usize,
    /// Combat rates.
    #[serde(default)]
    pub combat: usize,
    /// Resistances.
    #[serde(default)]
    pub resist: usize,
    /// Special stats.
    #[serde(default)]
    pub special: usize,
}

/// `slots.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlotsTable {
    /// Every slot.
    pub slots: Vec<Slot>,
}

/// One equipment slot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Slot {
    /// Key (`faqi`).
    pub key: String,
    /// Chinese name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Flavour text.
    #[serde(default)]
    pub description: String,
    /// Stats it can roll, per group.
    pub pools: Pools,
    /// Quality key → `[Chinese, English]` prefixes.
    pub prefixes: BTreeMap<String, Vec<[String; 2]>>,
}

/// Stats a slot can roll, per group.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pools {
    /// Flat stats.
    #[serde(default)]
    pub base: Vec<String>,
    /// Combat rates.
    #[serde(default)]
    pub combat: Vec<String>,
    /// Resistances.
    #[serde(default)]
    pub resist: Vec<String>,
    /// Special stats.
    #[serde(default)]
    pub special: Vec<String>,
}

impl Table for RulesTable {
    const NAME: &'static str = tables::RULES;

    fn check(&self) -> Result<(), Error> {
        let r = &self.rules;
        if r.draw_price < 0 || r.enhance_cost_per_level < 0 || r.reforge_cost < 0 || r.max_items < 1 {
            return Err(bad(
                tables::RULES,
                "prices must not be negative and max_items at least 1",
            ));
        }
        if !(r.enhance_factor.is_finite() && r.enhance_factor > 0.0) {
            return Err(bad(tables::RULES, "enhance_factor must be positive"));
        }
        Ok(())
    }
}

impl Table for QualitiesTable {
    const NAME: &'static str = tables::QUALITIES;

    fn check(&self) -> Result<(), Error> {
        if self.qualities.is_empty() {
            return Err(bad(tables::QUALITIES, "needs at least one quality"));
        }
        if self.qualities.iter().map(|q| q.odds.max(0.0)).sum::<f64>() <= 0.0 {
            return Err(bad(tables::QUALITIES, "odds must not all be zero"));
        }
        for q in &self.qualities {
            if q.rate[0] > q.rate[1] || q.flat.values().any(|[lo, hi]| lo > hi) {
                return Err(bad(
                    tables::QUALITIES,
                    format!("quality `{}` has an empty range", q.key),
                ));
            }
        }
        Ok(())
    }
}

impl Table for SlotsTable {
    const NAME: &'static str = tables::SLOTS;

    fn check(&self) -> Result<(), Error> {
        if self.slots.is_empty() {
            return Err(bad(tables::SLOTS, "needs at least one slot"));
        }
        Ok(())
    }
}

/// All three tables, shared with every call.
#[derive(Debug, Clone)]
pub struct Tables {
    rules: Rc<RulesTable>,
    qualities: Rc<QualitiesTable>,
    slots: Rc<SlotsTable>,
}

impl Tables {
    /// Decode and check every table, then how they fit together. Runs once, when the host loads
    /// the plugin; an error refuses the load.
    pub fn prepare(content: &Content) -> Result<(), Error> {
        let t = Self {
            rules: content.table()?,
            qualities: content.table()?,
            slots: content.table()?,
        };
        t.check_across()
    }

    /// The tables, decoded and checked once per load (see [`Tables::prepare`]).
    pub fn load(ctx: &Ctx) -> Result<Self, Error> {
        Ok(Self {
            rules: ctx.table()?,
            qualities: ctx.table()?,
            slots: ctx.table()?,
        })
    }

    /// The checks that need more than one table: every slot's stats are known and every quality
    /// has prefixes and ranges for every slot.
    fn check_across(&self) -> Result<(), Error> {
        for slot in self.slots() {
            for stat in slot.pools.all() {
                if !self.stats().iter().any(|s| &s.key == stat) {
                    return Err(bad(
                        tables::SLOTS,
                        format!("slot `{}` names unknown stat `{stat}`", slot.key),
                    ));
                }
            }
            for q in self.qualities() {
                if slot.prefixes.get(&q.key).is_none_or(Vec::is_empty) {
                    return Err(bad(
                        tables::SLOTS,
                        format!("slot `{}` has no `{}` prefixes", slot.key, q.key),
                    ));
                }
                for stat in &slot.pools.base {
                    if !q.flat.contains_key(stat) {
                        return Err(bad(
                            tables::QUALITIES,
                            format!("quality `{}` has no range for `{stat}`", q.key),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Prices and limits (`rules.toml`).
    pub fn rules(&self) -> &Rules {
        &self.rules.rules
    }

    /// Stat display names (`rules.toml`).
    pub fn stats(&self) -> &[StatInfo] {
        &self.rules.stats
    }

    /// Qualities, lowest first.
    pub fn qualities(&self) -> &[Quality] {
        &self.qualities.qualities
    }

    /// Slots.
    pub fn slots(&self) -> &[Slot] {
        &self.slots.slots
    }

    /// A quality by key.
    pub fn quality(&self, key: &str) -> Result<&Quality, Error> {
        self.qualities()
            .iter()
            .find(|q| q.key == key)
            .ok_or_else(|| bad(tables::QUALITIES, format!("unknown quality `{key}`")))
    }

    /// A slot by key.
    pub fn slot(&self, key: &str) -> Result<&Slot, Error> {
        self.slots()
            .iter()
            .find(|s| s.key == key)
            .ok_or_else(|| bad(tables::SLOTS, format!("unknown slot `{key}`")))
    }

    /// Whether a stat is a whole-number (flat) stat.
    pub fn is_flat(&self, stat: &str) -> bool {
        self.stats().iter().any(|s| s.key == stat && s.kind == "flat")
    }
}

impl Pools {
    /// Every stat in every group.
    pub fn all(&self) -> impl Iterator<Item = &String> {
        self.base
            .iter()
            .chain(&self.combat)
            .chain(&self.resist)
            .chain(&self.special)
    }
}
