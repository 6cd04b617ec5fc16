//! The app WebSocket's wire format: what a client sends ([`ClientMsg`]), what the server sends
//! ([`ServerMsg`], [`AppEvent`]), and the mapping from the event bus's `call.*` events onto
//! the app's event names. `serde_json::Value` stops here: the bus carries events as JSON, this
//! module turns them back into types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::CallId;
use crate::monitor::LiveEvent;

/// Longest text one `say` may carry (a few minutes of speech).
pub const MAX_SAY_CHARS: usize = 10_000;
/// Longest `gather` wait.
pub const MAX_GATHER_MS: u64 = 120_000;

/// A message from the client, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMsg {
    Attach { action_id: Option<String>, target: Target, since: Option<u64> },
    Detach { action_id: Option<String>, target: Target },
    Command { action_id: String, call_id: CallId, command: Command },
}

/// Which calls an attach or detach is about.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Call(CallId),
    /// Every call of the tenant that starts from now on.
    All,
}

/// A command for one attached call.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Say { text: String, barge_in: bool },
    Play { url: String },
    Clear,
    Gather { dtmf: bool, timeout_ms: u64 },
    Transfer(TransferTo),
    Hold,
    Unhold,
    Mute,
    Unmute,
    Hangup { reason: String },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Say { .. } => "say",
            Self::Play { .. } => "play",
            Self::Clear => "clear",
            Self::Gather { .. } => "gather",
            Self::Transfer(_) => "transfer",
            Self::Hold => "hold",
            Self::Unhold => "unhold",
            Self::Mute => "mute",
            Self::Unmute => "unmute",
            Self::Hangup { .. } => "hangup",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum TransferTo {
    Department(String),
    Agent(String),
    Number(String),
}

/// Every `type` a client may send, in the order the docs list them.
pub const CLIENT_TYPES: &[&str] =
    &["attach", "detach", "say", "play", "clear", "gather", "transfer", "hold", "unhold", "mute", "unmute", "hangup"];

/// Why a client message was not understood. The socket stays open.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub code: ErrorCode,
    /// The offending field (a dotted path for nested ones), when there is one.
    pub field: Option<String>,
    pub message: String,
    /// The message's `action_id`, when it had a readable one.
    pub action_id: Option<String>,
}

/// Stable machine-readable codes of `error` and `failed` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not a JSON object (or not text).
    InvalidJson,
    /// A field is missing, unknown, of the wrong type or out of range; `field` names it.
    InvalidCommand,
    /// No live call of this tenant has that id.
    CallNotFound,
    /// The call ended (or ends while the command is handed over).
    CallEnded,
    /// The call's command queue is full; retry shortly.
    CallBusy,
    /// The call is not attached to this connection (attach it first).
    NotAttached,
    /// Another connection drives the call.
    AlreadyAttached,
    /// Well-formed, but this server cannot do it (see the field and message).
    Unsupported,
    /// The transfer target cannot take the call now (an agent who is busy or offline).
    TargetUnavailable,
    /// The server could not carry out the command (details are in the server log).
    Internal,
}

// ---- client messages -------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachBody {
    #[serde(default)]
    action_id: Option<String>,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    all: bool,
    #[serde(default)]
    since: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SayBody {
    text: String,
    #[serde(default)]
    voice: Option<String>,
    #[serde(default = "yes")]
    barge_in: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlayBody {
    url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GatherBody {
    #[serde(default = "yes")]
    dtmf: bool,
    timeout_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    #[serde(default)]
    department: Option<String>,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    number: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HangupBody {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

fn yes() -> bool {
    true
}

fn invalid(field: &str, message: impl Into<String>) -> ParseError {
    ParseError { code: ErrorCode::InvalidCommand, field: Some(field.into()), message: message.into(), action_id: None }
}

/// Deserialises `body` into `T`, naming the field that failed: serde reports missing and
/// unknown fields only in its message (``missing field `text` ``), wrong types by path.
fn body<T: serde::de::DeserializeOwned>(body: serde_json::Map<String, Value>) -> Result<T, ParseError> {
    serde_path_to_error::deserialize::<_, T>(Value::Object(body)).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner().to_string();
        let field = if path.is_empty() || path == "." {
            inner.split('`').nth(1).map(str::to_string)
        } else {
            Some(path)
        };
        ParseError { code: ErrorCode::InvalidCommand, field, message: inner, action_id: None }
    })
}

fn take_string(obj: &mut serde_json::Map<String, Value>, key: &str) -> Result<Option<String>, ParseError> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 128 => Ok(Some(s)),
        Some(_) => Err(invalid(key, format!("{key} must be a non-empty string of at most 128 bytes"))),
    }
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<ClientMsg, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ParseError {
        code: ErrorCode::InvalidJson,
        field: None,
        message: format!("not JSON: {e}"),
        action_id: None,
    })?;
    let Value::Object(mut obj) = value else {
        return Err(ParseError { code: ErrorCode::InvalidJson, field: None, message: "expected a JSON object".into(), action_id: None });
    };
    // The action id is read first so that every later error can be matched to its command.
    let action_id = obj.get("action_id").and_then(Value::as_str).map(str::to_string);
    parse_object(&mut obj).map_err(|mut e| {
        e.action_id = action_id;
        e
    })
}

fn parse_object(obj: &mut serde_json::Map<String, Value>) -> Result<ClientMsg, ParseError> {
    let kind = match obj.remove("type") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(invalid("type", "type must be a string")),
        None => return Err(invalid("type", "missing field `type`")),
    };
    if kind == "attach" || kind == "detach" {
        let b: AttachBody = body(std::mem::take(obj))?;
        let target = match (b.call_id, b.all) {
            (Some(_), true) => return Err(invalid("all", "give either call_id or all, not both")),
            (Some(id), false) if !id.is_empty() => Target::Call(CallId(id)),
            (Some(_), false) => return Err(invalid("call_id", "call_id must not be empty")),
            (None, true) => Target::All,
            (None, false) => return Err(invalid("call_id", "give call_id, or all: true")),
        };
        if kind == "detach" {
            if b.since.is_some() {
                return Err(invalid("since", "since is for attach only"));
            }
            return Ok(ClientMsg::Detach { action_id: b.action_id, target });
        }
        if b.since.is_some() && target == Target::All {
            return Err(invalid("since", "since resumes one call: give call_id"));
        }
        return Ok(ClientMsg::Attach { action_id: b.action_id, target, since: b.since });
    }
    if !CLIENT_TYPES.contains(&kind.as_str()) {
        return Err(invalid("type", format!("unknown type {kind:?}; expected one of {}", CLIENT_TYPES.join(", "))));
    }
    let action_id = take_string(obj, "action_id")?.ok_or_else(|| invalid("action_id", "missing field `action_id`"))?;
    let call_id = take_string(obj, "call_id")?.ok_or_else(|| invalid("call_id", "missing field `call_id`"))?;
    let rest = std::mem::take(obj);
    let command = match kind.as_str() {
        "say" => {
            let b: SayBody = body(rest)?;
            if b.text.trim().is_empty() {
                return Err(invalid("text", "text must not be empty"));
            }
            if b.text.chars().count() > MAX_SAY_CHARS {
                return Err(invalid("text", format!("text is longer than {MAX_SAY_CHARS} characters")));
            }
            if b.voice.is_some() {
                // The call speaks with its flow's voice; a per-utterance voice is not wired
                // into the call actor, so saying it was accepted would be a lie.
                return Err(ParseError {
                    code: ErrorCode::Unsupported,
                    field: Some("voice".into()),
                    message: "per-utterance voices are not supported; the call speaks with its flow's voice".into(),
                    action_id: None,
                });
            }
            Command::Say { text: b.text, barge_in: b.barge_in }
        }
        "play" => {
            let b: PlayBody = body(rest)?;
            Command::Play { url: b.url }
        }
        "gather" => {
            let b: GatherBody = body(rest)?;
            if b.timeout_ms == 0 || b.timeout_ms > MAX_GATHER_MS {
                return Err(invalid("timeout_ms", format!("timeout_ms must be 1..={MAX_GATHER_MS}")));
            }
            Command::Gather { dtmf: b.dtmf, timeout_ms: b.timeout_ms }
        }
        "transfer" => {
            let b: TransferBody = body(rest)?;
            let to = match (b.department, b.agent, b.number) {
                (Some(d), None, None) if !d.trim().is_empty() => TransferTo::Department(d),
                (None, Some(a), None) if !a.trim().is_empty() => TransferTo::Agent(a),
                (None, None, Some(n)) if !n.trim().is_empty() => TransferTo::Number(n),
                (None, None, None) => return Err(invalid("department", "give one of department, agent, number")),
                (d, a, n) => {
                    let given: Vec<&str> = [("department", d.is_some()), ("agent", a.is_some()), ("number", n.is_some())]
                        .iter()
                        .filter(|(_, s)| *s)
                        .map(|(f, _)| *f)
                        .collect();
                    let field = given.last().copied().unwrap_or("department");
                    return Err(invalid(field, format!("give exactly one non-empty target (got {})", given.join(", "))));
                }
            };
            Command::Transfer(to)
        }
        "hangup" => {
            let b: HangupBody = body(rest)?;
            Command::Hangup { reason: b.reason.unwrap_or_else(|| "app".into()) }
        }
        simple => {
            let Empty {} = body(rest)?;
            match simple {
                "clear" => Command::Clear,
                "hold" => Command::Hold,
                "unhold" => Command::Unhold,
                "mute" => Command::Mute,
                "unmute" => Command::Unmute,
                other => unreachable!("CLIENT_TYPES lists {other:?} but it has no parser"),
            }
        }
    };
    Ok(ClientMsg::Command { action_id, call_id: CallId(call_id), command })
}

// ---- server messages -------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// First message of every connection.
    Hello { session: u64, last_seq: u64, grace_ms: u64 },
    /// The call (or, with `all`, every new call) now belongs to this connection.
    Attached {
        #[serde(skip_serializing_if = "Option::is_none")]
        action_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        call_id: Option<CallId>,
        all: bool,
        /// Set when events after this sequence number are being replayed.
        #[serde(skip_serializing_if = "Option::is_none")]
        resumed_from: Option<u64>,
    },
    Detached {
        #[serde(skip_serializing_if = "Option::is_none")]
        action_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        call_id: Option<CallId>,
        all: bool,
    },
    /// Something happened on an attached call. `seq` is the tenant's event sequence number:
    /// attach again with `since` set to the last one seen to resume.
    Event {
        seq: u64,
        at: i64,
        call_id: CallId,
        #[serde(flatten)]
        event: AppEvent,
    },
    /// The call actor accepted the command.
    Ack { action_id: String, call_id: CallId, command: &'static str },
    /// A well-formed message could not be carried out.
    Failed {
        #[serde(skip_serializing_if = "Option::is_none")]
        action_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        call_id: Option<CallId>,
        command: &'static str,
        code: ErrorCode,
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        message: String,
    },
    /// A message was not understood.
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        action_id: Option<String>,
        code: ErrorCode,
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        message: String,
    },
    /// A `gather` ran out: no final transcript and no digit within its timeout after the bot
    /// stopped talking.
    GatherTimeout { action_id: String, call_id: CallId },
    /// This connection fell behind and `missed` events were dropped for it; attach again with
    /// `since` to fetch them.
    Lagged { missed: u64 },
    /// `since` was older than the retained history: events before `oldest_seq` are gone.
    HistoryTruncated { call_id: CallId, oldest_seq: u64 },
}

impl ServerMsg {
    pub fn text(&self) -> String {
        serde_json::to_string(self).expect("server messages are plain data and always serialise")
    }

    pub fn parse_error(e: ParseError) -> Self {
        Self::Error { action_id: e.action_id, code: e.code, field: e.field, message: e.message }
    }
}

/// What happened on a call, under the app's names.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event")]
pub enum AppEvent {
    #[serde(rename = "call.started")]
    CallStarted {
        transport: String,
        from: Option<String>,
        to: Option<String>,
        flow: Option<String>,
        /// The transport's custom parameters, when the call publishes them.
        params: BTreeMap<String, String>,
    },
    #[serde(rename = "speech.started")]
    SpeechStarted { at_ms: u64 },
    #[serde(rename = "speech.ended")]
    SpeechEnded { at_ms: u64, duration_ms: u64 },
    #[serde(rename = "transcript.partial")]
    TranscriptPartial { text: String },
    #[serde(rename = "transcript.final")]
    TranscriptFinal { text: String, confidence: f32, start_ms: u64, end_ms: u64 },
    #[serde(rename = "dtmf")]
    Dtmf { digit: String },
    #[serde(rename = "bot.speaking")]
    BotSpeaking { utterance: u32, text: String },
    #[serde(rename = "bot.finished")]
    BotFinished { utterance: u32, text: String, played_ms: u64 },
    /// The caller talked over the bot (or `clear` stopped it): `heard` is what was played.
    #[serde(rename = "bot.interrupted")]
    BotInterrupted { utterance: u32, text: String, heard: String, played_ms: u64 },
    #[serde(rename = "playout.mark")]
    PlayoutMark { name: String, played: bool },
    #[serde(rename = "call.hold")]
    Hold { on: bool },
    #[serde(rename = "call.mute")]
    Mute { on: bool },
    #[serde(rename = "call.driver")]
    DriverChanged { driver: String },
    #[serde(rename = "transfer.requested")]
    TransferRequested { target: String, target_kind: String },
    #[serde(rename = "transfer.failed")]
    TransferFailed { target: String, reason: String },
    #[serde(rename = "provider.error")]
    ProviderError { provider: String, reason: String },
    #[serde(rename = "call.ended")]
    CallEnded { cause: String, duration_ms: u64 },
}

/// The bus's `call.*` payloads (the `CallEvent` JSON), read back.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum BusCall {
    Started {
        transport: String,
        from: Option<String>,
        to: Option<String>,
        flow: Option<String>,
        #[serde(default)]
        params: BTreeMap<String, String>,
    },
    SpeechStarted { at_ms: u64 },
    SpeechEnded { at_ms: u64, duration_ms: u64 },
    TranscriptPartial { text: String },
    TranscriptFinal {
        text: String,
        confidence: f32,
        start_ms: u64,
        end_ms: u64,
        #[serde(default)]
        speaker: Option<String>,
    },
    Dtmf { digit: String },
    BotSpeaking { utterance: u32, text: String },
    BotUtterance { utterance: u32, text: String, heard: String, cut: bool, played_ms: u64 },
    Mark { name: String, played: bool },
    Hold { on: bool },
    Mute { on: bool },
    DriverChanged { driver: String },
    TransferRequested { target: String, target_kind: String },
    TransferFailed { target: String, reason: String },
    ProviderError { provider: String, reason: String },
    Ended { cause: String, duration_ms: u64 },
    /// Kinds the app is not told about (barge_in: `bot.interrupted` says it; warnings).
    #[serde(other)]
    Other,
}

/// Maps a bus event onto the app's event, or `None` when the app is not told about it.
pub fn app_event(ev: &LiveEvent) -> Option<AppEvent> {
    if !ev.kind.starts_with("call.") {
        return None;
    }
    let bus: BusCall = match serde_json::from_value(ev.data.clone()) {
        Ok(b) => b,
        Err(err) => {
            tracing::warn!(kind = %ev.kind, %err, "call event with an unexpected shape; not forwarded");
            return None;
        }
    };
    Some(match bus {
        BusCall::Started { transport, from, to, flow, params } => AppEvent::CallStarted { transport, from, to, flow, params },
        BusCall::SpeechStarted { at_ms } => AppEvent::SpeechStarted { at_ms },
        BusCall::SpeechEnded { at_ms, duration_ms } => AppEvent::SpeechEnded { at_ms, duration_ms },
        BusCall::TranscriptPartial { text } => AppEvent::TranscriptPartial { text },
        // The app drives the bot's side of the conversation: what an agent says is not input.
        BusCall::TranscriptFinal { speaker: Some(s), .. } if s != "caller" => return None,
        BusCall::TranscriptFinal { text, confidence, start_ms, end_ms, .. } => {
            AppEvent::TranscriptFinal { text, confidence, start_ms, end_ms }
        }
        BusCall::Dtmf { digit } => AppEvent::Dtmf { digit },
        BusCall::BotSpeaking { utterance, text } => AppEvent::BotSpeaking { utterance, text },
        BusCall::BotUtterance { utterance, text, heard, cut: true, played_ms } => {
            AppEvent::BotInterrupted { utterance, text, heard, played_ms }
        }
        BusCall::BotUtterance { utterance, text, cut: false, played_ms, .. } => {
            AppEvent::BotFinished { utterance, text, played_ms }
        }
        BusCall::Mark { name, played } => AppEvent::PlayoutMark { name, played },
        BusCall::Hold { on } => AppEvent::Hold { on },
        BusCall::Mute { on } => AppEvent::Mute { on },
        BusCall::DriverChanged { driver } => AppEvent::DriverChanged { driver },
        BusCall::TransferRequested { target, target_kind } => AppEvent::TransferRequested { target, target_kind },
        BusCall::TransferFailed { target, reason } => AppEvent::TransferFailed { target, reason },
        BusCall::ProviderError { provider, reason } => AppEvent::ProviderError { provider, reason },
        BusCall::Ended { cause, duration_ms } => AppEvent::CallEnded { cause, duration_ms },
        BusCall::Other => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{CallEvent, EndCause};
    use serde_json::json;

    fn err(text: &str) -> ParseError {
        parse(text).expect_err(text)
    }

    #[test]
    fn commands_parse_into_types() {
        let m = parse(r#"{"type":"say","action_id":"a1","call_id":"c1","text":"Hi","barge_in":false}"#).unwrap();
        assert_eq!(
            m,
            ClientMsg::Command {
                action_id: "a1".into(),
                call_id: CallId("c1".into()),
                command: Command::Say { text: "Hi".into(), barge_in: false }
            }
        );
        let m = parse(r#"{"type":"gather","action_id":"a","call_id":"c","timeout_ms":5000}"#).unwrap();
        assert!(matches!(m, ClientMsg::Command { command: Command::Gather { dtmf: true, timeout_ms: 5000 }, .. }));
        let m = parse(r#"{"type":"transfer","action_id":"a","call_id":"c","number":"+15550001"}"#).unwrap();
        assert!(matches!(m, ClientMsg::Command { command: Command::Transfer(TransferTo::Number(_)), .. }));
        assert_eq!(
            parse(r#"{"type":"attach","call_id":"c","since":7}"#).unwrap(),
            ClientMsg::Attach { action_id: None, target: Target::Call(CallId("c".into())), since: Some(7) }
        );
        assert_eq!(parse(r#"{"type":"detach","all":true}"#).unwrap(), ClientMsg::Detach { action_id: None, target: Target::All });
        for t in ["clear", "hold", "unhold", "mute", "unmute", "hangup"] {
            let m = parse(&json!({"type": t, "action_id": "x", "call_id": "c"}).to_string()).unwrap();
            assert!(matches!(m, ClientMsg::Command { command, .. } if command.name() == t));
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(err("nope").code, ErrorCode::InvalidJson);
        assert_eq!(err("[1]").code, ErrorCode::InvalidJson);
        assert_eq!(err(r#"{"action_id":"a"}"#).field.as_deref(), Some("type"));
        let e = err(r#"{"type":"dance","action_id":"a7"}"#);
        assert_eq!((e.field.as_deref(), e.action_id.as_deref()), (Some("type"), Some("a7")));
        let e = err(r#"{"type":"say","action_id":"a","call_id":"c"}"#);
        assert_eq!((e.code, e.field.as_deref()), (ErrorCode::InvalidCommand, Some("text")));
        assert_eq!(err(r#"{"type":"say","action_id":"a","call_id":"c","text":5}"#).field.as_deref(), Some("text"));
        assert_eq!(err(r#"{"type":"say","action_id":"a","call_id":"c","text":"x","loud":1}"#).field.as_deref(), Some("loud"));
        assert_eq!(err(r#"{"type":"say","call_id":"c","text":"x"}"#).field.as_deref(), Some("action_id"));
        assert_eq!(err(r#"{"type":"say","action_id":"a","text":"x"}"#).field.as_deref(), Some("call_id"));
        assert_eq!(err(r#"{"type":"say","action_id":"a","call_id":"c","text":"x","voice":"v"}"#).code, ErrorCode::Unsupported);
        assert_eq!(err(r#"{"type":"gather","action_id":"a","call_id":"c","timeout_ms":0}"#).field.as_deref(), Some("timeout_ms"));
        assert_eq!(err(r#"{"type":"transfer","action_id":"a","call_id":"c","agent":"x","number":"1"}"#).field.as_deref(), Some("number"));
        assert_eq!(err(r#"{"type":"attach"}"#).field.as_deref(), Some("call_id"));
        assert_eq!(err(r#"{"type":"attach","all":true,"since":3}"#).field.as_deref(), Some("since"));
        assert_eq!(err(r#"{"type":"hold","action_id":"a","call_id":"c","x":1}"#).field.as_deref(), Some("x"));
    }

    fn live(event: &CallEvent) -> LiveEvent {
        LiveEvent {
            seq: 1,
            at: 0,
            kind: format!("call.{}", event.kind()),
            call_id: Some(CallId("c".into())),
            department: None,
            data: event.to_value(),
        }
    }

    #[test]
    fn bus_events_map_onto_app_names() {
        let cut = CallEvent::BotUtterance { utterance: 2, text: "Hello there".into(), heard: "Hello".into(), cut: true, played_ms: 400 };
        assert_eq!(
            app_event(&live(&cut)),
            Some(AppEvent::BotInterrupted { utterance: 2, text: "Hello there".into(), heard: "Hello".into(), played_ms: 400 })
        );
        let fin = CallEvent::TranscriptFinal { text: "billing".into(), confidence: 0.5, start_ms: 1, end_ms: 2, speaker: "caller" };
        let agent = CallEvent::TranscriptFinal { text: "hello".into(), confidence: 0.5, start_ms: 1, end_ms: 2, speaker: "agent" };
        assert_eq!(app_event(&live(&agent)), None, "an agent's words are not the caller's");
        let json = serde_json::to_value(ServerMsg::Event {
            seq: 9,
            at: 0,
            call_id: CallId("c".into()),
            event: app_event(&live(&fin)).unwrap(),
        })
        .unwrap();
        assert_eq!(json["type"], "event");
        assert_eq!(json["event"], "transcript.final");
        assert_eq!(json["text"], "billing");
        assert_eq!(json["seq"], 9);
        let ended = CallEvent::Ended { cause: EndCause::CallerHangup, duration_ms: 5 };
        assert_eq!(app_event(&live(&ended)), Some(AppEvent::CallEnded { cause: "caller_hangup".into(), duration_ms: 5 }));
        assert_eq!(app_event(&live(&CallEvent::Dtmf { digit: '4' })), Some(AppEvent::Dtmf { digit: "4".into() }));
        assert_eq!(app_event(&live(&CallEvent::BargeIn { utterance: 1, at_ms: 3 })), None);
        let params = BTreeMap::from([("FirstName".to_string(), "Jane".to_string())]);
        let started = CallEvent::Started { transport: "twilio", from: Some("+1".into()), to: None, flow: None, params };
        assert!(matches!(app_event(&live(&started)), Some(AppEvent::CallStarted { params, .. }) if params["FirstName"] == "Jane"));
    }

    #[test]
    fn the_schema_lists_every_message_type_and_event() {
        let schema: Value = serde_json::from_str(include_str!("../../../config/app-websocket.schema.json"))
            .expect("the shipped schema is JSON");
        let text = schema.to_string();
        for t in CLIENT_TYPES {
            assert!(text.contains(&format!("\"const\":\"{t}\"")), "schema lacks client type {t}");
        }
        for t in ["hello", "attached", "detached", "event", "ack", "failed", "error", "gather_timeout", "lagged", "history_truncated"] {
            assert!(text.contains(&format!("\"const\":\"{t}\"")), "schema lacks server type {t}");
        }
        for e in [
            "call.started", "speech.started", "speech.ended", "transcript.partial", "transcript.final", "dtmf",
            "bot.speaking", "bot.finished", "bot.interrupted", "playout.mark", "call.hold", "call.mute", "call.driver",
            "transfer.requested", "transfer.failed", "provider.error", "call.ended",
        ] {
            assert!(text.contains(&format!("\"const\":\"{e}\"")), "schema lacks event {e}");
        }
    }
}
