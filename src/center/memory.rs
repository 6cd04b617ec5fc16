//! An in-memory [`CenterRepo`] with the same conditional semantics as the database, for
//! tests that run the ACD on a paused clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::model::{Agent, AgentId, AgentStatus, Department, EntryId, QueueEntry, Transfer, TransferId, TransferState};
use super::repo::CenterRepo;
use crate::ids::{CallId, TenantId};
use crate::store::StoreError;

#[derive(Default)]
struct Inner {
    departments: Vec<(TenantId, Department)>,
    agents: Vec<(TenantId, Agent)>,
    entries: HashMap<EntryId, QueueEntry>,
    transfers: HashMap<TransferId, Transfer>,
}

/// Cheap to clone; clones share the data.
#[derive(Clone, Default)]
pub struct MemoryRepo {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryRepo {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a department, or replaces the tenant's department of the same name.
    pub fn add_department(&self, tenant: &TenantId, department: Department) {
        let mut inner = self.lock();
        inner.departments.retain(|(t, d)| !(t == tenant && d.name == department.name));
        inner.departments.push((tenant.clone(), department));
    }

    pub fn add_agent(&self, tenant: &TenantId, agent: Agent) {
        self.lock().agents.push((tenant.clone(), agent));
    }

    /// Sets a status as the agent would (the ACD must then be told to dispatch).
    pub fn set_status(&self, agent: &AgentId, status: AgentStatus, at: i64) {
        if let Some((_, a)) = self.lock().agents.iter_mut().find(|(_, a)| &a.id == agent) {
            a.status = status;
            a.status_since = at;
        }
    }

    pub fn agent(&self, id: &AgentId) -> Option<Agent> {
        self.lock().agents.iter().find(|(_, a)| &a.id == id).map(|(_, a)| a.clone())
    }

    /// Every entry ever saved, by enqueue time.
    pub fn entries(&self) -> Vec<QueueEntry> {
        let mut v: Vec<_> = self.lock().entries.values().cloned().collect();
        v.sort_by(|a, b| (a.enqueued_at, &a.id).cmp(&(b.enqueued_at, &b.id)));
        v
    }

    pub fn transfers(&self) -> Vec<Transfer> {
        let mut v: Vec<_> = self.lock().transfers.values().cloned().collect();
        v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        v
    }
}

#[async_trait]
impl CenterRepo for MemoryRepo {
    async fn department_by_name(&self, tenant: &TenantId, name: &str) -> Result<Option<Department>, StoreError> {
        Ok(self.lock().departments.iter().find(|(t, d)| t == tenant && d.name == name).map(|(_, d)| d.clone()))
    }

    async fn agents(&self, tenant: &TenantId) -> Result<Vec<Agent>, StoreError> {
        Ok(self.lock().agents.iter().filter(|(t, _)| t == tenant).map(|(_, a)| a.clone()).collect())
    }

    async fn offer_agent(&self, tenant: &TenantId, agent: &AgentId, call: &CallId, at: i64) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        if inner.agents.iter().any(|(_, a)| a.current_call_id.as_ref() == Some(call)) {
            return Ok(false);
        }
        let Some((_, a)) = inner.agents.iter_mut().find(|(t, a)| t == tenant && &a.id == agent) else { return Ok(false) };
        if a.status != AgentStatus::Available || a.current_call_id.is_some() {
            return Ok(false);
        }
        a.status = AgentStatus::Offered;
        a.status_since = at;
        a.current_call_id = Some(call.clone());
        Ok(true)
    }

    async fn agent_take(&self, tenant: &TenantId, agent: &AgentId, call: &CallId, at: i64) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let Some((_, a)) = inner.agents.iter_mut().find(|(t, a)| t == tenant && &a.id == agent) else { return Ok(false) };
        if a.status != AgentStatus::Offered || a.current_call_id.as_ref() != Some(call) {
            return Ok(false);
        }
        a.status = AgentStatus::Busy;
        a.status_since = at;
        Ok(true)
    }

    async fn release_call(
        &self,
        tenant: &TenantId,
        call: &CallId,
        status: AgentStatus,
        at: i64,
    ) -> Result<Option<AgentId>, StoreError> {
        let mut inner = self.lock();
        let Some((_, a)) = inner.agents.iter_mut().find(|(t, a)| t == tenant && a.current_call_id.as_ref() == Some(call))
        else {
            return Ok(None);
        };
        a.status = status;
        a.status_since = at;
        a.current_call_id = None;
        Ok(Some(a.id.clone()))
    }

    async fn save_entry(&self, _tenant: &TenantId, entry: &QueueEntry) -> Result<(), StoreError> {
        self.lock().entries.insert(entry.id.clone(), entry.clone());
        Ok(())
    }

    async fn create_transfer(&self, _tenant: &TenantId, transfer: &Transfer) -> Result<(), StoreError> {
        self.lock().transfers.insert(transfer.id.clone(), transfer.clone());
        Ok(())
    }

    async fn set_transfer_state(
        &self,
        _tenant: &TenantId,
        id: &TransferId,
        state: TransferState,
        reason: Option<&str>,
        agent: Option<&AgentId>,
    ) -> Result<Transfer, StoreError> {
        let mut inner = self.lock();
        let t = inner.transfers.get_mut(id).ok_or_else(|| StoreError::NotFound(format!("transfer {id}")))?;
        if t.state != state && !t.state.can_become(state) {
            return Err(StoreError::Conflict(format!("transfer {id} is {}", t.state.as_str())));
        }
        t.state = state;
        if let Some(r) = reason {
            t.reason = Some(r.to_string());
        }
        if let Some(a) = agent {
            t.agent_id = Some(a.clone());
        }
        Ok(t.clone())
    }
}
