//! The alchemy plugin: herbs, recipe fragments, crafting pills and eating them.
//!
//! Actions: `recipes` (the recipe book), `buy_fragment`, `craft`, `eat`. Every action first unlocks any
//! recipe whose fragments the player now holds enough of, so fragments dropped by other plugins are
//! never lost: they wait as items until the player next uses alchemy. See `README.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use cauldron_sdk::prelude::*;
use serde::{Deserialize, Serialize};

pub mod content;

use content::{Grade, Herbs, PillEffect, Recipe, Recipes, tables};

/// The alchemy plugin.
pub struct Alchemy;

/// Plugin-private state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlchemyState {
    /// Recipes the player has unlocked.
    #[serde(default)]
    pub unlocked: BTreeSet<String>,
}

/// The item id of a recipe's fragments.
pub fn fragment_item(recipe: &str) -> String {
    format!("fragment:{recipe}")
}

/// The item id of a recipe's pill.
pub fn pill_item(recipe: &str) -> String {
    format!("pill:{recipe}")
}

/// The item id of a herb.
pub fn herb_item(herb: &str) -> String {
    format!("herb:{herb}")
}

/// Counter of pills crafted successfully.
pub const PILLS_CRAFTED: &str = "pills_crafted";
/// Counter of pills eaten.
pub const PILLS_EATEN: &str = "pills_eaten";
/// Event sent when a recipe unlocks.
pub const EVENT_UNLOCKED: &str = "recipe_unlocked";

// ---------------------------------------------------------------------------------------------------
// Replies

/// One material line of a recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaterialView {
    /// Herb id.
    pub herb: String,
    /// Chinese name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Needed per craft.
    pub need: i64,
    /// Held now.
    pub have: i64,
}

/// What eating a pill does, at the player's current level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectView {
    /// `spirit`, `cultivation`, `attack_buff`, `du_jie_rate` or `none`.
    pub kind: String,
    /// The stat or currency it changes (empty for `none`).
    pub target: String,
    /// How much.
    pub amount: f64,
    /// For buffs: how long it lasts.
    pub duration_ms: i64,
}

/// A recipe as the player sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipeView {
    /// Recipe id.
    pub id: String,
    /// Chinese pill name.
    pub name: String,
    /// English pill name.
    pub name_en: String,
    /// Grade number.
    pub grade: i64,
    /// Grade name (一品).
    pub grade_name: String,
    /// Category key.
    pub category: String,
    /// Whether it is open at all.
    pub open: bool,
    /// Whether the player unlocked it.
    pub unlocked: bool,
    /// Fragments held.
    pub fragments: i64,
    /// Fragments that unlock it.
    pub fragments_needed: i64,
    /// Price of one fragment.
    pub fragment_price: i64,
    /// The true chance a craft succeeds.
    pub success_rate: f64,
    /// Materials per craft.
    pub materials: Vec<MaterialView>,
    /// Whether the player holds every material now.
    pub can_craft: bool,
    /// Pills of it held.
    pub pills: i64,
    /// What eating one does now.
    pub effect: EffectView,
}

/// A herb and how many the player holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HerbView {
    /// Herb id; the item is `herb:<id>`.
    pub id: String,
    /// Chinese name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Category key.
    pub category: String,
    /// Display value.
    pub base_value: i64,
    /// Held now.
    pub have: i64,
}

/// Reply of `recipes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipesReply {
    /// Every recipe.
    pub recipes: Vec<RecipeView>,
    /// Every herb.
    pub herbs: Vec<HerbView>,
    /// Recipes whose fragments arrived since the last alchemy action: shown unlocked here (with
    /// their fragments used up); the next `buy_fragment`, `craft` or `eat` records the unlock.
    pub newly_unlocked: Vec<String>,
    /// Pills crafted so far.
    pub pills_crafted: i64,
    /// Pills eaten so far.
    pub pills_eaten: i64,
}

/// Reply of `buy_fragment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuyReply {
    /// Recipe id.
    pub recipe: String,
    /// Fragments bought.
    pub quantity: i64,
    /// Price paid.
    pub cost: i64,
    /// The currency paid in.
    pub currency: String,
    /// Its balance afterwards.
    pub balance: i64,
    /// Fragments of the recipe held afterwards (after any unlock).
    pub fragments: i64,
    /// Fragments that unlock it.
    pub fragments_needed: i64,
    /// Whether the recipe is unlocked now.
    pub unlocked: bool,
    /// Recipes unlocked by this call.
    pub newly_unlocked: Vec<String>,
}

/// Reply of `craft`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CraftReply {
    /// Recipe id.
    pub recipe: String,
    /// Chinese pill name.
    pub name: String,
    /// English pill name.
    pub name_en: String,
    /// Whether a pill came out.
    pub success: bool,
    /// The chance it had.
    pub success_rate: f64,
    /// Herb id → quantity consumed (win or lose).
    pub consumed: BTreeMap<String, i64>,
    /// The pill item given on success.
    pub pill_item: Option<String>,
    /// Pills of this recipe held afterwards.
    pub pills: i64,
    /// Recipes unlocked by this call.
    pub newly_unlocked: Vec<String>,
}

/// Reply of `eat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EatReply {
    /// Recipe id.
    pub pill: String,
    /// Chinese pill name.
    pub name: String,
    /// English pill name.
    pub name_en: String,
    /// What it did.
    pub effect: EffectView,
    /// The changed stat or currency afterwards (for buffs: the buff's amount).
    pub new_value: f64,
    /// For buffs: when it ends.
    pub expires_ms: Option<i64>,
    /// Pills of this recipe left.
    pub pills_left: i64,
    /// Recipes unlocked by this call.
    pub newly_unlocked: Vec<String>,
}

// ---------------------------------------------------------------------------------------------------
// Params

#[derive(Debug, Deserialize)]
struct BuyParams {
    recipe: String,
    quantity: i64,
}

#[derive(Debug, Deserialize)]
struct CraftParams {
    recipe: String,
}

#[derive(Debug, Deserialize)]
struct EatParams {
    pill: String,
}

// ---------------------------------------------------------------------------------------------------
// Manifest

/// What every alchemy action reads.
const READS: &[Section] = &[
    Section::Stats,
    Section::Currencies,
    Section::Counters,
    Section::Items,
    Section::State,
];

/// The content tables every alchemy action needs.
const TABLES: &[&str] = &[tables::HERBS, tables::RECIPES];

impl Plugin for Alchemy {
    const ACTIONS: Actions = Actions::new(&[
        Action::new("recipes", recipe_book)
            .title("丹方 Recipe book")
            .description("Every recipe with its unlock progress, materials, true success rate and effect.")
            .reads(READS)
            .content(TABLES)
            .query(),
        Action::new("buy_fragment", buy_fragment)
            .title("购买残页 Buy fragments")
            .description("Buy fragments of a recipe; enough of them unlock it.")
            .params(&[
                Param::required("recipe", ParamType::String).description("Recipe id"),
                Param::required("quantity", ParamType::Integer)
                    .description("How many, from 1 to the number still needed to unlock (at most 100)"),
            ])
            .reads(READS)
            .content(TABLES),
        Action::new("craft", craft)
            .title("炼丹 Craft")
            .description("Consume the materials and try to make a pill; the grade sets the chance.")
            .params(&[
                Param::required("recipe", ParamType::String).description("Recipe id (must be unlocked)")
            ])
            .reads(READS)
            .content(TABLES),
        Action::new("eat", eat)
            .title("服用 Eat a pill")
            .description("Eat one pill for its effect, scaled by your level.")
            .params(&[Param::required("pill", ParamType::String).description("Recipe id of the pill")])
            .reads(READS)
            .content(TABLES),
    ]);

    fn prepare(content: &Content) -> Result<(), Error> {
        content.table::<Herbs>()?;
        content.table::<Recipes>()?;
        Ok(())
    }

    fn manifest() -> Manifest {
        Manifest {
            name: "alchemy".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi: cauldron_sdk::abi::ABI_VERSION,
            title: "炼丹 Alchemy".into(),
            description: "Collect recipe fragments, craft pills from herbs, and eat them.".into(),
            entity_kinds: vec![],
            actions: Self::ACTIONS.specs(),
            hooks: vec![],
        }
    }
}

export!(Alchemy);

// ---------------------------------------------------------------------------------------------------
// Rules

/// Unlock every open recipe whose fragments reached its threshold: take the threshold, mark it
/// unlocked, save the state and tell the player. Returns the ids unlocked.
/// The open recipes not yet unlocked whose fragments are complete, with the fragments each uses up.
fn ready_to_unlock(ctx: &Ctx, recipes: &Recipes, state: &AlchemyState) -> Result<Vec<(String, i64)>, Error> {
    let mut ready = Vec::new();
    for recipe in recipes.recipes.iter().filter(|r| r.open) {
        if state.unlocked.contains(&recipe.id) {
            continue;
        }
        let need = recipes.grade_of(recipe)?.fragments;
        if ctx.item(&fragment_item(&recipe.id)) >= need {
            ready.push((recipe.id.clone(), need));
        }
    }
    Ok(ready)
}

/// `recipes`, a query: the book as the next alchemy action will find it. It writes nothing, so a
/// recipe whose fragments arrived since the last alchemy action (from exploring or slaying) is shown
/// unlocked with those fragments used up and listed in `newly_unlocked`; the next `buy_fragment`,
/// `craft` or `eat` records the unlock (takes the fragments, emits the event).
fn recipe_book(ctx: &mut Ctx) -> Result<(), Error> {
    let recipes = &*Recipes::load(ctx)?;
    let herbs = &*Herbs::load(ctx)?;
    let mut state: AlchemyState = ctx.state()?;
    let ready = ready_to_unlock(ctx, recipes, &state)?;
    for (id, _) in &ready {
        state.unlocked.insert(id.clone());
    }
    let reply = RecipesReply {
        recipes: recipes
            .recipes
            .iter()
            .map(|r| {
                let mut view = recipe_view(ctx, recipes, herbs, &state, r)?;
                if let Some((_, need)) = ready.iter().find(|(id, _)| *id == r.id) {
                    view.fragments -= need;
                }
                Ok(view)
            })
            .collect::<Result<_, Error>>()?,
        herbs: herbs
            .herbs
            .iter()
            .map(|h| HerbView {
                id: h.id.clone(),
                name: h.name.clone(),
                name_en: h.name_en.clone(),
                category: h.category.clone(),
                base_value: h.base_value,
                have: ctx.item(&herb_item(&h.id)),
            })
            .collect(),
        newly_unlocked: ready.into_iter().map(|(id, _)| id).collect(),
        pills_crafted: ctx.counter(PILLS_CRAFTED),
        pills_eaten: ctx.counter(PILLS_EATEN),
    };
    ctx.reply(&reply)
}

/// What every writing action starts with: the recipes, the player's state, and the recipes it
/// unlocked on the way in (see [`unlock_ready`]).
fn begin(ctx: &mut Ctx) -> Result<(Rc<Recipes>, AlchemyState, Vec<String>), Error> {
    let recipes = Recipes::load(ctx)?;
    let mut state: AlchemyState = ctx.state()?;
    let newly_unlocked = unlock_ready(ctx, &recipes, &mut state)?;
    Ok((recipes, state, newly_unlocked))
}

/// Unlock every recipe whose fragments are complete: take the fragments, record it in the state and
/// emit the event. Every writing action runs this first.
fn unlock_ready(ctx: &mut Ctx, recipes: &Recipes, state: &mut AlchemyState) -> Result<Vec<String>, Error> {
    let mut unlocked = Vec::new();
    for (id, need) in ready_to_unlock(ctx, recipes, state)? {
        ctx.take_item(&fragment_item(&id), need, "not enough fragments")?;
        state.unlocked.insert(id.clone());
        unlocked.push(id);
    }
    if !unlocked.is_empty() {
        ctx.set_state(state)?;
        for id in &unlocked {
            let recipe = recipes.recipe(id)?;
            ctx.emit(
                EVENT_UNLOCKED,
                &BTreeMap::from([("recipe", id.as_str()), ("name", recipe.name.as_str())]),
            )?;
        }
    }
    Ok(unlocked)
}

fn effect_view(ctx: &Ctx, effect: &PillEffect) -> EffectView {
    let level = ctx.stat("level");
    let (kind, target, amount, duration_ms) = match *effect {
        PillEffect::Spirit { base, growth } => (
            "spirit",
            "spirit",
            PillEffect::scaled(base, growth, level) as f64,
            0,
        ),
        PillEffect::Cultivation { base, growth } => (
            "cultivation",
            "cultivation",
            PillEffect::scaled(base, growth, level) as f64,
            0,
        ),
        PillEffect::AttackBuff {
            base,
            growth,
            duration_ms,
        } => (
            "attack_buff",
            "attack",
            PillEffect::scaled(base, growth, level) as f64,
            duration_ms,
        ),
        PillEffect::DuJieRate { amount, .. } => ("du_jie_rate", "du_jie_rate", amount, 0),
        PillEffect::None => ("none", "", 0.0, 0),
    };
    EffectView {
        kind: kind.into(),
        target: target.into(),
        amount,
        duration_ms,
    }
}

fn materials_view(ctx: &Ctx, herbs: &Herbs, recipe: &Recipe) -> Vec<MaterialView> {
    recipe
        .materials
        .iter()
        .map(|(herb, &need)| {
            let (name, name_en) = herbs
                .herb(herb)
                .map(|h| (h.name.clone(), h.name_en.clone()))
                .unwrap_or_else(|| (herb.clone(), herb.clone()));
            MaterialView {
                herb: herb.clone(),
                name,
                name_en,
                need,
                have: ctx.item(&herb_item(herb)),
            }
        })
        .collect()
}

fn recipe_view(
    ctx: &Ctx,
    recipes: &Recipes,
    herbs: &Herbs,
    state: &AlchemyState,
    recipe: &Recipe,
) -> Result<RecipeView, Error> {
    let grade = recipes.grade_of(recipe)?;
    let materials = materials_view(ctx, herbs, recipe);
    Ok(RecipeView {
        id: recipe.id.clone(),
        name: recipe.name.clone(),
        name_en: recipe.name_en.clone(),
        grade: grade.grade,
        grade_name: grade.name.clone(),
        category: recipe.category.clone(),
        open: recipe.open,
        unlocked: state.unlocked.contains(&recipe.id),
        fragments: ctx.item(&fragment_item(&recipe.id)),
        fragments_needed: grade.fragments,
        fragment_price: grade.fragment_price,
        success_rate: grade.success_rate,
        can_craft: materials.iter().all(|m| m.have >= m.need),
        materials,
        pills: ctx.item(&pill_item(&recipe.id)),
        effect: effect_view(ctx, &recipe.effect),
    })
}

fn open_recipe<'r>(recipes: &'r Recipes, id: &str) -> Result<(&'r Recipe, &'r Grade), Error> {
    let recipe = recipes.recipe(id)?;
    if !recipe.open {
        return Err(Error::reject(
            "recipe_closed",
            format!("{} is not open yet", recipe.name),
        ));
    }
    Ok((recipe, recipes.grade_of(recipe)?))
}

fn buy_fragment(ctx: &mut Ctx) -> Result<(), Error> {
    let (recipes, mut state, mut newly_unlocked) = begin(ctx)?;
    let (recipes, state) = (&*recipes, &mut state);
    let p: BuyParams = ctx.params()?;
    let max = recipes.rules.max_buy_quantity;
    if !(1..=max).contains(&p.quantity) {
        return Err(Error::bad_params(format!("quantity must be from 1 to {max}")));
    }
    let (recipe, grade) = open_recipe(recipes, &p.recipe)?;
    if state.unlocked.contains(&recipe.id) {
        return Err(Error::reject(
            "already_unlocked",
            format!("{} is already unlocked", recipe.name),
        ));
    }
    let item = fragment_item(&recipe.id);
    let still_needed = grade.fragments - ctx.item(&item);
    if p.quantity > still_needed {
        return Err(Error::reject(
            "more_than_needed",
            format!("{} needs only {still_needed} more fragments", recipe.name),
        ));
    }
    let cost = grade
        .fragment_price
        .checked_mul(p.quantity)
        .ok_or_else(|| Error::bad_params("quantity is too large"))?;
    let currency = recipes.rules.price_currency.clone();
    ctx.spend(&currency, cost, "not enough spirit stones")?;
    ctx.add_item(&item, p.quantity);
    newly_unlocked.extend(unlock_ready(ctx, recipes, state)?);
    let reply = BuyReply {
        recipe: recipe.id.clone(),
        quantity: p.quantity,
        cost,
        balance: ctx.currency(&currency),
        currency,
        fragments: ctx.item(&item),
        fragments_needed: grade.fragments,
        unlocked: state.unlocked.contains(&recipe.id),
        newly_unlocked,
    };
    ctx.reply(&reply)
}

fn craft(ctx: &mut Ctx) -> Result<(), Error> {
    let (recipes, state, newly_unlocked) = begin(ctx)?;
    let recipes = &*recipes;
    let p: CraftParams = ctx.params()?;
    let (recipe, grade) = open_recipe(recipes, &p.recipe)?;
    if !state.unlocked.contains(&recipe.id) {
        return Err(Error::reject(
            "recipe_locked",
            format!("{} is not unlocked yet", recipe.name),
        ));
    }
    let missing: Vec<String> = recipe
        .materials
        .iter()
        .filter_map(|(herb, &need)| {
            let have = ctx.item(&herb_item(herb));
            (have < need).then(|| format!("{herb} {have}/{need}"))
        })
        .collect();
    if !missing.is_empty() {
        return Err(Error::insufficient(format!(
            "not enough herbs for {}: {}",
            recipe.name,
            missing.join(", ")
        )));
    }
    for (herb, &need) in &recipe.materials {
        ctx.take_item(&herb_item(herb), need, "not enough herbs")?;
    }
    let success = ctx.rng().chance(grade.success_rate);
    let item = pill_item(&recipe.id);
    if success {
        ctx.add_item(&item, 1);
        ctx.add_counter(PILLS_CRAFTED, 1);
    }
    let reply = CraftReply {
        recipe: recipe.id.clone(),
        name: recipe.name.clone(),
        name_en: recipe.name_en.clone(),
        success,
        success_rate: grade.success_rate,
        consumed: recipe.materials.clone(),
        pill_item: success.then(|| item.clone()),
        pills: ctx.item(&item),
        newly_unlocked,
    };
    ctx.reply(&reply)
}

/// The id of the buff a pill gives.
pub fn buff_id(recipe: &str) -> String {
    format!("alchemy:{recipe}")
}

fn eat(ctx: &mut Ctx) -> Result<(), Error> {
    let (recipes, _, newly_unlocked) = begin(ctx)?;
    let recipes = &*recipes;
    let p: EatParams = ctx.params()?;
    let id = p.pill.strip_prefix("pill:").unwrap_or(&p.pill);
    let (recipe, _) = open_recipe(recipes, id)?;
    let item = pill_item(&recipe.id);
    if ctx.item(&item) < 1 {
        return Err(Error::insufficient(format!("you have no {}", recipe.name)));
    }
    let effect = effect_view(ctx, &recipe.effect);
    let mut expires_ms = None;
    let new_value = match recipe.effect {
        PillEffect::Spirit { .. } => {
            let amount = effect.amount as i64;
            ctx.add_currency("spirit", amount);
            ctx.currency("spirit") as f64
        }
        PillEffect::Cultivation { .. } => {
            let value = ctx.stat("cultivation") + effect.amount;
            ctx.set_stat("cultivation", value);
            value
        }
        PillEffect::AttackBuff { duration_ms, .. } => {
            let expires = ctx.now_ms().saturating_add(duration_ms);
            ctx.add_buff(Buff {
                id: buff_id(&recipe.id),
                modifiers: vec![Modifier {
                    stat: "attack".into(),
                    add: effect.amount,
                    mul: 0.0,
                    source: format!("alchemy: {}", recipe.name),
                }],
                expires_ms: expires,
            });
            expires_ms = Some(expires);
            effect.amount
        }
        PillEffect::DuJieRate { amount, cap, default } => {
            let current = ctx.player().stats.get("du_jie_rate").copied().unwrap_or(default);
            if current >= cap {
                return Err(Error::reject(
                    "no_effect",
                    format!("your tribulation rate is already at its cap of {cap}"),
                ));
            }
            // Round away float dust so five pills make exactly 0.30, not 0.30000000000000004.
            let value = ((current + amount).min(cap) * 1e9).round() / 1e9;
            ctx.set_stat("du_jie_rate", value);
            value
        }
        PillEffect::None => {
            return Err(Error::reject(
                "no_effect",
                format!("{} has no effect yet", recipe.name),
            ));
        }
    };
    ctx.take_item(&item, 1, "no pill left")?;
    ctx.add_counter(PILLS_EATEN, 1);
    let reply = EatReply {
        pill: recipe.id.clone(),
        name: recipe.name.clone(),
        name_en: recipe.name_en.clone(),
        effect,
        new_value,
        expires_ms,
        pills_left: ctx.item(&item),
        newly_unlocked,
    };
    ctx.reply(&reply)
}

#[cfg(test)]
mod tests;
