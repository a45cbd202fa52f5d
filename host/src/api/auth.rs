//! `/api/v1/auth`: register, login, logout, me; and the follower that keeps this host's in-memory
//! list of revoked tokens current.
//!
//! # Revocations
//! A logout records the revocation in the database, adds it to this host's list at once (so this
//! host refuses the token from the next request on) and announces it on the bus's `revocations`
//! channel for the other hosts. Since a host can miss an announcement (Redis down or reconnecting),
//! [`follow_revocations`] also reloads the whole list from the database every
//! [`REVOCATIONS_RELOAD_EVERY`] and as soon as the bus reconnects. Until the first load succeeds
//! (the database down at start-up), every request asks the database instead.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::client::ClientAddr;
use super::error::{ApiError, ErrorBody};
use super::extract::{AppJson, Auth};
use super::rate_limit;
use crate::auth::{HashError, check_password, check_username};
use crate::bus::{Channel, Subscription};
use crate::cache::Services;
use crate::game::GameError;
use crate::json::check_text;
use crate::state::{AppState, AuthState};
use crate::store::{Account, Player, Role, Store, StoreError};

/// The auth routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
}

/// A new account's username and password, with the rules registration checks.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Credentials {
    /// 3–24 characters, each an ASCII letter or digit, `_`, or a CJK ideograph (U+3400–U+4DBF,
    /// U+4E00–U+9FFF, U+F900–U+FAFF, U+20000–U+2A6DF, U+2A700–U+2EBEF, U+30000–U+3134F); else 400
    /// `invalid_username`.
    #[schema(
        example = "player_one",
        min_length = 3,
        max_length = 24,
        pattern = "^[A-Za-z0-9_\u{3400}-\u{4DBF}\u{4E00}-\u{9FFF}\u{F900}-\u{FAFF}\u{20000}-\u{2A6DF}\u{2A700}-\u{2EBEF}\u{30000}-\u{3134F}]+$"
    )]
    pub username: String,
    /// 8–128 characters, none of them NUL (U+0000); else 400 `invalid_password`.
    #[schema(
        example = "correct horse battery",
        min_length = 8,
        max_length = 128,
        pattern = "^[^\\u0000]+$"
    )]
    pub password: String,
}

/// A username and password to log in with. Any text without a NUL (U+0000) is accepted and simply
/// fails to match when no account has it (401).
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginCredentials {
    /// The account's username; a NUL in it is a 400 `bad_text`.
    #[schema(example = "player_one", pattern = "^[^\\u0000]*$")]
    pub username: String,
    /// The account's password; a NUL in it is a 400 `bad_text`.
    #[schema(example = "correct horse battery", pattern = "^[^\\u0000]*$")]
    pub password: String,
}

/// An account as clients see it (never its password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    /// Account id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// `player` or `admin`.
    pub role: String,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        Self {
            id: a.id,
            username: a.username.clone(),
            role: a.role.as_str().to_owned(),
            created_ms: a.created_ms,
        }
    }
}

/// A character.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlayerView {
    /// Player id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// State version, bumped by every applied action.
    pub version: i64,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
}

impl From<&Player> for PlayerView {
    fn from(p: &Player) -> Self {
        Self {
            id: p.id,
            name: p.name.clone(),
            version: p.version,
            created_ms: p.created_ms,
        }
    }
}

/// A token and who it is for.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    /// Bearer token (HS256 JWT) for `Authorization: Bearer <token>`.
    pub token: String,
    /// When it expires, ms since the epoch.
    pub expires_ms: i64,
    /// The account.
    pub account: AccountView,
    /// Its character.
    pub player: PlayerView,
}

/// Who the token belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The account.
    pub account: AccountView,
    /// Its character.
    pub player: PlayerView,
}

fn session(state: &AppState, account: &Account, player: &Player) -> Result<Session, ApiError> {
    let issued = state
        .auth
        .keys
        .issue(account.id, player.id, account.role)
        .map_err(ApiError::internal)?;
    Ok(Session {
        token: issued.token,
        expires_ms: issued.expires_ms,
        account: account.into(),
        player: player.into(),
    })
}

/// The account's character, created now if an earlier registration stopped before making it.
async fn character(state: &AppState, account: &Account) -> Result<Player, ApiError> {
    if let Some(player) = state.store.player_by_account(account.id).await? {
        return Ok(player);
    }
    match state
        .game
        .create_character(account.id, crate::store::DEFAULT_PLAYER_NAME)
        .await
    {
        Ok(player) => Ok(player),
        // A concurrent login created it first.
        Err(GameError::Store(StoreError::Invalid(_))) => state
            .store
            .player_by_account(account.id)
            .await?
            .ok_or_else(|| ApiError::internal("character vanished after a concurrent creation")),
        Err(e) => Err(e.into()),
    }
}

/// How long a client refused for want of a hashing slot is asked to wait.
const HASH_BUSY_RETRY: Duration = Duration::from_secs(1);

/// A [`HashError`] as the client sees it: busy is a 429 (the host's hashing is saturated; try again
/// shortly), anything else a 500.
fn hash_error(state: &AppState, err: HashError) -> ApiError {
    match err {
        HashError::Busy => {
            state.metrics.inc("cauldron_password_hash_busy_total", &[]);
            ApiError::RateLimited {
                retry_after: HASH_BUSY_RETRY,
            }
        }
        HashError::Failed(e) => ApiError::internal(e),
    }
}

/// Create an account and its character; returns a token.
///
/// Limited per client address (`RATE_LIMIT_REGISTER_BURST`, `RATE_LIMIT_REGISTER_PER_MIN`; the
/// address is the connection's, or behind a trusted proxy the one it forwards), counted once the
/// username and password pass their rules. Also refused with 429 when the host is already hashing
/// as many passwords as it allows (`PASSWORD_HASH_CONCURRENCY`) for `PASSWORD_HASH_WAIT_MS`.
#[utoipa::path(
    post, path = "/auth/register", tag = "auth",
    operation_id = "register",
    request_body = Credentials,
    responses(
        (status = 201, description = "Account and character created", body = Session, links(
            ("login" = (operation_id = "login", description = "Log in again with the same username and password",
                request_body = json!({"username": "$request.body#/username", "password": "$request.body#/password"}))),
            ("player" = (operation_id = "getPlayer", description = "The new character's state (with the returned token)")),
            ("stats" = (operation_id = "getPlayerStats", description = "The new character's stats (with the returned token)")),
            ("me" = (operation_id = "me", description = "The new account (with the returned token)")),
        )),
        (status = 400, description = "Malformed JSON (`bad_json`), or a username (`invalid_username`) or password (`invalid_password`) rule failed", body = ErrorBody),
        (status = 409, description = "The username is taken", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 429, description = "Too many registrations from this address, or the host is busy hashing passwords; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn register(
    State(state): State<AppState>,
    client: ClientAddr,
    AppJson(body): AppJson<Credentials>,
) -> Result<(StatusCode, axum::Json<Session>), ApiError> {
    check_username(&body.username).map_err(|m| ApiError::bad_request("invalid_username", m))?;
    check_password(&body.password).map_err(|m| ApiError::bad_request("invalid_password", m))?;
    if let Some(key) = client.key("register") {
        rate_limit(&state.services, &key, state.config.register_rate).await?;
    }
    let hash = state
        .auth
        .hashes
        .hash(body.password)
        .await
        .map_err(|e| hash_error(&state, e))?;
    let account = state
        .store
        .create_account(&body.username, &hash, Role::Player)
        .await?;
    let player = character(&state, &account).await?;
    tracing::info!(account = account.id, player = player.id, "account registered");
    Ok((
        StatusCode::CREATED,
        axum::Json(session(&state, &account, &player)?),
    ))
}

/// Exchange a username and password for a token.
///
/// Limited per client address (`RATE_LIMIT_LOGIN_ADDR_BURST`, `RATE_LIMIT_LOGIN_ADDR_PER_MIN`), so
/// one client cannot try a password against many names, and per username (`RATE_LIMIT_LOGIN_BURST`,
/// `RATE_LIMIT_LOGIN_PER_MIN`), so many clients cannot guess one account's password. Also refused
/// with 429 when the host is already hashing as many passwords as it allows.
#[utoipa::path(
    post, path = "/auth/login", tag = "auth",
    operation_id = "login",
    request_body = LoginCredentials,
    responses(
        (status = 200, description = "Logged in", body = Session, links(
            ("player" = (operation_id = "getPlayer", description = "The character's state (with the returned token)")),
            ("stats" = (operation_id = "getPlayerStats", description = "The character's stats (with the returned token)")),
            ("me" = (operation_id = "me", description = "The account (with the returned token)")),
        )),
        (status = 400, description = "Malformed JSON, or a NUL character in a field (`bad_text`)", body = ErrorBody),
        (status = 401, description = "Wrong username or password", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 429, description = "Too many attempts from this address or for this username, or the host is busy hashing passwords; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    AppJson(body): AppJson<LoginCredentials>,
) -> Result<axum::Json<Session>, ApiError> {
    for (field, text) in [("username", &body.username), ("password", &body.password)] {
        check_text(field, text).map_err(|m| ApiError::bad_request("bad_text", m))?;
    }
    if let Some(key) = client.key("login") {
        rate_limit(&state.services, &key, state.config.login_addr_rate).await?;
    }
    // Per name too: it protects each account from guessing spread over many addresses. Bounded in
    // length so the key cannot be made huge.
    let name: String = body.username.chars().take(64).collect::<String>().to_lowercase();
    rate_limit(&state.services, &format!("login:{name}"), state.config.login_rate).await?;
    let refused = || ApiError::Unauthorized("wrong username or password".to_owned());
    if body.password.chars().count() > crate::auth::PASSWORD_MAX {
        return Err(refused());
    }
    let account = state.store.account_by_username(&body.username).await?;
    let ok = state
        .auth
        .hashes
        .verify(body.password, account.as_ref().map(|a| a.password_hash.clone()))
        .await
        .map_err(|e| hash_error(&state, e))?;
    let Some(account) = account.filter(|_| ok) else {
        return Err(refused());
    };
    let player = character(&state, &account).await?;
    Ok(axum::Json(session(&state, &account, &player)?))
}

/// Revoke the token this request carries. Other tokens of the account stay valid.
#[utoipa::path(
    post, path = "/auth/logout", tag = "auth",
    operation_id = "logout",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The token is revoked"),
        (status = 401, description = "No valid token", body = ErrorBody),
    )
)]
async fn logout(
    State(store): State<Arc<dyn Store>>,
    State(auth): State<AuthState>,
    State(services): State<Services>,
    Auth(who): Auth,
) -> Result<StatusCode, ApiError> {
    store
        .revoke_token(&who.jti, who.account_id, who.expires_ms)
        .await?;
    auth.revoked.insert(&who.jti, who.expires_ms);
    announce_revocation(&services, who.jti, who.expires_ms).await;
    if let Err(e) = services.presence.mark_offline(who.player_id).await {
        tracing::debug!(error = %e, "presence: could not mark offline");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's account and character.
#[utoipa::path(
    get, path = "/auth/me", tag = "auth",
    operation_id = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "The account was deleted", body = ErrorBody),
    )
)]
async fn me(State(store): State<Arc<dyn Store>>, Auth(who): Auth) -> Result<axum::Json<Me>, ApiError> {
    let account = store
        .account_by_id(who.account_id)
        .await?
        .ok_or_else(|| ApiError::not_found("not_found", "the account no longer exists"))?;
    let player = store
        .player_by_id(who.player_id)
        .await?
        .ok_or_else(|| ApiError::not_found("not_found", "the character no longer exists"))?;
    Ok(axum::Json(Me {
        account: (&account).into(),
        player: (&player).into(),
    }))
}

/// How often every host reloads the revoked tokens from the database, catching up on announcements
/// it missed.
pub const REVOCATIONS_RELOAD_EVERY: Duration = Duration::from_secs(30);
/// How often the follower looks whether the bus came back (to reload at once), and retries a first
/// load that failed.
const REVOCATIONS_CHECK_EVERY: Duration = Duration::from_secs(1);

/// What a logout announces on the `revocations` channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Revoked {
    /// The token's id.
    jti: String,
    /// When the token expires, ms since the epoch.
    expires_ms: i64,
}

/// Tell every host that `jti` is revoked. Best effort: a host that misses it catches up at its next
/// reload.
async fn announce_revocation(services: &Services, jti: String, expires_ms: i64) {
    let bytes = match serde_json::to_vec(&Revoked { jti, expires_ms }) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a revocation announcement");
            return;
        }
    };
    let published = services.bus.publish(&Channel::Revocations, bytes.into()).await;
    if services.uses_redis() && !published.remote {
        tracing::warn!(
            "revocation not announced: Redis is down; other hosts refuse the token from their next reload"
        );
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Reload the revoked tokens from the database into this host's list (what [`follow_revocations`]
/// does periodically); returns how many it holds.
///
/// # Errors
/// The database could not be read; the list stays as it was.
pub async fn reload_revocations(state: &AppState) -> Result<usize, StoreError> {
    let now = now_ms();
    let list = state.store.unexpired_revocations(now).await?;
    state.auth.revoked.load(list, now);
    Ok(state.auth.revoked.len())
}

/// Subscribe to the `revocations` channel; the returned task loads the revoked tokens, adds each
/// announced one, reloads them periodically and when the bus reconnects, and drops expired ones, until
/// shutdown. Subscribing before returning means nothing announced after this call is missed.
pub async fn follow_revocations(state: AppState) -> tokio::task::JoinHandle<()> {
    let sub = state.services.bus.subscribe(&Channel::Revocations).await;
    tokio::spawn(revocation_loop(state, sub))
}

async fn revocation_loop(state: AppState, mut sub: Subscription) {
    let stop = state.shutdown.wait();
    tokio::pin!(stop);
    let mut reload = tokio::time::interval(REVOCATIONS_RELOAD_EVERY);
    reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut check = tokio::time::interval(REVOCATIONS_CHECK_EVERY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let services = state.services.clone();
    let mut bus_up = services.bus_connected();
    let mut loaded = false;
    let mut failing = false;
    loop {
        let due = tokio::select! {
            () = &mut stop => return,
            p = sub.recv() => {
                let Some(payload) = p else { return };
                match serde_json::from_slice::<Revoked>(&payload) {
                    Ok(r) => state.auth.revoked.insert(&r.jti, r.expires_ms),
                    Err(e) => tracing::warn!(error = %e, "ignoring a malformed revocation announcement"),
                }
                false
            }
            // The first tick is immediate: the initial load.
            _ = reload.tick() => true,
            _ = check.tick() => {
                let up = services.bus_connected();
                let reconnected = up && !bus_up;
                bus_up = up;
                reconnected || !loaded
            }
        };
        if !due {
            continue;
        }
        match reload_revocations(&state).await {
            Ok(count) => {
                if !loaded || failing {
                    tracing::info!(count, "revoked tokens loaded");
                }
                loaded = true;
                failing = false;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(
                        error = %e,
                        answering_from = if loaded { "memory" } else { "the database" },
                        "cannot reload the revoked tokens; retrying"
                    );
                }
                failing = true;
                // An expired token is refused by its signature check anyway; keep the list small.
                state.auth.revoked.prune(now_ms());
            }
        }
    }
}
