//! A subscriber's bounded mailbox, shared by the emitters that fill it and
//! the subscriber task that empties it.
//!
//! Emitters push straight into the mailboxes of the subscribers an event
//! matches (see [`Hub::offer`](super::Hub::offer)); the overflow policy is
//! applied right here, at the slow subscriber's own mailbox, so one
//! subscriber falling behind never costs another one anything.
//!
//! Every counter of the subscriber lives under the same lock as its queue,
//! and every transition (taken in, filtered, dropped, started, finished)
//! moves an event from one counter to another in one critical section. A
//! snapshot taken under the lock therefore always adds up:
//! `received = filtered + delivered + failed + dropped + queued + in_flight`.
//!
//! The queue is a `VecDeque` that grows on demand: `capacity` is a bound,
//! not an allocation, so an idle subscriber costs a few hundred bytes.
//!
//! `Block` mailboxes also keep `occupied` (queued + reserved) as an atomic, so
//! an emit can reserve a place in every `Block` mailbox it targets before it
//! pushes into any of them: that is what keeps `emit` all-or-nothing.
//!
//! A mailbox is one of three kinds ([`group`](super::group) explains the
//! last two): a queue of its own; a **member** of a group, whose events are
//! read from the group's ring through its cursor (the same counts, kept the
//! same way); or the **group's** own entry in the routing table, which
//! emitters push into (one write for every member).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Context;

use futures_util::task::AtomicWaker;

use super::group::{Cursor, Member, Ring};
use super::options::OverflowPolicy;
use crate::event::Event;

/// The subscriber's counters; see the module docs for how they add up.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) received: u64,
    pub(crate) filtered: u64,
    pub(crate) delivered: u64,
    pub(crate) failed: u64,
    pub(crate) dropped: u64,
    /// Taken out of the queue by the task and started, not finished.
    pub(crate) in_flight: u64,
    /// Reported by the sink's `close`.
    pub(crate) unflushed: u64,
}

#[derive(Debug)]
pub(crate) struct State {
    queue: VecDeque<Arc<Event>>,
    /// Takes new events (false once unsubscribed, at its limit, or shut down).
    open: bool,
    /// Events still to take for `once`/`many(n)`.
    remaining: Option<u64>,
    counts: Counts,
    /// Drops not yet announced as `hookbus.dropped`.
    unreported_drops: u64,
    /// Batching subscribers: when the oldest queued event arrived (a batch's
    /// `max_wait` counts from there, not from when the task first looks).
    oldest_at: Option<tokio::time::Instant>,
    /// Events of the sync loop's current chunk (part of `in_flight`).
    chunk_len: u64,
    /// A group member's cursor on the ring (its queue stays empty).
    cursor: Option<Box<Cursor>>,
}

/// Where a mailbox's events are kept.
#[derive(Debug)]
enum Kind {
    /// In its own queue.
    Own,
    /// In its group's ring, read through `State::cursor`.
    Member(Box<Member>),
    /// The group's entry in the routing table: a push writes the ring.
    Group(Arc<Ring>),
}

/// The sync loop's progress through its chunk. Written by the task alone,
/// outside the lock (a store per event, no lock per event); folded into the
/// counts under the lock when the chunk ends, and read under the lock by
/// snapshots, which fold them the same way, so they always add up.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    started: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
}

impl Progress {
    fn bump(c: &AtomicU64) {
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Release);
    }
    pub(crate) fn start(&self) {
        Progress::bump(&self.started);
    }
    pub(crate) fn ok(&self) {
        Progress::bump(&self.ok);
    }
    pub(crate) fn fail(&self) {
        Progress::bump(&self.failed);
    }
    /// (ok, failed, started), read so that `started >= ok + failed`.
    fn read(&self) -> (u64, u64, u64) {
        let ok = self.ok.load(Ordering::Acquire);
        let failed = self.failed.load(Ordering::Acquire);
        (ok, failed, self.started.load(Ordering::Acquire))
    }
}

/// What the task sees when it looks at its mailbox.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View {
    pub(crate) queued: usize,
    pub(crate) open: bool,
    pub(crate) unreported_drops: u64,
    pub(crate) oldest_at: Option<tokio::time::Instant>,
}

/// A snapshot for stats and reports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    pub(crate) counts: Counts,
    pub(crate) queued: u64,
    /// Of `counts.in_flight`, taken out of the queue but not started yet.
    pub(crate) unstarted: u64,
}

/// How one emit's push went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Counted: queued (or filtered, when not accepted).
    Taken,
    /// Counted, and dropped at once by `DropNewest` (the mailbox was full).
    Dropped,
    /// The mailbox takes nothing new; the event is not this subscriber's.
    Refused,
}

#[derive(Debug)]
pub(crate) struct Mailbox {
    state: Mutex<State>,
    capacity: usize,
    policy: OverflowPolicy,
    batching: bool,
    /// `Block` only: queued + places reserved by emits in progress.
    occupied: AtomicUsize,
    /// Set when the task has something new to look at.
    signal: AtomicBool,
    waker: AtomicWaker,
    /// `publish` callers waiting for room in this (`Block`) mailbox.
    space: tokio::sync::Notify,
    progress: Progress,
    kind: Kind,
}

impl Mailbox {
    pub(crate) fn new(
        capacity: usize,
        policy: OverflowPolicy,
        batching: bool,
        limit: Option<u64>,
    ) -> Mailbox {
        Mailbox::with_kind(capacity, policy, batching, limit, Kind::Own, None)
    }

    /// A member of the group with `ring`, reading from its next write on.
    pub(crate) fn member(ring: Arc<Ring>, policy: OverflowPolicy) -> Mailbox {
        let (member, cursor) = Member::new(ring, policy == OverflowPolicy::Block);
        let capacity = member.ring.capacity();
        Mailbox::with_kind(
            capacity,
            policy,
            false,
            None,
            Kind::Member(Box::new(member)),
            Some(Box::new(cursor)),
        )
    }

    /// A group's entry in the routing table.
    pub(crate) fn group(ring: Arc<Ring>) -> Mailbox {
        let capacity = ring.capacity();
        Mailbox::with_kind(
            capacity,
            OverflowPolicy::DropOldest,
            false,
            None,
            Kind::Group(ring),
            None,
        )
    }

    fn with_kind(
        capacity: usize,
        policy: OverflowPolicy,
        batching: bool,
        limit: Option<u64>,
        kind: Kind,
        cursor: Option<Box<Cursor>>,
    ) -> Mailbox {
        Mailbox {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                open: true,
                remaining: limit,
                counts: Counts::default(),
                unreported_drops: 0,
                oldest_at: None,
                chunk_len: 0,
                cursor,
            }),
            capacity,
            policy,
            batching,
            occupied: AtomicUsize::new(0),
            signal: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            space: tokio::sync::Notify::new(),
            progress: Progress::default(),
            kind,
        }
    }

    /// The ring of the group this mailbox is a member of.
    pub(crate) fn member_of(&self) -> Option<&Arc<Ring>> {
        match &self.kind {
            Kind::Member(m) => Some(&m.ring),
            _ => None,
        }
    }

    /// The ring of the group this is the table entry of.
    pub(crate) fn group_ring(&self) -> Option<&Arc<Ring>> {
        match &self.kind {
            Kind::Group(ring) => Some(ring),
            _ => None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing user-supplied runs under this lock, so it is never poisoned
        // in practice; if it were, the counts are still whole.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn policy(&self) -> OverflowPolicy {
        match &self.kind {
            Kind::Group(ring) if ring.blocks() => OverflowPolicy::Block,
            Kind::Group(_) => OverflowPolicy::DropOldest,
            _ => self.policy,
        }
    }

    /// `Block` only: reserves a place for an emit in progress.
    pub(crate) fn reserve(&self) -> bool {
        if let Kind::Group(ring) = &self.kind {
            return ring.reserve();
        }
        self.occupied
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back `n` places (a cancelled reservation, or events taken out).
    fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let before = self.occupied.fetch_sub(n, Ordering::AcqRel);
        if before >= self.capacity {
            self.space.notify_waiters();
        }
    }

    pub(crate) fn unreserve(&self) {
        match &self.kind {
            Kind::Group(ring) => ring.release(),
            _ => self.release(1),
        }
    }

    /// Whether a `Block` mailbox has a free place now.
    pub(crate) fn has_room(&self) -> bool {
        match &self.kind {
            Kind::Group(ring) => ring.has_room(),
            _ => self.occupied.load(Ordering::Acquire) < self.capacity,
        }
    }

    /// A future that resolves when room may have been made; enable it, check
    /// [`has_room`](Self::has_room), then await it.
    pub(crate) fn space(&self) -> tokio::sync::futures::Notified<'_> {
        match &self.kind {
            Kind::Group(ring) => ring.space(),
            _ => self.space.notified(),
        }
    }

    /// Counts one emitted event in: queued, filtered (`accepted == false`) or
    /// dropped by policy. `reserved` says whether the emit holds a `Block`
    /// reservation, which this consumes. An event evicted by `DropOldest` is
    /// handed back, for the caller to drop once it holds no lock.
    pub(crate) fn push(
        &self,
        event: &Arc<Event>,
        accepted: bool,
        reserved: bool,
    ) -> (Pushed, Option<Arc<Event>>) {
        if let Kind::Group(ring) = &self.kind {
            // No condition in a group: `accepted` is always true.
            if !ring.is_open() {
                if reserved {
                    ring.release();
                }
                return (Pushed::Refused, None);
            }
            return (Pushed::Taken, ring.write(event, reserved));
        }
        let mut evicted = None;
        let mut dropped = false;
        let wake = {
            let mut s = self.lock();
            if !s.open || s.remaining == Some(0) {
                drop(s);
                if reserved {
                    self.unreserve();
                }
                return (Pushed::Refused, None);
            }
            s.counts.received += 1;
            if !accepted {
                s.counts.filtered += 1;
                return (Pushed::Taken, None);
            }
            // The task needs a wake-up only when it may be waiting for this:
            // its queue was empty, it batches (a batch may now be full), it
            // must leave the routing table, or it has drops to announce. A
            // task waiting with events queued (all its slots busy, its sink
            // not ready) is woken by what it waits for.
            let mut wake = self.batching || s.queue.is_empty();
            if let Some(n) = &mut s.remaining {
                *n -= 1;
                if *n == 0 {
                    s.open = false;
                    wake = true;
                }
            }
            if self.batching && s.queue.is_empty() {
                s.oldest_at = Some(tokio::time::Instant::now());
            }
            let full = s.queue.len() >= self.capacity;
            wake |= full && s.unreported_drops == 0;
            match self.policy {
                OverflowPolicy::DropNewest if full => {
                    note_drop(&mut s, event);
                    dropped = true;
                }
                OverflowPolicy::DropOldest if full => {
                    evicted = s.queue.pop_front();
                    if let Some(old) = &evicted {
                        note_drop(&mut s, old);
                    }
                    s.queue.push_back(event.clone());
                }
                // Block: the emit reserved this place.
                _ => s.queue.push_back(event.clone()),
            }
            wake
        };
        if wake {
            self.notify_task();
        }
        let pushed = if dropped {
            Pushed::Dropped
        } else {
            Pushed::Taken
        };
        (pushed, evicted)
    }

    /// Queues events recovered from a durable store, ahead of anything new
    /// and regardless of capacity (they were accepted before the restart).
    /// Called before the subscriber is routed.
    #[cfg(feature = "durable")]
    pub(crate) fn restore(&self, events: impl IntoIterator<Item = Arc<Event>>) {
        let mut s = self.lock();
        let mut n = 0;
        for event in events {
            n += 1;
            s.counts.received += 1;
            if self.batching && s.queue.is_empty() {
                s.oldest_at = Some(tokio::time::Instant::now());
            }
            s.queue.push_back(event);
        }
        if self.policy == OverflowPolicy::Block {
            // Taking them out releases their places like any other.
            self.occupied.fetch_add(n, Ordering::AcqRel);
        }
        drop(s);
        self.notify_task();
    }

    fn notify_task(&self) {
        self.signal.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// The task: registers to be woken, and says whether anything changed
    /// since it last asked.
    pub(crate) fn poll_changed(&self, cx: &mut Context<'_>) -> bool {
        if let Kind::Member(m) = &self.kind {
            // Registered before looking, so a write after the look wakes us.
            m.bell.waker.register(cx.waker());
            return m.bell.signal.swap(false, Ordering::AcqRel) | m.enlist();
        }
        self.waker.register(cx.waker());
        self.signal.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn view(&self) -> View {
        let s = self.lock();
        if let (Kind::Member(m), Some(cursor)) = (&self.kind, &s.cursor) {
            let (queued, lost) = m.look(cursor);
            return View {
                queued: queued as usize + s.queue.len(),
                open: s.open,
                unreported_drops: s.unreported_drops + lost,
                oldest_at: None,
            };
        }
        View {
            queued: s.queue.len(),
            open: s.open,
            unreported_drops: s.unreported_drops,
            oldest_at: s.oldest_at,
        }
    }

    /// Takes up to `max` events out to start them (they count as in flight).
    pub(crate) fn take(&self, max: usize, out: &mut Vec<Arc<Event>>) {
        if let Kind::Member(m) = &self.kind {
            self.take_member(m, max, out, false);
            return;
        }
        let n = {
            let mut s = self.lock();
            let n = max.min(s.queue.len());
            out.extend(s.queue.drain(..n));
            s.counts.in_flight += n as u64;
            // What is left starts the next batch now.
            s.oldest_at = (self.batching && !s.queue.is_empty()).then(tokio::time::Instant::now);
            n
        };
        if self.policy == OverflowPolicy::Block {
            self.release(n);
        }
    }

    /// The sync loop takes a chunk of up to `max` events with one lock; it
    /// reports each through [`progress`](Self::progress) and closes the
    /// chunk with [`end_chunk`](Self::end_chunk).
    pub(crate) fn take_chunk(&self, max: usize, out: &mut Vec<Arc<Event>>) {
        if let Kind::Member(m) = &self.kind {
            self.take_member(m, max, out, true);
            return;
        }
        let n = {
            let mut s = self.lock();
            let n = max.min(s.queue.len());
            out.extend(s.queue.drain(..n));
            s.counts.in_flight += n as u64;
            s.chunk_len = n as u64;
            n
        };
        if self.policy == OverflowPolicy::Block {
            self.release(n);
        }
    }

    /// A member takes from the ring: what it lost to overwrites counts as
    /// dropped, as a `DropOldest` queue's evictions would.
    /// (`chunk`: the sync loop's, see [`take_chunk`](Self::take_chunk).)
    fn take_member(&self, m: &Member, max: usize, out: &mut Vec<Arc<Event>>, chunk: bool) {
        let mut s = self.lock();
        let s = &mut *s;
        let Some(cursor) = s.cursor.as_mut() else {
            return;
        };
        // A closed member drains what it moved out of the ring first.
        let (n, lost) = if s.queue.is_empty() {
            m.take(cursor, max, out)
        } else {
            let n = max.min(s.queue.len());
            out.extend(s.queue.drain(..n));
            (n, 0)
        };
        s.counts.in_flight += n as u64;
        s.counts.dropped += lost;
        s.unreported_drops += lost;
        if chunk {
            s.chunk_len = n as u64;
        }
    }

    pub(crate) fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Folds the chunk's outcomes into the counts. Events of the chunk that
    /// never started (abort) stay in flight: pending, and never started.
    pub(crate) fn end_chunk(&self) {
        let mut s = self.lock();
        let (ok, failed, started) = self.progress.read();
        s.counts.delivered += ok;
        s.counts.failed += failed;
        s.counts.in_flight -= ok + failed;
        s.chunk_len -= started;
        for c in [
            &self.progress.ok,
            &self.progress.failed,
            &self.progress.started,
        ] {
            c.store(0, Ordering::Release);
        }
    }

    /// Records the outcome of `delivered + failed` events that were in flight.
    pub(crate) fn finish(&self, delivered: u64, failed: u64) {
        let mut s = self.lock();
        s.counts.in_flight -= delivered + failed;
        s.counts.delivered += delivered;
        s.counts.failed += failed;
    }

    pub(crate) fn add_unflushed(&self, n: u64) {
        self.lock().counts.unflushed += n;
    }

    /// Takes the drops not yet announced.
    pub(crate) fn take_unreported_drops(&self) -> u64 {
        let mut s = self.lock();
        let s = &mut *s;
        if let (Kind::Member(m), Some(cursor)) = (&self.kind, s.cursor.as_mut()) {
            let lost = m.skip_lost(cursor);
            s.counts.dropped += lost;
            s.unreported_drops += lost;
        }
        std::mem::take(&mut s.unreported_drops)
    }

    /// Takes nothing new from now on; the task drains what is queued.
    pub(crate) fn close(&self) {
        let mut guard = self.lock();
        let s = &mut *guard;
        s.open = false;
        if let (Kind::Member(m), Some(cursor)) = (&self.kind, s.cursor.as_mut()) {
            let lost = m.close(cursor, &mut s.queue);
            s.counts.dropped += lost;
            s.unreported_drops += lost;
            drop(guard);
            m.bell.ring();
            return;
        }
        drop(guard);
        self.notify_task();
        self.space.notify_waiters();
    }

    pub(crate) fn is_open(&self) -> bool {
        match &self.kind {
            Kind::Group(ring) => ring.is_open(),
            _ => self.lock().open,
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let s = self.lock();
        let (ok, failed, started) = self.progress.read();
        let mut counts = s.counts;
        let mut queued = s.queue.len() as u64;
        if let (Kind::Member(m), Some(cursor)) = (&self.kind, &s.cursor) {
            let (received, waiting, lost) = m.counts(cursor);
            counts.received = received;
            counts.dropped += lost;
            queued += waiting;
        }
        counts.delivered += ok;
        counts.failed += failed;
        counts.in_flight -= ok + failed;
        Snapshot {
            counts,
            queued,
            unstarted: s.chunk_len - started,
        }
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        // A member that goes away lets go of the ring's slots it held.
        let s = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if let (Kind::Member(m), Some(cursor)) = (&self.kind, s.cursor.as_mut()) {
            m.abandon(cursor);
        }
    }
}

fn note_drop(s: &mut State, event: &Event) {
    s.counts.dropped += 1;
    // Drops of the bus's own events are counted but not announced, so a
    // `hookbus.dropped` event can never cause another one.
    if !crate::catalog::bus::is_bus_event(event.event_type()) {
        s.unreported_drops += 1;
    }
}
