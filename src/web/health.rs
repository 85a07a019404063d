//! Liveness and readiness for load balancers and orchestrators.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Serialize;

use crate::app::AppState;
use crate::db;

/// `/healthz` and `/readyz`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(show_liveness))
        .route("/readyz", get(show_readiness))
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<&'static str>,
}

/// The process is alive and serving HTTP.
async fn show_liveness() -> Json<Health> {
    Json(Health {
        status: "ok",
        database: None,
    })
}

/// The database is reachable and every migration is applied; 503 otherwise.
async fn show_readiness(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let database = match db::migrations_applied(&state.pool).await {
        Ok(true) => "ok",
        Ok(false) => "migrations_pending",
        Err(_) => "unreachable",
    };
    let ready = database == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Health {
            status: if ready { "ready" } else { "not_ready" },
            database: Some(database),
        }),
    )
}
