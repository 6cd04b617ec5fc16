//! What happens on a call, as typed events. Each is persisted (through the writer) as one row
//! of the call's timeline and published to live subscribers.

use serde::Serialize;

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndCause {
    /// The caller hung up (Twilio `stop` while not transferring).
    CallerHangup,
    /// We hung up (the flow, the API, or an operator).
    Hangup,
    /// The call left us through a transfer.
    Transferred,
    /// The transport closed without a `stop`.
    TransportClosed,
    /// No media for longer than the idle timeout.
    IdleTimeout,
    /// Longer than the maximum call duration.
    MaxDuration,
    /// The peer stopped reading our audio.
    SlowConsumer,
    /// The server is shutting down.
    Shutdown,
    /// A protocol violation we could not recover from.
    ProtocolError,
    /// The agent who had the call hung up (left it).
    AgentHangup,
}

impl EndCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CallerHangup => "caller_hangup",
            Self::Hangup => "hangup",
            Self::Transferred => "transferred",
            Self::TransportClosed => "transport_closed",
            Self::IdleTimeout => "idle_timeout",
            Self::MaxDuration => "max_duration",
            Self::SlowConsumer => "slow_consumer",
            Self::Shutdown => "shutdown",
            Self::ProtocolError => "protocol_error",
            Self::AgentHangup => "agent_hangup",
        }
    }
}

/// One event on a call. Times inside are milliseconds since the call started (the caller's
/// audio clock), so they line up with the audio regardless of when the event was written.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallEvent {
    Started {
        transport: &'static str,
        from: Option<String>,
        to: Option<String>,
        flow: Option<String>,
        /// The transport's custom parameters (Twilio `<Parameter>`s).
        params: std::collections::BTreeMap<String, String>,
    },
    SpeechStarted { at_ms: u64 },
    SpeechEnded { at_ms: u64, duration_ms: u64 },
    TranscriptPartial { text: String },
    /// `speaker` is `caller`, or `agent` once an agent has the call (then times are on the
    /// agent's audio clock, from when they joined).
    TranscriptFinal { text: String, confidence: f32, start_ms: u64, end_ms: u64, speaker: &'static str },
    Dtmf { digit: char },
    /// The bot began an utterance.
    BotSpeaking { utterance: u32, text: String },
    /// An utterance ended: played in full, or cut by barge-in (`heard` is what was played).
    BotUtterance { utterance: u32, text: String, heard: String, cut: bool, played_ms: u64 },
    BargeIn { utterance: u32, at_ms: u64 },
    /// A Twilio mark came back: `played` false when it was echoed because of a `clear`.
    Mark { name: String, played: bool },
    Hold { on: bool },
    /// Who drives the conversation from now on (`llm`, `app`).
    DriverChanged { driver: &'static str },
    Mute { on: bool },
    TransferRequested { target: String, target_kind: &'static str },
    TransferFailed { target: String, reason: String },
    ProtocolWarning { reason: String },
    ProviderError { provider: String, reason: String },
    /// An agent or supervisor joined the call's audio.
    ParticipantJoined {
        participant: String,
        role: &'static str,
        agent_id: Option<String>,
        name: Option<String>,
        mode: Option<&'static str>,
    },
    ParticipantLeft { participant: String, role: &'static str, reason: String },
    /// A supervisor switched between listen, whisper and barge.
    MonitorMode { participant: String, from: &'static str, to: &'static str },
    /// The agent's voice activity (times in ms since the call started).
    AgentSpeechStarted { at_ms: u64 },
    AgentSpeechEnded { at_ms: u64, duration_ms: u64 },
    Ended { cause: EndCause, duration_ms: u64 },
}

impl CallEvent {
    /// The `kind` column and the live event name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Started { .. } => "started",
            Self::SpeechStarted { .. } => "speech_started",
            Self::SpeechEnded { .. } => "speech_ended",
            Self::TranscriptPartial { .. } => "transcript_partial",
            Self::TranscriptFinal { .. } => "transcript_final",
            Self::Dtmf { .. } => "dtmf",
            Self::BotSpeaking { .. } => "bot_speaking",
            Self::BotUtterance { .. } => "bot_utterance",
            Self::BargeIn { .. } => "barge_in",
            Self::Mark { .. } => "mark",
            Self::Hold { .. } => "hold",
            Self::DriverChanged { .. } => "driver_changed",
            Self::Mute { .. } => "mute",
            Self::TransferRequested { .. } => "transfer_requested",
            Self::TransferFailed { .. } => "transfer_failed",
            Self::ProtocolWarning { .. } => "protocol_warning",
            Self::ProviderError { .. } => "provider_error",
            Self::ParticipantJoined { .. } => "participant_joined",
            Self::ParticipantLeft { .. } => "participant_left",
            Self::MonitorMode { .. } => "monitor_mode",
            Self::AgentSpeechStarted { .. } => "agent_speech_started",
            Self::AgentSpeechEnded { .. } => "agent_speech_ended",
            Self::Ended { .. } => "ended",
        }
    }

    /// The event's data as a JSON object (the `kind` tag included).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("call events are plain data and always serialise")
    }
}
