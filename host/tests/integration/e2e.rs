//! The game end to end through the HTTP API: a fresh account plays from registration
//! through meditation, a breakthrough, exploration, herb gathering, alchemy, equipment, a pet and the
//! dungeon, and after every step the test reads `GET /api/v1/player` and `GET /api/v1/player/stats`
//! and checks that they changed exactly as the plugins' rules say.
//!
//! Randomness is seeded by the host per call, so the test asserts rule relations (cost formulas,
//! consumed = recipe materials, effective = composed modifiers), never a particular roll. Game time
//! passes through the host's clock, which the test moves forward instead of waiting (the income a
//! step needs), and the player gains resources only through actions.
//!
//! - [`play_a_fresh_account`] plays the shipped content. Two steps cannot complete under those rules
//!   in a test, and the test checks what is feasible of them (see its comments and the `README.md` of
//!   each plugin): unlocking a recipe needs 10 fragments at 50 000 spirit stones each (a new account
//!   has the 1 000 of one check-in) or about 570 explorations per fragment of that recipe found;
//!   enhancing needs reinforce stones, which only dungeon wins give reliably (exploration finds them
//!   4.2 % of the time). A dungeon fight costs 2 880 × 1.2^(L−1) spirit, 48 minutes of income at
//!   level 2: refused at first, then fought once the game clock has moved on by that income.
//! - [`play_a_designer_economy`] plays the same rules with three prices lowered in the content tables
//!   (what a designer edits, no recompile): a recipe fragment costs 1 stone, a dungeon fight 10 × 1.2^(L−1)
//!   spirit, a beast hunt 1 × 1.2^(L−1) spirit, and the dungeon guardian is weaker. Everything else is
//!   the shipped rules, so crafting, eating, clearing floors, enhancing and upgrading are played for real.
//! - [`without_one_plugin`]: with any one plugin removed, the others still load and act.

#![allow(clippy::unwrap_used, reason = "an unwrap is an assertion here")]
#![allow(
    clippy::float_cmp,
    reason = "the rules produce exact values the test recomputes"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::common::{Backend, TestApp, json_of, without_read_time};
use reqwest::StatusCode;
use serde_json::{Value, json};

// ---- the player's side of the API -------------------------------------------------------------

/// A registered player talking to one app.
struct Player<'a> {
    app: &'a TestApp,
    token: String,
}

impl<'a> Player<'a> {
    async fn register(app: &'a TestApp, tag: &str) -> Self {
        let username = format!("{tag}_{:08x}", crate::common::random_u64() as u32);
        let resp = app
            .http
            .post(app.url("/api/v1/auth/register"))
            .json(&json!({"username": username, "password": "hunter2hunter2"}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(resp).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        Player {
            app,
            token: body["token"].as_str().unwrap().to_owned(),
        }
    }

    async fn get(&self, path: &str) -> Value {
        let resp = self
            .app
            .http
            .get(self.app.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(resp).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        if path == "/api/v1/player" {
            return without_read_time(body);
        }
        body
    }

    /// `GET /api/v1/player`.
    async fn state(&self) -> Value {
        self.get("/api/v1/player").await
    }

    /// `GET /api/v1/player/stats`, checked: effective = (base + Σadd) × (1 + Σmul) for every stat.
    async fn stats(&self) -> Value {
        let view = self.get("/api/v1/player/stats").await;
        assert_composed(&view);
        view
    }

    async fn act(&self, plugin: &str, action: &str, params: &Value) -> (StatusCode, Value) {
        let resp = self
            .app
            .http
            .post(self.app.url(&format!("/api/v1/actions/{plugin}/{action}")))
            .bearer_auth(&self.token)
            .json(params)
            .send()
            .await
            .unwrap();
        json_of(resp).await
    }

    /// Runs an action that must be applied; returns the whole `{reply, events, player_version}`.
    async fn ok(&self, plugin: &str, action: &str, params: Value) -> Value {
        let (status, body) = self.act(plugin, action, &params).await;
        assert_eq!(status, StatusCode::OK, "{plugin}/{action} {params}: {body}");
        body
    }

    /// Runs an action the rules must refuse with `code` (HTTP 422), and checks nothing changed.
    async fn reject(&self, plugin: &str, action: &str, params: Value, code: &str) {
        let before = self.state().await;
        let (status, body) = self.act(plugin, action, &params).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{plugin}/{action} {params}: {body}"
        );
        assert_eq!(body["error"]["code"], code, "{plugin}/{action}: {body}");
        let after = self.state().await;
        assert_eq!(before, after, "a refused {plugin}/{action} changed the state");
    }

    /// Moves game time forward (the host's clock, not the wall clock) until `cultivation/gather`
    /// (which collects the spirit earned so far) shows at least `amount` spirit: spirit comes only
    /// with time, at least 1 a second.
    async fn wait_for_spirit(&self, amount: i64) {
        for _ in 0..10 {
            let r = self.ok("cultivation", "gather", json!({})).await;
            let spirit = r["reply"]["spirit"].as_i64().unwrap();
            if spirit >= amount {
                return;
            }
            let short = u64::try_from(amount - spirit).unwrap();
            self.app.clock.advance(Duration::from_secs(short));
        }
        panic!("spirit did not reach {amount} after moving game time forward ten times");
    }
}

// ---- reading state ----------------------------------------------------------------------------

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn stat(s: &Value, name: &str) -> f64 {
    num(&s["stats"][name])
}

fn cur(s: &Value, name: &str) -> i64 {
    s["currencies"][name].as_i64().unwrap_or(0)
}

fn item(s: &Value, name: &str) -> i64 {
    s["items"][name].as_i64().unwrap_or(0)
}

fn counter(s: &Value, name: &str) -> i64 {
    s["counters"][name].as_i64().unwrap_or(0)
}

fn entity<'v>(s: &'v Value, id: &str) -> &'v Value {
    s["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("no entity {id} in {}", s["entities"]))
}

fn entities_of(s: &Value, kind: &str) -> usize {
    s["entities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .count()
}

#[track_caller]
fn close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= 1e-6 * expected.abs().max(1.0),
        "{what}: {actual} != {expected}"
    );
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn has_event(body: &Value, topic: &str) -> bool {
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["topic"] == topic)
}

/// `effective[s] = (base[s] + Σ add) × (1 + Σ mul)` for every stat, as the host composes them.
#[track_caller]
fn assert_composed(view: &Value) {
    let base = view["base"].as_object().unwrap();
    let effective = view["effective"].as_object().unwrap();
    let mut add: BTreeMap<String, f64> = BTreeMap::new();
    let mut mul: BTreeMap<String, f64> = BTreeMap::new();
    for m in view["modifiers"].as_array().unwrap() {
        let s = m["stat"].as_str().unwrap().to_owned();
        *add.entry(s.clone()).or_default() += num(&m["add"]);
        *mul.entry(s).or_default() += num(&m["mul"]);
    }
    for name in base.keys() {
        assert!(effective.contains_key(name), "effective stats lack {name}");
    }
    for (name, e) in effective {
        let b = base.get(name).map_or(0.0, num);
        let expected =
            (b + add.get(name).copied().unwrap_or(0.0)) * (1.0 + mul.get(name).copied().unwrap_or(0.0));
        close(num(e), expected, &format!("effective {name}"));
    }
}

/// The modifiers whose source is `source`, as stat → (add, mul).
fn modifiers_from(view: &Value, source: &str) -> BTreeMap<String, (f64, f64)> {
    let mut out = BTreeMap::new();
    for m in view["modifiers"].as_array().unwrap() {
        if m["source"] == source {
            let e = out
                .entry(m["stat"].as_str().unwrap().to_owned())
                .or_insert((0.0, 0.0));
            e.0 += num(&m["add"]);
            e.1 += num(&m["mul"]);
        }
    }
    out
}

// ---- the rules' formulas (plugins/*/content/*.toml, shipped values) ---------------------------

/// `base × growth^(L−1)`.
fn scaled(base: f64, growth: f64, level: f64) -> f64 {
    base * growth.powf(level - 1.0)
}

const LUCK_MULTIPLIERS: [f64; 6] = [1.0, 2.0, 3.0, 4.0, 5.0, 10.0];
const REALM_1: [f64; 9] = [
    199.0, 299.0, 999.0, 1199.0, 1599.0, 3999.0, 5019.0, 5099.0, 5099.0,
];
const FLAT_STATS: [&str; 4] = ["attack", "health", "defense", "speed"];

/// The base stats a breakthrough to (or a start at) `level` rebuilds.
#[track_caller]
fn assert_level_stats(s: &Value, level: f64) {
    close(stat(s, "level"), level, "level");
    close(stat(s, "attack"), 10.0 * level, "attack = 10·L");
    close(stat(s, "health"), 100.0 * level, "health = 100·L");
    close(stat(s, "defense"), 5.0 * level, "defense = 5·L");
    close(stat(s, "speed"), 10.0 * level, "speed = 10·L");
    close(
        stat(s, "spirit_rate"),
        round2(scaled(1.0, 1.2, level)),
        "spirit_rate = round2(1.2^(L−1))",
    );
}

/// What enhancing does to one stat line: ×1.1, flat stats whole, rates to 0.001.
fn enhanced(stat: &str, v: f64) -> f64 {
    if FLAT_STATS.contains(&stat) {
        (v * 1.1).round()
    } else {
        (v * 1.1 * 1000.0).round() / 1000.0
    }
}

// ---- steps shared by the scenarios ------------------------------------------------------------

/// A new character: level 1 with the level stats, nothing else, effective = base.
async fn check_new_character(p: &Player<'_>) {
    let s = p.state().await;
    assert_level_stats(&s, 1.0);
    assert_eq!(stat(&s, "cultivation"), 0.0);
    assert_eq!(stat(&s, "max_cultivation"), REALM_1[0]);
    assert_eq!(cur(&s, "spirit_stones"), 0);
    assert!(s["entities"].as_array().unwrap().is_empty());
    let v = p.stats().await;
    assert!(v["modifiers"].as_array().unwrap().is_empty(), "{v}");
    assert_eq!(v["base"], s["stats"]);
}

/// The daily check-in: day 1 of the streak pays 1 000 spirit stones, once per game day.
async fn check_in(p: &Player<'_>) {
    let before = p.state().await;
    let body = p.ok("cultivation", "checkin", json!({})).await;
    let r = &body["reply"];
    assert_eq!(r["streak_day"], 1);
    assert_eq!(r["reward"], 1000);
    let after = p.state().await;
    assert_eq!(cur(&after, "spirit_stones"), cur(&before, "spirit_stones") + 1000);
    assert_eq!(
        cur(&after, "spirit"),
        cur(&before, "spirit") + r["accrual"]["gained"].as_i64().unwrap()
    );
    p.reject("cultivation", "checkin", json!({}), "already_checked_in")
        .await;
}

/// One meditation: spirit spent = round(10 × 1.5^(L−1)), cultivation gained =
/// round1(1.2^(L−1) × cultivation_rate × luck). Moves game time forward for the spirit.
async fn meditate(p: &Player<'_>) {
    let level = stat(&p.state().await, "level");
    let cost = scaled(10.0, 1.5, level).round() as i64;
    p.wait_for_spirit(cost).await;
    let rate = num(&p.stats().await["effective"]["cultivation_rate"]);
    let before = p.state().await;
    let body = p.ok("cultivation", "meditate", json!({})).await;
    let r = &body["reply"];
    assert_eq!(r["spirit_cost"].as_i64().unwrap(), cost);
    let luck = num(&r["luck"]["multiplier"]);
    assert!(LUCK_MULTIPLIERS.contains(&luck), "{r}");
    let gain = num(&r["cultivation_gain"]);
    close(
        gain,
        round1(scaled(1.0, 1.2, level) * rate * luck),
        "meditation gain",
    );
    let after = p.state().await;
    let accrued = r["accrual"]["gained"].as_i64().unwrap();
    assert_eq!(cur(&after, "spirit"), cur(&before, "spirit") + accrued - cost);
    assert_eq!(cur(&after, "spirit"), r["spirit"].as_i64().unwrap());
    if r["breakthrough"].is_null() {
        close(
            stat(&after, "cultivation"),
            stat(&before, "cultivation") + gain,
            "cultivation after meditation",
        );
    }
}

/// One formation use, checked: stones spent = floor(10 × 1.25^(L−1)) (÷10 rounded up for the first
/// ten uses of the game day), cultivation gained = round1(5 × 1.12^(L−1) × cultivation_rate × luck).
/// Returns the state before, the action's body and the state after.
async fn formation(p: &Player<'_>) -> (Value, Value, Value) {
    let rate = num(&p.stats().await["effective"]["cultivation_rate"]);
    let before = p.state().await;
    let level = stat(&before, "level");
    let body = p.ok("cultivation", "formation", json!({})).await;
    let r = &body["reply"];
    let full = scaled(10.0, 1.25, level).floor() as i64;
    let cost = if r["discounted"].as_bool().unwrap() {
        (full + 9) / 10
    } else {
        full
    };
    assert_eq!(r["stone_cost"].as_i64().unwrap(), cost, "{r}");
    let luck = num(&r["luck"]["multiplier"]);
    assert!(LUCK_MULTIPLIERS.contains(&luck), "{r}");
    let gain = num(&r["cultivation_gain"]);
    close(
        gain,
        round1(scaled(5.0, 1.12, level) * rate * luck),
        "formation gain",
    );
    let after = p.state().await;
    assert_eq!(cur(&after, "spirit_stones"), cur(&before, "spirit_stones") - cost);
    if r["breakthrough"].is_null() {
        close(
            stat(&after, "cultivation"),
            stat(&before, "cultivation") + gain,
            "cultivation after formation",
        );
        assert_eq!(stat(&after, "level"), level);
    }
    (before, body, after)
}

/// Formation until cultivation fills and the player breaks through; checks the breakthrough: level
/// +1, cultivation 0, the next threshold, base stats rebuilt, spirit +100 × the new level, the event,
/// the `realm` score, and effective stats that follow the new base.
async fn formation_to_breakthrough(p: &Player<'_>) {
    for _ in 0..120 {
        let (before, body, after) = formation(p).await;
        let b = &body["reply"]["breakthrough"];
        if b.is_null() {
            continue;
        }
        let from = stat(&before, "level");
        let to = from + 1.0;
        assert_eq!(num(&b["level"]), to, "{b}");
        assert_eq!(b["spirit_reward"].as_i64().unwrap(), 100 * to as i64);
        assert_level_stats(&after, to);
        assert_eq!(stat(&after, "cultivation"), 0.0);
        assert_eq!(stat(&after, "max_cultivation"), REALM_1[to as usize - 1]);
        let accrued = body["reply"]["accrual"]["gained"].as_i64().unwrap();
        assert_eq!(
            cur(&after, "spirit"),
            cur(&before, "spirit") + accrued + 100 * to as i64
        );
        assert!(has_event(&body, "breakthrough"), "{body}");
        assert_eq!(num(&after["scores"]["realm"]), to, "{}", after["scores"]);
        // Other stats (cultivation_rate, luck, du_jie_rate) are left alone.
        for s in ["cultivation_rate", "luck", "du_jie_rate"] {
            assert_eq!(stat(&after, s), stat(&before, s), "{s}");
        }
        let v = p.stats().await;
        for s in FLAT_STATS {
            assert!(num(&v["effective"][s]) >= stat(&after, s), "effective {s}");
        }
        return;
    }
    panic!("no breakthrough after 120 formations");
}

/// Formation until cultivation reaches exploration's 30 % of the threshold, then one exploration:
/// spirit spent = round(88 × 1.2^(L−1)), the counter, and every event's effect on the state.
async fn explore(p: &Player<'_>) -> Value {
    let s = p.state().await;
    let need = 0.3 * stat(&s, "max_cultivation");
    if stat(&s, "cultivation") < need {
        p.reject("cultivation", "explore", json!({}), "not_ready").await;
    }
    for _ in 0..60 {
        if stat(&p.state().await, "cultivation") >= need {
            break;
        }
        let (_, body, _) = formation(p).await;
        assert!(body["reply"]["breakthrough"].is_null());
    }
    let before = p.state().await;
    let level = stat(&before, "level");
    let cost = scaled(88.0, 1.2, level).round() as i64;
    p.wait_for_spirit(cost).await;
    let before = p.state().await;
    let body = p.ok("cultivation", "explore", json!({})).await;
    let r = &body["reply"];
    assert_eq!(r["spirit_cost"].as_i64().unwrap(), cost);
    let after = p.state().await;
    assert_eq!(
        counter(&after, "explorations"),
        counter(&before, "explorations") + 1
    );
    assert_eq!(
        r["explorations"].as_i64().unwrap(),
        counter(&after, "explorations")
    );
    let mut spirit = cur(&before, "spirit") + r["accrual"]["gained"].as_i64().unwrap() - cost;
    let mut cultivation = stat(&before, "cultivation");
    let mut expected_items: BTreeMap<String, i64> = BTreeMap::new();
    let mut expected_currencies: BTreeMap<String, i64> = BTreeMap::new();
    for e in r["events"].as_array().unwrap() {
        spirit += e["spirit_delta"].as_i64().unwrap();
        cultivation += num(&e["cultivation_delta"]);
        if let Some(found) = e["item"].as_object() {
            *expected_items
                .entry(found["item"].as_str().unwrap().to_owned())
                .or_default() += found["qty"].as_i64().unwrap();
        }
        if let Some(c) = e["currency"].as_str() {
            *expected_currencies.entry(c.to_owned()).or_default() += e["amount"].as_i64().unwrap();
        }
    }
    assert_eq!(cur(&after, "spirit"), spirit, "{r}");
    assert_eq!(r["spirit"].as_i64().unwrap(), spirit);
    close(
        stat(&after, "cultivation"),
        cultivation,
        "cultivation after exploration",
    );
    for (name, qty) in expected_items {
        assert_eq!(item(&after, &name), item(&before, &name) + qty, "{name}");
    }
    for (name, amount) in expected_currencies {
        assert_eq!(cur(&after, &name), cur(&before, &name) + amount, "{name}");
    }
    body
}

/// Hunts beast `monster` until it drops its herb (bounded), waiting for spirit when needed. Each hunt:
/// spirit spent = round(`spirit_base` × 1.2^(L−1)), one daily use, and its drops in the bag.
async fn hunt_herb(p: &Player<'_>, monster: i64, spirit_base: f64) -> String {
    for _ in 0..8 {
        let level = stat(&p.state().await, "level");
        let cost = scaled(spirit_base, 1.2, level).round() as i64;
        if cur(&p.state().await, "spirit") < cost {
            p.wait_for_spirit(cost).await;
        }
        let before = p.state().await;
        let body = p.ok("dungeon", "hunt", json!({"monster": monster})).await;
        let r = &body["reply"];
        assert_eq!(r["spirit_spent"].as_i64().unwrap(), cost, "{r}");
        let after = p.state().await;
        assert_eq!(cur(&after, "spirit"), cur(&before, "spirit") - cost);
        let log = r["battle"]["log"].as_array().unwrap();
        assert!(!log.is_empty() && log.len() as i64 == r["battle"]["rounds"].as_i64().unwrap());
        // The fighter is the player's server-side effective stats.
        let health = num(&p.stats().await["effective"]["health"]);
        close(num(&r["battle"]["player_max_health"]), health, "fighter health");
        let drops = r["drops"].as_array().unwrap();
        for d in drops {
            let name = d["item"].as_str().unwrap();
            assert_eq!(
                item(&after, name),
                item(&before, name) + d["qty"].as_i64().unwrap(),
                "{name}"
            );
        }
        if r["won"].as_bool().unwrap() {
            let herb = drops
                .iter()
                .map(|d| d["item"].as_str().unwrap().to_owned())
                .find(|i| i.starts_with("herb:"))
                .unwrap_or_else(|| panic!("a won hunt dropped no herb: {r}"));
            return herb;
        }
        assert!(drops.is_empty(), "a lost hunt dropped {drops:?}");
    }
    panic!("beast {monster} was never beaten in 8 hunts");
}

/// Draws one piece of equipment (100 spirit stones) and wears it: its stat lines appear as
/// modifiers from the `equipment` hook and raise the effective stats by exactly their values.
/// Returns the piece's id.
async fn draw_and_equip(p: &Player<'_>) -> String {
    let before = p.state().await;
    let body = p.ok("equipment", "draw", json!({"count": 1})).await;
    let r = &body["reply"];
    assert_eq!(r["cost"], 100);
    let piece = &r["items"][0];
    let id = piece["id"].as_str().unwrap().to_owned();
    let after = p.state().await;
    assert_eq!(cur(&after, "spirit_stones"), cur(&before, "spirit_stones") - 100);
    assert_eq!(
        entities_of(&after, "equipment"),
        entities_of(&before, "equipment") + 1
    );
    let e = entity(&after, &id);
    assert_eq!(e["kind"], "equipment");
    assert_eq!(e["data"], piece["item"]);
    assert_eq!(e["data"]["equipped"], false);

    let stats_before = p.stats().await;
    p.ok("equipment", "equip", json!({"id": id})).await;
    let after = p.state().await;
    let data = &entity(&after, &id)["data"];
    assert_eq!(data["equipped"], true);
    let v = p.stats().await;
    let source = format!("equipment: {}", data["name"].as_str().unwrap());
    let mods = modifiers_from(&v, &source);
    let lines = data["stats"].as_object().unwrap();
    assert!(!lines.is_empty());
    assert_eq!(mods.len(), lines.len(), "{mods:?} vs {lines:?}");
    for (s, value) in lines {
        assert_eq!(mods[s], (num(value), 0.0), "{s}");
        let was = num(&stats_before["effective"][s]);
        close(
            num(&v["effective"][s]),
            was + num(value),
            &format!("effective {s} with {source}"),
        );
    }
    // The equipment leaderboard: quality rank × 1000 + enhance level.
    assert!(num(&after["scores"]["equipment"]) >= 1000.0);
    id
}

/// Enhances the worn piece `id`: reinforce stones spent = 10 × (level + 1), every stat line ×1.1,
/// and the effective stats follow through the hook.
async fn enhance(p: &Player<'_>, id: &str) {
    let before = p.state().await;
    let old = entity(&before, id)["data"].clone();
    let level = old["enhance_level"].as_i64().unwrap();
    let stats_before = p.stats().await;
    let body = p.ok("equipment", "enhance", json!({"id": id})).await;
    let cost = 10 * (level + 1);
    assert_eq!(body["reply"]["cost"].as_i64().unwrap(), cost);
    let after = p.state().await;
    assert_eq!(
        cur(&after, "reinforce_stones"),
        cur(&before, "reinforce_stones") - cost
    );
    let new = &entity(&after, id)["data"];
    assert_eq!(new["enhance_level"].as_i64().unwrap(), level + 1);
    let v = p.stats().await;
    for (s, value) in old["stats"].as_object().unwrap() {
        let want = enhanced(s, num(value));
        close(num(&new["stats"][s]), want, &format!("enhanced {s}"));
        close(
            num(&v["effective"][s]),
            num(&stats_before["effective"][s]) + want - num(value),
            &format!("effective {s} after enhancing"),
        );
    }
}

/// Draws one pet (100 spirit stones) and deploys it: its flat stats appear as `add` modifiers and
/// its attack/defense/health bonuses as `mul` modifiers from the `pet` hook. Returns its id.
async fn draw_and_deploy_pet(p: &Player<'_>) -> String {
    let before = p.state().await;
    let body = p.ok("pet", "draw", json!({"count": 1})).await;
    let r = &body["reply"];
    assert_eq!(r["spirit_stones_spent"], 100);
    let pet = &r["pets"][0];
    let id = pet["id"].as_str().unwrap().to_owned();
    let after = p.state().await;
    assert_eq!(cur(&after, "spirit_stones"), cur(&before, "spirit_stones") - 100);
    assert_eq!(entity(&after, &id)["data"], pet["pet"]);
    assert!(
        modifiers_from(
            &p.stats().await,
            &format!("pet: {}", pet["pet"]["name"].as_str().unwrap())
        )
        .is_empty()
    );

    p.ok("pet", "deploy", json!({"id": id})).await;
    let after = p.state().await;
    let data = &entity(&after, &id)["data"];
    assert_eq!(data["active"], true);
    check_pet_modifiers(p, data).await;
    assert!(
        num(&after["scores"]["pets"]) >= 1_000_000.0,
        "{}",
        after["scores"]
    );
    id
}

/// The deployed pet's modifiers are its stats (`add`) and bonuses (`mul`), and effective stats
/// compose them (checked by `stats()`).
async fn check_pet_modifiers(p: &Player<'_>, data: &Value) {
    let v = p.stats().await;
    let mods = modifiers_from(&v, &format!("pet: {}", data["name"].as_str().unwrap()));
    for (s, value) in data["stats"].as_object().unwrap() {
        close(mods[s].0, num(value), &format!("pet add {s}"));
    }
    for (s, bonus) in [
        ("attack", "attack_bonus"),
        ("defense", "defense_bonus"),
        ("health", "health_bonus"),
    ] {
        close(mods[s].1, num(&data[bonus]), &format!("pet mul {s}"));
        assert!(num(&v["effective"][s]) > num(&v["base"][s]), "the pet raises {s}");
    }
}

/// Starts a dungeon run: floor 1, three buffs offered, the entry cost of the rules.
async fn start_run(p: &Player<'_>, spirit_base: f64) -> Value {
    let level = stat(&p.state().await, "level");
    let body = p
        .ok("dungeon", "dungeon_start", json!({"difficulty": "easy"}))
        .await;
    let run = body["reply"]["run"].clone();
    assert_eq!(run["floor"], 1);
    assert_eq!(run["offer"].as_array().unwrap().len(), 3);
    assert_eq!(run["refreshes_left"], 3);
    assert_eq!(
        run["cost"]["spirit"].as_i64().unwrap(),
        scaled(spirit_base, 1.2, level).round() as i64
    );
    assert_eq!(run["cost"]["spirit_stones"], 10);
    run
}

// ---- the scenarios ------------------------------------------------------------------------------

both_backends!(crate::common::backend; play_a_fresh_account, play_a_designer_economy);

/// The shipped content, played from registration as far as its prices allow a new account.
async fn play_a_fresh_account(backend: Backend) {
    let app = TestApp::start(backend).await;
    let p = Player::register(&app, "e2e").await;
    check_new_character(&p).await;

    // The only spirit stones a new account can get: the daily check-in.
    check_in(&p).await;

    // Meditation at level 1 (10 spirit, about 10 s of income at 1 spirit/s).
    meditate(&p).await;

    // Formation (spirit stones) fills the 199 cultivation of level 1: a breakthrough to level 2.
    formation_to_breakthrough(&p).await;
    meditate(&p).await;

    // Exploration: 30 % of level 2's 299 first, then 106 spirit.
    explore(&p).await;

    // Gathering herbs: beast 1 (赤焰虎) drops 灵精草; 72 spirit a hunt at level 2.
    let herb = hunt_herb(&p, 1, 60.0).await;
    assert_eq!(herb, "herb:spirit_grass");

    // Alchemy. Crafting needs the recipe unlocked, and unlocking needs 10 fragments: 50 000 spirit
    // stones each (one check-in pays 1 000), or finds at 0.7 % × 25 % per exploration. So: the recipe
    // book shows the herbs held, and crafting, buying and eating are refused without changes.
    let s = p.state().await;
    let book = p.ok("alchemy", "recipes", json!({})).await;
    let herbs = book["reply"]["herbs"].as_array().unwrap();
    for h in herbs {
        let id = h["id"].as_str().unwrap();
        assert_eq!(
            h["have"].as_i64().unwrap(),
            item(&s, &format!("herb:{id}")),
            "{id}"
        );
    }
    let gathering = book["reply"]["recipes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "spirit_gathering")
        .unwrap()
        .clone();
    assert_eq!(gathering["unlocked"], false, "{gathering}");
    p.reject(
        "alchemy",
        "craft",
        json!({"recipe": "spirit_gathering"}),
        "recipe_locked",
    )
    .await;
    p.reject(
        "alchemy",
        "buy_fragment",
        json!({"recipe": "spirit_gathering", "quantity": 1}),
        "insufficient",
    )
    .await;
    p.reject(
        "alchemy",
        "eat",
        json!({"pill": "spirit_gathering"}),
        "insufficient",
    )
    .await;

    // Equipment: draw one, wear it; its stats arrive through the modifiers hook.
    let piece = draw_and_equip(&p).await;
    // Enhancing costs 10 reinforce stones; a new account has them only if its exploration found some.
    if cur(&p.state().await, "reinforce_stones") >= 10 {
        enhance(&p, &piece).await;
    } else {
        p.reject("equipment", "enhance", json!({"id": piece}), "insufficient")
            .await;
    }

    // A pet: draw, deploy; its stats and bonuses arrive through its hook, composed with the
    // equipment's.
    let pet = draw_and_deploy_pet(&p).await;
    if cur(&p.state().await, "pet_essence") < 10 {
        p.reject("pet", "upgrade", json!({"id": pet}), "insufficient")
            .await;
    }

    // The dungeon: a run starts and a buff can be picked, but the floor-1 fight costs
    // round(2880 × 1.2) = 3456 spirit at level 2, 48 minutes of income: refused, nothing changes.
    let status = p.ok("dungeon", "status", json!({})).await;
    assert_eq!(status["reply"]["best_floor"], 0);
    let run = start_run(&p, 2880.0).await;
    let buff = run["offer"][0]["id"].clone();
    let picked = p.ok("dungeon", "dungeon_pick", json!({"buff": buff})).await;
    assert_eq!(picked["reply"]["run"]["buffs"][0]["id"], buff);
    assert!(cur(&p.state().await, "spirit") < 3456);
    p.reject("dungeon", "dungeon_fight", json!({}), "insufficient")
        .await;
    assert_eq!(counter(&p.state().await, "best_floor"), 0);

    // Game time moved on by the income it lacks: the same fight runs at the shipped price.
    p.wait_for_spirit(3456).await;
    let before = p.state().await;
    let body = p.ok("dungeon", "dungeon_fight", json!({})).await;
    assert_eq!(body["reply"]["floor"], 1, "{body}");
    assert_eq!(
        body["reply"]["cost"],
        json!({"spirit": 3456, "spirit_stones": 10})
    );
    let after = p.state().await;
    assert_eq!(cur(&after, "spirit"), cur(&before, "spirit") - 3456);
}

/// Lowers three prices and the dungeon guardian in the content tables (checked, so a content change
/// that moves these lines fails loudly).
fn designer_economy(plugins: &Path) {
    use crate::common::edit_content;
    edit_content(
        plugins,
        "alchemy/recipes.toml",
        &[("fragment_price = 50000\n", "fragment_price = 1\n")],
    );
    edit_content(
        plugins,
        "dungeon/dungeon.toml",
        &[
            ("spirit_base = 2880.0", "spirit_base = 10.0"),
            (
                "health = { base = 1000.0, growth = 0.10 }",
                "health = { base = 20.0, growth = 0.10 }",
            ),
            (
                "attack = { base = 50.0, growth = 0.08 }",
                "attack = { base = 2.0, growth = 0.08 }",
            ),
            (
                "defense = { base = 30.0, growth = 0.07 }",
                "defense = { base = 1.0, growth = 0.07 }",
            ),
        ],
    );
    edit_content(
        plugins,
        "dungeon/monsters.toml",
        &[("spirit_base = 60.0", "spirit_base = 1.0")],
    );
}

/// Hunts beasts 1 and 2 until the bag holds 聚灵丹's materials (2 灵精草 + 1 云雾花).
async fn gather_materials(p: &Player<'_>) {
    while item(&p.state().await, "herb:spirit_grass") < 2 {
        hunt_herb(p, 1, 1.0).await;
    }
    while item(&p.state().await, "herb:cloud_flower") < 1 {
        hunt_herb(p, 2, 1.0).await;
    }
}

/// The rest of the game, on the shipped rules with the designer's lower prices.
async fn play_a_designer_economy(backend: Backend) {
    let app = TestApp::start_prepared(backend, &[], designer_economy).await;
    let p = Player::register(&app, "e2e_eco").await;
    check_new_character(&p).await;
    check_in(&p).await;
    formation_to_breakthrough(&p).await;
    let level = stat(&p.state().await, "level");

    // Herbs for 聚灵丹 (2 灵精草 + 1 云雾花) from beasts 1 and 2.
    gather_materials(&p).await;

    // Unlocking: 10 fragments at 1 stone each; the fragments are consumed by the unlock.
    p.reject(
        "alchemy",
        "craft",
        json!({"recipe": "spirit_gathering"}),
        "recipe_locked",
    )
    .await;
    let before = p.state().await;
    let body = p
        .ok(
            "alchemy",
            "buy_fragment",
            json!({"recipe": "spirit_gathering", "quantity": 10}),
        )
        .await;
    assert_eq!(body["reply"]["cost"], 10);
    assert!(has_event(&body, "recipe_unlocked"), "{body}");
    let after = p.state().await;
    assert_eq!(cur(&after, "spirit_stones"), cur(&before, "spirit_stones") - 10);
    assert_eq!(item(&after, "fragment:spirit_gathering"), 0);
    assert!(
        after["plugin_state"]["alchemy"]["unlocked"]
            .as_array()
            .unwrap()
            .contains(&json!("spirit_gathering")),
        "{}",
        after["plugin_state"]
    );

    // Crafting: the materials are consumed whatever the roll (80 %); retried until a pill is made.
    let mut crafted = false;
    for _ in 0..10 {
        gather_materials(&p).await;
        let before = p.state().await;
        let body = p
            .ok("alchemy", "craft", json!({"recipe": "spirit_gathering"}))
            .await;
        let r = &body["reply"];
        assert_eq!(
            r["consumed"],
            json!({"cloud_flower": 1, "spirit_grass": 2}),
            "{r}"
        );
        let after = p.state().await;
        assert_eq!(
            item(&after, "herb:spirit_grass"),
            item(&before, "herb:spirit_grass") - 2
        );
        assert_eq!(
            item(&after, "herb:cloud_flower"),
            item(&before, "herb:cloud_flower") - 1
        );
        let success = r["success"].as_bool().unwrap();
        assert_eq!(num(&r["success_rate"]), 0.8);
        let made = i64::from(success);
        assert_eq!(
            item(&after, "pill:spirit_gathering"),
            item(&before, "pill:spirit_gathering") + made
        );
        assert_eq!(
            counter(&after, "pills_crafted"),
            counter(&before, "pills_crafted") + made
        );
        if success {
            crafted = true;
            break;
        }
    }
    assert!(crafted, "ten crafts at 80 % all failed");

    // Eating 聚灵丹: +floor(880 × 1.2^(L−1)) spirit.
    let before = p.state().await;
    let body = p.ok("alchemy", "eat", json!({"pill": "spirit_gathering"})).await;
    let gain = scaled(880.0, 1.2, level).floor() as i64;
    close(
        num(&body["reply"]["effect"]["amount"]),
        gain as f64,
        "pill effect",
    );
    let after = p.state().await;
    assert_eq!(cur(&after, "spirit"), cur(&before, "spirit") + gain);
    assert_eq!(
        item(&after, "pill:spirit_gathering"),
        item(&before, "pill:spirit_gathering") - 1
    );
    assert_eq!(
        counter(&after, "pills_eaten"),
        counter(&before, "pills_eaten") + 1
    );

    // Equipment worn before the dungeon, so the fights use it.
    let piece = draw_and_equip(&p).await;
    p.reject("equipment", "enhance", json!({"id": piece}), "insufficient")
        .await;

    // Dungeon floors 1..=3 on easy (rewards ×1): entry round(10 × 1.2^(L−1)) spirit + 10 × floor stones; a win pays
    // R = round(20 × min(3, 1 + ln(f+1)/3) × round_mod) of three currencies and R/2 refinement
    // stones, and raises `best_floor`. A lost fight ends the run; it is started again (bounded).
    start_run(&p, 10.0).await;
    let mut cleared = 0;
    for _ in 0..10 {
        if cleared == 3 {
            break;
        }
        let before = p.state().await;
        let floor = i64::from(cleared) + 1;
        let body = p.ok("dungeon", "dungeon_fight", json!({})).await;
        let r = &body["reply"];
        assert_eq!(r["floor"].as_i64().unwrap(), floor);
        let spirit_cost = scaled(10.0, 1.2, level).round() as i64;
        assert_eq!(
            r["cost"],
            json!({"spirit": spirit_cost, "spirit_stones": 10 * floor})
        );
        let health = num(&p.stats().await["effective"]["health"]);
        close(
            num(&r["battle"]["player_max_health"]),
            health,
            "fighter health = effective health",
        );
        let after = p.state().await;
        let rounds = r["battle"]["rounds"].as_f64().unwrap();
        let reward = if r["won"].as_bool().unwrap() {
            let round_mod = match rounds as i64 {
                ..=10 => 1.3,
                11..=30 => 1.1,
                31..=60 => 1.0,
                _ => 0.8,
            };
            let depth = (1.0 + ((floor + 1) as f64).ln() / 3.0).min(3.0);
            (20.0 * depth * round_mod).round() as i64
        } else {
            0
        };
        assert_eq!(r["rewards"]["reinforce_stones"].as_i64().unwrap(), reward, "{r}");
        assert_eq!(
            cur(&after, "spirit_stones"),
            cur(&before, "spirit_stones") - 10 * floor + reward
        );
        assert_eq!(cur(&after, "spirit"), cur(&before, "spirit") - spirit_cost);
        assert_eq!(
            cur(&after, "reinforce_stones"),
            cur(&before, "reinforce_stones") + reward
        );
        assert_eq!(cur(&after, "pet_essence"), cur(&before, "pet_essence") + reward);
        assert_eq!(
            cur(&after, "refinement_stones"),
            cur(&before, "refinement_stones") + reward / 2
        );
        if r["won"].as_bool().unwrap() {
            cleared += 1;
            assert_eq!(counter(&after, "best_floor"), floor);
            assert_eq!(num(&after["scores"]["dungeon"]), floor as f64);
            assert!(has_event(&body, "dungeon_floor_cleared"));
            assert_eq!(r["run"]["floor"].as_i64().unwrap(), floor + 1);
        } else {
            assert_eq!(counter(&after, "best_floor"), counter(&before, "best_floor"));
            assert!(r["run"].is_null());
            cleared = 0;
            p.ok(
                "dungeon",
                "dungeon_start",
                json!({"difficulty": "easy", "restart": true}),
            )
            .await;
        }
    }
    assert_eq!(cleared, 3, "three floors were not cleared in ten fights");

    // Enhancing with the reinforce stones the floors paid: ×1.1.
    enhance(&p, &piece).await;

    // A pet, upgraded with the pet essence the floors paid: level × 10 essence, base stats ×1.1.
    let pet = draw_and_deploy_pet(&p).await;
    let before = p.state().await;
    let old = entity(&before, &pet)["data"].clone();
    let body = p.ok("pet", "upgrade", json!({"id": pet})).await;
    assert_eq!(body["reply"]["essence_spent"], 10);
    let after = p.state().await;
    assert_eq!(cur(&after, "pet_essence"), cur(&before, "pet_essence") - 10);
    let new = entity(&after, &pet)["data"].clone();
    assert_eq!(new["level"], 2);
    for (s, v) in old["stats"].as_object().unwrap() {
        if FLAT_STATS.contains(&s.as_str()) {
            close(num(&new["stats"][s]), (num(v) * 1.1).round(), &format!("pet {s}"));
        }
    }
    check_pet_modifiers(&p, &new).await;
}

// ---- one plugin removed -------------------------------------------------------------------------

const PLUGINS: [&str; 6] = ["cultivation", "alchemy", "equipment", "pet", "dungeon", "duel"];

/// A read-only action and a state-changing one of each plugin.
fn probe_actions(plugin: &str) -> [(&'static str, Value); 2] {
    match plugin {
        "cultivation" => [("gather", json!({})), ("checkin", json!({}))],
        "alchemy" => [
            ("recipes", json!({})),
            (
                "buy_fragment",
                json!({"recipe": "spirit_gathering", "quantity": 1}),
            ),
        ],
        "equipment" => [("list", json!({})), ("draw", json!({"count": 1}))],
        "pet" => [("info", json!({})), ("draw", json!({"count": 1}))],
        "dungeon" => [("status", json!({})), ("hunt", json!({"monster": 1}))],
        // The opponent is filled in with the player's own id (a new character is refused either way).
        "duel" => [("status", json!({})), ("challenge", json!({}))],
        other => panic!("unknown plugin {other}"),
    }
}

/// Starts a host whose plugins folder lacks `removed` (module and content): the catalog lists the
/// other five, the removed one's actions are 404, and each remaining plugin answers a read-only
/// action with 200 and a state-changing one with 200 or a rule rejection (422), never a fault.
async fn without_one_plugin(removed: &str) {
    let app = TestApp::start_prepared(Backend::PgRedis, &[], |dir| {
        std::fs::remove_file(dir.join(format!("{removed}.wasm"))).unwrap();
        std::fs::remove_dir_all(dir.join(removed)).unwrap();
    })
    .await;
    let (status, catalog) = json_of(app.http.get(app.url("/api/v1/catalog")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let mut names: Vec<String> = catalog
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manifest"]["name"].as_str().unwrap().to_owned())
        .filter(|n| PLUGINS.contains(&n.as_str()))
        .collect();
    names.sort();
    let mut expected: Vec<String> = PLUGINS
        .iter()
        .filter(|p| **p != removed)
        .map(|p| (*p).to_owned())
        .collect();
    expected.sort();
    assert_eq!(names, expected);

    let p = Player::register(&app, "without").await;
    let (status, body) = p.act(removed, probe_actions(removed)[0].0, &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // Check in first (when cultivation is there) so the spending actions can succeed.
    for plugin in PLUGINS {
        if plugin == removed {
            continue;
        }
        let [(read, read_params), (write, mut write_params)] = probe_actions(plugin);
        if plugin == "duel" {
            write_params = json!({"opponent": p.state().await["player"]["id"]});
        }
        let (status, body) = p.act(plugin, read, &read_params).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "without {removed}: {plugin}/{read}: {body}"
        );
        let (status, body) = p.act(plugin, write, &write_params).await;
        assert!(
            status == StatusCode::OK || status == StatusCode::UNPROCESSABLE_ENTITY,
            "without {removed}: {plugin}/{write}: {status} {body}"
        );
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            assert!(body["error"]["code"].is_string(), "{body}");
        }
    }
    p.stats().await;
    p.state().await;
}

macro_rules! without {
    ($($name:ident),* $(,)?) => {
        mod without {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::without_one_plugin(stringify!($name)).await;
                }
            )*
        }
    };
}

without!(cultivation, alchemy, equipment, pet, dungeon, duel);
