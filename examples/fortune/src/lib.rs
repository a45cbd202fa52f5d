//! A daily fortune: once per day (UTC+8), draw a fortune from the `fortunes` content table and get
//! its spirit-stone reward. A complete, minimal Cauldron plugin.
//!
//! The table is decoded and checked once, when the host loads the plugin ([`Plugin::prepare`]); every
//! call reads the decoded table with `ctx.table::<Fortunes>()`, and a broken table refuses the load.

use cauldron_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// The plugin.
pub struct Fortune;

/// `content/fortunes.toml`.
#[derive(Deserialize)]
struct Fortunes {
    fortune: Vec<Entry>,
}

impl Table for Fortunes {
    const NAME: &'static str = "fortunes";

    /// Runs once per load: a table with nothing to draw is refused before any player draws.
    fn check(&self) -> Result<(), Error> {
        if !self.fortune.iter().any(|f| f.weight > 0.0) {
            return Err(Error::fault(
                "bad_content",
                "content table `fortunes`: needs a fortune with a positive weight",
            ));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct Entry {
    id: String,
    text: String,
    weight: f64,
    stones: i64,
}

/// What the plugin remembers per player.
#[derive(Serialize, Deserialize, Default)]
struct State {
    /// Day number (UTC+8) of the last draw.
    last_day: Option<i64>,
}

/// The reply to `draw`.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct Drawn {
    /// Which fortune.
    pub id: String,
    /// Its text.
    pub text: String,
    /// Spirit stones gained.
    pub stones: i64,
}

const DAY_MS: i64 = 86_400_000;
const UTC8_MS: i64 = 8 * 3_600_000;

impl Plugin for Fortune {
    const ACTIONS: Actions = Actions::new(&[Action::new("draw", draw)
        .title("求签 Draw a fortune")
        .description("Once a day.")
        .reads(&[Section::State])
        .content(&[Fortunes::NAME])]);

    fn prepare(content: &Content) -> Result<(), Error> {
        content.table::<Fortunes>()?;
        Ok(())
    }

    fn manifest() -> Manifest {
        Manifest {
            name: "fortune".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi: cauldron_sdk::abi::ABI_VERSION,
            title: "算命 Fortune".into(),
            description: "Draw one fortune a day for a few spirit stones.".into(),
            entity_kinds: vec![],
            actions: Self::ACTIONS.specs(),
            hooks: vec![],
        }
    }
}

fn draw(ctx: &mut Ctx) -> Result<(), Error> {
    let table = ctx.table::<Fortunes>()?;
    let mut state: State = ctx.state()?;
    let today = (ctx.now_ms() + UTC8_MS).div_euclid(DAY_MS);
    if state.last_day == Some(today) {
        return Err(Error::reject(
            "already_drawn",
            "You have already drawn today's fortune.",
        ));
    }
    let weights: Vec<f64> = table.fortune.iter().map(|f| f.weight).collect();
    let pick = ctx
        .rng()
        .weighted(&weights)
        .ok_or_else(|| Error::fault("bad_content", "no fortune to draw"))?;
    let entry = &table.fortune[pick];
    ctx.add_currency("spirit_stones", entry.stones);
    state.last_day = Some(today);
    ctx.set_state(&state)?;
    let drawn = Drawn {
        id: entry.id.clone(),
        text: entry.text.clone(),
        stones: entry.stones,
    };
    ctx.emit("fortune", &drawn)?;
    ctx.reply(&drawn)
}

export!(Fortune);

#[cfg(test)]
mod tests {
    use super::*;
    use cauldron_sdk::testing::Harness;

    fn harness() -> Harness<Fortune> {
        Harness::with_content_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/content"))
    }

    #[test]
    fn a_draw_pays_its_reward_and_a_second_draw_the_same_day_is_refused() {
        let h = harness();
        let first = h.action("draw").seed(3).run();
        let drawn: Drawn = first.reply();
        let after = first.player_after();
        assert_eq!(
            after.currencies.get("spirit_stones").copied().unwrap_or(0),
            drawn.stones
        );

        let again = h
            .action("draw")
            .player(after.clone())
            .now_ms(1_700_000_000_000 + 60_000)
            .run();
        assert_eq!(
            again.rejected("already_drawn"),
            "You have already drawn today's fortune."
        );

        let tomorrow = h
            .action("draw")
            .player(after)
            .now_ms(1_700_000_000_000 + DAY_MS)
            .run();
        assert!(tomorrow.is_ok());
    }

    #[test]
    fn the_odds_follow_the_table() {
        let h = harness();
        let n = 20_000;
        let great = (0..n)
            .filter(|&seed| h.action("draw").seed(seed).run().reply::<Drawn>().id == "great")
            .count();
        let share = great as f64 / n as f64;
        assert!((share - 0.05).abs() < 0.01, "great fortune share {share}");
    }

    #[test]
    fn a_table_with_nothing_to_draw_is_refused_at_load() {
        assert!(harness().prepare().is_ok(), "the shipped table loads");
        let nothing = "[[fortune]]\nid = \"void\"\ntext = \"-\"\nweight = 0\nstones = 0\n";
        let h = harness().content_toml("fortunes", nothing);
        let err = h.prepare().expect_err("no positive weight refuses the load");
        assert_eq!(err.code(), "bad_content");
        assert!(err.to_string().contains("content table `fortunes`"), "{err}");
        // A call never runs on refused content: it answers with the same fault.
        assert!(h.action("draw").run().fault("bad_content").contains("`fortunes`"));
    }

    #[test]
    fn same_call_same_fortune() {
        let h = harness();
        assert_eq!(
            h.action("draw").seed(9).run().outcome,
            h.action("draw").seed(9).run().outcome
        );
    }
}
