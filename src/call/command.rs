//! Commands other parts of the server send to a call actor.

use tokio::sync::oneshot;

use crate::dialog::Action;

use super::room::{JoinError, Joined, MonitorMode, ParticipantId, Role};
use super::CallSnapshot;

#[derive(Debug)]
pub enum CallCommand {
    /// Carry out a dialog action as if the call's own dialog had asked for it.
    Act(Action),
    /// Stop passing the caller's audio to recognition (the bot stops hearing them).
    Mute(bool),
    /// Put the caller on hold (they hear hold audio; the bot neither listens nor talks except
    /// for explicit `Say`s such as queue announcements) or take them off hold.
    Hold(bool),
    /// Stop the bot talking now: drop queued audio and what is left to say (like a barge-in,
    /// without telling the dialog the caller spoke).
    Clear,
    /// Report the call's current state.
    Snapshot(oneshot::Sender<CallSnapshot>),
    /// An external bot (the app WebSocket) takes over the conversation (`true`) or gives it
    /// back (`false`). While external, the call's own dialog is not consulted: what happens is
    /// published as events and the bot answers with `Act` commands.
    External(bool),
    /// Someone joins the call's audio (an agent taking it, a supervisor monitoring it).
    Join { role: Role, reply: oneshot::Sender<Result<Joined, JoinError>> },
    /// A participant's session ended (`reason` goes on the call log). `hang_up`: whether an
    /// agent leaving this way ends the call, as a deliberate leave or a connection lost mid-call
    /// does; an agent whose audio never got through leaves the caller on hold instead.
    Leave { id: ParticipantId, reason: String, hang_up: bool },
    /// A supervisor switches between listen, whisper and barge; `false` if no such supervisor.
    SetMode { id: ParticipantId, mode: MonitorMode, reply: oneshot::Sender<bool> },
    /// The call's agent is done with it (the call was sent onward): they leave its audio
    /// without hanging the call up.
    ReleaseAgent,
    /// A browser agent accepted the call: if their audio has not joined `within`, the call goes
    /// back to `department`'s queue (and the agent is set away).
    AwaitAgent { department: String, within: std::time::Duration },
    /// An event from outside the actor for the call's timeline (a disposition while the call
    /// is still live), so it takes its place in the call's sequence.
    Note { kind: &'static str, data: serde_json::Value },
}
