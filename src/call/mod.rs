//! Calls: one actor (a tokio task) per call owns all of that call's state; everything else
//! holds a [`CallHandle`] and talks to it over a bounded command channel.

mod actor;
pub mod audio;
pub mod command;
pub mod event;
pub mod handle;
mod hold;
pub mod leg;
pub mod playout;
pub mod registry;
pub mod room;
pub mod state;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

pub use actor::run_call;
pub use command::CallCommand;
pub use event::{CallEvent, EndCause};
pub use handle::{CallGone, CallHandle};
pub use leg::{LegFormat, LegIn, LegOut};
pub use registry::{AtCapacity, CallRegistry, Registration};
pub use state::CallState;

use crate::config::CallsConfig;
use crate::dialog::Dialog;
use crate::ids::{CallId, TenantId};
use crate::speech::stt::SttProvider;
use crate::speech::tts::TtsProvider;
use crate::store::writer::WriterHandle;
use crate::transport::twilio::rest::TwilioRest;

/// What a transport knows about a new call.
#[derive(Debug, Clone)]
pub struct CallInfo {
    pub id: CallId,
    pub tenant: TenantId,
    pub transport: &'static str,
    /// The transport's own id (Twilio CallSid).
    pub external_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub params: BTreeMap<String, String>,
}

/// How the bot reacts when the caller talks over it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BargeIn {
    pub enabled: bool,
    /// Caller speech must last this long (after the VAD's own start window) to interrupt, so a
    /// cough or the bot's own echo does not.
    pub min_speech: Duration,
}

/// The dialog driving the call and its per-flow settings.
pub struct DialogSetup {
    pub dialog: Box<dyn Dialog>,
    pub flow: Option<String>,
    pub barge_in: BargeIn,
    pub voice: Option<String>,
    /// Everything the caller may say anywhere in the dialog (the offline recognizer's grammar).
    pub phrases: Vec<String>,
}

/// Services a call uses, shared by all calls.
#[derive(Clone)]
pub struct CallServices {
    pub stt: Arc<dyn SttProvider>,
    pub tts: Arc<dyn TtsProvider>,
    pub writer: WriterHandle,
    pub twilio: Option<TwilioRest>,
    pub config: CallsConfig,
    pub events: crate::monitor::EventBus,
    /// Department queues: calls the dialog transfers to a department are handed here.
    pub acd: Option<crate::center::AcdHandle>,
    /// LLM mode: the chat client and the system prompt calls start with.
    pub llm: Option<(crate::dialog::llm::LlmClient, String)>,
}

/// The transport's two channels and the audio format it speaks.
pub struct LegChannels {
    pub input: mpsc::Receiver<LegIn>,
    pub output: mpsc::Sender<LegOut>,
    pub format: LegFormat,
}

/// A point-in-time view of a call, for the API.
#[derive(Debug, Clone, Serialize)]
pub struct CallSnapshot {
    pub id: CallId,
    pub state: &'static str,
    pub transport: &'static str,
    pub duration_ms: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    pub muted: bool,
    pub on_hold: bool,
    /// The agent on the call, if one took it.
    pub agent_id: Option<String>,
    /// Agents and supervisors in the call's audio.
    pub participants: usize,
}
