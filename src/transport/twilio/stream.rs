//! `GET /twilio/stream/{token}`: the Media Streams WebSocket.
//!
//! The handshake (`connected`, then `start`) happens here; after it, a reader task turns wire
//! messages into [`LegIn`], a writer task turns [`LegOut`] into wire messages, and the call
//! actor runs in between. Bad input is logged with the call id and dropped or, where the stream
//! cannot go on, ends that stream alone.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite;
use tracing::{debug, info, info_span, warn, Instrument};

use super::protocol::{parse_inbound, Inbound, MediaFrameWriter, Outbound, ProtocolError, Start, StreamSid};
use super::webhook::PendingCall;
use crate::app::AppState;
use crate::call::{self, CallHandle, CallInfo, LegChannels, LegFormat, LegIn, LegOut};
use crate::error::AppError;
use crate::ids::CallId;

/// Time allowed between the socket opening and Twilio's `start`.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// A write that makes no progress for this long means the peer stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Messages the actor may have in flight to the writer: 200 ms of lead is 10 frames plus
/// marks; beyond this the peer is not reading and the call is ended rather than buffered.
const OUTBOUND_QUEUE: usize = 64;
const INBOUND_QUEUE: usize = 128;
/// The largest μ-law payload accepted in one `media` message (1 s of audio).
const MAX_PAYLOAD_BYTES: usize = 8000;

/// WebSocket close codes (RFC 6455 §7.4.1).
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_PROTOCOL: u16 = 1002;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TRY_LATER: u16 = 1013;

pub async fn stream(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, AppError> {
    let pending = state.twilio_pending.take(&token);
    // With signature checks on, only streams announced by a verified webhook are accepted;
    // without them (development, load tests) any token opens a stream.
    if pending.is_none() && state.config.twilio.auth_token.is_some() {
        warn!("media stream with an unknown or expired token refused");
        return Err(AppError::Unauthorized);
    }
    if state.shutdown.token.is_cancelled() {
        return Err(AppError::Unavailable("server is shutting down".into()));
    }
    let max = state.config.twilio.max_message_bytes;
    Ok(ws
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| async move {
            let calls = state.shutdown.calls.clone();
            let task = calls.spawn(run_stream(state, socket, pending));
            let _ = task.await;
        }))
}

async fn run_stream(state: AppState, socket: WebSocket, pending: Option<PendingCall>) {
    let id = CallId::generate();
    let span = info_span!("call", call_id = %id, transport = "twilio");
    async move {
        let (mut sink, mut stream) = socket.split();
        let start = match handshake(&mut stream).await {
            Ok(start) => start,
            Err(reason) => {
                warn!(%reason, "media stream ended before it started");
                close(&mut sink, CLOSE_PROTOCOL, &reason).await;
                return;
            }
        };
        if !start.start.media_format.is_mulaw_8k_mono() {
            let reason = format!("unsupported media format {:?}", start.start.media_format);
            warn!(%reason, "refusing stream");
            close(&mut sink, CLOSE_POLICY, &reason).await;
            return;
        }
        let stream_sid = start.stream_sid.clone();
        let params = start.start.custom_parameters.clone();
        let from = pending.as_ref().and_then(|p| p.from.clone()).or_else(|| params.get("From").cloned());
        let to = pending.as_ref().and_then(|p| p.to.clone()).or_else(|| params.get("To").cloned());
        let flow = pending
            .as_ref()
            .and_then(|p| p.flow.clone())
            .or_else(|| params.get("flow").cloned())
            .or_else(|| state.flows.select(to.as_deref(), None).map(|f| f.name().to_string()));
        let info = CallInfo {
            id: id.clone(),
            tenant: state.twilio_tenant.clone(),
            transport: "twilio",
            external_id: Some(start.start.call_sid.to_string()),
            from,
            to,
            params,
        };
        let (cmd_tx, cmd_rx) = mpsc::channel(32);
        let registration = match state.calls.register(CallHandle::new(id.clone(), info.tenant.clone(), cmd_tx)) {
            Ok(r) => r,
            Err(full) => {
                warn!(%full, "refusing call");
                close(&mut sink, CLOSE_TRY_LATER, &full.to_string()).await;
                return;
            }
        };
        let dialog = match state.dialog_for(flow.as_deref()) {
            Ok(d) => d,
            Err(reason) => {
                warn!(%reason, "no dialog for call");
                close(&mut sink, CLOSE_POLICY, &reason).await;
                return;
            }
        };
        info!(stream_sid = %stream_sid, call_sid = %start.start.call_sid, "media stream started");
        let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
        let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
        let reader = tokio::spawn(read_loop(stream, stream_sid.clone(), in_tx).in_current_span());
        let writer = tokio::spawn(write_loop(sink, stream_sid, out_rx).in_current_span());
        call::run_call(
            info,
            dialog,
            LegChannels { input: in_rx, output: out_tx, format: LegFormat::Mulaw8k },
            cmd_rx,
            state.call_services(),
            state.shutdown.token.clone(),
        )
        .await;
        drop(registration);
        // The writer ends on the actor's Close (or when its queue is dropped); the reader ends
        // when the socket closes. Neither may outlive the call for long.
        if tokio::time::timeout(WRITE_TIMEOUT * 2, writer).await.is_err() {
            debug!("writer did not finish in time");
        }
        reader.abort();
    }
    .instrument(span)
    .await;
}

/// Reads until `start`. `connected` comes first; anything else before `start` is logged and
/// dropped (there is no call to give it to yet).
async fn handshake(stream: &mut SplitStream<WebSocket>) -> Result<Start, String> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        let msg = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return Err("no start message within 10 s".into()),
            Ok(None) => return Err("socket closed before start".into()),
            Ok(Some(Err(e))) => return Err(format!("socket error before start: {e}")),
            Ok(Some(Ok(msg))) => msg,
        };
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(_) => return Err("socket closed before start".into()),
            Message::Binary(_) => {
                warn!("binary frame before start ignored (Media Streams are JSON text)");
                continue;
            }
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        match parse_inbound(text.as_str()) {
            Ok(Inbound::Start(start)) => return Ok(start),
            Ok(Inbound::Connected(_)) => debug!("connected"),
            Ok(other) => warn!(event = ?event_name(&other), "message before start ignored"),
            Err(err) => warn!(%err, "unusable message before start ignored"),
        }
    }
}

fn event_name(msg: &Inbound) -> &'static str {
    match msg {
        Inbound::Connected(_) => "connected",
        Inbound::Start(_) => "start",
        Inbound::Media(_) => "media",
        Inbound::Dtmf(_) => "dtmf",
        Inbound::Mark(_) => "mark",
        Inbound::Stop(_) => "stop",
    }
}

/// Wire -> actor. Ends on `stop`, on close, or when the actor is gone.
async fn read_loop(mut stream: SplitStream<WebSocket>, sid: StreamSid, tx: mpsc::Sender<LegIn>) {
    let mut last_seq: Option<u64> = None;
    let mut gaps: u64 = 0;
    while let Some(msg) = stream.next().await {
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Binary(_)) => {
                warn!("binary frame ignored (Media Streams are JSON text)");
                if tx.send(LegIn::Warning("binary frame ignored".into())).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Close(_)) => break,
            Err(err) => {
                let err = err.into_inner();
                // Oversized frames and protocol violations are the peer breaking the protocol;
                // anything else (a reset, a close without handshake) is the line going away.
                let violation = err.downcast_ref::<tungstenite::Error>().is_some_and(|e| {
                    use tungstenite::error::ProtocolError as P;
                    match e {
                        tungstenite::Error::Protocol(P::ResetWithoutClosingHandshake) => false,
                        tungstenite::Error::Capacity(_) | tungstenite::Error::Protocol(_) | tungstenite::Error::Utf8(_) => true,
                        _ => false,
                    }
                });
                if violation {
                    warn!(%err, "media stream broke the protocol");
                    let _ = tx.send(LegIn::Failed(format!("websocket error: {err}"))).await;
                } else {
                    info!(%err, "media stream connection lost");
                    let _ = tx.send(LegIn::Disconnected).await;
                }
                return;
            }
        };
        let msg = match parse_inbound(text.as_str()) {
            Ok(m) => m,
            Err(ProtocolError::UnknownEvent(name)) => {
                debug!(%name, "unknown event ignored");
                continue;
            }
            Err(err) => {
                warn!(%err, "unusable message ignored");
                if tx.send(LegIn::Warning(err.to_string())).await.is_err() {
                    return;
                }
                continue;
            }
        };
        if let Some(other) = msg.stream_sid().filter(|s| **s != sid) {
            warn!(expected = %sid, got = %other, "message for another stream ignored");
            if tx.send(LegIn::Warning(format!("wrong streamSid {other}"))).await.is_err() {
                return;
            }
            continue;
        }
        if let Some(seq) = msg.sequence_number() {
            if let Some(prev) = last_seq {
                if seq > prev + 1 {
                    gaps += seq - prev - 1;
                    debug!(prev, seq, gaps, "sequence gap");
                }
            }
            last_seq = Some(seq);
        }
        let leg = match msg {
            Inbound::Media(media) => match media.media.payload.decode(MAX_PAYLOAD_BYTES) {
                Ok(bytes) => LegIn::Mulaw8k(bytes),
                Err(err) => {
                    warn!(%err, "media frame dropped");
                    LegIn::Warning(err.to_string())
                }
            },
            Inbound::Dtmf(d) => LegIn::Dtmf(d.dtmf.digit),
            Inbound::Mark(m) => LegIn::Mark(m.mark.name),
            Inbound::Stop(_) => {
                if gaps > 0 {
                    info!(gaps, "sequence gaps during the stream");
                }
                let _ = tx.send(LegIn::Stop).await;
                return;
            }
            Inbound::Start(_) => LegIn::Warning("second start ignored".into()),
            Inbound::Connected(_) => continue,
        };
        if tx.send(leg).await.is_err() {
            return;
        }
    }
    // Closed without `stop`: the connection went away under the call.
    let _ = tx.send(LegIn::Disconnected).await;
}

/// Actor -> wire. Every write is bounded in time: a peer that stops reading ends the call
/// (the actor notices its queue filling) instead of growing memory.
async fn write_loop(mut sink: SplitSink<WebSocket, Message>, sid: StreamSid, mut rx: mpsc::Receiver<LegOut>) {
    let mut media = MediaFrameWriter::new(&sid);
    while let Some(out) = rx.recv().await {
        let text = match out {
            LegOut::Mulaw8k(bytes) => media.write(&bytes).to_string(),
            LegOut::Pcm16k(_) => {
                // The actor speaks this leg's format; a PCM frame here is a wiring bug, and
                // dropping it is the least harmful answer.
                warn!("PCM frame on a μ-law stream dropped");
                continue;
            }
            LegOut::Mark(name) => Outbound::mark(&sid, name).to_json(),
            LegOut::Clear => Outbound::clear(&sid).to_json(),
            LegOut::Close { reason } => {
                close(&mut sink, CLOSE_NORMAL, &reason).await;
                return;
            }
        };
        match tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Text(Utf8Bytes::from(text)))).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                debug!(%err, "media stream write failed");
                return;
            }
            Err(_) => {
                warn!("peer stopped reading; giving up on the stream");
                return;
            }
        }
    }
}

async fn close(sink: &mut SplitSink<WebSocket, Message>, code: u16, reason: &str) {
    // Close reasons are limited to 123 bytes by the protocol.
    let mut reason = reason.to_string();
    while reason.len() > 123 {
        reason.pop();
    }
    let frame = CloseFrame { code, reason: Utf8Bytes::from(reason) };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
}
