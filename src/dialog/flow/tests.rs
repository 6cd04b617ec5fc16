//! The shipped flows end to end, selection, and every load-time error naming file, line and key.

use std::time::{Duration, SystemTime};

use super::*;
use crate::dialog::{Action, Dialog, DialogInput};

const FRONT_DESK: &str = include_str!("../../../config/flows/front_desk.toml");
const CLINIC: &str = include_str!("../../../config/flows/clinic.toml");

/// A Wednesday, 15:00 UTC: inside the clinic's hours.
fn wednesday_afternoon() -> SystemTime {
    at("2025-06-11T15:00:00Z")
}

fn at(utc: &str) -> SystemTime {
    SystemTime::from(
        utc.parse::<jiff::Timestamp>()
            .expect("test timestamps are valid"),
    )
}

fn front_desk() -> Flow {
    let set = FlowSet::from_str("front_desk", FRONT_DESK).expect("the shipped demo flow loads");
    set.get("front_desk").expect("named by its stem").clone()
}

fn started() -> DialogInput {
    DialogInput::Started {
        from: Some("+15550199".into()),
        to: Some("+15550100".into()),
        params: Default::default(),
    }
}

fn said(text: &str) -> DialogInput {
    DialogInput::Transcript {
        text: text.into(),
        confidence: 0.9,
    }
}

fn say(text: &str) -> Action {
    Action::Say {
        text: text.into(),
        barge_in: true,
    }
}

fn listen(secs: u64) -> Action {
    Action::Listen {
        timeout: Duration::from_secs(secs),
    }
}

fn dept(d: &str) -> Action {
    Action::TransferToDepartment {
        department: d.into(),
    }
}

fn step(d: &mut FlowDialog, input: DialogInput) -> Vec<Action> {
    d.on_input(input, wednesday_afternoon())
}

const QUESTION: &str =
    "Which department would you like: billing, sales, or support? You can also press 1, 2, or 3.";

fn started_front_desk() -> FlowDialog {
    let mut d = front_desk().start();
    assert_eq!(
        step(&mut d, started()),
        [
            say("Thank you for calling Switchboard."),
            say(QUESTION),
            listen(6)
        ]
    );
    assert_eq!(d.step_name(), Some("ask_department"));
    d
}

#[test]
fn billing_is_confirmed_then_transferred() {
    let mut d = started_front_desk();
    assert_eq!(
        step(&mut d, said("Billing.")),
        [say("Billing, is that right?"), listen(4)]
    );
    assert!(d.expected_phrases().contains(&"yes".to_string()));
    assert_eq!(
        step(&mut d, said("yes")),
        [say("Transferring you to billing."), dept("billing")]
    );
    assert!(d.is_done());
    assert!(d.expected_phrases().is_empty());
    assert!(
        step(&mut d, said("billing")).is_empty(),
        "a finished flow ignores later input"
    );
}

#[test]
fn phrases_match_inside_longer_sentences_and_no_goes_back() {
    let mut d = started_front_desk();
    assert_eq!(
        step(&mut d, said("Hi, I'd like to talk to sales please")),
        [say("Sales, is that right?"), listen(4)]
    );
    assert_eq!(
        step(&mut d, said("no that's not right")),
        [say("Sorry about that."), say(QUESTION), listen(6)]
    );
    assert_eq!(d.step_name(), Some("ask_department"));
}

#[test]
fn dtmf_two_reaches_sales() {
    let mut d = started_front_desk();
    assert_eq!(
        step(&mut d, DialogInput::Dtmf { digit: '2' }),
        [say("Sales, is that right?"), listen(4)]
    );
    assert_eq!(
        step(&mut d, DialogInput::Dtmf { digit: '1' }),
        [say("Transferring you to sales."), dept("sales")]
    );
}

#[test]
fn silence_on_confirmation_counts_as_yes() {
    let mut d = started_front_desk();
    step(&mut d, DialogInput::Dtmf { digit: '3' });
    assert_eq!(
        step(&mut d, DialogInput::NoInput),
        [say("Transferring you to support."), dept("support")]
    );
}

#[test]
fn no_input_twice_falls_back_to_support() {
    let mut d = started_front_desk();
    let reprompt = "Sorry, I didn't hear anything. Please say billing, sales, or support, or press 1, 2, or 3.";
    assert_eq!(
        step(&mut d, DialogInput::NoInput),
        [say(reprompt), listen(6)]
    );
    // An empty transcript is silence too.
    assert_eq!(
        step(&mut d, said(" ... ")),
        [say("Let me put you through to support."), dept("support")]
    );
}

#[test]
fn nonsense_reprompts_then_falls_back() {
    let mut d = started_front_desk();
    let reprompt =
        "Sorry, I didn't catch that. Please say billing, sales, or support, or press 1, 2, or 3.";
    assert_eq!(
        step(&mut d, said("what's the weather like")),
        [say(reprompt), listen(6)]
    );
    assert_eq!(
        step(&mut d, DialogInput::Dtmf { digit: '9' }),
        [say(reprompt), listen(6)]
    );
    assert_eq!(d.step_name(), Some("ask_department"));
    assert_eq!(
        step(&mut d, said("purple elephants")),
        [say("Let me put you through to support."), dept("support")]
    );
}

#[test]
fn max_turns_ends_the_back_and_forth() {
    let mut d = started_front_desk();
    // Eight turns: billing, no, billing, no, ... The eighth answer would lead to another question.
    for _ in 0..3 {
        step(&mut d, said("billing"));
        step(&mut d, said("no"));
    }
    assert_eq!(
        step(&mut d, said("billing")),
        [say("Billing, is that right?"), listen(4)]
    );
    assert_eq!(
        step(&mut d, said("no")),
        [
            say("Sorry about that."),
            say("Let me put you through to someone who can help."),
            dept("support")
        ]
    );
    assert!(d.is_done());
}

#[test]
fn interruptions_and_speech_end_wait_for_the_caller() {
    let mut d = started_front_desk();
    assert!(
        step(
            &mut d,
            DialogInput::Interrupted {
                heard: "Which department".into()
            }
        )
        .is_empty()
    );
    assert!(step(&mut d, DialogInput::SpeechFinished).is_empty());
    assert!(
        step(&mut d, started()).is_empty(),
        "a second Started changes nothing"
    );
    assert_eq!(d.step_name(), Some("ask_department"));
}

#[test]
fn goodbye_hangs_up() {
    let mut d = started_front_desk();
    assert_eq!(
        step(&mut d, said("never mind, bye")),
        [
            say("Thanks for calling. Goodbye."),
            Action::Hangup {
                reason: "flow_end".into()
            }
        ]
    );
}

#[test]
fn expected_phrases_follow_the_step_with_variants() {
    let mut d = front_desk().start();
    assert!(
        d.expected_phrases().is_empty(),
        "nothing is expected before the call starts"
    );
    step(&mut d, started());
    let phrases = d.expected_phrases();
    for p in [
        "billing",
        "talk to billing",
        "billing please",
        "connect me to sales",
        "never mind",
    ] {
        assert!(
            phrases.contains(&p.to_string()),
            "{p} missing from {phrases:?}"
        );
    }
    assert!(
        !phrases.contains(&"talk to goodbye".to_string()),
        "variants = false"
    );
    assert!(
        !phrases.contains(&"yes".to_string()),
        "another step's phrase"
    );
    let all = front_desk();
    assert!(all.stt_phrases().contains(&"yes please".to_string()));
    assert!(all.stt_phrases().contains(&"talk to billing".to_string()));
}

#[test]
fn flow_knobs_for_the_call() {
    let demo = front_desk();
    assert!(demo.barge_in());
    assert_eq!(demo.barge_in_min_speech(), Duration::from_millis(300));
    assert_eq!(demo.voice(), None);
    assert_eq!(demo.barge_in_override(), Some(true), "the demo sets it");
    assert_eq!(
        FlowSet::demo().get("front_desk").map(Flow::name),
        Some("front_desk")
    );
    assert!(demo.is_default());

    let text = r#"
        start = "a"
        barge_in = false
        barge_in_min_speech = "450ms"
        voice = "en-gb"
        min_confidence = 0.5
        [steps.a]
        say = "Yes or no?"
        no_match = { say = "Pardon?", limit = 1 }
        [[steps.a.intents]]
        phrases = ["yes"]
        action = "hangup"
    "#;
    let set = FlowSet::from_str("knobs.toml", text).expect("valid flow");
    let flow = set.get("knobs").expect("named by its stem");
    assert!(!flow.barge_in());
    assert_eq!(flow.barge_in_min_speech(), Duration::from_millis(450));
    assert_eq!(flow.voice(), Some("en-gb"));
    assert_eq!(
        flow.barge_in_min_speech_override(),
        Some(Duration::from_millis(450))
    );
    let unset = FlowSet::from_str(
        "unset",
        "start = \"s\"\n[steps.s]\nthen = { action = \"hangup\" }\n",
    )
    .expect("valid flow");
    let unset = unset.get("unset").expect("named by its label");
    assert_eq!((unset.barge_in(), unset.barge_in_override()), (true, None));
    assert_eq!(
        (
            unset.barge_in_min_speech(),
            unset.barge_in_min_speech_override()
        ),
        (Duration::from_millis(300), None)
    );
    let mut d = flow.start();
    let quiet = |t: &str| Action::Say {
        text: t.into(),
        barge_in: false,
    };
    assert_eq!(step(&mut d, started()), [quiet("Yes or no?"), listen(5)]);
    // Below the confidence floor, even a matching phrase is "not understood".
    let unsure = DialogInput::Transcript {
        text: "yes".into(),
        confidence: 0.3,
    };
    assert_eq!(step(&mut d, unsure), [quiet("Pardon?"), listen(5)]);
    assert_eq!(
        step(&mut d, said("yes")),
        [Action::Hangup {
            reason: "flow_end".into()
        }]
    );
}

#[test]
fn clinic_hours_across_spring_forward() {
    let set = FlowSet::from_str("clinic.toml", CLINIC).expect("the shipped example loads");
    let clinic = set.get("clinic").expect("named by its stem");
    let greeting = say("Hello, you have reached Riverside Clinic.");
    let menu = "To book an appointment, say appointment or press 1. For anything else, say front desk or press 0.";
    let after = "For urgent medical matters, say on call or press 1. To leave a request with our assistant, say assistant or press 2.";
    // 12:30 UTC is 07:30 EST on Friday 7 March (closed) and 08:30 EDT on Monday 10 March (open).
    let mut d = clinic.start();
    assert_eq!(
        d.on_input(started(), at("2025-03-07T12:30:00Z")),
        [
            greeting.clone(),
            say("The clinic is closed right now."),
            say(after),
            listen(8)
        ]
    );
    assert_eq!(
        d.on_input(said("it's urgent"), at("2025-03-07T12:30:10Z")),
        [
            say("Connecting you to the doctor on call."),
            Action::TransferToNumber {
                number: "+15550142".into()
            }
        ]
    );
    let mut d = clinic.start();
    assert_eq!(
        d.on_input(started(), at("2025-03-10T12:30:00Z")),
        [greeting.clone(), say(menu), listen(5)]
    );
    assert_eq!(
        step(&mut d, DialogInput::Dtmf { digit: '*' }),
        [say(menu), listen(5)],
        "repeat"
    );
    assert_eq!(
        step(&mut d, said("I need to book")),
        [
            say("Our assistant will help you book."),
            Action::HandOverToLlm
        ]
    );
    // Christmas is a Thursday, but closed.
    let mut d = clinic.start();
    assert_eq!(
        d.on_input(started(), at("2025-12-25T15:00:00Z"))[1],
        say("The clinic is closed right now.")
    );
    // The flow-level no_input applies to steps that set none.
    let mut d = clinic.start();
    step(&mut d, started());
    assert_eq!(
        step(&mut d, DialogInput::NoInput),
        [say("Are you still there?"), listen(5)]
    );
    assert_eq!(
        step(&mut d, DialogInput::NoInput),
        [
            say("Please call again any time. Goodbye."),
            Action::Hangup {
                reason: "no_input".into()
            }
        ]
    );
}

#[test]
fn steps_without_intents_go_straight_on() {
    let text = r#"
        start = "hello"
        [steps.hello]
        say = "Welcome."
        play = "sounds/chime.wav"
        then = { goto = "ask" }
        [steps.ask]
        say = "Ready?"
        [[steps.ask.intents]]
        phrases = ["ready"]
        goto = "bye"
        [steps.bye]
        say = "Bye."
        then = { action = "hangup" }
    "#;
    let set = FlowSet::from_str("chain.toml", text).expect("valid flow");
    let mut d = set.get("chain").expect("loaded").start();
    assert_eq!(
        step(&mut d, started()),
        [
            say("Welcome."),
            Action::Play {
                path: "sounds/chime.wav".into()
            },
            say("Ready?"),
            listen(5)
        ]
    );
    assert_eq!(
        step(&mut d, said("ready")),
        [
            say("Bye."),
            Action::Hangup {
                reason: "flow_end".into()
            }
        ]
    );
}

// ---- selection ----

#[test]
fn selection_by_entry_point_number_and_default() {
    let a = r#"
        numbers = ["+1 (555) 010-0001"]
        entry_points = ["sales-line"]
        start = "s"
        [steps.s]
        then = { action = "hangup" }
    "#;
    let b = "default = true\nstart = \"s\"\n[steps.s]\nthen = { action = \"hangup\" }\n";
    let set = FlowSet::from_sources([
        ("a.toml".to_string(), a.to_string()),
        ("b.toml".to_string(), b.to_string()),
    ])
    .expect("valid flows");
    let name = |f: Option<&Flow>| f.map(|f| f.name().to_string());
    assert_eq!(
        name(set.select(Some("+15550100001"), None)),
        Some("a".into())
    );
    assert_eq!(name(set.select(None, Some("sales-line"))), Some("a".into()));
    assert_eq!(
        name(set.select(Some("+15550100002"), None)),
        Some("b".into())
    );
    assert_eq!(
        name(set.select(Some("+15550100001"), Some("unknown"))),
        Some("a".into())
    );
    assert_eq!(name(set.select(None, None)), Some("b".into()));

    let only_a = FlowSet::from_str("a.toml", a).expect("valid flow");
    assert_eq!(
        name(only_a.select(Some("+15550100002"), None)),
        None,
        "no default flow"
    );
}

#[test]
fn loads_the_shipped_directory() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/flows");
    let set = FlowSet::load_dir(dir).expect("shipped flows load");
    let mut names: Vec<&str> = set.iter().map(Flow::name).collect();
    names.sort();
    assert_eq!(names, ["clinic", "front_desk"]);
    assert_eq!(
        set.select(None, Some("clinic")).map(Flow::name),
        Some("clinic")
    );
    assert_eq!(
        set.select(Some("+15550100"), None).map(Flow::name),
        Some("front_desk")
    );
}

#[test]
fn load_dir_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = FlowSet::load_dir(dir.path()).expect_err("empty directory");
    assert!(matches!(err, FlowError::Empty { .. }), "{err}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "start = \"s\"\n[steps.s]\nthen = { action = \"hangup\" }\nwat = 1\n",
    )
    .expect("write");
    let err = FlowSet::load_dir(dir.path())
        .expect_err("bad flow")
        .to_string();
    assert!(
        err.starts_with(&format!("{} line 4: ", bad.display())),
        "{err}"
    );
}

mod errors;
