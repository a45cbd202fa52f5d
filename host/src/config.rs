//! Settings from the environment (and `.env`), read and validated once at start-up.
//!
//! Two steps, as ripgrep splits "low" and "high" arguments: [`Cli`] is what clap parses (every
//! setting a raw string from a flag or its environment variable, so parsing itself never fails on a
//! value), and [`Config::from_settings`] turns it into typed values, refusing every bad one with a
//! message that names its variable. Nothing else in the host reads the environment.
//!
//! `--help` lists every variable; `deploy/.env.example` documents them for operators.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

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

/// `cauldron`: the game server host.
#[derive(Debug, Parser)]
#[command(name = "cauldron", version, about)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Every setting, from flags or environment variables.
    #[command(flatten)]
    pub settings: Settings,
}

/// The subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Serve the game (the default).
    Serve,
    /// Bring the database schema up to date, then exit.
    Migrate,
}

/// Every setting as given, unvalidated. Each flag falls back to its environment variable.
#[derive(Debug, Clone, Default, Args)]
pub struct Settings {
    /// `development` (default) or `production`; production refuses unsafe secrets.
    #[arg(long, env = "CAULDRON_ENV", global = true)]
    pub cauldron_env: Option<String>,
    /// Database URL: `postgres://...` or `sqlite:path`. Default: an SQLite file `data/cauldron.db`.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// PostgreSQL host, when DATABASE_URL is not set (with DB_PORT, DB_NAME, DB_USER, DB_PASSWORD).
    #[arg(long, env = "DB_HOST", global = true)]
    pub db_host: Option<String>,
    /// PostgreSQL port (default 5432).
    #[arg(long, env = "DB_PORT", global = true)]
    pub db_port: Option<String>,
    /// PostgreSQL database name (default cauldron).
    #[arg(long, env = "DB_NAME", global = true)]
    pub db_name: Option<String>,
    /// PostgreSQL user (default postgres).
    #[arg(long, env = "DB_USER", global = true)]
    pub db_user: Option<String>,
    /// PostgreSQL password.
    #[arg(long, env = "DB_PASSWORD", global = true, hide_env_values = true)]
    pub db_password: Option<String>,
    /// How long start-up waits for the database, in seconds (default 60).
    #[arg(long, env = "DB_CONNECT_TIMEOUT_SECS", global = true)]
    pub db_connect_timeout_secs: Option<String>,
    /// Redis URL; unset means one node with in-process cache, pub/sub and rate limits.
    #[arg(long, env = "REDIS_URL", global = true, hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel (default `cauldron:`); hosts of one deployment share it.
    #[arg(long, env = "REDIS_KEY_PREFIX", global = true)]
    pub redis_key_prefix: Option<String>,
    /// Address to listen on (default 0.0.0.0).
    #[arg(long, env = "BIND_ADDR", global = true)]
    pub bind_addr: Option<String>,
    /// Port to listen on (default 3000).
    #[arg(long, env = "PORT", global = true)]
    pub port: Option<String>,
    /// Log filter, e.g. `info` or `cauldron_host=debug,tower_http=info` (default info).
    #[arg(long, env = "LOG_LEVEL", global = true)]
    pub log_level: Option<String>,
    /// `pretty` (default) or `json`.
    #[arg(long, env = "LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
    /// Key for signing tokens (HS256); required in production, at least 32 characters.
    #[arg(long, env = "JWT_SECRET", global = true, hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// How long a token is valid, in seconds (default 7 days).
    #[arg(long, env = "JWT_TTL_SECS", global = true)]
    pub jwt_ttl_secs: Option<String>,
    /// Bearer token for the admin API; unset disables token access to it.
    #[arg(long, env = "ADMIN_TOKEN", global = true, hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Folder of plugin modules (`NAME.wasm` + `NAME/*.toml`), watched for changes (default target/plugins,
    /// where `cargo xtask build-plugins` puts them).
    #[arg(long, env = "PLUGINS_DIR", global = true)]
    pub plugins_dir: Option<String>,
    /// Folder of the web client, served at `/` when it exists (default web).
    #[arg(long, env = "WEB_DIR", global = true)]
    pub web_dir: Option<String>,
    /// Comma-separated origins allowed by CORS, or `*`; unset allows none (same origin only).
    #[arg(long, env = "CORS_ORIGINS", global = true)]
    pub cors_origins: Option<String>,
    /// Largest request body, in bytes (default 65536).
    #[arg(long, env = "MAX_BODY_BYTES", global = true)]
    pub max_body_bytes: Option<String>,
    /// Longest a request may take before it is stopped with 504 `timeout`, in seconds (default 30).
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", global = true)]
    pub request_timeout_secs: Option<String>,
    /// How long shutdown waits for in-flight requests, in seconds (default 10).
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", global = true)]
    pub shutdown_timeout_secs: Option<String>,
    /// Fuel per plugin call (about one unit per wasm instruction).
    #[arg(long, env = "PLUGIN_FUEL", global = true)]
    pub plugin_fuel: Option<String>,
    /// Wall-clock budget per plugin call, in ms (default 500).
    #[arg(long, env = "PLUGIN_DEADLINE_MS", global = true)]
    pub plugin_deadline_ms: Option<String>,
    /// Largest plugin memory, in MiB (default 64).
    #[arg(long, env = "PLUGIN_MEMORY_MB", global = true)]
    pub plugin_memory_mb: Option<String>,
    /// Largest plugin output accepted, in bytes.
    #[arg(long, env = "PLUGIN_MAX_OUTPUT_BYTES", global = true)]
    pub plugin_max_output_bytes: Option<String>,
    /// Folder for compiled plugin modules (default data/module-cache); `off` keeps them in memory.
    #[arg(long, env = "MODULE_CACHE_DIR", global = true)]
    pub module_cache_dir: Option<String>,
    /// Login attempts allowed in a burst, per username (default 10).
    #[arg(long, env = "RATE_LIMIT_LOGIN_BURST", global = true)]
    pub rate_limit_login_burst: Option<String>,
    /// Login attempts regained per minute, per username (default 10).
    #[arg(long, env = "RATE_LIMIT_LOGIN_PER_MIN", global = true)]
    pub rate_limit_login_per_min: Option<String>,
    /// Login attempts allowed in a burst, per client address (default 30).
    #[arg(long, env = "RATE_LIMIT_LOGIN_ADDR_BURST", global = true)]
    pub rate_limit_login_addr_burst: Option<String>,
    /// Login attempts regained per minute, per client address (default 20).
    #[arg(long, env = "RATE_LIMIT_LOGIN_ADDR_PER_MIN", global = true)]
    pub rate_limit_login_addr_per_min: Option<String>,
    /// Registrations allowed in a burst, per client address (default 10).
    #[arg(long, env = "RATE_LIMIT_REGISTER_BURST", global = true)]
    pub rate_limit_register_burst: Option<String>,
    /// Registrations regained per minute, per client address (default 0.5: one every two minutes).
    #[arg(long, env = "RATE_LIMIT_REGISTER_PER_MIN", global = true)]
    pub rate_limit_register_per_min: Option<String>,
    /// Comma-separated addresses or CIDR ranges of proxies whose `X-Forwarded-For` is believed
    /// (default: loopback and private ranges); `none` believes no proxy.
    #[arg(long, env = "TRUSTED_PROXIES", global = true)]
    pub trusted_proxies: Option<String>,
    /// Password hashes (registration, login) computed at once (default: half the CPUs, at least 1).
    #[arg(long, env = "PASSWORD_HASH_CONCURRENCY", global = true)]
    pub password_hash_concurrency: Option<String>,
    /// How long a registration or login waits for a hashing slot before 429, in ms (default 1000).
    #[arg(long, env = "PASSWORD_HASH_WAIT_MS", global = true)]
    pub password_hash_wait_ms: Option<String>,
    /// Most actions of different players committed in one transaction (default 32; 1 commits every
    /// action on its own).
    #[arg(long, env = "GROUP_COMMIT_MAX_BATCH", global = true)]
    pub group_commit_max_batch: Option<String>,
    /// How long a batch of more than one action waits for more before committing, in µs (default
    /// 1000; at most 100000). A lone action never waits.
    #[arg(long, env = "GROUP_COMMIT_WINDOW_US", global = true)]
    pub group_commit_window_us: Option<String>,
    /// Actions allowed in a burst, per player (default 30).
    #[arg(long, env = "RATE_LIMIT_ACTION_BURST", global = true)]
    pub rate_limit_action_burst: Option<String>,
    /// Actions regained per second, per player (default 10).
    #[arg(long, env = "RATE_LIMIT_ACTION_PER_SEC", global = true)]
    pub rate_limit_action_per_sec: Option<String>,
    /// Query actions (read-only, see sdk/ABI.md) allowed in a burst, per player; a bucket of their
    /// own, apart from the actions' (default 60).
    #[arg(long, env = "RATE_LIMIT_QUERY_BURST", global = true)]
    pub rate_limit_query_burst: Option<String>,
    /// Query actions regained per second, per player (default 30).
    #[arg(long, env = "RATE_LIMIT_QUERY_PER_SEC", global = true)]
    pub rate_limit_query_per_sec: Option<String>,
    /// Stored versions kept per plugin (default 10, at least 2); older ones are deleted after an
    /// upload, never the active one or the rollback target.
    #[arg(long, env = "PLUGIN_KEEP_VERSIONS", global = true)]
    pub plugin_keep_versions: Option<String>,
    /// Days the action log keeps each action's exact plugin call, for replay (default 30; 0 keeps
    /// them forever). Older rows keep everything else (idempotency, audit).
    #[arg(long, env = "ACTION_LOG_CALL_RETENTION_DAYS", global = true)]
    pub action_log_call_retention_days: Option<String>,
}

impl Settings {
    /// Settings from a lookup function instead of the process environment (tests, embedding).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            cauldron_env: get("CAULDRON_ENV"),
            database_url: get("DATABASE_URL"),
            db_host: get("DB_HOST"),
            db_port: get("DB_PORT"),
            db_name: get("DB_NAME"),
            db_user: get("DB_USER"),
            db_password: get("DB_PASSWORD"),
            db_connect_timeout_secs: get("DB_CONNECT_TIMEOUT_SECS"),
            redis_url: get("REDIS_URL"),
            redis_key_prefix: get("REDIS_KEY_PREFIX"),
            bind_addr: get("BIND_ADDR"),
            port: get("PORT"),
            log_level: get("LOG_LEVEL"),
            log_format: get("LOG_FORMAT"),
            jwt_secret: get("JWT_SECRET"),
            jwt_ttl_secs: get("JWT_TTL_SECS"),
            admin_token: get("ADMIN_TOKEN"),
            plugins_dir: get("PLUGINS_DIR"),
            web_dir: get("WEB_DIR"),
            cors_origins: get("CORS_ORIGINS"),
            max_body_bytes: get("MAX_BODY_BYTES"),
            request_timeout_secs: get("REQUEST_TIMEOUT_SECS"),
            shutdown_timeout_secs: get("SHUTDOWN_TIMEOUT_SECS"),
            plugin_fuel: get("PLUGIN_FUEL"),
            plugin_deadline_ms: get("PLUGIN_DEADLINE_MS"),
            plugin_memory_mb: get("PLUGIN_MEMORY_MB"),
            plugin_max_output_bytes: get("PLUGIN_MAX_OUTPUT_BYTES"),
            module_cache_dir: get("MODULE_CACHE_DIR"),
            rate_limit_login_burst: get("RATE_LIMIT_LOGIN_BURST"),
            rate_limit_login_per_min: get("RATE_LIMIT_LOGIN_PER_MIN"),
            rate_limit_login_addr_burst: get("RATE_LIMIT_LOGIN_ADDR_BURST"),
            rate_limit_login_addr_per_min: get("RATE_LIMIT_LOGIN_ADDR_PER_MIN"),
            rate_limit_register_burst: get("RATE_LIMIT_REGISTER_BURST"),
            rate_limit_register_per_min: get("RATE_LIMIT_REGISTER_PER_MIN"),
            trusted_proxies: get("TRUSTED_PROXIES"),
            password_hash_concurrency: get("PASSWORD_HASH_CONCURRENCY"),
            password_hash_wait_ms: get("PASSWORD_HASH_WAIT_MS"),
            group_commit_max_batch: get("GROUP_COMMIT_MAX_BATCH"),
            group_commit_window_us: get("GROUP_COMMIT_WINDOW_US"),
            rate_limit_action_burst: get("RATE_LIMIT_ACTION_BURST"),
            rate_limit_action_per_sec: get("RATE_LIMIT_ACTION_PER_SEC"),
            rate_limit_query_burst: get("RATE_LIMIT_QUERY_BURST"),
            rate_limit_query_per_sec: get("RATE_LIMIT_QUERY_PER_SEC"),
            plugin_keep_versions: get("PLUGIN_KEEP_VERSIONS"),
            action_log_call_retention_days: get("ACTION_LOG_CALL_RETENTION_DAYS"),
        }
    }
}

/// A setting that cannot be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong with it.
    pub message: String,
}

fn bad(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

/// Which kind of deployment this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Local runs: a missing `JWT_SECRET` gets a random one (tokens die with the process).
    Development,
    /// Real players: secrets must be set and strong.
    Production,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
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

/// What `TRUSTED_PROXIES` is when unset: loopback and the private ranges, where a reverse proxy on
/// the same machine or network (nginx on the compose network of `deploy/`) connects from.
pub const DEFAULT_TRUSTED_PROXIES: &str =
    "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7";

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

/// `TRUSTED_PROXIES`: a comma-separated list of addresses and ranges, or `none`.
fn trusted_proxies(raw: &Option<String>) -> Result<Vec<Cidr>, ConfigError> {
    let list = value(raw).unwrap_or(DEFAULT_TRUSTED_PROXIES);
    if list.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            Cidr::parse(s).ok_or_else(|| {
                bad(
                    "TRUSTED_PROXIES",
                    format!("`{s}` is not an IP address or a range like 10.0.0.0/8 (or `none`)"),
                )
            })
        })
        .collect()
}

/// Half the CPUs, at least one: password hashing then leaves the other half to everything else.
fn default_hash_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// Plugin sandbox limits as configured (turned into `cauldron_runtime::Limits` by the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct PluginLimits {
    /// Fuel per call; `None` keeps the runtime's default.
    pub fuel: Option<u64>,
    /// Wall-clock budget per call.
    pub deadline: Duration,
    /// Largest linear memory, bytes.
    pub memory_bytes: usize,
    /// Largest output accepted, bytes; `None` keeps the runtime's default.
    pub max_output_bytes: Option<usize>,
    /// Compiled-module cache folder; `None` keeps modules in memory only.
    pub cache_dir: Option<PathBuf>,
}

/// The validated configuration.
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
    /// Plugin sandbox limits.
    pub plugin_limits: PluginLimits,
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
    pub group_commit: crate::store::GroupCommit,
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

/// A trimmed, non-empty value.
fn value(raw: &Option<String>) -> Option<&str> {
    raw.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn number<T: std::str::FromStr>(
    var: &'static str,
    raw: &Option<String>,
    default: T,
) -> Result<T, ConfigError> {
    match value(raw) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| bad(var, format!("`{v}` is not a valid non-negative whole number"))),
    }
}

fn positive<T: std::str::FromStr + PartialOrd + Default>(
    var: &'static str,
    raw: &Option<String>,
    default: T,
) -> Result<T, ConfigError> {
    let n = number(var, raw, default)?;
    if n <= T::default() {
        return Err(bad(var, "must be greater than zero"));
    }
    Ok(n)
}

fn rate(var: &'static str, raw: &Option<String>, default: f64) -> Result<f64, ConfigError> {
    match value(raw) {
        None => Ok(default),
        Some(v) => match v.parse::<f64>() {
            Ok(n) if n.is_finite() && n > 0.0 => Ok(n),
            _ => Err(bad(var, format!("`{v}` is not a positive number"))),
        },
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

impl Config {
    /// Read `.env` if present, then the command line and environment. Exits with clap's message for
    /// an unknown flag; returns the subcommand and the validated configuration.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first bad variable.
    pub fn load() -> Result<(Command, Self), ConfigError> {
        // A missing .env is the normal case in production; a malformed one is an error worth a stop.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(bad("(.env)", format!("cannot read .env: {e}"))),
        }
        let cli = Cli::parse();
        let config = Self::from_settings(&cli.settings)?;
        Ok((cli.command.unwrap_or(Command::Serve), config))
    }

    /// Validate raw settings.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first bad variable.
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let environment = match value(&s.cauldron_env).map(str::to_ascii_lowercase).as_deref() {
            None | Some("development" | "dev") => Environment::Development,
            Some("production" | "prod") => Environment::Production,
            Some(other) => {
                return Err(bad(
                    "CAULDRON_ENV",
                    format!("`{other}` is not one of development, production"),
                ));
            }
        };

        let database_url = Self::database_url(s)?;
        let port: u16 = number("PORT", &s.port, 3000)?;
        let bind: IpAddr = match value(&s.bind_addr) {
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Some(v) => v
                .parse()
                .map_err(|_| bad("BIND_ADDR", format!("`{v}` is not an IP address")))?,
        };

        let log_level = value(&s.log_level).unwrap_or("info").to_owned();
        tracing_subscriber::EnvFilter::try_new(&log_level)
            .map_err(|e| bad("LOG_LEVEL", format!("`{log_level}` is not a valid filter: {e}")))?;
        let log_format = match value(&s.log_format).map(str::to_ascii_lowercase).as_deref() {
            None | Some("pretty" | "text") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(bad("LOG_FORMAT", format!("`{other}` is not one of pretty, json"))),
        };

        let jwt_secret = Self::jwt_secret(environment, value(&s.jwt_secret))?;
        let admin_token = value(&s.admin_token).map(str::to_owned);
        if environment == Environment::Production
            && let Some(token) = &admin_token
            && (token.len() < MIN_SECRET_LEN || KNOWN_SECRETS.contains(&token.as_str()))
        {
            return Err(bad(
                "ADMIN_TOKEN",
                format!(
                    "in production it must be at least {MIN_SECRET_LEN} characters and not a sample value"
                ),
            ));
        }

        let cors = match value(&s.cors_origins) {
            None => Cors::SameOrigin,
            Some("*") => Cors::Any,
            Some(list) => {
                let mut origins = Vec::new();
                for origin in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                    let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                        && !origin.ends_with('/')
                        && axum::http::HeaderValue::from_str(origin).is_ok();
                    if !ok {
                        return Err(bad(
                            "CORS_ORIGINS",
                            format!(
                                "`{origin}` is not an origin like https://game.example.com (no path, no trailing slash)"
                            ),
                        ));
                    }
                    origins.push(origin.to_owned());
                }
                Cors::List(origins)
            }
        };

        let memory_mb: usize = positive("PLUGIN_MEMORY_MB", &s.plugin_memory_mb, 64)?;
        if memory_mb > 4096 {
            return Err(bad("PLUGIN_MEMORY_MB", "wasm32 memories hold at most 4096 MiB"));
        }
        let plugin_limits = PluginLimits {
            fuel: value(&s.plugin_fuel)
                .map(|_| positive("PLUGIN_FUEL", &s.plugin_fuel, 1u64))
                .transpose()?,
            deadline: Duration::from_millis(positive("PLUGIN_DEADLINE_MS", &s.plugin_deadline_ms, 500u64)?),
            memory_bytes: memory_mb << 20,
            max_output_bytes: value(&s.plugin_max_output_bytes)
                .map(|_| positive("PLUGIN_MAX_OUTPUT_BYTES", &s.plugin_max_output_bytes, 1usize))
                .transpose()?,
            cache_dir: match value(&s.module_cache_dir) {
                Some("off" | "none") => None,
                Some(dir) => Some(PathBuf::from(dir)),
                None => Some(PathBuf::from("data/module-cache")),
            },
        };

        Ok(Self {
            environment,
            database_url,
            db_connect_timeout: Duration::from_secs(positive(
                "DB_CONNECT_TIMEOUT_SECS",
                &s.db_connect_timeout_secs,
                60u64,
            )?),
            redis_url: value(&s.redis_url).map(str::to_owned),
            redis_key_prefix: value(&s.redis_key_prefix)
                .unwrap_or(crate::cache::DEFAULT_KEY_PREFIX)
                .to_owned(),
            listen: SocketAddr::new(bind, port),
            log_level,
            log_format,
            jwt_secret,
            jwt_ttl: Duration::from_secs(positive("JWT_TTL_SECS", &s.jwt_ttl_secs, 7 * 24 * 3600u64)?),
            admin_token,
            plugins_dir: PathBuf::from(value(&s.plugins_dir).unwrap_or("target/plugins")),
            web_dir: PathBuf::from(value(&s.web_dir).unwrap_or("web")),
            cors,
            max_body_bytes: positive("MAX_BODY_BYTES", &s.max_body_bytes, 64 * 1024usize)?,
            request_timeout: Duration::from_secs(positive(
                "REQUEST_TIMEOUT_SECS",
                &s.request_timeout_secs,
                30u64,
            )?),
            shutdown_timeout: Duration::from_secs(number(
                "SHUTDOWN_TIMEOUT_SECS",
                &s.shutdown_timeout_secs,
                10u64,
            )?),
            plugin_limits,
            login_rate: Bucket {
                burst: positive("RATE_LIMIT_LOGIN_BURST", &s.rate_limit_login_burst, 10u32)?,
                per_sec: rate("RATE_LIMIT_LOGIN_PER_MIN", &s.rate_limit_login_per_min, 10.0)? / 60.0,
            },
            login_addr_rate: Bucket {
                burst: positive(
                    "RATE_LIMIT_LOGIN_ADDR_BURST",
                    &s.rate_limit_login_addr_burst,
                    30u32,
                )?,
                per_sec: rate(
                    "RATE_LIMIT_LOGIN_ADDR_PER_MIN",
                    &s.rate_limit_login_addr_per_min,
                    20.0,
                )? / 60.0,
            },
            register_rate: Bucket {
                burst: positive("RATE_LIMIT_REGISTER_BURST", &s.rate_limit_register_burst, 10u32)?,
                per_sec: rate("RATE_LIMIT_REGISTER_PER_MIN", &s.rate_limit_register_per_min, 0.5)? / 60.0,
            },
            trusted_proxies: trusted_proxies(&s.trusted_proxies)?,
            password_hash_concurrency: positive(
                "PASSWORD_HASH_CONCURRENCY",
                &s.password_hash_concurrency,
                default_hash_concurrency(),
            )?,
            password_hash_wait: Duration::from_millis(number(
                "PASSWORD_HASH_WAIT_MS",
                &s.password_hash_wait_ms,
                1000u64,
            )?),
            group_commit: crate::store::GroupCommit {
                max_batch: positive("GROUP_COMMIT_MAX_BATCH", &s.group_commit_max_batch, 32usize)?,
                window: Duration::from_micros({
                    let us: u64 = number("GROUP_COMMIT_WINDOW_US", &s.group_commit_window_us, 1000u64)?;
                    if us > 100_000 {
                        return Err(bad(
                            "GROUP_COMMIT_WINDOW_US",
                            format!("{us} µs is over the 100000 µs limit"),
                        ));
                    }
                    us
                }),
                committers: 0,
                wait_when_alone: false,
            },
            action_rate: Bucket {
                burst: positive("RATE_LIMIT_ACTION_BURST", &s.rate_limit_action_burst, 30u32)?,
                per_sec: rate("RATE_LIMIT_ACTION_PER_SEC", &s.rate_limit_action_per_sec, 10.0)?,
            },
            query_rate: Bucket {
                burst: positive("RATE_LIMIT_QUERY_BURST", &s.rate_limit_query_burst, 60u32)?,
                per_sec: rate("RATE_LIMIT_QUERY_PER_SEC", &s.rate_limit_query_per_sec, 30.0)?,
            },
            plugin_keep_versions: {
                let keep: usize = number("PLUGIN_KEEP_VERSIONS", &s.plugin_keep_versions, 10usize)?;
                if keep < 2 {
                    return Err(bad(
                        "PLUGIN_KEEP_VERSIONS",
                        "must be at least 2 (the active version and its rollback target)",
                    ));
                }
                keep
            },
            action_log_call_retention: match number(
                "ACTION_LOG_CALL_RETENTION_DAYS",
                &s.action_log_call_retention_days,
                30u64,
            )? {
                0 => None,
                days if days > 100 * 365 => {
                    return Err(bad(
                        "ACTION_LOG_CALL_RETENTION_DAYS",
                        format!("{days} days is over the limit of 36500 (use 0 to keep forever)"),
                    ));
                }
                days => Some(Duration::from_secs(days * 24 * 3600)),
            },
        })
    }

    /// `DATABASE_URL`, else one built from the `DB_*` variables (`DB_HOST` and the rest), else the default SQLite file.
    fn database_url(s: &Settings) -> Result<String, ConfigError> {
        if let Some(url) = value(&s.database_url) {
            let scheme = url.split_once(':').map(|(scheme, _)| scheme).unwrap_or_default();
            if !matches!(scheme, "postgres" | "postgresql" | "sqlite") {
                // Only the scheme is echoed: the rest may hold a password.
                return Err(bad(
                    "DATABASE_URL",
                    format!("must start with postgres://, postgresql:// or sqlite: (got `{scheme}:`)"),
                ));
            }
            return Ok(url.to_owned());
        }
        if let Some(host) = value(&s.db_host) {
            let port: u16 = number("DB_PORT", &s.db_port, 5432)?;
            let name = value(&s.db_name).unwrap_or("cauldron");
            let user = value(&s.db_user).unwrap_or("postgres");
            let auth = match value(&s.db_password) {
                Some(pw) => format!("{}:{}", userinfo(user), userinfo(pw)),
                None => userinfo(user),
            };
            return Ok(format!("postgres://{auth}@{host}:{port}/{}", userinfo(name)));
        }
        Ok("sqlite://data/cauldron.db".to_owned())
    }

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
            (Environment::Production, Some(s))
                if KNOWN_SECRETS.contains(&s.to_ascii_lowercase().as_str()) =>
            {
                Err(bad(
                    "JWT_SECRET",
                    "is a well-known sample value; generate a random one",
                ))
            }
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
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_settings(&Settings::from_lookup(|k| map.get(k).cloned()))
    }

    #[test]
    fn defaults_are_a_local_sqlite_game_on_3000() {
        let c = config(&[]).unwrap();
        assert_eq!(c.environment, Environment::Development);
        assert_eq!(c.database_url, "sqlite://data/cauldron.db");
        assert_eq!(c.sqlite_path(), Some(PathBuf::from("data/cauldron.db")));
        assert_eq!(c.listen.port(), 3000);
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert_eq!(c.cors, Cors::SameOrigin);
        assert_eq!(c.jwt_secret.as_bytes().len(), 32);
    }

    #[test]
    fn every_bad_value_names_its_variable() {
        for (var, val) in [
            ("PORT", "http"),
            ("PORT", "70000"),
            ("LOG_FORMAT", "xml"),
            ("CAULDRON_ENV", "staging"),
            ("DATABASE_URL", "mysql://x"),
            ("PLUGIN_FUEL", "-1"),
            ("PLUGIN_MEMORY_MB", "0"),
            ("PLUGIN_DEADLINE_MS", "soon"),
            ("MAX_BODY_BYTES", "lots"),
            ("CORS_ORIGINS", "example.com"),
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
            ("PLUGIN_KEEP_VERSIONS", "1"),
            ("ACTION_LOG_CALL_RETENTION_DAYS", "-1"),
        ] {
            let err = config(&[(var, val)]).expect_err(var);
            assert_eq!(err.var, var, "{err}");
        }
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
}
