//! `/healthz` (the process is alive) and `/readyz` (it can serve: database, Redis, plugins).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use cauldron_runtime::Registry;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::cache::{Health, Services};
use crate::state::AppState;
use crate::store::Store;

/// How long the database may take to answer a readiness ping.
const DB_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// The health routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Alive {
    /// Always `ok`.
    pub status: String,
    /// Seconds since start.
    pub uptime_secs: u64,
}

/// One dependency's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    /// `ok`, `degraded` or `down`.
    pub status: String,
    /// What is wrong, when something is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Check {
    fn ok() -> Self {
        Self {
            status: "ok".to_owned(),
            detail: None,
        }
    }

    fn with(status: &str, detail: String) -> Self {
        Self {
            status: status.to_owned(),
            detail: Some(detail),
        }
    }
}

/// Readiness: `ready`, `degraded` (serving with less; each degraded check says what) or `unavailable`
/// (the database is down: 503).
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// Overall state.
    pub status: String,
    /// `database`, `redis`, `plugins`.
    pub checks: BTreeMap<String, Check>,
    /// Name and version of every plugin serving.
    pub plugins: BTreeMap<String, String>,
}

/// Is the process alive? Touches no dependency.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "Alive", body = Alive)))]
async fn healthz(State(started): State<Instant>) -> axum::Json<Alive> {
    axum::Json(Alive {
        status: "ok".to_owned(),
        uptime_secs: started.elapsed().as_secs(),
    })
}

/// Can the host serve players? Pings the database and Redis and lists the plugins.
#[utoipa::path(
    get, path = "/readyz", tag = "ops",
    responses(
        (status = 200, description = "Ready or degraded", body = Ready),
        (status = 503, description = "The database is down", body = Ready),
    )
)]
async fn readyz(
    State(store): State<Arc<dyn Store>>,
    State(services): State<Services>,
    State(registry): State<Arc<Registry>>,
) -> impl IntoResponse {
    let mut checks = BTreeMap::new();
    let database = match tokio::time::timeout(DB_PING_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => Check::ok(),
        Ok(Err(e)) => Check::with("down", format!("{} is not answering: {e}", store.backend())),
        Err(_) => Check::with(
            "down",
            format!("{} did not answer within {DB_PING_TIMEOUT:?}", store.backend()),
        ),
    };
    let db_up = database.status == "ok";
    checks.insert("database".to_owned(), database);
    let redis = match services.health().await {
        Health::Ok if services.uses_redis() => Check::ok(),
        Health::Ok => Check {
            status: "ok".to_owned(),
            detail: Some("not configured: in-process services, one node".to_owned()),
        },
        Health::Degraded(reason) => Check::with("degraded", reason),
    };
    checks.insert("redis".to_owned(), redis);

    let statuses = registry.statuses();
    let plugins: BTreeMap<String, String> = statuses
        .iter()
        .filter_map(|s| Some((s.name.clone(), s.version.clone()?)))
        .collect();
    let refused: Vec<String> = statuses
        .iter()
        .filter_map(|s| Some(format!("{}: {}", s.name, s.last_error.as_ref()?)))
        .collect();
    let plugin_check = if plugins.is_empty() {
        Check::with(
            "degraded",
            "no plugin is loaded: there is nothing to play".to_owned(),
        )
    } else if !refused.is_empty() {
        Check::with("degraded", format!("refused loads: {}", refused.join("; ")))
    } else {
        Check::ok()
    };
    checks.insert("plugins".to_owned(), plugin_check);

    let (code, status) = if !db_up {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    } else if checks.values().any(|c| c.status != "ok") {
        (StatusCode::OK, "degraded")
    } else {
        (StatusCode::OK, "ready")
    };
    (
        code,
        axum::Json(Ready {
            status: status.to_owned(),
            checks,
            plugins,
        }),
    )
}
