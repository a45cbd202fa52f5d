//! `/api/v1/player`: the caller's character: full state and effective stats.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::Auth;
use crate::game::StatsView;
use crate::state::AppState;
use crate::store::FullState;

/// The player routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(state)).routes(routes!(stats))
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
