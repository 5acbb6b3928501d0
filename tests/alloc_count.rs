//! Allocations per typed emit delivered to one typed closure subscriber,
//! counted by a counting global allocator (this test binary only).
//!
//! The goal is at most 2: the `Arc` of the value and the `Arc` of the event.
//! No JSON, no id string, no per-event `Vec`.
//!
//! What does not grow with the number of events (a runtime queue or a
//! mailbox growing once more, say: CI once saw 4 such allocations in a run
//! of 512 events) is not a per-event cost. So the test emits many events and
//! allows a small fixed slack: a third allocation per event would overrun it
//! by thousands.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use hookbus::{Bus, Typed, TypedEvent};
use serde::{Deserialize, Serialize};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Serialize, Deserialize)]
struct Scored {
    id: u64,
    score: f64,
    label: String,
}

impl TypedEvent for Scored {
    const TYPE: &'static str = "model.scored";
}

#[test]
fn a_typed_emit_to_one_typed_closure_allocates_at_most_twice() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let bus = Bus::new().unwrap();
        let seen = std::sync::Arc::new(AtomicU64::new(0));
        let s2 = seen.clone();
        bus.on_typed(move |s: Typed<Scored>| {
            s2.fetch_add(1, Ordering::Relaxed);
            std::hint::black_box(s.id);
        })
        .unwrap()
        .detach();
        // Rounds well below the mailbox's capacity (1024, DropOldest), each
        // delivered before the next, so nothing is dropped.
        const ROUND: u64 = 256;
        const N: u64 = 16 * ROUND;
        // One-off allocations, not per event (see the module docs).
        const SLACK: u64 = 64;
        // Build the values first and count only what emitting and
        // delivering them costs.
        let values = |base: u64| {
            (0..N)
                .map(|i| Scored {
                    id: base + i,
                    score: 0.5,
                    label: String::new(), // an empty String does not allocate
                })
                .collect::<Vec<_>>()
        };
        // Emits without allocating anything of its own.
        let emit_all = async |values: Vec<Scored>| {
            let seen_before = seen.load(Ordering::Relaxed);
            for (i, v) in values.into_iter().enumerate() {
                bus.emit(v).unwrap();
                let sent = i as u64 + 1;
                if sent.is_multiple_of(ROUND) {
                    let target = seen_before + sent;
                    while seen.load(Ordering::Relaxed) < target {
                        tokio::task::yield_now().await;
                    }
                }
            }
        };
        // Warm up: the mailbox grows to its working size once.
        emit_all(values(0)).await;
        let values = values(N);
        let before = ALLOCS.load(Ordering::Relaxed);
        emit_all(values).await;
        let allocs = ALLOCS.load(Ordering::Relaxed) - before;
        let per_event = allocs as f64 / N as f64;
        eprintln!("{allocs} allocations for {N} typed events: {per_event:.2} per event");
        assert!(
            allocs <= 2 * N + SLACK,
            "{allocs} allocations for {N} events: {per_event:.2} per event \
             (goal <= 2 per event, plus {SLACK} one-off)"
        );
        bus.shutdown(std::time::Duration::from_secs(5)).await;
    });
}
