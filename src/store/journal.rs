//! A durable subscriber's journal: which of its events are pending under
//! which sequence number, turned into writes for the store.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use redb::{ReadableDatabase, ReadableTable};
use rustc_hash::FxHashMap;

use super::error::{Damage, Fault, Operation, fault};
use super::segments::{self, SEGMENT};
use super::writer::{META, Op, PendingRecord, count_key, decode_pending, guard, now_ms};
use super::{Owner, StoreError};
use crate::event::Event;
use crate::hub::journal::{Commit, Journal, Refusal, Resume};

/// Where one pending event stands.
#[derive(Clone, Copy)]
struct Entry {
    seq: u64,
    /// The next attempt's number once a retry is scheduled (0: none yet).
    attempt: u32,
    next_at_ms: u64,
    accepted_ms: u64,
}

pub(crate) struct DurableRoute {
    owner: Arc<Owner>,
    sub: Arc<str>,
    /// Which attachment of the name this is.
    generation: u64,
    /// The first sequence number its own events can have: records of its
    /// name from here on are its own (a subscriber that takes the name over
    /// while this one finishes leaves them to it).
    from_seq: std::sync::atomic::AtomicU64,
    /// Pending events by the address of their shared `Event`: the mailbox
    /// or the task holds that `Arc` for as long as the entry exists, so the
    /// address cannot be reused meanwhile.
    pending: Mutex<FxHashMap<usize, Entry>>,
}

fn key(event: &Arc<Event>) -> usize {
    Arc::as_ptr(event) as usize
}

impl DurableRoute {
    pub(super) fn new(owner: Arc<Owner>, sub: Arc<str>, generation: u64) -> DurableRoute {
        DurableRoute {
            owner,
            sub,
            generation,
            from_seq: std::sync::atomic::AtomicU64::new(u64::MAX),
            pending: Mutex::default(),
        }
    }

    /// Whether the record `seq` of its name is this route's to finish: one
    /// it holds, or one of its own events.
    fn holds(&self, seq: u64, held: &rustc_hash::FxHashSet<u64>) -> bool {
        seq >= self.from_seq.load(Ordering::Acquire) || held.contains(&seq)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, FxHashMap<usize, Entry>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads this subscriber's pending events back, oldest first, and
    /// tracks them as pending again. A record that cannot be read as an
    /// event is skipped (logged with its key, counted as unreadable); damage
    /// that stops the read (an error or a panic in the database) refuses
    /// the attach with what was read so far, and tracks nothing.
    ///
    /// `leaving`: earlier subscribers of the name, unsubscribed and still
    /// finishing the events they hold: those are left to them.
    pub(super) fn recover(
        &self,
        leaving: &[std::sync::Weak<DurableRoute>],
    ) -> Result<Vec<Arc<Event>>, StoreError> {
        let shared = &self.owner.0;
        // Its own events come after every record read here.
        self.from_seq
            .store(shared.next_seq.load(Ordering::Acquire), Ordering::Release);
        let leaving: Vec<(Arc<DurableRoute>, rustc_hash::FxHashSet<u64>)> = leaving
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .map(|r| {
                let held = r.map().values().map(|e| e.seq).collect();
                (r, held)
            })
            .collect();
        let mut left = 0u64;
        let mut out = Vec::new();
        let mut unreadable = 0u64;
        let read = guard(|| -> Result<(), redb::Error> {
            let txn = shared.db().begin_read()?;
            let expected = match txn.open_table(META) {
                Ok(meta) => meta.get(count_key(&self.sub).as_str())?.map(|v| v.value()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e.into()),
            };
            let tables = segments::of(txn.list_tables()?, &self.sub);
            // Decoding the records into events is the slow part: decoder
            // threads (one per core) take chunks of records while the
            // database is still being read.
            let mut decoded = Vec::new();
            let read = decode_while_reading(&mut decoded, |emit| {
                for (seg, name) in &tables {
                    let table = txn.open_table(segments::table(name))?;
                    for row in table.iter()? {
                        let (k, v) = row?;
                        let seq = k.value();
                        if leaving.iter().any(|(r, held)| r.holds(seq, held)) {
                            left += 1;
                            continue;
                        }
                        if seq / SEGMENT != *seg {
                            // A damaged key: not of this segment.
                            unreadable += 1;
                            tracing::error!(store = %shared.path.display(), subscriber = %self.sub, seq, segment = seg, "hookbus: a pending record of the store has a damaged key; skipped (kept in the file)");
                            continue;
                        }
                        emit(seq, v.value());
                    }
                }
                Ok(())
            });
            for (seq, record) in decoded {
                match record {
                    Some(record) => out.push((seq, record)),
                    None => {
                        unreadable += 1;
                        tracing::error!(store = %shared.path.display(), subscriber = %self.sub, seq, "hookbus: a pending record of the store cannot be read as an event; skipped (kept in the file)");
                    }
                }
            }
            read?;
            // Records the count promises that the read did not reach (a
            // damaged key or page hid them): counted, never silently gone.
            let seen = out.len() as u64 + unreadable + left;
            if let Some(expected) = expected
                && expected > seen
            {
                let missing = expected - seen;
                unreadable += missing;
                tracing::error!(store = %shared.path.display(), subscriber = %self.sub, missing, "hookbus: pending records of the store cannot be found (the file is damaged); counted as unreadable");
            }
            Ok(())
        });
        shared
            .counters
            .unreadable
            .fetch_add(unreadable, Ordering::Relaxed);
        let failure: Option<Fault> = match read {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(fault(e)),
            Err(panic) => Some(panic),
        };
        if let Some(failure) = failure {
            return Err(StoreError::Corrupted {
                path: shared.path.clone(),
                during: Operation::Attach {
                    subscriber: self.sub.to_string(),
                },
                damage: Damage::Fault(failure),
                recovered: out.len() as u64,
                unreadable,
            });
        }
        let mut map = self.map();
        Ok(out
            .into_iter()
            .map(|(seq, record)| {
                let event = Arc::new(record.event);
                map.insert(
                    key(&event),
                    Entry {
                        seq,
                        attempt: record.attempt,
                        next_at_ms: record.next_at_ms,
                        accepted_ms: record.accepted_ms,
                    },
                );
                event
            })
            .collect())
    }

    fn take(&self, event: &Arc<Event>) -> Option<Entry> {
        self.map().remove(&key(event))
    }
}

/// Records read and not yet decoded: their bytes, one after the other.
#[derive(Default)]
struct Chunk {
    bytes: Vec<u8>,
    rows: Vec<(u64, usize)>,
}

/// Records per chunk handed to a decoder thread.
const CHUNK_ROWS: usize = 2048;

impl Chunk {
    fn push(&mut self, seq: u64, value: &[u8]) {
        self.bytes.extend_from_slice(value);
        self.rows.push((seq, self.bytes.len()));
    }

    fn decode(&self) -> Vec<(u64, Option<PendingRecord>)> {
        let mut start = 0;
        self.rows
            .iter()
            .map(|&(seq, end)| {
                let record = decode_pending(&self.bytes[start..end]);
                start = end;
                (seq, record)
            })
            .collect()
    }
}

/// Runs `read`, which hands each record to the function it is given, and
/// decodes the records on decoder threads (as many as there are cores)
/// meanwhile; `decoded` gets them all, in the order they were read, also
/// when `read` fails part way.
fn decode_while_reading(
    decoded: &mut Vec<(u64, Option<PendingRecord>)>,
    read: impl FnOnce(&mut dyn FnMut(u64, &[u8])) -> Result<(), redb::Error>,
) -> Result<(), redb::Error> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let (jobs, job_rx) = std::sync::mpsc::sync_channel::<(usize, Chunk)>(threads * 2);
    let job_rx = Mutex::new(job_rx);
    std::thread::scope(|scope| {
        // Owned here: dropped (on return or unwind) before the scope waits
        // for the decoders, which end when it is gone.
        let jobs = jobs;
        let (done_tx, done) = std::sync::mpsc::channel();
        for _ in 0..threads {
            let job_rx = &job_rx;
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                loop {
                    let job = job_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((n, chunk)) = job else { break };
                    if done_tx.send((n, chunk.decode())).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let mut chunk = Chunk::default();
        let mut sent = 0;
        let result = read(&mut |seq, value| {
            chunk.push(seq, value);
            if chunk.rows.len() >= CHUNK_ROWS {
                // The decoders run until `jobs` is dropped below.
                let _ = jobs.send((sent, std::mem::take(&mut chunk)));
                sent += 1;
            }
        });
        if !chunk.rows.is_empty() {
            let _ = jobs.send((sent, chunk));
        }
        drop(jobs);
        let mut parts: Vec<(usize, Vec<_>)> = done.iter().collect();
        parts.sort_unstable_by_key(|(n, _)| *n);
        decoded.extend(parts.into_iter().flat_map(|(_, part)| part));
        result
    })
}

impl Drop for DurableRoute {
    fn drop(&mut self) {
        let mut attached = self
            .owner
            .0
            .attached
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Only its own attachment: the name may have been taken over.
        if attached
            .get(&*self.sub)
            .is_some_and(|h| h.generation == self.generation)
        {
            attached.remove(&*self.sub);
        }
    }
}

impl Journal for DurableRoute {
    fn release(&self) {
        super::release(&self.owner.0, &self.sub, self.generation);
    }

    fn refusal(&self) -> Option<Refusal> {
        self.owner.0.refusal()
    }

    fn progress(&self) -> crate::sink::BoxFuture<()> {
        Box::pin(self.owner.0.progress())
    }

    fn append(&self, event: &Arc<Event>) {
        let shared = &self.owner.0;
        let seq = shared.next_seq.fetch_add(1, Ordering::Relaxed);
        let accepted_ms = now_ms();
        let undelivered = {
            let mut map = self.map();
            map.insert(
                key(event),
                Entry {
                    seq,
                    attempt: 0,
                    next_at_ms: 0,
                    accepted_ms,
                },
            );
            map.len()
        };
        // A subscriber further behind than the writer will not have this
        // event delivered before its commit, so the writer will write it:
        // its JSON is made here, on the emitting thread, while the writer
        // commits what came before (made once, and cached in the event),
        // rather than by the writer, one event after the other, between
        // its commits. A subscriber that keeps up never pays for it: its
        // events are delivered before their commit and never written.
        if shared.behind_writer(undelivered) {
            event.structured_json();
        }
        shared.counters.appended.fetch_add(1, Ordering::Relaxed);
        shared.enqueue(Op::Insert {
            sub: self.sub.clone(),
            seq,
            event: event.clone(),
            accepted_ms,
        });
    }

    fn discard(&self, event: &Arc<Event>) {
        if let Some(entry) = self.take(event) {
            let shared = &self.owner.0;
            shared.counters.discarded.fetch_add(1, Ordering::Relaxed);
            shared.enqueue(Op::Delete {
                sub: self.sub.clone(),
                seq: entry.seq,
            });
        }
    }

    fn delivered(&self, events: &[Arc<Event>]) {
        let shared = &self.owner.0;
        for event in events {
            if let Some(entry) = self.take(event) {
                shared.enqueue(Op::Delete {
                    sub: self.sub.clone(),
                    seq: entry.seq,
                });
                if shared.keeps_delivered() {
                    shared.enqueue(Op::Keep {
                        sub: self.sub.clone(),
                        event: event.clone(),
                        accepted_ms: entry.accepted_ms,
                    });
                }
                // Counted once its writes are in the buffer: a `sync`
                // after the count takes them.
                shared.counters.delivered.fetch_add(1, Ordering::Release);
            }
        }
    }

    fn failed(&self, events: &[Arc<Event>], reason: &str) {
        let shared = &self.owner.0;
        for event in events {
            if let Some(entry) = self.take(event) {
                shared.enqueue(Op::Dead {
                    sub: self.sub.clone(),
                    seq: entry.seq,
                    event: event.clone(),
                    // The attempt a retry was scheduled for was made and
                    // failed too; without retries, one attempt.
                    attempts: entry.attempt.max(1),
                    reason: reason.to_owned(),
                });
                // Counted once its write is in the buffer.
                shared
                    .counters
                    .dead_lettered
                    .fetch_add(1, Ordering::Release);
            }
        }
    }

    fn retrying(&self, events: &[Arc<Event>], next: Resume) {
        let next_at_ms = next
            .at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let shared = &self.owner.0;
        for event in events {
            let updated = self.map().get_mut(&key(event)).map(|entry| {
                entry.attempt = next.attempt;
                entry.next_at_ms = next_at_ms;
                *entry
            });
            if let Some(entry) = updated {
                shared.enqueue(Op::Retry {
                    sub: self.sub.clone(),
                    seq: entry.seq,
                    event: event.clone(),
                    attempt: entry.attempt,
                    next_at_ms,
                    accepted_ms: entry.accepted_ms,
                });
            }
        }
    }

    fn resume(&self, event: &Arc<Event>) -> Option<Resume> {
        let entry = *self.map().get(&key(event))?;
        (entry.attempt > 0).then(|| Resume {
            attempt: entry.attempt,
            at: UNIX_EPOCH + Duration::from_millis(entry.next_at_ms),
        })
    }

    fn commit(&self) -> Commit {
        Box::pin(self.owner.0.commit_now())
    }
}
