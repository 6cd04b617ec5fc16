//! `POST /twilio/voice` (the number's voice webhook) and `POST /twilio/status` (its status
//! callback).
//!
//! The voice webhook answers `<Connect><Stream>`: a bidirectional stream, the only kind that
//! lets us speak and receive marks and DTMF (`<Start><Stream>` is listen-only, and the call
//! would continue without us). The stream URL carries a one-time token in its path, because
//! Twilio drops query strings from stream URLs; caller details travel as `<Parameter>`s.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use rand::RngCore;

use super::signature::{self, SIGNATURE_HEADER};
use super::twiml::{self, ConnectStream};
use crate::app::AppState;
use crate::error::AppError;

/// How long a stream token from the webhook stays valid.
const TOKEN_TTL: Duration = Duration::from_secs(120);

/// What the webhook learned about a call, waiting for its media stream to connect.
#[derive(Debug, Clone)]
pub struct PendingCall {
    pub call_sid: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub flow: Option<String>,
    created: Instant,
}

/// One-time stream tokens handed out by the webhook.
#[derive(Debug, Default)]
pub struct PendingCalls {
    inner: Mutex<HashMap<String, PendingCall>>,
}

impl PendingCalls {
    fn insert(&self, call: PendingCall) -> String {
        let mut raw = [0u8; 16];
        rand::rng().fill_bytes(&mut raw);
        let token = hex::encode(raw);
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, c| c.created.elapsed() < TOKEN_TTL);
        map.insert(token.clone(), call);
        token
    }

    /// Takes the call for `token` (each token works once).
    pub fn take(&self, token: &str) -> Option<PendingCall> {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(token).filter(|c| c.created.elapsed() < TOKEN_TTL)
    }
}

/// Checks `X-Twilio-Signature` when an auth token is configured.
fn verify(state: &AppState, headers: &HeaderMap, uri: &OriginalUri, params: &[(String, String)]) -> Result<(), AppError> {
    let Some(token) = state.config.twilio.auth_token.as_deref() else { return Ok(()) };
    let path = uri.0.path_and_query().map_or("/", |p| p.as_str());
    let url = match &state.config.server.public_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => signature::public_url(headers, path, "https", state.config.server.trust_forwarded_headers)
            .ok_or_else(|| AppError::BadRequest("request has no Host header".into()))?,
    };
    let sig = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    signature::validate(token, &url, params, sig).map_err(|err| {
        tracing::warn!(%url, %err, "rejected Twilio webhook");
        AppError::Unauthorized
    })
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

fn twiml_response(xml: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], xml).into_response()
}

/// The voice webhook: record the call's details under a fresh token and connect its audio to
/// our media stream endpoint.
pub async fn voice(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Form(params): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    verify(&state, &headers, &uri, &params)?;
    let call_sid = param(&params, "CallSid").map(str::to_string);
    let from = param(&params, "From").map(str::to_string);
    let to = param(&params, "To").map(str::to_string);
    // Outbound calls we place name their flow in the webhook URL (`?flow=`); inbound calls are
    // matched by the number they called.
    let requested = uri.0.query().and_then(|q| {
        q.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == "flow").map(|(_, v)| v.to_string())
    });
    let flow = match requested.as_deref().and_then(|name| state.flows.get(name)) {
        Some(f) => Some(f.name().to_string()),
        None => state.flows.select(to.as_deref(), None).map(|f| f.name().to_string()),
    };
    tracing::info!(call_sid = ?call_sid, from = ?from, to = ?to, flow = ?flow, "incoming Twilio call");
    let token = state.twilio_pending.insert(PendingCall {
        call_sid: call_sid.clone(),
        from: from.clone(),
        to: to.clone(),
        flow: flow.clone(),
        created: Instant::now(),
    });
    let host_url = match &state.config.server.public_url {
        Some(base) => base.trim_end_matches('/').to_string(),
        None => signature::public_url(&headers, "", "https", state.config.server.trust_forwarded_headers)
            .map(|u| u.trim_end_matches('/').to_string())
            .ok_or_else(|| AppError::BadRequest("request has no Host header".into()))?,
    };
    let ws_base = host_url.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1);
    let mut stream = ConnectStream::new(format!("{ws_base}/twilio/stream/{token}"))
        .map_err(|e| AppError::Internal(e.into()))?;
    for (name, value) in [("From", &from), ("To", &to), ("CallSid", &call_sid), ("flow", &flow)] {
        if let Some(v) = value {
            stream = stream.parameter(name, v.clone());
        }
    }
    Ok(twiml_response(twiml::Response::new().connect(stream).to_xml()))
}

/// The status callback: Twilio reports call progress; `completed` and the failure statuses
/// end our record of the call if the stream has not already.
pub async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Form(params): Form<Vec<(String, String)>>,
) -> Result<StatusCode, AppError> {
    verify(&state, &headers, &uri, &params)?;
    let call_sid = param(&params, "CallSid").unwrap_or("-");
    let status = param(&params, "CallStatus").unwrap_or("-");
    let duration = param(&params, "CallDuration");
    tracing::info!(call_sid, status, duration, "Twilio call status");
    // Final statuses close the record if the stream did not (e.g. the call failed before the
    // stream connected, or the socket vanished without `stop`).
    if matches!(status, "completed" | "busy" | "failed" | "no-answer" | "canceled") {
        let cause = if status == "completed" { "completed" } else { status };
        state.store.end_call_by_external_id(&state.twilio_tenant, call_sid, cause, crate::store::now_ms()).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
