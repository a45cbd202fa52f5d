//! `/api/v1/player`: the caller's character: full state, effective stats and the display name.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{AppJson, Auth};
use crate::cache::Services;
use crate::config::Config;
use crate::game::{Game, StatsView};
use crate::state::AppState;
use crate::store::{
    DEFAULT_PLAYER_NAME, FullState, Player, RenameOutcome, RenameRequest, Store, StoredEntity,
};
use cauldron_sdk::wire::{Buff, Modifier};

/// The player routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(state))
        .routes(routes!(stats))
        .routes(routes!(rename))
}

/// Longest display name, in characters.
pub const NAME_MAX_CHARS: usize = 6;
/// Display-name changes that cost nothing.
pub const FREE_RENAMES: i64 = 1;
/// The currency a later change is paid in.
pub const RENAME_CURRENCY: &str = "spirit_stones";
/// The price of each change after the free one.
pub const RENAME_COST: i64 = 100;

/// Check a display name: 1 to [`NAME_MAX_CHARS`] characters, no spaces or control characters, and not
/// the name every character starts with.
pub fn check_display_name(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if !(1..=NAME_MAX_CHARS).contains(&len) {
        return Err(format!(
            "a name is 1 to {NAME_MAX_CHARS} characters long (got {len})"
        ));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a name may not contain spaces or control characters".to_owned());
    }
    Ok(())
}

/// The new name.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewName {
    /// 1 to 6 characters, no spaces or control characters; unique among players; not 无名修士 (422
    /// `reserved_name`).
    #[schema(
        min_length = 1,
        max_length = 6,
        pattern = r"^[^\s\u0000-\u001f\u007f-\u009f]+$"
    )]
    pub name: String,
}

/// A name change, done.
#[derive(Debug, Serialize, ToSchema)]
pub struct Renamed {
    /// The player's display name now.
    pub name: String,
    /// Spirit stones charged (0 for the first change).
    pub cost: i64,
    /// Changes made so far, this one included.
    pub name_changes: i64,
    /// The player's state version after the change.
    pub player_version: i64,
}

/// Choose the caller's display name: what leaderboards, events and the online list show (the login
/// name is never shown). Every character starts as 无名修士 and stays off the leaderboards until it
/// chooses a name. The first change is free; each later one costs 100 spirit stones, charged in the
/// same transaction as the change. Names are unique among players: when two ask for one name at once,
/// the database lets exactly one have it.
#[utoipa::path(
    post, path = "/player/name", tag = "player",
    security(("bearer" = [])),
    request_body = NewName,
    responses(
        (status = 200, description = "Renamed", body = Renamed),
        (status = 400, description = "Malformed JSON (`bad_json`), or a name that breaks the rules (`bad_name`); nothing changed", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such player", body = ErrorBody),
        (status = 409, description = "Another player has this name (`name_taken`); nothing changed", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Not enough spirit stones for a paid change (`insufficient`), or the name is already the caller's (`same_name`); nothing changed", body = ErrorBody),
        (status = 429, description = "Too many actions; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The database is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn rename(
    State(store): State<Arc<dyn Store>>,
    State(services): State<Services>,
    State(config): State<Arc<Config>>,
    Auth(who): Auth,
    AppJson(body): AppJson<NewName>,
) -> Result<axum::Json<Renamed>, ApiError> {
    super::rate_limit(
        &services,
        &format!("action:{}", who.player_id),
        config.action_rate,
    )
    .await?;
    check_display_name(&body.name).map_err(|m| ApiError::bad_request("bad_name", m))?;
    // A well-formed name the rules keep for everyone who has not chosen one.
    if body.name == DEFAULT_PLAYER_NAME {
        return Err(ApiError::Rejected {
            code: "reserved_name".to_owned(),
            message: format!("`{DEFAULT_PLAYER_NAME}` is the name of everyone who has not chosen one"),
        });
    }
    let current = store
        .player_by_id(who.player_id)
        .await?
        .ok_or_else(|| ApiError::not_found("not_found", "no such player"))?;
    if current.name == body.name {
        return Err(ApiError::Rejected {
            code: "same_name".to_owned(),
            message: "that is already your name".to_owned(),
        });
    }
    let outcome = store
        .rename_player(RenameRequest {
            player_id: who.player_id,
            name: &body.name,
            free_changes: FREE_RENAMES,
            currency: RENAME_CURRENCY,
            cost: RENAME_COST,
        })
        .await?;
    match outcome {
        RenameOutcome::Renamed {
            cost,
            name_changes,
            version,
        } => Ok(axum::Json(Renamed {
            name: body.name,
            cost,
            name_changes,
            player_version: version,
        })),
        RenameOutcome::NameTaken => Err(ApiError::Conflict {
            code: "name_taken",
            message: "another player has this name".to_owned(),
        }),
        RenameOutcome::Insufficient => Err(ApiError::Rejected {
            code: "insufficient".to_owned(),
            message: format!("a name change after the first costs {RENAME_COST} spirit stones"),
        }),
    }
}

/// The player row.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = PlayerRow)]
pub struct PlayerRow {
    /// Player id.
    pub id: i64,
    /// The account that plays it.
    pub account_id: i64,
    /// Display name.
    pub name: String,
    /// State version, bumped by every applied action.
    pub version: i64,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
}

impl From<Player> for PlayerRow {
    fn from(p: Player) -> Self {
        Self {
            id: p.id,
            account_id: p.account_id,
            name: p.name,
            version: p.version,
            created_ms: p.created_ms,
        }
    }
}

/// An entity (equipment, pet, ...), its data owned by the plugin that made it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = Entity)]
pub struct EntityView {
    /// Entity id, unique per player.
    pub id: String,
    /// Kind, declared in the owning plugin's manifest.
    pub kind: String,
    /// The owning plugin's data.
    pub data: serde_json::Value,
    /// When it was created (the creating action's time), ms since the epoch.
    pub created_ms: i64,
    /// When it last changed, ms since the epoch.
    pub updated_ms: i64,
}

impl From<StoredEntity> for EntityView {
    fn from(e: StoredEntity) -> Self {
        Self {
            id: e.id,
            kind: e.kind,
            data: e.data,
            created_ms: e.created_ms,
            updated_ms: e.updated_ms,
        }
    }
}

/// A change to one stat: `effective = (base + sum of add) * (1 + sum of mul)`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = Modifier)]
pub struct ModifierView {
    /// Stat name.
    pub stat: String,
    /// Flat amount added to the base.
    pub add: f64,
    /// Fraction added to the multiplier (0.1 = +10 %).
    pub mul: f64,
    /// Where it comes from, for display.
    pub source: String,
}

impl From<Modifier> for ModifierView {
    fn from(m: Modifier) -> Self {
        Self {
            stat: m.stat,
            add: m.add,
            mul: m.mul,
            source: m.source,
        }
    }
}

/// A timed bonus: its modifiers count toward effective stats until it expires.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = Buff)]
pub struct BuffView {
    /// Id, unique per player.
    pub id: String,
    /// What it does while active.
    pub modifiers: Vec<ModifierView>,
    /// When it ends, ms since the epoch.
    pub expires_ms: i64,
}

impl From<Buff> for BuffView {
    fn from(b: Buff) -> Self {
        Self {
            id: b.id,
            modifiers: b.modifiers.into_iter().map(ModifierView::from).collect(),
            expires_ms: b.expires_ms,
        }
    }
}

/// Everything about the player.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = FullState)]
pub struct FullStateView {
    /// The player row, with its current version.
    pub player: PlayerRow,
    /// Stats before modifiers.
    pub stats: BTreeMap<String, f64>,
    /// Currency balances.
    pub currencies: BTreeMap<String, i64>,
    /// Counters.
    pub counters: BTreeMap<String, i64>,
    /// Item stacks (no empty ones).
    pub items: BTreeMap<String, i64>,
    /// Entities of every kind.
    pub entities: Vec<EntityView>,
    /// Buffs not yet expired.
    pub buffs: Vec<BuffView>,
    /// Each plugin's private state, by plugin name.
    pub plugin_state: BTreeMap<String, serde_json::Value>,
    /// Leaderboard scores, by board.
    pub scores: BTreeMap<String, f64>,
    /// The game time this state was read at, ms since the epoch: the clock the plugins see, so a
    /// client can extrapolate income that accrues with time (the web client's spirit counter).
    pub now_ms: i64,
}

impl FullStateView {
    /// `s` as read at game time `now_ms`.
    fn at(s: FullState, now_ms: i64) -> Self {
        Self {
            player: s.player.into(),
            stats: s.stats,
            currencies: s.currencies,
            counters: s.counters,
            items: s.items,
            entities: s.entities.into_iter().map(EntityView::from).collect(),
            buffs: s.buffs.into_iter().map(BuffView::from).collect(),
            plugin_state: s.plugin_state,
            scores: s.scores,
            now_ms,
        }
    }
}

/// Base stats, stats after every modifier, and the modifiers.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = StatsView)]
pub struct StatsBody {
    /// Stats as plugins set them.
    pub base: BTreeMap<String, f64>,
    /// After every plugin's modifiers and active buffs.
    pub effective: BTreeMap<String, f64>,
    /// Every modifier that applied, with its source.
    pub modifiers: Vec<ModifierView>,
}

impl From<StatsView> for StatsBody {
    fn from(s: StatsView) -> Self {
        Self {
            base: s.base,
            effective: s.effective,
            modifiers: s.modifiers.into_iter().map(ModifierView::from).collect(),
        }
    }
}

/// The caller's full state.
#[utoipa::path(
    get, path = "/player", tag = "player",
    operation_id = "getPlayer",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Full state", body = FullStateView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such player", body = ErrorBody),
    )
)]
async fn state(State(game): State<Game>, Auth(who): Auth) -> Result<axum::Json<FullStateView>, ApiError> {
    let state = game.state(who.player_id).await?;
    Ok(axum::Json(FullStateView::at(state, game.now_ms())))
}

/// The caller's base and effective stats.
#[utoipa::path(
    get, path = "/player/stats", tag = "player",
    operation_id = "getPlayerStats",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Stats", body = StatsBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such player", body = ErrorBody),
    )
)]
async fn stats(State(game): State<Game>, Auth(who): Auth) -> Result<axum::Json<StatsBody>, ApiError> {
    Ok(axum::Json(game.effective_stats(who.player_id).await?.into()))
}
