//! One app connection: attaches calls, forwards their events, carries out commands. Written
//! against any `Sink<String>` / `Stream<Incoming>` so tests can drive it over channels.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tracing::debug;

use super::attach::{Attachments, Claim};
use super::protocol::{parse, AppEvent, ClientMsg, Command, ErrorCode, ServerMsg, Target, TransferTo};
use crate::call::{CallCommand, CallGone, CallHandle, CallRegistry};
use crate::dialog::Action;
use crate::ids::{CallId, TenantId};
use crate::monitor::{EventBus, LiveEvent};

/// How many ended call ids a connection remembers (to answer `call_ended` rather than
/// `call_not_found` for late commands).
const ENDED_MEMORY: usize = 256;

/// A client frame, as far as this protocol cares.
#[derive(Debug)]
pub enum Incoming {
    Text(String),
    /// A binary frame: the protocol is text only.
    Binary,
    Closed,
}

/// A failed command: its code, the field at fault and a readable reason.
pub type Refusal = (ErrorCode, Option<String>, String);

/// Transfers to a named agent need the store and the distributor; the server provides this.
#[async_trait::async_trait]
pub trait AgentTransfer: Send + Sync {
    async fn to_agent(&self, tenant: &TenantId, call: &CallId, agent: &str) -> Result<(), Refusal>;
}

/// What a connection works with.
#[derive(Clone)]
pub struct Ctx {
    pub tenant: TenantId,
    pub bus: EventBus,
    pub calls: CallRegistry,
    pub attachments: Attachments,
    /// `play` files are resolved inside this directory (the config directory).
    pub media_dir: PathBuf,
    /// `None`: transfers to agents are refused as unsupported.
    pub agents: Option<Arc<dyn AgentTransfer>>,
}

/// A pending `gather`: the deadline runs only while neither side is talking.
struct Gather {
    action_id: String,
    timeout: Duration,
    dtmf: bool,
    deadline: Option<Instant>,
}

struct Tracked {
    handle: CallHandle,
    /// The highest sequence number sent (or skipped) for this call: nothing at or below it
    /// is sent again, which is what makes resume duplicate-free.
    last_sent: u64,
    gather: Option<Gather>,
}

struct Session {
    ctx: Ctx,
    id: u64,
    calls: HashMap<CallId, Tracked>,
    all: bool,
    ended: VecDeque<CallId>,
    out: Vec<ServerMsg>,
}

/// Runs one connection until the client goes away.
pub async fn serve<Tx, Rx>(ctx: Ctx, mut tx: Tx, mut rx: Rx)
where
    Tx: Sink<String> + Unpin,
    Rx: Stream<Item = Incoming> + Unpin,
{
    let id = ctx.attachments.next_id();
    let mut sub = ctx.bus.subscribe(&ctx.tenant, None);
    let hello = ServerMsg::Hello {
        session: id,
        last_seq: ctx.bus.last_seq(&ctx.tenant),
        grace_ms: ctx.attachments.grace().as_millis() as u64,
    };
    let mut s = Session { ctx, id, calls: HashMap::new(), all: false, ended: VecDeque::new(), out: vec![hello] };
    'session: loop {
        for msg in s.out.drain(..) {
            if tx.send(msg.text()).await.is_err() {
                break 'session;
            }
        }
        let deadline = s.next_deadline();
        tokio::select! {
            live = sub.live.recv() => match live {
                Ok(ev) => s.on_bus(&ev),
                Err(RecvError::Lagged(missed)) => s.out.push(ServerMsg::Lagged { missed }),
                Err(RecvError::Closed) => break,
            },
            frame = rx.next() => match frame {
                Some(Incoming::Text(text)) => match parse(&text) {
                    Ok(msg) => s.on_client(msg).await,
                    Err(err) => s.out.push(ServerMsg::parse_error(err)),
                },
                Some(Incoming::Binary) => s.out.push(ServerMsg::Error {
                    action_id: None,
                    code: ErrorCode::InvalidJson,
                    field: None,
                    message: "binary frames are not part of this protocol; send JSON text".into(),
                }),
                Some(Incoming::Closed) | None => break,
            },
            () = sleep_until_opt(deadline) => s.on_deadlines(),
        }
    }
    s.leave();
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn gone(err: CallGone) -> (ErrorCode, &'static str) {
    match err {
        CallGone::Busy => (ErrorCode::CallBusy, "the call's command queue is full; retry shortly"),
        CallGone::Ended => (ErrorCode::CallEnded, "the call has ended"),
    }
}

impl Session {
    fn leave(&mut self) {
        for (_, t) in self.calls.drain() {
            self.ctx.attachments.orphan(t.handle, self.id);
        }
    }

    fn remember_ended(&mut self, call: &CallId) {
        if self.ended.len() == ENDED_MEMORY {
            self.ended.pop_front();
        }
        self.ended.push_back(call.clone());
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.calls.values().filter_map(|t| t.gather.as_ref()?.deadline).min()
    }

    fn on_deadlines(&mut self) {
        let now = Instant::now();
        for (call_id, t) in &mut self.calls {
            if t.gather.as_ref().and_then(|g| g.deadline).is_some_and(|d| d <= now) {
                let g = t.gather.take().expect("checked just above: a gather is pending");
                self.out.push(ServerMsg::GatherTimeout { action_id: g.action_id, call_id: call_id.clone() });
            }
        }
    }

    fn on_bus(&mut self, ev: &LiveEvent) {
        let Some(call_id) = &ev.call_id else { return };
        if ev.kind == "call.started" && self.all && !self.calls.contains_key(call_id) {
            if let Some(handle) = self.ctx.calls.get(&self.ctx.tenant, call_id) {
                // Attached just before its own `call.started`, so that event is forwarded.
                self.take(handle, None, None, ev.seq - 1, true);
            }
        }
        if ev.kind == "call.ended" && !self.calls.contains_key(call_id) {
            self.remember_ended(call_id);
        }
        self.forward(ev);
    }

    /// Sends `ev` to the client if its call is attached and it was not sent before.
    fn forward(&mut self, ev: &LiveEvent) {
        let Some(call_id) = &ev.call_id else { return };
        let Some(t) = self.calls.get_mut(call_id) else { return };
        if ev.seq <= t.last_sent {
            return;
        }
        t.last_sent = ev.seq;
        let Some(event) = super::protocol::app_event(ev) else { return };
        track_gather(&mut t.gather, &event);
        let ended = matches!(event, AppEvent::CallEnded { .. });
        self.out.push(ServerMsg::Event { seq: ev.seq, at: ev.at, call_id: call_id.clone(), event });
        if ended {
            self.calls.remove(call_id);
            self.ctx.attachments.forget(call_id);
            self.remember_ended(call_id);
        }
    }

    /// Takes a live call: claims it, switches it to external, starts tracking it.
    fn take(&mut self, handle: CallHandle, action_id: Option<String>, resumed_from: Option<u64>, last_sent: u64, all: bool) -> bool {
        let call_id = handle.id.clone();
        match self.ctx.attachments.claim(&call_id, self.id) {
            Claim::Taken => {
                // With `all`, a call another connection took first is simply not ours.
                if !all {
                    self.out.push(ServerMsg::Failed {
                        action_id,
                        call_id: Some(call_id),
                        command: "attach",
                        code: ErrorCode::AlreadyAttached,
                        field: Some("call_id".into()),
                        message: "another connection drives this call".into(),
                    });
                }
                return false;
            }
            Claim::New => {
                if let Err(err) = handle.send(CallCommand::External(true)) {
                    self.ctx.attachments.unclaim(&call_id, self.id);
                    let (code, message) = gone(err);
                    self.out.push(ServerMsg::Failed {
                        action_id,
                        call_id: Some(call_id),
                        command: "attach",
                        code,
                        field: None,
                        message: message.into(),
                    });
                    return false;
                }
            }
            Claim::Resumed => {}
        }
        debug!(%call_id, session = self.id, "call attached to an app connection");
        self.calls.insert(call_id.clone(), Tracked { handle, last_sent, gather: None });
        self.out.push(ServerMsg::Attached { action_id, call_id: Some(call_id), all, resumed_from });
        true
    }

    async fn on_client(&mut self, msg: ClientMsg) {
        match msg {
            ClientMsg::Attach { action_id, target: Target::All, .. } => {
                self.all = true;
                self.out.push(ServerMsg::Attached { action_id, call_id: None, all: true, resumed_from: None });
            }
            ClientMsg::Attach { action_id, target: Target::Call(call_id), since } => self.attach(action_id, call_id, since),
            ClientMsg::Detach { action_id, target: Target::All } => {
                self.all = false;
                self.out.push(ServerMsg::Detached { action_id, call_id: None, all: true });
            }
            ClientMsg::Detach { action_id, target: Target::Call(call_id) } => match self.calls.remove(&call_id) {
                Some(t) => {
                    self.ctx.attachments.release(&t.handle, self.id);
                    self.out.push(ServerMsg::Detached { action_id, call_id: Some(call_id), all: false });
                }
                None => self.out.push(ServerMsg::Failed {
                    action_id,
                    call_id: Some(call_id),
                    command: "detach",
                    code: ErrorCode::NotAttached,
                    field: Some("call_id".into()),
                    message: "the call is not attached to this connection".into(),
                }),
            },
            ClientMsg::Command { action_id, call_id, command } => self.command(action_id, call_id, command).await,
        }
    }

    fn attach(&mut self, action_id: Option<String>, call_id: CallId, since: Option<u64>) {
        let already = self.calls.contains_key(&call_id);
        if !already {
            let Some(handle) = self.ctx.calls.get(&self.ctx.tenant, &call_id) else {
                // An ended call can still be read back (within the retained history).
                let replayed = since.map_or(0, |since| self.replay_ended(&call_id, since));
                let ended = replayed > 0 || self.ended.contains(&call_id);
                self.out.push(ServerMsg::Failed {
                    action_id,
                    call_id: Some(call_id),
                    command: "attach",
                    code: if ended { ErrorCode::CallEnded } else { ErrorCode::CallNotFound },
                    field: if ended { None } else { Some("call_id".into()) },
                    message: if ended { "the call has ended".into() } else { "no live call with this id".into() },
                });
                return;
            };
            // Without `since`, the client wants what happens from now on.
            let last_sent = since.unwrap_or_else(|| self.ctx.bus.last_seq(&self.ctx.tenant));
            if !self.take(handle, action_id, since, last_sent, false) {
                return;
            }
        } else {
            if let Some(t) = self.calls.get_mut(&call_id) {
                // Re-attaching an attached call with an older `since` replays from there.
                t.last_sent = since.map_or(t.last_sent, |s| s.min(t.last_sent));
            }
            self.out.push(ServerMsg::Attached { action_id, call_id: Some(call_id.clone()), all: false, resumed_from: since });
        }
        if let Some(since) = since {
            let sub = self.ctx.bus.subscribe(&self.ctx.tenant, Some(since));
            if sub.history_truncated {
                let oldest_seq = sub.missed.first().map_or(since + 1, |e| e.seq);
                self.out.push(ServerMsg::HistoryTruncated { call_id: call_id.clone(), oldest_seq });
            }
            for ev in sub.missed.iter().filter(|e| e.call_id.as_ref() == Some(&call_id)) {
                self.forward(ev);
            }
        }
    }

    /// Sends a finished call's retained events after `since`; returns how many there were.
    fn replay_ended(&mut self, call_id: &CallId, since: u64) -> usize {
        let sub = self.ctx.bus.subscribe(&self.ctx.tenant, Some(since));
        let mut n = 0;
        for ev in sub.missed.iter().filter(|e| e.call_id.as_ref() == Some(call_id)) {
            if let Some(event) = super::protocol::app_event(ev) {
                self.out.push(ServerMsg::Event { seq: ev.seq, at: ev.at, call_id: call_id.clone(), event });
                n += 1;
            }
        }
        n
    }

    async fn command(&mut self, action_id: String, call_id: CallId, command: Command) {
        let name = command.name();
        let fail = |code: ErrorCode, field: Option<&str>, message: String| ServerMsg::Failed {
            action_id: Some(action_id.clone()),
            call_id: Some(call_id.clone()),
            command: name,
            code,
            field: field.map(str::to_string),
            message,
        };
        let Some(t) = self.calls.get(&call_id) else {
            let msg = if self.ended.contains(&call_id) {
                fail(ErrorCode::CallEnded, None, "the call has ended".into())
            } else if self.ctx.calls.get(&self.ctx.tenant, &call_id).is_some() {
                fail(ErrorCode::NotAttached, Some("call_id"), "attach the call before sending it commands".into())
            } else {
                fail(ErrorCode::CallNotFound, Some("call_id"), "no live call with this id".into())
            };
            self.out.push(msg);
            return;
        };
        let handle = t.handle.clone();
        let mut gather = None;
        let cmd = match command {
            Command::Say { text, barge_in } => CallCommand::Act(Action::Say { text, barge_in }),
            Command::Play { url } => match resolve_media(&self.ctx.media_dir, &url) {
                Ok(path) => CallCommand::Act(Action::Play { path: path.to_string_lossy().into_owned() }),
                Err((code, message)) => {
                    self.out.push(fail(code, Some("url"), message));
                    return;
                }
            },
            Command::Clear => CallCommand::Clear,
            Command::Gather { dtmf, timeout_ms } => {
                let timeout = Duration::from_millis(timeout_ms);
                gather = Some(Gather { action_id: action_id.clone(), timeout, dtmf, deadline: Some(Instant::now() + timeout) });
                CallCommand::Act(Action::Listen { timeout })
            }
            Command::Transfer(TransferTo::Department(department)) => {
                if let Err(e) = crate::http::json::check_name("department", &department) {
                    self.out.push(fail(ErrorCode::InvalidCommand, Some("department"), e.to_string()));
                    return;
                }
                CallCommand::Act(Action::TransferToDepartment { department })
            }
            Command::Transfer(TransferTo::Number(number)) => {
                if let Err(e) = crate::http::json::check_dial_target("number", &number) {
                    self.out.push(fail(ErrorCode::InvalidCommand, Some("number"), e.to_string()));
                    return;
                }
                CallCommand::Act(Action::TransferToNumber { number })
            }
            Command::Transfer(TransferTo::Agent(agent)) => {
                let result = match &self.ctx.agents {
                    Some(agents) => agents.to_agent(&self.ctx.tenant, &call_id, &agent).await,
                    None => Err((ErrorCode::Unsupported, Some("agent".into()), "transfers to agents are not available here".into())),
                };
                self.out.push(match result {
                    Ok(()) => ServerMsg::Ack { action_id, call_id, command: name },
                    Err((code, field, message)) => fail(code, field.as_deref(), message),
                });
                return;
            }
            Command::Hold => CallCommand::Hold(true),
            Command::Unhold => CallCommand::Hold(false),
            Command::Mute => CallCommand::Mute(true),
            Command::Unmute => CallCommand::Mute(false),
            Command::Hangup { reason } => CallCommand::Act(Action::Hangup { reason }),
        };
        match handle.send(cmd) {
            Ok(()) => {
                if let Some(g) = gather {
                    if let Some(t) = self.calls.get_mut(&call_id) {
                        // A new gather replaces an older one on the same call.
                        t.gather = Some(g);
                    }
                }
                self.out.push(ServerMsg::Ack { action_id, call_id, command: name });
            }
            Err(err) => {
                let (code, message) = gone(err);
                self.out.push(fail(code, None, message.into()));
            }
        }
    }
}

/// Keeps a gather's clock: it stops while anyone talks, restarts when they stop, and the
/// gather completes on a final transcript (or a digit, when digits count).
fn track_gather(gather: &mut Option<Gather>, event: &AppEvent) {
    let Some(g) = gather else { return };
    match event {
        AppEvent::TranscriptFinal { text, .. } if !text.is_empty() => *gather = None,
        AppEvent::Dtmf { .. } if g.dtmf => *gather = None,
        AppEvent::BotSpeaking { .. } | AppEvent::SpeechStarted { .. } => g.deadline = None,
        AppEvent::BotFinished { .. } | AppEvent::BotInterrupted { .. } | AppEvent::SpeechEnded { .. } => {
            g.deadline = Some(Instant::now() + g.timeout)
        }
        AppEvent::CallEnded { .. } => *gather = None,
        _ => {}
    }
}

/// `play` takes a `.wav` file inside the config directory, named relative to it. URLs are
/// refused: fetching audio from anywhere on the network on a client's behalf is not enabled.
pub fn resolve_media(dir: &Path, url: &str) -> Result<PathBuf, (ErrorCode, String)> {
    let invalid = |m: &str| (ErrorCode::InvalidCommand, m.to_string());
    if url.starts_with("http://") || url.starts_with("https://") {
        return Err((
            ErrorCode::Unsupported,
            "playing audio from a URL is not supported; name a .wav file under the config directory".into(),
        ));
    }
    let rel = url.strip_prefix("file:").unwrap_or(url);
    let rel_path = Path::new(rel);
    if rel.is_empty() || rel_path.is_absolute() || rel_path.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(invalid("url must be a relative path inside the config directory, without '..'"));
    }
    if rel_path.extension().and_then(|e| e.to_str()) != Some("wav") {
        return Err(invalid("url must name a .wav file"));
    }
    let base = dir.canonicalize().map_err(|_| invalid("the config directory is not available for audio files"))?;
    let path = base.join(rel_path).canonicalize().map_err(|_| invalid("no such file under the config directory"))?;
    // A symlink inside the directory could point anywhere; the resolved path must stay inside.
    if !path.starts_with(&base) || !path.is_file() {
        return Err(invalid("url must name a file inside the config directory"));
    }
    Ok(path)
}
