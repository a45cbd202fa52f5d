//! `/api/v1/admin/plugins`: plugin administration across the cluster, and the rollout follower that
//! applies the announcements on every host.
//!
//! # Credential
//! `Authorization: Bearer <ADMIN_TOKEN>`, or the token of an account with the `admin` role. No or a
//! bad token is 401; a valid player token is 403.
//!
//! # Rollout
//! The handlers check the credential and the name and answer in the API's format; what an upload,
//! a rollback, an activation or an unload does is `crate::rollout`'s. An upload is one request: a
//! plugin bundle (`Content-Type: application/vnd.cauldron.bundle`, the encoding of sdk/ABI.md, the
//! module with its content tables), or a bare wasm module (any other content type), which is bundled
//! with the content tables on the answering host's disk.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use cauldron_runtime::{
    ALL_BP, BUNDLE_MEDIA_TYPE, Bundle, Companion, CompanionStatus, PluginStatus, Registry,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{AppJson, AppPath, AppQuery, Body, bearer};
use crate::game::Game;
use crate::game::shadow::ShadowCounts;
use crate::replay::{ReplayError, ReplayFilter, ReplayOptions, ReplayReport};
use crate::rollout::{Rollout, RolloutError};
use crate::state::{AppState, AuthState};
use crate::store::{ArtifactInfo, Role};

/// Largest plugin module or bundle an upload may carry.
pub const MAX_UPLOAD_BYTES: usize = 32 * 1024 * 1024;
/// Longest plugin name.
pub const MAX_NAME: usize = 64;

/// The admin routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(upload, unload))
        .routes(routes!(rollback))
        .routes(routes!(versions))
        .routes(routes!(activate))
        .routes(routes!(replay))
        .routes(routes!(set_canary, end_canary))
        .routes(routes!(promote_canary))
        .routes(routes!(set_shadow, end_shadow))
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
    /// What identifies the serving version: the hex sha256 of its bundle (module and content
    /// tables together), as `action_log.plugin_sha256` records it.
    pub sha256: Option<String>,
    /// Hex sha256 of the serving module alone.
    pub wasm_sha256: Option<String>,
    /// When the serving version was loaded, ms since the epoch.
    pub loaded_at_ms: Option<i64>,
    /// The latest refused load (upload or file), if after the serving version.
    pub last_error: Option<String>,
    /// The version the serving one replaced in this host's memory (since start). Not what a
    /// rollback restores: that is the stored artifact active before the current one.
    pub replaced_version: Option<String>,
    /// Refused loads since start.
    pub refused: u64,
    /// In the answer to an upload: the version stored (which serves unless `activate=false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored: Option<StoredVersion>,
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
    /// Its version (semver from its manifest).
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

/// A stored version to serve as a canary or run as a shadow, and its share.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompanionRequest {
    /// The digest of a stored version of the plugin (`stored.sha256` in the answer to an upload
    /// with `activate=false`; `GET /admin/plugins/{name}/versions` lists them).
    #[schema(min_length = 64, max_length = 64, pattern = "^[0-9a-f]{64}$")]
    pub sha256: String,
    /// Percent of the players (canary) or of the live calls (shadow), 0 to 100 in steps of 0.01.
    #[schema(minimum = 0, maximum = 100)]
    pub share_percent: f64,
}

impl CompanionRequest {
    /// The digest, checked, and the share in basis points; else 400 `bad_digest` or `bad_share`.
    fn checked(&self) -> Result<(&str, u32), ApiError> {
        let digest = self.sha256.as_str();
        if digest.len() != 64
            || !digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ApiError::bad_request(
                "bad_digest",
                "sha256 is 64 lowercase hex digits",
            ));
        }
        let p = self.share_percent;
        if !(0.0..=100.0).contains(&p) {
            return Err(ApiError::bad_request(
                "bad_share",
                "share_percent is a number from 0 to 100",
            ));
        }
        Ok((digest, ((p * 100.0).round() as u32).min(ALL_BP)))
    }
}

impl From<PluginStatus> for PluginInfo {
    fn from(s: PluginStatus) -> Self {
        Self {
            name: s.name,
            version: s.version,
            sha256: s.sha256,
            wasm_sha256: s.wasm_sha256,
            loaded_at_ms: s.loaded_at_ms,
            last_error: s.last_error,
            replaced_version: s.replaced_version,
            refused: s.refused,
            stored: None,
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

/// Upload a new version of `name` in one request: a plugin bundle (module and content tables), or a
/// bare wasm module bundled with the host's content tables. Validated like a hot reload; stored,
/// activated and rolled out to every host. A content-only change is a new version.
#[utoipa::path(
    post, path = "/admin/plugins/{name}", tag = "admin",
    security(("bearer" = [])),
    params(
        ("name" = String, Path, description = "Plugin name, as in the module's manifest: 1 to 64 of a-z, 0-9, `_` and `-` (else 400 `bad_plugin_name`)", min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$"),
        ("activate" = Option<bool>, Query, description = "`false` stores and validates the version without serving it (to replay it first, or activate it later by digest); default `true`"),
    ),
    request_body(
        description = "With `Content-Type: application/vnd.cauldron.bundle`, an encoded plugin bundle \
            (sdk/ABI.md, \"Plugin bundles\"); otherwise the wasm module",
        content(
            (Vec<u8> = "application/vnd.cauldron.bundle"),
            (Vec<u8> = "application/wasm"),
        )
    ),
    responses(
        (status = 201, description = "Stored (its version in `stored`) and, unless `activate=false`, serving here and announced to every host", body = PluginInfo),
        (status = 400, description = "A bad name (`bad_plugin_name`, `bad_path`), a bad query (`bad_query`), an empty body (`empty_body`) or a bundle that does not decode (`bad_bundle`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 413, description = "Body larger than 32 MiB", body = ErrorBody),
        (status = 422, description = "Refused: compile, ABI, manifest, name mismatch or a content table that does not parse (`plugin_refused`)", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn upload(
    State(rollout): State<Rollout>,
    State(registry): State<Arc<Registry>>,
    admin: Admin,
    AppPath(name): AppPath<String>,
    AppQuery(query): AppQuery<UploadQuery>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<(StatusCode, axum::Json<PluginInfo>), ApiError> {
    check_name(&name)?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            "send the plugin bundle or the wasm module as the body",
        ));
    }
    let is_bundle = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(BUNDLE_MEDIA_TYPE));
    let bundle = if is_bundle {
        Bundle::decode(&body).map_err(|e| ApiError::bad_request("bad_bundle", e.to_string()))?
    } else {
        rollout.bundle_with_local_content(&name, body.to_vec()).await?
    };
    let activate = query.activate.unwrap_or(true);
    let stored = if activate {
        rollout.upload_bundle(&name, bundle).await?
    } else {
        rollout.store_bundle(&name, bundle).await?
    };
    tracing::info!(plugin = %name, version = %stored.version, sha256 = %stored.sha256, activate, by = %admin.who, "plugin uploaded");
    let mut info = status_of(&registry, &name);
    info.stored = Some(StoredVersion::from(stored));
    Ok((StatusCode::CREATED, axum::Json(info)))
}

/// The upload's options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// `false` stores (and validates) the version without serving it, to replay it first or
    /// activate it later by digest; default `true`.
    pub activate: Option<bool>,
}

/// A stored version of a plugin.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredVersion {
    /// Semver from its manifest (several stored versions may share one).
    pub version: String,
    /// What identifies it: the hex sha256 of its bundle.
    pub sha256: String,
    /// Hex sha256 of its module alone.
    pub wasm_sha256: String,
    /// Whether it is stored as a bundle (false: a module stored before bundles, which loads with
    /// the host's content tables).
    pub bundle: bool,
    /// Stored size in bytes.
    pub size: i64,
    /// Whether every host serves it.
    pub active: bool,
    /// Whether a rollback re-activates it.
    pub previous: bool,
    /// When it was uploaded, ms since the epoch.
    pub uploaded_ms: i64,
}

impl From<ArtifactInfo> for StoredVersion {
    fn from(a: ArtifactInfo) -> Self {
        Self {
            version: a.version,
            sha256: a.sha256,
            wasm_sha256: a.wasm_sha256,
            bundle: a.bundle,
            size: a.size,
            active: a.active,
            previous: a.previous,
            uploaded_ms: a.uploaded_ms,
        }
    }
}

/// The stored versions of `name`, newest first (the last `PLUGIN_KEEP_VERSIONS` are kept).
#[utoipa::path(
    get, path = "/admin/plugins/{name}/versions", tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Plugin name: 1 to 64 of a-z, 0-9, `_` and `-` (else 400 `bad_plugin_name`)", min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$")),
    responses(
        (status = 200, description = "Stored versions, newest first (empty when none is stored)", body = Vec<StoredVersion>),
        (status = 400, description = "A bad name (`bad_plugin_name`, `bad_path`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn versions(
    State(rollout): State<Rollout>,
    _admin: Admin,
    AppPath(name): AppPath<String>,
) -> Result<axum::Json<Vec<StoredVersion>>, ApiError> {
    check_name(&name)?;
    let list = rollout.versions(&name).await?;
    Ok(axum::Json(list.into_iter().map(StoredVersion::from).collect()))
}

/// Serve the stored version `sha256` of `name` on every host (any version still kept); the one it
/// replaces becomes the rollback target.
#[utoipa::path(
    post, path = "/admin/plugins/{name}/versions/{sha256}/activate", tag = "admin",
    security(("bearer" = [])),
    params(
        ("name" = String, Path, description = "Plugin name: 1 to 64 of a-z, 0-9, `_` and `-` (else 400 `bad_plugin_name`)", min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$"),
        ("sha256" = String, Path, description = "The version's digest: 64 lowercase hex digits (else 400 `bad_digest`)", min_length = 64, max_length = 64, pattern = "^[0-9a-f]{64}$"),
    ),
    responses(
        (status = 200, description = "Serving here and announced", body = PluginInfo),
        (status = 400, description = "A bad name or digest (`bad_plugin_name`, `bad_digest`, `bad_path`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No such stored version (`no_artifact`)", body = ErrorBody),
        (status = 422, description = "The stored version no longer loads (`plugin_refused`)", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn activate(
    State(rollout): State<Rollout>,
    State(registry): State<Arc<Registry>>,
    admin: Admin,
    AppPath((name, sha256)): AppPath<(String, String)>,
) -> Result<axum::Json<PluginInfo>, ApiError> {
    check_name(&name)?;
    check_digest(&sha256)?;
    let info = rollout.activate(&name, &sha256).await?;
    tracing::info!(plugin = %name, version = %info.version, sha256 = %info.sha256, by = %admin.who, "plugin version activated");
    Ok(axum::Json(status_of(&registry, &name)))
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

/// Most actions one replay request may run.
pub const MAX_REPLAY: u64 = 100_000;
/// Most players a replay request may name.
pub const MAX_REPLAY_PLAYERS: usize = 100;
/// Most divergences a replay request may ask diffs for.
pub const MAX_REPLAY_DIFFS: usize = 100;

/// Which logged actions to replay, against which stored version.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// The digest of the stored version to replay against (64 lowercase hex digits; see
    /// `GET /admin/plugins/{name}/versions`).
    #[schema(min_length = 64, max_length = 64, pattern = "^[0-9a-f]{64}$")]
    pub candidate: String,
    /// Only actions logged at or after this time (ms since the epoch).
    #[schema(minimum = 0)]
    pub since_ms: Option<i64>,
    /// Only actions logged before this time (ms since the epoch).
    #[schema(minimum = 0)]
    pub until_ms: Option<i64>,
    /// Only these players' actions (at most 100).
    #[serde(default)]
    #[schema(max_items = 100)]
    pub players: Vec<i64>,
    /// Only this action.
    #[schema(min_length = 1, max_length = 64)]
    pub action: Option<String>,
    /// At most this many actions, oldest first (1 to 100000; default 1000).
    #[schema(minimum = 1, maximum = 100000)]
    pub limit: Option<u64>,
    /// How many divergences to show as diffs (0 to 100; default 10).
    #[schema(minimum = 0, maximum = 100)]
    pub diffs: Option<usize>,
}

/// Replay logged actions of `name` against a stored version, applying nothing: how many would
/// come out identical, diverge (by what differs) or fault, with the first divergences as diffs.
/// Runs on this host's runtime beside live calls, on at most half its call slots; a replay longer
/// than the request timeout is cut off (504): narrow it with the filters, or use `cauldron replay`.
#[utoipa::path(
    post, path = "/admin/plugins/{name}/replay", tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Plugin name: 1 to 64 of a-z, 0-9, `_` and `-` (else 400 `bad_plugin_name`)", min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$")),
    request_body(content = ReplayRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The replay's report", body = ReplayReport),
        (status = 400, description = "A bad name, digest or filter (`bad_plugin_name`, `bad_digest`, `bad_replay`, `bad_json`, `bad_path`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No such stored version (`no_artifact`)", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 422, description = "The stored version does not load (`plugin_refused`)", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn replay(
    State(rollout): State<Rollout>,
    admin: Admin,
    AppPath(name): AppPath<String>,
    AppJson(req): AppJson<ReplayRequest>,
) -> Result<axum::Json<ReplayReport>, ApiError> {
    check_name(&name)?;
    check_digest(&req.candidate)?;
    let bad = |m: &str| Err(ApiError::bad_request("bad_replay", m.to_owned()));
    let limit = req.limit.unwrap_or(1000);
    if !(1..=MAX_REPLAY).contains(&limit) {
        return bad("`limit` is 1 to 100000");
    }
    let diffs = req.diffs.unwrap_or(crate::replay::DEFAULT_DIFFS);
    if diffs > MAX_REPLAY_DIFFS {
        return bad("`diffs` is 0 to 100");
    }
    if req.players.len() > MAX_REPLAY_PLAYERS {
        return bad("at most 100 `players`");
    }
    if req.since_ms.is_some_and(|t| t < 0) || req.until_ms.is_some_and(|t| t < 0) {
        return bad("times are ms since the epoch, not negative");
    }
    if req.action.as_ref().is_some_and(|a| a.is_empty() || a.len() > 64) {
        return bad("`action` is 1 to 64 characters");
    }
    let candidate = rollout.load_stored(&name, &req.candidate).await?;
    let runtime = rollout.runtime();
    let originals = Arc::new(crate::replay::Originals::new(
        runtime.clone(),
        Arc::clone(rollout.store()),
        &name,
        Some(Arc::clone(rollout.registry())),
        Some(rollout.plugins_dir().to_path_buf()),
    ));
    let options = ReplayOptions {
        filter: ReplayFilter {
            since_ms: req.since_ms,
            until_ms: req.until_ms,
            players: req.players,
            action: req.action,
            limit: Some(limit),
        },
        diffs,
        // Live calls keep at least half the call slots.
        workers: (runtime.limits().max_concurrent_calls / 2).max(1),
        measure: false,
    };
    let report = crate::replay::replay(
        runtime,
        Arc::clone(rollout.store()),
        &name,
        candidate,
        originals,
        &options,
    )
    .await
    .map_err(|e| match e {
        ReplayError::Store(e) => ApiError::from(e),
        ReplayError::Candidate(m) => ApiError::Rejected {
            code: "plugin_refused".to_owned(),
            message: m,
        },
        ReplayError::Internal(m) => ApiError::Internal(m),
    })?;
    tracing::info!(plugin = %name, candidate = %req.candidate, replayed = report.replayed, diverged = report.diverged.total, faulted = report.faulted, by = %admin.who, "plugin replay");
    Ok(axum::Json(report))
}

/// Serve a stored version of `name` as its canary to `share_percent` of the players, on every host
/// (start a canary, or widen or narrow it). Which players is a hash of the plugin name and the
/// player id: the same players on every host, and widening keeps them. Every action's log row
/// records the version that served it.
#[utoipa::path(
    put, path = "/admin/plugins/{name}/canary", tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Plugin name: 1 to 64 of a-z, 0-9, `_` and `-` (else 400 `bad_plugin_name`)", min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$")),
    request_body(content = CompanionRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Serving here and announced to every host", body = PluginInfo),
        (status = 400, description = "A bad name, digest or share (`bad_plugin_name`, `bad_digest`, `bad_share`, `bad_json`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "The plugin serves nothing (`unknown_plugin`) or no such version is stored (`no_artifact`)", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 422, description = "The stored version does not load (`plugin_refused`)", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn set_canary(
    State(rollout): State<Rollout>,
    State(registry): State<Arc<Registry>>,
    admin: Admin,
    AppPath(name): AppPath<String>,
    AppJson(req): AppJson<CompanionRequest>,
) -> Result<axum::Json<PluginInfo>, ApiError> {
    set_companion(Companion::Canary, &rollout, &registry, &admin, &name, &req).await
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
    end_companion(Companion::Canary, &rollout, &registry, &admin, &name).await
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

/// Run a stored version of `name` as its shadow: `share_percent` of the live calls of `name` are
/// run on it too, on every host, off the request path, and compared with the live answers (counted
/// in `/metrics` as `cauldron_shadow_calls_total` and here in `shadow_runs`). Nothing the shadow
/// does is applied.
#[utoipa::path(
    put, path = "/admin/plugins/{name}/shadow", tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Plugin name: 1 to 64 of a-z, 0-9, `_` and `-` (else 400 `bad_plugin_name`)", min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$")),
    request_body(content = CompanionRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Serving here and announced to every host", body = PluginInfo),
        (status = 400, description = "A bad name, digest or share (`bad_plugin_name`, `bad_digest`, `bad_share`, `bad_json`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "The plugin serves nothing (`unknown_plugin`) or no such version is stored (`no_artifact`)", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 422, description = "The stored version does not load (`plugin_refused`)", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn set_shadow(
    State(rollout): State<Rollout>,
    State(registry): State<Arc<Registry>>,
    admin: Admin,
    AppPath(name): AppPath<String>,
    AppJson(req): AppJson<CompanionRequest>,
) -> Result<axum::Json<PluginInfo>, ApiError> {
    set_companion(Companion::Shadow, &rollout, &registry, &admin, &name, &req).await
}

/// Detach the shadow of `name`, on every host.
#[utoipa::path(
    delete, path = "/admin/plugins/{name}/shadow", tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Plugin name: 1 to 64 of a-z, 0-9, `_` and `-` (else 400 `bad_plugin_name`)", min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$")),
    responses(
        (status = 200, description = "Ended here and announced", body = PluginInfo),
        (status = 400, description = "A bad name (`bad_plugin_name`, `bad_path`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No shadow (`no_shadow`)", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn end_shadow(
    State(rollout): State<Rollout>,
    State(registry): State<Arc<Registry>>,
    admin: Admin,
    AppPath(name): AppPath<String>,
) -> Result<axum::Json<PluginInfo>, ApiError> {
    end_companion(Companion::Shadow, &rollout, &registry, &admin, &name).await
}

/// `PUT …/canary` and `PUT …/shadow`: attach (or re-share) the `kind` companion of `name`.
async fn set_companion(
    kind: Companion,
    rollout: &Rollout,
    registry: &Registry,
    admin: &Admin,
    name: &str,
    req: &CompanionRequest,
) -> Result<axum::Json<PluginInfo>, ApiError> {
    check_name(name)?;
    let (sha256, share) = req.checked()?;
    let info = rollout.set_companion(kind, name, sha256, share).await?;
    tracing::info!(plugin = %name, companion = kind.label(), version = %info.version, sha256 = %info.sha256, share_bp = info.share_bp, by = %admin.who, "plugin companion set");
    Ok(axum::Json(status_of(registry, name)))
}

/// `DELETE …/canary` and `DELETE …/shadow`: end the `kind` companion of `name`.
async fn end_companion(
    kind: Companion,
    rollout: &Rollout,
    registry: &Registry,
    admin: &Admin,
    name: &str,
) -> Result<axum::Json<PluginInfo>, ApiError> {
    check_name(name)?;
    rollout.end_companion(kind, name).await?;
    tracing::info!(plugin = %name, companion = kind.label(), by = %admin.who, "plugin companion ended");
    Ok(axum::Json(status_of(registry, name)))
}

impl From<RolloutError> for ApiError {
    fn from(err: RolloutError) -> Self {
        match err {
            RolloutError::Refused { .. } => Self::Rejected {
                code: "plugin_refused".to_owned(),
                message: err.to_string(),
            },
            RolloutError::NoRollbackTarget(_) => Self::not_found("no_previous", err.to_string()),
            RolloutError::NotLoaded(_) => Self::not_found("unknown_plugin", err.to_string()),
            RolloutError::NoCompanion { kind, .. } => {
                let code = match kind {
                    Companion::Canary => "no_canary",
                    Companion::Shadow => "no_shadow",
                };
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

/// A version digest: 64 lowercase hex digits.
pub(crate) fn check_digest(digest: &str) -> Result<(), ApiError> {
    if digest.len() == 64
        && digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "bad_digest",
            "a version digest is 64 lowercase hex digits",
        ))
    }
}

fn status_of(registry: &Registry, name: &str) -> PluginInfo {
    registry.status(name).map_or_else(
        || PluginInfo {
            name: name.to_owned(),
            version: None,
            sha256: None,
            wasm_sha256: None,
            loaded_at_ms: None,
            last_error: None,
            replaced_version: None,
            refused: 0,
            stored: None,
            canary: None,
            shadow: None,
            shadow_runs: BTreeMap::new(),
        },
        PluginInfo::from,
    )
}
