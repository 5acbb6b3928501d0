//! Remembering ids seen inside a time window, in bounded memory, in O(1) per
//! call.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};

/// Default number of ids a [`ReplayGuard`] remembers.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// What the guard stores per id: 16 bytes of its SHA-256. The digest is
/// uniformly distributed whatever the sender chose, so a fast non-keyed hash
/// map is safe from crafted collisions.
pub(crate) type Key = [u8; 16];

/// Remembers which ids were seen until they expire, in bounded memory.
///
/// Each id is stored as a 16-byte digest (so a long id costs no more than a
/// short one) with its expiry, at most `capacity` of them. Expired ids are
/// pruned as new ones arrive; when the guard is full the oldest entry is
/// forgotten first, so a flood of more than `capacity` distinct ids inside one
/// window can make an old id look new again. Size it for your peak rate
/// times the window.
///
/// Every call costs O(1) (amortised), for new and for seen ids alike: a hash
/// map from id to its entry answers lookups, and a queue in insertion order
/// says which entry to forget first. Entries removed early ([`forget`](Self::forget),
/// a released [`Reservation`]) leave a stale slot in the queue that is
/// skipped when it reaches the front, and the queue is compacted whenever
/// stale slots outnumber live ones, so it never holds more than twice
/// `capacity` slots.
///
/// A [`Verifier`](super::Verifier) uses one to refuse replayed requests
/// inside its window; the ingress uses one to acknowledge duplicate
/// deliveries without emitting them twice. Share it between clones by
/// wrapping it in an `Arc` (the verifier does).
///
/// ```
/// use hookbus::verify::ReplayGuard;
///
/// let guard = ReplayGuard::new(1000);
/// assert!(guard.first_seen("msg_1", 100, 0));
/// assert!(!guard.first_seen("msg_1", 100, 50)); // inside its window
/// assert!(guard.first_seen("msg_1", 200, 101)); // expired at 100: new again
/// ```
///
/// Work that can fail after the id was checked reserves it instead, and
/// commits the reservation only once the work is done: until then a second
/// request with the same id is told it is [in flight](Admission::InFlight),
/// not that it is a duplicate, and a reservation dropped without commit
/// leaves no trace.
///
/// ```
/// use std::sync::Arc;
/// use hookbus::verify::{Admission, ReplayGuard};
///
/// let guard = Arc::new(ReplayGuard::new(1000));
/// let Admission::New(reservation) = guard.reserve("msg_1", 100, 0) else { unreachable!() };
/// assert!(matches!(guard.reserve("msg_1", 100, 0), Admission::InFlight));
/// drop(reservation); // the work failed: the sender's retry is new
/// let Admission::New(reservation) = guard.reserve("msg_1", 100, 1) else { unreachable!() };
/// reservation.commit(); // the work is done: the retry is a duplicate
/// assert!(matches!(guard.reserve("msg_1", 100, 2), Admission::Seen));
/// ```
pub struct ReplayGuard {
    capacity: usize,
    seen: Mutex<Seen>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Unix seconds; the entry is gone at `expires`.
    expires: i64,
    /// Matches the entry's slot in `order`; other slots for the key are stale.
    seq: u64,
    /// Reserved, not yet committed.
    pending: bool,
}

#[derive(Default)]
struct Seen {
    entries: FxHashMap<Key, Entry>,
    /// Insertion order, with the `seq` each slot was made for.
    order: VecDeque<(Key, u64)>,
    next_seq: u64,
    evicted: u64,
    /// Slots and entries examined (the unit test checks it stays O(1)).
    #[cfg(test)]
    examined: usize,
}

impl Seen {
    fn is_live(&self, key: &Key, seq: u64) -> bool {
        self.entries.get(key).is_some_and(|e| e.seq == seq)
    }

    /// Pops stale slots and expired entries off the front.
    fn prune(&mut self, now: i64) {
        while let Some(&(key, seq)) = self.order.front() {
            #[cfg(test)]
            {
                self.examined += 1;
            }
            match self.entries.get(&key) {
                Some(e) if e.seq == seq && e.expires > now => break,
                Some(e) if e.seq == seq => {
                    self.entries.remove(&key);
                }
                _ => {}
            }
            self.order.pop_front();
        }
    }

    /// Forgets the oldest live entry to make room.
    fn evict_oldest(&mut self, now: i64) {
        while let Some((key, seq)) = self.order.pop_front() {
            #[cfg(test)]
            {
                self.examined += 1;
            }
            if self.is_live(&key, seq) {
                if let Some(e) = self.entries.remove(&key)
                    && e.expires > now
                {
                    self.evicted += 1;
                }
                return;
            }
        }
    }

    /// Drops stale slots once they outnumber live ones: amortised O(1),
    /// since each compaction follows at least as many removals as it visits
    /// live slots.
    fn compact(&mut self) {
        if self.order.len() <= 2 * self.entries.len() + 16 {
            return;
        }
        #[cfg(test)]
        {
            self.examined += self.order.len();
        }
        let entries = &self.entries;
        self.order
            .retain(|(key, seq)| entries.get(key).is_some_and(|e| e.seq == *seq));
    }
}

/// What [`ReplayGuard::reserve`] found.
#[derive(Debug)]
#[must_use]
pub enum Admission {
    /// The id is new: it is reserved until the [`Reservation`] is committed
    /// (then it is seen) or dropped (then it leaves no trace).
    New(Reservation),
    /// The id was committed before and has not expired: a duplicate.
    Seen,
    /// The id is reserved by work still under way: neither new nor a
    /// duplicate yet; ask the sender to retry.
    InFlight,
}

/// An id reserved in a [`ReplayGuard`]: [`commit`](Self::commit) it when the
/// work it stands for is done; dropping it uncommitted forgets the id.
#[must_use = "dropping a reservation forgets the id; commit it once the work is done"]
pub struct Reservation {
    guard: Arc<ReplayGuard>,
    key: Key,
    seq: u64,
    committed: bool,
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("committed", &self.committed)
            .finish_non_exhaustive()
    }
}

impl Reservation {
    /// The work is done: the id is seen until it expires.
    pub fn commit(mut self) {
        self.committed = true;
        let mut seen = self.guard.lock();
        if let Some(e) = seen.entries.get_mut(&self.key)
            && e.seq == self.seq
        {
            e.pending = false;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let mut seen = self.guard.lock();
        if seen.is_live(&self.key, self.seq) {
            seen.entries.remove(&self.key);
            seen.compact();
        }
    }
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
    digest_key(&[id.as_bytes()])
}

/// The key of several parts, each length-prefixed so that no two different
/// lists of parts share a key.
pub(crate) fn digest_key(parts: &[&[u8]]) -> Key {
    let mut h = Sha256::new();
    if let [one] = parts {
        // A single part hashes as itself: the key of `first_seen(id)`.
        h.update(one);
    } else {
        // 0xFF never starts a UTF-8 string, so no id given as text shares a
        // key with a list of parts.
        h.update([0xFF]);
        for p in parts {
            h.update((p.len() as u64).to_be_bytes());
            h.update(p);
        }
    }
    let digest = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&digest[..16]);
    k
}

/// Why [`ReplayGuard::admit`] did not take a key.
pub(crate) enum Refusal {
    Seen,
    InFlight,
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
        // Every step leaves the map and the queue consistent (a slot without
        // its entry is stale by design), so a poisoned lock is still usable.
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `key` unless it is live: the new entry's seq.
    pub(crate) fn admit(
        &self,
        key: Key,
        expires_at: i64,
        now: i64,
        pending: bool,
    ) -> Result<u64, Refusal> {
        let mut seen = self.lock();
        seen.prune(now);
        #[cfg(test)]
        {
            seen.examined += 1;
        }
        if let Some(e) = seen.entries.get(&key) {
            if e.expires > now {
                return Err(if e.pending {
                    Refusal::InFlight
                } else {
                    Refusal::Seen
                });
            }
            // Expired further back in the queue than the front reached:
            // its slot becomes stale.
            seen.entries.remove(&key);
        }
        while seen.entries.len() >= self.capacity {
            seen.evict_oldest(now);
        }
        let seq = seen.next_seq;
        seen.next_seq += 1;
        seen.entries.insert(
            key,
            Entry {
                expires: expires_at,
                seq,
                pending,
            },
        );
        seen.order.push_back((key, seq));
        seen.compact();
        Ok(seq)
    }

    pub(crate) fn reserve_key(self: &Arc<Self>, key: Key, expires_at: i64, now: i64) -> Admission {
        match self.admit(key, expires_at, now, true) {
            Ok(seq) => Admission::New(Reservation {
                guard: self.clone(),
                key,
                seq,
                committed: false,
            }),
            Err(Refusal::Seen) => Admission::Seen,
            Err(Refusal::InFlight) => Admission::InFlight,
        }
    }

    /// Records `id` as seen until `expires_at` (unix seconds) and says whether
    /// it is new: `false` when it was already seen (or is reserved) and has
    /// not expired at `now`.
    pub fn first_seen(&self, id: &str, expires_at: i64, now: i64) -> bool {
        self.admit(key(id), expires_at, now, false).is_ok()
    }

    /// Reserves `id` until `expires_at` (unix seconds) if it is new at `now`;
    /// see [`Admission`]. The id counts as seen only once the returned
    /// [`Reservation`] is committed.
    pub fn reserve(self: &Arc<Self>, id: &str, expires_at: i64, now: i64) -> Admission {
        self.reserve_key(key(id), expires_at, now)
    }

    /// Forgets `id`, e.g. when the request it came with could not be
    /// processed and the sender will retry.
    pub fn forget(&self, id: &str) {
        let mut seen = self.lock();
        if seen.entries.remove(&key(id)).is_some() {
            seen.compact();
        }
    }

    /// How many ids are remembered now (expired ones included until pruned).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
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
    fn lookups_and_forgets_examine_a_constant_number_of_entries() {
        // Issue #11: a seen id used to cost a scan of every remembered id.
        let g = ReplayGuard::new(10_000);
        for i in 0..10_000 {
            assert!(g.first_seen(&format!("id-{i}"), 1_000, 0));
        }
        let before = g.lock().examined;
        for i in (0..10_000).step_by(100) {
            assert!(!g.first_seen(&format!("id-{i}"), 1_000, 1));
        }
        for i in (1..10_000).step_by(100) {
            g.forget(&format!("id-{i}"));
        }
        let per_call = (g.lock().examined - before) / 200;
        assert!(per_call <= 4, "{per_call} entries examined per call");
    }

    #[test]
    fn forget_makes_an_id_new() {
        let g = ReplayGuard::new(10);
        assert!(g.first_seen("a", 100, 0));
        g.forget("a");
        assert!(g.first_seen("a", 100, 0));
        assert!(!g.is_empty());
    }

    #[test]
    fn a_released_reservation_leaves_no_trace_and_a_committed_one_is_seen() {
        let g = Arc::new(ReplayGuard::new(10));
        let Admission::New(r) = g.reserve("a", 100, 0) else {
            panic!("new")
        };
        assert!(matches!(g.reserve("a", 100, 0), Admission::InFlight));
        assert!(!g.first_seen("a", 100, 0), "in flight is not new");
        drop(r);
        assert!(g.is_empty());
        let Admission::New(r) = g.reserve("a", 100, 1) else {
            panic!("new again")
        };
        r.commit();
        assert!(matches!(g.reserve("a", 100, 2), Admission::Seen));
        assert!(matches!(g.reserve("a", 200, 100), Admission::New(_)));
    }

    #[test]
    fn a_stale_reservation_does_not_touch_the_entry_that_replaced_it() {
        let g = Arc::new(ReplayGuard::new(10));
        let Admission::New(old) = g.reserve("a", 5, 0) else {
            panic!("new")
        };
        // Expired while still reserved: the next request takes the id over.
        assert!(g.first_seen("a", 100, 6));
        drop(old);
        assert!(!g.first_seen("a", 100, 7), "the newer entry survives");
    }

    #[test]
    fn stale_slots_are_compacted() {
        let g = ReplayGuard::new(100);
        for i in 0..10_000 {
            let id = format!("id-{i}");
            assert!(g.first_seen(&id, 1_000, 0));
            g.forget(&id);
        }
        let seen = g.lock();
        assert!(
            seen.order.len() <= 2 * seen.entries.len() + 17,
            "{}",
            seen.order.len()
        );
    }
}
