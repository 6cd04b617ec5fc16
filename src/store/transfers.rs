//! Transfers and their state machine, persisted at every step.

use sqlx::any::AnyRow;

use super::{get, now_ms, Store, StoreError};
use crate::center::{AgentId, DepartmentId, Transfer, TransferId, TransferState};
use crate::ids::{CallId, TenantId};

const COLUMNS: &str =
    "id, call_id, target_kind, target, mode, state, reason, department_id, agent_id, created_at, updated_at";

fn enum_from<T: serde::de::DeserializeOwned>(s: String) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(s.clone()))
        .map_err(|_| StoreError::Database(sqlx::Error::Decode(format!("unknown value {s:?}").into())))
}

fn enum_str<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => unreachable!("unit enum variants serialise as strings"),
    }
}

fn from_row(r: &AnyRow) -> Result<Transfer, StoreError> {
    Ok(Transfer {
        id: TransferId(get(r, "id")?),
        call_id: CallId(get(r, "call_id")?),
        target_kind: enum_from(get(r, "target_kind")?)?,
        target: get(r, "target")?,
        mode: enum_from(get(r, "mode")?)?,
        state: enum_from(get(r, "state")?)?,
        reason: get(r, "reason")?,
        department_id: get::<Option<String>>(r, "department_id")?.map(DepartmentId),
        agent_id: get::<Option<String>>(r, "agent_id")?.map(AgentId),
        created_at: get(r, "created_at")?,
        updated_at: get(r, "updated_at")?,
    })
}

impl Store {
    pub async fn create_transfer(&self, tenant: &TenantId, t: &Transfer) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO transfers (id, tenant_id, call_id, target_kind, target, mode, state, reason, department_id,
                                    agent_id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(t.id.as_str())
        .bind(tenant.as_str())
        .bind(t.call_id.as_str())
        .bind(enum_str(&t.target_kind))
        .bind(&t.target)
        .bind(enum_str(&t.mode))
        .bind(t.state.as_str())
        .bind(t.reason.as_deref())
        .bind(t.department_id.as_ref().map(|d| d.as_str()))
        .bind(t.agent_id.as_ref().map(|a| a.as_str()))
        .bind(t.created_at)
        .bind(t.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get_transfer(&self, tenant: &TenantId, id: &TransferId) -> Result<Transfer, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM transfers WHERE tenant_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("transfer {id}")))?;
        from_row(&row)
    }

    /// A call's transfers, oldest first.
    pub async fn transfers_for_call(&self, tenant: &TenantId, call: &CallId) -> Result<Vec<Transfer>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM transfers WHERE tenant_id = $1 AND call_id = $2 ORDER BY created_at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .bind(call.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Transfers created in `[from, to)` that touched a department.
    pub async fn transfers_in_period(
        &self,
        tenant: &TenantId,
        department: &DepartmentId,
        from: i64,
        to: i64,
    ) -> Result<Vec<Transfer>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM transfers WHERE tenant_id = $1 AND department_id = $2
               AND created_at >= $3 AND created_at < $4 ORDER BY created_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .bind(department.as_str())
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Moves a transfer along its state machine. The update is conditional on the state read,
    /// so two concurrent moves cannot both win: the loser gets a conflict.
    pub async fn set_transfer_state(
        &self,
        tenant: &TenantId,
        id: &TransferId,
        next: TransferState,
        reason: Option<&str>,
        agent: Option<&AgentId>,
    ) -> Result<Transfer, StoreError> {
        let current = self.get_transfer(tenant, id).await?;
        if current.state == next {
            return Ok(current);
        }
        if !current.state.can_become(next) {
            return Err(StoreError::Conflict(format!(
                "transfer {id} is {}; it cannot become {}",
                current.state.as_str(),
                next.as_str()
            )));
        }
        let done = sqlx::query(
            "UPDATE transfers SET state = $1, reason = COALESCE($2, reason), agent_id = COALESCE($3, agent_id),
                    updated_at = $4
             WHERE tenant_id = $5 AND id = $6 AND state = $7",
        )
        .bind(next.as_str())
        .bind(reason)
        .bind(agent.map(|a| a.as_str()))
        .bind(now_ms())
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(current.state.as_str())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("transfer {id} changed concurrently")));
        }
        self.get_transfer(tenant, id).await
    }
}
