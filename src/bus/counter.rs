//! A counter for the hot path of `emit`.
//!
//! Every thread bumps a cell of its own with a plain load and store: no atomic
//! read-modify-write and no cache line shared between emitting threads.
//! Reading sums the cells. A thread finds its cell through a one-entry
//! thread-local cache, so switching between buses costs a lookup, never a new
//! cell: there is at most one cell per thread per counter.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static CACHE: RefCell<Option<(u64, Arc<AtomicU64>)>> = const { RefCell::new(None) };
}

#[derive(Debug)]
pub(crate) struct ThreadCounter {
    id: u64,
    cells: Mutex<Vec<(ThreadId, Arc<AtomicU64>)>>,
    /// For the rare bump from a thread whose thread-locals are being torn down.
    fallback: AtomicU64,
}

impl Default for ThreadCounter {
    fn default() -> Self {
        ThreadCounter {
            id: NEXT_ID.fetch_add(1, Relaxed),
            cells: Mutex::new(Vec::new()),
            fallback: AtomicU64::new(0),
        }
    }
}

impl ThreadCounter {
    #[inline]
    pub(crate) fn bump(&self) {
        let done = CACHE.try_with(|cache| {
            let mut cache = cache.borrow_mut();
            match &*cache {
                Some((id, cell)) if *id == self.id => {
                    // Only this thread writes this cell.
                    cell.store(cell.load(Relaxed) + 1, Relaxed);
                }
                _ => {
                    let cell = self.cell_of_this_thread();
                    cell.store(cell.load(Relaxed) + 1, Relaxed);
                    *cache = Some((self.id, cell));
                }
            }
        });
        if done.is_err() {
            self.fallback.fetch_add(1, Relaxed);
        }
    }

    #[cold]
    fn cell_of_this_thread(&self) -> Arc<AtomicU64> {
        let me = std::thread::current().id();
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, cell)) = cells.iter().find(|(t, _)| *t == me) {
            return cell.clone();
        }
        let cell = Arc::new(AtomicU64::new(0));
        cells.push((me, cell.clone()));
        cell
    }

    pub(crate) fn get(&self) -> u64 {
        let cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        cells.iter().map(|(_, c)| c.load(Relaxed)).sum::<u64>() + self.fallback.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_across_threads_and_counters() {
        let a = Arc::new(ThreadCounter::default());
        let b = Arc::new(ThreadCounter::default());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (a, b) = (a.clone(), b.clone());
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        a.bump();
                        b.bump();
                        b.bump();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(a.get(), 4000);
        assert_eq!(b.get(), 8000);
        // Alternating between counters reuses each thread's cell.
        assert!(a.cells.lock().unwrap().len() <= 4);
    }
}
