//! `GET /api/v1/analytics/departments/{id}?from=&to=`: one department over one period.

use std::collections::{BTreeMap, HashSet};

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::app::AppState;
use crate::center::analytics::{call_figures, queue_report, DepartmentReport};
use crate::center::{DepartmentId, EntryOutcome};
use crate::error::AppError;
use crate::http::auth::Authenticated;
use crate::http::json::invalid;
use crate::http::openapi::ApiErrorBody;
use crate::store::now_ms;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// Start (unix ms, inclusive); default 24 hours before `to`.
    pub from: Option<i64>,
    /// End (unix ms, exclusive); default now.
    pub to: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/analytics/departments/{id}", tag = "analytics", params(("id" = String, Path), Period),
    responses((status = 200, body = DepartmentReport), (status = 404, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
pub async fn department(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    Query(period): Query<Period>,
) -> Result<Json<DepartmentReport>, AppError> {
    let to = period.to.unwrap_or_else(|| now_ms() + 1);
    let from = period.from.unwrap_or(to - 86_400_000);
    if from >= to {
        return Err(invalid("to", "must be after from"));
    }
    let dep = state.store.get_department(&tenant.id, &DepartmentId(id)).await?;
    let entries = state.store.entries_in_period(&tenant.id, &dep.id, from, to).await?;
    let (calls, answered, abandoned, overflowed, avg_wait_ms, p90_wait_ms, service_level_pct) =
        queue_report(&entries, dep.service_level_secs);
    let transfers = state.store.transfers_in_period(&tenant.id, &dep.id, from, to).await?;
    let mut transfers_by_reason = BTreeMap::new();
    for t in &transfers {
        *transfers_by_reason.entry(t.reason.clone().unwrap_or_else(|| "unspecified".into())).or_insert(0) += 1;
    }
    // Handle time and costs come from each call's own record.
    let now = now_ms();
    let (mut ai_cost, mut human_cost, mut handle) = (0.0, 0.0, Vec::new());
    let mut seen = HashSet::new();
    for e in &entries {
        if !seen.insert(e.call_id.clone()) {
            continue;
        }
        let Ok(call) = state.store.get_call(&tenant.id, &e.call_id).await else { continue };
        let events = state.store.call_events(&tenant.id, &e.call_id).await?;
        let queue = state.store.entries_for_call(&tenant.id, &e.call_id).await?;
        let xfers = state.store.transfers_for_call(&tenant.id, &e.call_id).await?;
        let f = call_figures(&call, &events, &queue, &xfers, &state.config.center, now);
        ai_cost += f.ai_cost;
        human_cost += f.human_cost;
        if queue.iter().any(|q| q.department_id == dep.id && q.outcome == Some(EntryOutcome::Answered)) {
            handle.push(f.agent_ms);
        }
    }
    let avg_handle_ms = (!handle.is_empty()).then(|| handle.iter().sum::<i64>() as f64 / handle.len() as f64);
    Ok(Json(DepartmentReport {
        department_id: dep.id.0,
        from,
        to,
        calls,
        answered,
        abandoned,
        overflowed,
        avg_wait_ms,
        p90_wait_ms,
        service_level_pct,
        avg_handle_ms,
        transfers_by_reason,
        ai_cost: (ai_cost * 10_000.0).round() / 10_000.0,
        human_cost: (human_cost * 10_000.0).round() / 10_000.0,
    }))
}
