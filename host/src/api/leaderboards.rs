//! `/api/v1/leaderboards/{board}` and `/api/v1/online`.

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{AppPath, AppQuery};
use crate::cache::Services;
use crate::state::AppState;
use crate::store::Store;

/// Rows returned when no `limit` is given.
pub const DEFAULT_LIMIT: u32 = 20;
/// Most rows one request may ask for.
pub const MAX_LIMIT: u32 = 100;

/// The leaderboard and presence routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(board))
        .routes(routes!(online))
}

/// How many rows.
#[derive(Debug, Deserialize)]
pub struct Top {
    /// 1 to 100 (default 20).
    pub limit: Option<u32>,
}

/// One row.
#[derive(Debug, Serialize, ToSchema)]
pub struct Row {
    /// 1 for the best.
    pub rank: u64,
    /// Player id.
    pub player_id: i64,
    /// Player name.
    pub name: String,
    /// Score.
    pub score: f64,
}

/// A leaderboard's top rows.
#[derive(Debug, Serialize, ToSchema)]
pub struct Board {
    /// Board name.
    pub board: String,
    /// Best first.
    pub entries: Vec<Row>,
}

/// Players online now.
#[derive(Debug, Serialize, ToSchema)]
pub struct Online {
    /// How many.
    pub count: u64,
}

/// The best scores of `board`: from the shared leaderboard service, or from the database when that is
/// unavailable or empty (after a Redis flush, the database still has every score).
#[utoipa::path(
    get, path = "/leaderboards/{board}", tag = "leaderboards",
    operation_id = "getLeaderboard",
    params(
        ("board" = String, Path, description = "Board name, as plugins set it: 1 to 128 characters, \
            none of them a control character", min_length = 1, max_length = 128,
            pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"),
        ("limit" = Option<u32>, Query, description = "Rows, 1 to 100 (default 20)",
            minimum = 1, maximum = 100),
    ),
    responses(
        (status = 200, description = "Top rows", body = Board),
        (status = 400, description = "A limit that is not a whole number (`bad_query`) or out of 1 to 100 \
            (`bad_limit`), a board name that is not UTF-8 once decoded (`bad_path`) or breaks its rule \
            (`bad_board`)", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn board(
    State(store): State<Arc<dyn Store>>,
    State(services): State<Services>,
    AppPath(board): AppPath<String>,
    AppQuery(top): AppQuery<Top>,
) -> Result<axum::Json<Board>, ApiError> {
    let len = board.chars().count();
    if len == 0 || len > crate::game::effects::MAX_NAME || board.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "bad_board",
            format!(
                "`board` must be 1 to {} printable characters",
                crate::game::effects::MAX_NAME
            ),
        ));
    }
    let limit = top.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_limit",
            format!("limit must be 1 to {MAX_LIMIT}"),
        ));
    }
    let cached = match services.leaderboard.top(&board, limit as usize).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::debug!(error = %e, "leaderboard service unavailable; reading the database");
            Vec::new()
        }
    };
    let mut entries = Vec::with_capacity(cached.len());
    for r in &cached {
        // A player deleted since is skipped; the database read below would not list them either.
        if let Some(p) = store.player_by_id(r.player).await? {
            entries.push(Row {
                rank: r.rank,
                player_id: r.player,
                name: p.name,
                score: r.score,
            });
        }
    }
    if cached.is_empty() {
        entries = store
            .top_scores(&board, limit)
            .await?
            .into_iter()
            .zip(1u64..)
            .map(|(s, rank)| Row {
                rank,
                player_id: s.player_id,
                name: s.name,
                score: s.score,
            })
            .collect();
    }
    Ok(axum::Json(Board { board, entries }))
}

/// How many players are online.
#[utoipa::path(
    get, path = "/online", tag = "leaderboards",
    responses(
        (status = 200, description = "Online count", body = Online),
        (status = 503, description = "Presence is unavailable (Redis down)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn online(State(services): State<Services>) -> Result<axum::Json<Online>, ApiError> {
    let count = services
        .presence
        .count_online()
        .await
        .map_err(|e| ApiError::Unavailable {
            message: "the online count is unavailable right now".to_owned(),
            detail: e.to_string(),
        })?;
    Ok(axum::Json(Online { count }))
}
