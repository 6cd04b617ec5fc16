//! `GET /api/v1/calls` (filters, cursor pagination) and `GET /api/v1/calls/{id}` (the full
//! timeline, transcript, queue stays, transfers, durations and costs).

use axum::extract::{Path, Query, State};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::center::analytics::{call_figures, CallFigures};
use crate::center::{QueueEntry, Transfer};
use crate::error::AppError;
use crate::http::auth::{Authenticated, Principal};
use crate::http::json::invalid;
use crate::http::openapi::ApiErrorBody;
use crate::ids::CallId;
use crate::store::{now_ms, CallEventRecord, CallFilter, CallRecord};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// At most this many calls, newest first (1..=500, default 50).
    pub limit: Option<i64>,
    /// Calls started at or after this time (unix ms).
    pub from: Option<i64>,
    /// Calls started before this time (unix ms).
    pub to: Option<i64>,
    /// Calls that were queued in this department (id).
    pub department: Option<String>,
    /// Calls an agent answered (agent id).
    pub agent: Option<String>,
    /// `active`, `ended`, or an end cause such as `caller_hangup`.
    pub status: Option<String>,
    /// The caller's number, exactly.
    pub caller: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallList {
    #[schema(value_type = Vec<Object>)]
    pub calls: Vec<CallRecord>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn encode_cursor(call: &CallRecord) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", call.started_at, call.id))
}

fn decode_cursor(cursor: &str) -> Result<(i64, String), AppError> {
    let bad = || invalid("cursor", "not a cursor from this API");
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (at, id) = text.split_once(':').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, id.to_string()))
}

#[utoipa::path(get, path = "/api/v1/calls", tag = "calls", params(ListParams),
    responses((status = 200, body = CallList), (status = 422, body = ApiErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Query(params): Query<ListParams>,
) -> Result<Json<CallList>, AppError> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(AppError::Validation {
            field: "limit".into(),
            message: format!("limit must be between 1 and 500, got {limit}"),
        });
    }
    if let (Some(from), Some(to)) = (params.from, params.to) {
        if from >= to {
            return Err(invalid("to", "must be after from"));
        }
    }
    let filter = CallFilter {
        from: params.from,
        to: params.to,
        department: params.department,
        agent: params.agent,
        status: params.status,
        caller: params.caller,
        after: params.cursor.as_deref().map(decode_cursor).transpose()?,
        // One more than asked tells whether there is a next page.
        limit: limit + 1,
    };
    let mut calls = state.store.query_calls(&tenant.id, &filter).await?;
    let next_cursor = if calls.len() as i64 > limit {
        calls.truncate(limit as usize);
        calls.last().map(encode_cursor)
    } else {
        None
    };
    Ok(Json(CallList { calls, next_cursor }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallDetail {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub call: CallRecord,
    pub events: Vec<EventView>,
    /// What was said, in order: `caller` turns (final transcripts) and `bot` utterances.
    pub transcript: Vec<TranscriptLine>,
    pub queue: Vec<QueueEntry>,
    pub transfers: Vec<Transfer>,
    pub figures: CallFigures,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub seq: i64,
    pub kind: String,
    pub at: i64,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TranscriptLine {
    pub at: i64,
    /// `caller`, `bot`, `agent`, or `supervisor` (a whisper to the bot).
    pub speaker: &'static str,
    pub text: String,
}

impl From<CallEventRecord> for EventView {
    fn from(ev: CallEventRecord) -> Self {
        let data = serde_json::from_str(&ev.data).unwrap_or(serde_json::Value::String(ev.data));
        Self { seq: ev.seq, kind: ev.kind, at: ev.at, data }
    }
}

fn transcript(events: &[EventView]) -> Vec<TranscriptLine> {
    events
        .iter()
        .filter_map(|e| {
            let (speaker, text) = match e.kind.as_str() {
                "transcript_final" => {
                    let speaker = match e.data["speaker"].as_str() {
                        Some("agent") => "agent",
                        Some("supervisor") => "supervisor",
                        _ => "caller",
                    };
                    (speaker, e.data["text"].as_str()?)
                }
                // What the caller actually heard, when the bot was cut off.
                "bot_utterance" => ("bot", e.data["heard"].as_str().filter(|h| !h.is_empty()).or(e.data["text"].as_str())?),
                _ => return None,
            };
            Some(TranscriptLine { at: e.at, speaker, text: text.to_string() })
        })
        .collect()
}

#[utoipa::path(get, path = "/api/v1/calls/{id}", tag = "calls", params(("id" = String, Path)),
    responses((status = 200, body = CallDetail), (status = 404, body = ApiErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<CallDetail>, AppError> {
    let id = CallId(id);
    principal.may_read_call(&state, &id).await?;
    let tenant = principal.tenant;
    let call = state.store.get_call(&tenant.id, &id).await?;
    let records = state.store.call_events(&tenant.id, &id).await?;
    let queue = state.store.entries_for_call(&tenant.id, &id).await?;
    let transfers = state.store.transfers_for_call(&tenant.id, &id).await?;
    let figures = call_figures(&call, &records, &queue, &transfers, &state.config.center, now_ms());
    let events: Vec<EventView> = records.into_iter().map(EventView::from).collect();
    Ok(Json(CallDetail { transcript: transcript(&events), call, events, queue, transfers, figures }))
}
