//! One call's walk through a flow: a small state machine over the flow's steps.
//!
//! It is called inline on the call's audio task, so it only looks things up in the compiled
//! flow and pushes actions: no I/O, no clock (business hours use the `now` passed in).

use std::sync::Arc;
use std::time::SystemTime;

use tracing::{debug, warn};

use super::matcher;
use super::model::{FlowDef, Next, Outcome, StepId, StepKind};
use crate::dialog::{Action, Dialog, DialogInput};

/// Where the call is in the flow.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    NotStarted,
    /// A question was asked; the caller's answer (or silence) comes next.
    Listening {
        step: StepId,
        no_input: u32,
        no_match: u32,
    },
    /// The flow handed the call on (transfer, hang-up, LLM); later inputs are ignored.
    Done,
}

/// Why the call ended, for `Action::Hangup`.
const END_FLOW: &str = "flow_end";
const END_NO_INPUT: &str = "no_input";
const END_NO_MATCH: &str = "no_match";
const END_MAX_TURNS: &str = "max_turns";
const END_AFTER_HOURS: &str = "after_hours";

/// A call driven by a rules flow. Made by `Flow::start`.
#[derive(Debug)]
pub struct FlowDialog {
    flow: Arc<FlowDef>,
    state: State,
    /// Caller turns so far: answers, digits and silences.
    turns: u32,
}

impl FlowDialog {
    pub(crate) fn new(flow: Arc<FlowDef>) -> Self {
        Self {
            flow,
            state: State::NotStarted,
            turns: 0,
        }
    }

    /// The step waiting for the caller, if any.
    pub fn step_name(&self) -> Option<&str> {
        match &self.state {
            State::Listening { step, .. } => Some(&self.flow.step(*step).name),
            _ => None,
        }
    }

    /// The flow has handed the call on or ended it.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn say(&self, text: &str, out: &mut Vec<Action>) {
        // An unset `barge_in` leaves utterances interruptible; the call actor applies its own
        // `calls.barge_in` on top.
        let barge_in = self.flow.barge_in.unwrap_or(true);
        out.push(Action::Say {
            text: text.to_owned(),
            barge_in,
        });
    }

    fn start(&mut self, flow: &FlowDef, now: SystemTime, out: &mut Vec<Action>) {
        if let Some(greeting) = &flow.greeting {
            self.say(greeting, out);
        }
        match &flow.hours {
            Some(hours) if !hours.schedule.is_open(now) => {
                debug!(flow = %flow.name, "out of hours");
                self.run(flow, &hours.closed, END_AFTER_HOURS, out);
            }
            _ => self.enter(flow, flow.start, out),
        }
    }

    /// Carry out an outcome: its own words, then where it leads.
    fn run(&mut self, flow: &FlowDef, outcome: &Outcome, reason: &str, out: &mut Vec<Action>) {
        if let Some(text) = &outcome.say {
            self.say(text, out);
        }
        if let Some(path) = &outcome.play {
            out.push(Action::Play { path: path.clone() });
        }
        let end = match &outcome.next {
            Next::Goto(step) => return self.enter(flow, *step, out),
            Next::Repeat => match self.state {
                State::Listening { step, .. } => return self.ask(flow, step, None, out),
                // `compile` allows `repeat` only inside a step that asked something.
                _ => {
                    warn!(flow = %flow.name, "repeat outside a question; hanging up");
                    Action::Hangup {
                        reason: reason.to_owned(),
                    }
                }
            },
            Next::Hangup => Action::Hangup {
                reason: reason.to_owned(),
            },
            Next::Llm => Action::HandOverToLlm,
            Next::Department(d) => Action::TransferToDepartment {
                department: d.clone(),
            },
            Next::Number(n) => Action::TransferToNumber { number: n.clone() },
        };
        debug!(flow = %flow.name, action = ?end, "flow done");
        out.push(end);
        self.state = State::Done;
    }

    /// Arrive at a step: ask its question, or say its words and go on.
    fn enter(&mut self, flow: &FlowDef, id: StepId, out: &mut Vec<Action>) {
        let step = flow.step(id);
        debug!(flow = %flow.name, step = %step.name, "step");
        match &step.kind {
            StepKind::Listen { .. } => {
                self.state = State::Listening {
                    step: id,
                    no_input: 0,
                    no_match: 0,
                };
                self.ask(flow, id, None, out);
            }
            StepKind::Then(then) => {
                if let Some(text) = &step.say {
                    self.say(text, out);
                }
                if let Some(path) = &step.play {
                    out.push(Action::Play { path: path.clone() });
                }
                // `compile` rejects chains of such steps that loop, so this recursion ends.
                self.run(flow, then, END_FLOW, out);
            }
        }
    }

    /// Ask a listening step's question (or `reprompt` instead) and wait, unless the caller
    /// has used up the flow's turns.
    fn ask(&mut self, flow: &FlowDef, id: StepId, reprompt: Option<&str>, out: &mut Vec<Action>) {
        if self.turns >= flow.max_turns {
            debug!(flow = %flow.name, turns = self.turns, "max turns");
            return self.run(flow, &flow.on_max_turns, END_MAX_TURNS, out);
        }
        let step = flow.step(id);
        let StepKind::Listen { timeout, .. } = &step.kind else {
            unreachable!(
                "ask is only called with the step held by State::Listening, a listening step"
            )
        };
        match reprompt {
            Some(text) => self.say(text, out),
            None => {
                if let Some(text) = &step.say {
                    self.say(text, out);
                }
                if let Some(path) = &step.play {
                    out.push(Action::Play { path: path.clone() });
                }
            }
        }
        out.push(Action::Listen { timeout: *timeout });
    }

    fn no_input(&mut self, flow: &FlowDef, out: &mut Vec<Action>) {
        let State::Listening { step, no_input, .. } = &mut self.state else {
            return;
        };
        *no_input += 1;
        let (id, count) = (*step, *no_input);
        let StepKind::Listen {
            no_input: reprompt, ..
        } = &flow.step(id).kind
        else {
            return;
        };
        if count <= reprompt.limit {
            self.ask(flow, id, reprompt.say.as_deref(), out);
        } else {
            self.run(flow, &reprompt.then, END_NO_INPUT, out);
        }
    }

    fn no_match(&mut self, flow: &FlowDef, out: &mut Vec<Action>) {
        let State::Listening { step, no_match, .. } = &mut self.state else {
            return;
        };
        *no_match += 1;
        let (id, count) = (*step, *no_match);
        let StepKind::Listen {
            no_match: reprompt, ..
        } = &flow.step(id).kind
        else {
            return;
        };
        if count <= reprompt.limit {
            self.ask(flow, id, reprompt.say.as_deref(), out);
        } else {
            self.run(flow, &reprompt.then, END_NO_MATCH, out);
        }
    }

    fn heard(&mut self, flow: &FlowDef, text: &str, confidence: f32, out: &mut Vec<Action>) {
        let State::Listening { step, .. } = self.state else {
            return;
        };
        let StepKind::Listen { intents, .. } = &flow.step(step).kind else {
            return;
        };
        let words = matcher::words(text);
        if words.is_empty() {
            return self.no_input(flow, out);
        }
        if confidence < flow.min_confidence {
            debug!(flow = %flow.name, confidence, "transcript below the confidence floor");
            return self.no_match(flow, out);
        }
        match matcher::best(intents.iter().map(|i| &i.matcher), &words) {
            Some(i) => {
                debug!(flow = %flow.name, intent = %intents[i].name, "intent");
                self.run(flow, &intents[i].outcome, END_FLOW, out);
            }
            None => self.no_match(flow, out),
        }
    }

    fn digit(&mut self, flow: &FlowDef, digit: char, out: &mut Vec<Action>) {
        let State::Listening { step, .. } = self.state else {
            return;
        };
        let StepKind::Listen { intents, .. } = &flow.step(step).kind else {
            return;
        };
        let digit = digit.to_ascii_uppercase();
        match intents.iter().find(|i| i.digits.contains(&digit)) {
            Some(intent) => {
                debug!(flow = %flow.name, intent = %intent.name, %digit, "intent by digit");
                self.run(flow, &intent.outcome, END_FLOW, out);
            }
            None => self.no_match(flow, out),
        }
    }
}

impl Dialog for FlowDialog {
    fn on_input(&mut self, input: DialogInput, now: SystemTime) -> Vec<Action> {
        let flow = Arc::clone(&self.flow);
        let mut out = Vec::new();
        let listening = matches!(self.state, State::Listening { .. });
        match input {
            DialogInput::Started { .. } if self.state == State::NotStarted => {
                self.start(&flow, now, &mut out)
            }
            DialogInput::Transcript { text, confidence } if listening => {
                self.turns += 1;
                self.heard(&flow, &text, confidence, &mut out);
            }
            DialogInput::Dtmf { digit } if listening => {
                self.turns += 1;
                self.digit(&flow, digit, &mut out);
            }
            DialogInput::NoInput if listening => {
                self.turns += 1;
                self.no_input(&flow, &mut out);
            }
            // The Listen already asked for is still standing: the caller's turn comes next.
            DialogInput::SpeechFinished | DialogInput::Interrupted { .. } => {}
            other => {
                debug!(flow = %flow.name, input = ?other, state = ?self.state, "input ignored")
            }
        }
        out
    }

    fn expected_phrases(&self) -> Vec<String> {
        let State::Listening { step, .. } = self.state else {
            return Vec::new();
        };
        match &self.flow.step(step).kind {
            StepKind::Listen { phrases, .. } => phrases.clone(),
            StepKind::Then(_) => Vec::new(),
        }
    }
}
