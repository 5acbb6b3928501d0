//! Remembering ids seen inside a time window, in bounded memory.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// Default number of ids a [`ReplayGuard`] remembers.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

type Key = [u8; 16];

/// Remembers which ids were seen until they expire, in bounded memory.
///
/// Each id is stored as a 16-byte digest (so a long id costs no more than a
/// short one) with its expiry, at most `capacity` of them. Expired ids are
/// pruned as new ones arrive; when the guard is full the oldest entry is
/// forgotten first, so a flood of more than `capacity` distinct ids inside one
/// window can make an old id look new again. Size it for your peak rate
/// times the window.
///
/// A [`Verifier`](super::Verifier) uses one to refuse replayed requests
/// inside its timestamp tolerance; the ingress uses one to acknowledge
/// duplicate deliveries without emitting them twice. Share it between clones
/// by wrapping it in an `Arc` (the verifier does).
///
/// ```
/// use hookbus::verify::ReplayGuard;
///
/// let guard = ReplayGuard::new(1000);
/// assert!(guard.first_seen("msg_1", 100, 0));
/// assert!(!guard.first_seen("msg_1", 100, 50)); // inside its window
/// assert!(guard.first_seen("msg_1", 200, 101)); // expired at 100: new again
/// ```
pub struct ReplayGuard {
    capacity: usize,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    keys: HashSet<Key>,
    // Insertion order with each entry's expiry (unix seconds).
    order: VecDeque<(Key, i64)>,
    evicted: u64,
}

impl fmt::Debug for ReplayGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayGuard")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl Default for ReplayGuard {
    fn default() -> Self {
        ReplayGuard::new(DEFAULT_REPLAY_CAPACITY)
    }
}

fn key(id: &str) -> Key {
    let digest = Sha256::digest(id.as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&digest[..16]);
    k
}

impl ReplayGuard {
    /// A guard remembering at most `capacity` ids (at least 1).
    pub fn new(capacity: usize) -> ReplayGuard {
        ReplayGuard {
            capacity: capacity.max(1),
            seen: Mutex::new(Seen::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        // The state stays consistent even if a holder panicked mid-way: at
        // worst an id is remembered without its order entry or vice versa.
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `id` as seen until `expires_at` (unix seconds) and says whether
    /// it is new: `false` when it was already seen and has not expired at
    /// `now`.
    pub fn first_seen(&self, id: &str, expires_at: i64, now: i64) -> bool {
        let k = key(id);
        let mut seen = self.lock();
        while let Some(&(old, exp)) = seen.order.front() {
            if exp > now {
                break;
            }
            seen.order.pop_front();
            seen.keys.remove(&old);
        }
        if seen.keys.contains(&k) {
            // Entries further back may have expired while the front has not.
            let expired = seen
                .order
                .iter()
                .any(|&(other, exp)| other == k && exp <= now);
            if !expired {
                return false;
            }
            seen.order.retain(|&(other, _)| other != k);
            seen.keys.remove(&k);
        }
        while seen.order.len() >= self.capacity {
            if let Some((old, _)) = seen.order.pop_front() {
                seen.keys.remove(&old);
                seen.evicted += 1;
            }
        }
        seen.keys.insert(k);
        seen.order.push_back((k, expires_at));
        true
    }

    /// Forgets `id`, e.g. when the request it came with could not be
    /// processed and the sender will retry.
    pub fn forget(&self, id: &str) {
        let k = key(id);
        let mut seen = self.lock();
        if seen.keys.remove(&k) {
            seen.order.retain(|&(other, _)| other != k);
        }
    }

    /// How many ids are remembered now (expired ones included until pruned).
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most ids remembered at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many unexpired ids were forgotten because the guard was full.
    pub fn evicted(&self) -> u64 {
        self.lock().evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_evicts_oldest() {
        let g = ReplayGuard::new(3);
        for id in ["a", "b", "c", "d"] {
            assert!(g.first_seen(id, 1000, 0));
        }
        assert_eq!(g.len(), 3);
        assert_eq!(g.evicted(), 1);
        assert!(g.first_seen("a", 1000, 0), "a was evicted");
        assert!(!g.first_seen("d", 1000, 0));
    }

    #[test]
    fn expired_entries_are_pruned() {
        let g = ReplayGuard::new(10);
        assert!(g.first_seen("a", 10, 0));
        assert!(g.first_seen("b", 20, 0));
        assert!(g.first_seen("c", 30, 15));
        assert_eq!(g.len(), 2, "a expired at 10");
        assert_eq!(g.evicted(), 0);
    }

    #[test]
    fn out_of_order_expiry_still_expires() {
        let g = ReplayGuard::new(10);
        assert!(g.first_seen("long", 100, 0));
        assert!(g.first_seen("short", 5, 0));
        assert!(g.first_seen("short", 50, 6), "short expired at 5");
        assert!(!g.first_seen("short", 50, 7));
    }

    #[test]
    fn forget_makes_an_id_new() {
        let g = ReplayGuard::new(10);
        assert!(g.first_seen("a", 100, 0));
        g.forget("a");
        assert!(g.first_seen("a", 100, 0));
        assert!(!g.is_empty());
    }
}
