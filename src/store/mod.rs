//! Durable subscribers: an embedded, crash-safe outbox in one file (feature
//! `durable`).
//!
//! A subscriber made [`durable`](crate::SubscriberBuilder::durable) records
//! every event it accepts in a [`Store`], and the record leaves the store
//! when the delivery succeeds, fails for good (it is kept as a dead letter,
//! see [`Store::dead_letters`]) or is dropped by the subscriber's overflow
//! policy (counted and announced as `hookbus.dropped`, as for any
//! subscriber). Webhook retry schedules are persisted too: the attempt
//! number and when the next attempt is due.
//!
//! A process that starts again on the same file, with a subscriber of the
//! same name, delivers what was pending first (same event ids: receivers
//! dedupe on them), in the order it was accepted, then new events; a
//! webhook delivery that was waiting for a retry waits for what was left
//! of its backoff and goes on with its attempt count.
//!
//! ```
//! use hookbus::{Bus, Event, store::Store};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path().join("outbox.redb"))?;
//!
//! let bus = Bus::new()?;
//! bus.subscriber("order.*")
//!     .name("orders") // the name is the key to its pending events
//!     .durable(&store)
//!     .on(|event| println!("{}", event.id()))?
//!     .detach();
//!
//! // Returns once the event is on disk (see "What accepted means").
//! bus.publish(Event::new("order.placed", serde_json::json!({"id": 1}))?).await?;
//!
//! bus.shutdown(Duration::from_secs(5)).await;
//! assert_eq!(store.pending("orders")?, 0); // delivered: nothing left
//! # Ok(()) }
//! ```
//!
//! # What "accepted" means
//!
//! - [`Bus::emit`](crate::Bus::emit) returns once the event is in the
//!   store's write buffer. A writer thread commits the buffer as one
//!   transaction (with fsync) at most [`commit_interval`](StoreBuilder::commit_interval)
//!   (default 10 ms) after the first write in it, or as soon as it holds
//!   [`commit_max`](StoreBuilder::commit_max) writes (default 4096); while a
//!   commit runs, the next buffer fills. A crash can lose what was still in
//!   the buffer: the events of the last commit interval (plus the commit in
//!   progress when the disk is slower than that). An event the store has
//!   committed is never lost.
//! - [`Bus::publish`](crate::Bus::publish)`(..).await` returns once every
//!   durable subscriber that took the event has it on disk (fsync), asking
//!   the writer to commit at once.
//! - The write buffer is bounded: when the disk falls behind by sixteen
//!   commits' worth (`16 × commit_max` ops, 65,536 by default), `emit`
//!   refuses events for
//!   durable subscribers ([`EmitError::Store`](crate::EmitError::Store)
//!   with [`StoreError::Behind`], the event given back, nobody receives
//!   it) and `publish` waits for the next commit. So the events a crash can
//!   lose stay bounded too, and each commit holds at most `commit_max`
//!   writes.
//! - Deliveries are made durable lazily: a commit that holds only
//!   removals of delivered (or dropped) events is made without fsync, and
//!   the next commit that writes, a [`Store::sync`], a `publish`, the
//!   close, or at the latest 250 ms, puts it on disk. A crash can deliver
//!   again what was delivered in that time (at-least-once: receivers
//!   dedupe on the event id); it never loses an event.
//! - [`Store::sync`] waits until everything recorded so far is on disk;
//!   [`Bus::shutdown`](crate::Bus::shutdown) does the same for its durable
//!   subscribers within its deadline.
//!
//! An event that was delivered before its commit came (its delivery is in
//! the same commit, or already in the buffer behind it) is written neither
//! in the pending table nor deleted from it: a fast subscriber costs the
//! disk almost nothing.
//!
//! # The file
//!
//! One redb file. A subscriber's pending records are kept in tables of
//! 256 sequence numbers each (`pending/<subscriber>/<segment>`, format
//! 2): a commit whose removals take every record left in a segment
//! deletes the table whole, so a backlog that drains costs a few table
//! deletions per thousand events rather than a tree removal per event.
//! A file written by a hookbus before format 2 (one `pending` table) is
//! moved over when it is opened ([`Store::open`], and
//! [`Store::compact`]), in the open's own transaction: a crash during it
//! leaves the file as it was. After that, a hookbus from before format 2
//! refuses the file ([`StoreError::Corrupted`] on open: the `pending`
//! table has another type) rather than seeing nothing pending in it. An event whose subscriber is further behind than
//! the writer has its JSON made on the emitting thread, so the writer only
//! copies it.
//!
//! # Failures
//!
//! - A store that cannot write (disk full, permission denied, I/O error)
//!   fails: it refuses new events for its durable subscribers (`emit` and
//!   `publish` return [`EmitError::Store`](crate::EmitError::Store) with
//!   the event, and nobody receives it: all or nothing, as with a full
//!   `Block` mailbox), [`Store::sync`] and the `publish` of an event
//!   already taken return an error at once ([`StoreError::Failed`]), and
//!   it writes nothing more. Events that match only subscribers in memory
//!   flow as before. The failure is logged once, announced once on the
//!   bus of each of its durable subscribers as `hookbus.store_failed`
//!   ([`StoreFailed`](crate::catalog::bus::StoreFailed): the file, what
//!   failed, the error, the subscribers), counted in
//!   [`StoreStats::commit_errors`], and [`StoreStats::last_error`] says
//!   why ([`StoreError::Failed`]). Reopen the store (restart) once the
//!   cause is fixed; what was committed before is kept.
//! - Errors are typed: [`StoreError`] says which file and what the store
//!   was doing ([`Operation`]), with what is wrong as an [`OpenProblem`], a
//!   [`Damage`] or a [`Fault`] (the database's own error is its
//!   [`source`](std::error::Error::source), a caught panic its message).
//! - Every call into the database runs under a panic guard: a panic inside
//!   it (a damaged file can cause one) is an error, never the caller's
//!   crash. A writer whose commit panicked fails the store as above; the
//!   database is then not even closed (closing writes), so its file stays
//!   locked until the process ends, and the next open repairs it from the
//!   last complete commit.
//! - [`Store::open`] never replaces a file: an existing file that is
//!   empty, is not a store, or is damaged where the store reads on open
//!   gives [`StoreError::Corrupted`] and is left as it is (remove it to
//!   start anew); a read-only file gives [`StoreError::Open`], also for
//!   root, whom the system would let write it. A file left by a crash
//!   mid-commit is repaired on open: the last complete commit is what you
//!   get (redb's copy-on-write commits make a torn commit invisible).
//! - A durable subscriber's name is its own while it is subscribed
//!   ([`StoreError::NameInUse`] for a second one). Once it is unsubscribed
//!   (a webhook deleted, say) the name can be taken at once: the new
//!   subscriber recovers the name's pending events but those the old one
//!   still holds, which it finishes (delivered once each).
//! - Nothing is lost unseen: the store keeps a count of each subscriber's
//!   pending records. Attaching a durable subscriber skips a record that
//!   cannot be read as an event (or whose key is damaged), and counts the
//!   records its count promises that the read did not reach: both are
//!   logged and counted in [`StoreStats::unreadable`] (the records stay in
//!   the file). Damage that stops the read refuses the attach with
//!   [`StoreError::Corrupted`] saying how many records were read and how
//!   many were unreadable. [`Store::check`] reads every record back and
//!   lists the unreadable ones by key.
//!
//! # Retention
//!
//! Pending events stay until delivered, dead-lettered or dropped. Dead
//! letters are kept up to [`dead_letter_limit`](StoreBuilder::dead_letter_limit)
//! (default 100,000 across the store); beyond it the oldest are removed.
//! Delivered events are not kept by default; with
//! [`keep_delivered(max_age, max_count)`](StoreBuilder::keep_delivered)
//! they are, for replay, and trimmed (oldest first) whenever one is kept:
//! to those delivered within `max_age` and to `max_count` across the
//! store. Delivery attempts of durable webhooks: the newest 10,000.
//!
//! # Operating a store
//!
//! The library calls, and the same as `hookbus store ...` (feature `cli`
//! with `durable`) for a store that is not open:
//!
//! | call | command | what |
//! |---|---|---|
//! | [`Store::summary`] | `stats FILE` | pending per subscriber, dead letters, kept deliveries, file size |
//! | [`Store::pending_events`] | `pending FILE [--subscriber S]` | the pending events |
//! | [`Store::dead_letters`] | `dead-letters FILE [--subscriber S]` | the dead letters, with why and when |
//! | [`Store::redrive`] | `redrive FILE --subscriber S [--type P] [--since T] [--before T]` | dead letters back to pending, delivered on the next start |
//! | [`Store::check`] | `check FILE` | every record read back; exit 1 if any cannot be |
//! | [`Store::backup`] | `backup FILE --to NEW` | a consistent copy, taken while the bus runs |
//! | [`Store::compact`] | `compact FILE` | the space of deleted records given back |
//!
//! # Why redb
//!
//! The outbox's workload (append in group commits, delete on delivery,
//! read everything pending on open) was measured on redb 3 and fjall 2 in
//! `benches/store.rs` (the figures are in the CHANGELOG, "Durable
//! delivery"). fjall appends faster; with deletes on delivery, the
//! outbox's steady state, the two are even; redb reads 100,000 pending
//! records back in 61 ms against fjall's 268 ms (what a restart waits for),
//! and keeps everything in one file with checksummed copy-on-write commits.
//! Both are pure Rust: nothing to install.
//!
//! Measured on a busy 2-core machine (`benches/store.rs`, each against
//! redb in the same run): durable `emit` at 158,000–227,000 events/s when
//! every event is written and then deleted (`store/emit/durable_backlog`;
//! 0.87–1.31× in eight runs, seven of them 1.07–1.31×, redb doing the same writes
//! in the same commits as a hand-written outbox would, one removal per
//! event and every commit durable, `raw_redb_outbox`: the store deletes
//! delivered segments whole and makes commits of deliveries alone durable
//! lazily), 360,000–1,050,000/s when the subscriber keeps up (events
//! delivered before their commit never reach the disk; 2.2–5.9× that
//! redb); `publish` with fsync at a p50 of 150–250 µs and a p99 of 4–8 ms,
//! no slower than a redb commit of the same record; 1,000,000 pending events
//! recovered (open and attach) in 1.05–1.2 s at low load, up to 2.4 s
//! when other work takes the cores, their records decoded on every core
//! while they are read (`store/recover_1m`, where redb reading the same
//! records takes 0.35–0.6 s).

mod error;
mod journal;
mod records;
mod segments;
mod writer;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::event::Event;
use writer::{ATTEMPTS, DEAD, ENDPOINTS, HISTORY, Op, Shared, guard};

use error::fault;
pub use error::{Cause, Damage, Fault, OpenProblem, Operation, StoreError};
pub(crate) use journal::DurableRoute;

/// Settings of a [`Store`]; see [`Store::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct StoreBuilder {
    path: PathBuf,
    commit_interval: Duration,
    commit_max: usize,
    dead_letter_limit: u64,
    keep_delivered: Option<Duration>,
    history_limit: u64,
    panic_after_commits: Option<u64>,
}

impl StoreBuilder {
    /// Fault injection for tests of a failing writer: after `commits`
    /// successful commits, the writer's next commit panics (as a panic
    /// inside the database would). Not part of the API.
    #[doc(hidden)]
    pub fn inject_writer_panic_after(mut self, commits: u64) -> Self {
        self.panic_after_commits = Some(commits);
        self
    }
    /// The longest a write waits in the buffer before its commit starts
    /// (default 10 ms): the most `emit`-accepted events a crash can lose.
    /// Zero commits as soon as the writer is free.
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }
    /// Commits as soon as this many writes are buffered (default 4096, at
    /// least 1).
    pub fn commit_max(mut self, n: usize) -> Self {
        self.commit_max = n;
        self
    }
    /// How many dead letters the store keeps (default 100,000, at least 1);
    /// the oldest go first.
    pub fn dead_letter_limit(mut self, n: u64) -> Self {
        self.dead_letter_limit = n;
        self
    }
    /// Keeps delivered events for `window` (and at most `limit` of them
    /// across the store, the oldest going first), so they can be delivered
    /// again with [`Store::delivered_since`] /
    /// [`WebhookManager::replay`](crate::webhook::WebhookManager::replay)
    /// (a receiver that lost data asks for "everything since 09:00"). Off by
    /// default: each delivered event is then written once more.
    pub fn keep_delivered(mut self, window: Duration, limit: u64) -> Self {
        self.keep_delivered = Some(window);
        self.history_limit = limit;
        self
    }
    /// Opens the store, creating the file if it does not exist.
    pub fn open(self) -> Result<Store, StoreError> {
        if self.commit_max == 0 {
            return Err(StoreError::open(&self.path, OpenProblem::CommitMaxZero));
        }
        if self.keep_delivered.is_some() && self.history_limit == 0 {
            return Err(StoreError::open(
                &self.path,
                OpenProblem::KeepDeliveredLimitZero,
            ));
        }
        if self.dead_letter_limit == 0 {
            return Err(StoreError::open(
                &self.path,
                OpenProblem::DeadLetterLimitZero,
            ));
        }
        let shared = Shared::open(
            &self.path,
            writer::Settings {
                commit_interval: self.commit_interval,
                commit_max: self.commit_max,
                dead_letter_limit: self.dead_letter_limit,
                keep_delivered: self.keep_delivered,
                history_limit: self.history_limit,
                panic_after_commits: self.panic_after_commits,
            },
        )?;
        Ok(Store {
            shared: Arc::new(Owner(shared)),
        })
    }
}

/// An embedded outbox file for durable subscribers. Cheap to clone (a
/// handle); the writer thread ends, after committing what it holds, when
/// the last handle and the last durable subscriber using it are gone. See
/// the [module docs](self).
#[derive(Clone)]
pub struct Store {
    shared: Arc<Owner>,
}

/// Closes the writer when the last `Store` handle and the last durable
/// route holding it are gone: it commits what it holds, and the file is
/// closed by the time the drop returns (so the same process can open it
/// again at once).
pub(crate) struct Owner(pub(crate) Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.close_and_join();
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.shared.0.path)
            .finish_non_exhaustive()
    }
}

/// What a store holds and has done since it was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Events recorded as pending since open (for all its subscribers).
    pub appended: u64,
    /// Events that left the store because they were delivered.
    pub delivered: u64,
    /// Events that became dead letters.
    pub dead_lettered: u64,
    /// Events that left the store because the overflow policy dropped them.
    pub discarded: u64,
    /// Pending events recovered on attach after a restart.
    pub recovered: u64,
    /// Pending records an attach skipped: they could not be read as
    /// events, had a damaged key, or were counted but not found (see
    /// [`Store::check`] for their keys). They stay in the file.
    pub unreadable: u64,
    /// Commits (transactions) written.
    pub commits: u64,
    /// Commits that failed.
    pub commit_errors: u64,
    /// Why the store failed (the first failure), while it refuses events.
    pub last_error: Option<StoreError>,
}

/// What [`Store::check`] found: every record of the store read back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckReport {
    /// Pending events that read back, per durable subscriber.
    pub pending: std::collections::BTreeMap<String, u64>,
    /// Dead letters that read back.
    pub dead_letters: u64,
    /// Delivered events kept for replay that read back.
    pub delivered: u64,
    /// Webhook delivery attempts and endpoint states that read back.
    pub other: u64,
    /// Records that are there but cannot be read, with their keys.
    pub unreadable: Vec<UnreadableRecord>,
    /// Records a table counts that a full read of it did not reach.
    pub missing: u64,
}

impl CheckReport {
    /// Whether every record read back.
    pub fn is_clean(&self) -> bool {
        self.unreadable.is_empty() && self.missing == 0
    }

    /// Pending events that read back, across subscribers.
    pub fn pending_total(&self) -> u64 {
        self.pending.values().sum()
    }
}

/// A record of the store that cannot be read (see [`CheckReport`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnreadableRecord {
    /// Its table: `pending`, `dead`, `history`, `attempts` or `endpoints`.
    pub table: &'static str,
    /// Its key: `subscriber/sequence` for pending events (or the name of
    /// a pending segment table whose name is damaged), the sequence number
    /// for the others, the name for endpoints.
    pub key: String,
}

/// Which dead letters [`Store::redrive`] moves back to pending: all of a
/// subscriber's by default, narrowed by event type and by when they failed.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Redrive {
    event_type: Option<crate::Pattern>,
    failed_since: Option<SystemTime>,
    failed_before: Option<SystemTime>,
}

impl Redrive {
    /// Every dead letter of the subscriber.
    pub fn all() -> Redrive {
        Redrive::default()
    }
    /// Only events whose type matches `pattern` (as a subscriber's pattern:
    /// `order.*`, `*`).
    pub fn event_type(mut self, pattern: crate::Pattern) -> Redrive {
        self.event_type = Some(pattern);
        self
    }
    /// Only dead letters that failed at or after `t`.
    pub fn failed_since(mut self, t: SystemTime) -> Redrive {
        self.failed_since = Some(t);
        self
    }
    /// Only dead letters that failed before `t`.
    pub fn failed_before(mut self, t: SystemTime) -> Redrive {
        self.failed_before = Some(t);
        self
    }
    fn takes(&self, dead: &StoredDeadLetter) -> bool {
        self.event_type
            .as_ref()
            .is_none_or(|p| p.matches(dead.event.event_type()))
            && self.failed_since.is_none_or(|t| dead.failed_at >= t)
            && self.failed_before.is_none_or(|t| dead.failed_at < t)
    }
}

/// What a store file holds, from its counts (cheap: no record is read);
/// see [`Store::summary`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreSummary {
    /// Pending events per durable subscriber (subscribers with none
    /// included once they had some).
    pub pending: std::collections::BTreeMap<String, u64>,
    /// Dead letters kept.
    pub dead_letters: u64,
    /// Delivered events kept for replay.
    pub delivered: u64,
    /// The file's size in bytes.
    pub file_bytes: u64,
}

/// A delivery that failed for good, as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StoredDeadLetter {
    /// The durable subscriber it belonged to.
    pub subscriber: String,
    /// The event, as it was accepted.
    pub event: Event,
    /// Why it failed.
    pub reason: String,
    /// The attempts made (webhooks; 0 when unknown).
    pub attempts: u32,
    /// When it failed.
    pub failed_at: SystemTime,
}

impl Store {
    /// Opens (or creates) the store at `path` with the default settings.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::builder(path).open()
    }

    /// A store with settings other than the defaults.
    pub fn builder(path: impl AsRef<Path>) -> StoreBuilder {
        StoreBuilder {
            path: path.as_ref().to_path_buf(),
            commit_interval: Duration::from_millis(10),
            commit_max: 4096,
            dead_letter_limit: 100_000,
            keep_delivered: None,
            history_limit: 0,
            panic_after_commits: None,
        }
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.shared.0.path
    }

    /// Waits until everything recorded so far is on disk. Errors if a
    /// commit failed meanwhile, and at once on a store that has failed.
    pub async fn sync(&self) -> Result<(), StoreError> {
        self.shared.0.commit_now().await
    }

    /// The counters.
    pub fn stats(&self) -> StoreStats {
        self.shared.0.stats()
    }

    /// How many events of `subscriber` are pending on disk (committed and
    /// not yet delivered).
    pub fn pending(&self, subscriber: &str) -> Result<u64, StoreError> {
        self.read_segments(subscriber, 0, |n, table| {
            *n += table.len().map_err(fault)?;
            Ok(true)
        })
    }

    /// The pending events of `subscriber` on disk, oldest first, at most
    /// `limit` (records that cannot be read are skipped).
    pub fn pending_events(&self, subscriber: &str, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.read_segments(subscriber, Vec::new(), |out, table| {
            let left = limit - out.len();
            out.extend(decoded(table.iter().map_err(fault)?, left, |v| {
                writer::decode_pending(v).map(|r| r.event)
            })?);
            Ok(out.len() < limit)
        })
    }

    /// Folds `f` over the segment tables of `subscriber`'s pending records,
    /// oldest first, while it returns true.
    fn read_segments<R>(
        &self,
        subscriber: &str,
        mut acc: R,
        mut f: impl FnMut(&mut R, redb::ReadOnlyTable<u64, &'static [u8]>) -> Result<bool, Fault>,
    ) -> Result<R, StoreError> {
        let shared = &self.shared.0;
        let read = guard(|| -> Result<R, Fault> {
            let txn = shared.db().begin_read().map_err(fault)?;
            for (_, name) in segments::of(txn.list_tables().map_err(fault)?, subscriber) {
                let table = txn.open_table(segments::table(&name)).map_err(fault)?;
                if !f(&mut acc, table)? {
                    break;
                }
            }
            Ok(acc)
        });
        match read {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(StoreError::io(&shared.path, Operation::Read, e)),
            Err(panic) => Err(StoreError::corrupted(&shared.path, Operation::Read, panic)),
        }
    }

    /// The dead letters kept, oldest first (of every subscriber when
    /// `subscriber` is `None`), at most `limit`.
    pub fn dead_letters(
        &self,
        subscriber: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredDeadLetter>, StoreError> {
        self.read(DEAD, Vec::new(), |table| {
            decoded(table.iter().map_err(fault)?, limit, |v| {
                writer::decode_dead(v)
                    .filter(|d| subscriber.is_none_or(|name| name == d.subscriber))
            })
        })
    }

    /// The delivered events of `subscriber` accepted at or after `since`,
    /// oldest first, at most `limit` (kept only with
    /// [`keep_delivered`](StoreBuilder::keep_delivered)).
    pub fn delivered_since(
        &self,
        subscriber: &str,
        since: SystemTime,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let since_ms = since
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.read(HISTORY, Vec::new(), |table| {
            decoded(table.iter().map_err(fault)?, limit, |v| {
                let (sub, accepted_ms, event) = writer::decode_history(v)?;
                (sub == subscriber && accepted_ms >= since_ms).then_some(event)
            })
        })
    }

    /// Reads one table: `f` with it, or `missing` when it was never created
    /// (nothing was ever written to it).
    fn read<K: redb::Key + 'static, V: redb::Value + 'static, R>(
        &self,
        table: redb::TableDefinition<K, V>,
        missing: R,
        f: impl FnOnce(redb::ReadOnlyTable<K, V>) -> Result<R, Fault>,
    ) -> Result<R, StoreError> {
        let shared = &self.shared.0;
        match guard(|| {
            let txn = shared.db().begin_read().map_err(fault)?;
            match txn.open_table(table) {
                Ok(t) => f(t),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(missing),
                Err(e) => Err(fault(e)),
            }
        }) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(StoreError::io(&shared.path, Operation::Read, e)),
            Err(panic) => Err(StoreError::corrupted(&shared.path, Operation::Read, panic)),
        }
    }

    /// Reads every record of the store back (one consistent snapshot, while
    /// the bus runs) and says what is there and what cannot be read. Damage
    /// that stops the read gives [`StoreError::Corrupted`] with how far it
    /// got.
    pub fn check(&self) -> Result<CheckReport, StoreError> {
        let shared = &self.shared.0;
        let mut report = CheckReport::default();
        let read =
            guard(|| -> Result<(), redb::Error> {
                let txn = shared.db().begin_read()?;
                check_pending(&txn, &mut report)?;
                check_table(
                    &txn,
                    DEAD,
                    &mut report,
                    |k, v, report| match writer::decode_dead(v) {
                        Some(_) => report.dead_letters += 1,
                        None => report.unreadable.push(UnreadableRecord {
                            table: "dead",
                            key: k.to_string(),
                        }),
                    },
                )?;
                check_table(
                    &txn,
                    HISTORY,
                    &mut report,
                    |k, v, report| match writer::decode_history(v) {
                        Some(_) => report.delivered += 1,
                        None => report.unreadable.push(UnreadableRecord {
                            table: "history",
                            key: k.to_string(),
                        }),
                    },
                )?;
                check_table(
                    &txn,
                    ATTEMPTS,
                    &mut report,
                    |k, v, report| match writer::decode_attempt(v) {
                        Some(_) => report.other += 1,
                        None => report.unreadable.push(UnreadableRecord {
                            table: "attempts",
                            key: k.to_string(),
                        }),
                    },
                )?;
                check_table(&txn, ENDPOINTS, &mut report, |k, v, report| {
                    match writer::decode_endpoint(v) {
                        Some(_) => report.other += 1,
                        None => report.unreadable.push(UnreadableRecord {
                            table: "endpoints",
                            key: k.to_owned(),
                        }),
                    }
                })?;
                Ok(())
            });
        let failure = match read {
            Ok(Ok(())) => return Ok(report),
            Ok(Err(e)) => fault(e),
            Err(panic) => panic,
        };
        Err(StoreError::Corrupted {
            path: shared.path.clone(),
            during: Operation::Check,
            damage: Damage::Fault(failure),
            recovered: report.pending_total()
                + report.dead_letters
                + report.delivered
                + report.other,
            unreadable: report.unreadable.len() as u64,
        })
    }

    /// What the store holds, from its counts: pending events per
    /// subscriber, dead letters, kept deliveries, the file's size.
    pub fn summary(&self) -> Result<StoreSummary, StoreError> {
        let pending = self.read(writer::META, Default::default(), |meta| {
            let mut out = std::collections::BTreeMap::new();
            for row in meta.range("count/".."count0").map_err(fault)? {
                let (k, v) = row.map_err(fault)?;
                if let Some(sub) = k.value().strip_prefix("count/") {
                    out.insert(sub.to_owned(), v.value());
                }
            }
            Ok(out)
        })?;
        Ok(StoreSummary {
            pending,
            dead_letters: self.dead_letter_count()?,
            delivered: self.read(HISTORY, 0, |t| t.len().map_err(fault))?,
            file_bytes: std::fs::metadata(self.path())
                .map(|m| m.len())
                .map_err(|e| StoreError::io(self.path(), Operation::Read, fault(e)))?,
        })
    }

    /// Moves the dead letters of `subscriber` that `filter` takes back to
    /// its pending events (oldest first, with their ids, attempts starting
    /// again), in one transaction; how many. They are delivered when a
    /// durable subscriber of that name next attaches (on the next start;
    /// a subscriber attached now does not see them before). Refused on a
    /// store that has failed.
    pub fn redrive(&self, subscriber: &str, filter: &Redrive) -> Result<u64, StoreError> {
        let shared = &self.shared.0;
        if let Some(failed) = shared.last_error() {
            return Err(failed);
        }
        let moved = guard(|| shared.redrive(subscriber, |d| filter.takes(d)));
        match moved {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(StoreError::io(&shared.path, Operation::Redrive, fault(e))),
            Err(panic) => {
                shared.fail(Operation::Redrive, panic.clone(), true);
                Err(StoreError::corrupted(
                    &shared.path,
                    Operation::Redrive,
                    panic,
                ))
            }
        }
    }

    /// Writes a consistent copy of the store (one snapshot, taken while
    /// the bus runs) to a new file at `dest`, which must not exist; how
    /// many records were copied. The copy is a store: open it with
    /// [`Store::open`].
    pub fn backup(&self, dest: impl AsRef<Path>) -> Result<u64, StoreError> {
        let dest = dest.as_ref();
        let shared = &self.shared.0;
        if dest.exists() {
            return Err(StoreError::open(dest, OpenProblem::Exists));
        }
        let during = Operation::Backup {
            to: dest.to_path_buf(),
        };
        let copied = guard(|| shared.backup(dest));
        match copied {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => {
                let _ = std::fs::remove_file(dest);
                Err(StoreError::io(&shared.path, during, fault(e)))
            }
            Err(panic) => {
                let _ = std::fs::remove_file(dest);
                Err(StoreError::corrupted(&shared.path, during, panic))
            }
        }
    }

    /// Compacts the store file at `path` (not open anywhere: run it while
    /// the application is stopped), giving the space of deleted records
    /// back to the file system; the file's size before and after.
    pub fn compact(path: impl AsRef<Path>) -> Result<(u64, u64), StoreError> {
        let path = path.as_ref();
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let before = size(path);
        writer::compact(path)?;
        Ok((before, size(path)))
    }

    /// Whether the store keeps delivered events (see
    /// [`keep_delivered`](StoreBuilder::keep_delivered)).
    pub fn keeps_delivered(&self) -> bool {
        self.shared.0.keeps_delivered()
    }

    /// How many dead letters the store keeps now.
    pub fn dead_letter_count(&self) -> Result<u64, StoreError> {
        self.read(DEAD, 0, |table| table.len().map_err(fault))
    }

    /// An endpoint's persisted state: enabled, and why it was disabled
    /// (None when never recorded).
    #[cfg_attr(not(feature = "webhook"), allow(dead_code))]
    pub(crate) fn endpoint_state(&self, name: &str) -> Option<(bool, String)> {
        self.read(ENDPOINTS, None, |table| {
            Ok(table
                .get(name)
                .map_err(fault)?
                .and_then(|v| writer::decode_endpoint(v.value())))
        })
        .ok()
        .flatten()
    }

    /// Records an endpoint's state (with the next commit).
    #[cfg_attr(not(feature = "webhook"), allow(dead_code))]
    pub(crate) fn set_endpoint_state(&self, name: &str, enabled: bool, reason: &str) {
        self.shared.0.enqueue(Op::Endpoint {
            name: name.to_owned(),
            enabled,
            reason: reason.to_owned(),
        });
    }

    /// Records a durable webhook's delivery attempt (its JSON), with the next
    /// commit.
    #[cfg_attr(not(feature = "webhook"), allow(dead_code))]
    pub(crate) fn record_attempt(&self, name: &str, json: Vec<u8>) {
        self.shared.0.enqueue(Op::Attempt {
            name: name.to_owned(),
            json,
        });
    }

    /// The newest `limit` attempts recorded for `name` (their JSON), oldest
    /// first.
    #[cfg_attr(not(feature = "webhook"), allow(dead_code))]
    pub(crate) fn attempts(&self, name: &str, limit: usize) -> Vec<Vec<u8>> {
        self.read(ATTEMPTS, Vec::new(), |table| {
            let mut out = std::collections::VecDeque::new();
            for (_, v) in table.iter().map_err(fault)?.rev().flatten() {
                if out.len() >= limit {
                    break;
                }
                if let Some((n, json)) = writer::decode_attempt(v.value())
                    && n == name
                {
                    out.push_front(json.to_vec());
                }
            }
            Ok(out.into())
        })
        .unwrap_or_default()
    }

    /// Forgets the dead letters of `subscriber` with these event ids (they
    /// were delivered after all), with the next commit.
    #[cfg_attr(not(feature = "webhook"), allow(dead_code))]
    pub(crate) fn remove_dead(&self, subscriber: &str, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        self.shared.0.enqueue(Op::RemoveDead {
            sub: subscriber.to_owned(),
            ids,
        });
    }

    /// Attaches a durable subscriber of `hub`: its journal, and the events
    /// it had pending, oldest first. A failure of the store is announced on
    /// `hub` (`hookbus.store_failed`).
    pub(crate) fn attach(
        &self,
        name: &str,
        hub: std::sync::Weak<crate::hub::Hub>,
    ) -> Result<Attachment, StoreError> {
        let shared = &self.shared.0;
        let generation = shared.next_generation.fetch_add(1, Ordering::Relaxed);
        let leaving = {
            let mut attached = shared.attached.lock().unwrap_or_else(|e| e.into_inner());
            // A subscriber unsubscribed (still finishing the events it
            // holds) gives its name up at once: the new one takes it over,
            // and leaves it the events it holds.
            let mut leaving = Vec::new();
            if let Some(holder) = attached.get(name) {
                if !holder.released {
                    return Err(StoreError::NameInUse(name.to_owned()));
                }
                leaving = holder.leaving.clone();
                leaving.push(holder.route.clone());
                leaving.retain(|r| r.strong_count() > 0);
            }
            attached.insert(
                name.to_owned(),
                Holder {
                    hub,
                    generation,
                    released: false,
                    route: std::sync::Weak::new(),
                    leaving: leaving.clone(),
                },
            );
            leaving
        };
        let route = Arc::new(DurableRoute::new(
            self.shared.clone(),
            name.into(),
            generation,
        ));
        let recovered = match route.recover(&leaving) {
            Ok(r) => r,
            Err(e) => {
                // Dropping the route gives the name back.
                drop(route);
                return Err(e);
            }
        };
        shared
            .counters
            .recovered
            .fetch_add(recovered.len() as u64, Ordering::Relaxed);
        if let Some(holder) = shared
            .attached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(name)
            .filter(|h| h.generation == generation)
        {
            holder.route = Arc::downgrade(&route);
        }
        Ok((route, recovered))
    }
}

/// Reads every pending record into `report`, and compares what it found
/// of each subscriber with the count the store keeps of them: records
/// under a subscriber the store has no count for have a damaged key, and
/// records counted but not found are missing.
fn check_pending(txn: &redb::ReadTransaction, report: &mut CheckReport) -> Result<(), redb::Error> {
    let mut counts = std::collections::BTreeMap::new();
    match txn.open_table(writer::META) {
        Ok(meta) => {
            for row in meta.range("count/".."count0")? {
                let (k, v) = row?;
                if let Some(sub) = k.value().strip_prefix("count/") {
                    counts.insert(sub.to_owned(), v.value());
                }
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let mut seen: std::collections::BTreeMap<String, u64> = Default::default();
    let counted = !counts.is_empty();
    let (tables, damaged) = segments::list(txn.list_tables()?);
    for name in damaged {
        // A segment table whose name is damaged: its records cannot be
        // told apart from others'.
        report.unreadable.push(UnreadableRecord {
            table: "pending",
            key: name,
        });
    }
    for (sub, seg, name) in tables {
        check_table(txn, segments::table(&name), report, |seq, v, report| {
            if (counted && !counts.contains_key(&sub)) || seq / segments::SEGMENT != seg {
                report.unreadable.push(UnreadableRecord {
                    table: "pending",
                    key: format!("{sub}/{seq}"),
                });
                return;
            }
            *seen.entry(sub.clone()).or_default() += 1;
            match writer::decode_pending(v) {
                Some(_) => *report.pending.entry(sub.clone()).or_default() += 1,
                None => report.unreadable.push(UnreadableRecord {
                    table: "pending",
                    key: format!("{sub}/{seq}"),
                }),
            }
        })?;
    }
    for (sub, expected) in counts {
        let found = seen.get(&sub).copied().unwrap_or(0);
        report.missing += expected.saturating_sub(found);
    }
    Ok(())
}

/// Reads every record of one table into `report` with `each`, and counts
/// the records its length promises that the read did not reach.
fn check_table<K: redb::Key + 'static>(
    txn: &redb::ReadTransaction,
    table: redb::TableDefinition<K, &'static [u8]>,
    report: &mut CheckReport,
    mut each: impl FnMut(K::SelfType<'_>, &[u8], &mut CheckReport),
) -> Result<(), redb::Error> {
    let table = match txn.open_table(table) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let len = table.len()?;
    let mut seen = 0u64;
    for row in table.iter()? {
        let (k, v) = row?;
        seen += 1;
        each(k.value(), v.value(), report);
    }
    report.missing += len.saturating_sub(seen);
    Ok(())
}

/// Up to `limit` of the values of `rows` that `keep` decodes and keeps, in
/// order (records that cannot be read are skipped).
fn decoded<'a, K: redb::Key + 'static, T>(
    rows: impl Iterator<
        Item = Result<
            (
                redb::AccessGuard<'a, K>,
                redb::AccessGuard<'a, &'static [u8]>,
            ),
            redb::StorageError,
        >,
    >,
    limit: usize,
    mut keep: impl FnMut(&[u8]) -> Option<T>,
) -> Result<Vec<T>, Fault> {
    let mut out = Vec::new();
    for row in rows {
        if out.len() >= limit {
            break;
        }
        let (_, v) = row.map_err(fault)?;
        out.extend(keep(v.value()));
    }
    Ok(out)
}

/// A durable subscriber's journal and the events it had pending.
pub(crate) type Attachment = (Arc<dyn crate::hub::Journal>, Vec<Arc<Event>>);

/// Names attached to a store, given back when their route goes.
pub(crate) type Attached = Mutex<HashMap<String, Holder>>;

/// The subscriber attached under `name` (attachment `generation`) was
/// unsubscribed: the name can be taken over.
pub(crate) fn release(shared: &Shared, name: &str, generation: u64) {
    if let Some(holder) = shared
        .attached
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_mut(name)
        .filter(|h| h.generation == generation)
    {
        holder.released = true;
    }
}

/// The durable subscriber holding a name.
pub(crate) struct Holder {
    /// The bus it belongs to.
    pub(crate) hub: std::sync::Weak<crate::hub::Hub>,
    /// Which attachment (a route gives back only its own).
    generation: u64,
    /// Unsubscribed: it finishes the events it holds, and the name can be
    /// taken over.
    released: bool,
    route: std::sync::Weak<DurableRoute>,
    /// Earlier holders of the name, unsubscribed and still finishing.
    leaving: Vec<std::sync::Weak<DurableRoute>>,
}
