//! `/api/v1/leaderboards/{board}`, `/api/v1/leaderboards/{board}/around/me`, `/api/v1/online` and
//! `/api/v1/online/players`.

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{AppPath, AppQuery, Auth};
use crate::cache::Services;
use crate::state::AppState;
use crate::store::{DEFAULT_PLAYER_NAME, ScoreEntry, Store};

/// The board the host keeps itself: spirit-stone balances, read from the currencies.
pub const SPIRIT_STONES_BOARD: &str = "spirit_stones";

/// Rows returned when no `limit` is given.
pub const DEFAULT_LIMIT: u32 = 20;
/// Most rows one request may ask for.
pub const MAX_LIMIT: u32 = 100;
/// Most rows `around/me` may skip.
pub const MAX_OFFSET: u32 = 10_000;

/// The leaderboard and presence routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(board))
        .routes(routes!(around_me))
        .routes(routes!(online))
        .routes(routes!(online_players))
}

/// Most players one online list shows.
pub const MAX_ONLINE_LISTED: usize = 100;

/// A player online.
#[derive(Debug, Serialize, ToSchema)]
pub struct OnlinePlayer {
    /// Player id.
    pub player_id: i64,
    /// Display name (无名修士 until the player chooses one; never the login name).
    pub name: String,
    /// When the player came online, ms since the epoch.
    pub since_ms: i64,
}

/// Players online now.
#[derive(Debug, Serialize, ToSchema)]
pub struct OnlinePlayers {
    /// How many are online.
    pub count: u64,
    /// Up to 100 of them, longest online first.
    pub players: Vec<OnlinePlayer>,
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
    /// The player's display name (never the login name).
    pub name: String,
    /// Score.
    pub score: f64,
    /// What the row is about, as the plugin that keeps the board describes it (for `equipment`: the
    /// best worn piece's name, quality and enhance level; for `pets`: the deployed pet's name, quality,
    /// stars and level). Absent when the plugin publishes nothing for this player.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
}

/// A leaderboard's top rows.
#[derive(Debug, Serialize, ToSchema)]
pub struct Board {
    /// Board name.
    pub board: String,
    /// Best first.
    pub entries: Vec<Row>,
}

/// Which rows around the caller.
#[derive(Debug, Deserialize)]
pub struct Page {
    /// 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// Rows to skip, 0 to 10 000 (default 0).
    pub offset: Option<u32>,
}

/// The players nearest the caller on a board.
#[derive(Debug, Serialize, ToSchema)]
pub struct Around {
    /// Board name.
    pub board: String,
    /// The caller's own row; null when they have no score on the board (then rows are ordered by
    /// their distance from 0).
    pub me: Option<Row>,
    /// Nearest score first (then the higher score, then the lower id); never the caller, never a
    /// player still named 无名修士.
    pub entries: Vec<Row>,
    /// The limit applied.
    pub limit: u32,
    /// The offset applied.
    pub offset: u32,
}

/// Players online now.
#[derive(Debug, Serialize, ToSchema)]
pub struct Online {
    /// How many.
    pub count: u64,
}

/// The best scores of `board`: from the shared leaderboard service, or from the database when that is
/// unavailable or empty (after a Redis flush, the database still has every score). Rows show display
/// names; players who have not chosen one (still 无名修士) are left off. `spirit_stones` is kept by
/// the host: the largest spirit-stone balances.
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
    check_board(&board)?;
    let limit = top.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_limit",
            format!("limit must be 1 to {MAX_LIMIT}"),
        ));
    }
    if board == SPIRIT_STONES_BOARD {
        let entries = ranked(store.top_named_balances(SPIRIT_STONES_BOARD, limit).await?);
        return Ok(axum::Json(Board { board, entries }));
    }
    // Players still without a chosen name are left off, so ask the service for more rows than shown.
    let asked = (limit as usize).saturating_mul(4);
    let cached = match services.leaderboard.top(&board, asked).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::debug!(error = %e, "leaderboard service unavailable; reading the database");
            Vec::new()
        }
    };
    let ids: Vec<i64> = cached.iter().map(|r| r.player).collect();
    let names = store.player_names(&ids).await?;
    // A player deleted since is skipped; the database read below would not list them either.
    let mut entries = ranked(
        cached
            .iter()
            .filter_map(|r| {
                let name = names.get(&r.player)?;
                (name != DEFAULT_PLAYER_NAME).then(|| ScoreEntry {
                    player_id: r.player,
                    name: name.clone(),
                    score: r.score,
                })
            })
            .take(limit as usize)
            .collect(),
    );
    // The service's rows are the whole board when it returned fewer than asked; otherwise too many
    // unnamed players may have crowded the named ones out, and the database answers exactly.
    if cached.is_empty() || (entries.len() < limit as usize && cached.len() >= asked) {
        entries = ranked(store.top_named_scores(&board, limit).await?);
    }
    let ids: Vec<i64> = entries.iter().map(|r| r.player_id).collect();
    let mut details = store.board_details(&board, &ids).await?;
    for row in &mut entries {
        row.detail = details.remove(&row.player_id);
    }
    Ok(axum::Json(Board { board, entries }))
}

/// The players nearest the caller's score on `board`, paged: for finding opponents of a similar
/// realm, for example. Read from the database (the durable copy of every board); players who have
/// not chosen a display name (still 无名修士) are left out, and so is the caller.
#[utoipa::path(
    get, path = "/leaderboards/{board}/around/me", tag = "leaderboards",
    operation_id = "getLeaderboardAroundMe",
    security(("bearer" = [])),
    params(
        ("board" = String, Path, description = "Board name, as plugins set it: 1 to 128 characters, \
            none of them a control character", min_length = 1, max_length = 128,
            pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"),
        ("limit" = Option<u32>, Query, description = "Rows, 1 to 100 (default 20)",
            minimum = 1, maximum = 100),
        ("offset" = Option<u32>, Query, description = "Rows to skip, 0 to 10000 (default 0)",
            minimum = 0, maximum = 10000),
    ),
    responses(
        (status = 200, description = "The caller's row and the rows nearest it", body = Around),
        (status = 400, description = "A limit or offset that is not a whole number (`bad_query`) or out \
            of range (`bad_limit`, `bad_offset`), a board name that is not UTF-8 once decoded \
            (`bad_path`) or breaks its rule (`bad_board`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn around_me(
    State(store): State<Arc<dyn Store>>,
    Auth(who): Auth,
    AppPath(board): AppPath<String>,
    AppQuery(page): AppQuery<Page>,
) -> Result<axum::Json<Around>, ApiError> {
    check_board(&board)?;
    let limit = page.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_limit",
            format!("limit must be 1 to {MAX_LIMIT}"),
        ));
    }
    let offset = page.offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::bad_request(
            "bad_offset",
            format!("offset must be 0 to {MAX_OFFSET}"),
        ));
    }
    let (me, rows) = store
        .scores_around(&board, who.player_id, DEFAULT_PLAYER_NAME, limit, offset)
        .await?;
    let row = |r: crate::store::RankedScore| Row {
        rank: u64::try_from(r.rank).unwrap_or(0),
        player_id: r.player_id,
        name: r.name,
        score: r.score,
        detail: None,
    };
    Ok(axum::Json(Around {
        board,
        me: me.map(row),
        entries: rows.into_iter().map(row).collect(),
        limit,
        offset,
    }))
}

fn check_board(board: &str) -> Result<(), ApiError> {
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
    Ok(())
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

/// Who is online: display names and since when, longest online first (at most 100 listed; `count` is
/// all of them). Public, like the leaderboards.
#[utoipa::path(
    get, path = "/online/players", tag = "leaderboards",
    responses(
        (status = 200, description = "Players online", body = OnlinePlayers),
        (status = 503, description = "Presence or the database is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn online_players(
    State(store): State<Arc<dyn Store>>,
    State(services): State<Services>,
) -> Result<axum::Json<OnlinePlayers>, ApiError> {
    let mut online = services
        .presence
        .list_online_since()
        .await
        .map_err(|e| ApiError::Unavailable {
            message: "the online list is unavailable right now".to_owned(),
            detail: e.to_string(),
        })?;
    let count = online.len() as u64;
    online.sort_by_key(|&(player, since)| (since, player));
    online.truncate(MAX_ONLINE_LISTED);
    let ids: Vec<i64> = online.iter().map(|&(player, _)| player).collect();
    let names = store.player_names(&ids).await?;
    let players = online
        .into_iter()
        .filter_map(|(player_id, since_ms)| {
            Some(OnlinePlayer {
                player_id,
                name: names.get(&player_id)?.clone(),
                since_ms,
            })
        })
        .collect();
    Ok(axum::Json(OnlinePlayers { count, players }))
}

/// Scores, best first, as numbered rows (details are filled in afterwards).
fn ranked(scores: Vec<ScoreEntry>) -> Vec<Row> {
    scores
        .into_iter()
        .zip(1u64..)
        .map(|(s, rank)| Row {
            rank,
            player_id: s.player_id,
            name: s.name,
            score: s.score,
            detail: None,
        })
        .collect()
}
