//! The call's state: one enum whose variants carry their own data.

use super::event::EndCause;

#[derive(Debug, Clone, PartialEq)]
pub enum CallState {
    /// Transport connected; waiting for the stream to start.
    Connecting,
    /// Waiting for the caller (the bot is silent).
    Listening,
    /// The bot is talking: utterance id and when it began (ms since call start).
    BotSpeaking { utterance: u32, since_ms: u64 },
    /// A transfer has been started; a following transport stop is not a hang-up.
    Transferring { target: String },
    OnHold,
    /// An agent took the call: the caller talks to them; the bot neither listens nor talks.
    WithAgent { agent_id: String },
    Ended { cause: EndCause },
}

impl CallState {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Listening => "listening",
            Self::BotSpeaking { .. } => "bot_speaking",
            Self::Transferring { .. } => "transferring",
            Self::OnHold => "on_hold",
            Self::WithAgent { .. } => "with_agent",
            Self::Ended { .. } => "ended",
        }
    }
}
