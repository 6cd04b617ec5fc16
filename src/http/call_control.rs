//! Call control on active calls (`POST /api/v1/calls/{id}/say` etc.) and outbound calls
//! (`POST /api/v1/calls`). A call that is unknown or has ended is a 404; a call whose command
//! queue is full is a 409.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::call::{CallCommand, CallGone};
use crate::center::Transfer;
use crate::dialog::Action;
use crate::error::AppError;
use crate::http::auth::{Authenticated, Principal};
use crate::http::json::{check_dial_target, invalid, ApiJson};
use crate::http::openapi::ApiErrorBody;
use crate::http::transfers::TransferBody;
use crate::ids::{CallId, TenantId};
use crate::transport::twilio::rest::CallInstructions;

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    #[schema(value_type = String)]
    pub call_id: CallId,
    /// What the call was asked to do.
    pub command: &'static str,
}

fn send(state: &AppState, tenant: &TenantId, id: String, cmd: CallCommand, name: &'static str) -> Result<Json<Accepted>, AppError> {
    let call = CallId(id);
    let handle = state.calls.get(tenant, &call).ok_or_else(|| AppError::NotFound(format!("call {call} is not active")))?;
    handle.send(cmd).map_err(|e| match e {
        CallGone::Ended => AppError::NotFound(format!("call {call} has ended")),
        CallGone::Busy => AppError::Conflict(format!("call {call} is busy; try again")),
    })?;
    Ok(Json(Accepted { call_id: call, command: name }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SayBody {
    pub text: String,
    /// Whether the caller may interrupt it (default true).
    #[serde(default = "yes")]
    pub barge_in: bool,
}

fn yes() -> bool {
    true
}

#[utoipa::path(post, path = "/api/v1/calls/{id}/say", tag = "call control", params(("id" = String, Path)), request_body = SayBody,
    responses((status = 202, body = Accepted), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
pub async fn say(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SayBody>,
) -> Result<(StatusCode, Json<Accepted>), AppError> {
    if body.text.trim().is_empty() || body.text.len() > 4000 {
        return Err(invalid("text", "must be 1 to 4000 characters"));
    }
    let cmd = CallCommand::Act(Action::Say { text: body.text, barge_in: body.barge_in });
    Ok((StatusCode::ACCEPTED, send(&state, &tenant.id, id, cmd, "say")?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlayBody {
    /// A WAV file, relative to the server's working directory.
    pub path: String,
}

#[utoipa::path(post, path = "/api/v1/calls/{id}/play", tag = "call control", params(("id" = String, Path)), request_body = PlayBody,
    responses((status = 202, body = Accepted), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
pub async fn play(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PlayBody>,
) -> Result<(StatusCode, Json<Accepted>), AppError> {
    if !body.path.ends_with(".wav") || body.path.contains("..") || body.path.starts_with('/') {
        return Err(invalid("path", "a relative path to a .wav file, without '..'"));
    }
    Ok((StatusCode::ACCEPTED, send(&state, &tenant.id, id, CallCommand::Act(Action::Play { path: body.path }), "play")?))
}

macro_rules! simple_command {
    ($name:ident, $path:literal, $cmd:expr, $label:literal) => {
        #[utoipa::path(post, path = $path, tag = "call control", params(("id" = String, Path)),
            responses((status = 202, body = Accepted), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
        pub async fn $name(
            State(state): State<AppState>,
            principal: Principal,
            Path(id): Path<String>,
        ) -> Result<(StatusCode, Json<Accepted>), AppError> {
            principal.may_control_call(&state, &CallId(id.clone())).await?;
            Ok((StatusCode::ACCEPTED, send(&state, &principal.tenant.id, id, $cmd, $label)?))
        }
    };
}

simple_command!(mute, "/api/v1/calls/{id}/mute", CallCommand::Mute(true), "mute");
simple_command!(unmute, "/api/v1/calls/{id}/unmute", CallCommand::Mute(false), "unmute");
simple_command!(hold, "/api/v1/calls/{id}/hold", CallCommand::Hold(true), "hold");
simple_command!(unhold, "/api/v1/calls/{id}/unhold", CallCommand::Hold(false), "unhold");

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HangupBody {
    #[serde(default)]
    pub reason: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/calls/{id}/hangup", tag = "call control", params(("id" = String, Path)), request_body = HangupBody,
    responses((status = 202, body = Accepted), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub async fn hangup(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<HangupBody>,
) -> Result<(StatusCode, Json<Accepted>), AppError> {
    principal.may_control_call(&state, &CallId(id.clone())).await?;
    let tenant = principal.tenant;
    let reason = body.reason.unwrap_or_else(|| "api".into());
    Ok((StatusCode::ACCEPTED, send(&state, &tenant.id, id, CallCommand::Act(Action::Hangup { reason }), "hangup")?))
}

#[utoipa::path(post, path = "/api/v1/calls/{id}/transfer", tag = "call control", params(("id" = String, Path)), request_body = TransferBody,
    responses((status = 201, body = Transfer), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
pub async fn transfer(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TransferBody>,
) -> Result<(StatusCode, Json<Transfer>), AppError> {
    principal.may_control_call(&state, &CallId(id.clone())).await?;
    let tenant = principal.tenant;
    if body.call_id.as_ref().is_some_and(|c| c != &id) {
        return Err(invalid("call_id", "does not match the path"));
    }
    Ok((StatusCode::CREATED, Json(crate::http::transfers::start(&state, &tenant.id, CallId(id), body).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundBody {
    /// The number to call (E.164) or a SIP URI.
    pub to: String,
    /// A number on the Twilio account.
    pub from: String,
    /// The flow that talks to the callee (default: the server's default flow).
    #[serde(default)]
    pub flow: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutboundCall {
    /// Twilio's CallSid; the call shows up in `/calls` with this `external_id` once answered.
    pub call_sid: String,
    pub status: String,
}

#[utoipa::path(post, path = "/api/v1/calls", tag = "call control", request_body = OutboundBody,
    responses((status = 201, body = OutboundCall), (status = 422, body = ApiErrorBody),
              (status = 503, description = "no Twilio credentials, or Twilio refused", body = ApiErrorBody)))]
pub async fn outbound(
    State(state): State<AppState>,
    Authenticated(_tenant): Authenticated,
    headers: HeaderMap,
    ApiJson(body): ApiJson<OutboundBody>,
) -> Result<(StatusCode, Json<OutboundCall>), AppError> {
    check_dial_target("to", &body.to)?;
    check_dial_target("from", &body.from)?;
    if let Some(flow) = &body.flow {
        if state.flows.get(flow).is_none() {
            return Err(invalid("flow", format!("unknown flow {flow:?}")));
        }
    }
    let rest = state.twilio_rest.as_ref().ok_or_else(|| AppError::Unavailable("Twilio REST credentials are not configured".into()))?;
    let base = match &state.config.server.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let host = headers.get("x-forwarded-host").or_else(|| headers.get("host")).and_then(|h| h.to_str().ok());
            let host = host.ok_or_else(|| AppError::BadRequest("no Host header and no server.public_url".into()))?;
            let proto = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("http");
            format!("{proto}://{host}")
        }
    };
    let mut url = format!("{base}/twilio/voice");
    if let Some(flow) = &body.flow {
        url += &format!("?flow={flow}");
    }
    let call = rest
        .create_call(&body.to, &body.from, &CallInstructions::Url(url))
        .await
        .map_err(|e| AppError::Unavailable(format!("Twilio refused the call: {e}")))?;
    Ok((StatusCode::CREATED, Json(OutboundCall { call_sid: call.sid.0.clone(), status: call.status.clone() })))
}
