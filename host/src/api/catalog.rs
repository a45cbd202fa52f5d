//! `/api/v1/catalog`: every loaded plugin's manifest and content, so clients render actions, names and
//! odds without hard-coding them.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::game::CatalogEntry;
use crate::state::AppState;

/// The catalog route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(catalog))
}

/// One plugin (documents `game::CatalogEntry`).
#[derive(Serialize, ToSchema)]
#[schema(as = CatalogEntry)]
#[allow(dead_code, reason = "documentation shape only")]
struct CatalogEntryDoc {
    /// Name, version, title, description, entity kinds, actions (name, title, description, params,
    /// reads, kinds, content, and `query`: true for a read-only action, which writes nothing) and
    /// hooks.
    manifest: serde_json::Value,
    version: String,
    /// Hex sha256 of the module.
    sha256: String,
    /// Content tables by name, as JSON.
    content: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Every loaded plugin.
#[utoipa::path(
    get, path = "/catalog", tag = "catalog",
    responses((status = 200, description = "Loaded plugins", body = Vec<CatalogEntryDoc>))
)]
async fn catalog(State(state): State<AppState>) -> axum::Json<Vec<CatalogEntry>> {
    axum::Json(state.game.catalog())
}
