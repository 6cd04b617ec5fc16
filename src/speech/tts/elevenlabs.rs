//! ElevenLabs stream-input TTS over WebSocket (`/v1/text-to-speech/{voice_id}/stream-input`).
//!
//! One socket per utterance (per `open`): after the end-of-stream message a single-context
//! socket takes no more text, and closing it is also the cheapest way to cancel on barge-in.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use media::SampleRate;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{debug, info, trace, warn};

use super::{TtsContext, TtsEvent, TtsInput, TtsOutputFormat, TtsProvider, TtsStream};
use crate::speech::SpeechError;

const PROVIDER: &str = "elevenlabs";
const INPUT_CAPACITY: usize = 32;
const EVENT_CAPACITY: usize = 64;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// ElevenLabs settings. `base_url` is `wss://api.elevenlabs.io` in production.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElevenLabsConfig {
    #[serde(default = "default_base_url")]
    pub base_url: String,
    #[serde(default)]
    pub api_key: Option<String>,
    /// Used when the call does not name a voice.
    #[serde(default = "default_voice_id")]
    pub voice_id: String,
    #[serde(default = "default_model_id")]
    pub model_id: String,
    #[serde(default = "default_stability")]
    pub stability: f32,
    #[serde(default = "default_similarity_boost")]
    pub similarity_boost: f32,
    /// Characters buffered before generation starts; the service default when unset.
    #[serde(default)]
    pub chunk_length_schedule: Option<Vec<u32>>,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long we wait for audio after forcing generation (flush or end of input).
    #[serde(default = "default_first_audio_timeout", with = "humantime_serde")]
    pub first_audio_timeout: Duration,
    /// The service closes an idle socket after 20 s; a single space keeps it open.
    #[serde(default = "default_keepalive_interval", with = "humantime_serde")]
    pub keepalive_interval: Duration,
}

fn default_base_url() -> String {
    "wss://api.elevenlabs.io".to_owned()
}
fn default_voice_id() -> String {
    // "Rachel", one of the default voices every account has.
    "21m00Tcm4TlvDq8ikWAM".to_owned()
}
fn default_model_id() -> String {
    "eleven_flash_v2_5".to_owned()
}
fn default_stability() -> f32 {
    0.5
}
fn default_similarity_boost() -> f32 {
    0.8
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_first_audio_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_keepalive_interval() -> Duration {
    Duration::from_secs(15)
}

impl Default for ElevenLabsConfig {
    fn default() -> Self {
        Self {
            base_url: default_base_url(),
            api_key: None,
            voice_id: default_voice_id(),
            model_id: default_model_id(),
            stability: default_stability(),
            similarity_boost: default_similarity_boost(),
            chunk_length_schedule: None,
            connect_timeout: default_connect_timeout(),
            first_audio_timeout: default_first_audio_timeout(),
            keepalive_interval: default_keepalive_interval(),
        }
    }
}

impl fmt::Debug for ElevenLabsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElevenLabsConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("voice_id", &self.voice_id)
            .field("model_id", &self.model_id)
            .field("stability", &self.stability)
            .field("similarity_boost", &self.similarity_boost)
            .field("chunk_length_schedule", &self.chunk_length_schedule)
            .field("connect_timeout", &self.connect_timeout)
            .field("first_audio_timeout", &self.first_audio_timeout)
            .field("keepalive_interval", &self.keepalive_interval)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Wire format (PROTOCOLS.md §C 2.1)

#[derive(Debug, Serialize, PartialEq)]
struct VoiceSettings {
    stability: f32,
    similarity_boost: f32,
    speed: f32,
    use_speaker_boost: bool,
}

#[derive(Debug, Serialize, PartialEq)]
struct GenerationConfig {
    chunk_length_schedule: Vec<u32>,
}

/// Client messages. All are JSON text frames keyed by `text`; the variant decides the rest.
#[derive(Debug, Serialize, PartialEq)]
#[serde(untagged)]
enum ClientMessage {
    /// First message: the text must be a single space.
    Init {
        text: &'static str,
        voice_settings: VoiceSettings,
        #[serde(skip_serializing_if = "Option::is_none")]
        generation_config: Option<GenerationConfig>,
    },
    Text { text: String, try_trigger_generation: bool },
    Flush { text: &'static str, flush: bool },
    /// End of stream: an empty text.
    Eos { text: &'static str },
    /// A single space keeps the socket alive without ending it.
    KeepAlive { text: &'static str },
}

impl ClientMessage {
    fn text(s: &str) -> Self {
        // Every chunk ends with a space so words are not glued across chunks.
        let mut text = s.to_owned();
        if !text.ends_with(' ') {
            text.push(' ');
        }
        ClientMessage::Text { text, try_trigger_generation: true }
    }
    const FLUSH: ClientMessage = ClientMessage::Flush { text: " ", flush: true };
    const EOS: ClientMessage = ClientMessage::Eos { text: "" };
    const KEEPALIVE: ClientMessage = ClientMessage::KeepAlive { text: " " };

    fn to_message(&self) -> Message {
        Message::text(serde_json::to_string(self).expect("client messages always serialize"))
    }
}

/// Server messages: an error carries `message`; everything else is an audio chunk, possibly
/// without audio, possibly the last one.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(untagged)]
enum ServerMessage {
    Error {
        message: String,
        #[serde(default)]
        error: Option<String>,
    },
    Chunk {
        #[serde(default)]
        audio: Option<String>,
        #[serde(default, rename = "isFinal")]
        is_final: Option<bool>,
    },
}

// ---------------------------------------------------------------------------------------------
// Provider

pub struct ElevenLabsTts {
    config: ElevenLabsConfig,
}

impl ElevenLabsTts {
    pub fn new(config: ElevenLabsConfig) -> Self {
        Self { config }
    }

    fn request(
        &self,
        voice: &str,
        format: TtsOutputFormat,
    ) -> Result<tungstenite::handshake::client::Request, SpeechError> {
        let key = match self.config.api_key.as_deref() {
            Some(k) if !k.is_empty() => k,
            _ => {
                return Err(SpeechError::NotConfigured {
                    provider: PROVIDER,
                    reason: "no api_key".to_owned(),
                });
            }
        };
        let bad = |reason: String| SpeechError::NotConfigured { provider: PROVIDER, reason };
        let mut url =
            reqwest::Url::parse(&self.config.base_url).map_err(|e| bad(format!("base_url: {e}")))?;
        url.path_segments_mut()
            .map_err(|_| bad("base_url cannot carry a path".to_owned()))?
            .pop_if_empty()
            .extend(["v1", "text-to-speech", voice, "stream-input"]);
        let output = match format {
            TtsOutputFormat::Mulaw8k => "ulaw_8000",
            TtsOutputFormat::Pcm16k => "pcm_16000",
        };
        url.query_pairs_mut()
            .append_pair("model_id", &self.config.model_id)
            .append_pair("output_format", output);
        let mut req =
            url.as_str().into_client_request().map_err(|e| bad(format!("base_url: {e}")))?;
        let mut value =
            HeaderValue::from_str(key).map_err(|_| bad("api_key is not a valid header".into()))?;
        value.set_sensitive(true);
        req.headers_mut().insert("xi-api-key", value);
        Ok(req)
    }

    async fn connect(&self, voice: &str, format: TtsOutputFormat) -> Result<Ws, SpeechError> {
        let req = self.request(voice, format)?;
        match tokio::time::timeout(self.config.connect_timeout, tokio_tungstenite::connect_async(req))
            .await
        {
            Ok(Ok((ws, _))) => Ok(ws),
            Ok(Err(e)) => Err(crate::speech::stt::deepgram::map_ws_error(PROVIDER, e)),
            Err(_) => Err(SpeechError::Timeout { provider: PROVIDER, what: "connect" }),
        }
    }
}

#[async_trait]
impl TtsProvider for ElevenLabsTts {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn open(&self, ctx: TtsContext) -> Result<TtsStream, SpeechError> {
        let format = ctx.preferred.unwrap_or(TtsOutputFormat::Pcm16k);
        let voice = ctx.voice.clone().unwrap_or_else(|| self.config.voice_id.clone());
        let mut ws = self.connect(&voice, format).await?;
        let init = ClientMessage::Init {
            text: " ",
            voice_settings: VoiceSettings {
                stability: self.config.stability,
                similarity_boost: self.config.similarity_boost,
                // The service accepts 0.7..=1.2.
                speed: ctx.speed.unwrap_or(1.0).clamp(0.7, 1.2),
                use_speaker_boost: false,
            },
            generation_config: self
                .config
                .chunk_length_schedule
                .clone()
                .map(|chunk_length_schedule| GenerationConfig { chunk_length_schedule }),
        };
        ws.send(init.to_message()).await.map_err(|e| SpeechError::Connect {
            provider: PROVIDER,
            reason: e.to_string(),
        })?;
        info!(call_id = %ctx.call_id, %voice, ?format, "elevenlabs stream open");
        let (input_tx, input_rx) = mpsc::channel(INPUT_CAPACITY);
        let (events_tx, events_rx) = mpsc::channel(EVENT_CAPACITY);
        let session = Session {
            call_id: ctx.call_id,
            format,
            ws,
            events: events_tx,
            first_audio_timeout: self.config.first_audio_timeout,
            keepalive_interval: self.config.keepalive_interval,
            last_send: Instant::now(),
            deadline: None,
            eos_sent: false,
            carry: None,
        };
        tokio::spawn(session.run(input_rx));
        Ok(TtsStream { input: input_tx, events: events_rx })
    }

    /// Opens and closes a socket: proves the key, the voice and the endpoint.
    async fn check(&self) -> Result<(), SpeechError> {
        let mut ws = self.connect(&self.config.voice_id, TtsOutputFormat::Pcm16k).await?;
        let _ = ws.close(None).await;
        Ok(())
    }
}

struct Session {
    call_id: String,
    format: TtsOutputFormat,
    ws: Ws,
    events: mpsc::Sender<TtsEvent>,
    first_audio_timeout: Duration,
    keepalive_interval: Duration,
    last_send: Instant,
    /// Set while generation was forced and we wait for the server to produce audio.
    deadline: Option<Instant>,
    eos_sent: bool,
    /// An odd trailing PCM byte waiting for its partner in the next chunk.
    carry: Option<u8>,
}

/// How the session ended; decides the last event.
enum End {
    Done,
    Cancelled,
    Failed(SpeechError),
}

impl Session {
    async fn run(mut self, mut input: mpsc::Receiver<TtsInput>) {
        let end = self.pump(&mut input).await;
        match end {
            End::Done => {
                let _ = self.events.send(TtsEvent::Done).await;
            }
            End::Cancelled => debug!(call_id = %self.call_id, "elevenlabs stream cancelled"),
            End::Failed(e) => {
                warn!(call_id = %self.call_id, error = %e, "elevenlabs stream failed");
                let _ = self.events.send(TtsEvent::Error(e)).await;
            }
        }
        let _ = self.ws.close(None).await;
    }

    async fn send(&mut self, msg: ClientMessage) -> Result<(), SpeechError> {
        self.last_send = Instant::now();
        self.ws
            .send(msg.to_message())
            .await
            .map_err(|e| SpeechError::Connect { provider: PROVIDER, reason: e.to_string() })
    }

    async fn pump(&mut self, input: &mut mpsc::Receiver<TtsInput>) -> End {
        loop {
            let keepalive_at = self.last_send + self.keepalive_interval;
            let deadline = self.deadline;
            tokio::select! {
                msg = self.ws.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(end) = self.on_text(text.as_str()).await {
                            return end;
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.as_ref().map(|f| f.code).unwrap_or(CloseCode::Normal);
                        if code != CloseCode::Normal {
                            let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                            return End::Failed(SpeechError::Protocol {
                                provider: PROVIDER,
                                reason: format!("socket closed with code {}: {reason}", u16::from(code)),
                            });
                        }
                        return if self.eos_sent { End::Done } else { End::Failed(SpeechError::Closed { provider: PROVIDER }) };
                    }
                    Some(Ok(other)) => trace!(?other, "elevenlabs non-text frame ignored"),
                    Some(Err(e)) => return End::Failed(SpeechError::Connect { provider: PROVIDER, reason: e.to_string() }),
                    None => return if self.eos_sent { End::Done } else { End::Failed(SpeechError::Closed { provider: PROVIDER }) },
                },
                inp = input.recv(), if !self.eos_sent => {
                    let res = match inp {
                        Some(TtsInput::Text(t)) if t.trim().is_empty() => Ok(()),
                        Some(TtsInput::Text(t)) => self.send(ClientMessage::text(&t)).await,
                        Some(TtsInput::Flush) => {
                            self.arm();
                            self.send(ClientMessage::FLUSH).await
                        }
                        Some(TtsInput::Finish) => {
                            self.eos_sent = true;
                            self.arm();
                            self.send(ClientMessage::EOS).await
                        }
                        Some(TtsInput::Cancel) | None => return End::Cancelled,
                    };
                    if let Err(e) = res {
                        return self.failure_reason(e).await;
                    }
                }
                _ = sleep_until(keepalive_at), if !self.eos_sent => {
                    if let Err(e) = self.send(ClientMessage::KEEPALIVE).await {
                        return self.failure_reason(e).await;
                    }
                }
                _ = sleep_until(deadline.unwrap_or(keepalive_at)), if deadline.is_some() => {
                    return End::Failed(SpeechError::Timeout { provider: PROVIDER, what: "audio" });
                }
            }
        }
    }

    /// A failed write usually means the server closed after saying why: read what it sent
    /// (briefly) so the error names the cause rather than the broken pipe.
    async fn failure_reason(&mut self, write_error: SpeechError) -> End {
        let drain = async {
            while let Some(Ok(msg)) = self.ws.next().await {
                match msg {
                    Message::Text(text) => {
                        if let Some(end @ End::Failed(_)) = self.on_text(text.as_str()).await {
                            return Some(end);
                        }
                    }
                    Message::Close(Some(frame)) if frame.code != CloseCode::Normal => {
                        return Some(End::Failed(SpeechError::Protocol {
                            provider: PROVIDER,
                            reason: format!("socket closed with code {}: {}", u16::from(frame.code), frame.reason),
                        }));
                    }
                    _ => {}
                }
            }
            None
        };
        match tokio::time::timeout(Duration::from_millis(200), drain).await {
            Ok(Some(end)) => end,
            _ => End::Failed(write_error),
        }
    }

    fn arm(&mut self) {
        if self.deadline.is_none() {
            self.deadline = Some(Instant::now() + self.first_audio_timeout);
        }
    }

    /// Handles one server message; `Some` ends the session.
    async fn on_text(&mut self, text: &str) -> Option<End> {
        let msg: ServerMessage = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                let snippet: String = text.chars().take(80).collect();
                return Some(End::Failed(SpeechError::Protocol {
                    provider: PROVIDER,
                    reason: format!("unreadable message ({e}): {snippet}"),
                }));
            }
        };
        match msg {
            ServerMessage::Error { message, error } => Some(End::Failed(SpeechError::Protocol {
                provider: PROVIDER,
                reason: match error {
                    Some(kind) => format!("{kind}: {message}"),
                    None => message,
                },
            })),
            ServerMessage::Chunk { audio: None, is_final: None } => Some(End::Failed(SpeechError::Protocol {
                provider: PROVIDER,
                reason: format!("message with neither audio nor isFinal: {}", text.chars().take(80).collect::<String>()),
            })),
            ServerMessage::Chunk { audio, is_final } => {
                if let Some(b64) = audio.filter(|a| !a.is_empty()) {
                    let bytes = match base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()) {
                        Ok(b) => b,
                        Err(e) => {
                            return Some(End::Failed(SpeechError::Protocol {
                                provider: PROVIDER,
                                reason: format!("audio is not base64: {e}"),
                            }));
                        }
                    };
                    // Audio is progress: wait afresh for the rest after end of input.
                    self.deadline = None;
                    if self.eos_sent {
                        self.arm();
                    }
                    trace!(bytes = bytes.len(), "elevenlabs audio");
                    if let Some(ev) = self.audio_event(bytes)
                        && self.events.send(ev).await.is_err()
                    {
                        return Some(End::Cancelled);
                    }
                }
                if is_final == Some(true) {
                    if self.eos_sent {
                        return Some(End::Done);
                    }
                    debug!(call_id = %self.call_id, "elevenlabs isFinal before end of input ignored");
                }
                None
            }
        }
    }

    fn audio_event(&mut self, bytes: Vec<u8>) -> Option<TtsEvent> {
        match self.format {
            TtsOutputFormat::Mulaw8k => Some(TtsEvent::Mulaw8k { bytes }),
            TtsOutputFormat::Pcm16k => {
                let samples = pcm_from_le_bytes(&mut self.carry, &bytes);
                (!samples.is_empty()).then_some(TtsEvent::Pcm { samples, rate: SampleRate::HZ_16000 })
            }
        }
    }
}

/// Decodes s16le bytes that may split a sample across chunks; `carry` holds the odd byte.
pub(crate) fn pcm_from_le_bytes(carry: &mut Option<u8>, bytes: &[u8]) -> Vec<i16> {
    let mut out = Vec::with_capacity(bytes.len().div_ceil(2));
    let mut rest = bytes;
    if let Some(lo) = carry.take() {
        match rest.split_first() {
            Some((hi, tail)) => {
                out.push(i16::from_le_bytes([lo, *hi]));
                rest = tail;
            }
            None => {
                *carry = Some(lo);
                return out;
            }
        }
    }
    let mut pairs = rest.chunks_exact(2);
    out.extend(pairs.by_ref().map(|p| i16::from_le_bytes([p[0], p[1]])));
    if let [odd] = pairs.remainder() {
        *carry = Some(*odd);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_match_the_wire_format() {
        let init = ClientMessage::Init {
            text: " ",
            voice_settings: VoiceSettings { stability: 0.5, similarity_boost: 0.75, speed: 1.0, use_speaker_boost: false },
            generation_config: None,
        };
        assert_eq!(
            serde_json::to_string(&init).unwrap(),
            r#"{"text":" ","voice_settings":{"stability":0.5,"similarity_boost":0.75,"speed":1.0,"use_speaker_boost":false}}"#
        );
        assert_eq!(
            serde_json::to_string(&ClientMessage::text("Hello")).unwrap(),
            r#"{"text":"Hello ","try_trigger_generation":true}"#
        );
        assert_eq!(serde_json::to_string(&ClientMessage::FLUSH).unwrap(), r#"{"text":" ","flush":true}"#);
        assert_eq!(serde_json::to_string(&ClientMessage::EOS).unwrap(), r#"{"text":""}"#);
    }

    #[test]
    fn server_messages_parse() {
        let m: ServerMessage =
            serde_json::from_str(r#"{"audio":"AAE=","isFinal":false,"normalizedAlignment":null,"alignment":{"chars":["H"]}}"#)
                .unwrap();
        assert_eq!(m, ServerMessage::Chunk { audio: Some("AAE=".into()), is_final: Some(false) });
        let m: ServerMessage = serde_json::from_str(r#"{"isFinal":true}"#).unwrap();
        assert_eq!(m, ServerMessage::Chunk { audio: None, is_final: Some(true) });
        let m: ServerMessage = serde_json::from_str(r#"{"message":"Invalid API key","error":"auth","code":1008}"#).unwrap();
        assert_eq!(m, ServerMessage::Error { message: "Invalid API key".into(), error: Some("auth".into()) });
    }

    #[test]
    fn pcm_decoding_carries_odd_bytes_across_chunks() {
        let samples: Vec<i16> = vec![1, -2, 300, -32768, 32767];
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut carry = None;
        let mut out = Vec::new();
        for chunk in [&bytes[0..3], &bytes[3..4], &bytes[4..4], &bytes[4..7], &bytes[7..]] {
            out.extend(pcm_from_le_bytes(&mut carry, chunk));
        }
        assert_eq!(out, samples);
        assert_eq!(carry, None);
    }

    #[test]
    fn debug_redacts_the_key() {
        let c = ElevenLabsConfig { api_key: Some("sekrit".into()), ..Default::default() };
        assert!(!format!("{c:?}").contains("sekrit"));
    }
}
