//! The equipment plugin: gacha draws and chests, five slots, enhancing, two-step reforging, selling,
//! and the `modifiers` hook that turns equipped items into stat modifiers.
//!
//! Every piece is an entity of kind `equipment` whose data is [`Equipment`]. See `README.md`.

use std::collections::BTreeMap;

use cauldron_sdk::abi::fault_codes;
use cauldron_sdk::prelude::*;
use serde::{Deserialize, Serialize};

pub mod content;

use content::{Quality, Tables, tables};

/// The equipment plugin.
pub struct EquipmentPlugin;

/// The entity kind.
pub const KIND: &str = "equipment";
/// The leaderboard of the best equipped piece.
pub const BOARD: &str = "equipment";
/// Event sent to everyone when a piece of an announced quality drops.
pub const EVENT_RARE_DROP: &str = "equipment_rare_drop";

/// A piece of equipment: the data of an `equipment` entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Equipment {
    /// Chinese name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Slot key (`faqi`, `guanjin`, `daopao`, `yunlv`, `fabao`).
    pub slot: String,
    /// `common` | `uncommon` | `rare` | `epic` | `legendary` | `mythic`.
    pub quality: String,
    /// Stat → value; flat stats are whole numbers, rates fractions.
    pub stats: BTreeMap<String, f64>,
    /// Times enhanced.
    #[serde(default)]
    pub enhance_level: i64,
    /// Whether it is worn.
    #[serde(default)]
    pub equipped: bool,
    /// The player's level when it dropped (display only).
    #[serde(default)]
    pub level: i64,
    /// A reforge roll waiting for `reforge_confirm`.
    #[serde(default)]
    pub pending_reforge: Option<BTreeMap<String, f64>>,
}

// ---------------------------------------------------------------------------------------------------
// Replies

/// A piece as a client shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemView {
    /// Entity id.
    pub id: String,
    /// The entity data.
    pub item: Equipment,
    /// Quality rank, 1-6.
    pub rank: i64,
    /// Quality name (Chinese).
    pub quality_name: String,
    /// Quality name (English).
    pub quality_name_en: String,
    /// Quality colour.
    pub colour: String,
    /// Slot name (Chinese).
    pub slot_name: String,
    /// Slot name (English).
    pub slot_name_en: String,
    /// Stones `sell` pays.
    pub sell_price: i64,
    /// Reinforce stones the next `enhance` costs (`None` at the cap).
    pub enhance_cost: Option<i64>,
}

/// One quality's true odds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OddsView {
    /// Quality key.
    pub quality: String,
    /// Chinese name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Colour.
    pub colour: String,
    /// Chance in percent.
    pub percent: f64,
}

/// Reply of `list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListReply {
    /// The page of pieces that pass the filters, equipped first, then by quality (best first).
    pub items: Vec<ItemView>,
    /// Pieces in the bag, whatever the filters.
    pub total: usize,
    /// Pieces that pass the filters (on every page).
    pub matched: usize,
    /// This page, from 1.
    pub page: usize,
    /// Pages of `page_size` the matches fill (1 when no `page_size` was asked for).
    pub pages: usize,
    /// The page size asked for; `None` lists every match on one page.
    pub page_size: Option<usize>,
    /// Slot key → equipped entity id.
    pub equipped: BTreeMap<String, String>,
    /// Leaderboard score of the best equipped piece.
    pub score: f64,
    /// True gacha odds.
    pub odds: Vec<OddsView>,
    /// Price of one draw.
    pub draw_price: i64,
}

/// Reply of `draw` and `open_chest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrawReply {
    /// The new pieces.
    pub items: Vec<ItemView>,
    /// What was paid (stones for draws, chests for `open_chest`).
    pub cost: i64,
    /// Balance of what was paid afterwards.
    pub balance: i64,
}

/// Reply of `equip` and `unequip`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EquipReply {
    /// The piece acted on.
    pub item: ItemView,
    /// The piece it replaced in its slot, if any.
    pub replaced: Option<ItemView>,
    /// The new leaderboard score.
    pub score: f64,
}

/// Reply of `enhance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnhanceReply {
    /// The piece after enhancing.
    pub item: ItemView,
    /// Reinforce stones paid.
    pub cost: i64,
    /// Reinforce stones left.
    pub balance: i64,
    /// Stats before.
    pub old_stats: BTreeMap<String, f64>,
}

/// Reply of `reforge` and `reforge_confirm`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReforgeReply {
    /// The piece afterwards.
    pub item: ItemView,
    /// Stats before this call.
    pub old_stats: BTreeMap<String, f64>,
    /// The rolled stats (`reforge`), or the stats kept (`reforge_confirm`).
    pub new_stats: BTreeMap<String, f64>,
    /// Refinement stones paid by this call.
    pub cost: i64,
    /// Refinement stones left.
    pub balance: i64,
    /// For `reforge_confirm`: whether the roll was applied.
    pub kept: Option<bool>,
}

/// One piece sold by `batch_sell`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoldPiece {
    /// The id sold.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its quality key.
    pub quality: String,
    /// Stones it fetched.
    pub price: i64,
}

/// Reply of `batch_sell`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchSellReply {
    /// Every piece sold.
    pub sold: Vec<SoldPiece>,
    /// How many.
    pub count: usize,
    /// Stones received in all.
    pub price: i64,
    /// Stones afterwards.
    pub balance: i64,
}

/// Reply of `sell`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SellReply {
    /// The id sold.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Stones received.
    pub price: i64,
    /// Stones afterwards.
    pub balance: i64,
}

// ---------------------------------------------------------------------------------------------------
// Params

#[derive(Debug, Deserialize)]
struct IdParams {
    id: String,
}

#[derive(Debug, Deserialize)]
struct DrawParams {
    count: i64,
}

/// Keys given as a list (`["common", "rare"]`) or as one comma-separated string (`"common,rare"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Keys {
    List(Vec<String>),
    Text(String),
}

impl Keys {
    /// The keys, trimmed, without empty ones.
    fn keys(&self) -> Vec<String> {
        let raw: Vec<&str> = match self {
            Keys::List(v) => v.iter().map(String::as_str).collect(),
            Keys::Text(t) => t.split(',').collect(),
        };
        raw.into_iter()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// Quality keys from `keys`, each checked against the table; at least one.
fn quality_keys(c: &Tables, keys: &Keys, param: &str) -> Result<Vec<String>, Error> {
    let keys = keys.keys();
    if keys.is_empty() {
        return Err(Error::bad_params(format!("`{param}` names no quality")));
    }
    for k in &keys {
        c.quality(k)
            .map_err(|_| Error::bad_params(format!("`{param}`: unknown quality `{k}`")))?;
    }
    Ok(keys)
}

/// A slot key, checked against the table.
fn slot_key(c: &Tables, slot: Option<String>) -> Result<Option<String>, Error> {
    if let Some(k) = &slot {
        c.slot(k)
            .map_err(|_| Error::bad_params(format!("`slot`: unknown slot `{k}`")))?;
    }
    Ok(slot)
}

pub use cauldron_sdk::paging::MAX_PAGE_SIZE;

#[derive(Debug, Default, Deserialize)]
struct ListParams {
    slot: Option<String>,
    quality: Option<Keys>,
    equipped: Option<bool>,
    page: Option<i64>,
    page_size: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct BatchSellParams {
    qualities: Keys,
    slot: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ConfirmParams {
    id: String,
    keep: bool,
}

// ---------------------------------------------------------------------------------------------------
// Manifest

/// The `id` param of the actions on one piece.
const ID: Param = Param::required("id", ParamType::Entity)
    .of(KIND)
    .description("The piece of equipment");

/// The `slot` filter of `list` and `batch_sell`.
const SLOT: Param = Param::optional("slot", ParamType::String)
    .of("faqi,guanjin,daopao,yunlv,fabao")
    .description("Only pieces of this slot");

impl Plugin for EquipmentPlugin {
    const ACTIONS: Actions = Actions::new(&[
        Action::new("list", list)
            .title("背包 Equipment bag")
            .description("The pieces (filtered and paged if asked), what is worn, and the true odds.")
            .params(&[
                SLOT,
                Param::optional("quality", ParamType::String)
                    .description("Only these qualities, comma-separated"),
                Param::optional("equipped", ParamType::Bool)
                    .description("true: only worn pieces; false: only pieces in the bag"),
                Param::optional("page", ParamType::Integer).description("Page, from 1 (default 1)"),
                Param::optional("page_size", ParamType::Integer)
                    .description("Pieces per page, 1 to 100 (default: every match)"),
            ])
            .reads(&[Section::Entities])
            .content(&tables::ALL)
            .query(),
        Action::new("draw", draw)
            .title("抽奖 Draw")
            .description("Draw 1 or 10 random pieces for 100 spirit stones each.")
            .params(&[Param::required("count", ParamType::Integer).description("1 or 10")])
            .reads(&[Section::Stats, Section::Currencies, Section::Entities])
            .content(&tables::ALL),
        Action::new("open_chest", open_chest)
            .title("开启宝箱 Open a chest")
            .description("Open one equipment chest for a random piece at the draw odds.")
            .reads(&[Section::Stats, Section::Items, Section::Entities])
            .content(&tables::ALL),
        Action::new("equip", equip)
            .title("装备 Equip")
            .description("Wear a piece, replacing the one in its slot.")
            .params(&[ID])
            .reads(&[Section::Entities])
            .content(&tables::ALL),
        Action::new("unequip", unequip)
            .title("卸下 Unequip")
            .description("Take a worn piece off.")
            .params(&[ID])
            .reads(&[Section::Entities])
            .content(&tables::ALL),
        Action::new("enhance", enhance)
            .title("强化 Enhance")
            .description("Spend 10×(level+1) reinforce stones: every stat ×1.1, up to +100.")
            .params(&[ID])
            .reads(&[Section::Currencies, Section::Entities])
            .content(&tables::ALL),
        Action::new("reforge", reforge)
            .title("洗练 Reforge")
            .description("Spend 10 refinement stones to roll new stat values; confirm to keep them.")
            .params(&[ID])
            .reads(&[Section::Currencies, Section::Entities])
            .content(&tables::ALL),
        Action::new("reforge_confirm", reforge_confirm)
            .title("确认洗练 Confirm reforge")
            .description("Keep or discard the pending reforge roll.")
            .params(&[
                ID,
                Param::required("keep", ParamType::Bool)
                    .description("true applies the pending roll, false discards it"),
            ])
            .reads(&[Section::Currencies, Section::Entities])
            .content(&tables::ALL),
        Action::new("sell", sell)
            .title("出售 Sell")
            .description("Sell an unworn piece for spirit stones by quality.")
            .params(&[ID])
            .reads(&[Section::Currencies, Section::Entities])
            .content(&tables::ALL),
        Action::new("batch_sell", batch_sell)
            .title("批量出售 Sell in bulk")
            .description(
                "Sell every unworn piece of the given qualities (and slot), each at its quality's price.",
            )
            .params(&[
                Param::required("qualities", ParamType::String).description(
                    "Quality keys, comma-separated (common,uncommon,rare,epic,legendary,mythic)",
                ),
                SLOT,
            ])
            .reads(&[Section::Currencies, Section::Entities])
            .content(&tables::ALL),
    ]);

    fn prepare(content: &Content) -> Result<(), Error> {
        Tables::prepare(content)
    }

    fn manifest() -> Manifest {
        Manifest {
            name: "equipment".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi: cauldron_sdk::abi::ABI_VERSION,
            title: "装备 Equipment".into(),
            description: "Draw, wear, enhance, reforge and sell equipment in five slots.".into(),
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
        let mut out = Vec::new();
        for entity in ctx.entities(KIND) {
            let Ok(item) = entity.data.decode::<Equipment>() else {
                log(
                    LogLevel::Warn,
                    &format!("equipment `{}` does not decode; skipped", entity.id),
                );
                continue;
            };
            if !item.equipped {
                continue;
            }
            for (stat, &value) in &item.stats {
                out.push(Modifier {
                    stat: stat.clone(),
                    add: value,
                    mul: 0.0,
                    source: format!("equipment: {}", item.name),
                });
            }
        }
        Ok(out)
    }
}

export!(EquipmentPlugin);

// ---------------------------------------------------------------------------------------------------
// Generation

/// Roll a quality at the table's odds.
pub fn roll_quality<'c>(rng: &mut Rng, c: &'c Tables) -> Result<&'c Quality, Error> {
    let weights: Vec<f64> = c.qualities().iter().map(|q| q.odds).collect();
    let i = rng
        .weighted(&weights)
        .ok_or_else(|| Error::fault(fault_codes::BAD_CONTENT, "quality odds are all zero"))?;
    c.qualities()
        .get(i)
        .ok_or_else(|| Error::fault(fault_codes::INTERNAL, "weighted index out of range"))
}

/// Roll one stat value within a quality's range.
fn roll_value(rng: &mut Rng, quality: &Quality, stat: &str) -> f64 {
    if let Some([lo, hi]) = quality.flat.get(stat) {
        return rng.range_i64(*lo, *hi) as f64;
    }
    let [lo, hi] = quality.rate;
    let thousandths = rng.range_i64((lo * 1000.0).round() as i64, (hi * 1000.0).round() as i64);
    thousandths as f64 / 1000.0
}

/// Round a stat the way it is stored: flat stats to whole numbers, rates to 0.001.
fn round_stat(c: &Tables, stat: &str, value: f64) -> f64 {
    if c.is_flat(stat) {
        value.round()
    } else {
        (value * 1000.0).round() / 1000.0
    }
}

/// Pick up to `n` distinct stats from `pool`.
fn pick(rng: &mut Rng, pool: &[String], n: usize) -> Vec<String> {
    let mut pool = pool.to_vec();
    rng.shuffle(&mut pool);
    pool.truncate(n);
    pool
}

/// Generate one random piece: quality at the odds, slot uniformly, then prefix and stat lines.
pub fn generate(rng: &mut Rng, c: &Tables, level: i64) -> Result<Equipment, Error> {
    let quality = roll_quality(rng, c)?;
    let slot = rng
        .pick(c.slots())
        .ok_or_else(|| Error::fault(fault_codes::BAD_CONTENT, "no slots"))?;
    let prefixes = slot
        .prefixes
        .get(&quality.key)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let [prefix, prefix_en] = rng
        .pick(prefixes)
        .cloned()
        .ok_or_else(|| Error::fault(fault_codes::BAD_CONTENT, "no prefixes"))?;
    let lines = &quality.lines;
    let mut stats = BTreeMap::new();
    for (pool, n) in [
        (&slot.pools.base, lines.base),
        (&slot.pools.combat, lines.combat),
        (&slot.pools.resist, lines.resist),
        (&slot.pools.special, lines.special),
    ] {
        for stat in pick(rng, pool, n) {
            let value = roll_value(rng, quality, &stat);
            stats.insert(stat, value);
        }
    }
    Ok(Equipment {
        name: format!("{prefix}{}", slot.name),
        name_en: format!("{prefix_en} {}", slot.name_en),
        slot: slot.key.clone(),
        quality: quality.key.clone(),
        stats,
        enhance_level: 0,
        equipped: false,
        level,
        pending_reforge: None,
    })
}

// ---------------------------------------------------------------------------------------------------
// Helpers

fn enhance_cost(c: &Tables, item: &Equipment) -> Option<i64> {
    (item.enhance_level < c.rules().max_enhance_level).then(|| {
        c.rules()
            .enhance_cost_per_level
            .saturating_mul(item.enhance_level + 1)
    })
}

fn view(c: &Tables, id: &str, item: &Equipment) -> Result<ItemView, Error> {
    let quality = c.quality(&item.quality)?;
    let slot = c.slot(&item.slot)?;
    Ok(ItemView {
        id: id.to_owned(),
        rank: quality.rank,
        quality_name: quality.name.clone(),
        quality_name_en: quality.name_en.clone(),
        colour: quality.colour.clone(),
        slot_name: slot.name.clone(),
        slot_name_en: slot.name_en.clone(),
        sell_price: quality.sell_price,
        enhance_cost: enhance_cost(c, item),
        item: item.clone(),
    })
}

/// Every piece the player holds, decoded.
fn bag(ctx: &Ctx) -> Result<Vec<(String, Equipment)>, Error> {
    ctx.entities(KIND)
        .map(|e| {
            e.data
                .decode::<Equipment>()
                .map(|d| (e.id.clone(), d))
                .map_err(|err| {
                    Error::fault(fault_codes::INTERNAL, format!("equipment `{}` data: {err}", e.id))
                })
        })
        .collect()
}

/// Leaderboard score: quality rank × 1000 + enhance level of the best worn piece (0 when none).
pub fn score(c: &Tables, items: &[(String, Equipment)]) -> f64 {
    items
        .iter()
        .filter(|(_, i)| i.equipped)
        .map(|(_, i)| {
            let rank = c.quality(&i.quality).map(|q| q.rank).unwrap_or(0);
            (rank * 1000 + i.enhance_level) as f64
        })
        .fold(0.0, f64::max)
}

/// What the `equipment` leaderboard row shows: the best worn piece.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoardRow {
    /// Chinese name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Slot name (Chinese).
    pub slot_name: String,
    /// Slot name (English).
    pub slot_name_en: String,
    /// Quality key.
    pub quality: String,
    /// Quality name (Chinese).
    pub quality_name: String,
    /// Quality name (English).
    pub quality_name_en: String,
    /// Quality colour.
    pub colour: String,
    /// Times enhanced.
    pub enhance_level: i64,
}

/// The plugin's state: only what it publishes next to its leaderboard row (`boards.equipment`,
/// shown by the host's leaderboard route); the pieces themselves are entities.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Board name → what the row is about; empty with nothing worn.
    #[serde(default)]
    pub boards: BTreeMap<String, BoardRow>,
}

/// Sets the leaderboard score and publishes the best worn piece as the row's description.
fn update_score(ctx: &mut Ctx, c: &Tables) -> Result<f64, Error> {
    let items = bag(ctx)?;
    let s = score(c, &items);
    ctx.set_score(BOARD, s);
    let best = items.iter().filter(|(_, i)| i.equipped).max_by_key(|(id, i)| {
        let rank = c.quality(&i.quality).map(|q| q.rank).unwrap_or(0);
        // The smallest id wins a tie, so the description does not depend on storage order.
        (rank, i.enhance_level, std::cmp::Reverse(id.clone()))
    });
    let mut state = State::default();
    if let Some((id, item)) = best {
        let v = view(c, id, item)?;
        state.boards.insert(
            BOARD.into(),
            BoardRow {
                name: item.name.clone(),
                name_en: item.name_en.clone(),
                slot_name: v.slot_name,
                slot_name_en: v.slot_name_en,
                quality: item.quality.clone(),
                quality_name: v.quality_name,
                quality_name_en: v.quality_name_en,
                colour: v.colour,
                enhance_level: item.enhance_level,
            },
        );
    }
    ctx.set_state(&state)?;
    Ok(s)
}

fn load(ctx: &Ctx) -> Result<(String, Equipment), Error> {
    let p: IdParams = ctx.params()?;
    let item = ctx.entity_data::<Equipment>(KIND, &p.id)?;
    Ok((p.id, item))
}

/// Create `n` random pieces, telling everyone about announced qualities.
fn create_pieces(ctx: &mut Ctx, c: &Tables, n: i64) -> Result<Vec<ItemView>, Error> {
    let held = ctx.entities(KIND).count() as i64;
    if held + n > c.rules().max_items {
        return Err(Error::reject(
            "bag_full",
            format!(
                "you hold {held} pieces; the most is {} — sell some first",
                c.rules().max_items
            ),
        ));
    }
    let level = ctx.stat("level").max(1.0) as i64;
    let mut views = Vec::new();
    for _ in 0..n {
        let item = generate(ctx.rng(), c, level)?;
        let id = ctx.create_entity(KIND, &item)?;
        if c.quality(&item.quality)?.announce {
            let player = ctx.player().name.clone();
            ctx.emit_global(
                EVENT_RARE_DROP,
                &BTreeMap::from([
                    ("player", player),
                    ("name", item.name.clone()),
                    ("quality", item.quality.clone()),
                ]),
            )?;
        }
        views.push(view(c, &id, &item)?);
    }
    Ok(views)
}

// ---------------------------------------------------------------------------------------------------
// Actions

fn list(ctx: &mut Ctx) -> Result<(), Error> {
    let c = &Tables::load(ctx)?;
    let p: ListParams = ctx.params()?;
    let slot = slot_key(c, p.slot)?;
    let qualities = p
        .quality
        .as_ref()
        .map(|q| quality_keys(c, q, "quality"))
        .transpose()?;
    let paging = cauldron_sdk::paging::Page::from_params(p.page, p.page_size)?;
    let items = bag(ctx)?;
    let mut views = items
        .iter()
        .filter(|(_, i)| slot.as_ref().is_none_or(|s| &i.slot == s))
        .filter(|(_, i)| qualities.as_ref().is_none_or(|q| q.contains(&i.quality)))
        .filter(|(_, i)| p.equipped.is_none_or(|e| i.equipped == e))
        .map(|(id, item)| view(c, id, item))
        .collect::<Result<Vec<_>, _>>()?;
    views.sort_by(|a, b| {
        (b.item.equipped, b.rank, b.item.enhance_level, &a.id).cmp(&(
            a.item.equipped,
            a.rank,
            a.item.enhance_level,
            &b.id,
        ))
    });
    let matched = views.len();
    let (pages, views) = paging.cut(views);
    let total: f64 = c.qualities().iter().map(|q| q.odds.max(0.0)).sum();
    let reply = ListReply {
        total: items.len(),
        matched,
        page: paging.page,
        pages,
        page_size: paging.size,
        equipped: items
            .iter()
            .filter(|(_, i)| i.equipped)
            .map(|(id, i)| (i.slot.clone(), id.clone()))
            .collect(),
        score: score(c, &items),
        odds: c
            .qualities()
            .iter()
            .map(|q| OddsView {
                quality: q.key.clone(),
                name: q.name.clone(),
                name_en: q.name_en.clone(),
                colour: q.colour.clone(),
                percent: q.odds.max(0.0) * 100.0 / total,
            })
            .collect(),
        draw_price: c.rules().draw_price,
        items: views,
    };
    ctx.reply(&reply)
}

fn draw(ctx: &mut Ctx) -> Result<(), Error> {
    let c = &Tables::load(ctx)?;
    let p: DrawParams = ctx.params()?;
    if !c.rules().draw_counts.contains(&p.count) {
        return Err(Error::bad_params(format!(
            "count must be one of {:?}",
            c.rules().draw_counts
        )));
    }
    let cost = c.rules().draw_price.saturating_mul(p.count);
    let currency = &c.rules().draw_currency;
    if ctx.currency(currency) < cost {
        return Err(Error::insufficient(format!(
            "a draw of {} costs {cost} spirit stones",
            p.count
        )));
    }
    let items = create_pieces(ctx, c, p.count)?;
    ctx.spend(currency, cost, "not enough spirit stones")?;
    let reply = DrawReply {
        items,
        cost,
        balance: ctx.currency(currency),
    };
    ctx.reply(&reply)
}

fn open_chest(ctx: &mut Ctx) -> Result<(), Error> {
    let c = &Tables::load(ctx)?;
    let chest = c.rules().chest_item.clone();
    if ctx.item(&chest) < 1 {
        return Err(Error::insufficient("you have no equipment chest"));
    }
    let items = create_pieces(ctx, c, 1)?;
    ctx.take_item(&chest, 1, "you have no equipment chest")?;
    let reply = DrawReply {
        items,
        cost: 1,
        balance: ctx.item(&chest),
    };
    ctx.reply(&reply)
}

fn equip(ctx: &mut Ctx) -> Result<(), Error> {
    let c = &Tables::load(ctx)?;
    let (id, mut item) = load(ctx)?;
    if item.equipped {
        return Err(Error::reject(
            "already_equipped",
            format!("{} is already worn", item.name),
        ));
    }
    let mut replaced = None;
    for (other_id, mut other) in bag(ctx)? {
        if other.equipped && other.slot == item.slot && other_id != id {
            other.equipped = false;
            ctx.update_entity(&other_id, &other)?;
            replaced = Some(view(c, &other_id, &other)?);
        }
    }
    item.equipped = true;
    ctx.update_entity(&id, &item)?;
    let score = update_score(ctx, c)?;
    let reply = EquipReply {
        item: view(c, &id, &item)?,
        replaced,
        score,
    };
    ctx.reply(&reply)
}

fn unequip(ctx: &mut Ctx) -> Result<(), Error> {
    let c = &Tables::load(ctx)?;
    let (id, mut item) = load(ctx)?;
    if !item.equipped {
        return Err(Error::reject(
            "not_equipped",
            format!("{} is not worn", item.name),
        ));
    }
    item.equipped = false;
    ctx.update_entity(&id, &item)?;
    let score = update_score(ctx, c)?;
    let reply = EquipReply {
        item: view(c, &id, &item)?,
        replaced: None,
        score,
    };
    ctx.reply(&reply)
}

fn enhance(ctx: &mut Ctx) -> Result<(), Error> {
    let c = &Tables::load(ctx)?;
    let (id, mut item) = load(ctx)?;
    let Some(cost) = enhance_cost(c, &item) else {
        return Err(Error::reject(
            "max_level",
            format!("{} is already at +{}", item.name, c.rules().max_enhance_level),
        ));
    };
    if item.pending_reforge.is_some() {
        return Err(Error::reject(
            "reforge_pending",
            "keep or discard the pending reforge first",
        ));
    }
    let currency = c.rules().enhance_currency.clone();
    ctx.spend(
        &currency,
        cost,
        format_args!("enhancing costs {cost} reinforce stones"),
    )?;
    let old_stats = item.stats.clone();
    for (stat, value) in &mut item.stats {
        *value = round_stat(c, stat, *value * c.rules().enhance_factor);
    }
    item.enhance_level += 1;
    ctx.update_entity(&id, &item)?;
    if item.equipped {
        update_score(ctx, c)?;
    }
    let reply = EnhanceReply {
        item: view(c, &id, &item)?,
        cost,
        balance: ctx.currency(&currency),
        old_stats,
    };
    ctx.reply(&reply)
}

fn reforge(ctx: &mut Ctx) -> Result<(), Error> {
    let c = &Tables::load(ctx)?;
    let (id, mut item) = load(ctx)?;
    if item.enhance_level > 0 {
        return Err(Error::reject(
            "enhanced",
            format!("{} is enhanced and can no longer be reforged", item.name),
        ));
    }
    let quality = c.quality(&item.quality)?.clone();
    let currency = c.rules().reforge_currency.clone();
    let cost = c.rules().reforge_cost;
    ctx.spend(
        &currency,
        cost,
        format_args!("reforging costs {cost} refinement stones"),
    )?;
    let keys: Vec<String> = item.stats.keys().cloned().collect();
    let rolled: BTreeMap<String, f64> = keys
        .into_iter()
        .map(|stat| {
            let v = roll_value(ctx.rng(), &quality, &stat);
            (stat, v)
        })
        .collect();
    item.pending_reforge = Some(rolled.clone());
    ctx.update_entity(&id, &item)?;
    let reply = ReforgeReply {
        old_stats: item.stats.clone(),
        new_stats: rolled,
        item: view(c, &id, &item)?,
        cost,
        balance: ctx.currency(&currency),
        kept: None,
    };
    ctx.reply(&reply)
}

fn reforge_confirm(ctx: &mut Ctx) -> Result<(), Error> {
    let c = &Tables::load(ctx)?;
    let p: ConfirmParams = ctx.params()?;
    let mut item = ctx.entity_data::<Equipment>(KIND, &p.id)?;
    let Some(rolled) = item.pending_reforge.take() else {
        return Err(Error::reject(
            "no_pending_reforge",
            format!("{} has no reforge roll waiting", item.name),
        ));
    };
    let old_stats = item.stats.clone();
    if p.keep {
        item.stats = rolled;
    }
    ctx.update_entity(&p.id, &item)?;
    let reply = ReforgeReply {
        new_stats: item.stats.clone(),
        old_stats,
        item: view(c, &p.id, &item)?,
        cost: 0,
        balance: ctx.currency(&c.rules().reforge_currency),
        kept: Some(p.keep),
    };
    ctx.reply(&reply)
}

fn sell(ctx: &mut Ctx) -> Result<(), Error> {
    let c = &Tables::load(ctx)?;
    let (id, item) = load(ctx)?;
    if item.equipped {
        return Err(Error::reject(
            "equipped",
            format!("take {} off before selling it", item.name),
        ));
    }
    let price = c.quality(&item.quality)?.sell_price;
    ctx.delete_entity(&id);
    let currency = c.rules().sell_currency.clone();
    ctx.add_currency(&currency, price);
    let reply = SellReply {
        id,
        name: item.name,
        price,
        balance: ctx.currency(&currency),
    };
    ctx.reply(&reply)
}

fn batch_sell(ctx: &mut Ctx) -> Result<(), Error> {
    let c = &Tables::load(ctx)?;
    let p: BatchSellParams = ctx.params()?;
    let qualities = quality_keys(c, &p.qualities, "qualities")?;
    let slot = slot_key(c, p.slot)?;
    let mut sold = Vec::new();
    for (id, item) in bag(ctx)? {
        if item.equipped
            || !qualities.contains(&item.quality)
            || slot.as_ref().is_some_and(|s| &item.slot != s)
        {
            continue;
        }
        let price = c.quality(&item.quality)?.sell_price;
        ctx.delete_entity(&id);
        sold.push(SoldPiece {
            id,
            name: item.name,
            quality: item.quality,
            price,
        });
    }
    if sold.is_empty() {
        return Err(Error::reject(
            "nothing_to_sell",
            "no unworn piece of those qualities",
        ));
    }
    let price: i64 = sold.iter().map(|s| s.price).fold(0, i64::saturating_add);
    let currency = c.rules().sell_currency.clone();
    ctx.add_currency(&currency, price);
    let reply = BatchSellReply {
        count: sold.len(),
        sold,
        price,
        balance: ctx.currency(&currency),
    };
    ctx.reply(&reply)
}

#[cfg(test)]
mod tests;
