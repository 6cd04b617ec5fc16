//! OpenAI-compatible transcription: `POST {base}/v1/audio/transcriptions`, one request per
//! caller turn. The caller's VAD segments the audio: we buffer a turn and send it as a WAV file
//! on `Finalize` or `Close`. Self-hosted whisper servers speak the same API.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{SttAudioFormat, SttContext, SttEvent, SttInput, SttProvider, SttStream};
use crate::speech::SpeechError;
use crate::speech::tts::openai::{
    check_key, check_models, default_base_url, default_connect_timeout, default_keepalive_interval,
    endpoint, error_from_response, http_client, map_send_error,
};

const PROVIDER: &str = "openai-stt";
const INPUT_CAPACITY: usize = 256;
const EVENT_CAPACITY: usize = 32;
/// Turns shorter than this carry no words; sending them only invites hallucinated text.
const MIN_TURN_MS: u64 = 100;

/// Settings for any OpenAI-compatible transcription endpoint.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiSttConfig {
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Required by api.openai.com; self-hosted servers often need none.
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default = "default_model")]
    pub model: String,
    /// Overrides the call's language when set (ISO 639-1, e.g. `en`).
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long one transcription may take before the turn is reported as timed out.
    #[serde(default = "default_first_result_timeout", with = "humantime_serde")]
    pub first_result_timeout: Duration,
    #[serde(default = "default_keepalive_interval", with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// Longest turn kept; older audio of a longer turn is dropped (the newest words matter).
    #[serde(default = "default_max_turn", with = "humantime_serde")]
    pub max_turn: Duration,
}

fn default_model() -> String {
    "gpt-4o-mini-transcribe".to_owned()
}
fn default_first_result_timeout() -> Duration {
    Duration::from_secs(15)
}
fn default_max_turn() -> Duration {
    Duration::from_secs(60)
}

impl Default for OpenAiSttConfig {
    fn default() -> Self {
        Self {
            base_url: default_base_url(),
            api_key: None,
            model: default_model(),
            language: None,
            connect_timeout: default_connect_timeout(),
            first_result_timeout: default_first_result_timeout(),
            keepalive_interval: default_keepalive_interval(),
            max_turn: default_max_turn(),
        }
    }
}

impl fmt::Debug for OpenAiSttConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiSttConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("language", &self.language)
            .field("connect_timeout", &self.connect_timeout)
            .field("first_result_timeout", &self.first_result_timeout)
            .field("keepalive_interval", &self.keepalive_interval)
            .field("max_turn", &self.max_turn)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
struct TranscriptionReply {
    text: String,
}

pub struct OpenAiStt {
    config: OpenAiSttConfig,
    client: reqwest::Client,
}

impl OpenAiStt {
    pub fn new(config: OpenAiSttConfig) -> Result<Self, SpeechError> {
        let client = http_client(PROVIDER, config.connect_timeout, config.keepalive_interval)?;
        Ok(Self { config, client })
    }
}

#[async_trait]
impl SttProvider for OpenAiStt {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn open(&self, ctx: SttContext) -> Result<SttStream, SpeechError> {
        check_key(PROVIDER, &self.config.base_url, self.config.api_key.as_deref())?;
        let url = endpoint(PROVIDER, &self.config.base_url, "/v1/audio/transcriptions")?;
        // μ-law from a phone call is decoded to 8 kHz PCM: no resampling needed on our side.
        let format = match ctx.native_format {
            Some(SttAudioFormat::Mulaw8k) => SttAudioFormat::Mulaw8k,
            _ => SttAudioFormat::Linear16k,
        };
        let rate = if format == SttAudioFormat::Mulaw8k { 8_000 } else { 16_000 };
        let language = self
            .config
            .language
            .clone()
            .or_else(|| ctx.language.as_ref().map(|l| l.split(['-', '_']).next().unwrap_or(l).to_lowercase()));
        let prompt = (!ctx.phrases.is_empty()).then(|| ctx.phrases.join(", "));
        let (input_tx, input_rx) = mpsc::channel(INPUT_CAPACITY);
        let (events_tx, events_rx) = mpsc::channel(EVENT_CAPACITY);
        info!(call_id = %ctx.call_id, ?format, "openai stt stream open");
        let session = Session {
            config: self.config.clone(),
            client: self.client.clone(),
            url,
            language,
            prompt,
            call_id: ctx.call_id,
            format,
            rate,
            events: events_tx,
            turn: Turn::default(),
            max_samples: (self.config.max_turn.as_secs_f64() * rate as f64) as usize,
            queue: VecDeque::new(),
            active: None,
            mismatched: 0,
        };
        tokio::spawn(session.run(input_rx));
        Ok(SttStream { input: input_tx, events: events_rx, format })
    }

    async fn check(&self) -> Result<(), SpeechError> {
        check_models(PROVIDER, &self.client, &self.config.base_url, self.config.api_key.as_deref()).await
    }
}

/// Audio of the current turn.
#[derive(Debug, Default)]
struct Turn {
    /// Sample-clock position of the first buffered sample.
    start: Option<u64>,
    samples: VecDeque<i16>,
}

/// A finished turn waiting for (or in) its request.
struct Pending {
    wav: Vec<u8>,
    start: f64,
    end: f64,
}

type Request = BoxFuture<'static, (Pending, Result<String, SpeechError>)>;

struct Session {
    config: OpenAiSttConfig,
    client: reqwest::Client,
    url: reqwest::Url,
    language: Option<String>,
    prompt: Option<String>,
    call_id: String,
    format: SttAudioFormat,
    rate: u32,
    events: mpsc::Sender<SttEvent>,
    turn: Turn,
    max_samples: usize,
    queue: VecDeque<Pending>,
    /// One request at a time keeps the transcripts in turn order.
    active: Option<Request>,
    mismatched: u64,
}

impl Session {
    async fn run(mut self, mut input: mpsc::Receiver<SttInput>) {
        let mut closing = false;
        loop {
            if self.active.is_none() {
                if let Some(p) = self.queue.pop_front() {
                    self.active = Some(self.request(p));
                } else if closing {
                    break;
                }
            }
            tokio::select! {
                inp = input.recv(), if !closing => match inp {
                    Some(SttInput::Mulaw8k { at_samples, bytes }) => {
                        let samples: Vec<i16> = bytes.iter().map(|&b| mulaw_to_linear(b)).collect();
                        self.on_audio(SttAudioFormat::Mulaw8k, at_samples, &samples);
                    }
                    Some(SttInput::Linear16k { at_samples, samples }) => {
                        self.on_audio(SttAudioFormat::Linear16k, at_samples, &samples);
                    }
                    Some(SttInput::Finalize) => self.end_turn(),
                    Some(SttInput::Close) | None => {
                        self.end_turn();
                        closing = true;
                    }
                },
                (pending, result) = async { self.active.as_mut().expect("branch enabled only while a request runs").await }, if self.active.is_some() => {
                    self.active = None;
                    let ev = match result {
                        Ok(text) if text.trim().is_empty() => None,
                        Ok(text) => Some(SttEvent::Final {
                            text: text.trim().to_owned(),
                            start: pending.start,
                            end: pending.end,
                            // The API reports no confidence for plain transcripts.
                            confidence: 1.0,
                        }),
                        Err(e) => {
                            warn!(call_id = %self.call_id, error = %e, "openai transcription failed; the stream goes on");
                            Some(SttEvent::Error(e))
                        }
                    };
                    if let Some(ev) = ev
                        && self.events.send(ev).await.is_err()
                    {
                        return;
                    }
                }
            }
        }
        let _ = self.events.send(SttEvent::Closed).await;
        debug!(call_id = %self.call_id, "openai stt stream ended");
    }

    fn on_audio(&mut self, fmt: SttAudioFormat, at: u64, samples: &[i16]) {
        if fmt != self.format {
            self.mismatched += 1;
            if self.mismatched == 1 {
                warn!(call_id = %self.call_id, got = ?fmt, want = ?self.format, "openai stt dropping audio in the wrong format");
            }
            return;
        }
        let turn = &mut self.turn;
        turn.start.get_or_insert(at);
        turn.samples.extend(samples);
        let excess = turn.samples.len().saturating_sub(self.max_samples);
        if excess > 0 {
            turn.samples.drain(..excess);
            turn.start = turn.start.map(|s| s + excess as u64);
        }
    }

    fn end_turn(&mut self) {
        let turn = std::mem::take(&mut self.turn);
        let Some(start) = turn.start else { return };
        let len = turn.samples.len() as u64;
        if len * 1000 < MIN_TURN_MS * self.rate as u64 {
            debug!(call_id = %self.call_id, samples = len, "turn too short to transcribe");
            return;
        }
        let samples: Vec<i16> = turn.samples.into();
        self.queue.push_back(Pending {
            wav: wav_bytes(&samples, self.rate),
            start: start as f64 / self.rate as f64,
            end: (start + len) as f64 / self.rate as f64,
        });
    }

    fn request(&self, pending: Pending) -> Request {
        let client = self.client.clone();
        let url = self.url.clone();
        let key = self.config.api_key.clone();
        let model = self.config.model.clone();
        let language = self.language.clone();
        let prompt = self.prompt.clone();
        let timeout = self.config.first_result_timeout;
        async move {
            let part = reqwest::multipart::Part::bytes(pending.wav.clone())
                .file_name("audio.wav")
                .mime_str("audio/wav")
                .expect("audio/wav is a valid mime type");
            let mut form = reqwest::multipart::Form::new()
                .part("file", part)
                .text("model", model)
                .text("response_format", "json");
            if let Some(l) = language {
                form = form.text("language", l);
            }
            if let Some(p) = prompt {
                form = form.text("prompt", p);
            }
            let mut req = client.post(url).multipart(form).timeout(timeout);
            if let Some(k) = key {
                req = req.bearer_auth(k);
            }
            let result = async {
                let resp = req.send().await.map_err(|e| map_send_error(PROVIDER, e))?;
                if !resp.status().is_success() {
                    return Err(error_from_response(PROVIDER, resp).await);
                }
                let body = resp.bytes().await.map_err(|e| map_send_error(PROVIDER, e))?;
                serde_json::from_slice::<TranscriptionReply>(&body).map(|r| r.text).map_err(|e| {
                    let snippet: String = String::from_utf8_lossy(&body).chars().take(120).collect();
                    SpeechError::Protocol { provider: PROVIDER, reason: format!("unreadable reply ({e}): {snippet}") }
                })
            }
            .await;
            let result = result.map_err(|e| match e {
                SpeechError::Timeout { provider, .. } => SpeechError::Timeout { provider, what: "transcription" },
                other => other,
            });
            (pending, result)
        }
        .boxed()
    }
}

/// A 44-byte-header PCM WAV file: mono, s16le.
pub(crate) fn wav_bytes(samples: &[i16], rate: u32) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// G.711 μ-law to linear PCM (ITU-T G.711, the usual 14-bit expansion scaled to 16 bits).
pub(crate) fn mulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = u & 0x0F;
    let magnitude = ((((mantissa as i32) << 3) + 0x84) << exponent) - 0x84;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mulaw_decodes_known_values() {
        assert_eq!(mulaw_to_linear(0xFF), 0);
        assert_eq!(mulaw_to_linear(0x7F), 0);
        assert_eq!(mulaw_to_linear(0x00), -32124);
        assert_eq!(mulaw_to_linear(0x80), 32124);
    }

    #[test]
    fn wav_header_is_consistent() {
        let wav = wav_bytes(&[1, -1, 2], 8_000);
        assert_eq!(wav.len(), 44 + 6);
        assert_eq!(&wav[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(wav[4..8].try_into().unwrap()), 42);
        assert_eq!(&wav[8..16], b"WAVEfmt ");
        assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 8_000);
        assert_eq!(u32::from_le_bytes(wav[40..44].try_into().unwrap()), 6);
        assert_eq!(i16::from_le_bytes([wav[46], wav[47]]), -1);
    }

    #[test]
    fn debug_redacts_the_key() {
        let c = OpenAiSttConfig { api_key: Some("sekrit".into()), ..Default::default() };
        assert!(!format!("{c:?}").contains("sekrit"));
    }
}
