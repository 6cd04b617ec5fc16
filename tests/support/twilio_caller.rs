//! The Twilio side of a bidirectional Media Stream (`<Connect><Stream>`), for driving the
//! server's stream endpoint in tests like a real phone call.
//!
//! What it does, following Twilio's documented behaviour (PROTOCOLS.md §A):
//! - sends `connected`, then `start` (with the sids and custom parameters);
//! - sends 20 ms `media` frames of 160 μ-law bytes, paced by a drift-free clock (frame `n` is
//!   due at `t0 + (n + 1) * 20 ms`; on each wake-up every frame due so far is sent). Speech
//!   queued with [`TwilioCaller::say`] is sent first; otherwise silence (`0xFF`), because a
//!   phone line never goes quiet on the wire. `sequenceNumber`, `chunk` and `timestamp` are
//!   strings, as Twilio sends them;
//! - sends `dtmf` and, on hang-up, `stop` followed by a close;
//! - emulates Twilio's playout buffer: audio the server sends "plays" in real time from when
//!   it arrives (or when the audio before it ends); a `mark` is echoed when the audio sent
//!   before it has played, at once if nothing is buffered, and at once on `clear` (which also
//!   discards the unplayed audio);
//! - checks what the server sends the way Twilio does (text frames only, known events, no
//!   missing or extra fields, the right `streamSid`, valid base64) and records violations
//!   instead of failing, so a test can assert there were none;
//! - records everything received with arrival times, for assertions.
//!
//! All timing uses `tokio::time`, so tests with a paused clock work too.
//!
//! ```ignore
//! let mut caller = TwilioCaller::connect(CallerConfig::new(url)).await?;
//! caller.say(support::speech_ulaw("I would like to talk to sales")?).await;
//! let rec = caller.wait_until(Duration::from_secs(5), |r| !r.marks_received().is_empty()).await?;
//! let rec = caller.hangup().await?;
//! assert!(rec.violations.is_empty(), "{:?}", rec.violations);
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout_at};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// One inbound frame: 20 ms.
pub const FRAME: Duration = Duration::from_millis(20);
/// 20 ms of 8 kHz μ-law.
pub const FRAME_BYTES: usize = 160;
/// μ-law for a zero sample.
pub const ULAW_SILENCE: u8 = 0xFF;
/// μ-law plays at 8000 bytes per second: 125 µs per byte.
const MICROS_PER_BYTE: u64 = 125;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Who is calling and how. [`CallerConfig::new`] fills in plausible sids.
#[derive(Debug, Clone)]
pub struct CallerConfig {
    /// `ws://…` URL of the server's stream endpoint (as it would appear in `<Stream url>`).
    pub url: String,
    pub account_sid: String,
    pub call_sid: String,
    pub stream_sid: String,
    /// Sent in `start.customParameters`, as `<Parameter>`s in the TwiML would be.
    pub custom_parameters: Vec<(String, String)>,
    /// Send silence frames while there is no speech queued (what Twilio does). Off, the
    /// caller sends frames only while speech is queued.
    pub send_silence: bool,
}

impl CallerConfig {
    pub fn new(url: impl Into<String>) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        Self {
            url: url.into(),
            account_sid: format!("AC{:032x}", 0xac),
            call_sid: format!("CA{pid:016x}{n:016x}"),
            stream_sid: format!("MZ{pid:016x}{n:016x}"),
            custom_parameters: Vec::new(),
            send_silence: true,
        }
    }

    pub fn parameter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.custom_parameters.push((name.into(), value.into()));
        self
    }
}

/// Something the server sent, with its arrival time since the stream started.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Media { at: Duration, bytes: Vec<u8> },
    Mark { at: Duration, name: String },
    Clear { at: Duration },
}

/// A mark the caller sent back.
#[derive(Debug, Clone, PartialEq)]
pub struct EchoedMark {
    pub name: String,
    pub at: Duration,
    /// Echoed because of a `clear`, i.e. the audio before it was (partly) not played.
    pub cleared: bool,
}

/// Everything observed on one stream.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    pub received: Vec<Received>,
    pub echoed_marks: Vec<EchoedMark>,
    /// What Twilio would have flagged (31950/31951), in the order seen. Should stay empty.
    pub violations: Vec<String>,
    /// Media frames sent (speech and silence).
    pub frames_sent: u64,
    /// Of those, frames carrying queued speech.
    pub speech_frames_sent: u64,
    /// Speech bytes queued with `say` (counted when `say` is called, so a wait right after
    /// it cannot see an empty queue that is merely not updated yet).
    pub speech_queued: usize,
    /// Speech bytes sent so far.
    pub speech_sent: usize,
    pub dtmf_sent: Vec<char>,
    /// Server audio dropped by `clear` before it played.
    pub discarded_bytes: usize,
    /// Server audio not discarded by `clear`. Once the stream has ended, exactly the audio
    /// that played; while it runs, it also counts audio still buffered.
    pub played_bytes: usize,
    pub stop_sent: bool,
    /// The server closed the socket (as opposed to the caller hanging up).
    pub closed_by_server: bool,
    /// The stream is over (either side).
    pub ended: bool,
}

impl Recording {
    /// Queued speech bytes not sent yet.
    pub fn speech_pending(&self) -> usize {
        self.speech_queued - self.speech_sent
    }

    /// All audio the server sent, concatenated.
    pub fn received_audio(&self) -> Vec<u8> {
        self.received
            .iter()
            .filter_map(|r| match r {
                Received::Media { bytes, .. } => Some(bytes.as_slice()),
                _ => None,
            })
            .flatten()
            .copied()
            .collect()
    }

    pub fn first_media_at(&self) -> Option<Duration> {
        self.received.iter().find_map(|r| match r {
            Received::Media { at, .. } => Some(*at),
            _ => None,
        })
    }

    /// Names of marks the server sent, in order.
    pub fn marks_received(&self) -> Vec<&str> {
        self.received
            .iter()
            .filter_map(|r| match r {
                Received::Mark { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    pub fn clears_received(&self) -> usize {
        self.received
            .iter()
            .filter(|r| matches!(r, Received::Clear { .. }))
            .count()
    }
}

enum Command {
    Say(Vec<u8>),
    Dtmf(char),
    /// Send `stop`, close, and wait for the close reply.
    Hangup,
    /// Drop the connection without `stop` (a network failure).
    Drop,
    /// Answer once the socket has flushed everything sent so far.
    Sync(oneshot::Sender<()>),
}

/// A running call. Dropping it aborts the stream without `stop`.
pub struct TwilioCaller {
    config: CallerConfig,
    commands: mpsc::Sender<Command>,
    recording: Arc<Mutex<Recording>>,
    changed: watch::Receiver<u64>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TwilioCaller {
    /// Opens the WebSocket and sends `connected` and `start`; media starts flowing at once.
    pub async fn connect(config: CallerConfig) -> anyhow::Result<Self> {
        let (ws, _response) = connect_async(config.url.as_str())
            .await
            .with_context(|| format!("connecting to {}", config.url))?;
        let (mut sink, stream) = ws.split();
        let connected = json!({"event": "connected", "protocol": "Call", "version": "1.0.0"});
        let params: Map<String, Value> = config
            .custom_parameters
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let start = json!({
            "event": "start",
            "sequenceNumber": "1",
            "start": {
                "accountSid": config.account_sid,
                "streamSid": config.stream_sid,
                "callSid": config.call_sid,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": params,
            },
            "streamSid": config.stream_sid,
        });
        sink.send(Message::text(connected.to_string())).await?;
        sink.send(Message::text(start.to_string())).await?;

        let recording = Arc::new(Mutex::new(Recording::default()));
        let (changed_tx, changed) = watch::channel(0u64);
        let (commands, command_rx) = mpsc::channel(64);
        let run = Run {
            config: config.clone(),
            sink,
            stream,
            commands: command_rx,
            recording: recording.clone(),
            changed: changed_tx,
            t0: Instant::now(),
            next_seq: 2,
            next_slot: 0,
            chunk: 0,
            speech: VecDeque::new(),
            playout_end: None,
            pending_marks: VecDeque::new(),
        };
        let task = tokio::spawn(run.run());
        Ok(Self {
            config,
            commands,
            recording,
            changed,
            task: Some(task),
        })
    }

    pub fn config(&self) -> &CallerConfig {
        &self.config
    }

    /// Queues μ-law speech after anything already queued; it goes out in paced 20 ms frames
    /// (the last one padded with silence).
    pub async fn say(&self, ulaw: Vec<u8>) {
        let len = ulaw.len();
        if self.commands.send(Command::Say(ulaw)).await.is_ok() {
            lock(&self.recording).speech_queued += len;
        }
    }

    /// Sends a `dtmf` event now (between media frames, as Twilio does).
    pub async fn dtmf(&self, digit: char) {
        let _ = self.commands.send(Command::Dtmf(digit)).await;
    }

    /// A copy of what has been recorded so far.
    pub fn recording(&self) -> Recording {
        lock(&self.recording).clone()
    }

    /// Waits until `done` holds for the recording (checked on every change), or fails after
    /// `timeout` with the recording summarised in the error.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&Recording) -> bool,
    ) -> anyhow::Result<Recording> {
        let deadline = Instant::now() + timeout;
        let mut changed = self.changed.clone();
        loop {
            {
                let rec = lock(&self.recording);
                if done(&rec) {
                    return Ok(rec.clone());
                }
                if rec.ended {
                    bail!("stream ended before the condition held: {}", summary(&rec));
                }
            }
            match timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    let rec = lock(&self.recording);
                    if done(&rec) {
                        return Ok(rec.clone());
                    }
                    bail!(
                        "caller task ended before the condition held: {}",
                        summary(&rec)
                    );
                }
                Err(_) => bail!(
                    "timed out after {timeout:?}: {}",
                    summary(&lock(&self.recording))
                ),
            }
        }
    }

    /// Waits until all queued speech has been sent.
    pub async fn wait_speech_sent(&self, timeout: Duration) -> anyhow::Result<Recording> {
        self.wait_until(timeout, |r| r.speech_pending() == 0).await
    }

    /// Sends `stop`, closes the socket and returns the final recording.
    pub async fn hangup(mut self) -> anyhow::Result<Recording> {
        let _ = self.commands.send(Command::Hangup).await;
        self.join().await
    }

    /// Drops the TCP connection without `stop` or a close handshake.
    pub async fn drop_connection(mut self) -> anyhow::Result<Recording> {
        let _ = self.commands.send(Command::Drop).await;
        self.join().await
    }

    /// Waits for the server to end the stream (close the socket) and returns the recording.
    pub async fn wait_closed(mut self, timeout: Duration) -> anyhow::Result<Recording> {
        let task = self.task.as_mut().expect("the task is only taken by join");
        tokio::time::timeout(timeout, task)
            .await
            .map_err(|_| anyhow::anyhow!("server did not close within {timeout:?}"))?
            .context("caller task panicked")??;
        self.task = None;
        Ok(self.recording())
    }

    /// Returns once everything sent before this call has been written to the socket.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Sync(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    async fn join(&mut self) -> anyhow::Result<Recording> {
        if let Some(task) = self.task.take() {
            task.await.context("caller task panicked")??;
        }
        Ok(self.recording())
    }
}

impl Drop for TwilioCaller {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn lock(m: &Mutex<Recording>) -> MutexGuard<'_, Recording> {
    // A panic while holding the lock is already a failed test; keep the data for its report.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn summary(r: &Recording) -> String {
    format!(
        "{} frames sent, {} bytes / {} marks / {} clears received, {} marks echoed, ended {}, violations {:?}",
        r.frames_sent,
        r.received_audio().len(),
        r.marks_received().len(),
        r.clears_received(),
        r.echoed_marks.len(),
        r.ended,
        r.violations
    )
}

/// The socket task's state: it owns the connection, the frame clock and the playout emulation.
struct Run {
    config: CallerConfig,
    sink: SplitSink<Ws, Message>,
    stream: SplitStream<Ws>,
    commands: mpsc::Receiver<Command>,
    recording: Arc<Mutex<Recording>>,
    changed: watch::Sender<u64>,
    t0: Instant,
    next_seq: u64,
    /// Next 20 ms slot of the frame clock (slot `n` is due at `t0 + (n + 1) * FRAME`).
    next_slot: u64,
    chunk: u64,
    speech: VecDeque<u8>,
    /// When the server audio received so far will have finished playing.
    playout_end: Option<Instant>,
    /// Marks waiting for the audio before them to play: (due, name).
    pending_marks: VecDeque<(Instant, String)>,
}

impl Run {
    async fn run(mut self) -> anyhow::Result<()> {
        let result = self.event_loop().await;
        self.record(|r| {
            r.ended = true;
        });
        result
    }

    async fn event_loop(&mut self) -> anyhow::Result<()> {
        loop {
            let next_frame = self.t0 + FRAME * u32::try_from(self.next_slot + 1)?;
            let next_mark = self.pending_marks.front().map(|(due, _)| *due);
            tokio::select! {
                biased;
                msg = self.stream.next() => match msg {
                    Some(Ok(msg)) => {
                        if !self.on_message(msg).await? {
                            self.record(|r| r.closed_by_server = true);
                            return Ok(());
                        }
                    }
                    Some(Err(e)) => {
                        self.record(|r| r.closed_by_server = true);
                        bail!("websocket error: {e}");
                    }
                    None => {
                        self.record(|r| r.closed_by_server = true);
                        return Ok(());
                    }
                },
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Say(audio)) => self.speech.extend(audio),
                    Some(Command::Dtmf(digit)) => self.send_dtmf(digit).await?,
                    Some(Command::Sync(done)) => {
                        self.sink.flush().await?;
                        let _ = done.send(());
                    }
                    Some(Command::Hangup) | None => return self.hangup().await,
                    Some(Command::Drop) => return Ok(()),
                },
                _ = sleep_until(next_mark.unwrap_or(next_frame)), if next_mark.is_some_and(|m| m < next_frame) => {
                    self.echo_due_marks(false).await?;
                }
                _ = sleep_until(next_frame) => {
                    self.send_due_frames().await?;
                    self.echo_due_marks(false).await?;
                }
            }
        }
    }

    fn record(&self, f: impl FnOnce(&mut Recording)) {
        f(&mut lock(&self.recording));
        self.changed.send_modify(|v| *v += 1);
    }

    fn seq(&mut self) -> String {
        let s = self.next_seq.to_string();
        self.next_seq += 1;
        s
    }

    /// Sends every frame due by now: catches up after a stall instead of drifting.
    async fn send_due_frames(&mut self) -> anyhow::Result<()> {
        let elapsed = Instant::now().saturating_duration_since(self.t0);
        let due_slots = (elapsed.as_micros() / FRAME.as_micros()) as u64;
        let mut sent = 0u64;
        let mut speech_sent = 0u64;
        let mut speech_bytes = 0usize;
        while self.next_slot < due_slots {
            let slot = self.next_slot;
            self.next_slot += 1;
            let is_speech = !self.speech.is_empty();
            if !is_speech && !self.config.send_silence {
                continue;
            }
            let take = self.speech.len().min(FRAME_BYTES);
            speech_bytes += take;
            let mut frame: Vec<u8> = self.speech.drain(..take).collect();
            frame.resize(FRAME_BYTES, ULAW_SILENCE);
            self.chunk += 1;
            let msg = json!({
                "event": "media",
                "sequenceNumber": self.seq(),
                "media": {
                    "track": "inbound",
                    "chunk": self.chunk.to_string(),
                    "timestamp": (slot * FRAME.as_millis() as u64).to_string(),
                    "payload": BASE64.encode(&frame),
                },
                "streamSid": self.config.stream_sid,
            });
            self.sink.feed(Message::text(msg.to_string())).await?;
            sent += 1;
            speech_sent += u64::from(is_speech);
        }
        if sent > 0 {
            self.sink.flush().await?;
            self.record(|r| {
                r.frames_sent += sent;
                r.speech_frames_sent += speech_sent;
                r.speech_sent += speech_bytes;
            });
        }
        Ok(())
    }

    async fn send_dtmf(&mut self, digit: char) -> anyhow::Result<()> {
        let msg = json!({
            "event": "dtmf",
            "streamSid": self.config.stream_sid,
            "sequenceNumber": self.seq(),
            "dtmf": {"track": "inbound_track", "digit": digit.to_string()},
        });
        self.sink.send(Message::text(msg.to_string())).await?;
        self.record(|r| r.dtmf_sent.push(digit));
        Ok(())
    }

    async fn hangup(&mut self) -> anyhow::Result<()> {
        let msg = json!({
            "event": "stop",
            "sequenceNumber": self.seq(),
            "stop": {"accountSid": self.config.account_sid, "callSid": self.config.call_sid},
            "streamSid": self.config.stream_sid,
        });
        self.sink.send(Message::text(msg.to_string())).await?;
        self.record(|r| r.stop_sent = true);
        let _ = self.sink.send(Message::Close(None)).await;
        // Read until the server's close reply (or give up: the stop is what matters).
        let deadline = Instant::now() + Duration::from_secs(2);
        while let Ok(Some(Ok(msg))) = timeout_at(deadline, self.stream.next()).await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
        self.settle_playout();
        Ok(())
    }

    /// Account for the audio that played up to now (the rest of the buffer never will).
    fn settle_playout(&mut self) {
        let now = Instant::now();
        if let Some(end) = self.playout_end.take() {
            let unplayed = end.saturating_duration_since(now);
            let bytes = (unplayed.as_micros() / u128::from(MICROS_PER_BYTE)) as usize;
            self.record(|r| r.played_bytes = r.played_bytes.saturating_sub(bytes));
        }
    }

    /// Handles one frame from the server; `Ok(false)` when the server closed the stream.
    async fn on_message(&mut self, msg: Message) -> anyhow::Result<bool> {
        let text = match msg {
            Message::Text(t) => t,
            Message::Binary(_) => {
                self.violation("31950: binary frame (Twilio accepts text frames only)");
                return Ok(true);
            }
            Message::Close(_) => {
                self.settle_playout();
                return Ok(false);
            }
            // Pings are answered by tungstenite; pongs and raw frames carry nothing.
            _ => return Ok(true),
        };
        let at = Instant::now().saturating_duration_since(self.t0);
        let value: Value = match serde_json::from_str(text.as_str()) {
            Ok(Value::Object(map)) => Value::Object(map),
            _ => {
                self.violation(format!("31951: not a JSON object: {:.80}", text.as_str()));
                return Ok(true);
            }
        };
        let event = value.get("event").and_then(Value::as_str).unwrap_or("");
        match event {
            "media" => {
                if !self.check_shape(
                    &value,
                    &["event", "streamSid", "media"],
                    "media",
                    &["payload"],
                ) {
                    return Ok(true);
                }
                let payload = value["media"]["payload"].as_str().unwrap_or("");
                match BASE64.decode(payload) {
                    Ok(bytes) => self.on_media(at, bytes),
                    Err(e) => self.violation(format!("31951: media payload is not base64: {e}")),
                }
            }
            "mark" => {
                if !self.check_shape(&value, &["event", "streamSid", "mark"], "mark", &["name"]) {
                    return Ok(true);
                }
                let Some(name) = value["mark"]["name"].as_str() else {
                    self.violation("31951: mark.name is not a string");
                    return Ok(true);
                };
                self.on_mark(at, name.to_owned()).await?;
            }
            "clear" => {
                if !self.check_shape(&value, &["event", "streamSid"], "", &[]) {
                    return Ok(true);
                }
                self.on_clear(at).await?;
            }
            other => self.violation(format!("31951: unknown event {other:?}")),
        }
        Ok(true)
    }

    /// Exactly the documented keys, the right streamSid, and (if `inner` is set) exactly the
    /// documented keys in that nested object. Records a violation and returns false otherwise.
    fn check_shape(&mut self, v: &Value, keys: &[&str], inner: &str, inner_keys: &[&str]) -> bool {
        let event = v["event"].as_str().unwrap_or("").to_owned();
        let same_keys = |obj: &Value, want: &[&str]| {
            obj.as_object()
                .is_some_and(|m| m.len() == want.len() && want.iter().all(|k| m.contains_key(*k)))
        };
        if !same_keys(v, keys) {
            self.violation(format!(
                "31951: {event}: fields {:?}, want {keys:?}",
                key_list(v)
            ));
            return false;
        }
        if !inner.is_empty() && !same_keys(&v[inner], inner_keys) {
            self.violation(format!(
                "31951: {event}.{inner}: fields {:?}, want {inner_keys:?}",
                key_list(&v[inner])
            ));
            return false;
        }
        if v["streamSid"].as_str() != Some(self.config.stream_sid.as_str()) {
            self.violation(format!(
                "31951: {event}: wrong streamSid {}",
                v["streamSid"]
            ));
            return false;
        }
        true
    }

    fn violation(&mut self, what: impl Into<String>) {
        let what = what.into();
        self.record(|r| r.violations.push(what));
    }

    fn on_media(&mut self, at: Duration, bytes: Vec<u8>) {
        let now = Instant::now();
        let start = self.playout_end.map_or(now, |end| end.max(now));
        self.playout_end =
            Some(start + Duration::from_micros(bytes.len() as u64 * MICROS_PER_BYTE));
        let len = bytes.len();
        self.record(|r| {
            r.played_bytes += len;
            r.received.push(Received::Media { at, bytes });
        });
    }

    async fn on_mark(&mut self, at: Duration, name: String) -> anyhow::Result<()> {
        let now = Instant::now();
        let due = self.playout_end.map_or(now, |end| end.max(now));
        self.record(|r| {
            r.received.push(Received::Mark {
                at,
                name: name.clone(),
            })
        });
        self.pending_marks.push_back((due, name));
        // "…or if there is no audio buffered": then the echo is immediate.
        self.echo_due_marks(false).await
    }

    async fn on_clear(&mut self, at: Duration) -> anyhow::Result<()> {
        let now = Instant::now();
        let unplayed = self
            .playout_end
            .map_or(Duration::ZERO, |end| end.saturating_duration_since(now));
        let discarded = (unplayed.as_micros() / u128::from(MICROS_PER_BYTE)) as usize;
        self.playout_end = None;
        self.record(|r| {
            r.received.push(Received::Clear { at });
            r.discarded_bytes += discarded;
            r.played_bytes = r.played_bytes.saturating_sub(discarded);
        });
        // Twilio sends back every outstanding mark at once.
        self.echo_due_marks(true).await
    }

    /// Echoes marks whose audio has played (all of them when `cleared`), in order.
    async fn echo_due_marks(&mut self, cleared: bool) -> anyhow::Result<()> {
        let now = Instant::now();
        while let Some((due, _)) = self.pending_marks.front() {
            if !cleared && *due > now {
                break;
            }
            let (due, name) = self.pending_marks.pop_front().expect("front() was Some");
            let msg = json!({
                "event": "mark",
                "sequenceNumber": self.seq(),
                "streamSid": self.config.stream_sid,
                "mark": {"name": name},
            });
            self.sink.send(Message::text(msg.to_string())).await?;
            let at = now.saturating_duration_since(self.t0);
            // A mark whose audio had fully played before the clear was not cut short.
            let cut = cleared && due > now;
            self.record(|r| {
                r.echoed_marks.push(EchoedMark {
                    name,
                    at,
                    cleared: cut,
                })
            });
        }
        Ok(())
    }
}

fn key_list(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}
