//! `/api/v1/alerts`: live alerts for supervisors, most severe first, then oldest first.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::app::AppState;
use crate::error::AppError;
use crate::http::auth::Authenticated;
use crate::http::json::invalid;
use crate::http::openapi::ApiErrorBody;
use crate::monitor::alerts::{Alert, AlertId, AlertKind, Severity, Subject};
use crate::store::AlertStatus;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `active` (the default), `resolved` or `all`.
    pub status: Option<String>,
    /// 1 to 500; 100 by default.
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertList {
    pub alerts: Vec<Alert>,
}

/// Who resolves the alert (shown in `resolved_by`); `supervisor` when absent.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    pub by: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(ListParams),
    responses((status = 200, body = AlertList), (status = 422, body = ApiErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Query(params): Query<ListParams>,
) -> Result<Json<AlertList>, AppError> {
    let status = match params.status.as_deref().unwrap_or("active") {
        "active" => AlertStatus::Active,
        "resolved" => AlertStatus::Resolved,
        "all" => AlertStatus::All,
        other => return Err(invalid("status", format!("must be active, resolved or all, got {other:?}"))),
    };
    let limit = params.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(invalid("limit", "must be between 1 and 500"));
    }
    Ok(Json(AlertList { alerts: state.store.list_alerts(&tenant.id, status, limit).await? }))
}

/// Resolves an active alert by hand. The rules do not raise it again until its condition
/// clears and comes back.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/resolve", tag = "alerts", params(("id" = String, Path)),
    request_body(content = Option<ResolveBody>),
    responses((status = 200, body = Alert), (status = 404, body = ApiErrorBody),
              (status = 409, description = "already resolved", body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
pub async fn resolve(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Alert>, AppError> {
    let body: ResolveBody = if body.iter().all(u8::is_ascii_whitespace) {
        ResolveBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| invalid("body", e.to_string()))?
    };
    let by = body.by.as_deref().map(str::trim).filter(|b| !b.is_empty()).unwrap_or("supervisor");
    if by.len() > 200 {
        return Err(invalid("by", "at most 200 bytes"));
    }
    let alert = state.store.resolve_alert(&tenant.id, &AlertId(id), by, "supervisor").await?;
    let data = serde_json::to_value(&alert).map_err(|e| AppError::Internal(e.into()))?;
    state.events.publish(&tenant.id, "alert.resolved", alert.call_id.as_ref(), alert.department.as_deref(), data);
    Ok(Json(alert))
}

/// The alerts area of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(list, resolve),
    components(schemas(Alert, AlertList, ResolveBody, AlertKind, Severity, Subject, AlertId)),
    tags((name = "alerts", description = "Live alerts over calls, queues and agents")),
)]
pub struct AlertsApi;
