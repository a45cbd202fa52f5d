//! Native tests through the SDK harness, as the host would call the plugin.

use std::collections::BTreeMap;

use cauldron_sdk::testing::{Harness, Run as Outcome};

use super::*;

fn h() -> Harness<Dungeon> {
    Harness::with_content_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/content"))
}

/// 2023-11-14 22:13:20 UTC = 2023-11-15 06:13:20 in Shanghai.
const NOW: i64 = 1_700_000_000_000;

fn rich(level: f64) -> PlayerState {
    PlayerState::default()
        .with_stat("level", level)
        .with_stat("cultivation", 0.0)
        .with_stat("max_cultivation", 1000.0)
        .with_currency("spirit", 10_000_000)
        .with_currency("spirit_stones", 100_000)
}

fn strong() -> BTreeMap<String, f64> {
    [("attack", 1e7), ("health", 1e9), ("defense", 1e7), ("speed", 1e7)]
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

fn state_of(run: &Outcome) -> State {
    let after = run.player_after();
    if after.state.is_nil() {
        return State::default();
    }
    after.state.decode().expect("state decodes")
}

fn with_run(player: PlayerState, run: Run) -> PlayerState {
    player.with_state(&State {
        run: Some(run),
        ..State::default()
    })
}

fn run_at(floor: u32) -> Run {
    Run {
        difficulty: "normal".into(),
        floor,
        refreshes_left: 3,
        buffs: vec![],
        offer: vec!["vitality".into(), "insight".into(), "iron_wall".into()],
    }
}

fn score(run: &Outcome, board: &str) -> Option<f64> {
    run.effects().iter().find_map(|e| match e {
        Effect::SetScore { board: b, score } if b == board => Some(*score),
        _ => None,
    })
}

// ---------------------------------------------------------------------------------------------
// Manifest and content

#[test]
fn manifest_is_valid_and_every_declared_table_exists() {
    let h = h();
    let m = h.manifest();
    m.validate().expect("valid manifest");
    assert_eq!(m.name, "dungeon");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/content");
    for a in &m.actions {
        for t in &a.content {
            assert!(
                std::path::Path::new(&format!("{dir}/{t}.toml")).exists(),
                "{} declares missing table {t}",
                a.name
            );
        }
    }
    let hunt = m.action("hunt").expect("hunt");
    assert_eq!(hunt.params[0].name, "monster");
    assert!(hunt.params[0].required);
    assert_eq!(m.action("slay").expect("slay").params[0].name, "target");
    assert_eq!(m.action("dungeon_pick").expect("pick").params[0].name, "buff");
}

#[test]
fn a_herbs_table_that_does_not_decode_is_refused_at_load() {
    assert!(h().prepare().is_ok(), "the shipped tables load");
    // The dungeon's own `herbs` drop table (not alchemy's), with a weight that is not a number.
    let good = include_str!("../content/herbs.toml");
    let broken = good.replacen("weight = 0.25", "weight = \"a quarter\"", 1);
    assert_ne!(broken, good, "the test must actually break the table");
    let h = h().content_toml("herbs", &broken);
    let err = h.prepare().expect_err("a string weight refuses the load");
    assert_eq!(err.code(), "bad_content");
    let message = err.to_string();
    assert!(message.contains("content table `herbs`"), "{message}");
    // Refused at load, so even an action that never reads herbs answers with the fault.
    let run = h.action("status").player(rich(1.0)).now_ms(NOW).run();
    assert!(run.fault("bad_content").contains("`herbs`"));
}

#[test]
fn status_shows_caps_costs_and_tables() {
    let run = h().action("status").player(rich(1.0)).now_ms(NOW).run();
    let s: StatusReply = run.reply();
    assert_eq!((s.hunts.used, s.hunts.cap, s.hunts.spirit_cost), (0, 100, 60));
    assert_eq!((s.slays.used, s.slays.cap, s.slays.spirit_cost), (0, 20, 60));
    assert_eq!(s.beasts.len(), 9);
    assert_eq!(s.demons.len(), 6);
    assert_eq!(s.beasts[0].name, "赤焰虎");
    assert_eq!(s.demons[5].id, 106);
    assert!(s.run.is_none());
    // Spirit cost grows 1.2× per level: 60 × 1.2^9 = 309.6 → 310.
    let s: StatusReply = h().action("status").player(rich(10.0)).now_ms(NOW).run().reply();
    assert_eq!(s.hunts.spirit_cost, 310);
}

// ---------------------------------------------------------------------------------------------
// Dungeon runs

#[test]
fn start_begins_at_floor_one_with_three_distinct_buffs() {
    let run = h().action("dungeon_start").player(rich(1.0)).run();
    let r: RunReply = run.reply();
    assert_eq!(r.run.floor, 1);
    assert_eq!(r.run.refreshes_left, 3);
    assert_eq!(r.run.difficulty, "normal");
    assert_eq!(r.run.offer.len(), 3);
    let mut ids: Vec<_> = r.run.offer.iter().map(|b| b.id.clone()).collect();
    ids.dedup();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    // Floor 1 guardian on normal (×5): 1000·1·1.1, 50·1·1.08, 30·1·1.07 (each ×5, rounded),
    // speed 10·1.03 (difficulty leaves speed alone).
    assert_eq!(r.run.enemy.health, 5500.0);
    assert_eq!(r.run.enemy.attack, 270.0);
    assert_eq!(r.run.enemy.defense, 160.0);
    assert_eq!(r.run.enemy.speed, 10.0);
    assert_eq!(
        r.run.cost,
        Cost {
            spirit: 2880,
            spirit_stones: 10
        }
    );
    let saved = state_of(&run).run.expect("run saved");
    assert_eq!(saved.offer.len(), 3);
}

#[test]
fn start_continues_a_run_in_progress_and_restart_replaces_it() {
    let player = with_run(rich(1.0), run_at(7));
    let run = h().action("dungeon_start").player(player.clone()).run();
    let r: RunReply = run.reply();
    assert_eq!(r.run.floor, 7);
    assert!(run.effects().is_empty(), "continuing changes nothing");

    let run = h()
        .action("dungeon_start")
        .params(&BTreeMap::from([("difficulty", "hard")]))
        .player(player.clone())
        .run();
    run.rejected("run_in_progress");

    #[derive(Serialize)]
    struct P {
        difficulty: &'static str,
        restart: bool,
    }
    let run = h()
        .action("dungeon_start")
        .params(&P {
            difficulty: "hard",
            restart: true,
        })
        .player(player)
        .run();
    let r: RunReply = run.reply();
    assert_eq!((r.run.floor, r.run.difficulty.as_str()), (1, "hard"));
    // Hard multiplies the guardian's health/attack/defense by 10.
    assert_eq!(r.run.enemy.health, 11000.0);
}

#[test]
fn start_rejects_an_unknown_difficulty() {
    let run = h()
        .action("dungeon_start")
        .params(&BTreeMap::from([("difficulty", "nightmare")]))
        .player(rich(1.0))
        .run();
    run.rejected("bad_params");
}

#[test]
fn run_actions_need_a_run() {
    for action in ["dungeon_buffs", "dungeon_refresh", "dungeon_fight"] {
        h().action(action).player(rich(1.0)).run().rejected("no_run");
    }
    h().action("dungeon_pick")
        .params(&BTreeMap::from([("buff", "vitality")]))
        .player(rich(1.0))
        .run()
        .rejected("no_run");
}

#[test]
fn buffs_shows_the_offer_and_picked_buffs() {
    let mut r = run_at(3);
    r.buffs = vec!["war_sage".into()];
    let reply: RunReply = h()
        .action("dungeon_buffs")
        .player(with_run(rich(1.0), r))
        .run()
        .reply();
    assert_eq!(reply.run.buffs[0].name, "战圣至尊");
    assert_eq!(reply.run.offer[0].id, "vitality");
}

#[test]
fn refresh_rerolls_until_the_three_refreshes_are_spent() {
    let mut player = with_run(rich(1.0), run_at(1));
    for left in [2, 1, 0] {
        let run = h()
            .action("dungeon_refresh")
            .player(player.clone())
            .seed(u64::from(left))
            .run();
        let r: RunReply = run.reply();
        assert_eq!(r.run.refreshes_left, left);
        assert_eq!(r.run.offer.len(), 3);
        player = run.player_after();
    }
    h().action("dungeon_refresh")
        .player(player)
        .run()
        .rejected("no_refreshes");
}

#[test]
fn refresh_after_picking_is_refused() {
    let mut r = run_at(1);
    r.offer.clear();
    h().action("dungeon_refresh")
        .player(with_run(rich(1.0), r))
        .run()
        .rejected("no_offer");
}

#[test]
fn pick_takes_only_an_offered_buff_once_per_floor() {
    let player = with_run(rich(1.0), run_at(1));
    h().action("dungeon_pick")
        .params(&BTreeMap::from([("buff", "war_sage")]))
        .player(player.clone())
        .run()
        .rejected("not_offered");
    h().action("dungeon_pick")
        .player(player.clone())
        .run()
        .rejected("bad_params");
    let run = h()
        .action("dungeon_pick")
        .params(&BTreeMap::from([("buff", "insight")]))
        .player(player)
        .run();
    let r: RunReply = run.reply();
    assert_eq!(r.run.buffs.len(), 1);
    assert_eq!(r.run.buffs[0].id, "insight");
    assert!(r.run.offer.is_empty());
    h().action("dungeon_pick")
        .params(&BTreeMap::from([("buff", "vitality")]))
        .player(run.player_after())
        .run()
        .rejected("no_offer");
}

#[test]
fn winning_a_floor_pays_costs_and_rewards_and_advances() {
    let run = h()
        .action("dungeon_fight")
        .player(with_run(rich(1.0), run_at(1)))
        .effective_stats(strong())
        .run();
    let r: FightReply = run.reply();
    assert!(r.won);
    assert_eq!(r.battle.rounds, 1);
    // Normal pays ×2: R = round(20 × 2 × (1 + ln 2 / 3) × 1.3) = 64 for a 1-round win on floor 1.
    assert_eq!(
        r.rewards,
        DungeonRewards {
            spirit_stones: 64,
            reinforce_stones: 64,
            pet_essence: 64,
            refinement_stones: 32
        }
    );
    let after = run.player_after();
    assert_eq!(after.currencies["spirit"], 10_000_000 - 2880);
    assert_eq!(after.currencies["spirit_stones"], 100_000 - 10 + 64);
    assert_eq!(after.currencies["reinforce_stones"], 64);
    assert_eq!(after.currencies["pet_essence"], 64);
    assert_eq!(after.currencies["refinement_stones"], 32);
    assert_eq!(after.counters["best_floor"], 1);
    assert_eq!(score(&run, "dungeon"), Some(1.0));
    let s = state_of(&run);
    assert_eq!(s.best_floor, 1);
    let next = s.run.expect("run continues");
    assert_eq!(next.floor, 2);
    assert_eq!(next.offer.len(), 3);
    assert_eq!(run.events()[0].0, "dungeon_floor_cleared");
    assert_eq!(r.run.map(|v| v.floor), Some(2));
}

#[test]
fn clearing_a_floor_below_the_record_does_not_move_it() {
    let player = rich(1.0).with_state(&State {
        run: Some(run_at(2)),
        best_floor: 5,
        ..State::default()
    });
    let run = h()
        .action("dungeon_fight")
        .player(player)
        .effective_stats(strong())
        .run();
    assert!(run.reply::<FightReply>().won);
    assert_eq!(score(&run, "dungeon"), None);
    assert!(!run.player_after().counters.contains_key("best_floor"));
    assert_eq!(state_of(&run).best_floor, 5);
}

#[test]
fn losing_ends_the_run_and_keeps_the_costs() {
    let run = h()
        .action("dungeon_fight")
        .player(with_run(rich(1.0), run_at(3)))
        .effective_stats(weak())
        .run();
    let r: FightReply = run.reply();
    assert!(!r.won);
    assert_eq!(r.rewards, DungeonRewards::default());
    assert!(r.run.is_none());
    let after = run.player_after();
    assert_eq!(after.currencies["spirit_stones"], 100_000 - 30);
    assert_eq!(after.currencies["spirit"], 10_000_000 - 2880);
    assert!(state_of(&run).run.is_none());
    assert!(run.events().is_empty());
}

#[test]
fn fight_needs_spirit_and_stones() {
    let poor_spirit = rich(1.0).with_currency("spirit", 2879);
    h().action("dungeon_fight")
        .player(with_run(poor_spirit, run_at(1)))
        .effective_stats(strong())
        .run()
        .rejected("insufficient");
    let poor_stones = rich(1.0).with_currency("spirit_stones", 49);
    h().action("dungeon_fight")
        .player(with_run(poor_stones, run_at(5)))
        .effective_stats(strong())
        .run()
        .rejected("insufficient");
}

#[test]
fn picked_buffs_change_the_fighter() {
    let mut r = run_at(1);
    r.buffs = vec!["immortal_body".into(), "vitality".into()];
    let mut stats = strong();
    stats.insert("health".into(), 1000.0);
    let run = h()
        .action("dungeon_fight")
        .player(with_run(rich(1.0), r))
        .effective_stats(stats)
        .run();
    // ×2 then ×1.1: multiplicative buffs compound.
    assert_eq!(run.reply::<FightReply>().battle.player_max_health, 2200.0);
}

#[test]
fn client_params_cannot_change_the_fight() {
    let run = h()
        .action("dungeon_fight")
        .params(&BTreeMap::from([("attack", 1e12), ("health", 1e12)]))
        .player(with_run(rich(1.0), run_at(1)))
        .effective_stats(weak())
        .run();
    assert!(!run.reply::<FightReply>().won);
}

/// A player whose attack exceeds the easy floor-1 guardian's defense (round(32.1 × 0.8) = 26) by
/// `base`, who never misses, crits, combos or is stunned, and whom the guardian cannot drain. The
/// guardian's final damage reduction on floor 1 (0.05 + 0.02) lets round(0.93 × base) through.
fn steady(base: f64) -> BTreeMap<String, f64> {
    let mut s = strong();
    s.insert("attack".into(), 26.0 + base);
    for resist in [
        "dodge_resist",
        "stun_resist",
        "crit_resist",
        "combo_resist",
        "vampire_resist",
    ] {
        s.insert(resist.into(), 1.0);
    }
    s
}

#[test]
fn reward_follows_difficulty_depth_and_fight_length() {
    let fight = |difficulty: &str, floor: u32, stats: BTreeMap<String, f64>| -> FightReply {
        let mut run = run_at(floor);
        run.difficulty = difficulty.into();
        h().action("dungeon_fight")
            .player(with_run(rich(1.0), run))
            .effective_stats(stats)
            .run()
            .reply()
    };
    // Floor 10 in one round on normal (reward ×2): 20 × 2 × (1 + ln 11 / 3) × 1.3 = 93.6 → 94.
    let r = fight("normal", 10, strong());
    assert_eq!((r.battle.rounds, r.rewards.spirit_stones), (1, 94));
    // The same on expert (×5): 233.9 → 234; on hard (×3.5): 163.7 → 164.
    let r = fight("expert", 10, strong());
    assert_eq!((r.battle.rounds, r.rewards.spirit_stones), (1, 234));
    let r = fight("hard", 10, strong());
    assert_eq!((r.battle.rounds, r.rewards.spirit_stones), (1, 164));
    // Easy (reward ×1) floor 1 has 880 HP. At round(0.93 × 86) = 80 a hit: 11 rounds pay ×1.1:
    // 20 × 1.231 × 1.1 = 27.1 → 27.
    let r = fight("easy", 1, steady(86.0));
    assert_eq!((r.battle.rounds, r.rewards.spirit_stones), (11, 27));
    // At round(0.93 × 30) = 28 a hit: 32 rounds pay ×1.0: 24.6 → 25, and half of it in
    // refinement stones.
    let r = fight("easy", 1, steady(30.0));
    assert_eq!((r.battle.rounds, r.rewards.spirit_stones), (32, 25));
    assert_eq!(r.rewards.refinement_stones, 12);
}

#[test]
fn the_guardian_grows_specials_with_the_floor() {
    // Floor 5: final damage reduction 0.05 + 0.02 × 5 = 0.15, so a strong player's blow of
    // 1e7 − defence (never dodged) lands at 85 %.
    let mut run = run_at(5);
    run.difficulty = "easy".into();
    let mut stats = strong();
    stats.insert("dodge_resist".into(), 1.0);
    let r: FightReply = h()
        .action("dungeon_fight")
        .player(with_run(rich(1.0), run))
        .effective_stats(stats)
        .run()
        .reply();
    assert!(r.won);
    let first = &r.battle.log[0].actions[0];
    assert_eq!(first.actor, battle::Side::Player);
    // Easy floor 5 defence: round(30 × 5 × 1.35 × 0.8) = 162.
    assert_eq!(first.damage, ((1e7 - 162.0) * 0.85_f64).round());
}

// ---------------------------------------------------------------------------------------------
// Hunts

fn hunt_p(id: i64) -> BTreeMap<&'static str, i64> {
    BTreeMap::from([("monster", id)])
}

fn slay_p(id: i64) -> BTreeMap<&'static str, i64> {
    BTreeMap::from([("target", id)])
}

#[test]
fn hunt_win_drops_the_beasts_herb_and_uses_a_slot() {
    let run = h()
        .action("hunt")
        .params(&hunt_p(4))
        .player(rich(1.0))
        .effective_stats(strong())
        .now_ms(NOW)
        .run();
    let r: HuntReply = run.reply();
    assert!(r.won);
    assert_eq!(r.name, "黑水玄蛇");
    assert_eq!(
        r.drops,
        vec![Drop {
            item: "herb:dragon_breath_herb".into(),
            qty: 3
        }]
    );
    assert_eq!((r.used_today, r.daily_cap, r.spirit_spent), (1, 100, 60));
    let after = run.player_after();
    assert_eq!(after.items["herb:dragon_breath_herb"], 3);
    assert_eq!(after.currencies["spirit"], 10_000_000 - 60);
    assert_eq!(state_of(&run).hunts_today, 1);
}

#[test]
fn hunt_loss_drops_nothing_but_costs_spirit_and_a_slot() {
    let run = h()
        .action("hunt")
        .params(&hunt_p(7))
        .player(rich(1.0))
        .effective_stats(weak())
        .now_ms(NOW)
        .run();
    let r: HuntReply = run.reply();
    assert!(!r.won);
    assert!(r.drops.is_empty());
    assert!(run.player_after().items.is_empty());
    assert_eq!(state_of(&run).hunts_today, 1);
    assert_eq!(run.player_after().currencies["spirit"], 10_000_000 - 60);
}

#[test]
fn moon_toad_drops_one_herb_chosen_by_weight() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..200 {
        let run = h()
            .action("hunt")
            .params(&hunt_p(9))
            .player(rich(1.0))
            .effective_stats(strong())
            .seed(seed)
            .run();
        let r: HuntReply = run.reply();
        assert_eq!(r.drops.len(), 1);
        assert_eq!(r.drops[0].qty, 1);
        seen.insert(r.drops[0].item.clone());
    }
    assert!(seen.contains("herb:spirit_grass") && seen.contains("herb:frost_lotus"));
    assert!(seen.iter().all(|i| i.starts_with("herb:")));
    assert!(seen.len() >= 6, "{seen:?}");
}

#[test]
fn hunt_rejects_unknown_beasts_and_missing_params() {
    for id in [0, 10, 101] {
        h().action("hunt")
            .params(&hunt_p(id))
            .player(rich(1.0))
            .run()
            .rejected("not_found");
    }
    h().action("hunt").player(rich(1.0)).run().rejected("bad_params");
}

#[test]
fn hunt_without_spirit_is_refused_and_uses_no_slot() {
    let run = h()
        .action("hunt")
        .params(&hunt_p(1))
        .player(rich(1.0).with_currency("spirit", 59))
        .effective_stats(strong())
        .run();
    run.rejected("insufficient");
}

#[test]
fn hunt_daily_cap_resets_at_shanghai_midnight() {
    let day = shanghai_day(NOW);
    let full = State {
        day,
        hunts_today: 100,
        ..State::default()
    };
    let player = rich(1.0).with_state(&full);
    h().action("hunt")
        .params(&hunt_p(1))
        .player(player.clone())
        .effective_stats(strong())
        .now_ms(NOW)
        .run()
        .rejected("daily_cap");
    // Shanghai midnight is 16:00 UTC: one ms before it is still the same day.
    let midnight = (day + 1) * DAY_MS - SHANGHAI_OFFSET_MS;
    h().action("hunt")
        .params(&hunt_p(1))
        .player(player.clone())
        .effective_stats(strong())
        .now_ms(midnight - 1)
        .run()
        .rejected("daily_cap");
    let run = h()
        .action("hunt")
        .params(&hunt_p(1))
        .player(player)
        .effective_stats(strong())
        .now_ms(midnight)
        .run();
    assert_eq!(run.reply::<HuntReply>().used_today, 1);
    // Slay has its own tally: a full hunt day leaves slaying open.
    let run = h()
        .action("slay")
        .params(&slay_p(101))
        .player(rich(1.0).with_state(&full))
        .effective_stats(strong())
        .now_ms(NOW)
        .run();
    assert_eq!(run.reply::<HuntReply>().used_today, 1);
}

#[test]
fn slay_pays_stones_and_capped_cultivation() {
    let player = rich(1.0)
        .with_stat("cultivation", 90.0)
        .with_stat("max_cultivation", 100.0);
    let run = h()
        .action("slay")
        .params(&slay_p(102))
        .player(player)
        .effective_stats(strong())
        .run();
    let r: HuntReply = run.reply();
    assert!(r.won);
    // Level 1, a quick win: stones (50 + 5) / 2 = 27, cultivation (50 + 10) / 2 = 30, capped to 10.
    assert_eq!(r.spirit_stones, 27);
    assert_eq!(r.cultivation, 10.0);
    assert_eq!(
        r.drops,
        vec![Drop {
            item: "chest:equipment".into(),
            qty: 1
        }]
    );
    let after = run.player_after();
    assert_eq!(after.stats["cultivation"], 100.0);
    assert_eq!(after.currencies["spirit_stones"], 100_000 + 27);
    assert_eq!(after.items["chest:equipment"], 1);
}

#[test]
fn beast_king_traitor_drops_a_pet_egg() {
    let run = h()
        .action("slay")
        .params(&slay_p(103))
        .player(rich(1.0))
        .effective_stats(strong())
        .run();
    assert_eq!(run.player_after().items["egg:pet"], 1);
    assert_eq!(run.reply::<HuntReply>().cultivation, 30.0);
}

#[test]
fn fragment_drops_follow_their_chances() {
    let mut hits = 0;
    let n = 2000;
    for seed in 0..n {
        let run = h()
            .action("slay")
            .params(&slay_p(106))
            .player(rich(1.0))
            .effective_stats(strong())
            .seed(seed)
            .run();
        let r: HuntReply = run.reply();
        if let Some(d) = r.drops.first() {
            assert_eq!(d.item, "fragment:du_jie_pill");
            hits += 1;
        }
    }
    let share = f64::from(hits) / n as f64;
    assert!((share - 0.6).abs() < 0.04, "du jie share {share}");
    let mut hits = 0;
    for seed in 0..n {
        let r: HuntReply = h()
            .action("slay")
            .params(&slay_p(101))
            .player(rich(1.0))
            .effective_stats(strong())
            .seed(seed)
            .run()
            .reply();
        if let Some(d) = r.drops.first() {
            assert!(d.item.starts_with("fragment:"));
            hits += 1;
        }
    }
    let share = f64::from(hits) / n as f64;
    assert!((share - 0.2).abs() < 0.03, "fragment share {share}");
}

#[test]
fn slay_cap_and_unknown_target() {
    let full = State {
        day: shanghai_day(NOW),
        slays_today: 20,
        ..State::default()
    };
    h().action("slay")
        .params(&slay_p(101))
        .player(rich(1.0).with_state(&full))
        .effective_stats(strong())
        .now_ms(NOW)
        .run()
        .rejected("daily_cap");
    h().action("slay")
        .params(&slay_p(107))
        .player(rich(1.0))
        .run()
        .rejected("not_found");
    h().action("slay")
        .params(&slay_p(101))
        .player(rich(1.0).with_currency("spirit", 0))
        .run()
        .rejected("insufficient");
}

#[test]
fn same_call_same_outcome() {
    let mut stats = BTreeMap::new();
    for (k, v) in [
        ("attack", 120.0),
        ("health", 1500.0),
        ("defense", 40.0),
        ("speed", 12.0),
        ("crit_rate", 0.3),
        ("dodge_rate", 0.2),
    ] {
        stats.insert(k.to_owned(), v);
    }
    let call = || {
        h().action("dungeon_fight")
            .player(with_run(rich(1.0), run_at(2)))
            .effective_stats(stats.clone())
            .seed(99)
            .run()
            .outcome
    };
    assert_eq!(call(), call());
    let hunt = || {
        h().action("hunt")
            .params(&hunt_p(9))
            .player(rich(1.0))
            .effective_stats(stats.clone())
            .seed(5)
            .run()
            .outcome
    };
    assert_eq!(hunt(), hunt());
}
