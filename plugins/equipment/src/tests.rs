use std::collections::BTreeMap;

use cauldron_sdk::testing::{Harness, Run};
use serde::Serialize;

use super::*;

const CONTENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/content");

fn harness() -> Harness<EquipmentPlugin> {
    Harness::with_content_dir(CONTENT)
}

#[derive(Serialize)]
struct Id<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct Count {
    count: i64,
}

#[derive(Serialize)]
struct Confirm<'a> {
    id: &'a str,
    keep: bool,
}

fn piece(slot: &str, quality: &str, stats: &[(&str, f64)], equipped: bool, enhance_level: i64) -> Equipment {
    Equipment {
        name: format!("{quality} {slot}"),
        name_en: format!("{quality} {slot}"),
        slot: slot.into(),
        quality: quality.into(),
        stats: stats.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        enhance_level,
        equipped,
        level: 1,
        pending_reforge: None,
    }
}

fn sword(equipped: bool) -> Equipment {
    piece(
        "faqi",
        "rare",
        &[("attack", 150.0), ("crit_rate", 0.12)],
        equipped,
        0,
    )
}

fn data(player: &PlayerState, id: &str) -> Equipment {
    player
        .entities
        .iter()
        .find(|e| e.id == id)
        .unwrap_or_else(|| panic!("no entity {id}"))
        .data
        .decode()
        .expect("equipment decodes")
}

fn pieces(player: &PlayerState) -> Vec<(String, Equipment)> {
    player
        .entities
        .iter()
        .filter(|e| e.kind == KIND)
        .map(|e| (e.id.clone(), e.data.decode().expect("equipment decodes")))
        .collect()
}

fn with_id(h: &Harness<EquipmentPlugin>, action: &str, id: &str, player: PlayerState) -> Run {
    h.action(action).params(&Id { id }).player(player).run()
}

fn score_of(run: &Run) -> Option<f64> {
    run.effects().iter().find_map(|e| match e {
        Effect::SetScore { board, score } if board == BOARD => Some(*score),
        _ => None,
    })
}

// --- manifest ---------------------------------------------------------------------------------------

#[test]
fn manifest_declares_the_kind_the_hook_and_every_param() {
    let h = harness();
    let m = h.manifest();
    m.validate().expect("valid manifest");
    assert_eq!(m.entity_kinds, [KIND]);
    let hook = m.hook("modifiers").expect("modifiers hook");
    assert_eq!(hook.reads, [Section::Entities]);
    for (action, params) in [
        ("draw", vec!["count"]),
        ("equip", vec!["id"]),
        ("unequip", vec!["id"]),
        ("enhance", vec!["id"]),
        ("reforge", vec!["id"]),
        ("reforge_confirm", vec!["id", "keep"]),
        ("sell", vec!["id"]),
        ("open_chest", vec![]),
        ("list", vec!["slot", "quality", "equipped", "page", "page_size"]),
        ("batch_sell", vec!["qualities", "slot"]),
    ] {
        let spec = m.action(action).unwrap_or_else(|| panic!("{action} declared"));
        let names: Vec<&str> = spec.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, params, "{action}");
        assert_eq!(spec.content, ["rules", "qualities", "slots"], "{action}");
    }
}

// --- draw and generation ----------------------------------------------------------------------------

/// Checks one generated piece against the tables: lines per group, value ranges, name.
fn check_piece(item: &Equipment) {
    let (lines, flat, rate): ([usize; 4], BTreeMap<&str, [f64; 2]>, [f64; 2]) = match item.quality.as_str() {
        "common" => ([1, 0, 0, 0], flat_ranges(0), [0.01, 0.05]),
        "uncommon" => ([1, 1, 0, 0], flat_ranges(1), [0.05, 0.10]),
        "rare" => ([1, 1, 1, 0], flat_ranges(2), [0.10, 0.15]),
        "epic" => ([1, 2, 2, 0], flat_ranges(3), [0.15, 0.20]),
        "legendary" => ([1, 2, 2, 1], flat_ranges(4), [0.20, 0.30]),
        "mythic" => ([1, 2, 2, 2], flat_ranges(5), [0.30, 0.50]),
        other => panic!("unknown quality {other}"),
    };
    let (pools, slot_name): ([&[&str]; 4], &str) = match item.slot.as_str() {
        "faqi" => (
            [
                &["attack"],
                &["crit_rate", "stun_rate", "vampire_rate"],
                &[],
                &["crit_damage_boost", "final_damage_boost"],
            ],
            "法宝",
        ),
        "guanjin" | "daopao" => (
            [
                &["health", "defense"],
                &["counter_rate"],
                &["vampire_resist", "crit_resist", "counter_resist", "stun_resist"],
                &["heal_boost", "crit_damage_reduce", "final_damage_reduce"],
            ],
            if item.slot == "guanjin" {
                "冠巾"
            } else {
                "道袍"
            },
        ),
        "yunlv" => (
            [
                &["speed"],
                &["combo_rate", "dodge_rate"],
                &["combo_resist", "dodge_resist"],
                &[],
            ],
            "云履",
        ),
        "fabao" => (
            [
                &["attack", "health", "defense", "speed"],
                &[
                    "crit_rate",
                    "combo_rate",
                    "counter_rate",
                    "stun_rate",
                    "dodge_rate",
                    "vampire_rate",
                ],
                &[
                    "crit_resist",
                    "combo_resist",
                    "counter_resist",
                    "stun_resist",
                    "dodge_resist",
                    "vampire_resist",
                ],
                &[
                    "heal_boost",
                    "crit_damage_boost",
                    "crit_damage_reduce",
                    "final_damage_boost",
                    "final_damage_reduce",
                    "combat_boost",
                    "resistance_boost",
                ],
            ],
            "本命法宝",
        ),
        other => panic!("unknown slot {other}"),
    };
    assert!(
        item.name.ends_with(slot_name) && item.name.len() > slot_name.len(),
        "{}",
        item.name
    );
    for (group, pool) in pools.iter().enumerate() {
        let n = item.stats.keys().filter(|k| pool.contains(&k.as_str())).count();
        assert_eq!(n, lines[group].min(pool.len()), "{item:?} group {group}");
    }
    for (stat, &value) in &item.stats {
        let [lo, hi] = flat.get(stat.as_str()).copied().unwrap_or(rate);
        assert!(
            value >= lo - 1e-9 && value <= hi + 1e-9,
            "{stat}={value} out of {lo}..{hi}"
        );
        if flat.contains_key(stat.as_str()) {
            assert_eq!(value.fract(), 0.0);
        }
    }
    assert_eq!((item.enhance_level, item.equipped), (0, false));
}

fn flat_ranges(tier: usize) -> BTreeMap<&'static str, [f64; 2]> {
    let attack = [
        [10., 50.],
        [50., 100.],
        [100., 200.],
        [200., 500.],
        [500., 1000.],
        [1000., 2000.],
    ];
    let health = [
        [100., 300.],
        [300., 600.],
        [600., 1200.],
        [1200., 2500.],
        [2500., 5000.],
        [5000., 10000.],
    ];
    let defense = [
        [5., 30.],
        [30., 60.],
        [60., 120.],
        [120., 250.],
        [250., 500.],
        [500., 1000.],
    ];
    let speed = [
        [5., 20.],
        [30., 60.],
        [60., 120.],
        [120., 250.],
        [250., 500.],
        [500., 1000.],
    ];
    BTreeMap::from([
        ("attack", attack[tier]),
        ("health", health[tier]),
        ("defense", defense[tier]),
        ("speed", speed[tier]),
    ])
}

#[test]
fn a_single_draw_costs_100_stones_and_makes_one_valid_piece() {
    let h = harness();
    let player = PlayerState::default()
        .with_stat("level", 7.0)
        .with_currency("spirit_stones", 150);
    let run = h.action("draw").params(&Count { count: 1 }).player(player).run();
    let reply: DrawReply = run.reply();
    assert_eq!((reply.cost, reply.balance, reply.items.len()), (100, 50, 1));
    let after = run.player_after();
    assert_eq!(after.currencies["spirit_stones"], 50);
    let bag = pieces(&after);
    assert_eq!(bag.len(), 1);
    check_piece(&bag[0].1);
    assert_eq!(bag[0].1.level, 7);
    assert_eq!(reply.items[0].id, bag[0].0);
    assert_eq!(reply.items[0].item, bag[0].1);
}

#[test]
fn a_ten_draw_costs_1000_and_makes_ten_pieces() {
    let h = harness();
    let player = PlayerState::default().with_currency("spirit_stones", 1000);
    let run = h.action("draw").params(&Count { count: 10 }).player(player).run();
    let after = run.player_after();
    assert_eq!(after.currencies["spirit_stones"], 0);
    assert_eq!(pieces(&after).len(), 10);
}

#[test]
fn draws_reject_other_counts_too_few_stones_and_a_full_bag() {
    let h = harness();
    let rich = PlayerState::default().with_currency("spirit_stones", 1_000_000);
    for count in [0, -1, 2, 50, 100] {
        h.action("draw")
            .params(&Count { count })
            .player(rich.clone())
            .run()
            .rejected("bad_params");
    }
    h.action("draw").player(rich.clone()).run().rejected("bad_params");
    let poor = PlayerState::default().with_currency("spirit_stones", 999);
    h.action("draw")
        .params(&Count { count: 10 })
        .player(poor)
        .run()
        .rejected("insufficient");
    let mut full = rich;
    for i in 0..995 {
        full = full.with_entity(&format!("e{i}"), KIND, &sword(false));
    }
    let msg = h
        .action("draw")
        .params(&Count { count: 10 })
        .player(full.clone())
        .run()
        .rejected("bag_full")
        .to_owned();
    assert!(msg.contains("1000"), "{msg}");
    assert!(
        h.action("draw")
            .params(&Count { count: 1 })
            .player(full)
            .run()
            .is_ok()
    );
}

#[test]
fn quality_odds_match_the_table_over_100_000_drawn_pieces() {
    let h = harness();
    let player = PlayerState::default().with_currency("spirit_stones", 1000);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut slots: BTreeMap<String, u64> = BTreeMap::new();
    let calls = 10_000u64;
    for seed in 0..calls {
        let run = h
            .action("draw")
            .params(&Count { count: 10 })
            .player(player.clone())
            .seed(seed)
            .run();
        for item in run.reply::<DrawReply>().items {
            check_piece(&item.item);
            *counts.entry(item.item.quality).or_default() += 1;
            *slots.entry(item.item.slot).or_default() += 1;
        }
    }
    let n = (calls * 10) as f64;
    for (quality, percent) in [
        ("common", 80.0),
        ("uncommon", 16.5),
        ("rare", 3.2),
        ("epic", 0.26),
        ("legendary", 0.03),
        ("mythic", 0.01),
    ] {
        let p = percent / 100.0;
        let seen = counts.get(quality).copied().unwrap_or(0) as f64;
        let sigma = (n * p * (1.0 - p)).sqrt();
        assert!(
            (seen - n * p).abs() <= 5.0 * sigma + 1.0,
            "{quality}: {seen} vs {}",
            n * p
        );
    }
    // The top tiers must actually occur, at their listed odds (not at 10 %/4 %/1 %).
    assert!(counts.get("mythic").copied().unwrap_or(0) < 100);
    assert!(counts.get("legendary").copied().unwrap_or(0) > 0);
    assert_eq!(slots.len(), 5);
    for (slot, seen) in slots {
        assert!(
            (seen as f64 - n / 5.0).abs() < 5.0 * (n * 0.2 * 0.8).sqrt(),
            "{slot}: {seen}"
        );
    }
}

#[test]
fn announced_qualities_are_told_to_everyone() {
    let text = std::fs::read_to_string(format!("{CONTENT}/qualities.toml")).expect("qualities.toml");
    // Make every drop mythic by zeroing the other odds.
    let all_mythic = text
        .replace("odds = 80.0", "odds = 0.0")
        .replace("odds = 16.5", "odds = 0.0")
        .replace("odds = 3.2", "odds = 0.0")
        .replace("odds = 0.26", "odds = 0.0")
        .replace("odds = 0.03", "odds = 0.0");
    let h = harness().content_toml("qualities", &all_mythic);
    let player = PlayerState::default().with_currency("spirit_stones", 100);
    let run = h.action("draw").params(&Count { count: 1 }).player(player).run();
    let item = &run.reply::<DrawReply>().items[0];
    assert_eq!(item.item.quality, "mythic");
    check_piece(&item.item);
    let global: Vec<_> = run
        .effects()
        .iter()
        .filter_map(|e| match e {
            Effect::Emit { event } if event.scope == Scope::Global => Some(event.topic.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(global, [EVENT_RARE_DROP]);
}

#[test]
fn broken_tables_are_refused_at_load() {
    assert!(harness().prepare().is_ok(), "the shipped tables load");
    let read = |table: &str| std::fs::read_to_string(format!("{CONTENT}/{table}.toml")).expect("table");
    let refused = |table: &str, text: String| {
        let h = harness().content_toml(table, &text);
        let err = h.prepare().expect_err("refused");
        assert_eq!(err.code(), "bad_content");
        // A call never runs on refused content: it answers with the same fault.
        let run = h.action("list").player(PlayerState::default()).run();
        assert!(run.fault("bad_content").contains(&format!("`{table}`")));
        err.to_string()
    };

    // A table's own check: a quality whose range is empty.
    let qualities = read("qualities");
    let broken = qualities.replacen("rate = [", "rate = [0.9, 0.1] # was [", 1);
    assert_ne!(broken, qualities, "the test must actually break the table");
    let message = refused("qualities", broken);
    assert!(message.contains("`qualities`"), "{message}");
    assert!(message.contains("empty range"), "{message}");

    // A check across tables: a slot's pool names a stat `rules.toml` does not know.
    let slots = read("slots");
    let broken = slots.replacen("base = [\"attack\"]", "base = [\"attack\", \"luck\"]", 1);
    assert_ne!(broken, slots, "the test must actually break the table");
    let message = refused("slots", broken);
    assert!(message.contains("`slots`"), "{message}");
    assert!(message.contains("unknown stat `luck`"), "{message}");
}

#[test]
fn the_same_draw_twice_gives_the_same_pieces() {
    let h = harness();
    let player = PlayerState::default().with_currency("spirit_stones", 1000);
    let once = || {
        h.action("draw")
            .params(&Count { count: 10 })
            .player(player.clone())
            .seed(4242)
            .run()
    };
    let (a, b) = (once(), once());
    assert!(a.is_ok());
    assert_eq!(a.outcome, b.outcome);
    let c = h
        .action("draw")
        .params(&Count { count: 10 })
        .player(player.clone())
        .seed(4243)
        .run();
    assert_ne!(a.outcome, c.outcome, "another seed draws other pieces");
}

// --- chests -----------------------------------------------------------------------------------------

#[test]
fn a_chest_opens_into_one_piece_and_is_consumed() {
    let h = harness();
    let player = PlayerState::default().with_item("chest:equipment", 2);
    let run = h.action("open_chest").player(player).run();
    let after = run.player_after();
    assert_eq!(after.items["chest:equipment"], 1);
    let bag = pieces(&after);
    assert_eq!(bag.len(), 1);
    check_piece(&bag[0].1);
    assert_eq!(run.reply::<DrawReply>().balance, 1);

    h.action("open_chest")
        .player(PlayerState::default().with_currency("spirit_stones", 1000))
        .run()
        .rejected("insufficient");
    let mut full = PlayerState::default().with_item("chest:equipment", 1);
    for i in 0..1000 {
        full = full.with_entity(&format!("e{i}"), KIND, &sword(false));
    }
    h.action("open_chest").player(full).run().rejected("bag_full");
}

// --- equip / unequip and the modifiers hook --------------------------------------------------------------

#[test]
fn equipping_wears_the_piece_replaces_the_same_slot_and_sets_the_score() {
    let h = harness();
    let player = PlayerState::default()
        .with_entity("old", KIND, &piece("faqi", "epic", &[("attack", 300.0)], true, 2))
        .with_entity(
            "boots",
            KIND,
            &piece("yunlv", "common", &[("speed", 10.0)], true, 0),
        )
        .with_entity(
            "new",
            KIND,
            &piece("faqi", "legendary", &[("attack", 600.0)], false, 3),
        );
    let run = with_id(&h, "equip", "new", player);
    let reply: EquipReply = run.reply();
    let after = run.player_after();
    assert!(data(&after, "new").equipped);
    assert!(!data(&after, "old").equipped, "same slot is replaced");
    assert!(data(&after, "boots").equipped, "other slots stay");
    assert_eq!(reply.replaced.map(|r| r.id), Some("old".to_owned()));
    assert_eq!(reply.score, 5003.0);
    assert_eq!(score_of(&run), Some(5003.0));

    let run = with_id(&h, "unequip", "new", after);
    let after = run.player_after();
    assert!(!data(&after, "new").equipped);
    assert_eq!(score_of(&run), Some(1000.0), "the boots remain");
}

#[test]
fn equip_and_unequip_reject_wrong_states_and_ids() {
    let h = harness();
    let player = PlayerState::default()
        .with_entity("on", KIND, &sword(true))
        .with_entity("off", KIND, &sword(false))
        .with_entity("pet1", "pet", &sword(false));
    with_id(&h, "equip", "on", player.clone()).rejected("already_equipped");
    with_id(&h, "unequip", "off", player.clone()).rejected("not_equipped");
    for action in ["equip", "unequip", "enhance", "reforge", "sell"] {
        with_id(&h, action, "nope", player.clone()).rejected("not_found");
        with_id(&h, action, "pet1", player.clone()).rejected("not_found");
        h.action(action)
            .player(player.clone())
            .run()
            .rejected("bad_params");
    }
}

#[test]
fn the_modifiers_hook_returns_exactly_the_worn_pieces_stats() {
    let h = harness();
    let player = PlayerState::default()
        .with_entity(
            "a",
            KIND,
            &piece("faqi", "rare", &[("attack", 150.0), ("crit_rate", 0.12)], true, 0),
        )
        .with_entity(
            "b",
            KIND,
            &piece(
                "daopao",
                "epic",
                &[("health", 2000.0), ("stun_resist", 0.17)],
                true,
                0,
            ),
        )
        .with_entity(
            "c",
            KIND,
            &piece("yunlv", "mythic", &[("speed", 900.0)], false, 0),
        );
    let run = h.hook("modifiers").player(player).run();
    let mut got: Vec<(String, f64, f64, String)> = run
        .modifiers()
        .iter()
        .map(|m| (m.stat.clone(), m.add, m.mul, m.source.clone()))
        .collect();
    got.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        got,
        [
            ("attack".to_owned(), 150.0, 0.0, "equipment: rare faqi".to_owned()),
            (
                "crit_rate".to_owned(),
                0.12,
                0.0,
                "equipment: rare faqi".to_owned()
            ),
            (
                "health".to_owned(),
                2000.0,
                0.0,
                "equipment: epic daopao".to_owned()
            ),
            (
                "stun_resist".to_owned(),
                0.17,
                0.0,
                "equipment: epic daopao".to_owned()
            ),
        ]
    );
    assert!(run.effects().is_empty());
    let none = h.hook("modifiers").player(PlayerState::default()).run();
    assert!(none.modifiers().is_empty());
}

// --- enhance ----------------------------------------------------------------------------------------

#[test]
fn enhancing_costs_10_per_level_and_multiplies_every_stat_by_1_1() {
    let h = harness();
    let player = PlayerState::default()
        .with_currency("reinforce_stones", 35)
        .with_entity("s", KIND, &sword(true));
    let run = with_id(&h, "enhance", "s", player);
    let reply: EnhanceReply = run.reply();
    let after = run.player_after();
    let item = data(&after, "s");
    assert_eq!(item.enhance_level, 1);
    assert_eq!(item.stats["attack"], 165.0);
    assert_eq!(item.stats["crit_rate"], 0.132);
    assert_eq!((reply.cost, reply.balance), (10, 25));
    assert_eq!(reply.old_stats["attack"], 150.0);
    assert_eq!(reply.item.enhance_cost, Some(20));
    assert_eq!(score_of(&run), Some(3001.0), "worn, so the score follows");

    let run = with_id(&h, "enhance", "s", after);
    let after = run.player_after();
    assert_eq!(after.currencies["reinforce_stones"], 5);
    let item = data(&after, "s");
    assert_eq!((item.enhance_level, item.stats["attack"]), (2, 182.0));
    with_id(&h, "enhance", "s", after).rejected("insufficient");
}

#[test]
fn enhancing_stops_at_100_and_waits_for_a_pending_reforge() {
    let h = harness();
    let mut maxed = sword(false);
    maxed.enhance_level = 100;
    let mut pending = sword(false);
    pending.pending_reforge = Some(BTreeMap::from([("attack".to_owned(), 120.0)]));
    let player = PlayerState::default()
        .with_currency("reinforce_stones", 1_000_000)
        .with_entity("max", KIND, &maxed)
        .with_entity("pending", KIND, &pending);
    with_id(&h, "enhance", "max", player.clone()).rejected("max_level");
    with_id(&h, "enhance", "pending", player).rejected("reforge_pending");
}

// --- reforge ----------------------------------------------------------------------------------------

#[test]
fn reforge_charges_10_stones_and_stores_a_server_roll_that_confirm_applies() {
    let h = harness();
    let player = PlayerState::default()
        .with_currency("refinement_stones", 25)
        .with_entity("s", KIND, &sword(true));
    let run = with_id(&h, "reforge", "s", player);
    let reply: ReforgeReply = run.reply();
    let after = run.player_after();
    assert_eq!(after.currencies["refinement_stones"], 15);
    let item = data(&after, "s");
    assert_eq!(item.stats, sword(true).stats, "nothing changes before confirming");
    assert!(item.equipped, "stays worn");
    let rolled = item.pending_reforge.clone().expect("a pending roll");
    assert_eq!(rolled.keys().collect::<Vec<_>>(), ["attack", "crit_rate"]);
    assert!((100.0..=200.0).contains(&rolled["attack"]));
    assert!((0.10..=0.15).contains(&rolled["crit_rate"]));
    assert_eq!(reply.new_stats, rolled);

    // The client cannot smuggle its own numbers into the confirmation.
    #[derive(Serialize)]
    struct Cheat<'a> {
        id: &'a str,
        keep: bool,
        #[serde(rename = "newStats")]
        new_stats: BTreeMap<&'a str, f64>,
    }
    let run = h
        .action("reforge_confirm")
        .params(&Cheat {
            id: "s",
            keep: true,
            new_stats: BTreeMap::from([("attack", 1e9)]),
        })
        .player(after.clone())
        .run();
    let kept = data(&run.player_after(), "s");
    assert_eq!(kept.stats, rolled);
    assert_eq!(kept.pending_reforge, None);
    assert_eq!(
        run.player_after().currencies["refinement_stones"],
        15,
        "confirming is free"
    );
    assert_eq!(run.reply::<ReforgeReply>().kept, Some(true));

    let run = h
        .action("reforge_confirm")
        .params(&Confirm { id: "s", keep: false })
        .player(after)
        .run();
    let discarded = data(&run.player_after(), "s");
    assert_eq!(discarded.stats, sword(true).stats);
    assert_eq!(discarded.pending_reforge, None);
}

#[test]
fn reforge_rejects_enhanced_pieces_missing_stones_and_confirm_without_a_roll() {
    let h = harness();
    let mut enhanced = sword(false);
    enhanced.enhance_level = 1;
    let player = PlayerState::default()
        .with_currency("refinement_stones", 100)
        .with_entity("e", KIND, &enhanced)
        .with_entity("s", KIND, &sword(false));
    with_id(&h, "reforge", "e", player.clone()).rejected("enhanced");
    let poor = PlayerState::default()
        .with_currency("refinement_stones", 9)
        .with_entity("s", KIND, &sword(false));
    with_id(&h, "reforge", "s", poor).rejected("insufficient");
    h.action("reforge_confirm")
        .params(&Confirm { id: "s", keep: true })
        .player(player.clone())
        .run()
        .rejected("no_pending_reforge");
    h.action("reforge_confirm")
        .params(&Confirm { id: "x", keep: true })
        .player(player.clone())
        .run()
        .rejected("not_found");
    h.action("reforge_confirm")
        .params(&Id { id: "s" })
        .player(player)
        .run()
        .rejected("bad_params");
}

#[test]
fn the_same_reforge_twice_rolls_the_same_values() {
    let h = harness();
    let player = PlayerState::default()
        .with_currency("refinement_stones", 10)
        .with_entity("s", KIND, &sword(false));
    let a = h
        .action("reforge")
        .params(&Id { id: "s" })
        .player(player.clone())
        .seed(9)
        .run();
    let b = h
        .action("reforge")
        .params(&Id { id: "s" })
        .player(player)
        .seed(9)
        .run();
    assert!(a.is_ok());
    assert_eq!(a.outcome, b.outcome);
}

// --- sell and list ----------------------------------------------------------------------------------

#[test]
fn selling_pays_by_quality_and_refuses_worn_pieces() {
    let h = harness();
    let player = PlayerState::default()
        .with_currency("spirit_stones", 1)
        .with_entity(
            "m",
            KIND,
            &piece("fabao", "mythic", &[("attack", 1500.0)], false, 0),
        )
        .with_entity("worn", KIND, &sword(true));
    let run = with_id(&h, "sell", "m", player.clone());
    let after = run.player_after();
    assert_eq!(after.currencies["spirit_stones"], 501);
    assert!(after.entities.iter().all(|e| e.id != "m"));
    assert_eq!(run.reply::<SellReply>().price, 500);
    with_id(&h, "sell", "worn", player).rejected("equipped");
}

#[test]
fn the_list_shows_worn_pieces_first_and_the_true_odds() {
    let h = harness();
    let player = PlayerState::default()
        .with_entity(
            "a",
            KIND,
            &piece("faqi", "mythic", &[("attack", 1500.0)], false, 0),
        )
        .with_entity("b", KIND, &piece("yunlv", "common", &[("speed", 10.0)], true, 4));
    let reply: ListReply = h.action("list").player(player).run().reply();
    let ids: Vec<&str> = reply.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["b", "a"]);
    assert_eq!(
        reply.equipped,
        BTreeMap::from([("yunlv".to_owned(), "b".to_owned())])
    );
    assert_eq!(reply.score, 1004.0);
    let odds: Vec<f64> = reply.odds.iter().map(|o| o.percent).collect();
    for (got, want) in odds.iter().zip([80.0, 16.5, 3.2, 0.26, 0.03, 0.01]) {
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    }
    assert_eq!(reply.items[1].colour, "#e91e63");
    assert_eq!(reply.items[1].sell_price, 500);
}

/// A bag of seven: a worn common robe, commons and uncommons in two slots, a rare sword.
fn mixed_bag() -> PlayerState {
    PlayerState::default()
        .with_currency("spirit_stones", 10)
        .with_entity(
            "c1",
            KIND,
            &piece("faqi", "common", &[("attack", 20.0)], false, 0),
        )
        .with_entity("c2", KIND, &piece("yunlv", "common", &[("speed", 9.0)], false, 0))
        .with_entity(
            "c3",
            KIND,
            &piece("faqi", "common", &[("attack", 30.0)], false, 2),
        )
        .with_entity(
            "u1",
            KIND,
            &piece("yunlv", "uncommon", &[("speed", 40.0)], false, 0),
        )
        .with_entity(
            "u2",
            KIND,
            &piece("faqi", "uncommon", &[("attack", 60.0)], false, 0),
        )
        .with_entity("r1", KIND, &sword(false))
        .with_entity(
            "worn",
            KIND,
            &piece("daopao", "common", &[("health", 150.0)], true, 0),
        )
}

fn ids_of(player: &PlayerState) -> Vec<&str> {
    player.entities.iter().map(|e| e.id.as_str()).collect()
}

#[test]
fn batch_sell_sells_every_unworn_piece_of_the_qualities_at_their_prices() {
    #[derive(Serialize)]
    struct P<'a> {
        qualities: &'a [&'a str],
    }
    let h = harness();
    let run = h
        .action("batch_sell")
        .params(&P {
            qualities: &["common", "uncommon"],
        })
        .player(mixed_bag())
        .run();
    let reply: BatchSellReply = run.reply();
    // Three commons at 50 and two uncommons at 80; the worn common robe stays.
    assert_eq!(reply.count, 5);
    assert_eq!(reply.price, 3 * 50 + 2 * 80);
    assert_eq!(reply.balance, 10 + 310);
    let after = run.player_after();
    assert_eq!(after.currencies["spirit_stones"], 320);
    let mut left = ids_of(&after);
    left.sort_unstable();
    assert_eq!(left, ["r1", "worn"]);
}

#[test]
fn batch_sell_can_keep_to_one_slot_and_takes_a_comma_list() {
    let h = harness();
    let run = h
        .action("batch_sell")
        .params(&BTreeMap::from([("qualities", "common, rare"), ("slot", "faqi")]))
        .player(mixed_bag())
        .run();
    let reply: BatchSellReply = run.reply();
    let mut sold: Vec<&str> = reply.sold.iter().map(|s| s.id.as_str()).collect();
    sold.sort_unstable();
    assert_eq!(sold, ["c1", "c3", "r1"]);
    assert_eq!(reply.price, 50 + 50 + 100);
    assert_eq!(run.player_after().currencies["spirit_stones"], 210);
}

#[test]
fn batch_sell_refuses_nothing_to_sell_and_unknown_keys() {
    let h = harness();
    let sell =
        |params: BTreeMap<&str, &str>| h.action("batch_sell").params(&params).player(mixed_bag()).run();
    // Mythic: none held. The only common robe is worn.
    sell(BTreeMap::from([("qualities", "mythic")])).rejected("nothing_to_sell");
    sell(BTreeMap::from([("qualities", "common"), ("slot", "daopao")])).rejected("nothing_to_sell");
    sell(BTreeMap::from([("qualities", "shiny")])).rejected("bad_params");
    sell(BTreeMap::from([("qualities", " , ")])).rejected("bad_params");
    sell(BTreeMap::from([("qualities", "common"), ("slot", "hat")])).rejected("bad_params");
    h.action("batch_sell")
        .player(mixed_bag())
        .run()
        .rejected("bad_params");
}

#[derive(Serialize, Default)]
struct ListP<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    slot: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quality: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    equipped: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    page_size: Option<i64>,
}

fn list_of(p: &ListP<'_>) -> ListReply {
    harness()
        .action("list")
        .params(p)
        .player(mixed_bag())
        .run()
        .reply()
}

#[test]
fn the_list_filters_and_pages_with_counts() {
    // No params: everything on one page, worn first.
    let all = list_of(&ListP::default());
    assert_eq!(
        (all.total, all.matched, all.page, all.pages, all.page_size),
        (7, 7, 1, 1, None)
    );
    assert_eq!(all.items[0].id, "worn");

    let faqi = list_of(&ListP {
        slot: Some("faqi"),
        ..ListP::default()
    });
    assert_eq!((faqi.total, faqi.matched), (7, 4));
    assert!(faqi.items.iter().all(|i| i.item.slot == "faqi"));

    let cheap = list_of(&ListP {
        quality: Some("common,uncommon"),
        equipped: Some(false),
        ..ListP::default()
    });
    assert_eq!(cheap.matched, 5);
    assert!(cheap.items.iter().all(|i| !i.item.equipped && i.rank <= 2));
    let worn = list_of(&ListP {
        equipped: Some(true),
        ..ListP::default()
    });
    assert_eq!(worn.items.len(), 1);
    // The worn map and score do not depend on the filters.
    assert_eq!(worn.equipped, cheap.equipped);
    assert_eq!(worn.score, cheap.score);

    // Pages of 3: 3 + 3 + 1, in the list's order; past the end is empty.
    let mut seen = Vec::new();
    for page in 1..=3 {
        let r = list_of(&ListP {
            page: Some(page),
            page_size: Some(3),
            ..ListP::default()
        });
        assert_eq!((r.matched, r.pages, r.page), (7, 3, page as usize));
        seen.extend(r.items.into_iter().map(|i| i.id));
    }
    let order: Vec<String> = all.items.iter().map(|i| i.id.clone()).collect();
    assert_eq!(seen, order);
    let past = list_of(&ListP {
        page: Some(4),
        page_size: Some(3),
        ..ListP::default()
    });
    assert!(past.items.is_empty());
}

#[test]
fn the_list_refuses_bad_filters() {
    let h = harness();
    let bad = |p: &ListP<'_>| {
        h.action("list")
            .params(p)
            .player(mixed_bag())
            .run()
            .rejected("bad_params");
    };
    bad(&ListP {
        page: Some(0),
        ..ListP::default()
    });
    bad(&ListP {
        page_size: Some(101),
        ..ListP::default()
    });
    bad(&ListP {
        quality: Some("gold"),
        ..ListP::default()
    });
    bad(&ListP {
        slot: Some("ring"),
        ..ListP::default()
    });
}

#[test]
fn the_board_row_describes_the_best_worn_piece() {
    let h = harness();
    let player = PlayerState::default()
        .with_entity(
            "boots",
            KIND,
            &piece("yunlv", "common", &[("speed", 10.0)], true, 7),
        )
        .with_entity("r1", KIND, &sword(false));
    // Wearing the rare sword makes it the best worn piece: rare beats common whatever the level.
    let run = with_id(&h, "equip", "r1", player);
    let state: State = run.player_after().state.decode().expect("state decodes");
    let row = &state.boards[BOARD];
    assert_eq!((row.name.as_str(), row.quality.as_str()), ("rare faqi", "rare"));
    assert_eq!((row.quality_name.as_str(), row.enhance_level), ("灵器", 0));
    assert_eq!(row.slot_name, "法宝");
    assert_eq!(score_of(&run), Some(3000.0));
    // Taking everything off leaves nothing to describe.
    let run = with_id(&h, "unequip", "r1", run.player_after());
    let run = with_id(&h, "unequip", "boots", run.player_after());
    let state: State = run.player_after().state.decode().expect("state decodes");
    assert!(state.boards.is_empty());
}
