//! OpenAI-compatible TTS: `POST {base}/v1/audio/speech` with `response_format=pcm`.
//!
//! The reply body is raw 24 kHz s16le mono, streamed: we read it chunk by chunk and emit PCM as
//! it arrives, so the caller hears the first words before the server has finished. Text is
//! collected until `Flush`/`Finish` and synthesized one request at a time, in order.
//!
//! The HTTP helpers here are shared with the OpenAI-compatible STT provider.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use media::SampleRate;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tracing::{debug, info, trace, warn};

use super::elevenlabs::pcm_from_le_bytes;
use super::{TtsContext, TtsEvent, TtsInput, TtsProvider, TtsStream};
use crate::speech::SpeechError;

const PROVIDER: &str = "openai-tts";
const INPUT_CAPACITY: usize = 32;
const EVENT_CAPACITY: usize = 64;
/// The API rejects longer inputs.
const MAX_INPUT_CHARS: usize = 4096;

/// Settings for any OpenAI-compatible speech endpoint.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiTtsConfig {
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Required by api.openai.com; self-hosted servers often need none.
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default = "default_model")]
    pub model: String,
    #[serde(default = "default_voice")]
    pub voice: String,
    /// Style instructions (not supported by the tts-1 models).
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long we wait for the first audio bytes, and at most between two body chunks.
    #[serde(default = "default_first_audio_timeout", with = "humantime_serde")]
    pub first_audio_timeout: Duration,
    /// TCP keep-alive on pooled connections, so the next request skips the handshake.
    #[serde(default = "default_keepalive_interval", with = "humantime_serde")]
    pub keepalive_interval: Duration,
}

pub(crate) fn default_base_url() -> String {
    "https://api.openai.com".to_owned()
}
fn default_model() -> String {
    "gpt-4o-mini-tts".to_owned()
}
fn default_voice() -> String {
    "alloy".to_owned()
}
pub(crate) fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_first_audio_timeout() -> Duration {
    Duration::from_secs(10)
}
pub(crate) fn default_keepalive_interval() -> Duration {
    Duration::from_secs(30)
}

impl Default for OpenAiTtsConfig {
    fn default() -> Self {
        Self {
            base_url: default_base_url(),
            api_key: None,
            model: default_model(),
            voice: default_voice(),
            instructions: None,
            connect_timeout: default_connect_timeout(),
            first_audio_timeout: default_first_audio_timeout(),
            keepalive_interval: default_keepalive_interval(),
        }
    }
}

impl fmt::Debug for OpenAiTtsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiTtsConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("voice", &self.voice)
            .field("instructions", &self.instructions)
            .field("connect_timeout", &self.connect_timeout)
            .field("first_audio_timeout", &self.first_audio_timeout)
            .field("keepalive_interval", &self.keepalive_interval)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers shared by the OpenAI-compatible providers

pub(crate) fn http_client(
    provider: &'static str,
    connect_timeout: Duration,
    keepalive: Duration,
) -> Result<reqwest::Client, SpeechError> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .tcp_keepalive(keepalive)
        .pool_idle_timeout(keepalive * 2)
        .build()
        .map_err(|e| SpeechError::Engine { provider, reason: format!("http client: {e}") })
}

/// The official API refuses anonymous calls; compatible self-hosted servers usually allow them.
pub(crate) fn check_key(provider: &'static str, base_url: &str, key: Option<&str>) -> Result<(), SpeechError> {
    let official = reqwest::Url::parse(base_url)
        .map(|u| u.host_str() == Some("api.openai.com"))
        .unwrap_or(false);
    if official && key.is_none_or(str::is_empty) {
        return Err(SpeechError::NotConfigured { provider, reason: "no api_key".to_owned() });
    }
    Ok(())
}

pub(crate) fn endpoint(provider: &'static str, base_url: &str, path: &str) -> Result<reqwest::Url, SpeechError> {
    reqwest::Url::parse(base_url)
        .and_then(|u| u.join(path))
        .map_err(|e| SpeechError::NotConfigured { provider, reason: format!("base_url: {e}") })
}

pub(crate) fn map_send_error(provider: &'static str, e: reqwest::Error) -> SpeechError {
    if e.is_timeout() {
        SpeechError::Timeout { provider, what: "response" }
    } else {
        // Without the URL: it is ours and says nothing new, and keeps logs short.
        SpeechError::Connect { provider, reason: e.without_url().to_string() }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}
#[derive(Deserialize)]
struct ErrorDetail {
    message: String,
}

/// Turns a non-success reply into an error, with the server's message when it gave one.
pub(crate) async fn error_from_response(provider: &'static str, resp: reqwest::Response) -> SpeechError {
    let status = resp.status().as_u16();
    match status {
        401 | 403 => return SpeechError::Unauthorized { provider, status },
        429 => return SpeechError::RateLimited { provider },
        _ => {}
    }
    let body = resp.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<ErrorBody>(&body)
        .map(|b| b.error.message)
        .unwrap_or_else(|_| body.chars().take(200).collect());
    SpeechError::Protocol { provider, reason: format!("HTTP {status}: {detail}") }
}

/// `check()` for OpenAI-compatible servers: the model list proves key and reachability.
pub(crate) async fn check_models(
    provider: &'static str,
    client: &reqwest::Client,
    base_url: &str,
    key: Option<&str>,
) -> Result<(), SpeechError> {
    check_key(provider, base_url, key)?;
    let mut req = client.get(endpoint(provider, base_url, "/v1/models")?);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.map_err(|e| map_send_error(provider, e))?;
    match resp.status().as_u16() {
        200..=299 => Ok(()),
        // Reachable, but a self-hosted server without a model list.
        404 => {
            debug!(provider, "no /v1/models on this server; reachable is enough");
            Ok(())
        }
        _ => Err(error_from_response(provider, resp).await),
    }
}

// ---------------------------------------------------------------------------------------------
// Provider

#[derive(Debug, Serialize)]
struct SpeechRequest<'a> {
    model: &'a str,
    input: &'a str,
    voice: &'a str,
    response_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    speed: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instructions: Option<&'a str>,
}

pub struct OpenAiTts {
    config: OpenAiTtsConfig,
    client: reqwest::Client,
}

impl OpenAiTts {
    pub fn new(config: OpenAiTtsConfig) -> Result<Self, SpeechError> {
        let client = http_client(PROVIDER, config.connect_timeout, config.keepalive_interval)?;
        Ok(Self { config, client })
    }
}

#[async_trait]
impl TtsProvider for OpenAiTts {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn open(&self, ctx: TtsContext) -> Result<TtsStream, SpeechError> {
        check_key(PROVIDER, &self.config.base_url, self.config.api_key.as_deref())?;
        let url = endpoint(PROVIDER, &self.config.base_url, "/v1/audio/speech")?;
        let (input_tx, input_rx) = mpsc::channel(INPUT_CAPACITY);
        let (events_tx, events_rx) = mpsc::channel(EVENT_CAPACITY);
        info!(call_id = %ctx.call_id, "openai tts stream open");
        let session = Session {
            config: self.config.clone(),
            client: self.client.clone(),
            url,
            voice: ctx.voice.clone().unwrap_or_else(|| self.config.voice.clone()),
            speed: ctx.speed.map(|s| s.clamp(0.25, 4.0)),
            call_id: ctx.call_id,
            events: events_tx,
            pending: String::new(),
            queue: VecDeque::new(),
            active: None,
            finishing: false,
            carry: None,
            deadline: None,
        };
        tokio::spawn(session.run(input_rx));
        Ok(TtsStream { input: input_tx, events: events_rx })
    }

    async fn check(&self) -> Result<(), SpeechError> {
        check_models(PROVIDER, &self.client, &self.config.base_url, self.config.api_key.as_deref()).await
    }
}

enum Active {
    Starting(BoxFuture<'static, reqwest::Result<reqwest::Response>>),
    Streaming(BoxStream<'static, reqwest::Result<Bytes>>),
}

enum Step {
    Response(reqwest::Result<reqwest::Response>),
    Chunk(Option<reqwest::Result<Bytes>>),
}

impl Active {
    async fn step(&mut self) -> Step {
        match self {
            Active::Starting(f) => Step::Response(f.await),
            Active::Streaming(s) => Step::Chunk(s.next().await),
        }
    }
}

struct Session {
    config: OpenAiTtsConfig,
    client: reqwest::Client,
    url: reqwest::Url,
    voice: String,
    speed: Option<f32>,
    call_id: String,
    events: mpsc::Sender<TtsEvent>,
    /// Text not yet flushed.
    pending: String,
    /// Flushed text waiting for its request, in order.
    queue: VecDeque<String>,
    active: Option<Active>,
    finishing: bool,
    carry: Option<u8>,
    /// While a request runs: when we give up waiting for its next bytes.
    deadline: Option<Instant>,
}

impl Session {
    async fn run(mut self, mut input: mpsc::Receiver<TtsInput>) {
        if let Err(e) = self.pump(&mut input).await {
            warn!(call_id = %self.call_id, error = %e, "openai tts stream failed");
            let _ = self.events.send(TtsEvent::Error(e)).await;
        }
    }

    fn flush_pending(&mut self) {
        let text = std::mem::take(&mut self.pending);
        self.queue.extend(split_input(text.trim(), MAX_INPUT_CHARS));
    }

    fn start_request(&mut self, text: String) {
        let body = SpeechRequest {
            model: &self.config.model,
            input: &text,
            voice: &self.voice,
            response_format: "pcm",
            speed: self.speed,
            instructions: self.config.instructions.as_deref(),
        };
        let mut req = self.client.post(self.url.clone()).json(&body);
        if let Some(k) = &self.config.api_key {
            req = req.bearer_auth(k);
        }
        debug!(call_id = %self.call_id, chars = text.len(), "openai tts request");
        self.active = Some(Active::Starting(req.send().boxed()));
        self.deadline = Some(Instant::now() + self.config.first_audio_timeout);
    }

    /// Runs until done (`Ok`), cancelled (`Ok`) or failed.
    async fn pump(&mut self, input: &mut mpsc::Receiver<TtsInput>) -> Result<(), SpeechError> {
        loop {
            if self.active.is_none() {
                if let Some(text) = self.queue.pop_front() {
                    self.start_request(text);
                } else if self.finishing {
                    let _ = self.events.send(TtsEvent::Done).await;
                    return Ok(());
                }
            }
            let deadline = self.deadline;
            tokio::select! {
                inp = input.recv(), if !self.finishing => match inp {
                    Some(TtsInput::Text(t)) => {
                        if !self.pending.is_empty() && !self.pending.ends_with(char::is_whitespace) && !t.starts_with(char::is_whitespace) {
                            self.pending.push(' ');
                        }
                        self.pending.push_str(&t);
                    }
                    Some(TtsInput::Flush) => self.flush_pending(),
                    Some(TtsInput::Finish) => {
                        self.flush_pending();
                        self.finishing = true;
                    }
                    Some(TtsInput::Cancel) | None => {
                        debug!(call_id = %self.call_id, "openai tts cancelled");
                        return Ok(());
                    }
                },
                step = async { self.active.as_mut().expect("branch enabled only while a request runs").step().await }, if self.active.is_some() => {
                    self.on_step(step).await?;
                }
                _ = async { sleep_until(deadline.expect("branch enabled only with a deadline")).await }, if deadline.is_some() => {
                    return Err(SpeechError::Timeout { provider: PROVIDER, what: "audio" });
                }
            }
        }
    }

    async fn on_step(&mut self, step: Step) -> Result<(), SpeechError> {
        match step {
            Step::Response(Err(e)) => Err(map_send_error(PROVIDER, e)),
            Step::Response(Ok(resp)) if !resp.status().is_success() => {
                Err(error_from_response(PROVIDER, resp).await)
            }
            Step::Response(Ok(resp)) => {
                let ct = resp
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                if ct.starts_with("application/json") || ct.starts_with("text/") {
                    let body = resp.text().await.unwrap_or_default();
                    let snippet: String = body.chars().take(120).collect();
                    return Err(SpeechError::Protocol {
                        provider: PROVIDER,
                        reason: format!("expected raw pcm audio, got {ct}: {snippet}"),
                    });
                }
                self.active = Some(Active::Streaming(resp.bytes_stream().boxed()));
                Ok(())
            }
            Step::Chunk(Some(Ok(bytes))) => {
                trace!(bytes = bytes.len(), "openai tts body chunk");
                self.deadline = Some(Instant::now() + self.config.first_audio_timeout);
                let samples = pcm_from_le_bytes(&mut self.carry, &bytes);
                if !samples.is_empty() {
                    let ev = TtsEvent::Pcm { samples, rate: SampleRate::HZ_24000 };
                    if self.events.send(ev).await.is_err() {
                        // Nobody listens any more: stop the request.
                        self.active = None;
                        self.queue.clear();
                        self.finishing = true;
                    }
                }
                Ok(())
            }
            Step::Chunk(Some(Err(e))) => Err(SpeechError::Connect {
                provider: PROVIDER,
                reason: format!("audio body broke off: {}", e.without_url()),
            }),
            Step::Chunk(None) => {
                if self.carry.take().is_some() {
                    warn!(call_id = %self.call_id, "openai tts body ended inside a sample; last byte dropped");
                }
                self.active = None;
                self.deadline = None;
                Ok(())
            }
        }
    }
}

/// Splits text into pieces of at most `max` chars, at whitespace where possible.
fn split_input(text: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if rest.chars().count() <= max {
            out.push(rest.to_owned());
            break;
        }
        let cut = rest.char_indices().nth(max).map(|(i, _)| i).unwrap_or(rest.len());
        let at = rest[..cut].rfind(char::is_whitespace).filter(|&i| i > 0).unwrap_or(cut);
        out.push(rest[..at].trim_end().to_owned());
        rest = rest[at..].trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_split_at_whitespace_within_the_limit() {
        let parts = split_input("aaa bbb ccc", 5);
        assert_eq!(parts, vec!["aaa", "bbb", "ccc"]);
        let parts = split_input("abcdefgh", 3);
        assert_eq!(parts, vec!["abc", "def", "gh"]);
        assert!(split_input("", 3).is_empty());
    }

    #[test]
    fn request_body_matches_the_api() {
        let body = SpeechRequest {
            model: "tts-1",
            input: "hi",
            voice: "alloy",
            response_format: "pcm",
            speed: None,
            instructions: None,
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"model":"tts-1","input":"hi","voice":"alloy","response_format":"pcm"}"#
        );
    }

    #[test]
    fn official_api_needs_a_key_self_hosted_does_not() {
        assert!(matches!(
            check_key("p", "https://api.openai.com", None),
            Err(SpeechError::NotConfigured { .. })
        ));
        assert!(check_key("p", "https://api.openai.com", Some("k")).is_ok());
        assert!(check_key("p", "http://127.0.0.1:8000", None).is_ok());
    }

    #[test]
    fn debug_redacts_the_key() {
        let c = OpenAiTtsConfig { api_key: Some("sekrit".into()), ..Default::default() };
        assert!(!format!("{c:?}").contains("sekrit"));
    }
}
