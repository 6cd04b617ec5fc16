//! A fake OpenAI-compatible audio server: `POST /v1/audio/speech` (raw 24 kHz s16le pcm,
//! streamed in odd-sized body chunks), `POST /v1/audio/transcriptions` (multipart, parsed
//! strictly), `GET /v1/models` and `GET /v1/audio/voices` (as self-hosted servers have it:
//! [`VOICES`]).
//!
//! Speech is deterministic: [`SAMPLES_PER_CHAR`] samples per input character, sample `i` of a
//! reply is [`sample`]`(i)`. A transcription reply describes the WAV it received, so a test
//! can check which audio was sent: `"<samples> samples at <rate> Hz"`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

pub const SAMPLES_PER_CHAR: usize = 240;
/// Body chunk sizes: odd on purpose, so samples straddle chunk boundaries.
pub const FIRST_CHUNK: usize = 1001;
pub const NEXT_CHUNK: usize = 777;

/// The voices `GET /v1/audio/voices` lists.
pub const VOICES: [&str; 3] = ["alloy", "af_bella", "bm_george"];

pub fn sample(i: usize) -> i16 {
    ((i * 37) % 2000) as i16 - 1000
}

/// The samples the fake speaks for `input`.
pub fn speech_for(input: &str) -> Vec<i16> {
    (0..input.chars().count() * SAMPLES_PER_CHAR).map(sample).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// An OpenAI error body with this status.
    Status(u16),
    /// 200 with a body that is not what the client asked for.
    Garbage,
    /// Accepts the request and never answers.
    Hang,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// When set, requests need `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    pub speech: Mode,
    pub transcription: Mode,
}

impl Default for Options {
    fn default() -> Self {
        Self { api_key: Some("oa-test-key".to_owned()), speech: Mode::Normal, transcription: Mode::Normal }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

#[derive(Debug, Default)]
struct Recorded {
    speech: Vec<Value>,
    transcriptions: Vec<Vec<Part>>,
}

struct Shared {
    options: Options,
    recorded: Mutex<Recorded>,
    /// When armed, speech bodies pause after their first chunk until notified.
    hold: Mutex<Option<Arc<Notify>>>,
}

pub struct FakeOpenAi {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeOpenAi {
    pub async fn start(options: Options) -> Self {
        let shared = Arc::new(Shared { options, recorded: Mutex::default(), hold: Mutex::new(None) });
        let router = Router::new()
            .route("/v1/audio/speech", post(speech))
            .route("/v1/audio/transcriptions", post(transcriptions))
            .route("/v1/models", get(models))
            .route("/v1/audio/voices", get(voices))
            .with_state(shared.clone());
        let addr = super::serve(router).await;
        Self { addr, shared }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Makes speech bodies stop after their first chunk until the returned `Notify` fires.
    pub fn hold_after_first_chunk(&self) -> Arc<Notify> {
        let n = Arc::new(Notify::new());
        *self.shared.hold.lock().expect("fake state lock") = Some(n.clone());
        n
    }

    pub fn speech_requests(&self) -> Vec<Value> {
        self.shared.recorded.lock().expect("fake state lock").speech.clone()
    }

    pub fn transcription_requests(&self) -> Vec<Vec<Part>> {
        self.shared.recorded.lock().expect("fake state lock").transcriptions.clone()
    }
}

fn error(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).expect("test gives a valid status");
    let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    match &shared.options.api_key {
        None => true,
        Some(k) => headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {k}")),
    }
}

async fn models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !authorized(&shared, &headers) {
        return error(401, "Incorrect API key provided");
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], json!({"object": "list", "data": []}).to_string())
        .into_response()
}

async fn voices(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !authorized(&shared, &headers) {
        return error(401, "Incorrect API key provided");
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], json!({"voices": VOICES}).to_string())
        .into_response()
}

async fn mode_response(mode: Mode) -> Option<Response> {
    match mode {
        Mode::Normal => None,
        Mode::Status(s) => Some(error(s, if s == 429 { "Rate limit reached" } else { "rejected by the fake" })),
        Mode::Garbage => Some(
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/html")], "<html><body>gateway says hi</body></html>")
                .into_response(),
        ),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            None
        }
    }
}

async fn speech(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&shared, &headers) {
        return error(401, "Incorrect API key provided");
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "body is not JSON");
    };
    shared.recorded.lock().expect("fake state lock").speech.push(req.clone());
    if let Some(resp) = mode_response(shared.options.speech).await {
        return resp;
    }
    if req["response_format"] != "pcm" {
        return error(400, "this fake speaks pcm only");
    }
    let input = req["input"].as_str().unwrap_or_default();
    let bytes: Vec<u8> = speech_for(input).iter().flat_map(|s| s.to_le_bytes()).collect();
    let hold = shared.hold.lock().expect("fake state lock").clone();
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let (first, mut rest) = bytes.split_at(FIRST_CHUNK.min(bytes.len()));
        if tx.send(Bytes::copy_from_slice(first)).await.is_err() {
            return;
        }
        if let Some(n) = hold {
            n.notified().await;
        }
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(NEXT_CHUNK.min(rest.len()));
            if tx.send(Bytes::copy_from_slice(chunk)).await.is_err() {
                return;
            }
            rest = tail;
            // Separate writes, so the client sees separate body chunks.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/octet-stream")], Body::from_stream(stream)).into_response()
}

/// A strict multipart/form-data parser: returns `None` on any malformation.
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Option<Vec<Part>> {
    let boundary = content_type.strip_prefix("multipart/form-data;")?.trim().strip_prefix("boundary=")?;
    let boundary = boundary.trim_matches('"');
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body.strip_prefix(delim.as_bytes())?;
    loop {
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let header_end = find(rest, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&rest[..header_end]).ok()?;
        rest = &rest[header_end + 4..];
        let next = find(rest, format!("\r\n{delim}").as_bytes())?;
        let data = rest[..next].to_vec();
        rest = &rest[next + 2 + delim.len()..];
        let mut part = Part { name: String::new(), filename: None, content_type: None, data };
        for line in head.split("\r\n") {
            let (k, v) = line.split_once(':')?;
            match k.trim().to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    for attr in v.split(';').map(str::trim) {
                        if let Some(n) = attr.strip_prefix("name=") {
                            part.name = n.trim_matches('"').to_owned();
                        } else if let Some(f) = attr.strip_prefix("filename=") {
                            part.filename = Some(f.trim_matches('"').to_owned());
                        }
                    }
                }
                "content-type" => part.content_type = Some(v.trim().to_owned()),
                _ => {}
            }
        }
        if part.name.is_empty() {
            return None;
        }
        parts.push(part);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// (samples, rate) of a mono s16 PCM WAV with a consistent header, else `None`.
pub fn parse_wav(b: &[u8]) -> Option<(usize, u32)> {
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    if b.len() < 44 || &b[0..4] != b"RIFF" || &b[8..16] != b"WAVEfmt " || &b[36..40] != b"data" {
        return None;
    }
    let data_len = u32_at(40) as usize;
    let ok = u32_at(4) as usize == b.len() - 8
        && u16_at(20) == 1
        && u16_at(22) == 1
        && u16_at(34) == 16
        && u32_at(28) == u32_at(24) * 2
        && data_len == b.len() - 44;
    ok.then(|| (data_len / 2, u32_at(24)))
}

async fn transcriptions(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&shared, &headers) {
        return error(401, "Incorrect API key provided");
    }
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(parts) = parse_multipart(ct, &body) else {
        return error(400, "malformed multipart body");
    };
    shared.recorded.lock().expect("fake state lock").transcriptions.push(parts.clone());
    if let Some(resp) = mode_response(shared.options.transcription).await {
        return resp;
    }
    let Some(file) = parts.iter().find(|p| p.name == "file") else {
        return error(400, "missing file");
    };
    if !parts.iter().any(|p| p.name == "model") {
        return error(400, "missing model");
    }
    let Some((samples, rate)) = parse_wav(&file.data) else {
        return error(400, "file is not a valid WAV");
    };
    let text = format!("{samples} samples at {rate} Hz");
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], json!({"text": text}).to_string()).into_response()
}
