//! `cauldron replay`: the replay of [`crate::replay`] from the command line, for designers and CI.
//!
//! ```text
//! cauldron replay --plugin NAME --candidate PATH|DIGEST [--since T] [--until T] [--player ID]...
//!                 [--action A] [--limit N] [--diffs N] [--json] [--strict] [--measure]
//! ```
//!
//! The database is `DATABASE_URL` (and the other settings of `cauldron --help`, read the same way:
//! the plugin limits, `PLUGINS_DIR` for original versions found in the plugin's folder). Times are
//! milliseconds since the epoch or RFC 3339-like `YYYY-MM-DDTHH:MM:SSZ`.
//!
//! Exit status: 0 when every replayed action ran (identical or diverged); 2 when any faulted on the
//! candidate or could not be run; 3 with `--strict` when any diverged; 1 when the replay could not
//! run at all (bad arguments, no database, a candidate that does not load).

use std::io::Write as _;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use super::{ReplayFilter, ReplayOptions, candidate_bundle, load_candidate, render, replay};
use crate::config::{Cli, Command, Config};
use crate::state;

/// `cauldron replay`: re-run logged actions of a plugin against a candidate version, applying
/// nothing, and report what would have changed.
#[derive(Debug, Parser)]
#[command(name = "cauldron replay", version)]
pub struct ReplayArgs {
    /// The plugin whose logged actions are replayed.
    #[arg(long)]
    pub plugin: String,
    /// The candidate: a plugin folder (NAME.wasm + NAME/*.toml), a NAME.wasm file, an encoded bundle
    /// file, or the digest of a stored version.
    #[arg(long)]
    pub candidate: String,
    /// Only actions logged at or after this time (ms since the epoch, or YYYY-MM-DDTHH:MM:SSZ).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<i64>,
    /// Only actions logged before this time (ms since the epoch, or YYYY-MM-DDTHH:MM:SSZ).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<i64>,
    /// Only this player's actions (repeat for several).
    #[arg(long = "player")]
    pub players: Vec<i64>,
    /// Only this action.
    #[arg(long)]
    pub action: Option<String>,
    /// At most this many actions, oldest first.
    #[arg(long)]
    pub limit: Option<u64>,
    /// How many divergences to show as diffs.
    #[arg(long, default_value_t = super::DEFAULT_DIFFS)]
    pub diffs: usize,
    /// Worker tasks (default: twice the cores).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Exit non-zero on any divergence too.
    #[arg(long)]
    pub strict: bool,
    /// Also measure the runtime's own call rate on the same calls and report the ratio.
    #[arg(long)]
    pub measure: bool,
}

/// Parse `args` (starting with `replay`), run the replay, print the report and return the exit
/// status (see the module documentation).
///
/// # Errors
/// The arguments, the configuration, the database or the candidate: the replay could not run.
pub async fn run<I, T>(args: I) -> anyhow::Result<u8>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = match ReplayArgs::try_parse_from(args) {
        Ok(args) => args,
        // `--help` and `--version` print and exit 0.
        Err(e) if !e.use_stderr() => e.exit(),
        // A usage error is "could not run" (1), never a status a CI gate reads as a fault (2).
        Err(e) => {
            let _ = e.print();
            return Ok(1);
        }
    };
    run_args(args).await
}

/// [`run`] with the arguments parsed.
///
/// # Errors
/// The configuration, the database or the candidate: the replay could not run.
pub async fn run_args(args: ReplayArgs) -> anyhow::Result<u8> {
    match dotenvy::dotenv() {
        Ok(_) => {}
        Err(e) if e.not_found() => {}
        Err(e) => anyhow::bail!("cannot read .env: {e}"),
    }
    // The host's own settings from the environment (DATABASE_URL, PLUGINS_DIR, the plugin limits).
    let Command::Serve(serve) = Cli::parse_args(["cauldron"])
        .context("invalid configuration")?
        .into_command()
    else {
        anyhow::bail!("invalid configuration");
    };
    let config = Config::from_args(serve).context("invalid configuration")?;
    let store = state::connect_store(&config).await?;
    let runtime = cauldron_runtime::Runtime::new(config.plugin_limits.clone())
        .context("starting the plugin runtime")?;
    let bundle = candidate_bundle(&*store, &args.plugin, &args.candidate).await?;
    let candidate = load_candidate(&runtime, &args.plugin, bundle).await?;
    let originals = Arc::new(super::Originals::new(
        runtime.clone(),
        Arc::clone(&store),
        &args.plugin,
        None,
        Some(config.plugins_dir.clone()),
    ));
    let options = ReplayOptions {
        filter: ReplayFilter {
            since_ms: args.since,
            until_ms: args.until,
            players: args.players.clone(),
            action: args.action.clone(),
            limit: args.limit,
        },
        diffs: args.diffs,
        workers: args.workers.unwrap_or_else(|| ReplayOptions::default().workers),
        measure: args.measure,
    };
    let report = replay(&runtime, store, &args.plugin, candidate, originals, &options).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", render(&report))?;
    }
    out.flush()?;
    Ok(if report.faulted > 0 || report.skipped > 0 {
        2
    } else if args.strict && report.diverged.total > 0 {
        3
    } else {
        0
    })
}

/// Milliseconds since the epoch, or `YYYY-MM-DDTHH:MM:SSZ` (UTC).
fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || format!("`{text}` is neither milliseconds since the epoch nor YYYY-MM-DDTHH:MM:SSZ");
    let t = text.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = t.split_once('T').ok_or_else(bad)?;
    let num = |s: &str| s.parse::<i64>().map_err(|_| bad());
    let d: Vec<&str> = date.split('-').collect();
    let h: Vec<&str> = time.split(':').collect();
    let ([y, mo, da], [hh, mi, ss]) = (d.as_slice(), h.as_slice()) else {
        return Err(bad());
    };
    let (y, mo, da, hh, mi, ss) = (num(y)?, num(mo)?, num(da)?, num(hh)?, num(mi)?, num(ss)?);
    if !(1..=12).contains(&mo)
        || !(1..=31).contains(&da)
        || hh > 23
        || mi > 59
        || ss > 60
        || hh < 0
        || mi < 0
        || ss < 0
    {
        return Err(bad());
    }
    // Days since the epoch of a proleptic Gregorian date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 24 + hh) * 60 + mi) * 60_000 + ss * 1000)
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_parse_as_ms_or_utc_dates() {
        assert_eq!(parse_time("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("2000-03-01T00:00:01Z"), Ok(951_868_801_000));
        for bad in [
            "yesterday",
            "2023-13-01T00:00:00Z",
            "2023-11-14 22:13:20",
            "2023-11-14T22:13Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
