//! Agent keys and `GET /api/v1/me`.
//!
//! - `POST /api/v1/agents/{id}/keys` `{"label": "..."}` -> `201`, the key in the clear (once).
//! - `GET /api/v1/agents/{id}/keys` -> the agent's keys (prefix, label, when made and revoked).
//! - `DELETE /api/v1/agents/{id}/keys/{key_id}` -> `204`; the key stops working at once.
//! - `GET /api/v1/me` -> who the presented key acts as: the tenant, and the agent for an agent
//!   key (the agent console signs in with either kind).
//!
//! Managing keys takes a tenant-wide key. What an agent key may do is in `http::auth`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::center::AgentId;
use crate::error::AppError;
use crate::http::auth::{Authenticated, Principal};
use crate::http::json::{check_name, ApiJson};
use crate::http::openapi::ApiErrorBody;
use crate::ids::ApiKeyId;
use crate::store::AgentKey;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    /// What the key is for ("ana's laptop").
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewAgentKey {
    #[serde(flatten)]
    pub record: AgentKey,
    /// The key itself: shown only now, only its hash is kept.
    pub key: String,
}

#[utoipa::path(post, path = "/api/v1/agents/{id}/keys", tag = "agents", params(("id" = String, Path)), request_body = NewKeyBody,
    responses((status = 201, body = NewAgentKey), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewKeyBody>,
) -> Result<(StatusCode, Json<NewAgentKey>), AppError> {
    if let Some(label) = &body.label {
        check_name("label", label)?;
    }
    let agent = AgentId(id);
    state.store.get_agent(&tenant.id, &agent).await?;
    let (record, key) = state.store.create_agent_key(&tenant.id, &agent, body.label.as_deref()).await?;
    tracing::info!(agent_id = %agent, key_id = %record.id, "agent key created");
    Ok((StatusCode::CREATED, Json(NewAgentKey { record, key })))
}

#[utoipa::path(get, path = "/api/v1/agents/{id}/keys", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = Vec<AgentKey>), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Vec<AgentKey>>, AppError> {
    let agent = AgentId(id);
    state.store.get_agent(&tenant.id, &agent).await?;
    Ok(Json(state.store.list_agent_keys(&tenant.id, &agent).await?))
}

#[utoipa::path(delete, path = "/api/v1/agents/{id}/keys/{key_id}", tag = "agents",
    params(("id" = String, Path), ("key_id" = String, Path)),
    responses((status = 204), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    let agent = AgentId(id);
    state.store.revoke_agent_key(&tenant.id, &agent, &ApiKeyId(key_id.clone())).await?;
    tracing::info!(agent_id = %agent, key_id, "agent key revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    #[schema(value_type = String)]
    pub tenant_id: crate::ids::TenantId,
    pub tenant: String,
    /// Set for an agent key: the one agent it acts as.
    pub agent_id: Option<AgentId>,
}

#[utoipa::path(get, path = "/api/v1/me", tag = "agents", responses((status = 200, body = Me), (status = 401, body = ApiErrorBody)))]
pub async fn me(principal: Principal) -> Json<Me> {
    Json(Me { tenant_id: principal.tenant.id, tenant: principal.tenant.name, agent_id: principal.agent })
}
