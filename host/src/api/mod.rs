//! The HTTP API (axum). Knows `game` and `auth`, never wasmtime.
//!
//! # Layout
//! - this file: [`app`] (the router with every layer) and [`serve`] (listener + graceful shutdown),
//!   the OpenAPI document, the request observer (metrics and error logs), the request timeout.
//! - `error`: [`ApiError`], the one error type, rendered `{"error":{"code","message"}}`.
//! - `client`: the client's address (the peer, or behind trusted proxies `X-Forwarded-For`).
//! - `extract`: JSON and params extractors with our rejections, the bearer-token extractor,
//!   `Idempotency-Key`.
//! - `auth`, `players`, `actions`, `catalog`, `leaderboards`, `health`, `metrics`: one `router()`
//!   each, handlers next to their routes, each annotated for the OpenAPI document.
//! - `admin`: the plugin administration routes (upload, rollback, unload) over `crate::rollout`.
//! - `ws`: the WebSocket endpoint `/ws` (outside the OpenAPI document, which describes HTTP).
//!
//! Every route is registered through `utoipa_axum`'s router, so a route without an OpenAPI
//! description cannot be added by accident: `/api/openapi.json` is generated from the same list.

pub mod actions;
pub mod admin;
pub mod auth;
pub mod catalog;
pub mod client;
pub mod error;
pub mod extract;
pub mod health;
pub mod leaderboards;
pub mod metrics;
pub mod players;
pub mod ws;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

pub use error::ApiError;

use crate::cache::RateLimit;
use crate::cache::Services;
use crate::config::{Bucket, Config, Cors};
use crate::game::Game;
use crate::metrics::{LATENCY_BUCKETS, Metrics};
use crate::state::{AppState, Surface};

/// The header carrying each request's id (set if the client sent none, echoed in the response).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The OpenAPI document's fixed parts; paths come from the routers.
#[derive(OpenApi)]
#[openapi(
    info(title = "Cauldron API", description = "Accounts, actions, state, catalog and leaderboards of a Cauldron game host."),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "player", description = "The caller's character"),
        (name = "actions", description = "Plugin actions"),
        (name = "catalog", description = "Loaded plugins and their content"),
        (name = "leaderboards", description = "Scores and presence"),
        (name = "admin", description = "Plugin administration (ADMIN_TOKEN or an admin account)"),
        (name = "ops", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

/// Adds the bearer-token security scheme the authenticated routes refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every route with its OpenAPI description, before layers and state.
fn routes() -> OpenApiRouter<AppState> {
    let v1 = OpenApiRouter::new()
        .merge(auth::router())
        .merge(players::router())
        .merge(actions::router())
        .merge(catalog::router())
        .merge(leaderboards::router())
        .merge(admin::router());
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", v1)
        .merge(health::router())
        .merge(metrics::router())
}

/// The generated OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

/// The OpenAPI document as served at `/api/openapi.json`: [`openapi`]'s JSON with each response
/// link's fields in the specification's spelling (utoipa 5 writes a Link Object's `operationId`,
/// `operationRef` and `requestBody` in snake case, which no OpenAPI tool reads).
pub fn openapi_json(doc: &utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut value = serde_json::to_value(doc).unwrap_or_else(|e| {
        // Serialising utoipa's own types has no way to fail (string keys, no non-finite floats).
        tracing::error!(error = %e, "cannot serialise the OpenAPI document");
        serde_json::Value::Null
    });
    let paths = value.get_mut("paths").and_then(serde_json::Value::as_object_mut);
    for operation in paths
        .into_iter()
        .flat_map(|p| p.values_mut())
        .filter_map(|p| p.as_object_mut())
    {
        for op in operation.values_mut() {
            let responses = op.get_mut("responses").and_then(serde_json::Value::as_object_mut);
            for response in responses.into_iter().flat_map(|r| r.values_mut()) {
                let links = response
                    .get_mut("links")
                    .and_then(serde_json::Value::as_object_mut);
                for link in links.into_iter().flat_map(|l| l.values_mut()) {
                    let Some(link) = link.as_object_mut() else {
                        continue;
                    };
                    for (from, to) in [
                        ("operation_id", "operationId"),
                        ("operation_ref", "operationRef"),
                        ("request_body", "requestBody"),
                    ] {
                        if let Some(v) = link.remove(from) {
                            link.insert(to.to_owned(), v);
                        }
                    }
                }
            }
        }
    }
    value
}

/// The whole application: routes, OpenAPI document, static web client and every layer; `/ws` when
/// `surface` says so. [`serve`] puts it on a socket.
pub fn app(state: AppState, surface: Surface) -> Router {
    let (router, doc) = routes().split_for_parts();
    let doc = Arc::new(openapi_json(&doc));
    let mut router = router
        .route(
            "/api/openapi.json",
            get(move || {
                let doc = Arc::clone(&doc);
                async move { axum::Json(doc) }
            }),
        )
        .merge(if surface.websocket {
            ws::router()
        } else {
            Router::new()
        })
        // Unknown API paths are JSON 404s, never the web client's index.html.
        .route("/api", any(api_not_found))
        .route("/api/{*rest}", any(api_not_found))
        // A known route with another method: a JSON 405 (axum still adds `Allow`). Set after every
        // route, since it applies to the routes present when it is called.
        .method_not_allowed_fallback(method_not_allowed);

    let web = &state.config.web_dir;
    router = if web.is_dir() {
        router.fallback_service(ServeDir::new(web).fallback(ServeFile::new(web.join("index.html"))))
    } else {
        router.fallback(api_not_found)
    };

    let config = &state.config;
    let cors = cors(&config.cors);
    router
        .layer(middleware::from_fn_with_state(
            config.request_timeout,
            request_timeout,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state.metrics),
            observe,
        ))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(CompressionLayer::new())
        .layer(cors)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

fn cors(policy: &Cors) -> CorsLayer {
    let base = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([REQUEST_ID, header::RETRY_AFTER])
        .max_age(Duration::from_secs(3600));
    match policy {
        Cors::SameOrigin => CorsLayer::new(),
        Cors::Any => base.allow_origin(AllowOrigin::any()),
        Cors::List(origins) => base.allow_origin(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        ),
    }
}

async fn api_not_found() -> ApiError {
    ApiError::not_found("no_route", "no such API route")
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "this route does not answer {method}; the Allow header lists the methods it does"
    ))
}

/// Stops a request that has not answered within `limit` (`REQUEST_TIMEOUT_SECS`) with a 504 in the
/// JSON error format. The handler's future is dropped, which rolls back a transaction it left open.
/// Inside [`observe`], so timeouts are counted and logged like any other failure.
async fn request_timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(limit).into_response(),
    }
}

/// Inside the trace span: counts the request by route and status, times it, and logs the detail of
/// a failed response (put there by [`ApiError`]'s conversion, which itself never logs).
async fn observe(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status();
    metrics.inc(
        "cauldron_http_requests_total",
        &[("route", &route), ("status", status.as_str())],
    );
    metrics.observe(
        "cauldron_http_request_seconds",
        &[("route", &route)],
        started.elapsed().as_secs_f64(),
        LATENCY_BUCKETS,
    );
    if let Some(err) = response.extensions().get::<error::ErrorDetail>() {
        if err.internal {
            tracing::error!(status = status.as_u16(), code = %err.code, detail = %err.detail, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), code = %err.code, detail = %err.detail, "request refused");
        }
    }
    response
}

/// Take one token from `key`'s bucket, or fail with 429 and `Retry-After`.
/// Check the rate limit of one action request by `player_id`: a query action (read-only, marked in
/// its manifest) draws on the player's query bucket, every other action on the action bucket, so
/// reading screens never uses up the budget for writes.
pub(crate) async fn rate_limit_action(
    game: &Game,
    services: &Services,
    config: &Config,
    player_id: i64,
    plugin: &str,
    action: &str,
) -> Result<(), ApiError> {
    if game.is_query(plugin, action) {
        rate_limit(services, &format!("query:{player_id}"), config.query_rate).await
    } else {
        rate_limit(services, &format!("action:{player_id}"), config.action_rate).await
    }
}

pub(crate) async fn rate_limit(services: &Services, key: &str, bucket: Bucket) -> Result<(), ApiError> {
    let decision = services
        .rate_limiter
        .check(key, RateLimit::new(bucket.burst, bucket.per_sec))
        .await;
    match decision {
        crate::cache::Decision::Allowed { .. } => Ok(()),
        crate::cache::Decision::Limited { retry_after } => Err(ApiError::RateLimited { retry_after }),
    }
}

/// Serve `state`'s app on `listener` until `shutdown` completes; then stop accepting, tell every
/// WebSocket session to close (an action in flight finishes first), let in-flight requests and
/// sessions finish for up to `SHUTDOWN_TIMEOUT_SECS`, and return.
///
/// Also runs this host's background tasks for as long as it serves: the rollout follower (plugin
/// announcements from other hosts), the revocation follower (tokens revoked by logouts on any host),
/// the presence poller (online count for the sessions) and the action log's call retention
/// (`ACTION_LOG_CALL_RETENTION_DAYS`).
///
/// # Errors
/// An accept-loop I/O error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    surface: Surface,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = state.config.shutdown_timeout;
    let _rollouts = AbortOnDrop(state.rollout.follow(state.shutdown.clone()).await);
    let _revocations = AbortOnDrop(auth::follow_revocations(state.clone()).await);
    let _presence = AbortOnDrop(tokio::spawn(ws::poll_presence(state.clone())));
    let _call_retention = AbortOnDrop(tokio::spawn(crate::game::call_log::retention(
        Arc::clone(&state.store),
        state.config.action_log_call_retention,
    )));
    let sessions = state.shutdown.clone();
    let app = app(state, surface).into_make_service_with_connect_info::<SocketAddr>();
    let signalled = Arc::new(tokio::sync::Notify::new());
    let notify = Arc::clone(&signalled);
    let trigger = sessions.clone();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!(
                grace_secs = grace.as_secs(),
                "shutting down: no new connections, finishing in-flight requests, closing sockets"
            );
            trigger.trigger();
            notify.notify_one();
        })
        .into_future();
    // Upgraded sockets are no longer the HTTP server's connections: wait for the sessions too.
    let drained = async {
        server.await?;
        sessions.drained().await;
        Ok(())
    };
    tokio::select! {
        result = drained => result,
        () = async { signalled.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                sessions = sessions.active(),
                "in-flight requests or sockets did not finish in time; stopping anyway"
            );
            Ok(())
        }
    }
}

/// Aborts a background task when the server stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Completes on Ctrl-C or SIGTERM (what `docker stop` sends).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// A plain response with a status and text body (health, metrics).
pub(crate) fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}
