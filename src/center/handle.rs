//! The distributor's public face: what callers of the ACD send it ([`Enqueue`]), the handle
//! they send it through ([`AcdHandle`]), what it answers with and how it fails. The task
//! itself is in `acd.rs`.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use utoipa::ToSchema;

use super::model::*;
use crate::ids::{CallId, TenantId};
use crate::store::StoreError;

#[derive(Debug, Clone)]
pub struct AcdConfig {
    /// A browser agent has this long to accept an offer.
    pub offer_timeout: Duration,
    /// Waiting callers hear their position this often.
    pub announce_interval: Duration,
    /// Commands waiting for the ACD; beyond this, `try_send` reports busy.
    pub channel_capacity: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum AcdError {
    #[error("no department named {0:?}")]
    UnknownDepartment(String),
    #[error("call {0} is already queued")]
    AlreadyQueued(CallId),
    #[error("agent {0} has no call offered")]
    NoOffer(AgentId),
    #[error("transfer {0} is not waiting in a queue")]
    NotQueued(TransferId),
    #[error("the call distributor is overloaded; try again")]
    Busy,
    #[error("the call distributor has stopped")]
    Stopped,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A call handed to a department.
#[derive(Debug, Clone)]
pub struct Enqueue {
    pub tenant: TenantId,
    pub call: CallId,
    /// The department's name (what flows and the API use).
    pub department: String,
    pub priority: i64,
    pub skills: Vec<String>,
    pub language: Option<String>,
    /// The transfer that asked for this; when absent the ACD records one.
    pub transfer: Option<TransferId>,
    pub reason: Option<String>,
    /// Only this agent is offered the call (a transfer to a browser agent). If they decline or
    /// let the offer time out, the department's other agents may take it.
    pub agent: Option<AgentId>,
    /// What an agent still holding the call becomes: `wrap_up` when they sent it on, `away`
    /// when they accepted it and never joined.
    pub release_agent_as: AgentStatus,
}

impl Enqueue {
    pub fn new(tenant: TenantId, call: CallId, department: impl Into<String>) -> Self {
        Self {
            tenant,
            call,
            department: department.into(),
            priority: 0,
            skills: Vec::new(),
            language: None,
            transfer: None,
            reason: None,
            agent: None,
            release_agent_as: AgentStatus::WrapUp,
        }
    }
}

/// One waiting call, as `GET /departments/{id}/queue` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WaitingCall {
    pub position: usize,
    pub entry_id: EntryId,
    #[schema(value_type = String)]
    pub call_id: CallId,
    pub priority: i64,
    pub wait_ms: u64,
    pub skills: Vec<String>,
    pub language: Option<String>,
    /// The agent the call is ringing for, if any.
    pub offered_agent_id: Option<AgentId>,
}

pub(super) type Reply<T> = oneshot::Sender<Result<T, AcdError>>;

pub(super) enum Command {
    Enqueue(Enqueue, Option<Reply<EntryId>>),
    CallEnded { tenant: TenantId, call: CallId },
    Dispatch { tenant: TenantId, done: oneshot::Sender<()> },
    Accept { tenant: TenantId, agent: AgentId, reply: Reply<CallId> },
    Decline { tenant: TenantId, agent: AgentId, reply: Reply<CallId> },
    Cancel { tenant: TenantId, transfer: TransferId, reply: Reply<()> },
    Waiting { tenant: TenantId, reply: oneshot::Sender<HashMap<DepartmentId, Vec<WaitingCall>>> },
}

/// Cheap to clone.
#[derive(Clone)]
pub struct AcdHandle {
    pub(super) tx: mpsc::Sender<Command>,
}

impl AcdHandle {
    fn try_send(&self, cmd: Command) -> Result<(), AcdError> {
        self.tx.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => AcdError::Busy,
            mpsc::error::TrySendError::Closed(_) => AcdError::Stopped,
        })
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, AcdError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| AcdError::Stopped)?;
        rx.await.map_err(|_| AcdError::Stopped)
    }

    /// From a call actor: never waits. A full channel is reported, and the caller stays with
    /// the bot.
    pub fn enqueue_now(&self, request: Enqueue) -> Result<(), AcdError> {
        self.try_send(Command::Enqueue(request, None))
    }

    /// From a call actor: never waits.
    pub fn call_ended(&self, tenant: TenantId, call: CallId) -> Result<(), AcdError> {
        self.try_send(Command::CallEnded { tenant, call })
    }

    /// Queues a call and waits until the entry is persisted.
    pub async fn enqueue(&self, request: Enqueue) -> Result<EntryId, AcdError> {
        self.ask(|reply| Command::Enqueue(request, Some(reply))).await?
    }

    /// Agent availability changed: look for work for them. Returns once offers are made.
    pub async fn dispatch(&self, tenant: TenantId) -> Result<(), AcdError> {
        self.ask(|done| Command::Dispatch { tenant, done }).await
    }

    pub async fn accept(&self, tenant: TenantId, agent: AgentId) -> Result<CallId, AcdError> {
        self.ask(|reply| Command::Accept { tenant, agent, reply }).await?
    }

    pub async fn decline(&self, tenant: TenantId, agent: AgentId) -> Result<CallId, AcdError> {
        self.ask(|reply| Command::Decline { tenant, agent, reply }).await?
    }

    /// Takes a transfer's call out of its queue.
    pub async fn cancel(&self, tenant: TenantId, transfer: TransferId) -> Result<(), AcdError> {
        self.ask(|reply| Command::Cancel { tenant, transfer, reply }).await?
    }

    /// Every department's waiting calls, in order.
    pub async fn waiting(&self, tenant: TenantId) -> Result<HashMap<DepartmentId, Vec<WaitingCall>>, AcdError> {
        self.ask(|reply| Command::Waiting { tenant, reply }).await
    }
}
