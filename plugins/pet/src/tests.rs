//! Native tests through the SDK harness, as the host would call the plugin.

use std::collections::BTreeMap;

use cauldron_sdk::testing::{Harness, Run};

use super::*;

fn h() -> Harness<Pets> {
    Harness::with_content_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/content"))
}

fn table() -> PetsTable {
    h().action("info").run().reply()
}

fn pet(name: &str, quality: &str, level: u32, star: u32, active: bool) -> Pet {
    Pet {
        name: name.into(),
        quality: quality.into(),
        level,
        star,
        stats: BTreeMap::from([("attack".into(), 20.0), ("crit_rate".into(), 0.05)]),
        attack_bonus: 0.03,
        defense_bonus: 0.03,
        health_bonus: 0.03,
        active,
    }
}

fn id(id: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([("id", id.to_owned())])
}

fn feed(id: &str, food: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([("id", id.to_owned()), ("food", food.to_owned())])
}

fn pet_after(run: &Run, pid: &str) -> Option<Pet> {
    run.player_after()
        .entities
        .iter()
        .find(|e| e.id == pid)
        .map(|e| e.data.decode().expect("pet data"))
}

fn score(run: &Run) -> Option<f64> {
    run.effects().iter().find_map(|e| match e {
        Effect::SetScore { board, score } if board == "pets" => Some(*score),
        _ => None,
    })
}

// ---------------------------------------------------------------------------------------------
// Manifest, info

#[test]
fn manifest_declares_pets_and_the_modifiers_hook() {
    let h = h();
    let m = h.manifest();
    m.validate().expect("valid");
    assert_eq!(m.entity_kinds, vec!["pet".to_owned()]);
    assert_eq!(
        m.hook("modifiers").map(|h| h.reads.clone()),
        Some(vec![Section::Entities])
    );
    let star = m.action("star_up").expect("star_up");
    assert_eq!(
        star.params
            .iter()
            .map(|p| (p.name.as_str(), p.ty))
            .collect::<Vec<_>>(),
        [("id", ParamType::Entity), ("food", ParamType::Entity)]
    );
}

#[test]
fn info_lists_true_odds_twelve_names_and_prices() {
    let t = table();
    let keys: Vec<_> = t.quality.iter().map(|q| q.key.as_str()).collect();
    assert_eq!(
        keys,
        ["common", "uncommon", "rare", "epic", "legendary", "mythic"]
    );
    let odds: Vec<_> = t.quality.iter().map(|q| q.odds).collect();
    assert_eq!(odds, [80.0, 16.5, 3.2, 0.26, 0.03, 0.01]);
    let total: f64 = odds.iter().sum();
    assert!((total - 100.0).abs() < 1e-9);
    for q in &t.quality {
        assert_eq!(q.names.len(), 12, "{}", q.key);
        assert_eq!(q.names_en.len(), 12, "{}", q.key);
    }
    let release: Vec<_> = t.quality.iter().map(|q| q.release).collect();
    assert_eq!(release, [50, 80, 100, 150, 300, 500]);
}

#[test]
fn a_pets_table_that_does_not_decode_is_refused_at_load() {
    assert!(h().prepare().is_ok(), "the shipped table loads");
    let good = include_str!("../content/pets.toml");
    let broken = good.replace("draw_price = 100 ", "draw_price = \"a hundred\" ");
    assert_ne!(broken, good, "the test must actually break the table");
    let h = h().content_toml("pets", &broken);
    let err = h.prepare().expect_err("a string price refuses the load");
    assert_eq!(err.code(), "bad_content");
    let message = err.to_string();
    assert!(message.contains("content table `pets`"), "{message}");
    // A call never runs on refused content: it answers with the same fault.
    assert!(h.action("info").run().fault("bad_content").contains("`pets`"));
}

// ---------------------------------------------------------------------------------------------
// Generation

#[test]
fn rarity_odds_match_the_table_over_200k_draws() {
    let t = table();
    let mut rng = Rng::new(2024);
    let n = 200_000u32;
    let mut hits: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..n {
        *hits
            .entry(roll_quality(&mut rng, &t).expect("quality").key.clone())
            .or_default() += 1;
    }
    for q in &t.quality {
        let p = q.odds / 100.0;
        let expected = p * f64::from(n);
        let sigma = (expected * (1.0 - p)).sqrt();
        let got = f64::from(hits.get(&q.key).copied().unwrap_or(0));
        assert!(
            (got - expected).abs() <= 4.5 * sigma + 1.0,
            "{}: {got} vs {expected:.1} ± {sigma:.1}",
            q.key
        );
    }
    // The common share, the one players notice, within 0.3 points.
    let common = f64::from(hits["common"]) / f64::from(n);
    assert!((common - 0.80).abs() < 0.003, "common {common}");
}

#[test]
fn generated_pets_follow_their_quality() {
    let t = table();
    let mut rng = Rng::new(7);
    let mut seen = BTreeMap::new();
    for _ in 0..50_000 {
        let p = generate(&mut rng, &t).expect("pet");
        let q = t
            .quality
            .iter()
            .find(|q| q.key == p.quality)
            .expect("known quality");
        let want = q.base_stats + q.combat + q.resist + q.special;
        assert_eq!(p.stats.len(), want, "{p:?}");
        assert!(q.names.contains(&p.name));
        assert_eq!((p.level, p.star, p.active), (1, 0, false));
        assert_eq!(p.attack_bonus, q.bonus);
        assert_eq!((p.defense_bonus, p.health_bonus), (q.bonus, q.bonus));
        for (stat, v) in &p.stats {
            let key = if BASE_STATS.contains(&stat.as_str()) {
                stat.as_str()
            } else {
                "rate"
            };
            let [lo, hi] = q.ranges[key];
            assert!(
                *v >= lo.floor() && *v <= hi.ceil(),
                "{stat}={v} outside {lo}..{hi}"
            );
            if key != "rate" {
                assert_eq!(v.fract(), 0.0);
            }
        }
        *seen.entry(p.quality).or_insert(0) += 1;
    }
    assert!(seen.contains_key("epic"), "{seen:?}");
}

// ---------------------------------------------------------------------------------------------
// draw, hatch

#[test]
fn draw_ten_costs_a_thousand_stones_and_makes_ten_pets() {
    let player = PlayerState::default().with_currency("spirit_stones", 1500);
    let run = h()
        .action("draw")
        .params(&BTreeMap::from([("count", 10)]))
        .player(player)
        .run();
    let r: Obtained = run.reply();
    assert_eq!(r.pets.len(), 10);
    assert_eq!(r.spirit_stones_spent, 1000);
    let after = run.player_after();
    assert_eq!(after.currencies["spirit_stones"], 500);
    assert_eq!(after.entities.iter().filter(|e| e.kind == "pet").count(), 10);
    for v in &r.pets {
        assert_eq!(pet_after(&run, &v.id).as_ref(), Some(&v.pet));
    }
}

#[test]
fn draw_rejects_other_counts_and_poverty() {
    let rich = PlayerState::default().with_currency("spirit_stones", 100_000);
    for count in [0, 2, 50, -1] {
        h().action("draw")
            .params(&BTreeMap::from([("count", count)]))
            .player(rich.clone())
            .run()
            .rejected("bad_params");
    }
    h().action("draw").player(rich).run().rejected("bad_params");
    let poor = PlayerState::default().with_currency("spirit_stones", 99);
    h().action("draw")
        .params(&BTreeMap::from([("count", 1)]))
        .player(poor)
        .run()
        .rejected("insufficient");
}

#[test]
fn rare_draws_are_announced() {
    let rich = PlayerState::default().with_currency("spirit_stones", 1_000_000);
    let mut announced = 0;
    for seed in 0..300 {
        let run = h()
            .action("draw")
            .params(&BTreeMap::from([("count", 10)]))
            .player(rich.clone())
            .seed(seed)
            .run();
        let r: Obtained = run.reply();
        let rare = r
            .pets
            .iter()
            .filter(|p| ["epic", "legendary", "mythic"].contains(&p.pet.quality.as_str()))
            .count();
        assert_eq!(
            run.events().iter().filter(|(t, _)| *t == "rare_pet").count(),
            rare
        );
        announced += rare;
    }
    assert!(announced > 0);
}

#[test]
fn hatch_turns_one_egg_into_one_pet() {
    let run = h()
        .action("hatch")
        .player(PlayerState::default().with_item("egg:pet", 2))
        .run();
    let r: Obtained = run.reply();
    assert_eq!((r.pets.len(), r.eggs_used), (1, 1));
    let after = run.player_after();
    assert_eq!(after.items["egg:pet"], 1);
    assert_eq!(after.entities.len(), 1);
    h().action("hatch")
        .player(PlayerState::default())
        .run()
        .rejected("insufficient");
}

// ---------------------------------------------------------------------------------------------
// deploy, recall, modifiers

#[test]
fn deploy_replaces_the_active_pet() {
    let player = PlayerState::default()
        .with_entity("a", "pet", &pet("白狐", "common", 1, 0, true))
        .with_entity("b", "pet", &pet("灵狐", "rare", 3, 2, false));
    let run = h().action("deploy").params(&id("b")).player(player.clone()).run();
    assert!(pet_after(&run, "b").is_some_and(|p| p.active));
    assert!(pet_after(&run, "a").is_some_and(|p| !p.active));
    // rare = rank 3, 2 stars, level 3.
    assert_eq!(score(&run), Some(3_002_003.0));
    // Already deployed: nothing changes.
    let run = h().action("deploy").params(&id("a")).player(player.clone()).run();
    assert!(run.effects().is_empty());
    h().action("deploy")
        .params(&id("zzz"))
        .player(player.clone())
        .run()
        .rejected("not_found");
    h().action("deploy").player(player).run().rejected("bad_params");
}

#[test]
fn recall_needs_a_deployed_pet() {
    let player = PlayerState::default()
        .with_entity("a", "pet", &pet("白狐", "common", 1, 0, true))
        .with_entity("b", "pet", &pet("灰狼", "common", 1, 0, false));
    let run = h().action("recall").params(&id("a")).player(player.clone()).run();
    assert!(pet_after(&run, "a").is_some_and(|p| !p.active));
    assert_eq!(score(&run), Some(0.0));
    h().action("recall")
        .params(&id("b"))
        .player(player.clone())
        .run()
        .rejected("not_active");
    h().action("recall")
        .params(&id("nope"))
        .player(player)
        .run()
        .rejected("not_found");
}

#[test]
fn modifiers_are_exactly_the_deployed_pets() {
    let mut mine = pet("麒麟", "legendary", 2, 1, true);
    mine.stats = BTreeMap::from([
        ("attack".into(), 600.0),
        ("speed".into(), 300.0),
        ("dodge_rate".into(), 0.25),
    ]);
    mine.attack_bonus = 0.142;
    mine.defense_bonus = 0.142;
    mine.health_bonus = 0.142;
    let player = PlayerState::default()
        .with_entity("x", "pet", &pet("白狐", "common", 9, 9, false))
        .with_entity("y", "pet", &mine);
    let run = h().hook("modifiers").player(player).run();
    let mut got: Vec<(String, f64, f64)> = run
        .modifiers()
        .iter()
        .map(|m| (m.stat.clone(), m.add, m.mul))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            ("attack".into(), 600.0, 0.142),
            ("defense".into(), 0.0, 0.142),
            ("dodge_rate".into(), 0.25, 0.0),
            ("health".into(), 0.0, 0.142),
            ("speed".into(), 300.0, 0.0),
        ]
    );
    assert!(run.modifiers().iter().all(|m| m.source == "pet: 麒麟"));
    // Nobody deployed: nothing.
    let idle = PlayerState::default().with_entity("x", "pet", &pet("白狐", "common", 1, 0, false));
    assert!(h().hook("modifiers").player(idle).run().modifiers().is_empty());
}

// ---------------------------------------------------------------------------------------------
// upgrade

#[test]
fn upgrade_costs_level_times_ten_and_grows_stats() {
    let mut p = pet("灵狐", "rare", 3, 0, false);
    p.stats.insert("health".into(), 1000.0);
    let player = PlayerState::default()
        .with_currency("pet_essence", 35)
        .with_entity("a", "pet", &p);
    let run = h()
        .action("upgrade")
        .params(&id("a"))
        .player(player.clone())
        .run();
    let r: PetReply = run.reply();
    assert_eq!(r.essence_spent, 30);
    assert_eq!(run.player_after().currencies["pet_essence"], 5);
    let after = pet_after(&run, "a").expect("pet");
    assert_eq!(after.level, 4);
    assert_eq!(after.stats["attack"], 22.0);
    assert_eq!(after.stats["health"], 1100.0);
    assert_eq!(after.stats["crit_rate"], 0.05, "rates do not grow");
    assert!(!after.stats.contains_key("speed"), "no stat appears from nowhere");
    // rare base 0.06 at level 4: 0.06 + 3 × 0.006 = 0.078.
    assert!((after.attack_bonus - 0.078).abs() < 1e-9);
    // Client cannot choose a cheaper price: the params carry no amount, and 29 essence is not enough.
    let poor = PlayerState::default()
        .with_currency("pet_essence", 29)
        .with_entity("a", "pet", &p);
    h().action("upgrade")
        .params(&BTreeMap::from([("id", "a"), ("essenceCount", "1")]))
        .player(poor)
        .run()
        .rejected("insufficient");
    h().action("upgrade")
        .params(&id("b"))
        .player(player)
        .run()
        .rejected("not_found");
}

// ---------------------------------------------------------------------------------------------
// star_up

#[test]
fn star_up_with_the_same_name_always_works_and_eats_the_food() {
    let player = PlayerState::default()
        .with_entity("a", "pet", &pet("饕餮", "epic", 1, 4, false))
        .with_entity("b", "pet", &pet("饕餮", "epic", 1, 0, false));
    for seed in 0..20 {
        let run = h()
            .action("star_up")
            .params(&feed("a", "b"))
            .player(player.clone())
            .seed(seed)
            .run();
        let r: StarUpReply = run.reply();
        assert!(r.success);
        assert_eq!(r.chance, 1.0);
        assert!(pet_after(&run, "b").is_none());
        let a = pet_after(&run, "a").expect("pet");
        assert_eq!(a.star, 5);
        // epic base 0.09, 5 stars: 0.09 + 5 × 0.01 + 1 × 0.09 × 0.5 = 0.185.
        assert!((a.attack_bonus - 0.185).abs() < 1e-9, "{}", a.attack_bonus);
    }
}

#[test]
fn star_up_failure_still_eats_the_food() {
    let player = PlayerState::default()
        .with_entity("a", "pet", &pet("白狐", "common", 1, 0, false))
        .with_entity("b", "pet", &pet("灰狼", "common", 1, 0, false));
    let mut failures = 0;
    for seed in 0..50 {
        let run = h()
            .action("star_up")
            .params(&feed("a", "b"))
            .player(player.clone())
            .seed(seed)
            .run();
        let r: StarUpReply = run.reply();
        assert_eq!(r.chance, 0.3);
        assert!(pet_after(&run, "b").is_none());
        let star = pet_after(&run, "a").map(|p| p.star);
        assert_eq!(star, Some(u32::from(r.success)));
        failures += u32::from(!r.success);
    }
    assert!(failures > 0);
}

#[test]
fn star_up_success_rates_match_over_100k_tries() {
    let t = table();
    let mut rng = Rng::new(31);
    let n = 100_000u32;
    let food = pet("灰狼", "common", 1, 0, false);
    let mut ok = 0u32;
    for _ in 0..n {
        let mut p = pet("白狐", "common", 1, 0, false);
        ok += u32::from(try_star_up(&mut rng, &t, &mut p, &food).expect("star up"));
    }
    let share = f64::from(ok) / f64::from(n);
    assert!((share - 0.30).abs() < 0.005, "different-name share {share}");
    let twin = pet("白狐", "common", 1, 0, false);
    for _ in 0..1000 {
        let mut p = pet("白狐", "common", 1, 0, false);
        assert!(try_star_up(&mut rng, &t, &mut p, &twin).expect("star up"));
    }
}

#[test]
fn star_up_rejections() {
    let player = PlayerState::default()
        .with_entity("a", "pet", &pet("白狐", "common", 1, 0, false))
        .with_entity("r", "pet", &pet("灵狐", "rare", 1, 0, false))
        .with_entity("act", "pet", &pet("白狐", "common", 1, 0, true));
    let go = |params| h().action("star_up").params(&params).player(player.clone()).run();
    go(feed("a", "r")).rejected("wrong_rarity");
    go(feed("a", "act")).rejected("food_active");
    go(feed("a", "a")).rejected("bad_params");
    go(feed("a", "ghost")).rejected("not_found");
    go(feed("ghost", "a")).rejected("not_found");
    go(id("a")).rejected("bad_params");
}

#[test]
fn bonus_formula_matches_the_listed_numbers() {
    let t = table();
    let mythic = t.quality.iter().find(|q| q.key == "mythic").expect("mythic");
    // 0.15 + 10 × 0.02 + 4 × 0.015 + 2 × 0.075 = 0.56
    assert!((bonus_for(mythic, 10, 5) - 0.56).abs() < 1e-9);
    assert_eq!(bonus_for(mythic, 0, 1), 0.15);
}

// ---------------------------------------------------------------------------------------------
// release

#[test]
fn release_pays_by_quality_but_not_for_the_deployed_pet() {
    let player = PlayerState::default()
        .with_currency("spirit_stones", 7)
        .with_entity("m", "pet", &pet("应龙", "mythic", 1, 0, false))
        .with_entity("act", "pet", &pet("白狐", "common", 1, 0, true));
    let run = h()
        .action("release")
        .params(&id("m"))
        .player(player.clone())
        .run();
    let r: ReleaseReply = run.reply();
    assert_eq!(r.spirit_stones, 500);
    assert_eq!(run.player_after().currencies["spirit_stones"], 507);
    assert!(pet_after(&run, "m").is_none());
    h().action("release")
        .params(&id("act"))
        .player(player.clone())
        .run()
        .rejected("pet_active");
    h().action("release")
        .params(&id("nope"))
        .player(player)
        .run()
        .rejected("not_found");
}

// ---------------------------------------------------------------------------------------------
// determinism

#[test]
fn same_call_same_outcome() {
    let player = PlayerState::default().with_currency("spirit_stones", 5000);
    let call = || {
        h().action("draw")
            .params(&BTreeMap::from([("count", 10)]))
            .player(player.clone())
            .seed(123)
            .run()
            .outcome
    };
    assert_eq!(call(), call());
    let other = h()
        .action("draw")
        .params(&BTreeMap::from([("count", 10)]))
        .player(player.clone())
        .seed(124)
        .run()
        .outcome;
    assert_ne!(call(), other);
}

/// Six pets: the deployed common, two idle commons, an uncommon, a rare and a 2-star rare.
fn kennel() -> PlayerState {
    PlayerState::default()
        .with_currency("spirit_stones", 5)
        .with_entity("a", "pet", &pet("白狐", "common", 1, 0, true))
        .with_entity("b", "pet", &pet("灰狼", "common", 3, 0, false))
        .with_entity("c", "pet", &pet("黄牛", "common", 1, 0, false))
        .with_entity("d", "pet", &pet("妖猴", "uncommon", 1, 0, false))
        .with_entity("e", "pet", &pet("灵狐", "rare", 1, 0, false))
        .with_entity("f", "pet", &pet("灵鹿", "rare", 1, 2, false))
}

#[test]
fn batch_release_frees_every_idle_pet_of_the_qualities_at_the_single_price() {
    #[derive(Serialize)]
    struct P<'a> {
        qualities: &'a [&'a str],
    }
    let run = h()
        .action("batch_release")
        .params(&P {
            qualities: &["common", "rare"],
        })
        .player(kennel())
        .run();
    let reply: BatchReleaseReply = run.reply();
    let mut ids: Vec<&str> = reply.released.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    // The deployed common stays; each released pet pays what `release` pays for it.
    assert_eq!(ids, ["b", "c", "e", "f"]);
    assert_eq!(reply.count, 4);
    assert_eq!(reply.spirit_stones, 50 + 50 + 100 + 100);
    let single: ReleaseReply = h()
        .action("release")
        .params(&id("e"))
        .player(kennel())
        .run()
        .reply();
    let batch_e = reply.released.iter().find(|r| r.id == "e").unwrap();
    assert_eq!(batch_e, &single);
    let after = run.player_after();
    assert_eq!(after.currencies["spirit_stones"], 5 + 300);
    let mut left: Vec<&str> = after.entities.iter().map(|e| e.id.as_str()).collect();
    left.sort_unstable();
    assert_eq!(left, ["a", "d"]);
}

#[test]
fn batch_release_refuses_nothing_to_release_and_bad_qualities() {
    let run = |q: &str| {
        h().action("batch_release")
            .params(&BTreeMap::from([("qualities", q)]))
            .player(kennel())
            .run()
    };
    run("mythic").rejected("nothing_to_release");
    // The deployed pet is never released.
    let lone = PlayerState::default().with_entity("a", "pet", &pet("白狐", "common", 1, 0, true));
    h().action("batch_release")
        .params(&BTreeMap::from([("qualities", "common")]))
        .player(lone)
        .run()
        .rejected("nothing_to_release");
    run("golden").rejected("bad_params");
    run(",").rejected("bad_params");
    h().action("batch_release")
        .player(kennel())
        .run()
        .rejected("bad_params");
}

#[derive(Serialize, Default)]
struct ListP<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    quality: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    active: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    page_size: Option<i64>,
}

fn list_of(p: &ListP<'_>) -> ListReply {
    h().action("list").params(p).player(kennel()).run().reply()
}

#[test]
fn the_pet_list_filters_pages_and_counts() {
    let all = list_of(&ListP::default());
    let order: Vec<&str> = all.pets.iter().map(|v| v.id.as_str()).collect();
    // Deployed first, then quality, stars, level (best first), then id.
    assert_eq!(order, ["a", "f", "e", "d", "b", "c"]);
    assert_eq!(
        (all.total, all.matched, all.pages, all.page_size),
        (6, 6, 1, None)
    );

    let commons = list_of(&ListP {
        quality: Some("common"),
        active: Some(false),
        ..ListP::default()
    });
    assert_eq!((commons.total, commons.matched), (6, 2));
    assert!(
        commons
            .pets
            .iter()
            .all(|v| v.pet.quality == "common" && !v.pet.active)
    );

    let page2 = list_of(&ListP {
        page: Some(2),
        page_size: Some(4),
        ..ListP::default()
    });
    assert_eq!((page2.page, page2.pages, page2.matched), (2, 2, 6));
    let ids: Vec<&str> = page2.pets.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["b", "c"]);

    for bad in [
        ListP {
            page: Some(0),
            ..ListP::default()
        },
        ListP {
            page_size: Some(0),
            ..ListP::default()
        },
        ListP {
            quality: Some("shiny"),
            ..ListP::default()
        },
    ] {
        h().action("list")
            .params(&bad)
            .player(kennel())
            .run()
            .rejected("bad_params");
    }
}

#[test]
fn the_board_row_describes_the_deployed_pet() {
    let run = h().action("deploy").params(&id("f")).player(kennel()).run();
    let state: State = run.player_after().state.decode().expect("state decodes");
    let row = &state.boards["pets"];
    assert_eq!((row.name.as_str(), row.quality.as_str()), ("灵鹿", "rare"));
    assert_eq!((row.star, row.level), (2, 1));
    assert_eq!(row.quality_name, "灵兽");
    let run = h()
        .action("recall")
        .params(&id("f"))
        .player(run.player_after())
        .run();
    let state: State = run.player_after().state.decode().expect("state decodes");
    assert!(state.boards.is_empty());
}
