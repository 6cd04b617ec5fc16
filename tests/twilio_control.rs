//! Twilio call control: the signed voice webhook, one-time stream tokens, and transfers and
//! hang-ups through the REST API (against a local fake), including the `stop` a transfer causes.

mod db;
mod support;

use std::time::Duration;

use db::{Backend, TestDb};
use support::fake_twilio_rest::{CallUpdate, FakeTwilioRest};
use support::twilio_caller::{CallerConfig, TwilioCaller};
use switchboard::app::Server;
use switchboard::speech::providers::{SttChoice, TtsChoice};
use switchboard::transport::twilio::signature::compute_signature;
use tokio_util::sync::CancellationToken;

const ACCOUNT: &str = "AC0000000000000000000000000000beef";
const TOKEN: &str = "test-auth-token";

const FLOW: &str = r#"
default = true
greeting = "Hello."
start = "menu"
listen_timeout = "20s"

[steps.menu]
say = "Press nine for the operator or eight to hang up."

[[steps.menu.intents]]
name = "operator"
phrases = ["operator"]
digits = ["9"]
say = "Connecting you."
action = { number = "+15557654321" }

[[steps.menu.intents]]
name = "bye"
phrases = ["goodbye"]
digits = ["8"]
say = "Goodbye."
action = "hangup"
"#;

struct Env {
    base: String,
    host: String,
    key: String,
    rest: FakeTwilioRest,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _flows: tempfile::TempDir,
    _db: TestDb,
}

async fn start() -> Env {
    let db = TestDb::new(Backend::Sqlite).await;
    let flows = tempfile::tempdir().unwrap();
    std::fs::write(flows.path().join("operator.toml"), FLOW).unwrap();
    let other = FLOW.replace("default = true\n", "").replace("Hello.", "Other line.");
    std::fs::write(flows.path().join("other.toml"), other).unwrap();
    let rest = FakeTwilioRest::start(ACCOUNT, TOKEN).await.unwrap();
    let mut cfg = db.config();
    cfg.flows.dir = flows.path().to_path_buf();
    cfg.speech.stt = SttChoice::Null;
    cfg.speech.tts = TtsChoice::Tone;
    cfg.twilio.account_sid = Some(ACCOUNT.into());
    cfg.twilio.auth_token = Some(TOKEN.into());
    cfg.twilio.api_base = rest.base_url();
    let server = Server::start(cfg).await.unwrap();
    let host = server.local_addr.to_string();
    let key = server.demo_key.clone().unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(server.run(async move { s.cancelled().await }));
    Env { base: format!("http://{host}"), host, key, rest, stop, task, _flows: flows, _db: db }
}

impl Env {
    /// POSTs a webhook as Twilio would, signed for the public URL the server reconstructs
    /// (https, since Twilio always calls public webhooks over TLS).
    async fn webhook(&self, path: &str, params: &[(&str, &str)], sign: bool) -> reqwest::Response {
        let owned: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let url = format!("https://{}{path}", self.host);
        let mut req = reqwest::Client::new().post(format!("{}{path}", self.base)).form(&owned);
        if sign {
            req = req.header("X-Twilio-Signature", compute_signature(TOKEN, &url, &owned));
        }
        req.send().await.unwrap()
    }

    /// Runs the voice webhook for `call_sid` and returns the stream URL from the TwiML.
    async fn stream_url(&self, call_sid: &str) -> String {
        let params = [("CallSid", call_sid), ("From", "+15550001111"), ("To", "+15550002222"), ("AccountSid", ACCOUNT)];
        let r = self.webhook("/twilio/voice", &params, true).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/xml"));
        let xml = r.text().await.unwrap();
        assert!(xml.contains("<Connect><Stream url=\"wss://"), "{xml}");
        assert!(xml.contains(&format!("<Parameter name=\"CallSid\" value=\"{call_sid}\"/>")), "{xml}");
        let start = xml.find("wss://").unwrap();
        let end = start + xml[start..].find('"').unwrap();
        let url = &xml[start..end];
        assert!(!url.contains('?'), "no query string in a stream URL: {url}");
        url.replacen("wss://", "ws://", 1)
    }

    async fn shutdown(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

async fn events(env: &Env, call_sid: &str, until: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        let list: serde_json::Value =
            http.get(format!("{}/api/v1/calls", env.base)).bearer_auth(&env.key).send().await.unwrap().json().await.unwrap();
        if let Some(c) = list["calls"].as_array().unwrap().iter().find(|c| c["external_id"] == call_sid) {
            let detail: serde_json::Value = http
                .get(format!("{}/api/v1/calls/{}", env.base, c["id"].as_str().unwrap()))
                .bearer_auth(&env.key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if until(&detail) {
                return detail;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("call {call_sid} never reached the expected state");
}

#[tokio::test]
async fn webhooks_need_a_valid_signature_and_streams_a_valid_token() {
    let env = start().await;
    let params = [("CallSid", "CA1"), ("From", "+1555"), ("To", "+1666")];
    assert_eq!(env.webhook("/twilio/voice", &params, false).await.status(), 401, "unsigned");
    let r = reqwest::Client::new()
        .post(format!("{}/twilio/voice", env.base))
        .header("X-Twilio-Signature", "bm90IGl0")
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "wrong signature");
    let r = env.webhook("/twilio/status", &[("CallSid", "CA1"), ("CallStatus", "completed")], true).await;
    assert_eq!(r.status(), 204);
    // Outbound calls name their flow in the webhook URL; the signature covers the query.
    let xml = env.webhook("/twilio/voice?flow=other", &params, true).await.text().await.unwrap();
    assert!(xml.contains(r#"<Parameter name="flow" value="other"/>"#), "{xml}");
    let xml = env.webhook("/twilio/voice", &params, true).await.text().await.unwrap();
    assert!(xml.contains(r#"<Parameter name="flow" value="operator"/>"#), "{xml}");

    // A made-up token is refused before the upgrade; the webhook's token works once.
    let bad = format!("ws://{}/twilio/stream/not-a-token", env.host);
    assert!(tokio_tungstenite::connect_async(&bad).await.is_err());
    let url = env.stream_url("CAtoken").await;
    let mut config = CallerConfig::new(url.clone());
    config.call_sid = "CAtoken".into();
    let caller = TwilioCaller::connect(config).await.unwrap();
    caller.wait_until(Duration::from_secs(10), |r| !r.received.is_empty()).await.unwrap();
    assert!(tokio_tungstenite::connect_async(&url).await.is_err(), "tokens are single-use");
    // The status callback closes the call record (here before the stream itself ends).
    events(&env, "CAtoken", |c| c["state"] == "active").await;
    let r = env.webhook("/twilio/status", &[("CallSid", "CAtoken"), ("CallStatus", "completed")], true).await;
    assert_eq!(r.status(), 204);
    let call = events(&env, "CAtoken", |c| c["state"] == "ended").await;
    assert_eq!(call["end_cause"], "completed");
    caller.hangup().await.unwrap();
    env.shutdown().await;
}

#[tokio::test]
async fn transfer_goes_through_rest_and_the_following_stop_is_not_a_hangup() {
    let env = start().await;
    let call_sid = "CA00000000000000000000000000000001";
    env.rest.add_call(call_sid, "+15550001111", "+15550002222");
    let mut updates = env.rest.subscribe();
    let mut config = CallerConfig::new(env.stream_url(call_sid).await);
    config.call_sid = call_sid.into();
    let caller = TwilioCaller::connect(config).await.unwrap();
    caller.wait_until(Duration::from_secs(10), |r| !r.received.is_empty()).await.unwrap();
    caller.dtmf('9').await;
    // Twilio redirects the call to the <Dial>, which stops our stream.
    let update = tokio::time::timeout(Duration::from_secs(15), updates.recv()).await.unwrap().unwrap();
    let CallUpdate::Redirected { sid, twiml: Some(twiml), .. } = update else { panic!("{update:?}") };
    assert_eq!(sid, call_sid);
    assert!(twiml.contains("<Dial") && twiml.contains("+15557654321"), "{twiml}");
    caller.hangup().await.unwrap();
    let call = events(&env, call_sid, |c| c["state"] == "ended").await;
    assert_eq!(call["end_cause"], "transferred", "{call:#}");
    let kinds: Vec<&str> = call["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"transfer_requested"), "{kinds:?}");
    env.shutdown().await;
}

#[tokio::test]
async fn hangup_goes_through_rest() {
    let env = start().await;
    let call_sid = "CA00000000000000000000000000000002";
    env.rest.add_call(call_sid, "+15550001111", "+15550002222");
    let mut updates = env.rest.subscribe();
    let mut config = CallerConfig::new(env.stream_url(call_sid).await);
    config.call_sid = call_sid.into();
    let caller = TwilioCaller::connect(config).await.unwrap();
    caller.wait_until(Duration::from_secs(10), |r| !r.received.is_empty()).await.unwrap();
    caller.dtmf('8').await;
    let update = tokio::time::timeout(Duration::from_secs(15), updates.recv()).await.unwrap().unwrap();
    assert_eq!(update, CallUpdate::Ended { sid: call_sid.into(), status: "completed".into() });
    let rec = caller.wait_closed(Duration::from_secs(10)).await.unwrap();
    assert!(rec.closed_by_server);
    let call = events(&env, call_sid, |c| c["state"] == "ended").await;
    assert_eq!(call["end_cause"], "hangup");
    env.shutdown().await;
}
