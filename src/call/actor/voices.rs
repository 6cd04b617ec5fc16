//! What people other than the caller say on a call: the agent (voice activity and transcript),
//! and a supervisor who whispers while no agent is on the call. Such a whisper reaches only the
//! bot's side: it is transcribed onto the call's transcript (`speaker: "supervisor"`) and, in LLM
//! mode, handed to the model as a supervisor's note. The caller never hears it.

use std::collections::HashMap;

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{Actor, Internal};
use crate::call::audio::{InboundAudio, VadEvent};
use crate::call::event::CallEvent;
use crate::call::room::ParticipantId;
use crate::speech::stt::{SttAudioFormat, SttContext, SttEvent, SttInput, SttStream};

/// Recognition results of all voices, tagged, on their way to the actor.
const EVENT_QUEUE: usize = 32;
/// Audio kept while a voice's recognizer connects (5 s at 20 ms a frame).
const PENDING_FRAMES: usize = 250;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Speaker {
    Agent,
    Supervisor,
}

impl Speaker {
    fn name(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Supervisor => "supervisor",
        }
    }
}

struct Voice {
    speaker: Speaker,
    vad: Option<InboundAudio>,
    stt: Option<mpsc::Sender<SttInput>>,
    /// False when the recognizer knows only the flow's phrases: speech is detected, not
    /// transcribed.
    transcribed: bool,
    pending: Vec<SttInput>,
    /// 16 kHz samples fed so far: the voice's own clock.
    samples: u64,
}

/// The voices being recognized on one call.
pub(super) struct Voices {
    voices: HashMap<ParticipantId, Voice>,
    events_tx: mpsc::Sender<(ParticipantId, SttEvent)>,
    pub events_rx: mpsc::Receiver<(ParticipantId, SttEvent)>,
}

impl Voices {
    pub fn new() -> Self {
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        Self { voices: HashMap::new(), events_tx, events_rx }
    }

    pub fn contains(&self, id: &ParticipantId) -> bool {
        self.voices.contains_key(id)
    }

    pub fn remove(&mut self, id: &ParticipantId) {
        if let Some(stt) = self.voices.remove(id).and_then(|v| v.stt) {
            let _ = stt.try_send(SttInput::Close);
        }
    }

    pub fn close(&mut self) {
        for (_, voice) in self.voices.drain() {
            if let Some(stt) = voice.stt {
                let _ = stt.try_send(SttInput::Close);
            }
        }
    }

    /// A voice's recognizer is open: what was kept meanwhile goes first, and its results are
    /// forwarded, tagged, to the actor.
    fn opened(&mut self, id: &ParticipantId, stream: SttStream) {
        let Some(voice) = self.voices.get_mut(id) else {
            let _ = stream.input.try_send(SttInput::Close);
            return;
        };
        if stream.format != SttAudioFormat::Linear16k {
            warn!(format = ?stream.format, "the recognizer wants another format; no transcript for this voice");
            let _ = stream.input.try_send(SttInput::Close);
            return;
        }
        for input in voice.pending.drain(..) {
            let _ = stream.input.try_send(input);
        }
        voice.stt = Some(stream.input);
        let (tx, id, mut events) = (self.events_tx.clone(), id.clone(), stream.events);
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if tx.send((id.clone(), ev)).await.is_err() {
                    break;
                }
            }
        });
    }

    /// Feeds one frame; returns the voice's activity changes.
    fn feed(&mut self, id: &ParticipantId, samples: Vec<i16>) -> Vec<VadEvent> {
        let Some(voice) = self.voices.get_mut(id) else { return Vec::new() };
        let mut events = Vec::new();
        if let Some(vad) = voice.vad.as_mut() {
            if let Err(err) = vad.push_pcm16(&samples, &mut events) {
                debug!(%err, "voice detection failed on a frame");
            }
        }
        let at_samples = voice.samples;
        voice.samples += samples.len() as u64;
        let mut inputs = vec![SttInput::Linear16k { at_samples, samples }];
        if events.iter().any(|e| matches!(e, VadEvent::Ended { .. })) {
            inputs.push(SttInput::Finalize);
        }
        for input in inputs {
            match &voice.stt {
                Some(stt) => {
                    if stt.try_send(input).is_err() {
                        metrics::counter!("switchboard_stt_dropped_total").increment(1);
                    }
                }
                None if voice.transcribed && voice.pending.len() < PENDING_FRAMES => voice.pending.push(input),
                None => {}
            }
        }
        events
    }
}

impl Actor {
    /// Starts recognizing a participant's voice.
    pub(super) fn add_voice(&mut self, id: ParticipantId, speaker: Speaker) {
        let Some(bridge) = self.bridge.as_mut() else { return };
        let vad = match InboundAudio::new(&self.services.config.vad) {
            Ok(vad) => Some(vad),
            Err(err) => {
                warn!(%err, "no voice detection for a participant");
                None
            }
        };
        let provider = self.services.stt.clone();
        let transcribed = provider.recognizes_free_speech();
        bridge.voices.voices.insert(id.clone(), Voice { speaker, vad, stt: None, transcribed, pending: Vec::new(), samples: 0 });
        if !transcribed {
            info!(speaker = speaker.name(), provider = provider.name(), "the recognizer knows only the flow's phrases: this voice is detected, not transcribed");
            return;
        }
        let ctx = SttContext {
            call_id: self.info.id.to_string(),
            language: None,
            phrases: self.dialog.phrases.clone(),
            native_format: Some(SttAudioFormat::Linear16k),
        };
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let result = provider.open(ctx).await;
            let _ = tx.send(Internal::VoiceSttOpened(id, result)).await;
        });
    }

    pub(super) fn voice_stt_opened(&mut self, id: &ParticipantId, stream: SttStream) {
        match self.bridge.as_mut() {
            Some(bridge) => bridge.voices.opened(id, stream),
            None => {
                let _ = stream.input.try_send(SttInput::Close);
            }
        }
    }

    pub(super) fn on_voice_audio(&mut self, id: &ParticipantId, samples: Vec<i16>) {
        let elapsed = self.elapsed_ms();
        let Some(bridge) = self.bridge.as_mut() else { return };
        let speaker = bridge.voices.voices.get(id).map(|v| v.speaker);
        let events = bridge.voices.feed(id, samples);
        // Dead-air rules and dashboards follow the agent's voice; a whisper is not the call's.
        if speaker != Some(Speaker::Agent) {
            return;
        }
        for ev in events {
            self.emit(match ev {
                VadEvent::Started { .. } => CallEvent::AgentSpeechStarted { at_ms: elapsed },
                VadEvent::Ended { duration_ms, .. } => CallEvent::AgentSpeechEnded { at_ms: elapsed, duration_ms },
            });
        }
    }

    pub(super) fn on_voice_stt(&mut self, id: &ParticipantId, ev: SttEvent) {
        let Some(speaker) = self.bridge.as_ref().and_then(|b| b.voices.voices.get(id)).map(|v| v.speaker) else { return };
        match ev {
            SttEvent::Final { text, start, end, confidence } => {
                let text = text.trim().to_string();
                if text.is_empty() {
                    return;
                }
                info!(%text, speaker = speaker.name(), "participant said");
                self.emit(CallEvent::TranscriptFinal {
                    text: text.clone(),
                    confidence,
                    start_ms: (start * 1000.0) as u64,
                    end_ms: (end * 1000.0) as u64,
                    speaker: speaker.name(),
                });
                if speaker == Speaker::Supervisor {
                    self.llm_note(&format!("A supervisor, whom the caller cannot hear, says: {text}"));
                }
            }
            SttEvent::Error(err) => self.provider_error(self.services.stt.name(), &err),
            SttEvent::Closed => {
                if let Some(voice) = self.bridge.as_mut().and_then(|b| b.voices.voices.get_mut(id)) {
                    voice.stt = None;
                }
            }
            SttEvent::Partial { .. } | SttEvent::SpeechStarted { .. } | SttEvent::SpeechEnded { .. } => {}
        }
    }
}
