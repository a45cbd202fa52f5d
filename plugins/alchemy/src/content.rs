//! The content tables (`content/*.toml`), decoded and checked once per load.
//!
//! Every number a designer may want to change lives in these tables; the code holds only the shape of
//! the rules. Each table is a [`Table`]: [`crate::Alchemy`]'s `prepare` decodes and checks it when
//! the host loads the plugin, so a table that does not decode or does not make sense refuses the
//! load (a `bad_content` fault), and every call shares the decoded table.

use std::collections::BTreeMap;
use std::rc::Rc;

use cauldron_sdk::abi::fault_codes;
use cauldron_sdk::{Ctx, Error, Table};
use serde::{Deserialize, Serialize};

/// Table names, as declared in the manifest.
pub mod tables {
    /// `content/herbs.toml`
    pub const HERBS: &str = "herbs";
    /// `content/recipes.toml`
    pub const RECIPES: &str = "recipes";
}

fn bad(table: &str, message: impl std::fmt::Display) -> Error {
    Error::fault(
        fault_codes::BAD_CONTENT,
        format!("content table `{table}`: {message}"),
    )
}

/// `herbs.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Herbs {
    /// Herb and pill categories.
    pub categories: Vec<Category>,
    /// Every herb.
    pub herbs: Vec<Herb>,
}

/// A herb or pill category.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Category {
    /// Key (`spirit`).
    pub key: String,
    /// Chinese name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Display colour.
    pub colour: String,
}

/// One herb.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Herb {
    /// Id; the item is `herb:<id>`.
    pub id: String,
    /// Chinese name.
    pub name: String,
    /// English gloss.
    pub name_en: String,
    /// Display value.
    pub base_value: i64,
    /// Category key.
    pub category: String,
    /// Flavour text.
    pub description: String,
}

impl Table for Herbs {
    const NAME: &'static str = tables::HERBS;

    fn check(&self) -> Result<(), Error> {
        for herb in &self.herbs {
            if !self.categories.iter().any(|c| c.key == herb.category) {
                return Err(bad(
                    tables::HERBS,
                    format!("herb `{}` has unknown category `{}`", herb.id, herb.category),
                ));
            }
        }
        Ok(())
    }
}

impl Herbs {
    /// The table, decoded and checked once per load.
    pub fn load(ctx: &Ctx) -> Result<Rc<Self>, Error> {
        ctx.table()
    }

    /// A herb by id.
    pub fn herb(&self, id: &str) -> Option<&Herb> {
        self.herbs.iter().find(|h| h.id == id)
    }
}

/// `recipes.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recipes {
    /// Whole-table rules.
    pub rules: Rules,
    /// Grades, by number.
    pub grades: Vec<Grade>,
    /// Every recipe.
    pub recipes: Vec<Recipe>,
}

/// Whole-table rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rules {
    /// Most fragments one purchase may buy.
    pub max_buy_quantity: i64,
    /// The currency fragments cost.
    pub price_currency: String,
}

/// A recipe grade (一品 … 九品).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grade {
    /// 1-9.
    pub grade: i64,
    /// Chinese name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Display-only difficulty.
    pub difficulty: f64,
    /// Chance that a craft succeeds, 0-1.
    pub success_rate: f64,
    /// Fragments that unlock a recipe of this grade.
    pub fragments: i64,
    /// Price of one fragment.
    pub fragment_price: i64,
}

/// One recipe (and the pill it makes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recipe {
    /// Id; items `fragment:<id>` and `pill:<id>`.
    pub id: String,
    /// Chinese pill name.
    pub name: String,
    /// English pill name.
    pub name_en: String,
    /// Grade number.
    pub grade: i64,
    /// Category key.
    pub category: String,
    /// Whether it can be bought, crafted and eaten yet.
    pub open: bool,
    /// Flavour text.
    pub description: String,
    /// Herb id → quantity consumed per craft.
    #[serde(default)]
    pub materials: BTreeMap<String, i64>,
    /// What eating the pill does.
    pub effect: PillEffect,
}

/// What a pill does when eaten; amounts scale with `growth^(level-1)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PillEffect {
    /// Adds to the `spirit` currency.
    Spirit {
        /// Amount at level 1.
        base: f64,
        /// Factor per level.
        growth: f64,
    },
    /// Adds to the `cultivation` stat.
    Cultivation {
        /// Amount at level 1.
        base: f64,
        /// Factor per level.
        growth: f64,
    },
    /// A timed buff to `attack`.
    AttackBuff {
        /// Amount at level 1.
        base: f64,
        /// Factor per level.
        growth: f64,
        /// How long it lasts.
        duration_ms: i64,
    },
    /// Raises the `du_jie_rate` stat.
    DuJieRate {
        /// Added per pill.
        amount: f64,
        /// Highest value.
        cap: f64,
        /// The stat's value when it was never set.
        default: f64,
    },
    /// Not open yet.
    None,
}

impl PillEffect {
    /// The level-scaled amount for a player of `level` (spirit, cultivation, attack).
    pub fn scaled(base: f64, growth: f64, level: f64) -> i64 {
        let level = if level.is_finite() { level.max(1.0) } else { 1.0 };
        let value = (base * growth.powf(level - 1.0)).floor();
        // `as` saturates; an absurd level gives a huge but finite amount, never a wrap-around.
        value as i64
    }
}

impl Table for Recipes {
    const NAME: &'static str = tables::RECIPES;

    fn check(&self) -> Result<(), Error> {
        let table = tables::RECIPES;
        if self.rules.max_buy_quantity < 1 {
            return Err(bad(table, "rules.max_buy_quantity must be at least 1"));
        }
        for g in &self.grades {
            if !(0.0..=1.0).contains(&g.success_rate) || g.fragments < 1 || g.fragment_price < 0 {
                return Err(bad(table, format!("grade {} is out of range", g.grade)));
            }
        }
        for r in &self.recipes {
            if self.grade(r.grade).is_none() {
                return Err(bad(
                    table,
                    format!("recipe `{}` has unknown grade {}", r.id, r.grade),
                ));
            }
            if r.materials.values().any(|&q| q < 1) {
                return Err(bad(
                    table,
                    format!("recipe `{}` has a material quantity below 1", r.id),
                ));
            }
        }
        Ok(())
    }
}

impl Recipes {
    /// The table, decoded and checked once per load.
    pub fn load(ctx: &Ctx) -> Result<Rc<Self>, Error> {
        ctx.table()
    }

    /// A grade by number.
    pub fn grade(&self, grade: i64) -> Option<&Grade> {
        self.grades.iter().find(|g| g.grade == grade)
    }

    /// A recipe by id, or a `not_found` rejection.
    pub fn recipe(&self, id: &str) -> Result<&Recipe, Error> {
        self.recipes
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| Error::not_found(format!("no recipe `{id}`")))
    }

    /// The grade of a recipe (checked at load, so always there).
    pub fn grade_of(&self, recipe: &Recipe) -> Result<&Grade, Error> {
        self.grade(recipe.grade)
            .ok_or_else(|| bad(tables::RECIPES, format!("recipe `{}` has no grade", recipe.id)))
    }
}
