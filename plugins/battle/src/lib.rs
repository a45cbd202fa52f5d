//! The turn-based battle engine shared by the game's fighting plugins (`dungeon`, `duel`), as one
//! pure function.
//!
//! [`fight`] takes two [`Fighter`]s built from server-side numbers and a random source, and plays the
//! whole battle at once, returning the winner and a round-by-round log for display. Nothing here reads
//! a player's state or the client's params: each plugin builds its fighters (from effective stats,
//! content tables) and depends on this crate, so every fight in the game follows the same rules.

use cauldron_sdk::rng::Rng;
use serde::{Deserialize, Serialize};

/// Highest chance a dodge or a counter can have.
pub const DODGE_CAP: f64 = 0.8;
/// Share of an attack's base damage healed by lifesteal.
pub const LIFESTEAL_SHARE: f64 = 0.2;
/// Rounds after which the battle stops and the player loses.
pub const DEFAULT_ROUND_CAP: u32 = 100;

/// Every stat a fighter is built from, by its shared stat name.
pub const FIGHT_STATS: [&str; 23] = [
    "attack",
    "health",
    "defense",
    "speed",
    "crit_rate",
    "combo_rate",
    "counter_rate",
    "stun_rate",
    "dodge_rate",
    "vampire_rate",
    "crit_resist",
    "combo_resist",
    "counter_resist",
    "stun_resist",
    "dodge_resist",
    "vampire_resist",
    "heal_boost",
    "crit_damage_boost",
    "crit_damage_reduce",
    "final_damage_boost",
    "final_damage_reduce",
    "combat_boost",
    "resistance_boost",
];

/// One side's numbers for a battle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fighter {
    /// Display name.
    pub name: String,
    /// Maximum (and starting) health.
    pub health: f64,
    /// Attack.
    pub attack: f64,
    /// Defense.
    pub defense: f64,
    /// Speed: the faster side acts first in each round.
    pub speed: f64,
    /// Chance to crit.
    pub crit_rate: f64,
    /// Chance to strike again for the base damage.
    pub combo_rate: f64,
    /// Chance to strike back when hit.
    pub counter_rate: f64,
    /// Chance to make the target skip its next action.
    pub stun_rate: f64,
    /// Chance to avoid an attack (capped at [`DODGE_CAP`]).
    pub dodge_rate: f64,
    /// Chance to heal a share of the base damage dealt.
    pub vampire_rate: f64,
    /// Lowers the attacker's crit chance.
    pub crit_resist: f64,
    /// Lowers the attacker's combo chance.
    pub combo_resist: f64,
    /// Lowers the defender's counter chance.
    pub counter_resist: f64,
    /// Lowers the attacker's stun chance.
    pub stun_resist: f64,
    /// Lowers the defender's dodge chance.
    pub dodge_resist: f64,
    /// Lowers the attacker's lifesteal chance.
    pub vampire_resist: f64,
    /// Multiplies lifesteal healing by `1 + heal_boost`.
    pub heal_boost: f64,
    /// Extra crit damage, as a share of the base damage.
    pub crit_damage_boost: f64,
    /// Lowers crit damage taken, as a share of the base damage.
    pub crit_damage_reduce: f64,
    /// Multiplies damage dealt by `1 + final_damage_boost`.
    pub final_damage_boost: f64,
    /// Lowers damage taken by this share.
    pub final_damage_reduce: f64,
    /// Multiplies speed by `1 + combat_boost` for initiative.
    pub combat_boost: f64,
}

impl Fighter {
    /// A fighter whose numbers come from `stat` (named as the shared stat names), with
    /// `resistance_boost` already folded into every resist.
    pub fn from_stats(name: &str, stat: impl Fn(&str) -> f64) -> Self {
        let rb = 1.0 + stat("resistance_boost").max(0.0);
        Self {
            name: name.to_owned(),
            health: stat("health"),
            attack: stat("attack"),
            defense: stat("defense"),
            speed: stat("speed"),
            crit_rate: stat("crit_rate"),
            combo_rate: stat("combo_rate"),
            counter_rate: stat("counter_rate"),
            stun_rate: stat("stun_rate"),
            dodge_rate: stat("dodge_rate"),
            vampire_rate: stat("vampire_rate"),
            crit_resist: stat("crit_resist") * rb,
            combo_resist: stat("combo_resist") * rb,
            counter_resist: stat("counter_resist") * rb,
            stun_resist: stat("stun_resist") * rb,
            dodge_resist: stat("dodge_resist") * rb,
            vampire_resist: stat("vampire_resist") * rb,
            heal_boost: stat("heal_boost"),
            crit_damage_boost: stat("crit_damage_boost"),
            crit_damage_reduce: stat("crit_damage_reduce"),
            final_damage_boost: stat("final_damage_boost"),
            final_damage_reduce: stat("final_damage_reduce"),
            combat_boost: stat("combat_boost"),
        }
    }

    fn initiative(&self) -> f64 {
        self.speed * (1.0 + self.combat_boost)
    }
}

/// Which side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The player (the one who started the fight).
    Player,
    /// The monster, floor guardian or opponent.
    Enemy,
}

impl Side {
    fn other(self) -> Self {
        match self {
            Self::Player => Self::Enemy,
            Self::Enemy => Self::Player,
        }
    }
}

/// What one action in a round was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// A normal attack.
    Attack,
    /// A strike back after being hit.
    Counter,
    /// The actor was stunned and lost its action.
    Stunned,
}

/// One action in a round, for display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Who acted.
    pub actor: Side,
    /// What kind of action.
    pub kind: ActionKind,
    /// Damage dealt to the target (0 when dodged or stunned).
    pub damage: f64,
    /// Whether it was a critical hit.
    pub crit: bool,
    /// Whether it struck twice.
    pub combo: bool,
    /// Whether the target dodged.
    pub dodged: bool,
    /// Whether the target is stunned for its next action.
    pub stun: bool,
    /// Health the actor regained through lifesteal.
    pub heal: f64,
    /// The target's health afterwards.
    pub target_health: f64,
    /// A line of text describing it.
    pub text: String,
}

/// One round of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// Round number, from 1.
    pub round: u32,
    /// What happened, in order.
    pub actions: Vec<Action>,
    /// Player's health at the end of the round.
    pub player_health: f64,
    /// Enemy's health at the end of the round.
    pub enemy_health: f64,
}

/// The result of a battle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Battle {
    /// Who won.
    pub winner: Side,
    /// Rounds played.
    pub rounds: u32,
    /// Whether the battle stopped at the round cap (a player loss).
    pub timed_out: bool,
    /// Player's health at the end.
    pub player_health: f64,
    /// Enemy's health at the end.
    pub enemy_health: f64,
    /// Player's maximum health.
    pub player_max_health: f64,
    /// Enemy's maximum health.
    pub enemy_max_health: f64,
    /// The log.
    pub log: Vec<Round>,
}

impl Battle {
    /// Whether the player won.
    pub fn player_won(&self) -> bool {
        self.winner == Side::Player
    }
}

fn chance(rate: f64, resist: f64, cap: f64) -> f64 {
    let p = rate - resist;
    if p.is_nan() { 0.0 } else { p.clamp(0.0, cap) }
}

struct Live<'a> {
    f: &'a Fighter,
    max: f64,
    hp: f64,
    stunned: bool,
}

/// Play a whole battle between `player` and `enemy`, drawing every random number from `rng`.
///
/// Per attack (attacker A, defender B), in this order:
/// - dodge: chance `B.dodge_rate − A.dodge_resist`, capped at 0.8; a dodged attack does nothing else;
/// - base damage `max(1, A.attack − B.defense)`;
/// - crit: chance `A.crit_rate − B.crit_resist`, adds `base × (1 + A.crit_damage_boost −
///   B.crit_damage_reduce)` (so a plain crit doubles the damage);
/// - combo: chance `A.combo_rate − B.combo_resist`, adds `base`;
/// - the total is multiplied by `1 + A.final_damage_boost`, then by `1 − B.final_damage_reduce` (at least
///   10 % gets through), rounded, at least 1;
/// - lifesteal: chance `A.vampire_rate − B.vampire_resist`, A heals `20 % × base × (1 + A.heal_boost)`,
///   never above A's maximum health;
/// - stun: chance `A.stun_rate − B.stun_resist`, B loses its next action;
/// - counter: if B is still standing and not stunned, chance `B.counter_rate − A.counter_resist` (cap
///   0.8), B strikes back for `max(1, B.attack − A.defense)` with its final-damage multipliers.
///
/// Each round the side with higher `speed × (1 + combat_boost)` acts first (the player on a tie); a
/// side at 0 health ends the battle at once. After `round_cap` rounds with both standing the player
/// loses.
pub fn fight(player: &Fighter, enemy: &Fighter, rng: &mut Rng, round_cap: u32) -> Battle {
    let mut sides = [
        Live {
            f: player,
            max: player.health.max(1.0),
            hp: player.health.max(1.0),
            stunned: false,
        },
        Live {
            f: enemy,
            max: enemy.health.max(1.0),
            hp: enemy.health.max(1.0),
            stunned: false,
        },
    ];
    let first = if player.initiative() >= enemy.initiative() {
        Side::Player
    } else {
        Side::Enemy
    };
    let mut log = Vec::new();
    let mut winner = None;
    let mut round = 0;
    while round < round_cap && winner.is_none() {
        round += 1;
        let mut actions = Vec::new();
        for actor in [first, first.other()] {
            let a = idx(actor);
            if sides[a].stunned {
                sides[a].stunned = false;
                actions.push(Action {
                    actor,
                    kind: ActionKind::Stunned,
                    damage: 0.0,
                    crit: false,
                    combo: false,
                    dodged: false,
                    stun: false,
                    heal: 0.0,
                    target_health: sides[idx(actor.other())].hp,
                    text: format!("Round {round}: {} is stunned and cannot act", sides[a].f.name),
                });
                continue;
            }
            attack(&mut sides, actor, round, rng, &mut actions);
            winner = if sides[0].hp <= 0.0 {
                Some(Side::Enemy)
            } else if sides[1].hp <= 0.0 {
                Some(Side::Player)
            } else {
                None
            };
            if winner.is_some() {
                break;
            }
        }
        log.push(Round {
            round,
            actions,
            player_health: sides[0].hp,
            enemy_health: sides[1].hp,
        });
    }
    Battle {
        winner: winner.unwrap_or(Side::Enemy),
        rounds: round,
        timed_out: winner.is_none(),
        player_health: sides[0].hp,
        enemy_health: sides[1].hp,
        player_max_health: sides[0].max,
        enemy_max_health: sides[1].max,
        log,
    }
}

fn idx(side: Side) -> usize {
    match side {
        Side::Player => 0,
        Side::Enemy => 1,
    }
}

fn finish_damage(raw: f64, attacker: &Fighter, defender: &Fighter) -> f64 {
    let boosted = raw * (1.0 + attacker.final_damage_boost).max(0.0);
    let taken = boosted * (1.0 - defender.final_damage_reduce).clamp(0.1, f64::MAX);
    taken.round().max(1.0)
}

fn attack(sides: &mut [Live<'_>; 2], actor: Side, round: u32, rng: &mut Rng, actions: &mut Vec<Action>) {
    let (a, b) = (idx(actor), idx(actor.other()));
    let (af, bf) = (sides[a].f, sides[b].f);
    let dodge_p = chance(bf.dodge_rate, af.dodge_resist, DODGE_CAP);
    if rng.chance(dodge_p) {
        actions.push(Action {
            actor,
            kind: ActionKind::Attack,
            damage: 0.0,
            crit: false,
            combo: false,
            dodged: true,
            stun: false,
            heal: 0.0,
            target_health: sides[b].hp,
            text: format!("Round {round}: {} dodges {}'s attack", bf.name, af.name),
        });
        return;
    }
    let base = (af.attack - bf.defense).round().max(1.0);
    let crit = rng.chance(chance(af.crit_rate, bf.crit_resist, 1.0));
    let combo = rng.chance(chance(af.combo_rate, bf.combo_resist, 1.0));
    let mut raw = base;
    if crit {
        raw += base * (1.0 + af.crit_damage_boost - bf.crit_damage_reduce).max(0.0);
    }
    if combo {
        raw += base;
    }
    let damage = finish_damage(raw, af, bf);
    sides[b].hp = (sides[b].hp - damage).max(0.0);
    let vampire = rng.chance(chance(af.vampire_rate, bf.vampire_resist, 1.0));
    let mut heal = 0.0;
    if vampire {
        let want = (base * LIFESTEAL_SHARE * (1.0 + af.heal_boost).max(0.0)).round();
        heal = want.min(sides[a].max - sides[a].hp).max(0.0);
        sides[a].hp += heal;
    }
    let stun = rng.chance(chance(af.stun_rate, bf.stun_resist, 1.0)) && sides[b].hp > 0.0;
    if stun {
        sides[b].stunned = true;
    }
    let mut text = format!("Round {round}: {} hits {} for {damage}", af.name, bf.name);
    let tags: Vec<&str> = [(crit, "critical"), (combo, "combo"), (stun, "stun")]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, t)| *t)
        .collect();
    if !tags.is_empty() {
        text.push_str(&format!(" ({})", tags.join(", ")));
    }
    if heal > 0.0 {
        text.push_str(&format!(" and heals {heal}"));
    }
    actions.push(Action {
        actor,
        kind: ActionKind::Attack,
        damage,
        crit,
        combo,
        dodged: false,
        stun,
        heal,
        target_health: sides[b].hp,
        text,
    });
    if sides[b].hp > 0.0 && !stun {
        let counter_p = chance(bf.counter_rate, af.counter_resist, DODGE_CAP);
        if rng.chance(counter_p) {
            let damage = finish_damage((bf.attack - af.defense).round().max(1.0), bf, af);
            sides[a].hp = (sides[a].hp - damage).max(0.0);
            actions.push(Action {
                actor: actor.other(),
                kind: ActionKind::Counter,
                damage,
                crit: false,
                combo: false,
                dodged: false,
                stun: false,
                heal: 0.0,
                target_health: sides[a].hp,
                text: format!("Round {round}: {} counters {} for {damage}", bf.name, af.name),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dummy(name: &str, health: f64, attack: f64, defense: f64, speed: f64) -> Fighter {
        Fighter {
            name: name.into(),
            health,
            attack,
            defense,
            speed,
            ..Fighter::default()
        }
    }

    fn attacks(b: &Battle, side: Side) -> Vec<&Action> {
        b.log
            .iter()
            .flat_map(|r| &r.actions)
            .filter(|a| a.actor == side && a.kind == ActionKind::Attack)
            .collect()
    }

    #[test]
    fn plain_hit_is_attack_minus_defense_and_at_least_one() {
        let p = dummy("p", 100.0, 30.0, 0.0, 10.0);
        let e = dummy("e", 1000.0, 5.0, 10.0, 1.0);
        let b = fight(&p, &e, &mut Rng::new(1), 3);
        assert!(attacks(&b, Side::Player).iter().all(|a| a.damage == 20.0));
        assert!(attacks(&b, Side::Enemy).iter().all(|a| a.damage == 5.0));
        let weak = dummy("w", 100.0, 1.0, 0.0, 10.0);
        let wall = dummy("wall", 100.0, 0.0, 500.0, 1.0);
        let b = fight(&weak, &wall, &mut Rng::new(1), 3);
        assert!(attacks(&b, Side::Player).iter().all(|a| a.damage == 1.0));
    }

    #[test]
    fn crit_doubles_and_combo_adds_base() {
        let mut p = dummy("p", 100.0, 30.0, 0.0, 10.0);
        p.crit_rate = 1.0;
        let e = dummy("e", 10_000.0, 0.0, 10.0, 1.0);
        let b = fight(&p, &e, &mut Rng::new(2), 5);
        let hits = attacks(&b, Side::Player);
        assert!(hits.iter().all(|a| a.crit && a.damage == 40.0), "{hits:?}");
        p.combo_rate = 1.0;
        let b = fight(&p, &e, &mut Rng::new(2), 5);
        assert!(
            attacks(&b, Side::Player)
                .iter()
                .all(|a| a.crit && a.combo && a.damage == 60.0)
        );
        // The defender's resist cancels the crit.
        let mut tough = e.clone();
        tough.crit_resist = 1.0;
        p.combo_rate = 0.0;
        let b = fight(&p, &tough, &mut Rng::new(2), 5);
        assert!(
            attacks(&b, Side::Player)
                .iter()
                .all(|a| !a.crit && a.damage == 20.0)
        );
    }

    #[test]
    fn dodge_is_capped_at_eighty_percent() {
        let p = dummy("p", 1e9, 10.0, 0.0, 10.0);
        let mut e = dummy("e", 1e9, 0.0, 0.0, 1.0);
        e.dodge_rate = 5.0;
        let mut rng = Rng::new(3);
        let (mut dodged, mut total) = (0u32, 0u32);
        for _ in 0..200 {
            let b = fight(&p, &e, &mut rng, 100);
            for a in attacks(&b, Side::Player) {
                total += 1;
                dodged += u32::from(a.dodged);
            }
        }
        let share = f64::from(dodged) / f64::from(total);
        assert!(total >= 20_000);
        assert!((share - 0.8).abs() < 0.01, "dodge share {share}");
    }

    #[test]
    fn round_cap_is_a_player_loss() {
        let p = dummy("p", 1e9, 1.0, 0.0, 10.0);
        let e = dummy("e", 1e9, 1.0, 0.0, 1.0);
        let b = fight(&p, &e, &mut Rng::new(4), DEFAULT_ROUND_CAP);
        assert_eq!(b.rounds, 100);
        assert!(b.timed_out);
        assert_eq!(b.winner, Side::Enemy);
        assert!(b.player_health > b.enemy_health - 1.0);
    }

    #[test]
    fn stunned_side_skips_its_next_action() {
        let mut p = dummy("p", 1000.0, 10.0, 0.0, 10.0);
        p.stun_rate = 1.0;
        let e = dummy("e", 1000.0, 50.0, 0.0, 1.0);
        let b = fight(&p, &e, &mut Rng::new(5), 10);
        assert_eq!(attacks(&b, Side::Enemy).len(), 0);
        assert_eq!(b.player_health, 1000.0);
        for r in &b.log {
            assert_eq!(r.actions[1].kind, ActionKind::Stunned);
            assert_eq!(r.actions[1].actor, Side::Enemy);
        }
    }

    #[test]
    fn lifesteal_heals_a_fifth_of_base_but_never_above_max() {
        let mut p = dummy("p", 100.0, 60.0, 0.0, 10.0);
        p.vampire_rate = 1.0;
        // Full health: nothing to heal (the slower enemy then lands its minimum 1).
        let e = dummy("e", 1000.0, 0.0, 10.0, 1.0);
        let b = fight(&p, &e, &mut Rng::new(6), 1);
        assert!(b.log[0].actions[0].heal == 0.0 && b.log[0].actions[0].damage == 50.0);
        assert_eq!(b.player_health, 99.0);
        // Hurt by 5 per round: heals 20 % of base 50 = 10, capped to what is missing.
        let e = dummy("e", 10_000.0, 5.0, 10.0, 20.0);
        let b = fight(&p, &e, &mut Rng::new(6), 3);
        for r in &b.log {
            let mine = r.actions.iter().find(|a| a.actor == Side::Player).map(|a| a.heal);
            assert_eq!(mine, Some(5.0));
            assert_eq!(r.player_health, 100.0);
        }
        // Badly hurt: the full 10 is healed.
        let e = dummy("e", 10_000.0, 40.0, 10.0, 20.0);
        let b = fight(&p, &e, &mut Rng::new(6), 1);
        assert_eq!(b.log[0].actions[1].heal, 10.0);
        assert_eq!(b.player_health, 70.0);
    }

    #[test]
    fn faster_side_acts_first_and_player_wins_ties() {
        let p = dummy("p", 100.0, 200.0, 0.0, 10.0);
        let e = dummy("e", 100.0, 200.0, 0.0, 10.0);
        let b = fight(&p, &e, &mut Rng::new(7), 10);
        assert_eq!(b.winner, Side::Player);
        assert_eq!(b.rounds, 1);
        let fast = dummy("e", 100.0, 200.0, 0.0, 11.0);
        assert_eq!(fight(&p, &fast, &mut Rng::new(7), 10).winner, Side::Enemy);
        // combat_boost speeds initiative up.
        let mut boosted = p.clone();
        boosted.combat_boost = 0.5;
        assert_eq!(fight(&boosted, &fast, &mut Rng::new(7), 10).winner, Side::Player);
    }

    #[test]
    fn counter_strikes_back() {
        let p = dummy("p", 1000.0, 20.0, 0.0, 10.0);
        let mut e = dummy("e", 1000.0, 7.0, 0.0, 1.0);
        e.counter_rate = 5.0;
        let b = fight(&p, &e, &mut Rng::new(8), 200);
        let n = b
            .log
            .iter()
            .flat_map(|r| &r.actions)
            .filter(|a| a.kind == ActionKind::Counter)
            .count();
        let hits = attacks(&b, Side::Player).len();
        assert!(n > 0 && n < hits, "counters {n} of {hits}");
    }

    #[test]
    fn same_seed_same_battle() {
        let mut p = dummy("p", 500.0, 40.0, 5.0, 10.0);
        p.crit_rate = 0.3;
        p.dodge_rate = 0.2;
        let mut e = dummy("e", 600.0, 35.0, 5.0, 9.0);
        e.combo_rate = 0.3;
        let a = fight(&p, &e, &mut Rng::new(9), 100);
        let b = fight(&p, &e, &mut Rng::new(9), 100);
        assert_eq!(a, b);
    }
}
