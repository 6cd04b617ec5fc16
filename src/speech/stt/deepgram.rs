//! Deepgram live streaming STT over WebSocket (`/v1/listen`).
//!
//! Audio goes out as binary frames, control messages (`KeepAlive`, `Finalize`, `CloseStream`)
//! as text frames. Results are assembled per the protocol: `is_final` pieces are concatenated
//! until `speech_final`, a `from_finalize` result or an `UtteranceEnd` closes the utterance.
//!
//! The audio not yet covered by an `is_final` result is kept in a bounded replay buffer: when
//! the socket drops mid-utterance the stream reconnects and sends that audio again, so the
//! caller's words are transcribed by the new socket instead of being lost.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{debug, info, trace, warn};

use super::{SttAudioFormat, SttContext, SttEvent, SttInput, SttProvider, SttStream};
use crate::speech::SpeechError;

mod results;
use results::{Assembler, Control, ServerMessage};

const PROVIDER: &str = "deepgram";
/// Input queue: five seconds of 20 ms frames, so a reconnect does not push back on the call.
const INPUT_CAPACITY: usize = 256;
const EVENT_CAPACITY: usize = 64;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Deepgram settings. `base_url` is `wss://api.deepgram.com` in production; tests point it at
/// a local fake.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeepgramConfig {
    #[serde(default = "default_base_url")]
    pub base_url: String,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default = "default_model")]
    pub model: String,
    /// Overrides the call's language when set.
    #[serde(default)]
    pub language: Option<String>,
    /// Silence (ms) after which Deepgram marks a result `speech_final`.
    #[serde(default = "default_endpointing_ms")]
    pub endpointing_ms: u32,
    #[serde(default = "default_utterance_end_ms")]
    pub utterance_end_ms: u32,
    #[serde(default = "default_true")]
    pub smart_format: bool,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long we wait for any answer after sending audio, a `Finalize` or a `CloseStream`.
    #[serde(default = "default_first_result_timeout", with = "humantime_serde")]
    pub first_result_timeout: Duration,
    /// Deepgram closes a socket that gets neither audio nor `KeepAlive` for 10 s.
    #[serde(default = "default_keepalive_interval", with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// Upper bound of audio kept for replay after a dropped socket.
    #[serde(default = "default_max_replay", with = "humantime_serde")]
    pub max_replay: Duration,
    /// Consecutive reconnect attempts before the stream gives up.
    #[serde(default = "default_max_reconnects")]
    pub max_reconnects: u32,
}

fn default_base_url() -> String {
    "wss://api.deepgram.com".to_owned()
}
fn default_model() -> String {
    "nova-3".to_owned()
}
fn default_endpointing_ms() -> u32 {
    300
}
fn default_utterance_end_ms() -> u32 {
    1000
}
fn default_true() -> bool {
    true
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_first_result_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_keepalive_interval() -> Duration {
    Duration::from_secs(4)
}
fn default_max_replay() -> Duration {
    Duration::from_secs(30)
}
fn default_max_reconnects() -> u32 {
    3
}

impl Default for DeepgramConfig {
    fn default() -> Self {
        Self {
            base_url: default_base_url(),
            api_key: None,
            model: default_model(),
            language: None,
            endpointing_ms: default_endpointing_ms(),
            utterance_end_ms: default_utterance_end_ms(),
            smart_format: true,
            connect_timeout: default_connect_timeout(),
            first_result_timeout: default_first_result_timeout(),
            keepalive_interval: default_keepalive_interval(),
            max_replay: default_max_replay(),
            max_reconnects: default_max_reconnects(),
        }
    }
}

impl fmt::Debug for DeepgramConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeepgramConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("language", &self.language)
            .field("endpointing_ms", &self.endpointing_ms)
            .field("utterance_end_ms", &self.utterance_end_ms)
            .field("smart_format", &self.smart_format)
            .field("connect_timeout", &self.connect_timeout)
            .field("first_result_timeout", &self.first_result_timeout)
            .field("keepalive_interval", &self.keepalive_interval)
            .field("max_replay", &self.max_replay)
            .field("max_reconnects", &self.max_reconnects)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Replay buffer

/// Audio sent but not yet covered by an `is_final` result, oldest first, bounded in bytes.
#[derive(Debug)]
pub(crate) struct ReplayBuffer {
    chunks: VecDeque<(u64, Vec<u8>)>,
    bytes: usize,
    max_bytes: usize,
    bytes_per_sample: usize,
    dropped_bytes: u64,
}

impl ReplayBuffer {
    pub(crate) fn new(max_bytes: usize, bytes_per_sample: usize) -> Self {
        Self { chunks: VecDeque::new(), bytes: 0, max_bytes, bytes_per_sample, dropped_bytes: 0 }
    }

    /// Keeps `bytes` starting at stream sample `at`; drops the oldest audio beyond the bound.
    pub(crate) fn push(&mut self, at: u64, bytes: Vec<u8>) {
        self.bytes += bytes.len();
        self.chunks.push_back((at, bytes));
        while self.bytes > self.max_bytes {
            let Some((_, old)) = self.chunks.pop_front() else { break };
            self.bytes -= old.len();
            self.dropped_bytes += old.len() as u64;
        }
    }

    /// Forgets chunks that end at or before stream sample `upto` (already transcribed).
    pub(crate) fn trim_until(&mut self, upto: u64) {
        while let Some((at, chunk)) = self.chunks.front() {
            let end = at + (chunk.len() / self.bytes_per_sample) as u64;
            if end > upto {
                break;
            }
            self.bytes -= chunk.len();
            self.chunks.pop_front();
        }
    }

    pub(crate) fn start(&self) -> Option<u64> {
        self.chunks.front().map(|(at, _)| *at)
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

// ---------------------------------------------------------------------------------------------
// Provider

pub struct DeepgramStt {
    config: DeepgramConfig,
}

impl DeepgramStt {
    pub fn new(config: DeepgramConfig) -> Self {
        Self { config }
    }

    fn api_key(&self) -> Result<&str, SpeechError> {
        match self.config.api_key.as_deref() {
            Some(k) if !k.is_empty() => Ok(k),
            _ => Err(SpeechError::NotConfigured {
                provider: PROVIDER,
                reason: "no api_key".to_owned(),
            }),
        }
    }

    fn request(
        &self,
        format: SttAudioFormat,
        ctx: &SttContext,
    ) -> Result<tungstenite::handshake::client::Request, SpeechError> {
        let key = self.api_key()?;
        let bad_url = |e: String| SpeechError::NotConfigured { provider: PROVIDER, reason: e };
        let mut url = reqwest::Url::parse(&self.config.base_url)
            .and_then(|u| u.join("/v1/listen"))
            .map_err(|e| bad_url(format!("base_url: {e}")))?;
        let (encoding, rate) = match format {
            SttAudioFormat::Mulaw8k => ("mulaw", "8000"),
            SttAudioFormat::Linear16k => ("linear16", "16000"),
        };
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("model", &self.config.model)
                .append_pair("encoding", encoding)
                .append_pair("sample_rate", rate)
                .append_pair("channels", "1")
                .append_pair("interim_results", "true")
                .append_pair("endpointing", &self.config.endpointing_ms.to_string())
                .append_pair("utterance_end_ms", &self.config.utterance_end_ms.to_string())
                .append_pair("vad_events", "true")
                .append_pair("smart_format", if self.config.smart_format { "true" } else { "false" });
            if let Some(lang) = self.config.language.as_ref().or(ctx.language.as_ref()) {
                q.append_pair("language", lang);
            }
            // nova-3 takes key terms; older models take keywords.
            let hint = if self.config.model.starts_with("nova-3") { "keyterm" } else { "keywords" };
            for phrase in &ctx.phrases {
                q.append_pair(hint, phrase);
            }
        }
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|e| bad_url(format!("base_url: {e}")))?;
        let mut auth = HeaderValue::from_str(&format!("Token {key}"))
            .map_err(|_| bad_url("api_key is not a valid header value".to_owned()))?;
        auth.set_sensitive(true);
        req.headers_mut().insert("authorization", auth);
        Ok(req)
    }

    async fn connect(
        &self,
        format: SttAudioFormat,
        ctx: &SttContext,
    ) -> Result<Ws, SpeechError> {
        let req = self.request(format, ctx)?;
        match tokio::time::timeout(self.config.connect_timeout, tokio_tungstenite::connect_async(req))
            .await
        {
            Ok(Ok((ws, _))) => Ok(ws),
            Ok(Err(e)) => Err(map_ws_error(PROVIDER, e)),
            Err(_) => Err(SpeechError::Timeout { provider: PROVIDER, what: "connect" }),
        }
    }
}

/// Maps a WebSocket handshake failure to the provider error the call can act on.
pub(crate) fn map_ws_error(provider: &'static str, e: tungstenite::Error) -> SpeechError {
    match e {
        tungstenite::Error::Http(resp) => match resp.status().as_u16() {
            s @ (401 | 403) => SpeechError::Unauthorized { provider, status: s },
            429 => SpeechError::RateLimited { provider },
            s => SpeechError::Connect { provider, reason: format!("handshake refused with HTTP {s}") },
        },
        other => SpeechError::Connect { provider, reason: other.to_string() },
    }
}

#[async_trait]
impl SttProvider for DeepgramStt {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn open(&self, ctx: SttContext) -> Result<SttStream, SpeechError> {
        let format = match ctx.native_format {
            Some(SttAudioFormat::Mulaw8k) => SttAudioFormat::Mulaw8k,
            _ => SttAudioFormat::Linear16k,
        };
        let ws = self.connect(format, &ctx).await?;
        info!(call_id = %ctx.call_id, ?format, "deepgram stream open");
        let (input_tx, input_rx) = mpsc::channel(INPUT_CAPACITY);
        let (events_tx, events_rx) = mpsc::channel(EVENT_CAPACITY);
        let provider = DeepgramStt { config: self.config.clone() };
        let (rate, bps) = match format {
            SttAudioFormat::Mulaw8k => (8_000u64, 1usize),
            SttAudioFormat::Linear16k => (16_000, 2),
        };
        let max_bytes = (self.config.max_replay.as_secs_f64() * (rate as usize * bps) as f64) as usize;
        let session = Session {
            provider,
            ctx,
            format,
            rate,
            ws,
            events: events_tx,
            assembler: Assembler::default(),
            replay: ReplayBuffer::new(max_bytes, bps),
            samples_sent: 0,
            origin: 0,
            last_send: Instant::now(),
            deadline: None,
            finalize_pending: false,
            closing: false,
            mismatched: 0,
        };
        tokio::spawn(session.run(input_rx));
        Ok(SttStream { input: input_tx, events: events_rx, format })
    }

    /// Opens and politely closes a socket: proves the key and the endpoint.
    async fn check(&self) -> Result<(), SpeechError> {
        let mut ws = self.connect(SttAudioFormat::Linear16k, &SttContext::default()).await?;
        let _ = ws.send(Control::CloseStream.to_message()).await;
        let _ = ws.close(None).await;
        Ok(())
    }
}

/// Why the socket loop stopped.
enum SocketEnd {
    /// The socket dropped or closed without being asked to.
    Dropped(String),
    /// The stream is finished (closed by us, or the call went away).
    Done,
}

struct Session {
    provider: DeepgramStt,
    ctx: SttContext,
    format: SttAudioFormat,
    rate: u64,
    ws: Ws,
    events: mpsc::Sender<SttEvent>,
    assembler: Assembler,
    replay: ReplayBuffer,
    /// Samples sent over the whole stream (all sockets).
    samples_sent: u64,
    /// Stream sample at which the current socket's audio starts.
    origin: u64,
    last_send: Instant,
    /// When we give up waiting for the server to answer.
    deadline: Option<Instant>,
    finalize_pending: bool,
    closing: bool,
    mismatched: u64,
}

impl Session {
    async fn run(mut self, mut input: mpsc::Receiver<SttInput>) {
        let mut attempts = 0u32;
        loop {
            match self.pump(&mut input, &mut attempts).await {
                SocketEnd::Done => break,
                SocketEnd::Dropped(why) => {
                    warn!(call_id = %self.ctx.call_id, %why, buffered = self.replay.bytes(), "deepgram socket dropped; reconnecting");
                    if let Err(e) = self.reconnect(&mut attempts).await {
                        warn!(call_id = %self.ctx.call_id, error = %e, "deepgram reconnect failed");
                        self.emit(SttEvent::Error(e)).await;
                        break;
                    }
                }
            }
        }
        if let Some(fin) = self.assembler.take_final() {
            self.emit(fin).await;
        }
        self.emit(SttEvent::Closed).await;
        let _ = self.ws.close(None).await;
        debug!(call_id = %self.ctx.call_id, "deepgram stream ended");
    }

    async fn emit(&self, ev: SttEvent) -> bool {
        self.events.send(ev).await.is_ok()
    }

    async fn send(&mut self, msg: Message) -> Result<(), String> {
        self.last_send = Instant::now();
        self.ws.send(msg).await.map_err(|e| e.to_string())
    }

    fn arm_deadline(&mut self) {
        if self.deadline.is_none() {
            self.deadline = Some(Instant::now() + self.provider.config.first_result_timeout);
        }
    }

    async fn pump(&mut self, input: &mut mpsc::Receiver<SttInput>, attempts: &mut u32) -> SocketEnd {
        loop {
            let keepalive_at = self.last_send + self.provider.config.keepalive_interval;
            let deadline = self.deadline;
            tokio::select! {
                msg = self.ws.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        *attempts = 0;
                        if !self.on_text(text.as_str()).await {
                            return SocketEnd::Done;
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        if self.closing {
                            return SocketEnd::Done;
                        }
                        return SocketEnd::Dropped(format!("closed by server: {frame:?}"));
                    }
                    Some(Ok(other)) => trace!(?other, "deepgram non-text frame ignored"),
                    Some(Err(e)) => return SocketEnd::Dropped(e.to_string()),
                    None => {
                        if self.closing {
                            return SocketEnd::Done;
                        }
                        return SocketEnd::Dropped("connection ended".to_owned());
                    }
                },
                inp = input.recv(), if !self.closing => {
                    let res = match inp {
                        Some(SttInput::Mulaw8k { bytes, .. }) => self.on_audio(SttAudioFormat::Mulaw8k, bytes).await,
                        Some(SttInput::Linear16k { samples, .. }) => {
                            let bytes = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
                            self.on_audio(SttAudioFormat::Linear16k, bytes).await
                        }
                        Some(SttInput::Finalize) => {
                            self.finalize_pending = true;
                            self.arm_deadline();
                            self.send(Control::Finalize.to_message()).await
                        }
                        Some(SttInput::Close) | None => {
                            self.closing = true;
                            self.deadline = Some(Instant::now() + self.provider.config.first_result_timeout);
                            self.send(Control::CloseStream.to_message()).await
                        }
                    };
                    if let Err(e) = res {
                        return SocketEnd::Dropped(e);
                    }
                }
                _ = sleep_until(keepalive_at) => {
                    trace!("deepgram keepalive");
                    if let Err(e) = self.send(Control::KeepAlive.to_message()).await {
                        return SocketEnd::Dropped(e);
                    }
                }
                _ = sleep_until(deadline.unwrap_or(keepalive_at)), if deadline.is_some() => {
                    self.deadline = None;
                    let what = if self.closing { "end of stream" } else { "first result" };
                    warn!(call_id = %self.ctx.call_id, what, "deepgram did not answer in time");
                    self.emit(SttEvent::Error(SpeechError::Timeout { provider: PROVIDER, what })).await;
                    if self.closing {
                        return SocketEnd::Done;
                    }
                }
            }
        }
    }

    async fn on_audio(&mut self, fmt: SttAudioFormat, bytes: Vec<u8>) -> Result<(), String> {
        if fmt != self.format {
            self.mismatched += 1;
            if self.mismatched == 1 {
                warn!(call_id = %self.ctx.call_id, got = ?fmt, want = ?self.format, "deepgram dropping audio in the wrong format");
            }
            return Ok(());
        }
        let bps = if fmt == SttAudioFormat::Mulaw8k { 1 } else { 2 };
        let at = self.samples_sent;
        self.samples_sent += (bytes.len() / bps) as u64;
        self.arm_deadline();
        let msg = Message::binary(bytes.clone());
        self.replay.push(at, bytes);
        self.send(msg).await
    }

    /// Returns false when the call no longer listens.
    async fn on_text(&mut self, text: &str) -> bool {
        let msg: ServerMessage = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                let snippet: String = text.chars().take(80).collect();
                warn!(call_id = %self.ctx.call_id, error = %e, "deepgram sent an unreadable message");
                let reason = format!("unreadable message ({e}): {snippet}");
                return self.emit(SttEvent::Error(SpeechError::Protocol { provider: PROVIDER, reason })).await;
            }
        };
        self.deadline = None;
        let offset = self.origin as f64 / self.rate as f64;
        match &msg {
            ServerMessage::Results(r) if r.is_final => {
                let end = ((offset + r.start + r.duration) * self.rate as f64).round() as u64;
                self.replay.trim_until(end);
                if r.from_finalize {
                    self.finalize_pending = false;
                }
            }
            ServerMessage::Metadata(m) => debug!(call_id = %self.ctx.call_id, request_id = ?m.request_id, "deepgram metadata"),
            ServerMessage::Unknown => debug!(call_id = %self.ctx.call_id, %text, "deepgram message of unknown type ignored"),
            ServerMessage::Error(e) => warn!(call_id = %self.ctx.call_id, ?e, "deepgram reported an error"),
            _ => {}
        }
        for ev in self.assembler.on_message(&msg, offset) {
            if !self.emit(ev).await {
                return false;
            }
        }
        true
    }

    /// Opens a new socket and sends the audio not yet covered by a final result.
    async fn reconnect(&mut self, attempts: &mut u32) -> Result<(), SpeechError> {
        loop {
            *attempts += 1;
            if *attempts > self.provider.config.max_reconnects {
                return Err(SpeechError::Connect {
                    provider: PROVIDER,
                    reason: format!("gave up after {} reconnect attempts", *attempts - 1),
                });
            }
            sleep(Duration::from_millis(50 << (*attempts - 1).min(5))).await;
            match self.provider.connect(self.format, &self.ctx).await {
                Ok(ws) => {
                    self.ws = ws;
                    break;
                }
                Err(e @ SpeechError::Unauthorized { .. }) => return Err(e),
                Err(e) => warn!(call_id = %self.ctx.call_id, error = %e, attempt = *attempts, "deepgram reconnect attempt failed"),
            }
        }
        self.origin = self.replay.start().unwrap_or(self.samples_sent);
        if self.replay.dropped_bytes > 0 {
            warn!(call_id = %self.ctx.call_id, dropped_bytes = self.replay.dropped_bytes, "deepgram replay buffer overflowed; oldest audio not replayed");
        }
        let chunks: Vec<Vec<u8>> = self.replay.chunks.iter().map(|(_, c)| c.clone()).collect();
        info!(call_id = %self.ctx.call_id, chunks = chunks.len(), "deepgram reconnected; replaying buffered audio");
        let fail = |e: tungstenite::Error| SpeechError::Connect { provider: PROVIDER, reason: e.to_string() };
        for chunk in chunks {
            self.ws.send(Message::binary(chunk)).await.map_err(fail)?;
        }
        if self.finalize_pending {
            self.ws.send(Control::Finalize.to_message()).await.map_err(fail)?;
        }
        if self.closing {
            self.ws.send(Control::CloseStream.to_message()).await.map_err(fail)?;
        }
        self.last_send = Instant::now();
        self.deadline = None;
        if !self.replay.chunks.is_empty() || self.closing || self.finalize_pending {
            self.arm_deadline();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_buffer_is_bounded_and_trims_transcribed_audio() {
        let mut b = ReplayBuffer::new(400, 1);
        for i in 0..5u64 {
            b.push(i * 160, vec![0; 160]);
        }
        // 800 bytes pushed, bound 400: only the newest two chunks remain.
        assert_eq!(b.bytes(), 320);
        assert_eq!(b.start(), Some(480));
        b.trim_until(640);
        assert_eq!(b.start(), Some(640));
        b.trim_until(700);
        assert_eq!(b.start(), Some(640), "a partly transcribed chunk stays");
    }

    #[test]
    fn debug_redacts_the_key() {
        let c = DeepgramConfig { api_key: Some("sekrit".into()), ..Default::default() };
        let s = format!("{c:?}");
        assert!(!s.contains("sekrit"), "{s}");
        assert!(s.contains("redacted"));
    }

    #[test]
    fn config_reads_humantime_and_rejects_unknown_fields() {
        let c: DeepgramConfig = serde_json::from_str(
            r#"{"api_key":"k","connect_timeout":"2s","keepalive_interval":"3s 500ms"}"#,
        )
        .unwrap();
        assert_eq!(c.connect_timeout, Duration::from_secs(2));
        assert_eq!(c.keepalive_interval, Duration::from_millis(3500));
        assert!(serde_json::from_str::<DeepgramConfig>(r#"{"apikey":"k"}"#).is_err());
    }
}
