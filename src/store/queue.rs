//! Queue entries: one row per stay of a call in a department's queue, written by the ACD at
//! every change (joined, offered, left with an outcome).

use sqlx::any::AnyRow;

use super::{get, now_ms, Store, StoreError};
use crate::center::{AgentId, DepartmentId, EntryId, EntryOutcome, EntryState, QueueEntry, TransferId};
use crate::ids::{CallId, TenantId};

const COLUMNS: &str = "id, department_id, call_id, priority, skills, language, state, offered_agent_id, transfer_id, \
     enqueued_at, left_at, outcome, wait_ms";

fn from_row(r: &AnyRow) -> Result<QueueEntry, StoreError> {
    let skills: String = get(r, "skills")?;
    let state: String = get(r, "state")?;
    let outcome: Option<String> = get(r, "outcome")?;
    Ok(QueueEntry {
        id: EntryId(get(r, "id")?),
        department_id: DepartmentId(get(r, "department_id")?),
        call_id: CallId(get(r, "call_id")?),
        priority: get(r, "priority")?,
        skills: serde_json::from_str(&skills).unwrap_or_default(),
        language: get(r, "language")?,
        state: serde_json::from_value(serde_json::Value::String(state)).unwrap_or(EntryState::Left),
        offered_agent_id: get::<Option<String>>(r, "offered_agent_id")?.map(AgentId),
        transfer_id: get::<Option<String>>(r, "transfer_id")?.map(TransferId),
        enqueued_at: get(r, "enqueued_at")?,
        left_at: get(r, "left_at")?,
        outcome: outcome.and_then(|o| serde_json::from_value(serde_json::Value::String(o)).ok()),
        wait_ms: get(r, "wait_ms")?,
    })
}

fn state_str(s: EntryState) -> &'static str {
    match s {
        EntryState::Waiting => "waiting",
        EntryState::Offered => "offered",
        EntryState::Left => "left",
    }
}

impl Store {
    /// Inserts or updates an entry (the ACD writes the whole row at each change).
    pub async fn save_entry(&self, tenant: &TenantId, e: &QueueEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO queue_entries (id, tenant_id, department_id, call_id, priority, skills, language, state,
                                        offered_agent_id, transfer_id, enqueued_at, left_at, outcome, wait_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (id) DO UPDATE SET state = excluded.state, offered_agent_id = excluded.offered_agent_id,
                 left_at = excluded.left_at, outcome = excluded.outcome, wait_ms = excluded.wait_ms",
        )
        .bind(e.id.as_str())
        .bind(tenant.as_str())
        .bind(e.department_id.as_str())
        .bind(e.call_id.as_str())
        .bind(e.priority)
        .bind(serde_json::to_string(&e.skills).expect("strings serialise"))
        .bind(e.language.as_deref())
        .bind(state_str(e.state))
        .bind(e.offered_agent_id.as_ref().map(|a| a.as_str()))
        .bind(e.transfer_id.as_ref().map(|t| t.as_str()))
        .bind(e.enqueued_at)
        .bind(e.left_at)
        .bind(e.outcome.map(EntryOutcome::as_str))
        .bind(e.wait_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A call's queue stays, oldest first.
    pub async fn entries_for_call(&self, tenant: &TenantId, call: &CallId) -> Result<Vec<QueueEntry>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM queue_entries WHERE tenant_id = $1 AND call_id = $2 ORDER BY enqueued_at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .bind(call.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Entries that joined a department's queue in `[from, to)`.
    pub async fn entries_in_period(
        &self,
        tenant: &TenantId,
        department: &DepartmentId,
        from: i64,
        to: i64,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM queue_entries WHERE tenant_id = $1 AND department_id = $2
               AND enqueued_at >= $3 AND enqueued_at < $4 ORDER BY enqueued_at, id"
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

    /// Entries still open from a previous run belong to calls that died with it.
    pub async fn close_stale_entries(&self) -> Result<u64, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE queue_entries SET state = 'left', outcome = 'lost', left_at = $1, wait_ms = $1 - enqueued_at
             WHERE left_at IS NULL",
        )
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
