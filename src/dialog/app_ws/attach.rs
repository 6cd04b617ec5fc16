//! Which app connection drives which call. Shared by all connections of the process.
//!
//! A call belongs to at most one connection. When that connection goes away its calls are
//! orphaned, not released: for a grace period the call stays external (the flow keeps quiet)
//! so the client can reconnect and resume; only when the grace period runs out is the call
//! handed back to its flow with `External(false)`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{debug, info};

use crate::call::{CallCommand, CallHandle};
use crate::ids::CallId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// Driven by a live connection.
    Session(u64),
    /// Its connection is gone; released when the timer of generation `generation` fires.
    Orphaned { session: u64, generation: u64 },
}

/// The outcome of [`Attachments::claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Nobody drove the call: the caller must now send `External(true)`.
    New,
    /// The call was orphaned (or already ours): it is still external, nothing to send.
    Resumed,
    /// Another live connection drives it.
    Taken,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct Attachments {
    inner: Arc<Mutex<HashMap<CallId, Owner>>>,
    next: Arc<AtomicU64>,
    grace: Duration,
}

impl Attachments {
    pub fn new(grace: Duration) -> Self {
        Self { inner: Arc::default(), next: Arc::new(AtomicU64::new(1)), grace }
    }

    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// A fresh id for a connection (also used for orphan timer generations).
    pub fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CallId, Owner>> {
        // Every critical section is a single map operation: a panic cannot leave it half-done.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn claim(&self, call: &CallId, session: u64) -> Claim {
        let mut map = self.lock();
        match map.get(call).copied() {
            None => {
                map.insert(call.clone(), Owner::Session(session));
                Claim::New
            }
            Some(Owner::Session(s)) if s == session => Claim::Resumed,
            Some(Owner::Session(_)) => Claim::Taken,
            Some(Owner::Orphaned { .. }) => {
                map.insert(call.clone(), Owner::Session(session));
                Claim::Resumed
            }
        }
    }

    /// Undoes a `New` claim whose `External(true)` could not be delivered.
    pub fn unclaim(&self, call: &CallId, session: u64) {
        let mut map = self.lock();
        if map.get(call) == Some(&Owner::Session(session)) {
            map.remove(call);
        }
    }

    /// Gives the call back to its flow now (detach). `false` when it was not ours.
    pub fn release(&self, call: &CallHandle, session: u64) -> bool {
        {
            let mut map = self.lock();
            if map.get(&call.id) != Some(&Owner::Session(session)) {
                return false;
            }
            map.remove(&call.id);
        }
        // A full or closed queue: the call is busy or gone; either way nothing more to do.
        let _ = call.send(CallCommand::External(false));
        true
    }

    /// The call ended: forget it.
    pub fn forget(&self, call: &CallId) {
        self.lock().remove(call);
    }

    /// The connection went away: keep the call external for the grace period, then give it
    /// back to its flow unless a connection has claimed it again.
    pub fn orphan(&self, call: CallHandle, session: u64) {
        let generation = self.next_id();
        {
            let mut map = self.lock();
            if map.get(&call.id) != Some(&Owner::Session(session)) {
                return;
            }
            map.insert(call.id.clone(), Owner::Orphaned { session, generation });
        }
        debug!(call_id = %call.id, grace = ?self.grace, "app connection gone; call kept for a reconnect");
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(this.grace).await;
            let expired = {
                let mut map = this.lock();
                let expired = matches!(map.get(&call.id), Some(Owner::Orphaned { generation: g, .. }) if *g == generation);
                if expired {
                    map.remove(&call.id);
                }
                expired
            };
            if expired {
                info!(call_id = %call.id, "no app reconnected in time; the call's flow takes over again");
                let _ = call.send(CallCommand::External(false));
            }
        });
    }

    /// Whether `session` currently drives the call (for tests and diagnostics).
    pub fn owned_by(&self, call: &CallId, session: u64) -> bool {
        self.lock().get(call) == Some(&Owner::Session(session))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TenantId;
    use tokio::sync::mpsc;

    fn call(id: &str) -> (CallHandle, mpsc::Receiver<CallCommand>) {
        let (tx, rx) = mpsc::channel(8);
        (CallHandle::new(CallId(id.into()), TenantId("t".into()), tx), rx)
    }

    #[tokio::test(start_paused = true)]
    async fn an_orphaned_call_is_kept_for_the_grace_period_then_given_back() {
        let a = Attachments::new(Duration::from_secs(10));
        let (h, mut rx) = call("c1");
        assert_eq!(a.claim(&h.id, 1), Claim::New);
        assert_eq!(a.claim(&h.id, 2), Claim::Taken, "one driver per call");
        a.orphan(h.clone(), 1);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(a.claim(&h.id, 2), Claim::Resumed, "a reconnect within the grace period resumes");
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(rx.try_recv().is_err(), "the resumed call was not given back");
        assert!(a.owned_by(&h.id, 2));

        a.orphan(h.clone(), 2);
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(matches!(rx.try_recv(), Ok(CallCommand::External(false))));
        assert_eq!(a.claim(&h.id, 3), Claim::New, "released calls can be claimed afresh");
    }

    #[tokio::test]
    async fn release_only_by_the_owner() {
        let a = Attachments::new(Duration::from_secs(1));
        let (h, mut rx) = call("c1");
        a.claim(&h.id, 1);
        assert!(!a.release(&h, 2));
        assert!(rx.try_recv().is_err());
        assert!(a.release(&h, 1));
        assert!(matches!(rx.try_recv(), Ok(CallCommand::External(false))));
    }
}
