//! Ordered delivery per key: events that share a key are sent one after the
//! other, in the order the subscriber dispatched them; events with other keys
//! (or none) go on concurrently.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::event::Event;
use crate::expr::path::resolve_str;

/// The chain of deliveries per key: each waits for the one before it.
#[derive(Debug)]
pub(crate) struct KeyOrder {
    path: String,
    tails: Mutex<HashMap<String, (u64, oneshot::Receiver<()>)>>,
    next: AtomicU64,
}

/// A delivery's place in its keys' chains. Dropping it lets the next
/// delivery of each key go.
#[derive(Debug)]
pub(crate) struct Gate {
    order: Arc<KeyOrder>,
    before: Vec<oneshot::Receiver<()>>,
    mine: Vec<(String, u64, oneshot::Sender<()>)>,
}

impl KeyOrder {
    /// The key's field path.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    pub(crate) fn new(path: String) -> KeyOrder {
        KeyOrder {
            path,
            tails: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
        }
    }

    /// Takes places for `events` now (synchronously, so dispatch order is
    /// delivery order).
    pub(crate) fn enter(self: &Arc<Self>, events: &[Arc<Event>]) -> Gate {
        let mut keys: Vec<String> = events
            .iter()
            .filter_map(|e| resolve_str(e, &self.path))
            .map(|v| match &*v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let mut gate = Gate {
            order: self.clone(),
            before: Vec::new(),
            mine: Vec::new(),
        };
        let mut tails = self.tails.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            let id = self.next.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            if let Some((_, prev)) = tails.insert(key.clone(), (id, rx)) {
                gate.before.push(prev);
            }
            gate.mine.push((key, id, tx));
        }
        gate
    }
}

impl Gate {
    /// Whether an earlier delivery of one of its keys may still be running.
    pub(crate) fn must_wait(&self) -> bool {
        !self.before.is_empty()
    }

    /// Waits until the earlier deliveries of the same keys are done.
    pub(crate) async fn wait(&mut self) {
        for prev in self.before.drain(..) {
            // Err means the earlier delivery finished (its sender dropped).
            let _ = prev.await;
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let mut tails = self.order.tails.lock().unwrap_or_else(|e| e.into_inner());
        for (key, id, _) in &self.mine {
            if tails.get(key).is_some_and(|(tail, _)| tail == id) {
                tails.remove(key);
            }
        }
        // The senders drop with `self.mine`, waking the next in each chain.
    }
}
