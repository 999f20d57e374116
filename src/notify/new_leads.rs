//! The hand-over from intake to the notifier: LeadIngest pushes the key of each new lead it
//! stored, the immediate path takes them all and delivers exactly those leads, with no table
//! scan in between (so a large table, or a sweep under way, never slows a new lead down).
//! Bounded: past [`MAX_QUEUED`] keys a push is dropped and the timer run finds the lead instead.

use std::sync::Mutex;

use tokio::sync::Notify;

/// Keys waiting at most; more means the notifier is far behind, and the timer catches up.
pub const MAX_QUEUED: usize = 10_000;

#[derive(Default)]
pub struct NewLeads {
    keys: Mutex<Vec<(String, String)>>,
    wake: Notify,
}

impl NewLeads {
    /// Queues a stored lead's key and wakes the immediate path.
    pub fn push(&self, pk: &str, rk: &str) {
        let mut keys = self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if keys.len() < MAX_QUEUED {
            keys.push((pk.to_string(), rk.to_string()));
        }
        drop(keys);
        self.wake.notify_one();
    }

    /// Waits for keys, then takes every key queued so far.
    pub async fn take(&self) -> Vec<(String, String)> {
        loop {
            let taken = std::mem::take(&mut *self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
            if !taken.is_empty() {
                return taken;
            }
            self.wake.notified().await;
        }
    }
}
