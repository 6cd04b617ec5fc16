//! Per-API-key concurrency: each key may run a bounded number of syntheses at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::TtsApiError;

/// Counts running syntheses per key. Cheap to clone.
#[derive(Clone, Debug)]
pub struct KeyLimiter {
    max: usize,
    running: Arc<Mutex<HashMap<String, usize>>>,
}

/// One running synthesis; frees its slot when dropped (response finished or abandoned).
#[derive(Debug)]
pub struct Permit {
    key: String,
    running: Arc<Mutex<HashMap<String, usize>>>,
}

impl KeyLimiter {
    pub fn new(max: usize) -> Self {
        Self { max, running: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// A slot for `key`, or `TooManyRequests` when all of its slots are taken.
    pub fn acquire(&self, key: &str) -> Result<Permit, TtsApiError> {
        let mut running = self.running.lock().expect("limiter lock is never poisoned");
        let n = running.entry(key.to_owned()).or_insert(0);
        if *n >= self.max {
            return Err(TtsApiError::TooManyRequests { limit: self.max });
        }
        *n += 1;
        Ok(Permit { key: key.to_owned(), running: self.running.clone() })
    }

    /// Syntheses `key` runs now.
    pub fn running(&self, key: &str) -> usize {
        self.running.lock().expect("limiter lock is never poisoned").get(key).copied().unwrap_or(0)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut running = self.running.lock().expect("limiter lock is never poisoned");
        if let Some(n) = running.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_per_key_and_freed_on_drop() {
        let l = KeyLimiter::new(2);
        let a1 = l.acquire("a").unwrap();
        let _a2 = l.acquire("a").unwrap();
        assert!(matches!(l.acquire("a"), Err(TtsApiError::TooManyRequests { limit: 2 })));
        let _b = l.acquire("b").expect("another key has its own slots");
        drop(a1);
        assert_eq!(l.running("a"), 1);
        assert!(l.acquire("a").is_ok());
    }
}
