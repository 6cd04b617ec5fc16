//! A fake ElevenLabs stream-input endpoint (`/v1/text-to-speech/{voice_id}/stream-input`).
//!
//! "Synthesis" is deterministic: each character of the buffered text becomes
//! [`BYTES_PER_CHAR`] audio bytes equal to the character's code, sent base64-encoded in two
//! messages when the client flushes or ends the stream. After end of stream it sends
//! `{"isFinal":true}` and closes with 1000, as the service does.
//!
//! `GET /v1/voices` lists [`VOICES`] (checked against the same key); [`FakeElevenLabs::set_voices_down`]
//! makes it answer 503, and [`FakeElevenLabs::voice_list_requests`] counts requests, for cache tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde_json::{Value, json};

pub const BYTES_PER_CHAR: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Answers the first text with a non-JSON frame.
    Garbage,
    /// Answers the first text with an error payload and closes with 1008.
    ErrorMessage,
    /// Never answers.
    Silent,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub api_key: String,
    pub reject_status: Option<u16>,
    pub mode: Mode,
}

impl Default for Options {
    fn default() -> Self {
        Self { api_key: "el-test-key".to_owned(), reject_status: None, mode: Mode::Normal }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub voice_id: String,
    pub query: String,
    pub api_key: Option<String>,
    /// Text frames as JSON (a non-JSON frame is kept as a JSON string).
    pub messages: Vec<Value>,
    pub binary_frames: usize,
    pub client_closed: bool,
}

struct Shared {
    options: Options,
    connections: Mutex<Vec<Connection>>,
    voices_down: AtomicBool,
    voice_requests: AtomicUsize,
}

/// The voices `GET /v1/voices` lists: (voice_id, name, gender, locale).
pub const VOICES: [(&str, &str, &str, &str); 3] = [
    ("21m00Tcm4TlvDq8ikWAM", "Rachel", "female", "en-US"),
    ("pNInz6obpgDQGcFmaJgB", "Adam", "male", "en-US"),
    ("fake-de-voice-0001", "Greta", "female", "de-DE"),
];

pub struct FakeElevenLabs {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

/// The audio the fake produces for `text` (as buffered: chunks joined, then trimmed).
pub fn audio_for(text: &str) -> Vec<u8> {
    text.trim().bytes().flat_map(|b| std::iter::repeat_n(b, BYTES_PER_CHAR)).collect()
}

impl FakeElevenLabs {
    pub async fn start(options: Options) -> Self {
        let shared = Arc::new(Shared {
            options,
            connections: Mutex::new(Vec::new()),
            voices_down: AtomicBool::new(false),
            voice_requests: AtomicUsize::new(0),
        });
        let router = Router::new()
            .route("/v1/text-to-speech/{voice_id}/stream-input", get(stream_input))
            .route("/v1/voices", get(voices))
            .with_state(shared.clone());
        let addr = super::serve(router).await;
        Self { addr, shared }
    }

    pub fn base_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn connections(&self) -> Vec<Connection> {
        self.shared.connections.lock().expect("fake state lock").clone()
    }

    /// While down, `GET /v1/voices` answers 503.
    pub fn set_voices_down(&self, down: bool) {
        self.shared.voices_down.store(down, Ordering::SeqCst);
    }

    /// `GET /v1/voices` requests received (answered or not).
    pub fn voice_list_requests(&self) -> usize {
        self.shared.voice_requests.load(Ordering::SeqCst)
    }
}

async fn voices(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    shared.voice_requests.fetch_add(1, Ordering::SeqCst);
    if shared.voices_down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable").into_response();
    }
    let api_key = headers.get("xi-api-key").and_then(|v| v.to_str().ok());
    if api_key != Some(shared.options.api_key.as_str()) {
        return (StatusCode::UNAUTHORIZED, r#"{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}"#)
            .into_response();
    }
    let list: Vec<Value> = VOICES
        .iter()
        .map(|(id, name, gender, locale)| {
            json!({
                "voice_id": id, "name": name, "category": "premade",
                "labels": {"gender": gender, "accent": "neutral", "age": "young"},
                "verified_languages": [{"language": &locale[..2], "model_id": "eleven_flash_v2_5", "locale": locale}],
                "preview_url": null
            })
        })
        .collect();
    let body = json!({"voices": list, "has_more": false});
    (StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn stream_input(
    State(shared): State<Arc<Shared>>,
    Path(voice_id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(status) = shared.options.reject_status {
        let status = StatusCode::from_u16(status).expect("test gives a valid status");
        return (status, r#"{"detail":{"status":"rejected","message":"rejected by the fake"}}"#).into_response();
    }
    let api_key = headers.get("xi-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if api_key.as_deref() != Some(shared.options.api_key.as_str()) {
        return (StatusCode::UNAUTHORIZED, r#"{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}"#)
            .into_response();
    }
    let index = {
        let mut conns = shared.connections.lock().expect("fake state lock");
        conns.push(Connection { voice_id, query: query.unwrap_or_default(), api_key, ..Default::default() });
        conns.len() - 1
    };
    ws.on_upgrade(move |socket| session(shared, index, socket))
}

async fn send_audio(socket: &mut WebSocket, text: &str) -> bool {
    let audio = audio_for(text);
    let (a, b) = audio.split_at(audio.len() / 2);
    for part in [a, b] {
        if part.is_empty() {
            continue;
        }
        let msg = json!({
            "audio": base64::engine::general_purpose::STANDARD.encode(part),
            "isFinal": false, "normalizedAlignment": null, "alignment": null
        });
        if socket.send(Message::Text(msg.to_string().into())).await.is_err() {
            return false;
        }
    }
    true
}

async fn session(shared: Arc<Shared>, index: usize, mut socket: WebSocket) {
    let mode = shared.options.mode;
    let mut buffer = String::new();
    let mut texts_seen = 0usize;
    while let Some(Ok(msg)) = socket.recv().await {
        let value = match &msg {
            Message::Text(t) => serde_json::from_str(t.as_str()).unwrap_or_else(|_| Value::String(t.to_string())),
            Message::Binary(_) => {
                shared.connections.lock().expect("fake state lock")[index].binary_frames += 1;
                continue;
            }
            Message::Close(_) => {
                shared.connections.lock().expect("fake state lock")[index].client_closed = true;
                return;
            }
            _ => continue,
        };
        shared.connections.lock().expect("fake state lock")[index].messages.push(value.clone());
        texts_seen += 1;
        if mode == Mode::Silent || texts_seen == 1 {
            // The first message only sets up the voice.
            continue;
        }
        if mode == Mode::Garbage {
            let _ = socket.send(Message::Text("upstream <b>exploded</b>".into())).await;
            continue;
        }
        if mode == Mode::ErrorMessage {
            let err = json!({"message": "Quota exceeded for this key", "error": "quota_exceeded", "code": 1008});
            let _ = socket.send(Message::Text(err.to_string().into())).await;
            let _ = socket.send(Message::Close(Some(CloseFrame { code: 1008, reason: "quota_exceeded".into() }))).await;
            return;
        }
        let text = value["text"].as_str().unwrap_or_default();
        let eos = text.is_empty();
        buffer.push_str(text);
        if value["flush"].as_bool() == Some(true) || eos {
            if !buffer.trim().is_empty() && !send_audio(&mut socket, &buffer).await {
                return;
            }
            buffer.clear();
        }
        if eos {
            let _ = socket.send(Message::Text(json!({"isFinal": true}).to_string().into())).await;
            let _ = socket.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
            return;
        }
    }
}
