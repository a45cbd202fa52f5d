//! `/api/v1/admin/plugins`: plugin administration across the cluster, and the rollout follower that
//! applies the announcements on every host.
//!
//! # Credential
//! `Authorization: Bearer <ADMIN_TOKEN>`, or the token of an account with the `admin` role. No or a
//! bad token is 401; a valid player token is 403.
//!
//! # Rollout
//! An upload is validated exactly like a hot reload (`runtime.load`: compile, ABI check, `describe`,
//! manifest checks) with the content tables of `PLUGINS_DIR/NAME/*.toml`; a refused module is
//! recorded in the registry (`last_error`) like a refused file and nothing else changes. An accepted
//! one is stored (`plugin_artifacts`), activated, published in this host's registry, and announced
//! on the bus's `plugins` channel. Every host (this one included; it finds nothing to do) applies an
//! [`Announcement`] by loading the same bytes from the database and publishing them, so all hosts run
//! the same sha256. Rollback and unload travel the same way. The first upload of a plugin that
//! serves from its file first stores that file's version, so a rollback has a stored target.
//!
//! At start-up, `main` loads the active artifacts after the plugin files, so **a stored artifact
//! wins over a file of the same name**: an upload is a deliberate, cluster-wide decision, a file is a
//! host's default. A later change to that file still hot-reloads it on its host (a local override
//! until the next announcement or restart); deleting through the API stops the artifact, and the
//! file, if any, serves again after a restart.

use std::path::Path;

use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use cauldron_runtime::{PluginSource, PluginStatus, read_content_dir, sha256_hex};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{AppPath, Body, authenticate, bearer};
use crate::bus::{Channel, Subscription};
use crate::state::AppState;
use crate::store::{Role, StoreError};

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

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(bearer)
            .ok_or_else(|| {
                ApiError::Unauthorized("the admin API needs `Authorization: Bearer <token>`".into())
            })?;
        if let Some(admin) = &state.config.admin_token
            && constant_time_eq(admin.as_bytes(), token.as_bytes())
        {
            return Ok(Self {
                who: "admin-token".to_owned(),
            });
        }
        let identity = authenticate(state, token).await?;
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
    /// The version a rollback on this host's registry would restore.
    pub previous_version: Option<String>,
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
            previous_version: s.previous_version,
            refused: s.refused,
        }
    }
}

/// What one rollout step sends to the other hosts over the `plugins` channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Announcement {
    /// Serve the stored artifact `name` `version` (upload or rollback).
    Activate {
        /// Plugin name.
        name: String,
        /// Version to serve.
        version: String,
        /// Its sha256, checked against the stored bytes.
        sha256: String,
    },
    /// Stop serving `name`.
    Unload {
        /// Plugin name.
        name: String,
    },
}

/// Every plugin this host's registry knows: version, sha256, load time, last error, previous.
#[utoipa::path(
    get, path = "/admin/plugins", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Plugins", body = Vec<PluginInfo>),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
    )
)]
async fn list(State(state): State<AppState>, _admin: Admin) -> axum::Json<Vec<PluginInfo>> {
    axum::Json(
        state
            .game
            .registry()
            .statuses()
            .into_iter()
            .map(PluginInfo::from)
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
    State(state): State<AppState>,
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
    let registry = state.game.registry();
    let source = source_for(&state.config.plugins_dir, &name, body.to_vec())
        .await
        .map_err(|e| refused(&state, &name, &e))?;
    let version = state
        .game
        .runtime()
        .load(source)
        .await
        .map_err(|e| refused(&state, &name, &e))?;
    store_baseline(&state, &name).await?;
    let stored = state
        .store()
        .put_artifact(&name, version.version(), &body)
        .await
        .map_err(|e| match e {
            StoreError::Invalid(msg) => ApiError::Conflict {
                code: "version_exists",
                message: format!("{msg}; bump the plugin's version"),
            },
            other => other.into(),
        })?;
    state.store().activate_artifact(&name, &stored.version).await?;
    registry.publish(version);
    tracing::info!(plugin = %name, version = %stored.version, sha256 = %stored.sha256, by = %admin.who, "plugin uploaded");
    announce(
        &state,
        &Announcement::Activate {
            name: name.clone(),
            version: stored.version,
            sha256: stored.sha256,
        },
    )
    .await;
    Ok((StatusCode::CREATED, axum::Json(status_of(&state, &name))))
}

/// Re-activate the previously active stored version of `name` on every host.
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
    State(state): State<AppState>,
    admin: Admin,
    AppPath(name): AppPath<String>,
) -> Result<axum::Json<PluginInfo>, ApiError> {
    check_name(&name)?;
    let info = state
        .store()
        .rollback_artifact(&name)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found(
                "no_previous",
                format!("plugin `{name}` has no stored version to roll back to"),
            ),
            other => other.into(),
        })?;
    let announcement = Announcement::Activate {
        name: name.clone(),
        version: info.version.clone(),
        sha256: info.sha256.clone(),
    };
    apply(&state, &announcement).await?;
    tracing::info!(plugin = %name, version = %info.version, by = %admin.who, "plugin rolled back");
    announce(&state, &announcement).await;
    Ok(axum::Json(status_of(&state, &name)))
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
    State(state): State<AppState>,
    admin: Admin,
    AppPath(name): AppPath<String>,
) -> Result<StatusCode, ApiError> {
    check_name(&name)?;
    let stored = match state.store().deactivate_artifact(&name).await {
        Ok(()) => true,
        Err(StoreError::NotFound) => false,
        Err(e) => return Err(e.into()),
    };
    let loaded = state.game.registry().unload(&name);
    if !stored && !loaded {
        return Err(ApiError::not_found(
            "unknown_plugin",
            format!("no plugin `{name}` is loaded"),
        ));
    }
    tracing::info!(plugin = %name, by = %admin.who, "plugin unloaded");
    announce(&state, &Announcement::Unload { name }).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Before the first upload of `name`, store the version serving now from its file (when the file
/// still holds exactly those bytes) and activate it, so the upload's rollback target is in the
/// database and a rollback reaches every host.
async fn store_baseline(state: &AppState, name: &str) -> Result<(), ApiError> {
    let Some(current) = state.game.registry().get(name) else {
        return Ok(());
    };
    let store = state.store();
    if store.active_artifacts().await?.iter().any(|a| a.name == name) {
        return Ok(());
    }
    let path = state.config.plugins_dir.join(format!("{name}.wasm"));
    let Ok(bytes) = tokio::fs::read(&path).await else {
        return Ok(());
    };
    if sha256_hex(&bytes) != current.sha256 {
        return Ok(());
    }
    match store.put_artifact(name, current.version(), &bytes).await {
        Ok(_) => {}
        // Stored earlier with other bytes under the same version: that one stays the record.
        Err(StoreError::Invalid(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    store.activate_artifact(name, current.version()).await?;
    tracing::info!(plugin = %name, version = %current.version(), "stored the file version as the rollback target");
    Ok(())
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

/// `wasm` with the content tables of `plugins_dir/name/*.toml`, as a hot reload would read them.
async fn source_for(
    plugins_dir: &Path,
    name: &str,
    wasm: Vec<u8>,
) -> Result<PluginSource, cauldron_runtime::PluginError> {
    let dir = plugins_dir.join(name);
    let content = tokio::task::spawn_blocking(move || read_content_dir(&dir))
        .await
        .map_err(|e| {
            cauldron_runtime::PluginError::host(
                cauldron_runtime::HostFailure::Internal,
                format!("reading content: {e}"),
            )
        })??;
    Ok(PluginSource {
        wasm,
        content,
        expected_name: Some(name.to_owned()),
    })
}

/// Record a refused load like the watcher does, and render it as a 422.
fn refused(state: &AppState, name: &str, err: &cauldron_runtime::PluginError) -> ApiError {
    state.game.registry().refuse(name, err);
    ApiError::Rejected {
        code: "plugin_refused".to_owned(),
        message: format!("plugin `{name}` was refused: {err}"),
    }
}

fn status_of(state: &AppState, name: &str) -> PluginInfo {
    state.game.registry().status(name).map_or_else(
        || PluginInfo {
            name: name.to_owned(),
            version: None,
            sha256: None,
            loaded_at_ms: None,
            last_error: None,
            previous_version: None,
            refused: 0,
        },
        PluginInfo::from,
    )
}

/// Tell every host (this one too; it finds nothing to do).
async fn announce(state: &AppState, announcement: &Announcement) {
    match serde_json::to_vec(announcement) {
        Ok(bytes) => {
            let published = state
                .game
                .services()
                .bus
                .publish(&Channel::Plugins, bytes.into())
                .await;
            if state.game.services().uses_redis() && !published.remote {
                tracing::warn!(
                    ?announcement,
                    "plugin announcement not sent: Redis is down; other hosts pick the change up at restart"
                );
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot encode a plugin announcement"),
    }
}

/// Bring this host's registry in line with `announcement`. Does nothing when it already is.
///
/// # Errors
/// The artifact is missing, its bytes do not match the announced sha256, or it does not load.
pub async fn apply(state: &AppState, announcement: &Announcement) -> Result<&'static str, ApiError> {
    let registry = state.game.registry();
    match announcement {
        Announcement::Unload { name } => Ok(if registry.unload(name) {
            "unloaded"
        } else {
            "unchanged"
        }),
        Announcement::Activate {
            name,
            version,
            sha256,
        } => {
            if registry.get(name).is_some_and(|v| &v.sha256 == sha256) {
                return Ok("unchanged");
            }
            let bytes = state
                .store()
                .artifact_bytes(name, version)
                .await?
                .ok_or_else(|| {
                    ApiError::not_found("no_artifact", format!("{name} {version} is not stored"))
                })?;
            if &sha256_hex(&bytes) != sha256 {
                return Err(ApiError::Internal(format!(
                    "stored {name} {version} does not match the announced sha256 {sha256}"
                )));
            }
            let source = source_for(&state.config.plugins_dir, name, bytes)
                .await
                .map_err(|e| refused(state, name, &e))?;
            let loaded = state
                .game
                .runtime()
                .load(source)
                .await
                .map_err(|e| refused(state, name, &e))?;
            registry.publish(loaded);
            Ok("loaded")
        }
    }
}

/// Load every active stored artifact into the registry (at start-up, after the plugin files: the
/// database wins). Returns how many now serve; failures are logged and recorded in the registry.
pub async fn load_active_artifacts(state: &AppState) -> usize {
    let active = match state.store().active_artifacts().await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the stored plugin artifacts; serving the plugin files only");
            return 0;
        }
    };
    let mut loaded = 0;
    for artifact in active {
        let announcement = Announcement::Activate {
            name: artifact.name.clone(),
            version: artifact.version.clone(),
            sha256: artifact.sha256.clone(),
        };
        match apply(state, &announcement).await {
            Ok(_) => loaded += 1,
            Err(e) => {
                tracing::error!(plugin = %artifact.name, version = %artifact.version, error = %e, "stored plugin artifact did not load");
            }
        }
    }
    loaded
}

/// Subscribe to the `plugins` channel; the returned task applies each announcement in order until
/// shutdown. Subscribing before returning means nothing announced after this call is missed.
pub async fn follow_rollouts(state: AppState) -> tokio::task::JoinHandle<()> {
    let sub = state.game.services().bus.subscribe(&Channel::Plugins).await;
    tokio::spawn(rollout_loop(state, sub))
}

async fn rollout_loop(state: AppState, mut sub: Subscription) {
    let stop = state.shutdown.wait();
    tokio::pin!(stop);
    loop {
        let payload = tokio::select! {
            () = &mut stop => return,
            p = sub.recv() => match p {
                Some(p) => p,
                None => return,
            },
        };
        let announcement: Announcement = match serde_json::from_slice(&payload) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a malformed plugin announcement");
                continue;
            }
        };
        let op = match &announcement {
            Announcement::Activate { .. } => "activate",
            Announcement::Unload { .. } => "unload",
        };
        match apply(&state, &announcement).await {
            Ok(result) => {
                if result != "unchanged" {
                    tracing::info!(?announcement, result, "plugin announcement applied");
                }
                state.metrics.inc(
                    "cauldron_plugin_rollouts_total",
                    &[("op", op), ("result", result)],
                );
            }
            Err(e) => {
                tracing::error!(?announcement, error = %e, "plugin announcement could not be applied");
                state.metrics.inc(
                    "cauldron_plugin_rollouts_total",
                    &[("op", op), ("result", "failed")],
                );
            }
        }
    }
}
