//! People who join a call beside the caller and the bot: the agent it was transferred to, and
//! supervisors listening in, whispering to the agent or barging in.
//!
//! The call actor keeps one [`Room`] per call (created on the first join). Every 20 ms tick it
//! takes at most one frame from each leg (caller, bot, agent, each supervisor), publishes them
//! together as one [`TickFrames`] on a broadcast channel, and builds what the caller hears. Each
//! participant's own session mixes what *it* hears from the same tick ([`TickFrames::mix_for`]),
//! so the actor never waits on a participant: the broadcast keeps a fixed number of ticks and a
//! subscriber that falls behind loses the oldest ones, never delaying the call.
//!
//! All audio here is 16 kHz mono, 20 ms (320 samples) a frame.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use media::mixer::{Gain, MixInput, Mixer};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::center::AgentId;

/// 20 ms at 16 kHz.
pub const FRAME_SAMPLES: usize = 320;
/// Ticks a subscriber may fall behind before it loses the oldest (160 ms).
const BROADCAST_TICKS: usize = 8;
/// Frames from a live leg kept for the next ticks; beyond this the oldest go, so a burst after
/// a network stall costs at most this much latency (80 ms).
const LIVE_QUEUE_FRAMES: usize = 4;
/// The bot is sent ahead of real time by the playout lead (200 ms); its copy for listeners
/// must hold that much.
const BOT_QUEUE_FRAMES: usize = 16;
/// Audio from all participants on its way to the actor (each sends 50 frames/s).
const SIDE_QUEUE: usize = 64;
/// Participants besides the caller and the bot. Each costs a mix per tick in its own session
/// and a frame in the actor's tick.
pub const MAX_PARTICIPANTS: usize = 16;

/// A participant's id within its call, e.g. `p3`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ParticipantId(pub String);

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a supervisor's voice reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorMode {
    /// Hears the call; heard by nobody.
    Listen,
    /// Heard by the agent only, never by the caller.
    Whisper,
    /// Heard by everyone.
    Barge,
}

impl MonitorMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Listen => "listen",
            Self::Whisper => "whisper",
            Self::Barge => "barge",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "listen" => Some(Self::Listen),
            "whisper" => Some(Self::Whisper),
            "barge" => Some(Self::Barge),
            _ => None,
        }
    }
}

/// Who joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The agent the call was given to: from now on the caller talks to them, not the bot.
    Agent { agent_id: AgentId },
    Supervisor { name: String, mode: MonitorMode },
}

impl Role {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Agent { .. } => "agent",
            Self::Supervisor { .. } => "supervisor",
        }
    }
}

/// Audio from a participant's browser, 16 kHz PCM of any length.
#[derive(Debug)]
pub struct SideAudio {
    pub from: ParticipantId,
    pub samples: Vec<i16>,
}

/// What a participant's session gets back from the actor when it joins.
#[derive(Debug)]
pub struct Joined {
    pub id: ParticipantId,
    /// Its microphone goes here (`try_send`: a full queue drops the frame).
    pub audio_in: mpsc::Sender<SideAudio>,
    /// Every tick of the call, to mix what it hears from.
    pub ticks: broadcast::Receiver<Arc<TickFrames>>,
    /// Cancelled when the call puts the participant out (the call ended, the agent's call was
    /// transferred onward).
    pub removed: CancellationToken,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoinError {
    #[error("an agent is already on this call")]
    AgentPresent,
    #[error("the call is ending")]
    Ending,
    #[error("at most {0} participants per call")]
    Full(usize),
}

/// One participant's frame in a tick.
#[derive(Debug, Clone)]
pub struct SideFrame {
    pub id: ParticipantId,
    pub role: TickRole,
    pub samples: Vec<i16>,
}

/// A participant's role as it matters for mixing this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickRole {
    Agent,
    Supervisor(MonitorMode),
}

/// Everything said on the call in one 20 ms tick, each leg tagged. A leg with nothing this
/// tick is absent (silence).
#[derive(Debug, Clone, Default)]
pub struct TickFrames {
    pub tick: u64,
    pub caller: Option<Vec<i16>>,
    pub bot: Option<Vec<i16>>,
    pub others: Vec<SideFrame>,
    /// The caller is on hold: the agent neither hears nor is heard by them.
    pub on_hold: bool,
}

impl TickFrames {
    /// Mixes what `listener` hears this tick into `out` (one frame): the caller and the bot,
    /// plus, for the agent, supervisors who whisper or barge; for a supervisor, the agent and
    /// supervisors who barge. Nobody hears themselves.
    pub fn mix_for(&self, listener: &ParticipantId, role: TickRole, mixer: &mut Mixer, out: &mut [i16]) {
        let unity = Gain::linear(1.0);
        let mut inputs: Vec<MixInput<'_>> = Vec::with_capacity(2 + self.others.len());
        let hears_caller = !(self.on_hold && role == TickRole::Agent);
        if let (Some(c), true) = (&self.caller, hears_caller) {
            inputs.push(MixInput::new(c, unity));
        }
        if let Some(b) = &self.bot {
            inputs.push(MixInput::new(b, unity));
        }
        for other in &self.others {
            if &other.id == listener {
                continue;
            }
            let audible = match (role, other.role) {
                (TickRole::Agent, TickRole::Supervisor(mode)) => mode != MonitorMode::Listen,
                (TickRole::Supervisor(_), TickRole::Agent) => true,
                (TickRole::Supervisor(_), TickRole::Supervisor(mode)) => mode == MonitorMode::Barge,
                (TickRole::Agent, TickRole::Agent) => false,
            };
            if audible {
                inputs.push(MixInput::new(&other.samples, unity));
            }
        }
        mixer.mix(&inputs, out);
    }
}

/// Mixes what the caller hears from the participants this tick (the bot's audio is added by
/// the actor): the agent unless on hold, supervisors who barge. `None` when nobody spoke.
pub fn caller_mix(tick: &TickFrames, mixer: &mut Mixer, out: &mut [i16]) -> bool {
    let unity = Gain::linear(1.0);
    let inputs: Vec<MixInput<'_>> = tick
        .others
        .iter()
        .filter(|o| match o.role {
            TickRole::Agent => !tick.on_hold,
            TickRole::Supervisor(mode) => mode == MonitorMode::Barge,
        })
        .map(|o| MixInput::new(&o.samples, unity))
        .collect();
    if inputs.is_empty() {
        return false;
    }
    mixer.mix(&inputs, out);
    true
}

/// Cuts a stream of samples into 20 ms frames and keeps the newest few.
#[derive(Debug)]
pub struct FrameQueue {
    frames: VecDeque<Vec<i16>>,
    partial: Vec<i16>,
    max: usize,
    pub dropped: u64,
}

impl FrameQueue {
    pub fn new(max: usize) -> Self {
        Self { frames: VecDeque::new(), partial: Vec::with_capacity(FRAME_SAMPLES), max, dropped: 0 }
    }

    pub fn push(&mut self, mut samples: &[i16]) {
        while !samples.is_empty() {
            let take = (FRAME_SAMPLES - self.partial.len()).min(samples.len());
            self.partial.extend_from_slice(&samples[..take]);
            samples = &samples[take..];
            if self.partial.len() == FRAME_SAMPLES {
                let frame = std::mem::replace(&mut self.partial, Vec::with_capacity(FRAME_SAMPLES));
                self.frames.push_back(frame);
                if self.frames.len() > self.max {
                    self.frames.pop_front();
                    self.dropped += 1;
                }
            }
        }
    }

    pub fn pop(&mut self) -> Option<Vec<i16>> {
        self.frames.pop_front()
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

/// One participant as the actor keeps it.
pub struct Participant {
    pub id: ParticipantId,
    pub role: Role,
    pub inbox: FrameQueue,
    pub removed: CancellationToken,
}

impl Participant {
    pub fn tick_role(&self) -> TickRole {
        match &self.role {
            Role::Agent { .. } => TickRole::Agent,
            Role::Supervisor { mode, .. } => TickRole::Supervisor(*mode),
        }
    }
}

/// The participants of one call and the taps of its own legs.
pub struct Room {
    pub participants: Vec<Participant>,
    /// The caller's audio since the last tick.
    pub caller: FrameQueue,
    /// The bot's audio as sent to the caller.
    pub bot: FrameQueue,
    ticks: broadcast::Sender<Arc<TickFrames>>,
    side_tx: mpsc::Sender<SideAudio>,
    pub side_rx: mpsc::Receiver<SideAudio>,
    tick: u64,
    next_id: u32,
}

impl Default for Room {
    fn default() -> Self {
        Self::new()
    }
}

impl Room {
    pub fn new() -> Self {
        let (ticks, _) = broadcast::channel(BROADCAST_TICKS);
        let (side_tx, side_rx) = mpsc::channel(SIDE_QUEUE);
        Self {
            participants: Vec::new(),
            caller: FrameQueue::new(LIVE_QUEUE_FRAMES),
            bot: FrameQueue::new(BOT_QUEUE_FRAMES),
            ticks,
            side_tx,
            side_rx,
            tick: 0,
            next_id: 0,
        }
    }

    pub fn agent(&self) -> Option<&Participant> {
        self.participants.iter().find(|p| matches!(p.role, Role::Agent { .. }))
    }

    pub fn join(&mut self, role: Role) -> Result<Joined, JoinError> {
        if matches!(role, Role::Agent { .. }) && self.agent().is_some() {
            return Err(JoinError::AgentPresent);
        }
        if self.participants.len() >= MAX_PARTICIPANTS {
            return Err(JoinError::Full(MAX_PARTICIPANTS));
        }
        self.next_id += 1;
        let id = ParticipantId(format!("p{}", self.next_id));
        let removed = CancellationToken::new();
        self.participants.push(Participant {
            id: id.clone(),
            role,
            inbox: FrameQueue::new(LIVE_QUEUE_FRAMES),
            removed: removed.clone(),
        });
        Ok(Joined { id, audio_in: self.side_tx.clone(), ticks: self.ticks.subscribe(), removed })
    }

    /// Removes a participant; returns it so the actor can report how it left.
    pub fn leave(&mut self, id: &ParticipantId) -> Option<Participant> {
        let i = self.participants.iter().position(|p| &p.id == id)?;
        let p = self.participants.remove(i);
        p.removed.cancel();
        Some(p)
    }

    pub fn set_mode(&mut self, id: &ParticipantId, mode: MonitorMode) -> Option<MonitorMode> {
        let p = self.participants.iter_mut().find(|p| &p.id == id)?;
        match &mut p.role {
            Role::Supervisor { mode: current, .. } => {
                let old = *current;
                *current = mode;
                Some(old)
            }
            Role::Agent { .. } => None,
        }
    }

    pub fn on_side_audio(&mut self, audio: SideAudio) {
        if let Some(p) = self.participants.iter_mut().find(|p| p.id == audio.from) {
            p.inbox.push(&audio.samples);
        }
    }

    /// Does the caller hear anyone besides the bot (so their audio must go out every tick)?
    pub fn caller_hears_participants(&self) -> bool {
        self.participants.iter().any(|p| match &p.role {
            Role::Agent { .. } => true,
            Role::Supervisor { mode, .. } => *mode == MonitorMode::Barge,
        })
    }

    /// Takes this tick's frame from every leg and publishes them. The bot's and caller's taps
    /// are filled by the actor before.
    pub fn tick(&mut self, on_hold: bool) -> Arc<TickFrames> {
        self.tick += 1;
        let others = self
            .participants
            .iter_mut()
            .filter_map(|p| {
                let role = p.tick_role();
                p.inbox.pop().map(|samples| SideFrame { id: p.id.clone(), role, samples })
            })
            .collect();
        let frames = Arc::new(TickFrames {
            tick: self.tick,
            caller: self.caller.pop(),
            bot: self.bot.pop(),
            others,
            on_hold,
        });
        // No receiver is not an error: a participant may be between sessions.
        let _ = self.ticks.send(frames.clone());
        frames
    }

    /// Puts everyone out (the call is ending).
    pub fn close(&mut self) -> Vec<Participant> {
        let all = std::mem::take(&mut self.participants);
        for p in &all {
            p.removed.cancel();
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(value: i16) -> Vec<i16> {
        vec![value; FRAME_SAMPLES]
    }

    fn supervisor(mode: MonitorMode) -> Role {
        Role::Supervisor { name: "sam".into(), mode }
    }

    fn heard(frames: &TickFrames, who: &Joined, role: TickRole) -> i16 {
        let mut mixer = Mixer::new(FRAME_SAMPLES);
        let mut out = vec![0; FRAME_SAMPLES];
        frames.mix_for(&who.id, role, &mut mixer, &mut out);
        out[0]
    }

    /// Each leg speaks a distinct power of two, so every mix shows exactly who is in it.
    fn one_tick(room: &mut Room, agent: &Joined, sup: &Joined, on_hold: bool) -> Arc<TickFrames> {
        room.caller.push(&tone(1));
        room.bot.push(&tone(2));
        room.on_side_audio(SideAudio { from: agent.id.clone(), samples: tone(4) });
        room.on_side_audio(SideAudio { from: sup.id.clone(), samples: tone(8) });
        room.tick(on_hold)
    }

    #[test]
    fn each_listener_hears_what_its_role_allows() {
        let mut room = Room::new();
        let agent = room.join(Role::Agent { agent_id: AgentId("a1".into()) }).unwrap();
        let sup = room.join(supervisor(MonitorMode::Listen)).unwrap();
        let mut mixer = Mixer::new(FRAME_SAMPLES);
        let mut to_caller = vec![0; FRAME_SAMPLES];

        let t = one_tick(&mut room, &agent, &sup, false);
        assert_eq!(heard(&t, &sup, TickRole::Supervisor(MonitorMode::Listen)), 1 + 2 + 4, "listen hears the whole call");
        assert_eq!(heard(&t, &agent, TickRole::Agent), 1 + 2, "nobody hears a listener");
        assert!(caller_mix(&t, &mut mixer, &mut to_caller));
        assert_eq!(to_caller[0], 4, "the caller hears the agent");

        room.set_mode(&sup.id, MonitorMode::Whisper);
        let t = one_tick(&mut room, &agent, &sup, false);
        assert_eq!(heard(&t, &agent, TickRole::Agent), 1 + 2 + 8, "the agent hears a whisper");
        caller_mix(&t, &mut mixer, &mut to_caller);
        assert_eq!(to_caller[0], 4, "the caller never hears a whisper");

        room.set_mode(&sup.id, MonitorMode::Barge);
        let t = one_tick(&mut room, &agent, &sup, false);
        caller_mix(&t, &mut mixer, &mut to_caller);
        assert_eq!(to_caller[0], 4 + 8, "everyone hears a barge");
        assert_eq!(heard(&t, &agent, TickRole::Agent), 1 + 2 + 8);
        assert_eq!(heard(&t, &sup, TickRole::Supervisor(MonitorMode::Barge)), 1 + 2 + 4, "not themselves");

        // On hold the caller and the agent do not hear each other.
        room.set_mode(&sup.id, MonitorMode::Listen);
        let t = one_tick(&mut room, &agent, &sup, true);
        assert_eq!(heard(&t, &agent, TickRole::Agent), 2);
        assert!(!caller_mix(&t, &mut mixer, &mut to_caller));
    }

    #[test]
    fn a_subscriber_that_never_reads_loses_the_oldest_ticks_and_never_blocks() {
        let mut room = Room::new();
        let mut stalled = room.join(supervisor(MonitorMode::Listen)).unwrap();
        for _ in 0..100 {
            room.caller.push(&tone(1));
            room.tick(false);
        }
        match stalled.ticks.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(n)) => assert_eq!(n, 100 - BROADCAST_TICKS as u64),
            other => panic!("expected lag, got {other:?}"),
        }
        assert_eq!(stalled.ticks.try_recv().unwrap().tick, 100 - BROADCAST_TICKS as u64 + 1, "then the newest kept");
    }

    #[test]
    fn one_agent_per_call_and_leaving_cancels() {
        let mut room = Room::new();
        let a = room.join(Role::Agent { agent_id: AgentId("a1".into()) }).unwrap();
        assert_eq!(room.join(Role::Agent { agent_id: AgentId("a2".into()) }).unwrap_err(), JoinError::AgentPresent);
        assert!(room.caller_hears_participants());
        let left = room.leave(&a.id).unwrap();
        assert!(a.removed.is_cancelled());
        assert_eq!(left.role.name(), "agent");
        assert!(!room.caller_hears_participants());
        assert!(room.set_mode(&a.id, MonitorMode::Barge).is_none());
    }

    #[test]
    fn live_queues_cut_any_chunking_into_frames_and_keep_the_newest() {
        let mut q = FrameQueue::new(2);
        q.push(&[1; 200]);
        assert!(q.is_empty());
        q.push(&[2; 200]);
        assert_eq!(q.len(), 1);
        q.push(&[3; 960]);
        assert_eq!(q.len(), 2, "bounded");
        assert_eq!(q.dropped, 2);
        assert_eq!(q.pop().unwrap()[0], 3);
    }
}
