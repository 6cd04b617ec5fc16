//! `GET /ws/events`: the live event stream (calls, queues, agents, transfers) of one tenant.
//!
//! Server -> client: `hello`, then `history_truncated` when `since` is older than what is
//! kept, then `event`s (missed ones first, oldest first, then live; never out of order, never
//! twice), and `lagged` when this client fell behind and events were dropped for it.
//! Client -> server: `subscribe` replaces the filters; anything else gets an `error`.
//!
//! An agent key sees only its own agent's `agent.*` events and the events of the calls offered
//! to that agent (its current call, and each call its own `agent.status` events name).

use std::collections::VecDeque;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use crate::app::AppState;
use crate::error::AppError;
use crate::center::AgentId;
use crate::http::auth::{bearer, Principal};
use crate::ids::{CallId, TenantId};
use crate::monitor::bus::LiveEvent;
use crate::monitor::EventBus;

#[derive(Debug, Deserialize)]
pub struct ConnectParams {
    pub since: Option<u64>,
    pub kinds: Option<String>,
    pub calls: Option<String>,
    pub departments: Option<String>,
    /// For browsers, which cannot set headers on a WebSocket.
    pub api_key: Option<String>,
}

/// Which events a client wants. Empty lists match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub kinds: Vec<String>,
    #[serde(default)]
    pub calls: Vec<String>,
    #[serde(default)]
    pub departments: Vec<String>,
}

impl Filter {
    fn from_params(p: &ConnectParams) -> Self {
        let split = |s: &Option<String>| -> Vec<String> {
            s.as_deref().map(|s| s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect()).unwrap_or_default()
        };
        Self { kinds: split(&p.kinds), calls: split(&p.calls), departments: split(&p.departments) }
    }

    pub fn matches(&self, ev: &LiveEvent) -> bool {
        let kind_ok = self.kinds.is_empty()
            || self.kinds.iter().any(|k| match k.strip_suffix(".*") {
                Some(prefix) => ev.kind.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('.')),
                None => k == &ev.kind || k == "*",
            });
        let call_ok = self.calls.is_empty() || ev.call_id.as_ref().is_some_and(|c| self.calls.iter().any(|x| x == c.as_str()));
        let dep_ok = self.departments.is_empty() || ev.department.as_ref().is_some_and(|d| self.departments.contains(d));
        kind_ok && call_ok && dep_ok
    }
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerMsg<'a> {
    Hello { last_seq: u64 },
    HistoryTruncated { oldest_seq: u64 },
    Event {
        seq: u64,
        at: i64,
        kind: &'a str,
        call_id: Option<&'a CallId>,
        department: Option<&'a str>,
        data: &'a serde_json::Value,
    },
    Lagged { missed: u64 },
    Error { message: String },
}

impl ServerMsg<'_> {
    fn text(&self) -> String {
        serde_json::to_string(self).expect("server messages are plain data")
    }
}

fn event_msg(ev: &LiveEvent) -> ServerMsg<'_> {
    ServerMsg::Event {
        seq: ev.seq,
        at: ev.at,
        kind: &ev.kind,
        call_id: ev.call_id.as_ref(),
        department: ev.department.as_deref(),
        data: &ev.data,
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMsg {
    Subscribe {
        #[serde(default)]
        kinds: Vec<String>,
        #[serde(default)]
        calls: Vec<String>,
        #[serde(default)]
        departments: Vec<String>,
    },
}

pub async fn events_ws(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<ConnectParams>,
    ws: WebSocketUpgrade,
) -> Result<Response, AppError> {
    let key = bearer(&headers).or(params.api_key.as_deref()).ok_or(AppError::Unauthorized)?;
    let principal = Principal::from_key(&state, key).await?;
    let scope = match &principal.agent {
        None => None,
        Some(agent) => {
            let current = state.store.get_agent(&principal.tenant.id, agent).await?.current_call_id;
            Some(AgentScope::new(agent.clone(), current))
        }
    };
    let tenant = principal.tenant;
    let filter = Filter::from_params(&params);
    let bus = state.events.clone();
    let shutdown = state.shutdown.token.clone();
    Ok(ws.on_upgrade(move |socket| async move {
        let (sink, stream) = socket.split();
        let sink = sink.with(|text: String| async move { Ok::<_, axum::Error>(Message::Text(text.into())) });
        let stream = stream.filter_map(|m| async move {
            match m {
                Ok(Message::Text(t)) => Some(Incoming::Text(t.to_string())),
                Ok(Message::Binary(_)) => Some(Incoming::Text(String::new())),
                Ok(Message::Close(_)) | Err(_) => Some(Incoming::Closed),
                Ok(_) => None,
            }
        });
        tokio::select! {
            () = serve(bus, tenant.id, params.since, filter, scope, Box::pin(sink), Box::pin(stream)) => {}
            () = shutdown.cancelled() => {}
        }
    }))
}

/// A client frame, as far as this protocol cares.
#[derive(Debug)]
pub enum Incoming {
    Text(String),
    Closed,
}

/// What an agent key's session may see: its agent's own events, and the events of the calls
/// offered to it, learnt from those events as they pass.
#[derive(Debug, Clone)]
pub struct AgentScope {
    agent: AgentId,
    /// The most recent calls, newest last; older ones are long over.
    calls: VecDeque<CallId>,
}

/// Calls an agent session keeps following.
const AGENT_SCOPE_CALLS: usize = 16;

impl AgentScope {
    pub fn new(agent: AgentId, current_call: Option<CallId>) -> Self {
        let mut scope = Self { agent, calls: VecDeque::new() };
        if let Some(call) = current_call {
            scope.follow(call.as_str());
        }
        scope
    }

    fn follow(&mut self, call: &str) {
        if self.calls.iter().any(|c| c.as_str() == call) {
            return;
        }
        if self.calls.len() == AGENT_SCOPE_CALLS {
            self.calls.pop_front();
        }
        self.calls.push_back(CallId(call.to_string()));
    }

    fn admits(&mut self, ev: &LiveEvent) -> bool {
        if ev.kind.starts_with("agent.") {
            let about = ev.data.get("agent_id").or_else(|| ev.data.get("id")).and_then(serde_json::Value::as_str);
            if about != Some(self.agent.as_str()) {
                return false;
            }
            let named = ev.data.get("call_id").and_then(serde_json::Value::as_str);
            for call in [ev.call_id.as_ref().map(CallId::as_str), named].into_iter().flatten() {
                self.follow(call);
            }
            return true;
        }
        ev.call_id.as_ref().is_some_and(|c| self.calls.contains(c))
    }
}

/// Runs one session over any text sink and frame stream (tests drive it with channels).
pub async fn serve<Tx, Rx>(
    bus: EventBus,
    tenant: TenantId,
    since: Option<u64>,
    mut filter: Filter,
    mut scope: Option<AgentScope>,
    mut tx: Tx,
    mut rx: Rx,
) where
    Tx: Sink<String> + Unpin,
    Rx: Stream<Item = Incoming> + Unpin,
{
    let mut sub = bus.subscribe(&tenant, since);
    let last_seq = sub.missed.last().map_or(0, |e| e.seq).max(bus.last_seq(&tenant));
    if tx.send(ServerMsg::Hello { last_seq }.text()).await.is_err() {
        return;
    }
    if sub.history_truncated {
        let oldest_seq = sub.missed.first().map_or(last_seq + 1, |e| e.seq);
        if tx.send(ServerMsg::HistoryTruncated { oldest_seq }.text()).await.is_err() {
            return;
        }
    }
    let mut sent: u64 = since.unwrap_or(0);
    for ev in std::mem::take(&mut sub.missed) {
        if !send_event(&mut tx, &filter, scope.as_mut(), &ev, &mut sent).await {
            return;
        }
    }
    loop {
        tokio::select! {
            live = sub.live.recv() => match live {
                Ok(ev) => {
                    if !send_event(&mut tx, &filter, scope.as_mut(), &ev, &mut sent).await {
                        return;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    if tx.send(ServerMsg::Lagged { missed }.text()).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            },
            frame = rx.next() => match frame {
                Some(Incoming::Text(text)) => match serde_json::from_str::<ClientMsg>(&text) {
                    Ok(ClientMsg::Subscribe { kinds, calls, departments }) => filter = Filter { kinds, calls, departments },
                    Err(err) => {
                        let message = format!("cannot parse message: {err}");
                        if tx.send(ServerMsg::Error { message }.text()).await.is_err() {
                            return;
                        }
                    }
                },
                Some(Incoming::Closed) | None => return,
            },
        }
    }
}

/// Sends `ev` if it matches and is newer than everything sent; `false` when the client is gone.
async fn send_event<Tx: Sink<String> + Unpin>(
    tx: &mut Tx,
    filter: &Filter,
    scope: Option<&mut AgentScope>,
    ev: &Arc<LiveEvent>,
    sent: &mut u64,
) -> bool {
    if ev.seq <= *sent {
        return true;
    }
    *sent = ev.seq;
    // The scope sees every event, so it learns of offered calls even when the filter skips them.
    if scope.is_some_and(|s| !s.admits(ev)) || !filter.matches(ev) {
        return true;
    }
    tx.send(event_msg(ev).text()).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use tokio::sync::mpsc;

    type Out = mpsc::Receiver<String>;

    /// A session over channels: what it sends arrives on `Out`, what is pushed to the sender
    /// reaches it as client frames.
    fn session(bus: &EventBus, t: &TenantId, since: Option<u64>) -> (Out, mpsc::Sender<Incoming>, tokio::task::JoinHandle<()>) {
        let (out_tx, out) = mpsc::channel::<String>(64);
        let (in_tx, in_rx) = mpsc::channel::<Incoming>(8);
        let sink = Box::pin(futures_util::sink::unfold(out_tx, |tx, s: String| async move {
            tx.send(s).await.map_err(|_| ())?;
            Ok::<_, ()>(tx)
        }));
        let stream = Box::pin(futures_util::stream::unfold(in_rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) }));
        let task = tokio::spawn(serve(bus.clone(), t.clone(), since, Filter::default(), None, sink, stream));
        (out, in_tx, task)
    }

    fn ev(kind: &str, call: Option<&str>, dep: Option<&str>) -> LiveEvent {
        LiveEvent {
            seq: 1,
            at: 0,
            kind: kind.into(),
            call_id: call.map(|c| CallId(c.into())),
            department: dep.map(str::to_string),
            data: json!({}),
        }
    }

    #[test]
    fn an_agent_scope_admits_its_own_agent_and_the_calls_offered_to_it() {
        let mut scope = AgentScope::new(AgentId("ana".into()), Some(CallId("c_now".into())));
        let with = |kind: &str, call: Option<&str>, data: serde_json::Value| LiveEvent { data, ..ev(kind, call, None) };
        assert!(scope.admits(&ev("call.transcript_final", Some("c_now"), None)), "the current call");
        assert!(!scope.admits(&ev("call.started", Some("c_new"), None)), "not offered yet");
        assert!(!scope.admits(&with("agent.status", None, json!({ "agent_id": "bo", "status": "offered", "call_id": "c_bo" }))));
        assert!(!scope.admits(&ev("call.started", Some("c_bo"), None)), "bo's offer taught nothing");
        assert!(scope.admits(&with("agent.status", None, json!({ "agent_id": "ana", "status": "offered", "call_id": "c_new" }))));
        assert!(scope.admits(&ev("call.participant_joined", Some("c_new"), None)));
        assert!(scope.admits(&with("agent.updated", None, json!({ "id": "ana", "name": "Ana" }))));
        assert!(!scope.admits(&with("agent.updated", None, json!({ "id": "bo" }))));
        assert!(!scope.admits(&ev("queue.updated", None, Some("support"))), "queues are the tenant's");
        assert!(!scope.admits(&ev("alert.raised", None, None)));
        // Only the latest calls are followed.
        for n in 0..AGENT_SCOPE_CALLS {
            scope.admits(&with("agent.status", None, json!({ "agent_id": "ana", "status": "offered", "call_id": format!("c{n}") })));
        }
        assert!(!scope.admits(&ev("call.ended", Some("c_now"), None)), "long gone");
        assert!(scope.admits(&ev("call.ended", Some("c0"), None)));
    }

    #[test]
    fn filters_match_kinds_prefixes_calls_and_departments() {
        let f = Filter { kinds: vec!["call.started".into(), "queue.*".into()], ..Filter::default() };
        assert!(f.matches(&ev("call.started", None, None)));
        assert!(f.matches(&ev("queue.joined", None, None)));
        assert!(!f.matches(&ev("queuex.joined", None, None)));
        assert!(!f.matches(&ev("call.ended", None, None)));
        let f = Filter { calls: vec!["c1".into()], departments: vec!["sales".into()], ..Filter::default() };
        assert!(f.matches(&ev("x", Some("c1"), Some("sales"))));
        assert!(!f.matches(&ev("x", Some("c2"), Some("sales"))));
        assert!(!f.matches(&ev("x", Some("c1"), None)));
    }

    #[tokio::test]
    async fn resume_then_live_then_resubscribe_and_errors() {
        let bus = EventBus::new(100, 16);
        let t = TenantId("t".into());
        for k in ["call.started", "queue.joined", "call.ended"] {
            bus.publish(&t, k, None, None, json!({}));
        }
        let (mut out, in_tx, task) = session(&bus, &t, Some(1));
        let mut recv = async || -> Value { serde_json::from_str(&out.recv().await.unwrap()).unwrap() };
        assert_eq!(recv().await, json!({"type": "hello", "last_seq": 3}));
        let e2 = recv().await;
        assert_eq!((e2["type"].as_str(), e2["seq"].as_u64(), e2["department"].clone()), (Some("event"), Some(2), Value::Null));
        assert_eq!(recv().await["seq"], 3);
        bus.publish(&t, "call.started", None, None, json!({}));
        assert_eq!(recv().await["seq"], 4);
        in_tx.try_send(Incoming::Text("nonsense".into())).unwrap();
        assert_eq!(recv().await["type"], "error");
        in_tx.try_send(Incoming::Text(r#"{"type":"subscribe","kinds":["queue.*"]}"#.into())).unwrap();
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        bus.publish(&t, "call.started", None, None, json!({}));
        bus.publish(&t, "queue.left", None, None, json!({}));
        let e = recv().await;
        assert_eq!((e["kind"].as_str(), e["seq"].as_u64()), (Some("queue.left"), Some(6)));
        in_tx.try_send(Incoming::Closed).unwrap();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn old_since_reports_truncation() {
        let bus = EventBus::new(2, 16);
        let t = TenantId("t".into());
        for _ in 0..5 {
            bus.publish(&t, "k", None, None, json!({}));
        }
        let (mut out, _in_tx, _task) = session(&bus, &t, Some(0));
        let mut msgs = Vec::new();
        for _ in 0..4 {
            msgs.push(serde_json::from_str::<Value>(&out.recv().await.unwrap()).unwrap());
        }
        assert_eq!(msgs[0]["type"], "hello");
        assert_eq!(msgs[1], json!({"type": "history_truncated", "oldest_seq": 4}));
        assert_eq!((msgs[2]["seq"].as_u64(), msgs[3]["seq"].as_u64()), (Some(4), Some(5)));
    }
}
