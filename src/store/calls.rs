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

/// Which calls `query_calls` returns. Times are unix milliseconds; `status` matches the
/// call's state (`active`, `ended`) or its end cause (`caller_hangup`, `transferred`, ...).
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub department: Option<String>,
    pub agent: Option<String>,
    pub status: Option<String>,
    pub caller: Option<String>,
    /// Keyset cursor: `(started_at, id)` of the last call already seen.
    pub after: Option<(i64, String)>,
    pub limit: i64,
}

const CALL_COLUMNS: &str = "c.id, c.tenant_id, c.transport, c.external_id, c.direction, c.from_number, \
     c.to_number, c.flow, c.state, c.end_cause, c.started_at, c.ended_at, c.duration_ms";

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

/// Events added after a call ended are numbered from here (a call numbers its own from 1).
pub const NOTE_SEQ_BASE: i64 = 1_000_000_000;

impl Store {
    pub async fn get_call(&self, tenant: &TenantId, id: &CallId) -> Result<CallRecord, StoreError> {
        let sql = format!("SELECT {CALL_COLUMNS} FROM calls c WHERE c.tenant_id = $1 AND c.id = $2");
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
        self.query_calls(tenant, &CallFilter { limit, ..CallFilter::default() }).await
    }

    /// Newest first, filtered, one page: pass the last call of a page as `after` for the next.
    pub async fn query_calls(&self, tenant: &TenantId, filter: &CallFilter) -> Result<Vec<CallRecord>, StoreError> {
        enum Arg<'a> {
            Text(&'a str),
            Int(i64),
        }
        let mut sql = format!("SELECT {CALL_COLUMNS} FROM calls c WHERE c.tenant_id = $1");
        let mut args = vec![Arg::Text(tenant.as_str())];
        // The placeholder the next pushed argument will take.
        let next = |args: &mut Vec<Arg<'_>>| format!("${}", args.len() + 1);
        if let Some(from) = filter.from {
            sql += &format!(" AND c.started_at >= {}", next(&mut args));
            args.push(Arg::Int(from));
        }
        if let Some(to) = filter.to {
            sql += &format!(" AND c.started_at < {}", next(&mut args));
            args.push(Arg::Int(to));
        }
        if let Some(dep) = &filter.department {
            sql += &format!(
                " AND EXISTS (SELECT 1 FROM queue_entries q WHERE q.call_id = c.id AND q.department_id = {})",
                next(&mut args)
            );
            args.push(Arg::Text(dep));
        }
        if let Some(agent) = &filter.agent {
            sql += &format!(
                " AND EXISTS (SELECT 1 FROM queue_entries q WHERE q.call_id = c.id AND q.outcome = 'answered' \
                   AND q.offered_agent_id = {})",
                next(&mut args)
            );
            args.push(Arg::Text(agent));
        }
        if let Some(status) = &filter.status {
            let p = next(&mut args);
            sql += &format!(" AND (c.state = {p} OR c.end_cause = {p})");
            args.push(Arg::Text(status));
        }
        if let Some(caller) = &filter.caller {
            sql += &format!(" AND c.from_number = {}", next(&mut args));
            args.push(Arg::Text(caller));
        }
        if let Some((started_at, id)) = &filter.after {
            let a = next(&mut args);
            args.push(Arg::Int(*started_at));
            let b = next(&mut args);
            args.push(Arg::Text(id));
            sql += &format!(" AND (c.started_at < {a} OR (c.started_at = {a} AND c.id < {b}))");
        }
        sql += &format!(" ORDER BY c.started_at DESC, c.id DESC LIMIT {}", next(&mut args));
        args.push(Arg::Int(filter.limit));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for arg in args {
            query = match arg {
                Arg::Text(s) => query.bind(s.to_string()),
                Arg::Int(i) => query.bind(i),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(call_from_row).collect()
    }

    /// A call's timeline in order.
    /// Adds an event to an ended call's timeline. Its `seq` is placed past
    /// [`NOTE_SEQ_BASE`], so it can never collide with an event the call itself numbered,
    /// even one still on its way through the writer.
    pub async fn append_call_note(&self, tenant: &TenantId, call: &CallId, kind: &str, data: &str, at: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO call_events (tenant_id, call_id, seq, kind, at, data)
             SELECT $1, $2, CASE WHEN MAX(seq) IS NULL OR MAX(seq) < $3 THEN $3 ELSE MAX(seq) END + 1, $4, $5, $6
             FROM call_events WHERE call_id = $2
             RETURNING seq",
        )
        .bind(tenant.as_str())
        .bind(call.as_str())
        .bind(NOTE_SEQ_BASE)
        .bind(kind)
        .bind(at)
        .bind(data)
        .fetch_one(&self.pool)
        .await?;
        get(&row, "seq")
    }

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
    /// Twilio's status callback reported the call over (`completed`, `busy`, `failed`, …).
    /// Ends the record if the media stream has not already; returns whether it did.
    pub async fn end_call_by_external_id(
        &self,
        tenant: &TenantId,
        external_id: &str,
        cause: &str,
        ended_at: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE calls SET state = 'ended', end_cause = $1, ended_at = $2, duration_ms = $2 - started_at
             WHERE tenant_id = $3 AND external_id = $4 AND ended_at IS NULL",
        )
        .bind(cause)
        .bind(ended_at)
        .bind(tenant.as_str())
        .bind(external_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
