//! The call actor's speaking side: synthesis, the playout queue, pacing, hold audio.

use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{ActiveTts, Actor, Internal, FRAME, MARK_EVERY_MS};
use crate::call::event::CallEvent;
use crate::call::hold::HoldMusic;
use crate::call::leg::{LegFormat, LegOut};
use crate::call::playout::UtteranceId;
use crate::call::state::CallState;
use crate::dialog::DialogInput;
use crate::speech::tts::{TtsContext, TtsEvent, TtsInput, TtsOutputFormat};

impl Actor {
    // ---- text to speech and playout --------------------------------------------------

    pub(super) fn say(&mut self, text: String) {
        self.start_utterance(text, true);
    }

    /// Starts an utterance with `text`; with `complete` false more text follows through
    /// [`Actor::continue_utterance`] and [`Actor::finish_utterance`] (an LLM answer).
    pub(super) fn start_utterance(&mut self, text: String, complete: bool) -> UtteranceId {
        let id = self.playout.begin(text.clone());
        self.state = CallState::BotSpeaking { utterance: id, since_ms: self.elapsed_ms() };
        self.emit(CallEvent::BotSpeaking { utterance: id, text: text.clone() });
        let mut pending = vec![TtsInput::Text(text)];
        pending.push(if complete { TtsInput::Finish } else { TtsInput::Flush });
        self.tts = Some(ActiveTts { id, stream: None, pending, since_mark: 0, first_audio_at: None });
        let ctx = TtsContext {
            call_id: self.info.id.to_string(),
            voice: self.dialog.voice.clone(),
            speed: None,
            preferred: Some(match self.format {
                LegFormat::Mulaw8k => TtsOutputFormat::Mulaw8k,
                LegFormat::Pcm16k => TtsOutputFormat::Pcm16k,
            }),
        };
        let provider = self.services.tts.clone();
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let result = provider.open(ctx).await;
            let _ = tx.send(Internal::TtsOpened(id, result)).await;
        });
        id
    }

    /// More text for utterance `id`, if it is still being synthesized.
    pub(super) fn continue_utterance(&mut self, id: UtteranceId, text: String) -> bool {
        if self.tts.as_ref().is_none_or(|t| t.id != id) {
            return false;
        }
        self.playout.append_text(id, &text);
        self.tts_send(TtsInput::Text(text));
        self.tts_send(TtsInput::Flush);
        true
    }

    /// No more text for utterance `id`.
    pub(super) fn finish_utterance(&mut self, id: UtteranceId) {
        if self.tts.as_ref().is_some_and(|t| t.id == id) {
            self.tts_send(TtsInput::Finish);
        }
    }

    fn tts_send(&mut self, input: TtsInput) {
        let Some(tts) = self.tts.as_mut() else { return };
        match &tts.stream {
            Some(stream) => {
                if stream.input.try_send(input).is_err() {
                    warn!("TTS input queue full; text dropped");
                }
            }
            None => tts.pending.push(input),
        }
    }

    pub(super) fn on_tts(&mut self, ev: TtsEvent) {
        let Some(tts) = self.tts.as_mut() else { return };
        let id = tts.id;
        let queued = match ev {
            TtsEvent::Pcm { samples, rate } => self.outbound.push_pcm(&samples, rate),
            TtsEvent::Mulaw8k { bytes } => self.outbound.push_mulaw(&bytes),
            TtsEvent::Done => {
                let tail = self.outbound.flush_tail();
                self.utterance_audio(id, tail, true);
                self.playout.complete(id);
                self.tts = None;
                if let Some(f) = self.playout.finish_empty(id) {
                    self.record_utterance(f);
                    self.after_speech();
                }
                self.pump_actions();
                return;
            }
            TtsEvent::Error(err) => {
                self.provider_error(self.services.tts.name(), &err);
                self.tts = None;
                self.playout.complete(id);
                if let Some(f) = self.playout.finish_empty(id) {
                    self.record_utterance(f);
                    self.after_speech();
                }
                self.pump_actions();
                return;
            }
        };
        match queued {
            Ok(samples) => {
                if let Some(tts) = self.tts.as_mut() {
                    if samples > 0 && tts.first_audio_at.is_none() {
                        let now = Instant::now();
                        tts.first_audio_at = Some(now);
                        self.first_frame_due = Some(now);
                    }
                }
                self.utterance_audio(id, samples, true);
            }
            Err(err) => warn!(%err, "cannot queue synthesized audio"),
        }
    }

    /// Accounts `samples` (at 8 kHz) of utterance `id` and places a mark after a chunk, or
    /// within a long one, so the playout clock has a fine grain.
    pub(super) fn utterance_audio(&mut self, id: UtteranceId, samples: u64, chunk_end: bool) {
        if samples == 0 {
            return;
        }
        self.playout.queued(id, samples);
        let Some(tts) = self.tts.as_mut() else { return };
        tts.since_mark += samples;
        let mark_every = self.outbound.rate().samples_in_ms(MARK_EVERY_MS) as u64;
        if chunk_end || tts.since_mark >= mark_every {
            tts.since_mark = 0;
            if let Some(name) = self.playout.mark(id) {
                self.outbound.mark(name);
            }
        }
    }

    pub(super) fn after_speech(&mut self) {
        if !self.playout.is_speaking() && self.tts.is_none() {
            self.state = self.idle_state();
            self.dialog_input(DialogInput::SpeechFinished);
        }
    }

    /// Sends queued audio, keeping at most `playout_lead` ahead of the far end's playout.
    pub(super) fn pace(&mut self) {
        let now = Instant::now();
        if self.sent_until < now {
            self.sent_until = now;
        }
        let horizon = now + self.services.config.playout_lead;
        self.refill_hold_music();
        while self.sent_until < horizon && self.ending.is_none() {
            let Some(frame) = self.outbound.next_frame(self.sent_until.into_std()) else { break };
            let first = self.frames_out == 0;
            if let Some(bridge) = self.bridge.as_mut() {
                // Hold audio is the caller's alone.
                if self.hold.is_none() {
                    bridge.tap_bot(&frame.audio);
                }
            }
            self.send_leg(frame.audio);
            for mark in frame.marks_after {
                self.send_leg(LegOut::Mark(mark));
            }
            self.frames_out += 1;
            self.sent_until += FRAME;
            metrics::counter!("switchboard_frames_out_total").increment(1);
            if !frame.silence {
                // The utterance may have finished synthesizing already: the clock is kept on
                // the actor, not on the synthesis stream.
                if let Some(at) = self.first_frame_due.take() {
                    metrics::histogram!("switchboard_stage_latency_seconds", "stage" => "tts_to_first_frame")
                        .record(at.elapsed().as_secs_f64());
                }
            }
            if first {
                debug!("first audio frame sent");
            }
        }
    }

    /// Keeps a little hold audio queued while on hold and the bot is not speaking.
    pub(super) fn refill_hold_music(&mut self) {
        let Some(music) = self.hold.as_mut() else { return };
        if self.tts.is_some() || self.playout.is_speaking() || self.outbound.queued_ms() >= 100 {
            return;
        }
        let mut chunk = Vec::with_capacity(self.outbound.rate().samples_in_ms(200));
        music.render(200, &mut chunk);
        if let Err(err) = self.outbound.push_pcm(&chunk, self.outbound.rate()) {
            warn!(%err, "cannot queue hold audio");
        }
    }

    pub(super) fn set_hold(&mut self, on: bool) {
        if on == self.hold.is_some() {
            return;
        }
        if on {
            info!("caller on hold");
            // Whatever the bot was saying stops; announcements sent while on hold still play.
            self.stop_speaking();
            self.listen_deadline = None;
            self.speech_over_bot_since = None;
            self.hold = Some(HoldMusic::new(self.outbound.rate()));
            self.state = CallState::OnHold;
        } else {
            info!("caller off hold");
            self.hold = None;
            if !self.playout.is_speaking() && self.tts.is_none() {
                // Only hold audio is queued: drop it so the caller hears the agent or bot at once.
                self.send_leg(LegOut::Clear);
                self.outbound.clear();
            }
            self.state = self.idle_state();
        }
        self.emit(CallEvent::Hold { on });
    }
}
