//! A cloneable handle to one call actor.

use tokio::sync::{mpsc, oneshot};

use super::command::CallCommand;
use super::CallSnapshot;
use crate::dialog::Action;
use crate::ids::{CallId, TenantId};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallGone {
    #[error("call has ended")]
    Ended,
    #[error("call is busy; try again")]
    Busy,
}

#[derive(Debug, Clone)]
pub struct CallHandle {
    pub id: CallId,
    pub tenant: TenantId,
    tx: mpsc::Sender<CallCommand>,
}

impl CallHandle {
    pub fn new(id: CallId, tenant: TenantId, tx: mpsc::Sender<CallCommand>) -> Self {
        Self { id, tenant, tx }
    }

    /// Queues a command without waiting; a full queue is reported, never waited on.
    pub fn send(&self, cmd: CallCommand) -> Result<(), CallGone> {
        self.tx.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => CallGone::Busy,
            mpsc::error::TrySendError::Closed(_) => CallGone::Ended,
        })
    }

    pub fn act(&self, action: Action) -> Result<(), CallGone> {
        self.send(CallCommand::Act(action))
    }

    pub async fn snapshot(&self) -> Result<CallSnapshot, CallGone> {
        let (tx, rx) = oneshot::channel();
        self.send(CallCommand::Snapshot(tx))?;
        rx.await.map_err(|_| CallGone::Ended)
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}
