//! The content tables (`content/*.toml`), each a [`Table`]: decoded once when the host loads the
//! plugin (`Plugin::prepare`) and shared by every call. A table that does not decode refuses the load.
//!
//! `herbs` and `recipes` are this plugin's own drop tables (what beasts and demons drop, by weight),
//! not the alchemy plugin's tables of the same names.

use cauldron_sdk::{Error, Table};
use serde::{Deserialize, Serialize};

use crate::battle::Fighter;

/// Table names, as declared in the manifest.
pub(crate) mod tables {
    /// `content/dungeon.toml`
    pub(crate) const DUNGEON: &str = "dungeon";
    /// `content/buffs.toml`
    pub(crate) const BUFFS: &str = "buffs";
    /// `content/monsters.toml`
    pub(crate) const MONSTERS: &str = "monsters";
    /// `content/herbs.toml`
    pub(crate) const HERBS: &str = "herbs";
    /// `content/recipes.toml`
    pub(crate) const RECIPES: &str = "recipes";
}

/// `base × f × (1 + growth × f)`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Growth {
    base: f64,
    growth: f64,
}

impl Growth {
    fn at(self, f: f64) -> f64 {
        (self.base * f * (1.0 + self.growth * f)).round()
    }
}

/// `base + per_floor × f`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Linear {
    base: f64,
    per_floor: f64,
}

impl Linear {
    fn at(self, f: f64) -> f64 {
        self.base + self.per_floor * f
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EnemyScaling {
    name: String,
    name_en: String,
    health: Growth,
    attack: Growth,
    defense: Growth,
    speed: Growth,
    crit_rate: Linear,
    combo_rate: Linear,
    counter_rate: Linear,
    dodge_rate: Linear,
    stun_rate: Linear,
    vampire_rate: Linear,
    resist: Linear,
    heal_boost: Linear,
    crit_damage_boost: Linear,
    crit_damage_reduce: Linear,
    final_damage_boost: Linear,
    final_damage_reduce: Linear,
    combat_boost: Linear,
    resistance_boost: Linear,
}

/// A dungeon difficulty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difficulty {
    /// Key (`normal`).
    pub key: String,
    /// Chinese name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Multiplies the guardian's health, attack and defense.
    pub enemy_mod: f64,
    /// Multiplies the rewards.
    pub reward_mod: f64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct RoundMod {
    max_rounds: u32,
    #[serde(rename = "mod")]
    factor: f64,
}

/// `dungeon.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DungeonTable {
    pub(crate) refreshes_per_run: u32,
    pub(crate) round_cap: u32,
    pub(crate) spirit_base: f64,
    pub(crate) spirit_growth: f64,
    pub(crate) stones_per_floor: i64,
    reward_base: f64,
    depth_cap: f64,
    depth_div: f64,
    round_mods: Vec<RoundMod>,
    enemy: EnemyScaling,
    pub(crate) difficulty: Vec<Difficulty>,
}

impl Table for DungeonTable {
    const NAME: &'static str = tables::DUNGEON;
}

impl DungeonTable {
    pub(crate) fn difficulty(&self, key: &str) -> Result<&Difficulty, Error> {
        self.difficulty.iter().find(|d| d.key == key).ok_or_else(|| {
            Error::fault(
                "bad_content",
                format!("difficulty `{key}` of the run is not in dungeon.toml"),
            )
        })
    }

    /// The guardian of floor `floor`.
    pub(crate) fn enemy_at(&self, floor: u32, enemy_mod: f64) -> Fighter {
        let e = &self.enemy;
        let f = f64::from(floor);
        // `resistance_boost` is folded into the resists, as it is for the player.
        let resist = e.resist.at(f) * (1.0 + e.resistance_boost.at(f).max(0.0));
        Fighter {
            name: format!("{} {floor}", e.name),
            health: (e.health.at(f) * enemy_mod).round(),
            attack: (e.attack.at(f) * enemy_mod).round(),
            defense: (e.defense.at(f) * enemy_mod).round(),
            speed: e.speed.at(f),
            crit_rate: e.crit_rate.at(f),
            combo_rate: e.combo_rate.at(f),
            counter_rate: e.counter_rate.at(f),
            stun_rate: e.stun_rate.at(f),
            dodge_rate: e.dodge_rate.at(f),
            vampire_rate: e.vampire_rate.at(f),
            crit_resist: resist,
            combo_resist: resist,
            counter_resist: resist,
            stun_resist: resist,
            dodge_resist: resist,
            vampire_resist: resist,
            heal_boost: e.heal_boost.at(f),
            crit_damage_boost: e.crit_damage_boost.at(f),
            crit_damage_reduce: e.crit_damage_reduce.at(f),
            final_damage_boost: e.final_damage_boost.at(f),
            final_damage_reduce: e.final_damage_reduce.at(f),
            combat_boost: e.combat_boost.at(f),
        }
    }

    /// `R = round(reward_base × reward_mod × min(depth_cap, 1 + ln(f+1)/depth_div) × round_mod)`.
    pub(crate) fn reward(&self, floor: u32, reward_mod: f64, rounds: u32) -> i64 {
        let depth = (1.0 + (f64::from(floor) + 1.0).ln() / self.depth_div).min(self.depth_cap);
        let round_mod = self
            .round_mods
            .iter()
            .find(|m| rounds <= m.max_rounds)
            .map_or(1.0, |m| m.factor);
        (self.reward_base * reward_mod * depth * round_mod).round() as i64
    }
}

/// How a buff effect changes a stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Op {
    /// `stat × (1 + value)`.
    Mul,
    /// `stat + value`.
    Add,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BuffEffect {
    pub(crate) stat: String,
    pub(crate) op: Op,
    pub(crate) value: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BuffDef {
    pub(crate) id: String,
    pub(crate) tier: String,
    pub(crate) name: String,
    pub(crate) name_en: String,
    pub(crate) description: String,
    pub(crate) effects: Vec<BuffEffect>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TierOdds {
    every: u32,
    epic: f64,
    rare: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tier {
    key: String,
    name: String,
    name_en: String,
    color: String,
}

/// `buffs.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Buffs {
    odds: Vec<TierOdds>,
    #[serde(default)]
    tier: Vec<Tier>,
    pub(crate) buff: Vec<BuffDef>,
}

impl Table for Buffs {
    const NAME: &'static str = tables::BUFFS;
}

impl Buffs {
    pub(crate) fn get(&self, id: &str) -> Result<&BuffDef, Error> {
        self.buff
            .iter()
            .find(|b| b.id == id)
            .ok_or_else(|| Error::fault("bad_content", format!("buff `{id}` is not in buffs.toml")))
    }

    /// `(epic, rare)` chances for a floor: the first row whose `every` divides it.
    pub(crate) fn odds_for(&self, floor: u32) -> (f64, f64) {
        self.odds
            .iter()
            .find(|o| o.every > 0 && floor.is_multiple_of(o.every))
            .map_or((0.0, 0.0), |o| (o.epic, o.rare))
    }
}

/// A beast of 降服妖兽.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Beast {
    /// Id, 1-9.
    pub id: i64,
    /// Chinese name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Realm tier.
    pub tier: String,
    /// Attack.
    pub attack: f64,
    /// Health.
    pub health: f64,
    /// Defense.
    pub defense: f64,
    /// Speed.
    pub speed: f64,
    /// Crit rate.
    pub crit_rate: f64,
    /// Combo rate.
    pub combo_rate: f64,
    /// Stun rate.
    pub stun_rate: f64,
    /// Dodge rate.
    pub dodge_rate: f64,
    /// Herb id dropped; empty for one random herb by weight.
    pub herb: String,
    /// How many.
    pub qty: i64,
}

/// What a demon drops besides stones and 修为.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DemonDrop {
    /// One recipe fragment chosen by weight.
    Fragment,
    /// `fragment:du_jie_pill`.
    DuJieFragment,
    /// `chest:equipment`.
    Equipment,
    /// `egg:pet`.
    Pet,
}

/// A target of 除魔卫道.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Demon {
    /// Id, 101-106.
    pub id: i64,
    /// Chinese name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Realm tier.
    pub tier: String,
    /// Attack.
    pub attack: f64,
    /// Health.
    pub health: f64,
    /// Defense.
    pub defense: f64,
    /// Speed.
    pub speed: f64,
    /// Crit rate.
    pub crit_rate: f64,
    /// Combo rate.
    pub combo_rate: f64,
    /// Stun rate.
    pub stun_rate: f64,
    /// Dodge rate.
    pub dodge_rate: f64,
    /// Extra drop.
    pub drop: DemonDrop,
    /// Chance of the extra drop.
    pub drop_chance: f64,
}

fn monster(name: &str, attack: f64, health: f64, defense: f64, speed: f64, rates: [f64; 4]) -> Fighter {
    Fighter {
        name: name.to_owned(),
        attack,
        health,
        defense,
        speed,
        crit_rate: rates[0],
        combo_rate: rates[1],
        stun_rate: rates[2],
        dodge_rate: rates[3],
        ..Fighter::default()
    }
}

impl Beast {
    pub(crate) fn fighter(&self) -> Fighter {
        let rates = [self.crit_rate, self.combo_rate, self.stun_rate, self.dodge_rate];
        monster(
            &self.name,
            self.attack,
            self.health,
            self.defense,
            self.speed,
            rates,
        )
    }
}

impl Demon {
    pub(crate) fn fighter(&self) -> Fighter {
        let rates = [self.crit_rate, self.combo_rate, self.stun_rate, self.dodge_rate];
        monster(
            &self.name,
            self.attack,
            self.health,
            self.defense,
            self.speed,
            rates,
        )
    }
}

/// `monsters.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Monsters {
    pub(crate) hunt_daily_cap: u32,
    pub(crate) slay_daily_cap: u32,
    pub(crate) spirit_base: f64,
    pub(crate) spirit_growth: f64,
    pub(crate) beast: Vec<Beast>,
    pub(crate) demon: Vec<Demon>,
}

impl Table for Monsters {
    const NAME: &'static str = tables::MONSTERS;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Herb {
    pub(crate) id: String,
    name: String,
    name_en: String,
    pub(crate) weight: f64,
}

/// `herbs.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Herbs {
    pub(crate) herb: Vec<Herb>,
}

impl Table for Herbs {
    const NAME: &'static str = tables::HERBS;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Recipe {
    pub(crate) id: String,
    name: String,
    name_en: String,
    pub(crate) weight: f64,
}

/// `recipes.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Recipes {
    pub(crate) recipe: Vec<Recipe>,
}

impl Table for Recipes {
    const NAME: &'static str = tables::RECIPES;
}
