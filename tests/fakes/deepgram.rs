//! A fake Deepgram live endpoint (`/v1/listen`).
//!
//! It "transcribes" by a lexicon: every binary frame is one chunk of audio whose first byte is
//! a word code (a code not in the lexicon is silence). A word lasts while consecutive chunks
//! carry its code. Results follow the real service: interim results when a word ends,
//! `is_final` pieces every `final_every_words` words, and at an endpoint (enough silent
//! chunks) either `speech_final` or an `UtteranceEnd`. `Finalize` and `CloseStream` behave as
//! documented. Times are computed from the bytes received on that socket.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

#[derive(Debug, Clone)]
pub struct Options {
    /// The key clients must present as `Authorization: Token <key>`.
    pub api_key: String,
    /// Refuse every handshake with this HTTP status.
    pub reject_status: Option<u16>,
    /// Record everything, answer nothing.
    pub silent: bool,
    /// Answer audio with text that is not JSON.
    pub garbage: bool,
    /// On the first connection only, drop the TCP connection (no close frame) once this many
    /// audio bytes arrived.
    pub drop_first_after_bytes: Option<usize>,
    pub lexicon: Vec<(u8, &'static str)>,
    pub final_every_words: usize,
    /// Silent chunks after speech that make an endpoint.
    pub endpoint_chunks: usize,
    /// At an endpoint: true sends `speech_final`, false sends `UtteranceEnd`.
    pub speech_final_on_endpoint: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            api_key: "dg-test-key".to_owned(),
            reject_status: None,
            silent: false,
            garbage: false,
            drop_first_after_bytes: None,
            lexicon: vec![(1, "one"), (2, "two"), (3, "three"), (4, "four"), (5, "hello"), (6, "world")],
            final_every_words: 2,
            endpoint_chunks: 5,
            speech_final_on_endpoint: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub query: String,
    pub authorization: Option<String>,
    pub frames: Vec<Frame>,
}

impl Connection {
    pub fn texts(&self) -> Vec<String> {
        self.frames
            .iter()
            .filter_map(|f| match f {
                Frame::Text(t) => Some(t.clone()),
                Frame::Binary(_) => None,
            })
            .collect()
    }
    pub fn binaries(&self) -> Vec<Vec<u8>> {
        self.frames
            .iter()
            .filter_map(|f| match f {
                Frame::Binary(b) => Some(b.clone()),
                Frame::Text(_) => None,
            })
            .collect()
    }
    pub fn has_param(&self, pair: &str) -> bool {
        self.query.split('&').any(|p| p == pair)
    }
}

struct Shared {
    options: Options,
    connections: Mutex<Vec<Connection>>,
}

pub struct FakeDeepgram {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeDeepgram {
    pub async fn start(options: Options) -> Self {
        let shared = Arc::new(Shared { options, connections: Mutex::new(Vec::new()) });
        let router = Router::new().route("/v1/listen", get(listen)).with_state(shared.clone());
        let addr = super::serve(router).await;
        Self { addr, shared }
    }

    pub fn base_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn connections(&self) -> Vec<Connection> {
        self.shared.connections.lock().expect("fake state lock").clone()
    }
}

async fn listen(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(status) = shared.options.reject_status {
        let status = StatusCode::from_u16(status).expect("test gives a valid status");
        return (status, r#"{"err_code":"REJECTED","err_msg":"rejected by the fake"}"#).into_response();
    }
    if authorization.as_deref() != Some(&format!("Token {}", shared.options.api_key)) {
        return (StatusCode::UNAUTHORIZED, r#"{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials."}"#)
            .into_response();
    }
    let index = {
        let mut conns = shared.connections.lock().expect("fake state lock");
        conns.push(Connection { query: query.unwrap_or_default(), authorization, frames: Vec::new() });
        conns.len() - 1
    };
    ws.on_upgrade(move |socket| session(shared, index, socket))
}

struct Transcriber {
    bytes_per_sec: f64,
    t: f64,
    cur: Option<(u8, f64)>,
    words: Vec<(String, f64, f64)>,
    final_from: f64,
    silence: usize,
    in_speech: bool,
    last_word_end: f64,
}

fn results(words: &[(String, f64, f64)], start: f64, end: f64, is_final: bool, speech_final: bool, from_finalize: bool) -> String {
    let transcript = words.iter().map(|w| w.0.as_str()).collect::<Vec<_>>().join(" ");
    let wjson: Vec<_> = words
        .iter()
        .map(|(w, s, e)| json!({"word": w, "start": s, "end": e, "confidence": 0.9, "punctuated_word": w}))
        .collect();
    json!({
        "type": "Results", "channel_index": [0, 1], "duration": end - start, "start": start,
        "is_final": is_final, "speech_final": speech_final, "from_finalize": from_finalize,
        "channel": {"alternatives": [{"transcript": transcript, "confidence": 0.9, "words": wjson}]},
        "metadata": {"request_id": "fake", "model_info": {"name": "fake", "version": "1", "arch": "fake"}, "model_uuid": "fake"}
    })
    .to_string()
}

impl Transcriber {
    fn finish_word(&mut self, o: &Options, out: &mut Vec<String>) {
        let Some((code, start)) = self.cur.take() else { return };
        let word = o.lexicon.iter().find(|(c, _)| *c == code).map(|(_, w)| *w).unwrap_or("?");
        self.words.push((word.to_owned(), start, self.t));
        self.last_word_end = self.t;
        out.push(results(&self.words, self.final_from, self.t, false, false, false));
        if self.words.len() >= o.final_every_words {
            out.push(results(&self.words, self.final_from, self.t, true, false, false));
            self.words.clear();
            self.final_from = self.t;
        }
    }

    fn on_audio(&mut self, o: &Options, frame: &[u8], out: &mut Vec<String>) {
        let code = frame.first().copied().unwrap_or(0);
        let is_word = o.lexicon.iter().any(|(c, _)| *c == code);
        if is_word {
            if !self.in_speech {
                self.in_speech = true;
                out.push(json!({"type": "SpeechStarted", "channel": [0], "timestamp": self.t}).to_string());
            }
            if self.cur.map(|(c, _)| c) != Some(code) {
                self.finish_word(o, out);
                self.cur = Some((code, self.t));
            }
            self.silence = 0;
        } else {
            self.finish_word(o, out);
            self.silence += 1;
            if self.in_speech && self.silence >= o.endpoint_chunks {
                self.in_speech = false;
                let end = self.t + frame.len() as f64 / self.bytes_per_sec;
                if o.speech_final_on_endpoint {
                    out.push(results(&self.words, self.final_from, end, true, true, false));
                } else {
                    if !self.words.is_empty() {
                        out.push(results(&self.words, self.final_from, end, true, false, false));
                    }
                    out.push(json!({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": self.last_word_end}).to_string());
                }
                self.words.clear();
                self.final_from = end;
            }
        }
        self.t += frame.len() as f64 / self.bytes_per_sec;
    }

    fn finalize(&mut self, o: &Options, out: &mut Vec<String>, speech_final: bool, from_finalize: bool) {
        if let Some((code, start)) = self.cur.take() {
            let word = o.lexicon.iter().find(|(c, _)| *c == code).map(|(_, w)| *w).unwrap_or("?");
            self.words.push((word.to_owned(), start, self.t));
        }
        out.push(results(&self.words, self.final_from, self.t, true, speech_final, from_finalize));
        self.words.clear();
        self.final_from = self.t;
    }
}

async fn session(shared: Arc<Shared>, index: usize, mut socket: WebSocket) {
    let o = shared.options.clone();
    let linear = shared.connections.lock().expect("fake state lock")[index].query.contains("encoding=linear16");
    let mut tr = Transcriber {
        bytes_per_sec: if linear { 32_000.0 } else { 8_000.0 },
        t: 0.0,
        cur: None,
        words: Vec::new(),
        final_from: 0.0,
        silence: 0,
        in_speech: false,
        last_word_end: 0.0,
    };
    let mut audio_bytes = 0usize;
    while let Some(Ok(msg)) = socket.recv().await {
        let mut out = Vec::new();
        let mut close = false;
        {
            let mut conns = shared.connections.lock().expect("fake state lock");
            let frames = &mut conns[index].frames;
            match &msg {
                Message::Binary(b) => frames.push(Frame::Binary(b.to_vec())),
                Message::Text(t) => frames.push(Frame::Text(t.to_string())),
                Message::Close(_) => return,
                _ => continue,
            }
        }
        match msg {
            Message::Binary(b) => {
                audio_bytes += b.len();
                if o.garbage {
                    out.push("<html>502 Bad Gateway</html>".to_owned());
                } else {
                    tr.on_audio(&o, &b, &mut out);
                }
            }
            Message::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                match v["type"].as_str() {
                    Some("Finalize") => tr.finalize(&o, &mut out, false, true),
                    Some("CloseStream") => {
                        tr.finalize(&o, &mut out, true, false);
                        out.push(json!({"type": "Metadata", "transaction_key": "deprecated", "request_id": "fake",
                            "sha256": "0", "created": "2025-01-01T00:00:00Z", "duration": tr.t, "channels": 1}).to_string());
                        close = true;
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        if !o.silent {
            for text in out {
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            if close {
                let _ = socket.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
                return;
            }
        }
        if index == 0
            && let Some(limit) = o.drop_first_after_bytes
            && audio_bytes >= limit
        {
            // Dropping the socket without a close frame is what a network failure looks like.
            return;
        }
    }
}
