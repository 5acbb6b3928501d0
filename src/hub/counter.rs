//! A counter for the hot path of `emit`.
//!
//! Every thread bumps a cell of its own with a plain load and store: no atomic
//! read-modify-write and no cache line shared between emitting threads.
//! Reading sums the cells. A thread keeps its cells in a thread-local list
//! (first entry checked first, so one bus costs one compare); when the thread
//! ends, each cell's count is folded into its counter and the cell is freed,
//! so short-lived threads leave nothing behind.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};

#[derive(Debug, Default)]
struct Cell {
    value: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    cells: Mutex<Vec<Arc<Cell>>>,
    /// Counts of cells whose thread ended (and of bumps made while a
    /// thread's locals were being torn down).
    retired: AtomicU64,
}

/// One thread's cells, folded into their counters when the thread ends.
struct Local(Vec<(Weak<Inner>, Arc<Cell>)>);

impl Drop for Local {
    fn drop(&mut self) {
        for (inner, cell) in self.0.drain(..) {
            if let Some(inner) = inner.upgrade() {
                let mut cells = inner.cells.lock().unwrap_or_else(|e| e.into_inner());
                // Fold and unlink under the lock, so `get` never counts the
                // cell twice or not at all.
                inner.retired.fetch_add(cell.value.load(Relaxed), Relaxed);
                cells.retain(|c| !Arc::ptr_eq(c, &cell));
            }
        }
    }
}

thread_local! {
    static LOCAL: RefCell<Local> = const { RefCell::new(Local(Vec::new())) };
}

#[derive(Debug, Default)]
pub(crate) struct ThreadCounter {
    inner: Arc<Inner>,
}

impl ThreadCounter {
    #[inline]
    pub(crate) fn bump(&self) {
        let done = LOCAL.try_with(|local| {
            let mut local = local.borrow_mut();
            let me = Arc::as_ptr(&self.inner);
            if let Some((_, cell)) = local.0.first()
                && std::ptr::eq(local.0[0].0.as_ptr(), me)
            {
                // Only this thread writes this cell.
                cell.value.store(cell.value.load(Relaxed) + 1, Relaxed);
                return;
            }
            self.bump_slow(&mut local);
        });
        if done.is_err() {
            self.inner.retired.fetch_add(1, Relaxed);
        }
    }

    #[cold]
    fn bump_slow(&self, local: &mut Local) {
        let me = Arc::as_ptr(&self.inner);
        // Forget counters that are gone (their bus was dropped).
        local.0.retain(|(inner, _)| inner.strong_count() > 0);
        let at = match local
            .0
            .iter()
            .position(|(i, _)| std::ptr::eq(i.as_ptr(), me))
        {
            Some(at) => at,
            None => {
                let cell = Arc::new(Cell::default());
                self.inner
                    .cells
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(cell.clone());
                local.0.push((Arc::downgrade(&self.inner), cell));
                local.0.len() - 1
            }
        };
        // Most recently used first.
        local.0.swap(0, at);
        let cell = &local.0[0].1;
        cell.value.store(cell.value.load(Relaxed) + 1, Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        let cells = self.inner.cells.lock().unwrap_or_else(|e| e.into_inner());
        cells.iter().map(|c| c.value.load(Relaxed)).sum::<u64>() + self.inner.retired.load(Relaxed)
    }

    /// Live cells (threads that bumped this counter and still run).
    #[cfg(test)]
    fn cells(&self) -> usize {
        self.inner.cells.lock().unwrap().len()
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
    }

    #[test]
    fn ended_threads_leave_no_cell_and_keep_their_counts() {
        let c = Arc::new(ThreadCounter::default());
        for _ in 0..1000 {
            let c = c.clone();
            std::thread::spawn(move || c.bump()).join().unwrap();
        }
        assert_eq!(c.get(), 1000);
        assert_eq!(c.cells(), 0, "a cell per ended thread was kept");
    }
}
