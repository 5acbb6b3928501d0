//! The interest index: which event types some subscriber wants.
//!
//! `emit` consults a snapshot of this index before doing anything else, so an
//! event nobody listens to costs one atomic load, a hash probe and a counter:
//! no allocation and no channel traffic. Subscribing and unsubscribing rebuild
//! the snapshot (rare, and off the hot path).

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

/// The index: a writer side under a mutex, readers on a lock-free snapshot.
#[derive(Debug, Default)]
pub(crate) struct Interest {
    snapshot: ArcSwap<Snapshot>,
    patterns: Mutex<Vec<(u64, Pattern)>>,
}

impl Interest {
    #[inline]
    pub(crate) fn wants(&self, event_type: &str) -> bool {
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
        for (_, p) in all {
            if p.is_catch_all() {
                snap.catch_all = true;
            } else if p.is_exact() {
                *snap.exact.entry(p.as_str().into()).or_default() += 1;
            } else if !snap.wild.contains(p) {
                snap.wild.push(p.clone());
            }
        }
        self.snapshot.store(Arc::new(snap));
    }
}
