//! The replay guard at its default capacity (100,000 ids): the cost of a
//! lookup of an id already seen (every duplicate delivery pays it) and of a
//! new id (every first delivery pays it).
//!
//! `cargo bench --bench replay`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hookbus::verify::{DEFAULT_REPLAY_CAPACITY, ReplayGuard};

fn full_guard() -> ReplayGuard {
    let guard = ReplayGuard::new(DEFAULT_REPLAY_CAPACITY);
    for i in 0..DEFAULT_REPLAY_CAPACITY {
        guard.first_seen(&format!("msg_{i}"), i64::MAX, 0);
    }
    guard
}

fn replay_guard(c: &mut Criterion) {
    let guard = full_guard();
    let mut n = 0usize;
    c.bench_function("replay_guard/seen id at 100k", |b| {
        b.iter(|| {
            n = (n + 7919) % DEFAULT_REPLAY_CAPACITY;
            // Ids from the newest half, so no earlier iteration evicted them.
            let id = format!("msg_{}", DEFAULT_REPLAY_CAPACITY / 2 + n / 2);
            black_box(guard.first_seen(&id, i64::MAX, 1))
        })
    });
    let guard = full_guard();
    let mut fresh = 0u64;
    c.bench_function("replay_guard/new id at 100k", |b| {
        b.iter(|| {
            fresh += 1;
            let id = format!("new_{fresh}");
            black_box(guard.first_seen(&id, i64::MAX, 1))
        })
    });
}

criterion_group!(benches, replay_guard);
criterion_main!(benches);
