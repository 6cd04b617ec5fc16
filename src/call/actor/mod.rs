//! The call actor: one task per call owning all its state. It reacts to the transport, the
//! speech streams, its own timers and commands, and never awaits I/O in its loop: provider
//! connections and REST calls are spawned and come back as [`Internal`] messages, and every
//! send to another task is a `try_send`.

use std::collections::VecDeque;
use std::time::Duration;

use media::SampleRate;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::audio::{InboundAudio, OutboundAudio, VadEvent};
use super::command::CallCommand;
use super::event::{CallEvent, EndCause};
use super::hold::HoldMusic;
use super::leg::{LegFormat, LegIn, LegOut};
use super::playout::{Finished, Playout, UtteranceId};
use super::state::CallState;
use super::{CallInfo, CallServices, CallSnapshot, DialogSetup, LegChannels};
use crate::dialog::{Action, DialogInput};
use crate::speech::stt::{SttAudioFormat, SttContext, SttEvent, SttInput, SttStream};
use crate::speech::tts::{TtsEvent, TtsInput, TtsStream};
use crate::speech::SpeechError;
use crate::store::now_ms;
use crate::store::writer::WriteOp;
use crate::store::{CallEventRecord, NewCall};

mod actions;
mod llm;
mod room;
mod speech;
mod voices;

const FRAME: Duration = Duration::from_millis(20);
/// Marks go out at least this often within a long chunk, so "heard" is known to this precision.
const MARK_EVERY_MS: u32 = 200;
/// Caller audio kept while the STT stream is still connecting (at 20 ms a frame).
const STT_PENDING_FRAMES: usize = 250;

/// Results of work the actor spawned.
enum Internal {
    SttOpened(Result<SttStream, SpeechError>),
    TtsOpened(UtteranceId, Result<TtsStream, SpeechError>),
    WavLoaded(UtteranceId, Result<(Vec<i16>, SampleRate), String>),
    TransferDone(String, Result<(), String>),
    VoiceSttOpened(crate::call::room::ParticipantId, Result<SttStream, SpeechError>),
}

struct ActiveTts {
    id: UtteranceId,
    stream: Option<TtsStream>,
    /// Input given before the provider's stream was open; sent once it is.
    pending: Vec<TtsInput>,
    since_mark: u64,
    first_audio_at: Option<Instant>,
}

/// Runs a call to its end. Call this inside the task that owns the call.
pub async fn run_call(
    info: CallInfo,
    dialog: DialogSetup,
    leg: LegChannels,
    commands: mpsc::Receiver<CallCommand>,
    services: CallServices,
    shutdown: CancellationToken,
) {
    // The transport has already entered the call's span (`call_id`, `transport`).
    let mut actor = match Actor::new(info, dialog, leg, commands, services, shutdown) {
        Ok(a) => a,
        Err(reason) => {
            tracing::error!(%reason, "cannot set up call media");
            return;
        }
    };
    actor.run().await;
}

struct Actor {
    info: CallInfo,
    services: CallServices,
    dialog: DialogSetup,
    leg_in: mpsc::Receiver<LegIn>,
    leg_out: mpsc::Sender<LegOut>,
    format: LegFormat,
    commands: mpsc::Receiver<CallCommand>,
    shutdown: CancellationToken,
    internal_tx: mpsc::Sender<Internal>,
    internal_rx: mpsc::Receiver<Internal>,

    state: CallState,
    started: Instant,
    started_ms: i64,
    seq: i64,
    muted: bool,
    frames_in: u64,
    frames_out: u64,
    last_media: Instant,

    inbound: InboundAudio,
    outbound: OutboundAudio,
    pcm16: Vec<i16>,
    vad_events: Vec<VadEvent>,
    /// When caller speech began while the bot was talking (ms on the caller clock).
    speech_over_bot_since: Option<u64>,

    stt: Option<SttStream>,
    stt_pending: VecDeque<SttInput>,
    stt_failed: bool,

    playout: Playout,
    tts: Option<ActiveTts>,
    /// Texts waiting for the current utterance to finish synthesizing.
    actions: VecDeque<Action>,
    /// When the far end will have played everything sent so far.
    sent_until: Instant,
    listen_deadline: Option<Instant>,
    /// A browser agent accepted the call and their audio is awaited.
    awaited_agent: Option<room::AwaitedAgent>,
    /// Playing while the caller is on hold.
    hold: Option<HoldMusic>,
    /// Set once the dialog hands the call to an LLM.
    llm: Option<llm::LlmMode>,
    /// An external bot drives the call (the app WebSocket); the dialog stays silent.
    external: bool,
    /// When the current utterance's first audio arrived from TTS, until its first frame goes
    /// out (the `tts_to_first_frame` stage latency).
    first_frame_due: Option<Instant>,
    /// Agents and supervisors in the call, once someone has joined.
    bridge: Option<room::Bridge>,
    ending: Option<EndCause>,
}

impl Actor {
    fn new(
        info: CallInfo,
        dialog: DialogSetup,
        leg: LegChannels,
        commands: mpsc::Receiver<CallCommand>,
        services: CallServices,
        shutdown: CancellationToken,
    ) -> Result<Self, String> {
        let inbound = InboundAudio::new(&services.config.vad).map_err(|e| e.to_string())?;
        let outbound = OutboundAudio::new(leg.format).map_err(|e| e.to_string())?;
        let (internal_tx, internal_rx) = mpsc::channel(16);
        let now = Instant::now();
        Ok(Self {
            info,
            services,
            dialog,
            leg_in: leg.input,
            leg_out: leg.output,
            format: leg.format,
            commands,
            shutdown,
            internal_tx,
            internal_rx,
            state: CallState::Connecting,
            started: now,
            started_ms: now_ms(),
            seq: 0,
            muted: false,
            frames_in: 0,
            frames_out: 0,
            last_media: now,
            inbound,
            outbound,
            pcm16: Vec::with_capacity(640),
            vad_events: Vec::with_capacity(4),
            speech_over_bot_since: None,
            stt: None,
            stt_pending: VecDeque::new(),
            stt_failed: false,
            playout: Playout::new(),
            tts: None,
            actions: VecDeque::new(),
            sent_until: now,
            listen_deadline: None,
            awaited_agent: None,
            hold: None,
            llm: None,
            external: false,
            first_frame_due: None,
            bridge: None,
            ending: None,
        })
    }

    async fn run(&mut self) {
        self.begin();
        let mut tick = tokio::time::interval(FRAME);
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let limits = self.services.config.clone();
        let max_end = self.started + limits.max_duration;
        while self.ending.is_none() {
            let listen = self.listen_deadline;
            let agent_due = self.awaited_agent.as_ref().and_then(|a| a.due);
            let idle_at = self.last_media + limits.idle_timeout;
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => self.end(EndCause::Shutdown),
                msg = self.leg_in.recv() => match msg {
                    Some(msg) => self.on_leg(msg),
                    None => self.end_by_transport(),
                },
                _ = tick.tick() => self.on_tick(),
                Some(cmd) = self.commands.recv() => self.on_command(cmd),
                Some(ev) = recv_stt(&mut self.stt) => self.on_stt(ev),
                Some(ev) = recv_tts(&mut self.tts) => self.on_tts(ev),
                Some(out) = llm::recv(&mut self.llm) => self.on_llm(out),
                Some(msg) = self.internal_rx.recv() => self.on_internal(msg),
                Some(input) = room::recv(&mut self.bridge) => match input {
                    room::BridgeInput::Side(audio) => self.on_side_audio(audio),
                    room::BridgeInput::Stt(id, ev) => self.on_voice_stt(&id, ev),
                },
                () = sleep_until_opt(listen) => {
                    self.listen_deadline = None;
                    self.dialog_input(DialogInput::NoInput);
                }
                () = sleep_until_opt(agent_due) => self.agent_no_show(),
                () = tokio::time::sleep_until(idle_at) => self.end(EndCause::IdleTimeout),
                () = tokio::time::sleep_until(max_end) => self.end(EndCause::MaxDuration),
            }
        }
        self.finish();
    }

    fn begin(&mut self) {
        info!(from = ?self.info.from, to = ?self.info.to, flow = ?self.dialog.flow, "call started");
        self.services
            .writer
            .submit(WriteOp::CallStarted(NewCall {
                id: self.info.id.clone(),
                tenant_id: self.info.tenant.clone(),
                transport: self.info.transport.to_string(),
                external_id: self.info.external_id.clone(),
                direction: "inbound".into(),
                from_number: self.info.from.clone(),
                to_number: self.info.to.clone(),
                flow: self.dialog.flow.clone(),
                started_at: self.started_ms,
            }))
            .ok();
        self.emit(CallEvent::Started {
            transport: self.info.transport,
            from: self.info.from.clone(),
            to: self.info.to.clone(),
            flow: self.dialog.flow.clone(),
            params: self.info.params.clone(),
        });
        self.state = CallState::Listening;
        self.open_stt();
        self.dialog_input(DialogInput::Started {
            from: self.info.from.clone(),
            to: self.info.to.clone(),
            params: self.info.params.clone(),
        });
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn emit(&mut self, event: CallEvent) {
        self.seq += 1;
        debug!(kind = event.kind(), "event");
        let data = event.to_value();
        let record = CallEventRecord {
            tenant_id: self.info.tenant.clone(),
            call_id: self.info.id.clone(),
            seq: self.seq,
            kind: event.kind().to_string(),
            at: now_ms(),
            data: data.to_string(),
        };
        self.services.events.publish(&self.info.tenant, format!("call.{}", event.kind()), Some(&self.info.id), None, data);
        // A full queue is counted and logged by the writer handle; audio goes on.
        let _ = self.services.writer.submit(WriteOp::Event(record));
    }

    /// An event from outside (see [`CallCommand::Note`]), numbered in the call's sequence.
    fn emit_note(&mut self, kind: &'static str, mut data: serde_json::Value) {
        self.seq += 1;
        if let Some(obj) = data.as_object_mut() {
            obj.insert("kind".into(), kind.into());
        }
        let record = CallEventRecord {
            tenant_id: self.info.tenant.clone(),
            call_id: self.info.id.clone(),
            seq: self.seq,
            kind: kind.to_string(),
            at: now_ms(),
            data: data.to_string(),
        };
        self.services.events.publish(&self.info.tenant, format!("call.{kind}"), Some(&self.info.id), None, data);
        let _ = self.services.writer.submit(WriteOp::Event(record));
    }

    fn send_leg(&mut self, out: LegOut) {
        match self.leg_out.try_send(out) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                warn!("transport is not draining our audio; ending the call");
                self.end(EndCause::SlowConsumer);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.end_by_transport(),
        }
    }

    // ---- transport input -------------------------------------------------------------

    fn on_leg(&mut self, msg: LegIn) {
        match msg {
            LegIn::Mulaw8k(bytes) => self.on_audio(CallerAudio::Mulaw8k(bytes)),
            LegIn::Pcm16k(samples) => self.on_audio(CallerAudio::Pcm16k(samples)),
            LegIn::Dtmf(digit) => {
                info!(%digit, "dtmf");
                self.emit(CallEvent::Dtmf { digit });
                // A key press answers the prompt: it interrupts the bot like speech does.
                if self.dialog.barge_in.enabled && self.playout.is_speaking() {
                    self.barge_in(self.inbound.position_ms());
                }
                self.listen_deadline = None;
                self.dialog_input(DialogInput::Dtmf { digit });
            }
            LegIn::Mark(name) => self.on_mark(&name),
            LegIn::Stop => self.end_by_transport(),
            LegIn::Disconnected => match self.state {
                CallState::Transferring { .. } => self.end(EndCause::Transferred),
                _ => self.end(EndCause::TransportClosed),
            },
            LegIn::Warning(reason) => {
                warn!(%reason, "protocol warning");
                self.emit(CallEvent::ProtocolWarning { reason });
            }
            LegIn::Failed(reason) => {
                warn!(%reason, "transport failed");
                self.emit(CallEvent::ProtocolWarning { reason });
                self.end(EndCause::ProtocolError);
            }
        }
    }

    fn on_audio(&mut self, audio: CallerAudio) {
        let received = std::time::Instant::now();
        self.frames_in += 1;
        self.last_media = Instant::now();
        metrics::counter!("switchboard_frames_in_total").increment(1);
        let at_samples = self.inbound.position_samples_8k();
        self.pcm16.clear();
        self.vad_events.clear();
        let processed = match &audio {
            CallerAudio::Mulaw8k(bytes) => self.inbound.push_mulaw(bytes, &mut self.pcm16, &mut self.vad_events),
            CallerAudio::Pcm16k(samples) => self.inbound.push_pcm16(samples, &mut self.vad_events),
        };
        if let Err(err) = processed {
            warn!(%err, "inbound audio processing failed");
            return;
        }
        if let Some(bridge) = self.bridge.as_mut() {
            match &audio {
                CallerAudio::Mulaw8k(_) => bridge.room.caller.push(&self.pcm16),
                CallerAudio::Pcm16k(samples) => bridge.room.caller.push(samples),
            }
        }
        if !self.muted && self.hold.is_none() {
            let wants_mulaw = self.stt.as_ref().map(|s| s.format) == Some(SttAudioFormat::Mulaw8k);
            let input = match audio {
                CallerAudio::Mulaw8k(bytes) if wants_mulaw => Some(SttInput::Mulaw8k { at_samples, bytes }),
                CallerAudio::Pcm16k(samples) => Some(SttInput::Linear16k { at_samples: at_samples * 2, samples }),
                CallerAudio::Mulaw8k(_) if !self.pcm16.is_empty() => {
                    Some(SttInput::Linear16k { at_samples: at_samples * 2, samples: self.pcm16.clone() })
                }
                CallerAudio::Mulaw8k(_) => None,
            };
            if let Some(input) = input {
                self.to_stt(input);
            }
        }
        metrics::histogram!("switchboard_stage_latency_seconds", "stage" => "inbound_to_stt")
            .record(received.elapsed().as_secs_f64());
        let events = std::mem::take(&mut self.vad_events);
        for ev in &events {
            self.on_vad(*ev);
        }
        self.vad_events = events;
        self.check_barge_in();
    }

    fn on_vad(&mut self, ev: VadEvent) {
        match ev {
            VadEvent::Started { at_ms } => {
                self.emit(CallEvent::SpeechStarted { at_ms });
                self.listen_deadline = None;
                if self.playout.is_speaking() {
                    self.speech_over_bot_since = Some(at_ms);
                }
            }
            VadEvent::Ended { at_ms, duration_ms } => {
                self.emit(CallEvent::SpeechEnded { at_ms, duration_ms });
                self.speech_over_bot_since = None;
                if !self.muted {
                    self.to_stt(SttInput::Finalize);
                }
            }
        }
    }

    fn check_barge_in(&mut self) {
        let Some(since) = self.speech_over_bot_since else { return };
        if self.hold.is_some() {
            return;
        }
        let policy = self.dialog.barge_in;
        if !policy.enabled || !self.playout.is_speaking() || !self.inbound.is_speaking() {
            return;
        }
        let now_ms = self.inbound.position_ms();
        if now_ms.saturating_sub(since) + self.services.config.vad.start.as_millis() as u64
            >= policy.min_speech.as_millis() as u64
        {
            self.speech_over_bot_since = None;
            self.barge_in(now_ms);
        }
    }

    /// Stops the bot at once: clears the far end's buffer and ours, cancels synthesis and
    /// what was still to be said, and records what was heard. Returns the heard text.
    pub(super) fn stop_speaking(&mut self) -> String {
        self.send_leg(LegOut::Clear);
        let dropped_marks = self.outbound.clear();
        debug!(dropped = dropped_marks.len(), "dropped queued audio");
        if let Some(mut tts) = self.tts.take() {
            if let Some(stream) = tts.stream.take() {
                let _ = stream.input.try_send(TtsInput::Cancel);
            }
        }
        // What was still to be said is void; transfers and hang-ups stay.
        self.actions.retain(|a| !matches!(a, Action::Say { .. } | Action::Listen { .. } | Action::Play { .. }));
        self.sent_until = Instant::now();
        let cut = self.playout.cut_all();
        let heard = cut.iter().map(|f| f.heard.as_str()).collect::<Vec<_>>().join(" ");
        for f in cut {
            self.record_utterance(f);
        }
        if self.hold.is_none() {
            self.state = self.idle_state();
        }
        heard
    }

    /// The caller talks over the bot: in this same tick, clear the far end's buffer, drop our
    /// queued audio, cancel synthesis, and record what was heard.
    fn barge_in(&mut self, at_ms: u64) {
        let utterance = self.playout.current().unwrap_or_default();
        info!(utterance, at_ms, "barge-in");
        self.emit(CallEvent::BargeIn { utterance, at_ms });
        let heard = self.stop_speaking();
        self.dialog_input(DialogInput::Interrupted { heard });
    }

    fn on_mark(&mut self, name: &str) {
        let Some(echo) = self.playout.on_echo(name) else {
            debug!(name, "mark not ours");
            return;
        };
        self.emit(CallEvent::Mark { name: name.to_string(), played: echo.played });
        if let Some(finished) = echo.finished {
            self.record_utterance(finished);
            if !self.playout.is_speaking() && self.tts.is_none() {
                self.state = self.idle_state();
                self.dialog_input(DialogInput::SpeechFinished);
            }
            self.pump_actions();
        }
    }

    fn record_utterance(&mut self, f: Finished) {
        self.emit(CallEvent::BotUtterance {
            utterance: f.id,
            text: f.text,
            heard: f.heard,
            cut: f.cut,
            played_ms: f.played_samples * 1000 / u64::from(self.outbound.rate().hz()),
        });
    }

    fn end_by_transport(&mut self) {
        let cause = match self.state {
            // A transfer redirects the call, which stops the stream: that is not a hang-up.
            CallState::Transferring { .. } => EndCause::Transferred,
            _ => EndCause::CallerHangup,
        };
        self.end(cause);
    }

    // ---- speech to text --------------------------------------------------------------

    fn open_stt(&mut self) {
        let ctx = SttContext {
            call_id: self.info.id.to_string(),
            language: None,
            phrases: self.dialog.phrases.clone(),
            native_format: Some(match self.format {
                LegFormat::Mulaw8k => SttAudioFormat::Mulaw8k,
                LegFormat::Pcm16k => SttAudioFormat::Linear16k,
            }),
        };
        let provider = self.services.stt.clone();
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let result = provider.open(ctx).await;
            let _ = tx.send(Internal::SttOpened(result)).await;
        });
    }

    fn to_stt(&mut self, input: SttInput) {
        let Some(stt) = &self.stt else {
            if !self.stt_failed {
                if self.stt_pending.len() >= STT_PENDING_FRAMES {
                    self.stt_pending.pop_front();
                }
                self.stt_pending.push_back(input);
            }
            return;
        };
        if stt.input.try_send(input).is_err() {
            // Recognition is behind; dropping audio here keeps the call's timing intact.
            metrics::counter!("switchboard_stt_dropped_total").increment(1);
        }
    }

    fn on_stt(&mut self, ev: SttEvent) {
        match ev {
            SttEvent::Partial { text } => self.emit(CallEvent::TranscriptPartial { text }),
            SttEvent::Final { text, start, end, confidence } => {
                let text = text.trim().to_string();
                info!(%text, confidence, "caller said");
                self.emit(CallEvent::TranscriptFinal {
                    text: text.clone(),
                    confidence,
                    start_ms: (start * 1000.0) as u64,
                    end_ms: (end * 1000.0) as u64,
                    speaker: "caller",
                });
                if !text.is_empty() {
                    self.listen_deadline = None;
                    self.dialog_input(DialogInput::Transcript { text, confidence });
                }
            }
            SttEvent::SpeechStarted { .. } | SttEvent::SpeechEnded { .. } => {}
            SttEvent::Error(err) => self.provider_error(self.services.stt.name(), &err),
            SttEvent::Closed => {
                debug!("stt stream closed");
                self.stt = None;
            }
        }
    }

    fn provider_error(&mut self, provider: &str, err: &SpeechError) {
        warn!(provider, %err, "speech provider error");
        metrics::counter!("switchboard_provider_errors_total", "provider" => provider.to_string()).increment(1);
        self.emit(CallEvent::ProviderError { provider: provider.to_string(), reason: err.to_string() });
    }

    fn on_internal(&mut self, msg: Internal) {
        match msg {
            Internal::SttOpened(Ok(stream)) => {
                debug!(format = ?stream.format, "stt stream open");
                let format = stream.format;
                self.stt = Some(stream);
                for input in std::mem::take(&mut self.stt_pending) {
                    // Pending audio was captured before the format was known; keep what fits.
                    let fits = matches!(
                        (&input, format),
                        (SttInput::Mulaw8k { .. }, SttAudioFormat::Mulaw8k)
                            | (SttInput::Linear16k { .. }, SttAudioFormat::Linear16k)
                            | (SttInput::Finalize | SttInput::Close, _)
                    );
                    if fits {
                        self.to_stt(input);
                    }
                }
            }
            Internal::SttOpened(Err(err)) => {
                self.stt_failed = true;
                self.stt_pending.clear();
                self.provider_error(self.services.stt.name(), &err);
            }
            Internal::TtsOpened(id, result) => match (self.tts.as_mut(), result) {
                (Some(tts), Ok(stream)) if tts.id == id => {
                    for input in tts.pending.drain(..) {
                        if stream.input.try_send(input).is_err() {
                            warn!("TTS input queue full; text dropped");
                        }
                    }
                    tts.stream = Some(stream);
                }
                (_, Ok(stream)) => {
                    // Cancelled while connecting (barge-in): release the provider at once.
                    let _ = stream.input.try_send(TtsInput::Cancel);
                }
                (current, Err(err)) => {
                    let is_current = current.is_some_and(|t| t.id == id);
                    self.provider_error(self.services.tts.name(), &err);
                    if is_current {
                        self.tts = None;
                        self.playout.complete(id);
                        if let Some(f) = self.playout.finish_empty(id) {
                            self.record_utterance(f);
                            self.after_speech();
                        }
                        self.pump_actions();
                    }
                }
            },
            Internal::WavLoaded(id, result) => {
                if self.tts.as_ref().is_none_or(|t| t.id != id) {
                    return;
                }
                match result {
                    Ok((samples, rate)) => {
                        let queued = self.outbound.push_pcm(&samples, rate).unwrap_or(0) + self.outbound.flush_tail();
                        self.utterance_audio(id, queued, true);
                    }
                    Err(reason) => warn!(%reason, "cannot play file"),
                }
                self.playout.complete(id);
                self.tts = None;
                if let Some(f) = self.playout.finish_empty(id) {
                    self.record_utterance(f);
                    self.after_speech();
                }
                self.pump_actions();
            }
            Internal::VoiceSttOpened(id, Ok(stream)) => self.voice_stt_opened(&id, stream),
            Internal::VoiceSttOpened(_, Err(err)) => self.provider_error(self.services.stt.name(), &err),
            Internal::TransferDone(target, Ok(())) => info!(%target, "transfer accepted by Twilio"),
            Internal::TransferDone(target, Err(reason)) => {
                warn!(%target, %reason, "transfer failed");
                self.emit(CallEvent::TransferFailed { target, reason });
                self.state = self.idle_state();
            }
        }
    }

    fn on_command(&mut self, cmd: CallCommand) {
        match cmd {
            CallCommand::Act(action) => {
                self.actions.push_back(action);
                self.pump_actions();
            }
            CallCommand::Mute(on) => {
                self.muted = on;
                self.emit(CallEvent::Mute { on });
            }
            CallCommand::Hold(on) => self.set_hold(on),
            CallCommand::Clear => {
                self.stop_speaking();
            }
            CallCommand::External(on) => {
                if on != self.external {
                    self.external = on;
                    self.listen_deadline = None;
                    self.emit(CallEvent::DriverChanged { driver: if on { "app" } else { "flow" } });
                }
            }
            CallCommand::Snapshot(reply) => {
                let _ = reply.send(CallSnapshot {
                    id: self.info.id.clone(),
                    state: self.state.name(),
                    transport: self.info.transport,
                    duration_ms: self.elapsed_ms(),
                    frames_in: self.frames_in,
                    frames_out: self.frames_out,
                    muted: self.muted,
                    on_hold: self.hold.is_some(),
                    agent_id: self.agent_id(),
                    participants: self.bridge.as_ref().map_or(0, |b| b.room.participants.len()),
                });
            }
            CallCommand::Join { role, reply } => {
                let result = self.join(role);
                let _ = reply.send(result);
            }
            CallCommand::Leave { id, reason, hang_up } => self.leave(&id, &reason, hang_up),
            CallCommand::SetMode { id, mode, reply } => {
                let found = self.set_mode(&id, mode);
                let _ = reply.send(found);
            }
            CallCommand::Note { kind, data } => self.emit_note(kind, data),
            CallCommand::ReleaseAgent => self.release_agent("transferred"),
            CallCommand::AwaitAgent { department, within } => {
                self.awaited_agent = Some(room::AwaitedAgent { due: Some(Instant::now() + within), department, within });
            }
        }
    }

    // ---- the end ---------------------------------------------------------------------

    fn end(&mut self, cause: EndCause) {
        if self.ending.is_none() {
            self.ending = Some(cause);
        }
    }

    fn finish(&mut self) {
        let cause = self.ending.unwrap_or(EndCause::TransportClosed);
        self.close_room();
        let cut = self.playout.cut_all();
        for f in cut {
            self.record_utterance(f);
        }
        if let Some(stt) = self.stt.take() {
            let _ = stt.input.try_send(SttInput::Close);
        }
        if let Some(mut tts) = self.tts.take() {
            if let Some(stream) = tts.stream.take() {
                let _ = stream.input.try_send(TtsInput::Cancel);
            }
        }
        let duration_ms = self.elapsed_ms();
        self.state = CallState::Ended { cause };
        self.emit(CallEvent::Ended { cause, duration_ms });
        if let Some(acd) = &self.services.acd {
            // Leaves any queue (abandoned) and frees the agent; never waits.
            let _ = acd.call_ended(self.info.tenant.clone(), self.info.id.clone());
        }
        let _ = self.services.writer.submit(WriteOp::CallEnded {
            call_id: self.info.id.clone(),
            cause: cause.as_str().to_string(),
            ended_at: self.started_ms + duration_ms as i64,
        });
        let _ = self.leg_out.try_send(LegOut::Close { reason: cause.as_str().to_string() });
        info!(cause = cause.as_str(), duration_ms, frames_in = self.frames_in, frames_out = self.frames_out, "call ended");
    }
}


/// Caller audio as the transport delivered it.
enum CallerAudio {
    Mulaw8k(Vec<u8>),
    Pcm16k(Vec<i16>),
}

async fn recv_stt(stt: &mut Option<SttStream>) -> Option<SttEvent> {
    match stt {
        Some(s) => s.events.recv().await.or(Some(SttEvent::Closed)),
        None => std::future::pending().await,
    }
}

async fn recv_tts(tts: &mut Option<ActiveTts>) -> Option<TtsEvent> {
    match tts.as_mut().and_then(|t| t.stream.as_mut()) {
        Some(s) => match s.events.recv().await {
            Some(ev) => Some(ev),
            // The provider went away without `Done`: treat what we have as the whole utterance.
            None => Some(TtsEvent::Done),
        },
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
