//! The control plane's data: ids, departments, agents, queue entries and transfers, as the
//! API and the store see them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::CallId;

macro_rules! center_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// A new time-ordered id.
            pub fn generate() -> Self {
                Self(format!(concat!($prefix, "_{}"), uuid::Uuid::now_v7().simple()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

center_id!(
    /// A department (a queue of calls and the agents who answer it).
    DepartmentId, "dep"
);
center_id!(
    /// An agent: a human who answers calls.
    AgentId, "agt"
);
center_id!(
    /// One stay of one call in one department's queue.
    EntryId, "que"
);
center_id!(
    /// A transfer request and its state machine.
    TransferId, "xfr"
);

/// What happens to a call its department cannot take (queue full, waited too long).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OverflowAction {
    /// Move the call to another department's queue (by name).
    Department { department: String },
    /// Dial the department's `overflow_number` (a phone number or SIP URI).
    External,
    /// Say `text` (a voicemail-style message) and hang up.
    Message { text: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Department {
    pub id: DepartmentId,
    pub name: String,
    /// Phone number (E.164) or SIP URI for external overflow.
    pub overflow_number: Option<String>,
    pub overflow: Option<OverflowAction>,
    /// Opening hours: `{"time_zone": "Europe/Berlin", "open": ["mon-fri 09:00-17:00"],
    /// "closed_dates": ["2026-12-25"]}`. Unset: always open. A call sent here while it is
    /// closed gets the department's overflow action at once; a call waiting when it closes,
    /// at its next position announcement.
    #[schema(value_type = Option<Object>)]
    pub business_hours: Option<serde_json::Value>,
    /// Service-level target: answered within this many seconds.
    pub service_level_secs: i64,
    pub max_queue: i64,
    pub max_wait_secs: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Agent availability. Agents (or supervisors) set the first four; the server sets `offered`
/// (a call is ringing for them) and `busy` (on a call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Offline,
    Available,
    Away,
    WrapUp,
    Offered,
    Busy,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::Available => "available",
            Self::Away => "away",
            Self::WrapUp => "wrap_up",
            Self::Offered => "offered",
            Self::Busy => "busy",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "offline" => Self::Offline,
            "available" => Self::Available,
            "away" => Self::Away,
            "wrap_up" => Self::WrapUp,
            "offered" => Self::Offered,
            "busy" => Self::Busy,
            _ => return None,
        })
    }

    /// Set by the server only, never through the status endpoint.
    pub fn is_server_owned(self) -> bool {
        matches!(self, Self::Offered | Self::Busy)
    }
}

/// How an agent is reached when a call is theirs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reach {
    /// Dialled through Twilio: the call is connected at once when offered.
    Phone { number: String },
    /// Dialled through Twilio as a SIP URI.
    Sip { uri: String },
    /// The agent console accepts or declines the offer.
    Browser,
}

impl Reach {
    /// The `<Dial>` target, for agents the server dials.
    pub fn dial_target(&self) -> Option<&str> {
        match self {
            Self::Phone { number } => Some(number),
            Self::Sip { uri } => Some(uri),
            Self::Browser => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    pub id: AgentId,
    pub name: String,
    pub email: Option<String>,
    pub departments: Vec<DepartmentId>,
    pub skills: Vec<String>,
    pub languages: Vec<String>,
    pub reach: Reach,
    pub status: AgentStatus,
    /// When the status last changed: for `available`, how long the agent has been idle.
    pub status_since: i64,
    #[schema(value_type = Option<String>)]
    pub current_call_id: Option<CallId>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Agent {
    /// Can take a call with these requirements in this department.
    pub fn matches(&self, department: &DepartmentId, skills: &[String], language: Option<&str>) -> bool {
        self.departments.contains(department)
            && skills.iter().all(|s| self.skills.iter().any(|k| k.eq_ignore_ascii_case(s)))
            && language.is_none_or(|l| self.languages.iter().any(|k| k.eq_ignore_ascii_case(l)))
    }
}

/// A queue entry's state as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    Waiting,
    Offered,
    Left,
}

/// Why a call left a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryOutcome {
    /// An agent took it.
    Answered,
    /// The caller hung up while waiting.
    Abandoned,
    /// Moved on by the department's overflow action.
    Overflowed,
    /// The transfer that queued it was cancelled.
    Cancelled,
    /// The server stopped while the call waited.
    Lost,
}

impl EntryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Abandoned => "abandoned",
            Self::Overflowed => "overflowed",
            Self::Cancelled => "cancelled",
            Self::Lost => "lost",
        }
    }
}

/// One queue entry as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct QueueEntry {
    pub id: EntryId,
    pub department_id: DepartmentId,
    #[schema(value_type = String)]
    pub call_id: CallId,
    pub priority: i64,
    pub skills: Vec<String>,
    pub language: Option<String>,
    pub state: EntryState,
    pub offered_agent_id: Option<AgentId>,
    pub transfer_id: Option<TransferId>,
    pub enqueued_at: i64,
    pub left_at: Option<i64>,
    pub outcome: Option<EntryOutcome>,
    pub wait_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferTargetKind {
    Department,
    Agent,
    Number,
    Sip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferMode {
    /// Hand the call over at once.
    Blind,
    /// Tell the caller first ("Transferring you to ..."), then hand over.
    Announced,
}

/// requested -> queued -> offered -> connected | failed | cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferState {
    Requested,
    Queued,
    Offered,
    Connected,
    Failed,
    Cancelled,
}

impl TransferState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Queued => "queued",
            Self::Offered => "offered",
            Self::Connected => "connected",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "requested" => Self::Requested,
            "queued" => Self::Queued,
            "offered" => Self::Offered,
            "connected" => Self::Connected,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Connected | Self::Failed | Self::Cancelled)
    }

    /// The state machine's edges; anything else is a 409.
    pub fn can_become(self, next: Self) -> bool {
        use TransferState::*;
        match (self, next) {
            (Requested, Queued | Offered | Connected | Failed | Cancelled) => true,
            (Queued, Offered | Failed | Cancelled) => true,
            // An offer that times out goes back to the queue.
            (Offered, Queued | Connected | Failed | Cancelled) => true,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Transfer {
    pub id: TransferId,
    #[schema(value_type = String)]
    pub call_id: CallId,
    pub target_kind: TransferTargetKind,
    pub target: String,
    pub mode: TransferMode,
    pub state: TransferState,
    /// Why it was requested (`caller_request`, `overflow`, ...) or why it failed.
    pub reason: Option<String>,
    pub department_id: Option<DepartmentId>,
    pub agent_id: Option<AgentId>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_state_machine_edges() {
        use TransferState::*;
        assert!(Requested.can_become(Queued));
        assert!(Queued.can_become(Offered));
        assert!(Offered.can_become(Connected));
        assert!(Offered.can_become(Queued));
        assert!(!Connected.can_become(Cancelled));
        assert!(!Cancelled.can_become(Queued));
        assert!(!Queued.can_become(Connected), "a queued call is offered before it connects");
    }

    #[test]
    fn agent_matching_needs_department_skills_and_language() {
        let dep = DepartmentId("dep_1".into());
        let agent = Agent {
            id: AgentId("a".into()),
            name: "A".into(),
            email: None,
            departments: vec![dep.clone()],
            skills: vec!["Billing".into(), "refunds".into()],
            languages: vec!["en".into()],
            reach: Reach::Browser,
            status: AgentStatus::Available,
            status_since: 0,
            current_call_id: None,
            created_at: 0,
            updated_at: 0,
        };
        assert!(agent.matches(&dep, &["billing".into()], Some("EN")));
        assert!(!agent.matches(&dep, &["spanish".into()], None));
        assert!(!agent.matches(&dep, &[], Some("de")));
        assert!(!agent.matches(&DepartmentId("other".into()), &[], None));
    }
}
