//! The duel plugin: 道友斗法, one player challenging another, fought by the shared battle engine
//! (`cauldron-battle`) on both players' server-side effective stats.
//!
//! The challenge action declares `reads_player: "opponent"`, so the host hands it the opponent's
//! public view (id, name, base and effective stats, equipment and pets) and nothing private; every
//! effect applies to the challenger alone. See `README.md` next to this crate for the rules.

use std::rc::Rc;

use cauldron_battle::{Battle, FIGHT_STATS, Fighter};
use cauldron_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// The duel plugin.
pub struct Duel;

/// Entity kind of the equipment plugin's pieces.
pub const EQUIPMENT: &str = "equipment";
/// Entity kind of the pet plugin's pets.
pub const PET: &str = "pet";

const DAY_MS: i64 = 86_400_000;
/// Asia/Shanghai is UTC+8 all year.
const SHANGHAI_OFFSET_MS: i64 = 8 * 3_600_000;

/// The Asia/Shanghai calendar day number of a time (days since 1970-01-01 in UTC+8).
pub fn shanghai_day(now_ms: i64) -> i64 {
    (now_ms + SHANGHAI_OFFSET_MS).div_euclid(DAY_MS)
}

// ---------------------------------------------------------------------------------------------
// Content

/// `content/duel.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DuelTable {
    /// Realm level needed to duel.
    pub min_level: f64,
    /// Duels per Shanghai day.
    pub daily_cap: u32,
    /// Spirit per duel at level 1.
    pub spirit_base: f64,
    /// Spirit cost growth per level.
    pub spirit_growth: f64,
    /// Rounds after which the challenger loses.
    pub round_cap: u32,
    /// Duel records kept in the state.
    pub recent_kept: usize,
    /// Leaderboard of wins.
    pub board: String,
    /// Win reward numbers.
    pub reward: RewardTable,
    /// Win multipliers and their chances.
    pub multiplier: Vec<Multiplier>,
}

/// The win reward's numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RewardTable {
    /// Base at level 1.
    pub reward_base: f64,
    /// Base growth per level.
    pub reward_growth: f64,
    /// Rounds per point of speed bonus lost.
    pub bonus_rounds: u32,
    /// Most speed bonus on spirit stones.
    pub stones_bonus_max: i64,
    /// Most speed bonus on 修为.
    pub cultivation_bonus_max: i64,
}

/// One win multiplier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Multiplier {
    /// Factor on both rewards.
    pub value: f64,
    /// Chance of drawing it.
    pub chance: f64,
}

impl Table for DuelTable {
    const NAME: &'static str = "duel";

    fn check(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::fault("bad_content", format!("duel table: {m}")));
        let sum: f64 = self.multiplier.iter().map(|m| m.chance).sum();
        if self.multiplier.is_empty() || (sum - 1.0).abs() > 1e-9 {
            return bad(format!("multiplier chances sum to {sum}, not 1"));
        }
        if self.multiplier.iter().any(|m| m.chance < 0.0 || m.value <= 0.0) {
            return bad("a multiplier has a negative chance or a value not above 0".into());
        }
        if self.reward.bonus_rounds == 0 || self.round_cap == 0 || self.daily_cap == 0 {
            return bad("bonus_rounds, round_cap and daily_cap must be positive".into());
        }
        Ok(())
    }
}

impl DuelTable {
    /// Spirit one duel costs at `level`: `spirit_base × spirit_growth^(level − 1)`, rounded.
    pub fn spirit_cost(&self, level: f64) -> i64 {
        let v = (self.spirit_base * self.spirit_growth.powf(level - 1.0)).round();
        if v.is_finite() {
            v.min(i64::MAX as f64) as i64
        } else {
            i64::MAX
        }
    }

    /// One multiplier, drawn with the table's chances.
    pub fn draw_multiplier(&self, rng: &mut Rng) -> f64 {
        let weights: Vec<f64> = self.multiplier.iter().map(|m| m.chance).collect();
        rng.weighted(&weights)
            .and_then(|i| self.multiplier.get(i))
            .map_or(1.0, |m| m.value)
    }

    /// A win's spirit stones and 修为 before the 修为 cap: each is
    /// `⌊(base + speed bonus) × multiplier⌋` with base `⌊reward_base × reward_growth^(level − 1)⌋`
    /// and speed bonus `clamp(max − ⌊rounds / bonus_rounds⌋, 0, max)`.
    pub fn win_reward(&self, level: f64, rounds: u32, multiplier: f64) -> (i64, i64) {
        let r = &self.reward;
        let base = (r.reward_base * r.reward_growth.powf(level - 1.0)).floor();
        let slow = i64::from(rounds / r.bonus_rounds);
        let bonus = |max: i64| (max - slow).clamp(0, max) as f64;
        let pay = |v: f64| {
            let v = (v * multiplier).floor();
            if v.is_finite() {
                v.clamp(0.0, i64::MAX as f64) as i64
            } else {
                0
            }
        };
        (
            pay(base + bonus(r.stones_bonus_max)),
            pay(base + bonus(r.cultivation_bonus_max)),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// State and replies

/// The plugin's private state: the day's tally and the records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Shanghai day of `today`.
    #[serde(default)]
    pub day: i64,
    /// Duels fought on `day`.
    #[serde(default)]
    pub today: u32,
    /// Duels won, ever.
    #[serde(default)]
    pub wins: u32,
    /// Duels lost, ever.
    #[serde(default)]
    pub losses: u32,
    /// Wins in a row up to the latest duel.
    #[serde(default)]
    pub streak: u32,
    /// Longest run of wins.
    #[serde(default)]
    pub best_streak: u32,
    /// The latest duels, newest first.
    #[serde(default)]
    pub recent: Vec<Record>,
}

impl State {
    fn roll_day(&mut self, now_ms: i64) {
        let today = shanghai_day(now_ms);
        if self.day != today {
            self.day = today;
            self.today = 0;
        }
    }

    /// Share of duels won, 0 before the first.
    pub fn win_rate(&self) -> f64 {
        let total = self.wins + self.losses;
        if total == 0 {
            0.0
        } else {
            f64::from(self.wins) / f64::from(total)
        }
    }
}

/// One duel in the records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The opponent's player id.
    pub opponent_id: i64,
    /// The opponent's name then.
    pub opponent_name: String,
    /// Whether the challenger won.
    pub won: bool,
    /// Rounds fought.
    pub rounds: u32,
    /// Spirit stones won.
    pub spirit_stones: i64,
    /// 修为 gained.
    pub cultivation: f64,
    /// When, ms since the epoch.
    pub at_ms: i64,
}

/// Wins, losses and streaks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Duels fought.
    pub total: u32,
    /// Won.
    pub wins: u32,
    /// Lost.
    pub losses: u32,
    /// Share won, 0 to 1.
    pub win_rate: f64,
    /// Wins in a row up to the latest duel.
    pub current_streak: u32,
    /// Longest run of wins.
    pub best_streak: u32,
}

impl From<&State> for Stats {
    fn from(s: &State) -> Self {
        Self {
            total: s.wins + s.losses,
            wins: s.wins,
            losses: s.losses,
            win_rate: s.win_rate(),
            current_streak: s.streak,
            best_streak: s.best_streak,
        }
    }
}

/// Reply of `records`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordsReply {
    /// The totals.
    pub stats: Stats,
    /// The latest duels, newest first.
    pub records: Vec<Record>,
}

/// Reply of `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReply {
    /// Duels fought today (Shanghai day).
    pub used_today: u32,
    /// Duels per day.
    pub daily_cap: u32,
    /// Spirit one duel costs now.
    pub spirit_cost: i64,
    /// Realm level needed.
    pub min_level: f64,
    /// Whether the player's level is enough.
    pub eligible: bool,
    /// Wins, losses and streaks.
    pub stats: Stats,
}

/// A piece of equipment as shown beside a fighter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gear {
    /// Name.
    pub name: String,
    /// Slot.
    pub slot: String,
    /// Quality key.
    pub quality: String,
    /// Enhancement level.
    pub enhance_level: i64,
}

/// A deployed pet as shown beside a fighter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PetView {
    /// Name.
    pub name: String,
    /// Quality key.
    pub quality: String,
    /// Level.
    pub level: u32,
    /// Stars.
    pub star: u32,
}

/// One side of a duel: who, their fighting numbers and what they fight with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// Player id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Realm level.
    pub level: f64,
    /// The numbers fought with (effective stats).
    pub fighter: Fighter,
    /// Equipped pieces.
    pub equipment: Vec<Gear>,
    /// The deployed pet.
    pub pet: Option<PetView>,
}

/// Reply of `challenge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChallengeReply {
    /// Whether the challenger won.
    pub won: bool,
    /// The challenger (the battle's `player` side).
    pub me: Side,
    /// The opponent (the battle's `enemy` side).
    pub opponent: Side,
    /// Spirit spent.
    pub spirit_spent: i64,
    /// The multiplier drawn (1 on a loss).
    pub multiplier: f64,
    /// Spirit stones won.
    pub spirit_stones: i64,
    /// 修为 gained (after the cap).
    pub cultivation: f64,
    /// Duels fought today, this one included.
    pub used_today: u32,
    /// Duels per day.
    pub daily_cap: u32,
    /// Totals after this duel.
    pub stats: Stats,
    /// The battle, round by round.
    pub battle: Battle,
}

#[derive(Deserialize)]
struct ChallengeParams {
    opponent: Option<i64>,
}

/// The fields of an equipment entity the duel shows (the equipment plugin owns the rest).
#[derive(Deserialize)]
struct EquipmentData {
    #[serde(default)]
    name: String,
    #[serde(default)]
    slot: String,
    #[serde(default)]
    quality: String,
    #[serde(default)]
    enhance_level: i64,
    #[serde(default)]
    equipped: bool,
}

/// The fields of a pet entity the duel shows (the pet plugin owns the rest).
#[derive(Deserialize)]
struct PetData {
    #[serde(default)]
    name: String,
    #[serde(default)]
    quality: String,
    #[serde(default)]
    level: u32,
    #[serde(default)]
    star: u32,
    #[serde(default)]
    active: bool,
}

// ---------------------------------------------------------------------------------------------
// Manifest

impl Plugin for Duel {
    const ACTIONS: Actions = Actions::new(&[
        Action::new("status", status)
            .title("斗法状态 Duel status")
            .description("Duels left today, the spirit cost, the level needed and the records' totals.")
            .reads(&[Section::State, Section::Stats])
            .content(&[DuelTable::NAME])
            .query(),
        Action::new("records", records)
            .title("斗法记录 Duel records")
            .description("Wins, losses, win rate, streaks and the latest duels.")
            .reads(&[Section::State])
            .content(&[DuelTable::NAME])
            .query(),
        Action::new("challenge", challenge)
            .title("道友斗法 Challenge")
            .description(
                "Duel another player (realm level 7 and up, 20 a day). A win pays spirit \
                 stones and 修为.",
            )
            .params(&[
                Param::required("opponent", ParamType::Player).description("The player id to challenge.")
            ])
            .reads(&[
                Section::State,
                Section::Stats,
                Section::Currencies,
                Section::Entities,
            ])
            .kinds(&[EQUIPMENT, PET])
            .content(&[DuelTable::NAME])
            .reads_player("opponent"),
    ]);

    fn prepare(content: &Content) -> Result<(), Error> {
        content.table::<DuelTable>()?;
        Ok(())
    }

    fn manifest() -> Manifest {
        Manifest {
            name: "duel".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi: cauldron_sdk::abi::ABI_VERSION,
            title: "道友斗法 Duels".into(),
            description: "Challenge another player: both fight on their own effective stats, gear and \
                          pet; the challenger pays spirit and wins stones and 修为."
                .into(),
            entity_kinds: vec![],
            actions: Self::ACTIONS.specs(),
            hooks: vec![],
        }
    }
}

export!(Duel);

// ---------------------------------------------------------------------------------------------
// Actions

fn level(ctx: &Ctx) -> f64 {
    ctx.stat("level").max(1.0).floor()
}

fn status(ctx: &mut Ctx) -> Result<(), Error> {
    let table = ctx.table::<DuelTable>()?;
    let mut state: State = ctx.state()?;
    state.roll_day(ctx.now_ms());
    let lv = level(ctx);
    ctx.reply(&StatusReply {
        used_today: state.today,
        daily_cap: table.daily_cap,
        spirit_cost: table.spirit_cost(lv),
        min_level: table.min_level,
        eligible: lv >= table.min_level,
        stats: Stats::from(&state),
    })
}

fn records(ctx: &mut Ctx) -> Result<(), Error> {
    let state: State = ctx.state()?;
    ctx.reply(&RecordsReply {
        stats: Stats::from(&state),
        records: state.recent.clone(),
    })
}

fn display_name(name: &str, fallback: &str) -> String {
    if name.is_empty() {
        fallback.into()
    } else {
        name.into()
    }
}

/// Equipped pieces and the deployed pet among `entities`.
fn loadout(entities: &[Entity]) -> (Vec<Gear>, Option<PetView>) {
    let mut gear = Vec::new();
    let mut pets: Vec<(&str, PetView)> = Vec::new();
    for e in entities {
        if e.kind == EQUIPMENT
            && let Ok(d) = e.data.decode::<EquipmentData>()
            && d.equipped
        {
            gear.push(Gear {
                name: d.name,
                slot: d.slot,
                quality: d.quality,
                enhance_level: d.enhance_level,
            });
        } else if e.kind == PET
            && let Ok(d) = e.data.decode::<PetData>()
            && d.active
        {
            pets.push((
                e.id.as_str(),
                PetView {
                    name: d.name,
                    quality: d.quality,
                    level: d.level,
                    star: d.star,
                },
            ));
        }
    }
    gear.sort_by(|a, b| a.slot.cmp(&b.slot).then_with(|| a.name.cmp(&b.name)));
    // The pet plugin counts the first deployed pet by id; show the same one.
    pets.sort_by(|a, b| a.0.cmp(b.0));
    (gear, pets.into_iter().next().map(|(_, p)| p))
}

fn fighter(name: &str, effective: impl Fn(&str) -> f64) -> Fighter {
    let stats: Vec<(&str, f64)> = FIGHT_STATS.iter().map(|s| (*s, effective(s))).collect();
    Fighter::from_stats(name, |s| {
        stats.iter().find(|(k, _)| *k == s).map_or(0.0, |(_, v)| *v)
    })
}

fn challenge(ctx: &mut Ctx) -> Result<(), Error> {
    let table: Rc<DuelTable> = ctx.table::<DuelTable>()?;
    let p: ChallengeParams = ctx.params()?;
    let opponent_id = p
        .opponent
        .ok_or_else(|| Error::bad_params("`opponent` (a player id) is required"))?;
    let lv = level(ctx);
    if lv < table.min_level {
        return Err(Error::reject(
            "level_too_low",
            format!(
                "duels need realm level {} (练气七层); you are at level {lv}",
                table.min_level
            ),
        ));
    }
    if opponent_id == ctx.player().id {
        return Err(Error::reject("self_duel", "you cannot duel yourself"));
    }
    let other = ctx
        .other_player()
        .filter(|o| o.id == opponent_id)
        .cloned()
        .ok_or_else(|| Error::not_found(format!("no player with id {opponent_id}")))?;
    let mut state: State = ctx.state()?;
    state.roll_day(ctx.now_ms());
    if state.today >= table.daily_cap {
        return Err(Error::reject(
            "daily_cap",
            format!(
                "no duels left today ({} of {} used); the count restarts at midnight, Beijing time",
                state.today, table.daily_cap
            ),
        ));
    }
    let cost = table.spirit_cost(lv);
    ctx.spend("spirit", cost, format_args!("a duel needs {cost} spirit"))?;

    let my_name = display_name(&ctx.player().name, "You");
    let their_name = display_name(&other.name, &format!("#{}", other.id));
    let me = fighter(&my_name, |s| ctx.effective(s));
    let them = fighter(&their_name, |s| {
        other
            .effective_stats
            .get(s)
            .or_else(|| other.stats.get(s))
            .copied()
            .unwrap_or(0.0)
    });
    let battle = cauldron_battle::fight(&me, &them, ctx.rng(), table.round_cap);
    let won = battle.player_won();

    let (mut stones, mut cultivation, mut multiplier) = (0, 0.0, 1.0);
    state.today += 1;
    if won {
        multiplier = table.draw_multiplier(ctx.rng());
        let (s, c) = table.win_reward(lv, battle.rounds, multiplier);
        stones = s;
        let cur = ctx.stat("cultivation");
        let room = (ctx.stat("max_cultivation") - cur).max(0.0);
        cultivation = (c as f64).min(room);
        ctx.add_currency("spirit_stones", stones);
        if cultivation > 0.0 {
            ctx.set_stat("cultivation", cur + cultivation);
        }
        state.wins += 1;
        state.streak += 1;
        state.best_streak = state.best_streak.max(state.streak);
        ctx.set_score(&table.board, f64::from(state.wins));
    } else {
        state.losses += 1;
        state.streak = 0;
    }
    state.recent.insert(
        0,
        Record {
            opponent_id: other.id,
            opponent_name: their_name.clone(),
            won,
            rounds: battle.rounds,
            spirit_stones: stones,
            cultivation,
            at_ms: ctx.now_ms(),
        },
    );
    state.recent.truncate(table.recent_kept);
    ctx.set_state(&state)?;
    if won {
        ctx.emit(
            "duel_won",
            &DuelWon {
                opponent_id: other.id,
                opponent_name: their_name.clone(),
                rounds: battle.rounds,
                multiplier,
            },
        )?;
    }

    let (my_gear, my_pet) = loadout(&ctx.player().entities);
    let (their_gear, their_pet) = loadout(&other.entities);
    let reply = ChallengeReply {
        won,
        me: Side {
            id: ctx.player().id,
            name: my_name,
            level: lv,
            fighter: me,
            equipment: my_gear,
            pet: my_pet,
        },
        opponent: Side {
            id: other.id,
            name: their_name,
            level: other.stats.get("level").copied().unwrap_or(0.0),
            fighter: them,
            equipment: their_gear,
            pet: their_pet,
        },
        spirit_spent: cost,
        multiplier,
        spirit_stones: stones,
        cultivation,
        used_today: state.today,
        daily_cap: table.daily_cap,
        stats: Stats::from(&state),
        battle,
    };
    ctx.reply(&reply)
}

/// Payload of the `duel_won` event (to the winner's own clients).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DuelWon {
    /// Who was beaten.
    pub opponent_id: i64,
    /// Their name.
    pub opponent_name: String,
    /// Rounds the duel took.
    pub rounds: u32,
    /// The reward multiplier drawn.
    pub multiplier: f64,
}

#[cfg(test)]
mod tests;
