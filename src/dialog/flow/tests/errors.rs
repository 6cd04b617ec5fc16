//! Every load-time error names the file, the line and the key.

use super::*;

/// A valid flow to break in one place.
const BASE: &str = r#"start = "ask"
[steps.ask]
say = "Billing or sales?"
[[steps.ask.intents]]
phrases = ["billing"]
digits = ["1"]
goto = "confirm"
[[steps.ask.intents]]
phrases = ["sales"]
digits = ["2"]
action = { department = "sales" }
[steps.confirm]
say = "Sure?"
[[steps.confirm.intents]]
phrases = ["yes"]
action = { department = "billing" }
"#;

/// The 1-based line of the first line containing `marker`.
fn line_of(text: &str, marker: &str) -> usize {
    text.lines()
        .position(|l| l.contains(marker))
        .map(|i| i + 1)
        .expect("marker is in the text")
}

/// Load `text` as `flows/t.toml`, expecting an error; the error's Display.
fn error(text: &str) -> String {
    FlowSet::from_str("flows/t.toml", text)
        .expect_err("the flow is invalid")
        .to_string()
}

/// `BASE` with the first `from` replaced by `to`, and the line where `to` starts.
fn broken(from: &str, to: &str) -> (String, usize) {
    let offset = BASE.find(from).expect("`from` is in BASE");
    let line = BASE[..offset].matches('\n').count() + 1;
    (BASE.replacen(from, to, 1), line)
}

fn assert_error(text: &str, line: usize, key: &str, message: &str) {
    let got = error(text);
    let want = format!("flows/t.toml line {line}: {key}: {message}");
    assert_eq!(got, want);
}

#[test]
fn base_is_valid() {
    FlowSet::from_str("flows/t.toml", BASE).expect("BASE is a valid flow");
}

#[test]
fn goto_to_a_missing_step() {
    let (text, line) = broken("goto = \"confirm\"", "goto = \"confirmm\"");
    assert_error(
        &text,
        line,
        "steps.ask.intents[0].goto",
        "unknown step \"confirmm\"",
    );
    let (text, line) = broken("start = \"ask\"", "start = \"asc\"");
    assert_error(&text, line, "start", "unknown step \"asc\"");
}

#[test]
fn duplicate_dtmf_digit() {
    let (text, line) = broken("digits = [\"2\"]", "digits = [\"1\"]");
    assert_error(
        &text,
        line,
        "steps.ask.intents[1].digits[0]",
        "digit \"1\" is already used by steps.ask.intents[0]",
    );
}

#[test]
fn bad_dtmf_digit() {
    let (text, line) = broken("digits = [\"2\"]", "digits = [\"12\"]");
    assert_error(
        &text,
        line,
        "steps.ask.intents[1].digits[0]",
        "\"12\" is not one DTMF digit (0-9, *, #, A-D)",
    );
}

#[test]
fn intent_with_no_phrases_and_no_digit() {
    let (text, _) = broken("phrases = [\"sales\"]\ndigits = [\"2\"]\n", "");
    // The intent's own `[[...]]` header is the place to look.
    let line = line_of(&text, "action = { department = \"sales\" }") - 1;
    assert_error(
        &text,
        line,
        "steps.ask.intents[1]",
        "an intent needs `phrases`, `keywords` or `digits`",
    );
}

#[test]
fn duplicate_phrase_in_a_step() {
    let (text, line) = broken(
        "phrases = [\"sales\"]",
        "phrases = [\"sales\", \"Billing!\"]",
    );
    assert_error(
        &text,
        line,
        "steps.ask.intents[1].phrases[1]",
        "\"Billing!\" is already a phrase of steps.ask.intents[0]",
    );
}

#[test]
fn goto_and_action_together_or_neither() {
    let (text, line) = broken(
        "goto = \"confirm\"",
        "goto = \"confirm\"\naction = \"hangup\"",
    );
    assert_error(
        &text,
        line,
        "steps.ask.intents[0].goto",
        "`goto` and `action` cannot both be set",
    );
    let (text, _) = broken("goto = \"confirm\"\n", "");
    let line = line_of(&text, "phrases = [\"billing\"]") - 1;
    assert_error(
        &text,
        line,
        "steps.ask.intents[0]",
        "needs `goto` (a step) or `action`",
    );
}

#[test]
fn bad_time_zone_and_hours() {
    let hours = |tz: &str, open: &str| {
        format!(
            "{BASE}[hours]\ntime_zone = \"{tz}\"\nopen = [\"{open}\"]\nclosed = {{ action = \"hangup\" }}\n"
        )
    };
    let text = hours("America/New_Yrok", "mon-fri 09:00-17:00");
    let line = line_of(&text, "time_zone");
    assert_error(
        &text,
        line,
        "hours.time_zone",
        "unknown time zone \"America/New_Yrok\"",
    );
    let text = hours("Europe/Paris", "mon-fri 17:00-09:00");
    assert_error(
        &text,
        line_of(&text, "open ="),
        "hours.open[0]",
        "\"mon-fri 17:00-09:00\": the range must end after it starts (write overnight hours as two ranges)",
    );
    let text = format!(
        "{BASE}[hours]\ntime_zone = \"UTC\"\nopen = [\"daily 09:00-17:00\"]\nclosed = {{ action = \"repeat\" }}\n"
    );
    assert_error(
        &text,
        line_of(&text, "closed ="),
        "hours.closed.action",
        "`repeat` needs a step whose question to repeat",
    );
}

#[test]
fn unknown_key_is_named() {
    let (text, line) = broken("phrases = [\"sales\"]", "phrase = [\"sales\"]");
    let got = error(&text);
    let prefix = format!(
        "flows/t.toml line {line}: steps.ask.intents[1].phrase: unknown field `phrase`, expected one of"
    );
    assert!(got.starts_with(&prefix), "{got}");
    let (text, line) = broken("start = \"ask\"", "start = \"ask\"\ngreting = \"Hi\"");
    let got = error(&text);
    assert!(
        got.starts_with(&format!(
            "flows/t.toml line {}: greting: unknown field `greting`",
            line + 1
        )),
        "{got}"
    );
}

#[test]
fn wrong_types_and_values() {
    let (text, line) = broken(
        "say = \"Sure?\"",
        "say = \"Sure?\"\nlisten_timeout = \"soon\"",
    );
    let got = error(&text);
    assert!(
        got.starts_with(&format!(
            "flows/t.toml line {}: steps.confirm.listen_timeout: ",
            line + 1
        )),
        "{got}"
    );
    let (text, line) = broken(
        "action = { department = \"sales\" }",
        "action = { queue = \"sales\" }",
    );
    let got = error(&text);
    assert!(
        got.starts_with(&format!(
            "flows/t.toml line {line}: steps.ask.intents[1].action"
        )),
        "{got}"
    );
    let (text, line) = broken("start = \"ask\"", "start = \"ask\"\nmin_confidence = 1.5");
    assert_error(&text, line + 1, "min_confidence", "must be between 0 and 1");
    let (text, line) = broken(
        "say = \"Sure?\"",
        "say = \"Sure?\"\nplay = \"/etc/passwd.wav\"",
    );
    assert_error(
        &text,
        line + 1,
        "steps.confirm.play",
        "\"/etc/passwd.wav\" must be relative to the config directory, without \"..\"",
    );
}

#[test]
fn missing_start_and_syntax_errors() {
    let text = BASE.replacen("start = \"ask\"\n", "", 1);
    assert_eq!(error(&text), "flows/t.toml line 1: missing field `start`");
    let (text, line) = broken("say = \"Sure?\"", "say = \"Sure?");
    let got = error(&text);
    assert!(
        got.starts_with(&format!("flows/t.toml line {line}: ")),
        "{got}"
    );
    assert!(!got.contains('\n'), "one line: {got}");
}

#[test]
fn steps_that_loop_without_listening() {
    let text = format!(
        "{BASE}[steps.a]\nsay = \"A\"\nthen = {{ goto = \"b\" }}\n[steps.b]\nsay = \"B\"\nthen = {{ goto = \"a\" }}\n"
    );
    let line = line_of(&text, "then = { goto = \"b\" }");
    assert_error(
        &text,
        line,
        "steps.a.then.goto",
        "steps a -> b -> a go round without waiting for the caller",
    );
    let (text, line) = broken(
        "say = \"Sure?\"",
        "say = \"Sure?\"\nthen = { action = \"hangup\" }",
    );
    assert_error(
        &text,
        line + 1,
        "steps.confirm.then",
        "a step with `intents` waits for the caller; `then` is for steps without",
    );
}

#[test]
fn max_turns_must_end_the_call() {
    let (text, line) = broken(
        "start = \"ask\"",
        "start = \"ask\"\non_max_turns = { goto = \"ask\" }",
    );
    assert_error(
        &text,
        line + 1,
        "on_max_turns.goto",
        "must end the call: use `action` (hangup, llm, department, number)",
    );
}

#[test]
fn flows_that_claim_the_same_calls() {
    let with = |extra: &str| format!("{extra}\n{BASE}");
    let a = with("numbers = [\"+15550100\"]\ndefault = true");
    let b = with("numbers = [\"+1 555 0100\"]");
    let err = FlowSet::from_sources([("a.toml".into(), a.clone()), ("b.toml".into(), b)])
        .expect_err("same number");
    assert_eq!(
        err.to_string(),
        "b.toml line 1: numbers[0]: +15550100 is already answered by flow \"a\" (a.toml)"
    );
    let c = with("\ndefault = true");
    let err = FlowSet::from_sources([("a.toml".into(), a), ("c.toml".into(), c)])
        .expect_err("two defaults");
    assert_eq!(
        err.to_string(),
        "c.toml line 2: default: a.toml is already the default flow"
    );
}
