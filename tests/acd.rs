//! The call distributor on a paused clock: skills and longest-idle matching, offer timeouts,
//! overflow, abandonment, announcements, accept/decline, dialled agents. Persistence is the
//! in-memory repository (real I/O would let the paused clock jump ahead while it waits).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard::call::CallGone;
use switchboard::center::acd::{Enqueue, WaitingCall};
use switchboard::center::memory::MemoryRepo;
use switchboard::center::*;
use switchboard::ids::{CallId, TenantId};
use switchboard::monitor::EventBus;

#[derive(Default)]
struct Recorder {
    orders: Mutex<Vec<(CallId, CallOrder)>>,
    gone: Mutex<Vec<CallId>>,
}

impl CallControl for Recorder {
    fn order(&self, _tenant: &TenantId, call: &CallId, order: CallOrder) -> Result<(), CallGone> {
        if self.gone.lock().unwrap().contains(call) {
            return Err(CallGone::Ended);
        }
        self.orders.lock().unwrap().push((call.clone(), order));
        Ok(())
    }
}

impl Recorder {
    fn orders_for(&self, call: &CallId) -> Vec<CallOrder> {
        self.orders.lock().unwrap().iter().filter(|(c, _)| c == call).map(|(_, o)| o.clone()).collect()
    }
}

struct Rig {
    tenant: TenantId,
    repo: MemoryRepo,
    calls: Arc<Recorder>,
    acd: AcdHandle,
    events: EventBus,
}

const OFFER_TIMEOUT: Duration = Duration::from_secs(15);
const ANNOUNCE: Duration = Duration::from_secs(30);

fn department(name: &str, max_queue: i64, max_wait_secs: i64, overflow: Option<OverflowAction>) -> Department {
    Department {
        id: DepartmentId(format!("dep_{name}")),
        name: name.into(),
        overflow_number: Some("+15550001111".into()),
        overflow,
        business_hours: None,
        service_level_secs: 20,
        max_queue,
        max_wait_secs,
        created_at: 0,
        updated_at: 0,
    }
}

fn agent(id: &str, dep: &str, skills: &[&str], idle_since: i64, reach: Reach) -> Agent {
    Agent {
        id: AgentId(id.into()),
        name: id.into(),
        email: None,
        departments: vec![DepartmentId(format!("dep_{dep}"))],
        skills: skills.iter().map(|s| s.to_string()).collect(),
        languages: vec!["en".into()],
        reach,
        status: AgentStatus::Available,
        status_since: idle_since,
        current_call_id: None,
        created_at: 0,
        updated_at: 0,
    }
}

impl Rig {
    fn new() -> Self {
        let tenant = TenantId("ten_test".into());
        let repo = MemoryRepo::default();
        repo.add_department(&tenant, department("support", 10, 600, None));
        let calls = Arc::new(Recorder::default());
        let events = EventBus::new(1000, 1000);
        let config = AcdConfig { offer_timeout: OFFER_TIMEOUT, announce_interval: ANNOUNCE, channel_capacity: 64 };
        let (acd, _task) = Acd::start(config, Arc::new(repo.clone()), calls.clone(), events.clone());
        Self { tenant, repo, calls, acd, events }
    }

    async fn enqueue(&self, call: &str, dep: &str, skills: &[&str]) -> CallId {
        let id = CallId(call.into());
        let mut req = Enqueue::new(self.tenant.clone(), id.clone(), dep);
        req.skills = skills.iter().map(|s| s.to_string()).collect();
        self.acd.enqueue(req).await.expect("queued");
        id
    }

    async fn queue(&self, dep: &str) -> Vec<WaitingCall> {
        self.acd.waiting(self.tenant.clone()).await.unwrap().remove(&DepartmentId(format!("dep_{dep}"))).unwrap_or_default()
    }

    fn status(&self, id: &str) -> (AgentStatus, Option<CallId>) {
        let a = self.repo.agent(&AgentId(id.into())).unwrap();
        (a.status, a.current_call_id)
    }

    fn event_kinds(&self, call: &CallId) -> Vec<String> {
        let sub = self.events.subscribe(&self.tenant, Some(0));
        sub.missed.iter().filter(|e| e.call_id.as_ref() == Some(call)).map(|e| e.kind.clone()).collect()
    }
}

#[tokio::test(start_paused = true)]
async fn skills_then_longest_idle_agent_is_offered() {
    let rig = Rig::new();
    rig.repo.add_agent(&rig.tenant, agent("recent", "support", &[], 300, Reach::Browser));
    rig.repo.add_agent(&rig.tenant, agent("biller", "support", &["billing"], 200, Reach::Browser));
    rig.repo.add_agent(&rig.tenant, agent("longest", "support", &[], 100, Reach::Browser));
    rig.repo.add_agent(&rig.tenant, agent("elsewhere", "sales", &[], 1, Reach::Browser));

    let c1 = rig.enqueue("call_1", "support", &["billing"]).await;
    assert_eq!(rig.status("biller"), (AgentStatus::Offered, Some(c1.clone())), "only the biller has the skill");
    let c2 = rig.enqueue("call_2", "support", &[]).await;
    assert_eq!(rig.status("longest"), (AgentStatus::Offered, Some(c2.clone())), "longest idle of the rest");
    assert_eq!(rig.status("recent").0, AgentStatus::Available);
    assert_eq!(rig.status("elsewhere").0, AgentStatus::Available, "other departments' agents are not asked");

    // A third call needing a skill nobody free has waits.
    let c3 = rig.enqueue("call_3", "support", &["spanish"]).await;
    let q = rig.queue("support").await;
    assert_eq!(q.iter().map(|w| (w.position, w.call_id.clone())).collect::<Vec<_>>(), vec![(1, c1.clone()), (2, c2), (3, c3.clone())]);
    assert_eq!(q[0].offered_agent_id, Some(AgentId("biller".into())));
    assert_eq!(q[2].offered_agent_id, None);
    assert_eq!(rig.calls.orders_for(&c3), vec![CallOrder::Hold(true)]);

    // The browser agent accepts: busy, the call leaves the queue, hold ends, transfer connects.
    assert_eq!(rig.acd.accept(rig.tenant.clone(), AgentId("biller".into())).await.unwrap(), c1);
    assert_eq!(rig.status("biller"), (AgentStatus::Busy, Some(c1.clone())));
    assert!(matches!(rig.acd.accept(rig.tenant.clone(), AgentId("biller".into())).await, Err(AcdError::NoOffer(_))));
    // The hold ends when the agent's audio joins the call, not before; the call waits for it.
    assert_eq!(
        rig.calls.orders_for(&c1),
        vec![CallOrder::Hold(true), CallOrder::AwaitAgent { department: "support".into(), within: OFFER_TIMEOUT }]
    );
    let entry = rig.repo.entries().into_iter().find(|e| e.call_id == c1).unwrap();
    assert_eq!(entry.outcome, Some(EntryOutcome::Answered));
    let transfer = rig.repo.transfers().into_iter().find(|t| t.call_id == c1).unwrap();
    assert_eq!((transfer.state, transfer.agent_id), (TransferState::Connected, Some(AgentId("biller".into()))));
    let kinds = rig.event_kinds(&c1);
    let order = ["transfer.requested", "transfer.queued", "queue.joined", "queue.offered", "transfer.offered", "queue.answered", "transfer.connected"];
    let positions: Vec<_> = order.iter().map(|k| kinds.iter().position(|x| x == k).unwrap_or_else(|| panic!("{k} missing in {kinds:?}"))).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "events out of order: {kinds:?}");

    // The call ends: the agent wraps up.
    rig.acd.call_ended(rig.tenant.clone(), c1).unwrap();
    rig.queue("support").await;
    assert_eq!(rig.status("biller"), (AgentStatus::WrapUp, None));
}

#[tokio::test(start_paused = true)]
async fn unanswered_offer_moves_on_and_first_agent_goes_away() {
    let rig = Rig::new();
    rig.repo.add_agent(&rig.tenant, agent("first", "support", &[], 1, Reach::Browser));
    rig.repo.add_agent(&rig.tenant, agent("second", "support", &[], 2, Reach::Browser));
    let call = rig.enqueue("call_1", "support", &[]).await;
    assert_eq!(rig.status("first").0, AgentStatus::Offered);

    tokio::time::sleep(OFFER_TIMEOUT - Duration::from_secs(1)).await;
    rig.queue("support").await;
    assert_eq!(rig.status("first").0, AgentStatus::Offered, "not before the timeout");
    tokio::time::sleep(Duration::from_secs(2)).await;
    rig.queue("support").await;
    assert_eq!(rig.status("first"), (AgentStatus::Away, None));
    assert_eq!(rig.status("second"), (AgentStatus::Offered, Some(call.clone())));

    // The second declines: back to available, the call waits (nobody else), and is not
    // offered to them again.
    rig.acd.decline(rig.tenant.clone(), AgentId("second".into())).await.unwrap();
    assert_eq!(rig.status("second"), (AgentStatus::Available, None));
    let q = rig.queue("support").await;
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].offered_agent_id, None);
    let t = rig.repo.transfers().pop().unwrap();
    assert_eq!(t.state, TransferState::Queued);
}

#[tokio::test(start_paused = true)]
async fn waiting_callers_hear_position_and_wait_then_abandon() {
    let rig = Rig::new();
    let c1 = rig.enqueue("call_1", "support", &[]).await;
    let c2 = rig.enqueue("call_2", "support", &[]).await;
    tokio::time::sleep(ANNOUNCE + Duration::from_millis(10)).await;
    rig.queue("support").await;
    let says = |c: &CallId| -> Vec<String> {
        rig.calls.orders_for(c).into_iter().filter_map(|o| match o { CallOrder::Say(t) => Some(t), _ => None }).collect()
    };
    assert_eq!(says(&c1), vec!["You are number 1 in the queue. Please stay on the line.".to_string()]);
    assert_eq!(says(&c2), vec!["You are number 2 in the queue. Please stay on the line.".to_string()]);
    tokio::time::sleep(ANNOUNCE).await;
    rig.queue("support").await;
    assert_eq!(says(&c1).last().unwrap(), "You are number 1 in the queue. You have been waiting for one minute.");

    // The first caller hangs up: abandoned with its wait; the second moves up.
    rig.acd.call_ended(rig.tenant.clone(), c1.clone()).unwrap();
    let q = rig.queue("support").await;
    assert_eq!(q.iter().map(|w| (w.position, &w.call_id)).collect::<Vec<_>>(), vec![(1, &c2)]);
    let e = rig.repo.entries().into_iter().find(|e| e.call_id == c1).unwrap();
    assert_eq!(e.outcome, Some(EntryOutcome::Abandoned));
    let wait = e.wait_ms.unwrap();
    assert!((60_000..61_000).contains(&wait), "wait {wait} ms");
    assert_eq!(rig.repo.transfers().into_iter().find(|t| t.call_id == c1).unwrap().state, TransferState::Failed);
}

#[tokio::test(start_paused = true)]
async fn max_wait_and_full_queue_overflow() {
    let rig = Rig::new();
    rig.repo.add_department(
        &rig.tenant,
        department("sales", 1, 90, Some(OverflowAction::Message { text: "Please leave us a message.".into() })),
    );
    rig.repo.add_department(&rig.tenant, department("tiny", 1, 600, Some(OverflowAction::Department { department: "sales".into() })));
    rig.repo.add_department(&rig.tenant, department("ext", 5, 30, Some(OverflowAction::External)));

    // Max wait: the message, then hang up.
    let c1 = rig.enqueue("call_1", "sales", &[]).await;
    tokio::time::sleep(Duration::from_secs(89)).await;
    assert_eq!(rig.queue("sales").await.len(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(rig.queue("sales").await.is_empty());
    let orders = rig.calls.orders_for(&c1);
    assert_eq!(
        orders[orders.len() - 3..],
        [CallOrder::Hold(false), CallOrder::Say("Please leave us a message.".into()), CallOrder::Hangup("queue overflow".into())]
    );
    let e = rig.repo.entries().into_iter().find(|e| e.call_id == c1).unwrap();
    assert_eq!(e.outcome, Some(EntryOutcome::Overflowed));

    // Full queue: the second call of `tiny` goes straight on to `sales`.
    let c2 = rig.enqueue("call_2", "tiny", &[]).await;
    let c3 = rig.enqueue("call_3", "tiny", &[]).await;
    assert_eq!(rig.queue("tiny").await.iter().map(|w| &w.call_id).collect::<Vec<_>>(), vec![&c2]);
    assert_eq!(rig.queue("sales").await.iter().map(|w| &w.call_id).collect::<Vec<_>>(), vec![&c3]);
    let reasons: Vec<_> = rig.repo.transfers().into_iter().filter(|t| t.call_id == c3).map(|t| (t.target, t.state, t.reason)).collect();
    assert_eq!(
        reasons,
        vec![
            ("tiny".into(), TransferState::Failed, Some("queue_full".into())),
            ("sales".into(), TransferState::Queued, Some("overflow:queue_full".into())),
        ]
    );

    // External overflow dials the department's number.
    let c4 = rig.enqueue("call_4", "ext", &[]).await;
    tokio::time::sleep(Duration::from_secs(31)).await;
    rig.queue("ext").await;
    assert_eq!(rig.calls.orders_for(&c4).last(), Some(&CallOrder::Connect("+15550001111".into())));
}

#[tokio::test(start_paused = true)]
async fn phone_agents_are_dialled_at_once_and_a_new_available_agent_gets_the_waiting_call() {
    let rig = Rig::new();
    let call = rig.enqueue("call_1", "support", &[]).await;
    assert_eq!(rig.queue("support").await.len(), 1);
    rig.repo.add_agent(&rig.tenant, agent("phone", "support", &[], 5, Reach::Phone { number: "+15552223333".into() }));
    rig.acd.dispatch(rig.tenant.clone()).await.unwrap();
    assert!(rig.queue("support").await.is_empty());
    assert_eq!(rig.status("phone"), (AgentStatus::Busy, Some(call.clone())));
    assert_eq!(
        rig.calls.orders_for(&call),
        vec![CallOrder::Hold(true), CallOrder::Hold(false), CallOrder::Connect("+15552223333".into())]
    );
    // The same call cannot be queued twice.
    let again = rig.acd.enqueue(Enqueue::new(rig.tenant.clone(), CallId("call_2".into()), "nowhere")).await;
    assert!(matches!(again, Err(AcdError::UnknownDepartment(_))));
}

#[tokio::test(start_paused = true)]
async fn many_calls_and_agents_never_double_assign() {
    let rig = Rig::new();
    for i in 0..20 {
        rig.repo.add_agent(&rig.tenant, agent(&format!("a{i:02}"), "support", &[], i, Reach::Browser));
    }
    let mut tasks = Vec::new();
    for i in 0..10 {
        let acd = rig.acd.clone();
        let tenant = rig.tenant.clone();
        tasks.push(tokio::spawn(async move {
            for j in 0..5 {
                let mut r = Enqueue::new(tenant.clone(), CallId(format!("call_{i}_{j}")), "support");
                r.priority = (j % 2) as i64;
                acd.enqueue(r).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let q = rig.queue("support").await;
    assert_eq!(q.len(), 10, "the queue holds at most max_queue; the rest overflowed");
    let offered: Vec<_> = q.iter().filter_map(|w| w.offered_agent_id.clone()).collect();
    let mut unique = offered.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(offered.len(), unique.len(), "an agent holds at most one call");
    let agents: Vec<_> = (0..20).map(|i| rig.status(&format!("a{i:02}"))).collect();
    let mut held: Vec<_> = agents.iter().filter_map(|(_, c)| c.clone()).collect();
    let n = held.len();
    held.sort();
    held.dedup();
    assert_eq!(held.len(), n, "a call is held by at most one agent");
    assert_eq!(n, 10, "every queued call is offered while agents are free");
}

/// Business hours that say closed whatever the clock: open all day, every day, but yesterday,
/// today and tomorrow (UTC) are holidays.
fn closed_now() -> serde_json::Value {
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let days = [today.yesterday().unwrap(), today, today.tomorrow().unwrap()];
    serde_json::json!({ "time_zone": "UTC", "open": ["daily 00:00-24:00"], "closed_dates": days.map(|d| d.to_string()) })
}

#[tokio::test(start_paused = true)]
async fn a_closed_department_applies_its_overflow_at_once() {
    let rig = Rig::new();
    let mut night = department("night", 10, 600, Some(OverflowAction::Department { department: "support".into() }));
    night.business_hours = Some(closed_now());
    let mut shut = department("shut", 10, 600, None);
    shut.business_hours = Some(closed_now());
    let mut open = department("open", 10, 600, None);
    open.business_hours = Some(serde_json::json!({ "time_zone": "UTC", "open": ["daily 00:00-24:00"] }));
    for d in [night, shut, open] {
        rig.repo.add_department(&rig.tenant, d);
    }

    // Closed with an overflow department: straight on to it.
    let c1 = rig.enqueue("call_1", "night", &[]).await;
    assert!(rig.queue("night").await.is_empty());
    assert_eq!(rig.queue("support").await.iter().map(|w| &w.call_id).collect::<Vec<_>>(), vec![&c1]);
    let reasons: Vec<_> = rig.repo.transfers().into_iter().filter(|t| t.call_id == c1).map(|t| (t.target, t.state, t.reason)).collect();
    assert_eq!(
        reasons,
        vec![("night".into(), TransferState::Failed, Some("closed".into())), ("support".into(), TransferState::Queued, Some("overflow:closed".into()))]
    );

    // Closed with no overflow action: the caller is told so, and the call ends.
    let c2 = rig.enqueue("call_2", "shut", &[]).await;
    let orders = rig.calls.orders_for(&c2);
    assert_eq!(orders[orders.len() - 3..][0], CallOrder::Hold(false));
    assert!(matches!(&orders[orders.len() - 2], CallOrder::Say(text) if text.contains("closed")), "{orders:?}");
    assert_eq!(orders.last(), Some(&CallOrder::Hangup("queue overflow".into())));

    // Open around the clock: the call waits as usual.
    let c3 = rig.enqueue("call_3", "open", &[]).await;
    assert_eq!(rig.queue("open").await.iter().map(|w| &w.call_id).collect::<Vec<_>>(), vec![&c3]);
}

#[tokio::test(start_paused = true)]
async fn calls_waiting_when_their_department_closes_get_its_overflow_at_the_next_announcement() {
    let rig = Rig::new();
    let mut late = department("late", 10, 3600, Some(OverflowAction::Message { text: "We have closed for today.".into() }));
    late.business_hours = Some(serde_json::json!({ "time_zone": "UTC", "open": ["daily 00:00-24:00"] }));
    rig.repo.add_department(&rig.tenant, late.clone());
    let c1 = rig.enqueue("call_1", "late", &[]).await;
    assert_eq!(rig.queue("late").await.len(), 1, "open: the call waits");

    // The department's hours change to closed while the call waits.
    late.business_hours = Some(closed_now());
    rig.repo.add_department(&rig.tenant, late);
    tokio::time::sleep(ANNOUNCE + Duration::from_secs(1)).await;
    assert!(rig.queue("late").await.is_empty());
    let orders = rig.calls.orders_for(&c1);
    assert_eq!(
        orders[orders.len() - 2..],
        [CallOrder::Say("We have closed for today.".into()), CallOrder::Hangup("queue overflow".into())],
        "{orders:?}"
    );
    let reasons: Vec<_> = rig.repo.transfers().into_iter().filter(|t| t.call_id == c1).map(|t| (t.state, t.reason)).collect();
    assert_eq!(reasons, vec![(TransferState::Failed, Some("closed".into()))]);
}
