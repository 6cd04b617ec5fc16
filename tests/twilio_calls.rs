//! Phone calls end to end: a real server on loopback, the Twilio side played by the test
//! caller, real offline speech (espeak-ng, pocketsphinx) or the no-cost `tone`/`null` pair.

mod db;
mod support;

use std::time::Duration;

use db::{Backend, TestDb};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::twilio_caller::{CallerConfig, Received, TwilioCaller};
use switchboard::app::Server;
use switchboard::config::Config;
use switchboard::speech::providers::{SttChoice, TtsChoice};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

struct Running {
    base: String,
    ws: String,
    key: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _db: TestDb,
}

impl Running {
    async fn start(db: TestDb, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut cfg = db.config();
        cfg.flows.dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flows");
        cfg.persistence.flush_interval = Duration::from_millis(20);
        tweak(&mut cfg);
        if let Ok(filter) = std::env::var("TEST_LOG") {
            switchboard::telemetry::init_tracing(switchboard::config::LogFormat::Human, &filter);
        }
        let server = Server::start(cfg).await.expect("server starts");
        let addr = server.local_addr;
        let key = server.demo_key.clone().expect("demo tenant");
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(server.run(async move { s.cancelled().await }));
        Self { base: format!("http://{addr}"), ws: format!("ws://{addr}/twilio/stream/test"), key, stop, task, _db: db }
    }

    async fn offline() -> Self {
        Self::start(TestDb::new(Backend::Sqlite).await, |_| {}).await
    }

    /// The no-cost speech pair: a speech-like tone for the bot, `[speech]` for every turn.
    async fn synthetic(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start(TestDb::new(Backend::Sqlite).await, |cfg| {
            cfg.speech.stt = SttChoice::Null;
            cfg.speech.tts = TtsChoice::Tone;
            tweak(cfg);
        })
        .await
    }

    fn caller(&self) -> CallerConfig {
        CallerConfig::new(self.ws.clone()).parameter("flow", "front_desk")
    }

    /// The persisted call for a Twilio CallSid, with its events; waits for the writer.
    async fn call_record(&self, call_sid: &str, until: impl Fn(&Value) -> bool) -> Value {
        let http = reqwest::Client::new();
        let mut last = Value::Null;
        for _ in 0..300 {
            let list: Value = http
                .get(format!("{}/api/v1/calls?limit=50", self.base))
                .bearer_auth(&self.key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(call) = list["calls"].as_array().unwrap().iter().find(|c| c["external_id"] == call_sid) {
                let id = call["id"].as_str().unwrap();
                last = http
                    .get(format!("{}/api/v1/calls/{id}", self.base))
                    .bearer_auth(&self.key)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if until(&last) {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("call {call_sid} never reached the expected state; last seen: {last:#}");
    }

    async fn shutdown(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn events_of<'a>(call: &'a Value, kind: &str) -> Vec<&'a Value> {
    call["events"].as_array().unwrap().iter().filter(|e| e["kind"] == kind).collect()
}

fn has_event(call: &Value, kind: &str) -> bool {
    !events_of(call, kind).is_empty()
}

fn media_frames(rec: &support::twilio_caller::Recording) -> Vec<&Vec<u8>> {
    rec.received
        .iter()
        .filter_map(|r| match r {
            Received::Media { bytes, .. } => Some(bytes),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn greeting_plays_in_whole_frames_with_marks_and_is_recorded() {
    let srv = Running::offline().await;
    let caller = TwilioCaller::connect(srv.caller()).await.unwrap();
    // The demo greeting is a few seconds of espeak-ng speech; wait until it has played out.
    let rec = caller
        .wait_until(Duration::from_secs(30), |r| {
            media_frames(r).len() > 100 && r.echoed_marks.len() >= 2 && r.echoed_marks.iter().all(|m| !m.cleared)
        })
        .await
        .unwrap();
    let frames = media_frames(&rec);
    assert!(frames.len() >= 50, "at least a second of greeting: {}", frames.len());
    assert!(frames.iter().all(|f| f.len() == 160), "every frame is exactly 20 ms of μ-law");
    assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    assert!(!rec.marks_received().is_empty());
    let call_sid = caller.config().call_sid.clone();
    let rec = caller.hangup().await.unwrap();
    assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    let call = srv
        .call_record(&call_sid, |c| c["state"] == "ended" && has_event(c, "bot_utterance"))
        .await;
    assert_eq!(call["end_cause"], "caller_hangup");
    assert_eq!(call["transport"], "twilio");
    assert!(has_event(&call, "started"));
    assert!(has_event(&call, "bot_speaking"));
    assert!(has_event(&call, "mark"));
    assert!(has_event(&call, "ended"));
    srv.shutdown().await;
}

#[tokio::test]
async fn spoken_department_is_recognized_and_transferred() {
    let srv = Running::offline().await;
    let caller = TwilioCaller::connect(srv.caller()).await.unwrap();
    let call_sid = caller.config().call_sid.clone();
    // Let the greeting finish (no barge-in), then answer.
    caller
        .wait_until(Duration::from_secs(20), |r| !r.echoed_marks.is_empty() && r.speech_pending() == 0)
        .await
        .unwrap();
    let call = srv.call_record(&call_sid, |c| has_event(c, "bot_utterance")).await;
    assert!(!events_of(&call, "bot_utterance").is_empty());
    caller.say(support::speech_ulaw("billing please").unwrap()).await;
    let call = srv
        .call_record(&call_sid, |c| has_event(c, "transfer_requested"))
        .await;
    let finals = events_of(&call, "transcript_final");
    assert!(
        finals.iter().any(|e| e["data"]["text"].as_str().unwrap_or("").contains("billing")),
        "transcripts: {finals:?}"
    );
    let transfer = events_of(&call, "transfer_requested")[0];
    assert_eq!(transfer["data"]["target"], "billing");
    caller.hangup().await.unwrap();
    srv.shutdown().await;
}

#[tokio::test]
async fn dtmf_routes_to_sales() {
    let srv = Running::synthetic(|_| {}).await;
    let caller = TwilioCaller::connect(srv.caller()).await.unwrap();
    let call_sid = caller.config().call_sid.clone();
    caller.wait_until(Duration::from_secs(10), |r| !r.received.is_empty()).await.unwrap();
    caller.dtmf('2').await;
    // The digit interrupts the greeting; the flow confirms ("Sales, is that right?"): 1 = yes.
    caller.wait_until(Duration::from_secs(10), |r| r.clears_received() > 0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    caller.dtmf('1').await;
    let call = srv.call_record(&call_sid, |c| has_event(c, "transfer_requested")).await;
    assert_eq!(events_of(&call, "dtmf")[0]["data"]["digit"], "2");
    assert_eq!(events_of(&call, "transfer_requested")[0]["data"]["target"], "sales");
    caller.hangup().await.unwrap();
    srv.shutdown().await;
}

#[tokio::test]
async fn caller_interrupting_the_bot_gets_clear_and_the_heard_part_is_recorded() {
    let srv = Running::synthetic(|_| {}).await;
    let caller = TwilioCaller::connect(srv.caller()).await.unwrap();
    let call_sid = caller.config().call_sid.clone();
    // Wait for the greeting to be well under way, then talk over it.
    caller
        .wait_until(Duration::from_secs(10), |r| r.echoed_marks.iter().filter(|m| !m.cleared).count() >= 2)
        .await
        .unwrap();
    let speech = support::speech_ulaw("no wait I need help with my bill").unwrap();
    caller.say(speech).await;
    let started = tokio::time::Instant::now();
    let rec = caller.wait_until(Duration::from_secs(5), |r| r.clears_received() > 0).await.unwrap();
    let waited = started.elapsed();
    // VAD start (200 ms) + barge-in minimum (300 ms in total) + a frame, plus scheduling slack.
    assert!(waited < Duration::from_millis(1500), "clear came {waited:?} after speech began");
    let call = srv
        .call_record(&call_sid, |c| {
            events_of(c, "bot_utterance").iter().any(|e| e["data"]["cut"] == true)
        })
        .await;
    assert!(has_event(&call, "barge_in"));
    let cut = events_of(&call, "bot_utterance").into_iter().find(|e| e["data"]["cut"] == true).unwrap();
    let text = cut["data"]["text"].as_str().unwrap();
    let heard = cut["data"]["heard"].as_str().unwrap();
    assert!(!heard.is_empty() && text.starts_with(heard) && heard.len() < text.len(), "heard {heard:?} of {text:?}");
    assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    caller.hangup().await.unwrap();
    srv.shutdown().await;
}

/// Raw socket helpers for the bad-input tests.
async fn raw(url: &str) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

fn start_msg(stream_sid: &str, call_sid: &str) -> String {
    json!({
        "event": "start", "sequenceNumber": "1", "streamSid": stream_sid,
        "start": {"accountSid": "AC1", "streamSid": stream_sid, "callSid": call_sid, "tracks": ["inbound"],
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                  "customParameters": {"flow": "front_desk"}}
    })
    .to_string()
}

fn media_msg(stream_sid: &str, seq: u64, payload: &str) -> String {
    json!({"event": "media", "sequenceNumber": seq.to_string(), "streamSid": stream_sid,
           "media": {"track": "inbound", "chunk": seq.to_string(), "timestamp": (seq * 20).to_string(), "payload": payload}})
    .to_string()
}

#[tokio::test]
async fn bad_input_is_survived_and_other_calls_keep_their_audio() {
    let srv = Running::synthetic(|_| {}).await;
    // A healthy call runs beside all the abuse.
    let good = TwilioCaller::connect(srv.caller()).await.unwrap();
    let good_sid = good.config().call_sid.clone();

    // 1. Garbage on an otherwise valid stream: ignored with a warning, the stream goes on.
    let mut ws = raw(&srv.ws).await;
    ws.send(Message::text(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#)).await.unwrap();
    ws.send(Message::text(media_msg("MZbad", 1, "//8="))).await.unwrap(); // media before start
    ws.send(Message::text(start_msg("MZbad", "CAbad"))).await.unwrap();
    ws.send(Message::text("this is not json")).await.unwrap();
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    ws.send(Message::text(media_msg("MZbad", 2, "***not base64***"))).await.unwrap();
    ws.send(Message::text(media_msg("MZother", 3, "//8="))).await.unwrap(); // wrong streamSid
    ws.send(Message::text(start_msg("MZbad", "CAbad"))).await.unwrap(); // second start
    ws.send(Message::text(r#"{"event":"futuristic","streamSid":"MZbad"}"#)).await.unwrap(); // unknown
    ws.send(Message::text(media_msg("MZbad", 4, "//8="))).await.unwrap(); // odd size is fine for μ-law
    let call = srv.call_record("CAbad", |c| events_of(c, "protocol_warning").len() >= 4).await;
    assert_eq!(call["state"], "active", "garbage does not end the call");
    // The bad stream still gets its greeting.
    let mut got_media = false;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        if let Message::Text(t) = msg {
            if t.contains(r#""event":"media""#) {
                assert!(t.contains(r#""streamSid":"MZbad""#));
                got_media = true;
                break;
            }
        }
    }
    assert!(got_media, "the stream carried on after bad input");
    drop(ws);

    // 2. A 1 MiB frame: that stream is closed; nothing else is.
    let mut big = raw(&srv.ws).await;
    big.send(Message::text(start_msg("MZbig", "CAbig"))).await.unwrap();
    let huge = media_msg("MZbig", 2, &"A".repeat(1 << 20));
    let _ = big.send(Message::text(huge)).await;
    let call = srv.call_record("CAbig", |c| c["state"] == "ended").await;
    assert_eq!(call["end_cause"], "protocol_error");

    // 3. Abrupt disconnect without stop.
    let abrupt = TwilioCaller::connect(CallerConfig::new(srv.ws.clone())).await.unwrap();
    let abrupt_sid = abrupt.config().call_sid.clone();
    abrupt.wait_until(Duration::from_secs(5), |r| !r.received.is_empty()).await.unwrap();
    abrupt.drop_connection().await.unwrap();
    let call = srv.call_record(&abrupt_sid, |c| c["state"] == "ended").await;
    assert_eq!(call["end_cause"], "transport_closed");

    // The good call never noticed: its audio kept coming in whole frames, without violations.
    let rec = good.wait_until(Duration::from_secs(10), |r| r.received.len() > 60).await.unwrap();
    assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    assert!(media_frames(&rec).iter().all(|f| f.len() == 160));
    good.hangup().await.unwrap();
    let call = srv.call_record(&good_sid, |c| c["state"] == "ended").await;
    assert_eq!(call["end_cause"], "caller_hangup");
    srv.shutdown().await;
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_cut_off() {
    let srv = Running::synthetic(|cfg| cfg.calls.playout_lead = Duration::from_secs(2)).await;
    // Connect, start, then never read: the server's writes back up and it ends the call.
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(
        &srv.ws,
        Some(tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()),
        false,
    )
    .await
    .unwrap();
    ws.send(Message::text(start_msg("MZslow", "CAslow"))).await.unwrap();
    // Keep sending caller audio so the call is not idle, but read nothing.
    let sender = tokio::spawn(async move {
        for seq in 2..3000u64 {
            if ws.send(Message::text(media_msg("MZslow", seq, &"/".repeat(212)))).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ws
    });
    let call = srv.call_record("CAslow", |c| c["state"] == "ended").await;
    assert!(
        ["slow_consumer", "transport_closed", "protocol_error", "caller_hangup"].contains(&call["end_cause"].as_str().unwrap()),
        "{call:#}"
    );
    sender.abort();
    srv.shutdown().await;
}

#[tokio::test]
async fn calls_beyond_the_limit_are_refused_with_a_reason() {
    let srv = Running::synthetic(|cfg| cfg.calls.max_concurrent = 1).await;
    let first = TwilioCaller::connect(srv.caller()).await.unwrap();
    first.wait_until(Duration::from_secs(5), |r| !r.received.is_empty()).await.unwrap();
    let mut second = raw(&srv.ws).await;
    second.send(Message::text(start_msg("MZ2", "CA2"))).await.unwrap();
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), second.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame.unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1013);
    assert!(close.reason.contains("capacity"), "{}", close.reason);
    first.hangup().await.unwrap();
    srv.shutdown().await;
}
