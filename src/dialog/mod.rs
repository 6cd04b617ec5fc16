//! What the bot says and does. A call is driven by one [`Dialog`]: the rules flow (the
//! embedded default), an LLM, or an external bot over the app WebSocket. Each turns what
//! happened on the call ([`DialogInput`]) into the same typed [`Action`]s for the call actor.
//!
//! A dialog is sans-IO and synchronous: the call actor calls it inline, passing `now`; anything
//! slow (an LLM request) is started by the dialog's owner and comes back as input.

pub mod app_ws;
pub mod flow;
pub mod llm;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// Something that happened on the call, as the dialog sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum DialogInput {
    /// The call is connected. `params` are the transport's custom parameters (Twilio
    /// `<Parameter>`s, WebRTC entry-point options).
    Started { from: Option<String>, to: Option<String>, params: BTreeMap<String, String> },
    /// A final transcript of the caller's turn.
    Transcript { text: String, confidence: f32 },
    /// A DTMF digit.
    Dtmf { digit: char },
    /// The `Listen` timeout ran out with no speech and no digit.
    NoInput,
    /// The bot finished speaking everything it was asked to say (the caller heard it all).
    SpeechFinished,
    /// The caller interrupted the bot; `heard` is the part of the utterance that was played.
    Interrupted { heard: String },
}

/// What the call should do. Produced by every kind of dialog.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Speak `text`. `barge_in: false` makes this utterance uninterruptible.
    Say { text: String, barge_in: bool },
    /// Play a WAV file (path relative to the config directory).
    Play { path: String },
    /// Wait for the caller: after the bot has finished speaking, wait up to `timeout` for
    /// speech or a digit, then deliver `NoInput`.
    Listen { timeout: Duration },
    /// Put the call into a department's queue.
    TransferToDepartment { department: String },
    /// Transfer to an external number or SIP URI.
    TransferToNumber { number: String },
    /// End the call after anything queued to say has been played.
    Hangup { reason: String },
    /// From now on an LLM drives the call (see `dialog::llm`).
    HandOverToLlm,
}

/// A conversation driver for one call.
pub trait Dialog: Send {
    /// Called once per input; returns the actions to take, in order.
    fn on_input(&mut self, input: DialogInput, now: SystemTime) -> Vec<Action>;
    /// Phrases the caller is expected to say next (the STT grammar for offline recognition).
    fn expected_phrases(&self) -> Vec<String>;
}
