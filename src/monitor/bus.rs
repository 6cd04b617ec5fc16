//! The live event bus: every call, queue, agent and transfer change, per tenant, with a
//! tenant-wide sequence number. Subscribers get a bounded history to resume from
//! (`since=<seq>`) and then the live stream; a subscriber that falls behind is told how much
//! it missed (`Lagged`) instead of slowing anyone down (the broadcast channel drops the
//! oldest for it alone).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::ids::{CallId, TenantId};
use crate::store::now_ms;

/// One event as subscribers see it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LiveEvent {
    /// Tenant-wide, gap-free, increasing.
    pub seq: u64,
    /// Unix milliseconds.
    pub at: i64,
    /// `call.started`, `call.transcript_final`, `queue.updated`, `agent.status`, ...
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<CallId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    pub data: serde_json::Value,
}

struct TenantChannel {
    tx: broadcast::Sender<Arc<LiveEvent>>,
    next_seq: u64,
    history: VecDeque<Arc<LiveEvent>>,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    tenants: Arc<Mutex<HashMap<TenantId, TenantChannel>>>,
    history: usize,
    capacity: usize,
}

/// A subscription: what was missed since `since` (oldest first), then live events.
pub struct Subscription {
    pub missed: Vec<Arc<LiveEvent>>,
    /// `true` when `since` was older than the retained history: some events are gone.
    pub history_truncated: bool,
    pub live: broadcast::Receiver<Arc<LiveEvent>>,
}

impl EventBus {
    /// `history`: events kept per tenant for resuming; `capacity`: how far a live subscriber
    /// may fall behind before it is told it lagged.
    pub fn new(history: usize, capacity: usize) -> Self {
        Self { tenants: Arc::default(), history, capacity: capacity.max(1) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, TenantChannel>> {
        self.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn channel<'a>(&self, map: &'a mut HashMap<TenantId, TenantChannel>, tenant: &TenantId) -> &'a mut TenantChannel {
        map.entry(tenant.clone()).or_insert_with(|| TenantChannel {
            tx: broadcast::channel(self.capacity).0,
            next_seq: 1,
            history: VecDeque::with_capacity(self.history.min(1024)),
        })
    }

    /// Publishes an event; never blocks (a short lock, no awaiting).
    pub fn publish(
        &self,
        tenant: &TenantId,
        kind: impl Into<String>,
        call_id: Option<&CallId>,
        department: Option<&str>,
        data: serde_json::Value,
    ) -> u64 {
        let mut map = self.lock();
        let ch = self.channel(&mut map, tenant);
        let event = Arc::new(LiveEvent {
            seq: ch.next_seq,
            at: now_ms(),
            kind: kind.into(),
            call_id: call_id.cloned(),
            department: department.map(str::to_string),
            data,
        });
        ch.next_seq += 1;
        if self.history > 0 {
            if ch.history.len() == self.history {
                ch.history.pop_front();
            }
            ch.history.push_back(event.clone());
        }
        // No subscribers is fine: the history still has it.
        let _ = ch.tx.send(event.clone());
        event.seq
    }

    /// Subscribes to a tenant's events; with `since`, first returns retained events after it.
    pub fn subscribe(&self, tenant: &TenantId, since: Option<u64>) -> Subscription {
        let mut map = self.lock();
        let ch = self.channel(&mut map, tenant);
        // Subscribing under the same lock as publishing means nothing falls between the
        // history snapshot and the live stream.
        let live = ch.tx.subscribe();
        let (missed, history_truncated) = match since {
            None => (Vec::new(), false),
            Some(since) => {
                let missed: Vec<_> = ch.history.iter().filter(|e| e.seq > since).cloned().collect();
                let oldest = ch.history.front().map_or(ch.next_seq, |e| e.seq);
                (missed, since + 1 < oldest && since + 1 < ch.next_seq)
            }
        };
        Subscription { missed, history_truncated, live }
    }

    /// The last sequence number issued for a tenant (0 when none).
    pub fn last_seq(&self, tenant: &TenantId) -> u64 {
        self.lock().get(tenant).map_or(0, |c| c.next_seq - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn sequence_history_and_tenant_isolation() {
        let bus = EventBus::new(3, 16);
        let a = TenantId("a".into());
        let b = TenantId("b".into());
        for i in 0..5 {
            bus.publish(&a, "call.started", None, None, json!({ "i": i }));
        }
        bus.publish(&b, "call.started", None, None, json!({}));
        assert_eq!(bus.last_seq(&a), 5);
        assert_eq!(bus.last_seq(&b), 1, "each tenant has its own sequence");

        let sub = bus.subscribe(&a, Some(3));
        assert_eq!(sub.missed.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4, 5]);
        assert!(!sub.history_truncated);
        let sub = bus.subscribe(&a, Some(0));
        assert_eq!(sub.missed.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert!(sub.history_truncated, "events 1 and 2 are gone");

        let mut live = bus.subscribe(&a, None).live;
        bus.publish(&b, "other", None, None, json!({}));
        bus.publish(&a, "mine", None, None, json!({}));
        assert_eq!(live.recv().await.unwrap().kind, "mine");
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_told_it_lagged() {
        let bus = EventBus::new(0, 4);
        let t = TenantId("t".into());
        let mut slow = bus.subscribe(&t, None).live;
        for _ in 0..10 {
            bus.publish(&t, "k", None, None, json!({}));
        }
        assert!(matches!(slow.recv().await, Err(broadcast::error::RecvError::Lagged(6))));
        assert_eq!(slow.recv().await.unwrap().seq, 7);
    }
}
