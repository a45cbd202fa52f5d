//! `/api/v1/player`: the caller's character: full state, effective stats and the display name.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{AppJson, Auth};
use crate::game::StatsView;
use crate::state::AppState;
use crate::store::{DEFAULT_PLAYER_NAME, FullState, RenameOutcome, RenameRequest};

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
    if name == DEFAULT_PLAYER_NAME {
        return Err(format!(
            "`{DEFAULT_PLAYER_NAME}` is the name of everyone who has not chosen one"
        ));
    }
    Ok(())
}

/// The new name.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewName {
    /// 1 to 6 characters, no spaces; unique among players.
    #[schema(min_length = 1, max_length = 6)]
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
    State(state): State<AppState>,
    Auth(who): Auth,
    AppJson(body): AppJson<NewName>,
) -> Result<axum::Json<Renamed>, ApiError> {
    super::rate_limit(
        &state,
        &format!("action:{}", who.player_id),
        state.config.action_rate,
    )
    .await?;
    check_display_name(&body.name).map_err(|m| ApiError::bad_request("bad_name", m))?;
    let store = state.game.store();
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
        } => {
            // The cached state carries the old name and balance.
            state
                .game
                .services()
                .cache
                .invalidate(who.player_id, version)
                .await;
            Ok(axum::Json(Renamed {
                name: body.name,
                cost,
                name_changes,
                player_version: version,
            }))
        }
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

// The shapes below document `store::FullState` and `game::StatsView` for the OpenAPI document; the
// handlers serialise those types themselves, so these must follow them (the API tests check the
// served JSON against these field names).

/// The player row.
#[derive(Serialize, ToSchema)]
#[schema(as = PlayerRow)]
#[allow(dead_code, reason = "documentation shape only")]
struct PlayerRowDoc {
    id: i64,
    account_id: i64,
    name: String,
    version: i64,
    created_ms: i64,
}

/// An entity (equipment, pet, ...), its data owned by the plugin that made it.
#[derive(Serialize, ToSchema)]
#[schema(as = Entity)]
#[allow(dead_code, reason = "documentation shape only")]
struct EntityDoc {
    id: String,
    kind: String,
    data: serde_json::Value,
    created_ms: i64,
    updated_ms: i64,
}

/// Everything about the player.
#[derive(Serialize, ToSchema)]
#[schema(as = FullState)]
#[allow(dead_code, reason = "documentation shape only")]
struct FullStateDoc {
    player: PlayerRowDoc,
    stats: BTreeMap<String, f64>,
    currencies: BTreeMap<String, i64>,
    counters: BTreeMap<String, i64>,
    items: BTreeMap<String, i64>,
    entities: Vec<EntityDoc>,
    /// Active buffs: id, modifiers, expires_ms.
    buffs: Vec<serde_json::Value>,
    /// Each plugin's private state, by plugin name.
    plugin_state: BTreeMap<String, serde_json::Value>,
    scores: BTreeMap<String, f64>,
}

/// Base stats, stats after every modifier, and the modifiers.
#[derive(Serialize, ToSchema)]
#[schema(as = StatsView)]
#[allow(dead_code, reason = "documentation shape only")]
struct StatsViewDoc {
    base: BTreeMap<String, f64>,
    effective: BTreeMap<String, f64>,
    /// Each modifier: stat, add, mul, source.
    modifiers: Vec<serde_json::Value>,
}

/// The caller's full state.
#[utoipa::path(
    get, path = "/player", tag = "player",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Full state", body = FullStateDoc),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such player", body = ErrorBody),
    )
)]
async fn state(State(state): State<AppState>, Auth(who): Auth) -> Result<axum::Json<FullState>, ApiError> {
    Ok(axum::Json(state.game.state(who.player_id).await?))
}

/// The caller's base and effective stats.
#[utoipa::path(
    get, path = "/player/stats", tag = "player",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Stats", body = StatsViewDoc),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such player", body = ErrorBody),
    )
)]
async fn stats(State(state): State<AppState>, Auth(who): Auth) -> Result<axum::Json<StatsView>, ApiError> {
    Ok(axum::Json(state.game.effective_stats(who.player_id).await?))
}
