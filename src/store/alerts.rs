//! Alerts: raised by the rules, resolved automatically or by a supervisor. The database keeps
//! at most one active alert per (tenant, subject, kind) with a partial unique index.

use sqlx::any::AnyRow;

use super::{get, now_ms, Store, StoreError};
use crate::ids::{CallId, TenantId};
use crate::monitor::alerts::{Alert, AlertId, AlertKind, Severity, Subject};

/// A new alert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    pub kind: AlertKind,
    pub severity: Severity,
    pub subject: Subject,
    pub call_id: Option<CallId>,
    pub department: Option<String>,
    pub message: String,
    pub data: serde_json::Value,
}

/// Which alerts to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertStatus {
    Active,
    Resolved,
    All,
}

const COLUMNS: &str = "id, kind, severity, subject_kind, subject_id, call_id, department, message, data, \
     raised_at, resolved_at, resolved_by, resolution";

fn from_row(r: &AnyRow) -> Result<Alert, StoreError> {
    let kind: String = get(r, "kind")?;
    let severity: String = get(r, "severity")?;
    let subject_kind: String = get(r, "subject_kind")?;
    let data: String = get(r, "data")?;
    let bad = |what: &str, v: &str| StoreError::Conflict(format!("alert row with unknown {what} {v:?}"));
    Ok(Alert {
        id: AlertId(get(r, "id")?),
        kind: AlertKind::parse(&kind).ok_or_else(|| bad("kind", &kind))?,
        severity: Severity::parse(&severity).ok_or_else(|| bad("severity", &severity))?,
        subject: Subject::from_parts(&subject_kind, get(r, "subject_id")?).ok_or_else(|| bad("subject", &subject_kind))?,
        call_id: get::<Option<String>>(r, "call_id")?.map(CallId),
        department: get(r, "department")?,
        message: get(r, "message")?,
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
        raised_at: get(r, "raised_at")?,
        resolved_at: get(r, "resolved_at")?,
        resolved_by: get(r, "resolved_by")?,
        resolution: get(r, "resolution")?,
    })
}

impl Store {
    /// Stores a new active alert. `None` when one is already active for the same subject and
    /// kind: the unique index decides, so concurrent raisers cannot both win.
    pub async fn raise_alert(&self, tenant: &TenantId, alert: &NewAlert) -> Result<Option<Alert>, StoreError> {
        let id = AlertId::generate();
        let result = sqlx::query(
            "INSERT INTO alerts (id, tenant_id, kind, severity, subject_kind, subject_id, call_id, department,
                                 message, data, raised_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(id.as_str())
        .bind(tenant.as_str())
        .bind(alert.kind.as_str())
        .bind(alert.severity.as_str())
        .bind(alert.subject.kind_str())
        .bind(alert.subject.id())
        .bind(alert.call_id.as_ref().map(|c| c.0.clone()))
        .bind(alert.department.as_deref())
        .bind(&alert.message)
        .bind(alert.data.to_string())
        .bind(now_ms())
        .execute(&self.pool)
        .await;
        match result.map_err(StoreError::from) {
            Ok(_) => self.get_alert(tenant, &id).await.map(Some),
            Err(StoreError::Conflict(_)) => Ok(None),
            Err(other) => Err(other),
        }
    }

    pub async fn get_alert(&self, tenant: &TenantId, id: &AlertId) -> Result<Alert, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM alerts WHERE tenant_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("alert {id}")))?;
        from_row(&row)
    }

    /// Most severe first, then oldest first.
    pub async fn list_alerts(&self, tenant: &TenantId, status: AlertStatus, limit: i64) -> Result<Vec<Alert>, StoreError> {
        let filter = match status {
            AlertStatus::Active => "AND resolved_at IS NULL",
            AlertStatus::Resolved => "AND resolved_at IS NOT NULL",
            AlertStatus::All => "",
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM alerts WHERE tenant_id = $1 {filter}
             ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, raised_at, id
             LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.as_str()).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// Resolves one alert by id. `Conflict` when it is already resolved.
    pub async fn resolve_alert(&self, tenant: &TenantId, id: &AlertId, by: &str, reason: &str) -> Result<Alert, StoreError> {
        let done = sqlx::query(
            "UPDATE alerts SET resolved_at = $1, resolved_by = $2, resolution = $3
             WHERE tenant_id = $4 AND id = $5 AND resolved_at IS NULL",
        )
        .bind(now_ms())
        .bind(by)
        .bind(reason)
        .bind(tenant.as_str())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        let alert = self.get_alert(tenant, id).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("alert {id} is already resolved")));
        }
        Ok(alert)
    }

    /// Resolves the active alert of this subject and kind, if there is one.
    pub async fn resolve_active_alert(
        &self,
        tenant: &TenantId,
        kind: AlertKind,
        subject: &Subject,
        by: &str,
        reason: &str,
    ) -> Result<Option<Alert>, StoreError> {
        let row = sqlx::query(
            "SELECT id FROM alerts WHERE tenant_id = $1 AND kind = $2 AND subject_kind = $3 AND subject_id = $4
             AND resolved_at IS NULL",
        )
        .bind(tenant.as_str())
        .bind(kind.as_str())
        .bind(subject.kind_str())
        .bind(subject.id())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id = AlertId(get(&row, "id")?);
        match self.resolve_alert(tenant, &id, by, reason).await {
            Ok(a) => Ok(Some(a)),
            // Resolved meanwhile (a supervisor): nothing left to do.
            Err(StoreError::Conflict(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Alerts left active by a previous run describe calls and waits that are gone.
    pub async fn resolve_stale_alerts(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE alerts SET resolved_at = $1, resolved_by = 'system', resolution = 'restart' WHERE resolved_at IS NULL",
        )
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Every tenant id, for the evaluator to watch.
    pub async fn alert_tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        let rows = sqlx::query("SELECT id FROM tenants").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(TenantId(get(r, "id")?))).collect()
    }
}
