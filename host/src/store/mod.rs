//! Persistence behind one coarse, use-case-level trait.
//!
//! [`Store`] speaks in use cases ("load what this call may see", "apply this action's effects and log
//! it"), never in per-table CRUD, so each use case is one transaction in one place. [`connect`] picks
//! the database from the `DATABASE_URL` scheme: [`PgStore`] for production and clusters, [`SqliteStore`]
//! for one-command local runs and small installs.
//!
//! Both are one implementation, [`SqlStore`] (`sql.rs`), which holds every query once, in SQL both
//! databases accept. A [`Backend`] supplies only what really differs: how to connect, the migrations,
//! how a write transaction begins, and SQLite's in-process writer gate
//! (`postgres.rs`, `sqlite.rs`). Queries are checked at run time (`query_as` + `FromRow`), not by
//! sqlx's compile-time macros: those check against one database per crate, and this crate has two. What
//! keeps the SQL honest on both is the shared suite in `host/tests/integration/store.rs`, which runs every case
//! against both. The schemas live in `migrations/{postgres,sqlite}`, in lock-step.
//!
//! [`Store::apply`] takes [`CheckedEffects`]: effects the game layer validated against the loaded
//! state, with their documents already converted to JSON. The store adds no checks of its own beyond
//! the database's: its constraints and the version guard are the last word (a concurrent change can
//! still make a spend fail). Errors never carry a raw constraint failure to callers: CHECK, foreign-key
//! and type errors from the database become [`StoreError::Invalid`] (an effect that cannot apply), so a
//! plugin can never turn a bad effect into a 500.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use cauldron_sdk::wire::Buff;
use serde::Serialize;

mod group;
mod postgres;
mod sql;
mod sqlite;

pub use group::GroupCommit;
pub use postgres::{PgBackend, PgStore};
pub use sql::{Backend, SqlStore};
pub use sqlite::{SqliteBackend, SqliteStore};

/// What can go wrong in a store use case.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The player's version changed since the state was loaded; reload and run the action again.
    /// Also returned when the action's idempotency key was logged by a concurrent request: the retry
    /// then finds that request's reply.
    #[error("the player's state changed since it was loaded")]
    Conflict,
    /// An effect cannot apply (negative balance, unknown or foreign entity, duplicate entity id, entity
    /// kind not allowed, a database rule refused it). Nothing was written.
    #[error("invalid change: {0}")]
    Invalid(String),
    /// The player, account or artifact does not exist.
    #[error("not found")]
    NotFound,
    /// An account with this username exists.
    #[error("username is taken")]
    UsernameTaken,
    /// The database cannot be reached or cannot answer now (down, restarting, out of connections,
    /// locked past the busy timeout). Worth retrying later. The detail is for logs, not for clients.
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// The database failed in a way a retry does not fix (bad configuration, corrupt stored data, a
    /// query the database refused). The detail is for logs, not for clients.
    #[error("database error")]
    Db(#[source] sqlx::Error),
}

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Plays the game.
    Player,
    /// Also manages plugins.
    Admin,
}

impl Role {
    /// The role as stored (`player` or `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Player => "player",
            Role::Admin => "admin",
        }
    }

    /// The role stored as `s`, if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "player" => Some(Role::Player),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Account id.
    pub id: i64,
    /// Unique login name.
    pub username: String,
    /// The password hash (PHC string); never sent to clients.
    pub password_hash: String,
    /// What the account may do.
    pub role: Role,
    /// When it was created, ms since the epoch.
    pub created_ms: i64,
}

/// A character, played through an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Player {
    /// Player id.
    pub id: i64,
    /// The account that plays it.
    pub account_id: i64,
    /// Display name.
    pub name: String,
    /// Optimistic-concurrency version, bumped by every applied action.
    pub version: i64,
    /// When it was created, ms since the epoch.
    pub created_ms: i64,
}

/// An entity as the API shows it: data as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEntity {
    /// Entity id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// The owning plugin's data.
    pub data: serde_json::Value,
    /// When it was created (the creating action's `now_ms`).
    pub created_ms: i64,
    /// When it last changed (the changing action's `now_ms`).
    pub updated_ms: i64,
}

/// Everything about a player, for the API: all sections, every plugin's state, the scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FullState {
    /// The player row, with its current version.
    pub player: Player,
    /// Stats before modifiers.
    pub stats: BTreeMap<String, f64>,
    /// Currency balances.
    pub currencies: BTreeMap<String, i64>,
    /// Counters.
    pub counters: BTreeMap<String, i64>,
    /// Item stacks (no empty ones).
    pub items: BTreeMap<String, i64>,
    /// Entities of every kind, by id.
    pub entities: Vec<StoredEntity>,
    /// Buffs not yet expired, by id.
    pub buffs: Vec<Buff>,
    /// Each plugin's private state, by plugin name.
    pub plugin_state: BTreeMap<String, serde_json::Value>,
    /// Leaderboard scores, by board.
    pub scores: BTreeMap<String, f64>,
}

/// Which rows of a player's state a load reads: one flag per section, and for entities and plugin
/// states which ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sections {
    /// Base stats.
    pub stats: bool,
    /// Currency balances.
    pub currencies: bool,
    /// Counters.
    pub counters: bool,
    /// Item stacks.
    pub items: bool,
    /// Leaderboard scores.
    pub scores: bool,
    /// Unexpired buffs.
    pub buffs: bool,
    /// Entities: none, all, or those of the named kinds.
    pub entities: Pick,
    /// Plugins' private states: none, all, or those of the named plugins.
    pub plugin_state: Pick,
}

impl Sections {
    /// Everything, as the API's full view shows it.
    pub fn all() -> Self {
        Self {
            stats: true,
            currencies: true,
            counters: true,
            items: true,
            scores: true,
            buffs: true,
            entities: Pick::All,
            plugin_state: Pick::All,
        }
    }

    /// Whether everything `other` reads is read here too.
    pub fn covers(&self, other: &Sections) -> bool {
        (self.stats || !other.stats)
            && (self.currencies || !other.currencies)
            && (self.counters || !other.counters)
            && (self.items || !other.items)
            && (self.scores || !other.scores)
            && (self.buffs || !other.buffs)
            && self.entities.covers(&other.entities)
            && self.plugin_state.covers(&other.plugin_state)
    }

    /// Whether a row read here is also read by `other`.
    pub fn overlaps(&self, other: &Sections) -> bool {
        (self.stats && other.stats)
            || (self.currencies && other.currencies)
            || (self.counters && other.counters)
            || (self.items && other.items)
            || (self.scores && other.scores)
            || (self.buffs && other.buffs)
            || self.entities.overlaps(&other.entities)
            || self.plugin_state.overlaps(&other.plugin_state)
    }

    /// Read what `other` reads as well.
    pub fn add(&mut self, other: &Sections) {
        self.stats |= other.stats;
        self.currencies |= other.currencies;
        self.counters |= other.counters;
        self.items |= other.items;
        self.scores |= other.scores;
        self.buffs |= other.buffs;
        self.entities.add(&other.entities);
        self.plugin_state.add(&other.plugin_state);
    }
}

/// Which of a named kind of row a load reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Pick {
    /// None of them.
    #[default]
    None,
    /// All of them.
    All,
    /// Those with one of these names (entity kinds, plugin names).
    Only(Vec<String>),
}

impl Pick {
    /// Whether the rows `other` picks are among those picked here.
    pub fn covers(&self, other: &Pick) -> bool {
        match (self, other) {
            (Pick::All, _) | (_, Pick::None) => true,
            (Pick::None, _) | (Pick::Only(_), Pick::All) => false,
            (Pick::Only(mine), Pick::Only(theirs)) => theirs.iter().all(|n| mine.contains(n)),
        }
    }

    /// Whether a row picked here is also picked by `other`.
    pub fn overlaps(&self, other: &Pick) -> bool {
        match (self, other) {
            (Pick::None, _) | (_, Pick::None) => false,
            (Pick::All, Pick::All) => true,
            (Pick::All, Pick::Only(names)) | (Pick::Only(names), Pick::All) => !names.is_empty(),
            (Pick::Only(mine), Pick::Only(theirs)) => mine.iter().any(|n| theirs.contains(n)),
        }
    }

    /// Whether rows named `name` are picked.
    pub fn has(&self, name: &str) -> bool {
        match self {
            Pick::None => false,
            Pick::All => true,
            Pick::Only(names) => names.iter().any(|n| n == name),
        }
    }

    /// Pick what `other` picks as well.
    pub fn add(&mut self, other: &Pick) {
        match (&mut *self, other) {
            (Pick::All, _) | (_, Pick::None) => {}
            (_, Pick::All) => *self = Pick::All,
            (Pick::None, Pick::Only(names)) => *self = Pick::Only(names.clone()),
            (Pick::Only(mine), Pick::Only(theirs)) => {
                for name in theirs {
                    if !mine.contains(name) {
                        mine.push(name.clone());
                    }
                }
            }
        }
    }
}

/// The action-log row written with an action's effects: what is needed to replay it bit for bit and to
/// answer a retried request.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// The plugin's semver version.
    pub plugin_version: String,
    /// The digest of the plugin version that ran the action: the hex sha256 of its bundle (module and
    /// content tables; `PluginVersion::sha256`). Column `action_log.plugin_sha256`.
    pub plugin_sha256: String,
    /// Action name.
    pub action: String,
    /// The action's params as JSON.
    pub params: serde_json::Value,
    /// The call's seed.
    pub seed: u64,
    /// The call's time.
    pub now_ms: i64,
    /// The hex sha256 of the outcome bytes the plugin wrote, to compare replays with.
    pub outcome_digest: String,
    /// The exact `Call` the plugin received (its MessagePack), compressed (`game::call_log`), so the
    /// action can be re-run bit for bit on its own. `None` for rows logged without it, or whose call
    /// the retention setting cleared.
    pub call: Option<Vec<u8>>,
    /// The reply the client got, as JSON.
    pub reply: serde_json::Value,
    /// The client's Idempotency-Key, if it sent one.
    pub idempotency_key: Option<String>,
    /// With a key: what identifies the request (plugin, action, params), so a key reused for another
    /// request is told apart from a retry.
    pub fingerprint: Option<String>,
}

/// One action to apply: its effects and its log row, in one transaction, guarded by the version.
#[derive(Debug, Clone)]
pub struct ApplyRequest {
    /// The acting player.
    pub player_id: i64,
    /// The version the effects were computed from (the loaded [`Player::version`]).
    pub expected_version: i64,
    /// The plugin that produced the effects; `SetState` writes its state.
    pub plugin: String,
    /// The effects, applied in order. Events are not among them: the caller publishes them after
    /// commit.
    pub effects: CheckedEffects,
    /// The action-log row.
    pub log: LogEntry,
}

/// A logged action, for replay.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedAction {
    /// Log id; pages are "ids after this one".
    pub id: i64,
    /// The acting player.
    pub player_id: i64,
    /// The plugin's name.
    pub plugin: String,
    /// The player's version this action produced.
    pub version: i64,
    /// When the row was written (wall clock), ms since the epoch.
    pub created_ms: i64,
    /// Everything else that was logged.
    pub entry: LogEntry,
}

/// A logged action as a replay reads it ([`Store::logged_calls`]): what re-running it and
/// reporting a divergence need, and nothing else (a replay reads thousands of these a second).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LoggedCall {
    /// Log id.
    pub id: i64,
    /// The acting player.
    pub player_id: i64,
    /// Action name.
    pub action: String,
    /// The params as logged, as JSON text (parsed only when a report shows them).
    pub params: String,
    /// The bundle digest of the version that ran it (`LogEntry::plugin_sha256`).
    pub plugin_sha256: String,
    /// The digest of the outcome bytes (`LogEntry::outcome_digest`).
    pub outcome_digest: String,
    /// The stored call, compressed (`LogEntry::call`).
    pub call: Vec<u8>,
}

/// Which logged actions of a plugin to read, a page at a time (replay). Only actions that still carry
/// their call (`LogEntry::call`) are read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// The plugin.
    pub plugin: String,
    /// Only ids after this one (the last id of the previous page; 0 for the first).
    pub after_id: i64,
    /// Only ids before this one (the last id of the previous page, reading newest first).
    pub before_id: Option<i64>,
    /// Newest first (descending ids) instead of oldest first.
    pub newest_first: bool,
    /// Most rows in the page.
    pub limit: u32,
    /// Only actions logged at or after this time (wall clock, ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only actions logged before this time (wall clock, ms since the epoch).
    pub until_ms: Option<i64>,
    /// Only these players' actions (none: every player's).
    pub players: Vec<i64>,
    /// Only this action.
    pub action: Option<String>,
}

/// The logged answer to an earlier request with the same idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotentReply {
    /// The reply the first request got.
    pub reply: serde_json::Value,
    /// The player's version after it.
    pub version: i64,
    /// The first request's fingerprint (`LogEntry::fingerprint`); `None` for rows logged without one.
    pub fingerprint: Option<String>,
}

/// A stored plugin version (a bundle, or a module stored before bundles), without its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ArtifactInfo {
    /// Plugin name.
    pub name: String,
    /// Semver version from the manifest (several stored versions may share it).
    pub version: String,
    /// What identifies the version: hex sha256 of the stored bytes, computed by the store. For a
    /// bundle that is the bundle digest (module and content tables).
    pub sha256: String,
    /// Hex sha256 of the module alone.
    pub wasm_sha256: String,
    /// Whether the bytes are an encoded bundle; false for a module stored before bundles, which
    /// loads with the host's content tables.
    pub bundle: bool,
    /// Size in bytes.
    pub size: i64,
    /// Whether this is the version nodes should run.
    pub active: bool,
    /// Whether this is the version a rollback re-activates.
    pub previous: bool,
    /// When it was uploaded, ms since the epoch.
    pub uploaded_ms: i64,
}

/// A companion version of a plugin, stored beside its active one: a canary (serving a share of the
/// players) or a shadow (re-running a share of the live calls).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CompanionInfo {
    /// Plugin name.
    pub name: String,
    /// `canary` or `shadow` (`cauldron_runtime::Companion::label`).
    pub kind: String,
    /// The companion's version.
    pub version: String,
    /// Its digest.
    pub sha256: String,
    /// Its share, in basis points (0 to 10 000).
    pub share_bp: i64,
    /// When it was set or last widened, ms since the epoch.
    pub updated_ms: i64,
}

/// A stored plugin version with its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArtifact {
    /// What is known about it.
    pub info: ArtifactInfo,
    /// The encoded bundle (or, when `info.bundle` is false, the module).
    pub bytes: Vec<u8>,
}

/// One line of a leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ScoreEntry {
    /// Player id.
    pub player_id: i64,
    /// Player's display name.
    pub name: String,
    /// Score; higher ranks first.
    pub score: f64,
}

/// One line of a leaderboard with its rank (1 + how many listed players score strictly more).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RankedScore {
    /// Player id.
    pub player_id: i64,
    /// Player's display name.
    pub name: String,
    /// Score; higher ranks first.
    pub score: f64,
    /// 1 for the best score; players with equal scores share a rank.
    pub rank: i64,
}

/// A revoked token that has not expired yet.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Revocation {
    /// The token's id (`jti` claim).
    pub jti: String,
    /// When the token expires, ms since the epoch; the revocation matters until then.
    pub expires_ms: i64,
}

/// The host's persistence, one method per use case. Object-safe: the app holds an `Arc<dyn Store>`.
#[async_trait]
pub trait Store: Send + Sync {
    /// `"postgres"` or `"sqlite"`, for logs and health checks.
    fn backend(&self) -> &'static str;

    /// Bring the schema up to date with the embedded migrations.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Create an account. [`StoreError::UsernameTaken`] if the name is in use.
    async fn create_account(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<Account, StoreError>;

    /// The account with this username.
    async fn account_by_username(&self, username: &str) -> Result<Option<Account>, StoreError>;

    /// The account with this id.
    async fn account_by_id(&self, id: i64) -> Result<Option<Account>, StoreError>;

    /// Create the account's player (one per account). [`StoreError::NotFound`] if there is no such
    /// account, [`StoreError::Invalid`] if it already has a player.
    async fn create_player(&self, account_id: i64, name: &str) -> Result<Player, StoreError>;

    /// The account's player.
    async fn player_by_account(&self, account_id: i64) -> Result<Option<Player>, StoreError>;

    /// The player with this id.
    async fn player_by_id(&self, id: i64) -> Result<Option<Player>, StoreError>;

    /// The player row and the `sections` of its state, from one consistent snapshot, in one statement;
    /// what `sections` leaves out is empty. Buffs expired at `now_ms` are left out.
    async fn load(&self, player_id: i64, now_ms: i64, sections: &Sections) -> Result<FullState, StoreError>;

    /// Everything about a player, for the API, from one consistent snapshot.
    async fn load_full(&self, player_id: i64, now_ms: i64) -> Result<FullState, StoreError> {
        self.load(player_id, now_ms, &Sections::all()).await
    }

    /// Apply every effect and write the log row in one transaction, only if the player is still at
    /// `expected_version`. Returns the new version. [`StoreError::Conflict`] if the version moved,
    /// [`StoreError::Invalid`] if any effect cannot apply; in both cases nothing is written.
    async fn apply(&self, req: ApplyRequest) -> Result<i64, StoreError>;

    /// The logged reply of the player's earlier action with this idempotency key.
    async fn idempotent_reply(
        &self,
        player_id: i64,
        key: &str,
    ) -> Result<Option<IdempotentReply>, StoreError>;

    /// Store an encoded plugin bundle of `name` (inactive), identified by the sha256 of `bytes`;
    /// `version` is its manifest's semver and `wasm_sha256` its module's digest. Storing the same
    /// bytes again is a no-op that answers the stored version.
    async fn put_artifact(
        &self,
        name: &str,
        version: &str,
        wasm_sha256: &str,
        bytes: &[u8],
    ) -> Result<ArtifactInfo, StoreError>;

    /// Make the stored version `sha256` the active one of `name`; the version it replaces becomes
    /// the rollback target. [`StoreError::NotFound`] if no such version is stored.
    async fn activate_artifact(&self, name: &str, sha256: &str) -> Result<ArtifactInfo, StoreError>;

    /// Re-activate the rollback target of `name` (the active one, if any, is just deactivated).
    /// Returns the now active version; [`StoreError::NotFound`] if there is no rollback target.
    async fn rollback_artifact(&self, name: &str) -> Result<ArtifactInfo, StoreError>;

    /// Stop running `name` (the rollback target is kept). [`StoreError::NotFound`] if none is active.
    async fn deactivate_artifact(&self, name: &str) -> Result<(), StoreError>;

    /// The active version of every plugin, by name.
    async fn active_artifacts(&self) -> Result<Vec<ArtifactInfo>, StoreError>;

    /// Every stored version of `name`, newest first.
    async fn artifacts(&self, name: &str) -> Result<Vec<ArtifactInfo>, StoreError>;

    /// The stored version `sha256` of `name` with its bytes.
    async fn artifact(&self, name: &str, sha256: &str) -> Result<Option<StoredArtifact>, StoreError>;

    /// Delete the stored versions of `name` beyond the newest `keep`, never the active one nor the
    /// rollback target. Returns how many were deleted.
    async fn prune_artifacts(&self, name: &str, keep: usize) -> Result<u64, StoreError>;

    /// Clear the stored call (`LogEntry::call`) of up to `limit` actions logged before `before_ms`
    /// (wall clock); the rows themselves stay. Returns how many were cleared.
    async fn clear_logged_calls(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError>;

    /// One page of the logged actions `query` picks that still carry their call, in id order
    /// (descending with [`LogQuery::newest_first`]), with only what a replay reads.
    async fn logged_calls(&self, query: &LogQuery) -> Result<Vec<LoggedCall>, StoreError>;

    /// Make the stored version `sha256` of `name` its `kind` companion (`canary` or `shadow`) with a
    /// share of `share_bp` basis points, replacing the one it had. [`StoreError::NotFound`] if that
    /// version is not stored.
    async fn set_companion(
        &self,
        kind: &str,
        name: &str,
        sha256: &str,
        share_bp: u32,
    ) -> Result<CompanionInfo, StoreError>;

    /// Remove the `kind` companion of `name`. [`StoreError::NotFound`] if it has none.
    async fn clear_companion(&self, kind: &str, name: &str) -> Result<(), StoreError>;

    /// Every companion, by name and kind.
    async fn companions(&self) -> Result<Vec<CompanionInfo>, StoreError>;

    /// The id of the log row of the action that gave `player_id` its version `version`.
    async fn log_id(&self, player_id: i64, version: i64) -> Result<Option<i64>, StoreError>;

    /// Up to `limit` logged actions of `plugin` with ids after `after_id`, in id order (replay pages).
    async fn action_log(
        &self,
        plugin: &str,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<LoggedAction>, StoreError>;

    /// The best `limit` scores of `board`, highest first (ties by player id).
    async fn top_scores(&self, board: &str, limit: u32) -> Result<Vec<ScoreEntry>, StoreError>;

    /// The players of `board` nearest `player_id`'s score (0 when they have none), nearest first
    /// (then higher scores, then lower ids), without the player themself or anyone named
    /// `exclude_name`; `limit` rows after skipping `offset`. With them, the player's own line when
    /// they have a score. Ranks count only players not named `exclude_name`.
    async fn scores_around(
        &self,
        board: &str,
        player_id: i64,
        exclude_name: &str,
        limit: u32,
        offset: u32,
    ) -> Result<(Option<RankedScore>, Vec<RankedScore>), StoreError>;

    /// Answers once the database does (a trivial query), for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Revoke the token `jti` of `account_id` until `expires_ms` (its own expiry), and forget
    /// revocations whose tokens have expired meanwhile. Revoking a token twice changes nothing.
    async fn revoke_token(&self, jti: &str, account_id: i64, expires_ms: i64) -> Result<(), StoreError>;

    /// Whether the token `jti` was revoked.
    async fn is_token_revoked(&self, jti: &str) -> Result<bool, StoreError>;

    /// Every revocation whose token has not expired at `now_ms`.
    async fn unexpired_revocations(&self, now_ms: i64) -> Result<Vec<Revocation>, StoreError>;

    /// Give the player the display name `req.name`, in one transaction: the name, the player's
    /// change count and version, and the price when the change is not free. The unique index on
    /// display names decides between two players asking for one name at once.
    /// [`StoreError::NotFound`] if there is no such player.
    async fn rename_player(&self, req: RenameRequest<'_>) -> Result<RenameOutcome, StoreError>;

    /// The best `limit` scores of `board` among players who chose a display name (the
    /// [`DEFAULT_PLAYER_NAME`] is left out), highest first (ties by player id).
    async fn top_named_scores(&self, board: &str, limit: u32) -> Result<Vec<ScoreEntry>, StoreError>;

    /// The largest `limit` balances of `currency` among players who chose a display name, as scores,
    /// highest first (ties by player id). A board the host keeps from the currencies themselves.
    async fn top_named_balances(&self, currency: &str, limit: u32) -> Result<Vec<ScoreEntry>, StoreError>;

    /// The display names of the players among `ids` that exist, by id.
    async fn player_names(&self, ids: &[i64]) -> Result<BTreeMap<i64, String>, StoreError>;

    /// What the players among `ids` publish about their row on `board`: the object a plugin keeps
    /// under `boards.<board>` in its state ([`BOARD_DETAILS_KEY`]), by player id. Players whose
    /// plugins publish nothing for the board are absent.
    async fn board_details(
        &self,
        board: &str,
        ids: &[i64],
    ) -> Result<BTreeMap<i64, serde_json::Value>, StoreError>;
}

/// The key of a plugin's state under which it publishes, per leaderboard, what a row is about (the
/// item, the pet, ...): `{"boards": {"<board>": {...}}}`. Everything else in plugin state stays
/// private.
pub const BOARD_DETAILS_KEY: &str = "boards";

/// The display name every character starts with ("nameless cultivator"). Players who still carry it
/// are left off leaderboards, and any number of players may share it.
pub const DEFAULT_PLAYER_NAME: &str = "无名修士";

/// A display-name change: who, the new name, and its price after the free changes.
#[derive(Debug, Clone, Copy)]
pub struct RenameRequest<'a> {
    /// The player.
    pub player_id: i64,
    /// The new display name, already checked by the caller.
    pub name: &'a str,
    /// How many changes cost nothing.
    pub free_changes: i64,
    /// The currency a later change is paid in.
    pub currency: &'a str,
    /// The price of a change past the free ones.
    pub cost: i64,
}

/// How a rename ended. Every refusal leaves the database as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenameOutcome {
    /// The name is the player's now.
    Renamed {
        /// What was charged (0 for a free change).
        cost: i64,
        /// Changes made so far, this one included.
        name_changes: i64,
        /// The player's new version.
        version: i64,
    },
    /// Another player has this name.
    NameTaken,
    /// The change is not free and the balance does not cover it.
    Insufficient,
}

/// Open the database named by `url` (`postgres://`, `postgresql://` or `sqlite:`), committing actions
/// as `group` says. Does not migrate.
pub async fn connect(url: &str, group: GroupCommit) -> Result<Arc<dyn Store>, StoreError> {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme).unwrap_or_default();
    match scheme {
        "postgres" | "postgresql" => Ok(Arc::new(PgStore::connect(url).await?.with_group_commit(group))),
        "sqlite" => Ok(Arc::new(
            SqliteStore::connect(url).await?.with_group_commit(group),
        )),
        // Only the scheme is echoed: the rest of the URL may hold a password.
        _ => Err(StoreError::Db(sqlx::Error::Configuration(
            format!("database url must start with postgres://, postgresql:// or sqlite: (got `{scheme}:`)")
                .into(),
        ))),
    }
}

// ---- shared by both backends ------------------------------------------------------------------------

/// A database error as callers see it, by cause:
///
/// - caused by the input (a rule or constraint refused it, a value out of range, text the database
///   cannot hold): [`StoreError::Invalid`], a client error, logged at debug level only;
/// - the database cannot be reached or cannot answer now (connection refused or lost, pool timeout,
///   server shutting down or starting, SQLite busy past its timeout): [`StoreError::Unavailable`];
/// - a serialization failure or deadlock: [`StoreError::Conflict`], which the caller re-runs;
/// - anything else (a bug, corrupt data, bad configuration): [`StoreError::Db`].
fn db_err(err: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    if matches!(
        err,
        E::Io(_) | E::Tls(_) | E::Protocol(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed
    ) {
        return StoreError::Unavailable(err);
    }
    let Some(db) = err.as_database_error() else {
        return StoreError::Db(err);
    };
    use sqlx::error::ErrorKind;
    if matches!(
        db.kind(),
        ErrorKind::CheckViolation
            | ErrorKind::ForeignKeyViolation
            | ErrorKind::NotNullViolation
            | ErrorKind::UniqueViolation
    ) {
        tracing::debug!(error = %err, "constraint refused a change");
        let rule = db
            .constraint()
            .map(str::to_owned)
            .unwrap_or_else(|| db.message().to_owned());
        return StoreError::Invalid(format!("refused by the database rule `{rule}`"));
    }
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    let sqlite = db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some();
    match classify_code(&code, sqlite) {
        Cause::Input => {
            tracing::debug!(error = %err, "the database refused a value");
            StoreError::Invalid(format!("the database refused a value: {}", db.message()))
        }
        Cause::Unreachable => StoreError::Unavailable(err),
        Cause::Conflict => {
            tracing::debug!(error = %err, "serialization failure or deadlock");
            StoreError::Conflict
        }
        Cause::Other => StoreError::Db(err),
    }
}

/// What a database error code says about its cause.
#[derive(Debug, PartialEq, Eq)]
enum Cause {
    /// The value sent was refused.
    Input,
    /// The database is down, starting, shutting down, out of connections or busy.
    Unreachable,
    /// A concurrent transaction won; running again succeeds.
    Conflict,
    /// Anything else.
    Other,
}

/// Classify a PostgreSQL SQLSTATE or, with `sqlite`, an SQLite extended result code.
fn classify_code(code: &str, sqlite: bool) -> Cause {
    if sqlite {
        let Ok(sqlite) = code.parse::<u32>() else {
            return Cause::Other;
        };
        // SQLite: the primary result code is the low byte of the extended one.
        return match sqlite & 0xff {
            // SQLITE_BUSY, SQLITE_LOCKED: another writer held the database past the busy timeout.
            5 | 6 => Cause::Unreachable,
            // SQLITE_TOOBIG, SQLITE_MISMATCH, SQLITE_RANGE.
            18 | 20 | 25 => Cause::Input,
            // SQLITE_CONSTRAINT_DATATYPE (3091): an integer sum overflowed into a REAL in a STRICT
            // table. Other constraint codes were handled by kind.
            19 if sqlite == 3091 => Cause::Input,
            _ => Cause::Other,
        };
    }
    match code.get(..2) {
        // Class 22, data exception: out of range, NUL or untranslatable characters, bad text.
        Some("22") => Cause::Input,
        // Class 08, connection exception; class 53, insufficient resources (too many connections);
        // classes 28 and 3D, refused at connection time (credentials, the database gone).
        Some("08" | "53" | "28" | "3D") => Cause::Unreachable,
        // Class 40: serialization failure, deadlock.
        Some("40") => Cause::Conflict,
        // Class 57: operator intervention (admin or crash shutdown, cannot connect now).
        Some("57") if code != "57014" => Cause::Unreachable,
        // A read-only transaction on a standby after a failover.
        _ if code == "25006" => Cause::Unreachable,
        _ => Cause::Other,
    }
}

/// Stored data that does not decode (corruption or a hand edit): a database error, not the caller's.
fn corrupt(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Db(sqlx::Error::Decode(
        format!("stored {what} is malformed: {err}").into(),
    ))
}

/// The log keeps the u64 seed bit for bit in a signed 64-bit column.
fn seed_to_db(seed: u64) -> i64 {
    i64::from_le_bytes(seed.to_le_bytes())
}

fn seed_from_db(seed: i64) -> u64 {
    u64::from_le_bytes(seed.to_le_bytes())
}

/// Wall-clock time for bookkeeping columns (account, player and upload times). Game time comes from the
/// action (`LogEntry::now_ms`) so that replays see the same numbers.
fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn role_from_db(role: &str) -> Result<Role, StoreError> {
    Role::parse(role).ok_or_else(|| corrupt("account role", role))
}

/// Which balance table a change names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Balance {
    Currency,
    Counter,
}

/// Effects checked against the state they were computed from, in the form the store writes them.
///
/// Only the game layer's validator (`game::effects::validate`) makes one: every name and quantity
/// passed its rules against the loaded state, every entity kind is one the action may touch, and every
/// document is already JSON. The store writes them as they are; its constraints and the version guard
/// still refuse what a concurrent change made impossible.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedEffects {
    changes: Vec<Change>,
}

impl CheckedEffects {
    /// Wrap changes the caller has checked.
    pub(crate) fn new(changes: Vec<Change>) -> Self {
        Self { changes }
    }

    /// The sections these changes write when `plugin` applies them (an entity change counts as
    /// touching every kind).
    pub fn touches(&self, plugin: &str) -> Sections {
        let mut touched = Sections::default();
        for change in &self.changes {
            match change {
                Change::AddBalance {
                    balance: Balance::Currency,
                    ..
                } => touched.currencies = true,
                Change::AddBalance {
                    balance: Balance::Counter,
                    ..
                } => touched.counters = true,
                Change::AddItem { .. } | Change::RemoveItem { .. } => touched.items = true,
                Change::SetStat { .. } => touched.stats = true,
                Change::CreateEntity { .. } | Change::UpdateEntity { .. } | Change::DeleteEntity { .. } => {
                    touched.entities = Pick::All;
                }
                Change::AddBuff { .. } | Change::RemoveBuff { .. } => touched.buffs = true,
                Change::SetState { .. } => touched.plugin_state.add(&Pick::Only(vec![plugin.to_owned()])),
                Change::SetScore { .. } => touched.scores = true,
            }
        }
        touched
    }
}

/// One checked change of a player's stored state: an effect less what the store needs no more.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// Add `delta` (negative: spend) to a currency or counter.
    AddBalance {
        balance: Balance,
        name: String,
        delta: i64,
    },
    AddItem {
        item: String,
        qty: i64,
    },
    RemoveItem {
        item: String,
        qty: i64,
    },
    SetStat {
        name: String,
        value: f64,
    },
    CreateEntity {
        id: String,
        kind: String,
        data: serde_json::Value,
    },
    UpdateEntity {
        id: String,
        data: serde_json::Value,
    },
    DeleteEntity {
        id: String,
    },
    /// Add or replace a buff; `modifiers` is the JSON of its modifier list.
    AddBuff {
        id: String,
        modifiers: serde_json::Value,
        expires_ms: i64,
    },
    RemoveBuff {
        id: String,
    },
    /// Replace the acting plugin's private state.
    SetState {
        data: serde_json::Value,
    },
    SetScore {
        board: String,
        score: f64,
    },
}

/// The account columns, shared by the queries that read accounts.
#[derive(sqlx::FromRow)]
struct AccountRow {
    id: i64,
    username: String,
    password_hash: String,
    role: String,
    created_ms: i64,
}

impl AccountRow {
    fn into_account(self) -> Result<Account, StoreError> {
        Ok(Account {
            id: self.id,
            role: role_from_db(&self.role)?,
            username: self.username,
            password_hash: self.password_hash,
            created_ms: self.created_ms,
        })
    }
}

/// An action-log row as stored.
#[derive(sqlx::FromRow)]
struct LogRow {
    id: i64,
    player_id: i64,
    plugin: String,
    plugin_version: String,
    plugin_sha256: String,
    action: String,
    params: sqlx::types::Json<serde_json::Value>,
    seed: i64,
    now_ms: i64,
    outcome_digest: String,
    call: Option<Vec<u8>>,
    reply: sqlx::types::Json<serde_json::Value>,
    idempotency_key: Option<String>,
    request_fingerprint: Option<String>,
    version: i64,
    created_ms: i64,
}

impl From<LogRow> for LoggedAction {
    fn from(r: LogRow) -> Self {
        LoggedAction {
            id: r.id,
            player_id: r.player_id,
            plugin: r.plugin,
            version: r.version,
            created_ms: r.created_ms,
            entry: LogEntry {
                plugin_version: r.plugin_version,
                plugin_sha256: r.plugin_sha256,
                action: r.action,
                params: r.params.0,
                seed: seed_from_db(r.seed),
                now_ms: r.now_ms,
                outcome_digest: r.outcome_digest,
                call: r.call,
                reply: r.reply.0,
                idempotency_key: r.idempotency_key,
                fingerprint: r.request_fingerprint,
            },
        }
    }
}

/// A buff row as stored.
#[derive(sqlx::FromRow)]
struct BuffRow {
    id: String,
    modifiers: sqlx::types::Json<serde_json::Value>,
    expires_ms: i64,
}

impl BuffRow {
    fn into_buff(self) -> Result<Buff, StoreError> {
        let modifiers = serde_json::from_value(self.modifiers.0).map_err(|e| corrupt("buff modifiers", e))?;
        Ok(Buff {
            id: self.id,
            modifiers,
            expires_ms: self.expires_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(names: &[&str]) -> Pick {
        Pick::Only(names.iter().map(|n| (*n).to_owned()).collect())
    }

    #[test]
    fn picks_cover_overlap_and_add_as_sets() {
        assert!(Pick::All.covers(&only(&["a"])) && Pick::All.covers(&Pick::All));
        assert!(only(&["a", "b"]).covers(&only(&["b"])) && !only(&["a"]).covers(&only(&["a", "b"])));
        assert!(!only(&["a"]).covers(&Pick::All) && Pick::None.covers(&Pick::None));
        assert!(only(&["a"]).overlaps(&only(&["a", "b"])) && !only(&["a"]).overlaps(&only(&["b"])));
        assert!(Pick::All.overlaps(&only(&["x"])) && !Pick::All.overlaps(&only(&[])));
        assert!(!Pick::None.overlaps(&Pick::All));
        let mut p = only(&["a"]);
        p.add(&only(&["b", "a"]));
        assert_eq!(p, only(&["a", "b"]));
        p.add(&Pick::All);
        assert_eq!(p, Pick::All);
        assert!(Pick::All.has("anything") && !Pick::None.has("a") && only(&["a"]).has("a"));
    }

    #[test]
    fn sections_cover_what_they_were_widened_with() {
        let mut loaded = Sections {
            stats: true,
            entities: only(&["pet"]),
            ..Sections::default()
        };
        let hooks = Sections {
            entities: only(&["gear"]),
            plugin_state: only(&["equipment"]),
            ..Sections::default()
        };
        assert!(!loaded.covers(&hooks));
        loaded.add(&hooks);
        assert!(loaded.covers(&hooks) && loaded.stats);
        assert!(Sections::all().covers(&loaded));
        let touched = Sections {
            items: true,
            ..Sections::default()
        };
        assert!(!hooks.overlaps(&touched) && hooks.overlaps(&loaded));
    }

    #[test]
    fn seeds_survive_the_signed_column() {
        for seed in [0, 1, u64::MAX, 1 << 63, 0xdead_beef_cafe_f00d] {
            assert_eq!(seed_from_db(seed_to_db(seed)), seed);
        }
    }

    #[test]
    fn database_error_codes_are_classified_by_cause() {
        let pg = |code| classify_code(code, false);
        let sqlite = |code| classify_code(code, true);
        for code in ["22021", "22P05", "22003", "22001"] {
            assert_eq!(pg(code), Cause::Input, "{code}");
        }
        for code in ["3091", "18", "20"] {
            assert_eq!(sqlite(code), Cause::Input, "{code}");
        }
        for code in ["08006", "57P01", "57P03", "53300", "3D000", "28P01"] {
            assert_eq!(pg(code), Cause::Unreachable, "{code}");
        }
        for code in ["5", "517", "6", "262"] {
            assert_eq!(sqlite(code), Cause::Unreachable, "{code}");
        }
        for code in ["40001", "40P01"] {
            assert_eq!(pg(code), Cause::Conflict, "{code}");
        }
        for code in ["42P01", "57014", "", "XX000"] {
            assert_eq!(pg(code), Cause::Other, "{code}");
        }
        for code in ["1", "2067", "", "x"] {
            assert_eq!(sqlite(code), Cause::Other, "{code}");
        }
    }

    #[test]
    fn roles_round_trip() {
        for role in [Role::Player, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
