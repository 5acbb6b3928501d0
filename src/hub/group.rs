//! Groups: subscribers that receive the same events share one broadcast
//! ring, read through their own cursors (the design card's broadcast
//! channel, where it wins).
//!
//! Subscribers with the same patterns, the same key and the same mailbox
//! capacity, without a condition, a limit, batching or a store, and with a
//! [`Block`](super::OverflowPolicy::Block) or
//! [`DropOldest`](super::OverflowPolicy::DropOldest) policy, receive exactly
//! the same events. The first such subscriber gets a mailbox of its own; from
//! the second on they join a group: the routing table holds the group once,
//! an emit writes the event into its ring once (one lock, whatever the
//! number of members), and each member's task reads it through its own
//! cursor. The ring is allocated only when a second subscriber of the same
//! shape arrives, so a lone subscriber still costs a few hundred bytes.
//!
//! Each member keeps its own policy and counters:
//! - a **`Block`** member holds the ring: a slot it has not read is never
//!   overwritten. An emit reserves a place (as for a `Block` mailbox) and
//!   is refused with `Full`, before anything is pushed anywhere, while the
//!   slowest `Block` member is a whole ring behind;
//! - a **`DropOldest`** member never holds anyone: when it falls more than
//!   its capacity behind, the ring overwrites what it has not read, and it
//!   counts (and announces) what it skipped, exactly as its own mailbox
//!   would have evicted the oldest events.
//!
//! A member that stops taking events (unsubscribed, shut down) moves what it
//! has not read out of the ring into a queue of its own and drains that: it
//! holds no one from then on and loses nothing to the members that go on,
//! as a mailbox of its own would.
//!
//! Every emit that writes a group's ring claims its place first (one
//! counter of writes done and claimed), whatever the members' policies, so a
//! `Block` member that joins while an emit is under way finds that write
//! counted; the claim is refused only while a `Block` member holds the ring
//! full. A slot keeps its event until it is written over: an idle group
//! keeps its last `capacity` events alive.
//!
//! `DropNewest` is not offered in a group: a ring keeps the newest events,
//! so that policy keeps a mailbox of its own. Nor are subscriptions that can
//! be re-routed in place (webhooks, for `WebhookManager::update`): a
//! member's mailbox is a cursor on its group's ring and cannot move.
//!
//! Why our own ring and not `tokio::sync::broadcast` or `async-broadcast`:
//! neither lets a subset of the receivers hold the ring while the others lag
//! (tokio's never holds, async-broadcast holds for everyone or no one), and
//! neither lets an emit reserve a place in several rings before writing to
//! any, which `emit`'s all-or-nothing needs. The shape is tokio's (a tail
//! lock, one lock per slot, a list of waiting readers woken by the writer),
//! measured against it in `benches/bus.rs` (`fanout_typed`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use futures_util::task::AtomicWaker;

use crate::event::Event;

/// The largest capacity a group's ring is made for; subscribers with a
/// larger mailbox keep one of their own (a ring is allocated whole).
pub(crate) const MAX_GROUP_CAPACITY: usize = 1 << 16;

/// How a task is woken: set `signal`, wake the waker. Shared between a
/// mailbox and the ring's list of waiting readers.
#[derive(Debug, Default)]
pub(crate) struct Bell {
    pub(crate) signal: AtomicBool,
    pub(crate) waker: AtomicWaker,
    /// In the ring's list of waiting readers.
    enlisted: AtomicBool,
}

impl Bell {
    pub(crate) fn ring(&self) {
        self.signal.store(true, Ordering::Release);
        self.waker.wake();
    }
}

#[derive(Debug, Default)]
struct Slot {
    seq: u64,
    event: Option<Arc<Event>>,
}

/// A member's read position, on a cache line of its own: each member's task
/// writes its own, and the emitter reads the `Block` members' ones only when
/// the ring looks full.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Position(AtomicU64);

#[derive(Debug, Default)]
struct Tail {
    /// The next sequence number to write.
    pos: u64,
    /// The positions of the live `Block` members: a slot is not written
    /// over until each of them has read it.
    blockers: Vec<Arc<Position>>,
    /// Readers waiting for a write: each is woken by the write that makes
    /// the head reach its mark.
    waiters: Vec<(Arc<Bell>, u64)>,
    /// The lowest mark in `waiters` (or lower).
    next_mark: u64,
}

/// One group's ring.
#[derive(Debug)]
pub(crate) struct Ring {
    slots: Box<[RwLock<Slot>]>,
    capacity: usize,
    tail: Mutex<Tail>,
    /// `tail.pos`, readable without the lock (published after the slot).
    head: AtomicU64,
    /// Writes done or claimed by emits in progress (`head` + claims): one
    /// counter, so that a claim checks and takes its place in one step.
    claimed: AtomicU64,
    /// At most the slowest `Block` member's position (refreshed from their
    /// positions when the ring looks full).
    floor: AtomicU64,
    /// An emit found the ring full: members that read on wake `publish`
    /// callers waiting for room.
    full: AtomicBool,
    space: tokio::sync::Notify,
    /// A list with room for the bells a write rings after unlocking (so
    /// waking allocates nothing).
    spare: Mutex<Vec<Arc<Bell>>>,
    /// Members whose mailbox is open (the group takes events while one is).
    open: AtomicUsize,
    /// `Block` members holding the ring (`tail.blockers.len()`).
    blocking: AtomicUsize,
    /// Members, as registered (under the table's write lock).
    pub(crate) members: AtomicUsize,
}

impl Ring {
    pub(crate) fn new(capacity: usize) -> Ring {
        let capacity = capacity.clamp(1, MAX_GROUP_CAPACITY);
        Ring {
            slots: (0..capacity).map(|_| RwLock::default()).collect(),
            capacity,
            tail: Mutex::default(),
            head: AtomicU64::new(0),
            claimed: AtomicU64::new(0),
            floor: AtomicU64::new(0),
            full: AtomicBool::new(false),
            space: tokio::sync::Notify::new(),
            spare: Mutex::default(),
            open: AtomicUsize::new(0),
            blocking: AtomicUsize::new(0),
            members: AtomicUsize::new(0),
        }
    }

    fn tail(&self) -> MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slot(&self, seq: u64) -> &RwLock<Slot> {
        &self.slots[(seq % self.capacity as u64) as usize]
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    #[inline]
    pub(crate) fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Whether an emit must reserve a place (a `Block` member is live).
    /// Whether a `Block` member holds the ring (an emit may be refused).
    #[inline]
    pub(crate) fn blocks(&self) -> bool {
        self.blocking.load(Ordering::SeqCst) > 0
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire) > 0
    }

    /// Places taken: written and not read by every `Block` member, plus
    /// claimed by emits in progress (an upper bound while `floor` lags).
    fn used(&self) -> u64 {
        self.claimed
            .load(Ordering::SeqCst)
            .saturating_sub(self.floor.load(Ordering::SeqCst))
    }

    /// Reads the `Block` members' positions; `true` if the floor rose.
    fn refresh_floor(&self) -> bool {
        let tail = self.tail();
        let min = tail
            .blockers
            .iter()
            .map(|p| p.0.load(Ordering::SeqCst))
            .min()
            .unwrap_or(tail.pos);
        self.floor.fetch_max(min, Ordering::SeqCst) < min
    }

    /// Claims the place of one write for an emit in progress. Every emit
    /// that will write claims first, whatever the members' policies, so a
    /// `Block` member that joins meanwhile finds the write counted. Refused
    /// (`false`) only while a `Block` member holds the ring and it is full.
    pub(crate) fn reserve(&self) -> bool {
        loop {
            let claimed = self
                .claimed
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                    let floor = self.floor.load(Ordering::SeqCst);
                    (!self.blocks() || c.saturating_sub(floor) < self.capacity as u64)
                        .then_some(c + 1)
                });
            if claimed.is_ok() {
                return true;
            }
            if self.refresh_floor() {
                continue;
            }
            self.full.store(true, Ordering::SeqCst);
            // A member that read between the look and the flag did not see
            // it: look once more.
            if !self.refresh_floor() {
                return false;
            }
        }
    }

    /// Gives back a claim.
    pub(crate) fn release(&self) {
        self.claimed.fetch_sub(1, Ordering::SeqCst);
        self.room_made();
    }

    /// Wakes `publish` callers waiting for room, if some emit found none.
    fn room_made(&self) {
        if self.full.load(Ordering::SeqCst) {
            self.full.store(false, Ordering::SeqCst);
            self.space.notify_waiters();
        }
    }

    /// Whether an emit would find room now. Called by a `publish` about to
    /// wait for room (its [`space`](Self::space) future enabled): marks the
    /// ring full first, so a member that reads after this look wakes it.
    pub(crate) fn has_room(&self) -> bool {
        self.full.store(true, Ordering::SeqCst);
        self.refresh_floor();
        self.used() < self.capacity as u64
    }

    /// A future that resolves when room may have been made; enable it, check
    /// [`has_room`](Self::has_room), then await it.
    pub(crate) fn space(&self) -> tokio::sync::futures::Notified<'_> {
        self.space.notified()
    }

    /// Writes `event` once for every member, and wakes the members waiting
    /// for it. `reserved`: the emit holds a place (now the slot's). Returns
    /// the event the write overwrote, to drop with no lock held.
    pub(crate) fn write(&self, event: &Arc<Event>, reserved: bool) -> Option<Arc<Event>> {
        let mut tail = self.tail();
        let pos = tail.pos;
        let old = {
            let mut slot = self.slot(pos).write().unwrap_or_else(|e| e.into_inner());
            slot.seq = pos;
            slot.event.replace(Arc::clone(event))
        };
        tail.pos = pos + 1;
        self.head.store(pos + 1, Ordering::SeqCst);
        if !reserved {
            // (Every caller claims first; kept whole if one did not.)
            self.claimed.fetch_add(1, Ordering::SeqCst);
        }
        if tail.waiters.is_empty() || tail.next_mark > pos + 1 {
            return old;
        }
        // The waiters whose mark the head reached leave the list under the
        // lock (so one that enlists again meanwhile is never missed); the
        // others stay, and the lowest mark is known again.
        let mut due = std::mem::take(&mut *self.spare.lock().unwrap_or_else(|e| e.into_inner()));
        let mut next_mark = u64::MAX;
        tail.waiters.retain(|(bell, mark)| {
            if *mark <= pos + 1 {
                bell.enlisted.store(false, Ordering::Release);
                due.push(Arc::clone(bell));
                false
            } else {
                next_mark = next_mark.min(*mark);
                true
            }
        });
        tail.next_mark = next_mark;
        drop(tail);
        for bell in due.drain(..) {
            bell.ring();
        }
        *self.spare.lock().unwrap_or_else(|e| e.into_inner()) = due;
        old
    }

    /// Reads the event at `seq`: `None` when it was overwritten (the reader
    /// lagged a whole ring).
    fn read(&self, seq: u64) -> Option<Arc<Event>> {
        let slot = self.slot(seq).read().unwrap_or_else(|e| e.into_inner());
        if slot.seq == seq {
            slot.event.clone()
        } else {
            None
        }
    }

    /// A member joins: it reads from the next write on. Returns its start.
    fn join(&self, position: &Arc<Position>, block: bool) -> u64 {
        let mut tail = self.tail();
        position.0.store(tail.pos, Ordering::SeqCst);
        if block {
            if tail.blockers.is_empty() {
                self.floor.store(tail.pos, Ordering::SeqCst);
            }
            tail.blockers.push(Arc::clone(position));
            self.blocking.store(tail.blockers.len(), Ordering::SeqCst);
        }
        self.open.fetch_add(1, Ordering::AcqRel);
        tail.pos
    }

    /// A member takes nothing new: returns where it stops (the next write
    /// is not its own).
    fn leave(&self) -> u64 {
        let tail = self.tail();
        self.open.fetch_sub(1, Ordering::AcqRel);
        tail.pos
    }

    /// A `Block` member stops holding the ring (it read all it will read).
    fn unblock(&self, position: &Arc<Position>) {
        let mut tail = self.tail();
        tail.blockers.retain(|p| !Arc::ptr_eq(p, position));
        self.blocking.store(tail.blockers.len(), Ordering::SeqCst);
        drop(tail);
        self.room_made();
    }

    /// The reader with `bell` waits until the head reaches `mark`: `true`
    /// when it has already (nothing to wait for).
    fn enlist(&self, mark: u64, bell: &Arc<Bell>) -> bool {
        let mut tail = self.tail();
        if tail.pos >= mark {
            return true;
        }
        tail.next_mark = tail.next_mark.min(mark);
        if !bell.enlisted.swap(true, Ordering::AcqRel) {
            tail.waiters.push((Arc::clone(bell), mark));
        } else if let Some(w) = tail.waiters.iter_mut().find(|w| Arc::ptr_eq(&w.0, bell)) {
            w.1 = w.1.min(mark);
        }
        false
    }
}

/// A member's cursor on its group's ring (kept under its mailbox's lock).
#[derive(Debug)]
pub(crate) struct Cursor {
    /// The next sequence number to read.
    pub(crate) next: u64,
    /// Where it joined: it receives every event from here.
    pub(crate) start: u64,
    /// Where it stopped taking events (closed): it drains up to here.
    pub(crate) end: Option<u64>,
}

/// A member of a group: its ring, policy and cursor operations.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) ring: Arc<Ring>,
    pub(crate) block: bool,
    /// The cursor's `next`, readable without the mailbox's lock: by the
    /// emitter (a `Block` member's hold on the ring) and by the wait path.
    position: Arc<Position>,
    /// The head its task saw at its last look (what it knows was written).
    looked: AtomicU64,
    /// Takes nothing new (its close rang the bell: nothing to wait for).
    closed: AtomicBool,
    /// How its task is woken.
    pub(crate) bell: Arc<Bell>,
}

impl Member {
    pub(crate) fn new(ring: Arc<Ring>, block: bool) -> (Member, Cursor) {
        let position = Arc::new(Position::default());
        let start = ring.join(&position, block);
        (
            Member {
                ring,
                block,
                position,
                looked: AtomicU64::new(start),
                closed: AtomicBool::new(false),
                bell: Arc::default(),
            },
            Cursor {
                next: start,
                start,
                end: None,
            },
        )
    }

    /// The last sequence number (exclusive) this member receives, now.
    #[inline]
    fn end(&self, cursor: &Cursor) -> u64 {
        cursor.end.unwrap_or_else(|| self.ring.head())
    }

    /// (received since joining, queued, overwritten unread), from one look
    /// at the head, so that they add up.
    pub(crate) fn counts(&self, cursor: &Cursor) -> (u64, u64, u64) {
        let end = self.end(cursor);
        let unread = end - cursor.next;
        let over = if self.block {
            0
        } else {
            unread.saturating_sub(self.ring.capacity as u64)
        };
        (end - cursor.start, unread - over, over)
    }

    /// (queued, overwritten unread): a `DropOldest` member more than a ring
    /// behind has lost the oldest of what it has not read.
    pub(crate) fn backlog(&self, cursor: &Cursor) -> (u64, u64) {
        let unread = self.end(cursor) - cursor.next;
        let over = if self.block {
            0
        } else {
            unread.saturating_sub(self.ring.capacity as u64)
        };
        (unread - over, over)
    }

    /// What the task sees when it looks: (queued, overwritten unread),
    /// remembered so that a write after the look wakes it.
    pub(crate) fn look(&self, cursor: &Cursor) -> (u64, u64) {
        let end = self.end(cursor);
        self.looked.store(end, Ordering::SeqCst);
        let unread = end - cursor.next;
        let over = if self.block {
            0
        } else {
            unread.saturating_sub(self.ring.capacity as u64)
        };
        (unread - over, over)
    }

    fn moved(&self, cursor: &Cursor) {
        self.position.0.store(cursor.next, Ordering::SeqCst);
        if self.block {
            self.ring.room_made();
        }
    }

    /// Skips what was overwritten unread; returns how many.
    pub(crate) fn skip_lost(&self, cursor: &mut Cursor) -> u64 {
        let (_, over) = self.backlog(cursor);
        if over > 0 {
            cursor.next += over;
            self.moved(cursor);
        }
        over
    }

    /// Takes up to `max` events into `out`; returns (taken, skipped because
    /// overwritten unread).
    pub(crate) fn take(
        &self,
        cursor: &mut Cursor,
        max: usize,
        out: &mut Vec<Arc<Event>>,
    ) -> (usize, u64) {
        let mut skipped = self.skip_lost(cursor);
        let mut taken = 0;
        let end = self.end(cursor);
        while taken < max && cursor.next < end {
            match self.ring.read(cursor.next) {
                Some(event) => {
                    out.push(event);
                    taken += 1;
                    cursor.next += 1;
                }
                None => {
                    // Overwritten while we read (a `Block` member only in
                    // the race `Ring::write`'s callers allow when a `Block`
                    // member joins mid-offer): skip to what is still there.
                    let head = self.ring.head();
                    let oldest = head.saturating_sub(self.ring.capacity as u64);
                    let to = oldest.max(cursor.next + 1).min(end);
                    skipped += to - cursor.next;
                    cursor.next = to;
                }
            }
        }
        if taken > 0 || skipped > 0 {
            self.moved(cursor);
        }
        (taken, skipped)
    }

    /// Takes nothing new from now on, and moves what it has not read yet out
    /// of the ring into `queue` (counting what was already written over):
    /// from here it drains like a mailbox of its own, holds no one, and
    /// loses nothing more to the members that go on. Returns the count lost.
    pub(crate) fn close(
        &self,
        cursor: &mut Cursor,
        queue: &mut std::collections::VecDeque<Arc<Event>>,
    ) -> u64 {
        if cursor.end.is_some() {
            return 0;
        }
        let end = self.ring.leave();
        cursor.end = Some(end);
        self.closed.store(true, Ordering::Release);
        let mut lost = self.skip_lost(cursor);
        while cursor.next < end {
            match self.ring.read(cursor.next) {
                Some(event) => queue.push_back(event),
                None => lost += 1,
            }
            cursor.next += 1;
        }
        self.moved(cursor);
        if self.block {
            self.ring.unblock(&self.position);
        }
        lost
    }

    /// Lets go of the ring (the mailbox is gone: nothing more is read).
    pub(crate) fn abandon(&self, cursor: &mut Cursor) {
        if cursor.end.is_none() {
            cursor.end = Some(self.ring.leave());
            self.closed.store(true, Ordering::Release);
        }
        if self.block {
            self.ring.unblock(&self.position);
        }
    }

    /// The task is about to wait: `true` when something it waits for is
    /// there already. It waits for the next write when it has read
    /// everything. Otherwise it waits for what holds it (a handler, a
    /// sink), except a lossy member, which also wakes when it starts to
    /// lose events (to announce them, as a full mailbox would).
    pub(crate) fn enlist(&self) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        let cursor = self.position.0.load(Ordering::SeqCst);
        let looked = self.looked.load(Ordering::SeqCst);
        let capacity = self.ring.capacity as u64;
        let mark = if looked <= cursor {
            // It saw nothing left to read: any write since is news.
            looked.max(cursor) + 1
        } else if self.block {
            // It saw events it cannot take yet: what holds it wakes it.
            return false;
        } else if looked - cursor > capacity {
            // It saw its loss (announced on the drop-report timer).
            return false;
        } else {
            // The first write over what it has not read is news.
            cursor + capacity + 1
        };
        self.ring.enlist(mark, &self.bell)
    }
}
