//! WHIP-style signalling (RFC 9725 mechanics, with a `sendrecv` audio transceiver because the
//! bot talks back):
//!
//! - `POST /webrtc/calls?entry=<entry point>` with `Content-Type: application/sdp` and
//!   `Authorization: Bearer <API key or call token>` -> `201 Created`, the SDP answer, a
//!   `Location` for the session and `X-Call-Id` for events and call logs. ICE candidates are
//!   all in the answer (no trickle).
//! - `DELETE <Location>` hangs up (the same API key's tenant, or the token that created it).
//! - `POST /webrtc/tokens` (API key) -> a short-lived, single-use call token for a browser.
//! - `GET /webrtc/entry-points`: the flows a softphone can call.
//! - Agents and supervisors joining a live call: see `participant.rs`.
//! - `OPTIONS` on all of them, with `Accept-Post: application/sdp`; CORS on every answer.
//!
//! Errors: 400 not SDP, 401 no or bad credentials, 404 no such session (or not yours), 409 a
//! participant that may not join, 413 offer too large, 415 not `application/sdp`, 422 no
//! audio / no Opus / unknown entry point, 503 at capacity or shutting down.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::peer::PeerError;
use super::sdp::{self, OfferError};
use super::tokens::TOKEN_PREFIX;
use super::{run_session, NewSession, SessionEntry};
use crate::app::AppState;
use crate::call::{CallHandle, CallInfo};
use crate::http::auth::Authenticated;
use crate::ids::{CallId, TenantId};

const SDP: &str = "application/sdp";
pub(super) const CALL_ID: HeaderName = HeaderName::from_static("x-call-id");
const ENTRY_HEADER: &str = "x-entry-point";

/// The signalling routes, with CORS on every answer (browsers may call from another origin;
/// credentials are bearer tokens, never cookies, so `*` is safe).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webrtc/calls", post(create_call).options(options))
        .route("/webrtc/calls/{session}", axum::routing::delete(delete_call).options(options))
        .route("/webrtc/tokens", post(issue_token).options(options))
        .route("/webrtc/entry-points", get(entry_points).options(options))
        .route("/webrtc/calls/{call_id}/participants", post(super::participant::join).options(options))
        .route(
            "/webrtc/participants/{session}",
            axum::routing::patch(super::participant::set_mode).delete(super::participant::leave).options(options),
        )
        .layer(axum::middleware::map_response(cors))
}

async fn cors(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, X-Call-Id, Accept-Post"),
    );
    response
}

async fn options() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (HeaderName::from_static("accept-post"), SDP),
            (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, PATCH, DELETE, OPTIONS"),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, "Authorization, Content-Type, X-Entry-Point"),
            (header::ACCESS_CONTROL_MAX_AGE, "600"),
        ],
    )
        .into_response()
}

/// Signalling errors, in the server's usual JSON error shape.
#[derive(Debug, thiserror::Error)]
pub enum WhipError {
    #[error("missing, invalid or expired credentials")]
    Unauthorized,
    #[error("no such session")]
    NotFound,
    #[error("Content-Type must be application/sdp")]
    UnsupportedMediaType,
    #[error("offer larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    BadOffer(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Conflict(String),
    /// A valid key that may not do this (an agent key).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl WhipError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadOffer(_) => StatusCode::BAD_REQUEST,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::TooLarge(_) => "payload_too_large",
            Self::BadOffer(_) => "bad_request",
            Self::Unprocessable(_) => "unprocessable_offer",
            Self::Conflict(_) => "conflict",
            Self::Forbidden(_) => "forbidden",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for WhipError {
    fn into_response(self) -> Response {
        if let Self::Internal(detail) = &self {
            tracing::error!(%detail, "browser call signalling failed");
        }
        let body = serde_json::json!({ "error": { "code": self.code(), "message": self.to_string() } });
        let mut response = (self.status(), Json(body)).into_response();
        if matches!(self, Self::UnsupportedMediaType) {
            response.headers_mut().insert(HeaderName::from_static("accept-post"), HeaderValue::from_static(SDP));
        }
        response
    }
}

impl From<PeerError> for WhipError {
    fn from(err: PeerError) -> Self {
        match err {
            PeerError::Offer(reason) => Self::BadOffer(format!("offer rejected: {reason}")),
            PeerError::NoCommonCodec => Self::Unprocessable("no common audio codec (Opus required)".into()),
            PeerError::NoPort { .. } => Self::Unavailable(err.to_string()),
            PeerError::Stack(reason) => Self::Internal(reason),
        }
    }
}

impl From<OfferError> for WhipError {
    fn from(err: OfferError) -> Self {
        match err {
            OfferError::Malformed(_) => Self::BadOffer(err.to_string()),
            OfferError::NoAudio | OfferError::NoSupportedCodec(_) => Self::Unprocessable(err.to_string()),
        }
    }
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Who is calling: a call token (used up here) or an API key.
async fn caller(state: &AppState, headers: &HeaderMap) -> Result<(TenantId, Option<String>), WhipError> {
    let credential = bearer(headers).ok_or(WhipError::Unauthorized)?;
    if credential.starts_with(TOKEN_PREFIX) {
        let tenant = state.webrtc.tokens().redeem(credential, Instant::now()).ok_or(WhipError::Unauthorized)?;
        return Ok((tenant, Some(credential.to_string())));
    }
    match state.store.authenticate(credential).await {
        Ok(Some(owner)) if owner.agent.is_none() => Ok((owner.tenant.id, None)),
        Ok(Some(_)) => Err(WhipError::Forbidden("an agent key cannot place calls; use a tenant-wide API key or a call token".into())),
        Ok(None) => Err(WhipError::Unauthorized),
        Err(err) => Err(WhipError::Unavailable(format!("cannot check credentials: {err}"))),
    }
}

#[derive(Debug, Deserialize)]
pub struct CallQuery {
    /// The entry point (a flow's `entry_points`); the default flow when absent.
    entry: Option<String>,
}

async fn create_call(
    State(state): State<AppState>,
    Query(query): Query<CallQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WhipError> {
    let (tenant, token) = caller(&state, &headers).await?;
    let offer = read_offer(&state, &headers, &body)?;
    if state.shutdown.token.is_cancelled() {
        return Err(WhipError::Unavailable("server is shutting down".into()));
    }
    let entry = query
        .entry
        .or_else(|| headers.get(ENTRY_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string))
        .filter(|e| !e.is_empty());
    let flow = match &entry {
        Some(e) => state
            .flows
            .iter()
            .find(|f| f.entry_points().iter().any(|x| x == e))
            .ok_or_else(|| WhipError::Unprocessable(format!("unknown entry point {e:?}")))?,
        None => state.flows.select(None, None).ok_or_else(|| WhipError::Unavailable("no default flow".into()))?,
    };
    let flow_name = flow.name().to_string();
    let dialog = state.dialog_for(Some(&flow_name)).map_err(WhipError::Internal)?;

    let call_id = CallId::generate();
    let (cmd_tx, cmd_rx) = mpsc::channel(32);
    let registration = state
        .calls
        .register(CallHandle::new(call_id.clone(), tenant.clone(), cmd_tx))
        .map_err(|full| WhipError::Unavailable(full.to_string()))?;
    let peer = state.webrtc.inner.stack.answer(offer).await?;
    let answer = peer.answer_sdp.clone();

    let session_id = new_session_id();
    let hangup = CancellationToken::new();
    let mut params = std::collections::BTreeMap::new();
    params.insert("flow".to_string(), flow_name);
    if let Some(e) = &entry {
        params.insert("entry".to_string(), e.clone());
    }
    if let Some(agent) = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()) {
        params.insert("user_agent".to_string(), agent.chars().take(200).collect());
    }
    let info = CallInfo {
        id: call_id.clone(),
        tenant: tenant.clone(),
        transport: "webrtc",
        external_id: Some(session_id.clone()),
        from: Some("browser".to_string()),
        to: entry.clone(),
        params,
    };
    state.webrtc.sessions().insert(
        session_id.clone(),
        SessionEntry { tenant, call_id: call_id.clone(), token, hangup: hangup.clone() },
    );
    let new = NewSession { id: session_id.clone(), info, dialog, peer, commands: cmd_rx, registration, hangup };
    let task_state = state.clone();
    state.shutdown.calls.spawn(run_session(task_state, new));
    info!(call_id = %call_id, session = %session_id, entry = ?entry, "browser call answered");

    let location = format!("/webrtc/calls/{session_id}");
    let mut response = (StatusCode::CREATED, answer).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
    h.insert(header::LOCATION, HeaderValue::from_str(&location).map_err(|e| WhipError::Internal(e.to_string()))?);
    h.insert(CALL_ID, HeaderValue::from_str(call_id.as_str()).map_err(|e| WhipError::Internal(e.to_string()))?);
    Ok(response)
}

/// The SDP offer of a request, checked: its content type, size, encoding and shape.
pub(super) fn read_offer(state: &AppState, headers: &HeaderMap, body: &Bytes) -> Result<String, WhipError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case(SDP)) {
        return Err(WhipError::UnsupportedMediaType);
    }
    let max = state.webrtc.config().max_offer_bytes;
    if body.len() > max {
        return Err(WhipError::TooLarge(max));
    }
    let offer = String::from_utf8(body.to_vec()).map_err(|_| WhipError::BadOffer("the offer is not UTF-8 text".into()))?;
    sdp::check_offer(&offer)?;
    Ok(offer)
}

fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    format!("whip_{}", hex::encode(bytes))
}

async fn delete_call(
    State(state): State<AppState>,
    Path(session): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WhipError> {
    let credential = bearer(&headers).ok_or(WhipError::Unauthorized)?.to_string();
    let (tenant, call_id, token, hangup) = {
        let sessions = state.webrtc.sessions();
        let entry = sessions.get(&session).ok_or(WhipError::NotFound)?;
        (entry.tenant.clone(), entry.call_id.clone(), entry.token.clone(), entry.hangup.clone())
    };
    let allowed = if token.as_deref() == Some(credential.as_str()) {
        true
    } else if credential.starts_with(TOKEN_PREFIX) {
        false
    } else {
        match state.store.authenticate(&credential).await {
            Ok(Some(o)) if o.agent.is_some() => return Err(WhipError::Forbidden("an agent key cannot hang up a browser caller's session".into())),
            Ok(Some(o)) => o.tenant.id == tenant,
            Ok(None) => return Err(WhipError::Unauthorized),
            Err(err) => return Err(WhipError::Unavailable(format!("cannot check credentials: {err}"))),
        }
    };
    if !allowed {
        // Someone else's session looks exactly like a missing one.
        warn!(session = %session, "hang-up of another tenant's session refused");
        return Err(WhipError::NotFound);
    }
    info!(call_id = %call_id, session = %session, "browser hung up");
    hangup.cancel();
    Ok(StatusCode::OK.into_response())
}

#[derive(Debug, Serialize)]
struct TokenResponse {
    token: String,
    expires_in_ms: u64,
}

async fn issue_token(State(state): State<AppState>, Authenticated(tenant): Authenticated) -> Result<Response, WhipError> {
    let ttl: Duration = state.webrtc.config().token_ttl;
    let token = state
        .webrtc
        .tokens()
        .issue(tenant.id, Instant::now(), ttl)
        .map_err(|e| WhipError::Unavailable(e.to_string()))?;
    let body = TokenResponse { token, expires_in_ms: ttl.as_millis() as u64 };
    Ok((StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

#[derive(Debug, Serialize)]
struct EntryPoint {
    entry: String,
    flow: String,
}

/// What a softphone can call. Flow and entry-point names only; nothing tenant-specific.
async fn entry_points(State(state): State<AppState>) -> Json<Vec<EntryPoint>> {
    Json(
        state
            .flows
            .iter()
            .flat_map(|f| f.entry_points().iter().map(|e| EntryPoint { entry: e.clone(), flow: f.name().to_string() }))
            .collect(),
    )
}
