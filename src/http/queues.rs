//! `GET /api/v1/departments/{id}/queue` and `GET /api/v1/queues`: live queue state from the ACD.

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::center::acd::WaitingCall;
use crate::center::analytics::queue_report;
use crate::center::{AgentStatus, DepartmentId};
use crate::error::AppError;
use crate::http::agents::acd_error;
use crate::http::auth::Authenticated;
use crate::http::openapi::ApiErrorBody;
use crate::store::now_ms;

#[derive(Debug, Serialize, ToSchema)]
pub struct DepartmentQueue {
    pub department_id: DepartmentId,
    pub name: String,
    /// In queue order: position 1 is next.
    pub calls: Vec<WaitingCall>,
}

#[utoipa::path(get, path = "/api/v1/departments/{id}/queue", tag = "queues", params(("id" = String, Path)),
    responses((status = 200, body = DepartmentQueue), (status = 404, body = ApiErrorBody)))]
pub async fn department_queue(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<DepartmentQueue>, AppError> {
    let dep = state.store.get_department(&tenant.id, &DepartmentId(id)).await?;
    let mut waiting = state.acd.waiting(tenant.id.clone()).await.map_err(acd_error)?;
    let calls = waiting.remove(&dep.id).unwrap_or_default();
    Ok(Json(DepartmentQueue { department_id: dep.id, name: dep.name, calls }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueSummary {
    pub department_id: DepartmentId,
    pub name: String,
    pub waiting: usize,
    pub longest_wait_ms: u64,
    pub agents_available: usize,
    /// Agents offered a call or on one.
    pub agents_busy: usize,
    /// Share of the last 24 hours' calls answered within the department's target.
    pub service_level_pct: Option<f64>,
}

#[utoipa::path(get, path = "/api/v1/queues", tag = "queues", responses((status = 200, body = Vec<QueueSummary>)))]
pub async fn all(State(state): State<AppState>, Authenticated(tenant): Authenticated) -> Result<Json<Vec<QueueSummary>>, AppError> {
    let departments = state.store.list_departments(&tenant.id).await?;
    let agents = state.store.list_agents(&tenant.id).await?;
    let waiting = state.acd.waiting(tenant.id.clone()).await.map_err(acd_error)?;
    let now = now_ms();
    let mut out = Vec::with_capacity(departments.len());
    for dep in departments {
        let calls = waiting.get(&dep.id).map(Vec::as_slice).unwrap_or_default();
        let members = agents.iter().filter(|a| a.departments.contains(&dep.id));
        let (available, busy) = members.fold((0, 0), |(a, b), agent| match agent.status {
            AgentStatus::Available => (a + 1, b),
            AgentStatus::Offered | AgentStatus::Busy => (a, b + 1),
            _ => (a, b),
        });
        let entries = state.store.entries_in_period(&tenant.id, &dep.id, now - 86_400_000, now + 1).await?;
        let (.., service_level_pct) = queue_report(&entries, dep.service_level_secs);
        out.push(QueueSummary {
            department_id: dep.id,
            name: dep.name,
            waiting: calls.len(),
            longest_wait_ms: calls.iter().map(|c| c.wait_ms).max().unwrap_or(0),
            agents_available: available,
            agents_busy: busy,
            service_level_pct,
        });
    }
    Ok(Json(out))
}
