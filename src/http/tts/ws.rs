//! `GET /ws/tts`: streaming synthesis over a WebSocket.
//!
//! Query: `provider`, `tier`, `voice`, `speed`, `format` (`pcm_16000` by default; also
//! `mulaw_8000`, `wav`, `opus`), `lead_ms`, and `api_key` for browsers (else
//! `Authorization: Bearer`).
//!
//! Pacing: audio is sent at most `lead_ms` (default 300) ahead of real time, counted from the
//! utterance's first chunk, so a `cancel` leaves at most that much audio in flight; a client
//! that wants audio as fast as it is synthesized sets a large `lead_ms`.
//! The socket holds one of its key's `max_concurrent_per_key` slots while open.
//!
//! Client -> server, JSON text frames:
//! `{"type":"text","text":"..."}` (starts an utterance if none runs), `{"type":"flush"}`
//! (speak what was sent so far), `{"type":"finish"}` (end of the utterance's text),
//! `{"type":"cancel"}` (stop now).
//!
//! Server -> client: JSON events and binary audio. Each binary frame is announced by a
//! `chunk` event (its sequence number, byte count, start and duration) sent just before it.
//! `started` opens an utterance, `done` (after `finish`) or `cancelled` closes it; `error`
//! reports a failed utterance or a bad message. The binary frames of one utterance,
//! concatenated, are one complete stream in the chosen format (a WAV header or Ogg Opus
//! headers first). Once the server reads `cancel`, no further audio frame of that utterance is
//! sent: the provider's stream is dropped before the next event is read. The socket then takes
//! a new utterance.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span};

use super::{Audio, AudioEncoder, AudioFormat, Permit, TtsApiError, TtsCaller, open_stream, parse_provider};
use crate::app::AppState;
use crate::speech::SpeechError;
use crate::speech::catalog::{ProviderId, provider_name};
use crate::speech::tts::{TtsEvent, TtsInput, TtsStream};

/// Largest client message: the text limit plus JSON framing, checked per utterance anyway.
const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// How far audio may run ahead of real time unless the client says otherwise.
const DEFAULT_LEAD_MS: u64 = 300;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsParams {
    pub provider: Option<String>,
    pub tier: Option<String>,
    pub voice: Option<String>,
    pub speed: Option<f32>,
    pub format: Option<AudioFormat>,
    /// How far ahead of real time audio may be sent (default 300 ms).
    pub lead_ms: Option<u64>,
    /// Read by the authentication extractor.
    pub api_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    Text { text: String },
    Flush,
    Finish,
    Cancel,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    Started {
        utterance: u64,
        provider: ProviderId,
        format: AudioFormat,
        /// Output rate; for `wav` it is the provider's and known from the first chunk on.
        sample_rate: Option<u32>,
    },
    /// Describes the binary frame that follows.
    Chunk { utterance: u64, seq: u64, bytes: usize, start_ms: u64, duration_ms: u64 },
    Done { utterance: u64, duration_ms: u64 },
    Cancelled { utterance: u64 },
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        utterance: Option<u64>,
        code: String,
        message: String,
    },
}

pub async fn tts_socket(
    State(state): State<AppState>,
    caller: TtsCaller,
    Query(params): Query<WsParams>,
    ws: WebSocketUpgrade,
) -> Result<Response, TtsApiError> {
    let explicit = params.provider.as_deref().map(parse_provider).transpose()?;
    let provider = state.tts_api.resolve(&state.config.tts_api, explicit, params.tier.as_deref())?;
    let permit = state.tts_api.limiter.acquire(&caller.key_id)?;
    let span = info_span!("tts_ws", tenant = %caller.tenant.id.0, provider = provider.as_str());
    Ok(ws.max_message_size(MAX_MESSAGE_BYTES).on_upgrade(move |socket: WebSocket| {
        let (sink, stream) = socket.split();
        let session = Session {
            state: state.clone(),
            provider,
            voice: params.voice,
            speed: params.speed,
            format: params.format.unwrap_or(AudioFormat::Pcm16000),
            stop: state.shutdown.token.clone(),
            lead: Duration::from_millis(params.lead_ms.unwrap_or(DEFAULT_LEAD_MS)),
            _permit: permit,
            next_utterance: 1,
        };
        session.run(sink, stream).instrument(span)
    }))
}

struct Session {
    state: AppState,
    provider: ProviderId,
    voice: Option<String>,
    speed: Option<f32>,
    format: AudioFormat,
    stop: CancellationToken,
    lead: Duration,
    _permit: Permit,
    next_utterance: u64,
}

struct Utterance {
    id: u64,
    stream: TtsStream,
    encoder: AudioEncoder,
    chars: usize,
    seq: u64,
    /// When the first audio went out: the real-time clock the pacing follows.
    first_audio: Option<Instant>,
}

impl Utterance {
    /// When the next chunk may go out: `lead` before the sent audio's end in real time.
    fn next_send(&self, lead: Duration) -> Option<Instant> {
        let start = self.first_audio?;
        let rate = self.encoder.rate()?;
        let sent = rate.duration_of(self.encoder.samples_out());
        Some(start + sent.saturating_sub(lead))
    }
}

/// What the loop does after one step.
enum Flow {
    Continue,
    Close,
}

impl Session {
    /// Runs until the client closes, the socket breaks or the server shuts down. Written
    /// against `Sink`/`Stream` so tests can drive it with channels.
    pub async fn run<S, R, E>(mut self, mut sink: S, mut stream: R)
    where
        S: Sink<Message> + Unpin,
        R: Stream<Item = Result<Message, E>> + Unpin,
    {
        let mut active: Option<Utterance> = None;
        loop {
            let now = Instant::now();
            let wait = active.as_ref().and_then(|u| u.next_send(self.lead)).filter(|t| *t > now);
            // Client messages first: a `cancel` waiting beside audio must win.
            let flow = tokio::select! {
                biased;
                _ = self.stop.cancelled() => Flow::Close,
                msg = stream.next() => match msg {
                    Some(Ok(Message::Text(t))) => self.on_client(t.as_str(), &mut active, &mut sink).await,
                    Some(Ok(Message::Binary(_))) => {
                        let ev = error_event(None, "bad_message", "audio goes one way: send JSON text messages");
                        send_event(&mut sink, &ev).await
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => Flow::Close,
                    Some(Ok(_)) => Flow::Continue,
                },
                ev = async { active.as_mut().expect("branch enabled only with an utterance").stream.events.recv().await }, if active.is_some() && wait.is_none() => {
                    self.on_event(ev, &mut active, &mut sink).await
                }
                _ = tokio::time::sleep_until(wait.unwrap_or(now)), if wait.is_some() => Flow::Continue,
            };
            if let Flow::Close = flow {
                break;
            }
        }
        if let Some(u) = active {
            let _ = u.stream.input.try_send(TtsInput::Cancel);
        }
        let _ = sink.close().await;
        debug!("tts socket closed");
    }

    async fn on_client<S: Sink<Message> + Unpin>(&mut self, text: &str, active: &mut Option<Utterance>, sink: &mut S) -> Flow {
        let msg: ClientMessage = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => return send_event(sink, &error_event(None, "bad_message", &e.to_string())).await,
        };
        match msg {
            ClientMessage::Text { text } => {
                if active.is_none() {
                    match self.start(sink).await {
                        Ok(Some(u)) => *active = Some(u),
                        Ok(None) => return Flow::Close,
                        Err(e) => return send_event(sink, &error_event(None, &e.code(), &e.to_string())).await,
                    }
                }
                let u = active.as_mut().expect("an utterance was just started");
                u.chars += text.chars().count();
                let max = self.state.config.tts_api.max_text_chars;
                if u.chars > max {
                    let e = TtsApiError::TextTooLong { max, got: u.chars };
                    let id = u.id;
                    if let Some(u) = active.take() {
                        let _ = u.stream.input.try_send(TtsInput::Cancel);
                    }
                    return send_event(sink, &error_event(Some(id), &e.code(), &e.to_string())).await;
                }
                self.input(active, TtsInput::Text(text), sink).await
            }
            ClientMessage::Flush => self.input(active, TtsInput::Flush, sink).await,
            ClientMessage::Finish => self.input(active, TtsInput::Finish, sink).await,
            ClientMessage::Cancel => match active.take() {
                Some(u) => {
                    // Dropping the stream here is what stops the audio: nothing more of this
                    // utterance is read, whatever the provider still had in flight.
                    let _ = u.stream.input.try_send(TtsInput::Cancel);
                    send_event(sink, &ServerEvent::Cancelled { utterance: u.id }).await
                }
                None => Flow::Continue,
            },
        }
    }

    async fn start<S: Sink<Message> + Unpin>(&mut self, sink: &mut S) -> Result<Option<Utterance>, TtsApiError> {
        let stream = open_stream(&self.state, self.provider, self.voice.clone(), self.speed, self.format, "ws").await?;
        let id = self.next_utterance;
        self.next_utterance += 1;
        let encoder = AudioEncoder::new(self.format);
        let started = ServerEvent::Started {
            utterance: id,
            provider: self.provider,
            format: self.format,
            sample_rate: encoder.rate().map(|r| r.hz()),
        };
        if let Flow::Close = send_event(sink, &started).await {
            return Ok(None);
        }
        Ok(Some(Utterance { id, stream, encoder, chars: 0, seq: 0, first_audio: None }))
    }

    async fn input<S: Sink<Message> + Unpin>(&mut self, active: &mut Option<Utterance>, input: TtsInput, sink: &mut S) -> Flow {
        let Some(u) = active.as_mut() else {
            return send_event(sink, &error_event(None, "no_utterance", "send text first")).await;
        };
        if u.stream.input.send(input).await.is_err() {
            let id = u.id;
            *active = None;
            let e = TtsApiError::Provider {
                provider: self.provider,
                error: SpeechError::Closed { provider: provider_name(self.provider) },
            };
            return send_event(sink, &error_event(Some(id), &e.code(), &e.to_string())).await;
        }
        Flow::Continue
    }

    async fn on_event<S: Sink<Message> + Unpin>(&mut self, ev: Option<TtsEvent>, active: &mut Option<Utterance>, sink: &mut S) -> Flow {
        let u = active.as_mut().expect("events come only from an active utterance");
        let mut out = Vec::new();
        let before = u.encoder.samples_out();
        let done = matches!(ev, Some(TtsEvent::Done));
        let res = match ev {
            Some(TtsEvent::Pcm { samples, rate }) => u.encoder.push(Audio::Pcm(&samples, rate), &mut out),
            Some(TtsEvent::Mulaw8k { bytes }) => u.encoder.push(Audio::Mulaw8k(&bytes), &mut out),
            Some(TtsEvent::Done) => u.encoder.finish(&mut out),
            Some(TtsEvent::Error(error)) => {
                let id = u.id;
                *active = None;
                let e = TtsApiError::Provider { provider: self.provider, error };
                return send_event(sink, &error_event(Some(id), &e.code(), &e.to_string())).await;
            }
            None => {
                let id = u.id;
                *active = None;
                let e = TtsApiError::Provider {
                    provider: self.provider,
                    error: SpeechError::Closed { provider: provider_name(self.provider) },
                };
                return send_event(sink, &error_event(Some(id), &e.code(), &e.to_string())).await;
            }
        };
        if let Err(e) = res {
            let id = u.id;
            *active = None;
            return send_event(sink, &error_event(Some(id), "internal", &e.to_string())).await;
        }
        if !out.is_empty() {
            let rate = u.encoder.rate().map_or(16_000, |r| u64::from(r.hz()));
            let ms = |samples: u64| samples * 1000 / rate;
            let chunk = ServerEvent::Chunk {
                utterance: u.id,
                seq: u.seq,
                bytes: out.len(),
                start_ms: ms(before),
                duration_ms: ms(u.encoder.samples_out()) - ms(before),
            };
            u.seq += 1;
            u.first_audio.get_or_insert_with(Instant::now);
            if let Flow::Close = send_event(sink, &chunk).await {
                return Flow::Close;
            }
            if sink.send(Message::Binary(out.into())).await.is_err() {
                return Flow::Close;
            }
        }
        if done {
            let rate = u.encoder.rate().map_or(16_000, |r| u64::from(r.hz()));
            let ev = ServerEvent::Done { utterance: u.id, duration_ms: u.encoder.samples_out() * 1000 / rate };
            *active = None;
            return send_event(sink, &ev).await;
        }
        Flow::Continue
    }
}

fn error_event(utterance: Option<u64>, code: &str, message: &str) -> ServerEvent {
    ServerEvent::Error { utterance, code: code.to_owned(), message: message.to_owned() }
}

async fn send_event<S: Sink<Message> + Unpin>(sink: &mut S, ev: &ServerEvent) -> Flow {
    let json = serde_json::to_string(ev).expect("server events always serialize");
    match sink.send(Message::Text(json.into())).await {
        Ok(()) => Flow::Continue,
        Err(_) => Flow::Close,
    }
}
