//! How the distributor reaches calls: orders it sends to call actors, through the live call
//! registry in the server or a recorder in tests.

use crate::call::{CallCommand, CallGone, CallRegistry};
use crate::dialog::Action;
use crate::ids::{CallId, TenantId};

/// What the ACD asks of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOrder {
    Hold(bool),
    Say(String),
    /// Dial a number or SIP URI and hand the call over.
    Connect(String),
    Hangup(String),
    /// The call's agent is done with it (the call was sent onward): put them out of its audio.
    ReleaseAgent,
    /// A browser agent accepted the call: their audio should join within `within`, or the call
    /// goes back to `department`'s queue.
    AwaitAgent { department: String, within: std::time::Duration },
}

/// How the ACD reaches calls: the live call registry in the server, a recorder in tests.
pub trait CallControl: Send + Sync + 'static {
    fn order(&self, tenant: &TenantId, call: &CallId, order: CallOrder) -> Result<(), CallGone>;
}

/// [`CallControl`] over this process's call actors.
pub struct RegistryControl(pub CallRegistry);

impl CallControl for RegistryControl {
    fn order(&self, tenant: &TenantId, call: &CallId, order: CallOrder) -> Result<(), CallGone> {
        let handle = self.0.get(tenant, call).ok_or(CallGone::Ended)?;
        handle.send(match order {
            CallOrder::Hold(on) => CallCommand::Hold(on),
            CallOrder::Say(text) => CallCommand::Act(Action::Say { text, barge_in: false }),
            CallOrder::Connect(number) => CallCommand::Act(Action::TransferToNumber { number }),
            CallOrder::Hangup(reason) => CallCommand::Act(Action::Hangup { reason }),
            CallOrder::ReleaseAgent => CallCommand::ReleaseAgent,
            CallOrder::AwaitAgent { department, within } => CallCommand::AwaitAgent { department, within },
        })
    }
}
