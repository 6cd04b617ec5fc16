//! Agents and supervisors joining a live call from the browser (WHIP-style, like browser calls):
//!
//! - `POST /webrtc/calls/{call_id}/participants?role=agent&agent_id=<id>` or
//!   `?role=supervisor&mode=listen|whisper|barge&name=<who>`, SDP offer in, `201` + answer,
//!   `Location: /webrtc/participants/<session>`, `X-Participant-Id`.
//! - `PATCH /webrtc/participants/<session>` `{"mode": "whisper"}`: a supervisor switches live.
//! - `DELETE /webrtc/participants/<session>`: leave. An agent leaving hangs up the call.
//!
//! Only API keys are accepted (call tokens are for callers); an agent key may join only as its
//! own agent and touch only its own session. The agent must have accepted the call first (it
//! is theirs in the database). The session mixes what its participant hears from
//! the call's per-tick broadcast and sends the participant's microphone to the call actor; both
//! directions are non-blocking for the call, so a slow participant can only lose its own audio.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use media::mixer::Mixer;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

use super::media::{read_loop, write_loop};
use super::peer::{PeerEvent, PeerSession};
use super::tokens::TOKEN_PREFIX;
use super::whip::{bearer, read_offer, WhipError};
use super::{SessionId, WebRtc};
use crate::app::AppState;
use crate::call::room::{JoinError, Joined, MonitorMode, ParticipantId, Role, SideAudio, TickRole, FRAME_SAMPLES};
use crate::call::{CallCommand, CallGone, CallHandle, LegIn, LegOut};
use crate::center::{AgentId, AgentStatus};
use crate::ids::{CallId, TenantId};
use crate::store::StoreError;

const SDP: &str = "application/sdp";
const PARTICIPANT_ID: HeaderName = HeaderName::from_static("x-participant-id");
/// How long the call actor has to answer a join (it answers within one tick unless ending).
const JOIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Microphone audio on its way from the browser's reader to the session.
const INBOUND_QUEUE: usize = 64;
/// Mixed frames to the browser: 320 ms. The writer sends one every 20 ms.
const OUTBOUND_QUEUE: usize = 16;

pub(super) struct ParticipantEntry {
    tenant: TenantId,
    call_id: CallId,
    participant: ParticipantId,
    /// Set for an agent's session.
    agent: Option<AgentId>,
    hangup: CancellationToken,
}

#[derive(Debug, Deserialize)]
pub struct JoinQuery {
    role: String,
    agent_id: Option<String>,
    mode: Option<String>,
    name: Option<String>,
}

/// The key's tenant, and its agent for an agent key.
async fn api_key_owner(state: &AppState, headers: &HeaderMap) -> Result<(TenantId, Option<AgentId>), WhipError> {
    let credential = bearer(headers).ok_or(WhipError::Unauthorized)?;
    if credential.starts_with(TOKEN_PREFIX) {
        // A caller's token must not open anyone else's call.
        return Err(WhipError::Unauthorized);
    }
    match state.store.authenticate(credential).await {
        Ok(Some(owner)) => Ok((owner.tenant.id, owner.agent)),
        Ok(None) => Err(WhipError::Unauthorized),
        Err(err) => Err(WhipError::Unavailable(format!("cannot check credentials: {err}"))),
    }
}

fn parse_role(query: &JoinQuery) -> Result<Role, WhipError> {
    match query.role.as_str() {
        "agent" => {
            let agent_id = query.agent_id.clone().filter(|a| !a.is_empty());
            let agent_id = agent_id.ok_or_else(|| WhipError::Unprocessable("role=agent needs agent_id".into()))?;
            Ok(Role::Agent { agent_id: AgentId(agent_id) })
        }
        "supervisor" => {
            let mode = match query.mode.as_deref() {
                None | Some("") => MonitorMode::Listen,
                Some(m) => MonitorMode::parse(m)
                    .ok_or_else(|| WhipError::Unprocessable(format!("mode must be listen, whisper or barge, got {m:?}")))?,
            };
            let name = query.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| "supervisor".into());
            Ok(Role::Supervisor { name: name.chars().take(80).collect(), mode })
        }
        other => Err(WhipError::Unprocessable(format!("role must be agent or supervisor, got {other:?}"))),
    }
}

/// The agent may join only the call the distributor gave them.
async fn check_agent(state: &AppState, tenant: &TenantId, agent: &AgentId, call: &CallId) -> Result<(), WhipError> {
    let record = match state.store.get_agent(tenant, agent).await {
        Ok(a) => a,
        Err(StoreError::NotFound(_)) => return Err(WhipError::NotFound),
        Err(err) => return Err(WhipError::Unavailable(format!("cannot read the agent: {err}"))),
    };
    if record.status != AgentStatus::Busy || record.current_call_id.as_ref() != Some(call) {
        return Err(WhipError::Conflict(format!(
            "call {call} is not assigned to agent {agent} (status {}); accept the offer first",
            record.status.as_str()
        )));
    }
    Ok(())
}

async fn ask_join(handle: &CallHandle, role: Role) -> Result<Joined, WhipError> {
    let (tx, rx) = oneshot::channel();
    handle.send(CallCommand::Join { role, reply: tx }).map_err(|gone| match gone {
        CallGone::Ended => WhipError::NotFound,
        CallGone::Busy => WhipError::Unavailable("the call is busy; try again".into()),
    })?;
    match tokio::time::timeout(JOIN_TIMEOUT, rx).await {
        Ok(Ok(Ok(joined))) => Ok(joined),
        Ok(Ok(Err(JoinError::AgentPresent))) => Err(WhipError::Conflict(JoinError::AgentPresent.to_string())),
        Ok(Ok(Err(err @ JoinError::Full(_)))) => Err(WhipError::Conflict(err.to_string())),
        Ok(Ok(Err(JoinError::Ending))) | Ok(Err(_)) => Err(WhipError::NotFound),
        Err(_) => Err(WhipError::Unavailable("the call did not answer the join in time".into())),
    }
}

pub(super) async fn join(
    State(state): State<AppState>,
    Path(call): Path<String>,
    Query(query): Query<JoinQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WhipError> {
    let (tenant, key_agent) = api_key_owner(&state, &headers).await?;
    let offer = read_offer(&state, &headers, &body)?;
    let role = parse_role(&query)?;
    if let Some(own) = &key_agent {
        match &role {
            Role::Agent { agent_id } if agent_id == own => {}
            Role::Agent { agent_id } => return Err(WhipError::Forbidden(format!("this key acts as agent {own}, not {agent_id}"))),
            Role::Supervisor { .. } => return Err(WhipError::Forbidden(format!("this key acts as agent {own}; supervisors join with a tenant-wide API key"))),
        }
    }
    let call_id = CallId(call);
    let handle = state.calls.get(&tenant, &call_id).ok_or(WhipError::NotFound)?;
    if let Role::Agent { agent_id } = &role {
        check_agent(&state, &tenant, agent_id, &call_id).await?;
    }
    let agent = match &role {
        Role::Agent { agent_id } => Some(agent_id.clone()),
        Role::Supervisor { .. } => None,
    };
    let is_agent = agent.is_some();
    let joined = ask_join(&handle, role).await?;
    let participant = joined.id.clone();
    let peer = match state.webrtc.inner.stack.answer(offer).await {
        Ok(p) => p,
        Err(err) => {
            let _ = handle.send(CallCommand::Leave { id: participant, reason: "offer_failed".into(), hang_up: false });
            return Err(err.into());
        }
    };
    let answer = peer.answer_sdp.clone();
    let session = new_session_id();
    let hangup = CancellationToken::new();
    state.webrtc.participants().insert(
        session.clone(),
        ParticipantEntry {
            tenant,
            call_id: call_id.clone(),
            participant: participant.clone(),
            agent,
            hangup: hangup.clone(),
        },
    );
    info!(call_id = %call_id, %participant, session = %session, agent = is_agent, "participant answered");
    let task = run_participant(state.clone(), session.clone(), handle, joined, peer, hangup, is_agent);
    state.shutdown.calls.spawn(task);

    let mut response = (StatusCode::CREATED, answer).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
    let location = format!("/webrtc/participants/{session}");
    h.insert(header::LOCATION, HeaderValue::from_str(&location).map_err(|e| WhipError::Internal(e.to_string()))?);
    h.insert(PARTICIPANT_ID, HeaderValue::from_str(&participant.0).map_err(|e| WhipError::Internal(e.to_string()))?);
    h.insert(crate::transport::webrtc::whip::CALL_ID, HeaderValue::from_str(call_id.as_str()).map_err(|e| WhipError::Internal(e.to_string()))?);
    Ok(response)
}

fn new_session_id() -> SessionId {
    let bytes: [u8; 16] = rand::random();
    format!("part_{}", hex::encode(bytes))
}

/// Finds a participant session of the caller's tenant (another tenant's looks missing).
async fn own_session(state: &AppState, headers: &HeaderMap, session: &str) -> Result<OwnSession, WhipError> {
    let (tenant, key_agent) = api_key_owner(state, headers).await?;
    let sessions = state.webrtc.participants();
    let entry = sessions.get(session).filter(|e| e.tenant == tenant).ok_or(WhipError::NotFound)?;
    if let Some(own) = &key_agent
        && entry.agent.as_ref() != Some(own)
    {
        return Err(WhipError::Forbidden(format!("this key acts as agent {own}; the session is not theirs")));
    }
    Ok(OwnSession {
        tenant: tenant.clone(),
        call_id: entry.call_id.clone(),
        participant: entry.participant.clone(),
        agent: entry.agent.clone(),
        hangup: entry.hangup.clone(),
    })
}

struct OwnSession {
    tenant: TenantId,
    call_id: CallId,
    participant: ParticipantId,
    /// Set for an agent's session.
    agent: Option<AgentId>,
    hangup: CancellationToken,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModeBody {
    mode: MonitorMode,
}

pub(super) async fn set_mode(
    State(state): State<AppState>,
    Path(session): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WhipError> {
    let OwnSession { tenant, call_id, participant, agent, .. } = own_session(&state, &headers, &session).await?;
    let body: ModeBody = serde_json::from_slice(&body)
        .map_err(|e| WhipError::Unprocessable(format!("expected {{\"mode\": \"listen\"|\"whisper\"|\"barge\"}}: {e}")))?;
    if agent.is_some() {
        return Err(WhipError::Conflict("an agent has no monitor mode".into()));
    }
    let handle = state.calls.get(&tenant, &call_id).ok_or(WhipError::NotFound)?;
    let (tx, rx) = oneshot::channel();
    handle
        .send(CallCommand::SetMode { id: participant, mode: body.mode, reply: tx })
        .map_err(|_| WhipError::Unavailable("the call is busy or ending; try again".into()))?;
    match tokio::time::timeout(JOIN_TIMEOUT, rx).await {
        Ok(Ok(true)) => Ok(Json(body).into_response()),
        Ok(Ok(false)) | Ok(Err(_)) => Err(WhipError::NotFound),
        Err(_) => Err(WhipError::Unavailable("the call did not answer in time".into())),
    }
}

pub(super) async fn leave(State(state): State<AppState>, Path(session): Path<String>, headers: HeaderMap) -> Result<Response, WhipError> {
    let OwnSession { call_id, participant, hangup, .. } = own_session(&state, &headers, &session).await?;
    info!(call_id = %call_id, %participant, session = %session, "participant leaving");
    hangup.cancel();
    Ok(StatusCode::OK.into_response())
}

/// Removes the session from the map however its task ends.
struct Guard {
    webrtc: WebRtc,
    session: SessionId,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.webrtc.participants().remove(&self.session);
    }
}

async fn run_participant(
    state: AppState,
    session: SessionId,
    call: CallHandle,
    joined: Joined,
    peer: PeerSession,
    hangup: CancellationToken,
    is_agent: bool,
) {
    let _guard = Guard { webrtc: state.webrtc.clone(), session: session.clone() };
    let span = info_span!("participant", call_id = %call.id, participant = %joined.id, session = %session);
    async move {
        let Joined { id, audio_in, mut ticks, removed } = joined;
        let PeerSession { mut events, payload_types, rtp_out, control, .. } = peer;
        let timeout = state.webrtc.config().connect_timeout;
        let connected = tokio::select! {
            // Hanging up is deliberate, connected or not.
            () = hangup.cancelled() => Err("left"),
            () = removed.cancelled() => Err("removed"),
            () = state.shutdown.token.cancelled() => Err("shutdown"),
            () = tokio::time::sleep(timeout) => Err("connect_timeout"),
            ok = wait_connected(&mut events) => ok,
        };
        if let Err(reason) = connected {
            warn!(reason, "participant never connected");
            let _ = call.send(CallCommand::Leave { id, reason: reason.into(), hang_up: reason == "left" });
            control.close().await;
            return;
        }
        info!("participant connected");
        let (in_tx, mut in_rx) = mpsc::channel(INBOUND_QUEUE);
        let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
        let reader_stop = CancellationToken::new();
        let reader = tokio::spawn(read_loop(events, payload_types, in_tx.clone(), reader_stop.clone()).in_current_span());
        let writer = tokio::spawn(write_loop(out_rx, rtp_out, in_tx).in_current_span());
        let role = if is_agent { TickRole::Agent } else { TickRole::Supervisor(MonitorMode::Listen) };
        let mut mixer = Mixer::new(FRAME_SAMPLES);
        let mut lagged = 0u64;
        let reason: &str = loop {
            tokio::select! {
                biased;
                () = hangup.cancelled() => break "left",
                () = removed.cancelled() => break "removed",
                () = state.shutdown.token.cancelled() => break "shutdown",
                msg = in_rx.recv() => match msg {
                    Some(LegIn::Pcm16k(samples)) => {
                        // A full queue means the call is behind: this participant loses a frame,
                        // the call loses nothing.
                        let _ = audio_in.try_send(SideAudio { from: id.clone(), samples });
                    }
                    // The browser closed its side (a closed tab, a reload): not a hang-up.
                    Some(LegIn::Stop) => break "peer_closed",
                    Some(LegIn::Disconnected | LegIn::Failed(_)) | None => break "connection_lost",
                    Some(_) => {}
                },
                tick = ticks.recv() => match tick {
                    Ok(frames) => {
                        let mut out = vec![0i16; FRAME_SAMPLES];
                        frames.mix_for(&id, role, &mut mixer, &mut out);
                        let _ = out_tx.try_send(LegOut::Pcm16k(out));
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => lagged += n,
                    Err(broadcast::error::RecvError::Closed) => break "call_ended",
                },
            }
        };
        info!(reason, lagged_ticks = lagged, "participant session ended");
        if reason != "removed" && reason != "call_ended" {
            // Only a deliberate leave hangs up. An agent whose connection went keeps the call,
            // on hold, to rejoin within the offer timeout; otherwise it queues again.
            let _ = call.send(CallCommand::Leave { id, reason: reason.into(), hang_up: reason == "left" });
        }
        let _ = out_tx.send(LegOut::Close { reason: reason.into() }).await;
        drop(out_tx);
        reader_stop.cancel();
        if tokio::time::timeout(Duration::from_secs(2), writer).await.is_err() {
            debug!("writer did not finish in time");
        }
        let _ = reader.await;
        control.close().await;
    }
    .instrument(span)
    .await;
}

async fn wait_connected(events: &mut mpsc::Receiver<PeerEvent>) -> Result<(), &'static str> {
    loop {
        match events.recv().await {
            Some(PeerEvent::Connected) => return Ok(()),
            Some(PeerEvent::Failed) => return Err("ice_failed"),
            Some(PeerEvent::Closed) | None => return Err("connection_closed"),
            Some(PeerEvent::Rtp(_)) => {}
        }
    }
}
