//! The call actor's dialog side: feeding the dialog, and carrying out the actions it returns
//! (speech, waits, transfers, hang-ups) in order.

use std::time::SystemTime;

use tokio::time::Instant;
use tracing::{info, warn, Instrument};

use super::{ActiveTts, Actor, Internal};
use crate::call::event::{CallEvent, EndCause};
use crate::call::state::CallState;
use crate::dialog::{Action, DialogInput};
use crate::transport::twilio::protocol::CallSid;
use crate::transport::twilio::twiml::{Dial, DialTarget, Response};

impl Actor {
    // ---- dialog and actions ----------------------------------------------------------

    pub(super) fn dialog_input(&mut self, input: DialogInput) {
        // On hold the call belongs to the queue, not to the bot; with an agent, to the agent.
        if (self.hold.is_some() || self.has_agent()) && !matches!(input, DialogInput::Started { .. }) {
            return;
        }
        if self.external {
            // Everything the bot would have been told is already on the event bus.
            return;
        }
        if self.llm.is_some() {
            self.llm_input(input);
            return;
        }
        let actions = self.dialog.dialog.on_input(input, SystemTime::now());
        self.actions.extend(actions);
        self.pump_actions();
    }

    /// Carries out queued actions in order. Speech is sequential: an action waits until the
    /// utterances before it have been synthesized (Say) or played (everything else).
    pub(super) fn pump_actions(&mut self) {
        while let Some(action) = self.actions.front() {
            let synthesizing = self.tts.is_some();
            let speaking = synthesizing || self.playout.is_speaking();
            match action {
                Action::Say { .. } | Action::Play { .. } if synthesizing => return,
                Action::Listen { .. } | Action::TransferToDepartment { .. } | Action::TransferToNumber { .. }
                | Action::Hangup { .. } | Action::HandOverToLlm
                    if speaking =>
                {
                    return;
                }
                _ => {}
            }
            let action = self.actions.pop_front().expect("front was just checked");
            self.act(action);
            if self.ending.is_some() {
                return;
            }
        }
    }

    pub(super) fn act(&mut self, action: Action) {
        match action {
            Action::Say { text, barge_in: _ } => self.say(text),
            Action::Play { path } => self.play(path),
            Action::Listen { timeout } => self.listen_deadline = Some(Instant::now() + timeout),
            Action::TransferToDepartment { department } => {
                info!(%department, "transfer to department requested");
                self.emit(CallEvent::TransferRequested { target: department.clone(), target_kind: "department" });
                self.release_agent("transferred");
                if let Some(acd) = &self.services.acd {
                    let request = crate::center::acd::Enqueue::new(self.info.tenant.clone(), self.info.id.clone(), department.clone());
                    // Never waits: a full distributor leaves the caller with the bot, and says so.
                    if let Err(err) = acd.enqueue_now(request) {
                        warn!(%err, "cannot queue the call");
                        self.emit(CallEvent::TransferFailed { target: department.clone(), reason: err.to_string() });
                    }
                }
                self.state = CallState::Transferring { target: department };
            }
            Action::TransferToNumber { number } => self.transfer_to_number(number),
            Action::Hangup { reason } => {
                info!(%reason, "hanging up");
                self.hangup_via_rest();
                self.end(EndCause::Hangup);
            }
            Action::HandOverToLlm => self.enter_llm(),
        }
    }

    pub(super) fn play(&mut self, path: String) {
        let id = self.playout.begin(format!("[audio {path}]"));
        self.tts = Some(ActiveTts { id, stream: None, pending: Vec::new(), since_mark: 0, first_audio_at: None });
        let tx = self.internal_tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = media::wav::read_mono(&path).map_err(|e| format!("{path}: {e}"));
            let _ = tx.blocking_send(Internal::WavLoaded(id, result));
        });
    }

    pub(super) fn transfer_to_number(&mut self, number: String) {
        self.emit(CallEvent::TransferRequested { target: number.clone(), target_kind: "number" });
        self.release_agent("transferred");
        let (Some(rest), Some(sid)) = (self.services.twilio.clone(), self.info.external_id.clone()) else {
            let reason = "no Twilio REST credentials configured".to_string();
            warn!(%number, %reason, "cannot transfer");
            self.emit(CallEvent::TransferFailed { target: number, reason });
            return;
        };
        let twiml = match Dial::new(dial_target(&number)) {
            Ok(dial) => Response::new().dial(dial).to_xml(),
            Err(err) => {
                self.emit(CallEvent::TransferFailed { target: number, reason: err.to_string() });
                return;
            }
        };
        self.state = CallState::Transferring { target: number.clone() };
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let result = rest.update_twiml(&CallSid(sid), &twiml).await.map(|_| ()).map_err(|e| e.to_string());
            let _ = tx.send(Internal::TransferDone(number, result)).await;
        });
    }

    pub(super) fn hangup_via_rest(&mut self) {
        let (Some(rest), Some(sid)) = (self.services.twilio.clone(), self.info.external_id.clone()) else {
            return;
        };
        tokio::spawn(
            async move {
                if let Err(err) = rest.hangup(&CallSid(sid)).await {
                    warn!(%err, "REST hang-up failed; closing the stream ends the call anyway");
                }
            }
            .in_current_span(),
        );
    }
}

fn dial_target(target: &str) -> DialTarget {
    if target.starts_with("sip:") || target.starts_with("sips:") {
        DialTarget::Sip(target.to_string())
    } else {
        DialTarget::Number(target.to_string())
    }
}
