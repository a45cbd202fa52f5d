//! `/api/v1/actions/{plugin}/{action}`: run one plugin action for the caller.

use std::sync::Arc;

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{AppPath, Auth, IdempotencyKey, Params};
use super::rate_limit_action;
use crate::cache::Services;
use crate::config::Config;
use crate::game::{ActionReply, ActionRequest, EventOut, Game};
use crate::state::AppState;

/// The action route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(act))
}

/// An event an action emitted (also delivered over the bus to WebSocket clients).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = Event)]
pub struct EventView {
    /// The plugin that emitted it.
    pub plugin: String,
    /// Its topic, as the plugin names it.
    pub topic: String,
    /// Who receives it over `/ws`: `player` (the acting player's sockets) or `global` (everyone).
    #[schema(example = "player")]
    pub scope: String,
    /// The acting player.
    pub player_id: i64,
    /// The plugin's payload.
    pub data: serde_json::Value,
}

impl From<EventOut> for EventView {
    fn from(e: EventOut) -> Self {
        Self {
            plugin: e.plugin,
            topic: e.topic,
            scope: e.scope,
            player_id: e.player_id,
            data: e.data,
        }
    }
}

/// What an action returned.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = ActionReply)]
pub struct ActionReplyView {
    /// The plugin's reply.
    pub reply: serde_json::Value,
    /// Events the action emitted (already published); empty for a query.
    pub events: Vec<EventView>,
    /// The player's state version after the action; for a query, the version it read.
    pub player_version: i64,
    /// True when this answers a repeated Idempotency-Key (the action was not run again); always false
    /// for a query.
    pub replayed: bool,
}

impl From<ActionReply> for ActionReplyView {
    fn from(r: ActionReply) -> Self {
        Self {
            reply: r.reply,
            events: r.events.into_iter().map(EventView::from).collect(),
            player_version: r.player_version,
            replayed: r.replayed,
        }
    }
}

/// Run `action` of `plugin` with the JSON body as params (an empty body means `{}`). Rate-limited per
/// player. With an `Idempotency-Key`, a repeat of the same request (same plugin, action and params)
/// returns the first reply and changes nothing; the same key with a different request is refused with
/// 422 `idempotency_key_reused` and runs nothing.
///
/// An action whose manifest entry has `query: true` (see the catalog) only reads: it runs on the
/// player's current state and answers in the same shape, with `player_version` the version it read,
/// `events` empty and `replayed` false; nothing is written (no log row, no new version). Queries have
/// their own, more generous rate limit per player (`RATE_LIMIT_QUERY_BURST`,
/// `RATE_LIMIT_QUERY_PER_SEC`). A query accepts an `Idempotency-Key` and ignores it: repeating a query
/// is harmless, so nothing is stored or replayed. A query that returns effects is a plugin fault
/// (500 `plugin_fault`, kind `query_effects`) and nothing is written.
#[utoipa::path(
    post, path = "/actions/{plugin}/{action}", tag = "actions",
    operation_id = "runAction",
    security(("bearer" = [])),
    params(
        ("plugin" = String, Path, description = "Plugin name, as in the catalog (any other name is a 404 `unknown_plugin`)"),
        ("action" = String, Path, description = "Action name, as in the plugin's manifest (any other name is a 404 `unknown_action`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "1-128 visible ASCII characters (`!` to `~`; else 400 `bad_idempotency_key`); a repeat of the same request returns the first reply, the same key with another plugin, action or params is a 422 `idempotency_key_reused`. Accepted and ignored on a query action (nothing to replay)",
            min_length = 1, max_length = 128, pattern = "^[!-~]+$"),
    ),
    request_body(content = Option<Params>, description = "The action's params (an empty body or `null` means `{}`)", content_type = "application/json"),
    responses(
        (status = 200, description = "Applied (a query: answered, nothing written)", body = ActionReplyView, links(
            ("player" = (operation_id = "getPlayer", description = "The player's state after the action")),
            ("stats" = (operation_id = "getPlayerStats", description = "The player's effective stats after the action")),
            ("again" = (operation_id = "runAction", description = "The same action again",
                parameters(("plugin" = "$request.path.plugin"), ("action" = "$request.path.action")))),
        )),
        (status = 400, description = "Malformed JSON (`bad_json`), bad params (`bad_params`: not an object, nested deeper than 64 levels, or a NUL character in a string or key), a path segment that is not UTF-8 once decoded (`bad_path`) or a bad Idempotency-Key (`bad_idempotency_key`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "Unknown plugin or action", body = ErrorBody),
        (status = 409, description = "The state kept changing concurrently", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "The game's rules refused (the plugin's code), or the Idempotency-Key was used for a different request (`idempotency_key_reused`); nothing changed", body = ErrorBody),
        (status = 429, description = "Too many actions; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 500, description = "The plugin failed (`plugin_fault`); nothing changed", body = ErrorBody),
        (status = 503, description = "The database is unreachable, or the host cannot run plugin calls right now (shutting down, no free instance): `unavailable`; nothing changed, retry after Retry-After",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 504, description = "No answer within REQUEST_TIMEOUT_SECS (`timeout`); the action may have \
            been applied: retry with the same Idempotency-Key", body = ErrorBody),
    )
)]
async fn act(
    State(game): State<Game>,
    State(services): State<Services>,
    State(config): State<Arc<Config>>,
    Auth(who): Auth,
    AppPath((plugin, action)): AppPath<(String, String)>,
    IdempotencyKey(idempotency_key): IdempotencyKey,
    Params(params): Params,
) -> Result<axum::Json<ActionReplyView>, ApiError> {
    rate_limit_action(&game, &services, &config, who.player_id, &plugin, &action).await?;
    let reply = game
        .execute(ActionRequest {
            player_id: who.player_id,
            plugin,
            action,
            params,
            idempotency_key,
        })
        .await?;
    Ok(axum::Json(reply.into()))
}
