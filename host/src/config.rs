//! The command line and the settings, read and validated once at start-up.
//!
//! [`Cli`] is what clap parses: subcommands, and for serving ([`ServeArgs`]) one typed field per
//! setting, each a flag that falls back to its environment variable and then to its default,
//! written once in the field's attribute (`cauldron --help` shows it). A value of the wrong type or
//! out of range stops start-up with a [`ConfigError`] naming the variable. [`Config::from_args`]
//! then applies the rules between settings (secrets in production, `DATABASE_URL` or the `DB_*`
//! variables) and derives what the host uses. Nothing else in the host reads the environment; the
//! plugin runtime gets its part through [`Config::plugin_limits`].
//!
//! An empty variable counts as unset (`ADMIN_TOKEN=` in an env file keeps the admin token off).
//! `deploy/.env.example` documents every variable for operators; a test checks that it lists
//! exactly the variables defined here, with their defaults.

use std::ffi::{OsStr, OsString};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use cauldron_runtime::{Limits, Profiler};
use clap::builder::RangedU64ValueParser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::store::GroupCommit;

/// A secret shorter than this is refused in production: HS256 wants at least 256 bits of key.
pub const MIN_SECRET_LEN: usize = 32;

/// Secrets that are well known (from samples and tutorials) and so refused in production.
const KNOWN_SECRETS: &[&str] = &[
    "secret",
    "changeme",
    "change-me",
    "change_me",
    "your-secret-key",
    "your_jwt_secret",
    "jwt_secret",
    "dev-secret",
    "cauldron-dev-secret",
    "please-change-this-secret-in-production",
];

/// What `TRUSTED_PROXIES` is when unset: loopback and the private ranges, where a reverse proxy on
/// the same machine or network (nginx on the compose network of `deploy/`) connects from.
pub const DEFAULT_TRUSTED_PROXIES: &str =
    "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7";

/// `cauldron`: the game server host. Without a subcommand it serves.
#[derive(Debug, Parser)]
#[command(name = "cauldron", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; `serve` when none is given.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The serving settings of `cauldron` without a subcommand.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the game (the default).
    Serve(ServeArgs),
    /// Bring the database schema up to date, then exit.
    Migrate(ServeArgs),
    /// A modder's plugin tools: new, build, publish, status.
    Plugin(crate::plugin_cli::PluginArgs),
    /// Re-run logged actions of a plugin against a candidate version, applying nothing, and report
    /// what would have changed (`cauldron replay --help`).
    Replay(crate::replay::cli::ReplayArgs),
}

impl Cli {
    /// Read `.env` if present, then the command line and the environment. `--help`, `--version` and
    /// unknown flags print clap's message and exit the process.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable whose value is not valid, or a malformed `.env`.
    pub fn load() -> Result<Self, ConfigError> {
        // A missing .env is the normal case in production; a malformed one is an error worth a stop.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(bad("(.env)", format!("cannot read .env: {e}"))),
        }
        Self::parse_args(std::env::args_os())
    }

    /// [`Cli::load`] without `.env`: `args` (the program name first) and the process environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable whose value is not valid.
    pub fn parse_args(
        args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    ) -> Result<Self, ConfigError> {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let full = Self::command();
        match unset_blank_env(full.clone()).try_get_matches_from(&args) {
            Ok(matches) => Self::from_arg_matches(&matches).map_err(|e| from_clap(&full, e)),
            Err(err) => match value_error(&full, &err) {
                Some(config_error) => Err(config_error),
                // Help is rendered by the command that still names every variable, blank or not.
                None if !err.use_stderr() => match full.try_get_matches_from(&args) {
                    Err(help) => help.exit(),
                    Ok(_) => err.exit(),
                },
                None => err.exit(),
            },
        }
    }

    /// The subcommand to run: the one given, else `serve` with the top-level settings.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

/// Every serving setting, typed. Each flag falls back to the environment variable of the same name
/// in capitals (`--port` to `PORT`), then to its default.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Deployment mode; production refuses missing, short or sample secrets.
    #[arg(long, env = "CAULDRON_ENV", value_enum, ignore_case = true, default_value_t = Environment::Development)]
    pub cauldron_env: Environment,
    /// Database URL: `postgres://...` or `sqlite:path`. Unset: the `DB_*` variables when `DB_HOST`
    /// is set, else an SQLite file `data/cauldron.db`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = DatabaseUrl::parse)]
    pub database_url: Option<DatabaseUrl>,
    /// PostgreSQL host, used when DATABASE_URL is unset (with DB_PORT, DB_NAME, DB_USER, DB_PASSWORD).
    #[arg(long, env = "DB_HOST")]
    pub db_host: Option<String>,
    /// PostgreSQL port, with DB_HOST.
    #[arg(long, env = "DB_PORT", default_value_t = 5432)]
    pub db_port: u16,
    /// PostgreSQL database name, with DB_HOST.
    #[arg(long, env = "DB_NAME", default_value = "cauldron")]
    pub db_name: String,
    /// PostgreSQL user, with DB_HOST.
    #[arg(long, env = "DB_USER", default_value = "postgres")]
    pub db_user: String,
    /// PostgreSQL password, with DB_HOST.
    #[arg(long, env = "DB_PASSWORD", hide_env_values = true, value_parser = Secret::parse)]
    pub db_password: Option<Secret>,
    /// How long start-up waits for the database, in seconds.
    #[arg(long, env = "DB_CONNECT_TIMEOUT_SECS", default_value_t = 60, value_parser = at_least_1::<u64>())]
    pub db_connect_timeout_secs: u64,
    /// Redis URL; unset means one node with in-process cache, pub/sub and rate limits.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, value_parser = RedisUrl::parse)]
    pub redis_url: Option<RedisUrl>,
    /// Prefix of every Redis key and channel; the hosts of one deployment share it.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = crate::cache::DEFAULT_KEY_PREFIX)]
    pub redis_key_prefix: String,
    /// Address to listen on.
    #[arg(long, env = "BIND_ADDR", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub bind_addr: IpAddr,
    /// Port to listen on; 0 lets the system pick one (the log says which).
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,
    /// Log filter: a level, or directives such as `cauldron_host=debug,tower_http=info`.
    #[arg(long, env = "LOG_LEVEL", default_value = "info", value_parser = log_filter)]
    pub log_level: String,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, ignore_case = true, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
    /// Key for signing tokens (HS256). Required in production, at least 32 characters; unset in
    /// development, a random key per process.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, value_parser = Secret::parse)]
    pub jwt_secret: Option<Secret>,
    /// How long a token is valid, in seconds.
    #[arg(long, env = "JWT_TTL_SECS", default_value_t = 7 * 24 * 3600, value_parser = at_least_1::<u64>())]
    pub jwt_ttl_secs: u64,
    /// Bearer token for the admin API; unset disables token access to it.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true, value_parser = Secret::parse)]
    pub admin_token: Option<Secret>,
    /// Folder of plugin modules (`NAME.wasm` + `NAME/*.toml`), watched for changes; the default is
    /// where `cargo xtask build-plugins` puts them.
    #[arg(long, env = "PLUGINS_DIR", default_value = "target/plugins")]
    pub plugins_dir: PathBuf,
    /// Folder of the web client, served at `/` when it exists.
    #[arg(long, env = "WEB_DIR", default_value = "web")]
    pub web_dir: PathBuf,
    /// Comma-separated origins allowed by CORS, or `*`; unset allows none (same origin only).
    #[arg(long, env = "CORS_ORIGINS", value_parser = Cors::parse)]
    pub cors_origins: Option<Cors>,
    /// Largest request body, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 64 * 1024, value_parser = at_least_1::<usize>())]
    pub max_body_bytes: usize,
    /// Longest a request may take before it is stopped with 504 `timeout`, in seconds.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 30, value_parser = at_least_1::<u64>())]
    pub request_timeout_secs: u64,
    /// How long shutdown waits for in-flight requests, in seconds.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 10)]
    pub shutdown_timeout_secs: u64,
    /// Fuel per plugin call (about one unit per wasm instruction).
    #[arg(long, env = "PLUGIN_FUEL", default_value_t = Limits::default().fuel, value_parser = at_least_1::<u64>())]
    pub plugin_fuel: u64,
    /// Wall-clock budget per plugin call, in ms.
    #[arg(long, env = "PLUGIN_DEADLINE_MS", default_value_t = millis(Limits::default().deadline), value_parser = at_least_1::<u64>())]
    pub plugin_deadline_ms: u64,
    /// Largest plugin memory, in MiB (a wasm32 memory holds at most 4096).
    #[arg(long, env = "PLUGIN_MEMORY_MB", default_value_t = Limits::default().memory_bytes >> 20,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=4096))]
    pub plugin_memory_mb: usize,
    /// Largest plugin output accepted, in bytes.
    #[arg(long, env = "PLUGIN_MAX_OUTPUT_BYTES", default_value_t = Limits::default().max_output_bytes,
        value_parser = at_least_1::<usize>())]
    pub plugin_max_output_bytes: usize,
    /// Folder for compiled plugin modules; `off` keeps them in memory.
    #[arg(long, env = "MODULE_CACHE_DIR", default_value = "data/module-cache", value_parser = CacheDir::parse)]
    pub module_cache_dir: CacheDir,
    /// Which profiler is told the names of compiled plugin functions.
    #[arg(long, env = "CAULDRON_WASM_PROFILER", value_enum, ignore_case = true, default_value_t = WasmProfiler::None)]
    pub cauldron_wasm_profiler: WasmProfiler,
    /// Login attempts allowed in a burst, per username.
    #[arg(long, env = "RATE_LIMIT_LOGIN_BURST", default_value_t = 10, value_parser = at_least_1::<u32>())]
    pub rate_limit_login_burst: u32,
    /// Login attempts regained per minute, per username.
    #[arg(long, env = "RATE_LIMIT_LOGIN_PER_MIN", default_value_t = 10.0, value_parser = positive_rate)]
    pub rate_limit_login_per_min: f64,
    /// Login attempts allowed in a burst, per client address.
    #[arg(long, env = "RATE_LIMIT_LOGIN_ADDR_BURST", default_value_t = 30, value_parser = at_least_1::<u32>())]
    pub rate_limit_login_addr_burst: u32,
    /// Login attempts regained per minute, per client address.
    #[arg(long, env = "RATE_LIMIT_LOGIN_ADDR_PER_MIN", default_value_t = 20.0, value_parser = positive_rate)]
    pub rate_limit_login_addr_per_min: f64,
    /// Registrations allowed in a burst, per client address.
    #[arg(long, env = "RATE_LIMIT_REGISTER_BURST", default_value_t = 10, value_parser = at_least_1::<u32>())]
    pub rate_limit_register_burst: u32,
    /// Registrations regained per minute, per client address (a fraction is fine: 0.5 is one every
    /// two minutes).
    #[arg(long, env = "RATE_LIMIT_REGISTER_PER_MIN", default_value_t = 0.5, value_parser = positive_rate)]
    pub rate_limit_register_per_min: f64,
    /// Comma-separated addresses or CIDR ranges of proxies whose `X-Forwarded-For` is believed, or
    /// `none` to believe no proxy. The default is loopback and the private ranges.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = DEFAULT_TRUSTED_PROXIES, value_parser = TrustedProxies::parse)]
    pub trusted_proxies: TrustedProxies,
    /// Password hashes (registration, login) computed at once; the default is half the CPUs, at
    /// least 1.
    #[arg(long, env = "PASSWORD_HASH_CONCURRENCY", default_value_t = default_hash_concurrency(),
        value_parser = at_least_1::<usize>())]
    pub password_hash_concurrency: usize,
    /// How long a registration or login waits for a hashing slot before 429, in ms.
    #[arg(long, env = "PASSWORD_HASH_WAIT_MS", default_value_t = 1000)]
    pub password_hash_wait_ms: u64,
    /// Most actions of different players committed in one transaction; 1 commits every action on
    /// its own.
    #[arg(long, env = "GROUP_COMMIT_MAX_BATCH", default_value_t = GroupCommit::default().max_batch,
        value_parser = at_least_1::<usize>())]
    pub group_commit_max_batch: usize,
    /// How long a batch of more than one action waits for more before committing, in µs (at most
    /// 100000). A lone action never waits.
    #[arg(long, env = "GROUP_COMMIT_WINDOW_US", default_value_t = micros(GroupCommit::default().window),
        value_parser = clap::value_parser!(u64).range(0..=MAX_GROUP_COMMIT_WINDOW_US))]
    pub group_commit_window_us: u64,
    /// Actions allowed in a burst, per player.
    #[arg(long, env = "RATE_LIMIT_ACTION_BURST", default_value_t = 30, value_parser = at_least_1::<u32>())]
    pub rate_limit_action_burst: u32,
    /// Actions regained per second, per player.
    #[arg(long, env = "RATE_LIMIT_ACTION_PER_SEC", default_value_t = 10.0, value_parser = positive_rate)]
    pub rate_limit_action_per_sec: f64,
    /// Query actions (read-only, see sdk/ABI.md) allowed in a burst, per player; a bucket of their
    /// own, apart from the actions'.
    #[arg(long, env = "RATE_LIMIT_QUERY_BURST", default_value_t = 60, value_parser = at_least_1::<u32>())]
    pub rate_limit_query_burst: u32,
    /// Query actions regained per second, per player.
    #[arg(long, env = "RATE_LIMIT_QUERY_PER_SEC", default_value_t = 30.0, value_parser = positive_rate)]
    pub rate_limit_query_per_sec: f64,
    /// Stored versions kept per plugin, at least 2 (the active one and its rollback target); older
    /// ones are deleted after an upload, never the active one or the rollback target.
    #[arg(long, env = "PLUGIN_KEEP_VERSIONS", default_value_t = 10,
        value_parser = RangedU64ValueParser::<usize>::new().range(2..))]
    pub plugin_keep_versions: usize,
    /// Days the action log keeps each action's exact plugin call, for replay; 0 keeps them forever.
    /// Older rows keep everything else (idempotency, audit).
    #[arg(long, env = "ACTION_LOG_CALL_RETENTION_DAYS", default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(0..=36_500))]
    pub action_log_call_retention_days: u64,
}

/// The longest `GROUP_COMMIT_WINDOW_US`: a tenth of a second.
const MAX_GROUP_COMMIT_WINDOW_US: u64 = 100_000;

impl ServeArgs {
    /// The settings from these variables alone (names as in the environment, e.g. `("PORT", "0")`),
    /// every other one at its default; the process environment is not read. For tests and
    /// embedding. An empty value counts as unset.
    ///
    /// # Errors
    /// A [`ConfigError`] naming a variable that is not a setting or whose value is not valid.
    pub fn from_vars<K: AsRef<str>, V: AsRef<str>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError> {
        let named = Self::augment_args(clap::Command::new("cauldron"));
        let mut argv = vec![OsString::from("cauldron")];
        for (name, value) in vars {
            let (name, value) = (name.as_ref(), value.as_ref());
            let long = named
                .get_arguments()
                .find(|arg| arg.get_env() == Some(OsStr::new(name)))
                .and_then(|arg| arg.get_long())
                .ok_or_else(|| bad(name, "is not a setting of `cauldron serve`"))?;
            if !value.trim().is_empty() {
                argv.push(format!("--{long}={value}").into());
            }
        }
        let hermetic = named.clone().mut_args(|arg| arg.env(None::<&str>));
        let matches = hermetic
            .try_get_matches_from(argv)
            .map_err(|e| from_clap(&named, e))?;
        Self::from_arg_matches(&matches).map_err(|e| from_clap(&named, e))
    }
}

/// Clear the environment variable of every argument whose variable is set but blank, so it counts
/// as unset (compose's `env_file` turns `ADMIN_TOKEN=` into an empty variable).
fn unset_blank_env(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|arg| {
        let blank = arg
            .get_env()
            .and_then(std::env::var_os)
            .is_some_and(|v| v.to_string_lossy().trim().is_empty());
        if blank { arg.env(None::<&str>) } else { arg }
    })
    .mut_subcommands(unset_blank_env)
}

/// The environment variable of the argument clap names `--long <NAME>` in `cmd` or its subcommands,
/// and whether its values are secret.
fn variable_of(cmd: &clap::Command, shown: &str) -> Option<(String, bool)> {
    let long = shown
        .trim_start_matches('-')
        .split([' ', '='])
        .next()
        .unwrap_or_default();
    cmd.get_arguments()
        .find(|arg| arg.get_long() == Some(long))
        .and_then(|arg| {
            let env = arg.get_env()?.to_string_lossy().into_owned();
            Some((env, arg.is_hide_env_values_set()))
        })
        .or_else(|| cmd.get_subcommands().find_map(|sub| variable_of(sub, shown)))
}

/// A clap error about one value, as a [`ConfigError`] naming its variable; `None` for any other
/// error (help, version, an unknown flag), which clap reports itself.
fn value_error(cmd: &clap::Command, err: &clap::Error) -> Option<ConfigError> {
    if !matches!(err.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation) {
        return None;
    }
    let Some(ContextValue::String(shown)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let (var, secret) = variable_of(cmd, shown)?;
    let value = match err.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) if !secret => format!("`{v}`"),
        _ => "the value".to_owned(),
    };
    let why = match (err.get(ContextKind::ValidValue), std::error::Error::source(err)) {
        (Some(ContextValue::Strings(valid)), _) => format!("expected one of {}", valid.join(", ")),
        (_, Some(source)) => source.to_string(),
        _ => "not valid".to_owned(),
    };
    Some(ConfigError {
        var,
        message: format!("{value} is not valid: {why}"),
    })
}

/// Any clap error as a [`ConfigError`] (for the paths that never print help).
fn from_clap(cmd: &clap::Command, err: clap::Error) -> ConfigError {
    value_error(cmd, &err).unwrap_or_else(|| bad("(arguments)", err.to_string().trim().to_owned()))
}

/// A whole number of at least 1, of type `T`.
fn at_least_1<T>() -> RangedU64ValueParser<T>
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
    <T as TryFrom<u64>>::Error: std::error::Error + Send + Sync + 'static,
{
    RangedU64ValueParser::<T>::new().range(1..)
}

/// A finite number greater than zero.
fn positive_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n),
        _ => Err("not a positive number".to_owned()),
    }
}

/// A `tracing` filter that parses.
fn log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("not a log filter: {e}"))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Half the CPUs, at least one: password hashing then leaves the other half to everything else.
fn default_hash_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// A setting that cannot be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: String,
    /// What is wrong with it.
    pub message: String,
}

fn bad(var: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var: var.to_owned(),
        message: message.into(),
    }
}

/// Which kind of deployment this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    /// Local runs: a missing `JWT_SECRET` gets a random one (tokens die with the process).
    #[value(alias = "dev")]
    Development,
    /// Real players: secrets must be set and strong.
    #[value(alias = "prod")]
    Production,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[value(alias = "text")]
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `CAULDRON_WASM_PROFILER`: which profiler learns the names of compiled plugin functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WasmProfiler {
    /// No profiler: compiled plugin code stays anonymous.
    None,
    /// `perf`'s map file, `/tmp/perf-PID.map`, which `perf report` reads.
    Perfmap,
}

impl From<WasmProfiler> for Profiler {
    fn from(p: WasmProfiler) -> Self {
        match p {
            WasmProfiler::None => Profiler::None,
            WasmProfiler::Perfmap => Profiler::PerfMap,
        }
    }
}

/// A secret setting: its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Any text is a secret; whether it is strong enough is [`Config::from_args`]'s concern.
    fn parse(s: &str) -> Result<Self, std::convert::Infallible> {
        Ok(Self(s.to_owned()))
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A database URL whose scheme is one of the store's and whose options parse
/// (`postgres://`, `postgresql://` or `sqlite:`); `Debug` hides its password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    fn parse(s: &str) -> Result<Self, String> {
        let url = s.trim();
        let scheme = url.split_once(':').map(|(scheme, _)| scheme).unwrap_or_default();
        // Errors echo the scheme alone: the rest may hold a password.
        let options = match scheme {
            "postgres" | "postgresql" => sqlx::postgres::PgConnectOptions::from_str(url).map(drop),
            "sqlite" => sqlx::sqlite::SqliteConnectOptions::from_str(url).map(drop),
            _ => {
                return Err(format!(
                    "must start with postgres://, postgresql:// or sqlite: (got `{scheme}:`)"
                ));
            }
        };
        options.map_err(|_| format!("not a valid {scheme} URL"))?;
        Ok(Self(url.to_owned()))
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({})", redact(&self.0))
    }
}

/// A Redis URL that the Redis client accepts; `Debug` hides its password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    fn parse(s: &str) -> Result<Self, String> {
        let url = s.trim();
        redis::Client::open(url).map_err(|_| "not a Redis URL (redis://HOST:PORT)".to_owned())?;
        Ok(Self(url.to_owned()))
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisUrl({})", redact(&self.0))
    }
}

/// Which origins CORS allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cors {
    /// No CORS headers: only same-origin pages may call the API.
    SameOrigin,
    /// Any origin (`*`); credentials are bearer tokens, never cookies, so this leaks nothing.
    Any,
    /// These origins exactly.
    List(Vec<String>),
}

impl Cors {
    /// `*`, or comma-separated origins (`https://game.example.com`: no path, no trailing slash).
    fn parse(s: &str) -> Result<Self, String> {
        if s.trim() == "*" {
            return Ok(Self::Any);
        }
        let mut origins = Vec::new();
        for origin in s.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.ends_with('/')
                && axum::http::HeaderValue::from_str(origin).is_ok();
            if !ok {
                return Err(format!(
                    "`{origin}` is not an origin like https://game.example.com (no path, no trailing slash)"
                ));
            }
            origins.push(origin.to_owned());
        }
        Ok(if origins.is_empty() {
            Self::SameOrigin
        } else {
            Self::List(origins)
        })
    }
}

/// `MODULE_CACHE_DIR`: a folder, or `off` (also `none`) to keep compiled modules in memory only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheDir(pub Option<PathBuf>);

impl CacheDir {
    fn parse(s: &str) -> Result<Self, std::convert::Infallible> {
        Ok(Self(match s.trim() {
            "off" | "none" => None,
            dir => Some(PathBuf::from(dir)),
        }))
    }
}

/// `TRUSTED_PROXIES`: addresses and ranges, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<Cidr>);

impl TrustedProxies {
    /// A comma-separated list of addresses and ranges, or `none`.
    fn parse(list: &str) -> Result<Self, String> {
        if list.trim().eq_ignore_ascii_case("none") {
            return Ok(Self(Vec::new()));
        }
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                Cidr::parse(s).ok_or_else(|| {
                    format!("`{s}` is not an IP address or a range like 10.0.0.0/8 (or `none`)")
                })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// Where the HMAC key came from.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSecret {
    bytes: Vec<u8>,
    generated: bool,
}

impl JwtSecret {
    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether the key was generated for this process because `JWT_SECRET` was unset (development
    /// only): tokens then stop working at restart, and start-up says so once logging is up.
    pub fn is_generated(&self) -> bool {
        self.generated
    }
}

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtSecret(..)")
    }
}

/// A token bucket's shape as configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Requests allowed at once.
    pub burst: u32,
    /// Requests regained per second.
    pub per_sec: f64,
}

/// An address range: an address and how many of its leading bits a member shares (`10.0.0.0/8`,
/// `::1/128`). IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3`) count as their IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `ADDR` (the address alone) or `ADDR/PREFIX`; `None` if it is neither.
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr = addr.parse::<IpAddr>().ok()?.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
        };
        Some(Self { addr, prefix })
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The validated configuration the host runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Development or production.
    pub environment: Environment,
    /// Database URL (`postgres://` or `sqlite:`).
    pub database_url: String,
    /// How long start-up waits for the database.
    pub db_connect_timeout: Duration,
    /// Redis URL, if any.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel.
    pub redis_key_prefix: String,
    /// Listen address.
    pub listen: SocketAddr,
    /// Log filter directives.
    pub log_level: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Token signing key.
    pub jwt_secret: JwtSecret,
    /// Token lifetime.
    pub jwt_ttl: Duration,
    /// Admin bearer token, if any.
    pub admin_token: Option<String>,
    /// Plugins folder.
    pub plugins_dir: PathBuf,
    /// Web client folder.
    pub web_dir: PathBuf,
    /// CORS policy.
    pub cors: Cors,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Longest request.
    pub request_timeout: Duration,
    /// Longest drain at shutdown.
    pub shutdown_timeout: Duration,
    /// The plugin runtime's settings: sandbox limits, module cache, profiler.
    pub plugin_limits: Limits,
    /// Login attempts per username.
    pub login_rate: Bucket,
    /// Login attempts per client address.
    pub login_addr_rate: Bucket,
    /// Registrations per client address.
    pub register_rate: Bucket,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<Cidr>,
    /// Password hashes computed at once.
    pub password_hash_concurrency: usize,
    /// Longest wait for a hashing slot before 429.
    pub password_hash_wait: Duration,
    /// How actions are grouped into transactions.
    pub group_commit: GroupCommit,
    /// Actions per player.
    pub action_rate: Bucket,
    /// Query actions per player: a separate bucket, so reading screens never uses up the budget for
    /// writes; more generous, since a query writes nothing.
    pub query_rate: Bucket,
    /// Stored versions kept per plugin (at least 2).
    pub plugin_keep_versions: usize,
    /// How long the action log keeps each action's exact call; `None` keeps them forever.
    pub action_log_call_retention: Option<Duration>,
}

impl Config {
    /// The configuration from these variables alone, every other setting at its default (see
    /// [`ServeArgs::from_vars`]): what tests build a host from.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first bad variable.
    pub fn from_vars<K: AsRef<str>, V: AsRef<str>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError> {
        Self::from_args(ServeArgs::from_vars(vars)?)
    }

    /// Check the rules between settings and derive the configuration the host uses.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable at fault: a missing, short or sample `JWT_SECRET` or
    /// `ADMIN_TOKEN` in production.
    pub fn from_args(args: ServeArgs) -> Result<Self, ConfigError> {
        let environment = args.cauldron_env;
        let jwt_secret = jwt_secret(environment, args.jwt_secret.as_ref().map(Secret::expose))?;
        let admin_token = args.admin_token.map(|t| t.0);
        if environment == Environment::Production
            && let Some(token) = &admin_token
            && (token.len() < MIN_SECRET_LEN || is_sample(token))
        {
            return Err(bad(
                "ADMIN_TOKEN",
                format!(
                    "in production it must be at least {MIN_SECRET_LEN} characters and not a sample value"
                ),
            ));
        }
        let database_url = match (&args.database_url, &args.db_host) {
            (Some(url), _) => url.as_str().to_owned(),
            (None, Some(host)) => {
                let auth = match &args.db_password {
                    Some(pw) => format!("{}:{}", userinfo(&args.db_user), userinfo(pw.expose())),
                    None => userinfo(&args.db_user),
                };
                let url = format!(
                    "postgres://{auth}@{host}:{}/{}",
                    args.db_port,
                    userinfo(&args.db_name)
                );
                DatabaseUrl::parse(&url).map_err(|e| bad("DB_HOST", e))?;
                url
            }
            (None, None) => "sqlite://data/cauldron.db".to_owned(),
        };
        let runtime_defaults = Limits::default();
        Ok(Self {
            environment,
            database_url,
            db_connect_timeout: Duration::from_secs(args.db_connect_timeout_secs),
            redis_url: args.redis_url.map(|u| u.0),
            redis_key_prefix: args.redis_key_prefix,
            listen: SocketAddr::new(args.bind_addr, args.port),
            log_level: args.log_level,
            log_format: args.log_format,
            jwt_secret,
            jwt_ttl: Duration::from_secs(args.jwt_ttl_secs),
            admin_token,
            plugins_dir: args.plugins_dir,
            web_dir: args.web_dir,
            cors: args.cors_origins.unwrap_or(Cors::SameOrigin),
            max_body_bytes: args.max_body_bytes,
            request_timeout: Duration::from_secs(args.request_timeout_secs),
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout_secs),
            plugin_limits: Limits {
                fuel: args.plugin_fuel,
                deadline: Duration::from_millis(args.plugin_deadline_ms),
                memory_bytes: args.plugin_memory_mb << 20,
                max_output_bytes: args.plugin_max_output_bytes,
                cache_dir: args.module_cache_dir.0,
                profiler: args.cauldron_wasm_profiler.into(),
                ..runtime_defaults
            },
            login_rate: Bucket {
                burst: args.rate_limit_login_burst,
                per_sec: args.rate_limit_login_per_min / 60.0,
            },
            login_addr_rate: Bucket {
                burst: args.rate_limit_login_addr_burst,
                per_sec: args.rate_limit_login_addr_per_min / 60.0,
            },
            register_rate: Bucket {
                burst: args.rate_limit_register_burst,
                per_sec: args.rate_limit_register_per_min / 60.0,
            },
            trusted_proxies: args.trusted_proxies.0,
            password_hash_concurrency: args.password_hash_concurrency,
            password_hash_wait: Duration::from_millis(args.password_hash_wait_ms),
            group_commit: GroupCommit {
                max_batch: args.group_commit_max_batch,
                window: Duration::from_micros(args.group_commit_window_us),
                ..GroupCommit::default()
            },
            action_rate: Bucket {
                burst: args.rate_limit_action_burst,
                per_sec: args.rate_limit_action_per_sec,
            },
            query_rate: Bucket {
                burst: args.rate_limit_query_burst,
                per_sec: args.rate_limit_query_per_sec,
            },
            plugin_keep_versions: args.plugin_keep_versions,
            action_log_call_retention: match args.action_log_call_retention_days {
                0 => None,
                days => Some(Duration::from_secs(days * 24 * 3600)),
            },
        })
    }

    /// The SQLite file this configuration uses, if it is one (to create its folder).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let rest = self.database_url.strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split('?').next().unwrap_or(rest);
        (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
    }

    /// The database URL without its password, for logs.
    pub fn database_url_redacted(&self) -> String {
        redact(&self.database_url)
    }
}

/// Whether `secret` is a well-known sample value.
fn is_sample(secret: &str) -> bool {
    KNOWN_SECRETS.contains(&secret.to_ascii_lowercase().as_str())
}

/// The token key: `JWT_SECRET`, which production requires strong; in development, when unset, a
/// random key for this process.
fn jwt_secret(environment: Environment, raw: Option<&str>) -> Result<JwtSecret, ConfigError> {
    match (environment, raw) {
        (Environment::Production, None) => Err(bad(
            "JWT_SECRET",
            format!(
                "is required in production (at least {MIN_SECRET_LEN} random characters, e.g. `openssl rand -hex 32`)"
            ),
        )),
        (Environment::Production, Some(s)) if s.len() < MIN_SECRET_LEN => Err(bad(
            "JWT_SECRET",
            format!(
                "is {} characters; production needs at least {MIN_SECRET_LEN}",
                s.len()
            ),
        )),
        (Environment::Production, Some(s)) if is_sample(s) => Err(bad(
            "JWT_SECRET",
            "is a well-known sample value; generate a random one",
        )),
        (_, Some(s)) => Ok(JwtSecret {
            bytes: s.as_bytes().to_vec(),
            generated: false,
        }),
        (Environment::Development, None) => {
            // A random key per process: fine for one developer, and nobody can forge tokens with
            // a value copied from a README. Tokens stop working at restart, which says why in the log.
            let key: [u8; 32] = rand::random();
            Ok(JwtSecret {
                bytes: key.to_vec(),
                generated: true,
            })
        }
    }
}

/// Percent-encode a URL userinfo part (user or password) so any character is safe in it.
fn userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `scheme://user:***@host/...` for a URL with a password; other URLs unchanged.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((auth, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(vars.iter().copied())
    }

    /// Every variable of `cauldron serve`, with its default when it has one.
    fn variables() -> BTreeMap<String, Option<String>> {
        ServeArgs::augment_args(clap::Command::new("cauldron"))
            .get_arguments()
            .filter_map(|arg| {
                let env = arg.get_env()?.to_string_lossy().into_owned();
                let default = arg
                    .get_default_values()
                    .first()
                    .map(|v| v.to_string_lossy().into_owned());
                Some((env, default))
            })
            .collect()
    }

    #[test]
    fn defaults_are_a_local_sqlite_game_on_3000() {
        let c = config(&[]).unwrap();
        assert_eq!(c.environment, Environment::Development);
        assert_eq!(c.database_url, "sqlite://data/cauldron.db");
        assert_eq!(c.sqlite_path(), Some(PathBuf::from("data/cauldron.db")));
        assert_eq!(c.listen, "0.0.0.0:3000".parse().unwrap());
        assert_eq!(c.log_level, "info");
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert_eq!(c.cors, Cors::SameOrigin);
        assert_eq!(c.jwt_secret.as_bytes().len(), 32);
        assert!(c.jwt_secret.is_generated());
        assert_eq!(c.admin_token, None);
        assert_eq!(c.redis_url, None);
        assert_eq!(c.redis_key_prefix, crate::cache::DEFAULT_KEY_PREFIX);
        assert_eq!(c.jwt_ttl, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(c.db_connect_timeout, Duration::from_secs(60));
        assert_eq!(c.max_body_bytes, 64 * 1024);
        assert_eq!(c.group_commit, GroupCommit::default());
        assert_eq!(
            c.action_rate,
            Bucket {
                burst: 30,
                per_sec: 10.0
            }
        );
        assert_eq!(
            c.query_rate,
            Bucket {
                burst: 60,
                per_sec: 30.0
            }
        );
        // The plugin limits are the runtime's own defaults.
        let runtime = Limits::default();
        let l = &c.plugin_limits;
        assert_eq!(
            (l.fuel, l.deadline, l.memory_bytes, l.max_output_bytes),
            (
                runtime.fuel,
                runtime.deadline,
                runtime.memory_bytes,
                runtime.max_output_bytes
            )
        );
        assert_eq!(l.cache_dir, Some(PathBuf::from("data/module-cache")));
        assert_eq!(l.profiler, Profiler::None);
    }

    #[test]
    fn settings_reach_the_configuration() {
        let c = config(&[
            ("CAULDRON_ENV", "Prod"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ("PORT", "0"),
            ("BIND_ADDR", "::1"),
            ("LOG_FORMAT", "JSON"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("PLUGIN_MEMORY_MB", "4096"),
            ("PLUGIN_FUEL", "7"),
            ("MODULE_CACHE_DIR", "off"),
            ("CAULDRON_WASM_PROFILER", "perfmap"),
            ("GROUP_COMMIT_MAX_BATCH", "1"),
            ("GROUP_COMMIT_WINDOW_US", "100000"),
        ])
        .unwrap();
        assert_eq!(c.environment, Environment::Production);
        assert!(!c.jwt_secret.is_generated());
        assert_eq!(c.listen, "[::1]:0".parse().unwrap());
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
        assert_eq!(c.plugin_limits.memory_bytes, 4096 << 20);
        assert_eq!(c.plugin_limits.fuel, 7);
        assert_eq!(c.plugin_limits.cache_dir, None);
        assert_eq!(c.plugin_limits.profiler, Profiler::PerfMap);
        assert!(!c.group_commit.enabled());
        assert_eq!(c.group_commit.window, Duration::from_millis(100));
    }

    #[test]
    fn every_bad_value_names_its_variable() {
        for (var, val) in [
            ("PORT", "http"),
            ("PORT", "70000"),
            ("LOG_FORMAT", "xml"),
            ("LOG_LEVEL", "info,[["),
            ("CAULDRON_ENV", "staging"),
            ("DATABASE_URL", "mysql://x"),
            ("DATABASE_URL", "postgres://u@h:port/d"),
            ("REDIS_URL", "http://cache"),
            ("DB_PORT", "five"),
            ("PLUGIN_FUEL", "-1"),
            ("PLUGIN_FUEL", "0"),
            ("PLUGIN_MEMORY_MB", "0"),
            ("PLUGIN_MEMORY_MB", "4097"),
            ("PLUGIN_DEADLINE_MS", "soon"),
            ("MAX_BODY_BYTES", "lots"),
            ("CORS_ORIGINS", "example.com"),
            ("CAULDRON_WASM_PROFILER", "vtune"),
            ("RATE_LIMIT_ACTION_PER_SEC", "NaN"),
            ("RATE_LIMIT_QUERY_BURST", "0"),
            ("RATE_LIMIT_QUERY_PER_SEC", "inf"),
            ("BIND_ADDR", "localhost:3000"),
            ("DB_CONNECT_TIMEOUT_SECS", "0"),
            ("RATE_LIMIT_REGISTER_BURST", "0"),
            ("RATE_LIMIT_REGISTER_PER_MIN", "-1"),
            ("RATE_LIMIT_LOGIN_ADDR_PER_MIN", "often"),
            ("TRUSTED_PROXIES", "nginx"),
            ("TRUSTED_PROXIES", "10.0.0.0/33"),
            ("TRUSTED_PROXIES", "127.0.0.1, ::1/129"),
            ("PASSWORD_HASH_CONCURRENCY", "0"),
            ("PASSWORD_HASH_WAIT_MS", "soon"),
            ("GROUP_COMMIT_MAX_BATCH", "0"),
            ("GROUP_COMMIT_WINDOW_US", "200000"),
            ("NO_SUCH_SETTING", "1"),
        ] {
            let err = config(&[(var, val)]).expect_err(var);
            assert_eq!(err.var, var, "{err}");
        }
        let err = config(&[("PORT", "70000")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "PORT: `70000` is not valid: 70000 is not in 0..=65535"
        );
        let err = config(&[("LOG_FORMAT", "xml")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "LOG_FORMAT: `xml` is not valid: expected one of pretty, json"
        );
    }

    #[test]
    fn a_bad_url_never_echoes_its_password() {
        for url in ["mysql://u:hunter2@h/d", "postgres://u:hunter2@h:port/d"] {
            let err = config(&[("DATABASE_URL", url)]).unwrap_err();
            assert_eq!(err.var, "DATABASE_URL");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
        let args = ServeArgs::from_vars([("DATABASE_URL", "postgres://u:hunter2@h/d")]).unwrap();
        assert!(!format!("{args:?}").contains("hunter2"));
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        let c = config(&[
            ("ADMIN_TOKEN", ""),
            ("PORT", " "),
            ("REDIS_URL", ""),
            ("JWT_SECRET", ""),
        ])
        .unwrap();
        assert_eq!(c.admin_token, None);
        assert_eq!(c.listen.port(), 3000);
        assert_eq!(c.redis_url, None);
        assert!(c.jwt_secret.is_generated());
    }

    #[test]
    fn production_refuses_missing_short_or_sample_secrets() {
        let prod = ("CAULDRON_ENV", "production");
        for secret in [
            None,
            Some(""),
            Some("short"),
            Some("please-change-this-secret-in-production"),
        ] {
            let mut vars = vec![prod];
            if let Some(s) = secret {
                vars.push(("JWT_SECRET", s));
            }
            assert_eq!(config(&vars).expect_err("weak secret").var, "JWT_SECRET");
        }
        let strong = "0123456789abcdef0123456789abcdef";
        assert!(config(&[prod, ("JWT_SECRET", strong)]).is_ok());
        let err =
            config(&[prod, ("JWT_SECRET", strong), ("ADMIN_TOKEN", "admin")]).expect_err("weak admin token");
        assert_eq!(err.var, "ADMIN_TOKEN");
        // Development takes any secret, and makes one up when there is none.
        assert!(config(&[("JWT_SECRET", "short"), ("ADMIN_TOKEN", "admin")]).is_ok());
    }

    #[test]
    fn seed_db_variables_build_a_postgres_url_with_escaped_password() {
        let c = config(&[
            ("DB_HOST", "db"),
            ("DB_PASSWORD", "p@ss:word"),
            ("DB_NAME", "game"),
        ])
        .unwrap();
        assert_eq!(c.database_url, "postgres://postgres:p%40ss%3Aword@db:5432/game");
        assert_eq!(c.database_url_redacted(), "postgres://postgres:***@db:5432/game");
        let c = config(&[("DATABASE_URL", "postgres://u@h/d"), ("DB_HOST", "ignored")]).unwrap();
        assert_eq!(c.database_url, "postgres://u@h/d");
        let c = config(&[("DB_NAME", "ignored without DB_HOST")]).unwrap();
        assert_eq!(c.database_url, "sqlite://data/cauldron.db");
    }

    #[test]
    fn trusted_proxies_default_to_loopback_and_private_ranges() {
        let trusts = |c: &Config, ip: &str| {
            let ip: IpAddr = ip.parse().unwrap();
            c.trusted_proxies.iter().any(|r| r.contains(ip))
        };
        let c = config(&[]).unwrap();
        for ip in [
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "172.18.0.5",
            "192.168.1.1",
            "fd00::1",
            "::ffff:172.18.0.5",
        ] {
            assert!(trusts(&c, ip), "{ip}");
        }
        for ip in ["203.0.113.9", "172.32.0.1", "8.8.8.8", "2001:db8::1"] {
            assert!(!trusts(&c, ip), "{ip}");
        }
        let c = config(&[("TRUSTED_PROXIES", "192.0.2.10, 2001:db8::/32")]).unwrap();
        assert!(trusts(&c, "192.0.2.10") && trusts(&c, "2001:db8:ffff::1"));
        assert!(!trusts(&c, "192.0.2.11") && !trusts(&c, "127.0.0.1"));
        assert!(
            config(&[("TRUSTED_PROXIES", "none")])
                .unwrap()
                .trusted_proxies
                .is_empty()
        );
        let all = config(&[("TRUSTED_PROXIES", "0.0.0.0/0")]).unwrap();
        assert!(trusts(&all, "203.0.113.9") && !trusts(&all, "2001:db8::1"));
    }

    #[test]
    fn auth_limits_have_defaults_and_take_fractions_per_minute() {
        let c = config(&[]).unwrap();
        assert_eq!(c.register_rate.burst, 10);
        assert!(c.password_hash_concurrency >= 1);
        assert_eq!(c.password_hash_wait, Duration::from_secs(1));
        let c = config(&[
            ("RATE_LIMIT_REGISTER_PER_MIN", "0.25"),
            ("PASSWORD_HASH_CONCURRENCY", "3"),
        ])
        .unwrap();
        assert!((c.register_rate.per_sec - 0.25 / 60.0).abs() < 1e-12);
        assert_eq!(c.password_hash_concurrency, 3);
    }

    #[test]
    fn cors_lists_and_wildcard() {
        let c = config(&[("CORS_ORIGINS", "https://a.example, http://localhost:5173")]).unwrap();
        assert_eq!(
            c.cors,
            Cors::List(vec!["https://a.example".into(), "http://localhost:5173".into()])
        );
        assert_eq!(config(&[("CORS_ORIGINS", "*")]).unwrap().cors, Cors::Any);
    }

    #[test]
    fn the_command_line_serves_by_default_and_takes_flags() {
        // Flags win over the environment, so these hold whatever the test's environment is.
        let cli = Cli::try_parse_from(["cauldron", "--port", "4000"]).unwrap();
        let Command::Serve(args) = cli.into_command() else {
            panic!("not serve");
        };
        assert_eq!(args.port, 4000);
        let cli = Cli::try_parse_from(["cauldron", "serve", "--log-format", "json"]).unwrap();
        let Command::Serve(args) = cli.into_command() else {
            panic!("not serve");
        };
        assert_eq!(args.log_format, LogFormat::Json);
        let cli = Cli::try_parse_from(["cauldron", "migrate", "--database-url", "sqlite::memory:"]).unwrap();
        let Command::Migrate(args) = cli.into_command() else {
            panic!("not migrate");
        };
        assert_eq!(args.database_url.map(|u| u.0).as_deref(), Some("sqlite::memory:"));
        Cli::command().debug_assert();
    }

    /// `deploy/.env.example` documents exactly the variables of `cauldron serve`, and each line
    /// `# NAME=VALUE` shows the default, unless docker-compose.yml sets the variable (then it shows
    /// what compose sets) or the default depends on the machine.
    #[test]
    fn env_example_lists_every_variable_with_its_default() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/");
        let example = std::fs::read_to_string(format!("{root}.env.example")).unwrap();
        let compose = std::fs::read_to_string(format!("{root}docker-compose.yml")).unwrap();
        // Variables of compose itself, not of the host.
        let compose_only = [
            "POSTGRES_DB",
            "POSTGRES_USER",
            "POSTGRES_PASSWORD",
            "HTTP_PORT",
            "HTTP_BIND",
        ];
        let machine_dependent = ["PASSWORD_HASH_CONCURRENCY"];
        let variables = variables();
        let mut documented = BTreeMap::new();
        for line in example.lines() {
            let line = line.trim_start_matches('#').trim();
            let Some((name, value)) = line.split_once('=') else {
                continue;
            };
            let is_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if is_name && !compose_only.contains(&name) {
                documented.insert(name.to_owned(), value.to_owned());
            }
        }
        assert_eq!(
            documented.keys().collect::<Vec<_>>(),
            variables.keys().collect::<Vec<_>>(),
            "deploy/.env.example and ServeArgs list different variables"
        );
        for (name, shown) in &documented {
            let set_by_compose = compose.contains(&format!(" {name}:"));
            if let Some(default) = &variables[name]
                && !shown.is_empty()
                && !set_by_compose
                && !machine_dependent.contains(&name.as_str())
            {
                assert_eq!(
                    shown, default,
                    "deploy/.env.example shows another default for {name}"
                );
            }
        }
    }
}
