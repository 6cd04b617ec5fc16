//! A browser stand-in for WebRTC tests: a `webrtc`-crate peer with one sendrecv Opus
//! transceiver (plus telephone-events) that sends paced Opus and records what it hears.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use media::codec::opus::{OpusDecoder, OpusEncoder};
use media::{Decoder, Encoder, SampleRate};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_TELEPHONE_EVENT};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription,
};

pub const OPUS_PT: u8 = 111;
pub const DTMF_PT: u8 = 110;

/// What the client heard: decoded 16 kHz frames with their arrival time.
#[derive(Default)]
pub struct Heard {
    pub frames: Vec<(Instant, Vec<i16>)>,
    pub packets: u64,
    pub timestamps: Vec<u32>,
}

impl Heard {
    /// 20 ms frames louder than -40 dBFS.
    pub fn loud_frames_since(&self, since: Instant) -> usize {
        self.frames.iter().filter(|(at, f)| *at >= since && rms(f) > 328.0).count()
    }
}

pub fn rms(frame: &[i16]) -> f64 {
    (frame.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / frame.len().max(1) as f64).sqrt()
}

struct ClientHandler {
    gathered: mpsc::Sender<()>,
    state: mpsc::Sender<RTCPeerConnectionState>,
    heard: Arc<Mutex<Heard>>,
    /// A stalled peer never reads its track (a subscriber that stopped consuming).
    stalled: bool,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for ClientHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.state.try_send(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if self.stalled {
            // Keep the track alive without ever reading it.
            std::mem::forget(track);
            return;
        }
        let heard = self.heard.clone();
        tokio::spawn(async move {
            let mut decoder = OpusDecoder::new(SampleRate::HZ_16000).unwrap();
            while let Some(event) = track.poll().await {
                let TrackRemoteEvent::OnRtpPacket(packet) = event else { continue };
                let mut pcm = Vec::new();
                if decoder.decode(&packet.payload, &mut pcm).is_ok() {
                    let mut h = heard.lock().unwrap();
                    h.packets += 1;
                    h.timestamps.push(packet.header.timestamp);
                    h.frames.push((Instant::now(), pcm));
                }
            }
        });
    }
}

pub fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// A browser stand-in: one sendrecv Opus transceiver (plus telephone-events), offer with all
/// candidates, the server's answer applied.
pub struct Client {
    pub pc: Arc<dyn PeerConnection>,
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    seq: u16,
    ts: u32,
    encoder: OpusEncoder,
    states: mpsc::Receiver<RTCPeerConnectionState>,
    pub heard: Arc<Mutex<Heard>>,
}


impl Client {
    /// A new peer and its offer (all candidates gathered).
    pub async fn new() -> (Self, String) {
        Self::build(false).await
    }

    /// A peer that never reads what it is sent.
    pub async fn stalled() -> (Self, String) {
        Self::build(true).await
    }

    async fn build(stalled: bool) -> (Self, String) {
        let mut engine = MediaEngine::default();
        engine
            .register_codec(RTCRtpCodecParameters { rtp_codec: opus_codec(), payload_type: OPUS_PT, ..Default::default() }, RtpCodecKind::Audio)
            .unwrap();
        let dtmf = RTCRtpCodec {
            mime_type: MIME_TYPE_TELEPHONE_EVENT.to_owned(),
            clock_rate: 48000,
            channels: 0,
            sdp_fmtp_line: "0-16".to_owned(),
            rtcp_feedback: vec![],
        };
        let dtmf = RTCRtpCodecParameters { rtp_codec: dtmf, payload_type: DTMF_PT, ..Default::default() };
        engine.register_codec(dtmf.clone(), RtpCodecKind::Audio).unwrap();
        let (gathered_tx, mut gathered) = mpsc::channel(1);
        let (state_tx, states) = mpsc::channel(16);
        let heard = Arc::new(Mutex::new(Heard::default()));
        let pc = PeerConnectionBuilder::new()
            .with_media_engine(engine)
            .with_handler(Arc::new(ClientHandler { gathered: gathered_tx, state: state_tx, heard: heard.clone(), stalled }))
            .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
            .build()
            .await
            .unwrap();
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let ssrc = rand::random::<u32>();
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            "mic".to_owned(),
            "mic-track".to_owned(),
            "microphone".to_owned(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                codec: opus_codec(),
                ..Default::default()
            }],
        )));
        pc.add_track(track.clone() as Arc<dyn TrackLocal>).await.unwrap();
        // A track-backed transceiver offers only the track's codec; a browser also offers
        // telephone-events.
        let opus = RTCRtpCodecParameters { rtp_codec: opus_codec(), payload_type: OPUS_PT, ..Default::default() };
        pc.get_transceivers().await[0].set_codec_preferences(vec![opus, dtmf]).await.unwrap();
        let offer = pc.create_offer(None).await.unwrap();
        pc.set_local_description(offer).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), gathered.recv()).await.expect("gathering completes");
        let sdp = pc.local_description().await.unwrap().sdp;
        let encoder = OpusEncoder::new(SampleRate::HZ_48000, 32_000).unwrap();
        (Self { pc, track, ssrc, seq: 1, ts: 0, encoder, states, heard }, sdp)
    }

    /// Applies the server's answer and waits for the connection.
    pub async fn answer(&mut self, answer: String) {
        self.pc.set_remote_description(RTCSessionDescription::answer(answer).unwrap()).await.unwrap();
        self.wait_state(RTCPeerConnectionState::Connected, Duration::from_secs(10)).await;
    }

    pub async fn wait_state(&mut self, want: RTCPeerConnectionState, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.states.recv()).await {
                Ok(Some(s)) if s == want => return,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => panic!("peer never reached {want}"),
            }
        }
    }

    pub async fn send_rtp(&mut self, pt: u8, marker: bool, ts: u32, payload: Vec<u8>) {
        let mut packet = rtc::rtp::Packet::default();
        packet.header.version = 2;
        packet.header.payload_type = pt;
        packet.header.marker = marker;
        packet.header.sequence_number = self.seq;
        packet.header.timestamp = ts;
        packet.header.ssrc = self.ssrc;
        packet.payload = payload.into();
        self.seq = self.seq.wrapping_add(1);
        self.track.write_rtp(packet).await.unwrap();
    }

    /// Sends 48 kHz PCM as 20 ms Opus packets, paced in real time.
    pub async fn say(&mut self, pcm48: &[i16]) {
        let mut clock = tokio::time::interval(Duration::from_millis(20));
        for chunk in pcm48.chunks(960) {
            let mut frame = chunk.to_vec();
            frame.resize(960, 0);
            let mut payload = Vec::new();
            self.encoder.encode(&frame, &mut payload).unwrap();
            clock.tick().await;
            let ts = self.ts;
            self.send_rtp(OPUS_PT, false, ts, payload).await;
            self.ts = self.ts.wrapping_add(960);
        }
    }

    pub async fn silence(&mut self, duration: Duration) {
        let frames = (duration.as_millis() / 20) as usize;
        self.say(&vec![0i16; frames * 960]).await;
    }

    /// One RFC 4733 key press: three updates and the end packet three times, one timestamp.
    pub async fn dtmf(&mut self, digit: char) {
        let start = self.ts;
        for (i, end) in [false, false, false, true, true, true].into_iter().enumerate() {
            let duration = ((i.min(3) + 1) * 960) as u16;
            let bytes = sip::telephone_event::TelephoneEvent { digit, end, volume: 10, duration }.to_bytes().unwrap();
            self.send_rtp(DTMF_PT, i == 0, start, bytes.to_vec()).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.ts = self.ts.wrapping_add(960);
        }
    }

    pub async fn close(&self) {
        self.pc.close().await.unwrap();
    }
}

/// `text` spoken by espeak-ng, as 48 kHz mono (what a browser microphone track carries).
pub fn speech_48k(text: &str) -> Vec<i16> {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("s.wav");
    let raw = dir.path().join("s.raw");
    assert!(Command::new("espeak-ng").arg("-w").arg(&wav).arg(text).status().expect("espeak-ng installed").success());
    assert!(Command::new("sox")
        .arg(&wav)
        .args(["-r", "48000", "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw"])
        .arg(&raw)
        .status()
        .expect("sox installed")
        .success());
    let bytes = std::fs::read(&raw).unwrap();
    let pcm: Vec<i16> = bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    assert!(pcm.len() > 4800, "espeak-ng produced speech");
    pcm
}

