//! `/api/v1/transfers`: request (to a department, an agent, a number or a SIP URI; blind or
//! announced), status, complete, cancel; and `GET /api/v1/calls/{id}/transfers`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::center::acd::Enqueue;
use crate::center::{AgentId, CallOrder, CallControl, RegistryControl, Transfer, TransferId, TransferMode, TransferState, TransferTargetKind};
use crate::error::AppError;
use crate::http::agents::acd_error;
use crate::http::auth::Authenticated;
use crate::http::json::{check_dial_target, check_name, check_range, invalid, ApiJson};
use crate::http::openapi::ApiErrorBody;
use crate::ids::{CallId, TenantId};
use crate::store::now_ms;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// Required on `POST /transfers`; taken from the path on `POST /calls/{id}/transfer`.
    #[serde(default)]
    pub call_id: Option<String>,
    pub target_kind: TransferTargetKind,
    /// A department name, an agent id, an E.164 number or a SIP URI.
    pub target: String,
    #[serde(default = "blind")]
    pub mode: TransferMode,
    #[serde(default)]
    pub reason: Option<String>,
    /// Queue priority for department transfers (higher first).
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub skills: Vec<String>,
    #[serde(default)]
    pub language: Option<String>,
}

fn blind() -> TransferMode {
    TransferMode::Blind
}

/// Starts a transfer of a live call; shared by both transfer endpoints.
pub(crate) async fn start(state: &AppState, tenant: &TenantId, call: CallId, body: TransferBody) -> Result<Transfer, AppError> {
    check_range("priority", body.priority, -100, 100)?;
    match body.target_kind {
        TransferTargetKind::Department => check_name("target", &body.target)?,
        TransferTargetKind::Number | TransferTargetKind::Sip => check_dial_target("target", &body.target)?,
        TransferTargetKind::Agent => check_name("target", &body.target)?,
    }
    if state.calls.get(tenant, &call).is_none() {
        return Err(AppError::NotFound(format!("call {call} is not active")));
    }
    let control = RegistryControl(state.calls.clone());
    let agent = match body.target_kind {
        TransferTargetKind::Agent => Some(state.store.get_agent(tenant, &AgentId(body.target.clone())).await?),
        _ => None,
    };
    let department_id = match body.target_kind {
        TransferTargetKind::Department => Some(
            state
                .store
                .department_by_name(tenant, &body.target)
                .await?
                .ok_or_else(|| invalid("target", format!("no department named {:?}", body.target)))?
                .id,
        ),
        _ => None,
    };
    // A browser agent is reached through the queue of their first department, offered to
    // them alone (their console accepts); a dialled agent is connected at once.
    let agent_queue = match &agent {
        Some(a) if a.reach.dial_target().is_none() => {
            let first = a.departments.first().ok_or_else(|| {
                AppError::Conflict(format!("agent {} answers in the browser but is in no department", a.id))
            })?;
            Some(state.store.get_department(tenant, first).await?.name)
        }
        _ => None,
    };
    let now = now_ms();
    let transfer = Transfer {
        id: TransferId::generate(),
        call_id: call.clone(),
        target_kind: body.target_kind,
        target: body.target.clone(),
        mode: body.mode,
        state: TransferState::Requested,
        reason: body.reason.clone(),
        department_id: department_id.or_else(|| agent.as_ref().and_then(|a| a.departments.first().cloned())),
        agent_id: agent.as_ref().map(|a| a.id.clone()),
        created_at: now,
        updated_at: now,
    };
    state.store.create_transfer(tenant, &transfer).await?;
    publish(state, tenant, &transfer);
    if body.mode == TransferMode::Announced {
        let _ = control.order(tenant, &call, CallOrder::Say("Please hold while I transfer your call.".into()));
    }
    let result = match body.target_kind {
        TransferTargetKind::Department => {
            let mut request = Enqueue::new(tenant.clone(), call.clone(), body.target.clone());
            request.priority = body.priority;
            request.skills = body.skills;
            request.language = body.language;
            request.transfer = Some(transfer.id.clone());
            request.reason = body.reason;
            state.acd.enqueue(request).await.map(|_| ()).map_err(acd_error)
        }
        TransferTargetKind::Agent if agent_queue.is_some() => {
            let agent = agent.expect("agent transfers looked the agent up above");
            let mut request = Enqueue::new(tenant.clone(), call.clone(), agent_queue.clone().expect("checked by the guard"));
            request.priority = body.priority;
            request.transfer = Some(transfer.id.clone());
            request.reason = body.reason;
            request.agent = Some(agent.id);
            state.acd.enqueue(request).await.map(|_| ()).map_err(acd_error)
        }
        TransferTargetKind::Agent => {
            let agent = agent.expect("agent transfers looked the agent up above");
            let target = agent.reach.dial_target().expect("checked above: the agent is dialled").to_string();
            if !state.store.offer_agent(tenant, &agent.id, &call, now).await?
                || !state.store.agent_take(tenant, &agent.id, &call, now).await?
            {
                Err(AppError::Conflict(format!("agent {} is not available", agent.id)))
            } else {
                control.order(tenant, &call, CallOrder::Connect(target)).map_err(|e| AppError::Conflict(e.to_string()))
            }
        }
        TransferTargetKind::Number | TransferTargetKind::Sip => control
            .order(tenant, &call, CallOrder::Connect(body.target.clone()))
            .map_err(|e| AppError::Conflict(e.to_string())),
    };
    let (next, reason) = match (&result, body.target_kind) {
        (Ok(()), TransferTargetKind::Department) => return Ok(state.store.get_transfer(tenant, &transfer.id).await?),
        (Ok(()), TransferTargetKind::Agent) if agent_queue.is_some() => {
            return Ok(state.store.get_transfer(tenant, &transfer.id).await?)
        }
        (Ok(()), _) => (TransferState::Connected, None),
        (Err(e), _) => (TransferState::Failed, Some(e.to_string())),
    };
    let updated = state.store.set_transfer_state(tenant, &transfer.id, next, reason.as_deref(), None).await?;
    publish(state, tenant, &updated);
    result.map(|()| updated)
}

fn publish(state: &AppState, tenant: &TenantId, t: &Transfer) {
    state.events.publish(
        tenant,
        format!("transfer.{}", t.state.as_str()),
        Some(&t.call_id),
        (t.target_kind == TransferTargetKind::Department).then_some(t.target.as_str()),
        serde_json::to_value(t).expect("transfers are plain data"),
    );
}

#[utoipa::path(post, path = "/api/v1/transfers", tag = "transfers", request_body = TransferBody,
    responses((status = 201, body = Transfer), (status = 404, description = "unknown or ended call", body = ApiErrorBody),
              (status = 409, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    ApiJson(mut body): ApiJson<TransferBody>,
) -> Result<(StatusCode, Json<Transfer>), AppError> {
    let call = body.call_id.take().ok_or_else(|| invalid("call_id", "required"))?;
    Ok((StatusCode::CREATED, Json(start(&state, &tenant.id, CallId(call), body).await?)))
}

#[utoipa::path(get, path = "/api/v1/transfers/{id}", tag = "transfers", params(("id" = String, Path)),
    responses((status = 200, body = Transfer), (status = 404, body = ApiErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Transfer>, AppError> {
    Ok(Json(state.store.get_transfer(&tenant.id, &TransferId(id)).await?))
}

/// Completes an offered transfer: the offered agent takes the call.
#[utoipa::path(post, path = "/api/v1/transfers/{id}/complete", tag = "transfers", params(("id" = String, Path)),
    responses((status = 200, body = Transfer), (status = 404, body = ApiErrorBody), (status = 409, description = "not offered", body = ApiErrorBody)))]
pub async fn complete(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Transfer>, AppError> {
    let id = TransferId(id);
    let t = state.store.get_transfer(&tenant.id, &id).await?;
    match (t.state, &t.agent_id) {
        (TransferState::Offered, Some(agent)) => {
            state.acd.accept(tenant.id.clone(), agent.clone()).await.map_err(acd_error)?;
        }
        (s, _) => return Err(AppError::Conflict(format!("transfer {id} is {}; only an offered transfer completes", s.as_str()))),
    }
    Ok(Json(state.store.get_transfer(&tenant.id, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/transfers/{id}/cancel", tag = "transfers", params(("id" = String, Path)),
    responses((status = 200, body = Transfer), (status = 404, body = ApiErrorBody), (status = 409, description = "already final", body = ApiErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Transfer>, AppError> {
    let id = TransferId(id);
    let t = state.store.get_transfer(&tenant.id, &id).await?;
    match t.state {
        TransferState::Queued | TransferState::Offered => {
            state.acd.cancel(tenant.id.clone(), id.clone()).await.map_err(acd_error)?;
        }
        TransferState::Requested => {
            let t = state.store.set_transfer_state(&tenant.id, &id, TransferState::Cancelled, None, None).await?;
            publish(&state, &tenant.id, &t);
        }
        s => return Err(AppError::Conflict(format!("transfer {id} is already {}", s.as_str()))),
    }
    Ok(Json(state.store.get_transfer(&tenant.id, &id).await?))
}

#[utoipa::path(get, path = "/api/v1/calls/{id}/transfers", tag = "transfers", params(("id" = String, Path)),
    responses((status = 200, body = Vec<Transfer>), (status = 404, body = ApiErrorBody)))]
pub async fn for_call(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Vec<Transfer>>, AppError> {
    let id = CallId(id);
    if state.calls.get(&tenant.id, &id).is_none() {
        state.store.get_call(&tenant.id, &id).await?;
    }
    Ok(Json(state.store.transfers_for_call(&tenant.id, &id).await?))
}
