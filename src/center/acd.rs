//! The ACD: one task per server that owns every department's queue in memory and persists
//! each change through a [`CenterRepo`]. Call actors hand calls to it with a non-blocking
//! `try_send`; the REST API talks to it through [`AcdHandle`] (`handle.rs`). Agent availability lives in the
//! database and every offer is a conditional update there, so no agent is offered two calls
//! and no call two agents, whoever else (another node, a concurrent request) is racing.
//!
//! Order: priority (higher first), then arrival. An offer goes to the longest-idle available
//! agent of the department with the entry's skills and language. Phone and SIP agents are
//! dialled at once (the call actor turns `TransferToNumber` into a `<Dial>`); browser agents
//! accept or decline, and an offer not taken within the offer timeout moves on to the next
//! agent while the first goes `away`. Timers use `tokio::time`, so tests can pause the clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::handle::Command;
pub use super::handle::{AcdConfig, AcdError, AcdHandle, Enqueue, WaitingCall};
use super::model::*;
use super::repo::CenterRepo;
use super::control::{CallControl, CallOrder};
use crate::ids::{CallId, TenantId};
use crate::monitor::EventBus;
use crate::store::now_ms;

/// Overflow to another department at most this many times per call (no loops).
const MAX_OVERFLOW_HOPS: u8 = 3;
const DEFAULT_OVERFLOW_MESSAGE: &str =
    "Sorry, no one can take your call right now. Please call again later. Goodbye.";
const DEFAULT_CLOSED_MESSAGE: &str = "Sorry, that department is closed right now. Please call again later. Goodbye.";

struct Offer {
    agent: AgentId,
    /// `None` for agents dialled at once.
    deadline: Option<Instant>,
}

struct Waiting {
    entry: QueueEntry,
    department: Department,
    enqueued: Instant,
    offer: Option<Offer>,
    next_announce: Instant,
    max_wait_at: Instant,
    /// Agents who declined or let the offer time out: not asked again for this entry.
    passed: Vec<AgentId>,
    /// See [`Enqueue::agent`].
    only: Option<AgentId>,
    hops: u8,
}

impl Waiting {
    fn order_key(&self) -> (i64, Instant, EntryId) {
        (-self.entry.priority, self.enqueued, self.entry.id.clone())
    }
}

/// The ACD task; [`Acd::start`] spawns it.
pub struct Acd {
    config: AcdConfig,
    repo: Arc<dyn CenterRepo>,
    calls: Arc<dyn CallControl>,
    events: EventBus,
    /// Per tenant, per department, in queue order.
    queues: HashMap<TenantId, HashMap<DepartmentId, Vec<Waiting>>>,
    rx: mpsc::Receiver<Command>,
}

enum Due {
    OfferTimeout,
    MaxWait,
    Announce,
}

impl Acd {
    pub fn start(
        config: AcdConfig,
        repo: Arc<dyn CenterRepo>,
        calls: Arc<dyn CallControl>,
        events: EventBus,
    ) -> (AcdHandle, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.channel_capacity.max(1));
        let acd = Self { config, repo, calls, events, queues: HashMap::new(), rx };
        let task = tokio::spawn(acd.run());
        (AcdHandle { tx }, task)
    }

    async fn run(mut self) {
        loop {
            let next = self.next_deadline();
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
                () = sleep_until_opt(next) => self.on_timers().await,
            }
        }
        debug!("call distributor stopped");
    }

    async fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Enqueue(request, reply) => {
                let tenant = request.tenant.clone();
                let result = self.enqueue(request, 0).await;
                if let Err(err) = &result {
                    warn!(%err, "cannot queue call");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
                self.dispatch(&tenant).await;
            }
            Command::CallEnded { tenant, call } => self.call_ended(&tenant, &call).await,
            Command::Dispatch { tenant, done } => {
                self.dispatch(&tenant).await;
                let _ = done.send(());
            }
            Command::Accept { tenant, agent, reply } => {
                let _ = reply.send(self.accept(&tenant, &agent).await);
            }
            Command::Decline { tenant, agent, reply } => {
                let result = self.pass_over(&tenant, &agent, AgentStatus::Available).await;
                let _ = reply.send(result);
                self.dispatch(&tenant).await;
            }
            Command::Cancel { tenant, transfer, reply } => {
                let _ = reply.send(self.cancel(&tenant, &transfer).await);
                self.dispatch(&tenant).await;
            }
            Command::Waiting { tenant, reply } => {
                let _ = reply.send(self.waiting_view(&tenant));
            }
        }
    }

    // ---- joining -----------------------------------------------------------------------

    async fn enqueue(&mut self, request: Enqueue, hops: u8) -> Result<EntryId, AcdError> {
        let Enqueue { tenant, call, department, priority, skills, language, transfer, reason, agent: only, release_agent_as } = request;
        if self.find(&tenant, |w| w.entry.call_id == call).is_some() {
            return Err(AcdError::AlreadyQueued(call));
        }
        let dept = self.repo.department_by_name(&tenant, &department).await?;
        // An agent sending the call onward is done with it: they wrap up, and the call can be
        // given to someone else (one agent per call is a database rule).
        if let Some(agent) = self.repo.release_call(&tenant, &call, release_agent_as, now_ms()).await? {
            info!(%call, %agent, status = release_agent_as.as_str(), "agent released from the call");
            self.order(&tenant, &call, CallOrder::ReleaseAgent);
            self.events.publish(&tenant, "agent.status", Some(&call), None, json!({ "agent_id": agent, "status": release_agent_as }));
        }
        let transfer = match transfer {
            Some(t) => t,
            None => {
                let now = now_ms();
                let t = Transfer {
                    id: TransferId::generate(),
                    call_id: call.clone(),
                    target_kind: TransferTargetKind::Department,
                    target: department.clone(),
                    mode: TransferMode::Blind,
                    state: TransferState::Requested,
                    reason: reason.clone(),
                    department_id: dept.as_ref().map(|d| d.id.clone()),
                    agent_id: None,
                    created_at: now,
                    updated_at: now,
                };
                self.repo.create_transfer(&tenant, &t).await?;
                self.publish_transfer(&tenant, &t, Some(&department));
                t.id
            }
        };
        let Some(dept) = dept else {
            self.transfer_state(&tenant, &transfer, &call, TransferState::Failed, Some("unknown department"), None, None)
                .await;
            self.order(&tenant, &call, CallOrder::Say("Sorry, that department is not available.".into()));
            return Err(AcdError::UnknownDepartment(department));
        };
        let now = Instant::now();
        let entry = QueueEntry {
            id: EntryId::generate(),
            department_id: dept.id.clone(),
            call_id: call.clone(),
            priority,
            skills,
            language,
            state: EntryState::Waiting,
            offered_agent_id: None,
            transfer_id: Some(transfer.clone()),
            enqueued_at: now_ms(),
            left_at: None,
            outcome: None,
            wait_ms: None,
        };
        self.repo.save_entry(&tenant, &entry).await?;
        self.transfer_state(&tenant, &transfer, &call, TransferState::Queued, None, None, Some(&dept.name)).await;
        let id = entry.id.clone();
        let max_wait = Duration::from_secs(dept.max_wait_secs.max(0) as u64);
        let waiting = Waiting {
            entry,
            department: dept.clone(),
            enqueued: now,
            offer: None,
            next_announce: now + self.config.announce_interval,
            max_wait_at: now + max_wait,
            passed: Vec::new(),
            only,
            hops,
        };
        let closed = !is_open(&dept);
        let queue = self.queues.entry(tenant.clone()).or_default().entry(dept.id.clone()).or_default();
        let full = queue.len() as i64 >= dept.max_queue;
        queue.push(waiting);
        queue.sort_by_key(Waiting::order_key);
        let position = queue.iter().position(|w| w.entry.id == id).map_or(0, |p| p + 1);
        info!(call = %call, department = %dept.name, position, "call queued");
        self.events.publish(
            &tenant,
            "queue.joined",
            Some(&call),
            Some(&dept.name),
            json!({ "entry_id": id, "department_id": dept.id, "position": position, "priority": priority }),
        );
        if closed || full {
            self.overflow(&tenant, &id, if closed { "closed" } else { "queue_full" }).await;
            return Ok(id);
        }
        self.order(&tenant, &call, CallOrder::Hold(true));
        Ok(id)
    }

    // ---- assignment ----------------------------------------------------------------------

    /// Offers waiting calls to free agents: queue order across departments, longest-idle
    /// matching agent first.
    async fn dispatch(&mut self, tenant: &TenantId) {
        let Some(queues) = self.queues.get(tenant) else { return };
        let mut waiting: Vec<_> = queues
            .values()
            .flatten()
            .filter(|w| w.offer.is_none())
            .map(|w| (w.order_key(), w.entry.id.clone()))
            .collect();
        if waiting.is_empty() {
            return;
        }
        waiting.sort();
        let agents = match self.repo.agents(tenant).await {
            Ok(a) => a,
            Err(err) => {
                warn!(%err, "cannot read agents");
                return;
            }
        };
        let mut free: Vec<Agent> = agents
            .into_iter()
            .filter(|a| a.status == AgentStatus::Available && a.current_call_id.is_none())
            .collect();
        free.sort_by(|a, b| (a.status_since, &a.id).cmp(&(b.status_since, &b.id)));
        for (_, entry_id) in waiting {
            loop {
                let Some(w) = self.find(tenant, |w| w.entry.id == entry_id) else { break };
                let Some(i) = free.iter().position(|a| {
                    a.matches(&w.entry.department_id, &w.entry.skills, w.entry.language.as_deref())
                        && !w.passed.contains(&a.id)
                        && w.only.as_ref().is_none_or(|only| only == &a.id)
                }) else {
                    break;
                };
                let agent = free.remove(i);
                let call = w.entry.call_id.clone();
                match self.repo.offer_agent(tenant, &agent.id, &call, now_ms()).await {
                    Ok(true) => {
                        self.offered(tenant, &entry_id, agent).await;
                        break;
                    }
                    // Taken meanwhile (another node, a status change): try the next agent.
                    Ok(false) => continue,
                    Err(err) => {
                        warn!(%err, "cannot offer call");
                        break;
                    }
                }
            }
        }
    }

    async fn offered(&mut self, tenant: &TenantId, entry_id: &EntryId, agent: Agent) {
        let timeout = self.config.offer_timeout;
        let dial = agent.reach.dial_target().map(str::to_string);
        let Some(w) = self.find_mut(tenant, |w| &w.entry.id == entry_id) else { return };
        w.offer = Some(Offer { agent: agent.id.clone(), deadline: dial.is_none().then(|| Instant::now() + timeout) });
        w.entry.state = EntryState::Offered;
        w.entry.offered_agent_id = Some(agent.id.clone());
        let entry = w.entry.clone();
        let dept = w.department.name.clone();
        self.save(tenant, &entry).await;
        info!(call = %entry.call_id, agent = %agent.id, "call offered");
        self.events.publish(tenant, "agent.status", None, Some(&dept), json!({ "agent_id": agent.id, "status": "offered", "call_id": entry.call_id }));
        self.events.publish(tenant, "queue.offered", Some(&entry.call_id), Some(&dept), json!({ "entry_id": entry.id, "agent_id": agent.id }));
        if let Some(t) = &entry.transfer_id {
            self.transfer_state(tenant, t, &entry.call_id, TransferState::Offered, None, Some(&agent.id), Some(&dept)).await;
        }
        if let Some(target) = dial {
            // Dialled agents: Twilio rings them; the offer is the connection.
            match self.repo.agent_take(tenant, &agent.id, &entry.call_id, now_ms()).await {
                Ok(true) => self.answered(tenant, entry_id, &agent.id, Some(target)).await,
                Ok(false) => warn!(agent = %agent.id, "agent changed while being connected"),
                Err(err) => warn!(%err, "cannot mark agent busy"),
            }
        }
    }

    async fn accept(&mut self, tenant: &TenantId, agent: &AgentId) -> Result<CallId, AcdError> {
        let (entry_id, call) = self
            .find(tenant, |w| w.offer.as_ref().is_some_and(|o| &o.agent == agent))
            .map(|w| (w.entry.id.clone(), w.entry.call_id.clone()))
            .ok_or_else(|| AcdError::NoOffer(agent.clone()))?;
        if !self.repo.agent_take(tenant, agent, &call, now_ms()).await? {
            return Err(AcdError::NoOffer(agent.clone()));
        }
        self.answered(tenant, &entry_id, agent, None).await;
        Ok(call)
    }

    /// The call leaves the queue for `agent`.
    async fn answered(&mut self, tenant: &TenantId, entry_id: &EntryId, agent: &AgentId, dial: Option<String>) {
        let Some(w) = self.remove(tenant, entry_id) else { return };
        let wait_ms = w.enqueued.elapsed().as_millis() as i64;
        let entry = self.leave(tenant, w.entry, EntryOutcome::Answered, wait_ms).await;
        let dept = w.department.name;
        info!(call = %entry.call_id, %agent, wait_ms, "call answered");
        // A browser agent's call stays on hold until the agent's audio joins it (the call
        // actor ends the hold then), so the caller never hears the bot or silence between.
        match dial {
            Some(target) => {
                self.order(tenant, &entry.call_id, CallOrder::Hold(false));
                self.order(tenant, &entry.call_id, CallOrder::Connect(target));
            }
            None => {
                let within = self.config.offer_timeout;
                self.order(tenant, &entry.call_id, CallOrder::AwaitAgent { department: dept.clone(), within });
            }
        }
        self.events.publish(tenant, "agent.status", None, Some(&dept), json!({ "agent_id": agent, "status": "busy", "call_id": entry.call_id }));
        self.events.publish(tenant, "queue.answered", Some(&entry.call_id), Some(&dept), json!({ "entry_id": entry.id, "agent_id": agent, "wait_ms": wait_ms }));
        if let Some(t) = &entry.transfer_id {
            self.transfer_state(tenant, t, &entry.call_id, TransferState::Connected, None, Some(agent), Some(&dept)).await;
        }
    }

    /// The offered agent declined (`Available`, to the back of the idle order) or let the offer
    /// time out (`Away`): the call waits for the next agent.
    async fn pass_over(&mut self, tenant: &TenantId, agent: &AgentId, status: AgentStatus) -> Result<CallId, AcdError> {
        let w = self
            .find_mut(tenant, |w| w.offer.as_ref().is_some_and(|o| &o.agent == agent))
            .ok_or_else(|| AcdError::NoOffer(agent.clone()))?;
        w.offer = None;
        w.passed.push(agent.clone());
        if w.only.as_ref() == Some(agent) {
            // The agent it was meant for did not take it: the department does.
            w.only = None;
        }
        w.entry.state = EntryState::Waiting;
        w.entry.offered_agent_id = None;
        let entry = w.entry.clone();
        let dept = w.department.name.clone();
        self.save(tenant, &entry).await;
        self.repo.release_call(tenant, &entry.call_id, status, now_ms()).await?;
        info!(call = %entry.call_id, %agent, status = status.as_str(), "offer passed over");
        self.events.publish(tenant, "agent.status", None, Some(&dept), json!({ "agent_id": agent, "status": status }));
        if let Some(t) = &entry.transfer_id {
            self.transfer_state(tenant, t, &entry.call_id, TransferState::Queued, None, None, Some(&dept)).await;
        }
        Ok(entry.call_id)
    }

    // ---- leaving -------------------------------------------------------------------------

    async fn call_ended(&mut self, tenant: &TenantId, call: &CallId) {
        if let Some(id) = self.find(tenant, |w| &w.entry.call_id == call).map(|w| w.entry.id.clone()) {
            let w = self.remove(tenant, &id).expect("the entry was just found");
            let wait_ms = w.enqueued.elapsed().as_millis() as i64;
            if let Some(offer) = &w.offer {
                if let Err(err) = self.repo.release_call(tenant, call, AgentStatus::Available, now_ms()).await {
                    warn!(%err, "cannot free agent");
                }
                self.events.publish(tenant, "agent.status", None, Some(&w.department.name), json!({ "agent_id": offer.agent, "status": "available" }));
            }
            let entry = self.leave(tenant, w.entry, EntryOutcome::Abandoned, wait_ms).await;
            info!(%call, wait_ms, "caller abandoned the queue");
            self.events.publish(tenant, "queue.abandoned", Some(call), Some(&w.department.name), json!({ "entry_id": entry.id, "wait_ms": wait_ms }));
            if let Some(t) = &entry.transfer_id {
                self.transfer_state(tenant, t, call, TransferState::Failed, Some("abandoned"), None, Some(&w.department.name)).await;
            }
            self.dispatch(tenant).await;
            return;
        }
        // A call that was with an agent: the agent wraps up.
        match self.repo.release_call(tenant, call, AgentStatus::WrapUp, now_ms()).await {
            Ok(Some(agent)) => {
                self.events.publish(tenant, "agent.status", Some(call), None, json!({ "agent_id": agent, "status": "wrap_up" }));
            }
            Ok(None) => {}
            Err(err) => warn!(%err, "cannot free agent"),
        }
    }

    async fn cancel(&mut self, tenant: &TenantId, transfer: &TransferId) -> Result<(), AcdError> {
        let id = self
            .find(tenant, |w| w.entry.transfer_id.as_ref() == Some(transfer))
            .map(|w| w.entry.id.clone())
            .ok_or_else(|| AcdError::NotQueued(transfer.clone()))?;
        let w = self.remove(tenant, &id).expect("the entry was just found");
        let call = w.entry.call_id.clone();
        if w.offer.is_some() {
            self.repo.release_call(tenant, &call, AgentStatus::Available, now_ms()).await?;
        }
        let wait_ms = w.enqueued.elapsed().as_millis() as i64;
        self.leave(tenant, w.entry, EntryOutcome::Cancelled, wait_ms).await;
        self.order(tenant, &call, CallOrder::Hold(false));
        self.transfer_state(tenant, transfer, &call, TransferState::Cancelled, None, None, Some(&w.department.name)).await;
        Ok(())
    }

    /// The department cannot take the call: apply its overflow action.
    async fn overflow(&mut self, tenant: &TenantId, entry_id: &EntryId, why: &'static str) {
        let Some(w) = self.remove(tenant, entry_id) else { return };
        let wait_ms = w.enqueued.elapsed().as_millis() as i64;
        let call = w.entry.call_id.clone();
        let entry = self.leave(tenant, w.entry, EntryOutcome::Overflowed, wait_ms).await;
        let dept = w.department;
        info!(%call, department = %dept.name, why, "overflow");
        self.events.publish(tenant, "queue.overflow", Some(&call), Some(&dept.name), json!({ "entry_id": entry.id, "reason": why, "action": dept.overflow }));
        if let Some(t) = &entry.transfer_id {
            self.transfer_state(tenant, t, &call, TransferState::Failed, Some(why), None, Some(&dept.name)).await;
        }
        match (&dept.overflow, &dept.overflow_number) {
            (Some(OverflowAction::Department { department }), _) if w.hops < MAX_OVERFLOW_HOPS => {
                let mut next = Enqueue::new(tenant.clone(), call.clone(), department.clone());
                next.priority = entry.priority;
                next.reason = Some(format!("overflow:{why}"));
                if let Err(err) = Box::pin(self.enqueue(next, w.hops + 1)).await {
                    warn!(%err, "overflow department refused the call");
                    self.goodbye(tenant, &call, DEFAULT_OVERFLOW_MESSAGE);
                }
            }
            (Some(OverflowAction::External), Some(number)) => {
                self.order(tenant, &call, CallOrder::Hold(false));
                self.order(tenant, &call, CallOrder::Connect(number.clone()));
            }
            (Some(OverflowAction::Message { text }), _) => self.goodbye(tenant, &call, text),
            _ if why == "closed" => self.goodbye(tenant, &call, DEFAULT_CLOSED_MESSAGE),
            _ => self.goodbye(tenant, &call, DEFAULT_OVERFLOW_MESSAGE),
        }
    }

    fn goodbye(&self, tenant: &TenantId, call: &CallId, text: &str) {
        self.order(tenant, call, CallOrder::Hold(false));
        self.order(tenant, call, CallOrder::Say(text.to_string()));
        self.order(tenant, call, CallOrder::Hangup("queue overflow".into()));
    }

    async fn leave(&self, tenant: &TenantId, mut entry: QueueEntry, outcome: EntryOutcome, wait_ms: i64) -> QueueEntry {
        entry.state = EntryState::Left;
        entry.outcome = Some(outcome);
        entry.left_at = Some(now_ms());
        entry.wait_ms = Some(wait_ms);
        self.save(tenant, &entry).await;
        entry
    }

    // ---- timers --------------------------------------------------------------------------

    fn next_deadline(&self) -> Option<Instant> {
        self.queues
            .values()
            .flat_map(|d| d.values())
            .flatten()
            .filter_map(|w| match &w.offer {
                Some(o) => o.deadline,
                None => Some(w.next_announce.min(w.max_wait_at)),
            })
            .min()
    }

    async fn on_timers(&mut self) {
        let now = Instant::now();
        let mut due = Vec::new();
        for (tenant, depts) in &self.queues {
            for w in depts.values().flatten() {
                match &w.offer {
                    Some(Offer { deadline: Some(d), agent }) if *d <= now => {
                        due.push((tenant.clone(), w.entry.id.clone(), Due::OfferTimeout, Some(agent.clone())))
                    }
                    Some(_) => {}
                    None if w.max_wait_at <= now => due.push((tenant.clone(), w.entry.id.clone(), Due::MaxWait, None)),
                    None if w.next_announce <= now => due.push((tenant.clone(), w.entry.id.clone(), Due::Announce, None)),
                    None => {}
                }
            }
        }
        let mut tenants = Vec::new();
        for (tenant, entry, what, agent) in due {
            match what {
                Due::OfferTimeout => {
                    let agent = agent.expect("offer timeouts carry their agent");
                    info!(%agent, "offer timed out");
                    if let Err(err) = self.pass_over(&tenant, &agent, AgentStatus::Away).await {
                        warn!(%err, "cannot move on from an unanswered offer");
                    }
                }
                Due::MaxWait => self.overflow(&tenant, &entry, "max_wait").await,
                // A department that closed (by its hours, or hours changed meanwhile) while a
                // call waited: instead of the next announcement, the after-hours treatment.
                Due::Announce if self.closed_since_queued(&tenant, &entry).await => self.overflow(&tenant, &entry, "closed").await,
                Due::Announce => self.announce(&tenant, &entry),
            }
            if !tenants.contains(&tenant) {
                tenants.push(tenant);
            }
        }
        for tenant in tenants {
            self.dispatch(&tenant).await;
        }
    }

    /// Whether the department a call waits in is closed now, by its current hours.
    async fn closed_since_queued(&self, tenant: &TenantId, entry_id: &EntryId) -> bool {
        let Some(name) = self.find(tenant, |w| &w.entry.id == entry_id).map(|w| w.department.name.clone()) else { return false };
        match self.repo.department_by_name(tenant, &name).await {
            Ok(Some(dept)) => !is_open(&dept),
            Ok(None) => false,
            Err(err) => {
                warn!(%err, department = %name, "cannot read the department's hours");
                false
            }
        }
    }

    /// Tells a waiting caller their position and how long they have waited.
    fn announce(&mut self, tenant: &TenantId, entry_id: &EntryId) {
        let interval = self.config.announce_interval;
        let Some(queue) = self.queues.get_mut(tenant).and_then(|d| d.values_mut().find(|q| q.iter().any(|w| &w.entry.id == entry_id)))
        else {
            return;
        };
        let position = queue.iter().position(|w| &w.entry.id == entry_id).expect("the queue was found by this entry") + 1;
        let w = &mut queue[position - 1];
        w.next_announce = Instant::now() + interval;
        let waited = w.enqueued.elapsed();
        let call = w.entry.call_id.clone();
        let dept = w.department.name.clone();
        let minutes = waited.as_secs() / 60;
        let text = match minutes {
            0 => format!("You are number {position} in the queue. Please stay on the line."),
            1 => format!("You are number {position} in the queue. You have been waiting for one minute."),
            m => format!("You are number {position} in the queue. You have been waiting for {m} minutes."),
        };
        self.events.publish(
            tenant,
            "queue.announcement",
            Some(&call),
            Some(&dept),
            json!({ "entry_id": entry_id, "position": position, "wait_ms": waited.as_millis() as u64, "text": text }),
        );
        self.order(tenant, &call, CallOrder::Say(text));
    }

    // ---- helpers -------------------------------------------------------------------------

    fn waiting_view(&self, tenant: &TenantId) -> HashMap<DepartmentId, Vec<WaitingCall>> {
        let Some(depts) = self.queues.get(tenant) else { return HashMap::new() };
        depts
            .iter()
            .map(|(id, q)| {
                let calls = q
                    .iter()
                    .enumerate()
                    .map(|(i, w)| WaitingCall {
                        position: i + 1,
                        entry_id: w.entry.id.clone(),
                        call_id: w.entry.call_id.clone(),
                        priority: w.entry.priority,
                        wait_ms: w.enqueued.elapsed().as_millis() as u64,
                        skills: w.entry.skills.clone(),
                        language: w.entry.language.clone(),
                        offered_agent_id: w.offer.as_ref().map(|o| o.agent.clone()),
                    })
                    .collect();
                (id.clone(), calls)
            })
            .collect()
    }

    fn find(&self, tenant: &TenantId, pred: impl Fn(&Waiting) -> bool) -> Option<&Waiting> {
        self.queues.get(tenant)?.values().flatten().find(|w| pred(w))
    }

    fn find_mut(&mut self, tenant: &TenantId, pred: impl Fn(&Waiting) -> bool) -> Option<&mut Waiting> {
        self.queues.get_mut(tenant)?.values_mut().flatten().find(|w| pred(w))
    }

    fn remove(&mut self, tenant: &TenantId, entry: &EntryId) -> Option<Waiting> {
        let depts = self.queues.get_mut(tenant)?;
        let (dept, i) = depts.iter().find_map(|(d, q)| q.iter().position(|w| &w.entry.id == entry).map(|i| (d.clone(), i)))?;
        let queue = depts.get_mut(&dept).expect("the department was just found");
        let w = queue.remove(i);
        if queue.is_empty() {
            depts.remove(&dept);
        }
        Some(w)
    }

    async fn save(&self, tenant: &TenantId, entry: &QueueEntry) {
        if let Err(err) = self.repo.save_entry(tenant, entry).await {
            warn!(%err, entry = %entry.id, "cannot persist queue entry");
        }
    }

    /// A failed order to a call that has ended means the caller is gone: handled when the
    /// actor's `call_ended` arrives (or here, if it was lost to a full channel).
    fn order(&self, tenant: &TenantId, call: &CallId, order: CallOrder) {
        debug!(%call, ?order, "call order");
        if let Err(err) = self.calls.order(tenant, call, order) {
            debug!(%call, %err, "call did not take the order");
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn transfer_state(
        &self,
        tenant: &TenantId,
        id: &TransferId,
        call: &CallId,
        state: TransferState,
        reason: Option<&str>,
        agent: Option<&AgentId>,
        department: Option<&str>,
    ) {
        match self.repo.set_transfer_state(tenant, id, state, reason, agent).await {
            Ok(t) => {
                let _ = call;
                self.publish_transfer(tenant, &t, department);
            }
            Err(err) => warn!(%err, transfer = %id, state = state.as_str(), "cannot record transfer state"),
        }
    }

    fn publish_transfer(&self, tenant: &TenantId, t: &Transfer, department: Option<&str>) {
        self.events.publish(
            tenant,
            format!("transfer.{}", t.state.as_str()),
            Some(&t.call_id),
            department,
            serde_json::to_value(t).expect("transfers are plain data"),
        );
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Whether the department takes calls now. Hours stored before they were checked, in another
/// shape, count as always open (and are logged), rather than turning every caller away.
fn is_open(dept: &Department) -> bool {
    let Some(hours) = &dept.business_hours else { return true };
    match crate::dialog::flow::hours::department_schedule(hours) {
        Ok(schedule) => schedule.is_open(std::time::SystemTime::now()),
        Err((field, message)) => {
            warn!(department = %dept.name, field, message, "business hours not understood; treated as always open");
            true
        }
    }
}
