//! The flow file format as written (serde structs); `compile` checks it and turns it into the
//! runtime form. Unknown keys are errors everywhere, so a typo is reported, not ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

fn yes() -> bool {
    true
}

fn default_listen_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_max_turns() -> u32 {
    10
}

fn default_limit() -> u32 {
    2
}

/// One flow file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlowSpec {
    /// Defaults to the file stem.
    pub name: Option<String>,
    /// Catches calls no other flow claims.
    #[serde(default)]
    pub default: bool,
    /// Called numbers (E.164) this flow answers.
    #[serde(default)]
    pub numbers: Vec<String>,
    /// WebRTC entry points (and Twilio `entry` parameters) this flow answers.
    #[serde(default)]
    pub entry_points: Vec<String>,
    /// TTS voice; the speech provider's default when unset.
    pub voice: Option<String>,
    /// Unset: the server's `calls.barge_in` (or `true` where there is none).
    pub barge_in: Option<bool>,
    /// Unset: the server's `calls.barge_in_min_speech` (or 300 ms).
    #[serde(default, with = "humantime_serde")]
    pub barge_in_min_speech: Option<Duration>,
    /// Transcripts below this confidence count as "no match".
    #[serde(default)]
    pub min_confidence: f32,
    /// Caller turns (speech, digit or silence) before `on_max_turns`.
    #[serde(default = "default_max_turns")]
    pub max_turns: u32,
    pub on_max_turns: Option<OutcomeSpec>,
    /// Said once, before the first step (or before the after-hours outcome).
    pub greeting: Option<String>,
    /// The first step.
    pub start: String,
    /// Default for steps that set none.
    #[serde(default = "default_listen_timeout", with = "humantime_serde")]
    pub listen_timeout: Duration,
    /// Defaults for steps that set none.
    pub no_input: Option<RepromptSpec>,
    pub no_match: Option<RepromptSpec>,
    pub hours: Option<HoursSpec>,
    /// Words put before / after each phrase for the speech recognizer's grammar.
    pub variant_prefixes: Option<Vec<String>>,
    pub variant_suffixes: Option<Vec<String>>,
    #[serde(default)]
    pub steps: BTreeMap<String, StepSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepSpec {
    pub say: Option<String>,
    pub play: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub listen_timeout: Option<Duration>,
    #[serde(default)]
    pub intents: Vec<IntentSpec>,
    pub no_input: Option<RepromptSpec>,
    pub no_match: Option<RepromptSpec>,
    /// For a step without intents: what to do right after its prompt.
    pub then: Option<OutcomeSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IntentSpec {
    pub name: Option<String>,
    #[serde(default)]
    pub phrases: Vec<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub digits: Vec<String>,
    /// Add "talk to X", "X please", ... to the recognizer's grammar.
    #[serde(default = "yes")]
    pub variants: bool,
    pub say: Option<String>,
    pub play: Option<String>,
    pub goto: Option<String>,
    pub action: Option<ActionSpec>,
}

impl IntentSpec {
    pub(crate) fn outcome(&self) -> OutcomeSpec {
        OutcomeSpec {
            say: self.say.clone(),
            play: self.play.clone(),
            goto: self.goto.clone(),
            action: self.action.clone(),
        }
    }
}

/// What to do: optionally say / play something, then go to a step or take an action.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutcomeSpec {
    pub say: Option<String>,
    pub play: Option<String>,
    pub goto: Option<String>,
    pub action: Option<ActionSpec>,
}

/// `action = "hangup"`, `action = { department = "billing" }`, ...
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ActionSpec {
    /// Ask the current step's question again.
    Repeat,
    Hangup,
    /// Hand the call to the LLM dialog.
    Llm,
    Department(String),
    Number(String),
}

/// Re-prompting on silence or on something the flow did not understand.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RepromptSpec {
    /// The re-prompt; the step's own `say` when unset.
    pub say: Option<String>,
    /// How many times to re-prompt before `then`.
    #[serde(default = "default_limit")]
    pub limit: u32,
    /// After the last re-prompt; hang up when unset.
    pub then: Option<OutcomeSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HoursSpec {
    /// IANA name, e.g. "America/New_York".
    pub time_zone: String,
    /// "mon-fri 09:00-17:00", "sat 10:00-14:00", ...
    pub open: Vec<String>,
    /// Dates ("2025-12-25") closed all day.
    #[serde(default)]
    pub closed_dates: Vec<String>,
    /// What to do out of hours, instead of the first step.
    pub closed: OutcomeSpec,
}
