//! Browser calls over WebRTC.
//!
//! - `whip.rs`: WHIP-style signalling over HTTP: `POST /webrtc/calls` (SDP offer in, answer
//!   out, `201` + `Location`), `DELETE` on the session to hang up, call tokens, CORS.
//! - `peer.rs`: the seam in front of the WebRTC stack (`webrtc` 0.21 today).
//! - `media.rs`: RTP <-> the call actor: jitter buffer + Opus decode in, paced Opus out.
//! - `participant.rs`: agents and supervisors joining a live call's audio.
//! - `sdp.rs`, `tokens.rs`: offer checks and call tokens, plain data.
//!
//! A call's actor starts when the browser's connection is up (ICE + DTLS), so the greeting is
//! not spoken into a connection that cannot carry it yet; until then the session is pending
//! and counts against `calls.max_concurrent` like a live call.

mod media;
mod participant;
pub mod peer;
pub mod sdp;
pub mod tokens;
pub mod whip;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

use self::peer::{NetworkSettings, PeerEvent, PeerSession, PeerStack, WebRtcRs};
use self::tokens::CallTokens;
use crate::app::AppState;
use crate::call::{self, CallCommand, CallInfo, DialogSetup, LegChannels, LegFormat, Registration};
use crate::ids::{CallId, TenantId};

/// `[webrtc]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebRtcConfig {
    /// Local addresses ICE host candidates are gathered on.
    pub bind_ips: Vec<IpAddr>,
    /// 1:1 NAT: advertised instead of the local addresses.
    #[serde(default)]
    pub public_ips: Vec<IpAddr>,
    pub port_min: u16,
    pub port_max: u16,
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// A connected peer silent this long (no media, no ICE keepalives) is gone.
    #[serde(with = "humantime_serde")]
    pub ice_failed_timeout: Duration,
    pub max_offer_bytes: usize,
    /// Served at `/`.
    pub web_dir: PathBuf,
}

impl WebRtcConfig {
    fn validate(&self) -> Result<(), String> {
        if self.bind_ips.is_empty() {
            return Err("webrtc.bind_ips must list at least one address".into());
        }
        if self.ice_failed_timeout < Duration::from_secs(1) {
            return Err(format!("webrtc.ice_failed_timeout must be at least 1s, got {:?}", self.ice_failed_timeout));
        }
        if (self.port_min == 0) != (self.port_max == 0) || self.port_min > self.port_max {
            return Err(format!(
                "webrtc.port_min..port_max must both be 0 or a range, got {}..{}",
                self.port_min, self.port_max
            ));
        }
        Ok(())
    }
}

/// A session's public id: the last segment of its `Location`. Random, so it cannot be guessed.
pub type SessionId = String;

struct SessionEntry {
    tenant: TenantId,
    call_id: CallId,
    /// The call token it was created with, which may also hang it up.
    token: Option<String>,
    hangup: CancellationToken,
}

struct Inner {
    config: WebRtcConfig,
    stack: Arc<dyn PeerStack>,
    tokens: Mutex<CallTokens>,
    sessions: Mutex<HashMap<SessionId, SessionEntry>>,
    /// Agents' and supervisors' sessions on live calls.
    participants: Mutex<HashMap<SessionId, participant::ParticipantEntry>>,
}

/// Browser-call state shared by the handlers. Cheap to clone.
#[derive(Clone)]
pub struct WebRtc {
    inner: Arc<Inner>,
}

impl WebRtc {
    pub fn new(config: WebRtcConfig) -> Result<Self, String> {
        config.validate()?;
        let net = NetworkSettings {
            bind_ips: config.bind_ips.clone(),
            public_ips: config.public_ips.clone(),
            ports: (config.port_min, config.port_max),
            ice_failed_timeout: config.ice_failed_timeout,
        };
        Ok(Self::with_stack(config, Arc::new(WebRtcRs::new(net))))
    }

    /// With another WebRTC stack behind the seam.
    pub fn with_stack(config: WebRtcConfig, stack: Arc<dyn PeerStack>) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                stack,
                tokens: Mutex::default(),
                sessions: Mutex::default(),
                participants: Mutex::default(),
            }),
        }
    }

    pub fn config(&self) -> &WebRtcConfig {
        &self.inner.config
    }

    /// Sessions pending or in a call.
    pub fn session_count(&self) -> usize {
        self.sessions().len()
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, SessionEntry>> {
        // Short critical sections that cannot leave the map half-updated.
        self.inner.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn participants(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, participant::ParticipantEntry>> {
        self.inner.participants.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Agents' and supervisors' sessions open on live calls.
    pub fn participant_count(&self) -> usize {
        self.participants().len()
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, CallTokens> {
        self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes the session from the map however its task ends.
struct SessionGuard {
    webrtc: WebRtc,
    id: SessionId,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.webrtc.sessions().remove(&self.id);
    }
}

/// Everything a session task needs, prepared by the POST handler.
struct NewSession {
    id: SessionId,
    info: CallInfo,
    dialog: DialogSetup,
    peer: PeerSession,
    commands: mpsc::Receiver<CallCommand>,
    registration: Registration,
    hangup: CancellationToken,
}

const INBOUND_QUEUE: usize = 128;
/// 200 ms of lead is 10 frames plus marks; see the Twilio stream for the same reasoning.
const OUTBOUND_QUEUE: usize = 64;
/// The writer ends on the actor's `Close`; this bounds the wait for it.
const WRITER_GRACE: Duration = Duration::from_secs(2);

enum Pending {
    Connected,
    Gone(&'static str),
}

/// One browser call, from answered offer to closed connection.
async fn run_session(state: AppState, new: NewSession) {
    let NewSession { id, info, dialog, peer, commands, registration, hangup } = new;
    let _guard = SessionGuard { webrtc: state.webrtc.clone(), id: id.clone() };
    let span = info_span!("call", call_id = %info.id, transport = "webrtc", session = %id);
    async move {
        let PeerSession { mut events, payload_types, rtp_out, control, .. } = peer;
        let timeout = state.webrtc.config().connect_timeout;
        let pending = tokio::select! {
            () = hangup.cancelled() => Pending::Gone("hung up before connecting"),
            () = state.shutdown.token.cancelled() => Pending::Gone("server shutting down"),
            () = tokio::time::sleep(timeout) => Pending::Gone("connect timeout"),
            p = wait_connected(&mut events) => p,
        };
        if let Pending::Gone(reason) = pending {
            warn!(%reason, "browser call ended before its connection was up");
            control.close().await;
            return;
        }
        info!(entry = ?info.params.get("entry"), "browser connected");
        let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
        let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
        let reader = tokio::spawn(media::read_loop(events, payload_types, in_tx.clone(), hangup.clone()).in_current_span());
        let writer = tokio::spawn(media::write_loop(out_rx, rtp_out, in_tx).in_current_span());
        call::run_call(
            info,
            dialog,
            LegChannels { input: in_rx, output: out_tx, format: LegFormat::Pcm16k },
            commands,
            state.call_services(),
            state.shutdown.token.clone(),
        )
        .await;
        drop(registration);
        if tokio::time::timeout(WRITER_GRACE, writer).await.is_err() {
            debug!("writer did not finish in time");
        }
        reader.abort();
        let _ = reader.await;
        control.close().await;
        debug!("browser session closed");
    }
    .instrument(span)
    .await;
}

async fn wait_connected(events: &mut mpsc::Receiver<PeerEvent>) -> Pending {
    loop {
        match events.recv().await {
            Some(PeerEvent::Connected) => return Pending::Connected,
            Some(PeerEvent::Failed) => return Pending::Gone("ICE/DTLS failed"),
            Some(PeerEvent::Closed) | None => return Pending::Gone("connection closed"),
            // Media cannot arrive before DTLS is up; anything early is dropped.
            Some(PeerEvent::Rtp(_)) => {}
        }
    }
}
