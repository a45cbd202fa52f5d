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

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use cauldron_runtime::{PluginStatus, Registry};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{AppPath, Body, bearer};
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
async fn list(State(registry): State<Arc<Registry>>, _admin: Admin) -> axum::Json<Vec<PluginInfo>> {
    axum::Json(registry.statuses().into_iter().map(PluginInfo::from).collect())
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
        },
        PluginInfo::from,
    )
}
