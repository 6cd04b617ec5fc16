//! Agent keys: API keys that act as one agent (see `http::principal` for what they may do).
//! Stored like tenant keys, hash only; the plaintext is shown once, on creation.

use serde::Serialize;
use utoipa::ToSchema;

use super::{get, now_ms, Store, StoreError};
use crate::center::AgentId;
use crate::ids::{ApiKeyId, TenantId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AgentKey {
    #[schema(value_type = String)]
    pub id: ApiKeyId,
    pub agent_id: AgentId,
    /// The key's first characters, to tell keys apart.
    pub prefix: String,
    pub label: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

fn row_to_key(r: &sqlx::any::AnyRow) -> Result<AgentKey, StoreError> {
    Ok(AgentKey {
        id: ApiKeyId(get(r, "id")?),
        agent_id: AgentId(get(r, "agent_id")?),
        prefix: get(r, "prefix")?,
        label: get(r, "label")?,
        created_at: get(r, "created_at")?,
        revoked_at: get(r, "revoked_at")?,
    })
}

impl Store {
    /// Mints a key for `agent`; the plaintext is returned once and never stored.
    pub async fn create_agent_key(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        label: Option<&str>,
    ) -> Result<(AgentKey, String), StoreError> {
        let created_at = now_ms();
        let (id, key) = self.insert_key(tenant, Some(agent), label, created_at).await?;
        let record = AgentKey {
            id,
            agent_id: agent.clone(),
            prefix: super::tenants::key_prefix(&key).to_string(),
            label: label.map(str::to_string),
            created_at,
            revoked_at: None,
        };
        Ok((record, key))
    }

    /// An agent's keys, revoked ones included, newest first.
    pub async fn list_agent_keys(&self, tenant: &TenantId, agent: &AgentId) -> Result<Vec<AgentKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, agent_id, prefix, label, created_at, revoked_at FROM api_keys
             WHERE tenant_id = $1 AND agent_id = $2 ORDER BY created_at DESC, id DESC",
        )
        .bind(tenant.as_str())
        .bind(agent.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_to_key).collect()
    }

    /// Revokes one of an agent's keys; revoking twice is not an error.
    pub async fn revoke_agent_key(&self, tenant: &TenantId, agent: &AgentId, key: &ApiKeyId) -> Result<(), StoreError> {
        let found = sqlx::query("SELECT id FROM api_keys WHERE tenant_id = $1 AND agent_id = $2 AND id = $3")
            .bind(tenant.as_str())
            .bind(agent.as_str())
            .bind(key.as_str())
            .fetch_optional(&self.pool)
            .await?;
        if found.is_none() {
            return Err(StoreError::NotFound(format!("key {key} of agent {agent}")));
        }
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(key.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Revokes every key of an agent (the agent is being deleted).
    pub async fn revoke_agent_keys(&self, tenant: &TenantId, agent: &AgentId) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND agent_id = $3 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(tenant.as_str())
            .bind(agent.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
