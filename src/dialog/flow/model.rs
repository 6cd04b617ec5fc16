//! The checked, runtime form of a flow: steps by index, every `goto` resolved, phrases
//! normalised. Nothing here can fail at call time.

use std::time::Duration;

use super::hours::Schedule;
use super::matcher::Matcher;

/// Index into `FlowDef::steps`; only built by `compile` from names it checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StepId(pub(crate) usize);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    Goto(StepId),
    /// Ask the current step's question again (counts as a re-prompt of neither kind).
    Repeat,
    Hangup,
    Llm,
    Department(String),
    Number(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) say: Option<String>,
    pub(crate) play: Option<String>,
    pub(crate) next: Next,
}

impl Outcome {
    pub(crate) fn hangup() -> Self {
        Self {
            say: None,
            play: None,
            next: Next::Hangup,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Intent {
    pub(crate) name: String,
    pub(crate) matcher: Matcher,
    /// Uppercase DTMF digits.
    pub(crate) digits: Vec<char>,
    pub(crate) outcome: Outcome,
    /// Phrases (and their variants) for the recognizer's grammar.
    pub(crate) grammar: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Reprompt {
    pub(crate) say: Option<String>,
    pub(crate) limit: u32,
    pub(crate) then: Outcome,
}

#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) name: String,
    pub(crate) say: Option<String>,
    pub(crate) play: Option<String>,
    pub(crate) kind: StepKind,
}

// A flow has a handful of steps, built once at load: boxing the larger variant saves nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(crate) enum StepKind {
    /// Prompts, then waits for the caller.
    Listen {
        /// The recognizer grammar while waiting here: the intents' phrases and variants, once each.
        phrases: Vec<String>,
        timeout: Duration,
        intents: Vec<Intent>,
        no_input: Reprompt,
        no_match: Reprompt,
    },
    /// Prompts, then goes on without waiting.
    Then(Outcome),
}

#[derive(Debug, Clone)]
pub(crate) struct Hours {
    pub(crate) schedule: Schedule,
    pub(crate) closed: Outcome,
}

#[derive(Debug, Clone)]
pub(crate) struct FlowDef {
    pub(crate) name: String,
    pub(crate) file: String,
    pub(crate) default: bool,
    /// Normalised (digits and a leading '+').
    pub(crate) numbers: Vec<String>,
    pub(crate) entry_points: Vec<String>,
    pub(crate) voice: Option<String>,
    /// As written in the file; `None` leaves it to the server's call settings.
    pub(crate) barge_in: Option<bool>,
    pub(crate) barge_in_min_speech: Option<Duration>,
    pub(crate) min_confidence: f32,
    pub(crate) max_turns: u32,
    pub(crate) on_max_turns: Outcome,
    pub(crate) greeting: Option<String>,
    pub(crate) start: StepId,
    pub(crate) steps: Vec<Step>,
    pub(crate) hours: Option<Hours>,
    pub(crate) stt_phrases: Vec<String>,
}

impl FlowDef {
    pub(crate) fn step(&self, id: StepId) -> &Step {
        &self.steps[id.0]
    }
}

/// A phone number as flows compare them: digits, with the leading '+' kept.
pub(crate) fn normalise_number(number: &str) -> String {
    let trimmed = number.trim();
    let plus = if trimmed.starts_with('+') { "+" } else { "" };
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        String::new()
    } else {
        format!("{plus}{digits}")
    }
}
