//! End to end: a phone call (the Twilio test caller) is routed by the demo flow into the
//! `sales` queue, hears its position, and is handed to an agent reachable by phone (the fake
//! Twilio REST API receives the `<Dial>`), while `/ws/events` sees every step in order.

mod db;
mod support;

use std::time::Duration;

use db::{Backend, TestDb};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::fake_twilio_rest::{CallUpdate, FakeTwilioRest};
use support::twilio_caller::{CallerConfig, TwilioCaller};
use switchboard::app::Server;
use switchboard::speech::providers::{SttChoice, TtsChoice};
use switchboard::transport::twilio::signature::compute_signature;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const ACCOUNT: &str = "AC0000000000000000000000000000beef";
const TOKEN: &str = "test-auth-token";

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next()).await.expect("an event within 20 s").unwrap().unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// Reads events until one satisfies `until`; returns everything read, in order.
async fn read_until(ws: &mut Ws, seen: &mut Vec<Value>, until: impl Fn(&Value) -> bool) -> Value {
    loop {
        let v = next_json(ws).await;
        seen.push(v.clone());
        if until(&v) {
            return v;
        }
    }
}

#[tokio::test]
async fn queued_call_hears_position_and_reaches_a_phone_agent() {
    let db = TestDb::new(Backend::Sqlite).await;
    let rest = FakeTwilioRest::start(ACCOUNT, TOKEN).await.unwrap();
    let mut cfg = db.config();
    cfg.flows.dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flows");
    cfg.persistence.flush_interval = Duration::from_millis(20);
    cfg.speech.stt = SttChoice::Null;
    cfg.speech.tts = TtsChoice::Tone;
    cfg.twilio.account_sid = Some(ACCOUNT.into());
    cfg.twilio.auth_token = Some(TOKEN.into());
    cfg.twilio.api_base = rest.base_url();
    cfg.center.announce_interval = Duration::from_secs(1);
    let server = Server::start(cfg).await.unwrap();
    let host = server.local_addr.to_string();
    let key = server.demo_key.clone().unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(server.run(async move { s.cancelled().await }));
    let http = reqwest::Client::new();
    let api = |path: &str| format!("http://{host}/api/v1{path}");

    for name in ["billing", "sales", "support"] {
        let r = http.post(api("/departments")).bearer_auth(&key).json(&json!({ "name": name })).send().await.unwrap();
        assert_eq!(r.status(), 201);
    }
    let sales: Value = http.get(api("/departments")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    let sales_id = sales.as_array().unwrap().iter().find(|d| d["name"] == "sales").unwrap()["id"].clone();
    let r = http
        .post(api("/agents"))
        .bearer_auth(&key)
        .json(&json!({ "id": "pat", "name": "Pat", "departments": [sales_id], "reach": { "kind": "phone", "number": "+15553334444" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // The supervisor's socket, authenticated by query parameter as a browser would.
    let url = format!("ws://{host}/ws/events?api_key={key}&kinds=call.started,call.transfer_requested,call.bot_speaking,call.ended,queue.*,transfer.*,agent.status");
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "hello");

    // The phone call: the signed voice webhook hands out the stream URL.
    let call_sid = "CA00000000000000000000000000000e2e";
    rest.add_call(call_sid, "+15550001111", "+15550002222");
    let mut updates = rest.subscribe();
    let params: Vec<(String, String)> = [("CallSid", call_sid), ("From", "+15550001111"), ("To", "+15550002222"), ("AccountSid", ACCOUNT)]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let signature = compute_signature(TOKEN, &format!("https://{host}/twilio/voice"), &params);
    let xml = http.post(format!("http://{host}/twilio/voice")).header("X-Twilio-Signature", signature).form(&params).send().await.unwrap().text().await.unwrap();
    let start = xml.find("wss://").expect("stream URL in TwiML");
    let stream_url = xml[start..start + xml[start..].find('"').unwrap()].replacen("wss://", "ws://", 1);
    let mut config = CallerConfig::new(stream_url).parameter("flow", "front_desk");
    config.call_sid = call_sid.into();
    let caller = TwilioCaller::connect(config).await.unwrap();
    caller.wait_until(Duration::from_secs(10), |r| !r.received.is_empty()).await.unwrap();
    // The demo menu: 2 is sales; the flow asks to confirm: 1 is yes.
    caller.dtmf('2').await;
    caller.wait_until(Duration::from_secs(10), |r| r.clears_received() > 0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    caller.dtmf('1').await;

    let mut seen = Vec::new();
    let announcement = read_until(&mut ws, &mut seen, |v| v["kind"] == "queue.announcement").await;
    assert_eq!((announcement["department"].as_str(), announcement["data"]["position"].as_u64()), (Some("sales"), Some(1)));
    // The caller hears it: the call actor speaks the announcement.
    read_until(&mut ws, &mut seen, |v| {
        v["kind"] == "call.bot_speaking" && v["data"]["text"].as_str().unwrap_or("").starts_with("You are number 1 in the queue")
    })
    .await;
    let (s, queue): (_, Value) = {
        let r = http.get(api(&format!("/departments/{}/queue", sales_id.as_str().unwrap()))).bearer_auth(&key).send().await.unwrap();
        (r.status(), r.json().await.unwrap())
    };
    assert_eq!((s.as_u16(), queue["calls"][0]["position"].as_u64()), (200, Some(1)));

    // Pat becomes available: the call is dialled to Pat's phone through Twilio.
    let r = http.put(api("/agents/pat/status")).bearer_auth(&key).json(&json!({ "status": "available" })).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let twiml = loop {
        let update = tokio::time::timeout(Duration::from_secs(15), updates.recv()).await.unwrap().unwrap();
        if let CallUpdate::Redirected { sid, twiml: Some(twiml), .. } = update {
            assert_eq!(sid, call_sid);
            break twiml;
        }
    };
    assert!(twiml.contains("<Dial") && twiml.contains("+15553334444"), "{twiml}");
    read_until(&mut ws, &mut seen, |v| v["kind"] == "transfer.connected").await;
    caller.hangup().await.unwrap();
    read_until(&mut ws, &mut seen, |v| v["kind"] == "agent.status" && v["data"]["status"] == "wrap_up").await;

    // Every step, in order, each once, with increasing sequence numbers.
    let seqs: Vec<u64> = seen.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order, no duplicates: {seqs:?}");
    let kinds: Vec<&str> = seen.iter().map(|v| v["kind"].as_str().unwrap()).collect();
    let steps = [
        "call.started",
        "call.transfer_requested",
        "transfer.requested",
        "transfer.queued",
        "queue.joined",
        "queue.announcement",
        "call.bot_speaking",
        "queue.offered",
        "transfer.offered",
        "queue.answered",
        "transfer.connected",
        "call.ended",
    ];
    let mut at = 0;
    for step in steps {
        let found = kinds[at..].iter().position(|k| *k == step).unwrap_or_else(|| panic!("{step} missing after position {at} in {kinds:?}"));
        at += found + 1;
    }
    assert!(seen.iter().all(|v| v["type"] == "event"));
    assert!(seen.iter().filter(|v| v["kind"].as_str().unwrap().starts_with("queue.")).all(|v| v["department"] == "sales"));

    // A live filter change, and a message the server cannot parse.
    ws.send(Message::Text(r#"{"type":"subscribe","kinds":["department.*"]}"#.into())).await.unwrap();
    ws.send(Message::Text("hello?".into())).await.unwrap();
    let err = next_json(&mut ws).await;
    assert_eq!(err["type"], "error");
    let r = http.post(api("/departments")).bearer_auth(&key).json(&json!({ "name": "returns" })).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let ev = next_json(&mut ws).await;
    assert_eq!((ev["kind"].as_str(), ev["department"].as_str()), (Some("department.created"), Some("returns")));
    // A bad key never gets a socket.
    assert!(tokio_tungstenite::connect_async(format!("ws://{host}/ws/events?api_key=nope")).await.is_err());
    stop.cancel();
    task.await.unwrap().unwrap();
}
