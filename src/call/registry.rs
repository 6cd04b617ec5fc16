//! The live calls of this process: handles only (each call's state lives in its actor).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::handle::CallHandle;
use crate::ids::{CallId, TenantId};

#[derive(Debug, thiserror::Error)]
#[error("server at capacity: {max} concurrent calls")]
pub struct AtCapacity {
    pub max: usize,
}

#[derive(Clone)]
pub struct CallRegistry {
    inner: Arc<Mutex<HashMap<CallId, CallHandle>>>,
    max: usize,
}

/// Removes the call from the registry when the actor ends, however it ends.
pub struct Registration {
    registry: CallRegistry,
    id: CallId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut calls = self.registry.lock();
        calls.remove(&self.id);
        metrics::gauge!("switchboard_calls_active").set(calls.len() as f64);
    }
}

impl CallRegistry {
    pub fn new(max: usize) -> Self {
        Self { inner: Arc::default(), max }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CallId, CallHandle>> {
        // A panic while holding this short lock cannot leave the map half-updated.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn register(&self, handle: CallHandle) -> Result<Registration, AtCapacity> {
        let mut calls = self.lock();
        if calls.len() >= self.max {
            return Err(AtCapacity { max: self.max });
        }
        let id = handle.id.clone();
        calls.insert(id.clone(), handle);
        metrics::gauge!("switchboard_calls_active").set(calls.len() as f64);
        metrics::counter!("switchboard_calls_total").increment(1);
        Ok(Registration { registry: self.clone(), id })
    }

    pub fn get(&self, tenant: &TenantId, id: &CallId) -> Option<CallHandle> {
        self.lock().get(id).filter(|h| &h.tenant == tenant).cloned()
    }

    pub fn list(&self, tenant: &TenantId) -> Vec<CallHandle> {
        self.lock().values().filter(|h| &h.tenant == tenant).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
