//! LLM mode on a phone call: the flow hands over, the model's streamed answer is spoken
//! sentence by sentence, a tool call transfers the call, and a barge-in cancels the answer and
//! keeps only what was heard in the conversation.

mod db;
#[path = "fakes/mod.rs"]
mod fakes;
mod support;

use std::time::Duration;

use db::{Backend, TestDb};
use fakes::openai_chat::{answer, done, finish, text, tool_fragment, FakeChat, Options, Reply, Step};
use support::twilio_caller::{CallerConfig, TwilioCaller};
use switchboard::app::Server;
use switchboard::speech::providers::{SttChoice, TtsChoice};
use tokio_util::sync::CancellationToken;

const FLOW: &str = r#"
default = true
greeting = "Hi."
start = "menu"
listen_timeout = "30s"

[steps.menu]
say = "Press one for the assistant."

[[steps.menu.intents]]
name = "assistant"
phrases = ["assistant"]
digits = ["1"]
say = "Connecting."
action = "llm"
"#;

struct Env {
    base: String,
    ws: String,
    key: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _flows: tempfile::TempDir,
    _db: TestDb,
}

async fn start(chat: &FakeChat) -> Env {
    let db = TestDb::new(Backend::Sqlite).await;
    let flows = tempfile::tempdir().unwrap();
    std::fs::write(flows.path().join("assistant.toml"), FLOW).unwrap();
    let mut cfg = db.config();
    cfg.flows.dir = flows.path().to_path_buf();
    cfg.speech.stt = SttChoice::Null;
    cfg.speech.tts = TtsChoice::Tone;
    cfg.llm.base_url = Some(chat.base_url());
    cfg.llm.model = Some("fake-model".into());
    cfg.llm.api_key = Some("chat-test-key".into());
    let server = Server::start(cfg).await.unwrap();
    let addr = server.local_addr;
    let key = server.demo_key.clone().unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(server.run(async move { s.cancelled().await }));
    Env { base: format!("http://{addr}"), ws: format!("ws://{addr}/twilio/stream/t"), key, stop, task, _flows: flows, _db: db }
}

async fn call(env: &Env, call_sid: &str, until: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let http = reqwest::Client::new();
    let mut last = serde_json::Value::Null;
    for _ in 0..300 {
        let list: serde_json::Value =
            http.get(format!("{}/api/v1/calls", env.base)).bearer_auth(&env.key).send().await.unwrap().json().await.unwrap();
        if let Some(c) = list["calls"].as_array().unwrap().iter().find(|c| c["external_id"] == call_sid) {
            last = http
                .get(format!("{}/api/v1/calls/{}", env.base, c["id"].as_str().unwrap()))
                .bearer_auth(&env.key)
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
    panic!("call never reached the expected state: {last:#}");
}

fn texts(call: &serde_json::Value, kind: &str) -> Vec<String> {
    call["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["data"]["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn the_answer_streams_into_speech_and_a_tool_call_transfers() {
    let chat = FakeChat::start(
        Options::default(),
        vec![
            answer(&["Sure", ", I can ", "help. ", "Which ", "account?"]),
            Reply::Stream(vec![
                text("One moment."),
                tool_fragment(0, Some(("call_1", "transfer_to_department")), "{\"depart"),
                tool_fragment(0, None, "ment\":\"billing\"}"),
                finish("tool_calls"),
                done(),
            ]),
        ],
    )
    .await;
    let env = start(&chat).await;
    let caller = TwilioCaller::connect(CallerConfig::new(env.ws.clone())).await.unwrap();
    let sid = caller.config().call_sid.clone();
    caller.wait_until(Duration::from_secs(10), |r| !r.received.is_empty()).await.unwrap();
    caller.dtmf('1').await;
    call(&env, &sid, |c| c["events"].as_array().unwrap().iter().any(|e| e["kind"] == "driver_changed")).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    caller.say(support::speech_ulaw("I have a question about my bill").unwrap()).await;
    let c = call(&env, &sid, |c| texts(c, "bot_utterance").iter().any(|t| t.contains("Which account?"))).await;
    // The first sentence started the utterance; the rest was appended as it streamed.
    assert!(texts(&c, "bot_speaking").iter().any(|t| t == "Sure, I can help."), "{:?}", texts(&c, "bot_speaking"));
    assert!(texts(&c, "bot_utterance").iter().any(|t| t == "Sure, I can help. Which account?"), "{:?}", texts(&c, "bot_utterance"));
    let request = &chat.requests()[0];
    assert_eq!(request["stream"], true);
    assert!(request["messages"].as_array().unwrap().iter().any(|m| m["role"] == "user"));

    // Second turn: the model calls the transfer tool.
    caller.say(support::speech_ulaw("billing please").unwrap()).await;
    let c = call(&env, &sid, |c| c["events"].as_array().unwrap().iter().any(|e| e["kind"] == "transfer_requested")).await;
    let transfer = c["events"].as_array().unwrap().iter().find(|e| e["kind"] == "transfer_requested").unwrap();
    assert_eq!(transfer["data"]["target"], "billing");
    caller.hangup().await.unwrap();
    env.stop.cancel();
    env.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn barge_in_cancels_the_answer_and_history_keeps_what_was_heard() {
    let slow = Reply::Stream(vec![
        text("This is the first sentence of a long answer. "),
        text("Here is a second sentence that goes on for quite a while. "),
        Step::Delay(Duration::from_secs(4)),
        text("This never arrives."),
        finish("stop"),
        done(),
    ]);
    let chat = FakeChat::start(Options::default(), vec![slow, answer(&["Okay."])]).await;
    let env = start(&chat).await;
    let caller = TwilioCaller::connect(CallerConfig::new(env.ws.clone())).await.unwrap();
    let sid = caller.config().call_sid.clone();
    caller.wait_until(Duration::from_secs(10), |r| !r.received.is_empty()).await.unwrap();
    caller.dtmf('1').await;
    call(&env, &sid, |c| c["events"].as_array().unwrap().iter().any(|e| e["kind"] == "driver_changed")).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    caller.say(support::speech_ulaw("tell me everything").unwrap()).await;
    call(&env, &sid, |c| texts(c, "bot_speaking").iter().any(|t| t.starts_with("This is the first sentence"))).await;
    // Let some of the answer play, then talk over it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    caller.say(support::speech_ulaw("stop stop I get it").unwrap()).await;
    let c = call(&env, &sid, |c| c["events"].as_array().unwrap().iter().any(|e| e["kind"] == "barge_in")).await;
    let cut = c["events"].as_array().unwrap().iter().find(|e| e["kind"] == "bot_utterance" && e["data"]["cut"] == true).unwrap();
    let heard = cut["data"]["heard"].as_str().unwrap().to_string();
    assert!(!heard.contains("never arrives"));
    // The interrupted caller turn is answered next; the request carries the heard text only.
    for _ in 0..100 {
        if chat.requests().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = &chat.requests()[1];
    let assistant: Vec<&str> = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "assistant")
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert!(
        assistant.iter().all(|a| !a.contains("quite a while") || heard.contains("quite a while")),
        "history has unheard text: {assistant:?} (heard {heard:?})"
    );
    // The fake notices a dropped stream when it next writes (after its delay); had the answer
    // not been cancelled, its last sentence would have been spoken.
    for _ in 0..100 {
        if chat.dropped_streams() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(chat.dropped_streams() >= 1, "the interrupted stream was cancelled");
    let c = call(&env, &sid, |_| true).await;
    assert!(texts(&c, "bot_speaking").iter().chain(texts(&c, "bot_utterance").iter()).all(|t| !t.contains("never arrives")));
    caller.hangup().await.unwrap();
    env.stop.cancel();
    env.task.await.unwrap().unwrap();
}
