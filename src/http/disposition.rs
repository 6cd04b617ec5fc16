//! Wrap-up: an agent's disposition and notes for a call they handled, kept on the call's log
//! (`POST /api/v1/calls/{id}/disposition`). A live call adds it to its own timeline; an ended
//! call gets it appended after its last event.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::call::CallCommand;
use crate::center::AgentId;
use crate::error::AppError;
use crate::http::auth::Principal;
use crate::http::json::{invalid, ApiJson};
use crate::http::openapi::ApiErrorBody;
use crate::ids::CallId;
use crate::store::now_ms;

const MAX_DISPOSITION: usize = 64;
const MAX_NOTES: usize = 4000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispositionBody {
    /// The agent who handled the call.
    pub agent_id: String,
    /// A short outcome code, e.g. `resolved`, `callback`, `escalated`.
    pub disposition: String,
    #[serde(default)]
    pub notes: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DispositionSaved {
    #[schema(value_type = String)]
    pub call_id: CallId,
    pub agent_id: String,
    pub disposition: String,
    pub notes: String,
    pub at: i64,
}

#[utoipa::path(post, path = "/api/v1/calls/{id}/disposition", tag = "calls", params(("id" = String, Path)), request_body = DispositionBody,
    responses((status = 201, body = DispositionSaved), (status = 404, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
pub async fn save(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DispositionBody>,
) -> Result<(StatusCode, Json<DispositionSaved>), AppError> {
    let call = CallId(id);
    principal.act_as(&AgentId(body.agent_id.clone()))?;
    principal.may_read_call(&state, &call).await?;
    let tenant = principal.tenant;
    let disposition = body.disposition.trim().to_string();
    if disposition.is_empty() || disposition.chars().count() > MAX_DISPOSITION {
        return Err(invalid("disposition", format!("1 to {MAX_DISPOSITION} characters")));
    }
    if body.notes.chars().count() > MAX_NOTES {
        return Err(invalid("notes", format!("at most {MAX_NOTES} characters")));
    }
    // Both must exist in this tenant: a typo must not file notes nowhere.
    state.store.get_agent(&tenant.id, &AgentId(body.agent_id.clone())).await.map_err(|e| match e {
        crate::store::StoreError::NotFound(_) => invalid("agent_id", format!("no agent {:?}", body.agent_id)),
        other => other.into(),
    })?;
    let live = state.calls.get(&tenant.id, &call);
    if live.is_none() {
        state.store.get_call(&tenant.id, &call).await?;
    }
    let at = now_ms();
    let data = json!({ "agent_id": body.agent_id, "disposition": disposition, "notes": body.notes });
    let through_call = live.is_some_and(|h| h.send(CallCommand::Note { kind: "disposition", data: data.clone() }).is_ok());
    if !through_call {
        let mut stored = data.clone();
        stored["kind"] = "disposition".into();
        state.store.append_call_note(&tenant.id, &call, "disposition", &stored.to_string(), at).await?;
        state.events.publish(&tenant.id, "call.disposition", Some(&call), None, stored);
    }
    Ok((
        StatusCode::CREATED,
        Json(DispositionSaved { call_id: call, agent_id: body.agent_id, disposition, notes: body.notes, at }),
    ))
}
