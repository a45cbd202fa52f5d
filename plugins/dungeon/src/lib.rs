//! The dungeon plugin: 秘境 dungeon floors with buffs, 降服妖兽 beast hunts and 除魔卫道 demon slaying,
//! all fought by the turn-based [`battle`] engine on server-side effective stats.
//!
//! See `README.md` next to this crate for the actions, the state and the design choices behind them.

/// The battle engine, shared with the other fighting plugins (the `cauldron-battle` crate).
pub use cauldron_battle as battle;
mod content;

use std::collections::BTreeMap;

use cauldron_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use battle::{Battle, FIGHT_STATS, Fighter};
use content::{BuffDef, Buffs, Demon, DemonDrop, DungeonTable, Herbs, Monsters, Recipes, tables};

/// The dungeon plugin.
pub struct Dungeon;

const DAY_MS: i64 = 86_400_000;
/// Asia/Shanghai is UTC+8 all year.
const SHANGHAI_OFFSET_MS: i64 = 8 * 3_600_000;

/// The Asia/Shanghai calendar day number of a time.
fn shanghai_day(now_ms: i64) -> i64 {
    (now_ms + SHANGHAI_OFFSET_MS).div_euclid(DAY_MS)
}

/// `base × growth^(level−1)`, rounded, as a currency amount.
fn level_cost(base: f64, growth: f64, level: f64) -> i64 {
    let v = (base * growth.powf(level - 1.0)).round();
    if v.is_finite() {
        v.min(i64::MAX as f64) as i64
    } else {
        i64::MAX
    }
}

// ---------------------------------------------------------------------------------------------
// State

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct State {
    #[serde(default)]
    run: Option<Run>,
    #[serde(default)]
    best_floor: u32,
    #[serde(default)]
    day: i64,
    #[serde(default)]
    hunts_today: u32,
    #[serde(default)]
    slays_today: u32,
}

impl State {
    /// Reset the daily tallies when the Shanghai day has changed.
    fn roll_day(&mut self, now_ms: i64) {
        let today = shanghai_day(now_ms);
        if self.day != today {
            self.day = today;
            self.hunts_today = 0;
            self.slays_today = 0;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Run {
    difficulty: String,
    /// The floor to fight next.
    floor: u32,
    refreshes_left: u32,
    /// Picked buff ids, in order.
    buffs: Vec<String>,
    /// Buff ids offered for this floor; empty once one is picked.
    offer: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Replies

/// A buff as shown to the player.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuffView {
    /// Buff id (what `dungeon_pick` takes).
    pub id: String,
    /// Tier key: common, rare, epic.
    pub tier: String,
    /// Chinese name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// What it does.
    pub description: String,
}

/// Spirit and stones one fight costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    /// Spirit (灵力).
    pub spirit: i64,
    /// Spirit stones (灵石).
    pub spirit_stones: i64,
}

/// A dungeon run as shown to the player.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    /// Difficulty key.
    pub difficulty: String,
    /// The floor to fight next.
    pub floor: u32,
    /// Buff refreshes left in this run.
    pub refreshes_left: u32,
    /// Buffs picked so far.
    pub buffs: Vec<BuffView>,
    /// Buffs offered for this floor (empty once one is picked).
    pub offer: Vec<BuffView>,
    /// The next floor's enemy.
    pub enemy: Fighter,
    /// What the next fight costs.
    pub cost: Cost,
}

/// Reply of `dungeon_start`, `dungeon_buffs`, `dungeon_refresh` and `dungeon_pick`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReply {
    /// What happened, in words.
    pub message: String,
    /// The run.
    pub run: RunView,
    /// Highest floor ever cleared.
    pub best_floor: u32,
}

/// Dungeon win rewards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DungeonRewards {
    /// 灵石.
    pub spirit_stones: i64,
    /// 强化石.
    pub reinforce_stones: i64,
    /// 灵宠精华.
    pub pet_essence: i64,
    /// 洗炼石.
    pub refinement_stones: i64,
}

/// Reply of `dungeon_fight`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FightReply {
    /// Whether the player won.
    pub won: bool,
    /// The floor fought.
    pub floor: u32,
    /// What the fight cost.
    pub cost: Cost,
    /// Rewards (all zero on a loss).
    pub rewards: DungeonRewards,
    /// The battle, round by round.
    pub battle: Battle,
    /// The run afterwards; `None` when the loss ended it.
    pub run: Option<RunView>,
    /// Highest floor ever cleared.
    pub best_floor: u32,
}

/// One item drop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drop {
    /// Item id.
    pub item: String,
    /// Quantity.
    pub qty: i64,
}

/// Reply of `hunt` and `slay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HuntReply {
    /// Monster or target id.
    pub id: i64,
    /// Its Chinese name.
    pub name: String,
    /// Its English name.
    pub name_en: String,
    /// Whether the player won.
    pub won: bool,
    /// Spirit spent.
    pub spirit_spent: i64,
    /// Items won.
    pub drops: Vec<Drop>,
    /// Spirit stones won.
    pub spirit_stones: i64,
    /// 修为 actually gained (after the cap).
    pub cultivation: f64,
    /// Attempts of this kind used today, this one included.
    pub used_today: u32,
    /// The daily cap.
    pub daily_cap: u32,
    /// The battle, round by round.
    pub battle: Battle,
}

/// One kind of daily fight in `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyView {
    /// Attempts used today.
    pub used: u32,
    /// Daily cap.
    pub cap: u32,
    /// Spirit per attempt.
    pub spirit_cost: i64,
}

/// Reply of `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReply {
    /// Beast hunts today.
    pub hunts: DailyView,
    /// Demon slaying today.
    pub slays: DailyView,
    /// Highest floor ever cleared.
    pub best_floor: u32,
    /// The run in progress.
    pub run: Option<RunView>,
    /// Beasts (display table).
    pub beasts: Vec<content::Beast>,
    /// Demons (display table).
    pub demons: Vec<Demon>,
    /// Dungeon difficulties.
    pub difficulties: Vec<content::Difficulty>,
}

// ---------------------------------------------------------------------------------------------
// Params

#[derive(Deserialize)]
struct StartParams {
    #[serde(default)]
    difficulty: Option<String>,
    #[serde(default)]
    restart: bool,
}

#[derive(Deserialize)]
struct PickParams {
    buff: Option<String>,
}

#[derive(Deserialize)]
struct HuntParams {
    monster: Option<i64>,
}

#[derive(Deserialize)]
struct SlayParams {
    target: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Manifest

/// What the fights read: the run, the fighter's stats and the purse.
const FIGHT_READS: &[Section] = &[Section::State, Section::Stats, Section::Currencies];
/// What the dungeon-run actions read.
const RUN_READS: &[Section] = &[Section::State, Section::Stats];
/// The content tables of the dungeon run.
const RUN_TABLES: &[&str] = &[tables::DUNGEON, tables::BUFFS];

impl Plugin for Dungeon {
    const ACTIONS: Actions = Actions::new(&[
        Action::new("status", status)
            .title("斗法 Status")
            .description("Daily hunt/slay counts and costs, the dungeon run, and the monster tables.")
            .reads(FIGHT_READS)
            .content(&[tables::DUNGEON, tables::BUFFS, tables::MONSTERS])
            .query(),
        Action::new("dungeon_start", dungeon_start)
            .title("进入秘境 Enter dungeon")
            .description("Begin a run at floor 1, or continue the run in progress.")
            .params(&[
                Param::optional("difficulty", ParamType::String)
                    .of("easy,normal,hard,expert")
                    .description("Difficulty of a new run (default normal)."),
                Param::optional("restart", ParamType::Bool)
                    .description("Abandon the run in progress and begin again at floor 1."),
            ])
            .reads(RUN_READS)
            .content(RUN_TABLES),
        Action::new("dungeon_buffs", dungeon_buffs)
            .title("秘境增益 Buffs")
            .description("The buffs offered for this floor and those already picked.")
            .reads(RUN_READS)
            .content(RUN_TABLES)
            .query(),
        Action::new("dungeon_refresh", dungeon_refresh)
            .title("刷新增益 Refresh buffs")
            .description("Re-roll this floor's three buffs (3 refreshes per run).")
            .reads(RUN_READS)
            .content(RUN_TABLES),
        Action::new("dungeon_pick", dungeon_pick)
            .title("选择增益 Pick buff")
            .description("Keep one of this floor's offered buffs for the rest of the run.")
            .params(&[Param::required("buff", ParamType::String).description("Id of an offered buff.")])
            .reads(RUN_READS)
            .content(RUN_TABLES),
        Action::new("dungeon_fight", dungeon_fight)
            .title("挑战 Fight floor")
            .description("Fight the current floor's guardian. Winning advances a floor; losing ends the run.")
            .reads(FIGHT_READS)
            .content(RUN_TABLES),
        Action::new("hunt", hunt)
            .title("降服妖兽 Beast hunt")
            .description("Fight a beast (1-9) for herbs. 100 per day.")
            .params(&[Param::required("monster", ParamType::Integer).description("Beast id, 1-9.")])
            .reads(FIGHT_READS)
            .content(&[tables::MONSTERS, tables::HERBS]),
        Action::new("slay", slay)
            .title("除魔卫道 Demon slaying")
            .description("Fight a demon (101-106) for stones, 修为 and drops. 20 per day.")
            .params(&[Param::required("target", ParamType::Integer).description("Target id, 101-106.")])
            .reads(FIGHT_READS)
            .content(&[tables::MONSTERS, tables::RECIPES]),
    ]);

    fn prepare(content: &Content) -> Result<(), Error> {
        content.table::<DungeonTable>()?;
        content.table::<Buffs>()?;
        content.table::<Monsters>()?;
        content.table::<Herbs>()?;
        content.table::<Recipes>()?;
        Ok(())
    }

    fn manifest() -> Manifest {
        Manifest {
            name: "dungeon".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi: cauldron_sdk::abi::ABI_VERSION,
            title: "秘境 Dungeon & 斗法 Hunts".into(),
            description: "Dungeon floors with buffs, beast hunts and demon slaying, fought by a \
                          server-side turn-based battle engine."
                .into(),
            entity_kinds: vec![],
            actions: Self::ACTIONS.specs(),
            hooks: vec![],
        }
    }
}

export!(Dungeon);

// ---------------------------------------------------------------------------------------------
// Helpers

fn level(ctx: &Ctx) -> f64 {
    ctx.stat("level").max(1.0).floor()
}

fn player_name(ctx: &Ctx) -> String {
    let n = &ctx.player().name;
    if n.is_empty() { "You".into() } else { n.clone() }
}

/// The player's effective stats, with the run's buffs folded in.
fn player_fighter(ctx: &Ctx, buffs: &[&BuffDef]) -> Fighter {
    let mut stats: BTreeMap<&str, f64> = FIGHT_STATS.iter().map(|s| (*s, ctx.effective(s))).collect();
    for buff in buffs {
        for effect in &buff.effects {
            if let Some(v) = stats.get_mut(effect.stat.as_str()) {
                match effect.op {
                    content::Op::Mul => *v *= 1.0 + effect.value,
                    content::Op::Add => *v += effect.value,
                }
            }
        }
    }
    Fighter::from_stats(&player_name(ctx), |s| stats.get(s).copied().unwrap_or(0.0))
}

fn fight_cost(table: &DungeonTable, floor: u32, level: f64) -> Cost {
    Cost {
        spirit: level_cost(table.spirit_base, table.spirit_growth, level),
        spirit_stones: table.stones_per_floor * i64::from(floor),
    }
}

fn buff_view(def: &BuffDef) -> BuffView {
    BuffView {
        id: def.id.clone(),
        tier: def.tier.clone(),
        name: def.name.clone(),
        name_en: def.name_en.clone(),
        description: def.description.clone(),
    }
}

fn run_view(ctx: &Ctx, run: &Run) -> Result<RunView, Error> {
    let table = ctx.table::<DungeonTable>()?;
    let buffs = ctx.table::<Buffs>()?;
    let views = |ids: &[String]| -> Result<Vec<BuffView>, Error> {
        ids.iter().map(|id| buffs.get(id).map(buff_view)).collect()
    };
    let difficulty = table.difficulty(&run.difficulty)?;
    Ok(RunView {
        difficulty: run.difficulty.clone(),
        floor: run.floor,
        refreshes_left: run.refreshes_left,
        buffs: views(&run.buffs)?,
        offer: views(&run.offer)?,
        enemy: table.enemy_at(run.floor, difficulty.enemy_mod),
        cost: fight_cost(&table, run.floor, level(ctx)),
    })
}

fn run_reply(ctx: &mut Ctx, state: &State, message: String) -> Result<(), Error> {
    let run = state.run.as_ref().ok_or_else(no_run)?;
    let reply = RunReply {
        message,
        run: run_view(ctx, run)?,
        best_floor: state.best_floor,
    };
    ctx.reply(&reply)
}

fn no_run() -> Error {
    Error::reject(
        "no_run",
        "no dungeon run in progress; start one with dungeon_start",
    )
}

/// Three distinct buff ids for `floor`, each slot's tier rolled by the floor's odds.
fn roll_offer(rng: &mut Rng, buffs: &Buffs, floor: u32) -> Vec<String> {
    let (epic, rare) = buffs.odds_for(floor);
    let mut offer: Vec<String> = Vec::new();
    for _ in 0..3 {
        let roll = rng.next_f64();
        let tier = if roll < epic {
            "epic"
        } else if roll < epic + rare {
            "rare"
        } else {
            "common"
        };
        let fresh = |b: &&BuffDef| !offer.contains(&b.id);
        let mut pool: Vec<&BuffDef> = buffs
            .buff
            .iter()
            .filter(|b| b.tier == tier)
            .filter(fresh)
            .collect();
        if pool.is_empty() {
            pool = buffs.buff.iter().filter(fresh).collect();
        }
        if let Some(b) = rng.pick(&pool) {
            offer.push(b.id.clone());
        }
    }
    offer
}

// ---------------------------------------------------------------------------------------------
// Actions

fn status(ctx: &mut Ctx) -> Result<(), Error> {
    let mut state: State = ctx.state()?;
    state.roll_day(ctx.now_ms());
    let monsters = ctx.table::<Monsters>()?;
    let table = ctx.table::<DungeonTable>()?;
    let cost = level_cost(monsters.spirit_base, monsters.spirit_growth, level(ctx));
    let run = state.run.as_ref().map(|r| run_view(ctx, r)).transpose()?;
    let reply = StatusReply {
        hunts: DailyView {
            used: state.hunts_today,
            cap: monsters.hunt_daily_cap,
            spirit_cost: cost,
        },
        slays: DailyView {
            used: state.slays_today,
            cap: monsters.slay_daily_cap,
            spirit_cost: cost,
        },
        best_floor: state.best_floor,
        run,
        beasts: monsters.beast.clone(),
        demons: monsters.demon.clone(),
        difficulties: table.difficulty.clone(),
    };
    ctx.reply(&reply)
}

fn dungeon_start(ctx: &mut Ctx) -> Result<(), Error> {
    let p: StartParams = ctx.params()?;
    let mut state: State = ctx.state()?;
    let table = ctx.table::<DungeonTable>()?;
    if let Some(run) = &state.run
        && !p.restart
    {
        if let Some(d) = &p.difficulty
            && d != &run.difficulty
        {
            return Err(Error::reject(
                "run_in_progress",
                format!(
                    "a {} run is in progress at floor {}; continue it or start again with restart",
                    run.difficulty, run.floor
                ),
            ));
        }
        let message = format!("Continuing the run at floor {}", run.floor);
        return run_reply(ctx, &state, message);
    }
    let difficulty = p.difficulty.unwrap_or_else(|| "normal".into());
    if table.difficulty.iter().all(|d| d.key != difficulty) {
        return Err(Error::bad_params(format!("unknown difficulty `{difficulty}`")));
    }
    let buffs = ctx.table::<Buffs>()?;
    let offer = roll_offer(ctx.rng(), &buffs, 1);
    state.run = Some(Run {
        difficulty,
        floor: 1,
        refreshes_left: table.refreshes_per_run,
        buffs: vec![],
        offer,
    });
    ctx.set_state(&state)?;
    run_reply(ctx, &state, "A new run begins at floor 1".into())
}

fn dungeon_buffs(ctx: &mut Ctx) -> Result<(), Error> {
    let state: State = ctx.state()?;
    run_reply(ctx, &state, String::new())
}

fn dungeon_refresh(ctx: &mut Ctx) -> Result<(), Error> {
    let mut state: State = ctx.state()?;
    let buffs = ctx.table::<Buffs>()?;
    let run = state.run.as_mut().ok_or_else(no_run)?;
    if run.offer.is_empty() {
        return Err(Error::reject(
            "no_offer",
            "this floor's buff is already chosen; clear the floor for a new offer",
        ));
    }
    if run.refreshes_left == 0 {
        return Err(Error::reject(
            "no_refreshes",
            "no buff refreshes left in this run",
        ));
    }
    run.refreshes_left -= 1;
    let floor = run.floor;
    run.offer = roll_offer(ctx.rng(), &buffs, floor);
    let left = run.refreshes_left;
    ctx.set_state(&state)?;
    run_reply(ctx, &state, format!("Buffs refreshed ({left} refreshes left)"))
}

fn dungeon_pick(ctx: &mut Ctx) -> Result<(), Error> {
    let p: PickParams = ctx.params()?;
    let id = p.buff.ok_or_else(|| Error::bad_params("`buff` is required"))?;
    let mut state: State = ctx.state()?;
    let buffs = ctx.table::<Buffs>()?;
    let run = state.run.as_mut().ok_or_else(no_run)?;
    if run.offer.is_empty() {
        return Err(Error::reject("no_offer", "this floor's buff is already chosen"));
    }
    if !run.offer.contains(&id) {
        return Err(Error::reject(
            "not_offered",
            format!("`{id}` is not one of this floor's offered buffs"),
        ));
    }
    let name = buffs.get(&id)?.name.clone();
    run.buffs.push(id);
    run.offer.clear();
    ctx.set_state(&state)?;
    run_reply(ctx, &state, format!("Picked {name}"))
}

fn dungeon_fight(ctx: &mut Ctx) -> Result<(), Error> {
    let mut state: State = ctx.state()?;
    let table = ctx.table::<DungeonTable>()?;
    let buffs = ctx.table::<Buffs>()?;
    let mut run = state.run.clone().ok_or_else(no_run)?;
    let floor = run.floor;
    let difficulty = table.difficulty(&run.difficulty)?.clone();
    let cost = fight_cost(&table, floor, level(ctx));
    if ctx.currency("spirit") < cost.spirit {
        return Err(Error::insufficient(format!(
            "floor {floor} needs {} spirit",
            cost.spirit
        )));
    }
    ctx.spend(
        "spirit_stones",
        cost.spirit_stones,
        format_args!("floor {floor} needs {} spirit stones", cost.spirit_stones),
    )?;
    ctx.spend("spirit", cost.spirit, "not enough spirit")?;

    let picked: Vec<&BuffDef> = run
        .buffs
        .iter()
        .map(|id| buffs.get(id))
        .collect::<Result<_, _>>()?;
    let me = player_fighter(ctx, &picked);
    let enemy = table.enemy_at(floor, difficulty.enemy_mod);
    let battle = battle::fight(&me, &enemy, ctx.rng(), table.round_cap);

    let mut rewards = DungeonRewards::default();
    if battle.player_won() {
        let r = table.reward(floor, difficulty.reward_mod, battle.rounds);
        rewards = DungeonRewards {
            spirit_stones: r,
            reinforce_stones: r,
            pet_essence: r,
            refinement_stones: r / 2,
        };
        ctx.add_currency("spirit_stones", rewards.spirit_stones);
        ctx.add_currency("reinforce_stones", rewards.reinforce_stones);
        ctx.add_currency("pet_essence", rewards.pet_essence);
        ctx.add_currency("refinement_stones", rewards.refinement_stones);
        if floor > state.best_floor {
            ctx.add_counter("best_floor", i64::from(floor - state.best_floor));
            state.best_floor = floor;
            ctx.set_score("dungeon", f64::from(floor));
        }
        run.floor += 1;
        run.offer = roll_offer(ctx.rng(), &buffs, run.floor);
        state.run = Some(run);
        ctx.emit(
            "dungeon_floor_cleared",
            &FloorCleared {
                floor,
                difficulty: difficulty.key.clone(),
                best_floor: state.best_floor,
                rounds: battle.rounds,
            },
        )?;
    } else {
        state.run = None;
    }
    ctx.set_state(&state)?;
    let run = state.run.as_ref().map(|r| run_view(ctx, r)).transpose()?;
    let reply = FightReply {
        won: battle.player_won(),
        floor,
        cost,
        rewards,
        battle,
        run,
        best_floor: state.best_floor,
    };
    ctx.reply(&reply)
}

/// Payload of the `dungeon_floor_cleared` event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FloorCleared {
    /// The floor just cleared.
    pub floor: u32,
    /// Run difficulty.
    pub difficulty: String,
    /// Highest floor ever cleared.
    pub best_floor: u32,
    /// Rounds the fight took.
    pub rounds: u32,
}

/// The parts of a hunt or slay that differ: which tally and which cap.
struct Daily {
    used: u32,
    cap: u32,
    what: &'static str,
}

/// Check the cap and spirit, fight `enemy`, and charge the spirit. Returns the battle and the cost.
fn daily_fight(
    ctx: &mut Ctx,
    monsters: &Monsters,
    daily: &Daily,
    enemy: &Fighter,
) -> Result<(Battle, i64), Error> {
    if daily.used >= daily.cap {
        return Err(Error::reject(
            "daily_cap",
            format!(
                "no {} left today ({} of {} used)",
                daily.what, daily.used, daily.cap
            ),
        ));
    }
    let cost = level_cost(monsters.spirit_base, monsters.spirit_growth, level(ctx));
    ctx.spend(
        "spirit",
        cost,
        format_args!("a {} needs {cost} spirit", daily.what),
    )?;
    let me = player_fighter(ctx, &[]);
    let battle = battle::fight(&me, enemy, ctx.rng(), battle::DEFAULT_ROUND_CAP);
    Ok((battle, cost))
}

fn hunt(ctx: &mut Ctx) -> Result<(), Error> {
    let p: HuntParams = ctx.params()?;
    let id = p
        .monster
        .ok_or_else(|| Error::bad_params("`monster` is required"))?;
    let monsters = ctx.table::<Monsters>()?;
    let beast = monsters
        .beast
        .iter()
        .find(|b| b.id == id)
        .ok_or_else(|| Error::not_found(format!("no beast with id {id} (1-9)")))?
        .clone();
    let mut state: State = ctx.state()?;
    state.roll_day(ctx.now_ms());
    let daily = Daily {
        used: state.hunts_today,
        cap: monsters.hunt_daily_cap,
        what: "beast hunt",
    };
    let (battle, cost) = daily_fight(ctx, &monsters, &daily, &beast.fighter())?;
    state.hunts_today += 1;
    let mut drops = Vec::new();
    if battle.player_won() {
        let herb = if beast.herb.is_empty() {
            let herbs = ctx.table::<Herbs>()?;
            let weights: Vec<f64> = herbs.herb.iter().map(|h| h.weight).collect();
            let i = ctx
                .rng()
                .weighted(&weights)
                .ok_or_else(|| Error::fault("bad_content", "herbs table has no positive weight"))?;
            herbs.herb[i].id.clone()
        } else {
            beast.herb.clone()
        };
        drops.push(Drop {
            item: format!("herb:{herb}"),
            qty: beast.qty,
        });
    }
    for d in &drops {
        ctx.add_item(&d.item, d.qty);
    }
    ctx.set_state(&state)?;
    let reply = HuntReply {
        id,
        name: beast.name,
        name_en: beast.name_en,
        won: battle.player_won(),
        spirit_spent: cost,
        drops,
        spirit_stones: 0,
        cultivation: 0.0,
        used_today: state.hunts_today,
        daily_cap: monsters.hunt_daily_cap,
        battle,
    };
    ctx.reply(&reply)
}

fn slay(ctx: &mut Ctx) -> Result<(), Error> {
    let p: SlayParams = ctx.params()?;
    let id = p
        .target
        .ok_or_else(|| Error::bad_params("`target` is required"))?;
    let monsters = ctx.table::<Monsters>()?;
    let demon = monsters
        .demon
        .iter()
        .find(|d| d.id == id)
        .ok_or_else(|| Error::not_found(format!("no demon-slaying target with id {id} (101-106)")))?
        .clone();
    let mut state: State = ctx.state()?;
    state.roll_day(ctx.now_ms());
    let daily = Daily {
        used: state.slays_today,
        cap: monsters.slay_daily_cap,
        what: "demon slaying",
    };
    let (battle, cost) = daily_fight(ctx, &monsters, &daily, &demon.fighter())?;
    state.slays_today += 1;
    let mut drops = Vec::new();
    let (mut stones, mut cultivation) = (0, 0.0);
    if battle.player_won() {
        let lv = level(ctx);
        let base = (50.0 * 1.05f64.powf(lv - 1.0)).floor();
        let speed_bonus = |max: f64| (max - f64::from(battle.rounds / 20)).clamp(0.0, max);
        stones = ((base + speed_bonus(5.0)) / 2.0).floor() as i64;
        let want = ((base + speed_bonus(10.0)) / 2.0).floor();
        let cur = ctx.stat("cultivation");
        let room = (ctx.stat("max_cultivation") - cur).max(0.0);
        cultivation = want.min(room);
        ctx.add_currency("spirit_stones", stones);
        if cultivation > 0.0 {
            ctx.set_stat("cultivation", cur + cultivation);
        }
        if ctx.rng().chance(demon.drop_chance) {
            let item = match demon.drop {
                DemonDrop::Equipment => "chest:equipment".to_owned(),
                DemonDrop::Pet => "egg:pet".to_owned(),
                DemonDrop::DuJieFragment => "fragment:du_jie_pill".to_owned(),
                DemonDrop::Fragment => {
                    let recipes = ctx.table::<Recipes>()?;
                    let weights: Vec<f64> = recipes.recipe.iter().map(|r| r.weight).collect();
                    let i = ctx
                        .rng()
                        .weighted(&weights)
                        .ok_or_else(|| Error::fault("bad_content", "recipes table has no positive weight"))?;
                    format!("fragment:{}", recipes.recipe[i].id)
                }
            };
            drops.push(Drop { item, qty: 1 });
        }
    }
    for d in &drops {
        ctx.add_item(&d.item, d.qty);
    }
    ctx.set_state(&state)?;
    let reply = HuntReply {
        id,
        name: demon.name,
        name_en: demon.name_en,
        won: battle.player_won(),
        spirit_spent: cost,
        drops,
        spirit_stones: stones,
        cultivation,
        used_today: state.slays_today,
        daily_cap: monsters.slay_daily_cap,
        battle,
    };
    ctx.reply(&reply)
}

#[cfg(test)]
mod tests;
