//! `GET /ws/app`: external bot brains drive calls over a WebSocket (the protocol is in
//! README.md, section "App WebSocket", and `config/app-websocket.schema.json`).
//!
//! A client authenticates like `/ws/events` (Bearer header or `?api_key=`), then attaches
//! calls of its tenant: one by id, or every call that starts from now on (`all`). An attached
//! call is switched to external (`CallCommand::External(true)`): its flow stops answering,
//! the client gets the call's events under the app's names and sends commands, each acked or
//! answered by a typed failure. When the connection drops, its calls stay external for a
//! grace period so a reconnecting client can resume from its last sequence number; after
//! that they go back to their flows.

mod attach;
pub mod protocol;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;

pub use attach::{Attachments, Claim};
pub use session::{serve, AgentTransfer, Ctx, Incoming, Refusal};

use crate::app::AppState;
use crate::center::{TransferMode, TransferTargetKind};
use crate::error::AppError;
use crate::ids::{CallId, TenantId};
use protocol::ErrorCode;

/// How long a disconnected client's calls wait for it before going back to their flows.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
pub struct ConnectParams {
    /// For clients that cannot set headers on a WebSocket.
    pub api_key: Option<String>,
}

pub async fn app_ws(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<ConnectParams>,
    ws: WebSocketUpgrade,
) -> Result<Response, AppError> {
    let key = crate::http::auth::bearer(&headers).or(params.api_key.as_deref()).ok_or(AppError::Unauthorized)?;
    let tenant = crate::http::auth::Principal::from_key(&state, key).await?.tenant_wide()?;
    let media_dir = state.config.flows.dir.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let ctx = Ctx {
        tenant: tenant.id,
        bus: state.events.clone(),
        calls: state.calls.clone(),
        attachments: state.app_bots.clone(),
        media_dir,
        agents: Some(Arc::new(StateTransfers(state.clone()))),
    };
    let shutdown = state.shutdown.token.clone();
    Ok(ws.on_upgrade(move |socket| async move {
        let (sink, stream) = socket.split();
        let sink = sink.with(|text: String| async move { Ok::<_, axum::Error>(Message::Text(text.into())) });
        let stream = stream.filter_map(|m| async move {
            match m {
                Ok(Message::Text(t)) => Some(Incoming::Text(t.to_string())),
                Ok(Message::Binary(_)) => Some(Incoming::Binary),
                Ok(Message::Close(_)) | Err(_) => Some(Incoming::Closed),
                Ok(_) => None,
            }
        });
        tokio::select! {
            () = serve(ctx, Box::pin(sink), Box::pin(stream)) => {}
            () = shutdown.cancelled() => {}
        }
    }))
}

/// Agent transfers go through the same path as `POST /api/v1/transfers` (the transfer is
/// recorded, the agent is offered the call and dialled).
struct StateTransfers(AppState);

#[async_trait::async_trait]
impl AgentTransfer for StateTransfers {
    async fn to_agent(&self, tenant: &TenantId, call: &CallId, agent: &str) -> Result<(), Refusal> {
        let body = crate::http::transfers::TransferBody {
            call_id: Some(call.to_string()),
            target_kind: TransferTargetKind::Agent,
            target: agent.to_string(),
            mode: TransferMode::Blind,
            reason: Some("app".into()),
            priority: 0,
            skills: Vec::new(),
            language: None,
        };
        match crate::http::transfers::start(&self.0, tenant, call.clone(), body).await {
            Ok(_) => Ok(()),
            Err(AppError::Validation { message, .. }) => Err((ErrorCode::InvalidCommand, Some("agent".into()), message)),
            Err(AppError::NotFound(message)) => Err((ErrorCode::InvalidCommand, Some("agent".into()), message)),
            Err(AppError::Conflict(message)) => Err((ErrorCode::TargetUnavailable, Some("agent".into()), message)),
            Err(err) => {
                tracing::warn!(%err, "agent transfer failed");
                Err((ErrorCode::Internal, None, "the transfer could not be started".into()))
            }
        }
    }
}
