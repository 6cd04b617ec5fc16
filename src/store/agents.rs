//! Agents and their status. Offers and assignments are conditional updates (`... WHERE
//! status = 'available'`), so under any concurrency, on any number of nodes, an agent holds at
//! most one call and a call is held by at most one agent (a unique index backs the latter).

use std::collections::HashMap;

use sqlx::any::AnyRow;

use super::{get, now_ms, Store, StoreError};
use crate::center::{Agent, AgentId, AgentStatus, DepartmentId, Reach};
use crate::ids::{CallId, TenantId};

/// The settable fields of an agent (register and full update).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentInput {
    pub name: String,
    pub email: Option<String>,
    pub departments: Vec<DepartmentId>,
    pub skills: Vec<String>,
    pub languages: Vec<String>,
    pub reach: Reach,
}

const COLUMNS: &str =
    "id, name, email, status, status_since, skills, languages, reach, current_call_id, created_at, updated_at";

fn from_row(r: &AnyRow, departments: Vec<DepartmentId>) -> Result<Agent, StoreError> {
    let status: String = get(r, "status")?;
    let list = |col: &str| -> Result<Vec<String>, StoreError> {
        let s: String = get(r, col)?;
        Ok(serde_json::from_str(&s).unwrap_or_default())
    };
    let reach: String = get(r, "reach")?;
    Ok(Agent {
        id: AgentId(get(r, "id")?),
        name: get(r, "name")?,
        email: get(r, "email")?,
        departments,
        skills: list("skills")?,
        languages: list("languages")?,
        reach: serde_json::from_str(&reach).unwrap_or(Reach::Browser),
        status: AgentStatus::parse(&status).unwrap_or(AgentStatus::Offline),
        status_since: get(r, "status_since")?,
        current_call_id: get::<Option<String>>(r, "current_call_id")?.map(CallId),
        created_at: get(r, "created_at")?,
        updated_at: get(r, "updated_at")?,
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data always serialises")
}

impl Store {
    /// Registers an agent (status `offline`). `id` may be chosen by the caller.
    pub async fn create_agent(&self, tenant: &TenantId, id: Option<AgentId>, input: &AgentInput) -> Result<Agent, StoreError> {
        let id = id.unwrap_or_else(AgentId::generate);
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO agents (id, tenant_id, name, email, status, status_since, skills, languages, reach,
                                 created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'offline', $5, $6, $7, $8, $5, $5)",
        )
        .bind(id.as_str())
        .bind(tenant.as_str())
        .bind(&input.name)
        .bind(input.email.as_deref())
        .bind(now)
        .bind(to_json(&input.skills))
        .bind(to_json(&input.languages))
        .bind(to_json(&input.reach))
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("agent {id} exists")),
            other => other,
        })?;
        set_departments(&mut tx, tenant, &id, &input.departments).await?;
        tx.commit().await?;
        self.get_agent(tenant, &id).await
    }

    pub async fn update_agent(&self, tenant: &TenantId, id: &AgentId, input: &AgentInput) -> Result<Agent, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE agents SET name = $1, email = $2, skills = $3, languages = $4, reach = $5, updated_at = $6
             WHERE tenant_id = $7 AND id = $8",
        )
        .bind(&input.name)
        .bind(input.email.as_deref())
        .bind(to_json(&input.skills))
        .bind(to_json(&input.languages))
        .bind(to_json(&input.reach))
        .bind(now_ms())
        .bind(tenant.as_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("agent {id}")));
        }
        set_departments(&mut tx, tenant, id, &input.departments).await?;
        tx.commit().await?;
        self.get_agent(tenant, id).await
    }

    pub async fn get_agent(&self, tenant: &TenantId, id: &AgentId) -> Result<Agent, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM agents WHERE tenant_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("agent {id}")))?;
        let deps = sqlx::query("SELECT department_id FROM agent_departments WHERE tenant_id = $1 AND agent_id = $2 ORDER BY department_id")
            .bind(tenant.as_str())
            .bind(id.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| get(r, "department_id").map(DepartmentId))
            .collect::<Result<Vec<_>, _>>()?;
        from_row(&row, deps)
    }

    /// Every agent of a tenant, oldest registration first.
    pub async fn list_agents(&self, tenant: &TenantId) -> Result<Vec<Agent>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM agents WHERE tenant_id = $1 ORDER BY created_at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.as_str()).fetch_all(&self.pool).await?;
        let mut deps: HashMap<String, Vec<DepartmentId>> = HashMap::new();
        for r in sqlx::query("SELECT agent_id, department_id FROM agent_departments WHERE tenant_id = $1 ORDER BY department_id")
            .bind(tenant.as_str())
            .fetch_all(&self.pool)
            .await?
        {
            deps.entry(get(&r, "agent_id")?).or_default().push(DepartmentId(get(&r, "department_id")?));
        }
        rows.iter()
            .map(|r| {
                let id: String = get(r, "id")?;
                from_row(r, deps.remove(&id).unwrap_or_default())
            })
            .collect()
    }

    /// Refused while the agent is offered a call or on one.
    pub async fn delete_agent(&self, tenant: &TenantId, id: &AgentId) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM agents WHERE tenant_id = $1 AND id = $2 AND current_call_id IS NULL")
            .bind(tenant.as_str())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            self.get_agent(tenant, id).await?;
            return Err(StoreError::Conflict(format!("agent {id} is on a call")));
        }
        Ok(())
    }

    /// Sets a status the agent may choose (never while offered or on a call).
    pub async fn set_agent_status(&self, tenant: &TenantId, id: &AgentId, status: AgentStatus) -> Result<Agent, StoreError> {
        let done = sqlx::query(
            "UPDATE agents SET status = $1, status_since = $2, updated_at = $2
             WHERE tenant_id = $3 AND id = $4 AND current_call_id IS NULL AND status NOT IN ('offered', 'busy')",
        )
        .bind(status.as_str())
        .bind(now_ms())
        .bind(tenant.as_str())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            let agent = self.get_agent(tenant, id).await?;
            return Err(StoreError::Conflict(format!("agent {id} is {}", agent.status.as_str())));
        }
        self.get_agent(tenant, id).await
    }

    /// available -> offered(call). `false` when the agent is no longer available or the call is
    /// already someone else's.
    pub async fn offer_agent(&self, tenant: &TenantId, id: &AgentId, call: &CallId, at: i64) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE agents SET status = 'offered', status_since = $1, current_call_id = $2, updated_at = $1
             WHERE tenant_id = $3 AND id = $4 AND status = 'available' AND current_call_id IS NULL",
        )
        .bind(at)
        .bind(call.as_str())
        .bind(tenant.as_str())
        .bind(id.as_str())
        .execute(&self.pool)
        .await;
        match result {
            Ok(done) => Ok(done.rows_affected() == 1),
            // The unique index: another agent holds this call.
            Err(e) => match StoreError::from(e) {
                StoreError::Conflict(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    /// offered(call) -> busy(call).
    pub async fn agent_take(&self, tenant: &TenantId, id: &AgentId, call: &CallId, at: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE agents SET status = 'busy', status_since = $1, updated_at = $1
             WHERE tenant_id = $2 AND id = $3 AND status = 'offered' AND current_call_id = $4",
        )
        .bind(at)
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(call.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Frees whichever agent holds `call` (offered or busy), giving them `status`.
    pub async fn release_call(
        &self,
        tenant: &TenantId,
        call: &CallId,
        status: AgentStatus,
        at: i64,
    ) -> Result<Option<AgentId>, StoreError> {
        let row = sqlx::query("SELECT id FROM agents WHERE tenant_id = $1 AND current_call_id = $2")
            .bind(tenant.as_str())
            .bind(call.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let id = AgentId(get(&row, "id")?);
        let done = sqlx::query(
            "UPDATE agents SET status = $1, status_since = $2, current_call_id = NULL, updated_at = $2
             WHERE tenant_id = $3 AND id = $4 AND current_call_id = $5",
        )
        .bind(status.as_str())
        .bind(at)
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(call.as_str())
        .execute(&self.pool)
        .await?;
        Ok((done.rows_affected() == 1).then_some(id))
    }

    /// After a restart no call survives: offered agents become available again, busy ones
    /// go to wrap-up.
    pub async fn reset_agent_assignments(&self) -> Result<u64, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE agents SET status = CASE WHEN status = 'busy' THEN 'wrap_up' ELSE 'available' END,
                    status_since = $1, current_call_id = NULL, updated_at = $1
             WHERE status IN ('offered', 'busy') OR current_call_id IS NOT NULL",
        )
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

async fn set_departments(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: &TenantId,
    agent: &AgentId,
    departments: &[DepartmentId],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM agent_departments WHERE tenant_id = $1 AND agent_id = $2")
        .bind(tenant.as_str())
        .bind(agent.as_str())
        .execute(&mut **tx)
        .await?;
    for dep in departments {
        let exists = sqlx::query("SELECT id FROM departments WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(dep.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("department {dep}")));
        }
        sqlx::query(
            "INSERT INTO agent_departments (tenant_id, agent_id, department_id) VALUES ($1, $2, $3)
             ON CONFLICT (agent_id, department_id) DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(agent.as_str())
        .bind(dep.as_str())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
