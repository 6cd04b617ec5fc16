//! `GET /api/v1/calls` and `GET /api/v1/calls/{id}`: call logs with their timelines.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::error::AppError;
use crate::http::auth::Authenticated;
use crate::ids::CallId;
use crate::store::{CallEventRecord, CallRecord};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// At most this many calls, newest first (1..=500, default 50).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct CallList {
    pub calls: Vec<CallRecord>,
}

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
    Ok(Json(CallList { calls: state.store.list_calls(&tenant.id, limit).await? }))
}

#[derive(Debug, Serialize)]
pub struct CallDetail {
    #[serde(flatten)]
    pub call: CallRecord,
    pub events: Vec<EventView>,
}

#[derive(Debug, Serialize)]
pub struct EventView {
    pub seq: i64,
    pub kind: String,
    pub at: i64,
    pub data: serde_json::Value,
}

impl From<CallEventRecord> for EventView {
    fn from(ev: CallEventRecord) -> Self {
        let data = serde_json::from_str(&ev.data).unwrap_or(serde_json::Value::String(ev.data));
        Self { seq: ev.seq, kind: ev.kind, at: ev.at, data }
    }
}

pub async fn get_one(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<CallDetail>, AppError> {
    let id = CallId(id);
    let call = state.store.get_call(&tenant.id, &id).await?;
    let events = state.store.call_events(&tenant.id, &id).await?;
    Ok(Json(CallDetail { call, events: events.into_iter().map(EventView::from).collect() }))
}
