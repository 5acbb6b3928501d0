//! The seam between the hub and a durable store: what a durable subscriber
//! records as its events move (accepted, dropped, delivered, failed,
//! retried). Implemented by [`crate::store`] (feature `durable`); the hub,
//! the worker and the webhook sink only call through this trait, so none of
//! them depends on the store.

use std::sync::Arc;
use std::time::SystemTime;

use crate::event::Event;
use crate::sink::BoxFuture;

/// Where a recovered delivery resumes: the attempt it is at and when that
/// attempt is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "webhook"), allow(dead_code))]
pub(crate) struct Resume {
    /// The next attempt's number (2 = the first retry).
    pub(crate) attempt: u32,
    /// When it is due.
    pub(crate) at: SystemTime,
}

/// Why a journal does not take new events now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "durable"), allow(dead_code))]
pub(crate) enum Refusal {
    /// Its write buffer is full; room comes with the next commit
    /// ([`Journal::progress`]).
    Busy(StoreFailure),
    /// Its store failed.
    Failed(StoreFailure),
}

/// A store's error: [`StoreError`](crate::store::StoreError) (there is
/// none without the feature `durable`).
#[cfg(feature = "durable")]
pub(crate) type StoreFailure = crate::store::StoreError;
/// A store's error: [`StoreError`](crate::store::StoreError) (there is
/// none without the feature `durable`).
#[cfg(not(feature = "durable"))]
pub(crate) type StoreFailure = std::convert::Infallible;

/// A ticket for an accepted write: `publish` waits for it to be durable
/// (an error says why it is not).
pub(crate) type Commit = BoxFuture<Result<(), StoreFailure>>;

pub(crate) trait Journal: Send + Sync + 'static {
    /// The subscriber was unsubscribed: it takes no new events and
    /// finishes those it holds; a new durable subscriber may take its name
    /// over meanwhile.
    fn release(&self) {}
    /// Why events cannot be accepted now (the store failed), if so.
    fn refusal(&self) -> Option<Refusal>;
    /// Completes when the store has made progress (room may have been made
    /// in its write buffer).
    fn progress(&self) -> BoxFuture<()>;
    /// Records an event the subscriber is about to queue. Called before the
    /// push, so the task can never finish an event not yet recorded.
    fn append(&self, event: &Arc<Event>);
    /// The event was not queued after all (dropped by the overflow policy,
    /// evicted, or the mailbox took nothing new): it leaves the store.
    fn discard(&self, event: &Arc<Event>);
    /// Delivered: the events leave the store.
    fn delivered(&self, events: &[Arc<Event>]);
    /// Failed for good: the events become persisted dead letters.
    fn failed(&self, events: &[Arc<Event>], reason: &str);
    #[cfg_attr(not(feature = "webhook"), allow(dead_code))]
    /// A retry is scheduled: the attempt count and due time are persisted so
    /// a restart resumes the schedule.
    fn retrying(&self, events: &[Arc<Event>], next: Resume);
    #[cfg_attr(not(feature = "webhook"), allow(dead_code))]
    /// Where a recovered event's delivery resumes (None for a fresh event).
    fn resume(&self, event: &Arc<Event>) -> Option<Resume>;
    /// A future that completes once everything recorded so far is durable.
    fn commit(&self) -> Commit;
}
