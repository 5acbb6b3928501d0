//! A durable subscriber's journal: which of its events are pending under
//! which sequence number, turned into writes for the store.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use redb::ReadableDatabase;
use rustc_hash::FxHashMap;

use super::writer::{META, Op, PENDING, count_key, decode_pending, guard, now_ms};
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
    /// Pending events by the address of their shared `Event`: the mailbox
    /// or the task holds that `Arc` for as long as the entry exists, so the
    /// address cannot be reused meanwhile.
    pending: Mutex<FxHashMap<usize, Entry>>,
}

fn key(event: &Arc<Event>) -> usize {
    Arc::as_ptr(event) as usize
}

impl DurableRoute {
    pub(super) fn new(owner: Arc<Owner>, sub: Arc<str>) -> DurableRoute {
        DurableRoute {
            owner,
            sub,
            pending: Mutex::default(),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, FxHashMap<usize, Entry>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads this subscriber's pending events back, oldest first, and
    /// tracks them as pending again. A record that cannot be read as an
    /// event is skipped (logged with its key, counted as unreadable); damage
    /// that stops the read (an error or a panic in the database) refuses
    /// the attach with what was read so far, and tracks nothing.
    pub(super) fn recover(&self) -> Result<Vec<Arc<Event>>, StoreError> {
        let shared = &self.owner.0;
        let mut out = Vec::new();
        let mut unreadable = 0u64;
        let read = guard(|| -> Result<(), redb::Error> {
            let txn = shared.db().begin_read()?;
            let expected = match txn.open_table(META) {
                Ok(meta) => meta.get(count_key(&self.sub).as_str())?.map(|v| v.value()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e.into()),
            };
            let table = txn.open_table(PENDING)?;
            // The records' bytes first (the database reads fast), then
            // decoded into events on every core (the slow part).
            let mut bytes = Vec::new();
            let mut rows: Vec<(u64, std::ops::Range<usize>)> = Vec::new();
            for row in table.range((&*self.sub, 0)..=(&*self.sub, u64::MAX))? {
                let (k, v) = row?;
                let (sub, seq) = k.value();
                if sub != &*self.sub {
                    // A damaged key inside this subscriber's range.
                    unreadable += 1;
                    tracing::error!(store = %shared.path.display(), subscriber = %self.sub, key = ?(sub, seq), "hookbus: a pending record of the store has a damaged key; skipped (kept in the file)");
                    continue;
                }
                let start = bytes.len();
                bytes.extend_from_slice(v.value());
                rows.push((seq, start..bytes.len()));
            }
            for (seq, record) in decode_all(&bytes, &rows) {
                match record {
                    Some(record) => out.push((seq, record)),
                    None => {
                        unreadable += 1;
                        tracing::error!(store = %shared.path.display(), subscriber = %self.sub, seq, "hookbus: a pending record of the store cannot be read as an event; skipped (kept in the file)");
                    }
                }
            }
            // Records the count promises that the read did not reach (a
            // damaged key or page hid them): counted, never silently gone.
            let seen = out.len() as u64 + unreadable;
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
        let failure = match read {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(panic) => Some(panic),
        };
        if let Some(reason) = failure {
            return Err(StoreError::Corrupted {
                path: shared.path.clone(),
                reason: format!(
                    "reading the pending events of {:?} failed: {reason}",
                    self.sub
                ),
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

/// Decodes the records (`rows` index into `bytes`), in order, on up to as
/// many threads as there are cores when there are many.
fn decode_all(
    bytes: &[u8],
    rows: &[(u64, std::ops::Range<usize>)],
) -> Vec<(u64, Option<super::writer::PendingRecord>)> {
    let decode = |rows: &[(u64, std::ops::Range<usize>)]| {
        rows.iter()
            .map(|(seq, r)| (*seq, decode_pending(&bytes[r.clone()])))
            .collect::<Vec<_>>()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads == 1 || rows.len() < 4096 {
        return decode(rows);
    }
    let chunk = rows.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = rows
            .chunks(chunk)
            .skip(1)
            .map(|part| (part, scope.spawn(move || decode(part))))
            .collect();
        // The first part on this thread.
        let mut out = decode(&rows[..chunk.min(rows.len())]);
        for (part, handle) in parts {
            match handle.join() {
                Ok(decoded) => out.extend(decoded),
                // Decoding does not panic; if it did, its records count as
                // unreadable.
                Err(_) => out.extend(part.iter().map(|(seq, _)| (*seq, None))),
            }
        }
        out
    })
}

impl Drop for DurableRoute {
    fn drop(&mut self) {
        self.owner
            .0
            .attached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&*self.sub);
    }
}

impl Journal for DurableRoute {
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
        self.map().insert(
            key(event),
            Entry {
                seq,
                attempt: 0,
                next_at_ms: 0,
                accepted_ms,
            },
        );
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
                shared.counters.delivered.fetch_add(1, Ordering::Relaxed);
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
            }
        }
    }

    fn failed(&self, events: &[Arc<Event>], reason: &str) {
        let shared = &self.owner.0;
        for event in events {
            if let Some(entry) = self.take(event) {
                shared
                    .counters
                    .dead_lettered
                    .fetch_add(1, Ordering::Relaxed);
                shared.enqueue(Op::Dead {
                    sub: self.sub.clone(),
                    seq: entry.seq,
                    event: event.clone(),
                    // The attempt a retry was scheduled for was made and
                    // failed too; without retries, one attempt.
                    attempts: entry.attempt.max(1),
                    reason: reason.to_owned(),
                });
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
