//! `/api/v1/admin/plugins`: plugin administration across the cluster, and the rollout follower that
//! applies the announcements on every host.
//!
//! # Credential
//! `Authorization: Bearer <ADMIN_TOKEN>`, or the token of an account with the `admin` role. No or a
//! bad token is 401; a valid player token is 403.
//!
//! # Rollout
//! The handlers check the credential and the name and answer in the API's format; what an upload,
//! a rollback or an unload does is `crate::rollout`'s.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use cauldron_runtime::{ALL_BP, Companion, CompanionStatus, PluginStatus, Registry};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{AppJson, AppPath, AppQuery, Body, bearer};
use crate::game::Game;
use crate::game::shadow::ShadowCounts;
use crate::rollout::{Rollout, RolloutError};
use crate::state::{AppState, AuthState};
use crate::store::Role;

/// Largest plugin module an upload may carry.
pub const MAX_UPLOAD_BYTES: usize = 32 * 1024 * 1024;
/// Longest plugin name.
pub const MAX_NAME: usize = 64;

/// The admin routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(upload, unload))
        .routes(routes!(rollback))
        .routes(routes!(start_canary, set_canary_share, end_canary))
        .routes(routes!(promote_canary))
        .routes(routes!(attach_shadow, detach_shadow))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
}

/// An administrator: the `ADMIN_TOKEN` or an admin account's token.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Who, for the logs: `admin-token` or `account:{id}`.
    pub who: String,
}

impl<S> FromRequestParts<S> for Admin
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = AuthState::from_ref(state);
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(bearer)
            .ok_or_else(|| {
                ApiError::Unauthorized("the admin API needs `Authorization: Bearer <token>`".into())
            })?;
        if let Some(admin) = &auth.admin_token
            && constant_time_eq(admin.as_bytes(), token.as_bytes())
        {
            return Ok(Self {
                who: "admin-token".to_owned(),
            });
        }
        let identity = auth.authenticate(token).await?;
        if identity.role != Role::Admin {
            return Err(ApiError::Forbidden(
                "the admin API is for administrators".to_owned(),
            ));
        }
        Ok(Self {
            who: format!("account:{}", identity.account_id),
        })
    }
}

/// Compares without an early exit, so the time taken says nothing about the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A plugin as the registry of the answering host sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginInfo {
    /// Plugin name.
    pub name: String,
    /// Version serving, if any.
    pub version: Option<String>,
    /// Hex sha256 of the serving module.
    pub sha256: Option<String>,
    /// When the serving version was loaded, ms since the epoch.
    pub loaded_at_ms: Option<i64>,
    /// The latest refused load (upload or file), if after the serving version.
    pub last_error: Option<String>,
    /// The version the serving one replaced in this host's memory (since start). Not what a
    /// rollback restores: that is the stored artifact active before the current one.
    pub replaced_version: Option<String>,
    /// Refused loads since start.
    pub refused: u64,
    /// The canary serving a share of the players beside `version`, if any.
    pub canary: Option<CompanionView>,
    /// The shadow re-running a share of the live calls, if any.
    pub shadow: Option<CompanionView>,
    /// What this host's shadow runs of the plugin found, by shadow version (since start).
    pub shadow_runs: BTreeMap<String, ShadowCounts>,
}

/// A companion version: a canary (serving a stable share of the players) or a shadow (re-running a
/// share of the live calls).
#[derive(Debug, Serialize, ToSchema)]
pub struct CompanionView {
    /// Its version.
    pub version: String,
    /// Its digest.
    pub sha256: String,
    /// Its share (of players for a canary, of calls for a shadow) in percent, 0 to 100 in steps of
    /// 0.01.
    pub share_percent: f64,
}

impl From<CompanionStatus> for CompanionView {
    fn from(c: CompanionStatus) -> Self {
        Self {
            version: c.version,
            sha256: c.sha256,
            share_percent: f64::from(c.share_bp) / 100.0,
        }
    }
}

/// A stored version to attach as a plugin's shadow, and the share of live calls to run on it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ShadowRequest {
    /// A stored version of the plugin (as `version` in its upload's answer).
    #[schema(min_length = 1, max_length = 64)]
    pub version: String,
    /// Percent of the live calls, 0 to 100 (steps of 0.01).
    #[schema(minimum = 0, maximum = 100)]
    pub share_percent: f64,
}

/// The share of players a canary serves.
#[derive(Debug, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Share {
    /// Percent of the players, 0 to 100 (steps of 0.01).
    #[schema(minimum = 0, maximum = 100)]
    #[param(minimum = 0, maximum = 100)]
    pub share_percent: f64,
}

/// A share in percent as basis points, or 400 `bad_share`.
fn basis_points(percent: f64) -> Result<u32, ApiError> {
    if !(0.0..=100.0).contains(&percent) {
        return Err(ApiError::bad_request(
            "bad_share",
            "share_percent is a number from 0 to 100",
        ));
    }
    Ok(((percent * 100.0).round() as u32).min(ALL_BP))
}

impl From<PluginStatus> for PluginInfo {
    fn from(s: PluginStatus) -> Self {
        Self {
            name: s.name,
            version: s.version,
            sha256: s.sha256,
            loaded_at_ms: s.loaded_at_ms,
            last_error: s.last_error,
            replaced_version: s.replaced_version,
            refused: s.refused,
            canary: s.canary.map(CompanionView::from),
            shadow: s.shadow.map(CompanionView::from),
            shadow_runs: BTreeMap::new(),
        }
    }
}

/// Every plugin this host's registry knows: version, sha256, load time, last error, replaced version.
#[utoipa::path(
    get, path = "/admin/plugins", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Plugins", body = Vec<PluginInfo>),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
    )
)]
async fn list(
    State(registry): State<Arc<Registry>>,
    State(game): State<Game>,
    _admin: Admin,
) -> axum::Json<Vec<PluginInfo>> {
    axum::Json(
        registry
            .statuses()
            .into_iter()
            .map(|s| {
                let runs = game.shadow_counts(&s.name);
                PluginInfo {
                    shadow_runs: runs,
                    ..PluginInfo::from(s)
                }
            })
            .collect(),
    )
}

/// Upload a new version of `name` (the wasm module as the body), validated like a hot reload with
/// the host's content tables; stored, activated and rolled out to every host.
#[utoipa::path(
    post, path = "/admin/plugins/{name}", tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Plugin name, as in the module's manifest: 1 to 64 of a-z, 0-9, `_` and `-` (else 400 `bad_plugin_name`)", min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$")),
    request_body(content = Vec<u8>, description = "The wasm module", content_type = "application/wasm"),
    responses(
        (status = 201, description = "Stored, serving here and announced to every host", body = PluginInfo),
        (status = 400, description = "A bad name (`bad_plugin_name`, `bad_path`) or an empty body (`empty_body`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 409, description = "This version is stored with different bytes", body = ErrorBody),
        (status = 413, description = "Module larger than 32 MiB", body = ErrorBody),
        (status = 422, description = "Refused: compile, ABI, manifest or name mismatch (`plugin_refused`)", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn upload(
    State(rollout): State<Rollout>,
    State(registry): State<Arc<Registry>>,
    admin: Admin,
    AppPath(name): AppPath<String>,
    Body(body): Body,
) -> Result<(StatusCode, axum::Json<PluginInfo>), ApiError> {
    check_name(&name)?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            "send the wasm module as the body",
        ));
    }
    let stored = rollout.upload(&name, body.to_vec()).await?;
    tracing::info!(plugin = %name, version = %stored.version, sha256 = %stored.sha256, by = %admin.who, "plugin uploaded");
    Ok((StatusCode::CREATED, axum::Json(status_of(&registry, &name))))
}

/// Re-activate the stored artifact of `name` that was active before the current one, on every host.
#[utoipa::path(
    post, path = "/admin/plugins/{name}/rollback", tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Plugin name: 1 to 64 of a-z, 0-9, `_` and `-` (else 400 `bad_plugin_name`)", min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$")),
    responses(
        (status = 200, description = "Rolled back here and announced", body = PluginInfo),
        (status = 400, description = "A bad name (`bad_plugin_name`, `bad_path`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No stored version to roll back to (`no_previous`)", body = ErrorBody),
        (status = 422, description = "The stored version no longer loads", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn rollback(
    State(rollout): State<Rollout>,
    State(registry): State<Arc<Registry>>,
    admin: Admin,
    AppPath(name): AppPath<String>,
) -> Result<axum::Json<PluginInfo>, ApiError> {
    check_name(&name)?;
    let info = rollout.rollback(&name).await?;
    tracing::info!(plugin = %name, version = %info.version, by = %admin.who, "plugin rolled back");
    Ok(axum::Json(status_of(&registry, &name)))
}

/// Stop serving `name` on every host (its stored versions are kept for a later rollback).
#[utoipa::path(
    delete, path = "/admin/plugins/{name}", tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Plugin name: 1 to 64 of a-z, 0-9, `_` and `-` (else 400 `bad_plugin_name`)", min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$")),
    responses(
        (status = 204, description = "Unloaded here and announced"),
        (status = 400, description = "A bad name (`bad_plugin_name`, `bad_path`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No such plugin", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn unload(
    State(rollout): State<Rollout>,
    admin: Admin,
    AppPath(name): AppPath<String>,
) -> Result<StatusCode, ApiError> {
    check_name(&name)?;
    rollout.unload(&name).await?;
    tracing::info!(plugin = %name, by = %admin.who, "plugin unloaded");
    Ok(StatusCode::NO_CONTENT)
}

/// Start a canary: validate the body (a new version of `name`) like an upload, store it without
/// activating it, and serve it to `share_percent` of the players on every host. Which players is a
/// hash of the plugin name and the player id: the same players on every host, and widening keeps
/// them. Every action's log row records the version that served it.
#[utoipa::path(
    post, path = "/admin/plugins/{name}/canary", tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Plugin name: 1 to 64 of a-z, 0-9, `_` and `-` (else 400 `bad_plugin_name`)", min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$"),
        Share),
    request_body(content = Vec<u8>, description = "The wasm module", content_type = "application/wasm"),
    responses(
        (status = 201, description = "Serving the share here and announced to every host", body = PluginInfo),
        (status = 400, description = "A bad name, share (`bad_share`, `bad_query`) or an empty body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "The plugin serves no version to split with (`unknown_plugin`)", body = ErrorBody),
        (status = 409, description = "This version is stored with different bytes", body = ErrorBody),
        (status = 413, description = "Module larger than 32 MiB", body = ErrorBody),
        (status = 422, description = "Refused: compile, ABI, manifest or name mismatch (`plugin_refused`)", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn start_canary(
    State(rollout): State<Rollout>,
    State(registry): State<Arc<Registry>>,
    admin: Admin,
    AppPath(name): AppPath<String>,
    AppQuery(share): AppQuery<Share>,
    Body(body): Body,
) -> Result<(StatusCode, axum::Json<PluginInfo>), ApiError> {
    check_name(&name)?;
    let share = basis_points(share.share_percent)?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            "send the wasm module as the body",
        ));
    }
    let info = rollout.start_canary(&name, body.to_vec(), share).await?;
    tracing::info!(plugin = %name, version = %info.version, share_bp = info.share_bp, by = %admin.who, "plugin canary started");
    Ok((StatusCode::CREATED, axum::Json(status_of(&registry, &name))))
}

/// Widen (or narrow) the canary of `name` to `share_percent` of the players, on every host.
#[utoipa::path(
    put, path = "/admin/plugins/{name}/canary", tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Plugin name: 1 to 64 of a-z, 0-9, `_` and `-` (else 400 `bad_plugin_name`)", min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$")),
    request_body = Share,
    responses(
        (status = 200, description = "The new share serves here and is announced", body = PluginInfo),
        (status = 400, description = "A bad name or share (`bad_share`), or a malformed body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No canary (`no_canary`)", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn set_canary_share(
    State(rollout): State<Rollout>,
    State(registry): State<Arc<Registry>>,
    admin: Admin,
    AppPath(name): AppPath<String>,
    AppJson(share): AppJson<Share>,
) -> Result<axum::Json<PluginInfo>, ApiError> {
    check_name(&name)?;
    let share = basis_points(share.share_percent)?;
    let info = rollout.set_canary_share(&name, share).await?;
    tracing::info!(plugin = %name, version = %info.version, share_bp = info.share_bp, by = %admin.who, "plugin canary share changed");
    Ok(axum::Json(status_of(&registry, &name)))
}

/// Promote the canary of `name`: its version becomes the active one for every player on every
/// host, and the version it replaces the rollback target.
#[utoipa::path(
    post, path = "/admin/plugins/{name}/canary/promote", tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Plugin name: 1 to 64 of a-z, 0-9, `_` and `-` (else 400 `bad_plugin_name`)", min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$")),
    responses(
        (status = 200, description = "Promoted here and announced", body = PluginInfo),
        (status = 400, description = "A bad name (`bad_plugin_name`, `bad_path`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No canary (`no_canary`)", body = ErrorBody),
        (status = 422, description = "The stored version no longer loads", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn promote_canary(
    State(rollout): State<Rollout>,
    State(registry): State<Arc<Registry>>,
    admin: Admin,
    AppPath(name): AppPath<String>,
) -> Result<axum::Json<PluginInfo>, ApiError> {
    check_name(&name)?;
    let info = rollout.promote_canary(&name).await?;
    tracing::info!(plugin = %name, version = %info.version, by = %admin.who, "plugin canary promoted");
    Ok(axum::Json(status_of(&registry, &name)))
}

/// Roll the canary of `name` back: every player is served the active version again, on every host.
#[utoipa::path(
    delete, path = "/admin/plugins/{name}/canary", tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Plugin name: 1 to 64 of a-z, 0-9, `_` and `-` (else 400 `bad_plugin_name`)", min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$")),
    responses(
        (status = 200, description = "Ended here and announced", body = PluginInfo),
        (status = 400, description = "A bad name (`bad_plugin_name`, `bad_path`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No canary (`no_canary`)", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn end_canary(
    State(rollout): State<Rollout>,
    State(registry): State<Arc<Registry>>,
    admin: Admin,
    AppPath(name): AppPath<String>,
) -> Result<axum::Json<PluginInfo>, ApiError> {
    check_name(&name)?;
    rollout.end_companion(Companion::Canary, &name).await?;
    tracing::info!(plugin = %name, by = %admin.who, "plugin canary rolled back");
    Ok(axum::Json(status_of(&registry, &name)))
}

/// Attach a stored version of `name` as its shadow: `share_percent` of the live calls of `name`
/// are run on it too, on every host, off the request path, and compared with the live answers
/// (counted in `/metrics` as `cauldron_shadow_calls_total` and here in `shadow_runs`). Nothing the
/// shadow does is applied.
#[utoipa::path(
    put, path = "/admin/plugins/{name}/shadow", tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Plugin name: 1 to 64 of a-z, 0-9, `_` and `-` (else 400 `bad_plugin_name`)", min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$")),
    request_body = ShadowRequest,
    responses(
        (status = 200, description = "Attached here and announced", body = PluginInfo),
        (status = 400, description = "A bad name or share (`bad_share`), or a malformed body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "The plugin serves nothing (`unknown_plugin`) or that version is not stored (`no_artifact`)", body = ErrorBody),
        (status = 422, description = "The stored version does not load", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn attach_shadow(
    State(rollout): State<Rollout>,
    State(registry): State<Arc<Registry>>,
    admin: Admin,
    AppPath(name): AppPath<String>,
    AppJson(req): AppJson<ShadowRequest>,
) -> Result<axum::Json<PluginInfo>, ApiError> {
    check_name(&name)?;
    let share = basis_points(req.share_percent)?;
    let info = rollout.attach_shadow(&name, &req.version, share).await?;
    tracing::info!(plugin = %name, version = %info.version, share_bp = info.share_bp, by = %admin.who, "plugin shadow attached");
    Ok(axum::Json(status_of(&registry, &name)))
}

/// Detach the shadow of `name`, on every host.
#[utoipa::path(
    delete, path = "/admin/plugins/{name}/shadow", tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Plugin name: 1 to 64 of a-z, 0-9, `_` and `-` (else 400 `bad_plugin_name`)", min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$")),
    responses(
        (status = 200, description = "Detached here and announced", body = PluginInfo),
        (status = 400, description = "A bad name (`bad_plugin_name`, `bad_path`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No shadow (`no_shadow`)", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn detach_shadow(
    State(rollout): State<Rollout>,
    State(registry): State<Arc<Registry>>,
    admin: Admin,
    AppPath(name): AppPath<String>,
) -> Result<axum::Json<PluginInfo>, ApiError> {
    check_name(&name)?;
    rollout.end_companion(Companion::Shadow, &name).await?;
    tracing::info!(plugin = %name, by = %admin.who, "plugin shadow detached");
    Ok(axum::Json(status_of(&registry, &name)))
}

impl From<RolloutError> for ApiError {
    fn from(err: RolloutError) -> Self {
        match err {
            RolloutError::Refused { .. } => Self::Rejected {
                code: "plugin_refused".to_owned(),
                message: err.to_string(),
            },
            RolloutError::VersionExists(_) => Self::Conflict {
                code: "version_exists",
                message: err.to_string(),
            },
            RolloutError::NoRollbackTarget(_) => Self::not_found("no_previous", err.to_string()),
            RolloutError::NotLoaded(_) => Self::not_found("unknown_plugin", err.to_string()),
            RolloutError::NoCompanion { kind, .. } => {
                let code = if kind == "shadow" { "no_shadow" } else { "no_canary" };
                Self::not_found(code, err.to_string())
            }
            RolloutError::UnknownCompanion(_) => Self::Internal(err.to_string()),
            RolloutError::MissingArtifact { .. } => Self::not_found("no_artifact", err.to_string()),
            RolloutError::ShaMismatch { .. } => Self::Internal(err.to_string()),
            RolloutError::Store(e) => e.into(),
        }
    }
}

/// Plugin names: 1 to 64 of `a-z 0-9 _ -` (they name files and content folders).
fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "bad_plugin_name",
            format!("a plugin name is 1 to {MAX_NAME} of a-z, 0-9, `_` and `-`"),
        ))
    }
}

fn status_of(registry: &Registry, name: &str) -> PluginInfo {
    registry.status(name).map_or_else(
        || PluginInfo {
            name: name.to_owned(),
            version: None,
            sha256: None,
            loaded_at_ms: None,
            last_error: None,
            replaced_version: None,
            refused: 0,
            canary: None,
            shadow: None,
            shadow_runs: BTreeMap::new(),
        },
        PluginInfo::from,
    )
}
