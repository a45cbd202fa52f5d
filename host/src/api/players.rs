//! `/api/v1/player`: the caller's character: full state and effective stats.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::Auth;
use crate::game::{Game, StatsView};
use crate::state::AppState;
use crate::store::{FullState, Player, StoredEntity};
use cauldron_sdk::wire::{Buff, Modifier};

/// The player routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(state)).routes(routes!(stats))
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
}

impl From<FullState> for FullStateView {
    fn from(s: FullState) -> Self {
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
    Ok(axum::Json(game.state(who.player_id).await?.into()))
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
