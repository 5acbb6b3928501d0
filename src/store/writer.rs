//! The store's file and its writer thread: the write buffer, group commit,
//! and the record formats.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::error::{Damage, Fault, OpenProblem, Operation, fault};
use super::segments::{self, Segments};
use super::{Attached, StoreError, StoreStats, StoredDeadLetter};
use crate::event::Event;
use crate::hub::journal::Refusal;
pub(super) use guard::guard;

/// Dead letters in the order they failed: sequence → record.
pub(super) const DEAD: TableDefinition<u64, &[u8]> = TableDefinition::new("dead");
/// Counters that must survive a restart.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Delivered events kept for replay, in the order they were delivered:
/// sequence → record.
pub(super) const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
/// Durable webhooks' delivery logs (attempts), oldest first: sequence →
/// `[FORMAT][name len u16][name][attempt JSON]`.
pub(super) const ATTEMPTS: TableDefinition<u64, &[u8]> = TableDefinition::new("attempts");
/// How many attempts the store keeps across its webhooks.
const ATTEMPT_LIMIT: u64 = 10_000;
/// Endpoint state (enabled, and why not): name → record.
pub(super) const ENDPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("endpoints");

const NEXT_SEQ: &str = "next_seq";
const NEXT_DEAD: &str = "next_dead";
const NEXT_HISTORY: &str = "next_history";
const NEXT_ATTEMPT: &str = "next_attempt";
/// Set once the store keeps a count of each subscriber's pending records
/// (`count/<subscriber>`), so a read that does not reach them all can say
/// how many it missed. Stores written before are counted on their first
/// open.
const COUNTED: &str = "counted";

/// The META key of a subscriber's count of pending records.
pub(super) fn count_key(sub: &str) -> String {
    format!("count/{sub}")
}
/// The write buffer holds at most this many commits' worth of writes before
/// new events are refused (`emit`) or wait (`publish`).
const BUFFER_COMMITS: usize = 16;

/// Whether an op writes a record: a commit without one (removals of
/// delivered or dropped events alone) need not be durable at once.
fn writes(op: &Op) -> bool {
    !matches!(op, Op::Delete { .. } | Op::Flush)
}

/// A commit holding only deletes (deliveries) is made without fsync
/// (durability `None`), unless someone waits for it: the next commit that
/// writes, a [`Store::sync`](super::Store::sync), `publish`, the close, or
/// at the latest this long after it, makes it durable. A crash can then
/// deliver again the events delivered in this time (the receivers dedupe
/// on their ids), never lose one.
const DELIVERIES_DURABLE_WITHIN: Duration = Duration::from_millis(250);

/// The first byte of every record: its format.
const FORMAT: u8 = 1;

pub(super) struct Settings {
    pub(super) commit_interval: Duration,
    pub(super) commit_max: usize,
    pub(super) dead_letter_limit: u64,
    /// Keep delivered events this long (for replay); None: not at all.
    pub(super) keep_delivered: Option<Duration>,
    pub(super) history_limit: u64,
    /// Fault injection for the tests: the writer panics in its commit after
    /// this many commits (as a panic inside the database would).
    pub(super) panic_after_commits: Option<u64>,
}

/// One write for the next commit.
pub(super) enum Op {
    Insert {
        sub: Arc<str>,
        seq: u64,
        event: Arc<Event>,
        accepted_ms: u64,
    },
    Retry {
        sub: Arc<str>,
        seq: u64,
        event: Arc<Event>,
        attempt: u32,
        next_at_ms: u64,
        accepted_ms: u64,
    },
    Delete {
        sub: Arc<str>,
        seq: u64,
    },
    Dead {
        sub: Arc<str>,
        seq: u64,
        event: Arc<Event>,
        attempts: u32,
        reason: String,
    },
    /// A delivered event, kept for replay.
    Keep {
        sub: Arc<str>,
        event: Arc<Event>,
        accepted_ms: u64,
    },
    /// Dead letters of `sub` with these event ids were delivered after all.
    RemoveDead {
        sub: String,
        ids: Vec<String>,
    },
    /// A durable webhook's delivery attempt (already encoded).
    Attempt {
        name: String,
        json: Vec<u8>,
    },
    /// An endpoint was enabled or disabled.
    Endpoint {
        name: String,
        enabled: bool,
        reason: String,
    },
    /// Someone waits for the deliveries committed without fsync: this
    /// commit is made durable (it writes nothing itself).
    Flush,
}

#[derive(Default)]
struct Queue {
    ops: Vec<Op>,
    /// Ops ever enqueued.
    enqueued: u64,
    /// When the oldest op in `ops` arrived.
    first_at: Option<Instant>,
    /// Someone waits for a commit: do not linger.
    urgent: bool,
    closed: bool,
    /// A commit without fsync was taken and no durable one since: a wait
    /// for what is on disk needs one more commit ([`Op::Flush`]).
    unsynced: bool,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) appended: AtomicU64,
    pub(super) delivered: AtomicU64,
    pub(super) dead_lettered: AtomicU64,
    pub(super) discarded: AtomicU64,
    pub(super) recovered: AtomicU64,
    pub(super) unreadable: AtomicU64,
    commits: AtomicU64,
    commit_errors: AtomicU64,
}

/// Everything the handles, the durable routes and the writer share.
pub(crate) struct Shared {
    pub(super) path: PathBuf,
    /// Always `Some` until the drop (which closes it under a panic guard,
    /// or leaves it unclosed after the database panicked).
    db: Option<redb::Database>,
    /// The database panicked: its state is unknown, so it is never written
    /// again, not even by its close (the next open repairs the file from
    /// the last complete commit).
    poisoned: AtomicBool,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Ops processed (committed, or failed) so far.
    done: tokio::sync::watch::Sender<u64>,
    failed: AtomicBool,
    /// The first failure ([`StoreError::Failed`]).
    last_error: Mutex<Option<StoreError>>,
    /// Writes in the buffer now (for the back-pressure check without the
    /// queue's lock).
    buffered: std::sync::atomic::AtomicUsize,
    pub(super) next_seq: AtomicU64,
    pub(super) counters: Counters,
    pub(super) attached: Attached,
    /// Numbers the attachments.
    pub(super) next_generation: AtomicU64,
    settings: Settings,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Shared {
    pub(super) fn open(path: &Path, settings: Settings) -> Result<Arc<Shared>, StoreError> {
        let path_buf = path.to_path_buf();
        let exists = refuse_unusable(path)?;
        type Next = (u64, u64, u64, u64);
        // Every call into the database is guarded: redb reports damage as
        // errors, but a malformed file can make it panic too (a flipped byte
        // in a key, say), and that must not take the caller down.
        let opened = guard(|| -> Result<(redb::Database, Next), StoreError> {
            // An existing file is opened, never created: a file that is not
            // a store (or was emptied) is refused, not silently replaced.
            let db = if exists {
                redb::Database::open(path)
            } else {
                redb::Database::create(path)
            }
            .map_err(|e| open_error(path, e))?;
            // Create the tables and read the counters.
            let next = (|| -> Result<Next, redb::Error> {
                let txn = db.begin_write()?;
                let r = {
                    // Format 2 (pending records in segment tables); a file
                    // of format 1 is moved over in this transaction.
                    let migrated = segments::prepare(&txn)?;
                    txn.open_table(DEAD)?;
                    txn.open_table(ENDPOINTS)?;
                    txn.open_table(HISTORY)?;
                    txn.open_table(ATTEMPTS)?;
                    let mut meta = txn.open_table(META)?;
                    if meta.get(COUNTED)?.is_none() {
                        // Format 1 files from before the counts: the
                        // records moved are what there is.
                        for (sub, n) in migrated.unwrap_or_default() {
                            meta.insert(count_key(&sub).as_str(), n)?;
                        }
                        meta.insert(COUNTED, 1)?;
                    }
                    let seq = meta.get(NEXT_SEQ)?.map(|v| v.value()).unwrap_or(1);
                    let dead = meta.get(NEXT_DEAD)?.map(|v| v.value()).unwrap_or(1);
                    let history = meta.get(NEXT_HISTORY)?.map(|v| v.value()).unwrap_or(1);
                    let attempt = meta.get(NEXT_ATTEMPT)?.map(|v| v.value()).unwrap_or(1);
                    (seq, dead, history, attempt)
                };
                txn.commit()?;
                Ok(r)
            })();
            match next {
                Ok(next) => Ok((db, next)),
                Err(e) => {
                    // Closed here, inside the guard: closing a damaged
                    // database writes to it, and may panic too.
                    drop(db);
                    Err(StoreError::corrupted(path, Operation::Open, fault(e)))
                }
            }
        });
        let (db, (next_seq, next_dead, next_history, next_attempt)) = match opened {
            Ok(Ok(opened)) => opened,
            Ok(Err(e)) => return Err(e),
            Err(panic) => return Err(StoreError::corrupted(path, Operation::Open, panic)),
        };
        let shared = Arc::new(Shared {
            path: path_buf,
            db: Some(db),
            poisoned: AtomicBool::new(false),
            queue: Mutex::default(),
            wake: Condvar::new(),
            done: tokio::sync::watch::Sender::new(0),
            failed: AtomicBool::new(false),
            last_error: Mutex::new(None),
            buffered: std::sync::atomic::AtomicUsize::new(0),
            next_seq: AtomicU64::new(next_seq),
            counters: Counters::default(),
            attached: Mutex::default(),
            next_generation: AtomicU64::new(1),
            settings,
            thread: Mutex::new(None),
        });
        let writer = Writer {
            shared: shared.clone(),
            unsynced_since: None,
            next_dead,
            next_history,
            next_attempt,
        };
        let thread = std::thread::Builder::new()
            .name("hookbus-store".into())
            .spawn(move || {
                let shared = writer.shared.clone();
                // Whatever happens in the writer, those waiting for it are
                // told: the store fails, and every wait ends.
                if let Err(panic) = guard(move || writer.run()) {
                    shared.fail(Operation::Writer, panic, true);
                    shared.done.send_replace(u64::MAX);
                }
            })
            .map_err(|e| StoreError::open(path, OpenProblem::WriterThread(super::Cause::new(e))))?;
        *shared.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread);
        Ok(shared)
    }

    /// The database (present until the drop).
    pub(super) fn db(&self) -> &redb::Database {
        // Taken only by the drop, which no handle outlives.
        self.db
            .as_ref()
            .expect("the database is present until the drop")
    }

    /// Marks the store failed (the first failure is kept) and announces it
    /// once, in the log and on the bus of each durable subscriber attached
    /// (`hookbus.store_failed`): new events for its durable subscribers are
    /// refused, and every wait for a commit ends with an error.
    /// `poisoned`: the database panicked, so it is never written again.
    pub(super) fn fail(&self, during: Operation, fault: Fault, poisoned: bool) {
        if poisoned {
            self.poisoned.store(true, Ordering::Release);
        }
        {
            let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_none() {
                *last = Some(StoreError::Failed {
                    path: self.path.clone(),
                    during: during.clone(),
                    fault: fault.clone(),
                });
            }
        }
        if !self.failed.swap(true, Ordering::AcqRel) {
            tracing::error!(store = %self.path.display(), during = %during, error = %fault, "hookbus: the store failed; its durable subscribers refuse new events until it is reopened");
            self.announce_failure(&during, &fault);
        }
    }

    /// `hookbus.store_failed` on each bus with a durable subscriber on this
    /// store (once per bus, naming its subscribers).
    fn announce_failure(&self, during: &Operation, fault: &Fault) {
        let mut buses: Vec<(Arc<crate::hub::Hub>, Vec<String>)> = Vec::new();
        {
            let attached = self.attached.lock().unwrap_or_else(|e| e.into_inner());
            for (name, holder) in attached.iter() {
                let Some(hub) = holder.hub.upgrade() else {
                    continue;
                };
                match buses.iter_mut().find(|(h, _)| Arc::ptr_eq(h, &hub)) {
                    Some((_, names)) => names.push(name.clone()),
                    None => buses.push((hub, vec![name.clone()])),
                }
            }
        }
        for (hub, mut subscribers) in buses {
            subscribers.sort_unstable();
            hub.announce(crate::catalog::bus::StoreFailed {
                store: self.path.display().to_string(),
                during: during.as_str().to_owned(),
                error: fault.to_string(),
                panicked: fault.is_panic(),
                subscribers,
            });
        }
    }

    /// Moves the dead letters of `sub` that `takes` back to pending, in one
    /// transaction of its own (redb runs it between the writer's commits).
    pub(super) fn redrive(
        &self,
        sub: &str,
        mut takes: impl FnMut(&StoredDeadLetter) -> bool,
    ) -> Result<u64, redb::Error> {
        let mut txn = self.db().begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        let mut moved = 0u64;
        {
            let mut dead = txn.open_table(DEAD)?;
            let mut pending = Segments::new(&txn);
            let mut chosen = Vec::new();
            for row in dead.iter()? {
                let (k, v) = row?;
                if let Some(d) = decode_dead(v.value())
                    && d.subscriber == sub
                    && takes(&d)
                {
                    chosen.push((k.value(), d));
                }
            }
            let mut buf = Vec::new();
            let mut max_seq = 0;
            for (key, d) in chosen {
                let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
                max_seq = seq;
                encode_pending(&mut buf, 0, 0, now_ms(), &d.event);
                if pending.put(sub, seq, &buf)? {
                    moved += 1;
                }
                dead.remove(key)?;
            }
            let mut meta = txn.open_table(META)?;
            if moved > 0 {
                let key = count_key(sub);
                let now = meta.get(key.as_str())?.map(|v| v.value()).unwrap_or(0);
                meta.insert(key.as_str(), now + moved)?;
                let stored = meta.get(NEXT_SEQ)?.map(|v| v.value()).unwrap_or(1);
                if max_seq + 1 > stored {
                    meta.insert(NEXT_SEQ, max_seq + 1)?;
                }
            }
        }
        txn.commit()?;
        Ok(moved)
    }

    /// Copies every table of one snapshot into a new store at `dest`.
    pub(super) fn backup(&self, dest: &Path) -> Result<u64, redb::Error> {
        let from = self.db().begin_read()?;
        copy_store(&from, dest)
    }

    pub(super) fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    pub(super) fn keeps_delivered(&self) -> bool {
        self.settings.keep_delivered.is_some()
    }

    /// Why new events cannot be recorded now, if so: a failed store, or a
    /// write buffer at its bound (the disk is behind the emitters).
    pub(super) fn refusal(&self) -> Option<Refusal> {
        if self.failed.load(Ordering::Acquire) {
            return self.last_error().map(Refusal::Failed);
        }
        (self.buffered.load(Ordering::Acquire) >= self.buffer_limit()).then(|| {
            Refusal::Busy(StoreError::Behind {
                path: self.path.clone(),
            })
        })
    }

    /// Whether a subscriber with `undelivered` events not yet delivered is
    /// further behind than the writer: more than a commit's worth, and more
    /// than the write buffer holds. Its newest event will then most likely
    /// be written (not delivered before its commit).
    pub(super) fn behind_writer(&self, undelivered: usize) -> bool {
        undelivered
            > self
                .settings
                .commit_max
                .max(self.buffered.load(Ordering::Acquire))
    }

    fn buffer_limit(&self) -> usize {
        self.settings.commit_max.saturating_mul(BUFFER_COMMITS)
    }

    /// A future that completes once the writer has made progress (a commit
    /// ended), for those waiting for room in the write buffer.
    pub(super) fn progress(
        &self,
    ) -> impl std::future::Future<Output = ()> + Send + 'static + use<> {
        let mut rx = self.done.subscribe();
        let failed = self.failed.load(Ordering::Acquire);
        async move {
            if !failed {
                let _ = rx.changed().await;
            }
        }
    }

    pub(super) fn enqueue(&self, op: Op) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let was_empty = q.ops.is_empty();
        if was_empty {
            q.first_at = Some(Instant::now());
        }
        q.ops.push(op);
        q.enqueued += 1;
        self.buffered.store(q.ops.len(), Ordering::Release);
        let full = q.ops.len() >= self.settings.commit_max;
        drop(q);
        if was_empty || full {
            self.wake.notify_one();
        }
    }

    /// A future that completes once every op enqueued so far is processed
    /// (an error if a commit failed meanwhile); asks the writer not to
    /// linger.
    pub(super) fn commit_now(
        self: &Arc<Shared>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static + use<> {
        let failed = self.last_error();
        let target = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            if q.unsynced && q.ops.is_empty() {
                // Deliveries committed without fsync: one more commit, a
                // durable one, puts them on disk.
                q.ops.push(Op::Flush);
                q.enqueued += 1;
                if q.first_at.is_none() {
                    q.first_at = Some(Instant::now());
                }
            }
            if !q.ops.is_empty() {
                q.urgent = true;
            }
            q.enqueued
        };
        self.wake.notify_one();
        let mut rx = self.done.subscribe();
        let shared = self.clone();
        async move {
            if let Some(e) = failed {
                return Err(e);
            }
            if rx.wait_for(|done| *done >= target).await.is_err() {
                return Err(StoreError::Failed {
                    path: shared.path.clone(),
                    during: Operation::Writer,
                    fault: Fault::WriterStopped,
                });
            }
            match shared.last_error() {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
    }

    /// Stops the writer after it has committed what it holds, and waits
    /// for it (at most one commit).
    pub(super) fn close_and_join(&self) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.closed = true;
        drop(q);
        self.wake.notify_one();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }

    /// The store's failure ([`StoreError::Failed`]), once it has failed.
    pub(super) fn last_error(&self) -> Option<StoreError> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(super) fn stats(&self) -> StoreStats {
        let c = &self.counters;
        StoreStats {
            appended: c.appended.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Acquire),
            dead_lettered: c.dead_lettered.load(Ordering::Acquire),
            discarded: c.discarded.load(Ordering::Relaxed),
            recovered: c.recovered.load(Ordering::Relaxed),
            unreadable: c.unreadable.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            commit_errors: c.commit_errors.load(Ordering::Relaxed),
            last_error: self.last_error(),
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let Some(db) = self.db.take() else { return };
        if self.poisoned.load(Ordering::Acquire) {
            // Closing writes a last commit: not on a database in an unknown
            // state. The file is repaired on the next open instead.
            std::mem::forget(db);
            return;
        }
        if let Err(panic) = guard(move || drop(db)) {
            tracing::error!(store = %self.path.display(), error = %panic, "hookbus: closing the store failed; the next open repairs it");
        }
    }
}

/// Copies every table of a snapshot into a new store file at `dest`; how
/// many records (the counters not counted).
fn copy_store(from: &redb::ReadTransaction, dest: &Path) -> Result<u64, redb::Error> {
    let to = redb::Database::create(dest)?;
    let txn = to.begin_write()?;
    let mut copied = 0;
    {
        let mut marker = txn.open_table(segments::MARKER)?;
        for row in from.open_table(segments::MARKER)?.iter()? {
            let (k, v) = row?;
            marker.insert(k.value(), v.value())?;
        }
    }
    let (found, _) = segments::list(from.list_tables()?);
    for (_, _, name) in found {
        copied += copy_table(from, &txn, segments::table(&name))?;
    }
    copied += copy_table(from, &txn, DEAD)?;
    copied += copy_table(from, &txn, HISTORY)?;
    copied += copy_table(from, &txn, ATTEMPTS)?;
    copied += copy_table(from, &txn, ENDPOINTS)?;
    copied += copy_table(from, &txn, super::records::RECORDS)?;
    {
        // The counters, as the snapshot has them (not counted).
        let mut out = txn.open_table(META)?;
        match from.open_table(META) {
            Ok(meta) => {
                for row in meta.iter()? {
                    let (k, v) = row?;
                    out.insert(k.value(), v.value())?;
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    txn.commit()?;
    Ok(copied)
}

/// Copies one table of a snapshot into a write transaction; how many rows.
fn copy_table<K: redb::Key + 'static>(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
    table: TableDefinition<K, &'static [u8]>,
) -> Result<u64, redb::Error> {
    let mut out = to.open_table(table)?;
    let source = match from.open_table(table) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut n = 0;
    for row in source.iter()? {
        let (k, v) = row?;
        out.insert(k.value(), v.value())?;
        n += 1;
    }
    Ok(n)
}

/// Compacts a store file that is not open: its live records are written
/// to a new file beside it (`<name>.compacting`), which then replaces it
/// (a rename: the store is either the old file or the new one, never a
/// half-written one). A new file holds no free space, where compacting in
/// place leaves the allocator's state at the end of a file grown for it.
pub(super) fn compact(path: &Path) -> Result<(), StoreError> {
    if !refuse_unusable(path)? {
        return Err(StoreError::open(path, OpenProblem::NotFound));
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".compacting");
    let tmp = PathBuf::from(tmp);
    let failed = |e: Fault| StoreError::io(path, Operation::Compact, e);
    let done = guard(|| -> Result<(), StoreError> {
        let db = redb::Database::open(path).map_err(|e| open_error(path, e))?;
        // A file left by a compaction that was interrupted.
        let _ = std::fs::remove_file(&tmp);
        let copied = (|| -> Result<(), redb::Error> {
            // A file of format 1 is brought to format 2 first.
            let txn = db.begin_write()?;
            segments::prepare(&txn)?;
            txn.commit()?;
            let from = db.begin_read()?;
            copy_store(&from, &tmp)?;
            Ok(())
        })();
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&tmp);
            return Err(failed(fault(e)));
        }
        // The new file replaces the old one while the old one is still
        // open (and locked): no one opens it in between.
        std::fs::rename(&tmp, path).map_err(|e| failed(fault(e)))?;
        // The rename itself on disk.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(dir) = std::fs::File::open(dir)
        {
            let _ = dir.sync_all();
        }
        drop(db);
        Ok(())
    });
    done.unwrap_or_else(|panic| {
        let _ = std::fs::remove_file(&tmp);
        Err(StoreError::corrupted(path, Operation::Compact, panic))
    })
}

/// Refuses an existing file that cannot be a usable store: empty (a store
/// is never empty: an emptied store must not silently start anew),
/// not a regular file, or read-only (as root the system would let the
/// store write to it anyway). Whether the file exists.
fn refuse_unusable(path: &Path) -> Result<bool, StoreError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(StoreError::open(
                path,
                OpenProblem::System(super::Cause::new(e)),
            ));
        }
    };
    if !meta.is_file() {
        return Err(StoreError::open(path, OpenProblem::NotAFile));
    }
    if meta.len() == 0 {
        return Err(StoreError::corrupted(path, Operation::Open, Damage::Empty));
    }
    if meta.permissions().readonly() {
        return Err(StoreError::open(path, OpenProblem::ReadOnly));
    }
    Ok(true)
}

fn open_error(path: &Path, e: redb::DatabaseError) -> StoreError {
    match e {
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() != std::io::ErrorKind::InvalidData
                && io.kind() != std::io::ErrorKind::UnexpectedEof =>
        {
            StoreError::open(path, OpenProblem::System(super::Cause::new(io)))
        }
        redb::DatabaseError::DatabaseAlreadyOpen => {
            StoreError::open(path, OpenProblem::AlreadyOpen)
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            StoreError::corrupted(path, Operation::Open, Damage::NotAStore)
        }
        other => StoreError::corrupted(path, Operation::Open, fault(other)),
    }
}

mod guard {
    use crate::store::error::Fault;

    /// Runs `f`, turning a panic inside it into a [`Fault::Panicked`] with
    /// the panic's message.
    pub(in crate::store) fn guard<T>(f: impl FnOnce() -> T) -> Result<T, Fault> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            Fault::Panicked { message }
        })
    }
}

struct Writer {
    shared: Arc<Shared>,
    /// When the first commit without fsync since the last durable one was
    /// taken.
    unsynced_since: Option<Instant>,
    next_dead: u64,
    next_history: u64,
    next_attempt: u64,
}

impl Writer {
    fn run(mut self) {
        loop {
            let (ops, delivered_later, target, durable) = {
                let s = &self.shared;
                let mut q = s.queue.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if q.ops.is_empty() {
                        if let Some(since) = self.unsynced_since {
                            // Deliveries committed without fsync: made
                            // durable by a commit of nothing, in time or at
                            // the close.
                            let due = since + DELIVERIES_DURABLE_WITHIN;
                            let now = Instant::now();
                            if q.closed || now >= due {
                                break;
                            }
                            q = s
                                .wake
                                .wait_timeout(q, due - now)
                                .unwrap_or_else(|e| e.into_inner())
                                .0;
                            continue;
                        }
                        if q.closed {
                            return;
                        }
                        q = s.wake.wait(q).unwrap_or_else(|e| e.into_inner());
                        continue;
                    }
                    if q.urgent || q.closed || q.ops.len() >= s.settings.commit_max {
                        break;
                    }
                    let due = q.first_at.unwrap_or_else(Instant::now) + s.settings.commit_interval;
                    let now = Instant::now();
                    if now >= due {
                        break;
                    }
                    q = s
                        .wake
                        .wait_timeout(q, due - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                // At most `commit_max` writes per commit: a commit's size
                // (and the file space it needs) stays bounded however far
                // the emitters are ahead.
                let take = q.ops.len().min(s.settings.commit_max);
                let ops: Vec<Op> = q.ops.drain(..take).collect();
                // Deliveries already buffered behind this commit, of events
                // it inserts: those events are not written at all (a
                // subscriber that keeps up with emitters faster than one
                // commit's worth costs the disk nothing). Not dead letters:
                // their record comes with a later commit, and until then
                // the pending record must stay.
                let newest = ops
                    .iter()
                    .filter_map(|op| match op {
                        Op::Insert { seq, .. } => Some(*seq),
                        _ => None,
                    })
                    .max();
                let delivered_later: Vec<(Arc<str>, u64)> = match newest {
                    Some(newest) => q
                        .ops
                        .iter()
                        .filter_map(|op| match op {
                            Op::Delete { sub, seq } if *seq <= newest => Some((sub.clone(), *seq)),
                            _ => None,
                        })
                        .collect(),
                    None => Vec::new(),
                };
                // Durable (fsync) when it writes, when someone waits, at
                // the close, or when deliveries committed without it are
                // due; a commit of deliveries alone is not.
                let durable = q.urgent
                    || q.closed
                    || ops.is_empty()
                    || ops.iter().any(|op| writes(op) || matches!(op, Op::Flush))
                    || self
                        .unsynced_since
                        .is_some_and(|since| since.elapsed() >= DELIVERIES_DURABLE_WITHIN);
                if durable {
                    self.unsynced_since = None;
                    q.unsynced = false;
                } else {
                    self.unsynced_since.get_or_insert_with(Instant::now);
                    q.unsynced = true;
                }
                if q.ops.is_empty() {
                    q.urgent = false;
                    q.first_at = None;
                }
                s.buffered.store(q.ops.len(), Ordering::Release);
                (
                    ops,
                    delivered_later,
                    q.enqueued - q.ops.len() as u64,
                    durable,
                )
            };
            // A failed store writes nothing more: after an I/O error redb
            // refuses writes until reopened, and after a panic its state is
            // unknown. The ops are let go, and their waiters told.
            let s = self.shared.clone();
            if !s.is_failed() {
                let injected = s
                    .settings
                    .panic_after_commits
                    .is_some_and(|n| s.counters.commits.load(Ordering::Relaxed) >= n);
                match guard(|| {
                    if injected {
                        panic!("injected writer failure");
                    }
                    self.commit(&ops, &delivered_later, durable)
                }) {
                    Ok(Ok(())) => {
                        s.counters.commits.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(e)) => {
                        s.counters.commit_errors.fetch_add(1, Ordering::Relaxed);
                        s.fail(Operation::Commit, fault(e), false);
                    }
                    Err(panic) => {
                        s.counters.commit_errors.fetch_add(1, Ordering::Relaxed);
                        s.fail(Operation::Commit, panic, true);
                    }
                }
            }
            drop(ops);
            s.done.send_replace(target);
            drop(s);
        }
    }

    /// Commits `ops`; `delivered_later` are deletes still in the buffer
    /// (for the next commit) whose inserts may be in `ops`.
    fn commit(
        &mut self,
        ops: &[Op],
        delivered_later: &[(Arc<str>, u64)],
        durable: bool,
    ) -> Result<(), redb::Error> {
        // Events delivered (or dropped) before their insert was committed
        // never touch the disk.
        let mut settled: rustc_hash::FxHashSet<(&str, u64)> = Default::default();
        let mut inserted: rustc_hash::FxHashSet<(&str, u64)> = Default::default();
        for op in ops {
            match op {
                Op::Insert { sub, seq, .. } => {
                    inserted.insert((sub, *seq));
                }
                Op::Delete { sub, seq } | Op::Dead { sub, seq, .. } => {
                    if inserted.contains(&(&**sub, *seq)) {
                        settled.insert((sub, *seq));
                    }
                }
                Op::Retry { .. }
                | Op::Flush
                | Op::RemoveDead { .. }
                | Op::Endpoint { .. }
                | Op::Keep { .. }
                | Op::Attempt { .. } => {}
            }
        }
        for (sub, seq) in delivered_later {
            if inserted.contains(&(&**sub, *seq)) {
                settled.insert((sub, *seq));
            }
        }
        let mut txn = self.shared.db().begin_write()?;
        txn.set_durability(if durable {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        })?;
        let mut max_seq = 0;
        let mut dead_added = false;
        // Pending records added (+) and removed (-) per subscriber.
        let mut counted: rustc_hash::FxHashMap<&str, i64> = Default::default();
        {
            let mut pending = Segments::new(&txn);
            let mut dead = txn.open_table(DEAD)?;
            let mut endpoints = txn.open_table(ENDPOINTS)?;
            let mut history = txn.open_table(HISTORY)?;
            let mut kept = false;
            let mut attempts = txn.open_table(ATTEMPTS)?;
            let mut logged = false;
            let mut buf = Vec::new();
            for op in ops {
                match op {
                    Op::Insert {
                        sub,
                        seq,
                        event,
                        accepted_ms,
                    } => {
                        max_seq = max_seq.max(*seq);
                        if settled.contains(&(&**sub, *seq)) {
                            continue;
                        }
                        encode_pending(&mut buf, 0, 0, *accepted_ms, event);
                        if pending.put(sub, *seq, &buf)? {
                            *counted.entry(sub).or_default() += 1;
                        }
                    }
                    Op::Retry {
                        sub,
                        seq,
                        event,
                        attempt,
                        next_at_ms,
                        accepted_ms,
                    } => {
                        if settled.contains(&(&**sub, *seq)) {
                            continue;
                        }
                        encode_pending(&mut buf, *attempt, *next_at_ms, *accepted_ms, event);
                        if pending.put(sub, *seq, &buf)? {
                            *counted.entry(sub).or_default() += 1;
                        }
                    }
                    Op::Delete { sub, seq } => {
                        if !settled.contains(&(&**sub, *seq)) {
                            pending.remove(sub, *seq);
                        }
                    }
                    Op::Dead {
                        sub,
                        seq,
                        event,
                        attempts,
                        reason,
                    } => {
                        if !settled.contains(&(&**sub, *seq)) {
                            pending.remove(sub, *seq);
                        }
                        encode_dead(&mut buf, sub, *attempts, reason, event);
                        dead.insert(self.next_dead, buf.as_slice())?;
                        self.next_dead += 1;
                        dead_added = true;
                    }
                    Op::Keep {
                        sub,
                        event,
                        accepted_ms,
                    } => {
                        encode_history(&mut buf, sub, *accepted_ms, event);
                        history.insert(self.next_history, buf.as_slice())?;
                        self.next_history += 1;
                        kept = true;
                    }
                    Op::Attempt { name, json } => {
                        buf.clear();
                        buf.push(FORMAT);
                        let name = &name.as_bytes()[..name.len().min(u16::MAX as usize)];
                        buf.extend_from_slice(&(name.len() as u16).to_be_bytes());
                        buf.extend_from_slice(name);
                        buf.extend_from_slice(json);
                        attempts.insert(self.next_attempt, buf.as_slice())?;
                        self.next_attempt += 1;
                        logged = true;
                    }
                    Op::RemoveDead { sub, ids } => {
                        let ids: HashSet<&str> = ids.iter().map(String::as_str).collect();
                        dead.retain(|_, v| {
                            !dead_owner(v).is_some_and(|(s, id)| s == sub && ids.contains(id))
                        })?;
                    }
                    Op::Endpoint {
                        name,
                        enabled,
                        reason,
                    } => {
                        buf.clear();
                        buf.push(FORMAT);
                        buf.push(u8::from(*enabled));
                        buf.extend_from_slice(reason.as_bytes());
                        endpoints.insert(name.as_str(), buf.as_slice())?;
                    }
                    Op::Flush => {}
                }
            }
            // The removals: after every write of the commit (no op writes
            // a record after its removal), whole segments where they can.
            pending.finish(|sub, n| *counted.entry(sub).or_default() -= n as i64)?;
            if dead_added {
                let limit = self.shared.settings.dead_letter_limit;
                let len = dead.len()?;
                if len > limit {
                    let excess = len - limit;
                    let cut = dead
                        .iter()?
                        .nth(excess as usize)
                        .transpose()?
                        .map(|(k, _)| k.value());
                    if let Some(cut) = cut {
                        dead.retain_in(..cut, |_, _| false)?;
                    }
                }
            }
            if kept && let Some(keep) = self.shared.settings.keep_delivered {
                // Oldest first: drop what is older than the window or beyond
                // the limit.
                let cutoff = now_ms().saturating_sub(keep.as_millis() as u64);
                let limit = self.shared.settings.history_limit;
                let excess = history.len()?.saturating_sub(limit);
                let mut cut = None;
                for (i, row) in history.iter()?.enumerate() {
                    let (k, v) = row?;
                    let old = history_delivered_ms(v.value()).is_none_or(|ms| ms < cutoff);
                    if (i as u64) < excess || old {
                        cut = Some(k.value() + 1);
                    } else {
                        break;
                    }
                }
                if let Some(cut) = cut {
                    history.retain_in(..cut, |_, _| false)?;
                }
            }
            if logged {
                let len = attempts.len()?;
                if len > ATTEMPT_LIMIT {
                    let cut = attempts
                        .iter()?
                        .nth((len - ATTEMPT_LIMIT) as usize)
                        .transpose()?
                        .map(|(k, _)| k.value());
                    if let Some(cut) = cut {
                        attempts.retain_in(..cut, |_, _| false)?;
                    }
                }
            }
            let mut meta = txn.open_table(META)?;
            if max_seq > 0 {
                let stored = meta.get(NEXT_SEQ)?.map(|v| v.value()).unwrap_or(1);
                if max_seq + 1 > stored {
                    meta.insert(NEXT_SEQ, max_seq + 1)?;
                }
            }
            for (sub, delta) in counted {
                if delta != 0 {
                    let key = count_key(sub);
                    let now = meta.get(key.as_str())?.map(|v| v.value()).unwrap_or(0);
                    meta.insert(key.as_str(), now.saturating_add_signed(delta))?;
                }
            }
            if dead_added {
                meta.insert(NEXT_DEAD, self.next_dead)?;
            }
            if kept {
                meta.insert(NEXT_HISTORY, self.next_history)?;
            }
            if logged {
                meta.insert(NEXT_ATTEMPT, self.next_attempt)?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

/// `[FORMAT][attempt u32][next_at_ms u64][accepted_ms u64][event JSON]`
fn encode_pending(
    buf: &mut Vec<u8>,
    attempt: u32,
    next_at_ms: u64,
    accepted_ms: u64,
    event: &Event,
) {
    buf.clear();
    buf.push(FORMAT);
    buf.extend_from_slice(&attempt.to_be_bytes());
    buf.extend_from_slice(&next_at_ms.to_be_bytes());
    buf.extend_from_slice(&accepted_ms.to_be_bytes());
    buf.extend_from_slice(&event.structured_json());
}

/// A pending record read back.
pub(super) struct PendingRecord {
    pub(super) attempt: u32,
    pub(super) next_at_ms: u64,
    pub(super) accepted_ms: u64,
    pub(super) event: Event,
}

pub(super) fn decode_pending(v: &[u8]) -> Option<PendingRecord> {
    if v.len() < 21 || v[0] != FORMAT {
        return None;
    }
    let attempt = u32::from_be_bytes(v[1..5].try_into().ok()?);
    let next_at_ms = u64::from_be_bytes(v[5..13].try_into().ok()?);
    let accepted_ms = u64::from_be_bytes(v[13..21].try_into().ok()?);
    let event: Event = serde_json::from_slice(&v[21..]).ok()?;
    Some(PendingRecord {
        attempt,
        next_at_ms,
        accepted_ms,
        event,
    })
}

/// `[FORMAT][failed_ms u64][attempts u32][sub len u16][sub][id len u16][id][reason len u32][reason][event JSON]`
fn encode_dead(buf: &mut Vec<u8>, sub: &str, attempts: u32, reason: &str, event: &Event) {
    buf.clear();
    buf.push(FORMAT);
    buf.extend_from_slice(&now_ms().to_be_bytes());
    buf.extend_from_slice(&attempts.to_be_bytes());
    for field in [sub, event.id()] {
        let bytes = &field.as_bytes()[..field.len().min(u16::MAX as usize)];
        buf.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        buf.extend_from_slice(bytes);
    }
    let reason = &reason.as_bytes()[..reason.len().min(64 * 1024)];
    buf.extend_from_slice(&(reason.len() as u32).to_be_bytes());
    buf.extend_from_slice(reason);
    buf.extend_from_slice(&event.structured_json());
}

pub(super) fn decode_dead(v: &[u8]) -> Option<StoredDeadLetter> {
    let mut r = Reader(v);
    if r.take(1)?[0] != FORMAT {
        return None;
    }
    let failed_ms = u64::from_be_bytes(r.take(8)?.try_into().ok()?);
    let attempts = u32::from_be_bytes(r.take(4)?.try_into().ok()?);
    let sub_len = u16::from_be_bytes(r.take(2)?.try_into().ok()?) as usize;
    let subscriber = String::from_utf8_lossy(r.take(sub_len)?).into_owned();
    let id_len = u16::from_be_bytes(r.take(2)?.try_into().ok()?) as usize;
    r.take(id_len)?;
    let reason_len = u32::from_be_bytes(r.take(4)?.try_into().ok()?) as usize;
    let reason = String::from_utf8_lossy(r.take(reason_len)?).into_owned();
    let event: Event = serde_json::from_slice(r.0).ok()?;
    Some(StoredDeadLetter {
        subscriber,
        event,
        reason,
        attempts,
        failed_at: UNIX_EPOCH + Duration::from_millis(failed_ms),
    })
}

/// `[FORMAT][accepted_ms u64][delivered_ms u64][sub len u16][sub][event JSON]`
fn encode_history(buf: &mut Vec<u8>, sub: &str, accepted_ms: u64, event: &Event) {
    buf.clear();
    buf.push(FORMAT);
    buf.extend_from_slice(&accepted_ms.to_be_bytes());
    buf.extend_from_slice(&now_ms().to_be_bytes());
    let sub = &sub.as_bytes()[..sub.len().min(u16::MAX as usize)];
    buf.extend_from_slice(&(sub.len() as u16).to_be_bytes());
    buf.extend_from_slice(sub);
    buf.extend_from_slice(&event.structured_json());
}

fn history_delivered_ms(v: &[u8]) -> Option<u64> {
    let mut r = Reader(v);
    if r.take(1)?[0] != FORMAT {
        return None;
    }
    r.take(8)?;
    Some(u64::from_be_bytes(r.take(8)?.try_into().ok()?))
}

/// A kept delivered event: its subscriber, when it was accepted, and the
/// event.
pub(super) fn decode_history(v: &[u8]) -> Option<(String, u64, Event)> {
    let mut r = Reader(v);
    if r.take(1)?[0] != FORMAT {
        return None;
    }
    let accepted_ms = u64::from_be_bytes(r.take(8)?.try_into().ok()?);
    r.take(8)?;
    let sub_len = u16::from_be_bytes(r.take(2)?.try_into().ok()?) as usize;
    let sub = String::from_utf8_lossy(r.take(sub_len)?).into_owned();
    let event: Event = serde_json::from_slice(r.0).ok()?;
    Some((sub, accepted_ms, event))
}

/// The subscriber and event id of a dead letter, without decoding the event.
fn dead_owner(v: &[u8]) -> Option<(&str, &str)> {
    let mut r = Reader(v);
    if r.take(1)?[0] != FORMAT {
        return None;
    }
    r.take(12)?;
    let sub_len = u16::from_be_bytes(r.take(2)?.try_into().ok()?) as usize;
    let sub = std::str::from_utf8(r.take(sub_len)?).ok()?;
    let id_len = u16::from_be_bytes(r.take(2)?.try_into().ok()?) as usize;
    let id = std::str::from_utf8(r.take(id_len)?).ok()?;
    Some((sub, id))
}

/// An attempt record: the webhook's name and the attempt's JSON.
pub(super) fn decode_attempt(v: &[u8]) -> Option<(&str, &[u8])> {
    let mut r = Reader(v);
    if r.take(1)?[0] != FORMAT {
        return None;
    }
    let len = u16::from_be_bytes(r.take(2)?.try_into().ok()?) as usize;
    let name = std::str::from_utf8(r.take(len)?).ok()?;
    Some((name, r.0))
}

/// An endpoint record: enabled, and the reason it was disabled.
pub(super) fn decode_endpoint(v: &[u8]) -> Option<(bool, String)> {
    if v.len() < 2 || v[0] != FORMAT {
        return None;
    }
    Some((v[1] == 1, String::from_utf8_lossy(&v[2..]).into_owned()))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
}
