//! The server under test and the requests the tests make of it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::app::Server;
use switchboard::speech::providers::{SttChoice, TtsChoice};
use switchboard::transport::twilio::signature::compute_signature;
use tokio_util::sync::CancellationToken;

use crate::db::{Backend, TestDb};
use crate::support::twilio_caller::{CallerConfig, TwilioCaller};
use crate::support::webrtc_client::Client;

const ACCOUNT: &str = "AC0000000000000000000000000000beef";
const TOKEN: &str = "test-auth-token";

pub struct Env {
    pub base: String,
    pub host: String,
    pub key: String,
    pub webrtc: switchboard::transport::webrtc::WebRtc,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _db: TestDb,
}

pub async fn start() -> Env {
    start_with(|_| {}).await
}

pub async fn start_with(tweak: impl FnOnce(&mut switchboard::config::Config)) -> Env {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut cfg = db.config();
    cfg.flows.dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flows");
    cfg.speech.stt = SttChoice::Null;
    cfg.speech.tts = TtsChoice::Tone;
    cfg.persistence.flush_interval = Duration::from_millis(20);
    cfg.twilio.account_sid = Some(ACCOUNT.into());
    cfg.twilio.auth_token = Some(TOKEN.into());
    tweak(&mut cfg);
    if let Ok(filter) = std::env::var("TEST_LOG") {
        switchboard::telemetry::init_tracing(switchboard::config::LogFormat::Human, &filter);
    }
    let server = Server::start(cfg).await.unwrap();
    let host = server.local_addr.to_string();
    let key = server.demo_key.clone().unwrap();
    let webrtc = server.state.webrtc.clone();
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(server.run(async move { s.cancelled().await }));
    Env { base: format!("http://{host}"), host, key, webrtc, stop, task, _db: db }
}

impl Env {
    pub fn http(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http_as(&self.key, method, path)
    }

    pub fn http_as(&self, key: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new().request(method, format!("{}{path}", self.base)).bearer_auth(key)
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let resp = self.http(reqwest::Method::POST, path).json(&body).send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn stream_url(&self, call_sid: &str) -> String {
        let params: Vec<(String, String)> = [("CallSid", call_sid), ("From", "+15550001111"), ("To", "+15550002222"), ("AccountSid", ACCOUNT)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let signature = compute_signature(TOKEN, &format!("https://{}/twilio/voice", self.host), &params);
        let xml = reqwest::Client::new()
            .post(format!("{}/twilio/voice", self.base))
            .header("X-Twilio-Signature", signature)
            .form(&params)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let start = xml.find("wss://").expect("a stream URL");
        let end = start + xml[start..].find('"').unwrap();
        xml[start..end].replacen("wss://", "ws://", 1)
    }

    /// The call's id once the server has recorded it.
    pub async fn call_id(&self, call_sid: &str) -> String {
        for _ in 0..100 {
            let list: Value = self.http(reqwest::Method::GET, "/api/v1/calls").send().await.unwrap().json().await.unwrap();
            if let Some(c) = list["calls"].as_array().unwrap().iter().find(|c| c["external_id"] == call_sid) {
                return c["id"].as_str().unwrap().to_string();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("call {call_sid} never recorded");
    }

    pub async fn call(&self, id: &str, until: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..100 {
            last = self.http(reqwest::Method::GET, &format!("/api/v1/calls/{id}")).send().await.unwrap().json().await.unwrap();
            if until(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("call {id} never reached the expected state: {last:#}");
    }

    pub async fn agent(&self, id: &str) -> Value {
        self.http(reqwest::Method::GET, &format!("/api/v1/agents/{id}")).send().await.unwrap().json().await.unwrap()
    }

    pub async fn wait_agent(&self, id: &str, status: &str) -> Value {
        for _ in 0..100 {
            let a = self.agent(id).await;
            if a["status"] == status {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("agent {id} never became {status}: {}", self.agent(id).await);
    }

    /// Offers to join `call` as a participant (`query`: role and the rest) with `key`.
    pub async fn post_offer(&self, key: &str, call: &str, query: &str, offer: String) -> reqwest::Response {
        self.http_as(key, reqwest::Method::POST, &format!("/webrtc/calls/{call}/participants?{query}"))
            .header("content-type", "application/sdp")
            .body(offer)
            .send()
            .await
            .unwrap()
    }

    /// Joins `call` as a participant: the peer's answer applied, connected.
    pub async fn join(&self, call: &str, query: &str, client: &mut Client, offer: String) -> String {
        self.join_as(&self.key, call, query, client, offer).await
    }

    /// As [`Self::join`], with another key.
    pub async fn join_as(&self, key: &str, call: &str, query: &str, client: &mut Client, offer: String) -> String {
        let resp = self.post_offer(key, call, query, offer).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "{:?}", resp.text().await);
        let location = resp.headers()["location"].to_str().unwrap().to_string();
        assert!(resp.headers().contains_key("x-participant-id"));
        client.answer(resp.text().await.unwrap()).await;
        location
    }

    /// A phone call from the Twilio test client with CallSid `sid`, and its call id.
    pub async fn phone_call(&self, sid: &str) -> (TwilioCaller, String) {
        let mut config = CallerConfig::new(self.stream_url(sid).await);
        config.call_sid = sid.into();
        let caller = TwilioCaller::connect(config).await.unwrap();
        let call = self.call_id(sid).await;
        (caller, call)
    }

    /// Department `name` with browser agents `agents` in it (offline); the department.
    pub async fn department(&self, name: &str, agents: &[&str]) -> Value {
        let (s, dept) = self.post_json("/api/v1/departments", json!({ "name": name })).await;
        assert_eq!(s, StatusCode::CREATED, "{dept}");
        for id in agents {
            self.browser_agent(id, &dept["id"]).await;
        }
        dept
    }

    /// A browser agent in department `dept` (its id).
    pub async fn browser_agent(&self, id: &str, dept: &Value) {
        let body = json!({ "id": id, "name": id, "departments": [dept], "reach": { "kind": "browser" } });
        let (s, a) = self.post_json("/api/v1/agents", body).await;
        assert_eq!(s, StatusCode::CREATED, "{a}");
    }

    pub async fn set_status(&self, agent: &str, status: &str) {
        let resp = self.http(reqwest::Method::PUT, &format!("/api/v1/agents/{agent}/status")).json(&json!({ "status": status })).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    pub async fn set_mode(&self, location: &str, mode: &str) {
        let resp = self.http(reqwest::Method::PATCH, location).json(&json!({ "mode": mode })).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{:?}", resp.text().await);
    }

    pub async fn shutdown(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// How many events of `kind` a call's detail holds.
pub fn count(detail: &Value, kind: &str) -> usize {
    detail["events"].as_array().unwrap().iter().filter(|e| e["kind"] == kind).count()
}

/// The call's hold switches, in order (`true` = on hold).
pub fn hold_switches(events: &[Value]) -> Vec<bool> {
    events.iter().filter(|e| e["kind"] == "hold").map(|e| e["data"]["on"].as_bool().unwrap()).collect()
}

