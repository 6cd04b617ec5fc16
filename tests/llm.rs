//! LLM mode against a local fake OpenAI-compatible chat server on 127.0.0.1: streamed
//! sentences, tool calls, the lookup webhook, barge-in history and failures.

#[path = "fakes/mod.rs"]
mod fakes;

use std::sync::Arc;
use std::time::Duration;

use fakes::openai_chat::{
    FakeChat, Options, Reply, Step, answer, done, finish, text, tool_fragment,
};
use serde_json::{Value, json};
use switchboard::dialog::Action;
use switchboard::dialog::llm::{ChatMessage, LlmClient, LlmConfig, LlmOutput, LlmSession};
use tokio::sync::{Notify, mpsc};

const WAIT: Duration = Duration::from_secs(5);
const SYSTEM: &str = "You are a test bot.";

fn config(fake: &FakeChat) -> LlmConfig {
    LlmConfig {
        base_url: Some(fake.base_url()),
        model: Some("fake-model".into()),
        api_key: Some("chat-test-key".into()),
        ..Default::default()
    }
}

fn session(config: &LlmConfig) -> LlmSession {
    LlmSession::new(
        LlmClient::new(config).expect("config is complete"),
        SYSTEM.into(),
    )
}

async fn next(rx: &mut mpsc::Receiver<LlmOutput>) -> LlmOutput {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("output within 5 s")
        .expect("channel open until Done/Error")
}

/// Outputs up to and including `Done` or `Error`.
async fn all(rx: &mut mpsc::Receiver<LlmOutput>) -> Vec<LlmOutput> {
    let mut out = Vec::new();
    loop {
        let o = next(rx).await;
        let last = matches!(o, LlmOutput::Done | LlmOutput::Error(_));
        out.push(o);
        if last {
            return out;
        }
    }
}

fn sentence(s: &str) -> LlmOutput {
    LlmOutput::Sentence(s.into())
}

fn error_text(outputs: &[LlmOutput]) -> String {
    match outputs.last() {
        Some(LlmOutput::Error(e)) => e.clone(),
        other => panic!("expected an Error last, got {other:?} in {outputs:?}"),
    }
}

#[tokio::test]
async fn first_sentence_arrives_before_the_answer_ends() {
    let hold = Arc::new(Notify::new());
    let steps = vec![
        text("Hello"),
        text(" there"),
        text("."),
        text(" Our"),
        Step::Hold(hold.clone()),
        Step::Delay(Duration::from_millis(50)),
        text(" hours are 9"),
        Step::Delay(Duration::from_millis(50)),
        text("."),
        text("5 to 5"),
        text("."),
        finish("stop"),
        done(),
    ];
    let fake = FakeChat::start(Options::default(), vec![Reply::Stream(steps)]).await;
    let mut s = session(&config(&fake));
    let mut rx = s.respond("  When are you open? ");
    // The server is holding the rest of the answer: this sentence came before it exists.
    assert_eq!(next(&mut rx).await, sentence("Hello there."));
    assert!(rx.try_recv().is_err(), "nothing else yet");
    hold.notify_one();
    assert_eq!(
        all(&mut rx).await,
        vec![sentence("Our hours are 9.5 to 5."), LlmOutput::Done]
    );

    let req = &fake.requests()[0];
    assert_eq!(req["model"], "fake-model");
    assert_eq!(req["stream"], true);
    assert_eq!(
        req["messages"],
        json!([{"role": "system", "content": SYSTEM}, {"role": "user", "content": "When are you open?"}])
    );
    assert_eq!(
        s.history(),
        &[
            ChatMessage::System {
                content: SYSTEM.into()
            },
            ChatMessage::User {
                content: "When are you open?".into()
            },
            ChatMessage::assistant_text("Hello there. Our hours are 9.5 to 5."),
        ]
    );
}

#[tokio::test]
async fn a_stream_broken_off_gives_a_clear_error_and_keeps_what_was_said() {
    let steps = vec![text("First sentence."), text(" Second hal"), Step::Abort];
    let fake = FakeChat::start(Options::default(), vec![Reply::Stream(steps)]).await;
    let mut s = session(&config(&fake));
    let out = all(&mut s.respond("hi")).await;
    assert_eq!(out[0], sentence("First sentence."));
    let e = error_text(&out);
    assert!(e.contains("broke off"), "{e}");
    assert_eq!(out.len(), 2, "the half sentence is not spoken: {out:?}");
    assert_eq!(
        s.history().last(),
        Some(&ChatMessage::assistant_text("First sentence."))
    );

    // A stream that just ends, without finish_reason or [DONE], is broken off too.
    let fake = FakeChat::start(
        Options::default(),
        vec![Reply::Stream(vec![text("Cut. Off")])],
    )
    .await;
    let out = all(&mut session(&config(&fake)).respond("hi")).await;
    assert_eq!(out[0], sentence("Cut."));
    assert!(
        error_text(&out).contains("ended before the answer was complete"),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_tool_call_split_across_chunks_becomes_a_transfer() {
    let steps = vec![
        text("Let me connect you"),
        tool_fragment(0, Some(("call_1", "transfer_to_department")), ""),
        tool_fragment(0, None, "{\"depart"),
        tool_fragment(0, None, "ment\": \"bil"),
        tool_fragment(0, None, "ling\"}"),
        finish("tool_calls"),
        done(),
    ];
    let fake = FakeChat::start(Options::default(), vec![Reply::Stream(steps)]).await;
    let mut s = session(&config(&fake));
    let out = all(&mut s.respond("billing please")).await;
    assert_eq!(
        out,
        vec![
            sentence("Let me connect you"),
            LlmOutput::Action(Action::TransferToDepartment {
                department: "billing".into()
            }),
            LlmOutput::Done,
        ]
    );
    assert_eq!(fake.requests().len(), 1, "a transfer ends the turn");
    let requests = fake.requests();
    let tools: Vec<&str> = requests[0]["tools"]
        .as_array()
        .expect("tools are offered")
        .iter()
        .map(|t| t["function"]["name"].as_str().expect("named"))
        .collect();
    assert_eq!(
        tools,
        ["transfer_to_department", "hang_up"],
        "no lookup without lookup_url"
    );
    // The call and its result are in the history, so the next request is valid.
    let history = s.history().to_vec();
    assert!(
        matches!(&history[2], ChatMessage::Assistant { content: Some(c), tool_calls }
            if c == "Let me connect you" && tool_calls[0].id == "call_1" && tool_calls[0].function.arguments == r#"{"department": "billing"}"#),
        "{history:?}"
    );
    assert!(
        matches!(&history[3], ChatMessage::Tool { tool_call_id, .. } if tool_call_id == "call_1")
    );
}

#[tokio::test]
async fn hang_up_tool_ends_the_call() {
    let steps = vec![
        text("Goodbye!"),
        tool_fragment(0, Some(("c", "hang_up")), r#"{"reason":"caller said bye"}"#),
        finish("tool_calls"),
        done(),
    ];
    let fake = FakeChat::start(Options::default(), vec![Reply::Stream(steps)]).await;
    let out = all(&mut session(&config(&fake)).respond("bye")).await;
    assert_eq!(
        out,
        vec![
            sentence("Goodbye!"),
            LlmOutput::Action(Action::Hangup {
                reason: "caller said bye".into()
            }),
            LlmOutput::Done,
        ]
    );
}

#[tokio::test]
async fn lookup_answer_goes_back_to_the_model_which_continues() {
    let options = Options {
        lookup_answer: json!({"order": "A17", "status": "shipped", "eta": "tomorrow"}),
        ..Default::default()
    };
    let first = Reply::Stream(vec![
        text("One moment."),
        tool_fragment(0, Some(("call_x", "lookup")), "{\"query\": "),
        tool_fragment(0, None, "\"order A17\"}"),
        finish("tool_calls"),
        done(),
    ]);
    let second = answer(&["Your order", " ships tomorrow."]);
    let fake = FakeChat::start(options, vec![first, second]).await;
    let mut cfg = config(&fake);
    cfg.lookup_url = Some(fake.lookup_url());
    let mut s = session(&cfg);
    let out = all(&mut s.respond("Where is my order A17?")).await;
    assert_eq!(
        out,
        vec![
            sentence("One moment."),
            sentence("Your order ships tomorrow."),
            LlmOutput::Done
        ]
    );

    assert_eq!(fake.lookups(), vec![json!({"query": "order A17"})]);
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    let messages = requests[1]["messages"]
        .as_array()
        .expect("messages")
        .clone();
    assert_eq!(messages[2]["role"], "assistant");
    assert_eq!(messages[2]["content"], "One moment.");
    assert_eq!(messages[2]["tool_calls"][0]["id"], "call_x");
    assert_eq!(messages[3]["role"], "tool");
    assert_eq!(messages[3]["tool_call_id"], "call_x");
    let result: Value =
        serde_json::from_str(messages[3]["content"].as_str().expect("text")).expect("JSON");
    assert_eq!(
        result,
        json!({"order": "A17", "status": "shipped", "eta": "tomorrow"})
    );
    assert!(
        requests[0]["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .any(|t| t["function"]["name"] == "lookup")
    );
    assert_eq!(
        s.history().last(),
        Some(&ChatMessage::assistant_text("Your order ships tomorrow."))
    );
}

#[tokio::test]
async fn tool_rounds_are_bounded() {
    let again = Reply::Stream(vec![
        tool_fragment(0, Some(("c", "lookup")), r#"{"query":"more"}"#),
        finish("tool_calls"),
        done(),
    ]);
    let fake = FakeChat::start(Options::default(), vec![again]).await;
    let mut cfg = config(&fake);
    cfg.lookup_url = Some(fake.lookup_url());
    cfg.max_tool_rounds = 2;
    let out = all(&mut session(&cfg).respond("?")).await;
    assert!(error_text(&out).contains("after 2 rounds"), "{out:?}");
    let requests = fake.requests();
    assert_eq!(requests.len(), 3, "two lookup rounds, then a last one");
    assert_eq!(
        fake.lookups().len(),
        2,
        "the last round's lookup is not run"
    );
    let last_tools: Vec<&Value> = requests[2]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| &t["function"]["name"])
        .collect();
    assert!(!last_tools.contains(&&json!("lookup")), "{last_tools:?}");
}

#[tokio::test]
async fn barge_in_keeps_only_what_the_caller_heard() {
    let fake = FakeChat::start(
        Options::default(),
        vec![
            answer(&[
                "Our hours are nine to five.",
                " We are closed on Sundays.",
                " Anything else?",
            ]),
            answer(&["Sure."]),
        ],
    )
    .await;
    let mut s = session(&config(&fake));
    let out = all(&mut s.respond("hours?")).await;
    assert_eq!(out.len(), 4, "{out:?}");
    // Streaming finished long ago; the caller is still listening when they interrupt.
    s.interrupted("Our hours are nine to five. We are");
    let _ = all(&mut s.respond("and Saturdays?")).await;
    let messages = fake.requests()[1]["messages"].clone();
    assert_eq!(
        messages,
        json!([
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "hours?"},
            {"role": "assistant", "content": "Our hours are nine to five. We are"},
            {"role": "user", "content": "and Saturdays?"},
        ])
    );
}

#[tokio::test]
async fn barge_in_mid_stream_cancels_the_request() {
    let hold = Arc::new(Notify::new());
    let steps = vec![
        text("I can help with that."),
        text(" First,"),
        Step::Hold(hold.clone()),
        text(" do this."),
        finish("stop"),
        done(),
    ];
    let fake = FakeChat::start(
        Options::default(),
        vec![Reply::Stream(steps), answer(&["Okay."])],
    )
    .await;
    let mut s = session(&config(&fake));
    let mut rx = s.respond("help");
    assert_eq!(next(&mut rx).await, sentence("I can help with that."));
    s.interrupted("I can help");
    // The task is gone: its channel closes without Done, and the server sees the client leave.
    let end = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("closes within 5 s");
    assert_eq!(end, None);
    eventually_dropped(&fake).await;
    assert_eq!(
        s.history().last(),
        Some(&ChatMessage::assistant_text("I can help"))
    );

    // A new question while an answer streams replaces it; the emitted part stays.
    let hold2 = Arc::new(Notify::new());
    let fake = FakeChat::start(
        Options::default(),
        vec![
            Reply::Stream(vec![text("Part one. Part"), Step::Hold(hold2)]),
            answer(&["New answer."]),
        ],
    )
    .await;
    let mut s = session(&config(&fake));
    let mut rx = s.respond("first");
    assert_eq!(next(&mut rx).await, sentence("Part one."));
    let out = all(&mut s.respond("second")).await;
    assert_eq!(out, vec![sentence("New answer."), LlmOutput::Done]);
    let roles: Vec<String> = s
        .history()
        .iter()
        .map(|m| serde_json::to_value(m).unwrap()["content"].to_string())
        .collect();
    assert_eq!(
        roles,
        [
            format!("{:?}", SYSTEM),
            "\"first\"".into(),
            "\"Part one.\"".into(),
            "\"second\"".into(),
            "\"New answer.\"".into()
        ]
    );
}

#[tokio::test]
async fn dropping_the_receiver_stops_the_request() {
    let hold = Arc::new(Notify::new());
    let steps = vec![
        text("Hello."),
        text(" More"),
        Step::Hold(hold),
        text(" text."),
        finish("stop"),
        done(),
    ];
    let fake = FakeChat::start(Options::default(), vec![Reply::Stream(steps)]).await;
    let mut s = session(&config(&fake));
    let mut rx = s.respond("hi");
    assert_eq!(next(&mut rx).await, sentence("Hello."));
    drop(rx);
    eventually_dropped(&fake).await;
    assert_eq!(
        s.history().last(),
        Some(&ChatMessage::assistant_text("Hello."))
    );
}

async fn eventually_dropped(fake: &FakeChat) {
    for _ in 0..100 {
        if fake.dropped_streams() == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the fake never saw the client leave");
}

#[tokio::test]
async fn http_errors_are_readable() {
    // Wrong key: the fake answers 401.
    let fake = FakeChat::start(Options::default(), vec![answer(&["never"])]).await;
    let cfg = LlmConfig {
        api_key: Some("wrong".into()),
        ..config(&fake)
    };
    let e = error_text(&all(&mut session(&cfg).respond("hi")).await);
    assert_eq!(
        e,
        "the language model server rejected our credentials (HTTP 401); check llm.api_key"
    );
    assert!(!e.contains("wrong"));

    let fake = FakeChat::start(
        Options::default(),
        vec![Reply::Status {
            status: 429,
            message: "Rate limit reached".into(),
            retry_after: Some(20),
        }],
    )
    .await;
    let e = error_text(&all(&mut session(&config(&fake)).respond("hi")).await);
    assert_eq!(
        e,
        "the language model server is rate limiting us (HTTP 429); retry after 20 s"
    );

    let fake = FakeChat::start(
        Options::default(),
        vec![Reply::Status {
            status: 400,
            message: "model `fake-model` does not exist".into(),
            retry_after: None,
        }],
    )
    .await;
    let e = error_text(&all(&mut session(&config(&fake)).respond("hi")).await);
    assert_eq!(
        e,
        "the language model server answered HTTP 400: model `fake-model` does not exist"
    );

    let dead = fakes::dead_addr().await;
    let cfg = LlmConfig {
        base_url: Some(format!("http://{dead}")),
        ..config(&fake)
    };
    let e = error_text(&all(&mut session(&cfg).respond("hi")).await);
    assert!(
        e.starts_with("could not reach the language model server"),
        "{e}"
    );
    assert!(e.to_lowercase().contains("refused"), "{e}");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let fake = FakeChat::start(Options::default(), vec![Reply::Hang]).await;
    let cfg = LlmConfig {
        first_token_timeout: Duration::from_millis(300),
        ..config(&fake)
    };
    let e = error_text(&all(&mut session(&cfg).respond("hi")).await);
    assert_eq!(e, "timed out waiting for the first token");

    // A stalled answer: the complete sentence is spoken, the half one after it is not.
    let steps = vec![
        text("Quick start."),
        text(" And then"),
        Step::Delay(Duration::from_secs(60)),
        finish("stop"),
        done(),
    ];
    let fake = FakeChat::start(Options::default(), vec![Reply::Stream(steps)]).await;
    let cfg = LlmConfig {
        idle_timeout: Duration::from_millis(300),
        ..config(&fake)
    };
    let out = all(&mut session(&cfg).respond("hi")).await;
    assert_eq!(
        out,
        vec![
            sentence("Quick start."),
            LlmOutput::Error("timed out waiting for the next token".into())
        ]
    );
}

#[tokio::test]
async fn malformed_lines_are_skipped() {
    let steps = vec![
        Step::Raw(": keep-alive comment\n\n".into()),
        Step::Raw("data: {not json at all\n\n".into()),
        Step::Raw("this line is no field\n\n".into()),
        Step::Raw("data: {\"choices\": 5}\n\n".into()),
        text("Still"),
        Step::Raw("event: ping\ndata: {\"choices\": []}\n\n".into()),
        text(" fine."),
        finish("stop"),
        done(),
    ];
    let fake = FakeChat::start(Options::default(), vec![Reply::Stream(steps)]).await;
    let out = all(&mut session(&config(&fake)).respond("hi")).await;
    assert_eq!(out, vec![sentence("Still fine."), LlmOutput::Done]);

    // Nothing but garbage is an error, not an empty answer.
    let steps = vec![
        Step::Raw("data: <html>\n\n".into()),
        Step::Raw("data: oops\n\n".into()),
        done(),
    ];
    let fake = FakeChat::start(Options::default(), vec![Reply::Stream(steps)]).await;
    let e = error_text(&all(&mut session(&config(&fake)).respond("hi")).await);
    assert!(e.contains("2 unreadable stream events"), "{e}");

    // An error reported inside the stream is passed on.
    let steps = vec![Step::Raw(
        "data: {\"error\": {\"message\": \"model overloaded\"}}\n\n".into(),
    )];
    let fake = FakeChat::start(Options::default(), vec![Reply::Stream(steps)]).await;
    let e = error_text(&all(&mut session(&config(&fake)).respond("hi")).await);
    assert!(e.ends_with("model overloaded"), "{e}");
}

#[tokio::test]
async fn base_url_with_v1_and_no_key_for_a_self_hosted_server() {
    let fake = FakeChat::start(
        Options {
            api_key: None,
            ..Default::default()
        },
        vec![answer(&["Hi."])],
    )
    .await;
    let cfg = LlmConfig {
        base_url: Some(format!("{}/v1/", fake.base_url())),
        api_key: None,
        ..config(&fake)
    };
    let out = all(&mut session(&cfg).respond("hello")).await;
    assert_eq!(out, vec![sentence("Hi."), LlmOutput::Done]);
}
