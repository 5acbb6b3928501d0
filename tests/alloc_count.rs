//! Allocations per typed emit delivered to one typed closure subscriber,
//! counted by a counting global allocator (this test binary only).
//!
//! The goal is at most 2: the `Arc` of the value and the `Arc` of the event.
//! No JSON, no id string, no per-event `Vec`.

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
        let total = std::sync::Arc::new(AtomicU64::new(0));
        let t = total.clone();
        bus.on_typed(move |s: Typed<Scored>| {
            t.fetch_add(s.id, Ordering::Relaxed);
        })
        .unwrap()
        .detach();
        // Build the values first and count only what emitting and
        // delivering them costs.
        const N: u64 = 512;
        let run = |base: u64| {
            (0..N)
                .map(|i| Scored {
                    id: base + i,
                    score: 0.5,
                    label: String::new(), // an empty String does not allocate
                })
                .collect::<Vec<_>>()
        };
        // Warm up: the mailbox grows to its working size once.
        for v in run(0) {
            bus.emit(v).unwrap();
        }
        tokio::task::yield_now().await;
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        let values = run(N);
        let before = ALLOCS.load(Ordering::Relaxed);
        for v in values {
            bus.emit(v).unwrap();
        }
        while total.load(Ordering::Relaxed) < (0..2 * N).sum::<u64>() {
            tokio::task::yield_now().await;
        }
        let allocs = ALLOCS.load(Ordering::Relaxed) - before;
        let per_event = allocs as f64 / N as f64;
        eprintln!("{allocs} allocations for {N} typed events: {per_event:.2} per event");
        assert!(
            per_event <= 2.0,
            "{allocs} allocations for {N} events: {per_event:.2} per event (goal <= 2)"
        );
        bus.shutdown(std::time::Duration::from_secs(5)).await;
    });
}
