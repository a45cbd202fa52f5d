//! The pet plugin: 灵宠 pets drawn with spirit stones or hatched from eggs, deployed one at a time for
//! flat stats and percentage bonuses, upgraded with pet essence, starred up by feeding other pets, and
//! released for stones.
//!
//! See `README.md` next to this crate for the actions, the entity data and the design choices behind them.

use std::collections::BTreeMap;
use std::rc::Rc;

use cauldron_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// The pet plugin.
pub struct Pets;

/// The entity kind of a pet.
pub const KIND: &str = "pet";

/// The content table, `content/pets.toml`.
pub const PETS_TABLE: &str = "pets";

/// Base stats: rounded to whole numbers, grown by upgrades.
const BASE_STATS: [&str; 4] = ["attack", "health", "defense", "speed"];

// ---------------------------------------------------------------------------------------------
// Content

/// One quality (rarity) of pet, from `pets.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// Key: common, uncommon, rare, epic, legendary, mythic.
    pub key: String,
    /// Chinese name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Display colour.
    pub color: String,
    /// True chance, in percent.
    pub odds: f64,
    /// Spirit stones for releasing one.
    pub release: i64,
    /// Starting attack/defense/health bonus (0.03 = +3 %).
    pub bonus: f64,
    /// Bonus per star.
    pub star_step: f64,
    /// How many base stats a new pet gets.
    pub base_stats: usize,
    /// How many combat rates.
    pub combat: usize,
    /// How many resists.
    pub resist: usize,
    /// How many special stats.
    pub special: usize,
    /// Possible names.
    pub names: Vec<String>,
    /// English names, in the same order.
    pub names_en: Vec<String>,
    /// Value ranges: `attack`, `health`, `defense`, `speed`, and `rate` for everything else.
    pub ranges: BTreeMap<String, [f64; 2]>,
}

/// Which stats exist in each group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pools {
    /// attack, health, defense, speed.
    pub base: Vec<String>,
    /// The six combat rates.
    pub combat: Vec<String>,
    /// The six resists.
    pub resist: Vec<String>,
    /// The seven special stats.
    pub special: Vec<String>,
}

/// `pets.toml`, decoded once per load ([`Plugin::prepare`]) and shared by every call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PetsTable {
    /// Spirit stones per drawn pet.
    pub draw_price: i64,
    /// Allowed draw counts.
    pub draw_counts: Vec<i64>,
    /// Upgrade cost per current level, in pet essence.
    pub essence_per_level: i64,
    /// Multiplier of base stats per upgrade.
    pub upgrade_factor: f64,
    /// Star-up chance when the food has the same name.
    pub star_same_name: f64,
    /// Star-up chance otherwise.
    pub star_other: f64,
    /// Stat pools.
    pub pools: Pools,
    /// Qualities, lowest first.
    pub quality: Vec<Quality>,
}

impl Table for PetsTable {
    const NAME: &'static str = PETS_TABLE;
}

impl PetsTable {
    /// The table, decoded once per load.
    pub fn load(ctx: &Ctx) -> Result<Rc<Self>, Error> {
        ctx.table()
    }

    fn quality(&self, key: &str) -> Result<&Quality, Error> {
        self.quality
            .iter()
            .find(|q| q.key == key)
            .ok_or_else(|| Error::fault("bad_content", format!("quality `{key}` is not in pets.toml")))
    }

    /// 1 for the lowest quality, up to 6 for mythic; 0 when unknown.
    fn rank(&self, key: &str) -> usize {
        self.quality
            .iter()
            .position(|q| q.key == key)
            .map_or(0, |i| i + 1)
    }
}

// ---------------------------------------------------------------------------------------------
// Entity data

/// A pet's entity data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pet {
    /// Name.
    pub name: String,
    /// Quality (rarity) key.
    pub quality: String,
    /// Level, from 1.
    pub level: u32,
    /// Stars, from 0.
    pub star: u32,
    /// Flat stats it gives while deployed, by shared stat name.
    pub stats: BTreeMap<String, f64>,
    /// Attack bonus while deployed (0.03 = +3 %).
    pub attack_bonus: f64,
    /// Defense bonus while deployed.
    pub defense_bonus: f64,
    /// Health bonus while deployed.
    pub health_bonus: f64,
    /// Whether it is the deployed pet.
    #[serde(default)]
    pub active: bool,
}

fn round_to(v: f64, step: f64) -> f64 {
    (v / step).round() * step
}

/// The attack/defense/health bonus for a quality at a star and level.
pub fn bonus_for(q: &Quality, star: u32, level: u32) -> f64 {
    let b = q.bonus;
    let v = b
        + f64::from(star) * q.star_step
        + f64::from(level.saturating_sub(1)) * b * 0.1
        + f64::from(star / 5) * b * 0.5;
    round_to(v, 1e-6)
}

impl Pet {
    fn refresh_bonus(&mut self, q: &Quality) {
        let b = bonus_for(q, self.star, self.level);
        self.attack_bonus = b;
        self.defense_bonus = b;
        self.health_bonus = b;
    }
}

fn pick_stats(rng: &mut Rng, pool: &[String], n: usize) -> Vec<String> {
    let mut all = pool.to_vec();
    rng.shuffle(&mut all);
    all.truncate(n);
    all
}

/// Draw a quality by the table's odds.
pub fn roll_quality<'t>(rng: &mut Rng, table: &'t PetsTable) -> Result<&'t Quality, Error> {
    let weights: Vec<f64> = table.quality.iter().map(|q| q.odds).collect();
    let i = rng
        .weighted(&weights)
        .ok_or_else(|| Error::fault("bad_content", "pets.toml has no quality with positive odds"))?;
    Ok(&table.quality[i])
}

/// A new level-1, 0-star pet of a random quality.
pub fn generate(rng: &mut Rng, table: &PetsTable) -> Result<Pet, Error> {
    let q = roll_quality(rng, table)?;
    let name = rng
        .pick(&q.names)
        .cloned()
        .ok_or_else(|| Error::fault("bad_content", format!("quality `{}` has no names", q.key)))?;
    let mut stats = BTreeMap::new();
    let groups = [
        (&table.pools.base, q.base_stats),
        (&table.pools.combat, q.combat),
        (&table.pools.resist, q.resist),
        (&table.pools.special, q.special),
    ];
    for (pool, n) in groups {
        for stat in pick_stats(rng, pool, n) {
            let is_base = BASE_STATS.contains(&stat.as_str());
            let range_key = if is_base { stat.as_str() } else { "rate" };
            let [lo, hi] = *q.ranges.get(range_key).ok_or_else(|| {
                Error::fault(
                    "bad_content",
                    format!("quality `{}` has no `{range_key}` range", q.key),
                )
            })?;
            let v = rng.range_f64(lo, hi);
            let v = if is_base { v.round() } else { round_to(v, 0.001) };
            stats.insert(stat, v);
        }
    }
    let mut pet = Pet {
        name,
        quality: q.key.clone(),
        level: 1,
        star: 0,
        stats,
        attack_bonus: 0.0,
        defense_bonus: 0.0,
        health_bonus: 0.0,
        active: false,
    };
    pet.refresh_bonus(q);
    Ok(pet)
}

/// The star-up chance of feeding `food` to `pet`.
pub fn star_chance(table: &PetsTable, pet: &Pet, food: &Pet) -> f64 {
    if pet.name == food.name {
        table.star_same_name
    } else {
        table.star_other
    }
}

/// Try to add a star (the food is eaten either way by the caller). Returns whether it worked.
pub fn try_star_up(rng: &mut Rng, table: &PetsTable, pet: &mut Pet, food: &Pet) -> Result<bool, Error> {
    if rng.chance(star_chance(table, pet, food)) {
        pet.star += 1;
        pet.refresh_bonus(table.quality(&pet.quality)?);
        Ok(true)
    } else {
        Ok(false)
    }
}

// ---------------------------------------------------------------------------------------------
// Replies and params

/// A pet with its entity id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PetView {
    /// Entity id.
    pub id: String,
    /// Its data.
    pub pet: Pet,
}

/// Reply of `draw` and `hatch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Obtained {
    /// The new pets.
    pub pets: Vec<PetView>,
    /// Spirit stones spent.
    pub spirit_stones_spent: i64,
    /// Eggs used.
    pub eggs_used: i64,
}

/// Reply of `deploy`, `recall` and `upgrade`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PetReply {
    /// What happened.
    pub message: String,
    /// The pet afterwards.
    pub pet: PetView,
    /// Pet essence spent.
    pub essence_spent: i64,
}

/// Reply of `star_up`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StarUpReply {
    /// Whether the star was added.
    pub success: bool,
    /// The chance it had.
    pub chance: f64,
    /// The pet afterwards.
    pub pet: PetView,
    /// The id of the pet that was eaten.
    pub food: String,
}

/// Reply of `release`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseReply {
    /// The released pet's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Spirit stones received.
    pub spirit_stones: i64,
}

/// Reply of `batch_release`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchReleaseReply {
    /// Every pet released, each with the stones it fetched.
    pub released: Vec<ReleaseReply>,
    /// How many.
    pub count: usize,
    /// Spirit stones received in all.
    pub spirit_stones: i64,
}

/// Reply of `list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListReply {
    /// The page of pets that pass the filters: the deployed one first, then by quality, stars and
    /// level (best first).
    pub pets: Vec<PetView>,
    /// Pets held, whatever the filters.
    pub total: usize,
    /// Pets that pass the filters (on every page).
    pub matched: usize,
    /// This page, from 1.
    pub page: usize,
    /// Pages of `page_size` the matches fill (1 when no `page_size` was asked for).
    pub pages: usize,
    /// The page size asked for; `None` lists every match on one page.
    pub page_size: Option<usize>,
}

pub use cauldron_sdk::paging::MAX_PAGE_SIZE;

/// Payload of the `rare_pet` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RarePet {
    /// Who got it.
    pub player: String,
    /// Pet name.
    pub name: String,
    /// Quality key.
    pub quality: String,
    /// Quality's Chinese name.
    pub quality_name: String,
}

#[derive(Deserialize)]
struct DrawParams {
    count: Option<i64>,
}

#[derive(Deserialize)]
struct IdParams {
    id: Option<String>,
}

#[derive(Deserialize)]
struct StarParams {
    id: Option<String>,
    food: Option<String>,
}

/// Keys given as a list (`["common", "rare"]`) or as one comma-separated string (`"common,rare"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Keys {
    List(Vec<String>),
    Text(String),
}

/// Quality keys from `keys`, each checked against the table; at least one.
fn quality_keys(table: &PetsTable, keys: &Keys, param: &str) -> Result<Vec<String>, Error> {
    let raw: Vec<&str> = match keys {
        Keys::List(v) => v.iter().map(String::as_str).collect(),
        Keys::Text(t) => t.split(',').collect(),
    };
    let keys: Vec<String> = raw
        .into_iter()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect();
    if keys.is_empty() {
        return Err(Error::bad_params(format!("`{param}` names no quality")));
    }
    if let Some(k) = keys.iter().find(|k| table.rank(k) == 0) {
        return Err(Error::bad_params(format!("`{param}`: unknown quality `{k}`")));
    }
    Ok(keys)
}

#[derive(Deserialize)]
struct ListParams {
    quality: Option<Keys>,
    active: Option<bool>,
    page: Option<i64>,
    page_size: Option<i64>,
}

#[derive(Deserialize)]
struct BatchReleaseParams {
    qualities: Option<Keys>,
}

fn required<T>(v: Option<T>, name: &str) -> Result<T, Error> {
    v.ok_or_else(|| Error::bad_params(format!("`{name}` is required")))
}

// ---------------------------------------------------------------------------------------------
// Manifest

/// The `id` param of the actions on one pet.
const ID: Param = Param::required("id", ParamType::Entity).of(KIND);

impl Plugin for Pets {
    const ACTIONS: Actions = Actions::new(&[
        Action::new("info", info)
            .title("灵宠图鉴 Pet guide")
            .description("Qualities with their true odds, colours, names and prices.")
            .content(&[PETS_TABLE])
            .query(),
        Action::new("draw", draw)
            .title("灵宠抽奖 Draw pets")
            .description("Draw 1 or 10 pets for 100 spirit stones each.")
            .params(&[Param::required("count", ParamType::Integer)
                .of("1,10")
                .description("How many pets: 1 or 10.")])
            .reads(&[Section::Currencies])
            .content(&[PETS_TABLE]),
        Action::new("hatch", hatch)
            .title("孵化 Hatch egg")
            .description("Hatch one pet egg (egg:pet) into a random pet.")
            .reads(&[Section::Items])
            .content(&[PETS_TABLE]),
        Action::new("deploy", deploy)
            .title("出战 Deploy")
            .description("Send a pet into battle; it replaces the deployed one.")
            .params(&[ID.description("The pet to deploy.")])
            .reads(&[Section::Entities])
            .content(&[PETS_TABLE]),
        Action::new("recall", recall)
            .title("召回 Recall")
            .description("Call the deployed pet back.")
            .params(&[ID.description("The deployed pet.")])
            .reads(&[Section::Entities])
            .content(&[PETS_TABLE]),
        Action::new("upgrade", upgrade)
            .title("升级 Upgrade")
            .description("Raise a pet's level for level × 10 pet essence; its base stats grow ×1.1.")
            .params(&[ID.description("The pet to upgrade.")])
            .reads(&[Section::Currencies, Section::Entities])
            .content(&[PETS_TABLE]),
        Action::new("star_up", star_up)
            .title("升星 Star up")
            .description(
                "Feed a pet of the same quality to add a star (100 % with the same name, else 30 %). \
                 The food is eaten either way.",
            )
            .params(&[
                ID.description("The pet to star up."),
                Param::required("food", ParamType::Entity)
                    .of(KIND)
                    .description("The pet to feed it (same quality, not deployed)."),
            ])
            .reads(&[Section::Entities])
            .content(&[PETS_TABLE]),
        Action::new("release", release)
            .title("放生 Release")
            .description("Release a pet that is not deployed, for spirit stones by quality.")
            .params(&[ID.description("The pet to release.")])
            .reads(&[Section::Entities])
            .content(&[PETS_TABLE]),
        Action::new("batch_release", batch_release)
            .title("批量放生 Release in bulk")
            .description(
                "Release every pet of the given qualities that is not deployed, each for its \
                 quality's price.",
            )
            .params(&[Param::required("qualities", ParamType::String)
                .description("Quality keys, comma-separated (common,uncommon,rare,epic,legendary,mythic).")])
            .reads(&[Section::Entities])
            .content(&[PETS_TABLE]),
        Action::new("list", list)
            .title("灵宠列表 Pet list")
            .description("The pets held, filtered and paged if asked, with counts.")
            .params(&[
                Param::optional("quality", ParamType::String)
                    .description("Only these qualities, comma-separated."),
                Param::optional("active", ParamType::Bool)
                    .description("true: only the deployed pet; false: only pets not deployed."),
                Param::optional("page", ParamType::Integer).description("Page, from 1 (default 1)."),
                Param::optional("page_size", ParamType::Integer)
                    .description("Pets per page, 1 to 100 (default: every match)."),
            ])
            .reads(&[Section::Entities])
            .content(&[PETS_TABLE])
            .query(),
    ]);

    fn prepare(content: &Content) -> Result<(), Error> {
        content.table::<PetsTable>()?;
        Ok(())
    }

    fn manifest() -> Manifest {
        Manifest {
            name: "pet".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi: cauldron_sdk::abi::ABI_VERSION,
            title: "灵宠 Pets".into(),
            description: "Draw, hatch, deploy, upgrade, star up and release pets.".into(),
            entity_kinds: vec![KIND.into()],
            actions: Self::ACTIONS.specs(),
            hooks: vec![HookSpec {
                name: "modifiers".into(),
                reads: vec![Section::Entities],
                content: vec![],
            }],
        }
    }

    fn modifiers(ctx: &mut Ctx) -> Result<Vec<Modifier>, Error> {
        let Some(pet) = deployed(ctx) else {
            return Ok(Vec::new());
        };
        Ok(pet_modifiers(&pet))
    }
}

/// `info`, a query: the pets table as it is.
fn info(ctx: &mut Ctx) -> Result<(), Error> {
    let table = PetsTable::load(ctx)?;
    ctx.reply(&*table)
}

export!(Pets);

/// The modifiers a deployed pet gives: its flat stats, and its bonuses on attack, defense and health.
pub fn pet_modifiers(pet: &Pet) -> Vec<Modifier> {
    let source = format!("pet: {}", pet.name);
    let mut by_stat: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (stat, v) in &pet.stats {
        by_stat.entry(stat.as_str()).or_default().0 += v;
    }
    for (stat, b) in [
        ("attack", pet.attack_bonus),
        ("defense", pet.defense_bonus),
        ("health", pet.health_bonus),
    ] {
        by_stat.entry(stat).or_default().1 += b;
    }
    by_stat
        .into_iter()
        .map(|(stat, (add, mul))| Modifier {
            stat: stat.into(),
            add,
            mul,
            source: source.clone(),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Actions

/// The deployed pet, if any (the first by id should data ever hold two).
fn deployed(ctx: &Ctx) -> Option<Pet> {
    let mut active: Vec<(&str, Pet)> = ctx
        .entities(KIND)
        .filter_map(|e| Some((e.id.as_str(), e.data.decode::<Pet>().ok()?)))
        .filter(|(_, p)| p.active)
        .collect();
    active.sort_by(|a, b| a.0.cmp(b.0));
    active.into_iter().next().map(|(_, p)| p)
}

/// What the `pets` leaderboard row shows: the deployed pet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PetBoardRow {
    /// Pet name.
    pub name: String,
    /// Quality key.
    pub quality: String,
    /// Quality's Chinese name.
    pub quality_name: String,
    /// Quality's English name.
    pub quality_name_en: String,
    /// Quality colour.
    pub colour: String,
    /// Stars.
    pub star: u32,
    /// Level.
    pub level: u32,
}

/// The plugin's state: only what it publishes next to its leaderboard row (`boards.pets`, shown by
/// the host's leaderboard route); pets themselves are entities.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Board name → what the row is about; empty with no pet deployed.
    #[serde(default)]
    pub boards: BTreeMap<String, PetBoardRow>,
}

/// Leaderboard `pets`: the deployed pet's quality rank, then star, then level; and the row's
/// description in the plugin state.
fn update_score(ctx: &mut Ctx, table: &PetsTable) -> Result<(), Error> {
    let pet = deployed(ctx);
    let score = pet.as_ref().map_or(0.0, |p| {
        let rank = table.rank(&p.quality) as f64;
        rank * 1e6 + f64::from(p.star.min(999)) * 1e3 + f64::from(p.level.min(999))
    });
    ctx.set_score("pets", score);
    let mut state = State::default();
    if let Some(p) = pet {
        let q = table.quality(&p.quality)?;
        state.boards.insert(
            "pets".into(),
            PetBoardRow {
                name: p.name,
                quality: q.key.clone(),
                quality_name: q.name.clone(),
                quality_name_en: q.name_en.clone(),
                colour: q.color.clone(),
                star: p.star,
                level: p.level,
            },
        );
    }
    ctx.set_state(&state)
}

fn create_pets(ctx: &mut Ctx, table: &PetsTable, n: i64) -> Result<Vec<PetView>, Error> {
    let mut out = Vec::new();
    for _ in 0..n {
        let pet = generate(ctx.rng(), table)?;
        let id = ctx.create_entity(KIND, &pet)?;
        let q = table.quality(&pet.quality)?;
        if table.rank(&pet.quality) >= table.rank("epic") {
            let event = RarePet {
                player: ctx.player().name.clone(),
                name: pet.name.clone(),
                quality: q.key.clone(),
                quality_name: q.name.clone(),
            };
            if table.rank(&pet.quality) >= table.rank("legendary") {
                ctx.emit_global("rare_pet", &event)?;
            } else {
                ctx.emit("rare_pet", &event)?;
            }
        }
        out.push(PetView { id, pet });
    }
    Ok(out)
}

fn draw(ctx: &mut Ctx) -> Result<(), Error> {
    let p: DrawParams = ctx.params()?;
    let table = PetsTable::load(ctx)?;
    let count = required(p.count, "count")?;
    if !table.draw_counts.contains(&count) {
        return Err(Error::bad_params(format!(
            "`count` must be one of {:?}",
            table.draw_counts
        )));
    }
    let price = table.draw_price * count;
    ctx.spend(
        "spirit_stones",
        price,
        format_args!("{count} draw(s) cost {price} spirit stones"),
    )?;
    let pets = create_pets(ctx, &table, count)?;
    ctx.reply(&Obtained {
        pets,
        spirit_stones_spent: price,
        eggs_used: 0,
    })
}

fn hatch(ctx: &mut Ctx) -> Result<(), Error> {
    let table = PetsTable::load(ctx)?;
    ctx.take_item("egg:pet", 1, "you have no pet egg to hatch")?;
    let pets = create_pets(ctx, &table, 1)?;
    ctx.reply(&Obtained {
        pets,
        spirit_stones_spent: 0,
        eggs_used: 1,
    })
}

fn load(ctx: &Ctx, id: &str) -> Result<Pet, Error> {
    ctx.entity_data::<Pet>(KIND, id)
}

fn deploy(ctx: &mut Ctx) -> Result<(), Error> {
    let p: IdParams = ctx.params()?;
    let id = required(p.id, "id")?;
    let table = PetsTable::load(ctx)?;
    let mut pet = load(ctx, &id)?;
    if pet.active {
        return ctx.reply(&PetReply {
            message: format!("{} is already deployed", pet.name),
            pet: PetView { id, pet },
            essence_spent: 0,
        });
    }
    let others: Vec<(String, Pet)> = ctx
        .entities(KIND)
        .filter(|e| e.id != id)
        .filter_map(|e| Some((e.id.clone(), e.data.decode::<Pet>().ok()?)))
        .filter(|(_, p)| p.active)
        .collect();
    for (other_id, mut other) in others {
        other.active = false;
        ctx.update_entity(&other_id, &other)?;
    }
    pet.active = true;
    ctx.update_entity(&id, &pet)?;
    update_score(ctx, &table)?;
    ctx.reply(&PetReply {
        message: format!("{} is deployed", pet.name),
        pet: PetView { id, pet },
        essence_spent: 0,
    })
}

fn recall(ctx: &mut Ctx) -> Result<(), Error> {
    let p: IdParams = ctx.params()?;
    let id = required(p.id, "id")?;
    let table = PetsTable::load(ctx)?;
    let mut pet = load(ctx, &id)?;
    if !pet.active {
        return Err(Error::reject(
            "not_active",
            format!("{} is not deployed", pet.name),
        ));
    }
    pet.active = false;
    ctx.update_entity(&id, &pet)?;
    update_score(ctx, &table)?;
    ctx.reply(&PetReply {
        message: format!("{} is recalled", pet.name),
        pet: PetView { id, pet },
        essence_spent: 0,
    })
}

fn upgrade(ctx: &mut Ctx) -> Result<(), Error> {
    let p: IdParams = ctx.params()?;
    let id = required(p.id, "id")?;
    let table = PetsTable::load(ctx)?;
    let mut pet = load(ctx, &id)?;
    let cost = i64::from(pet.level) * table.essence_per_level;
    ctx.spend(
        "pet_essence",
        cost,
        format_args!("level {} → {} needs {cost} pet essence", pet.level, pet.level + 1),
    )?;
    pet.level += 1;
    for stat in BASE_STATS {
        if let Some(v) = pet.stats.get_mut(stat) {
            *v = (*v * table.upgrade_factor).round();
        }
    }
    pet.refresh_bonus(table.quality(&pet.quality)?);
    ctx.update_entity(&id, &pet)?;
    if pet.active {
        update_score(ctx, &table)?;
    }
    ctx.reply(&PetReply {
        message: format!("{} reached level {}", pet.name, pet.level),
        pet: PetView { id, pet },
        essence_spent: cost,
    })
}

fn star_up(ctx: &mut Ctx) -> Result<(), Error> {
    let p: StarParams = ctx.params()?;
    let id = required(p.id, "id")?;
    let food_id = required(p.food, "food")?;
    if id == food_id {
        return Err(Error::bad_params("a pet cannot be fed to itself"));
    }
    let table = PetsTable::load(ctx)?;
    let mut pet = load(ctx, &id)?;
    let food = load(ctx, &food_id)?;
    if food.quality != pet.quality {
        return Err(Error::reject(
            "wrong_rarity",
            format!(
                "{} is {}, {} is {}: star-up needs the same quality",
                food.name, food.quality, pet.name, pet.quality
            ),
        ));
    }
    if food.active {
        return Err(Error::reject(
            "food_active",
            format!("{} is deployed; recall it before feeding it", food.name),
        ));
    }
    let chance = star_chance(&table, &pet, &food);
    let success = try_star_up(ctx.rng(), &table, &mut pet, &food)?;
    ctx.delete_entity(&food_id);
    if success {
        ctx.update_entity(&id, &pet)?;
        if pet.active {
            update_score(ctx, &table)?;
        }
    }
    ctx.reply(&StarUpReply {
        success,
        chance,
        pet: PetView { id, pet },
        food: food_id,
    })
}

fn release(ctx: &mut Ctx) -> Result<(), Error> {
    let p: IdParams = ctx.params()?;
    let id = required(p.id, "id")?;
    let table = PetsTable::load(ctx)?;
    let pet = load(ctx, &id)?;
    if pet.active {
        return Err(Error::reject(
            "pet_active",
            format!("{} is deployed; recall it before releasing it", pet.name),
        ));
    }
    let stones = table.quality(&pet.quality)?.release;
    ctx.delete_entity(&id);
    ctx.add_currency("spirit_stones", stones);
    ctx.reply(&ReleaseReply {
        id,
        name: pet.name,
        spirit_stones: stones,
    })
}

/// Every pet held, decoded (a pet whose data does not decode is a fault).
fn all_pets(ctx: &Ctx) -> Result<Vec<PetView>, Error> {
    ctx.entities(KIND)
        .map(|e| {
            e.data
                .decode::<Pet>()
                .map(|pet| PetView {
                    id: e.id.clone(),
                    pet,
                })
                .map_err(|err| {
                    Error::fault(
                        cauldron_sdk::abi::fault_codes::INTERNAL,
                        format!("pet `{}` data: {err}", e.id),
                    )
                })
        })
        .collect()
}

fn batch_release(ctx: &mut Ctx) -> Result<(), Error> {
    let p: BatchReleaseParams = ctx.params()?;
    let table = PetsTable::load(ctx)?;
    let qualities = quality_keys(&table, &required(p.qualities, "qualities")?, "qualities")?;
    let mut released = Vec::new();
    for PetView { id, pet } in all_pets(ctx)? {
        if pet.active || !qualities.contains(&pet.quality) {
            continue;
        }
        let stones = table.quality(&pet.quality)?.release;
        ctx.delete_entity(&id);
        released.push(ReleaseReply {
            id,
            name: pet.name,
            spirit_stones: stones,
        });
    }
    if released.is_empty() {
        return Err(Error::reject(
            "nothing_to_release",
            "no pet of those qualities is waiting to be released (the deployed pet never is)",
        ));
    }
    let stones = released
        .iter()
        .map(|r| r.spirit_stones)
        .fold(0, i64::saturating_add);
    ctx.add_currency("spirit_stones", stones);
    ctx.reply(&BatchReleaseReply {
        count: released.len(),
        released,
        spirit_stones: stones,
    })
}

fn list(ctx: &mut Ctx) -> Result<(), Error> {
    let p: ListParams = ctx.params()?;
    let table = PetsTable::load(ctx)?;
    let qualities = p
        .quality
        .as_ref()
        .map(|q| quality_keys(&table, q, "quality"))
        .transpose()?;
    let paging = cauldron_sdk::paging::Page::from_params(p.page, p.page_size)?;
    let all = all_pets(ctx)?;
    let total = all.len();
    let mut pets: Vec<PetView> = all
        .into_iter()
        .filter(|v| qualities.as_ref().is_none_or(|q| q.contains(&v.pet.quality)))
        .filter(|v| p.active.is_none_or(|a| v.pet.active == a))
        .collect();
    pets.sort_by(|a, b| {
        let key = |v: &PetView| (v.pet.active, table.rank(&v.pet.quality), v.pet.star, v.pet.level);
        key(b).cmp(&key(a)).then_with(|| a.id.cmp(&b.id))
    });
    let matched = pets.len();
    let (pages, pets) = paging.cut(pets);
    ctx.reply(&ListReply {
        pets,
        total,
        matched,
        page: paging.page,
        pages,
        page_size: paging.size,
    })
}

#[cfg(test)]
mod tests;
