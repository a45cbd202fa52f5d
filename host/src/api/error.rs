//! [`ApiError`]: every failure a handler can return, rendered as `{"error":{"code","message"}}` with
//! one status per variant ([`ApiError::status`]).
//!
//! Conversion never logs (it is pure): internal detail travels in the response's extensions as
//! [`ErrorDetail`] and the `log_errors` middleware (in `api/mod.rs`) logs it inside the request's trace
//! span, so the line carries the request id. Clients get a stable code and a message written for them,
//! never a database or wasm error text.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::game::GameError;
use crate::store::StoreError;

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (bad JSON, bad params, a rule on a field): 400.
    #[error("{message}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// Message for the client.
        message: String,
    },
    /// No, expired, forged or revoked credentials: 401.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated but not allowed: 403.
    #[error("{0}")]
    Forbidden(String),
    /// No such thing (route, plugin, action, player): 404.
    #[error("{message}")]
    NotFound {
        /// Stable code.
        code: &'static str,
        /// Message for the client.
        message: String,
    },
    /// The route exists but not with this method: 405 (the router adds `Allow`).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// A concurrent change or a taken name: 409.
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// Message for the client.
        message: String,
    },
    /// The body is larger than `MAX_BODY_BYTES`: 413.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// The body is not JSON (by its content type): 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A WebSocket handshake on a connection that cannot be upgraded (HTTP/2 without extended
    /// CONNECT): 426.
    #[error("{0}")]
    UpgradeRequired(String),
    /// The game's rules refused: 422, with the plugin's code.
    #[error("{message}")]
    Rejected {
        /// The plugin's code.
        code: String,
        /// The plugin's message.
        message: String,
    },
    /// Too many requests: 429 with `Retry-After`.
    #[error("too many requests; retry in {} s", retry_secs(*retry_after))]
    RateLimited {
        /// When a request will be allowed again.
        retry_after: Duration,
    },
    /// A plugin failed (trap, fuel, deadline, memory, bad output); nothing changed: 500.
    #[error("plugin {plugin} {version} failed ({kind}); nothing was changed")]
    PluginFault {
        /// Plugin name.
        plugin: String,
        /// Plugin version.
        version: String,
        /// Fault kind.
        kind: &'static str,
        /// Operator detail (logged, not sent).
        detail: String,
    },
    /// A dependency is down: 503 with `Retry-After`.
    #[error("{message}")]
    Unavailable {
        /// Message for the client.
        message: String,
        /// Operator detail (logged, not sent).
        detail: String,
    },
    /// The request took longer than `REQUEST_TIMEOUT_SECS` and was stopped: 504.
    #[error(
        "the request took longer than {} s and was stopped; an action may still have been applied, so \
         retry it with the same Idempotency-Key",
        .0.as_secs()
    )]
    Timeout(Duration),
    /// Anything else: 500 with a generic message; the detail is logged.
    #[error("internal error")]
    Internal(String),
}

/// The `Retry-After` of a 503, in seconds: outages worth a 503 (a database restarting, a lock held by
/// another process) mostly last seconds, and a request during one fails within about two.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 1;

/// `{"error": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorInfo,
}

/// A stable code and a message for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorInfo {
    /// Machine-readable code, e.g. `bad_json`, `unauthorized`, `plugin_fault`, or a plugin's
    /// rejection code.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

/// What the logging middleware needs from a failed response.
#[derive(Debug, Clone)]
pub struct ErrorDetail {
    /// Whether it is the server's fault (logged at error level) or the client's (debug).
    pub internal: bool,
    /// The code sent.
    pub code: String,
    /// The full detail, for operators.
    pub detail: String,
}

/// Whole seconds for `Retry-After`, rounded up and at least 1.
fn retry_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl ApiError {
    /// A 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A 404 with `code`.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }

    /// A 500 whose detail is logged.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::Internal(detail.to_string())
    }

    /// The status of each variant, in one place.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::UpgradeRequired(_) => StatusCode::UPGRADE_REQUIRED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::PluginFault { .. } | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The stable code sent to clients.
    pub fn code(&self) -> &str {
        match self {
            Self::BadRequest { code, .. } | Self::NotFound { code, .. } | Self::Conflict { code, .. } => code,
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::UpgradeRequired(_) => "upgrade_required",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Rejected { code, .. } => code,
            Self::RateLimited { .. } => "rate_limited",
            Self::PluginFault { .. } => "plugin_fault",
            Self::Unavailable { .. } => "unavailable",
            Self::Timeout(_) => "timeout",
            Self::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code().to_owned();
        let internal = matches!(
            self,
            Self::PluginFault { .. } | Self::Internal(_) | Self::Unavailable { .. } | Self::Timeout(_)
        );
        let detail = match &self {
            Self::PluginFault { detail, .. } | Self::Unavailable { detail, .. } => {
                format!("{self}: {detail}")
            }
            Self::Internal(detail) => detail.clone(),
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorInfo {
                code: code.clone(),
                message: self.to_string(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Self::RateLimited { retry_after } = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_secs(*retry_after)));
        }
        if let Self::Unavailable { .. } = &self {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS),
            );
        }
        response.extensions_mut().insert(ErrorDetail {
            internal,
            code,
            detail,
        });
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict => Self::Conflict {
                code: "conflict",
                message: "the player's state changed meanwhile; try again".to_owned(),
            },
            StoreError::NotFound => Self::not_found("not_found", "not found"),
            StoreError::UsernameTaken => Self::Conflict {
                code: "username_taken",
                message: "this username is taken".to_owned(),
            },
            StoreError::Invalid(msg) => Self::bad_request("invalid", msg),
            // The sqlx error is for the log only: it may name tables, hosts or worse.
            StoreError::Unavailable(e) => Self::Unavailable {
                message: "the database is unavailable; try again shortly".to_owned(),
                detail: e.to_string(),
            },
            StoreError::Db(e) => Self::Internal(format!("database: {e}")),
        }
    }
}

impl From<GameError> for ApiError {
    fn from(err: GameError) -> Self {
        match err {
            GameError::UnknownPlugin(name) => {
                Self::not_found("unknown_plugin", format!("no plugin `{name}` is loaded"))
            }
            GameError::UnknownAction { plugin, action } => Self::not_found(
                "unknown_action",
                format!("plugin `{plugin}` has no action `{action}`"),
            ),
            GameError::NotFound(what) => Self::not_found("not_found", format!("not found: {what}")),
            GameError::BadParams(msg) => Self::bad_request("bad_params", msg),
            // A plugin may reject with the host's reserved codes; they keep their HTTP meaning.
            GameError::Rejected { code, message } => match code.as_str() {
                "bad_params" => Self::bad_request("bad_params", message),
                "unknown_action" => Self::not_found("unknown_action", message),
                "not_found" => Self::not_found("not_found", message),
                _ => Self::Rejected { code, message },
            },
            GameError::Fault {
                plugin,
                version,
                kind,
                message,
            } => Self::PluginFault {
                plugin,
                version,
                kind,
                detail: message,
            },
            GameError::Conflict => Self::Conflict {
                code: "conflict",
                message: "the player's state kept changing; try again".to_owned(),
            },
            GameError::Unavailable(msg) => Self::Unavailable {
                message: msg.clone(),
                detail: msg,
            },
            GameError::IdempotencyKeyReused => Self::Rejected {
                code: "idempotency_key_reused".to_owned(),
                message: "this Idempotency-Key was already used for a different request (another \
                          action or other params); use a new key for a new request"
                    .to_owned(),
            },
            GameError::Store(e) => e.into(),
        }
    }
}
