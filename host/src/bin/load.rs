//! `load`: the HTTP action load tool behind docs/benchmarks.md ("The action path under load"). `cargo xtask
//! load -- ARGS` builds the plugins and the release binaries and runs it.
//!
//! 1. Registers `--players` players through `POST /api/v1/auth/register` (`--register-concurrency`
//!    at a time: argon2 is slow; a 429 is waited out as its `Retry-After` says). With `--tokens
//!    FILE` the tokens are kept there (one a line, as `wsload` reads them) and a later run reuses
//!    them instead of registering again.
//! 2. With `--heavy N`, gives the first N players `--entities` entities each. No normal action gets
//!    a new player there quickly: a thousand equipment pieces take a hundred 10-piece draws at 1,000
//!    spirit stones each, and a new player earns stones by the daily check-in (1,000 a day), the
//!    dungeon and demon slaying (a few dozen a fight, capped per day). So the tool calls the probe
//!    test fixture's `stash` action, which adds one `trinket` entity of `--entity-bytes` bytes per
//!    call. The probe is not a game plugin: it is loaded only where
//!    `<target>/fixtures/probe.wasm` is copied into the host's `PLUGINS_DIR`, so heavy players exist
//!    only on a benchmark host, never on a real deployment. An action loads only the sections and
//!    entity kinds it declared, so trinkets weigh only on what reads them: a run with heavy players
//!    shows whether a player's unrelated state slows the others' actions down (the report gives the
//!    heavy players' latencies and the others' apart).
//! 3. Drives `--mix` (`PLUGIN/ACTION=WEIGHT,...`; params with `--params PLUGIN/ACTION=JSON`, else
//!    `{}`) with `--concurrency` workers for `--duration` seconds over one keep-alive connection
//!    pool. Worker `w` owns the players `w`, `w + C`, `w + 2C`, … and takes them in turn, so one
//!    player's actions never contend with each other. The host limits actions per player (burst
//!    `RATE_LIMIT_ACTION_BURST`, default 30, refilled at `RATE_LIMIT_ACTION_PER_SEC`, default 10):
//!    start the host with both raised (e.g. to 1000000) or the answers are counted as 429s.
//! 4. Prints actions/s (2xx answers per second), latency p50/p99/max (with `--heavy`, also the heavy
//!    players' and the others' p50/p99 apart) and the answers by status, as a
//!    table or, with `--json`, as one JSON document.
//!
//! Comparisons, each run after the action phase for the same duration and client count:
//! - `--pgbench --pg-url postgres://…/postgres`: pgbench on the same PostgreSQL server, in a scratch
//!   database `cauldron_loadbench_<random>` it creates and drops, with a script equivalent to one
//!   action's transaction (one `UPDATE … RETURNING` of the client's own row, one `INSERT` of a log row
//!   of about an action's size into a table with the action log's indexes), and the ratio of the two
//!   rates. CPU time is read from `/proc` around both phases: the host (`--host-pid`), PostgreSQL
//!   (the postmaster, its auxiliary processes and the client backends of the database in use:
//!   `--host-db` for the action phase, the scratch database for pgbench), redis-server
//!   (`--host-redis`, action phase only), and the client (this tool, or pgbench). Processes are
//!   sampled every 250 ms, so a backend that exits is counted up to its last sample. Other work on
//!   the same machine and server (other databases' backends excepted) counts too.
//! - `--sqlite-file PATH` (a file that must not exist yet; removed afterwards): the same bare
//!   transaction on SQLite, run by this tool with the host's settings (WAL, `busy_timeout` 10 s,
//!   foreign keys, 4 connections, writers queued on one in-process lock, `BEGIN IMMEDIATE`).
//!
//! Everything runs against loopback addresses only: it is a benchmark tool, not a client. It prints
//! to stdout by design (progress and warnings to stderr).

#![allow(
    clippy::disallowed_macros,
    reason = "a command-line tool reports on stdout/stderr"
)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};
use sqlx::Connection;

/// Password of every player the tool registers.
const PASSWORD: &str = "load-password-1";
/// How long to wait after a 429 without a readable `Retry-After`.
const DEFAULT_RETRY: Duration = Duration::from_secs(1);
/// How often a registration or seeding call may meet 429 before the tool gives up.
const MAX_RETRIES: u32 = 600;
/// `/proc` reports CPU time in clock ticks of `USER_HZ`, which is 100 on Linux.
const TICKS_PER_SEC: u64 = 100;
/// How often the CPU sampler reads `/proc`.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Bytes of padding in the bare transaction's log row: a `cultivation/gather` reply is about 700 bytes
/// of JSON.
const LOG_PAD: usize = 700;
/// Connections of the SQLite comparison: the host's own `MAX_CONNECTIONS`.
const SQLITE_CONNECTIONS: u32 = 4;
/// The host's SQLite `busy_timeout`.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Where pgbench usually is on Debian, newest major version first.
const PGBENCH_GLOB_ROOT: &str = "/usr/lib/postgresql";

#[derive(Parser)]
#[command(about = "HTTP action load tool for Cauldron benchmarks (loopback only)")]
struct Cli {
    /// The host, e.g. http://127.0.0.1:3000.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Players to drive (at least --concurrency: each worker owns its players).
    #[arg(long, default_value_t = 256)]
    players: usize,
    /// Keep tokens in this file (one a line): read those there, register the rest, write them all.
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// Registrations in flight at once.
    #[arg(long, default_value_t = 4)]
    register_concurrency: usize,
    /// Players (the first ones) to give --entities entities each, through the probe's `stash`.
    #[arg(long, default_value_t = 0)]
    heavy: usize,
    /// Entities per heavy player.
    #[arg(long, default_value_t = 1000)]
    entities: u64,
    /// Bytes of data per stashed entity (an equipment piece's data is a few hundred).
    #[arg(long, default_value_t = 300)]
    entity_bytes: u32,
    /// Actions and their weights: `PLUGIN/ACTION=WEIGHT,...` (a missing weight is 1).
    #[arg(long, default_value = "cultivation/gather=1")]
    mix: String,
    /// Params of one mix action, `PLUGIN/ACTION=JSON` (an object); repeatable. Default `{}`.
    #[arg(long = "params", value_name = "PLUGIN/ACTION=JSON")]
    params: Vec<String>,
    /// Workers (clients), each with one request in flight.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds of the action phase (and of each comparison).
    #[arg(long, default_value_t = 15)]
    duration: u64,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
    /// The host's process id, for its CPU time.
    #[arg(long)]
    host_pid: Option<u32>,
    /// The host's PostgreSQL database: count PostgreSQL's CPU time in the action phase (the
    /// postmaster, its auxiliary processes and this database's backends).
    #[arg(long)]
    host_db: Option<String>,
    /// Count redis-server's CPU time in the action phase (the host uses Redis).
    #[arg(long)]
    host_redis: bool,
    /// Also run pgbench with the equivalent transaction (needs --pg-url).
    #[arg(long)]
    pgbench: bool,
    /// A PostgreSQL URL on loopback whose user may create databases, e.g.
    /// postgres://postgres@127.0.0.1:5432/postgres.
    #[arg(long)]
    pg_url: Option<String>,
    /// The pgbench binary (default: the newest /usr/lib/postgresql/*/bin/pgbench, else PATH).
    #[arg(long)]
    pgbench_bin: Option<PathBuf>,
    /// Also run the equivalent bare transaction loop on SQLite in this new scratch file.
    #[arg(long)]
    sqlite_file: Option<PathBuf>,
}

// --- the mix -------------------------------------------------------------------------------------

/// One action of the mix.
#[derive(Debug, Clone, PartialEq)]
struct MixEntry {
    plugin: String,
    action: String,
    weight: u32,
    params: Value,
}

impl MixEntry {
    fn name(&self) -> String {
        format!("{}/{}", self.plugin, self.action)
    }
}

/// Whether `s` can be a plugin or action name in a URL path.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn parse_target(s: &str) -> anyhow::Result<(String, String)> {
    let (plugin, action) = s
        .trim()
        .split_once('/')
        .with_context(|| format!("`{s}`: expected PLUGIN/ACTION"))?;
    ensure!(
        valid_name(plugin) && valid_name(action),
        "`{s}`: plugin and action are names of letters, digits, `_` and `-`"
    );
    Ok((plugin.to_owned(), action.to_owned()))
}

/// Parse `PLUGIN/ACTION=WEIGHT,...` and apply `PLUGIN/ACTION=JSON` params to it.
fn parse_mix(mix: &str, params: &[String]) -> anyhow::Result<Vec<MixEntry>> {
    let mut entries: Vec<MixEntry> = Vec::new();
    for part in mix.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (target, weight) = match part.split_once('=') {
            Some((t, w)) => {
                let weight: u32 = w
                    .trim()
                    .parse()
                    .with_context(|| format!("`{part}`: the weight must be a whole number"))?;
                (t, weight)
            }
            None => (part, 1),
        };
        ensure!(weight > 0, "`{part}`: the weight must be at least 1");
        let (plugin, action) = parse_target(target)?;
        ensure!(
            !entries.iter().any(|e| e.plugin == plugin && e.action == action),
            "`{target}` appears twice in the mix"
        );
        entries.push(MixEntry {
            plugin,
            action,
            weight,
            params: json!({}),
        });
    }
    ensure!(!entries.is_empty(), "the mix is empty");
    for p in params {
        let (target, raw) = p
            .split_once('=')
            .with_context(|| format!("`{p}`: expected PLUGIN/ACTION=JSON"))?;
        let (plugin, action) = parse_target(target)?;
        let value: Value =
            serde_json::from_str(raw).with_context(|| format!("`{p}`: the params are not JSON"))?;
        ensure!(value.is_object(), "`{p}`: the params must be a JSON object");
        let entry = entries
            .iter_mut()
            .find(|e| e.plugin == plugin && e.action == action)
            .with_context(|| format!("`{p}`: {plugin}/{action} is not in the mix"))?;
        entry.params = value;
    }
    Ok(entries)
}

/// Weighted choice over the mix.
struct Mix {
    entries: Vec<MixEntry>,
    /// Running sums of the weights.
    cumulative: Vec<u64>,
}

impl Mix {
    fn new(entries: Vec<MixEntry>) -> Self {
        let mut sum = 0u64;
        let cumulative = entries
            .iter()
            .map(|e| {
                sum += u64::from(e.weight);
                sum
            })
            .collect();
        Self { entries, cumulative }
    }

    /// The index of the entry a draw `r` in `0..total` lands on.
    fn at(&self, r: u64) -> usize {
        self.cumulative
            .partition_point(|&c| c <= r)
            .min(self.entries.len() - 1)
    }

    fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(1)
    }

    fn describe(&self) -> String {
        self.entries
            .iter()
            .map(|e| format!("{}={}", e.name(), e.weight))
            .collect::<Vec<_>>()
            .join(",")
    }
}

// --- statistics ----------------------------------------------------------------------------------

/// The nearest-rank percentile `p` (0..=1) of `sorted`, or 0 when empty.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Answers by class.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    ok: u64,
    client: u64,
    limited: u64,
    server: u64,
    errors: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.ok += o.ok;
        self.client += o.client;
        self.limited += o.limited;
        self.server += o.server;
        self.errors += o.errors;
    }

    fn total(&self) -> u64 {
        self.ok + self.client + self.limited + self.server + self.errors
    }

    fn count(&mut self, status: StatusCode) {
        if status.is_success() {
            self.ok += 1;
        } else if status == StatusCode::TOO_MANY_REQUESTS {
            self.limited += 1;
        } else if status.is_client_error() {
            self.client += 1;
        } else {
            self.server += 1;
        }
    }
}

/// One phase's outcome: answers, latencies (µs, every request), wall time.
struct Run {
    counts: Counts,
    latencies_us: Vec<u64>,
    /// With `--heavy`: the latencies of the heavy players' requests and of the others', apart.
    heavy_us: Vec<u64>,
    light_us: Vec<u64>,
    elapsed: Duration,
    /// The first few failures, for the operator.
    samples: Vec<String>,
}

impl Run {
    fn per_sec(&self) -> f64 {
        self.counts.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn latency_ms(&self, p: f64) -> f64 {
        percentile(&self.latencies_us, p) as f64 / 1000.0
    }
}

// --- CPU time from /proc -------------------------------------------------------------------------

/// What `/proc/PID/stat` says about a process.
#[derive(Debug, Clone, PartialEq)]
struct ProcStat {
    comm: String,
    /// User plus system time, in ticks.
    own_ticks: u64,
    /// Reaped children's user plus system time, in ticks.
    children_ticks: u64,
    /// When it started (ticks after boot): with the pid, it names one process.
    start: u64,
}

/// Parse the text of `/proc/PID/stat`. The command name is in parentheses and may itself hold
/// spaces and parentheses, so the fields are counted from the last `)`.
fn parse_proc_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    // Fields after the name, numbered as in proc(5) from 3 (state).
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { rest.get(n - 3)?.parse().ok() };
    Some(ProcStat {
        comm,
        own_ticks: field(14)? + field(15)?,
        children_ticks: field(16)? + field(17)?,
        start: field(22)?,
    })
}

fn read_stat(pid: &str) -> Option<ProcStat> {
    parse_proc_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The database a PostgreSQL client backend serves, from its process title
/// (`postgres: USER DATABASE HOST(PORT) ACTIVITY`), or `None` for the postmaster and the auxiliary
/// processes (`postgres: checkpointer`, `postgres: autovacuum worker DB`, …).
fn pg_backend_db(cmdline: &str) -> Option<&str> {
    let title = cmdline.strip_prefix("postgres: ")?;
    let words: Vec<&str> = title.split_whitespace().collect();
    match words.as_slice() {
        [_, db, host, ..] if host.contains('(') || *host == "[local]" => Some(db),
        _ => None,
    }
}

/// Which sum a process's CPU time goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Group {
    Host,
    Postgres,
    Redis,
}

/// CPU milliseconds of one phase, by group.
#[derive(Debug, Default, Clone, Copy)]
struct Cpu {
    host_ms: f64,
    postgres_ms: f64,
    redis_ms: f64,
    /// This tool's own threads.
    tool_ms: f64,
    /// This tool's children that ended in the phase (pgbench).
    children_ms: f64,
}

impl Cpu {
    fn server_ms(&self) -> f64 {
        self.host_ms + self.postgres_ms + self.redis_ms
    }
}

fn ticks_ms(ticks: u64) -> f64 {
    ticks as f64 * 1000.0 / TICKS_PER_SEC as f64
}

/// Which processes a phase's CPU time is read from, besides this tool.
#[derive(Debug, Clone, Default)]
struct Watch {
    /// The host.
    host_pid: Option<u32>,
    /// PostgreSQL: the postmaster, its auxiliary processes and the client backends of these
    /// databases (`None`: PostgreSQL is not counted).
    pg_dbs: Option<HashSet<String>>,
    /// Every redis-server.
    redis: bool,
}

/// Samples the CPU time of the host, PostgreSQL and Redis in a thread of its own until stopped.
struct CpuSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<HashMap<Group, u64>>,
    self_before: Option<ProcStat>,
}

impl CpuSampler {
    /// Start sampling.
    fn start(watch: Watch) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let self_before = read_stat("self");
        let thread = std::thread::spawn(move || sample(&watch, &flag));
        Self {
            stop,
            thread,
            self_before,
        }
    }

    /// Stop and return what each group used since the start.
    fn finish(self) -> Cpu {
        self.stop.store(true, Ordering::Relaxed);
        let groups = self.thread.join().unwrap_or_default();
        let after = read_stat("self");
        let (tool, children) = match (&self.self_before, &after) {
            (Some(b), Some(a)) => (
                a.own_ticks.saturating_sub(b.own_ticks),
                a.children_ticks.saturating_sub(b.children_ticks),
            ),
            _ => (0, 0),
        };
        let get = |g| ticks_ms(groups.get(&g).copied().unwrap_or(0));
        Cpu {
            host_ms: get(Group::Host),
            postgres_ms: get(Group::Postgres),
            redis_ms: get(Group::Redis),
            tool_ms: ticks_ms(tool),
            children_ms: ticks_ms(children),
        }
    }
}

/// The sampler's loop: every process of interest's first and latest CPU time, summed by group when
/// stopped. A process first seen after the start counts from zero (it began in the phase).
fn sample(watch: &Watch, stop: &AtomicBool) -> HashMap<Group, u64> {
    // (pid, start) -> (group, first ticks, latest ticks)
    let mut seen: HashMap<(String, u64), (Group, u64, u64)> = HashMap::new();
    let classify = |pid: &str, st: &ProcStat| -> Option<Group> {
        if watch.host_pid.is_some_and(|h| h.to_string() == pid) {
            return Some(Group::Host);
        }
        match (st.comm.as_str(), &watch.pg_dbs) {
            ("redis-server", _) if watch.redis => Some(Group::Redis),
            ("postgres", Some(dbs)) => {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                match pg_backend_db(cmdline.trim()) {
                    Some(db) if !dbs.contains(db) => None,
                    _ => Some(Group::Postgres),
                }
            }
            _ => None,
        }
    };
    let mut first = true;
    let mut round = 0u32;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        // Look for new processes every 4th round (and on the first and last), re-read known ones
        // every round.
        if first || stopping || round.is_multiple_of(4) {
            if let Ok(dir) = std::fs::read_dir("/proc") {
                for entry in dir.filter_map(Result::ok) {
                    let name = entry.file_name();
                    let Some(pid) = name.to_str() else { continue };
                    if !pid.bytes().all(|b| b.is_ascii_digit()) {
                        continue;
                    }
                    let Some(st) = read_stat(pid) else { continue };
                    let key = (pid.to_owned(), st.start);
                    if let Some(e) = seen.get_mut(&key) {
                        e.2 = e.2.max(st.own_ticks);
                    } else if let Some(group) = classify(pid, &st) {
                        let base = if first { st.own_ticks } else { 0 };
                        seen.insert(key, (group, base, st.own_ticks));
                    }
                }
            }
        } else {
            for ((pid, start), e) in &mut seen {
                if let Some(st) = read_stat(pid)
                    && st.start == *start
                {
                    e.2 = e.2.max(st.own_ticks);
                }
            }
        }
        if stopping {
            break;
        }
        first = false;
        round = round.wrapping_add(1);
        std::thread::sleep(SAMPLE_EVERY);
    }
    let mut sums: HashMap<Group, u64> = HashMap::new();
    for (group, base, last) in seen.values() {
        *sums.entry(*group).or_default() += last.saturating_sub(*base);
    }
    sums
}

// --- HTTP ----------------------------------------------------------------------------------------

/// Refuse anything but a loopback address.
fn ensure_loopback(url: &Url) -> anyhow::Result<()> {
    let host = url.host_str().context("the URL has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback =
        host.eq_ignore_ascii_case("localhost") || IpAddr::from_str(host).is_ok_and(|a| a.is_loopback());
    ensure!(
        loopback,
        "{url}: only loopback addresses (127.0.0.0/8, ::1, localhost) are allowed"
    );
    Ok(())
}

fn retry_after(resp: &reqwest::Response) -> Duration {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY, Duration::from_secs)
}

async fn body_snippet(resp: reqwest::Response) -> String {
    let text = resp.text().await.unwrap_or_default();
    text.chars().take(300).collect()
}

/// Register one player; returns its token.
async fn register_one(http: &reqwest::Client, base: &Url, name: &str) -> anyhow::Result<String> {
    let url = base.join("api/v1/auth/register")?;
    for _ in 0..MAX_RETRIES {
        let resp = http
            .post(url.clone())
            .json(&json!({"username": name, "password": PASSWORD}))
            .send()
            .await
            .context("register")?;
        let status = resp.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            tokio::time::sleep(retry_after(&resp)).await;
            continue;
        }
        if !status.is_success() {
            bail!("register {name}: {status} {}", body_snippet(resp).await);
        }
        let body: Value = resp.json().await.context("register: reply")?;
        return body["token"]
            .as_str()
            .map(str::to_owned)
            .context("register: no token in the reply");
    }
    bail!("register {name}: still rate limited after {MAX_RETRIES} tries")
}

/// Register `count` players, `concurrency` at a time.
async fn register(
    http: &reqwest::Client,
    base: &Url,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<String>> {
    // Names unique per run: `ld` + 8 random hex digits + `_` + index (at most 24 characters).
    let stamp: u32 = rand::random();
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let (http, base, gate) = (http.clone(), base.clone(), Arc::clone(&gate));
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let token = register_one(&http, &base, &format!("ld{stamp:08x}_{i}")).await?;
            anyhow::Ok((i, token))
        });
    }
    let mut tokens = vec![String::new(); count];
    let started = Instant::now();
    let mut done = 0;
    while let Some(joined) = tasks.join_next().await {
        let (i, token) = joined??;
        tokens[i] = token;
        done += 1;
        if done % 64 == 0 || done == count {
            eprintln!(
                "load: registered {done}/{count} ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(tokens)
}

/// The tokens to use: from `file` where present, the rest registered now (and written back).
async fn tokens(cli: &Cli, http: &reqwest::Client, base: &Url) -> anyhow::Result<Vec<String>> {
    let mut tokens: Vec<String> = match &cli.tokens {
        Some(path) if path.exists() => std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    if !tokens.is_empty() {
        // One check that the file belongs to this host (database and signing key) and is not stale.
        let resp = http
            .get(base.join("api/v1/auth/me")?)
            .bearer_auth(&tokens[0])
            .send()
            .await?;
        ensure!(
            resp.status().is_success(),
            "the host refuses the first token of {} ({}): it is for another database or key, or \
             expired; delete the file to register new players",
            cli.tokens.as_deref().unwrap_or(Path::new("")).display(),
            resp.status()
        );
    }
    if tokens.len() < cli.players {
        let missing = cli.players - tokens.len();
        eprintln!(
            "load: registering {missing} players, {} at a time",
            cli.register_concurrency
        );
        tokens.extend(register(http, base, missing, cli.register_concurrency).await?);
        if let Some(path) = &cli.tokens {
            std::fs::write(path, tokens.join("\n") + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    tokens.truncate(cli.players);
    Ok(tokens)
}

/// Every plugin's action names, from the catalog.
async fn catalog(http: &reqwest::Client, base: &Url) -> anyhow::Result<BTreeMap<String, HashSet<String>>> {
    let resp = http.get(base.join("api/v1/catalog")?).send().await?;
    ensure!(resp.status().is_success(), "catalog: {}", resp.status());
    let entries: Vec<Value> = resp.json().await.context("catalog: reply")?;
    let mut out = BTreeMap::new();
    for e in entries {
        let Some(name) = e["manifest"]["name"].as_str() else {
            continue;
        };
        let actions = e["manifest"]["actions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        out.insert(name.to_owned(), actions);
    }
    Ok(out)
}

/// Give each of `tokens`' players `entities` entities through the probe's `stash`.
async fn seed_heavy(
    http: &reqwest::Client,
    base: &Url,
    tokens: &[String],
    entities: u64,
    bytes: u32,
    concurrency: usize,
) -> anyhow::Result<()> {
    let url = base.join("api/v1/actions/probe/stash")?;
    let started = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, token) in tokens.iter().enumerate() {
        let (http, url, token, gate) = (http.clone(), url.clone(), token.clone(), Arc::clone(&gate));
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let mut limited = 0;
            loop {
                let resp = http
                    .post(url.clone())
                    .bearer_auth(&token)
                    .json(&json!({ "bytes": bytes }))
                    .send()
                    .await?;
                let status = resp.status();
                if status == StatusCode::TOO_MANY_REQUESTS {
                    limited += 1;
                    ensure!(limited < MAX_RETRIES, "stash: still rate limited");
                    tokio::time::sleep(retry_after(&resp)).await;
                    continue;
                }
                ensure!(
                    status.is_success(),
                    "stash: {status} {}",
                    body_snippet(resp).await
                );
                let body: Value = resp.json().await?;
                // The reply is how many trinkets the player now holds, so a rerun adds at most one.
                if body["reply"].as_u64().unwrap_or(0) >= entities {
                    return anyhow::Ok(i);
                }
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let i = joined??;
        eprintln!(
            "load: heavy player {i} holds {entities} entities ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// One worker: its own players in turn, one request at a time, until `deadline`.
async fn worker(
    http: reqwest::Client,
    urls: Arc<Vec<Url>>,
    mix: Arc<Mix>,
    tokens: Vec<(String, bool)>,
    deadline: Instant,
    seed: u64,
) -> Run {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut run = Run {
        counts: Counts::default(),
        latencies_us: Vec::new(),
        heavy_us: Vec::new(),
        light_us: Vec::new(),
        elapsed: Duration::ZERO,
        samples: Vec::new(),
    };
    let mut next = 0usize;
    while Instant::now() < deadline {
        let (token, heavy) = &tokens[next % tokens.len()];
        next += 1;
        let i = mix.at(rng.random_range(0..mix.total()));
        let entry = &mix.entries[i];
        let started = Instant::now();
        let sent = http
            .post(urls[i].clone())
            .bearer_auth(token)
            .json(&entry.params)
            .send()
            .await;
        match sent {
            Ok(resp) => {
                let status = resp.status();
                let body = resp.bytes().await;
                let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                run.latencies_us.push(us);
                if *heavy {
                    run.heavy_us.push(us);
                } else {
                    run.light_us.push(us);
                }
                match body {
                    Ok(body) => {
                        run.counts.count(status);
                        if !status.is_success() && run.samples.len() < 3 {
                            let text = String::from_utf8_lossy(&body);
                            run.samples.push(format!(
                                "{} {status}: {}",
                                entry.name(),
                                text.chars().take(200).collect::<String>()
                            ));
                        }
                    }
                    Err(e) => {
                        run.counts.errors += 1;
                        if run.samples.len() < 3 {
                            run.samples
                                .push(format!("{}: reading the reply: {e}", entry.name()));
                        }
                    }
                }
            }
            Err(e) => {
                run.counts.errors += 1;
                if run.samples.len() < 3 {
                    run.samples.push(format!("{}: {e}", entry.name()));
                }
            }
        }
    }
    run
}

/// The action phase: `concurrency` workers for `duration`. The first `heavy` tokens are the heavy
/// players'.
async fn drive(
    http: &reqwest::Client,
    base: &Url,
    mix: Arc<Mix>,
    tokens: &[String],
    heavy: usize,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Run> {
    let urls: Vec<Url> = mix
        .entries
        .iter()
        .map(|e| base.join(&format!("api/v1/actions/{}/{}", e.plugin, e.action)))
        .collect::<Result<_, _>>()?;
    let urls = Arc::new(urls);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let own: Vec<(String, bool)> = tokens
            .iter()
            .enumerate()
            .skip(w)
            .step_by(concurrency)
            .map(|(i, t)| (t.clone(), i < heavy))
            .collect();
        tasks.spawn(worker(
            http.clone(),
            Arc::clone(&urls),
            Arc::clone(&mix),
            own,
            deadline,
            w as u64,
        ));
    }
    let mut all = Run {
        counts: Counts::default(),
        latencies_us: Vec::new(),
        heavy_us: Vec::new(),
        light_us: Vec::new(),
        elapsed: Duration::ZERO,
        samples: Vec::new(),
    };
    while let Some(joined) = tasks.join_next().await {
        let run = joined?;
        all.counts.add(&run.counts);
        all.latencies_us.extend(run.latencies_us);
        all.heavy_us.extend(run.heavy_us);
        all.light_us.extend(run.light_us);
        for s in run.samples {
            if all.samples.len() < 5 {
                all.samples.push(s);
            }
        }
    }
    all.elapsed = started.elapsed();
    all.latencies_us.sort_unstable();
    all.heavy_us.sort_unstable();
    all.light_us.sort_unstable();
    Ok(all)
}

// --- pgbench -------------------------------------------------------------------------------------

/// What pgbench reported.
#[derive(Debug, Default, Clone, PartialEq)]
struct PgbenchReport {
    tps: f64,
    transactions: u64,
    failed: u64,
    latency_avg_ms: f64,
}

/// Read pgbench's summary.
fn parse_pgbench(out: &str) -> Option<PgbenchReport> {
    let mut r = PgbenchReport::default();
    let mut tps = None;
    for line in out.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("tps = ") {
            tps = rest.split_whitespace().next().and_then(|v| v.parse().ok());
        } else if let Some(rest) = line.strip_prefix("number of transactions actually processed: ") {
            r.transactions = rest.split(['/', ' ']).next()?.parse().ok()?;
        } else if let Some(rest) = line.strip_prefix("number of failed transactions: ") {
            r.failed = rest.split_whitespace().next()?.parse().ok()?;
        } else if let Some(rest) = line.strip_prefix("latency average = ") {
            r.latency_avg_ms = rest.split_whitespace().next()?.parse().ok()?;
        }
    }
    r.tps = tps?;
    Some(r)
}

/// The pgbench script: one action's transaction. `:client_id` picks the client's own row, as each
/// worker has its own players.
fn pgbench_script() -> String {
    format!(
        "\\set aid :client_id + 1\n\
         BEGIN;\n\
         UPDATE load_bench_accounts SET version = version + 1 WHERE id = :aid RETURNING version \\gset\n\
         INSERT INTO load_bench_log (account_id, plugin, action, params, reply, version, created_ms) \
         VALUES (:aid, 'cultivation', 'gather', '{{}}', jsonb_build_object('pad', repeat('x', {LOG_PAD})), \
         :version, 0);\n\
         END;\n"
    )
}

/// The tables of the bare transaction: a player-like row and a log shaped like the action log
/// (identity key, foreign key, the idempotency unique index and the replay index).
const PG_TABLES: &[&str] = &[
    "CREATE TABLE load_bench_accounts (id bigint PRIMARY KEY, version bigint NOT NULL DEFAULT 0)",
    "CREATE TABLE load_bench_log (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        account_id bigint NOT NULL REFERENCES load_bench_accounts (id) ON DELETE CASCADE,
        plugin text NOT NULL, action text NOT NULL, params jsonb NOT NULL, reply jsonb NOT NULL,
        idempotency_key text, version bigint NOT NULL, created_ms bigint NOT NULL,
        UNIQUE (account_id, idempotency_key))",
    "CREATE INDEX load_bench_log_plugin_id ON load_bench_log (plugin, id)",
];

fn find_pgbench(given: Option<&Path>) -> PathBuf {
    if let Some(p) = given {
        return p.to_path_buf();
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(PGBENCH_GLOB_ROOT)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| {
                    let major: u32 = e.file_name().to_str()?.parse().ok()?;
                    let bin = e.path().join("bin/pgbench");
                    bin.exists().then_some((major, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().map_or_else(|| PathBuf::from("pgbench"), |(_, p)| p)
}

struct PgbenchPhase {
    db: String,
    report: PgbenchReport,
    cpu: Cpu,
}

/// Create the scratch database, run pgbench in it, drop it.
async fn pgbench_phase(
    pg_url: &Url,
    bin: &Path,
    clients: usize,
    duration: Duration,
    host_pid: Option<u32>,
) -> anyhow::Result<PgbenchPhase> {
    let db = format!("cauldron_loadbench_{:08x}", rand::random::<u32>());
    let mut admin = sqlx::PgConnection::connect(pg_url.as_str())
        .await
        .context("connecting to --pg-url")?;
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut admin)
        .await
        .context("creating the scratch database")?;
    let mut scratch_url = pg_url.clone();
    scratch_url.set_path(&format!("/{db}"));
    let result = pgbench_in(&scratch_url, &db, bin, clients, duration, host_pid).await;
    let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
    if let Err(e) = dropped {
        eprintln!("load: could not drop the scratch database {db}: {e}");
    }
    let (report, cpu) = result?;
    Ok(PgbenchPhase { db, report, cpu })
}

async fn pgbench_in(
    url: &Url,
    db: &str,
    bin: &Path,
    clients: usize,
    duration: Duration,
    host_pid: Option<u32>,
) -> anyhow::Result<(PgbenchReport, Cpu)> {
    let mut conn = sqlx::PgConnection::connect(url.as_str()).await?;
    for sql in PG_TABLES {
        sqlx::query(sql).execute(&mut conn).await?;
    }
    sqlx::query("INSERT INTO load_bench_accounts (id) SELECT generate_series(1, $1)")
        .bind(i64::try_from(clients)?)
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let script = std::env::temp_dir().join(format!("{db}.sql"));
    std::fs::write(&script, pgbench_script())?;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(clients);
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["-n", "-M", "prepared", "-c"])
        .arg(clients.to_string())
        .arg("-j")
        .arg(threads.to_string())
        .arg("-T")
        .arg(duration.as_secs().to_string())
        .arg("-f")
        .arg(&script)
        .arg(url.as_str());
    eprintln!(
        "load: running {} with {clients} clients for {} s",
        bin.display(),
        duration.as_secs()
    );
    let sampler = CpuSampler::start(Watch {
        host_pid,
        pg_dbs: Some(HashSet::from([db.to_owned()])),
        redis: false,
    });
    let out = tokio::task::spawn_blocking(move || cmd.output()).await?;
    let cpu = sampler.finish();
    let _ = std::fs::remove_file(&script);
    let out = out.with_context(|| format!("running {}", bin.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "pgbench failed ({}): {}{}",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let report =
        parse_pgbench(&stdout).with_context(|| format!("no summary in pgbench's output:\n{stdout}"))?;
    Ok((report, cpu))
}

// --- SQLite --------------------------------------------------------------------------------------

struct SqlitePhase {
    run: Run,
    cpu: Cpu,
}

/// The bare transaction loop on SQLite in a scratch file, with the host's settings.
async fn sqlite_phase(path: &Path, tasks: usize, duration: Duration) -> anyhow::Result<SqlitePhase> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    ensure!(
        !path.exists(),
        "{} exists: --sqlite-file must name a new scratch file",
        path.display()
    );
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(SQLITE_CONNECTIONS)
        .connect_with(options)
        .await?;
    let result = sqlite_loop(&pool, tasks, duration).await;
    pool.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    result
}

async fn sqlite_loop(
    pool: &sqlx::SqlitePool,
    tasks: usize,
    duration: Duration,
) -> anyhow::Result<SqlitePhase> {
    for sql in [
        "CREATE TABLE load_bench_accounts (id integer PRIMARY KEY, version integer NOT NULL DEFAULT 0)",
        "CREATE TABLE load_bench_log (
            id integer PRIMARY KEY AUTOINCREMENT,
            account_id integer NOT NULL REFERENCES load_bench_accounts (id) ON DELETE CASCADE,
            plugin text NOT NULL, action text NOT NULL, params text NOT NULL, reply text NOT NULL,
            idempotency_key text, version integer NOT NULL, created_ms integer NOT NULL,
            UNIQUE (account_id, idempotency_key))",
        "CREATE INDEX load_bench_log_plugin_id ON load_bench_log (plugin, id)",
    ] {
        sqlx::query(sql).execute(pool).await?;
    }
    for id in 1..=tasks {
        sqlx::query("INSERT INTO load_bench_accounts (id) VALUES (?)")
            .bind(i64::try_from(id)?)
            .execute(pool)
            .await?;
    }
    let reply = json!({ "pad": "x".repeat(LOG_PAD) }).to_string();
    let gate = Arc::new(tokio::sync::Mutex::new(()));
    let sampler = CpuSampler::start(Watch::default());
    let started = Instant::now();
    let deadline = started + duration;
    let mut set = tokio::task::JoinSet::new();
    for id in 1..=tasks {
        let (pool, gate, reply) = (pool.clone(), Arc::clone(&gate), reply.clone());
        set.spawn(async move {
            let mut run = Run {
                counts: Counts::default(),
                latencies_us: Vec::new(),
                heavy_us: Vec::new(),
                light_us: Vec::new(),
                elapsed: Duration::ZERO,
                samples: Vec::new(),
            };
            let id = i64::try_from(id).unwrap_or(i64::MAX);
            while Instant::now() < deadline {
                let t = Instant::now();
                let r: anyhow::Result<()> = async {
                    // As the host: writers queue on one lock, then take the write lock up front.
                    let _gate = gate.lock().await;
                    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                    let version: i64 = sqlx::query_scalar(
                        "UPDATE load_bench_accounts SET version = version + 1 WHERE id = ? RETURNING version",
                    )
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO load_bench_log (account_id, plugin, action, params, reply, version, created_ms)
                         VALUES (?, 'cultivation', 'gather', '{}', ?, ?, 0)",
                    )
                    .bind(id)
                    .bind(&reply)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(())
                }
                .await;
                run.latencies_us
                    .push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
                match r {
                    Ok(()) => run.counts.ok += 1,
                    Err(e) => {
                        run.counts.errors += 1;
                        if run.samples.len() < 3 {
                            run.samples.push(e.to_string());
                        }
                    }
                }
            }
            run
        });
    }
    let mut all = Run {
        counts: Counts::default(),
        latencies_us: Vec::new(),
        heavy_us: Vec::new(),
        light_us: Vec::new(),
        elapsed: Duration::ZERO,
        samples: Vec::new(),
    };
    while let Some(joined) = set.join_next().await {
        let run = joined?;
        all.counts.add(&run.counts);
        all.latencies_us.extend(run.latencies_us);
        all.samples.extend(run.samples);
    }
    all.elapsed = started.elapsed();
    let cpu = sampler.finish();
    all.latencies_us.sort_unstable();
    Ok(SqlitePhase { run: all, cpu })
}

// --- report --------------------------------------------------------------------------------------

fn per_op(ms: f64, ops: u64) -> f64 {
    if ops == 0 { 0.0 } else { ms / ops as f64 }
}

fn run_json(run: &Run) -> Value {
    json!({
        "ok": run.counts.ok,
        "elapsed_s": run.elapsed.as_secs_f64(),
        "per_sec": run.per_sec(),
        "latency_ms": {"p50": run.latency_ms(0.5), "p99": run.latency_ms(0.99), "max": run.latency_ms(1.0)},
        "heavy_players_latency_ms": {
            "p50": percentile(&run.heavy_us, 0.5) as f64 / 1000.0,
            "p99": percentile(&run.heavy_us, 0.99) as f64 / 1000.0,
        },
        "other_players_latency_ms": {
            "p50": percentile(&run.light_us, 0.5) as f64 / 1000.0,
            "p99": percentile(&run.light_us, 0.99) as f64 / 1000.0,
        },
        "status": {
            "2xx": run.counts.ok, "4xx": run.counts.client, "429": run.counts.limited,
            "5xx": run.counts.server, "errors": run.counts.errors,
        },
    })
}

/// One phase's CPU time, split into the work measured ("server": the host and its services, or
/// PostgreSQL under pgbench, or the bare SQLite loop) and the load generator's ("client").
struct Column<'a> {
    name: &'static str,
    cpu: &'a Cpu,
    ops: u64,
    server_ms: f64,
    client_ms: f64,
}

/// Reads one group's time out of a [`Cpu`].
type CpuField = fn(&Cpu) -> f64;

fn cpu_json(col: &Column<'_>) -> Value {
    json!({
        "host_ms": col.cpu.host_ms, "postgres_ms": col.cpu.postgres_ms, "redis_ms": col.cpu.redis_ms,
        "tool_ms": col.cpu.tool_ms, "children_ms": col.cpu.children_ms,
        "server_ms_per_op": per_op(col.server_ms, col.ops),
        "client_ms_per_op": per_op(col.client_ms, col.ops),
    })
}

struct Report<'a> {
    cli: &'a Cli,
    mix: &'a Mix,
    actions: &'a Run,
    actions_cpu: &'a Cpu,
    pgbench: Option<&'a PgbenchPhase>,
    sqlite: Option<&'a SqlitePhase>,
}

impl Report<'_> {
    fn actions_column(&self) -> Column<'_> {
        Column {
            name: "actions",
            cpu: self.actions_cpu,
            ops: self.actions.counts.ok,
            server_ms: self.actions_cpu.server_ms(),
            client_ms: self.actions_cpu.tool_ms,
        }
    }

    fn pgbench_column(&self) -> Option<Column<'_>> {
        self.pgbench.map(|p| Column {
            name: "pgbench",
            cpu: &p.cpu,
            ops: p.report.transactions,
            server_ms: p.cpu.postgres_ms,
            client_ms: p.cpu.children_ms,
        })
    }

    fn sqlite_column(&self) -> Option<Column<'_>> {
        // The bare loop is the database work itself, run in this tool: its CPU is the "server" side.
        self.sqlite.map(|s| Column {
            name: "sqlite bare",
            cpu: &s.cpu,
            ops: s.run.counts.ok,
            server_ms: s.cpu.tool_ms,
            client_ms: 0.0,
        })
    }

    /// Server CPU per action over server CPU per comparison transaction.
    fn cpu_ratio(&self, other: &Column<'_>) -> f64 {
        let a = self.actions_column();
        per_op(a.server_ms, a.ops) / per_op(other.server_ms, other.ops).max(1e-9)
    }

    fn json(&self) -> Value {
        let a = self.actions;
        let mut out = json!({
            "clients": self.cli.concurrency,
            "duration_s": self.cli.duration,
            "players": self.cli.players,
            "heavy": self.cli.heavy,
            "entities_per_heavy": if self.cli.heavy > 0 { self.cli.entities } else { 0 },
            "mix": self.mix.describe(),
            "actions": run_json(a),
            "actions_cpu": cpu_json(&self.actions_column()),
        });
        if let (Some(p), Some(col)) = (self.pgbench, self.pgbench_column()) {
            out["pgbench"] = json!({
                "database": p.db,
                "tps": p.report.tps,
                "transactions": p.report.transactions,
                "failed": p.report.failed,
                "latency_avg_ms": p.report.latency_avg_ms,
                "cpu": cpu_json(&col),
                "ratio": a.per_sec() / p.report.tps.max(1e-9),
                "cpu_ratio": self.cpu_ratio(&col),
            });
        }
        if let (Some(s), Some(col)) = (self.sqlite, self.sqlite_column()) {
            out["sqlite"] = json!({
                "bare": run_json(&s.run),
                "cpu": cpu_json(&col),
                "ratio": a.per_sec() / s.run.per_sec().max(1e-9),
                "cpu_ratio": self.cpu_ratio(&col),
            });
        }
        out
    }

    fn table(&self) -> String {
        use std::fmt::Write as _;
        let a = self.actions;
        let c = &a.counts;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "load: {} clients, {} s, mix {}, {} players ({} heavy{})",
            self.cli.concurrency,
            self.cli.duration,
            self.mix.describe(),
            self.cli.players,
            self.cli.heavy,
            if self.cli.heavy > 0 {
                format!(" with {} entities each", self.cli.entities)
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            t,
            "actions   {} in {:.1} s = {:.1} actions/s ({:.1} requests/s)",
            c.ok,
            a.elapsed.as_secs_f64(),
            a.per_sec(),
            c.total() as f64 / a.elapsed.as_secs_f64().max(1e-9)
        );
        let _ = writeln!(
            t,
            "latency   p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
            a.latency_ms(0.5),
            a.latency_ms(0.99),
            a.latency_ms(1.0)
        );
        if !a.heavy_us.is_empty() && !a.light_us.is_empty() {
            let ms = |v: &[u64], p: f64| percentile(v, p) as f64 / 1000.0;
            let _ = writeln!(
                t,
                "          heavy players p50 {:.2} ms p99 {:.2} ms   others p50 {:.2} ms p99 {:.2} ms   \
                 p50 ratio {:.2}",
                ms(&a.heavy_us, 0.5),
                ms(&a.heavy_us, 0.99),
                ms(&a.light_us, 0.5),
                ms(&a.light_us, 0.99),
                ms(&a.heavy_us, 0.5) / ms(&a.light_us, 0.5).max(1e-9)
            );
        }
        let _ = writeln!(
            t,
            "status    2xx {}   4xx {}   429 {}   5xx {}   errors {}",
            c.ok, c.client, c.limited, c.server, c.errors
        );
        if let (Some(p), Some(col)) = (self.pgbench, self.pgbench_column()) {
            let _ = writeln!(
                t,
                "pgbench   {:.1} tps ({} transactions, {} failed, latency avg {:.3} ms)",
                p.report.tps, p.report.transactions, p.report.failed, p.report.latency_avg_ms
            );
            let _ = writeln!(
                t,
                "ratio     actions/s / pgbench tps = {:.3}; server CPU per action / per pgbench transaction = {:.1}",
                a.per_sec() / p.report.tps.max(1e-9),
                self.cpu_ratio(&col)
            );
        }
        if let (Some(s), Some(col)) = (self.sqlite, self.sqlite_column()) {
            let _ = writeln!(
                t,
                "sqlite    bare loop {:.1} tx/s ({} transactions, {} errors; p50 {:.2} ms, p99 {:.2} ms)",
                s.run.per_sec(),
                s.run.counts.ok,
                s.run.counts.errors,
                s.run.latency_ms(0.5),
                s.run.latency_ms(0.99)
            );
            let _ = writeln!(
                t,
                "ratio     actions/s / bare SQLite tx/s = {:.3}; server CPU per action / per bare transaction = {:.1}",
                a.per_sec() / s.run.per_sec().max(1e-9),
                self.cpu_ratio(&col)
            );
        }
        // CPU: one column per phase.
        let cols: Vec<Column<'_>> = std::iter::once(self.actions_column())
            .chain(self.pgbench_column())
            .chain(self.sqlite_column())
            .collect();
        let _ = write!(t, "\n{:<26}", "CPU ms");
        for col in &cols {
            let _ = write!(t, "{:>14}", col.name);
        }
        let rows: [(&str, CpuField); 5] = [
            ("host", |c| c.host_ms),
            ("postgres", |c| c.postgres_ms),
            ("redis-server", |c| c.redis_ms),
            ("this tool", |c| c.tool_ms),
            ("pgbench (child)", |c| c.children_ms),
        ];
        for (label, get) in rows {
            let _ = write!(t, "\n  {label:<24}");
            for col in &cols {
                let _ = write!(t, "{:>14.0}", get(col.cpu));
            }
        }
        let _ = write!(t, "\n  {:<24}", "operations");
        for col in &cols {
            let _ = write!(t, "{:>14}", col.ops);
        }
        let _ = write!(t, "\n  {:<24}", "server ms per operation");
        for col in &cols {
            let _ = write!(t, "{:>14.3}", per_op(col.server_ms, col.ops));
        }
        let _ = write!(t, "\n  {:<24}", "client ms per operation");
        for col in &cols {
            let _ = write!(t, "{:>14.3}", per_op(col.client_ms, col.ops));
        }
        t.push('\n');
        let pg_scope = match &self.cli.host_db {
            Some(db) => format!("the postmaster, its auxiliary processes and {db}'s backends"),
            None => "not counted (no --host-db)".to_owned(),
        };
        let _ = writeln!(
            t,
            "server: actions = host + postgres + redis-server, pgbench = postgres, sqlite bare = this \
             tool; client: this tool, pgbench.\nactions' postgres: {pg_scope}; redis-server {}counted. \
             {} core(s) shared with other work: noisy.",
            if self.cli.host_redis { "" } else { "not " },
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        t
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let base = Url::parse(&cli.url).context("--url")?;
    ensure_loopback(&base)?;
    let base = if base.path().ends_with('/') {
        base
    } else {
        Url::parse(&format!("{}/", base.as_str()))?
    };
    let mix = Arc::new(Mix::new(parse_mix(&cli.mix, &cli.params)?));
    ensure!(cli.concurrency >= 1, "--concurrency must be at least 1");
    ensure!(
        cli.players >= cli.concurrency,
        "--players ({}) must be at least --concurrency ({}): each worker drives players of its own",
        cli.players,
        cli.concurrency
    );
    ensure!(cli.heavy <= cli.players, "--heavy must not exceed --players");
    let pg_url = match &cli.pg_url {
        Some(u) => {
            let url = Url::parse(u).context("--pg-url")?;
            ensure_loopback(&url)?;
            Some(url)
        }
        None => None,
    };
    ensure!(!cli.pgbench || pg_url.is_some(), "--pgbench needs --pg-url");
    let duration = Duration::from_secs(cli.duration.max(1));

    eprintln!(
        "load: the host limits actions per player: start it with RATE_LIMIT_ACTION_BURST and \
         RATE_LIMIT_ACTION_PER_SEC raised (e.g. 1000000 each), or 429s are counted"
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(cli.concurrency.max(cli.register_concurrency))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?;

    let plugins = catalog(&http, &base).await?;
    for e in &mix.entries {
        ensure!(
            plugins.get(&e.plugin).is_some_and(|a| a.contains(&e.action)),
            "the host has no action {} (loaded plugins: {})",
            e.name(),
            plugins.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    if cli.heavy > 0 {
        ensure!(
            plugins.get("probe").is_some_and(|a| a.contains("stash")),
            "--heavy needs the probe fixture on the host: copy <target>/fixtures/probe.wasm into its \
             PLUGINS_DIR (benchmark hosts only)"
        );
    }

    let tokens = tokens(&cli, &http, &base).await?;
    if cli.heavy > 0 {
        eprintln!(
            "load: giving {} players {} entities each",
            cli.heavy, cli.entities
        );
        seed_heavy(
            &http,
            &base,
            &tokens[..cli.heavy],
            cli.entities,
            cli.entity_bytes,
            cli.register_concurrency,
        )
        .await?;
    }

    eprintln!(
        "load: {} clients for {} s: {}",
        cli.concurrency,
        duration.as_secs(),
        mix.describe()
    );
    let sampler = CpuSampler::start(Watch {
        host_pid: cli.host_pid,
        pg_dbs: cli.host_db.as_ref().map(|d| HashSet::from([d.clone()])),
        redis: cli.host_redis,
    });
    let actions = drive(
        &http,
        &base,
        Arc::clone(&mix),
        &tokens,
        cli.heavy,
        cli.concurrency,
        duration,
    )
    .await?;
    let actions_cpu = sampler.finish();
    for s in &actions.samples {
        eprintln!("load: e.g. {s}");
    }
    if actions.counts.limited > 0 {
        eprintln!(
            "load: WARNING: {} answers were 429: raise RATE_LIMIT_ACTION_BURST and \
             RATE_LIMIT_ACTION_PER_SEC on the host, or use more --players",
            actions.counts.limited
        );
    }

    let pgbench = match (&pg_url, cli.pgbench) {
        (Some(url), true) => {
            let bin = find_pgbench(cli.pgbench_bin.as_deref());
            Some(pgbench_phase(url, &bin, cli.concurrency, duration, cli.host_pid).await?)
        }
        _ => None,
    };
    let sqlite = match &cli.sqlite_file {
        Some(path) => {
            eprintln!(
                "load: bare SQLite transactions with {} tasks for {} s",
                cli.concurrency,
                duration.as_secs()
            );
            Some(sqlite_phase(path, cli.concurrency, duration).await?)
        }
        None => None,
    };

    let report = Report {
        cli: &cli,
        mix: &mix,
        actions: &actions,
        actions_cpu: &actions_cpu,
        pgbench: pgbench.as_ref(),
        sqlite: sqlite.as_ref(),
    };
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mix_reads_weights_defaults_and_params() {
        let mix = parse_mix(
            "cultivation/gather=3, cultivation/info,dungeon/hunt=2",
            &[r#"dungeon/hunt={"monster":1}"#.to_owned()],
        )
        .unwrap();
        let names: Vec<(String, u32)> = mix.iter().map(|e| (e.name(), e.weight)).collect();
        assert_eq!(
            names,
            [
                ("cultivation/gather".to_owned(), 3),
                ("cultivation/info".to_owned(), 1),
                ("dungeon/hunt".to_owned(), 2)
            ]
        );
        assert_eq!(mix[0].params, json!({}));
        assert_eq!(mix[2].params, json!({"monster": 1}));
    }

    #[test]
    fn a_bad_mix_is_refused_with_a_reason() {
        for (mix, params, needle) in [
            ("", vec![], "empty"),
            ("gather=1", vec![], "PLUGIN/ACTION"),
            ("a/b=0", vec![], "at least 1"),
            ("a/b=x", vec![], "whole number"),
            ("a/b,a/b", vec![], "twice"),
            ("a/../b", vec![], "names"),
            ("a/b", vec!["a/c={}"], "not in the mix"),
            ("a/b", vec!["a/b=[1]"], "object"),
            ("a/b", vec!["a/b={"], "not JSON"),
        ] {
            let params: Vec<String> = params.into_iter().map(str::to_owned).collect();
            let err = parse_mix(mix, &params).unwrap_err().to_string();
            assert!(err.contains(needle), "{mix} {params:?}: {err}");
        }
    }

    #[test]
    fn draws_land_on_entries_by_weight() {
        let mix = Mix::new(parse_mix("a/x=2,b/y=1,c/z=3", &[]).unwrap());
        assert_eq!(mix.total(), 6);
        let picks: Vec<&str> = (0..6).map(|r| mix.entries[mix.at(r)].plugin.as_str()).collect();
        assert_eq!(picks, ["a", "a", "b", "c", "c", "c"]);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
        assert_eq!(percentile(&[1, 2, 3], 0.5), 2);
    }

    #[test]
    fn proc_stat_is_read_past_a_name_with_spaces_and_parentheses() {
        // proc(5): pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime cutime cstime priority nice threads itrealvalue starttime ...
        let text = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    150 50 7 3 20 0 2 0 987654 123456 789 18446744073709551615";
        let st = parse_proc_stat(text).unwrap();
        assert_eq!(st.comm, "tokio (rt) 1");
        assert_eq!(st.own_ticks, 200);
        assert_eq!(st.children_ticks, 10);
        assert_eq!(st.start, 987654);
        assert!(parse_proc_stat("4242 (short) S 1 2").is_none());
        assert!(parse_proc_stat("garbage").is_none());
    }

    #[test]
    fn postgres_backends_are_told_from_auxiliary_processes() {
        assert_eq!(
            pg_backend_db("postgres: postgres cauldron_load 127.0.0.1(51234) idle"),
            Some("cauldron_load")
        );
        assert_eq!(
            pg_backend_db("postgres: app shop [local] UPDATE waiting"),
            Some("shop")
        );
        assert_eq!(pg_backend_db("postgres: checkpointer"), None);
        assert_eq!(pg_backend_db("postgres: autovacuum worker cauldron_load"), None);
        assert_eq!(pg_backend_db("postgres: logical replication launcher"), None);
        assert_eq!(
            pg_backend_db("/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main"),
            None
        );
    }

    #[test]
    fn only_loopback_targets_are_accepted() {
        for ok in [
            "http://127.0.0.1:3000",
            "http://127.9.9.9/",
            "http://localhost:1",
            "http://[::1]:3000",
            "postgres://postgres@127.0.0.1:5432/postgres",
        ] {
            ensure_loopback(&Url::parse(ok).unwrap()).unwrap();
        }
        for bad in ["http://10.0.0.1:3000", "http://example.com", "http://[::2]/"] {
            assert!(ensure_loopback(&Url::parse(bad).unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn pgbench_summaries_are_read() {
        let out = "pgbench (15.10)\ntransaction type: script.sql\nscaling factor: 1\nquery mode: prepared\n\
                   number of clients: 8\nnumber of threads: 2\nmaximum number of tries: 1\n\
                   duration: 15 s\nnumber of transactions actually processed: 45678\n\
                   number of failed transactions: 0 (0.000%)\nlatency average = 2.627 ms\n\
                   initial connection time = 12.345 ms\ntps = 3045.123456 (without initial connection time)\n";
        assert_eq!(
            parse_pgbench(out),
            Some(PgbenchReport {
                tps: 3045.123456,
                transactions: 45678,
                failed: 0,
                latency_avg_ms: 2.627,
            })
        );
        assert_eq!(parse_pgbench("no summary"), None);
    }

    #[test]
    fn statuses_are_counted_by_class() {
        let mut c = Counts::default();
        for s in [200, 201, 404, 409, 422, 429, 500, 503] {
            c.count(StatusCode::from_u16(s).unwrap());
        }
        assert_eq!((c.ok, c.client, c.limited, c.server), (2, 3, 1, 2));
        assert_eq!(c.total(), 8);
    }
}
