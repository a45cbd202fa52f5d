//! Native tests through the SDK harness, as the host would call the plugin.

use std::collections::BTreeMap;

use cauldron_sdk::testing::{Harness, Run};
use serde_json::json;

use super::*;

fn h() -> Harness<Duel> {
    Harness::with_content_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/content"))
}

fn table() -> DuelTable {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/content/duel.toml"))
        .expect("content/duel.toml");
    toml::from_str(&text).expect("duel.toml decodes")
}

/// 2023-11-14 22:13:20 UTC = 2023-11-15 06:13:20 in Shanghai.
const NOW: i64 = 1_700_000_000_000;
/// 2023-11-15 00:00:00 in Shanghai (16:00 UTC the day before).
const SHANGHAI_MIDNIGHT: i64 = 1_699_977_600_000;

const ME: i64 = 1;
const THEM: i64 = 2;

fn me(level: f64) -> PlayerState {
    PlayerState {
        id: ME,
        name: "青云子".into(),
        ..PlayerState::default()
    }
    .with_stat("level", level)
    .with_stat("cultivation", 0.0)
    .with_stat("max_cultivation", 1_000_000.0)
    .with_currency("spirit", 10_000_000)
    .with_currency("spirit_stones", 100)
}

fn opponent(attack: f64, health: f64) -> PlayerState {
    PlayerState {
        id: THEM,
        name: "紫霞仙子".into(),
        ..PlayerState::default()
    }
    .with_stat("level", 9.0)
    .with_stat("attack", attack)
    .with_stat("health", health)
    .with_stat("speed", 1.0)
    // Private things a duel must never see.
    .with_currency("spirit_stones", 777)
    .with_item("herb:secret", 3)
    .with_state(&json!({"secret": true}))
}

/// Effective stats that win any duel against `opponent(1, 1)` in round one.
fn strong() -> BTreeMap<String, f64> {
    [("attack", 1e6), ("health", 1e9), ("defense", 0.0), ("speed", 1e6)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

fn weak() -> BTreeMap<String, f64> {
    [("attack", 1.0), ("health", 1.0), ("defense", 0.0), ("speed", 0.0)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

fn duel(h: &Harness<Duel>, player: PlayerState, stats: BTreeMap<String, f64>, other: &PlayerState) -> Run {
    h.action("challenge")
        .player(player)
        .effective_stats(stats)
        .other_player(other)
        .params(&json!({"opponent": other.id}))
        .now_ms(NOW)
        .seed(11)
        .run()
}

fn state_of(run: &Run) -> State {
    let after = run.player_after();
    after.state.decode().expect("state decodes")
}

#[test]
fn the_manifest_declares_reading_the_opponent_and_validates() {
    let h = h();
    let m = h.manifest();
    m.validate().expect("valid manifest");
    let challenge = m.action("challenge").expect("challenge");
    assert_eq!(challenge.reads_player, "opponent");
    assert!(
        challenge
            .params
            .iter()
            .any(|p| p.name == "opponent" && p.ty == ParamType::Player)
    );
    assert!(m.action("status").is_some_and(|a| a.query));
    assert!(m.action("records").is_some_and(|a| a.query));
    h.prepare().expect("content prepares");
}

#[test]
fn a_win_pays_stones_and_cultivation_and_counts_the_day() {
    let h = h();
    let run = duel(&h, me(7.0), strong(), &opponent(1.0, 1.0));
    let r: ChallengeReply = run.reply();
    assert!(r.won);
    assert_eq!(r.battle.rounds, 1);
    let t = table();
    let cost = t.spirit_cost(7.0);
    assert_eq!(r.spirit_spent, cost);
    let (stones, cultivation) = t.win_reward(7.0, 1, r.multiplier);
    assert_eq!(r.spirit_stones, stones);
    assert_eq!(r.cultivation, cultivation as f64);
    let after = run.player_after();
    assert_eq!(after.currencies["spirit"], 10_000_000 - cost);
    assert_eq!(after.currencies["spirit_stones"], 100 + stones);
    assert_eq!(after.stats["cultivation"], cultivation as f64);
    let s = state_of(&run);
    assert_eq!(
        (s.today, s.wins, s.losses, s.streak, s.best_streak),
        (1, 1, 0, 1, 1)
    );
    assert_eq!(s.recent[0].opponent_id, THEM);
    assert_eq!(s.recent[0].opponent_name, "紫霞仙子");
    assert!(
        run.effects()
            .iter()
            .any(|e| matches!(e, Effect::SetScore { board, score } if board == "duel" && *score == 1.0))
    );
    assert_eq!(run.events()[0].0, "duel_won");
    // The fight ran on both sides' effective stats.
    assert_eq!(r.me.fighter.attack, 1e6);
    assert_eq!(r.opponent.fighter.health, 1.0);
    assert_eq!(r.opponent.name, "紫霞仙子");
}

#[test]
fn a_loss_pays_nothing_but_costs_spirit_and_breaks_the_streak() {
    let h = h();
    let before = me(8.0).with_state(&State {
        day: shanghai_day(NOW),
        today: 3,
        wins: 4,
        losses: 1,
        streak: 4,
        best_streak: 4,
        recent: vec![],
    });
    let run = duel(&h, before, weak(), &opponent(1e6, 1e9));
    let r: ChallengeReply = run.reply();
    assert!(!r.won);
    assert_eq!((r.spirit_stones, r.cultivation, r.multiplier), (0, 0.0, 1.0));
    let after = run.player_after();
    assert_eq!(after.currencies["spirit_stones"], 100);
    assert_eq!(after.currencies["spirit"], 10_000_000 - table().spirit_cost(8.0));
    let s = state_of(&run);
    assert_eq!(
        (s.today, s.wins, s.losses, s.streak, s.best_streak),
        (4, 4, 2, 0, 4)
    );
    assert!(!run.effects().iter().any(|e| matches!(e, Effect::SetScore { .. })));
    assert_eq!(r.stats.win_rate, 4.0 / 6.0);
}

#[test]
fn streaks_and_win_rate_follow_the_results() {
    let h = h();
    let mut player = me(10.0);
    let results = [true, true, false, true, true, true, false];
    for won in results {
        let (stats, other) = if won {
            (strong(), opponent(1.0, 1.0))
        } else {
            (weak(), opponent(1e6, 1e9))
        };
        let run = duel(&h, player.clone(), stats, &other);
        player = run.player_after();
    }
    let run = h.action("records").player(player).run();
    let r: RecordsReply = run.reply();
    assert_eq!(r.stats.total, 7);
    assert_eq!((r.stats.wins, r.stats.losses), (5, 2));
    assert_eq!(r.stats.current_streak, 0);
    assert_eq!(r.stats.best_streak, 3);
    assert!((r.stats.win_rate - 5.0 / 7.0).abs() < 1e-12);
    let wins: Vec<bool> = r.records.iter().map(|x| x.won).collect();
    let mut newest_first = results.to_vec();
    newest_first.reverse();
    assert_eq!(wins, newest_first);
}

#[test]
fn below_realm_level_seven_is_refused_and_changes_nothing() {
    let h = h();
    let run = duel(&h, me(6.0), strong(), &opponent(1.0, 1.0));
    let message = run.rejected("level_too_low");
    assert!(message.contains('7'), "{message}");
    assert!(duel(&h, me(7.0), strong(), &opponent(1.0, 1.0)).is_ok());
}

#[test]
fn dueling_yourself_is_refused() {
    let h = h();
    let mut myself = me(9.0);
    myself.id = ME;
    let run = h
        .action("challenge")
        .player(me(9.0))
        .effective_stats(strong())
        .other_player(&myself)
        .params(&json!({"opponent": ME}))
        .run();
    run.rejected("self_duel");
}

#[test]
fn a_missing_opponent_or_param_is_refused() {
    let h = h();
    let run = h.action("challenge").player(me(9.0)).params(&json!({})).run();
    run.rejected(reject_codes::BAD_PARAMS);
    let run = h
        .action("challenge")
        .player(me(9.0))
        .params(&json!({"opponent": "two"}))
        .run();
    run.rejected(reject_codes::BAD_PARAMS);
    // The host found no such player, so the call carries no view of one.
    let run = h
        .action("challenge")
        .player(me(9.0))
        .params(&json!({"opponent": 99}))
        .run();
    run.rejected(reject_codes::NOT_FOUND);
}

#[test]
fn the_daily_cap_is_twenty_per_shanghai_day() {
    let h = h();
    let cap = table().daily_cap;
    assert_eq!(cap, 20);
    let mut player = me(9.0);
    for i in 0..cap {
        let run = duel(&h, player.clone(), strong(), &opponent(1.0, 1.0));
        assert_eq!(run.reply::<ChallengeReply>().used_today, i + 1);
        player = run.player_after();
    }
    let run = duel(&h, player.clone(), strong(), &opponent(1.0, 1.0));
    let message = run.rejected("daily_cap");
    assert!(message.contains("20 of 20"), "{message}");

    // One millisecond before midnight in Shanghai it is still the same day; at midnight a new one.
    let at = |now: i64| {
        h.action("challenge")
            .player(player.clone())
            .effective_stats(strong())
            .other_player(&opponent(1.0, 1.0))
            .params(&json!({"opponent": THEM}))
            .now_ms(now)
            .run()
    };
    let next_midnight = SHANGHAI_MIDNIGHT + 86_400_000;
    at(next_midnight - 1).rejected("daily_cap");
    let run = at(next_midnight);
    assert_eq!(run.reply::<ChallengeReply>().used_today, 1);
    // 16:00 UTC is the Shanghai midnight: 15:59:59.999 UTC still counts as the day before.
    assert_eq!(
        shanghai_day(SHANGHAI_MIDNIGHT) - shanghai_day(SHANGHAI_MIDNIGHT - 1),
        1
    );
    assert_eq!(shanghai_day(NOW), shanghai_day(SHANGHAI_MIDNIGHT));
}

#[test]
fn a_refused_duel_uses_no_slot() {
    let h = h();
    let poor = me(9.0).with_currency("spirit", 10);
    let run = duel(&h, poor, strong(), &opponent(1.0, 1.0));
    let message = run.rejected(reject_codes::INSUFFICIENT);
    assert!(
        message.contains(&table().spirit_cost(9.0).to_string()),
        "{message}"
    );
}

#[test]
fn the_spirit_cost_is_720_times_1_2_to_the_level_minus_one() {
    let t = table();
    for level in 1..=40 {
        let l = f64::from(level);
        assert_eq!(
            t.spirit_cost(l),
            (720.0 * 1.2f64.powi(level - 1)).round() as i64,
            "level {level}"
        );
    }
    assert_eq!(t.spirit_cost(1.0), 720);
    assert_eq!(t.spirit_cost(7.0), 2150);
    // The status query shows the same cost for the player's own level.
    let h = h();
    let r: StatusReply = h.action("status").player(me(12.0)).now_ms(NOW).run().reply();
    assert_eq!(r.spirit_cost, t.spirit_cost(12.0));
    assert!(r.eligible);
    assert_eq!((r.used_today, r.daily_cap), (0, 20));
    let r: StatusReply = h.action("status").player(me(3.0)).run().reply();
    assert!(!r.eligible);
}

#[test]
fn win_rewards_follow_the_seed_formula() {
    let t = table();
    // Level 1, one round: base 50, bonuses 5 and 10.
    assert_eq!(t.win_reward(1.0, 1, 1.0), (55, 60));
    // Level 27: ⌊50 × 1.05^26⌋ = 177.
    assert_eq!(t.win_reward(27.0, 1, 1.0), (182, 187));
    // Slow fights lose the bonus: 45 rounds → −2; 200 rounds → none.
    assert_eq!(t.win_reward(1.0, 45, 1.0), (53, 58));
    assert_eq!(t.win_reward(1.0, 200, 1.0), (50, 50));
    // The multiplier applies to both, rounded down.
    assert_eq!(t.win_reward(1.0, 1, 2.5), (137, 150));
    assert_eq!(t.win_reward(1.0, 1, 3.0), (165, 180));
}

#[test]
fn cultivation_stops_at_the_cap() {
    let h = h();
    let player = me(9.0)
        .with_stat("cultivation", 990.0)
        .with_stat("max_cultivation", 1000.0);
    let run = duel(&h, player, strong(), &opponent(1.0, 1.0));
    let r: ChallengeReply = run.reply();
    assert_eq!(r.cultivation, 10.0);
    assert_eq!(run.player_after().stats["cultivation"], 1000.0);
}

#[test]
fn multipliers_are_drawn_with_their_stated_odds() {
    // 100,000 draws from a fixed seed: each share within 0.5 percentage points (the 69 % bucket's
    // standard error is about 0.15 points, so this never fails by chance with this seed).
    let t = table();
    let mut rng = Rng::new(0xD0E1);
    let n = 100_000;
    let mut counts: BTreeMap<u64, u32> = BTreeMap::new();
    for _ in 0..n {
        *counts.entry(t.draw_multiplier(&mut rng).to_bits()).or_default() += 1;
    }
    let want = [(3.0, 0.01), (2.5, 0.05), (2.0, 0.10), (1.5, 0.15), (1.0, 0.69)];
    assert_eq!(counts.len(), want.len());
    for (value, chance) in want {
        let share = f64::from(counts[&f64::to_bits(value)]) / f64::from(n);
        assert!(
            (share - chance).abs() < 0.005,
            "×{value}: drawn {share}, stated {chance}"
        );
    }
}

#[test]
fn the_opponent_view_has_no_private_state_and_gear_is_shown() {
    let h = h();
    let sword = json!({"name": "青竹剑", "slot": "weapon", "quality": "rare", "enhance_level": 3,
        "equipped": true, "stats": {"attack": 5.0}});
    let spare = json!({"name": "破布衣", "slot": "armor", "quality": "common", "equipped": false});
    let pet = json!({"name": "小白", "quality": "epic", "level": 4, "star": 2, "active": true});
    let other = opponent(1.0, 1.0)
        .with_entity("e1", EQUIPMENT, &sword)
        .with_entity("e2", EQUIPMENT, &spare)
        .with_entity("p1", PET, &pet)
        .with_entity("x1", "artifact", &json!({"hidden": true}));
    let call = h
        .action("challenge")
        .player(me(9.0))
        .effective_stats(strong())
        .other_player(&other)
        .other_effective("attack", 2.0)
        .params(&json!({"opponent": THEM}))
        .build();
    let run = h.run(call);
    let r: ChallengeReply = run.reply();
    assert_eq!(r.opponent.fighter.attack, 2.0, "effective stats are fought with");
    assert_eq!(r.opponent.equipment.len(), 1);
    assert_eq!(r.opponent.equipment[0].name, "青竹剑");
    assert_eq!(r.opponent.pet.as_ref().map(|p| p.name.as_str()), Some("小白"));
    assert_eq!(r.opponent.level, 9.0);
    // Effects touch the challenger's own state only: nothing names the opponent's entities.
    for e in run.effects() {
        match e {
            Effect::UpdateEntity { .. } | Effect::DeleteEntity { .. } | Effect::CreateEntity { .. } => {
                panic!("duel changed an entity: {e:?}")
            }
            _ => {}
        }
    }
}
