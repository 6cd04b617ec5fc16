//! `/api/v1/agents`: register, list with filters, get, update, set status, delete, and the
//! accept/decline endpoints a browser agent answers offers with.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::center::{AcdError, Agent, AgentId, AgentStatus, DepartmentId, Reach};
use crate::error::AppError;
use crate::http::auth::{Authenticated, Principal};
use crate::http::json::{check_dial_target, check_name, invalid, ApiJson};
use crate::http::openapi::ApiErrorBody;
use crate::store::AgentInput;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentBody {
    /// Chosen by the client on registration (letters, digits, `-`, `_`); generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub departments: Vec<DepartmentId>,
    #[serde(default)]
    pub skills: Vec<String>,
    #[serde(default)]
    pub languages: Vec<String>,
    pub reach: Reach,
}

impl AgentBody {
    fn validate(self) -> Result<(Option<AgentId>, AgentInput), AppError> {
        if let Some(id) = &self.id {
            if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(invalid("id", "1 to 64 letters, digits, '-' or '_'"));
            }
        }
        check_name("name", &self.name)?;
        if let Some(email) = &self.email {
            if !email.contains('@') || email.len() > 254 {
                return Err(invalid("email", "not an email address"));
            }
        }
        match &self.reach {
            Reach::Phone { number } => check_dial_target("reach.number", number)?,
            Reach::Sip { uri } => check_dial_target("reach.uri", uri)?,
            Reach::Browser => {}
        }
        for (i, s) in self.skills.iter().enumerate() {
            check_name(&format!("skills[{i}]"), s)?;
        }
        for (i, s) in self.languages.iter().enumerate() {
            check_name(&format!("languages[{i}]"), s)?;
        }
        Ok((
            self.id.map(AgentId),
            AgentInput {
                name: self.name.trim().to_string(),
                email: self.email,
                departments: self.departments,
                skills: self.skills,
                languages: self.languages,
                reach: self.reach,
            },
        ))
    }
}

#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", request_body = AgentBody,
    responses((status = 201, body = Agent), (status = 404, description = "unknown department", body = ApiErrorBody),
              (status = 409, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    ApiJson(body): ApiJson<AgentBody>,
) -> Result<(StatusCode, Json<Agent>), AppError> {
    let (id, input) = body.validate()?;
    let agent = state.store.create_agent(&tenant.id, id, &input).await?;
    state.events.publish(&tenant.id, "agent.created", None, None, json!(agent));
    Ok((StatusCode::CREATED, Json(agent)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AgentFilter {
    /// Only agents of this department (id).
    pub department: Option<String>,
    pub status: Option<String>,
    pub skill: Option<String>,
    pub language: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", params(AgentFilter),
    responses((status = 200, body = Vec<Agent>), (status = 422, body = ApiErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Query(filter): Query<AgentFilter>,
) -> Result<Json<Vec<Agent>>, AppError> {
    let status = match filter.status.as_deref() {
        Some(s) => Some(AgentStatus::parse(s).ok_or_else(|| invalid("status", format!("unknown status {s:?}")))?),
        None => None,
    };
    let has = |list: &[String], want: &Option<String>| want.as_ref().is_none_or(|w| list.iter().any(|x| x.eq_ignore_ascii_case(w)));
    let agents = state
        .store
        .list_agents(&tenant.id)
        .await?
        .into_iter()
        .filter(|a| filter.department.as_ref().is_none_or(|d| a.departments.iter().any(|x| &x.0 == d)))
        .filter(|a| status.is_none_or(|s| a.status == s))
        .filter(|a| has(&a.skills, &filter.skill) && has(&a.languages, &filter.language))
        .collect();
    Ok(Json(agents))
}

#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = Agent), (status = 404, body = ApiErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Agent>, AppError> {
    let id = AgentId(id);
    principal.act_as(&id)?;
    Ok(Json(state.store.get_agent(&principal.tenant.id, &id).await?))
}

#[utoipa::path(put, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = String, Path)), request_body = AgentBody,
    responses((status = 200, body = Agent), (status = 404, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AgentBody>,
) -> Result<Json<Agent>, AppError> {
    let (body_id, input) = body.validate()?;
    if body_id.as_ref().is_some_and(|b| b.0 != id) {
        return Err(invalid("id", "does not match the path"));
    }
    let agent = state.store.update_agent(&tenant.id, &AgentId(id), &input).await?;
    state.events.publish(&tenant.id, "agent.updated", None, None, json!(agent));
    // New skills or departments may match waiting calls.
    let _ = state.acd.dispatch(tenant.id.clone()).await;
    Ok(Json(agent))
}

#[utoipa::path(delete, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ApiErrorBody), (status = 409, description = "on a call", body = ApiErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let id = AgentId(id);
    state.store.delete_agent(&tenant.id, &id).await?;
    state.store.revoke_agent_keys(&tenant.id, &id).await?;
    state.events.publish(&tenant.id, "agent.deleted", None, None, json!({ "agent_id": id }));
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    /// `offline`, `available`, `away` or `wrap_up` (the server sets `offered` and `busy`).
    pub status: AgentStatus,
}

#[utoipa::path(put, path = "/api/v1/agents/{id}/status", tag = "agents", params(("id" = String, Path)), request_body = StatusBody,
    responses((status = 200, body = Agent), (status = 404, body = ApiErrorBody),
              (status = 409, description = "offered a call or on one", body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
pub async fn set_status(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StatusBody>,
) -> Result<Json<Agent>, AppError> {
    let id = AgentId(id);
    principal.act_as(&id)?;
    let tenant = principal.tenant;
    if body.status.is_server_owned() {
        return Err(invalid("status", format!("{} is set by the server", body.status.as_str())));
    }
    let agent = state.store.set_agent_status(&tenant.id, &id, body.status).await?;
    state.events.publish(&tenant.id, "agent.status", None, None, json!({ "agent_id": agent.id, "status": agent.status }));
    if agent.status == AgentStatus::Available {
        let _ = state.acd.dispatch(tenant.id.clone()).await;
    }
    Ok(Json(agent))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OfferAnswer {
    pub agent_id: AgentId,
    #[schema(value_type = String)]
    pub call_id: crate::ids::CallId,
    pub status: AgentStatus,
}

pub(crate) fn acd_error(err: AcdError) -> AppError {
    match err {
        AcdError::UnknownDepartment(name) => invalid("target", format!("no department named {name:?}")),
        AcdError::NoOffer(_) | AcdError::AlreadyQueued(_) | AcdError::NotQueued(_) => AppError::Conflict(err.to_string()),
        AcdError::Busy | AcdError::Stopped => AppError::Unavailable(err.to_string()),
        AcdError::Store(e) => e.into(),
    }
}

#[utoipa::path(post, path = "/api/v1/agents/{id}/accept", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = OfferAnswer), (status = 404, body = ApiErrorBody), (status = 409, description = "no call offered", body = ApiErrorBody)))]
pub async fn accept(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<OfferAnswer>, AppError> {
    let agent = AgentId(id);
    principal.act_as(&agent)?;
    let tenant = principal.tenant;
    state.store.get_agent(&tenant.id, &agent).await?;
    let call_id = state.acd.accept(tenant.id.clone(), agent.clone()).await.map_err(acd_error)?;
    Ok(Json(OfferAnswer { agent_id: agent, call_id, status: AgentStatus::Busy }))
}

#[utoipa::path(post, path = "/api/v1/agents/{id}/decline", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = OfferAnswer), (status = 404, body = ApiErrorBody), (status = 409, description = "no call offered", body = ApiErrorBody)))]
pub async fn decline(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<OfferAnswer>, AppError> {
    let agent = AgentId(id);
    principal.act_as(&agent)?;
    let tenant = principal.tenant;
    state.store.get_agent(&tenant.id, &agent).await?;
    let call_id = state.acd.decline(tenant.id.clone(), agent.clone()).await.map_err(acd_error)?;
    Ok(Json(OfferAnswer { agent_id: agent, call_id, status: AgentStatus::Available }))
}
