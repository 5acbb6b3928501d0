//! The interest index: which event types some subscriber wants.
//!
//! `emit` consults it before doing anything else. Its first stage is a
//! 4096-bit filter over the first two bytes of every type some pattern could
//! match: for a type no pattern could match it answers "no" with two byte
//! reads and one relaxed atomic load, no hashing and no allocation. Anything
//! the filter lets through is checked exactly against a snapshot of the
//! patterns (an `ArcSwap`, lock-free to read). Subscribing and unsubscribing
//! rebuild both (rare, and off the hot path).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;

use crate::pattern::Pattern;

/// An immutable view of every live subscriber's pattern.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    catch_all: bool,
    /// Exact event types (value: how many subscribers use it).
    exact: FxHashMap<Box<str>, usize>,
    /// Wildcard patterns.
    wild: Vec<Pattern>,
}

impl Snapshot {
    #[inline]
    pub(crate) fn wants(&self, event_type: &str) -> bool {
        self.catch_all
            || (!self.exact.is_empty() && self.exact.contains_key(event_type))
            || self.wild.iter().any(|p| p.matches(event_type))
    }
}

const FILTER_WORDS: usize = 64;

/// The filter slot of a type that starts with bytes `b0`, `b1` (`0` past the end).
#[inline]
fn slot(b0: u8, b1: u8) -> usize {
    (((b0 & 63) as usize) << 6) | (b1 & 63) as usize
}

/// The index: a writer side under a mutex, readers lock-free.
#[derive(Debug)]
pub(crate) struct Interest {
    /// Some pattern can match types of any prefix (`*`, `*.x`, `**.x`): the
    /// filter cannot say no.
    broad: AtomicBool,
    filter: [AtomicU64; FILTER_WORDS],
    snapshot: ArcSwap<Snapshot>,
    patterns: Mutex<Vec<(u64, Pattern)>>,
}

impl Default for Interest {
    fn default() -> Self {
        Interest {
            broad: AtomicBool::new(false),
            filter: std::array::from_fn(|_| AtomicU64::new(0)),
            snapshot: ArcSwap::default(),
            patterns: Mutex::new(Vec::new()),
        }
    }
}

impl Interest {
    #[inline]
    pub(crate) fn wants(&self, event_type: &str) -> bool {
        if !self.broad.load(Ordering::Relaxed) {
            let b = event_type.as_bytes();
            let s = slot(
                b.first().copied().unwrap_or(0),
                b.get(1).copied().unwrap_or(0),
            );
            if self.filter[s >> 6].load(Ordering::Relaxed) & (1 << (s & 63)) == 0 {
                return false;
            }
        }
        self.snapshot.load().wants(event_type)
    }

    pub(crate) fn add(&self, id: u64, pattern: Pattern) {
        let mut all = self.patterns.lock().unwrap_or_else(|e| e.into_inner());
        all.push((id, pattern));
        self.rebuild(&all);
    }

    pub(crate) fn remove(&self, id: u64) {
        let mut all = self.patterns.lock().unwrap_or_else(|e| e.into_inner());
        let before = all.len();
        all.retain(|(i, _)| *i != id);
        if all.len() != before {
            self.rebuild(&all);
        }
    }

    fn rebuild(&self, all: &[(u64, Pattern)]) {
        let mut snap = Snapshot::default();
        let mut bits = [0u64; FILTER_WORDS];
        let mut broad = false;
        for (_, p) in all {
            if p.is_catch_all() {
                snap.catch_all = true;
            } else if p.is_exact() {
                *snap.exact.entry(p.as_str().into()).or_default() += 1;
            } else if !snap.wild.contains(p) {
                snap.wild.push(p.clone());
            }
            match p.first_literal().map(str::as_bytes) {
                Some(&[b0, b1, ..]) => set(&mut bits, slot(b0, b1)),
                Some(&[b0]) => {
                    // `a.*` matches `a.x` ("a."); `a.**` also matches `a` itself.
                    set(&mut bits, slot(b0, b'.'));
                    set(&mut bits, slot(b0, 0));
                }
                _ => broad = true,
            }
        }
        // Publish the snapshot before the filter admits its types.
        self.snapshot.store(Arc::new(snap));
        for (word, value) in self.filter.iter().zip(bits) {
            word.store(value, Ordering::Release);
        }
        self.broad.store(broad, Ordering::Release);
    }
}

fn set(bits: &mut [u64; FILTER_WORDS], s: usize) {
    bits[s >> 6] |= 1 << (s & 63);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(patterns: &[&str]) -> Interest {
        let i = Interest::default();
        for (n, p) in patterns.iter().enumerate() {
            i.add(n as u64, Pattern::new(p).unwrap());
        }
        i
    }

    #[test]
    fn filter_never_hides_a_match() {
        let i = index(&["a.**", "decision.*", "x", "order.placed"]);
        for ty in ["a", "a.b", "decision.c", "x", "order.placed"] {
            assert!(i.wants(ty), "{ty}");
        }
        for ty in ["b", "ab", "decision", "xy", "order.paid", "metrics.tick"] {
            assert!(!i.wants(ty), "{ty}");
        }
        let broad = index(&["**.failed"]);
        assert!(broad.wants("evaluation.failed"));
        assert!(!broad.wants("evaluation.done"));
        i.remove(0);
        assert!(!i.wants("a.b"));
    }
}
