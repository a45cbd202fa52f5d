use std::collections::BTreeMap;

use cauldron_sdk::testing::Harness;
use cauldron_sdk::wire::Outcome;
use serde::Serialize;

use super::*;

fn harness() -> Harness<Alchemy> {
    Harness::with_content_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/content"))
}

fn unlocked(ids: &[&str]) -> AlchemyState {
    AlchemyState {
        unlocked: ids.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn state_of(player: &PlayerState) -> AlchemyState {
    if player.state.is_nil() {
        AlchemyState::default()
    } else {
        player.state.decode().expect("state decodes")
    }
}

#[derive(Serialize)]
struct Recipe<'a> {
    recipe: &'a str,
}

#[derive(Serialize)]
struct Buy<'a> {
    recipe: &'a str,
    quantity: i64,
}

#[derive(Serialize)]
struct Pill<'a> {
    pill: &'a str,
}

/// A level-1 player who unlocked 聚灵丹 and holds herbs for `crafts` crafts of it.
fn crafter(crafts: i64) -> PlayerState {
    PlayerState::default()
        .with_stat("level", 1.0)
        .with_item("herb:spirit_grass", 2 * crafts)
        .with_item("herb:cloud_flower", crafts)
        .with_state(&unlocked(&["spirit_gathering"]))
}

// --- manifest and content ---------------------------------------------------------------------------

#[test]
fn manifest_is_valid_and_every_action_declares_its_params_and_tables() {
    let h = harness();
    let m = h.manifest();
    m.validate().expect("valid manifest");
    let names: Vec<&str> = m.actions.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["recipes", "buy_fragment", "craft", "eat"]);
    let params = |a: &str| -> Vec<String> {
        m.action(a)
            .expect("declared")
            .params
            .iter()
            .map(|p| p.name.clone())
            .collect()
    };
    assert_eq!(params("buy_fragment"), ["recipe", "quantity"]);
    assert_eq!(params("craft"), ["recipe"]);
    assert_eq!(params("eat"), ["pill"]);
    for a in &m.actions {
        assert_eq!(a.content, ["herbs", "recipes"], "{}", a.name);
    }
}

#[test]
fn the_book_lists_15_herbs_13_recipes_and_6_open_with_their_numbers() {
    let h = harness();
    let run = h.action("recipes").player(PlayerState::default()).run();
    let reply: RecipesReply = run.reply();
    assert_eq!(reply.recipes.len(), 13);
    let open: Vec<&str> = reply
        .recipes
        .iter()
        .filter(|r| r.open)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(
        open,
        [
            "spirit_gathering",
            "cultivation_boost",
            "spirit_recovery",
            "thunder_power",
            "essence_condensation",
            "du_jie_pill"
        ]
    );
    let by_id: BTreeMap<&str, &RecipeView> = reply.recipes.iter().map(|r| (r.id.as_str(), r)).collect();
    let sg = by_id["spirit_gathering"];
    assert_eq!(
        (sg.grade, sg.fragments_needed, sg.fragment_price),
        (1, 10, 50_000)
    );
    assert!((sg.success_rate - 0.8).abs() < 1e-12);
    assert_eq!(sg.materials.len(), 2);
    assert_eq!(sg.materials[0].name, "云雾花");
    let cb = by_id["cultivation_boost"];
    assert_eq!((cb.fragments_needed, cb.fragment_price), (15, 50_050));
    assert!((cb.success_rate - 0.6).abs() < 1e-12);
    let dj = by_id["du_jie_pill"];
    assert_eq!(
        (dj.grade, dj.fragments_needed, dj.fragment_price),
        (3, 20, 50_100)
    );
    assert!((dj.success_rate - 0.5).abs() < 1e-12);
    assert_eq!(dj.materials.iter().map(|m| m.need).sum::<i64>(), 50);
    assert_eq!(by_id["phoenix_rebirth_pill"].fragments_needed, 45);
    assert!(reply.newly_unlocked.is_empty());

    assert_eq!(reply.herbs.len(), 15);
    let dragon = reply
        .herbs
        .iter()
        .find(|h| h.id == "dragon_breath_herb")
        .expect("listed");
    assert_eq!((dragon.name.as_str(), dragon.base_value), ("龙息草", 40));
}

#[test]
fn a_broken_recipes_table_is_refused_at_load() {
    assert!(harness().prepare().is_ok(), "the shipped tables load");
    let good = include_str!("../content/recipes.toml");
    let broken = good.replace("max_buy_quantity = 100", "max_buy_quantity = 0");
    assert_ne!(broken, good, "the test must actually break the table");
    let h = harness().content_toml("recipes", &broken);
    let err = h.prepare().expect_err("a zero max_buy_quantity refuses the load");
    assert_eq!(err.code(), "bad_content");
    let message = err.to_string();
    assert!(message.contains("`recipes`"), "{message}");
    assert!(message.contains("max_buy_quantity"), "{message}");
    // A call never runs on refused content: it answers with the same fault.
    let run = h.action("recipes").player(PlayerState::default()).run();
    assert!(run.fault("bad_content").contains("`recipes`"));
}

// --- unlocking ------------------------------------------------------------------------------------

#[test]
fn the_book_is_a_query_that_shows_dropped_fragments_unlocked_and_the_next_action_records_it() {
    let h = harness();
    assert!(h.manifest().action("recipes").expect("declared").query);
    let player = PlayerState::default()
        .with_stat("level", 1.0)
        .with_item("fragment:spirit_gathering", 12);
    let run = h.action("recipes").player(player.clone()).run();
    assert!(run.effects().is_empty(), "a query writes nothing");
    let reply: RecipesReply = run.reply();
    assert_eq!(reply.newly_unlocked, ["spirit_gathering"]);
    let view = reply
        .recipes
        .iter()
        .find(|r| r.id == "spirit_gathering")
        .expect("listed");
    assert!(view.unlocked);
    assert_eq!(view.fragments, 2, "shown as the unlock will leave them");

    // The next writing action (a craft here) records the unlock: the fragments are taken, the rest
    // kept, the event emitted.
    let run = craft_once(
        &h,
        "spirit_gathering",
        player
            .with_item("herb:spirit_grass", 2)
            .with_item("herb:cloud_flower", 1),
        1,
    );
    assert_eq!(run.reply::<CraftReply>().newly_unlocked, ["spirit_gathering"]);
    assert_eq!(run.events()[0].0, EVENT_UNLOCKED);
    let after = run.player_after();
    assert_eq!(after.items["fragment:spirit_gathering"], 2);
    assert_eq!(state_of(&after), unlocked(&["spirit_gathering"]));

    // From then on the book lists it as unlocked and nothing as newly unlocked.
    let again = h.action("recipes").player(after).run();
    assert!(again.reply::<RecipesReply>().newly_unlocked.is_empty());
    assert!(again.effects().is_empty());
}

#[test]
fn fragments_below_the_threshold_or_of_unlocked_recipes_are_left_alone() {
    let h = harness();
    let player = PlayerState::default()
        .with_item("fragment:cultivation_boost", 14)
        .with_item("fragment:spirit_gathering", 30)
        .with_state(&unlocked(&["spirit_gathering"]));
    let run = h.action("recipes").player(player).run();
    assert!(run.reply::<RecipesReply>().newly_unlocked.is_empty());
    let after = run.player_after();
    assert_eq!(after.items["fragment:cultivation_boost"], 14);
    assert_eq!(after.items["fragment:spirit_gathering"], 30);
    assert!(run.effects().is_empty());
}

#[test]
fn craft_unlocks_a_recipe_whose_fragments_arrived_since_the_last_action() {
    let h = harness();
    let player = PlayerState::default()
        .with_item("fragment:spirit_gathering", 10)
        .with_item("herb:spirit_grass", 2)
        .with_item("herb:cloud_flower", 1);
    let run = h
        .action("craft")
        .params(&Recipe {
            recipe: "spirit_gathering",
        })
        .player(player)
        .run();
    let reply: CraftReply = run.reply();
    assert_eq!(reply.newly_unlocked, ["spirit_gathering"]);
    let after = run.player_after();
    assert!(!after.items.contains_key("fragment:spirit_gathering"));
    assert!(state_of(&after).unlocked.contains("spirit_gathering"));
}

// --- buy_fragment ---------------------------------------------------------------------------------

#[test]
fn buying_fragments_charges_the_grade_price_and_unlocks_at_the_threshold() {
    let h = harness();
    let player = PlayerState::default().with_currency("spirit_stones", 200_000);
    let run = h
        .action("buy_fragment")
        .params(&Buy {
            recipe: "spirit_gathering",
            quantity: 3,
        })
        .player(player)
        .run();
    let reply: BuyReply = run.reply();
    assert_eq!((reply.cost, reply.balance, reply.fragments), (150_000, 50_000, 3));
    assert!(!reply.unlocked);
    let after = run.player_after();
    assert_eq!(after.currencies["spirit_stones"], 50_000);
    assert_eq!(after.items["fragment:spirit_gathering"], 3);

    // Grade 3 costs 50 100 each; buying the last two needed unlocks it and uses them up.
    let player = PlayerState::default()
        .with_currency("spirit_stones", 100_200)
        .with_item("fragment:thunder_power", 18);
    let run = h
        .action("buy_fragment")
        .params(&Buy {
            recipe: "thunder_power",
            quantity: 2,
        })
        .player(player)
        .run();
    let reply: BuyReply = run.reply();
    assert_eq!(reply.cost, 100_200);
    assert!(reply.unlocked);
    assert_eq!(reply.newly_unlocked, ["thunder_power"]);
    assert_eq!(reply.fragments, 0);
    let after = run.player_after();
    assert_eq!(after.currencies["spirit_stones"], 0);
    assert!(!after.items.contains_key("fragment:thunder_power"));
    assert!(state_of(&after).unlocked.contains("thunder_power"));
}

#[test]
fn buying_rejects_bad_quantities_unknown_closed_unlocked_and_unaffordable() {
    let h = harness();
    let rich = PlayerState::default().with_currency("spirit_stones", 10_000_000);
    let buy = |recipe: &str, quantity: i64, player: PlayerState| {
        h.action("buy_fragment")
            .params(&Buy { recipe, quantity })
            .player(player)
            .run()
    };
    for q in [0, -5, 101] {
        buy("spirit_gathering", q, rich.clone()).rejected("bad_params");
    }
    h.action("buy_fragment")
        .params(&Recipe {
            recipe: "spirit_gathering",
        })
        .player(rich.clone())
        .run()
        .rejected("bad_params");
    buy("no_such_pill", 1, rich.clone()).rejected("not_found");
    buy("mind_clarity", 1, rich.clone()).rejected("recipe_closed");
    buy(
        "spirit_gathering",
        1,
        rich.clone().with_state(&unlocked(&["spirit_gathering"])),
    )
    .rejected("already_unlocked");
    let msg = buy("spirit_gathering", 11, rich.clone())
        .rejected("more_than_needed")
        .to_owned();
    assert!(msg.contains("10"), "{msg}");
    buy(
        "spirit_gathering",
        8,
        rich.clone().with_item("fragment:spirit_gathering", 3),
    )
    .rejected("more_than_needed");
    let poor = PlayerState::default().with_currency("spirit_stones", 49_999);
    buy("spirit_gathering", 1, poor).rejected("insufficient");
}

// --- craft ----------------------------------------------------------------------------------------

fn craft_once(
    h: &Harness<Alchemy>,
    recipe: &str,
    player: PlayerState,
    seed: u64,
) -> cauldron_sdk::testing::Run {
    h.action("craft")
        .params(&Recipe { recipe })
        .player(player)
        .seed(seed)
        .run()
}

#[test]
fn a_craft_consumes_the_materials_and_success_gives_a_pill_failure_gives_nothing() {
    let h = harness();
    let (mut saw_win, mut saw_loss) = (false, false);
    for seed in 0..64 {
        let run = craft_once(
            &h,
            "spirit_gathering",
            crafter(1).with_counter(PILLS_CRAFTED, 4),
            seed,
        );
        let reply: CraftReply = run.reply();
        let after = run.player_after();
        assert!(!after.items.contains_key("herb:spirit_grass"));
        assert!(!after.items.contains_key("herb:cloud_flower"));
        assert_eq!(reply.consumed["spirit_grass"], 2);
        assert!((reply.success_rate - 0.8).abs() < 1e-12);
        if reply.success {
            saw_win = true;
            assert_eq!(after.items["pill:spirit_gathering"], 1);
            assert_eq!(after.counters[PILLS_CRAFTED], 5);
            assert_eq!(reply.pill_item.as_deref(), Some("pill:spirit_gathering"));
        } else {
            saw_loss = true;
            assert!(!after.items.contains_key("pill:spirit_gathering"));
            assert_eq!(after.counters[PILLS_CRAFTED], 4);
            assert_eq!(reply.pill_item, None);
        }
    }
    assert!(saw_win && saw_loss);
}

#[test]
fn crafting_rejects_locked_closed_unknown_and_missing_herbs_without_changing_anything() {
    let h = harness();
    let locked = crafter(1).with_state(&AlchemyState::default());
    craft_once(&h, "spirit_gathering", locked, 1).rejected("recipe_locked");
    craft_once(&h, "mind_clarity", crafter(1), 1).rejected("recipe_closed");
    craft_once(&h, "elixir_of_life", crafter(1), 1).rejected("not_found");
    let short = PlayerState::default()
        .with_item("herb:spirit_grass", 1)
        .with_item("herb:cloud_flower", 1)
        .with_state(&unlocked(&["spirit_gathering"]));
    let msg = craft_once(&h, "spirit_gathering", short, 1)
        .rejected("insufficient")
        .to_owned();
    assert!(msg.contains("spirit_grass 1/2"), "{msg}");
    h.action("craft").player(crafter(1)).run().rejected("bad_params");
}

#[test]
fn client_supplied_luck_is_ignored() {
    #[derive(Serialize)]
    struct Cheat<'a> {
        recipe: &'a str,
        luck: f64,
        #[serde(rename = "alchemyRate")]
        alchemy_rate: f64,
    }
    let h = harness();
    for seed in 0..32 {
        let honest = craft_once(&h, "spirit_gathering", crafter(1), seed);
        let cheat = h
            .action("craft")
            .params(&Cheat {
                recipe: "spirit_gathering",
                luck: 100.0,
                alchemy_rate: 100.0,
            })
            .player(crafter(1))
            .seed(seed)
            .run();
        assert_eq!(honest.outcome, cheat.outcome);
    }
}

/// Successes out of `n` crafts of `recipe`, one call per seed.
fn success_share(h: &Harness<Alchemy>, recipe: &str, herbs: &[(&str, i64)], n: u64) -> f64 {
    let mut player = PlayerState::default().with_state(&unlocked(&[recipe]));
    for (herb, qty) in herbs {
        player = player.with_item(&format!("herb:{herb}"), *qty);
    }
    let wins = (0..n)
        .filter(|&seed| {
            craft_once(h, recipe, player.clone(), 1_000_000 + seed)
                .reply::<CraftReply>()
                .success
        })
        .count();
    wins as f64 / n as f64
}

#[test]
fn crafting_success_rates_match_the_grade_table_over_120_000_crafts() {
    let h = harness();
    let n = 40_000;
    // 5 standard deviations of a binomial share at n = 40 000 is at most 0.0125.
    let cases = [
        (
            "spirit_gathering",
            vec![("spirit_grass", 2), ("cloud_flower", 1)],
            0.80,
        ),
        (
            "cultivation_boost",
            vec![("cloud_flower", 2), ("thunder_root", 1)],
            0.60,
        ),
        (
            "thunder_power",
            vec![("thunder_root", 2), ("dragon_breath_herb", 1)],
            0.50,
        ),
    ];
    for (recipe, herbs, rate) in cases {
        let share = success_share(&h, recipe, &herbs, n);
        let tolerance = 5.0 * (rate * (1.0 - rate) / n as f64).sqrt();
        assert!((share - rate).abs() < tolerance, "{recipe}: {share} vs {rate}");
    }
}

#[test]
fn the_same_craft_twice_gives_the_same_outcome() {
    let h = harness();
    let a = craft_once(&h, "spirit_gathering", crafter(3), 77);
    let b = craft_once(&h, "spirit_gathering", crafter(3), 77);
    assert!(a.is_ok());
    assert_eq!(a.outcome, b.outcome);
}

// --- eat ------------------------------------------------------------------------------------------

fn eat(h: &Harness<Alchemy>, pill: &str, player: PlayerState) -> cauldron_sdk::testing::Run {
    h.action("eat").params(&Pill { pill }).player(player).run()
}

#[test]
fn spirit_pills_add_spirit_scaled_by_level() {
    let h = harness();
    let player = PlayerState::default()
        .with_stat("level", 1.0)
        .with_currency("spirit", 5)
        .with_item("pill:spirit_gathering", 2);
    let run = eat(&h, "spirit_gathering", player);
    let reply: EatReply = run.reply();
    let after = run.player_after();
    assert_eq!(after.currencies["spirit"], 885);
    assert_eq!(after.items["pill:spirit_gathering"], 1);
    assert_eq!(after.counters[PILLS_EATEN], 1);
    assert_eq!(
        (reply.effect.amount, reply.new_value, reply.pills_left),
        (880.0, 885.0, 1)
    );

    // Level 10: floor(1880 * 1.2^9) = 9700.
    let player = PlayerState::default()
        .with_stat("level", 10.0)
        .with_item("pill:spirit_recovery", 1);
    let after = eat(&h, "pill:spirit_recovery", player).player_after();
    assert_eq!(after.currencies["spirit"], 9700);
    assert!(!after.items.contains_key("pill:spirit_recovery"));
}

#[test]
fn cultivation_pills_add_to_the_cultivation_stat() {
    let h = harness();
    let player = PlayerState::default()
        .with_stat("level", 3.0)
        .with_stat("cultivation", 100.0)
        .with_item("pill:essence_condensation", 1);
    let after = eat(&h, "essence_condensation", player).player_after();
    // floor(50 * 1.44) = 72
    assert_eq!(after.stats["cultivation"], 172.0);
}

#[test]
fn the_thunder_pill_gives_a_one_hour_attack_buff_that_a_second_pill_replaces() {
    let h = harness();
    let player = PlayerState::default()
        .with_stat("level", 2.0)
        .with_stat("attack", 20.0)
        .with_item("pill:thunder_power", 2);
    let run = h
        .action("eat")
        .params(&Pill {
            pill: "thunder_power",
        })
        .player(player)
        .now_ms(1_000)
        .run();
    let after = run.player_after();
    assert_eq!(after.stats["attack"], 20.0, "base attack is untouched");
    assert_eq!(after.buffs.len(), 1);
    let buff = &after.buffs[0];
    assert_eq!(buff.id, "alchemy:thunder_power");
    assert_eq!(buff.expires_ms, 1_000 + 3_600_000);
    assert_eq!(buff.modifiers[0].stat, "attack");
    assert_eq!(buff.modifiers[0].add, 12.0);
    assert_eq!(run.reply::<EatReply>().expires_ms, Some(3_601_000));

    let second = h
        .action("eat")
        .params(&Pill {
            pill: "thunder_power",
        })
        .player(after)
        .now_ms(5_000)
        .run()
        .player_after();
    assert_eq!(second.buffs.len(), 1);
    assert_eq!(second.buffs[0].expires_ms, 5_000 + 3_600_000);
}

#[test]
fn the_tribulation_pill_raises_du_jie_rate_by_5_points_up_to_1() {
    let h = harness();
    let fresh = PlayerState::default().with_item("pill:du_jie_pill", 3);
    let after = eat(&h, "du_jie_pill", fresh).player_after();
    assert_eq!(
        after.stats["du_jie_rate"], 0.10,
        "unset counts as the starting 0.05"
    );
    let after = eat(&h, "du_jie_pill", after).player_after();
    assert_eq!(after.stats["du_jie_rate"], 0.15);

    let near = PlayerState::default()
        .with_stat("du_jie_rate", 0.98)
        .with_item("pill:du_jie_pill", 2);
    let after = eat(&h, "du_jie_pill", near).player_after();
    assert_eq!(after.stats["du_jie_rate"], 1.0);
    let msg = eat(&h, "du_jie_pill", after).rejected("no_effect").to_owned();
    assert!(msg.contains("cap"), "{msg}");
}

#[test]
fn eating_rejects_missing_and_unknown_pills() {
    let h = harness();
    eat(&h, "spirit_gathering", PlayerState::default()).rejected("insufficient");
    eat(
        &h,
        "no_such_pill",
        PlayerState::default().with_item("pill:no_such_pill", 1),
    )
    .rejected("not_found");
    eat(
        &h,
        "mind_clarity",
        PlayerState::default().with_item("pill:mind_clarity", 1),
    )
    .rejected("recipe_closed");
    h.action("eat").run().rejected("bad_params");
}

#[test]
fn a_full_round_trip_buy_unlock_craft_eat() {
    let h = harness();
    let mut player = PlayerState::default()
        .with_stat("level", 1.0)
        .with_currency("spirit_stones", 500_000)
        .with_item("herb:spirit_grass", 20)
        .with_item("herb:cloud_flower", 10);
    player = h
        .action("buy_fragment")
        .params(&Buy {
            recipe: "spirit_gathering",
            quantity: 10,
        })
        .player(player)
        .run()
        .player_after();
    let mut pills = 0;
    for seed in 0..10 {
        let run = craft_once(&h, "spirit_gathering", player, seed);
        pills += i64::from(run.reply::<CraftReply>().success);
        player = run.player_after();
    }
    assert_eq!(
        player.items.get("pill:spirit_gathering").copied().unwrap_or(0),
        pills
    );
    assert_eq!(player.counters.get(PILLS_CRAFTED).copied().unwrap_or(0), pills);
    assert!(pills > 0);
    let after = eat(&h, "spirit_gathering", player).player_after();
    assert_eq!(after.currencies["spirit"], 880);
    assert!(matches!(
        craft_once(&h, "spirit_gathering", after, 1).outcome,
        Outcome::Rejected { .. }
    ));
}
