//! Departments: a queue of calls, its limits and its overflow action.

use sqlx::any::AnyRow;

use super::{get, now_ms, Store, StoreError};
use crate::center::{Department, DepartmentId, OverflowAction};
use crate::ids::TenantId;

/// The settable fields of a department (create and full update).
#[derive(Debug, Clone, PartialEq)]
pub struct DepartmentInput {
    pub name: String,
    pub overflow_number: Option<String>,
    pub overflow: Option<OverflowAction>,
    pub business_hours: Option<serde_json::Value>,
    pub service_level_secs: i64,
    pub max_queue: i64,
    pub max_wait_secs: i64,
}

const COLUMNS: &str = "id, name, overflow_target, overflow_action, business_hours, service_level_secs, \
     max_queue, max_wait_secs, created_at, updated_at";

fn from_row(r: &AnyRow) -> Result<Department, StoreError> {
    let overflow: Option<String> = get(r, "overflow_action")?;
    let hours: Option<String> = get(r, "business_hours")?;
    Ok(Department {
        id: DepartmentId(get(r, "id")?),
        name: get(r, "name")?,
        overflow_number: get(r, "overflow_target")?,
        overflow: overflow.and_then(|s| serde_json::from_str(&s).ok()),
        business_hours: hours.and_then(|s| serde_json::from_str(&s).ok()),
        service_level_secs: get(r, "service_level_secs")?,
        max_queue: get(r, "max_queue")?,
        max_wait_secs: get(r, "max_wait_secs")?,
        created_at: get(r, "created_at")?,
        updated_at: get(r, "updated_at")?,
    })
}

fn json_opt<T: serde::Serialize>(v: &Option<T>) -> Option<String> {
    v.as_ref().map(|v| serde_json::to_string(v).expect("plain data always serialises"))
}

fn name_taken(err: StoreError, name: &str) -> StoreError {
    match err {
        StoreError::Conflict(_) => StoreError::Conflict(format!("a department named {name:?} exists")),
        other => other,
    }
}

impl Store {
    pub async fn create_department(&self, tenant: &TenantId, input: &DepartmentInput) -> Result<Department, StoreError> {
        let id = DepartmentId::generate();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO departments (id, tenant_id, name, overflow_target, overflow_action, business_hours,
                                      service_level_secs, max_queue, max_wait_secs, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(id.as_str())
        .bind(tenant.as_str())
        .bind(&input.name)
        .bind(input.overflow_number.as_deref())
        .bind(json_opt(&input.overflow))
        .bind(json_opt(&input.business_hours))
        .bind(input.service_level_secs)
        .bind(input.max_queue)
        .bind(input.max_wait_secs)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| name_taken(e.into(), &input.name))?;
        self.get_department(tenant, &id).await
    }

    pub async fn list_departments(&self, tenant: &TenantId) -> Result<Vec<Department>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM departments WHERE tenant_id = $1 ORDER BY name");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.as_str()).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn get_department(&self, tenant: &TenantId, id: &DepartmentId) -> Result<Department, StoreError> {
        self.find_department(tenant, "id", id.as_str())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("department {id}")))
    }

    pub async fn department_by_name(&self, tenant: &TenantId, name: &str) -> Result<Option<Department>, StoreError> {
        self.find_department(tenant, "name", name).await
    }

    async fn find_department(&self, tenant: &TenantId, column: &str, value: &str) -> Result<Option<Department>, StoreError> {
        // `column` is one of two literals above, never input.
        let sql = format!("SELECT {COLUMNS} FROM departments WHERE tenant_id = $1 AND {column} = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn update_department(
        &self,
        tenant: &TenantId,
        id: &DepartmentId,
        input: &DepartmentInput,
    ) -> Result<Department, StoreError> {
        let done = sqlx::query(
            "UPDATE departments SET name = $1, overflow_target = $2, overflow_action = $3, business_hours = $4,
                    service_level_secs = $5, max_queue = $6, max_wait_secs = $7, updated_at = $8
             WHERE tenant_id = $9 AND id = $10",
        )
        .bind(&input.name)
        .bind(input.overflow_number.as_deref())
        .bind(json_opt(&input.overflow))
        .bind(json_opt(&input.business_hours))
        .bind(input.service_level_secs)
        .bind(input.max_queue)
        .bind(input.max_wait_secs)
        .bind(now_ms())
        .bind(tenant.as_str())
        .bind(id.as_str())
        .execute(&self.pool)
        .await
        .map_err(|e| name_taken(e.into(), &input.name))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("department {id}")));
        }
        self.get_department(tenant, id).await
    }

    /// Refused (conflict) while calls wait in the department's queue. The check and the delete
    /// share one transaction, and the ACD enqueues through the same table, so a call that joins
    /// at the same moment either blocks the delete or finds no department.
    pub async fn delete_department(&self, tenant: &TenantId, id: &DepartmentId) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let waiting: i64 = get(
            &sqlx::query(
                "SELECT COUNT(*) AS n FROM queue_entries WHERE tenant_id = $1 AND department_id = $2 AND left_at IS NULL",
            )
            .bind(tenant.as_str())
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await?,
            "n",
        )?;
        if waiting > 0 {
            return Err(StoreError::Conflict(format!("department {id} has {waiting} calls waiting")));
        }
        sqlx::query("DELETE FROM agent_departments WHERE tenant_id = $1 AND department_id = $2")
            .bind(tenant.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM departments WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("department {id}")));
        }
        tx.commit().await?;
        Ok(())
    }
}
