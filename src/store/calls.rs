//! Calls and their event timelines.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use super::{get, Store, StoreError};
use crate::ids::{CallId, TenantId};

/// A call as first recorded, when its transport accepts it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewCall {
    pub id: CallId,
    pub tenant_id: TenantId,
    /// `twilio`, `webrtc`, `sip`.
    pub transport: String,
    /// The transport's own id (a Twilio CallSid, a WebRTC session id).
    pub external_id: Option<String>,
    /// `inbound` or `outbound`.
    pub direction: String,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub flow: Option<String>,
    pub started_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub id: CallId,
    pub tenant_id: TenantId,
    pub transport: String,
    pub external_id: Option<String>,
    pub direction: String,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub flow: Option<String>,
    pub state: String,
    pub end_cause: Option<String>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub duration_ms: Option<i64>,
}

/// One entry of a call's timeline. `seq` is per call and makes inserts idempotent, so a batch
/// retried after an unknown outcome (or replayed from a spill file) is never doubled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEventRecord {
    pub tenant_id: TenantId,
    pub call_id: CallId,
    pub seq: i64,
    pub kind: String,
    pub at: i64,
    /// JSON object with the event's data.
    pub data: String,
}

const CALL_COLUMNS: &str = "id, tenant_id, transport, external_id, direction, from_number, to_number, \
     flow, state, end_cause, started_at, ended_at, duration_ms";

fn call_from_row(r: &AnyRow) -> Result<CallRecord, StoreError> {
    Ok(CallRecord {
        id: CallId(get(r, "id")?),
        tenant_id: TenantId(get(r, "tenant_id")?),
        transport: get(r, "transport")?,
        external_id: get(r, "external_id")?,
        direction: get(r, "direction")?,
        from_number: get(r, "from_number")?,
        to_number: get(r, "to_number")?,
        flow: get(r, "flow")?,
        state: get(r, "state")?,
        end_cause: get(r, "end_cause")?,
        started_at: get(r, "started_at")?,
        ended_at: get(r, "ended_at")?,
        duration_ms: get(r, "duration_ms")?,
    })
}

pub(super) async fn insert_call<'c, E>(exec: E, call: &NewCall) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO calls (id, tenant_id, transport, external_id, direction, from_number, to_number,
                            flow, state, started_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(call.id.as_str())
    .bind(call.tenant_id.as_str())
    .bind(&call.transport)
    .bind(call.external_id.as_deref())
    .bind(&call.direction)
    .bind(call.from_number.as_deref())
    .bind(call.to_number.as_deref())
    .bind(call.flow.as_deref())
    .bind(call.started_at)
    .execute(exec)
    .await?;
    Ok(())
}

pub(super) async fn end_call<'c, E>(
    exec: E,
    call_id: &CallId,
    cause: &str,
    ended_at: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    sqlx::query(
        "UPDATE calls SET state = 'ended', end_cause = $1, ended_at = $2, duration_ms = $2 - started_at
         WHERE id = $3 AND ended_at IS NULL",
    )
    .bind(cause)
    .bind(ended_at)
    .bind(call_id.as_str())
    .execute(exec)
    .await?;
    Ok(())
}

pub(super) async fn insert_event<'c, E>(exec: E, ev: &CallEventRecord) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO call_events (tenant_id, call_id, seq, kind, at, data)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (call_id, seq) DO NOTHING",
    )
    .bind(ev.tenant_id.as_str())
    .bind(ev.call_id.as_str())
    .bind(ev.seq)
    .bind(&ev.kind)
    .bind(ev.at)
    .bind(&ev.data)
    .execute(exec)
    .await?;
    Ok(())
}

impl Store {
    pub async fn get_call(&self, tenant: &TenantId, id: &CallId) -> Result<CallRecord, StoreError> {
        let sql = format!("SELECT {CALL_COLUMNS} FROM calls WHERE tenant_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("call {id}")))?;
        call_from_row(&row)
    }

    /// Newest first.
    pub async fn list_calls(&self, tenant: &TenantId, limit: i64) -> Result<Vec<CallRecord>, StoreError> {
        let sql = format!(
            "SELECT {CALL_COLUMNS} FROM calls WHERE tenant_id = $1 ORDER BY started_at DESC, id DESC LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(call_from_row).collect()
    }

    /// A call's timeline in order.
    pub async fn call_events(
        &self,
        tenant: &TenantId,
        call: &CallId,
    ) -> Result<Vec<CallEventRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant_id, call_id, seq, kind, at, data FROM call_events
             WHERE tenant_id = $1 AND call_id = $2 ORDER BY seq",
        )
        .bind(tenant.as_str())
        .bind(call.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CallEventRecord {
                    tenant_id: TenantId(get(r, "tenant_id")?),
                    call_id: CallId(get(r, "call_id")?),
                    seq: get(r, "seq")?,
                    kind: get(r, "kind")?,
                    at: get(r, "at")?,
                    data: get(r, "data")?,
                })
            })
            .collect()
    }

    pub async fn count_call_events(&self, tenant: &TenantId) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM call_events WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_one(&self.pool)
            .await?;
        get(&row, "n")
    }
}
