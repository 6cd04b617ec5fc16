//! Commands other parts of the server send to a call actor.

use tokio::sync::oneshot;

use crate::dialog::Action;

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
}
