//! Fixed-seed statistical checks over 100 000 draws: the odds a player experiences match the tables.

mod common;

use std::collections::BTreeMap;

use cauldron_plugin_cultivation::reply::{ExploreReply, MeditateReply};
use common::*;

const DRAWS: u64 = 100_000;

/// Allowed distance from the expected share: 5 standard deviations of a binomial share.
fn tolerance(p: f64, n: u64) -> f64 {
    5.0 * (p * (1.0 - p) / n as f64).sqrt()
}

fn assert_share(what: &str, hits: u64, n: u64, p: f64) {
    let share = hits as f64 / n as f64;
    let tol = tolerance(p, n);
    assert!(
        (share - p).abs() <= tol,
        "{what}: share {share:.5}, expected {p:.5} +- {tol:.5}"
    );
}

#[test]
fn meditation_luck_multiplier_matches_the_table() {
    let h = harness();
    let p = started(&h).with_currency("spirit", 10);
    let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
    let mut total_gain = 0.0;
    for seed in 0..DRAWS {
        let r: MeditateReply = h
            .action("meditate")
            .player(p.clone())
            .now_ms(T0)
            .seed(seed)
            .run()
            .reply();
        *counts.entry(r.luck.multiplier as u32).or_default() += 1;
        total_gain += r.cultivation_gain;
    }
    // The design: 1% x10, 5% x5, 10% x4, 20% x3, 30% x2, 34% x1.
    let table = [(10, 0.01), (5, 0.05), (4, 0.10), (3, 0.20), (2, 0.30), (1, 0.34)];
    assert_eq!(counts.len(), table.len(), "{counts:?}");
    for (mult, p) in table {
        assert_share(
            &format!("x{mult}"),
            counts.get(&mult).copied().unwrap_or(0),
            DRAWS,
            p,
        );
    }
    // At level 1 the gain is the multiplier itself: the mean is the expected multiplier 2.29.
    let mean = total_gain / DRAWS as f64;
    assert!((mean - 2.29).abs() < 0.02, "mean gain {mean}");
}

#[test]
fn exploration_event_rates_match_the_table() {
    let h = harness();
    let p = at_level(&h, 10, 2000.0, 1_000_000);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut herbs: BTreeMap<String, u64> = BTreeMap::new();
    let mut stones: BTreeMap<i64, u64> = BTreeMap::new();
    let mut quiet = 0;
    for seed in 0..DRAWS {
        let r: ExploreReply = h
            .action("explore")
            .player(p.clone())
            .now_ms(T0)
            .seed(seed)
            .run()
            .reply();
        match r.events.first() {
            None => quiet += 1,
            Some(e) => {
                *counts.entry(e.id.clone()).or_default() += 1;
                if let Some(item) = &e.item
                    && item.item.starts_with("herb:")
                {
                    *herbs.entry(item.item.clone()).or_default() += 1;
                }
                if e.id == "spirit_stones" {
                    *stones.entry(e.amount).or_default() += 1;
                }
            }
        }
    }
    // Something happens 70% of the time at luck 1; each event's share is weight/100 of that.
    assert_share("nothing happens", quiet, DRAWS, 0.30);
    let weights = [
        ("debate_assembly", 10.0),
        ("sect_servant", 11.0),
        ("ancient_cave", 7.0),
        ("mountain_enlightenment", 5.0),
        ("marriage_contest", 11.0),
        ("seductress", 12.0),
        ("demon_king", 8.0),
        ("herb_find", 6.0),
        ("recipe_fragment", 1.0),
        ("spirit_stones", 12.0),
        ("reinforce_stones", 6.0),
        ("refinement_stones", 6.0),
        ("pet_essence", 5.0),
    ];
    assert_eq!(counts.len(), weights.len(), "{counts:?}");
    for (id, w) in weights {
        assert_share(id, counts.get(id).copied().unwrap_or(0), DRAWS, 0.7 * w / 100.0);
    }
    // Given a herb find, herbs follow the exploration weights.
    let herb_finds: u64 = herbs.values().sum();
    for (id, w) in [
        ("spirit_grass", 0.25),
        ("cloud_flower", 0.25),
        ("thunder_root", 0.15),
        ("dark_yin_grass", 0.10),
        ("frost_lotus", 0.10),
        ("dragon_breath_herb", 0.05),
        ("nine_leaf_lingzhi", 0.05),
        ("purple_ginseng", 0.05),
    ] {
        let key = format!("herb:{id}");
        assert_share(&key, herbs.get(&key).copied().unwrap_or(0), herb_finds, w);
    }
    // Given a stone find, the amounts follow their table.
    let stone_finds: u64 = stones.values().sum();
    for (amount, w) in [
        (100, 0.40),
        (150, 0.20),
        (200, 0.20),
        (300, 0.10),
        (500, 0.05),
        (700, 0.04),
        (1000, 0.01),
    ] {
        assert_share(
            &format!("{amount} stones"),
            stones.get(&amount).copied().unwrap_or(0),
            stone_finds,
            w,
        );
    }
}
