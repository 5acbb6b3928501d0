//! Counters and reports: [`Bus::stats`](crate::Bus::stats) and
//! [`Bus::shutdown`](crate::Bus::shutdown).
//!
//! For every subscriber the numbers add up:
//!
//! ```text
//! received = filtered + accepted
//! accepted = delivered + failed + dropped + pending
//! ```
//!
//! where `pending` is what sits in the mailbox or in a handler right now.
//! Each subscriber's counters live under one lock with its mailbox, and every
//! step moves an event from one count to another in one critical section, so
//! a snapshot ([`Bus::stats`](crate::Bus::stats),
//! [`Subscription::stats`](crate::Subscription::stats)) always adds up, even
//! while events are flowing.

/// A snapshot of one subscriber's counters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SubscriberStats {
    /// The subscriber's id, unique within its bus.
    pub id: u64,
    /// Its name (given, or derived from the pattern).
    pub name: String,
    /// Its pattern.
    pub pattern: String,
    /// Events whose type matched the pattern.
    pub received: u64,
    /// Events the condition turned away (never entered the mailbox).
    pub filtered: u64,
    /// Events that passed the condition and were offered to the mailbox.
    pub accepted: u64,
    /// Events handled successfully.
    pub delivered: u64,
    /// Events whose handler or sink failed (errors and caught panics).
    pub failed: u64,
    /// Events the overflow policy dropped.
    pub dropped: u64,
    /// Events waiting in the mailbox.
    pub mailbox_len: u64,
    /// Events being handled now.
    pub in_flight: u64,
}

impl SubscriberStats {
    /// Events accepted but neither delivered, failed nor dropped yet.
    pub fn pending(&self) -> u64 {
        self.mailbox_len + self.in_flight
    }
}

/// A snapshot of the bus and all its subscribers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BusStats {
    /// Events taken by at least one subscriber (queued, filtered or dropped
    /// at its mailbox).
    pub emitted: u64,
    /// Events no subscriber's pattern matched: counted, never sent.
    pub unmatched: u64,
    /// Emits refused because a `Block` subscriber's mailbox was full
    /// (`EmitError::Full`).
    pub rejected_full: u64,
    /// Every live subscriber, in subscription order.
    pub subscribers: Vec<SubscriberStats>,
}

impl BusStats {
    /// The subscriber with this name, if any.
    pub fn subscriber(&self, name: &str) -> Option<&SubscriberStats> {
        self.subscribers.iter().find(|s| s.name == name)
    }
}

/// What became of one subscriber's events at shutdown.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SubscriberReport {
    /// Its counters when it stopped (or at the deadline).
    pub stats: SubscriberStats,
    /// Events still pending (in the mailbox or a handler) at the deadline.
    /// `accepted = delivered + failed + dropped + pending`.
    pub pending: u64,
    /// Of `pending`, the events whose handler or sink call had started but
    /// not finished at the deadline (the rest were never started, and never
    /// will be). A sync handler running at the deadline finishes on its
    /// thread after `shutdown` returns; nothing else runs after it.
    pub unfinished: u64,
    /// Of `pending`, the events a durable subscriber kept in its store:
    /// it stopped at once with them on disk (retry schedules included), and
    /// the next subscriber of the same name on the same store delivers
    /// them. Nothing kept is lost.
    pub kept: u64,
    /// Events the sink still held unflushed after closing (e.g. Kafka).
    pub unflushed: u64,
    /// Whether it finished all its work before the deadline.
    pub completed: bool,
}

/// The result of [`Bus::shutdown`](crate::Bus::shutdown).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShutdownReport {
    /// Bus counters at the end.
    pub emitted: u64,
    /// Events no subscriber wanted.
    pub unmatched: u64,
    /// Emits refused because a `Block` subscriber's mailbox was full.
    pub rejected_full: u64,
    /// One entry per subscriber alive at shutdown.
    pub subscribers: Vec<SubscriberReport>,
}

impl ShutdownReport {
    /// Whether every subscriber finished in time with nothing pending.
    pub fn is_clean(&self) -> bool {
        self.subscribers
            .iter()
            .all(|s| s.completed && s.pending == 0 && s.unflushed == 0)
    }

    /// The report of the subscriber with this name, if any.
    pub fn subscriber(&self, name: &str) -> Option<&SubscriberReport> {
        self.subscribers.iter().find(|s| s.stats.name == name)
    }
}

impl std::fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "bus: emitted {}, unmatched {}, rejected (full) {}",
            self.emitted, self.unmatched, self.rejected_full
        )?;
        writeln!(
            f,
            "{:<24} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>8}",
            "subscriber",
            "received",
            "filtered",
            "delivered",
            "failed",
            "dropped",
            "pending",
            "done"
        )?;
        for s in &self.subscribers {
            writeln!(
                f,
                "{:<24} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>8}",
                s.stats.name,
                s.stats.received,
                s.stats.filtered,
                s.stats.delivered,
                s.stats.failed,
                s.stats.dropped,
                s.pending,
                if s.completed {
                    "yes".to_owned()
                } else if s.kept > 0 && s.kept == s.pending {
                    format!("kept {}", s.kept)
                } else {
                    "deadline".to_owned()
                }
            )?;
        }
        Ok(())
    }
}
