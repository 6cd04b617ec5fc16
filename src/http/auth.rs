//! Authentication: `Authorization: Bearer <key>` -> who holds the key.
//!
//! Two kinds of key: tenant-wide keys (integrators, supervisors, operators) and agent keys,
//! which act as one agent only. An agent key may read and set its agent's status, answer its
//! offers, join the audio of the call it accepted, control and read that call, file its
//! disposition, list departments (to transfer to) and follow its own events. Everything else
//! answers `403` with the reason, so a leaked agent key cannot run the tenant.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::app::AppState;
use crate::center::{AgentId, EntryOutcome};
use crate::error::AppError;
use crate::ids::CallId;
use crate::store::{KeyOwner, StoreError, Tenant};

/// The key in `Authorization: Bearer <key>`, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
}

/// The tenant of a tenant-wide key. Use it as a handler argument: a request without a valid
/// key is answered 401, one with an agent key 403, before the handler runs.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Tenant);

/// Any valid key: tenant-wide, or an agent's. Handlers that agents use take this and check
/// what the key may touch.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: Tenant,
    /// Set for an agent key: the one agent it acts as.
    pub agent: Option<AgentId>,
}

impl From<KeyOwner> for Principal {
    fn from(owner: KeyOwner) -> Self {
        Self { tenant: owner.tenant, agent: owner.agent }
    }
}

impl Principal {
    /// Resolves a presented key; `Unauthorized` when it is unknown or revoked.
    pub async fn from_key(state: &AppState, key: &str) -> Result<Self, AppError> {
        state.store.authenticate(key).await?.map(Self::from).ok_or(AppError::Unauthorized)
    }

    /// The tenant, for what only tenant-wide keys may do.
    pub fn tenant_wide(self) -> Result<Tenant, AppError> {
        match self.agent {
            None => Ok(self.tenant),
            Some(agent) => Err(agent_only(&agent)),
        }
    }

    /// May act as `agent`: a tenant-wide key, or that agent's own key.
    pub fn act_as(&self, agent: &AgentId) -> Result<(), AppError> {
        match &self.agent {
            Some(own) if own != agent => Err(AppError::Forbidden(format!("this key acts as agent {own}, not {agent}"))),
            _ => Ok(()),
        }
    }

    /// May hold, transfer or hang up `call`: a tenant-wide key, or the agent the call is
    /// offered or assigned to right now.
    pub async fn may_control_call(&self, state: &AppState, call: &CallId) -> Result<(), AppError> {
        let Some(agent) = &self.agent else { return Ok(()) };
        if current_call(state, &self.tenant, agent).await?.as_ref() == Some(call) {
            return Ok(());
        }
        Err(AppError::Forbidden(format!("call {call} is not assigned to agent {agent}")))
    }

    /// May read `call` or file its disposition: as [`Self::may_control_call`], or the agent
    /// answered it earlier (wrap-up comes after the call is released).
    pub async fn may_read_call(&self, state: &AppState, call: &CallId) -> Result<(), AppError> {
        let Some(agent) = &self.agent else { return Ok(()) };
        if current_call(state, &self.tenant, agent).await?.as_ref() == Some(call) {
            return Ok(());
        }
        let entries = state.store.entries_for_call(&self.tenant.id, call).await?;
        let answered = entries
            .iter()
            .any(|e| e.offered_agent_id.as_ref() == Some(agent) && e.outcome == Some(EntryOutcome::Answered));
        if answered {
            return Ok(());
        }
        Err(AppError::Forbidden(format!("agent {agent} has not handled call {call}")))
    }
}

fn agent_only(agent: &AgentId) -> AppError {
    AppError::Forbidden(format!(
        "this key acts as agent {agent} only; use a tenant-wide API key for this request"
    ))
}

/// The call an agent is offered or on now; an agent deleted meanwhile has none.
async fn current_call(state: &AppState, tenant: &Tenant, agent: &AgentId) -> Result<Option<CallId>, AppError> {
    match state.store.get_agent(&tenant.id, agent).await {
        Ok(a) => Ok(a.current_call_id),
        Err(StoreError::NotFound(_)) => Err(AppError::Forbidden(format!("agent {agent} no longer exists"))),
        Err(err) => Err(err.into()),
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let key = bearer(&parts.headers).ok_or(AppError::Unauthorized)?;
        Self::from_key(state, key).await
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Self(Principal::from_request_parts(parts, state).await?.tenant_wide()?))
    }
}
