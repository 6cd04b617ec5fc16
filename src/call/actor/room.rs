//! The call actor's side of people joining the call (see `call/room.rs`): joins, leaves and
//! mode changes, the per-tick fan-out of every leg, what the caller hears while an agent or a
//! barging supervisor is on. What participants say is recognized in `voices.rs`.

use media::codec::g711::{ulaw_decode, ulaw_encode};
use media::mixer::{Gain, MixInput, Mixer};
use media::{SampleRate, StreamResampler};
use tokio::time::Instant;
use tracing::{info, warn};

use super::voices::{Speaker, Voices};
use super::{Actor, FRAME};
use crate::call::event::{CallEvent, EndCause};
use crate::call::leg::{LegFormat, LegOut};
use crate::call::room::{caller_mix, JoinError, Joined, MonitorMode, ParticipantId, Role, Room, SideAudio, TickRole, FRAME_SAMPLES};
use crate::call::state::CallState;
use crate::speech::stt::SttEvent;

/// A browser agent accepted the call; their audio must join in time, or the call goes back to
/// the queue it came from.
pub(super) struct AwaitedAgent {
    /// `None` while the agent's audio is joining.
    pub due: Option<Instant>,
    pub department: String,
    pub within: std::time::Duration,
}

/// A call's room and the audio state that exists only while someone has joined.
pub(super) struct Bridge {
    pub room: Room,
    mixer: Mixer,
    /// Bot audio on a μ-law leg, to 16 kHz for listeners.
    up: Option<StreamResampler>,
    /// Participants' audio to a μ-law caller, to 8 kHz.
    down: Option<StreamResampler>,
    /// Downsampled audio not yet sent (the resampler works in blocks).
    to_caller_8k: std::collections::VecDeque<i16>,
    scratch: Vec<i16>,
    pcm8: Vec<i16>,
    pub voices: Voices,
}

impl Bridge {
    fn new(format: LegFormat) -> Result<Self, String> {
        let (up, down) = match format {
            LegFormat::Mulaw8k => (
                Some(StreamResampler::new(SampleRate::HZ_8000, SampleRate::HZ_16000).map_err(|e| e.to_string())?),
                Some(StreamResampler::new(SampleRate::HZ_16000, SampleRate::HZ_8000).map_err(|e| e.to_string())?),
            ),
            LegFormat::Pcm16k => (None, None),
        };
        Ok(Self {
            room: Room::new(),
            mixer: Mixer::new(FRAME_SAMPLES),
            up,
            down,
            to_caller_8k: std::collections::VecDeque::with_capacity(640),
            scratch: Vec::with_capacity(640),
            pcm8: Vec::with_capacity(160),
            voices: Voices::new(),
        })
    }

    /// Copies a frame the bot sent to the caller into the listeners' tap, at 16 kHz.
    pub(super) fn tap_bot(&mut self, audio: &LegOut) {
        match audio {
            LegOut::Pcm16k(samples) => self.room.bot.push(samples),
            LegOut::Mulaw8k(bytes) => {
                let Some(up) = self.up.as_mut() else { return };
                self.pcm8.clear();
                self.pcm8.extend(bytes.iter().map(|&b| ulaw_decode(b)));
                self.scratch.clear();
                if up.process(&self.pcm8, &mut self.scratch).is_ok() {
                    self.room.bot.push(&self.scratch);
                }
            }
            _ => {}
        }
    }
}

impl Actor {
    pub(super) fn has_agent(&self) -> bool {
        self.bridge.as_ref().is_some_and(|b| b.room.agent().is_some())
    }

    pub(super) fn join(&mut self, role: Role) -> Result<Joined, JoinError> {
        if self.ending.is_some() {
            return Err(JoinError::Ending);
        }
        if self.bridge.is_none() {
            self.bridge = Some(Bridge::new(self.format).map_err(|reason| {
                warn!(%reason, "cannot set up the call's room");
                JoinError::Ending
            })?);
        }
        let bridge = self.bridge.as_mut().expect("set just above");
        let joined = bridge.room.join(role.clone())?;
        let (agent_id, name, mode) = match &role {
            Role::Agent { agent_id } => (Some(agent_id.to_string()), None, None),
            Role::Supervisor { name, mode } => (None, Some(name.clone()), Some(mode.as_str())),
        };
        info!(participant = %joined.id, role = role.name(), ?agent_id, ?mode, "participant joined");
        self.emit(CallEvent::ParticipantJoined {
            participant: joined.id.to_string(),
            role: role.name(),
            agent_id: agent_id.clone(),
            name,
            mode,
        });
        if let Some(agent_id) = agent_id {
            self.agent_takes_call(agent_id, joined.id.clone());
        }
        Ok(joined)
    }

    /// The agent who accepted the call never joined its audio: the call goes back to the
    /// queue, ahead of callers who arrived later, and the agent is set away.
    pub(super) fn agent_no_show(&mut self) {
        let Some(AwaitedAgent { department, .. }) = self.awaited_agent.take() else { return };
        if self.has_agent() {
            return;
        }
        warn!(%department, "the agent accepted the call but never joined; back to the queue");
        self.emit(CallEvent::TransferRequested { target: department.clone(), target_kind: "department" });
        let Some(acd) = &self.services.acd else { return };
        let mut request = crate::center::acd::Enqueue::new(self.info.tenant.clone(), self.info.id.clone(), department.clone());
        request.priority = 1;
        request.reason = Some("the agent who accepted never joined".into());
        request.release_agent_as = crate::center::AgentStatus::Away;
        if let Err(err) = acd.enqueue_now(request) {
            warn!(%err, "cannot queue the call again");
            self.emit(CallEvent::TransferFailed { target: department, reason: err.to_string() });
        }
    }

    /// From now on the caller talks to the agent: the bot stops talking and listening, the
    /// queue's hold ends, and the agent's voice is recognized.
    fn agent_takes_call(&mut self, agent_id: String, participant: ParticipantId) {
        if let Some(awaited) = self.awaited_agent.as_mut() {
            awaited.due = None;
        }
        self.stop_speaking();
        self.actions.clear();
        self.listen_deadline = None;
        self.set_hold(false);
        self.state = CallState::WithAgent { agent_id };
        self.add_voice(participant, Speaker::Agent);
    }

    /// The state of a call nobody is speaking on: with its agent, or listening for the caller.
    pub(super) fn idle_state(&self) -> CallState {
        match self.agent_id() {
            Some(agent_id) => CallState::WithAgent { agent_id },
            None => CallState::Listening,
        }
    }

    /// The agent's id while an agent has the call.
    pub(super) fn agent_id(&self) -> Option<String> {
        match &self.bridge.as_ref()?.room.agent()?.role {
            Role::Agent { agent_id } => Some(agent_id.to_string()),
            Role::Supervisor { .. } => None,
        }
    }

    /// A participant's session ended. An agent hanging up a call that is still theirs ends it;
    /// one whose audio never got through or whose connection went leaves the caller on hold,
    /// to join again within the offer timeout (or the call queues again, see `agent_no_show`).
    pub(super) fn leave(&mut self, id: &ParticipantId, reason: &str, hang_up: bool) {
        let agent = self.bridge.as_ref().and_then(|b| b.room.agent()).is_some_and(|p| &p.id == id);
        self.remove_participant(id, reason, hang_up);
        if agent && !hang_up && self.ending.is_none() {
            self.set_hold(true);
            // The clock starts again: join in time or the call is queued again.
            if let Some(awaited) = self.awaited_agent.as_mut() {
                awaited.due = Some(Instant::now() + awaited.within);
            }
        }
    }

    fn remove_participant(&mut self, id: &ParticipantId, reason: &str, agent_hangs_up: bool) {
        let Some(bridge) = self.bridge.as_mut() else { return };
        let Some(p) = bridge.room.leave(id) else { return };
        let was_agent = matches!(p.role, Role::Agent { .. });
        bridge.voices.remove(id);
        let empty = bridge.room.participants.is_empty();
        info!(participant = %id, role = p.role.name(), reason, "participant left");
        self.emit(CallEvent::ParticipantLeft { participant: id.to_string(), role: p.role.name(), reason: reason.to_string() });
        if empty {
            self.bridge = None;
        }
        if was_agent && agent_hangs_up && !matches!(self.state, CallState::Transferring { .. }) {
            // The agent hung up: so does the call, as with any two-party call.
            self.hangup_via_rest();
            self.end(EndCause::AgentHangup);
        }
    }

    /// The agent's call goes elsewhere (a transfer onward): the agent is put out of it.
    pub(super) fn release_agent(&mut self, reason: &str) {
        self.awaited_agent = None;
        let Some(id) = self.bridge.as_ref().and_then(|b| b.room.agent()).map(|p| p.id.clone()) else { return };
        self.state = CallState::Listening;
        self.remove_participant(&id, reason, false);
    }

    pub(super) fn set_mode(&mut self, id: &ParticipantId, mode: MonitorMode) -> bool {
        let Some(old) = self.bridge.as_mut().and_then(|b| b.room.set_mode(id, mode)) else { return false };
        if old != mode {
            info!(participant = %id, from = old.as_str(), to = mode.as_str(), "monitor mode changed");
            self.emit(CallEvent::MonitorMode { participant: id.to_string(), from: old.as_str(), to: mode.as_str() });
        }
        true
    }

    pub(super) fn on_side_audio(&mut self, audio: SideAudio) {
        if let Some(bridge) = self.bridge.as_mut() {
            bridge.room.on_side_audio(audio);
        }
    }

    /// Every 20 ms: the caller's audio goes out (live when participants are heard, paced ahead
    /// otherwise), then this tick's frames of every leg go to the participants.
    pub(super) fn on_tick(&mut self) {
        let live = self.bridge.as_ref().is_some_and(|b| b.room.caller_hears_participants());
        if !live {
            self.pace();
            if self.bridge.is_some() {
                self.fan_out(self.hold.is_some());
            }
            return;
        }
        self.refill_hold_music();
        let now = Instant::now();
        let bot = self.outbound.next_frame(now.into_std());
        let on_hold = self.hold.is_some();
        let (bot_audio, marks) = match bot {
            Some(f) => (Some(f.audio), f.marks_after),
            None => (None, Vec::new()),
        };
        if let (Some(audio), Some(bridge)) = (&bot_audio, self.bridge.as_mut()) {
            // Hold audio is the caller's alone.
            if !on_hold {
                bridge.tap_bot(audio);
            }
        }
        let Some(frames) = self.fan_out(on_hold) else { return };
        let Some(bridge) = self.bridge.as_mut() else { return };
        let mut extra = [0i16; FRAME_SAMPLES];
        let heard = caller_mix(&frames, &mut bridge.mixer, &mut extra);
        let out = match self.format {
            LegFormat::Pcm16k => {
                let bot = match &bot_audio {
                    Some(LegOut::Pcm16k(s)) => s.as_slice(),
                    _ => &[][..],
                };
                let mut mixed = vec![0i16; FRAME_SAMPLES];
                let unity = Gain::linear(1.0);
                let extra_in: &[i16] = if heard { &extra } else { &[] };
                bridge.mixer.mix(&[MixInput::new(bot, unity), MixInput::new(extra_in, unity)], &mut mixed);
                LegOut::Pcm16k(mixed)
            }
            LegFormat::Mulaw8k => {
                if let Some(down) = bridge.down.as_mut() {
                    bridge.scratch.clear();
                    let source: &[i16] = if heard { &extra } else { &[0; FRAME_SAMPLES] };
                    if down.process(source, &mut bridge.scratch).is_ok() {
                        bridge.to_caller_8k.extend(bridge.scratch.iter().copied());
                    }
                }
                let mut pcm8 = [0i32; FRAME_SAMPLES / 2];
                for (o, s) in pcm8.iter_mut().zip(bridge.to_caller_8k.drain(..(FRAME_SAMPLES / 2).min(bridge.to_caller_8k.len()))) {
                    *o = i32::from(s);
                }
                if let Some(LegOut::Mulaw8k(bytes)) = &bot_audio {
                    for (o, &b) in pcm8.iter_mut().zip(bytes) {
                        *o += i32::from(ulaw_decode(b));
                    }
                }
                LegOut::Mulaw8k(pcm8.iter().map(|&s| ulaw_encode(s.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16)).collect())
            }
        };
        self.send_leg(out);
        for mark in marks {
            self.send_leg(LegOut::Mark(mark));
        }
        self.frames_out += 1;
        self.sent_until = now + FRAME;
        metrics::counter!("switchboard_frames_out_total").increment(1);
    }

    /// Publishes this tick's frames and passes the voices to recognize: the agent's, and a
    /// whisper while no agent is on the call (it is meant for the bot).
    fn fan_out(&mut self, on_hold: bool) -> Option<std::sync::Arc<crate::call::room::TickFrames>> {
        let bridge = self.bridge.as_mut()?;
        let frames = bridge.room.tick(on_hold);
        let has_agent = bridge.room.agent().is_some();
        for other in &frames.others {
            let speaker = match other.role {
                TickRole::Agent => Speaker::Agent,
                TickRole::Supervisor(MonitorMode::Whisper) if !has_agent => Speaker::Supervisor,
                TickRole::Supervisor(_) => continue,
            };
            if !self.bridge.as_ref().is_some_and(|b| b.voices.contains(&other.id)) {
                self.add_voice(other.id.clone(), speaker);
            }
            self.on_voice_audio(&other.id, other.samples.clone());
        }
        Some(frames)
    }

    /// The call is ending: everyone is put out.
    pub(super) fn close_room(&mut self) {
        let Some(mut bridge) = self.bridge.take() else { return };
        bridge.voices.close();
        for p in bridge.room.close() {
            self.emit(CallEvent::ParticipantLeft { participant: p.id.to_string(), role: p.role.name(), reason: "call_ended".into() });
        }
    }
}

/// What a call's room has for the actor.
pub(super) enum BridgeInput {
    Side(SideAudio),
    Stt(ParticipantId, SttEvent),
}

pub(super) async fn recv(bridge: &mut Option<Bridge>) -> Option<BridgeInput> {
    let Some(b) = bridge.as_mut() else { return std::future::pending().await };
    let Bridge { room, voices, .. } = b;
    tokio::select! {
        audio = room.side_rx.recv() => audio.map(BridgeInput::Side),
        Some((id, ev)) = voices.events_rx.recv() => Some(BridgeInput::Stt(id, ev)),
    }
}
