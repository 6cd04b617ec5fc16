//! `/api/v1/departments`: create, list, get, update, delete.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::center::{Department, DepartmentId, OverflowAction};
use crate::error::AppError;
use crate::http::auth::{Authenticated, Principal};
use crate::http::json::{check_dial_target, check_name, check_range, invalid, ApiJson};
use crate::http::openapi::ApiErrorBody;
use crate::store::DepartmentInput;

/// A department as the client sends it (create and full update).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepartmentBody {
    pub name: String,
    /// E.164 number or SIP URI for the `external` overflow action.
    #[serde(default)]
    pub overflow_number: Option<String>,
    #[serde(default)]
    pub overflow: Option<OverflowAction>,
    /// `{"time_zone": "Europe/Berlin", "open": ["mon-fri 09:00-17:00"], "closed_dates":
    /// ["2026-12-25"]}`; unset: always open. Closed, a call gets the overflow action at once.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub business_hours: Option<serde_json::Value>,
    /// Answer-within target in seconds (default 20).
    #[serde(default)]
    pub service_level_secs: Option<i64>,
    /// Most calls waiting at once (default 50).
    #[serde(default)]
    pub max_queue: Option<i64>,
    /// Longest a call waits before overflow, in seconds (default 600).
    #[serde(default)]
    pub max_wait_secs: Option<i64>,
}

impl DepartmentBody {
    fn validate(self) -> Result<DepartmentInput, AppError> {
        check_name("name", &self.name)?;
        if let Some(n) = &self.overflow_number {
            check_dial_target("overflow_number", n)?;
        }
        match &self.overflow {
            Some(OverflowAction::External) if self.overflow_number.is_none() => {
                return Err(invalid("overflow_number", "the external overflow action needs an overflow_number"));
            }
            Some(OverflowAction::Department { department }) => check_name("overflow.department", department)?,
            Some(OverflowAction::Message { text }) if text.trim().is_empty() => {
                return Err(invalid("overflow.text", "must not be empty"));
            }
            _ => {}
        }
        if let Some(h) = &self.business_hours {
            crate::dialog::flow::hours::department_schedule(h).map_err(|(field, message)| {
                let field = if field.is_empty() { "business_hours".to_string() } else { format!("business_hours.{field}") };
                invalid(&field, message)
            })?;
        }
        let service_level_secs = self.service_level_secs.unwrap_or(20);
        let max_queue = self.max_queue.unwrap_or(50);
        let max_wait_secs = self.max_wait_secs.unwrap_or(600);
        check_range("service_level_secs", service_level_secs, 1, 3600)?;
        check_range("max_queue", max_queue, 1, 100_000)?;
        check_range("max_wait_secs", max_wait_secs, 1, 86_400)?;
        Ok(DepartmentInput {
            name: self.name.trim().to_string(),
            overflow_number: self.overflow_number,
            overflow: self.overflow,
            business_hours: self.business_hours,
            service_level_secs,
            max_queue,
            max_wait_secs,
        })
    }
}

#[utoipa::path(post, path = "/api/v1/departments", tag = "departments", request_body = DepartmentBody,
    responses((status = 201, body = Department), (status = 409, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    ApiJson(body): ApiJson<DepartmentBody>,
) -> Result<(StatusCode, Json<Department>), AppError> {
    let input = body.validate()?;
    let dep = state.store.create_department(&tenant.id, &input).await?;
    state.events.publish(&tenant.id, "department.created", None, Some(&dep.name), json!(dep));
    Ok((StatusCode::CREATED, Json(dep)))
}

#[utoipa::path(get, path = "/api/v1/departments", tag = "departments",
    responses((status = 200, body = Vec<Department>)))]
/// Agent keys may list departments too: the console offers them as transfer targets.
pub async fn list(State(state): State<AppState>, principal: Principal) -> Result<Json<Vec<Department>>, AppError> {
    let tenant = principal.tenant;
    Ok(Json(state.store.list_departments(&tenant.id).await?))
}

#[utoipa::path(get, path = "/api/v1/departments/{id}", tag = "departments", params(("id" = String, Path)),
    responses((status = 200, body = Department), (status = 404, body = ApiErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Department>, AppError> {
    Ok(Json(state.store.get_department(&tenant.id, &DepartmentId(id)).await?))
}

#[utoipa::path(put, path = "/api/v1/departments/{id}", tag = "departments", params(("id" = String, Path)),
    request_body = DepartmentBody,
    responses((status = 200, body = Department), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DepartmentBody>,
) -> Result<Json<Department>, AppError> {
    let input = body.validate()?;
    let dep = state.store.update_department(&tenant.id, &DepartmentId(id), &input).await?;
    state.events.publish(&tenant.id, "department.updated", None, Some(&dep.name), json!(dep));
    Ok(Json(dep))
}

#[utoipa::path(delete, path = "/api/v1/departments/{id}", tag = "departments", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ApiErrorBody), (status = 409, description = "calls are waiting", body = ApiErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let id = DepartmentId(id);
    let dep = state.store.get_department(&tenant.id, &id).await?;
    state.store.delete_department(&tenant.id, &id).await?;
    state.events.publish(&tenant.id, "department.deleted", None, Some(&dep.name), json!({ "id": id }));
    Ok(StatusCode::NO_CONTENT)
}
