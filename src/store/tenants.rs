//! Tenants and their API keys. Keys are random 192-bit secrets; only their SHA-256 is stored,
//! so a leaked database does not leak working keys. (A slow password hash buys nothing for
//! secrets of this entropy and would cost time on every request.)

use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{get, now_ms, Store, StoreError};
use crate::center::AgentId;
use crate::ids::{ApiKeyId, TenantId};

/// Who holds a key: a tenant-wide key, or an agent key that acts as that agent only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOwner {
    pub tenant: Tenant,
    pub agent: Option<AgentId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created_at: i64,
}

const KEY_PREFIX: &str = "sb_";

/// What is kept of a key in the clear: enough to tell keys apart in a list.
pub(super) fn key_prefix(key: &str) -> &str {
    &key[..KEY_PREFIX.len() + 6]
}

fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl Store {
    pub async fn create_tenant(&self, name: &str) -> Result<Tenant, StoreError> {
        let tenant = Tenant { id: TenantId::generate(), name: name.to_string(), created_at: now_ms() };
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(tenant.id.as_str())
            .bind(&tenant.name)
            .bind(tenant.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("tenant {name:?} already exists")),
                other => other,
            })?;
        Ok(tenant)
    }

    pub async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Tenant {
                id: TenantId(get(&r, "id")?),
                name: get(&r, "name")?,
                created_at: get(&r, "created_at")?,
            })
        })
        .transpose()
    }

    /// Returns the tenant, creating it if needed; `true` when it was created now.
    pub async fn ensure_tenant(&self, name: &str) -> Result<(Tenant, bool), StoreError> {
        if let Some(t) = self.tenant_by_name(name).await? {
            return Ok((t, false));
        }
        match self.create_tenant(name).await {
            Ok(t) => Ok((t, true)),
            // Another process created it between our read and insert.
            Err(StoreError::Conflict(_)) => self
                .tenant_by_name(name)
                .await?
                .map(|t| (t, false))
                .ok_or_else(|| StoreError::NotFound(format!("tenant {name:?}"))),
            Err(e) => Err(e),
        }
    }

    /// Mints a tenant-wide key. The plaintext is returned once and never stored.
    pub async fn create_api_key(
        &self,
        tenant: &TenantId,
        label: Option<&str>,
    ) -> Result<(ApiKeyId, String), StoreError> {
        self.insert_key(tenant, None, label, now_ms()).await
    }

    /// Mints a key (tenant-wide, or for one agent) and stores its hash.
    pub(super) async fn insert_key(
        &self,
        tenant: &TenantId,
        agent: Option<&AgentId>,
        label: Option<&str>,
        created_at: i64,
    ) -> Result<(ApiKeyId, String), StoreError> {
        let mut secret = [0u8; 24];
        rand::rng().fill_bytes(&mut secret);
        let key = format!("{KEY_PREFIX}{}", hex::encode(secret));
        let id = ApiKeyId::generate();
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, prefix, key_hash, label, created_at, agent_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.as_str())
        .bind(tenant.as_str())
        .bind(key_prefix(&key))
        .bind(hash_key(&key))
        .bind(label)
        .bind(created_at)
        .bind(agent.map(AgentId::as_str))
        .execute(&self.pool)
        .await?;
        Ok((id, key))
    }

    /// Who a presented key belongs to (its tenant, and its agent for an agent key), if the key
    /// exists and is not revoked.
    pub async fn authenticate(&self, key: &str) -> Result<Option<KeyOwner>, StoreError> {
        if !key.starts_with(KEY_PREFIX) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT t.id, t.name, t.created_at, k.agent_id FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
        )
        .bind(hash_key(key))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(KeyOwner {
                tenant: Tenant {
                    id: TenantId(get(&r, "id")?),
                    name: get(&r, "name")?,
                    created_at: get(&r, "created_at")?,
                },
                agent: get::<Option<String>>(&r, "agent_id")?.map(AgentId),
            })
        })
        .transpose()
    }

    pub async fn revoke_api_key(&self, id: &ApiKeyId) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("api key {id}")));
        }
        Ok(())
    }
}
