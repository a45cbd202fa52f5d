//! Each action's success and rejections, as a player would see them.

mod common;

use cauldron_plugin_cultivation::reply::{
    CheckinReply, ExploreReply, FormationReply, Info, MeditateReply, StartReply, Status, TribulationReply,
};
use cauldron_plugin_cultivation::state::State;
use cauldron_sdk::testing::Harness;
use cauldron_sdk::wire::{Outcome, PlayerState, Section};
use common::*;
use serde::Serialize;

#[derive(Serialize)]
struct Gear<'a> {
    name: &'a str,
    quality: &'a str,
}

// ---------------------------------------------------------------------------------------------- start

#[test]
fn manifest_declares_actions_sections_and_tables() {
    let h = harness();
    let m = h.manifest();
    let names: Vec<&str> = m.actions.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "start",
            "gather",
            "meditate",
            "formation",
            "tribulation",
            "explore",
            "checkin",
            "info"
        ]
    );
    assert!(m.validate().is_ok());
    let trib = m.action("tribulation").unwrap();
    assert_eq!(trib.kinds, ["equipment", "pet"]);
    assert!(trib.reads.contains(&Section::Entities));
    assert!(m.action("explore").unwrap().reads.contains(&Section::Counters));
    for a in &m.actions {
        for t in &a.content {
            assert!(
                std::path::Path::new(&format!("{CONTENT}/{t}.toml")).exists(),
                "{} declares missing table {t}",
                a.name
            );
        }
    }
}

#[test]
fn start_creates_a_level_one_character() {
    let h = harness();
    let run = h.action("start").now_ms(T0).run();
    let reply: StartReply = run.reply();
    assert!(reply.created);
    assert_eq!(reply.realm.name, "练气期一层");
    assert_eq!(reply.realm.gloss, "Qi Refining, layer 1");
    let p = run.player_after();
    for (name, want) in [
        ("level", 1.0),
        ("cultivation", 0.0),
        ("max_cultivation", 199.0),
        ("attack", 10.0),
        ("health", 100.0),
        ("defense", 5.0),
        ("speed", 10.0),
        ("spirit_rate", 1.0),
        ("cultivation_rate", 1.0),
        ("du_jie_rate", 0.05),
        ("luck", 1.0),
    ] {
        assert_eq!(stat(&p, name), want, "{name}");
    }
    assert_eq!(cur(&p, "spirit"), 0);
    assert_eq!(scores(&run), [("realm".to_owned(), 1.0)]);
    let st = state_of(&p);
    assert!(st.started);
    assert_eq!(st.last_accrual_ms, T0);
}

#[test]
fn start_twice_changes_nothing() {
    let h = harness();
    let p = at_level(&h, 10, 123.0, 50);
    let run = h.action("start").now_ms(T0 + HOUR).player(p.clone()).run();
    assert!(run.effects().is_empty());
    let reply: StartReply = run.reply();
    assert!(!reply.created);
    assert_eq!(reply.realm.level, 10);
    assert_eq!(reply.realm.name, "筑基期一层");
}

#[test]
fn every_action_needs_a_started_character() {
    let h = harness();
    let fresh = PlayerState::default()
        .with_stat("level", 5.0)
        .with_currency("spirit", 1_000_000)
        .with_currency("spirit_stones", 1_000_000);
    for action in [
        "gather",
        "meditate",
        "formation",
        "tribulation",
        "explore",
        "checkin",
    ] {
        let run = h.action(action).player(fresh.clone()).run();
        let msg = run.rejected("not_started");
        assert!(msg.contains("start"), "{action}: {msg}");
    }
}

#[test]
fn info_needs_no_character_and_shows_true_odds() {
    let h = harness();
    let info: Info = h.action("info").run().reply();
    assert_eq!(info.realms.len(), 135);
    assert_eq!(info.realms[0].name, "练气期一层");
    assert_eq!(info.realms[26].name, "金丹期九层");
    assert_eq!(info.realms[27].name, "元婴期一层");
    assert_eq!(info.realms[27].gloss, "Nascent Soul, layer 1");
    assert_eq!(info.realms[134].name, "大罗期九层");
    assert_eq!(info.realms[134].threshold, 140_000_000.0);
    assert_eq!(
        info.realms[81].threshold, 500_000.0,
        "散仙 starts again at 500 000"
    );
    assert_eq!(info.tribulation_level, 27);
    let luck_total: f64 = info.luck.iter().map(|o| o.probability).sum();
    assert!((luck_total - 1.0).abs() < 1e-9);
    assert!((info.luck_expected - 2.29).abs() < 1e-9);
    let events_total: f64 = info.explore_events.iter().map(|o| o.probability).sum();
    assert!((events_total - 0.7).abs() < 1e-9);
    let enlightenment = info.explore_events.iter().find(|o| o.name == "灵山顿悟").unwrap();
    assert!((enlightenment.probability - 0.035).abs() < 1e-9);
    assert_eq!(info.checkin_rewards, [1000, 2000, 3000, 4000, 5000, 6000, 10000]);
    let herb_total: f64 = info.herbs.iter().map(|o| o.probability).sum();
    assert!((herb_total - 1.0).abs() < 1e-9);
}

#[test]
fn broken_content_is_a_fault_naming_the_table() {
    let text = content_text("realms").replacen("[199, 299,", "[299,", 1);
    let h = harness().content_toml("realms", &text);
    let p = started(&harness());
    let run = h.action("gather").player(p).now_ms(T0).run();
    let msg = run.fault("bad_content");
    assert!(msg.contains("realms") && msg.contains("练气"), "{msg}");
}

// ------------------------------------------------------------------------------------- spirit income

#[test]
fn spirit_accrues_lazily_at_the_spirit_rate() {
    let h = harness();
    let p = started(&h);
    let run = h.action("gather").player(p).now_ms(T0 + 100 * SECOND).run();
    let status: Status = run.reply();
    assert_eq!(status.accrual.gained, 100);
    assert_eq!(status.spirit, 100);
    assert_eq!(cur(&run.player_after(), "spirit"), 100);
    assert_eq!(state_of(&run.player_after()).last_accrual_ms, T0 + 100 * SECOND);
}

#[test]
fn fractions_of_spirit_carry_over_between_calls() {
    let h = harness();
    // Level 3: spirit_rate = round2(1.2^2) = 1.44 per second.
    let mut p = started(&h).with_stat("level", 3.0).with_stat("spirit_rate", 1.44);
    let mut now = T0;
    let mut gains = Vec::new();
    for _ in 0..10 {
        now += 10 * SECOND;
        let run = h.action("gather").player(p.clone()).now_ms(now).run();
        gains.push(run.reply::<Status>().accrual.gained);
        p = run.player_after();
    }
    // 100 s at 1.44/s = 144 exactly; no call ever paid more than was earned.
    assert_eq!(cur(&p, "spirit"), 144);
    assert!(gains.iter().all(|g| *g == 14 || *g == 15), "{gains:?}");
}

#[test]
fn accrual_uses_the_effective_spirit_rate() {
    let h = harness();
    let p = started(&h);
    let run = h
        .action("gather")
        .player(p)
        .effective("spirit_rate", 2.5)
        .now_ms(T0 + 100 * SECOND)
        .run();
    assert_eq!(cur(&run.player_after(), "spirit"), 250);
}

#[test]
fn offline_income_is_capped_at_24_hours() {
    let h = harness();
    let p = started(&h);
    let run = h.action("gather").player(p).now_ms(T0 + 48 * HOUR).run();
    let status: Status = run.reply();
    assert_eq!(status.accrual.elapsed_ms, 48 * HOUR);
    assert_eq!(status.accrual.counted_ms, 24 * HOUR);
    assert_eq!(status.spirit, 86_400);
    // The clock moved on: an immediate second call earns nothing more.
    let again = h
        .action("gather")
        .player(run.player_after())
        .now_ms(T0 + 48 * HOUR)
        .run();
    assert_eq!(again.reply::<Status>().accrual.gained, 0);
}

#[test]
fn a_clock_going_backwards_earns_nothing_and_keeps_the_mark() {
    let h = harness();
    let p = started(&h);
    let run = h.action("gather").player(p).now_ms(T0 - HOUR).run();
    assert_eq!(run.reply::<Status>().accrual.gained, 0);
    assert_eq!(state_of(&run.player_after()).last_accrual_ms, T0);
}

#[test]
fn gather_reports_costs_for_the_screen() {
    let h = harness();
    let p = at_level(&h, 10, 0.0, 0).with_stat("spirit_rate", 5.16);
    let s: Status = h.action("gather").player(p).now_ms(T0).run().reply();
    assert_eq!(s.realm.name, "筑基期一层");
    assert_eq!(s.meditate_cost, 384);
    assert_eq!(s.meditate_gain, 5.2);
    assert_eq!(s.formation_cost, 8, "ceil(74 / 10) while discounted");
    assert_eq!(s.formation_discounted_left, 10);
    assert_eq!(s.explore_cost, 454, "round(88 x 1.2^9)");
    assert_eq!(s.explore_min_cultivation, 1530.0);
    assert!(!s.tribulation_ready);
    assert_eq!(s.checkin.next_reward, 1000);
    assert!(!s.checkin.checked_in_today);
}

// ------------------------------------------------------------------------------------------ meditate

#[test]
fn meditate_spends_spirit_for_lucky_cultivation() {
    let h = harness();
    let p = started(&h).with_currency("spirit", 25);
    let run = h.action("meditate").player(p).now_ms(T0).seed(3).run();
    let r: MeditateReply = run.reply();
    assert_eq!(r.spirit_cost, 10);
    assert!([1.0, 2.0, 3.0, 4.0, 5.0, 10.0].contains(&r.luck.multiplier));
    assert_eq!(r.cultivation_gain, r.luck.multiplier);
    let after = run.player_after();
    assert_eq!(cur(&after, "spirit"), 15);
    assert_eq!(stat(&after, "cultivation"), r.cultivation_gain);
    assert_eq!(r.cultivation, r.cultivation_gain);
    assert!(r.breakthrough.is_none());
}

#[test]
fn meditate_gain_follows_level_and_cultivation_rate() {
    let h = harness();
    // Level 10: cost round(10 x 1.5^9) = 384, gain 1.2^9 = 5.16 x rate 2 = 10.32 x multiplier.
    let p = at_level(&h, 10, 0.0, 400);
    let run = h
        .action("meditate")
        .player(p)
        .effective("cultivation_rate", 2.0)
        .now_ms(T0)
        .seed(11)
        .run();
    let r: MeditateReply = run.reply();
    assert_eq!(r.spirit_cost, 384);
    let want = (1.2f64.powi(9) * 2.0 * r.luck.multiplier * 10.0).round() / 10.0;
    assert_eq!(r.cultivation_gain, want);
    assert_eq!(cur(&run.player_after(), "spirit"), 16);
}

#[test]
fn meditate_without_enough_spirit_is_rejected() {
    let h = harness();
    let p = started(&h).with_currency("spirit", 9);
    let run = h.action("meditate").player(p).now_ms(T0).run();
    let msg = run.rejected("insufficient");
    assert!(msg.contains("10") && msg.contains('9'), "{msg}");
}

#[test]
fn spirit_earned_while_away_pays_for_meditation() {
    let h = harness();
    let p = started(&h).with_currency("spirit", 5);
    let run = h.action("meditate").player(p).now_ms(T0 + 5 * SECOND).run();
    let r: MeditateReply = run.reply();
    assert_eq!(r.accrual.gained, 5);
    assert_eq!(r.spirit, 0);
}

#[test]
fn reaching_the_threshold_breaks_through() {
    let h = harness();
    let p = at_level(&h, 1, 198.5, 10);
    let run = h.action("meditate").player(p).now_ms(T0).run();
    let r: MeditateReply = run.reply();
    let b = r.breakthrough.expect("a breakthrough");
    assert_eq!((b.from_level, b.level), (1, 2));
    assert_eq!(b.realm.name, "练气期二层");
    assert_eq!(b.spirit_reward, 200);
    let after = run.player_after();
    assert_eq!(stat(&after, "level"), 2.0);
    assert_eq!(stat(&after, "cultivation"), 0.0);
    assert_eq!(stat(&after, "max_cultivation"), 299.0);
    assert_eq!(stat(&after, "attack"), 20.0);
    assert_eq!(stat(&after, "health"), 200.0);
    assert_eq!(stat(&after, "defense"), 10.0);
    assert_eq!(stat(&after, "speed"), 20.0);
    assert_eq!(stat(&after, "spirit_rate"), 1.2);
    assert_eq!(cur(&after, "spirit"), 200, "10 - 10 cost + 200 reward");
    assert_eq!(stat(&after, "cultivation_rate"), 1.0, "kept through the rebuild");
    assert_eq!(stat(&after, "du_jie_rate"), 0.05, "kept through the rebuild");
    assert_eq!(topics(&run), ["breakthrough"]);
    assert_eq!(scores(&run), [("realm".to_owned(), 2.0)]);
    assert_eq!(r.max_cultivation, 299.0);
}

#[test]
fn below_the_threshold_there_is_no_breakthrough() {
    let h = harness();
    let p = at_level(&h, 1, 100.0, 10);
    let run = h.action("meditate").player(p).now_ms(T0).run();
    assert!(run.reply::<MeditateReply>().breakthrough.is_none());
    assert_eq!(stat(&run.player_after(), "level"), 1.0);
    assert!(topics(&run).is_empty());
}

#[test]
fn breakthrough_to_the_tribulation_level_but_not_past_it() {
    let h = harness();
    let spirit = 10_000_000;
    let p = at_level(&h, 26, 7099.0, spirit);
    let run = h.action("meditate").player(p).now_ms(T0).run();
    let b = run.reply::<MeditateReply>().breakthrough.expect("26 -> 27");
    assert_eq!(b.realm.name, "金丹期九层");
    // At 27, filling up does not break through...
    let p = at_level(&h, 27, 9998.0, spirit);
    let run = h.action("meditate").player(p).now_ms(T0).run();
    let r: MeditateReply = run.reply();
    assert!(r.breakthrough.is_none());
    assert!(r.cultivation >= 9999.0);
    assert_eq!(stat(&run.player_after(), "level"), 27.0);
    // ...and once full, more meditation is refused instead of wasting spirit.
    let run = h.action("meditate").player(run.player_after()).now_ms(T0).run();
    assert!(run.rejected("tribulation_required").contains("tribulation"));
    let s: Status = h
        .action("gather")
        .player(at_level(&h, 27, 9999.0, 0))
        .now_ms(T0)
        .run()
        .reply();
    assert!(s.tribulation_ready);
}

#[test]
fn the_last_level_cannot_break_through() {
    let h = harness();
    let p = at_level(&h, 135, 140_000_000.0, i64::MAX / 2);
    h.action("meditate")
        .player(p)
        .now_ms(T0)
        .run()
        .rejected("max_level");
}

// ----------------------------------------------------------------------------------------- formation

#[test]
fn formation_first_ten_a_day_are_discounted() {
    let h = harness();
    // Level 10: full cost floor(10 x 1.25^9) = 74, discounted ceil(7.4) = 8.
    let mut p = at_level(&h, 10, 0.0, 0).with_currency("spirit_stones", 10_000);
    let mut costs = Vec::new();
    for i in 0..12 {
        let run = h.action("formation").player(p.clone()).now_ms(T0).seed(i).run();
        let r: FormationReply = run.reply();
        costs.push(r.stone_cost);
        assert_eq!(r.uses_today, i as i64 + 1);
        let base = 5.0 * 1.12f64.powi(9);
        assert_eq!(
            r.cultivation_gain,
            (base * r.luck.as_ref().unwrap().multiplier * 10.0).round() / 10.0
        );
        p = run.player_after();
    }
    assert_eq!(costs, [8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 74, 74]);
    assert_eq!(cur(&p, "spirit_stones"), 10_000 - 80 - 148);
}

#[test]
fn formation_discount_returns_on_the_next_shanghai_day() {
    let h = harness();
    // 2023-11-15 15:59:59 UTC is 23:59:59 in Shanghai; a second later it is the next day there.
    let before_midnight = 1_700_063_999_000;
    let day = (before_midnight + 8 * HOUR) / DAY;
    let p = at_level(&h, 1, 0.0, 0)
        .with_currency("spirit_stones", 100)
        .with_state(&State {
            started: true,
            last_accrual_ms: T0,
            formation_day: day,
            formation_uses: 10,
            ..State::default()
        });
    let late: FormationReply = h
        .action("formation")
        .player(p.clone())
        .now_ms(before_midnight)
        .run()
        .reply();
    assert_eq!(
        (late.stone_cost, late.discounted, late.uses_today),
        (10, false, 11)
    );
    let next_day = h
        .action("formation")
        .player(p)
        .now_ms(before_midnight + SECOND)
        .run();
    let r: FormationReply = next_day.reply();
    assert_eq!(
        (r.stone_cost, r.discounted, r.uses_today, r.discounted_left),
        (1, true, 1, 9)
    );
    assert_eq!(state_of(&next_day.player_after()).formation_day, day + 1);
}

#[test]
fn formation_without_stones_is_rejected_and_not_counted() {
    let h = harness();
    let p = at_level(&h, 10, 0.0, 0).with_currency("spirit_stones", 7);
    let run = h.action("formation").player(p).now_ms(T0).run();
    assert!(run.rejected("insufficient").contains('8'));
}

#[test]
fn formation_can_break_through() {
    let h = harness();
    let p = at_level(&h, 1, 198.0, 0).with_currency("spirit_stones", 1);
    let run = h.action("formation").player(p).now_ms(T0).run();
    let r: FormationReply = run.reply();
    assert_eq!(r.breakthrough.map(|b| b.level), Some(2));
    assert_eq!(stat(&run.player_after(), "level"), 2.0);
}

#[test]
fn formation_above_the_tribulation_level_adds_a_share_of_the_threshold() {
    let h = harness();
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..200 {
        let p = at_level(&h, 28, 0.0, 0).with_currency("spirit_stones", 10_000);
        let run = h.action("formation").player(p).now_ms(T0).seed(seed).run();
        let r: FormationReply = run.reply();
        assert_eq!(r.stone_cost, 10_000);
        assert!(!r.discounted);
        assert_eq!(r.max_cultivation, 10_000.0, "the threshold does not move");
        let pct = r.high_pct.unwrap();
        assert_eq!(r.cultivation_gain, pct * 10_000.0);
        assert_eq!(stat(&run.player_after(), "cultivation"), r.cultivation_gain);
        seen.insert((pct * 1000.0) as i64);
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), [10, 20, 25, 30]);
    let p = at_level(&h, 28, 0.0, 0).with_currency("spirit_stones", 9_999);
    h.action("formation")
        .player(p)
        .now_ms(T0)
        .run()
        .rejected("insufficient");
}

#[test]
fn formation_threshold_mode_raises_the_threshold_instead() {
    let text = content_text("cultivation").replace(
        "high_target = \"cultivation\"",
        "high_target = \"max_cultivation\"",
    );
    let h = harness().content_toml("cultivation", &text);
    let p = at_level(&h, 28, 50.0, 0).with_currency("spirit_stones", 10_000);
    let run = h.action("formation").player(p).now_ms(T0).run();
    let r: FormationReply = run.reply();
    assert_eq!(r.cultivation_gain, 0.0);
    assert!(r.max_cultivation_gain >= 100.0);
    assert_eq!(
        stat(&run.player_after(), "max_cultivation"),
        10_000.0 + r.max_cultivation_gain
    );
    assert_eq!(stat(&run.player_after(), "cultivation"), 50.0);
}

// --------------------------------------------------------------------------------------- tribulation

fn tribulation_player(h: &Harness<cauldron_plugin_cultivation::Cultivation>) -> PlayerState {
    at_level(h, 27, 9999.0, 0)
        .with_entity(
            "sword-rare",
            "equipment",
            &Gear {
                name: "青竹剑",
                quality: "rare",
            },
        )
        .with_entity(
            "robe-mythic",
            "equipment",
            &Gear {
                name: "天蚕衣",
                quality: "mythic",
            },
        )
        .with_entity(
            "ring-odd",
            "equipment",
            &Gear {
                name: "无名戒",
                quality: "shiny",
            },
        )
        .with_entity(
            "pet-epic",
            "pet",
            &Gear {
                name: "火狐",
                quality: "epic",
            },
        )
        .with_entity(
            "pet-common",
            "pet",
            &Gear {
                name: "灰兔",
                quality: "common",
            },
        )
}

#[test]
fn tribulation_success_reaches_nascent_soul_and_costs_the_best_gear() {
    let h = harness();
    let run = h
        .action("tribulation")
        .player(tribulation_player(&h))
        .effective("du_jie_rate", 1.0)
        .now_ms(T0)
        .run();
    let r: TribulationReply = run.reply();
    assert!(r.success);
    assert_eq!(r.chance, 1.0);
    assert_eq!(r.consumed_equipment.as_ref().unwrap().id, "robe-mythic");
    assert_eq!(
        r.consumed_equipment.as_ref().unwrap().name.as_deref(),
        Some("天蚕衣")
    );
    assert_eq!(r.consumed_pet.as_ref().unwrap().id, "pet-epic");
    let after = run.player_after();
    assert_eq!(stat(&after, "level"), 28.0);
    assert_eq!(stat(&after, "max_cultivation"), 10_000.0);
    assert_eq!(stat(&after, "cultivation"), 0.0);
    assert_eq!(stat(&after, "attack"), 280.0);
    assert_eq!(stat(&after, "du_jie_rate"), 0.05, "the pills are spent");
    let left: Vec<&str> = after.entities.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(left, ["sword-rare", "ring-odd", "pet-common"]);
    assert_eq!(r.breakthrough.as_ref().unwrap().realm.name, "元婴期一层");
    assert_eq!(cur(&after, "spirit"), 2800);
    assert_eq!(topics(&run), ["breakthrough", "tribulation"]);
    assert_eq!(scores(&run), [("realm".to_owned(), 28.0)]);
}

#[test]
fn tribulation_failure_shatters_the_core_and_still_costs_the_gear() {
    let h = harness();
    let p = tribulation_player(&h).with_stat("du_jie_rate", 0.0);
    let run = h.action("tribulation").player(p).now_ms(T0).run();
    let r: TribulationReply = run.reply();
    assert!(!r.success);
    let after = run.player_after();
    assert_eq!(stat(&after, "level"), 27.0);
    assert_eq!(stat(&after, "cultivation"), 0.0);
    assert_eq!(
        stat(&after, "du_jie_rate"),
        0.05,
        "back to the base chance, not 0"
    );
    assert_eq!(after.entities.len(), 3);
    assert!(
        after
            .entities
            .iter()
            .all(|e| e.id != "robe-mythic" && e.id != "pet-epic")
    );
    assert!(r.breakthrough.is_none());
    assert_eq!(topics(&run), ["tribulation"]);
}

#[test]
fn tribulation_without_gear_still_happens() {
    let h = harness();
    let p = at_level(&h, 27, 9999.0, 0).with_stat("du_jie_rate", 1.0);
    let r: TribulationReply = h.action("tribulation").player(p).now_ms(T0).run().reply();
    assert!(r.success);
    assert!(r.consumed_equipment.is_none() && r.consumed_pet.is_none());
}

#[test]
fn tribulation_rejections() {
    let h = harness();
    let p = at_level(&h, 26, 7100.0, 0).with_stat("du_jie_rate", 1.0);
    let msg = h
        .action("tribulation")
        .player(p)
        .now_ms(T0)
        .run()
        .rejected("wrong_level")
        .to_owned();
    assert!(msg.contains("金丹期九层"), "{msg}");
    let p = at_level(&h, 28, 10000.0, 0);
    h.action("tribulation")
        .player(p)
        .now_ms(T0)
        .run()
        .rejected("wrong_level");
    let p = tribulation_player(&h).with_stat("cultivation", 9998.0);
    let run = h.action("tribulation").player(p).now_ms(T0).run();
    assert!(run.rejected("not_ready").contains("9998"));
}

#[test]
fn tribulation_default_chance_is_five_percent() {
    let h = harness();
    let p = at_level(&h, 27, 9999.0, 0);
    let n = 20_000;
    let wins = (0..n)
        .filter(|seed| {
            let r: TribulationReply = h
                .action("tribulation")
                .player(p.clone())
                .now_ms(T0)
                .seed(*seed)
                .run()
                .reply();
            assert_eq!(r.chance, 0.05);
            r.success
        })
        .count();
    let share = wins as f64 / n as f64;
    assert!((share - 0.05).abs() < 0.006, "win share {share}");
}

// ------------------------------------------------------------------------------------------- explore

#[test]
fn explore_needs_thirty_percent_of_the_threshold() {
    let h = harness();
    let p = at_level(&h, 10, 1529.9, 1000);
    let msg = h
        .action("explore")
        .player(p)
        .now_ms(T0)
        .run()
        .rejected("not_ready")
        .to_owned();
    assert!(msg.contains("1530"), "{msg}");
    let p = at_level(&h, 10, 1530.0, 1000);
    assert!(h.action("explore").player(p).now_ms(T0).run().is_ok());
}

#[test]
fn explore_without_enough_spirit_is_rejected() {
    let h = harness();
    let p = at_level(&h, 1, 100.0, 87);
    assert!(
        h.action("explore")
            .player(p)
            .now_ms(T0)
            .run()
            .rejected("insufficient")
            .contains("88")
    );
}

#[test]
fn explore_costs_spirit_and_counts() {
    let h = harness();
    let p = at_level(&h, 1, 100.0, 88).with_counter("explorations", 4);
    let run = h
        .action("explore")
        .player(p)
        .effective("luck", 0.0)
        .now_ms(T0)
        .run();
    let r: ExploreReply = run.reply();
    assert_eq!(r.spirit_cost, 88);
    assert_eq!(r.event_chance, 0.0);
    assert!(r.events.is_empty(), "no luck, no events");
    assert_eq!(r.explorations, 5);
    let after = run.player_after();
    assert_eq!(cur(&after, "spirit"), 0);
    assert_eq!(after.counters["explorations"], 5);
    assert_eq!(stat(&after, "cultivation"), 100.0);
}

#[test]
fn explore_with_double_luck_always_finds_something() {
    let h = harness();
    for seed in 0..300 {
        let p = at_level(&h, 1, 100.0, 88);
        let r: ExploreReply = h
            .action("explore")
            .player(p)
            .effective("luck", 2.0)
            .now_ms(T0)
            .seed(seed)
            .run()
            .reply();
        assert_eq!(r.event_chance, 1.0);
        assert_eq!(r.events.len(), 1, "seed {seed}");
    }
}

/// Every event's effect, checked against the table at level 10 (R = 5100) with 10 000 spirit left
/// after the cost.
#[test]
fn explore_events_apply_their_table_effects() {
    let h = harness();
    let herbs = [
        "spirit_grass",
        "cloud_flower",
        "thunder_root",
        "dragon_breath_herb",
        "dark_yin_grass",
        "nine_leaf_lingzhi",
        "purple_ginseng",
        "frost_lotus",
    ];
    let recipes = [
        "spirit_gathering",
        "cultivation_boost",
        "spirit_recovery",
        "thunder_power",
        "essence_condensation",
        "du_jie_pill",
    ];
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..4000 {
        let p = at_level(&h, 10, 2000.0, 10_454);
        let run = h
            .action("explore")
            .player(p)
            .effective("luck", 2.0)
            .now_ms(T0)
            .seed(seed)
            .run();
        let r: ExploreReply = run.reply();
        let after = run.player_after();
        let e = &r.events[0];
        seen.insert(e.id.clone());
        let (cult, spirit) = (
            stat(&after, "cultivation") - 2000.0,
            cur(&after, "spirit") - 10_000,
        );
        assert_eq!((e.cultivation_delta, e.spirit_delta), (cult, spirit), "{}", e.id);
        let new_items: Vec<(&String, &i64)> = after.items.iter().collect();
        match e.id.as_str() {
            "debate_assembly" => assert_eq!((cult, spirit), (51.0, 0)),
            "sect_servant" => assert_eq!((cult, spirit), (102.0, -1000)),
            "ancient_cave" => assert_eq!((cult, spirit), (153.0, -1000)),
            "mountain_enlightenment" => {
                assert_eq!((cult, spirit), (255.0, 0));
                assert_eq!(topics(&run), ["exploration"]);
            }
            "marriage_contest" | "seductress" => assert_eq!((cult, spirit), (-51.0, -500)),
            "demon_king" => assert_eq!((cult, spirit), (-255.0, 0)),
            "herb_find" => {
                assert_eq!(new_items.len(), 1);
                let id = new_items[0].0.strip_prefix("herb:").unwrap();
                assert!(herbs.contains(&id), "{id}");
                assert_eq!(*new_items[0].1, 1);
            }
            "recipe_fragment" => {
                assert_eq!(new_items.len(), 1);
                let id = new_items[0].0.strip_prefix("fragment:").unwrap();
                assert!(recipes.contains(&id), "{id}");
                assert_eq!(topics(&run), ["exploration"]);
            }
            "spirit_stones" => {
                assert!([100, 150, 200, 300, 500, 700, 1000].contains(&cur(&after, "spirit_stones")));
                assert_eq!(e.amount, cur(&after, "spirit_stones"));
            }
            "reinforce_stones" => assert!([10, 20].contains(&cur(&after, "reinforce_stones"))),
            "refinement_stones" => assert!([10, 20].contains(&cur(&after, "refinement_stones"))),
            "pet_essence" => assert!([20, 30].contains(&cur(&after, "pet_essence"))),
            other => panic!("unknown event {other}"),
        }
        if !matches!(e.id.as_str(), "herb_find" | "recipe_fragment") {
            assert!(new_items.is_empty(), "{}", e.id);
        }
        if !matches!(e.id.as_str(), "mountain_enlightenment" | "recipe_fragment") {
            assert!(topics(&run).is_empty(), "{}", e.id);
        }
    }
    assert_eq!(seen.len(), 13, "all 13 events happen: {seen:?}");
}

#[test]
fn explore_losses_never_go_below_zero() {
    // A designer table with no cultivation requirement lets a nearly empty character explore.
    let text = content_text("exploration")
        .replace("min_cultivation_fraction = 0.3", "min_cultivation_fraction = 0.0");
    let h = harness().content_toml("exploration", &text);
    let mut demon_kings = 0;
    for seed in 0..2000 {
        // Level 1: R = 199, so the demon king takes floor(5% of 199) = 9 from 3 cultivation.
        let p = at_level(&h, 1, 3.0, 93);
        let run = h
            .action("explore")
            .player(p)
            .effective("luck", 2.0)
            .now_ms(T0)
            .seed(seed)
            .run();
        let r: ExploreReply = run.reply();
        let after = run.player_after();
        assert!(stat(&after, "cultivation") >= 0.0);
        assert!(cur(&after, "spirit") >= 0);
        if r.events[0].id == "demon_king" {
            demon_kings += 1;
            assert_eq!(stat(&after, "cultivation"), 0.0);
            assert_eq!(
                r.events[0].cultivation_delta, -3.0,
                "the log shows what was really lost"
            );
        }
        if r.events[0].id == "sect_servant" {
            assert_eq!(
                cur(&after, "spirit"),
                5,
                "10% of the 5 left after the cost floors to 0"
            );
        }
    }
    assert!(demon_kings > 0);
}

// ------------------------------------------------------------------------------------------- checkin

/// Shanghai noon of the day after `T0`'s Shanghai day, plus `days`.
fn noon(days: i64) -> i64 {
    let day = (T0 + 8 * HOUR) / DAY + 1 + days;
    day * DAY - 8 * HOUR + 12 * HOUR
}

#[test]
fn checkin_pays_a_seven_day_streak_then_cycles() {
    let h = harness();
    let mut p = started(&h);
    let mut rewards = Vec::new();
    for d in 0..9 {
        let run = h.action("checkin").player(p.clone()).now_ms(noon(d)).run();
        let r: CheckinReply = run.reply();
        rewards.push((r.streak_day, r.reward));
        assert_eq!(r.currency, "spirit_stones");
        p = run.player_after();
        assert_eq!(r.balance, cur(&p, "spirit_stones"));
        // Other actions in between do not lose the streak.
        p = h
            .action("gather")
            .player(p)
            .now_ms(noon(d) + HOUR)
            .run()
            .player_after();
    }
    assert_eq!(
        rewards,
        [
            (1, 1000),
            (2, 2000),
            (3, 3000),
            (4, 4000),
            (5, 5000),
            (6, 6000),
            (7, 10000),
            (1, 1000),
            (2, 2000)
        ]
    );
    assert_eq!(cur(&p, "spirit_stones"), 31_000 + 3000);
}

#[test]
fn checkin_twice_a_day_is_rejected() {
    let h = harness();
    let p = started(&h);
    let run = h.action("checkin").player(p).now_ms(noon(0)).run();
    let r: CheckinReply = run.reply();
    assert_eq!(r.next_reward, 2000);
    let again = h
        .action("checkin")
        .player(run.player_after())
        .now_ms(noon(0) + 11 * HOUR)
        .run();
    assert!(again.rejected("already_checked_in").contains("today"));
    let status: Status = h
        .action("gather")
        .player(run.player_after())
        .now_ms(noon(0) + HOUR)
        .run()
        .reply();
    assert!(status.checkin.checked_in_today);
    assert_eq!((status.checkin.streak_day, status.checkin.next_reward), (1, 2000));
}

#[test]
fn checkin_day_turns_at_shanghai_midnight() {
    let h = harness();
    let p = started(&h);
    // 23:59 and 00:01 Shanghai time are two game days, though the same UTC date.
    let midnight = noon(0) + 12 * HOUR;
    let run = h.action("checkin").player(p).now_ms(midnight - 60 * SECOND).run();
    let run = h
        .action("checkin")
        .player(run.player_after())
        .now_ms(midnight + 60 * SECOND)
        .run();
    assert_eq!(run.reply::<CheckinReply>().streak_day, 2);
}

#[test]
fn missing_a_day_restarts_the_streak() {
    let h = harness();
    let mut p = started(&h);
    for d in 0..3 {
        p = h.action("checkin").player(p).now_ms(noon(d)).run().player_after();
    }
    assert_eq!(state_of(&p).checkin_streak, 3);
    let status: Status = h.action("gather").player(p.clone()).now_ms(noon(4)).run().reply();
    assert_eq!((status.checkin.streak_day, status.checkin.next_reward), (0, 1000));
    let r: CheckinReply = h.action("checkin").player(p).now_ms(noon(4)).run().reply();
    assert_eq!((r.streak_day, r.reward), (1, 1000));
}

// -------------------------------------------------------------------------------------- determinism

#[test]
fn same_call_same_outcome() {
    let h = harness();
    for action in ["meditate", "explore", "formation", "tribulation", "checkin"] {
        let p = at_level(&h, 27, 9999.0, 10_000_000)
            .with_currency("spirit_stones", 10_000_000)
            .with_entity(
                "a",
                "equipment",
                &Gear {
                    name: "x",
                    quality: "epic",
                },
            );
        let p = if action == "meditate" || action == "formation" {
            p.with_stat("cultivation", 5000.0)
        } else {
            p
        };
        let call = h
            .action(action)
            .player(p)
            .now_ms(T0 + 3 * HOUR)
            .seed(0xC0FFEE)
            .build();
        let first = h.run(call.clone()).outcome;
        let second = h.run(call).outcome;
        assert!(matches!(first, Outcome::Ok { .. }), "{action}: {first:?}");
        assert_eq!(first, second, "{action}");
    }
}

#[test]
fn the_seed_is_what_varies_the_outcome() {
    let h = harness();
    let p = at_level(&h, 10, 2000.0, 1_000_000);
    let outcomes: std::collections::BTreeSet<String> = (0..30)
        .map(|seed| {
            let r: ExploreReply = h
                .action("explore")
                .player(p.clone())
                .now_ms(T0)
                .seed(seed)
                .run()
                .reply();
            format!("{:?}", r.events)
        })
        .collect();
    assert!(outcomes.len() > 5, "{outcomes:?}");
}
