//! The seam between browser calls and the WebRTC stack.
//!
//! Everything `webrtc`-crate specific lives in this file, behind [`PeerStack`]: given an offer
//! it returns an answer, a stream of [`PeerEvent`]s (connection state and inbound RTP) and an
//! [`RtpOut`] to send RTP on. Signalling (`whip.rs`) and the media loops (`media.rs`) see only
//! these types, so the stack can be swapped (str0m, a sans-IO core of our own) by writing
//! another `PeerStack`.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_TELEPHONE_EVENT};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::mpsc;
use tracing::{debug, trace, warn};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceCandidateType,
    RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
};
use webrtc::runtime::TokioRuntime;

use super::sdp::{self, AudioPayloadTypes};

/// Events from one peer connection, in order.
#[derive(Debug)]
pub enum PeerEvent {
    /// ICE and DTLS are up: media can flow.
    Connected,
    /// ICE failed or the connection was lost for good.
    Failed,
    /// The connection closed (the remote end or we closed it).
    Closed,
    Rtp(RtpIn),
}

/// One inbound RTP packet, after SRTP.
#[derive(Debug)]
pub struct RtpIn {
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The stack refused the offer (it parsed as SDP for us, not for it).
    #[error("offer rejected: {0}")]
    Offer(String),
    /// The answer has no Opus audio we can send on.
    #[error("no common audio codec")]
    NoCommonCodec,
    #[error("no free UDP port in {min}..={max}")]
    NoPort { min: u16, max: u16 },
    #[error("WebRTC stack: {0}")]
    Stack(String),
}

/// Sends RTP to the peer. The stack fills in the SSRC and encrypts.
#[async_trait]
pub trait RtpOut: Send + Sync {
    async fn send(&self, seq: u16, timestamp: u32, marker: bool, payload: Vec<u8>) -> Result<(), PeerError>;
}

/// Ends a peer connection and releases its sockets.
#[async_trait]
pub trait PeerControl: Send + Sync {
    async fn close(&self);
}

/// An answered offer.
pub struct PeerSession {
    pub answer_sdp: String,
    pub payload_types: AudioPayloadTypes,
    pub events: mpsc::Receiver<PeerEvent>,
    pub rtp_out: Arc<dyn RtpOut>,
    pub control: Arc<dyn PeerControl>,
}

/// Makes peer connections.
#[async_trait]
pub trait PeerStack: Send + Sync {
    /// Answers `offer` with one sendrecv Opus audio transceiver, candidates gathered (no
    /// trickle). On error nothing is left running.
    async fn answer(&self, offer: String) -> Result<PeerSession, PeerError>;
}

/// Network settings for [`WebRtcRs`].
#[derive(Debug, Clone)]
pub struct NetworkSettings {
    pub bind_ips: Vec<IpAddr>,
    pub public_ips: Vec<IpAddr>,
    /// Inclusive port range; `(0, 0)` lets the OS pick.
    pub ports: (u16, u16),
    /// A connected peer silent this long is `failed`.
    pub ice_failed_timeout: Duration,
}

/// Bounded: inbound audio is 50 packets/s, so this is a few seconds of slack for a reader that
/// is momentarily behind; beyond it the track task waits (back-pressure into the stack).
const EVENT_QUEUE: usize = 256;
/// Host candidates on fixed addresses gather in milliseconds; this only guards a stuck stack.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);

/// [`PeerStack`] over the `webrtc` crate (0.21, async layer over the sans-IO `rtc` core).
pub struct WebRtcRs {
    net: NetworkSettings,
    next_port: AtomicU32,
}

impl WebRtcRs {
    pub fn new(net: NetworkSettings) -> Self {
        Self { next_port: AtomicU32::new(u32::from(net.ports.0)), net }
    }

    /// One address per bind IP, with a port from the configured range that is free right now.
    fn pick_addrs(&self) -> Result<Vec<SocketAddr>, PeerError> {
        let (min, max) = self.net.ports;
        if min == 0 && max == 0 {
            return Ok(self.net.bind_ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect());
        }
        let span = u32::from(max) - u32::from(min) + 1;
        let mut addrs = Vec::with_capacity(self.net.bind_ips.len());
        for ip in &self.net.bind_ips {
            let found = (0..span).find_map(|_| {
                let n = self.next_port.fetch_add(1, Ordering::Relaxed);
                let port = min + ((n.wrapping_sub(u32::from(min))) % span) as u16;
                // Probe by binding: the stack binds the same address right after. A race with
                // another process is possible and ends in a clear stack error for that call.
                UdpSocket::bind((*ip, port)).ok().map(|_| SocketAddr::new(*ip, port))
            });
            addrs.push(found.ok_or(PeerError::NoPort { min, max })?);
        }
        Ok(addrs)
    }
}

fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

fn media_engine() -> Result<MediaEngine, PeerError> {
    let mut engine = MediaEngine::default();
    let codecs = [
        RTCRtpCodecParameters { rtp_codec: opus_codec(), payload_type: 111, ..Default::default() },
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_TELEPHONE_EVENT.to_owned(),
                clock_rate: 48000,
                channels: 0,
                sdp_fmtp_line: "0-16".to_owned(),
                rtcp_feedback: vec![],
            },
            payload_type: 110,
            ..Default::default()
        },
    ];
    for codec in codecs {
        engine.register_codec(codec, RtpCodecKind::Audio).map_err(|e| PeerError::Stack(e.to_string()))?;
    }
    Ok(engine)
}

#[async_trait]
impl PeerStack for WebRtcRs {
    async fn answer(&self, offer: String) -> Result<PeerSession, PeerError> {
        let offer = RTCSessionDescription::offer(offer).map_err(|e| PeerError::Offer(e.to_string()))?;
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let (gathered_tx, mut gathered_rx) = mpsc::channel(1);
        let handler = Arc::new(Handler { events: events_tx, gathered: gathered_tx });
        let failed = self.net.ice_failed_timeout;
        // `disconnected` comes first and may recover; keepalives stay at the stack's default.
        let disconnected = (failed / 5).min(Duration::from_secs(5));
        let mut settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .with_ice_timeouts(Some(disconnected), Some(failed), None);
        if !self.net.public_ips.is_empty() {
            let ips = self.net.public_ips.iter().map(ToString::to_string).collect();
            settings = settings.with_nat_1to1_ips(ips, RTCIceCandidateType::Host);
        }
        let pc = PeerConnectionBuilder::new()
            .with_media_engine(media_engine()?)
            .with_setting_engine(settings.build())
            .with_runtime(Arc::new(TokioRuntime))
            .with_handler(handler)
            .with_udp_addrs(self.pick_addrs()?)
            .build()
            .await
            .map_err(|e| PeerError::Stack(e.to_string()))?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        match negotiate(&pc, offer, &mut gathered_rx).await {
            Ok((answer_sdp, payload_types, track, ssrc)) => Ok(PeerSession {
                answer_sdp,
                payload_types,
                events: events_rx,
                rtp_out: Arc::new(TrackOut { track, ssrc, payload_type: payload_types.opus }),
                control: Arc::new(Control { pc }),
            }),
            Err(err) => {
                let _ = pc.close().await;
                Err(err)
            }
        }
    }
}

async fn negotiate(
    pc: &Arc<dyn PeerConnection>,
    offer: RTCSessionDescription,
    gathered: &mut mpsc::Receiver<()>,
) -> Result<(String, AudioPayloadTypes, Arc<TrackLocalStaticRTP>, u32), PeerError> {
    pc.set_remote_description(offer).await.map_err(|e| PeerError::Offer(e.to_string()))?;
    // A random SSRC per outbound track, as browsers do; every packet we write carries it.
    let ssrc = rand::random::<u32>();
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "switchboard".to_owned(),
        "bot-audio".to_owned(),
        "bot audio".to_owned(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
            codec: opus_codec(),
            ..Default::default()
        }],
    )));
    // Added after the remote offer, so it takes the offered audio transceiver (sendrecv)
    // instead of adding a second m-line the browser never asked for.
    pc.add_track(Arc::clone(&track) as Arc<dyn TrackLocal>).await.map_err(|e| PeerError::Stack(e.to_string()))?;
    let answer = pc.create_answer(None).await.map_err(|e| PeerError::Offer(e.to_string()))?;
    pc.set_local_description(answer).await.map_err(|e| PeerError::Stack(e.to_string()))?;
    if tokio::time::timeout(GATHER_TIMEOUT, gathered.recv()).await.is_err() {
        warn!("ICE gathering did not complete in time; answering with what was gathered");
    }
    let answer = pc.local_description().await.ok_or_else(|| PeerError::Stack("no local description".into()))?;
    let payload_types = sdp::audio_payload_types(&answer.sdp).ok_or(PeerError::NoCommonCodec)?;
    Ok((answer.sdp, payload_types, track, ssrc))
}

struct Handler {
    events: mpsc::Sender<PeerEvent>,
    gathered: mpsc::Sender<()>,
}

#[async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        debug!(%state, "peer connection state");
        let event = match state {
            RTCPeerConnectionState::Connected => PeerEvent::Connected,
            RTCPeerConnectionState::Failed => PeerEvent::Failed,
            RTCPeerConnectionState::Closed => PeerEvent::Closed,
            // `disconnected` may recover by itself; `failed` follows if it does not.
            _ => return,
        };
        // Callbacks run on the stack's driver: never wait here. State events are rare, so a
        // full queue means the reader is gone, and the event has no one to go to.
        let _ = self.events.try_send(event);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let events = self.events.clone();
        // The task ends when the track ends (the connection closes) or the reader is gone.
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                let TrackRemoteEvent::OnRtpPacket(packet) = event else { continue };
                trace!(seq = packet.header.sequence_number, "rtp in");
                let rtp = RtpIn {
                    payload_type: packet.header.payload_type,
                    seq: packet.header.sequence_number,
                    timestamp: packet.header.timestamp,
                    marker: packet.header.marker,
                    payload: packet.payload.to_vec(),
                };
                if events.send(PeerEvent::Rtp(rtp)).await.is_err() {
                    return;
                }
            }
        });
    }
}

struct TrackOut {
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    payload_type: u8,
}

#[async_trait]
impl RtpOut for TrackOut {
    async fn send(&self, seq: u16, timestamp: u32, marker: bool, payload: Vec<u8>) -> Result<(), PeerError> {
        let mut packet = rtc::rtp::Packet::default();
        packet.header.version = 2;
        packet.header.marker = marker;
        packet.header.payload_type = self.payload_type;
        packet.header.sequence_number = seq;
        packet.header.timestamp = timestamp;
        packet.header.ssrc = self.ssrc;
        packet.payload = payload.into();
        self.track.write_rtp(packet).await.map_err(|e| PeerError::Stack(e.to_string()))
    }
}

struct Control {
    pc: Arc<dyn PeerConnection>,
}

#[async_trait]
impl PeerControl for Control {
    async fn close(&self) {
        if let Err(err) = self.pc.close().await {
            debug!(%err, "closing peer connection");
        }
    }
}
