//! `/metrics`: Prometheus text. Requests by route and status (recorded by the API's observer), plugin
//! calls, faults, latency and fuel (recorded by the game), WebSocket connections.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::metrics::Metrics;
use crate::state::AppState;

/// The metrics route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Every metric, in the Prometheus text exposition format 0.0.4.
#[utoipa::path(
    get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text", body = String, content_type = "text/plain"))
)]
async fn metrics(State(metrics): State<Arc<Metrics>>) -> Response {
    super::text(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        metrics.render(),
    )
}
