//! Liveness, readiness and metrics.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

use crate::app::AppState;

/// Liveness: 200 while the process serves requests.
pub async fn health() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

#[derive(Debug, Serialize)]
pub struct Readiness {
    pub status: &'static str,
    pub dependencies: Vec<DependencyStatus>,
}

#[derive(Debug, Serialize)]
pub struct DependencyStatus {
    pub name: String,
    pub kind: &'static str,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Readiness: 200 only when the database answers and every configured provider is usable;
/// 503 otherwise. The body names each dependency and its status either way.
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let mut deps = Vec::new();
    let db = state.store.ping(state.config.database.ready_timeout).await;
    let backlog = state.writer.stats().backlog.load(Ordering::Relaxed);
    deps.push(DependencyStatus {
        name: state.store.backend().as_str().to_string(),
        kind: "database",
        status: if db.is_ok() { "up" } else { "down" },
        detail: match db {
            Ok(()) if backlog > 0 => Some(format!("{backlog} writes waiting")),
            Ok(()) => None,
            Err(e) => Some(e.to_string()),
        },
    });
    let checks = state.dependencies.iter().map(|d| async move {
        let result = d.check().await;
        DependencyStatus {
            name: d.name().to_string(),
            kind: d.kind(),
            status: if result.is_ok() { "up" } else { "down" },
            detail: result.err(),
        }
    });
    deps.extend(futures_util::future::join_all(checks).await);
    let all_up = deps.iter().all(|d| d.status == "up");
    let body = Readiness { status: if all_up { "ready" } else { "unavailable" }, dependencies: deps };
    let code = if all_up { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body))
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
}
