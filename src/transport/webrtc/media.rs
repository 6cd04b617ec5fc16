//! The two media loops of a browser call, between the peer seam and the call actor.
//!
//! - Reader: RTP Opus (48 kHz clock) -> jitter buffer -> Opus decoded straight to 16 kHz ->
//!   [`LegIn::Pcm16k`]; RFC 4733 telephone-events -> [`LegIn::Dtmf`]; connection state ->
//!   [`LegIn::Stop`] / [`LegIn::Disconnected`].
//! - Writer: [`LegOut::Pcm16k`] frames -> Opus -> one RTP packet every 20 ms on its own clock
//!   (silence when nothing is queued, so the track never has a gap), timestamps continuous
//!   across utterances. Sending is the playout clock here: a mark is echoed back to the actor
//!   once every frame queued before it has gone out, and a `Clear` drops the queue at once
//!   (its marks are echoed then, as dropped).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use media::codec::opus::{OpusDecoder, OpusEncoder};
use media::jitter::{JitterBuffer, JitterConfig, Playout};
use media::{Decoder, Encoder, SampleRate};
use sip::telephone_event::TelephoneEvent;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, trace, warn};

use super::peer::{PeerEvent, RtpIn, RtpOut};
use super::sdp::AudioPayloadTypes;
use crate::call::{LegIn, LegOut};

const FRAME: Duration = Duration::from_millis(20);
/// 20 ms at 16 kHz.
const FRAME_SAMPLES: usize = 320;
/// 20 ms on Opus's 48 kHz RTP clock.
const TICKS_PER_FRAME: u32 = 960;
/// Bot audio bitrate: wideband speech.
const OPUS_BITRATE: i32 = 24_000;
/// Frames the writer holds at most (1 s). The actor keeps only `playout_lead` ahead, so this
/// is reached only if its clock and ours disagree; then the oldest frames go, keeping latency
/// bounded instead of growing.
const MAX_QUEUED_FRAMES: usize = 50;
/// Missing packets concealed in a row before the reader goes quiet: a browser that stopped
/// sending is not speaking, and the actor's idle timeout must be able to see that.
const MAX_CONCEALED: u32 = 10;

/// Wire -> actor. Ends when the connection closes or fails, when `hangup` is cancelled (the
/// browser sent DELETE), or when the actor is gone.
pub async fn read_loop(
    mut events: mpsc::Receiver<PeerEvent>,
    payload_types: AudioPayloadTypes,
    tx: mpsc::Sender<LegIn>,
    hangup: CancellationToken,
) {
    let mut jitter = JitterBuffer::new(JitterConfig::new(SampleRate::HZ_48000));
    let mut decoder = match OpusDecoder::new(SampleRate::HZ_16000) {
        Ok(d) => d,
        Err(err) => {
            let _ = tx.send(LegIn::Failed(format!("opus decoder: {err}"))).await;
            return;
        }
    };
    let mut dtmf = DtmfDedup::default();
    let mut concealed = 0u32;
    let mut pcm = Vec::with_capacity(FRAME_SAMPLES * 6);
    let end = loop {
        let due = jitter.next_due().map(Instant::from_std);
        tokio::select! {
            biased;
            () = hangup.cancelled() => break LegIn::Stop,
            event = events.recv() => match event {
                Some(PeerEvent::Rtp(rtp)) => {
                    if rtp.payload_type == payload_types.opus {
                        jitter.push(std::time::Instant::now(), rtp.seq, rtp.timestamp, rtp.payload);
                    } else if Some(rtp.payload_type) == payload_types.telephone_event {
                        if let Some(digit) = dtmf.on_packet(&rtp) {
                            debug!(%digit, "dtmf");
                            if tx.send(LegIn::Dtmf(digit)).await.is_err() {
                                return;
                            }
                        }
                    } else {
                        trace!(pt = rtp.payload_type, "rtp with another payload type ignored");
                    }
                }
                Some(PeerEvent::Connected) => {}
                Some(PeerEvent::Closed) => break LegIn::Stop,
                Some(PeerEvent::Failed) => {
                    info!("connection to the browser lost");
                    break LegIn::Disconnected;
                }
                None => break LegIn::Disconnected,
            },
            () = sleep_until_opt(due) => {
                let now = std::time::Instant::now();
                while let Some(slot) = jitter.pop(now) {
                    pcm.clear();
                    let decoded = match slot {
                        Playout::Packet(packet) => {
                            concealed = 0;
                            decoder.decode(&packet.payload, &mut pcm)
                        }
                        Playout::Missing { .. } if concealed < MAX_CONCEALED => {
                            concealed += 1;
                            decoder.conceal(FRAME_SAMPLES, &mut pcm)
                        }
                        Playout::Missing { .. } => continue,
                    };
                    match decoded {
                        Ok(_) if !pcm.is_empty() => {
                            if tx.send(LegIn::Pcm16k(std::mem::take(&mut pcm))).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(err) => {
                            // One bad packet is a glitch, not the end of the call.
                            warn!(%err, "opus packet dropped");
                        }
                    }
                }
            }
        }
    };
    let stats = jitter.stats();
    debug!(received = stats.received, lost = stats.lost, late = stats.late, "inbound audio ended");
    let _ = tx.send(end).await;
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One digit per RFC 4733 event: a key press is sent as several packets sharing an RTP
/// timestamp (updates, then the end packet three times).
#[derive(Debug, Default)]
struct DtmfDedup {
    last_timestamp: Option<u32>,
}

impl DtmfDedup {
    fn on_packet(&mut self, rtp: &RtpIn) -> Option<char> {
        let event = TelephoneEvent::parse(&rtp.payload).ok()?;
        if self.last_timestamp == Some(rtp.timestamp) {
            return None;
        }
        self.last_timestamp = Some(rtp.timestamp);
        Some(event.digit)
    }
}

enum Queued {
    Frame(Vec<i16>),
    Mark(String),
}

/// The writer's state, clock-free so tests can drive it tick by tick.
struct Outbound {
    queue: VecDeque<Queued>,
    frames: usize,
    seq: u16,
    timestamp: u32,
    first: bool,
    dropped_frames: u64,
}

/// What one tick sends: a frame, and the marks that were behind it.
struct Tick {
    frame: Option<Vec<i16>>,
    marks: Vec<String>,
    seq: u16,
    timestamp: u32,
    marker: bool,
}

impl Outbound {
    fn new(seq: u16, timestamp: u32) -> Self {
        Self { queue: VecDeque::new(), frames: 0, seq, timestamp, first: true, dropped_frames: 0 }
    }

    /// Queues what the actor sent. Returns marks to echo now (on `Clear`).
    fn push(&mut self, out: LegOut) -> Vec<String> {
        match out {
            LegOut::Pcm16k(frame) => {
                self.queue.push_back(Queued::Frame(frame));
                self.frames += 1;
                while self.frames > MAX_QUEUED_FRAMES {
                    if let Some(i) = self.queue.iter().position(|q| matches!(q, Queued::Frame(_))) {
                        self.queue.remove(i);
                        self.frames -= 1;
                        self.dropped_frames += 1;
                    }
                }
                Vec::new()
            }
            LegOut::Mark(name) => {
                if self.frames == 0 {
                    // Nothing ahead of it: everything before it is already on the wire.
                    vec![name]
                } else {
                    self.queue.push_back(Queued::Mark(name));
                    Vec::new()
                }
            }
            LegOut::Clear => {
                self.frames = 0;
                self.queue
                    .drain(..)
                    .filter_map(|q| match q {
                        Queued::Mark(name) => Some(name),
                        Queued::Frame(_) => None,
                    })
                    .collect()
            }
            // The Twilio format never reaches this leg; `Close` is handled by the loop.
            LegOut::Mulaw8k(_) | LegOut::Close { .. } => Vec::new(),
        }
    }

    /// The next 20 ms: the oldest queued frame (or `None` for silence), and the marks it
    /// completes. Sequence number and timestamp advance every tick, sent audio or silence.
    fn tick(&mut self) -> Tick {
        // Marks at the head have nothing left before them (sent, or dropped on overflow).
        let mut marks = self.leading_marks();
        let frame = match self.queue.front() {
            Some(Queued::Frame(_)) => match self.queue.pop_front() {
                Some(Queued::Frame(f)) => {
                    self.frames -= 1;
                    Some(f)
                }
                _ => None,
            },
            _ => None,
        };
        marks.extend(self.leading_marks());
        let tick = Tick { frame, marks, seq: self.seq, timestamp: self.timestamp, marker: self.first };
        self.first = false;
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(TICKS_PER_FRAME);
        tick
    }
}

impl Outbound {
    fn leading_marks(&mut self) -> Vec<String> {
        let mut marks = Vec::new();
        while let Some(Queued::Mark(_)) = self.queue.front() {
            if let Some(Queued::Mark(name)) = self.queue.pop_front() {
                marks.push(name);
            }
        }
        marks
    }
}

/// Actor -> wire, paced by its own 20 ms clock. Ends on the actor's `Close` or when the actor
/// drops its sender.
pub async fn write_loop(mut rx: mpsc::Receiver<LegOut>, rtp: Arc<dyn RtpOut>, marks_to: mpsc::Sender<LegIn>) {
    let mut encoder = match OpusEncoder::new(SampleRate::HZ_16000, OPUS_BITRATE) {
        Ok(e) => e,
        Err(err) => {
            let _ = marks_to.send(LegIn::Failed(format!("opus encoder: {err}"))).await;
            return;
        }
    };
    // Random starting points (RFC 3550 §5.1) so a capture cannot be lined up across calls.
    let mut out = Outbound::new(rand::random(), rand::random());
    let silence = vec![0i16; FRAME_SAMPLES];
    let mut payload = Vec::with_capacity(256);
    let mut clock = tokio::time::interval(FRAME);
    // A late tick sends the missed packets at once: the far end's jitter buffer absorbs a
    // burst, while skipped ticks would be a gap in the timestamps.
    clock.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut send_errors = 0u64;
    loop {
        tokio::select! {
            biased;
            msg = rx.recv() => match msg {
                Some(LegOut::Close { reason }) => {
                    debug!(%reason, "actor closed the leg");
                    break;
                }
                Some(msg) => {
                    for name in out.push(msg) {
                        echo(&marks_to, name);
                    }
                }
                None => break,
            },
            _ = clock.tick() => {
                let tick = out.tick();
                let frame = tick.frame.as_deref().unwrap_or(&silence);
                payload.clear();
                if let Err(err) = encoder.encode(frame, &mut payload) {
                    warn!(%err, "opus encode failed; frame skipped");
                } else if let Err(err) = rtp.send(tick.seq, tick.timestamp, tick.marker, std::mem::take(&mut payload)).await {
                    // The connection is going away; the reader reports that to the actor.
                    send_errors += 1;
                    if send_errors == 1 {
                        debug!(%err, "rtp send failed");
                    }
                }
                for name in tick.marks {
                    echo(&marks_to, name);
                }
            }
        }
    }
    if out.dropped_frames > 0 {
        warn!(dropped = out.dropped_frames, "outbound frames dropped because the queue was full");
    }
}

fn echo(tx: &mpsc::Sender<LegIn>, name: String) {
    // The actor drains its input every tick; a full queue means it is ending.
    if tx.try_send(LegIn::Mark(name)).is_err() {
        debug!("mark echo dropped: the call is ending");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: i16) -> LegOut {
        LegOut::Pcm16k(vec![v; FRAME_SAMPLES])
    }

    #[test]
    fn frames_go_out_one_per_tick_with_continuous_timestamps_and_silence_between() {
        let mut out = Outbound::new(65535, u32::MAX - 959);
        out.push(frame(1));
        out.push(frame(2));
        let a = out.tick();
        let b = out.tick();
        let c = out.tick();
        assert_eq!(a.frame.unwrap()[0], 1);
        assert!(a.marker && !b.marker && !c.marker);
        assert_eq!(b.frame.unwrap()[0], 2);
        assert!(c.frame.is_none(), "an empty queue is silence, not a gap");
        assert_eq!((a.seq, b.seq, c.seq), (65535, 0, 1));
        assert_eq!((a.timestamp, b.timestamp, c.timestamp), (u32::MAX - 959, 0, 960));
        // A new utterance continues the same timeline.
        out.push(frame(3));
        let d = out.tick();
        assert_eq!(d.frame.unwrap()[0], 3);
        assert_eq!((d.seq, d.timestamp), (2, 1920));
    }

    #[test]
    fn a_mark_is_echoed_after_the_frames_before_it_are_sent() {
        let mut out = Outbound::new(0, 0);
        out.push(frame(1));
        out.push(frame(2));
        assert!(out.push(LegOut::Mark("m1".into())).is_empty());
        out.push(frame(3));
        assert!(out.tick().marks.is_empty());
        assert_eq!(out.tick().marks, vec!["m1".to_string()]);
        assert!(out.tick().marks.is_empty());
        // With nothing queued, a mark is complete at once.
        assert_eq!(out.push(LegOut::Mark("m2".into())), vec!["m2".to_string()]);
    }

    #[test]
    fn clear_drops_queued_audio_at_once_and_returns_its_marks() {
        let mut out = Outbound::new(0, 0);
        for i in 0..10 {
            out.push(frame(i));
            if i % 4 == 3 {
                out.push(LegOut::Mark(format!("m{i}")));
            }
        }
        out.tick();
        assert_eq!(out.push(LegOut::Clear), vec!["m3".to_string(), "m7".to_string()]);
        let next = out.tick();
        assert!(next.frame.is_none(), "nothing of the cut utterance is sent after a clear");
        assert_eq!(next.seq, 1, "sequence numbers continue");
    }

    #[test]
    fn an_overfull_queue_drops_the_oldest_frames() {
        let mut out = Outbound::new(0, 0);
        for i in 0..(MAX_QUEUED_FRAMES as i16 + 5) {
            out.push(frame(i));
        }
        assert_eq!(out.dropped_frames, 5);
        assert_eq!(out.tick().frame.unwrap()[0], 5);
    }

    #[test]
    fn one_digit_per_telephone_event() {
        let mut dedup = DtmfDedup::default();
        let packet = |ts: u32, end: bool, duration: u16| RtpIn {
            payload_type: 110,
            seq: 0,
            timestamp: ts,
            marker: false,
            payload: TelephoneEvent { digit: '5', end, volume: 10, duration }.to_bytes().unwrap().to_vec(),
        };
        assert_eq!(dedup.on_packet(&packet(1000, false, 160)), Some('5'));
        assert_eq!(dedup.on_packet(&packet(1000, false, 320)), None);
        assert_eq!(dedup.on_packet(&packet(1000, true, 480)), None);
        assert_eq!(dedup.on_packet(&packet(1000, true, 480)), None);
        assert_eq!(dedup.on_packet(&packet(9000, false, 160)), Some('5'));
    }
}
