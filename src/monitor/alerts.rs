//! Live alerts: rules evaluated over a tenant's event stream (calls, queues, agents) plus a
//! periodic tick for the rules that fire on time passing.
//!
//! [`Rules`] is sans-IO: it is fed events and clock readings and answers with [`Action`]s
//! (raise / resolve). The evaluator task ([`evaluator`]) owns the I/O: it subscribes to the
//! bus per tenant, stores alerts (the database enforces one active alert per subject and
//! kind) and publishes `alert.raised` / `alert.resolved`.

pub mod evaluator;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::ids::CallId;
use crate::monitor::LiveEvent;

pub use evaluator::{spawn_evaluator, AlertService};

/// An alert's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct AlertId(pub String);

impl AlertId {
    /// A new time-ordered id.
    pub fn generate() -> Self {
        Self(format!("alr_{}", uuid::Uuid::now_v7().simple()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AlertId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a rule watches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Nobody (caller or bot) has spoken on an active call for too long.
    DeadAir,
    /// A caller has waited in a department's queue beyond its service-level target.
    LongQueueWait,
    /// The caller asked for a human (or an agent, an operator, a representative).
    HumanRequested,
    /// The caller keeps interrupting the bot: it is probably not understanding them.
    RepeatedBargeIn,
    /// An agent has been in wrap-up for too long.
    LongWrapUp,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeadAir => "dead_air",
            Self::LongQueueWait => "long_queue_wait",
            Self::HumanRequested => "human_requested",
            Self::RepeatedBargeIn => "repeated_barge_in",
            Self::LongWrapUp => "long_wrap_up",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "dead_air" => Self::DeadAir,
            "long_queue_wait" => Self::LongQueueWait,
            "human_requested" => Self::HumanRequested,
            "repeated_barge_in" => Self::RepeatedBargeIn,
            "long_wrap_up" => Self::LongWrapUp,
            _ => return None,
        })
    }
}

/// Ordered: `Critical` is the most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "info" => Self::Info,
            "warning" => Self::Warning,
            "critical" => Self::Critical,
            _ => return None,
        })
    }
}

/// What an alert is about: at most one active alert per subject and kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Subject {
    Call(String),
    /// A department, by name (the name events carry).
    Department(String),
    Agent(String),
}

impl Subject {
    pub fn kind_str(&self) -> &'static str {
        match self {
            Self::Call(_) => "call",
            Self::Department(_) => "department",
            Self::Agent(_) => "agent",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Self::Call(s) | Self::Department(s) | Self::Agent(s) => s,
        }
    }

    pub fn from_parts(kind: &str, id: String) -> Option<Self> {
        Some(match kind {
            "call" => Self::Call(id),
            "department" => Self::Department(id),
            "agent" => Self::Agent(id),
            _ => return None,
        })
    }
}

/// A stored alert, as the API and `alert.*` events show it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Alert {
    pub id: AlertId,
    pub kind: AlertKind,
    pub severity: Severity,
    pub subject: Subject,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub call_id: Option<CallId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    pub message: String,
    #[schema(value_type = Object)]
    pub data: Value,
    /// Unix milliseconds.
    pub raised_at: i64,
    pub resolved_at: Option<i64>,
    /// `system` when the condition cleared by itself, else who resolved it.
    pub resolved_by: Option<String>,
    /// Why it was resolved: `caller_spoke`, `bot_spoke`, `call_ended`, `answered`, `supervisor`, ...
    pub resolution: Option<String>,
}

/// Rule thresholds (`[alerts]` in the configuration).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Evaluate rules at all.
    pub enabled: bool,
    /// No speech from anyone on an active call for this long.
    #[serde(with = "humantime_serde")]
    pub dead_air: Duration,
    /// Dead air this long is critical rather than a warning.
    #[serde(with = "humantime_serde")]
    pub dead_air_critical: Duration,
    /// Queue waits beyond a department's service-level target, when the department has none.
    #[serde(with = "humantime_serde")]
    pub queue_wait_default: Duration,
    /// Words in a final transcript that count as asking for a human.
    pub human_words: Vec<String>,
    /// How many such requests on one call raise the alert (1: the first).
    pub human_requests: u32,
    /// `barge_ins` barge-ins within `barge_in_window` raise the alert.
    pub barge_ins: u32,
    #[serde(with = "humantime_serde")]
    pub barge_in_window: Duration,
    /// An agent in wrap-up for longer than this.
    #[serde(with = "humantime_serde")]
    pub wrap_up: Duration,
    /// How often time-based rules are checked.
    #[serde(with = "humantime_serde")]
    pub tick: Duration,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dead_air: Duration::from_secs(10),
            dead_air_critical: Duration::from_secs(30),
            queue_wait_default: Duration::from_secs(60),
            human_words: ["human", "agent", "operator", "representative", "person"].map(String::from).to_vec(),
            human_requests: 1,
            barge_ins: 3,
            barge_in_window: Duration::from_secs(30),
            wrap_up: Duration::from_secs(120),
            tick: Duration::from_millis(250),
        }
    }
}

/// What the rules decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Raise {
        kind: AlertKind,
        severity: Severity,
        subject: Subject,
        call_id: Option<CallId>,
        department: Option<String>,
        message: String,
        data: Value,
    },
    Resolve { kind: AlertKind, subject: Subject, reason: &'static str },
}

/// What the rules know of one live call.
#[derive(Debug, Default)]
struct CallState {
    caller_speaking: bool,
    bot_speaking: bool,
    agent_speaking: bool,
    on_hold: bool,
    /// The last moment someone spoke or stopped speaking (ms, the rules' clock).
    last_activity: u64,
    /// The severity the current silence was raised at, if it was.
    dead_air_level: Option<Severity>,
    human_requests: u32,
    barge_ins: VecDeque<u64>,
}

/// A caller waiting in a queue.
#[derive(Debug)]
struct Waiter {
    department: String,
    since: u64,
    target_ms: u64,
}

/// The rules for one tenant. Times are milliseconds on any monotonic clock the caller picks.
#[derive(Debug)]
pub struct Rules {
    config: AlertsConfig,
    calls: HashMap<CallId, CallState>,
    waiters: HashMap<CallId, Waiter>,
    wrap_up: HashMap<String, u64>,
    /// Service-level targets by department name, filled by the evaluator from the store.
    targets: HashMap<String, Duration>,
    /// Alerts these rules raised and have not resolved: never raised twice.
    active: HashSet<(AlertKind, Subject)>,
    human_words: Vec<String>,
}

impl Rules {
    pub fn new(config: AlertsConfig) -> Self {
        let human_words = config.human_words.iter().map(|w| w.to_lowercase()).collect();
        Self {
            config,
            calls: HashMap::new(),
            waiters: HashMap::new(),
            wrap_up: HashMap::new(),
            targets: HashMap::new(),
            active: HashSet::new(),
            human_words,
        }
    }

    /// A department's service-level target (the evaluator looks it up before a `queue.joined`).
    pub fn set_target(&mut self, department: &str, target: Duration) {
        self.targets.insert(department.to_string(), target);
    }

    pub fn knows_target(&self, department: &str) -> bool {
        self.targets.contains_key(department)
    }

    /// Whether these rules raised this alert and its condition has not cleared yet (a
    /// supervisor resolving it does not clear it: it is not raised again until it recurs).
    pub fn is_active(&self, kind: AlertKind, subject: &Subject) -> bool {
        self.active.contains(&(kind, subject.clone()))
    }

    fn raise(&mut self, out: &mut Vec<Action>, action: Action) {
        if let Action::Raise { kind, subject, .. } = &action
            && !self.active.insert((*kind, subject.clone()))
        {
            return;
        }
        out.push(action);
    }

    fn resolve(&mut self, out: &mut Vec<Action>, kind: AlertKind, subject: Subject, reason: &'static str) {
        if self.active.remove(&(kind, subject.clone())) {
            out.push(Action::Resolve { kind, subject, reason });
        }
    }

    /// Feeds one event; `now` is the rules' clock.
    pub fn on_event(&mut self, event: &LiveEvent, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        let kind = event.kind.as_str();
        if let Some(call) = &event.call_id {
            self.on_call_event(kind, call, event, now, &mut out);
        }
        if kind == "agent.status"
            && let Some(agent) = event.data["agent_id"].as_str()
        {
            let subject = Subject::Agent(agent.to_string());
            if event.data["status"] == "wrap_up" {
                self.wrap_up.entry(agent.to_string()).or_insert(now);
            } else if self.wrap_up.remove(agent).is_some() {
                self.resolve(&mut out, AlertKind::LongWrapUp, subject, "status_changed");
            }
        }
        out
    }

    fn on_call_event(&mut self, kind: &str, call: &CallId, event: &LiveEvent, now: u64, out: &mut Vec<Action>) {
        let subject = Subject::Call(call.0.clone());
        match kind {
            "call.started" => {
                self.calls.insert(call.clone(), CallState { last_activity: now, ..CallState::default() });
            }
            "call.ended" => {
                self.calls.remove(call);
                for k in [AlertKind::DeadAir, AlertKind::HumanRequested, AlertKind::RepeatedBargeIn] {
                    self.resolve(out, k, subject.clone(), "call_ended");
                }
                self.leave_queue(call, out, "call_ended");
            }
            "queue.joined" => {
                if let Some(dept) = &event.department {
                    let target = self.targets.get(dept).copied().unwrap_or(self.config.queue_wait_default);
                    self.waiters.insert(
                        call.clone(),
                        Waiter { department: dept.clone(), since: now, target_ms: target.as_millis() as u64 },
                    );
                }
            }
            "queue.answered" => {
                self.leave_queue(call, out, "answered");
                self.resolve(out, AlertKind::HumanRequested, subject.clone(), "answered");
            }
            "queue.abandoned" => self.leave_queue(call, out, "abandoned"),
            "queue.overflow" => self.leave_queue(call, out, "overflow"),
            "call.transfer_requested" => self.resolve(out, AlertKind::HumanRequested, subject.clone(), "transferred"),
            _ => {}
        }
        // A call whose `started` came before the evaluator: tracked from its first event on.
        if kind == "call.ended" || !kind.starts_with("call.") {
            return;
        }
        let state = self.calls.entry(call.clone()).or_insert_with(|| CallState { last_activity: now, ..CallState::default() });
        let mut speech_resumed = false;
        let mut pending = None;
        match kind {
            "call.speech_started" => {
                state.caller_speaking = true;
                speech_resumed = true;
            }
            "call.speech_ended" => state.caller_speaking = false,
            "call.bot_speaking" => {
                state.bot_speaking = true;
                speech_resumed = true;
            }
            "call.bot_utterance" => state.bot_speaking = false,
            "call.agent_speech_started" => {
                state.agent_speaking = true;
                speech_resumed = true;
            }
            "call.agent_speech_ended" => state.agent_speaking = false,
            "call.hold" => state.on_hold = event.data["on"].as_bool().unwrap_or(false),
            "call.barge_in" => {
                state.barge_ins.push_back(now);
                let window = self.config.barge_in_window.as_millis() as u64;
                while state.barge_ins.front().is_some_and(|&t| now.saturating_sub(t) > window) {
                    state.barge_ins.pop_front();
                }
                let count = state.barge_ins.len() as u32;
                if self.config.barge_ins > 0 && count >= self.config.barge_ins {
                    let message = format!("{count} barge-ins within {:?}: the bot may not be understanding the caller", self.config.barge_in_window);
                    pending = Some(Action::Raise {
                        kind: AlertKind::RepeatedBargeIn,
                        severity: Severity::Warning,
                        subject: subject.clone(),
                        call_id: Some(call.clone()),
                        department: None,
                        message,
                        data: json!({ "barge_ins": count }),
                    });
                }
            }
            "call.transcript_final" => {
                let text = event.data["text"].as_str().unwrap_or_default().to_lowercase();
                let asked = text
                    .split(|c: char| !c.is_alphanumeric())
                    .any(|w| self.human_words.iter().any(|h| h == w));
                if asked {
                    state.human_requests += 1;
                    let n = state.human_requests;
                    if self.config.human_requests > 0 && n >= self.config.human_requests {
                        let severity = if n > self.config.human_requests { Severity::Critical } else { Severity::Warning };
                        pending = Some(Action::Raise {
                            kind: AlertKind::HumanRequested,
                            severity,
                            subject: subject.clone(),
                            call_id: Some(call.clone()),
                            department: None,
                            message: format!("the caller asked for a human: {text:?}"),
                            data: json!({ "requests": n, "text": text }),
                        });
                    }
                }
            }
            _ => {}
        }
        // Any speech boundary counts as activity (end of speech restarts the silence clock).
        if matches!(
            kind,
            "call.speech_started" | "call.speech_ended" | "call.bot_speaking" | "call.bot_utterance" | "call.hold"
                | "call.agent_speech_started" | "call.agent_speech_ended"
        ) {
            state.last_activity = now;
        }
        let clears_dead_air = speech_resumed || kind == "call.hold";
        if clears_dead_air {
            state.dead_air_level = None;
        }
        if let Some(action) = pending {
            self.raise(out, action);
        }
        if clears_dead_air {
            let reason = match kind {
                "call.speech_started" => "caller_spoke",
                "call.bot_speaking" => "bot_spoke",
                "call.agent_speech_started" => "agent_spoke",
                _ => "on_hold",
            };
            self.resolve(out, AlertKind::DeadAir, subject, reason);
        }
    }

    fn leave_queue(&mut self, call: &CallId, out: &mut Vec<Action>, reason: &'static str) {
        let Some(w) = self.waiters.remove(call) else { return };
        // The department alert clears once nobody there is over target any more (checked at
        // the next tick); a department with no one waiting clears at once.
        if !self.waiters.values().any(|o| o.department == w.department) {
            self.resolve(out, AlertKind::LongQueueWait, Subject::Department(w.department), reason);
        }
    }

    /// Time-based rules: dead air, queue waits, wrap-up, barge-in windows.
    pub fn tick(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        let dead_air = self.config.dead_air.as_millis() as u64;
        let critical = self.config.dead_air_critical.as_millis() as u64;
        let window = self.config.barge_in_window.as_millis() as u64;
        let mut raises = Vec::new();
        let mut clears = Vec::new();
        for (call, s) in &mut self.calls {
            let silent = now.saturating_sub(s.last_activity);
            if !s.caller_speaking && !s.bot_speaking && !s.agent_speaking && !s.on_hold && dead_air > 0 && silent >= dead_air {
                let severity = if critical > dead_air && silent >= critical { Severity::Critical } else { Severity::Warning };
                if s.dead_air_level.is_none() {
                    s.dead_air_level = Some(severity);
                    raises.push(Action::Raise {
                        kind: AlertKind::DeadAir,
                        severity,
                        subject: Subject::Call(call.0.clone()),
                        call_id: Some(call.clone()),
                        department: None,
                        message: format!("no speech on the call for {} ms", silent),
                        data: json!({ "silent_ms": silent }),
                    });
                }
            }
            while s.barge_ins.front().is_some_and(|&t| now.saturating_sub(t) > window) {
                s.barge_ins.pop_front();
            }
            if (s.barge_ins.len() as u32) < self.config.barge_ins {
                clears.push((AlertKind::RepeatedBargeIn, Subject::Call(call.0.clone()), "barge_ins_stopped"));
            }
        }
        // Queue waits: per department, the callers over target.
        let mut over: HashMap<&str, (u32, u64)> = HashMap::new();
        let mut waiting: HashSet<&str> = HashSet::new();
        for w in self.waiters.values() {
            waiting.insert(&w.department);
            let waited = now.saturating_sub(w.since);
            if waited > w.target_ms {
                let e = over.entry(&w.department).or_default();
                e.0 += 1;
                e.1 = e.1.max(waited);
            }
        }
        for (dept, (count, longest)) in &over {
            raises.push(Action::Raise {
                kind: AlertKind::LongQueueWait,
                severity: if *count > 1 { Severity::Critical } else { Severity::Warning },
                subject: Subject::Department(dept.to_string()),
                call_id: None,
                department: Some(dept.to_string()),
                message: format!("{count} caller(s) waiting beyond the service-level target; longest {longest} ms"),
                data: json!({ "over_target": count, "longest_wait_ms": longest }),
            });
        }
        for dept in waiting {
            if !over.contains_key(dept) {
                clears.push((AlertKind::LongQueueWait, Subject::Department(dept.to_string()), "within_target"));
            }
        }
        let wrap = self.config.wrap_up.as_millis() as u64;
        for (agent, since) in &self.wrap_up {
            let spent = now.saturating_sub(*since);
            if wrap > 0 && spent >= wrap {
                raises.push(Action::Raise {
                    kind: AlertKind::LongWrapUp,
                    severity: Severity::Info,
                    subject: Subject::Agent(agent.clone()),
                    call_id: None,
                    department: None,
                    message: format!("agent in wrap-up for {spent} ms"),
                    data: json!({ "wrap_up_ms": spent }),
                });
            }
        }
        for a in raises {
            self.raise(&mut out, a);
        }
        for (k, s, r) in clears {
            self.resolve(&mut out, k, s, r);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, call: Option<&str>, department: Option<&str>, data: Value) -> LiveEvent {
        LiveEvent {
            seq: 0,
            at: 0,
            kind: kind.into(),
            call_id: call.map(|c| CallId(c.into())),
            department: department.map(String::from),
            data,
        }
    }

    fn config() -> AlertsConfig {
        AlertsConfig {
            dead_air: Duration::from_millis(1000),
            dead_air_critical: Duration::from_millis(5000),
            barge_ins: 2,
            barge_in_window: Duration::from_millis(1000),
            wrap_up: Duration::from_millis(500),
            ..AlertsConfig::default()
        }
    }

    fn kinds(actions: &[Action]) -> Vec<(&'static str, AlertKind)> {
        actions
            .iter()
            .map(|a| match a {
                Action::Raise { kind, .. } => ("raise", *kind),
                Action::Resolve { kind, .. } => ("resolve", *kind),
            })
            .collect()
    }

    #[test]
    fn dead_air_raises_once_and_clears_when_speech_resumes() {
        let mut r = Rules::new(config());
        r.on_event(&ev("call.started", Some("c1"), None, json!({})), 0);
        assert!(r.tick(900).is_empty());
        assert_eq!(kinds(&r.tick(1000)), vec![("raise", AlertKind::DeadAir)]);
        assert!(r.tick(2000).is_empty(), "raised once");
        let a = r.on_event(&ev("call.speech_started", Some("c1"), None, json!({})), 2100);
        assert_eq!(a, vec![Action::Resolve { kind: AlertKind::DeadAir, subject: Subject::Call("c1".into()), reason: "caller_spoke" }]);
        assert!(r.tick(10_000).is_empty(), "no dead air while the caller is speaking");
        r.on_event(&ev("call.speech_ended", Some("c1"), None, json!({})), 10_000);
        assert!(r.tick(10_500).is_empty());
        assert_eq!(kinds(&r.tick(11_000)), vec![("raise", AlertKind::DeadAir)]);
        assert_eq!(kinds(&r.on_event(&ev("call.ended", Some("c1"), None, json!({})), 11_100)), vec![("resolve", AlertKind::DeadAir)]);
        assert!(r.tick(20_000).is_empty(), "an ended call is forgotten");
    }

    #[test]
    fn an_agent_talking_is_not_dead_air_and_ends_it() {
        let mut r = Rules::new(config());
        r.on_event(&ev("call.started", Some("c"), None, json!({})), 0);
        assert_eq!(kinds(&r.tick(1000)), vec![("raise", AlertKind::DeadAir)]);
        let a = r.on_event(&ev("call.agent_speech_started", Some("c"), None, json!({})), 1100);
        assert_eq!(a, vec![Action::Resolve { kind: AlertKind::DeadAir, subject: Subject::Call("c".into()), reason: "agent_spoke" }]);
        assert!(r.tick(9000).is_empty(), "the agent is still talking");
        r.on_event(&ev("call.agent_speech_ended", Some("c"), None, json!({})), 9000);
        assert_eq!(kinds(&r.tick(10_000)), vec![("raise", AlertKind::DeadAir)]);
    }

    #[test]
    fn bot_speech_and_hold_are_not_dead_air() {
        let mut r = Rules::new(config());
        r.on_event(&ev("call.bot_speaking", Some("c"), None, json!({})), 0);
        assert!(r.tick(5000).is_empty());
        r.on_event(&ev("call.bot_utterance", Some("c"), None, json!({})), 5000);
        r.on_event(&ev("call.hold", Some("c"), None, json!({ "on": true })), 5100);
        assert!(r.tick(60_000).is_empty());
    }

    #[test]
    fn queue_wait_beyond_the_department_target() {
        let mut r = Rules::new(config());
        r.set_target("sales", Duration::from_millis(2000));
        r.on_event(&ev("queue.joined", Some("a"), Some("sales"), json!({})), 0);
        r.on_event(&ev("queue.joined", Some("b"), Some("sales"), json!({})), 1500);
        assert!(r.tick(2000).is_empty());
        let raised = r.tick(2001);
        assert!(matches!(&raised[..], [Action::Raise { kind: AlertKind::LongQueueWait, severity: Severity::Warning, .. }]));
        assert!(r.on_event(&ev("queue.answered", Some("a"), Some("sales"), json!({})), 2100).is_empty(), "b still waits");
        assert_eq!(kinds(&r.tick(2200)), vec![("resolve", AlertKind::LongQueueWait)], "b is within target");
    }

    #[test]
    fn human_requests_barge_ins_and_wrap_up() {
        let mut r = Rules::new(config());
        let t = |text: &str| ev("call.transcript_final", Some("c"), None, json!({ "text": text }));
        assert!(r.on_event(&t("my bill is wrong"), 0).is_empty());
        assert!(r.on_event(&t("agentless words do not count"), 0).is_empty());
        assert_eq!(kinds(&r.on_event(&t("Agent! AGENT!"), 10)), vec![("raise", AlertKind::HumanRequested)]);
        assert!(r.on_event(&t("agent"), 20).is_empty(), "one active alert");
        assert_eq!(kinds(&r.on_event(&ev("queue.answered", Some("c"), None, json!({})), 30)), vec![("resolve", AlertKind::HumanRequested)]);

        let b = ev("call.barge_in", Some("c"), None, json!({}));
        assert!(r.on_event(&b, 100).is_empty());
        assert!(r.on_event(&b, 1200).is_empty(), "the first fell out of the window");
        assert_eq!(kinds(&r.on_event(&b, 1300)), vec![("raise", AlertKind::RepeatedBargeIn)]);
        assert!(kinds(&r.tick(3000)).contains(&("resolve", AlertKind::RepeatedBargeIn)));

        let w = |s: &str| ev("agent.status", None, None, json!({ "agent_id": "agt_1", "status": s }));
        r.on_event(&w("wrap_up"), 0);
        assert!(!kinds(&r.tick(400)).contains(&("raise", AlertKind::LongWrapUp)));
        assert!(kinds(&r.tick(500)).contains(&("raise", AlertKind::LongWrapUp)));
        assert_eq!(kinds(&r.on_event(&w("available"), 600)), vec![("resolve", AlertKind::LongWrapUp)]);
    }
}
