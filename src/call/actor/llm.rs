//! LLM mode: after the dialog hands the call over, each caller turn goes to an
//! OpenAI-compatible chat model whose answer streams back sentence by sentence into one
//! utterance, so the first words play before the answer is complete. Tool calls become
//! actions; a barge-in cancels the answer and leaves only what was heard in the history.

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::Actor;
use crate::call::event::CallEvent;
use crate::call::playout::UtteranceId;
use crate::dialog::llm::{LlmOutput, LlmSession};
use crate::dialog::DialogInput;

pub(super) struct LlmMode {
    session: LlmSession,
    answer: Option<mpsc::Receiver<LlmOutput>>,
    /// The utterance the current answer is being spoken into.
    utterance: Option<UtteranceId>,
}

pub(super) async fn recv(llm: &mut Option<LlmMode>) -> Option<LlmOutput> {
    match llm.as_mut().and_then(|m| m.answer.as_mut()) {
        Some(rx) => Some(rx.recv().await.unwrap_or(LlmOutput::Done)),
        None => std::future::pending().await,
    }
}

impl Actor {
    pub(super) fn enter_llm(&mut self) {
        let Some((client, prompt)) = self.services.llm.clone() else {
            warn!("the flow asked for LLM mode, which this server has not configured");
            self.emit(CallEvent::ProviderError { provider: "llm".into(), reason: "LLM mode is not configured".into() });
            return;
        };
        info!("LLM mode");
        self.listen_deadline = None;
        self.llm = Some(LlmMode { session: LlmSession::new(client, prompt), answer: None, utterance: None });
        self.emit(CallEvent::DriverChanged { driver: "llm" });
    }

    pub(super) fn llm_input(&mut self, input: DialogInput) {
        let Some(mode) = self.llm.as_mut() else { return };
        match input {
            DialogInput::Transcript { text, .. } => {
                mode.utterance = None;
                mode.answer = Some(mode.session.respond(&text));
            }
            DialogInput::Dtmf { digit } => {
                mode.utterance = None;
                mode.answer = Some(mode.session.respond(&format!("(The caller pressed {digit} on the keypad.)")));
            }
            DialogInput::Interrupted { heard } => {
                mode.session.interrupted(&heard);
                mode.answer = None;
                mode.utterance = None;
            }
            DialogInput::Started { .. } | DialogInput::NoInput | DialogInput::SpeechFinished => {}
        }
    }

    /// Something the model should know that the caller did not say (a supervisor's whisper).
    pub(super) fn llm_note(&mut self, note: &str) {
        if let Some(mode) = self.llm.as_mut() {
            mode.session.note(note);
        }
    }

    pub(super) fn on_llm(&mut self, out: LlmOutput) {
        match out {
            LlmOutput::Sentence(text) => {
                let current = self.llm.as_ref().and_then(|m| m.utterance);
                let continued = current.is_some_and(|id| self.continue_utterance(id, text.clone()));
                if !continued {
                    let id = self.start_utterance(text, false);
                    if let Some(mode) = self.llm.as_mut() {
                        mode.utterance = Some(id);
                    }
                }
            }
            LlmOutput::Action(action) => {
                self.actions.push_back(action);
                self.pump_actions();
            }
            LlmOutput::Done => self.end_answer(),
            LlmOutput::Error(reason) => {
                warn!(%reason, "LLM answer failed");
                metrics::counter!("switchboard_provider_errors_total", "provider" => "llm").increment(1);
                self.emit(CallEvent::ProviderError { provider: "llm".into(), reason });
                self.end_answer();
            }
        }
    }

    fn end_answer(&mut self) {
        let Some(mode) = self.llm.as_mut() else { return };
        mode.answer = None;
        if let Some(id) = mode.utterance.take() {
            self.finish_utterance(id);
        }
        self.pump_actions();
    }
}
