//! A fake OpenAI-compatible chat server: `POST /v1/chat/completions` answering with scripted
//! server-sent event streams, and `POST /lookup`, a lookup webhook with a fixed JSON answer.
//!
//! Each completion request takes the next [`Reply`] from the script (the last one repeats).
//! A streamed reply is a list of [`Step`]s written in order, each `Event` as its own body
//! chunk, so the client sees the stream arrive piece by piece. The fake records every request
//! body and lookup query, and notices when a client drops a stream before its end.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

#[derive(Debug, Clone)]
pub enum Step {
    /// Raw event-stream text, written as one body chunk.
    Raw(String),
    Delay(Duration),
    /// Waits until the `Notify` fires.
    Hold(Arc<Notify>),
    /// Breaks the connection off mid-body.
    Abort,
}

#[derive(Debug, Clone)]
pub enum Reply {
    Stream(Vec<Step>),
    /// An OpenAI error body with this status, and a `Retry-After` header when given.
    Status {
        status: u16,
        message: String,
        retry_after: Option<u64>,
    },
    /// Accepts the request and never answers.
    Hang,
}

/// `data: {chunk}` carrying a piece of text.
pub fn text(t: &str) -> Step {
    chunk(json!({"role": "assistant", "content": t}), None)
}

/// A tool call fragment: the first one of a call carries `id` and `name`.
pub fn tool_fragment(index: u32, id_and_name: Option<(&str, &str)>, arguments: &str) -> Step {
    let mut call = json!({"index": index, "function": {"arguments": arguments}});
    if let Some((id, name)) = id_and_name {
        call["id"] = json!(id);
        call["type"] = json!("function");
        call["function"]["name"] = json!(name);
    }
    chunk(json!({"tool_calls": [call]}), None)
}

/// The last chunk, with its `finish_reason`.
pub fn finish(reason: &str) -> Step {
    chunk(json!({}), Some(reason))
}

pub fn done() -> Step {
    Step::Raw("data: [DONE]\n\n".to_owned())
}

fn chunk(delta: Value, finish_reason: Option<&str>) -> Step {
    let body = json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    });
    Step::Raw(format!("data: {body}\n\n"))
}

/// A whole answer in words, one token per step, ending properly.
pub fn answer(tokens: &[&str]) -> Reply {
    let mut steps: Vec<Step> = tokens.iter().map(|t| text(t)).collect();
    steps.push(finish("stop"));
    steps.push(done());
    Reply::Stream(steps)
}

#[derive(Debug, Clone)]
pub struct Options {
    /// When set, requests need `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// What `/lookup` answers.
    pub lookup_answer: Value,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            api_key: Some("chat-test-key".to_owned()),
            lookup_answer: json!({"found": true}),
        }
    }
}

struct Shared {
    options: Options,
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Value>>,
    lookups: Mutex<Vec<Value>>,
    /// Streams whose client went away before the last step.
    dropped: AtomicUsize,
}

pub struct FakeChat {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeChat {
    pub async fn start(options: Options, script: Vec<Reply>) -> Self {
        let shared = Arc::new(Shared {
            options,
            script: Mutex::new(script.into()),
            requests: Mutex::default(),
            lookups: Mutex::default(),
            dropped: AtomicUsize::new(0),
        });
        let router = Router::new()
            .route("/v1/chat/completions", post(completions))
            .route("/lookup", post(lookup))
            .with_state(shared.clone());
        let addr = super::serve(router).await;
        Self { addr, shared }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn lookup_url(&self) -> String {
        format!("http://{}/lookup", self.addr)
    }

    /// Completion request bodies, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.shared
            .requests
            .lock()
            .expect("fake state lock")
            .clone()
    }

    /// Lookup webhook bodies, in order.
    pub fn lookups(&self) -> Vec<Value> {
        self.shared.lookups.lock().expect("fake state lock").clone()
    }

    /// How many streams the client abandoned before their end.
    pub fn dropped_streams(&self) -> usize {
        self.shared.dropped.load(Ordering::SeqCst)
    }
}

fn error(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).expect("test gives a valid status");
    let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn completions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(k) = &shared.options.api_key {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if auth != Some(&format!("Bearer {k}")) {
            return error(401, "Incorrect API key provided");
        }
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "body is not JSON");
    };
    if req["stream"] != json!(true) || !req["messages"].is_array() || !req["model"].is_string() {
        return error(
            400,
            "this fake wants a streamed request with model and messages",
        );
    }
    shared.requests.lock().expect("fake state lock").push(req);
    let reply = {
        let mut script = shared.script.lock().expect("fake state lock");
        if script.len() > 1 {
            script.pop_front()
        } else {
            script.front().cloned()
        }
    };
    let steps = match reply {
        None => return error(500, "the fake has no script"),
        Some(Reply::Status {
            status,
            message,
            retry_after,
        }) => {
            let mut resp = error(status, &message);
            if let Some(s) = retry_after {
                resp.headers_mut().insert(
                    header::RETRY_AFTER,
                    s.to_string().parse().expect("digits are a valid header"),
                );
            }
            return resp;
        }
        Some(Reply::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return error(504, "hung");
        }
        Some(Reply::Stream(steps)) => steps,
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        let n = steps.len();
        for (i, step) in steps.into_iter().enumerate() {
            let sent = match step {
                Step::Raw(text) => tx.send(Ok(Bytes::from(text))).await.is_ok(),
                Step::Delay(d) => {
                    tokio::time::sleep(d).await;
                    true
                }
                Step::Hold(n) => {
                    tokio::select! {
                        _ = n.notified() => true,
                        _ = tx.closed() => false,
                    }
                }
                Step::Abort => {
                    let _ = tx
                        .send(Err(std::io::Error::other("fake breaks the stream off")))
                        .await;
                    return;
                }
            };
            if !sent {
                if i + 1 < n {
                    shared.dropped.fetch_add(1, Ordering::SeqCst);
                }
                return;
            }
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn lookup(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "body is not JSON");
    };
    shared.lookups.lock().expect("fake state lock").push(req);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        shared.options.lookup_answer.to_string(),
    )
        .into_response()
}
