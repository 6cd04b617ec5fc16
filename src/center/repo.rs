//! What the ACD needs from persistence, as a trait: the database in production
//! ([`crate::store::Store`]), an in-memory twin ([`super::memory::MemoryRepo`]) for
//! paused-clock tests, where real I/O would let tokio's auto-advance fire timers early.

use async_trait::async_trait;

use super::model::{Agent, AgentId, AgentStatus, Department, QueueEntry, Transfer, TransferId, TransferState};
use crate::ids::{CallId, TenantId};
use crate::store::{Store, StoreError};

#[async_trait]
pub trait CenterRepo: Send + Sync + 'static {
    async fn department_by_name(&self, tenant: &TenantId, name: &str) -> Result<Option<Department>, StoreError>;
    async fn agents(&self, tenant: &TenantId) -> Result<Vec<Agent>, StoreError>;
    /// available -> offered(call); `false` when someone else got there first.
    async fn offer_agent(&self, tenant: &TenantId, agent: &AgentId, call: &CallId, at: i64) -> Result<bool, StoreError>;
    /// offered(call) -> busy(call).
    async fn agent_take(&self, tenant: &TenantId, agent: &AgentId, call: &CallId, at: i64) -> Result<bool, StoreError>;
    /// Frees whoever holds `call`, giving them `status`.
    async fn release_call(
        &self,
        tenant: &TenantId,
        call: &CallId,
        status: AgentStatus,
        at: i64,
    ) -> Result<Option<AgentId>, StoreError>;
    async fn save_entry(&self, tenant: &TenantId, entry: &QueueEntry) -> Result<(), StoreError>;
    async fn create_transfer(&self, tenant: &TenantId, transfer: &Transfer) -> Result<(), StoreError>;
    async fn set_transfer_state(
        &self,
        tenant: &TenantId,
        id: &TransferId,
        state: TransferState,
        reason: Option<&str>,
        agent: Option<&AgentId>,
    ) -> Result<Transfer, StoreError>;
}

#[async_trait]
impl CenterRepo for Store {
    async fn department_by_name(&self, tenant: &TenantId, name: &str) -> Result<Option<Department>, StoreError> {
        Store::department_by_name(self, tenant, name).await
    }
    async fn agents(&self, tenant: &TenantId) -> Result<Vec<Agent>, StoreError> {
        self.list_agents(tenant).await
    }
    async fn offer_agent(&self, tenant: &TenantId, agent: &AgentId, call: &CallId, at: i64) -> Result<bool, StoreError> {
        Store::offer_agent(self, tenant, agent, call, at).await
    }
    async fn agent_take(&self, tenant: &TenantId, agent: &AgentId, call: &CallId, at: i64) -> Result<bool, StoreError> {
        Store::agent_take(self, tenant, agent, call, at).await
    }
    async fn release_call(
        &self,
        tenant: &TenantId,
        call: &CallId,
        status: AgentStatus,
        at: i64,
    ) -> Result<Option<AgentId>, StoreError> {
        Store::release_call(self, tenant, call, status, at).await
    }
    async fn save_entry(&self, tenant: &TenantId, entry: &QueueEntry) -> Result<(), StoreError> {
        Store::save_entry(self, tenant, entry).await
    }
    async fn create_transfer(&self, tenant: &TenantId, transfer: &Transfer) -> Result<(), StoreError> {
        Store::create_transfer(self, tenant, transfer).await
    }
    async fn set_transfer_state(
        &self,
        tenant: &TenantId,
        id: &TransferId,
        state: TransferState,
        reason: Option<&str>,
        agent: Option<&AgentId>,
    ) -> Result<Transfer, StoreError> {
        Store::set_transfer_state(self, tenant, id, state, reason, agent).await
    }
}
