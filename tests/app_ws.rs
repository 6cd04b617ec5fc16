//! The app WebSocket end to end: a real server on loopback, a phone call played by the Twilio
//! test caller, and an app client driving that call over `/ws/app` with the no-cost speech
//! pair (`tone` TTS, `null` STT).

mod db;
mod support;

use std::time::Duration;

use db::{Backend, TestDb};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::twilio_caller::{CallerConfig, Received, TwilioCaller};
use switchboard::app::Server;
use switchboard::speech::providers::{SttChoice, TtsChoice};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Running {
    addr: std::net::SocketAddr,
    key: String,
    other_key: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _db: TestDb,
}

impl Running {
    async fn start() -> Self {
        let db = TestDb::new(Backend::Sqlite).await;
        let mut cfg = db.config();
        cfg.flows.dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flows");
        cfg.persistence.flush_interval = Duration::from_millis(20);
        cfg.speech.stt = SttChoice::Null;
        cfg.speech.tts = TtsChoice::Tone;
        let server = Server::start(cfg).await.expect("server starts");
        let key = server.demo_key.clone().expect("demo tenant");
        let (other, _) = server.state.store.ensure_tenant("other-tenant").await.unwrap();
        let (_, other_key) = server.state.store.create_api_key(&other.id, Some("test")).await.unwrap();
        let addr = server.local_addr;
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(server.run(async move { s.cancelled().await }));
        Self { addr, key, other_key, stop, task, _db: db }
    }

    fn caller(&self) -> CallerConfig {
        CallerConfig::new(format!("ws://{}/twilio/stream/test", self.addr)).parameter("flow", "front_desk")
    }

    async fn app(&self, key: &str) -> App {
        let url = format!("ws://{}/ws/app?api_key={key}", self.addr);
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("app socket opens");
        let mut app = App { ws, seen: Vec::new() };
        let hello = app.next().await;
        assert_eq!(hello["type"], "hello", "{hello}");
        app
    }

    async fn shutdown(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

struct App {
    ws: Ws,
    /// Every message received, in order.
    seen: Vec<Value>,
}

impl App {
    async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    async fn next(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(15), self.ws.next())
                .await
                .expect("a message within 15 s")
                .expect("socket open")
                .expect("frame");
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).unwrap();
                self.seen.push(v.clone());
                return v;
            }
        }
    }

    /// Reads until a message matches; panics with what was seen on timeout.
    async fn until(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.next()).await {
                Ok(v) if pred(&v) => return v,
                Ok(_) => {}
                Err(_) => panic!("no {what} within 20 s; seen: {:#?}", self.seen),
            }
        }
    }

    async fn event(&mut self, name: &str) -> Value {
        self.until(name, |v| v["type"] == "event" && v["event"] == name).await
    }

    async fn reply_to(&mut self, action_id: &str) -> Value {
        self.until(action_id, |v| v["action_id"] == action_id).await
    }
}

fn media_bytes(rec: &support::twilio_caller::Recording) -> usize {
    rec.received.iter().map(|r| if let Received::Media { bytes, .. } = r { bytes.len() } else { 0 }).sum()
}

#[tokio::test]
async fn an_app_drives_a_call_say_interrupt_transfer_hangup() {
    let srv = Running::start().await;
    let mut app = srv.app(&srv.key).await;
    app.send(json!({"type": "attach", "all": true, "action_id": "all"})).await;
    assert_eq!(app.reply_to("all").await["type"], "attached");

    let caller = TwilioCaller::connect(srv.caller()).await.unwrap();
    let attached = app.until("attached call", |v| v["type"] == "attached" && v["call_id"].is_string()).await;
    let call_id = attached["call_id"].as_str().unwrap().to_string();
    let started = app.event("call.started").await;
    assert_eq!(started["call_id"], call_id);
    assert_eq!(started["transport"], "twilio");
    let driver = app.event("call.driver").await;
    assert_eq!(driver["driver"], "app", "the call's flow handed over");

    // Stop whatever the flow had begun saying, then talk.
    app.send(json!({"type": "clear", "action_id": "c1", "call_id": call_id})).await;
    assert_eq!(app.reply_to("c1").await["type"], "ack");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = media_bytes(&caller.recording());
    let text = "Hello from the app. ".repeat(12);
    app.send(json!({"type": "say", "action_id": "s1", "call_id": call_id, "text": text})).await;
    let ack = app.reply_to("s1").await;
    assert_eq!((ack["type"].as_str(), ack["command"].as_str()), (Some("ack"), Some("say")), "{ack}");
    let speaking = app.until("bot.speaking of the app's text", |v| v["event"] == "bot.speaking" && v["text"] == text.as_str()).await;
    assert_eq!(speaking["call_id"], call_id);
    // The caller hears it: well over a second of new audio arrives.
    caller
        .wait_until(Duration::from_secs(10), |r| media_bytes(r) > before + 8000 * 3 / 2)
        .await
        .unwrap();

    // The caller talks over it.
    caller.say(support::speech_ulaw("no wait I need help with my bill").unwrap()).await;
    let cut = app.until("bot.interrupted of the app's text", |v| v["event"] == "bot.interrupted" && v["text"] == text.as_str()).await;
    let heard = cut["heard"].as_str().unwrap();
    assert_eq!(cut["text"], text.as_str());
    assert!(!heard.is_empty() && text.starts_with(heard) && heard.len() < text.len(), "heard {heard:?}");
    let fin = app.event("transcript.final").await;
    assert!(!fin["text"].as_str().unwrap().is_empty());

    // Transfer to a number: requested (and, without Twilio credentials here, failed).
    app.send(json!({"type": "transfer", "action_id": "t1", "call_id": call_id, "number": "+15550100"})).await;
    assert_eq!(app.reply_to("t1").await["type"], "ack");
    let req = app.event("transfer.requested").await;
    assert_eq!((req["target"].as_str(), req["target_kind"].as_str()), (Some("+15550100"), Some("number")));

    app.send(json!({"type": "hangup", "action_id": "h1", "call_id": call_id})).await;
    assert_eq!(app.reply_to("h1").await["type"], "ack");
    let ended = app.event("call.ended").await;
    assert_eq!(ended["cause"], "hangup");
    caller.wait_closed(Duration::from_secs(5)).await.unwrap();

    // After the end, commands are refused with a typed failure.
    app.send(json!({"type": "say", "action_id": "late", "call_id": call_id, "text": "hi"})).await;
    let late = app.reply_to("late").await;
    assert_eq!((late["type"].as_str(), late["code"].as_str()), (Some("failed"), Some("call_ended")));

    // Sequence numbers only go up.
    let seqs: Vec<u64> = app.seen.iter().filter_map(|v| v["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    srv.shutdown().await;
}

#[tokio::test]
async fn a_reconnecting_app_resumes_without_loss_or_duplicates() {
    let srv = Running::start().await;
    let mut watcher = srv.app(&srv.key).await;
    watcher.send(json!({"type": "attach", "all": true})).await;
    watcher.until("attached all", |v| v["type"] == "attached").await;
    let caller = TwilioCaller::connect(srv.caller()).await.unwrap();
    let call_id = watcher.until("attached call", |v| v["type"] == "attached" && v["call_id"].is_string()).await["call_id"]
        .as_str()
        .unwrap()
        .to_string();
    watcher.event("call.started").await;
    watcher.send(json!({"type": "clear", "action_id": "c", "call_id": call_id})).await;
    watcher.reply_to("c").await;
    caller.dtmf('1').await;
    let d1 = watcher.until("dtmf 1", |v| v["event"] == "dtmf" && v["digit"] == "1").await;
    let last_seen = d1["seq"].as_u64().unwrap();
    let before: Vec<u64> = watcher.seen.iter().filter_map(|v| v["seq"].as_u64()).collect();

    // The connection drops; meanwhile the caller keeps pressing keys.
    drop(watcher);
    caller.dtmf('2').await;
    caller.dtmf('3').await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut app = srv.app(&srv.key).await;
    app.send(json!({"type": "attach", "call_id": call_id, "since": last_seen, "action_id": "r"})).await;
    let attached = app.reply_to("r").await;
    assert_eq!((attached["type"].as_str(), attached["resumed_from"].as_u64()), (Some("attached"), Some(last_seen)), "{attached}");
    caller.dtmf('4').await;
    app.until("dtmf 4", |v| v["event"] == "dtmf" && v["digit"] == "4").await;
    let digits: Vec<&str> = app.seen.iter().filter(|v| v["event"] == "dtmf").map(|v| v["digit"].as_str().unwrap()).collect();
    assert_eq!(digits, ["2", "3", "4"], "every digit after the last seen one, once each");
    let after: Vec<u64> = app.seen.iter().filter_map(|v| v["seq"].as_u64()).collect();
    assert!(after.iter().all(|s| *s > last_seen && !before.contains(s)), "no duplicates: {before:?} then {after:?}");
    assert!(after.windows(2).all(|w| w[0] < w[1]), "in order: {after:?}");
    // The flow stayed quiet through the reconnect: the call is still driven by an app.
    assert!(!app.seen.iter().any(|v| v["event"] == "call.driver" && v["driver"] == "flow"));

    caller.hangup().await.unwrap();
    app.event("call.ended").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn bad_messages_get_errors_naming_the_field_and_the_socket_stays_open() {
    let srv = Running::start().await;
    let mut app = srv.app(&srv.key).await;
    app.ws.send(Message::text("this is not json")).await.unwrap();
    let e = app.next().await;
    assert_eq!((e["type"].as_str(), e["code"].as_str()), (Some("error"), Some("invalid_json")));

    let cases = [
        (json!({"action_id": "a1"}), "type"),
        (json!({"type": "dance", "action_id": "a2"}), "type"),
        (json!({"type": "say", "action_id": "a3", "call_id": "x"}), "text"),
        (json!({"type": "say", "action_id": "a4", "call_id": "x", "text": 42}), "text"),
        (json!({"type": "gather", "action_id": "a5", "call_id": "x", "timeout_ms": "soon"}), "timeout_ms"),
        (json!({"type": "hold", "action_id": "a6", "call_id": "x", "loudly": true}), "loudly"),
        (json!({"type": "play", "action_id": "a7"}), "call_id"),
    ];
    for (msg, field) in cases {
        app.send(msg.clone()).await;
        let e = app.next().await;
        assert_eq!((e["type"].as_str(), e["field"].as_str()), (Some("error"), Some(field)), "{msg} -> {e}");
        assert_eq!(e["action_id"], msg["action_id"]);
    }
    // Well-formed, but about a call that does not exist.
    app.send(json!({"type": "say", "action_id": "b1", "call_id": "nope", "text": "hi"})).await;
    let f = app.next().await;
    assert_eq!((f["type"].as_str(), f["code"].as_str(), f["field"].as_str()), (Some("failed"), Some("call_not_found"), Some("call_id")));
    app.send(json!({"type": "attach", "action_id": "b2", "call_id": "nope"})).await;
    assert_eq!(app.next().await["code"], "call_not_found");
    // Still open and answering.
    app.send(json!({"type": "attach", "all": true, "action_id": "ok"})).await;
    assert_eq!(app.reply_to("ok").await["type"], "attached");
    srv.shutdown().await;
}

#[tokio::test]
async fn another_tenant_cannot_attach_or_see_the_call() {
    let srv = Running::start().await;
    let bad = tokio_tungstenite::connect_async(format!("ws://{}/ws/app?api_key=wrong", srv.addr)).await;
    assert!(bad.is_err(), "a bad key is refused before the upgrade");

    let mut other = srv.app(&srv.other_key).await;
    other.send(json!({"type": "attach", "all": true, "action_id": "o"})).await;
    other.reply_to("o").await;
    let mut mine = srv.app(&srv.key).await;
    mine.send(json!({"type": "attach", "all": true, "action_id": "m"})).await;
    mine.reply_to("m").await;
    let caller = TwilioCaller::connect(srv.caller()).await.unwrap();
    let call_id = mine.until("attached call", |v| v["type"] == "attached" && v["call_id"].is_string()).await["call_id"]
        .as_str()
        .unwrap()
        .to_string();

    other.send(json!({"type": "attach", "call_id": call_id, "action_id": "steal"})).await;
    let f = other.reply_to("steal").await;
    assert_eq!((f["type"].as_str(), f["code"].as_str()), (Some("failed"), Some("call_not_found")), "{f}");
    other.send(json!({"type": "hangup", "call_id": call_id, "action_id": "kill"})).await;
    assert_eq!(other.reply_to("kill").await["code"], "call_not_found");
    assert!(
        !other.seen.iter().any(|v| v["type"] == "event" || v["call_id"].as_str() == Some(&call_id) && v["type"] == "attached"),
        "the other tenant saw nothing of the call: {:#?}",
        other.seen
    );
    // A second connection of the same tenant cannot take a call that is already driven.
    let mut second = srv.app(&srv.key).await;
    second.send(json!({"type": "attach", "call_id": call_id, "action_id": "dup"})).await;
    assert_eq!(second.reply_to("dup").await["code"], "already_attached");

    caller.hangup().await.unwrap();
    mine.event("call.ended").await;
    srv.shutdown().await;
}
