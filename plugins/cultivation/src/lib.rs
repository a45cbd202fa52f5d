//! The cultivation plugin: realms, lazy spirit income, meditation, the spirit-gathering formation,
//! breakthroughs, the tribulation, exploration and the daily check-in.
//!
//! All numbers come from the content tables in `content/`; see the crate's README for the rules and
//! for the design choices behind them.

use std::collections::BTreeMap;

use cauldron_sdk::abi::fault_codes;
use cauldron_sdk::prelude::*;
use serde::Deserialize;

pub mod content;
pub mod reply;
pub mod state;

use content::{Calendar, Checkin, Exploration, HighTarget, Luck, Pool, Realms, Rules, tables};
use reply::{
    Accrual, BreakthroughInfo, CheckinReply, CheckinStatus, Consumed, ExploreEvent, ExploreReply,
    FormationReply, Info, ItemFound, LuckRoll, MeditateReply, Odds, StartReply, Status, TribulationReply,
};
use state::State;

/// The plugin.
pub struct Cultivation;

/// Rejection codes of this plugin (besides the SDK's `insufficient`).
pub mod codes {
    /// The character was not started (`start`).
    pub const NOT_STARTED: &str = "not_started";
    /// Cultivation is at the threshold of the tribulation level: only `tribulation` progresses.
    pub const TRIBULATION_REQUIRED: &str = "tribulation_required";
    /// Cultivation is full at the last level.
    pub const MAX_LEVEL: &str = "max_level";
    /// `tribulation` at another level.
    pub const WRONG_LEVEL: &str = "wrong_level";
    /// Not enough cultivation for the action (tribulation, exploration).
    pub const NOT_READY: &str = "not_ready";
    /// `checkin` twice on one game day.
    pub const ALREADY_CHECKED_IN: &str = "already_checked_in";
}

/// Stat, currency, counter and board names shared with the other plugins.
mod names {
    pub(crate) const LEVEL: &str = "level";
    pub(crate) const CULTIVATION: &str = "cultivation";
    pub(crate) const MAX_CULTIVATION: &str = "max_cultivation";
    pub(crate) const ATTACK: &str = "attack";
    pub(crate) const HEALTH: &str = "health";
    pub(crate) const DEFENSE: &str = "defense";
    pub(crate) const SPEED: &str = "speed";
    pub(crate) const SPIRIT_RATE: &str = "spirit_rate";
    pub(crate) const CULTIVATION_RATE: &str = "cultivation_rate";
    pub(crate) const DU_JIE_RATE: &str = "du_jie_rate";
    pub(crate) const LUCK: &str = "luck";
    pub(crate) const SPIRIT: &str = "spirit";
    pub(crate) const SPIRIT_STONES: &str = "spirit_stones";
    pub(crate) const EXPLORATIONS: &str = "explorations";
    pub(crate) const BOARD_REALM: &str = "realm";
    pub(crate) const EQUIPMENT: &str = "equipment";
    pub(crate) const PET: &str = "pet";
}

// ---------------------------------------------------------------------------------------------------
// Formulas

/// `growth^n` by repeated multiplication: the same bits on every platform (replay needs that).
fn pow(growth: f64, n: i64) -> f64 {
    let mut r = 1.0;
    for _ in 0..n.max(0) {
        r *= growth;
    }
    r
}

/// `base × growth^(level−1)`.
fn scaled(base: f64, growth: f64, level: i64) -> f64 {
    base * pow(growth, level - 1)
}

fn round_to(x: f64, places: i32) -> f64 {
    let k = pow(10.0, i64::from(places));
    (x * k).round() / k
}

/// A float amount as a whole number of a currency (saturating; NaN reads as 0).
fn whole(x: f64) -> i64 {
    x as i64
}

fn spirit_rate_for(rules: &Rules, level: i64) -> f64 {
    round_to(scaled(rules.spirit.rate_base, rules.spirit.rate_growth, level), 2)
}

fn meditate_cost(rules: &Rules, level: i64) -> i64 {
    whole(scaled(rules.meditate.cost_base, rules.meditate.cost_growth, level).round())
}

fn meditate_gain(rules: &Rules, level: i64, rate: f64) -> f64 {
    scaled(rules.meditate.gain_base, rules.meditate.gain_growth, level) * rate
}

fn formation_full_cost(rules: &Rules, level: i64) -> i64 {
    whole(scaled(rules.formation.cost_base, rules.formation.cost_growth, level).floor())
}

fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1).div_euclid(b)
}

fn explore_cost(ex: &Exploration, level: i64) -> i64 {
    whole(scaled(ex.cost_base, ex.cost_growth, level).round())
}

// ---------------------------------------------------------------------------------------------------
// Reading the player

/// An effective stat (base plus modifiers), or `default` when no plugin ever set it.
fn stat_or(ctx: &Ctx, name: &str, default: f64) -> f64 {
    ctx.effective_stats()
        .get(name)
        .or_else(|| ctx.player().stats.get(name))
        .copied()
        .filter(|v| v.is_finite())
        .unwrap_or(default)
}

fn level(ctx: &Ctx, realms: &Realms) -> Result<i64, Error> {
    let raw = ctx.stat(names::LEVEL);
    let level = raw.round() as i64;
    if !(1..=realms.max_level).contains(&level) {
        return Err(Error::fault(
            fault_codes::INTERNAL,
            format!("level stat {raw} is outside 1..={}", realms.max_level),
        ));
    }
    Ok(level)
}

/// The breakthrough threshold: the `max_cultivation` stat, or the realm table's when unset.
fn max_cultivation(ctx: &Ctx, realms: &Realms, level: i64) -> Result<f64, Error> {
    let stat = ctx.stat(names::MAX_CULTIVATION);
    if stat > 0.0 && stat.is_finite() {
        Ok(stat)
    } else {
        Ok(realms.view(level)?.threshold)
    }
}

fn not_started() -> Error {
    Error::reject(
        codes::NOT_STARTED,
        "你尚未踏上仙途，请先开始修行 / You have not started cultivating yet: call `start` first",
    )
}

/// Everything an action of a started character begins with.
struct Session {
    state: State,
    rules: std::rc::Rc<Rules>,
    realms: std::rc::Rc<Realms>,
    level: i64,
    accrual: Accrual,
}

/// Load state and the core tables, reject a character that was not started, and add spirit income.
fn begin(ctx: &mut Ctx) -> Result<Session, Error> {
    let mut state: State = ctx.state()?;
    if !state.started {
        return Err(not_started());
    }
    let rules = Rules::load(ctx)?;
    let realms = Realms::load(ctx)?;
    let level = level(ctx, &realms)?;
    let accrual = accrue(ctx, &mut state, &rules, level);
    Ok(Session {
        state,
        rules,
        realms,
        level,
        accrual,
    })
}

/// Lazy spirit income: `spirit_rate × seconds since the last accrual`, at most the offline cap.
fn accrue(ctx: &mut Ctx, state: &mut State, rules: &Rules, level: i64) -> Accrual {
    let now = ctx.now_ms();
    let elapsed_ms = (now - state.last_accrual_ms).max(0);
    let cap_ms = whole(rules.spirit.offline_cap_hours * 3_600_000.0).max(0);
    let counted_ms = elapsed_ms.min(cap_ms);
    let spirit_rate = stat_or(ctx, names::SPIRIT_RATE, spirit_rate_for(rules, level)).max(0.0);
    let carried = if state.spirit_fraction.is_finite() {
        state.spirit_fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let total = spirit_rate * counted_ms as f64 / 1000.0 + carried;
    let gained = total.floor();
    state.spirit_fraction = total - gained;
    if now > state.last_accrual_ms {
        state.last_accrual_ms = now;
    }
    let gained = whole(gained);
    ctx.add_currency(names::SPIRIT, gained);
    Accrual {
        gained,
        elapsed_ms,
        counted_ms,
        spirit_rate,
        carried_fraction: state.spirit_fraction,
    }
}

/// Reject gaining cultivation that could never be used: full at the tribulation level or the last one.
fn check_can_progress(ctx: &Ctx, s: &Session) -> Result<(), Error> {
    let cultivation = ctx.stat(names::CULTIVATION);
    let max = max_cultivation(ctx, &s.realms, s.level)?;
    if cultivation < max {
        return Ok(());
    }
    if s.level == s.realms.tribulation_level {
        return Err(Error::reject(
            codes::TRIBULATION_REQUIRED,
            "修为已满，须渡劫方可突破 / Your cultivation is full: cross the tribulation to advance",
        ));
    }
    if s.level >= s.realms.max_level {
        return Err(Error::reject(
            codes::MAX_LEVEL,
            "你已至大道尽头 / You have reached the last realm",
        ));
    }
    Ok(())
}

fn level_stats(rules: &Rules, level: i64) -> BTreeMap<String, f64> {
    let l = level as f64;
    let ls = &rules.level_stats;
    BTreeMap::from([
        (names::LEVEL.to_owned(), l),
        (names::ATTACK.to_owned(), ls.attack * l),
        (names::HEALTH.to_owned(), ls.health * l),
        (names::DEFENSE.to_owned(), ls.defense * l),
        (names::SPEED.to_owned(), ls.speed * l),
        (names::SPIRIT_RATE.to_owned(), spirit_rate_for(rules, level)),
    ])
}

/// Move to the next level: rebuild the level stats, reset cultivation, pay the reward, update the board.
fn break_through(
    ctx: &mut Ctx,
    rules: &Rules,
    realms: &Realms,
    from: i64,
) -> Result<BreakthroughInfo, Error> {
    let level = from + 1;
    let realm = realms.view(level)?;
    let stats = level_stats(rules, level);
    for (name, value) in &stats {
        ctx.set_stat(name, *value);
    }
    ctx.set_stat(names::CULTIVATION, 0.0);
    ctx.set_stat(names::MAX_CULTIVATION, realm.threshold);
    let spirit_reward = rules.breakthrough.spirit_reward_per_level.saturating_mul(level);
    ctx.add_currency(names::SPIRIT, spirit_reward);
    ctx.set_score(names::BOARD_REALM, level as f64);
    let info = BreakthroughInfo {
        from_level: from,
        level,
        max_cultivation: realm.threshold,
        realm,
        spirit_reward,
        stats,
    };
    ctx.emit("breakthrough", &info)?;
    Ok(info)
}

/// The automatic breakthrough after meditation or formation.
fn maybe_break_through(ctx: &mut Ctx, s: &Session) -> Result<Option<BreakthroughInfo>, Error> {
    let max = max_cultivation(ctx, &s.realms, s.level)?;
    if ctx.stat(names::CULTIVATION) >= max
        && s.level != s.realms.tribulation_level
        && s.level < s.realms.max_level
    {
        return break_through(ctx, &s.rules, &s.realms, s.level).map(Some);
    }
    Ok(None)
}

fn add_cultivation(ctx: &mut Ctx, delta: f64) -> f64 {
    let now = round_to((ctx.stat(names::CULTIVATION) + delta).max(0.0), 1);
    ctx.set_stat(names::CULTIVATION, now);
    now
}

fn roll_luck(ctx: &mut Ctx, luck: &Luck) -> Result<LuckRoll, Error> {
    let weights: Vec<f64> = luck.tiers.iter().map(|t| t.chance).collect();
    let tier = ctx
        .rng()
        .weighted(&weights)
        .and_then(|i| luck.tiers.get(i))
        .ok_or_else(|| content::bad(tables::LUCK, "no tier could be drawn"))?;
    Ok(LuckRoll {
        multiplier: tier.multiplier,
        name: tier.name.clone(),
        gloss: tier.gloss.clone(),
    })
}

fn save(ctx: &mut Ctx, state: &State) -> Result<(), Error> {
    ctx.set_state(state)
}

// ---------------------------------------------------------------------------------------------------
// Actions

fn start(ctx: &mut Ctx) -> Result<(), Error> {
    let state: State = ctx.state()?;
    let rules = Rules::load(ctx)?;
    let realms = Realms::load(ctx)?;
    if state.started {
        let current = level(ctx, &realms).unwrap_or(rules.start.level);
        let realm = realms.view(current)?;
        return ctx.reply(&StartReply {
            created: false,
            realm,
            stats: BTreeMap::new(),
        });
    }
    let level = rules.start.level;
    let realm = realms.view(level)?;
    let mut stats = level_stats(&rules, level);
    stats.insert(names::CULTIVATION.into(), 0.0);
    stats.insert(names::MAX_CULTIVATION.into(), realm.threshold);
    stats.insert(names::CULTIVATION_RATE.into(), rules.start.cultivation_rate);
    stats.insert(names::DU_JIE_RATE.into(), rules.start.du_jie_rate);
    stats.insert(names::LUCK.into(), rules.start.luck);
    for (name, value) in &stats {
        ctx.set_stat(name, *value);
    }
    ctx.set_score(names::BOARD_REALM, level as f64);
    let now = ctx.now_ms();
    save(
        ctx,
        &State {
            started: true,
            last_accrual_ms: now,
            ..State::default()
        },
    )?;
    ctx.reply(&StartReply {
        created: true,
        realm,
        stats,
    })
}

fn gather(ctx: &mut Ctx) -> Result<(), Error> {
    let s = begin(ctx)?;
    save(ctx, &s.state)?;
    let status = status(ctx, &s)?;
    ctx.reply(&status)
}

fn status(ctx: &Ctx, s: &Session) -> Result<Status, Error> {
    let ex = Exploration::load(ctx)?;
    let cal = Calendar::load(ctx)?;
    let checkin = Checkin::load(ctx)?;
    let today = cal.day(ctx.now_ms());
    let realm = s.realms.view(s.level)?;
    let max = max_cultivation(ctx, &s.realms, s.level)?;
    let cultivation = ctx.stat(names::CULTIVATION);
    let f = &s.rules.formation;
    let uses_today = if s.state.formation_day == today {
        s.state.formation_uses
    } else {
        0
    };
    let discounted_left = (f.daily_discounted_uses - uses_today).max(0);
    let formation_cost = if s.level > s.realms.tribulation_level {
        f.high_cost
    } else if discounted_left > 0 {
        ceil_div(formation_full_cost(&s.rules, s.level), f.discount_divisor)
    } else {
        formation_full_cost(&s.rules, s.level)
    };
    let checked_in_today = s.state.checkin_day == Some(today);
    let streak_alive = s.state.checkin_day.is_some_and(|d| d >= today - 1);
    let streak_day = if streak_alive { s.state.checkin_streak } else { 0 };
    let rate = stat_or(ctx, names::CULTIVATION_RATE, s.rules.start.cultivation_rate);
    Ok(Status {
        accrual: s.accrual.clone(),
        level: s.level,
        realm,
        cultivation,
        max_cultivation: max,
        spirit: ctx.currency(names::SPIRIT),
        spirit_rate: s.accrual.spirit_rate,
        meditate_cost: meditate_cost(&s.rules, s.level),
        meditate_gain: round_to(meditate_gain(&s.rules, s.level, rate), 1),
        formation_cost,
        formation_discounted_left: if s.level > s.realms.tribulation_level {
            0
        } else {
            discounted_left
        },
        explore_cost: explore_cost(&ex, s.level),
        explore_min_cultivation: ex.min_cultivation_fraction * max,
        tribulation_ready: s.level == s.realms.tribulation_level && cultivation >= max,
        checkin: CheckinStatus {
            checked_in_today,
            streak_day,
            next_reward: checkin.reward(streak_day + 1),
            rewards: checkin.rewards.clone(),
        },
    })
}

fn meditate(ctx: &mut Ctx) -> Result<(), Error> {
    let s = begin(ctx)?;
    check_can_progress(ctx, &s)?;
    let luck = Luck::load(ctx)?;
    let cost = meditate_cost(&s.rules, s.level);
    let have = ctx.currency(names::SPIRIT);
    ctx.spend(
        names::SPIRIT,
        cost,
        format_args!("灵力不足：打坐需要 {cost}，现有 {have} / Not enough spirit: meditation needs {cost}, you have {have}"),
    )?;
    let roll = roll_luck(ctx, &luck)?;
    let rate = stat_or(ctx, names::CULTIVATION_RATE, s.rules.start.cultivation_rate).max(0.0);
    let gain = round_to(meditate_gain(&s.rules, s.level, rate) * roll.multiplier, 1);
    add_cultivation(ctx, gain);
    let breakthrough = maybe_break_through(ctx, &s)?;
    save(ctx, &s.state)?;
    let max = max_cultivation(ctx, &s.realms, breakthrough.as_ref().map_or(s.level, |b| b.level))?;
    let reply = MeditateReply {
        accrual: s.accrual,
        spirit_cost: cost,
        luck: roll,
        cultivation_gain: gain,
        cultivation: ctx.stat(names::CULTIVATION),
        max_cultivation: max,
        spirit: ctx.currency(names::SPIRIT),
        breakthrough,
    };
    ctx.reply(&reply)
}

fn formation(ctx: &mut Ctx) -> Result<(), Error> {
    let mut s = begin(ctx)?;
    check_can_progress(ctx, &s)?;
    let cal = Calendar::load(ctx)?;
    let today = cal.day(ctx.now_ms());
    if s.state.formation_day != today {
        s.state.formation_day = today;
        s.state.formation_uses = 0;
    }
    let f = s.rules.formation.clone();
    let max_before = max_cultivation(ctx, &s.realms, s.level)?;
    let have = ctx.currency(names::SPIRIT_STONES);
    let short = |cost: i64| {
        format!(
            "灵石不足：聚灵阵需要 {cost}，现有 {have} / Not enough spirit stones: the formation needs {cost}, you have {have}"
        )
    };
    let mut discounted = false;
    let mut luck_roll = None;
    let mut high_pct = None;
    let mut cultivation_gain = 0.0;
    let mut max_cultivation_gain = 0.0;
    let cost;
    if s.level <= s.realms.tribulation_level {
        let luck = Luck::load(ctx)?;
        let full = formation_full_cost(&s.rules, s.level);
        discounted = s.state.formation_uses < f.daily_discounted_uses;
        cost = if discounted {
            ceil_div(full, f.discount_divisor)
        } else {
            full
        };
        ctx.spend(names::SPIRIT_STONES, cost, short(cost))?;
        let roll = roll_luck(ctx, &luck)?;
        let rate = stat_or(ctx, names::CULTIVATION_RATE, s.rules.start.cultivation_rate).max(0.0);
        cultivation_gain = round_to(
            scaled(f.gain_base, f.gain_growth, s.level) * rate * roll.multiplier,
            1,
        );
        add_cultivation(ctx, cultivation_gain);
        luck_roll = Some(roll);
    } else {
        cost = f.high_cost;
        ctx.spend(names::SPIRIT_STONES, cost, short(cost))?;
        let weights: Vec<f64> = f.high_tiers.iter().map(|t| t.chance).collect();
        let pct = ctx
            .rng()
            .weighted(&weights)
            .and_then(|i| f.high_tiers.get(i))
            .map(|t| t.pct)
            .ok_or_else(|| content::bad(tables::CULTIVATION, "formation.high_tiers: nothing to draw"))?;
        let amount = round_to(pct * max_before, 1);
        match f.high_target {
            HighTarget::Cultivation => {
                cultivation_gain = amount;
                add_cultivation(ctx, amount);
            }
            HighTarget::MaxCultivation => {
                max_cultivation_gain = amount;
                ctx.set_stat(names::MAX_CULTIVATION, round_to(max_before + amount, 1));
            }
        }
        high_pct = Some(pct);
    }
    s.state.formation_uses += 1;
    let breakthrough = maybe_break_through(ctx, &s)?;
    save(ctx, &s.state)?;
    let max = max_cultivation(ctx, &s.realms, breakthrough.as_ref().map_or(s.level, |b| b.level))?;
    let discounted_left = if s.level <= s.realms.tribulation_level {
        (f.daily_discounted_uses - s.state.formation_uses).max(0)
    } else {
        0
    };
    let reply = FormationReply {
        accrual: s.accrual,
        stone_cost: cost,
        discounted,
        uses_today: s.state.formation_uses,
        discounted_left,
        luck: luck_roll,
        high_pct,
        cultivation_gain,
        max_cultivation_gain,
        cultivation: ctx.stat(names::CULTIVATION),
        max_cultivation: max,
        spirit_stones: ctx.currency(names::SPIRIT_STONES),
        breakthrough,
    };
    ctx.reply(&reply)
}

/// The parts of another plugin's entity data the tribulation looks at.
#[derive(Deserialize)]
struct QualityView {
    #[serde(default)]
    quality: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// The player's highest-quality entity of `kind` (ties: the smallest id), with its rank.
fn best_entity(ctx: &Ctx, kind: &str, order: &[String]) -> Option<Consumed> {
    let mut best: Option<(usize, Consumed)> = None;
    for e in ctx.entities(kind) {
        let Ok(view) = e.data.decode::<QualityView>() else {
            continue;
        };
        let Some(quality) = view.quality else { continue };
        let Some(rank) = order.iter().position(|q| *q == quality) else {
            continue;
        };
        let better = match &best {
            None => true,
            Some((r, c)) => rank > *r || (rank == *r && e.id < c.id),
        };
        if better {
            best = Some((
                rank,
                Consumed {
                    id: e.id.clone(),
                    kind: kind.to_owned(),
                    name: view.name,
                    quality,
                },
            ));
        }
    }
    best.map(|(_, c)| c)
}

fn tribulation(ctx: &mut Ctx) -> Result<(), Error> {
    let s = begin(ctx)?;
    let trib = &s.rules.tribulation;
    if s.level != s.realms.tribulation_level {
        let at = s.realms.view(s.realms.tribulation_level)?;
        return Err(Error::reject(
            codes::WRONG_LEVEL,
            format!(
                "只有{}方需渡劫 / Only {} ({}) faces the tribulation",
                at.name, at.gloss, at.level
            ),
        ));
    }
    let max = max_cultivation(ctx, &s.realms, s.level)?;
    let cultivation = ctx.stat(names::CULTIVATION);
    if cultivation < max {
        return Err(Error::reject(
            codes::NOT_READY,
            format!(
                "修为不足：需要 {max}，现有 {cultivation} / Not enough cultivation: {cultivation} of {max}"
            ),
        ));
    }
    let chance = stat_or(ctx, names::DU_JIE_RATE, trib.default_du_jie_rate).clamp(0.0, 1.0);
    let consumed_equipment = best_entity(ctx, names::EQUIPMENT, &trib.quality_order);
    let consumed_pet = best_entity(ctx, names::PET, &trib.quality_order);
    for c in consumed_equipment.iter().chain(consumed_pet.iter()) {
        ctx.delete_entity(&c.id);
    }
    let success = ctx.rng().chance(chance);
    let (breakthrough, du_jie_rate, message) = if success {
        let (after, next) = (trib.du_jie_rate_after_win, s.realms.view(s.level + 1)?);
        let info = break_through(ctx, &s.rules, &s.realms, s.level)?;
        let msg = format!(
            "渡劫成功，晋入{} / You crossed the tribulation: {}",
            next.name, next.gloss
        );
        (Some(info), after, msg)
    } else {
        ctx.set_stat(names::CULTIVATION, 0.0);
        let msg = "渡劫失败，金丹破碎，修为尽失 / The tribulation broke your golden core: cultivation lost"
            .to_owned();
        (None, trib.du_jie_rate_after_loss, msg)
    };
    ctx.set_stat(names::DU_JIE_RATE, du_jie_rate);
    save(ctx, &s.state)?;
    let reply = TribulationReply {
        accrual: s.accrual,
        success,
        chance,
        consumed_equipment,
        consumed_pet,
        level: ctx.stat(names::LEVEL) as i64,
        cultivation: ctx.stat(names::CULTIVATION),
        du_jie_rate,
        breakthrough,
        message,
    };
    ctx.emit("tribulation", &reply)?;
    ctx.reply(&reply)
}

fn explore(ctx: &mut Ctx) -> Result<(), Error> {
    let s = begin(ctx)?;
    let ex = Exploration::load(ctx)?;
    let max = max_cultivation(ctx, &s.realms, s.level)?;
    let need = ex.min_cultivation_fraction * max;
    let cultivation = ctx.stat(names::CULTIVATION);
    if cultivation < need {
        return Err(Error::reject(
            codes::NOT_READY,
            format!(
                "境界未稳，修为需达 {need} 方可探索（现有 {cultivation}）/ Consolidate your realm first: exploring needs {need} cultivation, you have {cultivation}"
            ),
        ));
    }
    let cost = explore_cost(&ex, s.level);
    let have = ctx.currency(names::SPIRIT);
    ctx.spend(
        names::SPIRIT,
        cost,
        format_args!("灵力不足：探索需要 {cost}，现有 {have} / Not enough spirit: exploring needs {cost}, you have {have}"),
    )?;
    let luck = stat_or(ctx, names::LUCK, ex.default_luck).max(0.0);
    let event_chance = (ex.event_chance * luck).clamp(0.0, 1.0);
    let mut events = Vec::new();
    if ctx.rng().chance(event_chance) {
        let weights: Vec<f64> = ex.events.iter().map(|e| e.weight).collect();
        let spec = ctx
            .rng()
            .weighted(&weights)
            .and_then(|i| ex.events.get(i))
            .ok_or_else(|| content::bad(tables::EXPLORATION, "no event could be drawn"))?
            .clone();
        let realm_max = s.realms.view(s.level)?.threshold;
        let event = apply_event(ctx, &ex, &spec, realm_max)?;
        if spec.notable {
            ctx.emit("exploration", &event)?;
        }
        events.push(event);
    }
    ctx.add_counter(names::EXPLORATIONS, 1);
    save(ctx, &s.state)?;
    let reply = ExploreReply {
        accrual: s.accrual,
        spirit_cost: cost,
        event_chance,
        events,
        cultivation: ctx.stat(names::CULTIVATION),
        spirit: ctx.currency(names::SPIRIT),
        explorations: ctx.counter(names::EXPLORATIONS),
    };
    ctx.reply(&reply)
}

fn apply_event(
    ctx: &mut Ctx,
    ex: &Exploration,
    spec: &content::EventSpec,
    realm_max: f64,
) -> Result<ExploreEvent, Error> {
    let mut cultivation_delta = 0.0;
    if spec.cultivation_pct != 0.0 {
        let amount = (spec.cultivation_pct.abs() * realm_max).floor();
        let before = ctx.stat(names::CULTIVATION);
        let signed = if spec.cultivation_pct > 0.0 {
            amount
        } else {
            -amount
        };
        let after = add_cultivation(ctx, signed);
        cultivation_delta = round_to(after - before, 1);
    }
    let mut spirit_delta = 0;
    if spec.spirit_pct != 0.0 {
        let have = ctx.currency(names::SPIRIT);
        let amount = whole((spec.spirit_pct.abs() * have as f64).floor()).min(have);
        spirit_delta = if spec.spirit_pct > 0.0 { amount } else { -amount };
        ctx.add_currency(names::SPIRIT, spirit_delta);
    }
    let item = match spec.pool {
        None => None,
        Some(Pool::Herbs) => {
            let weights: Vec<f64> = ex.herbs.iter().map(|h| h.weight).collect();
            let herb = ctx
                .rng()
                .weighted(&weights)
                .and_then(|i| ex.herbs.get(i))
                .ok_or_else(|| content::bad(tables::EXPLORATION, "no herb could be drawn"))?;
            Some(ItemFound {
                item: format!("herb:{}", herb.id),
                name: herb.name.clone(),
                gloss: herb.gloss.clone(),
                qty: 1,
            })
        }
        Some(Pool::Fragments) => {
            let weights: Vec<f64> = ex.fragments.iter().map(|f| f.weight).collect();
            let frag = ctx
                .rng()
                .weighted(&weights)
                .and_then(|i| ex.fragments.get(i))
                .ok_or_else(|| content::bad(tables::EXPLORATION, "no fragment could be drawn"))?;
            Some(ItemFound {
                item: format!("fragment:{}", frag.recipe_id),
                name: frag.name.clone(),
                gloss: frag.gloss.clone(),
                qty: 1,
            })
        }
    };
    if let Some(found) = &item {
        ctx.add_item(&found.item, found.qty);
    }
    let mut amount = 0;
    if let Some(currency) = &spec.currency {
        let weights: Vec<f64> = spec.amounts.iter().map(|a| a.weight).collect();
        amount = ctx
            .rng()
            .weighted(&weights)
            .and_then(|i| spec.amounts.get(i))
            .map(|a| a.amount.max(0))
            .ok_or_else(|| content::bad(tables::EXPLORATION, format!("event {}: no amount", spec.id)))?;
        ctx.add_currency(currency, amount);
    }
    Ok(ExploreEvent {
        id: spec.id.clone(),
        kind: spec.kind.clone(),
        name: spec.name.clone(),
        gloss: spec.gloss.clone(),
        description: spec.description.clone(),
        description_en: spec.description_en.clone(),
        cultivation_delta,
        spirit_delta,
        item,
        currency: spec.currency.clone(),
        amount,
    })
}

fn checkin(ctx: &mut Ctx) -> Result<(), Error> {
    let mut s = begin(ctx)?;
    let cal = Calendar::load(ctx)?;
    let table = Checkin::load(ctx)?;
    let today = cal.day(ctx.now_ms());
    if s.state.checkin_day == Some(today) {
        return Err(Error::reject(
            codes::ALREADY_CHECKED_IN,
            "今日已签到 / You have already checked in today",
        ));
    }
    let len = table.rewards.len() as i64;
    let streak_day = if s.state.checkin_day == Some(today - 1) {
        s.state.checkin_streak.rem_euclid(len) + 1
    } else {
        1
    };
    let reward = table.reward(streak_day);
    ctx.add_currency(&table.currency, reward);
    s.state.checkin_day = Some(today);
    s.state.checkin_streak = streak_day;
    save(ctx, &s.state)?;
    let reply = CheckinReply {
        accrual: s.accrual,
        date: cal.date(today),
        streak_day,
        reward,
        balance: ctx.currency(&table.currency),
        currency: table.currency.clone(),
        next_reward: table.reward(streak_day + 1),
    };
    ctx.reply(&reply)
}

fn odds<T>(
    items: &[T],
    weight: impl Fn(&T) -> f64,
    scale: f64,
    label: impl Fn(&T) -> (String, String, String),
) -> Vec<Odds> {
    let clean = |w: f64| if w > 0.0 { w } else { 0.0 };
    let total: f64 = items.iter().map(|x| clean(weight(x))).sum();
    items
        .iter()
        .map(|x| {
            let (id, name, gloss) = label(x);
            let probability = if total > 0.0 {
                clean(weight(x)) / total * scale
            } else {
                0.0
            };
            Odds {
                id,
                name,
                gloss,
                probability,
            }
        })
        .collect()
}

fn info(ctx: &mut Ctx) -> Result<(), Error> {
    let rules = Rules::load(ctx)?;
    let realms = Realms::load(ctx)?;
    let luck = Luck::load(ctx)?;
    let ex = Exploration::load(ctx)?;
    let checkin = Checkin::load(ctx)?;
    let cal = Calendar::load(ctx)?;
    let realm_views = (1..=realms.max_level)
        .map(|l| realms.view(l))
        .collect::<Result<Vec<_>, _>>()?;
    let luck_odds = odds(
        &luck.tiers,
        |t| t.chance,
        1.0,
        |t| (format!("x{}", t.multiplier), t.name.clone(), t.gloss.clone()),
    );
    let luck_expected = luck_odds
        .iter()
        .zip(&luck.tiers)
        .map(|(o, t)| o.probability * t.multiplier)
        .sum();
    let explore_event_chance = ex.event_chance.clamp(0.0, 1.0) * ex.default_luck.max(0.0);
    let reply = Info {
        realms: realm_views,
        tribulation_level: realms.tribulation_level,
        luck: luck_odds,
        luck_expected,
        formation_high: odds(
            &rules.formation.high_tiers,
            |t| t.chance,
            1.0,
            |t| (format!("{}", t.pct), format!("{}%", t.pct * 100.0), String::new()),
        ),
        explore_event_chance: explore_event_chance.min(1.0),
        explore_events: odds(
            &ex.events,
            |e| e.weight,
            explore_event_chance.min(1.0),
            |e| (e.id.clone(), e.name.clone(), e.gloss.clone()),
        ),
        herbs: odds(
            &ex.herbs,
            |h| h.weight,
            1.0,
            |h| (format!("herb:{}", h.id), h.name.clone(), h.gloss.clone()),
        ),
        fragments: odds(
            &ex.fragments,
            |f| f.weight,
            1.0,
            |f| {
                (
                    format!("fragment:{}", f.recipe_id),
                    f.name.clone(),
                    f.gloss.clone(),
                )
            },
        ),
        checkin_rewards: checkin.rewards.clone(),
        day_zone: cal.zone.clone(),
    };
    ctx.reply(&reply)
}

// ---------------------------------------------------------------------------------------------------
// Manifest

/// What most actions read: stats, currencies and the plugin's state.
const CORE: &[Section] = &[Section::Stats, Section::Currencies, Section::State];

impl Plugin for Cultivation {
    const ACTIONS: Actions = Actions::new(&[
        Action::new("start", start)
            .title("踏入仙途 Start")
            .description(
                "Create the character: level 1, base stats, no spirit. Does nothing if it already \
                 exists.",
            )
            .reads(&[Section::Stats, Section::State])
            .content(&[tables::CULTIVATION, tables::REALMS]),
        Action::new("gather", gather)
            .title("聚灵 Gather spirit")
            .description("Collect spirit earned since the last action and show the cultivation status.")
            .reads(CORE)
            .content(&[
                tables::CULTIVATION,
                tables::REALMS,
                tables::EXPLORATION,
                tables::CHECKIN,
                tables::CALENDAR,
            ]),
        Action::new("meditate", meditate)
            .title("打坐 Meditate")
            .description("Spend spirit for cultivation (times a luck roll); breaks through when full.")
            .reads(CORE)
            .content(&[tables::CULTIVATION, tables::REALMS, tables::LUCK]),
        Action::new("formation", formation)
            .title("聚灵阵 Formation")
            .description("Spend spirit stones for cultivation; the first uses each day are cheaper.")
            .reads(CORE)
            .content(&[
                tables::CULTIVATION,
                tables::REALMS,
                tables::LUCK,
                tables::CALENDAR,
            ]),
        Action::new("tribulation", tribulation)
            .title("渡劫 Tribulation")
            .description(
                "At the tribulation level with full cultivation: roll du_jie_rate to reach the next \
                 realm. Your best equipment and pet are destroyed either way.",
            )
            .reads(&[
                Section::Stats,
                Section::Currencies,
                Section::State,
                Section::Entities,
            ])
            .kinds(&[names::EQUIPMENT, names::PET])
            .content(&[tables::CULTIVATION, tables::REALMS]),
        Action::new("explore", explore)
            .title("探索 Explore")
            .description("Spend spirit to explore: cultivation, herbs, recipe fragments, stones, or trouble.")
            .reads(&[
                Section::Stats,
                Section::Currencies,
                Section::Counters,
                Section::State,
            ])
            .content(&[tables::CULTIVATION, tables::REALMS, tables::EXPLORATION]),
        Action::new("checkin", checkin)
            .title("签到 Check in")
            .description("Daily check-in: a 7-day streak of spirit-stone rewards; missing a day restarts it.")
            .reads(CORE)
            .content(&[
                tables::CULTIVATION,
                tables::REALMS,
                tables::CHECKIN,
                tables::CALENDAR,
            ]),
        Action::new("info", info)
            .title("图鉴 Info")
            .description("Realms, odds and rewards, for display.")
            .content(&[
                tables::CULTIVATION,
                tables::REALMS,
                tables::LUCK,
                tables::EXPLORATION,
                tables::CHECKIN,
                tables::CALENDAR,
            ])
            .query(),
    ]);

    fn prepare(content: &Content) -> Result<(), Error> {
        content.table::<Realms>()?;
        content.table::<Rules>()?;
        content.table::<Luck>()?;
        content.table::<Exploration>()?;
        content.table::<Checkin>()?;
        content.table::<Calendar>()?;
        Ok(())
    }

    fn manifest() -> Manifest {
        Manifest {
            name: "cultivation".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi: cauldron_sdk::abi::ABI_VERSION,
            title: "修炼 Cultivation".into(),
            description: "Realms, spirit income, meditation, formation, breakthroughs, the tribulation, exploration and daily check-in.".into(),
            entity_kinds: vec![],
            actions: Self::ACTIONS.specs(),
            hooks: vec![],
        }
    }
}

export!(Cultivation);
